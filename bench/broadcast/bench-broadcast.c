/* bench-broadcast.c: the server side of a BroadcastJob over N hosts, in one
 * process, through the same code kfleetd runs: the registry on a store
 * (SQLite by default, as kfleetd), the BroadcastJob controller on the
 * controller runtime, and results recorded as the result endpoint records
 * them (kf_bcj_record_results, batches of 2,000). A thread plays the agents:
 * it watches the store for new tasks and reports each one's result at once
 * (1 % fail). No HTTP and no agent process: this isolates what kfleetd
 * spends; bench/broadcast/run measures the whole path with a real
 * kfleet-agent --simulate.
 *
 *   bench-broadcast [HOSTS [STORE]]     (100000, "sqlite")
 *
 * Prints, per job (no parallelism limit, then 10 %): dispatch (every host
 * has a task, counted in the job's status), dispatch and accounting (the
 * job completed with every result counted), the CPU time of the process
 * and the controller's reconciles.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include <jansson.h>

#include "kfleet/broadcast.h"
#include "kfleet/controllers.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/smap.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

static double mono_s(void)
{
    return (double)kf_mono_ns() / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, int r, const struct kf_strbuf *err)
{
    fprintf(stderr, "bench-broadcast: %s: %s %s\n", what, strerror(-r), err ? err->buf : "");
    exit(1);
}

static void make_hosts(struct kf_registry *reg, int n)
{
    for (int i = 0; i < n; i += KF_STORE_MAX_TXN_OPS) {
        int m = KF_MIN(KF_STORE_MAX_TXN_OPS, n - i);
        json_t *objs[KF_STORE_MAX_TXN_OPS];
        struct kf_causes causes = KF_CAUSES_INIT;
        struct kf_strbuf err = KF_STRBUF_INIT;
        int r;

        for (int k = 0; k < m; k++) {
            char name[32];

            snprintf(name, sizeof(name), "sim-%06d", i + k + 1);
            objs[k] =
                json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:s,s:s}},s:{s:s,s:s,s:s}}", "apiVersion",
                          KF_API_VERSION, "kind", "Host", "metadata", "name", name, "labels",
                          "kfleet.io/cluster", "big", "kfleet.io/role", "worker", "kfleet.io/zone",
                          "a", "spec", "role", "worker", "cluster", "big", "zone", "a");
        }
        r = kf_registry_create_batch(reg, &kf_kind_host, objs, (size_t)m, NULL, NULL, &causes,
                                     &err);
        if (r < 0)
            die("creating hosts", r, &err);
        for (int k = 0; k < m; k++) {
            json_object_set_new(objs[k], "status", json_pack("{s:b}", "ready", 1));
        }
        r = kf_registry_update_batch(reg, &kf_kind_host, objs, (size_t)m, true, NULL, NULL, &causes,
                                     &err);
        if (r < 0)
            die("making hosts Ready", r, &err);
        for (int k = 0; k < m; k++)
            json_decref(objs[k]);
        kf_causes_release(&causes);
        kf_strbuf_release(&err);
    }
}

/* The agents: every new task of job gets its result. */
struct agents {
    struct kf_store *store;
    struct kf_registry *reg;
    const char *job;
    int want;
    int64_t after_rev;
    int reported;
    pthread_t thread;
};

static void flush(struct agents *ag, json_t *items)
{
    json_t *body, *ret = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r;

    if (!json_array_size(items))
        return;
    body = json_pack("{s:O}", "results", items);
    r = kf_bcj_record_results(ag->reg, body, &ret, &err);
    if (r < 0)
        die("recording results", r, &err);
    ag->reported += (int)json_array_size(items);
    json_array_clear(items);
    json_decref(body);
    json_decref(ret);
    kf_strbuf_release(&err);
}

static void *agents_main(void *arg)
{
    struct agents *ag = arg;
    struct kf_watch *w = NULL;
    json_t *items = json_array();
    int r = kf_watch_open(ag->store, "/broadcasttasks/", ag->after_rev, NULL, NULL, &w);

    if (r < 0)
        die("watching tasks", r, NULL);
    while (ag->reported < ag->want) {
        struct kf_event *ev = NULL;

        r = kf_watch_next(w, &ev);
        if (r < 0)
            die("watching tasks", r, NULL);
        if (r == 0) {
            flush(ag, items);
            kf_watch_wait(w, 20);
            continue;
        }
        if (kf_event_created(ev)) {
            json_t *t = NULL;

            if (kf_obj_decode(ev->kv.value, ev->kv.value_len, ev->kv.mod_rev, &t) == 0 &&
                strcmp(kf_json_str(t, "spec.job", ""), ag->job) == 0) {
                bool bad = kf_hash_str(kf_obj_uid(t)) % 100 == 0;

                json_array_append_new(items, json_pack("{s:s,s:s,s:s,s:i}", "name", kf_obj_name(t),
                                                       "uid", kf_obj_uid(t), "phase",
                                                       bad ? "Failed" : "Succeeded", "exitCode",
                                                       bad ? 1 : 0));
            }
            json_decref(t);
            if (json_array_size(items) >= KF_BCJ_RESULTS_MAX)
                flush(ag, items);
        }
        kf_event_unref(ev);
    }
    kf_watch_close(w);
    json_decref(items);
    return NULL;
}

