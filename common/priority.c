/* CPU priority and OOM ordering. See priority.h. */
#include "common/priority.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int write_oom_adj(int proc_fd, int value)
{
    char text[16];
    int n = snprintf(text, sizeof(text), "%d", value);
    int fd = proc_fd > 0 ? openat(proc_fd, "self/oom_score_adj", O_WRONLY | O_CLOEXEC)
                         : open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = write(fd, text, n) == n ? 0 : -errno;
    close(fd);
    return r;
}

static int read_oom_adj(void)
{
    char text[16] = {0};
    int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    int r = n > 0 ? atoi(text) : -EIO;
    close(fd);
    return r;
}

int priority_protect_service(void)
{
    write_oom_adj(0, PRIORITY_SERVICE_OOM_ADJ); /* EACCES without CAP_SYS_RESOURCE: keep 0 */
    return read_oom_adj();
}

int priority_lower_child(int proc_fd)
{
    /* Raising one's own nice and OOM score needs no privilege; only the way
     * back does, and the uid drop and seccomp take that away. The nice value
     * is the part that matters; a sandbox without SCHED_BATCH or a writable
     * oom_score_adj (gVisor) still runs the script. A service started
     * nicer than that (nice -n 15) keeps its children where they are: going
     * back down to PRIORITY_CHILD_NICE would need the privilege. */
    errno = 0;
    int now = getpriority(PRIO_PROCESS, 0);
    if (errno)
        return -errno;
    if (now < PRIORITY_CHILD_NICE && setpriority(PRIO_PROCESS, 0, PRIORITY_CHILD_NICE))
        return -errno;
    struct sched_param none = {0};
    if (sched_setscheduler(0, SCHED_BATCH, &none) && errno != EINVAL && errno != EPERM &&
        errno != ENOSYS)
        return -errno;
    int r = write_oom_adj(proc_fd, PRIORITY_CHILD_OOM_ADJ);
    return r == -ENOENT || r == -EACCES ? 0 : r;
}

int priority_demote(pid_t pid)
{
    return setpriority(PRIO_PROCESS, pid, PRIORITY_LONG_NICE) ? -errno : 0;
}

/* Fields of /proc/PID/stat: state (field 3, its first thread's), utime +
 * stime (fields 14 and 15) in clock ticks, and num_threads (field 20).
 * Returns 0 or -1 if it cannot be read. */
static int read_stat(pid_t pid, char *state, unsigned long long *ticks, long *threads)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* After the command's closing parenthesis (the command may hold any
     * character). */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2])
        return -1;
    *state = p[2];
    unsigned long long utime = 0, stime = 0;
    *threads = 0;
    for (int field = 3; field <= 20 && p; field++) {
        p = strchr(p + 1, ' ');
        if (p && field == 14)
            utime = strtoull(p + 1, NULL, 10);
        else if (p && field == 15)
            stime = strtoull(p + 1, NULL, 10);
        else if (p && field == 20)
            *threads = strtol(p + 1, NULL, 10);
    }
    *ticks = utime + stime;
    return p ? 0 : -1;
}

int64_t priority_cpu_ms(pid_t pid)
{
    char state;
    unsigned long long ticks;
    long threads, hz = sysconf(_SC_CLK_TCK);
    if (read_stat(pid, &state, &ticks, &threads) || hz <= 0)
        return -1;
    return (int64_t)(ticks * 1000 / hz);
}

int priority_asleep(pid_t pid)
{
    char state;
    unsigned long long ticks;
    long threads;
    if (read_stat(pid, &state, &ticks, &threads))
        return -1;
    /* The state is the first thread's: with more, it may sleep in join()
     * or on the GIL while another burns CPU. */
    return state == 'S' && threads == 1;
}

int64_t priority_oom_kills(void)
{
    /* About 4 KiB on 6.x kernels; oom_kill is past the middle: read it whole. */
    char buf[16384];
    int fd = open("/proc/vmstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += n;
    close(fd);
    buf[len] = '\0';
    const char *at = strstr(buf, "\noom_kill ");
    return at ? strtoll(at + 10, NULL, 10) : -1;
}
