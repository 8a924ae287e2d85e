/* ctrl-broadcastjob.c: the BroadcastJob controller, with OpenKruise's
 * reconcile semantics (reference §1.6; docs/internals/broadcastjob.md says
 * where and why kfleet differs).
 *
 * One reconcile of a job:
 *   1. a job that is gone (or was created again under the same name) has
 *      its tasks deleted, as Kubernetes' garbage collector deletes the pods
 *      of a deleted BroadcastJob;
 *   2. a finished job (completionPolicy Always, a Complete or Failed
 *      condition) is only deleted once ttlSecondsAfterFinished passed;
 *   3. otherwise: startTime; the eligible hosts (selector, tolerated taints,
 *      not cordoned, Ready); the tasks counted (active, succeeded, failed,
 *      desired); paused; the failure policy (Pause, FailFast, Continue); the
 *      deadline; a failing job stops its active tasks; a running one deletes
 *      the active tasks of hosts that left, creates tasks on hosts without
 *      one up to the parallelism, and completes once every eligible host has
 *      a finished task; the status is written when it changed.
 * Every decision is an Event on the job with its reason.
 *
 * Scale: a job may cover 100,000 hosts. The controller keeps, in memory and
 * fed by the informers' handlers, what eligibility reads of each Host
 * (labels, taints, cordon, readiness) and what counting reads of each task
 * (host, phase, uid), so a reconcile walks compact tables instead of
 * parsing 200,000 objects; tasks are created and stopped in store
 * transactions of 128. Its own writes are read back before the next
 * reconcile of the same job counts (it waits until the informers reached
 * the revision of its last write: Kruise's "expectations").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "kfleet/broadcast.h"
#include "kfleet/controllers.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/smap.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

KF_LOG_MODULE(broadcastjob);

/* How long a reconcile waits for the informers to show its last write. */
#define READ_BACK_MS 5000
/* Hosts named in one event before "and N more". */
#define EVENT_HOSTS 5

enum task_phase {
    TASK_PENDING,
    TASK_RUNNING,
    TASK_SUCCEEDED,
    TASK_FAILED,
};

/* What eligibility reads of a Host. */
struct bcj_host {
    json_t *labels; /* owned copies; NULL when absent */
    json_t *taints;
    bool unschedulable;
    bool deleting;
    int ready; /* 1 Ready, 0 NotReady, -1 unknown */
};

/* What counting reads of a BroadcastTask. */
struct bcj_task {
    char *name;
    char *uid;
    char *job_uid;
    enum task_phase phase;
    int exit_code; /* -1: none */
    int signal;    /* 0: none */
};

/* Per job name: its tasks by host, what host events need to know, and
 * what the last walk of every host found.
 *
 * A walk of every host (walk_view) is what finds the eligible hosts without
 * a task and the active tasks whose host left; it costs O(hosts). Between
 * walks a reconcile takes its counts from `counts` (kept by task_event) and
 * the hosts to start from `rest` (the last walk's, minus those given a task
 * since): O(1) plus what it creates. `gen` is bumped by everything that can
 * make the last walk wrong (a host's eligibility for the job changed, or a
 * host with a task of it changed; the selector, tolerations or uid changed;
 * a task was deleted or appeared on a host in `rest`), and a reconcile walks
 * again when it differs from `walked_gen`. */
struct bcj_job {
    struct kf_smap tasks; /* host -> struct bcj_task */
    bool exists;
    struct kf_selector *sel; /* NULL: every host */
    json_t *tolerations;
    char *fit_key;           /* selector and tolerations as text */
    char *uid;               /* the job's uid: counts are of tasks with this jobUID */
    int64_t wrote_tasks_rev; /* the revision of our last task write */
    int64_t wrote_job_rev;   /* ... and of our last job write */
    int64_t counts[4];       /* tasks of uid by phase */
    int64_t stale;           /* tasks of another uid */
    uint64_t gen, walked_gen;
    bool walked;
    char **rest; /* eligible hosts without a task at the last walk, sorted */
    size_t n_rest;
};

struct bcj_ctrl {
    struct kf_ctrl *ctrl;
    struct kf_registry *reg;
    struct kf_recorder *rec;
    struct kf_informer *jobs_inf, *hosts_inf, *tasks_inf;
    pthread_rwlock_t lock; /* hosts and jobs below */
    struct kf_smap hosts;  /* name -> struct bcj_host */
    struct kf_smap jobs;   /* name -> struct bcj_job */
    int64_t (*now_ms)(void *arg);
    void *clock_arg;
};

static int64_t wall_clock(void *arg)
{
    (void)arg;
    return kf_now_ms();
}

static int64_t now_ms(struct bcj_ctrl *d)
{
    return d->now_ms(d->clock_arg);
}

/* --- tables fed by the informers ------------------------------------------ */

static void host_free(struct bcj_host *h)
{
    if (!h)
        return;
    json_decref(h->labels);
    json_decref(h->taints);
    free(h);
}

static void task_free(struct bcj_task *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->uid);
    free(t->job_uid);
    free(t);
}

static void job_free(struct bcj_job *j)
{
    size_t it = 0;
    void *v;

    if (!j)
        return;
    while (kf_smap_next(&j->tasks, &it, NULL, &v))
        task_free(v);
    kf_smap_release(&j->tasks);
    kf_selector_free(j->sel);
    json_decref(j->tolerations);
    free(j->fit_key);
    free(j->uid);
    for (size_t i = 0; i < j->n_rest; i++)
        free(j->rest[i]);
    free(j->rest);
    free(j);
}

/* Counts t in (delta 1) or out (-1) of j's counts. Under the write lock. */
static void count_task(struct bcj_job *j, const struct bcj_task *t, int delta)
{
    if (j->uid && strcmp(t->job_uid, j->uid) == 0)
        j->counts[t->phase] += delta;
    else
        j->stale += delta;
}

