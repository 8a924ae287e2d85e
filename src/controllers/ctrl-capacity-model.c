/* ctrl-capacity-model.c: the capacity model: the compact picture of regions,
 * units, hosts, control-plane members and guest clusters that placement
 * and unit-status keep from their informers' events (contract in
 * ctrl-capacity.h).
 *
 * Each event updates a few small entries and the sums that depend on them:
 * a member adds its requests to its host and to its cluster's "bound"
 * total, a host belongs to its unit's host set, a placed cluster to its
 * unit's cluster set. Nothing is parsed when a decision is made: building
 * the placement input for a region is a walk over its units' sets. The
 * informers deliver events in revision order per kind, but kinds race each
 * other (a member may arrive before its host or cluster), so entries named
 * before they are seen exist as placeholders (known = false) and are freed
 * once nothing names them.
 *
 * A cluster placed in a unit whose members are not all bound yet counts
 * the rest of its requests (status.effective.requests minus its bound
 * members) against the unit, so a unit never looks emptier than it is
 * between a placement and the creation of its members.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/ctrlrt.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "kfleet/versions.h"
#include "controllers/ctrl-capacity.h"

void kf_cap_model_init(struct cap_model *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    kf_smap_init(&m->regions);
    kf_smap_init_borrowed(&m->units);
    kf_smap_init_borrowed(&m->hosts);
    kf_smap_init_borrowed(&m->members);
    kf_smap_init_borrowed(&m->clusters);
    kf_smap_init(&m->components);
}

static void unit_free(struct cap_unit *u)
{
    if (!u)
        return;
    json_decref(u->spec);
    json_decref(u->labels);
    kf_smap_release(&u->hosts);
    kf_smap_release(&u->clusters);
    free(u->name);
    free(u);
}

static void host_free(struct cap_host *h)
{
    if (!h)
        return;
    free(h->zone);
    free(h->name);
    free(h);
}

static void cluster_free(struct cap_cluster *c)
{
    if (!c)
        return;
    free(c->members);
    free(c->region);
    free(c->name);
    free(c);
}

static void member_free(struct cap_member *mb)
{
    if (!mb)
        return;
    free(mb->name);
    free(mb);
}

void kf_cap_model_release(struct cap_model *m)
{
    size_t it = 0;
    void *v;

    while (kf_smap_next(&m->members, &it, NULL, &v))
        member_free(v);
    it = 0;
    while (kf_smap_next(&m->hosts, &it, NULL, &v))
        host_free(v);
    it = 0;
    while (kf_smap_next(&m->clusters, &it, NULL, &v))
        cluster_free(v);
    it = 0;
    while (kf_smap_next(&m->units, &it, NULL, &v))
        unit_free(v);
    it = 0;
    while (kf_smap_next(&m->regions, &it, NULL, &v)) {
        struct cap_region *r = v;

        json_decref(r->spec);
        free(r->name);
        free(r);
    }
    it = 0;
    while (kf_smap_next(&m->components, &it, NULL, &v))
        free(v);
    kf_smap_release(&m->members);
    kf_smap_release(&m->hosts);
    kf_smap_release(&m->clusters);
    kf_smap_release(&m->units);
    kf_smap_release(&m->regions);
    kf_smap_release(&m->components);
    for (size_t i = 0; i < CAP_MODEL_KINDS; i++)
        free(m->memo[i].name);
    pthread_mutex_destroy(&m->lock);
}

/* --- entries ---------------------------------------------------------------- */

static struct cap_unit *unit_get(struct cap_model *m, const char *name)
{
    struct cap_unit *u = kf_smap_get(&m->units, name);

    if (!u) {
        u = kf_xcalloc(1, sizeof(*u));
        u->name = kf_xstrdup(name);
        kf_smap_init_borrowed(&u->hosts);
        kf_smap_init_borrowed(&u->clusters);
        kf_smap_put(&m->units, u->name, u);
    }
    return u;
}

static void unit_gc(struct cap_model *m, struct cap_unit *u)
{
    if (u && !u->spec && !kf_smap_count(&u->hosts) && !kf_smap_count(&u->clusters)) {
        kf_smap_remove(&m->units, u->name);
        unit_free(u);
    }
}

