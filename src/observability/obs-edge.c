/* obs-edge.c: renders the edge Prometheus of one unit.
 *
 * The edge scrapes everything in its unit directly (never through kfleetd's
 * API): node_exporter on every host, every guest etcd and kube-apiserver
 * member, every kfleet-agent, and kfleetd itself for the unit's capacity
 * and water level. The set of jobs is fixed, so adding a host or a guest
 * cluster only rewrites a file_sd list and needs no reload. Targets carry
 * region, unit, zone, host, cluster, member and component labels; the
 * recording rules (obs-rules.c) fold them into `unit:*` aggregates, which
 * are all the cascading tier federates.
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
            obs_yaml_str(sb, t->ca_file);
            kf_strbuf_addch(sb, '\n');
        }
        if (t->cert_file) {
            kf_strbuf_addstr(sb, "      cert_file: ");
            obs_yaml_str(sb, t->cert_file);
            kf_strbuf_addch(sb, '\n');
        }
        if (t->key_file) {
            kf_strbuf_addstr(sb, "      key_file: ");
            obs_yaml_str(sb, t->key_file);
            kf_strbuf_addch(sb, '\n');
        }
        if (t->insecure_skip_verify)
            kf_strbuf_addstr(sb, "      insecure_skip_verify: true\n");
    }
    if (t->bearer_token_file) {
        kf_strbuf_addstr(sb, "    authorization:\n      type: Bearer\n      credentials_file: ");
        obs_yaml_str(sb, t->bearer_token_file);
        kf_strbuf_addch(sb, '\n');
    }
}

static void gen_config(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                       const struct kf_obs_instance *edge, const struct kf_obs_settings *s,
                       struct kf_obs_files *out)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    const char *ext[] = { "region", u->region, OBS_LABEL_REPLICA, edge->name, "unit", u->name };
    const char *self[] = { "region", u->region, "unit", u->name };
    char *path;

    kf_strbuf_addstr(&sb, OBS_HEADER);
    kf_strbuf_addf(&sb, "# Edge Prometheus of unit \"%s\" in region \"%s\" (instance \"%s\").\n",
                   u->name, u->region, edge->name);
    obs_prom_global(&sb, s, ext, 3);
    kf_strbuf_addstr(&sb, "rule_files:\n  - rules/unit.rules.yml\nscrape_configs:\n");

    /* agents export per-member series labelled cluster/component/member:
     * their own labels win over the target's component="agent" */
    file_sd_job(&sb, OBS_JOB_AGENT, true);
    file_sd_job(&sb, OBS_JOB_APISERVER, false);
    tls_block(&sb, &f->guest_tls);
    file_sd_job(&sb, OBS_JOB_ETCD, false);
    tls_block(&sb, &f->guest_tls);

    /* kfleetd knows the whole fleet; the edge keeps only its unit's series.
     * The unit parameter lets kfleetd send just those. */
    file_sd_job(&sb, OBS_JOB_KFLEETD, false);
    kf_strbuf_addstr(&sb, "    params:\n      unit:\n        - ");
    obs_yaml_str(&sb, u->name);
    kf_strbuf_addch(&sb, '\n');
    if (f->kfleetd_token_file) {
        kf_strbuf_addstr(&sb, "    authorization:\n      type: Bearer\n      credentials_file: ");
        obs_yaml_str(&sb, f->kfleetd_token_file);
        kf_strbuf_addch(&sb, '\n');
    }
    {
        struct kf_strbuf re = KF_STRBUF_INIT;

        obs_regex_quote(&re, u->name);
        kf_strbuf_addstr(&sb, "    metric_relabel_configs:\n"
                              "      - source_labels: [unit]\n"
                              "        regex: ");
        obs_yaml_str(&sb, re.buf);
        kf_strbuf_addstr(&sb, "\n        action: keep\n");
        kf_strbuf_release(&re);
    }

    /* node_exporter: drop families nobody aggregates, they only cost memory */
    file_sd_job(&sb, OBS_JOB_NODE, false);
    kf_strbuf_addstr(&sb, "    metric_relabel_configs:\n"
                          "      - source_labels: [__name__]\n"
                          "        regex: 'node_(scrape_collector_.*|softnet_.*)'\n"
                          "        action: drop\n");
    obs_prom_self_job(&sb, edge, self, 2);

    path = kf_xasprintf("%s/prometheus.yml", edge->name);
    obs_add_file(out, path, &sb);
    free(path);
}

