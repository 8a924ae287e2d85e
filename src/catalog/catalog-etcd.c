/* catalog-etcd.c: the argv of a guest cluster's etcd member (catalog-etcd.h).
 *
 * Written for etcd 3.4 (Debian bookworm's etcd-server). Clients and peers
 * talk TLS and must present a certificate of the cluster's etcd CA
 * (--client-cert-auth, --peer-client-cert-auth); /metrics and /health are
 * also served on a separate plain-http port for Prometheus, which has no
 * client certificate. --snapshot-count 10000 and the zap logger on stderr
 * follow what kubeadm runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/catalog-etcd.h"
#include "kfleet/runner.h"
#include "kfleet/strbuf.h"

#define GIB (INT64_C(1) << 30)

int64_t kf_etcd_quota_for_grade(int grade)
{
    return grade >= 5 ? 16 * GIB : 8 * GIB;
}

static bool label_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 63)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_'))
            return false;
    return true;
}

static bool host_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 253)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == ':'))
            return false;
    return true;
}

/* An absolute path, or one that starts with a directory placeholder the
 * agent fills with an absolute path ({{certDir}}, {{dataDir}}): kfleetd's
 * component catalog renders the argv without knowing the host's
 * directories (catalog.h). */
static bool abs_path(const char *s)
{
    return s &&
           (s[0] == '/' || kf_str_has_prefix(s, "{{certDir}}") ||
            kf_str_has_prefix(s, "{{dataDir}}")) &&
           !strchr(s, '\n');
}

/* "host:port" with IPv6 brackets. */
static void host_port(char *buf, size_t size, const char *host, int port)
{
    if (strchr(host, ':'))
        snprintf(buf, size, "[%s]:%d", host, port);
    else
        snprintf(buf, size, "%s:%d", host, port);
}

int kf_etcd_member_argv(const struct kf_etcd_member_spec *s, struct kf_argv *ret,
                        struct kf_strbuf *err)
{
    struct kf_strbuf cluster = KF_STRBUF_INIT;
    const char *adv = s->advertise_host ? s->advertise_host : s->listen_ip;
    char listen[300], advertise[300];
    bool self = false;

