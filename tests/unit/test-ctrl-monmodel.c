/* test-ctrl-monmodel.c: the monitoring controller turning guest control
 * planes into what the edge Prometheus scrapes, as an operator finds it
 * under <data-dir>/monitoring/: kfleetd in external mode over the memory
 * store, a unit with two hosts, and guest clusters whose etcd, apiserver,
 * controller manager and scheduler members are objects. A cluster's
 * Kubernetes components get a job of their own once its PKI holds the
 * monitoring identity (from kfleetd's working copy or, without one, from
 * the store), with the identity's files beside the config (the key 0600);
 * a renewed certificate changes the files and not the config; a cluster
 * whose PKI lacks the identity, or holds a broken one, says so in an Event
 * and does not keep the others from being rendered; members that go take
 * their job, targets and files with them. promtool checks every config the
 * controller makes live. */
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "capacity-test.h"
#include "kfleet/monitoring.h"

#define EDGE "edge-u1-a"

struct monfx {
    struct capfx f;
    char dir[64];
    char *root; /* <dir>/monitoring */
    struct kf_mon *mon;
};

static void mon_start(struct monfx *m)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_mon_config c;
    struct kf_ctrl_env env = { 0 };

    kf_mon_config_init(&c);
    c.mode = KF_MON_EXTERNAL;
    /* nobody listens there: reloads fail and are retried, which is fine */
    c.centrals = kf_xcalloc(1, sizeof(*c.centrals));
    c.centrals[0].name = kf_xstrdup("central-a");
    c.centrals[0].listen = kf_xstrdup("127.0.0.1:9");
    c.n_centrals = 1;
    c.alertmanagers = kf_xcalloc(1, sizeof(*c.alertmanagers));
    c.alertmanagers[0].name = kf_xstrdup("am-a");
    c.alertmanagers[0].listen = kf_xstrdup("127.0.0.1:7");
    c.alertmanagers[0].cluster = kf_xstrdup("127.0.0.1:5");
    c.n_alertmanagers = 1;
    c.kfleetd = kf_xstrdup("127.0.0.1:7480");
    c.adapter = kf_xstrdup("http://127.0.0.1:7480/alerts/v1/receivers");
    if (kf_mon_new(&c, m->dir, NULL, &m->mon, &err) < 0)
        fail_msg("monitoring: %s", err.buf);
    kf_mon_config_release(&c);
    m->f.leases = kf_lease_table_new(kf_now_ms());
    env.store = m->f.store;
    env.reg = m->f.reg;
    env.leases = m->f.leases;
    env.data_dir = m->dir;
    env.monitoring = m->mon;
    env.enabled = "monitoring";
    m->f.m = kf_ctrl_manager_new(m->f.store, m->f.reg);
    if (kf_ctrl_manager_add_defs(m->f.m, &env, &err) < 0)
        fail_msg("controllers: %s", err.buf);
    assert_int_equal(kf_ctrl_manager_start(m->f.m), 0);
    kf_strbuf_release(&err);
}

static void mon_open(struct monfx *m)
{
    memset(m, 0, sizeof(*m));
    capfx_open(&m->f);
    snprintf(m->dir, sizeof(m->dir), "/tmp/kf-monmodel-XXXXXX");
    assert_non_null(mkdtemp(m->dir));
    m->root = kf_xasprintf("%s/monitoring", m->dir);
}

static void mon_close(struct monfx *m)
{
    char *cmd = kf_xasprintf("rm -rf '%s'", m->dir);

    kf_ctrl_manager_free(m->f.m);
    m->f.m = NULL;
    kf_mon_free(m->mon);
    capfx_close(&m->f);
    if (system(cmd) != 0)
        print_error("cannot remove %s\n", m->dir);
    free(cmd);
    free(m->root);
}

/* <root>/<rel> as text, or NULL. */
static char *read_rel(struct monfx *m, const char *rel)
{
    char *path = kf_xasprintf("%s/%s", m->root, rel);
    FILE *f = fopen(path, "r");
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[4096];
    size_t n;

    free(path);
    if (!f)
        return NULL;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        kf_strbuf_add(&sb, buf, n);
    fclose(f);
    return kf_strbuf_detach(&sb, NULL);
}

/* Waits until <root>/<rel> contains text (or, with want false, until it
 * does not: a missing file does not). */
