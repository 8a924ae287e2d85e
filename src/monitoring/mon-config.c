/* mon-config.c: kfleetd's monitoring settings (--monitoring,
 * --monitoring-config FILE): defaults, the JSON file, and release. Unknown
 * members are refused with their path, so a misspelt timing never passes
 * silently. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/monitoring.h"
#include "kfleet/strbuf.h"

int kf_mon_mode_parse(const char *s, enum kf_mon_mode *ret)
{
    static const char *const names[] = { "off", "external", "local" };

    for (size_t i = 0; i < KF_ARRAY_SIZE(names); i++)
        if (kf_streq(s, names[i])) {
            *ret = (enum kf_mon_mode)i;
            return 0;
        }
    return -EINVAL;
}

const char *kf_mon_mode_name(enum kf_mon_mode m)
{
    return m == KF_MON_LOCAL ? "local" : m == KF_MON_EXTERNAL ? "external" : "off";
}

void kf_mon_config_init(struct kf_mon_config *c)
{
    memset(c, 0, sizeof(*c));
    c->port_base = 19090;
    c->node_exporter_port = 9100;
    c->local_exporters = 32;
    c->delivery_timeout_ms = 10000;
}

static void free_strs(const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)v[i]);
    free((void *)v);
}

static void free_endpoints(struct kf_mon_endpoint *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].listen);
        free(e[i].cluster);
    }
    free(e);
}

void kf_mon_config_release(struct kf_mon_config *c)
{
    if (!c)
        return;
    free(c->host);
    free(c->kfleetd);
    free(c->adapter);
    free((char *)c->settings.drop_labels);
    free((char *)c->smtp.smarthost);
    free((char *)c->smtp.from);
    free((char *)c->smtp.hello);
    free((char *)c->smtp.auth_username);
    free((char *)c->smtp.auth_password_file);
    for (size_t i = 0; i < c->n_overrides; i++) {
        free((char *)c->overrides[i].alert);
        free((char *)c->overrides[i].severity);
    }
    free(c->overrides);
    free_strs(c->root.group_by, c->root.n_group_by);
    free(c->kfleetd_token_file);
    free_endpoints(c->centrals, c->n_centrals);
    free_endpoints(c->alertmanagers, c->n_alertmanagers);
    free((char *)c->bin.prometheus);
    free((char *)c->bin.alertmanager);
    free((char *)c->bin.node_exporter);
    free((char *)c->bin.promtool);
    free((char *)c->bin.amtool);
    free_strs((const char *const *)c->secret_dirs, c->n_secret_dirs);
    free(c->alert_destinations);
    kf_mon_config_init(c);
}

/* --- reading ------------------------------------------------------------- */

struct reader {
    const char *path;
    struct kf_strbuf *err;
    int r;
};

static void fail(struct reader *rd, const char *member, const char *what)
{
    if (rd->r == 0)
        rd->r = kf_err(rd->err, -EINVAL, "%s: \"%s\": %s", rd->path, member, what);
}

static void get_str(struct reader *rd, json_t *v, const char *member, char **dst)
{
    if (!json_is_string(v) || !json_string_length(v)) {
        fail(rd, member, "must be a non-empty string");
        return;
    }
    free(*dst);
    *dst = kf_xstrdup(json_string_value(v));
}

static void get_cstr(struct reader *rd, json_t *v, const char *member, const char **dst)
{
    char *s = NULL;

    get_str(rd, v, member, &s);
    if (s) {
        free((char *)*dst);
        *dst = s;
    }
}

static void get_ms(struct reader *rd, json_t *v, const char *member, int64_t *dst)
{
    int64_t ms;

    if (!json_is_string(v) || kf_parse_duration_ms(json_string_value(v), &ms) < 0 || ms < 0) {
        fail(rd, member, "must be a duration such as \"15s\" or \"5m\"");
        return;
    }
    *dst = ms;
}

static void get_int(struct reader *rd, json_t *v, const char *member, int min, int max, int *dst)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        char msg[96];

        snprintf(msg, sizeof(msg), "must be a whole number from %d to %d", min, max);
        fail(rd, member, msg);
        return;
    }
    *dst = (int)json_integer_value(v);
}

