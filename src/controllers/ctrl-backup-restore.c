/* ctrl-backup-restore.c: restores of guest clusters from their Backups
 * (kfleet/backup.h, docs/internals/backups.md), the part of the backup
 * controller that brings a cluster back from a snapshot.
 *
 * The action POST .../backups/NAME/restore?cluster=C (admin only) checks
 * what can be checked before anything stops: the Backup is Succeeded and
 * of cluster C, taken in C's region into a location of that region (a
 * backup of another region is refused), and the file's sha256 is the one
 * recorded (a corrupted snapshot is refused, nothing is touched). It then
 * marks the cluster with "<id> <backup>" (KF_BACKUP_ANN_RESTORE).
 * kf_backup_restore_step, run by every reconcile of that cluster:
 *   1. annotates each etcd member with "<id> <path> <sha256>": its agent
 *      stops it, checks the file again, replaces its data with `etcdctl
 *      snapshot restore` (a new member set: new member and cluster IDs,
 *      the keys at the backup's revision) and starts it;
 *   2. once every etcd member runs again (Ready, started since the
 *      restore was asked), annotates every other member with "<id>": its
 *      agent restarts it once, so apiservers drop their caches of the
 *      newer revisions and controllers list again;
 *   3. once they are Ready again, records id as done (KF_BACKUP_ANN_RESTORED).
 * Progress for people is in KF_BACKUP_ANN_RESTORE_PROGRESS.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kfleet/api-action.h"
#include "kfleet/backup.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/file.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-backup.h"
#include "controllers/ctrl-capacity.h"
#include "controllers/ctrl-members.h"

KF_LOG_MODULE(backup);

static const char *annotation(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(kf_json_path(obj, "metadata.annotations"), key));
}

static int annotate(struct kf_registry *reg, const struct kf_kind *k, const char *name,
                    const char *key, const char *value)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *p = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", key, value);
    char *text = json_dumps(p, JSON_COMPACT);
    int r = kf_registry_patch(reg, k, name, KF_PATCH_MERGE, text, strlen(text), false, NULL,
                              &causes, &err);

    if (r < 0 && r != -KF_ENOTFOUND)
        kf_log_rl_warn("cannot annotate %s \"%s\": %s; retrying", k->singular, name,
                       err.len ? err.buf : strerror(-r));
    free(text);
    json_decref(p);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return r == -KF_ENOTFOUND ? 0 : r;
}

int kf_backup_restore_check(struct kf_registry *reg, const json_t *b, const json_t *gc,
                            struct kf_strbuf *err)
{
    const char *region = kf_json_str(gc, "spec.region", "");
    const char *path = kf_json_str(b, "status.path", NULL),
               *sum = kf_json_str(b, "status.checksum", "");
    json_t *loc = NULL;
    char have[80];
    int r;

    if (strcmp(kf_json_str(b, "status.phase", "Pending"), "Succeeded") != 0)
        return kf_err(err, -KF_EINVALID,
                      "backup \"%s\" is %s: only a verified (Succeeded) snapshot is restored",
                      kf_obj_name(b), kf_json_str(b, "status.phase", "Pending"));
    if (strcmp(kf_json_str(b, "status.region", ""), region) != 0 ||
        kf_registry_get(reg, &kf_kind_backuplocation, kf_json_str(b, "status.location", ""), &loc) <
            0 ||
        strcmp(kf_json_str(loc, "spec.region", ""), region) != 0) {
        json_decref(loc);
        return kf_err(err, -KF_EINVALID,
                      "refused: backup \"%s\" was taken in region \"%s\" (location \"%s\"); "
                      "cluster \"%s\" is in region \"%s\": a restore never moves data across "
                      "regions",
                      kf_obj_name(b), kf_json_str(b, "status.region", ""),
                      kf_json_str(b, "status.location", ""), kf_obj_name(gc), region);
    }
    json_decref(loc);
    if (!path || (r = kf_file_sha256(path, have, NULL)) < 0)
        return kf_err(err, -KF_EINVALID, "the snapshot file \"%s\" of backup \"%s\" cannot be read",
                      path ? path : "", kf_obj_name(b));
    if (strcmp(have, sum) != 0)
        return kf_err(err, -KF_EINVALID,
                      "the snapshot \"%s\" of backup \"%s\" is corrupted (%s, recorded %s); it is "
                      "not used: restore another backup",
                      path, kf_obj_name(b), have, sum);
    return 0;
}

static int restore_fn(void *arg, const struct kf_api_call *call, json_t **ret,
                      struct kf_strbuf *err)
{
    struct kf_backup_ctrl *d = arg;
    const char *cluster = call->query ? call->query(call, "cluster") : NULL;
    json_t *b = NULL, *gc = NULL;
    char value[320];
    int r;

    if (!cluster || !*cluster)
        return kf_err(err, -KF_EBADREQUEST, "say which cluster: ?cluster=NAME");
    if (kf_registry_get(d->reg, &kf_kind_backup, call->name, &b) < 0)
        return kf_err(err, -KF_ENOTFOUND, "backup \"%s\" does not exist", call->name);
    if (strcmp(kf_json_str(b, "spec.cluster", ""), cluster) != 0) {
        r = kf_err(err, -KF_EINVALID,
                   "backup \"%s\" is a snapshot of cluster \"%s\", not \"%.63s\"; restore one of "
                   "\"%.63s\"'s backups",
                   call->name, kf_json_str(b, "spec.cluster", ""), cluster, cluster);
        goto free_backup;
    }
    if (kf_registry_get(d->reg, &kf_kind_guestcluster, cluster, &gc) < 0) {
        r = kf_err(err, -KF_ENOTFOUND, "guest cluster \"%s\" does not exist", cluster);
        goto free_backup;
    }
    r = kf_backup_restore_check(d->reg, b, gc, err);
    if (r < 0)
        goto free_cluster;
    snprintf(value, sizeof(value), "%lld %s", (long long)kf_now_ms(), call->name);
    r = annotate(d->reg, &kf_kind_guestcluster, cluster, KF_BACKUP_ANN_RESTORE, value);
    if (r < 0) {
        kf_err(err, r, "cannot mark cluster \"%s\" for the restore: %s", cluster, strerror(-r));
        goto free_cluster;
    }
    kf_log_info("cluster \"%s\": restore from backup \"%s\" (revision %lld) asked by \"%s\"",
                cluster, call->name, (long long)kf_json_int(b, "status.revision", 0),
                call->user ? call->user : "");
    *ret = json_pack("{s:s, s:s, s:I, s:s}", "cluster", cluster, "backup", call->name, "revision",
                     (json_int_t)kf_json_int(b, "status.revision", 0), "restore", value);
free_cluster:
    json_decref(gc);
free_backup:
    json_decref(b);
    return r;
}

int kf_backup_add_actions(struct kf_backup_ctrl *d, const struct kf_api_actions *actions,
                          struct kf_strbuf *err)
{
    const struct kf_api_action a = { "POST",     &kf_kind_backup,
                                     "restore",  KF_API_ROLE_ADMIN,
                                     restore_fn, d };
    int r;

    if (!actions)
        return 0;
    r = kf_api_actions_add(actions, &a);
    if (r < 0)
        return kf_err(err, r, "cannot add the action \"restore\": %s", strerror(-r));
    return 0;
}

/* Whether member m runs again since since_ms (second resolution). */
static bool back_since(const json_t *m, int64_t since_ms)
{
    int64_t started = 0;

    kf_time_parse_rfc3339(kf_json_str(m, "status.startedAt", ""), &started);
    return json_is_true(kf_json_path(m, "status.ready")) && started >= since_ms / 1000 * 1000;
}

