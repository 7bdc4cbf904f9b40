/* The template's life cycle, from the acceptor. See template_ctl.h; the
 * drawing is in pool.c. */
#include "server/template_ctl.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/channel.h"
#include "server/env.h"
#include "worker/tmpdir.h"

#define TEMPLATE_RESTART_MS 1000
#define MAX_TEMPLATE_ARGS   48

static void on_restart_due(uv_timer_t *t);

/* Where the workers' scratch dirs go. */
#define SCRATCH_DIR "/tmp"

int template_name_scratch(struct pool *p)
{
    uint64_t id = 0;
    int r = uv_random(NULL, NULL, &id, sizeof(id), 0, NULL);
    if (r)
        return r; /* a prefix two services could share would sweep each other's dirs */
    snprintf(p->scratch_prefix, sizeof(p->scratch_prefix), SCRATCH_DIR "/pyexec-%016llx-",
             (unsigned long long)id);
    snprintf(p->scratch_arg, sizeof(p->scratch_arg), "--template-scratch=%s", p->scratch_prefix);
    return 0;
}

void template_sweep_scratch(const struct pool *p)
{
    const char *prefix = p->scratch_prefix + strlen(SCRATCH_DIR "/");
    DIR *d = opendir(SCRATCH_DIR);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)))
            continue;
        char path[TMPDIR_PATH_MAX];
        if (snprintf(path, sizeof(path), SCRATCH_DIR "/%s", e->d_name) >= (int)sizeof(path))
            continue;                /* not one of ours: those fit */
        int r = tmpdir_remove(path); /* never follows a link; 0 when already gone */
        if (r)
            fprintf(stderr, "pyexecd: cannot remove %s: %s\n", path, strerror(-r));
    }
    closedir(d);
}

/* A dead template's workers are dead too (PR_SET_PDEATHSIG), but their
 * scratch dirs stay when the template did not live to remove them (SIGKILL,
 * a crash): removed off the loop, the next template starts once they are. */
static void sweep_work(uv_work_t *w)
{
    template_sweep_scratch(w->data);
}

static void sweep_done(uv_work_t *w, int status)
{
    (void)status;
    struct pool *p = w->data;
    p->sweeping = false;
    if (!p->stopping) /* else pool_finish ran or will, and nothing is left */
        uv_timer_start(&p->restart_timer, on_restart_due, TEMPLATE_RESTART_MS, 0);
}

static void on_template_exit(uv_process_t *proc, int64_t status, int sig)
{
    struct pool *p = proc->data;
    p->template_up = false;
    uv_close((uv_handle_t *)proc, NULL);
    if (p->ctl >= 0) {
        close(p->ctl);
        p->ctl = -1;
    }
    if (p->stopping) /* its workers died with it: answer their jobs, then finish */
        return pool_stop_now(p);
    fprintf(stderr, "pyexecd: the template exited (status %lld, signal %d)\n", (long long)status,
            sig);
    if (!p->ever_ready && p->fatal_cb) {
        template_sweep_scratch(p); /* the service ends here */
        return p->fatal_cb(p->cb_data);
    }
    /* Its workers die with it; their channels report EOF. */
    p->sweep.data = p;
    p->sweeping = !uv_queue_work(p->loop, &p->sweep, sweep_work, sweep_done);
    if (!p->sweeping)
        uv_timer_start(&p->restart_timer, on_restart_due, TEMPLATE_RESTART_MS, 0);
}

static int template_argv(struct pool *p, char **argv, int max)
{
    int n = 0;
    argv[n++] = "pyexecd";
    argv[n++] = "--template-fd=3";
    argv[n++] = p->scratch_arg;
    int r = config_to_flags(p->cfg, argv + n, max - n - 1);
    if (r < 0)
        return r;
    n += r;
    argv[n] = NULL;
    return n;
}

int template_start(struct pool *p)
{
    int sv[2];
    char *argv[MAX_TEMPLATE_ARGS] = {0};
    char *env[ENV_TEMPLATE_MAX];
    char store[ENV_TEMPLATE_MAX][ENV_ENTRY_MAX];
    int r;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
        return -errno;
    r = template_argv(p, argv, MAX_TEMPLATE_ARGS);
    if (r < 0)
        goto fail;
    env_template(env, store);

    uv_stdio_container_t stdio[4] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
        {.flags = UV_INHERIT_FD, .data.fd = sv[1]},
    };
    uv_process_options_t opt = {
        .exit_cb = on_template_exit,
        .file = p->exe,
        .args = argv,
        .env = env,
        .stdio_count = 4,
        .stdio = stdio,
    };
    p->template.data = p;
    r = uv_spawn(p->loop, &p->template, &opt);
    if (r) {
        uv_close((uv_handle_t *)&p->template, NULL);
        goto fail;
    }
    close(sv[1]);
    sv[1] = -1;
    p->ctl = sv[0];
    p->template_up = true;
    for (unsigned i = 0; i < p->nslots; i++)
        if (p->slots[i].state == SLOT_DOWN && !p->slots[i].chan_open)
            slot_request_spawn(&p->slots[i]);
    r = 0;
    goto out;
fail:
    close(sv[0]);
out:
    if (sv[1] >= 0)
        close(sv[1]);
    for (int i = 3; argv[i]; i++) /* config_to_flags's */
        free(argv[i]);
    return r;
}

static void on_restart_due(uv_timer_t *t)
{
    struct pool *p = t->data;
    int r = template_start(p);
    if (r) {
        fprintf(stderr, "pyexecd: cannot restart the template: %s\n", strerror(-r));
        uv_timer_start(&p->restart_timer, on_restart_due, TEMPLATE_RESTART_MS, 0);
    }
}

/* The template should exit as soon as its workers have; if it does not, end it. */
static void on_template_stuck(uv_timer_t *t)
{
    struct pool *p = t->data;
    if (p->template_up)
        uv_process_kill(&p->template, SIGKILL);
}

void template_no_restart(struct pool *p)
{
    uv_timer_stop(&p->restart_timer);
}

void template_kill_after(struct pool *p, uint64_t timeout_ms)
{
    uv_timer_start(&p->kill_timer, on_template_stuck, timeout_ms, 0);
}
