/* ctrl-placement.h: what the placement controller's files share.
 *
 *   ctrl-placement.c           the controller: events, the reconcile of a
 *                              GuestCluster, status, grade changes
 *   ctrl-placement-settings.c  effective settings (profile + template +
 *                              spec) and the control-plane shape
 *   ctrl-placement-ipam.c      IP ranges per VPC from IPPool objects
 *   ctrl-placement-members.c   ControlPlaneMembers: create, bind, resize,
 *                              delete
 *   ctrl-placement-api.c       the explain and plan actions
 *
 * Threading: one worker reconciles (decisions and writes are serial);
 * informer threads update the capacity model and the IPAM dirty flags
 * (under the model's lock and `lock`); API threads read the model for
 * explain and plan (under the model's lock) with placers of their own.
 */
#ifndef KF_CTRL_PLACEMENT_H
#define KF_CTRL_PLACEMENT_H

#include <pthread.h>
#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/grade.h"
#include "kfleet/ipam.h"
#include "kfleet/placement.h"
#include "kfleet/smap.h"
#include "kfleet/store.h"
#include "controllers/ctrl-capacity.h"

struct kf_api_actions;
struct kf_ctrl;
struct kf_informer;
struct kf_recorder;
struct kf_registry;
struct kf_strbuf;

struct place_ctrl {
    struct kf_ctrl *ctrl;
    struct kf_registry *reg;
    struct kf_recorder *rec;
    const struct kf_api_actions *actions;
    struct cap_model *model; /* shared with the other capacity controller (kf_cap_model_shared) */
    struct kf_grade_table grades;
    struct kf_grade_shift_policy shift;
    struct kf_place_policy policy;
    struct kf_res default_host;
    struct kf_placer placer; /* the worker's */
    struct kf_informer *clusters, *members, *pools, *profiles, *templates, *units;

    /* Read-your-writes: the revision of our last write to each kind; a
     * reconcile waits until the informers have seen them. Worker only. */
    int64_t need_cluster_rev, need_member_rev, need_pool_rev;

    pthread_mutex_t lock;       /* the fields below */
    struct kf_smap pending;     /* Pending clusters: name -> region (owned string) */
    struct kf_smap fresh;       /* new clusters for the next batch (no values) */
    struct kf_smap just_placed; /* decided by a batch: name -> revision written (intptr_t) */
    struct kf_smap retry;       /* Pending clusters woken since, for the next batch (no values) */
    uint64_t wakes;             /* wake_pending calls so far */
    struct kf_smap unit_events; /* unit -> struct unit_placed: placed, Event not written yet */
    struct kf_smap candidates;  /* clusters that want another grade: name -> struct shift_cand */
    struct kf_smap vpcs;        /* vpc name -> struct place_vpc */
    struct kf_smap pool_writes; /* IPPool name -> the resourceVersion we last wrote (intptr) */
};

/* Objects a placement transaction writes at most: a store transaction
 * holds KF_STORE_MAX_TXN_OPS ops, and a leader's fenced store
 * (kf_store_guard_new, kfleetd on etcd) adds one of its own. */
#define PLACE_TXN_MAX (KF_STORE_MAX_TXN_OPS - 1)

/* --- settings (ctrl-placement-settings.c) ------------------------------------- */

/* A cluster's settings after merging its profile, template and spec. */
struct kf_place_settings {
    json_t *effective; /* status.effective (owned) */
    json_t *profile;   /* the Profile (owned) */
    int explicit_grade;
    int64_t nodes, pods;     /* pods: -1 unknown */
    int64_t simulated_nodes; /* spec.simulatedNodes: 0 none */
    unsigned max_pods;
    const char *compliance[16];
    size_t n_compliance;
    const char *features[24]; /* unit features the profile requires */
    size_t n_features;
};

/* Merges; on a problem returns -KF_EINVALID with a condition reason
 * (TemplateNotFound, ProfileNotFound, VersionNotSupported, TooManyNodes)
 * in *ret_reason and the message in why. Release with kf_place_settings_release
 * either way. */
int kf_place_settings(struct place_ctrl *d, const json_t *cluster, struct kf_place_settings *ret,
                      const char **ret_reason, struct kf_strbuf *why);
void kf_place_settings_release(struct kf_place_settings *s);
/* The control plane of grade g for the settings' profile: the grade
 * table's members, filtered and completed by the profile's components,
 * apiServer.replicas and etcd.members, plus a KWOK member
 * (KF_KWOK_COMPONENT) when the cluster has simulated nodes. */
void kf_place_shape(const struct kf_grade_table *t, int g, const json_t *profile,
                    int64_t simulated_nodes, struct kf_grade_spec *ret);
/* Writes the shape into status.effective: "components" and "requests". */
void kf_place_shape_json(const struct kf_grade_spec *shape, json_t *effective);
/* What a placement input points to besides the cluster and its settings:
 * spec.placement.avoidUnits, zones and the parsed unitSelector (matched
 * against the labels of the units kf_cap_units_build made). */
struct kf_selector;
struct place_input_bufs {
    const char *avoid[64];
    const char *zones[KF_PLACE_MAX_ZONES];
    struct kf_selector *unit_selector;
    char *unit_selector_text;
};
/* The placement input for a cluster (strings borrowed from cluster, s and
 * bufs; release bufs after the placement). */
