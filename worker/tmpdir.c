/* Private temp dirs. Both the measurement and the removal walk the tree by
 * file descriptor (openat with O_NOFOLLOW, fstatat and unlinkat relative to
 * the directory), so a symlink the script left is unlinked, never followed,
 * whatever it points at. The walk has no recursion and no depth limit: it
 * holds one directory open at a time, keeps only (device, inode, offset) of
 * each ancestor, climbs back by "..", and checks that ".." is still the
 * ancestor it left (a live script may move directories meanwhile). */
#include "worker/tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

int tmpdir_keep_mode(const char *dir)
{
    struct stat st;
    if (!stat(dir, &st) && (st.st_mode & 07777) != 0711 && chmod(dir, 0711))
        return -errno;
    return 0;
}

/* mkdtemp base/prefix-XXXXXX into path. */
static int make_dir(char path[TMPDIR_PATH_MAX], const char *base, const char *prefix)
{
    if (snprintf(path, TMPDIR_PATH_MAX, "%s/%s-XXXXXX", base, prefix) >= TMPDIR_PATH_MAX)
        return -ENAMETOOLONG;
    int r = tmpdir_keep_mode(base);
    if (r)
        return r;
    for (int tries = 0; !mkdtemp(path); tries++) {
        if (errno != EACCES || tries == 3 || chmod(base, 0711))
            return -errno;
        memcpy(path + strlen(path) - 6, "XXXXXX", 6);
    }
    return 0;
}

int tmpdir_create(char path[TMPDIR_PATH_MAX], const char *base, uid_t uid, gid_t gid,
                  size_t tmpfs_kb)
{
    int r = make_dir(path, base, "run");
    if (r)
        return r;
    if (tmpfs_kb > 0) {
        char opts[128];
        snprintf(opts, sizeof(opts), "size=%zuk,nr_inodes=%d,mode=0700,uid=%d,gid=%d", tmpfs_kb,
                 TMPDIR_MAX_ENTRIES + 1, uid == (uid_t)-1 ? (int)getuid() : (int)uid,
                 gid == (gid_t)-1 ? (int)getgid() : (int)gid);
        if (mount("pyexec-tmp", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts))
            r = -errno;
    } else if (uid != (uid_t)-1 && chown(path, uid, gid)) {
        r = -errno;
    }
    if (r)
        rmdir(path);
    return r;
}

int tmpdir_batch_create(char path[TMPDIR_PATH_MAX], const char *base, int dirs)
{
    int r = make_dir(path, base, "batch");
    if (r)
        return r;
    /* Each temp dir inside is a directory (an inode, no block) with a mount
     * on it; 0711 lets a child reach its own by name, not list the others. */
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%dk,nr_inodes=%d,mode=0711", TMPDIR_BATCH_KB, 2 * dirs + 2);
    if (mount("pyexec-batch", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts)) {
        r = -errno;
        rmdir(path);
    }
    return r;
}

/* Open a directory of the tree; one the script made unreadable (possible only
 * where it runs under the worker's own uid) is given back its owner's rights. */
static int open_dir(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES && !fchmodat(dfd, name, S_IRWXU, 0))
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

enum { WALK_NEXT, WALK_DESCEND, WALK_STOP };

/* Called for each entry of the directory open at dfd; returns a WALK_ value. */
typedef int (*walk_visit)(int dfd, const char *name, unsigned char type, void *ctx);

struct ancestor {
    dev_t dev;
    ino_t ino;
    off_t resume; /* where to go on reading it */
};

struct walk {
    struct ancestor *up; /* wipe_free'd: file names are not kept, but offsets are */
    size_t depth, alloc;
};

