/* ctrl-test.h: what the unit tests of one controller on the memory store
 * share (test-ctrl-broadcastjob.c, test-ctrl-release.c): a fake clock the
 * controller reads, waiting until the controller has settled, and creating
 * and patching objects through the registry, failing the test with the
 * registry's reason. Not a test itself: CMake only builds test-*.c. */
#ifndef KF_CTRL_TEST_H
#define KF_CTRL_TEST_H

#include <time.h>

#include "fleet-test.h"
#include "kfleet/ctrlrt.h"

/* --- the fake clock: a controller's set_clock(data, ctrl_test_clock, NULL) -- */

#define CTRL_TEST_START_MS 1767225600000LL /* 2026-01-01T00:00:00Z, a Thursday */

static int64_t ctrl_test_now = CTRL_TEST_START_MS;

static inline int64_t ctrl_test_clock(void *arg)
{
    (void)arg;
    return __atomic_load_n(&ctrl_test_now, __ATOMIC_SEQ_CST);
}

static inline void ctrl_test_clock_set(int64_t ms)
{
    __atomic_store_n(&ctrl_test_now, ms, __ATOMIC_SEQ_CST);
}

static inline void advance(int64_t ms)
{
    __atomic_add_fetch(&ctrl_test_now, ms, __ATOMIC_SEQ_CST);
}

/* Until controller c of manager m has nothing left to do: idle, and no
 * store write or reconcile (retries after a back-off included) over a pause
 * of pause_ms, tried up to `rounds` times, each idle wait at most idle_ms. */
static inline void ctrl_test_settle(struct kf_ctrl_manager *m, struct kf_ctrl *c,
                                    struct kf_store *store, int rounds, long pause_ms, int idle_ms)
{
    for (int i = 0; i < rounds; i++) {
        struct kf_ctrl_stats a, b;
        int64_t rev;
        struct timespec ts = { 0, pause_ms * 1000000L };

        assert_int_equal(kf_ctrl_manager_wait_idle(m, idle_ms), 1);
        rev = kf_store_rev(store);
        kf_ctrl_stats(c, &a);
        nanosleep(&ts, NULL);
        assert_int_equal(kf_ctrl_manager_wait_idle(m, idle_ms), 1);
        kf_ctrl_stats(c, &b);
        if (kf_store_rev(store) == rev && a.reconciles == b.reconciles)
            return;
    }
    fail_msg("the controller did not settle");
}

/* Creates obj (its reference is taken) through reg; fails the test with the
 * registry's reason. */
static inline void ctrl_test_create(struct kf_registry *reg, const struct kf_kind *k, json_t *obj)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_registry_create(reg, k, obj, NULL, &causes, &err) < 0) {
        kf_causes_format(&causes, &err);
        fail_msg("create: %s", err.buf);
    }
    json_decref(obj);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

/* A merge patch written with single quotes (each ' becomes "), of the
 * status when status is true; fails the test with the registry's reason. */
static inline void ctrl_test_patch(struct kf_registry *reg, const struct kf_kind *k,
                                   const char *name, const char *p, bool status)
{
    char *s = kf_xstrdup(p);
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;

    for (char *q = s; *q; q++)
        if (*q == '\'')
            *q = '"';
    if (kf_registry_patch(reg, k, name, KF_PATCH_MERGE, s, strlen(s), status, NULL, &causes, &err) <
        0)
        fail_msg("patch %s: %s", name, err.buf);
    free(s);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

#endif
