/* Turns what supervise_run collected into the HTTP answer: status, error
 * type and the strict-JSON body the API describes (README). Called by
 * worker.c's serve(), which sends it as the IPC_REPLY; runs in the worker. */
#ifndef PYEXEC_REPLY_H
#define PYEXEC_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "worker/supervise.h"

/* The most an error record may take (the harness writes far less: an error
 * of 2000 and a traceback of 64 Ki characters); the result channel's cap is
 * the result cap plus this. */
#define REPLY_ERROR_MAX (1u << 20)

struct reply_limits {
    uint32_t timeout_ms; /* this request's wall-clock limit */
    uint64_t cpu_ms;     /* its CPU limit */
    size_t result_cap;   /* bytes */
    uint64_t disk_kb;    /* the temp dir's cap */
};

struct reply {
    int status;
    char type[32]; /* "ok" for 200 */
    char *body;    /* malloc'd JSON */
    size_t len;
    size_t files_bytes; /* out/ files in the body, before base64 */
};

/* Returns 0 or -ENOMEM. */
int reply_build(const struct run *run, const struct reply_limits *lim, struct reply *out);

#endif
