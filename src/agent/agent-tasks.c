/* agent-tasks.c: the agent runs the BroadcastTasks bound to its hosts
 * (agent.h; the kind and the result endpoint in kfleet/broadcast.h).
 *
 * A watch of its own (fieldSelector spec.host=<name>; every task with
 * --simulate, sorted out by spec.host here) tells the main loop which tasks
 * exist. Each step of the loop:
 *   1. takes the watch's snapshots and events: a new task that is Pending is
 *      to be started; a task that finished in kfleetd (the job stopped it)
 *      or went away while it runs here is cancelled;
 *   2. starts the waiting tasks as one-shot tasks of the host's runner
 *      (kf_runner_task_start with the task's uid as id): its argv as given
 *      (execve, no shell), its environment and nothing else, its timeout and
 *      restart policy, the tail of its output kept;
 *   3. collects the runner's results and reports them, with "Running" for
 *      tasks that started 2 s ago or more and have no result yet (a quick
 *      task costs one write), in batches to POST
 *      .../taskresults; a result is acknowledged to the runner (and so
 *      forgotten) only once kfleetd answered recorded, already or gone.
 * The real runner keeps results in its state directory until they are
 * acknowledged, and keeps running tasks across an agent restart (the next
 * agent adopts them), so every result reaches kfleetd, and kfleetd writes a
 * task's final phase once: each result counts exactly once. Results of
 * tasks kfleetd no longer has are only acknowledged, after the first
 * snapshot said so. A task that kfleetd shows Running but this host's
 * runner does not know (the simulated runner, whose results live in
 * memory, after a restart) is reported failed with reason Lost rather than
 * run twice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/broadcast.h"
#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/runner.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

KF_LOG_MODULE(agent_tasks);

/* A request carries at most this many results and about this many bytes
 * (the API takes 512 KiB). */
#define REPORT_MAX_ITEMS KF_BCJ_RESULTS_MAX
#define REPORT_MAX_BYTES (256 * 1024)
/* Output sent with a result: the server keeps 4 KiB of a failure. */
#define REPORT_OUTPUT_MAX KF_BCJ_OUTPUT_FAILED_MAX
/* A task says Running only once it ran this long: most tasks (a health
 * check) are over before, and their result is the one write they cost. */
#define RUNNING_REPORT_AFTER_MS 2000
/* Back-off of reports after kfleetd refused or did not answer. */
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 30000

enum task_state {
    TASK_WAITING,  /* to be started */
    TASK_STARTED,  /* in the runner: running, or its result not yet reported */
    TASK_FINISHED, /* nothing to do any more */
};

struct agent_task {
    char *name;
    char uid[KF_RUNNER_NAME_MAX + 1];
    struct agent_host *h;
    json_t *spec;
    enum task_state state;
    bool running_known; /* kfleetd has it Running (or we reported that) */
    bool cancel;        /* kfleetd finished it or deleted it: stop it here */
    bool cancel_sent;
    bool lost;          /* kfleetd says Running, nobody here runs it */
    bool seen;          /* in the current snapshot */
    bool has_result;    /* in the reports being made */
    char *not_runnable; /* the runner refused the spec: why */
    int64_t start_ms;   /* wall clock */
};

struct kf_agent_tasks {
    struct kf_agent_watch *watch;
    struct kf_smap by_uid; /* uid -> struct agent_task */
    bool have_snapshot;
    int64_t retry_at_ms; /* monotonic */
    int failures;
    uint64_t started, reported;
};

static void task_free(struct agent_task *t)
{
    if (!t)
        return;
    free(t->name);
    json_decref(t->spec);
    free(t->not_runnable);
    free(t);
}

static char *watch_path(struct kf_agent *a)
{
    if (a->cfg.simulate == 0)
        return kf_xasprintf(KF_AGENT_API "/broadcasttasks?fieldSelector=spec.host%%3D%s",
                            a->hosts[0].name);
    return kf_xstrdup(KF_AGENT_API "/broadcasttasks");
}

