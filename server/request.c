/* Validation of a POST /execute body. Every refusal carries a sentence that
 * tells the user what to change. */
#include "server/request.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/ipc.h"

/* The shape of an input file's path (README, API): relative, '/'-separated. */
#define PATH_MAX_DEPTH     8
#define PATH_MAX_COMPONENT 255
/* out/ holds what the script returns; it starts empty. */
#define OUT_DIR "out"

/* The request's fields: the one list, also named in the refusal of others. */
static const char *const fields[] = {"script", "input",      "stdin",
                                     "files",  "timeout_ms", "memory_mb"};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

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
    case json_error_null_byte_in_key:
        return refuse(err, 400, "invalid_request",
                      "An object key contains a NUL character (\\u0000) (line %d, column %d); "
                      "field names and file paths cannot hold one.",
                      jerr->line, jerr->column);
    case json_error_null_character:
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

/* A path for a message: at most 80 bytes of it, cut before a UTF-8
 * continuation byte, "..." when cut (error_body repairs anything else). */
static const char *path_for_message(const char *path, char buf[96])
{
    size_t n = strlen(path);
    if (n <= 80)
        return path;
    n = 80;
    while (n > 0 && ((unsigned char)path[n] & 0xC0) == 0x80)
        n--;
    snprintf(buf, 96, "%.*s...", (int)n, path);
    return buf;
}

/* The API's path rules; NULL when path is fine, else what is wrong with it. */
static const char *path_problem(const char *path)
{
    if (!*path)
        return "is empty";
    if (*path == '/')
        return "is absolute; send a path relative to the working directory";
    int depth = 0;
    for (const char *c = path;; depth++) {
        size_t len = strcspn(c, "/");
        if (len == 0)
            return "has an empty component (\"//\" or a trailing \"/\")";
        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return "has a \".\" or \"..\" component";
        if (len > PATH_MAX_COMPONENT)
            return "has a component longer than 255 bytes";
        if (depth == 0 && len == strlen(OUT_DIR) && !memcmp(c, OUT_DIR, len))
            return "is under out/, which starts empty and holds the files the script returns";
        if (depth + 1 > PATH_MAX_DEPTH)
            return "is nested deeper than 8 levels";
        if (!c[len])
            return NULL;
        c += len + 1;
    }
}

/* Is a a directory of b ("a" of "a/b")? */
static bool is_dir_of(const char *a, const char *b)
{
    size_t n = strlen(a);
    return !strncmp(a, b, n) && b[n] == '/';
}

/* The content of one input file: a string (UTF-8) or {"base64": "..."}.
 * Appends its record to the buffer at *buf. */
static int append_file(const char *path, const json_t *value, char **buf, size_t *len,
                       size_t *alloc, size_t *content, struct request_error *err)
{
    char shown[96];
    const char *text;
    size_t text_len;
    bool is_base64 = false;
    if (json_is_string(value)) {
        text = json_string_value(value);
        text_len = json_string_length(value);
    } else if (json_is_object(value) && json_object_size(value) == 1 &&
               json_is_string(json_object_get(value, "base64"))) {
        const json_t *b = json_object_get(value, "base64");
        text = json_string_value(b);
        text_len = json_string_length(b);
        is_base64 = true;
    } else {
        return refuse(err, 400, "invalid_request",
                      "File \"%s\" must be a string (UTF-8 text) or {\"base64\": \"...\"} "
                      "(bytes), not %s.",
                      path_for_message(path, shown),
                      json_is_object(value) ? "an object with other keys" : json_kind(value));
    }

    size_t path_len = strlen(path);
    size_t most = is_base64 ? base64_decoded_max(text_len) : text_len;
    size_t need = *len + sizeof(struct ipc_file) + path_len + most;
    if (need > *alloc) {
        size_t grow = *alloc ? *alloc * 2 : 65536;
        while (grow < need)
            grow *= 2;
        char *bigger = realloc(*buf, grow);
        if (!bigger)
            return refuse(err, 500, "internal",
                          "The server ran out of memory reading the request; retry.");
        *buf = bigger;
        *alloc = grow;
    }
    char *rec = *buf + *len;
    char *data = rec + sizeof(struct ipc_file) + path_len;
    size_t data_len = text_len;
    if (is_base64) {
        long n = base64_decode(text, text_len, (unsigned char *)data);
        if (n < 0)
            return refuse(err, 400, "invalid_request",
                          "File \"%s\" is not valid base64: use the standard alphabet "
                          "(A-Z a-z 0-9 + /) with \"=\" padding only at the end.",
                          path_for_message(path, shown));
        data_len = (size_t)n;
    } else {
        memcpy(data, text, text_len);
    }
    struct ipc_file f = {.path_len = (uint32_t)path_len, .data_len = (uint32_t)data_len};
    memcpy(rec, &f, sizeof(f));
    memcpy(rec + sizeof(f), path, path_len);
    *len += sizeof(f) + path_len + data_len;
    *content += data_len;
    return 0;
}

