/* test-election.c: what two kfleetd replicas on one etcd rely on, against
 * real etcd servers (etcd-harness.h) and the embedded stores:
 *   - KF_OP_CHECK conditions and guarded (fenced) store handles, on every
 *     backend;
 *   - the watch hub expiring every watcher, and the etcd backend doing so
 *     when its own watch comes back after a compaction it missed;
 *   - leader election on an etcd lease: one leader, resign hands over at
 *     once, a lost lease makes the leader step down, the new leader's token
 *     is higher and the old leader's fenced writes are refused.
 *
 * The etcd parts are skipped, with a message, only when /usr/bin/etcd is
 * not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "etcd-harness.h"
#include "kfleet/election.h"
#include "kfleet/error.h"
#include "kfleet/etcd.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "store/store-internal.h"

static struct etcd_harness single, cluster;

#define NEED_ETCD()                                                         \
    do {                                                                    \
        if (!etcd_harness_available()) {                                    \
            print_message("skipped: " ETCD_HARNESS_BIN " is not installed " \
                          "(scripts/install-deps installs etcd-server)\n"); \
            skip();                                                         \
        }                                                                   \
    } while (0)

static struct kf_store *open_url(const char *url)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_store *s = NULL;

    if (kf_store_open(url, &s, &err) < 0)
        fail_msg("kf_store_open(%s): %s", url, err.buf);
    kf_strbuf_release(&err);
    return s;
}

static struct kf_store *open_etcd(const char *endpoints, const char *prefix)
{
    char *url = kf_xasprintf("etcd:%s?prefix=%s&timeout=3s", endpoints, prefix);
    struct kf_store *s = open_url(url);

    free(url);
    return s;
}

static int64_t put(struct kf_store *s, const char *key, const char *value, int64_t expect)
{
    int64_t rev = 0;

    assert_int_equal(kf_store_put(s, key, value, strlen(value), expect, &rev), 0);
    return rev;
}

/* Waits up to 10 s for the next result of kf_watch_next that is not 0. */
static int next_result(struct kf_watch *w, struct kf_event **ev)
{
    for (int i = 0; i < 200; i++) {
        int r = kf_watch_next(w, ev);

        if (r != 0)
            return r;
        kf_watch_wait(w, 50);
    }
    return 0;
}

/* --- conditions and guards, on every backend ----------------------------- */

static void check_and_guard(struct kf_store *s)
{
    struct kf_store *g, *stale;
    struct kf_op ops[2];
    struct kf_kv kv = { 0 };
    struct kf_watch *w;
    struct kf_event *ev;
    size_t failed = 99;
    int64_t lead, rev = 0, r1;

    lead = put(s, "/_kfleet/leader", "a", 0);
    assert_int_equal(kf_watch_open(s, "/", lead, NULL, NULL, &w), 0);
    /* a condition holds: the write applies, the checked key is untouched */
    ops[0] = (struct kf_op){
        .type = KF_OP_PUT, .key = "/x/1", .value = "v", .value_len = 1, .expect_mod_rev = 0
    };
    ops[1] =
        (struct kf_op){ .type = KF_OP_CHECK, .key = "/_kfleet/leader", .expect_mod_rev = lead };
    assert_int_equal(kf_store_txn(s, ops, 2, &r1, &failed), 0);
    assert_int_equal(kf_store_get(s, "/_kfleet/leader", &kv), 0);
    assert_int_equal(kv.mod_rev, lead);
    kf_kv_release(&kv);
    /* watchers see the write only */
    assert_int_equal(next_result(w, &ev), 1);
    assert_string_equal(ev->kv.key, "/x/1");
    assert_int_equal(ev->kv.mod_rev, r1);
    kf_event_unref(ev);
    assert_int_equal(kf_watch_next(w, &ev), 0);
    /* a condition fails: nothing applies, the op is named */
    ops[0].key = "/x/2";
    ops[1].expect_mod_rev = lead + 1000;
    assert_int_equal(kf_store_txn(s, ops, 2, &rev, &failed), -KF_ECONFLICT);
    assert_int_equal(failed, 1);
    assert_int_equal(kf_store_get(s, "/x/2", &kv), -KF_ENOTFOUND);
    ops[1].expect_mod_rev = 0;
    assert_int_equal(kf_store_txn(s, ops, 2, &rev, &failed), -KF_EEXISTS);
    /* checks alone, or a check of "any", are not transactions */
    assert_int_equal(kf_store_txn(s, &ops[1], 1, &rev, &failed), -EINVAL);
    ops[1].expect_mod_rev = KF_REV_ANY;
    assert_int_equal(kf_store_txn(s, ops, 2, &rev, &failed), -EINVAL);

    /* a guard at the leader key's revision writes ... */
    assert_int_equal(kf_store_guard_new(s, "/_kfleet/leader", lead, &g), 0);
    assert_int_equal(kf_store_put(g, "/x/3", "g", 1, 0, &rev), 0);
    assert_int_equal(kf_store_get(g, "/x/3", &kv), 0);
    assert_int_equal(kv.mod_rev, rev);
    kf_kv_release(&kv);
    /* ... the caller's own conditions still come first ... */
    assert_int_equal(kf_store_put(g, "/x/3", "g", 1, 0, &rev), -KF_EEXISTS);
    /* ... and once the key changes (another leader), it is fenced */
    stale = g;
    put(s, "/_kfleet/leader", "b", lead);
    assert_int_equal(kf_store_put(stale, "/x/4", "late", 4, 0, &rev), -KF_EFENCED);
    assert_int_equal(kf_store_delete(stale, "/x/3", KF_REV_ANY, &rev), -KF_EFENCED);
    assert_int_equal(kf_store_get(s, "/x/4", &kv), -KF_ENOTFOUND);
    assert_int_equal(kf_store_guard_fenced(stale), 2);
    assert_int_equal(kf_store_guard_fenced(s), 0);
    kf_store_close(stale);
    /* the store itself is still open and whole */
    put(s, "/x/5", "after", 0);
    kf_watch_close(w);
}

