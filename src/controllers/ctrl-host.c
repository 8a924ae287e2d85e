/* ctrl-host.c: the host-lifecycle controller. A Host is Ready while its
 * agent heartbeats; this controller writes that down, and only when it
 * changes.
 *
 * Heartbeats renew leases in memory (kfleet/lease.h, served by the API's
 * heartbeat endpoints); they never reach this controller one by one. It
 * notices transitions two ways:
 *   - a sweep every `sweep_ms` (a reserved reconcile key that cannot be a
 *     Host name) asks the lease table which leases went silent for longer
 *     than the default grace, and checks the hosts it last wrote NotReady
 *     for a fresh heartbeat; both go into the queue;
 *   - each reconcile decides for one host with that host's grace and, when
 *     the answer depends on time (the start-up window, a longer grace),
 *     asks to be looked at again when it would change.
 * Silence is measured from the last heartbeat, but never from before
 * kfleetd started or this replica became the leader (the controller starts
 * with each leader term: heartbeats went to the old leader until then, so
 * no host goes NotReady before a full grace period after a restart or a
 * failover) nor from before the Host was created. Ready, on the other
 * hand, needs a heartbeat within the grace (the lease table also knows
 * heartbeats other replicas reported, some from before this term).
 * A host that has not beaten since start keeps whatever status it had until
 * then.
 *
 * On a transition it patches status.ready, the Ready condition, the times
 * and a message, and records an Event. It deletes and moves nothing: the
 * members of a NotReady host stay bound to it (placement stops putting new
 * ones there, and the unit's capacity drops, which unit-status shows).
 * It also keeps the labels kfleet.io/role, zone and unit / cluster equal to
 * the spec, and status.allocatable / allocated / members equal to the
 * ControlPlaneMembers bound to the host: written five seconds after the
 * last member arrived on any host (and at least every 30 s while they keep
 * arriving), by one reconcile for every host whose members changed
 * (ALLOC_KEY), in store transactions of many hosts, so that a burst of
 * placements costs a host one write and the store one commit per
 * ALLOC_TXN_MAX hosts, and the agents' member reports nothing. A reconcile
 * of the host for anything else (its own events, the sweep, the resync)
 * leaves the allocation to that pending write. A deleted Host's lease is
 * dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "kfleet/capacity.h"
#include "kfleet/controllers.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/lease.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/smap.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-capacity.h"
#include "controllers/ctrl-members.h"

KF_LOG_MODULE(hosts);

/* Not a valid object name (names are DNS subdomains), so never a Host. */
#define SWEEP_KEY "~sweep"
/* The allocation of the hosts in alloc_due is due (their members
 * changed); not a Host name either. */
#define ALLOC_KEY "~alloc"
/* Hosts a transaction (KF_STORE_MAX_TXN_OPS, less one for the fenced
 * handle of a leader on etcd, as placement's). */
#define ALLOC_TXN_MAX 127
/* A host's allocation is written once members stop arriving on it for
 * HOST_FOLD_MS, and at least every HOST_FOLD_MAX_MS while they keep coming:
 * status.allocated is for people (placement reads the capacity model), and
 * a burst that lands members on 3,600 hosts would otherwise cost a store
 * commit per host every second (every five seconds with a fixed delay: two
 * writes a host for a burst of a few seconds; and each write's own Host
 * event used to write the allocation again, members having arrived
 * meanwhile, so a long burst cost a host a write every few seconds). */
#define HOST_FOLD_MS     5000
#define HOST_FOLD_MAX_MS 30000
struct host_ctrl {
    struct kf_ctrl *ctrl;
    struct kf_registry *reg;
    struct kf_lease_table *leases;
    struct kf_recorder *rec;
    struct kf_informer *units, *profiles, *clusters, *hosts;
    struct cap_model *model; /* the capacity controllers' (kf_cap_model_shared): members by host */
    int64_t grace_ms;
    int64_t sweep_ms;
    int64_t started_ms; /* this term: the controller's init */
    pthread_mutex_t lock;
    struct kf_smap waiting;   /* hosts not Ready: a heartbeat is looked for at each sweep */
    struct kf_smap alloc_due; /* hosts whose allocation the ALLOC_KEY reconcile is to write */
    struct kf_smap written;   /* host -> revision of our last write of it (intptr_t) */
};

