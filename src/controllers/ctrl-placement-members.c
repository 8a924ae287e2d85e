/* ctrl-placement-members.c: the ControlPlaneMembers of a placed cluster.
 *
 * A member is one replica of one component: "<cluster>-<component>-<i>",
 * with spec.cluster, component, index, version, host, zone and
 * resources.requests from the cluster's control-plane shape (the grade
 * table, adjusted by the profile). It is created bound: the placement
 * decision chose its host (the library's zone spread: etcd one per zone,
 * apiservers round-robin over zones). binary, args and ports are left to
 * the agents' work; status belongs to the agent that runs the member.
 *
 * Keeping them in step with the shape (kf_place_members_sync) handles a grade
 * change and members that are missing because kfleetd stopped between the
 * cluster's status and its last member: members the shape no longer has
 * are deleted, requests that changed are updated in place, and missing
 * ones are bound by the placement library around the existing ones (pins),
 * on the cluster's unit. The unit's mark and cordon do not apply here: the
 * cluster was admitted already (a grade change checks its headroom before
 * it starts); the hosts' own mark still does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/capacity.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-placement.h"

KF_LOG_MODULE(placement);

void kf_place_member_name(const char *cluster, const char *component, unsigned index, char *buf,
                          size_t size)
{
    snprintf(buf, size, "%s-%s-%u", cluster, component, index);
}

json_t *kf_place_member_obj(const json_t *cluster, const char *unit, const char *host,
                            const char *zone, const struct kf_component *comp, unsigned index,
                            const char *version)
{
    const char *cname = kf_obj_name(cluster);
    char name[KF_NAME_MAX + 1];
    json_t *obj;

    kf_place_member_name(cname, comp->name, index, name, sizeof(name));
    obj = json_pack(
        "{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:[{s:s, s:s, s:s, s:s, s:b, s:b}]}, "
        "s:{s:s, s:s, s:i, s:s, s:s, s:s, s:{s:o}}}",
        "apiVersion", KF_API_VERSION, "kind", "ControlPlaneMember", "metadata", "name", name,
        "labels", KF_LABEL_CLUSTER, cname, KF_LABEL_COMPONENT, comp->name, KF_LABEL_UNIT, unit,
        KF_LABEL_ZONE, zone, KF_LABEL_HOST, host, "ownerReferences", "apiVersion", KF_API_VERSION,
        "kind", "GuestCluster", "name", cname, "uid",
        kf_obj_uid(cluster) ? kf_obj_uid(cluster) : "", "controller", 1, "blockOwnerDeletion", 1,
        "spec", "cluster", cname, "component", comp->name, "index", (int)index, "version", version,
        "host", host, "zone", zone, "resources", "requests", kf_cap_res_json(comp->req));
    if (obj && strlen(host) > 63) /* label values are at most 63 bytes; the spec has it */
        json_object_del(kf_json_path(obj, "metadata.labels"), KF_LABEL_HOST);
    return obj;
}

static int create_one(struct place_ctrl *d, json_t *obj, struct kf_strbuf *why)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *ret = NULL;
    int r = kf_registry_create(d->reg, &kf_kind_controlplanemember, obj, &ret, &causes, why);

    if (r == 0)
        d->need_member_rev = KF_MAX(d->need_member_rev, kf_obj_rv(ret));
    else if (r == -KF_EEXISTS)
        r = 0; /* made by an earlier try whose news has not reached the model */
    else if (r == -KF_EINVALID) {
        struct kf_strbuf c = KF_STRBUF_INIT;

        kf_causes_format(&causes, &c);
        kf_err(why, r, "member \"%s\" is not valid: %s", kf_obj_name(obj), c.buf);
        kf_strbuf_release(&c);
    }
    json_decref(ret);
    kf_causes_release(&causes);
    return r;
}

int kf_place_members_create(struct place_ctrl *d, json_t *const *objs, size_t n,
                            struct kf_strbuf *why)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    int64_t rev = 0;
    int r = 0;

    /* one store transaction for the lot; one at a time when some exist */
    for (size_t at = 0; at < n && r == 0; at += PLACE_TXN_MAX) {
        size_t k = KF_MIN(n - at, (size_t)PLACE_TXN_MAX);

        r = kf_registry_create_batch(d->reg, &kf_kind_controlplanemember, objs + at, k, &rev, NULL,
                                     &causes, why);
        if (r == 0) {
            d->need_member_rev = KF_MAX(d->need_member_rev, rev);
            continue;
        }
        kf_strbuf_reset(why);
        r = 0;
        for (size_t i = at; i < at + k && r == 0; i++)
            r = create_one(d, objs[i], why);
    }
    kf_causes_release(&causes);
    return r;
}

struct existing {
    char *name;
    char *host;
    int comp; /* index into the shape, -1: not in it */
    int index;
    struct kf_res req;
};

static int existing_cmp(const void *a, const void *b)
{
    return strcmp(((const struct existing *)a)->name, ((const struct existing *)b)->name);
}

/* Copies the cluster's members out of the model (lock held), sorted by
 * name: of two members for one place, the first by name is kept, whatever
 * order their events came in. */