void kf_place_cluster_input(const json_t *cluster, const struct kf_place_settings *s, int grade,
                            const struct kf_grade_spec *shape, struct kf_place_cluster *ret,
                            struct place_input_bufs *bufs);
void kf_place_input_bufs_release(struct place_input_bufs *bufs);
/* Sets c->zones from spec.placement.zones (strings borrowed from cluster,
 * the array in buf); leaves c alone when the spec names none. */
void kf_place_cluster_zones(const json_t *cluster, struct kf_place_cluster *c,
                            const char *buf[KF_PLACE_MAX_ZONES]);
/* Whether the cluster named name may start disruptive work now under its
 * maintenance window (absent: always): kf_window_allows, in milliseconds. */
bool kf_place_in_window(const json_t *window, const char *name, int64_t now_ms);

/* --- IPAM (ctrl-placement-ipam.c) --------------------------------------------- */

struct place_vpc {
    char *name;
    struct kf_ipam_vpc *v; /* NULL: not built (or no pools) */
    bool dirty;            /* rebuild from the objects before the next use */
    bool summary_dirty;    /* the IPPools' status summary is due */
    char *error;           /* why it could not be built */
};

/* The reconcile key of the IPPool summaries (not a valid object name). */
#define PLACE_POOLS_KEY "~ippools"
/* + a unit's name: the reconcile key of the unit's ClustersScheduled Event */
#define PLACE_EVENTS_KEY "~events/"

/* An IPPool event: marks its VPC for a rebuild unless it is our own write;
 * returns whether it was someone else's change. */
bool kf_place_ipam_event(struct place_ctrl *d, const json_t *pool, bool deleted);
/* Ranges for a cluster: allocated (or found, grown when expectedNodes
 * grew) in memory. The caller persists them in the cluster's
 * status.network, and calls kf_place_ipam_unwritten if that write fails.
 * -ENOSPC / -KF_EINVALID / -KF_EEXISTS / -ENOENT with the reason in why
 * (nothing kept). */
int kf_place_ipam_allocate(struct place_ctrl *d, const json_t *cluster,
                           const struct kf_place_settings *s, struct kf_ipam_alloc *ret,
                           char **ret_pool, struct kf_strbuf *why);
/* The ranges just allocated for a cluster of vpc were not written: the
 * allocator is rebuilt from the store before its next use. */
void kf_place_ipam_unwritten(struct place_ctrl *d, const char *vpc);
/* Releases every range of cluster in vpc (memory; the cluster object, gone
 * with its finalizer, was the record). */
int kf_place_ipam_release(struct place_ctrl *d, const char *vpc, const char *cluster,
                          struct kf_strbuf *why);
/* Whether an IPPool summary is due, and writing them. */
bool kf_place_ipam_summary_due(struct place_ctrl *d);
int kf_place_ipam_summaries(struct place_ctrl *d);
void kf_place_ipam_free(struct place_ctrl *d);

/* --- members (ctrl-placement-members.c) --------------------------------------- */

/* "<cluster>-<component>-<index>" into buf. */
void kf_place_member_name(const char *cluster, const char *component, unsigned index, char *buf,
                          size_t size);
/* Makes the cluster's members what shape says on its unit: deletes those
 * the shape no longer has, updates requests that changed, binds and
 * creates the missing ones around the existing (pinned) ones. Returns 0, or
 * -ENOSPC with why (the missing members do not fit), or a store error. */
int kf_place_members_sync(struct place_ctrl *d, const json_t *cluster, const char *unit, int grade,
                          const struct kf_grade_spec *shape, const char *version,
                          struct kf_strbuf *why);
/* A member object bound to host in zone of unit (new reference). */
json_t *kf_place_member_obj(const json_t *cluster, const char *unit, const char *host,
                            const char *zone, const struct kf_component *comp, unsigned index,
                            const char *version);
/* Creates members in store transactions (those that exist already are
 * left as they are). */
int kf_place_members_create(struct place_ctrl *d, json_t *const *objs, size_t n,
                            struct kf_strbuf *why);
/* Deletes every member of cluster; returns how many are left to go (0: none). */
int kf_place_members_delete_all(struct place_ctrl *d, const char *cluster, struct kf_strbuf *why);
/* Members desired by the shape, and how many of the cluster's are Ready. */
void kf_place_members_count(struct place_ctrl *d, const char *cluster, unsigned *ret_existing,
                            unsigned *ret_ready);

/* --- moves to another unit (ctrl-placement-move.c) ----------------------------- */

/* The move the cluster's KF_MOVE_ANN asks for, one step: 1 when the move
 * holds the cluster (the usual reconcile of a placed cluster waits),
 * 0 when there is none (or it is done), or a store error (retried). Sets
 * *requeue_after_ms while it goes on. Worker only. */
int kf_place_move_step(struct place_ctrl *d, const json_t *cluster,
                       const struct kf_place_settings *s, int64_t *requeue_after_ms);
/* Adds / removes the action POST .../guestclusters/NAME/move (admin). */
void kf_place_move_bind(struct place_ctrl *d);
void kf_place_move_unbind(struct place_ctrl *d);

/* --- actions (ctrl-placement-api.c) ------------------------------------------- */

void kf_place_api_bind(struct place_ctrl *d);
void kf_place_api_unbind(struct place_ctrl *d);

#endif
