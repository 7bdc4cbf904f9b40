/* server/http.c over real sockets: the server's loop runs on a thread, the
 * test talks to it as a plain POSIX client on 127.0.0.1. Every wait is on a
 * condition (a reply, EOF, a counter); the 10 s socket and condition-variable
 * deadlines only turn a hang into a failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "server/http.h"

#define GUARD_SECONDS 10

/* ---- the server side, on its own thread ---------------------------------- */

struct fixture {
    uv_loop_t loop;
    uv_async_t wake;
    struct http_server *server;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool defer; /* hold requests instead of answering them */
    /* written by the loop thread under mu */
    int requests;
    int aborts;
    int second_respond_rc;
    struct http_conn *held;
    char method[16];
    char path[1024];
    char body[8192];
    size_t body_len;
    char request_id[64];
    char trace[128];
    char content_type[128];
    bool server_stopped;
    bool running; /* the loop thread exists (test side only) */
    /* commands from the test thread under mu */
    bool cmd_stop_server;
    bool cmd_answer_held;
    bool cmd_quit;
};

static struct fixture fx;

static void on_request(struct http_conn *c, struct http_request *req, void *data)
{
    struct fixture *f = data;
    pthread_mutex_lock(&f->mu);
    f->requests++;
    snprintf(f->method, sizeof(f->method), "%s", req->method);
    snprintf(f->path, sizeof(f->path), "%s", req->path);
    f->body_len = req->body_len < sizeof(f->body) ? req->body_len : sizeof(f->body) - 1;
    memcpy(f->body, req->body, f->body_len);
    f->body[f->body_len] = '\0';
    snprintf(f->request_id, sizeof(f->request_id), "%s", req->request_id);
    snprintf(f->trace, sizeof(f->trace), "%s", req->trace);
    snprintf(f->content_type, sizeof(f->content_type), "%s",
             req->content_type ? req->content_type : "(none)");
    if (f->defer) {
        f->held = c;
    } else {
        json_t *echo =
            json_pack("{s:i, s:s, s:s, s:s%, s:I}", "n", f->requests, "method", req->method, "path",
                      req->path, "body", req->body_len < 1000 ? req->body : "(long)",
                      req->body_len < 1000 ? req->body_len : 6, "len", (json_int_t)req->body_len);
        char *text = json_dumps(echo, JSON_COMPACT);
        http_respond(c, 200, "", text, strlen(text));
        f->second_respond_rc = http_respond(c, 200, "", "{}", 2);
        free(text);
        json_decref(echo);
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void on_abort(struct http_conn *c, void *data)
{
    struct fixture *f = data;
    pthread_mutex_lock(&f->mu);
    f->aborts++;
    if (f->held == c)
        f->held = NULL;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void on_wake(uv_async_t *a)
{
    struct fixture *f = a->data;
    pthread_mutex_lock(&f->mu);
    if (f->cmd_stop_server && !f->server_stopped) {
        http_server_stop(f->server);
        f->server_stopped = true;
    }
    if (f->cmd_answer_held && f->held) {
        static const char late[] = "{\"late\":true}";
        http_respond(f->held, 200, "X-Extra: yes\r\n", late, sizeof(late) - 1);
        f->held = NULL;
    }
    f->cmd_answer_held = false;
    if (f->cmd_quit)
        uv_close((uv_handle_t *)&f->wake, NULL);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void *loop_thread(void *arg)
{
    struct fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static struct http_server_opts default_opts(void)
{
    struct http_server_opts o = {
        .max_header_bytes = 8192,
        .max_body_bytes = 65536,
        .idle_timeout_ms = 10000,
        .max_connections = 16,
        .on_request = on_request,
        .on_abort = on_abort,
        .data = &fx,
    };
    return o;
}

static void server_start(const struct http_server_opts *opts, bool defer)
{
    memset(&fx, 0, sizeof(fx));
    fx.defer = defer;
    pthread_mutex_init(&fx.mu, NULL);
    pthread_cond_init(&fx.cv, NULL);
    assert_int_equal(uv_loop_init(&fx.loop), 0);
    assert_int_equal(uv_async_init(&fx.loop, &fx.wake, on_wake), 0);
    fx.wake.data = &fx;
    assert_int_equal(http_server_start(&fx.loop, "127.0.0.1", 0, opts, &fx.server, &fx.port), 0);
    assert_true(fx.port > 0);
    assert_int_equal(pthread_create(&fx.thread, NULL, loop_thread, &fx), 0);
    fx.running = true;
}

static void command(bool *flag)
{
    pthread_mutex_lock(&fx.mu);
    *flag = true;
    pthread_mutex_unlock(&fx.mu);
    uv_async_send(&fx.wake);
}

/* Stops the server, ends the loop and checks that every handle was closed. */
static void server_finish(void)
{
    if (!fx.running)
        return;
    fx.running = false;
    pthread_mutex_lock(&fx.mu);
    fx.cmd_stop_server = true;
    fx.cmd_quit = true;
    pthread_mutex_unlock(&fx.mu);
    uv_async_send(&fx.wake);
    assert_int_equal(pthread_join(fx.thread, NULL), 0);
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    pthread_mutex_destroy(&fx.mu);
    pthread_cond_destroy(&fx.cv);
}

/* Also after a failed test, so its loop thread never outlives it. */
static int teardown(void **state)
{
    (void)state;
    server_finish();
    return 0;
}

/* A copy of what the handler recorded, taken under the lock: the answer can
 * reach the client before the handler has left its critical section. */
static struct fixture snapshot(void)
{
    pthread_mutex_lock(&fx.mu);
    struct fixture copy = fx;
    pthread_mutex_unlock(&fx.mu);
    return copy;
}

/* Waits until *counter reaches want (or the guard deadline passes). */
static int wait_count(const int *counter, int want)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += GUARD_SECONDS;
    pthread_mutex_lock(&fx.mu);
    while (*counter < want)
        if (pthread_cond_timedwait(&fx.cv, &fx.mu, &deadline) == ETIMEDOUT)
            break;
    int got = *counter;
    pthread_mutex_unlock(&fx.mu);
    return got;
}

/* ---- the client side ---------------------------------------------------- */

struct client {
    int fd;
    char buf[65536];
    size_t len;
};

struct response {
    int status;
    char head[4096];
    char body[16384];
    size_t body_len;
};

static void client_open(struct client *cl)
{
    memset(cl, 0, sizeof(*cl));
    cl->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cl->fd >= 0);
    struct timeval guard = {.tv_sec = GUARD_SECONDS};
    setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof(guard));
    int one = 1;
    setsockopt(cl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(cl->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
}

static void client_close(struct client *cl)
{
    close(cl->fd);
    cl->fd = -1;
}

static void client_send(struct client *cl, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = send(cl->fd, text, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        text += n;
        len -= (size_t)n;
    }
}

static void client_send_str(struct client *cl, const char *text)
{
    client_send(cl, text, strlen(text));
}

/* Reads more bytes into cl->buf; false on EOF, error or the guard timeout. */
static bool client_fill(struct client *cl)
{
    if (cl->len == sizeof(cl->buf))
        return false;
    ssize_t n = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, 0);
    if (n <= 0)
        return false;
    cl->len += (size_t)n;
    return true;
}

/* The value of header name in a response head, or NULL. */
static const char *header_value(const struct response *r, const char *name, char *out, size_t cap)
{
    size_t name_len = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *start = line + 2;
        if (strncasecmp(start, name, name_len) == 0 && start[name_len] == ':') {
            const char *v = start + name_len + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r");
            if (len >= cap)
                len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
    }
    return NULL;
}

/* Reads one response (head and Content-Length body); false on EOF first. */
static bool client_read_response(struct client *cl, struct response *r)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while (!(end = memmem(cl->buf, cl->len, "\r\n\r\n", 4)))
        if (!client_fill(cl))
            return false;
    size_t head_len = (size_t)(end - cl->buf) + 2; /* keep the last header's CRLF */
    assert_true(head_len < sizeof(r->head));
    memcpy(r->head, cl->buf, head_len);
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    char value[64];
    size_t body_len = 0;
    if (header_value(r, "Content-Length", value, sizeof(value)))
        body_len = strtoul(value, NULL, 10);
    assert_true(body_len < sizeof(r->body));
    size_t total = head_len + 2 + body_len;
    while (cl->len < total)
        if (!client_fill(cl))
            return false;
    memcpy(r->body, cl->buf + head_len + 2, body_len);
    r->body_len = body_len;
    memmove(cl->buf, cl->buf + total, cl->len - total);
    cl->len -= total;
    return true;
}

/* True when the server closed the connection (EOF or reset) with nothing unread. */
static bool client_sees_close(struct client *cl)
{
    if (cl->len > 0)
        return false;
    char byte;
    ssize_t n = recv(cl->fd, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void assert_header(const struct response *r, const char *name, const char *want)
{
    char value[256];
    if (!header_value(r, name, value, sizeof(value)))
        fail_msg("no %s header in:\n%s", name, r->head);
    assert_string_equal(value, want);
}

/* The "type" of a JSON error body. */
static void assert_error_type(const struct response *r, int status, const char *type)
{
    assert_int_equal(r->status, status);
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!root)
        fail_msg("body is not JSON: %.*s", (int)r->body_len, r->body);
    assert_string_equal(json_string_value(json_object_get(root, "type")), type);
    assert_true(json_is_string(json_object_get(root, "error")));
    json_decref(root);
    assert_header(r, "Content-Type", "application/json");
    assert_header(r, "Connection", "close");
}

/* The echo handler's answer: the request as the server saw it. */
static void assert_echo(const struct response *r, int n, const char *method, const char *path,
                        const char *body)
{
    assert_int_equal(r->status, 200);
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!root)
        fail_msg("body is not JSON: %.*s", (int)r->body_len, r->body);
    assert_int_equal(json_integer_value(json_object_get(root, "n")), n);
    assert_string_equal(json_string_value(json_object_get(root, "method")), method);
    assert_string_equal(json_string_value(json_object_get(root, "path")), path);
    assert_string_equal(json_string_value(json_object_get(root, "body")), body);
    json_decref(root);
}

static void post(struct client *cl, const char *path, const char *body)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             path, strlen(body), body);
    client_send_str(cl, text);
}