static bool wait_text(struct monfx *m, const char *rel, const char *text, bool want)
{
    char *last = NULL;

    for (int waited = 0; waited < WAIT_MS; waited += 50) {
        char *s = read_rel(m, rel);
        bool has = s && strstr(s, text);

        free(last);
        last = s;
        if (has == want) {
            free(last);
            return true;
        }
        sleep_ms(50);
    }
    print_error("%s %s \"%s\"; it reads:\n%s\n", rel, want ? "never got" : "kept", text,
                last ? last : "(no file)");
    free(last);
    return false;
}

static bool wait_gone(struct monfx *m, const char *rel)
{
    char *path = kf_xasprintf("%s/%s", m->root, rel);
    bool gone = false;

    for (int waited = 0; waited < WAIT_MS && !gone; waited += 50) {
        gone = access(path, F_OK) != 0;
        if (!gone)
            sleep_ms(50);
    }
    if (!gone)
        print_error("%s is still there\n", path);
    free(path);
    return gone;
}

static mode_t mode_of(struct monfx *m, const char *rel)
{
    char *path = kf_xasprintf("%s/%s", m->root, rel);
    struct stat st;
    int r = stat(path, &st);

    free(path);
    return r == 0 ? st.st_mode & 07777 : 0;
}

static int64_t mtime_ns(struct monfx *m, const char *rel)
{
    char *path = kf_xasprintf("%s/%s", m->root, rel);
    struct stat st;
    int r = stat(path, &st);

    free(path);
    return r == 0 ? (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec : -1;
}

#define PEM(type, what) "-----BEGIN " type "-----\n" what "\n-----END " type "-----\n"

static void write_pki_file(struct monfx *m, const char *cluster, const char *name, const char *text)
{
    char *dir = kf_xasprintf("%s/pki", m->dir);
    char *cdir = kf_xasprintf("%s/%s", dir, cluster);
    char *path = kf_xasprintf("%s/%s", cdir, name);
    char *tmp = kf_xasprintf("%s.tmp", path);
    FILE *f;

    mkdir(dir, 0700);
    mkdir(cdir, 0700);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
    free(tmp);
    free(path);
    free(cdir);
    free(dir);
}

/* The identity in the working copy, as the lifecycle controller keeps it. */
static void write_identity(struct monfx *m, const char *cluster, const char *serial)
{
    char ca[128], crt[128], key[128];

    snprintf(ca, sizeof(ca), PEM("CERTIFICATE", "%s CA"), cluster);
    snprintf(crt, sizeof(crt), PEM("CERTIFICATE", "%s monitoring %s"), cluster, serial);
    snprintf(key, sizeof(key), PEM("TEST KEY", "%s monitoring key %s"), cluster, serial);
    write_pki_file(m, cluster, "ca.crt", ca);
    write_pki_file(m, cluster, "monitoring.crt", crt);
    write_pki_file(m, cluster, "monitoring.key", key);
}

static void member(struct monfx *m, const char *cluster, const char *component, int n,
                   const char *host, const char *ports)
{
    char buf[1024];

    snprintf(buf, sizeof(buf),
             "{'metadata':{'name':'%s-%s-%d'},'spec':{'cluster':'%s','component':'%s',"
             "'version':'1.37','host':'%s','zone':'%s','ports':%s}}",
             cluster, component, n, cluster, component, host,
             strcmp(host, "h1") == 0 ? "z-a" : "z-b", ports);
    capfx_create(&m->f, &kf_kind_controlplanemember, buf);
}

static void k8s_members(struct monfx *m, const char *cluster, int port_base)
{
    char ports[128];

    snprintf(ports, sizeof(ports), "{'https':%d,'metrics':%d}", port_base, port_base);
    member(m, cluster, "kube-apiserver", 1, "h1", ports);
    snprintf(ports, sizeof(ports), "{'https':%d}", port_base + 1);
    member(m, cluster, "kube-controller-manager", 1, "h2", ports);
    snprintf(ports, sizeof(ports), "{'https':%d}", port_base + 2);
    member(m, cluster, "kube-scheduler", 1, "h2", ports);
}

static void test_guest_components(void **state)
{
    struct monfx m;
    struct kf_strbuf reasons = KF_STRBUF_INIT;
    char *s;
    int64_t cfg_mtime;

    (void)state;
    mon_open(&m);
    capfx_create(&m.f, &kf_kind_region,
                 "{'metadata':{'name':'r1','annotations':{'monitoring.kfleet.io/cascades':"
                 "'127.0.0.1:19301'}},'spec':{'zones':['z-a','z-b','z-c']}}");
    capfx_create(&m.f, &kf_kind_unit,
                 "{'metadata':{'name':'u1','annotations':{'monitoring.kfleet.io/edges':"
                 "'127.0.0.1:19201'}},'spec':{'region':'r1','zones':['z-a','z-b','z-c']}}");
    capfx_create(&m.f, &kf_kind_host,
                 "{'metadata':{'name':'h1','annotations':{'monitoring.kfleet.io/node-exporter':"
                 "'none'}},'spec':{'role':'meta','unit':'u1','zone':'z-a','address':'127.0.0.9',"
                 "'capacity':{'cpu':'8','memory':'32Gi'}}}");
    capfx_create(&m.f, &kf_kind_host,
                 "{'metadata':{'name':'h2','annotations':{'monitoring.kfleet.io/node-exporter':"
                 "'none'}},'spec':{'role':'meta','unit':'u1','zone':'z-b',"
                 "'capacity':{'cpu':'8','memory':'32Gi'}}}");
    member(&m, "c1", "etcd", 1, "h1", "{'client':23790,'peer':23800,'metrics':23810}");
    k8s_members(&m, "c1", 16443);
    mon_start(&m);

    /* no identity yet: etcd is scraped, the Kubernetes components are not,
     * and nothing names a file that does not exist */
    assert_true(wait_text(&m, EDGE "/targets/etcd.json", "127.0.0.9:23810", true));
    /* the controller writes the edge's files one after the other: wait for
     * the configuration too before reading it */
    assert_true(wait_text(&m, EDGE "/prometheus.yml", "scrape_configs", true));
    s = read_rel(&m, EDGE "/prometheus.yml");
    assert_non_null(s);
    assert_null(strstr(s, "guest-c1"));
    assert_null(strstr(s, "job_name: apiserver"));
    free(s);
    assert_int_equal(mode_of(&m, EDGE "/tls/c1/ca.crt"), 0);

    /* the identity appears in the working copy: the controller looks again
     * by itself (the PKI is not an object) and adds the cluster's job */
    write_identity(&m, "c1", "1");
    assert_true(wait_text(&m, EDGE "/prometheus.yml", "job_name: 'guest-c1'", true));
    s = read_rel(&m, EDGE "/prometheus.yml");
    assert_non_null(strstr(s, "    scheme: https\n"
                              "    tls_config:\n"
                              "      ca_file: 'tls/c1/ca.crt'\n"
                              "      cert_file: 'tls/c1/monitoring.crt'\n"
                              "      key_file: 'tls/c1/monitoring.key'\n"
                              "    file_sd_configs:\n"
                              "      - files:\n"
                              "          - 'targets/guest-c1.json'\n"));
    assert_null(strstr(s, "monitoring key"));
    free(s);
    s = read_rel(&m, EDGE "/targets/guest-c1.json");
    assert_non_null(s);
    /* at the host's address, else 127.0.0.1; labels as the etcd members' */
    assert_non_null(strstr(s, "{\"labels\": {\"cluster\": \"c1\", \"component\": "
                              "\"kube-apiserver\", \"host\": \"h1\", \"job\": \"apiserver\", "
                              "\"member\": \"c1-kube-apiserver-1\", \"region\": \"r1\", "
                              "\"unit\": \"u1\", \"zone\": \"z-a\"}, \"targets\": "
                              "[\"127.0.0.9:16443\"]}"));
    assert_non_null(strstr(s, "\"component\": \"kube-controller-manager\", \"host\": \"h2\", "
                              "\"job\": \"controller-manager\""));
    assert_non_null(strstr(s, "[\"127.0.0.1:16444\"]"));
    assert_non_null(strstr(s, "\"component\": \"kube-scheduler\", \"host\": \"h2\", "
                              "\"job\": \"scheduler\""));
    assert_non_null(strstr(s, "[\"127.0.0.1:16445\"]"));
    assert_null(strstr(s, "etcd"));
    free(s);
    s = read_rel(&m, EDGE "/tls/c1/monitoring.key");
    assert_non_null(s);
    assert_non_null(strstr(s, "c1 monitoring key 1"));
    free(s);
    assert_int_equal(mode_of(&m, EDGE "/tls/c1/monitoring.key"), 0600);
    assert_int_equal(mode_of(&m, EDGE "/tls/c1/monitoring.crt"), 0644);
    assert_int_equal(mode_of(&m, EDGE "/tls/c1"), 0700);
    assert_int_equal(mode_of(&m, EDGE "/tls"), 0700);

    /* a renewed certificate: new files, the same config (no reload) */
    cfg_mtime = mtime_ns(&m, EDGE "/prometheus.yml");
    write_identity(&m, "c1", "2");
    capfx_patch(&m.f, &kf_kind_host, "h2", "{'metadata':{'labels':{'touch':'1'}}}", false);
    assert_true(wait_text(&m, EDGE "/tls/c1/monitoring.crt", "c1 monitoring 2", true));
    assert_true(wait_text(&m, EDGE "/tls/c1/monitoring.key", "c1 monitoring key 2", true));
    assert_int_equal(mtime_ns(&m, EDGE "/prometheus.yml"), cfg_mtime);

    /* a cluster whose PKI is only in the store (this kfleetd has no
     * working copy of it) is scraped with the stored identity */
    {
        const char *doc = "{\"files\": {\"ca.crt\": \""
                          "-----BEGIN CERTIFICATE-----\\nc2 CA\\n"
                          "-----END CERTIFICATE-----\\n\", \"monitoring.crt\": \""
                          "-----BEGIN CERTIFICATE-----\\nc2 monitoring\\n-----END "
                          "CERTIFICATE-----\\n\", \"monitoring.key\": \"-----BEGIN TEST "
                          "KEY-----\\nc2 key\\n-----END TEST KEY-----\\n\"}}";

        assert_int_equal(kf_store_put(m.f.store, "/_pki/c2", doc, strlen(doc), 0, NULL), 0);
        k8s_members(&m, "c2", 17443);
    }
    assert_true(wait_text(&m, EDGE "/prometheus.yml", "job_name: 'guest-c2'", true));
    assert_true(wait_text(&m, EDGE "/tls/c2/monitoring.key", "c2 key", true));
    assert_true(wait_text(&m, EDGE "/targets/guest-c2.json", "127.0.0.9:17443", true));

    /* a PKI without the identity (an older cluster), or with a key that is
     * not PEM: left out, and said; the other clusters are still rendered
     * (what follows needs new renders) */
    write_pki_file(&m, "c3", "ca.crt", PEM("CERTIFICATE", "c3 CA"));
    k8s_members(&m, "c3", 18443);
    write_identity(&m, "c4", "1");
    write_pki_file(&m, "c4", "monitoring.key", "not a key\n");
    k8s_members(&m, "c4", 19443);
    for (int c = 3; c <= 4; c++) {
        const char *name = c == 3 ? "c3" : "c4";
        bool said = false;

        for (int waited = 0; waited < WAIT_MS && !said; waited += 50) {
            kf_strbuf_reset(&reasons);
            capfx_event_reasons(&m.f, "GuestCluster", name, &reasons);
            said = strstr(reasons.buf ? reasons.buf : "", "MonitoringIdentityMissing") != NULL;
            if (!said)
                sleep_ms(50);
        }
        if (!said)
            fail_msg("no MonitoringIdentityMissing event for %s: %s", name, reasons.buf);
    }
    s = read_rel(&m, EDGE "/prometheus.yml");
    assert_null(strstr(s, "guest-c3"));
    assert_null(strstr(s, "guest-c4"));
    assert_non_null(strstr(s, "guest-c2"));
    free(s);

    /* c1's Kubernetes members go: so do its job, targets and files */
    assert_int_equal(kf_registry_delete(m.f.reg, &kf_kind_controlplanemember, "c1-kube-apiserver-1",
                                        0, NULL, NULL),
                     0);
    assert_int_equal(kf_registry_delete(m.f.reg, &kf_kind_controlplanemember,
                                        "c1-kube-controller-manager-1", 0, NULL, NULL),
                     0);
    assert_int_equal(kf_registry_delete(m.f.reg, &kf_kind_controlplanemember, "c1-kube-scheduler-1",
                                        0, NULL, NULL),
                     0);
    assert_true(wait_text(&m, EDGE "/prometheus.yml", "guest-c1", false));
    assert_true(wait_gone(&m, EDGE "/targets/guest-c1.json"));
    assert_true(wait_gone(&m, EDGE "/tls/c1"));
    s = read_rel(&m, EDGE "/prometheus.yml");
    assert_non_null(strstr(s, "guest-c2"));
    free(s);
    assert_true(wait_text(&m, EDGE "/targets/etcd.json", "c1-etcd-1", true));

    kf_strbuf_release(&reasons);
    mon_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guest_components),
    };

    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
