/* Metrics. Label sets are small and fixed by the API (status x error type), so a
 * short table with linear search is all it takes. */
#include "server/metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                0.25,   0.5,   1,      2.5,   5,    10,    30};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct histogram {
    const char *name, *help;
    uint64_t buckets[NBOUNDS]; /* non-cumulative; summed when rendered */
    uint64_t count;
    double sum;
};

struct outcome {
    int status;
    char type[32];
    uint64_t count;
};

#define MAX_OUTCOMES 64

static struct outcome outcomes[MAX_OUTCOMES];
static unsigned noutcomes;
static struct histogram total = {.name = "pyexec_request_duration_seconds",
                                 .help = "Time from a request's first byte to its answer"};
static struct histogram queue_wait = {.name = "pyexec_queue_wait_seconds",
                                      .help = "Time an /execute request waited for a worker"};
static struct histogram fork_time = {.name = "pyexec_fork_seconds",
                                     .help = "Time a worker took to fork its next spare child"};
static struct histogram execution = {.name = "pyexec_execution_seconds",
                                     .help = "Time from hand-off to a worker to its answer"};

static void observe(struct histogram *h, double v)
{
    size_t i = 0;
    while (i < NBOUNDS && v > bounds[i])
        i++;
    if (i < NBOUNDS)
        h->buckets[i]++;
    h->count++;
    h->sum += v;
}

void metrics_request(int status, const char *type, double total_s)
{
    observe(&total, total_s);
    for (unsigned i = 0; i < noutcomes; i++) {
        if (outcomes[i].status == status && !strcmp(outcomes[i].type, type)) {
            outcomes[i].count++;
            return;
        }
    }
    if (noutcomes < MAX_OUTCOMES) {
        struct outcome *o = &outcomes[noutcomes++];
        o->status = status;
        snprintf(o->type, sizeof(o->type), "%s", type);
        o->count = 1;
    }
}

static uint64_t files_in_bytes, files_out_bytes;

void metrics_files(size_t in_bytes, size_t out_bytes)
{
    files_in_bytes += in_bytes;
    files_out_bytes += out_bytes;
}

void metrics_fork(double seconds)
{
    observe(&fork_time, seconds);
}

void metrics_execution(double queue_s, double run_s)
{
    observe(&queue_wait, queue_s);
    observe(&execution, run_s);
}

static void render_histogram(FILE *f, const struct histogram *h)
{
    fprintf(f, "# HELP %s %s.\n# TYPE %s histogram\n", h->name, h->help, h->name);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < NBOUNDS; i++) {
        cumulative += h->buckets[i];
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", h->name, bounds[i],
                (unsigned long long)cumulative);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", h->name,
            (unsigned long long)h->count, h->name, h->sum, h->name, (unsigned long long)h->count);
}

static void gauge(FILE *f, const char *name, const char *type, const char *help, double v)
{
    fprintf(f, "# HELP %s %s.\n# TYPE %s %s\n%s %g\n", name, help, name, type, name, v);
}

/* A counter too large for %g to print exactly. */
static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    fprintf(f, "# HELP %s %s.\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
            (unsigned long long)v);
}

char *metrics_render(const struct pool_stats *pool, unsigned connections, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    fprintf(f, "# HELP pyexec_requests_total Requests answered, by HTTP status and error type.\n"
               "# TYPE pyexec_requests_total counter\n");
    for (unsigned i = 0; i < noutcomes; i++)
        fprintf(f, "pyexec_requests_total{status=\"%d\",type=\"%s\"} %llu\n", outcomes[i].status,
                outcomes[i].type, (unsigned long long)outcomes[i].count);
    render_histogram(f, &total);
    render_histogram(f, &queue_wait);
    render_histogram(f, &execution);
    render_histogram(f, &fork_time);
    gauge(f, "pyexec_workers", "gauge", "Worker processes configured", pool->workers);
    gauge(f, "pyexec_workers_ready", "gauge", "Workers warm and serving", pool->ready);
    gauge(f, "pyexec_workers_busy", "gauge", "Workers running a script", pool->busy);
    gauge(f, "pyexec_spare_children", "gauge",
          "Children forked ahead, set up and waiting for a request on an idle worker",
          pool->spares);
    gauge(f, "pyexec_queue_depth", "gauge", "Requests waiting for a worker", pool->queued);
    gauge(f, "pyexec_worker_respawns_total", "counter", "Workers replaced after dying",
          (double)pool->respawns);
    gauge(f, "pyexec_workers_failing", "gauge",
          "Workers whose set-up failed, waiting to be tried again", pool->failing);
    gauge(f, "pyexec_workers_parked", "gauge",
          "Workers beyond --warm-workers stopped while idle, started again when requests wait",
          pool->parked);
    gauge(f, "pyexec_memory_limit_bytes", "gauge",
          "Memory the service may use (its cgroup's limit, else the machine's)",
          (double)(pool->memory_limit_mb << 20));
    gauge(f, "pyexec_memory_budget_bytes", "gauge",
          "What the running scripts' memory limits and temp dirs may sum to",
          (double)(pool->memory_budget_mb << 20));
    gauge(f, "pyexec_memory_reserved_bytes", "gauge",
          "The running scripts' memory limits and temp dirs, summed",
          (double)(pool->memory_reserved_mb << 20));
    gauge(f, "pyexec_connections", "gauge", "Open client connections", connections);
    counter(f, "pyexec_input_file_bytes_total", "Bytes of input files (decoded) handed to scripts",
            files_in_bytes);
    counter(f, "pyexec_output_file_bytes_total",
            "Bytes of files returned from scripts' out/ directories", files_out_bytes);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}
