/* test-placement.c: GuestCluster -> Unit and members -> hosts, as an
 * operator reads the result: which unit was chosen, and the words of the
 * reason when none could be. One test per filter, per score, per tie-break,
 * zone spread, water level and host arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kfleet/error.h"
#include "kfleet/grade.h"
#include "kfleet/placement.h"
#include "kfleet/strbuf.h"

static struct kf_grade_table T;
static const char *const Z3[] = { "z-a", "z-b", "z-c", "z-d" }; /* up to 4 zones */

#define MAX_UNITS 8
#define MAX_HOSTS 64

struct fleet {
    struct kf_place_unit units[MAX_UNITS];
    struct kf_place_host hosts[MAX_UNITS][MAX_HOSTS];
    char names[MAX_UNITS][MAX_HOSTS][32];
    size_t n;
};

/* A unit of n_zones zones with per_zone hosts of cpu cores / mem GiB each,
 * every host already at used (fraction) for cpu and memory. */
static struct kf_place_unit *add_unit(struct fleet *f, const char *name, const char *region,
                                      unsigned n_zones, unsigned per_zone, int cores, int gib,
                                      double used)
{
    struct kf_place_unit *u = &f->units[f->n];
    size_t k = 0;

    memset(u, 0, sizeof(*u));
    u->name = name;
    u->region = region;
    u->zones = Z3;
    u->n_zones = n_zones;
    u->hosts = f->hosts[f->n];
    for (unsigned z = 0; z < n_zones; z++) {
        for (unsigned h = 0; h < per_zone; h++, k++) {
            struct kf_place_host *ho = &u->hosts[k];
            snprintf(f->names[f->n][k], 32, "%s-%s-h%u", name, Z3[z] + 2, h);
            memset(ho, 0, sizeof(*ho));
            ho->name = f->names[f->n][k];
            ho->zone = z;
            ho->capacity.cpu_milli = cores * 1000LL;
            ho->capacity.mem_bytes = gib * KF_GIB;
            ho->allocated.cpu_milli = (int64_t)(cores * 1000LL * used);
            ho->allocated.mem_bytes = (int64_t)((double)gib * KF_GIB * used);
            ho->ready = true;
        }
    }
    u->n_hosts = k;
    kf_place_unit_refresh(u);
    f->n++;
    return u;
}

static struct kf_place_cluster cluster(const char *name, const char *region, int grade)
{
    struct kf_place_cluster c = { 0 };

    c.name = name;
    c.region = region;
    c.grade = grade;
    c.shape = &T.grades[grade];
    c.expected_nodes = T.grades[grade].max_nodes;
    return c;
}

static const char *place(struct fleet *f, const struct kf_place_cluster *c, char *msg, size_t size)
{
    struct kf_placer p;
    struct kf_place_result *r = kf_xmalloc(sizeof(*r));
    const char *chosen;

    kf_placer_init(&p, NULL);
    kf_place(&p, f->units, f->n, c, r);
    chosen = r->unit >= 0 ? f->units[r->unit].name : NULL;
    if (msg)
        snprintf(msg, size, "%s", r->message);
    kf_placer_release(&p);
    free(r);
    return chosen;
}

static int setup(void **state)
{
    kf_grade_table_default(&T);
    *state = kf_xcalloc(1, sizeof(struct fleet));
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static void test_region(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("web-1", "cn-hangzhou", KF_G1);
    char msg[KF_PLACE_MESSAGE_MAX];

    add_unit(f, "bj-u1", "cn-beijing", 3, 2, 64, 256, 0.0);
    add_unit(f, "hz-u1", "cn-hangzhou", 3, 2, 64, 256, 0.3);
    assert_string_equal(place(f, &c, msg, sizeof(msg)), "hz-u1");
    assert_true(strncmp(msg, "placed in hz-u1: score ", 23) == 0);
    c.region = "cn-shanghai";
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg, "no unit in region cn-shanghai");
}

static void test_compliance(void **state)
{
    struct fleet *f = *state;
    static const char *const gdpr[] = { "gdpr" };
    struct kf_place_cluster c = cluster("eu-1", "eu-west", KF_G1);
    struct kf_place_unit *tagged;
    char msg[KF_PLACE_MESSAGE_MAX];

    c.compliance = gdpr;
    c.n_compliance = 1;
    add_unit(f, "eu-u1", "eu-west", 3, 2, 64, 256, 0.0);
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg,
                        "no unit in eu-west can take grade G1: best is eu-u1: neither the unit "
                        "nor region eu-west carries compliance tag \"gdpr\"");
    /* A tag on the region is enough, a tag on the unit too. */
    tagged = add_unit(f, "eu-u2", "eu-west", 3, 2, 64, 256, 0.5);
    tagged->region_compliance = gdpr;
    tagged->n_region_compliance = 1;
    assert_string_equal(place(f, &c, NULL, 0), "eu-u2");
    tagged->region_compliance = NULL;
    tagged->n_region_compliance = 0;
    tagged->compliance = gdpr;
    tagged->n_compliance = 1;
    assert_string_equal(place(f, &c, NULL, 0), "eu-u2");
}

