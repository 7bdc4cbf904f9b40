/* Latency histogram of pyexec-bench: log-linear buckets (HdrHistogram-like,
 * better than 1% relative precision) over 0 µs .. 100 s, fixed size, no allocation
 * after init. Used by the load generator and the report; runs in pyexec-bench only. */
#ifndef PYEXEC_BENCH_HISTOGRAM_H
#define PYEXEC_BENCH_HISTOGRAM_H

#include <stdint.h>

/* Values below 2^SUB_BITS are exact; above, each power of two is cut into
 * 2^(SUB_BITS-1) equal buckets, so a bucket is at most 1/128 of its value wide. */
#define HISTOGRAM_SUB_BITS 8
#define HISTOGRAM_MAX_US   100000000ULL     /* 100 s; larger values are clamped */
#define HISTOGRAM_BUCKETS  (256 + 19 * 128) /* enough for exponent 26 (2^26 < 1e8 < 2^27) */

struct histogram {
    uint64_t counts[HISTOGRAM_BUCKETS];
    uint64_t total;
    uint64_t min_us;
    uint64_t max_us;
    double sum_us;
};

void histogram_init(struct histogram *h);

/* Record one value in microseconds (clamped to HISTOGRAM_MAX_US). */
void histogram_record(struct histogram *h, uint64_t value_us);

/* Add every count of src into dst. */
void histogram_merge(struct histogram *dst, const struct histogram *src);

/* The value at percentile p (0..100): the middle of the bucket holding the
 * ceil(p% * total)-th smallest value, clamped to [min, max]. 0 when empty. */
uint64_t histogram_percentile(const struct histogram *h, double p);

double histogram_mean(const struct histogram *h);

/* Bucket helpers, exposed for the tests: index of a value, and the smallest
 * and largest values that share that index. */
int histogram_index(uint64_t value_us);
uint64_t histogram_bucket_low(int index);
uint64_t histogram_bucket_high(int index);

#endif