/* Whether a member's event can change what its host's status counts (its
 * allocation): a member created (no status yet), deleted, or whose spec
 * changed since its agent last reported (generation ahead of
 * status.observedGeneration). The agents' status reports (readiness,
 * restarts) cannot: skipping them is what keeps a busy fleet's hosts from
 * being reconciled once per member report. The resync looks at every host
 * anyway. */
static bool member_moves_host(const json_t *member, bool deleted)
{
    const json_t *observed = kf_json_path(member, "status.observedGeneration");

    return deleted || !kf_json_path(member, "status") || !json_is_integer(observed) ||
           json_integer_value(observed) != kf_obj_generation(member);
}

static void member_to_host(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct host_ctrl *d = kf_ctrl_data(c);
    const char *host = kf_json_str(obj, "spec.host", NULL);
    struct cap_change ch;

    kf_cap_model_apply(d->model, &kf_kind_controlplanemember, obj, deleted, &ch);
    /* the delay folds the members that land on a host (a burst of
     * placements) into one reconcile and at most one write */
    if (host && member_moves_host(obj, deleted)) {
        pthread_mutex_lock(&d->lock);
        if (!kf_smap_contains(&d->alloc_due, host))
            kf_smap_put(&d->alloc_due, host, NULL);
        pthread_mutex_unlock(&d->lock);
        kf_ctrl_enqueue_folded(c, ALLOC_KEY, HOST_FOLD_MS, HOST_FOLD_MAX_MS);
    }
}

static void written_put(struct host_ctrl *d, const char *name, int64_t rev)
{
    pthread_mutex_lock(&d->lock);
    kf_smap_put(&d->written, name, (void *)(intptr_t)rev);
    pthread_mutex_unlock(&d->lock);
}

/* The controller's primary map (kf_ctrl_ops.primary_map): a Host's event
 * queues the host, unless it is our own write coming back (the revision we
 * wrote): its reconcile would find what that write left, labels and
 * readiness as written (a heartbeat's arrival or silence since is the
 * sweep's to notice) and any newer allocation pending under ALLOC_KEY. It
 * was half of a burst's host reconciles, each one reading the host. */
static void map_host(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct host_ctrl *d = kf_ctrl_data(c);
    const char *name = kf_obj_name(obj);
    bool own = false;

    if (!name)
        return;
    /* one-shot: the entry goes with the host's next event, so the map
     * holds the hosts written since their last event, not every host */
    pthread_mutex_lock(&d->lock);
    own = !deleted && kf_smap_contains(&d->written, name) &&
          (int64_t)(intptr_t)kf_smap_get(&d->written, name) == kf_obj_rv(obj);
    kf_smap_remove(&d->written, name);
    pthread_mutex_unlock(&d->lock);
    if (!own)
        kf_ctrl_enqueue(c, name);
}

static int setup(struct kf_ctrl *c)
{
    struct host_ctrl *d = kf_ctrl_data(c);
    struct kf_ctrl_manager *m = kf_ctrl_manager_of(c);
    int r;

    d->ctrl = c;
    d->model = kf_cap_model_shared(c);
    d->units = kf_ctrl_informer(m, &kf_kind_unit);
    d->hosts = kf_ctrl_primary(c);
    d->profiles = kf_ctrl_informer(m, &kf_kind_profile);
    d->clusters = kf_ctrl_informer(m, &kf_kind_guestcluster);
    r = kf_ctrl_members_informer(m, NULL);
    if (r == 0)
        r = kf_ctrl_watch(c, &kf_kind_controlplanemember, member_to_host);
    if (r < 0)
        return r;
    kf_ctrl_enqueue_after(c, SWEEP_KEY, d->sweep_ms);
    return 0;
}

/* The longest grace of the profiles this host serves (never below the
 * default): meta hosts of units offering a profile's required unit
 * features, worker hosts of a profile's clusters. */
