/* server/pool.c against a misbehaving template and workers (fake_template.c):
 * a malformed reply is answered 500, never left hanging; workers that fail
 * during set-up are restarted with a growing delay, not in a tight loop; jobs
 * go to the few workers sent one last, then to those whose next child is
 * ready; a script found asleep holds no place; idle workers beyond the warm
 * ones exit and start again when a job needs them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/ipc.h"
#include "server/pool.h"
#include "server/pool_state.h"

static char fake[4096];

struct harness {
    uv_loop_t loop;
    struct config cfg;
    struct pool *pool;
    uv_timer_t deadline;
    struct pool_job job;
    int status; /* the job's answer, 0 until done */
    long pid;   /* the fake worker's answer: its pid */
    char type[32];
    bool timed_out, submitted;
};

static void on_done(struct pool_job *job, int status, const char *type, const char *body,
                    size_t len)
{
    struct harness *h = (struct harness *)((char *)job - offsetof(struct harness, job));
    char pid[16];
    snprintf(pid, sizeof(pid), "%.*s", (int)(len < 15 ? len : 15), body);
    h->pid = atol(pid);
    h->status = status;
    snprintf(h->type, sizeof(h->type), "%s", type);
    uv_stop(&h->loop);
}

static void on_deadline(uv_timer_t *t)
{
    struct harness *h = t->data;
    h->timed_out = true;
    uv_stop(&h->loop);
}

static void on_ready(void *data)
{
    struct harness *h = data;
    h->job.frame = ipc_request_new(1000, 100, "x", 1, NULL, 0, &h->job.frame_len);
    h->job.done = on_done;
    assert_int_equal(pool_submit(h->pool, &h->job), 0);
    h->submitted = true;
}

static void on_fatal(void *data)
{
    (void)data;
    fail_msg("the pool reported a fatal start");
}

/* The pool of workers fake_template workers in mode, with warm of them kept
 * when idle (the others parked after 1 s idle, once pool_start_parking is
 * called) and a wait queue of queue. */
static void start_pool(struct harness *h, const char *mode, int workers, int warm, int queue,
                       uint64_t deadline_ms)
{
    memset(h, 0, sizeof(*h));
    uv_loop_init(&h->loop);
    char user[32], nworkers[32], nwarm[32], nqueue[32];
    snprintf(user, sizeof(user), "--user=%s", mode);
    snprintf(nworkers, sizeof(nworkers), "--workers=%d", workers);
    snprintf(nwarm, sizeof(nwarm), "--warm-workers=%d", warm);
    snprintf(nqueue, sizeof(nqueue), "--queue=%d", queue);
    char *argv[] = {"pyexecd", user, nworkers, nwarm, nqueue, "--worker-idle-ms=1000"};
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(config_load(&h->cfg, 6, argv, null, null), 0);
    fclose(null);
    assert_int_equal(pool_start(&h->loop, &h->cfg, fake, &h->pool), 0);
    pool_set_callbacks(h->pool, on_ready, on_fatal, h);
    uv_timer_init(&h->loop, &h->deadline);
    h->deadline.data = h;
    uv_timer_start(&h->deadline, on_deadline, deadline_ms, 0);
}

static void start(struct harness *h, const char *mode, int workers, uint64_t deadline_ms)
{
    start_pool(h, mode, workers, 2, 64, deadline_ms);
}

static void on_stopped(void *data)
{
    (void)data;
}

