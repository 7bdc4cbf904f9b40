/* Resource limits of the per-request child. RLIMIT_AS and RLIMIT_DATA are
 * both set to the child's measured base plus the budget: DATA catches heap and
 * anonymous private maps (what numpy and Python allocate), AS also catches
 * shared anonymous maps that DATA does not count. */
#include "seccomp/rlimits.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* /proc/self/statm: one line of page counts, "size resident shared text lib
 * data dt"; size is VmSize, data is VmData + VmStk (a few hundred KiB more
 * than RLIMIT_DATA counts: the budget is that much looser, never tighter).
 * One read instead of scanning /proc/self/status: this runs in every child. */
static int read_base(struct rlimits_base *base)
{
    char line[256];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, line, sizeof(line) - 1);
    int err = n < 0 ? -errno : 0;
    close(fd);
    if (n <= 0)
        return err ? err : -EIO;
    line[n] = '\0';
    unsigned long long size, data;
    if (sscanf(line, "%llu %*u %*u %*u %*u %llu", &size, &data) != 2 || !size || !data)
        return -EIO;
    long page = sysconf(_SC_PAGESIZE);
    base->vm_size = size * page;
    base->vm_data = data * page;
    return 0;
}

static int set_limit(int resource, uint64_t soft, uint64_t hard)
{
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
    if (!r)
        r = set_limit(RLIMIT_CORE, 0, 0);
    return r;
}

int rlimits_lower(const struct rlimits_base *base, uint64_t cpu_ms, uint64_t memory_mb)
{
    int r = set_cpu(cpu_ms);
    return r ? r : set_memory(base, memory_mb);
}
