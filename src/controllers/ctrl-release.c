/* ctrl-release.c: the Release controller. One reconcile is one pass over
 * a release and the whole fleet (ctrl-release-waves.c reads it):
 *
 *   1. a finished release (Completed, Aborted) is left alone;
 *   2. the waves are walked in order: the first with clusters pending or
 *      upgrading is the current one; a wave whose clusters all finished
 *      bakes for its bakeTime, the gate is asked once more, and only then
 *      does the next wave start;
 *   3. spec.abort ends the release; spec.paused holds it; a resume (the
 *      operator sets paused back to false) accepts the failures so far;
 *   4. the failure budget (maxFailures), the progress deadline and the
 *      health gate (ctrl-release-gate.c) pause it: the controller sets
 *      spec.paused itself and says why in status.pause;
 *   5. otherwise the current wave starts what its maxConcurrency and the
 *      clusters' maintenance windows allow;
 *   6. the status (counts per wave, the gate's answer, failures) is
 *      written when it changed, with an event for each thing that moved.
 *
 * Everything is read again from the store's objects each time, and the
 * per-wave times live in the status, so a kfleetd killed mid-release
 * resumes where it was. GuestCluster changes reach the releases through a
 * watch; time (bake, windows, the gate's interval, deadlines) through
 * requeues. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kfleet/controllers.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "controllers/ctrl-release.h"

KF_LOG_MODULE(release);

static int64_t wall_clock(void *arg)
{
    (void)arg;
    return kf_now_ms();
}

int64_t kf_rel_now(struct rel_ctrl *d)
{
    return d->now_ms(d->clock_arg);
}

void kf_rel_requeue(struct rel_pass *p, int64_t ms)
{
    if (ms < 1)
        ms = 1;
    if (!p->requeue || ms < p->requeue)
        p->requeue = ms;
}

int64_t kf_rel_time(const json_t *obj, const char *path)
{
    const char *s = kf_json_str(obj, path, NULL);
    int64_t ms = 0;

    if (!s || kf_time_parse_rfc3339(s, &ms) < 0)
        return 0;
    return ms;
}

void kf_rel_time_set(json_t *obj, const char *key, int64_t ms)
{
    char buf[32];

    if (!ms)
        return;
    kf_time_format_rfc3339(ms, buf, sizeof(buf));
    json_object_set_new(obj, key, json_string(buf));
}

static int64_t duration_ms(const json_t *w, const char *key, const char *dflt)
{
    int64_t ms = 0;

    kf_parse_duration_ms(kf_json_str(w, key, dflt), &ms);
    return ms;
}

static const char *wave_name(const struct rel_wave *w)
{
    return kf_json_str(w->spec, "name", "");
}

/* --- the waves ---------------------------------------------------------------------- */

/* A finished wave: bakes, then asks the gate once more. true when it is
 * done and the next may start. */
static bool wave_left(struct rel_pass *p, struct rel_wave *w, size_t wi)
{
    int64_t bake = w->clusters ? duration_ms(w->spec, "bakeTime", "0s") : 0;
    int64_t gate_at = kf_rel_time(kf_json_path(p->rel, "status.gate"), "checkedAt");

    if (!w->completed_at) {
        w->completed_at = p->now;
        kf_recorder_eventf(p->d->rec, p->rel, KF_EVENT_NORMAL, "WaveCompleted",
                           "wave \"%s\": %zu of %zu clusters on %s, %zu failed, %zu skipped; "
                           "baking %llds before the next wave",
                           wave_name(w), w->updated, w->clusters, p->target, w->failed, w->skipped,
                           (long long)(bake / 1000));
    }
    if (p->now < w->completed_at + bake) {
        w->state = "Baking";
        kf_rel_requeue(p, w->completed_at + bake - p->now);
        return false;
    }
    if (w->clusters && kf_json_path(p->rel, "spec.healthGate") &&
        gate_at < w->completed_at + bake) {
        w->state = "Baking"; /* the gate's last word before leaving */
        p->final_gate = true;
        return false;
    }
    w->state = "Completed";
    return true;
}

