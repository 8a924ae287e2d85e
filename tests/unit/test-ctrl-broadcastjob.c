/* test-ctrl-broadcastjob.c: the BroadcastJob controller on the memory store
 * with a fake agent that finishes tasks, one test per policy and edge case
 * of OpenKruise's semantics (reference §1): parallelism as a number and as a
 * percentage rounded up, FailFast, Continue, Pause, paused and resumed, the
 * deadline, the TTL (0 and N), completionPolicy Never covering hosts that
 * join later, hosts leaving mid-run (cordoned, NotReady, deleted, relabelled),
 * restartLimit with OnFailure, tolerations, and garbage collection. Time is a
 * fake clock, so the deadline and the TTL are exact. */
#include "ctrl-test.h"

#include <pthread.h>
#include <time.h>

#include "kfleet/broadcast.h"
#include "kfleet/controllers.h"
#include "kfleet/events.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/store.h"

struct fx {
    struct kf_store *store;
    struct kf_registry *reg;
    struct kf_ctrl_manager *m;
    struct kf_ctrl *c;
    void *data;
};

static int setup(void **state)
{
    struct fx *f = kf_xcalloc(1, sizeof(*f));
    struct kf_ctrl_env env = { 0 };
    ctrl_test_clock_set(CTRL_TEST_START_MS);
    assert_int_equal(kf_store_open("memory:", &f->store, NULL), 0);
    f->reg = kf_registry_new(f->store);
    f->m = kf_ctrl_manager_new(f->store, f->reg);
    env.store = f->store;
    env.reg = f->reg;
    assert_int_equal(kf_ctrl_broadcastjob_init(&env, &f->data, NULL), 0);
    kf_ctrl_broadcastjob_set_clock(f->data, ctrl_test_clock, NULL);
    assert_int_equal(kf_ctrl_manager_add(f->m, &kf_ctrl_broadcastjob_ops, f->data, &f->c), 0);
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    kf_ctrl_manager_free(f->m);
    kf_ctrl_broadcastjob_fini(f->data);
    kf_registry_free(f->reg);
    kf_store_close(f->store);
    free(f);
    return 0;
}

/* Until the controller has nothing left to do: no write and no reconcile
 * (retries after a back-off included) for a while. */
static void settle(struct fx *f)
{
    ctrl_test_settle(f->m, f->c, f->store, 200, 15, 10000);
}

static void create(struct fx *f, const struct kf_kind *k, json_t *obj)
{
    ctrl_test_create(f->reg, k, obj);
}

static void patch(struct fx *f, const struct kf_kind *k, const char *name, const char *p,
                  bool status)
{
    ctrl_test_patch(f->reg, k, name, p, status);
}

/* A worker host of cluster c, Ready (ready 1), NotReady (0) or never
 * reported (-1), with extra spec JSON members. */
static void host(struct fx *f, const char *name, const char *c, int ready, const char *extra)
{
    char *s = kf_xasprintf("{'apiVersion':'kfleet.io/v1','kind':'Host','metadata':{'name':'%s',"
                           "'labels':{'kfleet.io/cluster':'%s','kfleet.io/role':'worker'}},"
                           "'spec':{'role':'worker','cluster':'%s','zone':'z1'%s%s}}",
                           name, c, c, extra ? "," : "", extra ? extra : "");

    create(f, &kf_kind_host, J(s));
    free(s);
    if (ready >= 0)
        patch(f, &kf_kind_host, name,
              ready ? "{'status':{'ready':true}}" : "{'status':{'ready':false}}", true);
}

static void hosts(struct fx *f, const char *prefix, int n, const char *c)
{
    for (int i = 0; i < n; i++) {
        char name[64];

        snprintf(name, sizeof(name), "%s%02d", prefix, i);
        host(f, name, c, 1, NULL);
    }
}

/* A job over cluster c with extra spec members. */
static void job(struct fx *f, const char *name, const char *c, const char *extra)
{
    char *s = kf_xasprintf("{'apiVersion':'kfleet.io/v1','kind':'BroadcastJob','metadata':{'name':"
                           "'%s'},'spec':{'selector':{'matchLabels':{'kfleet.io/cluster':'%s'}},"
                           "'template':{'command':['/bin/true'],'restartPolicy':'Never'}%s%s}}",
                           name, c, extra ? "," : "", extra ? extra : "");

    create(f, &kf_kind_broadcastjob, J(s));
    free(s);
}