static struct cap_host *host_get(struct cap_model *m, const char *name)
{
    struct cap_host *h = kf_smap_get(&m->hosts, name);

    if (!h) {
        h = kf_xcalloc(1, sizeof(*h));
        h->name = kf_xstrdup(name);
        kf_smap_put(&m->hosts, h->name, h);
    }
    return h;
}

static void host_gc(struct cap_model *m, struct cap_host *h)
{
    if (h && !h->known && h->members == 0) {
        kf_smap_remove(&m->hosts, h->name);
        host_free(h);
    }
}

static struct cap_cluster *cluster_get(struct cap_model *m, const char *name)
{
    struct cap_cluster *c = kf_smap_get(&m->clusters, name);

    if (!c) {
        c = kf_xcalloc(1, sizeof(*c));
        c->name = kf_xstrdup(name);
        c->grade = KF_GRADE_NONE;
        kf_smap_put(&m->clusters, c->name, c);
    }
    return c;
}

static void cluster_gc(struct cap_model *m, struct cap_cluster *c)
{
    if (c && !c->known && !c->n_members) {
        kf_smap_remove(&m->clusters, c->name);
        cluster_free(c);
    }
}

static void cluster_drop_member(struct cap_cluster *c, const struct cap_member *mb)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (c->members[i] == mb) {
            c->members[i] = c->members[--c->n_members];
            return;
        }
}

static int member_name_cmp(const void *a, const void *b)
{
    return strcmp((*(struct cap_member *const *)a)->name, (*(struct cap_member *const *)b)->name);
}

size_t kf_cap_cluster_members_sorted(const struct cap_cluster *c, struct cap_member ***ret)
{
    struct cap_member **v = kf_xcalloc(c->n_members + 1, sizeof(*v));

    if (c->n_members) /* members is NULL before the first */
        memcpy(v, c->members, c->n_members * sizeof(*v));
    qsort(v, c->n_members, sizeof(*v), member_name_cmp);
    *ret = v;
    return c->n_members;
}

/* The model's one copy of a component name: members share it. */
static const char *intern(struct cap_model *m, const char *s)
{
    char *v = kf_smap_get(&m->components, s);

    if (!v) {
        v = kf_xstrdup(s);
        kf_smap_put(&m->components, s, v);
    }
    return v;
}

static void res_add(struct kf_res *a, struct kf_res b, int sign)
{
    a->cpu_milli += sign * b.cpu_milli;
    a->mem_bytes += sign * b.mem_bytes;
}

/* Books a member into (sign +1) or out of (-1) its host and cluster. */
static void member_book(struct cap_member *mb, int sign)
{
    if (!mb->host)
        return;
    res_add(&mb->host->allocated, mb->req, sign);
    mb->host->members = (unsigned)((int)mb->host->members + sign);
    res_add(&mb->cluster->bound, mb->req, sign);
}

/* The releases a host reports (status.kubernetesVersions), as minors. */
static void host_releases(struct cap_host *h, const json_t *held)
{
    const json_t *v;
    size_t i;

    h->k8s_reported = json_is_array(held);
    h->k8s_minors = 0;
    json_array_foreach(held, i, v)
    {
        int m = kf_version_minor(json_string_value(v));

        if (m >= 1000 && m < 1064)
            h->k8s_minors |= (uint64_t)1 << (m - 1000);
    }
}

static void note_unit(struct cap_change *ch, const struct cap_unit *u)
{
    if (!u || ch->n_units >= KF_ARRAY_SIZE(ch->units))
        return;
    for (size_t i = 0; i < ch->n_units; i++)
        if (strcmp(ch->units[i], u->name) == 0)
            return;
    snprintf(ch->units[ch->n_units++], sizeof(ch->units[0]), "%s", u->name);
}

static void note_cluster(struct cap_change *ch, const char *name)
{
    snprintf(ch->cluster, sizeof(ch->cluster), "%s", name);
}

/* --- events ---------------------------------------------------------------- */

