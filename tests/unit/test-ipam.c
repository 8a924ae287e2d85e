/* test-ipam.c: per-VPC IPAM as an operator meets it: the ranges a cluster
 * gets, the errors for ranges that collide (naming what they collide with),
 * release and reuse, growth in place, and long seeded random sequences of
 * create / resize / delete that must never overlap or leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kfleet/cidr.h"
#include "kfleet/error.h"
#include "kfleet/ipam.h"
#include "kfleet/strbuf.h"

static struct kf_cidr C(const char *s) {
    struct kf_cidr c;

    if (kf_cidr_parse(s, &c, NULL) != 0)
        fail_msg("bad CIDR in test: %s", s);
    return c;
}

static const char *
F(const struct kf_cidr *c)
{
    static char bufs[8][KF_CIDR_STRLEN];
    static int next;
    char *b = bufs[next++ % 8];

    return kf_cidr_format(c, b, KF_CIDR_STRLEN);
}

static struct kf_ipam_vpc *vpc_new(const char *name, const char *pool, const char *reserved,
                                   const char *what)
{
    struct kf_ipam_pool p = { C(pool), NULL };
    struct kf_ipam_reserved r = { reserved ? C(reserved) : (struct kf_cidr){ 0 }, what };
    struct kf_ipam_vpc_config cfg = {
        .name = name,
        .pools = &p,
        .n_pools = 1,
        .reserved = &r,
        .n_reserved = reserved ? 1 : 0,
    };
    struct kf_ipam_vpc *v = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_ipam_vpc_new(&cfg, &v, &err) != 0)
        fail_msg("vpc: %s", err.buf);
    kf_ipam_vpc_set_paranoid(v, true);
    kf_strbuf_release(&err);
    return v;
}

static struct kf_ipam_alloc alloc_ok(struct kf_ipam_vpc *v, const char *name, int64_t nodes)
{
    struct kf_ipam_request req = { .cluster = name, .expected_nodes = nodes };
    struct kf_ipam_alloc a;
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_ipam_allocate(v, &req, &a, &err) != 0)
        fail_msg("allocate %s: %s", name, err.buf);
    kf_strbuf_release(&err);
    return a;
}

static void test_sizes(void **state)
{
    static const struct {
        int64_t nodes;
        unsigned pods, node_prefix, pod_prefix, mask;
    } cases[] = {
        { 100, 110, 25, 17, 24 },  { 10, 110, 28, 20, 24 }, { 3, 110, 28, 22, 24 },
        { 5000, 110, 19, 11, 24 }, { 100, 32, 25, 19, 26 }, { 1, 4, 28, 28, 28 },
        { 500, 250, 23, 14, 23 },
    };
    struct kf_strbuf err = KF_STRBUF_INIT;
    unsigned np, pp, m;

    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        assert_int_equal(kf_ipam_sizes(cases[i].nodes, cases[i].pods, &np, &pp, &m, &err), 0);
        if (np != cases[i].node_prefix || pp != cases[i].pod_prefix || m != cases[i].mask)
            fail_msg("%lld nodes x %u pods: node /%u pod /%u mask /%u", (long long)cases[i].nodes,
                     cases[i].pods, np, pp, m);
    }
    assert_int_equal(kf_ipam_sizes(0, 110, &np, &pp, &m, &err), -KF_EINVALID);
    assert_string_equal(err.buf, "expectedNodes must be 1..100000, not 0");
    assert_int_equal(kf_ipam_sizes(10, 5000, &np, &pp, &m, &err), -KF_EINVALID);
    kf_strbuf_release(&err);
}

static void test_first_cluster_ranges(void **state)
{
    struct kf_ipam_vpc *v = vpc_new("vpc-a", "10.0.0.0/8", NULL, NULL);
    struct kf_ipam_alloc a = alloc_ok(v, "web-1", 100), b;
    struct kf_strbuf out = KF_STRBUF_INIT;

    /* Pods first, keeping their buddy free for growth; the node range after. */
    assert_string_equal(F(&a.pod), "10.0.0.0/17");
    assert_string_equal(F(&a.node), "10.1.0.0/25");
    assert_string_equal(F(&a.service), "172.16.0.0/20");
    assert_int_equal(a.node_mask, 24);
    assert_int_equal(a.pods_per_node, 110);
    assert_int_equal(a.max_nodes, 123); /* /25 minus 5 reserved addresses */
    kf_ipam_alloc_format(&a, &out);
    assert_string_equal(out.buf, "nodes 10.1.0.0/25, pods 10.0.0.0/17 (/24 per node, up to 123 "
                                 "nodes), services 172.16.0.0/20 (kubernetes 172.16.0.1, dns "
                                 "172.16.0.10)");
    /* Idempotent: asking again returns the same ranges. */
    b = alloc_ok(v, "web-1", 100);
    assert_memory_equal(&a, &b, sizeof(a));
    /* Services repeat across clusters of one VPC; pods never overlap. */
    b = alloc_ok(v, "web-2", 100);
    assert_true(kf_cidr_equal(&a.service, &b.service));
    assert_false(kf_cidr_overlaps(&a.pod, &b.pod));
    assert_false(kf_cidr_overlaps(&a.node, &b.node));
    assert_false(kf_cidr_overlaps(&a.node, &b.pod));
    assert_int_equal(kf_ipam_lookup(v, "web-2", &a), 0);
    assert_int_equal(kf_ipam_lookup(v, "web-9", &a), -ENOENT);
    kf_strbuf_release(&out);
    kf_ipam_vpc_free(v);
}

