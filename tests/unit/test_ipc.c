/* The frame format: round trips, frames cut short, oversized frames, SCM_RIGHTS. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ipc.h"

static void test_round_trip(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct ipc_request rq = {.timeout_ms = 5, .memory_mb = 6, .script_len = 3, .input_len = 2};
    struct iovec parts[3] = {{&rq, sizeof(rq)}, {"abc", 3}, {"[]", 2}};
    assert_int_equal(ipc_write(p[1], IPC_REQUEST, parts, 3), 0);
    assert_int_equal(ipc_write(p[1], IPC_CANCEL, NULL, 0), 0);

    struct ipc_hdr h;
    char *payload;
    assert_int_equal(ipc_read(p[0], 1024, &h, &payload), 0);
    assert_int_equal(h.kind, IPC_REQUEST);
    assert_int_equal(h.len, sizeof(rq) + 5);
    assert_memory_equal(payload, &rq, sizeof(rq));
    assert_memory_equal(payload + sizeof(rq), "abc[]", 5);
    ipc_free(payload, h.len);

    assert_int_equal(ipc_read(p[0], 1024, &h, &payload), 0);
    assert_int_equal(h.kind, IPC_CANCEL);
    assert_int_equal(h.len, 0);
    assert_null(payload);

    close(p[1]);
    assert_int_equal(ipc_read(p[0], 1024, &h, &payload), -EPIPE); /* clean EOF */
    close(p[0]);
}

static void test_cut_short_and_oversized(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct ipc_hdr h = {.kind = IPC_RESULT, .len = 100};
    assert_int_equal(write(p[1], &h, sizeof(h)), sizeof(h));
    assert_int_equal(write(p[1], "only ten..", 10), 10);
    close(p[1]);
    char *payload;
    assert_int_equal(ipc_read(p[0], 1024, &h, &payload), -EPROTO);
    close(p[0]);

    assert_int_equal(pipe(p), 0);
    h = (struct ipc_hdr){.kind = IPC_RESULT, .len = 5000};
    assert_int_equal(write(p[1], &h, sizeof(h)), sizeof(h));
    assert_int_equal(ipc_read(p[0], 1024, &h, &payload), -EMSGSIZE);
    close(p[0]);
    close(p[1]);

    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "abc", 3), 3); /* half a header */
    close(p[1]);
    assert_int_equal(ipc_read(p[0], 1024, &h, &payload), -EPROTO);
    close(p[0]);
}

static void test_parse_incremental(void **state)
{
    (void)state;
    char buf[64];
    struct ipc_hdr h = {.kind = IPC_REPLY, .len = 4};
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), "body", 4);
    struct ipc_hdr got;
    const char *payload;
    for (size_t n = 0; n < sizeof(h) + 4; n++)
        assert_int_equal(ipc_frame_parse(buf, n, 64, &got, &payload), 0);
    assert_int_equal(ipc_frame_parse(buf, sizeof(h) + 4, 64, &got, &payload), sizeof(h) + 4);
    assert_int_equal(got.kind, IPC_REPLY);
    assert_memory_equal(payload, "body", 4);
    assert_int_equal(ipc_frame_parse(buf, sizeof(h) + 4, 3, &got, &payload), -EMSGSIZE);
    h.len = IPC_MAX_PAYLOAD + 1;
    memcpy(buf, &h, sizeof(h));
    assert_int_equal(ipc_frame_parse(buf, sizeof(h), (size_t)-1, &got, &payload), -EMSGSIZE);
}

static void test_spawn_passes_fd(void **state)
{
    (void)state;
    int sv[2], p[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ipc_send_spawn(sv[0], 7, p[1]), 0);
    uint32_t slot;
    int fd;
    assert_int_equal(ipc_recv_spawn(sv[1], &slot, &fd), 0);
    assert_int_equal(slot, 7);
    assert_int_equal(write(fd, "x", 1), 1); /* the received fd is the pipe's write end */
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    close(sv[0]);
    assert_int_equal(ipc_recv_spawn(sv[1], &slot, &fd), -EPIPE);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_cut_short_and_oversized),
        cmocka_unit_test(test_parse_incremental),
        cmocka_unit_test(test_spawn_passes_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
