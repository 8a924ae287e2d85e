/* ctrl-lifecycle-pki.c: guest clusters' PKI for the lifecycle controller and the
 * API's certificate actions (ctrl-lifecycle.h).
 *
 * Where it lives: in the store, under /_pki/<cluster>, as one JSON object
 * {"files": {"ca.crt": "PEM", "etcd/ca.key": "PEM", ...}}. Every kfleetd
 * replica serves bundles and kubeconfigs from there, and a new leader
 * carries on with the same CAs instead of minting new ones (which would
 * split a running etcd cluster into members that no longer trust each
 * other). The leader works on a copy in <data-dir>/pki/<cluster> (0700),
 * because pki.h keeps a cluster's PKI as files: the stored files are
 * written there first, kf_pki_cluster_ensure() and the extras below issue
 * what is missing or stale, and if anything changed the directory is
 * stored back (compare-and-swap on the key's revision). The copy is
 * written without fsync: the store is the truth, a lost or torn file is
 * written again from it on the next pass (or, when nothing was stored
 * yet, the attempt starts over), and a provisioning burst spent more wall
 * time in those fsyncs than in anything else. Private keys are
 * in the store as Kubernetes keeps Secrets in etcd: protect the store.
 * Nothing here logs, and no key ever reaches a log line or an error text.
 *
 * Extras beyond pki.h's layout, for the Kubernetes components:
 *   sa.key                          service-account signing key (P-256)
 *   controller-manager.kubeconfig   client CN system:kube-controller-manager
 *   scheduler.kubeconfig            client CN system:kube-scheduler
 *   controller-manager-server.*     serving certificates for their secure
 *   scheduler-server.*              ports (probed over HTTPS)
 *   monitoring.crt .key             client CN kfleet-monitoring, O system:monitoring
 *                                   (the edge Prometheus scrapes the components)
 *   kwok.kubeconfig                 client CN kfleet-kwok, O system:masters (the
 *                                   simulated nodes' KWOK)
 * The kubeconfigs name the cluster's endpoint (its unit's load balancer).
 * A sidecar "<name>.for" records what a certificate or kubeconfig was made
 * for (SANs, server URL), so a change reissues it.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "kfleet/catalog.h"
#include "kfleet/error.h"
#include "kfleet/file.h"
#include "kfleet/json.h"
#include "kfleet/pki.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-lifecycle.h"

#define PKI_KEY_PREFIX "/_pki/"
#define FILE_MAX       (256 * 1024)
#define RENEW_DAYS     30

char *kf_lifecycle_pki_key(const char *cluster)
{
    return kf_xasprintf(PKI_KEY_PREFIX "%s", cluster);
}

static bool is_secret(const char *path)
{
    return kf_str_has_suffix(path, ".key") || kf_str_has_suffix(path, ".kubeconfig");
}

static int read_text(const char *path, char **ret)
{
    FILE *f = fopen(path, "re");
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[4096];
    size_t n;

    if (!f)
        return -errno;
    sb.cap = FILE_MAX;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        if (kf_strbuf_add(&sb, buf, n) < 0) {
            fclose(f);
            kf_strbuf_release(&sb);
            return -EFBIG;
        }
    fclose(f);
    *ret = sb.len ? kf_strbuf_detach(&sb, NULL) : kf_xstrdup("");
    return 0;
}

/* Every regular file under dir (one level of subdirectories) into an
 * object path -> content. */
static int read_dir(const char *dir, const char *sub, json_t *files)
{
    char *path = sub ? kf_xasprintf("%s/%s", dir, sub) : kf_xstrdup(dir);
    DIR *d = opendir(path);
    struct dirent *e;
    int r = 0;

    if (!d) {
        r = errno == ENOENT ? 0 : -errno;
        free(path);
        return r;
    }
    while (r == 0 && (e = readdir(d)) != NULL) {
        char *rel, *full, *data = NULL;
        struct stat st;

        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp"))
            continue;
        rel = sub ? kf_xasprintf("%s/%s", sub, e->d_name) : kf_xstrdup(e->d_name);
        full = kf_xasprintf("%s/%s", dir, rel);
        if (lstat(full, &st) < 0)
            ; /* gone meanwhile: skipped (st is not read) */
        else if (S_ISDIR(st.st_mode) && !sub)
            r = read_dir(dir, rel, files);
        else if (S_ISREG(st.st_mode) && (r = read_text(full, &data)) == 0)
            json_object_set_new(files, rel, json_string(data));
        free(data);
        free(rel);
        free(full);
    }
    closedir(d);
    free(path);
    return r;
}

