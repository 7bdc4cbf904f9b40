#include "bench/report.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>

static const struct {
    const char *name;
    double p;
} percentiles[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}};

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static double rate(const struct loadgen_result *r)
{
    return r->elapsed_s > 0 ? (double)r->responses / r->elapsed_s : 0.0;
}

static uint64_t error_count(const struct loadgen_result *r)
{
    return r->connect_errors + r->io_errors + r->parse_errors + r->tls_errors + r->timeouts;
}

static const char *mode(const struct options *opts)
{
    return options_open_loop(opts) ? "open-loop" : "closed-loop";
}

static const char *scheme(const struct options *opts)
{
    return opts->tls ? "https" : "http";
}

/* What vouched for the server's certificate. */
static const char *trust(const struct options *opts)
{
    return opts->insecure ? "NOT VERIFIED" : opts->cacert ? opts->cacert : "the system CA store";
}

static const char insecure_warning[] =
    "  !!! TLS CERTIFICATE NOT VERIFIED (-k/--insecure): any server could have answered\n";

/* "p50 a  p99 b" of a µs histogram, in ms. */
static void print_times(FILE *out, const struct histogram *h)
{
    fprintf(out, "p50 %.3f  p99 %.3f  max %.3f ms", ms(histogram_percentile(h, 50)),
            ms(histogram_percentile(h, 99)), ms(h->max_us));
}

static void text_connections(FILE *out, const struct options *opts, const struct loadgen_result *r)
{
    fprintf(out, "  connections  %llu opened, %llu reconnects (whole run); connect ",
            (unsigned long long)r->opened, (unsigned long long)r->reconnects);
    print_times(out, &r->connect);
    /* Closed loop times a request from its write; open loop from when it was
     * due, so a wait for a connection is part of what the caller saw. */
    fprintf(out, "\n               connect%s times are %s\n", opts->tls ? " and handshake" : "",
            options_open_loop(opts)
                ? "inside request latency (open loop: it counts from the intended send)"
                : "not part of request latency");
    if (!opts->tls)
        return;
    fprintf(out, "  tls          %s %s, certificate %s%s\n",
            r->tls_version[0] ? r->tls_version : "-", r->tls_cipher,
            opts->insecure ? "" : "verified against ", trust(opts));
    fprintf(out, "  handshakes   %llu (%llu resumed); handshake ",
            (unsigned long long)r->handshake.total, (unsigned long long)r->resumed);
    print_times(out, &r->handshake);
    fprintf(out, "\n");
}

static void text_instances(FILE *out, const struct loadgen_result *r)
{
    if (!r->instance_count)
        return;
    fprintf(out, "  instances    %d%s seen (X-Pyexec-Instance):", r->instance_count,
            r->instances_other ? "+" : "");
    int shown = r->instance_count < 8 ? r->instance_count : 8;
    for (int i = 0; i < shown; i++)
        fprintf(out, " %s: %llu", r->instances[i].id, (unsigned long long)r->instances[i].count);
    if (shown < r->instance_count || r->instances_other)
        fprintf(out, " ... (--json lists all)");
    fprintf(out, "\n");
}

static void text_server(FILE *out, const struct options *opts, const struct loadgen_result *r)
{
    if (r->server_state == 0)
        return;
    if (r->server_state < 0) {
        fprintf(out, "  server view  skipped: %s %s\n", opts->metrics_path, r->server_why);
        return;
    }
    fprintf(out,
            "  server view  %s before and after the window; behind a load balancer this is\n"
            "               one instance's view (the one that answered the scrape)\n",
            opts->metrics_path);
    fprintf(out, "               %-11s %9s %9s %10s %10s  (percentiles: the server's bucket)\n",
            "stage", "count", "mean ms", "p50 ms <=", "p99 ms <=");
    for (int i = 0; i < SCRAPE_STAGES; i++) {
        const struct scrape_stage *s = &r->server[i];
        fprintf(out, "               %-11s %9.0f %9.3f", s->name, s->count, s->mean_ms);
        double pcts[2] = {s->p50_ms, s->p99_ms};
        for (int k = 0; k < 2; k++) {
            if (isinf(pcts[k]))
                fprintf(out, " %10s", "+Inf");
            else
                fprintf(out, " %10g", pcts[k]);
        }
        fprintf(out, "\n");
    }
}