static int try_alloc(struct kf_ipam_vpc *v, const char *name, int64_t nodes, const char *node,
                     const char *pod, const char *svc, struct kf_strbuf *err)
{
    struct kf_cidr n, p, s;
    struct kf_ipam_request req = { .cluster = name, .expected_nodes = nodes };
    struct kf_ipam_alloc a;

    if (node) {
        n = C(node);
        req.node_cidr = &n;
    }
    if (pod) {
        p = C(pod);
        req.pod_cidr = &p;
    }
    if (svc) {
        s = C(svc);
        req.service_cidr = &s;
    }
    kf_strbuf_reset(err);
    return kf_ipam_allocate(v, &req, &a, err);
}

static void test_user_ranges_collide_named(void **state)
{
    struct kf_ipam_vpc *v = vpc_new("vpc-a", "10.0.0.0/8", "10.200.0.0/16", "peered vpc-b");
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_ipam_stats before, after;

    assert_int_equal(try_alloc(v, "web-2", 100, "10.99.0.0/24", "10.10.0.0/16", NULL, &err), 0);
    kf_ipam_vpc_stats(v, &before);
    assert_int_equal(try_alloc(v, "web-3", 100, NULL, "10.8.0.0/14", NULL, &err), -KF_EINVALID);
    assert_string_equal(err.buf, "podCIDR 10.8.0.0/14 overlaps cluster web-2's pods "
                                 "10.10.0.0/16 in vpc-a");
    kf_ipam_vpc_stats(v, &after);
    assert_memory_equal(&before, &after, sizeof(before)); /* nothing changed */
    assert_int_equal(kf_ipam_lookup(v, "web-3", &(struct kf_ipam_alloc){ 0 }), -ENOENT);

    assert_int_equal(try_alloc(v, "web-3", 100, NULL, "10.200.0.0/15", NULL, &err), -KF_EINVALID);
    assert_string_equal(err.buf, "podCIDR 10.200.0.0/15 overlaps reserved range 10.200.0.0/16 "
                                 "(peered vpc-b) in vpc-a");
    assert_int_equal(try_alloc(v, "web-3", 10, "10.20.0.0/24", "10.20.0.0/16", NULL, &err),
                     -KF_EINVALID);
    assert_string_equal(err.buf,
                        "nodeCIDR 10.20.0.0/24 overlaps the cluster's own podCIDR 10.20.0.0/16");
    assert_int_equal(try_alloc(v, "web-3", 10, "10.10.3.0/24", NULL, NULL, &err), -KF_EINVALID);
    assert_string_equal(
        err.buf, "nodeCIDR 10.10.3.0/24 overlaps cluster web-2's pods 10.10.0.0/16 in vpc-a");
    assert_int_equal(try_alloc(v, "web-3", 10, NULL, NULL, "10.30.0.0/20", &err), -KF_EINVALID);
    assert_string_equal(err.buf, "serviceCIDR 10.30.0.0/20 overlaps pool 10.0.0.0/8 of vpc-a; "
                                 "services must stay clear of node and pod ranges");
    /* A pod range outside the pools (Flannel-style) is recorded too. */
    assert_int_equal(try_alloc(v, "flat-1", 10, NULL, "100.100.0.0/16", NULL, &err), 0);
    assert_int_equal(try_alloc(v, "web-4", 10, NULL, NULL, "100.100.16.0/20", &err), -KF_EINVALID);
    assert_string_equal(err.buf, "serviceCIDR 100.100.16.0/20 overlaps cluster flat-1's pods "
                                 "100.100.0.0/16 in vpc-a");
    /* A service range given by hand keeps later pod ranges away. */
    assert_int_equal(try_alloc(v, "web-5", 10, NULL, NULL, "192.168.0.0/20", &err), 0);
    assert_int_equal(try_alloc(v, "web-6", 10, NULL, "192.168.0.0/16", NULL, &err), -KF_EINVALID);
    assert_string_equal(err.buf, "podCIDR 192.168.0.0/16 overlaps cluster web-5's services "
                                 "192.168.0.0/20 in vpc-a");
    /* Too small for the nodes it must hold. */
    assert_int_equal(try_alloc(v, "web-7", 100, NULL, "10.50.0.0/20", NULL, &err), -KF_EINVALID);
    assert_string_equal(err.buf, "podCIDR 10.50.0.0/20 holds fewer than 100 nodes of /24 blocks; "
                                 "it needs /17 or larger");
    /* Ranges of an existing cluster do not change. */
    assert_int_equal(try_alloc(v, "web-2", 100, NULL, "10.11.0.0/16", NULL, &err), -KF_EEXISTS);
    /* Auto allocation never lands on the reserved range. */
    for (int i = 0; i < 50; i++) {
        char name[16];
        struct kf_ipam_alloc a;
        struct kf_cidr reserved = C("10.200.0.0/16");
        snprintf(name, sizeof(name), "auto-%d", i);
        a = alloc_ok(v, name, 500);
        assert_false(kf_cidr_overlaps(&a.pod, &reserved));
    }
    assert_int_equal(kf_ipam_vpc_check(v, &err), 0);
    kf_strbuf_release(&err);
    kf_ipam_vpc_free(v);
}