static int64_t host_grace(struct host_ctrl *d, const json_t *host)
{
    int64_t grace = d->grace_ms;
    const char *unit = kf_json_str(host, "spec.unit", NULL);
    const char *cluster = kf_json_str(host, "spec.cluster", NULL);
    json_t *owner = NULL;

    if (unit && kf_informer_get(d->units, unit, &owner) == 0) {
        json_t *features = kf_json_path(owner, "spec.features");
        char **names = NULL;
        size_t n = json_array_size(features) ? kf_informer_names(d->profiles, &names) : 0;

        for (size_t i = 0; i < n; i++) {
            json_t *p = NULL, *need, *f;
            size_t j;

            if (kf_informer_get(d->profiles, names[i], &p) < 0)
                continue;
            need = kf_json_path(p, "spec.hosting.unitFeatures");
            json_array_foreach(need, j, f) if (kf_cap_str_in(features, json_string_value(f)))
            {
                grace = KF_MAX(grace, kf_cap_profile_grace_ms(p));
                break;
            }
            json_decref(p);
        }
        kf_ctrl_names_free(names, n);
    } else if (cluster && kf_informer_get(d->clusters, cluster, &owner) == 0) {
        const char *profile = kf_json_str(owner, "status.effective.profile",
                                          kf_json_str(owner, "spec.profile", "standard"));
        json_t *p = NULL;

        if (kf_informer_get(d->profiles, profile, &p) == 0) {
            grace = KF_MAX(grace, kf_cap_profile_grace_ms(p));
            json_decref(p);
        }
    }
    json_decref(owner);
    return grace;
}

/* status.allocatable, allocated and members from the spec and the members
 * bound to the host (new reference, an object of those three). The
 * members' sum comes from the capacity model (which keeps each host's
 * allocation as members come and go) instead of parsing every member of
 * the host at each reconcile: a host of a busy unit has hundreds. */
static json_t *host_allocation(struct host_ctrl *d, const json_t *host, const char *name)
{
    struct kf_res cap = kf_cap_res_parse(kf_json_path(host, "spec.capacity"));
    struct kf_res res = kf_cap_res_parse(kf_json_path(host, "spec.reserved"));
    struct kf_res used = { 0, 0 };
    struct cap_host *h;
    unsigned n = 0;

    pthread_mutex_lock(&d->model->lock);
    h = kf_smap_get(&d->model->hosts, name);
    if (h) {
        used = h->allocated;
        n = h->members;
    }
    pthread_mutex_unlock(&d->model->lock);
    cap.cpu_milli = KF_MAX(cap.cpu_milli - res.cpu_milli, 0);
    cap.mem_bytes = KF_MAX(cap.mem_bytes - res.mem_bytes, 0);
    return json_pack("{s:o, s:o, s:I}", "allocatable", kf_cap_res_json(cap), "allocated",
                     kf_cap_res_json(used), "members", (json_int_t)n);
}

/* The labels the spec implies (new reference). */
static json_t *wanted_labels(const json_t *host)
{
    json_t *l = json_object();
    const char *role = kf_json_str(host, "spec.role", NULL);
    const char *zone = kf_json_str(host, "spec.zone", NULL);
    const char *unit = kf_json_str(host, "spec.unit", NULL);
    const char *cluster = kf_json_str(host, "spec.cluster", NULL);

    if (role)
        json_object_set_new(l, KF_LABEL_ROLE, json_string(role));
    if (zone)
        json_object_set_new(l, KF_LABEL_ZONE, json_string(zone));
    if (unit)
        json_object_set_new(l, KF_LABEL_UNIT, json_string(unit));
    if (cluster && strlen(cluster) <= 63)
        json_object_set_new(l, KF_LABEL_CLUSTER, json_string(cluster));
    return l;
}

