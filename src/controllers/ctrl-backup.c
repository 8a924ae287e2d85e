/* ctrl-backup.c: the backup controller (kfleet/backup.h,
 * docs/internals/backups.md).
 *
 * One reconcile per GuestCluster name looks at the cluster and every
 * Backup whose spec.cluster names it (the Backup, BackupLocation and
 * ControlPlaneMember informers map to the cluster), and:
 *   1. removes the snapshot file of a deleted Backup, then its finalizer;
 *   2. puts the finalizer on a new Backup, then assigns a Pending one: the location (spec.location, else the
 *      first of the cluster's region, by name, that carries every
 *      compliance tag of the cluster; a named one of another region or
 *      lacking a tag is refused: Failed), a Ready etcd member and its host,
 *      the member's client URL and the file's path; the host's agent then
 *      takes it (agent-backup.c). No location or no Ready member: stays
 *      Pending with the reason, looked at again later;
 *   3. fails a Running Backup that has not ended in KF_BACKUP_TIMEOUT_MS;
 *   4. schedules: a Running cluster whose effective backup is enabled gets
 *      a new Backup when its newest one was created interval + jitter ago
 *      (jitter: up to a tenth of the interval, at most 5 minutes, fixed per
 *      cluster and slot so that clusters created together spread out); the
 *      first one comes within the jitter of the cluster being Running;
 *   5. retention: of the Succeeded Backups the newest backup.retain are
 *      kept, and of those none older than the location's retention.maxAge
 *      but the newest; of the Failed ones the newest KF_BACKUP_FAILED_KEPT.
 * Everything is recomputed from the objects each time (level-triggered);
 * a resync every 30 s brings the schedule back after a restart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kfleet/backup.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-backup.h"
#include "controllers/ctrl-members.h"

KF_LOG_MODULE(backup);

#define BY_CLUSTER_BK       "bk.cluster" /* Backups by spec.cluster */
#define MEMBER_COALESCE_MS  200          /* a cluster's member events, folded */
#define RESYNC_MS           30000
#define PENDING_RETRY       10000
#define JITTER_MAX_MS       (5 * 60 * 1000)
#define DEFAULT_INTERVAL_MS (6 * 3600 * 1000LL)

/* What one reconcile found among a cluster's Backups. */
struct seen {
    json_t **ok; /* Succeeded, newest first after sorting */
    size_t n_ok;
    json_t **failed;
    size_t n_failed;
    bool busy;          /* one is Pending or Running */
    int64_t newest_ms;  /* creation of the newest (0: none) */
    int64_t requeue_ms; /* look again after this (0: no need) */
};

static void index_cluster(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *c = kf_json_str(obj, "spec.cluster", NULL);

    if (c)
        add(c, ctx);
}

static void to_cluster(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    const char *cl = kf_json_str(obj, "spec.cluster", NULL);

    (void)deleted;
    if (cl)
        kf_ctrl_enqueue(c, cl);
}

/* A member's events queue its cluster 200 ms later, the earliest pending
 * time winning: the ten-odd members placement creates for a cluster in
 * one transaction (and their agents' first reports) cost the cluster one
 * reconcile, not one each (five a placed cluster during a burst). What a
 * member can change here (a Ready etcd member to take a backup from, a
 * restore's progress) does not need less. */
static void member_to_cluster(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    const char *cl = kf_json_str(obj, "spec.cluster", NULL);

    (void)deleted;
    if (cl)
        kf_ctrl_enqueue_after(c, cl, MEMBER_COALESCE_MS);
}

static void location_to_clusters(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct kf_backup_ctrl *d = kf_ctrl_data(c);
    char **names = NULL;
    size_t n = kf_informer_names(d->clusters, &names);

    (void)obj;
    (void)deleted;
    for (size_t i = 0; i < n; i++)
        kf_ctrl_enqueue(c, names[i]);
    kf_ctrl_names_free(names, n);
}