static bool has_blocking_taint(const json_t *taints)
{
    size_t i;
    json_t *t;

    json_array_foreach(taints, i, t)
    {
        const char *e = kf_json_str(t, "effect", "");

        if (strcmp(e, "NoSchedule") == 0 || strcmp(e, "NoExecute") == 0)
            return true;
    }
    return false;
}

static void apply_host(struct cap_model *m, const char *name, const json_t *obj, bool deleted,
                       struct cap_change *ch)
{
    struct cap_host *h = host_get(m, name);
    struct cap_unit *old = h->unit, *now = NULL;

    struct cap_host before = *h;
    bool zone_same = true;

    if (!deleted) {
        struct kf_res cap = kf_cap_res_parse(kf_json_path(obj, "spec.capacity"));
        struct kf_res res = kf_cap_res_parse(kf_json_path(obj, "spec.reserved"));
        const char *unit = kf_json_str(obj, "spec.unit", NULL);

        h->known = true;
        if (unit && kf_streq(kf_json_str(obj, "spec.role", NULL), "meta"))
            now = unit_get(m, unit);
        zone_same = h->zone && strcmp(h->zone, kf_json_str(obj, "spec.zone", "")) == 0;
        free(h->zone);
        h->zone = kf_xstrdup(kf_json_str(obj, "spec.zone", ""));
        h->capacity = cap;
        h->allocatable.cpu_milli = KF_MAX(cap.cpu_milli - res.cpu_milli, 0);
        h->allocatable.mem_bytes = KF_MAX(cap.mem_bytes - res.mem_bytes, 0);
        h->schedulable = !kf_json_bool(obj, "spec.unschedulable", false) &&
                         !has_blocking_taint(kf_json_path(obj, "spec.taints"));
        h->ready = kf_json_bool(obj, "status.ready", false);
        host_releases(h, kf_json_path(obj, "status.kubernetesVersions"));
    } else {
        h->known = false;
    }
    ch->placement_input = deleted || old != now || before.known != h->known ||
                          before.ready != h->ready || before.schedulable != h->schedulable ||
                          before.k8s_minors != h->k8s_minors ||
                          before.k8s_reported != h->k8s_reported ||
                          before.allocatable.cpu_milli != h->allocatable.cpu_milli ||
                          before.allocatable.mem_bytes != h->allocatable.mem_bytes || !zone_same;
    if (old != now) {
        if (old)
            kf_smap_remove(&old->hosts, name);
        if (now)
            kf_smap_put(&now->hosts, h->name, h);
        h->unit = now;
    }
    note_unit(ch, old);
    note_unit(ch, now);
    if (deleted) {
        host_gc(m, h);
        unit_gc(m, old);
    }
}

static void apply_member(struct cap_model *m, const char *name, const json_t *obj, bool deleted,
                         struct cap_change *ch)
{
    struct cap_member *mb = kf_smap_get(&m->members, name);
    struct cap_host *old_host = mb ? mb->host : NULL;
    struct cap_cluster *old_cluster = mb ? mb->cluster : NULL;
    const char *host, *cluster;

    if (mb)
        member_book(mb, -1);
    if (deleted) {
        if (!mb)
            return;
        kf_smap_remove(&m->members, name);
        cluster_drop_member(mb->cluster, mb);
        note_unit(ch, old_host ? old_host->unit : NULL);
        note_cluster(ch, old_cluster->name);
        ch->placement_input = true; /* capacity freed */
        member_free(mb);
        host_gc(m, old_host);
        cluster_gc(m, old_cluster);
        return;
    }
    cluster = kf_json_str(obj, "spec.cluster", NULL);
    if (!cluster)
        return;
    if (!mb) {
        mb = kf_xcalloc(1, sizeof(*mb));
        mb->name = kf_xstrdup(name);
        kf_smap_put(&m->members, mb->name, mb);
    }
    if (!mb->cluster || strcmp(mb->cluster->name, cluster) != 0) {
        if (mb->cluster)
            cluster_drop_member(mb->cluster, mb);
        mb->cluster = cluster_get(m, cluster);
        KF_GROW(mb->cluster->members, mb->cluster->alloc_members, mb->cluster->n_members);
        mb->cluster->members[mb->cluster->n_members++] = mb;
    }
    host = kf_json_str(obj, "spec.host", NULL);
    mb->host = host ? host_get(m, host) : NULL;
    mb->component = intern(m, kf_json_str(obj, "spec.component", ""));
    mb->index = (int)kf_json_int(obj, "spec.index", 0);
    mb->req = kf_cap_res_parse(kf_json_path(obj, "spec.resources.requests"));
    mb->ready = kf_json_bool(obj, "status.ready", false);
    member_book(mb, +1);
    note_unit(ch, old_host ? old_host->unit : NULL);
    note_unit(ch, mb->host ? mb->host->unit : NULL);
    note_cluster(ch, mb->cluster->name);
    if (old_host != mb->host)
        host_gc(m, old_host);
    if (old_cluster && old_cluster != mb->cluster)
        cluster_gc(m, old_cluster);
}

