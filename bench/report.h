/* pyexec-bench's output: the human report and the one-object --json form of a
 * loadgen_result. Called by main() after the run; runs in pyexec-bench only. */
#ifndef PYEXEC_BENCH_REPORT_H
#define PYEXEC_BENCH_REPORT_H

#include "bench/loadgen.h"
#include "bench/options.h"

#include <stdio.h>

/* Both return 0 or -errno. Latencies are printed in milliseconds. */
int report_text(FILE *out, const struct options *opts, const struct loadgen_result *r);
int report_json(FILE *out, const struct options *opts, const struct loadgen_result *r);

#endif