/* Counts every task of j again (its uid changed). Under the write lock. */
static void recount(struct bcj_job *j)
{
    size_t it = 0;
    void *v;

    memset(j->counts, 0, sizeof(j->counts));
    j->stale = 0;
    while (kf_smap_next(&j->tasks, &it, NULL, &v))
        count_task(j, v, 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether host is in j->rest. Under a lock. */
static bool in_rest(const struct bcj_job *j, const char *host)
{
    return j->n_rest && bsearch(&host, j->rest, j->n_rest, sizeof(*j->rest), cmp_str);
}

/* Under the write lock. */
static struct bcj_job *job_entry(struct bcj_ctrl *d, const char *name)
{
    struct bcj_job *j = kf_smap_get(&d->jobs, name);

    if (!j) {
        j = kf_xcalloc(1, sizeof(*j));
        kf_smap_put(&d->jobs, name, j);
    }
    return j;
}

/* Under the write lock: forgets a job that is gone and has no tasks. */
static void job_maybe_forget(struct bcj_ctrl *d, const char *name, struct bcj_job *j)
{
    if (!j->exists && kf_smap_count(&j->tasks) == 0) {
        kf_smap_remove(&d->jobs, name);
        job_free(j);
    }
}

static json_t *copy_or_null(const json_t *v)
{
    return v && !json_is_null(v) ? json_deep_copy(v) : NULL;
}

static struct bcj_host *host_from(const json_t *obj)
{
    struct bcj_host *h = kf_xcalloc(1, sizeof(*h));
    json_t *ready = kf_json_path(obj, "status.ready");

    h->labels = copy_or_null(kf_json_path(obj, "metadata.labels"));
    h->taints = copy_or_null(kf_json_path(obj, "spec.taints"));
    h->unschedulable = kf_json_bool(obj, "spec.unschedulable", false);
    h->deleting = kf_obj_deleting(obj);
    h->ready = json_is_true(ready) ? 1 : json_is_false(ready) ? 0 : -1;
    return h;
}

/* Kubernetes' ToleratesTaint. */
static bool tolerates(const json_t *tol, const char *key, const char *value, const char *effect)
{
    const char *teffect = kf_json_str(tol, "effect", "");
    const char *tkey = kf_json_str(tol, "key", "");

    if (*teffect && strcmp(teffect, effect) != 0)
        return false;
    if (*tkey && strcmp(tkey, key) != 0)
        return false;
    if (strcmp(kf_json_str(tol, "operator", "Equal"), "Exists") == 0)
        return true;
    return strcmp(kf_json_str(tol, "value", ""), value) == 0;
}

static bool tolerated(const json_t *tolerations, const char *key, const char *value,
                      const char *effect)
{
    size_t i;
    json_t *t;

    json_array_foreach(tolerations, i, t) if (tolerates(t, key, value, effect)) return true;
    return false;
}

/* Why host h cannot run the job (NULL: it can). With why, the reason in
 * words ("is cordoned"). The checks are Kruise's checkNodeFitness over a
 * Host: the selector, then every NoSchedule / NoExecute taint, real or
 * implied by the cordon and by readiness. */
static const char *host_unfit(const struct bcj_host *h, const struct kf_selector *sel,
                              const json_t *tolerations, struct kf_strbuf *why)
{
    size_t i;
    json_t *t;

    if (!h || h->deleting) {
        if (why)
            kf_strbuf_addstr(why, "is being deleted");
        return "HostDeleted";
    }
    if (sel && !kf_selector_matches_labels(sel, h->labels)) {
        if (why)
            kf_strbuf_addstr(why, "no longer matches the selector");
        return "HostNotSelected";
    }
    json_array_foreach(h->taints, i, t)
    {
        const char *effect = kf_json_str(t, "effect", "");
        const char *key = kf_json_str(t, "key", "");
        const char *value = kf_json_str(t, "value", "");

        if (strcmp(effect, "NoSchedule") && strcmp(effect, "NoExecute"))
            continue; /* PreferNoSchedule does not keep a job away */
        if (tolerated(tolerations, key, value, effect))
            continue;
        if (why)
            kf_strbuf_addf(why, "has the taint %s%s%s:%s", key, *value ? "=" : "", value, effect);
        return "HostTainted";
    }
    if (h->unschedulable && !tolerated(tolerations, KF_BCJ_TAINT_UNSCHEDULABLE, "", "NoSchedule")) {
        if (why)
            kf_strbuf_addstr(why, "is cordoned (spec.unschedulable)");
        return "HostCordoned";
    }
    if (h->ready == 0 && !tolerated(tolerations, KF_BCJ_TAINT_NOT_READY, "", "NoSchedule")) {
        if (why)
            kf_strbuf_addstr(why, "is NotReady");
        return "HostNotReady";
    }
    if (h->ready < 0 && !tolerated(tolerations, KF_BCJ_TAINT_UNREACHABLE, "", "NoSchedule")) {
        if (why)
            kf_strbuf_addstr(why, "has not reported readiness");
        return "HostNotReady";
    }
    return NULL;
}

static void host_event(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct bcj_ctrl *d = kf_ctrl_data(c);
    const char *name = kf_obj_name(obj);
    struct bcj_host *h = deleted ? NULL : host_from(obj), *old;
    char **wake = NULL;
    size_t nwake = 0, alloc = 0, it = 0;
    const char *jname;
    void *v;

    if (!name)
        return;
    pthread_rwlock_wrlock(&d->lock);
    old = h ? kf_smap_put(&d->hosts, name, h) : kf_smap_remove(&d->hosts, name);
    /* the jobs for which this host's fitness changed, and those with a task
     * there (its task may have to go) */
    while (kf_smap_next(&d->jobs, &it, &jname, &v)) {
        struct bcj_job *j = v;
        bool was = old && !host_unfit(old, j->sel, j->tolerations, NULL);
        bool is = h && !host_unfit(h, j->sel, j->tolerations, NULL);

        if (was != is || kf_smap_contains(&j->tasks, name)) {
            j->gen++;
            if (!j->exists)
                continue;
            KF_GROW(wake, alloc, nwake);
            wake[nwake++] = kf_xstrdup(jname);
        }
    }
    pthread_rwlock_unlock(&d->lock);
    host_free(old);
    for (size_t i = 0; i < nwake; i++) {
        kf_ctrl_enqueue(c, wake[i]);
        free(wake[i]);
    }
    free(wake);
}

static enum task_phase phase_of(const char *s)
{
    if (!s)
        return TASK_PENDING;
    if (strcmp(s, KF_BCJ_TASK_RUNNING) == 0)
        return TASK_RUNNING;
    if (strcmp(s, KF_BCJ_TASK_SUCCEEDED) == 0)
        return TASK_SUCCEEDED;
    if (strcmp(s, KF_BCJ_TASK_FAILED) == 0)
        return TASK_FAILED;
    return TASK_PENDING;
}

static void task_event(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct bcj_ctrl *d = kf_ctrl_data(c);
    const char *job = kf_json_str(obj, "spec.job", NULL);
    const char *host = kf_json_str(obj, "spec.host", NULL);
    const char *name = kf_obj_name(obj);
    struct bcj_job *j;
    struct bcj_task *t, *old;

    if (!job || !host || !name)
        return;
    pthread_rwlock_wrlock(&d->lock);
    j = job_entry(d, job);
    old = kf_smap_get(&j->tasks, host);
    if (deleted) {
        if (old && strcmp(old->name, name) == 0) {
            count_task(j, old, -1);
            task_free(kf_smap_remove(&j->tasks, host));
            j->gen++; /* its host may want a task again */
        }
        job_maybe_forget(d, job, j);
    } else {
        t = kf_xcalloc(1, sizeof(*t));
        t->name = kf_xstrdup(name);
        t->uid = kf_xstrdup(kf_obj_uid(obj) ? kf_obj_uid(obj) : "");
        t->job_uid = kf_xstrdup(kf_json_str(obj, "spec.jobUID", ""));
        t->phase = phase_of(kf_json_str(obj, "status.phase", NULL));
        t->exit_code = (int)kf_json_int(obj, "status.exitCode", -1);
        t->signal = (int)kf_json_int(obj, "status.signal", 0);
        if (old)
            count_task(j, old, -1);
        else if (in_rest(j, host))
            j->gen++; /* not one we created: the last walk is wrong */
        count_task(j, t, 1);
        task_free(kf_smap_put(&j->tasks, host, t));
    }
    pthread_rwlock_unlock(&d->lock);
    kf_ctrl_enqueue(c, job);
}

static void job_event(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct bcj_ctrl *d = kf_ctrl_data(c);
    const char *name = kf_obj_name(obj);
    json_t *sel = kf_json_path(obj, "spec.selector");
    struct kf_selector *s = NULL;
    struct bcj_job *j;

    if (!name)
        return;
    if (!deleted && sel && kf_selector_from_json(sel, &s, NULL) < 0)
        s = NULL; /* admission checked it; never here */
    json_t *fit = json_pack("[O?,O?]", sel, kf_json_path(obj, "spec.tolerations"));
    char *fit_key = kf_json_dump(fit, NULL);
    const char *uid = kf_obj_uid(obj) ? kf_obj_uid(obj) : "";

    json_decref(fit);
    pthread_rwlock_wrlock(&d->lock);
    j = job_entry(d, name);
    j->exists = !deleted;
    kf_selector_free(j->sel);
    j->sel = s;
    json_decref(j->tolerations);
    j->tolerations = deleted ? NULL : copy_or_null(kf_json_path(obj, "spec.tolerations"));
    if (!kf_streq(j->fit_key, fit_key)) {
        free(j->fit_key);
        j->fit_key = fit_key;
        fit_key = NULL;
        j->gen++;
    }
    if (!deleted && !kf_streq(j->uid, uid)) {
        free(j->uid);
        j->uid = kf_xstrdup(uid);
        recount(j);
        j->gen++;
    }
    if (deleted)
        job_maybe_forget(d, name, j);
    pthread_rwlock_unlock(&d->lock);
    free(fit_key);
}

static int setup(struct kf_ctrl *c)
{
    struct bcj_ctrl *d = kf_ctrl_data(c);
    struct kf_ctrl_manager *m = kf_ctrl_manager_of(c);
    int r;

    d->ctrl = c;
    d->jobs_inf = kf_ctrl_primary(c);
    d->hosts_inf = kf_ctrl_informer(m, &kf_kind_host);
    d->tasks_inf = kf_ctrl_informer(m, &kf_kind_broadcasttask);
    r = kf_ctrl_watch(c, &kf_kind_broadcastjob, job_event);
    if (r == 0)
        r = kf_ctrl_watch(c, &kf_kind_host, host_event);
    if (r == 0)
        r = kf_ctrl_watch(c, &kf_kind_broadcasttask, task_event);
    return r;
}

/* --- one reconcile ----------------------------------------------------------- */

/* What a reconcile learned about a job's hosts and tasks: from a walk of
 * every host, or from the counts and the last walk's rest. */
struct view {
    bool walked;    /* the lists below are complete */
    bool claimed;   /* claim_rest was done */
    uint64_t gen;   /* the job's gen when the walk read the tables */
    int64_t n_free; /* eligible hosts without a task */
    char **rest;    /* eligible hosts without a task, sorted (after a walk: all of
                         them; else the first ones, as many as will be started) */
    size_t n_rest, alloc_rest;
    struct gone { /* active tasks of hosts that left */
        char *name;
        char *host;
        char *why;
    } * gone;
    size_t n_gone, alloc_gone;
    char **stale; /* tasks of an earlier job of the same name */
    size_t n_stale, alloc_stale;
    struct act { /* active tasks of eligible hosts */
        char *name;
        char *uid;
    } * act;
    size_t n_act, alloc_act;
    struct kf_strbuf failed_hosts; /* "h1 (exit code 1), h2 (signal 9)" */
    size_t n_failed_named;
    int64_t desired, active, succeeded, failed;
};

static void view_release(struct view *v)
{
    for (size_t i = 0; i < v->n_rest; i++)
        free(v->rest[i]);
    free(v->rest);
    for (size_t i = 0; i < v->n_gone; i++) {
        free(v->gone[i].name);
        free(v->gone[i].host);
        free(v->gone[i].why);
    }
    free(v->gone);
    for (size_t i = 0; i < v->n_stale; i++)
        free(v->stale[i]);
    free(v->stale);
    for (size_t i = 0; i < v->n_act; i++) {
        free(v->act[i].name);
        free(v->act[i].uid);
    }
    free(v->act);
    kf_strbuf_release(&v->failed_hosts);
}

/* Empties v for another look. */
static void view_reset(struct view *v)
{
    view_release(v);
    memset(v, 0, sizeof(*v));
    v->failed_hosts = (struct kf_strbuf)KF_STRBUF_INIT;
}

static void note_failed(struct view *v, const char *host, const struct bcj_task *t)
{
    if (v->n_failed_named++ >= EVENT_HOSTS)
        return;
    kf_strbuf_addf(&v->failed_hosts, "%s%s", v->failed_hosts.len ? ", " : "", host);
    if (t->signal > 0)
        kf_strbuf_addf(&v->failed_hosts, " (signal %d)", t->signal);
    else if (t->exit_code >= 0)
        kf_strbuf_addf(&v->failed_hosts, " (exit code %d)", t->exit_code);
}

/* The view of job `name` (uid) from a walk of every host and task, with the
 * selector and tolerations of its spec. */
static void walk_view(struct bcj_ctrl *d, const char *name, const char *uid,
                      const struct kf_selector *sel, const json_t *tolerations, struct view *v)
{
    struct bcj_job *j;
    size_t it = 0;
    const char *key;
    void *val;

    pthread_rwlock_rdlock(&d->lock);
    j = kf_smap_get(&d->jobs, name);
    v->walked = true;
    v->gen = j ? j->gen : 0;
    /* tasks first: classify them against their hosts */
    while (j && kf_smap_next(&j->tasks, &it, &key, &val)) {
        struct bcj_task *t = val;
        struct bcj_host *h = kf_smap_get(&d->hosts, key);
        struct kf_strbuf why = KF_STRBUF_INIT;

        if (strcmp(t->job_uid, uid) != 0) {
            KF_GROW(v->stale, v->alloc_stale, v->n_stale);
            v->stale[v->n_stale++] = kf_xstrdup(t->name);
            continue;
        }
        if (t->phase == TASK_SUCCEEDED || t->phase == TASK_FAILED) {
            /* kept and counted wherever its host went (Kruise deletes it:
             * see docs/internals/broadcastjob.md) */
            v->desired++;
            if (t->phase == TASK_SUCCEEDED) {
                v->succeeded++;
            } else {
                v->failed++;
                note_failed(v, key, t);
            }
            continue;
        }
        if (host_unfit(h, sel, tolerations, &why)) {
            KF_GROW(v->gone, v->alloc_gone, v->n_gone);
            v->gone[v->n_gone].name = kf_xstrdup(t->name);
            v->gone[v->n_gone].host = kf_xstrdup(key);
            v->gone[v->n_gone++].why = kf_strbuf_detach(&why, NULL);
            continue;
        }
        kf_strbuf_release(&why);
        v->desired++;
        v->active++;
        KF_GROW(v->act, v->alloc_act, v->n_act);
        v->act[v->n_act].name = kf_xstrdup(t->name);
        v->act[v->n_act++].uid = kf_xstrdup(t->uid);
    }
    /* then the hosts without a task */
    it = 0;
    while (kf_smap_next(&d->hosts, &it, &key, &val)) {
        struct bcj_task *t = j ? kf_smap_get(&j->tasks, key) : NULL;

        /* a host with a task of this job was counted above */
        if ((t && strcmp(t->job_uid, uid) == 0) || host_unfit(val, sel, tolerations, NULL))
            continue;
        v->desired++;
        KF_GROW(v->rest, v->alloc_rest, v->n_rest);
        v->rest[v->n_rest++] = kf_xstrdup(key);
    }
    pthread_rwlock_unlock(&d->lock);
    v->n_free = (int64_t)v->n_rest;
    if (v->n_rest)
        qsort(v->rest, v->n_rest, sizeof(*v->rest), cmp_str);
}

/* The view of job `name` from its counts and the last walk, or false when
 * that would not be right (never walked, something changed since, tasks of
 * an earlier job to delete). */
static bool fast_view(struct bcj_ctrl *d, const char *name, struct view *v)
{
    struct bcj_job *j;
    bool ok;

    pthread_rwlock_rdlock(&d->lock);
    j = kf_smap_get(&d->jobs, name);
    ok = j && j->walked && j->gen == j->walked_gen && j->stale == 0;
    if (ok) {
        v->gen = j->gen;
        v->n_free = (int64_t)j->n_rest;
        v->active = j->counts[TASK_PENDING] + j->counts[TASK_RUNNING];
        v->succeeded = j->counts[TASK_SUCCEEDED];
        v->failed = j->counts[TASK_FAILED];
        v->desired = v->n_free + v->active + v->succeeded + v->failed;
    }
    pthread_rwlock_unlock(&d->lock);
    return ok;
}

/* Takes the first n hosts without a task for v (to start tasks on them),
 * before the tasks exist, so that their creation is not mistaken for
 * someone else's: from a walk, the job keeps the rest of its list (if
 * nothing changed since the walk read the tables); otherwise they move
 * over from the job's list. */
static void claim_rest(struct bcj_ctrl *d, const char *name, struct view *v, size_t n)
{
    struct bcj_job *j;

    if (v->claimed)
        return;
    v->claimed = true;
    pthread_rwlock_wrlock(&d->lock);
    j = kf_smap_get(&d->jobs, name);
    if (j && v->walked) {
        n = KF_MIN(n, v->n_rest);
        for (size_t i = 0; i < j->n_rest; i++)
            free(j->rest[i]);
        free(j->rest);
        j->rest = NULL;
        j->n_rest = 0;
        j->walked = j->gen == v->gen;
        j->walked_gen = v->gen;
        if (j->walked) {
            j->n_rest = v->n_rest - n;
            j->rest = kf_xcalloc(j->n_rest + 1, sizeof(*j->rest));
            if (j->n_rest) /* v->rest is NULL when the walk found none */
                memcpy(j->rest, v->rest + n, j->n_rest * sizeof(*j->rest));
            v->n_rest = n;
        }
    } else if (j) {
        n = KF_MIN(n, j->n_rest);
        for (size_t i = 0; i < n; i++) {
            KF_GROW(v->rest, v->alloc_rest, v->n_rest);
            v->rest[v->n_rest++] = j->rest[i];
        }
        if (j->n_rest > n)
            memmove(j->rest, j->rest + n, (j->n_rest - n) * sizeof(*j->rest));
        j->n_rest -= n;
    }
    pthread_rwlock_unlock(&d->lock);
}

/* The next reconcile of name walks every host. */
static void walk_next(struct bcj_ctrl *d, const char *name)
{
    struct bcj_job *j;

    pthread_rwlock_wrlock(&d->lock);
    j = kf_smap_get(&d->jobs, name);
    if (j)
        j->gen++;
    pthread_rwlock_unlock(&d->lock);
}

/* Waits until inf reflects revision rev (our last write). */
static int read_back(struct kf_informer *inf, int64_t rev)
{
    for (int waited = 0; kf_informer_rev(inf) < rev; waited++) {
        struct timespec ts = { 0, 1000000L };

        if (waited >= READ_BACK_MS)
            return -EAGAIN;
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void note_written(struct bcj_ctrl *d, const char *name, int64_t tasks_rev, int64_t job_rev)
{
    struct bcj_job *j;

    pthread_rwlock_wrlock(&d->lock);
    j = job_entry(d, name);
    if (tasks_rev > j->wrote_tasks_rev)
        j->wrote_tasks_rev = tasks_rev;
    if (job_rev > j->wrote_job_rev)
        j->wrote_job_rev = job_rev;
    pthread_rwlock_unlock(&d->lock);
}

/* Deletes the named tasks in transactions of 128. Returns the revision of
 * the last one through *ret_rev. */
static int delete_tasks(struct bcj_ctrl *d, char *const *names, size_t n, int64_t *ret_rev)
{
    for (size_t i = 0; i < n; i += KF_STORE_MAX_TXN_OPS) {
        struct kf_strbuf err = KF_STRBUF_INIT;
        size_t m = KF_MIN((size_t)KF_STORE_MAX_TXN_OPS, n - i);
        int r =
            kf_registry_delete_batch(d->reg, &kf_kind_broadcasttask, (const char *const *)names + i,
                                     NULL, m, ret_rev, NULL, &err);

        if (r < 0) {
            kf_log_warn("cannot delete tasks: %s", err.buf);
            kf_strbuf_release(&err);
            return r;
        }
        kf_strbuf_release(&err);
    }
    return 0;
}

/* Garbage collection: every task of a job that is gone. */
static int collect_garbage(struct bcj_ctrl *d, const char *name)
{
    struct bcj_job *j;
    char **names = NULL;
    size_t n = 0, alloc = 0, it = 0;
    void *v;
    int64_t rev = 0;
    int r;

    pthread_rwlock_rdlock(&d->lock);
    j = kf_smap_get(&d->jobs, name);
    while (j && kf_smap_next(&j->tasks, &it, NULL, &v)) {
        KF_GROW(names, alloc, n);
        names[n++] = kf_xstrdup(((struct bcj_task *)v)->name);
    }
    pthread_rwlock_unlock(&d->lock);
    r = delete_tasks(d, names, n, &rev);
    if (r == 0 && n)
        kf_log_info("deleted %zu tasks of broadcast job \"%s\", which is gone", n, name);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rev)
        note_written(d, name, rev, 0);
    return r;
}

static json_t *task_object(const json_t *job, const char *host)
{
    struct kf_strbuf name = KF_STRBUF_INIT;
    const json_t *tmpl = kf_json_path(job, "spec.template");
    json_t *spec, *t;
    const char *keys[] = { "command", "env", "timeoutSeconds", "restartPolicy" };

    kf_bcj_task_name(kf_obj_name(job), host, &name);
    spec = json_pack("{s:s,s:s,s:s}", "job", kf_obj_name(job), "jobUID", kf_obj_uid(job), "host",
                     host);
    for (size_t i = 0; i < KF_ARRAY_SIZE(keys); i++)
        if (json_object_get(tmpl, keys[i]))
            json_object_set(spec, keys[i], json_object_get(tmpl, keys[i]));
    if (strcmp(kf_json_str(tmpl, "restartPolicy", ""), "OnFailure") == 0)
        json_object_set_new(spec, "restartLimit",
                            json_integer(kf_json_int(job, "spec.failurePolicy.restartLimit", 0)));
    t = json_pack("{s:s,s:s,s:{s:s%,s:{s:s},s:[{s:s,s:s,s:s,s:s,s:b}]},s:o}", "apiVersion",
                  KF_API_VERSION, "kind", "BroadcastTask", "metadata", "name", name.buf, name.len,
                  "labels", KF_BCJ_LABEL_JOB, kf_obj_name(job), "ownerReferences", "apiVersion",
                  KF_API_VERSION, "kind", "BroadcastJob", "name", kf_obj_name(job), "uid",
                  kf_obj_uid(job), "controller", 1, "spec", spec);
    kf_strbuf_release(&name);
    return t;
}

/* Creates tasks on hosts[0..n) in transactions of 128; *ret_created says
 * how many (a name that exists already, when our view lagged, is skipped).
 * Returns 0 or the first error (what was created before it stays). */
static int create_tasks(struct bcj_ctrl *d, const json_t *job, char *const *hosts, size_t n,
                        size_t *ret_created, int64_t *ret_rev, struct kf_strbuf *err)
{
    size_t created = 0;

    for (size_t i = 0; i < n; i += KF_STORE_MAX_TXN_OPS) {
        size_t m = KF_MIN((size_t)KF_STORE_MAX_TXN_OPS, n - i), failed = 0;
        json_t *objs[KF_STORE_MAX_TXN_OPS];
        struct kf_causes causes = KF_CAUSES_INIT;
        int r;

        for (size_t k = 0; k < m; k++)
            objs[k] = task_object(job, hosts[i + k]);
        r = kf_registry_create_batch(d->reg, &kf_kind_broadcasttask, objs, m, ret_rev, &failed,
                                     &causes, err);
        if (r == 0) {
            created += m;
        } else if (r == -KF_EEXISTS) {
            /* one at a time, skipping what is there */
            r = 0;
            for (size_t k = 0; k < m && r == 0; k++) {
                json_t *one = task_object(job, hosts[i + k]), *ret = NULL;

                kf_strbuf_reset(err);
                r = kf_registry_create(d->reg, &kf_kind_broadcasttask, one, &ret, &causes, err);
                if (r == 0) {
                    created++;
                    *ret_rev = KF_MAX(*ret_rev, kf_obj_rv(ret));
                } else if (r == -KF_EEXISTS) {
                    r = 0;
                }
                json_decref(ret);
                json_decref(one);
            }
        }
        for (size_t k = 0; k < m; k++)
            json_decref(objs[k]);
        kf_causes_release(&causes);
        if (r < 0) {
            *ret_created = created;
            return r;
        }
    }
    *ret_created = created;
    return 0;
}

/* Stops active tasks as Kruise's deleteJobPods deletes active pods, but
 * keeps their records: each is finished as Failed with reason Stopped (the
 * agent sees that and kills the process). Returns how many were stopped;
 * tasks that finished meanwhile are counted as they finished. */
static int stop_tasks(struct bcj_ctrl *d, struct view *v, const char *why, int64_t *ret_rev)
{
    int stopped = 0;
    char now[40];

    kf_bcj_time_format(now_ms(d), now, sizeof(now));
    for (size_t i = 0; i < v->n_act; i += KF_BCJ_RESULTS_MAX) {
        size_t m = KF_MIN((size_t)KF_BCJ_RESULTS_MAX, v->n_act - i);
        json_t *items = json_array(), *body, *ret = NULL, *res;
        struct kf_strbuf err = KF_STRBUF_INIT;
        size_t k;
        int r;

        for (k = 0; k < m; k++)
            json_array_append_new(items,
                                  json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "name", v->act[i + k].name,
                                            "uid", v->act[i + k].uid, "phase", KF_BCJ_TASK_FAILED,
                                            "reason", "Stopped", "message", why, "endTime", now));
        body = json_pack("{s:o}", "results", items);
        r = kf_bcj_record_results(d->reg, body, &ret, &err);
        json_decref(body);
        if (r < 0) {
            kf_strbuf_release(&err);
            return r;
        }
        kf_strbuf_release(&err);
        json_array_foreach(json_object_get(ret, "results"), k, res)
        {
            const char *out = kf_json_str(res, "outcome", "");
            json_t *t = NULL;

            if (strcmp(out, "recorded") == 0) {
                stopped++;
                v->active--;
                v->failed++;
            } else if (strcmp(out, "already") == 0 &&
                       kf_registry_get(d->reg, &kf_kind_broadcasttask, v->act[i + k].name, &t) ==
                           0) {
                /* it finished on its own meanwhile */
                v->active--;
                if (strcmp(kf_json_str(t, "status.phase", ""), KF_BCJ_TASK_SUCCEEDED) == 0)
                    v->succeeded++;
                else
                    v->failed++;
                json_decref(t);
            } else if (strcmp(out, "gone") == 0) {
                v->active--;
                v->desired--;
            } else if (strcmp(out, "error") == 0) {
                json_decref(ret);
                return -EAGAIN;
            }
        }
        json_decref(ret);
    }
    *ret_rev = KF_MAX(*ret_rev, kf_store_rev(kf_registry_store(d->reg)));
    return stopped;
}

static bool has_condition(const json_t *job, const char *type)
{
    size_t i;
    json_t *c;

    json_array_foreach(kf_json_path(job, "status.conditions"), i,
                       c) if (strcmp(kf_json_str(c, "type", ""), type) == 0 &&
                              strcmp(kf_json_str(c, "status", ""), "True") == 0) return true;
    return false;
}

static void add_condition(json_t *status, const char *type, const char *reason, const char *message,
                          const char *now)
{
    json_t *conds = json_object_get(status, "conditions");

    if (!json_is_array(conds)) {
        conds = json_array();
        json_object_set_new(status, "conditions", conds);
    }
    json_array_append_new(conds, json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", type, "status", "True",
                                           "reason", reason, "message", message,
                                           "lastTransitionTime", now));
}

/* Milliseconds of an RFC 3339 time at path of obj, or 0. */
static int64_t time_at(const json_t *obj, const char *path)
{
    int64_t ms = 0;
    const char *s = kf_json_str(obj, path, NULL);

    if (!s || kf_time_parse_rfc3339(s, &ms) < 0)
        return 0;
    return ms;
}

static void event(struct bcj_ctrl *d, const json_t *job, const char *type, const char *reason,
                  const char *fmt, ...) KF_PRINTF(5, 6);

static void event(struct bcj_ctrl *d, const json_t *job, const char *type, const char *reason,
                  const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = kf_xvasprintf(fmt, ap);
    va_end(ap);
    kf_recorder_event(d->rec, job, type, reason, msg);
    kf_log_dbg("broadcast job \"%s\": %s: %s", kf_obj_name(job), reason, msg);
    free(msg);
}

/* Writes status if it differs from the job's. */
static int write_status(struct bcj_ctrl *d, const json_t *job, json_t *status)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *obj, *ret = NULL;
    int r;

    if (json_equal(status, kf_json_path(job, "status")))
        return 0;
    obj = json_pack("{s:{s:s,s:s},s:O}", "metadata", "name", kf_obj_name(job), "resourceVersion",
                    kf_json_str(job, "metadata.resourceVersion", ""), "status", status);
    r = kf_registry_update(d->reg, &kf_kind_broadcastjob, obj, true, &ret, &causes, &err);
    if (r == 0)
        note_written(d, kf_obj_name(job), 0, kf_obj_rv(ret));
    else if (r != -KF_ECONFLICT)
        kf_log_rl_warn("cannot write the status of broadcast job \"%s\": %s", kf_obj_name(job),
                       err.buf);
    json_decref(ret);
    json_decref(obj);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return r;
}

