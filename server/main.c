/* pyexecd: the acceptor. Parses the configuration, starts the worker pool,
 * serves HTTP and routes each request; on SIGTERM it drains and exits 0.
 * The same binary, run with --template-fd, becomes the template (pool.c). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include "seccomp/policy.h"
#include "common/config.h"
#include "server/errors.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/request.h"
#include "server/selftest.h"
#include "common/ipc.h"
#include "server/pool.h"
#include "worker/template.h"

struct server {
    uv_loop_t *loop;
    struct config cfg;
    struct pool *pool;
    struct http_server *http;
    uv_signal_t sigterm, sigint;
    bool stopping;
    bool selftest_passed; /* /health is 200 only after it */
    char exe[4096];
    int exit_code;
};

/* One POST /execute between its arrival and its answer. */
struct exec_ctx {
    struct pool_job job; /* first: the pool hands it back */
    struct server *srv;
    struct http_conn *conn;
    struct http_request *req;
};

/* --- logging: one JSON line per request, in the shape Cloud Logging reads */

static const char *log_project = ""; /* --project: trace ids become links */

static const char *severity(int status)
{
    return status == 503 ? "WARNING" : status >= 500 ? "ERROR" : "INFO";
}

/* The trace id of X-Cloud-Trace-Context ("TRACE/SPAN;o=1") or traceparent
 * ("00-TRACE-SPAN-01"), as Cloud Logging links it to Cloud Trace. */
static void log_trace(json_t *line, const char *header)
{
    char id[64];
    if (!header[0])
        return;
    if (!strncmp(header, "00-", 3))
        snprintf(id, sizeof(id), "%.32s", header + 3);
    else
        snprintf(id, sizeof(id), "%.*s", (int)strcspn(header, "/;"), header);
    char value[256];
    if (log_project[0])
        snprintf(value, sizeof(value), "projects/%s/traces/%s", log_project, id);
    else
        snprintf(value, sizeof(value), "%s", id);
    json_object_set_new(line, "logging.googleapis.com/trace", json_string(value));
}

static void log_request(const struct http_request *req, int status, const char *type)
{
    double secs = (uv_hrtime() - req->start_ns) / 1e9;
    metrics_request(status, type, secs);
    char latency[32], message[1200];
    snprintf(latency, sizeof(latency), "%.6fs", secs);
    snprintf(message, sizeof(message), "%s %s %d %s", req->method, req->path, status, type);
    json_t *line = json_pack("{s:s, s:s, s:{s:s, s:s, s:i, s:s}, s:s, s:s}", "severity",
                             severity(status), "message", message, "httpRequest", "requestMethod",
                             req->method, "requestUrl", req->path, "status", status, "latency",
                             latency, "type", type, "request_id", req->request_id);
    if (!line)
        return;
    log_trace(line, req->trace);
    char *text = json_dumps(line, JSON_COMPACT);
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(line);
}

/* Answer and log. body is JSON. */
static void respond(struct http_conn *c, struct http_request *req, int status, const char *type,
                    const char *headers, const char *body, size_t len)
{
    log_request(req, status, type);
    http_respond(c, status, headers, body, len);
}

static void respond_error(struct http_conn *c, struct http_request *req, int status,
                          const char *type, const char *headers, const char *message)
{
    size_t len;
    char *body = error_body(type, message, &len);
    respond(c, req, status, type, headers, body ? body : "{}", body ? len : 2);
    free(body);
}

static void respond_json(struct http_conn *c, struct http_request *req, int status, json_t *o)
{
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    respond(c, req, status, status == 200 ? "ok" : "unavailable", "", body ? body : "{}",
            body ? strlen(body) : 2);
    free(body);
}

/* --- routes ------------------------------------------------------------- */

static void route_root(struct server *srv, struct http_conn *c, struct http_request *req)
{
    (void)srv;
    respond_json(c, req, 200,
                 json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}}", "service", "pyexec",
                           "version", PYEXEC_VERSION, "endpoints", "POST /execute",
                           "run a script's main() and return its result", "GET /health",
                           "200 once every worker is warm", "GET /metrics", "Prometheus metrics",
                           "GET /openapi.json", "the API, OpenAPI 3.1", "GET /", "this document"));
}

static void route_health(struct server *srv, struct http_conn *c, struct http_request *req)
{
    struct pool_stats st;
    pool_get_stats(srv->pool, &st);
    bool ok = pool_ready(srv->pool) && srv->selftest_passed && !srv->stopping;
    json_t *o = json_pack("{s:s, s:{s:i, s:i, s:i}, s:i, s:I}", "status",
                          ok ? "ok" : (srv->stopping ? "stopping" : "starting"), "workers", "total",
                          st.workers, "ready", st.ready, "idle", st.ready - st.busy, "queued",
                          st.queued, "respawns", (json_int_t)st.respawns);
    const char *versions = pool_versions(srv->pool);
    json_t *v = versions ? json_loads(versions, 0, NULL) : NULL;
    if (v)
        json_object_update(o, v); /* python, numpy, pandas */
    json_decref(v);
    const char *sandbox = pool_sandbox(srv->pool);
    json_t *sb = sandbox ? json_loads(sandbox, 0, NULL) : NULL;
    if (sb)
        json_object_set_new(o, "sandbox", sb);
    respond_json(c, req, ok ? 200 : 503, o);
}