static void test_features_and_exclusive(void **state)
{
    struct fleet *f = *state;
    static const char *const gpu[] = { "gpu" }, *const dedicated[] = { "dedicated" };
    struct kf_place_cluster ai = cluster("ai-1", "r", KF_G1), std = cluster("std-1", "r", KF_G1);
    struct kf_place_unit *g, *d;
    char msg[KF_PLACE_MESSAGE_MAX];

    add_unit(f, "plain", "r", 3, 2, 64, 256, 0.1);
    ai.features = gpu;
    ai.n_features = 1;
    assert_null(place(f, &ai, msg, sizeof(msg)));
    assert_string_equal(msg, "no unit in r can take grade G1: best is plain: unit lacks feature "
                             "\"gpu\" (the cluster's profile needs it)");
    g = add_unit(f, "gpu-u", "r", 3, 2, 64, 256, 0.4);
    g->features = gpu;
    g->n_features = 1;
    assert_string_equal(place(f, &ai, NULL, 0), "gpu-u");
    /* A dedicated unit is emptier but keeps to clusters that ask for it. */
    d = add_unit(f, "ded", "r", 3, 2, 64, 256, 0.0);
    d->features = dedicated;
    d->n_features = 1;
    assert_string_equal(place(f, &std, NULL, 0), "plain");
    std.features = dedicated;
    std.n_features = 1;
    assert_string_equal(place(f, &std, NULL, 0), "ded");
}

static void test_cordon_and_quota(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("c", "r", KF_G0);
    struct kf_place_unit *a = add_unit(f, "a", "r", 3, 2, 64, 256, 0.0);
    struct kf_place_unit *b = add_unit(f, "b", "r", 3, 2, 64, 256, 0.2);
    char msg[KF_PLACE_MESSAGE_MAX];

    assert_string_equal(place(f, &c, NULL, 0), "a");
    a->cordoned = true;
    assert_string_equal(place(f, &c, NULL, 0), "b");
    b->max_clusters = 40;
    b->clusters = 40;
    assert_null(place(f, &c, msg, sizeof(msg)));
    /* b got further down the filter chain than the cordoned a: b is named. */
    assert_string_equal(msg,
                        "no unit in r can take grade G0: best is b: unit is at its quota of 40 "
                        "clusters; 2 units in r: 1 cordoned, 1 at quota");
    b->max_nodes = 100;
    b->clusters = 3;
    b->nodes = 95;
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_non_null(strstr(msg, "1 at quota"));
    c.expected_nodes = 5;
    assert_string_equal(place(f, &c, NULL, 0), "b");
}

static void test_grade_ratio(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster big = cluster("big", "r", KF_G4);
    struct kf_place_unit *u = add_unit(f, "u", "r", 3, 4, 96, 384, 0.0);
    char msg[KF_PLACE_MESSAGE_MAX];

    u->ratios[0] = (struct kf_place_ratio){ KF_G4, true, 0.10 };
    u->n_ratios = 1;
    u->clusters = 9;
    u->by_grade[KF_G0] = 9;
    /* 1 of 10 is 10 %: allowed. */
    assert_string_equal(place(f, &big, NULL, 0), "u");
    u->clusters = 10;
    u->by_grade[KF_G5] = 1;
    u->by_grade[KF_G0] = 9;
    assert_null(place(f, &big, msg, sizeof(msg)));
    assert_string_equal(msg,
                        "no unit in r can take grade G4: best is u: unit would hold 2 clusters "
                        "of G4 or above out of 11, over its limit of 10 %");
    /* A small cluster is not held back by a big-cluster ratio. */
    big = cluster("small", "r", KF_G0);
    assert_string_equal(place(f, &big, NULL, 0), "u");
}

static void test_zones_for_ha(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("c", "r", KF_G1);
    struct kf_place_unit *u = add_unit(f, "two", "r", 2, 3, 64, 256, 0.0);
    char msg[KF_PLACE_MESSAGE_MAX];

    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg,
                        "no unit in r can take grade G1: best is two: unit has 2 usable zones, "
                        "grade G1 needs 3");
    u = add_unit(f, "three", "r", 3, 1, 64, 256, 0.0);
    /* A zone whose only host is unschedulable does not count. */
    u->hosts[2].unschedulable = true;
    assert_null(place(f, &c, NULL, 0));
    u->hosts[2].unschedulable = false;
    assert_string_equal(place(f, &c, NULL, 0), "three");
}

/* Hosts that report the Kubernetes releases they hold take only clusters
 * on one of them; hosts that report nothing take any. */
static void test_hosts_hold_the_release(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("c", "r", KF_G1);
    struct kf_place_unit *u = add_unit(f, "u", "r", 3, 1, 64, 256, 0.0);
    char msg[KF_PLACE_MESSAGE_MAX];

    c.k8s_minor = 37;
    for (size_t i = 0; i < u->n_hosts; i++) {
        u->hosts[i].k8s_reported = true;
        u->hosts[i].k8s_minors = (uint64_t)1 << 37;
    }
    u->hosts[2].k8s_minors = (uint64_t)1 << 36; /* zone c holds only 1.36 */
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_non_null(strstr(msg, "unit has 2 usable zones, grade G1 needs 3 (counting only hosts "
                                "that hold Kubernetes 1.37)"));
    c.k8s_minor = 36;
    assert_null(place(f, &c, NULL, 0));
    u->hosts[2].k8s_minors |= (uint64_t)1 << 37;
    c.k8s_minor = 37;
    assert_string_equal(place(f, &c, NULL, 0), "u");
    u->hosts[2].k8s_reported = false; /* says nothing: any */
    u->hosts[2].k8s_minors = 0;
    assert_string_equal(place(f, &c, NULL, 0), "u");
}