/* The finished job: deleted once its TTL passed. */
static int reconcile_finished(struct bcj_ctrl *d, const json_t *job, int64_t *requeue)
{
    json_t *ttl = kf_json_path(job, "spec.completionPolicy.ttlSecondsAfterFinished");
    int64_t done = time_at(job, "status.completionTime"), now = now_ms(d), left;
    int r;

    if (!json_is_integer(ttl))
        return 0;
    left = done + json_integer_value(ttl) * 1000 - now;
    if (left > 0) {
        *requeue = left;
        return 0;
    }
    r = kf_registry_delete(d->reg, &kf_kind_broadcastjob, kf_obj_name(job), kf_obj_rv(job), NULL,
                           NULL);
    if (r == 0)
        event(d, job, KF_EVENT_NORMAL, "Deleted",
              "deleted %lld s after it finished (ttlSecondsAfterFinished), with its tasks",
              (long long)json_integer_value(ttl));
    return r == -KF_ENOTFOUND ? 0 : r;
}

static void host_list(struct kf_strbuf *out, char *const *hosts, size_t n)
{
    for (size_t i = 0; i < n && i < EVENT_HOSTS; i++)
        kf_strbuf_addf(out, "%s%s", i ? ", " : "", hosts[i]);
    if (n > EVENT_HOSTS)
        kf_strbuf_addf(out, " and %zu more", n - EVENT_HOSTS);
}