int kf_lifecycle_pki_load(struct kf_store *store, const char *cluster, json_t **ret_files,
                          int64_t *ret_rev)
{
    char *key = kf_lifecycle_pki_key(cluster);
    struct kf_kv kv = { 0 };
    json_t *doc = NULL;
    int r = kf_store_get(store, key, &kv);

    free(key);
    if (r < 0)
        return r;
    if (kf_json_parse(kv.value, kv.value_len, &doc, NULL) < 0 ||
        !json_is_object(json_object_get(doc, "files"))) {
        json_decref(doc);
        kf_kv_release(&kv);
        return -EBADMSG;
    }
    *ret_files = json_incref(json_object_get(doc, "files"));
    if (ret_rev)
        *ret_rev = kv.mod_rev;
    json_decref(doc);
    kf_kv_release(&kv);
    return 0;
}

/* Writes the stored files into dir and removes local files the store does
 * not have (the store is the truth). */
static int materialize(const char *dir, const json_t *files, struct kf_strbuf *err)
{
    json_t *local = json_object(), *v;
    const char *k;
    int r = read_dir(dir, NULL, local);

    json_object_foreach(local, k, v)
    {
        if (!json_object_get(files, k)) {
            char *p = kf_xasprintf("%s/%s", dir, k);

            unlink(p);
            free(p);
        }
    }
    json_object_foreach((json_t *)files, k, v)
    {
        char *p, *slash;

        if (r < 0)
            break;
        if (!json_is_string(v) || strstr(k, "..") || k[0] == '/')
            continue;
        if (json_equal(json_object_get(local, k), v))
            continue;
        p = kf_xasprintf("%s/%s", dir, k);
        slash = strrchr(p, '/');
        *slash = '\0';
        r = kf_mkdir_p(p, 0700);
        *slash = '/';
        if (r == 0)
            r = kf_write_file_atomic(p, json_string_value(v), json_string_length(v),
                                     is_secret(k) ? 0600 : 0644, false, NULL);
        if (r < 0)
            kf_err(err, r, "cannot write \"%s\": %s", p, strerror(-r));
        free(p);
    }
    json_decref(local);
    return r;
}

/* The sidecar that says what path was made for; true when it says `what`. */
static bool made_for(const char *dir, const char *name, const char *what)
{
    char *p = kf_xasprintf("%s/%s.for", dir, name), *have = NULL;
    bool same = read_text(p, &have) == 0 && strcmp(have, what) == 0;

    free(p);
    free(have);
    return same;
}

static int note_for(const char *dir, const char *name, const char *what)
{
    char *p = kf_xasprintf("%s/%s.for", dir, name);
    int r = kf_write_file_atomic(p, what, strlen(what), 0644, false, NULL);

    free(p);
    return r;
}

static bool fresh(const char *dir, const char *file)
{
    char *p = kf_xasprintf("%s/%s", dir, file);
    bool expiring = true;

    if (access(p, R_OK) == 0 && kf_pki_expires_within(p, RENEW_DAYS, &expiring, NULL) < 0)
        expiring = true;
    free(p);
    return !expiring;
}

/* A certificate of the cluster CA at <dir>/<base>.crt/.key, issued when
 * missing, expiring, or made for something else. Returns 1 when issued
 * (with the certificate in *ret when ret is not NULL), 0 when kept. */
static int ensure_leaf(const char *dir, const struct kf_pki_ca *ca, const char *base,
                       const struct kf_pki_cert_req *req, const char *what,
                       struct kf_pki_cert **ret, struct kf_strbuf *err)
{
    char *crt = kf_xasprintf("%s.crt", base);
    struct kf_pki_cert *cert = NULL;
    bool keep = fresh(dir, crt) && made_for(dir, base, what);
    int r;

