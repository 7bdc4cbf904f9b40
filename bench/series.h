/* pyexec-bench's per-second series (--series FILE.csv): one row per second of
 * the measured window, written as the run goes, for bench/plot. Each row:
 *
 *   second,target_rps,sent,answered,rps,p50_ms,p99_ms,non_2xx,errors
 *
 * second: the row's start, seconds into the window; target_rps: the open-loop
 * rate (ramp) at the row's middle, empty in closed loop; sent: requests put on
 * the wire in that second; answered, rps, p50/p99 (ms), non_2xx: answers that
 * completed in it; errors: requests that failed in it (connect, I/O, parse,
 * TLS, timeout). The last row may cover less than a second (rps is scaled).
 * Called by the load generator; runs in pyexec-bench only. */
#ifndef PYEXEC_BENCH_SERIES_H
#define PYEXEC_BENCH_SERIES_H

#include "bench/histogram.h"

#include <stdint.h>
#include <stdio.h>

struct series {
    FILE *f;
    uint64_t t_measure;          /* ns: where second 0 starts */
    uint64_t t_end;              /* ns: events from here on are ignored; 0 = none */
    double rate_start, rate_end; /* open loop; both 0 in closed loop */
    double duration_s;           /* the ramp's length */
    uint64_t row;                /* index of the row being filled */
    uint64_t sent, answered, non_2xx, errors;
    struct histogram latency;
    int failed; /* a write failed: reported at the end */
};

/* Create path and write the header. Returns 0 or -errno. */
int series_open(struct series *s, const char *path, uint64_t t_measure, uint64_t t_end,
                double rate_start, double rate_end, double duration_s);

/* Events at time now (ns); those before the window are ignored. */
void series_sent(struct series *s, uint64_t now);
void series_answer(struct series *s, uint64_t now, uint64_t latency_us, unsigned status);
void series_error(struct series *s, uint64_t now);

/* Write the rows of every second finished by now (a quiet second still gets
 * its row). */
void series_tick(struct series *s, uint64_t now);

/* Close the window at end (ns): write the rows up to it, the last one
 * partial. Returns 0 or -EIO. */
int series_close(struct series *s, uint64_t end);

#endif