static int sync_labels(struct host_ctrl *d, const json_t *host, const char *name)
{
    json_t *want = wanted_labels(host), *have = kf_json_path(host, "metadata.labels");
    json_t *patch_labels = json_object(), *v;
    const char *key;
    int r = 0;

    json_object_foreach(want, key, v) if (!json_equal(json_object_get(have, key), v))
        json_object_set(patch_labels, key, v);
    /* a label of ours whose spec field is gone (cannot happen: immutable) stays */
    if (json_object_size(patch_labels)) {
        json_t *patch = json_pack("{s:{s:O}}", "metadata", "labels", patch_labels);
        struct kf_strbuf err = KF_STRBUF_INIT;
        int64_t rev = 0;

        r = kf_cap_patch(d->reg, &kf_kind_host, name, patch, false, &rev, &err);
        if (r == 0)
            written_put(d, name, rev);
        else if (r != -KF_ENOTFOUND)
            kf_log_rl_warn("cannot label host \"%s\": %s; retrying", name, err.buf);
        kf_strbuf_release(&err);
        json_decref(patch);
    }
    json_decref(patch_labels);
    json_decref(want);
    return r == -KF_ENOTFOUND ? 0 : r;
}

static void waiting_set(struct host_ctrl *d, const char *name, bool waiting)
{
    pthread_mutex_lock(&d->lock);
    if (waiting && !kf_smap_contains(&d->waiting, name))
        kf_smap_put(&d->waiting, name, NULL);
    else if (!waiting)
        kf_smap_remove(&d->waiting, name);
    pthread_mutex_unlock(&d->lock);
}

/* Whether host's allocation is left to a pending ALLOC_KEY reconcile;
 * take: that reconcile is running, it is no longer pending. */
static bool alloc_due(struct host_ctrl *d, const char *host, bool take)
{
    bool due;

    pthread_mutex_lock(&d->lock);
    due = kf_smap_contains(&d->alloc_due, host);
    if (due && take)
        kf_smap_remove(&d->alloc_due, host);
    pthread_mutex_unlock(&d->lock);
    return due;
}

static void sweep(struct host_ctrl *d)
{
    int64_t now = kf_now_ms();
    char **names = NULL, **back = NULL;
    size_t n = kf_lease_expire(d->leases, now, d->grace_ms, &names), nb = 0, it = 0;
    const char *key;

    for (size_t i = 0; i < n; i++)
        kf_ctrl_enqueue(d->ctrl, names[i]);
    kf_lease_names_free(names, n);
    pthread_mutex_lock(&d->lock);
    back = kf_xcalloc(kf_smap_count(&d->waiting) + 1, sizeof(*back));
    while (kf_smap_next(&d->waiting, &it, &key, NULL))
        if (kf_lease_alive(d->leases, key, now, d->grace_ms))
            back[nb++] = kf_xstrdup(key);
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < nb; i++) {
        kf_ctrl_enqueue(d->ctrl, back[i]);
        free(back[i]);
    }
    free(back);
}

