/* pyexec-bench's server view (the /metrics text parsed, two scrapes turned
 * into a breakdown) and its per-second series file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bench/scrape.h"
#include "bench/series.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* pyexecd's exposition of one histogram with cumulative buckets c1..c4 over
 * bounds 0.001, 0.01, 0.1, +Inf. */
static char *page(const char *name, int c1, int c2, int c3, int c4, double sum)
{
    static char text[2048];
    snprintf(text, sizeof(text),
             "# HELP %s x.\n# TYPE %s histogram\n"
             "%s_bucket{le=\"0.001\"} %d\n%s_bucket{le=\"0.01\"} %d\n"
             "%s_bucket{le=\"0.1\"} %d\n%s_bucket{le=\"+Inf\"} %d\n"
             "%s_sum %.6f\n%s_count %d\n"
             "pyexec_requests_total{status=\"200\",type=\"ok\"} 5\npyexec_workers 2\n",
             name, name, name, c1, name, c2, name, c3, name, c4, name, sum, name, c4);
    return text;
}

static void parses_pyexecd_histograms(void **state)
{
    (void)state;
    struct scrape s;
    char *text = page("pyexec_execution_seconds", 1, 3, 4, 4, 0.05);
    scrape_parse(text, strlen(text), &s);
    assert_int_equal(s.ok, 1);
    const struct scrape_histogram *h = &s.stages[2]; /* execution */
    assert_int_equal(h->found, 1);
    assert_int_equal(h->buckets, 4);
    assert_true(h->le[1] == 0.01 && isinf(h->le[3]));
    assert_true(h->cumulative[1] == 3 && h->count == 4 && h->sum == 0.05);
    assert_int_equal(s.stages[0].found, 0); /* queue wait absent */

    const char *other = "# nothing of ours\nhttp_requests_total 5\n";
    scrape_parse(other, strlen(other), &s);
    assert_int_equal(s.ok, 0);
    assert_non_null(strstr(s.why, "no pyexec histograms"));
}

static void differences_give_the_window(void **state)
{
    (void)state;
    struct scrape before, after;
    struct scrape_stage stages[SCRAPE_STAGES];
    char why[SCRAPE_WHY_MAX];
    char *text = page("pyexec_execution_seconds", 10, 10, 10, 10, 0.005);
    scrape_parse(text, strlen(text), &before);
    /* In the window: 90 answers, 50 within 10 ms, 40 within 100 ms. */
    text = page("pyexec_execution_seconds", 10, 60, 100, 100, 2.005);
    scrape_parse(text, strlen(text), &after);
    assert_int_equal(scrape_diff(&before, &after, stages, why, sizeof(why)), 0);
    const struct scrape_stage *e = &stages[2];
    assert_string_equal(e->name, "execution");
    assert_string_equal(e->key, "execution");
    assert_true(e->count == 90);
    assert_true(fabs(e->mean_ms - 2000.0 / 90) < 1e-6);
    assert_true(e->p50_ms == 10.0);  /* the 45th answer is in the <= 10 ms bucket */
    assert_true(e->p99_ms == 100.0); /* the 89th in the <= 100 ms one */

    /* Past every finite bucket: no bound to claim. */
    text = page("pyexec_execution_seconds", 10, 10, 10, 30, 60.005);
    scrape_parse(text, strlen(text), &after);
    assert_int_equal(scrape_diff(&before, &after, stages, why, sizeof(why)), 0);
    assert_true(isinf(stages[2].p50_ms));

    /* A restarted server's counters go back: no breakdown. */
    text = page("pyexec_execution_seconds", 1, 1, 1, 1, 0.0);
    scrape_parse(text, strlen(text), &after);
    assert_int_equal(scrape_diff(&before, &after, stages, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "restarted"));

    /* A failed scrape's reason is the answer. */
    after.ok = 0;
    snprintf(after.why, sizeof(after.why), "cannot connect: refused");
    assert_int_equal(scrape_diff(&before, &after, stages, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "cannot connect: refused");
}

#define S 1000000000ULL

/* The series file's text, then the file gone. */
static void read_and_remove(const char *path, char *text, size_t size)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, size - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
}

static void series_one_row_per_second(void **state)
{
    (void)state;
    char path[] = "/tmp/pyexec-bench-series-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct series s;
    uint64_t t0 = 100 * S;
    /* A ramp from 10 to 30 req/s over 3 s. */
    assert_int_equal(series_open(&s, path, t0, t0 + 3 * S, 10, 30, 3.0), 0);
    series_sent(&s, t0 - 1); /* warm-up: not in the series */
    series_sent(&s, t0 + S / 10);
    series_answer(&s, t0 + S / 5, 200, 200); /* µs below 256 are exact in the histogram */
    series_answer(&s, t0 + S / 4, 250, 503);
    /* second 1: nothing at all; second 2: one error */
    series_error(&s, t0 + 2 * S + 5);
    series_answer(&s, t0 + 3 * S, 1000, 200); /* at the end: outside */
    assert_int_equal(series_close(&s, t0 + 3 * S), 0);

    char text[1024];
    read_and_remove(path, text, sizeof(text));
    assert_string_equal(text, "second,target_rps,sent,answered,rps,p50_ms,p99_ms,non_2xx,errors\n"
                              "0,13.3,1,2,2.0,0.200,0.250,1,0\n"
                              "1,20.0,0,0,0.0,,,0,0\n"
                              "2,26.7,0,0,0.0,,,0,1\n");
}

static void series_partial_last_row(void **state)
{
    (void)state;
    char path[] = "/tmp/pyexec-bench-series-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    struct series s;
    uint64_t t0 = 5 * S;
    /* Closed loop, --requests mode (no end): the last row covers 0.5 s. */
    assert_int_equal(series_open(&s, path, t0, 0, 0, 0, 0), 0);
    for (int i = 0; i < 4; i++)
        series_answer(&s, t0 + S + S / 10 * (uint64_t)i, 100, 200);
    assert_int_equal(series_close(&s, t0 + S + S / 2), 0);
    char text[1024];
    read_and_remove(path, text, sizeof(text));
    assert_string_equal(text, "second,target_rps,sent,answered,rps,p50_ms,p99_ms,non_2xx,errors\n"
                              "0,,0,0,0.0,,,0,0\n"
                              "1,,0,4,8.0,0.100,0.100,0,0\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_pyexecd_histograms),
        cmocka_unit_test(differences_give_the_window),
        cmocka_unit_test(series_one_row_per_second),
        cmocka_unit_test(series_partial_last_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
