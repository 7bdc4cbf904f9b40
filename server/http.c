/* HTTP/1.1 server on libuv and http-parser.
 *
 * A connection is always in one of these states:
 *   READING  parsing a request (or idle between requests); the timer runs
 *   BUSY     a complete request was handed to on_request; no timer, and bytes
 *            that arrive are only buffered (so EOF is still seen → on_abort)
 *   WRITING  the answer is being written; the timer runs
 *   DRAINING the last answer is written and our side shut down; incoming bytes
 *            are discarded until EOF or a short linger, so the peer reads the
 *            answer instead of a reset
 *   CLOSED   uv_close issued; freed when both handles have closed
 * Pipelined bytes after a complete request stay in rbuf, unparsed, until the
 * answer is written. */
#include "server/http.h"

#include <errno.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/errors.h"

#define READ_BUFFER_SIZE  16384
#define LISTEN_BACKLOG    1024
#define LINGER_MAX_MS     2000
#define HEADER_NAME_MAX   32
#define HEADER_VALUE_MAX  256
#define HEADER_LINE_BYTES 4 /* ": " and CRLF, counted against max_header_bytes */

enum conn_state { CONN_READING, CONN_BUSY, CONN_WRITING, CONN_DRAINING, CONN_CLOSED };

/* The few request headers this layer cares about. */
enum header_kind {
    HEADER_OTHER,
    HEADER_CONTENT_TYPE,
    HEADER_REQUEST_ID,
    HEADER_CLOUD_TRACE,
    HEADER_TRACEPARENT,
    HEADER_EXPECT,
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    struct http_server *server;
    struct http_conn *prev, *next;
    enum conn_state state;
    int open_handles; /* tcp + timer; freed at 0 */
    bool reading;     /* uv_read_start is in effect */
    bool counted;     /* counts against max_connections */
    bool keep_alive;
    void *user_data;

    http_parser parser;
    char rbuf[READ_BUFFER_SIZE];
    size_t roff, rlen; /* unparsed bytes: rbuf[roff, roff + rlen) */

    /* The request being parsed (or handed out while BUSY). */
    struct http_request req;
    char *url;
    size_t url_len;
    size_t header_bytes;
    char header_name[HEADER_NAME_MAX];
    size_t header_name_len;
    bool header_name_long;
    bool in_header_value;
    enum header_kind header;
    char header_value[HEADER_VALUE_MAX];
    size_t header_value_len;
    char cloud_trace[sizeof(((struct http_request *)0)->trace)];
    bool expect_continue;
    size_t body_cap;

    /* Set by a parser callback that refuses the request. */
    int refuse_status;
    const char *refuse_type;
    char refuse_message[160];
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct http_server_opts opts;
    http_parser_settings settings;
    struct http_conn *conns; /* every open connection */
    unsigned counted;        /* connections against max_connections */
    unsigned all;            /* every allocated connection */
    bool stopping;
    bool listener_open;
    uint64_t id_seed;
    uint64_t id_counter;
    char instance_header[128]; /* "X-Pyexec-Instance: ID\r\n", or "" */
};

/* ---- small helpers ------------------------------------------------------ */

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    }
    return "Unknown";
}

/* splitmix64: a bijection, so seed + counter never repeats an id in a process. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void generate_request_id(struct http_server *s, char out[64])
{
    snprintf(out, 64, "%016llx", (unsigned long long)mix64(s->id_seed + s->id_counter++));
}

/* Copy value keeping only bytes accepted by keep(), at most cap - 1 of them. */
static void copy_filtered(char *out, size_t cap, const char *value, size_t len,
                          bool (*keep)(unsigned char))
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++)
        if (keep((unsigned char)value[i]))
            out[o++] = value[i];
    out[o] = '\0';
}

static bool request_id_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* Visible ASCII except quote and backslash: trace ids end up in log lines. */
static bool trace_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
}

/* ---- connection lifetime ----------------------------------------------- */

