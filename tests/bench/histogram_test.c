/* The bench histogram against data whose percentiles are known exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bench/histogram.h"

static struct histogram hist;

/* Within the histogram's stated precision: one part in 128 (< 1%). */
static void assert_close(uint64_t got, uint64_t want)
{
    uint64_t diff = got > want ? got - want : want - got;
    if (diff * 128 > want + 128) {
        fail_msg("got %llu, want %llu (+-1/128)", (unsigned long long)got,
                 (unsigned long long)want);
    }
}

static void uniform_1_to_10000(void **state)
{
    (void)state;
    histogram_init(&hist);
    for (uint64_t v = 1; v <= 10000; v++)
        histogram_record(&hist, v);
    assert_int_equal(hist.total, 10000);
    assert_int_equal(hist.min_us, 1);
    assert_int_equal(hist.max_us, 10000);
    assert_close(histogram_percentile(&hist, 50), 5000);
    assert_close(histogram_percentile(&hist, 90), 9000);
    assert_close(histogram_percentile(&hist, 99), 9900);
    assert_close(histogram_percentile(&hist, 99.9), 9990);
    assert_int_equal(histogram_percentile(&hist, 100), 10000);
    assert_int_equal(histogram_percentile(&hist, 0), 1);
    assert_true(histogram_mean(&hist) > 5000.4 && histogram_mean(&hist) < 5000.6);
}

static void small_values_are_exact(void **state)
{
    (void)state;
    histogram_init(&hist);
    for (uint64_t v = 1; v <= 100; v++)
        histogram_record(&hist, v);
    assert_int_equal(histogram_percentile(&hist, 50), 50);
    assert_int_equal(histogram_percentile(&hist, 99), 99);
    assert_int_equal(histogram_percentile(&hist, 1), 1);
}

static void skewed_tail_is_found(void **state)
{
    (void)state;
    /* 990 fast answers at 2 ms and 10 slow ones at 3 s: p99 is fast, p99.9 slow. */
    histogram_init(&hist);
    for (int i = 0; i < 990; i++)
        histogram_record(&hist, 2000);
    for (int i = 0; i < 10; i++)
        histogram_record(&hist, 3000000);
    assert_close(histogram_percentile(&hist, 50), 2000);
    assert_close(histogram_percentile(&hist, 99), 2000);
    assert_close(histogram_percentile(&hist, 99.9), 3000000);
    assert_int_equal(hist.max_us, 3000000);
}

static void buckets_tile_the_range(void **state)
{
    (void)state;
    /* Every bucket starts right after the previous one ends, and is at most
     * 1/128 of its values wide: no gaps, no overlaps, precision as claimed. */
    for (int i = 1; i < HISTOGRAM_BUCKETS; i++) {
        assert_int_equal(histogram_bucket_low(i), histogram_bucket_high(i - 1) + 1);
        uint64_t width = histogram_bucket_high(i) - histogram_bucket_low(i) + 1;
        assert_true(width == 1 || width * 128 <= histogram_bucket_low(i));
    }
    assert_true(histogram_bucket_high(HISTOGRAM_BUCKETS - 1) >= HISTOGRAM_MAX_US);
    for (uint64_t v = 0; v < 3000000; v = v * 3 / 2 + 1) {
        int i = histogram_index(v);
        assert_true(histogram_bucket_low(i) <= v && v <= histogram_bucket_high(i));
    }
}

static void huge_values_are_clamped(void **state)
{
    (void)state;
    histogram_init(&hist);
    histogram_record(&hist, UINT64_C(1) << 40);
    assert_int_equal(hist.max_us, HISTOGRAM_MAX_US);
    assert_int_equal(histogram_percentile(&hist, 50), HISTOGRAM_MAX_US);
}

static void merge_adds_counts(void **state)
{
    (void)state;
    static struct histogram other;
    histogram_init(&hist);
    histogram_init(&other);
    for (uint64_t v = 1; v <= 5000; v++)
        histogram_record(&hist, v);
    for (uint64_t v = 5001; v <= 10000; v++)
        histogram_record(&other, v);
    histogram_merge(&hist, &other);
    assert_int_equal(hist.total, 10000);
    assert_int_equal(hist.max_us, 10000);
    assert_close(histogram_percentile(&hist, 50), 5000);
}

static void empty_is_zero(void **state)
{
    (void)state;
    histogram_init(&hist);
    assert_int_equal(histogram_percentile(&hist, 50), 0);
    assert_true(histogram_mean(&hist) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uniform_1_to_10000),      cmocka_unit_test(small_values_are_exact),
        cmocka_unit_test(skewed_tail_is_found),    cmocka_unit_test(buckets_tile_the_range),
        cmocka_unit_test(huge_values_are_clamped), cmocka_unit_test(merge_adds_counts),
        cmocka_unit_test(empty_is_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
