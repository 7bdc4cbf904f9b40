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
 *   ACCEPTOR ◀──chan──▶  WORKER ×N (one per CPU; shares the template's pages but
 *                          │  its heap, which it moves onto huge pages: forkheap.c)
 *     chan: SOCK_STREAM socketpair, ipc.h frames:
 *       acceptor → worker  IPC_REQUEST (one at a time), IPC_CANCEL
 *       worker → acceptor  IPC_READY (once), IPC_REPLY (one per REQUEST)
 *                          │ fork, one child per request, the next one forked
 *                          ▼ ahead of time (the "spare")
 *                        CHILD: fd 0 ◀ request pipe: IPC_REQUEST
 *                               fd 1 ▶ stdout pipe, raw bytes
 *                               fd 2 ▶ stderr pipe, raw bytes
 *                               fd 3 ▶ result pipe: IPC_READY, then IPC_RESULT
 *
 * Lifetimes: each process dies with its parent (PR_SET_PDEATHSIG). A worker
 * that dies is seen as EOF on its channel: its job is retried once on another
 * worker, then answered 500, and the template is asked for a replacement at
 * once. A template that dies takes its workers with it; the acceptor starts a
 * new one a second later. The acceptor never dies because a worker or child
 * did. Shutdown runs the other way: the acceptor closes the channels (workers
 * exit, killing their children), then ctl (the template waits for its workers
 * and exits), then waits for the template.
 *
 * This file is the acceptor's side: template, channels, the wait queue. */
#include "server/pool.h"

#include <errno.h>
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ipc.h"

#define TEMPLATE_RESTART_MS 1000
#define QUEUE_SWEEP_MS      50
#define TEMPLATE_EXIT_MS    3000
#define MAX_TEMPLATE_ARGS   48

enum slot_state { SLOT_DOWN, SLOT_STARTING, SLOT_IDLE, SLOT_BUSY };

struct pool_slot {
    struct pool *pool;
    uint32_t index;
    enum slot_state state;
    uv_pipe_t chan;
    bool chan_open;
    struct pool_job *job; /* BUSY: the job it serves, NULL if cancelled */
    uint64_t idle_since;  /* uv_hrtime() when it last became idle */
    char *buf;            /* bytes read, not yet a whole frame */
    size_t len, alloc;
};

struct pool {
    uv_loop_t *loop;
    const struct config *cfg;
    char exe[4096];
    uv_process_t template;
    bool template_up, ever_ready, stopping;
    int ctl; /* our end of the template's ctl socket */
    uv_timer_t restart_timer, sweep_timer, stop_timer;
    struct pool_slot *slots;
    unsigned nslots;
    struct pool_job *head, *tail; /* the wait queue */
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

static void dispatch(struct pool *p);
static int template_start(struct pool *p);
static void on_stop_due(uv_timer_t *t);
static void on_restart_due(uv_timer_t *t);
static void slot_request_spawn(struct pool_slot *s);

/* --- the wait queue ---------------------------------------------------- */

static void queue_push(struct pool *p, struct pool_job *j, bool front)
{
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

static void queue_remove(struct pool *p, struct pool_job *j)
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

static void job_free_frame(struct pool_job *j)
{
    free(j->frame);
    j->frame = NULL;
}

/* Answer a job from the pool itself. */
static void job_fail(struct pool_job *j, int status, const char *type, const char *msg)
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
        job_fail(j, 503, "overloaded", "No worker became free in time; retry later.");
    }
    if (!p->head)
        uv_timer_stop(&p->sweep_timer);
}

/* --- worker channels --------------------------------------------------- */

