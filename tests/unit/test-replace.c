/* test-replace.c: the decisions of member replacement
 * (docs/internals/replacement.md): which host a member of a lost host goes
 * to (kf_place_replace_host), which lost members move now
 * (kf_replace_plan: one etcd member of a cluster at a time, quorum kept),
 * the grace (kf_replace_notready_ms), the lifecycle's rule of one restart
 * per component (kf_replace_hold), the joining member's command line
 * (--initial-cluster-state existing) and the agent's reading of a
 * membership change request; and live migration between units: which
 * member moves next (kf_migrate_plan: one at a time, etcd first, only
 * while every member serves) and when a migration counts as under way
 * (kf_migrate_active). */
#include "fleet-test.h"

#include "kfleet/backup.h"
#include "kfleet/catalog.h"
#include "kfleet/placement.h"
#include "agent/agent.h"
#include "controllers/ctrl-lifecycle.h"
#include "controllers/ctrl-replace.h"

#define GIB (INT64_C(1) << 30)

/* A unit of zones a, b, c with hosts a1 a2 b1 c1 (8 CPU, 32 GiB each). */
struct unit {
    const char *zones[3];
    struct kf_place_host hosts[4];
    struct kf_place_unit u;
    struct kf_place_policy pol;
};

static void unit_init(struct unit *t)
{
    static const char *const names[] = { "a1", "a2", "b1", "c1" };
    static const unsigned zone[] = { 0, 0, 1, 2 };

    memset(t, 0, sizeof(*t));
    t->zones[0] = "a";
    t->zones[1] = "b";
    t->zones[2] = "c";
    for (int i = 0; i < 4; i++)
        t->hosts[i] = (struct kf_place_host){
            .name = names[i], .zone = zone[i], .capacity = { 8000, 32 * GIB }, .ready = true
        };
    t->u = (struct kf_place_unit){
        .name = "u1", .zones = t->zones, .n_zones = 3, .hosts = t->hosts, .n_hosts = 4
    };
    kf_place_policy_default(&t->pol);
}

static const char *pick(struct unit *t, const struct kf_place_replace *r, struct kf_strbuf *why)
{
    size_t at = SIZE_MAX;

    kf_strbuf_reset(why);
    if (kf_place_replace_host(&t->u, &t->pol, r, &at, why) < 0)
        return NULL;
    return t->hosts[at].name;
}

static void test_host_choice(void **state)
{
    struct unit t;
    struct kf_strbuf why = KF_STRBUF_INIT;
    /* etcd-0 on b1, etcd-2 on c1 stay; etcd-1 was on a1 */
    struct kf_place_peer peers[] = { { 2, true }, { 3, true } };
    struct kf_place_replace r = { .component = "etcd",
                                  .req = { 200, GIB },
                                  .zone = 0,
                                  .lost_host = 0,
                                  .peers = peers,
                                  .n_peers = 2 };

    (void)state;
    unit_init(&t);
    t.hosts[0].ready = false;
    /* the same zone first: a2, not the emptier-looking b1 or c1 */
    assert_string_equal(pick(&t, &r, &why), "a2");
    assert_non_null(strstr(why.buf, "own zone"));

    /* a2 full (above the host mark 85 %): another zone; b and c hold one
     * etcd member each, so zone order decides */
    t.hosts[1].allocated = (struct kf_res){ 7000, 4 * GIB };
    assert_string_equal(pick(&t, &r, &why), "b1");
    /* with c1's member an apiserver, zone c has no etcd member: c1 keeps
     * one per zone */
    peers[1].same_component = false;
    assert_string_equal(pick(&t, &r, &why), "c1");
    assert_non_null(strstr(why.buf, "a zone without one"));
    peers[1].same_component = true;

    /* unschedulable and NotReady hosts are never chosen */
    t.hosts[1].allocated = (struct kf_res){ 0, 0 };
    t.hosts[1].unschedulable = true;
    assert_string_equal(pick(&t, &r, &why), "b1");
    t.hosts[2].ready = false;
    assert_string_equal(pick(&t, &r, &why), "c1");

    /* the release: an apiserver of 1.37 needs a host holding it */
    t.hosts[2].ready = true;
    t.hosts[3].k8s_reported = true;
    t.hosts[3].k8s_minors = UINT64_C(1) << 36;
    t.hosts[2].k8s_reported = true;
    t.hosts[2].k8s_minors = UINT64_C(1) << 37;
    r.component = "kube-apiserver";
    r.k8s_minor = 37;
    assert_string_equal(pick(&t, &r, &why), "b1");
    t.hosts[2].k8s_minors = UINT64_C(1) << 36;
    assert_null(pick(&t, &r, &why));
    assert_non_null(strstr(why.buf, "no Ready, schedulable host of unit u1 can take "
                                    "kube-apiserver"));
    assert_non_null(strstr(why.buf, "holding Kubernetes 1.37"));
    assert_non_null(strstr(why.buf, "2 without the release"));
    kf_strbuf_release(&why);
}

