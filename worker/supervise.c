/* The worker's side of one request: a single poll loop over the child's
 * stdout, stderr and result pipes, the acceptor's channel (cancel) and the
 * SIGCHLD self-pipe, bounded by the wall-clock deadline.
 *
 * The result channel. Once the script's code runs, it owns the child: it can
 * make any call the filter allows on any fd the child holds (fd 3 included)
 * and, through ctypes, rewrite the harness that would write the result. So no
 * channel inside the child can be kept from it, and none is tried: closing
 * fd 3 or moving the result to shared memory only moves the door, since the
 * harness must open it again after the script's code, with the script still
 * in the process. Instead the worker believes nothing from the child after
 * START that the script could not honestly have chosen itself:
 *   - the answer is decided only once the child has exited (wait4), from the
 *     whole channel: exactly one RESULT frame after START and exit status 0,
 *     or else the exit status alone. A frame written early cannot cut the run
 *     short, so a forged success followed by an exception, a loop or a
 *     non-zero exit is answered as what followed (a second frame is answered
 *     as tampering). A forged frame and exit(0) is the same as returning that
 *     value from main(), which the script could always do;
 *   - the record may carry only a returned value or a script-level error
 *     (reply.c); timeout, killed, internal and the rest are the worker's;
 *   - stats are the worker's: wall_ms by its own clock from the request to
 *     the exit, cpu_ms and max_rss_kb from wait4's rusage of the child;
 *   - every cap is the worker's: stdout and stderr here, the channel's bytes
 *     here, the result value's size in reply.c;
 *   - set-up failures are believed only before START: a script cannot make
 *     its own answer a 500.
 * The READY and START frames come before any of the script's code, from a
 * child the worker forked and which has run nothing else. */
#include "worker/supervise.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

#include "worker/reap.h"

/* A child that has not said READY within this long is broken. */
#define READY_TIMEOUT_MS 10000
/* How often the temp dir is measured where nothing else caps it (or less
 * often, when measuring takes more than a tenth of that). */
#define DISK_CHECK_MS 10

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int buf_append(struct capture *b, const char *data, size_t len)
{
    size_t room = b->cap - b->len;
    if (len > room) {
        b->truncated = true;
        len = room;
    }
    if (!len)
        return 0;
    if (!b->data) {
        /* Most scripts print little: grow on demand up to the cap. */
        size_t want = b->len + len > 4096 ? b->cap : 4096;
        b->data = malloc(want + 1);
        if (!b->data)
            return -ENOMEM;
        b->alloc = want;
    } else if (b->len + len > b->alloc) {
        char *bigger = malloc(b->cap + 1);
        if (!bigger)
            return -ENOMEM;
        memcpy(bigger, b->data, b->len);
        wipe_free(b->data);
        b->data = bigger;
        b->alloc = b->cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

/* Read what fd has now into b. Returns 1 at EOF (or error), else 0. */
static int drain(int fd, struct capture *b)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n > 0) {
            buf_append(b, chunk, n);
            continue;
        }
        explicit_bzero(chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && errno == EAGAIN ? 0 : 1;
    }
}

/* Collect the child's exit (flags: 0 waits, WNOHANG does not). */
static bool reap(struct child *c, struct run *run, int flags)
{
    struct rusage ru;
    if (reap_wait(c->pid, flags, &run->wait_status, &ru) != c->pid)
        return false;
    run->reaped = true;
    run->cpu_us = rusage_cpu_us(&ru);
    run->max_rss_kb = ru.ru_maxrss;
    return true;
}

static void kill_and_reap(struct child *c, struct run *run)
{
    kill(c->pid, SIGKILL);
    reap(c, run, 0);
}

/* Wait for the child's READY frame on its result pipe. Returns 0, or -1 with
 * run->setup_error filled. */