static void walk_waves(struct rel_pass *p)
{
    for (size_t wi = 0; wi < p->n_waves; wi++) {
        struct rel_wave *w = &p->waves[wi];

        p->current = wi;
        if (w->pending || w->in_progress) {
            w->state = "Progressing";
            if (!w->started_at) {
                w->started_at = w->last_progress_at = p->now;
                kf_recorder_eventf(p->d->rec, p->rel, KF_EVENT_NORMAL, "WaveStarted",
                                   "wave \"%s\" starts: %zu clusters to %s, at most %zu at once",
                                   wave_name(w), w->clusters, p->target, w->max_concurrency);
            }
            /* a cluster that finished since the last pass is progress */
            if (w->was && (kf_json_int(w->was, "updated", 0) != (int64_t)w->updated ||
                           kf_json_int(w->was, "failed", 0) != (int64_t)w->failed))
                w->last_progress_at = p->now;
            return;
        }
        if (!w->started_at)
            w->started_at = p->now;
        if (!wave_left(p, w, wi))
            return;
    }
    p->current = p->n_waves;
}

/* The failure budget and the progress deadline of the waves so far. */
static void check_budget(struct rel_pass *p)
{
    for (size_t wi = 0; wi <= p->current && wi < p->n_waves && !p->pause; wi++) {
        struct rel_wave *w = &p->waves[wi];
        int64_t max = kf_json_int(w->spec, "maxFailures", 0);
        int64_t deadline = duration_ms(w->spec, "progressDeadline", "1h");
        char *m = NULL;

        if ((int64_t)w->failed - w->accepted_failures > max) {
            m = kf_xasprintf("wave \"%s\": %zu clusters failed, more than maxFailures %lld (see "
                             "status.failures)",
                             wave_name(w), w->failed, (long long)max);
            p->pause = json_pack("{s:s, s:s}", "reason", "MaxFailuresExceeded", "message", m);
        } else if (wi == p->current && w->in_progress && w->last_progress_at &&
                   p->now - w->last_progress_at > deadline) {
            m = kf_xasprintf("wave \"%s\": no cluster finished or started for %llds "
                             "(progressDeadline), %zu still upgrading",
                             wave_name(w), (long long)(deadline / 1000), w->in_progress);
            p->pause = json_pack("{s:s, s:s}", "reason", "ProgressDeadlineExceeded", "message", m);
        } else if (wi == p->current && w->in_progress && w->last_progress_at) {
            kf_rel_requeue(p, w->last_progress_at + deadline - p->now + 1);
        }
        free(m);
    }
}

/* --- status -------------------------------------------------------------------------- */

static json_t *wave_status(const struct rel_wave *w)
{
    json_t *s = json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", wave_name(w), "state",
        w->state ? w->state : "Pending", "clusters", (json_int_t)w->clusters, "updated",
        (json_int_t)w->updated, "inProgress", (json_int_t)w->in_progress, "failed",
        (json_int_t)w->failed, "pending", (json_int_t)w->pending, "waitingForWindow",
        (json_int_t)w->waiting, "skipped", (json_int_t)w->skipped, "maxConcurrency",
        (json_int_t)w->max_concurrency, "acceptedFailures", (json_int_t)w->accepted_failures);

    kf_rel_time_set(s, "startedAt", w->started_at);
    kf_rel_time_set(s, "completedAt", w->completed_at);
    kf_rel_time_set(s, "lastProgressAt", w->last_progress_at);
    return s;
}

static json_t *totals(const struct rel_pass *p)
{
    size_t t[7] = { 0 };

    for (size_t wi = 0; wi < p->n_waves; wi++) {
        const struct rel_wave *w = &p->waves[wi];

        t[0] += w->clusters, t[1] += w->updated, t[2] += w->in_progress, t[3] += w->failed;
        t[4] += w->pending, t[5] += w->waiting, t[6] += w->skipped;
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "total", (json_int_t)t[0], "updated",
                     (json_int_t)t[1], "inProgress", (json_int_t)t[2], "failed", (json_int_t)t[3],
                     "pending", (json_int_t)t[4], "waitingForWindow", (json_int_t)t[5], "skipped",
                     (json_int_t)t[6]);
}

static json_t *condition(const json_t *old_status, const char *type, bool on, const char *reason,
                         const char *message, int64_t now)
{
    const json_t *c;
    json_t *n = json_pack("{s:s, s:s, s:s, s:s}", "type", type, "status", on ? "True" : "False",
                          "reason", reason, "message", message ? message : "");
    size_t i;

    json_array_foreach(kf_json_path(old_status, "conditions"), i, c)
    {
        if (kf_streq(kf_json_str(c, "type", NULL), type) &&
            kf_streq(kf_json_str(c, "status", NULL), on ? "True" : "False") &&
            kf_json_path(c, "lastTransitionTime")) {
            json_object_set(n, "lastTransitionTime", kf_json_path(c, "lastTransitionTime"));
            return n;
        }
    }
    kf_rel_time_set(n, "lastTransitionTime", now);
    return n;
}

