/* ctrl-replace.c: member replacement, the "replace" controller
 * (docs/internals/replacement.md).
 *
 * A host that has been NotReady for longer than the replacement grace
 * (kfleetd --member-replace-grace, counted from its NotReady transition,
 * so on top of the heartbeat grace) has lost its members. For each placed,
 * provisioned cluster with members there, this controller:
 *   - picks a host for each (kf_place_replace_host: the member's own zone
 *     first, room under the host mark, the cluster's release);
 *   - rebinds the same ControlPlaneMember object: spec.host, zone and
 *     labels change, ports and command line are cleared (the lifecycle
 *     controller allocates ports on the new host's address, issues
 *     certificates for it and fills the command line again), the status
 *     says Pending, and the record kfleet.io/replacement says what is
 *     under way. The lost host's agent, when it comes back, no longer lists
 *     the member and removes it (fencing);
 *   - for an etcd member, one at a time per cluster and only while the
 *     members that stay hold a quorum, has the membership changed by the
 *     agent of a healthy etcd member (kfleetd never talks to guest etcd):
 *     kfleet.io/etcd-member-change on that member asks for "member remove"
 *     of the lost one's peer URL and "member add" of the new one; the agent
 *     answers in that member's status.etcdMemberChange. Only then does
 *     the lifecycle controller fill the new member's command line, with
 *     --initial-cluster-state existing, so no process of the slot starts
 *     before etcd has forgotten the old one;
 *   - records an Event for each step and a MemberReplacement condition on
 *     the cluster.
 * Every step is written before the next starts and read back from the
 * objects, so kfleetd killed half-way resumes from the record.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/backup.h"
#include "kfleet/capacity.h"
#include "kfleet/controllers.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/lease.h"
#include "kfleet/lifecycle.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/placement.h"
#include "kfleet/registry.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-capacity.h"
#include "controllers/ctrl-lifecycle.h"
#include "controllers/ctrl-replace.h"
#include "controllers/ctrl-members.h"

KF_LOG_MODULE(replace);

#define BY_UNIT           "rp.unit"
#define PROGRESS_RECHECK  1000
#define CHANGE_TIMEOUT_MS 60000
#define RETRY_MS          5000

struct rp {
    struct kf_ctrl *ctrl;
    struct kf_registry *reg;
    struct kf_recorder *rec;
    struct kf_informer *clusters, *members, *hosts;
    struct kf_place_policy policy;
    struct kf_lease_table *leases; /* heartbeats (may be NULL) */
    int64_t host_grace_ms;
    int64_t grace_ms;
    struct kf_smap blocked; /* cluster -> the last blocked message (owned) */
};

/* --- the record and member predicates ------------------------------------------ */

json_t *kf_replace_record(const json_t *member)
{
    const char *v = json_string_value(
        json_object_get(kf_json_path(member, "metadata.annotations"), KF_ANN_REPLACEMENT));
    json_t *rec = NULL;

    if (!v || kf_json_parse(v, strlen(v), &rec, NULL) < 0 || !json_is_object(rec)) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

static const char *rec_str(const json_t *rec, const char *k)
{
    return json_string_value(json_object_get(rec, k));
}

static bool is_etcd(const json_t *member)
{
    return kf_streq(kf_json_str(member, "spec.component", NULL), "etcd");
}

static bool waiting_step(const json_t *rec)
{
    const char *step = rec_str(rec, "step");

    return kf_streq(step, KF_REPLACE_REBOUND) || kf_streq(step, KF_REPLACE_CHANGING);
}

bool kf_replace_etcd_waiting(const json_t *member)
{
    json_t *rec = is_etcd(member) ? kf_replace_record(member) : NULL;
    bool r = rec && waiting_step(rec);

    json_decref(rec);
    return r;
}

bool kf_replace_joined(const json_t *member)
{
    json_t *rec = is_etcd(member) ? kf_replace_record(member) : NULL;
    bool r = rec && !waiting_step(rec);

    json_decref(rec);
    return r;
}

bool kf_replace_settled(const json_t *member, const json_t *host)
{
    const json_t *og = kf_json_path(member, "status.observedGeneration");

    return host && json_is_true(kf_json_path(host, "status.ready")) &&
           json_is_true(kf_json_path(member, "status.ready")) &&
           kf_streq(kf_json_str(member, "status.phase", NULL), "Ready") &&
           kf_streq(kf_json_str(member, "status.host", NULL),
                    kf_json_str(member, "spec.host", "")) &&
           (!og || json_integer_value(og) >= kf_obj_generation(member));
}

bool kf_replace_hold(const struct lc_view *v, json_t *const *hosts, size_t i, const bool *restarted)
{
    const char *comp = v->members[i].component;

    if (!kf_json_str(v->objs[i], "spec.binary", NULL) || !kf_replace_settled(v->objs[i], hosts[i]))
        return false; /* not started yet, or not serving: nothing to lose */
    for (size_t j = 0; j < v->n; j++) {
        if (j == i || strcmp(v->members[j].component, comp) != 0)
            continue;
        if (restarted[j] || !kf_replace_settled(v->objs[j], hosts[j]))
            return true;
    }
    return false;
}

int64_t kf_replace_notready_ms(const json_t *host, int64_t now_ms)
{
    int64_t since = 0;

    if (!host || !json_is_false(kf_json_path(host, "status.ready")))
        return 0;
    if (kf_time_parse_rfc3339(kf_json_str(host, "status.lastTransitionTime", ""), &since) < 0 ||
        since <= 0 || since > now_ms)
        return 0;
    return now_ms - since;
}

/* --- the plan --------------------------------------------------------------------- */

void kf_replace_plan(const struct kf_replace_member *ms, size_t n, struct kf_replace_plan *ret)
{
    size_t n_etcd = 0, settled = 0;
    bool etcd_moving = false;

    memset(ret, 0, sizeof(*ret));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ms[i].component, "etcd") != 0)
            continue;
        n_etcd++;
        settled += ms[i].settled && !ms[i].lost;
        etcd_moving = etcd_moving || ms[i].moving;
    }
    for (size_t i = 0; i < n && ret->n_start < KF_REPLACE_MAX_MEMBERS; i++) {
        if (!ms[i].lost || ms[i].moving)
            continue;
        if (strcmp(ms[i].component, "etcd") != 0) {
            ret->start[ret->n_start++] = i;
            continue;
        }
        if (etcd_moving) {
            if (!ret->blocked) {
                ret->blocked = "waits for the etcd member being replaced (one at a time)";
                ret->blocked_member = i;
            }
            continue;
        }
        /* after "member remove" the membership has n_etcd - 1 members */
        if (settled < (n_etcd - 1) / 2 + 1) {
            if (!ret->blocked) {
                ret->blocked = "cannot be replaced: the etcd members that stay do not hold a "
                               "quorum (restore the cluster from a backup)";
                ret->blocked_member = i;
            }
            continue;
        }
        ret->start[ret->n_start++] = i;
        etcd_moving = true;
    }
}