static json_t *get(struct fx *f, const struct kf_kind *k, const char *name)
{
    json_t *o = NULL;

    if (kf_registry_get(f->reg, k, name, &o) < 0)
        return NULL;
    return o;
}

/* The tasks of job, in name order. */
static json_t *tasks_of(struct fx *f, const char *j)
{
    char *sel = kf_xasprintf("spec.job=%s", j);
    struct kf_selector *fs = NULL;
    struct kf_list_opts o = { 0 };
    json_t *items = NULL;

    assert_int_equal(kf_selector_parse_fields(sel, &fs, NULL), 0);
    o.fields = fs;
    assert_int_equal(kf_registry_list(f->reg, &kf_kind_broadcasttask, &o, &items, NULL, NULL, NULL),
                     0);
    kf_selector_free(fs);
    free(sel);
    return items;
}

static size_t count_phase(const json_t *tasks, const char *phase)
{
    size_t i, n = 0;
    json_t *t;

    json_array_foreach(tasks, i,
                       t) if (strcmp(kf_json_str(t, "status.phase", "Pending"), phase) == 0) n++;
    return n;
}

/* The fake agent: finishes every Pending task of job whose host is in
 * `fail` (comma-separated, NULL: none) with exit code 1, the others with 0.
 * At most `max` tasks (0: all). Returns how many it finished. */
static int agent(struct fx *f, const char *j, const char *fail, int max)
{
    json_t *tasks = tasks_of(f, j), *t, *items = json_array(), *body, *ret = NULL;
    size_t i;
    int n = 0;

    json_array_foreach(tasks, i, t)
    {
        const char *host_name = kf_json_str(t, "spec.host", "");
        char pat[300];
        bool bad;

        if (strcmp(kf_json_str(t, "status.phase", "Pending"), "Pending") != 0 || (max && n >= max))
            continue;
        snprintf(pat, sizeof(pat), ",%s,", host_name);
        bad = false;
        if (fail) {
            char *list = kf_xasprintf(",%s,", fail);

            bad = strstr(list, pat) != NULL;
            free(list);
        }
        json_array_append_new(items, json_pack("{s:s,s:s,s:s,s:i,s:s}", "name", kf_obj_name(t),
                                               "uid", kf_obj_uid(t), "phase",
                                               bad ? "Failed" : "Succeeded", "exitCode",
                                               bad ? 1 : 0, "output", bad ? "boom\n" : "ok\n"));
        n++;
    }
    body = json_pack("{s:o}", "results", items);
    assert_int_equal(kf_bcj_record_results(f->reg, body, &ret, NULL), 0);
    json_decref(ret);
    json_decref(body);
    json_decref(tasks);
    return n;
}

/* Marks every Pending task of job Running (the agent started them). */
static void agent_start(struct fx *f, const char *j)
{
    json_t *tasks = tasks_of(f, j), *t, *items = json_array(), *body, *ret = NULL;
    size_t i;

    json_array_foreach(tasks, i, t) if (!json_object_get(json_object_get(t, "status"), "phase"))
        json_array_append_new(items, json_pack("{s:s,s:s,s:s}", "name", kf_obj_name(t), "uid",
                                               kf_obj_uid(t), "phase", "Running"));
    body = json_pack("{s:o}", "results", items);
    assert_int_equal(kf_bcj_record_results(f->reg, body, &ret, NULL), 0);
    json_decref(ret);
    json_decref(body);
    json_decref(tasks);
}

#define assert_status(f, name, desired, active, succeeded, failed, phase)                        \
    do {                                                                                         \
        json_t *j_ = get((f), &kf_kind_broadcastjob, (name));                                    \
        assert_non_null(j_);                                                                     \
        if (kf_json_int(j_, "status.desired", -1) != (desired) ||                                \
            kf_json_int(j_, "status.active", -1) != (active) ||                                  \
            kf_json_int(j_, "status.succeeded", -1) != (succeeded) ||                            \
            kf_json_int(j_, "status.failed", -1) != (failed) ||                                  \
            strcmp(kf_json_str(j_, "status.phase", ""), (phase)) != 0) {                         \
            char *s_ = kf_json_dump_pretty(json_object_get(j_, "status"));                       \
            fail_msg("status of %s: want desired %d active %d succeeded %d failed %d phase %s, " \
                     "got\n%s",                                                                  \
                     (name), (desired), (active), (succeeded), (failed), (phase), s_);           \
        }                                                                                        \
        json_decref(j_);                                                                         \
    } while (0)

