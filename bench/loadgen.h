/* The load generator: N keep-alive HTTP connections on one libuv loop that
 * send a fixed POST in closed or constant-rate open loop and collect what came
 * back. Called by main(); runs in pyexec-bench only (never in the service). */
#ifndef PYEXEC_BENCH_LOADGEN_H
#define PYEXEC_BENCH_LOADGEN_H

#include "bench/histogram.h"
#include "bench/options.h"

#include <stddef.h>
#include <stdint.h>

#define LOADGEN_MAX_TYPES 16
#define LOADGEN_TYPE_MAX  48

/* Everything measured in the window (after warm-up). Latency covers every
 * answer with an HTTP status, whatever the status. */
struct loadgen_result {
    struct histogram latency;
    uint64_t responses;   /* answers with an HTTP status */
    uint64_t status[600]; /* answers by status code */
    struct {
        char name[LOADGEN_TYPE_MAX];
        uint64_t count;
    } types[LOADGEN_MAX_TYPES]; /* error `type` of 4xx/5xx bodies; "(unparsed)" when absent */
    int type_count;
    uint64_t connect_errors; /* could not connect */
    uint64_t io_errors;      /* write/read failed or the peer closed mid-request */
    uint64_t parse_errors;   /* the answer was not HTTP */
    uint64_t timeouts;       /* no answer within --timeout */
    uint64_t unfinished;     /* open loop: due or in flight when the window closed */
    double elapsed_s;        /* length of the measured window */
    char address[64];        /* the address the host resolved to */
};

/* Run the load described by opts, sending body (JSON) to every request.
 * Returns 0 (errors of individual requests are counted in *result, never fatal),
 * or -errno when the run could not start (message written to stderr). */
int loadgen_run(const struct options *opts, const char *body, size_t body_len,
                struct loadgen_result *result);

#endif
