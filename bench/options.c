#include "bench/options.h"

#include "bench/workloads.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_PER_S 1000000000ULL

void options_usage(FILE *out)
{
    fprintf(
        out,
        "usage: pyexec-bench [options] URL\n"
        "\n"
        "Load-test a pyexec server: POST /execute over N keep-alive HTTP/1.1\n"
        "connections, plain or TLS, then report throughput and latency.\n"
        "URL is http[s]://HOST[:PORT][/PATH] (default port 80 or 443, path /execute).\n"
        "\n"
        "  -c, --connections N  concurrent connections (default 8)\n"
        "  -d, --duration T     measure for T (default 10s); T like 500ms, 10s, 2m\n"
        "  -n, --requests N     measure exactly N requests instead of a duration\n"
        "  -w, --warmup T       run unmeasured for T first (default 2s; 0 for none)\n"
        "  -R, --rate R         open loop: R requests/s across all connections, latency\n"
        "                       counted from each request's intended send time\n"
        "                       (default: closed loop, next request on each answer)\n"
        "  -R START:END         open loop ramping linearly from START to END requests/s\n"
        "                       over --duration (warm-up runs at START)\n"
        "  -W, --workload NAME  built-in script: %s (default trivial)\n"
        "  -b, --body FILE      send FILE as the JSON request body instead\n"
        "  -t, --timeout T      a request unanswered after T is an error (default 30s)\n"
        "  -H, --header 'N: V'  send this header with every request (repeatable), e.g.\n"
        "                       -H \"Authorization: Bearer $(gcloud auth print-identity-token)\"\n"
        "                       'N:' with no value leaves out a header the tool would send\n"
        "      --cacert FILE    https: trust the CA certificates in FILE (PEM) instead of\n"
        "                       the system store\n"
        "  -k, --insecure       https: do not verify the certificate or host name\n"
        "      --series FILE    write one CSV row per second of the window to FILE\n"
        "                       (bench/plot turns it into a chart)\n"
        "      --metrics PATH   the server's Prometheus path (default: /metrics next to\n"
        "                       the URL's path), scraped before and after the window\n"
        "      --no-metrics     do not scrape the server's metrics\n"
        "      --json           print one JSON object instead of the text report\n"
        "      --print-body     print the request body that would be sent, and exit\n"
        "  -h, --help           this help\n"
        "\n"
        "Non-2xx answers and connection errors are counted, never fatal. A TLS\n"
        "certificate that fails verification stops the run at once.\n"
        "Exit status: 0 run completed, 1 could not run (e.g. host not found,\n"
        "certificate refused), 2 bad arguments.\n",
        workload_names());
}

int options_parse_duration(const char *text, uint64_t *ns)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || errno || !isfinite(value) || value < 0)
        return -EINVAL;
    double scale;
    if (*end == '\0' || strcmp(end, "s") == 0)
        scale = 1e9;
    else if (strcmp(end, "ms") == 0)
        scale = 1e6;
    else if (strcmp(end, "us") == 0)
        scale = 1e3;
    else if (strcmp(end, "m") == 0)
        scale = 60e9;
    else if (strcmp(end, "h") == 0)
        scale = 3600e9;
    else
        return -EINVAL;
    double total = value * scale;
    if (total > 7.0 * 24 * 3600 * 1e9) /* a week: anything longer is a typo */
        return -EINVAL;
    *ns = (uint64_t)total;
    return 0;
}

