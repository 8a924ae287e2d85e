/* ctrl-unitloss.c: the unit-loss controller (kfleetd controller
 * `unit-loss`, docs/internals/backups.md "Unit loss").
 *
 * A unit whose every host is NotReady past --unit-loss-grace (default
 * 10 min, longer than a host's grace: a shorter outage moves nothing) is
 * lost. Its clusters are brought back on other units of their region from
 * their newest Succeeded Backup: for each, this controller checks the
 * backup (region, sha256: kf_backup_restore_check; a backup that fails is
 * skipped for the next newest) and asks for a restore and a move to any
 * other unit ("<id> <unit> *", kfleet/backup.h) on the cluster; the
 * placement controller decides the unit and makes the new members
 * (ctrl-placement-move.c: placement's filters and the water level; what
 * fits nowhere stays with condition Moved=False and the reason, tried again
 * every 30 s), the backup controller's restore finishes it. At most
 * --unit-loss-concurrency clusters (default 50) are under way at once,
 * fleet-wide: a cluster counts from the request until its restore is done
 * or its move is blocked for want of room.
 *
 * A cluster without a Succeeded backup stays where it is, with condition
 * Moved=False reason NoBackup and a Warning Event: an empty control plane
 * elsewhere would look healthy and hold none of its data, so the operator
 * decides (wait for the unit, or delete and re-create it); it runs again
 * if the unit comes back.
 *
 * Every step is recorded where it can be read after a restart: the Unit's
 * annotations (KF_UNITLOSS_ANN_LOST: since when; _PROGRESS: how far, for
 * people) and each cluster's move and restore annotations, so a kfleetd
 * killed midway resumes from the store. Events: UnitLost, ClusterEvacuating,
 * NoBackup, UnitEvacuated, UnitRecovered (placement adds Moved /
 * MoveBlocked, the backup controller RestoreStarted / Restored).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/backup.h"
#include "kfleet/capacity.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-backup.h"
#include "controllers/ctrl-capacity.h"
#include "controllers/ctrl-unitloss.h"

KF_LOG_MODULE(unitloss);

#define BY_UNIT_HOST         "ul.host-unit"    /* Hosts by spec.unit */
#define BY_UNIT_CLUSTER      "ul.cluster-unit" /* GuestClusters by status.unit */
#define BY_MOVING            "ul.moving" /* GuestClusters whose restore elsewhere is under way */
#define MOVING               "1"
#define POLL_MS              2000
#define NO_BACKUP_RECHECK_MS (30 * 1000)

/* On a Unit: since when it is lost (ms), and the evacuation's progress. */
#define KF_UNITLOSS_ANN_LOST     "kfleet.io/unit-lost"
#define KF_UNITLOSS_ANN_PROGRESS "kfleet.io/unit-loss-progress"

struct unitloss {
    struct kf_registry *reg;
    struct kf_recorder *rec;
    struct kf_informer *units, *hosts, *clusters, *backups;
    int64_t grace_ms;
    unsigned max_in_flight;
    int64_t started_ms;
    /* Read-your-writes: clusters this controller asked to evacuate whose
     * annotation the informer has not shown yet (name -> the time asked,
     * intptr_t ms / 1000). Worker only. */
    struct kf_smap asked;
};

#define ASKED_FORGET_S 60

/* --- the decisions (ctrl-unitloss.h) -------------------------------------------- */

enum kf_unitloss_state kf_unitloss_assess(const struct kf_unitloss_host *hosts, size_t n,
                                          int64_t now_ms, int64_t grace_ms, int64_t started_ms,
                                          bool marked, int64_t *ret_since, int64_t *ret_wait_ms)
{
    int64_t since = 0, from;

    *ret_since = 0;
    *ret_wait_ms = 0;
    if (n == 0)
        return KF_UNIT_UP;
    for (size_t i = 0; i < n; i++) {
        if (hosts[i].ready)
            return KF_UNIT_UP;
        since = KF_MAX(since, hosts[i].since_ms);
    }
    *ret_since = since;
    if (marked)
        return KF_UNIT_LOST;
    from = KF_MAX(since, started_ms);
    if (now_ms - from >= grace_ms)
        return KF_UNIT_LOST;
    *ret_wait_ms = from + grace_ms - now_ms;
    return KF_UNIT_WAITING;
}

