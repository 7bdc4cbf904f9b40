/* The routes: POST /execute (validate, hand to the pool, answer with the
 * worker's reply), GET /health, /metrics, /openapi.json and /; 404 and 405
 * for the rest. Every answer is counted (metrics.c) and logged (log.c) here.
 * The on_request/on_abort callbacks main.c gives the HTTP server
 * (server/http.h), with the struct server as data. Runs in the acceptor. */
#ifndef PYEXEC_ROUTES_H
#define PYEXEC_ROUTES_H

#include "server/http.h"

/* A complete request: route it. data is the struct server. */
void routes_on_request(struct http_conn *c, struct http_request *req, void *data);

/* The client left while its script was queued or running. */
void routes_on_abort(struct http_conn *c, void *data);

#endif
