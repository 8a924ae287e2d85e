/* ctrl-placement.c: the placement controller. A GuestCluster gets its
 * grade, its effective settings, a unit, IP ranges and its control-plane
 * members; a cluster that cannot be placed stays Pending with the reason.
 *
 * One reconcile of a cluster, level-triggered and safe to repeat:
 *
 *   0. wait until the informers have seen this controller's own last
 *      writes (read-your-writes), so the capacity model is never behind
 *      what we decided;
 *   1. gone: delete its members and release its ranges (if the finalizer
 *      was removed by hand); being deleted: the same, then drop the
 *      finalizer kfleet.io/placement;
 *   2. effective settings (template + profile + spec); a missing template
 *      or profile, an unsupported version: Pending with that reason;
 *   3. not placed yet: grade from the grade table (an explicit grade
 *      wins), the control-plane shape, kf_place over the units of its
 *      region (filters, scores, member binding). No unit: Pending with the
 *      library's message (which names the best candidate and why), retried
 *      when a unit, host or region of that region changes. A unit: IP
 *      ranges allocated, then one write of the finalizer and the status
 *      (phase Scheduled, unit, grade, network, effective, members), then
 *      the members, created bound to their hosts. New clusters go in
 *      batches: decided against one snapshot of the model, written many
 *      to a store transaction (see "placing a batch" below);
 *   4. placed: a grade change with hysteresis and a fleet-wide limit
 *      (kf_grade_shift_*), checked against the unit's headroom with the
 *      existing members pinned; members kept in step with the shape; the
 *      ranges grown when expectedNodes grows; status refreshed.
 *
 * Everything the decisions read comes from the capacity model
 * (ctrl-capacity-model.c) that this controller's informer handlers keep; one
 * worker decides, so decisions never race each other. explain and plan
 * (ctrl-placement-api.c) read the same model under its lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/api-action.h"
#include "kfleet/capacity.h"
#include "kfleet/cidr.h"
#include "kfleet/controllers.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-placement.h"
#include "controllers/ctrl-members.h"

KF_LOG_MODULE(placement);

#define WAKE_MS           200         /* coalescing of capacity events */
#define BARRIER_MS        5000        /* how long a reconcile waits for its own writes */
#define RETRY_MS          (30 * 1000) /* a grade change or members that could not go on */
#define TEMPLATE_INDEX    "cap.template"
#define PROFILE_INDEX     "cap.profile"
#define VPC_INDEX         "cap.vpc"
#define CLUSTER_VPC_INDEX "cap.cluster-vpc"

struct shift_cand {
    int current, target;
    int64_t since_ms;
};

/* --- events ------------------------------------------------------------------ */

/* Queues the Pending clusters of region (NULL: every region), and offers
 * them to the next batch (`retry`): the first of them to be reconciled
 * decides the others with it, against one snapshot of the units, and their
 * own queue entries find them decided (just_placed). A batch that took a
 * cluster before a wake does not mark it decided (`wakes`). */
static void wake_pending(struct place_ctrl *d, const char *region)
{
    size_t it = 0;
    const char *name;
    void *v;

    pthread_mutex_lock(&d->lock);
    d->wakes++;
    while (kf_smap_next(&d->pending, &it, &name, &v))
        if (!region || kf_streq(region, v)) {
            kf_smap_remove(&d->just_placed, name);
            if (!kf_smap_contains(&d->retry, name))
                kf_smap_put(&d->retry, name, NULL);
            kf_ctrl_enqueue_after(d->ctrl, name, WAKE_MS);
        }
    pthread_mutex_unlock(&d->lock);
}

static void wake_candidates(struct place_ctrl *d)
{
    size_t it = 0;
    const char *name;

    pthread_mutex_lock(&d->lock);
    while (kf_smap_next(&d->candidates, &it, &name, NULL))
        kf_ctrl_enqueue_after(d->ctrl, name, WAKE_MS);
    pthread_mutex_unlock(&d->lock);
}

/* Pending clusters of the regions an event touched are worth another try
 * when it changed what placement reads (a host Ready or schedulable again,
 * a unit's spec, capacity freed), not for the status writes of units and
 * hosts that every placement causes. */
static void after_change(struct place_ctrl *d, const struct cap_change *ch)
{
    if (!ch->placement_input)
        return;
    if (ch->region[0])
        wake_pending(d, ch->region);
    for (size_t i = 0; i < ch->n_units; i++) {
        struct cap_unit *u;
        char *region = NULL;

        pthread_mutex_lock(&d->model->lock);
        u = kf_smap_get(&d->model->units, ch->units[i]);
        if (u && u->spec)
            region = kf_xstrdup(kf_json_str(u->spec, "region", ""));
        pthread_mutex_unlock(&d->model->lock);
        if (region)
            wake_pending(d, region);
        free(region);
    }
}

#define MAP_FN(fn, kind)                                               \
    static void fn(struct kf_ctrl *c, const json_t *obj, bool deleted) \
    {                                                                  \
        struct place_ctrl *d = kf_ctrl_data(c);                        \
        struct cap_change ch;                                          \
                                                                       \
        kf_cap_model_apply(d->model, &kind, obj, deleted, &ch);        \
        after_change(d, &ch);                                          \
    }
MAP_FN(map_region, kf_kind_region)
MAP_FN(map_unit, kf_kind_unit)
MAP_FN(map_host, kf_kind_host)

static void map_member(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct place_ctrl *d = kf_ctrl_data(c);
    struct cap_change ch;

    kf_cap_model_apply(d->model, &kf_kind_controlplanemember, obj, deleted, &ch);
    if (ch.cluster[0]) /* its members' count and readiness */
        kf_ctrl_enqueue_after(c, ch.cluster, WAKE_MS);
    if (deleted)
        after_change(d, &ch);
}

/* New clusters (never decided: no unit, no Scheduled condition) are
 * remembered for the next batch; any other state forgets them. */
static void fresh_note(struct place_ctrl *d, const json_t *obj, bool deleted)
{
    const char *name = kf_obj_name(obj);
    bool fresh = !deleted && !kf_obj_deleting(obj) && !kf_json_path(obj, "status.unit") &&
                 !kf_cap_condition_find(kf_json_path(obj, "status.conditions"), "Scheduled");

    if (!name)
        return;
    pthread_mutex_lock(&d->lock);
    if (fresh && !kf_smap_contains(&d->fresh, name))
        kf_smap_put(&d->fresh, name, NULL);
    else if (!fresh)
        kf_smap_remove(&d->fresh, name);
    pthread_mutex_unlock(&d->lock);
}

/* Clusters a batch decided, with the revision it wrote (placed: members
 * created too; Pending: the reason written, or already there): their next
 * reconcile, which their queue entry makes right after (the event of our
 * write, or a wake that put them in `retry`), has nothing to do while the
 * cluster is still at that revision. One-shot: the entry goes at that
 * reconcile, when the cluster goes, or when a wake asks for another try. */
static void just_placed_put(struct place_ctrl *d, const char *name, int64_t rev)
{
    pthread_mutex_lock(&d->lock);
    kf_smap_put(&d->just_placed, name, (void *)(intptr_t)rev);
    pthread_mutex_unlock(&d->lock);
}

static bool just_placed_take(struct place_ctrl *d, const char *name, int64_t rev)
{
    bool same = false;

    pthread_mutex_lock(&d->lock);
    if (kf_smap_contains(&d->just_placed, name)) {
        same = (int64_t)(intptr_t)kf_smap_get(&d->just_placed, name) == rev;
        kf_smap_remove(&d->just_placed, name);
    }
    pthread_mutex_unlock(&d->lock);
    return same;
}

static void map_cluster(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct place_ctrl *d = kf_ctrl_data(c);
    struct cap_change ch;
    bool changing;

    kf_cap_model_apply(d->model, &kf_kind_guestcluster, obj, deleted, &ch);
    changing = !deleted &&
               kf_cap_condition_find(kf_json_path(obj, "status.conditions"), "GradeChanging") &&
               kf_streq(kf_json_str(kf_cap_condition_find(kf_json_path(obj, "status.conditions"),
                                                          "GradeChanging"),
                                    "status", NULL),
                        "True");
    if (ch.was_grade_changing && !changing)
        wake_candidates(d); /* a slot for the next grade change */
    if (deleted || kf_obj_deleting(obj))
        after_change(d, &ch);
    fresh_note(d, obj, deleted);
    if (deleted) {
        just_placed_take(d, kf_obj_name(obj), 0);
        pthread_mutex_lock(&d->lock);
        kf_smap_remove(&d->retry, kf_obj_name(obj));
        pthread_mutex_unlock(&d->lock);
    }
}

