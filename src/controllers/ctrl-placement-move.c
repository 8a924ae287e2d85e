/* ctrl-placement-move.c: moving a placed cluster's control plane to another
 * unit of its region, its etcd restored from a Backup (kfleet/backup.h,
 * docs/internals/backups.md "Restore onto another unit").
 *
 * The placement controller places only clusters without status.unit; this
 * is its entry point for one that has a unit and must leave it. A move is
 * asked on the cluster with two annotations of one id: KF_BACKUP_ANN_RESTORE
 * "<id> <backup>" (the backup controller's restore) and KF_MOVE_ANN
 * "<id> <from> <to>", to being a unit or "*" (any unit of the region but
 * `from`). Two callers ask: the action POST .../guestclusters/C/move?unit=U
 * &backup=B (admin; `kfleet restore C --backup B --unit U`), which checks
 * the backup and the fit before anything stops and refuses with the reason,
 * and the unit-loss controller (ctrl-unitloss.c, to "*").
 *
 * kf_place_move_step, run by the placement worker before a placed
 * cluster's usual reconcile, is level-triggered from the store:
 *   1. while status.unit is still `from`, decide the target with the
 *      library (kf_place on the region's units, the cluster itself left
 *      out, pinned to `to` or avoiding `from`: every filter, the water
 *      level included). No unit: condition Moved=False with the library's
 *      reason (NoHeadroom / Unschedulable), an Event MoveBlocked when the
 *      reason changes, tried again every 30 s;
 *   2. it fits: the old members are deleted (their agents stop them; on a
 *      host that stays NotReady the lifecycle controller releases them
 *      after --member-release-timeout); condition Moved=False reason
 *      Moving says how many are left;
 *   3. no old member left: decided again (the model may have changed), and
 *      one status write commits the new unit (phase Scheduled, the
 *      endpoint cleared: lifecycle picks one on the new unit's endpoint
 *      address), then the new members are created bound as decided, each
 *      etcd member carrying its restore request ("<id> <path> <sha256>")
 *      before its first start, so that it starts from the snapshot; Event
 *      Moved;
 *   4. status.unit is no longer `from`: KF_MOVE_ANN_DONE records the id.
 * The ranges (status.network) stay: IPAM is per VPC, not per unit. The
 * restore then ends as any restore does (the backup controller counts the
 * members back from the snapshot and records KF_BACKUP_ANN_RESTORED).
 * kfleetd stopped at any point resumes from the annotations and status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/api-action.h"
#include "kfleet/backup.h"
#include "kfleet/capacity.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/lifecycle.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-backup.h"
#include "controllers/ctrl-placement.h"
#include "controllers/ctrl-replace.h"

KF_LOG_MODULE(placement);

#define MOVE_RETRY_MS (30 * 1000)
#define MOVE_POLL_MS  1000

int kf_move_parse(const char *value, struct kf_move_req *ret)
{
    struct kf_move_req m;
    int n = 0;

    if (!value || strlen(value) > 600 ||
        sscanf(value, "%31[0-9] %253[^ ] %253[^ ]%n", m.id, m.from, m.to, &n) != 3 || value[n])
        return -EINVAL;
    *ret = m;
    return 0;
}

static const char *annotation(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(kf_json_path(obj, "metadata.annotations"), key));
}

/* One decision for the move, copied out of the model's snapshot. */
struct move_decision {
    struct kf_grade_spec shape;
    struct kf_place_result *res; /* owned */
    char unit[KF_NAME_MAX + 1];
    struct {
        char host[KF_NAME_MAX + 1], zone[KF_NAME_MAX + 1];
        unsigned component, replica;
    } b[KF_GRADE_MAX_MEMBERS];
    unsigned nb;
};

/* Where the cluster would go, leaving `from` for `to` ("*": any other unit
 * of its region), with every filter of a new placement. 0 with *ret, or
 * -ENOSPC with the library's reason in ret->res->message. */
