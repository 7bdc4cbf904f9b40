/* The worker process. See pool.c for how it fits with the others.
 *
 * Memory hygiene: every child inherits the worker's memory. So no request's
 * script, input, output, result or numbers may be left readable in the worker
 * when it forks (common/wipe.h): every buffer is freed through wipe_free
 * (jansson's too), the request frame as soon as the child has it, and the next
 * child is forked only once the reply is out, serve() has returned and the
 * stack below the loop is wiped. */
#include "worker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "seccomp/confine.h"
#include "seccomp/namespaces.h"
#include "seccomp/privdrop.h"
#include "seccomp/status.h"
#include "worker/child.h"
#include "worker/dying.h"
#include "worker/files.h"
#include "worker/forkheap.h"
#include "worker/reap.h"
#include "common/ipc.h"
#include "worker/reply.h"
#include "worker/supervise.h"
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

/* Threads one script may run, its main thread included (RLIMIT_NPROC). */
#define CHILD_MAX_THREADS 64

/* How long, after its reply, a child killed at its result may take to die
 * before the next fork (supervise_settle); a few ms when the CPUs are free. */
#define SETTLE_MS 50

struct worker {
    const struct config *cfg;
    int chan;
    int sigchld[2];
    struct child_params params;
    struct child spare;
    bool have_spare;
    uint32_t fork_us;              /* the last spare's fork, for the acceptor's metrics */
    struct dying dying;            /* what is left of finished requests (dying.h) */
    char scratch[TMPDIR_PATH_MAX]; /* where the children's temp dirs are made */
    char sandbox[512];             /* sandbox_status_json, for the acceptor's /health */
    long long disk_cap;            /* > 0: no tmpfs caps the temp dirs, supervise does */
};

static uint64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void spawn_spare(struct worker *w)
{
    uint64_t start = monotonic_us();
    int r = child_spawn(&w->params, dying_tmpdir_base(&w->dying, w->scratch), &w->spare);
    w->fork_us = monotonic_us() - start;
    w->have_spare = r == 0;
    if (r) {
        dying_tmpdir_failed(&w->dying);
        fprintf(stderr, "pyexecd: worker %d: cannot fork a child: %s\n", getpid(), strerror(-r));
    }
}

/* The child answered; kill it (its threads may linger) and reap it later. */
static void retire(struct worker *w, struct child *c, const struct run *run)
{
    child_close_fds(c);
    if (run->reaped) {
        dying_gone(&w->dying, c);
        return;
    }
    kill(c->pid, SIGKILL);
    dying_add(&w->dying, c);
}

/* Between requests: fork the next child, wait for it to be ready, and tell
 * the acceptor (IPC_SPARE), which prefers workers whose spare is ready
 * (server/queue.c says in what order). A spare that fails its set-up is not
 * announced, and the next request forks again. 0, or -errno when the
 * channel is gone or a temp dir cannot be removed. */
static int prepare_next(struct worker *w)
{
    spawn_spare(w);
    dying_unmount(&w->dying); /* while the spare sets itself up (dying.h) */
    if (w->dying.broken)
        return -EIO; /* exit, to be replaced */
    if (!w->have_spare)
        return 0;
    struct run run;
    if (supervise_ready(&w->spare, &run)) {
        fprintf(stderr, "pyexecd: worker %d: %s\n", getpid(), run.setup_error);
        retire(w, &w->spare, &run);
        run_free(&run);
        w->have_spare = false;
        return 0;
    }
    return ipc_write(w->chan, IPC_SPARE, NULL, 0);
}

static int send_reply(struct worker *w, const struct reply *rep)
{
    struct ipc_reply hdr = {.status = rep->status,
                            .type_len = strlen(rep->type),
                            .fork_us = w->fork_us,
                            .files_bytes =
                                rep->files_bytes > UINT32_MAX ? UINT32_MAX : rep->files_bytes};
    struct iovec parts[3] = {
        {&hdr, sizeof(hdr)}, {(void *)rep->type, hdr.type_len}, {rep->body, rep->len}};
    return ipc_write(w->chan, IPC_REPLY, parts, 3);
}

