/* pki.h: certificates for guest clusters, with OpenSSL 3.
 *
 * Every guest cluster gets its own PKI: a cluster CA that signs the
 * kube-apiserver's serving certificate and the admin client certificate,
 * and a separate etcd CA that signs the etcd members' server and peer
 * certificates and the etcd client certificate (used by kube-apiserver and
 * by health probes). Two CAs, as kubeadm does, because etcd with
 * --client-cert-auth trusts every certificate its CA signed: with one CA, a
 * Kubernetes admin or node certificate would also open etcd.
 *
 * Keys are ECDSA P-256: generating one takes well under a millisecond where
 * RSA-2048 takes tens, which matters when a guest cluster (about ten
 * certificates) is to be Ready within seconds; P-256 is accepted by etcd,
 * kube-apiserver, kubectl and every TLS library they use, and its 128-bit
 * security is on par with RSA-3072.
 *
 * Files: certificates PEM, mode 0644; private keys PKCS#8 PEM, mode 0600;
 * both written atomically (temporary file, fsync, rename). The directory
 * layout of kf_pki_cluster_ensure() is in docs/internals/agent.md.
 *
 * Functions return 0 (or a count) or a negative errno, with the detail in
 * err; they are safe to call from several threads on different objects.
 */
#ifndef KF_PKI_H
#define KF_PKI_H

#include <stdint.h>

#include "kfleet/base.h"

struct kf_strbuf;
struct kf_pki_ca;   /* a CA certificate with its private key */
struct kf_pki_cert; /* an issued certificate with its private key */

#define KF_PKI_NAMES_MAX 64 /* SANs or organizations in one request */

enum kf_pki_usage {
    KF_PKI_SERVER = 1, /* extendedKeyUsage serverAuth */
    KF_PKI_CLIENT = 2, /* extendedKeyUsage clientAuth */
};

struct kf_pki_cert_req {
    const char *common_name;
    const char *const *organizations; /* NULL-terminated; NULL: none */
    const char *const *dns_names;     /* SAN DNS entries; "*.x" allowed */
    const char *const *ip_addresses;  /* SAN IP entries, IPv4 or IPv6 text */
    unsigned int usage;               /* KF_PKI_SERVER | KF_PKI_CLIENT; at least one */
    int days;                         /* validity; 0: 365 */
};

/* A new self-signed CA (basicConstraints CA:TRUE, keyCertSign). days 0:
 * 3650. */
int kf_pki_ca_create(const char *common_name, int days, struct kf_pki_ca **ret,
                     struct kf_strbuf *err);
/* Reads a CA back (to issue more certificates); checks that the key
 * belongs to the certificate and that it is a CA. */
int kf_pki_ca_load(const char *cert_path, const char *key_path, struct kf_pki_ca **ret,
                   struct kf_strbuf *err);
int kf_pki_ca_save(const struct kf_pki_ca *ca, const char *cert_path, const char *key_path,
                   struct kf_strbuf *err);
/* kf_pki_ca_save, and durable says whether each file (and its folder) is
 * fsync'ed: not for a working copy of files kept elsewhere, which is
 * written again from there when it is lost (save always is). */
int kf_pki_ca_write(const struct kf_pki_ca *ca, const char *cert_path, const char *key_path,
                    bool durable, struct kf_strbuf *err);
/* Appends the CA certificate as PEM. */
void kf_pki_ca_pem(const struct kf_pki_ca *ca, struct kf_strbuf *out);
void kf_pki_ca_free(struct kf_pki_ca *ca);

/* Issues a certificate signed by `ca` with a fresh P-256 key. -EINVAL for
 * a malformed name or address (nothing is issued). */
int kf_pki_issue(const struct kf_pki_ca *ca, const struct kf_pki_cert_req *req,
                 struct kf_pki_cert **ret, struct kf_strbuf *err);
int kf_pki_cert_save(const struct kf_pki_cert *cert, const char *cert_path, const char *key_path,
                     struct kf_strbuf *err);
/* kf_pki_cert_save with durable as kf_pki_ca_write's. */
int kf_pki_cert_write(const struct kf_pki_cert *cert, const char *cert_path, const char *key_path,
                      bool durable, struct kf_strbuf *err);