static size_t existing_members(struct place_ctrl *d, const char *cluster,
                               const struct kf_grade_spec *shape, struct existing **ret)
{
    struct cap_cluster *c = kf_smap_get(&d->model->clusters, cluster);
    struct existing *ex;
    size_t n = 0;

    ex = kf_xcalloc((c ? c->n_members : 0) + 1, sizeof(*ex));
    for (size_t i = 0; c && i < c->n_members; i++) {
        const struct cap_member *mb = c->members[i];

        ex[n].name = kf_xstrdup(mb->name);
        ex[n].host = mb->host ? kf_xstrdup(mb->host->name) : NULL;
        ex[n].comp = -1;
        for (unsigned k = 0; shape && k < shape->n_components; k++)
            if (strcmp(shape->components[k].name, mb->component) == 0)
                ex[n].comp = (int)k;
        ex[n].index = mb->index;
        ex[n].req = mb->req;
        n++;
    }
    qsort(ex, n, sizeof(*ex), existing_cmp);
    *ret = ex;
    return n;
}

static void existing_free(struct existing *ex, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ex[i].name);
        free(ex[i].host);
    }
    free(ex);
}

static int delete_member(struct place_ctrl *d, const char *name, bool *ret_gone)
{
    json_t *ret = NULL;
    bool deleted = false;
    int r = kf_registry_delete(d->reg, &kf_kind_controlplanemember, name, 0, &ret, &deleted);

    if (r == 0)
        d->need_member_rev = KF_MAX(d->need_member_rev, kf_obj_rv(ret));
    json_decref(ret);
    if (r == -KF_ENOTFOUND) {
        r = 0;
        deleted = true;
    }
    if (ret_gone)
        *ret_gone = deleted;
    return r;
}

/* A sync of a cluster's members: the ones there, which of them go, and the
 * new ones to create. */
struct member_sync {
    struct existing *ex;
    size_t n;
    bool have[KF_GRADE_MAX_COMPONENTS][KF_GRADE_MAX_REPLICAS];
    bool drop[KF_GRADE_MAX_MEMBERS * 2]; /* an extra member: a duplicate or out of the shape */
    json_t **todo;
    size_t n_todo, todo_alloc;
};

/* Whether existing member i goes (an extra one). */
static bool sync_drops(const struct member_sync *ms, size_t i)
{
    return i < KF_ARRAY_SIZE(ms->drop) && ms->drop[i];
}

/* Marks which members of the shape exist and which existing ones are
 * extra; returns how many of the shape are missing. */
static size_t mark_existing(struct member_sync *ms, const struct kf_grade_spec *shape)
{
    const struct existing *ex = ms->ex;
    size_t n_missing = 0;

    for (size_t i = 0; i < ms->n; i++) {
        bool extra = ex[i].comp < 0 || ex[i].index < 0 ||
                     (unsigned)ex[i].index >= shape->components[ex[i].comp].replicas ||
                     ms->have[ex[i].comp][ex[i].index];

        if (i < KF_ARRAY_SIZE(ms->drop))
            ms->drop[i] = extra;
        if (!extra)
            ms->have[ex[i].comp][ex[i].index] = true;
    }
    for (unsigned k = 0; k < shape->n_components; k++)
        for (unsigned i = 0; i < shape->components[k].replicas; i++)
            if (!ms->have[k][i])
                n_missing++;
    return n_missing;
}

/* The members that stay, pinned to their hosts of unit ui; their number. */
static unsigned staying_members(const struct member_sync *ms, const struct cap_units *us, int ui,
                                struct kf_place_pin pins[KF_GRADE_MAX_MEMBERS])
{
    unsigned n_pins = 0;

    for (size_t i = 0; i < ms->n && n_pins < KF_GRADE_MAX_MEMBERS; i++) {
        int h = ms->ex[i].host ? kf_cap_units_find_host(us, (size_t)ui, ms->ex[i].host) : -1;

        if (sync_drops(ms, i) || h < 0)
            continue;
        pins[n_pins++] = (struct kf_place_pin){ (uint16_t)ms->ex[i].comp, (uint16_t)ms->ex[i].index,
                                                (uint32_t)h };
    }
    return n_pins;
}

/* Binds the missing members on the cluster's unit, the others staying, into
 * ms->todo (copied out: the model's strings may go once the lock is
 * released). The model's lock is held. -ENOSPC with the reason in why. */
static int bind_missing(struct place_ctrl *d, const json_t *cluster, const char *unit, int grade,
                        const struct kf_grade_spec *shape, const char *version,
                        struct member_sync *ms, struct kf_strbuf *why)
{
    const char *cname = kf_obj_name(cluster);
    struct kf_place_result *res = kf_xcalloc(1, sizeof(*res));
    struct kf_place_cluster c = { 0 };
    struct kf_place_pin pins[KF_GRADE_MAX_MEMBERS];
    const char *zones[KF_PLACE_MAX_ZONES];
    struct cap_units us = { 0 };
    const struct kf_place_unit *u;
    int ui, r;

