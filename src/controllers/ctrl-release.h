/* ctrl-release.h: what the Release controller's files share
 * (ctrl-release.c: the reconcile and the status; ctrl-release-waves.c: a
 * pass over the clusters and the starts; ctrl-release-gate.c: the health
 * gate). Nobody else includes it. */
#ifndef KF_CTRL_RELEASE_H
#define KF_CTRL_RELEASE_H

#include <pthread.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/release.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"

struct kf_ctrl;
struct kf_informer;
struct kf_mon;
struct kf_recorder;
struct kf_registry;

/* Clusters named in one event message before "and N more". */
#define REL_EVENT_NAMES 5
/* Failures kept in status.failures. */
#define REL_MAX_FAILURES 64
/* Firing series named in status.gate.firing. */
#define REL_MAX_FIRING 20
/* Longest wait for the informer to show our own writes. */
#define REL_READ_BACK_MS 5000

struct rel_ctrl {
    struct kf_registry *reg;
    struct kf_recorder *rec;
    struct kf_mon *mon;
    struct kf_ctrl *ctrl;
    struct kf_informer *rels, *gcs;
    int64_t (*now_ms)(void *arg);
    void *clock_arg;
    char *prometheus; /* kf_ctrl_release_set_prometheus */
    /* What a pass reads of each GuestCluster (kf_rel_summary), by name,
     * kept from the watch and from our own writes, newest resourceVersion
     * wins: parsing 10,000 clusters out of the informer's deflated cache
     * on every pass cost half a second. */
    pthread_mutex_t lock;
    struct kf_smap clusters;
};

/* One wave in one pass. */
struct rel_wave {
    const json_t *spec; /* spec.waves[i] */
    const json_t *was;  /* status.waves[i] as stored, or NULL */
    size_t clusters, updated, in_progress, failed, pending, waiting, skipped;
    size_t max_concurrency;
    int64_t started_at, completed_at, last_progress_at; /* ms, 0: not yet */
    int64_t accepted_failures;
    const char *state; /* Pending, Progressing, Baking, Completed */
};

/* One pass over a release: what is read once and decided from. */
struct rel_pass {
    struct rel_ctrl *d;
    json_t *rel;      /* the release (owned) */
    json_t *rel_read; /* the release as read, when rel was replaced by a write (owned) */
    const char *name;
    char *target;
    int64_t now;
    json_t **gcs; /* every GuestCluster, parsed (owned) */
    size_t n_gcs;
    struct kf_release_plan plan;
    enum kf_rel_state *state; /* per cluster */
    struct rel_wave waves[KF_RELEASE_MAX_WAVES];
    size_t n_waves, current; /* current == n_waves: every wave done */
    json_t *failures;        /* status.failures being built (owned) */
    json_t *gate;            /* status.gate being built (owned), or NULL */
    json_t *pause;           /* status.pause to write (owned), or NULL */
    int64_t requeue;         /* ms; 0: none */
    int64_t started_rev;     /* revision of the last cluster write */
    int64_t rel_rev;         /* revision of the last write of the release */
    bool moved;              /* a cluster started this pass */
    bool final_gate;         /* the current wave baked: the gate's last word decides */
};

int64_t kf_rel_now(struct rel_ctrl *d);
void kf_rel_requeue(struct rel_pass *p, int64_t ms);
int64_t kf_rel_time(const json_t *obj, const char *path);
void kf_rel_time_set(json_t *obj, const char *key, int64_t ms);

/* ctrl-release-waves.c */
json_t *kf_rel_summary(const json_t *gc);
void kf_rel_cache_put(struct rel_ctrl *d, const json_t *gc, bool deleted);
void kf_rel_cache_free(struct rel_ctrl *d);
int kf_rel_pass_load(struct rel_pass *p, struct kf_strbuf *err);
void kf_rel_pass_release(struct rel_pass *p);
void kf_rel_count_waves(struct rel_pass *p);
bool kf_rel_failed_cluster(const struct rel_pass *p, const char *name);
int kf_rel_start_clusters(struct rel_pass *p, struct rel_wave *w, size_t wi);

/* ctrl-release-gate.c: asks the gate when due. 1 when it fails (p->pause
 * set), 0 when it passes, -EAGAIN when it could not be asked (p->gate says
 * why) or is not due while the wave must not leave. */
int kf_rel_gate(struct rel_pass *p, bool force);
const char *kf_rel_prometheus(struct rel_ctrl *d, const json_t *rel, char *buf, size_t size);

#endif
