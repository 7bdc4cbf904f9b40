/* Namespaces of a worker, entered once when the worker is spawned (before it
 * starts any thread or child) so every child inherits them at no per-request
 * cost: an empty network namespace, a private SysV IPC namespace, and a
 * read-only mount view with one writable scratch dir and a /proc that hides
 * other users' processes. Runs in the worker process, called once by
 * worker_setup() (worker/worker.c) as it starts; namespaces_user_possible
 * runs in the acceptor. */
#ifndef PYEXEC_NAMESPACES_H
#define PYEXEC_NAMESPACES_H

#include <stddef.h>

enum namespaces_granted {
    NAMESPACES_NET = 1 << 0,           /* no interface but a down loopback */
    NAMESPACES_IPC = 1 << 1,           /* SysV IPC and POSIX queues of its own */
    NAMESPACES_MOUNT_RO = 1 << 2,      /* every mount read-only except scratch_dir */
    NAMESPACES_SCRATCH_TMPFS = 1 << 3, /* scratch_dir is a tmpfs of scratch_kb */
    NAMESPACES_PROC_PRIVATE = 1 << 4,  /* /proc shows a process only to who may ptrace it */
    NAMESPACES_USER = 1 << 5,          /* a user namespace of its own (started as a normal user) */
};

/* Whether this process could enter a user namespace as a worker does
 * (namespaces_enter_user, maps included): asked of a child forked for the
 * purpose, so nothing here changes. 1 yes, 0 no, -errno when it could not be
 * asked (fork failed). Called by
 * the acceptor at start-up, before it forks anything else: started as a
 * normal user, pyexecd refuses to run without (server/main.c). */
int namespaces_user_possible(void);

/* Started as a normal user, enter a user namespace of the worker's own first
 * (its uid and gid mapped to themselves, no supplementary groups): it gives
 * the worker the right to enter the namespaces below, and makes RLIMIT_NPROC
 * count only the tasks inside it. Call before namespaces_enter. Returns 1
 * when entered, 0 when the host refuses unprivileged user namespaces (nothing
 * changed), or -errno when it failed halfway (the caller must not go on). */
int namespaces_enter_user(void);

/* Enter what the host grants, skipping silently what it refuses (no
 * CAP_SYS_ADMIN, gVisor, a seccomp profile). scratch_dir must exist: it is
 * where the worker creates the children's temp dirs, so it stays writable;
 * when scratch_kb > 0 and a mount namespace is granted, a private tmpfs of
 * that size is mounted on it, which caps what children can write there in
 * total. Returns the granted set (a mask of the enum above, 0 when the host
 * refuses everything), or -EROFS in the one case the worker cannot go on:
 * the view turned read-only and the scratch dir could not be made writable
 * again. */
int namespaces_enter(const char *scratch_dir, size_t scratch_kb);

/* JSON array of the granted namespaces' names, e.g. ["net","ipc","mount-ro"],
 * into buf. Returns the length written, or -ENOSPC. */
int namespaces_json(unsigned granted, char *buf, size_t len);

#endif