/* The files the script left in out/, read once the child is dead: a thread
 * of the script can no longer change them while they are read. */
static void collect_out_files(struct worker *w, struct child *c, struct run *run,
                              struct files_out *files)
{
    memset(files, 0, sizeof(*files));
    if (!files_out_pending(c->tmpdir))
        return; /* the common case costs one directory read, no wait */
    supervise_finish(c, run);
    if (files_collect(c->tmpdir, w->params.uid, w->params.gid,
                      (size_t)w->cfg->output_files_kb << 10, files)) {
        files_out_free(files);
        files->truncated = true;
    }
}

/* A child dead of SIGKILL that the worker did not send (a timeout, cancel or
 * cap ends the run otherwise) and that the CPU limit does not explain was
 * killed by the kernel: if its OOM kill count rose meanwhile, for memory. */
static void note_oom_kill(const struct child *c, struct run *run)
{
    if (run->end != RUN_DIED || !WIFSIGNALED(run->wait_status) ||
        WTERMSIG(run->wait_status) != SIGKILL || c->oom_kills < 0)
        return;
    run->oom_killed = child_oom_kills(true) > c->oom_kills;
}

/* Run one request frame (consumed: wiped and freed) and send its reply. Never
 * inlined: its locals (limits, lengths) must die below the loop's frame, where
 * wipe_stack reaches, not live on in it. */
static __attribute__((noinline)) int serve(struct worker *w, char *frame, size_t len)
{
    struct ipc_request rq;
    memcpy(&rq, frame, sizeof(rq));

    struct supervise_params sp = {
        .timeout_ms = rq.timeout_ms,
        .output_cap = (size_t)w->cfg->output_kb << 10,
        .result_cap = w->params.result_cap + REPLY_ERROR_MAX,
        .disk_cap = w->disk_cap,
        .cancel_fd = w->chan,
        .asleep_fd = w->chan,
        .sent_ms = rq.sent_ns / 1e6,
        .sigchld_fd = w->sigchld[0],
    };
    struct run run;
    struct child c;
    /* A spare that failed its set-up is replaced once before giving up. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!w->have_spare) {
            spawn_spare(w);
            dying_unmount(&w->dying); /* a failed spare's, before the script runs */
        }
        /* Never a script beside a temp dir that stayed: answered as a
         * set-up failure, and the worker is replaced after the reply. */
        if (!w->have_spare || w->dying.broken) {
            memset(&run, 0, sizeof(run));
            run.end = RUN_SETUP_FAILED;
            snprintf(run.setup_error, sizeof(run.setup_error), "%s",
                     w->dying.broken ? "a temp dir could not be removed" : "fork failed");
            break;
        }
        c = w->spare;
        w->have_spare = false;
        supervise_run(&c, frame, len, &sp, &run);
        note_oom_kill(&c, &run);
        if (run.end != RUN_SETUP_FAILED)
            break;
        fprintf(stderr, "pyexecd: worker %d: %s\n", getpid(), run.setup_error);
        retire(w, &c, &run);
        run_free(&run);
    }
    ipc_free(frame, len); /* the child has its copy; ours goes before the next fork */
    struct files_out files = {0};
    if (run.end != RUN_SETUP_FAILED)
        collect_out_files(w, &c, &run, &files);
    run.files = &files;

    uint64_t cpu_ms =
        w->params.limits.cpu_ms < rq.timeout_ms ? w->params.limits.cpu_ms : rq.timeout_ms;
    struct reply_limits lim = {.timeout_ms = rq.timeout_ms,
                               .cpu_ms = cpu_ms,
                               .result_cap = w->params.result_cap,
                               .disk_kb = w->cfg->tmp_kb};
    struct reply rep;
    int r = reply_build(&run, &lim, &rep);
    if (!r)
        r = send_reply(w, &rep);
    wipe_free(rep.body);
    files_out_free(&files);
    if (run.end != RUN_SETUP_FAILED) {
        supervise_settle(&c, &run, w->sigchld[0], SETTLE_MS);
        retire(w, &c, &run);
    }
    run_free(&run);
    return r;
}

