/* pki-kubeconfig.c: kubeconfig files for guest clusters.
 *
 * The file kubectl reads: one cluster (server URL and the CA that signed
 * the server), one user (client certificate and key), one context that
 * joins them and is current. Certificates and keys are embedded as base64
 * (`*-data`), so the file stands alone. Names are written as YAML
 * double-quoted scalars (JSON string syntax is a subset), so no name can
 * break the structure.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/pki.h"
#include "kfleet/strbuf.h"
#include "pki/pki-internal.h"

#define PEM_MAX (64 * 1024)

static void add_base64(struct kf_strbuf *out, const char *data)
{
    size_t len = strlen(data);
    size_t need = 4 * ((len + 2) / 3) + 1;
    unsigned char *buf = kf_xmalloc(need);
    int n = EVP_EncodeBlock(buf, (const unsigned char *)data, (int)len);

    kf_strbuf_add(out, buf, (size_t)n);
    free(buf);
}

static bool pem_ok(const char *pem, const char *kind)
{
    return pem && strlen(pem) < PEM_MAX && strstr(pem, "-----BEGIN ") && strstr(pem, kind);
}

int kf_pki_kubeconfig_render(const struct kf_kubeconfig *kc, struct kf_strbuf *out,
                             struct kf_strbuf *err)
{
    char *user = NULL;
    const char *context = kc->context ? kc->context : kc->cluster_name;

    if (!kc->cluster_name || !*kc->cluster_name || strlen(kc->cluster_name) > 253)
        return kf_err(err, -EINVAL, "a kubeconfig needs a cluster name");
    if (!kc->server ||
        (!kf_str_has_prefix(kc->server, "https://") && !kf_str_has_prefix(kc->server, "http://")))
        return kf_err(err, -EINVAL, "server \"%s\" is not an http(s) URL",
                      kc->server ? kc->server : "");
    if (kc->ca_pem && !pem_ok(kc->ca_pem, "CERTIFICATE"))
        return kf_err(err, -EINVAL, "the CA is not a PEM certificate");
    if (kc->client_cert_pem && !pem_ok(kc->client_cert_pem, "CERTIFICATE"))
        return kf_err(err, -EINVAL, "the client certificate is not PEM");
    if (kc->client_key_pem && !pem_ok(kc->client_key_pem, "PRIVATE KEY"))
        return kf_err(err, -EINVAL, "the client key is not a PEM private key");
    if (!kc->client_cert_pem != !kc->client_key_pem)
        return kf_err(err, -EINVAL, "a client certificate needs its key, and the other way round");

    user = kc->user ? kf_xstrdup(kc->user) : kf_xasprintf("%s-admin", kc->cluster_name);
    kf_strbuf_addstr(out, "apiVersion: v1\nkind: Config\nclusters:\n- name: ");
    kf_strbuf_add_json_str(out, kc->cluster_name);
    kf_strbuf_addstr(out, "\n  cluster:\n    server: ");
    kf_strbuf_add_json_str(out, kc->server);
    kf_strbuf_addch(out, '\n');
    if (kc->ca_pem) {
        kf_strbuf_addstr(out, "    certificate-authority-data: ");
        add_base64(out, kc->ca_pem);
        kf_strbuf_addch(out, '\n');
    }
    kf_strbuf_addstr(out, "users:\n- name: ");
    kf_strbuf_add_json_str(out, user);
    if (kc->client_cert_pem) {
        kf_strbuf_addstr(out, "\n  user:\n    client-certificate-data: ");
        add_base64(out, kc->client_cert_pem);
        kf_strbuf_addstr(out, "\n    client-key-data: ");
        add_base64(out, kc->client_key_pem);
        kf_strbuf_addch(out, '\n');
    } else {
        kf_strbuf_addstr(out, "\n  user: {}\n");
    }
    kf_strbuf_addstr(out, "contexts:\n- name: ");
    kf_strbuf_add_json_str(out, context);
    kf_strbuf_addstr(out, "\n  context:\n    cluster: ");
    kf_strbuf_add_json_str(out, kc->cluster_name);
    kf_strbuf_addstr(out, "\n    user: ");
    kf_strbuf_add_json_str(out, user);
    kf_strbuf_addstr(out, "\ncurrent-context: ");
    kf_strbuf_add_json_str(out, context);
    kf_strbuf_addstr(out, "\npreferences: {}\n");
    free(user);
    return 0;
}

static int read_text(const char *path, char **ret, struct kf_strbuf *err)
{
    FILE *f = fopen(path, "r");
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[4096];
    size_t n;

    if (!f)
        return kf_err(err, -errno, "cannot read \"%s\": %s", path, strerror(errno));
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (sb.len + n > PEM_MAX) {
            fclose(f);
            kf_strbuf_release(&sb);
            return kf_err(err, -E2BIG, "\"%s\" is larger than a PEM file should be", path);
        }
        kf_strbuf_add(&sb, buf, n);
    }
    fclose(f);
    *ret = kf_strbuf_detach(&sb, NULL);
    return 0;
}

int kf_pki_cluster_kubeconfig(const char *dir, const char *cluster, const char *server,
                              struct kf_strbuf *out, struct kf_strbuf *err)
{
    char *paths[3] = { kf_xasprintf("%s/ca.crt", dir), kf_xasprintf("%s/admin.crt", dir),
                       kf_xasprintf("%s/admin.key", dir) };
    char *text[3] = { NULL, NULL, NULL };
    int rc = 0;

    for (int i = 0; i < 3 && rc == 0; i++)
        rc = read_text(paths[i], &text[i], err);
    if (rc == 0) {
        struct kf_kubeconfig kc = { .cluster_name = cluster,
                                    .server = server,
                                    .ca_pem = text[0],
                                    .client_cert_pem = text[1],
                                    .client_key_pem = text[2] };
        rc = kf_pki_kubeconfig_render(&kc, out, err);
    }
    for (int i = 0; i < 3; i++) {
        if (text[i])
            OPENSSL_cleanse(text[i], strlen(text[i]));
        free(text[i]);
        free(paths[i]);
    }
    return rc;
}