    kf_cap_units_build(d->model, &d->policy, NULL, cname, &us);
    ui = kf_cap_units_find(&us, unit);
    if (ui < 0) {
        r = kf_err(why, -ENOSPC, "unit %s is gone; the cluster's members cannot be bound", unit);
        goto release_units;
    }
    /* admitted already: only the hosts' own mark applies */
    us.units[ui].water_level = 1.0;
    us.units[ui].cordoned = false;
    u = &us.units[ui];
    c.name = cname;
    c.region = u->region;
    c.grade = grade;
    c.shape = shape;
    c.unit = unit;
    c.pins = pins;
    c.n_pins = staying_members(ms, &us, ui, pins);
    kf_place_cluster_zones(cluster, &c, zones);
    /* members whose host left the unit are neither pinned nor missing:
     * give the placer a shape where they do not count */
    r = kf_place(&d->placer, u, 1, &c, res);
    if (r == -EINVAL || r == -ENOSPC)
        r = kf_err(why, -ENOSPC, "%s", res->message);
    for (unsigned i = 0; r == 0 && i < res->n_bindings; i++) {
        const struct kf_place_binding *b = &res->bindings[i];

        if (b->pinned || ms->have[b->component][b->replica])
            continue;
        KF_GROW(ms->todo, ms->todo_alloc, ms->n_todo + 1);
        ms->todo[ms->n_todo++] =
            kf_place_member_obj(cluster, unit, u->hosts[b->host].name, u->zones[b->zone],
                                &shape->components[b->component], b->replica, version);
    }
release_units:
    kf_cap_units_release(&us);
    free(res);
    return r;
}

/* Gives an existing member the requests (and version) of its component in
 * the shape, when they differ. */
static int resize_member(struct place_ctrl *d, const struct existing *e,
                         const struct kf_grade_spec *shape, const char *version,
                         struct kf_strbuf *why)
{
    const struct kf_component *comp = &shape->components[e->comp];
    json_t *patch;
    int64_t rev = 0;
    int r;

    if (comp->req.cpu_milli == e->req.cpu_milli && comp->req.mem_bytes == e->req.mem_bytes)
        return 0;
    patch = json_pack("{s:{s:{s:o}, s:s}}", "spec", "resources", "requests",
                      kf_cap_res_json(comp->req), "version", version);
    r = kf_cap_patch(d->reg, &kf_kind_controlplanemember, e->name, patch, false, &rev, why);
    json_decref(patch);
    if (r == -KF_ENOTFOUND)
        r = 0;
    d->need_member_rev = KF_MAX(d->need_member_rev, rev);
    return r;
}

int kf_place_members_sync(struct place_ctrl *d, const json_t *cluster, const char *unit, int grade,
                          const struct kf_grade_spec *shape, const char *version,
                          struct kf_strbuf *why)
{
    struct member_sync ms = { 0 };
    int r = 0;

    pthread_mutex_lock(&d->model->lock);
    ms.n = existing_members(d, kf_obj_name(cluster), shape, &ms.ex);
    if (mark_existing(&ms, shape))
        r = bind_missing(d, cluster, unit, grade, shape, version, &ms, why);
    pthread_mutex_unlock(&d->model->lock);

    /* writes, without the model's lock */
    for (size_t i = 0; r == 0 && i < ms.n; i++)
        r = sync_drops(&ms, i) ? delete_member(d, ms.ex[i].name, NULL)
                               : resize_member(d, &ms.ex[i], shape, version, why);
    if (r == 0 && ms.n_todo)
        r = kf_place_members_create(d, ms.todo, ms.n_todo, why);
    for (size_t i = 0; i < ms.n_todo; i++)
        json_decref(ms.todo[i]);
    free(ms.todo);
    existing_free(ms.ex, ms.n);
    return r;
}

int kf_place_members_delete_all(struct place_ctrl *d, const char *cluster, struct kf_strbuf *why)
{
    struct existing *ex;
    size_t n;
    int left = 0, r = 0;

    pthread_mutex_lock(&d->model->lock);
    n = existing_members(d, cluster, NULL, &ex);
    pthread_mutex_unlock(&d->model->lock);
    for (size_t i = 0; i < n && r == 0; i++) {
        bool gone = false;

        r = delete_member(d, ex[i].name, &gone);
        if (r < 0)
            kf_err(why, r, "cannot delete member \"%s\": %s", ex[i].name, strerror(-r));
        else if (!gone)
            left++; /* its finalizers (an agent stopping it) hold it */
    }
    existing_free(ex, n);
    return r < 0 ? r : left;
}

void kf_place_members_count(struct place_ctrl *d, const char *cluster, unsigned *ret_existing,
                            unsigned *ret_ready)
{
    struct cap_cluster *c;

    *ret_existing = *ret_ready = 0;
    pthread_mutex_lock(&d->model->lock);
    c = kf_smap_get(&d->model->clusters, cluster);
    for (size_t i = 0; c && i < c->n_members; i++) {
        (*ret_existing)++;
        if (c->members[i]->ready)
            (*ret_ready)++;
    }
    pthread_mutex_unlock(&d->model->lock);
}