/* One pass over the members: etcd ones get `restore`, then the others
 * `restart`; counts what is back. */
static int converge(struct kf_backup_ctrl *d, const char *cluster, const char *id,
                    const char *restore, int64_t since, int *etcd_back, int *n_etcd,
                    int *others_back, int *n_others)
{
    char **names = NULL;
    size_t n = kf_informer_index_names(d->members, KF_MEMBERS_BY_CLUSTER, cluster, &names);
    int r = 0;

    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n && r == 0; i++) {
            json_t *m = NULL;
            bool etcd;

            if (kf_informer_get(d->members, names[i], &m) < 0)
                continue;
            etcd = !strcmp(kf_json_str(m, "spec.component", ""), "etcd");
            if (pass == 0 && etcd) {
                (*n_etcd)++;
                if (!kf_streq(annotation(m, KF_BACKUP_ANN_MEMBER_RESTORE), restore))
                    r = annotate(d->reg, &kf_kind_controlplanemember, names[i],
                                 KF_BACKUP_ANN_MEMBER_RESTORE, restore);
                else if (back_since(m, since))
                    (*etcd_back)++;
            } else if (pass == 1 && !etcd) {
                int64_t created = 0;

                (*n_others)++;
                kf_time_parse_rfc3339(kf_json_str(m, "metadata.creationTimestamp", ""), &created);
                if (*etcd_back < *n_etcd)
                    ; /* not before etcd is back */
                else if (created >= since / 1000 * 1000) {
                    /* made for this restore (a move to another unit): it never
                     * saw the old data, nothing to restart */
                    if (back_since(m, since))
                        (*others_back)++;
                } else if (!kf_streq(annotation(m, KF_BACKUP_ANN_MEMBER_RESTART), id))
                    r = annotate(d->reg, &kf_kind_controlplanemember, names[i],
                                 KF_BACKUP_ANN_MEMBER_RESTART, id);
                else if (back_since(m, since))
                    (*others_back)++;
            }
            json_decref(m);
        }
    }
    kf_ctrl_names_free(names, n);
    return r;
}