    free(crt);
    if (keep)
        return 0;
    r = kf_pki_issue(ca, req, &cert, err);
    if (r == 0) {
        char *cp = kf_xasprintf("%s/%s.crt", dir, base), *kp = kf_xasprintf("%s/%s.key", dir, base);

        r = kf_pki_cert_write(cert, cp, kp, false, err);
        if (r == 0)
            r = note_for(dir, base, what);
        free(cp);
        free(kp);
    }
    if (r < 0) {
        kf_pki_cert_free(cert);
        return r;
    }
    if (ret)
        *ret = cert;
    else
        kf_pki_cert_free(cert);
    return 1;
}

/* <dir>/<name>.kubeconfig: a client certificate of the cluster CA
 * (<name>-client.crt/.key) for server. */
static int ensure_kubeconfig(const char *dir, const char *cluster, const struct kf_pki_ca *ca,
                             const char *name, const char *cn, const char *const *orgs,
                             const char *server, struct kf_strbuf *err)
{
    char *base = kf_xasprintf("%s-client", name), *file = kf_xasprintf("%s.kubeconfig", name);
    char *what = kf_xasprintf("%s %s", cn, server), *path = kf_xasprintf("%s/%s", dir, file);
    const char *const none[] = { NULL };
    struct kf_pki_cert_req req = { .common_name = cn,
                                   .organizations = orgs,
                                   .dns_names = none,
                                   .ip_addresses = none,
                                   .usage = KF_PKI_CLIENT };
    struct kf_pki_cert *cert = NULL;
    char *cs = NULL, *ks = NULL;
    int r = ensure_leaf(dir, ca, base, &req, cn, &cert, err);

    if (r == 0 && made_for(dir, file, what) && access(path, R_OK) == 0)
        goto free_kubeconfig; /* nothing changed */
    if (r < 0)
        goto free_kubeconfig;
    if (cert) {
        struct kf_strbuf cp = KF_STRBUF_INIT, kp = KF_STRBUF_INIT;

        kf_pki_cert_pem(cert, &cp, &kp);
        cs = kf_strbuf_detach(&cp, NULL);
        ks = kf_strbuf_detach(&kp, NULL);
    } else {
        /* the certificate is good; only the server changed */
        char *c = kf_xasprintf("%s/%s.crt", dir, base), *k = kf_xasprintf("%s/%s.key", dir, base);

        r = read_text(c, &cs);
        if (r == 0)
            r = read_text(k, &ks);
        free(c);
        free(k);
        if (r < 0) {
            kf_err(err, r, "cannot read the %s client certificate: %s", name, strerror(-r));
            goto free_kubeconfig;
        }
    }
    r = kf_lifecycle_kubeconfig_write(dir, file, cluster, server, name, cs, ks, ca, err);
    if (r == 0)
        r = note_for(dir, file, what);
free_kubeconfig:
    kf_pki_cert_free(cert);
    free(cs);
    free(ks);
    free(base);
    free(file);
    free(what);
    free(path);
    return r < 0 ? r : 0;
}

int kf_lifecycle_kubeconfig_write(const char *dir, const char *file, const char *cluster,
                                  const char *server, const char *user, const char *cert_pem,
                                  const char *key_pem, const struct kf_pki_ca *ca,
                                  struct kf_strbuf *err)
{
    struct kf_strbuf ca_pem = KF_STRBUF_INIT, out = KF_STRBUF_INIT;
    struct kf_kubeconfig kc = { .cluster_name = cluster,
                                .server = server,
                                .user = user,
                                .client_cert_pem = cert_pem,
                                .client_key_pem = key_pem };
    char *path = kf_xasprintf("%s/%s", dir, file);
    int r;

    kf_pki_ca_pem(ca, &ca_pem);
    kc.ca_pem = ca_pem.buf;
    r = kf_pki_kubeconfig_render(&kc, &out, err);
    if (r == 0) {
        r = kf_write_file_atomic(path, out.buf, strlen(out.buf), 0600, false, NULL);
        if (r < 0)
            kf_err(err, r, "cannot write \"%s\": %s", path, strerror(-r));
    }
    free(path);
    kf_strbuf_release(&ca_pem);
    kf_strbuf_release(&out);
    return r;
}

static void join(struct kf_strbuf *sb, const char *const *v)
{
    for (size_t i = 0; v && v[i]; i++)
        kf_strbuf_addf(sb, "%s%s", i ? "," : "", v[i]);
}

