/* error_body: always strict JSON with the given type and message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/errors.h"

/* Parses body as JSON (jansson refuses invalid UTF-8) and checks both fields. */
static void assert_error_body(const char *body, size_t len, const char *type, const char *message)
{
    json_error_t jerr;
    assert_non_null(body);
    assert_int_equal(strlen(body), len);
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null(root);
    assert_int_equal(json_object_size(root), 2);
    assert_string_equal(json_string_value(json_object_get(root, "type")), type);
    assert_string_equal(json_string_value(json_object_get(root, "error")), message);
    json_decref(root);
}

static void test_plain_message(void **state)
{
    (void)state;
    size_t len = 0;
    char *body = error_body("invalid_request", "Field \"script\" is required.", &len);
    assert_error_body(body, len, "invalid_request", "Field \"script\" is required.");
    assert_string_equal(body, "{\"error\":\"Field \\\"script\\\" is required.\","
                              "\"type\":\"invalid_request\"}");
    free(body);
}

static void test_control_characters_are_escaped(void **state)
{
    (void)state;
    size_t len = 0;
    char *body = error_body("exception", "line 1\nline 2\ttab \x01 \\ end", &len);
    assert_error_body(body, len, "exception", "line 1\nline 2\ttab \x01 \\ end");
    assert_null(memchr(body, '\n', len));
    assert_null(memchr(body, '\x01', len));
    free(body);
}

static void test_valid_utf8_kept(void **state)
{
    (void)state;
    size_t len = 0;
    const char *msg = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    char *body = error_body("invalid_request", msg, &len);
    assert_error_body(body, len, "invalid_request", msg);
    free(body);
}

static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    size_t len = 0;
    /* lone continuation, truncated sequence, overlong '/', surrogate, > U+10FFFF */
    const char *msg = "a\x80 b\xe2\x82 c\xc0\xaf d\xed\xa0\x80 e\xf4\x90\x80\x80 f";
    char *body = error_body("internal", msg, &len);
    assert_non_null(body);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    assert_non_null(root);
    const char *got = json_string_value(json_object_get(root, "error"));
    assert_non_null(got);
    assert_non_null(strstr(got, "a\xef\xbf\xbd b"));
    assert_non_null(strstr(got, " f"));
    assert_null(strstr(got, "\xc0"));
    json_decref(root);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_message),
        cmocka_unit_test(test_control_characters_are_escaped),
        cmocka_unit_test(test_valid_utf8_kept),
        cmocka_unit_test(test_invalid_utf8_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