static int move_decide(struct place_ctrl *d, struct kf_placer *placer, const json_t *cluster,
                       const struct kf_place_settings *s, const char *from, const char *to,
                       struct move_decision *ret)
{
    const char *name = kf_obj_name(cluster);
    int grade = kf_grade_parse(kf_json_str(cluster, "status.grade", ""));
    const char *avoid[KF_ARRAY_SIZE(((struct place_input_bufs *)0)->avoid) + 1];
    struct place_input_bufs bufs;
    struct kf_place_cluster c;
    struct cap_units us;
    int r;

    if (grade < 0)
        grade = kf_grade_decide(&d->grades, s->explicit_grade, s->nodes, s->pods, -1, NULL);
    ret->res = kf_xcalloc(1, sizeof(*ret->res));
    kf_place_shape(&d->grades, grade, s->profile, s->simulated_nodes, &ret->shape);
    kf_place_cluster_input(cluster, s, grade, &ret->shape, &c, &bufs);
    if (strcmp(to, "*") != 0) {
        c.unit = to;
    } else {
        memcpy(avoid, c.avoid_units, c.n_avoid_units * sizeof(*avoid));
        avoid[c.n_avoid_units] = from;
        c.avoid_units = avoid;
        c.n_avoid_units++;
    }
    pthread_mutex_lock(&d->model->lock);
    kf_cap_units_build(d->model, &d->policy, kf_json_str(cluster, "spec.region", ""), name, &us);
    r = kf_place(placer, us.units, us.n, &c, ret->res);
    if (r == 0 && strcmp(us.units[ret->res->unit].name, from) == 0) {
        /* pinned by spec.placement.unit to the unit it leaves */
        snprintf(ret->res->message, sizeof(ret->res->message),
                 "the cluster is pinned to unit %s (spec.placement.unit), the unit it leaves",
                 from);
        r = -ENOSPC;
    }
    if (r == 0) {
        const struct kf_place_unit *u = &us.units[ret->res->unit];

        snprintf(ret->unit, sizeof(ret->unit), "%s", u->name);
        for (unsigned i = 0; i < ret->res->n_bindings; i++) {
            const struct kf_place_binding *b = &ret->res->bindings[i];

            snprintf(ret->b[i].host, sizeof(ret->b[i].host), "%s", u->hosts[b->host].name);
            snprintf(ret->b[i].zone, sizeof(ret->b[i].zone), "%s", u->zones[b->zone]);
            ret->b[i].component = b->component;
            ret->b[i].replica = b->replica;
        }
        ret->nb = ret->res->n_bindings;
    }
    kf_cap_units_release(&us);
    pthread_mutex_unlock(&d->model->lock);
    kf_place_input_bufs_release(&bufs);
    return r < 0 ? -ENOSPC : 0;
}

static void move_decision_release(struct move_decision *m)
{
    free(m->res);
    m->res = NULL;
}

/* Merge-patches the cluster's status with st (conditions merged by type). */
static int move_patch_status(struct place_ctrl *d, const json_t *cluster, json_t *st,
                             struct kf_strbuf *why)
{
    json_t *conds = json_object_get(st, "conditions"), *merged = json_array(), *c, *patch;
    int64_t rev = 0;
    size_t i;
    int r;

    json_array_foreach(kf_json_path(cluster, "status.conditions"), i, c)
    {
        if (!kf_cap_condition_find(conds, kf_json_str(c, "type", "")))
            json_array_append(merged, c);
    }
    json_array_foreach(conds, i, c) json_array_append(merged, c);
    json_object_set_new(st, "conditions", merged);
    patch = json_pack("{s:O}", "status", st);
    r = kf_cap_patch(d->reg, &kf_kind_guestcluster, kf_obj_name(cluster), patch, true, &rev, why);
    json_decref(patch);
    if (r == 0)
        d->need_cluster_rev = KF_MAX(d->need_cluster_rev, rev);
    return r;
}

