/* server/budget.c: the memory limit read from a cgroup tree (v2, v1, nested,
 * none), the plan made from it, and admission by reservations. The trees are
 * real files in a temporary directory laid out as /proc and /sys/fs/cgroup are. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "server/budget.h"

static char root[64];

static void put(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (char *s = strchr(path + strlen(root) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void drop(const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    assert_int_equal(unlink(path), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/pyexec-budget-XXXXXX");
    assert_non_null(mkdtemp(root));
    put("meminfo", "MemTotal:       24576000 kB\nMemFree:        1000 kB\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd);
}

static uint64_t limit(const char *cgroup_file, char *source)
{
    char proc[128], sys[128], meminfo[128];
    snprintf(proc, sizeof(proc), "%s/%s", root, cgroup_file);
    snprintf(sys, sizeof(sys), "%s/sys", root);
    snprintf(meminfo, sizeof(meminfo), "%s/meminfo", root);
    uint64_t bytes = 0;
    assert_int_equal(budget_read_limit(proc, sys, meminfo, &bytes, source, 32), 0);
    return bytes;
}

static void test_no_cgroup_is_memtotal(void **state)
{
    (void)state;
    char source[32];
    assert_int_equal(limit("absent", source), 24576000ULL << 10);
    assert_string_equal(source, "MemTotal");
}

/* A limit on a parent holds for its children; "max" is none. */
static void test_v2_nested(void **state)
{
    (void)state;
    char source[32];
    put("v2", "0::/a/b\n");
    put("sys/a/memory.max", "536870912\n");
    put("sys/a/b/memory.max", "max\n");
    assert_int_equal(limit("v2", source), 512ULL << 20);
    assert_string_equal(source, "cgroup v2");
}

/* Inside a container the cgroup is the root of what it sees. */
static void test_v2_container_root(void **state)
{
    (void)state;
    char source[32];
    put("v2root", "0::/\n");
    put("sys/memory.max", "2147483648\n");
    assert_int_equal(limit("v2root", source), 2048ULL << 20);
    assert_string_equal(source, "cgroup v2");
    drop("sys/memory.max"); /* the other trees have no limit at the top */
}

/* A hybrid host: the memory controller is on v1, v2 has none. */
static void test_v1_hybrid(void **state)
{
    (void)state;
    char source[32];
    put("v1", "9:name=systemd:/\n4:cpu,memory:/x/y\n0::/\n");
    put("sys/memory/x/y/memory.limit_in_bytes", "9223372036854771712\n");
    put("sys/memory/x/memory.limit_in_bytes", "1073741824\n");
    assert_int_equal(limit("v1", source), 1024ULL << 20);
    assert_string_equal(source, "cgroup v1");
}

/* A cgroup limit above the machine's memory is no limit. */
static void test_limit_above_memtotal(void **state)
{
    (void)state;
    char source[32];
    put("big", "0::/big\n");
    put("sys/big/memory.max", "109951162777600\n");
    assert_int_equal(limit("big", source), 24576000ULL << 10);
    assert_string_equal(source, "MemTotal");
}

static struct config defaults(void)
{
    struct config cfg;
    char *argv[] = {"pyexecd"};
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(config_load(&cfg, 1, argv, null, null), 0);
    fclose(null);
    cfg.workers = 0;
    return cfg;
}

/* Cloud Run's default size: fewer workers, and the per-script limit lowered
 * to what is left once the service's own processes are counted. */
static void test_plan_small_container(void **state)
{
    (void)state;
    struct config cfg = defaults();
    struct budget b = {.source = "cgroup v2"};
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(budget_plan_for(&cfg, &b, 512, 1, null), 0);
    fclose(null);
    /* Half the memory would hold 5 workers; 4 leave a script its 256 MiB. */
    long tmp_mb = cfg.tmp_kb >> 10;
    assert_int_equal(cfg.workers,
                     (512 - BUDGET_BASE_MB - tmp_mb - BUDGET_SCRIPT_FLOOR_MB) / BUDGET_WORKER_MB);
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(b.footprint_mb, BUDGET_BASE_MB + BUDGET_WORKER_MB * cfg.workers);
    assert_int_equal(b.tmp_mb, tmp_mb);
    assert_int_equal(cfg.memory_mb, 512 - b.footprint_mb - tmp_mb);
    assert_int_equal(budget_script_mb(&b, cfg.memory_mb), b.scripts_mb);
    assert_int_equal(b.budget_mb, b.scripts_mb * 4);
}