static void apply_cluster(struct cap_model *m, const char *name, const json_t *obj, bool deleted,
                          struct cap_change *ch)
{
    struct cap_cluster *c = cluster_get(m, name);
    struct cap_unit *old = c->unit, *now = NULL;

    note_cluster(ch, c->name);
    ch->was_grade_changing = c->grade_changing;
    if (!deleted) {
        const char *unit = kf_json_str(obj, "status.unit", NULL);
        const json_t *cond =
            kf_cap_condition_find(kf_json_path(obj, "status.conditions"), "GradeChanging");
        int g = kf_grade_parse(kf_json_str(obj, "status.grade", ""));

        c->known = true;
        free(c->region);
        c->region = kf_xstrdup(kf_json_str(obj, "spec.region", ""));
        if (unit)
            now = unit_get(m, unit);
        c->grade = g >= 0 ? g : KF_GRADE_NONE;
        c->nodes = kf_json_int(obj, "status.effective.expectedNodes",
                               kf_json_int(obj, "spec.expectedNodes", 0));
        c->deleting = kf_obj_deleting(obj);
        c->grade_changing = cond && kf_streq(kf_json_str(cond, "status", NULL), "True");
        c->shape_total = kf_cap_res_parse(kf_json_path(obj, "status.effective.requests"));
    } else {
        c->known = false;
    }
    ch->placement_input = old && old != now; /* it left a unit */
    if (old != now) {
        if (old)
            kf_smap_remove(&old->clusters, name);
        if (now)
            kf_smap_put(&now->clusters, c->name, c);
        c->unit = now;
    }
    note_unit(ch, old);
    note_unit(ch, now);
    if (deleted) {
        cluster_gc(m, c);
        unit_gc(m, old);
    }
}

static void *shared_make(void)
{
    struct cap_model *m = kf_xmalloc(sizeof(*m));

    kf_cap_model_init(m);
    return m;
}

static void shared_release(void *v)
{
    kf_cap_model_release(v);
    free(v);
}

struct cap_model *kf_cap_model_shared(struct kf_ctrl *c)
{
    struct cap_model *m = kf_ctrl_manager_shared(kf_ctrl_manager_of(c), "capacity-model",
                                                 shared_make, shared_release);

    pthread_mutex_lock(&m->lock);
    m->subscribers++;
    pthread_mutex_unlock(&m->lock);
    return m;
}

static int memo_slot(const struct kf_kind *k)
{
    if (k == &kf_kind_region)
        return 0;
    if (k == &kf_kind_unit)
        return 1;
    if (k == &kf_kind_host)
        return 2;
    if (k == &kf_kind_controlplanemember)
        return 3;
    return 4; /* GuestCluster */
}

/* locked: the change this event made when it was just applied for another
 * subscriber (true, *ret set), else false. */
static bool memo_take(struct cap_model *m, const struct kf_kind *k, const char *name, int64_t rv,
                      bool deleted, struct cap_change *ret)
{
    struct cap_memo *mo = &m->memo[memo_slot(k)];

    if (!mo->left || mo->rv != rv || mo->deleted != deleted || !mo->name ||
        strcmp(mo->name, name) != 0)
        return false;
    mo->left--;
    *ret = mo->change;
    return true;
}