/* ---- tests -------------------------------------------------------------- */

static void test_simple_request(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    client_send_str(&cl, "POST /execute?debug=1 HTTP/1.1\r\nHost: t\r\nX-Empty:\r\n"
                         "Content-Type: application/json; charset=utf-8\r\n"
                         "X-Request-Id: abc<script>-1.2_3\r\n"
                         "traceparent: 00-4bf92f3577b34da6-01 \r\n"
                         "Content-Length: 13\r\n\r\n{\"script\":1}\n");
    assert_true(client_read_response(&cl, &r));
    assert_echo(&r, 1, "POST", "/execute", "{\"script\":1}\n");
    assert_header(&r, "Content-Type", "application/json");
    assert_header(&r, "Connection", "keep-alive");
    assert_header(&r, "X-Request-Id", "abcscript-1.2_3");
    struct fixture seen = snapshot();
    assert_string_equal(seen.request_id, "abcscript-1.2_3");
    assert_string_equal(seen.trace, "00-4bf92f3577b34da6-01");
    assert_string_equal(seen.content_type, "application/json; charset=utf-8");
    /* A second http_respond for the same request is refused. */
    assert_int_equal(seen.second_respond_rc, -EINVAL);
    client_close(&cl);
    server_finish();
    assert_int_equal(fx.aborts, 0);
}