/* The condition of type on job, or fails. Returns the reason (static). */
static const char *condition(struct fx *f, const char *name, const char *type, char *msg,
                             size_t msg_size)
{
    static char reason[64];
    json_t *j = get(f, &kf_kind_broadcastjob, name), *c;
    size_t i;

    assert_non_null(j);
    json_array_foreach(kf_json_path(j, "status.conditions"), i, c)
    {
        if (strcmp(kf_json_str(c, "type", ""), type) == 0) {
            snprintf(reason, sizeof(reason), "%s", kf_json_str(c, "reason", ""));
            if (msg)
                snprintf(msg, msg_size, "%s", kf_json_str(c, "message", ""));
            assert_string_equal(kf_json_str(c, "status", ""), "True");
            assert_non_null(kf_json_str(j, "status.completionTime", NULL));
            json_decref(j);
            return reason;
        }
    }
    json_decref(j);
    fail_msg("%s has no condition %s", name, type);
    return NULL;
}

static bool has_event(struct fx *f, const char *name, const char *reason, const char *text)
{
    json_t *evs = NULL, *e;
    size_t i;
    bool found = false;

    assert_int_equal(kf_evrec_list_for(f->reg, "BroadcastJob", name, 0, &evs), 0);
    json_array_foreach(evs, i, e) if (strcmp(kf_json_str(e, "spec.reason", ""), reason) == 0 &&
                                      (!text || strstr(kf_json_str(e, "spec.message", ""), text)))
        found = true;
    json_decref(evs);
    return found;
}

/* --- the tests ----------------------------------------------------------------- */

static void test_complete(void **state)
{
    struct fx *f = *state;
    json_t *tasks, *t, *j;
    char msg[256];

    hosts(f, "a", 5, "c1");
    hosts(f, "b", 2, "c2");
    job(f, "check", "c1", NULL);
    settle(f);
    /* no parallelism: a task on every host of c1 at once, none elsewhere */
    tasks = tasks_of(f, "check");
    assert_int_equal(json_array_size(tasks), 5);
    t = json_array_get(tasks, 0);
    assert_string_equal(kf_obj_name(t), "check.a00");
    assert_string_equal(kf_json_str(t, "spec.host", ""), "a00");
    assert_string_equal(json_string_value(json_array_get(kf_json_path(t, "spec.command"), 0)),
                        "/bin/true");
    assert_string_equal(kf_obj_label(t, KF_BCJ_LABEL_JOB), "check");
    assert_string_equal(kf_json_str(t, "spec.jobUID", ""),
                        kf_obj_uid(j = get(f, &kf_kind_broadcastjob, "check")));
    assert_non_null(kf_json_str(j, "status.startTime", NULL));
    json_decref(j);
    json_decref(tasks);
    assert_status(f, "check", 5, 5, 0, 0, "running");

    agent_start(f, "check");
    settle(f);
    assert_status(f, "check", 5, 5, 0, 0, "running");
    assert_int_equal(agent(f, "check", NULL, 0), 0); /* all Running now, none Pending */
    {
        /* finish the running ones */
        json_t *ts = tasks_of(f, "check"), *items = json_array(), *body, *ret = NULL, *x;
        size_t i;

        json_array_foreach(ts, i, x) json_array_append_new(
            items, json_pack("{s:s,s:s,s:s,s:i}", "name", kf_obj_name(x), "uid", kf_obj_uid(x),
                             "phase", "Succeeded", "exitCode", 0));
        body = json_pack("{s:o}", "results", items);
        assert_int_equal(kf_bcj_record_results(f->reg, body, &ret, NULL), 0);
        json_decref(body);
        json_decref(ret);
        json_decref(ts);
    }
    settle(f);
    assert_status(f, "check", 5, 0, 5, 0, "completed");
    assert_string_equal(condition(f, "check", "Complete", msg, sizeof(msg)), "Completed");
    assert_string_equal(msg, "Job completed, 5 tasks succeeded, 0 tasks failed");
    assert_true(has_event(f, "check", "Dispatched", NULL));
    assert_true(has_event(f, "check", "Completed", "on 5 hosts"));
}

