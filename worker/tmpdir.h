/* The private temp dir of one child: made by the worker before the fork,
 * owned by the sandbox uid, removed after the child is reaped without ever
 * following a link the script planted. Runs in the worker. */
#ifndef PYEXEC_TMPDIR_H
#define PYEXEC_TMPDIR_H

#include <sys/types.h>

#define TMPDIR_PATH_MAX 128

/* Make a fresh 0700 directory under base; chown it to uid/gid when they are
 * not -1. path receives its name. Returns 0 or -errno. */
int tmpdir_create(char path[TMPDIR_PATH_MAX], const char *base, uid_t uid, gid_t gid);

/* Bytes the directory holds (allocated blocks, every file and subdirectory),
 * counted until they pass limit: the return value is then > limit. A tree of
 * more than 10,000 entries counts as over any limit. Negative: -errno. */
long long tmpdir_usage(const char *path, long long limit);

/* Remove the directory and everything in it. Returns 0 or -errno. */
int tmpdir_remove(const char *path);

#endif
