/* ctrl-unit.c: the unit-status controller. A Unit's status says what it
 * has, what it gives out and how close it is to its mark:
 *
 *   capacity / allocatable   of its Ready hosts (allocatable = capacity -
 *                            reserved); a NotReady host's capacity is gone
 *   allocated                requests of the members bound to its hosts,
 *                            plus the rest of the requests of clusters
 *                            placed in it whose members are not all bound
 *   waterLevel               allocated / allocatable per resource
 *   clusters, clustersByGrade, nodes, hosts, readyHosts, zonesReady
 *   canTake                  how many more clusters of each grade fit under
 *                            the mark
 *   hostsNeeded              hosts of its usual shape to add to get back to
 *                            the mark (0 when below)
 *   hostsNeededFor           per grade it cannot take one more of: hosts to
 *                            add so it can
 *   conditions               AboveWaterLevel (True when cpu or memory is
 *                            above the mark), GradeHeadroom (False with the
 *                            grades it cannot take and the hosts each needs)
 *
 * All numbers come from the placement library (kf_unit_water,
 * kf_unit_hosts_needed) on the same capacity model the placement
 * controller decides with (ctrl-capacity-model.c), so what a unit shows is what
 * placement sees. The model follows Region, Unit, Host, ControlPlaneMember
 * and GuestCluster events; each event queues the units it touches one
 * second later, folded: later events move that to a second after the last
 * one, but never more than FOLD_MAX_MS after the first, so a unit's status
 * is written at most once a second, and during a burst of placements (a
 * stream of member events on every unit) about once every FOLD_MAX_MS
 * instead of every second. The status is written only when it changes;
 * crossing the mark records an Event. A Unit's or Region's event that is
 * this controller's own status write coming back (the revision it wrote,
 * the spec unchanged) queues nothing: it changes nothing the status is made
 * from. A Region's status write used to queue every unit of the region
 * once a second during a burst.
 *
 * It writes each Region's status too (units, hosts, readyHosts, clusters
 * placed: the sums over its units in the same model), under queue keys
 * "region/NAME" (a unit's name cannot hold a '/'), queued after every unit
 * of the region and on Region and Unit events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "kfleet/capacity.h"
#include "kfleet/controllers.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-capacity.h"
#include "controllers/ctrl-members.h"

KF_LOG_MODULE(units);

#define COALESCE_MS 1000 /* a unit's status is written at most once a second */
#define FOLD_MAX_MS 5000 /* ... and while events keep coming, at least this often */
#define REGION_KEY  "region/"

struct unit_ctrl {
    struct kf_ctrl *ctrl;
    struct kf_registry *reg;
    struct kf_recorder *rec;
    struct cap_model *model; /* shared with the other capacity controller (kf_cap_model_shared) */
    struct kf_grade_table grades;
    struct kf_place_policy policy;
    struct kf_res default_host;
    struct kf_informer *regions;
    pthread_mutex_t lock;
    /* queue key (a unit's name, REGION_KEY + a region's) -> the revision
     * of our last status write of it (intptr_t) */
    struct kf_smap written;
};

static void written_put(struct unit_ctrl *d, const char *key, int64_t rev)
{
    pthread_mutex_lock(&d->lock);
    kf_smap_put(&d->written, key, (void *)(intptr_t)rev);
    pthread_mutex_unlock(&d->lock);
}

/* Whether the event of obj under key is our own status write coming back:
 * not a deletion (which forgets key), what the model reads of it unchanged
 * (ch), at the revision we wrote. */
static bool own_write(struct unit_ctrl *d, const char *key, const json_t *obj, bool deleted,
                      const struct cap_change *ch)
{
    bool own = false;

    pthread_mutex_lock(&d->lock);
    if (deleted)
        kf_smap_remove(&d->written, key);
    else
        own = !ch->placement_input && kf_smap_contains(&d->written, key) &&
              (int64_t)(intptr_t)kf_smap_get(&d->written, key) == kf_obj_rv(obj);
    pthread_mutex_unlock(&d->lock);
    return own;
}