static void finish(struct harness *h)
{
    uv_close((uv_handle_t *)&h->deadline, NULL);
    pool_stop(h->pool, 0, on_stopped, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    pool_free(h->pool);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

/* A worker's reply that is not a reply: the request is answered 500
 * internal (after one retry on another worker), not left waiting. */
static void test_malformed_reply_answered(void **state)
{
    (void)state;
    struct harness h;
    start(&h, "malformed", 2, 10000);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    assert_true(h.submitted);
    assert_false(h.timed_out);
    assert_int_equal(h.status, 500);
    assert_string_equal(h.type, "internal");
    finish(&h);
}

/* Workers that die before READY: each slot is retried after a delay that
 * doubles, so in 1.5 s a slot is tried a handful of times, not thousands. */
static void test_setup_failure_backs_off(void **state)
{
    (void)state;
    struct harness h;
    start(&h, "exit", 2, 1500);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    assert_true(h.timed_out);
    assert_false(h.submitted);
    struct pool_stats st;
    pool_get_stats(h.pool, &st);
    /* 0.1 + 0.2 + 0.4 + 0.8 s: at most 5 tries per slot within 1.5 s. */
    assert_in_range(st.respawns, 1, 2 * 5);
    assert_int_equal(st.failing, 2);
    finish(&h);
}

/* Jobs one after another, each submitted when the last is answered: which
 * worker (its pid, the fake's answer) took each, and its status. */
struct sequence {
    struct harness h;
    long pids[12];
    int status[12];
    unsigned done;
};

static void on_sequence_done(struct pool_job *job, int status, const char *type, const char *body,
                             size_t len)
{
    struct sequence *q = (struct sequence *)((char *)job - offsetof(struct sequence, h.job));
    (void)type;
    char pid[16];
    snprintf(pid, sizeof(pid), "%.*s", (int)(len < 15 ? len : 15), body);
    q->status[q->done] = status;
    q->pids[q->done++] = atol(pid);
    if (q->done == sizeof(q->pids) / sizeof(*q->pids)) {
        uv_stop(&q->h.loop);
        return;
    }
    job->frame = ipc_request_new(1000, 100, "x", 1, NULL, 0, &job->frame_len);
    assert_int_equal(pool_submit(q->h.pool, job), 0);
}

static void on_sequence_ready(void *data)
{
    struct sequence *q = data;
    q->h.job.frame = ipc_request_new(1000, 100, "x", 1, NULL, 0, &q->h.job.frame_len);
    q->h.job.done = on_sequence_done;
    assert_int_equal(pool_submit(q->h.pool, &q->h.job), 0);
    q->h.submitted = true;
}

static unsigned distinct(const long *pids, unsigned n)
{
    unsigned count = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned j = 0;
        while (j < i && pids[j] != pids[i])
            j++;
        count += j == i;
    }
    return count;
}

/* 12 jobs in sequence to 4 workers of the fake's mode. In every mode each
 * worker serves once before any serves twice, and the worker that just
 * answered is never sent the next job while another is idle. */
static void run_sequence(struct sequence *q, const char *mode)
{
    start(&q->h, mode, 4, 10000);
    q->done = 0;
    pool_set_callbacks(q->h.pool, on_sequence_ready, on_fatal, q);
    uv_run(&q->h.loop, UV_RUN_DEFAULT);
    assert_false(q->h.timed_out);
    finish(&q->h);
    assert_int_equal(distinct(q->pids, 4), 4);
    for (unsigned i = 1; i < 12; i++)
        assert_true(q->pids[i] != q->pids[i - 1]);
}

/* After the first round (never-served first: the self-test's probes reach
 * every worker), with each worker's next child ready by the time its answer
 * is read, the worker whose child came last takes the job: the two that
 * served last take turns and the other two stay idle. */
static void test_dispatch_prefers_the_latest_spare(void **state)
{
    (void)state;
    struct sequence q;
    run_sequence(&q, "echo");
    assert_int_equal(distinct(q.pids + 4, 8), 2);
}

/* A worker still forking its next child when the next job comes is passed
 * over for an idle one (run_sequence checks it); but after the first round
 * only the two (--warm-workers) that served last take turns, each job
 * waiting for its worker's next child rather than waking one of the other
 * two, whose children are ready. */
static void test_dispatch_passes_over_a_worker_still_forking(void **state)
{
    (void)state;
    struct sequence q;
    run_sequence(&q, "late");
    assert_int_equal(distinct(q.pids + 4, 8), 2);
}

/* A worker that answered 500 (the service's failure) ranks last among the
 * ready: at one job at a time it is not sent another while others are
 * ready, so one broken worker fails one request, not all of them. */
static void test_a_failing_worker_ranks_last(void **state)
{
    (void)state;
    struct sequence q;
    run_sequence(&q, "fail0");
    unsigned failed = 0;
    for (unsigned i = 0; i < 12; i++)
        failed += q.status[i] == 500;
    assert_int_equal(failed, 1);
}

static unsigned parked(struct pool *p)
{
    struct pool_stats st;
    pool_get_stats(p, &st);
    return st.parked;
}

static void on_ready_stop(void *data)
{
    uv_stop(&((struct harness *)data)->loop);
}

/* start_pool, then run the loop until every worker is ready. */
static void start_ready(struct harness *h, const char *mode, int workers, int warm, int queue)
{
    start_pool(h, mode, workers, warm, queue, 10000);
    pool_set_callbacks(h->pool, on_ready_stop, on_fatal, h);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_false(h->timed_out);
}

static void on_held_done(struct pool_job *job, int status, const char *type, const char *body,
                         size_t len)
{
    (void)job, (void)type, (void)body, (void)len;
    assert_int_equal(status, 503); /* only the shutdown answers it */
}

/* Submit a script and run the loop until it is answered: the worker's pid. */
static long serve_one(struct harness *h, const char *script)
{
    h->status = 0;
    h->job.frame = ipc_request_new(1000, 100, script, strlen(script), NULL, 0, &h->job.frame_len);
    h->job.done = on_done;
    assert_int_equal(pool_submit(h->pool, &h->job), 0);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_false(h->timed_out);
    assert_int_equal(h->status, 200);
    return h->pid;
}

/* A worker may say its script sleeps (IPC_ASLEEP) before it answers: the
 * job is answered as usual, the worker is not taken for a broken one. */
static void test_asleep_is_part_of_a_run(void **state)
{
    (void)state;
    struct harness h;
    start_ready(&h, "echo", 2, 2, 64);
    serve_one(&h, "nap");
    struct pool_stats st;
    pool_get_stats(h.pool, &st);
    assert_int_equal(st.ready, 2);
    finish(&h);
}

/* One worker kept warm, every worker's next child late (still forking when
 * the next job comes). A script found asleep no longer holds a place: the
 * next job starts at once, not IPC_SHORT_MS later; nor is its worker one of
 * the hot two, so jobs one at a time still go to two idle workers in turn,
 * never twice running to the one that just answered. */
static void test_a_sleeping_script_holds_no_place(void **state)
{
    (void)state;
    struct harness h;
    start_ready(&h, "late", 4, 1, 64);
    for (int i = 0; i < 4; i++) /* every worker served: none is preferred for that */
        serve_one(&h, "x");

    struct pool_job napper = {.done = on_held_done};
    napper.frame = ipc_request_new(1000, 100, "naphold", 7, NULL, 0, &napper.frame_len);
    assert_int_equal(pool_submit(h.pool, &napper), 0);
    assert_non_null(napper.slot);
    while (!napper.slot->asleep && !h.timed_out)
        uv_run(&h.loop, UV_RUN_ONCE); /* each turn waits for an event: a frame */
    assert_false(h.timed_out);

    h.job.frame = ipc_request_new(1000, 100, "x", 1, NULL, 0, &h.job.frame_len);
    h.job.done = on_done;
    assert_int_equal(pool_submit(h.pool, &h.job), 0);
    assert_non_null(h.job.slot); /* sent at once: the sleeper counts no more */
    uv_run(&h.loop, UV_RUN_DEFAULT);
    assert_int_equal(h.status, 200);

    long pids[8];
    for (int i = 0; i < 8; i++)
        pids[i] = serve_one(&h, "x");
    for (int i = 1; i < 8; i++)
        assert_true(pids[i] != pids[i - 1]);
    assert_int_equal(distinct(pids, 8), 2);
    finish(&h);
}

/* 4 workers, 1 kept warm: once idle for --worker-idle-ms the other 3 exit
 * (parked). A script that runs long holds the warm one; the next job is not
 * left waiting for it: after SHORT_NS a parked worker starts and answers it,
 * and with --queue 0 the job is not refused either, a worker being on its
 * way. The pool stays ready (/health 200) while that worker starts. */
static void test_parked_workers_start_on_demand(void **state)
{
    (void)state;
    struct harness h;
    start_ready(&h, "echo", 4, 1, 0);
    pool_start_parking(h.pool);
    while (parked(h.pool) < 3 && !h.timed_out)
        uv_run(&h.loop, UV_RUN_ONCE); /* each turn waits for an event: the park timer's */
    assert_int_equal(parked(h.pool), 3);

    struct pool_job held = {.done = on_held_done};
    held.frame = ipc_request_new(1000, 100, "hold", 4, NULL, 0, &held.frame_len);
    assert_int_equal(pool_submit(h.pool, &held), 0);
    h.job.frame = ipc_request_new(1000, 100, "x", 1, NULL, 0, &h.job.frame_len);
    h.job.done = on_done;
    assert_int_equal(pool_submit(h.pool, &h.job), 0);
    struct pool_stats st;
    do { /* until the parked worker is being started */
        uv_run(&h.loop, UV_RUN_ONCE);
        pool_get_stats(h.pool, &st);
    } while (st.ready + st.parked == st.workers && !h.status && !h.timed_out);
    assert_int_equal(st.ready + st.parked, st.workers - 1);
    assert_true(pool_ready(h.pool));
    uv_run(&h.loop, UV_RUN_DEFAULT);
    assert_false(h.timed_out);
    assert_int_equal(h.status, 200);
    assert_int_equal(parked(h.pool), 2);
    finish(&h);
}

int main(int argc, char **argv)
{
    (void)argc;
    /* fake_template sits next to this test's binary. */
    snprintf(fake, sizeof(fake), "%s", argv[0]);
    char *slash = strrchr(fake, '/');
    snprintf(slash ? slash + 1 : fake, sizeof(fake) - (slash ? slash + 1 - fake : 0),
             "fake_template");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_reply_answered),
        cmocka_unit_test(test_setup_failure_backs_off),
        cmocka_unit_test(test_dispatch_prefers_the_latest_spare),
        cmocka_unit_test(test_dispatch_passes_over_a_worker_still_forking),
        cmocka_unit_test(test_a_failing_worker_ranks_last),
        cmocka_unit_test(test_asleep_is_part_of_a_run),
        cmocka_unit_test(test_a_sleeping_script_holds_no_place),
        cmocka_unit_test(test_parked_workers_start_on_demand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