/* Sets condition Moved (status, reason, message) when it differs. */
static int moved_condition(struct place_ctrl *d, const json_t *cluster, bool status,
                           const char *reason, const char *msg)
{
    const json_t *old = kf_json_path(cluster, "status.conditions");
    const json_t *have = kf_cap_condition_find(old, KF_MOVE_CONDITION);
    struct kf_strbuf why = KF_STRBUF_INIT;
    json_t *st;
    int r;

    if (have && kf_streq(kf_json_str(have, "status", ""), status ? "True" : "False") &&
        kf_streq(kf_json_str(have, "reason", ""), reason) &&
        kf_streq(kf_json_str(have, "message", ""), msg))
        return 0;
    st = json_pack("{s:[o]}", "conditions",
                   kf_cap_condition(old, KF_MOVE_CONDITION, status, reason, msg, kf_now_ms()));
    r = move_patch_status(d, cluster, st, &why);
    if (r < 0 && r != -KF_ENOTFOUND)
        kf_log_rl_warn("cluster \"%s\": cannot write its Moved condition: %s", kf_obj_name(cluster),
                       why.buf);
    json_decref(st);
    kf_strbuf_release(&why);
    return r == -KF_ENOTFOUND ? 0 : r;
}

static int annotate_cluster(struct place_ctrl *d, const char *name, json_t *annotations)
{
    struct kf_strbuf why = KF_STRBUF_INIT;
    json_t *patch = json_pack("{s:{s:o}}", "metadata", "annotations", annotations);
    int64_t rev = 0;
    int r = kf_cap_patch(d->reg, &kf_kind_guestcluster, name, patch, false, &rev, &why);

    if (r == 0)
        d->need_cluster_rev = KF_MAX(d->need_cluster_rev, rev);
    else if (r != -KF_ENOTFOUND)
        kf_log_rl_warn("cluster \"%s\": cannot annotate it: %s", name, why.buf);
    json_decref(patch);
    kf_strbuf_release(&why);
    return r == -KF_ENOTFOUND ? 0 : r;
}

/* The etcd members' restore request "<id> <path> <sha256>" from the Backup
 * the cluster's restore annotation of this id names; -ENOENT when there is
 * none (the move then does not start: it would bring the cluster up empty). */
static int member_restore_value(struct place_ctrl *d, const json_t *cluster, const char *id,
                                char *buf, size_t size, char *bname, size_t bsize)
{
    const char *req = annotation(cluster, KF_BACKUP_ANN_RESTORE);
    char rid[32], name[254];
    json_t *b = NULL;
    int r = -ENOENT;

    if (!req || sscanf(req, "%31s %253s", rid, name) != 2 || strcmp(rid, id) != 0)
        return -ENOENT;
    if (kf_registry_get(d->reg, &kf_kind_backup, name, &b) == 0 &&
        kf_json_str(b, "status.path", NULL) && kf_json_str(b, "status.checksum", NULL)) {
        snprintf(buf, size, "%s %s %s", id, kf_json_str(b, "status.path", ""),
                 kf_json_str(b, "status.checksum", ""));
        snprintf(bname, bsize, "%s", name);
        r = 0;
    }
    json_decref(b);
    return r;
}

/* Lets go of the old members (deleting) whose host is NotReady or gone:
 * their agent cannot stop them, and the move must not wait for
 * --member-release-timeout on top of the unit-loss grace. Safe because
 * the new members are a new etcd member set (the restore's own cluster
 * token): an old member that comes back can never join it, and its agent,
 * back, finds it gone and stops it. Returns how many were let go. */
