/* test-store-etcd.c: the etcd store backend against real etcd servers that
 * the test starts (etcd-harness.h): a single member, a 3-member cluster
 * that loses the member in use, a TLS member with client certificates and
 * a member with authentication. What is checked is what a caller of
 * kf_store_* sees: revisions, compare-and-swap verdicts, reads at old
 * revisions, watches fed by writes from another client, compaction, and
 * that no event is lost or repeated across an endpoint failover.
 *
 * Skipped, with a message, only when /usr/bin/etcd is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <cmocka.h>

#include "etcd-harness.h"
#include "kfleet/error.h"
#include "kfleet/etcd.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

static struct etcd_harness single, cluster, tls, authd;

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

#define NEED_ETCD()                                                         \
    do {                                                                    \
        if (!etcd_harness_available()) {                                    \
            print_message("skipped: " ETCD_HARNESS_BIN " is not installed " \
                          "(scripts/install-deps installs etcd-server)\n"); \
            skip();                                                         \
        }                                                                   \
    } while (0)

/* A store on h under its own prefix, so that tests do not see each other. */
static struct kf_store *open_on(struct etcd_harness *h, const char *prefix, const char *extra)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_store *s = NULL;
    char *url = kf_xasprintf("%s%sprefix=%s%s", h->url, strchr(h->url, '?') ? "&" : "?", prefix,
                             extra ? extra : "");
    int r = kf_store_open(url, &s, &err);

    if (r < 0)
        fail_msg("kf_store_open(%s): %s", url, err.buf);
    free(url);
    kf_strbuf_release(&err);
    return s;
}

static int64_t put(struct kf_store *s, const char *key, const char *value, int64_t expect)
{
    int64_t rev = 0;

    assert_int_equal(kf_store_put(s, key, value, strlen(value), expect, &rev), 0);
    assert_true(rev > 0);
    return rev;
}

/* Next event within a few seconds, or fail. */
static struct kf_event *next_event(struct kf_watch *w)
{
    struct kf_event *ev = NULL;

    for (int i = 0; i < 200; i++) {
        int r = kf_watch_next(w, &ev);

        assert_true(r >= 0);
        if (r == 1)
            return ev;
        kf_watch_wait(w, 50);
    }
    fail_msg("no event within 10 s");
    return NULL;
}

static void test_url_syntax(void **state)
{
    struct kf_etcd_config cfg;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char path[] = "/tmp/kf-etcd-pw-XXXXXX";
    int fd = mkstemp(path);
    char *spec;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret\n", 7), 7);
    close(fd);
    spec = kf_xasprintf("https://a:2379/,https://b:2379?cacert=/ca.pem&cert=/c.pem&key=/k%%20.pem"
                        "&user=kf&password-file=%s&prefix=/fleet-a/&timeout=2s",
                        path);
    assert_int_equal(kf_etcd_config_parse(spec, &cfg, &err), 0);
    assert_int_equal(cfg.n_endpoints, 2);
    assert_string_equal(cfg.endpoints[0], "https://a:2379");
    assert_string_equal(cfg.endpoints[1], "https://b:2379");
    assert_string_equal(cfg.cacert, "/ca.pem");
    assert_string_equal(cfg.key, "/k .pem");
    assert_string_equal(cfg.user, "kf");
    assert_string_equal(cfg.password, "s3cret");
    assert_string_equal(cfg.prefix, "/fleet-a");
    assert_int_equal(cfg.timeout_ms, 2000);
    kf_etcd_config_release(&cfg);
    free(spec);
    unlink(path);

    assert_int_equal(kf_etcd_config_parse("http://h:2379", &cfg, &err), 0);
    assert_string_equal(cfg.prefix, KF_ETCD_DEFAULT_PREFIX);
    assert_null(cfg.cacert);
    kf_etcd_config_release(&cfg);

    /* each mistake is refused with a message that names it */
    assert_int_equal(kf_etcd_config_parse("", &cfg, &err), -EINVAL);
    assert_int_equal(kf_etcd_config_parse("h:2379", &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "h:2379"));
    assert_int_equal(kf_etcd_config_parse("http://h:2379?colour=red", &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "colour"));
    assert_int_equal(kf_etcd_config_parse("http://h:2379?cert=/c.pem", &cfg, &err), -EINVAL);
    assert_int_equal(kf_etcd_config_parse("http://h:2379?user=kf", &cfg, &err), -EINVAL);
    assert_int_equal(
        kf_etcd_config_parse("http://h:2379?user=kf&password-file=/nonexistent", &cfg, &err),
        -EINVAL);
    assert_non_null(strstr(err.buf, "/nonexistent"));
    assert_int_equal(kf_etcd_config_parse("http://h:2379?timeout=soon", &cfg, &err), -EINVAL);
    assert_int_equal(kf_etcd_config_parse("http://h:2379?prefix=fleet", &cfg, &err), -EINVAL);
    kf_strbuf_release(&err);
}

