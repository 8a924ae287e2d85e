/* release.h: what a Release (kind-release.c) means, shared by its admission
 * and its controller (src/controllers/ctrl-release.c): which GuestClusters
 * it covers, which wave each one falls in, and where each one stands.
 *
 * A Release rolls a target version (spec.version, or the version of the
 * Template named by spec.template) over the GuestClusters its selector
 * picks, wave after wave. A wave names its clusters (clusters, selector,
 * units, regions), takes a percentage of the release's clusters from those
 * no named wave took (percent), or takes every cluster left (neither: the
 * last wave only). docs/internals/releases.md has the whole behaviour.
 */
#ifndef KF_RELEASE_H
#define KF_RELEASE_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_causes;
struct kf_registry;

#define KF_RELEASE_MAX_WAVES  16
#define KF_RELEASE_NO_WAVE    ((uint8_t)0xff)
#define KF_RELEASE_ANNOTATION "kfleet.io/release" /* on a cluster the release moved */

/* Phases of status.phase. */
#define KF_REL_PHASE_PROGRESSING "Progressing"
#define KF_REL_PHASE_PAUSED      "Paused"
#define KF_REL_PHASE_COMPLETED   "Completed"
#define KF_REL_PHASE_ABORTED     "Aborted"

/* Where one cluster stands against the target version. */
enum kf_rel_state {
    KF_REL_PENDING = 0, /* not asked yet: spec.version is not the target */
    KF_REL_IN_PROGRESS, /* spec.version is the target, status.version not yet */
    KF_REL_DONE,        /* status.version is the target */
    KF_REL_FAILED,      /* its Upgraded condition says Failed, PrecheckFailed or RolledBack */
    KF_REL_SKIPPED,     /* it already runs a newer version */
};

/* The state of GuestCluster gc against target; *ret_why (may be NULL) is
 * set to the Upgraded condition's reason when there is one (borrowed). */
enum kf_rel_state kf_release_cluster_state(const json_t *gc, const char *target,
                                           const char **ret_why);
/* The version gc runs (status.version, else the effective or asked one),
 * borrowed, or NULL. */
const char *kf_release_cluster_version(const json_t *gc);

/* Compares Kubernetes versions "1.30" / "1.30.2" by major, minor, patch
 * (an absent patch is 0). Unparsable versions compare as 0.0.0. */
int kf_release_version_cmp(const char *a, const char *b);
/* Minors from a to b (b's minor - a's minor, same major; else 1000). */
int kf_release_minor_gap(const char *from, const char *to);

/* Which wave each of the n clusters falls in. */
struct kf_release_plan {
    size_t n;         /* clusters given */
    uint8_t *wave_of; /* n entries: a wave index, or KF_RELEASE_NO_WAVE (not in the release) */
    size_t n_waves;
    size_t count[KF_RELEASE_MAX_WAVES]; /* clusters per wave */
    size_t total;                       /* clusters the release covers */
};

/* Plans release rel over clusters (n GuestCluster objects, borrowed). With
 * strict (admission), problems a user must fix add causes: a selector that
 * matches nothing, a wave that matches nothing, a named cluster that is not
 * selected, a cluster two named waves both take, a cluster whose version is
 * more than one minor below the target (target may be NULL: not checked).
 * Without strict (the controller), only a malformed selector is an error.
 * 0 or -KF_EINVALID; *ret is filled either way (release it). */
int kf_release_plan(const json_t *rel, const json_t *const *clusters, size_t n, const char *target,
                    bool strict, struct kf_release_plan *ret, struct kf_causes *causes);
void kf_release_plan_release(struct kf_release_plan *p);

/* The admission checks that read other objects (kind-release.c's
 * admit_stored): the target (the Template's version), then the plan over
 * every GuestCluster with strict. */
void kf_release_admit_stored(struct kf_registry *r, const json_t *obj, const json_t *old,
                             struct kf_causes *causes);

/* The controller (src/controllers/ctrl-release.c), an entry of
 * kfleetd's controller table. */
struct kf_ctrl_env;
struct kf_ctrl_ops;
struct kf_strbuf;
extern const struct kf_ctrl_ops kf_ctrl_release_ops;
int kf_ctrl_release_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
void kf_ctrl_release_fini(void *data);
/* For tests and simulations: the clock the controller (and its events)
 * read; NULL: the wall clock. Before the manager starts. */
void kf_ctrl_release_set_clock(void *data, int64_t (*now_ms)(void *arg), void *arg);
/* The Prometheus a gate without spec.healthGate.prometheus asks (a base
 * URL, copied; NULL: the central of kfleetd's monitoring, else none). */
void kf_ctrl_release_set_prometheus(void *data, const char *url);

#endif