static void test_release_and_reuse(void **state)
{
    struct kf_ipam_vpc *v = vpc_new("vpc-r", "10.0.0.0/16", NULL, NULL);
    struct kf_ipam_alloc a = alloc_ok(v, "a", 50), b;
    struct kf_ipam_stats st;

    alloc_ok(v, "keep", 20);
    assert_int_equal(kf_ipam_release(v, "a"), 0);
    assert_int_equal(kf_ipam_release(v, "a"), -ENOENT);
    b = alloc_ok(v, "b", 50);
    assert_true(kf_cidr_equal(&a.pod, &b.pod));
    assert_true(kf_cidr_equal(&a.node, &b.node));
    assert_int_equal(kf_ipam_release(v, "b"), 0);
    assert_int_equal(kf_ipam_release(v, "keep"), 0);
    kf_ipam_vpc_stats(v, &st);
    assert_int_equal(st.free_addresses, 65536);
    assert_int_equal(st.largest_free, 16);
    assert_int_equal(st.clusters, 0);
    kf_ipam_vpc_free(v);
}

static void test_exhaustion_message(void **state)
{
    struct kf_ipam_vpc *v = vpc_new("vpc-s", "10.0.0.0/20", NULL, NULL);
    struct kf_strbuf err = KF_STRBUF_INIT;

    assert_int_equal(try_alloc(v, "big", 100, NULL, NULL, NULL, &err), -ENOSPC);
    assert_string_equal(err.buf, "vpc-s has no free /17 for the pods of cluster big: largest free "
                                 "block is /20 (pools 10.0.0.0/20)");
    kf_strbuf_release(&err);
    kf_ipam_vpc_free(v);
}

