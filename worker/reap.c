/* Reaping children. See reap.h. */
#include "worker/reap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
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

static int signal_write_fd = -1;

static void on_sigchld(int sig)
{
    (void)sig;
    int saved = errno;
    if (write(signal_write_fd, "", 1) < 0) {
        /* the pipe is full: a wake-up is already pending */
    }
    errno = saved;
}

int reap_signal_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK))
        return -errno;
    signal_write_fd = fds[1];
    struct sigaction sa = {.sa_handler = on_sigchld, .sa_flags = SA_NOCLDSTOP};
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGCHLD, &sa, NULL) ? -errno : 0;
}

void reap_signal_drain(int fd)
{
    char sink[64];
    while (read(fd, sink, sizeof(sink)) > 0)
        ;
}

uint64_t rusage_cpu_us(const struct rusage *ru)
{
    return (uint64_t)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000 + ru->ru_utime.tv_usec +
           ru->ru_stime.tv_usec;
}