static int walk_push(struct walk *w, int dfd, off_t resume)
{
    struct stat st;
    if (fstat(dfd, &st))
        return -errno;
    if (w->depth == w->alloc) {
        size_t n = w->alloc ? w->alloc * 2 : 64;
        struct ancestor *bigger = malloc(n * sizeof(*bigger));
        if (!bigger)
            return -ENOMEM;
        if (w->depth)
            memcpy(bigger, w->up, w->depth * sizeof(*bigger));
        wipe_free(w->up);
        w->up = bigger;
        w->alloc = n;
    }
    w->up[w->depth++] = (struct ancestor){st.st_dev, st.st_ino, resume};
    return 0;
}

/* Replace *fd by its parent, which must be the ancestor recorded on the way
 * down; -ESTALE when the tree was moved meanwhile. */
static int walk_pop(struct walk *w, int *fd)
{
    struct ancestor a = w->up[--w->depth];
    int parent = openat(*fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent < 0)
        return -errno;
    struct stat st;
    if (fstat(parent, &st) || st.st_dev != a.dev || st.st_ino != a.ino ||
        lseek(parent, a.resume, SEEK_SET) < 0) {
        close(parent);
        return -ESTALE;
    }
    close(*fd);
    *fd = parent;
    return 0;
}

/* Visit every entry below the directory open at fd (consumed), depth first.
 * revisit: a directory descended into is read again once the walk is back
 * (removal: it is empty now and can go); otherwise the walk goes on after it.
 * Returns 0, or -errno of the first failure (the walk stops there). */
static int walk_tree(int fd, walk_visit visit, bool revisit, void *ctx)
{
    struct walk w = {0};
    char buf[8192];
    int r = 0;
    for (;;) {
        off_t pos = lseek(fd, 0, SEEK_CUR);
        ssize_t n = getdents64(fd, buf, sizeof(buf));
        /* A directory removed while the walk is inside it (the script's own
         * rmtree: rmdir needs it empty) reads as ENOENT: it holds nothing,
         * so it is done, as glibc's readdir takes it. */
        if (n < 0 && errno == ENOENT)
            n = 0;
        if (n < 0 || pos < 0) {
            r = -errno;
            break;
        }
        if (n == 0) { /* this directory is done: back up */
            if (!w.depth)
                break;
            if ((r = walk_pop(&w, &fd)))
                break;
            continue;
        }
        for (ssize_t at = 0; at < n;) {
            struct dirent64 *e = (struct dirent64 *)(buf + at);
            off_t here = pos;
            at += e->d_reclen;
            pos = e->d_off;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            int v = visit(fd, e->d_name, e->d_type, ctx);
            if (v == WALK_STOP)
                goto out;
            if (v != WALK_DESCEND)
                continue;
            int sub = open_dir(fd, e->d_name);
            if (sub == -ENOENT)
                continue; /* gone meanwhile */
            if (sub < 0) {
                r = sub;
                goto out;
            }
            if ((r = walk_push(&w, fd, revisit ? here : pos))) {
                close(sub);
                goto out;
            }
            close(fd);
            fd = sub;
            break; /* read the subdirectory from its start */
        }
    }
out:
    close(fd);
    explicit_bzero(buf, sizeof(buf)); /* names the script chose */
    wipe_free(w.up);
    return r;
}

struct usage {
    long long bytes, limit;
    long entries;
};

static int add_usage(int dfd, const char *name, unsigned char type, void *ctx)
{
    (void)type;
    struct usage *u = ctx;
    struct stat st;
    if (++u->entries > TMPDIR_MAX_ENTRIES) {
        u->bytes = u->limit + 1;
        return WALK_STOP;
    }
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
        return WALK_NEXT; /* gone meanwhile */
    u->bytes += (long long)st.st_blocks * 512;
    if (u->bytes > u->limit)
        return WALK_STOP;
    return S_ISDIR(st.st_mode) ? WALK_DESCEND : WALK_NEXT;
}

long long tmpdir_usage(const char *path, long long limit)
{
    int fd = open_dir(AT_FDCWD, path);
    if (fd < 0)
        return fd;
    struct usage u = {.limit = limit};
    int r = walk_tree(fd, add_usage, false, &u);
    return r && u.bytes <= limit ? r : u.bytes;
}

