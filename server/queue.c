/* The wait queue and dispatch. See queue.h; the drawing is in pool.c. */
#include "server/queue.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc.h"
#include "server/channel.h"

#define QUEUE_SWEEP_MS 50

static void on_sweep(uv_timer_t *t);

void queue_push(struct pool *p, struct pool_job *j, bool front)
{
    if (!uv_is_active((uv_handle_t *)&p->sweep_timer))
        uv_timer_start(&p->sweep_timer, on_sweep, QUEUE_SWEEP_MS, QUEUE_SWEEP_MS);
    j->prev = j->next = NULL;
    if (!p->head) {
        p->head = p->tail = j;
    } else if (front) {
        j->next = p->head;
        p->head->prev = j;
        p->head = j;
    } else {
        j->prev = p->tail;
        p->tail->next = j;
        p->tail = j;
    }
    p->queued++;
}

void queue_remove(struct pool *p, struct pool_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        p->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->tail = j->prev;
    j->prev = j->next = NULL;
    p->queued--;
}

void job_free_frame(struct pool_job *j)
{
    free(j->frame);
    j->frame = NULL;
}

void job_fail(struct pool_job *j, int status, const char *type, const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "error", msg, "type", type);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    job_free_frame(j);
    j->done(j, status, type, body ? body : "{}", body ? strlen(body) : 2);
    free(body);
}

/* Requests that waited past the deadline: 503. */
static void on_sweep(uv_timer_t *t)
{
    struct pool *p = t->data;
    uint64_t now = uv_hrtime();
    uint64_t limit = (uint64_t)p->cfg->queue_timeout_ms * 1000000;
    while (p->head && now - p->head->queued_ns >= limit) {
        struct pool_job *j = p->head;
        queue_remove(p, j);
        job_fail(j, 503, "overloaded",
                 "No worker, or no memory for the script, came free in time; retry later.");
    }
    if (!p->head)
        uv_timer_stop(&p->sweep_timer);
}

#define SHORT_NS ((uint64_t)IPC_SHORT_MS * 1000000)

/* A job that still holds back the next ones (queue_room): sent within
 * SHORT_NS and not found asleep; ipc.h (IPC_SHORT_MS) says why. */
static bool counts(const struct pool_slot *s, uint64_t now)
{
    return s->state == SLOT_BUSY && !s->asleep && now - s->busy_since < SHORT_NS;
}

/* A worker that may be "hot": idle, or busy with a job that still counts,
 * and its last answer was not a 5xx. A long or sleeping script's worker
 * gives up its place, so that jobs one at a time go to two idle workers in
 * turn. */
static bool may_be_hot(const struct pool_slot *s, uint64_t now)
{
    return s->served && !s->failed && (s->state == SLOT_IDLE || counts(s, now));
}

