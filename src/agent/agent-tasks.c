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
 *   3. applies kfleetd's answers to the reports sent earlier;
 *   4. collects the runner's results and reports them, with "Running" for
 *      tasks that started 2 s ago or more and have no result yet (a quick
 *      task costs one write), in batches to POST
 *      .../taskresults; a result is acknowledged to the runner (and so
 *      forgotten) only once kfleetd answered recorded, already or gone.
 * The POSTs are made by REPORT_SENDERS threads with connections of their
 * own, so that the loop goes on (takes the watch's events, starts tasks,
 * builds the next batch) while kfleetd records a batch, and kfleetd records
 * two at once: a simulation of 100,000 hosts has 50 or more batches to
 * send, which one at a time and waiting cost most of a job's time. The
 * threads only carry requests: every decision (what to report, what an
 * answer means) is the loop's, with a task in at most one request at a
 * time (in_flight), and a report made ready wakes a sender at once.
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
/* Threads that POST reports, and so requests in flight at once. */
#define REPORT_SENDERS 2

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
    bool in_flight;     /* in a request not yet answered */
    char *not_runnable; /* the runner refused the spec: why */
    int64_t start_ms;   /* wall clock */
};

/* One pending report: the task, and the runner result it carries (NULL for
 * a Running report or a task the runner refused). */
struct report {
    struct agent_task *t;
    bool finished;
    json_t *item;
};

/* One POST of reports, from the loop to a sender and back. */
struct report_req {
    struct report_req *next;
    struct report *reps; /* owned, with their items */
    size_t n;
    json_t *body;
    /* the answer, filled in by the sender */
    int code;
    json_t *resp;
    struct kf_strbuf err;
};

