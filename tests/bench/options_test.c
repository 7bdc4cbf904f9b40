/* pyexec-bench's command-line parser: URLs, durations, conflicts, headers,
 * TLS options, ramps; and the request head the options produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bench/options.h"
#include "bench/request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

static void https_urls(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(options_parse_url(&opts, "https://svc-abc-uc.a.run.app", &why), 0);
    assert_int_equal(opts.tls, 1);
    assert_string_equal(opts.host, "svc-abc-uc.a.run.app");
    assert_string_equal(opts.port, "443");
    assert_string_equal(opts.path, "/execute");

    assert_int_equal(options_parse_url(&opts, "https://[::1]:8443/api/execute", &why), 0);
    assert_int_equal(opts.tls, 1);
    assert_string_equal(opts.host, "::1");
    assert_string_equal(opts.port, "8443");

    /* A later plain URL is plain again. */
    assert_int_equal(options_parse_url(&opts, "http://h", &why), 0);
    assert_int_equal(opts.tls, 0);
    assert_string_equal(opts.port, "80");
}

static void bad_urls(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(options_parse_url(&opts, "ftp://x", &why), -EINVAL);
    assert_non_null(strstr(why, "https://"));
    assert_int_equal(options_parse_url(&opts, "https://:443/", &why), -EINVAL);
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

static void headers(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(options_check_header("Authorization: Bearer abc.def", &why), 0);
    assert_int_equal(options_check_header("X-Request-Id:x", &why), 0);
    assert_int_equal(options_check_header("User-Agent:", &why), 0); /* leaves it out */
    assert_int_equal(options_check_header("NoColon", &why), -EINVAL);
    assert_int_equal(options_check_header(": v", &why), -EINVAL);
    assert_int_equal(options_check_header("Sp ace: v", &why), -EINVAL);
    assert_int_equal(options_check_header("X: a\r\nY: b", &why), -EINVAL);
    assert_int_equal(options_check_header("X: a\nY: b", &why), -EINVAL);
    assert_int_equal(options_check_header("CONTENT-LENGTH: 1", &why), -EINVAL);
    assert_int_equal(options_check_header("Transfer-Encoding: chunked", &why), -EINVAL);
    assert_int_equal(options_check_header("Expect: 100-continue", &why), -EINVAL);

    char *argv[] = {
        "b", "-H", "Authorization: Bearer t", "--header", "X-Request-Id: r1", "https://h/execute",
        NULL};
    assert_int_equal(parse(6, argv), 0);
    assert_int_equal(opts.header_count, 2);
    assert_string_equal(opts.headers[0], "Authorization: Bearer t");
    assert_true(options_has_header(&opts, "authorization"));
    assert_true(options_has_header(&opts, "X-Request-Id"));
    assert_false(options_has_header(&opts, "X-Request"));
    assert_false(options_has_header(&opts, "Host"));
}

static void tls_options(void **state)
{
    (void)state;
    char *cacert[] = {"b", "--cacert", "ca.pem", "https://h", NULL};
    assert_int_equal(parse(4, cacert), 0);
    assert_string_equal(opts.cacert, "ca.pem");
    assert_int_equal(opts.insecure, 0);
    char *insecure[] = {"b", "-k", "https://h", NULL};
    assert_int_equal(parse(3, insecure), 0);
    assert_int_equal(opts.insecure, 1);
    char *insecure_long[] = {"b", "--insecure", "https://h", NULL};
    assert_int_equal(parse(3, insecure_long), 0);
    assert_int_equal(opts.insecure, 1);

    char *plain_cacert[] = {"b", "--cacert", "ca.pem", "http://h", NULL};
    assert_int_equal(parse(4, plain_cacert), -EINVAL);
    char *plain_insecure[] = {"b", "-k", "http://h", NULL};
    assert_int_equal(parse(3, plain_insecure), -EINVAL);
    char *both[] = {"b", "-k", "--cacert", "ca.pem", "https://h", NULL};
    assert_int_equal(parse(5, both), -EINVAL);
}

static void ramps(void **state)
{
    (void)state;
    char *constant[] = {"b", "-R", "40", "http://h", NULL};
    assert_int_equal(parse(4, constant), 0);
    assert_true(opts.rate == 40 && opts.rate_end == 40);
    assert_true(options_open_loop(&opts));
    assert_false(options_ramp(&opts));

    char *ramp[] = {"b", "-R", "10:200", "-d", "60s", "http://h", NULL};
    assert_int_equal(parse(6, ramp), 0);
    assert_true(opts.rate == 10 && opts.rate_end == 200);
    assert_true(options_open_loop(&opts));
    assert_true(options_ramp(&opts));

    char *from_zero[] = {"b", "--rate", "0:50.5", "http://h", NULL};
    assert_int_equal(parse(4, from_zero), 0);
    assert_true(opts.rate == 0 && opts.rate_end == 50.5);
    assert_true(options_open_loop(&opts));

    char *down[] = {"b", "-R", "100:0", "http://h", NULL};
    assert_int_equal(parse(4, down), 0);
    assert_true(options_ramp(&opts));

    char *closed[] = {"b", "http://h", NULL};
    assert_int_equal(parse(2, closed), 0);
    assert_false(options_open_loop(&opts));

    const char *bad[] = {"0", "0:0", "10:", ":10", "a:b", "5:10:20", "-1:5", "5:-1", "1e8:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {"b", "-R", (char *)bad[i], "http://h", NULL};
        assert_int_equal(parse(4, argv), -EINVAL);
    }
    char *ramp_count[] = {"b", "-R", "1:5", "-n", "10", "http://h", NULL};
    assert_int_equal(parse(6, ramp_count), -EINVAL);
}

static void series_and_metrics(void **state)
{
    (void)state;
    char *defaults[] = {"b", "http://h/execute", NULL};
    assert_int_equal(parse(2, defaults), 0);
    assert_int_equal(opts.metrics, 1);
    assert_string_equal(opts.metrics_path, "/metrics");
    assert_null(opts.series);

    char *prefixed[] = {"b", "https://h/api/v1/execute?x=1", NULL};
    assert_int_equal(parse(2, prefixed), 0);
    assert_string_equal(opts.metrics_path, "/api/v1/metrics");

    char *chosen[] = {"b", "--metrics", "/internal/metrics", "--series", "s.csv", "http://h", NULL};
    assert_int_equal(parse(6, chosen), 0);
    assert_string_equal(opts.metrics_path, "/internal/metrics");
    assert_string_equal(opts.series, "s.csv");

    char *off[] = {"b", "--no-metrics", "http://h", NULL};
    assert_int_equal(parse(3, off), 0);
    assert_int_equal(opts.metrics, 0);

    char *relative[] = {"b", "--metrics", "metrics", "http://h", NULL};
    assert_int_equal(parse(4, relative), -EINVAL);
}

static void request_heads(void **state)
{
    (void)state;
    char *text;
    size_t len;
    char *argv[] = {"b",
                    "-H",
                    "Authorization: Bearer t",
                    "-H",
                    "User-Agent:",
                    "-H",
                    "Content-Type: application/json; charset=utf-8",
                    "https://h.example/execute",
                    NULL};
    assert_int_equal(parse(8, argv), 0);
    assert_int_equal(request_build(&opts, "POST", opts.path, "{}", 2, NULL, &text, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_string_equal(text, "POST /execute HTTP/1.1\r\n"
                              "Host: h.example\r\n"
                              "Authorization: Bearer t\r\n"
                              "Content-Type: application/json; charset=utf-8\r\n"
                              "Content-Length: 2\r\n\r\n{}");
    free(text);

    char *plain[] = {"b", "http://[::1]:8080/execute", NULL};
    assert_int_equal(parse(2, plain), 0);
    assert_int_equal(
        request_build(&opts, "GET", "/metrics", NULL, 0, "Connection: close\r\n", &text, &len), 0);
    assert_string_equal(text, "GET /metrics HTTP/1.1\r\n"
                              "Host: [::1]:8080\r\n"
                              "User-Agent: pyexec-bench\r\n"
                              "Connection: close\r\n\r\n");
    free(text);

    char *host[] = {"b", "-H", "Host: other.example", "https://h:443/x", NULL};
    assert_int_equal(parse(4, host), 0);
    assert_int_equal(request_build(&opts, "POST", opts.path, "1", 1, NULL, &text, &len), 0);
    assert_null(strstr(text, "Host: h"));
    assert_non_null(strstr(text, "Host: other.example\r\n"));
    assert_non_null(strstr(text, "Content-Type: application/json\r\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_forms),
        cmocka_unit_test(https_urls),
        cmocka_unit_test(bad_urls),
        cmocka_unit_test(durations),
        cmocka_unit_test(defaults_and_modes),
        cmocka_unit_test(conflicts_and_bad_values),
        cmocka_unit_test(headers),
        cmocka_unit_test(tls_options),
        cmocka_unit_test(ramps),
        cmocka_unit_test(series_and_metrics),
        cmocka_unit_test(request_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
