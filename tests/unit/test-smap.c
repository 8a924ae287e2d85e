/* test-smap.c: the string hash map against a simple model under random
 * operations (seeded; the seed is printed on failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfleet/smap.h"

#define KEYS 500

static void test_model(void **state)
{
    struct kf_smap m = KF_SMAP_INIT;
    intptr_t model[KEYS] = { 0 }; /* 0: absent */
    unsigned int seed = 12345;
    char key[16];

    (void)state;
    for (int step = 0; step < 200000; step++) {
        int k = (int)(rand_r(&seed) % KEYS), op = (int)(rand_r(&seed) % 3);

        snprintf(key, sizeof(key), "k%d", k);
        if (op == 0) {
            intptr_t v = step + 1;
            void *prev = kf_smap_put(&m, key, (void *)v);

            assert_int_equal((intptr_t)prev, model[k]);
            model[k] = v;
        } else if (op == 1) {
            assert_int_equal((intptr_t)kf_smap_remove(&m, key), model[k]);
            model[k] = 0;
        } else {
            assert_int_equal((intptr_t)kf_smap_get(&m, key), model[k]);
            assert_int_equal(kf_smap_contains(&m, key), model[k] != 0);
        }
    }
    {
        size_t live = 0, seen = 0, it = 0;
        const char *kk;
        void *v;

        for (int k = 0; k < KEYS; k++)
            live += model[k] != 0;
        assert_int_equal(kf_smap_count(&m), live);
        while (kf_smap_next(&m, &it, &kk, &v)) {
            int k = (int)strtol(kk + 1, NULL, 10);

            assert_int_equal((intptr_t)v, model[k]);
            seen++;
        }
        assert_int_equal(seen, live);
    }
    kf_smap_release(&m);
}

/* A borrowed-keys map keeps the caller's pointers (the entry's own name)
 * and never frees them; a replacing put takes the new entry's name. */
static void test_borrowed_keys(void **state)
{
    struct kf_smap m;
    char *a1 = strdup("alpha"), *a2 = strdup("alpha"), *b = strdup("beta");
    const char *key;
    void *v;
    size_t it = 0, n = 0;

    (void)state;
    kf_smap_init_borrowed(&m);
    assert_null(kf_smap_put(&m, a1, a1));
    assert_null(kf_smap_put(&m, b, b));
    assert_ptr_equal(kf_smap_put(&m, a2, a2), a1); /* replaced */
    free(a1);                                      /* the map holds a2 now, not a1 */
    while (kf_smap_next(&m, &it, &key, &v)) {
        assert_ptr_equal(key, v); /* the caller's pointer, not a copy */
        n++;
    }
    assert_int_equal(n, 2);
    assert_ptr_equal(kf_smap_get(&m, "alpha"), a2);
    assert_ptr_equal(kf_smap_remove(&m, "beta"), b);
    free(b); /* removed: the map no longer reads it */
    assert_null(kf_smap_get(&m, "beta"));
    assert_int_equal(kf_smap_count(&m), 1);
    kf_smap_release(&m);
    assert_true(m.borrowed_keys); /* still a borrowing map */
    assert_null(kf_smap_put(&m, a2, a2));
    kf_smap_release(&m);
    free(a2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_borrowed_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