static void map_pool(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct place_ctrl *d = kf_ctrl_data(c);

    if (kf_place_ipam_event(d, obj, deleted)) /* not our own write: ranges may be free */
        wake_pending(d, NULL);
}

static void enqueue_index(struct kf_ctrl *c, struct kf_informer *inf, const char *index,
                          const char *value)
{
    char **names;
    size_t n = kf_informer_index_names(inf, index, value, &names);

    for (size_t i = 0; i < n; i++)
        kf_ctrl_enqueue(c, names[i]);
    kf_ctrl_names_free(names, n);
}

static void map_template(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct place_ctrl *d = kf_ctrl_data(c);

    (void)deleted;
    enqueue_index(c, d->clusters, TEMPLATE_INDEX, kf_obj_name(obj));
}

static void map_profile(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct place_ctrl *d = kf_ctrl_data(c);

    (void)deleted;
    enqueue_index(c, d->clusters, PROFILE_INDEX, kf_obj_name(obj));
}

static void index_template(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *t = kf_json_str(obj, "spec.template", NULL);

    if (t)
        add(t, ctx);
}

static void index_profile(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *p = kf_json_str(obj, "spec.profile", NULL);

    add(p ? p : kf_json_str(obj, "status.effective.profile", "standard"), ctx);
}

static void index_vpc(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *v = kf_json_str(obj, "spec.vpc", NULL);

    if (v)
        add(v, ctx);
}

static void index_cluster_vpc(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *v = kf_json_str(obj, "spec.network.vpc", NULL);

    if (v)
        add(v, ctx);
}

static int add_index(struct kf_informer *inf, const char *name, kf_index_fn fn)
{
    int r = kf_informer_add_index(inf, name, fn);

    return r == -EEXIST ? 0 : r;
}

static int setup(struct kf_ctrl *c)
{
    struct place_ctrl *d = kf_ctrl_data(c);
    struct kf_ctrl_manager *m = kf_ctrl_manager_of(c);
    int r;

    d->ctrl = c;
    d->model = kf_cap_model_shared(c);
    d->clusters = kf_ctrl_primary(c);
    if ((r = kf_ctrl_members_informer(m, &d->members)) < 0)
        return r;
    d->pools = kf_ctrl_informer(m, &kf_kind_ippool);
    d->profiles = kf_ctrl_informer(m, &kf_kind_profile);
    d->templates = kf_ctrl_informer(m, &kf_kind_template);
    d->units = kf_ctrl_informer(m, &kf_kind_unit);
    if ((r = add_index(d->clusters, TEMPLATE_INDEX, index_template)) < 0 ||
        (r = add_index(d->clusters, PROFILE_INDEX, index_profile)) < 0 ||
        (r = add_index(d->pools, VPC_INDEX, index_vpc)) < 0 ||
        (r = add_index(d->clusters, CLUSTER_VPC_INDEX, index_cluster_vpc)) < 0)
        return r;
    if ((r = kf_ctrl_watch(c, &kf_kind_region, map_region)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_unit, map_unit)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_host, map_host)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_controlplanemember, map_member)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_guestcluster, map_cluster)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_ippool, map_pool)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_template, map_template)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_profile, map_profile)) < 0)
        return r;
    kf_place_api_bind(d);
    return 0;
}

/* --- bookkeeping ---------------------------------------------------------------- */

static void pending_set(struct place_ctrl *d, const char *name, const char *region)
{
    pthread_mutex_lock(&d->lock);
    if (region) {
        if (!kf_smap_contains(&d->pending, name))
            kf_smap_put(&d->pending, name, kf_xstrdup(region));
    } else {
        free(kf_smap_remove(&d->pending, name));
    }
    pthread_mutex_unlock(&d->lock);
}

static void candidate_forget(struct place_ctrl *d, const char *name)
{
    pthread_mutex_lock(&d->lock);
    free(kf_smap_remove(&d->candidates, name));
    pthread_mutex_unlock(&d->lock);
}

/* Registers name as wanting target and says whether it may move now. */
static bool candidate_go(struct place_ctrl *d, const char *name, int current, int target,
                         int64_t held_ms, unsigned in_flight)
{
    struct shift_cand *sc;
    struct kf_grade_shift_cand *cands;
    size_t n, it = 0, k = 0;
    const char *key;
    void *v;
    bool go = false;

    pthread_mutex_lock(&d->lock);
    sc = kf_smap_get(&d->candidates, name);
    if (!sc) {
        sc = kf_xcalloc(1, sizeof(*sc));
        kf_smap_put(&d->candidates, name, sc);
    }
    sc->current = current;
    sc->target = target;
    sc->since_ms = kf_now_ms() - held_ms;
    n = kf_smap_count(&d->candidates);
    cands = kf_xcalloc(n, sizeof(*cands));
    while (kf_smap_next(&d->candidates, &it, &key, &v)) {
        struct shift_cand *x = v;

        cands[k++] = (struct kf_grade_shift_cand){ .name = key,
                                                   .current = x->current,
                                                   .target = x->target,
                                                   .held_ms = kf_now_ms() - x->since_ms };
    }
    kf_grade_shift_select(&d->shift, in_flight, cands, k);
    for (size_t i = 0; i < k; i++)
        if (strcmp(cands[i].name, name) == 0)
            go = cands[i].go;
    free(cands);
    pthread_mutex_unlock(&d->lock);
    return go;
}

static unsigned grade_changes_in_flight(struct place_ctrl *d, const char *except)
{
    unsigned n = 0;
    size_t it = 0;
    void *v;

    pthread_mutex_lock(&d->model->lock);
    while (kf_smap_next(&d->model->clusters, &it, NULL, &v)) {
        struct cap_cluster *c = v;

        if (c->known && c->grade_changing && strcmp(c->name, except) != 0)
            n++;
    }
    pthread_mutex_unlock(&d->model->lock);
    return n;
}

/* Waits for the informers to show our own writes. */
static int barrier(struct place_ctrl *d)
{
    struct {
        struct kf_informer *inf;
        int64_t need;
        const char *what;
    } w[] = {
        { d->clusters, d->need_cluster_rev, "guestclusters" },
        { d->members, d->need_member_rev, "controlplanemembers" },
        { d->pools, d->need_pool_rev, "ippools" },
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(w); i++)
        if (!kf_cap_wait_rev(w[i].inf, w[i].need, BARRIER_MS)) {
            kf_log_rl_warn("the %s informer is at revision %lld, behind our write at %lld",
                           w[i].what, (long long)kf_informer_rev(w[i].inf), (long long)w[i].need);
            return -KF_EUNAVAILABLE;
        }
    return 0;
}

/* --- writes -------------------------------------------------------------------- */

static int patch_status(struct place_ctrl *d, const char *name, json_t *st, int64_t *ret_rev,
                        struct kf_strbuf *why)
{
    json_t *patch = json_pack("{s:O}", "status", st);
    int64_t rev = 0;
    int r = kf_cap_patch(d->reg, &kf_kind_guestcluster, name, patch, true, &rev, why);

    json_decref(patch);
    if (r == 0)
        d->need_cluster_rev = KF_MAX(d->need_cluster_rev, rev);
    if (r == 0 && ret_rev)
        *ret_rev = rev;
    return r;
}

/* Whether writing want over have would change anything (conditions
 * compared without their times). */
static bool differs(const json_t *want, const json_t *have)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)want, key, v)
    {
        json_t *h = json_object_get(have, key);

        if (strcmp(key, "conditions") == 0 ? !kf_cap_conditions_same(v, h)
            : json_is_null(v)              ? h != NULL
                                           : !json_equal(v, h))
            return true;
    }
    return false;
}

/* Conditions: the old ones with `set` replacing those of the same type. */
static json_t *merge_conditions(const json_t *old, json_t *set)
{
    json_t *out = json_array(), *c;
    size_t i;

    json_array_foreach(old, i, c) if (!kf_cap_condition_find(set, kf_json_str(c, "type", "")))
        json_array_append(out, c);
    json_array_foreach(set, i, c) json_array_append(out, c);
    json_decref(set);
    return out;
}

