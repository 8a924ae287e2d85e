/* test-ctrl-release.c: the Release kind and its controller on the memory
 * store. The test plays the upgrade engine (and the simulated agents behind
 * it): a cluster whose spec.version is the target reports it in
 * status.version when the test says so, or fails with the contract's
 * Upgraded condition. A fake Prometheus answers the health gate's query.
 *
 *   - admission: a selector matching nothing, overlapping waves, a target
 *     the catalog lacks, a skipped minor, a misplaced rest wave, alert
 *     names PromQL would misread, an abort undone: each refused with why;
 *   - 10,000 clusters over four waves (named canaries, a unit, a
 *     percentage, the rest): no wave ever has more clusters upgrading than
 *     its maxConcurrency, no wave starts before the one before it is done
 *     and baked, clusters outside their maintenance window never start
 *     until it opens, and no cluster is written twice (generation 2);
 *   - a gate that fails on purpose pauses the release at the canary;
 *     resume goes on once the alert stopped;
 *   - failures past maxFailures pause it; resume accepts them;
 *   - a controller stopped mid-release and started again (kfleetd killed)
 *     goes on where it was, writing no cluster twice;
 *   - abort stops it for good;
 *   - a Template's version goes to the clusters that use it, and only them;
 *   - clusters that never finish pause it at the progress deadline.
 * Time is a fake clock, so bake times and windows are exact. */
#include "ctrl-test.h"

#include <pthread.h>
#include <time.h>

#include <microhttpd.h>

#include "kfleet/controllers.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/release.h"
#include "kfleet/store.h"
#include "test-ports.h"

#define FROM   "1.36"
#define TARGET "1.37"

/* --- a fake Prometheus ---------------------------------------------------------- */

static pthread_mutex_t prom_lock = PTHREAD_MUTEX_INITIALIZER;
static char prom_firing[256]; /* the cluster the alert fires for, "" none */

static enum MHD_Result prom_answer(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls)
{
    struct MHD_Response *resp;
    enum MHD_Result r;
    char *body;

    (void)cls, (void)url, (void)method, (void)version, (void)upload, (void)upload_size;
    (void)con_cls;
    pthread_mutex_lock(&prom_lock);
    if (prom_firing[0])
        body = kf_xasprintf("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
                            "\"result\":[{\"metric\":{\"__name__\":\"ALERTS\",\"alertname\":"
                            "\"CanaryBroken\",\"alertstate\":\"firing\",\"cluster\":\"%s\"},"
                            "\"value\":[1767225600,\"1\"]}]}}",
                            prom_firing);
    else
        body = kf_xstrdup("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
                          "\"result\":[]}}");
    pthread_mutex_unlock(&prom_lock);
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}

static void prom_fire(const char *cluster)
{
    pthread_mutex_lock(&prom_lock);
    snprintf(prom_firing, sizeof(prom_firing), "%s", cluster ? cluster : "");
    pthread_mutex_unlock(&prom_lock);
}

/* --- the fixture ------------------------------------------------------------------- */

struct fx {
    struct kf_store *store;
    struct kf_registry *reg;
    struct kf_ctrl_manager *m;
    struct kf_ctrl *c;
    void *data;
    struct MHD_Daemon *prom;
    char prom_url[64];
};

static void start_controller(struct fx *f)
{
    struct kf_ctrl_env env = { .store = f->store, .reg = f->reg };

    f->m = kf_ctrl_manager_new(f->store, f->reg);
    assert_int_equal(kf_ctrl_release_init(&env, &f->data, NULL), 0);
    kf_ctrl_release_set_clock(f->data, ctrl_test_clock, NULL);
    kf_ctrl_release_set_prometheus(f->data, f->prom_url);
    assert_int_equal(kf_ctrl_manager_add(f->m, &kf_ctrl_release_ops, f->data, &f->c), 0);
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
}

static void stop_controller(struct fx *f)
{
    kf_ctrl_manager_free(f->m);
    kf_ctrl_release_fini(f->data);
    f->m = NULL;
    f->data = NULL;
}

