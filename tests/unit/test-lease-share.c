/* test-lease-share.c: heartbeats shared between replicas through the store
 * (kfleet/lease-share.h), with two or three sharers on one memory store,
 * each with its own lease table, driven by a clock of the test's own:
 *   - the value format: front-coded names, round trips, what is refused;
 *   - a host beating to one replica is renewed in the others' tables at
 *     (tick time - window), and only local renewals are passed on (no echo);
 *   - a steady set costs one small tick per interval (no new base); hosts
 *     joining and leaving go into the delta, and enough change writes a new
 *     base, which the readers load;
 *   - a host silent for the window leaves the report, and the others stop
 *     renewing it;
 *   - a replica that stops cleanly (tick deleted) or stops reporting is
 *     lost: its hosts are renewed once at "now" (a full grace to move);
 *   - a replica that restarts under its id clears what it left;
 *   - 50,000 hosts: a base in several shards, every host renewed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "kfleet/error.h"
#include "kfleet/lease-share.h"
#include "kfleet/lease.h"
#include "kfleet/log.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

#define R 1000 /* interval */
#define W 4000 /* window */

struct replica {
    struct kf_lease_table *t;
    struct kf_lease_share *sh;
};

static struct kf_store *open_store(void)
{
    struct kf_store *s = NULL;

    assert_int_equal(kf_store_open("memory:", &s, NULL), 0);
    return s;
}

static void replica_open(struct replica *r, struct kf_store *s, const char *id)
{
    struct kf_lease_share_config c = { .replica_id = id, .interval_ms = R, .window_ms = W };
    struct kf_strbuf err = KF_STRBUF_INIT;

    r->t = kf_lease_table_new(0);
    if (kf_lease_share_new(s, r->t, &c, &r->sh, &err) < 0)
        fail_msg("kf_lease_share_new: %s", err.buf);
    kf_strbuf_release(&err);
}

static void replica_close(struct replica *r)
{
    kf_lease_share_free(r->sh);
    kf_lease_table_free(r->t);
    r->sh = NULL;
    r->t = NULL;
}

static struct kf_lease_share_stats stats(struct replica *r)
{
    struct kf_lease_share_stats st;

    kf_lease_share_stats(r->sh, &st);
    return st;
}

static void local_names(const char *name, int64_t local_ms, void *arg)
{
    struct kf_strbuf *sb = arg;

    (void)local_ms;
    kf_strbuf_addf(sb, "%s,", name);
}

/* --- the format ------------------------------------------------------------ */

static void test_format(void **state)
{
    char *names[] = { "a-1", "a-10", "a-2", "b" };
    struct kf_strbuf sb = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    struct kf_lease_report r;

    (void)state;
    assert_int_equal(kf_lease_names_encode(&sb, names, 4), 18);
    assert_string_equal(sb.buf, "0 a-1\n3 0\n2 2\n0 b\n");

    kf_strbuf_reset(&sb);
    kf_strbuf_addstr(&sb, "KFHB/1 set base=00ff.3 shards=2 seq=9 window-ms=20000 "
                          "interval-ms=2000 added=2 removed=1\n0 h-1\n2 2\n0 x\n");
    assert_int_equal(kf_lease_report_parse(sb.buf, sb.len, &r, &err), 0);
    assert_int_equal(r.kind, KF_LEASE_REPORT_SET);
    assert_string_equal(r.base, "00ff.3");
    assert_int_equal(r.shards, 2);
    assert_int_equal(r.seq, 9);
    assert_int_equal(r.window_ms, 20000);
    assert_int_equal(r.interval_ms, 2000);
    assert_int_equal(r.n_names, 2);
    assert_string_equal(r.names[1], "h-2");
    assert_int_equal(r.n_removed, 1);
    assert_string_equal(r.removed[0], "x");
    kf_lease_report_release(&r);

    kf_strbuf_reset(&sb);
    kf_strbuf_addstr(&sb, "KFHB/1 base base=00ff.3 shard=1 shards=2 names=0\n");
    assert_int_equal(kf_lease_report_parse(sb.buf, sb.len, &r, &err), 0);
    assert_int_equal(r.kind, KF_LEASE_REPORT_BASE);
    assert_int_equal(r.shard, 1);
    assert_int_equal(r.n_names, 0);
    kf_lease_report_release(&r);

    kf_strbuf_reset(&sb);
    kf_strbuf_addstr(&sb, "KFHB/1 recent base=00ff.3 seq=10 window-ms=20000 interval-ms=2000 "
                          "span-ms=2100 names=1\n0 h-9\n");
    assert_int_equal(kf_lease_report_parse(sb.buf, sb.len, &r, &err), 0);
    assert_int_equal(r.kind, KF_LEASE_REPORT_RECENT);
    assert_int_equal(r.span_ms, 2100);
    assert_int_equal(r.n_names, 1);
    assert_string_equal(r.names[0], "h-9");
    kf_lease_report_release(&r);

    kf_strbuf_release(&sb);
    kf_strbuf_release(&err);
}

