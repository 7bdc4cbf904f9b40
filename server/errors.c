/* The JSON error body of every non-2xx answer. */
#include "server/errors.h"

#include "common/jsontext.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A copy of s in which every byte that is not part of valid UTF-8 became
 * U+FFFD, so jansson (which refuses invalid UTF-8) always accepts it. */
static char *utf8_repaired(const char *s)
{
    size_t n;
    return utf8_sanitize(s, strlen(s), &n);
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