static int setup(void **state)
{
    struct fx *f = kf_xcalloc(1, sizeof(*f));
    int port = kf_test_port();

    ctrl_test_clock_set(CTRL_TEST_START_MS);
    prom_fire(NULL);
    assert_true(port > 0);
    f->prom = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
                               prom_answer, NULL, MHD_OPTION_END);
    assert_non_null(f->prom);
    snprintf(f->prom_url, sizeof(f->prom_url), "http://127.0.0.1:%d", port);
    assert_int_equal(kf_store_open("memory:", &f->store, NULL), 0);
    f->reg = kf_registry_new(f->store);
    start_controller(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    stop_controller(f);
    kf_registry_free(f->reg);
    kf_store_close(f->store);
    MHD_stop_daemon(f->prom);
    free(f);
    return 0;
}

/* Until the controller has nothing left to do: no write and no reconcile
 * for a while. */
static void settle(struct fx *f)
{
    ctrl_test_settle(f->m, f->c, f->store, 400, 20, 30000);
}

static int try_create(struct fx *f, const struct kf_kind *k, json_t *obj, struct kf_causes *causes)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r = kf_registry_create(f->reg, k, obj, NULL, causes, &err);

    json_decref(obj);
    kf_strbuf_release(&err);
    return r;
}

static void create(struct fx *f, const struct kf_kind *k, json_t *obj)
{
    struct kf_causes causes = KF_CAUSES_INIT;

    if (try_create(f, k, obj, &causes) < 0) {
        struct kf_strbuf m = KF_STRBUF_INIT;

        kf_causes_format(&causes, &m);
        fail_msg("create: %s", m.buf);
    }
    kf_causes_release(&causes);
}

static void patch(struct fx *f, const struct kf_kind *k, const char *name, const char *p,
                  bool status)
{
    ctrl_test_patch(f->reg, k, name, p, status);
}

static json_t *get(struct fx *f, const struct kf_kind *k, const char *name)
{
    json_t *o = NULL;

    assert_int_equal(kf_registry_get(f->reg, k, name, &o), 0);
    return o;
}

/* n clusters "<prefix>-<i>" on unit (status.unit) running FROM, in batches;
 * every `windowed`-th one (0: none) keeps a window on Mondays 00:00-01:00. */
