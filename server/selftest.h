/* The fail-closed start-up check: before /health turns 200, one script per
 * worker goes through the real fork path and must find a socket, an exec, a
 * write outside its temp dir and a forbidden syscall refused, while itself
 * running fine. Runs in the acceptor; started by main.c once the pool is warm. */
#ifndef PYEXEC_SELFTEST_H
#define PYEXEC_SELFTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "server/pool.h"

/* Submit the checks; done(ok, why, data) is called once, when every answer is
 * in. why names what was not refused. forbidden_dir is the service's own
 * directory; /, /tmp and /dev/shm are tried too. memory_mb is the server's
 * memory cap (a probe may not ask for more than any request). Returns 0 or
 * -errno. */
int selftest_start(struct pool *p, unsigned workers, const char *forbidden_dir, uint32_t memory_mb,
                   void (*done)(bool ok, const char *why, void *data), void *data);

#endif
