/* test-ctrl-placement.c: the placement and unit-status controllers over
 * the real registry on the memory store, as an operator sees them through
 * the objects: each filter keeps a cluster Pending with a reason naming
 * the best unit, and lets it go once the cause is fixed; members spread
 * over zones; IP ranges are persisted in the IPPools, survive a restart
 * (the allocator is rebuilt from them) and are released and reused on
 * delete; effective settings merge profile, template and spec; grade
 * changes wait for their hold and for the fleet-wide limit; units show
 * their water level and go above it when hosts are lost; explain and plan
 * answer from the same model. */
#include "capacity-test.h"
#include "kfleet/cidr.h"
#include "kfleet/selector.h"

#define GC_KIND &kf_kind_guestcluster

static const bool T = true;

/* Region r (zones a, b, c) with units of 3 zones x per_zone hosts of cpu
 * cores / mem GiB, an IPPool for vpc-1, every host Ready. */
static void fleet(struct capfx *f, const char *const *units, size_t n, int per_zone, int cpu,
                  int mem)
{
    char buf[1024];

    capfx_create(f, &kf_kind_region,
                 "{'metadata':{'name':'r'},'spec':{'zones':['a','b','c'],"
                 "'complianceTags':['gdpr']}}");
    capfx_create(f, &kf_kind_region,
                 "{'metadata':{'name':'plain'},'spec':{'zones':['a','b','c']}}");
    capfx_create(f, &kf_kind_ippool,
                 "{'metadata':{'name':'vpc-1'},'spec':{'vpc':'vpc-1','cidrs':['10.0.0.0/12'],"
                 "'serviceCIDRs':['172.16.0.0/16']}}");
    for (size_t u = 0; u < n; u++) {
        snprintf(buf, sizeof(buf),
                 "{'metadata':{'name':'%s'},'spec':{'region':'r','zones':['a','b','c']}}",
                 units[u]);
        capfx_create(f, &kf_kind_unit, buf);
        for (int z = 0; z < 3; z++)
            for (int h = 0; h < per_zone; h++) {
                char name[64];

                snprintf(name, sizeof(name), "%s-%c%d", units[u], 'a' + z, h);
                snprintf(buf, sizeof(buf),
                         "{'metadata':{'name':'%s'},'spec':{'role':'meta','unit':'%s',"
                         "'zone':'%c','capacity':{'cpu':'%d','memory':'%dGi'}}}",
                         name, units[u], 'a' + z, cpu, mem);
                capfx_create(f, &kf_kind_host, buf);
                kf_lease_renew(f->leases, name, kf_now_ms());
            }
    }
}

static void renew_all(struct capfx *f)
{
    json_t *items = NULL, *h;
    size_t i;

    assert_int_equal(kf_registry_list(f->reg, &kf_kind_host, NULL, &items, NULL, NULL, NULL), 0);
    json_array_foreach(items, i, h) kf_lease_renew(f->leases, kf_obj_name(h), kf_now_ms());
    json_decref(items);
}

static void cluster(struct capfx *f, const char *name, const char *extra_spec)
{
    char buf[2048];

    snprintf(buf, sizeof(buf),
             "{'metadata':{'name':'%s'},'spec':{'region':'r','network':{'vpc':'vpc-1'}%s%s}}", name,
             extra_spec && *extra_spec ? "," : "", extra_spec ? extra_spec : "");
    capfx_create(f, GC_KIND, buf);
}

static bool placed(const json_t *obj, const void *arg)
{
    (void)arg;
    return obj && kf_json_str(obj, "status.unit", NULL) &&
           kf_json_int(obj, "status.members.desired", 0) > 0;
}

static bool pending_with(const json_t *obj, const void *arg)
{
    const json_t *c =
        obj ? cap_condition_find_test(kf_json_path(obj, "status.conditions"), "Scheduled") : NULL;

    return c && kf_streq(kf_json_str(obj, "status.phase", NULL), "Pending") &&
           strstr(kf_json_str(c, "message", ""), arg);
}

static bool members_are(const json_t *obj, const void *arg)
{
    return obj && kf_json_int(obj, "status.members", -1) == *(const int *)arg;
}

static bool placed_or_pending(const json_t *obj, const void *arg)
{
    (void)arg;
    return placed(obj, NULL) || pending_with(obj, "");
}

/* A cluster number from test names ("c07" -> 7), -1 when there is none. */
static int atoi_test(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    return end == s ? -1 : (int)v;
}

static void start_fleet(struct capfx *f, const char *const *units, size_t n)
{
    capfx_open(f);
    f->opts.host_grace_ms = 600000;
    capfx_start(f);
    fleet(f, units, n, 2, 32, 128);
    renew_all(f);
}

static void find_fn(struct kf_ctrl *c, void *arg)
{
    if (strcmp(kf_ctrl_name(c), "placement") == 0)
        *(struct kf_ctrl **)arg = c;
}

static struct kf_ctrl *find_placement(struct capfx *f)
{
    struct kf_ctrl *found = NULL;

    kf_ctrl_manager_foreach(f->m, find_fn, &found);
    assert_non_null(found);
    return found;
}

