/* pyexecd: the acceptor's life cycle. Parses the configuration, wipes the
 * environment (env.c), starts the worker pool (pool.c) and the HTTP server
 * (http.c, answering through routes.c), runs the sandbox self-test once the
 * workers are warm (selftest.c); on SIGTERM it drains and exits 0.
 * The same binary, run with --template-fd, becomes the template
 * (worker/template.c); main() only dispatches to it. Runs in the acceptor. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "common/config.h"
#include "common/priority.h"
#include "seccomp/namespaces.h"
#include "seccomp/policy.h"
#include "server/env.h"
#include "server/http.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/pool.h"
#include "server/routes.h"
#include "server/selftest.h"
#include "server/server.h"
#include "worker/template.h"

static void close_signals(struct server *srv)
{
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
}

/* Workers and template are gone; once the last connection has its answer the
 * loop has nothing left and uv_run returns. */
static void on_pool_stopped(void *data)
{
    close_signals(data);
}

/* Fail closed: a sandbox that does not hold means no service. */
static void fail_start(struct server *srv)
{
    srv->exit_code = 1;
    srv->stopping = true;
    if (srv->http)
        http_server_stop(srv->http);
    srv->http = NULL;
    close_signals(srv);
    pool_stop(srv->pool, 0, NULL, NULL);
}

static void on_pool_fatal(void *data)
{
    fprintf(stderr, "pyexecd: the worker pool could not start; see the messages above\n");
    fail_start(data);
}

static void on_selftest_done(bool ok, const char *why, void *data)
{
    struct server *srv = data;
#ifdef PYEXEC_UNCONFINED
    fprintf(stderr, "pyexecd: UNCONFINED benchmark build: the self-test %s%s; serving anyway\n",
            ok ? "passed?!" : "failed as it must: ", why);
    ok = true;
#else
    if (ok)
        fprintf(stderr, "pyexecd: sandbox self-test passed\n");
#endif
    if (!ok) {
        fprintf(stderr, "pyexecd: sandbox self-test failed: %s; refusing to serve\n", why);
        return fail_start(srv);
    }
    srv->selftest_passed = true;
    fprintf(stderr, "pyexecd: ready: %ld workers warm\n", srv->cfg.workers);
    pool_start_parking(srv->pool); /* only now: the self-test reached every worker */
}

static void on_pool_ready(void *data)
{
    struct server *srv = data;
    char dir[sizeof(srv->exe)];
    snprintf(dir, sizeof(dir), "%s", srv->exe);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (selftest_start(srv->pool, srv->cfg.workers, dir, srv->cfg.memory_mb, on_selftest_done, srv))
        fail_start(srv);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct server *srv = sig->data;
    (void)signum;
    if (srv->stopping)
        return;
    srv->stopping = true;
    fprintf(stderr, "pyexecd: shutting down\n");
    http_server_stop(srv->http);
    srv->http = NULL;
    pool_stop(srv->pool, srv->cfg.shutdown_timeout_ms, on_pool_stopped, srv);
}

static int serve(struct server *srv)
{
    int r = pool_start(srv->loop, &srv->cfg, srv->exe, &srv->pool);
    if (r) {
        fprintf(stderr, "pyexecd: cannot start the template: %s\n", uv_strerror(r));
        return 1;
    }
    pool_set_callbacks(srv->pool, on_pool_ready, on_pool_fatal, srv);
    pool_set_budget(srv->pool, &srv->budget);
    pool_on_fork_time(srv->pool, metrics_fork);

    struct http_server_opts o = {
        .max_header_bytes = 16384,
        .max_body_bytes = (size_t)srv->cfg.body_kb << 10,
        .idle_timeout_ms = srv->cfg.idle_timeout_ms,
        .max_connections = srv->cfg.max_connections,
        .instance = srv->instance,
        .on_request = routes_on_request,
        .on_abort = routes_on_abort,
        .data = srv,
    };
    int port;
    r = http_server_start(srv->loop, srv->cfg.host, srv->cfg.port, &o, &srv->http, &port);
    if (r) {
        fprintf(stderr, "pyexecd: cannot listen on %s:%ld: %s\n", srv->cfg.host, srv->cfg.port,
                uv_strerror(r));
        return 1;
    }
    fprintf(stderr, "pyexecd: listening on %s:%d with %ld workers\n", srv->cfg.host, port,
            srv->cfg.workers);

    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_init(srv->loop, &srv->sigterm);
    uv_signal_init(srv->loop, &srv->sigint);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);

    uv_run(srv->loop, UV_RUN_DEFAULT);
    pool_free(srv->pool);
    srv->pool = NULL;
    return srv->exit_code;
}

/* Descriptors the acceptor holds besides connections and channels: listener,
 * template socket, event loop, signals, stdio. */
#define NOFILE_SPARE 32

/* Each client connection is a descriptor, and so is each worker's channel:
 * the usual soft RLIMIT_NOFILE of 1024 would refuse connections well below
 * --max-connections' default. Raised to the hard limit, best effort, before
 * the pool and listener open any. The template, workers and children inherit
 * it; each child's rlimits_apply (seccomp/rlimits.c) sets the script's own. */