static int release_abandoned(struct place_ctrl *d, const json_t *cluster)
{
    struct cap_cluster *cc;
    char **names = NULL;
    size_t n = 0;
    int released = 0;

    pthread_mutex_lock(&d->model->lock);
    cc = kf_smap_get(&d->model->clusters, kf_obj_name(cluster));
    for (size_t i = 0; cc && i < cc->n_members; i++) {
        const struct cap_member *mb = cc->members[i];

        if (!mb->host || !mb->host->known || !mb->host->ready) {
            names = kf_xrealloc(names, (n + 1) * sizeof(*names));
            names[n++] = kf_xstrdup(mb->name);
        }
    }
    pthread_mutex_unlock(&d->model->lock);
    for (size_t i = 0; i < n; i++) {
        struct kf_strbuf why = KF_STRBUF_INIT;
        json_t *m = NULL, *fins, *v, *patch;
        size_t k;

        if (kf_informer_get(d->members, names[i], &m) == 0 && kf_obj_deleting(m) &&
            kf_obj_has_finalizer(m, KF_FINALIZER_AGENT)) {
            fins = json_array();
            json_array_foreach(kf_json_path(m, "metadata.finalizers"), k, v)
            {
                if (!kf_streq(json_string_value(v), KF_FINALIZER_AGENT))
                    json_array_append(fins, v);
            }
            patch = json_pack("{s:{s:o, s:s}}", "metadata", "finalizers", fins, "resourceVersion",
                              kf_json_str(m, "metadata.resourceVersion", ""));
            if (kf_cap_patch(d->reg, &kf_kind_controlplanemember, names[i], patch, false, NULL,
                             &why) == 0) {
                released++;
                kf_recorder_eventf(d->rec, cluster, KF_EVENT_WARNING, "MemberAbandoned",
                                   "member %s: host %s is NotReady; let go without its agent "
                                   "for the move (its process and data may remain there)",
                                   names[i], kf_json_str(m, "spec.host", "?"));
            }
            json_decref(patch);
        }
        json_decref(m);
        kf_strbuf_release(&why);
        free(names[i]);
    }
    free(names);
    return released;
}

/* Step 3: commits the new unit and creates the new members. */
static int move_commit(struct place_ctrl *d, const json_t *cluster,
                       const struct kf_place_settings *s, const struct kf_move_req *m,
                       struct move_decision *md, const char *restore, const char *bname)
{
    const char *name = kf_obj_name(cluster);
    const json_t *old = kf_json_path(cluster, "status.conditions");
    struct kf_strbuf why = KF_STRBUF_INIT;
    json_t **objs = kf_xcalloc(md->nb + 1, sizeof(*objs));
    int64_t now = kf_now_ms();
    char *msg = kf_xasprintf("moved from unit %s to unit %s, etcd restored from backup %s: %s",
                             m->from, md->unit, bname, md->res->message);
    json_t *st;
    int r;

    st = json_pack("{s:s, s:s, s:s, s:n, s:{s:i, s:i}, s:[o, o]}", "phase", "Scheduled", "unit",
                   md->unit, "message", msg, "endpoints", "members", "desired",
                   (int)kf_grade_members(&md->shape), "ready", 0, "conditions",
                   kf_cap_condition(old, "Scheduled", true, "Placed", md->res->message, now),
                   kf_cap_condition(old, KF_MOVE_CONDITION, true, "Moved", msg, now));
    r = move_patch_status(d, cluster, st, &why);
    json_decref(st);
    if (r < 0)
        goto free_msg;
    for (unsigned i = 0; i < md->nb; i++) {
        const struct kf_component *comp = &md->shape.components[md->b[i].component];

        objs[i] = kf_place_member_obj(cluster, md->unit, md->b[i].host, md->b[i].zone, comp,
                                      md->b[i].replica, kf_json_str(s->effective, "version", ""));
        if (strcmp(comp->name, "etcd") == 0)
            json_object_set_new(json_object_get(objs[i], "metadata"), "annotations",
                                json_pack("{s:s}", KF_BACKUP_ANN_MEMBER_RESTORE, restore));
    }
    r = kf_place_members_create(d, objs, md->nb, &why);
    for (unsigned i = 0; i < md->nb; i++)
        json_decref(objs[i]);
    if (r < 0)
        goto free_msg;
    kf_log_info("cluster \"%s\": %s; %u members created", name, msg, md->nb);
    kf_recorder_event(d->rec, cluster, KF_EVENT_NORMAL, "Moved", msg);
free_msg:
    if (r < 0 && r != -KF_ENOTFOUND)
        kf_log_rl_warn("cluster \"%s\": cannot move it to unit %s: %s; retrying", name, md->unit,
                       why.buf);
    free(objs);
    free(msg);
    kf_strbuf_release(&why);
    return r == -KF_ENOTFOUND ? 0 : r;
}