/* "files": every path checked against the API's rules and the caps, the
 * contents decoded into ipc_file records. */
static int parse_files(const json_t *files, const struct config *cfg, struct exec_request *req,
                       struct request_error *err)
{
    char shown[96];
    if (!json_is_object(files))
        return refuse(err, 400, "invalid_request",
                      "Field \"files\" must be an object mapping relative paths to contents, "
                      "not %s.",
                      json_kind(files));
    size_t count = json_object_size(files);
    if (count > (size_t)cfg->input_files)
        return refuse(err, 413, "payload_too_large",
                      "Field \"files\" has %zu files; the limit is %ld.", count, cfg->input_files);
    const char **paths = calloc(count ? count : 1, sizeof(*paths));
    if (!paths)
        return refuse(err, 500, "internal",
                      "The server ran out of memory reading the request; retry.");
    size_t n = 0, len = 0, alloc = 0, content = 0;
    size_t cap = (size_t)cfg->input_files_kb << 10;
    size_t tmp_cap = (size_t)cfg->tmp_kb << 10;
    char *buf = NULL;
    const char *path;
    const json_t *value;
    int r = 0;
    json_object_foreach((json_t *)files, path, value)
    {
        const char *problem = path_problem(path);
        if (problem) {
            r = refuse(err, 400, "invalid_request",
                       "File path \"%s\" %s. Paths are relative, '/'-separated, at most 8 "
                       "levels, with no empty, \".\" or \"..\" component.",
                       path_for_message(path, shown), problem);
            break;
        }
        for (size_t i = 0; i < n && !r; i++)
            if (is_dir_of(paths[i], path) || is_dir_of(path, paths[i]))
                r = refuse(err, 400, "invalid_request",
                           "File path \"%s\" needs \"%s\" to be both a file and a directory.",
                           path_for_message(path, shown),
                           is_dir_of(paths[i], path) ? paths[i] : path);
        if (r || (r = append_file(path, value, &buf, &len, &alloc, &content, err)))
            break;
        paths[n++] = path;
        if (content > cap || content > tmp_cap) {
            r = refuse(err, 413, "payload_too_large",
                       "The input files passed %zu bytes at \"%s\"; the limit is %ld KiB in "
                       "total%s.",
                       content, path_for_message(path, shown),
                       cap <= tmp_cap ? cfg->input_files_kb : cfg->tmp_kb,
                       cap <= tmp_cap ? "" : " (the temp dir's size)");
            break;
        }
    }
    free(paths);
    if (r) {
        free(buf);
        return r;
    }
    req->files = buf ? buf : strdup("");
    req->files_len = len;
    req->files_count = n;
    req->files_bytes = content;
    if (!req->files)
        return refuse(err, 500, "internal",
                      "The server ran out of memory reading the request; retry.");
    return 0;
}

static int parse_stdin(const json_t *v, const struct config *cfg, struct exec_request *req,
                       struct request_error *err)
{
    if (!json_is_string(v))
        return refuse(err, 400, "invalid_request",
                      "Field \"stdin\" must be a string (the script's standard input), not %s.",
                      json_kind(v));
    size_t len = json_string_length(v);
    /* The child's fd 0 is a file it fills itself, under its file-size limit. */
    if (len > (size_t)cfg->tmp_kb << 10)
        return refuse(err, 413, "payload_too_large",
                      "Field \"stdin\" is %zu bytes; the limit is %ld KiB.", len, cfg->tmp_kb);
    req->stdin_data = malloc(len + 1);
    if (!req->stdin_data)
        return refuse(err, 500, "internal",
                      "The server ran out of memory reading the request; retry.");
    memcpy(req->stdin_data, json_string_value(v), len + 1);
    req->stdin_len = len;
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
        bool known = false;
        for (size_t i = 0; i < N_FIELDS; i++)
            known = known || !strcmp(key, fields[i]);
        if (!known) {
            char allowed[128] = "";
            for (size_t i = 0, used = 0; i < N_FIELDS && used < sizeof(allowed); i++)
                used += snprintf(allowed + used, sizeof(allowed) - used, "%s%s", i ? ", " : "",
                                 fields[i]);
            refuse(err, 400, "invalid_request", "Unknown field \"%.64s\"; allowed: %s.", key,
                   allowed);
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
    const json_t *stdin_v = json_object_get(root, "stdin");
    if (stdin_v && parse_stdin(stdin_v, cfg, req, err))
        goto fail;
    const json_t *files = json_object_get(root, "files");
    if (files && parse_files(files, cfg, req, err))
        goto fail;
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
    free(req->stdin_data);
    free(req->files);
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