static void gen_rules(const struct kf_obs_instance *edge, const struct kf_obs_settings *s,
                      struct kf_obs_files *out)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    const struct obs_record *rec;
    size_t n;
    char *path;

    rec = obs_unit_records(&n);
    kf_strbuf_addstr(&sb, OBS_HEADER);
    kf_strbuf_addstr(&sb, "# Per-unit aggregates: the only series the cascading tier federates.\n"
                          "groups:\n  - name: kfleet-unit\n    interval: ");
    obs_duration(&sb, s->evaluation_interval_ms);
    kf_strbuf_addstr(&sb, "\n    rules:\n");
    for (size_t i = 0; i < n; i++) {
        struct kf_strbuf expr = KF_STRBUF_INIT;

        obs_subst(&expr, rec[i].expr, s->rate_window_ms, 0);
        kf_strbuf_addf(&sb, "      - record: %s\n        expr: ", rec[i].record);
        obs_yaml_str(&sb, expr.buf);
        kf_strbuf_addch(&sb, '\n');
        kf_strbuf_release(&expr);
    }
    path = kf_xasprintf("%s/rules/unit.rules.yml", edge->name);
    obs_add_file(out, path, &sb);
    free(path);
}

static void gen_targets(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                        const struct kf_obs_instance *edge, struct kf_obs_files *out)
{
    size_t *hosts = sorted_index(u->n_hosts, cmp_host, (void *)u->hosts);
    size_t *members = sorted_index(u->n_members, cmp_member, (void *)u->members);
    const char **kfleetd = kf_xcalloc(f->n_kfleetd ? f->n_kfleetd : 1, sizeof(*kfleetd));
    struct obs_targets node, agent, etcd, apiserver, kfd;

    obs_targets_begin(&node);
    obs_targets_begin(&agent);
    for (size_t i = 0; i < u->n_hosts; i++) {
        const struct kf_obs_host *h = &u->hosts[hosts[i]];
        const char *nl[] = { "component", "node-exporter", "host",  h->name, "region",
                             u->region,   "unit",          u->name, "zone",  h->zone };
        const char *al[] = { "component", "agent", "host",  h->name, "region",
                             u->region,   "unit",  u->name, "zone",  h->zone };

        if (h->node_exporter)
            obs_targets_add(&node, h->node_exporter, nl, 5);
        if (h->agent)
            obs_targets_add(&agent, h->agent, al, 5);
    }
    obs_targets_begin(&etcd);
    obs_targets_begin(&apiserver);
    for (size_t i = 0; i < u->n_members; i++) {
        const struct kf_obs_member *m = &u->members[members[i]];
        bool is_etcd = m->kind == KF_OBS_MEMBER_ETCD;
        const char *ml[] = { "__scheme__", m->https ? "https" : NULL,
                             "cluster",    m->cluster,
                             "component",  is_etcd ? "etcd" : "kube-apiserver",
                             "host",       m->host,
                             "member",     m->name,
                             "region",     u->region,
                             "unit",       u->name,
                             "zone",       m->zone };

        obs_targets_add(is_etcd ? &etcd : &apiserver, m->address, ml, 8);
    }
    obs_targets_begin(&kfd);
    for (size_t i = 0; i < f->n_kfleetd; i++)
        kfleetd[i] = f->kfleetd[i];
    qsort(kfleetd, f->n_kfleetd, sizeof(*kfleetd), kf_strp_cmp);
    for (size_t i = 0; i < f->n_kfleetd; i++) {
        const char *kl[] = { "component", "kfleetd" };

        if (i && strcmp(kfleetd[i - 1], kfleetd[i]) == 0)
            continue;
        obs_targets_add(&kfd, kfleetd[i], kl, 1);
    }
    obs_targets_finish(&agent, edge->name, OBS_JOB_AGENT ".json", out);
    obs_targets_finish(&apiserver, edge->name, OBS_JOB_APISERVER ".json", out);
    obs_targets_finish(&etcd, edge->name, OBS_JOB_ETCD ".json", out);
    obs_targets_finish(&kfd, edge->name, OBS_JOB_KFLEETD ".json", out);
    obs_targets_finish(&node, edge->name, OBS_JOB_NODE ".json", out);
    free(kfleetd);
    free(members);
    free(hosts);
}

int obs_gen_edge(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                 const struct kf_obs_instance *edge, struct kf_obs_files *out)
{
    struct kf_obs_settings s;

    obs_settings(f, obs_region(f, u->region), &s);
    gen_config(f, u, edge, &s, out);
    gen_rules(edge, &s, out);
    gen_targets(f, u, edge, out);
    return 0;
}

int kf_obs_gen_edge(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                    const struct kf_obs_instance *edge, struct kf_obs_files *out,
                    struct kf_strbuf *err)
{
    int r = kf_obs_fleet_check(f, err);

    if (r < 0)
        return r;
    return obs_gen_edge(f, u, edge, out);
}