static int setup(struct kf_ctrl *c)
{
    struct kf_backup_ctrl *d = kf_ctrl_data(c);
    struct kf_ctrl_manager *m = kf_ctrl_manager_of(c);
    int r;

    d->clusters = kf_ctrl_informer(m, &kf_kind_guestcluster);
    d->backups = kf_ctrl_informer(m, &kf_kind_backup);
    d->locations = kf_ctrl_informer(m, &kf_kind_backuplocation);
    r = kf_informer_add_index(d->backups, BY_CLUSTER_BK, index_cluster);
    if (r < 0 && r != -EEXIST)
        return r;
    r = kf_ctrl_members_informer(m, &d->members);
    if (r < 0)
        return r;
    r = kf_ctrl_watch(c, &kf_kind_backup, to_cluster);
    if (r == 0)
        r = kf_ctrl_watch(c, &kf_kind_controlplanemember, member_to_cluster);
    if (r == 0)
        r = kf_ctrl_watch(c, &kf_kind_backuplocation, location_to_clusters);
    return r;
}

static int64_t created_ms(const json_t *obj)
{
    int64_t ms = 0;

    kf_time_parse_rfc3339(kf_json_str(obj, "metadata.creationTimestamp", ""), &ms);
    return ms;
}

static void now_text(char buf[32])
{
    kf_time_format_rfc3339(kf_now_ms(), buf, 32);
}

/* Writes obj's status (obj is changed and borrowed). */
static int write_status(struct kf_backup_ctrl *d, json_t *obj, json_t *status)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r;

    json_object_set_new(obj, "status", status);
    r = kf_registry_update(d->reg, &kf_kind_backup, obj, true, NULL, &causes, &err);
    if (r < 0 && r != -KF_ECONFLICT && r != -KF_ENOTFOUND)
        kf_log_rl_warn("backup \"%s\": cannot write its status: %s; retrying", kf_obj_name(obj),
                       err.len ? err.buf : strerror(-r));
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return r == -KF_ENOTFOUND ? 0 : r;
}

static int json_patch(struct kf_backup_ctrl *d, const char *name, json_t *ops)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *text = json_dumps(ops, JSON_COMPACT);
    int r = kf_registry_patch(d->reg, &kf_kind_backup, name, KF_PATCH_JSON, text, strlen(text),
                              false, NULL, &causes, &err);

    if (r < 0 && r != -KF_ENOTFOUND)
        kf_log_rl_warn("backup \"%s\": cannot change its finalizers: %s; retrying", name,
                       err.len ? err.buf : strerror(-r));
    free(text);
    json_decref(ops);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return r == -KF_ENOTFOUND ? 0 : r;
}

static int add_finalizer(struct kf_backup_ctrl *d, const json_t *obj)
{
    if (kf_obj_has_finalizer(obj, KF_BACKUP_FINALIZER))
        return 0;
    if (json_is_array(kf_json_path(obj, "metadata.finalizers")))
        return json_patch(d, kf_obj_name(obj),
                          json_pack("[{s:s, s:s, s:s}]", "op", "add", "path",
                                    "/metadata/finalizers/-", "value", KF_BACKUP_FINALIZER));
    return json_patch(d, kf_obj_name(obj),
                      json_pack("[{s:s, s:s, s:[s]}]", "op", "add", "path", "/metadata/finalizers",
                                "value", KF_BACKUP_FINALIZER));
}

