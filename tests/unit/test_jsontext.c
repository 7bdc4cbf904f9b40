/* UTF-8 repair and the strict JSON check that guards what children send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/jsontext.h"

static void expect_clean_n(const char *in, size_t len, const char *want, size_t want_len)
{
    size_t n;
    char *out = utf8_sanitize(in, len, &n);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, n);
    free(out);
}

static void expect_clean(const char *in, size_t len, const char *want)
{
    expect_clean_n(in, len, want, strlen(want));
}

static void test_utf8_sanitize(void **state)
{
    (void)state;
    expect_clean("h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80", 15,
                 "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80");
    expect_clean("a\xFF"
                 "b",
                 3,
                 "a\xEF\xBF\xBD"
                 "b");
    expect_clean("\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD");                 /* overlong '/' */
    expect_clean("\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); /* a surrogate */
    expect_clean("\xF4\x90\x80\x80", 4,
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); /* past U+10FFFF */
    expect_clean("x\xE2\x9C", 3, "x\xEF\xBF\xBD\xEF\xBF\xBD");        /* cut by a cap */
    expect_clean_n("nul\0in", 6, "nul\0in", 6);
}

static void check(const char *text, bool want)
{
    if (json_check(text, strlen(text)) != want)
        fail_msg("json_check(%s) should be %s", text, want ? "true" : "false");
}

static void test_json_check_accepts(void **state)
{
    (void)state;
    const char *good[] = {
        "0",
        "-1",
        "1.5e-300",
        "1e99999",
        "123456789012345678901234567890123456789",
        "\"\"",
        "\"\\u0000\"",
        "\"\\ud83d\\ude00\"",
        "\"h\xC3\xA9\"",
        "true",
        "false",
        "null",
        " [ 1 , 2 ] ",
        "{}",
        "[]",
        "{\"a\\u0000b\":[{\"c\":null}]}",
        "[[[[[]]]]]",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        check(good[i], true);
}

static void test_json_check_refuses(void **state)
{
    (void)state;
    const char *bad[] = {
        "",         "NaN",      "Infinity", "-",           "01",          "1.",
        ".5",       "1e",       "+1",       "\"\\ud800\"", "\"\\udc00\"", "\"\\x\"",
        "\"\x01\"", "\"\xFF\"", "\"open",   "[1,]",        "{\"a\"}",     "{1:2}",
        "[1] [2]",  "tru",      "nulls",    "{\"a\":1,}",  "[",           "\"\\u12\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        check(bad[i], false);
}

static void test_json_check_depth_bound(void **state)
{
    (void)state;
    size_t n = 5000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    assert_false(json_check(deep, 2 * n)); /* refused, never a stack overflow */
    assert_true(json_check(deep + n - 100, 200));
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_sanitize),
        cmocka_unit_test(test_json_check_accepts),
        cmocka_unit_test(test_json_check_refuses),
        cmocka_unit_test(test_json_check_depth_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
