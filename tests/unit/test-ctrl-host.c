/* test-ctrl-host.c: the host-lifecycle and profiles controllers over the
 * real registry on the memory store, as an operator sees them: a Host is
 * Ready while it heartbeats and NotReady after its grace (with an Event
 * each way and nothing else written while nothing changes), no host flips
 * after a restart before a full grace period, edge hosts get the edge
 * profile's longer grace, labels follow the spec, the default profiles
 * are installed once without overwriting an operator's edits, and members
 * arriving on a host cost it one write of its allocation. */
#include <pthread.h>

#include "capacity-test.h"

#define HOST(name, unit, zone)                                                          \
    "{'apiVersion':'kfleet.io/v1','kind':'Host','metadata':{'name':'" name "'},"        \
    "'spec':{'role':'meta','unit':'" unit "','zone':'" zone "','capacity':{'cpu':'64'," \
    "'memory':'256Gi'},'reserved':{'cpu':'2','memory':'4Gi'}}}"

static const bool T = true, F = false;

static int64_t rv_of(struct capfx *f, const char *name)
{
    json_t *h = capfx_get(f, &kf_kind_host, name);
    int64_t rv = kf_obj_rv(h);

    json_decref(h);
    return rv;
}

static void test_ready_notready_ready(void **state)
{
    struct capfx f;
    struct kf_strbuf reasons = KF_STRBUF_INIT;
    json_t *h;
    int64_t rv;

    (void)state;
    capfx_open(&f);
    f.opts.host_grace_ms = 400;
    capfx_create(&f, &kf_kind_host, HOST("h1", "u1", "z-a"));
    capfx_start(&f);

    /* heartbeats keep it Ready; while they come, nothing is written */
    kf_lease_renew(f.leases, "h1", kf_now_ms());
    assert_true(capfx_wait(&f, &kf_kind_host, "h1", ready_is, &T));
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    rv = rv_of(&f, "h1");
    for (int i = 0; i < 10; i++) {
        kf_lease_renew(f.leases, "h1", kf_now_ms());
        sleep_ms(60);
    }
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    assert_int_equal(rv_of(&f, "h1"), rv);

    h = capfx_get(&f, &kf_kind_host, "h1");
    assert_string_equal(
        kf_json_str(json_array_get(kf_json_path(h, "status.conditions"), 0), "reason", ""),
        "HeartbeatReceived");
    /* labels from the spec, allocatable = capacity - reserved */
    assert_string_equal(kf_obj_label(h, KF_LABEL_ROLE), "meta");
    assert_string_equal(kf_obj_label(h, KF_LABEL_UNIT), "u1");
    assert_string_equal(kf_obj_label(h, KF_LABEL_ZONE), "z-a");
    assert_string_equal(kf_json_str(h, "status.allocatable.cpu", ""), "62");
    assert_string_equal(kf_json_str(h, "status.allocatable.memory", ""), "252Gi");
    json_decref(h);

    /* silence: NotReady after the grace, with the reason */
    assert_true(capfx_wait(&f, &kf_kind_host, "h1", ready_is, &F));
    h = capfx_get(&f, &kf_kind_host, "h1");
    assert_non_null(strstr(kf_json_str(h, "status.message", ""), "no heartbeat for "));
    assert_non_null(strstr(kf_json_str(h, "status.message", ""), "(grace 0.4s)"));
    assert_string_equal(
        kf_json_str(json_array_get(kf_json_path(h, "status.conditions"), 0), "reason", ""),
        "HeartbeatMissed");
    json_decref(h);

    /* the next heartbeat brings it back */
    kf_lease_renew(f.leases, "h1", kf_now_ms());
    assert_true(capfx_wait(&f, &kf_kind_host, "h1", ready_is, &T));
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS); /* the event follows the status */
    capfx_event_reasons(&f, "Host", "h1", &reasons);
    assert_non_null(strstr(reasons.buf, "HostNotReady"));
    assert_non_null(strstr(reasons.buf, "HostReady"));

    /* a deleted host's lease is dropped */
    assert_int_equal(kf_registry_delete(f.reg, &kf_kind_host, "h1", 0, NULL, NULL), 0);
    for (int i = 0; i < 500 && kf_lease_last(f.leases, "h1") > 0; i++)
        sleep_ms(10);
    assert_int_equal(kf_lease_last(f.leases, "h1"), 0);

    kf_strbuf_release(&reasons);
    capfx_close(&f);
}