/* A deleted Backup: its file goes, then the finalizer. */
static int finish_delete(struct kf_backup_ctrl *d, const json_t *obj)
{
    const char *path = kf_json_str(obj, "status.path", NULL);
    const json_t *fins = kf_json_path(obj, "metadata.finalizers"), *v;
    size_t i;

    char *tail = kf_xasprintf("/%s/%s.db", kf_json_str(obj, "spec.cluster", ""), kf_obj_name(obj));
    bool ours = path && path[0] == '/' && !strstr(path, "/../") && kf_str_has_suffix(path, tail);

    free(tail);
    if (!kf_obj_has_finalizer(obj, KF_BACKUP_FINALIZER))
        return 0;
    if (path && !ours) {
        /* only a file this Backup's name says is its own is removed */
        kf_log_rl_warn("backup \"%s\": \"%s\" is not <location>/<cluster>/<backup>.db; left "
                       "as it is",
                       kf_obj_name(obj), path);
        path = NULL;
    }
    if (path && unlink(path) < 0 && errno != ENOENT) {
        kf_log_rl_warn("backup \"%s\": cannot remove \"%s\": %s; trying again", kf_obj_name(obj),
                       path, strerror(errno));
        return -errno;
    }
    if (path)
        kf_log_info("backup \"%s\": removed its snapshot \"%s\"", kf_obj_name(obj), path);
    json_array_foreach(fins, i, v)
    {
        if (kf_streq(json_string_value(v), KF_BACKUP_FINALIZER)) {
            char p[64];

            snprintf(p, sizeof(p), "/metadata/finalizers/%zu", i);
            return json_patch(d, kf_obj_name(obj),
                              json_pack("[{s:s, s:s, s:s}, {s:s, s:s}]", "op", "test", "path", p,
                                        "value", KF_BACKUP_FINALIZER, "op", "remove", "path", p));
        }
    }
    return 0;
}

/* Whether every compliance tag of the cluster is among the location's. */
static bool tags_cover(const json_t *loc, const json_t *gc)
{
    const json_t *need = kf_json_path(gc, "spec.compliance"), *have, *t, *h;
    size_t i, j;

    have = kf_json_path(loc, "spec.complianceTags");
    json_array_foreach(need, i, t)
    {
        bool found = false;

        json_array_foreach(have, j, h) found = found || json_equal(t, h);
        if (!found)
            return false;
    }
    return true;
}

/* The location for a backup of gc (new reference) or NULL with why. A
 * named location that may not hold this cluster's data is *refused. */
static json_t *pick_location(struct kf_backup_ctrl *d, const json_t *gc, const json_t *b,
                             bool *refused, struct kf_strbuf *why)
{
    const char *region = kf_json_str(gc, "spec.region", "");
    const char *named = kf_json_str(b, "spec.location", NULL);
    json_t *loc = NULL;
    char **names = NULL;
    size_t n;

    *refused = false;
    if (named) {
        if (kf_informer_get(d->locations, named, &loc) < 0) {
            kf_strbuf_addf(why, "BackupLocation \"%s\" does not exist", named);
            return NULL;
        }
        if (strcmp(kf_json_str(loc, "spec.region", ""), region) != 0 || !tags_cover(loc, gc)) {
            kf_strbuf_addf(why,
                           "BackupLocation \"%s\" is in region \"%s\" or lacks a compliance tag "
                           "of cluster \"%s\" (region \"%s\"): a cluster's data stays in its "
                           "region; name a location of \"%s\" or leave spec.location out",
                           named, kf_json_str(loc, "spec.region", ""), kf_obj_name(gc), region,
                           region);
            json_decref(loc);
            *refused = true;
            return NULL;
        }
        return loc;
    }
    n = kf_informer_names(d->locations, &names);
    for (size_t i = 0; i < n && !loc; i++) {
        json_t *l = NULL;

        if (kf_informer_get(d->locations, names[i], &l) < 0)
            continue;
        if (!strcmp(kf_json_str(l, "spec.region", ""), region) && tags_cover(l, gc))
            loc = l;
        else
            json_decref(l);
    }
    kf_ctrl_names_free(names, n);
    if (!loc)
        kf_strbuf_addf(why,
                       "no BackupLocation of region \"%s\" carries the compliance tags of "
                       "cluster \"%s\": create one (kind BackupLocation, spec.region \"%s\")",
                       region, kf_obj_name(gc), region);
    return loc;
}

/* The client URL a member advertises (from its etcd argv), or NULL. */
static const char *client_url(const json_t *m)
{
    const json_t *args = kf_json_path(m, "spec.args"), *v;
    static const char flag[] = "--advertise-client-urls=";
    size_t i;

    json_array_foreach(args, i, v)
    {
        const char *s = json_string_value(v);

        if (s && kf_str_has_prefix(s, flag) && !strchr(s + sizeof(flag) - 1, ','))
            return s + sizeof(flag) - 1;
    }
    return NULL;
}

