/* ctrl-capacity.h: what the capacity controllers (kfleet/capacity.h) share
 * and nothing else needs: quantities, conditions, status patches, the
 * read-your-writes barrier (ctrl-capacity-util.c), and the capacity model, the
 * compact picture of regions, units, hosts, members and clusters that the
 * placement and unit-status controllers keep from their informers'
 * events (ctrl-capacity-model.c).
 */
#ifndef KF_CTRL_CAPACITY_H
#define KF_CTRL_CAPACITY_H

#include <pthread.h>
#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/capacity.h"
#include "kfleet/grade.h"
#include "kfleet/placement.h"
#include "kfleet/smap.h"

struct kf_ctrl;
struct kf_informer;
struct kf_kind;
struct kf_registry;
struct kf_strbuf;

/* --- ctrl-capacity-util.c ------------------------------------------------------ */

/* A quantity (string or number) in milli-units; -1 when absent or bad. */
int64_t kf_cap_qty_milli(const json_t *v);
/* {"cpu": "4", "memory": "16Gi"} -> millicores and bytes; absent: 0. */
struct kf_res kf_cap_res_parse(const json_t *map);
/* The other way: {"cpu": "4", "memory": "16Gi"} (new reference). */
json_t *kf_cap_res_json(struct kf_res r);
/* "500m", "4", "2500m"; "16Gi", "819Mi", "1000" (bytes). */
void kf_cap_fmt_cpu(int64_t milli, char *buf, size_t size);
void kf_cap_fmt_mem(int64_t bytes, char *buf, size_t size);
/* "64 CPU / 256 GiB", "1.6 CPU / 6.4 GiB" (as the placement messages). */
void kf_cap_fmt_res(struct kf_res r, struct kf_strbuf *out);
/* kf_now_ms() as RFC 3339. */
void kf_cap_now_rfc3339(int64_t now_ms, char buf[32]);

/* A Kubernetes condition {type, status, reason, message, lastTransitionTime}
 * (new reference). lastTransitionTime is kept from the condition of that
 * type in old (an array, may be NULL) when its status is the same. */
json_t *kf_cap_condition(const json_t *old, const char *type, bool status, const char *reason,
                         const char *message, int64_t now_ms);
/* The condition of type in conditions (borrowed), or NULL. */
const json_t *kf_cap_condition_find(const json_t *conditions, const char *type);
/* Whether two condition arrays say the same (times ignored). */
bool kf_cap_conditions_same(const json_t *a, const json_t *b);

/* True when array (of strings) holds s. */
bool kf_cap_str_in(const json_t *array, const char *s);

/* Merge-patches obj's status (status_only) or its metadata (labels,
 * annotations, finalizers) with patch (borrowed). Returns 0 or the
 * registry's error (-KF_ENOTFOUND when the object went away), with the
 * reason in err. *ret_rev (may be NULL) gets the new resourceVersion. */
int kf_cap_patch(struct kf_registry *reg, const struct kf_kind *k, const char *name,
                 const json_t *patch, bool status_only, int64_t *ret_rev, struct kf_strbuf *err);

/* Waits until the informer reflects revision rev (its own kind's writes up
 * to rev were seen and their handlers ran), at most timeout_ms. Returns 1
 * when it does, 0 on timeout. */
int kf_cap_wait_rev(struct kf_informer *inf, int64_t rev, int timeout_ms);

/* A Profile's spec.heartbeatGrace in ms, 0 when absent. */
int64_t kf_cap_profile_grace_ms(const json_t *profile);

/* --- ctrl-capacity-model.c: the capacity model ------------------------------------ */

struct cap_host;
struct cap_unit;
struct cap_cluster;

struct cap_member {
    char *name;
    struct cap_cluster *cluster; /* never NULL (a placeholder until the cluster is seen) */
    struct cap_host *host;       /* NULL: not bound */
    const char *component;       /* interned: the model's components map owns it */
    int index;
    struct kf_res req;
    bool ready; /* status.ready */
};

struct cap_host {
    char *name;
    bool known;            /* the Host object was seen (else only members name it) */
    struct cap_unit *unit; /* meta hosts only */
    char *zone;
    struct kf_res capacity;    /* spec.capacity */
    struct kf_res allocatable; /* capacity - reserved */
    bool schedulable;          /* !unschedulable and no NoSchedule/NoExecute taint */
    bool ready;                /* status.ready */
    bool k8s_reported;         /* status.kubernetesVersions is there */
    uint64_t k8s_minors;       /* bit m: it holds 1.m */
    struct kf_res allocated;   /* members bound to it (maintained) */
    unsigned members;
};

struct cap_cluster {
    char *name;
    bool known;
    char *region;
    struct cap_unit *unit; /* status.unit: placed; NULL: not */
    int grade;             /* status.grade, KF_GRADE_NONE when unset */
    int64_t nodes;         /* status.effective.expectedNodes, else spec */
    bool deleting;
    bool grade_changing;       /* condition GradeChanging True */
    struct kf_res shape_total; /* status.effective.requests (0: unknown) */
    struct kf_res bound;       /* requests of its members bound to hosts (maintained) */
    /* its members, in no particular order (a cluster has ~10: a list costs
     * less than a map of its own) */
    struct cap_member **members;
    size_t n_members, alloc_members;
};

