/* pyexec-bench: load-test a pyexec server over HTTP or HTTPS and report
 * throughput, latency percentiles and answers by status and error type.
 * Its own process; see options.c for the command line. */
#include "bench/loadgen.h"
#include "bench/options.h"
#include "bench/report.h"
#include "bench/workloads.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    struct options opts;
    /* A server closing while we write is an error to count, not our end. */
    signal(SIGPIPE, SIG_IGN);
    int rc = options_parse(&opts, argc, argv, stdout, stderr);
    if (rc == 1)
        return 0;
    if (rc < 0)
        return 2;

    char *body = NULL;
    size_t body_len;
    if (opts.body_file) {
        int err = workload_read_file(opts.body_file, &body, &body_len);
        if (err < 0) {
            fprintf(stderr, "pyexec-bench: cannot read --body '%s': %s\n", opts.body_file,
                    strerror(-err));
            return 2;
        }
    } else {
        const char *builtin = workload_body(opts.workload);
        body_len = strlen(builtin);
        body = strdup(builtin);
        if (!body)
            return 1;
    }

    if (opts.print_body) {
        fwrite(body, 1, body_len, stdout);
        free(body);
        return 0;
    }

    if (opts.insecure) /* also under --json, where the report is for a program */
        fprintf(stderr, "pyexec-bench: WARNING: -k/--insecure: the server's TLS certificate is "
                        "NOT verified\n");

    struct loadgen_result *result = malloc(sizeof(*result));
    if (!result || loadgen_run(&opts, body, body_len, result) < 0) {
        free(result);
        free(body);
        return 1;
    }
    if (opts.json)
        rc = report_json(stdout, &opts, result);
    else
        rc = report_text(stdout, &opts, result);
    free(result);
    free(body);
    return rc < 0 ? 1 : 0;
}