static void test_host_choice_anti_affinity(void **state)
{
    struct unit t;
    struct kf_strbuf why = KF_STRBUF_INIT;
    struct kf_place_peer peers[] = { { 1, false } }; /* a2 holds a member of the cluster */
    struct kf_place_replace r = { .component = "kube-scheduler",
                                  .req = { 100, GIB },
                                  .zone = 0,
                                  .lost_host = SIZE_MAX,
                                  .peers = peers,
                                  .n_peers = 1 };
    (void)state;
    unit_init(&t);
    /* both hosts of zone a are candidates; a1 has none of the cluster */
    assert_string_equal(pick(&t, &r, &why), "a1");
    /* with a1 busier than the mark allows, a2 */
    t.hosts[0].allocated = (struct kf_res){ 6900, GIB };
    assert_string_equal(pick(&t, &r, &why), "a2");
    kf_strbuf_release(&why);
}

static void plan(const struct kf_replace_member *ms, size_t n, struct kf_replace_plan *p)
{
    kf_replace_plan(ms, n, p);
}

static void test_plan(void **state)
{
    struct kf_replace_member ms[] = {
        { "w-etcd-0", "etcd", false, true, false },
        { "w-etcd-1", "etcd", true, false, false },
        { "w-etcd-2", "etcd", false, true, false },
        { "w-kube-apiserver-0", "kube-apiserver", true, false, false },
        { "w-kube-apiserver-1", "kube-apiserver", false, true, false },
    };
    struct kf_replace_plan p;

    (void)state;
    /* one etcd member and the apiserver move */
    plan(ms, 5, &p);
    assert_int_equal(p.n_start, 2);
    assert_int_equal(p.start[0], 1);
    assert_int_equal(p.start[1], 3);
    assert_null(p.blocked);

    /* an etcd member is moving: another lost one waits its turn */
    ms[1].moving = true;
    ms[2].lost = true;
    ms[2].settled = false;
    ms[3].moving = true;
    plan(ms, 5, &p);
    assert_int_equal(p.n_start, 0);
    assert_non_null(p.blocked);
    assert_non_null(strstr(p.blocked, "one at a time"));
    assert_int_equal(p.blocked_member, 2);

    /* two of three etcd members lost: a member remove would leave one of
     * two, no quorum: nothing moves, and the plan says why */
    ms[1].moving = false;
    plan(ms, 5, &p);
    assert_int_equal(p.n_start, 0);
    assert_non_null(strstr(p.blocked, "quorum"));

    /* nothing lost: nothing moves */
    for (int i = 0; i < 5; i++)
        ms[i].lost = ms[i].moving = false;
    plan(ms, 5, &p);
    assert_int_equal(p.n_start, 0);
    assert_null(p.blocked);

    /* five members, two lost: after one remove four stay, three healthy:
     * the first moves, the second waits */
    {
        struct kf_replace_member five[] = {
            { "e0", "etcd", true, false, false }, { "e1", "etcd", true, false, false },
            { "e2", "etcd", false, true, false }, { "e3", "etcd", false, true, false },
            { "e4", "etcd", false, true, false },
        };

        plan(five, 5, &p);
        assert_int_equal(p.n_start, 1);
        assert_int_equal(p.start[0], 0);
        assert_non_null(strstr(p.blocked, "one at a time"));
    }
}

static void test_grace(void **state)
{
    json_t *h = J("{'metadata':{'name':'a1'},'status':{'ready':false,"
                  "'lastTransitionTime':'2026-12-07T10:00:00Z'}}");
    int64_t t0 = 0;

    (void)state;
    assert_int_equal(kf_time_parse_rfc3339("2026-12-07T10:00:00Z", &t0), 0);
    assert_int_equal(kf_replace_notready_ms(h, t0 + 4000), 4000);
    /* Ready, no time, or a time in the future: not lost */
    json_object_set_new(kf_json_path(h, "status"), "ready", json_true());
    assert_int_equal(kf_replace_notready_ms(h, t0 + 4000), 0);
    json_object_set_new(kf_json_path(h, "status"), "ready", json_false());
    assert_int_equal(kf_replace_notready_ms(h, t0 - 1000), 0);
    json_object_del(kf_json_path(h, "status"), "lastTransitionTime");
    assert_int_equal(kf_replace_notready_ms(h, t0 + 4000), 0);
    assert_int_equal(kf_replace_notready_ms(NULL, t0), 0);
    json_decref(h);
}

