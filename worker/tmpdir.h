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

/* Remove the directory and everything in it. Returns 0 or -errno. */
int tmpdir_remove(const char *path);

#endif
