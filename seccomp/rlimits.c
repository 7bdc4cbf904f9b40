/* Resource limits of the per-request child. RLIMIT_AS and RLIMIT_DATA are
 * both set to the child's measured base plus the budget: DATA catches heap and
 * anonymous private maps (what numpy and Python allocate), AS also catches
 * shared anonymous maps that DATA does not count. */
#include "seccomp/rlimits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* VmSize and VmData of /proc/self/status, in bytes. /proc/self/statm would be
 * one line, but gVisor fills in only its first two fields. This runs in every
 * child: a prefix test per line, no scanf. */
static int read_base(struct rlimits_base *base)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -errno;
    base->vm_size = base->vm_data = 0;
    while (fgets(line, sizeof(line), f) && !(base->vm_size && base->vm_data)) {
        if (!strncmp(line, "VmSize:", 7))
            base->vm_size = strtoull(line + 7, NULL, 10) << 10;
        else if (!strncmp(line, "VmData:", 7))
            base->vm_data = strtoull(line + 7, NULL, 10) << 10;
    }
    fclose(f);
    return base->vm_size && base->vm_data ? 0 : -EIO;
}

/* Never above the hard limit the service was started with: the child may not
 * raise it (EPERM), and a lower limit only confines more. */
static int set_limit(int resource, uint64_t soft, uint64_t hard)
{
    struct rlimit now;
    if (getrlimit(resource, &now))
        return -errno;
    if (hard > now.rlim_max)
        hard = now.rlim_max;
    if (soft > hard)
        soft = hard;
    struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};
    return setrlimit(resource, &rl) ? -errno : 0;
}

static int set_memory(const struct rlimits_base *base, uint64_t memory_mb)
{
    uint64_t budget = memory_mb << 20;
    int r = set_limit(RLIMIT_AS, base->vm_size + budget, base->vm_size + budget);
    return r ? r : set_limit(RLIMIT_DATA, base->vm_data + budget, base->vm_data + budget);
}

/* SIGXCPU at the soft limit (the worker reports "timeout"), SIGKILL a second later. */
static int set_cpu(uint64_t cpu_ms)
{
    uint64_t s = (cpu_ms + 999) / 1000;
    return set_limit(RLIMIT_CPU, s, s + 1);
}

int rlimits_apply(const struct rlimits_spec *spec, struct rlimits_base *base)
{
    int r = read_base(base);
    if (!r)
        r = set_memory(base, spec->memory_mb);
    if (!r)
        r = set_cpu(spec->cpu_ms);
    if (!r)
        r = set_limit(RLIMIT_FSIZE, spec->fsize_kb << 10, spec->fsize_kb << 10);
    if (!r)
        r = set_limit(RLIMIT_NOFILE, spec->nofile, spec->nofile);
    if (!r && spec->nproc)
        r = set_limit(RLIMIT_NPROC, spec->nproc, spec->nproc);
    if (!r)
        r = set_limit(RLIMIT_CORE, 0, 0);
    return r;
}

int rlimits_lower(const struct rlimits_base *base, uint64_t cpu_ms, uint64_t memory_mb)
{
    int r = set_cpu(cpu_ms);
    return r ? r : set_memory(base, memory_mb);
}
