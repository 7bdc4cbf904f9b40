/* One request's life in a child, seen from the worker: wait for the child's
 * READY, hand it the request, collect stdout, stderr and the result under the
 * wall-clock deadline, notice cancellation and death. Owns struct run (what
 * was collected). Called by worker.c's serve(); runs in the worker. */
#ifndef PYEXEC_SUPERVISE_H
#define PYEXEC_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/child.h"
#include "common/ipc.h"

struct files_out; /* worker/files.h */

struct capture {
    char *data;
    size_t len, alloc;
    size_t cap; /* the most kept; the rest is read and dropped */
    bool truncated;
};

enum run_end {
    RUN_RESULT,      /* a whole frame after START: its result, or tampering */
    RUN_DIED,        /* the child exited or was killed without a result */
    RUN_TIMEOUT,     /* wall-clock deadline: killed */
    RUN_CANCELLED,   /* the acceptor cancelled (client gone): killed */
    RUN_OVERSIZE,    /* the result frame passed its cap: killed */
    RUN_DISK_FULL,   /* the temp dir passed its cap: killed */
    RUN_SETUP_FAILED /* the child failed before the script ran: READY or START */
};

struct run {
    enum run_end end;
    struct capture out, err;
    char *result; /* RUN_RESULT: the IPC_RESULT payload; NULL if the channel held
                   * anything but that one frame after START */
    size_t result_len;
    int wait_status; /* from wait4, once reaped */
    bool reaped;
    bool killed;     /* stopped at its result: SIGKILLed, not yet reaped */
    bool oom_killed; /* SIGKILL while the kernel's OOM kill count rose: out of memory */
    /* The kernel's, never the child's word: its CPU clock and VmHWM when it
     * stopped at its result, else wait4's rusage. */
    uint64_t cpu_us, max_rss_kb;
    double wall_ms; /* the worker's clock, from the request to the result or the exit */
    char setup_error[160];
    const struct files_out *files; /* set by the worker after collecting out/; NULL: none */
};

struct supervise_params {
    uint32_t timeout_ms;
    size_t output_cap; /* each of stdout and stderr */
    size_t result_cap; /* the result frame's payload: the value's cap and room for an error */
    int cancel_fd;     /* readable: a frame from the acceptor (IPC_CANCEL) or EOF */
    int asleep_fd;     /* > 0: where IPC_ASLEEP goes (the acceptor's channel); 0: nowhere */
    double sent_ms;    /* CLOCK_MONOTONIC ms when the acceptor sent the request; 0: unknown */
    int sigchld_fd;    /* readable: some child changed state */
    /* > 0: the temp dir's cap in bytes, enforced by measuring it every
     * 10 ms (where no tmpfs of that size enforces it already): a script can
     * overshoot by what it writes in 10 ms, never by more. */
    long long disk_cap;
};

/* Wait for child c's READY: its set-up done, confined, waiting for its
 * request (c->ready). Returns 0, or -1 with run filled as supervise_run
 * fills it for a set-up failure (RUN_SETUP_FAILED, the child killed and
 * reaped). The worker calls it right after forking a spare, before it tells
 * the acceptor the spare is ready; supervise_run calls it when that did not
 * happen. */
int supervise_ready(struct child *c, struct run *run);

/* Run the request frame payload (struct ipc_request + data) in child c.
 * Fills *run; free its buffers with run_free. The child is dead or dying in
 * every outcome: reaped (killed first unless it exited by itself), or, when
 * it stopped at its result, SIGKILLed and left for the caller to reap off the
 * request path (run->killed). */
void supervise_run(struct child *c, const char *request, size_t request_len,
                   const struct supervise_params *sp, struct run *run);

/* Make sure the child is dead and reaped: after a result it may still be
 * tearing down, its threads not yet gone. For what must wait for that (files
 * it left, read once nothing can still write them); the stats stay those
 * taken at the result. */
void supervise_finish(struct child *c, struct run *run);

/* After the reply, before the worker's next fork: give a child killed at
 * its result up to max_ms to die, and reap it (sigchld_fd: the SIGCHLD
 * self-pipe, drained). Its teardown and the fork of the next child then do
 * not run at once: both walk the same shared pages and locks of the
 * worker's memory, and each slows the other. One still not gone (a thread
 * stuck in the kernel) is left to the dying list. */
void supervise_settle(struct child *c, struct run *run, int sigchld_fd, int max_ms);

/* Wipe and free what run holds. */
void run_free(struct run *run);

#endif
