/* obs-util.c: the small writers every renderer uses: YAML scalars, PromQL
 * and matcher string literals, regex quoting, Prometheus durations, the
 * effective settings of a tier, and the Prometheus config pieces (global
 * section, federation and self-scrape jobs, file_sd lists) that the edge,
 * cascading and central renderers share. Everything appends to a kf_strbuf
 * and never fails: the model was checked before (kf_obs_fleet_check). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

static bool yaml_plain_printable(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        size_t n;

        if (*p < 0x20 || *p == 0x7f)
            return false;
        n = utf8_len(p);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

void kf_obs_yaml_str(struct kf_strbuf *sb, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    if (yaml_plain_printable(s)) {
        kf_strbuf_addch(sb, '\'');
        for (; *p; p++) {
            if (*p == '\'')
                kf_strbuf_addch(sb, '\'');
            kf_strbuf_addch(sb, (char)*p);
        }
        kf_strbuf_addch(sb, '\'');
        return;
    }
    kf_strbuf_addch(sb, '"');
    while (*p) {
        size_t n = utf8_len(p);

        if (*p == '"' || *p == '\\') {
            kf_strbuf_addch(sb, '\\');
            kf_strbuf_addch(sb, (char)*p);
        } else if (*p == '\n') {
            kf_strbuf_addstr(sb, "\\n");
        } else if (*p == '\t') {
            kf_strbuf_addstr(sb, "\\t");
        } else if (*p < 0x20 || *p == 0x7f) {
            kf_strbuf_addf(sb, "\\u%04x", *p);
        } else if (!n) {
            kf_strbuf_addstr(sb, "\\ufffd");
        } else {
            kf_strbuf_add(sb, p, n);
            p += n;
            continue;
        }
        p++;
    }
    kf_strbuf_addch(sb, '"');
}

static void add_escaped_dq(struct kf_strbuf *sb, const char *s)
{
    kf_strbuf_addch(sb, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
        case '\\':
            kf_strbuf_addch(sb, '\\');
            kf_strbuf_addch(sb, (char)*p);
            break;
        case '\n':
            kf_strbuf_addstr(sb, "\\n");
            break;
        case '\t':
            kf_strbuf_addstr(sb, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                kf_strbuf_addf(sb, "\\x%02x", *p);
            else
                kf_strbuf_addch(sb, (char)*p);
        }
    }
    kf_strbuf_addch(sb, '"');
}

void kf_obs_promql_str(struct kf_strbuf *sb, const char *s)
{
    add_escaped_dq(sb, s);
}

void kf_obs_regex_quote(struct kf_strbuf *sb, const char *s)
{
    for (; *s; s++) {
        if (strchr("\\.+*?()|[]{}^$", *s))
            kf_strbuf_addch(sb, '\\');
        kf_strbuf_addch(sb, *s);
    }
}

void kf_obs_duration(struct kf_strbuf *sb, int64_t ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = { { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 } };

    if (ms <= 0) {
        kf_strbuf_addstr(sb, "0s");
        return;
    }
    for (size_t i = 0; i < KF_ARRAY_SIZE(units); i++) {
        if (ms >= units[i].ms) {
            kf_strbuf_addf(sb, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
            ms %= units[i].ms;
        }
    }
}

void kf_obs_matcher_write(struct kf_strbuf *sb, const struct kf_obs_matcher *m)
{
    static const char *const ops[] = {
        [KF_OBS_MATCH_EQ] = "=",
        [KF_OBS_MATCH_NE] = "!=",
        [KF_OBS_MATCH_RE] = "=~",
        [KF_OBS_MATCH_NRE] = "!~",
    };

    kf_strbuf_addstr(sb, m->name);
    kf_strbuf_addstr(sb, ops[m->op]);
    add_escaped_dq(sb, m->value);
}

void kf_obs_subst(struct kf_strbuf *sb, const char *tmpl, int64_t window_ms, double threshold)
{
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '$' && p[1] == 'W') {
            kf_obs_duration(sb, window_ms);
            p++;
        } else if (p[0] == '$' && p[1] == 'T') {
            kf_strbuf_addf(sb, "%.6g", threshold);
            p++;
        } else {
            kf_strbuf_addch(sb, *p);
        }
    }
}

void kf_obs_settings_effective(const struct kf_obs_fleet *f, const struct kf_obs_region *r,
                               struct kf_obs_settings *ret)
{
    const struct kf_obs_settings *fs = &f->settings;
    const struct kf_obs_settings *rs = r ? &r->settings : NULL;
    struct kf_obs_settings s;

#define PICK(field) (rs && rs->field ? rs->field : fs->field)
    s.scrape_interval_ms = PICK(scrape_interval_ms);
    s.scrape_timeout_ms = PICK(scrape_timeout_ms);
    s.evaluation_interval_ms = PICK(evaluation_interval_ms);
    s.federation_interval_ms = PICK(federation_interval_ms);
    s.federation_timeout_ms = PICK(federation_timeout_ms);
    s.retention_ms = PICK(retention_ms);
    s.rate_window_ms = PICK(rate_window_ms);
    s.drop_labels = PICK(drop_labels);
#undef PICK
    if (!s.scrape_interval_ms)
        s.scrape_interval_ms = 15000;
    if (!s.scrape_timeout_ms)
        s.scrape_timeout_ms = KF_MIN(10000, s.scrape_interval_ms);
    if (!s.evaluation_interval_ms)
        s.evaluation_interval_ms = s.scrape_interval_ms;
    if (!s.federation_interval_ms)
        s.federation_interval_ms = 30000;
    if (!s.federation_timeout_ms)
        s.federation_timeout_ms = KF_MIN(25000, s.federation_interval_ms);
    if (!s.retention_ms)
        s.retention_ms = 15 * 86400000LL;
    if (!s.rate_window_ms)
        s.rate_window_ms = KF_MAX(4 * s.scrape_interval_ms, 60000);
    if (!s.drop_labels)
        s.drop_labels = "instance";
    *ret = s;
}

const struct kf_obs_region *kf_obs_region_find(const struct kf_obs_fleet *f, const char *name)
{
    for (size_t i = 0; i < f->n_regions; i++)
        if (kf_streq(f->regions[i].name, name))
            return &f->regions[i];
    return NULL;
}

void kf_obs_binaries_defaults(const struct kf_obs_binaries *in, struct kf_obs_binaries *ret)
{
    ret->prometheus = in && in->prometheus ? in->prometheus : "/usr/bin/prometheus";
    ret->alertmanager =
        in && in->alertmanager ? in->alertmanager : "/usr/bin/prometheus-alertmanager";
    ret->node_exporter =
        in && in->node_exporter ? in->node_exporter : "/usr/bin/prometheus-node-exporter";
    ret->promtool = in && in->promtool ? in->promtool : "/usr/bin/promtool";
    ret->amtool = in && in->amtool ? in->amtool : "/usr/bin/amtool";
}

char *kf_obs_external_url(const char *listen, const char *external)
{
    if (external)
        return kf_xstrdup(external);
    return kf_xasprintf("http://%s/", listen);
}

void kf_obs_prom_global(struct kf_strbuf *sb, const struct kf_obs_settings *s,
                        const char *const *labels, size_t n_labels)
{
    kf_strbuf_addstr(sb, "global:\n  scrape_interval: ");
    kf_obs_duration(sb, s->scrape_interval_ms);
    kf_strbuf_addstr(sb, "\n  scrape_timeout: ");
    kf_obs_duration(sb, s->scrape_timeout_ms);
    kf_strbuf_addstr(sb, "\n  evaluation_interval: ");
    kf_obs_duration(sb, s->evaluation_interval_ms);
    kf_strbuf_addstr(sb, "\n  external_labels:\n");
    for (size_t i = 0; i + 1 < 2 * n_labels; i += 2) {
        if (!labels[i + 1])
            continue;
        kf_strbuf_addf(sb, "    %s: ", labels[i]);
        kf_obs_yaml_str(sb, labels[i + 1]);
        kf_strbuf_addch(sb, '\n');
    }
}

void kf_obs_prom_federation_job(struct kf_strbuf *sb, const char *job, const char *const *match,
                                size_t n_match, const struct kf_obs_settings *s, const char *file)
{
    kf_strbuf_addf(sb,
                   "  # Federation: only recorded aggregates go up. honor_labels keeps the\n"
                   "  # source's labels; honor_timestamps: false stamps samples with the scrape\n"
                   "  # time so a vanished source series goes stale here at once instead of\n"
                   "  # lingering for the 5-minute lookback.\n"
                   "  - job_name: %s\n"
                   "    honor_labels: true\n"
                   "    honor_timestamps: false\n"
                   "    metrics_path: /federate\n"
                   "    params:\n"
                   "      'match[]':\n",
                   job);
    for (size_t i = 0; i < n_match; i++) {
        kf_strbuf_addstr(sb, "        - ");
        kf_obs_yaml_str(sb, match[i]);
        kf_strbuf_addch(sb, '\n');
    }
    kf_strbuf_addstr(sb, "    scrape_interval: ");
    kf_obs_duration(sb, s->federation_interval_ms);
    kf_strbuf_addstr(sb, "\n    scrape_timeout: ");
    kf_obs_duration(sb, s->federation_timeout_ms);
    kf_strbuf_addf(sb, "\n    file_sd_configs:\n      - files:\n          - targets/%s\n", file);
    if (s->drop_labels && *s->drop_labels) {
        kf_strbuf_addstr(sb, "    metric_relabel_configs:\n"
                             "      - action: labeldrop\n"
                             "        regex: ");
        kf_obs_yaml_str(sb, s->drop_labels);
        kf_strbuf_addch(sb, '\n');
    }
}

void kf_obs_prom_self_job(struct kf_strbuf *sb, const struct kf_obs_instance *inst,
                          const char *const *labels, size_t n_labels)
{
    kf_strbuf_addf(sb, "  - job_name: %s\n    static_configs:\n      - targets:\n          - ",
                   OBS_JOB_PROMETHEUS);
    kf_obs_yaml_str(sb, inst->listen);
    kf_strbuf_addch(sb, '\n');
    if (n_labels) {
        kf_strbuf_addstr(sb, "        labels:\n");
        for (size_t i = 0; i + 1 < 2 * n_labels; i += 2) {
            if (!labels[i + 1])
                continue;
            kf_strbuf_addf(sb, "          %s: ", labels[i]);
            kf_obs_yaml_str(sb, labels[i + 1]);
            kf_strbuf_addch(sb, '\n');
        }
    }
}

void kf_obs_targets_begin(struct obs_targets *t)
{
    kf_strbuf_init(&t->sb, 256);
    t->n = 0;
    kf_strbuf_addstr(&t->sb, "[");
}

void kf_obs_targets_add(struct obs_targets *t, const char *address, const char *const *labels,
                        size_t n_pairs)
{
    bool first = true;

    kf_strbuf_addstr(&t->sb, t->n ? ",\n  " : "\n  ");
    kf_strbuf_addstr(&t->sb, "{\"labels\": {");
    for (size_t i = 0; i < n_pairs; i++) {
        if (!labels[2 * i + 1])
            continue;
        if (!first)
            kf_strbuf_addstr(&t->sb, ", ");
        first = false;
        kf_strbuf_add_json_str(&t->sb, labels[2 * i]);
        kf_strbuf_addstr(&t->sb, ": ");
        kf_strbuf_add_json_str(&t->sb, labels[2 * i + 1]);
    }
    kf_strbuf_addstr(&t->sb, "}, \"targets\": [");
    kf_strbuf_add_json_str(&t->sb, address);
    kf_strbuf_addstr(&t->sb, "]}");
    t->n++;
}

void kf_obs_targets_finish(struct obs_targets *t, const char *instance, const char *file,
                           struct kf_obs_files *out)
{
    char *path = kf_xasprintf("%s/targets/%s", instance, file);
    size_t len;
    char *content;

    kf_strbuf_addstr(&t->sb, t->n ? "\n]\n" : "]\n");
    content = kf_strbuf_detach(&t->sb, &len);
    kf_obs_files_add(out, path, content, len, 0644, true, false);
    free(path);
}

void kf_obs_add_file(struct kf_obs_files *out, const char *path, struct kf_strbuf *sb)
{
    size_t len;
    char *content = kf_strbuf_detach(sb, &len);

    kf_obs_files_add(out, path, content, len, 0644, false, false);
}
