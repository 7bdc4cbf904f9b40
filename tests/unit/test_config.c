/* The configuration table: defaults, environment, flags, errors, --help. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/config.h"

static FILE *sink(void)
{
    return fopen("/dev/null", "w");
}

static int load(struct config *cfg, int argc, char **argv)
{
    FILE *out = sink(), *err = sink();
    int r = config_load(cfg, argc, argv, out, err);
    fclose(out);
    fclose(err);
    return r;
}

static void test_defaults(void **state)
{
    (void)state;
    unsetenv("PORT");
    struct config cfg;
    char *argv[] = {"pyexecd"};
    assert_int_equal(load(&cfg, 1, argv), 0);
    assert_int_equal(cfg.port, 8080);
    assert_int_equal(cfg.timeout_ms, 15000);
    assert_int_equal(cfg.cpu_ms, 15000);
    assert_int_equal(cfg.memory_mb, 700);
    assert_int_equal(cfg.memory_overcommit, 400);
    assert_int_equal(cfg.script_kb, 100);
    assert_int_equal(cfg.output_kb, 1024);
    assert_int_equal(cfg.result_kb, 10240);
    assert_int_equal(cfg.tmp_kb, 32768);
    assert_int_equal(cfg.body_kb, 12288);
    assert_int_equal(cfg.input_files_kb, 8192);
    assert_int_equal(cfg.input_files, 1000);
    assert_int_equal(cfg.output_files_kb, 10240);
    assert_string_equal(cfg.preload, "numpy,pandas");
    assert_int_equal(cfg.workers, 0); /* from CPUs and memory: server/budget.c */
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_string_equal(cfg.user, "65534");
}

static void test_env_then_flags(void **state)
{
    (void)state;
    setenv("PORT", "9000", 1);
    setenv("PYEXEC_TIMEOUT_MS", "2000", 1);
    struct config cfg;
    char *argv[] = {"pyexecd", "--timeout-ms=3000", "--workers", "3", "--host", "127.0.0.1"};
    assert_int_equal(load(&cfg, 6, argv), 0);
    assert_int_equal(cfg.port, 9000);       /* environment */
    assert_int_equal(cfg.timeout_ms, 3000); /* flag wins */
    assert_int_equal(cfg.workers, 3);
    assert_string_equal(cfg.host, "127.0.0.1");
    unsetenv("PORT");
    unsetenv("PYEXEC_TIMEOUT_MS");
}

static void test_errors(void **state)
{
    (void)state;
    struct config cfg;
    char *bad_flag[] = {"pyexecd", "--nope=1"};
    char *not_number[] = {"pyexecd", "--port=abc"};
    char *out_of_range[] = {"pyexecd", "--port=70000"};
    char *missing_value[] = {"pyexecd", "--port"};
    char *stray[] = {"pyexecd", "port"};
    assert_int_equal(load(&cfg, 2, bad_flag), -EINVAL);
    assert_int_equal(load(&cfg, 2, not_number), -EINVAL);
    assert_int_equal(load(&cfg, 2, out_of_range), -EINVAL);
    assert_int_equal(load(&cfg, 2, missing_value), -EINVAL);
    assert_int_equal(load(&cfg, 2, stray), -EINVAL);
    setenv("PYEXEC_MEMORY_MB", "lots", 1);
    char *plain[] = {"pyexecd"};
    assert_int_equal(load(&cfg, 1, plain), -EINVAL);
    unsetenv("PYEXEC_MEMORY_MB");
}

static void test_help_lists_every_knob(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    struct config cfg;
    char *argv[] = {"pyexecd", "--help"};
    FILE *err = sink();
    assert_int_equal(config_load(&cfg, 2, argv, out, err), 1);
    fclose(out);
    fclose(err);
#define CHECK_INT(field, flag, env, def, min, max, help)                                           \
    assert_non_null(strstr(text, "--" flag));                                                      \
    assert_non_null(strstr(text, env));
#define CHECK_STR(field, flag, env, def, help) CHECK_INT(field, flag, env, 0, 0, 0, help)
    CONFIG_INTS(CHECK_INT)
    CONFIG_STRINGS(CHECK_STR)
    free(text);
}

static void test_flags_round_trip(void **state)
{
    (void)state;
    struct config a, b;
    char *argv[] = {"pyexecd", "--workers=5", "--memory-mb=123", "--user=nobody"};
    assert_int_equal(load(&a, 4, argv), 0);
    char *flags[64] = {"pyexecd"};
    int n = config_to_flags(&a, flags + 1, 63);
    assert_true(n > 10);
    assert_int_equal(load(&b, n + 1, flags), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    for (int i = 1; i <= n; i++)
        free(flags[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),         cmocka_unit_test(test_env_then_flags),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_help_lists_every_knob),
        cmocka_unit_test(test_flags_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
