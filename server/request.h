/* Validation of a POST /execute body against the API's rules (README, API):
 * JSON text in, either an accepted request or the exact 4xx to answer. Pure;
 * runs in the acceptor. */
#ifndef PYEXEC_REQUEST_H
#define PYEXEC_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

struct exec_request {
    char *script; /* NUL-terminated UTF-8, no NUL inside */
    size_t script_len;
    char *input_json; /* compact JSON text of "input", NULL when absent */
    size_t input_len;
    char *stdin_data; /* "stdin" as UTF-8, NULL when absent */
    size_t stdin_len;
    char *files; /* "files" as ipc_file records (common/ipc.h), decoded; NULL when absent */
    size_t files_len;
    size_t files_count, files_bytes; /* how many files, and their content bytes */
    uint32_t timeout_ms;             /* the request's value, else the server's */
    uint32_t memory_mb;
};

struct request_error {
    int status;       /* 400 or 413 (500 "internal" only when out of memory) */
    const char *type; /* "invalid_request" or "payload_too_large" */
    char message[256];
};

/* Returns 0 and fills req (free with request_free), or -1 and fills err. */
int request_parse(const char *body, size_t len, const struct config *cfg, struct exec_request *req,
                  struct request_error *err);
void request_free(struct exec_request *req);

/* 1 when a POST /execute may carry this Content-Type: absent (NULL), or
 * application/json with no charset or a UTF-8 one; 0 means answer 415. */
int request_content_type_ok(const char *content_type);

#endif
