/* A worker: forked from the template (so it shares the warm interpreter's
 * pages), it serves its acceptor channel one request at a time, each in a
 * fresh child, always keeping the next child forked and waiting. Runs in the
 * worker process; worker_main is called by the template right after fork. */
#ifndef PYEXEC_WORKER_H
#define PYEXEC_WORKER_H

#include <sys/types.h>

#include "common/config.h"

struct worker_args {
    const struct config *cfg;
    int chan;             /* SOCK_STREAM to the acceptor */
    unsigned slot;        /* its index in the pool, 0..workers-1 */
    pid_t template_pid;   /* the parent: the worker dies with it */
    const char *versions; /* embed_versions_json() */
    const char *scratch;  /* its own dir, made (and removed) by the template */
};

_Noreturn void worker_main(const struct worker_args *a);

#endif
