/* The memory budget. See budget.h. */
#include "server/budget.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cgroup v1 reports "no limit" as the largest page count it can hold. */
#define V1_UNLIMITED (1ULL << 60)

/* One number from a one-line file; "max" (cgroup v2's "no limit") is
 * UINT64_MAX. -errno if the file is missing or holds something else. */
static int read_number(const char *path, uint64_t *out)
{
    char text[64] = {0};
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    bool ok = fgets(text, sizeof(text), f) != NULL;
    fclose(f);
    if (!ok)
        return -EIO;
    if (!strncmp(text, "max", 3)) {
        *out = UINT64_MAX;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || (*end && *end != '\n'))
        return -EINVAL;
    *out = v;
    return 0;
}

/* The smallest limit in file `name` of dir and each of its parents down to
 * (and including) root: a limit on any ancestor holds for us too. */
static uint64_t smallest_on_path(const char *root, const char *path, const char *name)
{
    char dir[4096];
    uint64_t best = UINT64_MAX;
    if (snprintf(dir, sizeof(dir), "%s%s", root, path) >= (int)sizeof(dir))
        return best;
    size_t root_len = strlen(root);
    for (;;) {
        size_t len = strlen(dir);
        while (len > root_len && dir[len - 1] == '/')
            dir[--len] = '\0';
        char file[4200];
        uint64_t v = UINT64_MAX;
        snprintf(file, sizeof(file), "%s/%s", dir, name);
        if (!read_number(file, &v) && v < best)
            best = v;
        char *slash = strrchr(dir, '/');
        if (len <= root_len || !slash || slash < dir + root_len)
            return best;
        *slash = '\0';
    }
}

/* Is controller in a comma-separated list? */
static bool has_controller(const char *list, size_t len, const char *controller)
{
    size_t n = strlen(controller);
    for (const char *p = list; p < list + len;) {
        const char *comma = memchr(p, ',', list + len - p);
        size_t item = comma ? (size_t)(comma - p) : (size_t)(list + len - p);
        if (item == n && !memcmp(p, controller, n))
            return true;
        p += item + 1;
    }
    return false;
}

static uint64_t mem_total(const char *meminfo)
{
    char line[256];
    uint64_t kb = 0;
    FILE *f = fopen(meminfo, "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "MemTotal:", 9)) {
            kb = strtoull(line + 9, NULL, 10);
            break;
        }
    fclose(f);
    return kb << 10;
}

int budget_read_limit(const char *proc_cgroup, const char *cgroup_root, const char *meminfo,
                      uint64_t *bytes, char *source, size_t source_len)
{
    uint64_t total = mem_total(meminfo);
    if (!total)
        return -EIO;
    *bytes = total;
    snprintf(source, source_len, "MemTotal");

    char line[4096];
    FILE *f = fopen(proc_cgroup, "re");
    if (!f)
        return 0; /* no cgroups: the machine's memory */
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "ID:controllers:/path"; cgroup v2 has ID 0 and no controllers. */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2[1] != '/')
            continue;
        char sub[4200];
        uint64_t v;
        const char *kind;
        if (!strncmp(line, "0::", 3)) {
            snprintf(sub, sizeof(sub), "%s", cgroup_root);
            v = smallest_on_path(sub, c2 + 1, "memory.max");
            kind = "cgroup v2";
        } else if (has_controller(c1 + 1, c2 - c1 - 1, "memory")) {
            snprintf(sub, sizeof(sub), "%s/memory", cgroup_root);
            v = smallest_on_path(sub, c2 + 1, "memory.limit_in_bytes");
            if (v >= V1_UNLIMITED)
                v = UINT64_MAX;
            kind = "cgroup v1";
        } else {
            continue;
        }
        if (v < *bytes) {
            *bytes = v;
            snprintf(source, source_len, "%s", kind);
        }
    }
    fclose(f);
    return 0;
}