static void clusters(struct fx *f, const char *prefix, int n, const char *unit, int windowed)
{
    json_t *batch[64];
    size_t nb = 0;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;

    for (int i = 0; i < n; i++) {
        char *s = kf_xasprintf(
            "{'apiVersion':'kfleet.io/v1','kind':'GuestCluster','metadata':{'name':'%s-%d',"
            "'labels':{'tier':'%s'}},'spec':{'region':'r1','network':{'vpc':'v1'}%s}}",
            prefix, i, i % 2 ? "odd" : "even",
            windowed && i % windowed == 0
                ? ",'maintenanceWindow':{'days':['Mon'],'start':'00:00','duration':'1h'}"
                : "");

        batch[nb++] = J(s);
        free(s);
        if (nb == KF_ARRAY_SIZE(batch) || i == n - 1) {
            if (kf_registry_create_batch(f->reg, &kf_kind_guestcluster, batch, nb, NULL, NULL,
                                         &causes, &err) < 0)
                fail_msg("create clusters: %s", err.buf);
            for (size_t k = 0; k < nb; k++) {
                json_object_set_new(batch[k], "status",
                                    json_pack("{s:s, s:s, s:s}", "phase", "Running", "version",
                                              FROM, "unit", unit));
            }
            if (kf_registry_update_batch(f->reg, &kf_kind_guestcluster, batch, nb, true, NULL, NULL,
                                         &causes, &err) < 0)
                fail_msg("cluster status: %s", err.buf);
            for (size_t k = 0; k < nb; k++)
                json_decref(batch[k]);
            nb = 0;
        }
    }
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

static json_t *list_clusters(struct fx *f)
{
    json_t *items = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;

    assert_int_equal(kf_registry_list(f->reg, &kf_kind_guestcluster, &(struct kf_list_opts){ 0 },
                                      &items, NULL, NULL, &err),
                     0);
    kf_strbuf_release(&err);
    return items;
}

/* spec.version is the target, status.version not yet, and no failure. */
static bool upgrading(const json_t *gc)
{
    return kf_streq(kf_json_str(gc, "spec.version", NULL), TARGET) &&
           !kf_streq(kf_json_str(gc, "status.version", NULL), TARGET) &&
           kf_release_cluster_state(gc, TARGET, NULL) != KF_REL_FAILED;
}

/* The engine: finishes every upgrading cluster (status.version = target),
 * or fails the one named `fail` (the contract's Upgraded condition). */
static size_t finish_listed(struct fx *f, json_t *items, const char *fail)
{
    json_t *gc, *batch[64];
    size_t i, nb = 0, done = 0;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;

    json_array_foreach(items, i, gc)
    {
        if (!upgrading(gc))
            continue;
        if (fail && kf_streq(kf_obj_name(gc), fail)) {
            json_object_set_new(json_object_get(gc, "status"), "conditions",
                                J("[{'type':'Upgraded','status':'False','reason':'Failed',"
                                  "'message':'step apiserver: member a-1 did not become Ready'}]"));
        } else {
            json_object_set_new(json_object_get(gc, "status"), "version", json_string(TARGET));
            json_object_set_new(json_object_get(gc, "status"), "conditions",
                                J("[{'type':'Upgraded','status':'True','reason':'Succeeded'}]"));
        }
        batch[nb++] = gc;
        done++;
        if (nb == KF_ARRAY_SIZE(batch)) {
            assert_int_equal(kf_registry_update_batch(f->reg, &kf_kind_guestcluster, batch, nb,
                                                      true, NULL, NULL, &causes, &err),
                             0);
            nb = 0;
        }
    }
    if (nb)
        assert_int_equal(kf_registry_update_batch(f->reg, &kf_kind_guestcluster, batch, nb, true,
                                                  NULL, NULL, &causes, &err),
                         0);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return done;
}

static size_t finish_upgrades(struct fx *f, const char *fail)
{
    json_t *items = list_clusters(f);
    size_t n = finish_listed(f, items, fail);

    json_decref(items);
    return n;
}

static void release(struct fx *f, const char *name, const char *spec)
{
    char *s = kf_xasprintf("{'apiVersion':'kfleet.io/v1','kind':'Release','metadata':{'name':"
                           "'%s'},'spec':%s}",
                           name, spec);

    create(f, &kf_kind_release, J(s));
    free(s);
}

static void assert_refused_t(struct fx *f, const char *spec, const char *field, const char *type,
                             const char *text)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    char *s = kf_xasprintf("{'apiVersion':'kfleet.io/v1','kind':'Release','metadata':{'name':"
                           "'bad'},'spec':%s}",
                           spec);

    assert_int_equal(try_create(f, &kf_kind_release, J(s), &causes), -KF_EINVALID);
    assert_cause(&causes, field, type, text);
    kf_causes_release(&causes);
    free(s);
}

#define assert_refused(f, spec, field, text) \
    assert_refused_t(f, spec, field, "FieldValueInvalid", text)

static const char *rel_phase(struct fx *f, const char *name, json_t **keep)
{
    json_t *r = get(f, &kf_kind_release, name);
    static __thread char buf[64];

    snprintf(buf, sizeof(buf), "%s", kf_json_str(r, "status.phase", ""));
    if (keep)
        *keep = r;
    else
        json_decref(r);
    return buf;
}

/* Pokes the controller after the fake clock moved (a metadata change). */
static void poke(struct fx *f, const char *name)
{
    static int n;
    char *p = kf_xasprintf("{'metadata':{'annotations':{'test/poke':'%d'}}}", ++n);

    patch(f, &kf_kind_release, name, p, false);
    free(p);
}

/* --- admission -------------------------------------------------------------------- */