/* --- live migration: the pure parts ------------------------------------------------ */

int kf_migrate_active(const json_t *gc, struct kf_move_req *ret)
{
    const json_t *ann = kf_json_path(gc, "metadata.annotations");
    struct kf_move_req m;

    if (kf_move_parse(json_string_value(json_object_get(ann, KF_MIGRATE_ANN)), &m) < 0 ||
        kf_streq(json_string_value(json_object_get(ann, KF_MIGRATE_ANN_DONE)), m.id))
        return 0;
    if (ret)
        *ret = m;
    return 1;
}

/* etcd first (its quorum is what a move risks most, with every other
 * member still serving), then the apiservers (the endpoint follows the
 * last one), then controller managers, schedulers and the rest. */
static int migrate_rank(const char *component)
{
    if (!strcmp(component, "etcd"))
        return 0;
    return !strcmp(component, "kube-apiserver") ? 1 : 2;
}

void kf_migrate_plan(const struct kf_migrate_member *ms, size_t n, struct kf_migrate_plan *ret)
{
    size_t api = 0, api_there = 0, there = 0;

    memset(ret, 0, sizeof(*ret));
    ret->next = -1;
    for (size_t i = 0; i < n; i++) {
        bool api_i = !strcmp(ms[i].component, "kube-apiserver");

        api += api_i;
        api_there += api_i && ms[i].on_target && ms[i].settled && !ms[i].moving;
        there += ms[i].on_target && ms[i].settled && !ms[i].moving;
        if (!ret->waiting && ms[i].moving) {
            ret->waiting = "is moving (one member at a time)";
            ret->waiting_member = i;
        }
    }
    ret->apiservers_there = api > 0 && api_there == api;
    ret->done = n > 0 && there == n;
    for (size_t i = 0; i < n && !ret->waiting; i++)
        if (!ms[i].settled) {
            ret->waiting = "is not Ready yet (a member moves only while every other one serves)";
            ret->waiting_member = i;
        } else if (ms[i].just_done) {
            ret->waiting = "has just moved (the members restarted for it go first)";
            ret->waiting_member = i;
        }
    if (ret->waiting || ret->done)
        return;
    for (size_t i = 0; i < n; i++) {
        if (ms[i].on_target)
            continue;
        if (ret->next < 0 ||
            migrate_rank(ms[i].component) < migrate_rank(ms[ret->next].component) ||
            (migrate_rank(ms[i].component) == migrate_rank(ms[ret->next].component) &&
             strcmp(ms[i].name, ms[ret->next].name) < 0))
            ret->next = (int)i;
    }
}

/* --- set-up ------------------------------------------------------------------------ */

static void index_unit(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *u = kf_json_str(obj, "spec.unit", NULL);

    if (u)
        add(u, ctx);
}

static void enqueue_cluster(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    const char *cl = kf_json_str(obj, "spec.cluster", NULL);

    (void)deleted;
    if (cl)
        kf_ctrl_enqueue(c, cl);
}

/* A member's event matters only to a replacement under way (the member
 * being replaced, or the helper answering): the agents' status reports of
 * every other member of a fleet would otherwise each cost a reconcile. */
static void member_to_cluster(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    const json_t *ann = kf_json_path(obj, "metadata.annotations");

    if (json_object_get(ann, KF_ANN_REPLACEMENT) || json_object_get(ann, KF_ANN_ETCD_CHANGE))
        enqueue_cluster(c, obj, deleted);
}

/* A host that is not Ready: the clusters of its members count the grace
 * (a Ready host starts nothing; one that comes back within the grace is
 * seen Ready when the count ends). */
static void host_to_clusters(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct rp *d = kf_ctrl_data(c);

    if (!deleted && json_is_false(kf_json_path(obj, "status.ready")))
        kf_informer_map_host_members(d->members, kf_obj_name(obj), c, enqueue_cluster);
}

static int add_index(struct kf_informer *inf, const char *name, kf_index_fn fn)
{
    int r = kf_informer_add_index(inf, name, fn);

    return r == -EEXIST ? 0 : r;
}

static int setup(struct kf_ctrl *c)
{
    struct rp *d = kf_ctrl_data(c);
    struct kf_ctrl_manager *m = kf_ctrl_manager_of(c);
    int r;

    d->ctrl = c;
    d->clusters = kf_ctrl_informer(m, &kf_kind_guestcluster);
    d->hosts = kf_ctrl_informer(m, &kf_kind_host);
    r = kf_ctrl_members_informer(m, &d->members);
    if (r == 0)
        r = add_index(d->members, KF_INDEX_MEMBER_HOST, kf_index_member_host);
    if (r == 0)
        r = add_index(d->hosts, BY_UNIT, index_unit);
    if (r == 0)
        r = kf_ctrl_watch(c, &kf_kind_controlplanemember, member_to_cluster);
    if (r == 0)
        r = kf_ctrl_watch(c, &kf_kind_host, host_to_clusters);
    return r;
}

int kf_ctrl_replace_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct rp *d = kf_xcalloc(1, sizeof(*d));
    struct kf_lifecycle_options lo;

    (void)err;
    kf_lifecycle_options_default(&lo);
    if (env->lifecycle)
        lo = *env->lifecycle;
    d->reg = env->reg;
    d->grace_ms = lo.replace_grace_ms;
    kf_place_policy_default(&d->policy);
    d->host_grace_ms = KF_CAPACITY_HOST_GRACE_MS;
    if (env->capacity) {
        d->policy = env->capacity->policy;
        if (env->capacity->host_grace_ms > 0)
            d->host_grace_ms = env->capacity->host_grace_ms;
    }
    d->leases = env->leases;
    d->rec = kf_recorder_new(env->reg, "replace");
    kf_smap_init(&d->blocked);
    *ret = d;
    return 0;
}

