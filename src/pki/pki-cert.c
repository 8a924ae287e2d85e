/* pki-cert.c: CAs and certificates with OpenSSL 3 (pki.h is the contract).
 *
 * A certificate here is X.509 v3 with a random 127-bit serial, valid from
 * five minutes ago (clock skew between hosts) for the requested days,
 * signed with ECDSA P-256 and SHA-256. A CA carries basicConstraints
 * CA:TRUE and keyUsage keyCertSign; a leaf carries CA:FALSE, keyUsage
 * digitalSignature (all an ECDSA key does in TLS), the extended key usages
 * asked for, subject and authority key identifiers, and its SANs. Names
 * and addresses are checked before they reach OpenSSL's config syntax, so
 * a name cannot smuggle in another SAN.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/pki.h"
#include "kfleet/strbuf.h"
#include "pki/pki-internal.h"

struct kf_pki_ca {
    X509 *cert;
    EVP_PKEY *key;
};

struct kf_pki_cert {
    X509 *cert;
    EVP_PKEY *key;
};

/* The last OpenSSL error, for messages. */
static const char *ossl_err(void)
{
    static __thread char buf[256];
    unsigned long e = ERR_get_error();

    if (!e)
        return "unknown OpenSSL error";
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

/* --- names ----------------------------------------------------------------------------- */

bool kf_pki_dns_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 253)
        return false;
    if (!strncmp(s, "*.", 2))
        s += 2;
    if (!*s || *s == '.' || *s == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

int kf_pki_ip_normalize(const char *s, char *out, size_t size)
{
    unsigned char buf[16];

    if (s && inet_pton(AF_INET, s, buf) == 1)
        return inet_ntop(AF_INET, buf, out, (socklen_t)size) ? 0 : -EINVAL;
    if (s && inet_pton(AF_INET6, s, buf) == 1)
        return inet_ntop(AF_INET6, buf, out, (socklen_t)size) ? 0 : -EINVAL;
    return -EINVAL;
}

static bool text_valid(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > max)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static size_t strv_len(const char *const *v)
{
    size_t n = 0;

    while (v && v[n])
        n++;
    return n;
}

/* --- building certificates ------------------------------------------------------------------ */

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, struct kf_strbuf *err)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

    if (!ext)
        return kf_err(err, -EINVAL, "extension %s=\"%s\": %s", OBJ_nid2sn(nid), value, ossl_err());
    if (!X509_add_ext(x, ext, -1)) {
        X509_EXTENSION_free(ext);
        return kf_err(err, -EINVAL, "adding extension %s: %s", OBJ_nid2sn(nid), ossl_err());
    }
    X509_EXTENSION_free(ext);
    return 0;
}

/* A certificate for `key` with the subject filled in, not yet signed. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, const char *const *orgs, int days)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    BIGNUM *bn = BN_new();

    kf_assert(x && name && bn);
    X509_set_version(x, 2);
    kf_assert(BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1);
    kf_assert(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), -300);
    X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL);
    X509_set_pubkey(x, key);
    for (size_t i = 0; orgs && orgs[i]; i++)
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)orgs[i], -1, -1,
                                   0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_NAME_free(name);
    return x;
}

int kf_pki_ca_create(const char *common_name, int days, struct kf_pki_ca **ret,
                     struct kf_strbuf *err)
{
    struct kf_pki_ca *ca;
    X509V3_CTX ctx;
    int rc;

    if (!text_valid(common_name, 64))
        return kf_err(err, -EINVAL, "CA common name \"%s\" is empty, too long or not printable",
                      common_name ? common_name : "");
    if (days < 0)
        return kf_err(err, -EINVAL, "negative validity");
    ca = kf_xcalloc(1, sizeof(*ca));
    ca->key = new_key();
    if (!ca->key) {
        free(ca);
        return kf_err(err, -EIO, "generating a P-256 key: %s", ossl_err());
    }
    ca->cert = new_cert(ca->key, common_name, NULL, days ? days : 3650);
    X509_set_issuer_name(ca->cert, X509_get_subject_name(ca->cert));
    X509V3_set_ctx(&ctx, ca->cert, ca->cert, NULL, NULL, 0);
    if ((rc = add_ext(ca->cert, &ctx, NID_basic_constraints, "critical,CA:TRUE", err)) < 0 ||
        (rc = add_ext(ca->cert, &ctx, NID_key_usage,
                      "critical,digitalSignature,keyCertSign,cRLSign", err)) < 0 ||
        (rc = add_ext(ca->cert, &ctx, NID_subject_key_identifier, "hash", err)) < 0 ||
        (rc = add_ext(ca->cert, &ctx, NID_authority_key_identifier, "keyid:always", err)) < 0)
        goto free_ca;
    if (!X509_sign(ca->cert, ca->key, EVP_sha256())) {
        rc = kf_err(err, -EIO, "signing the CA: %s", ossl_err());
        goto free_ca;
    }
    *ret = ca;
    return 0;
free_ca:
    kf_pki_ca_free(ca);
    return rc;
}

void kf_pki_ca_free(struct kf_pki_ca *ca)
{
    if (!ca)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

void kf_pki_cert_free(struct kf_pki_cert *cert)
{
    if (!cert)
        return;
    X509_free(cert->cert);
    EVP_PKEY_free(cert->key);
    free(cert);
}

/* "DNS:a,DNS:b,IP:1.2.3.4" from a request, names checked. */
static int san_string(const struct kf_pki_cert_req *req, struct kf_strbuf *out,
                      struct kf_strbuf *err)
{
    char ip[INET6_ADDRSTRLEN];

