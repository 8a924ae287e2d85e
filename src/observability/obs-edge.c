/* obs-edge.c: renders the edge Prometheus of one unit.
 *
 * The edge scrapes everything in its unit directly (never through kfleetd's
 * API): node_exporter on every host, every guest etcd member, every guest
 * cluster's kube-apiserver, kube-controller-manager and kube-scheduler,
 * every kfleet-agent, and kfleetd itself for the unit's capacity and water
 * level. Targets carry region, unit, zone, host, cluster, member and
 * component labels; the recording rules (obs-rules.c) fold them into
 * `unit:*` aggregates, which are all the cascading tier federates.
 *
 * Most jobs are fixed, so adding a host or an etcd member only rewrites a
 * file_sd list and needs no reload. The guests' Kubernetes components are
 * the exception: each guest cluster has its own CA, and Prometheus sets TLS
 * per job, so every guest cluster with a monitoring identity in the unit
 * gets a job `guest-<cluster>` whose tls_config names the files this
 * renderer writes to tls/<cluster>/ (CA, client certificate, key 0600).
 * Adding or removing such a cluster is a structure change (a reload); a
 * certificate renewed in place is not (Prometheus' HTTP client notices
 * changed TLS files and loads them again). The targets of a guest job set their own `job`
 * label (apiserver, controller-manager, scheduler), so the rules select
 * one component across every cluster, and what goes up stays a handful of
 * series per cluster whatever the number of jobs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

static int cmp_host(const void *a, const void *b, void *ctx)
{
    const struct kf_obs_host *h = ctx;

    return strcmp(h[*(const size_t *)a].name, h[*(const size_t *)b].name);
}

static int cmp_member(const void *a, const void *b, void *ctx)
{
    const struct kf_obs_member *m = ctx;
    const struct kf_obs_member *x = &m[*(const size_t *)a], *y = &m[*(const size_t *)b];
    int c = strcmp(x->cluster, y->cluster);

    return c ? c : strcmp(x->name, y->name);
}

static size_t *sorted_index(size_t n, int (*cmp)(const void *, const void *, void *), void *ctx)
{
    size_t *idx = kf_xcalloc(n ? n : 1, sizeof(*idx));

    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), cmp, ctx);
    return idx;
}

static void file_sd_job(struct kf_strbuf *sb, const char *job, bool honor_labels)
{
    kf_strbuf_addf(sb, "  - job_name: %s\n", job);
    if (honor_labels)
        kf_strbuf_addstr(sb, "    honor_labels: true\n");
    kf_strbuf_addf(sb, "    file_sd_configs:\n      - files:\n          - targets/%s.json\n", job);
}

static void tls_block(struct kf_strbuf *sb, const struct kf_obs_tls *t)
{
    if (t->ca_file || t->cert_file || t->key_file || t->insecure_skip_verify) {
        kf_strbuf_addstr(sb, "    tls_config:\n");
        if (t->ca_file) {
            kf_strbuf_addstr(sb, "      ca_file: ");
            kf_obs_yaml_str(sb, t->ca_file);
            kf_strbuf_addch(sb, '\n');
        }
        if (t->cert_file) {
            kf_strbuf_addstr(sb, "      cert_file: ");
            kf_obs_yaml_str(sb, t->cert_file);
            kf_strbuf_addch(sb, '\n');
        }
        if (t->key_file) {
            kf_strbuf_addstr(sb, "      key_file: ");
            kf_obs_yaml_str(sb, t->key_file);
            kf_strbuf_addch(sb, '\n');
        }
        if (t->insecure_skip_verify)
            kf_strbuf_addstr(sb, "      insecure_skip_verify: true\n");
    }
    if (t->bearer_token_file) {
        kf_strbuf_addstr(sb, "    authorization:\n      type: Bearer\n      credentials_file: ");
        kf_obs_yaml_str(sb, t->bearer_token_file);
        kf_strbuf_addch(sb, '\n');
    }
}

/* A guest cluster's Kubernetes components, what the edge needs of them:
 * its identity and where its members are in the plan's sorted members. */
