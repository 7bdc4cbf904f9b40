#include "bench/loadgen.h"

#include "bench/request.h"
#include "bench/series.h"
#include "bench/tls.h"

#include <errno.h>
#include <http_parser.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#define ERROR_BODY_MAX (64 * 1024) /* enough for any error object; more is dropped */
#define READ_BUF_SIZE  (16 * 1024) /* answers are small; a big one takes more reads */
#define BACKOFF_MS     10          /* after a failed request, so a dead server is not spun on */

enum conn_state { CONN_CLOSED, CONN_CONNECTING, CONN_HANDSHAKE, CONN_OPEN, CONN_CLOSING };

enum outcome { OUT_RESPONSE, OUT_CONNECT, OUT_IO, OUT_PARSE, OUT_TLS, OUT_TIMEOUT };

struct loadgen;

struct conn {
    struct loadgen *lg;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_timer_t timeout;
    uv_timer_t backoff;
    http_parser parser;
    enum conn_state state;
    int busy;          /* a request is out (or waiting for the connection) */
    int measured;      /* --requests mode: this request is one of the N */
    int answered;      /* the parser saw the whole answer */
    unsigned status;   /* its HTTP status */
    uint64_t start_ns; /* latency origin: send time, or intended send time (open loop) */
    char *error_body;  /* body of a 4xx/5xx answer, to read its `type` */
    size_t error_len;
    uint64_t connect_ns;  /* when the current connection's connect or handshake began */
    uint64_t opened;      /* connections this slot has opened */
    struct tls_conn tls;  /* https: this connection's session */
    SSL_SESSION *session; /* https: the last session, resumed by the next connection */
    /* X-Pyexec-Instance of the answer being parsed (header names and values
     * may arrive in pieces). */
    char header_name[sizeof(LOADGEN_INSTANCE_HEADER)];
    size_t header_name_len;
    int in_value;   /* the last header callback was a value */
    int value_ours; /* ... of X-Pyexec-Instance */
    char instance[LOADGEN_INSTANCE_MAX];
    size_t instance_len;
    char read_buf[READ_BUF_SIZE];
};

struct loadgen {
    uv_loop_t loop;
    const struct options *opts;
    struct loadgen_result *result;
    struct sockaddr_storage addr;
    uv_buf_t request; /* the whole request, shared read-only by every write */
    http_parser_settings settings;
    SSL_CTX *ssl_ctx;          /* https */
    char plain[READ_BUF_SIZE]; /* https: decrypted bytes, parsed at once */
    struct series series;      /* --series */
    uv_timer_t series_timer;
    uv_timer_t scrape_timer; /* the first /metrics scrape, when the window opens */
    uv_thread_t scrape_thread;
    int scrape_started; /* the first scrape is running on scrape_thread */
    int scraped;        /* ... or already done (no warm-up: before the first request) */
    struct scrape scrape_before;
    int fatal; /* stopped by a refused certificate */
    struct conn *conns;
    struct conn **idle; /* open loop: connections with nothing to send */
    int idle_count;
    uv_timer_t end_timer;
    uv_timer_t pace_timer;
    uv_timer_t progress_timer;
    int progress;
    int stopping;
    uint64_t t0, t_measure, t_end; /* ns; t_end is 0 in --requests mode */
    int open;                      /* open loop */
    int ramp;                      /* open loop, rate ramping from opts->rate to rate_end */
    uint64_t interval_ns;          /* open loop at a constant rate: 1e9 / rate */
    uint64_t due;                  /* open loop: sends whose intended time has come */
    uint64_t sent;                 /* open loop: sends handed to a connection */
    uint64_t due_limit;            /* open loop: no send is ever due past this */
    uint64_t measured_issued;      /* --requests mode */
    uint64_t measured_done;
    uint64_t last_done_ns;
};

static void conn_next(struct conn *c);
static void conn_connect(struct conn *c);
static void stop_run(struct loadgen *lg);

static void on_backoff(uv_timer_t *timer)
{
    conn_next(timer->data);
}

static int open_loop(const struct loadgen *lg)
{
    return lg->open;
}