/* The extras the Kubernetes components need. */
static int ensure_extras(const char *dir, const struct lc_pki_input *in, struct kf_strbuf *err)
{
    char *crt = kf_xasprintf("%s/ca.crt", dir), *key = kf_xasprintf("%s/ca.key", dir);
    struct kf_pki_ca *ca = NULL;
    const char *const none[] = { NULL };
    const char *const localhost[] = { "localhost", NULL };
    int r = kf_pki_ca_load(crt, key, &ca, err);

    free(crt);
    free(key);
    if (r < 0)
        return r;
    {
        /* the service-account signing key: the key of a certificate made
         * for that purpose (never served: only sa.key is) */
        char *cn = kf_xasprintf("kfleet-%s-service-accounts", in->cluster);
        struct kf_pki_cert_req req = {
            .common_name = cn, .dns_names = none, .ip_addresses = none, .usage = KF_PKI_CLIENT
        };
        char *sa = kf_xasprintf("%s/sa.key", dir);

        if (access(sa, R_OK) != 0)
            r = ensure_leaf(dir, ca, "sa", &req, cn, NULL, err);
        free(sa);
        free(cn);
    }
    for (int i = 0; i < 2 && r >= 0; i++) {
        const char *name = i == 0 ? "controller-manager" : "scheduler";
        const char *const *ips = i == 0 ? in->controller_manager_ips : in->scheduler_ips;
        char *base = kf_xasprintf("%s-server", name);
        char *cn = kf_xasprintf("kfleet-%s-%s", in->cluster, name);
        struct kf_strbuf what = KF_STRBUF_INIT;
        struct kf_pki_cert_req req = { .common_name = cn,
                                       .dns_names = localhost,
                                       .ip_addresses = ips ? ips : none,
                                       .usage = KF_PKI_SERVER };

        if (ips && ips[0]) {
            join(&what, ips);
            r = ensure_leaf(dir, ca, base, &req, what.buf, NULL, err);
            if (r >= 0 && in->apiserver_url)
                r = ensure_kubeconfig(dir, in->cluster, ca, name,
                                      i == 0 ? "system:kube-controller-manager"
                                             : "system:kube-scheduler",
                                      NULL, in->apiserver_url, err);
        }
        kf_strbuf_release(&what);
        free(base);
        free(cn);
    }
    if (r >= 0) {
        /* the monitoring identity: Kubernetes' own ClusterRoleBinding
         * system:monitoring lets this group read /metrics, /readyz and
         * /livez, and nothing else */
        const char *const orgs[] = { "system:monitoring", NULL };
        struct kf_pki_cert_req req = { .common_name = "kfleet-monitoring",
                                       .organizations = orgs,
                                       .dns_names = none,
                                       .ip_addresses = none,
                                       .usage = KF_PKI_CLIENT };

        r = ensure_leaf(dir, ca, "monitoring", &req, "kfleet-monitoring system:monitoring", NULL,
                        err);
    }
    if (r >= 0 && in->apiserver_url) {
        /* KWOK plays the kubelet of every simulated node (status, leases,
         * pods): no narrower built-in role does that for many nodes, and
         * simulated nodes exist for tests and local fleets only */
        const char *const orgs[] = { "system:masters", NULL };

        r = ensure_kubeconfig(dir, in->cluster, ca, "kwok", "kfleet-kwok", orgs, in->apiserver_url,
                              err);
    }
    kf_pki_ca_free(ca);
    return r < 0 ? r : 0;
}

int kf_lifecycle_pki_ensure(struct kf_store *store, const char *data_dir,
                            const struct lc_pki_input *in, json_t **ret_files, int64_t *ret_rev,
                            struct kf_strbuf *err)
{
    char *dir = kf_xasprintf("%s/pki/%s", data_dir, in->cluster);
    json_t *stored = NULL, *now = json_object();
    int64_t rev = 0;
    int r;

