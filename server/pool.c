/* Theory of operation
 *
 *   client ──TCP/HTTP──▶ ACCEPTOR (pyexecd: libuv, http-parser, jansson; never Python)
 *                          │  ctl: SOCK_SEQPACKET, fd 3 of the template.
 *                          │       IPC_SPAWN frames, each carrying a worker's
 *                          │       channel as SCM_RIGHTS. One way.
 *                          ▼
 *                        TEMPLATE (pyexecd --template-fd=3, exec'd with a clean
 *                          │  environment; CPython + numpy + pandas imported,
 *                          │  gc.freeze()d). Forks one WORKER per IPC_SPAWN.
 *                          ▼
 *   ACCEPTOR ◀──chan──▶  WORKER ×N (8 per CPU, as memory allows: budget.c; shares
 *                          │  the template's pages but its heap, which it moves
 *                          │  onto huge pages: forkheap.c; beyond --warm-workers,
 *                          │  exits when idle and is started again on demand)
 *     chan: SOCK_STREAM socketpair, ipc.h frames:
 *       acceptor → worker  IPC_REQUEST (one at a time), IPC_CANCEL
 *       worker → acceptor  IPC_READY (once), IPC_REPLY (one per REQUEST),
 *                          IPC_SPARE (its next child is forked and ready),
 *                          IPC_ASLEEP (the running script sleeps)
 *                          │ fork, one child per request, the next one forked
 *                          ▼ ahead of time (the "spare")
 *                        CHILD: fd 0 ◀ request pipe: IPC_REQUEST
 *                               fd 1 ▶ stdout pipe, raw bytes
 *                               fd 2 ▶ stderr pipe, raw bytes
 *                               fd 3 ▶ result pipe: IPC_READY, IPC_START, IPC_RESULT
 *                        (nice 10, SCHED_BATCH, nice 19 after a second of CPU;
 *                        oom_score_adj 1000: common/priority.h)
 *
 * Lifetimes: each process dies with its parent (PR_SET_PDEATHSIG). A worker
 * that dies is seen as EOF on its channel: its job is retried once on another
 * worker, then answered 500, and the template is asked for a replacement at
 * once (after a doubling delay if it died before READY: a failed set-up). A
 * template that dies takes its workers with it; the acceptor starts a
 * new one a second later. The acceptor never dies because a worker or child
 * did. Shutdown runs the other way: the acceptor closes the channels (workers
 * exit, killing their children), then ctl (the template waits for its workers
 * and exits), then waits for the template.
 *
 * The acceptor's side is four files, all sharing struct pool (pool_state.h):
 *   pool.c          this drawing; start, stats, parking idle workers, drain
 *                   and shutdown
 *   queue.c         the wait queue and dispatch (short scripts one per CPU at a
 *                   time, to the few workers that served last, the one whose spare
 *                   came last first: its memory is still in the CPU caches), while
 *                   the job's memory limit fits the budget (budget.c); starts
 *                   parked workers when jobs wait
 *   channel.c       one channel per worker: spawn requests, frames, a worker's death
 *   template_ctl.c  the template's exec, restart and, at shutdown, its end
 * The other processes: worker/template.c, worker/worker.c (with supervise.c
 * and reply.c), worker/child.c. */
#include "server/pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/channel.h"
#include "server/pool_state.h"
#include "server/queue.h"
#include "server/template_ctl.h"

#define TEMPLATE_EXIT_MS 3000

/* --- workers beyond the warm ones --------------------------------------- */

/* Why: each live process forked from the template is one more entry in the
 * kernel's reverse maps of each of the template's ~220 private mappings, and
 * every fork and exit of a child walks them: 16 idle workers with their spares
 * cost each request about 0.4 ms of CPU more than 2 do (BENCHMARKS.md, "Idle
 * workers"). So a worker beyond --warm-workers exits once it has been idle for
 * --worker-idle-ms, and starts again, like a replaced worker (a few tens of
 * ms), when jobs wait with no worker idle (queue.c, unpark). For workers to
 * go idle that long under load, dispatch keeps the ones in use few while
 * scripts are short (queue.c, queue_room and pick_worker). */

static void on_park_sent(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the worker's EOF (or a failed channel) ends the parking */
}

/* A worker slow to exit (its dying children, a big temp dir to remove) does
 * not hold its slot: after this long the slot is parked anyway. */
#define PARK_EXIT_MS 5000

static void on_park_overdue(uv_timer_t *t)
{
    struct pool_slot *s = t->data;
    if (s->state == SLOT_PARKING)
        pool_parked(s);
}

