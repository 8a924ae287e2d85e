/* test-lease.c: the heartbeat lease table: transitions are reported once,
 * silence beyond the grace expires a host, a renewal brings it back;
 * renewals other replicas reported count but are not listed as local. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "kfleet/lease.h"

static void test_first_renewal_is_a_transition(void **state)
{
    struct kf_lease_table *t = kf_lease_table_new(1000);

    (void)state;
    assert_int_equal(kf_lease_renew(t, "host-a", 1000), 1);
    assert_int_equal(kf_lease_renew(t, "host-a", 2000), 0);
    assert_int_equal(kf_lease_last(t, "host-a"), 2000);
    assert_true(kf_lease_alive(t, "host-a", 5000, 4000));
    assert_false(kf_lease_alive(t, "host-a", 7000, 4000));
    assert_int_equal(kf_lease_last(t, "never"), 0);
    assert_int_equal(kf_lease_count(t), 1);
    kf_lease_table_free(t);
}

static void test_expire_once_then_revive(void **state)
{
    struct kf_lease_table *t = kf_lease_table_new(0);
    char **names;
    size_t n;

    (void)state;
    kf_lease_renew(t, "b", 1000);
    kf_lease_renew(t, "a", 1000);
    kf_lease_renew(t, "c", 9000);
    /* at 12 s with a 10 s grace: a and b have been silent 11 s */
    n = kf_lease_expire(t, 12000, 10000, &names);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    kf_lease_names_free(names, n);
    /* reported once only */
    n = kf_lease_expire(t, 13000, 10000, &names);
    assert_int_equal(n, 0);
    kf_lease_names_free(names, n);
    /* a beats again: that is a transition back to alive */
    assert_int_equal(kf_lease_renew(t, "a", 14000), 1);
    assert_int_equal(kf_lease_renew(t, "a", 15000), 0);
    kf_lease_table_free(t);
}

static void test_out_of_order_renewal_keeps_latest(void **state)
{
    struct kf_lease_table *t = kf_lease_table_new(0);

    (void)state;
    kf_lease_renew(t, "h", 5000);
    kf_lease_renew(t, "h", 4000);
    assert_int_equal(kf_lease_last(t, "h"), 5000);
    kf_lease_table_free(t);
}

static void test_bad_names_and_forget(void **state)
{
    struct kf_lease_table *t = kf_lease_table_new(0);
    char longname[300];

    (void)state;
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(kf_lease_renew(t, "", 1), -EINVAL);
    assert_int_equal(kf_lease_renew(t, NULL, 1), -EINVAL);
    assert_int_equal(kf_lease_renew(t, longname, 1), -EINVAL);
    kf_lease_renew(t, "gone", 1);
    kf_lease_forget(t, "gone");
    assert_int_equal(kf_lease_count(t), 0);
    assert_int_equal(kf_lease_renew(t, "gone", 2), 1);
    kf_lease_table_free(t);
}

static void test_many_hosts(void **state)
{
    struct kf_lease_table *t = kf_lease_table_new(0);
    char name[32], **names;
    size_t n;

    (void)state;
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof(name), "sim-%05d", i);
        assert_int_equal(kf_lease_renew(t, name, i % 2 ? 100000 : 1000), 1);
    }
    assert_int_equal(kf_lease_count(t), 20000);
    n = kf_lease_expire(t, 100500, 40000, &names);
    assert_int_equal(n, 10000);
    assert_string_equal(names[0], "sim-00000");
    assert_string_equal(names[n - 1], "sim-19998");
    kf_lease_names_free(names, n);
    kf_lease_table_free(t);
}

struct seen {
    char names[8][32];
    int64_t at[8];
    size_t n;
};

static void collect(const char *name, int64_t local_ms, void *arg)
{
    struct seen *s = arg;

    assert_true(s->n < 8);
    snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
    s->at[s->n++] = local_ms;
}

static int64_t seen_at(const struct seen *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->at[i];
    return -1;
}

/* Renewals another replica reported count for liveness but are never
 * listed as this replica's own, so they are not passed on again. */
static void test_remote_renewals_are_not_local(void **state)
{
    struct kf_lease_table *t = kf_lease_table_new(0);
    struct seen s = { 0 };

    (void)state;
    assert_int_equal(kf_lease_renew(t, "here", 1000), 1);
    assert_int_equal(kf_lease_renew_remote(t, "there", 2000), 1);
    assert_int_equal(kf_lease_renew_remote(t, "both", 1500), 1);
    assert_int_equal(kf_lease_renew(t, "both", 1200), 0);
    assert_int_equal(kf_lease_last(t, "there"), 2000);
    assert_int_equal(kf_lease_last(t, "both"), 1500); /* the later of the two */
    assert_int_equal(kf_lease_local_last(t, "both"), 1200);
    assert_int_equal(kf_lease_local_last(t, "there"), 0);
    assert_true(kf_lease_alive(t, "there", 5000, 4000));

    assert_int_equal(kf_lease_local_since(t, 0, collect, &s), 2);
    assert_int_equal(seen_at(&s, "here"), 1000);
    assert_int_equal(seen_at(&s, "both"), 1200);
    assert_int_equal(seen_at(&s, "there"), -1);
    /* since is inclusive; older local renewals are left out */
    memset(&s, 0, sizeof(s));
    assert_int_equal(kf_lease_local_since(t, 1200, collect, &s), 1);
    assert_int_equal(seen_at(&s, "both"), 1200);
    memset(&s, 0, sizeof(s));
    assert_int_equal(kf_lease_local_since(t, 1201, collect, &s), 0);
    /* a later local renewal moves both times */
    kf_lease_renew(t, "there", 3000);
    assert_int_equal(kf_lease_local_since(t, 2500, collect, &s), 1);
    assert_int_equal(seen_at(&s, "there"), 3000);
    assert_int_equal(kf_lease_renew_remote(t, "", 1), -EINVAL);
    kf_lease_table_free(t);
}