void kf_ctrl_replace_fini(void *data)
{
    struct rp *d = data;
    size_t it = 0;
    const char *k;
    void *v;

    if (!d)
        return;
    while (kf_smap_next(&d->blocked, &it, &k, &v))
        free(v);
    kf_smap_release(&d->blocked);
    kf_recorder_free(d->rec);
    free(d);
}

/* --- a cluster's picture ------------------------------------------------------------ */

static void peer_url(const json_t *host, int port, char *buf, size_t size)
{
    const char *a = kf_host_address(host, "127.0.0.1");

    if (strchr(a, ':'))
        snprintf(buf, size, "https://[%s]:%d", a, port);
    else
        snprintf(buf, size, "https://%s:%d", a, port);
}

/* A heartbeat within the heartbeat grace: the host is back, whatever its
 * status says until the host-lifecycle controller writes it Ready. */
static bool heartbeat_recent(struct rp *d, const char *host, int64_t now)
{
    int64_t last = d->leases && host ? kf_lease_last(d->leases, host) : 0;

    return last > 0 && now - last < d->host_grace_ms;
}

struct picture {
    json_t *gc;
    json_t **ms;    /* members not being deleted, by name */
    json_t **hosts; /* each member's Host (NULL: unknown) */
    struct kf_replace_member rm[KF_REPLACE_MAX_MEMBERS];
    size_t n;
    int64_t now, next_ms; /* when a NotReady host passes the grace */
    bool migrating;       /* a live migration is under way: mig says where */
    struct kf_move_req mig;
};

static int cmp_name(const void *a, const void *b)
{
    return strcmp(kf_obj_name(*(json_t *const *)a), kf_obj_name(*(json_t *const *)b));
}

static void picture_build(struct rp *d, struct picture *p)
{
    char **names = NULL;
    size_t n =
        kf_informer_index_names(d->members, KF_MEMBERS_BY_CLUSTER, kf_obj_name(p->gc), &names);

    p->ms = kf_xcalloc(n + 1, sizeof(*p->ms));
    p->hosts = kf_xcalloc(n + 1, sizeof(*p->hosts));
    for (size_t i = 0; i < n && p->n < KF_REPLACE_MAX_MEMBERS; i++) {
        json_t *m = kf_informer_get_obj(d->members, names[i]);

        if (!m || kf_obj_deleting(m) ||
            !kf_streq(kf_json_str(m, "spec.cluster", NULL), kf_obj_name(p->gc))) {
            json_decref(m);
            continue;
        }
        p->ms[p->n++] = m;
    }
    kf_ctrl_names_free(names, n);
    qsort(p->ms, p->n, sizeof(*p->ms), cmp_name);
    for (size_t i = 0; i < p->n; i++) {
        json_t *m = p->ms[i], *rec = kf_replace_record(m);
        int64_t down;
        const char *step = rec_str(rec, "step");

        p->hosts[i] = kf_informer_get_obj(d->hosts, kf_json_str(m, "spec.host", NULL));
        down = kf_replace_notready_ms(p->hosts[i], p->now);
        p->rm[i] = (struct kf_replace_member){
            .name = kf_obj_name(m),
            .component = kf_json_str(m, "spec.component", ""),
            .lost = d->grace_ms > 0 && down >= d->grace_ms &&
                    !heartbeat_recent(d, kf_json_str(m, "spec.host", NULL), p->now),
            .settled = kf_replace_settled(m, p->hosts[i]),
            .moving = rec && !kf_streq(step, KF_REPLACE_DONE),
        };
        /* a replacement whose new host is lost in turn, once etcd knows
         * the new member, is superseded by a new one */
        if (p->rm[i].lost && p->rm[i].moving && !kf_replace_etcd_waiting(m))
            p->rm[i].moving = false;
        if (down > 0 && down < d->grace_ms) {
            int64_t left = d->grace_ms - down;

            p->next_ms = p->next_ms ? KF_MIN(p->next_ms, left) : left;
        }
        json_decref(rec);
    }
}

static void picture_release(struct picture *p)
{
    for (size_t i = 0; i < p->n; i++) {
        json_decref(p->ms[i]);
        json_decref(p->hosts[i]);
    }
    free(p->ms);
    free(p->hosts);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The unit's hosts as placement input, allocations from the members bound
 * to them; strings borrow from hosts_objs (released by the caller). */
static size_t unit_hosts(struct rp *d, const char *unit, json_t ***ret_objs,
                         struct kf_place_host **ret_hosts, const char **zones, unsigned *n_zones)
{
    char **names = NULL;
    size_t n = kf_informer_index_names(d->hosts, BY_UNIT, unit, &names), k = 0;
    json_t **objs = kf_xcalloc(n + 1, sizeof(*objs));
    struct kf_place_host *hs = kf_xcalloc(n + 1, sizeof(*hs));

    *n_zones = 0;
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        json_t *h = kf_informer_get_obj(d->hosts, names[i]);
        const char *zone = kf_json_str(h, "spec.zone", "");
        const json_t *alloc = kf_json_path(h, "status.allocatable");
        char **ms = NULL;
        size_t nm;
        unsigned z = 0;

        if (!h || !kf_streq(kf_json_str(h, "spec.role", "meta"), "meta")) {
            json_decref(h);
            continue;
        }
        while (z < *n_zones && strcmp(zones[z], zone) != 0)
            z++;
        if (z == *n_zones && z < KF_PLACE_MAX_ZONES)
            zones[(*n_zones)++] = zone;
        objs[k] = h;
        hs[k] = (struct kf_place_host){
            .name = kf_obj_name(h),
            .zone = KF_MIN(z, KF_PLACE_MAX_ZONES - 1),
            .capacity = kf_cap_res_parse(alloc ? alloc : kf_json_path(h, "spec.capacity")),
            .ready = json_is_true(kf_json_path(h, "status.ready")),
            .unschedulable = json_is_true(kf_json_path(h, "spec.unschedulable")),
        };
        if (json_is_array(kf_json_path(h, "status.kubernetesVersions"))) {
            const json_t *v;
            size_t j;

            hs[k].k8s_reported = true;
            json_array_foreach(kf_json_path(h, "status.kubernetesVersions"), j, v)
            {
                const char *s = json_string_value(v);
                unsigned minor = 0;

                if (s && sscanf(s, "%*[v]1.%u", &minor) != 1)
                    sscanf(s, "1.%u", &minor);
                if (minor > 0 && minor < 64)
                    hs[k].k8s_minors |= UINT64_C(1) << minor;
            }
        }
        nm = kf_informer_index_names(d->members, KF_INDEX_MEMBER_HOST, names[i], &ms);
        for (size_t j = 0; j < nm; j++) {
            json_t *m = kf_informer_get_obj(d->members, ms[j]);
            struct kf_res r = kf_cap_res_parse(kf_json_path(m, "spec.resources.requests"));

            hs[k].allocated.cpu_milli += r.cpu_milli;
            hs[k].allocated.mem_bytes += r.mem_bytes;
            hs[k].members++;
            json_decref(m);
        }
        kf_ctrl_names_free(ms, nm);
        k++;
    }
    kf_ctrl_names_free(names, n);
    *ret_objs = objs;
    *ret_hosts = hs;
    return k;
}