/* Ask the worker to exit: it reads EOF on its channel, ends its spare and
 * exits, and its EOF reaches pool_parked. */
static void park(struct pool_slot *s, uint64_t now)
{
    fprintf(stderr, "pyexecd: worker %u stopped after %.1f s idle\n", s->index,
            (now - s->idle_since) / 1e9);
    s->state = SLOT_PARKING;
    s->spare = false;
    uv_timer_start(&s->backoff, on_park_overdue, PARK_EXIT_MS, 0);
    if (uv_shutdown(&s->park, (uv_stream_t *)&s->chan, on_park_sent))
        pool_parked(s);
}

void pool_parked(struct pool_slot *s)
{
    uv_timer_stop(&s->backoff);
    s->state = SLOT_PARKED;
    if (s->chan_open && !uv_is_closing((uv_handle_t *)&s->chan))
        uv_close((uv_handle_t *)&s->chan, slot_closed); /* which dispatches: jobs may wait */
}

/* Park the workers idle longest, as long as more than the warm ones remain. */
static void on_park_due(uv_timer_t *t)
{
    struct pool *p = t->data;
    if (p->stopping)
        return;
    uint64_t now = uv_hrtime(), idle_ns = (uint64_t)p->cfg->worker_idle_ms * 1000000;
    unsigned live = 0;
    for (unsigned i = 0; i < p->nslots; i++)
        live += !slot_parked(p->slots[i].state);
    for (; live > (unsigned)p->cfg->warm_workers; live--) {
        struct pool_slot *oldest = NULL;
        for (unsigned i = 0; i < p->nslots; i++) {
            struct pool_slot *s = &p->slots[i];
            if (s->state == SLOT_IDLE && now - s->idle_since >= idle_ns &&
                (!oldest || s->idle_since < oldest->idle_since))
                oldest = s;
        }
        if (!oldest)
            break;
        park(oldest, now);
    }
}

void pool_start_parking(struct pool *p)
{
    uint64_t every = p->cfg->worker_idle_ms / 4;
    uv_timer_start(&p->park_timer, on_park_due, every, every);
}

/* --- start and stats ---------------------------------------------------- */

int pool_start(uv_loop_t *loop, const struct config *cfg, const char *exe, struct pool **out)
{
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->loop = loop;
    p->cfg = cfg;
    p->ctl = -1;
    snprintf(p->exe, sizeof(p->exe), "%s", exe);
    p->nslots = cfg->workers;
    p->slots = calloc(p->nslots, sizeof(*p->slots));
    if (!p->slots) {
        free(p);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < p->nslots; i++) {
        p->slots[i] = (struct pool_slot){.pool = p, .index = i, .state = SLOT_DOWN};
        uv_timer_init(loop, &p->slots[i].backoff);
        p->slots[i].backoff.data = &p->slots[i];
    }
    uv_timer_init(loop, &p->restart_timer);
    uv_timer_init(loop, &p->kill_timer);
    uv_timer_init(loop, &p->sweep_timer);
    uv_timer_init(loop, &p->stop_timer);
    uv_timer_init(loop, &p->park_timer);
    uv_timer_init(loop, &p->room_timer);
    p->restart_timer.data = p->kill_timer.data = p->sweep_timer.data = p->stop_timer.data = p;
    p->park_timer.data = p->room_timer.data = p;
    int r = template_name_scratch(p);
    if (!r)
        r = template_start(p);
    if (r) {
        free(p->slots);
        free(p);
        return r;
    }
    *out = p;
    return 0;
}

bool pool_ready(const struct pool *p)
{
    for (unsigned i = 0; i < p->nslots; i++) {
        const struct pool_slot *s = &p->slots[i];
        if (s->failures || (!p->ever_ready && (s->state == SLOT_DOWN || s->state == SLOT_STARTING)))
            return false;
    }
    return p->template_up;
}

void pool_get_stats(const struct pool *p, struct pool_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->workers = p->nslots;
    for (unsigned i = 0; i < p->nslots; i++) {
        st->ready += p->slots[i].state == SLOT_IDLE || p->slots[i].state == SLOT_BUSY;
        st->busy += p->slots[i].state == SLOT_BUSY;
        st->spares += p->slots[i].state == SLOT_IDLE && p->slots[i].spare;
        st->failing += p->slots[i].failures > 0;
        st->parked += slot_parked(p->slots[i].state);
    }
    if (p->budget) {
        st->memory_limit_mb = p->budget->limit_mb;
        st->memory_budget_mb = p->budget->budget_mb;
        st->memory_reserved_mb = p->budget->reserved_mb;
    }
    st->queued = p->queued;
    st->respawns = p->respawns;
}

