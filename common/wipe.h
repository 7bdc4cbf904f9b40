/* Memory hygiene of the worker: every child it forks inherits a copy of its
 * whole memory, heap and stack alike, so nothing of one request may be left
 * readable in it when the next child is forked. Two rules, one function each:
 *   - every buffer the worker frees goes through wipe_free (worker/ and
 *     common/ipc.c poison free() itself, so a plain free does not compile;
 *     jansson's allocator is set to it);
 *   - the worker wipes its stack below the caller (wipe_stack) before it
 *     forks a spare: locals of the last request (limits, lengths, stack
 *     buffers of libc and jansson) die there.
 * Used by the worker (worker/) and by common/ipc.c; harmless anywhere else. */
#ifndef PYEXEC_WIPE_H
#define PYEXEC_WIPE_H

/* Zero all of p's allocation (malloc_usable_size, not just what was used),
 * then free it. NULL is fine. */
void wipe_free(void *p);

/* Zero the stack from the deepest point it ever reached up to just below the
 * caller's frame. Call it where nothing below the caller is live. */
void wipe_stack(void);

#endif