/* One pass of reconcile_job: what it read of the job and what it decided. */
struct job_pass {
    struct bcj_ctrl *d;
    json_t *job;
    const char *name;
    json_t *spec;
    json_t *status; /* the status to write, a copy of the job's */
    const char *policy;
    json_t *deadline, *ttl;
    bool always; /* completionPolicy Always */
    const char *old_phase, *phase;
    struct kf_selector *sel;
    struct view v;
    int64_t now, start, tasks_rev;
    const char *fail_reason;
    char *fail_message;
    char nowbuf[40];
    int64_t *requeue;
};

/* Reads the job's spec into p and sets its startTime (step 4); -EINVAL on a bad selector. */
static int job_pass_init(struct job_pass *p, struct bcj_ctrl *d, json_t *job, int64_t *requeue)
{
    json_t *old_status = kf_json_path(job, "status");

    *p = (struct job_pass){ .d = d, .job = job, .name = kf_obj_name(job), .requeue = requeue };
    p->spec = kf_json_path(job, "spec");
    p->policy = kf_json_str(p->spec, "failurePolicy.type", "FailFast");
    p->deadline = kf_json_path(p->spec, "completionPolicy.activeDeadlineSeconds");
    p->ttl = kf_json_path(p->spec, "completionPolicy.ttlSecondsAfterFinished");
    p->always = strcmp(kf_json_str(p->spec, "completionPolicy.type", "Always"), "Never") != 0;
    p->old_phase = kf_json_str(job, "status.phase", "");
    p->phase = *p->old_phase ? p->old_phase : KF_BCJ_PHASE_RUNNING;
    p->v = (struct view){ .failed_hosts = KF_STRBUF_INIT };
    p->now = now_ms(d);
    kf_bcj_time_format(p->now, p->nowbuf, sizeof(p->nowbuf));
    if (kf_json_path(p->spec, "selector") &&
        kf_selector_from_json(kf_json_path(p->spec, "selector"), &p->sel, NULL) < 0)
        return -EINVAL;
    p->status = json_is_object(old_status) ? json_deep_copy(old_status) : json_object();
    /* 4. startTime */
    p->start = time_at(job, "status.startTime");
    if (!p->start) {
        p->start = p->now;
        json_object_set_new(p->status, "startTime", json_string(p->nowbuf));
    }
    return 0;
}

