/* The service's one configuration table: every knob, its flag, its environment
 * variable, default, bounds and help. Filled once in the acceptor (flags over
 * environment over defaults) and handed to the template as flags. */
#ifndef PYEXEC_CONFIG_H
#define PYEXEC_CONFIG_H

#include <stdio.h>

/* The largest request body: as much as a worker reads in one request frame
 * (IPC_MAX_REQUEST, checked in config.c), so no accepted body can be one a
 * worker refuses. */
#define CONFIG_BODY_KB_MAX 131072

/* The most workers: the acceptor's per-dispatch scratch arrays are this long. */
#define CONFIG_WORKERS_MAX 256

/* X(field, flag, env, default, min, max, help)
 * Per-request fields (timeout_ms, memory_mb) may only lower the server's value:
 * the server's value is the cap. workers = 0 means "from CPUs and memory",
 * warm_workers = 0 "from CPUs", both resolved in the acceptor by server/budget.c. */
#define CONFIG_INTS(X)                                                                             \
    X(port, "port", "PORT", 8080, 0, 65535, "TCP port to listen on (0: any free port)")            \
    X(workers, "workers", "PYEXEC_WORKERS", 0, 0, CONFIG_WORKERS_MAX,                              \
      "worker processes, each running one script at a time; 0 = 8 per CPU, fewer where memory is " \
      "short")                                                                                     \
    X(warm_workers, "warm-workers", "PYEXEC_WARM_WORKERS", 0, 0, CONFIG_WORKERS_MAX,               \
      "workers kept running while idle; the others stop after --worker-idle-ms without a request " \
      "and start again when requests wait; 0 = one per CPU, at least 2 (at most --workers)")       \
    X(worker_idle_ms, "worker-idle-ms", "PYEXEC_WORKER_IDLE_MS", 10000, 1000, 86400000,            \
      "how long a worker beyond --warm-workers stays idle before it stops")                        \
    X(queue, "queue", "PYEXEC_QUEUE", 64, 0, 100000,                                               \
      "requests that may wait for a worker; beyond it: 503")                                       \
    X(queue_timeout_ms, "queue-timeout-ms", "PYEXEC_QUEUE_TIMEOUT_MS", 10000, 1, 600000,           \
      "longest wait for a worker before 503")                                                      \
    X(timeout_ms, "timeout-ms", "PYEXEC_TIMEOUT_MS", 15000, 1, 3600000,                            \
      "wall-clock limit per script (cap for the request's timeout_ms)")                            \
    X(cpu_ms, "cpu-ms", "PYEXEC_CPU_MS", 15000, 1, 3600000, "CPU-time limit per script")           \
    X(memory_mb, "memory-mb", "PYEXEC_MEMORY_MB", 700, 16, 1048576,                                \
      "memory per script (cap for the request's memory_mb)")                                       \
    X(memory_limit_mb, "memory-limit-mb", "PYEXEC_MEMORY_LIMIT_MB", 0, 0, 1073741824,              \
      "memory the whole service may use; 0 = its cgroup's limit, else the machine's")              \
    X(memory_overcommit, "memory-overcommit", "PYEXEC_MEMORY_OVERCOMMIT", 400, 100, 10000,         \
      "percent of the memory left to scripts that their limits may sum to")                        \
    X(script_kb, "script-kb", "PYEXEC_SCRIPT_KB", 100, 1, 65536, "largest script")                 \
    X(body_kb, "body-kb", "PYEXEC_BODY_KB", 12288, 1, CONFIG_BODY_KB_MAX,                          \
      "largest request body (script, input, stdin, files); larger: 413. Default: 8 MiB of "        \
      "input files as base64 plus the script")                                                     \
    X(output_kb, "output-kb", "PYEXEC_OUTPUT_KB", 1024, 1, 1048576,                                \
      "cap on each of stdout and stderr")                                                          \
    X(result_kb, "result-kb", "PYEXEC_RESULT_KB", 10240, 1, 1048576, "cap on the result JSON")     \
    X(tmp_kb, "tmp-kb", "PYEXEC_TMP_KB", 32768, 0, 1048576,                                        \
      "private temp dir per script (and largest file in it). Default: 8 MiB of input files, "      \
      "10 MiB of output files and room to work")                                                   \
    X(input_files_kb, "input-files-kb", "PYEXEC_INPUT_FILES_KB", 8192, 0, 1048576,                 \
      "total size of a request's input files (decoded); larger: 413")                              \
    X(input_files, "input-files", "PYEXEC_INPUT_FILES", 1000, 0, 100000,                           \
      "most input files in a request; more: 413")                                                  \
    X(output_files_kb, "output-files-kb", "PYEXEC_OUTPUT_FILES_KB", 10240, 0, 1048576,             \
      "total size of the files returned from out/; the rest is left out (truncated)")              \
    X(namespaces, "namespaces", "PYEXEC_NAMESPACES", 1, 0, 1,                                      \
      "1: each worker enters the namespaces the host allows (as a normal user, a user namespace "  \
      "first: required); 0: none (the temp dir is then measured, not a tmpfs; root only)")         \
    X(max_connections, "max-connections", "PYEXEC_MAX_CONNECTIONS", 1024, 1, 1000000,              \
      "open client connections; beyond it new ones are closed")                                    \
    X(idle_timeout_ms, "idle-timeout-ms", "PYEXEC_IDLE_TIMEOUT_MS", 30000, 100, 3600000,           \
      "a connection idle or trickling a request this long is closed")                              \
    X(shutdown_timeout_ms, "shutdown-timeout-ms", "PYEXEC_SHUTDOWN_TIMEOUT_MS", 8000, 0, 600000,   \
      "on SIGTERM, how long in-flight requests may finish")

/* X(field, flag, env, default, help) */
#define CONFIG_STRINGS(X)                                                                          \
    X(host, "host", "PYEXEC_HOST", "0.0.0.0", "address to listen on")                              \
    X(user, "user", "PYEXEC_USER", "65534",                                                        \
      "uid (or user name) scripts run as when started as root; worker i uses it minus i")          \
    X(project, "project", "GOOGLE_CLOUD_PROJECT", "",                                              \
      "Google Cloud project: log lines then link to Cloud Trace")                                  \
    X(preload, "preload", "PYEXEC_PRELOAD", "numpy,pandas",                                        \
      "modules the template imports before forking (comma-separated); one that fails to "          \
      "import stops start-up")

#define CONFIG_STRING_MAX 256

struct config {
#define X_INT(field, flag, env, def, min, max, help) long field;
#define X_STR(field, flag, env, def, help)           char field[CONFIG_STRING_MAX];
    CONFIG_INTS(X_INT) CONFIG_STRINGS(X_STR)
#undef X_INT
#undef X_STR
};

/* Fill cfg from defaults, then the environment, then argv (--flag=V or --flag V).
 * Returns 0, 1 when --help was given (usage printed to out), or -EINVAL with
 * a message on err. */
int config_load(struct config *cfg, int argc, char **argv, FILE *out, FILE *err);

void config_usage(FILE *out);

/* Write cfg as "--flag=value" strings into argv[0..n) (each malloc'd); returns
 * the count. The template re-reads its configuration from these. */
int config_to_flags(const struct config *cfg, char **argv, int max);

#endif
