/* A stand-in for pyexecd's template, for tests of server/pool.c: it speaks
 * the template's side of the protocol (IPC_SPAWN on fd 3, then the worker's
 * side on each channel) and misbehaves as the test asks, by --user=MODE among
 * the flags the pool passes:
 *   malformed  each worker says READY, then answers every request with an
 *              IPC_REPLY too short to hold its header
 *   exit       each worker exits at once, as one whose set-up failed
 *   echo       each worker says READY and SPARE, then answers every request
 *              200 with its pid as the body, its next SPARE in the same write
 *              (so the pool reads both at once, as from a worker that forks fast)
 * No Python: the pool only sees frames. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ipc.h"

/* An IPC_REPLY of 200 with this process's pid as the body, and an IPC_SPARE,
 * in one write. */
static int echo_reply(int chan)
{
    char body[16], buf[128];
    int n = snprintf(body, sizeof(body), "%d", getpid());
    struct ipc_reply r = {.status = 200, .type_len = 2};
    struct ipc_hdr reply = {IPC_REPLY, sizeof(r) + 2 + n}, spare = {IPC_SPARE, 0};
    size_t len = 0;
    memcpy(buf + len, &reply, sizeof(reply)), len += sizeof(reply);
    memcpy(buf + len, &r, sizeof(r)), len += sizeof(r);
    memcpy(buf + len, "ok", 2), len += 2;
    memcpy(buf + len, body, n), len += n;
    memcpy(buf + len, &spare, sizeof(spare)), len += sizeof(spare);
    return write(chan, buf, len) == (ssize_t)len ? 0 : -1;
}

static void worker(const char *mode, int chan)
{
    if (!strcmp(mode, "exit"))
        _exit(1);
    char ready[64];
    int n = snprintf(ready, sizeof(ready), "{\"pid\":%d,\"versions\":{},\"sandbox\":{}}", getpid());
    struct iovec part = {ready, n};
    if (ipc_write(chan, IPC_READY, &part, 1))
        _exit(1);
    bool echo = !strcmp(mode, "echo");
    if (echo && ipc_write(chan, IPC_SPARE, NULL, 0))
        _exit(1);
    for (;;) {
        struct ipc_hdr hdr;
        char *frame;
        if (ipc_read(chan, 1 << 20, &hdr, &frame))
            _exit(0);
        ipc_free(frame, hdr.len);
        if (hdr.kind != IPC_REQUEST)
            continue;
        if (echo) {
            if (echo_reply(chan))
                _exit(0);
            continue;
        }
        struct iovec bad = {"abc", 3};
        if (ipc_write(chan, IPC_REPLY, &bad, 1))
            _exit(0);
    }
}

int main(int argc, char **argv)
{
    const char *mode = "malformed";
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--user=", 7))
            mode = argv[i] + 7;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGCHLD, SIG_IGN); /* no zombies */
    for (;;) {
        uint32_t slot;
        int chan;
        int r = ipc_recv_spawn(3, &slot, &chan);
        if (r == -EINTR)
            continue;
        if (r)
            return 0;
        pid_t pid = fork();
        if (pid == 0) {
            close(3);
            worker(mode, chan);
        }
        close(chan);
    }
}