/* Notes the tasks written and frees what the pass holds. */
static void job_pass_release(struct job_pass *p)
{
    if (p->tasks_rev)
        note_written(p->d, p->name, p->tasks_rev, 0);
    free(p->fail_message);
    kf_selector_free(p->sel);
    view_release(&p->v);
    json_decref(p->status);
}

/* Walks every host and task of the job into p->v, dropping what a fast view held. */
static void job_walk(struct job_pass *p)
{
    view_reset(&p->v);
    walk_view(p->d, p->name, kf_obj_uid(p->job), p->sel, kf_json_path(p->spec, "tolerations"),
              &p->v);
}

/* 5. hosts and tasks: from the counts while nothing changed since the last
 * walk of every host; a walk too when a failure is to be named. Deletes the
 * tasks of an earlier job of the same name. */
static int job_view(struct job_pass *p)
{
    bool name_failure =
        strcmp(p->policy, "FailFast") == 0 ||
        (strcmp(p->policy, "Pause") == 0 && strcmp(p->old_phase, KF_BCJ_PHASE_PAUSED) != 0);

    if (!fast_view(p->d, p->name, &p->v) || (p->v.failed > 0 && name_failure))
        job_walk(p);
    if (p->v.n_stale)
        return delete_tasks(p->d, p->v.stale, p->v.n_stale, &p->tasks_rev);
    return 0;
}

