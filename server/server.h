/* The acceptor's state: the configuration, the pool, the HTTP server and
 * where start-up and shutdown stand. Owned by main.c (the life cycle), read
 * by routes.c (which answers requests from it). Runs in the acceptor. */
#ifndef PYEXEC_SERVER_H
#define PYEXEC_SERVER_H

#include <stdbool.h>
#include <uv.h>

#include "common/config.h"
#include "server/budget.h"
#include "server/http.h"
#include "server/pool.h"

struct server {
    uv_loop_t *loop;
    struct config cfg;
    struct pool *pool;
    struct budget budget; /* the memory budget: set before the pool starts */
    struct http_server *http;
    uv_signal_t sigterm, sigint;
    bool stopping;
    bool selftest_passed; /* /health is 200 only after it */
    char exe[4096];
    int exit_code;
    char instance[96]; /* X-Pyexec-Instance: [K_REVISION/]random, one per process start */
};

#endif