static void slot_closed(uv_handle_t *h)
{
    struct pool_slot *s = h->data;
    s->chan_open = false;
    free(s->buf);
    s->buf = NULL;
    s->len = s->alloc = 0;
    struct pool *p = s->pool;
    /* The handle is free again: now the worker can be replaced. */
    if (!p->stopping && p->template_up) {
        p->respawns++;
        slot_request_spawn(s);
    }
    if (p->stopping) {
        bool all_closed = true;
        for (unsigned i = 0; i < p->nslots; i++)
            all_closed &= !p->slots[i].chan_open;
        if (all_closed && p->ctl >= 0) {
            close(p->ctl); /* the template exits once its workers have */
            p->ctl = -1;
        }
    }
}

/* The worker is gone (EOF, error, or a protocol violation). */
static void slot_down(struct pool_slot *s)
{
    struct pool *p = s->pool;
    if (s->state == SLOT_DOWN)
        return;
    struct pool_job *j = s->job;
    s->job = NULL;
    s->state = SLOT_DOWN;
    if (s->chan_open)
        uv_close((uv_handle_t *)&s->chan, slot_closed);
    if (j) {
        j->slot = NULL;
        if (j->attempts < 2 && !p->stopping) {
            queue_push(p, j, true); /* scripts have no side effects: run it again */
            j->queued_ns = uv_hrtime();
        } else {
            job_fail(j, 500, "internal", "The worker running this script died; please retry.");
        }
    }
    dispatch(p);
}

static void on_ready(struct pool_slot *s, const char *payload, size_t len)
{
    struct pool *p = s->pool;
    json_t *o = json_loadb(payload, len, 0, NULL);
    json_t *v = json_object_get(o, "versions");
    json_t *sb = json_object_get(o, "sandbox");
    if (!p->versions && v)
        p->versions = json_dumps(v, JSON_COMPACT);
    if (sb) { /* the newest worker's word on what the host grants */
        free(p->sandbox);
        p->sandbox = json_dumps(sb, JSON_COMPACT);
    }
    s->state = SLOT_IDLE;
    s->idle_since = uv_hrtime();
    fprintf(stderr, "pyexecd: worker %u ready (pid %lld)\n", s->index,
            (long long)json_integer_value(json_object_get(o, "pid")));
    json_decref(o);
    if (!p->ever_ready && pool_ready(p)) {
        p->ever_ready = true;
        if (p->ready_cb)
            p->ready_cb(p->cb_data);
    }
    dispatch(p);
}

static void on_reply(struct pool_slot *s, const char *payload, size_t len)
{
    struct ipc_reply r;
    struct pool_job *j = s->job;
    s->job = NULL;
    s->state = SLOT_IDLE;
    s->idle_since = uv_hrtime();
    if (len < sizeof(r))
        return slot_down(s);
    memcpy(&r, payload, sizeof(r));
    if (r.type_len > len - sizeof(r) || r.type_len >= 32)
        return slot_down(s);
    if (s->pool->fork_time_cb && r.fork_us)
        s->pool->fork_time_cb(r.fork_us / 1e6);
    if (j) {
        char type[32];
        memcpy(type, payload + sizeof(r), r.type_len);
        type[r.type_len] = '\0';
        const char *body = payload + sizeof(r) + r.type_len;
        j->slot = NULL;
        job_free_frame(j);
        j->done(j, r.status, type, body, len - sizeof(r) - r.type_len);
    }
    dispatch(s->pool);
}

static void on_chan_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct pool_slot *s = h->data;
    (void)hint;
    if (s->alloc - s->len < 65536) {
        size_t want = s->alloc ? s->alloc * 2 : 131072;
        char *b = realloc(s->buf, want);
        if (!b) {
            *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
            return;
        }
        s->buf = b;
        s->alloc = want;
    }
    *buf = uv_buf_init(s->buf + s->len, s->alloc - s->len);
}