int budget_plan_for(struct config *cfg, struct budget *b, uint64_t limit_mb, long cpus, FILE *log)
{
    b->limit_mb = limit_mb;
    b->reserved_mb = 0;
    b->running = 0;
    b->tmp_mb = ((uint64_t)cfg->tmp_kb + 1023) >> 10;
    if (cfg->workers == 0) {
        /* As many as the CPUs can share, as long as idle workers leave most of
         * the memory to the scripts, and one script at least its floor. */
        long by_cpu = (cpus > 0 ? cpus : 1) * BUDGET_WORKERS_PER_CPU;
        long share = (long)(limit_mb * BUDGET_WORKERS_SHARE / 100);
        long by_memory = (share - BUDGET_BASE_MB) / BUDGET_WORKER_MB;
        long floor =
            cfg->memory_mb < BUDGET_SCRIPT_FLOOR_MB ? cfg->memory_mb : BUDGET_SCRIPT_FLOOR_MB;
        long by_floor =
            ((long)limit_mb - BUDGET_BASE_MB - (long)b->tmp_mb - floor) / BUDGET_WORKER_MB;
        long n = by_cpu < by_memory ? by_cpu : by_memory;
        n = n < by_floor ? n : by_floor;
        cfg->workers = n < 2 ? 2 : n > CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : n;
    }
    if (cfg->warm_workers == 0)
        cfg->warm_workers = cpus > 2 ? cpus : 2;
    if (cfg->warm_workers > cfg->workers)
        cfg->warm_workers = cfg->workers;
    /* Sized for every worker running: a burst starts them all. */
    b->footprint_mb = BUDGET_BASE_MB + BUDGET_WORKER_MB * (uint64_t)cfg->workers;
    if (limit_mb < b->footprint_mb + b->tmp_mb + 16) {
        fprintf(log,
                "pyexecd: %llu MiB of memory (%s) cannot hold %ld workers (%llu MiB) and a "
                "script; give it more memory or fewer --workers\n",
                (unsigned long long)limit_mb, b->source, cfg->workers,
                (unsigned long long)b->footprint_mb);
        return -ENOMEM;
    }
    b->scripts_mb = limit_mb - b->footprint_mb;
    /* One script alone must fit what is left: memory limit and temp dir. */
    uint64_t room = b->scripts_mb - b->tmp_mb;
    if ((uint64_t)cfg->memory_mb > room) {
        fprintf(log,
                "pyexecd: memory per script lowered from %ld to %llu MiB: %llu MiB (%s) less "
                "%llu MiB for the service's own processes and %llu MiB for the script's temp "
                "dir\n",
                cfg->memory_mb, (unsigned long long)room, (unsigned long long)limit_mb, b->source,
                (unsigned long long)b->footprint_mb, (unsigned long long)b->tmp_mb);
        cfg->memory_mb = (long)room;
    }
    b->budget_mb = b->scripts_mb * (uint64_t)cfg->memory_overcommit / 100;
    return 0;
}

int budget_plan(struct config *cfg, struct budget *b, FILE *log)
{
    uint64_t bytes;
    int r = budget_read_limit("/proc/self/cgroup", "/sys/fs/cgroup", "/proc/meminfo", &bytes,
                              b->source, sizeof(b->source));
    if (r) {
        fprintf(log, "pyexecd: cannot read /proc/meminfo: %s\n", strerror(-r));
        return r;
    }
    uint64_t mb = bytes >> 20;
    if (cfg->memory_limit_mb > 0 && (uint64_t)cfg->memory_limit_mb < mb) {
        mb = (uint64_t)cfg->memory_limit_mb;
        snprintf(b->source, sizeof(b->source), "--memory-limit-mb");
    }
    return budget_plan_for(cfg, b, mb, sysconf(_SC_NPROCESSORS_ONLN), log);
}

uint64_t budget_script_mb(const struct budget *b, uint64_t memory_mb)
{
    return memory_mb + b->tmp_mb;
}

bool budget_fits(const struct budget *b, uint64_t mb)
{
    return !b->running || b->reserved_mb + mb <= b->budget_mb;
}

bool budget_reserve(struct budget *b, uint64_t mb)
{
    if (!budget_fits(b, mb))
        return false;
    b->reserved_mb += mb;
    b->running++;
    return true;
}

void budget_release(struct budget *b, uint64_t mb)
{
    b->reserved_mb -= mb < b->reserved_mb ? mb : b->reserved_mb;
    if (b->running)
        b->running--;
}
