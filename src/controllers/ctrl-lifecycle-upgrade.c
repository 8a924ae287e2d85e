/* ctrl-lifecycle-upgrade.c: one cluster's upgrade, in the safe order
 * (docs/internals/upgrades.md; the lifecycle controller calls it once per
 * reconcile, see ctrl-lifecycle.h).
 *
 * Level-triggered and pure: from the cluster (spec.version, status.version,
 * status.upgrade, its maintenance window), its members and their agents'
 * reports, it decides which version each member runs now and what
 * status.upgrade, status.version and the Upgraded condition say. Nothing
 * is kept in memory: kfleetd killed half-way reads status.upgrade again,
 * and a member that already runs its new version is only looked at, never
 * moved again (its spec is the same, so its agent does not restart it).
 *
 * The order: etcd members one by one (each Ready on the new version before
 * the next moves: the quorum is kept), then the kube-apiservers one by
 * one (the others serve through the endpoint meanwhile), then the
 * controller managers, the schedulers, then anything else. Before: the
 * maintenance window (unless spec.upgrade.force) and a precheck (every
 * member Ready, etcd healthy, the endpoint answering, every member's host
 * holding the version); after: a postcheck (every member Ready on the new
 * version, /readyz through the endpoint), and only then status.version.
 * A member that fails (its program exits again and again, is missing, or
 * is not Ready within step_timeout_ms) stops the upgrade there; setting
 * spec.version back to the version the cluster ran (kfleet rollback) moves
 * the members that moved back, in reverse order, without waiting for a
 * window. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/json.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "kfleet/versions.h"
#include "kfleet/window.h"
#include "controllers/ctrl-lifecycle.h"

#define PRECHECK_RETRY_MS 15000
#define WINDOW_RECHECK_MS (10 * 60 * 1000)

static int component_rank(const char *c)
{
    static const char *const order[] = { "etcd", "kube-apiserver", "kube-controller-manager",
                                         "kube-scheduler" };

    for (size_t i = 0; i < KF_ARRAY_SIZE(order); i++)
        if (!strcmp(order[i], c))
            return (int)i;
    return (int)KF_ARRAY_SIZE(order);
}

/* The members in upgrade order (indexes into v). */
static void upgrade_order(const struct lc_view *v, size_t *idx)
{
    for (size_t i = 0; i < v->n; i++)
        idx[i] = i;
    for (size_t i = 1; i < v->n; i++) /* insertion sort: a handful of members */
        for (size_t j = i; j > 0; j--) {
            const struct kf_catalog_member *a = &v->members[idx[j - 1]], *b = &v->members[idx[j]];
            int ra = component_rank(a->component), rb = component_rank(b->component);

            if (ra < rb || (ra == rb && a->index <= b->index))
                break;
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
}

static void now_text(int64_t now_ms, char buf[40])
{
    kf_time_format_rfc3339(now_ms, buf, 40);
}

static json_t *entry_of(json_t *up, const char *member)
{
    json_t *e;
    size_t i;

    json_array_foreach(json_object_get(up, "members"), i,
                       e) if (kf_streq(kf_json_str(e, "name", NULL), member)) return e;
    return NULL;
}

static void set_state(json_t *e, const char *state, int64_t now_ms)
{
    char t[40];

    now_text(now_ms, t);
    json_object_set_new(e, "state", json_string(state));
    json_object_set_new(e, "since", json_string(t));
}

/* Whether member i runs version want, Ready, from the spec kfleetd wrote. */
static bool runs(const json_t *m, const char *want)
{
    const char *reported = kf_json_str(m, "status.version", NULL);

    return kf_version_minor(kf_json_str(m, "spec.version", NULL)) == kf_version_minor(want) &&
           kf_json_bool(m, "status.ready", false) &&
           kf_json_int(m, "status.observedGeneration", 0) == kf_obj_generation(m) &&
           (!reported || kf_version_minor(reported) == kf_version_minor(want));
}

/* Why member m, moved to want at since_ms, has failed; NULL: not (yet). */
static const char *failing(const json_t *m, const char *want, int64_t since_ms, int64_t now_ms,
                           int64_t timeout_ms, struct kf_strbuf *why)
{
    const char *phase = kf_json_str(m, "status.phase", "");
    bool applied = kf_json_int(m, "status.observedGeneration", 0) == kf_obj_generation(m) &&
                   kf_version_minor(kf_json_str(m, "spec.version", NULL)) == kf_version_minor(want);
    const char *msg = kf_json_str(m, "status.message", "");

    if (applied &&
        (!strcmp(phase, "Failed") || !strcmp(phase, "BinaryNotInstalled") ||
         (kf_json_int(m, "status.restarts", 0) >= 2 && !kf_json_bool(m, "status.ready", false)))) {
        kf_strbuf_addf(why, "%s after %lld restarts%s%s", phase,
                       (long long)kf_json_int(m, "status.restarts", 0), *msg ? ": " : "", msg);
        return why->buf;
    }
    if (since_ms > 0 && now_ms - since_ms > timeout_ms) {
        kf_strbuf_addf(why, "not Ready on %s within %llds (phase %s%s%s)", want,
                       (long long)(timeout_ms / 1000), phase[0] ? phase : "unknown",
                       *msg ? ": " : "", msg);
        return why->buf;
    }
    return NULL;
}

static int64_t since_ms(const json_t *e)
{
    int64_t ms = 0;

    if (kf_time_parse_rfc3339(kf_json_str(e, "since", ""), &ms) < 0)
        return 0;
    return ms;
}

static json_t *new_upgrade(const struct lc_view *v, const size_t *order, const char *from,
                           const char *to, int64_t now_ms)
{
    json_t *members = json_array();
    char t[40];

    now_text(now_ms, t);
    for (size_t k = 0; k < v->n; k++) {
        const json_t *m = v->objs[order[k]];

        json_array_append_new(members, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "name",
                                                 v->members[order[k]].name, "component",
                                                 v->members[order[k]].component, "zone",
                                                 kf_json_str(m, "spec.zone", ""), "from", from,
                                                 "to", to, "state", "Pending", "since", t));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "from", from, "to", to, "step", "Precheck",
                     "message", "starting", "startedAt", t, "members", members);
}

