/* pyexec-floor: the floor of bench/compare — a comparison, never shipped.
 * One process with the same embedded CPython and imports as pyexecd that forks
 * a child per request, runs main() and answers with its JSON: no sandbox, no
 * limits, no output capture. Usage: pyexec-floor [--port N] [--children N]. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* Runs in the child: returns (status, JSON bytes). */
static const char harness_source[] =
    "import gc, json, numpy, pandas\n"
    "def run(body):\n"
    "    try:\n"
    "        req = json.loads(body)\n"
    "        ns = {'__name__': '__main__'}\n"
    "        exec(compile(req['script'], '<script>', 'exec'), ns)\n"
    "        result = ns['main'](req['input']) if 'input' in req else ns['main']()\n"
    "        return 200, json.dumps({'result': result, 'stdout': '', 'stderr': ''}).encode()\n"
    "    except Exception as e:\n"
    "        return 400, json.dumps({'error': str(e), 'type': 'exception'}).encode()\n"
    /* As pyexecd's template does: keep the collector off the inherited heap so a
     * child's collection does not copy the parent's pages. */
    "gc.collect()\n"
    "gc.freeze()\n";

struct client {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    http_parser parser;
    int handles_open; /* freed when both handles are closed */
    char *body;
    size_t body_len;
    char *out; /* what the child wrote */
    size_t out_len;
    int keep_alive;
    struct client *next_waiting;
};

static uv_loop_t *loop;
static PyObject *run_function;
static http_parser_settings settings;
static int max_children, running_children;
static struct client *waiting_head, *waiting_tail;