static void test_water_level_message(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("db-1", "cn-hangzhou", KF_G3);
    char msg[KF_PLACE_MESSAGE_MAX];

    /* 6 hosts x 20 cores: G3 asks 16.1 cores = 13.4 %. */
    add_unit(f, "hz-u1", "cn-hangzhou", 3, 2, 20, 80, 0.65);
    add_unit(f, "hz-u2", "cn-hangzhou", 3, 2, 20, 80, 0.58);
    for (int i = 0; i < 6; i++)
        f->hosts[1][i].allocated.mem_bytes = 32 * KF_GIB;
    kf_place_unit_refresh(&f->units[1]);
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg, "no unit in cn-hangzhou has headroom for grade G3: best is hz-u2 at "
                             "58 % cpu, would reach 71 % (mark 60 %); 2 units in cn-hangzhou: 2 "
                             "without headroom");
    /* A unit's own mark overrides the policy's. */
    f->units[1].water_level = 0.75;
    assert_string_equal(place(f, &c, NULL, 0), "hz-u2");
}

static void test_memory_water_level(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("m", "r", KF_G2);
    char msg[KF_PLACE_MESSAGE_MAX];

    /* Plenty of cpu, little memory: memory decides. */
    add_unit(f, "u", "r", 3, 2, 64, 32, 0.0);
    f->hosts[0][0].allocated.mem_bytes = 28 * KF_GIB;
    f->hosts[0][1].allocated.mem_bytes = 28 * KF_GIB;
    f->hosts[0][2].allocated.mem_bytes = 28 * KF_GIB;
    kf_place_unit_refresh(&f->units[0]);
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg, "no unit in r has headroom for grade G2: best is u at 44 % memory, "
                             "would reach 60.4 % (mark 60 %)");
}

static void test_scores_and_ties(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("c", "r", KF_G1);
    struct kf_place_unit *a, *b;

    /* Spread: the emptier unit wins. */
    a = add_unit(f, "a", "r", 3, 2, 64, 256, 0.30);
    b = add_unit(f, "b", "r", 3, 2, 64, 256, 0.10);
    assert_string_equal(place(f, &c, NULL, 0), "b");
    /* Equal load: fewer clusters wins, then the name. */
    add_unit(f, "c", "r", 3, 2, 64, 256, 0.10);
    b->clusters = 5;
    f->units[2].clusters = 4;
    assert_string_equal(place(f, &c, NULL, 0), "c");
    f->units[2].clusters = 5;
    assert_string_equal(place(f, &c, NULL, 0), "b");
    /* Cost: a much cheaper unit beats a slightly emptier one. */
    a->cost_per_core = 0.5;
    for (int i = 0; i < 6; i++)
        f->hosts[0][i].allocated.cpu_milli = f->hosts[0][i].allocated.mem_bytes = 0;
    for (int i = 0; i < 6; i++) {
        f->hosts[0][i].allocated.cpu_milli = 64 * 120; /* 12 % */
        f->hosts[0][i].allocated.mem_bytes = 256 * KF_GIB / 100 * 12;
    }
    kf_place_unit_refresh(a);
    assert_string_equal(place(f, &c, NULL, 0), "a");
    /* Performance likewise. */
    a->cost_per_core = 0;
    b->performance = 2.0;
    assert_string_equal(place(f, &c, NULL, 0), "b");
}

static void test_density_policy(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("c", "r", KF_G0);
    struct kf_place_policy pol;
    struct kf_placer p;
    struct kf_place_result *r = kf_xmalloc(sizeof(*r));

    add_unit(f, "empty", "r", 3, 2, 64, 256, 0.05);
    add_unit(f, "busy", "r", 3, 2, 64, 256, 0.40);
    kf_place_policy_default(&pol);
    memset(pol.weights, 0, sizeof(pol.weights));
    pol.weights[KF_SCORE_DENSITY] = 1; /* bin packing */
    kf_placer_init(&p, &pol);
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r), 0);
    assert_string_equal(f->units[r->unit].name, "busy");
    kf_placer_release(&p);
    free(r);
}

static void test_member_spread(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("big", "r", KF_G5);
    struct kf_placer p;
    struct kf_place_result *r = kf_xmalloc(sizeof(*r));
    unsigned etcd_zone[3] = { 0 }, api_zone[3] = { 0 };
    struct kf_strbuf out = KF_STRBUF_INIT;

    add_unit(f, "u", "r", 3, 4, 96, 384, 0.0);
    f->hosts[0][0].unschedulable = true;
    f->hosts[0][1].ready = false;
    kf_place_unit_refresh(&f->units[0]);
    kf_placer_init(&p, NULL);
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r), 0);
    assert_int_equal(r->n_bindings, kf_grade_members(c.shape));
    for (unsigned i = 0; i < r->n_bindings; i++) {
        const struct kf_place_binding *b = &r->bindings[i];
        const char *comp = c.shape->components[b->component].name;

        assert_int_not_equal(b->host, 0); /* unschedulable */
        assert_int_not_equal(b->host, 1); /* not ready */
        assert_int_equal(f->hosts[0][b->host].zone, b->zone);
        if (strcmp(comp, "etcd") == 0)
            etcd_zone[b->zone]++;
        if (strcmp(comp, "kube-apiserver") == 0) {
            api_zone[b->zone]++;
            /* two apiservers of one cluster never share a host */
            for (unsigned j = 0; j < i; j++)
                if (r->bindings[j].component == b->component)
                    assert_int_not_equal(r->bindings[j].host, b->host);
        }
    }
    for (int z = 0; z < 3; z++) {
        assert_int_equal(etcd_zone[z], 1); /* exactly one etcd per zone */
        assert_int_equal(api_zone[z], 2);  /* six apiservers round-robin */
    }
    kf_place_bindings_format(&f->units[0], &c, r, &out);
    {
        const char *want = "etcd-0 -> u-a-h2 (zone z-a, one per zone; least allocated host: "
                           "cpu 0 % -> 7 %)\n"
                           "etcd-1 -> u-b-h0 (zone z-b, one per zone; least allocated host: "
                           "cpu 0 % -> 7 %)\n";
        assert_true(strncmp(out.buf, want, strlen(want)) == 0);
    }
    /* Booking it and undoing it leaves the unit as it was. */
    {
        struct kf_res before = f->units[0].allocated;
        kf_place_commit(f->units, &c, r);
        assert_int_equal(f->units[0].clusters, 1);
        assert_int_equal(f->units[0].by_grade[KF_G5], 1);
        assert_int_equal(f->units[0].allocated.cpu_milli,
                         before.cpu_milli + kf_grade_total(c.shape).cpu_milli);
        kf_place_uncommit(&f->units[0], &c, r->bindings, r->n_bindings);
        assert_int_equal(f->units[0].allocated.cpu_milli, before.cpu_milli);
        assert_int_equal(f->units[0].clusters, 0);
        for (int h = 0; h < 12; h++)
            assert_int_equal(f->hosts[0][h].members, 0);
    }
    kf_strbuf_release(&out);
    kf_placer_release(&p);
    free(r);
}

