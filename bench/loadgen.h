/* The load generator: N keep-alive HTTP/1.1 connections, plain or TLS
 * (bench/tls.c), on one libuv loop that send a fixed POST in closed loop or
 * open loop (constant rate or a linear ramp) and collect what came back: the
 * answers, the instances that sent them (X-Pyexec-Instance), connect and
 * handshake times, the per-second series (bench/series.c) and the server's
 * own view (bench/scrape.c). Called by main(); runs in pyexec-bench only
 * (never in the service). */
#ifndef PYEXEC_BENCH_LOADGEN_H
#define PYEXEC_BENCH_LOADGEN_H

#include "bench/histogram.h"
#include "bench/options.h"
#include "bench/scrape.h"

#include <stddef.h>
#include <stdint.h>

#define LOADGEN_MAX_TYPES       16
#define LOADGEN_TYPE_MAX        48
#define LOADGEN_MAX_INSTANCES   64
#define LOADGEN_INSTANCE_MAX    96 /* K_REVISION (<= 63) + "/" + 16 hex digits */
#define LOADGEN_INSTANCE_HEADER "X-Pyexec-Instance"

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
    uint64_t tls_errors;     /* a TLS handshake or record failed (not verification) */
    char tls_error[128];     /* the first such failure's reason */
    uint64_t unfinished;     /* open loop: due or in flight when the window closed */
    double elapsed_s;        /* length of the measured window */
    char address[64];        /* the address the host resolved to */

    /* Connections over the whole run, warm-up included. */
    uint64_t opened;            /* connections established */
    uint64_t reconnects;        /* ... after a connection's first (server closes, errors) */
    struct histogram connect;   /* TCP connect, µs */
    struct histogram handshake; /* TLS handshake after connect, µs */
    uint64_t resumed;           /* handshakes that resumed the last session */
    char tls_version[16];       /* of the first handshake, e.g. TLSv1.3 */
    char tls_cipher[64];

    /* Answers by the instance that sent them (X-Pyexec-Instance). */
    struct {
        char id[LOADGEN_INSTANCE_MAX];
        uint64_t count;
    } instances[LOADGEN_MAX_INSTANCES];
    int instance_count;
    uint64_t instances_other; /* answers from instances past the table */

    /* The server's breakdown of the window (--no-metrics: server_state 0). */
    int server_state; /* 0 not asked, 1 breakdown, -1 skipped: see server_why */
    char server_why[SCRAPE_WHY_MAX];
    struct scrape_stage server[SCRAPE_STAGES];

    uint64_t series_rows; /* --series: rows written */
};

/* Run the load described by opts, sending body (JSON) to every request.
 * Returns 0 (errors of individual requests are counted in *result, never fatal),
 * or -errno when the run could not start or was stopped (a certificate that
 * fails verification: -EPROTO; message written to stderr). */
int loadgen_run(const struct options *opts, const char *body, size_t body_len,
                struct loadgen_result *result);

#endif