static void on_handle_closed(uv_handle_t *handle)
{
    struct client *c = handle->data;
    if (--c->handles_open > 0)
        return;
    free(c->body);
    free(c->out);
    free(c);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void close_client(struct client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_written(uv_write_t *req, int status)
{
    struct client *c = req->data;
    free(req);
    if (status < 0 || !c->keep_alive)
        close_client(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void respond(struct client *c, int status, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\n%s\r\n",
                     status, status == 200 ? "OK" : "Error", len,
                     c->keep_alive ? "" : "Connection: close\r\n");
    uv_write_t *req = malloc(sizeof(*req) + (size_t)n + len);
    if (!req) {
        close_client(c);
        return;
    }
    char *bytes = (char *)(req + 1);
    memcpy(bytes, head, (size_t)n);
    memcpy(bytes + n, body, len);
    uv_buf_t buf = uv_buf_init(bytes, (unsigned)((size_t)n + len));
    req->data = c;
    if (uv_is_closing((uv_handle_t *)&c->tcp) ||
        uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
        free(req);
        close_client(c);
        return;
    }
    free(c->body);
    c->body = NULL;
    c->body_len = 0;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read); /* next request */
}

/* In the child: run the request and write "SSS" + JSON to fd, then leave. */
static void child_main(struct client *c, int fd)
{
    PyOS_AfterFork_Child();
    int status = 500;
    const char *bytes = "{\"error\":\"harness failed\",\"type\":\"internal\"}";
    Py_ssize_t len = (Py_ssize_t)strlen(bytes);
    PyObject *res = PyObject_CallFunction(run_function, "y#", c->body, (Py_ssize_t)c->body_len);
    if (res && PyTuple_Check(res) && PyTuple_Size(res) == 2) {
        status = (int)PyLong_AsLong(PyTuple_GetItem(res, 0));
        PyBytes_AsStringAndSize(PyTuple_GetItem(res, 1), (char **)&bytes, &len);
    } else {
        PyErr_Print();
    }
    char code[4];
    snprintf(code, sizeof(code), "%03d", status);
    if (write(fd, code, 3) == 3) {
        for (Py_ssize_t done = 0; done < len;) {
            ssize_t n = write(fd, bytes + done, (size_t)(len - done));
            if (n <= 0)
                break;
            done += n;
        }
    }
    _exit(0);
}

static void start_child(struct client *c);

static void on_child_output(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct client *c = stream->data;
    if (nread > 0) {
        char *grown = realloc(c->out, c->out_len + (size_t)nread);
        if (grown) {
            memcpy(grown + c->out_len, buf->base, (size_t)nread);
            c->out = grown;
            c->out_len += (size_t)nread;
        }
    }
    free(buf->base);
    if (nread >= 0)
        return;
    uv_close((uv_handle_t *)&c->pipe, on_handle_closed);
    if (c->out_len >= 3) {
        int status = atoi((char[4]){c->out[0], c->out[1], c->out[2], 0});
        respond(c, status, c->out + 3, c->out_len - 3);
    } else {
        const char *died = "{\"error\":\"the child died\",\"type\":\"killed\"}";
        respond(c, 500, died, strlen(died));
    }
    free(c->out);
    c->out = NULL;
    c->out_len = 0;
    running_children--;
    if (waiting_head) {
        struct client *next = waiting_head;
        waiting_head = next->next_waiting;
        if (!waiting_head)
            waiting_tail = NULL;
        start_child(next);
    }
}

static void start_child(struct client *c)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        close_client(c);
        return;
    }
    running_children++;
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_main(c, fds[1]);
    }
    PyOS_AfterFork_Parent();
    close(fds[1]);
    uv_pipe_init(loop, &c->pipe, 0);
    c->pipe.data = c;
    c->handles_open++;
    uv_pipe_open(&c->pipe, fds[0]);
    /* A failed fork reads as EOF at once and answers 500. */
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_child_output);
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct client *c = p->data;
    char *grown = realloc(c->body, c->body_len + len);
    if (!grown)
        return 1;
    memcpy(grown + c->body_len, at, len);
    c->body = grown;
    c->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct client *c = p->data;
    c->keep_alive = http_should_keep_alive(p);
    /* One request at a time per connection: stop reading until answered. */
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (p->method == HTTP_GET) {
        const char *ok = "{\"status\":\"ok\"}";
        respond(c, 200, ok, strlen(ok));
    } else if (running_children < max_children) {
        start_child(c);
    } else {
        c->next_waiting = NULL;
        if (waiting_tail)
            waiting_tail->next_waiting = c;
        else
            waiting_head = c;
        waiting_tail = c;
    }
    http_parser_pause(p, 1);
    return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct client *c = stream->data;
    if (nread > 0) {
        http_parser_execute(&c->parser, &settings, buf->base, (size_t)nread);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (err == HPE_PAUSED)
            http_parser_pause(&c->parser, 0);
        else if (err != HPE_OK)
            close_client(c);
    } else if (nread < 0) {
        close_client(c); /* a running child still answers into a closed handle: dropped */
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct client *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->handles_open = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        close_client(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_sigchld(uv_signal_t *handle, int signum)
{
    (void)handle;
    (void)signum;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int main(int argc, char **argv)
{
    int port = 0;
    max_children = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--children") == 0)
            max_children = atoi(argv[i + 1]);
    }
    if (max_children < 1)
        max_children = 1;

    /* As in pyexecd: no BLAS thread pools, set before numpy is imported. */
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("MKL_NUM_THREADS", "1", 1);
    setenv("NUMEXPR_NUM_THREADS", "1", 1);
    Py_Initialize();
    PyObject *module = PyImport_AddModule("__main__");
    PyObject *globals = PyModule_GetDict(module);
    PyObject *done = PyRun_String(harness_source, Py_file_input, globals, globals);
    run_function = done ? PyDict_GetItemString(globals, "run") : NULL;
    if (!run_function) {
        PyErr_Print();
        return 1;
    }
    Py_DECREF(done);

    loop = uv_default_loop();
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    signal(SIGPIPE, SIG_IGN);
    uv_signal_t sigchld;
    uv_signal_init(loop, &sigchld);
    uv_signal_start(&sigchld, on_sigchld, SIGCHLD);

    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(loop, &server);
    int err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (!err)
        err = uv_listen((uv_stream_t *)&server, 1024, on_connection);
    if (err) {
        fprintf(stderr, "pyexec-floor: cannot listen on 127.0.0.1:%d: %s\n", port,
                uv_strerror(err));
        return 1;
    }
    struct sockaddr_in bound;
    int bound_len = sizeof(bound);
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &bound_len);
    printf("listening on 127.0.0.1:%d\n", ntohs(bound.sin_port));
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
