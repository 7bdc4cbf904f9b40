/* UTF-8 repair and the strict JSON syntax check. */
#include "common/jsontext.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048

/* Length of the well-formed UTF-8 sequence at s (1-4), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (!n || n > len || s[0] > 0xF4)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

char *utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len * 3 + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq((const unsigned char *)s + i, len - i);
        if (n) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

struct cursor {
    const unsigned char *s;
    size_t len, i;
};

static bool at(const struct cursor *c, unsigned char ch)
{
    return c->i < c->len && c->s[c->i] == ch;
}

static void skip_ws(struct cursor *c)
{
    while (c->i < c->len && strchr(" \t\n\r", c->s[c->i]) && c->s[c->i])
        c->i++;
}

static bool literal(struct cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if (c->len - c->i < n || memcmp(c->s + c->i, lit, n))
        return false;
    c->i += n;
    return true;
}

static bool digits(struct cursor *c)
{
    size_t start = c->i;
    while (c->i < c->len && c->s[c->i] >= '0' && c->s[c->i] <= '9')
        c->i++;
    return c->i > start;
}

static bool number(struct cursor *c)
{
    if (at(c, '-'))
        c->i++;
    if (at(c, '0'))
        c->i++;
    else if (!(c->i < c->len && c->s[c->i] >= '1' && c->s[c->i] <= '9') || !digits(c))
        return false;
    if (at(c, '.') && (c->i++, !digits(c)))
        return false;
    if (at(c, 'e') || at(c, 'E')) {
        c->i++;
        if (at(c, '+') || at(c, '-'))
            c->i++;
        return digits(c);
    }
    return true;
}

/* Four hex digits after "\u", or -1. */
static long hex4(struct cursor *c)
{
    long v = 0;
    if (c->len - c->i < 4)
        return -1;
    for (int k = 0; k < 4; k++) {
        unsigned char ch = c->s[c->i++];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static bool string(struct cursor *c)
{
    if (!at(c, '"'))
        return false;
    c->i++;
    while (c->i < c->len && c->s[c->i] != '"') {
        unsigned char ch = c->s[c->i];
        if (ch < 0x20)
            return false;
        if (ch != '\\') {
            size_t n = utf8_seq(c->s + c->i, c->len - c->i);
            if (!n)
                return false;
            c->i += n;
            continue;
        }
        if (++c->i >= c->len)
            return false;
        ch = c->s[c->i++];
        if (ch == 'u') {
            long u = hex4(c);
            if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
                return false;
            if (u >= 0xD800 && u <= 0xDBFF) { /* a high half needs its low half */
                long lo = literal(c, "\\u") ? hex4(c) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return false;
            }
        } else if (!ch || !strchr("\"\\/bfnrt", ch)) {
            return false;
        }
    }
    if (!at(c, '"'))
        return false;
    c->i++;
    return true;
}

static bool value(struct cursor *c, int depth);

/* An object or array after its opening bracket. */
static bool container(struct cursor *c, unsigned char open, int depth)
{
    unsigned char close = open == '{' ? '}' : ']';
    if (depth >= MAX_DEPTH)
        return false;
    skip_ws(c);
    if (at(c, close)) {
        c->i++;
        return true;
    }
    for (;;) {
        if (open == '{') {
            skip_ws(c);
            if (!string(c))
                return false;
            skip_ws(c);
            if (!literal(c, ":"))
                return false;
        }
        if (!value(c, depth + 1))
            return false;
        skip_ws(c);
        if (at(c, ',')) {
            c->i++;
            continue;
        }
        if (!at(c, close))
            return false;
        c->i++;
        return true;
    }
}

static bool value(struct cursor *c, int depth)
{
    skip_ws(c);
    if (c->i >= c->len)
        return false;
    unsigned char ch = c->s[c->i];
    if (ch == '{' || ch == '[') {
        c->i++;
        return container(c, ch, depth);
    }
    if (ch == '"')
        return string(c);
    if (ch == '-' || (ch >= '0' && ch <= '9'))
        return number(c);
    return literal(c, "true") || literal(c, "false") || literal(c, "null");
}

bool json_check(const char *text, size_t len)
{
    struct cursor c = {(const unsigned char *)text, len, 0};
    if (!value(&c, 1))
        return false;
    skip_ws(&c);
    return c.i == len;
}