static void test_format_refusals(void **state)
{
    static const char *const bad[] = {
        "",
        "KFHB/2 tick base=a.1 shards=1 seq=1 window-ms=2 interval-ms=1 added=0 removed=0\n",
        "KFHB/1 tick base=a.1 shards=1 seq=1 window-ms=2 interval-ms=1 added=0 removed=0\n",
        /* a field missing, unknown, repeated, not a number */
        "KFHB/1 set base=a.1 shards=1 seq=1 window-ms=2 added=0 removed=0\n",
        "KFHB/1 set base=a.1 shards=1 seq=1 window-ms=2 interval-ms=1 added=0 removed=0 x=1\n",
        "KFHB/1 set base=a.1 base=a.1 shards=1 seq=1 window-ms=2 interval-ms=1 added=0 "
        "removed=0\n",
        "KFHB/1 set base=a.1 shards=1 seq=x window-ms=2 interval-ms=1 added=0 removed=0\n",
        /* a recent tick without its span */
        "KFHB/1 recent base=a.1 seq=1 window-ms=2 interval-ms=1 names=0\n",
        /* shard out of range, no window */
        "KFHB/1 base base=a.1 shard=1 shards=1 names=0\n",
        "KFHB/1 set base=a.1 shards=1 seq=1 window-ms=0 interval-ms=1 added=0 removed=0\n",
        /* more names announced than there are; bytes after the last one */
        "KFHB/1 base base=a.1 shard=0 shards=1 names=2\n0 abc\n",
        "KFHB/1 base base=a.1 shard=0 shards=1 names=1\n0 abc\nextra",
        /* no newline after the header or a name */
        "KFHB/1 base base=a.1 shard=0 shards=1 names=0",
        "KFHB/1 base base=a.1 shard=0 shards=1 names=1\n0 abc",
        /* out of order, repeated, sharing more than the previous name has */
        "KFHB/1 base base=a.1 shard=0 shards=1 names=2\n0 b\n0 a\n",
        "KFHB/1 base base=a.1 shard=0 shards=1 names=2\n0 a\n1 \n",
        "KFHB/1 base base=a.1 shard=0 shards=1 names=2\n0 a\n5 b\n",
        /* not a host name: a control character, a space, an empty name */
        "KFHB/1 base base=a.1 shard=0 shards=1 names=1\n0 a\tb\n",
        "KFHB/1 base base=a.1 shard=0 shards=1 names=1\n0 a b\n",
        "KFHB/1 base base=a.1 shard=0 shards=1 names=1\n0 \n",
        /* a huge count in a short value */
        "KFHB/1 base base=a.1 shard=0 shards=1 names=99999999999\n0 a\n",
    };
    char longname[400];
    struct kf_strbuf sb = KF_STRBUF_INIT;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct kf_lease_report r;
        struct kf_strbuf err = KF_STRBUF_INIT;

        if (kf_lease_report_parse(bad[i], strlen(bad[i]), &r, &err) != -EBADMSG)
            fail_msg("accepted bad report %zu: %s", i, bad[i]);
        assert_true(err.len > 0);
        kf_strbuf_release(&err);
    }
    /* a name longer than a host name can be */
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    kf_strbuf_addf(&sb, "KFHB/1 base base=a.1 shard=0 shards=1 names=1\n0 %s\n", longname);
    {
        struct kf_lease_report r;

        assert_int_equal(kf_lease_report_parse(sb.buf, sb.len, &r, NULL), -EBADMSG);
    }
    kf_strbuf_release(&sb);
}