/* --- writes -------------------------------------------------------------------------- */

/* Merge-patches member (spec and metadata, or status) with the member's
 * resourceVersion as a precondition: what was decided from it still holds. */
static int patch_member(struct rp *d, const json_t *m, json_t *body, bool status,
                        struct kf_strbuf *err)
{
    char rv[32];
    int r;

    snprintf(rv, sizeof(rv), "%lld", (long long)kf_obj_rv(m));
    if (!json_object_get(body, "metadata"))
        json_object_set_new(body, "metadata", json_object());
    json_object_set_new(json_object_get(body, "metadata"), "resourceVersion", json_string(rv));
    r = kf_cap_patch(d->reg, &kf_kind_controlplanemember, kf_obj_name(m), body, status, NULL, err);
    json_decref(body);
    return r;
}

/* Writes rec (consumed) as member m's record. */
static int write_record(struct rp *d, const json_t *m, json_t *rec, struct kf_strbuf *err)
{
    char *text = kf_json_dump(rec, NULL);
    json_t *body = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", KF_ANN_REPLACEMENT, text);

    free(text);
    json_decref(rec);
    return patch_member(d, m, body, false, err);
}

static void blocked(struct rp *d, const json_t *gc, const char *msg)
{
    char *old = kf_smap_get(&d->blocked, kf_obj_name(gc));

    if (old && !strcmp(old, msg))
        return;
    free(kf_smap_remove(&d->blocked, kf_obj_name(gc)));
    kf_smap_put(&d->blocked, kf_obj_name(gc), kf_xstrdup(msg));
    kf_log_warn("cluster \"%s\": %s", kf_obj_name(gc), msg);
    kf_recorder_eventf(d->rec, gc, KF_EVENT_WARNING, "ReplacementBlocked", "%s", msg);
}

/* The other members as placement peers, on the unit's hosts. */
static size_t peers_of(const struct picture *p, size_t self, const struct kf_place_host *hs,
                       size_t nh, struct kf_place_peer *peers)
{
    size_t k = 0;

    for (size_t i = 0; i < p->n; i++) {
        const char *h = kf_json_str(p->ms[i], "spec.host", "");

        if (i == self || p->rm[i].lost)
            continue;
        peers[k] =
            (struct kf_place_peer){ SIZE_MAX, !strcmp(p->rm[i].component, p->rm[self].component) };
        for (size_t j = 0; j < nh; j++)
            if (!strcmp(hs[j].name, h))
                peers[k].host = j;
        k++;
    }
    return k;
}

static int minor_of(const char *v)
{
    unsigned m = 0;

    if (v && (sscanf(v, "1.%u", &m) == 1 || sscanf(v, "v1.%u", &m) == 1) && m < 64)
        return (int)m;
    return 0;
}

/* Chooses a host for member i; its name into target (0) or -ENOSPC with why. */
static int choose(struct rp *d, const struct picture *p, size_t i, char *target, size_t size,
                  char *zone, size_t zsize, struct kf_strbuf *why)
{
    const char *unit = p->migrating ? p->mig.to : kf_json_str(p->gc, "status.unit", "");
    const char *zones[KF_PLACE_MAX_ZONES];
    struct kf_place_peer peers[KF_REPLACE_MAX_MEMBERS];
    struct kf_place_host *hs = NULL;
    json_t **objs = NULL;
    unsigned nz = 0;
    size_t nh = unit_hosts(d, unit, &objs, &hs, zones, &nz), at = SIZE_MAX;
    const json_t *m = p->ms[i];
    const char *comp = p->rm[i].component;
    struct kf_place_unit u = {
        .name = unit, .zones = zones, .n_zones = nz, .hosts = hs, .n_hosts = nh
    };
    struct kf_place_replace r = {
        .component = comp,
        .req = kf_cap_res_parse(kf_json_path(m, "spec.resources.requests")),
        .lost_host = SIZE_MAX,
        .k8s_minor = kf_str_has_prefix(comp, "kube-")
                         ? minor_of(kf_json_str(m, "spec.version",
                                                kf_json_str(p->gc, "status.version", NULL)))
                         : 0,
        .peers = peers,
    };
    int ret;

    for (size_t j = 0; j < nh; j++) {
        if (!strcmp(hs[j].name, kf_json_str(m, "spec.host", "")))
            r.lost_host = j;
    }
    for (unsigned z = 0; z < nz; z++)
        if (!strcmp(zones[z], kf_json_str(m, "spec.zone", "")))
            r.zone = z;
    if (r.lost_host < nh)
        r.zone = hs[r.lost_host].zone;
    r.n_peers = peers_of(p, i, hs, nh, peers);
    ret = kf_place_replace_host(&u, &d->policy, &r, &at, why);
    if (ret == 0) {
        snprintf(target, size, "%s", hs[at].name);
        snprintf(zone, zsize, "%s", zones[hs[at].zone]);
    }
    for (size_t j = 0; j < nh; j++)
        json_decref(objs[j]);
    free(objs);
    free(hs);
    return ret;
}