/* A Ready etcd member of the cluster (new reference), or NULL. */
static json_t *pick_member(struct kf_backup_ctrl *d, const char *cluster)
{
    char **names = NULL;
    size_t n = kf_informer_index_names(d->members, KF_MEMBERS_BY_CLUSTER, cluster, &names);
    json_t *pick = NULL;

    for (size_t i = 0; i < n && !pick; i++) {
        json_t *m = NULL;

        if (kf_informer_get(d->members, names[i], &m) < 0)
            continue;
        if (!strcmp(kf_json_str(m, "spec.component", ""), "etcd") && !kf_obj_deleting(m) &&
            !strcmp(kf_json_str(m, "status.phase", ""), "Ready") &&
            json_is_true(kf_json_path(m, "status.ready")) && kf_json_str(m, "spec.host", NULL) &&
            client_url(m))
            pick = m;
        else
            json_decref(m);
    }
    kf_ctrl_names_free(names, n);
    return pick;
}

static json_t *pending_status(const json_t *b, const char *phase, const char *reason,
                              const char *msg)
{
    json_t *st = json_deep_copy(kf_json_path(b, "status"));

    if (!json_is_object(st)) {
        json_decref(st);
        st = json_object();
    }
    json_object_set_new(st, "phase", json_string(phase));
    json_object_set_new(st, "reason", json_string(reason));
    json_object_set_new(st, "message", json_string(msg));
    if (!strcmp(phase, "Failed")) {
        char now[32];

        now_text(now);
        json_object_set_new(st, "completionTime", json_string(now));
    }
    return st;
}

/* Writes a Pending/Failed status unless it says so already. */
static int set_waiting(struct kf_backup_ctrl *d, json_t *b, const char *phase, const char *reason,
                       const char *msg)
{
    if (!strcmp(kf_json_str(b, "status.phase", "Pending"), phase) &&
        !strcmp(kf_json_str(b, "status.reason", ""), reason) &&
        !strcmp(kf_json_str(b, "status.message", ""), msg))
        return 0;
    kf_log_info("backup \"%s\": %s: %s", kf_obj_name(b), phase, msg);
    return write_status(d, b, pending_status(b, phase, reason, msg));
}

/* A Pending Backup: a location and a member, or the reason why not. */
static int assign(struct kf_backup_ctrl *d, const json_t *gc, json_t *b, struct seen *s)
{
    struct kf_strbuf why = KF_STRBUF_INIT;
    bool refused = false;
    json_t *loc = NULL, *m = NULL;
    char *path = NULL, now[32];
    int r;

    s->busy = true;
    if (!gc) {
        r = set_waiting(d, b, "Failed", "NoCluster", "the cluster does not exist");
        goto free_why;
    }
    loc = pick_location(d, gc, b, &refused, &why);
    if (!loc) {
        r = set_waiting(d, b, refused ? "Failed" : "Pending", refused ? "Refused" : "NoLocation",
                        why.buf);
        s->requeue_ms = PENDING_RETRY;
        goto free_why;
    }
    m = pick_member(d, kf_obj_name(gc));
    if (!m) {
        r = set_waiting(d, b, "Pending", "NoReadyMember",
                        "waiting for a Ready etcd member of the cluster to take the snapshot from");
        s->requeue_ms = PENDING_RETRY;
        goto free_loc;
    }
    path = kf_xasprintf("%s/%s/%s.db", kf_json_str(loc, "spec.path", ""), kf_obj_name(gc),
                        kf_obj_name(b));
    now_text(now);
    kf_log_info("backup \"%s\": taken by host \"%s\" from member \"%s\" into \"%s\"",
                kf_obj_name(b), kf_json_str(m, "spec.host", ""), kf_obj_name(m), path);
    r = write_status(d, b,
                     json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "phase", "Running",
                               "message", "taking the snapshot", "region",
                               kf_json_str(gc, "spec.region", ""), "location", kf_obj_name(loc),
                               "path", path, "host", kf_json_str(m, "spec.host", ""), "member",
                               kf_obj_name(m), "endpoint", client_url(m), "startTime", now));
    s->requeue_ms = PENDING_RETRY;
    free(path);
    json_decref(m);
