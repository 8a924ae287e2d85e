/* test-pki.c: guest-cluster PKI, checked with the openssl command line
 * (an independent implementation reading our files) and kubectl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "runner-testlib.h"
#include "kfleet/pki.h"

struct fx {
    char *dir;
};

static int setup(void **state)
{
    struct fx *f = kf_xcalloc(1, sizeof(*f));

    f->dir = t_mkdtemp();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    t_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static char *path_in(const struct fx *f, const char *name)
{
    return kf_xasprintf("%s/%s", f->dir, name);
}

/* Whether `openssl verify [-purpose P] -CAfile ca cert` says OK, compared
 * with what the test wants (its output is shown when they differ). */
static bool verify_is(const char *ca, const char *cert, const char *purpose, bool want)
{
    const char *argv_p[] = { "openssl", "verify", "-purpose", purpose, "-CAfile", ca, cert, NULL };
    const char *argv_n[] = { "openssl", "verify", "-CAfile", ca, cert, NULL };
    char *out = NULL;
    int rc = t_run(purpose ? argv_p : argv_n, &out);
    bool ok = rc == 0 && strstr(out, ": OK");

    if (ok != want)
        print_message("      openssl verify %s: %s", cert, out);
    free(out);
    return ok == want;
}

/* `openssl x509 -noout -text` of a file. */
static char *x509_text(const char *cert)
{
    const char *argv[] = { "openssl", "x509", "-in", cert, "-noout", "-text", NULL };
    char *out = NULL;

    assert_int_equal(t_run(argv, &out), 0);
    return out;
}

static int file_mode(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 07777);
}