    for (size_t i = 0; req->dns_names && req->dns_names[i]; i++) {
        if (!kf_pki_dns_name_valid(req->dns_names[i]))
            return kf_err(err, -EINVAL, "\"%s\" is not a DNS name", req->dns_names[i]);
        kf_strbuf_addf(out, "%sDNS:%s", out->len ? "," : "", req->dns_names[i]);
    }
    for (size_t i = 0; req->ip_addresses && req->ip_addresses[i]; i++) {
        if (kf_pki_ip_normalize(req->ip_addresses[i], ip, sizeof(ip)) < 0)
            return kf_err(err, -EINVAL, "\"%s\" is not an IP address", req->ip_addresses[i]);
        kf_strbuf_addf(out, "%sIP:%s", out->len ? "," : "", ip);
    }
    return 0;
}

int kf_pki_issue(const struct kf_pki_ca *ca, const struct kf_pki_cert_req *req,
                 struct kf_pki_cert **ret, struct kf_strbuf *err)
{
    struct kf_strbuf san = KF_STRBUF_INIT;
    struct kf_pki_cert *c;
    X509V3_CTX ctx;
    const char *eku;
    int rc;

    if (!text_valid(req->common_name, 64))
        return kf_err(err, -EINVAL, "common name \"%s\" is empty, too long or not printable",
                      req->common_name ? req->common_name : "");
    for (size_t i = 0; req->organizations && req->organizations[i]; i++)
        if (!text_valid(req->organizations[i], 64))
            return kf_err(err, -EINVAL, "organization \"%s\" is empty, too long or not printable",
                          req->organizations[i]);
    if (strv_len(req->dns_names) + strv_len(req->ip_addresses) > KF_PKI_NAMES_MAX ||
        strv_len(req->organizations) > KF_PKI_NAMES_MAX)
        return kf_err(err, -EINVAL, "more than %d names in one certificate", KF_PKI_NAMES_MAX);
    if (!(req->usage & (KF_PKI_SERVER | KF_PKI_CLIENT)))
        return kf_err(err, -EINVAL, "a certificate needs server or client usage");
    if (req->days < 0)
        return kf_err(err, -EINVAL, "negative validity");
    rc = san_string(req, &san, err);
    if (rc < 0)
        goto release_san;
    if ((req->usage & KF_PKI_SERVER) && !san.len) {
        rc = kf_err(err, -EINVAL, "a server certificate needs at least one DNS name or IP");
        goto release_san;
    }
    eku = (req->usage & KF_PKI_SERVER) && (req->usage & KF_PKI_CLIENT) ? "serverAuth,clientAuth"
          : (req->usage & KF_PKI_SERVER)                               ? "serverAuth"
                                                                       : "clientAuth";
    c = kf_xcalloc(1, sizeof(*c));
    c->key = new_key();
    if (!c->key) {
        free(c);
        rc = kf_err(err, -EIO, "generating a P-256 key: %s", ossl_err());
        goto release_san;
    }
    c->cert = new_cert(c->key, req->common_name, req->organizations, req->days ? req->days : 365);
    X509_set_issuer_name(c->cert, X509_get_subject_name(ca->cert));
    X509V3_set_ctx(&ctx, ca->cert, c->cert, NULL, NULL, 0);
    if ((rc = add_ext(c->cert, &ctx, NID_basic_constraints, "critical,CA:FALSE", err)) < 0 ||
        (rc = add_ext(c->cert, &ctx, NID_key_usage, "critical,digitalSignature", err)) < 0 ||
        (rc = add_ext(c->cert, &ctx, NID_ext_key_usage, eku, err)) < 0 ||
        (rc = add_ext(c->cert, &ctx, NID_subject_key_identifier, "hash", err)) < 0 ||
        (rc = add_ext(c->cert, &ctx, NID_authority_key_identifier, "keyid", err)) < 0 ||
        (san.len && (rc = add_ext(c->cert, &ctx, NID_subject_alt_name, san.buf, err)) < 0)) {
        kf_pki_cert_free(c);
        goto release_san;
    }
    if (!X509_sign(c->cert, ca->key, EVP_sha256())) {
        rc = kf_err(err, -EIO, "signing \"%s\": %s", req->common_name, ossl_err());
        kf_pki_cert_free(c);
        goto release_san;
    }
    *ret = c;
    rc = 0;
release_san:
    kf_strbuf_release(&san);
    return rc;
}

