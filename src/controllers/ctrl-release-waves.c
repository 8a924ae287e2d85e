/* ctrl-release-waves.c: one pass of the Release controller over the
 * fleet: read every GuestCluster from the informer, plan the waves
 * (kf_release_plan), place each cluster (pending, in progress, done,
 * failed, skipped), count per wave, and start the clusters a wave may
 * start now: within its maxConcurrency, inside each cluster's maintenance
 * window (kf_window_allows), never a cluster whose spec.version already is
 * the target (which is how a restarted kfleetd never moves a cluster
 * twice: the write itself is the record). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/window.h"
#include "controllers/ctrl-release.h"

/* The target: frozen in status.targetVersion once known, else spec.version,
 * else the Template's version now. */
static char *target_of(struct rel_pass *p, struct kf_strbuf *err)
{
    const char *v = kf_json_str(p->rel, "status.targetVersion", NULL);
    const char *tname = kf_json_str(p->rel, "spec.template", NULL);
    json_t *t = NULL;
    char *ret;

    if (!v)
        v = kf_json_str(p->rel, "spec.version", NULL);
    if (v || !tname)
        return v ? kf_xstrdup(v) : NULL;
    if (kf_registry_get(p->d->reg, &kf_kind_template, tname, &t) < 0) {
        kf_err(err, -KF_ENOTFOUND, "Template \"%s\" is gone before the release started", tname);
        return NULL;
    }
    v = kf_json_str(t, "spec.version", NULL);
    ret = v ? kf_xstrdup(v) : NULL;
    if (!v)
        kf_err(err, -KF_EINVALID, "Template \"%s\" names no version", tname);
    json_decref(t);
    return ret;
}

/* --- the clusters' summaries ------------------------------------------------------ */

static void copy_member(json_t *dst, const json_t *src, const char *key)
{
    json_t *v = json_object_get(src, key);

    if (v)
        json_object_set_new(dst, key, json_deep_copy(v));
}

json_t *kf_rel_summary(const json_t *gc)
{
    static const char *const meta_keys[] = { "name", "resourceVersion", "generation",
                                             "uid",  "labels",          "annotations" };
    static const char *const spec_keys[] = { "version", "region", "template", "maintenanceWindow" };
    static const char *const status_keys[] = { "version", "unit" };
    json_t *s =
        json_pack("{s:s, s:{}, s:{}, s:{}}", "kind", "GuestCluster", "metadata", "spec", "status");
    const json_t *eff = kf_json_path(gc, "status.effective"), *c;
    size_t i;

    for (i = 0; i < KF_ARRAY_SIZE(meta_keys); i++)
        copy_member(json_object_get(s, "metadata"), json_object_get(gc, "metadata"), meta_keys[i]);
    for (i = 0; i < KF_ARRAY_SIZE(spec_keys); i++)
        copy_member(json_object_get(s, "spec"), json_object_get(gc, "spec"), spec_keys[i]);
    for (i = 0; i < KF_ARRAY_SIZE(status_keys); i++)
        copy_member(json_object_get(s, "status"), json_object_get(gc, "status"), status_keys[i]);
    if (eff) {
        json_t *e = json_object();

        copy_member(e, eff, "version");
        copy_member(e, eff, "maintenanceWindow");
        json_object_set_new(json_object_get(s, "status"), "effective", e);
    }
    json_array_foreach(kf_json_path(gc, "status.conditions"), i, c)
    {
        if (kf_streq(kf_json_str(c, "type", NULL), "Upgraded"))
            json_object_set_new(json_object_get(s, "status"), "conditions", json_pack("[O]", c));
    }
    return s;
}

void kf_rel_cache_put(struct rel_ctrl *d, const json_t *gc, bool deleted)
{
    const char *name = kf_json_str(gc, "metadata.name", NULL);
    json_t *old, *s;

    if (!name)
        return;
    pthread_mutex_lock(&d->lock);
    old = kf_smap_get(&d->clusters, name);
    if (deleted) {
        json_decref(kf_smap_remove(&d->clusters, name));
    } else if (!old || kf_obj_rv(gc) >= kf_obj_rv(old)) {
        s = kf_rel_summary(gc);
        json_decref(kf_smap_put(&d->clusters, name, s));
    }
    pthread_mutex_unlock(&d->lock);
}

void kf_rel_cache_free(struct rel_ctrl *d)
{
    size_t it = 0;
    void *v;

    while (kf_smap_next(&d->clusters, &it, NULL, &v))
        json_decref(v);
    kf_smap_release(&d->clusters);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(kf_obj_name(*(json_t *const *)a), kf_obj_name(*(json_t *const *)b));
}