static void test_unreachable(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_store *s = NULL;
    char url[128];

    (void)state;
    snprintf(url, sizeof(url), "etcd:http://127.0.0.1:%d?timeout=1s", kf_test_port());
    assert_int_equal(kf_store_open(url, &s, &err), -KF_EUNAVAILABLE);
    assert_null(s);
    assert_non_null(strstr(err.buf, "127.0.0.1"));
    kf_strbuf_release(&err);
}

static void test_crud_and_conditions(void **state)
{
    struct kf_store *s;
    struct kf_kv kv = { 0 };
    int64_t r1, r2, rev;
    size_t failed = 99;

    (void)state;
    NEED_ETCD();
    s = open_on(&single, "/t-crud", NULL);
    r1 = put(s, "/things/a", "one", 0);
    assert_int_equal(kf_store_put(s, "/things/a", "x", 1, 0, &rev), -KF_EEXISTS);
    assert_int_equal(kf_store_get(s, "/things/a", &kv), 0);
    assert_string_equal(kv.value, "one");
    assert_int_equal(kv.value_len, 3);
    assert_int_equal(kv.create_rev, r1);
    assert_int_equal(kv.mod_rev, r1);
    kf_kv_release(&kv);

    r2 = put(s, "/things/a", "two", r1);
    assert_true(r2 > r1);
    assert_int_equal(kf_store_put(s, "/things/a", "3", 1, r1, &rev), -KF_ECONFLICT);
    assert_int_equal(kf_store_put(s, "/things/b", "3", 1, r1, &rev), -KF_ENOTFOUND);
    assert_int_equal(kf_store_delete(s, "/things/b", KF_REV_ANY, &rev), -KF_ENOTFOUND);
    assert_int_equal(kf_store_delete(s, "/things/a", r1, &rev), -KF_ECONFLICT);
    assert_int_equal(kf_store_get(s, "/things/a", &kv), 0);
    assert_int_equal(kv.create_rev, r1);
    assert_int_equal(kv.mod_rev, r2);
    kf_kv_release(&kv);

    /* a multi-op transaction: all or nothing, first failing op reported */
    {
        struct kf_op ops[] = {
            { KF_OP_PUT, "/things/c", "c", 1, 0 },
            { KF_OP_PUT, "/things/a", "a3", 2, r1 }, /* stale */
        };

        assert_int_equal(kf_store_txn(s, ops, 2, &rev, &failed), -KF_ECONFLICT);
        assert_int_equal(failed, 1);
        assert_int_equal(kf_store_get(s, "/things/c", &kv), -KF_ENOTFOUND);
        ops[1].expect_mod_rev = r2;
        assert_int_equal(kf_store_txn(s, ops, 2, &rev, &failed), 0);
        assert_int_equal(kf_store_get(s, "/things/c", &kv), 0);
        assert_int_equal(kv.mod_rev, rev);
        kf_kv_release(&kv);
        assert_int_equal(kf_store_get(s, "/things/a", &kv), 0);
        assert_int_equal(kv.mod_rev, rev);
        assert_string_equal(kv.value, "a3");
        kf_kv_release(&kv);
    }
    {
        struct kf_op dup[] = {
            { KF_OP_PUT, "/things/d", "d", 1, KF_REV_ANY },
            { KF_OP_DELETE, "/things/d", NULL, 0, KF_REV_ANY },
        };

        assert_int_equal(kf_store_txn(s, dup, 2, &rev, &failed), -EINVAL);
        assert_int_equal(failed, 1);
    }
    assert_int_equal(kf_store_delete(s, "/things/c", KF_REV_ANY, &rev), 0);
    assert_int_equal(kf_store_get(s, "/things/c", &kv), -KF_ENOTFOUND);
    kf_store_close(s);
}