free_loc:
    json_decref(loc);
free_why:
    kf_strbuf_release(&why);
    return r;
}

/* The cluster's backup setting key: its own spec first (newer than the
 * effective settings the placement controller writes), then the
 * effective one (template, profile); NULL: the schema's default. */
static const json_t *setting(const json_t *gc, const char *key)
{
    const json_t *v = json_object_get(kf_json_path(gc, "spec.backup"), key);

    return v ? v : json_object_get(kf_json_path(gc, "status.effective.backup"), key);
}

static int64_t jitter_ms(const char *cluster, int64_t slot, int64_t interval_ms)
{
    uint64_t h = 1469598103934665603ULL;
    int64_t span = interval_ms / 10 < JITTER_MAX_MS ? interval_ms / 10 : JITTER_MAX_MS;

    for (const char *p = cluster; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ (uint64_t)slot) * 1099511628211ULL;
    return span > 0 ? (int64_t)(h % (uint64_t)span) : 0;
}

/* Records the Event of a Backup that ended (BackupSucceeded, BackupFailed),
 * once: the annotation KF_BACKUP_ANN_REPORTED remembers it across restarts. */
static int report(struct kf_backup_ctrl *d, const json_t *gc, const json_t *b, const char *phase)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *p =
        json_pack("{s:{s:{s:s}}}", "metadata", "annotations", KF_BACKUP_ANN_REPORTED, phase);
    char *text = json_dumps(p, JSON_COMPACT);
    int r = kf_registry_patch(d->reg, &kf_kind_backup, kf_obj_name(b), KF_PATCH_MERGE, text,
                              strlen(text), false, NULL, &causes, &err);

    if (r < 0 && r != -KF_ENOTFOUND)
        kf_log_rl_warn("backup \"%s\": cannot annotate it: %s; retrying", kf_obj_name(b),
                       err.len ? err.buf : strerror(-r));
    free(text);
    json_decref(p);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    if (r < 0)
        return r;
    if (!strcmp(phase, "Succeeded"))
        kf_recorder_eventf(
            d->rec, b, KF_EVENT_NORMAL, "BackupSucceeded",
            "snapshot of cluster %s at revision %lld: %lld bytes, %s, in %s",
            kf_json_str(b, "spec.cluster", ""), (long long)kf_json_int(b, "status.revision", 0),
            (long long)kf_json_int(b, "status.size", 0), kf_json_str(b, "status.checksum", ""),
            kf_json_str(b, "status.path", ""));
    else
        kf_recorder_eventf(d->rec, gc ? gc : b, KF_EVENT_WARNING, "BackupFailed",
                           "backup %s of cluster %s failed (%s): %s", kf_obj_name(b),
                           kf_json_str(b, "spec.cluster", ""), kf_json_str(b, "status.reason", ""),
                           kf_json_str(b, "status.message", ""));
    return 0;
}