int kf_unitloss_pick_backup(const struct kf_unitloss_backup *b, size_t n, const bool *bad)
{
    int best = -1;

    for (size_t i = 0; i < n; i++) {
        if (!b[i].phase || strcmp(b[i].phase, "Succeeded") != 0 || (bad && bad[i]))
            continue;
        if (best < 0 || b[i].completed_ms > b[best].completed_ms ||
            (b[i].completed_ms == b[best].completed_ms && b[i].revision > b[best].revision))
            best = (int)i;
    }
    return best;
}

enum kf_unitloss_action kf_unitloss_cluster_action(bool deleting, bool moving, bool has_backup,
                                                   unsigned in_flight, unsigned max_in_flight)
{
    if (deleting || moving)
        return KF_UL_SKIP;
    if (!has_backup)
        return KF_UL_NOBACKUP;
    if (in_flight >= max_in_flight)
        return KF_UL_WAIT;
    return KF_UL_EVACUATE;
}

/* --- informers ------------------------------------------------------------------ */

static const char *annotation(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(kf_json_path(obj, "metadata.annotations"), key));
}

static void index_host_unit(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *u = kf_json_str(obj, "spec.unit", NULL);

    if (u)
        add(u, ctx);
}

static void index_cluster_unit(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *u = kf_json_str(obj, "status.unit", NULL);

    if (u)
        add(u, ctx);
}

static void index_backup_cluster(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *c = kf_json_str(obj, "spec.cluster", NULL);

    if (c)
        add(c, ctx);
}

/* A move's condition says no unit can take it now. */
static bool move_blocked(const json_t *gc)
{
    const json_t *c =
        kf_cap_condition_find(kf_json_path(gc, "status.conditions"), KF_MOVE_CONDITION);
    const char *reason = kf_json_str(c, "reason", "");

    return c && kf_streq(kf_json_str(c, "status", ""), "False") &&
           (!strcmp(reason, "NoHeadroom") || !strcmp(reason, "Unschedulable"));
}

/* A restore elsewhere under way: asked, not done, not blocked for room. */
static bool restoring_elsewhere(const json_t *gc)
{
    struct kf_move_req m;

    return kf_move_parse(annotation(gc, KF_MOVE_ANN), &m) == 0 &&
           !kf_streq(annotation(gc, KF_BACKUP_ANN_RESTORED), m.id) && !move_blocked(gc);
}

static void index_moving(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    if (!kf_obj_deleting(obj) && restoring_elsewhere(obj))
        add(MOVING, ctx);
}

static void host_to_unit(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    const char *u = kf_json_str(obj, "spec.unit", NULL);

    (void)deleted;
    if (u)
        kf_ctrl_enqueue(c, u);
}

static void cluster_to_units(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    const char *u = kf_json_str(obj, "status.unit", NULL);
    struct kf_move_req m;

    (void)deleted;
    if (u)
        kf_ctrl_enqueue(c, u);
    if (kf_move_parse(annotation(obj, KF_MOVE_ANN), &m) == 0)
        kf_ctrl_enqueue(c, m.from);
}

static int add_index(struct kf_informer *inf, const char *name, kf_index_fn fn)
{
    int r = kf_informer_add_index(inf, name, fn);

    return r == -EEXIST ? 0 : r;
}

static int setup(struct kf_ctrl *c)
{
    struct unitloss *d = kf_ctrl_data(c);
    struct kf_ctrl_manager *m = kf_ctrl_manager_of(c);
    int r;

    d->units = kf_ctrl_primary(c);
    d->hosts = kf_ctrl_informer(m, &kf_kind_host);
    d->clusters = kf_ctrl_informer(m, &kf_kind_guestcluster);
    d->backups = kf_ctrl_informer(m, &kf_kind_backup);
    d->started_ms = kf_now_ms();
    if ((r = add_index(d->hosts, BY_UNIT_HOST, index_host_unit)) < 0 ||
        (r = add_index(d->clusters, BY_UNIT_CLUSTER, index_cluster_unit)) < 0 ||
        (r = add_index(d->clusters, BY_MOVING, index_moving)) < 0 ||
        (r = add_index(d->backups, KF_BACKUP_BY_CLUSTER_BK, index_backup_cluster)) < 0)
        return r;
    if ((r = kf_ctrl_watch(c, &kf_kind_host, host_to_unit)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_guestcluster, cluster_to_units)) < 0)
        return r;
    return 0;
}

