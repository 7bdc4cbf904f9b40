/* Resource limits of the per-request child: set once at spawn from the
 * server's caps (rlimits_apply, the first step of sandbox_confine in
 * confine.c), lowered after the request arrives (rlimits_lower, called by
 * worker/child.c). Part of the sandbox (seccomp/). Runs in the child. */
#ifndef PYEXEC_RLIMITS_H
#define PYEXEC_RLIMITS_H

#include <stdint.h>

struct rlimits_spec {
    uint64_t cpu_ms;    /* RLIMIT_CPU, rounded up to whole seconds (SIGXCPU, then SIGKILL) */
    uint64_t memory_mb; /* on top of what the child already maps at spawn */
    uint64_t fsize_kb;  /* largest file the script may write */
    uint64_t nofile;    /* open file descriptors */
    uint64_t nproc;     /* RLIMIT_NPROC: tasks (threads included) of the child's uid;
                         * 0 leaves it alone (it counts every process of a uid,
                         * so it bounds one script only where that uid is its own) */
};

/* What the warm interpreter already uses when the child starts; the memory
 * limit is measured from here, so a script may allocate memory_mb itself. */
struct rlimits_base {
    uint64_t vm_size; /* bytes, VmSize: counted by RLIMIT_AS */
    uint64_t vm_data; /* bytes, VmData: counted by RLIMIT_DATA */
};

/* Measure the base, then set CPU, AS, DATA, FSIZE, NOFILE, NPROC and CORE = 0.
 * Returns 0 or -errno. */
int rlimits_apply(const struct rlimits_spec *spec, struct rlimits_base *base);

/* Lower CPU and memory for one request (never raises). Returns 0 or -errno. */
int rlimits_lower(const struct rlimits_base *base, uint64_t cpu_ms, uint64_t memory_mb);

#endif
