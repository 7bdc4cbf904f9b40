/* Keeps the worker cheap to fork: its copy of the interpreter's heap on
 * transparent huge pages, its own per-request allocations off them, and its
 * children's first allocations off fresh ones. */
#ifndef PYEXEC_FORKHEAP_H
#define PYEXEC_FORKHEAP_H

/* Called once by worker.c before the first spare child; runs in the worker.
 * Best effort, never fails: on a kernel without MADV_COLLAPSE (before 6.1,
 * gVisor) or with THP off, only the draining happens. */
void forkheap_settle(void);

#endif