static json_t *member(const char *name, const char *comp, const char *host, bool ready,
                      const char *status_host)
{
    json_t *m = json_pack("{s:{s:s, s:i}, s:{s:s, s:s, s:s}, s:{s:s, s:b, s:s, s:i}}", "metadata",
                          "name", name, "generation", 2, "spec", "component", comp, "host", host,
                          "binary", "/usr/bin/etcd", "status", "phase", ready ? "Ready" : "Backoff",
                          "ready", ready, "host", status_host, "observedGeneration", 2);
    return m;
}

static void test_hold_and_settled(void **state)
{
    json_t *host = J("{'metadata':{'name':'h'},'status':{'ready':true}}");
    json_t *objs[3], *hosts[3] = { host, host, host };
    struct kf_catalog_member cm[3] = { { .component = "etcd" },
                                       { .component = "etcd" },
                                       { .component = "kube-apiserver" } };
    struct lc_view v = { .members = cm, .objs = objs, .n = 3 };
    bool restarted[3] = { false, false, false };

    (void)state;
    objs[0] = member("e0", "etcd", "h", true, "h");
    objs[1] = member("e1", "etcd", "h", true, "h");
    objs[2] = member("a0", "kube-apiserver", "h", true, "h");
    /* everything settled: a change may restart e0 */
    assert_true(kf_replace_settled(objs[0], host));
    assert_false(kf_replace_hold(&v, hosts, 0, restarted));
    /* e1 was restarted in this pass: e0 waits; the apiserver does not */
    restarted[1] = true;
    assert_true(kf_replace_hold(&v, hosts, 0, restarted));
    assert_false(kf_replace_hold(&v, hosts, 2, restarted));
    restarted[1] = false;
    /* e1's status comes from another host (before a rebind): not settled */
    json_object_set_new(kf_json_path(objs[1], "status"), "host", json_string("old"));
    assert_false(kf_replace_settled(objs[1], host));
    assert_true(kf_replace_hold(&v, hosts, 0, restarted));
    /* e1 not ready at all: it may change, e0 still waits for it */
    json_object_set_new(kf_json_path(objs[1], "status"), "host", json_string("h"));
    json_object_set_new(kf_json_path(objs[1], "status"), "ready", json_false());
    assert_false(kf_replace_hold(&v, hosts, 1, restarted));
    assert_true(kf_replace_hold(&v, hosts, 0, restarted));
    /* a spec the agent has not reported on yet: not settled */
    json_object_set_new(kf_json_path(objs[2], "metadata"), "generation", json_integer(3));
    assert_false(kf_replace_settled(objs[2], host));
    for (int i = 0; i < 3; i++)
        json_decref(objs[i]);
    json_decref(host);
}

static void test_record_and_join(void **state)
{
    json_t *m = J("{'metadata':{'name':'w-etcd-1','annotations':{'kfleet.io/replacement':"
                  "'{\\'id\\':\\'1\\',\\'step\\':\\'Rebound\\',\\'to\\':\\'a2\\'}'}},"
                  "'spec':{'component':'etcd'}}");
    struct kf_catalog_member cm[2] = {
        { "w-etcd-0", "etcd", 0, "10.0.0.1", NULL, false },
        { "w-etcd-1", "etcd", 1, "10.0.0.2", NULL, true },
    };
    json_t *ports = json_pack("{s:i, s:i, s:i}", "client", 2379, "peer", 2380, "metrics", 2381);
    struct kf_catalog_cluster c = { .name = "w", .version = "1.37", .members = cm, .n_members = 2 };
    struct kf_catalog_rendered rd;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *args;

    (void)state;
    /* waiting while etcd does not know it yet, then joined */
    assert_true(kf_replace_etcd_waiting(m));
    assert_false(kf_replace_joined(m));
    json_object_set_new(kf_json_path(m, "metadata.annotations"), KF_ANN_REPLACEMENT,
                        json_string("{\"id\":\"1\",\"step\":\"Added\"}"));
    assert_false(kf_replace_etcd_waiting(m));
    assert_true(kf_replace_joined(m));
    json_object_set_new(kf_json_path(m, "metadata.annotations"), KF_ANN_REPLACEMENT,
                        json_string("not json"));
    assert_false(kf_replace_joined(m));
    json_decref(m);

    /* the joining member's command line: existing, and every member in
     * --initial-cluster; the other one stays "new" */
    cm[0].ports = cm[1].ports = ports;
    assert_int_equal(kf_catalog_render(&c, 1, &rd, &err), 0);
    args = json_dumps(rd.args, 0);
    assert_non_null(strstr(args, "--initial-cluster-state=existing"));
    assert_non_null(strstr(args, "w-etcd-0=https://10.0.0.1:2380,w-etcd-1=https://10.0.0.2:2380"));
    free(args);
    kf_catalog_rendered_release(&rd);
    assert_int_equal(kf_catalog_render(&c, 0, &rd, &err), 0);
    args = json_dumps(rd.args, 0);
    assert_non_null(strstr(args, "--initial-cluster-state=new"));
    free(args);
    kf_catalog_rendered_release(&rd);
    json_decref(ports);
    kf_strbuf_release(&err);
}