int kf_place_move_step(struct place_ctrl *d, const json_t *cluster,
                       const struct kf_place_settings *s, int64_t *requeue_after_ms)
{
    const char *name = kf_obj_name(cluster), *unit = kf_json_str(cluster, "status.unit", "");
    struct kf_strbuf why = KF_STRBUF_INIT;
    struct move_decision md = { 0 };
    struct kf_move_req m;
    char restore[2400], bname[254], *msg = NULL;
    int r, left;

    if (kf_move_parse(annotation(cluster, KF_MOVE_ANN), &m) < 0 ||
        kf_streq(annotation(cluster, KF_MOVE_ANN_DONE), m.id))
        return 0;
    if (strcmp(unit, m.from) != 0) /* committed: step 4 */
        return annotate_cluster(d, name, json_pack("{s:s}", KF_MOVE_ANN_DONE, m.id));
    *requeue_after_ms = MOVE_POLL_MS;
    if (member_restore_value(d, cluster, m.id, restore, sizeof(restore), bname, sizeof(bname)) <
        0) {
        *requeue_after_ms = MOVE_RETRY_MS;
        r = moved_condition(d, cluster, false, "BackupMissing",
                            "the move waits: the backup its restore names is gone or has no file; "
                            "ask again with another backup");
        return r < 0 ? r : 1;
    }
    r = move_decide(d, &d->placer, cluster, s, m.from, m.to, &md);
    if (r < 0) {
        const json_t *have =
            kf_cap_condition_find(kf_json_path(cluster, "status.conditions"), KF_MOVE_CONDITION);

        msg = kf_xasprintf("cannot move off unit %s yet: %s", m.from, md.res->message);
        if (!kf_streq(kf_json_str(have, "message", NULL), msg))
            kf_recorder_event(d->rec, cluster, KF_EVENT_WARNING, "MoveBlocked", msg);
        r = moved_condition(
            d, cluster, false,
            strstr(md.res->message, "has headroom") ? "NoHeadroom" : "Unschedulable", msg);
        *requeue_after_ms = MOVE_RETRY_MS;
        goto release_decision;
    }
    left = kf_place_members_delete_all(d, name, &why);
    if (left < 0) {
        r = left;
        kf_log_rl_warn("cluster \"%s\": %s; retrying", name, why.buf);
        goto release_decision;
    }
    if (left > 0 && release_abandoned(d, cluster) > 0)
        left = kf_place_members_delete_all(d, name, &why);
    if (left > 0) {
        msg = kf_xasprintf("moving to unit %s: %d members on unit %s still to stop", md.unit, left,
                           m.from);
        r = moved_condition(d, cluster, false, "Moving", msg);
        goto release_decision;
    }
    r = move_commit(d, cluster, s, &m, &md, restore, bname);
release_decision:
    move_decision_release(&md);
    free(msg);
    kf_strbuf_release(&why);
    return r < 0 ? r : 1;
}

/* --- the action: POST .../guestclusters/NAME/move?unit=U&backup=B ------------- */

/* What must hold of the cluster and the target unit before a move is
 * asked: 0, or an error with why. */
static int move_target_check(struct place_ctrl *d, const json_t *gc, const char *unit,
                             struct kf_strbuf *err)
{
    const char *name = kf_obj_name(gc), *from = kf_json_str(gc, "status.unit", NULL);
    struct kf_move_req cur;
    json_t *u = NULL;
    int r = 0;

    if (kf_obj_deleting(gc) || !from)
        return kf_err(err, -KF_EINVALID, "cluster \"%s\" is %s: only a placed cluster moves", name,
                      kf_obj_deleting(gc) ? "being deleted" : "not placed yet");
    if (kf_move_parse(annotation(gc, KF_MOVE_ANN), &cur) == 0 &&
        !kf_streq(annotation(gc, KF_MOVE_ANN_DONE), cur.id))
        return kf_err(err, -KF_ECONFLICT,
                      "cluster \"%s\" is already moving off unit %s (request %s); wait for it",
                      name, cur.from, cur.id);
    if (strcmp(unit, from) == 0)
        return kf_err(err, -KF_EINVALID,
                      "cluster \"%s\" runs on unit %s already: leave out the unit to restore it "
                      "where it is",
                      name, unit);
    if (kf_registry_get(d->reg, &kf_kind_unit, unit, &u) < 0)
        return kf_err(err, -KF_EINVALID, "unit \"%s\" does not exist", unit);
    if (!kf_streq(kf_json_str(u, "spec.region", ""), kf_json_str(gc, "spec.region", "")))
        r = kf_err(err, -KF_EINVALID,
                   "refused: unit %s is in region \"%s\", cluster \"%s\" in \"%s\": a cluster "
                   "moves only within its region",
                   unit, kf_json_str(u, "spec.region", ""), name,
                   kf_json_str(gc, "spec.region", ""));
    json_decref(u);
    return r;
}