static void on_chan_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct pool_slot *s = st->data;
    (void)buf;
    if (n < 0)
        return slot_down(s);
    s->len += n;
    size_t off = 0;
    for (;;) {
        struct ipc_hdr hdr;
        const char *payload;
        long used = ipc_frame_parse(s->buf + off, s->len - off, IPC_MAX_PAYLOAD, &hdr, &payload);
        if (used < 0)
            return slot_down(s);
        if (used == 0)
            break;
        off += used;
        if (hdr.kind == IPC_READY && s->state == SLOT_STARTING)
            on_ready(s, payload, hdr.len);
        else if (hdr.kind == IPC_REPLY && s->state == SLOT_BUSY)
            on_reply(s, payload, hdr.len);
        else
            return slot_down(s);
        if (s->state == SLOT_DOWN)
            return;
    }
    memmove(s->buf, s->buf + off, s->len - off);
    s->len -= off;
    /* Do not keep a 10 MiB buffer for every worker once the reply is out. */
    if (s->len == 0 && s->alloc > (1u << 20)) {
        free(s->buf);
        s->buf = NULL;
        s->alloc = 0;
    }
}

/* Make a channel, hand the worker's end to the template, keep ours. */
static void slot_request_spawn(struct pool_slot *s)
{
    struct pool *p = s->pool;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        fprintf(stderr, "pyexecd: socketpair: %s\n", strerror(errno));
        return;
    }
    int r = ipc_send_spawn(p->ctl, s->index, sv[1]);
    close(sv[1]);
    if (r || uv_pipe_init(p->loop, &s->chan, 0) || uv_pipe_open(&s->chan, sv[0])) {
        close(sv[0]);
        return; /* the template is going down; its exit restarts everything */
    }
    s->chan.data = s;
    s->chan_open = true;
    s->state = SLOT_STARTING;
    uv_read_start((uv_stream_t *)&s->chan, on_chan_alloc, on_chan_read);
}

/* --- dispatch ---------------------------------------------------------- */

static void on_frame_written(uv_write_t *w, int status)
{
    (void)status; /* a failed write shows up as EOF on the channel */
    free(w->data);
    free(w);
}

static void slot_send(struct pool_slot *s, uint32_t kind, char *payload, size_t len)
{
    uv_write_t *w = malloc(sizeof(*w) + sizeof(struct ipc_hdr));
    if (!w) {
        free(payload);
        return slot_down(s);
    }
    struct ipc_hdr *hdr = (struct ipc_hdr *)(w + 1);
    *hdr = (struct ipc_hdr){.kind = kind, .len = len};
    uv_buf_t bufs[2] = {uv_buf_init((char *)hdr, sizeof(*hdr)), uv_buf_init(payload, len)};
    w->data = payload;
    if (uv_write(w, (uv_stream_t *)&s->chan, bufs, len ? 2 : 1, on_frame_written)) {
        free(payload);
        free(w);
        slot_down(s);
    }
}

/* The worker idle the longest: it has had the most time to fork its next
 * spare child since its last request. */
static struct pool_slot *longest_idle(struct pool *p)
{
    struct pool_slot *best = NULL;
    for (unsigned i = 0; i < p->nslots; i++) {
        struct pool_slot *s = &p->slots[i];
        if (s->state == SLOT_IDLE && (!best || s->idle_since < best->idle_since))
            best = s;
    }
    return best;
}

static void dispatch(struct pool *p)
{
    struct pool_slot *s;
    while (p->head && (s = longest_idle(p))) {
        struct pool_job *j = p->head;
        queue_remove(p, j);
        j->slot = s;
        j->attempts++;
        j->dispatched_ns = uv_hrtime();
        s->job = j;
        s->state = SLOT_BUSY;
        /* A retried job needs its frame again: send a copy, keep the original. */
        char *copy = malloc(j->frame_len);
        if (!copy) {
            s->job = NULL;
            s->state = SLOT_IDLE;
            job_fail(j, 500, "internal", "Out of memory.");
            break;
        }
        memcpy(copy, j->frame, j->frame_len);
        slot_send(s, IPC_REQUEST, copy, j->frame_len);
    }
    if (p->stopping && p->stop_cb) {
        bool busy = p->head != NULL;
        for (unsigned i = 0; i < p->nslots; i++)
            busy |= p->slots[i].state == SLOT_BUSY;
        if (!busy)
            uv_timer_start(&p->stop_timer, on_stop_due, 0, 0);
    }
}

