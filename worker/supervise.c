/* The worker's side of one request: a single poll loop over the child's
 * stdout, stderr and result pipes, the acceptor's channel (cancel) and the
 * SIGCHLD self-pipe, bounded by the wall-clock deadline. A script that has
 * used PRIORITY_LONG_CPU_MS of CPU drops to the lowest CPU priority.
 *
 * The result channel. Once the script's code runs, it owns the child: it can
 * make any call the filter allows on any fd the child holds (fd 3 included)
 * and, through ctypes, rewrite the harness that would write the result. So no
 * channel inside the child can be kept from it, and none is tried: closing
 * fd 3 or moving the result to shared memory only moves the door, since the
 * harness must open it again after the script's code, with the script still
 * in the process. Instead the worker believes nothing from the child after
 * START that the script could not honestly have chosen itself:
 *   - the run ends at the first whole frame after START, whatever follows
 *     it: a RESULT frame is the answer, any other frame tampering (as is a
 *     header no frame has, or half a frame once the channel is closed; a
 *     RESULT header past the cap is output_limit). The honest harness writes
 *     its RESULT as its very last act, after flushing stdout and stderr,
 *     closes its end and then only waits to be killed. A script that
 *     writes a frame early has chosen to stop there: answering that frame at
 *     once is the same as its main() returning that value at that moment,
 *     which it could always do. So a forged success followed by an
 *     exception, a loop or an exit is answered as the forged success, with
 *     the worker's stats and caps; nothing the script does after its frame
 *     reaches the answer (but output already in the pipes). With no whole
 *     frame, the answer waits for the exit and is the exit's;
 *   - at the frame the worker measures the child (below), SIGKILLs it and
 *     answers from what is in the pipes then: all the child wrote before its
 *     frame is there, since its writes had completed. The child is reaped
 *     after the reply (supervise_settle, else the worker's dying list), so
 *     its teardown (milliseconds for a few hundred copy-on-write mappings)
 *     is never on the request's path. It cannot outlive the kill, and as
 *     our unreaped child its pid cannot be reused meanwhile; its temp dir is
 *     the dying list's, never removed while it may still write there
 *     (dying.c). What needs the child dead before the answer (files it left
 *     in out/, which its threads could still be writing) waits for it with
 *     supervise_finish: that request pays for the teardown;
 *   - the record may carry only a returned value or a script-level error
 *     (reply.c); timeout, killed, internal and the rest are the worker's;
 *   - stats are the worker's: wall_ms by its own clock from the request to
 *     the frame (or the exit); cpu_ms and max_rss_kb from the kernel: at a
 *     frame, the child's process CPU clock (all its threads, exited ones
 *     too) and its VmHWM, read while it lives and just before the kill, so
 *     its threads gain at most those microseconds, uncounted but under every
 *     kernel-enforced limit; where the kernel will not say (the child is
 *     already exiting, or /proc hides it), and at every exit without a
 *     frame, from wait4's rusage;
 *   - every cap is the worker's: stdout and stderr here, the channel's bytes
 *     here, the result value's size in reply.c;
 *   - set-up failures are believed only before START: a script cannot make
 *     its own answer a 500.
 * The READY and START frames come before any of the script's code, from a
 * child the worker forked and which has run nothing else. */
#include "worker/supervise.h"

#include <errno.h>
#include <fcntl.h>
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

#include "common/priority.h"
#include "worker/reap.h"

/* A child that has not said READY within this long is broken. */
#define READY_TIMEOUT_MS 10000
/* How often the temp dir is measured where nothing else caps it (or less
 * often, when measuring takes more than a tenth of that). */
#define DISK_CHECK_MS 10
/* A walk of the temp dir fails only when the tree changes under it (a
 * directory moved away while the walk is inside it), which a script can do
 * on purpose to hide what it wrote: a measurement is tried this many times in
 * a row, and a temp dir that cannot be measured counts as over its cap. */
#define DISK_MEASURE_TRIES 3

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

/* The clock of a whole process's CPU time (MAKE_PROCESS_CPUCLOCK(pid,
 * CPUCLOCK_SCHED) in the kernel): every thread's, exited ones included, in
 * nanoseconds, readable until the process is reaped. */
static clockid_t process_cpu_clock(pid_t pid)
{
    return (clockid_t)((~(unsigned)pid << 3) | 2);
}

/* Take the child's stats from the kernel while it still lives: its CPU clock
 * and VmHWM from /proc/<pid>/status (the same high-water mark wait4's
 * ru_maxrss reports at its exit). A child of ours not yet reaped keeps its
 * pid, so the numbers are its own. Fails (-errno) once its memory is gone
 * (it is exiting) or where the kernel hides them; the caller then waits. */