static int later_first(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

/* When the last of the --warm-workers (at least 2) workers that may be hot
 * and were sent a job last got theirs (0: none yet): those workers are
 * "hot". At least two, so that one job at a time never waits for a
 * worker's next child: the other one's is ready. */
static uint64_t hot_since(const struct pool *p, uint64_t now)
{
    unsigned warm = p->cfg->warm_workers > 2 ? p->cfg->warm_workers : 2, n = 0;
    uint64_t sent[CONFIG_WORKERS_MAX];
    for (unsigned i = 0; i < p->nslots; i++)
        if (may_be_hot(&p->slots[i], now))
            sent[n++] = p->slots[i].busy_since;
    if (!n)
        return 0;
    qsort(sent, n, sizeof(*sent), later_first);
    return sent[(n < warm ? n : warm) - 1];
}

static bool hot(const struct pool_slot *s, uint64_t since, uint64_t now)
{
    return since && may_be_hot(s, now) && s->busy_since >= since;
}

/* Which idle worker takes the next job:
 *  - one that has not served since it started: the self-test's probes reach
 *    every worker even when the memory budget runs fewer scripts at once
 *    than there are workers, and a started or replaced worker is tried at
 *    once;
 *  - then one whose last answer was not a 5xx: a broken worker (answering
 *    at once, so always idle) would otherwise fail every job it is offered;
 *  - then a hot one (hot_since), even if its next child is not ready yet:
 *    the job waits for it (a few ms on a busy machine), but short scripts
 *    take turns on as few workers as run at once (queue_room) and the rest
 *    go cold, to be parked (pool.c), rather than each being woken now and
 *    then for a job that found the hot ones' spares not ready;
 *  - then one whose next child is ready (IPC_SPARE): the job starts at once;
 *  - among those, the one whose spare came last: its memory and page tables
 *    are the likeliest still in the CPU's caches;
 *  - with no spare ready, the one idle the longest: nearest the end of its
 *    fork. */
static bool better(const struct pool_slot *a, const struct pool_slot *b, uint64_t since,
                   uint64_t now)
{
    if (a->served != b->served)
        return !a->served;
    if (a->failed != b->failed)
        return !a->failed;
    if (hot(a, since, now) != hot(b, since, now))
        return hot(a, since, now);
    if (a->spare != b->spare)
        return a->spare;
    if (!a->spare)
        return a->idle_since < b->idle_since;
    return a->spare_since > b->spare_since;
}

static struct pool_slot *pick_worker(struct pool *p, uint64_t now)
{
    uint64_t since = hot_since(p, now);
    struct pool_slot *best = NULL;
    for (unsigned i = 0; i < p->nslots; i++) {
        struct pool_slot *s = &p->slots[i];
        if (s->state == SLOT_IDLE && (!best || better(s, best, since, now)))
            best = s;
    }
    return best;
}

/* What the job's script may use: its memory limit (the request's, already
 * capped by the server's) and temp dir. */
static uint64_t job_memory_mb(const struct pool *p, const struct pool_job *j)
{
    struct ipc_request rq;
    memcpy(&rq, j->frame, sizeof(rq));
    return budget_script_mb(p->budget, rq.memory_mb);
}

static void on_room_due(uv_timer_t *t)
{
    dispatch(t->data);
}

/* How many more jobs may start now: --warm-workers (one per CPU) less the
 * jobs that still count (counts()); *oldest: when the first of those was
 * sent (now if none). Each worker kept busy is also one more that stays out of
 * the parked ones (pool.c) and makes every fork dearer. A burst of long
 * scripts gets every worker as fast as parked ones start. */
static unsigned queue_room(const struct pool *p, uint64_t now, uint64_t *oldest)
{
    unsigned young = 0, warm = p->cfg->warm_workers > 0 ? p->cfg->warm_workers : 1;
    *oldest = now;
    for (unsigned i = 0; i < p->nslots; i++) {
        const struct pool_slot *s = &p->slots[i];
        if (counts(s, now)) {
            young++;
            *oldest = s->busy_since < *oldest ? s->busy_since : *oldest;
        }
    }
    return young < warm ? warm - young : 0;
}

/* Jobs wait that room lets start, more than idle or starting workers can
 * take: start that many parked workers (also while draining at shutdown:
 * the queued jobs may still finish). */
static void unpark(struct pool *p, unsigned room)
{
    if (!p->template_up || !p->head)
        return;
    long want = p->queued < room ? p->queued : room;
    for (unsigned i = 0; i < p->nslots; i++)
        want -= p->slots[i].state == SLOT_IDLE || p->slots[i].state == SLOT_STARTING;
    for (unsigned i = 0; i < p->nslots && want > 0; i++) {
        struct pool_slot *s = &p->slots[i];
        if (s->state == SLOT_PARKED && !s->chan_open) {
            slot_request_spawn(s);
            want--;
        }
    }
}

void dispatch(struct pool *p)
{
    uint64_t now = uv_hrtime(), oldest;
    unsigned room = queue_room(p, now, &oldest);
    struct pool_slot *s;
    while (p->head && room && (s = pick_worker(p, now))) {
        struct pool_job *j = p->head;
        /* First come, first served: the oldest job waits for memory to come
         * free rather than being overtaken by smaller ones. */
        uint64_t mb = p->budget ? job_memory_mb(p, j) : 0;
        if (p->budget && !budget_reserve(p->budget, mb))
            break;
        s->reserved_mb = mb;
        queue_remove(p, j);
        j->slot = s;
        j->attempts++;
        j->dispatched_ns = uv_hrtime();
        s->job = j;
        s->state = SLOT_BUSY;
        s->busy_since = now;
        s->asleep = false;
        s->served = true;
        room--;
        /* A retried job needs its frame again: send a copy, keep the original. */
        char *copy = malloc(j->frame_len);
        if (!copy) {
            s->job = NULL;
            slot_release(s);
            s->state = SLOT_IDLE;
            job_fail(j, 500, "internal", "Out of memory.");
            break;
        }
        memcpy(copy, j->frame, j->frame_len);
        memcpy(copy + offsetof(struct ipc_request, sent_ns), &now, sizeof(now));
        slot_send(s, IPC_REQUEST, copy, j->frame_len);
    }
    if (p->head && !room) /* dispatch again when the oldest young job stops counting */
        uv_timer_start(&p->room_timer, on_room_due, (oldest + SHORT_NS - now) / 1000000 + 1, 0);
    unpark(p, room);
    pool_check_drained(p);
}

int pool_submit(struct pool *p, struct pool_job *job)
{
    if (p->stopping)
        return -ESHUTDOWN;
    if (p->queued >= (unsigned)p->cfg->queue) {
        /* Over the bound only if no running script stands in its way: a
         * worker idle, starting or parked for it and for each job ahead, and
         * room in the memory budget. */
        unsigned free_workers = 0;
        for (unsigned i = 0; i < p->nslots; i++) {
            enum slot_state st = p->slots[i].state;
            free_workers += st == SLOT_IDLE || st == SLOT_STARTING || slot_parked(st);
        }
        if (p->queued >= free_workers ||
            (p->budget && !budget_fits(p->budget, job_memory_mb(p, job))))
            return -EAGAIN;
    }
    job->attempts = 0;
    job->slot = NULL;
    job->queued_ns = uv_hrtime();
    queue_push(p, job, false);
    dispatch(p);
    return 0;
}

void pool_cancel(struct pool *p, struct pool_job *job)
{
    if (job->slot) {
        job->slot->job = NULL;
        slot_send(job->slot, IPC_CANCEL, NULL, 0);
        job->slot = NULL;
    } else {
        queue_remove(p, job);
    }
    job_free_frame(job);
}