static void test_admission(void **state)
{
    struct fx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;

    assert_refused(f, "{'version':'1.37','waves':[{'name':'all'}]}", "spec.selector",
                   "selects no GuestCluster");
    clusters(f, "x", 4, "u1", 0);
    assert_refused(f,
                   "{'version':'1.37','selector':{'matchLabels':{'tier':'gold'}},"
                   "'waves':[{'name':'all'}]}",
                   "spec.selector", "selects no GuestCluster");
    assert_refused_t(f, "{'version':'1.99','waves':[{'name':'all'}]}", "spec.version",
                     "FieldValueNotSupported", "component catalog");
    assert_refused(f,
                   "{'version':'1.37','waves':[{'name':'a','clusters':['x-0','x-1']},"
                   "{'name':'b','selector':{'matchLabels':{'tier':'even'}}},{'name':'c'}]}",
                   "spec.waves[1]", "waves overlap: cluster \"x-0\" is in wave \"a\"");
    assert_refused_t(f, "{'version':'1.37','template':'std','waves':[{'name':'all'}]}",
                     "spec.version", "FieldValueRequired", "exactly one of spec.version");
    assert_refused(f, "{'version':'1.37','waves':[{'name':'r'},{'name':'c','clusters':['x-0']}]}",
                   "spec.waves[0]", "only the last wave may");
    assert_refused(f,
                   "{'version':'1.37','waves':[{'name':'p','percent':60},"
                   "{'name':'q','percent':50}]}",
                   "spec.waves", "add up to 110%");
    assert_refused(f,
                   "{'version':'1.37','waves':[{'name':'all'}],'healthGate':{'alerts':"
                   "['Up\\\"} or vector(1) #']}}",
                   "spec.healthGate.alerts[0]", "invalid alert name");
    assert_refused(f, "{'version':'1.37','waves':[{'name':'c','clusters':['nope']},{'name':'r'}]}",
                   "spec.waves[0].clusters[0]", "cluster \"nope\" is not a GuestCluster");
    assert_refused(f, "{'version':'1.37','waves':[{'name':'all','maxConcurrency':0}]}",
                   "spec.waves[0].maxConcurrency", "");
    create(f, &kf_kind_template,
           J("{'apiVersion':'kfleet.io/v1','kind':'Template','metadata':"
             "{'name':'std'},'spec':{'profile':'standard'}}"));
    assert_refused(f, "{'template':'std','waves':[{'name':'all'}]}", "spec.template",
                   "names no version");
    assert_refused_t(f, "{'template':'gone','waves':[{'name':'all'}]}", "spec.template",
                     "FieldValueNotFound", "Template \"gone\"");
    patch(f, &kf_kind_guestcluster, "x-3", "{'status':{'version':'1.35'}}", true);
    assert_refused(f, "{'version':'1.37','waves':[{'name':'all'}]}", "spec.version",
                   "cluster \"x-3\" runs 1.35: moving it to 1.37 would skip a minor");
    /* a good one, then an abort that is undone */
    release(f, "ok",
            "{'version':'1.37','selector':{'matchLabels':{'tier':'even'}},"
            "'waves':[{'name':'all'}],'paused':true}");
    patch(f, &kf_kind_release, "ok", "{'spec':{'abort':true}}", false);
    {
        struct kf_strbuf err = KF_STRBUF_INIT;
        const char *p = "{\"spec\":{\"abort\":false}}";

        assert_int_equal(kf_registry_patch(f->reg, &kf_kind_release, "ok", KF_PATCH_MERGE, p,
                                           strlen(p), false, NULL, &causes, &err),
                         -KF_EINVALID);
        assert_cause(&causes, "spec.abort", "FieldValueForbidden", "stays aborted");
        kf_strbuf_release(&err);
    }
    kf_causes_release(&causes);
}

/* --- 10,000 clusters ---------------------------------------------------------------- */

struct check {
    json_t *rel;
    size_t max[KF_RELEASE_MAX_WAVES];
    bool mondays_open; /* the fake clock is inside the Monday window */
    int64_t gen;       /* a cluster's generation before the release (0: 1) */
};

/* What a user sees after each step: per wave, never more upgrading than
 * maxConcurrency; no wave upgrading while an earlier one has clusters not
 * done; no cluster outside its window started; none written twice. */
