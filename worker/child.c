/* The per-request child, from fork to _exit.
 *
 * Set-up is a checklist, one function a step, in this order:
 *   1. child_reset_signals   the worker's handlers, ignored signals and mask must not leak
 *                            in; die with the worker
 *   2. child_bind_fds        pipes to fds 0-3, the worker's /proc to fd 4, every other
 *                            inherited fd closed (listening socket, other children's pipes,
 *                            the worker's channel); then the memfd that becomes fd 0 once
 *                            the request is read (files_stdin_open: seccomp forbids
 *                            memfd_create later)
 *   3. child_clean_env       environment reduced to a short allowlist; RNGs re-seeded
 *   4. child_enter_tmpdir    the private temp dir becomes cwd and TMPDIR
 *   5. sandbox_confine       seccomp/confine.c, the same call the sandbox tests make:
 *                            CPU priority and OOM score (closing fd 4), rlimits, uid/gid
 *                            drop, no_new_privs, Landlock, seccomp last
 * Then READY on fd 3, the request from fd 0, the request's own limits, its
 * stdin as the new fd 0, its input files and an empty out/ in the temp dir
 * (files.c), START on fd 3, and the script. A failure before READY is said as READY's payload,
 * one between READY and START as START's; either way the worker answers 500
 * internal. Everything after the empty START may be the script's own doing
 * (see "The result channel" in supervise.c): the worker believes none of it
 * but the script's outcome, from the first whole frame after START. */
#include "worker/child.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/priority.h"
#include "embed/embed.h"
#include "seccomp/confine.h"
#include "common/ipc.h"
#include "common/jsontext.h"
#include "worker/files.h"
#include "worker/singlefork.h"
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

enum { FD_REQUEST = 0, FD_STDOUT = 1, FD_STDERR = 2, FD_RESULT = 3, FD_PROC = 4 };

/* A set-up failure, said as the payload of READY (before the request) or
 * START (after it). The exit code means nothing to the worker: it reads the
 * message. */
static _Noreturn void child_fail(uint32_t kind, const char *step, int err)
{
    char msg[160];
    int n = snprintf(msg, sizeof(msg), "child set-up failed at %s: %s", step, strerror(-err));
    struct iovec part = {.iov_base = msg, .iov_len = n};
    ipc_write(FD_RESULT, kind, &part, 1);
    _exit(127);
}

static int child_reset_signals(pid_t worker, const sigset_t *handled)
{
    sigset_t all;
    sigemptyset(&all);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(handled, sig) == 1)
            signal(sig, SIG_DFL);
    /* A write past RLIMIT_FSIZE or to a closed pipe fails with an error
     * Python can raise, instead of killing the child. */
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_SETMASK, &all, NULL))
        return -errno;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL))
        return -errno;
    return getppid() == worker ? 0 : -ESRCH;
}

void child_note_signals(struct child_params *p)
{
    sigemptyset(&p->handled);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL)
            sigaddset(&p->handled, sig);
    }
}

/* Close every fd >= lowest. close_range where the kernel has it; gVisor's may
 * refuse, so then walk /proc/self/fd (collected first: closing while reading
 * the directory would skip entries). */
static int close_from(int lowest)
{
    if (!close_range(lowest, ~0U, 0))
        return 0;
    int fds[1024], n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024) {
        int fd = atoi(e->d_name);
        if (fd >= lowest && fd != dirfd(d))
            fds[n++] = fd;
    }
    bool complete = e == NULL;
    closedir(d);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return complete ? 0 : close_from(lowest); /* more than 1024: another pass */
}

/* Move the four pipe ends to fds 0-3 and the worker's /proc (if it has one,
 * for sandbox_confine's first step, which closes it) to FD_PROC; close
 * everything else. */
static int child_bind_fds(int req, int out, int err, int res, int proc)
{
    /* Lift them above FD_PROC first so no dup2 overwrites another. */
    int fds[5] = {req, out, err, res, proc};
    int n = proc > 0 ? 5 : 4;
    for (int i = 0; i < n; i++) {
        fds[i] = fcntl(fds[i], F_DUPFD, 10);
        if (fds[i] < 0)
            return -errno;
    }
    for (int i = 0; i < n; i++)
        if (dup2(fds[i], i) < 0)
            return -errno;
    return close_from(n);
}

static int child_clean_env(const char *tmpdir)
{
    return embed_child_prepare(tmpdir) ? -EIO : 0;
}

static int child_enter_tmpdir(const char *tmpdir)
{
    return chdir(tmpdir) ? -errno : 0;
}

#define STEP(call, name)                                                                           \
    do {                                                                                           \
        int r_ = (call);                                                                           \
        if (r_ < 0)                                                                                \
            child_fail(IPC_READY, name, r_);                                                       \
    } while (0)

/* The inputs could not be placed: the outcome the script would otherwise
 * have produced, saying why. */
static char *inputs_failed(const char *why, size_t *len)
{
    char msg[320];
    snprintf(msg, sizeof(msg), "The request's files could not be prepared: %s.", why);
    size_t n;
    char *clean = utf8_sanitize(msg, strlen(msg), &n);
    json_t *o = clean ? json_pack("{s:s,s:s}", "type", "exception", "error", clean) : NULL;
    wipe_free(clean);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text)
        *len = strlen(text);
    return text;
}