static int set_finalizer(struct place_ctrl *d, const json_t *cluster, bool on,
                         struct kf_strbuf *why)
{
    json_t *fins = kf_json_path(cluster, "metadata.finalizers"), *list = json_array(), *v, *patch;
    bool has = kf_obj_has_finalizer(cluster, KF_FINALIZER_PLACEMENT);
    int64_t rev = 0;
    size_t i;
    int r;

    if (has == on) {
        json_decref(list);
        return 0;
    }
    json_array_foreach(fins, i, v) if (!kf_streq(json_string_value(v), KF_FINALIZER_PLACEMENT))
        json_array_append(list, v);
    if (on)
        json_array_append_new(list, json_string(KF_FINALIZER_PLACEMENT));
    patch = json_pack("{s:{s:o}}", "metadata", "finalizers", list);
    r = kf_cap_patch(d->reg, &kf_kind_guestcluster, kf_obj_name(cluster), patch, false, &rev, why);
    json_decref(patch);
    if (r == 0)
        d->need_cluster_rev = KF_MAX(d->need_cluster_rev, rev);
    return r == -KF_ENOTFOUND ? 0 : r;
}

/* Pending with a reason: written (and an Event recorded) only when it says
 * something new. */
static int write_pending(struct place_ctrl *d, const json_t *cluster, const char *reason,
                         const char *message, int grade, const struct kf_place_settings *s,
                         int64_t *ret_rev)
{
    const json_t *old = kf_json_path(cluster, "status");
    const json_t *cond = kf_cap_condition_find(json_object_get(old, "conditions"), "Scheduled");
    struct kf_strbuf why = KF_STRBUF_INIT;
    json_t *st = json_object();
    bool news = !cond || !kf_streq(kf_json_str(cond, "message", NULL), message) ||
                !kf_streq(kf_json_str(cond, "reason", NULL), reason);
    int r = 0;

    json_object_set_new(st, "phase", json_string("Pending"));
    json_object_set_new(st, "message", json_string(message));
    if (grade >= 0)
        json_object_set_new(st, "grade", json_string(kf_grade_name(grade)));
    if (s && s->effective) {
        json_object_set(st, "effective", s->effective);
        json_object_set_new(st, "profile", json_string(kf_json_str(s->effective, "profile", "")));
        json_object_set_new(st, "version", json_string(kf_json_str(s->effective, "version", "")));
    }
    json_object_set_new(st, "observedGeneration", json_integer(kf_obj_generation(cluster)));
    json_object_set_new(
        st, "conditions",
        merge_conditions(
            json_object_get(old, "conditions"),
            json_pack("[o]", kf_cap_condition(json_object_get(old, "conditions"), "Scheduled",
                                              false, reason, message, kf_now_ms()))));
    if (differs(st, old)) {
        r = patch_status(d, kf_obj_name(cluster), st, ret_rev, &why);
        if (r == -KF_ENOTFOUND)
            r = 0;
        else if (r < 0)
            kf_log_rl_warn("cannot write the status of cluster \"%s\": %s", kf_obj_name(cluster),
                           why.buf);
    }
    if (r == 0 && news) {
        kf_log_info("cluster \"%s\" stays Pending: %s", kf_obj_name(cluster), message);
        kf_recorder_event(d->rec, cluster, KF_EVENT_WARNING, "FailedScheduling", message);
    }
    json_decref(st);
    kf_strbuf_release(&why);
    return r;
}

static json_t *network_json(const struct kf_ipam_alloc *a, const char *pool)
{
    char n[KF_CIDR_STRLEN], p[KF_CIDR_STRLEN], s[KF_CIDR_STRLEN], k[KF_CIDR_STRLEN],
        dns[KF_CIDR_STRLEN];
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "nodeCIDR", kf_cidr_format(&a->node, n, sizeof(n)),
                  "podCIDR", kf_cidr_format(&a->pod, p, sizeof(p)), "serviceCIDR",
                  kf_cidr_format(&a->service, s, sizeof(s)), "kubernetesServiceIP",
                  kf_ip_format(&a->kubernetes_ip, k, sizeof(k)), "dnsServiceIP",
                  kf_ip_format(&a->dns_ip, dns, sizeof(dns)));

    if (pool)
        json_object_set_new(o, "ipPool", json_string(pool));
    return o;
}

/* --- deletion ------------------------------------------------------------------ */

static int teardown(struct place_ctrl *d, const json_t *cluster, int64_t *requeue_after_ms)
{
    const char *name = kf_obj_name(cluster);
    struct kf_strbuf why = KF_STRBUF_INIT;
    int r;

    pending_set(d, name, NULL);
    candidate_forget(d, name);
    if (!kf_obj_has_finalizer(cluster, KF_FINALIZER_PLACEMENT))
        return 0;
    r = kf_place_members_delete_all(d, name, &why);
    if (r > 0) { /* members that wait for their agents */
        *requeue_after_ms = 1000;
        r = 0;
        goto release_why;
    }
    if (r == 0)
        r = kf_place_ipam_release(d, kf_json_str(cluster, "spec.network.vpc", NULL), name, &why);
    if (r == 0)
        r = set_finalizer(d, cluster, false, &why);
    if (r == 0) {
        kf_log_info("cluster \"%s\": members deleted, ranges released", name);
        kf_recorder_eventf(d->rec, cluster, KF_EVENT_NORMAL, "Released",
                           "members deleted and IP ranges released from unit %s",
                           kf_json_str(cluster, "status.unit", "(none)"));
    } else {
        kf_log_rl_warn("cannot release cluster \"%s\": %s; retrying", name, why.buf);
    }
release_why:
    kf_strbuf_release(&why);
    return r;
}

/* The cluster object is gone (its finalizer was removed by hand): what it
 * left behind goes too. */
static int orphan(struct place_ctrl *d, const char *name)
{
    struct kf_strbuf why = KF_STRBUF_INIT;
    char **vpcs = NULL;
    size_t n = 0, it = 0, alloc = 0;
    const char *key;
    void *v;
    int r;

    pending_set(d, name, NULL);
    candidate_forget(d, name);
    r = kf_place_members_delete_all(d, name, &why);
    if (r > 0)
        r = 0;
    pthread_mutex_lock(&d->lock);
    while (kf_smap_next(&d->vpcs, &it, &key, &v)) {
        struct place_vpc *pv = v;
        struct kf_ipam_alloc a;

        if (pv->v && kf_ipam_lookup(pv->v, name, &a) == 0) {
            KF_GROW(vpcs, alloc, n + 1);
            vpcs[n++] = kf_xstrdup(key);
        }
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < n; i++) {
        if (r == 0)
            r = kf_place_ipam_release(d, vpcs[i], name, &why);
        free(vpcs[i]);
    }
    free(vpcs);
    kf_strbuf_release(&why);
    return r;
}

/* --- placing ------------------------------------------------------------------- */

/* The bindings of a decision, copied out of the model. */
struct bound {
    char host[KF_NAME_MAX + 1];
    char zone[64];
    uint16_t component, replica;
};

/* A placement decision: the grade, the unit and the bindings, copied out of the model. */
struct placed {
    int grade;
    struct kf_strbuf gwhy; /* why this grade */
    struct kf_grade_spec shape;
    struct kf_place_result *res;
    char unit[KF_NAME_MAX + 1];
    struct bound *bs;
    unsigned nb;
};

/* The status that commits the cluster to its unit and records its ranges;
 * the members are created right after it, bound as decided, so it says
 * MembersBound already (a failed create is retried by the next reconcile,
 * which writes the condition again from the members that exist). */
static json_t *scheduled_status(const json_t *cluster, const struct kf_place_settings *s,
                                const struct placed *pd, const struct kf_ipam_alloc *alloc,
                                const char *pool, int64_t now)
{
    json_t *st = json_object();

    json_object_set_new(st, "phase", json_string("Scheduled"));
    json_object_set_new(st, "unit", json_string(pd->unit));
    json_object_set_new(st, "grade", json_string(kf_grade_name(pd->grade)));
    json_object_set_new(st, "profile", json_string(kf_json_str(s->effective, "profile", "")));
    json_object_set_new(st, "version", json_string(kf_json_str(s->effective, "version", "")));
    json_object_set_new(st, "network", network_json(alloc, pool));
    json_object_set(st, "effective", s->effective);
    json_object_set_new(
        st, "members",
        json_pack("{s:i, s:i}", "desired", (int)kf_grade_members(&pd->shape), "ready", 0));
    json_object_set_new(st, "message", json_string(pd->res->message));
    json_object_set_new(st, "observedGeneration", json_integer(kf_obj_generation(cluster)));
    json_object_set_new(
        st, "conditions",
        merge_conditions(
            kf_json_path(cluster, "status.conditions"),
            json_pack("[o, o]",
                      kf_cap_condition(NULL, "Scheduled", true, "Placed", pd->res->message, now),
                      kf_cap_condition(NULL, "MembersBound", true, "Bound",
                                       "every member is bound to a host", now))));
    return st;
}