int kf_agent_tasks_start(struct kf_agent *a, struct kf_strbuf *err)
{
    struct kf_agent_tasks *ts = kf_xcalloc(1, sizeof(*ts));
    char *path = watch_path(a);
    int r;

    kf_smap_init(&ts->by_uid);
    r = kf_agent_watch_start(a->cfg.server, a->cfg.token, a->cfg.ca_file, path, a->wake_fd,
                             &ts->watch, err);
    free(path);
    if (r < 0) {
        kf_smap_release(&ts->by_uid);
        free(ts);
        return r;
    }
    a->tasks = ts;
    return 0;
}

void kf_agent_tasks_stop(struct kf_agent *a)
{
    struct kf_agent_tasks *ts = a->tasks;
    size_t it = 0;
    void *v;

    if (!ts)
        return;
    kf_agent_watch_stop(ts->watch);
    while (kf_smap_next(&ts->by_uid, &it, NULL, &v))
        task_free(v);
    kf_smap_release(&ts->by_uid);
    free(ts);
    a->tasks = NULL;
}

/* --- what kfleetd says --------------------------------------------------------- */

static struct agent_host *route(struct kf_agent *a, const json_t *obj)
{
    return kf_smap_get(&a->host_by_name, kf_json_str(obj, "spec.host", ""));
}

static void seen(struct kf_agent *a, const json_t *obj, bool deleted)
{
    struct kf_agent_tasks *ts = a->tasks;
    struct agent_host *h = route(a, obj);
    const char *uid = kf_obj_uid(obj), *phase = kf_json_str(obj, "status.phase", NULL);
    struct agent_task *t;

    if (!h || !uid || strlen(uid) > KF_RUNNER_NAME_MAX)
        return;
    t = kf_smap_get(&ts->by_uid, uid);
    if (t)
        t->seen = true;
    if (deleted || kf_bcj_task_finished(phase)) {
        if (!t)
            return;
        if (t->state == TASK_STARTED) {
            /* kfleetd is done with it (the job stopped it, or it is gone):
             * stop it; its result will be answered "already" or "gone" */
            if (!t->cancel)
                kf_log_info("task \"%s\" on %s: %s; stopping it", t->name, h->name,
                            deleted ? "deleted" : "finished by kfleetd");
            t->cancel = true;
        } else {
            t->state = TASK_FINISHED;
        }
        return;
    }
    if (t)
        return;
    t = kf_xcalloc(1, sizeof(*t));
    t->name = kf_xstrdup(kf_obj_name(obj));
    snprintf(t->uid, sizeof(t->uid), "%s", uid);
    t->h = h;
    t->spec = json_deep_copy(kf_json_path(obj, "spec"));
    t->state = TASK_WAITING;
    t->seen = true;
    t->running_known = phase && strcmp(phase, KF_BCJ_TASK_RUNNING) == 0;
    kf_smap_put(&ts->by_uid, t->uid, t);
}

static void take_snapshot(struct kf_agent *a, json_t *items)
{
    struct kf_agent_tasks *ts = a->tasks;
    size_t i, it = 0;
    json_t *o;
    void *v;

    while (kf_smap_next(&ts->by_uid, &it, NULL, &v))
        ((struct agent_task *)v)->seen = false;
    json_array_foreach(items, i, o) seen(a, o, false);
    /* what kfleetd no longer has is not wanted here */
    it = 0;
    while (kf_smap_next(&ts->by_uid, &it, NULL, &v)) {
        struct agent_task *t = v;

        if (t->seen)
            continue;
        if (t->state == TASK_STARTED)
            t->cancel = true;
        else
            t->state = TASK_FINISHED;
    }
    ts->have_snapshot = true;
}

