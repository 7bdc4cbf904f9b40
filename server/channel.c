/* The channels to the workers. See channel.h; the drawing is in pool.c. */
#include "server/channel.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ipc.h"
#include "server/queue.h"

/* A worker that fails its set-up (a uid it cannot have, a sandbox the host
 * refuses) would fail again at once: retry after 0.1 s, 0.2 s, ... 30 s. */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   30000
/* No channel could be made (the acceptor is out of descriptors: a flood of
 * client connections): ask again after this long rather than never. */
#define CHANNEL_RETRY_MS 1000

void slot_release(struct pool_slot *s)
{
    if (s->pool->budget && s->reserved_mb)
        budget_release(s->pool->budget, s->reserved_mb);
    s->reserved_mb = 0;
}

static void on_backoff_due(uv_timer_t *t)
{
    struct pool_slot *s = t->data;
    struct pool *p = s->pool;
    if (!p->stopping && p->template_up && s->state == SLOT_DOWN && !s->chan_open) {
        p->respawns++;
        slot_request_spawn(s);
    }
}

void slot_closed(uv_handle_t *h)
{
    struct pool_slot *s = h->data;
    s->chan_open = false;
    free(s->buf);
    s->buf = NULL;
    s->len = s->alloc = 0;
    struct pool *p = s->pool;
    /* The handle is free again: now the worker can be replaced, at once
     * unless it never got through its set-up. */
    if (s->state == SLOT_PARKED && !p->stopping) {
        dispatch(p); /* jobs that waited while it parked may start it again */
    } else if (s->state == SLOT_DOWN && !p->stopping && p->template_up) {
        if (s->failures) {
            unsigned shift = s->failures - 1 < 16 ? s->failures - 1 : 16;
            uint64_t ms = (uint64_t)BACKOFF_FIRST_MS << shift;
            if (ms > BACKOFF_MAX_MS)
                ms = BACKOFF_MAX_MS;
            fprintf(stderr,
                    "pyexecd: worker %u failed during set-up (%u in a row; its reason is "
                    "above); retry in %.1f s\n",
                    s->index, s->failures, ms / 1000.0);
            uv_timer_start(&s->backoff, on_backoff_due, ms, 0);
        } else {
            p->respawns++;
            slot_request_spawn(s);
        }
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
    if (s->state == SLOT_PARKING)
        return pool_parked(s);
    if (s->state == SLOT_DOWN || s->state == SLOT_PARKED)
        return;
    struct pool_job *j = s->job;
    s->job = NULL;
    if (s->state == SLOT_STARTING)
        s->failures++;
    slot_release(s);
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
    s->spare = s->served = s->failed = false;
    s->failures = 0;
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
    /* Checked while the job is still the slot's: a worker that sends garbage
     * is taken down, and slot_down retries or answers its job. */
    if (len >= sizeof(r))
        memcpy(&r, payload, sizeof(r));
    if (len < sizeof(r) || r.type_len > len - sizeof(r) || r.type_len >= 32) {
        fprintf(stderr, "pyexecd: worker %u sent a malformed reply; replacing it\n", s->index);
        return slot_down(s);
    }
    struct pool_job *j = s->job;
    s->job = NULL;
    slot_release(s);
    s->state = SLOT_IDLE;
    s->idle_since = uv_hrtime();
    s->spare = false; /* the child that answered was the spare */
    s->failed = r.status >= 500;
    if (s->pool->fork_time_cb && r.fork_us)
        s->pool->fork_time_cb(r.fork_us / 1e6);
    if (j) {
        char type[32];
        memcpy(type, payload + sizeof(r), r.type_len);
        type[r.type_len] = '\0';
        const char *body = payload + sizeof(r) + r.type_len;
        j->slot = NULL;
        j->files_out_bytes = r.files_bytes;
        job_free_frame(j);
        j->done(j, r.status, type, body, len - sizeof(r) - r.type_len);
    }
    dispatch(s->pool);
}

/* The worker's next child is ready. The worker may already hold its next
 * request (sent while it forked), which that child serves: nothing to
 * dispatch. */
static void on_spare(struct pool_slot *s)
{
    s->spare = true;
    s->spare_since = uv_hrtime();
}

/* Its script sleeps: it no longer holds the next jobs back (queue_room). */
static void on_asleep(struct pool_slot *s)
{
    s->asleep = true;
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
        else if (hdr.kind == IPC_SPARE && hdr.len == 0 &&
                 (s->state == SLOT_IDLE || s->state == SLOT_BUSY))
            on_spare(s);
        else if (hdr.kind == IPC_ASLEEP && hdr.len == 0 && s->state == SLOT_BUSY)
            on_asleep(s);
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

void slot_request_spawn(struct pool_slot *s)
{
    struct pool *p = s->pool;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        fprintf(stderr, "pyexecd: no channel for worker %u: %s; retry in %.1f s\n", s->index,
                strerror(errno), CHANNEL_RETRY_MS / 1000.0);
        s->state = SLOT_DOWN; /* a parked one too: the retry is on_backoff_due's */
        uv_timer_start(&s->backoff, on_backoff_due, CHANNEL_RETRY_MS, 0);
        return;
    }
    int r = ipc_send_spawn(p->ctl, s->index, sv[1]);
    close(sv[1]);
    if (r || uv_pipe_init(p->loop, &s->chan, 0)) {
        close(sv[0]);
        return; /* the template is going down; its exit restarts everything */
    }
    s->chan.data = s;
    s->chan_open = true;
    s->state = SLOT_STARTING;
    int err = uv_pipe_open(&s->chan, sv[0]);
    if (err) {
        fprintf(stderr, "pyexecd: worker %u: cannot watch its channel: %s\n", s->index,
                uv_strerror(err));
        /* The fd is not the handle's: close it (the worker then sees its
         * channel closed and exits); a worker lost while starting is
         * replaced after a pause. */
        close(sv[0]);
        slot_down(s);
        return;
    }
    uv_read_start((uv_stream_t *)&s->chan, on_chan_alloc, on_chan_read);
}

static void on_frame_written(uv_write_t *w, int status)
{
    (void)status; /* a failed write shows up as EOF on the channel */
    free(w->data);
    free(w);
}

void slot_send(struct pool_slot *s, uint32_t kind, char *payload, size_t len)
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
