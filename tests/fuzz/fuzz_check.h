/* What every fuzz target shares: a check that aborts (so libFuzzer and the
 * regression driver both report it, NDEBUG or not) and an independent strict
 * UTF-8 validator to hold the code under test to. Test code only. */
#ifndef PYEXEC_FUZZ_CHECK_H
#define PYEXEC_FUZZ_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* RFC 3629 by decoding: code points, not byte patterns, are checked, so this
 * shares no logic with the validators in server/errors.c or worker/reply.c. */
static inline bool fuzz_utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp = s[i];
        size_t n = cp < 0x80           ? 1
                   : (cp >> 5) == 0x6  ? 2
                   : (cp >> 4) == 0xE  ? 3
                   : (cp >> 3) == 0x1E ? 4
                                       : 0;
        if (n == 0 || i + n > len)
            return false;
        if (n > 1)
            cp &= 0x7F >> n;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n;
    }
    return true;
}

#endif