struct guest_job {
    const struct kf_obs_cluster *cluster;
    size_t first, end; /* range in edge_plan.members (every kind of the cluster) */
};

/* The order of everything an edge renders, computed once per edge. */
struct edge_plan {
    size_t *hosts;          /* indexes into u->hosts, sorted by name */
    size_t *members;        /* indexes into u->members, sorted by cluster, then name */
    struct guest_job *jobs; /* clusters with an identity and a Kubernetes member, by name */
    size_t n_jobs;
};

static bool is_k8s(enum kf_obs_member_kind k)
{
    return k == KF_OBS_MEMBER_APISERVER || k == KF_OBS_MEMBER_CONTROLLER_MANAGER ||
           k == KF_OBS_MEMBER_SCHEDULER;
}

static int cmp_cluster(const void *a, const void *b, void *ctx)
{
    const struct kf_obs_cluster *c = ctx;

    return strcmp(c[*(const size_t *)a].name, c[*(const size_t *)b].name);
}

static void plan_edge(const struct kf_obs_unit *u, struct edge_plan *p)
{
    size_t *clusters = sorted_index(u->n_clusters, cmp_cluster, (void *)u->clusters);
    size_t m = 0;

    memset(p, 0, sizeof(*p));
    p->hosts = sorted_index(u->n_hosts, cmp_host, (void *)u->hosts);
    p->members = sorted_index(u->n_members, cmp_member, (void *)u->members);
    p->jobs = kf_xcalloc(u->n_clusters ? u->n_clusters : 1, sizeof(*p->jobs));
    /* both lists are sorted by cluster name: one merge walk */
    for (size_t i = 0; i < u->n_clusters; i++) {
        const struct kf_obs_cluster *c = &u->clusters[clusters[i]];
        struct guest_job *j = &p->jobs[p->n_jobs];
        bool k8s = false;

        while (m < u->n_members && strcmp(u->members[p->members[m]].cluster, c->name) < 0)
            m++;
        j->cluster = c;
        j->first = m;
        while (m < u->n_members && strcmp(u->members[p->members[m]].cluster, c->name) == 0)
            k8s |= is_k8s(u->members[p->members[m++]].kind);
        j->end = m;
        if (k8s)
            p->n_jobs++;
    }
    free(clusters);
}

static void plan_release(struct edge_plan *p)
{
    free(p->hosts);
    free(p->members);
    free(p->jobs);
}

/* Families of the Kubernetes components that no rule reads and that cost
 * the most series (histograms by resource, verb, size, admission plugin,
 * work queue; feature gates), dropped at the edge: a 1.37 apiserver of a
 * young guest serves about 20,000 samples a scrape, some 7,000 are kept
 * (measured with tests/integration/test_guest_monitoring.py's fleet).
 * What the rules read (apiserver_request_total,
 * apiserver_request_duration_seconds_bucket) and the rest stay for people
 * to look at. */
#define GUEST_DROP                                                                                \
    "apiserver_(request_body_size_bytes|response_sizes|watch_events_sizes|watch_list_duration_"   \
    "seconds|request_sli_duration_seconds|request_slo_duration_seconds|watch_events_dispatch_"    \
    "duration_seconds|watch_cache_initialization_duration_seconds|watch_cache_read_wait_seconds|" \
    "storage_list_duration_seconds|request_filter_duration_seconds|admission_controller_"         \
    "admission_duration_seconds|admission_step_admission_duration_seconds|flowcontrol_[a-z_]+)_"  \
    "bucket|etcd_request_duration_seconds_bucket|informer_processing_latency_seconds_bucket|"     \
    "workqueue_(queue|work)_duration_seconds_bucket|kubernetes_feature_enabled"

/* Appends "<prefix><cluster><suffix>" as a YAML scalar. */
static void yaml_path(struct kf_strbuf *sb, const char *prefix, const char *cluster,
                      const char *suffix)
{
    char *p = kf_xasprintf("%s%s%s", prefix, cluster, suffix);

    kf_obs_yaml_str(sb, p);
    free(p);
}