static void test_check_memory(void **state)
{
    struct kf_store *s = open_url("memory:");

    (void)state;
    check_and_guard(s);
    kf_store_close(s);
}

static void test_check_sqlite(void **state)
{
    char dir[] = "/tmp/kf-election-XXXXXX";
    char *url, *path;
    struct kf_store *s;

    (void)state;
    assert_non_null(mkdtemp(dir));
    path = kf_xasprintf("%s/kf.db", dir);
    url = kf_xasprintf("sqlite:%s", path);
    s = open_url(url);
    check_and_guard(s);
    kf_store_close(s);
    unlink(path);
    free(path);
    free(url);
    rmdir(dir);
}

static void test_check_etcd(void **state)
{
    struct kf_store *s;

    (void)state;
    NEED_ETCD();
    s = open_etcd(single.endpoints, "/t-check");
    check_and_guard(s);
    kf_store_close(s);
}

/* --- expiring watchers --------------------------------------------------- */

static void test_hub_expire(void **state)
{
    struct kf_store *s = open_url("memory:");
    struct kf_watch *w1, *w2, *w3;
    struct kf_event *ev;
    int64_t r1;

    (void)state;
    r1 = put(s, "/a/1", "1", 0);
    assert_int_equal(kf_watch_open(s, "/a/", 0, NULL, NULL, &w1), 0);
    assert_int_equal(kf_watch_open(s, "/", r1 - 1, NULL, NULL, &w2), 0);
    /* w2 has an event in hand; w1 is caught up: both end */
    assert_int_equal(kf_watch_hub_expire(s->hub, r1 + 10), 2);
    assert_int_equal(kf_watch_wait(w1, 0), 1);
    assert_int_equal(kf_watch_next(w1, &ev), -KF_ECOMPACTED);
    assert_int_equal(kf_watch_next(w2, &ev), -KF_ECOMPACTED);
    /* nothing before the gap can be watched from any more; from now on can */
    assert_int_equal(kf_watch_open(s, "/", r1, NULL, NULL, &w3), -KF_ECOMPACTED);
    assert_int_equal(kf_watch_open(s, "/", 0, NULL, NULL, &w3), 0);
    kf_watch_close(w1);
    kf_watch_close(w2);
    kf_watch_close(w3);
    kf_store_close(s);
}

/* The store's own etcd watch is away (the only member it knows is down)
 * while another client writes and compacts: when it comes back, its
 * watchers are told (-KF_ECOMPACTED), and new watchers work. */
static void test_etcd_watch_away_past_compaction(void **state)
{
    struct kf_store *s, *peer;
    struct kf_watch *w, *w2;
    struct kf_event *ev = NULL;
    int64_t rev = 0;
    char key[32];

    (void)state;
    NEED_ETCD();
    s = open_etcd(cluster.endpoint[0], "/t-away");
    peer = open_etcd(cluster.endpoint[1], "/t-away");
    put(s, "/k/before", "1", 0);
    assert_int_equal(kf_watch_open(s, "/k/", 0, NULL, NULL, &w), 0);

    etcd_harness_kill(&cluster, 0);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "/k/during-%d", i);
        rev = put(peer, key, "x", 0);
    }
    assert_int_equal(kf_store_compact(peer, rev), 0);
    assert_int_equal(etcd_harness_restart(&cluster, 0), 0);

    /* the events in between are gone: the watcher is expired, not left
     * waiting for them forever */
    assert_int_equal(next_result(w, &ev), -KF_ECOMPACTED);
    kf_watch_close(w);
    /* a new watcher (a client that listed again) gets what follows */
    assert_int_equal(kf_watch_open(s, "/k/", 0, NULL, NULL, &w2), 0);
    rev = put(peer, "/k/after", "2", 0);
    assert_int_equal(next_result(w2, &ev), 1);
    assert_string_equal(ev->kv.key, "/k/after");
    assert_int_equal(ev->kv.mod_rev, rev);
    kf_event_unref(ev);
    kf_watch_close(w2);
    kf_store_close(peer);
    kf_store_close(s);
}

