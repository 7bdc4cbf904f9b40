/* The routes. See routes.h. */
#include "server/routes.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/ipc.h"
#include "server/errors.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/request.h"
#include "server/server.h"

/* One POST /execute between its arrival and its answer. */
struct exec_ctx {
    struct pool_job job; /* first: the pool hands it back */
    struct server *srv;
    struct http_conn *conn;
    struct http_request *req;
    size_t files_in_bytes; /* the request's input files, decoded */
};

/* Count and log one answer. */
static void record(const struct http_request *req, int status, const char *type)
{
    double secs = (uv_hrtime() - req->start_ns) / 1e9;
    metrics_request(status, type, secs);
    log_request(req, status, type, secs);
}

/* Answer, count and log. body is JSON. */
static void respond(struct http_conn *c, struct http_request *req, int status, const char *type,
                    const char *headers, const char *body, size_t len)
{
    record(req, status, type);
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
    const struct budget *b = &srv->budget;
    json_t *o = json_pack(
        "{s:s, s:{s:i, s:i, s:i, s:i, s:i}, s:i, s:I, s:{s:s, s:I, s:I, s:I, s:I, s:I, s:I}}",
        "status", ok ? "ok" : (srv->stopping ? "stopping" : "starting"), "workers", "total",
        st.workers, "ready", st.ready, "idle", st.ready - st.busy, "failing", st.failing, "parked",
        st.parked, "queued", st.queued, "respawns", (json_int_t)st.respawns, "memory", "source",
        b->source, "limit_mb", (json_int_t)b->limit_mb, "footprint_mb", (json_int_t)b->footprint_mb,
        "script_limit_mb", (json_int_t)budget_script_mb(b, srv->cfg.memory_mb), "budget_mb",
        (json_int_t)b->budget_mb, "reserved_mb", (json_int_t)b->reserved_mb, "running",
        (json_int_t)b->running);
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
    metrics_files(x->files_in_bytes, job->files_out_bytes);
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
    struct ipc_request_data d = {.script = er.script,
                                 .script_len = er.script_len,
                                 .input = er.input_json,
                                 .input_len = er.input_len,
                                 .stdin_data = er.stdin_data,
                                 .stdin_len = er.stdin_len,
                                 .files = er.files,
                                 .files_len = er.files_len};
    if (x) {
        x->job.frame = ipc_request_build(er.timeout_ms, er.memory_mb, &d, &x->job.frame_len);
        x->files_in_bytes = er.files_bytes;
    }
    request_free(&er);
    if (!x || !x->job.frame) {
        free(x);
        return respond_error(c, req, 500, "internal", "", "Out of memory.");
    }
    /* The body fit, but re-encoded (1e300 in the input is 1.0000000000000001e+300
     * to the script) it may not fit what a worker reads. */
    if (x->job.frame_len - sizeof(struct ipc_request) > IPC_MAX_REQUEST) {
        free(x->job.frame);
        free(x);
        return respond_error(c, req, 413, "payload_too_large", "",
                             "The script and input, as the script would receive them, are over "
                             "the largest request a worker takes (128 MiB).");
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
    record(req, 200, "ok");
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

void routes_on_request(struct http_conn *c, struct http_request *req, void *data)
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

void routes_on_abort(struct http_conn *c, void *data)
{
    struct server *srv = data;
    struct exec_ctx *x = http_conn_get_data(c);
    if (!x)
        return;
    pool_cancel(srv->pool, &x->job);
    free(x);
}