static int copy_bounded(char *dst, size_t size, const char *src, size_t len)
{
    if (len == 0 || len >= size)
        return -EINVAL;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

int options_parse_url(struct options *opts, const char *url, const char **why)
{
    const char *rest = url;
    opts->tls = 0;
    if (strncmp(url, "https://", 8) == 0) {
        opts->tls = 1;
        rest = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else if (strstr(url, "://")) {
        *why = "only http:// and https:// URLs are supported";
        return -EINVAL;
    }

    const char *slash = strchr(rest, '/');
    size_t authority_len = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *port = NULL;
    size_t host_len;
    if (rest[0] == '[') { /* [IPv6]:port */
        const char *close = memchr(rest, ']', authority_len);
        if (!close) {
            *why = "unterminated [IPv6] address";
            return -EINVAL;
        }
        host_len = (size_t)(close - rest - 1);
        if (copy_bounded(opts->host, sizeof(opts->host), rest + 1, host_len) < 0)
            goto bad_host;
        if (close + 1 < rest + authority_len) {
            if (close[1] != ':')
                goto bad_host;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(rest, ':', authority_len);
        host_len = colon ? (size_t)(colon - rest) : authority_len;
        if (copy_bounded(opts->host, sizeof(opts->host), rest, host_len) < 0)
            goto bad_host;
        if (colon)
            port = colon + 1;
    }

    if (port) {
        size_t port_len = (size_t)(rest + authority_len - port);
        char digits[8];
        if (copy_bounded(digits, sizeof(digits), port, port_len) < 0)
            goto bad_port;
        char *end = NULL;
        long number = strtol(digits, &end, 10);
        if (*end || number < 1 || number > 65535)
            goto bad_port;
        snprintf(opts->port, sizeof(opts->port), "%ld", number);
    } else {
        snprintf(opts->port, sizeof(opts->port), opts->tls ? "443" : "80");
    }

    const char *path = slash ? slash : "/execute";
    if (copy_bounded(opts->path, sizeof(opts->path), path, strlen(path)) < 0 ||
        strpbrk(path, " \r\n")) {
        *why = "bad path";
        return -EINVAL;
    }
    return 0;
bad_host:
    *why = "missing or bad host";
    return -EINVAL;
bad_port:
    *why = "port must be a number from 1 to 65535";
    return -EINVAL;
}

int options_check_header(const char *line, const char **why)
{
    /* Framing is the tool's job: a body length or an interim answer it did
     * not ask for would break every request on the connection. */
    static const char *const framed[] = {"Content-Length", "Transfer-Encoding", "Expect"};
    size_t name_len = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789!#$%&'*+-.^_`|~");
    if (name_len == 0 || line[name_len] != ':') {
        *why = "expected 'Name: value'";
        return -EINVAL;
    }
    if (strpbrk(line, "\r\n")) {
        *why = "line breaks are not allowed in a header";
        return -EINVAL;
    }
    if (strlen(line) >= OPTIONS_HEADER_MAX) {
        *why = "header too long";
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(framed) / sizeof(framed[0]); i++) {
        if (strlen(framed[i]) == name_len && strncasecmp(line, framed[i], name_len) == 0) {
            *why = "pyexec-bench sets this header itself";
            return -EINVAL;
        }
    }
    return 0;
}

int options_has_header(const struct options *opts, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < opts->header_count; i++)
        if (strncasecmp(opts->headers[i], name, len) == 0 && opts->headers[i][len] == ':')
            return 1;
    return 0;
}

/* -R R or -R START:END. */
static int parse_rate(struct options *opts, const char *text)
{
    char *end = NULL;
    errno = 0;
    double start = strtod(text, &end), stop;
    if (end == text || errno || !isfinite(start) || start < 0 || start > 1e7)
        return -EINVAL;
    if (*end == '\0') {
        stop = start;
    } else if (*end == ':') {
        const char *second = end + 1;
        stop = strtod(second, &end);
        if (end == second || *end || errno || !isfinite(stop) || stop < 0 || stop > 1e7)
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (start == 0 && stop == 0) /* a ramp may start or end at 0, not both */
        return -EINVAL;
    opts->rate = start;
    opts->rate_end = stop;
    return 0;
}

/* /metrics beside the URL's path: /execute -> /metrics, /api/execute -> /api/metrics. */
static void default_metrics_path(struct options *opts)
{
    size_t dir = strcspn(opts->path, "?#");
    while (dir > 0 && opts->path[dir - 1] != '/')
        dir--;
    snprintf(opts->metrics_path, sizeof(opts->metrics_path), "%.*smetrics", (int)dir, opts->path);
}

static int parse_count(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (end == text || *end || errno || text[0] == '-' || value < min || value > max)
        return -EINVAL;
    *out = value;
    return 0;
}

enum { OPT_JSON = 256, OPT_PRINT_BODY, OPT_CACERT, OPT_SERIES, OPT_METRICS, OPT_NO_METRICS };

int options_parse(struct options *opts, int argc, char **argv, FILE *out, FILE *err)
{
    static const struct option long_options[] = {
        {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'R'},
        {"workload", required_argument, NULL, 'W'},
        {"body", required_argument, NULL, 'b'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, OPT_JSON},
        {"print-body", no_argument, NULL, OPT_PRINT_BODY},
        {"header", required_argument, NULL, 'H'},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, 'k'},
        {"series", required_argument, NULL, OPT_SERIES},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"no-metrics", no_argument, NULL, OPT_NO_METRICS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int have_duration = 0;
    uint64_t number;
    const char *why = NULL;

    memset(opts, 0, sizeof(*opts));
    opts->connections = 8;
    opts->duration_ns = 10 * NS_PER_S;
    opts->warmup_ns = 2 * NS_PER_S;
    opts->timeout_ns = 30 * NS_PER_S;
    opts->metrics = 1;

    opterr = 0; /* we word the messages ourselves */
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":c:d:n:w:R:W:b:t:H:kh", long_options, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (parse_count(optarg, 1, 10000, &number) < 0) {
                fprintf(err, "pyexec-bench: --connections must be 1..10000, got '%s'\n", optarg);
                return -EINVAL;
            }
            opts->connections = (int)number;
            break;
        case 'd':
            if (options_parse_duration(optarg, &opts->duration_ns) < 0 || opts->duration_ns == 0) {
                fprintf(err,
                        "pyexec-bench: --duration must be a positive time like 10s, got '%s'\n",
                        optarg);
                return -EINVAL;
            }
            have_duration = 1;
            break;
        case 'n':
            if (parse_count(optarg, 1, UINT64_C(1000000000), &opts->requests) < 0) {
                fprintf(err, "pyexec-bench: --requests must be a positive count, got '%s'\n",
                        optarg);
                return -EINVAL;
            }
            break;
        case 'w':
            if (options_parse_duration(optarg, &opts->warmup_ns) < 0) {
                fprintf(err, "pyexec-bench: --warmup must be a time like 2s or 0, got '%s'\n",
                        optarg);
                return -EINVAL;
            }
            break;
        case 't':
            if (options_parse_duration(optarg, &opts->timeout_ns) < 0 || opts->timeout_ns == 0) {
                fprintf(err, "pyexec-bench: --timeout must be a positive time like 30s, got '%s'\n",
                        optarg);
                return -EINVAL;
            }
            break;
        case 'R':
            if (parse_rate(opts, optarg) < 0) {
                fprintf(err, "pyexec-bench: --rate must be requests/s > 0 or START:END, got '%s'\n",
                        optarg);
                return -EINVAL;
            }
            break;
        case 'H':
            if (options_check_header(optarg, &why) < 0) {
                fprintf(err, "pyexec-bench: bad --header '%s': %s\n", optarg, why);
                return -EINVAL;
            }
            if (opts->header_count == OPTIONS_HEADERS_MAX) {
                fprintf(err, "pyexec-bench: at most %d --header options\n", OPTIONS_HEADERS_MAX);
                return -EINVAL;
            }
            opts->headers[opts->header_count++] = optarg;
            break;
        case OPT_CACERT:
            opts->cacert = optarg;
            break;
        case 'k':
            opts->insecure = 1;
            break;
        case OPT_SERIES:
            opts->series = optarg;
            break;
        case OPT_METRICS:
            if (optarg[0] != '/' || strlen(optarg) >= sizeof(opts->metrics_path) ||
                strpbrk(optarg, " \r\n")) {
                fprintf(err, "pyexec-bench: --metrics must be a path like /metrics, got '%s'\n",
                        optarg);
                return -EINVAL;
            }
            snprintf(opts->metrics_path, sizeof(opts->metrics_path), "%s", optarg);
            break;
        case OPT_NO_METRICS:
            opts->metrics = 0;
            break;
        case 'W':
            if (!workload_body(optarg)) {
                fprintf(err, "pyexec-bench: unknown workload '%s' (known: %s)\n", optarg,
                        workload_names());
                return -EINVAL;
            }
            opts->workload = optarg;
            break;
        case 'b':
            opts->body_file = optarg;
            break;
        case OPT_JSON:
            opts->json = 1;
            break;
        case OPT_PRINT_BODY:
            opts->print_body = 1;
            break;
        case 'h':
            options_usage(out);
            return 1;
        case ':':
            fprintf(err, "pyexec-bench: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return -EINVAL;
        default:
            fprintf(err, "pyexec-bench: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return -EINVAL;
        }
    }

    if (opts->workload && opts->body_file) {
        fprintf(err, "pyexec-bench: give --workload or --body, not both\n");
        return -EINVAL;
    }
    if (!opts->workload && !opts->body_file)
        opts->workload = "trivial";
    if (opts->print_body && optind == argc)
        return 0;
    if (optind != argc - 1) {
        fprintf(err, optind == argc ? "pyexec-bench: missing URL (see --help)\n"
                                    : "pyexec-bench: expected one URL, got extra arguments\n");
        return -EINVAL;
    }
    if (options_parse_url(opts, argv[optind], &why) < 0) {
        fprintf(err, "pyexec-bench: bad URL '%s': %s\n", argv[optind], why);
        return -EINVAL;
    }
    if (opts->requests && have_duration) {
        fprintf(err, "pyexec-bench: give --duration or --requests, not both\n");
        return -EINVAL;
    }
    if (options_ramp(opts) && opts->requests) {
        fprintf(err, "pyexec-bench: a ramp (-R START:END) runs for --duration, not --requests\n");
        return -EINVAL;
    }
    if ((opts->cacert || opts->insecure) && !opts->tls) {
        fprintf(err, "pyexec-bench: --cacert and --insecure need an https:// URL\n");
        return -EINVAL;
    }
    if (opts->cacert && opts->insecure) {
        fprintf(err, "pyexec-bench: give --cacert or --insecure, not both\n");
        return -EINVAL;
    }
    if (!opts->metrics_path[0])
        default_metrics_path(opts);
    if (opts->requests)
        opts->duration_ns = 0;
    return 0;
}