/* Looks at one Backup of the cluster (gc may be NULL: gone). */
static int look_at(struct kf_backup_ctrl *d, const json_t *gc, json_t *b, struct seen *s)
{
    const char *phase = kf_json_str(b, "status.phase", "Pending");
    int64_t created = created_ms(b), started = 0;

    if (kf_obj_deleting(b))
        return finish_delete(d, b);
    if (!kf_obj_has_finalizer(b, KF_BACKUP_FINALIZER)) {
        /* first the finalizer (its event brings the Backup back here) */
        s->busy = true;
        return add_finalizer(d, b);
    }
    if (created > s->newest_ms)
        s->newest_ms = created;
    if (!strcmp(phase, "Pending"))
        return assign(d, gc, b, s);
    if (!strcmp(phase, "Running")) {
        s->busy = true;
        kf_time_parse_rfc3339(kf_json_str(b, "status.startTime", ""), &started);
        if (started && kf_now_ms() - started > KF_BACKUP_TIMEOUT_MS)
            return set_waiting(d, b, "Failed", "Timeout",
                               "the host did not finish the snapshot in 15 minutes");
        s->requeue_ms = PENDING_RETRY;
        return 0;
    }
    if (!kf_streq(json_string_value(json_object_get(kf_json_path(b, "metadata.annotations"),
                                                    KF_BACKUP_ANN_REPORTED)),
                  phase)) {
        int r = report(d, gc, b, phase);

        if (r < 0)
            return r;
    }
    if (!strcmp(phase, "Succeeded")) {
        s->ok = kf_xrealloc(s->ok, (s->n_ok + 1) * sizeof(*s->ok));
        s->ok[s->n_ok++] = json_incref(b);
    } else {
        s->failed = kf_xrealloc(s->failed, (s->n_failed + 1) * sizeof(*s->failed));
        s->failed[s->n_failed++] = json_incref(b);
    }
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    int64_t x = created_ms(*(json_t *const *)a), y = created_ms(*(json_t *const *)b);

    if (x != y)
        return x > y ? -1 : 1;
    return -strcmp(kf_obj_name(*(json_t *const *)a), kf_obj_name(*(json_t *const *)b));
}

static int delete_backup(struct kf_backup_ctrl *d, const json_t *b, const char *why)
{
    int r = kf_registry_delete(d->reg, &kf_kind_backup, kf_obj_name(b), kf_obj_rv(b), NULL, NULL);

    if (r == 0)
        kf_log_info("backup \"%s\": deleted (%s)", kf_obj_name(b), why);
    return r == -KF_ENOTFOUND || r == -KF_ECONFLICT ? 0 : r;
}

/* Keeps retain Succeeded backups, none older than the location's maxAge
 * but the newest, and KF_BACKUP_FAILED_KEPT Failed ones. */
static int retain(struct kf_backup_ctrl *d, const json_t *gc, struct seen *s)
{
    const json_t *rv = setting(gc, "retain");
    int64_t keep = json_is_integer(rv) ? json_integer_value(rv) : 7;
    int r = 0;

    if (s->n_ok) /* qsort wants an array, even of none */
        qsort(s->ok, s->n_ok, sizeof(*s->ok), newest_first);
    if (s->n_failed)
        qsort(s->failed, s->n_failed, sizeof(*s->failed), newest_first);
    for (size_t i = 0; i < s->n_ok && r == 0; i++) {
        json_t *loc = NULL;
        int64_t max_age = 0;

        if ((int64_t)i >= keep) {
            r = delete_backup(d, s->ok[i], "more than backup.retain");
            continue;
        }
        if (i == 0 ||
            kf_informer_get(d->locations, kf_json_str(s->ok[i], "status.location", ""), &loc) < 0)
            continue;
        if (!kf_parse_duration_ms(kf_json_str(loc, "spec.retention.maxAge", ""), &max_age) &&
            max_age > 0 && kf_now_ms() - created_ms(s->ok[i]) > max_age)
            r = delete_backup(d, s->ok[i], "older than the location's retention.maxAge");
        json_decref(loc);
    }
    for (size_t i = KF_BACKUP_FAILED_KEPT; i < s->n_failed && r == 0; i++)
        r = delete_backup(d, s->failed[i], "an older failed backup");
    return r;
}