static void enqueue_region(struct unit_ctrl *d, const char *region)
{
    char key[sizeof(REGION_KEY) + 256];

    if (!region || !*region)
        return;
    snprintf(key, sizeof(key), "%s%s", REGION_KEY, region);
    kf_ctrl_enqueue_folded(d->ctrl, key, COALESCE_MS, FOLD_MAX_MS);
}

static void changed(struct unit_ctrl *d, const struct cap_change *ch)
{
    for (size_t i = 0; i < ch->n_units; i++)
        kf_ctrl_enqueue_folded(d->ctrl, ch->units[i], COALESCE_MS, FOLD_MAX_MS);
    if (ch->region[0]) {
        char **names;
        size_t n = kf_cap_model_units_of(d->model, ch->region, &names);

        for (size_t i = 0; i < n; i++)
            kf_ctrl_enqueue_folded(d->ctrl, names[i], COALESCE_MS, FOLD_MAX_MS);
        kf_ctrl_names_free(names, n);
    }
}

#define MAP_FN(fn, kind)                                               \
    static void fn(struct kf_ctrl *c, const json_t *obj, bool deleted) \
    {                                                                  \
        struct unit_ctrl *d = kf_ctrl_data(c);                         \
        struct cap_change ch;                                          \
                                                                       \
        kf_cap_model_apply(d->model, &kind, obj, deleted, &ch);        \
        changed(d, &ch);                                               \
    }
MAP_FN(map_host, kf_kind_host)
MAP_FN(map_member, kf_kind_controlplanemember)
MAP_FN(map_cluster, kf_kind_guestcluster)

static void map_region(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct unit_ctrl *d = kf_ctrl_data(c);
    struct cap_change ch;
    char key[sizeof(REGION_KEY) + 256];

    kf_cap_model_apply(d->model, &kf_kind_region, obj, deleted, &ch);
    snprintf(key, sizeof(key), "%s%s", REGION_KEY, kf_obj_name(obj) ? kf_obj_name(obj) : "");
    if (own_write(d, key, obj, deleted, &ch))
        return;
    changed(d, &ch);
    if (!deleted)
        enqueue_region(d, kf_obj_name(obj));
}

/* The controller's primary map (kf_ctrl_ops.primary_map): a Unit's events
 * queue it like every other event, delayed and folded, not at once. A unit
 * that comes or goes changes its region's sums (spec.region is
 * immutable). */
static void map_unit(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct unit_ctrl *d = kf_ctrl_data(c);
    struct cap_change ch;

    kf_cap_model_apply(d->model, &kf_kind_unit, obj, deleted, &ch);
    if (kf_obj_name(obj) && own_write(d, kf_obj_name(obj), obj, deleted, &ch))
        return;
    changed(d, &ch);
    enqueue_region(d, kf_json_str(obj, "spec.region", NULL));
}

static int setup(struct kf_ctrl *c)
{
    struct unit_ctrl *d = kf_ctrl_data(c);
    int r;

    d->ctrl = c;
    d->model = kf_cap_model_shared(c);
    d->regions = kf_ctrl_informer(kf_ctrl_manager_of(c), &kf_kind_region);
    if ((r = kf_ctrl_members_informer(kf_ctrl_manager_of(c), NULL)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_region, map_region)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_host, map_host)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_controlplanemember, map_member)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_guestcluster, map_cluster)) < 0)
        return r;
    return 0;
}

static double round3(double x)
{
    return floor(x * 1000 + 0.5) / 1000;
}

/* The status of unit i of us (new reference). */
/* The unit's known hosts, its ready ones and their raw capacity. */
static struct kf_res count_hosts(const struct cap_unit *cu, unsigned *ret_hosts,
                                 unsigned *ret_ready)
{
    struct kf_res raw = { 0, 0 };
    size_t it = 0;
    void *v;

    *ret_hosts = *ret_ready = 0;
    while (kf_smap_next(&cu->hosts, &it, NULL, &v)) {
        struct cap_host *h = v;

        if (!h->known)
            continue;
        (*ret_hosts)++;
        if (h->ready) {
            (*ret_ready)++;
            raw.cpu_milli += h->capacity.cpu_milli;
            raw.mem_bytes += h->capacity.mem_bytes;
        }
    }
    return raw;
}

