/* obs-alertmanager.c: renders the configuration of one Alertmanager peer.
 *
 * Both peers get the same alertmanager.yml (they form one gossip cluster,
 * see kf_obs_argv_alertmanager); each has its own folder so a peer's files
 * and data never depend on the other's. The route tree comes from the model
 * in the given order. Webhook, DingTalk and SMS receivers become webhooks to
 * kfleetd's receiver adapter, which holds their secrets; email uses
 * Alertmanager's own SMTP settings, with the password in a 0600 file
 * referenced by smtp_auth_password_file (0.25 supports it), never inline.
 * kfleet adds a few inhibit rules of its own so that one incident makes one
 * notification (a missing region hides its missing units, ...).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

static void indent(struct kf_strbuf *sb, int n)
{
    for (int i = 0; i < n; i++)
        kf_strbuf_addch(sb, ' ');
}

static void matcher_list(struct kf_strbuf *sb, int ind, const char *key,
                         const struct kf_obs_matcher *m, size_t n)
{
    indent(sb, ind);
    kf_strbuf_addf(sb, "%s:\n", key);
    for (size_t i = 0; i < n; i++) {
        struct kf_strbuf one = KF_STRBUF_INIT;

        kf_obs_matcher_write(&one, &m[i]);
        indent(sb, ind + 2);
        kf_strbuf_addstr(sb, "- ");
        kf_obs_yaml_str(sb, one.buf);
        kf_strbuf_addch(sb, '\n');
        kf_strbuf_release(&one);
    }
}

static void label_list(struct kf_strbuf *sb, const char *const *l, size_t n)
{
    kf_strbuf_addch(sb, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            kf_strbuf_addstr(sb, ", ");
        kf_obs_yaml_str(sb, l[i]);
    }
    kf_strbuf_addstr(sb, "]\n");
}

static void duration_field(struct kf_strbuf *sb, int ind, const char *key, int64_t ms)
{
    if (!ms)
        return;
    indent(sb, ind);
    kf_strbuf_addf(sb, "%s: ", key);
    kf_obs_duration(sb, ms);
    kf_strbuf_addch(sb, '\n');
}

/* The fields of one route node at indentation ind (the first line of a
 * list item is written by the caller). */
static void route_body(struct kf_strbuf *sb, const struct kf_obs_route *rt, int ind)
{
    if (rt->receiver) {
        indent(sb, ind);
        kf_strbuf_addstr(sb, "receiver: ");
        kf_obs_yaml_str(sb, rt->receiver);
        kf_strbuf_addch(sb, '\n');
    }
    if (rt->n_matchers)
        matcher_list(sb, ind, "matchers", rt->matchers, rt->n_matchers);
    if (rt->n_group_by) {
        indent(sb, ind);
        kf_strbuf_addstr(sb, "group_by: ");
        label_list(sb, rt->group_by, rt->n_group_by);
    }
    duration_field(sb, ind, "group_wait", rt->group_wait_ms);
    duration_field(sb, ind, "group_interval", rt->group_interval_ms);
    duration_field(sb, ind, "repeat_interval", rt->repeat_interval_ms);
    if (rt->continue_matching) {
        indent(sb, ind);
        kf_strbuf_addstr(sb, "continue: true\n");
    }
    if (rt->n_routes) {
        indent(sb, ind);
        kf_strbuf_addstr(sb, "routes:\n");
        for (size_t i = 0; i < rt->n_routes; i++) {
            /* "- " then the child's fields two columns further in */
            struct kf_strbuf child = KF_STRBUF_INIT;

            route_body(&child, &rt->routes[i], ind + 4);
            indent(sb, ind + 2);
            kf_strbuf_addstr(sb, "- ");
            if (child.len > (size_t)(ind + 4))
                kf_strbuf_addstr(sb, child.buf + ind + 4);
            else
                kf_strbuf_addstr(sb, "{}\n");
            kf_strbuf_release(&child);
        }
    }
}

static void inhibit(struct kf_strbuf *sb, const struct kf_obs_inhibit *in)
{
    struct kf_strbuf body = KF_STRBUF_INIT;

    matcher_list(&body, 4, "source_matchers", in->source, in->n_source);
    matcher_list(&body, 4, "target_matchers", in->target, in->n_target);
    if (in->n_equal) {
        kf_strbuf_addstr(&body, "    equal: ");
        label_list(&body, in->equal, in->n_equal);
    }
    kf_strbuf_addstr(sb, "  - ");
    kf_strbuf_addstr(sb, body.buf + 4);
    kf_strbuf_release(&body);
}

