/* The child's confinement, applied in one call and in one order:
 *   0. priority_lower_child   nice 10, SCHED_BATCH, oom_score_adj 1000
 *                             (common/priority.h): scripts yield the CPU to
 *                             the service and are the OOM killer's first pick
 *   1. rlimits_apply          CPU, memory, file size, fds, no core (reads
 *                             /proc/self/status: before Landlock)
 *   2. privdrop_apply         unprivileged uid/gid, no groups, no
 *                             capabilities, not dumpable
 *   3. privdrop_no_new_privs  nothing exec'd could gain privileges; Landlock
 *                             and seccomp need it
 *   4. landlock_apply         read-only system files, read-write only tmpdir
 *   5. policy_load            seccomp, last: every step above needs calls it
 *                             forbids
 * Called by worker/child.c in every per-request child and by the sandbox
 * tests (tests/sandbox/), so the tests check the very confinement the
 * service applies. Runs in the child; sandbox_limits runs in the worker. */
#ifndef PYEXEC_CONFINE_H
#define PYEXEC_CONFINE_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/config.h"
#include "seccomp/policy.h"
#include "seccomp/rlimits.h"

struct confine_spec {
    const struct rlimits_spec *limits; /* the server's caps (sandbox_limits) */
    uid_t uid;                         /* when root: run as these; else -1 */
    gid_t gid;
    const char *tmpdir;               /* the only writable directory */
    const struct policy_prog *policy; /* compiled once (policy_compile) */
    /* > 0: a directory fd of a writable /proc (the worker's, opened before
     * its mount namespace made / read-only), closed by step 0; 0: /proc as
     * mounted. */
    int proc_fd;
    /* pyexecd-unconfined (bench/ only, measuring what confinement costs):
     * step 1 alone. */
    bool rlimits_only;
};

/* The child's resource limits from the configuration (cpu_ms, memory_mb,
 * tmp_kb; 256 open files). */
void sandbox_limits(const struct config *cfg, struct rlimits_spec *out);

/* Apply the steps in order; stop at the first that fails. base receives
 * what the process used before its limits (for rlimits_lower). Returns 0,
 * or -errno with *step naming the step ("priority", "rlimits", "privdrop",
 * "no_new_privs", "landlock", "seccomp"). On failure no user code may run. */
int sandbox_confine(const struct confine_spec *s, struct rlimits_base *base, const char **step);

#endif