/* --- PEM and files --------------------------------------------------------------------------- */

static void bio_to_strbuf(BIO *b, struct kf_strbuf *out)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);

    if (n > 0)
        kf_strbuf_add(out, data, (size_t)n);
}

static void x509_pem(X509 *x, struct kf_strbuf *out)
{
    BIO *b = BIO_new(BIO_s_mem());

    kf_assert(b && PEM_write_bio_X509(b, x));
    bio_to_strbuf(b, out);
    BIO_free(b);
}

static void pkey_pem(EVP_PKEY *k, struct kf_strbuf *out)
{
    BIO *b = BIO_new(BIO_s_mem());

    kf_assert(b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL));
    bio_to_strbuf(b, out);
    BIO_free(b);
}

void kf_pki_ca_pem(const struct kf_pki_ca *ca, struct kf_strbuf *out)
{
    x509_pem(ca->cert, out);
}

void kf_pki_cert_pem(const struct kf_pki_cert *cert, struct kf_strbuf *cert_pem,
                     struct kf_strbuf *key_pem)
{
    if (cert_pem)
        x509_pem(cert->cert, cert_pem);
    if (key_pem)
        pkey_pem(cert->key, key_pem);
}

static int save_pair(X509 *x, EVP_PKEY *k, const char *cert_path, const char *key_path,
                     bool durable, struct kf_strbuf *err)
{
    struct kf_strbuf c = KF_STRBUF_INIT, kp = KF_STRBUF_INIT;
    int rc;

    x509_pem(x, &c);
    pkey_pem(k, &kp);
    rc = kf_write_file_atomic(key_path, kp.buf, kp.len, 0600, durable, NULL);
    if (rc < 0) {
        kf_err(err, rc, "cannot write \"%s\": %s", key_path, strerror(-rc));
        goto wipe_key;
    }
    rc = kf_write_file_atomic(cert_path, c.buf, c.len, 0644, durable, NULL);
    if (rc < 0)
        kf_err(err, rc, "cannot write \"%s\": %s", cert_path, strerror(-rc));
wipe_key:
    /* The key text is secret: do not leave it in freed memory. */
    OPENSSL_cleanse(kp.buf, kp.len);
    kf_strbuf_release(&c);
    kf_strbuf_release(&kp);
    return rc;
}

int kf_pki_ca_save(const struct kf_pki_ca *ca, const char *cert_path, const char *key_path,
                   struct kf_strbuf *err)
{
    return save_pair(ca->cert, ca->key, cert_path, key_path, true, err);
}

int kf_pki_ca_write(const struct kf_pki_ca *ca, const char *cert_path, const char *key_path,
                    bool durable, struct kf_strbuf *err)
{
    return save_pair(ca->cert, ca->key, cert_path, key_path, durable, err);
}

int kf_pki_cert_save(const struct kf_pki_cert *cert, const char *cert_path, const char *key_path,
                     struct kf_strbuf *err)
{
    return save_pair(cert->cert, cert->key, cert_path, key_path, true, err);
}

int kf_pki_cert_write(const struct kf_pki_cert *cert, const char *cert_path, const char *key_path,
                      bool durable, struct kf_strbuf *err)
{
    return save_pair(cert->cert, cert->key, cert_path, key_path, durable, err);
}

int kf_pki_read_x509(const char *path, X509 **ret, struct kf_strbuf *err)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x;

    if (!b) {
        ERR_clear_error();
        return kf_err(err, -ENOENT, "cannot read \"%s\"", path);
    }
    x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!x)
        return kf_err(err, -EINVAL, "\"%s\" holds no PEM certificate: %s", path, ossl_err());
    *ret = x;
    return 0;
}