/* --- election ------------------------------------------------------------ */

struct watcher {
    pthread_mutex_t lock;
    int changes;
};

static void on_change(void *arg)
{
    struct watcher *w = arg;

    pthread_mutex_lock(&w->lock);
    w->changes++;
    pthread_mutex_unlock(&w->lock);
}

static struct kf_election *elect(struct kf_store *s, const char *id, int64_t ttl_ms,
                                 struct watcher *w)
{
    struct kf_election_config c = { .id = id, .ttl_ms = ttl_ms, .changed = on_change, .arg = w };
    struct kf_election *e = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_election_start(s, &c, &e, &err) < 0)
        fail_msg("kf_election_start: %s", err.buf);
    kf_strbuf_release(&err);
    return e;
}

/* Polls until exactly one of a, b leads and the other knows who; returns
 * the leader's index (0 for a) and its state. */
static int wait_one_leader(struct kf_election *a, struct kf_election *b,
                           struct kf_election_state *ret)
{
    for (int i = 0; i < 400; i++) {
        struct kf_election_state sa, sb;

        kf_election_get(a, &sa);
        kf_election_get(b, &sb);
        if (sa.leader && !sb.leader && strcmp(sb.leader_id, sa.leader_id) == 0) {
            *ret = sa;
            return 0;
        }
        if (sb.leader && !sa.leader && strcmp(sa.leader_id, sb.leader_id) == 0) {
            *ret = sb;
            return 1;
        }
        usleep(25000);
    }
    fail_msg("no single leader within 10 s");
    return -1;
}

static void test_single_writer_leads(void **state)
{
    struct kf_store *s = open_url("memory:");
    struct watcher wa = { PTHREAD_MUTEX_INITIALIZER, 0 };
    struct kf_election *e;
    struct kf_election_state st;
    struct kf_election_config bad = { .id = "", .ttl_ms = 5000 };
    struct kf_strbuf err = KF_STRBUF_INIT;

    (void)state;
    e = elect(s, "only", 5000, &wa);
    kf_election_get(e, &st);
    assert_true(st.leader);
    assert_false(st.contested);
    assert_int_equal(st.token, 0);
    assert_string_equal(st.leader_id, "only");
    assert_int_equal(wa.changes, 1);
    kf_election_stop(e);
    assert_int_equal(kf_election_start(s, &bad, &e, &err), -EINVAL);
    bad.id = "x";
    bad.ttl_ms = 10;
    assert_int_equal(kf_election_start(s, &bad, &e, &err), -EINVAL);
    kf_strbuf_release(&err);
    kf_store_close(s);
}

static void test_election_handover(void **state)
{
    struct kf_store *sa, *sb, *g;
    struct watcher wa = { PTHREAD_MUTEX_INITIALIZER, 0 }, wb = { PTHREAD_MUTEX_INITIALIZER, 0 };
    struct kf_election *a, *b, *first, *second;
    struct kf_election_state st, st2;
    struct kf_kv kv = { 0 };
    int64_t rev;
    int who;

    (void)state;
    NEED_ETCD();
    sa = open_etcd(single.endpoints, "/t-elect");
    sb = open_etcd(single.endpoints, "/t-elect");
    a = elect(sa, "replica-a", 1000, &wa);
    b = elect(sb, "replica-b", 1000, &wb);
    who = wait_one_leader(a, b, &st);
    first = who == 0 ? a : b;
    second = who == 0 ? b : a;
    assert_true(st.contested);
    assert_true(st.token > 0);
    assert_int_equal(st.terms, 1);
    /* the leader key is a store key: its revision is the token */
    assert_int_equal(kf_store_get(sa, KF_ELECTION_KEY, &kv), 0);
    assert_int_equal(kv.mod_rev, st.token);
    assert_string_equal(kv.value, who == 0 ? "replica-a" : "replica-b");
    kf_kv_release(&kv);
    /* the leader's fenced writes go through */
    assert_int_equal(kf_store_guard_new(who == 0 ? sa : sb, KF_ELECTION_KEY, st.token, &g), 0);
    assert_int_equal(kf_store_put(g, "/x/by-first", "1", 1, 0, &rev), 0);

    /* resigning hands over at once (no TTL to wait out) */
    kf_election_stop(first);
    if (who == 0)
        a = NULL;
    else
        b = NULL;
    for (int i = 0; i < 200; i++) {
        kf_election_get(second, &st2);
        if (st2.leader)
            break;
        usleep(25000);
    }
    assert_true(st2.leader);
    assert_true(st2.token > st.token);
    /* the first leader's guard is fenced now */
    assert_int_equal(kf_store_put(g, "/x/late", "1", 1, 0, &rev), -KF_EFENCED);
    kf_store_close(g);
    kf_election_stop(a);
    kf_election_stop(b);
    kf_store_close(sa);
    kf_store_close(sb);
}