int report_text(FILE *out, const struct options *opts, const struct loadgen_result *r)
{
    const struct histogram *h = &r->latency;
    fprintf(out, "pyexec-bench  %s://%s:%s%s (%s)  %s  %d connection%s  %s", scheme(opts),
            opts->host, opts->port, opts->path, r->address,
            opts->body_file ? opts->body_file : opts->workload, opts->connections,
            opts->connections == 1 ? "" : "s", mode(opts));
    if (options_ramp(opts))
        fprintf(out, " ramp %.1f -> %.1f req/s", opts->rate, opts->rate_end);
    else if (options_open_loop(opts))
        fprintf(out, " at %.1f req/s", opts->rate);
    if (opts->insecure)
        fprintf(out, "\n%s", insecure_warning);
    fprintf(out, "%s  %.2f s measured after %.2f s warm-up\n", opts->insecure ? "" : "\n",
            r->elapsed_s, (double)opts->warmup_ns / 1e9);
    fprintf(out, "  requests     %llu answers  %.1f req/s\n", (unsigned long long)r->responses,
            rate(r));
    if (h->total) {
        fprintf(out, "  latency ms   min %.3f", ms(h->min_us));
        for (size_t i = 0; i < sizeof(percentiles) / sizeof(percentiles[0]); i++)
            fprintf(out, "  %s %.3f", percentiles[i].name,
                    ms(histogram_percentile(h, percentiles[i].p)));
        fprintf(out, "  max %.3f  mean %.3f\n", ms(h->max_us), histogram_mean(h) / 1000.0);
    }
    fprintf(out, "  status      ");
    for (int s = 0; s < 600; s++)
        if (r->status[s])
            fprintf(out, " %d: %llu", s, (unsigned long long)r->status[s]);
    fprintf(out, "\n");
    if (r->type_count) {
        fprintf(out, "  error types ");
        for (int i = 0; i < r->type_count; i++)
            fprintf(out, " %s: %llu", r->types[i].name, (unsigned long long)r->types[i].count);
        fprintf(out, "\n");
    }
    fprintf(out, "  errors       %llu (connect %llu, io %llu, parse %llu, ",
            (unsigned long long)error_count(r), (unsigned long long)r->connect_errors,
            (unsigned long long)r->io_errors, (unsigned long long)r->parse_errors);
    if (opts->tls)
        fprintf(out, "tls %llu, ", (unsigned long long)r->tls_errors);
    fprintf(out, "timeout %llu)\n", (unsigned long long)r->timeouts);
    if (r->tls_error[0])
        fprintf(out, "  tls error    %s\n", r->tls_error);
    if (options_open_loop(opts))
        fprintf(out, "  unfinished   %llu (due or in flight when the window closed)\n",
                (unsigned long long)r->unfinished);
    text_connections(out, opts, r);
    text_instances(out, r);
    text_server(out, opts, r);
    if (opts->series)
        fprintf(out, "  series       %s: %llu rows, one per second (bench/plot draws it)\n",
                opts->series, (unsigned long long)r->series_rows);
    if (opts->insecure)
        fputs(insecure_warning, out);
    return ferror(out) ? -EIO : 0;
}

static json_t *times_json(const struct histogram *h)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f}", "count", (json_int_t)h->total, "p50",
                     ms(histogram_percentile(h, 50)), "p99", ms(histogram_percentile(h, 99)), "max",
                     ms(h->max_us), "mean", histogram_mean(h) / 1000.0);
}

/* Connections, TLS, instances, the server's view, the series. */
static int json_extras(json_t *root, const struct options *opts, const struct loadgen_result *r)
{
    json_t *connections =
        json_pack("{s:I, s:I, s:o}", "opened", (json_int_t)r->opened, "reconnects",
                  (json_int_t)r->reconnects, "connect_ms", times_json(&r->connect));
    json_t *tls = json_null();
    if (opts->tls)
        tls = json_pack("{s:b, s:s, s:s?, s:s?, s:I, s:I, s:o}", "verified", !opts->insecure,
                        "trust", trust(opts), "version", r->tls_version[0] ? r->tls_version : NULL,
                        "cipher", r->tls_cipher[0] ? r->tls_cipher : NULL, "handshakes",
                        (json_int_t)r->handshake.total, "resumed", (json_int_t)r->resumed,
                        "handshake_ms", times_json(&r->handshake));
    json_t *instances = json_object();
    for (int i = 0; instances && i < r->instance_count; i++)
        json_object_set_new(instances, r->instances[i].id,
                            json_integer((json_int_t)r->instances[i].count));
    json_t *server = json_null();
    if (r->server_state > 0) {
        json_t *stages = json_object();
        for (int i = 0; stages && i < SCRAPE_STAGES; i++) {
            const struct scrape_stage *s = &r->server[i];
            json_object_set_new(
                stages, s->key,
                json_pack("{s:f, s:f, s:o, s:o}", "count", s->count, "mean_ms", s->mean_ms,
                          "p50_le_ms", isinf(s->p50_ms) ? json_null() : json_real(s->p50_ms),
                          "p99_le_ms", isinf(s->p99_ms) ? json_null() : json_real(s->p99_ms)));
        }
        server = json_pack("{s:s, s:o}", "path", opts->metrics_path, "stages", stages);
    } else if (r->server_state < 0) {
        server = json_pack("{s:s, s:s}", "path", opts->metrics_path, "skipped", r->server_why);
    }
    if (!connections || !tls || !instances || !server) {
        json_decref(connections);
        json_decref(tls);
        json_decref(instances);
        json_decref(server);
        return -ENOMEM;
    }
    json_object_set_new(root, "connects", connections);
    json_object_set_new(root, "tls", tls);
    json_object_set_new(root, "instances", instances);
    json_object_set_new(root, "instances_other", json_integer((json_int_t)r->instances_other));
    json_object_set_new(root, "server", server);
    json_object_set_new(root, "series",
                        opts->series ? json_pack("{s:s, s:I}", "file", opts->series, "rows",
                                                 (json_int_t)r->series_rows)
                                     : json_null());
    return 0;
}

