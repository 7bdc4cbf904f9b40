/* python_compat WORKLOAD.py: a stand-in for the service's warm worker. It
 * starts Debian's CPython 3.11 directly (not through embed_init), imports
 * numpy and pandas, forks, confines the child with the service's own call
 * (sandbox_confine: rlimits, privdrop when root, no_new_privs, Landlock,
 * seccomp) and runs the workload there: real numpy/pandas/threads/tempfile work must succeed and
 * every escape must raise a Python exception. Exit 0 when it all holds. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embed/embed.h"
#include "seccomp/confine.h"
#include "seccomp/landlock.h"
#include "seccomp/privdrop.h"

static char tmpdir[] = "/tmp/pyexec-compat.XXXXXX";

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    char *text = NULL;
    size_t len = 0;
    if (!f)
        return NULL;
    if (getdelim(&text, &len, '\0', f) < 0) {
        free(text);
        text = NULL;
    }
    fclose(f);
    return text;
}

static int start_python(void)
{
    /* no BLAS thread pools: the service's list, set before numpy loads */
    if (embed_single_threaded() != 0)
        return -1;
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.write_bytecode = 0;
    config.buffered_stdio = 0;
    config.install_signal_handlers = 0;
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, "/usr/bin/python3");
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        return -1;
    /* The workload's raw syscalls, numbered for this architecture. */
    char syscalls[256];
    snprintf(syscalls, sizeof(syscalls),
             "SYSCALLS = {'socket': %d, 'execve': %d, 'ptrace': %d, 'bpf': %d, "
             "'io_uring_setup': %d, 'userfaultfd': %d, 'unshare': %d, 'mount': %d}",
             SYS_socket, SYS_execve, SYS_ptrace, SYS_bpf, SYS_io_uring_setup, SYS_userfaultfd,
             SYS_unshare, SYS_mount);
    if (PyRun_SimpleString(syscalls) != 0)
        return -1;
    return PyRun_SimpleString("import numpy, pandas, json, threading, tempfile");
}

/* The service's limits (its default configuration) and policy, compiled
 * before the fork as a worker compiles it. */
static struct rlimits_spec limits;
static struct policy_prog policy;

/* The service child's own confinement call (seccomp/confine.c). */
static int confine_child(void)
{
    uid_t uid;
    gid_t gid;
    int rc = privdrop_resolve("65534", &uid, &gid);
    if (rc)
        return rc;
    struct confine_spec spec = {
        .limits = &limits, .uid = uid, .gid = gid, .tmpdir = tmpdir, .policy = &policy};
    struct rlimits_base base;
    const char *step = "confinement";
    rc = sandbox_confine(&spec, &base, &step);
    if (rc < 0)
        fprintf(stderr, "python_compat: %s: %s\n", step, strerror(-rc));
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    char *workload = argc == 2 ? read_file(argv[1]) : NULL;
    if (!workload) {
        fprintf(stderr, "usage: python_compat WORKLOAD.py\n");
        return 2;
    }
    if (landlock_abi() == 0) {
        /* The workload checks what Landlock refuses (reading /etc/passwd,
         * writing /tmp): without it those checks cannot hold. */
        printf("python_compat: skipped: this kernel has no Landlock\n");
        return 77;
    }
    struct config cfg;
    char *defaults[] = {"python_compat", NULL};
    if (config_load(&cfg, 1, defaults, stdout, stderr) || policy_compile(&policy))
        return 3;
    sandbox_limits(&cfg, &limits);
    if (start_python() < 0 || !mkdtemp(tmpdir) || (geteuid() == 0 && chown(tmpdir, 65534, 65534)))
        return 3;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        if (chdir(tmpdir) < 0 || setenv("TMPDIR", tmpdir, 1) < 0)
            _exit(3);
        int rc = confine_child();
        if (rc < 0) {
            fprintf(stderr, "python_compat: confinement failed: %s\n", strerror(-rc));
            _exit(3);
        }
        rc = PyRun_SimpleString(workload);
        fflush(NULL);
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 3;
    nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    if (WIFSIGNALED(status))
        fprintf(stderr, "python_compat: child killed by signal %d\n", WTERMSIG(status));
    free(workload);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