static void get_bool(struct reader *rd, json_t *v, const char *member, bool *dst)
{
    if (!json_is_boolean(v)) {
        fail(rd, member, "must be true or false");
        return;
    }
    *dst = json_is_true(v);
}

static void get_endpoints(struct reader *rd, json_t *v, const char *member, bool cluster,
                          struct kf_mon_endpoint **dst, size_t *n)
{
    size_t i;
    json_t *e;

    if (!json_is_array(v) || json_array_size(v) > 8) {
        fail(rd, member, "must be a list of at most 8 {name, listen} objects");
        return;
    }
    free_endpoints(*dst, *n);
    *dst = kf_xcalloc(json_array_size(v) + 1, sizeof(**dst));
    *n = json_array_size(v);
    json_array_foreach(v, i, e)
    {
        const char *key;
        json_t *val;

        json_object_foreach(e, key, val)
        {
            if (strcmp(key, "name") == 0)
                get_str(rd, val, "name", &(*dst)[i].name);
            else if (strcmp(key, "listen") == 0)
                get_str(rd, val, "listen", &(*dst)[i].listen);
            else if (cluster && strcmp(key, "cluster") == 0)
                get_str(rd, val, "cluster", &(*dst)[i].cluster);
            else
                fail(rd, member, "unknown member in an entry");
        }
        if (!(*dst)[i].name || !(*dst)[i].listen || (cluster && !(*dst)[i].cluster))
            fail(rd, member,
                 cluster ? "every entry needs name, listen and cluster"
                         : "every entry needs name and listen");
    }
}

static void get_route(struct reader *rd, json_t *v, struct kf_obs_route *rt)
{
    const char *key;
    json_t *val;

    if (!json_is_object(v)) {
        fail(rd, "route", "must be an object");
        return;
    }
    json_object_foreach(v, key, val)
    {
        if (strcmp(key, "groupWait") == 0) {
            get_ms(rd, val, "route.groupWait", &rt->group_wait_ms);
        } else if (strcmp(key, "groupInterval") == 0) {
            get_ms(rd, val, "route.groupInterval", &rt->group_interval_ms);
        } else if (strcmp(key, "repeatInterval") == 0) {
            get_ms(rd, val, "route.repeatInterval", &rt->repeat_interval_ms);
        } else if (strcmp(key, "groupBy") == 0 && json_is_array(val) &&
                   json_array_size(val) <= 32) {
            const char **gb = kf_xcalloc(json_array_size(val) + 1, sizeof(*gb));
            size_t i;
            json_t *s;

            json_array_foreach(val, i, s)
            {
                if (!json_is_string(s))
                    fail(rd, "route.groupBy", "must be a list of label names");
                gb[i] = kf_xstrdup(json_is_string(s) ? json_string_value(s) : "");
            }
            free_strs(rt->group_by, rt->n_group_by);
            rt->group_by = gb;
            rt->n_group_by = json_array_size(val);
        } else {
            fail(rd, "route", "unknown member (groupBy, groupWait, groupInterval, repeatInterval)");
        }
    }
}

static void get_smtp(struct reader *rd, json_t *v, struct kf_obs_smtp *s)
{
    const char *key;
    json_t *val;

    if (!json_is_object(v)) {
        fail(rd, "smtp", "must be an object");
        return;
    }
    json_object_foreach(v, key, val)
    {
        if (strcmp(key, "smarthost") == 0)
            get_cstr(rd, val, "smtp.smarthost", &s->smarthost);
        else if (strcmp(key, "from") == 0)
            get_cstr(rd, val, "smtp.from", &s->from);
        else if (strcmp(key, "hello") == 0)
            get_cstr(rd, val, "smtp.hello", &s->hello);
        else if (strcmp(key, "authUsername") == 0)
            get_cstr(rd, val, "smtp.authUsername", &s->auth_username);
        else if (strcmp(key, "authPasswordFile") == 0)
            get_cstr(rd, val, "smtp.authPasswordFile", &s->auth_password_file);
        else if (strcmp(key, "requireTLS") == 0)
            get_bool(rd, val, "smtp.requireTLS", &s->require_tls);
        else
            fail(rd, "smtp",
                 "unknown member (smarthost, from, hello, authUsername, authPasswordFile, "
                 "requireTLS; the password itself never goes in this file)");
    }
}

