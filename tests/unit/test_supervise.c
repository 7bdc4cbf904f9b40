/* supervise_run against real processes that say on their result channel what
 * an honest child, a failing set-up or a hostile script would: the worker
 * must end the run at the first whole frame after START (killing the child,
 * leaving it to be reaped), or else decide at the exit; believe a set-up
 * failure only before START; and measure the stats itself, from the
 * kernel. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ipc.h"
#include "worker/reap.h"
#include "worker/supervise.h"

static int sigchld_pipe[2] = {-1, -1};
/* The temp dir cap run_script's runs measure against; 0: none (a tmpfs). */
static long long disk_cap;
static int cancel_pipe[2] = {-1, -1};
/* The acceptor's end of where the runs say IPC_ASLEEP, and how many they said. */
static int asleep_pair[2] = {-1, -1};
static int asleep_frames;

static int setup(void **state)
{
    (void)state;
    if (pipe2(cancel_pipe, O_CLOEXEC) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, asleep_pair))
        return -1;
    return reap_signal_pipe(sigchld_pipe); /* as the worker does */
}

static void say(int fd, uint32_t kind, const char *text)
{
    struct iovec part = {(void *)text, text ? strlen(text) : 0};
    ipc_write(fd, kind, &part, text ? 1 : 0);
}

static void burn_cpu_ms(long ms)
{
    struct timespec ts;
    do
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    while (ts.tv_sec * 1000 + ts.tv_nsec / 1000000 < ms);
}

static void burn_thread_ms(long ms)
{
    struct timespec ts;
    do
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    while (ts.tv_sec * 1000 + ts.tv_nsec / 1000000 < ms);
}

static void *burner(void *arg)
{
    (void)arg;
    burn_thread_ms(80);
    return NULL;
}

static const char ok[] = "{\"type\":\"ok\",\"result\":1}";
static const char forged[] = "{\"type\":\"ok\",\"result\":\"forged\"}";

/* What the child does after reading its request; res is its fd 3. */
enum script {
    HONEST,           /* START, burn CPU, RESULT, wait to be killed */
    HONEST_EXIT,      /* START, burn CPU, RESULT, exit 0 at once */
    THREADS_BIG,      /* START, 2 threads burn CPU, 64 MiB touched and freed, RESULT */
    FAULT_AFTER_REQ,  /* START carrying a set-up failure */
    DIE_BEFORE_START, /* exit 126 without a word */
    SCRIPT_EXIT_125,  /* START, then the script's os._exit(125) */
    FORGED_FAULT,     /* START, the script forges a failing START, exit 0 */
    FORGED_THEN_REAL, /* START, forged RESULT, the harness's RESULT, exit 0 */
    FORGED_THEN_EXIT, /* START, forged RESULT, exit 3 */
    FORGED_THEN_HANG, /* START, forged RESULT, never exits */
    FORGED_HUGE,      /* START, a RESULT frame over the cap, exit 0 */
    FORGED_ALONE,     /* START, forged RESULT, exit 0: the script's own choice */
    HALF_THEN_CLOSE,  /* START, half a frame, the channel closed, waits to be killed */
    GARBAGE_HEADER,   /* START, a header no frame has, waits to be killed */
    SLEEPER,          /* START, sleeps until killed */
    JOINER,           /* START, joins a thread that burns CPU, RESULT, waits to be killed */
};

