/* The JSON error body of every non-2xx answer. */
#include "server/errors.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one. */
static size_t utf8_sequence_len(const unsigned char *s, size_t avail)
{
    if (s[0] < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* A copy of s in which every byte that is not part of valid UTF-8 became
 * U+FFFD, so jansson (which refuses invalid UTF-8) always accepts it. */
static char *utf8_repaired(const char *s)
{
    static const char replacement[] = "\xef\xbf\xbd";
    size_t len = strlen(s);
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence_len((const unsigned char *)s + i, len - i);
        if (n == 0) {
            memcpy(out + o, replacement, 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    return out;
}

char *error_body(const char *type, const char *message, size_t *len)
{
    char *text = NULL;
    char *safe_message = utf8_repaired(message ? message : "");
    char *safe_type = utf8_repaired(type ? type : "internal");
    json_t *obj = json_object();
    if (!safe_message || !safe_type || !obj)
        goto out;
    if (json_object_set_new(obj, "error", json_string(safe_message)) != 0 ||
        json_object_set_new(obj, "type", json_string(safe_type)) != 0)
        goto out;
    text = json_dumps(obj, JSON_COMPACT);
    if (text && len)
        *len = strlen(text);
out:
    json_decref(obj);
    free(safe_message);
    free(safe_type);
    return text;
}