static void get_alerts(struct reader *rd, json_t *v, struct kf_mon_config *c)
{
    const char *name;
    json_t *o;

    if (!json_is_object(v) || json_object_size(v) > 64) {
        fail(rd, "alerts", "must be an object of at most 64 alerts");
        return;
    }
    json_object_foreach(v, name, o)
    {
        struct kf_obs_alert_override ov = { .for_ms = -1, .threshold = NAN };
        const char *key;
        json_t *val;

        if (!json_is_object(o)) {
            fail(rd, "alerts", "each alert's overrides must be an object");
            continue;
        }
        ov.alert = kf_xstrdup(name);
        json_object_foreach(o, key, val)
        {
            if (strcmp(key, "for") == 0)
                get_ms(rd, val, "alerts.for", &ov.for_ms);
            else if (strcmp(key, "threshold") == 0 && json_is_number(val))
                ov.threshold = json_number_value(val);
            else if (strcmp(key, "severity") == 0)
                get_cstr(rd, val, "alerts.severity", &ov.severity);
            else if (strcmp(key, "disabled") == 0)
                get_bool(rd, val, "alerts.disabled", &ov.disabled);
            else
                fail(rd, "alerts", "unknown member (for, threshold, severity, disabled)");
        }
        c->overrides = kf_xrealloc(c->overrides, (c->n_overrides + 1) * sizeof(*c->overrides));
        c->overrides[c->n_overrides++] = ov;
    }
}

static void get_binaries(struct reader *rd, json_t *v, struct kf_obs_binaries *b)
{
    const char *key;
    json_t *val;

    if (!json_is_object(v)) {
        fail(rd, "binaries", "must be an object");
        return;
    }
    json_object_foreach(v, key, val)
    {
        if (strcmp(key, "prometheus") == 0)
            get_cstr(rd, val, "binaries.prometheus", &b->prometheus);
        else if (strcmp(key, "alertmanager") == 0)
            get_cstr(rd, val, "binaries.alertmanager", &b->alertmanager);
        else if (strcmp(key, "nodeExporter") == 0)
            get_cstr(rd, val, "binaries.nodeExporter", &b->node_exporter);
        else if (strcmp(key, "promtool") == 0)
            get_cstr(rd, val, "binaries.promtool", &b->promtool);
        else if (strcmp(key, "amtool") == 0)
            get_cstr(rd, val, "binaries.amtool", &b->amtool);
        else
            fail(rd, "binaries", "unknown member");
    }
}

static void get_retry(struct reader *rd, json_t *v, struct kf_obs_retry_policy *p)
{
    const char *key;
    json_t *val;

    if (!json_is_object(v)) {
        fail(rd, "retry", "must be an object");
        return;
    }
    json_object_foreach(v, key, val)
    {
        if (strcmp(key, "maxAttempts") == 0) {
            int n = 0;

            get_int(rd, val, "retry.maxAttempts", 1, 100, &n);
            p->max_attempts = (unsigned)n;
        } else if (strcmp(key, "initial") == 0) {
            get_ms(rd, val, "retry.initial", &p->initial_ms);
        } else if (strcmp(key, "max") == 0) {
            get_ms(rd, val, "retry.max", &p->max_ms);
        } else {
            fail(rd, "retry", "unknown member (maxAttempts, initial, max)");
        }
    }
}

static void get_dirs(struct reader *rd, json_t *v, struct kf_mon_config *c)
{
    size_t i;
    json_t *d;

    if (!json_is_array(v) || json_array_size(v) > 16) {
        fail(rd, "secretDirs", "must be a list of at most 16 absolute folders");
        return;
    }
    free_strs((const char *const *)c->secret_dirs, c->n_secret_dirs);
    c->secret_dirs = kf_xcalloc(json_array_size(v) + 1, sizeof(char *));
    c->n_secret_dirs = 0;
    json_array_foreach(v, i, d)
    {
        const char *s = json_string_value(d);

        if (!s || s[0] != '/' || strstr(s, "/../") || kf_str_has_suffix(s, "/..")) {
            fail(rd, "secretDirs", "must be a list of absolute folders");
            continue;
        }
        c->secret_dirs[c->n_secret_dirs++] =
            kf_str_has_suffix(s, "/") ? kf_xstrdup(s) : kf_xasprintf("%s/", s);
    }
}

