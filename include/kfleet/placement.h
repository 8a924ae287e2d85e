/* placement.h: where a guest control plane lives. GuestCluster -> Unit
 * (filters, then weighted scores), then its members -> hosts of that unit
 * (spread over zones), the unit water level, and capacity planning.
 *
 * The library works on plain structs that the caller fills (the placement
 * controller builds them from Unit, Host, GuestCluster and
 * ControlPlaneMember objects; the benchmark builds them directly). Strings
 * are borrowed: they must outlive the call. Nothing here touches JSON, the
 * store, a clock or a global; the same input gives the same answer.
 *
 *   kf_place()          the decision: a unit and member bindings, or a
 *                       message that names the best candidate and why it
 *                       failed ("no unit in cn-hangzhou has headroom for
 *                       grade G3: best is hz-u2 at 58 % cpu, would reach
 *                       71 % (mark 60 %)")
 *   kf_place_explain()  every unit's verdict: each filter, the numbers, the
 *                       score breakdown
 *   kf_place_commit()   books a decision into the unit and its hosts, so the
 *                       next decision sees it (and kf_place_uncommit undoes)
 *   kf_unit_water()     a unit's water level, how far above its mark, how
 *                       many more clusters of each grade it takes
 *   kf_unit_hosts_needed()  hosts of a shape to add to take N more of a grade
 *   kf_plan()           what a demand (500 x G1 + 40 x G3) needs in a region
 *
 * The model, formulas and defaults: docs/internals/placement.md.
 */
#ifndef KF_PLACEMENT_H
#define KF_PLACEMENT_H

#include "kfleet/base.h"
#include "kfleet/grade.h"

struct kf_strbuf;

#define KF_PLACE_MAX_ZONES     16
#define KF_PLACE_MAX_RATIOS    KF_GRADE_COUNT
#define KF_PLACE_MAX_EXCLUSIVE 8
#define KF_PLACE_MESSAGE_MAX   512

/* --- input ------------------------------------------------------------------- */

/* A meta host of a unit. capacity is allocatable (capacity - reserved);
 * allocated is the sum of the requests of the members bound to it. Hosts
 * that are not ready or are unschedulable (or carry a NoSchedule taint)
 * take no new members; not-ready hosts do not count towards the unit's
 * capacity, but their members still count as allocated. */
struct kf_place_host {
    const char *name;
    unsigned zone; /* index into the unit's zones */
    struct kf_res capacity;
    struct kf_res allocated;
    unsigned members;
    bool ready;
    bool unschedulable;
    /* The Kubernetes releases it holds, when its agent reports them
     * (Host status.kubernetesVersions): bit m set = it holds 1.m (m < 64).
     * A host that reports none (k8s_reported false) is taken to hold any. */
    bool k8s_reported;
    uint64_t k8s_minors;
};

/* At most max_fraction of the unit's clusters (counting the new one) may be
 * of `grade` (or of grade or above, when or_above): {G4, true, 0.10} says
 * "at most 10 % of G4+". One such cluster is always allowed. */
struct kf_place_ratio {
    int grade;
    bool or_above;
    double max_fraction;
};

struct kf_place_unit {
    /* spec */
    const char *name;
    const char *region;
    const char *const *zones;
    unsigned n_zones; /* <= KF_PLACE_MAX_ZONES */
    struct kf_place_host *hosts;
    size_t n_hosts;
    const char *const *features; /* "gpu", "edge", "dedicated", ... */
    size_t n_features;
    const char *const *compliance; /* the unit's own tags */
    size_t n_compliance;
    const char *const *region_compliance; /* tags of its region */
    size_t n_region_compliance;
    double water_level;    /* 0: the policy's (the caller resolves a region override) */
    double cost_per_core;  /* relative, 0: 1.0 */
    double performance;    /* relative, 0: 1.0 */
    unsigned max_clusters; /* 0: no limit */
    int64_t max_nodes;     /* sum of expectedNodes; 0: no limit */
    struct kf_place_ratio ratios[KF_PLACE_MAX_RATIOS];
    unsigned n_ratios;
    bool cordoned;
    const void *user; /* the caller's (e.g. its object); placement never reads it */

    /* state: clusters, by_grade and nodes are the caller's (counted from the
     * GuestClusters bound to the unit); capacity and allocated come from the
     * hosts (kf_place_unit_refresh). kf_place_commit keeps all of them. */
    unsigned clusters;
    unsigned by_grade[KF_GRADE_COUNT];
    int64_t nodes;
    struct kf_res capacity;  /* of ready hosts */
    struct kf_res allocated; /* of all hosts */
};

/* Recomputes u->capacity and u->allocated from the hosts. */
void kf_place_unit_refresh(struct kf_place_unit *u);