/* Existing members stay where they are; the replicas bound around them
 * still spread: a grade change from G2 to G3 adds a third apiserver in the
 * zone the first two left free, and a lost etcd member comes back in the
 * zone without one. */
static void test_pinned_members(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("grow", "r", KF_G2);
    struct kf_place_pin pins[KF_GRADE_MAX_MEMBERS];
    struct kf_placer p;
    struct kf_place_result *r = kf_xmalloc(sizeof(*r)), *r2 = kf_xmalloc(sizeof(*r2));
    unsigned n = 0, api_zones = 0, etcd_zone_of_1 = 9;
    struct kf_strbuf out = KF_STRBUF_INIT;

    add_unit(f, "u", "r", 3, 2, 64, 256, 0.1);
    kf_placer_init(&p, NULL);
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r), 0);
    assert_int_equal(r->n_bindings, 10);

    /* G3: same members, one more apiserver (component 1). */
    c = cluster("grow", "r", KF_G3);
    c.unit = "u";
    for (unsigned i = 0; i < r->n_bindings; i++)
        pins[n++] = (struct kf_place_pin){ r->bindings[i].component, r->bindings[i].replica,
                                           r->bindings[i].host };
    c.pins = pins;
    c.n_pins = n;
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r2), 0);
    assert_int_equal(r2->n_bindings, 11);
    for (unsigned i = 0; i < r2->n_bindings; i++) {
        const struct kf_place_binding *b = &r2->bindings[i];

        if (b->component == 1)
            api_zones |= 1u << b->zone;
        if (b->component == 1 && b->replica == 2) {
            assert_false(b->pinned);
            continue;
        }
        assert_true(b->pinned);
        for (unsigned j = 0; j < r->n_bindings; j++)
            if (r->bindings[j].component == b->component && r->bindings[j].replica == b->replica)
                assert_int_equal(r->bindings[j].host, b->host);
    }
    assert_int_equal(api_zones, 7); /* one apiserver in each of the three zones */
    kf_place_bindings_format(&f->units[0], &c, r2, &out);
    assert_non_null(strstr(out.buf, "etcd-0 -> "));
    assert_non_null(strstr(out.buf, "stays where it runs"));
    assert_non_null(strstr(out.buf, "kube-apiserver-2 -> "));

    /* etcd-1 is gone: it comes back in the zone without an etcd member. */
    c = cluster("grow", "r", KF_G2);
    c.unit = "u";
    n = 0;
    for (unsigned i = 0; i < r->n_bindings; i++)
        if (!(r->bindings[i].component == 0 && r->bindings[i].replica == 1))
            pins[n++] = (struct kf_place_pin){ r->bindings[i].component, r->bindings[i].replica,
                                               r->bindings[i].host };
    c.pins = pins;
    c.n_pins = n;
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r2), 0);
    for (unsigned i = 0; i < r2->n_bindings; i++)
        if (r2->bindings[i].component == 0 && r2->bindings[i].replica == 1) {
            assert_false(r2->bindings[i].pinned);
            etcd_zone_of_1 = r2->bindings[i].zone;
        }
    for (unsigned i = 0; i < r->n_bindings; i++)
        if (r->bindings[i].component == 0 && r->bindings[i].replica != 1)
            assert_int_not_equal(r->bindings[i].zone, etcd_zone_of_1);
    assert_true(etcd_zone_of_1 < 3);

    /* Pins without the unit they live on, or twice the same member: refused. */
    c.unit = NULL;
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r2), -EINVAL);
    assert_string_equal(r2->message,
                        "cluster grow: pinned members need the cluster pinned to their unit");
    c.unit = "u";
    pins[1] = pins[0];
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r2), -EINVAL);
    assert_string_equal(r2->message, "cluster grow: a member is pinned twice");

    kf_strbuf_release(&out);
    kf_placer_release(&p);
    free(r);
    free(r2);
}

static void test_host_fit(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("c", "r", KF_G4);
    char msg[KF_PLACE_MESSAGE_MAX];

    /* Lots of small hosts: room in aggregate, but no host takes a 5.3-core apiserver. */
    add_unit(f, "small", "r", 3, 20, 4, 16, 0.0);
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg, "no unit in r can take grade G4: best is small: no host in zones z-a, "
                             "z-b, z-c can take kube-apiserver-0 (5.3 CPU / 21.3 GiB) within the "
                             "host mark 85 %");
    /* A unit with big hosts takes it, although the small one scores higher. */
    add_unit(f, "large", "r", 3, 2, 96, 384, 0.3);
    assert_string_equal(place(f, &c, NULL, 0), "large");
}

