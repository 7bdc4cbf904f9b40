#include "bench/report.h"

#include <errno.h>
#include <jansson.h>

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
    return r->connect_errors + r->io_errors + r->parse_errors + r->timeouts;
}

static const char *mode(const struct options *opts)
{
    return opts->rate > 0 ? "open-loop" : "closed-loop";
}

int report_text(FILE *out, const struct options *opts, const struct loadgen_result *r)
{
    const struct histogram *h = &r->latency;
    fprintf(out, "pyexec-bench  http://%s:%s%s (%s)  %s  %d connection%s  %s", opts->host,
            opts->port, opts->path, r->address, opts->body_file ? opts->body_file : opts->workload,
            opts->connections, opts->connections == 1 ? "" : "s", mode(opts));
    if (opts->rate > 0)
        fprintf(out, " at %.1f req/s", opts->rate);
    fprintf(out, "\n  %.2f s measured after %.2f s warm-up\n", r->elapsed_s,
            (double)opts->warmup_ns / 1e9);
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
    fprintf(out, "  errors       %llu (connect %llu, io %llu, parse %llu, timeout %llu)\n",
            (unsigned long long)error_count(r), (unsigned long long)r->connect_errors,
            (unsigned long long)r->io_errors, (unsigned long long)r->parse_errors,
            (unsigned long long)r->timeouts);
    if (opts->rate > 0)
        fprintf(out, "  unfinished   %llu (due or in flight when the window closed)\n",
                (unsigned long long)r->unfinished);
    return ferror(out) ? -EIO : 0;
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
    snprintf(url, sizeof(url), "http://%s:%s%s", opts->host, opts->port, opts->path);
    json_object_set_new(root, "url", json_string(url));
    json_object_set_new(root, "address", json_string(r->address));
    json_object_set_new(root, "workload",
                        json_string(opts->body_file ? opts->body_file : opts->workload));
    json_object_set_new(root, "connections", json_integer(opts->connections));
    json_object_set_new(root, "mode", json_string(mode(opts)));
    json_object_set_new(root, "rate", opts->rate > 0 ? json_real(opts->rate) : json_null());
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
    json_object_set_new(errors, "timeout", json_integer((json_int_t)r->timeouts));
    json_object_set_new(root, "errors", errors);
    errors = NULL;
    json_object_set_new(root, "unfinished", json_integer((json_int_t)r->unfinished));

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
