/* test-catalog.c: the component catalog renders what each member of a
 * guest cluster runs: etcd with its peers, certificates and quota; the
 * Kubernetes components per version with the cluster's ranges and etcd
 * servers; profile overrides and flags; components the catalog does not
 * know; the certificate files each member gets; and refusals. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kfleet/catalog.h"
#include "kfleet/grade.h"
#include "kfleet/strbuf.h"

struct fixture {
    json_t *ports[8];
    struct kf_catalog_member m[8];
    struct kf_catalog_cluster c;
    json_t *flags, *components;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    static const char *const addr[] = { "10.0.0.1", "10.0.0.2", "10.0.0.3" };

    for (int i = 0; i < 3; i++) {
        f->ports[i] = json_pack("{s:i, s:i, s:i}", "client", 2379 + 10 * i, "peer", 2380 + 10 * i,
                                "metrics", 2381 + 10 * i);
        f->m[i] = (struct kf_catalog_member){
            .component = "etcd", .index = i, .address = addr[i], .ports = f->ports[i]
        };
    }
    f->m[0].name = "web-1-etcd-0";
    f->m[1].name = "web-1-etcd-1";
    /* not a DNS label: etcd calls it etcd-2 */
    f->m[2].name = "web-1.etcd.2";
    f->ports[3] = json_pack("{s:i, s:i}", "https", 6443, "metrics", 6443);
    f->m[3] = (struct kf_catalog_member){
        "web-1-kube-apiserver-0", "kube-apiserver", 0, "10.0.0.2", f->ports[3], false
    };
    f->ports[4] = json_pack("{s:i}", "https", 10257);
    f->m[4] = (struct kf_catalog_member){ "web-1-kube-controller-manager-0",
                                          "kube-controller-manager",
                                          0,
                                          "10.0.0.3",
                                          f->ports[4],
                                          false };
    f->ports[5] = json_object();
    f->m[5] = (struct kf_catalog_member){ "web-1-cp-addons-0", "cp-addons", 0,
                                          "10.0.0.1",          f->ports[5], false };
    f->flags =
        json_pack("{s:s, s:s, s:s}", "kube-apiserver.max-requests-inflight", "400",
                  "kube-apiserver.profiling", "true", "etcd.auto-compaction-retention", "1h");
    f->c = (struct kf_catalog_cluster){ .name = "web-1",
                                        .version = "1.37",
                                        .grade = 5,
                                        .service_cidr = "10.96.0.0/16",
                                        .pod_cidr = "172.16.0.0/16",
                                        .kubernetes_service_ip = "10.96.0.1",
                                        .members = f->m,
                                        .n_members = 6,
                                        .flags = f->flags };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    for (int i = 0; i < 8; i++)
        json_decref(f->ports[i]);
    json_decref(f->flags);
    json_decref(f->components);
    free(f);
    return 0;
}

static bool has_arg(const json_t *args, const char *want)
{
    size_t i;
    json_t *v;

    json_array_foreach(args, i, v)
    {
        if (!strcmp(json_string_value(v), want))
            return true;
    }
    return false;
}

static size_t count_prefix(const json_t *args, const char *prefix)
{
    size_t i, n = 0;
    json_t *v;

    json_array_foreach(args, i, v) n += strncmp(json_string_value(v), prefix, strlen(prefix)) == 0;
    return n;
}

static void render(struct fixture *f, size_t i, char **bin, json_t **args, json_t **probe)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_catalog_rendered rd;

    if (kf_catalog_render(&f->c, i, &rd, &err) < 0)
        fail_msg("render %zu: %s", i, err.buf);
    *bin = rd.binary;
    *args = rd.args;
    *probe = rd.probe;
    json_decref(rd.env);
    kf_strbuf_release(&err);
}