static _Noreturn void fake_child(enum script s, int res)
{
    switch (s) {
    case HONEST:
        say(res, IPC_START, NULL);
        burn_cpu_ms(60);
        say(res, IPC_RESULT, ok);
        for (;;)
            pause();
    case HONEST_EXIT:
        say(res, IPC_START, NULL);
        burn_cpu_ms(60);
        say(res, IPC_RESULT, ok);
        _exit(0);
    case THREADS_BIG: {
        say(res, IPC_START, NULL);
        pthread_t t;
        pthread_create(&t, NULL, burner, NULL);
        burn_thread_ms(100); /* 100 ms here, 80 in the other thread */
        pthread_join(t, NULL);
        size_t n = 64 << 20;
        char *big = malloc(n);
        explicit_bzero(big, n); /* touched: writes the compiler keeps */
        free(big);              /* gone from the RSS, not from its high-water mark */
        say(res, IPC_RESULT, forged);
        for (;;)
            pause();
    }
    case FAULT_AFTER_REQ:
        say(res, IPC_START, "child set-up failed at request limits: Invalid argument");
        _exit(125);
    case DIE_BEFORE_START:
        _exit(126);
    case SCRIPT_EXIT_125:
        say(res, IPC_START, NULL);
        _exit(125);
    case FORGED_FAULT:
        say(res, IPC_START, NULL);
        say(res, IPC_START, "child set-up failed at nothing: forged");
        _exit(0);
    case FORGED_THEN_REAL:
        say(res, IPC_START, NULL);
        say(res, IPC_RESULT, forged);
        say(res, IPC_RESULT, ok);
        _exit(0);
    case FORGED_THEN_EXIT:
        say(res, IPC_START, NULL);
        say(res, IPC_RESULT, forged);
        _exit(3);
    case FORGED_THEN_HANG:
        say(res, IPC_START, NULL);
        say(res, IPC_RESULT, forged);
        for (;;)
            pause();
    case FORGED_HUGE: {
        say(res, IPC_START, NULL);
        size_t n = 1 << 20;
        char *big = malloc(n + 1);
        memset(big, '7', n);
        big[n] = '\0';
        say(res, IPC_RESULT, big);
        _exit(0);
    }
    case FORGED_ALONE:
        say(res, IPC_START, NULL);
        say(res, IPC_RESULT, forged);
        _exit(0);
    case HALF_THEN_CLOSE: {
        say(res, IPC_START, NULL);
        struct ipc_hdr hdr = {.kind = IPC_RESULT, .len = 100};
        if (write(res, &hdr, sizeof(hdr)) < 0)
            _exit(97);
        close(res);
        for (;;)
            pause();
    }
    case GARBAGE_HEADER: {
        say(res, IPC_START, NULL);
        char junk[64];
        memset(junk, 0xff, sizeof(junk));
        if (write(res, junk, sizeof(junk)) < 0)
            _exit(97);
        for (;;)
            pause();
    }
    case SLEEPER:
        say(res, IPC_START, NULL);
        for (;;)
            pause();
    case JOINER: {
        say(res, IPC_START, NULL);
        pthread_t t;
        pthread_create(&t, NULL, burner, NULL); /* 80 ms of CPU */
        pthread_join(t, NULL);
        say(res, IPC_RESULT, ok);
        for (;;)
            pause();
    }
    }
    _exit(99);
}

