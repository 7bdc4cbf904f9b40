/* Fuzz target: the HTTP layer (server/http.c) as the acceptor runs it — a real
 * http_server on a libuv loop, fed over a real loopback connection. The input
 * is what one client sends before it half-closes. Whatever it is, the server
 * must answer with a sequence of well-formed HTTP/1.1 responses — the
 * handler's 200s, or one clean JSON 4xx that ends the connection — and leave
 * no connection or handle behind. http.c is used unchanged: it only listens
 * on TCP, so the fuzzer connects to it on 127.0.0.1. */
#include <jansson.h>
#include <string.h>
#include <uv.h>

#include "server/http.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BODY  4096 /* small, so 413 is reachable */
#define FUZZ_MAX_INPUT (256 << 10)
#define FUZZ_IDLE_MS   3000 /* only a hang would wait this long */

static uv_loop_t loop;
static struct http_server *server;
static int port;
static unsigned requests_answered;

/* ---- the server side ---------------------------------------------------- */

static bool in_set(const char *s, const char *allowed)
{
    for (; *s; s++)
        if (!strchr(allowed, *s))
            return false;
    return true;
}

static void on_request(struct http_conn *c, struct http_request *req, void *data)
{
    (void)data;
    FUZZ_CHECK(req->method && req->method[0]);
    FUZZ_CHECK(strlen(req->path) < sizeof(req->path));
    FUZZ_CHECK(req->body && req->body[req->body_len] == '\0');
    FUZZ_CHECK(req->body_len <= FUZZ_MAX_BODY);
    FUZZ_CHECK(req->request_id[0] &&
               in_set(req->request_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789._-"));
    for (const char *t = req->trace; *t; t++)
        FUZZ_CHECK(*t > 0x20 && *t < 0x7f && *t != '"' && *t != '\\');
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"len\":%zu}", req->body_len);
    requests_answered++;
    FUZZ_CHECK(http_respond(c, 200, "", body, (size_t)n) == 0);
}

static void on_abort(struct http_conn *c, void *data)
{
    (void)c;
    (void)data;
    /* Every request is answered before on_request returns: nothing is ever
     * outstanding, so nothing can be aborted. */
    FUZZ_CHECK(!"on_abort without an outstanding request");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    struct http_server_opts opts = {
        .max_header_bytes = 16384, /* as server/main.c */
        .max_body_bytes = FUZZ_MAX_BODY,
        .idle_timeout_ms = FUZZ_IDLE_MS,
        .max_connections = 64,
        .on_request = on_request,
        .on_abort = on_abort,
    };
    FUZZ_CHECK(http_server_start(&loop, "127.0.0.1", 0, &opts, &server, &port) == 0);
    return 0;
}

/* ---- the client side ---------------------------------------------------- */

struct client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_shutdown_t shutdown;
    uv_buf_t out;
    char *in;
    size_t in_len, in_cap;
    bool closed;
};

static void on_client_closed(uv_handle_t *h)
{
    ((struct client *)h->data)->closed = true;
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *cl = h->data;
    (void)suggested;
    if (cl->in_cap - cl->in_len < 65536) {
        cl->in_cap = cl->in_cap * 2 + 65536;
        cl->in = realloc(cl->in, cl->in_cap);
        FUZZ_CHECK(cl->in);
    }
    *buf = uv_buf_init(cl->in + cl->in_len, (unsigned)(cl->in_cap - cl->in_len));
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *cl = s->data;
    (void)buf;
    if (nread < 0) { /* EOF (or a reset): the server is done with us */
        if (!uv_is_closing((uv_handle_t *)&cl->tcp))
            uv_close((uv_handle_t *)&cl->tcp, on_client_closed);
        return;
    }
    cl->in_len += (size_t)nread;
}

static void on_client_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status; /* the server may close on a bad request before reading it all */
}

static void on_client_shutdown(uv_shutdown_t *r, int status)
{
    (void)r;
    (void)status;
}

