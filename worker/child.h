/* The per-request child: forked by a worker ahead of its request (a "spare"),
 * it sets itself up and confines itself, says READY, then runs exactly one
 * request. child_spawn runs in the worker; everything after the fork in child.c
 * runs in the child. */
#ifndef PYEXEC_CHILD_H
#define PYEXEC_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "seccomp/policy.h"
#include "seccomp/rlimits.h"
#include "worker/tmpdir.h"

struct child_params {
    struct rlimits_spec limits; /* the server's caps; a request may only lower them */
    uid_t uid;                  /* run as this uid/gid when the worker is root; -1: stay */
    gid_t gid;
    size_t result_cap;         /* bytes of result JSON */
    size_t tmpfs_kb;           /* > 0: each temp dir is a tmpfs of this size (tmpdir.h) */
    struct policy_prog policy; /* compiled once by the worker */
    int proc_fd; /* /proc, opened before the worker's mount namespace made it read-only; 0: none */
    sigset_t handled; /* signals the worker does not leave at SIG_DFL (child_note_signals) */
};

/* The worker's handle on one child. */
struct child {
    pid_t pid;
    int req_fd; /* write end of the child's fd 0: the request frame */
    int out_fd; /* read ends of the child's fds 1 and 2 (non-blocking) */
    int err_fd;
    int res_fd;        /* read end of the child's fd 3: READY, then RESULT (non-blocking) */
    int64_t oom_kills; /* the kernel's OOM kill count at its fork, <= 1 s old (-1: not shown) */
    bool ready;        /* its READY came: set-up done (supervise_ready) */
    char tmpdir[TMPDIR_PATH_MAX];
};

/* The kernel's OOM kill count (priority_oom_kills; -1: not shown), read
 * again when fresh or when the last read is a second old: /proc/vmstat is
 * some 180 counters the kernel formats on every read, tens of microseconds a
 * request for a number that rarely moves, and a spare may wait far longer
 * than a second for its request anyway. Runs in the worker. */
int64_t child_oom_kills(bool fresh);

/* Note in p->handled each signal whose disposition is not SIG_DFL: the ones
 * a child must set back (the worker changes 4; setting all 64 back was 64
 * system calls in every child). Called by the worker once its own
 * dispositions are final, before its first child: a disposition changed
 * later would reach children (test_escape.py checks what a script sees). */
void child_note_signals(struct child_params *p);

/* Fork a child that prepares itself and waits for its request, its temp dir
 * made in base (dying_tmpdir_base). Returns 0 or -errno; on failure nothing
 * is left behind. */
int child_spawn(const struct child_params *p, const char *base, struct child *c);

/* Close the worker's ends (idempotent). */
void child_close_fds(struct child *c);

#endif