static void test_places_and_spreads_members(void **state)
{
    static const char *const units[] = { "u1", "u2" };
    struct capfx f;
    json_t *gc, *members = NULL, *m;
    struct kf_selector *sel = NULL;
    struct kf_list_opts o = { 0 };
    int etcd_zones = 0, api_zones = 0;
    size_t i;

    (void)state;
    start_fleet(&f, units, 2);
    cluster(&f, "web-1", "'expectedNodes':50");
    assert_true(capfx_wait(&f, GC_KIND, "web-1", placed, NULL));
    gc = capfx_get(&f, GC_KIND, "web-1");
    assert_string_equal(kf_json_str(gc, "status.phase", ""), "Scheduled");
    assert_string_equal(kf_json_str(gc, "status.grade", ""), "G1");
    assert_string_equal(kf_json_str(gc, "status.effective.profile", ""), "standard");
    assert_string_equal(kf_json_str(gc, "status.effective.version", ""), "1.37");
    assert_int_equal(kf_json_int(gc, "status.effective.expectedNodes", 0), 50);
    assert_int_equal(kf_json_int(gc, "status.members.desired", 0), 10);
    assert_true(kf_obj_has_finalizer(gc, KF_FINALIZER_PLACEMENT));
    assert_non_null(strstr(kf_json_str(gc, "status.message", ""), "placed in u"));
    assert_string_equal(kf_json_str(gc, "status.network.kubernetesServiceIP", ""), "172.16.0.1");
    assert_string_equal(kf_json_str(gc, "status.network.dnsServiceIP", ""), "172.16.0.10");

    /* members: bound, recording host and zone; etcd one per zone,
     * apiservers in two different zones */
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    assert_int_equal(kf_selector_parse_labels(KF_LABEL_CLUSTER "=web-1", &sel, NULL), 0);
    o.labels = sel;
    assert_int_equal(
        kf_registry_list(f.reg, &kf_kind_controlplanemember, &o, &members, NULL, NULL, NULL), 0);
    assert_int_equal(json_array_size(members), 10);
    json_array_foreach(members, i, m)
    {
        const char *zone = kf_json_str(m, "spec.zone", "");
        const char *host = kf_json_str(m, "spec.host", "");
        int bit = 1 << (zone[0] - 'a');

        assert_non_null(strstr(host, kf_json_str(gc, "status.unit", "")));
        assert_int_equal(host[strlen(host) - 2], zone[0]); /* the host is in that zone */
        assert_string_equal(kf_obj_label(m, KF_LABEL_ZONE), zone);
        if (!strcmp(kf_json_str(m, "spec.component", ""), "etcd")) {
            assert_int_equal(etcd_zones & bit, 0);
            etcd_zones |= bit;
        }
        if (!strcmp(kf_json_str(m, "spec.component", ""), "kube-apiserver")) {
            assert_int_equal(api_zones & bit, 0);
            api_zones |= bit;
            assert_string_equal(kf_json_str(m, "spec.resources.requests.cpu", ""), "1");
            assert_string_equal(kf_json_str(m, "spec.resources.requests.memory", ""), "4Gi");
        }
        assert_null(kf_json_path(m, "spec.binary"));
    }
    assert_int_equal(etcd_zones, 7);
    assert_int_equal(__builtin_popcount(api_zones), 2);
    json_decref(members);
    kf_selector_free(sel);
    json_decref(gc);
    capfx_close(&f);
}

/* Each filter, through the controller: Pending with the reason, placed
 * once the cause goes away. */
static void test_filters_and_pending_reasons(void **state)
{
    static const char *const units[] = { "u1" };
    struct capfx f;

    (void)state;
    start_fleet(&f, units, 1);

    /* Region: no unit in the cluster's region */
    capfx_create(&f, GC_KIND,
                 "{'metadata':{'name':'elsewhere'},'spec':{'region':'plain','network':"
                 "{'vpc':'vpc-1'}}}");
    assert_true(capfx_wait(&f, GC_KIND, "elsewhere", pending_with, "no unit in region plain"));

    /* Compliance: a tag the region lacks */
    cluster(&f, "sox", "'compliance':['sox']");
    assert_true(capfx_wait(&f, GC_KIND, "sox", pending_with,
                           "best is u1: neither the unit nor region r carries compliance tag "
                           "\"sox\""));
    cluster(&f, "eu", "'compliance':['gdpr']"); /* the region carries gdpr */
    assert_true(capfx_wait(&f, GC_KIND, "eu", placed, NULL));

    /* Features: the ai profile needs a gpu unit */
    cluster(&f, "train", "'profile':'ai','expectedNodes':20");
    assert_true(capfx_wait(&f, GC_KIND, "train", pending_with,
                           "unit lacks feature \"gpu\" (the cluster's profile needs it)"));
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'features':['gpu']}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "train", placed, NULL));

    /* Cordon */
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'cordoned':true}}", false);
    cluster(&f, "late", NULL);
    assert_true(capfx_wait(&f, GC_KIND, "late", pending_with, "best is u1: unit is cordoned"));
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'cordoned':false}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "late", placed, NULL));

    /* Quota */
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'quota':{'maxClusters':3}}}", false);
    cluster(&f, "over-quota", NULL);
    assert_true(
        capfx_wait(&f, GC_KIND, "over-quota", pending_with, "unit is at its quota of 3 clusters"));
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'quota':{'maxClusters':10}}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "over-quota", placed, NULL));

    /* Grade ratio: at most 10 % G3 (one is always allowed) */
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'gradeRatio':{'G3':0.1}}}", false);
    cluster(&f, "big-1", "'expectedNodes':400");
    assert_true(capfx_wait(&f, GC_KIND, "big-1", placed, NULL));
    cluster(&f, "big-2", "'expectedNodes':400");
    assert_true(capfx_wait(&f, GC_KIND, "big-2", pending_with, "over its limit of 10 %"));
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'gradeRatio':null}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "big-2", placed, NULL));

    /* Water level: a G4 needs 32 CPU; 6 hosts of 32 at 30 % hold 57.6, and
     * about 42 are taken */
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'waterLevel':0.3}}", false);
    cluster(&f, "huge", "'grade':'G4'");
    assert_true(capfx_wait(&f, GC_KIND, "huge", pending_with,
                           "no unit in r has headroom for grade G4: best is u1 at"));
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'waterLevel':0.9}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "huge", placed, NULL));

    /* Zones: hosts of one zone NotReady -> 2 usable zones; a new cluster waits */
    capfx_patch(&f, &kf_kind_host, "u1-a0", "{'spec':{'unschedulable':true}}", false);
    capfx_patch(&f, &kf_kind_host, "u1-a1", "{'spec':{'unschedulable':true}}", false);
    cluster(&f, "two-zones", NULL);
    assert_true(capfx_wait(&f, GC_KIND, "two-zones", pending_with,
                           "unit has 2 usable zones, grade G0 needs 3"));
    {
        struct kf_strbuf reasons = KF_STRBUF_INIT;

        kf_ctrl_manager_wait_idle(f.m, WAIT_MS); /* the event follows the status */
        capfx_event_reasons(&f, "GuestCluster", "two-zones", &reasons);
        assert_non_null(strstr(reasons.buf, "FailedScheduling"));
        kf_strbuf_release(&reasons);
    }
    capfx_patch(&f, &kf_kind_host, "u1-a0", "{'spec':{'unschedulable':false}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "two-zones", placed, NULL));
    capfx_close(&f);
}

