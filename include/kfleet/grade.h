/* grade.h: control-plane grades G0..G5, what each one asks of a unit, and
 * when a guest cluster moves from one grade to another.
 *
 * A grade is a size class of a guest control plane. It is picked from the
 * cluster's expected nodes, pods and API load (the highest grade any of them
 * demands), or set explicitly in the spec. Each grade fixes the members of
 * the control plane (components, replicas, the CPU and memory each replica
 * requests, how replicas spread over zones) and the etcd quota. The default
 * table is reference §3.7; an operator can replace it with a JSON file
 * (kf_grade_table_from_json). docs/internals/placement.md explains it.
 *
 * Pure data and arithmetic: no store, no logging, no globals. The JSON
 * load/dump functions are the only ones that touch jansson.
 */
#ifndef KF_GRADE_H
#define KF_GRADE_H

#include "kfleet/base.h"

struct kf_strbuf;
struct json_t; /* jansson's json_t; include <jansson.h> to use the JSON functions */

enum {
    KF_G0 = 0,
    KF_G1,
    KF_G2,
    KF_G3,
    KF_G4,
    KF_G5,
    KF_GRADE_COUNT,
    KF_GRADE_NONE = -1,
};

/* CPU in millicores, memory in bytes: the two resources of the model. */
struct kf_res {
    int64_t cpu_milli;
    int64_t mem_bytes;
};

#define KF_MIB ((int64_t)1 << 20)
#define KF_GIB ((int64_t)1 << 30)

/* How the replicas of one component spread over a unit's zones. */
enum kf_spread {
    KF_SPREAD_ZONES = 0,    /* round-robin over zones, fewest of this cluster first */
    KF_SPREAD_ONE_PER_ZONE, /* a distinct zone per replica (etcd quorum) */
};

#define KF_COMPONENT_NAME_MAX   32
#define KF_GRADE_MAX_COMPONENTS 8
#define KF_GRADE_MAX_REPLICAS   16
#define KF_GRADE_MAX_MEMBERS    (KF_GRADE_MAX_COMPONENTS * KF_GRADE_MAX_REPLICAS)
#define KF_GRADE_UNBOUNDED      INT64_MAX

struct kf_component {
    char name[KF_COMPONENT_NAME_MAX]; /* "etcd", "kube-apiserver", ... */
    unsigned replicas;                /* 1..KF_GRADE_MAX_REPLICAS */
    enum kf_spread spread;
    struct kf_res req; /* per replica */
};

/* One row of the grade table. Bounds are inclusive upper bounds: a cluster
 * with nodes <= max_nodes, pods <= max_pods and qps <= max_qps fits. The
 * last grade's bounds may be KF_GRADE_UNBOUNDED. */
struct kf_grade_spec {
    int64_t max_nodes;
    int64_t max_pods;
    int64_t max_qps;
    unsigned min_zones; /* a unit needs this many usable zones (HA: 3) */
    int64_t etcd_quota_bytes;
    unsigned n_components;
    struct kf_component components[KF_GRADE_MAX_COMPONENTS];
};

struct kf_grade_table {
    struct kf_grade_spec grades[KF_GRADE_COUNT];
};

/* "G0".."G5", or "none" for anything else. */
const char *kf_grade_name(int grade);
/* Parses "G3" or "g3"; returns the grade or -EINVAL. */
int kf_grade_parse(const char *s);

/* Fills t with the default table of reference §3.7. */
void kf_grade_table_default(struct kf_grade_table *t);
/* Checks a table: bounds rise with the grade, every grade has components
 * with 1..16 replicas and positive requests, min_zones 1..16. -EINVAL with
 * the first problem in err. */
int kf_grade_table_validate(const struct kf_grade_table *t, struct kf_strbuf *err);

/* The lowest grade whose bounds hold every known dimension (a negative
 * value means "unknown" and is ignored). Above the last grade's bounds the
 * answer is the last grade. */