static void test_range_and_revisions(void **state)
{
    struct kf_store *s;
    struct kf_kv_list l = { 0 };
    struct kf_range q = { 0 };
    char key[64], val[64];
    int64_t rev5 = 0, last = 0;

    (void)state;
    NEED_ETCD();
    s = open_on(&single, "/t-range", NULL);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "/pods/p%02d", i);
        snprintf(val, sizeof(val), "{\"n\":%d}", i);
        last = put(s, key, val, 0);
        if (i == 4)
            rev5 = last;
    }
    put(s, "/podsx/other", "x", 0);

    q.prefix = "/pods/";
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_int_equal(l.n, 10);
    assert_false(l.more);
    assert_true(l.rev > last);
    assert_string_equal(l.items[0].key, "/pods/p00");
    assert_string_equal(l.items[9].value, "{\"n\":9}");
    kf_kv_list_release(&l);

    /* pages: limit + start_after */
    q.limit = 4;
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_int_equal(l.n, 4);
    assert_true(l.more);
    q.start_after = "/pods/p03";
    kf_kv_list_release(&l);
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.items[0].key, "/pods/p04");
    kf_kv_list_release(&l);
    q.start_after = "/pods/p07";
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_int_equal(l.n, 2);
    assert_false(l.more);
    kf_kv_list_release(&l);

    /* at an older revision */
    q = (struct kf_range){ .prefix = "/pods/", .rev = rev5 };
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_int_equal(l.n, 5);
    assert_int_equal(l.rev, rev5);
    kf_kv_list_release(&l);
    q.rev = last + 1000;
    assert_int_equal(kf_store_range(s, &q, &l), -EINVAL);

    /* everything of this store, and nothing of other prefixes */
    q = (struct kf_range){ 0 };
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_int_equal(l.n, 11);
    kf_kv_list_release(&l);
    kf_store_close(s);
}

static void test_watch_sees_other_clients(void **state)
{
    struct kf_store *a, *b, *other;
    struct kf_watch *w, *wo;
    struct kf_event *ev;
    int64_t r1, r2, r3;

    (void)state;
    NEED_ETCD();
    a = open_on(&single, "/t-watch", NULL);
    b = open_on(&single, "/t-watch", NULL);
    other = open_on(&single, "/t-watch-other", NULL);
    assert_int_equal(kf_watch_open(a, "/hosts/", 0, NULL, NULL, &w), 0);
    assert_int_equal(kf_watch_open(other, "", 0, NULL, NULL, &wo), 0);

    /* writes through b (another "replica") reach a's watchers */
    r1 = put(b, "/hosts/h1", "v1", 0);
    r2 = put(b, "/hosts/h1", "v2", r1);
    assert_int_equal(kf_store_delete(b, "/hosts/h1", r2, &r3), 0);

    ev = next_event(w);
    assert_int_equal(ev->type, KF_EVENT_PUT);
    assert_string_equal(ev->kv.key, "/hosts/h1");
    assert_string_equal(ev->kv.value, "v1");
    assert_int_equal(ev->kv.mod_rev, r1);
    assert_true(kf_event_created(ev));
    kf_event_unref(ev);
    ev = next_event(w);
    assert_int_equal(ev->kv.mod_rev, r2);
    assert_string_equal(ev->prev_value, "v1");
    assert_int_equal(ev->prev_mod_rev, r1);
    assert_false(kf_event_created(ev));
    kf_event_unref(ev);
    ev = next_event(w);
    assert_int_equal(ev->type, KF_EVENT_DELETE);
    assert_string_equal(ev->kv.value, "v2");
    assert_int_equal(ev->kv.mod_rev, r3);
    assert_int_equal(ev->prev_mod_rev, r2);
    kf_event_unref(ev);

    /* a store under another prefix saw none of it */
    assert_int_equal(kf_watch_next(wo, &ev), 0);

    /* a multi-op transaction arrives as one revision, together */
    {
        struct kf_op ops[] = {
            { KF_OP_PUT, "/hosts/x", "x", 1, 0 },
            { KF_OP_PUT, "/hosts/y", "y", 1, 0 },
        };
        int64_t rev;

        assert_int_equal(kf_store_txn(a, ops, 2, &rev, NULL), 0);
        /* read-your-writes: the writer's own watch has it on return */
        assert_int_equal(kf_watch_next(w, &ev), 1);
        assert_int_equal(ev->kv.mod_rev, rev);
        kf_event_unref(ev);
        assert_int_equal(kf_watch_next(w, &ev), 1);
        assert_int_equal(ev->kv.mod_rev, rev);
        assert_string_equal(ev->kv.key, "/hosts/y");
        kf_event_unref(ev);
    }
    kf_watch_close(w);
    kf_watch_close(wo);

    /* a watch from an old revision replays history (from etcd) */
    assert_int_equal(kf_watch_open(b, "/hosts/", r1 - 1, NULL, NULL, &w), 0);
    ev = next_event(w);
    assert_int_equal(ev->kv.mod_rev, r1);
    kf_event_unref(ev);
    ev = next_event(w);
    assert_int_equal(ev->kv.mod_rev, r2);
    kf_event_unref(ev);
    ev = next_event(w);
    assert_int_equal(ev->kv.mod_rev, r3);
    assert_int_equal(ev->type, KF_EVENT_DELETE);
    kf_event_unref(ev);
    kf_watch_close(w);

    /* history directly, with a limit that does not split a transaction */
    {
        struct kf_event_list hl = { 0 };

        assert_int_equal(kf_store_history(a, r1 - 1, 4, &hl), 0);
        assert_int_equal(hl.n, 5); /* r1, r2, r3, and the 2-op txn */
        assert_int_equal(hl.items[0]->kv.mod_rev, r1);
        assert_int_equal(hl.items[3]->kv.mod_rev, hl.items[4]->kv.mod_rev);
        kf_event_list_release(&hl);
        assert_int_equal(kf_store_history(a, r1 - 1, 2, &hl), 0);
        assert_int_equal(hl.n, 2);
        kf_event_list_release(&hl);
    }
    kf_store_close(a);
    kf_store_close(b);
    kf_store_close(other);
}