static void test_resize_in_place(void **state)
{
    struct kf_ipam_vpc *v = vpc_new("vpc-g", "10.0.0.0/8", NULL, NULL);
    struct kf_ipam_alloc a = alloc_ok(v, "web-1", 100), b;
    struct kf_strbuf err = KF_STRBUF_INIT;

    alloc_ok(v, "web-2", 100);
    /* 100 -> 200 nodes: pods /17 -> /16 and nodes /25 -> /24, in place. */
    assert_int_equal(kf_ipam_resize(v, "web-1", 200, &b, &err), 0);
    assert_string_equal(F(&b.pod), "10.0.0.0/16");
    assert_int_equal(b.pod.addr, a.pod.addr);
    assert_int_equal(b.node.prefix, 24);
    assert_int_equal(b.node.addr, a.node.addr);
    assert_true(b.max_nodes >= 200);
    /* Shrinking keeps the ranges. */
    assert_int_equal(kf_ipam_resize(v, "web-1", 20, &a, &err), 0);
    assert_true(kf_cidr_equal(&a.pod, &b.pod));
    kf_ipam_vpc_free(v);

    /* A neighbour in the way: the error names it and nothing changes. */
    v = vpc_new("vpc-g", "10.0.0.0/8", NULL, NULL);
    assert_int_equal(try_alloc(v, "web-1", 100, NULL, "10.8.0.0/17", NULL, &err), 0);
    assert_int_equal(try_alloc(v, "web-2", 100, NULL, "10.8.128.0/17", NULL, &err), 0);
    assert_int_equal(kf_ipam_resize(v, "web-1", 200, &b, &err), -ENOSPC);
    assert_string_equal(err.buf, "cannot grow the pods of cluster web-1 from 10.8.0.0/17 to /16 "
                                 "in place: 10.8.128.0/17 is cluster web-2's pods");
    assert_int_equal(kf_ipam_lookup(v, "web-1", &b), 0);
    assert_string_equal(F(&b.pod), "10.8.0.0/17");
    assert_int_equal(kf_ipam_resize(v, "nope", 200, &b, &err), -ENOENT);
    kf_strbuf_release(&err);
    kf_ipam_vpc_free(v);
}

static void test_vpc_config_errors(void **state)
{
    struct kf_ipam_pool pools[2] = { { C("10.0.0.0/8"), NULL }, { C("10.1.0.0/16"), "z1" } };
    struct kf_ipam_vpc_config cfg = { .name = "vpc-x", .pools = pools, .n_pools = 2 };
    struct kf_ipam_vpc *v = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;

    assert_int_equal(kf_ipam_vpc_new(&cfg, &v, &err), -KF_EINVALID);
    assert_string_equal(err.buf, "vpc-x: pool 10.1.0.0/16 overlaps pool 10.0.0.0/8");
    pools[0].cidr = C("172.16.0.0/12");
    pools[1].cidr = C("192.168.0.0/16");
    /* Both common service spaces are taken: the default moves on. */
    assert_int_equal(kf_ipam_vpc_new(&cfg, &v, &err), 0);
    {
        struct kf_ipam_alloc a = alloc_ok(v, "c", 10);
        assert_string_equal(F(&a.service), "100.64.0.0/20");
    }
    kf_ipam_vpc_free(v);
    cfg.service_space = C("10.0.0.0/16");
    pools[0].cidr = C("10.0.0.0/8");
    cfg.n_pools = 1;
    assert_int_equal(kf_ipam_vpc_new(&cfg, &v, &err), -KF_EINVALID);
    assert_string_equal(err.buf, "vpc-x: service space 10.0.0.0/16 overlaps pool 10.0.0.0/8; "
                                 "services must stay clear of node and pod ranges");
    kf_strbuf_release(&err);
}

static void test_zone_pools(void **state)
{
    struct kf_ipam_pool pools[2] = { { C("10.0.0.0/16"), "hz-a" }, { C("10.1.0.0/16"), "hz-b" } };
    struct kf_ipam_vpc_config cfg = { .name = "vpc-z", .pools = pools, .n_pools = 2 };
    struct kf_ipam_request req = { .cluster = "b1", .expected_nodes = 10, .zone = "hz-b" };
    struct kf_ipam_vpc *v = NULL;
    struct kf_ipam_alloc a;
    struct kf_strbuf err = KF_STRBUF_INIT;

    assert_int_equal(kf_ipam_vpc_new(&cfg, &v, &err), 0);
    assert_int_equal(kf_ipam_allocate(v, &req, &a, &err), 0);
    assert_true(kf_cidr_contains(&pools[1].cidr, &a.pod));
    assert_true(kf_cidr_contains(&pools[1].cidr, &a.node));
    req.cluster = "c1";
    req.zone = "hz-c";
    assert_int_equal(kf_ipam_allocate(v, &req, &a, &err), -ENOSPC);
    assert_string_equal(err.buf, "vpc-z has no pool for zone \"hz-c\"");
    kf_ipam_vpc_free(v);
    kf_strbuf_release(&err);
}

