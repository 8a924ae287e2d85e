/* test-ctrl-queue.c: the controllers' work queue: de-duplication, no name
 * processed twice at once, redo after done, delays and back-off order,
 * folded delays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sched.h>
#include <pthread.h>
#include <cmocka.h>

#include "kfleet/ctrlrt.h"

static char *take(struct kf_workqueue *q, int timeout_ms)
{
    char *name = NULL;
    int r = kf_workqueue_get(q, timeout_ms, &name);

    return r == 1 ? name : NULL;
}

static void test_dedup_and_fifo(void **state)
{
    struct kf_workqueue *q = kf_workqueue_new();
    char *a, *b;

    (void)state;
    kf_workqueue_add(q, "a");
    kf_workqueue_add(q, "b");
    kf_workqueue_add(q, "a");
    assert_int_equal(kf_workqueue_len(q), 2);
    a = take(q, 0);
    b = take(q, 0);
    assert_string_equal(a, "a");
    assert_string_equal(b, "b");
    assert_null(take(q, 0));
    kf_workqueue_done(q, a);
    kf_workqueue_done(q, b);
    assert_int_equal(kf_workqueue_wait_idle(q, 0), 1);
    free(a);
    free(b);
    kf_workqueue_free(q);
}

static void test_readd_while_processing(void **state)
{
    struct kf_workqueue *q = kf_workqueue_new();
    char *a, *again;

    (void)state;
    kf_workqueue_add(q, "a");
    a = take(q, 0);
    assert_string_equal(a, "a");
    /* a change arrives while a worker has "a": not handed to a second worker */
    kf_workqueue_add(q, "a");
    assert_null(take(q, 0));
    assert_int_equal(kf_workqueue_busy(q), 1);
    kf_workqueue_done(q, a);
    /* ...but redone once the first is done */
    again = take(q, 0);
    assert_non_null(again);
    assert_string_equal(again, "a");
    kf_workqueue_done(q, again);
    assert_null(take(q, 0));
    free(a);
    free(again);
    kf_workqueue_free(q);
}

static void test_delay_order(void **state)
{
    struct kf_workqueue *q = kf_workqueue_new();
    char *first, *second;

    (void)state;
    kf_workqueue_add_after(q, "late", 60);
    kf_workqueue_add_after(q, "early", 20);
    assert_null(take(q, 0));
    assert_int_equal(kf_workqueue_len(q), 0);
    first = take(q, 5000);
    second = take(q, 5000);
    assert_non_null(first);
    assert_non_null(second);
    assert_string_equal(first, "early");
    assert_string_equal(second, "late");
    kf_workqueue_done(q, first);
    kf_workqueue_done(q, second);
    free(first);
    free(second);
    kf_workqueue_free(q);
}

static void test_earlier_delay_wins(void **state)
{
    struct kf_workqueue *q = kf_workqueue_new();
    char *n;

    (void)state;
    kf_workqueue_add_after(q, "x", 60000);
    kf_workqueue_add_after(q, "x", 10);
    n = take(q, 5000);
    assert_non_null(n);
    assert_string_equal(n, "x");
    kf_workqueue_done(q, n);
    free(n);
    /* the stale long delay does not bring it back */
    assert_null(take(q, 50));
    kf_workqueue_free(q);
}

/* Folded adds: each one moves the wait later, up to the limit set by the
 * add that started it; a plain delayed add that is sooner still wins; the
 * name comes out once. */