/* A reported renewal never moves a lease back, and brings an expired one
 * back to life only when it is newer than the last renewal known: reports
 * repeat a host while it beats elsewhere and may arrive after an expiry. */
static void test_remote_renewal_revives_only_when_newer(void **state)
{
    struct kf_lease_table *t = kf_lease_table_new(0);
    char **names;
    size_t n;

    (void)state;
    kf_lease_renew_remote(t, "h", 5000);
    assert_int_equal(kf_lease_renew_remote(t, "h", 4000), 0);
    assert_int_equal(kf_lease_last(t, "h"), 5000);
    n = kf_lease_expire(t, 20000, 10000, &names);
    assert_int_equal(n, 1);
    kf_lease_names_free(names, n);
    /* an old report of the same renewal: still expired */
    assert_int_equal(kf_lease_renew_remote(t, "h", 5000), 0);
    n = kf_lease_expire(t, 21000, 10000, &names);
    assert_int_equal(n, 0);
    kf_lease_names_free(names, n);
    /* a newer one: alive again, and reported as a transition */
    assert_int_equal(kf_lease_renew_remote(t, "h", 19000), 1);
    assert_true(kf_lease_alive(t, "h", 21000, 10000));
    kf_lease_table_free(t);
}

/* Sweeps skip the shards where nothing can be due: against a model that
 * checks every lease at every sweep, 600 hosts over two minutes of 1 s
 * sweeps, beating every 10 s with a 40 s grace; some stop and come back,
 * some come back only through another replica's report of an old beat
 * (which must lower what the shard's skip relies on). Every sweep must
 * report exactly the hosts the model finds newly expired. */
#define MODEL_HOSTS 600

static bool model_stops(int i, int64_t now)
{
    return (i % 7 == 0 && now >= 30000 && now < 90000) || (i % 11 == 0 && now >= 50000);
}

static void test_sweeps_match_a_full_scan(void **state)
{
    struct kf_lease_table *t = kf_lease_table_new(0);
    int64_t last[MODEL_HOSTS];
    bool alive[MODEL_HOSTS];
    char name[32];
    size_t total = 0;

    (void)state;
    for (int i = 0; i < MODEL_HOSTS; i++) {
        snprintf(name, sizeof(name), "h-%04d", i);
        assert_int_equal(kf_lease_renew(t, name, 0), 1);
        last[i] = 0;
        alive[i] = true;
    }
    for (int64_t now = 1000; now <= 120000; now += 1000) {
        char **names;
        size_t n, k = 0;

        for (int i = 0; i < MODEL_HOSTS; i++) {
            snprintf(name, sizeof(name), "h-%04d", i);
            if (i % 13 == 0 && now == 100000) {
                /* back through a report of a beat 35 s old: alive, and due
                 * again 5 s later */
                int born = kf_lease_renew_remote(t, name, now - 35000);

                if (now - 35000 > last[i]) {
                    assert_int_equal(born, !alive[i]);
                    last[i] = now - 35000;
                    alive[i] = true;
                }
            } else if ((now / 1000) % 10 == i % 10 && !model_stops(i, now)) {
                assert_int_equal(kf_lease_renew(t, name, now), !alive[i]);
                last[i] = now;
                alive[i] = true;
            }
        }
        n = kf_lease_expire(t, now, 40000, &names);
        for (int i = 0; i < MODEL_HOSTS; i++) {
            if (!alive[i] || now - last[i] <= 40000)
                continue;
            alive[i] = false;
            snprintf(name, sizeof(name), "h-%04d", i);
            assert_true(k < n);
            assert_string_equal(names[k], name); /* both sorted by name */
            k++;
        }
        assert_int_equal(k, n);
        total += n;
        kf_lease_names_free(names, n);
    }
    assert_true(total > 100); /* the model did expire hosts, and came back */
    kf_lease_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_renewal_is_a_transition),
        cmocka_unit_test(test_expire_once_then_revive),
        cmocka_unit_test(test_out_of_order_renewal_keeps_latest),
        cmocka_unit_test(test_bad_names_and_forget),
        cmocka_unit_test(test_many_hosts),
        cmocka_unit_test(test_remote_renewals_are_not_local),
        cmocka_unit_test(test_remote_renewal_revives_only_when_newer),
        cmocka_unit_test(test_sweeps_match_a_full_scan),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