static void test_etcd(void **state)
{
    struct fixture *f = *state;
    char *bin;
    json_t *args, *probe;

    render(f, 1, &bin, &args, &probe);
    assert_string_equal(bin, "/usr/bin/etcd");
    assert_true(has_arg(args, "--name=web-1-etcd-1"));
    assert_true(has_arg(args, "--initial-cluster=web-1-etcd-0=https://10.0.0.1:2380,"
                              "web-1-etcd-1=https://10.0.0.2:2390,etcd-2=https://10.0.0.3:2400"));
    assert_true(has_arg(args, "--listen-client-urls=https://10.0.0.2:2389"));
    assert_true(has_arg(args, "--listen-metrics-urls=http://10.0.0.2:2391"));
    /* directories stay placeholders: the agent knows them */
    assert_true(has_arg(args, "--data-dir={{dataDir}}"));
    assert_true(has_arg(args, "--cert-file={{certDir}}/etcd/server.crt"));
    assert_true(has_arg(args, "--peer-key-file={{certDir}}/etcd/peer.key"));
    assert_true(has_arg(args, "--client-cert-auth=true"));
    assert_true(has_arg(args, "--initial-cluster-token=kfleet-web-1"));
    /* G5: 16 GiB; the profile's flag is appended */
    assert_true(has_arg(args, "--quota-backend-bytes=17179869184"));
    assert_true(has_arg(args, "--auto-compaction-retention=1h"));
    assert_int_equal(json_integer_value(json_object_get(probe, "port")), 2391);
    assert_string_equal(json_string_value(json_object_get(probe, "path")), "/health");
    assert_string_equal(json_string_value(json_object_get(probe, "scheme")), "http");
    free(bin);
    json_decref(args);
    json_decref(probe);
}

static void test_kubernetes_components(void **state)
{
    struct fixture *f = *state;
    char *bin;
    json_t *args, *probe;

    render(f, 3, &bin, &args, &probe);
    assert_string_equal(bin, "/opt/kfleet/kubernetes/1.37/bin/kube-apiserver");
    assert_true(has_arg(args, "--etcd-servers=https://10.0.0.1:2379,https://10.0.0.2:2389,"
                              "https://10.0.0.3:2399"));
    assert_true(has_arg(args, "--service-cluster-ip-range=10.96.0.0/16"));
    assert_true(has_arg(args, "--secure-port=6443"));
    assert_true(has_arg(args, "--advertise-address=10.0.0.2"));
    /* what 1.37 needs: the public half of the service-account key, and no
     * lease reconciler (members may be on loopback addresses) */
    assert_true(has_arg(args, "--service-account-key-file={{certDir}}/sa.crt"));
    assert_true(has_arg(args, "--endpoint-reconciler-type=none"));
    assert_true(has_arg(args, "--etcd-certfile={{certDir}}/etcd/client.crt"));
    /* flags: appended, or replacing the catalog's value (once) */
    assert_true(has_arg(args, "--max-requests-inflight=400"));
    assert_true(has_arg(args, "--profiling=true"));
    assert_int_equal(count_prefix(args, "--profiling"), 1);
    assert_string_equal(json_string_value(json_object_get(probe, "path")), "/readyz");
    assert_string_equal(json_string_value(json_object_get(probe, "scheme")), "https");
    free(bin);
    json_decref(args);
    json_decref(probe);

    render(f, 4, &bin, &args, &probe);
    assert_string_equal(bin, "/opt/kfleet/kubernetes/1.37/bin/kube-controller-manager");
    assert_true(has_arg(args, "--cluster-cidr=172.16.0.0/16"));
    assert_true(has_arg(args, "--cluster-name=web-1"));
    assert_true(has_arg(args, "--secure-port=10257"));
    free(bin);
    json_decref(args);
    json_decref(probe);

    /* a version the catalog has no row for: the bare name, found or not */
    f->c.version = "1.20";
    render(f, 3, &bin, &args, &probe);
    assert_string_equal(bin, "kube-apiserver");
    assert_false(kf_catalog_lookup("kube-apiserver", "1.20")->known);
    assert_true(kf_catalog_lookup("kube-apiserver", "1.37")->known);
    assert_false(kf_catalog_lookup("kube-apiserver", "1.31")->known);
    assert_true(kf_catalog_supports("1.37") && kf_catalog_supports("1.37.2"));
    assert_false(kf_catalog_supports("1.31") || kf_catalog_supports("1.38") ||
                 kf_catalog_supports("1") || kf_catalog_supports(NULL));
    assert_true(kf_catalog_lookup("etcd", "1.20")->known);
    free(bin);
    json_decref(args);
    json_decref(probe);
}

