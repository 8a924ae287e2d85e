/* obs-central.c: renders one replica of the dual-active central Prometheus.
 *
 * Both replicas federate `region:*` from every cascading instance and
 * evaluate the same alert rules. Each carries its own `central_replica`
 * external label, which alert_relabel_configs drops before alerts leave,
 * so the two replicas' alerts are identical and Alertmanager merges them;
 * both send to every Alertmanager peer (never through a load balancer).
 * The alert rules are the default table of obs-rules.c with the model's
 * overrides, plus the federation-gap rules written from the model: every
 * region and unit the fleet has must be present at the top, or an alert
 * says which is missing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

static void gen_config(const struct kf_obs_instance *c, const struct kf_obs_settings *s,
                       struct kf_obs_files *out)
{
    static const char *const match[] = { "{__name__=~\"region:.*\"}" };
    struct kf_strbuf sb = KF_STRBUF_INIT;
    const char *ext[] = { OBS_LABEL_CENTRAL_REPLICA, c->name };
    char *path;

    kf_strbuf_addstr(&sb, OBS_HEADER);
    kf_strbuf_addf(&sb, "# Central Prometheus, replica \"%s\" of the dual-active pair.\n", c->name);
    kf_obs_prom_global(&sb, s, ext, 1);
    kf_strbuf_addstr(&sb, "rule_files:\n"
                          "  - rules/alerts.rules.yml\n"
                          "alerting:\n"
                          "  # Both replicas send identical alerts to every Alertmanager peer.\n"
                          "  alert_relabel_configs:\n"
                          "    - action: labeldrop\n"
                          "      regex: " OBS_LABEL_CENTRAL_REPLICA "\n"
                          "  alertmanagers:\n"
                          "    - api_version: v2\n"
                          "      file_sd_configs:\n"
                          "        - files:\n"
                          "            - targets/alertmanagers.json\n"
                          "scrape_configs:\n"
                          "  - job_name: " OBS_JOB_AM "\n"
                          "    file_sd_configs:\n"
                          "      - files:\n"
                          "          - targets/alertmanagers.json\n");
    kf_obs_prom_federation_job(&sb, OBS_JOB_FED_REGIONS, match, KF_ARRAY_SIZE(match), s,
                               "cascades.json");
    kf_obs_prom_self_job(&sb, c, NULL, 0);
    path = kf_xasprintf("%s/prometheus.yml", c->name);
    kf_obs_add_file(out, path, &sb);
    free(path);
}

static const struct kf_obs_alert_override *find_override(const struct kf_obs_fleet *f,
                                                         const char *alert)
{
    for (size_t i = 0; i < f->n_alert_overrides; i++)
        if (kf_streq(f->alert_overrides[i].alert, alert))
            return &f->alert_overrides[i];
    return NULL;
}

/* label_replace(X, "compliance", "<tags>", "", "") when the region has tags,
 * so that the absent() alerts route like the region's other alerts. */
static void with_compliance(struct kf_strbuf *sb, const struct kf_obs_region *r, const char *inner)
{
    char *tags = kf_obs_region_compliance(r);

    if (!tags) {
        kf_strbuf_addstr(sb, inner);
        return;
    }
    kf_strbuf_addf(sb, "label_replace(%s, \"compliance\", ", inner);
    kf_obs_promql_str(sb, tags);
    kf_strbuf_addstr(sb, ", \"\", \"\")");
    free(tags);
}

static void region_absent_expr(struct kf_strbuf *sb, const struct kf_obs_region *r)
{
    struct kf_strbuf in = KF_STRBUF_INIT;

    kf_strbuf_addstr(&in, "absent(region:units:count{region=");
    kf_obs_promql_str(&in, r->name);
    kf_strbuf_addstr(&in, "})");
    with_compliance(sb, r, in.buf);
    kf_strbuf_release(&in);
}

/* absent(...u1...) or absent(...u2...) over the region's units, sorted;
 * false if the region has none. */