static int send_ready(struct worker *w, const char *versions)
{
    char *msg;
    int n = asprintf(&msg, "{\"pid\":%d,\"versions\":%s,\"sandbox\":%s}", getpid(), versions,
                     w->sandbox);
    if (n < 0)
        return -ENOMEM;
    struct iovec part = {msg, n};
    int r = ipc_write(w->chan, IPC_READY, &part, 1);
    wipe_free(msg);
    return r;
}

/* Block until the acceptor sends something, reaping dead children meanwhile. */
static int wait_for_frame(struct worker *w)
{
    struct pollfd pfd[2] = {{.fd = w->chan, .events = POLLIN},
                            {.fd = w->sigchld[0], .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            return -errno;
        if (pfd[1].revents) {
            reap_signal_drain(w->sigchld[0]);
            dying_reap(&w->dying, false);
            if (w->dying.broken)
                return -EIO; /* exit, to be replaced */
        }
        if (pfd[0].revents)
            return 0;
    }
}

/* Where the worker may mount (a mount namespace of its own), each temp dir is
 * a tmpfs of its own, capped in bytes and files by the kernel and gone at
 * once when unmounted: one is tried here. Elsewhere supervise measures the
 * temp dir against the cap. */
static void choose_tmpdir_cap(struct worker *w, int ns)
{
    size_t kb = w->cfg->tmp_kb ? (size_t)w->cfg->tmp_kb : 4; /* tmpfs size=0: unlimited */
    char probe[TMPDIR_PATH_MAX];
    if ((ns & (NAMESPACES_SCRATCH_TMPFS | NAMESPACES_MOUNT_RO)) &&
        !tmpdir_create(probe, w->scratch, w->params.uid, w->params.gid, kb) &&
        !tmpdir_remove(probe)) {
        w->params.tmpfs_kb = kb;
        w->dying.tmpfs = true;
        return;
    }
    /* A cap of 0 KiB: one byte, so even a directory is over it. Otherwise
     * the cap is what the script may write plus one directory's blocks: the
     * out/ directory every temp dir starts with is the service's, and a file
     * written up to RLIMIT_FSIZE (the same cap) must meet EFBIG, not a kill. */
    struct stat st;
    long long dir_bytes = stat(w->scratch, &st) ? 4096 : (long long)st.st_blocks * 512;
    w->disk_cap = w->cfg->tmp_kb ? ((long long)w->cfg->tmp_kb << 10) + dir_bytes : 1;
}

static int worker_setup(struct worker *w, const struct worker_args *a)
{
    const struct config *cfg = a->cfg;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != a->template_pid)
        return -ESRCH;
    if (prctl(PR_SET_DUMPABLE, 0)) /* inherited from the template; said again: see template.c */
        return -errno;
    json_set_alloc_funcs(malloc, wipe_free);

    int r = reap_signal_pipe(w->sigchld);
    if (r)
        return r;

    w->params = (struct child_params){
        .uid = (uid_t)-1,
        .gid = (gid_t)-1,
        .result_cap = (size_t)cfg->result_kb << 10,
        /* Children write their oom_score_adj through it (common/priority.h). */
        .proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC),
    };
    sandbox_limits(cfg, &w->params.limits);
    if (w->params.proc_fd < 0)
        w->params.proc_fd = 0; /* none: children use /proc as mounted */
    if (geteuid() == 0) {
        r = privdrop_resolve(cfg->user, &w->params.uid, &w->params.gid);
        if (r)
            return r;
        /* Each worker's children get their own uid and gid (--user, then one
         * less per worker): two requests running at once never share an
         * identity, so even where Landlock and mount namespaces are missing
         * (gVisor) neither can open the other's temp files or signal it. */
        if (a->slot >= w->params.uid || a->slot >= w->params.gid)
            return -EINVAL;
        w->params.uid -= a->slot;
        w->params.gid -= a->slot;
        /* That uid is this worker's children's alone, so RLIMIT_NPROC counts
         * the running script's threads (and, for a moment, those of the one
         * before it, still dying). Run as a normal user it would count every
         * process of that user: set then only inside a user namespace. */
        w->params.limits.nproc = CHILD_MAX_THREADS;
    }

    r = policy_compile(&w->params.policy); /* each child loads it in microseconds */
    if (r)
        return r;

    /* Entered once here, so every child inherits them at no cost per request. */
    if (snprintf(w->scratch, sizeof(w->scratch), "%s", a->scratch) >= (int)sizeof(w->scratch))
        return -ENAMETOOLONG;
    int ns = 0, user = cfg->namespaces && geteuid() != 0 ? namespaces_enter_user() : 0;
    if (user < 0)
        return user;
    if (geteuid() != 0 && !user)
        return -EPERM; /* the acceptor checked: a host that changed its mind since */
    if (user) {
        ns = NAMESPACES_USER;
        /* RLIMIT_NPROC now counts the tasks of our uid inside our user
         * namespace only: this worker (one) and its children. */
        w->params.limits.nproc = CHILD_MAX_THREADS + 1;
    }
    if (cfg->namespaces) {
        int granted = namespaces_enter(w->scratch, cfg->tmp_kb);
        if (granted < 0)
            return granted;
        ns |= granted;
    }
    /* Dropped here once rather than by every child (privdrop.h); where it
     * cannot be, each child still does it. */
    privdrop_bounding_set();
    /* The worker's cwd shows where its children's temp dirs are (operators,
     * tests: /proc/PID/cwd), as the worker sees it. */
    if (chdir(w->scratch))
        return -errno;
    choose_tmpdir_cap(w, ns);
    struct sandbox_status st;
    sandbox_status_probe(&st, w->params.uid, w->params.gid, ns);
    if (sandbox_status_json(&st, w->sandbox, sizeof(w->sandbox)) < 0)
        return -ENOSPC;