static void test_change_request(void **state)
{
    struct kf_agent_member_change c;

    (void)state;
    assert_int_equal(kf_agent_member_change_parse("17-1 https://10.0.0.1:2380 w-etcd-1 "
                                                  "https://10.0.0.9:2390",
                                                  &c),
                     0);
    assert_string_equal(c.request, "17-1");
    assert_string_equal(c.old_url, "https://10.0.0.1:2380");
    assert_string_equal(c.name, "w-etcd-1");
    assert_string_equal(c.new_url, "https://10.0.0.9:2390");
    assert_int_equal(kf_agent_member_change_parse("17-2 - w-etcd-1 https://10.0.0.9:2390", &c), 0);
    assert_string_equal(c.old_url, "-");
    /* refused: plain http, two spaces, an option smuggled as a name, a
     * comma (a second URL), trailing text */
    assert_int_equal(kf_agent_member_change_parse("1 - w http://10.0.0.9:2390", &c), -EINVAL);
    assert_int_equal(kf_agent_member_change_parse("1  - w https://10.0.0.9:2390", &c), -EINVAL);
    assert_int_equal(kf_agent_member_change_parse("1 - --peer-urls https://a:1", &c), -EINVAL);
    assert_int_equal(kf_agent_member_change_parse("1 - w https://a:1,https://b:2", &c), -EINVAL);
    /* two old URLs (the lost one, one an earlier attempt added) */
    assert_int_equal(kf_agent_member_change_parse("1 https://a:1,https://b:2 w https://c:3", &c),
                     0);
    assert_int_equal(kf_agent_member_change_parse("1 https://a:1, w https://c:3", &c), -EINVAL);
    assert_int_equal(kf_agent_member_change_parse("1 https://a:1,,https://c:3 w https://c:3", &c),
                     -EINVAL);
    /* the same URL old and new: a member back at its old address and port */
    assert_int_equal(kf_agent_member_change_parse("1 https://a:1 w https://a:1", &c), 0);
    assert_int_equal(kf_agent_member_change_parse("1 - w https://a:1 x", &c), -EINVAL);
    assert_int_equal(kf_agent_member_change_parse("abc - w https://a:1", &c), -EINVAL);
    assert_int_equal(kf_agent_member_change_parse(NULL, &c), -EINVAL);
    /* a tab or another control character inside a part is no separator and
     * no part of a URL either (sscanf's %[^ ] took "https://c:3\tx" whole) */
    assert_int_equal(kf_agent_member_change_parse("5 https://a:1 w https://c:3\tx", &c), -EINVAL);
    assert_int_equal(kf_agent_member_change_parse("5 https://a:1\x01 w https://c:3", &c), -EINVAL);
}

/* A cluster of three etcd members, two apiservers, a controller manager
 * and a scheduler, all on unit A and serving. */
static void migrate_cluster(struct kf_migrate_member *ms)
{
    static const char *const names[] = { "w-etcd-0",           "w-etcd-1",
                                         "w-etcd-2",           "w-kube-apiserver-0",
                                         "w-kube-apiserver-1", "w-kube-controller-manager-0",
                                         "w-kube-scheduler-0" };
    static const char *const comps[] = { "etcd",           "etcd",
                                         "etcd",           "kube-apiserver",
                                         "kube-apiserver", "kube-controller-manager",
                                         "kube-scheduler" };

    for (int i = 0; i < 7; i++)
        ms[i] = (struct kf_migrate_member){ names[i], comps[i], false, true, false, false };
}