/* --- two replicas ---------------------------------------------------------- */

static void test_heartbeats_reach_the_other_replica(void **state)
{
    struct kf_store *s = open_store();
    struct replica a, b;
    struct kf_strbuf local = KF_STRBUF_INIT;
    int64_t now = 100000;

    (void)state;
    replica_open(&a, s, "kfleet-a:7480");
    replica_open(&b, s, "kfleet-b:7480");
    kf_lease_renew(b.t, "h1", now);
    kf_lease_renew(b.t, "h2", now);
    kf_lease_renew(a.t, "h3", now);
    assert_int_equal(kf_lease_share_step(b.sh, now), 0); /* b reports h1, h2 */
    assert_int_equal(kf_lease_share_step(a.sh, now + 10), 0);
    /* a renewed them at its time of reading minus b's window */
    assert_int_equal(kf_lease_last(a.t, "h1"), now + 10 - W);
    assert_int_equal(kf_lease_last(a.t, "h2"), now + 10 - W);
    assert_int_equal(stats(&a).imports, 1);
    assert_int_equal(stats(&a).peers, 1);
    assert_int_equal(stats(&b).reported_hosts, 2);
    /* b learns h3 from a's report */
    assert_int_equal(kf_lease_share_step(b.sh, now + 20), 0);
    assert_int_equal(kf_lease_last(b.t, "h3"), now + 20 - W);

    /* no echo: a's own (local) renewals are h3 only */
    kf_lease_local_since(a.t, 0, local_names, &local);
    assert_string_equal(local.buf, "h3,");
    assert_int_equal(kf_lease_share_step(a.sh, now + R), 0);
    assert_int_equal(stats(&a).reported_hosts, 1);

    /* the hosts keep beating to b: a keeps renewing them, tick after tick,
     * and a steady set is one base and small ticks */
    for (int i = 1; i <= 5; i++) {
        int64_t t = now + i * R;

        kf_lease_renew(b.t, "h1", t);
        kf_lease_renew(b.t, "h2", t);
        assert_int_equal(kf_lease_share_step(b.sh, t), 0);
        assert_int_equal(kf_lease_share_step(a.sh, t + 5), 0);
        assert_int_equal(kf_lease_last(a.t, "h1"), t + 5 - W);
    }
    assert_int_equal(stats(&b).bases, 1);
    assert_int_equal(stats(&b).reports, 6);
    assert_true(stats(&b).bytes < 6 * 200 + 200);

    kf_strbuf_release(&local);
    replica_close(&a);
    replica_close(&b);
    kf_store_close(s);
}