static void test_plan_large_machine(void **state)
{
    (void)state;
    struct config cfg = defaults();
    struct budget b = {.source = "MemTotal"};
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(budget_plan_for(&cfg, &b, 24000, 2, null), 0);
    fclose(null);
    assert_int_equal(cfg.workers, 2 * BUDGET_WORKERS_PER_CPU);
    assert_int_equal(cfg.memory_mb, 700);
    assert_int_equal(cfg.warm_workers, 2); /* one per CPU */
}

/* Warm workers: one per CPU, at least 2, at most the workers; a value set by
 * hand is kept within the workers. */
static void test_plan_warm_workers(void **state)
{
    (void)state;
    FILE *null = fopen("/dev/null", "w");
    struct budget b = {.source = "MemTotal"};
    struct config cfg = defaults();
    assert_int_equal(budget_plan_for(&cfg, &b, 24000, 1, null), 0);
    assert_int_equal(cfg.warm_workers, 2);
    cfg = defaults();
    assert_int_equal(budget_plan_for(&cfg, &b, 24000, 6, null), 0);
    assert_int_equal(cfg.warm_workers, 6);
    cfg = defaults();
    cfg.workers = 3;
    assert_int_equal(budget_plan_for(&cfg, &b, 24000, 6, null), 0);
    assert_int_equal(cfg.warm_workers, 3);
    cfg = defaults();
    cfg.warm_workers = 5;
    assert_int_equal(budget_plan_for(&cfg, &b, 24000, 2, null), 0);
    assert_int_equal(cfg.warm_workers, 5);
    fclose(null);
}

/* Set by hand, workers are kept; a machine that cannot hold them is refused. */
static void test_plan_refuses_too_small(void **state)
{
    (void)state;
    struct config cfg = defaults();
    cfg.workers = 4;
    struct budget b = {.source = "cgroup v2"};
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(budget_plan_for(&cfg, &b, 180, 2, null), -ENOMEM);
    cfg.workers = 2;
    assert_int_equal(budget_plan_for(&cfg, &b, 180, 2, null), 0);
    fclose(null);
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.memory_mb,
                     180 - BUDGET_BASE_MB - 2 * BUDGET_WORKER_MB - (cfg.tmp_kb >> 10));
}

static void test_reserve_release(void **state)
{
    (void)state;
    struct budget b = {.budget_mb = 1000, .scripts_mb = 250};
    for (int i = 0; i < 4; i++)
        assert_true(budget_reserve(&b, 250));
    assert_false(budget_reserve(&b, 250));
    assert_true(b.reserved_mb == 1000 && b.running == 4);
    budget_release(&b, 250);
    assert_true(budget_reserve(&b, 100));
    assert_false(budget_reserve(&b, 200));
    assert_true(budget_reserve(&b, 150));
    /* Alone, a script always runs. */
    struct budget tiny = {.budget_mb = 10};
    assert_true(budget_reserve(&tiny, 50));
    budget_release(&tiny, 50);
    assert_true(tiny.reserved_mb == 0 && tiny.running == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_cgroup_is_memtotal),  cmocka_unit_test(test_v2_nested),
        cmocka_unit_test(test_v2_container_root),      cmocka_unit_test(test_v1_hybrid),
        cmocka_unit_test(test_limit_above_memtotal),   cmocka_unit_test(test_plan_small_container),
        cmocka_unit_test(test_plan_large_machine),     cmocka_unit_test(test_plan_warm_workers),
        cmocka_unit_test(test_plan_refuses_too_small), cmocka_unit_test(test_reserve_release),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