static void test_ca_and_leaf_certs(void **state)
{
    struct fx *f = *state;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_pki_ca *ca = NULL, *ca2 = NULL;
    struct kf_pki_cert *srv = NULL, *cli = NULL, *admin = NULL, *more = NULL;
    const char *dns[] = { "etcd-0", "etcd-0.guest.example", NULL };
    const char *ips[] = { "127.0.0.1", "10.96.0.1", "fd00::1", NULL };
    const char *masters[] = { "system:masters", NULL };
    struct kf_pki_cert_req srv_req = {
        .common_name = "etcd-0", .dns_names = dns, .ip_addresses = ips, .usage = KF_PKI_SERVER
    };
    struct kf_pki_cert_req cli_req = { .common_name = "kfleet-etcd-client",
                                       .usage = KF_PKI_CLIENT };
    struct kf_pki_cert_req admin_req = { .common_name = "kfleet-admin",
                                         .organizations = masters,
                                         .usage = KF_PKI_CLIENT };
    char *ca_crt = path_in(f, "ca.crt"), *ca_key = path_in(f, "ca.key");
    char *srv_crt = path_in(f, "srv.crt"), *srv_key = path_in(f, "srv.key");
    char *cli_crt = path_in(f, "cli.crt"), *cli_key = path_in(f, "cli.key");
    char *adm_crt = path_in(f, "admin.crt"), *adm_key = path_in(f, "admin.key");
    char *more_crt = path_in(f, "more.crt"), *more_key = path_in(f, "more.key");
    char *text, *out = NULL;

    assert_int_equal(kf_pki_ca_create("kfleet-test-ca", 0, &ca, &err), 0);
    assert_int_equal(kf_pki_ca_save(ca, ca_crt, ca_key, &err), 0);
    assert_int_equal(kf_pki_issue(ca, &srv_req, &srv, &err), 0);
    assert_int_equal(kf_pki_cert_save(srv, srv_crt, srv_key, &err), 0);
    assert_int_equal(kf_pki_issue(ca, &cli_req, &cli, &err), 0);
    assert_int_equal(kf_pki_cert_save(cli, cli_crt, cli_key, &err), 0);
    assert_int_equal(kf_pki_issue(ca, &admin_req, &admin, &err), 0);
    assert_int_equal(kf_pki_cert_save(admin, adm_crt, adm_key, &err), 0);

    /* Each verifies against the CA, for its purpose only. */
    assert_true(verify_is(ca_crt, srv_crt, "sslserver", true));
    assert_true(verify_is(ca_crt, srv_crt, "sslclient", false));
    assert_true(verify_is(ca_crt, cli_crt, "sslclient", true));
    assert_true(verify_is(ca_crt, cli_crt, "sslserver", false));
    assert_true(verify_is(ca_crt, adm_crt, "sslclient", true));

    /* The CA: CA:TRUE, signs certificates, ECDSA P-256. */
    text = x509_text(ca_crt);
    assert_non_null(strstr(text, "CA:TRUE"));
    assert_non_null(strstr(text, "Certificate Sign"));
    assert_non_null(strstr(text, "prime256v1"));
    assert_non_null(strstr(text, "ecdsa-with-SHA256"));
    free(text);

    /* SANs and usages of the server certificate. */
    text = x509_text(srv_crt);
    assert_non_null(strstr(text, "DNS:etcd-0, DNS:etcd-0.guest.example"));
    assert_non_null(strstr(text, "IP Address:127.0.0.1"));
    assert_non_null(strstr(text, "IP Address:10.96.0.1"));
    assert_non_null(strstr(text, "IP Address:FD00:0:0:0:0:0:0:1"));
    assert_non_null(strstr(text, "TLS Web Server Authentication"));
    assert_null(strstr(text, "TLS Web Client Authentication"));
    assert_non_null(strstr(text, "CA:FALSE"));
    assert_non_null(strstr(text, "Digital Signature"));
    assert_non_null(strstr(text, "Issuer: CN = kfleet-test-ca"));
    free(text);
    text = x509_text(cli_crt);
    assert_non_null(strstr(text, "TLS Web Client Authentication"));
    assert_null(strstr(text, "Subject Alternative Name"));
    free(text);

    /* The admin is in system:masters. */
    {
        const char *argv[] = { "openssl", "x509", "-in", adm_crt, "-noout", "-subject", NULL };
        assert_int_equal(t_run(argv, &out), 0);
        assert_string_equal(out, "subject=O = system:masters, CN = kfleet-admin\n");
        free(out);
    }
    /* Keys are 0600, certificates 0644, and each key belongs to its
     * certificate. */
    assert_int_equal(file_mode(ca_key), 0600);
    assert_int_equal(file_mode(srv_key), 0600);
    assert_int_equal(file_mode(adm_key), 0600);
    assert_int_equal(file_mode(ca_crt), 0644);
    assert_int_equal(file_mode(srv_crt), 0644);
    {
        const char *a1[] = { "openssl", "x509", "-in", srv_crt, "-noout", "-pubkey", NULL };
        const char *a2[] = { "openssl", "pkey", "-in", srv_key, "-pubout", NULL };
        char *p1 = NULL, *p2 = NULL;
        assert_int_equal(t_run(a1, &p1), 0);
        assert_int_equal(t_run(a2, &p2), 0);
        assert_string_equal(p1, p2);
        free(p1);
        free(p2);
    }

    /* The CA read back issues more certificates that verify. */
    assert_int_equal(kf_pki_ca_load(ca_crt, ca_key, &ca2, &err), 0);
    assert_int_equal(kf_pki_issue(ca2, &srv_req, &more, &err), 0);
    assert_int_equal(kf_pki_cert_save(more, more_crt, more_key, &err), 0);
    assert_true(verify_is(ca_crt, more_crt, "sslserver", true));
    /* A leaf is not a CA, and a key must match. */
    kf_pki_ca_free(ca2);
    ca2 = NULL;
    assert_int_equal(kf_pki_ca_load(srv_crt, srv_key, &ca2, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "not a CA"));
    assert_int_equal(kf_pki_ca_load(ca_crt, srv_key, &ca2, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "does not belong"));

    kf_pki_cert_free(srv);
    kf_pki_cert_free(cli);
    kf_pki_cert_free(admin);
    kf_pki_cert_free(more);
    kf_pki_ca_free(ca);
    kf_strbuf_release(&err);
    free(ca_crt);
    free(ca_key);
    free(srv_crt);
    free(srv_key);
    free(cli_crt);
    free(cli_key);
    free(adm_crt);
    free(adm_key);
    free(more_crt);
    free(more_key);
}

static void test_bad_requests(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_pki_ca *ca = NULL;
    struct kf_pki_cert *c = NULL;
    const char *evil_dns[] = { "a.example,IP:6.6.6.6", NULL };
    const char *evil_ip[] = { "1.2.3.4,DNS:evil", NULL };
    const char *fine[] = { "127.0.0.1", NULL };
    struct kf_pki_cert_req req = { .common_name = "x", .usage = KF_PKI_SERVER };

    (void)state;
    assert_int_equal(kf_pki_ca_create("ca", 1, &ca, &err), 0);
    /* A name cannot smuggle in another SAN. */
    req.dns_names = evil_dns;
    assert_int_equal(kf_pki_issue(ca, &req, &c, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "not a DNS name"));
    req.dns_names = NULL;
    req.ip_addresses = evil_ip;
    assert_int_equal(kf_pki_issue(ca, &req, &c, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "not an IP address"));
    /* A server certificate needs a name to serve. */
    req.ip_addresses = NULL;
    assert_int_equal(kf_pki_issue(ca, &req, &c, &err), -EINVAL);
    req.ip_addresses = fine;
    req.usage = 0;
    assert_int_equal(kf_pki_issue(ca, &req, &c, &err), -EINVAL);
    req.usage = KF_PKI_SERVER;
    req.common_name = "bad\ncn";
    assert_int_equal(kf_pki_issue(ca, &req, &c, &err), -EINVAL);
    assert_null(c);
    kf_pki_ca_free(ca);
    kf_strbuf_release(&err);
}