/* A member that exists already and stays on its host: a cluster whose
 * grade changes keeps the members the new grade still has, and one whose
 * members were partly created (kfleetd stopped in between) keeps those. */
struct kf_place_pin {
    uint16_t component; /* index into shape->components */
    uint16_t replica;   /* < that component's replicas */
    uint32_t host;      /* index into the hosts of the unit the cluster is pinned to */
};

/* A guest cluster to place. shape is the control plane (normally the grade
 * table row of grade; a profile may adjust it, e.g. more apiservers). */
struct kf_place_cluster {
    const char *name;
    const char *region;
    int grade;
    const struct kf_grade_spec *shape;
    int64_t expected_nodes;
    const char *const *compliance; /* tags the cluster needs */
    size_t n_compliance;
    const char *const *features; /* unit features its profile requires */
    size_t n_features;
    const char *unit; /* spec.placement.unit: only this unit; NULL: any */
    const char *const *avoid_units;
    size_t n_avoid_units;
    /* spec.placement.zones: new members only in these zones of the unit
     * (and the HA filter counts only these); NULL: every zone */
    const char *const *zones;
    size_t n_zones;
    /* spec.placement.unitSelector: a unit for which unit_ok returns false
     * fails the Unit filter; unit_ok_what (e.g. the selector's text) goes
     * into the reason. NULL: every unit. */
    bool (*unit_ok)(const struct kf_place_unit *u, void *ctx);
    void *unit_ok_ctx;
    const char *unit_ok_what;
    /* Members that exist (needs unit set): they keep their hosts, count for
     * the zone spread and come back as bindings with `pinned` set; only the
     * other replicas are bound. Their requests (of this shape) must not be
     * in the unit's and hosts' allocation: uncommit them first, as
     * kf_place_commit books every binding, pinned ones included. */
    const struct kf_place_pin *pins;
    unsigned n_pins;
    /* Its Kubernetes minor m of 1.m: only hosts that hold it take new
     * members (see kf_place_host.k8s_minors); 0: any host. */
    unsigned k8s_minor;
};

/* Scores, each 0..100 after normalisation (shown with one decimal). */
enum kf_place_score {
    KF_SCORE_SPREAD = 0,  /* LeastAllocated after placement: mean over cpu, memory of 1 - used */
    KF_SCORE_DENSITY,     /* MostAllocated after placement: mean of used (bin packing) */
    KF_SCORE_BALANCE,     /* BalancedAllocation: 1 - |cpu - memory| / 2 */
    KF_SCORE_COST,        /* cheapest costPerCore among candidates / this unit's */
    KF_SCORE_PERFORMANCE, /* this unit's performance / the best candidate's */
    KF_SCORE_QUOTA,       /* share of maxClusters left after placement (100 without a quota) */
    KF_SCORE_COUNT,
};

enum kf_place_filter {
    KF_FILTER_REGION = 0,
    KF_FILTER_UNIT, /* spec.placement.unit / avoidUnits / unitSelector */
    KF_FILTER_CORDON,
    KF_FILTER_COMPLIANCE,
    KF_FILTER_FEATURES,
    KF_FILTER_QUOTA,
    KF_FILTER_GRADE_RATIO,
    KF_FILTER_ZONES,
    KF_FILTER_WATER_CPU,
    KF_FILTER_WATER_MEMORY,
    KF_FILTER_HOSTS, /* the members fit on hosts, spread over zones */
    KF_FILTER_COUNT,
};

/* "Region", "Unit", "Cordon", "Compliance", "Features", "Quota",
 * "GradeRatio", "Zones", "WaterLevelCPU", "WaterLevelMemory", "HostFit". */
const char *kf_place_filter_name(enum kf_place_filter f);
/* "spread", "density", "balance", "cost", "performance", "quota". */
const char *kf_place_score_name(enum kf_place_score s);

struct kf_place_policy {
    double water_level;               /* default mark, 0.60 */
    double host_water_level;          /* a member may bring a host up to this, 0.85 */
    unsigned weights[KF_SCORE_COUNT]; /* spread 3, density 0, balance 2, cost 1,
                                         performance 1, quota 1 */
    /* A unit with one of these features only takes clusters that require it
     * (default: "dedicated"). */
    const char *exclusive_features[KF_PLACE_MAX_EXCLUSIVE];
    unsigned n_exclusive;
};

void kf_place_policy_default(struct kf_place_policy *p);

/* --- output ------------------------------------------------------------------- */