/* Steps 6, 7 and the Pause policy of 8: true when the job is failed or paused
 * and this pass only counts its tasks; else sets the phase Running. */
static bool job_held(struct job_pass *p)
{
    /* 6. a failed job (only a Never job gets here) only counts */
    if (strcmp(p->phase, KF_BCJ_PHASE_FAILED) == 0)
        return true;
    /* 7. paused by the user */
    if (kf_json_bool(p->spec, "paused", false)) {
        if (strcmp(p->old_phase, KF_BCJ_PHASE_PAUSED) != 0)
            event(p->d, p->job, KF_EVENT_NORMAL, "Paused",
                  "paused (spec.paused): no new tasks start; %lld active tasks go on",
                  (long long)p->v.active);
        p->phase = KF_BCJ_PHASE_PAUSED;
        return true;
    }
    p->phase = KF_BCJ_PHASE_RUNNING;
    /* 8. the failure policy Pause */
    if (p->v.failed > 0 && strcmp(p->policy, "Pause") == 0) {
        if (strcmp(p->old_phase, KF_BCJ_PHASE_PAUSED) != 0)
            event(p->d, p->job, KF_EVENT_WARNING, "Paused",
                  "paused by failurePolicy Pause: %lld failed task(s), on %s; delete the "
                  "failed BroadcastTasks to run them again, or set failurePolicy.type to "
                  "Continue",
                  (long long)p->v.failed, p->v.failed_hosts.buf);
        p->phase = KF_BCJ_PHASE_PAUSED;
        return true;
    }
    return false;
}

