/* Text checks for what crosses from untrusted children into answers: UTF-8
 * repair, and a strict JSON syntax check with no limit on number size (which
 * jansson has). Pure functions; used by the worker (reply.c, files.c), the
 * child (child.c) and the acceptor (server/errors.c, server/log.c). */
#ifndef PYEXEC_JSONTEXT_H
#define PYEXEC_JSONTEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Copy of s with every byte that is not part of well-formed UTF-8 (RFC 3629:
 * no overlongs, no surrogates, nothing past U+10FFFF) replaced by U+FFFD;
 * NUL-terminated, length in *out_len. NULL on ENOMEM. */
char *utf8_sanitize(const char *s, size_t len, size_t *out_len);

/* Is text exactly one RFC 8259 JSON value (whitespace around allowed), in
 * UTF-8, with no unpaired surrogate escape, nested at most 2048 deep? Numbers
 * may have any number of digits: JSON sets no limit, and results keep them. */
bool json_check(const char *text, size_t len);

#endif