static void check_fleet(const json_t *items, const struct check *ck)
{
    size_t n = json_array_size(items), inflight[KF_RELEASE_MAX_WAVES] = { 0 };
    size_t undone[KF_RELEASE_MAX_WAVES] = { 0 };
    const json_t **cs = kf_xcalloc(n, sizeof(*cs));
    struct kf_release_plan plan;
    struct kf_causes causes = KF_CAUSES_INIT;

    for (size_t i = 0; i < n; i++)
        cs[i] = json_array_get(items, i);
    assert_int_equal(kf_release_plan(ck->rel, cs, n, TARGET, false, &plan, &causes), 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t w = plan.wave_of[i];

        /* the release writes a cluster once: one generation more at most */
        assert_true(kf_obj_generation(cs[i]) <= (ck->gen ? ck->gen : 1) + 1);
        if (kf_json_path(cs[i], "spec.maintenanceWindow") && !ck->mondays_open)
            assert_false(kf_streq(kf_json_str(cs[i], "spec.version", NULL), TARGET));
        if (w == KF_RELEASE_NO_WAVE)
            continue;
        inflight[w] += upgrading(cs[i]);
        undone[w] += !kf_streq(kf_json_str(cs[i], "status.version", NULL), TARGET);
    }
    for (size_t w = 0; w < plan.n_waves; w++) {
        if (inflight[w] > ck->max[w])
            fail_msg("wave %zu has %zu clusters upgrading, maxConcurrency %zu", w, inflight[w],
                     ck->max[w]);
        for (size_t e = 0; e < w; e++)
            if (inflight[w] && undone[e])
                fail_msg("wave %zu upgrades while wave %zu has %zu clusters not done", w, e,
                         undone[e]);
    }
    kf_release_plan_release(&plan);
    kf_causes_release(&causes);
    free(cs);
}

/* Moves the fleet until the release completes, checking after each step;
 * with `restart`, the controller is stopped and started again (kfleetd
 * killed) between steps. Returns the steps taken. */
static int drive(struct fx *f, const char *name, struct check *ck, bool restart)
{
    for (int step = 0; step < 400; step++) {
        json_t *rel, *items;
        const char *state;
        size_t finished;

        settle(f);
        items = list_clusters(f);
        check_fleet(items, ck);
        if (!strcmp(rel_phase(f, name, &rel), KF_REL_PHASE_COMPLETED)) {
            json_decref(items);
            json_decref(rel);
            return step;
        }
        assert_string_equal(kf_json_str(rel, "status.phase", ""), KF_REL_PHASE_PROGRESSING);
        state = kf_json_str(json_array_get(kf_json_path(rel, "status.waves"),
                                           (size_t)kf_json_int(rel, "status.currentWave", 0)),
                            "state", "");
        if (restart)
            stop_controller(f);
        finished = finish_listed(f, items, NULL);
        json_decref(items);
        if (finished == 0) {
            if (!strcmp(state, "Baking")) {
                advance(10 * 60 * 1000 + 1000);
            } else {
                /* nothing upgrading and not baking: only windows hold it */
                assert_true(kf_json_int(rel, "status.clusters.waitingForWindow", 0) > 0);
                assert_false(ck->mondays_open);
                ctrl_test_clock_set(CTRL_TEST_START_MS + 4 * 86400000LL +
                                    59 * 60000LL); /* Monday 00:59 */
                ck->mondays_open = true;
            }
            if (!restart)
                poke(f, name);
        }
        if (restart)
            start_controller(f);
        json_decref(rel);
    }
    fail_msg("the release did not complete");
    return -1;
}