/* Hosts that report the versions they hold and lack want. */
static void hosts_lacking(const struct lc_upgrade_in *in, const char *want, struct kf_strbuf *out)
{
    for (size_t i = 0; i < in->v->n; i++) {
        const json_t *held = kf_json_path(in->hosts[i], "status.kubernetesVersions"), *h;
        bool has = false;
        size_t j;

        if (!in->hosts || !in->hosts[i] || !json_is_array(held) ||
            component_rank(in->v->members[i].component) == 0)
            continue;
        json_array_foreach(held, j, h) has =
            has || kf_version_minor(json_string_value(h)) == kf_version_minor(want);
        if (!has && !strstr(out->buf, in->v->hosts[i] ? in->v->hosts[i] : "?"))
            kf_strbuf_addf(out, "%s%s", out->len ? ", " : "",
                           in->v->hosts[i] ? in->v->hosts[i] : "?");
    }
}

static void cond(struct lc_upgrade *ret, bool ok, const char *reason, const char *fmt, ...)
    KF_PRINTF(4, 5);
static void cond(struct lc_upgrade *ret, bool ok, const char *reason, const char *fmt, ...)
{
    va_list ap;

    ret->cond_ok = ok;
    ret->cond_reason = reason;
    kf_strbuf_reset(&ret->msg);
    va_start(ap, fmt);
    kf_strbuf_vaddf(&ret->msg, fmt, ap);
    va_end(ap);
}

static void event(struct lc_upgrade *ret, bool warning, const char *reason)
{
    ret->event_reason = reason;
    ret->event_warning = warning;
}

/* Moves back the members that moved, last first, one at a time. */
static void roll_back(const struct lc_upgrade_in *in, json_t *up, const size_t *order,
                      struct lc_upgrade *ret)
{
    const char *from = kf_json_str(up, "from", "");
    char t[40];

    for (size_t k = in->v->n; k-- > 0;) {
        const json_t *m = in->v->objs[order[k]];
        json_t *e = entry_of(up, in->v->members[order[k]].name);
        const char *st = kf_json_str(e, "state", "Pending");

        if (!e || !strcmp(st, "Pending") || !strcmp(st, "RolledBack"))
            continue;
        if (strcmp(st, "RollingBack") != 0) {
            set_state(e, "RollingBack", in->now_ms);
            event(ret, false, "RollingBack");
        } else if (runs(m, from)) {
            set_state(e, "RolledBack", in->now_ms);
            continue;
        }
        json_object_set_new(up, "step", json_string("RollingBack"));
        ret->active = true;
        cond(ret, false, "InProgress", "rolling back to %s: member %s (%s)", from,
             in->v->members[order[k]].name, in->v->members[order[k]].component);
        return;
    }
    now_text(in->now_ms, t);
    json_object_set_new(up, "step", json_string("RolledBack"));
    json_object_set_new(up, "finishedAt", json_string(t));
    cond(ret, false, "RolledBack", "rolled back to %s: every member that moved runs it again",
         from);
    event(ret, false, "RolledBack");
}

