/* test-ctrl-lifecycle.c: the lifecycle controller's member ports through
 * the real controllers (placement, lifecycle) on the memory store, as the
 * objects show them: every member of every cluster gets the ports its
 * component needs, and no two members, nor a member and an apiserver
 * endpoint, on one host address ever hold the same port, with four
 * workers giving ports at once, and after a restart (a new controller with
 * an empty index, rebuilt from the store) that gives ports to new
 * clusters next to the old ones. No agent runs: members stay unstarted,
 * which is all ports need. */
#include "capacity-test.h"
#include "kfleet/lifecycle.h"

#include <unistd.h>

#define PORT_MIN 30100
#define PORT_MAX 31099
#define ADDRESS  "127.0.9.1" /* every host's, and the endpoints' */

struct lcfx {
    struct capfx f;
    char dir[64];
    struct kf_lifecycle_options lc;
};

/* Starts (or restarts, as a new kfleetd would) the controllers. */
static void lcfx_start(struct lcfx *x)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_ctrl_env env = { 0 };

    kf_ctrl_manager_free(x->f.m);
    kf_lease_table_free(x->f.leases);
    x->f.leases = kf_lease_table_new(kf_now_ms());
    env.store = x->f.store;
    env.reg = x->f.reg;
    env.leases = x->f.leases;
    env.capacity = &x->f.opts;
    env.lifecycle = &x->lc;
    env.data_dir = x->dir;
    env.enabled = "profiles,host-lifecycle,unit-status,placement,lifecycle";
    x->f.m = kf_ctrl_manager_new(x->f.store, x->f.reg);
    if (kf_ctrl_manager_add_defs(x->f.m, &env, &err) < 0)
        fail_msg("controllers: %s", err.buf);
    assert_int_equal(kf_ctrl_manager_start(x->f.m), 0);
    kf_strbuf_release(&err);
}

static void renew_all(struct lcfx *x)
{
    json_t *items = NULL, *h;
    size_t i;

    assert_int_equal(kf_registry_list(x->f.reg, &kf_kind_host, NULL, &items, NULL, NULL, NULL), 0);
    json_array_foreach(items, i, h) kf_lease_renew(x->f.leases, kf_obj_name(h), kf_now_ms());
    json_decref(items);
}

/* Region r, unit u1 of 3 zones x 3 hosts, all on ADDRESS (as the hosts of
 * `make run` share 127.0.0.1), Profiles "small" (three etcd) and "api"
 * (etcd and an apiserver, so an endpoint on ADDRESS too). */
