/* Fuzz target: the frame format of common/ipc.c. Arbitrary bytes are parsed
 * by both of its readers — ipc_frame_parse (the acceptor's, on a buffer) and
 * ipc_read (everyone else's, on a pipe) — which must agree frame by frame;
 * the same bytes written as a frame must read back unchanged; and
 * ipc_recv_spawn must reject anything but a well-formed IPC_SPAWN without
 * leaking the descriptor that came with it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_check.h"
#include "common/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small enough that some headers claim too much, big enough for real frames. */
#define FUZZ_MAX_PAYLOAD 1024
/* Stays under the default pipe buffer, so writing never blocks. */
#define FUZZ_PIPE_BYTES 60000

/* The lowest free descriptor: a leak makes it move. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    FUZZ_CHECK(fd >= 0);
    close(fd);
    return fd;
}

static void pipe_with(const void *bytes, size_t len, int *read_end)
{
    int p[2];
    FUZZ_CHECK(pipe2(p, O_CLOEXEC) == 0);
    FUZZ_CHECK(len == 0 || write(p[1], bytes, len) == (ssize_t)len);
    close(p[1]);
    *read_end = p[0];
}

/* Both readers over the same bytes, frame by frame. */
static void check_readers_agree(const char *buf, size_t len)
{
    int fd;
    pipe_with(buf, len, &fd);
    size_t off = 0;
    for (;;) {
        struct ipc_hdr ph, rh;
        const char *payload = NULL;
        char *got = NULL;
        long n = ipc_frame_parse(buf + off, len - off, FUZZ_MAX_PAYLOAD, &ph, &payload);
        int r = ipc_read(fd, FUZZ_MAX_PAYLOAD, &rh, &got);
        if (n > 0) {
            FUZZ_CHECK((size_t)n == sizeof(ph) + ph.len && (size_t)n <= len - off);
            FUZZ_CHECK(ph.len <= FUZZ_MAX_PAYLOAD && payload == buf + off + sizeof(ph));
            FUZZ_CHECK(r == 0 && rh.kind == ph.kind && rh.len == ph.len);
            FUZZ_CHECK(ph.len ? got && !memcmp(got, payload, ph.len) && got[ph.len] == '\0'
                              : got == NULL);
            ipc_free(got, rh.len);
            off += (size_t)n;
            continue;
        }
        FUZZ_CHECK(got == NULL);
        if (n == -EMSGSIZE) {
            FUZZ_CHECK(ph.len > FUZZ_MAX_PAYLOAD && r == -EMSGSIZE);
        } else {
            /* Not a whole frame: a reader at EOF says clean end or cut short. */
            FUZZ_CHECK(n == 0);
            FUZZ_CHECK(r == (off == len ? -EPIPE : -EPROTO));
        }
        break;
    }
    close(fd);
}

/* payload written as one frame in two parts reads back unchanged. */
static void check_round_trip(uint32_t kind, const char *payload, size_t len, size_t split)
{
    int p[2];
    FUZZ_CHECK(pipe2(p, O_CLOEXEC) == 0);
    struct iovec parts[2] = {{(void *)payload, split}, {(void *)(payload + split), len - split}};
    FUZZ_CHECK(ipc_write(p[1], kind, parts, 2) == 0);
    close(p[1]);
    struct ipc_hdr hdr;
    char *got = NULL;
    FUZZ_CHECK(ipc_read(p[0], len, &hdr, &got) == 0);
    FUZZ_CHECK(hdr.kind == kind && hdr.len == len);
    FUZZ_CHECK(len ? got && !memcmp(got, payload, len) : got == NULL);
    struct ipc_hdr more;
    char *extra = NULL;
    FUZZ_CHECK(ipc_read(p[0], len, &more, &extra) == -EPIPE); /* nothing after it */
    ipc_free(got, len);
    close(p[0]);
}