/* The leader's lease is revoked behind its back (what etcd does when it
 * expires): the leader steps down, the other replica takes over. */
static void test_election_lease_lost(void **state)
{
    struct kf_store *sa, *sb;
    struct watcher wa = { PTHREAD_MUTEX_INITIALIZER, 0 }, wb = { PTHREAD_MUTEX_INITIALIZER, 0 };
    struct kf_election *a, *b, *e[2];
    struct kf_election_state st, st2;
    struct kf_etcd_config cfg;
    struct kf_etcd *c;
    json_t *req, *resp = NULL;
    int64_t lease;
    int who;

    (void)state;
    NEED_ETCD();
    sa = open_etcd(single.endpoints, "/t-lost");
    sb = open_etcd(single.endpoints, "/t-lost");
    e[0] = a = elect(sa, "replica-a", 1000, &wa);
    e[1] = b = elect(sb, "replica-b", 1000, &wb);
    who = wait_one_leader(a, b, &st);

    assert_int_equal(kf_etcd_config_parse(single.endpoints, &cfg, NULL), 0);
    assert_int_equal(kf_etcd_new(&cfg, &c, NULL), 0);
    kf_etcd_config_release(&cfg);
    req = json_pack("{s:o}", "key", kf_etcd_str("/t-lost" KF_ELECTION_KEY));
    assert_int_equal(kf_etcd_call(c, "/v3/kv/range", req, KF_ETCD_IDEMPOTENT, &resp, NULL), 0);
    json_decref(req);
    lease = kf_etcd_get_int(json_array_get(json_object_get(resp, "kvs"), 0), "lease", 0);
    json_decref(resp);
    assert_true(lease != 0);
    assert_int_equal(kf_etcd_lease_revoke(c, lease, NULL), 0);
    kf_etcd_free(c);

    /* the other one leads with a higher token, and the old leader knows */
    for (int i = 0; i < 400; i++) {
        kf_election_get(e[1 - who], &st2);
        if (st2.leader)
            break;
        usleep(25000);
    }
    assert_true(st2.leader);
    assert_true(st2.token > st.token);
    kf_election_get(e[who], &st);
    for (int i = 0; i < 400 && st.leader; i++) {
        usleep(25000);
        kf_election_get(e[who], &st);
    }
    assert_false(st.leader);
    assert_true(strlen(st.reason) > 0);
    kf_election_stop(a);
    kf_election_stop(b);
    kf_store_close(sa);
    kf_store_close(sb);
}

static int start_single(void **state)
{
    (void)state;
    if (!etcd_harness_available())
        return 0;
    return etcd_harness_start(&single, 1, NULL) < 0 ? -1 : 0;
}

static int stop_single(void **state)
{
    (void)state;
    etcd_harness_stop(&single);
    return 0;
}

static int start_cluster(void **state)
{
    (void)state;
    if (!etcd_harness_available())
        return 0;
    return etcd_harness_start(&cluster, 3, NULL) < 0 ? -1 : 0;
}

static int stop_cluster(void **state)
{
    (void)state;
    etcd_harness_stop(&cluster);
    return 0;
}

int main(void)
{
    const struct CMUnitTest local[] = {
        cmocka_unit_test(test_check_memory),
        cmocka_unit_test(test_check_sqlite),
        cmocka_unit_test(test_hub_expire),
        cmocka_unit_test(test_single_writer_leads),
    };
    const struct CMUnitTest on_single[] = {
        cmocka_unit_test(test_check_etcd),
        cmocka_unit_test(test_election_handover),
        cmocka_unit_test(test_election_lease_lost),
    };
    const struct CMUnitTest on_cluster[] = {
        cmocka_unit_test(test_etcd_watch_away_past_compaction),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("guards and watchers", local, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("etcd single member", on_single, start_single, stop_single);
    failed += cmocka_run_group_tests_name("etcd 3-member cluster", on_cluster, start_cluster,
                                          stop_cluster);
    return failed ? 1 : 0;
}
