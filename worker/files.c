/* Files in and out of one request. See files.h for which process runs what.
 *
 * Input files are written by the child itself, confined, into its own fresh
 * working directory: each path was checked by the acceptor (relative, no "."
 * or "..", at most 8 levels), and every component is still opened with
 * O_NOFOLLOW and every file created with O_EXCL, so even a record that broke
 * those rules could not leave the directory or replace anything.
 *
 * Output files are read by the worker, which may be root, from a directory
 * the script owned. So the worker waits until the child is dead (nothing can
 * change the tree while it reads it), switches its filesystem uid to the
 * sandbox uid (it can read nothing the script could not), walks the tree by
 * file descriptor with O_NOFOLLOW on every component, opens with O_NONBLOCK
 * (a FIFO never blocks the open), fstat()s what it opened and reads only
 * regular files the sandbox uid owns (a hard link to someone else's file is
 * skipped), and bounds the walk in entries, depth, bytes and time. */
#include "worker/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/ipc.h"
#include "common/jsontext.h"
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

/* Bounds on the walk of out/: a script can make a million entries or nest
 * directories thousands deep; the worker looks at this much and no more. */
#define OUT_MAX_ENTRIES 10000 /* directory entries looked at */
#define OUT_MAX_FILES   1000  /* files returned */
#define OUT_MAX_DEPTH   16    /* directories below out/ */
#define OUT_MAX_MS      2000  /* time spent walking and reading */
#define OUT_PATH_MAX    4096

/* --- the child: standard input and input files ------------------------- */