static void run_job(struct kf_registry *reg, struct kf_store *store, struct kf_ctrl *c,
                    const char *name, const char *parallelism, int n)
{
    struct agents ag = { .store = store, .reg = reg, .job = name, .want = n };
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_ctrl_stats s0, s1;
    json_t *job;
    double t0, c0, dispatched = 0, done = 0;
    int r;

    ag.after_rev = kf_store_rev(store);
    pthread_create(&ag.thread, NULL, agents_main, &ag);
    job = json_pack("{s:s,s:s,s:{s:s},s:{s:{s:{s:s}},s:{s:[s],s:s},s:{s:s}}}", "apiVersion",
                    KF_API_VERSION, "kind", "BroadcastJob", "metadata", "name", name, "spec",
                    "selector", "matchLabels", "kfleet.io/cluster", "big", "template", "command",
                    "/usr/bin/true", "restartPolicy", "Never", "failurePolicy", "type", "Continue");
    if (parallelism)
        kf_json_set_str(job, "spec.parallelism", parallelism);
    kf_ctrl_stats(c, &s0);
    c0 = cpu_s();
    t0 = mono_s();
    r = kf_registry_create(reg, &kf_kind_broadcastjob, job, NULL, &causes, &err);
    if (r < 0)
        die("creating the job", r, &err);
    json_decref(job);
    while (!done) {
        struct timespec ts = { 0, 10 * 1000000L };
        json_t *j = NULL;

        nanosleep(&ts, NULL);
        if (kf_registry_get(reg, &kf_kind_broadcastjob, name, &j) < 0)
            continue;
        if (!dispatched && kf_json_int(j, "status.desired", 0) == n &&
            kf_json_int(j, "status.active", 0) + kf_json_int(j, "status.succeeded", 0) +
                    kf_json_int(j, "status.failed", 0) ==
                n)
            dispatched = mono_s() - t0;
        if (strcmp(kf_json_str(j, "status.phase", ""), "completed") == 0) {
            done = mono_s() - t0;
            printf("job %-11s (%s): dispatch %.1f s, dispatch and accounting %.1f s "
                   "(target <= 30 s at 100,000); %lld succeeded, %lld failed; CPU %.1f s",
                   name, parallelism ? parallelism : "no parallelism limit", dispatched, done,
                   (long long)kf_json_int(j, "status.succeeded", 0),
                   (long long)kf_json_int(j, "status.failed", 0), cpu_s() - c0);
        }
        json_decref(j);
    }
    pthread_join(ag.thread, NULL);
    kf_ctrl_stats(c, &s1);
    printf("; %llu reconciles, %.1f s in them (longest %.0f ms)\n",
           (unsigned long long)(s1.reconciles - s0.reconciles),
           (double)(s1.reconcile_ns_total - s0.reconcile_ns_total) / 1e9,
           (double)s1.reconcile_ns_max / 1e6);
    fflush(stdout);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

int main(int argc, char **argv)
{
    int n = 100000;
    const char *kind = argc > 2 ? argv[2] : "sqlite";
    char dir[] = "/tmp/kfleet-bench-bcj.XXXXXX";
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_ctrl_env env = { 0 };
    struct kf_store *store = NULL;
    struct kf_registry *reg;
    struct kf_ctrl_manager *m;
    struct kf_ctrl *c = NULL;
    void *data = NULL;
    char *url;
    double t0;
    int r;

    if (argc > 1 && (kf_parse_int(argv[1], &n) < 0 || n < 1)) {
        fprintf(stderr, "usage: bench-broadcast [HOSTS [sqlite|memory]]\n");
        return 2;
    }
    kf_log_init("bench-broadcast", NULL);
    kf_log_set_spec("warn", NULL);
    if (!mkdtemp(dir))
        die("mkdtemp", -errno, NULL);
    url = strcmp(kind, "memory") == 0 ? kf_xstrdup("memory:")
                                      : kf_xasprintf("sqlite:%s/kfleet.db", dir);
    r = kf_store_open(url, &store, &err);
    if (r < 0)
        die("opening the store", r, &err);
    reg = kf_registry_new(store);
    printf("BroadcastJob over %d hosts in one process: store %s, the BroadcastJob controller, "
           "results recorded in batches of %d as POST /taskresults does; one simulated agent "
           "thread reports each task at once (1 %% fail)\n",
           n, kind, KF_BCJ_RESULTS_MAX);
    t0 = mono_s();
    make_hosts(reg, n);
    printf("set-up: %d Ready hosts in %.1f s\n", n, mono_s() - t0);
    m = kf_ctrl_manager_new(store, reg);
    env.store = store;
    env.reg = reg;
    if (kf_ctrl_broadcastjob_init(&env, &data, &err) < 0 ||
        kf_ctrl_manager_add(m, &kf_ctrl_broadcastjob_ops, data, &c) < 0)
        die("the controller", -EINVAL, &err);
    t0 = mono_s();
    r = kf_ctrl_manager_start(m);
    if (r < 0)
        die("starting the controller", r, NULL);
    printf("controller started (informers listed %d hosts) in %.1f s\n", n, mono_s() - t0);
    run_job(reg, store, c, "all-at-once", NULL, n);
    run_job(reg, store, c, "ten-percent", "10%", n);
    kf_ctrl_manager_free(m);
    kf_ctrl_broadcastjob_fini(data);
    kf_registry_free(reg);
    kf_store_close(store);
    free(url);
    kf_strbuf_release(&err);
    {
        char *cmd = kf_xasprintf("rm -rf '%s'", dir);

        if (system(cmd) != 0)
            fprintf(stderr, "bench-broadcast: could not remove %s\n", dir);
        free(cmd);
    }
    return 0;
}