static bool condition_reason_fn(const json_t *obj, const void *arg)
{
    /* arg: "Type=Reason" */
    const char *eq = strchr(arg, '=');
    char type[64];
    const json_t *c;

    snprintf(type, sizeof(type), "%.*s", (int)(eq - (const char *)arg), (const char *)arg);
    c = obj ? cap_condition_find_test(kf_json_path(obj, "status.conditions"), type) : NULL;
    return c && kf_streq(kf_json_str(c, "reason", NULL), eq + 1);
}

static bool pool_clusters_are(const json_t *obj, const void *arg)
{
    return obj && kf_json_int(obj, "status.clusters", -1) == (json_int_t) * (const size_t *)arg;
}

static void test_ipam_persisted_rebuilt_released(void **state)
{
    static const char *const units[] = { "u1" };
    struct capfx f;
    json_t *a, *b, *pool;
    char pod_a[64], pod_b[64];
    size_t two = 2, one = 1;

    (void)state;
    start_fleet(&f, units, 1);
    cluster(&f, "a", "'expectedNodes':100");
    assert_true(capfx_wait(&f, GC_KIND, "a", placed, NULL));
    assert_true(capfx_wait(&f, &kf_kind_ippool, "vpc-1", pool_clusters_are, &one));
    a = capfx_get(&f, GC_KIND, "a");
    snprintf(pod_a, sizeof(pod_a), "%s", kf_json_str(a, "status.network.podCIDR", ""));
    assert_string_equal(kf_json_str(a, "status.network.ipPool", ""), "vpc-1");

    /* restart: the allocator is rebuilt from the IPPool, not from memory */
    capfx_start(&f);
    renew_all(&f);
    cluster(&f, "b", "'expectedNodes':100");
    assert_true(capfx_wait(&f, GC_KIND, "b", placed, NULL));
    b = capfx_get(&f, GC_KIND, "b");
    snprintf(pod_b, sizeof(pod_b), "%s", kf_json_str(b, "status.network.podCIDR", ""));
    assert_string_not_equal(pod_a, pod_b);
    {
        struct kf_cidr x, y;

        assert_int_equal(kf_cidr_parse(pod_a, &x, NULL), 0);
        assert_int_equal(kf_cidr_parse(pod_b, &y, NULL), 0);
        assert_false(kf_cidr_overlaps(&x, &y));
    }
    assert_true(capfx_wait(&f, &kf_kind_ippool, "vpc-1", pool_clusters_are, &two));
    pool = capfx_get(&f, &kf_kind_ippool, "vpc-1");
    assert_true(kf_json_num(pool, "status.utilization", 0) > 0);
    json_decref(pool);

    /* delete a: its ranges are released (finalizer) and reused */
    assert_int_equal(kf_registry_delete(f.reg, GC_KIND, "a", 0, NULL, NULL), 0);
    assert_true(capfx_wait(&f, GC_KIND, "a", is_absent, NULL));
    assert_true(capfx_wait(&f, &kf_kind_ippool, "vpc-1", pool_clusters_are, &one));
    cluster(&f, "c", "'expectedNodes':100");
    assert_true(capfx_wait(&f, GC_KIND, "c", placed, NULL));
    /* no room in the pool: Pending, with what is missing */
    cluster(&f, "too-big", "'expectedNodes':5000");
    assert_true(capfx_wait(&f, GC_KIND, "too-big", pending_with,
                           "vpc-1 has no free /11 for the pods of cluster too-big"));
    assert_true(capfx_wait(&f, GC_KIND, "too-big", condition_reason_fn, "Scheduled=NoIPRange"));
    {
        json_t *c = NULL;
        char want[96];

        snprintf(want, sizeof(want), "status.network.podCIDR=%s", pod_a);
        assert_true(capfx_wait(&f, GC_KIND, "c", has_path_str, want));
        c = capfx_get(&f, GC_KIND, "c");
        json_decref(c);
    }
    /* a's members are gone */
    {
        json_t *m = capfx_get(&f, &kf_kind_controlplanemember, "a-etcd-0");

        assert_null(m);
    }
    json_decref(a);
    json_decref(b);
    capfx_close(&f);
}