static void fmt_secs(struct kf_strbuf *sb, int64_t ms)
{
    int64_t s = (ms + 500) / 1000;

    if (ms < 10000)
        kf_strbuf_addf(sb, "%.1fs", (double)ms / 1000);
    else if (s < 120)
        kf_strbuf_addf(sb, "%llds", (long long)s);
    else if (s < 7200)
        kf_strbuf_addf(sb, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    else
        kf_strbuf_addf(sb, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
}

/* What the heartbeats say of a host now. */
struct readiness {
    int64_t now, grace, started, last, created, since;
    bool ready;                 /* a heartbeat within the grace */
    bool determined;            /* ready, or silent for the grace since `since` */
    bool have_ready, cur_ready; /* status.ready as it is */
};

/* Ready needs a heartbeat within the grace; NotReady needs silence for
 * the grace counted from `since`. Between the two (a heartbeat older
 * than the grace, but the term or the Host younger than it) the status
 * stays as it is: a replica whose lease table is warm (it learned
 * other replicas' renewals before it became the leader) knows old
 * heartbeats, and one of those must not turn a NotReady host Ready. */
static void host_readiness(struct host_ctrl *d, const json_t *host, const char *name,
                           struct readiness *rd)
{
    const char *ct = kf_json_str(host, "metadata.creationTimestamp", NULL);
    const json_t *status = kf_json_path(host, "status");

    rd->now = kf_now_ms();
    rd->last = kf_lease_last(d->leases, name);
    /* a heartbeat within the default grace is within the host's own (never
     * shorter): the longer grace, which reads the profiles, only matters
     * for a host that has been silent longer than the default */
    rd->grace =
        rd->last > 0 && rd->now - rd->last <= d->grace_ms ? d->grace_ms : host_grace(d, host);
    rd->started = KF_MAX(kf_lease_table_started_ms(d->leases), d->started_ms);
    rd->created = 0;
    if (ct)
        kf_time_parse_rfc3339(ct, &rd->created);
    rd->since = KF_MAX(KF_MAX(rd->last, rd->started), rd->created);
    rd->ready = rd->last > 0 && rd->now - rd->last <= rd->grace;
    rd->determined = rd->ready || rd->now - rd->since > rd->grace;
    rd->have_ready = json_is_boolean(json_object_get(status, "ready"));
    rd->cur_ready = json_is_true(json_object_get(status, "ready"));
}

/* Why the host turns Ready or NotReady, into msg. */
static void readiness_message(const struct readiness *rd, const json_t *status, bool members_there,
                              struct kf_strbuf *msg)
{
    if (rd->ready) {
        const char *t = kf_json_str(status, "lastTransitionTime", NULL);
        int64_t t_ms;

        kf_strbuf_addstr(msg, "heartbeats arrive");
        if (rd->have_ready && t && kf_time_parse_rfc3339(t, &t_ms) == 0 && rd->now > t_ms) {
            kf_strbuf_addstr(msg, " again after ");
            fmt_secs(msg, rd->now - t_ms);
            kf_strbuf_addstr(msg, " NotReady");
        }
        return;
    }
    kf_strbuf_addstr(msg, "no heartbeat for ");
    fmt_secs(msg, rd->now - (rd->last > 0 ? KF_MAX(rd->last, rd->created) : rd->since));
    kf_strbuf_addstr(msg, " (grace ");
    fmt_secs(msg, rd->grace);
    kf_strbuf_addstr(msg, ")");
    if (rd->last <= 0)
        kf_strbuf_addstr(msg, rd->created > rd->started ? " since the Host was created"
                                                        : " since kfleetd started");
    if (members_there)
        kf_strbuf_addstr(msg, "; its members stay where they are");
}

/* The status fields of a Ready transition, into patch. */
static void readiness_patch(const json_t *host, const struct readiness *rd, const char *msg,
                            json_t *patch)
{
    const json_t *status = kf_json_path(host, "status");
    char when[32], beat[32];
    json_t *cond, *conds = json_array();

    kf_cap_now_rfc3339(rd->now, when);
    cond = kf_cap_condition(json_object_get(status, "conditions"), "Ready", rd->ready,
                            rd->ready      ? "HeartbeatReceived"
                            : rd->last > 0 ? "HeartbeatMissed"
                                           : "NoHeartbeat",
                            msg, rd->now);
    json_array_append_new(conds, cond);
    json_object_set_new(patch, "ready", json_boolean(rd->ready));
    json_object_set_new(patch, "lastTransitionTime", json_string(when));
    if (rd->last > 0) {
        kf_cap_now_rfc3339(rd->last, beat);
        json_object_set_new(patch, "lastHeartbeatTime", json_string(beat));
    }
    json_object_set_new(patch, "message", rd->ready ? json_null() : json_string(msg));
    json_object_set_new(patch, "conditions", conds);
    json_object_set_new(patch, "observedGeneration", json_integer(kf_obj_generation(host)));
}

/* Writes the status patch, if any, and says a Ready transition (msg not empty). */
static int write_host_status(struct host_ctrl *d, const json_t *host, const char *name,
                             json_t *patch, bool ready, const struct kf_strbuf *msg)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int64_t rev = 0;
    json_t *p;
    int r;

    if (!json_object_size(patch))
        return 0;
    p = json_pack("{s:O}", "status", patch);
    r = kf_cap_patch(d->reg, &kf_kind_host, name, p, true, &rev, &err);
    json_decref(p);
    if (r == 0)
        written_put(d, name, rev);
    if (r == -KF_ENOTFOUND) {
        r = 0;
    } else if (r < 0) {
        kf_log_rl_warn("cannot write the status of host \"%s\": %s; retrying", name, err.buf);
    } else if (msg->len) {
        kf_log_info("host \"%s\" is %s: %s", name, ready ? "Ready" : "NotReady", msg->buf);
        kf_recorder_event(d->rec, host, ready ? KF_EVENT_NORMAL : KF_EVENT_WARNING,
                          ready ? "HostReady" : "HostNotReady", msg->buf);
    }
    kf_strbuf_release(&err);
    return r;
}

/* The host's allocation (unless with_alloc is false) and, when the
 * heartbeats decide it, its readiness: written when they changed. */
static int reconcile_host(struct host_ctrl *d, const json_t *host, const char *name,
                          bool with_alloc, int64_t *requeue_after_ms)
{
    const json_t *status = kf_json_path(host, "status");
    struct kf_strbuf msg = KF_STRBUF_INIT;
    struct readiness rd;
    json_t *patch = json_object(), *alloc, *v;
    const char *key;
    int r;

    host_readiness(d, host, name, &rd);
    alloc = host_allocation(d, host, name);
    if (with_alloc) {
        json_object_foreach(alloc, key, v) if (!json_equal(json_object_get(status, key), v))
            json_object_set(patch, key, v);
    }
    if (rd.determined && (!rd.have_ready || rd.cur_ready != rd.ready)) {
        readiness_message(&rd, status, json_integer_value(json_object_get(alloc, "members")) > 0,
                          &msg);
        readiness_patch(host, &rd, msg.buf, patch);
    }
    r = write_host_status(d, host, name, patch, rd.ready, &msg);
    json_decref(alloc);
    json_decref(patch);
    kf_strbuf_release(&msg);
    if (r < 0)
        return r;
    waiting_set(d, name, !(rd.determined ? rd.ready : rd.cur_ready));
    if (!rd.determined)
        *requeue_after_ms = rd.since + rd.grace - rd.now + 1; /* the start-up window ends */
    else if (rd.ready && rd.grace > d->grace_ms && rd.now - rd.last > d->grace_ms)
        *requeue_after_ms = rd.since + rd.grace - rd.now + 1; /* a longer grace than the sweep's */
    return 0;
}

static void alloc_due_again(struct host_ctrl *d, const char *name)
{
    pthread_mutex_lock(&d->lock);
    if (!kf_smap_contains(&d->alloc_due, name))
        kf_smap_put(&d->alloc_due, name, NULL);
    pthread_mutex_unlock(&d->lock);
}

/* Writes the allocation of k hosts (objs: each host as read, its status
 * changed; names: theirs) in one transaction. When the store refuses it (a
 * host changed since it was read, a transaction too large for etcd), each
 * host is written alone as it is now, its readiness too. Frees objs and
 * names. Returns 0 or the error of a host written alone, which is due
 * again. */
static int alloc_write(struct host_ctrl *d, json_t **objs, char **names, size_t k)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    int rb =
        kf_registry_update_batch(d->reg, &kf_kind_host, objs, k, true, NULL, NULL, &causes, &err);
    int r = 0;

    for (size_t i = 0; i < k; i++) {
        json_t *host = NULL;
        int64_t ignored = 0; /* the host's own reconciles follow its time */
        int rh;

        if (rb == 0) {
            written_put(d, names[i], kf_obj_rv(objs[i]));
        } else if (kf_informer_get(d->hosts, names[i], &host) == 0) {
            rh = reconcile_host(d, host, names[i], true, &ignored);
            if (rh < 0)
                alloc_due_again(d, names[i]);
            if (rh < 0 && r == 0)
                r = rh;
        }
        json_decref(host);
        json_decref(objs[i]);
        free(names[i]);
    }
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return r;
}