static void test_ten_thousand(void **state)
{
    struct fx *f = *state;
    struct check ck = { .max = { 1, 50, 250, 2000 } };
    json_t *rel, *items, *gc;
    size_t i;

    clusters(f, "a", 200, "u1", 0);
    clusters(f, "b", 9800, "u2", 97);
    release(f, "big",
            "{'version':'1.37','waves':["
            "{'name':'canary','clusters':['b-1','b-2','b-3'],'bakeTime':'10m'},"
            "{'name':'unit-u1','units':['u1'],'maxConcurrency':50},"
            "{'name':'ten-percent','percent':10,'maxConcurrency':'25%'},"
            "{'name':'rest','maxConcurrency':2000}]}");
    ck.rel = get(f, &kf_kind_release, "big");
    drive(f, "big", &ck, false);
    assert_true(ck.mondays_open);
    rel_phase(f, "big", &rel);
    assert_int_equal(kf_json_int(rel, "status.clusters.total", 0), 10000);
    assert_int_equal(kf_json_int(rel, "status.clusters.updated", 0), 10000);
    assert_int_equal(kf_json_int(rel, "status.clusters.failed", -1), 0);
    assert_int_equal(
        kf_json_int(json_array_get(kf_json_path(rel, "status.waves"), 2), "clusters", 0), 1000);
    /* every cluster was written exactly once, and says by which release */
    items = list_clusters(f);
    json_array_foreach(items, i, gc)
    {
        assert_int_equal(kf_obj_generation(gc), 2);
        assert_string_equal(kf_json_str(gc, "metadata.annotations.kfleet\\.io/release", "big"),
                            "big");
    }
    json_decref(items);
    json_decref(rel);
    json_decref(ck.rel);
}

/* --- gate, failures, restart, abort ----------------------------------------------------- */

static void test_gate_pauses_at_canary(void **state)
{
    struct fx *f = *state;
    struct check ck = { .max = { 1, 5 }, .mondays_open = true };
    json_t *rel;

    clusters(f, "g", 6, "u1", 0);
    prom_fire("g-0");
    release(f, "gated",
            "{'version':'1.37','waves':[{'name':'canary','clusters':['g-0']},"
            "{'name':'rest','maxConcurrency':5}],"
            "'healthGate':{'alerts':['CanaryBroken'],'interval':'1s'}}");
    settle(f);
    advance(2000);
    poke(f, "gated");
    settle(f);
    assert_string_equal(rel_phase(f, "gated", &rel), KF_REL_PHASE_PAUSED);
    assert_string_equal(kf_json_str(rel, "status.pause.reason", ""), "HealthGateFailed");
    assert_non_null(strstr(kf_json_str(rel, "status.pause.message", ""),
                           "CanaryBroken fires for cluster \"g-0\""));
    assert_true(kf_json_bool(rel, "spec.paused", false));
    json_decref(rel);
    /* the canary finishes; nothing else starts while paused */
    finish_upgrades(f, NULL);
    settle(f);
    assert_string_equal(rel_phase(f, "gated", NULL), KF_REL_PHASE_PAUSED);
    for (int i = 1; i < 6; i++) {
        char name[16];
        json_t *gc;

        snprintf(name, sizeof(name), "g-%d", i);
        gc = get(f, &kf_kind_guestcluster, name);
        assert_null(kf_json_str(gc, "spec.version", NULL));
        json_decref(gc);
    }
    /* the alert stops, the operator resumes: it goes on to the end */
    prom_fire(NULL);
    patch(f, &kf_kind_release, "gated", "{'spec':{'paused':false}}", false);
    ck.rel = get(f, &kf_kind_release, "gated");
    drive(f, "gated", &ck, false);
    json_decref(ck.rel);
}

static void test_failures_pause(void **state)
{
    struct fx *f = *state;
    struct check ck = { .max = { 10 }, .mondays_open = true };
    json_t *rel;

    clusters(f, "h", 12, "u1", 0);
    release(f, "budget", "{'version':'1.37','waves':[{'name':'all','maxConcurrency':10}]}");
    settle(f);
    finish_upgrades(f, "h-3");
    settle(f);
    assert_string_equal(rel_phase(f, "budget", &rel), KF_REL_PHASE_PAUSED);
    assert_string_equal(kf_json_str(rel, "status.pause.reason", ""), "MaxFailuresExceeded");
    assert_string_equal(
        kf_json_str(json_array_get(kf_json_path(rel, "status.failures"), 0), "cluster", ""), "h-3");
    json_decref(rel);
    patch(f, &kf_kind_release, "budget", "{'spec':{'paused':false}}", false);
    ck.rel = get(f, &kf_kind_release, "budget");
    drive(f, "budget", &ck, false);
    rel_phase(f, "budget", &rel);
    assert_int_equal(kf_json_int(rel, "status.clusters.failed", 0), 1);
    assert_int_equal(kf_json_int(rel, "status.clusters.updated", 0), 11);
    json_decref(rel);
    json_decref(ck.rel);
}