static void test_parallelism_int(void **state)
{
    struct fx *f = *state;
    json_t *tasks;
    int waves = 0;

    hosts(f, "h", 10, "c1");
    job(f, "roll", "c1", "'parallelism':3");
    settle(f);
    for (;;) {
        tasks = tasks_of(f, "roll");
        /* never more than 3 active */
        assert_true(count_phase(tasks, "Pending") <= 3);
        json_decref(tasks);
        if (agent(f, "roll", NULL, 0) == 0)
            break;
        waves++;
        settle(f);
    }
    assert_int_equal(waves, 4); /* 3 + 3 + 3 + 1 */
    assert_status(f, "roll", 10, 0, 10, 0, "completed");
}

static void test_parallelism_percent(void **state)
{
    struct fx *f = *state;
    json_t *tasks;

    /* Kruise's TestReconcileJobCreatePodPercentage: 40 % of 5 hosts is 2 */
    hosts(f, "h", 5, "c1");
    job(f, "pct", "c1", "'parallelism':'40%'");
    settle(f);
    tasks = tasks_of(f, "pct");
    assert_int_equal(json_array_size(tasks), 2);
    json_decref(tasks);
    assert_status(f, "pct", 5, 2, 0, 0, "running");
    /* 10 % of 7 hosts rounds up to 1 */
    hosts(f, "g", 7, "c2");
    job(f, "ten", "c2", "'parallelism':'10%'");
    settle(f);
    tasks = tasks_of(f, "ten");
    assert_int_equal(json_array_size(tasks), 1);
    json_decref(tasks);
    /* one finishes, the next starts */
    assert_int_equal(agent(f, "ten", NULL, 0), 1);
    settle(f);
    tasks = tasks_of(f, "ten");
    assert_int_equal(json_array_size(tasks), 2);
    assert_int_equal(count_phase(tasks, "Pending"), 1);
    json_decref(tasks);
    /* parallelism 0 starts nothing */
    job(f, "none", "c2", "'parallelism':0");
    settle(f);
    tasks = tasks_of(f, "none");
    assert_int_equal(json_array_size(tasks), 0);
    json_decref(tasks);
    assert_status(f, "none", 7, 0, 0, 0, "running");
}

static void test_failfast(void **state)
{
    struct fx *f = *state;
    json_t *tasks, *t;
    size_t i;
    char msg[256];

    hosts(f, "h", 4, "c1");
    job(f, "ff", "c1", "'parallelism':2");
    settle(f);
    /* h00 fails; h01 still runs */
    assert_int_equal(agent(f, "ff", "h00", 1), 1);
    settle(f);
    assert_string_equal(condition(f, "ff", "Failed", msg, sizeof(msg)), "FailedTaskFound");
    assert_non_null(strstr(msg, "h00 (exit code 1)"));
    /* the active task was stopped (its record kept), no new ones started */
    assert_status(f, "ff", 4, 0, 0, 2, "failed");
    tasks = tasks_of(f, "ff");
    assert_int_equal(json_array_size(tasks), 2);
    json_array_foreach(tasks, i, t) if (strcmp(kf_json_str(t, "spec.host", ""), "h01") == 0)
    {
        assert_string_equal(kf_json_str(t, "status.phase", ""), "Failed");
        assert_string_equal(kf_json_str(t, "status.reason", ""), "Stopped");
    }
    json_decref(tasks);
    assert_true(has_event(f, "ff", "FailedTaskFound", "stopped 1 active task"));
    /* a finished job does nothing more, even for a new host */
    host(f, "h99", "c1", 1, NULL);
    settle(f);
    tasks = tasks_of(f, "ff");
    assert_int_equal(json_array_size(tasks), 2);
    json_decref(tasks);
    /* and the agent's late result of the stopped task is not counted again */
    assert_int_equal(agent(f, "ff", NULL, 0), 0);
    assert_status(f, "ff", 4, 0, 0, 2, "failed");
}

