/* What is left of finished requests in a worker: children killed once their
 * reply is out (their threads may linger), reaped later, off the request
 * path, and their temp dirs. A temp dir that is a tmpfs of its own is
 * unmounted at once; a plain directory is removed once its child is reaped:
 * by the worker when it holds a few entries, else by a process of its own
 * (thousands of files take a disk seconds to delete, and the next request
 * must not wait for that). Owns both lists. Called by worker.c. Runs in the
 * worker. */
#ifndef PYEXEC_DYING_H
#define PYEXEC_DYING_H

#include <stdbool.h>

#include "worker/child.h"

#define DYING_MAX 16

struct dying {
    struct child children[DYING_MAX];
    int n;
    pid_t removers[DYING_MAX]; /* processes removing temp dirs */
    int nremovers;
    bool tmpfs;  /* set by the worker: every temp dir is a tmpfs of its own */
    bool broken; /* a temp dir could not be removed: the worker must be replaced */
};

/* c was killed (and its fds closed): reap it later. A full list is first
 * reaped, waiting. */
void dying_add(struct dying *d, const struct child *c);

/* c's child has been reaped: its temp dir goes. */
void dying_gone(struct dying *d, const struct child *c);

/* Reap those that have exited (block: wait for every one, and for every
 * remover) and remove their temp dirs. */
void dying_reap(struct dying *d, bool block);

#endif
