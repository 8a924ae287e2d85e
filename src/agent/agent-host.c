/* agent-host.c: the agent's Host objects and their heartbeats (agent.h).
 *
 * Registration creates the Host, or updates the one that exists: the
 * labels kfleet.io/role, kfleet.io/zone and kfleet.io/unit (workers:
 * kfleet.io/cluster), capacity and address in spec (capacity from /proc
 * unless the flags give it), the /metrics address as the annotation
 * monitoring reads, and agentVersion, nodeInfo and the Kubernetes
 * releases installed under /opt/kfleet/kubernetes in status. What a Host
 * cannot change (role, zone, unit, cluster) must match: an agent started
 * with the wrong zone for an existing host says so and does not run.
 *
 * Heartbeats renew the host's lease in kfleetd's memory (never a store
 * write): one POST per interval for a real host, or one POST naming many
 * hosts for simulated ones. A heartbeat for a Host that kfleetd does not
 * know (deleted meanwhile) registers it again.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/utsname.h>

#include "kfleet/file.h"
#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/strbuf.h"
#include "kfleet/versions.h"
#include "agent/agent.h"

KF_LOG_MODULE(agent);

#define HEARTBEAT_BATCH 5000

static int64_t meminfo_total(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[256];
    int64_t kb = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        long long v;

        if (sscanf(line, "MemTotal: %lld kB", &v) == 1) {
            kb = v;
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

static char *os_release_name(void)
{
    FILE *f = fopen("/etc/os-release", "re");
    char line[512];
    char *name = NULL;

    if (!f)
        return kf_xstrdup("Linux");
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
            char *v = line + 12;
            size_t n;

            v[strcspn(v, "\n")] = '\0';
            n = strlen(v);
            if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
                v[n - 1] = '\0';
                v++;
            }
            name = kf_xstrdup(v);
            break;
        }
    }
    fclose(f);
    return name ? name : kf_xstrdup("Linux");
}

int kf_agent_detect_machine(struct kf_agent *a, struct kf_strbuf *err)
{
    struct utsname u;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    a->detected_cpu_milli = cpus > 0 ? (int64_t)cpus * 1000 : 1000;
    /* whole MiB: "24105Mi" reads better than "24684092Ki" */
    a->detected_memory_bytes = meminfo_total() / (1 << 20) * (1 << 20);
    if (a->detected_memory_bytes <= 0)
        return kf_err(err, -EIO,
                      "cannot read the memory size from /proc/meminfo: "
                      "give it with --capacity-memory");
    if (uname(&u) == 0) {
        a->node_kernel = kf_xstrdup(u.release);
        a->node_arch = kf_xstrdup(u.machine);
        a->node_hostname = kf_xstrdup(u.nodename);
    } else {
        a->node_kernel = kf_xstrdup("");
        a->node_arch = kf_xstrdup("");
        a->node_hostname = kf_xstrdup("");
    }
    a->node_os = os_release_name();
    return 0;
}

static void fmt_cpu(int64_t milli, char *buf, size_t size)
{
    if (milli % 1000 == 0)
        snprintf(buf, size, "%lld", (long long)(milli / 1000));
    else
        snprintf(buf, size, "%lldm", (long long)milli);
}

static void fmt_mem(int64_t bytes, char *buf, size_t size)
{
    if (bytes % (1LL << 30) == 0)
        snprintf(buf, size, "%lldGi", (long long)(bytes >> 30));
    else if (bytes % (1LL << 20) == 0)
        snprintf(buf, size, "%lldMi", (long long)(bytes >> 20));
    else if (bytes % 1024 == 0)
        snprintf(buf, size, "%lldKi", (long long)(bytes >> 10));
    else
        snprintf(buf, size, "%lld", (long long)bytes);
}

static const char *host_address(const struct kf_agent *a)
{
    return a->cfg.address ? a->cfg.address : "127.0.0.1";
}