static void on_job_done(struct pool_job *job, int status, const char *type, const char *body,
                        size_t len)
{
    struct exec_ctx *x = (struct exec_ctx *)job;
    if (job->dispatched_ns)
        metrics_execution((job->dispatched_ns - job->queued_ns) / 1e9,
                          (uv_hrtime() - job->dispatched_ns) / 1e9);
    const char *headers = status == 503 ? "Retry-After: 1\r\n" : "";
    respond(x->conn, x->req, status, type, headers, body, len);
    free(x);
}

static void route_execute(struct server *srv, struct http_conn *c, struct http_request *req)
{
    if (!request_content_type_ok(req->content_type))
        return respond_error(c, req, 415, "unsupported_media_type", "",
                             "Send the request as Content-Type: application/json.");

    struct exec_request er;
    struct request_error err;
    if (request_parse(req->body, req->body_len, &srv->cfg, &er, &err))
        return respond_error(c, req, err.status, err.type, "", err.message);

    struct exec_ctx *x = calloc(1, sizeof(*x));
    if (x)
        x->job.frame = ipc_request_new(er.timeout_ms, er.memory_mb, er.script, er.script_len,
                                       er.input_json, er.input_len, &x->job.frame_len);
    request_free(&er);
    if (!x || !x->job.frame) {
        free(x);
        return respond_error(c, req, 500, "internal", "", "Out of memory.");
    }
    x->srv = srv;
    x->conn = c;
    x->req = req;
    x->job.done = on_job_done;

    int r = pool_submit(srv->pool, &x->job);
    if (r) {
        free(x->job.frame);
        free(x);
        return respond_error(c, req, 503, "overloaded", "Retry-After: 1\r\n",
                             r == -EAGAIN ? "Every worker is busy and the queue is full; retry "
                                            "in a moment."
                                          : "The service is shutting down; retry elsewhere.");
    }
    http_conn_set_data(c, x);
}

extern const char openapi_json[]; /* server/openapi.json, compiled in */

static void route_openapi(struct server *srv, struct http_conn *c, struct http_request *req)
{
    (void)srv;
    respond(c, req, 200, "ok", "", openapi_json, strlen(openapi_json));
}

static void route_metrics(struct server *srv, struct http_conn *c, struct http_request *req)
{
    struct pool_stats st;
    pool_get_stats(srv->pool, &st);
    size_t len;
    char *text = metrics_render(&st, srv->http ? http_server_connections(srv->http) : 0, &len);
    if (!text)
        return respond_error(c, req, 500, "internal", "", "Out of memory.");
    log_request(req, 200, "ok");
    http_respond_as(c, 200, "text/plain; version=0.0.4; charset=utf-8", "", text, len);
    free(text);
}

struct route {
    const char *path, *method;
    void (*handler)(struct server *, struct http_conn *, struct http_request *);
};

static const struct route routes[] = {
    {"/execute", "POST", route_execute},
    {"/health", "GET", route_health},
    {"/metrics", "GET", route_metrics},
    {"/openapi.json", "GET", route_openapi},
    {"/", "GET", route_root},
};

static void on_request(struct http_conn *c, struct http_request *req, void *data)
{
    struct server *srv = data;
    http_conn_set_data(c, NULL);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(req->path, routes[i].path))
            continue;
        if (!strcmp(req->method, routes[i].method))
            return routes[i].handler(srv, c, req);
        char allow[64], msg[128];
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", routes[i].method);
        snprintf(msg, sizeof(msg), "%s accepts only %s.", routes[i].path, routes[i].method);
        return respond_error(c, req, 405, "method_not_allowed", allow, msg);
    }
    char msg[1100];
    snprintf(msg, sizeof(msg), "No such endpoint: %.1024s. See GET / for the list.", req->path);
    respond_error(c, req, 404, "not_found", "", msg);
}

/* The client left while its script was queued or running. */
static void on_abort(struct http_conn *c, void *data)
{
    struct server *srv = data;
    struct exec_ctx *x = http_conn_get_data(c);
    if (!x)
        return;
    pool_cancel(srv->pool, &x->job);
    free(x);
}

/* --- life cycle ------------------------------------------------------------ */

static void close_signals(struct server *srv)
{
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
}

/* Workers and template are gone; once the last connection has its answer the
 * loop has nothing left and uv_run returns. */
static void on_pool_stopped(void *data)
{
    close_signals(data);
}

/* Fail closed: a sandbox that does not hold means no service. */
static void fail_start(struct server *srv)
{
    srv->exit_code = 1;
    srv->stopping = true;
    if (srv->http)
        http_server_stop(srv->http);
    srv->http = NULL;
    close_signals(srv);
    pool_stop(srv->pool, 0, NULL, NULL);
}

static void on_pool_fatal(void *data)
{
    fprintf(stderr, "pyexecd: the worker pool could not start; see the messages above\n");
    fail_start(data);
}