/* Offset from t0 at which open-loop send k is intended. A constant rate: k *
 * interval. A ramp runs at S = opts->rate through the warm-up W, then at
 * r(u) = S + a u over the window (a = (E - S) / D), so N(u) = S W + S u +
 * a u^2 / 2 sends are due u into it; send k is intended where N = k. The root
 * is taken in the form that stays exact when a is near 0 and when S is 0.
 * UINT64_MAX: never (a ramp down that ends before it). */
static uint64_t intended_ns(const struct loadgen *lg, uint64_t k)
{
    if (!lg->ramp)
        return k * lg->interval_ns;
    const struct options *o = lg->opts;
    double start = o->rate, w = (double)o->warmup_ns / 1e9, d = (double)o->duration_ns / 1e9;
    double warm = start * w;
    if ((double)k < warm)
        return (uint64_t)((double)k / start * 1e9);
    double rest = (double)k - warm, a = (o->rate_end - start) / d;
    double disc = start * start + 2 * a * rest;
    if (disc < 0)
        return UINT64_MAX;
    double denom = start + sqrt(disc);
    double u = denom > 0 ? 2 * rest / denom : 0;
    double t = (w + u) * 1e9;
    return t >= 1.8e19 ? UINT64_MAX : (uint64_t)t;
}

/* -- outcome accounting -------------------------------------------------- */

static void count_type(struct loadgen_result *r, const char *body, size_t len)
{
    const char *name = "(unparsed)";
    json_t *root = json_loadb(body ? body : "", len, 0, NULL);
    json_t *type = root ? json_object_get(root, "type") : NULL;
    if (json_is_string(type))
        name = json_string_value(type);

    int i;
    for (i = 0; i < r->type_count; i++)
        if (strcmp(r->types[i].name, name) == 0)
            break;
    if (i == r->type_count) {
        if (r->type_count == LOADGEN_MAX_TYPES) {
            name = "(other)"; /* the last slot collects the rest */
            i = LOADGEN_MAX_TYPES - 1;
        } else {
            r->type_count++;
        }
        snprintf(r->types[i].name, sizeof(r->types[i].name), "%s", name);
    }
    r->types[i].count++;
    json_decref(root);
}

static void count_instance(struct loadgen_result *r, const char *id, size_t len)
{
    while (len && (id[len - 1] == ' ' || id[len - 1] == '\t'))
        len--;
    if (len == 0)
        return;
    int i;
    for (i = 0; i < r->instance_count; i++)
        if (strlen(r->instances[i].id) == len && memcmp(r->instances[i].id, id, len) == 0)
            break;
    if (i == r->instance_count) {
        if (r->instance_count == LOADGEN_MAX_INSTANCES) {
            r->instances_other++;
            return;
        }
        r->instance_count++;
        snprintf(r->instances[i].id, sizeof(r->instances[i].id), "%.*s", (int)len, id);
    }
    r->instances[i].count++;
}

static int counts(struct loadgen *lg, struct conn *c, uint64_t now)
{
    if (lg->opts->requests)
        return c->measured;
    return now >= lg->t_measure && now <= lg->t_end;
}

/* The request on c ended (answer or failure): count it, then send the next. */
static void finish_request(struct conn *c, enum outcome outcome)
{
    struct loadgen *lg = c->lg;
    struct loadgen_result *r = lg->result;
    uint64_t now = uv_hrtime();

    uv_timer_stop(&c->timeout);
    c->busy = 0;
    if (counts(lg, c, now)) {
        switch (outcome) {
        case OUT_RESPONSE: {
            unsigned status = c->status;
            uint64_t latency_ns = now > c->start_ns ? now - c->start_ns : 0;
            histogram_record(&r->latency, (latency_ns + 500) / 1000);
            r->responses++;
            r->status[status < 600 ? status : 0]++;
            if (status >= 400)
                count_type(r, c->error_body, c->error_len);
            count_instance(r, c->instance, c->instance_len);
            series_answer(&lg->series, now, (latency_ns + 500) / 1000, status);
            break;
        }
        case OUT_CONNECT:
            r->connect_errors++;
            break;
        case OUT_IO:
            r->io_errors++;
            break;
        case OUT_PARSE:
            r->parse_errors++;
            break;
        case OUT_TLS:
            r->tls_errors++;
            break;
        case OUT_TIMEOUT:
            r->timeouts++;
            break;
        }
        if (outcome != OUT_RESPONSE)
            series_error(&lg->series, now);
        lg->last_done_ns = now;
        if (lg->opts->requests && ++lg->measured_done == lg->opts->requests) {
            stop_run(lg);
            return;
        }
    }
    free(c->error_body);
    c->error_body = NULL;
    c->error_len = 0;
    if (lg->stopping)
        return;
    if (outcome == OUT_RESPONSE)
        conn_next(c);
    else
        uv_timer_start(&c->backoff, on_backoff, BACKOFF_MS, 0);
}