static void take_messages(struct kf_agent *a)
{
    struct kf_agent_msg *msgs = kf_agent_watch_take(a->tasks->watch);

    for (struct kf_agent_msg *m = msgs; m; m = m->next) {
        switch (m->type) {
        case KF_AGENT_MSG_SNAPSHOT:
            take_snapshot(a, m->obj);
            break;
        case KF_AGENT_MSG_EVENT:
            seen(a, m->obj, strcmp(m->event, "DELETED") == 0);
            break;
        case KF_AGENT_MSG_DOWN:
            kf_log_rl_warn("lost the watch of tasks (%s); running tasks go on, reconnecting",
                           m->text);
            break;
        }
    }
    kf_agent_msg_free(msgs);
}

/* --- running ------------------------------------------------------------------ */

static void start(struct kf_agent *a, struct agent_task *t)
{
    struct kf_argv argv = { 0 }, env = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_proc_status st;
    const char *key;
    json_t *v;
    size_t i;
    int r;

    /* adopted from an earlier agent, or its result is still to report */
    if (kf_runner_get(t->h->runner, t->uid, &st) == 0) {
        t->state = TASK_STARTED;
        return;
    }
    json_array_foreach(kf_json_path(t->spec, "command"), i, v)
        kf_argv_add(&argv, json_string_value(v) ? json_string_value(v) : "");
    json_object_foreach(kf_json_path(t->spec, "env"), key, v)
        kf_argv_addf(&env, "%s=%s", key, json_string_value(v) ? json_string_value(v) : "");
    /* who it runs for, as the downward API tells a pod its node */
    if (!kf_json_path(t->spec, "env.KFLEET_HOST"))
        kf_argv_addf(&env, "KFLEET_HOST=%s", t->h->name);
    if (!kf_json_path(t->spec, "env.KFLEET_JOB"))
        kf_argv_addf(&env, "KFLEET_JOB=%s", kf_json_str(t->spec, "job", ""));
    if (!kf_json_path(t->spec, "env.KFLEET_TASK"))
        kf_argv_addf(&env, "KFLEET_TASK=%s", t->name);
    {
        struct kf_task_spec spec = {
            .id = t->uid,
            .argv = (const char *const *)argv.v,
            .env = (const char *const *)env.v,
            .timeout_ms = kf_json_int(t->spec, "timeoutSeconds", 0) * 1000,
            .restart_policy =
                strcmp(kf_json_str(t->spec, "restartPolicy", "Never"), "OnFailure") == 0
                    ? KF_RESTART_ON_FAILURE
                    : KF_RESTART_NEVER,
            .restart_limit = (int)kf_json_int(t->spec, "restartLimit", 0),
        };

        r = argv.n ? kf_runner_task_start(t->h->runner, &spec, &err)
                   : kf_err(&err, -EINVAL, "the task has no command");
    }
    if (r == 0 || r == -EEXIST) {
        if (r == 0 && t->running_known) {
            /* kfleetd has it Running, and nobody here knew it: an earlier
             * agent started it and its result is lost. Not run twice. */
            kf_runner_task_cancel(t->h->runner, t->uid);
            t->lost = true;
        }
        t->state = TASK_STARTED;
        t->start_ms = kf_now_ms();
        a->tasks->started += r == 0;
        if (r == 0 && !t->lost && (a->cfg.simulate == 0 || a->n_hosts <= 10))
            kf_log_info("task \"%s\": started %s", t->name, argv.v[0]);
    } else {
        t->not_runnable = kf_xstrdup(err.len ? err.buf : strerror(-r));
        t->state = TASK_STARTED;
        kf_log_warn("task \"%s\" cannot start: %s", t->name, t->not_runnable);
    }
    kf_argv_release(&argv);
    kf_argv_release(&env);
    kf_strbuf_release(&err);
    /* the runner has what it needs (100,000 simulated hosts: memory) */
    json_decref(t->spec);
    t->spec = NULL;
}

/* --- reporting ---------------------------------------------------------------- */