/* How many members the cluster's shape has (status.effective.components):
 * etcd ones (at least 1) and the others. */
static void shape_members(const json_t *gc, int *ret_etcd, int *ret_others)
{
    const json_t *comps = kf_json_path(gc, "status.effective.components"), *c;
    size_t i;

    *ret_etcd = 1;
    *ret_others = 0;
    json_array_foreach(comps, i, c)
    {
        json_int_t n = kf_json_int(c, "replicas", 1);

        n = n < 0 ? 0 : n > 64 ? 64 : n;
        if (kf_streq(kf_json_str(c, "name", NULL), "etcd"))
            *ret_etcd = (int)(n > 0 ? n : 1);
        else
            *ret_others += (int)n;
    }
}

int kf_backup_restore_step(struct kf_backup_ctrl *d, const json_t *gc, int64_t *requeue_ms)
{
    const char *req = annotation(gc, KF_BACKUP_ANN_RESTORE);
    const char *done = annotation(gc, KF_BACKUP_ANN_RESTORED);
    char id[32], bname[254], restore[2400], progress[800];
    int etcd_back = 0, n_etcd = 0, others_back = 0, n_others = 0, want_etcd, want_others, r;
    struct kf_move_req move = { .id = "" };
    json_t *b = NULL;

    if (!req || sscanf(req, "%31s %253s", id, bname) != 2 || kf_streq(done, id))
        return 0;
    if (kf_move_parse(annotation(gc, KF_MOVE_ANN), &move) == 0 && strcmp(move.id, id) == 0 &&
        !kf_streq(annotation(gc, KF_MOVE_ANN_DONE), id) &&
        kf_streq(kf_json_str(gc, "status.unit", ""), move.from)) {
        /* the placement controller moves it first (ctrl-placement-move.c);
         * the old members are not restored */
        *requeue_ms = 1000;
        snprintf(progress, sizeof(progress), "moving off unit %s (%s)", move.from,
                 kf_json_str(kf_cap_condition_find(kf_json_path(gc, "status.conditions"),
                                                   KF_MOVE_CONDITION),
                             "message", "waiting for placement"));
        if (!kf_streq(annotation(gc, KF_BACKUP_ANN_RESTORE_PROGRESS), progress))
            return annotate(d->reg, &kf_kind_guestcluster, kf_obj_name(gc),
                            KF_BACKUP_ANN_RESTORE_PROGRESS, progress);
        return 0;
    }
    if (kf_informer_get(d->backups, bname, &b) < 0) {
        kf_log_warn("cluster \"%s\": backup \"%s\" is gone; its restore is given up",
                    kf_obj_name(gc), bname);
        kf_recorder_eventf(d->rec, gc, KF_EVENT_WARNING, "RestoreAbandoned",
                           "backup %s is gone: the restore %s is given up", bname, id);
        return annotate(d->reg, &kf_kind_guestcluster, kf_obj_name(gc), KF_BACKUP_ANN_RESTORED, id);
    }
    if (!kf_streq(annotation(gc, KF_BACKUP_ANN_RESTORE_STARTED), id)) {
        r = annotate(d->reg, &kf_kind_guestcluster, kf_obj_name(gc), KF_BACKUP_ANN_RESTORE_STARTED,
                     id);
        if (r < 0)
            goto free_backup;
        kf_recorder_eventf(d->rec, gc, KF_EVENT_NORMAL, "RestoreStarted",
                           "restoring etcd from backup %s (revision %lld, taken %s)%s%s", bname,
                           (long long)kf_json_int(b, "status.revision", 0),
                           kf_json_str(b, "status.completionTime",
                                       kf_json_str(b, "metadata.creationTimestamp", "?")),
                           kf_streq(move.id, id) ? " on unit " : "",
                           kf_streq(move.id, id) ? kf_json_str(gc, "status.unit", "") : "");
    }
    snprintf(restore, sizeof(restore), "%s %s %s", id, kf_json_str(b, "status.path", ""),
             kf_json_str(b, "status.checksum", ""));
    r = converge(d, kf_obj_name(gc), id, restore, strtoll(id, NULL, 10), &etcd_back, &n_etcd,
                 &others_back, &n_others);
    if (r < 0)
        goto free_backup;
    *requeue_ms = 1000;
    /* every member the cluster's shape has, not only those the informer
     * has seen so far: right after a move's status write the cluster is on
     * its new unit and its new members are being created (none, or some) */
    shape_members(gc, &want_etcd, &want_others);
    if (n_etcd >= want_etcd && n_others >= want_others && etcd_back == n_etcd &&
        others_back == n_others) {
        kf_log_info("cluster \"%s\": restored from backup \"%s\" (revision %lld): %d etcd "
                    "members from the snapshot, %d other members back",
                    kf_obj_name(gc), bname, (long long)kf_json_int(b, "status.revision", 0), n_etcd,
                    n_others);
        snprintf(progress, sizeof(progress), "done: restored from %s at revision %lld", bname,
                 (long long)kf_json_int(b, "status.revision", 0));
        r = annotate(d->reg, &kf_kind_guestcluster, kf_obj_name(gc), KF_BACKUP_ANN_RESTORE_PROGRESS,
                     progress);
        if (r == 0)
            r = annotate(d->reg, &kf_kind_guestcluster, kf_obj_name(gc), KF_BACKUP_ANN_RESTORED,
                         id);
        if (r == 0)
            kf_recorder_eventf(d->rec, gc, KF_EVENT_NORMAL, "Restored",
                               "restored from backup %s at revision %lld%s%s: %d etcd members "
                               "from the snapshot, %d other members back",
                               bname, (long long)kf_json_int(b, "status.revision", 0),
                               kf_streq(move.id, id) ? " on unit " : "",
                               kf_streq(move.id, id) ? kf_json_str(gc, "status.unit", "") : "",
                               n_etcd, n_others);
        goto free_backup;
    }
    snprintf(progress, sizeof(progress), "etcd members restored %d/%d, members restarted %d/%d",
             etcd_back, n_etcd, others_back, n_others);
    if (!kf_streq(annotation(gc, KF_BACKUP_ANN_RESTORE_PROGRESS), progress))
        r = annotate(d->reg, &kf_kind_guestcluster, kf_obj_name(gc), KF_BACKUP_ANN_RESTORE_PROGRESS,
                     progress);
free_backup:
    json_decref(b);
    return r;
}