static int move_fn(void *arg, const struct kf_api_call *call, json_t **ret, struct kf_strbuf *err)
{
    struct place_ctrl *d = arg;
    const char *unit = call->query ? call->query(call, "unit") : NULL;
    const char *bname = call->query ? call->query(call, "backup") : NULL;
    const char *name = call->name, *from;
    json_t *gc = NULL, *b = NULL, *ann;
    struct kf_place_settings s = { 0 };
    struct move_decision md = { 0 };
    const char *reason = NULL;
    struct kf_placer placer;
    char id[32];
    int r;

    if (!unit || !*unit || !bname || !*bname)
        return kf_err(err, -KF_EBADREQUEST,
                      "say where to and from which snapshot: ?unit=UNIT&backup=BACKUP (a move "
                      "restores the cluster's etcd from a backup on the new unit)");
    if (strlen(unit) > KF_NAME_MAX || strlen(bname) > KF_NAME_MAX)
        return kf_err(err, -KF_EBADREQUEST, "unit and backup are names of at most %d characters",
                      KF_NAME_MAX);
    if (kf_registry_get(d->reg, &kf_kind_guestcluster, name, &gc) < 0)
        return kf_err(err, -KF_ENOTFOUND, "guest cluster \"%s\" does not exist", name);
    from = kf_json_str(gc, "status.unit", NULL);
    if ((r = move_target_check(d, gc, unit, err)) < 0)
        goto release_all;
    if (kf_registry_get(d->reg, &kf_kind_backup, bname, &b) < 0) {
        r = kf_err(err, -KF_ENOTFOUND, "backup \"%s\" does not exist", bname);
        goto release_all;
    }
    if (!kf_streq(kf_json_str(b, "spec.cluster", ""), name)) {
        r = kf_err(err, -KF_EINVALID,
                   "backup \"%s\" is a snapshot of cluster \"%s\", not \"%s\"; restore one of "
                   "\"%s\"'s backups",
                   bname, kf_json_str(b, "spec.cluster", ""), name, name);
        goto release_all;
    }
    if ((r = kf_backup_restore_check(d->reg, b, gc, err)) < 0)
        goto release_all;
    if (kf_place_settings(d, gc, &s, &reason, err) < 0) {
        r = -KF_EINVALID;
        goto release_all;
    }
    kf_placer_init(&placer, &d->policy);
    r = move_decide(d, &placer, gc, &s, from, unit, &md);
    kf_placer_release(&placer);
    if (r < 0) {
        r = kf_err(err, -KF_EINVALID, "refused: cluster \"%s\" does not fit on unit %s: %s", name,
                   unit, md.res->message);
        goto release_all;
    }
    snprintf(id, sizeof(id), "%lld", (long long)kf_now_ms());
    ann = json_object();
    json_object_set_new(ann, KF_BACKUP_ANN_RESTORE, json_sprintf("%s %s", id, bname));
    json_object_set_new(ann, KF_MOVE_ANN, json_sprintf("%s %s %s", id, from, unit));
    {
        json_t *patch = json_pack("{s:{s:o}}", "metadata", "annotations", ann);

        r = kf_cap_patch(d->reg, &kf_kind_guestcluster, name, patch, false, NULL, err);
        json_decref(patch);
    }
    if (r < 0)
        goto release_all;
    kf_log_info("cluster \"%s\": move from unit %s to unit %s with a restore from backup \"%s\" "
                "(revision %lld) asked by \"%s\"",
                name, from, unit, bname, (long long)kf_json_int(b, "status.revision", 0),
                call->user ? call->user : "");
    *ret = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:s}", "cluster", name, "from", from, "unit",
                     unit, "backup", bname, "revision",
                     (json_int_t)kf_json_int(b, "status.revision", 0), "restore",
                     json_sprintf("%s %s", id, bname), "decision", md.res->message);
