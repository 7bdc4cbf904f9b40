/* forkheap_settle: the worker's heap drained of scattered free chunks and
 * collapsed onto huge pages before its first fork. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* THP on and MADV_COLLAPSE known to this kernel (6.1+, not gVisor)? */
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

static long heap_huge_kb(void)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    long kb = 0, v;
    int in_heap = 0;
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        if (strchr(line, '-') && strstr(line, " rw"))
            in_heap = strstr(line, "[heap]") != NULL;
        if (in_heap && sscanf(line, "AnonHugePages: %ld kB", &v) == 1)
            kb += v;
    }
    fclose(f);
    return kb;
}

static void test_heap_goes_onto_huge_pages(void **state)
{
    (void)state;
    if (UNDER_ASAN || !collapse_available())
        skip();
    /* Grow the brk heap by ~8 MiB of small objects, written to. */
    for (int i = 0; i < 40000; i++)
        memset(malloc(200), 1, 200); /* kept: the heap must stay this large */
    long before = heap_huge_kb();
    forkheap_settle();
    assert_true(heap_huge_kb() >= before + 3 * 2048);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drained_heap_allocates_from_the_top),
        cmocka_unit_test(test_heap_goes_onto_huge_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
