/* The pool's state, shared by the files that make up the acceptor's side of
 * the process tree: pool.c (start, stats, shutdown), queue.c (the wait queue
 * and dispatch), channel.c (one channel per worker) and template_ctl.c (the
 * template's life cycle). Nothing outside those files includes it; everyone
 * else sees struct pool through server/pool.h only. Runs in the acceptor, on
 * its libuv loop (single-threaded: no locks). */
#ifndef PYEXEC_POOL_STATE_H
#define PYEXEC_POOL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/config.h"
#include "server/budget.h"
#include "server/pool.h"

/* PARKING and PARKED: a worker beyond --warm-workers, idle too long, asked to
 * exit (its channel shut for writing) and then gone; it is started again when
 * jobs wait for a worker (pool.c). Unlike DOWN, nothing restarts it. */
enum slot_state { SLOT_DOWN, SLOT_STARTING, SLOT_IDLE, SLOT_BUSY, SLOT_PARKING, SLOT_PARKED };

static inline bool slot_parked(enum slot_state st)
{
    return st == SLOT_PARKING || st == SLOT_PARKED;
}

/* One worker as the acceptor sees it: the channel to it and its job. */
struct pool_slot {
    struct pool *pool;
    uint32_t index;
    enum slot_state state;
    uv_pipe_t chan;
    bool chan_open;
    struct pool_job *job; /* BUSY: the job it serves, NULL if cancelled */
    uint64_t idle_since;  /* uv_hrtime() when it last became idle */
    uint64_t busy_since;  /* uv_hrtime() when its last job was sent (queue.c) */
    bool asleep;          /* BUSY: its worker found the script asleep (IPC_ASLEEP) */
    bool spare;           /* its next child is ready (IPC_SPARE since its last REPLY) */
    bool served;          /* it has been sent a request since its READY */
    bool failed;          /* its last reply was a 5xx: the service's failure, not the script's */
    uint64_t spare_since; /* uv_hrtime() of that IPC_SPARE */
    char *buf;            /* bytes read, not yet a whole frame */
    size_t len, alloc;
    uint64_t reserved_mb; /* BUSY: what its script holds of the memory budget */
    unsigned failures;    /* set-up failures in a row (the worker died before READY) */
    uv_timer_t backoff;   /* channel.c: asks for a worker again after a failed set-up;
                           * pool.c: how long a parking worker may take to exit */
    uv_shutdown_t park;   /* pool.c: PARKING's shutdown of the channel */
};

struct pool {
    uv_loop_t *loop;
    const struct config *cfg;
    char exe[4096];
    uv_process_t template;
    bool template_up, ever_ready, stopping;
    int ctl; /* our end of the template's ctl socket */
    /* Every scratch dir of this service's workers is named scratch_prefix
     * followed by mkdtemp's six characters (template_ctl.c). */
    char scratch_prefix[64];
    char scratch_arg[96];     /* --template-scratch=scratch_prefix */
    uv_work_t sweep;          /* template_ctl.c: a dead template's leftovers... */
    bool sweeping;            /* ...being removed, on the loop's thread pool */
    uv_timer_t restart_timer; /* template_ctl.c: start a dead template again */
    uv_timer_t kill_timer;    /* template_ctl.c: end a template slow to exit at shutdown */
    uv_timer_t sweep_timer;   /* queue.c: answer requests that waited too long */
    uv_timer_t stop_timer;    /* pool.c: the drain deadline */
    uv_timer_t park_timer;    /* pool.c: parks workers idle too long */
    uv_timer_t room_timer;    /* queue.c: dispatch when a running job stops holding room */
    struct pool_slot *slots;
    unsigned nslots;
    struct pool_job *head, *tail; /* the wait queue */
    struct budget *budget;        /* admission (server/budget.h); NULL: none */
    unsigned queued;
    uint64_t respawns;
    char *versions, *sandbox;
    void (*fork_time_cb)(double);
    void (*ready_cb)(void *);
    void (*fatal_cb)(void *);
    void *cb_data;
    void (*stop_cb)(void *);
    void *stop_data;
};

/* pool.c: once stopping, called whenever a job ends; when nothing is queued
 * or running it brings the drain deadline forward to now. */
void pool_check_drained(struct pool *p);

/* pool.c: a parking worker's channel reached EOF (it has exited) or failed. */
void pool_parked(struct pool_slot *s);

/* pool.c: once stopping, end the drain now: answer every job still queued
 * or running 503, close the channels, and finish once the template is gone
 * (the template died while stopping: its workers' jobs cannot finish). */
void pool_stop_now(struct pool *p);

#endif
