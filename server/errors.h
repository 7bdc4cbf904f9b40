/* The JSON error body every non-2xx answer carries: {"error": message,
 * "type": type}. Used by the acceptor (http.c, main.c). */
#ifndef PYEXEC_ERRORS_H
#define PYEXEC_ERRORS_H

#include <stddef.h>

/* malloc'd, NUL-terminated strict JSON; length in *len. NULL only on ENOMEM. */
char *error_body(const char *type, const char *message, size_t *len);

#endif
