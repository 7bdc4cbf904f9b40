/* base64 both ways, one table each. */
#include "common/base64.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void base64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
    *out = '\0';
}

size_t base64_decoded_max(size_t n)
{
    return n / 4 * 3 + 3;
}

/* 0..63 for an alphabet character, 64 for whitespace, 65 for "=", 66 else. */
static int value_of(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
        return 64;
    return c == '=' ? 65 : 66;
}

long base64_decode(const char *text, size_t n, unsigned char *out)
{
    uint32_t acc = 0;
    int have = 0; /* characters in acc, 0..3 */
    size_t len = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value_of((unsigned char)text[i]);
        if (v == 64)
            continue;
        if (v == 66 || (v < 64 && pad)) /* nothing but "=" and whitespace after "=" */
            return -1;
        if (v == 65) {
            if (++pad > 2)
                return -1;
            continue;
        }
        acc = acc << 6 | (uint32_t)v;
        if (++have == 4) {
            out[len++] = (unsigned char)(acc >> 16);
            out[len++] = (unsigned char)(acc >> 8);
            out[len++] = (unsigned char)acc;
            acc = 0;
            have = 0;
        }
    }
    /* Padding, when present, must complete the last group exactly. */
    if (have == 1 || (pad && have + pad != 4))
        return -1;
    if (have == 2) {
        out[len++] = (unsigned char)(acc >> 4);
    } else if (have == 3) {
        out[len++] = (unsigned char)(acc >> 10);
        out[len++] = (unsigned char)(acc >> 2);
    }
    return (long)len;
}
