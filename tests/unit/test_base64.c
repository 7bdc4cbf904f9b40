/* base64 both ways (common/base64.c): RFC 4648's test vectors, whitespace,
 * padding rules, and every byte value round-tripping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/base64.h"

static void test_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char text[16];
        unsigned char bytes[16];
        base64_encode((const unsigned char *)plain[i], strlen(plain[i]), text);
        assert_string_equal(text, coded[i]);
        assert_int_equal(base64_encoded_len(strlen(plain[i])), strlen(coded[i]));
        long n = base64_decode(coded[i], strlen(coded[i]), bytes);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(bytes, plain[i], n);
    }
}

static void test_lenient_and_strict(void **state)
{
    (void)state;
    unsigned char out[32];
    assert_int_equal(base64_decode("Zm9v\nYmFy\r\n", 11, out), 6); /* wrapped lines */
    assert_int_equal(base64_decode("Zg", 2, out), 1);              /* no padding */
    assert_int_equal(base64_decode("Zm8", 3, out), 2);
    assert_int_equal(base64_decode("Z", 1, out), -1);        /* a dangling character */
    assert_int_equal(base64_decode("Zg=", 3, out), -1);      /* half the padding */
    assert_int_equal(base64_decode("Zg===", 5, out), -1);    /* too much */
    assert_int_equal(base64_decode("Zg==Zg==", 8, out), -1); /* padding in the middle */
    assert_int_equal(base64_decode("Zm9v=", 5, out), -1);
    assert_int_equal(base64_decode("Zm-v", 4, out), -1); /* URL-safe alphabet */
    assert_int_equal(base64_decode("Zm\0v", 4, out), -1);
}

static void test_every_byte(void **state)
{
    (void)state;
    unsigned char bytes[256], back[260];
    char text[400];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)i;
    for (size_t n = 250; n <= 256; n++) {
        base64_encode(bytes, n, text);
        assert_true(base64_decoded_max(strlen(text)) >= n);
        assert_int_equal(base64_decode(text, strlen(text), back), n);
        assert_memory_equal(back, bytes, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_lenient_and_strict),
        cmocka_unit_test(test_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
