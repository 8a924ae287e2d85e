/* test-upgrade.c: the single-cluster upgrade engine (ctrl-lifecycle-upgrade.c)
 * step by step, as the lifecycle controller calls it: a cluster of three
 * etcd members, two apiservers, a controller manager and a scheduler whose
 * agents report what they run. Each test says what status.upgrade, the
 * Upgraded condition and each member's version become. */
#include "fleet-test.h"

#include "kfleet/catalog.h"
#include "kfleet/obj.h"
#include "controllers/ctrl-lifecycle.h"

#define N 7

static const char *const comp[N] = {
    "kube-scheduler", "kube-apiserver",         "etcd", "etcd", "kube-apiserver",
    "etcd",           "kube-controller-manager"
};
static const int idx[N] = { 0, 1, 0, 1, 0, 2, 0 };

struct cl {
    json_t *gc;
    json_t *objs[N];
    json_t *hosts[N];
    struct kf_catalog_member members[N];
    const char *hostnames[N];
    struct lc_view v;
};

static void cl_init(struct cl *c, const char *running, const char *want)
{
    char name[64];

    c->gc = J("{'metadata':{'name':'web'},'spec':{},'status':{'phase':'Running'}}");
    json_object_set_new(kf_json_path(c->gc, "status"), "version", json_string(running));
    json_object_set_new(kf_json_path(c->gc, "spec"), "version", json_string(want));
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "web-%s-%d", comp[i], idx[i]);
        c->objs[i] =
            json_pack("{s:{s:s, s:i}, s:{s:s, s:s, s:s, s:s}, s:{s:b, s:i, s:s, s:s}}", "metadata",
                      "name", name, "generation", 1, "spec", "component", comp[i], "version",
                      running, "zone", "a", "host", "h-a", "status", "ready", 1,
                      "observedGeneration", 1, "version", running, "phase", "Ready");
        c->members[i] = (struct kf_catalog_member){ .name = kf_obj_name(c->objs[i]),
                                                    .component = comp[i],
                                                    .index = idx[i] };
        c->hostnames[i] = "h-a";
        c->hosts[i] = NULL;
    }
    c->v =
        (struct lc_view){ .members = c->members, .objs = c->objs, .hosts = c->hostnames, .n = N };
    c->v.c.name = "web";
    c->v.c.version = running;
}

static void cl_release(struct cl *c)
{
    json_decref(c->gc);
    for (int i = 0; i < N; i++) {
        json_decref(c->objs[i]);
        json_decref(c->hosts[i]);
    }
}

/* One step at now_s, healthy or not; the plan's status.upgrade is written
 * back into the cluster as the controller would. */
static void step(struct cl *c, struct lc_upgrade *up, bool healthy, int64_t now_s)
{
    struct lc_upgrade_in in = {
        .gc = c->gc,
        .v = &c->v,
        .hosts = c->hosts,
        .healthy = healthy,
        .health_msg = "not ready: x",
        .has_endpoint = true,
        .endpoint_ok = true,
        .now_ms = now_s * 1000,
        .step_timeout_ms = 180000,
    };

    kf_lifecycle_upgrade_plan(&in, up);
}

static void commit(struct cl *c, struct lc_upgrade *up)
{
    json_t *st = kf_json_path(c->gc, "status");

    if (up->status)
        json_object_set(st, "upgrade", up->status);
    if (up->version)
        json_object_set_new(st, "version", json_string(up->version));
    /* the controller writes each member's spec at its version */
    for (int i = 0; i < N; i++)
        json_object_set_new(kf_json_path(c->objs[i], "spec"), "version",
                            json_string(up->versions[i]));
    kf_lifecycle_upgrade_release(up);
}

/* The member's agent runs its spec now, Ready. */
static void agent_runs(struct cl *c, int i)
{
    json_t *st = kf_json_path(c->objs[i], "status");

    json_object_set_new(st, "version", json_string(kf_json_str(c->objs[i], "spec.version", "")));
    json_object_set_new(st, "ready", json_true());
}

static const char *state_of(struct cl *c, int i)
{
    json_t *e;
    size_t k;

    json_array_foreach(kf_json_path(c->gc, "status.upgrade.members"), k,
                       e) if (!strcmp(kf_json_str(e, "name", ""),
                                      c->members[i].name)) return kf_json_str(e, "state", "?");
    return "absent";
}

