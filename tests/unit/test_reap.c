/* Reaping: a signal that interrupts a wait never passes for the child's
 * exit. The worker catches SIGCHLD without SA_RESTART, so when one of its
 * dying children exits while it waits for another, the wait is interrupted;
 * the child waited for must still be reaped, and its temp dir removed only
 * then. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker/dying.h"
#include "worker/reap.h"
#include "worker/tmpdir.h"

/* As the worker does (worker.c): its handler, no SA_RESTART. */
static void catch_sigchld(void)
{
    static int fds[2] = {-1, -1};
    if (fds[0] < 0)
        assert_int_equal(reap_signal_pipe(fds), 0);
}

/* A child that waits until it is killed. */
static pid_t fork_waiting_child(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pause();
        _exit(0);
    }
    return pid;
}

/* 'S': the process sleeps in a system call (here: the parent in wait4). */
static char state_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return '?';
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return '?';
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : '?';
}

/* Two children. *fast exits as soon as the parent sleeps in a wait (its
 * SIGCHLD interrupts that wait); *slow exits 200 ms after *fast has. */
static void fork_pair(pid_t *slow, pid_t *fast)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t parent = getpid();
    *slow = fork();
    assert_true(*slow >= 0);
    if (*slow == 0) {
        char c;
        close(p[1]);
        while (read(p[0], &c, 1) != 0) /* EOF: fast has exited */
            ;
        usleep(200 * 1000);
        _exit(0);
    }
    *fast = fork();
    assert_true(*fast >= 0);
    if (*fast == 0) {
        close(p[0]);
        struct timespec poll_interval = {0, 1000000};
        for (int i = 0; i < 5000 && state_of(parent) != 'S'; i++) /* 5 s deadline */
            nanosleep(&poll_interval, NULL);
        _exit(0);
    }
    close(p[0]);
    close(p[1]);
}

static bool reaped(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_reap_wait_waits_through_a_signal(void **state)
{
    (void)state;
    catch_sigchld();
    pid_t slow, fast;
    fork_pair(&slow, &fast);
    int status = -1;
    struct rusage ru;
    assert_int_equal(reap_wait(slow, 0, &status, &ru), slow);
    assert_true(WIFEXITED(status));
    assert_int_equal(reap_wait(fast, 0, NULL, NULL), fast);
    assert_int_equal(reap_wait(fast, 0, NULL, NULL), -ECHILD);
}

static void test_reap_wait_nohang(void **state)
{
    (void)state;
    pid_t pid = fork_waiting_child();
    assert_int_equal(reap_wait(pid, WNOHANG, NULL, NULL), 0);
    kill(pid, SIGKILL);
    int status = 0;
    assert_int_equal(reap_wait(pid, 0, &status, NULL), pid);
    assert_true(WIFSIGNALED(status));
}

static void add(struct dying *d, pid_t pid)
{
    struct child c = {.pid = pid, .req_fd = -1, .out_fd = -1, .err_fd = -1, .res_fd = -1};
    snprintf(c.tmpdir, sizeof(c.tmpdir), "/tmp/pyexec-test-reap-XXXXXX");
    assert_non_null(mkdtemp(c.tmpdir));
    dying_add(d, &c);
}

/* The worker's dying list, waiting (as at shutdown or when full): the one
 * waited for is reaped for real, though another one's SIGCHLD interrupts
 * the wait, and its temp dir goes only then. */
static void test_dying_reap_waits_through_a_signal(void **state)
{
    (void)state;
    catch_sigchld();
    pid_t slow, fast;
    fork_pair(&slow, &fast);
    struct dying d = {.n = 0};
    add(&d, slow); /* waited for first */
    add(&d, fast);
    char slow_dir[TMPDIR_PATH_MAX], fast_dir[TMPDIR_PATH_MAX];
    snprintf(slow_dir, sizeof(slow_dir), "%s", d.children[0].tmpdir);
    snprintf(fast_dir, sizeof(fast_dir), "%s", d.children[1].tmpdir);
    dying_reap(&d, true);
    assert_int_equal(d.n, 0);
    bool slow_reaped = reaped(slow);
    if (!slow_reaped) { /* leave no process behind, then fail */
        kill(slow, SIGKILL);
        waitpid(slow, NULL, 0);
    }
    assert_true(slow_reaped);
    assert_true(reaped(fast));
    assert_false(exists(slow_dir));
    assert_false(exists(fast_dir));
}

static void test_dying_reap_nohang_keeps_the_living(void **state)
{
    (void)state;
    pid_t pid = fork_waiting_child();
    struct dying d = {.n = 0};
    add(&d, pid);
    char dir[TMPDIR_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", d.children[0].tmpdir);
    dying_reap(&d, false);
    assert_int_equal(d.n, 1);
    assert_true(exists(dir));
    kill(pid, SIGKILL);
    dying_reap(&d, true);
    assert_int_equal(d.n, 0);
    assert_true(reaped(pid));
    assert_false(exists(dir));
}

/* A tmpfs temp dir with its own mount, in a mount namespace of the test's
 * own; false where this process may not make one (not root). */
static bool tmpfs_dir(char base[TMPDIR_PATH_MAX], char dir[TMPDIR_PATH_MAX])
{
    if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
        return false;
    snprintf(base, TMPDIR_PATH_MAX, "/tmp/pyexec-test-reap-XXXXXX");
    assert_non_null(mkdtemp(base));
    assert_int_equal(tmpdir_create(dir, base, (uid_t)-1, (gid_t)-1, 64), 0);
    return true;
}

static bool is_mounted(const char *path)
{
    struct statx stx;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, 0, &stx))
        return false;
    if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
        skip(); /* before Linux 5.8: no way to tell */
    return stx.stx_attributes & STATX_ATTR_MOUNT_ROOT;
}