/* s with invalid UTF-8 and NULs replaced by '?', as JSON needs. */
static char *clean_utf8(const char *s, size_t len)
{
    char *out = kf_xmalloc(len + 1);
    size_t i = 0, o = 0;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = n > 0 && c != 0 && i + n <= len;

        for (size_t k = 1; ok && k < n; k++)
            ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
        if (ok && n == 2 && c < 0xc2)
            ok = false; /* overlong */
        if (!ok) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}

static json_t *result_item(const struct agent_task *t, const struct kf_task_result *res)
{
    char start[40], end[40];
    json_t *item;
    const char *reason;

    kf_bcj_time_format(res->start_ms ? res->start_ms : res->end_ms, start, sizeof(start));
    kf_bcj_time_format(res->end_ms, end, sizeof(end));
    if (res->succeeded)
        reason = "Completed";
    else if (t->lost)
        reason = "Lost";
    else if (res->timed_out)
        reason = "Timeout";
    else if (res->cancelled)
        reason = "Cancelled";
    else if (!res->exit.valid)
        reason = "NotRunnable";
    else if (res->exit.signaled)
        reason = "Signaled";
    else
        reason = "Error";
    item = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i}", "name", t->name, "uid", t->uid, "phase",
                     res->succeeded ? KF_BCJ_TASK_SUCCEEDED : KF_BCJ_TASK_FAILED, "reason", reason,
                     "startTime", start, "endTime", end, "restarts",
                     res->attempts > 1 ? res->attempts - 1 : 0);
    if (t->lost)
        json_object_set_new(item, "message",
                            json_string("kfleetd had the task Running but this host's agent did "
                                        "not know it (its state was lost); not run again"));
    else if (res->message[0])
        json_object_set_new(item, "message", json_string(res->message));
    if (res->exit.valid && res->exit.signaled && res->exit.signal > 0 && res->exit.signal <= 64)
        json_object_set_new(item, "signal", json_integer(res->exit.signal));
    else if (res->exit.valid && !res->exit.signaled && res->exit.code >= 0 && res->exit.code <= 255)
        json_object_set_new(item, "exitCode", json_integer(res->exit.code));
    if (res->output && res->output_len && !t->lost) {
        size_t skip = res->output_len > REPORT_OUTPUT_MAX ? res->output_len - REPORT_OUTPUT_MAX : 0;
        char *o = clean_utf8(res->output + skip, res->output_len - skip);

        json_object_set_new(item, "output", json_string(o));
        if (skip + res->output_dropped)
            json_object_set_new(item, "outputDropped",
                                json_integer((json_int_t)(skip + res->output_dropped)));
        free(o);
    }
    return item;
}

static json_t *not_runnable_item(const struct agent_task *t)
{
    char now[40];

    kf_bcj_time_format(kf_now_ms(), now, sizeof(now));
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "name", t->name, "uid", t->uid, "phase",
                     KF_BCJ_TASK_FAILED, "reason", "NotRunnable", "message", t->not_runnable,
                     "startTime", now, "endTime", now);
}

/* One pending report: the task, and the runner result it carries (NULL for
 * a Running report or a task the runner refused). */
struct report {
    struct agent_task *t;
    bool finished;
    json_t *item;
};

static void retry_later(struct kf_agent_tasks *ts)
{
    int64_t delay = (int64_t)RETRY_MIN_MS << KF_MIN(ts->failures, 6);

    ts->failures++;
    ts->retry_at_ms = kf_agent_now_ms() + KF_MIN(delay, RETRY_MAX_MS);
}