static void test_explain(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("web", "r", KF_G1);
    struct kf_placer p;
    struct kf_place_explain e;
    struct kf_place_result *r = kf_xmalloc(sizeof(*r));
    struct kf_strbuf out = KF_STRBUF_INIT;

    add_unit(f, "elsewhere", "q", 3, 2, 64, 256, 0.0);
    add_unit(f, "full", "r", 3, 2, 64, 256, 0.59)->cordoned = true;
    add_unit(f, "ok", "r", 3, 2, 64, 256, 0.2);
    kf_placer_init(&p, NULL);
    assert_int_equal(kf_place_explain(&p, f->units, f->n, &c, &e), 0);
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r), 0);
    assert_int_equal(e.chosen, r->unit);
    assert_string_equal(e.result.message, r->message);
    /* Every filter that failed is named, not only the first. */
    assert_int_equal(e.verdicts[1].failed, (1u << KF_FILTER_CORDON) | (1u << KF_FILTER_WATER_CPU) |
                                               (1u << KF_FILTER_WATER_MEMORY));
    assert_string_equal(e.verdicts[1].reason,
                        "unit is cordoned; cpu would reach 60.04 % (mark 60 %), 59 % now; memory "
                        "would reach 60.04 % (mark 60 %), 59 % now");
    assert_int_equal(e.verdicts[0].failed, 1u << KF_FILTER_REGION);
    assert_int_equal(e.verdicts[2].failed, 0);
    assert_true(e.verdicts[2].score[KF_SCORE_SPREAD] > 700);
    kf_place_explain_format(&e, f->units, &c, &p.policy, &out);
    assert_non_null(strstr(out.buf, "\nok    CHOSEN  "));
    assert_non_null(strstr(out.buf, "\nfull  Cordon  "));
    assert_non_null(
        strstr(out.buf, "failed: Cordon WaterLevelCPU WaterLevelMemory: unit is cordoned; cpu"));
    assert_non_null(strstr(out.buf, "(1 unit in other regions not shown)\n"));
    assert_non_null(strstr(out.buf, "decision: placed in ok: score "));
    kf_place_explain_release(&e);
    kf_strbuf_release(&out);
    kf_placer_release(&p);
    free(r);
}

static void test_water_and_hosts_needed(void **state)
{
    struct fleet *f = *state;
    struct kf_place_policy pol;
    struct kf_unit_water w;
    struct kf_place_unit *u = add_unit(f, "u", "r", 3, 2, 64, 256, 0.70);
    struct kf_res shape = { 64000, 256 * KF_GIB };
    struct kf_strbuf out = KF_STRBUF_INIT;

    kf_place_policy_default(&pol);
    kf_unit_water(u, &pol, &T, &w);
    assert_true(w.above);
    assert_int_equal(w.over.cpu_milli, 6 * 64000 / 10); /* 10 % of 384 cores */
    assert_int_equal(w.can_take[KF_G0], 0);
    kf_unit_water_format(u, &w, shape, &out);
    assert_string_equal(out.buf, "cpu 70 %, memory 70 % (mark 60 %): above the mark by 38.4 CPU / "
                                 "153.6 GiB; needs 1 more host of 64 CPU / 256 GiB");
    /* (268.8 + 10 x 4) / 0.6 = 514.7 cores needed, 384 there: 3 hosts of 64. */
    assert_int_equal(kf_unit_hosts_needed(u, &pol, &T.grades[KF_G1], 10, shape), 3);
    for (int i = 0; i < 6; i++)
        f->hosts[0][i].allocated = (struct kf_res){ 0, 0 };
    kf_place_unit_refresh(u);
    kf_unit_water(u, &pol, &T, &w);
    assert_false(w.above);
    assert_int_equal(w.can_take[KF_G1], 57); /* 230.4 cores of room / 4 */
    assert_int_equal(kf_unit_hosts_needed(u, &pol, &T.grades[KF_G1], 57, shape), 0);
    assert_int_equal(kf_unit_hosts_needed(u, &pol, &T.grades[KF_G1], 58, shape), 1);
    kf_strbuf_release(&out);
}

static void test_deterministic_fill(void **state)
{
    struct fleet *f = *state;
    struct kf_placer p;
    struct kf_place_result *r = kf_xmalloc(sizeof(*r));
    char first[64][16];
    int placed = 0;

    /* Fill two units one cluster at a time: no unit ever passes its mark,
     * and the same input gives the same sequence. */
    kf_placer_init(&p, NULL);
    for (int round = 0; round < 2; round++) {
        f->n = 0;
        add_unit(f, "a", "r", 3, 2, 64, 256, 0.0);
        add_unit(f, "b", "r", 3, 2, 64, 256, 0.0);
        for (int i = 0; i < 64; i++) {
            char name[16];
            struct kf_place_cluster c = cluster(name, "r", i % 3 == 0 ? KF_G2 : KF_G1);
            snprintf(name, sizeof(name), "c%d", i);
            if (kf_place(&p, f->units, f->n, &c, r) != 0) {
                snprintf(first[i], 16, "-");
                continue;
            }
            kf_place_commit(f->units, &c, r);
            if (round == 0) {
                snprintf(first[i], 16, "%s", f->units[r->unit].name);
                placed++;
            } else {
                assert_string_equal(first[i], f->units[r->unit].name);
            }
            for (size_t u = 0; u < f->n; u++) {
                struct kf_unit_water w;
                kf_unit_water(&f->units[u], &p.policy, &T, &w);
                assert_false(w.above);
            }
        }
    }
    /* 2 x 384 cores x 0.6 = 460.8 cores hold ~ 87 clusters of this mix: all placed. */
    assert_int_equal(placed, 64);
    /* Spread balances load, not counts: the two units differ by at most one G2. */
    assert_true(llabs(f->units[0].allocated.cpu_milli - f->units[1].allocated.cpu_milli) <=
                kf_grade_total(&T.grades[KF_G2]).cpu_milli);
    kf_placer_release(&p);
    free(r);
}

