/* test-etcd-cluster.c: a real three-member etcd cluster (Debian's
 * /usr/bin/etcd) started by the runner with the PKI's certificates, TLS
 * for clients and peers, on loopback ports in a temporary directory.
 *
 * It waits until the HTTPS /health probe (with the etcd client
 * certificate) says healthy on all three, writes and reads a key with
 * etcdctl (run as a runner task), stops one member and writes again
 * (quorum holds), starts it again and reads the key from it (it rejoined
 * and caught up), kills another with SIGKILL and watches the runner bring
 * it back, and finally stops the members one by one and checks, by pid,
 * that nothing is left. Skipped when etcd or etcdctl is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "runner-testlib.h"
#include "kfleet/catalog-etcd.h"
#include "kfleet/pki.h"

#define N 3

struct cluster {
    char *dir, *pki;
    struct kf_runner *r;
    char *names[N];
    int client[N], peer[N], metrics[N];
    int pids_seen[64];
    size_t n_pids;
    struct kf_argv argv[N];
    char *data[N];
    char *peer_urls[N];
    char *state;
    char *ca, *cli_crt, *cli_key;
    int children_before;
};

static void remember_pid(struct cluster *c, int pid)
{
    for (size_t i = 0; i < c->n_pids; i++)
        if (c->pids_seen[i] == pid)
            return;
    if (pid > 0 && c->n_pids < KF_ARRAY_SIZE(c->pids_seen))
        c->pids_seen[c->n_pids++] = pid;
}

static struct kf_proc_spec member_spec(struct cluster *c, int i)
{
    struct kf_proc_spec s = { .name = c->names[i],
                              .argv = (const char *const *)c->argv[i].v,
                              .workdir = c->data[i],
                              .stop_grace_ms = 5000 };

    s.readiness = (struct kf_probe){ .type = KF_PROBE_HTTP,
                                     .port = c->client[i],
                                     .path = "/health",
                                     .https = true,
                                     .ca_file = c->ca,
                                     .cert_file = c->cli_crt,
                                     .key_file = c->cli_key,
                                     .period_ms = 100,
                                     .timeout_ms = 1000,
                                     .failure_threshold = 3 };
    return s;
}

static void apply_member(struct cluster *c, int i)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_proc_spec s = member_spec(c, i);

    if (kf_runner_apply(c->r, &s, &err) < 0)
        fail_msg("apply %s: %s", c->names[i], err.buf);
    kf_strbuf_release(&err);
}

static struct kf_proc_status wait_ready(struct cluster *c, int i)
{
    struct kf_runner_event ev;

    if (!t_wait_phase(c->r, c->names[i], KF_PROC_READY, &ev)) {
        struct kf_proc_status st;
        kf_runner_get(c->r, c->names[i], &st);
        fail_msg("%s never became ready: %s: %s", c->names[i], kf_proc_phase_name(st.phase),
                 st.message);
    }
    remember_pid(c, ev.status.pid);
    return ev.status;
}

/* etcdctl against member i, as a runner task; returns its output. */
static char *etcdctl(struct cluster *c, int i, const char *const *args, bool *ok)
{
    static int seq;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_argv a = { 0 };
    struct kf_task_result *res;
    struct kf_runner_event ev;
    char id[64];
    char *out = NULL;
    int n;

    kf_argv_add(&a, "etcdctl");
    kf_argv_addf(&a, "--endpoints=https://127.0.0.1:%d", c->client[i]);
    kf_argv_addf(&a, "--cacert=%s", c->ca);
    kf_argv_addf(&a, "--cert=%s", c->cli_crt);
    kf_argv_addf(&a, "--key=%s", c->cli_key);
    kf_argv_add(&a, "--command-timeout=5s");
    for (size_t k = 0; args[k]; k++)
        kf_argv_add(&a, args[k]);
    snprintf(id, sizeof(id), "etcdctl-%d", ++seq);
    {
        const char *env[] = { "ETCDCTL_API=3", NULL };
        struct kf_task_spec t = {
            .id = id, .argv = (const char *const *)a.v, .env = env, .timeout_ms = 15000
        };
        if (kf_runner_task_start(c->r, &t, &err) < 0)
            fail_msg("etcdctl task: %s", err.buf);
    }
    if (!t_wait(c->r, id, t_is_done, NULL, NULL, &ev))
        fail_msg("etcdctl task %s did not finish", id);
    n = kf_runner_task_results(c->r, &res);
    for (int k = 0; k < n; k++)
        if (!strcmp(res[k].id, id)) {
            *ok = res[k].succeeded;
            out = kf_xstrdup(res[k].output);
        }
    kf_task_results_free(res, (size_t)n);
    assert_int_equal(kf_runner_task_ack(c->r, id), 0);
    assert_non_null(out);
    kf_argv_release(&a);
    kf_strbuf_release(&err);
    return out;
}

