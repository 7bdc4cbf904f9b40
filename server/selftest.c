/* Start-up self-test. Unconfined, each probe below succeeds (and the exec
 * even replaces the child), so a sandbox that silently failed to load cannot
 * pass it. */
#include "server/selftest.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc.h"

/* Each probe answers "refused" or names what got through. */
static const char probe_script[] =
    "import ctypes, os, socket\n"
    "def main(forbidden_dirs):\n"
    "    libc = ctypes.CDLL(None, use_errno=True)\n"
    "    def refused(attempt):\n"
    "        try:\n"
    "            attempt()\n"
    "        except OSError:\n"
    "            return 'refused'\n"
    "        return 'allowed'\n"
    "    def write():\n"
    "        for d in forbidden_dirs:\n"
    "            path = os.path.join(d, '.pyexec-selftest')\n"
    "            try:\n"
    "                open(path, 'x').close()\n"
    "            except OSError:\n"
    "                continue\n"
    "            os.unlink(path)\n"
    "            return 'allowed in ' + d\n"
    "        return 'refused'\n"
    "    def unshare():\n"
    "        if libc.syscall(272, 0) != 0:  # unshare(0): a no-op when allowed\n"
    "            raise OSError(ctypes.get_errno(), 'unshare')\n"
    "    return {'socket': refused(socket.socket), 'write': write(),\n"
    "            'syscall': refused(unshare),\n"
    "            'exec': refused(lambda: os.execv('/bin/true', ['true']))}\n";

static const char *const probes[] = {"socket", "write", "syscall", "exec"};

struct selftest {
    struct pool_job *jobs;
    unsigned pending;
    bool ok;
    char why[256];
    void (*done)(bool, const char *, void *);
    void *data;
};

struct selftest_job {
    struct pool_job job; /* first: the pool hands it back */
    struct selftest *t;
};

static void fail(struct selftest *t, const char *fmt, const char *what)
{
    if (t->ok)
        snprintf(t->why, sizeof(t->why), fmt, what);
    t->ok = false;
}

static void on_answer(struct pool_job *job, int status, const char *type, const char *body,
                      size_t len)
{
    struct selftest *t = ((struct selftest_job *)job)->t;
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *result = json_object_get(o, "result");
    if (status != 200)
        fail(t, "the probe script failed (%s)", type);
    for (size_t i = 0; status == 200 && i < sizeof(probes) / sizeof(*probes); i++) {
        const char *got = json_string_value(json_object_get(result, probes[i]));
        if (!got || strcmp(got, "refused")) {
            char what[160];
            snprintf(what, sizeof(what), "%s (%s)", probes[i], got ? got : "no answer");
            fail(t, "%s was not refused", what);
        }
    }
    json_decref(o);
    if (--t->pending)
        return;
    t->done(t->ok, t->why, t->data);
    free(t->jobs);
    free(t);
}

/* The probe's own wall-clock allowance: the worker takes it as is (only the
 * acceptor holds client requests to --timeout-ms), so a server configured
 * with a limit too short for any script still passes its check. Its memory
 * is the server's cap, which the child cannot exceed. */
#define PROBE_TIMEOUT_MS 10000

int selftest_start(struct pool *p, unsigned workers, const char *forbidden_dir, uint32_t memory_mb,
                   void (*done)(bool ok, const char *why, void *data), void *data)
{
    struct selftest *t = calloc(1, sizeof(*t));
    /* The service's own directory, and the world-writable places a sandbox
     * without Landlock (gVisor) would leave open. */
    json_t *arg = json_pack("[s, s, s, s]", forbidden_dir, "/", "/tmp", "/dev/shm");
    char *input = json_dumps(arg, JSON_COMPACT);
    json_decref(arg);
    if (!t || !input)
        goto nomem;
    struct selftest_job *jobs = calloc(workers, sizeof(*jobs));
    if (!jobs)
        goto nomem;
    t->jobs = &jobs[0].job;
    t->ok = true;
    t->done = done;
    t->data = data;
    t->pending = workers;
    for (unsigned i = 0; i < workers; i++) {
        jobs[i].t = t;
        jobs[i].job.done = on_answer;
        jobs[i].job.frame =
            ipc_request_new(PROBE_TIMEOUT_MS, memory_mb, probe_script, strlen(probe_script), input,
                            strlen(input), &jobs[i].job.frame_len);
        /* Submitted together, one lands on each idle worker. */
        if (!jobs[i].job.frame || pool_submit(p, &jobs[i].job)) {
            free(jobs[i].job.frame);
            jobs[i].job.frame = NULL;
            on_answer(&jobs[i].job, 500, "internal", "{}", 2);
        }
    }
    free(input);
    return 0;
nomem:
    free(input);
    free(t);
    return -ENOMEM;
}