/* Fork a fake child wired like child_spawn's and supervise one request. */
static void run_script(enum script s, uint32_t timeout_ms, struct run *run)
{
    int req[2], out[2], err[2], res[2];
    assert_int_equal(pipe2(req, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    assert_int_equal(pipe2(res, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ipc_hdr hdr;
        char *payload;
        say(res[1], IPC_READY, NULL);
        if (ipc_read(req[0], 1 << 20, &hdr, &payload))
            _exit(98);
        fake_child(s, res[1]);
    }
    close(req[0]);
    close(out[1]);
    close(err[1]);
    close(res[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    fcntl(res[0], F_SETFL, O_NONBLOCK);
    struct child c = {
        .pid = pid, .req_fd = req[1], .out_fd = out[0], .err_fd = err[0], .res_fd = res[0]};
    snprintf(c.tmpdir, sizeof(c.tmpdir), "/nonexistent");
    struct supervise_params sp = {.timeout_ms = timeout_ms,
                                  .output_cap = 1024,
                                  .result_cap = 4096,
                                  .disk_cap = disk_cap,
                                  .cancel_fd = cancel_pipe[0],
                                  .asleep_fd = asleep_pair[1],
                                  .sigchld_fd = sigchld_pipe[0]};
    size_t len;
    char *frame = ipc_request_new(timeout_ms, 64, "x", 1, NULL, 0, &len);
    supervise_run(&c, frame, len, &sp, run);
    ipc_free(frame, len);
    struct ipc_hdr said;
    asleep_frames = 0;
    while (recv(asleep_pair[0], &said, sizeof(said), MSG_DONTWAIT) == sizeof(said)) {
        assert_int_equal(said.kind, IPC_ASLEEP);
        assert_int_equal(said.len, 0);
        asleep_frames++;
    }
    child_close_fds(&c);
    if (run->killed) { /* stopped at its result: dying, reaped by the caller */
        assert_false(run->reaped);
        assert_int_equal(kill(pid, 0), 0); /* not reaped: the pid is still ours */
        supervise_finish(&c, run);
    }
    assert_true(run->reaped);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(kill(pid, 0), -1); /* nothing of it is left */
}

static void test_honest_child(void **state)
{
    (void)state;
    struct run run;
    run_script(HONEST, 30000, &run);
    assert_int_equal(run.end, RUN_RESULT);
    assert_true(run.killed); /* answered at the frame, not at the exit */
    assert_non_null(run.result);
    assert_string_equal(run.result, ok);
    assert_true(run.cpu_us >= 50000); /* its 60 ms of CPU, seen by its CPU clock */
    assert_true(run.max_rss_kb > 0);
    assert_true(run.wall_ms >= 50);
    assert_true(WIFSIGNALED(run.wait_status) && WTERMSIG(run.wait_status) == SIGKILL);
    run_free(&run);
    /* One that exits at once may be measured alive or waited for: the same
     * answer either way. */
    run_script(HONEST_EXIT, 30000, &run);
    assert_int_equal(run.end, RUN_RESULT);
    assert_string_equal(run.result, ok);
    assert_true(run.cpu_us >= 50000);
    run_free(&run);
}

/* A script that sleeps is reported once (the acceptor then stops counting
 * it against --warm-workers); one that runs (or waits for a CPU) never, nor
 * one whose first thread sleeps in join() while another burns CPU. */
static void test_a_sleeping_script_is_reported(void **state)
{
    (void)state;
    struct run run;
    run_script(SLEEPER, 100, &run);
    assert_int_equal(run.end, RUN_TIMEOUT);
    assert_int_equal(asleep_frames, 1);
    run_free(&run);
    run_script(HONEST, 30000, &run); /* 60 ms of CPU, past IPC_SHORT_MS */
    assert_int_equal(run.end, RUN_RESULT);
    assert_int_equal(asleep_frames, 0);
    run_free(&run);
    run_script(JOINER, 30000, &run);
    assert_int_equal(run.end, RUN_RESULT);
    assert_int_equal(asleep_frames, 0);
    run_free(&run);
}

/* Where no tmpfs caps the temp dir, the worker measures it; one that cannot
 * be measured (here: it does not exist; in a service, a script moving its
 * directories around while the walk is inside them) counts as over the cap,
 * never as within it. */
static void test_an_unmeasurable_temp_dir_is_over_its_cap(void **state)
{
    (void)state;
    struct run run;
    disk_cap = 1 << 20;
    run_script(HONEST, 30000, &run);
    disk_cap = 0;
    assert_int_equal(run.end, RUN_DISK_FULL);
    run_free(&run);
}

static void test_stats_are_the_kernels(void **state)
{
    (void)state;
    struct run run;
    run_script(THREADS_BIG, 60000, &run); /* 180 ms of CPU, on a busy machine */
    assert_int_equal(run.end, RUN_RESULT);
    assert_true(run.killed);
    assert_string_equal(run.result, forged);
    assert_true(run.cpu_us >= 170000);        /* both threads' CPU */
    assert_true(run.max_rss_kb >= 64 * 1024); /* its peak, though freed */
    run_free(&run);
}

static void test_setup_failures_before_start(void **state)
{
    (void)state;
    struct run run;
    run_script(FAULT_AFTER_REQ, 30000, &run);
    assert_int_equal(run.end, RUN_SETUP_FAILED);
    assert_non_null(strstr(run.setup_error, "request limits"));
    run_free(&run);
    run_script(DIE_BEFORE_START, 30000, &run);
    assert_int_equal(run.end, RUN_SETUP_FAILED);
    run_free(&run);
}

static void test_script_exit_codes_stay_the_scripts(void **state)
{
    (void)state;
    struct run run;
    run_script(SCRIPT_EXIT_125, 30000, &run);
    assert_int_equal(run.end, RUN_DIED);
    assert_true(WIFEXITED(run.wait_status) && WEXITSTATUS(run.wait_status) == 125);
    run_free(&run);
    run_script(FORGED_FAULT, 30000, &run); /* a 500 is never the script's to cause */
    assert_int_equal(run.end, RUN_RESULT);
    assert_null(run.result); /* tampering */
    run_free(&run);
}

static void test_forged_frames_change_nothing(void **state)
{
    (void)state;
    struct run run;
    /* A forged frame ends the run: the script chose to stop there. */
    enum script stops[] = {FORGED_THEN_REAL, FORGED_THEN_EXIT, FORGED_THEN_HANG};
    for (size_t i = 0; i < sizeof(stops) / sizeof(*stops); i++) {
        run_script(stops[i], 60000, &run);
        assert_int_equal(run.end, RUN_RESULT);
        assert_string_equal(run.result, forged);
        assert_true(run.wall_ms < 50000); /* the hanging one too */
        run_free(&run);
    }
    run_script(FORGED_HUGE, 30000, &run);
    assert_int_equal(run.end, RUN_OVERSIZE);
    run_free(&run);
    /* Tampering that cannot become a frame is answered at once, not at the
     * deadline. */
    enum script junk[] = {HALF_THEN_CLOSE, GARBAGE_HEADER};
    for (size_t i = 0; i < sizeof(junk) / sizeof(*junk); i++) {
        run_script(junk[i], 30000, &run);
        assert_int_equal(run.end, RUN_RESULT);
        assert_null(run.result);
        assert_true(run.killed);
        run_free(&run);
    }
    run_script(FORGED_ALONE, 30000, &run); /* as if main() had returned it */
    assert_int_equal(run.end, RUN_RESULT);
    assert_string_equal(run.result, forged);
    assert_true(run.cpu_us < 1000000);
    run_free(&run);
}

/* A child killed at its result that takes a while to die (its threads'
 * teardown): its SIGCHLD arrives while supervise_settle waits for it, which
 * interrupts the wait, and the child is reaped there all the same. */
static void test_settle_reaps_a_child_dying_during_the_wait(void **state)
{
    (void)state;
    struct child c = {.pid = fork()};
    assert_true(c.pid >= 0);
    if (c.pid == 0) {
        poll(NULL, 0, 100); /* its dying, drawn out */
        _exit(0);
    }
    struct run run = {.killed = true};
    supervise_settle(&c, &run, sigchld_pipe[0], 10000);
    assert_true(run.reaped);
    assert_true(WIFEXITED(run.wait_status));
    assert_int_equal(waitpid(c.pid, NULL, WNOHANG), -1); /* no longer ours to reap */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_honest_child),
        cmocka_unit_test(test_stats_are_the_kernels),
        cmocka_unit_test(test_a_sleeping_script_is_reported),
        cmocka_unit_test(test_an_unmeasurable_temp_dir_is_over_its_cap),
        cmocka_unit_test(test_setup_failures_before_start),
        cmocka_unit_test(test_script_exit_codes_stay_the_scripts),
        cmocka_unit_test(test_forged_frames_change_nothing),
        cmocka_unit_test(test_settle_reaps_a_child_dying_during_the_wait),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