/* The postcheck once every member moved. */
static void postcheck(const struct lc_upgrade_in *in, json_t *up, struct lc_upgrade *ret)
{
    const char *to = kf_json_str(up, "to", "");
    char t[40];

    for (size_t i = 0; i < in->v->n; i++)
        if (!runs(in->v->objs[i], to)) {
            json_object_set_new(up, "step", json_string("Postcheck"));
            ret->active = true;
            cond(ret, false, "InProgress", "postcheck: waiting for member %s to be Ready on %s",
                 in->v->members[i].name, to);
            return;
        }
    if (in->has_endpoint && !in->endpoint_ok) {
        json_object_set_new(up, "step", json_string("Postcheck"));
        ret->active = true;
        cond(ret, false, "InProgress", "postcheck: waiting for /readyz through the endpoint");
        return;
    }
    now_text(in->now_ms, t);
    json_object_set_new(up, "step", json_string("Succeeded"));
    json_object_set_new(up, "finishedAt", json_string(t));
    ret->version = to;
    cond(ret, true, "Succeeded", "upgraded from %s to %s: every member is Ready on %s",
         kf_json_str(up, "from", ""), to, to);
    event(ret, false, "Upgraded");
}

/* Moves the members forward, one at a time, in order. */
static void roll_forward(const struct lc_upgrade_in *in, json_t *up, const size_t *order,
                         struct lc_upgrade *ret)
{
    const char *to = kf_json_str(up, "to", "");

    if (!strcmp(kf_json_str(up, "step", ""), "Failed")) {
        cond(ret, false, "Failed", "%s", kf_json_str(up, "message", "failed"));
        return;
    }
    for (size_t k = 0; k < in->v->n; k++) {
        const json_t *m = in->v->objs[order[k]];
        const struct kf_catalog_member *cm = &in->v->members[order[k]];
        json_t *e = entry_of(up, cm->name);
        const char *st = kf_json_str(e, "state", "Pending");
        struct kf_strbuf why = KF_STRBUF_INIT;

        if (!e || !strcmp(st, "Done"))
            continue;
        json_object_set_new(up, "step", json_string(cm->component));
        ret->active = true;
        if (!strcmp(st, "Pending")) {
            /* resumed after the spec was written: its process may already run */
            set_state(e, "Upgrading", in->now_ms);
            if (kf_streq(kf_json_str(m, "spec.version", NULL), to))
                json_object_del(e, "since");
            event(ret, false, "UpgradingMember");
            cond(ret, false, "InProgress", "moving %s member %s to %s", cm->component, cm->name,
                 to);
            return;
        }
        if (runs(m, to)) {
            set_state(e, "Done", in->now_ms);
            kf_strbuf_release(&why);
            continue;
        }
        if (failing(m, to, since_ms(e), in->now_ms, in->step_timeout_ms, &why)) {
            set_state(e, "Failed", in->now_ms);
            json_object_set_new(up, "step", json_string("Failed"));
            cond(ret, false, "Failed",
                 "upgrade to %s stopped at %s member %s (zone %s, host %s): %s; kfleet rollback "
                 "%s returns the members that moved to %s",
                 to, cm->component, cm->name, kf_json_str(m, "spec.zone", "?"),
                 kf_json_str(m, "spec.host", "?"), why.buf, in->v->c.name,
                 kf_json_str(up, "from", ""));
            json_object_set_new(up, "message", json_string(ret->msg.buf));
            event(ret, true, "UpgradeFailed");
            ret->active = false;
            kf_strbuf_release(&why);
            return;
        }
        cond(ret, false, "InProgress", "waiting for %s member %s to be Ready on %s", cm->component,
             cm->name, to);
        kf_strbuf_release(&why);
        return;
    }
    postcheck(in, up, ret);
}

/* Starts an upgrade from cur to target if the window and the precheck let
 * it; returns the new status.upgrade or NULL. */