static void test_joins_leaves_and_new_bases(void **state)
{
    struct kf_store *s = open_store();
    struct replica a, b;
    char name[32];
    int64_t t = 100000;

    (void)state;
    replica_open(&a, s, "a");
    replica_open(&b, s, "b");
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "host-%04d", i);
        kf_lease_renew(b.t, name, t);
    }
    assert_int_equal(kf_lease_share_step(b.sh, t), 0);
    assert_int_equal(kf_lease_share_step(a.sh, t), 0);
    assert_int_equal(kf_lease_count(a.t), 100);
    assert_int_equal(stats(&b).bases, 1);

    /* one joins: it is in the next tick's delta, the base stays */
    t += R;
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "host-%04d", i);
        kf_lease_renew(b.t, name, t);
    }
    kf_lease_renew(b.t, "host-new", t);
    assert_int_equal(kf_lease_share_step(b.sh, t), 0);
    assert_int_equal(kf_lease_share_step(a.sh, t), 0);
    assert_int_equal(stats(&b).bases, 1);
    assert_int_equal(kf_lease_last(a.t, "host-new"), t - W);
    assert_int_equal(kf_lease_last(a.t, "host-0000"), t - W);

    /* host-0000 falls silent: after the window it leaves b's report, and
     * a's last renewal of it stays where it was */
    for (int k = 1; k <= 5; k++) {
        t += R;
        for (int i = 1; i < 100; i++) {
            snprintf(name, sizeof(name), "host-%04d", i);
            kf_lease_renew(b.t, name, t);
        }
        kf_lease_renew(b.t, "host-new", t);
        assert_int_equal(kf_lease_share_step(b.sh, t), 0);
        assert_int_equal(kf_lease_share_step(a.sh, t), 0);
    }
    /* last local renewal at t0 + R; reported until the window passed */
    assert_int_equal(kf_lease_last(a.t, "host-0000"), 100000 + R + W - W);
    assert_int_equal(kf_lease_last(a.t, "host-0001"), t - W);
    assert_int_equal(stats(&b).reported_hosts, 100);

    /* heavy churn: half the hosts move away, half as many new ones come;
     * the deltas soon outweigh the base and a new base is written */
    for (int k = 0; k < 6; k++) {
        t += R;
        for (int i = 50; i < 100; i++) {
            snprintf(name, sizeof(name), "host-%04d", i);
            kf_lease_renew(b.t, name, t);
        }
        for (int i = 0; i < 50; i++) {
            snprintf(name, sizeof(name), "other-%04d", i);
            kf_lease_renew(b.t, name, t);
        }
        assert_int_equal(kf_lease_share_step(b.sh, t), 0);
        assert_int_equal(kf_lease_share_step(a.sh, t), 0);
    }
    assert_true(stats(&b).bases >= 2);
    assert_int_equal(stats(&a).import_failures, 0);
    assert_int_equal(kf_lease_last(a.t, "other-0049"), t - W);
    assert_int_equal(kf_lease_last(a.t, "host-0099"), t - W);
    /* gone from the report for good */
    assert_true(kf_lease_last(a.t, "host-0010") < t - W);

    replica_close(&a);
    replica_close(&b);
    kf_store_close(s);
}

/* Agents spread over both replicas request by request: each replica's
 * set churns as fast as the hosts beat, so the replicas write recent ticks
 * (the hosts that beat since the previous tick) instead of rewriting their
 * bases, and the other renews those hosts at (now - span). */
static void test_spread_agents_write_recent_ticks(void **state)
{
    struct kf_store *s = open_store();
    struct replica r[2];
    char name[32], *batch[2][1000];
    size_t nb[2];
    int64_t t = 100000;
    uint64_t bytes0 = 0, recent0 = 0, names_only = 0;

    (void)state;
    replica_open(&r[0], s, "a");
    replica_open(&r[1], s, "b");
    for (int k = 0; k < 60; k++, t += R) {
        /* 2,000 hosts beat every 2 intervals, to a replica picked at random */
        nb[0] = nb[1] = 0;
        for (int i = k % 2; i < 2000; i += 2) {
            uint32_t h = ((uint32_t)i * 0x9E3779B1u) ^ ((uint32_t)k * 0x85EBCA6Bu);
            int to;

            h ^= h >> 15;
            h *= 0x2C1B3C6Du;
            h ^= h >> 12;
            to = (int)(h & 1);

            snprintf(name, sizeof(name), "host-%05d", i);
            kf_lease_renew(r[to].t, name, t);
            batch[to][nb[to]++] = kf_xstrdup(name);
        }
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < 2; i++)
                assert_int_equal(kf_lease_share_step(r[i].sh, t), 0);
        for (int i = 0; i < 2; i++) {
            struct kf_strbuf sb = KF_STRBUF_INIT;

            if (k >= 20) /* what writing the names renewed since the last tick costs */
                names_only += kf_lease_names_encode(&sb, batch[i], nb[i]) + 100;
            kf_strbuf_release(&sb);
            for (size_t j = 0; j < nb[i]; j++)
                free(batch[i][j]);
        }
        if (k == 19) {
            bytes0 = stats(&r[0]).bytes + stats(&r[1]).bytes;
            recent0 = stats(&r[0]).recent_reports + stats(&r[1]).recent_reports;
        }
    }
    /* mostly recent ticks, and no more than about what writing the names
     * renewed since the last tick would cost (a base now and then, when
     * the churn happens to look low, may not pay off) */
    assert_true(stats(&r[0]).recent_reports + stats(&r[1]).recent_reports - recent0 > 40);
    assert_true(stats(&r[0]).bytes + stats(&r[1]).bytes - bytes0 < names_only * 3 / 2);
    /* every host is known to both, none older than two intervals */
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "host-%05d", i);
        for (int k = 0; k < 2; k++)
            assert_true(t - R - kf_lease_last(r[k].t, name) <= 2 * R);
    }
    assert_int_equal(stats(&r[0]).import_failures + stats(&r[1]).import_failures, 0);
    print_message(
        "spread agents, rounds 20-59: %lu bytes written, %lu for the names alone, "
        "%lu recent ticks of 80, %lu bases in all\n",
        (unsigned long)(stats(&r[0]).bytes + stats(&r[1]).bytes - bytes0),
        (unsigned long)names_only,
        (unsigned long)(stats(&r[0]).recent_reports + stats(&r[1]).recent_reports - recent0),
        (unsigned long)(stats(&r[0]).bases + stats(&r[1]).bases));
    replica_close(&r[0]);
    replica_close(&r[1]);
    kf_store_close(s);
}