/* --- writes --------------------------------------------------------------------- */

static int patch(struct unitloss *d, const struct kf_kind *k, const char *name, json_t *p,
                 bool status)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r = kf_cap_patch(d->reg, k, name, p, status, NULL, &err);

    if (r < 0 && r != -KF_ENOTFOUND)
        kf_log_rl_warn("cannot update %s \"%s\": %s; retrying", k->singular, name, err.buf);
    json_decref(p);
    kf_strbuf_release(&err);
    return r == -KF_ENOTFOUND ? 0 : r;
}

static int annotate(struct unitloss *d, const struct kf_kind *k, const char *name, json_t *ann)
{
    return patch(d, k, name, json_pack("{s:{s:o}}", "metadata", "annotations", ann), false);
}

/* Sets the cluster's condition Moved=False reason NoBackup (once) with a
 * Warning Event. */
static int say_no_backup(struct unitloss *d, const json_t *gc, const char *unit, const char *since)
{
    const json_t *old = kf_json_path(gc, "status.conditions");
    const json_t *have = kf_cap_condition_find(old, KF_MOVE_CONDITION);
    char *msg;
    json_t *conds = json_array(), *c;
    size_t i;
    int r;

    if (have && kf_streq(kf_json_str(have, "reason", ""), "NoBackup"))
        return 0;
    msg = kf_xasprintf("unit %s is lost (every host NotReady since %s) and the cluster has no "
                       "Succeeded backup: it is not moved (an empty control plane elsewhere would "
                       "hold none of its data); it runs again when the unit comes back, or delete "
                       "and re-create it",
                       unit, since);
    json_array_foreach(old, i, c)
    {
        if (!kf_streq(kf_json_str(c, "type", ""), KF_MOVE_CONDITION))
            json_array_append(conds, c);
    }
    json_array_append_new(
        conds, kf_cap_condition(old, KF_MOVE_CONDITION, false, "NoBackup", msg, kf_now_ms()));
    r = patch(d, &kf_kind_guestcluster, kf_obj_name(gc),
              json_pack("{s:{s:o}}", "status", "conditions", conds), true);
    if (r == 0) {
        kf_log_warn("cluster \"%s\": %s", kf_obj_name(gc), msg);
        kf_recorder_event(d->rec, gc, KF_EVENT_WARNING, "NoBackup", msg);
    }
    free(msg);
    return r;
}

/* The cluster's newest Succeeded Backup that passes the restore checks
 * (new reference), or NULL. */
static json_t *pick_backup(struct unitloss *d, const json_t *gc)
{
    char **names = NULL;
    size_t n =
        kf_informer_index_names(d->backups, KF_BACKUP_BY_CLUSTER_BK, kf_obj_name(gc), &names);
    json_t **objs = kf_xcalloc(n + 1, sizeof(*objs)), *chosen = NULL;
    struct kf_unitloss_backup *bs = kf_xcalloc(n + 1, sizeof(*bs));
    bool *bad = kf_xcalloc(n + 1, sizeof(*bad));
    int i;

    for (size_t k = 0; k < n; k++) {
        int64_t t = 0;

        if (kf_informer_get(d->backups, names[k], &objs[k]) < 0)
            continue;
        if (kf_time_parse_rfc3339(kf_json_str(objs[k], "status.completionTime", ""), &t) < 0)
            kf_time_parse_rfc3339(kf_json_str(objs[k], "metadata.creationTimestamp", ""), &t);
        bs[k] = (struct kf_unitloss_backup){ kf_json_str(objs[k], "status.phase", NULL),
                                             kf_json_int(objs[k], "status.revision", 0), t };
        bad[k] = kf_obj_deleting(objs[k]);
    }
    while (!chosen && (i = kf_unitloss_pick_backup(bs, n, bad)) >= 0) {
        struct kf_strbuf err = KF_STRBUF_INIT;

        if (kf_backup_restore_check(d->reg, objs[i], gc, &err) == 0) {
            chosen = json_incref(objs[i]);
        } else {
            kf_log_rl_warn("cluster \"%s\": backup \"%s\" is not used: %s", kf_obj_name(gc),
                           kf_obj_name(objs[i]), err.buf);
            bad[i] = true;
        }
        kf_strbuf_release(&err);
    }
    for (size_t k = 0; k < n; k++)
        json_decref(objs[k]);
    free(objs);
    free(bs);
    free(bad);
    kf_ctrl_names_free(names, n);
    return chosen;
}

