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
 * Measured effect in BENCHMARKS.md ("Cheaper forks"). */
#include "worker/forkheap.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

#define HUGE_PAGE      (2UL << 20)
#define SMALLEST_CHUNK 16
#define DRAINED_SIZES  1024 /* request sizes up to here: glibc's tcache and small bins */

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

static void collapse_heap(void)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return;
    char line[512];
    while (fgets(line, sizeof(line), maps)) {
        uintptr_t start, end;
        if (!strstr(line, "[heap]") || sscanf(line, "%lx-%lx", &start, &end) != 2)
            continue;
        for (uintptr_t p = (start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1); p + HUGE_PAGE <= end;
             p += HUGE_PAGE)
            madvise((void *)p, HUGE_PAGE, MADV_COLLAPSE); /* may fail: stays on 4 KiB pages */
    }
    fclose(maps);
}

void forkheap_settle(void)
{
    drain_free_chunks();
    collapse_heap();
}