/* One member on one host. */
struct kf_place_binding {
    uint16_t component; /* index into shape->components */
    uint16_t replica;
    uint32_t host; /* index into unit->hosts */
    uint16_t zone;
    bool spread_fallback;                  /* more replicas than usable zones: shares a zone */
    bool pinned;                           /* an existing member kept on its host */
    float host_cpu_before, host_cpu_after; /* host cpu requests / allocatable */
};

struct kf_place_result {
    int unit;  /* index into units, or -1: Pending */
    int score; /* weighted total, per mille */
    unsigned n_bindings;
    struct kf_place_binding bindings[KF_GRADE_MAX_MEMBERS];
    char message[KF_PLACE_MESSAGE_MAX]; /* why this unit, or why none */
};

/* Reusable scratch for decisions; one per thread. */
struct kf_placer {
    struct kf_place_policy policy;
    void *scratch; /* private */
};

/* policy NULL: kf_place_policy_default. */
void kf_placer_init(struct kf_placer *p, const struct kf_place_policy *policy);
void kf_placer_release(struct kf_placer *p);

/* Places c among units (units are not modified). Returns 0 with ret->unit
 * and the bindings, or -ENOSPC with ret->unit == -1 and ret->message naming
 * the best candidate and why it failed; -EINVAL for a cluster without a
 * valid shape, or with pins that are not valid for the unit it is pinned to
 * (message says which). Ties: higher score, then fewer clusters, then name. */
int kf_place(struct kf_placer *p, const struct kf_place_unit *units, size_t n_units,
             const struct kf_place_cluster *c, struct kf_place_result *ret);

/* Books the result into units[r->unit]: host allocations and member
 * counts, unit allocated, clusters, by_grade and nodes. */
void kf_place_commit(struct kf_place_unit *units, const struct kf_place_cluster *c,
                     const struct kf_place_result *r);
/* Undoes what kf_place_commit booked for these bindings (cluster deleted). */
void kf_place_uncommit(struct kf_place_unit *u, const struct kf_place_cluster *c,
                       const struct kf_place_binding *b, unsigned n);

/* Writes one line per binding: "etcd-0 -> hz-a-h03 (zone hz-a, one per zone;
 * least allocated host: cpu 22 % -> 25 %)". */
void kf_place_bindings_format(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                              const struct kf_place_result *r, struct kf_strbuf *out);

/* --- explain ------------------------------------------------------------------- */

struct kf_place_verdict {
    size_t unit;          /* index into units */
    uint32_t failed;      /* bit (1 << filter) per failed filter */
    bool evaluated_hosts; /* HostFit was tried (only after every other filter passed) */
    double mark;
    double cpu_now, cpu_after, mem_now, mem_after; /* fractions of allocatable */
    int score[KF_SCORE_COUNT];         /* per mille; valid when no filter before HostFit failed */
    int total;                         /* weighted, per mille */
    char reason[KF_PLACE_MESSAGE_MAX]; /* every failure in words, "; "-separated */
};

struct kf_place_explain {
    struct kf_place_verdict *verdicts; /* one per unit, in the units' order */
    size_t n;
    int chosen; /* unit index, or -1 */
    struct kf_place_result result;
};

/* Like kf_place, but evaluates every filter of every unit (no short cut),
 * so each verdict lists all that failed. The chosen unit and the message
 * are the same kf_place gives. Release with kf_place_explain_release. */
int kf_place_explain(struct kf_placer *p, const struct kf_place_unit *units, size_t n_units,
                     const struct kf_place_cluster *c, struct kf_place_explain *ret);
void kf_place_explain_release(struct kf_place_explain *e);
/* A table for people: one line per unit of the cluster's region (units of
 * other regions summed up in one line), with verdict, cpu and memory now ->
 * after / mark, and each score; then the decision. */
void kf_place_explain_format(const struct kf_place_explain *e, const struct kf_place_unit *units,
                             const struct kf_place_cluster *c, const struct kf_place_policy *p,
                             struct kf_strbuf *out);

/* --- capacity ------------------------------------------------------------------ */

struct kf_unit_water {
    double mark;
    double cpu, mem;                   /* requests / allocatable (0 when no capacity) */
    bool above;                        /* cpu or mem above the mark */
    struct kf_res over;                /* requests above mark x allocatable (0 when below) */
    struct kf_res room;                /* mark x allocatable - requests (0 when above) */
    unsigned can_take[KF_GRADE_COUNT]; /* more clusters of each grade the room holds */
};

/* The unit's water level against its mark (the unit's, else the policy's). */
void kf_unit_water(const struct kf_place_unit *u, const struct kf_place_policy *p,
                   const struct kf_grade_table *t, struct kf_unit_water *ret);

/* Hosts of host_shape to add so that n more control planes of shape fit
 * under the mark, for CPU and memory separately (the larger wins); 0 if
 * they already fit. Counts aggregate room, as the admission rule does;
 * kf_plan checks the members really fit on hosts. */