/* After a restart the lease table is empty: a Ready host stays Ready for a
 * full grace period, then goes NotReady if it did not beat; one that beats
 * in time stays Ready throughout. */
static void test_grace_after_restart(void **state)
{
    struct capfx f;
    int64_t start;

    (void)state;
    capfx_open(&f);
    f.opts.host_grace_ms = 3000;
    capfx_create(&f, &kf_kind_host, HOST("quiet", "u1", "z-a"));
    capfx_create(&f, &kf_kind_host, HOST("beating", "u1", "z-b"));
    capfx_start(&f);
    kf_lease_renew(f.leases, "quiet", kf_now_ms());
    kf_lease_renew(f.leases, "beating", kf_now_ms());
    assert_true(capfx_wait(&f, &kf_kind_host, "quiet", ready_is, &T));
    assert_true(capfx_wait(&f, &kf_kind_host, "beating", ready_is, &T));
    kf_lease_renew(f.leases, "quiet", kf_now_ms()); /* Ready when the restart comes */

    capfx_start(&f); /* "restart" (or failover): new manager, empty lease table */
    start = kf_lease_table_started_ms(f.leases);
    sleep_ms(300);
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    if (kf_now_ms() - start < 2500) { /* only meaningful inside the window */
        json_t *h = capfx_get(&f, &kf_kind_host, "quiet");

        assert_true(json_is_true(kf_json_path(h, "status.ready")));
        json_decref(h);
    }
    for (int i = 0; i < 70; i++) {
        kf_lease_renew(f.leases, "beating", kf_now_ms());
        sleep_ms(50);
        if (i == 20)
            kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    }
    assert_true(capfx_wait(&f, &kf_kind_host, "quiet", ready_is, &F));
    {
        json_t *h = capfx_get(&f, &kf_kind_host, "quiet");

        assert_true(kf_now_ms() - start >= 3000);
        assert_non_null(strstr(kf_json_str(h, "status.message", ""), "since kfleetd started"));
        json_decref(h);
        h = capfx_get(&f, &kf_kind_host, "beating");
        assert_true(json_is_true(kf_json_path(h, "status.ready")));
        json_decref(h);
    }
    capfx_close(&f);
}

/* A meta host of a unit with the edge feature gets the edge profile's
 * heartbeatGrace (5m): it stays Ready while a host of a plain unit, silent
 * just as long, goes NotReady. */
static void test_edge_grace(void **state)
{
    struct capfx f;
    json_t *h;

    (void)state;
    capfx_open(&f);
    f.opts.host_grace_ms = 300;
    capfx_create(&f, &kf_kind_unit,
                 "{'metadata':{'name':'edge-u1'},'spec':{'region':'r','zones':['z-a'],"
                 "'features':['edge']}}");
    capfx_create(&f, &kf_kind_unit,
                 "{'metadata':{'name':'plain-u1'},'spec':{'region':'r','zones':['z-a']}}");
    capfx_create(&f, &kf_kind_host, HOST("edge-h1", "edge-u1", "z-a"));
    capfx_create(&f, &kf_kind_host, HOST("plain-h1", "plain-u1", "z-a"));
    capfx_start(&f);
    /* the edge profile is installed by the profiles controller */
    assert_true(capfx_wait(&f, &kf_kind_profile, "edge", has_path_str, "spec.heartbeatGrace=5m"));
    kf_lease_renew(f.leases, "edge-h1", kf_now_ms());
    kf_lease_renew(f.leases, "plain-h1", kf_now_ms());
    assert_true(capfx_wait(&f, &kf_kind_host, "edge-h1", ready_is, &T));
    assert_true(capfx_wait(&f, &kf_kind_host, "plain-h1", ready_is, &T));
    assert_true(capfx_wait(&f, &kf_kind_host, "plain-h1", ready_is, &F));
    sleep_ms(200);
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    h = capfx_get(&f, &kf_kind_host, "edge-h1");
    assert_true(json_is_true(kf_json_path(h, "status.ready")));
    json_decref(h);
    capfx_close(&f);
}

/* A failover to a replica whose lease table is warm: a new manager (a new
 * leader term) over the same table, which holds renewals reported by other
 * replicas. A host that went NotReady long ago has an old renewal in it:
 * it stays NotReady (nothing is written for it), while one whose
 * heartbeats only ever came through reports stays Ready. */