static json_t *build_status(const struct rel_pass *p, const char *phase)
{
    const json_t *old = kf_json_path(p->rel, "status");
    json_t *s = json_object(), *waves = json_array(), *conds = json_array();
    bool paused = !strcmp(phase, KF_REL_PHASE_PAUSED);
    bool done = !strcmp(phase, KF_REL_PHASE_COMPLETED);

    for (size_t wi = 0; wi < p->n_waves; wi++)
        json_array_append_new(waves, wave_status(&p->waves[wi]));
    json_object_set_new(s, "phase", json_string(phase));
    json_object_set_new(s, "targetVersion", json_string(p->target));
    json_object_set_new(
        s, "currentWave",
        json_integer((json_int_t)(p->current < p->n_waves ? p->current : p->n_waves - 1)));
    json_object_set_new(s, "clusters", totals(p));
    json_object_set_new(s, "waves", waves);
    json_object_set(s, "failures", p->failures);
    if (p->gate)
        json_object_set(s, "gate", p->gate);
    if (p->pause)
        json_object_set(s, "pause", p->pause);
    if (kf_json_path(old, "startedAt"))
        json_object_set(s, "startedAt", kf_json_path(old, "startedAt"));
    else
        kf_rel_time_set(s, "startedAt", p->now);
    if (kf_json_path(old, "completedAt"))
        json_object_set(s, "completedAt", kf_json_path(old, "completedAt"));
    else if (done || !strcmp(phase, KF_REL_PHASE_ABORTED))
        kf_rel_time_set(s, "completedAt", p->now);
    json_array_append_new(
        conds, condition(old, "Paused", paused,
                         paused ? kf_json_str(p->pause, "reason", "Paused") : "NotPaused",
                         kf_json_str(p->pause, "message", ""), p->now));
    json_array_append_new(conds,
                          condition(old, "Complete", done, done ? "Completed" : phase, "", p->now));
    json_object_set_new(s, "conditions", conds);
    json_object_set_new(s, "observedGeneration",
                        json_integer((json_int_t)kf_obj_generation(p->rel)));
    return s;
}

static int write_status(struct rel_pass *p, json_t *status, struct kf_strbuf *err)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *obj, *ret = NULL;
    int r;

    if (json_equal(status, kf_json_path(p->rel, "status")))
        return 0;
    obj = json_deep_copy(p->rel);
    json_object_set(obj, "status", status);
    r = kf_registry_update(p->d->reg, &kf_kind_release, obj, true, &ret, &causes, err);
    if (r == 0 && kf_obj_rv(ret) > p->rel_rev)
        p->rel_rev = kf_obj_rv(ret);
    kf_causes_release(&causes);
    json_decref(obj);
    json_decref(ret);
    return r;
}

/* --- pause, resume, abort ---------------------------------------------------------------- */

/* Sets spec.paused for the reason in p->pause; p->rel becomes what is
 * stored, and the pause remembers the generation it was written at (a
 * later spec change with paused false is the operator's resume). */
static int auto_pause(struct rel_pass *p, struct kf_strbuf *err)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *ret = NULL;
    char *patch = kf_xasprintf("{\"metadata\":{\"resourceVersion\":\"%lld\"},"
                               "\"spec\":{\"paused\":true}}",
                               (long long)kf_obj_rv(p->rel));
    int r = kf_registry_patch(p->d->reg, &kf_kind_release, p->name, KF_PATCH_MERGE, patch,
                              strlen(patch), false, &ret, &causes, err);

    free(patch);
    kf_causes_release(&causes);
    if (r < 0)
        return r;
    /* the waves still point into the release as it was read */
    json_decref(p->rel_read);
    p->rel_read = p->rel;
    p->rel = ret;
    p->rel_rev = kf_obj_rv(ret);
    kf_rel_time_set(p->pause, "at", p->now);
    json_object_set_new(p->pause, "generation", json_integer(kf_obj_generation(ret)));
    kf_log_warn("release \"%s\" paused: %s: %s", p->name, kf_json_str(p->pause, "reason", ""),
                kf_json_str(p->pause, "message", ""));
    kf_recorder_eventf(p->d->rec, p->rel, KF_EVENT_WARNING, kf_json_str(p->pause, "reason", ""),
                       "paused: %s; resume with kfleet rollout resume %s",
                       kf_json_str(p->pause, "message", ""), p->name);
    return 0;
}