static bool placed_on(const json_t *obj, const void *arg)
{
    return placed(obj, NULL) && kf_streq(kf_json_str(obj, "status.effective.version", NULL), arg);
}

/* A new Template or Profile default changes new clusters only: a placed
 * cluster keeps the version it runs until its own spec.version changes. */
static void test_defaults_never_reversion(void **state)
{
    static const char *const units[] = { "u1" };
    struct capfx f;
    json_t *gc;

    (void)state;
    start_fleet(&f, units, 1);
    capfx_create(&f, &kf_kind_template,
                 "{'metadata':{'name':'web'},'spec':{'profile':'standard','version':'1.36'}}");
    cluster(&f, "old", "'template':'web'");
    assert_true(capfx_wait(&f, GC_KIND, "old", placed_on, "1.36"));
    capfx_patch(&f, &kf_kind_template, "web", "{'spec':{'version':'1.37'}}", false);
    capfx_patch(&f, &kf_kind_profile, "standard", "{'spec':{'defaultVersion':'1.37'}}", false);
    cluster(&f, "new", "'template':'web'");
    assert_true(capfx_wait(&f, GC_KIND, "new", placed_on, "1.37"));
    gc = capfx_get(&f, GC_KIND, "old");
    assert_string_equal(kf_json_str(gc, "status.effective.version", ""), "1.36");
    assert_string_equal(kf_json_str(gc, "status.version", ""), "1.36");
    json_decref(gc);
    /* its own spec.version moves it */
    capfx_patch(&f, GC_KIND, "old", "{'spec':{'version':'1.37'}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "old", placed_on, "1.37"));
    gc = capfx_get(&f, GC_KIND, "old");
    /* status.version is the upgrade engine's, not placement's */
    assert_string_equal(kf_json_str(gc, "status.version", ""), "1.36");
    json_decref(gc);
    capfx_close(&f);
}

static void test_effective_settings(void **state)
{
    static const char *const units[] = { "u1" };
    struct capfx f;
    json_t *gc;

    (void)state;
    start_fleet(&f, units, 1);
    capfx_create(&f, &kf_kind_template,
                 "{'metadata':{'name':'prod'},'spec':{'profile':'standard','version':'1.37',"
                 "'expectedNodes':120,'compliance':['gdpr'],'network':{'maxPodsPerNode':64},"
                 "'flags':{'kube-apiserver.max-requests-inflight':'600'},"
                 "'maintenanceWindow':{'start':'02:00','duration':'4h'}}}");
    cluster(&f, "p1", "'template':'prod','flags':{'kube-apiserver.audit-log-maxage':'7'}");
    assert_true(capfx_wait(&f, GC_KIND, "p1", placed, NULL));
    gc = capfx_get(&f, GC_KIND, "p1");
    /* template over profile, spec over template */
    assert_string_equal(kf_json_str(gc, "status.effective.template", ""), "prod");
    assert_string_equal(kf_json_str(gc, "status.effective.version", ""), "1.37");
    assert_int_equal(kf_json_int(gc, "status.effective.expectedNodes", 0), 120);
    assert_string_equal(kf_json_str(gc, "status.grade", ""), "G2");
    assert_int_equal(kf_json_int(gc, "status.effective.network.maxPodsPerNode", 0), 64);
    {
        json_t *flags = kf_json_path(gc, "status.effective.flags");

        assert_string_equal(
            json_string_value(json_object_get(flags, "kube-apiserver.max-requests-inflight")),
            "600");
        assert_string_equal(
            json_string_value(json_object_get(flags, "kube-apiserver.audit-log-maxage")), "7");
        assert_string_equal(json_string_value(json_object_get(
                                flags, "kube-controller-manager.node-monitor-grace-period")),
                            "40s"); /* from the profile */
    }
    assert_true(cap_str_in_test(kf_json_path(gc, "status.effective.compliance"), "gdpr"));
    assert_string_equal(kf_json_str(gc, "status.effective.maintenanceWindow.start", ""), "02:00");
    assert_string_equal(kf_json_str(gc, "status.effective.requests.cpu", ""), "8");
    json_decref(gc);

    /* unknown template, unsupported version: Pending with the reason */
    cluster(&f, "p2", "'template':'nope'");
    assert_true(capfx_wait(&f, GC_KIND, "p2", pending_with, "template \"nope\" does not exist"));
    {
        /* a profile stored while the catalog still ran its versions (admission
         * refuses them now): its clusters wait with the reason */
        char *key = kf_obj_prefix(&kf_kind_profile), *full = kf_xasprintf("%slegacy", key);
        const char *text = "{\"apiVersion\":\"kfleet.io/v1\",\"kind\":\"Profile\","
                           "\"metadata\":{\"name\":\"legacy\",\"uid\":\"u-legacy\"},"
                           "\"spec\":{\"versions\":[\"1.31\"]}}";

        assert_int_equal(kf_store_put(f.store, full, text, strlen(text), 0, NULL), 0);
        free(key);
        free(full);
    }
    cluster(&f, "p3", "'profile':'legacy','version':'1.37'");
    assert_true(capfx_wait(&f, GC_KIND, "p3", pending_with,
                           "version 1.37 is not supported by profile legacy"));
    capfx_create(&f, &kf_kind_template,
                 "{'metadata':{'name':'nope'},'spec':{'profile':'serverless'}}");
    assert_true(capfx_wait(&f, GC_KIND, "p2", placed, NULL));
    gc = capfx_get(&f, GC_KIND, "p2");
    /* serverless: three apiservers at G0, a virtual-kubelet pair */
    assert_int_equal(kf_json_int(gc, "status.members.desired", 0), 3 + 3 + 2 + 2 + 2);
    json_decref(gc);
    capfx_close(&f);
}

static bool grade_is(const json_t *obj, const void *arg)
{
    return obj && kf_streq(kf_json_str(obj, "status.grade", NULL), arg);
}

static void mark_members_ready(struct capfx *f, const char *cluster)
{
    json_t *items = NULL, *m;
    size_t i;

    assert_int_equal(
        kf_registry_list(f->reg, &kf_kind_controlplanemember, NULL, &items, NULL, NULL, NULL), 0);
    json_array_foreach(items, i, m) if (kf_streq(kf_json_str(m, "spec.cluster", NULL), cluster))
        capfx_patch(f, &kf_kind_controlplanemember, kf_obj_name(m),
                    "{'status':{'phase':'Running','ready':true}}", true);
    json_decref(items);
}

/* Up moves after their hold, at most max_in_flight at once; a move is in
 * flight until the new members are Ready; down moves wait for the
 * maintenance window and use the hysteresis band. */
static void test_grade_changes(void **state)
{
    static const char *const units[] = { "u1" };
    struct capfx f;
    json_t *gc;

    (void)state;
    capfx_open(&f);
    f.opts.host_grace_ms = 600000;
    f.opts.shift.up_hold_ms = 0;
    f.opts.shift.max_in_flight = 1;
    capfx_start(&f);
    fleet(&f, units, 1, 3, 64, 256);
    renew_all(&f);
    cluster(&f, "g1", "'expectedNodes':50");
    cluster(&f, "g2", "'expectedNodes':50");
    assert_true(capfx_wait(&f, GC_KIND, "g1", placed, NULL));
    assert_true(capfx_wait(&f, GC_KIND, "g2", placed, NULL));
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);

    /* both grow past G1's bound: one moves, the other waits for a slot */
    capfx_patch(&f, GC_KIND, "g1", "{'spec':{'expectedNodes':400}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "g1", grade_is, "G3"));
    capfx_patch(&f, GC_KIND, "g2", "{'spec':{'expectedNodes':400}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "g2", condition_reason_fn, "GradeChange=WaitingForSlot"));
    gc = capfx_get(&f, GC_KIND, "g2");
    assert_string_equal(kf_json_str(gc, "status.grade", ""), "G1");
    json_decref(gc);
    gc = capfx_get(&f, GC_KIND, "g1");
    assert_true(condition_reason_fn(gc, "GradeChanging=Changing"));
    /* G3 has three apiservers: the third went to the zone without one */
    assert_int_equal(kf_json_int(gc, "status.members.desired", 0), 11);
    json_decref(gc);
    {
        json_t *m = NULL;

        assert_true(capfx_wait(&f, &kf_kind_controlplanemember, "g1-kube-apiserver-2", has_path_str,
                               "spec.component=kube-apiserver"));
        m = capfx_get(&f, &kf_kind_controlplanemember, "g1-kube-apiserver-2");
        assert_string_equal(kf_json_str(m, "spec.resources.requests.cpu", ""), "2700m");
        json_decref(m);
    }

    /* g1's new members become Ready: its change is done, g2's may start */
    mark_members_ready(&f, "g1");
    assert_true(capfx_wait(&f, GC_KIND, "g1", condition_reason_fn, "GradeChanging=Completed"));
    assert_true(capfx_wait(&f, GC_KIND, "g2", grade_is, "G3"));

    /* down: inside the band (300 > 0.7 x 250) it stays; below it, it waits
     * for the window (the default hold is 24 h) */
    mark_members_ready(&f, "g2");
    capfx_patch(&f, GC_KIND, "g2", "{'spec':{'expectedNodes':300}}", false);
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    gc = capfx_get(&f, GC_KIND, "g2");
    assert_string_equal(kf_json_str(gc, "status.grade", ""), "G3");
    assert_null(kf_json_path(gc, "status.gradeShift"));
    json_decref(gc);
    capfx_patch(&f, GC_KIND, "g2", "{'spec':{'expectedNodes':50}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "g2", condition_reason_fn, "GradeChange=Waiting"));
    gc = capfx_get(&f, GC_KIND, "g2");
    assert_string_equal(kf_json_str(gc, "status.grade", ""), "G3");
    assert_string_equal(kf_json_str(gc, "status.gradeShift.target", ""), "G1");
    json_decref(gc);

    /* an explicit grade wins at once (still under the fleet limit) */
    capfx_patch(&f, GC_KIND, "g2", "{'spec':{'grade':'G2'}}", false);
    assert_true(capfx_wait(&f, GC_KIND, "g2", grade_is, "G2"));
    capfx_close(&f);
}

static bool above_water(const json_t *obj, const void *arg)
{
    return obj && json_is_boolean(kf_json_path(obj, "status.aboveWaterLevel")) &&
           kf_json_bool(obj, "status.aboveWaterLevel", false) == *(const bool *)arg;
}

static bool clusters_are(const json_t *obj, const void *arg)
{
    return obj && kf_json_int(obj, "status.clusters", -1) == *(const int *)arg &&
           kf_json_path(obj, "status.conditions");
}

static void test_unit_status(void **state)
{
    static const char *const units[] = { "u1" };
    struct capfx f;
    json_t *u;
    int three = 3;

    (void)state;
    capfx_open(&f);
    f.opts.host_grace_ms = 300;
    capfx_start(&f);
    fleet(&f, units, 1, 2, 32, 128);
    for (int i = 0; i < 3; i++) {
        char name[16];

        snprintf(name, sizeof(name), "c%d", i);
        cluster(&f, name, "'expectedNodes':200"); /* G2: 8 CPU each */
    }
    for (int i = 0; i < 20; i++) {
        renew_all(&f);
        sleep_ms(100);
    }
    assert_true(capfx_wait(&f, &kf_kind_unit, "u1", clusters_are, &three));
    u = capfx_get(&f, &kf_kind_unit, "u1");
    /* 6 hosts x 32 CPU; 3 x 8 CPU placed */
    assert_string_equal(kf_json_str(u, "status.allocatable.cpu", ""), "192");
    assert_string_equal(kf_json_str(u, "status.allocated.cpu", ""), "24");
    assert_true(kf_json_num(u, "status.waterLevel.cpu", 0) == 0.125);
    assert_int_equal(kf_json_int(u, "status.clustersByGrade.G2", 0), 3);
    assert_int_equal(kf_json_int(u, "status.readyHosts", 0), 6);
    assert_int_equal(kf_json_int(u, "status.canTake.G2", 0), 11);
    assert_false(kf_json_bool(u, "status.aboveWaterLevel", true));
    json_decref(u);

    /* four hosts stop beating: 64 CPU left, 24 allocated = 37.5 %; with two
     * more G2-sized demands on a stricter mark it goes above */
    capfx_patch(&f, &kf_kind_unit, "u1", "{'spec':{'waterLevel':0.3}}", false);
    /* u1-a0 and u1-b0 go on beating until the unit's status is read (its
     * status is written a second after the last change it sees, so how
     * long that takes depends on when the other four go NotReady) */
    for (int waited = 0; waited < WAIT_MS; waited += 50) {
        kf_lease_renew(f.leases, "u1-a0", kf_now_ms());
        kf_lease_renew(f.leases, "u1-b0", kf_now_ms());
        sleep_ms(50);
        if (capfx_holds(&f, &kf_kind_unit, "u1", above_water, &T))
            break;
    }
    kf_lease_renew(f.leases, "u1-a0", kf_now_ms());
    kf_lease_renew(f.leases, "u1-b0", kf_now_ms());
    assert_true(capfx_wait(&f, &kf_kind_unit, "u1", above_water, &T));
    u = capfx_get(&f, &kf_kind_unit, "u1");
    assert_int_equal(kf_json_int(u, "status.readyHosts", 0), 2);
    assert_int_equal(kf_json_int(u, "status.hostsNeeded", 0), 1);
    {
        const json_t *c =
            cap_condition_find_test(kf_json_path(u, "status.conditions"), "AboveWaterLevel");
        const json_t *g =
            cap_condition_find_test(kf_json_path(u, "status.conditions"), "GradeHeadroom");

        assert_string_equal(kf_json_str(c, "status", ""), "True");
        assert_non_null(strstr(kf_json_str(c, "message", ""), "above the mark by"));
        assert_string_equal(kf_json_str(g, "status", ""), "False");
        assert_non_null(strstr(kf_json_str(g, "message", ""),
                               "cannot take another cluster of grade G0 (needs "));
        assert_non_null(strstr(kf_json_str(g, "message", ""), "more host of 32 CPU / 128 GiB"));
    }
    json_decref(u);
    {
        struct kf_strbuf reasons = KF_STRBUF_INIT;

        kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
        capfx_event_reasons(&f, "Unit", "u1", &reasons);
        assert_non_null(strstr(reasons.buf, "AboveWaterLevel"));
        kf_strbuf_release(&reasons);
    }
    capfx_close(&f);
}

/* How many times the GuestCluster name was written since the watch
 * opened (the events read so far are counted per name). */
static size_t count_writes(struct kf_watch *w, const char *name)
{
    static char names[256][32];
    static size_t counts[256], n;
    struct kf_event *ev;

    while (kf_watch_next(w, &ev) == 1) {
        const char *key = strrchr(ev->kv.key, '/') + 1;
        size_t i;

        for (i = 0; i < n && strcmp(names[i], key) != 0; i++)
            ;
        if (i == n && n < 256)
            snprintf(names[n++], sizeof(names[0]), "%s", key);
        if (i < 256)
            counts[i]++;
        kf_event_unref(ev);
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return counts[i];
    return 0;
}

/* New clusters that arrive together are decided as a batch against one
 * snapshot of the model (here all of them: they are there before the
 * controllers start, as after a restart with a backlog): each decision is
 * booked before the next, so no unit goes above its mark and no two
 * clusters share a range; each placed cluster is written once (finalizer
 * and status together) and has exactly its members, which its hosts'
 * status counts; those that do not fit stay Pending with the reason; a
 * batch that large records one Event a unit. */
static void test_batch_places_each_once(void **state)
{
    static const char *const units[] = { "u1", "u2", "u3" };
    enum { N = 50 };
    struct capfx f;
    struct kf_watch *w = NULL;
    json_t *members = NULL, *m, *us = NULL, *u;
    char pods[N][KF_CIDR_STRLEN], name[32];
    size_t placed_n = 0, pending_n = 0, i, per[N] = { 0 };
    int in_unit[3] = { 0, 0, 0 };
    struct kf_store *guard = NULL;
    int64_t grev = 0, revs[N * 10];
    size_t nrevs = 0;

    (void)state;
    capfx_open(&f);
    /* writes go through a leader's fenced handle, as kfleetd's on etcd do:
     * one op of every transaction is the guard's */
    assert_int_equal(kf_store_put(f.store, "/_test/leader", "x", 1, 0, &grev), 0);
    assert_int_equal(kf_store_guard_new(f.store, "/_test/leader", grev, &guard), 0);
    kf_registry_free(f.reg);
    f.reg = kf_registry_new(guard);
    f.opts.host_grace_ms = 600000;
    capfx_start(&f);
    fleet(&f, units, 3, 1, 32, 128); /* 3 units of 3 x 32 CPU: about 14 G1 each under the mark */
    renew_all(&f);
    for (int h = 0; h < 3; h++) {
        snprintf(name, sizeof(name), "u%d-a0", h + 1);
        assert_true(capfx_wait(&f, &kf_kind_host, name, ready_is, &T));
    }
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    kf_ctrl_manager_free(f.m); /* kfleetd stopped: the creates pile up */
    f.m = NULL;
    for (int c = 0; c < N; c++) {
        snprintf(name, sizeof(name), "c%02d", c);
        cluster(&f, name, "'expectedNodes':50");
    }
    assert_int_equal(
        kf_watch_open(f.store, "/guestclusters/", kf_store_rev(f.store), NULL, NULL, &w), 0);
    capfx_start(&f);
    renew_all(&f);
    for (int c = 0; c < N; c++) {
        snprintf(name, sizeof(name), "c%02d", c);
        assert_true(capfx_wait(&f, GC_KIND, name, placed_or_pending, NULL));
    }
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);

    for (int c = 0; c < N; c++) {
        json_t *gc;

        snprintf(name, sizeof(name), "c%02d", c);
        gc = capfx_get(&f, GC_KIND, name);
        if (kf_json_str(gc, "status.unit", NULL)) {
            const json_t *mb =
                cap_condition_find_test(kf_json_path(gc, "status.conditions"), "MembersBound");

            assert_true(kf_obj_has_finalizer(gc, KF_FINALIZER_PLACEMENT));
            assert_string_equal(kf_json_str(mb, "status", ""), "True");
            snprintf(pods[placed_n], sizeof(pods[0]), "%s",
                     kf_json_str(gc, "status.network.podCIDR", ""));
            for (size_t j = 0; j < placed_n; j++)
                assert_string_not_equal(pods[j], pods[placed_n]);
            placed_n++;
            in_unit[kf_json_str(gc, "status.unit", "u1")[1] - '1']++;
            assert_int_equal(count_writes(w, name), 1); /* finalizer and status at once */
        } else {
            assert_true(pending_with(gc, "has headroom"));
            pending_n++;
        }
        json_decref(gc);
    }
    assert_true(placed_n > 32);  /* the units took what fits */
    assert_true(pending_n >= 1); /* and no more */

    /* every placed cluster has exactly its 10 members, no two for one place */
    assert_int_equal(
        kf_registry_list(f.reg, &kf_kind_controlplanemember, NULL, &members, NULL, NULL, NULL), 0);
    json_array_foreach(members, i, m)
    {
        int c = atoi_test(kf_json_str(m, "spec.cluster", "c-1") + 1);
        size_t j;

        assert_true(c >= 0 && c < N);
        per[c]++;
        for (j = 0; j < nrevs && revs[j] != kf_obj_rv(m); j++)
            ;
        if (j == nrevs && nrevs < N * 10)
            revs[nrevs++] = kf_obj_rv(m);
    }
    assert_int_equal(json_array_size(members), placed_n * 10);
    /* created many clusters' members to a transaction (127 and the guard) */
    assert_true(nrevs <= (placed_n * 10 + 126) / 127);
    for (int c = 0; c < N; c++)
        assert_true(per[c] == 0 || per[c] == 10);

    /* no unit went above its mark: the batch booked each decision */
    assert_true(capfx_wait(&f, &kf_kind_unit, "u1", clusters_are, &in_unit[0]));
    assert_true(capfx_wait(&f, &kf_kind_unit, "u2", clusters_are, &in_unit[1]));
    assert_true(capfx_wait(&f, &kf_kind_unit, "u3", clusters_are, &in_unit[2]));
    assert_int_equal(kf_registry_list(f.reg, &kf_kind_unit, NULL, &us, NULL, NULL, NULL), 0);
    json_array_foreach(us, i, u)
    {
        /* three decimals in the status */
        assert_true(kf_json_num(u, "status.waterLevel.cpu", 1) <= 0.6005);
        assert_true(kf_json_num(u, "status.waterLevel.memory", 1) <= 0.6005);
    }
    json_decref(us);

    /* each host's status counts the members bound to it */
    assert_int_equal(kf_registry_list(f.reg, &kf_kind_host, NULL, &us, NULL, NULL, NULL), 0);
    json_array_foreach(us, i, u)
    {
        int bound = 0;
        size_t j;

        json_array_foreach(members, j, m) bound +=
            kf_streq(kf_json_str(m, "spec.host", ""), kf_obj_name(u));
        assert_true(capfx_wait(&f, &kf_kind_host, kf_obj_name(u), members_are, &bound));
    }
    json_decref(us);
    json_decref(members);

    /* more than 32 placed at once: one Event a unit, not one a cluster
     * (written a second after the unit's last batch) */
    for (int k = 0; k < 3; k++) {
        struct kf_strbuf reasons = KF_STRBUF_INIT;

        for (int waited = 0; waited < WAIT_MS && !strstr(reasons.buf, "ClustersScheduled");
             waited += 50) {
            kf_strbuf_reset(&reasons);
            capfx_event_reasons(&f, "Unit", units[k], &reasons);
            if (!strstr(reasons.buf, "ClustersScheduled"))
                sleep_ms(50);
        }
        assert_non_null(strstr(reasons.buf, "ClustersScheduled"));
        kf_strbuf_release(&reasons);
    }
    kf_watch_close(w);
    kf_ctrl_manager_free(f.m);
    f.m = NULL;
    kf_registry_free(f.reg);
    f.reg = kf_registry_new(f.store);
    kf_store_close(guard);
    capfx_close(&f);
}

static void test_explain_and_plan(void **state)
{
    static const char *const units[] = { "u1", "u2" };
    struct capfx f;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *out = NULL, *body;
    struct kf_ctrl *pc;

    (void)state;
    start_fleet(&f, units, 2);
    capfx_patch(&f, &kf_kind_unit, "u2", "{'spec':{'cordoned':true}}", false);
    cluster(&f, "x", "'expectedNodes':50");
    assert_true(capfx_wait(&f, GC_KIND, "x", placed, NULL));
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    pc = find_placement(&f);
    assert_int_equal(kf_ctrl_placement_explain(kf_ctrl_data(pc), "x", &out, &err), 0);
    assert_string_equal(kf_json_str(out, "chosen", ""), "u1");
    assert_string_equal(kf_json_str(out, "placedIn", ""), "u1");
    assert_int_equal(json_array_size(json_object_get(out, "units")), 2);
    {
        json_t *v = json_array_get(json_object_get(out, "units"), 1);

        assert_string_equal(kf_json_str(v, "unit", ""), "u2");
        assert_string_equal(kf_json_str(v, "verdict", ""), "Cordon");
        assert_string_equal(kf_json_str(v, "reason", ""), "unit is cordoned");
        v = json_array_get(json_object_get(out, "units"), 0);
        assert_true(kf_json_num(v, "scores.spread.score", 0) > 90);
        assert_int_equal(kf_json_int(v, "scores.spread.weight", 0), 3);
    }
    assert_non_null(strstr(kf_json_str(out, "text", ""), "u2    Cordon"));
    assert_non_null(strstr(kf_json_str(out, "text", ""), "etcd-0 -> u1-"));
    json_decref(out);
    assert_int_equal(kf_ctrl_placement_explain(kf_ctrl_data(pc), "ghost", &out, &err),
                     -KF_ENOTFOUND);

    body = J("{'region':'r','add':['30xG1',{'grade':'G3','count':4}],'hostCPU':'32',"
             "'hostMemory':'128Gi'}");
    assert_int_equal(kf_ctrl_placement_plan(kf_ctrl_data(pc), body, &out, &err), 0);
    assert_int_equal(kf_json_int(out, "demanded", 0), 34);
    assert_true(kf_json_int(out, "absorbedExisting", 0) > 0);
    assert_true(kf_json_int(out, "absorbedExisting", 0) + kf_json_int(out, "absorbedNew", 0) == 34);
    assert_non_null(strstr(kf_json_str(out, "text", ""), "region r: demand 4 x G3 + 30 x G1"));
    json_decref(out);
    json_decref(body);
    body = J("{'region':'r','add':['lots of G1']}");
    assert_int_equal(kf_ctrl_placement_plan(kf_ctrl_data(pc), body, &out, &err), -KF_EBADREQUEST);
    assert_non_null(strstr(err.buf, "add[0]: expected \"COUNTxGRADE\""));
    json_decref(body);
    kf_strbuf_release(&err);
    capfx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_places_and_spreads_members),
        cmocka_unit_test(test_filters_and_pending_reasons),
        cmocka_unit_test(test_ipam_persisted_rebuilt_released),
        cmocka_unit_test(test_effective_settings),
        cmocka_unit_test(test_defaults_never_reversion),
        cmocka_unit_test(test_grade_changes),
        cmocka_unit_test(test_unit_status),
        cmocka_unit_test(test_explain_and_plan),
        cmocka_unit_test(test_batch_places_each_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