static void test_plan_existing_then_new_units(void **state)
{
    struct fleet *f = *state;
    struct kf_plan_demand d[] = { { KF_G1, 500 } };
    struct kf_plan_request req = {
        .region = "r",
        .grades = &T,
        .demand = d,
        .n_demand = 1,
        .host_shape = { 64000, 256 * KF_GIB },
    };
    struct kf_plan_result res;
    struct kf_placer p;
    struct kf_strbuf err = KF_STRBUF_INIT;

    add_unit(f, "other", "q", 3, 3, 64, 256, 0.0);
    add_unit(f, "u1", "r", 3, 3, 64, 256, 0.0);
    req.units = f->units;
    req.n_units = f->n;
    kf_placer_init(&p, NULL);
    /* 9 hosts x 64 cores x 0.60 = 345.6 cores: 86 clusters of 4 cores. The other
     * 414 need new units of the same size: 5 of them. */
    assert_int_equal(kf_plan(&p, &req, &res, &err), 0);
    assert_int_equal(res.demanded, 500);
    assert_int_equal(res.absorbed_existing, 86);
    assert_int_equal(res.absorbed_new, 414);
    assert_int_equal(res.new_units, 5);
    assert_int_equal(res.new_unit_hosts, 45);
    assert_int_equal(res.n_lines, 6);
    assert_string_equal(res.lines[0].name, "u1");
    assert_int_equal(res.lines[0].absorbed[KF_G1], 86);
    for (size_t i = 0; i < res.n_lines; i++) {
        assert_true(res.lines[i].cpu_after <= res.lines[i].mark + 1e-9);
        assert_true(res.lines[i].mem_after <= res.lines[i].mark + 1e-9);
    }
    assert_string_equal(res.lines[5].name, "new-5");
    assert_int_equal(res.lines[5].absorbed[KF_G1], 414 - 4 * 86);
    /* The real units were not touched. */
    assert_int_equal(f->units[1].clusters, 0);
    assert_int_equal(f->units[1].n_hosts, 9);
    kf_plan_result_release(&res);
    kf_placer_release(&p);
    kf_strbuf_release(&err);
}

static void test_plan_growth_and_format(void **state)
{
    struct fleet *f = *state;
    struct kf_plan_demand d[] = { { KF_G1, 500 }, { KF_G3, 40 } };
    struct kf_plan_request req = {
        .region = "cn-hangzhou",
        .grades = &T,
        .demand = d,
        .n_demand = 2,
        .host_shape = { 64000, 256 * KF_GIB },
        .max_unit_hosts = 12,
    };
    struct kf_plan_result res;
    struct kf_placer p;
    struct kf_strbuf out = KF_STRBUF_INIT;
    unsigned g3 = 0, g1 = 0;

    add_unit(f, "hz-u1", "cn-hangzhou", 3, 3, 64, 256, 0.0);
    add_unit(f, "hz-u2", "cn-hangzhou", 3, 3, 64, 256, 0.5)->cordoned = true;
    req.units = f->units;
    req.n_units = f->n;
    kf_placer_init(&p, NULL);
    assert_int_equal(kf_plan(&p, &req, &res, NULL), 0);
    /* The cordoned unit absorbs nothing and does not grow; hz-u1 grows to 12 hosts. */
    assert_string_equal(res.lines[0].name, "hz-u1");
    assert_int_equal(res.lines[0].hosts_added, 3);
    assert_int_equal(res.hosts_added, 3);
    for (size_t i = 0; i < res.n_lines; i++) {
        assert_string_not_equal(res.lines[i].name, "hz-u2");
        g3 += res.lines[i].absorbed[KF_G3];
        g1 += res.lines[i].absorbed[KF_G1];
    }
    assert_int_equal(g3, 40);
    assert_int_equal(g1, 500);
    assert_int_equal(res.absorbed_existing + res.absorbed_grown + res.absorbed_new, 540);
    kf_plan_format(&req, &res, &out);
    {
        const char *head = "region cn-hangzhou: demand 40 x G3 + 500 x G1 (540 clusters); "
                           "new hosts of 64 CPU / 256 GiB\n\nUNIT ";
        assert_true(strncmp(out.buf, head, strlen(head)) == 0);
    }
    assert_non_null(strstr(out.buf, "\nhz-u1  "));
    assert_non_null(strstr(out.buf, "  9 + 3  "));
    assert_non_null(strstr(out.buf, "\nexisting units absorb "));
    assert_non_null(strstr(out.buf, " more with 3 added hosts (up to 12 hosts a unit); "));
    kf_plan_result_release(&res);
    kf_strbuf_release(&out);
    kf_placer_release(&p);
}