static void test_unknown_component_and_profile_override(void **state)
{
    struct fixture *f = *state;
    char *bin;
    json_t *args, *probe;
    const char *names[KF_CATALOG_MAX_PORTS + 1];

    render(f, 5, &bin, &args, &probe);
    assert_string_equal(bin, "cp-addons");
    assert_int_equal(json_array_size(args), 0);
    assert_null(probe);
    assert_int_equal(kf_catalog_port_names(&f->c, 5, names), 0);
    free(bin);
    json_decref(args);

    /* the profile gives a program, arguments and a port */
    f->components =
        json_pack("[{s:s, s:s, s:[s, s, s], s:{s:i}, s:{s:s, s:s, s:s}}]", "name", "cp-addons",
                  "binary", "/usr/lib/addons/{{version}}/run", "args", "--cluster={{cluster}}",
                  "--kubeconfig={{certDir}}/x", "--listen={{address}}:{{port.web}}", "ports", "web",
                  1, "probe", "port", "web", "path", "/ok", "scheme", "http");
    f->c.components = f->components;
    assert_int_equal(kf_catalog_port_names(&f->c, 5, names), 1);
    assert_string_equal(names[0], "web");
    json_object_set_new(f->ports[5], "web", json_integer(8080));
    render(f, 5, &bin, &args, &probe);
    assert_string_equal(bin, "/usr/lib/addons/1.37/run");
    assert_true(has_arg(args, "--cluster=web-1"));
    assert_true(has_arg(args, "--kubeconfig={{certDir}}/x"));
    assert_true(has_arg(args, "--listen=10.0.0.1:8080"));
    assert_int_equal(json_integer_value(json_object_get(probe, "port")), 8080);
    free(bin);
    json_decref(args);
    json_decref(probe);
}

/* Rendered member i: its args and env (new references). */
static void render_env(struct fixture *f, size_t i, json_t **args, json_t **env)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_catalog_rendered rd;

    if (kf_catalog_render(&f->c, i, &rd, &err) < 0)
        fail_msg("render %zu: %s", i, err.buf);
    *args = json_incref(rd.args);
    *env = json_incref(rd.env);
    kf_catalog_rendered_release(&rd);
    kf_strbuf_release(&err);
}

/* G0 and G1 run with the small-grade settings, larger grades with the
 * upstream defaults; a profile's flags and env win over both. */
static void test_small_grades(void **state)
{
    static const struct {
        size_t member;
        const char *arg; /* present at G0..G1, absent at G2..G5 */
    } small[] = {
        { 0, "--heartbeat-interval=500" },
        { 0, "--election-timeout=2500" },
        { 3, "--watch-cache=false" },
        { 3, "--enable-priority-and-fairness=false" },
        { 3, "--etcd-count-metric-poll-period=0" },
        { 4, "--leader-elect-retry-period=5s" },
        { 4, "--leader-elect-lease-duration=30s" },
    };
    struct fixture *f = *state;
    json_t *args, *env;

    json_object_clear(f->flags);
    for (int grade = -1; grade <= 5; grade++) {
        bool is_small = grade <= 1; /* an unknown grade (-1) counts as G0 */

        f->c.grade = grade;
        for (size_t k = 0; k < KF_ARRAY_SIZE(small); k++) {
            render_env(f, small[k].member, &args, &env);
            if (has_arg(args, small[k].arg) != is_small)
                fail_msg("G%d member %zu: %s %s", grade, small[k].member, small[k].arg,
                         is_small ? "missing" : "present");
            assert_true(kf_streq(json_string_value(json_object_get(env, "GOMAXPROCS")),
                                 is_small ? "1" : NULL));
            json_decref(args);
            json_decref(env);
        }
    }
    /* the cp-addons have no row: no settings, no environment */
    f->c.grade = 0;
    render_env(f, 5, &args, &env);
    assert_int_equal(json_object_size(env), 0);
    json_decref(args);
    json_decref(env);

    /* the profile's flag replaces the small grade's value; its env is added
     * and replaces the catalog's of the same name */
    json_object_set_new(f->flags, "etcd.heartbeat-interval", json_string("250"));
    f->components = json_pack("[{s:s, s:{s:s, s:s}}]", "name", "etcd", "env", "GOMAXPROCS", "2",
                              "GOGC", "{{cluster}}");
    f->c.components = f->components;
    render_env(f, 0, &args, &env);
    assert_true(has_arg(args, "--heartbeat-interval=250"));
    assert_int_equal(count_prefix(args, "--heartbeat-interval="), 1);
    assert_true(has_arg(args, "--election-timeout=2500"));
    assert_string_equal(json_string_value(json_object_get(env, "GOMAXPROCS")), "2");
    assert_string_equal(json_string_value(json_object_get(env, "GOGC")), "web-1");
    json_decref(args);
    json_decref(env);

    /* a profile env name that a shell would not take is refused */
    json_object_set_new(json_object_get(json_array_get(f->components, 0), "env"), "1X",
                        json_string("y"));
    {
        struct kf_strbuf err = KF_STRBUF_INIT;
        struct kf_catalog_rendered rd = { 0 };

        assert_int_equal(kf_catalog_render(&f->c, 0, &rd, &err), -EINVAL);
        assert_non_null(strstr(err.buf, "env \"1X\""));
        assert_null(rd.env);
        kf_strbuf_release(&err);
    }
}