/* spec.paused as the operator left it: keeps (or makes) status.pause. */
static void held(struct rel_pass *p)
{
    const json_t *was = kf_json_path(p->rel, "status.pause");

    if (was) {
        p->pause = json_deep_copy(was);
        return;
    }
    p->pause = json_pack("{s:s, s:s, s:I}", "reason", "PausedByUser", "message",
                         "spec.paused is true (kfleet rollout pause)", "generation",
                         (json_int_t)kf_obj_generation(p->rel));
    kf_rel_time_set(p->pause, "at", p->now);
    kf_recorder_eventf(p->d->rec, p->rel, KF_EVENT_NORMAL, "Paused",
                       "paused by the operator at wave \"%s\"; in-flight clusters finish",
                       p->current < p->n_waves ? wave_name(&p->waves[p->current]) : "-");
}

/* A pause the operator lifted: its failures are accepted, the deadline
 * starts again, and the gate is asked at once. */
static void resumed(struct rel_pass *p)
{
    const json_t *was = kf_json_path(p->rel, "status.pause");

    for (size_t wi = 0; wi < p->n_waves; wi++) {
        p->waves[wi].accepted_failures = (int64_t)p->waves[wi].failed;
        if (wi == p->current)
            p->waves[wi].last_progress_at = p->now;
    }
    kf_recorder_eventf(p->d->rec, p->rel, KF_EVENT_NORMAL, "Resumed",
                       "resumed at wave \"%s\" after %s; %zu failed clusters accepted",
                       p->current < p->n_waves ? wave_name(&p->waves[p->current]) : "-",
                       kf_json_str(was, "reason", "a pause"),
                       p->current < p->n_waves ? p->waves[p->current].failed : 0);
}

static bool pause_lifted(const struct rel_pass *p)
{
    const json_t *was = kf_json_path(p->rel, "status.pause");

    return was && !kf_json_bool(p->rel, "spec.paused", false) &&
           kf_obj_generation(p->rel) > kf_json_int(was, "generation", 0);
}

/* Decides the phase, pausing or starting clusters. */
static const char *decide(struct rel_pass *p, struct kf_strbuf *err)
{
    struct rel_wave *w;
    bool lifted = pause_lifted(p);
    int gate;

    if (kf_json_bool(p->rel, "spec.abort", false)) {
        kf_recorder_eventf(p->d->rec, p->rel, KF_EVENT_WARNING, "Aborted",
                           "aborted at wave \"%s\": no cluster starts again; clusters already "
                           "upgrading finish",
                           p->current < p->n_waves ? wave_name(&p->waves[p->current]) : "-");
        return KF_REL_PHASE_ABORTED;
    }
    if (p->current >= p->n_waves) {
        kf_recorder_eventf(p->d->rec, p->rel, KF_EVENT_NORMAL, "Completed",
                           "every wave is done: %s rolled out", p->target);
        return KF_REL_PHASE_COMPLETED;
    }
    if (kf_json_bool(p->rel, "spec.paused", false) ||
        (kf_json_path(p->rel, "status.pause") && !lifted)) {
        held(p);
        return KF_REL_PHASE_PAUSED;
    }
    if (lifted)
        resumed(p);
    w = &p->waves[p->current];
    check_budget(p);
    gate = p->pause ? 0 : kf_rel_gate(p, lifted || p->final_gate);
    if (p->pause) {
        if (auto_pause(p, err) < 0)
            return NULL;
        return KF_REL_PHASE_PAUSED;
    }
    if (gate == 0 && !strcmp(w->state, "Progressing"))
        kf_rel_start_clusters(p, w, p->current);
    if (gate == 0 && p->final_gate)
        kf_rel_requeue(p, 1); /* the gate passed after the bake: leave the wave */
    return KF_REL_PHASE_PROGRESSING;
}

/* --- reconcile --------------------------------------------------------------------------- */

/* Waits until inf reflects revision rev (our own write). */
static void read_back(struct kf_informer *inf, int64_t rev)
{
    for (int waited = 0; rev && kf_informer_rev(inf) < rev && waited < REL_READ_BACK_MS; waited++) {
        struct timespec ts = { 0, 1000000L };

        nanosleep(&ts, NULL);
    }
}

