#include "bench/series.h"

#include <errno.h>
#include <string.h>

#define NS_PER_S 1000000000ULL

int series_open(struct series *s, const char *path, uint64_t t_measure, uint64_t t_end,
                double rate_start, double rate_end, double duration_s)
{
    memset(s, 0, sizeof(*s));
    s->f = fopen(path, "w");
    if (!s->f)
        return -errno;
    s->t_measure = t_measure;
    s->t_end = t_end;
    s->rate_start = rate_start;
    s->rate_end = rate_end;
    s->duration_s = duration_s;
    histogram_init(&s->latency);
    fprintf(s->f, "second,target_rps,sent,answered,rps,p50_ms,p99_ms,non_2xx,errors\n");
    return 0;
}

/* Write the current row as covering `length` seconds, then start the next. */
static void write_row(struct series *s, double length)
{
    double start = (double)s->row;
    fprintf(s->f, "%llu,", (unsigned long long)s->row);
    if (s->rate_start > 0 || s->rate_end > 0) {
        double mid = start + length / 2;
        double frac = s->duration_s > 0 ? mid / s->duration_s : 0;
        fprintf(s->f, "%.1f",
                s->rate_start + (s->rate_end - s->rate_start) * (frac > 1 ? 1 : frac));
    }
    const struct histogram *h = &s->latency;
    fprintf(s->f, ",%llu,%llu,%.1f,", (unsigned long long)s->sent, (unsigned long long)s->answered,
            length > 0 ? (double)s->answered / length : 0.0);
    if (h->total) /* no answers: no latency, not 0 */
        fprintf(s->f, "%.3f,%.3f", (double)histogram_percentile(h, 50) / 1000.0,
                (double)histogram_percentile(h, 99) / 1000.0);
    else
        fprintf(s->f, ",");
    fprintf(s->f, ",%llu,%llu\n", (unsigned long long)s->non_2xx, (unsigned long long)s->errors);
    if (fflush(s->f) != 0) /* live, so a long run can be watched (tail -f) */
        s->failed = 1;
    s->row++;
    s->sent = s->answered = s->non_2xx = s->errors = 0;
    histogram_init(&s->latency);
}

void series_tick(struct series *s, uint64_t now)
{
    if (!s->f || now < s->t_measure)
        return;
    if (s->t_end && now > s->t_end)
        now = s->t_end;
    uint64_t second = (now - s->t_measure) / NS_PER_S;
    while (s->row < second)
        write_row(s, 1.0);
}

/* Whether an event at now belongs to the window; rows before it are written. */
static int in_window(struct series *s, uint64_t now)
{
    if (!s->f || now < s->t_measure || (s->t_end && now >= s->t_end))
        return 0;
    series_tick(s, now);
    return 1;
}

void series_sent(struct series *s, uint64_t now)
{
    if (in_window(s, now))
        s->sent++;
}

void series_answer(struct series *s, uint64_t now, uint64_t latency_us, unsigned status)
{
    if (!in_window(s, now))
        return;
    s->answered++;
    if (status < 200 || status > 299)
        s->non_2xx++;
    histogram_record(&s->latency, latency_us);
}

void series_error(struct series *s, uint64_t now)
{
    if (in_window(s, now))
        s->errors++;
}

int series_close(struct series *s, uint64_t end)
{
    if (!s->f)
        return 0;
    if (end > s->t_measure) {
        series_tick(s, end);
        double rest = (double)(end - s->t_measure) / 1e9 - (double)s->row;
        if (rest > 0.001) /* a last partial second; an exact end leaves none */
            write_row(s, rest);
    }
    int failed = s->failed || ferror(s->f);
    if (fclose(s->f) != 0)
        failed = 1;
    s->f = NULL;
    return failed ? -EIO : 0;
}