static const struct kf_obs_matcher m_region_absent[] = {
    { "alertname", KF_OBS_MATCH_EQ, "KfleetRegionAbsent" },
};
static const struct kf_obs_matcher m_region_absent_targets[] = {
    { "alertname", KF_OBS_MATCH_RE, "KfleetUnitAbsent|KfleetFederationDown|KfleetFederationEmpty" },
};
static const char *const eq_region[] = { "region" };
static const struct kf_obs_matcher m_no_quorum[] = {
    { "alertname", KF_OBS_MATCH_EQ, "KfleetGuestEtcdNoQuorum" },
};
static const struct kf_obs_matcher m_no_quorum_targets[] = {
    { "alertname", KF_OBS_MATCH_RE,
      "KfleetGuestEtcdNoLeader|KfleetGuestApiserver.*|KfleetGuestControlPlaneComponentDown" },
};
static const char *const eq_cluster[] = { "region", "unit", "cluster" };
static const struct kf_obs_matcher m_apiserver_down[] = {
    { "alertname", KF_OBS_MATCH_EQ, "KfleetGuestApiserverDown" },
};
static const struct kf_obs_matcher m_apiserver_down_targets[] = {
    { "alertname", KF_OBS_MATCH_RE,
      "KfleetGuestApiserverMemberDown|KfleetGuestApiserverSlow|KfleetGuestApiserverErrors|"
      "KfleetGuestControlPlaneComponentDown" },
};
static const struct kf_obs_matcher m_hosts_down[] = {
    { "alertname", KF_OBS_MATCH_EQ, "KfleetUnitHostsDown" },
};
static const struct kf_obs_matcher m_hosts_down_targets[] = {
    { "alertname", KF_OBS_MATCH_EQ, "KfleetHostDown" },
};
static const char *const eq_unit[] = { "region", "unit" };

static const struct kf_obs_inhibit default_inhibits[] = {
    { m_region_absent, 1, m_region_absent_targets, 1, eq_region, 1 },
    { m_no_quorum, 1, m_no_quorum_targets, 1, eq_cluster, 3 },
    { m_apiserver_down, 1, m_apiserver_down_targets, 1, eq_cluster, 3 },
    { m_hosts_down, 1, m_hosts_down_targets, 1, eq_unit, 2 },
};

static int cmp_receiver(const void *a, const void *b)
{
    const struct kf_obs_receiver *x = *(const struct kf_obs_receiver *const *)a;
    const struct kf_obs_receiver *y = *(const struct kf_obs_receiver *const *)b;

    return strcmp(x->name, y->name);
}

/* Appends name percent-encoded as one URL path segment. */
static void path_segment(struct kf_strbuf *sb, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~')
            kf_strbuf_addch(sb, (char)*p);
        else
            kf_strbuf_addf(sb, "%%%02X", *p);
    }
}

static void receiver(struct kf_strbuf *sb, const struct kf_obs_alerting *a,
                     const struct kf_obs_receiver *rc)
{
    kf_strbuf_addstr(sb, "  - name: ");
    kf_obs_yaml_str(sb, rc->name);
    kf_strbuf_addch(sb, '\n');
    if (rc->kind == KF_OBS_RECEIVER_EMAIL) {
        struct kf_strbuf to = KF_STRBUF_INIT;

        for (size_t i = 0; i < rc->n_email_to; i++) {
            if (i)
                kf_strbuf_addstr(&to, ", ");
            kf_strbuf_addstr(&to, rc->email_to[i]);
        }
        kf_strbuf_addstr(sb, "    email_configs:\n      - to: ");
        kf_obs_yaml_str(sb, to.buf);
        kf_strbuf_addf(sb, "\n        send_resolved: %s\n", rc->send_resolved ? "true" : "false");
        kf_strbuf_release(&to);
        return;
    }
    {
        struct kf_strbuf url = KF_STRBUF_INIT;
        size_t base = strlen(a->adapter_url);

        kf_strbuf_addstr(&url, a->adapter_url);
        if (base && a->adapter_url[base - 1] != '/')
            kf_strbuf_addch(&url, '/');
        path_segment(&url, rc->name);
        kf_strbuf_addstr(sb, "    webhook_configs:\n      - url: ");
        kf_obs_yaml_str(sb, url.buf);
        kf_strbuf_release(&url);
    }
    kf_strbuf_addf(sb, "\n        send_resolved: %s\n        max_alerts: %d\n",
                   rc->send_resolved ? "true" : "false", rc->max_alerts);
    if (a->adapter_token_file) {
        kf_strbuf_addstr(sb, "        http_config:\n"
                             "          authorization:\n"
                             "            type: Bearer\n"
                             "            credentials_file: ");
        kf_obs_yaml_str(sb, a->adapter_token_file);
        kf_strbuf_addch(sb, '\n');
    }
}

static bool needs_smtp(const struct kf_obs_alerting *a)
{
    for (size_t i = 0; i < a->n_receivers; i++)
        if (a->receivers[i].kind == KF_OBS_RECEIVER_EMAIL)
            return true;
    return false;
}

