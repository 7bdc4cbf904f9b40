/* worker/files.c against hostile trees: what files_collect returns from an
 * out/ a script could leave (symlinks, FIFOs, deep nesting, many entries,
 * files of another owner, names that are not UTF-8) and what
 * files_write_inputs writes. Run as root, the uid cases use a uid of their
 * own as the "sandbox" uid, as the worker does. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ipc.h"
#include "worker/files.h"
#include "worker/tmpdir.h"

static char base[TMPDIR_PATH_MAX], dir[TMPDIR_PATH_MAX];

/* tmpdir_create re-permissions its base: give it one of the test's own, never
 * the machine's /tmp. */
static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/pyexec-test-files-XXXXXX");
    if (!mkdtemp(base) || tmpdir_create(dir, base, (uid_t)-1, (gid_t)-1, 0))
        return -1;
    char out[256];
    snprintf(out, sizeof(out), "%s/out", dir);
    return mkdir(out, 0755);
}

static int teardown(void **state)
{
    (void)state;
    int r = tmpdir_remove(dir);
    return r ? r : rmdir(base);
}

static void put(const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void sub(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static const char *b64_of(const struct files_out *o, const char *key)
{
    json_t *e = json_object_get(o->json, key);
    return json_string_value(json_object_get(e, "base64"));
}

static void test_regular_nested(void **state)
{
    (void)state;
    assert_false(files_out_pending(dir));
    put("out/chart.png", "PNG");
    sub("out/a");
    sub("out/a/b");
    put("out/a/b/data.csv", "x,y\n");
    put("keep.txt", "not in out/");
    assert_true(files_out_pending(dir));
    struct files_out o;
    assert_int_equal(files_collect(dir, (uid_t)-1, (gid_t)-1, 1 << 20, &o), 0);
    assert_int_equal(json_object_size(o.json), 2);
    assert_string_equal(b64_of(&o, "chart.png"), "UE5H");
    assert_string_equal(b64_of(&o, "a/b/data.csv"), "eCx5Cg==");
    json_t *e = json_object_get(o.json, "a/b/data.csv");
    assert_int_equal(json_integer_value(json_object_get(e, "size")), 4);
    assert_string_equal(json_string_value(json_object_get(e, "media_type")), "text/csv");
    assert_int_equal(o.bytes, 7);
    assert_false(o.truncated);
    files_out_free(&o);
}

static void test_links_and_fifos_never_followed(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/out/passwd", dir);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    snprintf(path, sizeof(path), "%s/out/etc", dir);
    assert_int_equal(symlink("/etc", path), 0);
    snprintf(path, sizeof(path), "%s/out/pipe", dir);
    assert_int_equal(mkfifo(path, 0644), 0); /* no writer: an open without O_NONBLOCK would hang */
    put("out/real.txt", "ok");
    struct files_out o;
    assert_int_equal(files_collect(dir, (uid_t)-1, (gid_t)-1, 1 << 20, &o), 0);
    assert_int_equal(json_object_size(o.json), 1);
    assert_string_equal(b64_of(&o, "real.txt"), "b2s=");
    files_out_free(&o);

    /* out/ itself a link to elsewhere: nothing. */
    snprintf(path, sizeof(path), "%s/out", dir);
    assert_int_equal(tmpdir_remove(path), 0);
    assert_int_equal(symlink("/etc", path), 0);
    assert_false(files_out_pending(dir));
    assert_int_equal(files_collect(dir, (uid_t)-1, (gid_t)-1, 1 << 20, &o), 0);
    assert_null(o.json);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void test_cap_leaves_out_what_does_not_fit(void **state)
{
    (void)state;
    char big[601];
    memset(big, 'a', 600);
    big[600] = '\0';
    put("out/1.bin", big);
    put("out/2.bin", big);
    put("out/3.txt", "small");
    struct files_out o;
    assert_int_equal(files_collect(dir, (uid_t)-1, (gid_t)-1, 1000, &o), 0);
    assert_true(o.truncated);
    assert_non_null(json_object_get(o.json, "1.bin"));
    assert_null(json_object_get(o.json, "2.bin")); /* would pass the cap */
    assert_non_null(json_object_get(o.json, "3.txt"));
    assert_int_equal(o.bytes, 605);
    files_out_free(&o);
    assert_int_equal(files_collect(dir, (uid_t)-1, (gid_t)-1, 0, &o), 0);
    assert_null(o.json);
    assert_true(o.truncated);
}

static void test_deep_and_wide(void **state)
{
    (void)state;
    char rel[512] = "out";
    for (int i = 0; i < 20; i++) {
        strcat(rel, "/d");
        sub(rel);
        char file[600];
        snprintf(file, sizeof(file), "%s/f", rel);
        put(file, "x");
    }
    struct files_out o;
    assert_int_equal(files_collect(dir, (uid_t)-1, (gid_t)-1, 1 << 20, &o), 0);
    assert_true(o.truncated);
    assert_int_equal(json_object_size(o.json), 16); /* out/d/f .. 16 levels down */

    files_out_free(&o);
    /* More entries than the walk looks at: bounded, and says so. */
    sub("out/wide");
    for (int i = 0; i < 10050; i++) {
        char name[256];
        snprintf(name, sizeof(name), "%s/out/wide/%05d", dir, i);
        int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    assert_int_equal(files_collect(dir, (uid_t)-1, (gid_t)-1, 1 << 20, &o), 0);
    assert_true(o.truncated);
    assert_true(json_object_size(o.json) <= 1000);
    files_out_free(&o);
}

/* A temp dir the worker removes itself only while it is small: the usual
 * one goes at once; one of more entries than the bound comes back -E2BIG,
 * for a process of its own to finish, and nothing outside it is touched. */
static void test_remove_small_is_bounded(void **state)
{
    (void)state;
    char small[TMPDIR_PATH_MAX], big[TMPDIR_PATH_MAX], rel[600];
    assert_int_equal(tmpdir_create(small, base, (uid_t)-1, (gid_t)-1, 0), 0);
    snprintf(rel, sizeof(rel), "%s/out", small);
    assert_int_equal(mkdir(rel, 0755), 0);
    snprintf(rel, sizeof(rel), "%s/out/chart.png", small);
    FILE *f = fopen(rel, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(tmpdir_remove_small(small, 64), 0);
    assert_int_equal(access(small, F_OK), -1);

    assert_int_equal(tmpdir_create(big, base, (uid_t)-1, (gid_t)-1, 0), 0);
    for (int i = 0; i < 100; i++) {
        snprintf(rel, sizeof(rel), "%s/%03d", big, i);
        assert_int_equal(mkdir(rel, 0755), 0);
    }
    assert_int_equal(tmpdir_remove_small(big, 64), -E2BIG);
    assert_int_equal(access(big, F_OK), 0);
    assert_int_equal(access(dir, F_OK), 0); /* the test's other temp dir */
    assert_int_equal(tmpdir_remove(big), 0);
    assert_int_equal(access(big, F_OK), -1);
}

/* Lines of this process's mountinfo that name path. */
static int mounts_naming(const char *path)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, path) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* The batch a worker makes its tmpfs temp dirs in (run in a mount namespace
 * of its own; exits with the number of the first check that failed). */
static int batch_scenario(void)
{
    char batch[TMPDIR_PATH_MAX], a[TMPDIR_PATH_MAX], b[TMPDIR_PATH_MAX], rel[600];
    struct stat st;
    if (tmpdir_batch_create(batch, base, 4) || stat(batch, &st) || (st.st_mode & 07777) != 0711)
        return 1;
    /* A finished temp dir with files at several depths is emptied and made
     * read-only, and stays mounted in its batch. */
    if (tmpdir_create(a, batch, (uid_t)-1, (gid_t)-1, 64))
        return 2;
    snprintf(rel, sizeof(rel), "%s/x", a);
    if (mkdir(rel, 0700))
        return 3;
    snprintf(rel, sizeof(rel), "%s/x/y", a);
    if (mkdir(rel, 0700))
        return 3;
    snprintf(rel, sizeof(rel), "%s/x/y/z", a);
    int fd = open(rel, O_WRONLY | O_CREAT, 0600);
    if (fd < 0 || write(fd, "data", 4) != 4 || close(fd))
        return 4;
    if (tmpdir_seal(a, 64))
        return 5;
    DIR *d = opendir(a);
    struct dirent *e;
    int entries = 0;
    while (d && (e = readdir(d)))
        entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (!d || closedir(d) || entries)
        return 6;
    snprintf(rel, sizeof(rel), "%s/n", a);
    if (open(rel, O_WRONLY | O_CREAT, 0600) >= 0 || errno != EROFS)
        return 7;
    if (mkdir(rel, 0700) == 0 || errno != EROFS || mounts_naming(a) != 1)
        return 8;
    /* More entries than the bound: -E2BIG, for the caller to unmount it. */
    if (tmpdir_create(b, batch, (uid_t)-1, (gid_t)-1, 1024))
        return 9;
    for (int i = 0; i < 100; i++) {
        snprintf(rel, sizeof(rel), "%s/%03d", b, i);
        if (mkdir(rel, 0700))
            return 10;
    }
    if (tmpdir_seal(b, 64) != -E2BIG)
        return 11;
    /* One removal of the batch unmounts it and both temp dirs. */
    if (tmpdir_remove(batch) || access(batch, F_OK) == 0 || mounts_naming(batch) != 0)
        return 12;
    return 0;
}

/* tmpdir_batch_create, tmpdir_seal and the batch's removal, where this
 * process may have a mount namespace of its own (root); skipped elsewhere. */
static void test_batch_seal_and_remove(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
            _exit(77);
        _exit(batch_scenario());
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The worker measures a temp dir while the script works in it: a directory
 * the script removes (shutil.rmtree, TemporaryDirectory) while the walk is
 * inside it reads as ENOENT, and it holds nothing (rmdir needs it empty), so
 * the measurement goes on. Were it a failure, a script doing nothing wrong
 * would be stopped for filling its temp dir. Here the walk starts in it. */
static void test_removed_directory_measures_empty(void **state)
{
    (void)state;
    char gone[600];
    snprintf(gone, sizeof(gone), "%s/gone", dir);
    assert_int_equal(mkdir(gone, 0755), 0);
    assert_int_equal(chdir(gone), 0);
    assert_int_equal(rmdir(gone), 0);
    long long used = tmpdir_usage(".", 1 << 20);
    assert_int_equal(chdir("/"), 0);
    assert_int_equal(used, 0);
}

static void test_names_not_utf8_skipped(void **state)
{
    (void)state;
    put("out/ok-\xc3\xa9.txt", "1");
    put("out/bad-\xff.txt", "2");
    struct files_out o;
    assert_int_equal(files_collect(dir, (uid_t)-1, (gid_t)-1, 1 << 20, &o), 0);
    assert_int_equal(json_object_size(o.json), 1);
    assert_non_null(json_object_get(o.json, "ok-\xc3\xa9.txt"));
    files_out_free(&o);
}

/* As root the worker reads as the sandbox uid and only its files: a hard link
 * to a file it may not read, or one of another owner, stays out. */
static void test_other_owners_skipped(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    const uid_t uid = 64999;
    char path[512], secret[512];
    snprintf(path, sizeof(path), "%s/out", dir);
    assert_int_equal(chown(dir, uid, uid), 0);
    assert_int_equal(chown(path, uid, uid), 0);
    put("out/mine.txt", "mine");
    snprintf(path, sizeof(path), "%s/out/mine.txt", dir);
    assert_int_equal(chown(path, uid, uid), 0);
    put("out/roots.txt", "root's, world-readable");
    snprintf(secret, sizeof(secret), "%s/secret", dir);
    put("secret", "root only");
    assert_int_equal(chmod(secret, 0600), 0);
    snprintf(path, sizeof(path), "%s/out/link", dir);
    assert_int_equal(link(secret, path), 0);
    put("out/unreadable.txt", "mode 0");
    snprintf(path, sizeof(path), "%s/out/unreadable.txt", dir);
    assert_int_equal(chown(path, uid, uid), 0);
    assert_int_equal(chmod(path, 0), 0);

    struct files_out o;
    assert_int_equal(files_collect(dir, uid, uid, 1 << 20, &o), 0);
    assert_int_equal(json_object_size(o.json), 1);
    assert_non_null(json_object_get(o.json, "mine.txt"));
    files_out_free(&o);
    /* The worker's own identity is back. */
    assert_int_equal(access(secret, R_OK), 0);
}

static void test_write_inputs(void **state)
{
    (void)state;
    char here[4096];
    assert_non_null(getcwd(here, sizeof(here)));
    char work[512];
    snprintf(work, sizeof(work), "%s/work", dir);
    assert_int_equal(mkdir(work, 0755), 0);
    assert_int_equal(chdir(work), 0);

    char rec[256];
    size_t len = 0;
    const char *items[][2] = {{"a/b/c.txt", "hello"}, {"top.csv", "x\n"}};
    for (int i = 0; i < 2; i++) {
        struct ipc_file f = {(uint32_t)strlen(items[i][0]), (uint32_t)strlen(items[i][1])};
        memcpy(rec + len, &f, sizeof(f));
        len += sizeof(f);
        memcpy(rec + len, items[i][0], f.path_len);
        len += f.path_len;
        memcpy(rec + len, items[i][1], f.data_len);
        len += f.data_len;
    }
    char why[256] = "";
    assert_int_equal(files_write_inputs(rec, len, why, sizeof(why)), 0);
    char buf[16] = "";
    FILE *f = fopen("a/b/c.txt", "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "hello");
    struct stat st;
    assert_int_equal(stat("out", &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    /* Again into the same directory: out/ and every file exist already, and
     * nothing is replaced. */
    assert_int_equal(rmdir("out"), 0);
    assert_int_equal(files_write_inputs(rec, len, why, sizeof(why)), -EEXIST);
    assert_non_null(strstr(why, "\"a/b/c.txt\""));

    /* A component that is a symlink is not followed. */
    assert_int_equal(rmdir("out"), 0);
    assert_int_equal(rename("a", "a.old"), 0);
    assert_int_equal(symlink("/tmp", "a"), 0);
    assert_int_equal(files_write_inputs(rec, len, why, sizeof(why)), -ENOTDIR);

    /* Records that run past their end. */
    assert_int_equal(rmdir("out"), 0);
    assert_int_equal(files_write_inputs(rec, 3, why, sizeof(why)), -EPROTO);
    assert_int_equal(chdir(here), 0);
}

static void test_media_types(void **state)
{
    (void)state;
    assert_string_equal(files_media_type("a/chart.PNG"), "image/png");
    assert_string_equal(files_media_type("x.jpeg"), "image/jpeg");
    assert_string_equal(files_media_type("x.svg"), "image/svg+xml");
    assert_string_equal(files_media_type("r.pdf"), "application/pdf");
    assert_string_equal(files_media_type("d.json"), "application/json");
    assert_string_equal(files_media_type("n.txt"), "text/plain");
    assert_string_equal(files_media_type("p.html"), "text/html");
    assert_string_equal(files_media_type("dir.png/data"), "application/octet-stream");
    assert_string_equal(files_media_type("noext"), "application/octet-stream");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_regular_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_and_fifos_never_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_leaves_out_what_does_not_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_and_wide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_directory_measures_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_small_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_seal_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_not_utf8_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_owners_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_inputs, setup, teardown),
        cmocka_unit_test(test_media_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