struct cap_unit {
    char *name;
    json_t *spec;            /* the Unit's spec (owned); NULL: not seen (hosts name it) */
    json_t *labels;          /* its metadata.labels (owned; NULL: none) */
    struct kf_smap hosts;    /* name -> struct cap_host * */
    struct kf_smap clusters; /* placed here: name -> struct cap_cluster * */
};

struct cap_region {
    char *name;
    json_t *spec;
};

/* What an event changed: the units to look at again, or a whole region,
 * and the cluster an event was about (names copied: the entries may be
 * gone). Empty strings when none. */
struct cap_change {
    char units[2][254];
    size_t n_units;
    char region[254]; /* every unit of this region */
    char cluster[254];
    /* what a placement decision reads changed (a host's readiness, a unit's
     * spec, ...), not only bookkeeping (status writes of hosts and units) */
    bool placement_input;
    /* GuestCluster events: the cluster's GradeChanging before the event */
    bool was_grade_changing;
};

/* The last event of one kind that was applied, for the subscribers that
 * have not been handed its change yet (kf_cap_model_apply). */
struct cap_memo {
    char *name;
    int64_t rv;
    bool deleted;
    unsigned left;
    struct cap_change change;
};

#define CAP_MODEL_KINDS 5 /* Region, Unit, Host, ControlPlaneMember, GuestCluster */

/* The model. Entries live in the maps by name; the maps of entries borrow
 * the entry's own name as their key (kf_smap_init_borrowed), so an entry
 * leaves every map before it is freed. Every function takes the lock
 * itself except those marked "locked"; readers of entries hold it.
 *
 * One model serves the placement and unit-status controllers of a manager
 * (kf_cap_model_shared). Both handle every event of the five kinds, one after
 * the other in the informer's thread: the first handler's kf_cap_model_apply
 * applies the event, the others get the change it made (memo). */
struct cap_model {
    pthread_mutex_t lock;
    struct kf_smap regions, units, hosts, members, clusters;
    struct kf_smap components; /* component name -> its one copy */
    unsigned subscribers;      /* controllers that apply events to it */
    struct cap_memo memo[CAP_MODEL_KINDS];
};

/* The cluster's members sorted by name (locked), in *ret (the caller
 * frees the array, not the members); their count. */
size_t kf_cap_cluster_members_sorted(const struct cap_cluster *c, struct cap_member ***ret);

void kf_cap_model_init(struct cap_model *m);
void kf_cap_model_release(struct cap_model *m);
/* The model of c's manager that the capacity controllers share (made by
 * the first to ask, freed with the manager), with c counted among its
 * subscribers. Call from setup. */
struct cap_model *kf_cap_model_shared(struct kf_ctrl *c);
/* Applies one informer event of a Region, Unit, Host, ControlPlaneMember
 * or GuestCluster (obj: the new state, or the last one when deleted). With
 * several subscribers, an event (kind, name, resourceVersion, deleted)
 * that was just applied is not applied again: *ret is the change it made,
 * for each of the other subscribers once. */
void kf_cap_model_apply(struct cap_model *m, const struct kf_kind *k, const json_t *obj,
                        bool deleted, struct cap_change *ret);
/* Names of the units of region (locked by the caller or not: takes the
 * lock). Caller frees with kf_ctrl_names_free. */
size_t kf_cap_model_units_of(struct cap_model *m, const char *region, char ***ret);

/* Placement input built from the model, under the lock (locked: the
 * caller holds m->lock while the result is used: strings point into the
 * model). Units of one region (NULL: every unit), sorted by name; hosts of
 * each unit sorted by name. exclude (may be NULL): a cluster whose members
 * and placement are left out, as if it were not there (a cluster placed
 * again, re-bound or explained while it sits in a unit). */
struct cap_units {
    struct kf_place_unit *units;
    size_t n;
    struct cap_unit **src; /* the model's unit of each */
    struct kf_place_host *hosts;
    size_t n_hosts;
    const char **strs;
    size_t n_strs, alloc_strs;
    char *owned; /* kf_cap_units_detach: every string above, copied */
};
void kf_cap_units_build(struct cap_model *m, const struct kf_place_policy *pol, const char *region,
                        const char *exclude, struct cap_units *ret);
/* The same for one unit (ret->n is 0 when the model has no such unit with
 * a spec): what a unit's own status needs, without building its region's
 * other units (O(units) for each unit's status would be O(units^2) a
 * round). */
void kf_cap_unit_build(struct cap_model *m, const struct kf_place_policy *pol, const char *unit,
                       struct cap_units *ret);
void kf_cap_units_release(struct cap_units *u);
/* Makes u a snapshot that no longer borrows from the model: names, zones,
 * features and tags are copied, src and each unit's user are cleared. Call
 * it under the model's lock; afterwards long work (a plan) runs on u
 * without the lock, so placement is not stalled by it. */
void kf_cap_units_detach(struct cap_units *u);
/* Index of unit name in u, or -1. */
int kf_cap_units_find(const struct cap_units *u, const char *name);
/* Index of host name in unit i, or -1. */
int kf_cap_units_find_host(const struct cap_units *u, size_t i, const char *host);
/* The allocatable shape most of the unit's hosts have (the larger on a
 * tie), or dflt when it has none. */
struct kf_res kf_cap_unit_host_shape(const struct kf_place_unit *u, struct kf_res dflt);

#endif
