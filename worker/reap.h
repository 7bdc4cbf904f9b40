/* Reaping children, and what they used. The template (its workers and their
 * orphans), each worker (its dying children, dying.c) and the supervisor
 * (the request's child, supervise.c) all wait through reap_wait. The
 * template and the worker catch SIGCHLD without SA_RESTART (to wake their
 * waits), so any wait may be interrupted: reap_wait waits again then, so a
 * child is never taken for reaped while it still runs. Runs in the template
 * and the workers. */
#ifndef PYEXEC_REAP_H
#define PYEXEC_REAP_H

#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* wait4(pid, status, flags, ru), again after EINTR. pid -1: any child; flags
 * 0 waits, WNOHANG does not. Returns the pid reaped, 0 (WNOHANG) when none
 * has exited yet, or -errno (-ECHILD: no such child). status and ru may be
 * NULL. */
pid_t reap_wait(pid_t pid, int flags, int *status, struct rusage *ru);

/* SIGCHLD as a readable pipe, so a poll wakes for a child that died just
 * before it: makes fds (both ends O_NONBLOCK, O_CLOEXEC) and catches SIGCHLD
 * (not stops) by writing a byte to fds[1]. One per process: a later call
 * (a worker, forked from the template) takes the handler over. 0 or -errno. */
int reap_signal_pipe(int fds[2]);

/* Empty that pipe after a wake-up. */
void reap_signal_drain(int fd);

/* User plus system CPU time in microseconds. */
uint64_t rusage_cpu_us(const struct rusage *ru);

#endif