/* Logs that placing the cluster failed and is retried; returns r. */
static int place_failed(const char *name, const struct kf_strbuf *why, int r)
{
    kf_log_rl_warn("cannot place cluster \"%s\": %s; retrying", name, why->buf);
    return r;
}

/* --- placing a batch ------------------------------------------------------------ */

/* New clusters decided against one snapshot of the model (each decision
 * booked into the snapshot before the next), written in store transactions
 * of PLACE_TXN_MAX: the finalizer and the status that commits unit
 * and ranges in one write per cluster, the members of many clusters in one
 * transaction. */
#define BATCH_MAX 512
/* Batches of more placed clusters than this record one Event a unit. */
#define EVENTS_PER_CLUSTER_MAX 32

/* One cluster of a batch. */
struct batch_item {
    json_t *cluster; /* the informer's copy; becomes the object written */
    struct kf_place_settings s;
    struct placed pd;
    struct kf_place_cluster c;
    struct place_input_bufs bufs;
    const char *region;
    int r;        /* the decision: 0 a unit, < 0 Pending with pd.res->message */
    bool commit;  /* decided and ranges allocated: to be written */
    bool written; /* the write went through */
    /* Pending: its status says so (pending_done), written at wrote_rev
     * (0: it said so already); taken from `retry` (its queue entry is to
     * come); d->wakes when it was taken */
    bool pending_done, from_retry;
    int64_t wrote_rev;
    uint64_t wakes;
};

/* The units of one region, built once a batch. */
struct batch_region {
    const char *region;
    struct cap_units us;
};

/* Takes a new cluster for the batch (its settings, grade and placement
 * input), or says no (0): gone, being deleted, paused, placed meanwhile or
 * with settings that need their own reconcile (its queue entry does that). */
static bool batch_take(struct place_ctrl *d, const char *name, bool from_retry,
                       struct batch_item *it)
{
    const char *reason = NULL;
    struct kf_strbuf why = KF_STRBUF_INIT;

    pthread_mutex_lock(&d->lock);
    it->wakes = d->wakes; /* before the cluster and the model are read */
    pthread_mutex_unlock(&d->lock);
    it->from_retry = from_retry;
    if (kf_informer_get(d->clusters, name, &it->cluster) < 0)
        return false;
    if (kf_obj_deleting(it->cluster) || kf_json_bool(it->cluster, "spec.paused", false) ||
        kf_json_path(it->cluster, "status.unit") ||
        kf_place_settings(d, it->cluster, &it->s, &reason, &why) < 0) {
        kf_place_settings_release(&it->s);
        kf_strbuf_release(&why);
        json_decref(it->cluster);
        it->cluster = NULL;
        return false;
    }
    kf_strbuf_release(&why);
    it->region = kf_json_str(it->cluster, "spec.region", "");
    it->pd.gwhy = (struct kf_strbuf)KF_STRBUF_INIT;
    it->pd.res = kf_xcalloc(1, sizeof(*it->pd.res));
    it->pd.grade = kf_grade_decide(&d->grades, it->s.explicit_grade, it->s.nodes, it->s.pods, -1,
                                   &it->pd.gwhy);
    kf_place_shape(&d->grades, it->pd.grade, it->s.profile, it->s.simulated_nodes, &it->pd.shape);
    kf_place_shape_json(&it->pd.shape, it->s.effective);
    kf_place_cluster_input(it->cluster, &it->s, it->pd.grade, &it->pd.shape, &it->c, &it->bufs);
    /* Waits for its region's capacity events from before the model is read:
     * an event applied between the read and a pending_set after it would
     * wake nobody, and the cluster would stay Pending (until the resync)
     * with a reason that is no longer true. Cleared once it is placed. */
    pending_set(d, name, it->region);
    return true;
}

static void batch_item_release(struct batch_item *it)
{
    if (!it->cluster)
        return;
    kf_place_input_bufs_release(&it->bufs);
    kf_place_settings_release(&it->s);
    free(it->pd.bs);
    free(it->pd.res);
    kf_strbuf_release(&it->pd.gwhy);
    json_decref(it->cluster);
}

/* The clusters for a batch that starts with first: first, then up to
 * BATCH_MAX - 1 others from `fresh` (new) and then from `retry` (Pending,
 * woken). Returns how many were taken. */
static size_t batch_collect(struct place_ctrl *d, const char *first, struct batch_item *items)
{
    char *names[BATCH_MAX];
    size_t n = 0, n_fresh, k = 0, it = 0;
    const char *key;

    pthread_mutex_lock(&d->lock);
    kf_smap_remove(&d->fresh, first);
    kf_smap_remove(&d->retry, first);
    while (n < BATCH_MAX - 1 && kf_smap_next(&d->fresh, &it, &key, NULL))
        names[n++] = kf_xstrdup(key);
    n_fresh = n;
    it = 0;
    while (n < BATCH_MAX - 1 && kf_smap_next(&d->retry, &it, &key, NULL))
        names[n++] = kf_xstrdup(key);
    for (size_t i = 0; i < n; i++)
        kf_smap_remove(i < n_fresh ? &d->fresh : &d->retry, names[i]);
    pthread_mutex_unlock(&d->lock);
    if (batch_take(d, first, false, &items[k]))
        k++;
    for (size_t i = 0; i < n; i++) {
        if (batch_take(d, names[i], i >= n_fresh, &items[k]))
            k++;
        free(names[i]);
    }
    return k;
}

/* Copies the decision out of the snapshot and books it there. */
static void batch_book(struct batch_item *it, struct cap_units *us)
{
    const struct kf_place_unit *u = &us->units[it->pd.res->unit];
    struct placed *pd = &it->pd;

    snprintf(pd->unit, sizeof(pd->unit), "%s", u->name);
    pd->bs = kf_xcalloc(pd->res->n_bindings + 1, sizeof(*pd->bs));
    for (unsigned i = 0; i < pd->res->n_bindings; i++) {
        const struct kf_place_binding *b = &pd->res->bindings[i];

        snprintf(pd->bs[i].host, sizeof(pd->bs[i].host), "%s", u->hosts[b->host].name);
        snprintf(pd->bs[i].zone, sizeof(pd->bs[i].zone), "%s", u->zones[b->zone]);
        pd->bs[i].component = b->component;
        pd->bs[i].replica = b->replica;
    }
    pd->nb = pd->res->n_bindings;
    kf_place_commit(us->units, &it->c, pd->res);
}

/* Decides every cluster of the batch under the model's lock, against one
 * snapshot of each region's units. */
static void batch_decide(struct place_ctrl *d, struct batch_item *items, size_t n)
{
    struct batch_region *regions = kf_xcalloc(n, sizeof(*regions));
    size_t nr = 0;

    pthread_mutex_lock(&d->model->lock);
    for (size_t i = 0; i < n; i++) {
        struct batch_region *br = NULL;

        for (size_t j = 0; j < nr && !br; j++)
            if (strcmp(regions[j].region, items[i].region) == 0)
                br = &regions[j];
        if (!br) {
            br = &regions[nr++];
            br->region = items[i].region;
            kf_cap_units_build(d->model, &d->policy, br->region, NULL, &br->us);
        }
        items[i].r = kf_place(&d->placer, br->us.units, br->us.n, &items[i].c, items[i].pd.res);
        if (items[i].r == 0)
            batch_book(&items[i], &br->us);
    }
    for (size_t j = 0; j < nr; j++)
        kf_cap_units_release(&regions[j].us);
    pthread_mutex_unlock(&d->model->lock);
    free(regions);
}

/* Ranges for a decided cluster, and the object to write: the finalizer and
 * the status in one. Without a unit or ranges it stays Pending (written
 * here, one by one: the reasons differ). Returns a store error of that
 * Pending write. */