/* The job of one guest cluster's Kubernetes components: https with the
 * cluster's CA and the edge's client certificate for that cluster (paths
 * relative to the config: the files gen_guest writes). */
static void guest_job(struct kf_strbuf *sb, const struct kf_obs_cluster *c)
{
    kf_strbuf_addstr(sb, "  - job_name: ");
    yaml_path(sb, "guest-", c->name, "");
    kf_strbuf_addstr(sb, "\n    scheme: https\n    tls_config:\n      ca_file: ");
    yaml_path(sb, "tls/", c->name, "/ca.crt");
    kf_strbuf_addstr(sb, "\n      cert_file: ");
    yaml_path(sb, "tls/", c->name, "/monitoring.crt");
    kf_strbuf_addstr(sb, "\n      key_file: ");
    yaml_path(sb, "tls/", c->name, "/monitoring.key");
    kf_strbuf_addstr(sb, "\n    file_sd_configs:\n      - files:\n          - ");
    yaml_path(sb, "targets/guest-", c->name, ".json");
    kf_strbuf_addstr(sb, "\n    metric_relabel_configs:\n"
                         "      - source_labels: [__name__]\n"
                         "        regex: '" GUEST_DROP "'\n"
                         "        action: drop\n");
}

static void gen_config(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                       const struct kf_obs_instance *edge, const struct kf_obs_settings *s,
                       const struct edge_plan *p, struct kf_obs_files *out)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    const char *ext[] = { "region", u->region, OBS_LABEL_REPLICA, edge->name, "unit", u->name };
    const char *self[] = { "region", u->region, "unit", u->name };
    char *path;

    kf_strbuf_addstr(&sb, OBS_HEADER);
    kf_strbuf_addf(&sb, "# Edge Prometheus of unit \"%s\" in region \"%s\" (instance \"%s\").\n",
                   u->name, u->region, edge->name);
    kf_obs_prom_global(&sb, s, ext, 3);
    kf_strbuf_addstr(&sb, "rule_files:\n  - rules/unit.rules.yml\nscrape_configs:\n");

    /* agents export per-member series labelled cluster/component/member:
     * their own labels win over the target's component="agent" */
    file_sd_job(&sb, OBS_JOB_AGENT, true);
    file_sd_job(&sb, OBS_JOB_ETCD, false);
    tls_block(&sb, &f->guest_tls);
    for (size_t i = 0; i < p->n_jobs; i++)
        guest_job(&sb, p->jobs[i].cluster);

    /* kfleetd knows the whole fleet; the edge keeps only its unit's series.
     * The unit parameter lets kfleetd send just those. */
    file_sd_job(&sb, OBS_JOB_KFLEETD, false);
    kf_strbuf_addstr(&sb, "    params:\n      unit:\n        - ");
    kf_obs_yaml_str(&sb, u->name);
    kf_strbuf_addch(&sb, '\n');
    if (f->kfleetd_token_file) {
        kf_strbuf_addstr(&sb, "    authorization:\n      type: Bearer\n      credentials_file: ");
        kf_obs_yaml_str(&sb, f->kfleetd_token_file);
        kf_strbuf_addch(&sb, '\n');
    }
    {
        struct kf_strbuf re = KF_STRBUF_INIT;

        kf_obs_regex_quote(&re, u->name);
        kf_strbuf_addstr(&sb, "    metric_relabel_configs:\n"
                              "      - source_labels: [unit]\n"
                              "        regex: ");
        kf_obs_yaml_str(&sb, re.buf);
        kf_strbuf_addstr(&sb, "\n        action: keep\n");
        kf_strbuf_release(&re);
    }

    /* node_exporter: drop families nobody aggregates, they only cost memory */
    file_sd_job(&sb, OBS_JOB_NODE, false);
    kf_strbuf_addstr(&sb, "    metric_relabel_configs:\n"
                          "      - source_labels: [__name__]\n"
                          "        regex: 'node_(scrape_collector_.*|softnet_.*)'\n"
                          "        action: drop\n");
    kf_obs_prom_self_job(&sb, edge, self, 2);

    path = kf_xasprintf("%s/prometheus.yml", edge->name);
    kf_obs_add_file(out, path, &sb);
    free(path);
}