int pool_submit(struct pool *p, struct pool_job *job)
{
    if (p->stopping)
        return -ESHUTDOWN;
    if (p->queued >= (unsigned)p->cfg->queue) {
        bool idle = false;
        for (unsigned i = 0; i < p->nslots; i++)
            idle |= p->slots[i].state == SLOT_IDLE;
        if (!idle)
            return -EAGAIN;
    }
    job->attempts = 0;
    job->slot = NULL;
    job->queued_ns = uv_hrtime();
    queue_push(p, job, false);
    if (!uv_is_active((uv_handle_t *)&p->sweep_timer))
        uv_timer_start(&p->sweep_timer, on_sweep, QUEUE_SWEEP_MS, QUEUE_SWEEP_MS);
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

/* --- the template ------------------------------------------------------ */

/* Stopped: every worker and the template are gone. */
static void pool_finish(struct pool *p)
{
    for (unsigned i = 0; i < p->nslots; i++)
        if (p->slots[i].chan_open && !uv_is_closing((uv_handle_t *)&p->slots[i].chan))
            uv_close((uv_handle_t *)&p->slots[i].chan, slot_closed);
    uv_close((uv_handle_t *)&p->sweep_timer, NULL);
    uv_close((uv_handle_t *)&p->restart_timer, NULL);
    uv_close((uv_handle_t *)&p->stop_timer, NULL);
    void (*cb)(void *) = p->stop_cb;
    p->stop_cb = NULL;
    if (cb)
        cb(p->stop_data);
}

static void on_template_exit(uv_process_t *proc, int64_t status, int sig)
{
    struct pool *p = proc->data;
    p->template_up = false;
    uv_close((uv_handle_t *)proc, NULL);
    if (p->ctl >= 0) {
        close(p->ctl);
        p->ctl = -1;
    }
    if (p->stopping)
        return pool_finish(p);
    fprintf(stderr, "pyexecd: the template exited (status %lld, signal %d)\n", (long long)status,
            sig);
    if (!p->ever_ready && p->fatal_cb)
        return p->fatal_cb(p->cb_data);
    /* Its workers die with it; their channels report EOF. */
    uv_timer_start(&p->restart_timer, on_restart_due, TEMPLATE_RESTART_MS, 0);
}

static int template_argv(struct pool *p, char **argv, int max)
{
    int n = 0;
    argv[n++] = "pyexecd";
    argv[n++] = "--template-fd=3";
    int r = config_to_flags(p->cfg, argv + n, max - n - 1);
    if (r < 0)
        return r;
    n += r;
    argv[n] = NULL;
    return n;
}

/* The template starts from exec with only these variables: nothing of the
 * service's environment (credentials, config) reaches Python. OPENBLAS_*
 * tuning passes, as some CPUs need it to run OpenBLAS at all. */
const char *const pool_env_passthrough[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", NULL};

static int template_env(char **env, int max, char store[][256])
{
    int n = 0;
    env[n++] = "LANG=C.UTF-8";
    env[n++] = "PATH=/usr/bin:/bin";
    /* malloc's heap on transparent huge pages: cheaper forks (embed/python.c). */
    env[n++] = "GLIBC_TUNABLES=glibc.malloc.hugetlb=1";
    for (size_t i = 0; pool_env_passthrough[i] && n < max - 1; i++) {
        const char *v = getenv(pool_env_passthrough[i]);
        if (v && strlen(v) < 200) {
            snprintf(store[i], 256, "%s=%s", pool_env_passthrough[i], v);
            env[n++] = store[i];
        }
    }
    env[n] = NULL;
    return n;
}

static int template_start(struct pool *p)
{
    int sv[2];
    char *argv[MAX_TEMPLATE_ARGS] = {0};
    char *env[8];
    char store[2][256];
    int r;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
        return -errno;
    r = template_argv(p, argv, MAX_TEMPLATE_ARGS);
    if (r < 0)
        goto fail;
    template_env(env, 8, store);

    uv_stdio_container_t stdio[4] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
        {.flags = UV_INHERIT_FD, .data.fd = sv[1]},
    };
    uv_process_options_t opt = {
        .exit_cb = on_template_exit,
        .file = p->exe,
        .args = argv,
        .env = env,
        .stdio_count = 4,
        .stdio = stdio,
    };
    p->template.data = p;
    r = uv_spawn(p->loop, &p->template, &opt);
    if (r) {
        uv_close((uv_handle_t *)&p->template, NULL);
        goto fail;
    }
    close(sv[1]);
    sv[1] = -1;
    p->ctl = sv[0];
    p->template_up = true;
    for (unsigned i = 0; i < p->nslots; i++)
        if (p->slots[i].state == SLOT_DOWN && !p->slots[i].chan_open)
            slot_request_spawn(&p->slots[i]);
    r = 0;
    goto out;
fail:
    close(sv[0]);
out:
    if (sv[1] >= 0)
        close(sv[1]);
    for (int i = 2; argv[i]; i++)
        free(argv[i]);
    return r;
}

static void on_restart_due(uv_timer_t *t)
{
    struct pool *p = t->data;
    int r = template_start(p);
    if (r) {
        fprintf(stderr, "pyexecd: cannot restart the template: %s\n", strerror(-r));
        uv_timer_start(&p->restart_timer, on_restart_due, TEMPLATE_RESTART_MS, 0);
    }
}

/* --- life cycle -------------------------------------------------------- */

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
    for (unsigned i = 0; i < p->nslots; i++)
        p->slots[i] = (struct pool_slot){.pool = p, .index = i, .state = SLOT_DOWN};
    uv_timer_init(loop, &p->restart_timer);
    uv_timer_init(loop, &p->sweep_timer);
    uv_timer_init(loop, &p->stop_timer);
    p->restart_timer.data = p->sweep_timer.data = p->stop_timer.data = p;
    int r = template_start(p);
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
    for (unsigned i = 0; i < p->nslots; i++)
        if (p->slots[i].state != SLOT_IDLE && p->slots[i].state != SLOT_BUSY)
            return false;
    return p->template_up;
}

