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

struct selftest_job {
    struct pool_job job; /* first: the pool hands it back */
    struct selftest *t;
};

struct selftest {
    struct pool *pool;
    struct selftest_job *jobs;
    unsigned total;
    unsigned next;    /* jobs[next..total) are not submitted yet */
    unsigned pending; /* jobs not answered yet */
    bool submitting;  /* in submit_more: an answer that comes meanwhile waits for it */
    bool ok;
    char why[256];
    void (*done)(bool, const char *, void *);
    void *data;
};

static void fail(struct selftest *t, const char *fmt, const char *what)
{
    if (t->ok)
        snprintf(t->why, sizeof(t->why), fmt, what);
    t->ok = false;
}

static void submit_more(struct selftest *t);
static void finish_if_done(struct selftest *t);

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
    t->pending--;
    submit_more(t);
    finish_if_done(t);
}

/* Every probe answered (and none being submitted): report, and free. */
static void finish_if_done(struct selftest *t)
{
    if (t->pending || t->submitting)
        return;
    t->done(t->ok, t->why, t->data);
    free(t->jobs);
    free(t);
}

/* Hand the probes not yet submitted to the pool. Where the memory budget
 * runs fewer scripts at once than there are workers, the rest wait in the
 * queue, and the queue's bound (--queue, 0 included) may refuse some: those
 * are submitted again as the probes in flight are answered. A refusal with
 * none of ours in flight, or any other error, fails that probe. The caller
 * calls finish_if_done afterwards. */
static void submit_more(struct selftest *t)
{
    if (t->submitting)
        return;
    t->submitting = true;
    while (t->next < t->total) {
        struct selftest_job *j = &t->jobs[t->next];
        bool in_flight = t->next > t->total - t->pending;
        int r = j->job.frame ? pool_submit(t->pool, &j->job) : -ENOMEM;
        if (r == -EAGAIN && in_flight)
            break;
        t->next++;
        if (r) {
            free(j->job.frame);
            j->job.frame = NULL;
            on_answer(&j->job, 500, "internal", "{}", 2);
        }
    }
    t->submitting = false;
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
    t->pool = p;
    t->jobs = jobs;
    t->total = t->pending = workers;
    t->ok = true;
    t->done = done;
    t->data = data;
    for (unsigned i = 0; i < workers; i++) {
        jobs[i].t = t;
        jobs[i].job.done = on_answer;
        jobs[i].job.frame =
            ipc_request_new(PROBE_TIMEOUT_MS, memory_mb, probe_script, strlen(probe_script), input,
                            strlen(input), &jobs[i].job.frame_len);
    }
    free(input);
    /* One lands on each worker: dispatch prefers a worker that has not
     * served yet (queue.c), also when the budget queues some of them. */
    submit_more(t);
    finish_if_done(t);
    return 0;
nomem:
    free(input);
    free(t);
    return -ENOMEM;
}
