/* test-base64.c: base64 (RFC 4648 §4) as the etcd gateway and the PKI use
 * it: the RFC's test vectors, round trips of random bytes (seeded), what
 * the decoder refuses, and the cap. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfleet/base64.h"
#include "kfleet/strbuf.h"

/* RFC 4648 §10 */
static const char *const vectors[][2] = {
    { "", "" },
    { "f", "Zg==" },
    { "fo", "Zm8=" },
    { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" },
    { "fooba", "Zm9vYmE=" },
    { "foobar", "Zm9vYmFy" },
};

static void test_rfc_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < KF_ARRAY_SIZE(vectors); i++) {
        struct kf_strbuf enc = KF_STRBUF_INIT, dec = KF_STRBUF_INIT, bare = KF_STRBUF_INIT;
        size_t n = strlen(vectors[i][1]);

        assert_int_equal(kf_base64_encode(&enc, vectors[i][0], strlen(vectors[i][0])), 0);
        assert_string_equal(enc.buf, vectors[i][1]);
        assert_int_equal(kf_base64_decode(&dec, vectors[i][1], n), 0);
        assert_string_equal(dec.buf, vectors[i][0]);
        /* padding is optional */
        while (n > 0 && vectors[i][1][n - 1] == '=')
            n--;
        assert_int_equal(kf_base64_decode(&bare, vectors[i][1], n), 0);
        assert_string_equal(bare.buf, vectors[i][0]);
        kf_strbuf_release(&enc);
        kf_strbuf_release(&dec);
        kf_strbuf_release(&bare);
    }
}

static void test_round_trips(void **state)
{
    unsigned seed = 4648;
    unsigned char raw[300];

    (void)state;
    for (int round = 0; round < 2000; round++) {
        struct kf_strbuf enc = KF_STRBUF_INIT, dec = KF_STRBUF_INIT;
        size_t n = (size_t)rand_r(&seed) % sizeof(raw);

        for (size_t k = 0; k < n; k++)
            raw[k] = (unsigned char)rand_r(&seed);
        assert_int_equal(kf_base64_encode(&enc, raw, n), 0);
        assert_int_equal(enc.len, (n + 2) / 3 * 4);
        kf_strbuf_addstr(&dec, "x"); /* decoding appends */
        assert_int_equal(kf_base64_decode(&dec, enc.buf, enc.len), 0);
        assert_int_equal(dec.len, n + 1);
        assert_memory_equal(dec.buf + 1, raw, n);
        kf_strbuf_release(&enc);
        kf_strbuf_release(&dec);
    }
}

static void test_refuses_what_is_not_base64(void **state)
{
    static const char *const bad[] = {
        "Z",    "Zm9v=", "Zm 9v", "Zm9v\n",          "Zm-v", "Zm_v", "Z===",
        "=Zm9", "Zg=a",  "Zm9vY", "\xc3\xa9\xc3\xa9"
    };
    (void)state;
    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++) {
        struct kf_strbuf out = KF_STRBUF_INIT;

        kf_strbuf_addstr(&out, "kept");
        assert_int_equal(kf_base64_decode(&out, bad[i], strlen(bad[i])), -EINVAL);
        assert_string_equal(out.buf, "kept"); /* unchanged */
        kf_strbuf_release(&out);
    }
}

static void test_cap(void **state)
{
    struct kf_strbuf out = KF_STRBUF_INIT;

    (void)state;
    out.cap = 5;
    assert_int_equal(kf_base64_decode(&out, "Zm9vYmFy", 8), -E2BIG); /* 6 bytes */
    assert_true(out.overflowed);
    assert_int_equal(out.len, 0);
    out.overflowed = false;
    assert_int_equal(kf_base64_decode(&out, "Zm9vYmE=", 8), 0); /* 5 bytes */
    assert_string_equal(out.buf, "fooba");
    assert_int_equal(kf_base64_encode(&out, "x", 1), -E2BIG);
    assert_string_equal(out.buf, "fooba");
    kf_strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_vectors),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_refuses_what_is_not_base64),
        cmocka_unit_test(test_cap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