static int wait_ready(struct child *c, struct run *run)
{
    struct capture frame = {.cap = 512};
    double deadline = now_ms() + READY_TIMEOUT_MS;
    int r = -1;
    for (;;) {
        struct ipc_hdr hdr;
        const char *payload;
        long used = ipc_frame_parse(frame.data, frame.len, 256, &hdr, &payload);
        if (used > 0 && hdr.kind == IPC_READY) {
            if (hdr.len == 0)
                r = 0;
            else
                snprintf(run->setup_error, sizeof(run->setup_error), "%.*s", (int)hdr.len, payload);
            break;
        }
        if (used != 0) {
            snprintf(run->setup_error, sizeof(run->setup_error), "bad frame before READY");
            break;
        }
        int left = (int)(deadline - now_ms());
        struct pollfd pfd = {.fd = c->res_fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) == 0) {
            snprintf(run->setup_error, sizeof(run->setup_error), "child not ready in time");
            break;
        }
        if (drain(c->res_fd, &frame) && frame.len < sizeof(struct ipc_hdr)) {
            snprintf(run->setup_error, sizeof(run->setup_error), "child exited during set-up");
            break;
        }
    }
    wipe_free(frame.data);
    return r;
}

/* The child has exited: read its channel in order (see the top of this file).
 * Sets run->end and, for a result, run->result. */
static void read_channel(const struct child *c, const struct supervise_params *sp,
                         const struct capture *b, struct run *run)
{
    struct ipc_hdr hdr;
    const char *payload;
    long used = ipc_frame_parse(b->data, b->len, sizeof(run->setup_error), &hdr, &payload);
    if (used <= 0 || hdr.kind != IPC_START) {
        snprintf(run->setup_error, sizeof(run->setup_error), "child died before the script ran");
        run->end = RUN_SETUP_FAILED;
        return;
    }
    if (hdr.len) {
        snprintf(run->setup_error, sizeof(run->setup_error), "%.*s", (int)hdr.len, payload);
        run->end = RUN_SETUP_FAILED;
        return;
    }
    /* From here on, the script may have written it. */
    const char *rest = b->data + used;
    size_t left = b->len - used;
    run->end = RUN_DIED;
    if (!WIFEXITED(run->wait_status) || WEXITSTATUS(run->wait_status) != 0 || left == 0)
        return;            /* answered by how it ended; what it wrote is ignored */
    run->end = RUN_RESULT; /* a record, or tampering when run->result stays NULL */
    used = ipc_frame_parse(rest, left, sp->result_cap, &hdr, &payload);
    if (used == (long)left && hdr.kind == IPC_RESULT) {
        run->result = malloc(hdr.len + 1);
        if (run->result) {
            memcpy(run->result, payload, hdr.len);
            run->result[hdr.len] = '\0';
            run->result_len = hdr.len;
        }
    }
    /* One last look at the disk, so a script that outran the 10 ms checks
     * gets no success out of it. */
    if (sp->disk_cap > 0 && tmpdir_usage(c->tmpdir, sp->disk_cap) > sp->disk_cap)
        run->end = RUN_DISK_FULL;
}

