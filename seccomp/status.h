/* The confinement layers the children actually get, probed once in the worker
 * at start and reported by /health. Called by the worker (probe) and by
 * whoever builds /health (JSON); never by the child. */
#ifndef PYEXEC_STATUS_H
#define PYEXEC_STATUS_H

#include <stddef.h>
#include <sys/types.h>

struct sandbox_status {
    int seccomp;      /* 1: this kernel has seccomp filters */
    int kill_process; /* 1: bad-arch action is KILL_PROCESS, 0: KILL_THREAD */
    int landlock_abi; /* 0: unavailable */
    int namespaces;   /* what namespaces_enter() returned (mask) */
    int privdrop;     /* 1: started as root, children drop to uid/gid */
    uid_t uid;        /* the uid children run as */
    gid_t gid;
    int no_new_privs; /* always set in the child; 1 here means prctl works */
};

/* Fill st: uid/gid are privdrop_resolve's result, namespaces what
 * namespaces_enter returned in this worker. */
void sandbox_status_probe(struct sandbox_status *st, uid_t uid, gid_t gid, int namespaces);

/* {"seccomp":true,"seccomp_bad_arch":"kill_process","landlock":7,
 *  "namespaces":["net","ipc","mount-ro"],"uid":65534,"privdrop":true,
 *  "no_new_privs":true} ("landlock":"unavailable" when the ABI is 0).
 * Returns the length written or -ENOSPC. */
int sandbox_status_json(const struct sandbox_status *st, char *buf, size_t len);

#endif