static void raise_nofile(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    /* Linux caps the hard limit at fs.nr_open, so it is never unlimited. */
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl))
            getrlimit(RLIMIT_NOFILE, &rl); /* keep the soft limit it had */
    }
    rlim_t need = (rlim_t)cfg->max_connections + (rlim_t)cfg->workers + NOFILE_SPARE;
    if (rl.rlim_cur < need)
        fprintf(stderr,
                "pyexecd: at most %llu open descriptors (RLIMIT_NOFILE), below the %llu that "
                "--max-connections %ld and %ld workers need: connections past it are closed "
                "unanswered. Raise the hard limit (ulimit -Hn, LimitNOFILE=, docker --ulimit "
                "nofile=) or lower --max-connections.\n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)need, cfg->max_connections,
                cfg->workers);
}

/* Which process answers: a load test counts the instances it reached. Random
 * per start, after Cloud Run's revision name when K_REVISION is set (read
 * before the environment is scrubbed; only token bytes kept). */
static void make_instance_id(char *out, size_t size)
{
    uint64_t id = 0;
    uv_random(NULL, NULL, &id, sizeof(id), 0, NULL);
    const char *rev = getenv("K_REVISION");
    size_t len = rev ? strspn(rev, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789-._")
                     : 0;
    snprintf(out, size, "%.*s%s%016llx", (int)(len > 63 ? 63 : len), len ? rev : "", len ? "/" : "",
             (unsigned long long)id);
}

/* Started as root, each worker's scripts run under a uid of their own.
 * Started as a normal user they run under the service's, and only a user
 * namespace of each worker's own stands between them and the service's
 * scratch space, the host's network tables and a thread bomb: without one,
 * refuse to start rather than serve half-confined. */
static int refuse_normal_user(const struct config *cfg)
{
    if (geteuid() == 0)
        return 0;
    if (!cfg->namespaces) {
        fprintf(stderr,
                "pyexecd: started as a normal user, --namespaces 0 is refused: scripts would "
                "run under the service's own uid with nothing between them and its scratch "
                "space, the host's network tables and its thread count. Start pyexecd as root "
                "(each worker's scripts then run under a uid of their own), or keep "
                "--namespaces 1.\n");
        return 1;
    }
    int possible = namespaces_user_possible();
    if (possible < 0) {
        fprintf(stderr, "pyexecd: cannot check for user namespaces: %s\n", strerror(-possible));
        return 1;
    }
    if (!possible) {
        fprintf(stderr,
                "pyexecd: started as a normal user, pyexecd needs an unprivileged user "
                "namespace per worker to confine scripts, and this host refuses them. Start "
                "pyexecd as root, or allow them: sysctl kernel.unprivileged_userns_clone=1 "
                "and user.max_user_namespaces above 0 (on Ubuntu also "
                "kernel.apparmor_restrict_unprivileged_userns=0).\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct server srv = {.loop = uv_default_loop()};
    const char *tfd = "--template-fd=", *tscratch = "--template-scratch=";

    signal(SIGPIPE, SIG_IGN);
    /* Whoever started us may have left SIGCHLD ignored, which exec keeps: the
     * kernel would then reap our children before we wait for them, and
     * namespaces_user_possible's probe would read as a refusal. */
    signal(SIGCHLD, SIG_DFL);
    /* pyexecd --template-fd=N --template-scratch=PREFIX FLAGS...: the
     * template, exec'd by server/template_ctl.c. */
    if (argc > 2 && !strncmp(argv[1], tfd, strlen(tfd)) &&
        !strncmp(argv[2], tscratch, strlen(tscratch))) {
        int ctl = atoi(argv[1] + strlen(tfd));
        const char *scratch_prefix = argv[2] + strlen(tscratch);
        argv[2] = argv[0];
        if (config_load(&srv.cfg, argc - 2, argv + 2, stdout, stderr))
            return 1;
        template_main(ctl, &srv.cfg, scratch_prefix);
    }
    if (argc == 2 && !strcmp(argv[1], "--print-policy"))
        return policy_print(stdout) ? 1 : 0;

    int r = config_load(&srv.cfg, argc, argv, stdout, stderr);
    if (r)
        return r > 0 ? 0 : 2;
    if (refuse_normal_user(&srv.cfg))
        return 2;
    make_instance_id(srv.instance, sizeof(srv.instance));
    /* The kernel's OOM killer takes a script, never the acceptor, template
     * or a worker (they inherit this across exec and fork). */
    int adj = priority_protect_service();
    /* How many workers, how much memory per script: before the template
     * gets its flags. */
    if (budget_plan(&srv.cfg, &srv.budget, stderr))
        return 2;
    fprintf(stderr,
            "pyexecd: memory: %llu MiB (%s), %llu MiB for the service's own processes, "
            "%llu MiB per script, scripts' limits may sum to %llu MiB (%ld%%); %ld workers; "
            "oom_score_adj %d\n",
            (unsigned long long)srv.budget.limit_mb, srv.budget.source,
            (unsigned long long)srv.budget.footprint_mb,
            (unsigned long long)budget_script_mb(&srv.budget, srv.cfg.memory_mb),
            (unsigned long long)srv.budget.budget_mb, srv.cfg.memory_overcommit, srv.cfg.workers,
            adj);
    raise_nofile(&srv.cfg);
    /* The service's environment may hold credentials, and some sandboxes
     * (gVisor) show /proc/<pid>/environ to every uid. */
    env_scrub();
    log_set_project(srv.cfg.project);
    setvbuf(stdout, NULL, _IOLBF, 0); /* one log line, one write */
    size_t exe_len = sizeof(srv.exe);
    if (uv_exepath(srv.exe, &exe_len)) {
        fprintf(stderr, "pyexecd: cannot find its own executable\n");
        return 1;
    }
    return serve(&srv);
}
