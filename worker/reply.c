/* Building the answer. The child is untrusted: its result record is parsed
 * and checked here (jansson), never passed through as raw bytes, and only the
 * script-outcome types the API lists are accepted from it. */
#include "worker/reply.h"

#include "common/jsontext.h"
#include "worker/files.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

/* The error types a child may report; anything else is forged. */
static const char *const script_types[] = {
    "syntax_error", "missing_main", "exception", "result_not_serializable",
    "memory_limit", "output_limit", "exited",
};

static json_t *capture_string(const struct capture *c)
{
    size_t n;
    char *clean = utf8_sanitize(c->data ? c->data : "", c->len, &n);
    if (!clean)
        return NULL;
    json_t *j = json_stringn(clean, n);
    wipe_free(clean);
    return j;
}

static void set_error(struct reply *out, int status, const char *type)
{
    out->status = status;
    snprintf(out->type, sizeof(out->type), "%s", type);
}

/* Decide status/type/message when no valid result record arrived. */
static void classify_death(const struct run *run, const struct reply_limits *lim, struct reply *out,
                           char *msg, size_t msglen, json_t *body)
{
    switch (run->end) {
    case RUN_TIMEOUT:
        set_error(out, 400, "timeout");
        snprintf(msg, msglen, "The script ran past its wall-clock limit of %u ms and was stopped.",
                 lim->timeout_ms);
        return;
    case RUN_OVERSIZE:
        set_error(out, 400, "output_limit");
        snprintf(msg, msglen, "The result is over the cap of %zu bytes.", lim->result_cap);
        return;
    case RUN_DISK_FULL:
        set_error(out, 400, "killed");
        snprintf(msg, msglen,
                 "The script wrote more than its temp dir may hold (%llu KiB) and was stopped.",
                 (unsigned long long)lim->disk_kb);
        json_object_set_new(body, "signal", json_string("SIGKILL"));
        return;
    case RUN_CANCELLED:
        set_error(out, 400, "cancelled");
        snprintf(msg, msglen, "The client went away; the script was stopped.");
        return;
    case RUN_SETUP_FAILED:
        set_error(out, 500, "internal");
        snprintf(msg, msglen, "The service could not prepare a sandbox (%s).", run->setup_error);
        return;
    default:
        break;
    }
    int st = run->wait_status;
    if (WIFEXITED(st)) {
        set_error(out, 400, "exited");
        snprintf(msg, msglen, "The script exited with status %d before main() returned.",
                 WEXITSTATUS(st));
        return;
    }
    int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    if (sig == SIGXCPU || (sig == SIGKILL && run->cpu_us >= lim->cpu_ms * 1000)) {
        set_error(out, 400, "timeout");
        snprintf(msg, msglen, "The script used its CPU-time limit of %llu ms and was stopped.",
                 (unsigned long long)lim->cpu_ms);
        return;
    }
    if (run->oom_killed) {
        set_error(out, 400, "memory_limit");
        snprintf(msg, msglen,
                 "The machine ran out of memory and the kernel stopped this script (scripts "
                 "are stopped before the service); retry, or use less memory.");
        return;
    }
    char name[32];
    snprintf(name, sizeof(name), "SIG%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "UNKNOWN");
    set_error(out, 400, "killed");
    snprintf(msg, msglen, "The script was killed by signal %s.", name);
    json_object_set_new(body, "signal", json_string(name));
}

/* The child's record for a success is exactly {"type":"ok","result":VALUE}:
 * VALUE is checked to be one strict JSON value (json_check: jansson would
 * refuse integers past 1e308) and then spliced into the body as is, so big
 * results are not re-encoded and big integers keep every digit. */
static const char ok_prefix[] = "{\"type\":\"ok\",\"result\":";

static int use_ok_record(const char *rec, size_t len, size_t cap, struct reply *out,
                         const char **raw, size_t *raw_len)
{
    size_t plen = sizeof(ok_prefix) - 1;
    if (len < plen + 2 || memcmp(rec, ok_prefix, plen) || rec[len - 1] != '}')
        return -1;
    if (len - plen - 1 > cap) /* the child checks too; the worker's check is the one that counts */
        return 1;
    if (!json_check(rec + plen, len - plen - 1))
        return -1;
    set_error(out, 200, "ok");
    *raw = rec + plen;
    *raw_len = len - plen - 1;
    return 0;
}

static int use_error_record(const char *rec, size_t len, struct reply *out, json_t *body)
{
    if (len > REPLY_ERROR_MAX)
        return -1;
    json_t *obj = json_loadb(
        rec, len, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(obj, "type"));
    json_t *error = json_object_get(obj, "error");
    json_t *tb = json_object_get(obj, "traceback");
    int r = -1;
    for (size_t i = 0;
         type && json_is_string(error) && i < sizeof(script_types) / sizeof(*script_types); i++) {
        if (strcmp(type, script_types[i]))
            continue;
        set_error(out, 400, type);
        json_object_set(body, "error", error);
        json_object_set_new(body, "type", json_string(type));
        if (json_is_string(tb))
            json_object_set(body, "traceback", tb);
        r = 0;
        break;
    }
    json_decref(obj);
    return r;
}

/* Use the child's record if it is well-formed: 0 if it was, 1 if it was a
 * value over the cap, -1 if it was neither (tampering). */
static int use_record(const struct run *run, const struct reply_limits *lim, struct reply *out,
                      json_t *body, const char **raw, size_t *raw_len)
{
    if (!run->result)
        return -1;
    int r = use_ok_record(run->result, run->result_len, lim->result_cap, out, raw, raw_len);
    if (r < 0)
        r = use_error_record(run->result, run->result_len, out, body);
    return r;
}

/* {"result":RAW, ...rest of the dumped object} */
static char *splice_result(const char *raw, size_t raw_len, const char *dumped, size_t *len)
{
    static const char head[] = "{\"result\":";
    size_t dlen = strlen(dumped);
    *len = sizeof(head) - 1 + raw_len + 1 + (dlen - 1);
    char *b = malloc(*len + 1);
    if (!b)
        return NULL;
    char *p = mempcpy(b, head, sizeof(head) - 1);
    p = mempcpy(p, raw, raw_len);
    *p++ = ',';
    memcpy(p, dumped + 1, dlen); /* skips '{', copies the NUL */
    return b;
}

int reply_build(const struct run *run, const struct reply_limits *lim, struct reply *out)
{
    json_t *body = json_object();
    json_t *stats = json_object();
    memset(out, 0, sizeof(*out));

    const char *raw = NULL;
    size_t raw_len = 0;
    /* Every stat is the worker's own measurement (supervise.c). */
    json_object_set_new(stats, "wall_ms", json_real((long)(run->wall_ms * 1000) / 1000.0));
    json_object_set_new(stats, "cpu_ms", json_real(run->cpu_us / 1000.0));
    json_object_set_new(stats, "max_rss_kb", json_integer(run->max_rss_kb));
    int rec = run->end == RUN_RESULT ? use_record(run, lim, out, body, &raw, &raw_len) : -1;
    if (rec) {
        char msg[256];
        if (rec > 0) {
            set_error(out, 400, "output_limit");
            snprintf(msg, sizeof(msg), "The result is over the cap of %zu bytes.", lim->result_cap);
        } else if (run->end == RUN_RESULT) {
            set_error(out, 400, "exception");
            snprintf(msg, sizeof(msg),
                     "The script wrote to the service's result channel; "
                     "its result cannot be trusted.");
        } else {
            classify_death(run, lim, out, msg, sizeof(msg), body);
        }
        json_object_set_new(body, "error", json_string(msg));
        json_object_set_new(body, "type", json_string(out->type));
    }

    json_object_set_new(body, "stdout", capture_string(&run->out));
    json_object_set_new(body, "stderr", capture_string(&run->err));
    json_object_set_new(body, "stats", stats);
    const struct files_out *files = run->files;
    if (files && files->json) {
        json_object_set(body, "files", files->json);
        out->files_bytes = files->bytes;
    }
    bool files_cut = files && files->truncated;
    if (run->out.truncated || run->err.truncated || files_cut) {
        json_t *t = json_array();
        if (run->out.truncated)
            json_array_append_new(t, json_string("stdout"));
        if (run->err.truncated)
            json_array_append_new(t, json_string("stderr"));
        if (files_cut)
            json_array_append_new(t, json_string("files"));
        json_object_set_new(body, "truncated", t);
    }

    char *dumped = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(body);
    if (!dumped)
        return -ENOMEM;
    if (raw) {
        out->body = splice_result(raw, raw_len, dumped, &out->len);
        wipe_free(dumped);
    } else {
        out->body = dumped;
        out->len = strlen(dumped);
    }
    return out->body ? 0 : -ENOMEM;
}
