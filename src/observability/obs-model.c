/* obs-model.c: checks the monitoring model before anything is rendered, and
 * finds instances by name.
 *
 * The renderers trust the model: every name that becomes a folder, a label
 * value, a PromQL literal or a YAML scalar passes through here first, and so
 * do the Alertmanager route tree and its timing (group_interval must stay
 * well above the gossip peer timeout, or a lagging peer re-sends a stale
 * firing after a resolve: reference/observability-lab.md §2.5). Messages
 * name the object and field so the controller can put them in a condition.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

#define OBS_MAX_NAME  253
#define OBS_MAX_VALUE 1024

/* Lower-case DNS subdomain: what kfleet object names are. */
static bool valid_name(const char *s)
{
    size_t n;

    if (!s || !*s)
        return false;
    n = strlen(s);
    if (n > OBS_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
    }
    return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

static bool valid_label_name(const char *s)
{
    if (!s || !*s)
        return false;
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* Printable UTF-8, no control characters, bounded. */
static bool valid_value(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;

    if (!s)
        return false;
    while (*p) {
        size_t len = 1;

        if (*p < 0x20 || *p == 0x7f)
            return false;
        if (*p >= 0x80) {
            if (*p >= 0xc2 && *p <= 0xdf)
                len = 2;
            else if (*p >= 0xe0 && *p <= 0xef)
                len = 3;
            else if (*p >= 0xf0 && *p <= 0xf4)
                len = 4;
            else
                return false;
            for (size_t i = 1; i < len; i++)
                if ((p[i] & 0xc0) != 0x80)
                    return false;
        }
        p += len;
        n += len;
    }
    return n <= OBS_MAX_VALUE;
}

/* "host:port" or "[v6]:port" with a port in 1..65535. */
static bool valid_address(const char *s)
{
    const char *colon;
    int port;

    if (!s || !*s || strlen(s) > OBS_MAX_NAME + 8)
        return false;
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p == '/' || *p == '"' || *p == '\'' || *p == '\\' || *p == 0x7f)
            return false;
    colon = strrchr(s, ':');
    if (!colon || colon == s)
        return false;
    if (s[0] == '[' && colon[-1] != ']')
        return false;
    if (kf_parse_int(colon + 1, &port) < 0 || port < 1 || port > 65535)
        return false;
    return true;
}

static bool valid_url(const char *s)
{
    if (!s || !valid_value(s))
        return false;
    if (!kf_str_has_prefix(s, "http://") && !kf_str_has_prefix(s, "https://"))
        return false;
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '\'' || *p == '"')
            return false;
    return true;
}

/* The first name that occurs twice in names[0..n), or NULL; O(n log n). */
static const char *find_duplicate(const char **names, size_t n)
{
    const char *dup = NULL;

    qsort(names, n, sizeof(*names), kf_strp_cmp);
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            dup = names[i];
    return dup;
}

static const struct kf_obs_receiver *find_receiver(const struct kf_obs_alerting *a,
                                                   const char *name)
{
    for (size_t i = 0; i < a->n_receivers; i++)
        if (kf_streq(a->receivers[i].name, name))
            return &a->receivers[i];
    return NULL;
}

static int check_matchers(const struct kf_obs_matcher *m, size_t n, const char *where,
                          struct kf_strbuf *err)
{
    if (n && !m)
        return kf_err(err, -EINVAL, "%s: matchers missing", where);
    for (size_t i = 0; i < n; i++) {
        if (!valid_label_name(m[i].name))
            return kf_err(err, -EINVAL, "%s: matcher %zu: \"%s\" is not a label name", where, i,
                          m[i].name ? m[i].name : "");
        if ((unsigned)m[i].op > KF_OBS_MATCH_NRE)
            return kf_err(err, -EINVAL, "%s: matcher %zu: unknown operator", where, i);
        if (!m[i].value || !valid_value(m[i].value))
            return kf_err(err, -EINVAL,
                          "%s: matcher %zu (%s): the value must be printable UTF-8 of at most "
                          "%d bytes",
                          where, i, m[i].name, OBS_MAX_VALUE);
    }
    return 0;
}