unsigned kf_unit_hosts_needed(const struct kf_place_unit *u, const struct kf_place_policy *p,
                              const struct kf_grade_spec *shape, unsigned n,
                              struct kf_res host_shape);

/* Writes "cpu 58 %, memory 44 % (mark 60 %)", or "...: above the mark by
 * 38.4 CPU / 153.6 GiB; needs 1 more host of 64 CPU / 256 GiB" when above. */
void kf_unit_water_format(const struct kf_place_unit *u, const struct kf_unit_water *w,
                          struct kf_res host_shape, struct kf_strbuf *out);

/* --- planning -------------------------------------------------------------------- */

struct kf_plan_demand {
    int grade;
    unsigned count;
};

struct kf_plan_request {
    const char *region;
    const struct kf_place_unit *units; /* all units; those of region are used, not modified */
    size_t n_units;
    const struct kf_grade_table *grades;
    const struct kf_plan_demand *demand;
    size_t n_demand;
    struct kf_res host_shape; /* allocatable of a new host */
    unsigned new_unit_hosts;  /* hosts of a new unit; 0: 9 */
    unsigned new_unit_zones;  /* zones of a new unit; 0: 3 */
    unsigned max_unit_hosts;  /* existing units may grow up to this many hosts; 0: no growth */
};

struct kf_plan_line {
    char *name; /* an existing unit, or "new-1", "new-2", ... */
    bool is_new;
    unsigned absorbed[KF_GRADE_COUNT];
    unsigned hosts_before, hosts_added;
    double cpu_before, cpu_after, mem_before, mem_after, mark;
};

struct kf_plan_result {
    struct kf_plan_line *lines;
    size_t n_lines;
    unsigned demanded;
    unsigned absorbed_existing; /* by existing units as they are */
    unsigned absorbed_grown;    /* by existing units after adding hosts */
    unsigned absorbed_new;      /* by new units */
    unsigned hosts_added;       /* to existing units */
    unsigned new_units;
    unsigned new_unit_hosts;              /* hosts in new units, in all */
    unsigned unplaceable[KF_GRADE_COUNT]; /* too big for an empty new unit */
    unsigned unplanned; /* left out: planning them would simulate more than 1,000,000 hosts */
};

/* Simulates the demand with the real placement (filters, scores, host fit)
 * on copies of the region's units: first what existing units absorb as
 * they are, then (max_unit_hosts) what they absorb after adding hosts one
 * zone-set at a time, then new units of new_unit_hosts hosts over
 * new_unit_zones zones until everything is placed. Biggest grades first.
 * 0, or -EINVAL (bad request, reason in err). */
int kf_plan(struct kf_placer *p, const struct kf_plan_request *req, struct kf_plan_result *ret,
            struct kf_strbuf *err);
void kf_plan_result_release(struct kf_plan_result *r);
/* The answer for `kfleet plan`, one line per unit and a summary. */
void kf_plan_format(const struct kf_plan_request *req, const struct kf_plan_result *r,
                    struct kf_strbuf *out);

/* --- member replacement (placement-replace.c) ----------------------------------- */

/* Another member of the cluster: the index of its host in the unit's hosts
 * (SIZE_MAX or beyond n_hosts: not on a host of the unit), and whether it
 * is a replica of the same component. */
struct kf_place_peer {
    size_t host;
    bool same_component;
};

/* One member of a lost host, to be bound elsewhere in its unit. */
struct kf_place_replace {
    const char *component; /* for messages */
    struct kf_res req;     /* its requests */
    unsigned zone;         /* the zone it was in (index into the unit's zones) */
    size_t lost_host;      /* its host's index (never chosen); SIZE_MAX: not in the unit */
    int k8s_minor;         /* the Kubernetes minor (1.m) it runs; 0: any host (etcd) */
    const struct kf_place_peer *peers; /* the cluster's other members that stay */
    size_t n_peers;
};

/* Picks the host for r in unit u (docs/internals/replacement.md): a Ready,
 * schedulable host that is not the lost one, holds the release and stays
 * within the policy's host mark with the member; the member's own zone
 * first, then the zone with the fewest replicas of its component, then the
 * fewest members of the cluster; in a zone, anti-affinity with the
 * component, then with the cluster, then the least loaded host. 0 with the
 * index in *ret_host and the choice in why (may be NULL), or -ENOSPC with
 * the reason in why. Pure and deterministic. */
int kf_place_replace_host(const struct kf_place_unit *u, const struct kf_place_policy *p,
                          const struct kf_place_replace *r, size_t *ret_host,
                          struct kf_strbuf *why);

#endif
