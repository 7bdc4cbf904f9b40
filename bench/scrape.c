#include "bench/scrape.h"

#include "bench/request.h"
#include "bench/tls.h"

#include <errno.h>
#include <http_parser.h>
#include <math.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#define SCRAPE_DEADLINE_MS                                                                         \
    10000 /* connect to last byte: a trickling server cannot hold the report */
#define SCRAPE_BODY_MAX (8 * 1024 * 1024) /* pyexecd's whole page is a few KiB */

/* The one list of stages: what the report calls them and the metric behind each. */
static const struct {
    const char *name, *key, *metric;
} stage_table[SCRAPE_STAGES] = {
    {"queue wait", "queue_wait", "pyexec_queue_wait_seconds"},
    {"fork", "fork", "pyexec_fork_seconds"},
    {"execution", "execution", "pyexec_execution_seconds"},
    {"total", "total", "pyexec_request_duration_seconds"},
};

/* -- parsing the exposition text ------------------------------------------ */

static void parse_line(const char *line, size_t len, struct scrape *out)
{
    for (int i = 0; i < SCRAPE_STAGES; i++) {
        size_t mlen = strlen(stage_table[i].metric);
        if (len <= mlen || strncmp(line, stage_table[i].metric, mlen) != 0)
            continue;
        struct scrape_histogram *h = &out->stages[i];
        const char *rest = line + mlen;
        char copy[256];
        snprintf(copy, sizeof(copy), "%.*s", (int)(len - mlen), rest);
        char *value = strrchr(copy, ' ');
        if (!value)
            return;
        char *end = NULL;
        double v = strtod(value + 1, &end);
        if (end == value + 1 || !isfinite(v))
            return;
        if (strncmp(copy, "_sum ", 5) == 0) {
            h->sum = v;
        } else if (strncmp(copy, "_count ", 7) == 0) {
            h->count = v;
            h->found = 1;
        } else if (strncmp(copy, "_bucket{le=\"", 12) == 0 && h->buckets < SCRAPE_BOUNDS) {
            const char *le = copy + 12;
            double bound = strncmp(le, "+Inf\"", 5) == 0 ? INFINITY : strtod(le, NULL);
            h->le[h->buckets] = bound;
            h->cumulative[h->buckets] = v;
            h->buckets++;
        }
        return;
    }
}

void scrape_parse(const char *text, size_t len, struct scrape *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t line_len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (line_len && p[0] != '#')
            parse_line(p, line_len, out);
        p += line_len + 1;
    }
    for (int i = 0; i < SCRAPE_STAGES; i++)
        if (out->stages[i].found && out->stages[i].buckets)
            out->ok = 1;
    if (!out->ok)
        snprintf(out->why, sizeof(out->why), "no pyexec histograms in the answer");
}

/* -- the breakdown -------------------------------------------------------- */

/* The upper bound of the bucket that holds quantile q: the quantile is at
 * most this (seconds; INFINITY past the last finite bound). Interpolating
 * inside a bucket, as Prometheus does, would print 0.25 ms for a wait that is
 * always 1 µs; the bound claims no more than the buckets know. */
static double quantile_bound(const double *le, const double *counts, int n, double q)
{
    double total = n ? counts[n - 1] : 0;
    if (total <= 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (counts[i] >= q * total)
            return le[i];
    return INFINITY;
}

int scrape_diff(const struct scrape *before, const struct scrape *after,
                struct scrape_stage stages[SCRAPE_STAGES], char *why, size_t why_size)
{
    if (!before->ok || !after->ok) {
        snprintf(why, why_size, "%s", !before->ok ? before->why : after->why);
        return -EINVAL;
    }
    for (int i = 0; i < SCRAPE_STAGES; i++) {
        const struct scrape_histogram *a = &before->stages[i], *b = &after->stages[i];
        struct scrape_stage *s = &stages[i];
        memset(s, 0, sizeof(*s));
        s->name = stage_table[i].name;
        s->key = stage_table[i].key;
        if (a->buckets != b->buckets || b->count < a->count) {
            snprintf(why, why_size, "the counters went back (a different or restarted server)");
            return -EINVAL;
        }
        double diff[SCRAPE_BOUNDS];
        for (int k = 0; k < b->buckets; k++)
            diff[k] = b->cumulative[k] - a->cumulative[k];
        s->count = b->count - a->count;
        if (s->count > 0) {
            s->mean_ms = (b->sum - a->sum) / s->count * 1e3;
            s->p50_ms = quantile_bound(b->le, diff, b->buckets, 0.50) * 1e3;
            s->p99_ms = quantile_bound(b->le, diff, b->buckets, 0.99) * 1e3;
        }
    }
    return 0;
}

/* -- fetching ------------------------------------------------------------- */

struct body {
    char *data;
    size_t len;
    int too_big;
};

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct body *b = p->data;
    if (b->len + len > SCRAPE_BODY_MAX) {
        b->too_big = 1;
        return 1;
    }
    char *grown = realloc(b->data, b->len + len + 1);
    if (!grown)
        return 1;
    memcpy(grown + b->len, at, len);
    b->data = grown;
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    http_parser_pause(p, 1); /* done: the rest of the stream is not ours */
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events, or the deadline: 0 or -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* What an OpenSSL call that returned rc wants before it can go on: POLLIN,
 * POLLOUT, or 0 when it failed for good. */
static short ssl_wants(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);
    return e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
}