int kf_pki_read_key(const char *path, EVP_PKEY **ret, struct kf_strbuf *err)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k;

    if (!b) {
        ERR_clear_error();
        return kf_err(err, -ENOENT, "cannot read \"%s\"", path);
    }
    k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k)
        return kf_err(err, -EINVAL, "\"%s\" holds no PEM private key: %s", path, ossl_err());
    *ret = k;
    return 0;
}

int kf_pki_ca_load(const char *cert_path, const char *key_path, struct kf_pki_ca **ret,
                   struct kf_strbuf *err)
{
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    struct kf_pki_ca *ca;
    int rc;

    rc = kf_pki_read_x509(cert_path, &x, err);
    if (rc < 0)
        return rc;
    rc = kf_pki_read_key(key_path, &k, err);
    if (rc < 0) {
        X509_free(x);
        return rc;
    }
    if (X509_check_private_key(x, k) != 1) {
        ERR_clear_error();
        rc = kf_err(err, -EINVAL, "the key \"%s\" does not belong to \"%s\"", key_path, cert_path);
    } else if (X509_check_ca(x) < 1) {
        rc = kf_err(err, -EINVAL, "\"%s\" is not a CA certificate", cert_path);
    }
    if (rc < 0) {
        X509_free(x);
        EVP_PKEY_free(k);
        return rc;
    }
    ca = kf_xcalloc(1, sizeof(*ca));
    ca->cert = x;
    ca->key = k;
    *ret = ca;
    return 0;
}

X509 *kf_pki_ca_x509(const struct kf_pki_ca *ca)
{
    return ca->cert;
}

/* --- inspecting ---------------------------------------------------------------------------------- */

int64_t kf_pki_asn1_time_ms(const ASN1_TIME *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (!ASN1_TIME_to_tm(t, &tm))
        return 0;
    return (int64_t)timegm(&tm) * 1000;
}

void kf_pki_x509_info(X509 *x, struct kf_pki_cert_info *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->not_before_ms = kf_pki_asn1_time_ms(X509_get0_notBefore(x));
    ret->not_after_ms = kf_pki_asn1_time_ms(X509_get0_notAfter(x));
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, ret->common_name,
                              sizeof(ret->common_name));
    ret->is_ca = X509_check_ca(x) >= 1;
}

int kf_pki_cert_file_info(const char *cert_path, struct kf_pki_cert_info *ret,
                          struct kf_strbuf *err)
{
    X509 *x;
    int rc = kf_pki_read_x509(cert_path, &x, err);

    if (rc < 0)
        return rc;
    kf_pki_x509_info(x, ret);
    X509_free(x);
    return 0;
}

int kf_pki_expires_within(const char *cert_path, int days, bool *ret, struct kf_strbuf *err)
{
    struct kf_pki_cert_info info;
    int rc = kf_pki_cert_file_info(cert_path, &info, err);

    if (rc < 0)
        return rc;
    *ret = info.not_after_ms <= kf_now_ms() + (int64_t)days * 86400 * 1000;
    return 0;
}

/* "DNS:a,DNS:b,IP:1.2.3.4" of a certificate (sorted), for comparison. */
void kf_pki_x509_sans(X509 *x, struct kf_strbuf *out)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char **v = NULL;
    size_t n = 0;

    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char ip[INET6_ADDRSTRLEN];
        v = kf_xrealloc(v, (n + 1) * sizeof(*v));
        if (g->type == GEN_DNS) {
            v[n++] = kf_xasprintf("DNS:%.*s", ASN1_STRING_length(g->d.dNSName),
                                  (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            if (inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof(ip)) &&
                (len == 4 || len == 16))
                v[n++] = kf_xasprintf("IP:%s", ip);
        }
    }
    GENERAL_NAMES_free(names);
    kf_pki_sort_join(v, n, out);
}

void kf_pki_sort_join(char **v, size_t n, struct kf_strbuf *out)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), kf_strp_cmp);
    for (size_t i = 0; i < n; i++) {
        kf_strbuf_addf(out, "%s%s", i ? "," : "", v[i]);
        free(v[i]);
    }
    free(v);
}

bool kf_pki_signed_by(X509 *x, const struct kf_pki_ca *ca)
{
    EVP_PKEY *pub = X509_get0_pubkey(ca->cert);
    int ok = pub ? X509_verify(x, pub) : 0;

    ERR_clear_error();
    return ok == 1 && !X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca->cert));
}