int kf_grade_for(const struct kf_grade_table *t, int64_t nodes, int64_t pods, int64_t qps);
/* As kf_grade_for, but an explicit grade (>= 0) wins; writes why into
 * reason if given ("G2: 180 nodes > 100 (G1)" or "G4: set in spec"). */
int kf_grade_decide(const struct kf_grade_table *t, int explicit_grade, int64_t nodes, int64_t pods,
                    int64_t qps, struct kf_strbuf *reason);

/* Sum of the requests of every member of the grade. */
struct kf_res kf_grade_total(const struct kf_grade_spec *g);
/* Number of members (sum of replicas). */
unsigned kf_grade_members(const struct kf_grade_spec *g);

/* JSON: {"grades":[{"name":"G0","maxNodes":10,"maxPods":1100,"maxQPS":50,
 * "minZones":3,"etcdQuota":"8Gi","components":[{"name":"etcd","replicas":3,
 * "spread":"OnePerZone","cpu":"200m","memory":"819Mi"},...]},...]}.
 * Quantities are Kubernetes quantities; "maxNodes": null means unbounded.
 * from_json fills every grade (all six must be present) and validates;
 * -EINVAL with the field named in err; *t untouched on failure. */
int kf_grade_table_from_json(const struct json_t *doc, struct kf_grade_table *t,
                             struct kf_strbuf *err);
/* New reference. */
struct json_t *kf_grade_table_to_json(const struct kf_grade_table *t);

/* --- grade shifting with hysteresis -------------------------------------
 *
 * Up: as soon as any dimension exceeds the current grade's bound, the target
 * is the grade kf_grade_for gives; the move happens once that demand has held
 * for up_hold_ms (default 10 min), at any time of day.
 * Down: the target is the lowest grade g < current whose bounds, scaled by
 * (1 - down_margin), still hold every dimension (default margin 0.30: a
 * cluster leaves G2 for G1 only at <= 70 nodes, not at 100, so a cluster
 * hovering around a bound does not flap). The move happens only when that
 * has held for down_hold_ms (default 24 h) and only inside the cluster's
 * maintenance window.
 * Fleet limit: at most max_in_flight clusters change grade at once.
 */
struct kf_grade_shift_policy {
    int64_t up_hold_ms;
    int64_t down_hold_ms;
    double down_margin;     /* 0..0.9 */
    unsigned max_in_flight; /* fleet-wide */
};

enum kf_grade_move {
    KF_GRADE_STAY = 0, /* target == current */
    KF_GRADE_WAIT,     /* a move is wanted but its hold time or window is not there yet */
    KF_GRADE_UP,
    KF_GRADE_DOWN,
};

void kf_grade_shift_policy_default(struct kf_grade_shift_policy *p);

/* The grade the observation asks for, with the hysteresis band applied:
 * current when the cluster is inside its band. */
int kf_grade_shift_target(const struct kf_grade_table *t, const struct kf_grade_shift_policy *p,
                          int current, int64_t nodes, int64_t pods, int64_t qps);

/* Whether to move from current to target now. held_ms: how long the
 * observation has asked for this target (the caller keeps "since when").
 * Writes the reason in words into reason if given ("up to G3 after 12m:
 * held >= 10m", "down to G1 waits for the maintenance window"). */
enum kf_grade_move kf_grade_shift_decide(const struct kf_grade_shift_policy *p, int current,
                                         int target, int64_t held_ms, bool in_window,
                                         struct kf_strbuf *reason);

/* A cluster that wants to move (UP or DOWN from kf_grade_shift_decide). */
struct kf_grade_shift_cand {
    const char *name;
    int current, target;
    int64_t held_ms;
    bool go; /* out: move now */
};

/* Picks which candidates move now so that in_flight + chosen <=
 * max_in_flight: ups before downs, then the longest-held, then by name.
 * Sets go on the chosen; returns how many. Deterministic. Reorders c. */
unsigned kf_grade_shift_select(const struct kf_grade_shift_policy *p, unsigned in_flight,
                               struct kf_grade_shift_cand *c, size_t n);

#endif