static void test_continue(void **state)
{
    struct fx *f = *state;
    char msg[256];

    hosts(f, "h", 4, "c1");
    job(f, "cont", "c1", "'failurePolicy':{'type':'Continue'},'parallelism':2");
    settle(f);
    agent(f, "cont", "h00", 0);
    settle(f);
    assert_status(f, "cont", 4, 2, 1, 1, "running");
    agent(f, "cont", NULL, 0);
    settle(f);
    assert_status(f, "cont", 4, 0, 3, 1, "completed");
    assert_string_equal(condition(f, "cont", "Complete", msg, sizeof(msg)), "Completed");
    assert_string_equal(msg, "Job completed, 3 tasks succeeded, 1 tasks failed");
}

static void test_pause_policy(void **state)
{
    struct fx *f = *state;
    json_t *tasks;

    hosts(f, "h", 3, "c1");
    job(f, "up", "c1", "'failurePolicy':{'type':'Pause'},'parallelism':1");
    settle(f);
    assert_int_equal(agent(f, "up", "h00", 0), 1);
    settle(f);
    /* paused on the failure: nothing new starts */
    assert_status(f, "up", 3, 0, 0, 1, "paused");
    assert_true(has_event(f, "up", "Paused", "h00 (exit code 1)"));
    tasks = tasks_of(f, "up");
    assert_int_equal(json_array_size(tasks), 1);
    json_decref(tasks);
    /* the operator deletes the failed task: it runs again there, and on */
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_broadcasttask, "up.h00", 0, NULL, NULL),
                     0);
    settle(f);
    assert_true(has_event(f, "up", "Resumed", NULL));
    assert_status(f, "up", 3, 1, 0, 0, "running");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(agent(f, "up", NULL, 0), 1);
        settle(f);
    }
    assert_status(f, "up", 3, 0, 3, 0, "completed");
}

static void test_paused_resume(void **state)
{
    struct fx *f = *state;
    json_t *tasks;

    hosts(f, "h", 4, "c1");
    job(f, "p", "c1", "'paused':true,'parallelism':2");
    settle(f);
    assert_status(f, "p", 4, 0, 0, 0, "paused");
    tasks = tasks_of(f, "p");
    assert_int_equal(json_array_size(tasks), 0);
    json_decref(tasks);
    patch(f, &kf_kind_broadcastjob, "p", "{'spec':{'paused':false}}", false);
    settle(f);
    assert_status(f, "p", 4, 2, 0, 0, "running");
    assert_true(has_event(f, "p", "Resumed", NULL));
    /* paused mid-run: the active tasks go on, nothing new starts */
    agent_start(f, "p");
    patch(f, &kf_kind_broadcastjob, "p", "{'spec':{'paused':true}}", false);
    settle(f);
    assert_status(f, "p", 4, 2, 0, 0, "paused");
    tasks = tasks_of(f, "p");
    assert_int_equal(count_phase(tasks, "Running"), 2);
    json_decref(tasks);
    {
        json_t *ts = tasks_of(f, "p"), *items = json_array(), *body, *ret = NULL, *x;
        size_t i;

        json_array_foreach(ts, i, x)
            json_array_append_new(items, json_pack("{s:s,s:s,s:s}", "name", kf_obj_name(x), "uid",
                                                   kf_obj_uid(x), "phase", "Succeeded"));
        body = json_pack("{s:o}", "results", items);
        assert_int_equal(kf_bcj_record_results(f->reg, body, &ret, NULL), 0);
        json_decref(body);
        json_decref(ret);
        json_decref(ts);
    }
    settle(f);
    assert_status(f, "p", 4, 0, 2, 0, "paused");
    tasks = tasks_of(f, "p");
    assert_int_equal(json_array_size(tasks), 2);
    json_decref(tasks);
    patch(f, &kf_kind_broadcastjob, "p", "{'spec':{'paused':false}}", false);
    settle(f);
    agent(f, "p", NULL, 0);
    settle(f);
    assert_status(f, "p", 4, 0, 4, 0, "completed");
}

