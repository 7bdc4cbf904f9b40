/* Private temp dirs. Removal walks the tree by file descriptor (openat with
 * O_NOFOLLOW, unlinkat), so a symlink the script left is unlinked, never
 * followed, whatever it points at. */
#include "worker/tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tmpdir_create(char path[TMPDIR_PATH_MAX], const char *base, uid_t uid, gid_t gid)
{
    if (snprintf(path, TMPDIR_PATH_MAX, "%s/run-XXXXXX", base) >= TMPDIR_PATH_MAX)
        return -ENAMETOOLONG;
    if (!mkdtemp(path))
        return -errno;
    if (uid != (uid_t)-1 && chown(path, uid, gid)) {
        int r = -errno;
        rmdir(path);
        return r;
    }
    return 0;
}

/* Empty the directory open at dfd (consumed). depth bounds the recursion:
 * the script cannot nest deeper than its file-size and inode budget allow,
 * but a bound keeps the worker's stack safe regardless. */
static int empty_dir(int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -errno;
    }
    int r = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!unlinkat(dirfd(d), e->d_name, 0))
            continue;
        if (errno != EISDIR || depth <= 0) {
            r = -errno;
            continue;
        }
        int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 || empty_dir(sub, depth - 1) || unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR))
            r = -EIO;
    }
    closedir(d);
    return r;
}

struct usage {
    long long bytes, limit;
    long entries;
};

/* Add up the tree open at dfd (consumed), without following links. */
static void add_usage(int dfd, int depth, struct usage *u)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while (u->bytes <= u->limit && (e = readdir(d))) {
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (++u->entries > 10000) {
            u->bytes = u->limit + 1;
            break;
        }
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW))
            continue;
        u->bytes += (long long)st.st_blocks * 512;
        if (S_ISDIR(st.st_mode) && depth > 0) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                add_usage(sub, depth - 1, u);
        }
    }
    closedir(d);
}

long long tmpdir_usage(const char *path, long long limit)
{
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    struct usage u = {.limit = limit};
    add_usage(dfd, 64, &u);
    return u.bytes;
}

int tmpdir_remove(const char *path)
{
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : -errno;
    int r = empty_dir(dfd, 64);
    if (rmdir(path) && !r)
        r = -errno;
    return r;
}
