/* The bytes of pyexec-bench's HTTP/1.1 requests: the head from the options
 * (Host, User-Agent, Content-Type unless -H replaces them, then every -H),
 * then the body. Called by the load generator (once per run) and by the
 * /metrics scrape; runs in pyexec-bench only. */
#ifndef PYEXEC_BENCH_REQUEST_H
#define PYEXEC_BENCH_REQUEST_H

#include "bench/options.h"

#include <stddef.h>

/* A malloc'd request `method path` with body (body_len may be 0 for a GET,
 * which then has no Content-Type or Content-Length), plus `extra` header
 * lines ("Name: value\r\n"..., or NULL). Returns 0 or -ENOMEM. */
int request_build(const struct options *opts, const char *method, const char *path,
                  const char *body, size_t body_len, const char *extra, char **out,
                  size_t *out_len);

#endif
