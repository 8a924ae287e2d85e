/* capacity.h: kfleetd's capacity controllers, and the names they write
 * that other parts of kfleet (agents, the CLI, monitoring) read.
 *
 * Four controllers, each a line in src/controllers/ctrl-table.c, all on the
 * controller runtime (kfleet/ctrlrt.h):
 *
 *   profiles        installs the six default Profiles (standard, serverless,
 *                   ai, baremetal, edge, windows) when they are absent; never
 *                   overwrites an operator's edits (examples/profiles.yaml)
 *   host-lifecycle  a Host is Ready while it heartbeats (kfleet/lease.h):
 *                   writes status.ready and the Ready condition on
 *                   transitions only, with an Event; keeps the kfleet.io/role,
 *                   zone, unit / cluster labels and status.allocated in step
 *   unit-status     a Unit's capacity from its Ready hosts, its allocation
 *                   from the members bound to them (and from clusters placed
 *                   but not yet bound), water level per resource, clusters
 *                   per grade, and conditions when it is above its mark or
 *                   cannot take another cluster of some grade
 *   placement       a GuestCluster's grade, effective settings (profile +
 *                   template + its own), unit, IP ranges and control-plane
 *                   members, through the placement and IPAM libraries
 *                   (kfleet/placement.h, kfleet/ipam.h); explain and plan
 *                   actions served by the API
 *
 * docs/internals/placement.md ("The controllers") explains how they fit.
 */
#ifndef KF_CAPACITY_H
#define KF_CAPACITY_H

#include "kfleet/base.h"
#include "kfleet/grade.h"
#include "kfleet/placement.h"

struct kf_ctrl_env;
struct kf_ctrl_ops;
struct kf_strbuf;

/* Labels the controllers keep on objects (selectors: `kfleet get hosts -l
 * kfleet.io/unit=hz-u1`, `kfleet get cpm -l kfleet.io/cluster=web-1`). */
#define KF_LABEL_ROLE      "kfleet.io/role"      /* Host: meta | worker */
#define KF_LABEL_ZONE      "kfleet.io/zone"      /* Host, ControlPlaneMember */
#define KF_LABEL_UNIT      "kfleet.io/unit"      /* Host (meta), ControlPlaneMember */
#define KF_LABEL_CLUSTER   "kfleet.io/cluster"   /* Host (worker), ControlPlaneMember */
#define KF_LABEL_COMPONENT "kfleet.io/component" /* ControlPlaneMember */
#define KF_LABEL_HOST      "kfleet.io/host"      /* ControlPlaneMember */
/* Set on the Profiles kfleetd installed (value "true"). */
#define KF_ANNOTATION_DEFAULT_PROFILE "kfleet.io/default-profile"

/* The placement controller's finalizer on a GuestCluster: removed once its
 * members are deleted and its IP ranges released. */
#define KF_FINALIZER_PLACEMENT "kfleet.io/placement"

#define KF_CAPACITY_HOST_GRACE_MS (40 * 1000)

/* What kfleetd's flags set for these controllers. */
struct kf_capacity_options {
    /* Heartbeat silence after which a Host is NotReady (--host-grace). A
     * Profile's spec.heartbeatGrace (edge) lengthens it for the meta hosts
     * of units that offer the profile's unit features and for the worker
     * hosts of its clusters. */
    int64_t host_grace_ms;
    /* The grade table (--grade-table FILE); NULL: kf_grade_table_default. */
    const struct kf_grade_table *grades;
    /* Hysteresis and the fleet-wide limit on grade changes
     * (--grade-up-hold, --grade-down-hold, --max-grade-changes). */
    struct kf_grade_shift_policy shift;
    /* Placement policy: default mark, weights, exclusive features. */
    struct kf_place_policy policy;
    /* Shape of a host that `kfleet plan` and the unit conditions assume when
     * a unit has no hosts to copy (64 CPU / 256 GiB). */
    struct kf_res default_host;
    /* Unit loss (ctrl-unitloss.c): every host of a unit NotReady this long
     * (--unit-loss-grace) makes it lost, and its clusters are restored from
     * their backups on other units, at most unit_loss_concurrency at once
     * fleet-wide (--unit-loss-concurrency). */
    int64_t unit_loss_grace_ms;
    unsigned unit_loss_concurrency;
};

#define KF_UNIT_LOSS_GRACE_MS        (10 * 60 * 1000)
#define KF_UNIT_LOSS_GRACE_MAX_MS    (7LL * 24 * 3600 * 1000)
#define KF_UNIT_LOSS_CONCURRENCY     50
#define KF_UNIT_LOSS_CONCURRENCY_MAX 10000

void kf_capacity_options_default(struct kf_capacity_options *o);

/* The controllers' entries for the table in ctrl-table.c. env->capacity
 * (NULL: defaults) is copied by each init. */
extern const struct kf_ctrl_ops kf_ctrl_profiles_ops;
extern const struct kf_ctrl_ops kf_ctrl_host_ops;
extern const struct kf_ctrl_ops kf_ctrl_unit_status_ops;
extern const struct kf_ctrl_ops kf_ctrl_placement_ops;
extern const struct kf_ctrl_ops kf_ctrl_unitloss_ops;
int kf_ctrl_unitloss_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
void kf_ctrl_unitloss_fini(void *data);
int kf_ctrl_profiles_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
int kf_ctrl_host_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
int kf_ctrl_unit_status_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
int kf_ctrl_placement_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
void kf_ctrl_profiles_fini(void *data);
void kf_ctrl_host_fini(void *data);
void kf_ctrl_unit_status_fini(void *data);
void kf_ctrl_placement_fini(void *data);

/* explain and plan as the API serves them (ctrl-placement-api.c), for
 * tests without a server: data is the placement controller's
 * (kf_ctrl_data). New reference in *ret, or an error with err. */
struct json_t;
int kf_ctrl_placement_explain(void *data, const char *name, struct json_t **ret,
                              struct kf_strbuf *err);
int kf_ctrl_placement_plan(void *data, const struct json_t *body, struct json_t **ret,
                           struct kf_strbuf *err);

/* The six default Profiles as a YAML stream (examples/profiles.yaml,
 * compiled in). */
const char *kf_default_profiles_yaml(size_t *ret_len);

#endif