static int batch_prepare(struct place_ctrl *d, struct batch_item *it, int64_t now)
{
    struct kf_strbuf why = KF_STRBUF_INIT;
    struct kf_ipam_alloc alloc;
    char *pool = NULL;
    json_t *fins, *st;
    int r;

    if (it->r < 0) {
        const char *reason =
            strstr(it->pd.res->message, "has headroom") ? "NoHeadroom" : "Unschedulable";

        r = write_pending(d, it->cluster, reason, it->pd.res->message, it->pd.grade, &it->s,
                          &it->wrote_rev);
        it->pending_done = r == 0;
        return r;
    }
    r = kf_place_ipam_allocate(d, it->cluster, &it->s, &alloc, &pool, &why);
    if (r == -ENOSPC || r == -KF_EINVALID || r == -KF_EEXISTS || r == -ENOENT) {
        r = write_pending(d, it->cluster, r == -ENOSPC ? "NoIPRange" : "InvalidNetwork", why.buf,
                          it->pd.grade, &it->s, &it->wrote_rev);
        it->pending_done = r == 0;
        goto release_why;
    }
    if (r < 0) {
        place_failed(kf_obj_name(it->cluster), &why, r);
        goto release_why;
    }
    st = scheduled_status(it->cluster, &it->s, &it->pd, &alloc, pool, now);
    json_object_set_new(it->cluster, "status", st);
    fins = kf_json_path(it->cluster, "metadata.finalizers");
    if (!json_is_array(fins)) {
        fins = json_array();
        json_object_set_new(json_object_get(it->cluster, "metadata"), "finalizers", fins);
    }
    if (!kf_obj_has_finalizer(it->cluster, KF_FINALIZER_PLACEMENT))
        json_array_append_new(fins, json_string(KF_FINALIZER_PLACEMENT));
    it->commit = true;
release_why:
    free(pool);
    kf_strbuf_release(&why);
    return r;
}

/* Writes k clusters in one transaction; one the store finds too large (an
 * etcd request is limited in bytes, ~1.5 MiB by default, and a cluster's
 * status is several KiB) is split in two. A transaction that fails
 * otherwise (a cluster changed since it was read) leaves its clusters to
 * their own reconciles, their ranges to be rebuilt. */
static void batch_write_chunk(struct place_ctrl *d, struct batch_item **who, json_t **objs,
                              size_t k)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf why = KF_STRBUF_INIT;
    size_t failed = 0;
    int64_t rev = 0;
    int rw;

    rw = kf_registry_update_batch_all(d->reg, &kf_kind_guestcluster, objs, k, &rev, &failed,
                                      &causes, &why);
    if (rw == -KF_ETOOLARGE && k > 1) {
        batch_write_chunk(d, who, objs, k / 2);
        batch_write_chunk(d, who + k / 2, objs + k / 2, k - k / 2);
        goto release_why;
    }
    for (size_t j = 0; j < k; j++) {
        who[j]->written = rw == 0;
        if (rw < 0)
            kf_place_ipam_unwritten(d, kf_json_str(objs[j], "spec.network.vpc", ""));
    }
    if (rw == 0)
        d->need_cluster_rev = KF_MAX(d->need_cluster_rev, rev);
    else
        kf_log_rl_warn("cannot commit %zu placed clusters (\"%s\": %s); each is retried", k,
                       kf_obj_name(objs[failed < k ? failed : 0]), why.buf);
release_why:
    kf_causes_release(&causes);
    kf_strbuf_release(&why);
}

/* Writes the committed clusters, PLACE_TXN_MAX a transaction. */
static void batch_write(struct place_ctrl *d, struct batch_item *items, size_t n)
{
    json_t *objs[PLACE_TXN_MAX];
    struct batch_item *who[PLACE_TXN_MAX];

    for (size_t i = 0; i < n;) {
        size_t k = 0;

        for (; i < n && k < PLACE_TXN_MAX; i++)
            if (items[i].commit) {
                who[k] = &items[i];
                objs[k++] = items[i].cluster;
            }
        if (k)
            batch_write_chunk(d, who, objs, k);
    }
}

/* The clusters of large batches placed in a unit whose Event is not
 * written yet (d->unit_events). */
struct unit_placed {
    size_t count;
    struct kf_strbuf names; /* the first UNIT_EVENT_NAMES */
};

#define UNIT_EVENT_NAMES 8
/* A unit's ClustersScheduled Event is written a second after the last
 * batch that placed clusters there, and at least every UNIT_EVENT_MAX_MS
 * while batches keep coming: with 300 units, one Event a unit a batch was
 * about 300 store writes a batch, nearly one a placed cluster. */
#define UNIT_EVENT_MS     1000
#define UNIT_EVENT_MAX_MS 5000

/* Counts the clusters of a large batch placed in unit for its Event (the
 * reasons are in each cluster's Scheduled condition). */
static void unit_event_note(struct place_ctrl *d, const char *unit, const char *cluster)
{
    struct unit_placed *up;
    char *key;

    pthread_mutex_lock(&d->lock);
    up = kf_smap_get(&d->unit_events, unit);
    if (!up) {
        up = kf_xcalloc(1, sizeof(*up));
        up->names = (struct kf_strbuf)KF_STRBUF_INIT;
        kf_smap_put(&d->unit_events, unit, up);
    }
    if (up->count < UNIT_EVENT_NAMES)
        kf_strbuf_addf(&up->names, "%s%s", up->count ? ", " : "", cluster);
    up->count++;
    pthread_mutex_unlock(&d->lock);
    key = kf_xasprintf(PLACE_EVENTS_KEY "%s", unit);
    kf_ctrl_enqueue_folded(d->ctrl, key, UNIT_EVENT_MS, UNIT_EVENT_MAX_MS);
    free(key);
}

/* The reconcile of PLACE_EVENTS_KEY + unit: one Event for the clusters
 * placed there since the last one. Best effort, as every Event. */
static int unit_event_write(struct place_ctrl *d, const char *unit)
{
    struct unit_placed *up;
    json_t *u = NULL;

    pthread_mutex_lock(&d->lock);
    up = kf_smap_remove(&d->unit_events, unit);
    pthread_mutex_unlock(&d->lock);
    if (!up)
        return 0;
    if (kf_informer_get(d->units, unit, &u) == 0)
        kf_recorder_eventf(d->rec, u, KF_EVENT_NORMAL, "ClustersScheduled",
                           "%zu new clusters placed here in batches: %s%s", up->count,
                           up->names.buf, up->count > UNIT_EVENT_NAMES ? ", ..." : "");
    json_decref(u);
    kf_strbuf_release(&up->names);
    free(up);
    return 0;
}

/* Says what was decided: an Event `Scheduled` for each cluster of a small
 * batch; for a large one (a burst of creates, a backlog after a restart)
 * one Event per unit instead, for the clusters of every large batch placed
 * there within a few seconds (unit_event_note), as Kubernetes' event
 * recorder drops repeats under load: each is a store write (two round
 * trips on etcd), and a cluster's Scheduled condition says the same. */
static void batch_events(struct place_ctrl *d, struct batch_item *items, size_t n)
{
    size_t written = 0;

    for (size_t i = 0; i < n; i++) {
        struct batch_item *it = &items[i];

        if (!it->written)
            continue;
        written++;
        kf_log_info("cluster \"%s\" (%s): %s; members created", kf_obj_name(it->cluster),
                    it->pd.gwhy.buf, it->pd.res->message);
    }
    for (size_t i = 0; i < n; i++) {
        struct batch_item *it = &items[i];

        if (!it->written)
            continue;
        if (written <= EVENTS_PER_CLUSTER_MAX)
            kf_recorder_eventf(d->rec, it->cluster, KF_EVENT_NORMAL, "Scheduled", "%s; grade %s",
                               it->pd.res->message, it->pd.gwhy.buf);
        else
            unit_event_note(d, it->pd.unit, kf_obj_name(it->cluster));
    }
}

/* Creates the members of every written cluster (transactions of many
 * clusters' members), then says what was decided. */
/* Creates the first PLACE_TXN_MAX of objs' *no members (all of them when
 * `all`), one store transaction each, and frees them; the rest move to the
 * front. After an error every one is freed. */
static int members_flush(struct place_ctrl *d, json_t **objs, size_t *no, bool all,
                         struct kf_strbuf *why)
{
    int r = 0;