static bool finished(const json_t *rel)
{
    const char *phase = kf_json_str(rel, "status.phase", "");

    return !strcmp(phase, KF_REL_PHASE_ABORTED) ||
           (!strcmp(phase, KF_REL_PHASE_COMPLETED) &&
            kf_json_int(rel, "status.observedGeneration", 0) == kf_obj_generation(rel));
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue)
{
    struct rel_pass p = { .d = kf_ctrl_data(c), .name = name };
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *phase;
    json_t *status;
    int r;

    if (kf_informer_get(p.d->rels, name, &p.rel) < 0)
        return 0;
    if (kf_json_path(p.rel, "metadata.deletionTimestamp") || finished(p.rel)) {
        json_decref(p.rel);
        return 0;
    }
    /* the clusters' cache must have seen everything stored before this
     * version of the release: a release created right after its clusters
     * would otherwise find none of them and complete at once (the wait is
     * in the pass, so that a caller waiting for idle controllers waits too) */
    read_back(p.d->gcs, kf_obj_rv(p.rel));
    if (kf_informer_rev(p.d->gcs) < kf_obj_rv(p.rel)) {
        json_decref(p.rel);
        *requeue = 50;
        return 0;
    }
    p.now = kf_rel_now(p.d);
    r = kf_rel_pass_load(&p, &err);
    if (r < 0) {
        kf_recorder_eventf(p.d->rec, p.rel, KF_EVENT_WARNING, "Invalid",
                           "the release cannot go on: %s", err.buf);
        *requeue = 30000;
        r = 0;
        goto free_pass;
    }
    kf_rel_count_waves(&p);
    walk_waves(&p);
    phase = decide(&p, &err);
    if (!phase) {
        r = -EAGAIN;
        goto free_pass;
    }
    status = build_status(&p, phase);
    r = write_status(&p, status, &err);
    json_decref(status);
    read_back(p.d->gcs, p.started_rev);
    read_back(p.d->rels, p.rel_rev);
    if (r == 0 && !strcmp(phase, KF_REL_PHASE_PROGRESSING))
        *requeue = p.requeue;
free_pass:
    if (r < 0 && r != -KF_ECONFLICT)
        kf_log_warn("release \"%s\": %s; trying again", name, err.buf);
    kf_rel_pass_release(&p);
    kf_strbuf_release(&err);
    return r;
}

/* A GuestCluster changed: every release not finished looks again. */
static void cluster_event(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct rel_ctrl *d = kf_ctrl_data(c);
    char **names = NULL;
    size_t n = kf_informer_names(d->rels, &names);

    kf_rel_cache_put(d, obj, deleted);
    for (size_t i = 0; i < n; i++)
        kf_ctrl_enqueue(c, names[i]);
    kf_ctrl_names_free(names, n);
}

static int setup(struct kf_ctrl *c)
{
    struct rel_ctrl *d = kf_ctrl_data(c);

    d->ctrl = c;
    d->rels = kf_ctrl_primary(c);
    d->gcs = kf_ctrl_informer(kf_ctrl_manager_of(c), &kf_kind_guestcluster);
    return kf_ctrl_watch(c, &kf_kind_guestcluster, cluster_event);
}

const struct kf_ctrl_ops kf_ctrl_release_ops = {
    .name = "release",
    .primary_kind = "Release",
    .workers = 2,
    .setup = setup,
    .reconcile = reconcile,
};

int kf_ctrl_release_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct rel_ctrl *d = kf_xcalloc(1, sizeof(*d));

    (void)err;
    d->reg = env->reg;
    d->mon = env->monitoring;
    d->rec = kf_recorder_new(env->reg, "release");
    d->now_ms = wall_clock;
    pthread_mutex_init(&d->lock, NULL);
    kf_smap_init(&d->clusters);
    *ret = d;
    return 0;
}

void kf_ctrl_release_set_clock(void *data, int64_t (*now)(void *arg), void *arg)
{
    struct rel_ctrl *d = data;

    d->now_ms = now ? now : wall_clock;
    d->clock_arg = arg;
    kf_recorder_set_clock(d->rec, now, arg);
}

void kf_ctrl_release_set_prometheus(void *data, const char *url)
{
    struct rel_ctrl *d = data;

    free(d->prometheus);
    d->prometheus = url ? kf_xstrdup(url) : NULL;
}

void kf_ctrl_release_fini(void *data)
{
    struct rel_ctrl *d = data;

    if (!d)
        return;
    kf_recorder_free(d->rec);
    kf_rel_cache_free(d);
    pthread_mutex_destroy(&d->lock);
    free(d->prometheus);
    free(d);
}