static void restart_keeping_leases(struct capfx *f)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_ctrl_env env = { 0 };

    kf_ctrl_manager_free(f->m);
    env.store = f->store;
    env.reg = f->reg;
    env.leases = f->leases;
    env.capacity = &f->opts;
    f->m = kf_ctrl_manager_new(f->store, f->reg);
    if (kf_ctrl_manager_add_defs(f->m, &env, &err) < 0)
        fail_msg("controllers: %s", err.buf);
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    kf_strbuf_release(&err);
}

struct beater {
    struct kf_lease_table *leases;
    const char *name;
    volatile bool stop;
};

/* Another replica's reports: a renewal of one host every 50 ms. */
static void *beat_remotely(void *arg)
{
    struct beater *b = arg;

    while (!b->stop) {
        kf_lease_renew_remote(b->leases, b->name, kf_now_ms());
        sleep_ms(50);
    }
    return NULL;
}

static void test_failover_with_warm_leases(void **state)
{
    struct capfx f;
    struct kf_strbuf reasons = KF_STRBUF_INIT;
    struct beater b = { 0 };
    pthread_t thread;
    int64_t rv_gone;
    json_t *h;

    (void)state;
    capfx_open(&f);
    f.opts.host_grace_ms = 400;
    capfx_create(&f, &kf_kind_host, HOST("gone", "u1", "z-a"));
    capfx_create(&f, &kf_kind_host, HOST("elsewhere", "u1", "z-b"));
    capfx_start(&f);
    b.leases = f.leases;
    b.name = "elsewhere";
    assert_int_equal(pthread_create(&thread, NULL, beat_remotely, &b), 0);
    kf_lease_renew(f.leases, "gone", kf_now_ms());
    assert_true(capfx_wait(&f, &kf_kind_host, "gone", ready_is, &T));
    assert_true(capfx_wait(&f, &kf_kind_host, "elsewhere", ready_is, &T));
    /* gone stops; elsewhere beats on, through reports only */
    assert_true(capfx_wait(&f, &kf_kind_host, "gone", ready_is, &F));
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    rv_gone = rv_of(&f, "gone");

    restart_keeping_leases(&f);
    sleep_ms(1200); /* three graces */
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    assert_int_equal(rv_of(&f, "gone"), rv_gone);
    h = capfx_get(&f, &kf_kind_host, "elsewhere");
    assert_true(json_is_true(kf_json_path(h, "status.ready")));
    json_decref(h);
    capfx_event_reasons(&f, "Host", "elsewhere", &reasons);
    assert_null(strstr(reasons.buf, "HostNotReady"));
    b.stop = true;
    pthread_join(thread, NULL);
    kf_strbuf_reset(&reasons);
    capfx_event_reasons(&f, "Host", "gone", &reasons);
    assert_non_null(strstr(reasons.buf, "HostNotReady"));

    kf_strbuf_release(&reasons);
    capfx_close(&f);
}

static bool six_profiles(struct capfx *f)
{
    static const char *const names[] = { "standard",  "serverless", "ai",
                                         "baremetal", "edge",       "windows" };

    for (size_t i = 0; i < KF_ARRAY_SIZE(names); i++) {
        json_t *p = capfx_get(f, &kf_kind_profile, names[i]);

        if (!p)
            return false;
        json_decref(p);
    }
    return true;
}

/* Installed on first start; an operator's edit survives a restart; a
 * deleted default comes back at the next start, not before. */
