/* forkheap_settle: the worker's heap drained of scattered free chunks,
 * collapsed onto huge pages and grown past its edge on small pages before its
 * first fork. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker/forkheap.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0 /* ASan's allocator has no brk heap to settle */
#endif

static uintptr_t top_chunk_start(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (uintptr_t)sbrk(0) - mi.keepcost;
}

static void test_drained_heap_allocates_from_the_top(void **state)
{
    (void)state;
    if (UNDER_ASAN)
        skip();
    /* Free chunks of every small size scattered through the heap, as the
     * template's interpreter leaves them. */
    enum { N = 4000 };
    static void *held[N];
    for (int i = 0; i < N; i++)
        assert_non_null(held[i] = malloc(16 + (i % 64) * 16));
    for (int i = 0; i < N; i += 2)
        free(held[i]);
    struct mallinfo2 mi = mallinfo2();
    assert_true(mi.fordblks > mi.keepcost + 100000);
    uintptr_t top = top_chunk_start();

    forkheap_settle();
    /* Every small size now comes from fresh memory at the top. */
    for (size_t size = 16; size <= 1024; size += 16) {
        void *p = malloc(size);
        assert_true((uintptr_t)p >= top);
        free(p);
    }
}

/* THP on and MADV_COLLAPSE known to this kernel (6.1+, not gVisor)? Asked
 * once, before any test: a forkheap_settle that left huge pages off would
 * otherwise turn the tests after it into skips. */
static int collapse_ok;

static int collapse_available(void)
{
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return 0;
    int got = fgets(mode, sizeof(mode), f) != NULL;
    fclose(f);
    if (!got || strstr(mode, "[never]"))
        return 0;
    size_t len = 4UL << 20;
    char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return 0;
    char *aligned = (char *)(((uintptr_t)raw + (2UL << 20) - 1) & ~((2UL << 20) - 1));
    memset(aligned, 1, 2UL << 20);
    int ok = madvise(aligned, 2UL << 20, 25 /* MADV_COLLAPSE */) == 0;
    munmap(raw, len);
    return ok;
}

struct mapping {
    uintptr_t lo, hi;
    bool heap, no_huge; /* [heap]; advised MADV_NOHUGEPAGE */
    long huge_kb;       /* its AnonHugePages */
};

/* This process's mappings, from /proc/self/smaps (the first max of them);
 * 0 if it cannot be read. No cmocka assertion: forked children call it. */
static int read_mappings(struct mapping *m, int max)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int n = 0;
    long v;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        uintptr_t lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            if (n == max)
                break;
            m[n++] = (struct mapping){lo, hi, strstr(line, "[heap]") != NULL, false, 0};
        } else if (n && sscanf(line, "AnonHugePages: %ld kB", &v) == 1) {
            m[n - 1].huge_kb = v;
        } else if (n && !strncmp(line, "VmFlags:", 8)) {
            m[n - 1].no_huge = strstr(line, " nh") != NULL;
        }
    }
    fclose(f);
    return n;
}

static struct mapping maps[8192];

/* AnonHugePages summed over the [heap] mappings, or (start != 0) of the
 * mapping that starts at start, -1 if none does; *no_huge: that mapping is
 * advised MADV_NOHUGEPAGE. */
static long huge_kb(uintptr_t start, bool *no_huge)
{
    int n = read_mappings(maps, 8192);
    long kb = start ? -1 : 0;
    for (int i = 0; i < n; i++) {
        if (start && maps[i].lo == start) {
            if (no_huge)
                *no_huge = maps[i].no_huge;
            return maps[i].huge_kb;
        }
        if (!start && maps[i].heap)
            kb += maps[i].huge_kb;
    }
    return kb;
}

/* Grow the brk heap by n small objects, written to, on 4 KiB pages; kept:
 * the heap must stay this large. */
static void grow_small_pages(int n)
{
    assert_int_equal(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), 0);
    for (int i = 0; i < n; i++)
        memset(malloc(200), 1, 200);
    assert_int_equal(prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0), 0);
}

static void test_heap_goes_onto_huge_pages(void **state)
{
    (void)state;
    if (UNDER_ASAN || !collapse_ok)
        skip();
    /* ~8 MiB (as the worker's heap is where its writes split the huge
     * pages it shared with the template). */
    grow_small_pages(40000);
    long before = huge_kb(0, NULL);
    forkheap_settle();
    assert_true(huge_kb(0, NULL) >= before + 3 * 2048);
}