static int measure_live(const struct child *c, struct run *run)
{
    struct timespec ts;
    if (clock_gettime(process_cpu_clock(c->pid), &ts))
        return -errno;
    char path[32], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)c->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(buf) - 1 &&
           ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
        len += n > 0 ? (size_t)n : 0;
    close(fd);
    buf[len] = '\0';
    const char *hwm = strstr(buf, "\nVmHWM:");
    if (!hwm)
        return -ESRCH; /* no memory left to describe: exiting */
    run->max_rss_kb = strtoull(hwm + 7, NULL, 10);
    run->cpu_us = (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    return 0;
}

/* The run ended at its result with the child still alive: measure it, then
 * kill it and leave it unreaped (its teardown is not this request's wait).
 * Where it cannot be measured, wait for its death and take wait4's numbers. */
static void stop_at_result(struct child *c, struct run *run)
{
    int measured = measure_live(c, run);
    kill(c->pid, SIGKILL);
    if (measured)
        reap(c, run, 0);
    run->killed = !run->reaped;
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

/* How much of the channel there is to read. */
enum channel { CH_OPEN, CH_CLOSED, CH_EXITED };

/* Whether the temp dir holds more than cap: measured up to
 * DISK_MEASURE_TRIES times, and over when it cannot be measured at all. */
static bool disk_over(const struct child *c, long long cap)
{
    for (int i = 0; i < DISK_MEASURE_TRIES; i++) {
        long long used = tmpdir_usage(c->tmpdir, cap);
        if (used >= 0)
            return used > cap;
    }
    return true;
}

/* Read the channel in order (see the top of this file): is the run decided?
 * CH_EXITED: the child is dead and reaped, so all it wrote is in b.
 * CH_CLOSED: every copy of its write end is closed (the honest harness
 * closes its own after its frame), the child still alive. While the child
 * lives, only a clean START followed by a whole frame, a header that cannot
 * start an acceptable one, or half a frame on a closed channel decides;
 * everything else waits for the exit. Sets run->end and, for a result,
 * run->result. */
static bool read_channel(const struct child *c, const struct supervise_params *sp,
                         const struct capture *b, struct run *run, enum channel ch)
{
    struct ipc_hdr hdr;
    const char *payload;
    long used = ipc_frame_parse(b->data, b->len, sizeof(run->setup_error), &hdr, &payload);
    bool clean_start = used > 0 && hdr.kind == IPC_START && hdr.len == 0;
    if (ch != CH_EXITED && !clean_start)
        return false;
    if (used <= 0 || hdr.kind != IPC_START) {
        snprintf(run->setup_error, sizeof(run->setup_error), "child died before the script ran");
        run->end = RUN_SETUP_FAILED;
        return true;
    }
    if (hdr.len) {
        snprintf(run->setup_error, sizeof(run->setup_error), "%.*s", (int)hdr.len, payload);
        run->end = RUN_SETUP_FAILED;
        return true;
    }
    /* From here on, the script may have written it. */
    const char *rest = b->data + used;
    size_t left = b->len - used;
    used = ipc_frame_parse(rest, left, sp->result_cap, &hdr, &payload);
    if (used < 0) {
        /* A result over the cap, or a header no frame has: tampering. */
        run->end = hdr.kind == IPC_RESULT && hdr.len <= IPC_MAX_PAYLOAD ? RUN_OVERSIZE : RUN_RESULT;
        return true;
    }
    if (used == 0) { /* no whole frame */
        if (ch == CH_OPEN || (ch == CH_CLOSED && left == 0))
            return false; /* more may come, or the exit decides */
        if (ch == CH_CLOSED) {
            run->end = RUN_RESULT; /* half a frame, and no more can come: tampering */
            return true;
        }
        run->end = RUN_DIED; /* answered by how it ended */
        if (WIFEXITED(run->wait_status) && WEXITSTATUS(run->wait_status) == 0 && left > 0)
            run->end = RUN_RESULT; /* exit 0 after half a frame: tampering */
        return true;
    }
    /* The first whole frame ends the run, whatever follows it. */
    run->end = RUN_RESULT; /* a record, or tampering when run->result stays NULL */
    if (hdr.kind == IPC_RESULT) {
        run->result = malloc(hdr.len + 1);
        if (run->result) {
            memcpy(run->result, payload, hdr.len);
            run->result[hdr.len] = '\0';
            run->result_len = hdr.len;
        }
    }
    /* One last look at the disk, so a script that outran the 10 ms checks
     * gets no success out of it. */
    if (sp->disk_cap > 0 && disk_over(c, sp->disk_cap))
        run->end = RUN_DISK_FULL;
    return true;
}

/* The poll timeout left (ms), shortened to wake just past at (0: nothing
 * due). */
static int sooner(int left, double at, double now)
{
    return at && left > at - now ? (int)(at - now) + 1 : left;
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

    double begin = now_ms(), next_disk_check = begin + DISK_CHECK_MS;
    /* When to look next whether the script sleeps (IPC_ASLEEP), on the
     * acceptor's clock (from when it sent the job, which may have waited for
     * this child); 0 once said, or once it no longer counts anyway. */
    double sent = sp->sent_ms > 0 && sp->sent_ms < begin ? sp->sent_ms : begin;
    double asleep_at = 0;
    if (sp->asleep_fd > 0 && begin < sent + IPC_SHORT_MS)
        asleep_at = sent + IPC_ASLEEP_FIRST_MS > begin ? sent + IPC_ASLEEP_FIRST_MS : begin;
    /* When the child may first have used PRIORITY_LONG_CPU_MS of CPU; 0 once
     * it has been demoted. */
    double demote_at = begin + PRIORITY_LONG_CPU_MS;
    for (;;) {
        double now = now_ms();
        int left = (int)(deadline - now);
        if (left <= 0) {
            run->end = RUN_TIMEOUT;
            break;
        }
        if (demote_at && now >= demote_at) {
            int64_t used = priority_cpu_ms(c->pid);
            if (used < 0 || used >= PRIORITY_LONG_CPU_MS) {
                priority_demote(c->pid); /* best effort: it only yields less */
                demote_at = 0;
            } else {
                demote_at = now + (PRIORITY_LONG_CPU_MS - used); /* not before */
            }
        }
        left = sooner(left, demote_at, now);
        if (asleep_at && now >= asleep_at) {
            if (priority_asleep(c->pid) == 1) {
                /* If the channel is gone, polling it tells the loop. */
                ipc_write(sp->asleep_fd, IPC_ASLEEP, NULL, 0);
                asleep_at = 0;
            } else {
                asleep_at = now + IPC_ASLEEP_EVERY_MS;
                if (asleep_at >= sent + IPC_SHORT_MS)
                    asleep_at = 0;
            }
        }
        left = sooner(left, asleep_at, now);
        if (sp->disk_cap > 0 && now >= next_disk_check) {
            if (disk_over(c, sp->disk_cap)) {
                run->end = RUN_DISK_FULL;
                break;
            }
            /* A tree of many files takes the worker a while to measure: the
             * checks may take a tenth of its time at most, not all of it. */
            double spent = now_ms() - now;
            next_disk_check = now + (spent * 10 > DISK_CHECK_MS ? spent * 10 : DISK_CHECK_MS);
        }
        if (sp->disk_cap > 0)
            left = sooner(left, next_disk_check, now);
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
            reap_signal_drain(sp->sigchld_fd);
            gone = gone || reap(c, run, WNOHANG);
        }
        if (gone) {
            /* Dead, so all it wrote is in the pipe now. */
            if (pfd[P_RES].fd >= 0)
                drain(c->res_fd, &res);
            if (res.truncated)
                run->end = RUN_OVERSIZE;
            else
                read_channel(c, sp, &res, run, CH_EXITED);
            break;
        }
        if (pfd[P_RES].revents &&
            read_channel(c, sp, &res, run, pfd[P_RES].fd < 0 ? CH_CLOSED : CH_OPEN)) {
            if (run->end != RUN_OVERSIZE)
                stop_at_result(c, run);
            break;
        }
    }
    wipe_free(res.data);

    if (!run->reaped && !run->killed)
        kill_and_reap(c, run);
    /* Everything written before the death is in the pipes now. */
    if (pfd[P_OUT].fd >= 0)
        drain(c->out_fd, &run->out);
    if (pfd[P_ERR].fd >= 0)
        drain(c->err_fd, &run->err);
}

