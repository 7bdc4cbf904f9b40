/* Why: a fork copies one page-table entry per 4 KiB page of private memory,
 * or one per 2 MiB huge page, and the dying child frees as many again. The
 * template's heap (Python objects in glibc malloc, with glibc.malloc.hugetlb=1)
 * starts on huge pages, but each time the worker writes to one of them after
 * a fork, the kernel splits it into 4 KiB pages in the worker for good. Left
 * alone, the worker's per-request mallocs (jansson objects, pipe buffers)
 * reuse free chunks scattered across the whole heap, and within a few
 * requests most of it is split: every fork then copies ~9,000 entries.
 *
 * So, once, before the first spare is forked:
 *   1. drain: take every free chunk below the top of the heap (a few hundred
 *      KiB, kept for good), so later allocations come from the top and keep
 *      reusing the same few pages;
 *   2. collapse: MADV_COLLAPSE each whole 2 MiB range of the heap back onto
 *      one huge page. The worker's copy becomes private: it costs the heap's
 *      size in memory per worker (BENCHMARKS.md, "Memory").
 *   3. grow past the edge: one more 2 MiB range of heap, on small pages, for
 *      the children's first allocations (grow_past_edge).
 * Measured effect in BENCHMARKS.md ("Cheaper forks"). */
#include "worker/forkheap.h"

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

#define HUGE_PAGE      (2UL << 20)
#define SMALLEST_CHUNK 16
#define DRAINED_SIZES  1024       /* request sizes up to here: glibc's tcache and small bins */
#define GROW_STEP      (64 << 10) /* under glibc's smallest mmap threshold: from the heap */
#define GROW_STEPS     256        /* 16 MiB: past the free chunks a heap keeps, and its top */
/* Workers start together and collapse the same template pages at once: a
 * range another worker is copying (its pages locked or off the LRU) fails
 * with EAGAIN, and immediate retries fail alike. Left so, 1 to 5 of a
 * worker's ~18 ranges stayed on small pages, differently at each start, and
 * its forks copied up to 3 times the entries. Passes over the failed ones,
 * 1, 2, 4 and 8 ms apart, find them free: a worker started while requests
 * wait (pool.c) forks its first spare at most 15 ms later for it. */
#define COLLAPSE_RANGES 256 /* 512 MiB of heap; beyond, a failed range stays as it is */
#define COLLAPSE_PASSES 4

/* Allocate size-byte chunks until one comes from the top chunk (at or above
 * top) or the budget of free bytes is spent; keep all but that last one. */
static size_t drain_size(size_t size, uintptr_t top, size_t budget)
{
    size_t taken = 0;
    while (taken < budget) {
        void *p = malloc(size);
        if (!p)
            break;
        if ((uintptr_t)p >= top) {
            wipe_free(p); /* fresh memory: the next allocation of this size reuses it */
            break;
        }
        taken += malloc_usable_size(p);
    }
    return taken;
}

static void drain_free_chunks(void)
{
    struct mallinfo2 mi = mallinfo2(); /* fordblks: all free bytes; keepcost: the top chunk */
    if (mi.fordblks <= mi.keepcost)
        return; /* nothing free below the top (or not glibc's malloc: sanitizers) */
    uintptr_t top = (uintptr_t)sbrk(0) - mi.keepcost;
    size_t budget = mi.fordblks - mi.keepcost, taken = 0;
    /* The smallest size first takes (splitting) every chunk in the regular
     * bins; each further size then empties its own tcache list and fast bin,
     * which serve only that size. */
    for (size_t size = SMALLEST_CHUNK; size <= DRAINED_SIZES && taken < budget;
         size += SMALLEST_CHUNK)
        taken += drain_size(size, top, budget - taken);
}

/* MADV_COLLAPSE one 2 MiB range; true when it is worth trying again later. */
static bool collapse_range(uintptr_t p)
{
    return madvise((void *)p, HUGE_PAGE, MADV_COLLAPSE) && errno == EAGAIN;
}

static void collapse_heap(void)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return;
    char line[512];
    uintptr_t again[COLLAPSE_RANGES];
    size_t n = 0;
    while (fgets(line, sizeof(line), maps)) {
        uintptr_t start, end;
        if (!strstr(line, "[heap]") || sscanf(line, "%lx-%lx", &start, &end) != 2)
            continue;
        for (uintptr_t p = (start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1); p + HUGE_PAGE <= end;
             p += HUGE_PAGE)
            if (collapse_range(p) && n < COLLAPSE_RANGES)
                again[n++] = p;
    }
    fclose(maps);
    for (int pass = 0; pass < COLLAPSE_PASSES && n; pass++) {
        size_t left = 0;
        nanosleep(&(struct timespec){0, (1L << pass) * 1000000}, NULL);
        for (size_t i = 0; i < n; i++)
            if (collapse_range(again[i]))
                again[left++] = again[i];
        n = left;
    }
}

/* The children's heap grows past the worker's at their first allocations
 * that the top chunk cannot hold (the compiles of the spare's warm-up and of
 * the script). glibc.malloc.hugetlb=1 keeps the heap ending on a 2 MiB
 * boundary and advises each growth MADV_HUGEPAGE, so a child's first touch
 * past the end faults in a whole fresh huge page: 2 MiB zeroed, often on the
 * request's path, for the few KiB a short script uses, and how often depends
 * on how full the top chunk happened to be when the worker started. So the
 * worker grows its heap once more here, with huge pages off for the one
 * fault glibc makes there (the new top chunk's header): every child then
 * finds a top chunk of up to 2 MiB whose range has a page table, and takes
 * its first 2 MiB of heap a small page at a time. Growth past that, and
 * numpy's large arrays, still get huge pages. The blocks taken on the way
 * are kept (freed, glibc would trim the growth away): at most GROW_STEPS of
 * address space, mostly pages the worker had anyway. */
static void grow_past_edge(void)
{
    char *end = sbrk(0);
    if (!mallinfo2().arena || (uintptr_t)end % HUGE_PAGE)
        return; /* no brk heap (sanitizers), or glibc not rounding it: nothing to avoid */
    if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 0)
        return; /* huge pages already off for this process, or no way to know (gVisor) */
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
        return;
    static void *volatile kept; /* so that no compiler drops the mallocs */
    for (int i = 0; i < GROW_STEPS && sbrk(0) == end; i++)
        if (!(kept = malloc(GROW_STEP)))
            break;
    /* And kept off huge pages for good: khugepaged would otherwise fill the
     * range (max_ptes_none) and make it 2 MiB of the worker's memory. */
    char *grown = sbrk(0);
    if (grown != end)
        madvise(end, grown - end, MADV_NOHUGEPAGE);
    prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
}

void forkheap_settle(void)
{
    drain_free_chunks();
    collapse_heap();
    grow_past_edge();
}