    if (!label_ok(s->name) || !label_ok(s->cluster))
        return kf_err(err, -EINVAL,
                      "etcd member \"%s\" of cluster \"%s\": names must be "
                      "1..63 characters of [A-Za-z0-9._-]",
                      s->name ? s->name : "", s->cluster ? s->cluster : "");
    if (!host_ok(s->listen_ip) || !host_ok(adv))
        return kf_err(err, -EINVAL, "etcd member \"%s\": bad listen or advertise address", s->name);
    if (s->client_port <= 0 || s->client_port > 65535 || s->peer_port <= 0 ||
        s->peer_port > 65535 || s->metrics_port < 0 || s->metrics_port > 65535 ||
        s->client_port == s->peer_port || s->client_port == s->metrics_port ||
        s->peer_port == s->metrics_port)
        return kf_err(err, -EINVAL,
                      "etcd member \"%s\": ports %d/%d/%d must be distinct and "
                      "in 1..65535",
                      s->name, s->client_port, s->peer_port, s->metrics_port);
    if (!abs_path(s->data_dir) || !abs_path(s->trusted_ca_file) || !abs_path(s->cert_file) ||
        !abs_path(s->key_file) || !abs_path(s->peer_cert_file) || !abs_path(s->peer_key_file))
        return kf_err(err, -EINVAL,
                      "etcd member \"%s\": the data directory, CA, certificates "
                      "and keys must be absolute paths",
                      s->name);
    if (s->quota_bytes < 0 || s->heartbeat_ms < 0 || s->election_ms < 0 ||
        (s->heartbeat_ms && s->election_ms && s->election_ms < 5 * s->heartbeat_ms))
        return kf_err(err, -EINVAL,
                      "etcd member \"%s\": bad quota or timing (the election "
                      "timeout should be at least 5 heartbeats)",
                      s->name);
    if (s->n_peers == 0 || s->n_peers > 9)
        return kf_err(err, -EINVAL, "etcd member \"%s\": 1..9 peers, not %zu", s->name, s->n_peers);
    for (size_t i = 0; i < s->n_peers; i++) {
        const struct kf_etcd_peer *p = &s->peers[i];
        if (!label_ok(p->name) || !p->peer_url || !kf_str_has_prefix(p->peer_url, "https://") ||
            strchr(p->peer_url, ',') || strchr(p->peer_url, '=')) {
            kf_strbuf_release(&cluster);
            return kf_err(err, -EINVAL, "etcd peer \"%s\": needs a name and an https:// URL",
                          p->name ? p->name : "");
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->peers[j].name, p->name)) {
                kf_strbuf_release(&cluster);
                return kf_err(err, -EINVAL, "etcd peer \"%s\" appears twice", p->name);
            }
        if (!strcmp(p->name, s->name))
            self = true;
        kf_strbuf_addf(&cluster, "%s%s=%s", i ? "," : "", p->name, p->peer_url);
    }
    if (!self) {
        kf_strbuf_release(&cluster);
        return kf_err(err, -EINVAL, "etcd member \"%s\" is not among its peers", s->name);
    }

    kf_argv_add(ret, s->binary ? s->binary : "/usr/bin/etcd");
    kf_argv_addf(ret, "--name=%s", s->name);
    kf_argv_addf(ret, "--data-dir=%s", s->data_dir);
    host_port(listen, sizeof(listen), s->listen_ip, s->client_port);
    host_port(advertise, sizeof(advertise), adv, s->client_port);
    kf_argv_addf(ret, "--listen-client-urls=https://%s", listen);
    kf_argv_addf(ret, "--advertise-client-urls=https://%s", advertise);
    host_port(listen, sizeof(listen), s->listen_ip, s->peer_port);
    host_port(advertise, sizeof(advertise), adv, s->peer_port);
    kf_argv_addf(ret, "--listen-peer-urls=https://%s", listen);
    kf_argv_addf(ret, "--initial-advertise-peer-urls=https://%s", advertise);
    kf_argv_addf(ret, "--initial-cluster=%s", cluster.buf);
    kf_argv_addf(ret, "--initial-cluster-state=%s", s->existing ? "existing" : "new");
    kf_argv_addf(ret, "--initial-cluster-token=kfleet-%s", s->cluster);
    kf_argv_addf(ret, "--trusted-ca-file=%s", s->trusted_ca_file);
    kf_argv_addf(ret, "--cert-file=%s", s->cert_file);
    kf_argv_addf(ret, "--key-file=%s", s->key_file);
    kf_argv_add(ret, "--client-cert-auth=true");
    kf_argv_addf(ret, "--peer-trusted-ca-file=%s", s->trusted_ca_file);
    kf_argv_addf(ret, "--peer-cert-file=%s", s->peer_cert_file);
    kf_argv_addf(ret, "--peer-key-file=%s", s->peer_key_file);
    kf_argv_add(ret, "--peer-client-cert-auth=true");
    if (s->metrics_port) {
        host_port(listen, sizeof(listen), s->listen_ip, s->metrics_port);
        kf_argv_addf(ret, "--listen-metrics-urls=http://%s", listen);
    }
    kf_argv_addf(ret, "--quota-backend-bytes=%" PRId64,
                 s->quota_bytes ? s->quota_bytes : kf_etcd_quota_for_grade(0));
    kf_argv_add(ret, "--snapshot-count=10000");
    if (s->heartbeat_ms)
        kf_argv_addf(ret, "--heartbeat-interval=%d", s->heartbeat_ms);
    if (s->election_ms)
        kf_argv_addf(ret, "--election-timeout=%d", s->election_ms);
    kf_argv_add(ret, "--logger=zap");
    kf_argv_add(ret, "--log-outputs=stderr");
    kf_strbuf_release(&cluster);
    return 0;
}