static void test_migrate_plan(void **state)
{
    struct kf_migrate_member ms[7];
    struct kf_migrate_plan p;
    /* the order the members move in: etcd first, then the apiservers */
    static const int order[] = { 0, 1, 2, 3, 4, 5, 6 };

    (void)state;
    migrate_cluster(ms);
    /* the scheduler listed first still moves after etcd and the apiservers */
    {
        struct kf_migrate_member rev[7];

        for (int i = 0; i < 7; i++)
            rev[i] = ms[6 - i];
        kf_migrate_plan(rev, 7, &p);
        assert_int_equal(p.next, 6); /* w-etcd-0 */
    }
    for (int k = 0; k < 7; k++) {
        kf_migrate_plan(ms, 7, &p);
        assert_int_equal(p.next, order[k]);
        assert_false(p.done);
        assert_null(p.waiting);
        /* the apiservers count as there only once both serve there */
        assert_int_equal(p.apiservers_there, k >= 5);
        /* it moves: nothing else starts meanwhile */
        ms[p.next].moving = true;
        ms[p.next].settled = false;
        kf_migrate_plan(ms, 7, &p);
        assert_int_equal(p.next, -1);
        assert_non_null(strstr(p.waiting, "one member at a time"));
        assert_int_equal(p.waiting_member, order[k]);
        /* bound there, not Ready yet (its record says Done only once it is) */
        ms[order[k]].on_target = true;
        ms[order[k]].moving = false;
        kf_migrate_plan(ms, 7, &p);
        assert_int_equal(p.next, -1);
        assert_non_null(strstr(p.waiting, "not Ready"));
        ms[order[k]].settled = true;
        /* Ready there: the others' restarts for it go first */
        ms[order[k]].just_done = true;
        kf_migrate_plan(ms, 7, &p);
        assert_int_equal(p.next, -1);
        assert_non_null(strstr(p.waiting, "just moved"));
        ms[order[k]].just_done = false;
    }
    kf_migrate_plan(ms, 7, &p);
    assert_true(p.done);
    assert_true(p.apiservers_there);
    assert_int_equal(p.next, -1);

    /* a member that stays and does not serve (another etcd member
     * restarting): nothing moves, so that the quorum never rests on the
     * member that moves */
    migrate_cluster(ms);
    ms[2].settled = false;
    kf_migrate_plan(ms, 7, &p);
    assert_int_equal(p.next, -1);
    assert_int_equal(p.waiting_member, 2);
    /* no members: not done (nothing to say where it runs) */
    kf_migrate_plan(ms, 0, &p);
    assert_false(p.done);
    assert_int_equal(p.next, -1);
}

static void test_migrate_active(void **state)
{
    struct kf_move_req m;
    json_t *gc = J("{'metadata':{'name':'w','annotations':{'kfleet.io/migrate':'17 ua ub'}}}");
    json_t *ann = json_object_get(json_object_get(gc, "metadata"), "annotations");

    (void)state;
    assert_int_equal(kf_migrate_active(gc, &m), 1);
    assert_string_equal(m.id, "17");
    assert_string_equal(m.from, "ua");
    assert_string_equal(m.to, "ub");
    /* done: the id recorded */
    json_object_set_new(ann, "kfleet.io/migrated", json_string("17"));
    assert_int_equal(kf_migrate_active(gc, NULL), 0);
    /* a new request after an old one done */
    json_object_set_new(ann, "kfleet.io/migrate", json_string("18 ub ua"));
    assert_int_equal(kf_migrate_active(gc, &m), 1);
    assert_string_equal(m.to, "ua");
    /* unreadable requests are none */
    json_object_set_new(ann, "kfleet.io/migrate", json_string("x ub ua"));
    assert_int_equal(kf_migrate_active(gc, NULL), 0);
    json_object_set_new(ann, "kfleet.io/migrate", json_string("19 ub"));
    assert_int_equal(kf_migrate_active(gc, NULL), 0);
    json_object_set_new(ann, "kfleet.io/migrate", json_string("19 ub ua extra"));
    assert_int_equal(kf_migrate_active(gc, NULL), 0);
    json_decref(gc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_choice),
        cmocka_unit_test(test_host_choice_anti_affinity),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_grace),
        cmocka_unit_test(test_hold_and_settled),
        cmocka_unit_test(test_record_and_join),
        cmocka_unit_test(test_change_request),
        cmocka_unit_test(test_migrate_plan),
        cmocka_unit_test(test_migrate_active),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