/* -- connection lifecycle ------------------------------------------------ */

static void on_close(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    c->state = CONN_CLOSED;
    tls_conn_free(&c->tls, &c->session);
    /* A request may be waiting for a fresh connection (the old one closed). */
    if (!c->lg->stopping && c->busy)
        conn_connect(c);
}

static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSED || c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* Finish the request with an error and drop the connection: what follows a
 * failure on a stream cannot be trusted. */
static void fail_request(struct conn *c, enum outcome outcome)
{
    conn_close(c);
    if (c->busy)
        finish_request(c, outcome);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = handle->data;
    (void)suggested;
    *buf = uv_buf_init(c->read_buf, sizeof(c->read_buf));
}

/* The stream ended (eof: cleanly) or failed. */
static void on_stream_end(struct conn *c, int eof)
{
    struct loadgen *lg = c->lg;
    /* At EOF, an answer delimited by the close completes now. */
    if (eof && c->busy && c->state == CONN_OPEN)
        http_parser_execute(&c->parser, &lg->settings, NULL, 0);
    if (c->busy && c->answered) {
        conn_close(c);
        finish_request(c, OUT_RESPONSE);
    } else if (c->state == CONN_HANDSHAKE) {
        if (c->busy && !lg->result->tls_error[0])
            snprintf(lg->result->tls_error, sizeof(lg->result->tls_error),
                     "connection closed during the TLS handshake");
        fail_request(c, OUT_TLS);
    } else {
        fail_request(c, OUT_IO); /* no error if idle: keep-alive closed */
    }
}

/* Plaintext bytes of the answer. Returns 0 to go on reading, -1 when the
 * connection is finished with (closed or failed). */
static int deliver(struct conn *c, const char *data, size_t len)
{
    if (!c->busy) { /* bytes nobody asked for */
        conn_close(c);
        return -1;
    }
    size_t parsed = http_parser_execute(&c->parser, &c->lg->settings, data, len);
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || parsed != len) {
        /* Includes bytes past the answer: we never pipeline, so that is a fault. */
        fail_request(c, OUT_PARSE);
        return -1;
    }
    if (!c->answered)
        return 0;
    int keep = http_should_keep_alive(&c->parser);
    if (!keep)
        conn_close(c);
    finish_request(c, OUT_RESPONSE);
    return keep ? 0 : -1;
}

static void on_write(uv_write_t *req, int status);

/* https: send what OpenSSL has queued for the network. */
static int tls_flush(struct conn *c)
{
    size_t len = tls_pending(&c->tls);
    if (len == 0)
        return 0;
    uv_write_t *req = malloc(sizeof(*req) + len); /* the bytes follow the request */
    if (!req)
        return -ENOMEM;
    char *bytes = (char *)(req + 1);
    if (tls_take(&c->tls, bytes, len) < 0) {
        free(req);
        return -EPROTO;
    }
    req->data = c;
    uv_buf_t buf = uv_buf_init(bytes, (unsigned)len);
    int err = uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, on_write); /* frees the bytes too */
    if (err < 0)
        free(req);
    return err;
}

static void stop_fatal(struct loadgen *lg, const char *why);
static void send_request(struct conn *c);

/* https: the handshake finished. */
static void handshake_done(struct conn *c)
{
    struct loadgen *lg = c->lg;
    struct loadgen_result *r = lg->result;
    uint64_t now = uv_hrtime();
    c->state = CONN_OPEN;
    histogram_record(&r->handshake, (now - c->connect_ns + 500) / 1000);
    if (SSL_session_reused(c->tls.ssl))
        r->resumed++;
    if (!r->tls_version[0]) {
        snprintf(r->tls_version, sizeof(r->tls_version), "%s", SSL_get_version(c->tls.ssl));
        snprintf(r->tls_cipher, sizeof(r->tls_cipher), "%s", SSL_get_cipher_name(c->tls.ssl));
    }
    if (c->busy) {
        if (!open_loop(lg)) /* closed loop: latency from the write, as over plain HTTP */
            c->start_ns = now;
        send_request(c);
    }
}

