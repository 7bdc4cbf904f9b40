#include "bench/histogram.h"

#include <math.h>
#include <string.h>

#define SUB_COUNT (1u << HISTOGRAM_SUB_BITS) /* 256: exact values 0..255 */
#define HALF      (SUB_COUNT / 2)            /* 128 buckets per power of two above */

void histogram_init(struct histogram *h)
{
    memset(h, 0, sizeof(*h));
    h->min_us = UINT64_MAX;
}

int histogram_index(uint64_t v)
{
    if (v > HISTOGRAM_MAX_US)
        v = HISTOGRAM_MAX_US;
    if (v < SUB_COUNT)
        return (int)v;
    int exponent = 63 - __builtin_clzll(v); /* >= HISTOGRAM_SUB_BITS */
    int shift = exponent - (HISTOGRAM_SUB_BITS - 1);
    uint64_t sub = v >> shift; /* HALF .. SUB_COUNT-1 */
    return (int)(SUB_COUNT + (uint64_t)(exponent - HISTOGRAM_SUB_BITS) * HALF + (sub - HALF));
}

uint64_t histogram_bucket_low(int index)
{
    if (index < (int)SUB_COUNT)
        return (uint64_t)index;
    int group = (index - (int)SUB_COUNT) / (int)HALF;
    uint64_t sub = HALF + (uint64_t)((index - (int)SUB_COUNT) % (int)HALF);
    return sub << (group + 1);
}

uint64_t histogram_bucket_high(int index)
{
    if (index < (int)SUB_COUNT)
        return (uint64_t)index;
    int group = (index - (int)SUB_COUNT) / (int)HALF;
    return histogram_bucket_low(index) + (1ULL << (group + 1)) - 1;
}

void histogram_record(struct histogram *h, uint64_t v)
{
    if (v > HISTOGRAM_MAX_US)
        v = HISTOGRAM_MAX_US;
    h->counts[histogram_index(v)]++;
    h->total++;
    h->sum_us += (double)v;
    if (v < h->min_us)
        h->min_us = v;
    if (v > h->max_us)
        h->max_us = v;
}

void histogram_merge(struct histogram *dst, const struct histogram *src)
{
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum_us += src->sum_us;
    if (src->min_us < dst->min_us)
        dst->min_us = src->min_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

uint64_t histogram_percentile(const struct histogram *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    /* Rank of the wanted value, 1-based: p50 of 1..10 is the 5th value. */
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen < rank)
            continue;
        uint64_t low = histogram_bucket_low(i), high = histogram_bucket_high(i);
        uint64_t value = low + (high - low) / 2;
        if (value < h->min_us)
            value = h->min_us;
        if (value > h->max_us)
            value = h->max_us;
        return value;
    }
    return h->max_us;
}

double histogram_mean(const struct histogram *h)
{
    return h->total ? h->sum_us / (double)h->total : 0.0;
}