/* The labels, annotations and spec the agent owns on its Host. */
static json_t *desired_host(struct kf_agent *a, struct agent_host *h)
{
    const struct kf_agent_config *c = &a->cfg;
    bool meta = strcmp(c->role, "meta") == 0;
    char cpu[32], mem[32];
    json_t *labels, *spec, *meta_obj;

    fmt_cpu(c->cpu_milli > 0 ? c->cpu_milli : a->detected_cpu_milli, cpu, sizeof(cpu));
    fmt_mem(c->memory_bytes > 0 ? c->memory_bytes : a->detected_memory_bytes, mem, sizeof(mem));
    labels = json_pack("{s:s, s:s}", KF_AGENT_LABEL_ROLE, c->role, KF_AGENT_LABEL_ZONE, h->zone);
    if (meta)
        json_object_set_new(labels, KF_AGENT_LABEL_UNIT, json_string(c->unit));
    else
        json_object_set_new(labels, KF_AGENT_LABEL_CLUSTER, json_string(c->cluster));
    meta_obj = json_pack("{s:s, s:o}", "name", h->name, "labels", labels);
    if (a->metrics_addr)
        json_object_set_new(meta_obj, "annotations",
                            json_pack("{s:s}", KF_AGENT_ANN_METRICS, a->metrics_addr));
    spec = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s}", "role", c->role, "zone", h->zone, "capacity",
                     "cpu", cpu, "memory", mem, "address", host_address(a));
    json_object_set_new(spec, meta ? "unit" : "cluster", json_string(meta ? c->unit : c->cluster));
    return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "kfleet.io/v1", "kind", "Host",
                     "metadata", meta_obj, "spec", spec);
}

/* Does `have` (an object's labels or annotations) hold every key of want? */
static bool map_covers(const json_t *have, const json_t *want)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)want, k, v)
    {
        json_t *hv = json_object_get(have, k);

        if (!hv || !json_equal(hv, v))
            return false;
    }
    return true;
}

static int check_immutable(const json_t *have, const json_t *want, struct kf_strbuf *err)
{
    static const char *const fields[] = { "spec.role", "spec.zone", "spec.unit", "spec.cluster" };

    for (size_t i = 0; i < KF_ARRAY_SIZE(fields); i++) {
        const char *hv = kf_json_str(have, fields[i], NULL);
        const char *wv = kf_json_str(want, fields[i], NULL);

        if (!kf_streq(hv, wv))
            return kf_err(err, -EEXIST,
                          "Host \"%s\" exists with %s \"%s\", but this agent was started with "
                          "\"%s\"; %s cannot change: delete the Host or fix the flags",
                          kf_json_str(want, "metadata.name", "?"), fields[i], hv ? hv : "",
                          wv ? wv : "", fields[i]);
    }
    return 0;
}

static int update_existing(struct kf_agent *a, const char *path, const json_t *want,
                           struct kf_strbuf *err)
{
    json_t *have = NULL, *patch;
    int code = kf_agent_http_do(a->http, "GET", path, NULL, NULL, &have, err);
    int r;
    bool same;

    kf_agent_server_result(a, code);
    if (code != 200) {
        json_decref(have);
        return code < 0 ? code : -EPROTO;
    }
    r = check_immutable(have, want, err);
    same =
        r == 0 &&
        map_covers(kf_json_path(have, "metadata.labels"), kf_json_path(want, "metadata.labels")) &&
        map_covers(kf_json_path(have, "metadata.annotations"),
                   kf_json_path(want, "metadata.annotations")) &&
        json_equal(kf_json_path(have, "spec.capacity"), kf_json_path(want, "spec.capacity")) &&
        kf_streq(kf_json_str(have, "spec.address", NULL), kf_json_str(want, "spec.address", NULL));
    json_decref(have);
    if (r < 0 || same)
        return r;
    patch = json_pack("{s:{s:O}, s:{s:O, s:O}}", "metadata", "labels",
                      kf_json_path(want, "metadata.labels"), "spec", "capacity",
                      kf_json_path(want, "spec.capacity"), "address",
                      kf_json_path(want, "spec.address"));
    if (kf_json_path(want, "metadata.annotations"))
        json_object_set(json_object_get(patch, "metadata"), "annotations",
                        kf_json_path(want, "metadata.annotations"));
    code =
        kf_agent_http_do(a->http, "PATCH", path, "application/merge-patch+json", patch, NULL, err);
    json_decref(patch);
    kf_agent_server_result(a, code);
    return code == 200 ? 0 : code < 0 ? code : -EPROTO;
}

