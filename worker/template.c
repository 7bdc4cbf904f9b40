/* The template process. See pool.c for how it fits with the others. */
#include "worker/template.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embed/embed.h"
#include "common/ipc.h"
#include "worker/reap.h"
#include "worker/singlefork.h"
#include "worker/tmpdir.h"
#include "worker/worker.h"

static void on_sigchld(int sig)
{
    (void)sig; /* only to interrupt recvmsg */
}

/* Reap workers (and orphans of dead workers) and remove the workers' scratch
 * dirs (a worker in its own mount namespace cannot remove the host's copy of
 * it itself). */
static void reap_workers(bool block)
{
    pid_t pid;
    while ((pid = reap_wait(-1, block ? 0 : WNOHANG, NULL, NULL)) > 0) {
        char scratch[64];
        snprintf(scratch, sizeof(scratch), "/tmp/pyexec-%d", pid);
        tmpdir_remove(scratch);
    }
}

static _Noreturn void template_exit(int code)
{
    /* Workers exit once the acceptor closes their channels; wait for them so
     * the acceptor, which waits for us, leaves no process behind. */
    reap_workers(true);
    _exit(code);
}

_Noreturn void template_main(int ctl, const struct config *cfg)
{
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
     * interrupts the wait for the acceptor's next message, and we reap. */
    struct sigaction sa = {.sa_handler = on_sigchld};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL))
        _exit(1);
    /* Best effort: a sandbox that refuses it (gVisor) leaves orphans to PID 1
     * (the image runs tini there). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* SIGTERM goes to the acceptor, which drains first; the process group
     * (a terminal's ^C, a container runtime) must not kill us before it. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);

    if (embed_init(cfg->preload)) {
        fprintf(stderr,
                "pyexecd: the template could not start Python with numpy, pandas and "
                "the modules of --preload=%s\n",
                cfg->preload);
        _exit(1);
    }
    const char *versions = embed_versions_json();

    for (;;) {
        uint32_t slot;
        int chan;
        int r = ipc_recv_spawn(ctl, &slot, &chan);
        if (r == -EINTR) {
            reap_workers(false);
            continue;
        }
        if (r == -EPIPE)
            template_exit(0);
        if (r) {
            fprintf(stderr, "pyexecd: template: bad spawn request: %s\n", strerror(-r));
            template_exit(1);
        }
        pid_t pid = singlefork();
        if (pid == 0) {
            close(ctl);
            struct worker_args a = {.cfg = cfg,
                                    .chan = chan,
                                    .slot = slot,
                                    .template_pid = getppid(),
                                    .versions = versions};
            worker_main(&a);
        }
        if (pid < 0)
            fprintf(stderr, "pyexecd: template: fork: %s\n", strerror(errno));
        close(chan); /* a failed fork closes the channel: the acceptor sees EOF and retries */
        reap_workers(false);
    }
}
