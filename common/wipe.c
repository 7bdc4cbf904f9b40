/* Wiping before freeing and before forking. See wipe.h. */
#include "common/wipe.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void wipe_free(void *p)
{
    if (!p)
        return;
    explicit_bzero(p, malloc_usable_size(p));
    free(p);
}

/* The low end of the [stack] mapping: the stack never shrinks, so this is the
 * deepest any call ever went. 0 when there is no such line. */
static __attribute__((noinline)) uintptr_t stack_floor(void)
{
    uintptr_t lo = 0, hi;
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return 0;
    while (fgets(line, sizeof(line), maps))
        if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
            break;
    fclose(maps);
    return lo;
}

/* Without /proc: as much as the worker's deepest call chain can use. */
#define FALLBACK_DEPTH (512u << 10)

static __attribute__((noinline)) void wipe_fallback(void)
{
    volatile char pad[FALLBACK_DEPTH];
    explicit_bzero((char *)pad, sizeof(pad));
}

/* The floor as last read. Reading /proc/self/maps takes a worker about 2 ms
 * (hundreds of mappings), so it is read again only when the page below the
 * known floor has become mapped: the stack grew. */
static uintptr_t known_floor;

static uintptr_t current_floor(void)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char resident;
    /* mincore fails with ENOMEM on an address that is not mapped */
    if (!known_floor || !mincore((void *)(known_floor - page), page, &resident))
        known_floor = stack_floor();
    return known_floor;
}

/* The frame of a function called from the caller: once it has returned,
 * every byte below it is dead stack. */
static __attribute__((noinline)) uintptr_t callee_frame(void)
{
    return (uintptr_t)__builtin_frame_address(0);
}

/* No instrumentation: the words written are below the stack pointer, where
 * no frame is live and a sanitizer's shadow may still mark old frames. */
__attribute__((noinline, no_sanitize_address)) void wipe_stack(void)
{
    uintptr_t floor = current_floor();
    /* Up to just below this frame: the caller's last callee (the worker's
     * serve()) kept its locals a few hundred bytes under this frame's top;
     * only this frame's own few words are left as they are. */
    uintptr_t top = callee_frame() & ~(uintptr_t)7;
    if (!floor || top <= floor) {
        wipe_fallback();
        return;
    }
    /* Zeroed from the lowest word that is not zero already: below it, only
     * read. A page the last fork shares with a child stays shared when read;
     * written, even with zeros, it would fault and be copied, and most of the
     * stack (as deep as the template's imports went) is zero from the call
     * before and unused since. */
    volatile uint64_t *w = (volatile uint64_t *)floor;
    while ((uintptr_t)w < top && *w == 0)
        w++;
    for (; (uintptr_t)w < top; w++)
        *w = 0;
}
