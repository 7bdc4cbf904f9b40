/* Building answers from what a child produced, including what a hostile
 * child might produce. */
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker/reply.h"

static const struct reply_limits lim = {.timeout_ms = 1000, .cpu_ms = 1000, .result_cap = 100};

/* A run that ended with the record rec. */
static struct run with_record(const char *rec)
{
    struct run run = {
        .end = RUN_RESULT, .wall_ms = 1.5, .reaped = true, .cpu_us = 2000, .max_rss_kb = 300};
    run.result_len = strlen(rec);
    run.result = strdup(rec);
    return run;
}

static json_t *build(struct run *run, struct reply *rep)
{
    assert_int_equal(reply_build(run, &lim, rep), 0);
    json_error_t e;
    json_t *body = json_loadb(rep->body, rep->len, 0, &e);
    assert_non_null(body);
    return body;
}

static void test_ok_result_spliced(void **state)
{
    (void)state;
    struct run run =
        with_record("{\"type\":\"ok\",\"result\":{\"big\":123456789012345678901234567890}}");
    run.out = (struct capture){.data = "hi\n", .len = 3};
    struct reply rep;
    assert_int_equal(reply_build(&run, &lim, &rep), 0);
    assert_int_equal(rep.status, 200);
    assert_string_equal(rep.type, "ok");
    /* every digit kept: the value is spliced, not re-encoded */
    assert_non_null(strstr(rep.body, "{\"result\":{\"big\":123456789012345678901234567890},"));
    json_t *body = json_loadb(rep.body, rep.len, JSON_DECODE_INT_AS_REAL, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "stdout")), "hi\n");
    assert_true(json_number_value(json_object_get(json_object_get(body, "stats"), "max_rss_kb")) ==
                300);
    json_decref(body);
    free(rep.body);
    free(run.result);
}

static void test_error_record(void **state)
{
    (void)state;
    struct run run =
        with_record("{\"type\":\"exception\",\"error\":\"E: x\",\"traceback\":\"tb\"}");
    struct reply rep;
    json_t *body = build(&run, &rep);
    assert_int_equal(rep.status, 400);
    assert_string_equal(json_string_value(json_object_get(body, "type")), "exception");
    assert_string_equal(json_string_value(json_object_get(body, "error")), "E: x");
    assert_string_equal(json_string_value(json_object_get(body, "traceback")), "tb");
    json_decref(body);
    free(rep.body);
    free(run.result);
}

static void test_forged_or_broken_records(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"type\":\"internal\",\"error\":\"x\"}", /* a type only the service may use */
        "{\"type\":\"ok\",\"result\":NaN}",        /* not strict JSON */
        "{\"type\":\"ok\",\"result\":[1,}",        /* not JSON at all */
        "{\"type\":\"exception\"}",                /* no error sentence */
        "garbage",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct run run = with_record(bad[i]);
        struct reply rep;
        json_t *body = build(&run, &rep);
        assert_int_equal(rep.status, 400);
        assert_string_equal(rep.type, "exception");
        assert_non_null(
            strstr(json_string_value(json_object_get(body, "error")), "result channel"));
        json_decref(body);
        free(rep.body);
        free(run.result);
    }
}

static void check_death(struct run *run, int status, const char *type, const char *sig)
{
    struct reply rep;
    json_t *body = build(run, &rep);
    assert_int_equal(rep.status, status);
    assert_string_equal(rep.type, type);
    assert_string_equal(json_string_value(json_object_get(body, "type")), type);
    if (sig)
        assert_string_equal(json_string_value(json_object_get(body, "signal")), sig);
    json_decref(body);
    free(rep.body);
}

