/* The request log. See log.h. */
#include "server/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsontext.h"

static const char *log_project = ""; /* --project: trace ids become links */

void log_set_project(const char *project)
{
    log_project = project;
}

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

void log_request(const struct http_request *req, int status, const char *type, double secs)
{
    char latency[32], raw[1200];
    snprintf(latency, sizeof(latency), "%.6fs", secs);
    snprintf(raw, sizeof(raw), "%s %s %d %s", req->method, req->path, status, type);
    /* The path is the client's bytes, and jansson takes only UTF-8: a path
     * that is not would lose the whole line. */
    size_t n;
    char *path = utf8_sanitize(req->path, strlen(req->path), &n);
    char *message = utf8_sanitize(raw, strlen(raw), &n);
    json_t *line = NULL;
    if (path && message)
        line = json_pack("{s:s, s:s, s:{s:s, s:s, s:i, s:s}, s:s, s:s}", "severity",
                         severity(status), "message", message, "httpRequest", "requestMethod",
                         req->method, "requestUrl", path, "status", status, "latency", latency,
                         "type", type, "request_id", req->request_id);
    free(path);
    free(message);
    if (!line)
        return;
    log_trace(line, req->trace);
    char *text = json_dumps(line, JSON_COMPACT);
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(line);
}
