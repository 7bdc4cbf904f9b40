/* The wait queue: a bounded FIFO of jobs with a wait deadline, and dispatch,
 * which hands the oldest job to an idle worker (in queue.c, pick_worker says
 * which). Owns the job list (struct pool's head/tail/queued) and the sweep
 * timer. Implements pool_submit and pool_cancel (server/pool.h); the channels
 * (channel.c) and the shutdown (pool.c) call the rest. Runs in the acceptor,
 * on its loop. */
#ifndef PYEXEC_QUEUE_H
#define PYEXEC_QUEUE_H

#include <stdbool.h>

#include "server/pool_state.h"

/* front: a retried job goes first, it has waited already. */
void queue_push(struct pool *p, struct pool_job *j, bool front);
void queue_remove(struct pool *p, struct pool_job *j);

/* Answer a job from the pool itself ({"error": msg, "type": type}); frees its frame. */
void job_fail(struct pool_job *j, int status, const char *type, const char *msg);

/* Free the job's IPC_REQUEST frame (it has its answer, or is cancelled). */
void job_free_frame(struct pool_job *j);

/* Hand queued jobs to idle workers while there are both. */
void dispatch(struct pool *p);

#endif
