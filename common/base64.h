/* Standard base64 (RFC 4648, "+/" alphabet): the acceptor decodes input files
 * ({"base64": ...}), the worker encodes the files a script left in out/. Pure
 * functions; no allocation. */
#ifndef PYEXEC_BASE64_H
#define PYEXEC_BASE64_H

#include <stddef.h>

/* Characters base64_encode writes for n bytes (padded), not counting the NUL. */
size_t base64_encoded_len(size_t n);

/* Encode n bytes into out (base64_encoded_len(n) + 1 bytes, NUL-terminated). */
void base64_encode(const unsigned char *in, size_t n, char *out);

/* Bytes base64_decode may write for n characters of text (an upper bound). */
size_t base64_decoded_max(size_t n);

/* Decode text of n characters into out. ASCII whitespace is skipped (encoders
 * that wrap lines are common); "=" padding is optional but only at the end.
 * Returns the byte count, or -1 for anything else: a character outside the
 * alphabet, padding in the middle, a dangling single character. */
long base64_decode(const char *text, size_t n, unsigned char *out);

#endif
