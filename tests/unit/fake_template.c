/* A stand-in for pyexecd's template, for tests of server/pool.c: it speaks
 * the template's side of the protocol (IPC_SPAWN on fd 3, then the worker's
 * side on each channel) and misbehaves as the test asks, by --user=MODE among
 * the flags the pool passes:
 *   malformed  each worker says READY, then answers every request with an
 *              IPC_REPLY too short to hold its header
 *   exit       each worker exits at once, as one whose set-up failed
 *   echo       each worker says READY and SPARE, then answers every request
 *              200 with its pid as the body, its next SPARE in the same write
 *              (the pool reads both at once: a spare ready when the answer is);
 *              a request whose script is "hold" is never answered (a long
 *              script), and its worker waits for its channel to close; one
 *              whose script is "nap" is answered after an IPC_ASLEEP, one
 *              whose script is "naphold" held after it
 *   late       the same, but SPARE comes 2 ms after the answer, in a write of
 *              its own (a worker still forking when the next job comes)
 *   fail0      as echo, but the worker of slot 0 answers 500 internal
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

/* An IPC_REPLY of status with this process's pid as the body, and, when
 * spare, an IPC_SPARE in the same write. */
static int echo_reply(int chan, uint32_t status, bool spare)
{
    char body[16], buf[128];
    int n = snprintf(body, sizeof(body), "%d", getpid());
    const char *type = status == 200 ? "ok" : "internal";
    struct ipc_reply r = {.status = status, .type_len = strlen(type)};
    struct ipc_hdr reply = {IPC_REPLY, sizeof(r) + r.type_len + n}, next = {IPC_SPARE, 0};
    size_t len = 0;
    memcpy(buf + len, &reply, sizeof(reply)), len += sizeof(reply);
    memcpy(buf + len, &r, sizeof(r)), len += sizeof(r);
    memcpy(buf + len, type, r.type_len), len += r.type_len;
    memcpy(buf + len, body, n), len += n;
    if (spare)
        memcpy(buf + len, &next, sizeof(next)), len += sizeof(next);
    return write(chan, buf, len) == (ssize_t)len ? 0 : -1;
}

static bool script_is(const struct ipc_request_data *d, const char *s)
{
    return d->script_len == strlen(s) && !memcmp(d->script, s, d->script_len);
}

static void worker(const char *mode, uint32_t slot, int chan)
{
    if (!strcmp(mode, "exit"))
        _exit(1);
    char ready[64];
    int n = snprintf(ready, sizeof(ready), "{\"pid\":%d,\"versions\":{},\"sandbox\":{}}", getpid());
    struct iovec part = {ready, n};
    if (ipc_write(chan, IPC_READY, &part, 1))
        _exit(1);
    bool late = !strcmp(mode, "late"), fail0 = !strcmp(mode, "fail0");
    bool echo = late || fail0 || !strcmp(mode, "echo"), fail = fail0 && slot == 0;
    if (echo && ipc_write(chan, IPC_SPARE, NULL, 0))
        _exit(1);
    for (;;) {
        struct ipc_hdr hdr;
        char *frame;
        if (ipc_read(chan, 1 << 20, &hdr, &frame))
            _exit(0);
        struct ipc_request rq;
        struct ipc_request_data d;
        bool split = hdr.kind == IPC_REQUEST && !ipc_request_split(frame, hdr.len, &rq, &d);
        bool nap = split && (script_is(&d, "nap") || script_is(&d, "naphold"));
        bool hold = split && (script_is(&d, "hold") || script_is(&d, "naphold"));
        ipc_free(frame, hdr.len);
        if (hdr.kind != IPC_REQUEST)
            continue;
        if (nap && ipc_write(chan, IPC_ASLEEP, NULL, 0))
            _exit(0);
        if (hold) {
            while (!ipc_read(chan, 1 << 20, &hdr, &frame))
                ipc_free(frame, hdr.len); /* a CANCEL: still held */
            _exit(0);
        }
        if (echo) {
            if (echo_reply(chan, fail ? 500 : 200, !late))
                _exit(0);
            if (late && (usleep(2000) || ipc_write(chan, IPC_SPARE, NULL, 0)))
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
            worker(mode, slot, chan);
        }
        close(chan);
    }
}
