/* obs-cascade.c: renders the cascading Prometheus of one region.
 *
 * It federates the `unit:*` aggregates (and per-host `up` of node_exporter,
 * for regional drill-down) from every edge of the region's units, with
 * honor_labels, honor_timestamps: false and an explicit scrape timeout.
 * Edges may run as a replica pair with distinct `replica` labels; the
 * region's rules fold them away (max without (replica)) into
 * `region:unit_*` series and add `region:*` roll-ups. Central federates
 * only `region:*`, so it never sees an edge replica. The region's
 * compliance tags ride along as a `compliance` external label, which
 * alerts keep, so routes can send a region's alerts where its rules say.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

/* The region's compliance tags, sorted and comma-joined; NULL if none. */
static char *compliance_value(const struct kf_obs_region *r)
{
    const char **tags;
    struct kf_strbuf sb = KF_STRBUF_INIT;

    if (!r->n_compliance)
        return NULL;
    tags = kf_xcalloc(r->n_compliance, sizeof(*tags));
    for (size_t i = 0; i < r->n_compliance; i++)
        tags[i] = r->compliance[i];
    qsort(tags, r->n_compliance, sizeof(*tags), kf_strp_cmp);
    for (size_t i = 0; i < r->n_compliance; i++) {
        if (i && strcmp(tags[i - 1], tags[i]) == 0)
            continue;
        if (sb.len)
            kf_strbuf_addch(&sb, ',');
        kf_strbuf_addstr(&sb, tags[i]);
    }
    free(tags);
    return kf_strbuf_detach(&sb, NULL);
}

char *kf_obs_region_compliance(const struct kf_obs_region *r)
{
    return compliance_value(r);
}

static void gen_config(const struct kf_obs_region *r, const struct kf_obs_instance *c,
                       const struct kf_obs_settings *s, struct kf_obs_files *out)
{
    static const char *const match[] = { "{__name__=~\"unit:.*\"}", "up{job=\"node\"}" };
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char *compliance = compliance_value(r);
    const char *ext[] = { "compliance", compliance, "region", r->name, OBS_LABEL_REPLICA, c->name };
    const char *self[] = { "region", r->name };
    char *path;

    kf_strbuf_addstr(&sb, OBS_HEADER);
    kf_strbuf_addf(&sb, "# Cascading Prometheus of region \"%s\" (instance \"%s\").\n", r->name,
                   c->name);
    kf_obs_prom_global(&sb, s, ext, 3);
    kf_strbuf_addstr(&sb, "rule_files:\n  - rules/region.rules.yml\nscrape_configs:\n");
    kf_obs_prom_federation_job(&sb, OBS_JOB_FED_UNITS, match, KF_ARRAY_SIZE(match), s,
                               "edges.json");
    kf_obs_prom_self_job(&sb, c, self, 1);
    path = kf_xasprintf("%s/prometheus.yml", c->name);
    kf_obs_add_file(out, path, &sb);
    free(path);
    free(compliance);
}

static void gen_rules(const struct kf_obs_instance *c, const struct kf_obs_settings *s,
                      struct kf_obs_files *out)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    const struct obs_record *rec;
    size_t n;
    char *path;

    kf_strbuf_addstr(&sb, OBS_HEADER);
    kf_strbuf_addstr(&sb,
                     "# region:unit_* re-record every unit:* aggregate of the region's edges with\n"
                     "# the edge replicas folded away; region:* roll up the region. Central\n"
                     "# federates only region:*.\n"
                     "groups:\n  - name: kfleet-region\n    interval: ");
    kf_obs_duration(&sb, s->evaluation_interval_ms);
    kf_strbuf_addstr(&sb, "\n    rules:\n");
    rec = kf_obs_unit_records(&n);
    for (size_t i = 0; i < n; i++) {
        const char *metric = rec[i].record + strlen("unit:");

        kf_strbuf_addf(&sb,
                       "      - record: region:unit_%s\n"
                       "        expr: 'max without (" OBS_LABEL_REPLICA ") (%s)'\n",
                       metric, rec[i].record);
    }
    rec = kf_obs_region_rollups(&n);
    for (size_t i = 0; i < n; i++) {
        struct kf_strbuf expr = KF_STRBUF_INIT;

        kf_obs_subst(&expr, rec[i].expr, s->rate_window_ms, 0);
        kf_strbuf_addf(&sb, "      - record: %s\n        expr: ", rec[i].record);
        kf_obs_yaml_str(&sb, expr.buf);
        kf_strbuf_addch(&sb, '\n');
        kf_strbuf_release(&expr);
    }
    path = kf_xasprintf("%s/rules/region.rules.yml", c->name);
    kf_obs_add_file(out, path, &sb);
    free(path);
}

static int cmp_unit(const void *a, const void *b)
{
    const struct kf_obs_unit *x = *(const struct kf_obs_unit *const *)a;
    const struct kf_obs_unit *y = *(const struct kf_obs_unit *const *)b;

    return strcmp(x->name, y->name);
}

static int cmp_inst(const void *a, const void *b)
{
    const struct kf_obs_instance *x = *(const struct kf_obs_instance *const *)a;
    const struct kf_obs_instance *y = *(const struct kf_obs_instance *const *)b;

    return strcmp(x->name, y->name);
}

static void gen_targets(const struct kf_obs_fleet *f, const struct kf_obs_region *r,
                        const struct kf_obs_instance *c, struct kf_obs_files *out)
{
    const struct kf_obs_unit **units = kf_xcalloc(f->n_units ? f->n_units : 1, sizeof(*units));
    struct obs_targets t;
    size_t n = 0;

    for (size_t i = 0; i < f->n_units; i++)
        if (strcmp(f->units[i].region, r->name) == 0)
            units[n++] = &f->units[i];
    qsort(units, n, sizeof(*units), cmp_unit);
    kf_obs_targets_begin(&t);
    for (size_t i = 0; i < n; i++) {
        const struct kf_obs_instance *edges[2];
        size_t ne = KF_MIN(units[i]->n_edges, KF_ARRAY_SIZE(edges));

        for (size_t j = 0; j < ne; j++)
            edges[j] = &units[i]->edges[j];
        qsort(edges, ne, sizeof(*edges), cmp_inst);
        for (size_t j = 0; j < ne; j++) {
            const char *l[] = { "region", r->name, "unit", units[i]->name };

            kf_obs_targets_add(&t, edges[j]->listen, l, 2);
        }
    }
    kf_obs_targets_finish(&t, c->name, "edges.json", out);
    free(units);
}

int kf_obs_gen_cascade_unchecked(const struct kf_obs_fleet *f, const struct kf_obs_region *r,
                                 const struct kf_obs_instance *cascade, struct kf_obs_files *out)
{
    struct kf_obs_settings s;

    kf_obs_settings_effective(f, r, &s);
    gen_config(r, cascade, &s, out);
    gen_rules(cascade, &s, out);
    gen_targets(f, r, cascade, out);
    return 0;
}

int kf_obs_gen_cascade(const struct kf_obs_fleet *f, const struct kf_obs_region *r,
                       const struct kf_obs_instance *cascade, struct kf_obs_files *out,
                       struct kf_strbuf *err)
{
    int rc = kf_obs_fleet_check(f, err);

    if (rc < 0)
        return rc;
    return kf_obs_gen_cascade_unchecked(f, r, cascade, out);
}