/* Sends reports[0..n) in one request and applies the answers. */
static void send(struct kf_agent *a, struct report *reps, size_t n)
{
    struct kf_agent_tasks *ts = a->tasks;
    json_t *items = json_array(), *body, *resp = NULL, *res;
    struct kf_strbuf err = KF_STRBUF_INIT;
    size_t i;
    int code;

    for (i = 0; i < n; i++)
        json_array_append(items, reps[i].item);
    body = json_pack("{s:o}", "results", items);
    code = kf_agent_http_do(a->http, "POST", KF_AGENT_API "/" KF_BCJ_RESULTS_ACTION, NULL, body,
                            &resp, &err);
    kf_agent_server_result(a, code);
    json_decref(body);
    if (code != 200 || json_array_size(json_object_get(resp, "results")) != n) {
        kf_log_rl_warn("cannot report %zu task results: %s; trying again", n,
                       err.len ? err.buf : "unexpected answer");
        retry_later(ts);
        goto out;
    }
    ts->failures = 0;
    json_array_foreach(json_object_get(resp, "results"), i, res)
    {
        const char *outcome = kf_json_str(res, "outcome", "error");
        struct agent_task *t = reps[i].t;

        if (strcmp(outcome, "error") == 0) {
            kf_log_rl_warn("kfleetd could not record task \"%s\": %s; trying again", t->name,
                           kf_json_str(res, "message", "?"));
            retry_later(ts);
            continue;
        }
        if (!reps[i].finished) {
            /* Running: recorded, or kfleetd has already finished it */
            t->running_known = true;
            if (strcmp(outcome, "recorded") != 0)
                t->cancel = true;
            continue;
        }
        ts->reported++;
        if (!t->not_runnable)
            kf_runner_task_ack(t->h->runner, t->uid);
        t->state = TASK_FINISHED;
        if (a->cfg.simulate == 0 || a->n_hosts <= 10)
            kf_log_info("task \"%s\": %s, %s", t->name, kf_json_str(reps[i].item, "phase", "?"),
                        strcmp(outcome, "recorded") == 0 ? "reported" : "kfleetd had it already");
    }
out:
    json_decref(resp);
    kf_strbuf_release(&err);
}

/* Results of tasks nobody knows (deleted while the agent was away). */
static void ack_unknown(struct kf_agent *a, struct agent_host *h, const struct kf_task_result *res)
{
    if (!a->tasks->have_snapshot)
        return; /* the snapshot may still name it */
    kf_log_info("forgetting the result of task %s on %s: kfleetd no longer has the task", res->id,
                h->name);
    kf_runner_task_ack(h->runner, res->id);
}

struct reports {
    struct report *v;
    size_t n, alloc;
};

static void add_report(struct reports *r, struct agent_task *t, bool finished, json_t *item)
{
    KF_GROW(r->v, r->alloc, r->n);
    r->v[r->n].t = t;
    r->v[r->n].finished = finished;
    r->v[r->n++].item = item;
}

/* The runner results of host h. */
static void collect(struct kf_agent *a, struct agent_host *h, struct reports *r)
{
    struct kf_task_result *res = NULL;
    int nres = kf_runner_task_results(h->runner, &res);

    for (int k = 0; k < nres; k++) {
        struct agent_task *t = kf_smap_get(&a->tasks->by_uid, res[k].id);

        kf_log_dbg("result of %s on %s: %s, %zu bytes of output", res[k].id, h->name,
                   res[k].succeeded ? "succeeded" : "failed", res[k].output_len);
        if (t && t->h == h) {
            t->has_result = true;
            add_report(r, t, true, result_item(t, &res[k]));
        } else {
            ack_unknown(a, h, &res[k]);
        }
    }
    kf_task_results_free(res, (size_t)KF_MAX(nres, 0));
}

