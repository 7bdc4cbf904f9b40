/* pyexec-bench's command-line parser: URLs, durations, conflicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bench/options.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct options opts;

static int parse(int argc, char **argv)
{
    FILE *sink = fopen("/dev/null", "w");
    int rc = options_parse(&opts, argc, argv, sink, sink);
    fclose(sink);
    return rc;
}

static void url_forms(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(options_parse_url(&opts, "http://127.0.0.1:8080/execute", &why), 0);
    assert_string_equal(opts.host, "127.0.0.1");
    assert_string_equal(opts.port, "8080");
    assert_string_equal(opts.path, "/execute");

    assert_int_equal(options_parse_url(&opts, "http://svc-abc.a.run.app", &why), 0);
    assert_string_equal(opts.host, "svc-abc.a.run.app");
    assert_string_equal(opts.port, "80");
    assert_string_equal(opts.path, "/execute");

    assert_int_equal(options_parse_url(&opts, "http://[::1]:9000/x", &why), 0);
    assert_string_equal(opts.host, "::1");
    assert_string_equal(opts.port, "9000");
    assert_string_equal(opts.path, "/x");

    assert_int_equal(options_parse_url(&opts, "localhost:81", &why), 0);
    assert_string_equal(opts.host, "localhost");
    assert_string_equal(opts.port, "81");
}

static void bad_urls(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(options_parse_url(&opts, "https://x.run.app", &why), -EINVAL);
    assert_non_null(strstr(why, "https"));
    assert_int_equal(options_parse_url(&opts, "ftp://x", &why), -EINVAL);
    assert_int_equal(options_parse_url(&opts, "http://:80/", &why), -EINVAL);
    assert_int_equal(options_parse_url(&opts, "http://h:0/", &why), -EINVAL);
    assert_int_equal(options_parse_url(&opts, "http://h:65536/", &why), -EINVAL);
    assert_int_equal(options_parse_url(&opts, "http://h:8x/", &why), -EINVAL);
    assert_int_equal(options_parse_url(&opts, "http://[::1/", &why), -EINVAL);
}

static void durations(void **state)
{
    (void)state;
    uint64_t ns;
    assert_int_equal(options_parse_duration("10s", &ns), 0);
    assert_int_equal(ns, UINT64_C(10000000000));
    assert_int_equal(options_parse_duration("250ms", &ns), 0);
    assert_int_equal(ns, UINT64_C(250000000));
    assert_int_equal(options_parse_duration("2", &ns), 0);
    assert_int_equal(ns, UINT64_C(2000000000));
    assert_int_equal(options_parse_duration("1m", &ns), 0);
    assert_int_equal(ns, UINT64_C(60000000000));
    assert_int_equal(options_parse_duration("1.5s", &ns), 0);
    assert_int_equal(ns, UINT64_C(1500000000));
    assert_int_equal(options_parse_duration("0", &ns), 0);
    assert_int_equal(ns, 0);
    assert_int_equal(options_parse_duration("", &ns), -EINVAL);
    assert_int_equal(options_parse_duration("ten", &ns), -EINVAL);
    assert_int_equal(options_parse_duration("5 parsecs", &ns), -EINVAL);
    assert_int_equal(options_parse_duration("-1s", &ns), -EINVAL);
}

static void defaults_and_modes(void **state)
{
    (void)state;
    char *closed[] = {"pyexec-bench", "http://127.0.0.1:1/execute", NULL};
    assert_int_equal(parse(2, closed), 0);
    assert_int_equal(opts.connections, 8);
    assert_int_equal(opts.duration_ns, UINT64_C(10000000000));
    assert_int_equal(opts.requests, 0);
    assert_true(opts.rate == 0);
    assert_string_equal(opts.workload, "trivial");

    char *open[] = {"pyexec-bench", "-c",     "4",  "-n", "100",    "-R",          "50.5",
                    "-W",           "pandas", "-w", "0",  "--json", "127.0.0.1:1", NULL};
    assert_int_equal(parse(13, open), 0);
    assert_int_equal(opts.connections, 4);
    assert_int_equal(opts.requests, 100);
    assert_int_equal(opts.duration_ns, 0);
    assert_int_equal(opts.warmup_ns, 0);
    assert_true(opts.rate == 50.5);
    assert_string_equal(opts.workload, "pandas");
    assert_int_equal(opts.json, 1);
}

static void conflicts_and_bad_values(void **state)
{
    (void)state;
    char *both[] = {"b", "-d", "1s", "-n", "5", "http://h", NULL};
    assert_int_equal(parse(6, both), -EINVAL);
    char *body_and_workload[] = {"b", "-W", "numpy", "-b", "f.json", "http://h", NULL};
    assert_int_equal(parse(6, body_and_workload), -EINVAL);
    char *zero_conns[] = {"b", "-c", "0", "http://h", NULL};
    assert_int_equal(parse(4, zero_conns), -EINVAL);
    char *unknown_workload[] = {"b", "-W", "tensorflow", "http://h", NULL};
    assert_int_equal(parse(4, unknown_workload), -EINVAL);
    char *no_url[] = {"b", "-c", "2", NULL};
    assert_int_equal(parse(3, no_url), -EINVAL);
    char *two_urls[] = {"b", "http://h", "http://i", NULL};
    assert_int_equal(parse(3, two_urls), -EINVAL);
    char *negative_rate[] = {"b", "-R", "-5", "http://h", NULL};
    assert_int_equal(parse(4, negative_rate), -EINVAL);
    char *help[] = {"b", "--help", NULL};
    assert_int_equal(parse(2, help), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_forms),
        cmocka_unit_test(bad_urls),
        cmocka_unit_test(durations),
        cmocka_unit_test(defaults_and_modes),
        cmocka_unit_test(conflicts_and_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