/* Writes to keys outside the store move etcd's revision without events for
 * us. A watch that starts before that gap catches up and then rests in the
 * shared window, instead of polling etcd's history for the gap. */
static void test_watch_across_foreign_revisions(void **state)
{
    struct kf_store *a, *other, *a2;
    struct kf_watch *w;
    struct kf_event *ev;
    int64_t r1, r2;

    (void)state;
    NEED_ETCD();
    a = open_on(&single, "/t-gap", NULL);
    other = open_on(&single, "/t-gap-other", NULL);
    r1 = put(a, "/g/a", "1", 0);
    put(other, "/x", "1", 0);
    put(other, "/y", "1", 0);
    kf_store_close(a);

    a2 = open_on(&single, "/t-gap", NULL);
    assert_true(kf_store_rev(a2) > r1);
    assert_int_equal(kf_watch_open(a2, "/g/", r1 - 1, NULL, NULL, &w), 0);
    ev = next_event(w);
    assert_int_equal(ev->kv.mod_rev, r1);
    kf_event_unref(ev);
    assert_int_equal(kf_watch_next(w, &ev), 0);
    assert_int_equal(kf_watch_wait(w, 300), 0);
    assert_int_equal(kf_watch_next(w, &ev), 0);
    r2 = put(a2, "/g/b", "2", 0);
    assert_int_equal(kf_watch_next(w, &ev), 1);
    assert_int_equal(ev->kv.mod_rev, r2);
    kf_event_unref(ev);
    kf_watch_close(w);
    kf_store_close(a2);
    kf_store_close(other);
}

static void test_compaction(void **state)
{
    struct kf_store *s, *s2;
    struct kf_watch *w;
    struct kf_store_status st;
    struct kf_range q = { .prefix = "/c/" };
    struct kf_kv_list l = { 0 };
    struct kf_event_list hl = { 0 };
    int64_t r1, r2, r3;

    (void)state;
    NEED_ETCD();
    s = open_on(&single, "/t-compact", NULL);
    r1 = put(s, "/c/a", "1", 0);
    r2 = put(s, "/c/a", "2", r1);
    r3 = put(s, "/c/b", "3", 0);
    assert_int_equal(kf_store_compact(s, r2), 0);
    assert_int_equal(kf_store_compact(s, r2), -KF_ECOMPACTED);
    assert_int_equal(kf_store_compact(s, r3 + 100), -EINVAL);

    q.rev = r1;
    assert_int_equal(kf_store_range(s, &q, &l), -KF_ECOMPACTED);
    q.rev = r2;
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_int_equal(l.n, 1);
    kf_kv_list_release(&l);
    assert_int_equal(kf_store_history(s, r1 - 1, 0, &hl), -KF_ECOMPACTED);
    assert_int_equal(kf_watch_open(s, "/c/", r1, NULL, NULL, &w), -KF_ECOMPACTED);
    assert_int_equal(kf_store_status(s, &st), 0);
    assert_int_equal(st.compacted_rev, r2);
    assert_true(st.rev >= r3);
    assert_int_equal(st.keys, 2);
    assert_true(st.db_bytes > 0);

    /* a fresh client learns how far etcd was compacted */
    s2 = open_on(&single, "/t-compact", NULL);
    assert_int_equal(kf_store_status(s2, &st), 0);
    assert_true(st.compacted_rev >= r2);
    assert_int_equal(kf_watch_open(s2, "/c/", r1, NULL, NULL, &w), -KF_ECOMPACTED);
    kf_store_close(s2);
    kf_store_close(s);
}