static void test_renewal_check(void **state)
{
    struct fx *f = *state;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_pki_ca *ca = NULL;
    struct kf_pki_cert *c = NULL;
    struct kf_pki_cert_req req = { .common_name = "short", .usage = KF_PKI_CLIENT, .days = 10 };
    struct kf_pki_cert_info info;
    char *crt = path_in(f, "short.crt"), *key = path_in(f, "short.key");
    char *missing = path_in(f, "missing.crt");
    bool soon = false;

    assert_int_equal(kf_pki_ca_create("ca", 100, &ca, &err), 0);
    assert_int_equal(kf_pki_issue(ca, &req, &c, &err), 0);
    assert_int_equal(kf_pki_cert_save(c, crt, key, &err), 0);
    assert_int_equal(kf_pki_cert_file_info(crt, &info, &err), 0);
    assert_string_equal(info.common_name, "short");
    assert_false(info.is_ca);
    /* Valid for ten days (from five minutes ago). */
    assert_true(info.not_after_ms - info.not_before_ms >= 10LL * 86400 * 1000);
    assert_true(info.not_after_ms - info.not_before_ms <= 10LL * 86400 * 1000 + 600 * 1000);
    assert_int_equal(kf_pki_expires_within(crt, 30, &soon, &err), 0);
    assert_true(soon);
    assert_int_equal(kf_pki_expires_within(crt, 5, &soon, &err), 0);
    assert_false(soon);
    assert_int_equal(kf_pki_expires_within(missing, 5, &soon, &err), -ENOENT);
    kf_pki_cert_free(c);
    kf_pki_ca_free(ca);
    kf_strbuf_release(&err);
    free(crt);
    free(key);
    free(missing);
}