/* The Kubernetes releases installed here (NULL when root does not exist): each <root>/<minor>/VERSION
 * ("v1.37.2") whose folder has an executable bin/kube-apiserver, as
 * "1.37.2". The files' SHA-256 is checked by whoever installs them
 * (scripts/install-kubernetes), not at every registration. */
static json_t *kubernetes_versions(const char *root)
{
    json_t *out;
    DIR *d = opendir(root);
    struct dirent *e;

    if (!d)
        return NULL; /* no folder: nothing to say (placement then takes any release) */
    out = json_array();

    while (d && (e = readdir(d)) && json_array_size(out) < 32) {
        char *vpath, *bin, *text = NULL;
        size_t len = 0;

        if (e->d_name[0] == '.')
            continue;
        vpath = kf_xasprintf("%s/%s/VERSION", root, e->d_name);
        bin = kf_xasprintf("%s/%s/bin/kube-apiserver", root, e->d_name);
        if (access(bin, X_OK) == 0 && kf_read_file(vpath, 64, &text, &len) == 0) {
            char *v = text[0] == 'v' ? text + 1 : text;

            v[strcspn(v, "\n")] = '\0';
            if (kf_version_minor(v) >= 0)
                json_array_append_new(out, json_string(v));
        }
        free(text);
        free(bin);
        free(vpath);
    }
    if (d)
        closedir(d);
    return out;
}

int kf_agent_register(struct kf_agent *a, struct agent_host *h, struct kf_strbuf *err)
{
    json_t *want = desired_host(a, h), *status, *held;
    char *path = kf_xasprintf(KF_AGENT_API "/hosts/%s", h->name);
    char *spath = kf_xasprintf(KF_AGENT_API "/hosts/%s/status", h->name);
    int code, r = 0;

    code = kf_agent_http_do(a->http, "POST", KF_AGENT_API "/hosts", NULL, want, NULL, err);
    kf_agent_server_result(a, code);
    if (code == 409)
        r = update_existing(a, path, want, err);
    else if (code != 201)
        r = code < 0 ? code : -EPROTO;
    if (r == 0) {
        status =
            json_pack("{s:{s:s, s:s, s:{s:s, s:s, s:s, s:s}}}", "status", "agentVersion",
                      KF_VERSION, "address", host_address(a), "nodeInfo", "os", a->node_os,
                      "kernel", a->node_kernel, "arch", a->node_arch, "hostname", a->node_hostname);
        held = a->cfg.simulate ? NULL : kubernetes_versions(a->cfg.kubernetes_dir);
        if (held) {
            free(a->versions_reported);
            a->versions_reported = kf_json_dump(held, NULL);
            json_object_set_new(json_object_get(status, "status"), "kubernetesVersions", held);
        }
        code = kf_agent_http_do(a->http, "PATCH", spath, "application/merge-patch+json", status,
                                NULL, err);
        json_decref(status);
        kf_agent_server_result(a, code);
        if (code != 200)
            r = code < 0 ? code : -EPROTO;
    }
    json_decref(want);
    free(path);
    free(spath);
    return r;
}