int report_json(FILE *out, const struct options *opts, const struct loadgen_result *r)
{
    const struct histogram *h = &r->latency;
    int err = -ENOMEM;
    json_t *root = json_object(), *latency = json_object(), *status = json_object();
    json_t *types = json_object(), *errors = json_object();
    if (!root || !latency || !status || !types || !errors)
        goto fail;

    char url[sizeof(opts->host) + sizeof(opts->port) + sizeof(opts->path) + 16];
    snprintf(url, sizeof(url), "%s://%s:%s%s", scheme(opts), opts->host, opts->port, opts->path);
    json_object_set_new(root, "url", json_string(url));
    json_object_set_new(root, "address", json_string(r->address));
    json_object_set_new(root, "workload",
                        json_string(opts->body_file ? opts->body_file : opts->workload));
    json_object_set_new(root, "connections", json_integer(opts->connections));
    json_object_set_new(root, "mode", json_string(mode(opts)));
    json_object_set_new(root, "rate",
                        options_open_loop(opts) ? json_real(opts->rate) : json_null());
    json_object_set_new(root, "rate_end",
                        options_open_loop(opts) ? json_real(opts->rate_end) : json_null());
    json_object_set_new(root, "warmup_s", json_real((double)opts->warmup_ns / 1e9));
    json_object_set_new(root, "elapsed_s", json_real(r->elapsed_s));
    json_object_set_new(root, "requests", json_integer((json_int_t)r->responses));
    json_object_set_new(root, "requests_per_s", json_real(rate(r)));

    json_object_set_new(latency, "count", json_integer((json_int_t)h->total));
    json_object_set_new(latency, "min", json_real(h->total ? ms(h->min_us) : 0.0));
    for (size_t i = 0; i < sizeof(percentiles) / sizeof(percentiles[0]); i++)
        json_object_set_new(latency, percentiles[i].name,
                            json_real(ms(histogram_percentile(h, percentiles[i].p))));
    json_object_set_new(latency, "max", json_real(ms(h->max_us)));
    json_object_set_new(latency, "mean", json_real(histogram_mean(h) / 1000.0));
    json_object_set_new(root, "latency_ms", latency);
    latency = NULL;

    for (int s = 0; s < 600; s++) {
        if (!r->status[s])
            continue;
        char code[8];
        snprintf(code, sizeof(code), "%d", s);
        json_object_set_new(status, code, json_integer((json_int_t)r->status[s]));
    }
    json_object_set_new(root, "status", status);
    status = NULL;
    for (int i = 0; i < r->type_count; i++)
        json_object_set_new(types, r->types[i].name, json_integer((json_int_t)r->types[i].count));
    json_object_set_new(root, "error_types", types);
    types = NULL;

    json_object_set_new(errors, "total", json_integer((json_int_t)error_count(r)));
    json_object_set_new(errors, "connect", json_integer((json_int_t)r->connect_errors));
    json_object_set_new(errors, "io", json_integer((json_int_t)r->io_errors));
    json_object_set_new(errors, "parse", json_integer((json_int_t)r->parse_errors));
    if (opts->tls) { /* over plain HTTP the object keeps exactly its old fields */
        json_object_set_new(errors, "tls", json_integer((json_int_t)r->tls_errors));
        if (r->tls_error[0])
            json_object_set_new(errors, "tls_first", json_string(r->tls_error));
    }
    json_object_set_new(errors, "timeout", json_integer((json_int_t)r->timeouts));
    json_object_set_new(root, "errors", errors);
    errors = NULL;
    json_object_set_new(root, "unfinished", json_integer((json_int_t)r->unfinished));
    if (json_extras(root, opts, r) < 0)
        goto fail;

    err = json_dumpf(root, out, JSON_COMPACT | JSON_REAL_PRECISION(7)) < 0 ? -EIO : 0;
    fputc('\n', out);
fail:
    json_decref(root);
    json_decref(latency);
    json_decref(status);
    json_decref(types);
    json_decref(errors);
    return err;
}
