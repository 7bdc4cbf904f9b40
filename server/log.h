/* The request log: one JSON line per answered request on stdout, in the
 * shape Cloud Logging reads (severity, httpRequest, trace). Called by
 * routes.c for every answer; main.c sets the project at start-up. Runs in
 * the acceptor. */
#ifndef PYEXEC_LOG_H
#define PYEXEC_LOG_H

#include "server/http.h"

/* --project: trace ids become links to Cloud Trace. project must outlive the log. */
void log_set_project(const char *project);

/* One line for req, answered status/type after secs seconds. */
void log_request(const struct http_request *req, int status, const char *type, double secs);

#endif