static void server_free_if_done(struct http_server *s)
{
    if (s->stopping && !s->listener_open && s->all == 0)
        free(s);
}

static void request_reset(struct http_conn *c)
{
    free(c->url);
    free(c->req.body);
    free(c->req.content_type);
    c->url = NULL;
    c->url_len = 0;
    memset(&c->req, 0, sizeof(c->req));
    c->header_bytes = 0;
    c->header_name_len = 0;
    c->header_name_long = false;
    c->in_header_value = false;
    c->header = HEADER_OTHER;
    c->header_value_len = 0;
    c->cloud_trace[0] = '\0';
    c->expect_continue = false;
    c->body_cap = 0;
    c->refuse_status = 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct http_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    request_reset(c);
    free(c);
    s->all--;
    server_free_if_done(s);
}

/* Close now. A request still with the dispatcher is aborted here, and only
 * here, so on_abort runs exactly once. */
static void conn_close(struct http_conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    bool was_busy = c->state == CONN_BUSY;
    c->state = CONN_CLOSED;
    if (c->counted) {
        c->counted = false;
        c->server->counted--;
    }
    if (was_busy && c->server->opts.on_abort)
        c->server->opts.on_abort(c, c->server->opts.data);
    /* A handle someone else already closed (uv_walk at exit) is theirs to
     * finish; c then stays allocated until the process ends, never freed
     * under libuv's feet. */
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timeout(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    if (c->state != CONN_BUSY)
        conn_close(c);
}

static void timer_arm(struct http_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timeout, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    (void)suggested;
    if (c->state == CONN_DRAINING || c->state == CONN_CLOSED) {
        *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
        return;
    }
    /* Keep unparsed bytes at the front so new ones append after them. */
    if (c->roff > 0) {
        memmove(c->rbuf, c->rbuf + c->roff, c->rlen);
        c->roff = 0;
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void conn_parse(struct http_conn *c);

static void reading_set(struct http_conn *c, bool on)
{
    if (on == c->reading)
        return;
    if (on && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    if (!on)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = on;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    if (status < 0)
        conn_close(c);
}

/* Our last answer is out: send FIN, then wait briefly for the peer's EOF. */
static void conn_linger(struct http_conn *c)
{
    c->state = CONN_DRAINING;
    c->rlen = 0;
    c->roff = 0;
    uint64_t linger = c->server->opts.idle_timeout_ms;
    timer_arm(c, linger < LINGER_MAX_MS ? linger : LINGER_MAX_MS);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    reading_set(c, true);
}

/* ---- writing answers ---------------------------------------------------- */

struct write_job {
    uv_write_t req;
    struct http_conn *conn;
    bool is_final; /* the answer to the current request, not "100 Continue" */
};

static void on_answer_written(uv_write_t *wreq, int status)
{
    struct write_job *job = (struct write_job *)wreq;
    struct http_conn *c = job->conn;
    bool is_final = job->is_final;
    free(job); /* the answer bytes are allocated in the same block */
    if (c->state == CONN_CLOSED || !is_final)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (!c->keep_alive || c->server->stopping) {
        conn_linger(c);
        return;
    }
    /* Ready for the next request: first the pipelined bytes already here. */
    request_reset(c);
    c->state = CONN_READING;
    timer_arm(c, c->server->opts.idle_timeout_ms);
    http_parser_pause(&c->parser, 0);
    conn_parse(c);
    if (c->state == CONN_READING || c->state == CONN_BUSY)
        reading_set(c, true);
}

/* One allocation holds the write request, the head and a copy of the body. */
static int write_answer(struct http_conn *c, int status, const char *content_type,
                        const char *extra_headers, const char *body, size_t body_len)
{
    const char *connection = c->keep_alive && !c->server->stopping ? "keep-alive" : "close";
    char *head;
    int head_len =
        asprintf(&head,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nX-Request-Id: %s\r\n%sConnection: %s\r\n%s\r\n",
                 status, http_status_text(status), content_type, body_len, c->req.request_id,
                 c->server->instance_header, connection, extra_headers ? extra_headers : "");
    if (head_len < 0)
        return -ENOMEM;
    struct write_job *job = malloc(sizeof(*job) + (size_t)head_len + body_len);
    if (!job) {
        free(head);
        return -ENOMEM;
    }
    char *text = (char *)(job + 1);
    memcpy(text, head, (size_t)head_len);
    free(head);
    if (body_len)
        memcpy(text + head_len, body, body_len);
    job->conn = c;
    job->is_final = true;
    uv_buf_t buf = uv_buf_init(text, (unsigned)((size_t)head_len + body_len));
    int rc = uv_write(&job->req, (uv_stream_t *)&c->tcp, &buf, 1, on_answer_written);
    if (rc < 0) {
        free(job);
        return rc;
    }
    c->state = CONN_WRITING;
    /* A peer that never reads its answer must not hold the connection. */
    timer_arm(c, c->server->opts.idle_timeout_ms);
    return 0;
}

int http_respond(struct http_conn *c, int status, const char *extra_headers, const char *body,
                 size_t body_len)
{
    return http_respond_as(c, status, "application/json", extra_headers, body, body_len);
}

int http_respond_as(struct http_conn *c, int status, const char *content_type,
                    const char *extra_headers, const char *body, size_t body_len)
{
    if (!c || c->state != CONN_BUSY)
        return -EINVAL;
    /* The dispatcher is done with the request; drop its body now. */
    free(c->req.body);
    c->req.body = NULL;
    int rc = write_answer(c, status, content_type, extra_headers, body, body_len);
    if (rc < 0) {
        c->state = CONN_READING; /* not BUSY: no on_abort for an answered request */
        conn_close(c);
    }
    return rc;
}

/* This layer's own refusals (400, 413, 431, 503): answer, then close. */
static void answer_and_close(struct http_conn *c, int status, const char *type, const char *message,
                             const char *extra_headers)
{
    size_t len = 0;
    char *body = error_body(type, message, &len);
    if (!c->req.request_id[0])
        generate_request_id(c->server, c->req.request_id);
    c->keep_alive = false;
    uv_timer_stop(&c->timer);
    if (!body || write_answer(c, status, "application/json", extra_headers, body, len) < 0)
        conn_close(c);
    free(body);
}

static void on_continue_written(uv_write_t *wreq, int status)
{
    (void)status;
    free(wreq);
}

static void write_continue(struct http_conn *c)
{
    static char text[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct write_job *job = calloc(1, sizeof(*job));
    if (!job)
        return; /* the client sends the body after its own short wait anyway */
    job->conn = c;
    uv_buf_t buf = uv_buf_init(text, sizeof(text) - 1);
    if (uv_write(&job->req, (uv_stream_t *)&c->tcp, &buf, 1, on_continue_written) < 0)
        free(job);
}

/* ---- parser callbacks --------------------------------------------------- */

/* Remember why and pause the parser: http_parser_execute returns at once and
 * conn_parse answers. (Pausing, not a nonzero return, because a nonzero
 * return from on_headers_complete means "no body" to http-parser.) */
static void refuse(struct http_conn *c, int status, const char *type, const char *message)
{
    c->refuse_status = status;
    c->refuse_type = type;
    snprintf(c->refuse_message, sizeof(c->refuse_message), "%s", message);
    http_parser_pause(&c->parser, 1);
}

/* Counts request-line and header bytes; true (and refused) once over the cap. */
static bool header_bytes_exceeded(struct http_conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes <= c->server->opts.max_header_bytes)
        return false;
    char message[160];
    snprintf(message, sizeof(message),
             "The request line and headers exceed %zu bytes; send fewer or shorter headers.",
             c->server->opts.max_header_bytes);
    refuse(c, 431, "invalid_request", message);
    return true;
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    c->req.start_ns = uv_hrtime();
    /* From the first byte the whole request must arrive within the timeout. */
    timer_arm(c, c->server->opts.idle_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (header_bytes_exceeded(c, len))
        return 0;
    char *url = realloc(c->url, c->url_len + len + 1);
    if (!url)
        return -1;
    memcpy(url + c->url_len, at, len);
    c->url = url;
    c->url_len += len;
    url[c->url_len] = '\0';
    return 0;
}

static void header_finish(struct http_conn *c)
{
    const char *v = c->header_value;
    size_t len = c->header_value_len;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    switch (c->header) {
    case HEADER_CONTENT_TYPE:
        free(c->req.content_type);
        c->req.content_type = strndup(v, len);
        break;
    case HEADER_REQUEST_ID:
        copy_filtered(c->req.request_id, sizeof(c->req.request_id), v, len, request_id_char);
        break;
    case HEADER_CLOUD_TRACE:
        copy_filtered(c->cloud_trace, sizeof(c->cloud_trace), v, len, trace_char);
        break;
    case HEADER_TRACEPARENT:
        copy_filtered(c->req.trace, sizeof(c->req.trace), v, len, trace_char);
        break;
    case HEADER_EXPECT:
        c->expect_continue = len == 12 && strncasecmp(v, "100-continue", 12) == 0;
        break;
    case HEADER_OTHER:
        break;
    }
    c->header = HEADER_OTHER;
    c->header_name_len = 0;
    c->header_name_long = false;
    c->header_value_len = 0;
    c->in_header_value = false;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->in_header_value)
        header_finish(c);
    bool new_header = c->header_name_len == 0 && !c->header_name_long;
    if (header_bytes_exceeded(c, len + (new_header ? HEADER_LINE_BYTES : 0)))
        return 0;
    if (c->header_name_len + len >= sizeof(c->header_name)) {
        c->header_name_long = true;
        return 0;
    }
    memcpy(c->header_name + c->header_name_len, at, len);
    c->header_name_len += len;
    return 0;
}

static enum header_kind header_kind_of(const char *name, size_t len)
{
    static const struct {
        const char *name;
        enum header_kind kind;
    } known[] = {
        {"content-type", HEADER_CONTENT_TYPE},
        {"x-request-id", HEADER_REQUEST_ID},
        {"x-cloud-trace-context", HEADER_CLOUD_TRACE},
        {"traceparent", HEADER_TRACEPARENT},
        {"expect", HEADER_EXPECT},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i].name) == len && strncasecmp(known[i].name, name, len) == 0)
            return known[i].kind;
    return HEADER_OTHER;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (!c->in_header_value) {
        c->in_header_value = true;
        c->header =
            c->header_name_long ? HEADER_OTHER : header_kind_of(c->header_name, c->header_name_len);
    }
    if (header_bytes_exceeded(c, len))
        return 0;
    if (c->header == HEADER_OTHER)
        return 0;
    size_t room = sizeof(c->header_value) - c->header_value_len;
    size_t n = len < room ? len : room;
    memcpy(c->header_value + c->header_value_len, at, n);
    c->header_value_len += n;
    return 0;
}

/* The path part of the request target ("/execute?x=1" → "/execute");
 * false (and refused) when there is none usable. */
static bool request_path(struct http_conn *c)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (!c->url ||
        http_parser_parse_url(c->url, c->url_len, c->parser.method == HTTP_CONNECT, &u) != 0) {
        refuse(c, 400, "invalid_request", "The request target is not a valid URL.");
        return false;
    }
    if (!(u.field_set & (1 << UF_PATH))) {
        snprintf(c->req.path, sizeof(c->req.path), "/");
        return true;
    }
    size_t len = u.field_data[UF_PATH].len;
    if (len >= sizeof(c->req.path)) {
        refuse(c, 414, "invalid_request",
               "The request path is longer than 1023 bytes; use a shorter one.");
        return false;
    }
    memcpy(c->req.path, c->url + u.field_data[UF_PATH].off, len);
    c->req.path[len] = '\0';
    return true;
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_server *s = c->server;
    if (c->in_header_value)
        header_finish(c);
    if (c->cloud_trace[0]) /* preferred over traceparent */
        memcpy(c->req.trace, c->cloud_trace, sizeof(c->req.trace));
    if (!c->req.request_id[0])
        generate_request_id(s, c->req.request_id);
    c->req.method = http_method_str((enum http_method)p->method);
    if (p->http_major != 1 || p->http_minor > 1) {
        refuse(c, 400, "invalid_request",
               "Only HTTP/1.0 and HTTP/1.1 are supported; send an HTTP/1.1 request.");
        return 0;
    }
    if (!request_path(c))
        return 0;
    c->keep_alive = http_should_keep_alive(p);

    if ((p->flags & F_CONTENTLENGTH) && p->content_length > s->opts.max_body_bytes) {
        char message[160];
        snprintf(message, sizeof(message),
                 "The request body is %llu bytes; the limit is %zu bytes.",
                 (unsigned long long)p->content_length, s->opts.max_body_bytes);
        refuse(c, 413, "payload_too_large", message);
        return 0;
    }
    /* Known length: one allocation. Chunked: grow in on_body up to the cap. */
    c->body_cap = (p->flags & F_CONTENTLENGTH) ? (size_t)p->content_length + 1 : 1;
    c->req.body = malloc(c->body_cap);
    if (!c->req.body) {
        refuse(c, 500, "internal", "The server ran out of memory; retry later.");
        return 0;
    }
    c->req.body[0] = '\0';
    if (c->expect_continue && p->http_minor == 1)
        write_continue(c);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    size_t max = c->server->opts.max_body_bytes;
    if (c->req.body_len + len > max) {
        char message[160];
        snprintf(message, sizeof(message), "The request body exceeds the limit of %zu bytes.", max);
        refuse(c, 413, "payload_too_large", message);
        return 0;
    }
    if (c->req.body_len + len + 1 > c->body_cap) {
        size_t cap = c->body_cap * 2;
        while (cap < c->req.body_len + len + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *body = realloc(c->req.body, cap);
        if (!body) {
            refuse(c, 500, "internal", "The server ran out of memory; retry later.");
            return 0;
        }
        c->req.body = body;
        c->body_cap = cap;
    }
    memcpy(c->req.body + c->req.body_len, at, len);
    c->req.body_len += len;
    c->req.body[c->req.body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    /* One request at a time: stop here, the rest waits for the answer. */
    http_parser_pause(p, 1);
    return 0;
}

/* ---- reading ------------------------------------------------------------ */

/* Parse buffered bytes; hand out a completed request or answer a bad one. */
static void conn_parse(struct http_conn *c)
{
    while (c->state == CONN_READING && c->rlen > 0) {
        size_t n =
            http_parser_execute(&c->parser, &c->server->settings, c->rbuf + c->roff, c->rlen);
        c->roff += n;
        c->rlen -= n;
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (c->refuse_status) {
            answer_and_close(c, c->refuse_status, c->refuse_type, c->refuse_message, "");
            return;
        }
        if (err == HPE_PAUSED) {
            if (c->parser.upgrade)
                c->keep_alive = false; /* no protocol switching here */
            uv_timer_stop(&c->timer);
            c->state = CONN_BUSY;
            c->server->opts.on_request(c, &c->req, c->server->opts.data);
            return;
        }
        if (err == HPE_HEADER_OVERFLOW) {
            answer_and_close(c, 431, "invalid_request",
                             "The request line and headers are too large; send fewer or "
                             "shorter headers.",
                             "");
            return;
        }
        if (err != HPE_OK) {
            char message[160];
            snprintf(message, sizeof(message), "The request is not valid HTTP/1.1 (%s).",
                     http_errno_description(err));
            answer_and_close(c, 400, "invalid_request", message, "");
            return;
        }
    }
    if (c->rlen == 0)
        c->roff = 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = stream->data;
    (void)buf;
    if (nread == UV_ENOBUFS) { /* rbuf full of pipelined bytes: wait for the answer */
        reading_set(c, false);
        return;
    }
    if (nread < 0) { /* EOF or error: a BUSY request is aborted in conn_close */
        conn_close(c);
        return;
    }
    if (c->state == CONN_DRAINING || c->state == CONN_CLOSED || nread == 0)
        return;
    c->rlen += (size_t)nread;
    if (c->state == CONN_READING) {
        conn_parse(c);
        return;
    }
    /* BUSY or WRITING: keep the bytes for later; stop reading once full. */
    if (c->roff + c->rlen == sizeof(c->rbuf))
        reading_set(c, false);
}

/* ---- accepting ---------------------------------------------------------- */

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status < 0 || s->stopping)
        return;
    struct http_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->server = s;
    c->tcp.data = c;
    c->timer.data = c;
    c->parser.data = c;
    if (uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    uv_timer_init(s->loop, &c->timer);
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->all++;
    c->state = CONN_READING;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->counted >= s->opts.max_connections) {
        /* Tell the client why rather than dropping it; never many of these. */
        if (s->all > 2 * (size_t)s->opts.max_connections + 16) {
            conn_close(c);
            return;
        }
        reading_set(c, true);
        answer_and_close(c, 503, "overloaded",
                         "The server has too many open connections; retry in a second.",
                         "Retry-After: 1\r\n");
        return;
    }
    c->counted = true;
    s->counted++;
    timer_arm(c, s->opts.idle_timeout_ms);
    reading_set(c, true);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->listener_open = false;
    server_free_if_done(s);
}

int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const struct http_server_opts *opts, struct http_server **out,
                      int *bound_port)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } addr;
    int rc;
    if (!opts->on_request || port < 0 || port > 65535)
        return -EINVAL;
    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, port, &addr.in6);
    else
        rc = uv_ip4_addr(host, port, &addr.in4);
    if (rc < 0)
        return rc;

    struct http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->opts = *opts;
    if (s->opts.max_connections == 0)
        s->opts.max_connections = 1;
    http_parser_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    uv_random(NULL, NULL, &s->id_seed, sizeof(s->id_seed), 0, NULL);
    if (opts->instance && opts->instance[0])
        snprintf(s->instance_header, sizeof(s->instance_header), "X-Pyexec-Instance: %.96s\r\n",
                 opts->instance);

    rc = uv_tcp_init(loop, &s->listener);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->listener.data = s;
    s->listener_open = true;
    /* libuv sets SO_REUSEADDR on bind. */
    rc = uv_tcp_bind(&s->listener, &addr.sa, 0);
    if (rc < 0)
        goto fail;
    rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
    if (rc < 0)
        goto fail;
    int len = sizeof(addr);
    rc = uv_tcp_getsockname(&s->listener, &addr.sa, &len);
    if (rc < 0)
        goto fail;
    if (bound_port)
        *bound_port = ntohs(addr.sa.sa_family == AF_INET6 ? addr.in6.sin6_port : addr.in4.sin_port);
    *out = s;
    return 0;
fail:
    /* The handle must be closed by the loop; s is freed once it is. */
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    return rc;
}

void http_server_stop(struct http_server *s)
{
    if (!s || s->stopping)
        return;
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (struct http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == CONN_READING)
            conn_close(c);
        /* BUSY and WRITING close after their answer (stopping → Connection: close);
         * DRAINING ones are already on their way out. */
    }
}

unsigned http_server_connections(const struct http_server *s)
{
    return s->counted;
}

void http_conn_set_data(struct http_conn *c, void *data)
{
    c->user_data = data;
}

void *http_conn_get_data(struct http_conn *c)
{
    return c->user_data;
}