    r = kf_lifecycle_pki_load(store, in->cluster, &stored, &rev);
    if (r == -KF_ENOTFOUND) {
        /* Nothing stored: whatever the directory holds is an attempt that
         * never finished (kfleetd stopped while issuing: a CA key without
         * its certificate, say), and nothing uses it, since members only
         * get what was stored. Start over rather than trip on it. */
        r = kf_remove_tree(dir);
        if (r < 0) {
            kf_err(err, r, "cannot remove the unfinished \"%s\": %s", dir, strerror(-r));
            goto release_files;
        }
    } else if (r < 0) {
        kf_err(err, r, "cannot read the PKI of \"%s\" from the store: %s", in->cluster,
               strerror(-r));
        goto release_files;
    }
    r = kf_mkdir_p(dir, 0700);
    if (r < 0) {
        kf_err(err, r, "cannot create \"%s\": %s", dir, strerror(-r));
        goto release_files;
    }
    if (stored) {
        r = materialize(dir, stored, err);
        if (r < 0)
            goto release_files;
    }
    r = kf_pki_cluster_ensure(dir, &in->spec, err);
    if (r >= 0)
        r = ensure_extras(dir, in, err);
    if (r < 0)
        goto release_files;
    r = read_dir(dir, NULL, now);
    if (r < 0) {
        kf_err(err, r, "cannot read \"%s\": %s", dir, strerror(-r));
        goto release_files;
    }
    if (!stored || !json_equal(stored, now)) {
        json_t *doc = json_pack("{s:O}", "files", now);
        char *text = kf_json_dump(doc, NULL), *key = kf_lifecycle_pki_key(in->cluster);

        r = kf_store_put(store, key, text, strlen(text), stored ? rev : 0, &rev);
        if (r < 0)
            kf_err(err, r, "cannot store the PKI of \"%s\": %s", in->cluster,
                   r == -KF_ECONFLICT || r == -KF_EEXISTS ? "written concurrently, trying again"
                                                          : strerror(-r));
        free(text);
        free(key);
        json_decref(doc);
        if (r < 0)
            goto release_files;
    }
    *ret_files = json_incref(now);
    if (ret_rev)
        *ret_rev = rev;
release_files:
    json_decref(stored);
    json_decref(now);
    free(dir);
    return r < 0 ? r : 0;
}

int kf_lifecycle_pki_remove(struct kf_store *store, const char *data_dir, const char *cluster)
{
    char *key = kf_lifecycle_pki_key(cluster), *dir = kf_xasprintf("%s/pki/%s", data_dir, cluster);
    int r = kf_store_delete(store, key, KF_REV_ANY, NULL);

    if (r == -KF_ENOTFOUND)
        r = 0;
    if (r == 0)
        r = kf_remove_tree(dir);
    free(key);
    free(dir);
    return r;
}

char *kf_lifecycle_pki_dir(const char *data_dir, const char *cluster)
{
    return kf_xasprintf("%s/pki/%s", data_dir, cluster);
}

/* --- bundles ------------------------------------------------------------------- */

struct bundle_ctx {
    const json_t *files;
    json_t *list;
    EVP_MD_CTX *md;
    bool missing;
};

static void add_file(void *arg, const char *pki_path, const char *bundle_path, bool secret)
{
    struct bundle_ctx *b = arg;
    const char *data = json_string_value(json_object_get(b->files, pki_path));

    if (!data) {
        b->missing = true;
        return;
    }
    json_array_append_new(
        b->list, json_pack("{s:s, s:s, s:b}", "path", bundle_path, "data", data, "secret", secret));
    EVP_DigestUpdate(b->md, bundle_path, strlen(bundle_path) + 1);
    EVP_DigestUpdate(b->md, data, strlen(data) + 1);
}

int kf_lifecycle_bundle(const json_t *files, const struct kf_catalog_cluster *c, size_t i,
                        json_t **ret_list, char hash[65])
{
    struct bundle_ctx b = { .files = files, .list = json_array(), .md = EVP_MD_CTX_new() };
    unsigned char md[32];
    unsigned int n = 0;

    if (!b.md)
        kf_abort("out of memory");
    EVP_DigestInit_ex(b.md, EVP_sha256(), NULL);
    kf_catalog_bundle_files(c, i, add_file, &b);
    EVP_DigestFinal_ex(b.md, md, &n);
    EVP_MD_CTX_free(b.md);
    if (b.missing) {
        json_decref(b.list);
        return -KF_ENOTFOUND;
    }
    for (unsigned k = 0; k < 32; k++)
        snprintf(hash + 2 * k, 3, "%02x", md[k]);
    if (ret_list)
        *ret_list = b.list;
    else
        json_decref(b.list);
    return 0;
}