/* Appends the certificate and/or the key (either may be NULL) as PEM. */
void kf_pki_cert_pem(const struct kf_pki_cert *cert, struct kf_strbuf *cert_pem,
                     struct kf_strbuf *key_pem);
void kf_pki_cert_free(struct kf_pki_cert *cert);

/* What a certificate file says about itself. */
struct kf_pki_cert_info {
    int64_t not_before_ms;
    int64_t not_after_ms;
    char common_name[256];
    bool is_ca;
};
int kf_pki_cert_file_info(const char *cert_path, struct kf_pki_cert_info *ret,
                          struct kf_strbuf *err);
/* Whether the certificate at cert_path expires within `days` from now (or
 * has expired). 0 and *ret, -ENOENT, -EINVAL. */
int kf_pki_expires_within(const char *cert_path, int days, bool *ret, struct kf_strbuf *err);

/* --- a guest cluster's PKI on disk --------------------------------------------------- */

struct kf_pki_etcd_member {
    const char *name;                /* file names: etcd/<name>-server.crt, etcd/<name>-peer.crt */
    const char *const *ip_addresses; /* where it listens (clients and peers) */
    const char *const *dns_names;
};

struct kf_pki_cluster_spec {
    const char *cluster; /* the guest cluster's name (CA common names) */
    const struct kf_pki_etcd_member *etcd_members;
    size_t n_etcd_members;
    /* kube-apiserver serving SANs besides the built-in ones (kubernetes,
     * kubernetes.default[.svc[.cluster.local]], localhost, 127.0.0.1): the
     * first service IP and the endpoints clients use. */
    const char *const *apiserver_ips;
    const char *const *apiserver_dns;
    int ca_days;    /* 0: 3650 */
    int cert_days;  /* 0: 365 */
    int renew_days; /* reissue certificates expiring within this; 0: 30 */
    /* dir is a working copy of files kept elsewhere (the caller writes them
     * back there, and dir again from there when it is lost): files are
     * written without fsync, which cost a provisioning burst more wall time
     * than anything else */
    bool working_copy;
};

/* Makes `dir` hold the cluster's PKI:
 *   ca.crt ca.key                       cluster CA
 *   apiserver.crt apiserver.key         kube-apiserver serving (serverAuth)
 *   admin.crt admin.key                 CN=kfleet-admin, O=system:masters (clientAuth)
 *   etcd/ca.crt etcd/ca.key             etcd CA
 *   etcd/<member>-server.crt/.key       etcd client-facing (serverAuth)
 *   etcd/<member>-peer.crt/.key         etcd peer (serverAuth, clientAuth)
 *   etcd/client.crt etcd/client.key     CN=kfleet-etcd-client (clientAuth)
 * Idempotent: existing CAs are kept (and loaded); a certificate is
 * (re)issued when it is missing, not signed by its CA, expiring within
 * renew_days, or its SANs differ from the spec. Returns how many
 * certificates were issued. */
int kf_pki_cluster_ensure(const char *dir, const struct kf_pki_cluster_spec *spec,
                          struct kf_strbuf *err);

/* --- kubeconfig -------------------------------------------------------------------- */

struct kf_kubeconfig {
    const char *cluster_name;    /* clusters[].name; required */
    const char *server;          /* https://host:port; required */
    const char *ca_pem;          /* the CA that signed the server's certificate */
    const char *user;            /* users[].name; NULL: "<cluster>-admin" */
    const char *client_cert_pem; /* client certificate and key, PEM */
    const char *client_key_pem;
    const char *context; /* NULL: cluster_name */
};

/* Renders a kubeconfig (YAML, data embedded as base64) into out. */
int kf_pki_kubeconfig_render(const struct kf_kubeconfig *kc, struct kf_strbuf *out,
                             struct kf_strbuf *err);
/* The admin kubeconfig of the cluster whose PKI is in `dir`
 * (kf_pki_cluster_ensure's layout). */
int kf_pki_cluster_kubeconfig(const char *dir, const char *cluster, const char *server,
                              struct kf_strbuf *out, struct kf_strbuf *err);

#endif
