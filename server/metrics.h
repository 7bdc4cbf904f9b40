/* The acceptor's counters and histograms, rendered for GET /metrics in the
 * Prometheus text format 0.0.4. Runs in the acceptor (single-threaded):
 * routes.c records every answer and renders the page, the pool reports each
 * spare's fork (main.c hands it metrics_fork), and the pool's numbers are
 * read at render time. */
#ifndef PYEXEC_METRICS_H
#define PYEXEC_METRICS_H

#include <stddef.h>

#include "server/pool.h"

/* One answered request: its HTTP status, error type ("ok" for 200) and time
 * from its first byte to its answer. */
void metrics_request(int status, const char *type, double total_s);

/* One /execute that reached a worker: time waiting in the queue, time running. */
void metrics_execution(double queue_s, double run_s);

/* One /execute's file traffic: input file bytes it sent (decoded), output
 * file bytes its script returned from out/. */
void metrics_files(size_t in_bytes, size_t out_bytes);

/* One fork of a spare child by a worker. */
void metrics_fork(double seconds);

/* The whole exposition, malloc'd; length in *len. NULL on ENOMEM. */
char *metrics_render(const struct pool_stats *pool, unsigned connections, size_t *len);

#endif