struct removal {
    int err;      /* the first entry that could not be removed */
    long budget;  /* entries still to look at; < 0: no bound */
    bool too_big; /* the budget ran out */
};

static int remove_entry(int dfd, const char *name, unsigned char type, void *ctx)
{
    struct removal *rm = ctx;
    if (rm->budget >= 0 && rm->budget-- == 0) {
        rm->too_big = true;
        return WALK_STOP;
    }
    if (type != DT_DIR && (!unlinkat(dfd, name, 0) || errno == ENOENT))
        return WALK_NEXT;
    if (!unlinkat(dfd, name, AT_REMOVEDIR) || errno == ENOENT)
        return WALK_NEXT;
    if (errno == ENOTEMPTY || errno == EEXIST) {
        /* Emptying it needs write and search rights on it: a script running
         * under the worker's uid may have taken them away (root has them). */
        if (geteuid() != 0)
            fchmodat(dfd, name, S_IRWXU, 0);
        return WALK_DESCEND;
    }
    if (errno == ENOTDIR && !unlinkat(dfd, name, 0)) /* DT_UNKNOWN, not a directory */
        return WALK_NEXT;
    if (!rm->err)
        rm->err = -errno;
    return WALK_NEXT;
}

/* Make the mount at path read-only: mount_setattr (Linux 5.12), else a bind
 * remount, which must name the flags the mount keeps. Both refuse a path that
 * is no mount's root (EINVAL): never the batch around it. */
static int make_readonly(const char *path)
{
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (!mount_setattr(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, &attr, sizeof(attr)))
        return 0;
    const unsigned long keep = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL) ? -errno : 0;
}

/* Remove everything inside the directory at path, looking at no more than
 * *budget entries (< 0: any number; what is left of it is written back):
 * -E2BIG when there were more. */
static int empty_dir(const char *path, long *budget)
{
    int fd = open_dir(AT_FDCWD, path);
    if (fd < 0)
        return fd;
    if (geteuid() != 0)
        fchmod(fd, S_IRWXU);
    struct removal rm = {.budget = *budget};
    int r = walk_tree(fd, remove_entry, true, &rm);
    *budget = rm.budget;
    if (rm.too_big)
        return -E2BIG;
    return r ? r : rm.err;
}

int tmpdir_seal(const char *path, long max_entries)
{
    int r = empty_dir(path, &max_entries);
    return r ? r : make_readonly(path);
}

/* A directory holding a mount of its own (the temp dir's tmpfs). */
static bool is_mount(const char *path)
{
    struct statx stx;
    return !statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, 0, &stx) &&
           (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
           (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* tmpdir_remove, looking at no more than budget entries (< 0: any number):
 * -E2BIG when there were more. */
static int remove_tree(const char *path, long budget)
{
    /* Its own tmpfs: detached now, freed by the kernel once no dying child
     * holds it any more. */
    if (is_mount(path) && umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW))
        return -errno;
    /* A few passes: a write still in flight in a dying child may add an
     * entry behind the walk. */
    int r = 0;
    for (int pass = 0; pass < 4; pass++) {
        if (!rmdir(path) || errno == ENOENT)
            return 0;
        if (errno == EBUSY && !umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW))
            continue; /* a mount is_mount could not tell (no statx attribute) */
        if (errno != ENOTEMPTY && errno != EEXIST)
            return -errno;
        r = empty_dir(path, &budget); /* budget: what is left for the next pass */
        if (r == -ENOENT)
            return 0;
        if (r == -E2BIG)
            return r;
    }
    if (!rmdir(path) || errno == ENOENT)
        return 0;
    return r ? r : -errno;
}

int tmpdir_remove(const char *path)
{
    return remove_tree(path, -1);
}

int tmpdir_remove_small(const char *path, long max_entries)
{
    return remove_tree(path, max_entries);
}