static bool unit_absent_expr(struct kf_strbuf *sb, const struct kf_obs_fleet *f,
                             const struct kf_obs_region *r)
{
    const char **units = kf_xcalloc(f->n_units ? f->n_units : 1, sizeof(*units));
    size_t n = 0;

    for (size_t i = 0; i < f->n_units; i++)
        if (strcmp(f->units[i].region, r->name) == 0)
            units[n++] = f->units[i].name;
    qsort(units, n, sizeof(*units), kf_strp_cmp);
    for (size_t i = 0; i < n; i++) {
        struct kf_strbuf in = KF_STRBUF_INIT;

        kf_strbuf_addstr(&in, "absent(region:unit_edge_up:max{region=");
        kf_obs_promql_str(&in, r->name);
        kf_strbuf_addstr(&in, ",unit=");
        kf_obs_promql_str(&in, units[i]);
        kf_strbuf_addstr(&in, "})");
        if (i)
            kf_strbuf_addstr(sb, " or ");
        with_compliance(sb, r, in.buf);
        kf_strbuf_release(&in);
    }
    free(units);
    return n > 0;
}

static void add_rule(struct kf_strbuf *sb, const struct kf_obs_alert_rule *rule,
                     const char *severity, int64_t for_ms, const char *expr)
{
    kf_strbuf_addf(sb, "      - alert: %s\n        expr: ", rule->alert);
    kf_obs_yaml_str(sb, expr);
    kf_strbuf_addstr(sb, "\n        for: ");
    kf_obs_duration(sb, for_ms);
    kf_strbuf_addstr(sb, "\n        labels:\n          severity: ");
    kf_obs_yaml_str(sb, severity);
    kf_strbuf_addstr(sb, "\n        annotations:\n          summary: ");
    kf_obs_yaml_str(sb, rule->summary);
    kf_strbuf_addstr(sb, "\n          description: ");
    kf_obs_yaml_str(sb, rule->description);
    kf_strbuf_addch(sb, '\n');
}

static int cmp_region(const void *a, const void *b)
{
    const struct kf_obs_region *x = *(const struct kf_obs_region *const *)a;
    const struct kf_obs_region *y = *(const struct kf_obs_region *const *)b;

    return strcmp(x->name, y->name);
}

static void gen_rules(const struct kf_obs_fleet *f, const struct kf_obs_instance *c,
                      const struct kf_obs_settings *s, struct kf_obs_files *out)
{
    const struct kf_obs_region **regions =
        kf_xcalloc(f->n_regions ? f->n_regions : 1, sizeof(*regions));
    struct kf_strbuf sb = KF_STRBUF_INIT;
    const struct kf_obs_alert_rule *rules;
    size_t n;
    char *path;

    for (size_t i = 0; i < f->n_regions; i++)
        regions[i] = &f->regions[i];
    qsort(regions, f->n_regions, sizeof(*regions), cmp_region);

    kf_strbuf_addstr(&sb, OBS_HEADER);
    kf_strbuf_addstr(&sb, "# kfleet's default alerts over the region:* series central federates.\n"
                          "groups:\n  - name: kfleet-alerts\n    interval: ");
    kf_obs_duration(&sb, s->evaluation_interval_ms);
    kf_strbuf_addstr(&sb, "\n    rules:\n");
    rules = kf_obs_default_alerts(&n);
    for (size_t i = 0; i < n; i++) {
        const struct kf_obs_alert_override *o = find_override(f, rules[i].alert);
        const char *severity = o && o->severity ? o->severity : rules[i].severity;
        int64_t for_ms = o && o->for_ms >= 0 ? o->for_ms : rules[i].for_ms;
        double threshold = o && !isnan(o->threshold) ? o->threshold : rules[i].threshold;

        if (o && o->disabled)
            continue;
        if (rules[i].expr) {
            struct kf_strbuf expr = KF_STRBUF_INIT;

            kf_obs_subst(&expr, rules[i].expr, s->rate_window_ms, threshold);
            add_rule(&sb, &rules[i], severity, for_ms, expr.buf);
            kf_strbuf_release(&expr);
            continue;
        }
        /* federation gaps: one rule per region of the model */
        for (size_t j = 0; j < f->n_regions; j++) {
            struct kf_strbuf expr = KF_STRBUF_INIT;
            bool any = true;

            if (strcmp(rules[i].alert, "KfleetRegionAbsent") == 0)
                region_absent_expr(&expr, regions[j]);
            else
                any = unit_absent_expr(&expr, f, regions[j]);
            if (any)
                add_rule(&sb, &rules[i], severity, for_ms, expr.buf);
            kf_strbuf_release(&expr);
        }
    }
    path = kf_xasprintf("%s/rules/alerts.rules.yml", c->name);
    kf_obs_add_file(out, path, &sb);
    free(path);
    free(regions);
}