    while (r == 0 && (*no >= PLACE_TXN_MAX || (all && *no))) {
        size_t k = KF_MIN(*no, (size_t)PLACE_TXN_MAX);

        r = kf_place_members_create(d, objs, k, why);
        if (r < 0)
            k = *no;
        for (size_t i = 0; i < k; i++)
            json_decref(objs[i]);
        memmove(objs, objs + k, (*no - k) * sizeof(*objs));
        *no -= k;
    }
    return r;
}

/* The members of the batch's written clusters, PLACE_TXN_MAX a
 * transaction, built a transaction's worth at a time (a batch of 512
 * clusters has ~5,000 members: built all at once they were the largest
 * thing kfleetd held during a burst). */
static int batch_members(struct place_ctrl *d, struct batch_item *items, size_t n)
{
    struct kf_strbuf why = KF_STRBUF_INIT;
    json_t **objs = NULL;
    size_t no = 0, alloc = 0, total = 0;
    int r = 0;

    for (size_t i = 0; i < n; i++) {
        struct batch_item *it = &items[i];

        if (!it->written)
            continue;
        pending_set(d, kf_obj_name(it->cluster), NULL);
        if (r < 0)
            continue;
        KF_GROW(objs, alloc, no + it->pd.nb + 1);
        for (unsigned b = 0; b < it->pd.nb; b++)
            objs[no++] = kf_place_member_obj(
                it->cluster, it->pd.unit, it->pd.bs[b].host, it->pd.bs[b].zone,
                &it->pd.shape.components[it->pd.bs[b].component], it->pd.bs[b].replica,
                kf_json_str(it->s.effective, "version", ""));
        total += it->pd.nb;
        r = members_flush(d, objs, &no, false, &why);
    }
    if (r == 0)
        r = members_flush(d, objs, &no, true, &why);
    if (r < 0)
        kf_log_rl_warn("cannot create the members of a batch (%zu built): %s; retrying", total,
                       why.buf);
    free(objs);
    if (r == 0) {
        for (size_t i = 0; i < n; i++)
            if (items[i].written)
                just_placed_put(d, kf_obj_name(items[i].cluster), kf_obj_rv(items[i].cluster));
        batch_events(d, items, n);
    }
    kf_strbuf_release(&why);
    return r;
}

/* Marks the batch's clusters that stay Pending as decided (just_placed)
 * when a reconcile of theirs is to come: the event of the status written,
 * or the queue entry of the wake that offered them to the batch. Not when
 * a wake came since they were taken: what it changed was not in the
 * snapshot. Without this each Pending cluster of a burst was decided again
 * alone, after the batch, against a snapshot of its region built for it. */
static void batch_mark_pending(struct place_ctrl *d, struct batch_item *items, size_t n)
{
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < n; i++) {
        struct batch_item *it = &items[i];

        if (it->commit || !it->pending_done || (!it->wrote_rev && !it->from_retry) ||
            it->wakes != d->wakes)
            continue;
        kf_smap_put(&d->just_placed, kf_obj_name(it->cluster),
                    (void *)(intptr_t)(it->wrote_rev ? it->wrote_rev : kf_obj_rv(it->cluster)));
    }
    pthread_mutex_unlock(&d->lock);
}

/* Places the new cluster `first` together with up to BATCH_MAX - 1 other
 * new ones (those still in the queue find themselves placed). Returns the
 * result for first: 0, or an error to retry it with. */
static int place_new(struct place_ctrl *d, const char *first)
{
    struct batch_item *items = kf_xcalloc(BATCH_MAX, sizeof(*items));
    size_t n = batch_collect(d, first, items);
    int64_t now = kf_now_ms();
    int r = 0, rf = 0;

    batch_decide(d, items, n);
    for (size_t i = 0; i < n; i++) {
        int ri = batch_prepare(d, &items[i], now);

        if (ri < 0 && strcmp(kf_obj_name(items[i].cluster), first) == 0)
            rf = ri;
    }
    batch_write(d, items, n);
    r = batch_members(d, items, n);
    batch_mark_pending(d, items, n);
    for (size_t i = 0; i < n; i++) {
        /* first's commit failed: retried with back-off, alone if need be */
        if (strcmp(kf_obj_name(items[i].cluster), first) == 0 && items[i].commit &&
            !items[i].written && rf == 0)
            rf = -KF_ECONFLICT;
        batch_item_release(&items[i]);
    }
    free(items);
    return rf < 0 ? rf : r;
}

/* Writes status.gradeShift {target, since}, since kept while the target
 * stays the same; returns how long the target has held (ms). */
static int64_t mark_shift_target(json_t *st, const json_t *old, int target, int64_t now)
{
    const char *st_target = kf_json_str(old, "gradeShift.target", NULL);
    int64_t since = now;
    char when[32];

    if (st_target && kf_grade_parse(st_target) == target)
        kf_time_parse_rfc3339(kf_json_str(old, "gradeShift.since", ""), &since);
    kf_cap_now_rfc3339(since, when);
    json_object_set_new(st, "gradeShift",
                        json_pack("{s:s, s:s}", "target", kf_grade_name(target), "since", when));
    return now - since;
}

/* Adds a GradeChange condition False with reason and msg, and looks again later. */
static void grade_change_waits(json_t *conds, const json_t *old, const char *reason,
                               const char *msg, int64_t now, int64_t *requeue_after_ms)
{
    json_array_append_new(conds, kf_cap_condition(json_object_get(old, "conditions"), "GradeChange",
                                                  false, reason, msg, now));
    *requeue_after_ms = RETRY_MS;
}

/* The pins of the cluster's members on unit ui that the new shape keeps. */
static unsigned staying_pins(const struct cap_units *us, int ui, struct cap_cluster *cc,
                             const struct kf_grade_spec *shape,
                             struct kf_place_pin pins[KF_GRADE_MAX_MEMBERS])
{
    struct cap_member **sorted = NULL;
    size_t n_sorted = cc ? kf_cap_cluster_members_sorted(cc, &sorted) : 0;
    unsigned n_pins = 0;

    for (size_t i = 0; ui >= 0 && i < n_sorted; i++) {
        const struct cap_member *mb = sorted[i];
        int h = mb->host ? kf_cap_units_find_host(us, (size_t)ui, mb->host->name) : -1;

        for (unsigned k = 0; h >= 0 && k < shape->n_components; k++)
            if (strcmp(shape->components[k].name, mb->component) == 0 && mb->index >= 0 &&
                (unsigned)mb->index < shape->components[k].replicas &&
                n_pins < KF_GRADE_MAX_MEMBERS) {
                bool dup = false;

                for (unsigned j = 0; j < n_pins; j++)
                    dup = dup || (pins[j].component == k && pins[j].replica == mb->index);
                if (!dup)
                    pins[n_pins++] =
                        (struct kf_place_pin){ (uint16_t)k, (uint16_t)mb->index, (uint32_t)h };
            }
    }
    free(sorted);
    return n_pins;
}

/* Does the target shape fit on the cluster's unit, the existing members
 * staying? 0, or negative with the reason in *ret_msg (to free). */
static int grade_fits_unit(struct place_ctrl *d, const json_t *cluster,
                           const struct kf_place_settings *s, int target, char **ret_msg)
{
    const char *name = kf_obj_name(cluster), *unit = kf_json_str(cluster, "status.unit", "");
    struct kf_grade_spec shape;
    struct kf_place_cluster c;
    struct kf_place_result *res = kf_xcalloc(1, sizeof(*res));
    struct kf_place_pin pins[KF_GRADE_MAX_MEMBERS];
    struct place_input_bufs bufs;
    struct cap_units us;
    int ui, r = -ENOSPC;

    kf_place_shape(&d->grades, target, s->profile, s->simulated_nodes, &shape);
    kf_place_cluster_input(cluster, s, target, &shape, &c, &bufs);
    c.unit = unit;
    /* it stays where it is: only its new members move, within its zones */
    c.unit_ok = NULL;
    c.n_avoid_units = 0;
    pthread_mutex_lock(&d->model->lock);
    kf_cap_units_build(d->model, &d->policy, kf_json_str(cluster, "spec.region", ""), name, &us);
    ui = kf_cap_units_find(&us, unit);
    c.n_pins = staying_pins(&us, ui, kf_smap_get(&d->model->clusters, name), &shape, pins);
    c.pins = pins;
    if (ui >= 0)
        r = kf_place(&d->placer, us.units, us.n, &c, res);
    kf_cap_units_release(&us);
    pthread_mutex_unlock(&d->model->lock);
    kf_place_input_bufs_release(&bufs);
    if (r < 0)
        *ret_msg = kf_xasprintf("cannot move to %s on unit %s: %s", kf_grade_name(target), unit,
                                ui < 0 ? "the unit is gone" : res->message);
    free(res);
    return r;
}