static void test_deadline(void **state)
{
    struct fx *f = *state;
    json_t *tasks;

    hosts(f, "h", 3, "c1");
    job(f, "dl", "c1", "'completionPolicy':{'activeDeadlineSeconds':60},'parallelism':2");
    settle(f);
    agent_start(f, "dl");
    advance(59 * 1000);
    kf_ctrl_enqueue(f->c, "dl");
    settle(f);
    assert_status(f, "dl", 3, 2, 0, 0, "running");
    advance(2 * 1000);
    kf_ctrl_enqueue(f->c, "dl");
    settle(f);
    assert_string_equal(condition(f, "dl", "Failed", NULL, 0), "DeadlineExceeded");
    assert_status(f, "dl", 3, 0, 0, 2, "failed");
    tasks = tasks_of(f, "dl");
    assert_int_equal(count_phase(tasks, "Failed"), 2);
    json_decref(tasks);
    /* paused jobs do not hit the deadline; resumed, they do */
    job(f, "dp", "c1", "'completionPolicy':{'activeDeadlineSeconds':10},'paused':true");
    settle(f);
    advance(20 * 1000);
    kf_ctrl_enqueue(f->c, "dp");
    settle(f);
    assert_status(f, "dp", 3, 0, 0, 0, "paused");
    patch(f, &kf_kind_broadcastjob, "dp", "{'spec':{'paused':false}}", false);
    settle(f);
    assert_string_equal(condition(f, "dp", "Failed", NULL, 0), "DeadlineExceeded");
}

static void test_ttl(void **state)
{
    struct fx *f = *state;
    json_t *tasks, *j;

    hosts(f, "h", 2, "c1");
    /* 0: deleted as soon as it finished, with its tasks */
    job(f, "now", "c1", "'completionPolicy':{'ttlSecondsAfterFinished':0}");
    settle(f);
    agent(f, "now", NULL, 0);
    settle(f);
    assert_null(get(f, &kf_kind_broadcastjob, "now"));
    tasks = tasks_of(f, "now");
    assert_int_equal(json_array_size(tasks), 0);
    json_decref(tasks);
    /* N: kept for N seconds after it finished (failed, here) */
    job(f, "later", "c1", "'completionPolicy':{'ttlSecondsAfterFinished':30}");
    settle(f);
    agent(f, "later", "h01", 0);
    settle(f);
    assert_string_equal(condition(f, "later", "Failed", NULL, 0), "FailedTaskFound");
    advance(29 * 1000);
    kf_ctrl_enqueue(f->c, "later");
    settle(f);
    j = get(f, &kf_kind_broadcastjob, "later");
    assert_non_null(j);
    json_decref(j);
    advance(2 * 1000);
    kf_ctrl_enqueue(f->c, "later");
    settle(f);
    assert_null(get(f, &kf_kind_broadcastjob, "later"));
    tasks = tasks_of(f, "later");
    assert_int_equal(json_array_size(tasks), 0);
    json_decref(tasks);
    /* unset: never deleted */
    job(f, "keep", "c1", NULL);
    settle(f);
    agent(f, "keep", NULL, 0);
    settle(f);
    advance(24 * 3600 * 1000LL);
    kf_ctrl_enqueue(f->c, "keep");
    settle(f);
    assert_status(f, "keep", 2, 0, 2, 0, "completed");
}

static void test_never_covers_new_hosts(void **state)
{
    struct fx *f = *state;
    json_t *tasks, *j;

    hosts(f, "h", 2, "c1");
    job(f, "daemon", "c1",
        "'completionPolicy':{'type':'Never'},'failurePolicy':{'type':'Continue'}");
    job(f, "once", "c1", NULL);
    settle(f);
    agent(f, "daemon", NULL, 0);
    agent(f, "once", NULL, 0);
    settle(f);
    /* Never: kept alive after every host finished */
    assert_status(f, "daemon", 2, 0, 2, 0, "running");
    j = get(f, &kf_kind_broadcastjob, "daemon");
    assert_null(kf_json_path(j, "status.conditions"));
    json_decref(j);
    assert_status(f, "once", 2, 0, 2, 0, "completed");
    /* a host that joins later gets a task from the Never job only */
    host(f, "late", "c1", 1, NULL);
    settle(f);
    tasks = tasks_of(f, "daemon");
    assert_int_equal(json_array_size(tasks), 3);
    json_decref(tasks);
    tasks = tasks_of(f, "once");
    assert_int_equal(json_array_size(tasks), 2);
    json_decref(tasks);
    assert_status(f, "daemon", 3, 1, 2, 0, "running");
    /* and one that is not Ready yet gets it once it is */
    host(f, "later", "c1", 0, NULL);
    settle(f);
    assert_status(f, "daemon", 3, 1, 2, 0, "running");
    patch(f, &kf_kind_host, "later", "{'status':{'ready':true}}", true);
    settle(f);
    assert_status(f, "daemon", 4, 2, 2, 0, "running");
}