static void test_lost_replicas(void **state)
{
    struct kf_store *s = open_store();
    struct replica a, b, c;
    struct kf_range q = { .prefix = KF_LEASE_SHARE_PREFIX };
    struct kf_kv_list l = { 0 };
    int64_t t = 100000;

    (void)state;
    replica_open(&a, s, "a");
    replica_open(&b, s, "b");
    replica_open(&c, s, "c");
    kf_lease_renew(b.t, "on-b", t);
    kf_lease_renew(c.t, "on-c", t);
    kf_lease_share_step(b.sh, t);
    kf_lease_share_step(c.sh, t);
    kf_lease_share_step(a.sh, t);
    assert_int_equal(stats(&a).peers, 2);
    assert_int_equal(kf_lease_last(a.t, "on-b"), t - W);

    /* b stops cleanly: its tick is deleted, a gives on-b a grace from now */
    replica_close(&b);
    t += 100;
    kf_lease_share_step(a.sh, t);
    assert_int_equal(kf_lease_last(a.t, "on-b"), t);
    assert_int_equal(stats(&a).peers_lost, 1);
    assert_int_equal(stats(&a).peers, 1);

    /* c stops reporting (killed): lost after 3 intervals + 1 s */
    t += 3 * R + 900;
    kf_lease_share_step(a.sh, t);
    assert_int_equal(stats(&a).peers, 1);
    t += 200;
    kf_lease_share_step(a.sh, t);
    assert_int_equal(stats(&a).peers, 0);
    assert_int_equal(kf_lease_last(a.t, "on-c"), t);

    /* c comes back under its id after a crash that left a base shard
     * behind: what it left is cleared, and it reports anew */
    replica_close(&c);
    assert_int_equal(kf_store_put(s, KF_LEASE_SHARE_PREFIX "c/base/0007", "x", 1, KF_REV_ANY, NULL),
                     0);
    replica_open(&c, s, "c");
    {
        struct kf_kv kv = { 0 };

        assert_int_equal(kf_store_get(s, KF_LEASE_SHARE_PREFIX "c/base/0007", &kv), -KF_ENOTFOUND);
    }
    kf_lease_renew(c.t, "on-c", t);
    kf_lease_share_step(c.sh, t);
    kf_lease_share_step(a.sh, t + 1);
    assert_int_equal(stats(&a).peers, 1);
    assert_int_equal(kf_lease_last(a.t, "on-c"), t); /* never back in time */
    assert_int_equal(stats(&a).import_failures, 0);

    replica_close(&c);
    replica_close(&a);
    /* every replica stopped: nothing left in the store */
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_int_equal(l.n, 0);
    kf_kv_list_release(&l);
    kf_store_close(s);
}