/* Steps 8 (FailFast) and 9 (the deadline): decides whether the running job
 * fails now, sets when to look again, and walks when it fails. */
static void job_decide_failure(struct job_pass *p)
{
    bool timed = p->always && json_is_integer(p->deadline);
    int64_t deadline_ms = timed ? json_integer_value(p->deadline) * 1000 : 0;

    if (p->v.failed > 0 && strcmp(p->policy, "FailFast") == 0) {
        p->fail_reason = "FailedTaskFound";
        p->fail_message = kf_xasprintf("failurePolicy FailFast: %lld failed task(s), on %s",
                                       (long long)p->v.failed, p->v.failed_hosts.buf);
    }
    /* 9. the deadline (a look again then; a paused job is not timed) */
    if (timed)
        *p->requeue = KF_MAX(1, p->start + deadline_ms - p->now);
    if (!p->fail_reason && timed && p->now - p->start >= deadline_ms) {
        p->fail_reason = "DeadlineExceeded";
        p->fail_message =
            kf_xasprintf("the job was active longer than activeDeadlineSeconds (%lld s)",
                         (long long)json_integer_value(p->deadline));
    }
    if (strcmp(p->old_phase, KF_BCJ_PHASE_PAUSED) == 0)
        event(p->d, p->job, KF_EVENT_NORMAL, "Resumed", "running again: new tasks may start");
    /* stopping needs every active task: a walk */
    if (p->fail_reason && !p->v.walked)
        job_walk(p);
}

/* Deletes the active tasks of hosts that left (step 11 of Kruise when
 * running, part of deleting every active pod when failing). */
static int job_delete_gone(struct job_pass *p)
{
    struct view *v = &p->v;
    struct kf_strbuf msg = KF_STRBUF_INIT;
    char **names;
    int r;

    if (!v->n_gone)
        return 0;
    names = kf_xcalloc(v->n_gone, sizeof(*names));
    for (size_t i = 0; i < v->n_gone; i++) {
        names[i] = v->gone[i].name;
        if (i < EVENT_HOSTS)
            kf_strbuf_addf(&msg, "%s%s %s", i ? "; " : "", v->gone[i].host, v->gone[i].why);
    }
    if (v->n_gone > EVENT_HOSTS)
        kf_strbuf_addf(&msg, "; and %zu more", v->n_gone - EVENT_HOSTS);
    r = delete_tasks(p->d, names, v->n_gone, &p->tasks_rev);
    free(names);
    if (r == 0)
        event(p->d, p->job, KF_EVENT_WARNING, "HostLeft",
              "deleted %zu active task(s) of hosts that can no longer run the job: %s", v->n_gone,
              msg.buf);
    kf_strbuf_release(&msg);
    return r;
}

/* 10. failing: stops the active tasks and marks the job Failed. */
static int job_fail(struct job_pass *p)
{
    char *why = kf_xasprintf("stopped: the job failed (%s)", p->fail_reason);
    int stopped = stop_tasks(p->d, &p->v, why, &p->tasks_rev);

    free(why);
    if (stopped < 0)
        return stopped;
    p->phase = KF_BCJ_PHASE_FAILED;
    add_condition(p->status, "Failed", p->fail_reason, p->fail_message, p->nowbuf);
    json_object_set_new(p->status, "completionTime", json_string(p->nowbuf));
    event(p->d, p->job, KF_EVENT_WARNING, p->fail_reason, "%s; stopped %d active task(s)",
          p->fail_message, stopped);
    *p->requeue = p->always && json_is_integer(p->ttl) ? json_integer_value(p->ttl) * 1000 : 0;
    return 0;
}

/* Starts up to n tasks on hosts without one and says so; the result of create_tasks. */
static int job_start_tasks(struct job_pass *p, size_t n, int64_t parallelism)
{
    struct view *v = &p->v;
    struct kf_strbuf err = KF_STRBUF_INIT, hosts = KF_STRBUF_INIT;
    size_t created = 0;
    int r;

    claim_rest(p->d, p->name, v, n);
    n = KF_MIN(n, v->n_rest);
    r = create_tasks(p->d, p->job, v->rest, n, &created, &p->tasks_rev, &err);
    if (created < n)
        walk_next(p->d, p->name); /* the hosts not started are lost from the list */
    if (created > 0) {
        v->active += (int64_t)created;
        v->n_free -= (int64_t)created;
        host_list(&hosts, v->rest, (size_t)created);
        /* one message per job and limit, so that repeats fold */
        if (parallelism == INT64_MAX)
            event(p->d, p->job, KF_EVENT_NORMAL, "Dispatched",
                  "started tasks on %lld eligible hosts (no parallelism limit)",
                  (long long)v->desired);
        else
            event(p->d, p->job, KF_EVENT_NORMAL, "Dispatched",
                  "started tasks on eligible hosts, at most %lld at a time",
                  (long long)parallelism);
        kf_log_dbg("broadcast job \"%s\": %zu new tasks (%s)", p->name, created, hosts.buf);
    }
    if (r < 0)
        kf_log_rl_warn("broadcast job \"%s\": cannot create tasks: %s", p->name, err.buf);
    kf_strbuf_release(&err);
    kf_strbuf_release(&hosts);
    return r;
}