/* Says that the grade change is blocked: a condition, and an Event when the message is new. */
static void grade_change_blocked(struct place_ctrl *d, const json_t *cluster, json_t *conds,
                                 const char *msg, int64_t now)
{
    const json_t *old_conds = kf_json_path(cluster, "status.conditions");

    json_array_append_new(
        conds, kf_cap_condition(old_conds, "GradeChange", false, "NoHeadroom", msg, now));
    if (!kf_streq(kf_json_str(kf_cap_condition_find(old_conds, "GradeChange"), "message", NULL),
                  msg))
        kf_recorder_event(d->rec, cluster, KF_EVENT_WARNING, "GradeChangeBlocked", msg);
}

/* Starts the grade change: conditions GradeChanging and GradeChange, an Event. */
static void grade_change_start(struct place_ctrl *d, const json_t *cluster, int grade, int target,
                               const char *why, json_t *st, json_t *conds, int64_t now)
{
    const json_t *old_conds = kf_json_path(cluster, "status.conditions");
    char *msg = kf_xasprintf("%s -> %s: %s", kf_grade_name(grade), kf_grade_name(target), why);

    json_array_append_new(conds,
                          kf_cap_condition(NULL, "GradeChanging", true, "Changing", msg, now));
    json_array_append_new(conds,
                          kf_cap_condition(old_conds, "GradeChange", true, "Started", msg, now));
    json_object_set_new(st, "gradeShift", json_null());
    kf_log_info("cluster \"%s\": grade %s", kf_obj_name(cluster), msg);
    kf_recorder_event(d->rec, cluster, KF_EVENT_NORMAL, "GradeChanged", msg);
    free(msg);
}

/* A grade change of a placed cluster: returns the grade to run at now,
 * with the conditions it writes into conds. */
static int regrade(struct place_ctrl *d, const json_t *cluster, const struct kf_place_settings *s,
                   int grade, json_t *st, json_t *conds, int64_t *requeue_after_ms)
{
    const char *name = kf_obj_name(cluster);
    const json_t *old = kf_json_path(cluster, "status");
    struct kf_strbuf why = KF_STRBUF_INIT;
    int64_t now = kf_now_ms(), held;
    bool explicit_move = s->explicit_grade >= 0;
    int target = explicit_move
                     ? s->explicit_grade
                     : kf_grade_shift_target(&d->grades, &d->shift, grade, s->nodes, s->pods, -1);
    int result = grade;
    enum kf_grade_move move;
    char *msg = NULL;

    if (target == grade) {
        candidate_forget(d, name);
        json_object_set_new(st, "gradeShift", json_null());
        return grade;
    }
    held = mark_shift_target(st, old, target, now);
    if (explicit_move) {
        move = target > grade ? KF_GRADE_UP : KF_GRADE_DOWN;
        kf_strbuf_addf(&why, "to %s: set in spec", kf_grade_name(target));
    } else {
        move = kf_grade_shift_decide(
            &d->shift, grade, target, held,
            kf_place_in_window(kf_json_path(s->effective, "maintenanceWindow"), name, now), &why);
    }
    if (move == KF_GRADE_WAIT || move == KF_GRADE_STAY) {
        grade_change_waits(conds, old, "Waiting", why.buf, now, requeue_after_ms);
    } else if (!candidate_go(d, name, grade, target, held, grade_changes_in_flight(d, name))) {
        msg = kf_xasprintf("%s to %s waits: at most %u clusters change grade at once, fleet-wide",
                           target > grade ? "up" : "down", kf_grade_name(target),
                           d->shift.max_in_flight);
        grade_change_waits(conds, old, "WaitingForSlot", msg, now, requeue_after_ms);
    } else if (grade_fits_unit(d, cluster, s, target, &msg) < 0) {
        grade_change_blocked(d, cluster, conds, msg, now);
        candidate_forget(d, name);
        *requeue_after_ms = RETRY_MS;
    } else {
        candidate_forget(d, name);
        grade_change_start(d, cluster, grade, target, why.buf, st, conds, now);
        result = target;
    }
    free(msg);
    kf_strbuf_release(&why);
    return result;
}

/* The cluster's ranges: allocated at placement; grown when expectedNodes
 * went up. A range that cannot be had is a condition, not an error. */
static int ensure_ranges(struct place_ctrl *d, const json_t *cluster, struct kf_place_settings *s,
                         json_t *st, json_t *conds, struct kf_strbuf *why, int64_t now)
{
    const json_t *old = kf_json_path(cluster, "status");
    struct kf_ipam_alloc a;
    char *pool = NULL;
    int r;

    if (kf_json_path(old, "network.podCIDR") &&
        kf_json_int(old, "effective.expectedNodes", s->nodes) == s->nodes)
        return 0;
    r = kf_place_ipam_allocate(d, cluster, s, &a, &pool, why);
    if (r == 0) {
        json_object_set_new(st, "network", network_json(&a, pool));
    } else if (r == -ENOSPC || r == -KF_EINVALID || r == -KF_EEXISTS || r == -ENOENT) {
        json_array_append_new(conds,
                              kf_cap_condition(json_object_get(old, "conditions"), "NetworkReady",
                                               false, "NoIPRange", why->buf, now));
        kf_strbuf_reset(why);
        r = 0;
    }
    free(pool);
    return r;
}

/* Binds the members of the grade's shape; a member that fits no host is a
 * condition MembersBound False and a look again later. */
static int ensure_members(struct place_ctrl *d, const json_t *cluster,
                          const struct kf_place_settings *s, int grade,
                          const struct kf_grade_spec *shape, json_t *conds, struct kf_strbuf *why,
                          int64_t now, int64_t *requeue_after_ms)
{
    const json_t *old_conds = kf_json_path(cluster, "status.conditions");
    int r = kf_place_members_sync(d, cluster, kf_json_str(cluster, "status.unit", ""), grade, shape,
                                  kf_json_str(s->effective, "version", ""), why);

    if (r == -ENOSPC) {
        json_array_append_new(
            conds, kf_cap_condition(old_conds, "MembersBound", false, "NoHostFits", why->buf, now));
        *requeue_after_ms = RETRY_MS;
        r = 0;
    } else if (r == 0) {
        json_array_append_new(conds, kf_cap_condition(old_conds, "MembersBound", true, "Bound",
                                                      "every member is bound to a host", now));
    }
    return r;
}

/* Ends a GradeChanging condition once every member of the new grade is Ready. */
static void grade_change_progress(const json_t *cluster, json_t *conds, unsigned existing,
                                  unsigned ready, unsigned desired, int64_t now)
{
    const json_t *old_conds = kf_json_path(cluster, "status.conditions");
    const json_t *changing = kf_cap_condition_find(old_conds, "GradeChanging");
    bool done = existing == desired && ready == desired;

    if (!changing || !kf_streq(kf_json_str(changing, "status", NULL), "True") ||
        kf_cap_condition_find(conds, "GradeChanging"))
        return;
    json_array_append_new(conds, kf_cap_condition(old_conds, "GradeChanging", !done,
                                                  done ? "Completed" : "Changing",
                                                  done ? "every member of the new grade is Ready"
                                                       : kf_json_str(changing, "message", ""),
                                                  now));
}

/* Fills the placed cluster's status and writes it if it changed. */
static int write_placed_status(struct place_ctrl *d, const json_t *cluster,
                               const struct kf_place_settings *s, int grade, unsigned desired,
                               unsigned ready, json_t *st, json_t *conds, struct kf_strbuf *why)
{
    const json_t *old = kf_json_path(cluster, "status");
    int r = 0;

    if (strcmp(kf_json_str(old, "phase", "Pending"), "Pending") == 0)
        json_object_set_new(st, "phase", json_string("Scheduled"));
    json_object_set_new(st, "grade", json_string(kf_grade_name(grade)));
    json_object_set_new(st, "profile", json_string(kf_json_str(s->effective, "profile", "")));
    /* once placed, status.version is the upgrade engine's (ctrl-lifecycle-upgrade.c) */
    if (!kf_json_str(old, "version", NULL))
        json_object_set_new(st, "version", json_string(kf_json_str(s->effective, "version", "")));
    json_object_set(st, "effective", s->effective);
    json_object_set_new(st, "members",
                        json_pack("{s:i, s:i}", "desired", (int)desired, "ready", (int)ready));
    json_object_set_new(st, "observedGeneration", json_integer(kf_obj_generation(cluster)));
    json_object_set_new(st, "conditions",
                        merge_conditions(json_object_get(old, "conditions"), json_incref(conds)));
    if (differs(st, old)) {
        r = patch_status(d, kf_obj_name(cluster), st, NULL, why);
        if (r < 0 && json_object_get(st, "network"))
            kf_place_ipam_unwritten(d, kf_json_str(cluster, "spec.network.vpc", ""));
    }
    return r == -KF_ENOTFOUND ? 0 : r;
}

