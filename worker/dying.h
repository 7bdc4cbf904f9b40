/* What is left of finished requests in a worker: children killed once their
 * reply is out (their threads may linger), reaped later, off the request
 * path, and their temp dirs. A temp dir that is a tmpfs of its own is sealed
 * or unmounted once the next spare is forked (dying_unmount), and sits in a
 * batch unmounted whole; a plain directory is removed once its child is
 * reaped: by the worker when it holds a few entries, else by a process of
 * its own (thousands of files take a disk seconds to delete, and the next
 * request must not wait for that). Owns both lists and the batches. Called
 * by worker.c. Runs in the worker. */
#ifndef PYEXEC_DYING_H
#define PYEXEC_DYING_H

#include <stdbool.h>

#include "worker/child.h"
#include "worker/tmpdir.h"

#define DYING_MAX 16
/* Temp dirs a batch holds (tmpdir.h): one unmount, and one RCU grace period,
 * for this many requests. */
#define DYING_BATCH 16

struct dying {
    struct child children[DYING_MAX];
    int n;
    pid_t removers[DYING_MAX]; /* processes removing temp dirs */
    int nremovers;
    struct {
        char path[TMPDIR_PATH_MAX];
        bool reaped;
        bool failed;      /* detached in vain while its child lived: tried again at the reap */
    } unmount[DYING_MAX]; /* tmpfs temp dirs left for dying_unmount */
    int nunmount;
    char batch[TMPDIR_PATH_MAX];     /* where tmpfs temp dirs are made now ("": none) */
    int batch_dirs;                  /* temp dirs made in it */
    char old_batch[TMPDIR_PATH_MAX]; /* the one before it, for dying_unmount */
    bool no_batches;                 /* none could be made: each temp dir alone */
    bool tmpfs;                      /* set by the worker: every temp dir is a tmpfs of its own */
    bool broken; /* a temp dir could not be removed: the worker must be replaced */
};

/* The dir in which the next temp dir is made: base itself for plain temp
 * dirs; for tmpfs ones the current batch, a new one once DYING_BATCH were
 * made in it (the old one is then unmounted with everything in it by the
 * next dying_unmount: the worker makes a temp dir only for its next spare,
 * once the last one is gone). base again if no batch can be made. */
const char *dying_tmpdir_base(struct dying *d, const char *base);

/* The child dying_tmpdir_base gave a place for could not be made: its next
 * temp dir goes to a new batch (where a script runs under the worker's own
 * uid with no Landlock, it may have filled this one's room). */
void dying_tmpdir_failed(struct dying *d);

/* c was killed (and its fds closed): reap it later. A full list is first
 * reaped, waiting. */
void dying_add(struct dying *d, const struct child *c);

/* c's child has been reaped: its temp dir goes. */
void dying_gone(struct dying *d, const struct child *c);

/* Reap those that have exited (block: wait for every one, and for every
 * remover, then dying_unmount) and remove, or mark for dying_unmount, their
 * temp dirs. */
void dying_reap(struct dying *d, bool block);

/* Dispose of the tmpfs temp dirs dying_add and dying_gone queued: one whose
 * child is reaped is emptied and sealed in its batch (tmpdir_seal); one
 * whose child may still write there, or too big to empty here, is unmounted
 * alone; a batch left behind is unmounted whole. A failure while the child
 * lives is tried again at its reap; a failure after it replaces the worker,
 * which runs no script before that. An unmount waits for an RCU grace period
 * (a few hundred microseconds when the CPUs are busy, sleeping): the worker
 * calls this once its next spare is forked, so the wait overlaps the spare's
 * set-up instead of lengthening the time from a reply to the next spare. The
 * spare never sees those dirs in use or writable: no script runs in it
 * before the worker, past this call, sends it a request, and Landlock keeps
 * it to its own dir anyway. */
void dying_unmount(struct dying *d);

#endif