/* 11. running: new tasks up to the parallelism. */
static int job_dispatch(struct job_pass *p)
{
    int64_t parallelism;

    if (!p->v.n_free || kf_obj_deleting(p->job))
        return 0;
    parallelism = kf_bcj_parallelism(kf_json_path(p->spec, "parallelism"), p->v.desired);
    if (p->v.active > parallelism) {
        event(p->d, p->job, KF_EVENT_WARNING, "TooManyActiveTasks",
              "more active tasks than the parallelism allows (%lld): no new ones until "
              "some finish",
              (long long)parallelism);
        return 0;
    }
    if (parallelism > p->v.active)
        return job_start_tasks(p, (size_t)KF_MIN(p->v.n_free, parallelism - p->v.active),
                               parallelism);
    return 0;
}

/* ... and completes the job once every eligible host has a finished task. */
static void job_complete(struct job_pass *p)
{
    const struct view *v = &p->v;
    char *msg;

    if (!p->always || v->desired <= 0 || v->active != 0 || v->n_free != 0)
        return;
    msg = kf_xasprintf("Job completed, %lld tasks succeeded, %lld tasks failed",
                       (long long)v->succeeded, (long long)v->failed);
    p->phase = KF_BCJ_PHASE_COMPLETED;
    add_condition(p->status, "Complete", "Completed", msg, p->nowbuf);
    json_object_set_new(p->status, "completionTime", json_string(p->nowbuf));
    event(p->d, p->job, v->failed ? KF_EVENT_WARNING : KF_EVENT_NORMAL, "Completed",
          "%s on %lld hosts", msg, (long long)v->desired);
    free(msg);
    *p->requeue = json_is_integer(p->ttl) ? KF_MAX(1, json_integer_value(p->ttl) * 1000) : 0;
}

/* Writes the counts and the phase into the status, and the status if it changed. */
static int job_write_counts(struct job_pass *p)
{
    if (p->v.walked)
        claim_rest(p->d, p->name, &p->v, 0); /* keep what the walk found */
    json_object_set_new(p->status, "desired", json_integer(p->v.desired));
    json_object_set_new(p->status, "active", json_integer(p->v.active));
    json_object_set_new(p->status, "succeeded", json_integer(p->v.succeeded));
    json_object_set_new(p->status, "failed", json_integer(p->v.failed));
    json_object_set_new(p->status, "phase", json_string(p->phase));
    json_object_set_new(p->status, "observedGeneration", json_integer(kf_obj_generation(p->job)));
    return write_status(p->d, p->job, p->status);
}

/* Runs the active job one step (steps 8 to 11): fails it, or starts tasks and
 * completes it. A negative result before the status is to be written is
 * returned as is, with *write_counts false. */
static int job_step(struct job_pass *p, bool *write_counts)
{
    int r;

    *write_counts = false;
    job_decide_failure(p);
    r = job_delete_gone(p);
    if (r < 0)
        return r;
    if (p->fail_reason) {
        r = job_fail(p);
        *write_counts = r == 0;
        return r;
    }
    *write_counts = true;
    r = job_dispatch(p);
    if (r == 0)
        job_complete(p);
    return r;
}

/* One pass over a running (or paused, or failed Never) job: its view of
 * hosts and tasks, then held, failed, or tasks started and completed; the
 * counts written into its status. */
static int reconcile_job(struct bcj_ctrl *d, json_t *job, int64_t *requeue)
{
    struct job_pass p;
    bool write_counts = true;
    int r, w;

    if (job_pass_init(&p, d, job, requeue) < 0) {
        job_pass_release(&p);
        return 0; /* admission refuses a bad selector; never here */
    }
    r = job_view(&p);
    if (r < 0)
        goto release_pass;
    if (!job_held(&p))
        r = job_step(&p, &write_counts);
    if (write_counts) {
        w = job_write_counts(&p);
        if (r == 0)
            r = w;
    }
release_pass:
    job_pass_release(&p);
    return r;
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue)
{
    struct bcj_ctrl *d = kf_ctrl_data(c);
    struct bcj_job *j;
    int64_t tasks_rev = 0, job_rev = 0;
    json_t *job = NULL;
    int r;

    pthread_rwlock_rdlock(&d->lock);
    j = kf_smap_get(&d->jobs, name);
    if (j) {
        tasks_rev = j->wrote_tasks_rev;
        job_rev = j->wrote_job_rev;
    }
    pthread_rwlock_unlock(&d->lock);
    /* count what we wrote last time, not an older picture (expectations) */
    r = read_back(d->tasks_inf, tasks_rev);
    if (r == 0)
        r = read_back(d->jobs_inf, job_rev);
    if (r < 0)
        return r;
    r = kf_informer_get(d->jobs_inf, name, &job);
    if (r == -KF_ENOTFOUND)
        return collect_garbage(d, name);
    if (r < 0)
        return r;
    /* 3. finished (Always only): the TTL, and nothing else */
    if (strcmp(kf_json_str(job, "spec.completionPolicy.type", "Always"), "Never") != 0 &&
        (has_condition(job, "Complete") || has_condition(job, "Failed")))
        r = reconcile_finished(d, job, requeue);
    else
        r = reconcile_job(d, job, requeue);
    json_decref(job);
    if (r == -KF_ECONFLICT)
        r = -EAGAIN; /* the job changed under us: again, with the new one */
    return r;
}

/* --- the controller's entry -------------------------------------------------- */

const struct kf_ctrl_ops kf_ctrl_broadcastjob_ops = {
    .name = "broadcastjob",
    .primary_kind = "BroadcastJob",
    .workers = 2,
    .setup = setup,
    .reconcile = reconcile,
};

int kf_ctrl_broadcastjob_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct bcj_ctrl *d = kf_xcalloc(1, sizeof(*d));

    (void)err;
    d->reg = env->reg;
    d->rec = kf_recorder_new(env->reg, "broadcastjob");
    d->now_ms = wall_clock;
    pthread_rwlock_init(&d->lock, NULL);
    *ret = d;
    return 0;
}

void kf_ctrl_broadcastjob_set_clock(void *data, int64_t (*now)(void *arg), void *arg)
{
    struct bcj_ctrl *d = data;

    d->now_ms = now ? now : wall_clock;
    d->clock_arg = arg;
    kf_recorder_set_clock(d->rec, now, arg);
}

void kf_ctrl_broadcastjob_fini(void *data)
{
    struct bcj_ctrl *d = data;
    size_t it = 0;
    void *v;

    if (!d)
        return;
    while (kf_smap_next(&d->hosts, &it, NULL, &v))
        host_free(v);
    kf_smap_release(&d->hosts);
    it = 0;
    while (kf_smap_next(&d->jobs, &it, NULL, &v))
        job_free(v);
    kf_smap_release(&d->jobs);
    pthread_rwlock_destroy(&d->lock);
    kf_recorder_free(d->rec);
    free(d);
}