int kf_rel_pass_load(struct rel_pass *p, struct kf_strbuf *err)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    size_t it = 0;
    void *v;
    int r;

    p->target = target_of(p, err);
    if (!p->target)
        return -KF_EINVALID;
    pthread_mutex_lock(&p->d->lock);
    p->gcs = kf_xcalloc(kf_smap_count(&p->d->clusters) + 1, sizeof(*p->gcs));
    while (kf_smap_next(&p->d->clusters, &it, NULL, &v))
        p->gcs[p->n_gcs++] = json_incref(v);
    pthread_mutex_unlock(&p->d->lock);
    qsort(p->gcs, p->n_gcs, sizeof(*p->gcs), by_name);
    r = kf_release_plan(p->rel, (const json_t *const *)p->gcs, p->n_gcs, p->target, false, &p->plan,
                        &causes);
    if (r < 0) {
        kf_causes_format(&causes, err);
        kf_causes_release(&causes);
        return r;
    }
    kf_causes_release(&causes);
    p->state = kf_xcalloc(p->n_gcs ? p->n_gcs : 1, sizeof(*p->state));
    for (size_t i = 0; i < p->n_gcs; i++)
        p->state[i] = kf_release_cluster_state(p->gcs[i], p->target, NULL);
    p->failures = json_deep_copy(kf_json_path(p->rel, "status.failures"));
    if (!json_is_array(p->failures)) {
        json_decref(p->failures);
        p->failures = json_array();
    }
    return 0;
}

void kf_rel_pass_release(struct rel_pass *p)
{
    for (size_t i = 0; i < p->n_gcs; i++)
        json_decref(p->gcs[i]);
    free(p->gcs);
    free(p->state);
    free(p->target);
    kf_release_plan_release(&p->plan);
    json_decref(p->failures);
    json_decref(p->gate);
    json_decref(p->pause);
    json_decref(p->rel);
    json_decref(p->rel_read);
}

/* Whether status.failures names the cluster (a write admission refused). */
bool kf_rel_failed_cluster(const struct rel_pass *p, const char *name)
{
    const json_t *f;
    size_t i;

    json_array_foreach(p->failures, i,
                       f) if (kf_streq(kf_json_str(f, "cluster", NULL), name)) return true;
    return false;
}

static void note_failure(struct rel_pass *p, const json_t *gc, size_t wi, const char *reason,
                         const char *message)
{
    const char *name = kf_json_str(gc, "metadata.name", "");

    if (kf_rel_failed_cluster(p, name) || json_array_size(p->failures) >= REL_MAX_FAILURES)
        return;
    json_array_append_new(p->failures,
                          json_pack("{s:s, s:s, s:s, s:s}", "cluster", name, "wave",
                                    kf_json_str(p->waves[wi].spec, "name", ""), "reason", reason,
                                    "message", message ? message : ""));
    kf_recorder_eventf(p->d->rec, p->rel, KF_EVENT_WARNING, "ClusterFailed",
                       "cluster \"%s\" of wave \"%s\" failed to reach %s: %s: %s", name,
                       kf_json_str(p->waves[wi].spec, "name", ""), p->target, reason,
                       message ? message : "");
}

static const char *upgraded_message(const json_t *gc)
{
    const json_t *c;
    size_t i;

    json_array_foreach(kf_json_path(gc, "status.conditions"), i, c)
    {
        if (kf_streq(kf_json_str(c, "type", NULL), "Upgraded"))
            return kf_json_str(c, "message", "");
    }
    return "";
}

static size_t concurrency(const json_t *w, size_t clusters)
{
    const json_t *v = kf_json_path(w, "maxConcurrency");
    size_t n = 1;

    if (json_is_integer(v))
        n = (size_t)json_integer_value(v);
    else if (json_is_string(v))
        n = (size_t)((clusters * (size_t)strtoul(json_string_value(v), NULL, 10) + 99) / 100);
    return n ? n : 1;
}

void kf_rel_count_waves(struct rel_pass *p)
{
    const json_t *was = kf_json_path(p->rel, "status.waves");

    p->n_waves = p->plan.n_waves;
    for (size_t wi = 0; wi < p->n_waves; wi++) {
        struct rel_wave *w = &p->waves[wi];

        memset(w, 0, sizeof(*w));
        w->spec = json_array_get(kf_json_path(p->rel, "spec.waves"), wi);
        w->was = json_array_get(was, wi);
        if (w->was &&
            !kf_streq(kf_json_str(w->was, "name", NULL), kf_json_str(w->spec, "name", "")))
            w->was = NULL;
        w->started_at = kf_rel_time(w->was, "startedAt");
        w->completed_at = kf_rel_time(w->was, "completedAt");
        w->last_progress_at = kf_rel_time(w->was, "lastProgressAt");
        w->accepted_failures = kf_json_int(w->was, "acceptedFailures", 0);
    }
    for (size_t i = 0; i < p->n_gcs; i++) {
        uint8_t wi = p->plan.wave_of[i];
        struct rel_wave *w = &p->waves[wi < p->n_waves ? wi : 0];

        if (wi >= p->n_waves)
            continue;
        if (p->state[i] == KF_REL_PENDING &&
            kf_rel_failed_cluster(p, kf_json_str(p->gcs[i], "metadata.name", "")))
            p->state[i] = KF_REL_FAILED;
        if (p->state[i] == KF_REL_FAILED)
            note_failure(p, p->gcs[i], wi, "UpgradeFailed", upgraded_message(p->gcs[i]));
        w->clusters++;
        w->updated += p->state[i] == KF_REL_DONE;
        w->in_progress += p->state[i] == KF_REL_IN_PROGRESS;
        w->failed += p->state[i] == KF_REL_FAILED;
        w->pending += p->state[i] == KF_REL_PENDING;
        w->skipped += p->state[i] == KF_REL_SKIPPED;
    }
    for (size_t wi = 0; wi < p->n_waves; wi++)
        p->waves[wi].max_concurrency = concurrency(p->waves[wi].spec, p->waves[wi].clusters);
}