/* Moves member i of p to a host of its unit: the rebind. */
static int start_one(struct rp *d, struct picture *p, size_t i, struct kf_strbuf *err)
{
    const json_t *m = p->ms[i];
    struct kf_strbuf why = KF_STRBUF_INIT;
    char target[254], zone[64], old_peer[300] = "-", id[32], now[40];
    int peer = (int)kf_json_int(m, "spec.ports.peer", 0);
    bool etcd = is_etcd(m);
    json_t *rec, *body, *labels;
    char *text;
    int r;

    r = choose(d, p, i, target, sizeof(target), zone, sizeof(zone), &why);
    if (r < 0) {
        char *msg = kf_xasprintf("member %s on %s host %s: %s", kf_obj_name(m),
                                 p->migrating ? "migrating" : "lost",
                                 kf_json_str(m, "spec.host", "?"), why.buf);

        blocked(d, p->gc, msg);
        free(msg);
        kf_strbuf_release(&why);
        return 0;
    }
    if (etcd && peer > 0)
        peer_url(p->hosts[i], peer, old_peer, sizeof(old_peer));
    snprintf(id, sizeof(id), "%lld", (long long)p->now);
    kf_time_format_rfc3339(p->now, now, sizeof(now));
    rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:I}", "id", id, "from",
                    kf_json_str(m, "spec.host", ""), "to", target, "oldPeerURL", old_peer, "step",
                    etcd ? KF_REPLACE_REBOUND : KF_REPLACE_MOVED, "attempt", 1, "since", now,
                    "sinceMillis", (json_int_t)p->now, "stepMillis", (json_int_t)p->now);
    if (p->migrating)
        json_object_set_new(rec, "migration", json_string(p->mig.id));
    text = kf_json_dump(rec, NULL);
    json_decref(rec);
    labels = json_pack("{s:s}", KF_LABEL_ZONE, zone);
    json_object_set_new(labels, KF_LABEL_HOST,
                        strlen(target) <= 63 ? json_string(target) : json_null());
    body = json_pack("{s:{s:o, s:{s:s}}, s:{s:s, s:s, s:n, s:n, s:n}}", "metadata", "labels",
                     labels, "annotations", KF_ANN_REPLACEMENT, text, "spec", "host", target,
                     "zone", zone, "ports", "binary", "args");
    free(text);
    r = patch_member(d, m, body, false, err);
    if (r == 0) {
        char *msg = p->migrating
                        ? kf_xasprintf("migration from unit %s to unit %s: moving member %s from "
                                       "host %s to %s",
                                       p->mig.from, p->mig.to, kf_obj_name(m),
                                       kf_json_str(m, "spec.host", "?"), why.buf)
                        : kf_xasprintf("host %s is NotReady past the replacement grace: moving "
                                       "member %s to %s",
                                       kf_json_str(m, "spec.host", "?"), kf_obj_name(m), why.buf);

        kf_log_info("cluster \"%s\": %s", kf_obj_name(p->gc), msg);
        kf_recorder_eventf(d->rec, p->gc, KF_EVENT_NORMAL,
                           p->migrating ? "MemberMigrating" : "MemberReplacing", "%s", msg);
        free(msg);
        body = json_pack("{s:{s:s, s:b, s:i, s:n, s:n, s:n, s:n, s:s}}", "status", "phase",
                         "Pending", "ready", 0, "pid", 0, "host", "startedAt", "lastExitCode",
                         "version", "message",
                         p->migrating ? "moved here by a migration; waiting for its agent"
                                      : "moved here from a lost host; waiting for its agent");
        /* the member's resourceVersion changed: write status without one */
        kf_cap_patch(d->reg, &kf_kind_controlplanemember, kf_obj_name(m), body, true, NULL, NULL);
        json_decref(body);
    }
    kf_strbuf_release(&why);
    return r;
}

/* --- progress of a replacement under way --------------------------------------------- */

/* A healthy etcd member of the cluster other than i whose agent can
 * change the membership (-1: none). */
static int helper_of(const struct picture *p, size_t i, const char *prefer)
{
    int any = -1;

    for (size_t j = 0; j < p->n; j++) {
        if (j == i || strcmp(p->rm[j].component, "etcd") != 0 || !p->rm[j].settled || p->rm[j].lost)
            continue;
        if (prefer && !strcmp(kf_obj_name(p->ms[j]), prefer))
            return (int)j;
        if (any < 0)
            any = (int)j;
    }
    return any;
}

static json_t *rec_step(const json_t *rec, const char *step, int64_t now)
{
    json_t *n = json_deep_copy(rec);

    json_object_set_new(n, "step", json_string(step));
    json_object_set_new(n, "stepMillis", json_integer(now));
    return n;
}

/* Rebound: once the member has its ports on the new host, ask a healthy
 * member's agent to remove the old peer and add the new one. */
static int etcd_ask(struct rp *d, struct picture *p, size_t i, const json_t *rec,
                    struct kf_strbuf *err)
{
    const json_t *m = p->ms[i];
    int peer = (int)kf_json_int(m, "spec.ports.peer", 0), h;
    char url[300], request[64], *value;
    json_t *body, *n;
    int r;

    if (peer <= 0 || !p->hosts[i])
        return 0; /* the lifecycle controller gives it ports first */
    h = helper_of(p, i, rec_str(rec, "helper"));
    if (h < 0)
        return 0; /* no healthy member now; the plan made sure one stays */
    peer_url(p->hosts[i], peer, url, sizeof(url));
    snprintf(request, sizeof(request), "%s-%lld", rec_str(rec, "id"),
             (long long)json_integer_value(json_object_get(rec, "attempt")));
    {
        /* the lost member's URL, and one an earlier attempt added that
         * will not start (its port or address changed since) */
        const char *old = rec_str(rec, "oldPeerURL"), *prev = rec_str(rec, "newPeerURL");
        char olds[700];

        if (prev && strcmp(prev, url) != 0 && !kf_streq(prev, old))
            snprintf(olds, sizeof(olds), "%s%s%s", kf_streq(old, "-") ? "" : old,
                     kf_streq(old, "-") ? "" : ",", prev);
        else
            snprintf(olds, sizeof(olds), "%s", old ? old : "-");
        value = kf_xasprintf("%s %s %s %s", request, olds, kf_obj_name(m), url);
    }
    body = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", KF_ANN_ETCD_CHANGE, value);
    free(value);
    r = patch_member(d, p->ms[h], body, false, err);
    if (r < 0)
        return r;
    n = rec_step(rec, KF_REPLACE_CHANGING, p->now);
    json_object_set_new(n, "helper", json_string(kf_obj_name(p->ms[h])));
    json_object_set_new(n, "request", json_string(request));
    json_object_set_new(n, "newPeerURL", json_string(url));
    return write_record(d, m, n, err);
}

