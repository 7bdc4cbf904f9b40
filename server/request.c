/* Validation of a POST /execute body. Every refusal carries a sentence that
 * tells the user what to change. */
#include "server/request.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char allowed_fields[] = "script, input, timeout_ms, memory_mb";

static int refuse(struct request_error *err, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(struct request_error *err, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    err->type = type;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* "a string", "a number", ... for messages about wrong types. */
static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

static int refuse_load_error(const json_error_t *jerr, size_t len, struct request_error *err)
{
    if (len == 0)
        return refuse(err, 400, "invalid_request",
                      "The request body is empty; send a JSON object such as "
                      "{\"script\": \"def main(): return 1\"}.");
    switch (json_error_code(jerr)) {
    case json_error_invalid_utf8:
        return refuse(err, 400, "invalid_request",
                      "The request body is not valid UTF-8 (near byte %d); encode the JSON "
                      "as UTF-8.",
                      jerr->position);
    case json_error_duplicate_key: {
        /* jansson's text names the key: "duplicate object key near '\"x\"'". */
        const char *near = strstr(jerr->text, "near '");
        if (near) {
            near += strlen("near '");
            int name_len = (int)strcspn(near, "'");
            return refuse(err, 400, "invalid_request",
                          "Field %.*s appears more than once; send each field once.", name_len,
                          near);
        }
        return refuse(err, 400, "invalid_request",
                      "The request body repeats a field (%s); send each field once.", jerr->text);
    }
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return refuse(err, 400, "invalid_request",
                      "The request body contains a NUL character (\\u0000) in a string; "
                      "remove it (line %d, column %d).",
                      jerr->line, jerr->column);
    case json_error_out_of_memory:
    case json_error_stack_overflow:
        return refuse(err, 400, "invalid_request",
                      "The request body is nested too deeply or too large to parse; "
                      "simplify the input.");
    default:
        return refuse(err, 400, "invalid_request",
                      "The request body is not valid JSON: %s at line %d, column %d.", jerr->text,
                      jerr->line, jerr->column);
    }
}

/* An optional per-request limit: an integer from 1 to cap, else the server's cap. */
static int parse_limit(const json_t *root, const char *field, const char *unit, long cap,
                       uint32_t *out, struct request_error *err)
{
    const json_t *v = json_object_get(root, field);
    if (!v) {
        *out = (uint32_t)cap;
        return 0;
    }
    if (!json_is_integer(v))
        return refuse(err, 400, "invalid_request",
                      "Field \"%s\" must be a whole number of %s, not %s.", field, unit,
                      json_kind(v));
    json_int_t n = json_integer_value(v);
    if (n < 1)
        return refuse(err, 400, "invalid_request",
                      "Field \"%s\" must be at least 1 (%s), got %lld.", field, unit, (long long)n);
    if (n > cap)
        return refuse(err, 400, "invalid_request",
                      "Field \"%s\" is %lld but this server allows at most %ld %s; send a "
                      "smaller value or leave it out to get %ld.",
                      field, (long long)n, cap, unit, cap);
    *out = (uint32_t)n;
    return 0;
}

int request_parse(const char *body, size_t len, const struct config *cfg, struct exec_request *req,
                  struct request_error *err)
{
    json_error_t jerr;
    memset(req, 0, sizeof(*req));
    json_t *root = json_loadb(body ? body : "", body ? len : 0,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return refuse_load_error(&jerr, body ? len : 0, err);

    if (!json_is_object(root)) {
        refuse(err, 400, "invalid_request",
               "The request body must be a JSON object such as {\"script\": \"...\"}, not %s.",
               json_kind(root));
        goto fail;
    }

    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        if (strcmp(key, "script") && strcmp(key, "input") && strcmp(key, "timeout_ms") &&
            strcmp(key, "memory_mb")) {
            refuse(err, 400, "invalid_request", "Unknown field \"%.64s\"; allowed: %s.", key,
                   allowed_fields);
            goto fail;
        }
    }

    const json_t *script = json_object_get(root, "script");
    if (!script) {
        refuse(err, 400, "invalid_request",
               "Field \"script\" is required: Python source that defines def main().");
        goto fail;
    }
    if (!json_is_string(script)) {
        refuse(err, 400, "invalid_request",
               "Field \"script\" must be a string of Python source, not %s.", json_kind(script));
        goto fail;
    }
    size_t script_len = json_string_length(script);
    if (script_len == 0) {
        refuse(err, 400, "invalid_request",
               "Field \"script\" is empty; send Python source that defines def main().");
        goto fail;
    }
    size_t script_cap = (size_t)cfg->script_kb * 1024;
    if (script_len > script_cap) {
        refuse(err, 413, "payload_too_large",
               "Field \"script\" is %zu bytes; the limit is %ld KiB (%zu bytes).", script_len,
               cfg->script_kb, script_cap);
        goto fail;
    }

    if (parse_limit(root, "timeout_ms", "milliseconds", cfg->timeout_ms, &req->timeout_ms, err) ||
        parse_limit(root, "memory_mb", "MiB", cfg->memory_mb, &req->memory_mb, err))
        goto fail;

    req->script = strndup(json_string_value(script), script_len);
    if (!req->script)
        goto nomem;
    req->script_len = script_len;

    const json_t *input = json_object_get(root, "input");
    if (input) {
        req->input_json = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!req->input_json)
            goto nomem;
        req->input_len = strlen(req->input_json);
    }
    json_decref(root);
    return 0;

nomem:
    refuse(err, 500, "internal", "The server ran out of memory reading the request; retry.");
fail:
    request_free(req);
    json_decref(root);
    return -1;
}

void request_free(struct exec_request *req)
{
    free(req->script);
    free(req->input_json);
    memset(req, 0, sizeof(*req));
}

/* application/json, optionally with a charset parameter that says UTF-8. */
int request_content_type_ok(const char *content_type)
{
    static const char json[] = "application/json";
    if (!content_type)
        return 1;
    const char *p = content_type;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, json, sizeof(json) - 1) != 0)
        return 0;
    p += sizeof(json) - 1;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        if (*p != ';')
            return 0;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t name_len = strcspn(p, "=;");
        if (p[name_len] != '=') {
            if (name_len == 0) /* "application/json;" */
                continue;
            return 0;
        }
        const char *value = p + name_len + 1;
        size_t value_len = strcspn(value, ";");
        while (value_len && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
            value_len--;
        if (name_len == 7 && strncasecmp(p, "charset", 7) == 0) {
            if (value_len >= 2 && value[0] == '"' && value[value_len - 1] == '"') {
                value++;
                value_len -= 2;
            }
            if (!((value_len == 5 && strncasecmp(value, "utf-8", 5) == 0) ||
                  (value_len == 4 && strncasecmp(value, "utf8", 4) == 0)))
                return 0;
        }
        p = value + strcspn(value, ";");
    }
    return 1;
}