static json_t *maybe_start(const struct lc_upgrade_in *in, const size_t *order, const char *cur,
                           const char *target, struct lc_upgrade *ret)
{
    const json_t *gc = in->gc;
    const json_t *window = kf_json_path(gc, "status.effective.maintenanceWindow");
    struct kf_strbuf lack = KF_STRBUF_INIT;
    time_t next = 0;
    json_t *up;

    if (!window)
        window = kf_json_path(gc, "spec.maintenanceWindow");
    if (!kf_json_bool(gc, "spec.upgrade.force", false) &&
        !kf_window_allows(window, kf_obj_name(gc), (time_t)(in->now_ms / 1000), &next)) {
        char t[40];

        now_text((int64_t)next * 1000, t);
        if (next)
            cond(ret, false, "WaitingForWindow",
                 "upgrade to %s waits for the maintenance window: it may start at %s (or set "
                 "spec.upgrade.force: true)",
                 target, t);
        else
            cond(ret, false, "WaitingForWindow",
                 "upgrade to %s waits: no maintenance window opens within 400 days (check "
                 "exclusions, or set spec.upgrade.force: true)",
                 target);
        ret->requeue_ms =
            next ? KF_MIN(((int64_t)next * 1000 - in->now_ms) + 1000, WINDOW_RECHECK_MS)
                 : WINDOW_RECHECK_MS;
        return NULL;
    }
    hosts_lacking(in, target, &lack);
    if (!in->healthy || lack.len) {
        if (lack.len)
            cond(ret, false, "PrecheckFailed",
                 "upgrade to %s: precheck failed: hosts %s do not hold Kubernetes %s", target,
                 lack.buf, target);
        else
            cond(ret, false, "PrecheckFailed",
                 "upgrade to %s: precheck failed: the cluster must be Running with every member "
                 "Ready and etcd healthy first (%s)",
                 target, in->health_msg ? in->health_msg : "");
        ret->requeue_ms = PRECHECK_RETRY_MS;
        kf_strbuf_release(&lack);
        return NULL;
    }
    kf_strbuf_release(&lack);
    up = new_upgrade(in->v, order, cur, target, in->now_ms);
    event(ret, false, "UpgradeStarted");
    return up;
}

/* The version member i runs under up (or cur without one). */
static const char *member_version(const json_t *up, const char *name, const char *cur)
{
    json_t *e = entry_of((json_t *)up, name);
    const char *st = kf_json_str(e, "state", "Pending");

    if (!up || !e)
        return cur;
    if (!strcmp(st, "Upgrading") || !strcmp(st, "Done") || !strcmp(st, "Failed"))
        return kf_json_str(up, "to", cur);
    return kf_json_str(up, "from", cur);
}

void kf_lifecycle_upgrade_plan(const struct lc_upgrade_in *in, struct lc_upgrade *ret)
{
    const json_t *gc = in->gc;
    const char *cur = kf_json_str(gc, "status.version", NULL);
    const char *target = kf_json_str(gc, "spec.version", cur);
    const json_t *old = kf_json_path(gc, "status.upgrade");
    size_t *order = kf_xcalloc(in->v->n + 1, sizeof(*order));
    json_t *up = NULL;

    memset(ret, 0, sizeof(*ret));
    ret->msg = (struct kf_strbuf)KF_STRBUF_INIT;
    ret->versions = kf_xcalloc(in->v->n + 1, sizeof(*ret->versions));
    upgrade_order(in->v, order);
    if (cur && json_is_object(old) && !kf_json_str(old, "finishedAt", NULL))
        up = json_deep_copy(old);
    else if (cur && target && !kf_streq(target, cur))
        up = maybe_start(in, order, cur, target, ret);
    if (up) {
        if (kf_streq(target, kf_json_str(up, "from", NULL)))
            roll_back(in, up, order, ret);
        else
            roll_forward(in, up, order, ret);
        json_object_set_new(up, "message", json_string(ret->msg.buf));
        ret->status = up;
    }
    for (size_t i = 0; i < in->v->n; i++) {
        const char *v =
            cur ? member_version(ret->status ? ret->status : old, in->v->members[i].name, cur)
                : in->v->c.version;

        /* a finished upgrade leaves every member on the cluster's version */
        if (cur && (!ret->status && (!old || kf_json_str(old, "finishedAt", NULL))))
            v = ret->version ? ret->version : cur;
        ret->versions[i] = v;
    }
    free(order);
}

void kf_lifecycle_upgrade_release(struct lc_upgrade *u)
{
    free(u->versions);
    json_decref(u->status);
    kf_strbuf_release(&u->msg);
    memset(u, 0, sizeof(*u));
}