static void test_deaths(void **state)
{
    (void)state;
    struct run run = {.end = RUN_TIMEOUT};
    check_death(&run, 400, "timeout", NULL);
    run = (struct run){.end = RUN_DIED, .reaped = true, .wait_status = 3 << 8};
    check_death(&run, 400, "exited", NULL);
    run = (struct run){.end = RUN_DIED, .reaped = true, .wait_status = SIGSEGV};
    check_death(&run, 400, "killed", "SIGSEGV");
    run = (struct run){.end = RUN_DIED, .reaped = true, .wait_status = SIGXCPU};
    check_death(&run, 400, "timeout", NULL);
    run = (struct run){.end = RUN_DIED, .reaped = true, .wait_status = SIGKILL, .cpu_us = 1000000};
    check_death(&run, 400, "timeout", NULL); /* the hard CPU limit */
    run = (struct run){.end = RUN_DIED, .reaped = true, .wait_status = SIGKILL, .cpu_us = 10};
    check_death(&run, 400, "killed", "SIGKILL");
    run = (struct run){.end = RUN_OVERSIZE};
    check_death(&run, 400, "output_limit", NULL);
    run = (struct run){.end = RUN_SETUP_FAILED};
    check_death(&run, 500, "internal", NULL);
}

static void test_truncated_flags(void **state)
{
    (void)state;
    struct run run = with_record("{\"type\":\"ok\",\"result\":1}");
    run.err = (struct capture){.data = "e", .len = 1, .truncated = true};
    struct reply rep;
    json_t *body = build(&run, &rep);
    json_t *t = json_object_get(body, "truncated");
    assert_int_equal(json_array_size(t), 1);
    assert_string_equal(json_string_value(json_array_get(t, 0)), "stderr");
    json_decref(body);
    free(rep.body);
    free(run.result);
}

static void test_big_numbers_and_nul_keys_kept(void **state)
{
    (void)state;
    /* Legal JSON jansson cannot read: spliced through untouched. */
    const char *values[] = {
        "1" /* 400 digits follow */
        "000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000",
        "1e99999", "{\"a\\u0000b\":1}"};
    for (size_t i = 0; i < sizeof(values) / sizeof(*values); i++) {
        char rec[1024];
        snprintf(rec, sizeof(rec), "{\"type\":\"ok\",\"result\":%s}", values[i]);
        struct run run = with_record(rec);
        struct reply rep;
        struct reply_limits roomy = lim;
        roomy.result_cap = 1024;
        assert_int_equal(reply_build(&run, &roomy, &rep), 0);
        assert_int_equal(rep.status, 200);
        assert_memory_equal(rep.body + strlen("{\"result\":"), values[i], strlen(values[i]));
        free(rep.body);
        free(run.result);
    }
}

/* The worker enforces the result cap itself: a child that skipped its own
 * check (a script writing the frame) gets output_limit, and the stats are
 * the worker's whatever the record says. */
static void test_result_cap_and_stats_are_the_workers(void **state)
{
    (void)state;
    char rec[512];
    snprintf(rec, sizeof(rec), "{\"type\":\"ok\",\"result\":\"%0*d\"}", 99, 0);
    struct run run = with_record(rec); /* a 101-byte value, cap 100 */
    struct reply rep;
    json_t *body = build(&run, &rep);
    assert_int_equal(rep.status, 400);
    assert_string_equal(rep.type, "output_limit");
    json_t *stats = json_object_get(body, "stats");
    assert_true(json_number_value(json_object_get(stats, "cpu_ms")) == 2.0);
    assert_true(json_number_value(json_object_get(stats, "max_rss_kb")) == 300);
    json_decref(body);
    free(rep.body);
    free(run.result);

    snprintf(rec, sizeof(rec), "{\"type\":\"ok\",\"result\":\"%0*d\"}", 98, 0);
    run = with_record(rec); /* exactly the cap */
    body = build(&run, &rep);
    assert_int_equal(rep.status, 200);
    json_decref(body);
    free(rep.body);
    free(run.result);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_result_spliced),
        cmocka_unit_test(test_error_record),
        cmocka_unit_test(test_forged_or_broken_records),
        cmocka_unit_test(test_deaths),
        cmocka_unit_test(test_truncated_flags),
        cmocka_unit_test(test_big_numbers_and_nul_keys_kept),
        cmocka_unit_test(test_result_cap_and_stats_are_the_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