struct kf_agent_tasks {
    struct kf_agent_watch *watch;
    struct kf_smap by_uid; /* uid -> struct agent_task */
    bool have_snapshot;
    int64_t retry_at_ms; /* monotonic */
    int failures;
    uint64_t started, reported;
    int64_t next_due_ms; /* monotonic: a simulated task's time is up; 0: none */
    /* the senders: requests to send (todo) and answered (done), under lock */
    pthread_t senders[REPORT_SENDERS];
    size_t n_senders;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct report_req *todo, **todo_tail, *done;
    size_t in_flight; /* requests made and not yet applied (the loop's) */
    bool stop;
    struct kf_agent *a;
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

static void req_free(struct report_req *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        json_decref(q->reps[i].item);
    free(q->reps);
    json_decref(q->body);
    json_decref(q->resp);
    kf_strbuf_release(&q->err);
    free(q);
}

/* A sender: POSTs what the loop queued, one request at a time on a
 * connection of its own, and hands the answer back. */
static void *sender_main(void *arg)
{
    struct kf_agent_tasks *ts = arg;
    struct kf_agent *a = ts->a;
    struct kf_agent_http *http = kf_agent_http_new(a->cfg.server, a->cfg.token, a->cfg.ca_file);

    pthread_mutex_lock(&ts->lock);
    for (;;) {
        struct report_req *q;
        uint64_t one = 1;

        while (!ts->stop && !ts->todo)
            pthread_cond_wait(&ts->cond, &ts->lock);
        if (ts->stop)
            break;
        q = ts->todo;
        ts->todo = q->next;
        if (!ts->todo)
            ts->todo_tail = &ts->todo;
        pthread_mutex_unlock(&ts->lock);
        q->code = kf_agent_http_do(http, "POST", KF_AGENT_API "/" KF_BCJ_RESULTS_ACTION, NULL,
                                   q->body, &q->resp, &q->err);
        pthread_mutex_lock(&ts->lock);
        q->next = ts->done;
        ts->done = q;
        if (write(a->wake_fd, &one, sizeof(one)) < 0) {
            /* the counter is saturated: the loop is awake anyway */
        }
    }
    pthread_mutex_unlock(&ts->lock);
    kf_agent_http_free(http);
    return NULL;
}

int kf_agent_tasks_start(struct kf_agent *a, struct kf_strbuf *err)
{
    struct kf_agent_tasks *ts = kf_xcalloc(1, sizeof(*ts));
    char *path = watch_path(a);
    int r;

    kf_smap_init(&ts->by_uid);
    pthread_mutex_init(&ts->lock, NULL);
    pthread_cond_init(&ts->cond, NULL);
    ts->todo_tail = &ts->todo;
    ts->a = a;
    a->tasks = ts;
    r = kf_agent_watch_start(a->cfg.server, a->cfg.token, a->cfg.ca_file, path, a->wake_fd,
                             &ts->watch, err);
    free(path);
    if (r < 0) {
        kf_agent_tasks_stop(a);
        return r;
    }
    for (; ts->n_senders < REPORT_SENDERS; ts->n_senders++)
        if (pthread_create(&ts->senders[ts->n_senders], NULL, sender_main, ts) != 0) {
            kf_agent_tasks_stop(a);
            return kf_err(err, -EAGAIN, "cannot start the threads that report task results");
        }
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
    /* a request being sent is waited for (at most the request timeout);
     * results not answered stay with the runner for the next agent */
    pthread_mutex_lock(&ts->lock);
    ts->stop = true;
    pthread_cond_broadcast(&ts->cond);
    pthread_mutex_unlock(&ts->lock);
    for (size_t i = 0; i < ts->n_senders; i++)
        pthread_join(ts->senders[i], NULL);
    for (struct report_req *lists[2] = { ts->todo, ts->done }, *q, **l = lists; l < lists + 2; l++)
        while ((q = *l)) {
            *l = q->next;
            req_free(q);
        }
    while (kf_smap_next(&ts->by_uid, &it, NULL, &v))
        task_free(v);
    kf_smap_release(&ts->by_uid);
    pthread_cond_destroy(&ts->cond);
    pthread_mutex_destroy(&ts->lock);
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

static void retry_later(struct kf_agent_tasks *ts)
{
    int64_t delay = (int64_t)RETRY_MIN_MS << KF_MIN(ts->failures, 6);

    ts->failures++;
    ts->retry_at_ms = kf_mono_ms() + KF_MIN(delay, RETRY_MAX_MS);
}

/* Hands reports[0..n) (and their items) to the senders as one request. */
static void send(struct kf_agent *a, struct report *reps, size_t n)
{
    struct kf_agent_tasks *ts = a->tasks;
    struct report_req *q = kf_xcalloc(1, sizeof(*q));
    json_t *items = json_array();

    q->reps = kf_xmemdup(reps, n * sizeof(*reps));
    q->n = n;
    for (size_t i = 0; i < n; i++) {
        json_array_append(items, reps[i].item);
        reps[i].t->in_flight = true;
        reps[i].t->has_result = false;
    }
    q->body = json_pack("{s:o}", "results", items);
    kf_strbuf_init(&q->err, 0);
    ts->in_flight++;
    pthread_mutex_lock(&ts->lock);
    *ts->todo_tail = q;
    ts->todo_tail = &q->next;
    pthread_cond_signal(&ts->cond);
    pthread_mutex_unlock(&ts->lock);
}

/* Applies kfleetd's answer to the request q. */
static void apply(struct kf_agent *a, struct report_req *q)
{
    struct kf_agent_tasks *ts = a->tasks;
    struct report *reps = q->reps;
    size_t i, n = q->n;
    json_t *res;

    for (i = 0; i < n; i++)
        reps[i].t->in_flight = false;
    kf_agent_server_result(a, q->code);
    if (q->code != 200 || json_array_size(json_object_get(q->resp, "results")) != n) {
        kf_log_rl_warn("cannot report %zu task results: %s; trying again", n,
                       q->err.len ? q->err.buf : "unexpected answer");
        retry_later(ts);
        return;
    }
    ts->failures = 0;
    json_array_foreach(json_object_get(q->resp, "results"), i, res)
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
}

/* Applies the answers that came back. */
static void take_answers(struct kf_agent *a)
{
    struct kf_agent_tasks *ts = a->tasks;
    struct report_req *q, *done, *rev = NULL;

    pthread_mutex_lock(&ts->lock);
    done = ts->done;
    ts->done = NULL;
    pthread_mutex_unlock(&ts->lock);
    while ((q = done)) { /* in the order they came */
        done = q->next;
        q->next = rev;
        rev = q;
    }
    while ((q = rev)) {
        rev = q->next;
        apply(a, q);
        ts->in_flight--;
        req_free(q);
    }
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

/* The reports of one turn: the request being filled (v[0..n), bytes), how
 * many were handed to the senders, and how many may be. */
struct reports {
    struct report *v;
    size_t n, alloc, bytes;
    size_t sent, max;
};

static bool reports_full(const struct reports *r)
{
    return r->sent >= r->max;
}

static void flush_reports(struct kf_agent *a, struct reports *r)
{
    if (r->n == 0)
        return;
    send(a, r->v, r->n);
    r->n = 0;
    r->bytes = 0;
    r->sent++;
}

/* Adds a report to the request being filled, which is sent first when
 * the report does not fit. false (item dropped; reported on a later turn)
 * when no more requests may be made this turn. */
static bool add_report(struct kf_agent *a, struct reports *r, struct agent_task *t, bool finished,
                       json_t *item)
{
    char *s = kf_json_dump(item, NULL);
    size_t len = strlen(s);

    free(s);
    if (r->n && (r->n >= REPORT_MAX_ITEMS || r->bytes + len > REPORT_MAX_BYTES))
        flush_reports(a, r);
    if (reports_full(r)) {
        json_decref(item);
        return false;
    }
    KF_GROW(r->v, r->alloc, r->n);
    r->v[r->n].t = t;
    r->v[r->n].finished = finished;
    r->v[r->n++].item = item;
    r->bytes += len;
    t->has_result = finished;
    return true;
}

/* The runner results of host h, as long as they may be sent. */
static void collect(struct kf_agent *a, struct agent_host *h, struct reports *r)
{
    struct kf_task_result *res = NULL;
    int nres = kf_runner_task_results(h->runner, &res);

    for (int k = 0; k < nres && !reports_full(r); k++) {
        struct agent_task *t = kf_smap_get(&a->tasks->by_uid, res[k].id);

        if (t && t->h == h && t->in_flight)
            continue; /* being reported */
        kf_log_dbg("result of %s on %s: %s, %zu bytes of output", res[k].id, h->name,
                   res[k].succeeded ? "succeeded" : "failed", res[k].output_len);
        if (t && t->h == h)
            add_report(a, r, t, true, result_item(t, &res[k]));
        else
            ack_unknown(a, h, &res[k]);
    }
    kf_task_results_free(res, (size_t)KF_MAX(nres, 0));
}

/* Whether the runner of a simulated task may have its result: its time is
 * up (or it was cancelled). Otherwise notes when its time will be up. */
static bool sim_due(struct kf_agent *a, const struct agent_task *t, int64_t now)
{
    struct kf_agent_tasks *ts = a->tasks;
    int64_t left;

    if (t->state != TASK_STARTED || t->not_runnable || t->in_flight)
        return false;
    left = t->start_ms + a->cfg.sim_task_duration_ms - now;
    if (t->cancel || left <= 0)
        return true;
    if (!ts->next_due_ms || kf_mono_ms() + left < ts->next_due_ms)
        ts->next_due_ms = kf_mono_ms() + left;
    return false;
}

static void report(struct kf_agent *a)
{
    struct kf_agent_tasks *ts = a->tasks;
    struct reports r = { 0 };
    size_t it = 0;
    void *v;

    ts->next_due_ms = 0;
    if (!kf_agent_server_ok(a) || kf_mono_ms() < ts->retry_at_ms)
        return;
    /* at most REPORT_SENDERS requests queued besides those being sent */
    r.max = 2 * REPORT_SENDERS > ts->in_flight ? 2 * REPORT_SENDERS - ts->in_flight : 0;
    /* results: the real host's always (an earlier agent's are there too);
     * a simulated host's while it runs a task (its runner advances when it
     * is asked) */
    if (a->cfg.simulate == 0) {
        if (!reports_full(&r))
            collect(a, &a->hosts[0], &r);
    } else if (!reports_full(&r)) {
        struct kf_smap asked = KF_SMAP_INIT;
        int64_t now = kf_now_ms();

        while (kf_smap_next(&ts->by_uid, &it, NULL, &v)) {
            struct agent_task *t = v;
            struct kf_runner_event ev;

            /* a simulated task cannot be over before its duration */
            if (!sim_due(a, t, now) || kf_smap_get(&asked, t->h->name))
                continue;
            if (reports_full(&r)) {
                /* the rest on a later turn: when a request is answered */
                ts->next_due_ms = 0;
                break;
            }
            kf_smap_put(&asked, t->h->name, t->h);
            collect(a, t->h, &r);
            if (!t->has_result && !t->in_flight && !t->cancel) {
                /* due by our clock, not yet by the runner's: soon */
                int64_t soon = kf_mono_ms() + 5;

                ts->next_due_ms = ts->next_due_ms ? KF_MIN(ts->next_due_ms, soon) : soon;
            }
            /* the loop leaves the events of a simulated host without
             * members to queue up; the results above are all we need */
            if (kf_smap_count(&t->h->members) == 0)
                while (kf_runner_next_event(t->h->runner, 0, &ev) == 1)
                    ;
        }
        kf_smap_release(&asked);
    }
    it = 0;
    while (kf_smap_next(&ts->by_uid, &it, NULL, &v)) {
        struct agent_task *t = v;

        if (t->state != TASK_STARTED || t->in_flight)
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
        if (reports_full(&r))
            continue;
        if (t->not_runnable) {
            add_report(a, &r, t, true, not_runnable_item(t));
            continue;
        }
        if (!t->has_result && !t->running_known && !t->lost &&
            kf_now_ms() - t->start_ms >= RUNNING_REPORT_AFTER_MS) {
            char start[40];

            kf_bcj_time_format(t->start_ms, start, sizeof(start));
            add_report(a, &r, t, false,
                       json_pack("{s:s,s:s,s:s,s:s}", "name", t->name, "uid", t->uid, "phase",
                                 KF_BCJ_TASK_RUNNING, "startTime", start));
        }
    }
    flush_reports(a, &r);
    free(r.v);
}

int64_t kf_agent_tasks_next_ms(const struct kf_agent *a)
{
    return a->tasks ? a->tasks->next_due_ms : 0;
}

/* Frees what is finished. */
static void forget_finished(struct kf_agent_tasks *ts)
{
    char **gone = NULL;
    size_t n = 0, alloc = 0, it = 0;
    const char *key;
    void *v;

    while (kf_smap_next(&ts->by_uid, &it, &key, &v))
        if (((struct agent_task *)v)->state == TASK_FINISHED &&
            !((struct agent_task *)v)->in_flight) {
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
    take_answers(a);
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
