/* The template's life cycle, from the acceptor's side (the template process
 * itself is worker/template.c): exec it with its flags, a clean environment
 * and the ctl socket as fd 3; when it exits, start it again a second later
 * (or report a fatal start); at shutdown, kill it if it outlives its workers.
 * Owns struct pool's template handle, restart_timer and kill_timer, and opens
 * ctl (which channel.c or pool.c closes at shutdown, once the last channel
 * has shut). Called by pool.c. Runs in the acceptor, on its loop. */
#ifndef PYEXEC_TEMPLATE_CTL_H
#define PYEXEC_TEMPLATE_CTL_H

#include <stdint.h>

#include "server/pool_state.h"

/* Start the template and ask it for a worker for every slot that has none.
 * 0 or -errno. */
int template_start(struct pool *p);

/* Shutdown begins: a template that dies from now on is not started again. */
void template_no_restart(struct pool *p);

/* Shutdown: the channels are closing, so the template should exit by
 * itself; SIGKILL it if it still runs after timeout_ms. */
void template_kill_after(struct pool *p, uint64_t timeout_ms);

#endif
