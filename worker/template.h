/* The template: exec'd by the acceptor with a clean environment, it starts
 * CPython once, imports numpy and pandas, freezes the heap, then forks a
 * worker for every IPC_SPAWN the acceptor sends. Owns the workers' scratch
 * dirs (made before each fork, removed once the worker is reaped). Called by
 * pyexecd's main() when run with --template-fd; runs in the template. */
#ifndef PYEXEC_TEMPLATE_H
#define PYEXEC_TEMPLATE_H

#include "common/config.h"

/* Never returns: exits 0 when the acceptor closes ctl, 1 if Python fails.
 * scratch_prefix: each worker's scratch dir is this followed by mkdtemp's six
 * characters (the acceptor removes what a killed template leaves with it). */
_Noreturn void template_main(int ctl, const struct config *cfg, const char *scratch_prefix);

#endif