/* A new Backup when the newest is interval + jitter old. */
static int schedule(struct kf_backup_ctrl *d, const json_t *gc, struct seen *s, int64_t *requeue)
{
    const json_t *iv = setting(gc, "interval");
    int64_t interval = DEFAULT_INTERVAL_MS, now = kf_now_ms(), due;
    char name[128], stamp[32];
    json_t *obj;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r;

    if (json_is_false(setting(gc, "enabled")) || s->busy ||
        strcmp(kf_json_str(gc, "status.phase", ""), "Running") != 0)
        return 0;
    if (!json_is_string(iv) || kf_parse_duration_ms(json_string_value(iv), &interval) < 0 ||
        interval <= 0)
        interval = DEFAULT_INTERVAL_MS;
    due = s->newest_ms ? s->newest_ms + interval +
                             jitter_ms(kf_obj_name(gc), s->newest_ms / interval, interval)
                       : created_ms(gc) + jitter_ms(kf_obj_name(gc), 0, interval);
    if (due > now) {
        *requeue = due - now;
        return 0;
    }
    kf_time_format_rfc3339(now, stamp, sizeof(stamp));
    /* "2026-01-02T15:04:05Z" -> "20260102-150405" */
    snprintf(name, sizeof(name), "%s-%.4s%.2s%.2s-%.2s%.2s%.2s", kf_obj_name(gc), stamp, stamp + 5,
             stamp + 8, stamp + 11, stamp + 14, stamp + 17);
    obj = json_pack("{s:s, s:s, s:{s:s, s:{s:s}, s:{s:s}}, s:{s:s}}", "apiVersion", "kfleet.io/v1",
                    "kind", "Backup", "metadata", "name", name, "labels", KF_BACKUP_LABEL_CLUSTER,
                    kf_obj_name(gc), "annotations", KF_BACKUP_ANN_TRIGGER, "scheduled", "spec",
                    "cluster", kf_obj_name(gc));
    r = kf_registry_create(d->reg, &kf_kind_backup, obj, NULL, &causes, &err);
    if (r == 0)
        kf_log_info("cluster \"%s\": scheduled backup \"%s\" (every %lld s)", kf_obj_name(gc), name,
                    (long long)(interval / 1000));
    else if (r != -KF_EEXISTS)
        kf_log_rl_warn("cluster \"%s\": cannot create backup \"%s\": %s; retrying", kf_obj_name(gc),
                       name, err.len ? err.buf : strerror(-r));
    json_decref(obj);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return r == -KF_EEXISTS ? 0 : r;
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue_after_ms)
{
    struct kf_backup_ctrl *d = kf_ctrl_data(c);
    json_t *gc = NULL;
    char **names = NULL;
    size_t n = kf_informer_index_names(d->backups, BY_CLUSTER_BK, name, &names);
    struct seen s = { 0 };
    int r = 0, r1;
    int64_t requeue = 0;

    if (kf_informer_get(d->clusters, name, &gc) < 0)
        gc = NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *b = NULL;

        if (kf_informer_get(d->backups, names[i], &b) < 0)
            continue;
        r1 = look_at(d, gc, b, &s);
        if (r1 < 0 && r == 0)
            r = r1;
        json_decref(b);
    }
    kf_ctrl_names_free(names, n);
    if (gc && r == 0)
        r = kf_backup_restore_step(d, gc, &s.requeue_ms);
    if (gc && r == 0)
        r = retain(d, gc, &s);
    if (gc && r == 0)
        r = schedule(d, gc, &s, &requeue);
    if (s.requeue_ms && (!requeue || s.requeue_ms < requeue))
        requeue = s.requeue_ms;
    if (requeue > 0)
        *requeue_after_ms = requeue;
    for (size_t i = 0; i < s.n_ok; i++)
        json_decref(s.ok[i]);
    for (size_t i = 0; i < s.n_failed; i++)
        json_decref(s.failed[i]);
    free(s.ok);
    free(s.failed);
    json_decref(gc);
    return r;
}

const struct kf_ctrl_ops kf_ctrl_backup_ops = {
    .name = "backup",
    .primary_kind = "GuestCluster",
    .workers = 1,
    .setup = setup,
    .reconcile = reconcile,
    .resync_ms = RESYNC_MS,
};

int kf_ctrl_backup_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct kf_backup_ctrl *d = kf_xcalloc(1, sizeof(*d));

    d->reg = env->reg;
    d->rec = kf_recorder_new(env->reg, "backup");
    *ret = d;
    return kf_backup_add_actions(d, env->actions, err);
}

void kf_ctrl_backup_fini(void *data)
{
    struct kf_backup_ctrl *d = data;

    if (d)
        kf_recorder_free(d->rec);
    free(data);
}
