/* The channels: one SOCK_STREAM socketpair per worker (the drawing in
 * pool.c). Asks the template for a worker over ctl, reads IPC_READY and
 * IPC_REPLY frames, sends IPC_REQUEST and IPC_CANCEL, and handles a worker
 * that goes away (its job is retried once, then answered 500). A worker that
 * dies before READY failed its set-up: its slot asks again after a delay that
 * doubles with each failure in a row (BACKOFF_FIRST_MS up to BACKOFF_MAX_MS). Owns each
 * struct pool_slot's channel and read buffer. Called by queue.c (dispatch),
 * template_ctl.c (a new template) and pool.c (shutdown). Runs in the
 * acceptor, on its loop. */
#ifndef PYEXEC_CHANNEL_H
#define PYEXEC_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "server/pool_state.h"

/* Make a channel, hand the worker's end to the template, keep ours. When no
 * channel can be made (out of descriptors), ask again a second later. */
void slot_request_spawn(struct pool_slot *s);

/* Send one frame; takes payload (malloc'd, or NULL when len is 0). A failed
 * write takes the worker down. */
void slot_send(struct pool_slot *s, uint32_t kind, char *payload, size_t len);

/* The slot's script is over (answered, cancelled and answered, or its worker
 * gone): give its memory reservation back to the budget. */
void slot_release(struct pool_slot *s);

/* uv_close callback of a channel: frees its buffer; asks for a replacement
 * worker unless stopping; at shutdown closes ctl once every channel is shut. */
void slot_closed(uv_handle_t *h);

#endif
