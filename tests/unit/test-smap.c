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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