static void collect(void *ctx, const char *pki, const char *bundle, bool secret)
{
    struct kf_strbuf *sb = ctx;

    kf_strbuf_addf(sb, "%s>%s%s\n", pki, bundle, secret ? " secret" : "");
}

static void test_bundle_files_and_refusals(void **state)
{
    struct fixture *f = *state;
    struct kf_strbuf sb = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    struct kf_catalog_rendered rd = { 0 };
    char name[64];

    kf_catalog_bundle_files(&f->c, 2, collect, &sb);
    assert_string_equal(sb.buf, "etcd/ca.crt>etcd/ca.crt\n"
                                "etcd/etcd-2-server.crt>etcd/server.crt\n"
                                "etcd/etcd-2-server.key>etcd/server.key secret\n"
                                "etcd/etcd-2-peer.crt>etcd/peer.crt\n"
                                "etcd/etcd-2-peer.key>etcd/peer.key secret\n");
    kf_catalog_etcd_name(&f->m[2], name);
    assert_string_equal(name, "etcd-2");
    kf_strbuf_reset(&sb);
    kf_catalog_bundle_files(&f->c, 3, collect, &sb);
    assert_non_null(strstr(sb.buf, "etcd/client.key>etcd/client.key secret\n"));
    assert_non_null(strstr(sb.buf, "ca.crt>probe-ca.crt\n"));
    assert_null(strstr(sb.buf, "ca.key")); /* the apiserver never gets the CA's key */

    /* a member without its ports yet */
    json_object_del(f->ports[0], "peer");
    assert_int_equal(kf_catalog_render(&f->c, 0, &rd, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "no port \"peer\""));
    json_object_set_new(f->ports[0], "peer", json_integer(2380));
    /* a flag that is not a flag name */
    json_object_set_new(f->flags, "etcd.x y", json_string("1"));
    assert_int_equal(kf_catalog_render(&f->c, 0, &rd, &err), -EINVAL);
    assert_null(rd.binary); /* untouched on failure */
    kf_strbuf_release(&sb);
    kf_strbuf_release(&err);
}

/* KWOK, the simulated nodes' kubelet: its kubeconfig from the bundle, the
 * cluster's pod range for pod addresses, /healthz on its own port. */
static void test_kwok(void **state)
{
    struct fixture *f = *state;
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char *bin;
    json_t *args, *probe;

    f->ports[6] = json_pack("{s:i}", "http", 21000);
    f->m[6] =
        (struct kf_catalog_member){ "web-1-kwok-0", "kwok", 0, "10.0.0.3", f->ports[6], false };
    f->c.n_members = 7;
    render(f, 6, &bin, &args, &probe);
    assert_string_equal(bin, "/opt/kfleet/kwok/" KF_KWOK_VERSION "/bin/kwok");
    assert_true(has_arg(args, "--kubeconfig={{certDir}}/kwok.kubeconfig"));
    assert_true(has_arg(args, "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake"));
    assert_true(has_arg(args, "--cidr=172.16.0.0/16"));
    assert_true(has_arg(args, "--server-address=10.0.0.3:21000"));
    assert_string_equal(json_string_value(json_object_get(probe, "path")), "/healthz");
    kf_catalog_bundle_files(&f->c, 6, collect, &sb);
    assert_string_equal(sb.buf, "ca.crt>ca.crt\nkwok.kubeconfig>kwok.kubeconfig secret\n");
    kf_strbuf_release(&sb);
    free(bin);
    json_decref(args);
    json_decref(probe);
}

static void test_fill(void **state)
{
    struct fixture *f = *state;
    char *bin;
    json_t *args, *probe;

    (void)state;
    /* unknown placeholders and stray braces stay as they are */
    f->components = json_pack("[{s:s, s:s, s:[s, s]}]", "name", "cp-addons", "binary", "x", "args",
                              "{{nope}} {{cluster}} {{", "}}{{index}}");
    f->c.components = f->components;
    render(f, 5, &bin, &args, &probe);
    assert_true(has_arg(args, "{{nope}} web-1 {{"));
    assert_true(has_arg(args, "}}0"));
    free(bin);
    json_decref(args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_etcd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubernetes_components, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_component_and_profile_override, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bundle_files_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kwok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_grades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