int supervise_ready(struct child *c, struct run *run)
{
    memset(run, 0, sizeof(*run));
    if (wait_ready(c, run)) {
        run->end = RUN_SETUP_FAILED;
        kill_and_reap(c, run);
        return -1;
    }
    c->ready = true;
    return 0;
}

void supervise_run(struct child *c, const char *request, size_t request_len,
                   const struct supervise_params *sp, struct run *run)
{
    if (!c->ready && supervise_ready(c, run))
        return;
    memset(run, 0, sizeof(*run));
    run->out.cap = sp->output_cap;
    run->err.cap = sp->output_cap;
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
    if (run->reaped)
        return;
    kill(c->pid, SIGKILL);
    /* The stats stay those taken at the result: its teardown is not the
     * script's. */
    reap_wait(c->pid, 0, &run->wait_status, NULL);
    run->reaped = true;
}

void supervise_settle(struct child *c, struct run *run, int sigchld_fd, int max_ms)
{
    double deadline = now_ms() + max_ms;
    while (run->killed && !run->reaped) {
        int status;
        if (reap_wait(c->pid, WNOHANG, &status, NULL) == c->pid) {
            run->wait_status = status; /* the stats stay those taken at the result */
            run->reaped = true;
            return;
        }
        int left = (int)(deadline - now_ms());
        struct pollfd pfd = {.fd = sigchld_fd, .events = POLLIN};
        /* The very SIGCHLD awaited interrupts the poll: look again. */
        if (left <= 0 || (poll(&pfd, 1, left) < 0 && errno != EINTR))
            return;
        reap_signal_drain(sigchld_fd);
    }
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