static void test_nothing_to_do(void **state)
{
    struct cl c;
    struct lc_upgrade up;

    (void)state;
    cl_init(&c, "1.36", "1.36");
    step(&c, &up, true, 1800000000);
    assert_null(up.status);
    assert_null(up.cond_reason);
    for (int i = 0; i < N; i++)
        assert_string_equal(up.versions[i], "1.36");
    kf_lifecycle_upgrade_release(&up);
    cl_release(&c);
}

static void test_waits_for_window_unless_forced(void **state)
{
    struct cl c;
    struct lc_upgrade up;

    (void)state;
    cl_init(&c, "1.36", "1.37");
    /* 1800000000 is 2027-01-15T08:00:00Z, a Friday: the window is on Sundays */
    json_object_set_new(kf_json_path(c.gc, "spec"), "maintenanceWindow",
                        J("{'days':['Sun'],'start':'02:00','duration':'4h'}"));
    step(&c, &up, true, 1800000000);
    assert_null(up.status);
    assert_string_equal(up.cond_reason, "WaitingForWindow");
    assert_non_null(strstr(up.msg.buf, "it may start at 2027-01-17T0"));
    assert_true(up.requeue_ms > 0);
    assert_string_equal(up.versions[0], "1.36");
    kf_lifecycle_upgrade_release(&up);
    json_object_set_new(kf_json_path(c.gc, "spec"), "upgrade", J("{'force':true}"));
    step(&c, &up, true, 1800000000);
    assert_non_null(up.status);
    assert_true(up.active);
    kf_lifecycle_upgrade_release(&up);
    cl_release(&c);
}

static void test_precheck(void **state)
{
    struct cl c;
    struct lc_upgrade up;

    (void)state;
    cl_init(&c, "1.36", "1.37");
    step(&c, &up, false, 1800000000);
    assert_null(up.status);
    assert_string_equal(up.cond_reason, "PrecheckFailed");
    assert_non_null(strstr(up.msg.buf, "every member Ready"));
    kf_lifecycle_upgrade_release(&up);
    /* a host that reports what it holds, without 1.37 */
    c.hosts[1] = J("{'status':{'kubernetesVersions':['1.36']}}");
    step(&c, &up, true, 1800000000);
    assert_string_equal(up.cond_reason, "PrecheckFailed");
    assert_non_null(strstr(up.msg.buf, "hosts h-a do not hold Kubernetes 1.37"));
    kf_lifecycle_upgrade_release(&up);
    cl_release(&c);
}

static void test_safe_order_to_success(void **state)
{
    /* etcd 0,1,2, apiserver 0,1, controller manager, scheduler (view indexes) */
    static const int order[N] = { 2, 3, 5, 4, 1, 6, 0 };
    struct cl c;
    struct lc_upgrade up;
    int64_t now = 1800000000;

    (void)state;
    cl_init(&c, "1.36", "1.37");
    step(&c, &up, true, now);
    assert_string_equal(up.event_reason, "UpgradingMember");
    commit(&c, &up);
    for (int k = 0; k < N; k++) {
        int i = order[k];

        /* exactly the member whose turn it is moves; the others stay */
        assert_string_equal(state_of(&c, i), "Upgrading");
        for (int j = 0; j < N; j++)
            assert_string_equal(kf_json_str(c.objs[j], "spec.version", ""),
                                j == i || strcmp(state_of(&c, j), "Done") == 0 ? "1.37" : "1.36");
        assert_string_equal(kf_json_str(c.gc, "status.upgrade.step", ""), comp[i]);
        /* not yet Ready on 1.37: it waits */
        json_object_set_new(kf_json_path(c.objs[i], "status"), "ready", json_false());
        step(&c, &up, true, ++now);
        assert_true(up.active);
        assert_string_equal(up.cond_reason, "InProgress");
        commit(&c, &up);
        assert_string_equal(state_of(&c, i), "Upgrading");
        agent_runs(&c, i);
        step(&c, &up, true, ++now);
        commit(&c, &up);
        assert_string_equal(state_of(&c, i), "Done");
    }
    assert_string_equal(kf_json_str(c.gc, "status.version", ""), "1.37");
    assert_string_equal(kf_json_str(c.gc, "status.upgrade.step", ""), "Succeeded");
    assert_non_null(kf_json_str(c.gc, "status.upgrade.finishedAt", NULL));
    /* finished: nothing moves again */
    step(&c, &up, true, ++now);
    assert_null(up.status);
    for (int i = 0; i < N; i++)
        assert_string_equal(up.versions[i], "1.37");
    kf_lifecycle_upgrade_release(&up);
    cl_release(&c);
}

