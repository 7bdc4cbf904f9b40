#include "bench/loadgen.h"

#include <errno.h>
#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define ERROR_BODY_MAX (64 * 1024) /* enough for any error object; more is dropped */
#define READ_BUF_SIZE  (16 * 1024) /* answers are small; a big one takes more reads */
#define BACKOFF_MS     10          /* after a failed request, so a dead server is not spun on */

enum conn_state { CONN_CLOSED, CONN_CONNECTING, CONN_OPEN, CONN_CLOSING };

enum outcome { OUT_RESPONSE, OUT_CONNECT, OUT_IO, OUT_PARSE, OUT_TIMEOUT };

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
    char read_buf[READ_BUF_SIZE];
};

struct loadgen {
    uv_loop_t loop;
    const struct options *opts;
    struct loadgen_result *result;
    struct sockaddr_storage addr;
    uv_buf_t request; /* the whole request, shared read-only by every write */
    http_parser_settings settings;
    struct conn *conns;
    struct conn **idle; /* open loop: connections with nothing to send */
    int idle_count;
    uv_timer_t end_timer;
    uv_timer_t pace_timer;
    uv_timer_t progress_timer;
    int progress;
    int stopping;
    uint64_t t0, t_measure, t_end; /* ns; t_end is 0 in --requests mode */
    uint64_t interval_ns;          /* open loop: 1e9 / rate */
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
    return lg->interval_ns != 0;
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
        case OUT_TIMEOUT:
            r->timeouts++;
            break;
        }
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

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* At EOF, an answer delimited by the close completes now. */
        if (nread == UV_EOF && c->busy)
            http_parser_execute(&c->parser, &c->lg->settings, NULL, 0);
        if (c->busy && c->answered) {
            conn_close(c);
            finish_request(c, OUT_RESPONSE);
        } else {
            fail_request(c, OUT_IO); /* no error if idle: keep-alive closed */
        }
        return;
    }
    if (!c->busy) { /* bytes nobody asked for */
        conn_close(c);
        return;
    }
    size_t parsed = http_parser_execute(&c->parser, &c->lg->settings, buf->base, (size_t)nread);
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || parsed != (size_t)nread) {
        /* Includes bytes past the answer: we never pipeline, so that is a fault. */
        fail_request(c, OUT_PARSE);
        return;
    }
    if (!c->answered)
        return;
    if (!http_should_keep_alive(&c->parser))
        conn_close(c);
    finish_request(c, OUT_RESPONSE);
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
    c->state = CONN_OPEN;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    int err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (err < 0) {
        fail_request(c, OUT_IO);
        return;
    }
    if (c->busy)
        send_request(c);
}

static void conn_connect(struct conn *c)
{
    int err = uv_tcp_init(&c->lg->loop, &c->tcp);
    if (err < 0)
        goto fail;
    c->tcp.data = c;
    c->connect_req.data = c;
    c->state = CONN_CONNECTING;
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
    if (c->state == CONN_OPEN)
        send_request(c);
    else if (c->state == CONN_CLOSED)
        conn_connect(c);
    /* CONNECTING sends once connected; CLOSING reconnects in on_close. */
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
        conn_issue(c, lg->t0 + lg->sent++ * lg->interval_ns);
        return;
    }
    lg->idle[lg->idle_count++] = c;
}

/* -- run control --------------------------------------------------------- */

static void pace(uv_timer_t *timer)
{
    struct loadgen *lg = timer->data;
    uint64_t now = uv_hrtime();
    uint64_t due = (now - lg->t0) / lg->interval_ns + 1;
    if (due > lg->due_limit)
        due = lg->due_limit;
    if (due > lg->due)
        lg->due = due;
    while (lg->sent < lg->due && lg->idle_count > 0)
        conn_issue(lg->idle[--lg->idle_count], lg->t0 + lg->sent++ * lg->interval_ns);
    if (lg->stopping || lg->due == lg->due_limit)
        return;
    uint64_t next = lg->t0 + lg->due * lg->interval_ns;
    uint64_t wait_ms = next > now ? (next - now + 999999) / 1000000 : 0;
    uv_timer_start(&lg->pace_timer, pace, wait_ms, 0);
}

static void show_progress(uv_timer_t *timer)
{
    struct loadgen *lg = timer->data;
    const struct loadgen_result *r = lg->result;
    uint64_t now = uv_hrtime();
    uint64_t errors = r->connect_errors + r->io_errors + r->parse_errors + r->timeouts;
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
    if (lg->progress)
        fprintf(stderr, "\r%70s\r", "");
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
    const struct options *o = lg->opts;
    const char *open = strchr(o->host, ':') ? "[" : "", *close = *open ? "]" : "";
    int port_shown = strcmp(o->port, "80") != 0;
    char head[2048];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: pyexec-bench\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     o->path, open, o->host, close, port_shown ? ":" : "",
                     port_shown ? o->port : "", body_len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return -ENAMETOOLONG;
    char *buf = malloc((size_t)n + body_len);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, body, body_len);
    lg->request = uv_buf_init(buf, (unsigned)((size_t)n + body_len));
    return 0;
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

    http_parser_settings_init(&lg->settings);
    lg->settings.on_message_begin = on_message_begin;
    lg->settings.on_body = on_body;
    lg->settings.on_message_complete = on_message_complete;

    if (opts->rate > 0) {
        lg->interval_ns = (uint64_t)(1e9 / opts->rate) ? (uint64_t)(1e9 / opts->rate) : 1;
        /* Send k is intended at t0 + k * interval; --requests counts the N
         * sends from the first one intended after warm-up. */
        lg->due_limit = UINT64_MAX;
        if (opts->requests)
            lg->due_limit =
                (opts->warmup_ns + lg->interval_ns - 1) / lg->interval_ns + opts->requests;
    }
    lg->t0 = uv_hrtime();
    lg->t_measure = lg->t0 + opts->warmup_ns;
    lg->t_end = opts->requests ? 0 : lg->t_measure + opts->duration_ns;

    uv_timer_init(&lg->loop, &lg->end_timer);
    uv_timer_init(&lg->loop, &lg->pace_timer);
    uv_timer_init(&lg->loop, &lg->progress_timer);
    lg->end_timer.data = lg->pace_timer.data = lg->progress_timer.data = lg;
    if (!opts->requests)
        uv_timer_start(&lg->end_timer, on_end, (lg->t_end - lg->t0 + 999999) / 1000000, 0);
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
    for (int i = 0; i < opts->connections; i++)
        free(lg->conns[i].error_body);
    free(lg->request.base);
    uv_loop_close(&lg->loop);
    free(lg->idle);
    free(lg->conns);
    free(lg);
    return 0;
fail_loop:
    uv_loop_close(&lg->loop);
fail:
    free(lg->idle);
    free(lg->conns);
    free(lg);
    return err;
}
