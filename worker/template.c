/* The template process. See pool.c for how it fits with the others. */
#include "worker/template.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embed/embed.h"
#include "common/ipc.h"
#include "worker/reap.h"
#include "worker/singlefork.h"
#include "worker/tmpdir.h"
#include "worker/worker.h"
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

/* SIGCHLD as a pipe (reap.h) that the loop in template_main polls with ctl:
 * a SIGCHLD between a reap and the wait for the next spawn request still
 * wakes that wait. */
static int sigchld_pipe[2] = {-1, -1};

/* Each live worker's scratch dir: made here with a random name (after the
 * acceptor's prefix) before the fork, removed here once the worker is reaped
 * (a worker in its own mount namespace cannot remove the host's copy
 * itself). Only these are removed: never a path guessed from a pid. A
 * template killed before it could remove them leaves them to the acceptor
 * (server/template_ctl.c), which removes what carries its prefix. */
#define MAX_SCRATCH 512 /* workers, and replacements forked before the old is reaped */

static struct {
    pid_t pid;
    char path[TMPDIR_PATH_MAX];
} scratch[MAX_SCRATCH];

static const char *scratch_prefix;

static int scratch_make(char path[TMPDIR_PATH_MAX])
{
    if (snprintf(path, TMPDIR_PATH_MAX, "%sXXXXXX", scratch_prefix) >= TMPDIR_PATH_MAX)
        return -ENAMETOOLONG;
    if (!mkdtemp(path))
        return -errno;
    if (chmod(path, 0711)) { /* the children, under other uids, pass through it */
        int r = -errno;
        rmdir(path);
        return r;
    }
    return 0;
}

static void scratch_remove(pid_t pid)
{
    for (int i = 0; i < MAX_SCRATCH; i++) {
        if (scratch[i].pid != pid)
            continue;
        int r = tmpdir_remove(scratch[i].path);
        if (r)
            fprintf(stderr, "pyexecd: template: cannot remove %s: %s\n", scratch[i].path,
                    strerror(-r));
        scratch[i].pid = 0;
        return;
    }
}

/* Reap workers (and orphans of dead workers) and remove the workers' scratch
 * dirs. */
static void reap_workers(bool block)
{
    pid_t pid;
    while ((pid = reap_wait(-1, block ? 0 : WNOHANG, NULL, NULL)) > 0)
        scratch_remove(pid);
}

/* Fork a worker on chan with a fresh scratch dir. */
static void spawn_worker(int ctl, int chan, uint32_t slot, const struct config *cfg,
                         const char *versions)
{
    int free_slot = -1;
    for (int i = 0; i < MAX_SCRATCH && free_slot < 0; i++)
        if (!scratch[i].pid)
            free_slot = i;
    int r = free_slot < 0 ? -EMFILE : scratch_make(scratch[free_slot].path);
    if (r) {
        fprintf(stderr, "pyexecd: template: no scratch dir for a worker: %s\n", strerror(-r));
        return; /* the channel closes: the acceptor sees EOF and retries */
    }
    pid_t pid = singlefork();
    if (pid == 0) {
        close(ctl);
        close(sigchld_pipe[0]);
        close(sigchld_pipe[1]);
        struct worker_args a = {.cfg = cfg,
                                .chan = chan,
                                .slot = slot,
                                .template_pid = getppid(),
                                .versions = versions,
                                .scratch = scratch[free_slot].path};
        worker_main(&a);
    }
    if (pid < 0) {
        fprintf(stderr, "pyexecd: template: fork: %s\n", strerror(errno));
        rmdir(scratch[free_slot].path);
        return;
    }
    scratch[free_slot].pid = pid;
}

static _Noreturn void template_exit(int code)
{
    /* Workers exit once the acceptor closes their channels; wait for them so
     * the acceptor, which waits for us, leaves no process behind. */
    reap_workers(true);
    _exit(code);
}

_Noreturn void template_main(int ctl, const struct config *cfg, const char *prefix)
{
    scratch_prefix = prefix;
    pid_t acceptor = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != acceptor)
        _exit(1);
    /* Not dumpable, nor are the workers forked from us: their /proc entries
     * (fd, maps, environ, mem) belong to root and need ptrace rights over
     * them. On Linux the uid drop and Landlock close those already; gVisor,
     * which has no Landlock and lets other uids read them, honours this. */
    if (prctl(PR_SET_DUMPABLE, 0))
        _exit(1);
    signal(SIGPIPE, SIG_IGN);
    /* Children of a worker that died come to us (not to PID 1, which in a
     * container may be pyexecd's acceptor, or nothing that reaps): SIGCHLD
     * wakes the wait for the acceptor's next message, and we reap. */
    if (reap_signal_pipe(sigchld_pipe))
        _exit(1);
    /* Best effort: a sandbox that refuses it (gVisor) leaves orphans to PID 1
     * (the image runs tini there). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* SIGTERM goes to the acceptor, which drains first; the process group
     * (a terminal's ^C, a container runtime) must not kill us before it. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);

    if (embed_init(cfg->preload, prefix)) {
        fprintf(stderr,
                "pyexecd: the template could not start Python with numpy, pandas and "
                "the modules of --preload=%s\n",
                cfg->preload);
        _exit(1);
    }
    const char *versions = embed_versions_json();

    for (;;) {
        reap_workers(false);
        struct pollfd fds[2] = {{.fd = ctl, .events = POLLIN},
                                {.fd = sigchld_pipe[0], .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "pyexecd: template: poll: %s\n", strerror(errno));
            template_exit(1);
        }
        reap_signal_drain(sigchld_pipe[0]);
        if (!fds[0].revents)
            continue;
        uint32_t slot;
        int chan;
        int r = ipc_recv_spawn(ctl, &slot, &chan);
        if (r == -EINTR)
            continue;
        if (r == -EPIPE)
            template_exit(0);
        if (r) {
            fprintf(stderr, "pyexecd: template: bad spawn request: %s\n", strerror(-r));
            template_exit(1);
        }
        spawn_worker(ctl, chan, slot, cfg, versions);
        close(chan); /* a failed fork closes the channel: the acceptor sees EOF and retries */
    }
}