/* Whole 2 MiB ranges inside the [heap] mappings that may be huge: not in
 * one advised MADV_NOHUGEPAGE (an earlier forkheap_settle's grown edge,
 * now in the middle of the heap). */
static long collapsible_ranges(void)
{
    int n = read_mappings(maps, 8192);
    long ranges = 0;
    for (int i = 0; i < n; i++) {
        uintptr_t first = (maps[i].lo + (2UL << 20) - 1) & ~((2UL << 20) - 1);
        uintptr_t last = maps[i].hi & ~((2UL << 20) - 1);
        if (maps[i].heap && !maps[i].no_huge && last > first)
            ranges += (long)((last - first) >> 21);
    }
    return ranges;
}

/* A counter of /proc/vmstat, or -1. */
static long vmstat(const char *name)
{
    FILE *f = fopen("/proc/vmstat", "r");
    char key[64];
    long v, found = -1;
    while (f && found < 0 && fscanf(f, "%63s %ld", key, &v) == 2)
        if (!strcmp(key, name))
            found = v;
    if (f)
        fclose(f);
    return found;
}

/* Workers start together and collapse the very pages they share with the
 * template at the same moment: each must still end with every whole 2 MiB
 * range of its heap huge (a range the other was copying is tried again). */
static void test_siblings_collapse_their_whole_heaps(void **state)
{
    (void)state;
    if (UNDER_ASAN || !collapse_ok)
        skip();
    grow_small_pages(200000); /* ~40 MiB, which the siblings share */
    long whole = collapsible_ranges();
    assert_true(whole >= 8);

    enum { SIBLINGS = 4 };
    long alloc_failed = vmstat("thp_collapse_alloc_failed");
    int go[2];
    pid_t pids[SIBLINGS];
    assert_int_equal(pipe(go), 0);
    for (int i = 0; i < SIBLINGS; i++) {
        assert_true((pids[i] = fork()) >= 0);
        if (pids[i] == 0) {
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 0) /* all start at the pipe's close */
                _exit(2);
            forkheap_settle();
            _exit(huge_kb(0, NULL) >= whole * 2048 ? 0 : 1);
        }
    }
    close(go[0]);
    close(go[1]);
    int failed = 0;
    for (int i = 0; i < SIBLINGS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        failed += WEXITSTATUS(status) != 0;
    }
    /* No free 2 MiB page to collapse into is the machine's state, not the
     * code's: nothing to judge then. */
    if (failed && vmstat("thp_collapse_alloc_failed") > alloc_failed)
        skip();
    assert_int_equal(failed, 0);
}

static long rss_anon_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

#define BLOCK (64 << 10) /* below the mmap threshold: from the heap */

/* The case a worker may start in: its heap ending on a 2 MiB boundary
 * (glibc.malloc.hugetlb=1, set for this test as for the service, keeps it
 * on one where THP is "madvise") with almost nothing left in the top chunk.
 * After forkheap_settle a child allocating what the spare's warm-up and the
 * script's compile do must not fault in a 2 MiB huge page, and huge pages
 * must be back on for the script's own large arrays. */
static void test_children_start_on_small_pages(void **state)
{
    (void)state;
    if (UNDER_ASAN || !collapse_ok)
        skip();
    void *end = sbrk(0);
    while (sbrk(0) == end) /* a growth of glibc's own */
        assert_non_null(malloc(BLOCK));
    if ((uintptr_t)sbrk(0) % (2UL << 20))
        skip(); /* glibc does not round the heap here (THP "always"): nothing to avoid */
    for (size_t top; (top = mallinfo2().keepcost) > 4096;) /* use up the top chunk */
        assert_non_null(malloc(top > BLOCK + 4096 ? BLOCK : top - 4096));
    char *edge = sbrk(0);
    forkheap_settle();
    assert_int_equal(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long before = rss_anon_kb();
        for (int i = 0; i < 8; i++) /* a compile's arenas, written to */
            memset(malloc(8192), 1, 8192);
        _exit(rss_anon_kb() - before < 1024 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Nor is the new range a huge page of the worker's, nor may khugepaged
     * make it one: advised so, it is a mapping of its own. */
    bool no_huge = false;
    assert_int_equal(huge_kb((uintptr_t)edge, &no_huge), 0);
    assert_true(no_huge);
}

int main(void)
{
    collapse_ok = collapse_available();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drained_heap_allocates_from_the_top),
        cmocka_unit_test(test_heap_goes_onto_huge_pages),
        cmocka_unit_test(test_children_start_on_small_pages),
        /* Last: its large heap would leave the one above nothing to test. */
        cmocka_unit_test(test_siblings_collapse_their_whole_heaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
