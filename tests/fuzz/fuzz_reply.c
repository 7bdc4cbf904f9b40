/* Fuzz target: reply_build and utf8_sanitize (worker/reply.c), which turn
 * what an untrusted child left behind — its stdout and stderr bytes, its
 * result record, how it died — into the HTTP answer. Whatever the child did,
 * the body must be strict JSON of the API's shape, and stdout/stderr valid UTF-8.
 *
 * Input layout (tests/fuzz/make_seeds.py writes seeds in it):
 *   u8 end | u8 flags | i32 wait_status | u16 out_len | u16 err_len | rest
 * rest is stdout[out_len], stderr[err_len], then the result frame payload
 * (the record) when flags has FLAG_RESULT. Lengths are clamped to what is
 * there. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "tests/fuzz/fuzz_check.h"
#include "common/jsontext.h"
#include "worker/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    FLAG_RESULT = 1,
    FLAG_OUT_TRUNCATED = 2,
    FLAG_ERR_TRUNCATED = 4,
    FLAG_REAPED = 8,
};

struct layout {
    uint8_t end, flags;
    int32_t wait_status;
    uint16_t out_len, err_len;
} __attribute__((packed));

static const char *const spec_types[] = {
    "ok",       "syntax_error", "missing_main", "exception", "result_not_serializable",
    "timeout",  "memory_limit", "output_limit", "killed",    "exited",
    "internal", "cancelled", /* the client is gone: nobody reads this one */
};

static bool spec_type(const char *type)
{
    for (size_t i = 0; i < sizeof(spec_types) / sizeof(*spec_types); i++)
        if (!strcmp(type, spec_types[i]))
            return true;
    return false;
}

static size_t take(size_t want, size_t *left)
{
    size_t n = want < *left ? want : *left;
    *left -= n;
    return n;
}

/* The string field equals utf8_sanitize(bytes): captured text is never lost
 * or reordered, only invalid bytes replaced. */
static void check_capture(json_t *field, const struct capture *c)
{
    FUZZ_CHECK(json_is_string(field));
    size_t clean_len;
    char *clean = utf8_sanitize(c->data ? c->data : "", c->len, &clean_len);
    FUZZ_CHECK(clean);
    FUZZ_CHECK(json_string_length(field) == clean_len);
    FUZZ_CHECK(!memcmp(json_string_value(field), clean, clean_len));
    free(clean);
}

