/* pki-cluster.c: a guest cluster's whole PKI in one directory, kept up to
 * date (kf_pki_cluster_ensure in pki.h has the layout).
 *
 * Level-triggered like a controller: each call compares what is on disk
 * with what the spec asks for and issues only what is missing, stale
 * (not signed by the current CA, e.g. after the CA was replaced), about to
 * expire, or for other names (a member moved to another address). CAs are
 * created once and never replaced here: rotating a CA is a deliberate
 * operation (every client would have to learn the new one).
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/pki.h"
#include "kfleet/strbuf.h"
#include "pki/pki-internal.h"

static int mkdir_0700(const char *path, struct kf_strbuf *err)
{
    struct stat st;

    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return kf_err(err, -errno, "cannot create \"%s\": %s", path, strerror(errno));
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return kf_err(err, -ENOTDIR, "\"%s\" is not a directory", path);
    return 0;
}

static int load_or_create_ca(const char *dir, const char *base, const char *cn, int days,
                             bool durable, struct kf_pki_ca **ret, int *issued,
                             struct kf_strbuf *err)
{
    char *crt = kf_xasprintf("%s/%s.crt", dir, base), *key = kf_xasprintf("%s/%s.key", dir, base);
    int rc;

    if (access(crt, F_OK) == 0 || access(key, F_OK) == 0) {
        rc = kf_pki_ca_load(crt, key, ret, err);
    } else {
        rc = kf_pki_ca_create(cn, days, ret, err);
        if (rc == 0) {
            rc = kf_pki_ca_write(*ret, crt, key, durable, err);
            if (rc < 0) {
                kf_pki_ca_free(*ret);
                *ret = NULL;
            } else {
                (*issued)++;
            }
        }
    }
    free(crt);
    free(key);
    return rc;
}

/* The SANs a request asks for, in kf_pki_x509_sans() form. */
static void wanted_sans(const struct kf_pki_cert_req *req, struct kf_strbuf *out)
{
    char **v = NULL;
    size_t n = 0;

    for (size_t i = 0; req->dns_names && req->dns_names[i]; i++) {
        v = kf_xrealloc(v, (n + 1) * sizeof(*v));
        v[n++] = kf_xasprintf("DNS:%s", req->dns_names[i]);
    }
    for (size_t i = 0; req->ip_addresses && req->ip_addresses[i]; i++) {
        char ip[64];
        if (kf_pki_ip_normalize(req->ip_addresses[i], ip, sizeof(ip)) < 0)
            continue; /* kf_pki_issue rejects it */
        v = kf_xrealloc(v, (n + 1) * sizeof(*v));
        v[n++] = kf_xasprintf("IP:%s", ip);
    }
    kf_pki_sort_join(v, n, out);
}

/* Whether the pair on disk still serves `req`. */
static bool still_good(const struct kf_pki_ca *ca, const char *crt, const char *key,
                       const struct kf_pki_cert_req *req, int renew_days)
{
    struct kf_strbuf have = KF_STRBUF_INIT, want = KF_STRBUF_INIT;
    struct kf_pki_cert_info info;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    bool ok = false;

    if (kf_pki_read_x509(crt, &x, NULL) < 0 || kf_pki_read_key(key, &k, NULL) < 0)
        goto free_pair;
    if (X509_check_private_key(x, k) != 1 || !kf_pki_signed_by(x, ca))
        goto free_pair;
    kf_pki_x509_info(x, &info);
    if (info.not_after_ms <= kf_now_ms() + (int64_t)renew_days * 86400 * 1000)
        goto free_pair;
    if (strcmp(info.common_name, req->common_name))
        goto free_pair;
    kf_pki_x509_sans(x, &have);
    wanted_sans(req, &want);
    ok = !strcmp(have.buf, want.buf);
free_pair:
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    kf_strbuf_release(&have);
    kf_strbuf_release(&want);
    return ok;
}

static int ensure_cert(const struct kf_pki_ca *ca, const char *dir, const char *base,
                       const struct kf_pki_cert_req *req, int renew_days, bool durable, int *issued,
                       struct kf_strbuf *err)
{
    char *crt = kf_xasprintf("%s/%s.crt", dir, base), *key = kf_xasprintf("%s/%s.key", dir, base);
    struct kf_pki_cert *c = NULL;
    int rc = 0;

    if (!still_good(ca, crt, key, req, renew_days)) {
        rc = kf_pki_issue(ca, req, &c, err);
        if (rc == 0)
            rc = kf_pki_cert_write(c, crt, key, durable, err);
        if (rc == 0)
            (*issued)++;
        kf_pki_cert_free(c);
    }
    free(crt);
    free(key);
    return rc;
}