static void test_plan_too_big(void **state)
{
    struct kf_plan_demand d[] = { { KF_G5, 1 } };
    struct kf_plan_request req = {
        .region = "r",
        .grades = &T,
        .demand = d,
        .n_demand = 1,
        .host_shape = { 8000, 32 * KF_GIB },
    };
    struct kf_plan_result res;
    struct kf_placer p;
    struct kf_strbuf out = KF_STRBUF_INIT, err = KF_STRBUF_INIT;

    (void)state;
    kf_placer_init(&p, NULL);
    /* 9 hosts of 8 cores cannot hold 64 cores of G5 under the mark. */
    assert_int_equal(kf_plan(&p, &req, &res, NULL), 0);
    assert_int_equal(res.unplaceable[KF_G5], 1);
    assert_int_equal(res.new_units, 0);
    kf_plan_format(&req, &res, &out);
    assert_non_null(strstr(out.buf, "; cannot place 1 x G5: too big for an empty new unit of "
                                    "these hosts\n"));
    kf_plan_result_release(&res);
    req.host_shape.cpu_milli = 0;
    assert_int_equal(kf_plan(&p, &req, &res, &err), -EINVAL);
    assert_string_equal(err.buf, "a plan needs the cpu and memory of a new host");
    kf_strbuf_release(&out);
    kf_strbuf_release(&err);
    kf_placer_release(&p);
}

static void test_pinned_and_avoided_units(void **state)
{
    struct fleet *f = *state;
    static const char *const avoid[] = { "b" };
    struct kf_place_cluster c = cluster("c", "r", KF_G0);
    char msg[KF_PLACE_MESSAGE_MAX];

    add_unit(f, "a", "r", 3, 2, 64, 256, 0.3);
    add_unit(f, "b", "r", 3, 2, 64, 256, 0.0);
    assert_string_equal(place(f, &c, NULL, 0), "b");
    c.avoid_units = avoid;
    c.n_avoid_units = 1;
    assert_string_equal(place(f, &c, NULL, 0), "a");
    c.n_avoid_units = 0;
    c.unit = "a";
    assert_string_equal(place(f, &c, NULL, 0), "a");
    /* A pinned unit must still pass every filter. */
    f->units[0].cordoned = true;
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg, "no unit in r can take grade G0: best is a: unit is cordoned");
    c.unit = "zz";
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg, "no unit zz in region r can take the cluster");
}

static bool unit_named(const struct kf_place_unit *u, void *ctx)
{
    return strcmp(u->name, ctx) == 0;
}

/* spec.placement.zones: new members only in the cluster's zones, and the
 * HA filter counts only those; spec.placement.unitSelector (a predicate
 * the caller gives): only the units it accepts, and a reason that says so. */
static void test_cluster_zones_and_unit_selector(void **state)
{
    struct fleet *f = *state;
    static const char *const two[] = { "z-a", "z-b" }, *const three[] = { "z-b", "z-c", "z-d" };
    struct kf_place_cluster c = cluster("c", "r", KF_G1);
    struct kf_place_result *r = kf_xmalloc(sizeof(*r));
    struct kf_place_explain e;
    struct kf_placer p;
    char msg[KF_PLACE_MESSAGE_MAX];

    add_unit(f, "four", "r", 4, 2, 64, 256, 0.0);
    c.zones = two;
    c.n_zones = 2;
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg, "no unit in r can take grade G1: best is four: unit has 2 usable "
                             "zones among the cluster's, grade G1 needs 3");
    c.zones = three;
    c.n_zones = 3;
    kf_placer_init(&p, NULL);
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r), 0);
    assert_int_equal(r->n_bindings, kf_grade_members(c.shape));
    for (unsigned i = 0; i < r->n_bindings; i++) {
        assert_int_not_equal(r->bindings[i].zone, 0); /* never z-a */
        assert_int_equal(f->hosts[0][r->bindings[i].host].zone, r->bindings[i].zone);
    }

    c.zones = NULL;
    c.n_zones = 0;
    add_unit(f, "busy", "r", 3, 2, 64, 256, 0.4);
    assert_string_equal(place(f, &c, NULL, 0), "four"); /* more headroom */
    c.unit_ok = unit_named;
    c.unit_ok_ctx = "busy";
    c.unit_ok_what = "(tier=gold)";
    assert_string_equal(place(f, &c, NULL, 0), "busy");
    assert_int_equal(kf_place_explain(&p, f->units, f->n, &c, &e), 0);
    assert_int_equal(e.verdicts[0].failed, 1u << KF_FILTER_UNIT);
    assert_string_equal(e.verdicts[0].reason,
                        "unit's labels do not match the cluster's unitSelector (tier=gold)");
    kf_place_explain_release(&e);
    c.unit_ok_ctx = "nobody";
    assert_null(place(f, &c, msg, sizeof(msg)));
    assert_string_equal(msg, "no unit in region r matches the cluster's unitSelector (tier=gold)");
    kf_placer_release(&p);
    free(r);
}