/* The zones of u with a ready host, in zone order. */
static json_t *zones_ready(const struct kf_place_unit *u)
{
    bool zone_ready[KF_PLACE_MAX_ZONES] = { false };
    json_t *zones = json_array();

    for (size_t j = 0; j < u->n_hosts; j++)
        if (u->hosts[j].ready && u->hosts[j].zone < u->n_zones)
            zone_ready[u->hosts[j].zone] = true;
    for (unsigned z = 0; z < u->n_zones; z++)
        if (zone_ready[z])
            json_array_append_new(zones, json_string(u->zones[z]));
    return zones;
}

/* Says which grades the unit cannot take another cluster of (and how many
 * hosts each needs), and what it takes of the grades below. */
static void headroom_message(const struct kf_unit_water *w, const json_t *need, int first_short,
                             struct kf_res shape, struct kf_strbuf *msg)
{
    bool first = true;

    if (first_short < 0) {
        kf_strbuf_addstr(msg, "can take one more cluster of every grade");
        return;
    }
    kf_strbuf_addstr(msg, "cannot take another cluster of grade ");
    for (int g = first_short; g < KF_GRADE_COUNT; g++) {
        unsigned h;

        if (w->can_take[g])
            continue;
        h = (unsigned)json_integer_value(json_object_get(need, kf_grade_name(g)));
        kf_strbuf_addf(msg, "%s%s (needs %u more host%s of ", first ? "" : ", ", kf_grade_name(g),
                       h, h == 1 ? "" : "s");
        kf_cap_fmt_res(shape, msg);
        kf_strbuf_addch(msg, ')');
        first = false;
    }
    if (first_short > 0) {
        kf_strbuf_addstr(msg, "; takes ");
        for (int g = 0; g < first_short; g++)
            kf_strbuf_addf(msg, "%s%u x %s", g ? ", " : "", w->can_take[g], kf_grade_name(g));
        kf_strbuf_addstr(msg, " more");
    }
}

/* The status of unit i: capacity, water level, headroom per grade and their
 * conditions; *ret_above and water_msg say where it stands against its mark. */
static json_t *unit_status(struct unit_ctrl *d, const struct cap_units *us, size_t i,
                           const json_t *old_conditions, int64_t now, bool *ret_above,
                           struct kf_strbuf *water_msg)
{
    const struct kf_place_unit *u = &us->units[i];
    struct kf_unit_water w;
    struct kf_res shape = kf_cap_unit_host_shape(u, d->default_host), raw;
    struct kf_strbuf msg = KF_STRBUF_INIT;
    json_t *st = json_object(), *by = json_object(), *take = json_object(), *need = json_object();
    json_t *conds = json_array();
    unsigned ready, hosts;
    int first_short = -1;

    raw = count_hosts(us->src[i], &hosts, &ready);
    kf_unit_water(u, &d->policy, &d->grades, &w);
    for (int g = 0; g < KF_GRADE_COUNT; g++) {
        if (u->by_grade[g])
            json_object_set_new(by, kf_grade_name(g), json_integer(u->by_grade[g]));
        json_object_set_new(take, kf_grade_name(g), json_integer(w.can_take[g]));
        if (w.can_take[g] == 0) {
            unsigned h = kf_unit_hosts_needed(u, &d->policy, &d->grades.grades[g], 1, shape);

            json_object_set_new(need, kf_grade_name(g), json_integer(h));
            if (first_short < 0)
                first_short = g;
        }
    }
    *ret_above = w.above;
    kf_unit_water_format(u, &w, shape, water_msg);
    json_array_append_new(conds, kf_cap_condition(old_conditions, "AboveWaterLevel", w.above,
                                                  w.above ? "AboveWaterLevel" : "BelowWaterLevel",
                                                  water_msg->buf, now));
    headroom_message(&w, need, first_short, shape, &msg);
    json_array_append_new(conds, kf_cap_condition(old_conditions, "GradeHeadroom", first_short < 0,
                                                  first_short < 0 ? "HasHeadroom" : "NoHeadroom",
                                                  msg.buf, now));

