/* The template's life cycle, from the acceptor's side (the template process
 * itself is worker/template.c): exec it with its flags, a clean environment
 * and the ctl socket as fd 3; when it exits, start it again a second later
 * (or report a fatal start); at shutdown, kill it if it outlives its workers.
 * Names the workers' scratch dirs (a prefix random per acceptor, passed to the
 * template) so that what a template killed with SIGKILL left behind can be
 * removed before the next one starts, and at exit.
 * Owns struct pool's template handle, restart_timer and kill_timer, and opens
 * ctl (which channel.c or pool.c closes at shutdown, once the last channel
 * has shut). Called by pool.c. Runs in the acceptor, on its loop. */
#ifndef PYEXEC_TEMPLATE_CTL_H
#define PYEXEC_TEMPLATE_CTL_H

#include <stdint.h>

#include "server/pool_state.h"

/* Choose this service's scratch dir prefix (random): once, before the first
 * start. 0, or a negative errno when no randomness is to be had. */
int template_name_scratch(struct pool *p);

/* Start the template and ask it for a worker for every slot that has none.
 * 0 or -errno. */
int template_start(struct pool *p);

/* Remove every scratch dir with this service's prefix (the template is dead,
 * so none is in use). Blocks: at shutdown, or on the loop's thread pool. */
void template_sweep_scratch(const struct pool *p);

/* Shutdown begins: a template that dies from now on is not started again. */
void template_no_restart(struct pool *p);

/* Shutdown: the channels are closing, so the template should exit by
 * itself; SIGKILL it if it still runs after timeout_ms. */
void template_kill_after(struct pool *p, uint64_t timeout_ms);

#endif