/* Asks for the cluster's restore from b on any other unit of its region. */
static int evacuate(struct unitloss *d, const json_t *gc, const json_t *b, const char *unit)
{
    char id[32];
    json_t *ann = json_object();
    int r;

    snprintf(id, sizeof(id), "%lld", (long long)kf_now_ms());
    json_object_set_new(ann, KF_BACKUP_ANN_RESTORE, json_sprintf("%s %s", id, kf_obj_name(b)));
    json_object_set_new(ann, KF_MOVE_ANN, json_sprintf("%s %s *", id, unit));
    r = annotate(d, &kf_kind_guestcluster, kf_obj_name(gc), ann);
    if (r < 0)
        return r;
    kf_log_info("cluster \"%s\": unit \"%s\" is lost; restoring it from backup \"%s\" (revision "
                "%lld) on another unit of region \"%s\"",
                kf_obj_name(gc), unit, kf_obj_name(b),
                (long long)kf_json_int(b, "status.revision", 0),
                kf_json_str(gc, "spec.region", ""));
    kf_recorder_eventf(d->rec, gc, KF_EVENT_WARNING, "ClusterEvacuating",
                       "unit %s is lost: restoring from backup %s (revision %lld) on another "
                       "unit of region %s",
                       unit, kf_obj_name(b), (long long)kf_json_int(b, "status.revision", 0),
                       kf_json_str(gc, "spec.region", ""));
    return 0;
}

/* --- the reconcile of one Unit ---------------------------------------------------- */

/* The unit's hosts as the pure decision wants them. */
static size_t unit_hosts(struct unitloss *d, const char *unit, struct kf_unitloss_host **ret)
{
    char **names = NULL;
    size_t n = kf_informer_index_names(d->hosts, BY_UNIT_HOST, unit, &names), k = 0;
    struct kf_unitloss_host *hs = kf_xcalloc(n + 1, sizeof(*hs));

    for (size_t i = 0; i < n; i++) {
        json_t *h = NULL;
        int64_t t = 0;

        if (kf_informer_get(d->hosts, names[i], &h) < 0)
            continue;
        kf_time_parse_rfc3339(kf_json_str(h, "status.lastTransitionTime", ""), &t);
        /* a host not decided yet (just registered) counts as up: it beats */
        hs[k++] = (struct kf_unitloss_host){ !json_is_false(kf_json_path(h, "status.ready")), t };
        json_decref(h);
    }
    kf_ctrl_names_free(names, n);
    *ret = hs;
    return k;
}

/* The unit is up (again): its mark goes, with an Event if it was lost. */
static int unit_up(struct unitloss *d, const json_t *u, size_t n_hosts)
{
    json_t *ann;
    size_t left;
    char **names = NULL;

    if (!annotation(u, KF_UNITLOSS_ANN_LOST))
        return 0;
    left = kf_informer_index_names(d->clusters, BY_UNIT_CLUSTER, kf_obj_name(u), &names);
    kf_ctrl_names_free(names, left);
    ann = json_pack("{s:n, s:n}", KF_UNITLOSS_ANN_LOST, KF_UNITLOSS_ANN_PROGRESS);
    if (annotate(d, &kf_kind_unit, kf_obj_name(u), ann) < 0)
        return -KF_EUNAVAILABLE;
    kf_log_info("unit \"%s\" is back (a host of its %zu is Ready); %zu clusters still on it run "
                "here again",
                kf_obj_name(u), n_hosts, left);
    kf_recorder_eventf(d->rec, u, KF_EVENT_NORMAL, "UnitRecovered",
                       "a host of the unit is Ready again: no more evacuation; the %zu clusters "
                       "still here run here, those restored elsewhere stay there",
                       left);
    return 0;
}

