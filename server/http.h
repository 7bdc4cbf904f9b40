/* HTTP/1.1 on libuv with http-parser: accepts connections, parses requests
 * (keep-alive, pipelining one at a time, Content-Length and chunked bodies,
 * Expect: 100-continue), enforces size caps and timeouts, and writes
 * responses. Knows nothing of routes. Runs in the acceptor: started and
 * stopped by main.c; routes.c answers each request through it. */
#ifndef PYEXEC_HTTP_H
#define PYEXEC_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct http_conn;

struct http_request {
    const char *method;  /* "GET", "POST", ... */
    char path[1024];     /* without the query string */
    char *content_type;  /* NULL when absent */
    char request_id[64]; /* X-Request-Id (sanitised) or a generated one */
    char trace[128];     /* X-Cloud-Trace-Context or traceparent, "" when absent */
    char *body;          /* de-chunked, NUL-terminated */
    size_t body_len;
    uint64_t start_ns; /* uv_hrtime() when the first byte of the request arrived */
};

struct http_server_opts {
    size_t max_header_bytes;  /* request line + headers; over it: 431 and close */
    size_t max_body_bytes;    /* over it: 413 (before reading when Content-Length says so) */
    uint64_t idle_timeout_ms; /* idle keep-alive, or a request trickling in: close */
    unsigned max_connections; /* beyond it new connections are closed at once */
    const char *instance;     /* X-Pyexec-Instance of every answer (token bytes), or NULL */
    /* A complete request. The callee must answer it exactly once with
     * http_respond (now or later); the connection reads no further request
     * until then. req stays valid until the answer or on_abort. */
    void (*on_request)(struct http_conn *c, struct http_request *req, void *data);
    /* The peer went away while its request was still unanswered; after this
     * http_respond on c must not be called. */
    void (*on_abort)(struct http_conn *c, void *data);
    void *data;
};

struct http_server;

/* Listen on host:port (IPv6 when host contains ':'). *bound_port receives the
 * actual port (port 0 = any). On failure nothing is left behind once the loop
 * has run (a half-made listener is closed through the loop). */
int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const struct http_server_opts *opts, struct http_server **out,
                      int *bound_port);
/* Stop accepting; close idle connections now and busy ones after their answer
 * (which then says Connection: close). The server frees itself once its last
 * handle has closed, so uv_run returns; do not use s after this call. */
void http_server_stop(struct http_server *s);
/* Open client connections counted against max_connections. */
unsigned http_server_connections(const struct http_server *s);

/* Answer the connection's current request with a JSON body. extra_headers is
 * "" or complete "Name: value\r\n" lines. Sets Content-Type, Content-Length,
 * Connection, X-Request-Id and X-Pyexec-Instance. The body is copied: the caller keeps ownership
 * and may free it on return. req (from on_request) is invalid after the call.
 * Returns 0, or -EINVAL when c has no request awaiting an answer, or another
 * -errno when the write failed: then the connection is closed at once and
 * on_abort is NOT called for it (it was answered, as far as the caller is
 * concerned); forget c either way. */
int http_respond(struct http_conn *c, int status, const char *extra_headers, const char *body,
                 size_t body_len);

/* The same with another Content-Type (e.g. Prometheus text for /metrics). */
int http_respond_as(struct http_conn *c, int status, const char *content_type,
                    const char *extra_headers, const char *body, size_t body_len);

/* The per-connection pointer the dispatcher may hang its state on. */
void http_conn_set_data(struct http_conn *c, void *data);
void *http_conn_get_data(struct http_conn *c);

/* "OK", "Bad Request", ... */
const char *http_status_text(int status);

#endif