/* Send all of buf (over TLS when ssl) by the deadline. 0 or -errno. */
static int send_all(int fd, SSL *ssl, const char *buf, size_t len, uint64_t deadline)
{
    while (len > 0) {
        size_t n = 0;
        short want = POLLOUT;
        if (ssl) {
            ERR_clear_error();
            int rc = SSL_write_ex(ssl, buf, len, &n);
            if (rc != 1 && !(want = ssl_wants(ssl, rc)))
                return -EIO;
        } else {
            ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                return -errno;
            n = w > 0 ? (size_t)w : 0;
        }
        buf += n;
        len -= n;
        if (n == 0 && wait_fd(fd, want, deadline) < 0)
            return -ETIMEDOUT;
    }
    return 0;
}

/* Read some bytes by the deadline: > 0, 0 at the end of the stream, -errno. */
static ssize_t recv_some(int fd, SSL *ssl, char *buf, size_t size, uint64_t deadline)
{
    for (;;) {
        short want = POLLIN;
        if (ssl) {
            size_t n = 0;
            ERR_clear_error();
            int rc = SSL_read_ex(ssl, buf, size, &n);
            if (rc == 1)
                return (ssize_t)n;
            int e = SSL_get_error(ssl, rc);
            if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !ERR_peek_error()))
                return 0; /* close_notify, or a close without one: the body may end there */
            if (!(want = ssl_wants(ssl, rc)))
                return -EIO;
        } else {
            ssize_t n = recv(fd, buf, size, 0);
            if (n >= 0)
                return n;
            if (errno != EAGAIN && errno != EINTR)
                return -errno;
        }
        if (wait_fd(fd, want, deadline) < 0)
            return -ETIMEDOUT;
    }
}

/* Connect the non-blocking fd by the deadline: 0 or -errno. */
static int connect_by(int fd, const struct sockaddr *addr, socklen_t addr_len, uint64_t deadline)
{
    if (connect(fd, addr, addr_len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -errno;
    if (wait_fd(fd, POLLOUT, deadline) < 0)
        return -ETIMEDOUT;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return -err;
}

void scrape_fetch(const struct options *opts, SSL_CTX *ctx, const struct sockaddr *addr,
                  socklen_t addr_len, struct scrape *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t deadline = now_ms() + SCRAPE_DEADLINE_MS;
    SSL *ssl = NULL;
    char *request = NULL;
    size_t request_len;
    struct body body = {0};
    http_parser parser;
    http_parser_settings settings;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(out->why, sizeof(out->why), "socket: %s", strerror(errno));
        return;
    }
    int err = connect_by(fd, addr, addr_len, deadline);
    if (err < 0) {
        snprintf(out->why, sizeof(out->why), "cannot connect: %s", strerror(-err));
        goto done;
    }
    if (ctx) {
        ssl = tls_new_ssl(ctx, opts);
        if (!ssl || SSL_set_fd(ssl, fd) != 1)
            err = -ENOMEM;
        while (!err) {
            ERR_clear_error();
            int rc = SSL_connect(ssl);
            if (rc == 1)
                break;
            short want = ssl_wants(ssl, rc);
            err = !want ? -EPROTO : wait_fd(fd, want, deadline);
        }
        if (err < 0) {
            unsigned long e = ERR_peek_last_error();
            char reason[128] = "handshake timed out";
            if (e)
                ERR_error_string_n(e, reason, sizeof(reason));
            snprintf(out->why, sizeof(out->why), "TLS: %s", reason);
            ERR_clear_error();
            goto done;
        }
    }
    if (request_build(opts, "GET", opts->metrics_path, NULL, 0,
                      "Accept: text/plain\r\nConnection: close\r\n", &request, &request_len) < 0 ||
        (err = send_all(fd, ssl, request, request_len, deadline)) < 0) {
        snprintf(out->why, sizeof(out->why), "cannot send the request: %s",
                 strerror(err < 0 ? -err : ENOMEM));
        goto done;
    }

    http_parser_init(&parser, HTTP_RESPONSE);
    http_parser_settings_init(&settings);
    settings.on_body = on_body;
    settings.on_message_complete = on_complete;
    parser.data = &body;
    char buf[16384];
    ssize_t n;
    while ((n = recv_some(fd, ssl, buf, sizeof(buf), deadline)) > 0) {
        http_parser_execute(&parser, &settings, buf, (size_t)n);
        if (HTTP_PARSER_ERRNO(&parser) != HPE_OK)
            break;
    }
    if (n == 0)
        http_parser_execute(&parser, &settings, NULL, 0); /* end of a close-delimited body */
    ERR_clear_error();
    if (HTTP_PARSER_ERRNO(&parser) != HPE_PAUSED && n == -ETIMEDOUT) {
        snprintf(out->why, sizeof(out->why), "no complete answer within %d s",
                 SCRAPE_DEADLINE_MS / 1000);
    } else if (HTTP_PARSER_ERRNO(&parser) != HPE_PAUSED && HTTP_PARSER_ERRNO(&parser) != HPE_OK) {
        snprintf(out->why, sizeof(out->why), "%s",
                 body.too_big ? "answer too large" : "no complete HTTP answer");
    } else if (parser.status_code == 0) {
        snprintf(out->why, sizeof(out->why), "no answer (connection closed)");
    } else if (parser.status_code != 200) {
        snprintf(out->why, sizeof(out->why), "GET %.100s answered HTTP %u", opts->metrics_path,
                 parser.status_code);
    } else {
        scrape_parse(body.data ? body.data : "", body.len, out);
    }
done:
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
        ERR_clear_error();
    }
    close(fd);
    free(request);
    free(body.data);
}