void pool_get_stats(const struct pool *p, struct pool_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->workers = p->nslots;
    for (unsigned i = 0; i < p->nslots; i++) {
        st->ready += p->slots[i].state == SLOT_IDLE || p->slots[i].state == SLOT_BUSY;
        st->busy += p->slots[i].state == SLOT_BUSY;
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

void pool_set_callbacks(struct pool *p, void (*ready)(void *), void (*fatal)(void *), void *data)
{
    p->ready_cb = ready;
    p->fatal_cb = fatal;
    p->cb_data = data;
}

/* Drained, or out of time: answer what is left, close every channel. */
/* The template should exit as soon as its workers have; if it does not, end it. */
static void on_template_stuck(uv_timer_t *t)
{
    struct pool *p = t->data;
    if (p->template_up)
        uv_process_kill(&p->template, SIGKILL);
}

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
        pool_finish(p); /* it died before we stopped; nobody else will finish */
    else if (p->template_up)
        uv_timer_start(&p->restart_timer, on_template_stuck, TEMPLATE_EXIT_MS, 0);
}

void pool_stop(struct pool *p, uint64_t timeout_ms, void (*cb)(void *), void *data)
{
    if (p->stopping)
        return;
    p->stopping = true;
    p->stop_cb = cb;
    p->stop_data = data;
    uv_timer_stop(&p->restart_timer);
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
