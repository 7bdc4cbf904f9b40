/* The acceptor's view of the process tree: it starts the template, asks it for
 * workers, keeps a channel to each, queues jobs (bounded FIFO with a wait
 * deadline) and hands each to an idle worker. The interface of pool.c,
 * queue.c, channel.c and template_ctl.c (the drawing at the top of pool.c).
 * Runs in the acceptor, on its libuv loop; called by server/main.c (life
 * cycle), server/routes.c (jobs, stats) and server/selftest.c. */
#ifndef PYEXEC_POOL_H
#define PYEXEC_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/config.h"

struct pool;
struct pool_slot;

struct pool_job {
    /* Set by the caller before pool_submit. */
    char *frame; /* IPC_REQUEST payload; the pool takes it (and frees it) */
    size_t frame_len;
    /* Called exactly once unless pool_cancel came first: the worker's answer,
     * or the pool's own (503 overloaded, 500 internal). */
    void (*done)(struct pool_job *job, int status, const char *type, const char *body, size_t len);
    /* Set by the pool before done: bytes of out/ files in the worker's answer. */
    uint64_t files_out_bytes;
    /* The pool's. */
    struct pool_job *prev, *next;
    struct pool_slot *slot;
    uint64_t queued_ns;     /* uv_hrtime() when submitted */
    uint64_t dispatched_ns; /* ... and when last handed to a worker */
    int attempts;
};

struct pool_stats {
    unsigned workers, ready, busy, queued;
    unsigned spares;  /* idle workers whose next child is ready (IPC_SPARE) */
    unsigned failing; /* workers whose set-up failed last time, waiting to retry */
    unsigned parked;  /* workers stopped while idle, started again on demand */
    uint64_t respawns;
    /* server/budget.h's limit_mb, budget_mb, reserved_mb; 0 without a budget */
    uint64_t memory_limit_mb, memory_budget_mb, memory_reserved_mb;
};

struct budget;

/* Admit a job only while its script's memory limit fits b (server/budget.h);
 * the rest wait in the queue. Called once, before the first job. */
void pool_set_budget(struct pool *p, struct budget *b);

/* Called with each reply's report of its worker's last spare fork (seconds). */
void pool_on_fork_time(struct pool *p, void (*cb)(double seconds));

/* Start the template (exe re-executed with --template-fd) and the workers. */
int pool_start(uv_loop_t *loop, const struct config *cfg, const char *exe, struct pool **out);

/* 0: the job runs now or waits; -EAGAIN: the queue is full; -ESHUTDOWN. */
int pool_submit(struct pool *p, struct pool_job *job);

/* The client left: forget the job (its child is killed); done is not called. */
void pool_cancel(struct pool *p, struct pool_job *job);

/* Serving: every worker started and warm the first time; after that, the
 * template up and no worker failing its set-up (one being replaced or started
 * on demand does not count). */
bool pool_ready(const struct pool *p);

/* From now on, park workers beyond --warm-workers idle for --worker-idle-ms
 * (pool.c). Called once the self-test has run, which needs every worker. */
void pool_start_parking(struct pool *p);

void pool_get_stats(const struct pool *p, struct pool_stats *st);

/* {"python": ..., "numpy": ..., "pandas": ...} once a worker has reported, else NULL. */
const char *pool_versions(const struct pool *p);

/* The confinement layers a worker reported (seccomp/status.h's JSON), or NULL. */
const char *pool_sandbox(const struct pool *p);

/* ready: every worker is warm for the first time. fatal: the template died
 * before that, so the service cannot start (Python, numpy or pandas missing,
 * sandbox refused...). */
void pool_set_callbacks(struct pool *p, void (*ready)(void *), void (*fatal)(void *), void *data);

/* Free what is left once pool_stop's callback has run (or after a fatal
 * start) and the loop has ended. */
void pool_free(struct pool *p);

/* Stop taking jobs; let running and queued ones finish within timeout_ms,
 * answer the rest 503; then stop workers and template and call cb. */
void pool_stop(struct pool *p, uint64_t timeout_ms, void (*cb)(void *data), void *data);

#endif
