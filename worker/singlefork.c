/* See singlefork.h. */
#include "worker/singlefork.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

/* Field 20 of /proc/self/stat is num_threads, counted after the ")" that
 * ends the command name (which may itself hold spaces and parentheses). */
static int threads_from_stat(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = errno;
    close(fd);
    if (n <= 0)
        return n < 0 ? -err : -EIO;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -EIO;
    /* ") S ppid ..." : field 3 (state) follows the first space; 17 more
     * spaces lead to field 20. */
    for (int field = 2; field < 20 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p || p[1] < '0' || p[1] > '9')
        return -EIO;
    int threads = 0;
    for (p++; *p >= '0' && *p <= '9'; p++)
        threads = threads * 10 + (*p - '0');
    return threads;
}

/* /proc/self/task has a link for each thread besides "." and "..": one
 * stat, 2.5 us here, where opening and reading /proc/self/stat is 43 us. A
 * count under one means this /proc does not keep that rule: read stat. */
int singlefork_threads(void)
{
    struct stat st;
    if (stat("/proc/self/task", &st) == 0 && st.st_nlink >= 3)
        return (int)(st.st_nlink - 2);
    return threads_from_stat();
}

pid_t singlefork(void)
{
    int threads = singlefork_threads();
    if (threads != 1) {
        errno = threads < 0 ? -threads : EDEADLK;
        return -1;
    }
    return fork();
}