static void test_generated_request_id_and_get(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, false);
    struct client cl;
    struct response r1, r2;
    client_open(&cl);
    client_send_str(&cl, "GET /health HTTP/1.1\r\nHost: t\r\n"
                         "X-Cloud-Trace-Context: 105445aa7843bc8b/1;o=1\r\n"
                         "traceparent: ignored\r\n\r\n");
    assert_true(client_read_response(&cl, &r1));
    assert_echo(&r1, 1, "GET", "/health", "");
    struct fixture seen = snapshot();
    assert_string_equal(seen.content_type, "(none)");
    assert_string_equal(seen.trace, "105445aa7843bc8b/1;o=1");
    client_send_str(&cl, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read_response(&cl, &r2));
    char id1[64], id2[64];
    assert_non_null(header_value(&r1, "X-Request-Id", id1, sizeof(id1)));
    assert_non_null(header_value(&r2, "X-Request-Id", id2, sizeof(id2)));
    assert_int_equal(strlen(id1), 16);
    assert_int_equal(strspn(id1, "0123456789abcdef"), 16);
    assert_string_not_equal(id1, id2);
    client_close(&cl);
    server_finish();
}

static void test_keep_alive_three_requests(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    const char *bodies[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        post(&cl, "/execute", bodies[i]);
        assert_true(client_read_response(&cl, &r));
        assert_echo(&r, i + 1, "POST", "/execute", bodies[i]);
        assert_header(&r, "Connection", "keep-alive");
    }
    client_close(&cl);
    server_finish();
}