static void put_ok(struct cluster *c, int i, const char *key, const char *value)
{
    const char *args[] = { "put", key, value, NULL };
    bool ok = false;
    char *out = etcdctl(c, i, args, &ok);

    if (!ok || strcmp(out, "OK\n"))
        fail_msg("put %s through %s: %s", key, c->names[i], out);
    free(out);
}

/* A serializable (local) read from member i, retried until it shows
 * `want` (a member that just rejoined catches up). */
static void get_eventually(struct cluster *c, int i, const char *key, const char *want)
{
    const char *args[] = { "get", key, "--print-value-only", "--consistency=s", NULL };
    char *out = NULL;

    for (int tries = 0; tries < 50; tries++) {
        bool ok = false;
        free(out);
        out = etcdctl(c, i, args, &ok);
        if (ok && !strcmp(out, want))
            break;
        usleep(100000);
    }
    assert_string_equal(out, want);
    free(out);
}

static void test_member_argv(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_etcd_peer peers[] = { { "e0", "https://10.0.0.1:2380" },
                                    { "e1", "https://10.0.0.2:2380" } };
    struct kf_etcd_member_spec s = { .cluster = "g1",
                                     .name = "e1",
                                     .data_dir = "/var/lib/e1",
                                     .listen_ip = "10.0.0.2",
                                     .client_port = 2379,
                                     .peer_port = 2380,
                                     .metrics_port = 2381,
                                     .trusted_ca_file = "/p/ca.crt",
                                     .cert_file = "/p/s.crt",
                                     .key_file = "/p/s.key",
                                     .peer_cert_file = "/p/p.crt",
                                     .peer_key_file = "/p/p.key",
                                     .peers = peers,
                                     .n_peers = 2,
                                     .existing = true,
                                     .quota_bytes = kf_etcd_quota_for_grade(5) };
    struct kf_argv a = { 0 };
    struct kf_strbuf all = KF_STRBUF_INIT;

    (void)state;
    assert_int_equal(kf_etcd_member_argv(&s, &a, &err), 0);
    assert_string_equal(a.v[0], "/usr/bin/etcd");
    for (size_t i = 0; i < a.n; i++)
        kf_strbuf_addf(&all, "%s\n", a.v[i]);
    assert_non_null(strstr(all.buf, "--initial-cluster=e0=https://10.0.0.1:2380,"
                                    "e1=https://10.0.0.2:2380\n"));
    assert_non_null(strstr(all.buf, "--initial-cluster-state=existing\n"));
    assert_non_null(strstr(all.buf, "--listen-client-urls=https://10.0.0.2:2379\n"));
    assert_non_null(strstr(all.buf, "--listen-metrics-urls=http://10.0.0.2:2381\n"));
    assert_non_null(strstr(all.buf, "--client-cert-auth=true\n"));
    assert_non_null(strstr(all.buf, "--peer-client-cert-auth=true\n"));
    assert_non_null(strstr(all.buf, "--quota-backend-bytes=17179869184\n"));
    assert_non_null(strstr(all.buf, "--initial-cluster-token=kfleet-g1\n"));
    assert_int_equal(kf_etcd_quota_for_grade(0), 8LL << 30);
    kf_argv_release(&a);

    /* Refused: plain http peers, a member missing from its peers, clashing
     * ports. */
    peers[0].peer_url = "http://10.0.0.1:2380";
    assert_int_equal(kf_etcd_member_argv(&s, &a, &err), -EINVAL);
    peers[0].peer_url = "https://10.0.0.1:2380";
    s.name = "e2";
    assert_int_equal(kf_etcd_member_argv(&s, &a, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "not among its peers"));
    s.name = "e1";
    s.metrics_port = 2379;
    assert_int_equal(kf_etcd_member_argv(&s, &a, &err), -EINVAL);
    assert_int_equal(a.n, 0);
    kf_strbuf_release(&all);
    kf_strbuf_release(&err);
}