static void test_limits(void **state)
{
    struct kf_store *s;
    char *big = kf_xmalloc(KF_STORE_MAX_VALUE + 1);
    struct kf_kv kv = { 0 };
    int64_t rev;

    (void)state;
    NEED_ETCD();
    s = open_on(&single, "/t-limits", NULL);
    memset(big, 'v', KF_STORE_MAX_VALUE + 1);
    assert_int_equal(kf_store_put(s, "/big/a", big, KF_STORE_MAX_VALUE, 0, &rev), 0);
    assert_int_equal(kf_store_get(s, "/big/a", &kv), 0);
    assert_int_equal(kv.value_len, KF_STORE_MAX_VALUE);
    kf_kv_release(&kv);
    assert_int_equal(kf_store_put(s, "/big/b", big, KF_STORE_MAX_VALUE + 1, 0, &rev),
                     -KF_ETOOLARGE);
    /* two values at the limit are over etcd's request size (1.5 MiB) */
    {
        struct kf_op ops[] = {
            { KF_OP_PUT, "/big/c", big, KF_STORE_MAX_VALUE, 0 },
            { KF_OP_PUT, "/big/d", big, KF_STORE_MAX_VALUE, 0 },
        };

        assert_int_equal(kf_store_txn(s, ops, 2, &rev, NULL), -KF_ETOOLARGE);
    }
    free(big);
    kf_store_close(s);
}

static void test_leases(void **state)
{
    struct kf_etcd_config cfg;
    struct kf_etcd *c;
    int64_t id = 0, ttl = 0;

    (void)state;
    NEED_ETCD();
    assert_int_equal(kf_etcd_config_parse(single.endpoints, &cfg, NULL), 0);
    assert_int_equal(kf_etcd_new(&cfg, &c, NULL), 0);
    kf_etcd_config_release(&cfg);
    assert_int_equal(kf_etcd_lease_grant(c, 30, &id, &ttl, NULL), 0);
    assert_true(id != 0);
    assert_int_equal(ttl, 30);
    ttl = 0;
    assert_int_equal(kf_etcd_lease_keepalive(c, id, &ttl, NULL), 0);
    assert_int_equal(ttl, 30);
    assert_int_equal(kf_etcd_lease_revoke(c, id, NULL), 0);
    assert_int_equal(kf_etcd_lease_keepalive(c, id, &ttl, NULL), -KF_ENOTFOUND);
    assert_int_equal(kf_etcd_lease_revoke(c, id, NULL), -KF_ENOTFOUND);
    kf_etcd_free(c);
}

/* --- a 3-member cluster that loses the member in use ------------------- */

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

#define FAILOVER_KEYS 40