/* Changing: the helper's answer. */
static int etcd_answer(struct rp *d, struct picture *p, size_t i, const json_t *rec,
                       struct kf_strbuf *err)
{
    const json_t *m = p->ms[i], *helper = NULL, *ans;
    const char *req = rec_str(rec, "request"), *hname = rec_str(rec, "helper");
    int64_t step_ms = json_integer_value(json_object_get(rec, "stepMillis"));
    bool helper_ok = false;
    json_t *n;

    for (size_t j = 0; j < p->n; j++)
        if (kf_streq(kf_obj_name(p->ms[j]), hname)) {
            helper = p->ms[j];
            helper_ok = p->rm[j].settled && !p->rm[j].lost;
        }
    ans = kf_json_path(helper, "status.etcdMemberChange");
    if (ans && kf_streq(kf_json_str(ans, "id", NULL), req)) {
        char url[300] = "";
        int peer = (int)kf_json_int(m, "spec.ports.peer", 0);

        if (peer > 0 && p->hosts[i])
            peer_url(p->hosts[i], peer, url, sizeof(url));
        if (kf_streq(kf_json_str(ans, "phase", NULL), "Succeeded") &&
            !kf_streq(url, rec_str(rec, "newPeerURL"))) {
            /* its address or port changed after the request: the member
             * added is not the one that would start; remove that one and
             * add this one */
            n = rec_step(rec, KF_REPLACE_REBOUND, p->now);
            json_object_set_new(
                n, "attempt",
                json_integer(json_integer_value(json_object_get(rec, "attempt")) + 1));
            return write_record(d, m, n, err);
        }
        if (kf_streq(kf_json_str(ans, "phase", NULL), "Succeeded")) {
            int r = write_record(d, m, rec_step(rec, KF_REPLACE_ADDED, p->now), err);

            if (r == 0)
                kf_recorder_eventf(d->rec, p->gc, KF_EVENT_NORMAL, "EtcdMemberReplaced",
                                   "etcd member %s: %s (the agent of %s did it through member %s)",
                                   kf_obj_name(m), kf_json_str(ans, "message", ""),
                                   kf_json_str(helper, "spec.host", "?"), hname);
            return r;
        }
        kf_recorder_eventf(d->rec, p->gc, KF_EVENT_WARNING, "EtcdMemberChangeFailed",
                           "etcd member %s: the agent of %s could not change the membership: %s; "
                           "trying again",
                           kf_obj_name(m), kf_json_str(helper, "spec.host", "?"),
                           kf_json_str(ans, "message", ""));
    } else if (helper_ok && p->now - step_ms < CHANGE_TIMEOUT_MS) {
        return 0; /* asked, not answered yet */
    } else if (p->now - step_ms < RETRY_MS) {
        return 0;
    }
    /* failed, or the helper went away or did not answer: ask again */
    n = rec_step(rec, KF_REPLACE_REBOUND, p->now);
    json_object_set_new(n, "attempt",
                        json_integer(json_integer_value(json_object_get(rec, "attempt")) + 1));
    if (!helper_ok)
        json_object_del(n, "helper");
    return write_record(d, m, n, err);
}

/* Moved / Added: done once Ready on the new host. */
static int finish(struct rp *d, struct picture *p, size_t i, const json_t *rec,
                  struct kf_strbuf *err)
{
    const json_t *m = p->ms[i];
    int64_t since = json_integer_value(json_object_get(rec, "sinceMillis"));
    int r;

    if (!p->rm[i].settled)
        return 0;
    /* the record first: a write that conflicts is done again on the next
     * pass, and the Event is then said once */
    r = write_record(d, m, rec_step(rec, KF_REPLACE_DONE, p->now), err);
    if (r < 0)
        return r;
    kf_log_info("cluster \"%s\": member %s %s: Ready on %s (was on %s)", kf_obj_name(p->gc),
                kf_obj_name(m), rec_str(rec, "migration") ? "moved" : "replaced",
                kf_json_str(m, "spec.host", "?"), rec_str(rec, "from"));
    kf_recorder_eventf(d->rec, p->gc, KF_EVENT_NORMAL,
                       rec_str(rec, "migration") ? "MemberMigrated" : "MemberReplaced",
                       "member %s is Ready on %s (was on %s); %s in %lld s", kf_obj_name(m),
                       kf_json_str(m, "spec.host", "?"), rec_str(rec, "from"),
                       rec_str(rec, "migration") ? "moved" : "replaced",
                       (long long)((p->now - since) / 1000));
    return 0;
}

static int progress(struct rp *d, struct picture *p, size_t i, struct kf_strbuf *err)
{
    json_t *rec = kf_replace_record(p->ms[i]);
    const char *step = rec_str(rec, "step");
    int r = 0;

    if (kf_streq(step, KF_REPLACE_REBOUND))
        r = etcd_ask(d, p, i, rec, err);
    else if (kf_streq(step, KF_REPLACE_CHANGING))
        r = etcd_answer(d, p, i, rec, err);
    else if (kf_streq(step, KF_REPLACE_ADDED) || kf_streq(step, KF_REPLACE_MOVED))
        r = finish(d, p, i, rec, err);
    json_decref(rec);
    return r;
}

/* --- the cluster's condition ---------------------------------------------------------- */

/* The MemberReplacement condition (new reference), or NULL when the
 * cluster never had one and needs none. Migration's own moves are said by
 * its Migrated condition. */