static void on_selftest_done(bool ok, const char *why, void *data)
{
    struct server *srv = data;
#ifdef PYEXEC_UNCONFINED
    fprintf(stderr, "pyexecd: UNCONFINED benchmark build: the self-test %s%s; serving anyway\n",
            ok ? "passed?!" : "failed as it must: ", why);
    ok = true;
#else
    if (ok)
        fprintf(stderr, "pyexecd: sandbox self-test passed\n");
#endif
    if (!ok) {
        fprintf(stderr, "pyexecd: sandbox self-test failed: %s; refusing to serve\n", why);
        return fail_start(srv);
    }
    srv->selftest_passed = true;
    fprintf(stderr, "pyexecd: ready: %ld workers warm\n", srv->cfg.workers);
}

static void on_pool_ready(void *data)
{
    struct server *srv = data;
    char dir[sizeof(srv->exe)];
    snprintf(dir, sizeof(dir), "%s", srv->exe);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (selftest_start(srv->pool, srv->cfg.workers, dir, on_selftest_done, srv))
        fail_start(srv);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct server *srv = sig->data;
    (void)signum;
    if (srv->stopping)
        return;
    srv->stopping = true;
    fprintf(stderr, "pyexecd: shutting down\n");
    http_server_stop(srv->http);
    srv->http = NULL;
    pool_stop(srv->pool, srv->cfg.shutdown_timeout_ms, on_pool_stopped, srv);
}

static int serve(struct server *srv)
{
    int r = pool_start(srv->loop, &srv->cfg, srv->exe, &srv->pool);
    if (r) {
        fprintf(stderr, "pyexecd: cannot start the template: %s\n", uv_strerror(r));
        return 1;
    }
    pool_set_callbacks(srv->pool, on_pool_ready, on_pool_fatal, srv);
    pool_on_fork_time(srv->pool, metrics_fork);

    struct http_server_opts o = {
        .max_header_bytes = 16384,
        .max_body_bytes = (size_t)srv->cfg.body_kb << 10,
        .idle_timeout_ms = srv->cfg.idle_timeout_ms,
        .max_connections = srv->cfg.max_connections,
        .on_request = on_request,
        .on_abort = on_abort,
        .data = srv,
    };
    int port;
    r = http_server_start(srv->loop, srv->cfg.host, srv->cfg.port, &o, &srv->http, &port);
    if (r) {
        fprintf(stderr, "pyexecd: cannot listen on %s:%ld: %s\n", srv->cfg.host, srv->cfg.port,
                uv_strerror(r));
        return 1;
    }
    fprintf(stderr, "pyexecd: listening on %s:%d with %ld workers\n", srv->cfg.host, port,
            srv->cfg.workers);

    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_init(srv->loop, &srv->sigterm);
    uv_signal_init(srv->loop, &srv->sigint);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);

    uv_run(srv->loop, UV_RUN_DEFAULT);
    pool_free(srv->pool);
    srv->pool = NULL;
    return srv->exit_code;
}

/* The service's environment may hold credentials, and some sandboxes
 * (gVisor) show /proc/<pid>/environ to every uid. Once the configuration is
 * read, keep only what the template inherits (as fresh copies) and wipe the
 * original strings, which are what /proc shows. */
static void scrub_environment(void)
{
    extern char **environ;
    char keep[8][256];
    int n = 0;
    for (size_t i = 0; pool_env_passthrough[i] && n < 8; i++) {
        const char *v = getenv(pool_env_passthrough[i]);
        if (v && strlen(v) < 200)
            snprintf(keep[n++], sizeof(keep[0]), "%s=%s", pool_env_passthrough[i], v);
    }
    for (char **e = environ; *e; e++)
        explicit_bzero(*e, strlen(*e));
    clearenv();
    for (int i = 0; i < n; i++) {
        char *eq = strchr(keep[i], '=');
        *eq = '\0';
        setenv(keep[i], eq + 1, 1);
    }
    prctl(PR_SET_DUMPABLE, 0); /* and no other uid may read our memory */
}

int main(int argc, char **argv)
{
    struct server srv = {.loop = uv_default_loop()};
    const char *tfd = "--template-fd=";

    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && !strncmp(argv[1], tfd, strlen(tfd))) {
        int ctl = atoi(argv[1] + strlen(tfd));
        argv[1] = argv[0];
        if (config_load(&srv.cfg, argc - 1, argv + 1, stdout, stderr))
            return 1;
        template_main(ctl, &srv.cfg);
    }
    if (argc == 2 && !strcmp(argv[1], "--print-policy"))
        return policy_print(stdout) ? 1 : 0;

    int r = config_load(&srv.cfg, argc, argv, stdout, stderr);
    if (r)
        return r > 0 ? 0 : 2;
    scrub_environment();
    log_project = srv.cfg.project;
    setvbuf(stdout, NULL, _IOLBF, 0); /* one log line, one write */
    size_t exe_len = sizeof(srv.exe);
    if (uv_exepath(srv.exe, &exe_len)) {
        fprintf(stderr, "pyexecd: cannot find its own executable\n");
        return 1;
    }
    return serve(&srv);
}