release_all:
    move_decision_release(&md);
    kf_place_settings_release(&s);
    json_decref(b);
    json_decref(gc);
    return r;
}

/* --- the action: POST .../guestclusters/NAME/migrate?unit=U ------------------------- */

/* Whether unit (an object) takes clusters: not cordoned. Its hosts'
 * readiness is judged by the placement decision that follows, from the
 * live model: the Unit's status is a summary the unit-status controller
 * writes up to 5 s after its hosts change, and hosts Ready a moment ago
 * must not be refused as "0 Ready hosts". */
static bool unit_ready(const json_t *u, struct kf_strbuf *why)
{
    if (json_is_true(kf_json_path(u, "spec.cordoned"))) {
        kf_strbuf_addstr(why, "it is cordoned");
        return false;
    }
    return true;
}

/* Another change of the cluster's members under way: 0, or -KF_ECONFLICT
 * with what. */
static int migrate_busy(struct place_ctrl *d, const json_t *gc, struct kf_strbuf *err)
{
    const char *name = kf_obj_name(gc), *phase = kf_json_str(gc, "status.phase", "");
    const json_t *ann = kf_json_path(gc, "metadata.annotations");
    struct kf_move_req m;
    char **names = NULL;
    size_t n;
    int r = 0;

    if (kf_migrate_active(gc, &m))
        return kf_err(err, -KF_ECONFLICT,
                      "cluster \"%s\" is already migrating from unit %s to unit %s (request %s); "
                      "wait for it",
                      name, m.from, m.to, m.id);
    if (json_string_value(json_object_get(ann, KF_BACKUP_ANN_RESTORE))) {
        const char *want = json_string_value(json_object_get(ann, KF_BACKUP_ANN_RESTORE));
        const char *done = json_string_value(json_object_get(ann, KF_BACKUP_ANN_RESTORED));

        if (!done || strncmp(want, done, strlen(done)) != 0 || want[strlen(done)] != ' ')
            return kf_err(err, -KF_ECONFLICT,
                          "cluster \"%s\" is being restored from a backup (%s); migrate it once "
                          "the restore is done",
                          name, want);
    }
    if (strcmp(phase, "Running") != 0)
        return kf_err(err, strcmp(phase, "Upgrading") == 0 ? -KF_ECONFLICT : -KF_EINVALID,
                      "cluster \"%s\" is %s: only a Running cluster migrates live (%s)", name,
                      phase[0] ? phase : "not provisioned",
                      strcmp(phase, "Upgrading") == 0
                          ? "wait until its upgrade is done"
                          : "restore it onto the unit from a backup instead: kfleet restore");
    pthread_mutex_lock(&d->model->lock);
    {
        struct cap_cluster *cc = kf_smap_get(&d->model->clusters, name);

        n = cc ? cc->n_members : 0;
        names = kf_xcalloc(n + 1, sizeof(*names));
        for (size_t i = 0; i < n; i++)
            names[i] = kf_xstrdup(cc->members[i]->name);
    }
    pthread_mutex_unlock(&d->model->lock);
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *mb = kf_informer_get_obj(d->members, names[i]);
        json_t *rec = mb ? kf_replace_record(mb) : NULL;

        if (rec && !kf_streq(json_string_value(json_object_get(rec, "step")), KF_REPLACE_DONE))
            r = kf_err(err, -KF_ECONFLICT,
                       "cluster \"%s\": member %s is being replaced (step %s); migrate it once "
                       "the replacement is done",
                       name, names[i], json_string_value(json_object_get(rec, "step")));
        json_decref(rec);
        json_decref(mb);
    }
    kf_ctrl_names_free(names, n);
    return r;
}

static int migrate_fn(void *arg, const struct kf_api_call *call, json_t **ret,
                      struct kf_strbuf *err)
{
    struct place_ctrl *d = arg;
    const char *unit = call->query ? call->query(call, "unit") : NULL;
    const char *name = call->name, *from;
    struct kf_strbuf why = KF_STRBUF_INIT;
    json_t *gc = NULL, *u = NULL, *patch;
    struct kf_place_settings s = { 0 };
    struct move_decision md = { 0 };
    const char *reason = NULL;
    struct kf_placer placer;
    char id[32];
    int r;

