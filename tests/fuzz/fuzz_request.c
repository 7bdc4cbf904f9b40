/* Fuzz target: request_parse (server/request.c), the validation of a POST
 * /execute body. Any bytes in → either an accepted request whose fields keep
 * the API's promises, or a refusal whose answer is a well-formed JSON error. */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "common/config.h"
#include "common/ipc.h"
#include "server/errors.h"
#include "server/request.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small caps, so the over-the-cap paths are reachable with small inputs. */
static const struct config *fuzz_config(void)
{
    static struct config cfg;
    static int loaded;
    if (!loaded) {
        char *argv[] = {"fuzz",
                        "--script-kb=1",
                        "--timeout-ms=5000",
                        "--memory-mb=300",
                        "--input-files=4",
                        "--input-files-kb=1",
                        "--tmp-kb=2",
                        NULL};
        FUZZ_CHECK(config_load(&cfg, 7, argv, stdout, stderr) == 0);
        loaded = 1;
    }
    return &cfg;
}

/* An accepted path keeps the API's rules: relative, no empty, "." or ".."
 * component, at most 8 levels of at most 255 bytes, not under out/. */
static void check_path(const char *path, size_t len)
{
    FUZZ_CHECK(len > 0 && !memchr(path, '\0', len) && path[0] != '/');
    FUZZ_CHECK(fuzz_utf8_valid(path, len));
    size_t start = 0;
    int depth = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        size_t n = i - start;
        const char *c = path + start;
        FUZZ_CHECK(n > 0 && n <= 255);
        FUZZ_CHECK(!(n == 1 && c[0] == '.') && !(n == 2 && c[0] == '.' && c[1] == '.'));
        FUZZ_CHECK(depth > 0 || !(n == 3 && !memcmp(c, "out", 3)));
        depth++;
        start = i + 1;
    }
    FUZZ_CHECK(depth <= 8);
}

/* The records carry exactly files_count files of files_bytes in all, within
 * the caps, with no path both a file and another's directory. */
static void check_files(const struct exec_request *req, const struct config *cfg)
{
    if (!req->files) {
        FUZZ_CHECK(req->files_len == 0 && req->files_count == 0 && req->files_bytes == 0);
        return;
    }
    const char *paths[8];
    size_t lens[8];
    size_t pos = 0, n = 0, bytes = 0, path_len, data_len;
    const char *path, *data;
    int r;
    while ((r = ipc_file_next(req->files, req->files_len, &pos, &path, &path_len, &data,
                              &data_len)) == 1) {
        check_path(path, path_len);
        FUZZ_CHECK(n < 8);
        for (size_t i = 0; i < n; i++) {
            size_t a = lens[i] < path_len ? lens[i] : path_len;
            bool prefix = !memcmp(paths[i], path, a);
            FUZZ_CHECK(!(prefix && lens[i] == path_len)); /* no duplicate */
            FUZZ_CHECK(!(prefix && lens[i] < path_len && path[a] == '/'));
            FUZZ_CHECK(!(prefix && path_len < lens[i] && paths[i][a] == '/'));
        }
        paths[n] = path;
        lens[n++] = path_len;
        bytes += data_len;
    }
    FUZZ_CHECK(r == 0 && pos == req->files_len);
    FUZZ_CHECK(n == req->files_count && n <= (size_t)cfg->input_files);
    FUZZ_CHECK(bytes == req->files_bytes && bytes <= (size_t)cfg->input_files_kb << 10);
}

static void check_accepted(const struct exec_request *req, const struct config *cfg)
{
    FUZZ_CHECK(req->script && req->script_len >= 1);
    FUZZ_CHECK(req->script_len <= (size_t)cfg->script_kb * 1024);
    FUZZ_CHECK(strlen(req->script) == req->script_len); /* no NUL inside */
    FUZZ_CHECK(fuzz_utf8_valid(req->script, req->script_len));
    FUZZ_CHECK(req->timeout_ms >= 1 && req->timeout_ms <= cfg->timeout_ms);
    FUZZ_CHECK(req->memory_mb >= 1 && req->memory_mb <= cfg->memory_mb);
    if (req->input_json) {
        /* What the child will json.loads: one strict JSON value, no NUL. */
        FUZZ_CHECK(req->input_len > 0 && strlen(req->input_json) == req->input_len);
        json_t *v = json_loadb(req->input_json, req->input_len, JSON_DECODE_ANY, NULL);
        FUZZ_CHECK(v != NULL);
        json_decref(v);
    } else {
        FUZZ_CHECK(req->input_len == 0);
    }
    if (req->stdin_data) {
        FUZZ_CHECK(req->stdin_len <= (size_t)cfg->tmp_kb << 10);
        FUZZ_CHECK(fuzz_utf8_valid(req->stdin_data, req->stdin_len));
    } else {
        FUZZ_CHECK(req->stdin_len == 0);
    }
    check_files(req, cfg);
}

static void check_refused(const struct exec_request *req, const struct request_error *err)
{
    FUZZ_CHECK(req->script == NULL && req->input_json == NULL);
    FUZZ_CHECK(req->stdin_data == NULL && req->files == NULL);
    FUZZ_CHECK(err->type != NULL);
    FUZZ_CHECK((err->status == 400 && !strcmp(err->type, "invalid_request")) ||
               (err->status == 413 && !strcmp(err->type, "payload_too_large")) ||
               (err->status == 500 && !strcmp(err->type, "internal")));
    FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)) && err->message[0]);
    /* The answer main.c sends: strict JSON naming the same type. */
    size_t len = 0;
    char *body = error_body(err->type, err->message, &len);
    FUZZ_CHECK(body && strlen(body) == len);
    json_t *obj = json_loadb(body, len, 0, NULL);
    FUZZ_CHECK(json_is_object(obj));
    FUZZ_CHECK(json_is_string(json_object_get(obj, "error")));
    FUZZ_CHECK(!strcmp(json_string_value(json_object_get(obj, "type")), err->type));
    json_decref(obj);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct config *cfg = fuzz_config();
    struct exec_request req;
    struct request_error err;
    memset(&err, 0, sizeof(err));
    if (request_parse((const char *)data, size, cfg, &req, &err) == 0) {
        check_accepted(&req, cfg);
        request_free(&req);
    } else {
        check_refused(&req, &err);
    }

    /* The same bytes as a Content-Type header value (http.c hands it over
     * NUL-terminated): must not crash, and the plain type is always fine. */
    char *ct = strndup((const char *)data, size);
    FUZZ_CHECK(ct);
    (void)request_content_type_ok(ct);
    free(ct);
    FUZZ_CHECK(request_content_type_ok("application/json") == 1);
    return 0;
}