static void test_hosts_leave(void **state)
{
    struct fx *f = *state;
    json_t *tasks;

    hosts(f, "h", 6, "c1");
    job(f, "move", "c1", "'failurePolicy':{'type':'FailFast'}");
    settle(f);
    assert_status(f, "move", 6, 6, 0, 0, "running");
    /* h00 finishes, then is cordoned: its record stays and counts (Kruise
     * would delete it and stop counting it) */
    agent(f, "move", NULL, 1);
    settle(f);
    patch(f, &kf_kind_host, "h00", "{'spec':{'unschedulable':true}}", false);
    /* the active tasks of a cordoned, a NotReady, a relabelled and a
     * deleted host are deleted, as Kruise deletes them: no failure */
    patch(f, &kf_kind_host, "h01", "{'spec':{'unschedulable':true}}", false);
    patch(f, &kf_kind_host, "h02", "{'status':{'ready':false}}", true);
    patch(f, &kf_kind_host, "h03", "{'metadata':{'labels':{'kfleet.io/cluster':'c9'}}}", false);
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_host, "h04", 0, NULL, NULL), 0);
    settle(f);
    tasks = tasks_of(f, "move");
    assert_int_equal(json_array_size(tasks), 2); /* h00 (finished) and h05 */
    json_decref(tasks);
    assert_status(f, "move", 2, 1, 1, 0, "running");
    assert_true(has_event(f, "move", "HostLeft", "h01 is cordoned"));
    assert_true(has_event(f, "move", "HostLeft", "h02 is NotReady"));
    assert_true(has_event(f, "move", "HostLeft", "h03 no longer matches the selector"));
    /* h02 comes back: a new task there */
    patch(f, &kf_kind_host, "h02", "{'status':{'ready':true}}", true);
    settle(f);
    assert_status(f, "move", 3, 2, 1, 0, "running");
    agent(f, "move", NULL, 0);
    settle(f);
    assert_status(f, "move", 3, 0, 3, 0, "completed");
}

static void test_restart_limit(void **state)
{
    struct fx *f = *state;
    json_t *tasks, *t;

    hosts(f, "h", 1, "c1");
    create(f, &kf_kind_broadcastjob,
           J("{'apiVersion':'kfleet.io/v1','kind':'BroadcastJob','metadata':{'name':'retry'},"
             "'spec':{'template':{'command':['/bin/false'],'restartPolicy':'OnFailure',"
             "'timeoutSeconds':30,'env':{'A':'1'}},'failurePolicy':{'type':'Continue',"
             "'restartLimit':2}}}"));
    settle(f);
    tasks = tasks_of(f, "retry");
    assert_int_equal(json_array_size(tasks), 1);
    t = json_array_get(tasks, 0);
    /* the task carries what the agent's runner enforces */
    assert_string_equal(kf_json_str(t, "spec.restartPolicy", ""), "OnFailure");
    assert_int_equal(kf_json_int(t, "spec.restartLimit", -1), 2);
    assert_int_equal(kf_json_int(t, "spec.timeoutSeconds", -1), 30);
    assert_string_equal(kf_json_str(t, "spec.env.A", ""), "1");
    {
        json_t *body =
                   json_pack("{s:[{s:s,s:s,s:s,s:i,s:i}]}", "results", "name", kf_obj_name(t),
                             "uid", kf_obj_uid(t), "phase", "Failed", "exitCode", 1, "restarts", 2),
               *ret = NULL;

        assert_int_equal(kf_bcj_record_results(f->reg, body, &ret, NULL), 0);
        json_decref(body);
        json_decref(ret);
    }
    json_decref(tasks);
    settle(f);
    assert_status(f, "retry", 1, 0, 0, 1, "completed");
    t = get(f, &kf_kind_broadcasttask, "retry.h00");
    assert_int_equal(kf_json_int(t, "status.restarts", -1), 2);
    json_decref(t);
    /* Never ignores the limit: restartLimit is not copied */
    create(f, &kf_kind_broadcastjob,
           J("{'apiVersion':'kfleet.io/v1','kind':'BroadcastJob','metadata':{'name':'once'},"
             "'spec':{'template':{'command':['/bin/false'],'restartPolicy':'Never'},"
             "'failurePolicy':{'restartLimit':2}}}"));
    settle(f);
    t = get(f, &kf_kind_broadcasttask, "once.h00");
    assert_null(kf_json_path(t, "spec.restartLimit"));
    json_decref(t);
}

