/* The server's view of a run: GET the pyexec server's Prometheus /metrics
 * (same host, TLS settings and -H headers as the load) before and after the
 * measured window, and turn the differences of its histograms into a
 * per-stage breakdown (queue wait, fork, execution, total). Behind a load
 * balancer each scrape reaches one instance, so this is that instance's view.
 * Called by the load generator (the first scrape on a helper thread, so the
 * load never waits for it); runs in pyexec-bench only. */
#ifndef PYEXEC_BENCH_SCRAPE_H
#define PYEXEC_BENCH_SCRAPE_H

#include "bench/options.h"

#include <openssl/ssl.h>
#include <sys/socket.h>

#define SCRAPE_STAGES  4
#define SCRAPE_BOUNDS  32 /* buckets per histogram kept; pyexecd has 16 */
#define SCRAPE_WHY_MAX 160

/* One pyexec histogram as scraped: cumulative bucket counts. */
struct scrape_histogram {
    double le[SCRAPE_BOUNDS]; /* upper bounds, seconds; the last may be +Inf */
    double cumulative[SCRAPE_BOUNDS];
    int buckets;
    double sum, count;
    int found;
};

struct scrape {
    struct scrape_histogram stages[SCRAPE_STAGES];
    int ok;
    char why[SCRAPE_WHY_MAX]; /* when !ok: why the metrics are not there */
};

/* One stage of the breakdown over the window. The mean is exact (from the
 * sums); a percentile is the upper bound of the server's bucket holding it
 * (INFINITY: past the last finite bucket). */
struct scrape_stage {
    const char *name; /* "queue wait", "fork", "execution", "total" */
    const char *key;  /* the same for --json: queue_wait, fork, execution, total */
    double count, mean_ms, p50_ms, p99_ms;
};

/* GET opts->metrics_path from the server at addr (ctx NULL for plain HTTP).
 * Blocking, at most 10 s from connect to the last byte; thread-safe. Fills *out; never
 * fails the run (out->ok = 0 and out->why say what went wrong). */
void scrape_fetch(const struct options *opts, SSL_CTX *ctx, const struct sockaddr *addr,
                  socklen_t addr_len, struct scrape *out);

/* Parse an exposition-format text into *out (ok = 1 when a pyexec histogram
 * was found). Exposed for the tests. */
void scrape_parse(const char *text, size_t len, struct scrape *out);

/* The breakdown between two scrapes. Returns 0, or -EINVAL with a reason in
 * why when they cannot be compared (one failed, or the server restarted). */
int scrape_diff(const struct scrape *before, const struct scrape *after,
                struct scrape_stage stages[SCRAPE_STAGES], char *why, size_t why_size);

#endif