static void test_balance_and_quota_scores(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("c", "r", KF_G1);
    struct kf_place_policy pol;
    struct kf_placer p;
    struct kf_place_explain e;

    /* Same average use; "lopsided" has its cpu far above its memory. */
    add_unit(f, "even", "r", 3, 2, 64, 256, 0.30);
    add_unit(f, "lopsided", "r", 3, 2, 64, 256, 0.0);
    for (int i = 0; i < 6; i++) {
        f->hosts[1][i].allocated.cpu_milli = 64000 / 2;         /* 50 % */
        f->hosts[1][i].allocated.mem_bytes = 256 * KF_GIB / 10; /* 10 % */
    }
    kf_place_unit_refresh(&f->units[1]);
    kf_place_policy_default(&pol);
    memset(pol.weights, 0, sizeof(pol.weights));
    pol.weights[KF_SCORE_BALANCE] = 1;
    kf_placer_init(&p, &pol);
    assert_int_equal(kf_place_explain(&p, f->units, f->n, &c, &e), 0);
    assert_int_equal(e.chosen, 0);
    assert_int_equal(e.verdicts[0].score[KF_SCORE_BALANCE], 1000);
    /* |0.51 - 0.11| / 2 = 0.2 -> 800 per mille */
    assert_int_equal(e.verdicts[1].score[KF_SCORE_BALANCE], 800);
    kf_place_explain_release(&e);
    kf_placer_release(&p);

    /* Quota left: the unit with more of its quota free wins on that score. */
    memset(pol.weights, 0, sizeof(pol.weights));
    pol.weights[KF_SCORE_QUOTA] = 1;
    f->units[0].max_clusters = 10;
    f->units[0].clusters = 8;
    f->units[1].max_clusters = 100;
    f->units[1].clusters = 50;
    kf_placer_init(&p, &pol);
    assert_int_equal(kf_place_explain(&p, f->units, f->n, &c, &e), 0);
    assert_int_equal(e.verdicts[0].score[KF_SCORE_QUOTA], 100); /* 1 of 10 left after */
    assert_int_equal(e.verdicts[1].score[KF_SCORE_QUOTA], 490);
    assert_int_equal(e.chosen, 1);
    kf_place_explain_release(&e);
    kf_placer_release(&p);
}

static void test_more_replicas_than_zones(void **state)
{
    struct fleet *f = *state;
    struct kf_grade_spec shape = T.grades[KF_G0];
    struct kf_place_cluster c = cluster("lab", "r", KF_G0);
    struct kf_placer p;
    struct kf_place_result *r = kf_xmalloc(sizeof(*r));
    unsigned per_zone[2] = { 0 }, fallback = 0;
    int etcd_host[3], k = 0;

    /* An operator's grade for a two-zone lab: minZones 2, etcd still 3. */
    shape.min_zones = 2;
    c.shape = &shape;
    add_unit(f, "lab", "r", 2, 2, 32, 128, 0.0);
    kf_placer_init(&p, NULL);
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r), 0);
    for (unsigned i = 0; i < r->n_bindings; i++) {
        if (r->bindings[i].component != 0)
            continue;
        per_zone[r->bindings[i].zone]++;
        fallback += r->bindings[i].spread_fallback;
        etcd_host[k++] = (int)r->bindings[i].host;
    }
    assert_int_equal(per_zone[0] + per_zone[1], 3);
    assert_true(per_zone[0] >= 1 && per_zone[1] >= 1);
    assert_int_equal(fallback, 1); /* the third member shares a zone, and says so */
    assert_int_not_equal(etcd_host[0], etcd_host[2]);
    assert_int_not_equal(etcd_host[1], etcd_host[2]);
    /* A broken shape is refused, not placed. */
    shape.n_components = 0;
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r), -EINVAL);
    assert_int_equal(r->unit, -1);
    kf_placer_release(&p);
    free(r);
}

static void test_host_mark(void **state)
{
    struct fleet *f = *state;
    struct kf_place_cluster c = cluster("c", "r", KF_G1);
    struct kf_placer p;
    struct kf_place_result *r = kf_xmalloc(sizeof(*r));
    bool on_host0 = false;

    /* Zone a's only schedulable host is at 84.5 % cpu: an etcd member
     * (0.4 cores) would take it past the host mark of 85 %. etcd needs one
     * member in every zone, so the cluster waits. */
    add_unit(f, "u", "r", 3, 2, 64, 256, 0.0);
    f->hosts[0][0].allocated.cpu_milli = 54080;
    f->hosts[0][1].unschedulable = true;
    kf_place_unit_refresh(&f->units[0]);
    kf_placer_init(&p, NULL);
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r), -ENOSPC);
    assert_string_equal(r->message,
                        "no unit in r can take grade G1: best is u: no host in zone z-a "
                        "can take etcd-2 (0.4 CPU / 1.6 GiB) within the host mark 85 %");
    /* At 80 % it fits, and etcd-2 lands there. */
    f->hosts[0][0].allocated.cpu_milli = 51200;
    kf_place_unit_refresh(&f->units[0]);
    assert_int_equal(kf_place(&p, f->units, f->n, &c, r), 0);
    for (unsigned i = 0; i < r->n_bindings; i++)
        on_host0 |= r->bindings[i].host == 0 && r->bindings[i].component == 0;
    assert_true(on_host0);
    kf_placer_release(&p);
    free(r);
}

int main(void)
{
#define T_(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_region),
        T_(test_compliance),
        T_(test_features_and_exclusive),
        T_(test_cordon_and_quota),
        T_(test_grade_ratio),
        T_(test_zones_for_ha),
        T_(test_hosts_hold_the_release),
        T_(test_water_level_message),
        T_(test_memory_water_level),
        T_(test_scores_and_ties),
        T_(test_density_policy),
        T_(test_member_spread),
        T_(test_pinned_members),
        T_(test_host_fit),
        T_(test_explain),
        T_(test_water_and_hosts_needed),
        T_(test_deterministic_fill),
        T_(test_plan_existing_then_new_units),
        T_(test_plan_growth_and_format),
        T_(test_plan_too_big),
        T_(test_pinned_and_avoided_units),
        T_(test_cluster_zones_and_unit_selector),
        T_(test_balance_and_quota_scores),
        T_(test_more_replicas_than_zones),
        T_(test_host_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