static void test_failover(void **state)
{
    struct kf_store *s, *peer;
    struct kf_watch *w;
    struct kf_event *ev;
    char key[64];
    int64_t revs[2 * FAILOVER_KEYS + 1], prev = 0;
    struct kf_range q = { .prefix = "/k/" };
    struct kf_kv_list l = { 0 };

    (void)state;
    NEED_ETCD();
    /* the store talks to member 0 first (the first endpoint) */
    s = open_on(&cluster, "/t-failover", "&timeout=3s");
    /* another client on member 2 keeps writing through the failover */
    {
        char *url = kf_xasprintf("etcd:%s?prefix=/t-failover", cluster.endpoint[2]);

        assert_int_equal(kf_store_open(url, &peer, NULL), 0);
        free(url);
    }
    assert_int_equal(kf_watch_open(s, "/k/", 0, NULL, NULL, &w), 0);
    for (int i = 0; i < FAILOVER_KEYS; i++) {
        snprintf(key, sizeof(key), "/k/%03d", i);
        revs[i] = put(i % 2 ? peer : s, key, "before", 0);
    }
    etcd_harness_kill(&cluster, 0);
    for (int i = FAILOVER_KEYS; i < 2 * FAILOVER_KEYS; i++) {
        snprintf(key, sizeof(key), "/k/%03d", i);
        revs[i] = put(i % 2 ? peer : s, key, "after", 0);
    }
    /* every write, once, in order, through the failover */
    for (int i = 0; i < 2 * FAILOVER_KEYS; i++) {
        ev = next_event(w);
        snprintf(key, sizeof(key), "/k/%03d", i);
        assert_string_equal(ev->kv.key, key);
        assert_int_equal(ev->kv.mod_rev, revs[i]);
        assert_true(ev->kv.mod_rev > prev);
        prev = ev->kv.mod_rev;
        kf_event_unref(ev);
    }
    assert_int_equal(kf_watch_next(w, &ev), 0);
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_int_equal(l.n, 2 * FAILOVER_KEYS);
    kf_kv_list_release(&l);
    kf_watch_close(w);

    /* the member comes back and catches up; the store keeps working */
    assert_int_equal(etcd_harness_restart(&cluster, 0), 0);
    put(s, "/k/back", "1", 0);
    kf_store_close(peer);
    kf_store_close(s);
}

/* --- TLS with client certificates -------------------------------------- */

static int start_tls(void **state)
{
    struct etcd_harness_opts o = { .tls = true };

    (void)state;
    if (!etcd_harness_available())
        return 0;
    return etcd_harness_start(&tls, 1, &o) < 0 ? -1 : 0;
}

static int stop_tls(void **state)
{
    (void)state;
    etcd_harness_stop(&tls);
    return 0;
}

static void test_tls_client_certs(void **state)
{
    struct kf_store *s;
    struct kf_watch *w;
    struct kf_event *ev;
    struct kf_kv kv = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *url;

    (void)state;
    NEED_ETCD();
    s = open_on(&tls, "/t-tls", NULL);
    assert_int_equal(kf_watch_open(s, "/", 0, NULL, NULL, &w), 0);
    put(s, "/secure/a", "yes", 0);
    assert_int_equal(kf_store_get(s, "/secure/a", &kv), 0);
    assert_string_equal(kv.value, "yes");
    kf_kv_release(&kv);
    ev = next_event(w);
    assert_string_equal(ev->kv.key, "/secure/a");
    kf_event_unref(ev);
    kf_watch_close(w);
    kf_store_close(s);

    /* without a client certificate the server refuses us */
    url = kf_xasprintf("etcd:%s?cacert=%s&timeout=2s", tls.endpoints, tls.cacert);
    s = NULL;
    assert_true(kf_store_open(url, &s, &err) < 0);
    assert_null(s);
    free(url);
    /* and without the CA we refuse the server */
    url = kf_xasprintf("etcd:%s?cert=%s&key=%s&timeout=2s", tls.endpoints, tls.cert, tls.key);
    assert_true(kf_store_open(url, &s, &err) < 0);
    assert_null(s);
    free(url);
    kf_strbuf_release(&err);
}

/* --- users and passwords -------------------------------------------- */

static int auth_call(struct kf_etcd *c, const char *path, json_t *req)
{
    json_t *resp = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r = kf_etcd_call(c, path, req, 0, &resp, &err);

    if (r < 0)
        fprintf(stderr, "%s: %s\n", path, err.buf);
    json_decref(req);
    json_decref(resp);
    kf_strbuf_release(&err);
    return r;
}

