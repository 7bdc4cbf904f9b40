/* pyexec-bench's command line: the options struct, the parser, --help.
 * Called once by main(); runs in pyexec-bench only. Parse errors are
 * reported by the caller with exit status 2. */
#ifndef PYEXEC_BENCH_OPTIONS_H
#define PYEXEC_BENCH_OPTIONS_H

#include <stdint.h>
#include <stdio.h>
#include <stddef.h>

#define OPTIONS_HOST_MAX    256
#define OPTIONS_PATH_MAX    1024
#define OPTIONS_HEADERS_MAX 32
#define OPTIONS_HEADER_MAX  8192 /* one "Name: value" line; an identity token is ~1 KiB */

struct options {
    int tls;                     /* https:// */
    char host[OPTIONS_HOST_MAX]; /* name or address, without IPv6 brackets */
    char port[8];                /* decimal, for uv_getaddrinfo */
    char path[OPTIONS_PATH_MAX]; /* request target, e.g. /execute */
    int connections;
    uint64_t duration_ns; /* measured time; 0 when requests is set */
    uint64_t requests;    /* measured request count; 0 when duration is set */
    uint64_t warmup_ns;
    uint64_t timeout_ns;  /* per request; past it the request is an error */
    double rate;          /* open-loop requests/s across all connections; 0 = closed loop */
    double rate_end;      /* -R START:END: the rate at the end of the window; else = rate */
    const char *workload; /* built-in name, or NULL with body_file */
    const char *body_file;
    int json;
    int print_body; /* print the request body and exit (for other tools, e.g. wrk) */
    const char *headers[OPTIONS_HEADERS_MAX]; /* -H lines as given, "Name: value" */
    int header_count;
    const char *cacert; /* --cacert: trust this PEM file instead of the system store */
    int insecure;       /* -k: no certificate or host name check */
    const char *series; /* --series: per-second CSV */
    int metrics;        /* scrape the server's /metrics before and after (default on) */
    char metrics_path[OPTIONS_PATH_MAX];
};

/* Fill opts from argv. Returns 0 to run (or to print the body, without a URL),
 * 1 when --help was printed to out,
 * -EINVAL after writing one clear line to err. */
int options_parse(struct options *opts, int argc, char **argv, FILE *out, FILE *err);

/* Check one -H argument: "Name: value" with a token name, no CR/LF, not a
 * header pyexec-bench frames itself. Returns 0 or -EINVAL with a reason. */
int options_check_header(const char *line, const char **why);

/* Whether opts has a -H for header `name` (case-insensitive). */
int options_has_header(const struct options *opts, const char *name);

/* Split an http:// or https:// URL (or host[:port][/path]) into opts. Returns 0 or -EINVAL
 * with a reason in *why. */
int options_parse_url(struct options *opts, const char *url, const char **why);

/* "10s", "500ms", "250us", "2m", bare number = seconds. Returns 0 or -EINVAL. */
int options_parse_duration(const char *text, uint64_t *ns);

void options_usage(FILE *out);

/* Open loop (-R): a constant rate, or a ramp when rate != rate_end. */
static inline int options_open_loop(const struct options *o)
{
    return o->rate > 0 || o->rate_end > 0;
}

static inline int options_ramp(const struct options *o)
{
    return o->rate != o->rate_end;
}

#endif