static void memo_put(struct cap_model *m, const struct kf_kind *k, const char *name, int64_t rv,
                     bool deleted, const struct cap_change *ch)
{
    struct cap_memo *mo = &m->memo[memo_slot(k)];

    if (m->subscribers < 2)
        return;
    free(mo->name);
    mo->name = kf_xstrdup(name);
    mo->rv = rv;
    mo->deleted = deleted;
    mo->left = m->subscribers - 1;
    mo->change = *ch;
}

void kf_cap_model_apply(struct cap_model *m, const struct kf_kind *k, const json_t *obj,
                        bool deleted, struct cap_change *ret)
{
    const char *name = kf_obj_name(obj);
    int64_t rv = kf_obj_rv(obj);

    memset(ret, 0, sizeof(*ret));
    if (!name)
        return;
    pthread_mutex_lock(&m->lock);
    if (memo_take(m, k, name, rv, deleted, ret)) {
        pthread_mutex_unlock(&m->lock);
        return;
    }
    if (k == &kf_kind_host) {
        apply_host(m, name, obj, deleted, ret);
    } else if (k == &kf_kind_controlplanemember) {
        apply_member(m, name, obj, deleted, ret);
    } else if (k == &kf_kind_guestcluster) {
        apply_cluster(m, name, obj, deleted, ret);
    } else if (k == &kf_kind_unit) {
        struct cap_unit *u = unit_get(m, name);
        json_t *spec = deleted ? NULL : json_deep_copy(kf_json_path(obj, "spec"));

        if (!deleted && !spec)
            spec = json_object();
        json_t *labels = deleted ? NULL : json_deep_copy(kf_json_path(obj, "metadata.labels"));

        ret->placement_input = !u->spec || !spec || !json_equal(u->spec, spec) ||
                               !u->labels != !labels || (labels && !json_equal(u->labels, labels));
        json_decref(u->spec);
        u->spec = spec;
        json_decref(u->labels);
        u->labels = labels;
        if (!deleted || kf_smap_count(&u->hosts) || kf_smap_count(&u->clusters))
            note_unit(ret, u);
        if (deleted)
            unit_gc(m, u);
    } else if (k == &kf_kind_region) {
        struct cap_region *r = kf_smap_get(&m->regions, name);

        if (deleted) {
            if (r) {
                kf_smap_remove(&m->regions, name);
                json_decref(r->spec);
                free(r->name);
                free(r);
            }
        } else {
            if (!r) {
                r = kf_xcalloc(1, sizeof(*r));
                r->name = kf_xstrdup(name);
                kf_smap_put(&m->regions, name, r);
            }
            json_t *spec = json_deep_copy(kf_json_path(obj, "spec"));

            ret->placement_input = !r->spec || !json_equal(r->spec, spec);
            json_decref(r->spec);
            r->spec = spec;
        }
        if (!deleted)
            snprintf(ret->region, sizeof(ret->region), "%s", name);
    }
    memo_put(m, k, name, rv, deleted, ret);
    pthread_mutex_unlock(&m->lock);
}

size_t kf_cap_model_units_of(struct cap_model *m, const char *region, char ***ret)
{
    char **names = NULL;
    size_t n = 0, alloc = 0, it = 0;
    void *v;

    pthread_mutex_lock(&m->lock);
    while (kf_smap_next(&m->units, &it, NULL, &v)) {
        struct cap_unit *u = v;

        if (u->spec && kf_streq(kf_json_str(u->spec, "region", NULL), region)) {
            KF_GROW(names, alloc, n + 1);
            names[n++] = kf_xstrdup(u->name);
        }
    }
    pthread_mutex_unlock(&m->lock);
    *ret = names;
    return n;
}

/* --- placement input -------------------------------------------------------- */

static int cmp_unit(const void *a, const void *b)
{
    return strcmp((*(struct cap_unit *const *)a)->name, (*(struct cap_unit *const *)b)->name);
}

static int cmp_host(const void *a, const void *b)
{
    return strcmp((*(struct cap_host *const *)a)->name, (*(struct cap_host *const *)b)->name);
}