static int start_auth(void **state)
{
    struct kf_etcd_config cfg;
    struct kf_etcd *c;
    int r = 0;

    (void)state;
    if (!etcd_harness_available())
        return 0;
    if (etcd_harness_start(&authd, 1, NULL) < 0)
        return -1;
    /* root (needed to enable auth) and "kf", allowed only under /t-auth/ */
    if (kf_etcd_config_parse(authd.endpoints, &cfg, NULL) < 0 || kf_etcd_new(&cfg, &c, NULL) < 0)
        return -1;
    kf_etcd_config_release(&cfg);
    r |= auth_call(c, "/v3/auth/user/add",
                   json_pack("{s:s,s:s}", "name", "root", "password", "rootpw"));
    r |=
        auth_call(c, "/v3/auth/user/grant", json_pack("{s:s,s:s}", "user", "root", "role", "root"));
    r |=
        auth_call(c, "/v3/auth/user/add", json_pack("{s:s,s:s}", "name", "kf", "password", "kfpw"));
    r |= auth_call(c, "/v3/auth/role/add", json_pack("{s:s}", "name", "fleet"));
    r |= auth_call(c, "/v3/auth/role/grant",
                   json_pack("{s:s,s:{s:s,s:o,s:o}}", "name", "fleet", "perm", "permType",
                             "READWRITE", "key", kf_etcd_str("/t-auth/"), "range_end",
                             kf_etcd_str("/t-auth0")));
    r |= auth_call(c, "/v3/auth/user/grant", json_pack("{s:s,s:s}", "user", "kf", "role", "fleet"));
    r |= auth_call(c, "/v3/auth/enable", json_object());
    kf_etcd_free(c);
    return r ? -1 : 0;
}

static int stop_auth(void **state)
{
    (void)state;
    etcd_harness_stop(&authd);
    return 0;
}

static char *password_file(const char *pw)
{
    char *path = kf_xstrdup("/tmp/kf-etcd-pw-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, pw, strlen(pw)), (ssize_t)strlen(pw));
    close(fd);
    return path;
}

static void test_user_password(void **state)
{
    struct kf_store *s = NULL;
    struct kf_watch *w;
    struct kf_event *ev;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *good = NULL, *bad = NULL, *url;

    (void)state;
    NEED_ETCD();
    good = password_file("kfpw\n");
    bad = password_file("wrong\n");
    url = kf_xasprintf("etcd:%s?user=kf&password-file=%s&prefix=/t-auth", authd.endpoints, good);
    if (kf_store_open(url, &s, &err) < 0)
        fail_msg("open with a password: %s", err.buf);
    free(url);
    assert_int_equal(kf_watch_open(s, "/", 0, NULL, NULL, &w), 0);
    put(s, "/a", "1", 0);
    ev = next_event(w);
    assert_string_equal(ev->kv.key, "/a");
    kf_event_unref(ev);
    kf_watch_close(w);
    kf_store_close(s);

    /* a wrong password, or a prefix the user may not touch: refused */
    s = NULL;
    url = kf_xasprintf("etcd:%s?user=kf&password-file=%s&prefix=/t-auth", authd.endpoints, bad);
    assert_int_equal(kf_store_open(url, &s, &err), -EPERM);
    assert_non_null(strstr(err.buf, "kf"));
    free(url);
    url = kf_xasprintf("etcd:%s?user=kf&password-file=%s&prefix=/elsewhere", authd.endpoints, good);
    assert_int_equal(kf_store_open(url, &s, &err), -EPERM);
    assert_non_null(strstr(err.buf, "permission denied"));
    free(url);
    /* no credentials at all */
    url = kf_xasprintf("etcd:%s?prefix=/t-auth", authd.endpoints);
    assert_int_equal(kf_store_open(url, &s, &err), -EPERM);
    free(url);
    assert_null(s);
    unlink(good);
    unlink(bad);
    free(good);
    free(bad);
    kf_strbuf_release(&err);
}

int main(void)
{
    const struct CMUnitTest offline[] = {
        cmocka_unit_test(test_url_syntax),
        cmocka_unit_test(test_unreachable),
    };
    const struct CMUnitTest on_single[] = {
        cmocka_unit_test(test_crud_and_conditions),
        cmocka_unit_test(test_range_and_revisions),
        cmocka_unit_test(test_watch_sees_other_clients),
        cmocka_unit_test(test_watch_across_foreign_revisions),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_leases),
    };
    const struct CMUnitTest on_cluster[] = {
        cmocka_unit_test(test_failover),
    };
    const struct CMUnitTest on_tls[] = {
        cmocka_unit_test(test_tls_client_certs),
    };
    const struct CMUnitTest on_auth[] = {
        cmocka_unit_test(test_user_password),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("etcd offline", offline, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("etcd single member", on_single, start_single, stop_single);
    failed += cmocka_run_group_tests_name("etcd 3-member cluster", on_cluster, start_cluster,
                                          stop_cluster);
    failed += cmocka_run_group_tests_name("etcd TLS", on_tls, start_tls, stop_tls);
    failed += cmocka_run_group_tests_name("etcd users", on_auth, start_auth, stop_auth);
    return failed ? 1 : 0;
}