/* A tmpfs temp dir outlives its child's retirement, mounted, until the
 * worker asks (dying_unmount, once the next spare is forked), or until a
 * waiting reap (shutdown) leaves nothing behind; reaping a child whose dir
 * is already gone is quiet, and a child reaped before its retirement
 * (dying_gone) waits for dying_unmount too. */
static void test_tmpfs_dirs_go_at_dying_unmount(void **state)
{
    (void)state;
    char base[TMPDIR_PATH_MAX], dir[TMPDIR_PATH_MAX];
    if (!tmpfs_dir(base, dir))
        skip();
    assert_true(is_mounted(dir));
    struct dying d = {.tmpfs = true};
    struct child c = {.pid = fork_waiting_child()};
    snprintf(c.tmpdir, sizeof(c.tmpdir), "%s", dir);
    kill(c.pid, SIGKILL);
    dying_add(&d, &c);
    assert_true(is_mounted(dir));
    dying_unmount(&d);
    assert_false(exists(dir));
    assert_int_equal(d.nunmount, 0);
    dying_reap(&d, true); /* its child, now: the dir is gone already */
    assert_true(reaped(c.pid));
    assert_int_equal(d.n, 0);

    assert_int_equal(tmpdir_create(dir, base, (uid_t)-1, (gid_t)-1, 64), 0);
    c = (struct child){.pid = fork_waiting_child()};
    snprintf(c.tmpdir, sizeof(c.tmpdir), "%s", dir);
    kill(c.pid, SIGKILL);
    assert_int_equal(waitpid(c.pid, NULL, 0), c.pid);
    dying_gone(&d, &c);
    assert_true(is_mounted(dir));
    dying_unmount(&d);
    assert_false(exists(dir));

    assert_int_equal(tmpdir_create(dir, base, (uid_t)-1, (gid_t)-1, 64), 0);
    c = (struct child){.pid = fork_waiting_child()};
    snprintf(c.tmpdir, sizeof(c.tmpdir), "%s", dir);
    kill(c.pid, SIGKILL);
    dying_add(&d, &c);
    dying_reap(&d, true);
    assert_true(reaped(c.pid));
    assert_false(exists(dir));
    assert_false(d.broken);
    assert_int_equal(rmdir(base), 0);
}

static void test_rusage_cpu_us(void **state)
{
    (void)state;
    struct rusage ru = {.ru_utime = {1, 500000}, .ru_stime = {2, 600000}};
    assert_int_equal(rusage_cpu_us(&ru), 4100000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reap_wait_waits_through_a_signal),
        cmocka_unit_test(test_reap_wait_nohang),
        cmocka_unit_test(test_dying_reap_waits_through_a_signal),
        cmocka_unit_test(test_dying_reap_nohang_keeps_the_living),
        cmocka_unit_test(test_tmpfs_dirs_go_at_dying_unmount),
        cmocka_unit_test(test_rusage_cpu_us),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