int files_stdin_open(void)
{
    int fd = memfd_create("stdin", MFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int files_stdin_fill(int fd, const char *data, size_t len)
{
    int r = write_all(fd, data, len);
    if (!r && lseek(fd, 0, SEEK_SET) < 0)
        r = -errno;
    if (!r && dup2(fd, 0) < 0)
        r = -errno;
    close(fd);
    return r;
}

/* Open (making it if needed) the directory name inside dfd. */
static int enter_dir(int dfd, const char *name)
{
    if (mkdirat(dfd, name, 0755) && errno != EEXIST)
        return -errno;
    int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return sub < 0 ? -errno : sub;
}

/* Write one file at path (relative to root), its parents made as needed. */
static int write_one(int root, char *path, const char *data, size_t len)
{
    int dfd = root;
    char *name = path;
    int r = 0;
    for (char *slash; (slash = strchr(name, '/')); name = slash + 1) {
        *slash = '\0';
        int sub = enter_dir(dfd, name);
        *slash = '/';
        if (dfd != root)
            close(dfd);
        if (sub < 0)
            return sub;
        dfd = sub;
    }
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        r = -errno;
    else {
        r = write_all(fd, data, len);
        if (close(fd) && !r)
            r = -errno;
    }
    if (dfd != root)
        close(dfd);
    return r;
}

int files_write_inputs(const char *records, size_t len, char *why, size_t why_len)
{
    int root = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        snprintf(why, why_len, "the working directory cannot be opened: %s", strerror(errno));
        return -errno;
    }
    int r = mkdirat(root, FILES_OUT_DIR, 0755) ? -errno : 0;
    if (r)
        snprintf(why, why_len, "out/ cannot be made: %s", strerror(-r));
    size_t pos = 0;
    const char *path, *data;
    size_t path_len, data_len;
    char buf[OUT_PATH_MAX];
    while (!r && (r = ipc_file_next(records, len, &pos, &path, &path_len, &data, &data_len)) > 0) {
        if (path_len >= sizeof(buf) || memchr(path, '\0', path_len)) {
            r = -EINVAL;
            snprintf(why, why_len, "an input file path is malformed");
            break;
        }
        memcpy(buf, path, path_len);
        buf[path_len] = '\0';
        r = write_one(root, buf, data, data_len);
        if (r)
            snprintf(why, why_len, "input file \"%.200s\" could not be written: %s", buf,
                     r == -EFBIG || r == -ENOSPC || r == -EDQUOT
                         ? "the input files do not fit in the temp dir"
                         : strerror(-r));
    }
    if (r == -EPROTO)
        snprintf(why, why_len, "the input file records are malformed");
    close(root);
    return r < 0 ? r : 0;
}

/* --- the worker: out/ ---------------------------------------------------- */

const char *files_media_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"png", "image/png"},  {"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},  {"svg", "image/svg+xml"},     {"pdf", "application/pdf"},
        {"csv", "text/csv"},   {"json", "application/json"}, {"txt", "text/plain"},
        {"html", "text/html"}, {"htm", "text/html"},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (!strcasecmp(dot + 1, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}

struct walk {
    json_t *files;
    size_t bytes, cap, nfiles;
    long entries;
    bool truncated;
    uid_t uid; /* -1: any owner */
    double deadline_ms;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool utf8_valid(const char *s, size_t len)
{
    size_t n;
    char *copy = utf8_sanitize(s, len, &n);
    bool same = copy && n == len && !memcmp(copy, s, len);
    if (copy)
        explicit_bzero(copy, n);
    wipe_free(copy);
    return same;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read a regular file already open (and fstat'ed) into the result. */
static int take_file(struct walk *w, int fd, const struct stat *st, const char *path)
{
    if ((size_t)st->st_size > w->cap - w->bytes || w->nfiles >= OUT_MAX_FILES) {
        w->truncated = true;
        return 0;
    }
    size_t size = (size_t)st->st_size;
    unsigned char *data = malloc(size ? size : 1);
    if (!data)
        return -ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, data + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* shrank (or an error): what was read is what it holds */
        got += (size_t)n;
    }
    char *text = malloc(base64_encoded_len(got) + 1);
    json_t *entry = NULL;
    if (text) {
        base64_encode(data, got, text);
        entry = json_pack("{s:s%,s:I,s:s}", "base64", text, base64_encoded_len(got), "size",
                          (json_int_t)got, "media_type", files_media_type(path));
        explicit_bzero(text, base64_encoded_len(got));
    }
    explicit_bzero(data, got);
    wipe_free(data);
    wipe_free(text);
    if (!entry || json_object_set_new(w->files, path, entry))
        return -ENOMEM;
    w->bytes += got;
    w->nfiles++;
    return 0;
}

/* Directory entries are read with getdents64 into a buffer on the stack
 * that is wiped afterwards, not through readdir, whose buffer goes back to
 * the heap unwiped: a script's file names must not stay in the worker's
 * memory for the next child to inherit. */
#define DENTS_BUF 32768

struct dents {
    char buf[DENTS_BUF] __attribute__((aligned(8)));
    long len, pos;
};

/* The next name in the directory at fd other than "." and "..", or NULL at
 * its end (or on an error). */
static const char *next_name(int fd, struct dents *d)
{
    for (;;) {
        if (d->pos >= d->len) {
            d->len = getdents64(fd, d->buf, sizeof(d->buf));
            d->pos = 0;
            if (d->len <= 0)
                return NULL;
        }
        struct dirent64 *e = (struct dirent64 *)(d->buf + d->pos);
        d->pos += e->d_reclen;
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            return e->d_name;
    }
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        explicit_bzero(names[i], strlen(names[i]));
        wipe_free(names[i]);
    }
    wipe_free(names);
}

/* Walk the directory open at dfd (consumed), whose path below out/ is prefix. */
static int walk_dir(struct walk *w, int dfd, const char *prefix, int depth)
{
    struct dents *dents = malloc(sizeof(*dents));
    if (!dents) {
        close(dfd);
        return -ENOMEM;
    }
    dents->len = dents->pos = 0;
    char **names = NULL;
    size_t n = 0, alloc = 0;
    int r = 0;
    const char *name;
    while ((name = next_name(dfd, dents))) {
        if (++w->entries > OUT_MAX_ENTRIES) {
            w->truncated = true;
            break;
        }
        if (n == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            char **bigger = malloc(alloc * sizeof(*names));
            if (!bigger) {
                r = -ENOMEM;
                break;
            }
            if (n)
                memcpy(bigger, names, n * sizeof(*names));
            wipe_free(names);
            names = bigger;
        }
        if (!(names[n] = strdup(name))) {
            r = -ENOMEM;
            break;
        }
        n++;
    }
    explicit_bzero(dents, sizeof(*dents));
    wipe_free(dents);
    if (n)
        qsort(names, n, sizeof(*names), by_name); /* the same tree, the same answer */

    for (size_t i = 0; i < n && !r; i++) {
        char path[OUT_PATH_MAX];
        name = names[i];
        if (now_ms() > w->deadline_ms) {
            w->truncated = true;
            break;
        }
        if (snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "/" : "", name) >=
                (int)sizeof(path) ||
            !utf8_valid(name, strlen(name)))
            continue;
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
            continue;
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            continue; /* symlinks, FIFOs, sockets, devices: never opened */
        if (S_ISDIR(st.st_mode) && depth >= OUT_MAX_DEPTH) {
            w->truncated = true;
            continue;
        }
        int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
        int fd = openat(dfd, name, S_ISDIR(st.st_mode) ? flags | O_DIRECTORY : flags);
        if (fd < 0)
            continue;
        /* What was opened may not be what was stat'ed a moment ago. */
        if (fstat(fd, &st) || (w->uid != (uid_t)-1 && st.st_uid != w->uid)) {
            close(fd);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            r = walk_dir(w, fd, path, depth + 1);
        } else {
            if (S_ISREG(st.st_mode))
                r = take_file(w, fd, &st, path);
            close(fd);
        }
        explicit_bzero(path, sizeof(path));
    }
    free_names(names, n);
    close(dfd);
    return r;
}

/* tmpdir/out as a directory fd, never through a link; -1 if there is none. */
static int open_out(const char *tmpdir)
{
    int root = open(tmpdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0)
        return -1;
    int out = openat(root, FILES_OUT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(root);
    return out;
}

bool files_out_pending(const char *tmpdir)
{
    int out = open_out(tmpdir);
    if (out < 0)
        return false;
    /* One entry is enough; d_name is not kept. */
    char buf[1024] __attribute__((aligned(8)));
    bool any = false;
    long len;
    while (!any && (len = getdents64(out, buf, sizeof(buf))) > 0)
        for (long pos = 0; pos < len && !any;) {
            struct dirent64 *e = (struct dirent64 *)(buf + pos);
            pos += e->d_reclen;
            any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        }
    explicit_bzero(buf, sizeof(buf));
    close(out);
    return any;
}

int files_collect(const char *tmpdir, uid_t uid, gid_t gid, size_t cap, struct files_out *out)
{
    memset(out, 0, sizeof(*out));
    bool switch_ids = uid != (uid_t)-1 && geteuid() == 0;
    uid_t old_uid = 0;
    gid_t old_gid = 0;
    if (switch_ids) {
        /* Filesystem checks as the sandbox uid: going from fsuid 0 to another
         * also drops the capabilities that would bypass them. */
        old_gid = setfsgid(gid);
        old_uid = setfsuid(uid);
    }
    struct walk w = {.files = json_object(),
                     .cap = cap,
                     .uid = switch_ids ? uid : (uid_t)-1,
                     .deadline_ms = now_ms() + OUT_MAX_MS};
    int r = w.files ? 0 : -ENOMEM;
    int dfd = r ? -1 : open_out(tmpdir);
    if (dfd >= 0)
        r = walk_dir(&w, dfd, "", 0);
    if (switch_ids) {
        setfsuid(old_uid);
        setfsgid(old_gid);
    }
    if (r || !json_object_size(w.files)) {
        json_decref(w.files);
        w.files = NULL;
    }
    out->json = w.files;
    out->bytes = w.files ? w.bytes : 0;
    out->truncated = w.truncated;
    return r;
}

void files_out_free(struct files_out *out)
{
    json_decref(out->json); /* the worker's jansson allocator wipes */
    memset(out, 0, sizeof(*out));
}