/* a followed by b, NULL-terminated; the strings are borrowed. */
static const char **concat(const char *const *a, const char *const *b)
{
    size_t na = 0, nb = 0;
    const char **v;

    while (a && a[na])
        na++;
    while (b && b[nb])
        nb++;
    v = kf_xcalloc(na + nb + 1, sizeof(*v));
    for (size_t i = 0; i < na; i++)
        v[i] = a[i];
    for (size_t i = 0; i < nb; i++)
        v[na + i] = b[i];
    return v;
}

int kf_pki_cluster_ensure(const char *dir, const struct kf_pki_cluster_spec *spec,
                          struct kf_strbuf *err)
{
    static const char *const api_dns[] = { "kubernetes",
                                           "kubernetes.default",
                                           "kubernetes.default.svc",
                                           "kubernetes.default.svc.cluster.local",
                                           "localhost",
                                           NULL };
    static const char *const loopback[] = { "127.0.0.1", NULL };
    static const char *const masters[] = { "system:masters", NULL };
    struct kf_pki_ca *ca = NULL, *etcd_ca = NULL;
    char *etcd_dir = kf_xasprintf("%s/etcd", dir);
    int ca_days = spec->ca_days ? spec->ca_days : 3650;
    int days = spec->cert_days ? spec->cert_days : 365;
    int renew = spec->renew_days ? spec->renew_days : 30;
    bool durable = !spec->working_copy;
    int issued = 0, rc;
    char *cn = NULL;

    if (!spec->cluster || !kf_pki_dns_name_valid(spec->cluster) || strchr(spec->cluster, '*')) {
        rc = kf_err(err, -EINVAL, "cluster name \"%s\" is not a DNS label",
                    spec->cluster ? spec->cluster : "");
        goto free_cas;
    }
    if ((rc = mkdir_0700(dir, err)) < 0 || (rc = mkdir_0700(etcd_dir, err)) < 0)
        goto free_cas;
    cn = kf_xasprintf("kfleet-%s-ca", spec->cluster);
    rc = load_or_create_ca(dir, "ca", cn, ca_days, durable, &ca, &issued, err);
    if (rc < 0)
        goto free_cas;
    free(cn);
    cn = kf_xasprintf("kfleet-%s-etcd-ca", spec->cluster);
    rc = load_or_create_ca(etcd_dir, "ca", cn, ca_days, durable, &etcd_ca, &issued, err);
    if (rc < 0)
        goto free_cas;

    {
        const char **ips = concat(spec->apiserver_ips, loopback);
        const char **dns = concat(spec->apiserver_dns, api_dns);
        struct kf_pki_cert_req req = { .common_name = "kube-apiserver",
                                       .dns_names = dns,
                                       .ip_addresses = ips,
                                       .usage = KF_PKI_SERVER,
                                       .days = days };
        rc = ensure_cert(ca, dir, "apiserver", &req, renew, durable, &issued, err);
        free(ips);
        free(dns);
        if (rc < 0)
            goto free_cas;
    }
    {
        struct kf_pki_cert_req req = { .common_name = "kfleet-admin",
                                       .organizations = masters,
                                       .usage = KF_PKI_CLIENT,
                                       .days = days };
        rc = ensure_cert(ca, dir, "admin", &req, renew, durable, &issued, err);
        if (rc < 0)
            goto free_cas;
    }
    {
        struct kf_pki_cert_req req = { .common_name = "kfleet-etcd-client",
                                       .usage = KF_PKI_CLIENT,
                                       .days = days };
        rc = ensure_cert(etcd_ca, etcd_dir, "client", &req, renew, durable, &issued, err);
        if (rc < 0)
            goto free_cas;
    }
    for (size_t i = 0; i < spec->n_etcd_members; i++) {
        const struct kf_pki_etcd_member *m = &spec->etcd_members[i];
        char *server = NULL, *peer = NULL;
        /* etcd dials itself (its gRPC gateway) with the server certificate,
         * so that one needs clientAuth too; peers are both sides. */
        struct kf_pki_cert_req req = { .common_name = m->name,
                                       .dns_names = m->dns_names,
                                       .ip_addresses = m->ip_addresses,
                                       .usage = KF_PKI_SERVER | KF_PKI_CLIENT,
                                       .days = days };
        if (!m->name || !kf_pki_dns_name_valid(m->name) || strchr(m->name, '*')) {
            rc = kf_err(err, -EINVAL, "etcd member name \"%s\" is not a DNS label",
                        m->name ? m->name : "");
            goto free_cas;
        }
        server = kf_xasprintf("%s-server", m->name);
        peer = kf_xasprintf("%s-peer", m->name);
        rc = ensure_cert(etcd_ca, etcd_dir, server, &req, renew, durable, &issued, err);
        if (rc == 0)
            rc = ensure_cert(etcd_ca, etcd_dir, peer, &req, renew, durable, &issued, err);
        free(server);
        free(peer);
        if (rc < 0)
            goto free_cas;
    }
    rc = issued;
free_cas:
    kf_pki_ca_free(ca);
    kf_pki_ca_free(etcd_ca);
    free(etcd_dir);
    free(cn);
    return rc;
}