static void on_tls_read(struct conn *c, const char *data, size_t len)
{
    struct loadgen *lg = c->lg;
    if (tls_feed(&c->tls, data, len) < 0) {
        fail_request(c, OUT_IO);
        return;
    }
    if (c->state == CONN_HANDSHAKE) {
        int rc = tls_handshake(&c->tls);
        if (rc >= 0 && tls_flush(c) < 0)
            rc = -EIO;
        if (rc < 0) {
            char why[128];
            int verify = 0;
            tls_failure(&c->tls, why, sizeof(why), &verify);
            if (verify) { /* the wrong server, or the right one unproven: no load at all */
                stop_fatal(lg, why);
                return;
            }
            if (!lg->result->tls_error[0])
                snprintf(lg->result->tls_error, sizeof(lg->result->tls_error), "%s", why);
            fail_request(c, OUT_TLS);
            return;
        }
        if (rc == 0)
            return;
        handshake_done(c);
    }
    while (c->state == CONN_OPEN) {
        ssize_t n = tls_read(&c->tls, lg->plain, sizeof(lg->plain));
        if (n == 0)
            break;
        if (n == -EPIPE) { /* close_notify: the end of the stream */
            on_stream_end(c, 1);
            return;
        }
        if (n < 0) {
            fail_request(c, OUT_TLS);
            return;
        }
        if (deliver(c, lg->plain, (size_t)n) < 0)
            return;
    }
    if (c->state == CONN_OPEN && tls_flush(c) < 0) /* e.g. a key update's answer */
        fail_request(c, OUT_IO);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        on_stream_end(c, nread == UV_EOF);
        return;
    }
    if (c->lg->ssl_ctx)
        on_tls_read(c, buf->base, (size_t)nread);
    else
        deliver(c, buf->base, (size_t)nread);
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED)
        fail_request(c, OUT_IO);
}

static void on_timeout(uv_timer_t *timer)
{
    fail_request(timer->data, OUT_TIMEOUT);
}

static void send_request(struct conn *c)
{
    if (c->lg->ssl_ctx) {
        if (tls_write(&c->tls, c->lg->request.base, c->lg->request.len) < 0 || tls_flush(c) < 0)
            fail_request(c, OUT_IO);
        return;
    }
    uv_write_t *req = malloc(sizeof(*req));
    if (!req) {
        fail_request(c, OUT_IO);
        return;
    }
    req->data = c;
    int err = uv_write(req, (uv_stream_t *)&c->tcp, &c->lg->request, 1, on_write);
    if (err < 0) {
        free(req);
        fail_request(c, OUT_IO);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->state != CONN_CONNECTING) /* closed while connecting */
        return;
    if (status < 0) {
        conn_close(c);
        if (c->busy)
            finish_request(c, OUT_CONNECT);
        return;
    }
    struct loadgen *lg = c->lg;
    uint64_t now = uv_hrtime();
    histogram_record(&lg->result->connect, (now - c->connect_ns + 500) / 1000);
    if (c->opened++)
        lg->result->reconnects++;
    lg->result->opened++;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    int err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (err < 0) {
        fail_request(c, OUT_IO);
        return;
    }
    if (lg->ssl_ctx) {
        c->state = CONN_HANDSHAKE;
        c->connect_ns = now; /* the handshake is timed on its own */
        if (tls_conn_start(&c->tls, lg->ssl_ctx, lg->opts, c->session) < 0 ||
            tls_handshake(&c->tls) < 0 || tls_flush(c) < 0) {
            fail_request(c, OUT_TLS);
        }
        return;
    }
    c->state = CONN_OPEN;
    if (c->busy) {
        if (!open_loop(lg)) /* closed loop: latency from the write, connect not in it */
            c->start_ns = now;
        send_request(c);
    }
}

static void conn_connect(struct conn *c)
{
    int err = uv_tcp_init(&c->lg->loop, &c->tcp);
    if (err < 0)
        goto fail;
    c->tcp.data = c;
    c->connect_req.data = c;
    c->state = CONN_CONNECTING;
    c->connect_ns = uv_hrtime();
    err =
        uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&c->lg->addr, on_connect);
    if (err < 0) {
        conn_close(c);
        goto fail;
    }
    return;