static void lcfx_open(struct lcfx *x)
{
    char buf[1024];

    memset(x, 0, sizeof(*x));
    snprintf(x->dir, sizeof(x->dir), "/tmp/kftest-lcports-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    capfx_open(&x->f);
    x->f.opts.host_grace_ms = 600000;
    kf_lifecycle_options_default(&x->lc);
    x->lc.port_min = PORT_MIN;
    x->lc.port_max = PORT_MAX;
    x->lc.health_period_ms = 600000;
    lcfx_start(x);
    capfx_create(&x->f, &kf_kind_region,
                 "{'metadata':{'name':'r'},'spec':{'zones':['a','b','c']}}");
    capfx_create(&x->f, &kf_kind_ippool,
                 "{'metadata':{'name':'vpc-1'},'spec':{'vpc':'vpc-1','cidrs':['10.0.0.0/8']}}");
    capfx_create(&x->f, &kf_kind_profile,
                 "{'metadata':{'name':'small'},'spec':{'versions':['1.36','1.37'],"
                 "'defaultVersion':'1.37','components':[{'name':'etcd'}]}}");
    capfx_create(&x->f, &kf_kind_profile,
                 "{'metadata':{'name':'api'},'spec':{'versions':['1.36','1.37'],"
                 "'defaultVersion':'1.37','components':[{'name':'etcd'},"
                 "{'name':'kube-apiserver'}]}}");
    capfx_create(&x->f, &kf_kind_unit,
                 "{'metadata':{'name':'u1'},'spec':{'region':'r','zones':['a','b','c'],"
                 "'endpointAddress':'" ADDRESS "'}}");
    for (int z = 0; z < 3; z++)
        for (int h = 0; h < 3; h++) {
            snprintf(buf, sizeof(buf),
                     "{'metadata':{'name':'h-%c%d'},'spec':{'role':'meta','unit':'u1',"
                     "'zone':'%c','address':'" ADDRESS "','capacity':{'cpu':'256',"
                     "'memory':'1024Gi'}}}",
                     'a' + z, h, 'a' + z);
            capfx_create(&x->f, &kf_kind_host, buf);
        }
    renew_all(x);
}

static void rm_rf(const char *dir)
{
    char *cmd = kf_xasprintf("rm -rf '%s'", dir);

    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void lcfx_close(struct lcfx *x)
{
    capfx_close(&x->f);
    rm_rf(x->dir);
}

static void clusters(struct lcfx *x, int from, int to)
{
    char buf[512];

    for (int i = from; i < to; i++) {
        snprintf(buf, sizeof(buf),
                 "{'metadata':{'name':'c%03d'},'spec':{'region':'r','profile':'%s',"
                 "'version':'1.37','expectedNodes':3,'network':{'vpc':'vpc-1'}}}",
                 i, i % 5 == 0 ? "api" : "small");
        capfx_create(&x->f, &kf_kind_guestcluster, buf);
    }
}

/* Whether every member has the ports its component needs (etcd: client,
 * peer, metrics; the apiserver: https) and every api cluster its endpoint. */
static bool all_ported(struct lcfx *x, int n_clusters)
{
    json_t *items = NULL, *m;
    size_t i, n = 0;
    bool ok = true;

    assert_int_equal(
        kf_registry_list(x->f.reg, &kf_kind_controlplanemember, NULL, &items, NULL, NULL, NULL), 0);
    json_array_foreach(items, i, m)
    {
        const json_t *p = kf_json_path(m, "spec.ports");
        bool etcd = kf_streq(kf_json_str(m, "spec.component", ""), "etcd");

        n++;
        if (etcd ? !json_object_get(p, "client") || !json_object_get(p, "peer") ||
                       !json_object_get(p, "metrics")
                 : !json_object_get(p, "https"))
            ok = false;
    }
    json_decref(items);
    /* 3 etcd members each, and apiservers for every fifth */
    if (n < (size_t)(n_clusters * 3 + (n_clusters + 4) / 5))
        ok = false;
    assert_int_equal(
        kf_registry_list(x->f.reg, &kf_kind_guestcluster, NULL, &items, NULL, NULL, NULL), 0);
    json_array_foreach(items, i, m)
    {
        if (kf_streq(kf_json_str(m, "spec.profile", ""), "api") &&
            !kf_json_str(m, "status.endpoints.apiServer", NULL))
            ok = false;
    }
    json_decref(items);
    return ok;
}

static void wait_ported(struct lcfx *x, int n_clusters)
{
    for (int waited = 0; waited < 6 * WAIT_MS; waited += 50) {
        if (all_ported(x, n_clusters))
            return;
        renew_all(x);
        sleep_ms(50);
    }
    fail_msg("not every member of %d clusters got its ports", n_clusters);
}

/* Every port held on ADDRESS, by member ports and endpoints: fails on a
 * port held twice (naming both holders) or outside the range; returns how
 * many ports are held. */
static size_t assert_unique_ports(struct lcfx *x)
{
    static char holder[PORT_MAX - PORT_MIN + 1][96];
    json_t *items = NULL, *o;
    size_t i, held = 0;

    memset(holder, 0, sizeof(holder));
    assert_int_equal(
        kf_registry_list(x->f.reg, &kf_kind_controlplanemember, NULL, &items, NULL, NULL, NULL), 0);
    json_array_foreach(items, i, o)
    {
        const char *k;
        json_t *v;

        json_object_foreach((json_t *)kf_json_path(o, "spec.ports"), k, v)
        {
            json_int_t port = json_integer_value(v);
            /* the apiserver's metrics is an alias of its https port */
            if (!strcmp(k, "metrics") &&
                kf_streq(kf_json_str(o, "spec.component", ""), "kube-apiserver"))
                continue;
            if (port < PORT_MIN || port > PORT_MAX)
                fail_msg("%s: port %s %lld outside %d-%d", kf_obj_name(o), k, (long long)port,
                         PORT_MIN, PORT_MAX);
            if (holder[port - PORT_MIN][0])
                fail_msg("port %lld held twice on %s: %s and %s (%s)", (long long)port, ADDRESS,
                         holder[port - PORT_MIN], kf_obj_name(o), k);
            snprintf(holder[port - PORT_MIN], sizeof(holder[0]), "%s (%s)", kf_obj_name(o), k);
            held++;
        }
    }
    json_decref(items);
    assert_int_equal(
        kf_registry_list(x->f.reg, &kf_kind_guestcluster, NULL, &items, NULL, NULL, NULL), 0);
    json_array_foreach(items, i, o)
    {
        const char *url = kf_json_str(o, "status.endpoints.apiServer", NULL);
        const char *colon = url ? strrchr(url, ':') : NULL;
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;

        if (!url)
            continue;
        assert_non_null(strstr(url, ADDRESS));
        if (port < PORT_MIN || port > PORT_MAX)
            fail_msg("%s: endpoint %s outside %d-%d", kf_obj_name(o), url, PORT_MIN, PORT_MAX);
        if (holder[port - PORT_MIN][0])
            fail_msg("port %ld held twice on %s: %s and the endpoint of %s", port, ADDRESS,
                     holder[port - PORT_MIN], kf_obj_name(o));
        snprintf(holder[port - PORT_MIN], sizeof(holder[0]), "endpoint of %s", kf_obj_name(o));
        held++;
    }
    json_decref(items);
    return held;
}

static void test_ports_unique_across_restart(void **state)
{
    struct lcfx x;
    size_t before, after;

    (void)state;
    lcfx_open(&x);
    clusters(&x, 0, 30);
    wait_ported(&x, 30);
    before = assert_unique_ports(&x);
    assert_true(before >= 30 * 3 * 3);
    /* kfleetd restarts: a new lifecycle controller, its index rebuilt from
     * the informers' lists; new clusters get ports next to the old ones */
    lcfx_start(&x);
    renew_all(&x);
    clusters(&x, 30, 60);
    wait_ported(&x, 60);
    after = assert_unique_ports(&x);
    assert_true(after >= before + 30 * 3 * 3);
    lcfx_close(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ports_unique_across_restart),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
