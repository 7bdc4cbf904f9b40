/* request_parse against the API's POST /execute rules, and the Content-Type check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ipc.h"
#include "server/request.h"

static struct config test_config(void)
{
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.timeout_ms = 15000;
    cfg.memory_mb = 700;
    cfg.script_kb = 1;
    cfg.tmp_kb = 64;
    cfg.input_files_kb = 16;
    cfg.input_files = 3;
    return cfg;
}

/* Parses text (without its NUL) and expects a refusal whose message contains needle. */
static void expect_refused_n(const char *text, size_t len, int status, const char *type,
                             const char *needle)
{
    struct config cfg = test_config();
    struct exec_request req;
    struct request_error err;
    memset(&err, 0, sizeof(err));
    assert_int_equal(request_parse(text, len, &cfg, &req, &err), -1);
    assert_int_equal(err.status, status);
    assert_string_equal(err.type, type);
    if (!strstr(err.message, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
    assert_null(req.script);
    assert_null(req.input_json);
}

static void expect_refused(const char *text, const char *needle)
{
    expect_refused_n(text, strlen(text), 400, "invalid_request", needle);
}

static void expect_accepted(const char *text, struct exec_request *req)
{
    struct config cfg = test_config();
    struct request_error err;
    memset(&err, 0, sizeof(err));
    if (request_parse(text, strlen(text), &cfg, req, &err) != 0)
        fail_msg("refused %s: %s", text, err.message);
}

static void test_not_json(void **state)
{
    (void)state;
    expect_refused("{\"script\": ", "not valid JSON");
    expect_refused("script=print(1)", "not valid JSON");
    expect_refused("{\"script\": \"x\"} trailing", "not valid JSON");
    expect_refused_n("", 0, 400, "invalid_request", "empty");
    expect_refused_n(NULL, 0, 400, "invalid_request", "empty");
}

static void test_not_object(void **state)
{
    (void)state;
    expect_refused("[\"def main(): return 1\"]", "must be a JSON object");
    expect_refused("\"def main(): return 1\"", "not a string");
    expect_refused("42", "must be a JSON object");
    expect_refused("null", "not null");
}

static void test_not_utf8(void **state)
{
    (void)state;
    expect_refused("{\"script\": \"def main(): return '\xff'\"}", "not valid UTF-8");
    expect_refused("{\"script\": \"caf\xc3\"}", "not valid UTF-8");
}

static void test_nul_in_string(void **state)
{
    (void)state;
    expect_refused("{\"script\": \"def main(): return 1\\u0000\"}", "NUL");
    expect_refused("{\"scr\\u0000ipt\": \"x\"}", "NUL");
    /* A raw NUL byte is not JSON at all. */
    const char raw[] = "{\"script\": \"a\0b\"}";
    expect_refused_n(raw, sizeof(raw) - 1, 400, "invalid_request", "not valid JSON");
}

static void test_script_missing_empty_wrong_type(void **state)
{
    (void)state;
    expect_refused("{}", "\"script\" is required");
    expect_refused("{\"input\": 1}", "\"script\" is required");
    expect_refused("{\"script\": \"\"}", "\"script\" is empty");
    expect_refused("{\"script\": 12}", "must be a string");
    expect_refused("{\"script\": null}", "must be a string");
    expect_refused("{\"script\": [\"def main(): pass\"]}", "not an array");
}

static void test_unknown_field(void **state)
{
    (void)state;
    expect_refused(
        "{\"scrpt\": \"def main(): return 1\"}",
        "Unknown field \"scrpt\"; allowed: script, input, stdin, files, timeout_ms, memory_mb.");
    expect_refused("{\"script\": \"def main(): return 1\", \"timeout\": 5}",
                   "Unknown field \"timeout\"");
}

static void test_duplicate_field(void **state)
{
    (void)state;
    expect_refused("{\"script\": \"a\", \"script\": \"b\"}",
                   "Field \"script\" appears more than once");
}

static void test_limit_types(void **state)
{
    (void)state;
    expect_refused("{\"script\": \"x\", \"timeout_ms\": \"100\"}",
                   "\"timeout_ms\" must be a whole number of milliseconds, not a string");
    expect_refused("{\"script\": \"x\", \"timeout_ms\": true}", "not a boolean");
    expect_refused("{\"script\": \"x\", \"timeout_ms\": 5.0}", "fraction or exponent");
    expect_refused("{\"script\": \"x\", \"timeout_ms\": 1e3}", "fraction or exponent");
    expect_refused("{\"script\": \"x\", \"memory_mb\": null}", "not null");
    expect_refused("{\"script\": \"x\", \"memory_mb\": 0}", "at least 1");
    expect_refused("{\"script\": \"x\", \"timeout_ms\": -5}", "at least 1");
}

static void test_limits_above_caps(void **state)
{
    (void)state;
    expect_refused("{\"script\": \"x\", \"timeout_ms\": 15001}", "at most 15000 milliseconds");
    expect_refused("{\"script\": \"x\", \"memory_mb\": 701}", "at most 700 MiB");
    expect_refused("{\"script\": \"x\", \"memory_mb\": 99999999999999}", "at most 700");
}

static void test_script_over_cap_is_413(void **state)
{
    (void)state;
    /* script_kb = 1: 1024 bytes pass, 1025 do not. */
    char text[1200];
    int prefix = snprintf(text, sizeof(text), "{\"script\": \"");
    memset(text + prefix, '#', 1025);
    strcpy(text + prefix + 1025, "\"}");
    expect_refused_n(text, strlen(text), 413, "payload_too_large", "1025 bytes");

    struct exec_request req;
    memmove(text + prefix + 1024, text + prefix + 1025, 3);
    expect_accepted(text, &req);
    assert_int_equal(req.script_len, 1024);
    request_free(&req);
}

static void test_accepted_defaults(void **state)
{
    (void)state;
    struct exec_request req;
    expect_accepted("{\"script\": \"def main():\\n    return 1\\n\"}", &req);
    assert_string_equal(req.script, "def main():\n    return 1\n");
    assert_int_equal(req.script_len, strlen(req.script));
    assert_null(req.input_json);
    assert_int_equal(req.input_len, 0);
    assert_int_equal(req.timeout_ms, 15000);
    assert_int_equal(req.memory_mb, 700);
    request_free(&req);
    assert_null(req.script);
}

static void test_accepted_input(void **state)
{
    (void)state;
    struct exec_request req;
    expect_accepted("{\"input\": {\"data\": [1, 2.5, \"\xc3\xa9\"], \"k\": {}}, "
                    "\"script\": \"def main(x): return x\"}",
                    &req);
    assert_string_equal(req.input_json, "{\"data\":[1,2.5,\"\xc3\xa9\"],\"k\":{}}");
    assert_int_equal(req.input_len, strlen(req.input_json));
    request_free(&req);

    expect_accepted("{\"script\": \"def main(x): return x\", \"input\": null}", &req);
    assert_string_equal(req.input_json, "null");
    request_free(&req);

    expect_accepted("{\"script\": \"def main(x): return x\", \"input\": \"text\"}", &req);
    assert_string_equal(req.input_json, "\"text\"");
    request_free(&req);
}

static void test_accepted_lower_limits(void **state)
{
    (void)state;
    struct exec_request req;
    expect_accepted("{\"script\": \"x\", \"timeout_ms\": 250, \"memory_mb\": 700}", &req);
    assert_int_equal(req.timeout_ms, 250);
    assert_int_equal(req.memory_mb, 700);
    request_free(&req);
    expect_accepted("{\"script\": \"x\", \"timeout_ms\": 1, \"memory_mb\": 64}", &req);
    assert_int_equal(req.timeout_ms, 1);
    assert_int_equal(req.memory_mb, 64);
    request_free(&req);
}

static void test_content_type(void **state)
{
    (void)state;
    assert_true(request_content_type_ok(NULL));
    assert_true(request_content_type_ok("application/json"));
    assert_true(request_content_type_ok("Application/JSON"));
    assert_true(request_content_type_ok("application/json; charset=utf-8"));
    assert_true(request_content_type_ok("application/json;charset=\"UTF-8\""));
    assert_false(request_content_type_ok("text/plain"));
    assert_false(request_content_type_ok("application/jsonx"));
    assert_false(request_content_type_ok("application/x-www-form-urlencoded"));
    assert_false(request_content_type_ok("application/json; charset=latin1"));
    assert_false(request_content_type_ok(""));
}

/* Each bad shape of a path is refused with a message naming the path. */
static void test_file_paths(void **state)
{
    (void)state;
    static const struct {
        const char *key, *needle;
    } bad[] = {
        {"../x", "\"../x\" has a \".\" or \"..\" component"},
        {"/etc/x", "\"/etc/x\" is absolute"},
        {"a/../../b", "\"a/../../b\" has a \".\" or \"..\""},
        {"", "\"\" is empty"},
        {"a//b", "\"a//b\" has an empty component"},
        {"a/", "\"a/\" has an empty component"},
        {".", "\".\" has a \".\""},
        {"a/./b", "has a \".\""},
        {"1/2/3/4/5/6/7/8/9", "\"1/2/3/4/5/6/7/8/9\" is nested deeper than 8 levels"},
        {"out/x", "\"out/x\" is under out/"},
        {"out", "\"out\" is under out/"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{\"script\": \"x\", \"files\": {\"%s\": \"v\"}}", bad[i].key);
        expect_refused(body, bad[i].needle);
    }
    char body[1024];
    char name[300];
    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(body, sizeof(body), "{\"script\": \"x\", \"files\": {\"%s\": \"v\"}}", name);
    expect_refused(body, "longer than 255 bytes");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\\u0000b\": \"v\"}}", "NUL");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": \"v\", \"a/b\": \"w\"}}",
                   "\"a/b\" needs \"a\" to be both a file and a directory");
    expect_refused("{\"script\": \"x\", \"files\": {\"a/b\": \"v\", \"a\": \"w\"}}",
                   "\"a\" needs \"a\" to be both");
    /* Eight levels and 255-byte components are fine. */
    struct exec_request req;
    expect_accepted("{\"script\": \"x\", \"files\": {\"1/2/3/4/5/6/7/8\": \"v\", \"a-b\": \"\", "
                    "\"a/b\": \"\"}}",
                    &req);
    assert_int_equal(req.files_count, 3);
    request_free(&req);
}

static void test_file_values(void **state)
{
    (void)state;
    expect_refused("{\"script\": \"x\", \"files\": []}", "\"files\" must be an object");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": []}}",
                   "File \"a\" must be a string (UTF-8 text) or {\"base64\": \"...\"} (bytes), "
                   "not an array");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": 5}}", "not an integer");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": null}}", "not null");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": {}}}", "an object with other keys");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": {\"base64\": \"QQ==\", \"x\": 1}}}",
                   "an object with other keys");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": {\"b64\": \"QQ==\"}}}",
                   "an object with other keys");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": {\"base64\": 5}}}", "File \"a\"");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": {\"base64\": \"!!!!\"}}}",
                   "File \"a\" is not valid base64");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": {\"base64\": \"Q\"}}}",
                   "not valid base64");
    expect_refused("{\"script\": \"x\", \"files\": {\"a\": {\"base64\": \"QQ==QQ==\"}}}",
                   "not valid base64");
    expect_refused("{\"script\": \"x\", \"stdin\": 5}", "\"stdin\" must be a string");
    expect_refused("{\"script\": \"x\", \"stdin\": null}", "not null");
}

