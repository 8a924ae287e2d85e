/* test-unitloss.c: the decisions of the unit-loss controller
 * (controllers/ctrl-unitloss.h) and the move request it and the move
 * action write on a cluster (kf_move_parse, kfleet/backup.h): when a unit
 * counts as lost (a shorter outage does not; a restart does not start an
 * evacuation before a full grace, but one that began goes on), which backup
 * a cluster comes back from, what happens to each cluster, and move
 * requests that are not well formed. */
#include "fleet-test.h"

#include "kfleet/backup.h"
#include "controllers/ctrl-unitloss.h"

#define S     1000LL
#define GRACE (600 * S)

static enum kf_unitloss_state assess(const struct kf_unitloss_host *h, size_t n, int64_t now,
                                     int64_t started, bool marked, int64_t *since, int64_t *wait)
{
    return kf_unitloss_assess(h, n, now, GRACE, started, marked, since, wait);
}

static void test_a_ready_host_keeps_the_unit_up(void **state)
{
    struct kf_unitloss_host h[3] = { { false, 100 * S }, { true, 0 }, { false, 50 * S } };
    int64_t since = -1, wait = -1;

    (void)state;
    assert_int_equal(assess(h, 3, 10000 * S, 0, false, &since, &wait), KF_UNIT_UP);
    /* a unit without hosts is not lost: there is nothing to lose */
    assert_int_equal(assess(h, 0, 10000 * S, 0, false, &since, &wait), KF_UNIT_UP);
}

static void test_lost_only_after_the_grace_from_the_last_host(void **state)
{
    struct kf_unitloss_host h[3] = { { false, 100 * S }, { false, 400 * S }, { false, 50 * S } };
    int64_t since = 0, wait = 0;

    (void)state;
    /* the last host went NotReady at 400 s: lost at 1000 s, not before */
    assert_int_equal(assess(h, 3, 999 * S, 0, false, &since, &wait), KF_UNIT_WAITING);
    assert_int_equal(since, 400 * S);
    assert_int_equal(wait, 1 * S);
    assert_int_equal(assess(h, 3, 1000 * S, 0, false, &since, &wait), KF_UNIT_LOST);
    assert_int_equal(since, 400 * S);
}

static void test_shorter_outage_moves_nothing(void **state)
{
    struct kf_unitloss_host down[2] = { { false, 100 * S }, { false, 100 * S } };
    struct kf_unitloss_host back[2] = { { true, 300 * S }, { false, 100 * S } };
    int64_t since, wait;

    (void)state;
    assert_int_equal(assess(down, 2, 300 * S, 0, false, &since, &wait), KF_UNIT_WAITING);
    /* one host back before the grace: up again, the clock starts over */
    assert_int_equal(assess(back, 2, 800 * S, 0, false, &since, &wait), KF_UNIT_UP);
}

static void test_restart_waits_a_grace_unless_marked(void **state)
{
    struct kf_unitloss_host h[1] = { { false, 100 * S } };
    int64_t since, wait;

    (void)state;
    /* kfleetd started at 5000 s: the hosts' states in the store may be old */
    assert_int_equal(assess(h, 1, 5100 * S, 5000 * S, false, &since, &wait), KF_UNIT_WAITING);
    assert_int_equal(wait, 500 * S);
    assert_int_equal(assess(h, 1, 5600 * S, 5000 * S, false, &since, &wait), KF_UNIT_LOST);
    /* an evacuation that began before the restart goes on at once */
    assert_int_equal(assess(h, 1, 5001 * S, 5000 * S, true, &since, &wait), KF_UNIT_LOST);
    assert_int_equal(since, 100 * S);
}

static void test_newest_succeeded_backup(void **state)
{
    struct kf_unitloss_backup b[5] = {
        { "Succeeded", 100, 1000 }, { "Failed", 900, 9000 },    { "Succeeded", 300, 3000 },
        { "Running", 950, 9500 },   { "Succeeded", 250, 3000 },
    };
    bool bad[5] = { false };

    (void)state;
    assert_int_equal(kf_unitloss_pick_backup(b, 5, NULL), 2);
    /* the newest does not check out (corrupted, other region): the next */
    bad[2] = true;
    assert_int_equal(kf_unitloss_pick_backup(b, 5, bad), 4);
    bad[4] = true;
    assert_int_equal(kf_unitloss_pick_backup(b, 5, bad), 0);
    bad[0] = true;
    assert_int_equal(kf_unitloss_pick_backup(b, 5, bad), -1);
    assert_int_equal(kf_unitloss_pick_backup(b, 0, NULL), -1);
}

static void test_cluster_actions_and_the_limit(void **state)
{
    (void)state;
    assert_int_equal(kf_unitloss_cluster_action(true, false, true, 0, 50), KF_UL_SKIP);
    assert_int_equal(kf_unitloss_cluster_action(false, true, true, 0, 50), KF_UL_SKIP);
    assert_int_equal(kf_unitloss_cluster_action(false, false, false, 0, 50), KF_UL_NOBACKUP);
    /* no backup is said even when no slot is free: it needs no slot */
    assert_int_equal(kf_unitloss_cluster_action(false, false, false, 50, 50), KF_UL_NOBACKUP);
    assert_int_equal(kf_unitloss_cluster_action(false, false, true, 49, 50), KF_UL_EVACUATE);
    assert_int_equal(kf_unitloss_cluster_action(false, false, true, 50, 50), KF_UL_WAIT);
}

static void test_move_requests(void **state)
{
    struct kf_move_req m = { .id = "untouched" };

    (void)state;
    assert_int_equal(kf_move_parse("1796655717104 ua *", &m), 0);
    assert_string_equal(m.id, "1796655717104");
    assert_string_equal(m.from, "ua");
    assert_string_equal(m.to, "*");
    assert_int_equal(kf_move_parse("17 hz-u1 hz-u2", &m), 0);
    assert_string_equal(m.to, "hz-u2");
    snprintf(m.id, sizeof(m.id), "untouched");
    assert_int_equal(kf_move_parse(NULL, &m), -EINVAL);
    assert_int_equal(kf_move_parse("", &m), -EINVAL);
    assert_int_equal(kf_move_parse("17 ua", &m), -EINVAL);
    assert_int_equal(kf_move_parse("x17 ua ub", &m), -EINVAL);
    assert_int_equal(kf_move_parse("17 ua ub extra", &m), -EINVAL);
    assert_string_equal(m.id, "untouched");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_ready_host_keeps_the_unit_up),
        cmocka_unit_test(test_lost_only_after_the_grace_from_the_last_host),
        cmocka_unit_test(test_shorter_outage_moves_nothing),
        cmocka_unit_test(test_restart_waits_a_grace_unless_marked),
        cmocka_unit_test(test_newest_succeeded_backup),
        cmocka_unit_test(test_cluster_actions_and_the_limit),
        cmocka_unit_test(test_move_requests),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