fail:
    /* Same accounting as a refused connection, after the back-off. */
    c->busy = 1;
    finish_request(c, OUT_CONNECT);
}

/* Start one request on c with latency counted from start_ns. */
static void conn_issue(struct conn *c, uint64_t start_ns)
{
    struct loadgen *lg = c->lg;
    c->busy = 1;
    c->answered = 0;
    c->start_ns = start_ns;
    c->measured = 0;
    if (lg->opts->requests && start_ns >= lg->t_measure) {
        lg->measured_issued++;
        c->measured = 1;
    }
    uv_timer_start(&c->timeout, on_timeout, (lg->opts->timeout_ns + 999999) / 1000000, 0);
    if (lg->series.f)
        series_sent(&lg->series, uv_hrtime());
    if (c->state == CONN_OPEN)
        send_request(c);
    else if (c->state == CONN_CLOSED)
        conn_connect(c);
    /* CONNECTING and HANDSHAKE send once ready; CLOSING reconnects in on_close. */
}

/* Whether one more request may start at time t (--requests mode stops at N). */
static int may_issue(const struct loadgen *lg, uint64_t t)
{
    if (lg->stopping)
        return 0;
    if (lg->opts->requests && t >= lg->t_measure)
        return lg->measured_issued < lg->opts->requests;
    return 1;
}

/* c is free: give it the next request. */
static void conn_next(struct conn *c)
{
    struct loadgen *lg = c->lg;
    if (c->busy || lg->stopping)
        return;
    if (!open_loop(lg)) {
        uint64_t now = uv_hrtime();
        if (may_issue(lg, now))
            conn_issue(c, now);
        return;
    }
    if (lg->sent < lg->due) {
        /* Late or not, latency counts from the intended send time. */
        conn_issue(c, lg->t0 + intended_ns(lg, lg->sent++));
        return;
    }
    lg->idle[lg->idle_count++] = c;
}

/* -- run control --------------------------------------------------------- */

static void pace(uv_timer_t *timer)
{
    struct loadgen *lg = timer->data;
    uint64_t now = uv_hrtime();
    if (lg->ramp) {
        while (lg->due < lg->due_limit && intended_ns(lg, lg->due) <= now - lg->t0)
            lg->due++;
    } else {
        uint64_t due = (now - lg->t0) / lg->interval_ns + 1;
        if (due > lg->due_limit)
            due = lg->due_limit;
        if (due > lg->due)
            lg->due = due;
    }
    while (lg->sent < lg->due && lg->idle_count > 0)
        conn_issue(lg->idle[--lg->idle_count], lg->t0 + intended_ns(lg, lg->sent++));
    if (lg->stopping || lg->due == lg->due_limit)
        return;
    uint64_t offset = intended_ns(lg, lg->due);
    if (offset == UINT64_MAX)
        return;
    uint64_t next = lg->t0 + offset;
    uint64_t wait_ms = next > now ? (next - now + 999999) / 1000000 : 0;
    uv_timer_start(&lg->pace_timer, pace, wait_ms, 0);
}

static void show_progress(uv_timer_t *timer)
{
    struct loadgen *lg = timer->data;
    const struct loadgen_result *r = lg->result;
    uint64_t now = uv_hrtime();
    uint64_t errors =
        r->connect_errors + r->io_errors + r->parse_errors + r->tls_errors + r->timeouts;
    if (now < lg->t_measure) {
        fprintf(stderr, "\r  warm-up %4.0fs                                        ",
                (double)(now - lg->t0) / 1e9);
    } else {
        double secs = (double)(now - lg->t_measure) / 1e9;
        fprintf(stderr, "\r  %5.0fs  %10llu answers  %10.1f req/s  %llu errors   ", secs,
                (unsigned long long)r->responses, secs > 0 ? (double)r->responses / secs : 0.0,
                (unsigned long long)errors);
    }
    fflush(stderr);
}

static void close_handle(uv_handle_t *handle)
{
    if (handle->type && !uv_is_closing(handle))
        uv_close(handle, NULL);
}