const char *pool_versions(const struct pool *p)
{
    return p->versions;
}

void pool_on_fork_time(struct pool *p, void (*cb)(double seconds))
{
    p->fork_time_cb = cb;
}

const char *pool_sandbox(const struct pool *p)
{
    return p->sandbox;
}

void pool_set_budget(struct pool *p, struct budget *b)
{
    p->budget = b;
}

void pool_set_callbacks(struct pool *p, void (*ready)(void *), void (*fatal)(void *), void *data)
{
    p->ready_cb = ready;
    p->fatal_cb = fatal;
    p->cb_data = data;
}

/* --- drain and shutdown ------------------------------------------------- */

/* Every worker and the template are gone: close the timers and call
 * pool_stop's callback. */
static void pool_finish(struct pool *p)
{
    /* The template is gone: what it could not remove (it was killed) goes
     * now, unless a sweep already under way takes it. */
    if (!p->sweeping)
        template_sweep_scratch(p);
    for (unsigned i = 0; i < p->nslots; i++)
        if (p->slots[i].chan_open && !uv_is_closing((uv_handle_t *)&p->slots[i].chan))
            uv_close((uv_handle_t *)&p->slots[i].chan, slot_closed);
    uv_close((uv_handle_t *)&p->sweep_timer, NULL);
    uv_close((uv_handle_t *)&p->restart_timer, NULL);
    uv_close((uv_handle_t *)&p->kill_timer, NULL);
    uv_close((uv_handle_t *)&p->stop_timer, NULL);
    uv_close((uv_handle_t *)&p->park_timer, NULL);
    uv_close((uv_handle_t *)&p->room_timer, NULL);
    for (unsigned i = 0; i < p->nslots; i++)
        uv_close((uv_handle_t *)&p->slots[i].backoff, NULL);
    void (*cb)(void *) = p->stop_cb;
    p->stop_cb = NULL;
    if (cb)
        cb(p->stop_data);
}

/* Drained, or out of time: answer what is left, close every channel. */
static void on_stop_due(uv_timer_t *t)
{
    struct pool *p = t->data;
    while (p->head) {
        struct pool_job *j = p->head;
        queue_remove(p, j);
        job_fail(j, 503, "overloaded", "The service is shutting down; retry elsewhere.");
    }
    for (unsigned i = 0; i < p->nslots; i++) {
        struct pool_slot *s = &p->slots[i];
        if (s->job) {
            struct pool_job *j = s->job;
            s->job = NULL;
            j->slot = NULL;
            job_fail(j, 503, "overloaded", "The service is shutting down; retry elsewhere.");
        }
        slot_release(s);
        s->state = SLOT_DOWN;
        if (s->chan_open && !uv_is_closing((uv_handle_t *)&s->chan))
            uv_close((uv_handle_t *)&s->chan, slot_closed);
    }
    bool any_open = false;
    for (unsigned i = 0; i < p->nslots; i++)
        any_open |= p->slots[i].chan_open;
    if (!any_open && p->ctl >= 0) {
        close(p->ctl);
        p->ctl = -1;
    }
    if (!p->template_up && !uv_is_closing((uv_handle_t *)&p->stop_timer))
        pool_finish(p); /* it is gone already: nobody else will finish */
    else if (p->template_up)
        template_kill_after(p, TEMPLATE_EXIT_MS);
}

void pool_stop_now(struct pool *p)
{
    uv_timer_start(&p->stop_timer, on_stop_due, 0, 0);
}

void pool_check_drained(struct pool *p)
{
    if (!p->stopping || !p->stop_cb)
        return;
    bool busy = p->head != NULL;
    for (unsigned i = 0; i < p->nslots; i++)
        busy |= p->slots[i].state == SLOT_BUSY;
    if (!busy)
        pool_stop_now(p);
}

void pool_stop(struct pool *p, uint64_t timeout_ms, void (*cb)(void *), void *data)
{
    if (p->stopping)
        return;
    p->stopping = true;
    p->stop_cb = cb;
    p->stop_data = data;
    template_no_restart(p);
    uv_timer_start(&p->stop_timer, on_stop_due, timeout_ms, 0);
    dispatch(p); /* re-arms the stop timer at 0 if nothing is running */
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->nslots; i++)
        free(p->slots[i].buf);
    free(p->slots);
    free(p->versions);
    free(p->sandbox);
    free(p);
}