/* The reconcile of ALLOC_KEY: the allocation of every host in alloc_due,
 * ALLOC_TXN_MAX hosts a transaction, those that changed. Retried with
 * back-off for the hosts that could not be written. */
static int reconcile_alloc(struct host_ctrl *d)
{
    struct kf_smap due;
    json_t *objs[ALLOC_TXN_MAX];
    char *names[ALLOC_TXN_MAX];
    size_t k = 0, it = 0;
    const char *name;
    int r = 0;

    /* taken before the model is read: a member arriving from now on makes
     * its host due again */
    pthread_mutex_lock(&d->lock);
    due = d->alloc_due;
    kf_smap_init(&d->alloc_due);
    pthread_mutex_unlock(&d->lock);
    while (kf_smap_next(&due, &it, &name, NULL)) {
        json_t *host = NULL, *alloc, *status, *v;
        const char *key;
        bool changed = false;
        int rw;

        if (kf_informer_get(d->hosts, name, &host) < 0)
            continue;
        alloc = host_allocation(d, host, name);
        status = json_object_get(host, "status");
        if (!json_is_object(status)) {
            status = json_object();
            json_object_set_new(host, "status", status);
        }
        json_object_foreach(alloc, key, v) if (!json_equal(json_object_get(status, key), v))
        {
            json_object_set(status, key, v);
            changed = true;
        }
        json_decref(alloc);
        if (!changed) {
            json_decref(host);
            continue;
        }
        objs[k] = host;
        names[k++] = kf_xstrdup(name);
        if (k == ALLOC_TXN_MAX) {
            rw = alloc_write(d, objs, names, k);
            r = r < 0 ? r : rw;
            k = 0;
        }
    }
    if (k) {
        int rw = alloc_write(d, objs, names, k);

        r = r < 0 ? r : rw;
    }
    kf_smap_release(&due);
    return r;
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue_after_ms)
{
    struct host_ctrl *d = kf_ctrl_data(c);
    json_t *host = NULL;
    int r;

    if (strcmp(name, SWEEP_KEY) == 0) {
        sweep(d);
        *requeue_after_ms = d->sweep_ms;
        return 0;
    }
    if (strcmp(name, ALLOC_KEY) == 0)
        return reconcile_alloc(d);
    if (kf_informer_get(kf_ctrl_primary(c), name, &host) < 0) {
        kf_lease_forget(d->leases, name);
        waiting_set(d, name, false);
        return 0;
    }
    r = sync_labels(d, host, name);
    if (r == 0)
        r = reconcile_host(d, host, name, !alloc_due(d, name, false), requeue_after_ms);
    json_decref(host);
    return r;
}