static void test_three_member_cluster(void **state)
{
    struct cluster *cp = *state, c_unused;
#define c (*cp)
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *lo[] = { "127.0.0.1", NULL };
    const char *localhost[] = { "localhost", NULL };
    struct kf_pki_etcd_member pm[N];
    struct kf_etcd_peer peers[N];
    struct kf_runner_config cfg;
    struct kf_proc_status st;
    struct kf_strbuf detail = KF_STRBUF_INIT;
    int victim_pid;

    (void)c_unused;
    if (access("/usr/bin/etcd", X_OK) < 0 || access("/usr/bin/etcdctl", X_OK) < 0) {
        print_message("      etcd or etcdctl is not installed: skipped\n");
        skip();
    }
    c.pki = kf_xasprintf("%s/pki", c.dir);
    for (int i = 0; i < N; i++) {
        c.names[i] = kf_xasprintf("etcd-%c", 'a' + i);
        c.client[i] = kf_test_port();
        c.peer[i] = kf_test_port();
        c.metrics[i] = kf_test_port();
        c.data[i] = kf_xasprintf("%s/data/%s", c.dir, c.names[i]);
        pm[i] = (struct kf_pki_etcd_member){ .name = c.names[i],
                                             .ip_addresses = lo,
                                             .dns_names = localhost };
        c.peer_urls[i] = kf_xasprintf("https://127.0.0.1:%d", c.peer[i]);
        peers[i] = (struct kf_etcd_peer){ .name = c.names[i], .peer_url = c.peer_urls[i] };
    }
    {
        struct kf_pki_cluster_spec ps = { .cluster = "etcd-test",
                                          .etcd_members = pm,
                                          .n_etcd_members = N };
        if (kf_pki_cluster_ensure(c.pki, &ps, &err) < 0)
            fail_msg("pki: %s", err.buf);
    }
    c.ca = kf_xasprintf("%s/etcd/ca.crt", c.pki);
    c.cli_crt = kf_xasprintf("%s/etcd/client.crt", c.pki);
    c.cli_key = kf_xasprintf("%s/etcd/client.key", c.pki);
    for (int i = 0; i < N; i++) {
        char *crt = kf_xasprintf("%s/etcd/%s-server.crt", c.pki, c.names[i]);
        char *key = kf_xasprintf("%s/etcd/%s-server.key", c.pki, c.names[i]);
        char *pcrt = kf_xasprintf("%s/etcd/%s-peer.crt", c.pki, c.names[i]);
        char *pkey = kf_xasprintf("%s/etcd/%s-peer.key", c.pki, c.names[i]);
        struct kf_etcd_member_spec es = { .cluster = "etcd-test",
                                          .name = c.names[i],
                                          .data_dir = c.data[i],
                                          .listen_ip = "127.0.0.1",
                                          .client_port = c.client[i],
                                          .peer_port = c.peer[i],
                                          .metrics_port = c.metrics[i],
                                          .trusted_ca_file = c.ca,
                                          .cert_file = crt,
                                          .key_file = key,
                                          .peer_cert_file = pcrt,
                                          .peer_key_file = pkey,
                                          .peers = peers,
                                          .n_peers = N,
                                          .quota_bytes = 64 << 20,
                                          .heartbeat_ms = 50,
                                          .election_ms = 500 };
        if (kf_etcd_member_argv(&es, &c.argv[i], &err) < 0)
            fail_msg("argv: %s", err.buf);
        free(crt);
        free(key);
        free(pcrt);
        free(pkey);
    }

    memset(&cfg, 0, sizeof(cfg));
    c.state = kf_xasprintf("%s/state", c.dir);
    cfg.state_dir = c.state;
    cfg.backoff_initial_ms = 100;
    cfg.backoff_max_ms = 1000;
    assert_int_equal(kf_runner_new("real", &cfg, &c.r, &err), 0);
    t_reset_backlog();

    /* All three healthy over HTTPS with the client certificate. */
    for (int i = 0; i < N; i++)
        apply_member(&c, i);
    for (int i = 0; i < N; i++)
        wait_ready(&c, i);
    /* Prometheus' port is plain http. */
    {
        struct kf_probe m = { .type = KF_PROBE_HTTP, .port = c.metrics[1], .path = "/metrics" };
        assert_true(kf_probe_check(&m, &detail));
    }
    /* Without a client certificate etcd refuses the client port. */
    {
        struct kf_probe noclient = { .type = KF_PROBE_HTTP,
                                     .port = c.client[0],
                                     .path = "/health",
                                     .https = true,
                                     .ca_file = c.ca };
        assert_false(kf_probe_check(&noclient, &detail));
    }

    put_ok(&c, 0, "kfleet/test", "one");
    get_eventually(&c, 2, "kfleet/test", "one\n");

    /* One member down: two of three still make a quorum. */
    assert_int_equal(kf_runner_stop(c.r, c.names[2]), 0);
    if (!t_wait_phase(c.r, c.names[2], KF_PROC_STOPPED, NULL))
        fail_msg("etcd-c did not stop");
    put_ok(&c, 0, "kfleet/during-outage", "two");
    /* Back again: it rejoins and has what was written while it was away. */
    apply_member(&c, 2);
    wait_ready(&c, 2);
    get_eventually(&c, 2, "kfleet/during-outage", "two\n");

    /* A crash: the runner restarts it, and it serves again. */
    assert_int_equal(kf_runner_get(c.r, c.names[1], &st), 0);
    victim_pid = st.pid;
    assert_int_equal(kill(victim_pid, SIGKILL), 0);
    {
        struct kf_runner_event ev;
        if (!t_wait_phase(c.r, c.names[1], KF_PROC_BACKOFF, &ev))
            fail_msg("etcd-b was not seen to crash");
        assert_int_equal(ev.status.last_exit.signal, SIGKILL);
    }
    st = wait_ready(&c, 1);
    assert_int_equal(st.restarts, 1);
    assert_int_not_equal(st.pid, victim_pid);
    put_ok(&c, 1, "kfleet/after-crash", "three");
    get_eventually(&c, 0, "kfleet/after-crash", "three\n");

    /* Stop everything, one member after the other (all at once, the leader
     * would wait for a leadership transfer to peers that are going away,
     * until SIGKILL after the grace period): no etcd and no keeper is
     * left. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(kf_runner_stop(c.r, c.names[i]), 0);
        assert_true(t_wait_phase(c.r, c.names[i], KF_PROC_STOPPED, NULL));
    }
    assert_int_equal(kf_runner_stop_all(c.r, 20000), 0);
    kf_runner_free(c.r);
    c.r = NULL;
    for (size_t i = 0; i < c.n_pids; i++)
        assert_false(t_pid_alive(c.pids_seen[i]));
    assert_int_equal(t_count_children(), c.children_before);
    kf_strbuf_release(&detail);
    kf_strbuf_release(&err);
#undef c
}

static int setup(void **state)
{
    struct cluster *c = kf_xcalloc(1, sizeof(*c));

    c->children_before = t_count_children();
    c->dir = t_mkdtemp();
    *state = c;
    return 0;
}

/* Stops whatever the test left running, even when it failed half-way. */
static int teardown(void **state)
{
    struct cluster *c = *state;
    int leftovers;

    if (c->r) {
        kf_runner_stop_all(c->r, 20000);
        kf_runner_free(c->r);
    }
    leftovers = t_kill_leftovers(c->dir);
    t_rm_rf(c->dir);
    for (int i = 0; i < N; i++) {
        free(c->names[i]);
        free(c->data[i]);
        free(c->peer_urls[i]);
        kf_argv_release(&c->argv[i]);
    }
    free(c->state);
    free(c->dir);
    free(c->pki);
    free(c->ca);
    free(c->cli_crt);
    free(c->cli_key);
    free(c);
    assert_int_equal(leftovers, 0);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_member_argv),
        cmocka_unit_test_setup_teardown(test_three_member_cluster, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