static void stop_run(struct loadgen *lg)
{
    if (lg->stopping)
        return;
    lg->stopping = 1;
    uint64_t now = uv_hrtime();
    struct loadgen_result *r = lg->result;
    if (lg->opts->requests)
        r->elapsed_s = lg->last_done_ns > lg->t_measure
                           ? (double)(lg->last_done_ns - lg->t_measure) / 1e9
                           : 0.0;
    else
        r->elapsed_s = (double)(lg->t_end - lg->t_measure) / 1e9;
    if (open_loop(lg)) /* owed answers: part of the picture under overload */
        r->unfinished = lg->due - lg->sent;
    for (int i = 0; i < lg->opts->connections; i++) {
        struct conn *c = &lg->conns[i];
        if (c->busy && open_loop(lg) && (lg->opts->requests ? c->measured : now >= lg->t_measure))
            r->unfinished++;
        conn_close(c);
        close_handle((uv_handle_t *)&c->timeout);
        close_handle((uv_handle_t *)&c->backoff);
    }
    close_handle((uv_handle_t *)&lg->end_timer);
    close_handle((uv_handle_t *)&lg->pace_timer);
    close_handle((uv_handle_t *)&lg->progress_timer);
    close_handle((uv_handle_t *)&lg->series_timer);
    close_handle((uv_handle_t *)&lg->scrape_timer);
    if (lg->progress)
        fprintf(stderr, "\r%70s\r", "");
}

/* A certificate the run must not trust: say why and stop everything now. */
static void stop_fatal(struct loadgen *lg, const char *why)
{
    const struct options *o = lg->opts;
    stop_run(lg);
    lg->fatal = 1;
    fprintf(stderr,
            "pyexec-bench: TLS certificate verification failed for %s:%s: %s\n"
            "  (--cacert FILE trusts a private CA; -k skips verification)\n",
            o->host, o->port, why);
}

static void on_end(uv_timer_t *timer)
{
    stop_run(timer->data);
}

/* -- parser callbacks ---------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    if (c->answered)
        return 1; /* a second answer to one request: a protocol fault */
    free(c->error_body);
    c->error_body = NULL;
    c->error_len = 0;
    c->instance_len = 0;
    c->header_name_len = 0;
    c->in_value = 0;
    c->value_ours = 0;
    return 0;
}

/* Append to buf (size bytes, *used of them taken) what fits of at[0..len). */
static void append_clipped(char *buf, size_t size, size_t *used, const char *at, size_t len)
{
    size_t room = size - *used;
    size_t take = len < room ? len : room;
    memcpy(buf + *used, at, take);
    *used += take;
}

/* Header names and values may come in pieces. A name is kept up to one
 * byte past our header's length (longer: not ours). */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->in_value) {
        c->in_value = 0;
        c->header_name_len = 0;
    }
    append_clipped(c->header_name, sizeof(c->header_name), &c->header_name_len, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (!c->in_value) {
        static const size_t name_len = sizeof(LOADGEN_INSTANCE_HEADER) - 1;
        c->in_value = 1;
        c->value_ours = c->header_name_len == name_len &&
                        strncasecmp(c->header_name, LOADGEN_INSTANCE_HEADER, name_len) == 0;
        if (c->value_ours)
            c->instance_len = 0; /* repeated: the last one counts */
    }
    if (c->value_ours) /* at most what a result's id holds with its NUL (count_instance) */
        append_clipped(c->instance, sizeof(c->instance) - 1, &c->instance_len, at, len);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->answered || p->status_code < 400 || c->error_len + len > ERROR_BODY_MAX)
        return 0;
    char *grown = realloc(c->error_body, c->error_len + len);
    if (!grown)
        return 0;
    memcpy(grown + c->error_len, at, len);
    c->error_body = grown;
    c->error_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->answered = 1;
    c->status = p->status_code;
    return 0;
}

/* -- entry --------------------------------------------------------------- */

static int build_request(struct loadgen *lg, const char *body, size_t body_len)
{
    char *buf;
    size_t len;
    int err = request_build(lg->opts, "POST", lg->opts->path, body, body_len, NULL, &buf, &len);
    if (err < 0)
        return err;
    lg->request = uv_buf_init(buf, (unsigned)len);
    return 0;
}