static void test_failure_stops_and_rollback_returns(void **state)
{
    json_t *failed;
    struct cl c;
    struct lc_upgrade up;
    int64_t now = 1800000000;

    (void)state;
    cl_init(&c, "1.36", "1.37");
    for (int k = 0; k < 4; k++) { /* the three etcd members move; apiserver 0 starts */
        step(&c, &up, true, ++now);
        commit(&c, &up);
        for (int i = 0; i < N; i++)
            if (!strcmp(state_of(&c, i), "Upgrading") && strcmp(comp[i], "kube-apiserver"))
                agent_runs(&c, i);
    }
    assert_string_equal(state_of(&c, 4), "Upgrading");
    /* its new program exits again and again */
    failed = J("{'ready':false,'phase':'Backoff','restarts':3,'version':'1.37',"
               "'message':'exit code 3'}");
    json_object_update(kf_json_path(c.objs[4], "status"), failed);
    json_decref(failed);
    step(&c, &up, true, ++now);
    assert_string_equal(up.cond_reason, "Failed");
    assert_true(up.event_warning);
    assert_false(up.active);
    assert_non_null(strstr(up.msg.buf,
                           "stopped at kube-apiserver member web-kube-apiserver-0 "
                           "(zone a, host h-a): Backoff after 3 restarts: exit code 3"));
    assert_non_null(strstr(up.msg.buf, "kfleet rollback web"));
    commit(&c, &up);
    /* it stays stopped: the next apiserver does not move */
    step(&c, &up, true, ++now);
    assert_string_equal(up.cond_reason, "Failed");
    commit(&c, &up);
    assert_string_equal(state_of(&c, 1), "Pending");
    assert_string_equal(kf_json_str(c.objs[1], "spec.version", ""), "1.36");

    /* kfleet rollback: spec.version back to 1.36; the failed apiserver first */
    json_object_set_new(kf_json_path(c.gc, "spec"), "version", json_string("1.36"));
    step(&c, &up, false, ++now);
    assert_true(up.active);
    commit(&c, &up);
    assert_string_equal(state_of(&c, 4), "RollingBack");
    assert_string_equal(kf_json_str(c.objs[4], "spec.version", ""), "1.36");
    assert_string_equal(kf_json_str(c.objs[5], "spec.version", ""), "1.37");
    for (int k = 0; k < 8; k++) {
        for (int i = 0; i < N; i++)
            if (!strcmp(state_of(&c, i), "RollingBack"))
                agent_runs(&c, i);
        step(&c, &up, false, ++now);
        commit(&c, &up);
    }
    assert_string_equal(kf_json_str(c.gc, "status.upgrade.step", ""), "RolledBack");
    assert_string_equal(kf_json_str(c.gc, "status.version", ""), "1.36");
    for (int i = 0; i < N; i++)
        assert_string_equal(kf_json_str(c.objs[i], "spec.version", ""), "1.36");
    cl_release(&c);
}

static void test_resume_does_not_time_out_a_moved_member(void **state)
{
    struct cl c;
    struct lc_upgrade up;

    (void)state;
    cl_init(&c, "1.36", "1.37");
    step(&c, &up, true, 1800000000);
    commit(&c, &up);
    /* kfleetd died after writing etcd-0's spec but before its status said
     * Upgrading: the member is Pending in status.upgrade with spec 1.37 */
    json_object_set_new(json_array_get(kf_json_path(c.gc, "status.upgrade.members"), 0), "state",
                        json_string("Pending"));
    json_object_set_new(kf_json_path(c.objs[2], "status"), "ready", json_false());
    step(&c, &up, true, 1800000000 + 3600);
    commit(&c, &up);
    assert_string_equal(state_of(&c, 2), "Upgrading");
    step(&c, &up, true, 1800000000 + 7200);
    assert_string_equal(up.cond_reason, "InProgress");
    commit(&c, &up);
    assert_string_equal(state_of(&c, 2), "Upgrading");
    cl_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_to_do),
        cmocka_unit_test(test_waits_for_window_unless_forced),
        cmocka_unit_test(test_precheck),
        cmocka_unit_test(test_safe_order_to_success),
        cmocka_unit_test(test_failure_stops_and_rollback_returns),
        cmocka_unit_test(test_resume_does_not_time_out_a_moved_member),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