static void test_file_caps(void **state)
{
    (void)state;
    /* test_config: at most 3 files, 16 KiB. */
    expect_refused_n("{\"script\": \"x\", \"files\": {\"a\": \"\", \"b\": \"\", \"c\": \"\", "
                     "\"d\": \"\"}}",
                     strlen("{\"script\": \"x\", \"files\": {\"a\": \"\", \"b\": \"\", \"c\": "
                            "\"\", \"d\": \"\"}}"),
                     413, "payload_too_large", "4 files; the limit is 3");
    size_t n = 17 * 1024;
    char *body = malloc(n + 64);
    int len = sprintf(body, "{\"script\": \"x\", \"files\": {\"big\": \"");
    memset(body + len, 'x', n);
    len += (int)n;
    len += sprintf(body + len, "\"}}");
    expect_refused_n(body, (size_t)len, 413, "payload_too_large",
                     "at \"big\"; the limit is 16 KiB");
    free(body);
}

/* Accepted files arrive as ipc_file records, decoded; stdin as given. */
static void test_files_accepted(void **state)
{
    (void)state;
    struct exec_request req;
    expect_accepted("{\"script\": \"x\", \"stdin\": \"line\\n\", \"files\": {\"d/a.csv\": "
                    "\"x,y\\n\", \"b.bin\": {\"base64\": \"AAH/\\n\"}}}",
                    &req);
    assert_int_equal(req.stdin_len, 5);
    assert_memory_equal(req.stdin_data, "line\n", 5);
    assert_int_equal(req.files_count, 2);
    assert_int_equal(req.files_bytes, 4 + 3);
    size_t pos = 0, path_len, data_len;
    const char *path, *data;
    assert_int_equal(
        ipc_file_next(req.files, req.files_len, &pos, &path, &path_len, &data, &data_len), 1);
    assert_int_equal(path_len, 7);
    assert_memory_equal(path, "d/a.csv", 7);
    assert_int_equal(data_len, 4);
    assert_memory_equal(data, "x,y\n", 4);
    assert_int_equal(
        ipc_file_next(req.files, req.files_len, &pos, &path, &path_len, &data, &data_len), 1);
    assert_memory_equal(path, "b.bin", 5);
    assert_int_equal(data_len, 3);
    assert_memory_equal(data, "\x00\x01\xff", 3);
    assert_int_equal(
        ipc_file_next(req.files, req.files_len, &pos, &path, &path_len, &data, &data_len), 0);
    request_free(&req);

    expect_accepted("{\"script\": \"x\", \"files\": {}}", &req);
    assert_int_equal(req.files_count, 0);
    assert_int_equal(req.files_len, 0);
    request_free(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_not_object),
        cmocka_unit_test(test_not_utf8),
        cmocka_unit_test(test_nul_in_string),
        cmocka_unit_test(test_script_missing_empty_wrong_type),
        cmocka_unit_test(test_unknown_field),
        cmocka_unit_test(test_duplicate_field),
        cmocka_unit_test(test_limit_types),
        cmocka_unit_test(test_limits_above_caps),
        cmocka_unit_test(test_script_over_cap_is_413),
        cmocka_unit_test(test_accepted_defaults),
        cmocka_unit_test(test_accepted_input),
        cmocka_unit_test(test_accepted_lower_limits),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_file_paths),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_file_caps),
        cmocka_unit_test(test_files_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