static socklen_t addr_len(const struct sockaddr_storage *addr)
{
    return addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* The first /metrics scrape runs beside the load, so no request waits for it. */
static void scrape_before(void *arg)
{
    struct loadgen *lg = arg;
    scrape_fetch(lg->opts, lg->ssl_ctx, (const struct sockaddr *)&lg->addr, addr_len(&lg->addr),
                 &lg->scrape_before);
}

static void on_window_open(uv_timer_t *timer)
{
    struct loadgen *lg = timer->data;
    if (lg->stopping)
        return;
    if (uv_thread_create(&lg->scrape_thread, scrape_before, lg) == 0)
        lg->scrape_started = 1;
}

static void on_series_tick(uv_timer_t *timer)
{
    struct loadgen *lg = timer->data;
    series_tick(&lg->series, uv_hrtime());
}

/* After the loop: the second scrape and the difference. */
static void server_view(struct loadgen *lg)
{
    struct loadgen_result *r = lg->result;
    if (!lg->scrape_started && !lg->scraped) {
        r->server_state = -1;
        snprintf(r->server_why, sizeof(r->server_why), "the run ended before the window opened");
        return;
    }
    if (lg->scrape_started)
        uv_thread_join(&lg->scrape_thread);
    struct scrape *after = malloc(sizeof(*after));
    if (!after) {
        r->server_state = -1;
        snprintf(r->server_why, sizeof(r->server_why), "out of memory");
        return;
    }
    if (lg->scrape_before.ok)
        scrape_fetch(lg->opts, lg->ssl_ctx, (const struct sockaddr *)&lg->addr, addr_len(&lg->addr),
                     after);
    else
        *after = lg->scrape_before;
    r->server_state =
        scrape_diff(&lg->scrape_before, after, r->server, r->server_why, sizeof(r->server_why)) == 0
            ? 1
            : -1;
    free(after);
}

static int resolve(struct loadgen *lg)
{
    uv_getaddrinfo_t req;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    /* With no callback, libuv resolves synchronously: fine before the run. */
    int err = uv_getaddrinfo(&lg->loop, &req, NULL, lg->opts->host, lg->opts->port, &hints);
    if (err < 0) {
        fprintf(stderr, "pyexec-bench: cannot resolve '%s': %s\n", lg->opts->host,
                uv_strerror(err));
        return err;
    }
    memcpy(&lg->addr, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    struct loadgen_result *r = lg->result;
    if (lg->addr.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&lg->addr, r->address, sizeof(r->address));
    else
        uv_ip4_name((struct sockaddr_in *)&lg->addr, r->address, sizeof(r->address));
    uv_freeaddrinfo(req.addrinfo);
    return 0;
}

int loadgen_run(const struct options *opts, const char *body, size_t body_len,
                struct loadgen_result *result)
{
    struct loadgen *lg = calloc(1, sizeof(*lg));
    int err = -ENOMEM;
    if (!lg)
        return err;
    memset(result, 0, sizeof(*result));
    histogram_init(&result->latency);
    histogram_init(&result->connect);
    histogram_init(&result->handshake);
    lg->opts = opts;
    lg->result = result;
    lg->conns = calloc((size_t)opts->connections, sizeof(*lg->conns));
    lg->idle = calloc((size_t)opts->connections, sizeof(*lg->idle));
    if (!lg->conns || !lg->idle)
        goto fail;
    err = uv_loop_init(&lg->loop);
    if (err < 0)
        goto fail;
    err = resolve(lg);
    if (err < 0)
        goto fail_loop;
    err = build_request(lg, body, body_len);
    if (err < 0)
        goto fail_loop;
    if (opts->tls) {
        lg->ssl_ctx = tls_context_new(opts);
        if (!lg->ssl_ctx) {
            err = -EINVAL;
            goto fail_request;
        }
    }

    http_parser_settings_init(&lg->settings);
    lg->settings.on_message_begin = on_message_begin;
    lg->settings.on_header_field = on_header_field;
    lg->settings.on_header_value = on_header_value;
    lg->settings.on_body = on_body;
    lg->settings.on_message_complete = on_message_complete;

    lg->open = options_open_loop(opts);
    lg->ramp = options_ramp(opts);
    lg->due_limit = UINT64_MAX;
    if (lg->open && !lg->ramp) {
        lg->interval_ns = (uint64_t)(1e9 / opts->rate) ? (uint64_t)(1e9 / opts->rate) : 1;
        /* Send k is intended at t0 + k * interval; --requests counts the N
         * sends from the first one intended after warm-up. */
        if (opts->requests)
            lg->due_limit =
                (opts->warmup_ns + lg->interval_ns - 1) / lg->interval_ns + opts->requests;
    }
    if (opts->metrics && !opts->warmup_ns) { /* nothing runs yet: scrape before it does */
        scrape_before(lg);
        lg->scraped = 1;
    }
    uv_update_time(&lg->loop); /* the timers count from here */
    lg->t0 = uv_hrtime();
    lg->t_measure = lg->t0 + opts->warmup_ns;
    lg->t_end = opts->requests ? 0 : lg->t_measure + opts->duration_ns;
    if (opts->series) {
        err = series_open(&lg->series, opts->series, lg->t_measure, lg->t_end,
                          lg->open ? opts->rate : 0, lg->open ? opts->rate_end : 0,
                          (double)opts->duration_ns / 1e9);
        if (err < 0) {
            fprintf(stderr, "pyexec-bench: cannot write --series '%s': %s\n", opts->series,
                    strerror(-err));
            goto fail_request;
        }
    }

    uv_timer_init(&lg->loop, &lg->end_timer);
    uv_timer_init(&lg->loop, &lg->pace_timer);
    uv_timer_init(&lg->loop, &lg->progress_timer);
    uv_timer_init(&lg->loop, &lg->series_timer);
    uv_timer_init(&lg->loop, &lg->scrape_timer);
    lg->end_timer.data = lg->pace_timer.data = lg->progress_timer.data = lg;
    lg->series_timer.data = lg->scrape_timer.data = lg;
    if (!opts->requests)
        uv_timer_start(&lg->end_timer, on_end, (lg->t_end - lg->t0 + 999999) / 1000000, 0);
    if (opts->series)
        uv_timer_start(&lg->series_timer, on_series_tick, 1000, 1000);
    if (opts->metrics && opts->warmup_ns)
        uv_timer_start(&lg->scrape_timer, on_window_open, opts->warmup_ns / 1000000, 0);
    lg->progress = isatty(STDERR_FILENO) && opts->warmup_ns + opts->duration_ns > 2000000000ULL;
    if (lg->progress)
        uv_timer_start(&lg->progress_timer, show_progress, 1000, 1000);

    for (int i = 0; i < opts->connections; i++) {
        struct conn *c = &lg->conns[i];
        c->lg = lg;
        uv_timer_init(&lg->loop, &c->timeout);
        uv_timer_init(&lg->loop, &c->backoff);
        c->timeout.data = c->backoff.data = c;
        c->state = CONN_CLOSED;
    }
    if (open_loop(lg)) {
        for (int i = opts->connections - 1; i >= 0; i--)
            lg->idle[lg->idle_count++] = &lg->conns[i];
        pace(&lg->pace_timer);
    } else {
        for (int i = 0; i < opts->connections && !lg->stopping; i++)
            conn_next(&lg->conns[i]);
    }

    uv_run(&lg->loop, UV_RUN_DEFAULT);
    err = lg->fatal ? -EPROTO : 0;
    if (opts->series) {
        uint64_t end = lg->t_end ? lg->t_end : lg->last_done_ns;
        result->series_rows = lg->series.row;
        if (series_close(&lg->series, end) < 0) {
            fprintf(stderr, "pyexec-bench: writing --series '%s' failed\n", opts->series);
            err = err ? err : -EIO;
        }
        result->series_rows = lg->series.row;
    }
    if (opts->metrics && !lg->fatal)
        server_view(lg);
    else if (lg->scrape_started)
        uv_thread_join(&lg->scrape_thread);
    for (int i = 0; i < opts->connections; i++) {
        free(lg->conns[i].error_body);
        SSL_SESSION_free(lg->conns[i].session);
    }
    SSL_CTX_free(lg->ssl_ctx);
    free(lg->request.base);
    uv_loop_close(&lg->loop);
    free(lg->idle);
    free(lg->conns);
    free(lg);
    return err;
fail_request:
    SSL_CTX_free(lg->ssl_ctx);
    free(lg->request.base);
fail_loop:
    uv_loop_close(&lg->loop);
fail:
    free(lg->idle);
    free(lg->conns);
    free(lg);
    return err;
}