/* Asked evacuations the informer does not show yet; those it shows (or
 * older than ASKED_FORGET_S) are forgotten. */
static unsigned asked_unseen(struct unitloss *d)
{
    int64_t now_s = kf_now_ms() / 1000;
    char *old[64];
    size_t it = 0, n_old = 0;
    const char *k;
    void *v;

    while (kf_smap_next(&d->asked, &it, &k, &v)) {
        json_t *gc = NULL;
        bool seen = kf_informer_get(d->clusters, k, &gc) < 0 || annotation(gc, KF_MOVE_ANN);

        json_decref(gc);
        if ((seen || now_s - (intptr_t)v > ASKED_FORGET_S) && n_old < KF_ARRAY_SIZE(old))
            old[n_old++] = kf_xstrdup(k);
    }
    for (size_t i = 0; i < n_old; i++) {
        kf_smap_remove(&d->asked, old[i]);
        free(old[i]);
    }
    return (unsigned)kf_smap_count(&d->asked);
}

struct tally {
    unsigned total, moving, blocked, waiting, no_backup, started;
};

static int unit_lost(struct unitloss *d, const json_t *u, int64_t since, int64_t *requeue)
{
    const char *unit = kf_obj_name(u);
    char **names = NULL, **moving = NULL, when[32], *progress;
    size_t n, n_moving = kf_informer_index_names(d->clusters, BY_MOVING, MOVING, &moving);
    unsigned in_flight = (unsigned)n_moving + asked_unseen(d);
    struct tally t = { 0 };
    int r = 0;

    kf_ctrl_names_free(moving, n_moving);
    kf_time_format_rfc3339(since, when, sizeof(when));
    if (!annotation(u, KF_UNITLOSS_ANN_LOST)) {
        char v[32];

        snprintf(v, sizeof(v), "%lld", (long long)since);
        r = annotate(d, &kf_kind_unit, unit, json_pack("{s:s}", KF_UNITLOSS_ANN_LOST, v));
        if (r < 0)
            return r;
        n = kf_informer_index_names(d->clusters, BY_UNIT_CLUSTER, unit, &names);
        kf_ctrl_names_free(names, n);
        kf_log_warn("unit \"%s\" is lost: every host NotReady since %s (grace %lld s); its %zu "
                    "clusters are restored from their backups on other units",
                    unit, when, (long long)(d->grace_ms / 1000), n);
        kf_recorder_eventf(d->rec, u, KF_EVENT_WARNING, "UnitLost",
                           "every host NotReady since %s (longer than the unit-loss grace, %lld "
                           "s): its %zu clusters are restored from their newest backups on "
                           "other units of region %s, at most %u at once",
                           when, (long long)(d->grace_ms / 1000), n,
                           kf_json_str(u, "spec.region", ""), d->max_in_flight);
    }
    n = kf_informer_index_names(d->clusters, BY_UNIT_CLUSTER, unit, &names);
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *gc = NULL, *b = NULL;
        struct kf_move_req m;
        bool moving_off;
        enum kf_unitloss_action act;

        if (kf_informer_get(d->clusters, names[i], &gc) < 0)
            continue;
        t.total++;
        moving_off = kf_move_parse(annotation(gc, KF_MOVE_ANN), &m) == 0 && !strcmp(m.from, unit) &&
                     !kf_streq(annotation(gc, KF_MOVE_ANN_DONE), m.id);
        if (moving_off)
            kf_smap_remove(&d->asked, names[i]);
        else if (kf_smap_contains(&d->asked, names[i]))
            moving_off = true; /* asked; the informer has not shown it yet */
        if (moving_off && move_blocked(gc))
            t.blocked++;
        else if (moving_off)
            t.moving++;
        b = moving_off || kf_obj_deleting(gc) ? NULL : pick_backup(d, gc);
        act = kf_unitloss_cluster_action(kf_obj_deleting(gc), moving_off, b != NULL, in_flight,
                                         d->max_in_flight);
        switch (act) {
        case KF_UL_SKIP:
            break;
        case KF_UL_NOBACKUP:
            t.no_backup++;
            r = say_no_backup(d, gc, unit, when);
            break;
        case KF_UL_WAIT:
            t.waiting++;
            break;
        case KF_UL_EVACUATE:
            r = evacuate(d, gc, b, unit);
            if (r == 0) {
                kf_smap_put(&d->asked, names[i], (void *)(intptr_t)(kf_now_ms() / 1000));
                in_flight++;
                t.started++;
                t.moving++;
            }
            break;
        }
        json_decref(b);
        json_decref(gc);
    }
    kf_ctrl_names_free(names, n);
    if (t.total == 0)
        progress = kf_xasprintf("lost since %s: evacuated, no cluster left on the unit", when);
    else
        progress = kf_xasprintf(
            "lost since %s: %u clusters still on the unit: %u being restored elsewhere, %u "
            "waiting for a slot (at most %u at once), %u that no unit can take yet, %u without "
            "a backup",
            when, t.total, t.moving, t.waiting, d->max_in_flight, t.blocked, t.no_backup);
    if (r == 0 && !kf_streq(annotation(u, KF_UNITLOSS_ANN_PROGRESS), progress)) {
        r = annotate(d, &kf_kind_unit, unit,
                     json_pack("{s:s}", KF_UNITLOSS_ANN_PROGRESS, progress));
        if (r == 0 && t.total == 0)
            kf_recorder_eventf(d->rec, u, KF_EVENT_NORMAL, "UnitEvacuated",
                               "every cluster of the lost unit was restored on another unit");
    }
    free(progress);
    if (t.total > 0)
        *requeue = t.total == t.no_backup ? NO_BACKUP_RECHECK_MS : POLL_MS;
    return r;
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue_after_ms)
{
    struct unitloss *d = kf_ctrl_data(c);
    struct kf_unitloss_host *hosts = NULL;
    json_t *u = NULL;
    int64_t since = 0, wait = 0;
    size_t n;
    int r = 0;

    if (kf_informer_get(d->units, name, &u) < 0)
        return 0;
    n = unit_hosts(d, name, &hosts);
    switch (kf_unitloss_assess(hosts, n, kf_now_ms(), d->grace_ms, d->started_ms,
                               annotation(u, KF_UNITLOSS_ANN_LOST) != NULL, &since, &wait)) {
    case KF_UNIT_UP:
        r = unit_up(d, u, n);
        break;
    case KF_UNIT_WAITING:
        *requeue_after_ms = wait + 100;
        break;
    case KF_UNIT_LOST:
        r = unit_lost(d, u, since, requeue_after_ms);
        break;
    }
    free(hosts);
    json_decref(u);
    return r;
}