static void test_folded_adds(void **state)
{
    struct kf_workqueue *q = kf_workqueue_new();
    char *n;

    (void)state;
    /* "p" would be due in 2 s; the second add moves it an hour away, so it
     * is not there after 3 s (a fixed delay would have let it out) */
    kf_workqueue_add_folded(q, "p", 2000, 3600 * 1000);
    kf_workqueue_add_folded(q, "p", 3600 * 1000, 3600 * 1000);
    assert_null(take(q, 3000));
    /* a plain delayed add brings it back sooner, once */
    kf_workqueue_add_after(q, "p", 10);
    n = take(q, 5000);
    assert_non_null(n);
    assert_string_equal(n, "p");
    kf_workqueue_done(q, n);
    free(n);
    assert_null(take(q, 50));

    /* the limit: however late the later adds ask, "l" is due 20 ms after
     * the first one */
    kf_workqueue_add_folded(q, "l", 10, 20);
    for (int i = 0; i < 100; i++)
        kf_workqueue_add_folded(q, "l", 3600 * 1000, 3600 * 1000);
    n = take(q, 5000);
    assert_non_null(n);
    assert_string_equal(n, "l");
    kf_workqueue_done(q, n);
    free(n);
    assert_null(take(q, 50));
    kf_workqueue_free(q);
}

static void test_backoff_then_forget(void **state)
{
    struct kf_workqueue *q = kf_workqueue_new();
    char *n;

    (void)state;
    kf_workqueue_add_backoff(q, "f"); /* 5 ms */
    n = take(q, 5000);
    assert_string_equal(n, "f");
    kf_workqueue_done(q, n);
    free(n);
    kf_workqueue_add_backoff(q, "f"); /* second failure: 10 ms */
    kf_workqueue_add_backoff(q, "g"); /* first failure: 5 ms, so g comes first */
    n = take(q, 5000);
    assert_string_equal(n, "g");
    kf_workqueue_done(q, n);
    free(n);
    n = take(q, 5000);
    assert_string_equal(n, "f");
    kf_workqueue_done(q, n);
    free(n);
    kf_workqueue_forget(q, "f");
    kf_workqueue_free(q);
}

static void test_shutdown_wakes_getters(void **state)
{
    struct kf_workqueue *q = kf_workqueue_new();
    char *n = NULL;

    (void)state;
    kf_workqueue_add(q, "a");
    kf_workqueue_shutdown(q);
    assert_int_equal(kf_workqueue_get(q, -1, &n), -EPIPE);
    assert_null(n);
    kf_workqueue_free(q);
}

/* Many producers and consumers: every name added is processed, and never by
 * two workers at once. */
struct stress {
    struct kf_workqueue *q;
    pthread_mutex_t lock;
    int active[64];
    int processed[64];
    int violations;
};

static void *consumer(void *arg)
{
    struct stress *s = arg;
    char *n;

    while (kf_workqueue_get(s->q, -1, &n) == 1) {
        int i = (int)strtol(n + 1, NULL, 10);

        pthread_mutex_lock(&s->lock);
        if (s->active[i]++)
            s->violations++;
        s->processed[i]++;
        pthread_mutex_unlock(&s->lock);
        sched_yield();
        pthread_mutex_lock(&s->lock);
        s->active[i]--;
        pthread_mutex_unlock(&s->lock);
        kf_workqueue_done(s->q, n);
        free(n);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct stress s = { .q = kf_workqueue_new() };
    pthread_t t[4];
    char name[8];

    (void)state;
    pthread_mutex_init(&s.lock, NULL);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, consumer, &s);
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 64; i++) {
            snprintf(name, sizeof(name), "n%d", i);
            kf_workqueue_add(s.q, name);
        }
    }
    assert_int_equal(kf_workqueue_wait_idle(s.q, 10000), 1);
    kf_workqueue_shutdown(s.q);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(s.violations, 0);
    for (int i = 0; i < 64; i++)
        assert_true(s.processed[i] >= 1);
    pthread_mutex_destroy(&s.lock);
    kf_workqueue_free(s.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup_and_fifo),      cmocka_unit_test(test_readd_while_processing),
        cmocka_unit_test(test_delay_order),         cmocka_unit_test(test_earlier_delay_wins),
        cmocka_unit_test(test_backoff_then_forget), cmocka_unit_test(test_shutdown_wakes_getters),
        cmocka_unit_test(test_concurrent),          cmocka_unit_test(test_folded_adds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