static void report(struct kf_agent *a)
{
    struct kf_agent_tasks *ts = a->tasks;
    struct reports r = { 0 };
    size_t it = 0, bytes = 0, from = 0;
    void *v;

    if (!kf_agent_server_ok(a) || kf_agent_now_ms() < ts->retry_at_ms)
        return;
    /* results: the real host's always (an earlier agent's are there too);
     * a simulated host's while it runs a task (its runner advances when it
     * is asked) */
    if (a->cfg.simulate == 0) {
        collect(a, &a->hosts[0], &r);
    } else {
        struct kf_smap busy = KF_SMAP_INIT;

        int64_t now = kf_now_ms();

        while (kf_smap_next(&ts->by_uid, &it, NULL, &v)) {
            struct agent_task *t = v;

            /* a simulated task cannot be over before its duration */
            if (t->state == TASK_STARTED && !t->not_runnable &&
                (t->cancel || now - t->start_ms >= a->cfg.sim_task_duration_ms))
                kf_smap_put(&busy, t->h->name, t->h);
        }
        it = 0;
        while (kf_smap_next(&busy, &it, NULL, &v)) {
            struct agent_host *h = v;
            struct kf_runner_event ev;

            collect(a, h, &r);
            /* the loop leaves the events of a simulated host without
             * members to queue up; the results above are all we need */
            if (kf_smap_count(&h->members) == 0)
                while (kf_runner_next_event(h->runner, 0, &ev) == 1)
                    ;
        }
        kf_smap_release(&busy);
    }
    it = 0;
    while (kf_smap_next(&ts->by_uid, &it, NULL, &v)) {
        struct agent_task *t = v;
        bool has_result = false;

        if (t->state != TASK_STARTED)
            continue;
        if (t->cancel) {
            /* its result, when the runner has it, is answered "already" or
             * "gone" and then forgotten */
            if (t->not_runnable)
                t->state = TASK_FINISHED;
            else if (!t->cancel_sent && !t->has_result)
                kf_runner_task_cancel(t->h->runner, t->uid);
            t->cancel_sent = true;
            continue;
        }
        if (t->not_runnable) {
            add_report(&r, t, true, not_runnable_item(t));
            continue;
        }
        has_result = t->has_result;
        if (!has_result && !t->running_known && !t->lost &&
            kf_now_ms() - t->start_ms >= RUNNING_REPORT_AFTER_MS) {
            char start[40];

            kf_bcj_time_format(t->start_ms, start, sizeof(start));
            add_report(&r, t, false,
                       json_pack("{s:s,s:s,s:s,s:s}", "name", t->name, "uid", t->uid, "phase",
                                 KF_BCJ_TASK_RUNNING, "startTime", start));
        }
    }
    /* send in requests of bounded count and size */
    for (size_t i = 0; i < r.n; i++) {
        char *s = kf_json_dump(r.v[i].item, NULL);
        size_t len = strlen(s);

        free(s);
        if (i > from && (i - from >= REPORT_MAX_ITEMS || bytes + len > REPORT_MAX_BYTES)) {
            send(a, r.v + from, i - from);
            from = i;
            bytes = 0;
        }
        bytes += len;
    }
    if (r.n > from)
        send(a, r.v + from, r.n - from);
    for (size_t i = 0; i < r.n; i++) {
        r.v[i].t->has_result = false;
        json_decref(r.v[i].item);
    }
    free(r.v);
}

/* Frees what is finished. */
static void forget_finished(struct kf_agent_tasks *ts)
{
    char **gone = NULL;
    size_t n = 0, alloc = 0, it = 0;
    const char *key;
    void *v;

    while (kf_smap_next(&ts->by_uid, &it, &key, &v))
        if (((struct agent_task *)v)->state == TASK_FINISHED) {
            KF_GROW(gone, alloc, n);
            gone[n++] = kf_xstrdup(key);
        }
    for (size_t i = 0; i < n; i++) {
        task_free(kf_smap_remove(&ts->by_uid, gone[i]));
        free(gone[i]);
    }
    free(gone);
}

void kf_agent_tasks_step(struct kf_agent *a)
{
    struct kf_agent_tasks *ts = a->tasks;
    size_t it = 0;
    void *v;

    if (!ts)
        return;
    take_messages(a);
    if (!ts->have_snapshot)
        return;
    while (kf_smap_next(&ts->by_uid, &it, NULL, &v)) {
        struct agent_task *t = v;

        if (t->state == TASK_WAITING && t->h->registered)
            start(a, t);
    }
    report(a);
    forget_finished(ts);
}