int kf_mon_config_load(const char *path, struct kf_mon_config *c, struct kf_strbuf *err)
{
    struct reader rd = { .path = path, .err = err };
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    const char *key;
    json_t *v;

    if (!doc)
        return kf_err(err, -EINVAL, "%s: %s (line %d)", path, jerr.text, jerr.line);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return kf_err(err, -EINVAL, "%s: must hold a JSON object", path);
    }
    json_object_foreach(doc, key, v)
    {
        struct kf_obs_settings *s = &c->settings;

        if (strcmp(key, "portBase") == 0)
            get_int(&rd, v, key, 1024, 65000, &c->port_base);
        else if (strcmp(key, "host") == 0)
            get_str(&rd, v, key, &c->host);
        else if (strcmp(key, "kfleetd") == 0)
            get_str(&rd, v, key, &c->kfleetd);
        else if (strcmp(key, "adapterURL") == 0)
            get_str(&rd, v, key, &c->adapter);
        else if (strcmp(key, "kfleetdTokenFile") == 0)
            get_str(&rd, v, key, &c->kfleetd_token_file);
        else if (strcmp(key, "scrapeInterval") == 0)
            get_ms(&rd, v, key, &s->scrape_interval_ms);
        else if (strcmp(key, "scrapeTimeout") == 0)
            get_ms(&rd, v, key, &s->scrape_timeout_ms);
        else if (strcmp(key, "evaluationInterval") == 0)
            get_ms(&rd, v, key, &s->evaluation_interval_ms);
        else if (strcmp(key, "federationInterval") == 0)
            get_ms(&rd, v, key, &s->federation_interval_ms);
        else if (strcmp(key, "federationTimeout") == 0)
            get_ms(&rd, v, key, &s->federation_timeout_ms);
        else if (strcmp(key, "retention") == 0)
            get_ms(&rd, v, key, &s->retention_ms);
        else if (strcmp(key, "rateWindow") == 0)
            get_ms(&rd, v, key, &s->rate_window_ms);
        else if (strcmp(key, "dropLabels") == 0)
            get_cstr(&rd, v, key, &s->drop_labels);
        else if (strcmp(key, "peerTimeout") == 0)
            get_ms(&rd, v, key, &c->peer_timeout_ms);
        else if (strcmp(key, "resolveTimeout") == 0)
            get_ms(&rd, v, key, &c->resolve_timeout_ms);
        else if (strcmp(key, "dedupWindow") == 0)
            get_ms(&rd, v, key, &c->dedup_window_ms);
        else if (strcmp(key, "deliveryTimeout") == 0)
            get_ms(&rd, v, key, &c->delivery_timeout_ms);
        else if (strcmp(key, "route") == 0)
            get_route(&rd, v, &c->root);
        else if (strcmp(key, "smtp") == 0)
            get_smtp(&rd, v, &c->smtp);
        else if (strcmp(key, "alerts") == 0)
            get_alerts(&rd, v, c);
        else if (strcmp(key, "retry") == 0)
            get_retry(&rd, v, &c->retry);
        else if (strcmp(key, "binaries") == 0)
            get_binaries(&rd, v, &c->bin);
        else if (strcmp(key, "localExporters") == 0)
            get_int(&rd, v, key, 0, 4096, &c->local_exporters);
        else if (strcmp(key, "nodeExporterPort") == 0)
            get_int(&rd, v, key, 1, 65535, &c->node_exporter_port);
        else if (strcmp(key, "agentPort") == 0)
            get_int(&rd, v, key, 0, 65535, &c->agent_port);
        else if (strcmp(key, "secretDirs") == 0)
            get_dirs(&rd, v, c);
        else if (strcmp(key, "centrals") == 0)
            get_endpoints(&rd, v, key, false, &c->centrals, &c->n_centrals);
        else if (strcmp(key, "alertmanagers") == 0)
            get_endpoints(&rd, v, key, true, &c->alertmanagers, &c->n_alertmanagers);
        else
            fail(&rd, key, "unknown member (see docs/internals/observability.md)");
    }
    json_decref(doc);
    return rd.r;
}
