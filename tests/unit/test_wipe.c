/* The worker's memory hygiene (common/wipe.c): what wipe_stack zeroes is
 * really gone from the stack, and what wipe_free frees is zeroed first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/wipe.h"

#define MARK     "pyexec-wipe-test-marker-7f3a"
#define MARK_LEN (sizeof(MARK) - 1)

/* A deep frame holding the marker many times, gone once this returns. */
static __attribute__((noinline)) void leave_marker(void)
{
    volatile char deep[16 << 10];
    for (size_t i = 0; i + MARK_LEN <= sizeof(deep); i += 64)
        for (size_t j = 0; j < MARK_LEN; j++)
            deep[i + j] = MARK[j];
}

static uintptr_t stack_low(void)
{
    uintptr_t lo = 0, hi;
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "re");
    while (maps && fgets(line, sizeof(line), maps))
        if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
            break;
    if (maps)
        fclose(maps);
    return lo;
}

/* The frame of a function called from the caller: below it, dead stack. */
static __attribute__((noinline)) uintptr_t callee_frame(void)
{
    return (uintptr_t)__builtin_frame_address(0);
}

/* Copies of the marker in the dead stack below this frame. */
static __attribute__((noinline, no_sanitize_address)) int markers_below(uintptr_t low)
{
    uintptr_t top = callee_frame();
    int found = 0;
    for (volatile const char *p = (const char *)low; (uintptr_t)p + MARK_LEN < top; p++) {
        size_t j = 0;
        while (j < MARK_LEN && p[j] == MARK[j])
            j++;
        found += j == MARK_LEN;
    }
    return found;
}

/* The marker in a frame just below the caller's, as deep as a function's
 * own locals (the worker's serve()), its top 256 bytes left out: they may
 * be under wipe_stack's or markers_below's own frame. */
static __attribute__((noinline)) void leave_shallow_marker(void)
{
    volatile char near[1024];
    for (size_t i = 0; i + MARK_LEN <= sizeof(near) - 256; i += 64)
        for (size_t j = 0; j < MARK_LEN; j++)
            near[i + j] = MARK[j];
}

static void test_wipe_stack_reaches_the_callers_last_frame(void **state)
{
    (void)state;
    uintptr_t low = stack_low();
    assert_true(low != 0);
    leave_shallow_marker();
    assert_true(markers_below(low) > 0); /* the control */
    leave_shallow_marker();
    wipe_stack();
    assert_int_equal(markers_below(low), 0);
}

static void test_wipe_stack(void **state)
{
    (void)state;
    uintptr_t low = stack_low();
    assert_true(low != 0);
    leave_marker();
    assert_true(markers_below(low) > 0); /* the control: a dead frame keeps its bytes */
    leave_marker();
    wipe_stack();
    assert_int_equal(markers_below(low), 0);
    /* Used again and wiped again: the scan past the zeros finds what the
     * second use left. */
    leave_marker();
    wipe_stack();
    assert_int_equal(markers_below(low), 0);
}

/* A deep frame of zeros, so the stack below reaches that far. */
static __attribute__((noinline)) void go_deep(void)
{
    volatile char deep[64 << 10];
    explicit_bzero((char *)deep, sizeof(deep));
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* The worker wipes with its last child alive (sharing every page): what is
 * zero already is only read, not written, so the 16 pages of the unused
 * depth are not copied (one fault each if they were). */
static void test_wipe_stack_leaves_zero_pages_shared(void **state)
{
    (void)state;
    go_deep();
    wipe_stack();
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    long before = minor_faults();
    wipe_stack();
    long faults = minor_faults() - before;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    assert_true(faults < 8); /* the wipe's own few pages; 16 more if it wrote them all */
}

static void test_wipe_free(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip(); /* the sanitizer's quarantine hands out other chunks */
#else
    /* glibc hands the same chunk back for the same size: what was in it
     * must be zero but for the allocator's own list pointers at its start. */
    char *p = malloc(4096);
    assert_non_null(p);
    for (size_t i = 0; i + MARK_LEN <= 4096; i += MARK_LEN)
        memcpy(p + i, MARK, MARK_LEN);
    wipe_free(p);
    char *q = malloc(4096);
    assert_ptr_equal(q, p);
    for (size_t i = 32; i < 4096; i++)
        assert_int_equal(q[i], 0);
    free(q);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wipe_stack),
        cmocka_unit_test(test_wipe_stack_reaches_the_callers_last_frame),
        cmocka_unit_test(test_wipe_stack_leaves_zero_pages_shared),
        cmocka_unit_test(test_wipe_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