/* Points out[] at the strings of a JSON array; returns the count. */
static size_t str_array(const json_t *arr, const char **out)
{
    size_t i, n = 0;
    json_t *v;

    json_array_foreach(arr, i, v) if (json_is_string(v)) out[n++] = json_string_value(v);
    return n;
}

/* The units of region (all regions when NULL), sorted by name, in a new
 * array; counts their hosts and the strings their specs hold. */
/* The units chosen so far, with what building them needs. */
struct selection {
    struct cap_unit **sel;
    size_t n, alloc, n_hosts, n_strs;
};

static void select_unit(struct cap_model *m, struct cap_unit *u, const char *region,
                        struct selection *s)
{
    struct cap_region *rg;
    const char *r;

    if (!u->spec)
        return;
    r = kf_json_str(u->spec, "region", "");
    if (region && strcmp(r, region) != 0)
        return;
    KF_GROW(s->sel, s->alloc, s->n + 1);
    s->sel[s->n++] = u;
    s->n_hosts += kf_smap_count(&u->hosts);
    rg = kf_smap_get(&m->regions, r);
    s->n_strs += json_array_size(json_object_get(u->spec, "zones")) +
                 json_array_size(json_object_get(u->spec, "features")) +
                 (rg ? json_array_size(json_object_get(rg->spec, "complianceTags")) : 0);
}

/* The units of region (NULL: all), or only the unit named `only`. */
static struct cap_unit **select_units(struct cap_model *m, const char *region, const char *only,
                                      size_t *ret_n, size_t *ret_hosts, size_t *ret_strs)
{
    struct selection s = { 0 };
    size_t it = 0;
    void *v;

    if (only) {
        v = kf_smap_get(&m->units, only);
        if (v)
            select_unit(m, v, region, &s);
    } else {
        while (kf_smap_next(&m->units, &it, NULL, &v))
            select_unit(m, v, region, &s);
    }
    if (s.n > 1)
        qsort(s.sel, s.n, sizeof(*s.sel), cmp_unit);
    *ret_n = s.n;
    *ret_hosts = s.n_hosts;
    *ret_strs = s.n_strs;
    return s.sel;
}

/* Fills u from the unit's and its region's specs; the strings go to
 * ret->strs from *si on. */
static void unit_settings(struct cap_units *ret, const struct cap_unit *cu,
                          const struct cap_region *rg, struct kf_place_unit *u, size_t *si)
{
    json_t *zones = json_object_get(cu->spec, "zones");
    json_t *features = json_object_get(cu->spec, "features");
    json_t *ratios = json_object_get(cu->spec, "gradeRatio"), *f;
    const char *key;

    u->region = kf_json_str(cu->spec, "region", NULL);
    u->zones = &ret->strs[*si];
    u->n_zones = (unsigned)KF_MIN(str_array(zones, &ret->strs[*si]), (size_t)KF_PLACE_MAX_ZONES);
    *si += json_array_size(zones);
    u->features = &ret->strs[*si];
    u->n_features = str_array(features, &ret->strs[*si]);
    *si += json_array_size(features);
    if (rg) {
        json_t *tags = json_object_get(rg->spec, "complianceTags");

        u->region_compliance = &ret->strs[*si];
        u->n_region_compliance = str_array(tags, &ret->strs[*si]);
        *si += json_array_size(tags);
    }
    u->water_level =
        kf_json_num(cu->spec, "waterLevel", rg ? kf_json_num(rg->spec, "waterLevel", 0) : 0);
    u->cost_per_core = kf_json_num(cu->spec, "costPerCore", 1);
    u->performance = kf_json_num(cu->spec, "performance", 1);
    u->max_clusters = (unsigned)KF_MAX(kf_json_int(cu->spec, "quota.maxClusters", 0), 0);
    u->max_nodes = KF_MAX(kf_json_int(cu->spec, "quota.maxNodes", 0), 0);
    u->cordoned = kf_json_bool(cu->spec, "cordoned", false) ||
                  (rg && kf_json_bool(rg->spec, "cordoned", false));
    json_object_foreach(ratios, key, f)
    {
        int g = kf_grade_parse(key);

        if (g < 0 || u->n_ratios >= KF_PLACE_MAX_RATIOS || !json_is_number(f))
            continue;
        u->ratios[u->n_ratios++] =
            (struct kf_place_ratio){ .grade = g, .max_fraction = json_number_value(f) };
    }
}