/* Brings a placed cluster up to date: its grade, ranges, members and status. */
static int reconcile_placed(struct place_ctrl *d, const json_t *cluster,
                            struct kf_place_settings *s, int64_t *requeue_after_ms)
{
    const char *name = kf_obj_name(cluster);
    const json_t *old = kf_json_path(cluster, "status");
    struct kf_strbuf why = KF_STRBUF_INIT;
    struct kf_grade_spec shape;
    json_t *st = json_object(), *conds = json_array();
    int grade = kf_grade_parse(kf_json_str(old, "grade", ""));
    int64_t now = kf_now_ms();
    unsigned existing = 0, ready = 0, desired;
    int r;

    pending_set(d, name, NULL);
    if (grade < 0)
        grade = kf_grade_decide(&d->grades, s->explicit_grade, s->nodes, s->pods, -1, NULL);
    grade = regrade(d, cluster, s, grade, st, conds, requeue_after_ms);
    kf_place_shape(&d->grades, grade, s->profile, s->simulated_nodes, &shape);
    kf_place_shape_json(&shape, s->effective);
    desired = kf_grade_members(&shape);

    r = ensure_ranges(d, cluster, s, st, conds, &why, now);
    if (r == 0)
        r = ensure_members(d, cluster, s, grade, &shape, conds, &why, now, requeue_after_ms);
    if (r == 0) {
        kf_place_members_count(d, name, &existing, &ready);
        grade_change_progress(cluster, conds, existing, ready, desired, now);
        r = write_placed_status(d, cluster, s, grade, desired, ready, st, conds, &why);
    }
    if (r < 0)
        kf_log_rl_warn("cannot bring cluster \"%s\" up to date: %s; retrying", name, why.buf);
    json_decref(st);
    json_decref(conds);
    kf_strbuf_release(&why);
    return r;
}

/* Says that the cluster's settings are invalid: a Pending cluster stays
 * Pending for that reason; a placed one keeps what it runs, and a condition
 * says what is wrong. */
static int settings_invalid(struct place_ctrl *d, const json_t *cluster, const char *reason,
                            struct kf_strbuf *why)
{
    const json_t *old_conds = kf_json_path(cluster, "status.conditions");
    json_t *conds, *st;
    int r;

    if (!reason)
        reason = "InvalidSettings";
    if (!kf_json_path(cluster, "status.unit")) {
        pending_set(d, kf_obj_name(cluster), NULL); /* a capacity event does not help */
        return write_pending(d, cluster, reason, why->buf, KF_GRADE_NONE, NULL, NULL);
    }
    conds = json_pack(
        "[o]", kf_cap_condition(old_conds, "SettingsValid", false, reason, why->buf, kf_now_ms()));
    st = json_pack("{s:o}", "conditions", merge_conditions(old_conds, conds));
    r = differs(st, kf_json_path(cluster, "status"))
            ? patch_status(d, kf_obj_name(cluster), st, NULL, why)
            : 0;
    json_decref(st);
    return r;
}

/* Places a cluster that exists and is neither deleting nor paused, or
 * brings a placed one up to date. */
static int reconcile_cluster(struct place_ctrl *d, const json_t *cluster, int64_t *requeue_after_ms)
{
    struct kf_place_settings s;
    struct kf_strbuf why = KF_STRBUF_INIT;
    const char *reason = NULL;
    int r;

    r = kf_place_settings(d, cluster, &s, &reason, &why);
    if (r < 0)
        r = settings_invalid(d, cluster, reason, &why);
    else if (!kf_json_path(cluster, "status.unit"))
        r = place_new(d, kf_obj_name(cluster));
    else if ((r = kf_place_move_step(d, cluster, &s, requeue_after_ms)) == 0)
        r = reconcile_placed(d, cluster, &s, requeue_after_ms);
    else if (r > 0) /* moving to another unit (ctrl-placement-move.c) */
        r = 0;
    kf_place_settings_release(&s);
    kf_strbuf_release(&why);
    return r;
}

/* The placement controller's reconcile: one GuestCluster, or the pools' summaries. */
static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue_after_ms)
{
    struct place_ctrl *d = kf_ctrl_data(c);
    json_t *cluster = NULL;
    int r;

    if (strncmp(name, PLACE_EVENTS_KEY, strlen(PLACE_EVENTS_KEY)) == 0)
        return unit_event_write(d, name + strlen(PLACE_EVENTS_KEY));
    r = barrier(d);
    if (r < 0)
        return r;
    if (strcmp(name, PLACE_POOLS_KEY) == 0)
        return kf_place_ipam_summaries(d);
    /* Still at the revision a batch wrote (placed, not deleting, not
     * paused): nothing to do, known from the cache's revision alone, without
     * inflating and parsing the cluster (one such reconcile per placed
     * cluster). */
    if (just_placed_take(d, name, kf_informer_mod_rev(d->clusters, name)))
        return 0;
    if (kf_informer_get(d->clusters, name, &cluster) < 0) {
        r = orphan(d, name);
    } else if (kf_obj_deleting(cluster)) {
        r = teardown(d, cluster, requeue_after_ms);
    } else if (kf_json_bool(cluster, "spec.paused", false)) {
        json_decref(cluster);
        return 0;
    } else {
        r = reconcile_cluster(d, cluster, requeue_after_ms);
    }
    json_decref(cluster);
    if (kf_place_ipam_summary_due(d)) /* at most once a second */
        kf_ctrl_enqueue_after(c, PLACE_POOLS_KEY, 1000);
    return r == -KF_ENOTFOUND ? 0 : r;
}

const struct kf_ctrl_ops kf_ctrl_placement_ops = {
    .name = "placement",
    .primary_kind = "GuestCluster",
    .workers = 1,
    .setup = setup,
    .reconcile = reconcile,
    .resync_ms = 5 * 60 * 1000,
};

int kf_ctrl_placement_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct kf_capacity_options dflt;
    const struct kf_capacity_options *o = env->capacity;
    struct place_ctrl *d;

    if (!o) {
        kf_capacity_options_default(&dflt);
        o = &dflt;
    }
    d = kf_xcalloc(1, sizeof(*d));
    d->reg = env->reg;
    d->actions = env->actions;
    d->rec = kf_recorder_new(env->reg, "placement");
    if (o->grades)
        d->grades = *o->grades;
    else
        kf_grade_table_default(&d->grades);
    d->shift = o->shift;
    if (!d->shift.max_in_flight)
        kf_grade_shift_policy_default(&d->shift);
    d->policy = o->policy;
    d->default_host = o->default_host;
    kf_placer_init(&d->placer, &d->policy);
    pthread_mutex_init(&d->lock, NULL);
    (void)err;
    *ret = d;
    return 0;
}

void kf_ctrl_placement_fini(void *data)
{
    struct place_ctrl *d = data;
    size_t it = 0;
    void *v;

    if (!d)
        return;
    kf_place_api_unbind(d);
    kf_recorder_free(d->rec);
    kf_placer_release(&d->placer);
    kf_place_ipam_free(d);
    while (kf_smap_next(&d->pending, &it, NULL, &v))
        free(v);
    kf_smap_release(&d->pending);
    it = 0;
    while (kf_smap_next(&d->candidates, &it, NULL, &v))
        free(v);
    kf_smap_release(&d->candidates);
    kf_smap_release(&d->fresh);
    kf_smap_release(&d->just_placed);
    kf_smap_release(&d->retry);
    it = 0;
    while (kf_smap_next(&d->unit_events, &it, NULL, &v)) {
        struct unit_placed *up = v;

        kf_strbuf_release(&up->names);
        free(up);
    }
    kf_smap_release(&d->unit_events);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