static json_t *replace_condition(const json_t *gc, const struct picture *p,
                                 const struct kf_replace_plan *plan)
{
    const json_t *old = kf_json_path(gc, "status.conditions");
    struct kf_strbuf msg = KF_STRBUF_INIT;
    bool active = false;
    json_t *cond;

    for (size_t i = 0; i < p->n; i++) {
        json_t *rec = kf_replace_record(p->ms[i]);

        if (p->rm[i].moving && rec && !rec_str(rec, "migration")) {
            kf_strbuf_addf(&msg, "%s%s from %s to %s: %s", active ? "; " : "", p->rm[i].name,
                           rec_str(rec, "from"), rec_str(rec, "to"), rec_str(rec, "step"));
            active = true;
        }
        json_decref(rec);
    }
    if (plan->blocked)
        kf_strbuf_addf(&msg, "%s%s %s", msg.len ? "; " : "", p->rm[plan->blocked_member].name,
                       plan->blocked);
    if (!active && !plan->blocked && !kf_cap_condition_find(old, "MemberReplacement")) {
        kf_strbuf_release(&msg);
        return NULL; /* never had one: no condition */
    }
    cond = kf_cap_condition(old, "MemberReplacement", active || plan->blocked,
                            active          ? "InProgress"
                            : plan->blocked ? "Blocked"
                                            : "Completed",
                            msg.len ? msg.buf : "every member runs on a Ready host", p->now);
    kf_strbuf_release(&msg);
    return cond;
}

/* Writes the conditions of add[] (consumed; NULL entries skipped) over
 * the cluster's, and status.unit when unit is not NULL, in one status
 * write with the cluster's resourceVersion as a precondition; nothing
 * when nothing changes. */
static int write_status(struct rp *d, const json_t *gc, json_t **add, size_t n_add,
                        const char *unit, struct kf_strbuf *err)
{
    const json_t *old = kf_json_path(gc, "status.conditions"), *c;
    json_t *conds = json_array(), *body;
    char rv[32];
    size_t k;
    int r;

    json_array_foreach(old, k, c)
    {
        bool replaced = false;

        for (size_t j = 0; j < n_add; j++)
            replaced = replaced || (add[j] && kf_streq(kf_json_str(c, "type", NULL),
                                                       kf_json_str(add[j], "type", "")));
        if (!replaced)
            json_array_append(conds, (json_t *)c);
    }
    for (size_t j = 0; j < n_add; j++)
        if (add[j])
            json_array_append_new(conds, add[j]);
    if (!unit && kf_cap_conditions_same(old, conds)) {
        json_decref(conds);
        return 0;
    }
    snprintf(rv, sizeof(rv), "%lld", (long long)kf_obj_rv(gc));
    body = json_pack("{s:{s:s}, s:{s:o}}", "metadata", "resourceVersion", rv, "status",
                     "conditions", conds);
    if (unit)
        json_object_set_new(json_object_get(body, "status"), "unit", json_string(unit));
    r = kf_cap_patch(d->reg, &kf_kind_guestcluster, kf_obj_name(gc), body, true, NULL, err);
    json_decref(body);
    return r;
}

/* --- live migration: the steps ------------------------------------------------------- */

static bool on_unit(const json_t *host, const char *unit)
{
    return host && kf_streq(kf_json_str(host, "spec.unit", NULL), unit);
}

/* Whether member i's move in this migration ended within
 * KF_MIGRATE_SETTLE_MS. */
static bool just_done(const struct picture *p, size_t i)
{
    json_t *rec = kf_replace_record(p->ms[i]);
    int64_t at = json_integer_value(json_object_get(rec, "stepMillis"));
    bool r = rec && kf_streq(rec_str(rec, "step"), KF_REPLACE_DONE) &&
             kf_streq(rec_str(rec, "migration"), p->mig.id) && p->now - at < KF_MIGRATE_SETTLE_MS;

    json_decref(rec);
    return r;
}

/* The Migrated condition while a migration runs or once it is done (new
 * reference). */
static json_t *migrate_condition(const struct picture *p, const struct kf_migrate_plan *mp,
                                 size_t moved)
{
    const json_t *old = kf_json_path(p->gc, "status.conditions");
    struct kf_strbuf msg = KF_STRBUF_INIT;
    json_t *cond;

    kf_strbuf_addf(&msg, "from unit %s to unit %s: %zu of %zu members moved", p->mig.from,
                   p->mig.to, moved, p->n);
    for (size_t i = 0; i < p->n; i++) {
        json_t *rec = kf_replace_record(p->ms[i]);

        if (p->rm[i].moving && rec)
            kf_strbuf_addf(&msg, "; %s from %s to %s: %s", p->rm[i].name, rec_str(rec, "from"),
                           rec_str(rec, "to"), rec_str(rec, "step"));
        json_decref(rec);
    }
    if (mp->waiting && !p->rm[mp->waiting_member].moving)
        kf_strbuf_addf(&msg, "; %s %s", p->rm[mp->waiting_member].name, mp->waiting);
    if (!mp->waiting && !mp->done && mp->next >= 0)
        kf_strbuf_addf(&msg, "; next: %s", p->rm[mp->next].name);
    if (mp->done && kf_streq(kf_json_str(p->gc, "status.unit", NULL), p->mig.to)) {
        kf_strbuf_reset(&msg);
        kf_strbuf_addf(&msg, "moved from unit %s to unit %s: every member runs there", p->mig.from,
                       p->mig.to);
        cond = kf_cap_condition(old, KF_MIGRATE_CONDITION, true, "Completed", msg.buf, p->now);
    } else {
        cond = kf_cap_condition(old, KF_MIGRATE_CONDITION, false, "InProgress", msg.buf, p->now);
    }
    kf_strbuf_release(&msg);
    return cond;
}

/* One step of the cluster's migration: marks the member that moves next
 * (the replacement's rebind does the rest), says when the endpoint
 * switches units (*ret_unit) and when it is done (*ret_done). Its
 * condition into *ret_cond. */