    json_object_set_new(st, "capacity", kf_cap_res_json(raw));
    json_object_set_new(st, "allocatable", kf_cap_res_json(u->capacity));
    json_object_set_new(st, "allocated", kf_cap_res_json(u->allocated));
    json_object_set_new(st, "waterLevel",
                        json_pack("{s:f, s:f}", "cpu", round3(w.cpu), "memory", round3(w.mem)));
    json_object_set_new(st, "aboveWaterLevel", json_boolean(w.above));
    json_object_set_new(st, "mark", json_real(round3(w.mark)));
    json_object_set_new(st, "clusters", json_integer(u->clusters));
    json_object_set_new(st, "clustersByGrade", by);
    json_object_set_new(st, "nodes", json_integer(u->nodes));
    json_object_set_new(st, "hosts", json_integer(hosts));
    json_object_set_new(st, "readyHosts", json_integer(ready));
    json_object_set_new(st, "zonesReady", zones_ready(u));
    json_object_set_new(
        st, "hostsNeeded",
        json_integer(kf_unit_hosts_needed(u, &d->policy, &d->grades.grades[0], 0, shape)));
    json_object_set_new(st, "canTake", take);
    json_object_set_new(st, "hostsNeededFor", need);
    json_object_set_new(st, "hostShape", kf_cap_res_json(shape));
    json_object_set_new(st, "conditions", conds);
    kf_strbuf_release(&msg);
    return st;
}

/* Whether the fields of want differ from have (conditions without times). */
static bool status_differs(const json_t *want, const json_t *have)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)want, key, v)
    {
        json_t *h = json_object_get(have, key);

        if (strcmp(key, "conditions") == 0) {
            if (!kf_cap_conditions_same(v, h))
                return true;
        } else if (json_is_real(v) && json_is_number(h)) {
            if (fabs(json_real_value(v) - json_number_value(h)) > 1e-9)
                return true;
        } else if (!json_equal(v, h)) {
            return true;
        }
    }
    return false;
}