#ifdef PYEXEC_UNCONFINED
    snprintf(w->sandbox, sizeof(w->sandbox), "{\"confined\":false}");
#endif
    child_note_signals(&w->params); /* its dispositions are final by now */
    return send_ready(w, a->versions);
}

_Noreturn void worker_main(const struct worker_args *a)
{
    struct worker w = {.cfg = a->cfg, .chan = a->chan};
    int r = worker_setup(&w, a);
    if (r) {
        fprintf(stderr, "pyexecd: worker %d: set-up failed: %s\n", getpid(), strerror(-r));
        _exit(1);
    }
    forkheap_settle(); /* after set-up's own allocations, before any fork */
    r = prepare_next(&w);

    while (!r) {
        struct ipc_hdr hdr;
        char *frame;
        if (wait_for_frame(&w))
            break;
        r = ipc_read(w.chan, sizeof(struct ipc_request) + IPC_MAX_REQUEST, &hdr, &frame);
        if (r)
            break; /* the acceptor closed the channel: shut down */
        if (hdr.kind == IPC_REQUEST && hdr.len >= sizeof(struct ipc_request)) {
            dying_reap(&w.dying, false); /* never waits: a dying child is reaped later */
            if (serve(&w, frame, hdr.len) || w.dying.broken)
                break;
            /* The next spare is forked only now: after the reply, so the fork
             * (about a millisecond of page-table copying) is never on this
             * request's path, and after every buffer and stack frame of this
             * request was wiped, so the new child inherits none of it. Until
             * IPC_SPARE says it is done, the acceptor prefers other workers. */
            explicit_bzero(&hdr, sizeof(hdr));
            wipe_stack();
            r = prepare_next(&w);
        } else {
            ipc_free(frame, hdr.len); /* a CANCEL for a request already answered */
        }
    }
    if (w.have_spare) {
        kill(w.spare.pid, SIGKILL);
        child_close_fds(&w.spare);
        dying_add(&w.dying, &w.spare);
    }
    dying_reap(&w.dying, true);
    _exit(0); /* the template removes the scratch dir */
}
