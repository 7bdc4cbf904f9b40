/* Reaping children. See reap.h. */
#include "worker/reap.h"

#include <errno.h>
#include <sys/wait.h>
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

pid_t reap_wait(pid_t pid, int flags, int *status, struct rusage *ru)
{
    pid_t r;
    while ((r = wait4(pid, status, flags, ru)) < 0 && errno == EINTR)
        ;
    return r < 0 ? -errno : r;
}

uint64_t rusage_cpu_us(const struct rusage *ru)
{
    return (uint64_t)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000 + ru->ru_utime.tv_usec +
           ru->ru_stime.tv_usec;
}