static void migrate_step(struct picture *p, const char **ret_unit, json_t **ret_cond,
                         bool *ret_done)
{
    struct kf_migrate_member ms[KF_REPLACE_MAX_MEMBERS];
    const char *unit = kf_json_str(p->gc, "status.unit", "");
    struct kf_migrate_plan mp;
    size_t moved = 0;

    for (size_t i = 0; i < p->n; i++) {
        ms[i] = (struct kf_migrate_member){
            .name = p->rm[i].name,
            .component = p->rm[i].component,
            .on_target = on_unit(p->hosts[i], p->mig.to),
            .settled = p->rm[i].settled,
            .moving = p->rm[i].moving,
            .just_done = just_done(p, i),
        };
        moved += ms[i].on_target && !ms[i].moving;
    }
    kf_migrate_plan(ms, p->n, &mp);
    if (mp.next >= 0)
        p->rm[mp.next].lost = true; /* kf_replace_plan starts it */
    if (mp.apiservers_there && strcmp(unit, p->mig.to) != 0)
        *ret_unit = p->mig.to;
    *ret_cond = migrate_condition(p, &mp, moved);
    *ret_done = mp.done && !strcmp(unit, p->mig.to);
}

/* The end of a migration, once its Completed condition is written: its id
 * recorded on the cluster (KF_MIGRATE_ANN_DONE). */
static int migrate_done(struct rp *d, const struct picture *p, struct kf_strbuf *err)
{
    json_t *body =
        json_pack("{s:{s:{s:s}}}", "metadata", "annotations", KF_MIGRATE_ANN_DONE, p->mig.id);
    long long id = 0;
    int r = kf_cap_patch(d->reg, &kf_kind_guestcluster, kf_obj_name(p->gc), body, false, NULL, err);

    json_decref(body);
    sscanf(p->mig.id, "%lld", &id);
    if (r == 0) {
        kf_log_info("cluster \"%s\": migrated from unit %s to unit %s", kf_obj_name(p->gc),
                    p->mig.from, p->mig.to);
        kf_recorder_eventf(d->rec, p->gc, KF_EVENT_NORMAL, "Migrated",
                           "every member runs on unit %s (moved from unit %s in %lld s)", p->mig.to,
                           p->mig.from, id > 0 ? (p->now - id) / 1000 : 0LL);
    }
    return r;
}

/* --- reconcile ------------------------------------------------------------------------ */

static bool provisioned(const json_t *gc)
{
    const char *p = kf_json_str(gc, "status.phase", "");

    return !strcmp(p, "Running") || !strcmp(p, "Degraded") || !strcmp(p, "Upgrading") ||
           !strcmp(p, "Migrating");
}

/* A restore the backup controller drives (kfleet.io/restore without its
 * kfleet.io/restored): members are not moved under it. */
static bool restoring(const json_t *gc)
{
    const json_t *ann = kf_json_path(gc, "metadata.annotations");
    const char *want = json_string_value(json_object_get(ann, "kfleet.io/restore"));
    const char *done = json_string_value(json_object_get(ann, "kfleet.io/restored"));

    return want && (!done || strncmp(want, done, strlen(done)) != 0 || want[strlen(done)] != ' ');
}

static int reconcile_cluster(struct rp *d, json_t *gc, int64_t *requeue, struct kf_strbuf *err)
{
    struct picture p = { .gc = gc, .now = kf_now_ms() };
    struct kf_replace_plan plan;
    json_t *conds[2] = { NULL, NULL };
    const char *unit = NULL;
    bool active = false, done = false;
    int r = 0;

    picture_build(d, &p);
    p.migrating = kf_migrate_active(gc, &p.mig) == 1;
    for (size_t i = 0; i < p.n && r == 0; i++)
        if (p.rm[i].moving) {
            r = progress(d, &p, i, err);
            active = true;
        }
    if (p.migrating && r == 0) {
        migrate_step(&p, &unit, &conds[1], &done);
        active = true;
    }
    kf_replace_plan(p.rm, p.n, &plan);
    for (size_t k = 0; k < plan.n_start && r == 0; k++) {
        r = start_one(d, &p, plan.start[k], err);
        active = true;
    }
    if (plan.blocked && r == 0) {
        char *msg = kf_xasprintf("member %s %s", p.rm[plan.blocked_member].name, plan.blocked);

        if (!strstr(plan.blocked, "one at a time"))
            blocked(d, gc, msg);
        free(msg);
    }
    if (r == 0) {
        conds[0] = replace_condition(gc, &p, &plan);
        r = write_status(d, gc, conds, 2, unit, err);
    } else {
        json_decref(conds[1]);
    }
    if (r == 0 && done)
        r = migrate_done(d, &p, err);
    if (r == 0 && unit) {
        kf_log_info("cluster \"%s\": every apiserver runs on unit %s: the endpoint moves there",
                    kf_obj_name(gc), unit);
        kf_recorder_eventf(d->rec, gc, KF_EVENT_NORMAL, "EndpointMoved",
                           "every apiserver runs on unit %s: the cluster's endpoint is served by "
                           "unit %s's load balancer now (was unit %s's)",
                           unit, unit, p.mig.from);
    }
    if (active || plan.blocked)
        *requeue = PROGRESS_RECHECK;
    else if (p.next_ms > 0)
        *requeue = p.next_ms + 100;
    picture_release(&p);
    return r;
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue)
{
    struct rp *d = kf_ctrl_data(c);
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *gc = NULL;
    int r = 0;

    if (kf_registry_get(d->reg, &kf_kind_guestcluster, name, &gc) < 0)
        return 0;
    if (d->grace_ms <= 0 && !kf_migrate_active(gc, NULL)) {
        json_decref(gc); /* replacement off, and no migration asked */
        return 0;
    }
    if (!kf_obj_deleting(gc) && kf_json_str(gc, "status.unit", NULL) && provisioned(gc) &&
        !json_is_true(kf_json_path(gc, "spec.paused")) && !restoring(gc))
        r = reconcile_cluster(d, gc, requeue, &err);
    if (r == -KF_ECONFLICT) {
        r = 0; /* an object changed under us: look again soon, from the new state */
        *requeue = 200;
    } else if (r < 0)
        kf_log_warn("cluster \"%s\": %s; trying again", name, err.len ? err.buf : strerror(-r));
    json_decref(gc);
    kf_strbuf_release(&err);
    return r;
}

const struct kf_ctrl_ops kf_ctrl_replace_ops = {
    .name = "replace",
    .primary_kind = "GuestCluster",
    .workers = 1,
    .setup = setup,
    .reconcile = reconcile,
};