/* An IPC_REQUEST payload built from parts describes exactly those parts. */
static void check_request_new(const char *bytes, size_t len, size_t split)
{
    size_t frame_len = 0;
    const char *input = split < len ? bytes + split : NULL;
    char *frame = ipc_request_new(7, 9, bytes, split, input, len - split, &frame_len);
    FUZZ_CHECK(frame);
    struct ipc_request rq;
    FUZZ_CHECK(frame_len >= sizeof(rq));
    memcpy(&rq, frame, sizeof(rq));
    FUZZ_CHECK(rq.timeout_ms == 7 && rq.memory_mb == 9 && rq.script_len == split);
    FUZZ_CHECK(rq.input_len == (input ? len - split : 0));
    FUZZ_CHECK(frame_len == sizeof(rq) + rq.script_len + rq.input_len);
    FUZZ_CHECK(!memcmp(frame + sizeof(rq), bytes, frame_len - sizeof(rq)));
    ipc_free(frame, frame_len);
}

/* Any bytes as an IPC_REQUEST payload: either refused, or split into parts
 * that lie inside it and add up; any bytes as file records: every record
 * walked lies inside them, and the walk ends. */
static void check_request_split(const char *bytes, size_t len)
{
    struct ipc_request rq;
    struct ipc_request_data d;
    if (ipc_request_split(bytes, len, &rq, &d) == 0) {
        FUZZ_CHECK(sizeof(rq) + d.script_len + d.input_len + d.stdin_len + d.files_len == len);
        FUZZ_CHECK(d.files + d.files_len == bytes + len);
    }
    size_t pos = 0, path_len, data_len, walked = 0;
    const char *path, *data;
    int r;
    while ((r = ipc_file_next(bytes, len, &pos, &path, &path_len, &data, &data_len)) == 1) {
        FUZZ_CHECK(path_len > 0 && path >= bytes && data + data_len <= bytes + len);
        FUZZ_CHECK(pos <= len && ++walked <= len);
    }
    FUZZ_CHECK(r == 0 || r == -EPROTO);
}

/* The template's end of IPC_SPAWN: arbitrary bytes, with or without a
 * descriptor riding along. */
static void check_recv_spawn(const char *bytes, size_t len, bool with_fd)
{
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    int passed = with_fd ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
    struct iovec iov = {(void *)bytes, len};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (with_fd) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &passed, sizeof(int));
    }
    FUZZ_CHECK(sendmsg(sv[0], &msg, MSG_NOSIGNAL) == (ssize_t)len);
    if (passed >= 0)
        close(passed);
    close(sv[0]);

    int before = lowest_free_fd();
    uint32_t slot = 0;
    int fd = -1;
    int r = ipc_recv_spawn(sv[1], &slot, &fd);
    struct ipc_hdr hdr;
    if (len >= sizeof(hdr))
        memcpy(&hdr, bytes, sizeof(hdr));
    bool well_formed = with_fd && len >= sizeof(hdr) + sizeof(uint32_t) && hdr.kind == IPC_SPAWN &&
                       hdr.len == sizeof(uint32_t);
    if (r == 0) {
        FUZZ_CHECK(well_formed && fd >= 0);
        /* Only an exact-size message is a spawn request; more bytes are not. */
        FUZZ_CHECK(len == sizeof(hdr) + sizeof(uint32_t));
        close(fd);
    } else {
        FUZZ_CHECK(r == -EPROTO || r == -EPIPE);
    }
    FUZZ_CHECK(lowest_free_fd() == before); /* nothing left open */
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    if (size > FUZZ_PIPE_BYTES)
        return 0;
    check_readers_agree(buf, size);

    uint32_t kind = 0;
    size_t split = 0;
    if (size >= sizeof(kind)) {
        memcpy(&kind, buf, sizeof(kind));
        split = (size_t)data[0] % (size - sizeof(kind) + 1);
        check_round_trip(kind, buf + sizeof(kind), size - sizeof(kind), split);
        check_request_new(buf + sizeof(kind), size - sizeof(kind), split);
        /* Past the frame header: a payload as the worker and child see it. */
        if (size >= sizeof(struct ipc_hdr))
            check_request_split(buf + sizeof(struct ipc_hdr), size - sizeof(struct ipc_hdr));
    }
    check_recv_spawn(buf, size, size % 2 == 0);
    return 0;
}