static void test_many_vpcs(void **state)
{
    struct kf_ipam *ipam = kf_ipam_new();
    struct kf_ipam_pool p = { C("10.0.0.0/16"), NULL };
    struct kf_ipam_vpc_config cfg = { .name = "vpc-a", .pools = &p, .n_pools = 1 };
    struct kf_ipam_vpc *a = NULL, *b = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_ipam_alloc x, y;

    assert_int_equal(kf_ipam_add_vpc(ipam, &cfg, &a, &err), 0);
    assert_int_equal(kf_ipam_add_vpc(ipam, &cfg, &b, &err), -KF_EEXISTS);
    assert_string_equal(err.buf, "VPC vpc-a exists");
    cfg.name = "vpc-b";
    assert_int_equal(kf_ipam_add_vpc(ipam, &cfg, &b, &err), 0);
    assert_ptr_equal(kf_ipam_find_vpc(ipam, "vpc-b"), b);
    assert_null(kf_ipam_find_vpc(ipam, "vpc-c"));
    assert_string_equal(kf_ipam_vpc_name(a), "vpc-a");
    /* Separate VPCs: the same ranges may be used in both. */
    x = alloc_ok(a, "web", 10);
    y = alloc_ok(b, "web", 10);
    assert_true(kf_cidr_equal(&x.pod, &y.pod));
    kf_ipam_free(ipam);
    kf_strbuf_release(&err);
}

/* --- property test ------------------------------------------------------------ */

struct live {
    char name[24];
    struct kf_ipam_alloc a;
};

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: small, seeded, reproducible. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void brute_force_disjoint(const struct live *l, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        const struct kf_ipam_alloc *x = &l[i].a;
        if (kf_cidr_overlaps(&x->pod, &x->node) || kf_cidr_overlaps(&x->pod, &x->service) ||
            kf_cidr_overlaps(&x->node, &x->service))
            fail_msg("seed %llu: %s's own ranges overlap", (unsigned long long)seed, l[i].name);
        for (size_t j = i + 1; j < n; j++) {
            const struct kf_ipam_alloc *y = &l[j].a;
            if (kf_cidr_overlaps(&x->pod, &y->pod) || kf_cidr_overlaps(&x->pod, &y->node) ||
                kf_cidr_overlaps(&x->node, &y->pod) || kf_cidr_overlaps(&x->node, &y->node) ||
                kf_cidr_overlaps(&x->pod, &y->service) || kf_cidr_overlaps(&y->pod, &x->service))
                fail_msg("seed %llu: %s (pods %s nodes %s) and %s (pods %s nodes %s) overlap",
                         (unsigned long long)seed, l[i].name, F(&x->pod), F(&x->node), l[j].name,
                         F(&y->pod), F(&y->node));
        }
    }
}

