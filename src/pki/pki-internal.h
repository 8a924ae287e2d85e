/* pki-internal.h: what the PKI files share (pki.h is the public contract). */
#ifndef KF_PKI_INTERNAL_H
#define KF_PKI_INTERNAL_H

#include <openssl/x509.h>
#include <sys/types.h>

#include "kfleet/pki.h"

struct kf_strbuf;

bool kf_pki_dns_name_valid(const char *s);
/* Canonical text of an IPv4/IPv6 address; -EINVAL if it is none. */
int kf_pki_ip_normalize(const char *s, char *out, size_t size);
int kf_pki_read_x509(const char *path, X509 **ret, struct kf_strbuf *err);
int kf_pki_read_key(const char *path, EVP_PKEY **ret, struct kf_strbuf *err);
X509 *kf_pki_ca_x509(const struct kf_pki_ca *ca);
int64_t kf_pki_asn1_time_ms(const ASN1_TIME *t);
void kf_pki_x509_info(X509 *x, struct kf_pki_cert_info *ret);
/* "DNS:..,IP:.." of a certificate, sorted. */
void kf_pki_x509_sans(X509 *x, struct kf_strbuf *out);
/* Sorts v, appends it comma-joined to out, frees v and its strings. */
void kf_pki_sort_join(char **v, size_t n, struct kf_strbuf *out);
/* x carries ca's signature and names ca as its issuer. */
bool kf_pki_signed_by(X509 *x, const struct kf_pki_ca *ca);

#endif
