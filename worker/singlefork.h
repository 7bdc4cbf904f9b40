/* fork() for the processes that hold an embedded CPython and fork without
 * its hooks (PyOS_BeforeFork/AfterFork_Child): the template forking a worker,
 * a worker forking a child. Skipping them is safe only while the forking
 * process has one thread: a second one could hold the GIL, the import lock
 * or a malloc arena lock at the moment of the fork, and the child would
 * inherit it locked forever. Nothing starts a thread there today (BLAS runs
 * with one); this checks it on every fork, so a module that starts one (a
 * --preload, a library update) fails loudly instead of hanging children at
 * random. Runs in the template and in each worker. */
#ifndef PYEXEC_SINGLEFORK_H
#define PYEXEC_SINGLEFORK_H

#include <sys/types.h>

/* The calling process's thread count, from /proc/self; -errno if it cannot
 * be read. */
int singlefork_threads(void);

/* fork(), or -1 with errno EDEADLK (a second thread runs) or the error of
 * reading the thread count, without forking. */
pid_t singlefork(void);

#endif