static void run_sequence(uint64_t seed, int steps)
{
    struct kf_ipam_pool pools[2] = { { C("10.0.0.0/12"), NULL }, { C("10.32.0.0/14"), "a" } };
    struct kf_ipam_reserved res = { C("10.4.0.0/16"), "idc" };
    struct kf_ipam_vpc_config cfg = {
        .name = "vpc-p",
        .pools = pools,
        .n_pools = 2,
        .reserved = &res,
        .n_reserved = 1,
    };
    struct kf_ipam_vpc *v = NULL;
    struct kf_ipam_stats start, end;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct live *l = kf_xcalloc(512, sizeof(*l));
    size_t n = 0;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    int counter = 0, created = 0, refused = 0, grown = 0;

    assert_int_equal(kf_ipam_vpc_new(&cfg, &v, &err), 0);
    kf_ipam_vpc_set_paranoid(v, true);
    kf_ipam_vpc_stats(v, &start);
    for (int step = 0; step < steps; step++) {
        unsigned op = (unsigned)(rng_next(&s) % 10);

        if (op < 5 && n < 512) {
            static const unsigned pods[] = { 16, 32, 64, 110, 250 };
            struct kf_ipam_request req = { 0 };
            struct kf_cidr given;
            int64_t nodes = (int64_t)(rng_next(&s) % 100) < 80 ? 1 + rng_next(&s) % 60
                                                               : 1 + rng_next(&s) % 1500;
            int r;

            snprintf(l[n].name, sizeof(l[n].name), "c%d", counter++);
            req.cluster = l[n].name;
            req.expected_nodes = nodes;
            req.max_pods_per_node = pods[rng_next(&s) % 5];
            req.zone = rng_next(&s) % 4 == 0 ? "a" : NULL;
            if (rng_next(&s) % 8 == 0) {
                /* A user-given pod range: a random aligned block, often taken. */
                unsigned np, pp, m;
                kf_ipam_sizes(nodes, req.max_pods_per_node, &np, &pp, &m, NULL);
                given = kf_cidr4(0x0a000000u | (uint32_t)(rng_next(&s) & 0x003fffffu), pp);
                req.pod_cidr = &given;
            }
            r = kf_ipam_allocate(v, &req, &l[n].a, &err);
            if (r == 0) {
                n++;
                created++;
            } else if (r == -ENOSPC || r == -KF_EINVALID) {
                refused++;
                if (!err.len)
                    fail_msg("seed %llu: refusal without a reason", (unsigned long long)seed);
            } else {
                fail_msg("seed %llu: allocate: %d %s", (unsigned long long)seed, r, err.buf);
            }
        } else if (op < 7 && n > 0) {
            size_t i = rng_next(&s) % n;
            int64_t nodes = l[i].a.expected_nodes * 2 + (int64_t)(rng_next(&s) % 8);
            struct kf_ipam_alloc before = l[i].a;
            int r = kf_ipam_resize(v, l[i].name, KF_MIN(nodes, 4000), &l[i].a, &err);

            if (r == 0) {
                grown++;
                assert_true(kf_cidr_contains(&l[i].a.pod, &before.pod));
                assert_true(kf_cidr_contains(&l[i].a.node, &before.node));
            } else {
                if (r != -ENOSPC)
                    fail_msg("seed %llu: resize: %d %s", (unsigned long long)seed, r, err.buf);
                assert_int_equal(kf_ipam_lookup(v, l[i].name, &l[i].a), 0);
                assert_memory_equal(&l[i].a, &before, sizeof(before));
            }
        } else if (n > 0) {
            size_t i = rng_next(&s) % n;

            assert_int_equal(kf_ipam_release(v, l[i].name), 0);
            l[i] = l[--n];
        }
        if (step % 16 == 0)
            brute_force_disjoint(l, n, seed);
    }
    brute_force_disjoint(l, n, seed);
    if (kf_ipam_vpc_check(v, &err) != 0)
        fail_msg("seed %llu: %s", (unsigned long long)seed, err.buf);
    while (n > 0)
        assert_int_equal(kf_ipam_release(v, l[--n].name), 0);
    kf_ipam_vpc_stats(v, &end);
    if (end.free_addresses != start.free_addresses || end.trie_nodes != start.trie_nodes ||
        end.largest_free != start.largest_free)
        fail_msg("seed %llu: leak: free %llu -> %llu, nodes %zu -> %zu", (unsigned long long)seed,
                 (unsigned long long)start.free_addresses, (unsigned long long)end.free_addresses,
                 start.trie_nodes, end.trie_nodes);
    if (created < steps / 10 || refused == 0 || grown == 0)
        fail_msg("seed %llu: sequence too tame: %d created, %d refused, %d grown",
                 (unsigned long long)seed, created, refused, grown);
    free(l);
    kf_strbuf_release(&err);
    kf_ipam_vpc_free(v);
}

static void test_random_sequences_never_overlap_or_leak(void **state)
{
    const char *env = getenv("KF_IPAM_SEED");
    uint64_t seed;

    if (env && kf_parse_uint64(env, &seed) == 0) {
        run_sequence(seed, 4000);
        return;
    }
    for (seed = 1; seed <= 8; seed++)
        run_sequence(seed, 1500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_first_cluster_ranges),
        cmocka_unit_test(test_user_ranges_collide_named),
        cmocka_unit_test(test_release_and_reuse),
        cmocka_unit_test(test_exhaustion_message),
        cmocka_unit_test(test_resize_in_place),
        cmocka_unit_test(test_vpc_config_errors),
        cmocka_unit_test(test_zone_pools),
        cmocka_unit_test(test_many_vpcs),
        cmocka_unit_test(test_random_sequences_never_overlap_or_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