static void test_many_hosts_in_shards(void **state)
{
    struct kf_store *s = open_store();
    struct replica a, b;
    struct kf_range q = { .prefix = KF_LEASE_SHARE_PREFIX "b/base/" };
    struct kf_kv_list l = { 0 };
    char name[64];
    int64_t t = 100000;
    enum { N = 50000 };

    (void)state;
    replica_open(&a, s, "a");
    replica_open(&b, s, "b");
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "cn-hangzhou-u%02d-rack%03d-host-%06d", i % 7, i % 300, i);
        kf_lease_renew(b.t, name, t);
    }
    assert_int_equal(kf_lease_share_step(b.sh, t), 0);
    assert_int_equal(kf_lease_share_step(a.sh, t), 0);
    assert_int_equal(kf_lease_count(a.t), N);
    assert_int_equal(stats(&a).renewals, N);
    assert_int_equal(kf_lease_last(a.t, "cn-hangzhou-u03-rack010-host-000010"), t - W);
    assert_int_equal(kf_store_range(s, &q, &l), 0);
    assert_true(l.n >= 2);
    for (size_t i = 0; i < l.n; i++)
        assert_true(l.items[i].value_len <= KF_LEASE_SHARE_SHARD_BYTES + 200);
    kf_kv_list_release(&l);
    replica_close(&a);
    replica_close(&b);
    kf_store_close(s);
}

/* A deleted Host's lease goes on every replica, not only on the leader
 * (whose controller forgets it): the heartbeat endpoint then looks the
 * name up again and refuses it. */
static void test_deleted_hosts_are_forgotten(void **state)
{
    struct kf_store *s = open_store();
    struct kf_lease_table *t = kf_lease_table_new(0);
    struct kf_lease_share *sh = NULL;
    struct kf_lease_share_config c = {
        .replica_id = "a", .interval_ms = R, .window_ms = W, .forget_prefix = "/hosts/"
    };

    (void)state;
    assert_int_equal(kf_lease_share_new(s, t, &c, &sh, NULL), 0);
    assert_int_equal(kf_store_put(s, "/hosts/h1", "{}", 2, 0, NULL), 0);
    assert_int_equal(kf_store_put(s, "/hosts/h2", "{}", 2, 0, NULL), 0);
    kf_lease_renew(t, "h1", 1000);
    kf_lease_renew(t, "h2", 1000);
    assert_int_equal(kf_store_delete(s, "/hosts/h1", KF_REV_ANY, NULL), 0);
    kf_lease_share_step(sh, 1000);
    assert_int_equal(kf_lease_last(t, "h1"), 0);
    assert_int_equal(kf_lease_last(t, "h2"), 1000);
    kf_lease_share_free(sh);
    kf_lease_table_free(t);
    kf_store_close(s);
}

static void test_bad_config(void **state)
{
    struct kf_store *s = open_store();
    struct kf_lease_table *t = kf_lease_table_new(0);
    struct kf_lease_share *sh = NULL;
    struct kf_lease_share_config c = { .replica_id = "a", .interval_ms = 1000, .window_ms = 500 };

    (void)state;
    assert_int_equal(kf_lease_share_new(s, t, &c, &sh, NULL), -EINVAL);
    c.window_ms = 2000;
    c.replica_id = "";
    assert_int_equal(kf_lease_share_new(s, t, &c, &sh, NULL), -EINVAL);
    c.replica_id = "a\nb";
    assert_int_equal(kf_lease_share_new(s, t, &c, &sh, NULL), -EINVAL);
    assert_null(sh);
    kf_lease_table_free(t);
    kf_store_close(s);
}

int main(void)
{
    if (getenv("KF_TEST_DEBUG"))
        kf_log_set_spec("heartbeats=debug", NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_refusals),
        cmocka_unit_test(test_heartbeats_reach_the_other_replica),
        cmocka_unit_test(test_joins_leaves_and_new_bases),
        cmocka_unit_test(test_spread_agents_write_recent_ticks),
        cmocka_unit_test(test_lost_replicas),
        cmocka_unit_test(test_many_hosts_in_shards),
        cmocka_unit_test(test_deleted_hosts_are_forgotten),
        cmocka_unit_test(test_bad_config),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