void kf_agent_report_versions(struct kf_agent *a)
{
    json_t *held = a->cfg.simulate ? NULL : kubernetes_versions(a->cfg.kubernetes_dir);
    char *now;
    bool all = true;

    if (!held)
        return;
    now = kf_json_dump(held, NULL);
    if (kf_streq(now, a->versions_reported)) {
        free(now);
        json_decref(held);
        return;
    }
    for (size_t i = 0; i < a->n_hosts; i++) {
        struct agent_host *h = &a->hosts[i];
        struct kf_strbuf err = KF_STRBUF_INIT;
        char *spath = kf_xasprintf(KF_AGENT_API "/hosts/%s/status", h->name);
        json_t *patch = json_pack("{s:{s:O}}", "status", "kubernetesVersions", held);
        int code = h->registered
                       ? kf_agent_http_do(a->http, "PATCH", spath, "application/merge-patch+json",
                                          patch, NULL, &err)
                       : -EAGAIN;

        kf_agent_server_result(a, code);
        if (code == 200)
            kf_log_info("host \"%s\": Kubernetes releases held now %s", h->name, now);
        else
            all = false; /* the next round tries again */
        json_decref(patch);
        free(spath);
        kf_strbuf_release(&err);
    }
    if (all) {
        free(a->versions_reported);
        a->versions_reported = now;
    } else {
        free(now);
    }
    json_decref(held);
}

static void heartbeat_one(struct kf_agent *a, struct agent_host *h)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path = kf_xasprintf(KF_AGENT_API "/hosts/%s/heartbeat", h->name);
    int code = kf_agent_http_do(a->http, "POST", path, NULL, NULL, NULL, &err);

    kf_agent_server_result(a, code);
    if (code == 200) {
        a->heartbeats_ok++;
        a->heartbeat_endpoint_missing = false;
    } else {
        a->heartbeats_failed++;
        if (code == 404) {
            /* No such Host (deleted: register again), or a kfleetd without
             * the heartbeat endpoint (then the Host is there). */
            char *hpath = kf_xasprintf(KF_AGENT_API "/hosts/%s", h->name);
            int c2 = kf_agent_http_do(a->http, "GET", hpath, NULL, NULL, NULL, NULL);

            free(hpath);
            if (c2 == 404) {
                kf_log_warn("kfleetd does not know host \"%s\" any more; registering it again",
                            h->name);
                h->registered = false;
                h->register_at_ms = 0;
            } else if (c2 == 200 && !a->heartbeat_endpoint_missing) {
                a->heartbeat_endpoint_missing = true;
                kf_log_warn("kfleetd has no heartbeat endpoint (%s); the host will not be "
                            "Ready there until it has one",
                            err.buf);
            }
        } else {
            kf_log_rl_warn("heartbeat of \"%s\" failed: %s", h->name, err.buf);
        }
    }
    free(path);
    kf_strbuf_release(&err);
}

static void heartbeat_batch(struct kf_agent *a, size_t from, size_t to)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *names = json_array(), *body, *resp = NULL;
    int code;
    size_t n = 0;

    for (size_t i = from; i < to; i++)
        if (a->hosts[i].registered) {
            json_array_append_new(names, json_string(a->hosts[i].name));
            n++;
        }
    if (!n) {
        json_decref(names);
        return;
    }
    body = json_pack("{s:o}", "hosts", names);
    code = kf_agent_http_do(a->http, "POST", KF_AGENT_API "/heartbeats", NULL, body, &resp, &err);
    kf_agent_server_result(a, code);
    if (code == 200) {
        json_t *unknown = kf_json_path(resp, "unknown"), *v;
        size_t i;

        a->heartbeats_ok += n - json_array_size(unknown);
        a->heartbeats_failed += json_array_size(unknown);
        json_array_foreach(unknown, i, v)
        {
            struct agent_host *h = kf_smap_get(&a->host_by_name, json_string_value(v));

            if (h) {
                h->registered = false;
                h->register_at_ms = 0;
            }
        }
    } else {
        a->heartbeats_failed += n;
        kf_log_rl_warn("heartbeats of %zu hosts failed: %s", n, err.len ? err.buf : "?");
    }
    json_decref(body);
    json_decref(resp);
    kf_strbuf_release(&err);
}

void kf_agent_heartbeat(struct kf_agent *a)
{
    if (a->cfg.simulate == 0) {
        for (size_t i = 0; i < a->n_hosts; i++)
            if (a->hosts[i].registered)
                heartbeat_one(a, &a->hosts[i]);
        return;
    }
    for (size_t i = 0; i < a->n_hosts; i += HEARTBEAT_BATCH)
        heartbeat_batch(a, i, KF_MIN(a->n_hosts, i + HEARTBEAT_BATCH));
}