static void test_profiles_install_once(void **state)
{
    struct capfx f;
    json_t *p, *q;

    (void)state;
    capfx_open(&f);
    capfx_start(&f);
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    assert_true(six_profiles(&f));

    /* real and distinct parameters */
    p = capfx_get(&f, &kf_kind_profile, "ai");
    q = capfx_get(&f, &kf_kind_profile, "baremetal");
    assert_true(cap_str_in_test(kf_json_path(p, "spec.hosting.unitFeatures"), "gpu"));
    assert_string_equal(kf_json_str(p, "spec.etcd.quotaBackendBytes", ""), "16Gi");
    assert_true(json_is_true(kf_json_path(q, "spec.etcd.dedicated")));
    assert_int_equal(kf_json_int(q, "spec.maxPodsPerNode", 0), 250);
    assert_string_equal(kf_obj_name(p), "ai");
    json_decref(p);
    json_decref(q);
    p = capfx_get(&f, &kf_kind_profile, "windows");
    assert_string_equal(kf_json_str(p, "spec.nodeOS", ""), "windows");
    json_decref(p);

    /* an operator edits one and deletes another */
    capfx_patch(&f, &kf_kind_profile, "standard", "{'spec':{'description':'edited'}}", false);
    assert_int_equal(kf_registry_delete(f.reg, &kf_kind_profile, "edge", 0, NULL, NULL), 0);
    sleep_ms(100);
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    p = capfx_get(&f, &kf_kind_profile, "edge");
    assert_null(p); /* not re-created behind the operator's back */

    capfx_start(&f); /* restart */
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    assert_true(six_profiles(&f));
    p = capfx_get(&f, &kf_kind_profile, "standard");
    assert_string_equal(kf_json_str(p, "spec.description", ""), "edited");
    json_decref(p);
    capfx_close(&f);
}

static void start_host_lifecycle_only(struct capfx *f)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_ctrl_env env = { 0 };

    f->leases = kf_lease_table_new(kf_now_ms());
    env.store = f->store;
    env.reg = f->reg;
    env.leases = f->leases;
    env.capacity = &f->opts;
    env.enabled = "host-lifecycle";
    f->m = kf_ctrl_manager_new(f->store, f->reg);
    if (kf_ctrl_manager_add_defs(f->m, &env, &err) < 0)
        fail_msg("controllers: %s", err.buf);
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    kf_strbuf_release(&err);
}

static bool members_are(const json_t *obj, const void *arg)
{
    return obj && json_integer_value(kf_json_path(obj, "status.members")) == *(const int *)arg;
}

static void add_member(struct capfx *f, const char *name)
{
    char buf[512];

    snprintf(buf, sizeof(buf),
             "{'metadata':{'name':'%s'},'spec':{'cluster':'c1','host':'h1','component':'etcd',"
             "'resources':{'requests':{'cpu':'1','memory':'1Gi'}}}}",
             name);
    capfx_create(f, &kf_kind_controlplanemember, buf);
}

/* Members arriving on a host cost it one write of its allocation, after
 * they stopped coming, even when the host is written for something else
 * in between (that write's own event used to write the allocation at once,
 * and again once the members were all there). Counted in the store's
 * history. */
static void test_allocation_written_once(void **state)
{
    struct kf_event_list l = { 0 };
    struct capfx f;
    const int three = 3;
    int writes = 0;
    int64_t rev0;

    (void)state;
    capfx_open(&f);
    capfx_create(&f, &kf_kind_host, HOST("h1", "u1", "z-a"));
    start_host_lifecycle_only(&f);
    kf_lease_renew(f.leases, "h1", kf_now_ms());
    assert_true(capfx_wait(&f, &kf_kind_host, "h1", ready_is, &T));
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    rev0 = kf_store_rev(f.store);

    add_member(&f, "m1");
    /* the controller has seen m1 before the host is written */
    for (int i = 0;
         i < WAIT_MS && kf_informer_rev(kf_ctrl_informer(f.m, &kf_kind_controlplanemember)) <
                            kf_store_rev(f.store);
         i++)
        sleep_ms(1);
    capfx_patch(&f, &kf_kind_host, "h1", "{'metadata':{'annotations':{'note':'x'}}}", false);
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);
    add_member(&f, "m2");
    add_member(&f, "m3");
    assert_true(capfx_wait(&f, &kf_kind_host, "h1", members_are, &three));
    kf_ctrl_manager_wait_idle(f.m, WAIT_MS);

    assert_int_equal(kf_store_history(f.store, rev0, 1000, &l), 0);
    for (size_t i = 0; i < l.n; i++)
        if (strcmp(l.items[i]->kv.key, "/hosts/h1") == 0)
            writes++;
    kf_event_list_release(&l);
    assert_int_equal(writes, 2); /* the annotation, and the allocation with three members */
    capfx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_notready_ready),
        cmocka_unit_test(test_grace_after_restart),
        cmocka_unit_test(test_edge_grace),
        cmocka_unit_test(test_failover_with_warm_leases),
        cmocka_unit_test(test_profiles_install_once),
        cmocka_unit_test(test_allocation_written_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