const struct kf_ctrl_ops kf_ctrl_host_ops = {
    .name = "host-lifecycle",
    .primary_kind = "Host",
    .workers = 2,
    .setup = setup,
    .reconcile = reconcile,
    .resync_ms = 5 * 60 * 1000,
    .primary_map = map_host,
};

int kf_ctrl_host_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct kf_capacity_options dflt;
    const struct kf_capacity_options *o = env->capacity;
    struct host_ctrl *d;

    if (!env->leases)
        return kf_err(err, -EINVAL, "the host controller needs the lease table");
    if (!o) {
        kf_capacity_options_default(&dflt);
        o = &dflt;
    }
    d = kf_xcalloc(1, sizeof(*d));
    d->reg = env->reg;
    d->leases = env->leases;
    d->rec = kf_recorder_new(env->reg, "host-lifecycle");
    d->grace_ms = o->host_grace_ms > 0 ? o->host_grace_ms : KF_CAPACITY_HOST_GRACE_MS;
    d->sweep_ms = KF_MAX(KF_MIN(d->grace_ms / 4, 1000), 20);
    d->started_ms = kf_now_ms();
    pthread_mutex_init(&d->lock, NULL);
    *ret = d;
    return 0;
}

void kf_ctrl_host_fini(void *data)
{
    struct host_ctrl *d = data;

    if (!d)
        return;
    kf_recorder_free(d->rec);
    kf_smap_release(&d->waiting);
    kf_smap_release(&d->alloc_due);
    kf_smap_release(&d->written);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