static void check_sanitize(const char *s, size_t len)
{
    size_t n;
    char *clean = utf8_sanitize(s, len, &n);
    FUZZ_CHECK(clean && clean[n] == '\0' && n <= 3 * len);
    FUZZ_CHECK(fuzz_utf8_valid(clean, n));
    if (fuzz_utf8_valid(s, len)) /* valid text passes through untouched */
        FUZZ_CHECK(n == len && !memcmp(clean, s, len));
    size_t again_len;
    char *again = utf8_sanitize(clean, n, &again_len); /* and repair is idempotent */
    FUZZ_CHECK(again && again_len == n && !memcmp(again, clean, n));
    free(again);
    free(clean);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct layout h;
    if (size < sizeof(h))
        return 0;
    memcpy(&h, data, sizeof(h));
    const char *rest = (const char *)data + sizeof(h);
    size_t left = size - sizeof(h);

    struct run run;
    memset(&run, 0, sizeof(run));
    run.end = (enum run_end)(h.end % (RUN_SETUP_FAILED + 1));
    run.wait_status = h.wait_status;
    run.reaped = h.flags & FLAG_REAPED;
    run.cpu_us = (uint64_t)h.out_len * 997;
    run.max_rss_kb = h.err_len;
    run.wall_ms = h.wait_status / 1000.0;
    snprintf(run.setup_error, sizeof(run.setup_error), "landlock: fuzzed");
    run.out.data = (char *)rest;
    run.out.len = take(h.out_len, &left);
    run.out.truncated = h.flags & FLAG_OUT_TRUNCATED;
    run.err.data = (char *)rest + run.out.len;
    run.err.len = take(h.err_len, &left);
    run.err.truncated = h.flags & FLAG_ERR_TRUNCATED;
    if (h.flags & FLAG_RESULT) {
        run.result = (char *)rest + run.out.len + run.err.len;
        run.result_len = left;
    }

    struct reply_limits lim = {.timeout_ms = 1000, .cpu_ms = 1000, .result_cap = 1 << 20};
    struct reply reply;
    FUZZ_CHECK(reply_build(&run, &lim, &reply) == 0);
    FUZZ_CHECK(reply.body && strlen(reply.body) == reply.len);

    /* Strict JSON, whatever the child wrote (checked without jansson, which
     * cannot read integers past 1e308 or NUL in keys, both legal JSON). */
    FUZZ_CHECK(json_check(reply.body, reply.len));
    FUZZ_CHECK(spec_type(reply.type));
    FUZZ_CHECK((reply.status == 200) == !strcmp(reply.type, "ok"));
    FUZZ_CHECK(reply.status == 200 || reply.status == 400 || reply.status == 500);

    /* A success is exactly the child's own {"type":"ok","result":V} with V
     * strict JSON, and V reaches the body byte for byte: never invented,
     * never refused. */
    static const char ok[] = "{\"type\":\"ok\",\"result\":";
    static const char head[] = "{\"result\":";
    const char *rec = run.result;
    size_t rec_len = run.result_len;
    bool ok_record = run.end == RUN_RESULT && rec && rec_len >= sizeof(ok) - 1 + 2 &&
                     !memcmp(rec, ok, sizeof(ok) - 1) && rec[rec_len - 1] == '}' &&
                     rec_len - sizeof(ok) <= lim.result_cap &&
                     json_check(rec + sizeof(ok) - 1, rec_len - sizeof(ok));
    /* Differential: what jansson reads as JSON, json_check must accept
     * (jansson ends its input at a NUL byte, so values holding one are left
     * out: json_check rightly refuses a raw NUL). */
    if (rec && rec_len >= sizeof(ok) && !memcmp(rec, ok, sizeof(ok) - 1) &&
        !memchr(rec + sizeof(ok) - 1, 0, rec_len - sizeof(ok))) {
        json_t *v = json_loadb(rec + sizeof(ok) - 1, rec_len - sizeof(ok),
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        FUZZ_CHECK(!v || json_check(rec + sizeof(ok) - 1, rec_len - sizeof(ok)));
        json_decref(v);
    }
    if (ok_record && reply.status != 200)
        fprintf(stderr, "a valid result was refused: %.300s\n", reply.body);
    FUZZ_CHECK(ok_record == (reply.status == 200));
    const char *tail = reply.body;
    if (ok_record) {
        size_t vlen = rec_len - sizeof(ok);
        FUZZ_CHECK(!memcmp(reply.body, head, sizeof(head) - 1));
        FUZZ_CHECK(!memcmp(reply.body + sizeof(head) - 1, rec + sizeof(ok) - 1, vlen));
        FUZZ_CHECK(reply.body[sizeof(head) - 1 + vlen] == ',');
        tail = reply.body + sizeof(head) - 1 + vlen; /* ",..." the service's own fields */
    }
    /* The service's own fields: parsed as {"x":0 + rest when spliced. */
    char *own = NULL;
    FUZZ_CHECK(asprintf(&own, "%s%s", ok_record ? "{\"x\":0" : "", tail) > 0);
    json_error_t jerr;
    json_t *body = json_loads(own, JSON_ALLOW_NUL, &jerr);
    if (!body)
        fprintf(stderr, "jansson cannot read it (%s): %.300s\n", jerr.text, own);
    free(own);
    FUZZ_CHECK(json_is_object(body));
    if (!ok_record) {
        FUZZ_CHECK(json_is_string(json_object_get(body, "error")));
        FUZZ_CHECK(!strcmp(json_string_value(json_object_get(body, "type")), reply.type));
    }
    FUZZ_CHECK(json_is_object(json_object_get(body, "stats")));
    check_capture(json_object_get(body, "stdout"), &run.out);
    check_capture(json_object_get(body, "stderr"), &run.err);
    FUZZ_CHECK(!json_object_get(body, "truncated") == !(run.out.truncated || run.err.truncated));
    json_decref(body);
    free(reply.body);

    check_sanitize((const char *)data + sizeof(h), size - sizeof(h));
    return 0;
}