/* Fills u's hosts (the known ones, by name) into ret->hosts from *hi on. */
static void unit_hosts(struct cap_units *ret, const struct cap_unit *cu, struct kf_place_unit *u,
                       size_t *hi)
{
    struct cap_host **hs = kf_xcalloc(kf_smap_count(&cu->hosts) + 1, sizeof(*hs));
    size_t nh = 0, it = 0;
    void *v;

    while (kf_smap_next(&cu->hosts, &it, NULL, &v))
        if (((struct cap_host *)v)->known)
            hs[nh++] = v;
    if (nh > 1)
        qsort(hs, nh, sizeof(*hs), cmp_host);
    u->hosts = &ret->hosts[*hi];
    u->n_hosts = nh;
    for (size_t j = 0; j < nh; j++) {
        struct kf_place_host *ph = &ret->hosts[(*hi)++];
        unsigned z = u->n_zones;

        for (unsigned k = 0; k < u->n_zones; k++)
            if (strcmp(u->zones[k], hs[j]->zone) == 0)
                z = k;
        ph->name = hs[j]->name;
        ph->zone = z < u->n_zones ? z : KF_PLACE_MAX_ZONES;
        ph->capacity = hs[j]->allocatable;
        ph->allocated = hs[j]->allocated;
        ph->members = hs[j]->members;
        ph->ready = hs[j]->ready;
        ph->unschedulable = !hs[j]->schedulable;
        ph->k8s_reported = hs[j]->k8s_reported;
        ph->k8s_minors = hs[j]->k8s_minors;
    }
    free(hs);
}

/* The excluded cluster's members leave their hosts of u. */
static void unit_exclude(struct kf_place_unit *u, const struct cap_cluster *ex)
{
    for (size_t k = 0; k < ex->n_members; k++) {
        struct cap_member *mb = ex->members[k];

        for (size_t j = 0; mb->host && j < u->n_hosts; j++) {
            struct kf_place_host *ph = &u->hosts[j];

            if (strcmp(ph->name, mb->host->name) != 0)
                continue;
            ph->allocated.cpu_milli -= mb->req.cpu_milli;
            ph->allocated.mem_bytes -= mb->req.mem_bytes;
            ph->members--;
        }
    }
}

/* Counts u's clusters but ex, and books what they have not bound yet on u. */
static void unit_clusters(struct kf_place_unit *u, const struct cap_unit *cu,
                          const struct cap_cluster *ex)
{
    struct kf_res pending = { 0, 0 };
    size_t it = 0;
    void *v;

    while (kf_smap_next(&cu->clusters, &it, NULL, &v)) {
        struct cap_cluster *c = v;

        if (c == ex)
            continue;
        u->clusters++;
        if (c->grade >= 0 && c->grade < KF_GRADE_COUNT)
            u->by_grade[c->grade]++;
        u->nodes += KF_MAX(c->nodes, 0);
        pending.cpu_milli += KF_MAX(c->shape_total.cpu_milli - c->bound.cpu_milli, 0);
        pending.mem_bytes += KF_MAX(c->shape_total.mem_bytes - c->bound.mem_bytes, 0);
    }
    kf_place_unit_refresh(u);
    u->allocated.cpu_milli += pending.cpu_milli;
    u->allocated.mem_bytes += pending.mem_bytes;
}