static void on_client_connected(uv_connect_t *req, int status)
{
    struct client *cl = req->data;
    FUZZ_CHECK(status == 0);
    FUZZ_CHECK(uv_read_start((uv_stream_t *)&cl->tcp, on_client_alloc, on_client_read) == 0);
    if (cl->out.len)
        FUZZ_CHECK(uv_write(&cl->write, (uv_stream_t *)&cl->tcp, &cl->out, 1, on_client_written) ==
                   0);
    /* The client has said everything: half-close, keep reading the answers. */
    FUZZ_CHECK(uv_shutdown(&cl->shutdown, (uv_stream_t *)&cl->tcp, on_client_shutdown) == 0);
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(unsigned *)arg)++;
}

static unsigned open_handles(void)
{
    unsigned n = 0;
    uv_walk(&loop, count_handle, &n);
    return n;
}

/* ---- what came back ----------------------------------------------------- */

/* The value of header name in the head [p, end), or NULL. */
static const char *header_value(const char *p, const char *end, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nlen + 1 && !strncasecmp(p, name, nlen) && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (v < eol && *v == ' ')
                v++;
            *len = (size_t)(eol - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Every byte received is part of a well-formed response; returns the number
 * of 200s. An error answer is JSON and the last thing on the connection. */
static unsigned check_responses(const char *in, size_t len)
{
    unsigned oks = 0;
    size_t off = 0;
    while (off < len) {
        const char *r = in + off;
        size_t left = len - off;
        FUZZ_CHECK(left > 13 && !memcmp(r, "HTTP/1.1 ", 9));
        int status = atoi(r + 9);
        const char *head_end = memmem(r, left, "\r\n\r\n", 4);
        FUZZ_CHECK(head_end);
        const char *line_end = memmem(r, left, "\r\n", 2);
        size_t head_len = (size_t)(head_end - r) + 4;
        if (status == 100) {
            FUZZ_CHECK(head_len == strlen("HTTP/1.1 100 Continue\r\n\r\n"));
            off += head_len;
            continue;
        }
        size_t vlen = 0;
        const char *cl = header_value(line_end + 2, head_end, "Content-Length", &vlen);
        FUZZ_CHECK(cl);
        size_t body_len = strtoul(cl, NULL, 10);
        FUZZ_CHECK(head_len + body_len <= left);
        const char *id = header_value(line_end + 2, head_end, "X-Request-Id", &vlen);
        FUZZ_CHECK(id && vlen > 0 && vlen < 64);
        const char *body = r + head_len;
        off += head_len + body_len;
        if (status == 200) {
            oks++;
            continue;
        }
        FUZZ_CHECK(status == 400 || status == 413 || status == 414 || status == 431);
        json_t *j = json_loadb(body, body_len, 0, NULL);
        FUZZ_CHECK(json_is_object(j) && json_is_string(json_object_get(j, "error")));
        const char *type = json_string_value(json_object_get(j, "type"));
        FUZZ_CHECK(type && !strcmp(type, status == 413 ? "payload_too_large" : "invalid_request"));
        json_decref(j);
        const char *conn = header_value(line_end + 2, head_end, "Connection", &vlen);
        FUZZ_CHECK(conn && vlen == 5 && !strncmp(conn, "close", 5));
        FUZZ_CHECK(off == len); /* nothing after an error: the server closed */
    }
    return oks;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (!server)
        LLVMFuzzerInitialize(NULL, NULL);
    struct client cl;
    memset(&cl, 0, sizeof(cl));
    cl.tcp.data = &cl;
    cl.connect.data = &cl;
    cl.out = uv_buf_init((char *)data, (unsigned)size);
    struct sockaddr_in addr;
    FUZZ_CHECK(uv_ip4_addr("127.0.0.1", port, &addr) == 0);
    FUZZ_CHECK(uv_tcp_init(&loop, &cl.tcp) == 0);
    FUZZ_CHECK(uv_tcp_connect(&cl.connect, &cl.tcp, (const struct sockaddr *)&addr,
                              on_client_connected) == 0);
    requests_answered = 0;
    /* Until our side is closed and the server has freed its side: only the
     * listener is left. */
    while (!cl.closed || open_handles() > 1)
        uv_run(&loop, UV_RUN_ONCE);
    FUZZ_CHECK(http_server_connections(server) == 0);
    FUZZ_CHECK(check_responses(cl.in, cl.in_len) == requests_answered);
    free(cl.in);
    return 0;
}
