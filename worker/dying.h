/* The worker's dying children: killed once their reply is out (their
 * threads may linger), reaped later, off the request path, and then their
 * temp dirs removed for good. Owns the list. Called by worker.c. Runs in
 * the worker. */
#ifndef PYEXEC_DYING_H
#define PYEXEC_DYING_H

#include <stdbool.h>

#include "worker/child.h"

#define DYING_MAX 16

struct dying {
    struct child children[DYING_MAX];
    int n;
};

/* c was killed (and its fds closed): reap it later. A full list is first
 * reaped, waiting. */
void dying_add(struct dying *d, const struct child *c);

/* Reap those that have exited (block: wait for every one) and remove their
 * temp dirs. */
void dying_reap(struct dying *d, bool block);

#endif