static void units_build(struct cap_model *m, const char *region, const char *only,
                        const char *exclude, struct cap_units *ret)
{
    struct cap_cluster *ex = exclude ? kf_smap_get(&m->clusters, exclude) : NULL;
    size_t n, n_hosts, n_strs, hi = 0, si = 0;
    struct cap_unit **sel;

    memset(ret, 0, sizeof(*ret));
    sel = select_units(m, region, only, &n, &n_hosts, &n_strs);
    ret->n = n;
    ret->units = kf_xcalloc(n + 1, sizeof(*ret->units));
    ret->src = sel;
    ret->hosts = kf_xcalloc(n_hosts + 1, sizeof(*ret->hosts));
    ret->strs = kf_xcalloc(n_strs + 1, sizeof(*ret->strs));
    ret->n_strs = n_strs;
    for (size_t i = 0; i < n; i++) {
        struct cap_unit *cu = sel[i];
        struct kf_place_unit *u = &ret->units[i];

        u->name = cu->name;
        u->user = cu;
        unit_settings(ret, cu, kf_smap_get(&m->regions, kf_json_str(cu->spec, "region", "")), u,
                      &si);
        unit_hosts(ret, cu, u, &hi);
        if (ex)
            unit_exclude(u, ex);
        unit_clusters(u, cu, ex);
    }
    ret->n_hosts = hi;
}

void kf_cap_units_build(struct cap_model *m, const struct kf_place_policy *pol, const char *region,
                        const char *exclude, struct cap_units *ret)
{
    (void)pol;
    units_build(m, region, NULL, exclude, ret);
}

void kf_cap_unit_build(struct cap_model *m, const struct kf_place_policy *pol, const char *unit,
                       struct cap_units *ret)
{
    (void)pol;
    units_build(m, NULL, unit, NULL, ret);
}

/* One pass sizes (out NULL), the next copies into out. */
static size_t detach_str(const char **s, char **out)
{
    size_t n = *s ? strlen(*s) + 1 : 0;

    if (*s && *out) {
        memcpy(*out, *s, n);
        *s = *out;
        *out += n;
    }
    return n;
}

static size_t detach_pass(struct cap_units *u, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < u->n; i++) {
        n += detach_str(&u->units[i].name, &out);
        n += detach_str(&u->units[i].region, &out);
    }
    for (size_t i = 0; i < u->n_hosts; i++)
        n += detach_str(&u->hosts[i].name, &out);
    for (size_t i = 0; i < u->n_strs; i++)
        n += detach_str(&u->strs[i], &out);
    return n;
}

void kf_cap_units_detach(struct cap_units *u)
{
    char *arena;

    if (u->owned)
        return;
    arena = kf_xmalloc(detach_pass(u, NULL) + 1);
    u->owned = arena;
    detach_pass(u, arena);
    for (size_t i = 0; i < u->n; i++)
        u->units[i].user = NULL;
    free(u->src);
    u->src = NULL;
}

void kf_cap_units_release(struct cap_units *u)
{
    if (!u)
        return;
    free(u->units);
    free(u->src);
    free(u->hosts);
    free(u->strs);
    free(u->owned);
    memset(u, 0, sizeof(*u));
}

int kf_cap_units_find(const struct cap_units *u, const char *name)
{
    for (size_t i = 0; name && i < u->n; i++)
        if (strcmp(u->units[i].name, name) == 0)
            return (int)i;
    return -1;
}

int kf_cap_units_find_host(const struct cap_units *u, size_t i, const char *host)
{
    for (size_t j = 0; host && j < u->units[i].n_hosts; j++)
        if (strcmp(u->units[i].hosts[j].name, host) == 0)
            return (int)j;
    return -1;
}

struct kf_res kf_cap_unit_host_shape(const struct kf_place_unit *u, struct kf_res dflt)
{
    struct kf_res best = dflt;
    size_t best_n = 0;

    for (size_t i = 0; i < u->n_hosts; i++) {
        struct kf_res s = u->hosts[i].capacity;
        size_t n = 0;

        if (s.cpu_milli <= 0 || s.mem_bytes <= 0)
            continue;
        for (size_t j = 0; j < u->n_hosts; j++)
            if (u->hosts[j].capacity.cpu_milli == s.cpu_milli &&
                u->hosts[j].capacity.mem_bytes == s.mem_bytes)
                n++;
        if (n > best_n ||
            (n == best_n && (s.cpu_milli > best.cpu_milli ||
                             (s.cpu_milli == best.cpu_milli && s.mem_bytes > best.mem_bytes)))) {
            best = s;
            best_n = n;
        }
    }
    return best;
}