static void test_cluster_layout(void **state)
{
    struct fx *f = *state;
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *lo[] = { "127.0.0.1", NULL };
    const char *ip1[] = { "127.0.0.1", "10.0.1.5", NULL };
    const char *dns0[] = { "localhost", NULL };
    struct kf_pki_etcd_member members[] = {
        { .name = "etcd-a", .ip_addresses = lo, .dns_names = dns0 },
        { .name = "etcd-b", .ip_addresses = lo, .dns_names = dns0 },
        { .name = "etcd-c", .ip_addresses = lo, .dns_names = dns0 },
    };
    const char *api_ips[] = { "10.96.0.1", "192.0.2.10", NULL };
    const char *api_dns[] = { "api.guest-1.example", NULL };
    struct kf_pki_cluster_spec spec = { .cluster = "guest-1",
                                        .etcd_members = members,
                                        .n_etcd_members = 3,
                                        .apiserver_ips = api_ips,
                                        .apiserver_dns = api_dns };
    char *pki = path_in(f, "pki");
    char *ca = kf_xasprintf("%s/ca.crt", pki), *eca = kf_xasprintf("%s/etcd/ca.crt", pki);
    char *api = kf_xasprintf("%s/apiserver.crt", pki), *adm = kf_xasprintf("%s/admin.crt", pki);
    char *srv = kf_xasprintf("%s/etcd/etcd-b-server.crt", pki);
    char *peer = kf_xasprintf("%s/etcd/etcd-b-peer.crt", pki);
    char *cli = kf_xasprintf("%s/etcd/client.crt", pki);
    char *key = kf_xasprintf("%s/etcd/etcd-b-peer.key", pki);
    char *text;
    struct stat st1, st2;

    /* 2 CAs + apiserver + admin + etcd client + 3 x (server, peer). */
    assert_int_equal(kf_pki_cluster_ensure(pki, &spec, &err), 11);
    assert_true(verify_is(ca, api, "sslserver", true));
    assert_true(verify_is(ca, adm, "sslclient", true));
    assert_true(verify_is(eca, srv, "sslserver", true));
    assert_true(verify_is(eca, peer, "sslserver", true));
    assert_true(verify_is(eca, peer, "sslclient", true));
    assert_true(verify_is(eca, cli, "sslclient", true));
    /* Two CAs: a Kubernetes client certificate does not open etcd. */
    assert_true(verify_is(eca, adm, NULL, false));
    assert_true(verify_is(ca, cli, NULL, false));
    assert_int_equal(file_mode(key), 0600);
    assert_int_equal(file_mode(pki) & 0777, 0700);
    text = x509_text(api);
    assert_non_null(strstr(text, "IP Address:10.96.0.1")); /* the first service IP */
    assert_non_null(strstr(text, "IP Address:192.0.2.10"));
    assert_non_null(strstr(text, "DNS:api.guest-1.example"));
    assert_non_null(strstr(text, "DNS:kubernetes.default.svc.cluster.local"));
    assert_non_null(strstr(text, "IP Address:127.0.0.1"));
    free(text);

    /* Again: nothing to do, nothing rewritten. */
    assert_int_equal(stat(srv, &st1), 0);
    assert_int_equal(kf_pki_cluster_ensure(pki, &spec, &err), 0);
    assert_int_equal(stat(srv, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);

    /* etcd-b moves: only its two certificates change. */
    members[1].ip_addresses = ip1;
    assert_int_equal(kf_pki_cluster_ensure(pki, &spec, &err), 2);
    text = x509_text(peer);
    assert_non_null(strstr(text, "IP Address:10.0.1.5"));
    free(text);

    /* Certificates close to expiry are renewed. */
    spec.renew_days = 400;
    assert_int_equal(kf_pki_cluster_ensure(pki, &spec, &err), 9);
    spec.renew_days = 0;
    /* A certificate that its CA did not sign is replaced. */
    {
        struct kf_pki_ca *other = NULL;
        struct kf_pki_cert *c = NULL;
        struct kf_pki_cert_req r = { .common_name = "kfleet-admin", .usage = KF_PKI_CLIENT };
        char *akey = kf_xasprintf("%s/admin.key", pki);
        assert_int_equal(kf_pki_ca_create("intruder", 1, &other, &err), 0);
        assert_int_equal(kf_pki_issue(other, &r, &c, &err), 0);
        assert_int_equal(kf_pki_cert_save(c, adm, akey, &err), 0);
        assert_true(verify_is(ca, adm, NULL, false));
        assert_int_equal(kf_pki_cluster_ensure(pki, &spec, &err), 1);
        assert_true(verify_is(ca, adm, "sslclient", true));
        kf_pki_cert_free(c);
        kf_pki_ca_free(other);
        free(akey);
    }
    members[0].name = "bad name";
    assert_int_equal(kf_pki_cluster_ensure(pki, &spec, &err), -EINVAL);
    kf_strbuf_release(&err);
    free(pki);
    free(ca);
    free(eca);
    free(api);
    free(adm);
    free(srv);
    free(peer);
    free(cli);
    free(key);
}

static void test_kubeconfig(void **state)
{
    struct fx *f = *state;
    struct kf_strbuf err = KF_STRBUF_INIT, out = KF_STRBUF_INIT;
    const char *lo[] = { "127.0.0.1", NULL };
    struct kf_pki_etcd_member m = { .name = "etcd-a", .ip_addresses = lo };
    struct kf_pki_cluster_spec spec = { .cluster = "guest-2",
                                        .etcd_members = &m,
                                        .n_etcd_members = 1 };
    char *pki = path_in(f, "pki"), *kcfg = path_in(f, "kubeconfig");
    char *ca_crt = kf_xasprintf("%s/ca.crt", pki), *ca_pem, *got = NULL;
    const char *server[] = { "kubectl",
                             "config",
                             "view",
                             "--kubeconfig",
                             kcfg,
                             "--raw",
                             "-o",
                             "jsonpath={.clusters[0].cluster.server} {.current-context} "
                             "{.users[0].name}",
                             NULL };
    const char *cadata[] = {
        "kubectl", "config", "view", "--kubeconfig",
        kcfg,      "--raw",  "-o",   "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        NULL
    };
    struct kf_kubeconfig bad = { .cluster_name = "x", .server = "ftp://x" };

    assert_true(kf_pki_cluster_ensure(pki, &spec, &err) > 0);
    assert_int_equal(
        kf_pki_cluster_kubeconfig(pki, "guest-2", "https://127.0.0.1:6443", &out, &err), 0);
    t_write_file(kcfg, out.buf);
    /* kubectl reads it as we meant it. */
    assert_int_equal(t_run(server, &got), 0);
    assert_string_equal(got, "https://127.0.0.1:6443 guest-2 guest-2-admin");
    free(got);
    assert_int_equal(t_run(cadata, &got), 0);
    {
        /* The embedded CA is ca.crt, byte for byte. */
        unsigned char *dec = kf_xmalloc(strlen(got) + 1);
        int n = EVP_DecodeBlock(dec, (const unsigned char *)got, (int)strlen(got));
        ca_pem = t_read_file(ca_crt);
        assert_true(n >= (int)strlen(ca_pem));
        assert_memory_equal(dec, ca_pem, strlen(ca_pem));
        free(dec);
        free(ca_pem);
    }
    free(got);
    kf_strbuf_reset(&out);
    assert_int_equal(kf_pki_kubeconfig_render(&bad, &out, &err), -EINVAL);
    kf_strbuf_release(&out);
    kf_strbuf_release(&err);
    free(pki);
    free(kcfg);
    free(ca_crt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_and_leaf_certs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renewal_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