/* A Region's status: the sums over its units, as the model has them. */
static int reconcile_region(struct unit_ctrl *d, const char *name)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *region = NULL, *st, *old;
    int64_t clusters = 0, hosts = 0, ready = 0;
    struct cap_units us;
    size_t n;
    int r = 0;

    if (!d->regions || kf_informer_get(d->regions, name, &region) < 0)
        return 0;
    pthread_mutex_lock(&d->model->lock);
    kf_cap_units_build(d->model, &d->policy, name, NULL, &us);
    n = us.n;
    for (size_t i = 0; i < us.n; i++) {
        clusters += us.units[i].clusters;
        hosts += (int64_t)us.units[i].n_hosts;
        for (size_t h = 0; h < us.units[i].n_hosts; h++)
            ready += us.units[i].hosts[h].ready;
    }
    kf_cap_units_release(&us);
    pthread_mutex_unlock(&d->model->lock);
    st = json_pack("{s:I, s:I, s:I, s:I, s:I}", "units", (json_int_t)n, "clusters",
                   (json_int_t)clusters, "hosts", (json_int_t)hosts, "readyHosts",
                   (json_int_t)ready, "observedGeneration", (json_int_t)kf_obj_generation(region));
    old = kf_json_path(region, "status");
    if (status_differs(st, old)) {
        json_t *patch = json_pack("{s:O}", "status", st);

        int64_t rev = 0;
        char key[sizeof(REGION_KEY) + 256];

        r = kf_cap_patch(d->reg, &kf_kind_region, name, patch, true, &rev, &err);
        json_decref(patch);
        snprintf(key, sizeof(key), "%s%s", REGION_KEY, name);
        if (r == 0)
            written_put(d, key, rev);
        if (r == -KF_ENOTFOUND)
            r = 0;
        else if (r < 0)
            kf_log_rl_warn("cannot write the status of region \"%s\": %s; retrying", name, err.buf);
    }
    json_decref(st);
    json_decref(region);
    kf_strbuf_release(&err);
    return r;
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue_after_ms)
{
    struct unit_ctrl *d = kf_ctrl_data(c);
    struct kf_strbuf err = KF_STRBUF_INIT, water = KF_STRBUF_INIT;
    json_t *unit = NULL, *st = NULL, *old;
    struct cap_units us;
    bool above = false, was_above;
    int i, r = 0;

    if (strncmp(name, REGION_KEY, strlen(REGION_KEY)) == 0)
        return reconcile_region(d, name + strlen(REGION_KEY));
    if (kf_informer_get(kf_ctrl_primary(c), name, &unit) < 0)
        return 0;
    enqueue_region(d, kf_json_str(unit, "spec.region", NULL));
    old = kf_json_path(unit, "status");
    was_above = kf_json_bool(old, "aboveWaterLevel", false);
    pthread_mutex_lock(&d->model->lock);
    kf_cap_unit_build(d->model, &d->policy, name, &us);
    i = kf_cap_units_find(&us, name);
    if (i >= 0)
        st = unit_status(d, &us, (size_t)i, json_object_get(old, "conditions"), kf_now_ms(), &above,
                         &water);
    kf_cap_units_release(&us);
    pthread_mutex_unlock(&d->model->lock);
    if (!st) { /* the model has not seen the Unit yet: its event will queue it */
        json_decref(unit);
        return 0;
    }
    json_object_set_new(st, "observedGeneration", json_integer(kf_obj_generation(unit)));
    if (status_differs(st, old)) {
        json_t *patch = json_pack("{s:O}", "status", st);

        int64_t rev = 0;

        r = kf_cap_patch(d->reg, &kf_kind_unit, name, patch, true, &rev, &err);
        json_decref(patch);
        if (r == 0)
            written_put(d, name, rev);
        if (r == -KF_ENOTFOUND)
            r = 0;
        else if (r < 0)
            kf_log_rl_warn("cannot write the status of unit \"%s\": %s; retrying", name, err.buf);
        else if (above != was_above)
            kf_recorder_event(d->rec, unit, above ? KF_EVENT_WARNING : KF_EVENT_NORMAL,
                              above ? "AboveWaterLevel" : "BelowWaterLevel", water.buf);
    }
    json_decref(st);
    json_decref(unit);
    kf_strbuf_release(&err);
    kf_strbuf_release(&water);
    return r;
}

const struct kf_ctrl_ops kf_ctrl_unit_status_ops = {
    .name = "unit-status",
    .primary_kind = "Unit",
    .workers = 1,
    .setup = setup,
    .reconcile = reconcile,
    .primary_map = map_unit,
};

int kf_ctrl_unit_status_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct kf_capacity_options dflt;
    const struct kf_capacity_options *o = env->capacity;
    struct unit_ctrl *d;

    if (!o) {
        kf_capacity_options_default(&dflt);
        o = &dflt;
    }
    d = kf_xcalloc(1, sizeof(*d));
    d->reg = env->reg;
    d->rec = kf_recorder_new(env->reg, "unit-status");
    if (o->grades)
        d->grades = *o->grades;
    else
        kf_grade_table_default(&d->grades);
    d->policy = o->policy;
    d->default_host = o->default_host;
    pthread_mutex_init(&d->lock, NULL);
    kf_smap_init(&d->written);
    *ret = d;
    return 0;
}

void kf_ctrl_unit_status_fini(void *data)
{
    struct unit_ctrl *d = data;

    if (!d)
        return;
    kf_recorder_free(d->rec);
    kf_smap_release(&d->written);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