static void gen_rules(const struct kf_obs_instance *edge, const struct kf_obs_settings *s,
                      struct kf_obs_files *out)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    const struct obs_record *rec;
    size_t n;
    char *path;

    rec = kf_obs_unit_records(&n);
    kf_strbuf_addstr(&sb, OBS_HEADER);
    kf_strbuf_addstr(&sb, "# Per-unit aggregates: the only series the cascading tier federates.\n"
                          "groups:\n  - name: kfleet-unit\n    interval: ");
    kf_obs_duration(&sb, s->evaluation_interval_ms);
    kf_strbuf_addstr(&sb, "\n    rules:\n");
    for (size_t i = 0; i < n; i++) {
        struct kf_strbuf expr = KF_STRBUF_INIT;

        kf_obs_subst(&expr, rec[i].expr, s->rate_window_ms, 0);
        kf_strbuf_addf(&sb, "      - record: %s\n        expr: ", rec[i].record);
        kf_obs_yaml_str(&sb, expr.buf);
        kf_strbuf_addch(&sb, '\n');
        kf_strbuf_release(&expr);
    }
    path = kf_xasprintf("%s/rules/unit.rules.yml", edge->name);
    kf_obs_add_file(out, path, &sb);
    free(path);
}

/* Adds <edge>/tls/<cluster>/<name>. */
static void add_tls_file(struct kf_obs_files *out, const char *edge, const char *cluster,
                         const char *name, const char *text, mode_t mode, bool secret)
{
    char *path = kf_xasprintf("%s/tls/%s/%s", edge, cluster, name);

    kf_obs_files_add(out, path, kf_xstrdup(text), strlen(text), mode, true, secret);
    free(path);
}

/* The component label and the job label of a Kubernetes member. */
static void k8s_names(enum kf_obs_member_kind k, const char **ret_component, const char **ret_job)
{
    switch (k) {
    case KF_OBS_MEMBER_CONTROLLER_MANAGER:
        *ret_component = "kube-controller-manager";
        *ret_job = OBS_JOB_CONTROLLER_MANAGER;
        break;
    case KF_OBS_MEMBER_SCHEDULER:
        *ret_component = "kube-scheduler";
        *ret_job = OBS_JOB_SCHEDULER;
        break;
    default:
        *ret_component = "kube-apiserver";
        *ret_job = OBS_JOB_APISERVER;
        break;
    }
}

/* One guest cluster: its target list and its TLS files. The files count as
 * targets: Prometheus reads them again by itself. */
static void gen_guest(const struct kf_obs_unit *u, const struct kf_obs_instance *edge,
                      const struct edge_plan *p, const struct guest_job *j,
                      struct kf_obs_files *out)
{
    struct obs_targets t;
    char *file = kf_xasprintf("guest-%s.json", j->cluster->name);

    kf_obs_targets_begin(&t);
    for (size_t i = j->first; i < j->end; i++) {
        const struct kf_obs_member *m = &u->members[p->members[i]];
        const char *component, *job;

        if (!is_k8s(m->kind))
            continue;
        k8s_names(m->kind, &component, &job);
        {
            const char *ml[] = { "cluster", m->cluster, "component", component, "host",   m->host,
                                 "job",     job,        "member",    m->name,   "region", u->region,
                                 "unit",    u->name,    "zone",      m->zone };

            kf_obs_targets_add(&t, m->address, ml, 8);
        }
    }
    kf_obs_targets_finish(&t, edge->name, file, out);
    add_tls_file(out, edge->name, j->cluster->name, "ca.crt", j->cluster->ca, 0644, false);
    add_tls_file(out, edge->name, j->cluster->name, "monitoring.crt", j->cluster->cert, 0644,
                 false);
    add_tls_file(out, edge->name, j->cluster->name, "monitoring.key", j->cluster->key, 0600, true);
    free(file);
}