int kf_obs_gen_alertmanager_unchecked(const struct kf_obs_fleet *f,
                                      const struct kf_obs_alertmanager *am, const char *root,
                                      struct kf_obs_files *out, struct kf_strbuf *err)
{
    static const char *const default_group_by[] = { "alertname", "region", "unit" };
    const struct kf_obs_alerting *a = &f->alerting;
    struct kf_strbuf sb = KF_STRBUF_INIT;
    struct kf_obs_route top = a->root;
    const struct kf_obs_receiver **recv;
    char *path;

    if (a->smtp.auth_password && needs_smtp(a) && (!root || root[0] != '/'))
        return kf_err(err, -EINVAL,
                      "the monitoring root must be an absolute path for Alertmanager's secret "
                      "files");

    kf_strbuf_addstr(&sb, OBS_HEADER);
    kf_strbuf_addf(&sb, "# Alertmanager peer \"%s\"; every peer has the same configuration.\n",
                   am->name);
    kf_strbuf_addstr(&sb, "global:\n  resolve_timeout: ");
    kf_obs_duration(&sb, a->resolve_timeout_ms ? a->resolve_timeout_ms : 300000);
    kf_strbuf_addch(&sb, '\n');
    if (needs_smtp(a)) {
        const struct kf_obs_smtp *s = &a->smtp;

        kf_strbuf_addstr(&sb, "  smtp_smarthost: ");
        kf_obs_yaml_str(&sb, s->smarthost);
        kf_strbuf_addstr(&sb, "\n  smtp_from: ");
        kf_obs_yaml_str(&sb, s->from);
        kf_strbuf_addch(&sb, '\n');
        if (s->hello) {
            kf_strbuf_addstr(&sb, "  smtp_hello: ");
            kf_obs_yaml_str(&sb, s->hello);
            kf_strbuf_addch(&sb, '\n');
        }
        if (s->auth_username) {
            kf_strbuf_addstr(&sb, "  smtp_auth_username: ");
            kf_obs_yaml_str(&sb, s->auth_username);
            kf_strbuf_addch(&sb, '\n');
        }
        if (s->auth_password || s->auth_password_file) {
            char *file = s->auth_password_file
                             ? kf_xstrdup(s->auth_password_file)
                             : kf_xasprintf("%s/%s/secrets/smtp_password", root, am->name);

            kf_strbuf_addstr(&sb, "  smtp_auth_password_file: ");
            kf_obs_yaml_str(&sb, file);
            kf_strbuf_addch(&sb, '\n');
            free(file);
        }
        kf_strbuf_addf(&sb, "  smtp_require_tls: %s\n", s->require_tls ? "true" : "false");
    }

    /* the root route: Alertmanager's defaults made explicit */
    if (!top.n_group_by) {
        top.group_by = default_group_by;
        top.n_group_by = KF_ARRAY_SIZE(default_group_by);
    }
    if (!top.group_wait_ms)
        top.group_wait_ms = 30000;
    if (!top.group_interval_ms)
        top.group_interval_ms = 300000;
    if (!top.repeat_interval_ms)
        top.repeat_interval_ms = 4 * 3600000;
    top.continue_matching = false;
    top.n_matchers = 0;
    kf_strbuf_addstr(&sb, "route:\n");
    route_body(&sb, &top, 2);

    if (!a->no_default_inhibits || a->n_inhibits)
        kf_strbuf_addstr(&sb, "inhibit_rules:\n");
    if (!a->no_default_inhibits)
        for (size_t i = 0; i < KF_ARRAY_SIZE(default_inhibits); i++)
            inhibit(&sb, &default_inhibits[i]);
    for (size_t i = 0; i < a->n_inhibits; i++)
        inhibit(&sb, &a->inhibits[i]);

    recv = kf_xcalloc(a->n_receivers ? a->n_receivers : 1, sizeof(*recv));
    for (size_t i = 0; i < a->n_receivers; i++)
        recv[i] = &a->receivers[i];
    qsort(recv, a->n_receivers, sizeof(*recv), cmp_receiver);
    kf_strbuf_addstr(&sb, "receivers:\n");
    for (size_t i = 0; i < a->n_receivers; i++)
        receiver(&sb, a, recv[i]);
    free(recv);

    path = kf_xasprintf("%s/alertmanager.yml", am->name);
    kf_obs_add_file(out, path, &sb);
    free(path);

    if (a->smtp.auth_password && needs_smtp(a)) {
        path = kf_xasprintf("%s/secrets/smtp_password", am->name);
        kf_obs_files_add(out, path, kf_xstrdup(a->smtp.auth_password),
                         strlen(a->smtp.auth_password), 0600, false, true);
        free(path);
    }
    return 0;
}

int kf_obs_gen_alertmanager(const struct kf_obs_fleet *f, const struct kf_obs_alertmanager *am,
                            const char *root, struct kf_obs_files *out, struct kf_strbuf *err)
{
    int r = kf_obs_fleet_check(f, err);

    if (r < 0)
        return r;
    return kf_obs_gen_alertmanager_unchecked(f, am, root, out, err);
}
