/* The private temp dir of one child: made by the worker before the fork,
 * owned by the sandbox uid, removed after the child is done without ever
 * following a link the script planted. Where the worker may mount, each temp
 * dir is a tmpfs of its own, so the kernel caps its bytes and files; a
 * finished one is emptied and sealed read-only, or unmounted whole, and the
 * batch it sits in is unmounted with all of them at once. Elsewhere it is a
 * plain directory that supervise.c measures and this file removes entry by
 * entry. Runs in the worker (dying.c says when); tmpdir_remove also in the
 * template (a reaped worker's scratch dir) and the acceptor (a killed
 * template's, server/template_ctl.c). */
#ifndef PYEXEC_TMPDIR_H
#define PYEXEC_TMPDIR_H

#include <stddef.h>
#include <sys/types.h>

#define TMPDIR_PATH_MAX 128
/* Files and directories one temp dir may hold: a tmpfs's nr_inodes, or where
 * there is none, a tree measured bigger counts as over any byte cap. Bounds
 * the kernel memory a script's empty files cost and the worker's time to
 * measure and remove them. */
#define TMPDIR_MAX_ENTRIES 10000

/* Make a fresh 0700 directory under base with a random name (mkdtemp), owned
 * by uid/gid when they are not -1. When tmpfs_kb > 0, mount a tmpfs of that
 * many KiB and TMPDIR_MAX_ENTRIES inodes on it (the caller must be allowed to
 * mount). base must be a directory the service made for this purpose (the
 * worker's scratch dir, or a batch in it), never a shared one such as /tmp:
 * its mode is set back as tmpdir_keep_mode does. path receives its name.
 * Returns 0 or -errno. */
int tmpdir_create(char path[TMPDIR_PATH_MAX], const char *base, uid_t uid, gid_t gid,
                  size_t tmpfs_kb);

/* Give dir back mode 0711 when it differs: run as a normal user, a script
 * shares the worker's uid and so may chmod the dirs above its temp dir
 * (Landlock does not govern chmod); the worker passes anyway, in its user
 * namespace, but the next child, without capabilities, would not. Returns 0
 * or -errno. */
int tmpdir_keep_mode(const char *dir);

/* A batch: a small tmpfs of its own, made in base (the worker's scratch dir)
 * with room for dirs temp dirs, each made in it by tmpdir_create and, once
 * its child is gone, sealed there (tmpdir_seal) instead of unmounted; one
 * tmpdir_remove of the batch then unmounts all of them at once. Why: every
 * unmount waits for an RCU grace period, which the kernel expedites by
 * interrupting every CPU; one for a batch costs what one for each temp dir
 * did. path receives its name. Returns 0 or -errno. */
#define TMPDIR_BATCH_KB 64
int tmpdir_batch_create(char path[TMPDIR_PATH_MAX], const char *base, int dirs);

/* A tmpfs temp dir whose child is gone (nothing can write there any more):
 * everything in it removed and its mount made read-only, so it holds no
 * memory and no later script can fill it, while it stays mounted until its
 * batch goes. Looks at no more than max_entries entries (a directory counts
 * again once emptied): -E2BIG, with part of the tree removed, when there are
 * more (the caller then unmounts it). Returns 0 or -errno. */
int tmpdir_seal(const char *path, long max_entries);

/* Bytes the directory holds (allocated blocks, every file and subdirectory),
 * counted until they pass limit: the return value is then > limit. A tree of
 * more than TMPDIR_MAX_ENTRIES entries counts as over any limit. Negative:
 * -errno. */
long long tmpdir_usage(const char *path, long long limit);

/* Remove the directory and everything in it, at any depth (a tmpfs of its own
 * is unmounted, lazily when a dying child still uses it). A directory the
 * script made unreadable is made readable again first, where the worker owns
 * it. Returns 0 (also when it is already gone) or -errno. */
int tmpdir_remove(const char *path);

/* tmpdir_remove for a small tree: it looks at no more than max_entries
 * entries (a directory counts again once emptied) and returns -E2BIG, with
 * part of the tree removed, when there are more (the caller then removes the
 * rest with tmpdir_remove, in a process of its own). */
int tmpdir_remove_small(const char *path, long max_entries);

#endif