const struct kf_ctrl_ops kf_ctrl_unitloss_ops = {
    .name = "unit-loss",
    .primary_kind = "Unit",
    .workers = 1,
    .setup = setup,
    .reconcile = reconcile,
    .resync_ms = 60 * 1000,
};

int kf_ctrl_unitloss_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct kf_capacity_options dflt;
    const struct kf_capacity_options *o = env->capacity;
    struct unitloss *d;

    (void)err;
    if (!o) {
        kf_capacity_options_default(&dflt);
        o = &dflt;
    }
    d = kf_xcalloc(1, sizeof(*d));
    d->reg = env->reg;
    d->rec = kf_recorder_new(env->reg, "unit-loss");
    kf_smap_init(&d->asked);
    d->grace_ms = o->unit_loss_grace_ms > 0 ? o->unit_loss_grace_ms : KF_UNIT_LOSS_GRACE_MS;
    d->max_in_flight =
        o->unit_loss_concurrency > 0 ? o->unit_loss_concurrency : KF_UNIT_LOSS_CONCURRENCY;
    *ret = d;
    return 0;
}

void kf_ctrl_unitloss_fini(void *data)
{
    struct unitloss *d = data;

    if (!d)
        return;
    kf_recorder_free(d->rec);
    kf_smap_release(&d->asked);
    free(d);
}