static void test_large_body_over_many_reads(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    opts.max_body_bytes = 200000;
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    static char text[200100];
    int n = snprintf(text, sizeof(text), "POST /big HTTP/1.1\r\nContent-Length: 200000\r\n\r\n");
    memset(text + n, 'z', 200000);
    client_send(&cl, text, (size_t)n + 200000);
    assert_true(client_read_response(&cl, &r));
    assert_echo(&r, 1, "POST", "/big", "(long)");
    struct fixture seen = snapshot();
    assert_int_equal(seen.body_len, sizeof(seen.body) - 1);
    assert_int_equal(strspn(seen.body, "z"), sizeof(seen.body) - 1);
    assert_non_null(strstr(r.body, "\"len\":200000"));
    client_close(&cl);
    server_finish();
}

static void test_pipelined_answered_in_order(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    /* All three in one send: the server must park the 2nd and 3rd. */
    client_send_str(&cl, "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst"
                         "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond"
                         "GET /c HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read_response(&cl, &r));
    assert_echo(&r, 1, "POST", "/a", "first");
    assert_true(client_read_response(&cl, &r));
    assert_echo(&r, 2, "POST", "/b", "second");
    assert_true(client_read_response(&cl, &r));
    assert_echo(&r, 3, "GET", "/c", "");
    client_close(&cl);
    server_finish();
}

static void test_chunked_body_dechunked(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    client_send_str(&cl, "POST /execute HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n");
    client_send_str(&cl, "6\r\n world\r\n0\r\n\r\n");
    assert_true(client_read_response(&cl, &r));
    assert_echo(&r, 1, "POST", "/execute", "hello world");
    assert_header(&r, "Connection", "keep-alive");
    client_close(&cl);
    server_finish();
}

static void test_content_length_over_cap_refused_before_body(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    opts.max_body_bytes = 1024;
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    /* Only the head is sent: the answer must come without the body. */
    client_send_str(&cl, "POST /execute HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
    assert_true(client_read_response(&cl, &r));
    assert_error_type(&r, 413, "payload_too_large");
    assert_true(client_sees_close(&cl));
    client_close(&cl);
    server_finish();
    assert_int_equal(fx.requests, 0);
}

static void test_chunked_over_cap_refused(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    opts.max_body_bytes = 8;
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    client_send_str(&cl, "POST /execute HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
    assert_true(client_read_response(&cl, &r));
    assert_error_type(&r, 413, "payload_too_large");
    assert_true(client_sees_close(&cl));
    client_close(&cl);
    server_finish();
    assert_int_equal(fx.requests, 0);
}

static void test_expect_continue(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    opts.max_body_bytes = 1024;
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    client_send_str(&cl, "POST /execute HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                         "Content-Length: 4\r\n\r\n");
    assert_true(client_read_response(&cl, &r));
    assert_int_equal(r.status, 100);
    assert_string_equal(r.head, "HTTP/1.1 100 Continue\r\n");
    client_send_str(&cl, "data");
    assert_true(client_read_response(&cl, &r));
    assert_echo(&r, 1, "POST", "/execute", "data");
    client_close(&cl);

    /* Refused up front: no 100, straight to 413. */
    client_open(&cl);
    client_send_str(&cl, "POST /execute HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                         "Content-Length: 5000\r\n\r\n");
    assert_true(client_read_response(&cl, &r));
    assert_error_type(&r, 413, "payload_too_large");
    assert_true(client_sees_close(&cl));
    client_close(&cl);
    server_finish();
}

static void test_oversized_headers_431(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    opts.max_header_bytes = 4096;
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    char big[6000];
    int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(big + n, 'x', 5000);
    strcpy(big + n + 5000, "\r\n\r\n");
    client_send_str(&cl, big);
    assert_true(client_read_response(&cl, &r));
    assert_error_type(&r, 431, "invalid_request");
    assert_true(client_sees_close(&cl));
    client_close(&cl);
    server_finish();
    assert_int_equal(fx.requests, 0);
}

static void test_malformed_400(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, false);
    const char *bad[] = {
        "HELLO WORLD\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct client cl;
        struct response r;
        client_open(&cl);
        client_send_str(&cl, bad[i]);
        assert_true(client_read_response(&cl, &r));
        assert_error_type(&r, 400, "invalid_request");
        assert_true(client_sees_close(&cl));
        client_close(&cl);
    }
    server_finish();
    assert_int_equal(fx.requests, 0);
}

static void test_http10_closes(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, false);
    struct client cl;
    struct response r;
    client_open(&cl);
    client_send_str(&cl, "GET /x HTTP/1.0\r\n\r\n");
    assert_true(client_read_response(&cl, &r));
    assert_int_equal(r.status, 200);
    assert_header(&r, "Connection", "close");
    assert_true(client_sees_close(&cl));
    client_close(&cl);
    server_finish();
}

static void test_peer_close_mid_request_aborts_once(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, true);
    struct client cl;
    client_open(&cl);
    post(&cl, "/execute", "{}");
    assert_int_equal(wait_count(&fx.requests, 1), 1);
    client_close(&cl);
    assert_int_equal(wait_count(&fx.aborts, 1), 1);
    server_finish();
    assert_int_equal(fx.aborts, 1);
    assert_null(fx.held);
}

static void test_partial_request_then_close_is_not_abort(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, true);
    struct client cl;
    client_open(&cl);
    client_send_str(&cl, "POST /execute HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    client_close(&cl);
    server_finish();
    assert_int_equal(fx.requests, 0);
    assert_int_equal(fx.aborts, 0);
}

static void test_late_answer_after_stop(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    server_start(&opts, true);
    struct client cl;
    struct response r;
    client_open(&cl);
    post(&cl, "/execute", "{}");
    assert_int_equal(wait_count(&fx.requests, 1), 1);
    /* Stop with the request outstanding: it still gets its answer. */
    command(&fx.cmd_stop_server);
    command(&fx.cmd_answer_held);
    assert_true(client_read_response(&cl, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"late\":true}");
    assert_header(&r, "X-Extra", "yes");
    assert_header(&r, "Connection", "close");
    assert_true(client_sees_close(&cl));
    client_close(&cl);
    server_finish();
    assert_int_equal(fx.aborts, 0);
}

static void test_idle_timeout_closes(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    opts.idle_timeout_ms = 200;
    server_start(&opts, false);
    struct client idle, slow, used;
    struct response r;
    client_open(&idle);
    client_open(&slow);
    client_open(&used);
    /* slowloris: a request that never completes */
    client_send_str(&slow, "POST /execute HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab");
    /* keep-alive connection left idle after one answer */
    post(&used, "/x", "1");
    assert_true(client_read_response(&used, &r));
    assert_echo(&r, 1, "POST", "/x", "1");
    assert_true(client_sees_close(&idle));
    assert_true(client_sees_close(&slow));
    assert_true(client_sees_close(&used));
    client_close(&idle);
    client_close(&slow);
    client_close(&used);
    server_finish();
    assert_int_equal(fx.requests, 1);
}

static void test_max_connections_503(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    opts.max_connections = 1;
    server_start(&opts, false);
    struct client first, second;
    struct response r;
    client_open(&first);
    post(&first, "/x", "a"); /* answered: the first connection is surely counted */
    assert_true(client_read_response(&first, &r));
    client_open(&second);
    assert_true(client_read_response(&second, &r));
    assert_error_type(&r, 503, "overloaded");
    assert_header(&r, "Retry-After", "1");
    assert_true(client_sees_close(&second));
    client_close(&second);
    post(&first, "/x", "b");
    assert_true(client_read_response(&first, &r));
    assert_echo(&r, 2, "POST", "/x", "b");
    client_close(&first);
    server_finish();
}

static void test_start_errors(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    uv_loop_t loop;
    struct http_server *first = NULL, *second = NULL;
    int port = 0, unused = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_server_start(&loop, "not-an-address", 0, &opts, &second, &unused),
                     UV_EINVAL);
    assert_int_equal(http_server_start(&loop, "127.0.0.1", 0, &opts, &first, &port), 0);
    /* The same port again: refused, and the half-made listener is closed by the loop. */
    assert_int_equal(http_server_start(&loop, "127.0.0.1", port, &opts, &second, &unused),
                     UV_EADDRINUSE);
    assert_null(second);
    http_server_stop(first);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_ipv6_loopback(void **state)
{
    (void)state;
    struct http_server_opts opts = default_opts();
    uv_loop_t loop;
    struct http_server *s = NULL;
    int port = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    int rc = http_server_start(&loop, "::1", 0, &opts, &s, &port);
    if (rc == UV_EADDRNOTAVAIL || rc == UV_EAFNOSUPPORT) {
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
        skip(); /* no IPv6 on this host */
    }
    assert_int_equal(rc, 0);
    assert_true(port > 0);
    http_server_stop(s);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(http_status_text(200), "OK");
    assert_string_equal(http_status_text(405), "Method Not Allowed");
    assert_string_equal(http_status_text(413), "Payload Too Large");
    assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_text(503), "Service Unavailable");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_simple_request, teardown),
        cmocka_unit_test_teardown(test_generated_request_id_and_get, teardown),
        cmocka_unit_test_teardown(test_keep_alive_three_requests, teardown),
        cmocka_unit_test_teardown(test_large_body_over_many_reads, teardown),
        cmocka_unit_test_teardown(test_pipelined_answered_in_order, teardown),
        cmocka_unit_test_teardown(test_chunked_body_dechunked, teardown),
        cmocka_unit_test_teardown(test_content_length_over_cap_refused_before_body, teardown),
        cmocka_unit_test_teardown(test_chunked_over_cap_refused, teardown),
        cmocka_unit_test_teardown(test_expect_continue, teardown),
        cmocka_unit_test_teardown(test_oversized_headers_431, teardown),
        cmocka_unit_test_teardown(test_malformed_400, teardown),
        cmocka_unit_test_teardown(test_http10_closes, teardown),
        cmocka_unit_test_teardown(test_peer_close_mid_request_aborts_once, teardown),
        cmocka_unit_test_teardown(test_partial_request_then_close_is_not_abort, teardown),
        cmocka_unit_test_teardown(test_late_answer_after_stop, teardown),
        cmocka_unit_test_teardown(test_idle_timeout_closes, teardown),
        cmocka_unit_test_teardown(test_max_connections_503, teardown),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