static _Noreturn void child_run_request(const struct child_params *p,
                                        const struct rlimits_base *base, int stdin_fd)
{
    struct ipc_hdr hdr;
    char *payload;
    size_t max = sizeof(struct ipc_request) + IPC_MAX_REQUEST;
    if (ipc_read(FD_REQUEST, max, &hdr, &payload) || hdr.kind != IPC_REQUEST ||
        hdr.len < sizeof(struct ipc_request))
        _exit(0); /* the worker dropped its spare */

    struct ipc_request rq;
    struct ipc_request_data d;
    if (ipc_request_split(payload, hdr.len, &rq, &d))
        child_fail(IPC_START, "request", -EPROTO);
    const char *script = d.script;
    const char *input = d.input;

    uint64_t cpu_ms = p->limits.cpu_ms < rq.timeout_ms ? p->limits.cpu_ms : rq.timeout_ms;
    int r = rlimits_lower(base, cpu_ms, rq.memory_mb);
    if (r)
        child_fail(IPC_START, "request limits", r);

    /* Written as the sandbox uid, confined, before the script can touch the
     * directory; the frame (and with it the data) is wiped just below. */
    char why[256] = "";
    int placed = files_stdin_fill(stdin_fd, d.stdin_data, d.stdin_len);
    if (placed)
        snprintf(why, sizeof(why), "stdin could not be written: %s", strerror(-placed));
    else
        placed = files_write_inputs(d.files, d.files_len, why, sizeof(why));

    /* The script gets its own copy; the frame itself is wiped before it runs.
     * The copies are made under the request's own memory limit: a script and
     * input that do not fit it are the request's memory_limit, never a fault
     * of the service (the frame itself was read under the server's cap). */
    char *source = strndup(script, rq.script_len);
    char *input_json = rq.input_len ? strndup(input, rq.input_len) : NULL;
    ipc_free(payload, hdr.len);
    bool copied = source && (!rq.input_len || input_json);

    /* The last word that is surely the service's. */
    if (ipc_write(FD_RESULT, IPC_START, NULL, 0))
        _exit(0);
    size_t len = 0;
    char *outcome =
        !copied  ? NULL
        : placed ? inputs_failed(why, &len)
                 : embed_run(source, rq.script_len, input_json, rq.input_len, p->result_cap, &len);
    embed_flush_stdio();
    struct iovec part = {outcome, len};
    if (!outcome) /* no memory left to describe anything */
        part = (struct iovec){(void *)embed_memory_limit_json, strlen(embed_memory_limit_json)};
    /* The last act: the worker answers from this frame, measures the child,
     * kills it and lets it tear down after the reply (supervise.c). */
    if (ipc_write(FD_RESULT, IPC_RESULT, &part, 1) == 0) {
        close(FD_RESULT); /* no more frames: half of one written before is all there is */
        for (;;)
            pause();
    }
    _exit(0);
}

static _Noreturn void child_main(const struct child_params *p, pid_t worker, int fds[4],
                                 const char *tmpdir)
{
    struct rlimits_base base;
    int stdin_fd;

    STEP(child_reset_signals(worker, &p->handled), "signals");
    STEP(child_bind_fds(fds[0], fds[1], fds[2], fds[3], p->proc_fd), "fds");
    STEP(stdin_fd = files_stdin_open(), "stdin");
    STEP(child_clean_env(tmpdir), "environment");
    STEP(child_enter_tmpdir(tmpdir), "tmpdir");
    struct confine_spec confine = {
        .limits = &p->limits,
        .uid = p->uid,
        .gid = p->gid,
        .tmpdir = tmpdir,
        .policy = &p->policy,
        .proc_fd = p->proc_fd > 0 ? FD_PROC : 0,
#ifdef PYEXEC_UNCONFINED /* bench/'s pyexecd-unconfined: what confinement costs */
        .rlimits_only = true,
#endif
    };
    const char *step = "confinement";
    STEP(sandbox_confine(&confine, &base, &step), step);

    if (ipc_write(FD_RESULT, IPC_READY, NULL, 0))
        _exit(0);
    child_run_request(p, &base, stdin_fd);
}

void child_close_fds(struct child *c)
{
    int *fds[] = {&c->req_fd, &c->out_fd, &c->err_fd, &c->res_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

int64_t child_oom_kills(bool fresh)
{
    static bool known;
    static int64_t kills;
    static uint64_t read_at_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (fresh || !known || now_ms - read_at_ms >= 1000) {
        kills = priority_oom_kills();
        read_at_ms = now_ms;
        known = true;
    }
    return kills;
}

int child_spawn(const struct child_params *p, const char *base, struct child *c)
{
    /* pipes[i][0] read end, [1] write end; the child gets req's read end and
     * the write ends of out, err and res. */
    int pipes[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    int r = tmpdir_create(c->tmpdir, base, p->uid, p->gid, p->tmpfs_kb);
    if (r)
        return r;
    for (int i = 0; i < 4; i++) {
        if (pipe2(pipes[i], O_CLOEXEC)) {
            r = -errno;
            goto fail;
        }
    }

    c->oom_kills = child_oom_kills(false);
    pid_t worker = getpid();
    pid_t pid = singlefork();
    if (pid < 0) {
        r = -errno;
        goto fail;
    }
    if (pid == 0) {
        int fds[4] = {pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]};
        child_main(p, worker, fds, c->tmpdir);
    }

    close(pipes[0][0]);
    close(pipes[1][1]);
    close(pipes[2][1]);
    close(pipes[3][1]);
    c->pid = pid;
    c->req_fd = pipes[0][1];
    c->out_fd = pipes[1][0];
    c->err_fd = pipes[2][0];
    c->res_fd = pipes[3][0];
    c->ready = false;
    for (int i = 1; i < 4; i++)
        fcntl(pipes[i][0], F_SETFL, O_NONBLOCK);
    return 0;

fail:
    for (int i = 0; i < 4; i++) {
        if (pipes[i][0] >= 0)
            close(pipes[i][0]);
        if (pipes[i][1] >= 0)
            close(pipes[i][1]);
    }
    tmpdir_remove(c->tmpdir);
    return r;
}
