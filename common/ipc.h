/* The one frame format spoken between acceptor, template, workers and children,
 * and the blocking helpers to read and write it. Used in every process; the
 * acceptor parses with ipc_frame_parse from its libuv read buffer.
 *
 * A frame is a header, then len payload bytes:
 *
 *     uint32 kind | uint32 len | payload[len]          (host byte order)
 *
 * kind         direction                 payload
 * IPC_SPAWN    acceptor -> template      uint32 slot; the worker's socket rides along as
 *                                        SCM_RIGHTS (SOCK_SEQPACKET, one frame a message)
 * IPC_READY    worker -> acceptor        JSON {"pid", "versions", "sandbox"}
 *              child -> worker           empty: set-up done, confined, waiting for its request;
 *                                        non-empty: why its set-up failed (it then exits)
 * IPC_REQUEST  acceptor -> worker ->     struct ipc_request, script bytes, input JSON bytes,
 *              child                     stdin bytes, input file records (input_len 0: no
 *                                        input; JSON text is never empty)
 * IPC_CANCEL   acceptor -> worker        empty: the client left, kill the child
 * IPC_REPLY    worker -> acceptor        struct ipc_reply, type bytes, HTTP body (JSON)
 * IPC_SPARE    worker -> acceptor        empty: the next child is forked and said READY, a
 *                                        request sent now starts at once (after READY and
 *                                        each REPLY whose next child came up)
 * IPC_ASLEEP   worker -> acceptor        empty: the running script was found asleep (at most
 *                                        once a child, before the REPLY; see IPC_SHORT_MS)
 * IPC_START    child -> worker           empty: request read, the script runs now;
 *                                        non-empty: why its set-up failed (it then exits)
 * IPC_RESULT   child -> worker           outcome JSON (embed_run's); believed only as the
 *                                        one frame after START of a child that exited 0
 *
 * Every IPC_REQUEST a worker reads is answered by exactly one IPC_REPLY. */
#ifndef PYEXEC_IPC_H
#define PYEXEC_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum ipc_kind {
    IPC_SPAWN = 1,
    IPC_READY,
    IPC_REQUEST,
    IPC_CANCEL,
    IPC_REPLY,
    IPC_RESULT,
    IPC_START,
    IPC_SPARE,
    IPC_ASLEEP,
};

/* A script just sent counts against the acceptor's --warm-workers for
 * IPC_SHORT_MS (server/queue.c), or less: from IPC_ASLEEP_FIRST_MS after the
 * acceptor sent it (or as soon as its child has it, if the worker was still
 * readying that child), every IPC_ASLEEP_EVERY_MS, the worker looks whether
 * it sleeps, and says so once (IPC_ASLEEP). Why: short scripts gain
 * nothing from running more at once than there are CPUs; one that runs, or
 * waits for a CPU, holds its place; one that sleeps (time.sleep, a lock)
 * does not hold the others back, and a CPU loop holds them back by
 * IPC_SHORT_MS at most. A script of several threads is never found asleep
 * (common/priority.h): it counts for IPC_SHORT_MS. */
#define IPC_SHORT_MS        20
#define IPC_ASLEEP_FIRST_MS 5
#define IPC_ASLEEP_EVERY_MS 3

struct ipc_hdr {
    uint32_t kind;
    uint32_t len;
};

struct ipc_request {
    uint32_t timeout_ms;
    uint32_t memory_mb;
    uint32_t script_len;
    uint32_t input_len;
    uint32_t stdin_len;
    uint32_t files_len; /* bytes of input file records, each an ipc_file then path, data */
    uint64_t sent_ns;   /* the acceptor's uv_hrtime() (CLOCK_MONOTONIC) at dispatch; 0: unsaid */
};

/* One input file in an IPC_REQUEST: path_len bytes of path (relative,
 * checked by the acceptor), then data_len bytes of content. */
struct ipc_file {
    uint32_t path_len;
    uint32_t data_len;
};

/* What an IPC_REQUEST carries besides its limits; any part may be empty. */
struct ipc_request_data {
    const char *script, *input, *stdin_data, *files;
    size_t script_len, input_len, stdin_len, files_len;
};

struct ipc_reply {
    uint32_t status; /* HTTP status */
    uint32_t type_len;
    uint32_t fork_us;     /* how long the worker's last fork of a spare took */
    uint32_t files_bytes; /* bytes of out/ files in the body (before base64) */
};

/* No frame may claim more than this; a larger len is a protocol error. */
#define IPC_MAX_PAYLOAD (256u << 20)
/* The most request data (script, input) an IPC_REQUEST may carry after its
 * struct ipc_request: what workers and children read; the acceptor refuses
 * (413) a request whose frame would carry more. */
#define IPC_MAX_REQUEST (IPC_MAX_PAYLOAD / 2)

/* Look for one whole frame at the start of buf. Returns the bytes it spans
 * (header + payload) and fills *hdr and *payload; 0 when more bytes are
 * needed; -EMSGSIZE when the header claims more than max payload bytes. */
long ipc_frame_parse(const char *buf, size_t len, size_t max, struct ipc_hdr *hdr,
                     const char **payload);

/* Write one frame whose payload is the concatenation of parts. Blocking;
 * retries on EINTR and short writes. Returns 0 or -errno. */
int ipc_write(int fd, uint32_t kind, const struct iovec *parts, int nparts);

/* Read one frame (blocking). *payload is malloc'd (NUL-terminated for
 * convenience; free with ipc_free) or NULL when len is 0. Returns 0, -EPIPE
 * on a clean EOF before a header, -EMSGSIZE over max, -EPROTO on a frame cut
 * short, or -errno. */
int ipc_read(int fd, size_t max, struct ipc_hdr *hdr, char **payload);

/* IPC_SPAWN over the template's SOCK_SEQPACKET socket: one message holding
 * the frame and, as SCM_RIGHTS, the worker's end of its channel. Returns 0 or
 * -errno; ipc_recv_spawn returns -EPIPE when the acceptor is gone and -EINTR
 * when a signal came first. */
int ipc_send_spawn(int sock, uint32_t slot, int fd);
int ipc_recv_spawn(int sock, uint32_t *slot, int *fd);

/* Build an IPC_REQUEST payload (malloc'd, length in *len); input may be
 * NULL. Returns NULL on ENOMEM or when a part passes IPC_MAX_PAYLOAD. */
char *ipc_request_build(uint32_t timeout_ms, uint32_t memory_mb, const struct ipc_request_data *d,
                        size_t *len);

/* The same with a script and input only. */
char *ipc_request_new(uint32_t timeout_ms, uint32_t memory_mb, const char *script,
                      size_t script_len, const char *input, size_t input_len, size_t *len);

/* Split an IPC_REQUEST payload into its parts. Returns 0, or -EPROTO when the
 * lengths do not add up. The parts point into payload. */
int ipc_request_split(const char *payload, size_t len, struct ipc_request *rq,
                      struct ipc_request_data *d);

/* Walk input file records: at *pos in files (files_len bytes), fill the next
 * one's path and data and advance *pos. Returns 1, 0 at the end, -EPROTO when
 * a record runs past the end or has an empty path. */
int ipc_file_next(const char *files, size_t files_len, size_t *pos, const char **path,
                  size_t *path_len, const char **data, size_t *data_len);

/* Wipe and free a payload: request data must not outlive its use. */
void ipc_free(char *payload, size_t len);

#endif