    if (!unit || !*unit)
        return kf_err(err, -KF_EBADREQUEST,
                      "say where to: ?unit=UNIT (a unit of the cluster's region)");
    if (strlen(unit) > KF_NAME_MAX)
        return kf_err(err, -KF_EBADREQUEST, "a unit is a name of at most %d characters",
                      KF_NAME_MAX);
    if (kf_registry_get(d->reg, &kf_kind_guestcluster, name, &gc) < 0)
        return kf_err(err, -KF_ENOTFOUND, "guest cluster \"%s\" does not exist", name);
    from = kf_json_str(gc, "status.unit", NULL);
    if (kf_streq(from, unit)) {
        r = kf_err(err, -KF_EINVALID, "cluster \"%s\" runs on unit %s already", name, unit);
        goto release_all;
    }
    if ((r = move_target_check(d, gc, unit, err)) < 0 || (r = migrate_busy(d, gc, err)) < 0)
        goto release_all;
    if (kf_registry_get(d->reg, &kf_kind_unit, unit, &u) == 0 && !unit_ready(u, &why)) {
        r = kf_err(err, -KF_EINVALID, "refused: unit %s cannot take cluster \"%s\": %s", unit, name,
                   why.buf);
        goto release_all;
    }
    if (kf_place_settings(d, gc, &s, &reason, err) < 0) {
        r = -KF_EINVALID;
        goto release_all;
    }
    kf_placer_init(&placer, &d->policy);
    r = move_decide(d, &placer, gc, &s, from, unit, &md);
    kf_placer_release(&placer);
    if (r < 0) {
        r = kf_err(err, -KF_EINVALID, "refused: cluster \"%s\" does not fit on unit %s: %s", name,
                   unit, md.res->message);
        goto release_all;
    }
    snprintf(id, sizeof(id), "%lld", (long long)kf_now_ms());
    patch = json_pack("{s:{s:{s:o}}}", "metadata", "annotations", KF_MIGRATE_ANN,
                      json_sprintf("%s %s %s", id, from, unit));
    r = kf_cap_patch(d->reg, &kf_kind_guestcluster, name, patch, false, NULL, err);
    json_decref(patch);
    if (r < 0)
        goto release_all;
    kf_log_info("cluster \"%s\": live migration from unit %s to unit %s asked by \"%s\"", name,
                from, unit, call->user ? call->user : "");
    kf_recorder_eventf(d->rec, gc, KF_EVENT_NORMAL, "MigrationStarted",
                       "live migration from unit %s to unit %s asked by %s: %s", from, unit,
                       call->user ? call->user : "?", md.res->message);
    *ret = json_pack("{s:s, s:s, s:s, s:s, s:s}", "cluster", name, "from", from, "unit", unit,
                     "migration", id, "decision", md.res->message);
release_all:
    move_decision_release(&md);
    kf_place_settings_release(&s);
    kf_strbuf_release(&why);
    json_decref(u);
    json_decref(gc);
    return r;
}

void kf_place_move_bind(struct place_ctrl *d)
{
    const struct kf_api_action mg = {
        .method = "POST",
        .kind = &kf_kind_guestcluster,
        .name = "migrate",
        .roles = KF_API_ROLE_ADMIN,
        .fn = migrate_fn,
        .arg = d,
    };
    const struct kf_api_action a = {
        .method = "POST",
        .kind = &kf_kind_guestcluster,
        .name = "move",
        .roles = KF_API_ROLE_ADMIN,
        .fn = move_fn,
        .arg = d,
    };

    if (d->actions) {
        kf_api_actions_add(d->actions, &a);
        kf_api_actions_add(d->actions, &mg);
    }
}

void kf_place_move_unbind(struct place_ctrl *d)
{
    if (d->actions) {
        kf_api_actions_remove(d->actions, "POST", &kf_kind_guestcluster, "move");
        kf_api_actions_remove(d->actions, "POST", &kf_kind_guestcluster, "migrate");
    }
}
