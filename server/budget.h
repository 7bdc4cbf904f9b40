/* The memory budget: how much memory the service may use (its cgroup's limit,
 * else the machine's), what its own processes take, how many workers to run,
 * and which scripts may run now. A request runs only while the memory limits
 * of the running scripts, its own included, sum to at most the budget; the
 * others wait in the pool's queue. A script's limit is its memory limit plus
 * its temp dir: files live in memory too (a tmpfs, or Cloud Run's file
 * system). Runs in the acceptor: budget_plan once
 * before the pool starts (it settles cfg->workers and cfg->memory_mb, which the
 * template then inherits), the rest from server/pool.c's dispatch. */
#ifndef PYEXEC_BUDGET_H
#define PYEXEC_BUDGET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"

/* Measured PSS of an idle pyexecd (bench/fairness, BENCHMARKS.md "Memory"
 * and "Every range of the heap huge"): the acceptor and the template
 * together, and each worker with its spare (32.6-35.5 MiB with every whole
 * range of its heap on a huge page of its own, worker/forkheap.c). */
#define BUDGET_BASE_MB   57
#define BUDGET_WORKER_MB 36
/* Workers per CPU when --workers is 0, so that a few long scripts (each
 * holding a worker to its time limit) leave most workers free. */
#define BUDGET_WORKERS_PER_CPU 8
/* ... but idle workers take at most this share (percent) of the memory, and
 * leave one script at least BUDGET_SCRIPT_FLOOR_MB (or --memory-mb if less):
 * in a small container, fewer workers rather than scripts too small for
 * pandas work (the start-up self-test itself runs with 256 MiB). */
#define BUDGET_WORKERS_SHARE   50
#define BUDGET_SCRIPT_FLOOR_MB 256

struct budget {
    uint64_t limit_mb;     /* what the service may use: cgroup memory limit or MemTotal */
    char source[32];       /* "cgroup v2", "cgroup v1", "MemTotal" or "--memory-limit-mb" */
    uint64_t footprint_mb; /* its own processes: BUDGET_BASE_MB + BUDGET_WORKER_MB per worker */
    uint64_t scripts_mb;   /* limit_mb - footprint_mb: what scripts may really use */
    uint64_t tmp_mb;       /* each script's temp dir, added to its memory limit */
    uint64_t budget_mb;    /* scripts_mb x overcommit: what their limits may sum to */
    uint64_t reserved_mb;  /* the sum of the running scripts' limits */
    unsigned running;      /* scripts holding a reservation */
};

/* The memory limit in force for the process whose /proc/PID/cgroup is at
 * proc_cgroup: the smallest cgroup v2 memory.max (or v1
 * memory.limit_in_bytes) on its path below cgroup_root, and MemTotal of
 * meminfo; the smaller wins. Paths are parameters so tests can use their own
 * tree. Returns 0 with *bytes and source set, or -errno. */
int budget_read_limit(const char *proc_cgroup, const char *cgroup_root, const char *meminfo,
                      uint64_t *bytes, char *source, size_t source_len);

/* Plan for this process (/proc/self/cgroup, /sys/fs/cgroup, /proc/meminfo,
 * or cfg->memory_limit_mb where that is lower):
 * resolve cfg->workers when 0 (BUDGET_WORKERS_PER_CPU per CPU, fewer where
 * memory is short), lower cfg->memory_mb to what the scripts' share can give
 * (saying so on log), fill b. -ENOMEM (with a message on log) if the memory
 * cannot hold the service and one script of the smallest limit. */
int budget_plan(struct config *cfg, struct budget *b, FILE *log);

/* The same from a known limit (no files read): for tests, and for
 * budget_plan. */
int budget_plan_for(struct config *cfg, struct budget *b, uint64_t limit_mb, long cpus, FILE *log);

/* What a script with this memory limit reserves: memory_mb + tmp_mb. */
uint64_t budget_script_mb(const struct budget *b, uint64_t memory_mb);

/* Would mb (budget_script_mb) fit now? A script alone always fits. */
bool budget_fits(const struct budget *b, uint64_t mb);

/* Reserve mb for a script about to run; false if it does not fit now (it
 * waits). */
bool budget_reserve(struct budget *b, uint64_t mb);

/* Its script ended (or its worker died): give the reservation back. */
void budget_release(struct budget *b, uint64_t mb);

#endif
