/* The frame format of ipc.h: parse, write, read. */
#include "common/ipc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/wipe.h"

/* Frames carry request data: they are freed only wiped (wipe.h). */
#pragma GCC poison free realloc

long ipc_frame_parse(const char *buf, size_t len, size_t max, struct ipc_hdr *hdr,
                     const char **payload)
{
    if (len < sizeof(*hdr))
        return 0;
    memcpy(hdr, buf, sizeof(*hdr));
    if (hdr->len > max || hdr->len > IPC_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (len - sizeof(*hdr) < hdr->len)
        return 0;
    *payload = buf + sizeof(*hdr);
    return (long)(sizeof(*hdr) + hdr->len);
}

int ipc_write(int fd, uint32_t kind, const struct iovec *parts, int nparts)
{
    struct iovec iov[8];
    struct ipc_hdr hdr = {.kind = kind, .len = 0};

    if (nparts + 1 > (int)(sizeof(iov) / sizeof(iov[0])))
        return -E2BIG;
    iov[0] = (struct iovec){.iov_base = &hdr, .iov_len = sizeof(hdr)};
    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len > IPC_MAX_PAYLOAD - hdr.len)
            return -EMSGSIZE;
        hdr.len += parts[i].iov_len;
        iov[i + 1] = parts[i];
    }

    struct iovec *v = iov;
    int n = nparts + 1;
    while (n > 0) {
        ssize_t w = writev(fd, v, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        while (n > 0 && (size_t)w >= v->iov_len) {
            w -= v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= w;
        }
    }
    return 0;
}

/* Read exactly len bytes. Returns len, fewer on EOF, or -errno. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += r;
    }
    return got;
}

int ipc_read(int fd, size_t max, struct ipc_hdr *hdr, char **payload)
{
    *payload = NULL;
    ssize_t r = read_full(fd, hdr, sizeof(*hdr));
    if (r < 0)
        return r;
    if (r == 0)
        return -EPIPE;
    if (r < (ssize_t)sizeof(*hdr))
        return -EPROTO;
    if (hdr->len > max || hdr->len > IPC_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (hdr->len == 0)
        return 0;

    char *p = malloc(hdr->len + 1);
    if (!p)
        return -ENOMEM;
    r = read_full(fd, p, hdr->len);
    if (r != (ssize_t)hdr->len) {
        ipc_free(p, hdr->len);
        return r < 0 ? r : -EPROTO;
    }
    p[hdr->len] = '\0';
    *payload = p;
    return 0;
}

void ipc_free(char *payload, size_t len)
{
    (void)len; /* wipe_free wipes the whole allocation */
    wipe_free(payload);
}

struct spawn_msg {
    struct ipc_hdr hdr;
    uint32_t slot;
};

int ipc_send_spawn(int sock, uint32_t slot, int fd)
{
    struct spawn_msg m = {{IPC_SPAWN, sizeof(uint32_t)}, slot};
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl = {0};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

int ipc_recv_spawn(int sock, uint32_t *slot, int *fd)
{
    struct spawn_msg m;
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    ssize_t n;
    if ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0)
        return -errno; /* -EINTR too: the template reaps on SIGCHLD */
    /* A descriptor that arrived is ours to close on every refusal, even with
     * an empty message (which reads like EOF). */
    int got = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(&got, CMSG_DATA(c), sizeof(int));
    if (n != sizeof(m) || got < 0 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
        m.hdr.kind != IPC_SPAWN || m.hdr.len != sizeof(uint32_t)) {
        if (got >= 0)
            close(got);
        return n == 0 ? -EPIPE : -EPROTO;
    }
    *fd = got;
    *slot = m.slot;
    return 0;
}

char *ipc_request_build(uint32_t timeout_ms, uint32_t memory_mb, const struct ipc_request_data *d,
                        size_t *len)
{
    const char *parts[] = {d->script, d->input, d->stdin_data, d->files};
    size_t lens[] = {d->script_len, d->input ? d->input_len : 0, d->stdin_data ? d->stdin_len : 0,
                     d->files ? d->files_len : 0};
    size_t total = sizeof(struct ipc_request);
    for (int i = 0; i < 4; i++) {
        if (lens[i] > IPC_MAX_PAYLOAD - total)
            return NULL;
        total += lens[i];
    }
    struct ipc_request rq = {.timeout_ms = timeout_ms,
                             .memory_mb = memory_mb,
                             .script_len = lens[0],
                             .input_len = lens[1],
                             .stdin_len = lens[2],
                             .files_len = lens[3]};
    char *f = malloc(total);
    if (!f)
        return NULL;
    char *p = mempcpy(f, &rq, sizeof(rq));
    for (int i = 0; i < 4; i++)
        if (lens[i]) /* a part may be NULL: memcpy from NULL is undefined even for 0 bytes */
            p = mempcpy(p, parts[i], lens[i]);
    *len = total;
    return f;
}

char *ipc_request_new(uint32_t timeout_ms, uint32_t memory_mb, const char *script,
                      size_t script_len, const char *input, size_t input_len, size_t *len)
{
    struct ipc_request_data d = {
        .script = script, .script_len = script_len, .input = input, .input_len = input_len};
    return ipc_request_build(timeout_ms, memory_mb, &d, len);
}

int ipc_request_split(const char *payload, size_t len, struct ipc_request *rq,
                      struct ipc_request_data *d)
{
    if (len < sizeof(*rq))
        return -EPROTO;
    memcpy(rq, payload, sizeof(*rq));
    uint64_t sum = (uint64_t)rq->script_len + rq->input_len + rq->stdin_len + rq->files_len;
    if (sum != len - sizeof(*rq))
        return -EPROTO;
    const char *p = payload + sizeof(*rq);
    d->script = p;
    d->script_len = rq->script_len;
    d->input = p += rq->script_len;
    d->input_len = rq->input_len;
    d->stdin_data = p += rq->input_len;
    d->stdin_len = rq->stdin_len;
    d->files = p += rq->stdin_len;
    d->files_len = rq->files_len;
    return 0;
}

int ipc_file_next(const char *files, size_t files_len, size_t *pos, const char **path,
                  size_t *path_len, const char **data, size_t *data_len)
{
    struct ipc_file f;
    if (*pos == files_len)
        return 0;
    if (*pos > files_len || files_len - *pos < sizeof(f))
        return -EPROTO;
    memcpy(&f, files + *pos, sizeof(f));
    size_t left = files_len - *pos - sizeof(f);
    if (f.path_len == 0 || f.path_len > left || f.data_len > left - f.path_len)
        return -EPROTO;
    *path = files + *pos + sizeof(f);
    *path_len = f.path_len;
    *data = *path + f.path_len;
    *data_len = f.data_len;
    *pos += sizeof(f) + f.path_len + f.data_len;
    return 1;
}