static int cmp_am(const void *a, const void *b)
{
    const struct kf_obs_alertmanager *x = *(const struct kf_obs_alertmanager *const *)a;
    const struct kf_obs_alertmanager *y = *(const struct kf_obs_alertmanager *const *)b;

    return strcmp(x->name, y->name);
}

static int cmp_inst(const void *a, const void *b)
{
    const struct kf_obs_instance *x = *(const struct kf_obs_instance *const *)a;
    const struct kf_obs_instance *y = *(const struct kf_obs_instance *const *)b;

    return strcmp(x->name, y->name);
}

static void gen_targets(const struct kf_obs_fleet *f, const struct kf_obs_instance *c,
                        struct kf_obs_files *out)
{
    const struct kf_obs_region **regions =
        kf_xcalloc(f->n_regions ? f->n_regions : 1, sizeof(*regions));
    const struct kf_obs_alertmanager **ams =
        kf_xcalloc(f->n_alertmanagers ? f->n_alertmanagers : 1, sizeof(*ams));
    struct obs_targets t;

    for (size_t i = 0; i < f->n_regions; i++)
        regions[i] = &f->regions[i];
    qsort(regions, f->n_regions, sizeof(*regions), cmp_region);
    kf_obs_targets_begin(&t);
    for (size_t i = 0; i < f->n_regions; i++) {
        const struct kf_obs_instance *cs[2];
        size_t nc = KF_MIN(regions[i]->n_cascades, KF_ARRAY_SIZE(cs));

        for (size_t j = 0; j < nc; j++)
            cs[j] = &regions[i]->cascades[j];
        qsort(cs, nc, sizeof(*cs), cmp_inst);
        for (size_t j = 0; j < nc; j++) {
            const char *l[] = { "region", regions[i]->name };

            kf_obs_targets_add(&t, cs[j]->listen, l, 1);
        }
    }
    kf_obs_targets_finish(&t, c->name, "cascades.json", out);

    for (size_t i = 0; i < f->n_alertmanagers; i++)
        ams[i] = &f->alertmanagers[i];
    qsort(ams, f->n_alertmanagers, sizeof(*ams), cmp_am);
    kf_obs_targets_begin(&t);
    for (size_t i = 0; i < f->n_alertmanagers; i++) {
        const char *l[] = { "alertmanager", ams[i]->name };

        kf_obs_targets_add(&t, ams[i]->listen, l, 1);
    }
    kf_obs_targets_finish(&t, c->name, "alertmanagers.json", out);
    free(ams);
    free(regions);
}

int kf_obs_gen_central_unchecked(const struct kf_obs_fleet *f,
                                 const struct kf_obs_instance *central, struct kf_obs_files *out)
{
    struct kf_obs_settings s;

    kf_obs_settings_effective(f, NULL, &s);
    gen_config(central, &s, out);
    gen_rules(f, central, &s, out);
    gen_targets(f, central, out);
    return 0;
}

int kf_obs_gen_central(const struct kf_obs_fleet *f, const struct kf_obs_instance *central,
                       struct kf_obs_files *out, struct kf_strbuf *err)
{
    int r = kf_obs_fleet_check(f, err);

    if (r < 0)
        return r;
    return kf_obs_gen_central_unchecked(f, central, out);
}
