/* The request bodies pyexec-bench can send: built-in workloads by name, or a
 * file. Called by main() once at start-up; runs in pyexec-bench only. */
#ifndef PYEXEC_BENCH_WORKLOADS_H
#define PYEXEC_BENCH_WORKLOADS_H

#include <stddef.h>

/* The JSON body of built-in workload `name` (static storage), or NULL. */
const char *workload_body(const char *name);

/* "trivial, numpy, pandas": for --help and error messages. */
const char *workload_names(void);

/* Read a whole request body from path into a malloc'd buffer.
 * Returns 0 or -errno; *body must be freed by the caller. */
int workload_read_file(const char *path, char **body, size_t *len);

#endif
