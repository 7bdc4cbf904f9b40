/* Privilege drop of the per-request child: supplementary groups, gid, uid,
 * every capability, no_new_privs. Part of the sandbox (seccomp/):
 * privdrop_resolve and privdrop_bounding_set run once in the worker at start;
 * privdrop_apply and privdrop_no_new_privs run in the child, called by
 * sandbox_confine (confine.c) after rlimits and before Landlock and seccomp. */
#ifndef PYEXEC_PRIVDROP_H
#define PYEXEC_PRIVDROP_H

#include <sys/types.h>

/* Turn the --user string into ids: a number ("65534": uid and gid both that
 * number) or a user name (its passwd uid and primary gid). Root (0) is
 * refused. Returns 0 or -errno (-ENOENT: no such user, -EINVAL: root or
 * malformed). */
int privdrop_resolve(const char *user, uid_t *uid, gid_t *gid);

/* When running as root: no supplementary groups, real/effective/saved gid and
 * uid set to gid/uid, the capability bounding and ambient sets emptied, and
 * checked afterwards (no capability left, setuid(0) refused). Not root: only
 * the check that no capability is held. Either way the process is made
 * non-dumpable: no core file, and no other process running as the same uid
 * (every other child) may ptrace it or read its /proc/<pid>/mem or environ.
 * Returns 0 or -errno. */
int privdrop_apply(uid_t uid, gid_t gid);

/* Empty the calling process's capability bounding set; its effective and
 * permitted sets stay. Run once by the worker at start (after it entered
 * its user namespace, which starts with a full set): every child inherits
 * the empty set, and privdrop_apply then finds nothing left to drop. Returns
 * 0 or -errno (-EPERM without CAP_SETPCAP: the children then drop it). */
int privdrop_bounding_set(void);

/* PR_SET_NO_NEW_PRIVS: nothing exec'd could gain privileges; required by
 * Landlock and by seccomp for an unprivileged process. Returns 0 or -errno. */
int privdrop_no_new_privs(void);

#endif