static void gen_targets(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                        const struct kf_obs_instance *edge, const struct edge_plan *p,
                        struct kf_obs_files *out)
{
    const char **kfleetd = kf_xcalloc(f->n_kfleetd ? f->n_kfleetd : 1, sizeof(*kfleetd));
    struct obs_targets node, agent, etcd, kfd;

    kf_obs_targets_begin(&node);
    kf_obs_targets_begin(&agent);
    for (size_t i = 0; i < u->n_hosts; i++) {
        const struct kf_obs_host *h = &u->hosts[p->hosts[i]];
        const char *nl[] = { "component", "node-exporter", "host",  h->name, "region",
                             u->region,   "unit",          u->name, "zone",  h->zone };
        const char *al[] = { "component", "agent", "host",  h->name, "region",
                             u->region,   "unit",  u->name, "zone",  h->zone };

        if (h->node_exporter)
            kf_obs_targets_add(&node, h->node_exporter, nl, 5);
        if (h->agent)
            kf_obs_targets_add(&agent, h->agent, al, 5);
    }
    kf_obs_targets_begin(&etcd);
    for (size_t i = 0; i < u->n_members; i++) {
        const struct kf_obs_member *m = &u->members[p->members[i]];
        const char *ml[] = { "__scheme__", m->https ? "https" : NULL,
                             "cluster",    m->cluster,
                             "component",  "etcd",
                             "host",       m->host,
                             "member",     m->name,
                             "region",     u->region,
                             "unit",       u->name,
                             "zone",       m->zone };

        if (m->kind == KF_OBS_MEMBER_ETCD)
            kf_obs_targets_add(&etcd, m->address, ml, 8);
    }
    for (size_t i = 0; i < p->n_jobs; i++)
        gen_guest(u, edge, p, &p->jobs[i], out);
    kf_obs_targets_begin(&kfd);
    for (size_t i = 0; i < f->n_kfleetd; i++)
        kfleetd[i] = f->kfleetd[i];
    qsort(kfleetd, f->n_kfleetd, sizeof(*kfleetd), kf_strp_cmp);
    for (size_t i = 0; i < f->n_kfleetd; i++) {
        const char *kl[] = { "component", "kfleetd" };

        if (i && strcmp(kfleetd[i - 1], kfleetd[i]) == 0)
            continue;
        kf_obs_targets_add(&kfd, kfleetd[i], kl, 1);
    }
    kf_obs_targets_finish(&agent, edge->name, OBS_JOB_AGENT ".json", out);
    kf_obs_targets_finish(&etcd, edge->name, OBS_JOB_ETCD ".json", out);
    kf_obs_targets_finish(&kfd, edge->name, OBS_JOB_KFLEETD ".json", out);
    kf_obs_targets_finish(&node, edge->name, OBS_JOB_NODE ".json", out);
    free(kfleetd);
}

int kf_obs_gen_edge_unchecked(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                              const struct kf_obs_instance *edge, struct kf_obs_files *out)
{
    struct kf_obs_settings s;
    struct edge_plan p;

    kf_obs_settings_effective(f, kf_obs_region_find(f, u->region), &s);
    plan_edge(u, &p);
    gen_config(f, u, edge, &s, &p, out);
    gen_rules(edge, &s, out);
    gen_targets(f, u, edge, &p, out);
    plan_release(&p);
    return 0;
}

int kf_obs_gen_edge(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                    const struct kf_obs_instance *edge, struct kf_obs_files *out,
                    struct kf_strbuf *err)
{
    int r = kf_obs_fleet_check(f, err);

    if (r < 0)
        return r;
    return kf_obs_gen_edge_unchecked(f, u, edge, out);
}