static void test_restart_resumes(void **state)
{
    struct fx *f = *state;
    struct check ck = { .max = { 2, 10 }, .mondays_open = true };

    clusters(f, "k", 40, "u1", 0);
    release(f, "again",
            "{'version':'1.37','waves':[{'name':'canary','clusters':['k-7','k-9'],"
            "'maxConcurrency':2,'bakeTime':'10m'},{'name':'rest','maxConcurrency':10}]}");
    ck.rel = get(f, &kf_kind_release, "again");
    assert_true(drive(f, "again", &ck, true) > 4);
    json_decref(ck.rel);
}

static void test_abort(void **state)
{
    struct fx *f = *state;
    json_t *items, *gc;
    size_t i, moved = 0;

    clusters(f, "z", 20, "u1", 0);
    release(f, "stop", "{'version':'1.37','waves':[{'name':'all','maxConcurrency':5}]}");
    settle(f);
    patch(f, &kf_kind_release, "stop", "{'spec':{'abort':true}}", false);
    settle(f);
    assert_string_equal(rel_phase(f, "stop", NULL), KF_REL_PHASE_ABORTED);
    finish_upgrades(f, NULL);
    settle(f);
    items = list_clusters(f);
    json_array_foreach(items, i, gc) moved +=
        kf_streq(kf_json_str(gc, "spec.version", NULL), TARGET);
    assert_int_equal(moved, 5);
    json_decref(items);
}

/* A Template's version rolled to the clusters that use it, and only them. */
static void test_template_release(void **state)
{
    struct fx *f = *state;
    struct check ck = { .max = { 4 }, .mondays_open = true, .gen = 2 };
    json_t *rel;

    create(f, &kf_kind_template,
           J("{'apiVersion':'kfleet.io/v1','kind':'Template','metadata':"
             "{'name':'std'},'spec':{'profile':'standard','version':"
             "'1.37'}}"));
    clusters(f, "t", 6, "u1", 0);
    for (int i = 0; i < 4; i++) {
        char name[16];

        snprintf(name, sizeof(name), "t-%d", i);
        patch(f, &kf_kind_guestcluster, name, "{'spec':{'template':'std'}}", false);
    }
    release(f, "tmpl", "{'template':'std','waves':[{'name':'all','maxConcurrency':4}]}");
    ck.rel = get(f, &kf_kind_release, "tmpl");
    drive(f, "tmpl", &ck, false);
    rel_phase(f, "tmpl", &rel);
    assert_string_equal(kf_json_str(rel, "status.targetVersion", ""), TARGET);
    assert_int_equal(kf_json_int(rel, "status.clusters.total", 0), 4);
    json_decref(rel);
    rel = get(f, &kf_kind_guestcluster, "t-5");
    assert_null(kf_json_str(rel, "spec.version", NULL));
    json_decref(rel);
    json_decref(ck.rel);
}

/* Upgrading clusters that never finish: the progress deadline pauses. */
static void test_progress_deadline(void **state)
{
    struct fx *f = *state;
    json_t *rel;

    clusters(f, "d", 3, "u1", 0);
    release(f, "slow",
            "{'version':'1.37','waves':[{'name':'all','maxConcurrency':3,"
            "'progressDeadline':'20m'}]}");
    settle(f);
    assert_string_equal(rel_phase(f, "slow", NULL), KF_REL_PHASE_PROGRESSING);
    advance(19 * 60 * 1000);
    poke(f, "slow");
    settle(f);
    assert_string_equal(rel_phase(f, "slow", NULL), KF_REL_PHASE_PROGRESSING);
    advance(2 * 60 * 1000);
    poke(f, "slow");
    settle(f);
    assert_string_equal(rel_phase(f, "slow", &rel), KF_REL_PHASE_PAUSED);
    assert_string_equal(kf_json_str(rel, "status.pause.reason", ""), "ProgressDeadlineExceeded");
    assert_non_null(strstr(kf_json_str(rel, "status.pause.message", ""), "3 still upgrading"));
    json_decref(rel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ten_thousand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_pauses_at_canary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_deadline, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
