#include "bench/request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int request_build(const struct options *opts, const char *method, const char *path,
                  const char *body, size_t body_len, const char *extra, char **out, size_t *out_len)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return -ENOMEM;
    fprintf(f, "%s %s HTTP/1.1\r\n", method, path);
    /* A -H of the same name replaces the tool's own header, as in curl. */
    if (!options_has_header(opts, "Host")) {
        int bracket = strchr(opts->host, ':') != NULL; /* IPv6 literal */
        int port_shown = strcmp(opts->port, opts->tls ? "443" : "80") != 0;
        fprintf(f, "Host: %s%s%s%s%s\r\n", bracket ? "[" : "", opts->host, bracket ? "]" : "",
                port_shown ? ":" : "", port_shown ? opts->port : "");
    }
    if (!options_has_header(opts, "User-Agent"))
        fprintf(f, "User-Agent: pyexec-bench\r\n");
    if (body_len && !options_has_header(opts, "Content-Type"))
        fprintf(f, "Content-Type: application/json\r\n");
    for (int i = 0; i < opts->header_count; i++) {
        const char *value = strchr(opts->headers[i], ':') + 1;
        if (value[strspn(value, " \t")] == '\0') /* "Name:" only leaves the header out */
            continue;
        fprintf(f, "%s\r\n", opts->headers[i]);
    }
    if (body_len || strcmp(method, "POST") == 0)
        fprintf(f, "Content-Length: %zu\r\n", body_len);
    fprintf(f, "%s\r\n", extra ? extra : "");
    if (body_len)
        fwrite(body, 1, body_len, f);
    if (fclose(f) != 0) {
        free(text);
        return -ENOMEM;
    }
    *out = text;
    *out_len = len;
    return 0;
}