/* The window the cluster keeps: its own, else the one in effect. */
static const json_t *window_of(const json_t *gc)
{
    const json_t *w = kf_json_path(gc, "spec.maintenanceWindow");

    return w ? w : kf_json_path(gc, "status.effective.maintenanceWindow");
}

/* Writes the target into one cluster, conditional on the revision read:
 * a cluster changed meanwhile is looked at again next pass. 1 started, 0
 * not now, or a negative error that marks it failed. */
static int start_one(struct rel_pass *p, const json_t *gc, size_t wi, struct kf_strbuf *err)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *patch, *ret = NULL;
    char *text;
    int r;

    patch = json_pack("{s:{s:s, s:{s:s}}, s:{s:s}}", "metadata", "resourceVersion",
                      kf_json_str(gc, "metadata.resourceVersion", ""), "annotations",
                      KF_RELEASE_ANNOTATION, p->name, "spec", "version", p->target);
    text = kf_json_dump(patch, NULL);
    r = kf_registry_patch(p->d->reg, &kf_kind_guestcluster, kf_json_str(gc, "metadata.name", ""),
                          KF_PATCH_MERGE, text, strlen(text), false, &ret, &causes, err);
    if (r == 0) {
        int64_t rev = kf_obj_rv(ret);

        kf_rel_cache_put(p->d, ret, false);
        if (rev > p->started_rev)
            p->started_rev = rev;
        kf_recorder_eventf(p->d->rec, gc, KF_EVENT_NORMAL, "ReleaseUpgrade",
                           "release \"%s\" moves the cluster from %s to %s (wave \"%s\")", p->name,
                           kf_release_cluster_version(gc) ? kf_release_cluster_version(gc) : "?",
                           p->target, kf_json_str(p->waves[wi].spec, "name", ""));
    }
    json_decref(ret);
    json_decref(patch);
    free(text);
    kf_causes_release(&causes);
    if (r == -KF_ECONFLICT || r == -KF_ENOTFOUND)
        return 0;
    return r < 0 ? r : 1;
}

/* Starts what wave wi may start now. Returns how many started. */
int kf_rel_start_clusters(struct rel_pass *p, struct rel_wave *w, size_t wi)
{
    struct kf_strbuf names = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    size_t slots = w->in_progress < w->max_concurrency ? w->max_concurrency - w->in_progress : 0;
    int started = 0;
    time_t next_min = 0;

    for (size_t i = 0; i < p->n_gcs; i++) {
        const char *name = kf_json_str(p->gcs[i], "metadata.name", "");
        time_t next = 0;
        int r;

        if (p->plan.wave_of[i] != wi || p->state[i] != KF_REL_PENDING)
            continue;
        if (!kf_window_allows(window_of(p->gcs[i]), name, (time_t)(p->now / 1000), &next)) {
            w->waiting++;
            if (!next_min || next < next_min)
                next_min = next;
            continue;
        }
        if (!slots)
            continue;
        kf_strbuf_reset(&err);
        r = start_one(p, p->gcs[i], wi, &err);
        if (r < 0) {
            p->state[i] = KF_REL_FAILED;
            note_failure(p, p->gcs[i], wi, "Refused", err.buf);
            w->failed++;
            w->pending--;
            continue;
        }
        if (r == 0) {
            kf_rel_requeue(p, 200);
            continue;
        }
        p->state[i] = KF_REL_IN_PROGRESS;
        w->in_progress++;
        w->pending--;
        slots--;
        if (started++ < REL_EVENT_NAMES)
            kf_strbuf_addf(&names, "%s\"%s\"", started > 1 ? ", " : "", name);
    }
    if (next_min)
        kf_rel_requeue(p, ((int64_t)next_min * 1000 - p->now) > 1000
                              ? (int64_t)next_min * 1000 - p->now
                              : 1000);
    if (started) {
        p->moved = true;
        w->last_progress_at = p->now;
        kf_recorder_eventf(p->d->rec, p->rel, KF_EVENT_NORMAL, "Upgrading",
                           "wave \"%s\": started %d cluster%s to %s: %s%s; %zu of at most %zu in "
                           "flight, %zu pending",
                           kf_json_str(w->spec, "name", ""), started, started == 1 ? "" : "s",
                           p->target, names.buf, started > REL_EVENT_NAMES ? " and more" : "",
                           w->in_progress, w->max_concurrency, w->pending);
    }
    kf_strbuf_release(&names);
    kf_strbuf_release(&err);
    return started;
}