static int check_label_list(const char *const *l, size_t n, bool allow_dots, const char *where,
                            struct kf_strbuf *err)
{
    if (n && !l)
        return kf_err(err, -EINVAL, "%s: list missing", where);
    for (size_t i = 0; i < n; i++) {
        if (allow_dots && kf_streq(l[i], "...") && n == 1)
            continue;
        if (!valid_label_name(l[i]))
            return kf_err(err, -EINVAL, "%s: \"%s\" is not a label name", where, l[i] ? l[i] : "");
    }
    return 0;
}

static int check_route(const struct kf_obs_alerting *a, const struct kf_obs_route *rt,
                       const char *path, int64_t parent_interval, int depth, struct kf_strbuf *err)
{
    int64_t interval = rt->group_interval_ms ? rt->group_interval_ms : parent_interval;
    int64_t peer = a->peer_timeout_ms ? a->peer_timeout_ms : 15000;
    int r;

    if (depth > 16)
        return kf_err(err, -EINVAL, "%s: the route tree is deeper than 16 levels", path);
    if (rt->receiver && !find_receiver(a, rt->receiver))
        return kf_err(err, -EINVAL, "%s: receiver \"%s\" does not exist", path, rt->receiver);
    r = check_matchers(rt->matchers, rt->n_matchers, path, err);
    if (r < 0)
        return r;
    r = check_label_list(rt->group_by, rt->n_group_by, true, path, err);
    if (r < 0)
        return r;
    if (rt->group_wait_ms < 0 || rt->group_interval_ms < 0 || rt->repeat_interval_ms < 0)
        return kf_err(err, -EINVAL, "%s: durations must not be negative", path);
    if (interval <= 2 * peer)
        return kf_err(err, -EINVAL,
                      "%s: group_interval %" PRId64 "ms must be more than twice the gossip peer "
                      "timeout (%" PRId64 "ms), or a lagging Alertmanager peer re-sends a stale "
                      "firing after a resolve; raise group_interval or lower the peer timeout",
                      path, interval, peer);
    if (rt->n_routes && !rt->routes)
        return kf_err(err, -EINVAL, "%s: routes missing", path);
    for (size_t i = 0; i < rt->n_routes; i++) {
        char *child = kf_xasprintf("%s.routes[%zu]", path, i);

        r = check_route(a, &rt->routes[i], child, interval, depth + 1, err);
        free(child);
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_alerting(const struct kf_obs_fleet *f, struct kf_strbuf *err)
{
    const struct kf_obs_alerting *a = &f->alerting;
    bool need_adapter = false, need_smtp = false;
    int r;

    if (!f->n_alertmanagers)
        return 0;
    if (a->n_receivers && !a->receivers)
        return kf_err(err, -EINVAL, "alerting: receivers missing");
    for (size_t i = 0; i < a->n_receivers; i++) {
        const struct kf_obs_receiver *rc = &a->receivers[i];

        if (!valid_name(rc->name))
            return kf_err(err, -EINVAL, "receiver %zu: \"%s\" is not a valid name", i,
                          rc->name ? rc->name : "");
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->receivers[j].name, rc->name) == 0)
                return kf_err(err, -EINVAL, "receiver \"%s\" is defined twice", rc->name);
        if ((unsigned)rc->kind > KF_OBS_RECEIVER_EMAIL)
            return kf_err(err, -EINVAL, "receiver \"%s\": unknown kind", rc->name);
        if (rc->max_alerts < 0)
            return kf_err(err, -EINVAL, "receiver \"%s\": max_alerts must not be negative",
                          rc->name);
        if (rc->kind == KF_OBS_RECEIVER_EMAIL) {
            need_smtp = true;
            if (!rc->n_email_to || !rc->email_to)
                return kf_err(err, -EINVAL, "receiver \"%s\": an email receiver needs addresses",
                              rc->name);
            for (size_t j = 0; j < rc->n_email_to; j++)
                if (!valid_value(rc->email_to[j]) || !strchr(rc->email_to[j], '@') ||
                    strchr(rc->email_to[j], ','))
                    return kf_err(err, -EINVAL, "receiver \"%s\": \"%s\" is not an email address",
                                  rc->name, rc->email_to[j] ? rc->email_to[j] : "");
        } else {
            need_adapter = true;
        }
    }
    if (need_adapter && !valid_url(a->adapter_url))
        return kf_err(err, -EINVAL,
                      "alerting: webhook, DingTalk and SMS receivers need adapter_url, the "
                      "http(s) URL of kfleetd's alert receiver adapter");
    if (a->adapter_token_file &&
        (!valid_value(a->adapter_token_file) || a->adapter_token_file[0] != '/'))
        return kf_err(err, -EINVAL, "alerting: adapter_token_file must be an absolute path");
    if (need_smtp) {
        const struct kf_obs_smtp *s = &a->smtp;

        if (!valid_address(s->smarthost) || !s->from || !valid_value(s->from))
            return kf_err(err, -EINVAL,
                          "alerting: email receivers need smtp.smarthost (host:port) and "
                          "smtp.from");
        if ((s->hello && !valid_value(s->hello)) ||
            (s->auth_username && !valid_value(s->auth_username)))
            return kf_err(err, -EINVAL, "alerting: smtp settings must be printable");
        if (s->auth_password && s->auth_password_file)
            return kf_err(err, -EINVAL,
                          "alerting: give smtp auth_password or auth_password_file, not both");
        if (s->auth_password_file &&
            (!valid_value(s->auth_password_file) || s->auth_password_file[0] != '/'))
            return kf_err(err, -EINVAL,
                          "alerting: smtp auth_password_file must be an absolute path");
    }
    if (!a->root.receiver)
        return kf_err(err, -EINVAL, "alerting: the root route needs a receiver");
    if (a->peer_timeout_ms < 0 || a->settle_timeout_ms < 0 || a->resolve_timeout_ms < 0)
        return kf_err(err, -EINVAL, "alerting: durations must not be negative");
    r = check_route(a, &a->root, "route", a->root.group_interval_ms ? 0 : 300000, 0, err);
    if (r < 0)
        return r;
    if (a->n_inhibits && !a->inhibits)
        return kf_err(err, -EINVAL, "alerting: inhibit rules missing");
    for (size_t i = 0; i < a->n_inhibits; i++) {
        const struct kf_obs_inhibit *in = &a->inhibits[i];
        char *where = kf_xasprintf("inhibit_rules[%zu]", i);

        r = check_matchers(in->source, in->n_source, where, err);
        if (r == 0)
            r = check_matchers(in->target, in->n_target, where, err);
        if (r == 0)
            r = check_label_list(in->equal, in->n_equal, false, where, err);
        if (r == 0 && (!in->n_source || !in->n_target))
            r = kf_err(err, -EINVAL, "%s: needs source and target matchers", where);
        free(where);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Every instance name and address, for the uniqueness checks. */
struct seen {
    const char **names;
    const char **addrs;
    size_t n_names, n_addrs, alloc_names, alloc_addrs;
};

static int see_name(struct seen *s, const char *name, const char *what, struct kf_strbuf *err)
{
    if (!valid_name(name))
        return kf_err(err, -EINVAL, "%s: \"%s\" is not a valid instance name", what,
                      name ? name : "");
    for (size_t i = 0; i < s->n_names; i++)
        if (strcmp(s->names[i], name) == 0)
            return kf_err(err, -EINVAL, "%s: instance name \"%s\" is used twice", what, name);
    KF_GROW(s->names, s->alloc_names, s->n_names + 1);
    s->names[s->n_names++] = name;
    return 0;
}

static int see_addr(struct seen *s, const char *addr, const char *what, struct kf_strbuf *err)
{
    if (!valid_address(addr))
        return kf_err(err, -EINVAL, "%s: \"%s\" is not a host:port address", what,
                      addr ? addr : "");
    for (size_t i = 0; i < s->n_addrs; i++)
        if (strcmp(s->addrs[i], addr) == 0)
            return kf_err(err, -EINVAL, "%s: address \"%s\" is used twice", what, addr);
    KF_GROW(s->addrs, s->alloc_addrs, s->n_addrs + 1);
    s->addrs[s->n_addrs++] = addr;
    return 0;
}

static int see_instance(struct seen *s, const struct kf_obs_instance *in, const char *what,
                        struct kf_strbuf *err)
{
    int r = see_name(s, in->name, what, err);

    if (r == 0)
        r = see_addr(s, in->listen, what, err);
    if (r == 0 && in->external && !valid_url(in->external))
        r = kf_err(err, -EINVAL, "%s \"%s\": external URL \"%s\" is not an http(s) URL", what,
                   in->name, in->external);
    return r;
}

static int check_settings(const struct kf_obs_settings *s, const char *what, struct kf_strbuf *err)
{
    if (s->scrape_interval_ms < 0 || s->scrape_timeout_ms < 0 || s->evaluation_interval_ms < 0 ||
        s->federation_interval_ms < 0 || s->federation_timeout_ms < 0 || s->retention_ms < 0 ||
        s->rate_window_ms < 0)
        return kf_err(err, -EINVAL, "%s: durations must not be negative", what);
    if (s->drop_labels && !valid_value(s->drop_labels))
        return kf_err(err, -EINVAL, "%s: drop_labels must be a printable regex", what);
    return 0;
}

static int check_effective(const struct kf_obs_fleet *f, const struct kf_obs_region *r,
                           struct kf_strbuf *err)
{
    struct kf_obs_settings s;
    const char *what = r ? r->name : "fleet";

    kf_obs_settings_effective(f, r, &s);
    if (s.scrape_timeout_ms > s.scrape_interval_ms)
        return kf_err(err, -EINVAL, "%s: scrape timeout is longer than the scrape interval", what);
    if (s.federation_timeout_ms > s.federation_interval_ms)
        return kf_err(err, -EINVAL, "%s: federation timeout is longer than the federation interval",
                      what);
    if (s.rate_window_ms < 2 * s.scrape_interval_ms)
        return kf_err(err, -EINVAL, "%s: the rate window must cover at least two scrape intervals",
                      what);
    return 0;
}

static int check_unique_in_unit(const struct kf_obs_unit *u, struct kf_strbuf *err)
{
    size_t n = KF_MAX(u->n_hosts, u->n_members);
    const char **names = kf_xcalloc(n ? n : 1, sizeof(*names));
    const char *dup;
    int r = 0;

    for (size_t j = 0; j < u->n_hosts; j++)
        names[j] = u->hosts[j].name;
    dup = find_duplicate(names, u->n_hosts);
    if (dup)
        r = kf_err(err, -EINVAL, "unit \"%s\": host \"%s\" is listed twice", u->name, dup);
    for (size_t j = 0; r == 0 && j < u->n_members; j++)
        names[j] = u->members[j].name;
    dup = r == 0 ? find_duplicate(names, u->n_members) : NULL;
    if (dup)
        r = kf_err(err, -EINVAL, "unit \"%s\": member \"%s\" is listed twice", u->name, dup);
    free(names);
    return r;
}

static bool valid_pem(const char *s)
{
    return s && *s && strlen(s) <= KF_OBS_MAX_PEM && strstr(s, "-----BEGIN ");
}

/* The guest clusters' identities: valid names (they name a folder and a
 * job), each once, and three PEM texts of bounded size. */
static int check_clusters(const struct kf_obs_unit *u, struct kf_strbuf *err)
{
    const char **names = kf_xcalloc(u->n_clusters ? u->n_clusters : 1, sizeof(*names));
    const char *dup;
    int r = 0;

    for (size_t j = 0; r == 0 && j < u->n_clusters; j++) {
        const struct kf_obs_cluster *c = &u->clusters[j];

        if (!valid_name(c->name))
            r = kf_err(err, -EINVAL, "unit \"%s\": guest cluster %zu: \"%s\" is not a valid name",
                       u->name, j, c->name ? c->name : "");
        else if (!valid_pem(c->ca) || !valid_pem(c->cert) || !valid_pem(c->key))
            r = kf_err(err, -EINVAL,
                       "guest cluster \"%s\": the CA, certificate and key must be PEM text of at "
                       "most %d bytes",
                       c->name, KF_OBS_MAX_PEM);
        names[j] = c->name;
    }
    dup = r == 0 ? find_duplicate(names, u->n_clusters) : NULL;
    if (dup)
        r = kf_err(err, -EINVAL, "unit \"%s\": guest cluster \"%s\" is listed twice", u->name, dup);
    free(names);
    return r;
}

static int check_units(const struct kf_obs_fleet *f, struct seen *seen, struct kf_strbuf *err)
{
    int r;

    for (size_t i = 0; i < f->n_units; i++) {
        const struct kf_obs_unit *u = &f->units[i];

        if (!valid_name(u->name))
            return kf_err(err, -EINVAL, "unit %zu: \"%s\" is not a valid name", i,
                          u->name ? u->name : "");
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->units[j].name, u->name) == 0)
                return kf_err(err, -EINVAL, "unit \"%s\" is listed twice", u->name);
        if (!kf_obs_region_find(f, u->region))
            return kf_err(err, -EINVAL, "unit \"%s\": region \"%s\" is not in the model", u->name,
                          u->region ? u->region : "");
        if ((u->n_hosts && !u->hosts) || (u->n_members && !u->members) ||
            (u->n_edges && !u->edges) || (u->n_clusters && !u->clusters))
            return kf_err(err, -EINVAL, "unit \"%s\": a list is missing", u->name);
        if (u->n_edges > 2)
            return kf_err(err, -EINVAL, "unit \"%s\": at most 2 edge replicas", u->name);
        for (size_t j = 0; j < u->n_edges; j++) {
            r = see_instance(seen, &u->edges[j], "edge", err);
            if (r < 0)
                return r;
        }
        for (size_t j = 0; j < u->n_hosts; j++) {
            const struct kf_obs_host *h = &u->hosts[j];

            if (!valid_name(h->name) || !valid_name(h->zone))
                return kf_err(err, -EINVAL, "unit \"%s\": host %zu needs a valid name and zone",
                              u->name, j);
            if (h->node_exporter && !valid_address(h->node_exporter))
                return kf_err(err, -EINVAL, "host \"%s\": node_exporter \"%s\" is not host:port",
                              h->name, h->node_exporter);
            if (h->agent && !valid_address(h->agent))
                return kf_err(err, -EINVAL, "host \"%s\": agent \"%s\" is not host:port", h->name,
                              h->agent);
        }
        for (size_t j = 0; j < u->n_members; j++) {
            const struct kf_obs_member *m = &u->members[j];

            if (!valid_name(m->name) || !valid_name(m->cluster) || !valid_name(m->host) ||
                !valid_name(m->zone))
                return kf_err(err, -EINVAL,
                              "unit \"%s\": member %zu needs a valid name, cluster, host and zone",
                              u->name, j);
            if ((unsigned)m->kind > KF_OBS_MEMBER_SCHEDULER)
                return kf_err(err, -EINVAL, "member \"%s\": unknown kind", m->name);
            if (!valid_address(m->address))
                return kf_err(err, -EINVAL, "member \"%s\": \"%s\" is not host:port", m->name,
                              m->address ? m->address : "");
        }
        r = check_unique_in_unit(u, err);
        if (r == 0)
            r = check_clusters(u, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int kf_obs_fleet_check(const struct kf_obs_fleet *f, struct kf_strbuf *err)
{
    struct seen seen = { 0 };
    int r = 0;

    if ((f->n_regions && !f->regions) || (f->n_units && !f->units) ||
        (f->n_kfleetd && !f->kfleetd) || (f->n_centrals && !f->centrals) ||
        (f->n_alertmanagers && !f->alertmanagers) ||
        (f->n_alert_overrides && !f->alert_overrides)) {
        r = kf_err(err, -EINVAL, "a list in the monitoring model is missing");
        goto free_seen;
    }
    r = check_settings(&f->settings, "fleet", err);
    if (r == 0)
        r = check_effective(f, NULL, err);
    for (size_t i = 0; r == 0 && i < f->n_regions; i++) {
        const struct kf_obs_region *rg = &f->regions[i];

        if (!valid_name(rg->name)) {
            r = kf_err(err, -EINVAL, "region %zu: \"%s\" is not a valid name", i,
                       rg->name ? rg->name : "");
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->regions[j].name, rg->name) == 0)
                r = kf_err(err, -EINVAL, "region \"%s\" is listed twice", rg->name);
        if (r == 0 && rg->n_compliance && !rg->compliance)
            r = kf_err(err, -EINVAL, "region \"%s\": compliance list missing", rg->name);
        for (size_t j = 0; r == 0 && j < rg->n_compliance; j++)
            if (!valid_name(rg->compliance[j]))
                r = kf_err(err, -EINVAL, "region \"%s\": compliance tag \"%s\" is not valid",
                           rg->name, rg->compliance[j] ? rg->compliance[j] : "");
        if (r == 0)
            r = check_settings(&rg->settings, rg->name, err);
        if (r == 0)
            r = check_effective(f, rg, err);
        if (r == 0 && rg->n_cascades > 2)
            r = kf_err(err, -EINVAL, "region \"%s\": at most 2 cascading replicas", rg->name);
        if (r == 0 && rg->n_cascades && !rg->cascades)
            r = kf_err(err, -EINVAL, "region \"%s\": cascades missing", rg->name);
        for (size_t j = 0; r == 0 && j < rg->n_cascades; j++)
            r = see_instance(&seen, &rg->cascades[j], "cascade", err);
    }
    if (r == 0)
        r = check_units(f, &seen, err);
    for (size_t i = 0; r == 0 && i < f->n_kfleetd; i++)
        if (!valid_address(f->kfleetd[i]))
            r = kf_err(err, -EINVAL, "kfleetd %zu: \"%s\" is not host:port", i,
                       f->kfleetd[i] ? f->kfleetd[i] : "");
    for (size_t i = 0; r == 0 && i < f->n_centrals; i++)
        r = see_instance(&seen, &f->centrals[i], "central", err);
    for (size_t i = 0; r == 0 && i < f->n_alertmanagers; i++) {
        const struct kf_obs_alertmanager *am = &f->alertmanagers[i];
        struct kf_obs_instance as_inst = { am->name, am->listen, am->external };

        r = see_instance(&seen, &as_inst, "alertmanager", err);
        if (r == 0)
            r = see_addr(&seen, am->cluster_listen, "alertmanager cluster", err);
    }
    if (r == 0)
        r = check_alerting(f, err);
    for (size_t i = 0; r == 0 && i < f->n_alert_overrides; i++) {
        const struct kf_obs_alert_override *o = &f->alert_overrides[i];
        size_t n;
        const struct kf_obs_alert_rule *rules = kf_obs_default_alerts(&n);
        bool known = false;

        for (size_t j = 0; j < n; j++)
            known |= kf_streq(rules[j].alert, o->alert);
        if (!known)
            r = kf_err(err, -EINVAL, "alert override %zu: no default alert is called \"%s\"", i,
                       o->alert ? o->alert : "");
        else if (o->severity && !valid_name(o->severity))
            r = kf_err(err, -EINVAL, "alert override \"%s\": severity \"%s\" is not valid",
                       o->alert, o->severity);
        else if (!isnan(o->threshold) && !isfinite(o->threshold))
            r = kf_err(err, -EINVAL, "alert override \"%s\": the threshold must be finite",
                       o->alert);
    }
    if (r == 0 && f->guest_tls.ca_file && !valid_value(f->guest_tls.ca_file))
        r = kf_err(err, -EINVAL, "guest_tls: ca_file is not printable");
    if (r == 0 && f->guest_tls.cert_file && !valid_value(f->guest_tls.cert_file))
        r = kf_err(err, -EINVAL, "guest_tls: cert_file is not printable");
    if (r == 0 && f->guest_tls.key_file && !valid_value(f->guest_tls.key_file))
        r = kf_err(err, -EINVAL, "guest_tls: key_file is not printable");
    if (r == 0 && f->guest_tls.bearer_token_file && !valid_value(f->guest_tls.bearer_token_file))
        r = kf_err(err, -EINVAL, "guest_tls: bearer_token_file is not printable");
free_seen:
    free(seen.names);
    free(seen.addrs);
    return r;
}

int kf_obs_fleet_find_instance(const struct kf_obs_fleet *f, const char *name,
                               enum kf_obs_tier *ret_tier)
{
    for (size_t i = 0; i < f->n_units; i++)
        for (size_t j = 0; j < f->units[i].n_edges; j++)
            if (kf_streq(f->units[i].edges[j].name, name)) {
                *ret_tier = KF_OBS_TIER_EDGE;
                return 0;
            }
    for (size_t i = 0; i < f->n_regions; i++)
        for (size_t j = 0; j < f->regions[i].n_cascades; j++)
            if (kf_streq(f->regions[i].cascades[j].name, name)) {
                *ret_tier = KF_OBS_TIER_CASCADE;
                return 0;
            }
    for (size_t i = 0; i < f->n_centrals; i++)
        if (kf_streq(f->centrals[i].name, name)) {
            *ret_tier = KF_OBS_TIER_CENTRAL;
            return 0;
        }
    for (size_t i = 0; i < f->n_alertmanagers; i++)
        if (kf_streq(f->alertmanagers[i].name, name)) {
            *ret_tier = KF_OBS_TIER_ALERTMANAGER;
            return 0;
        }
    return -ENOENT;
}

int kf_obs_gen_all(const struct kf_obs_fleet *f, const char *root, struct kf_obs_files *out,
                   struct kf_strbuf *err)
{
    int r = kf_obs_fleet_check(f, err);

    for (size_t i = 0; r == 0 && i < f->n_units; i++)
        for (size_t j = 0; r == 0 && j < f->units[i].n_edges; j++)
            r = kf_obs_gen_edge_unchecked(f, &f->units[i], &f->units[i].edges[j], out);
    for (size_t i = 0; r == 0 && i < f->n_regions; i++)
        for (size_t j = 0; r == 0 && j < f->regions[i].n_cascades; j++)
            r = kf_obs_gen_cascade_unchecked(f, &f->regions[i], &f->regions[i].cascades[j], out);
    for (size_t i = 0; r == 0 && i < f->n_centrals; i++)
        r = kf_obs_gen_central_unchecked(f, &f->centrals[i], out);
    for (size_t i = 0; r == 0 && i < f->n_alertmanagers; i++)
        r = kf_obs_gen_alertmanager_unchecked(f, &f->alertmanagers[i], root, out, err);
    return r;
}