/* Until the child exits (or is stopped: deadline, cancel, a cap). */
static void collect(struct child *c, const struct supervise_params *sp, struct run *run,
                    double deadline)
{
    /* START, then a RESULT frame of at most result_cap bytes. */
    struct capture res = {.cap = sp->result_cap + 2 * sizeof(struct ipc_hdr)};
    enum { P_OUT, P_ERR, P_RES, P_CANCEL, P_CHLD, P_N };
    struct pollfd pfd[P_N] = {
        [P_OUT] = {.fd = c->out_fd, .events = POLLIN},
        [P_ERR] = {.fd = c->err_fd, .events = POLLIN},
        [P_RES] = {.fd = c->res_fd, .events = POLLIN},
        [P_CANCEL] = {.fd = sp->cancel_fd, .events = POLLIN},
        [P_CHLD] = {.fd = sp->sigchld_fd, .events = POLLIN},
    };

    double next_disk_check = now_ms() + DISK_CHECK_MS;
    for (;;) {
        double now = now_ms();
        int left = (int)(deadline - now);
        if (left <= 0) {
            run->end = RUN_TIMEOUT;
            break;
        }
        if (sp->disk_cap > 0 && now >= next_disk_check) {
            if (tmpdir_usage(c->tmpdir, sp->disk_cap) > sp->disk_cap) {
                run->end = RUN_DISK_FULL;
                break;
            }
            /* A tree of many files takes the worker a while to measure: the
             * checks may take a tenth of its time at most, not all of it. */
            double spent = now_ms() - now;
            next_disk_check = now + (spent * 10 > DISK_CHECK_MS ? spent * 10 : DISK_CHECK_MS);
        }
        if (sp->disk_cap > 0 && left > next_disk_check - now)
            left = (int)(next_disk_check - now) + 1;
        if (poll(pfd, P_N, left) < 0 && errno != EINTR) {
            run->end = RUN_DIED;
            break;
        }
        if (pfd[P_OUT].revents && drain(c->out_fd, &run->out))
            pfd[P_OUT].fd = -1;
        if (pfd[P_ERR].revents && drain(c->err_fd, &run->err))
            pfd[P_ERR].fd = -1;
        bool gone = false;
        if (pfd[P_RES].revents && drain(c->res_fd, &res)) {
            /* Its last copy closed: the child is gone, or going; do not count
             * on a SIGCHLD still to come. */
            pfd[P_RES].fd = -1;
            gone = reap(c, run, WNOHANG);
        }
        if (res.truncated) {
            run->end = RUN_OVERSIZE;
            break;
        }
        if (pfd[P_CANCEL].revents) {
            run->end = RUN_CANCELLED;
            break;
        }
        if (pfd[P_CHLD].revents) {
            char sink[64];
            while (read(sp->sigchld_fd, sink, sizeof(sink)) > 0)
                ;
            gone = gone || reap(c, run, WNOHANG);
        }
        if (gone) {
            /* Dead, so all it wrote is in the pipe now. */
            if (pfd[P_RES].fd >= 0)
                drain(c->res_fd, &res);
            if (res.truncated)
                run->end = RUN_OVERSIZE;
            else
                read_channel(c, sp, &res, run);
            break;
        }
    }
    wipe_free(res.data);

    if (!run->reaped)
        kill_and_reap(c, run);
    /* Everything written before the death is in the pipes now. */
    if (pfd[P_OUT].fd >= 0)
        drain(c->out_fd, &run->out);
    if (pfd[P_ERR].fd >= 0)
        drain(c->err_fd, &run->err);
}

void supervise_run(struct child *c, const char *request, size_t request_len,
                   const struct supervise_params *sp, struct run *run)
{
    memset(run, 0, sizeof(*run));
    run->out.cap = sp->output_cap;
    run->err.cap = sp->output_cap;

    if (wait_ready(c, run)) {
        run->end = RUN_SETUP_FAILED;
        kill_and_reap(c, run);
        return;
    }
    double start = now_ms();
    struct iovec part = {.iov_base = (void *)request, .iov_len = request_len};
    /* The child is blocked reading fd 0, so this write completes. */
    int r = ipc_write(c->req_fd, IPC_REQUEST, &part, 1);
    close(c->req_fd);
    c->req_fd = -1;
    if (r == -EPIPE) { /* it died after READY, before its request: not the script's doing */
        snprintf(run->setup_error, sizeof(run->setup_error), "child died before its request");
        run->end = RUN_SETUP_FAILED;
        kill_and_reap(c, run);
        return;
    }

    collect(c, sp, run, start + sp->timeout_ms);
    run->wall_ms = now_ms() - start; /* to its exit, as the worker saw it */
}

void supervise_finish(struct child *c, struct run *run)
{
    if (!run->reaped)
        kill_and_reap(c, run);
}

void run_free(struct run *run)
{
    struct capture *bufs[] = {&run->out, &run->err};
    for (int i = 0; i < 2; i++) {
        wipe_free(bufs[i]->data);
        bufs[i]->data = NULL;
    }
    wipe_free(run->result);
    run->result = NULL;
}