static void test_tolerations(void **state)
{
    struct fx *f = *state;
    json_t *tasks, *t;
    size_t i;
    struct kf_strbuf got = KF_STRBUF_INIT;

    host(f, "cordoned", "c1", 1, "'unschedulable':true");
    host(f, "notready", "c1", 0, NULL);
    host(f, "unknown", "c1", -1, NULL);
    host(f, "dedicated", "c1", 1,
         "'taints':[{'key':'dedicated','value':'db','effect':'NoSchedule'}]");
    host(f, "evicting", "c1", 1, "'taints':[{'key':'maint','effect':'NoExecute'}]");
    host(f, "prefer", "c1", 1, "'taints':[{'key':'slow','effect':'PreferNoSchedule'}]");
    host(f, "plain", "c1", 1, NULL);
    job(f, "plainjob", "c1", NULL);
    job(f, "tolerant", "c1",
        "'tolerations':[{'key':'node.kubernetes.io/unschedulable','operator':'Exists'},"
        "{'key':'dedicated','value':'db','effect':'NoSchedule'},"
        "{'key':'node.kubernetes.io/not-ready','operator':'Exists','effect':'NoSchedule'},"
        "{'key':'maint','operator':'Exists'}]");
    job(f, "all", "c1", "'tolerations':[{'operator':'Exists'}]");
    settle(f);
    tasks = tasks_of(f, "plainjob");
    json_array_foreach(tasks, i, t) kf_strbuf_addf(&got, "%s ", kf_json_str(t, "spec.host", ""));
    assert_string_equal(got.buf, "plain prefer ");
    json_decref(tasks);
    kf_strbuf_reset(&got);
    tasks = tasks_of(f, "tolerant");
    json_array_foreach(tasks, i, t) kf_strbuf_addf(&got, "%s ", kf_json_str(t, "spec.host", ""));
    assert_string_equal(got.buf, "cordoned dedicated evicting notready plain prefer ");
    json_decref(tasks);
    /* tolerating everything reaches even the host that never reported */
    tasks = tasks_of(f, "all");
    assert_int_equal(json_array_size(tasks), 7);
    json_decref(tasks);
    assert_status(f, "plainjob", 2, 2, 0, 0, "running");
    kf_strbuf_release(&got);
}

static void test_no_hosts_and_gc(void **state)
{
    struct fx *f = *state;
    json_t *tasks;

    /* no eligible host: running forever (as Kruise), unless a deadline */
    job(f, "empty", "nowhere", NULL);
    settle(f);
    assert_status(f, "empty", 0, 0, 0, 0, "running");
    /* deleting a job deletes its tasks; a new job of the same name starts
     * over */
    hosts(f, "h", 3, "c1");
    job(f, "gc", "c1", NULL);
    settle(f);
    agent(f, "gc", NULL, 0);
    settle(f);
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_broadcastjob, "gc", 0, NULL, NULL), 0);
    settle(f);
    tasks = tasks_of(f, "gc");
    assert_int_equal(json_array_size(tasks), 0);
    json_decref(tasks);
    job(f, "gc", "c1", NULL);
    settle(f);
    assert_status(f, "gc", 3, 3, 0, 0, "running");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallelism_int, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallelism_percent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failfast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_covers_new_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosts_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tolerations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_hosts_and_gc, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
