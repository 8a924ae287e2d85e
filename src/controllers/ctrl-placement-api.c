/* ctrl-placement-api.c: the placement controller's two actions, served by
 * the API server (through kf_api_actions_add) while this controller runs (a leader
 * term), computed on the controller's own capacity model with the same
 * library calls the decisions use:
 *
 *   GET  /apis/kfleet.io/v1/guestclusters/NAME/explain
 *        every unit's verdict for the cluster: each filter passed or failed
 *        with the numbers, the score breakdown, the decision and the member
 *        bindings (kf_place_explain). A placed cluster is explained as if
 *        it were placed now, itself left out of its unit.
 *   POST /apis/kfleet.io/v1/plan
 *        {"region": R, "add": ["500xG1", {"grade": "G3", "count": 40}],
 *         "hostCPU": "64", "hostMemory": "256Gi", "maxUnitHosts": 0,
 *         "newUnitHosts": 9, "newUnitZones": 3}
 *        which existing units absorb how much, and how many hosts or new
 *        units the region needs at its water level (kf_plan).
 *
 * Both answer JSON with the structured result and "text", the table
 * `kfleet explain` and `kfleet plan` print. Viewers may call them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>

#include "kfleet/api-action.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-placement.h"

#define MAX_DEMAND 64

/* Bounds of a plan request: each is checked before anything is sized from
 * it, and named in the 400 that refuses it (a viewer may call plan, so
 * these are what keeps a viewer from making kfleetd allocate or compute
 * without limit). kf_plan checks its own bounds on what it builds. */
#define PLAN_MAX_COUNT      100000 /* clusters in one demand entry, and in all */
#define PLAN_MAX_UNIT_HOSTS 10000  /* maxUnitHosts, newUnitHosts */
#define PLAN_MAX_ZONES      KF_PLACE_MAX_ZONES
/* a host's shape: 10,000 hosts of it still add up within int64 */
#define PLAN_MAX_HOST_CPU_MILLI (1000000LL * 1000) /* 1,000,000 cores */
#define PLAN_MAX_HOST_MEMORY    (256LL << 40)      /* 256 TiB */

/* One plan at a time: a plan can take a second of CPU, and request threads
 * also serve heartbeats. A second caller gets 429 and retries. */
static pthread_mutex_t plan_running = PTHREAD_MUTEX_INITIALIZER;

static double r3(double x)
{
    return x != x || x > 1e9 ? -1 : (double)(int64_t)(x * 1000 + 0.5) / 1000;
}

static json_t *verdict_json(const struct kf_place_explain *e, const struct kf_place_unit *u,
                            size_t i, const struct kf_place_policy *pol)
{
    const struct kf_place_verdict *v = &e->verdicts[i];
    json_t *failed = json_array(), *scores = json_object();
    const char *verdict = (int)i == e->chosen ? "Chosen" : v->failed ? NULL : "Fits";
    json_t *o;

    for (int f = 0; f < KF_FILTER_COUNT; f++)
        if (v->failed & (1u << f))
            json_array_append_new(failed, json_string(kf_place_filter_name(f)));
    if (!verdict)
        verdict = kf_place_filter_name(__builtin_ctz(v->failed));
    u = &u[i];
    o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:{s:f, s:f}, s:{s:f, s:f}, s:f}", "unit", u->name,
                  "region", u->region ? u->region : "", "verdict", verdict, "failed", failed,
                  "reason", v->reason, "cpu", "now", r3(v->cpu_now), "after", r3(v->cpu_after),
                  "memory", "now", r3(v->mem_now), "after", r3(v->mem_after), "mark", v->mark);
    if (!(v->failed & ~(1u << KF_FILTER_HOSTS))) {
        for (int s = 0; s < KF_SCORE_COUNT; s++)
            if (pol->weights[s])
                json_object_set_new(scores, kf_place_score_name(s),
                                    json_pack("{s:f, s:i}", "score", v->score[s] / 10.0, "weight",
                                              (int)pol->weights[s]));
        json_object_set_new(o, "scores", scores);
        json_object_set_new(o, "total", json_real(v->total / 10.0));
    } else {
        json_decref(scores);
    }
    return o;
}

static int explain(void *arg, const struct kf_api_call *call, json_t **ret, struct kf_strbuf *err)
{
    struct place_ctrl *d = arg;
    json_t *cluster = NULL, *units_json, *out = NULL;
    struct kf_place_settings s;
    struct kf_strbuf gwhy = KF_STRBUF_INIT, text = KF_STRBUF_INIT;
    struct kf_grade_spec shape;
    struct kf_place_cluster c;
    struct kf_place_explain ex;
    struct kf_placer placer;
    struct cap_units us;
    struct place_input_bufs bufs;
    const char *reason, *placed;
    int grade, r;

    if (kf_informer_get(d->clusters, call->name, &cluster) < 0)
        return kf_err(err, -KF_ENOTFOUND, "guestclusters.kfleet.io \"%s\" not found", call->name);
    r = kf_place_settings(d, cluster, &s, &reason, err);
    if (r < 0) {
        kf_place_settings_release(&s);
        json_decref(cluster);
        return r; /* the message says what to fix */
    }
    placed = kf_json_str(cluster, "status.unit", NULL);
    grade = kf_grade_parse(kf_json_str(cluster, "status.grade", ""));
    if (grade < 0 || !placed)
        grade = kf_grade_decide(&d->grades, s.explicit_grade, s.nodes, s.pods, -1, &gwhy);
    else
        kf_strbuf_addf(&gwhy, "%s: the grade it runs at", kf_grade_name(grade));
    kf_place_shape(&d->grades, grade, s.profile, s.simulated_nodes, &shape);
    kf_place_cluster_input(cluster, &s, grade, &shape, &c, &bufs);
    kf_placer_init(&placer, &d->policy);

    pthread_mutex_lock(&d->model->lock);
    kf_cap_units_build(d->model, &d->policy, NULL, call->name, &us);
    kf_place_explain(&placer, us.units, us.n, &c, &ex);
    if (placed)
        kf_strbuf_addf(&text,
                       "cluster %s is placed in unit %s; below is the decision placement would "
                       "make now, the cluster itself left out\n",
                       call->name, placed);
    kf_strbuf_addf(&text, "grade %s\n", gwhy.buf);
    kf_place_explain_format(&ex, us.units, &c, &d->policy, &text);
    if (ex.chosen >= 0) {
        kf_strbuf_addstr(&text, "members:\n");
        kf_place_bindings_format(&us.units[ex.chosen], &c, &ex.result, &text);
    }
    units_json = json_array();
    for (size_t i = 0; i < us.n; i++)
        if (kf_streq(us.units[i].region, c.region))
            json_array_append_new(units_json, verdict_json(&ex, us.units, i, &d->policy));
    out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:o, s:s}", "apiVersion",
                    KF_API_VERSION, "kind", "PlacementExplanation", "cluster", call->name, "region",
                    c.region ? c.region : "", "grade", kf_grade_name(grade), "requests",
                    kf_cap_res_json(kf_grade_total(&shape)), "chosen",
                    ex.chosen >= 0 ? json_string(us.units[ex.chosen].name) : json_null(),
                    "decision", ex.result.message, "units", units_json, "text", text.buf);
    json_object_set_new(out, "placedIn", placed ? json_string(placed) : json_null());
    json_object_set_new(out, "gradeReason", json_string(gwhy.buf));
    kf_place_explain_release(&ex);
    kf_cap_units_release(&us);
    pthread_mutex_unlock(&d->model->lock);

    kf_placer_release(&placer);
    kf_place_input_bufs_release(&bufs);
    kf_place_settings_release(&s);
    json_decref(cluster);
    kf_strbuf_release(&gwhy);
    kf_strbuf_release(&text);
    *ret = out;
    return 0;
}

static int parse_demand(const json_t *add, struct kf_plan_demand *dem, size_t *n,
                        struct kf_strbuf *err)
{
    size_t i;
    json_t *v;

    *n = 0;
    if (!json_is_array(add) || !json_array_size(add))
        return kf_err(err, -KF_EBADREQUEST,
                      "\"add\" must list the demand: [\"500xG1\", {\"grade\": \"G3\", \"count\": "
                      "40}]");
    json_array_foreach(add, i, v)
    {
        int64_t count = -1;
        int g = -1;

        if (*n >= MAX_DEMAND)
            return kf_err(err, -KF_EBADREQUEST, "at most %d entries in \"add\"", MAX_DEMAND);
        if (json_is_string(v)) {
            const char *s = json_string_value(v), *x = strchr(s, 'x');
            char num[32];

            if (x && (size_t)(x - s) < sizeof(num)) {
                snprintf(num, sizeof(num), "%.*s", (int)(x - s), s);
                if (kf_parse_int64(num, &count) < 0)
                    count = -1;
                g = kf_grade_parse(x + 1);
            }
        } else if (json_is_object(v)) {
            count = json_is_integer(json_object_get(v, "count"))
                        ? json_integer_value(json_object_get(v, "count"))
                        : -1;
            g = kf_grade_parse(kf_json_str(v, "grade", ""));
        }
        if (g < 0 || count < 1 || count > PLAN_MAX_COUNT)
            return kf_err(err, -KF_EBADREQUEST,
                          "add[%zu]: expected \"COUNTxGRADE\" (\"500xG1\") or {\"grade\": \"G1\", "
                          "\"count\": 500} with a count of 1..%d",
                          i, PLAN_MAX_COUNT);
        dem[(*n)++] = (struct kf_plan_demand){ .grade = g, .count = (unsigned)count };
    }
    return 0;
}

/* The plan request from the body, every number checked against its
 * bound before it sizes anything: the demand, the unit sizes and the host
 * shape (*cpu and *mem: milli-units, -1 when absent). */
static int plan_request(const json_t *b, struct kf_plan_demand *dem, struct kf_plan_request *req,
                        int64_t *cpu, int64_t *mem, struct kf_strbuf *err)
{
    static const struct {
        const char *key;
        int64_t max;
    } counts[] = {
        { "newUnitHosts", PLAN_MAX_UNIT_HOSTS },
        { "newUnitZones", PLAN_MAX_ZONES },
        { "maxUnitHosts", PLAN_MAX_UNIT_HOSTS },
    };
    uint64_t total = 0;
    int r = parse_demand(b ? json_object_get(b, "add") : NULL, dem, &req->n_demand, err);

    if (r < 0)
        return r;
    for (size_t i = 0; i < req->n_demand; i++)
        total += dem[i].count;
    if (total > PLAN_MAX_COUNT)
        return kf_err(err, -KF_EBADREQUEST,
                      "\"add\" asks for %llu clusters; a plan takes at most %d in all",
                      (unsigned long long)total, PLAN_MAX_COUNT);
    for (size_t i = 0; i < KF_ARRAY_SIZE(counts); i++) {
        json_t *j = json_object_get(b, counts[i].key);
        int64_t v;

        if (!j)
            continue;
        v = json_is_integer(j) ? json_integer_value(j) : -1;
        if (v < 0 || v > counts[i].max)
            return kf_err(err, -KF_EBADREQUEST, "\"%s\" must be an integer from 0 to %lld",
                          counts[i].key, (long long)counts[i].max);
    }
    *cpu = b ? kf_cap_qty_milli(json_object_get(b, "hostCPU")) : -1;
    *mem = b ? kf_cap_qty_milli(json_object_get(b, "hostMemory")) : -1;
    if (json_object_get(b, "hostCPU") && (*cpu <= 0 || *cpu > PLAN_MAX_HOST_CPU_MILLI))
        return kf_err(err, -KF_EBADREQUEST,
                      "\"hostCPU\" must be a positive quantity (\"64\") of at most %lld cores",
                      (long long)PLAN_MAX_HOST_CPU_MILLI / 1000);
    if (json_object_get(b, "hostMemory") && (*mem <= 0 || *mem / 1000 > PLAN_MAX_HOST_MEMORY))
        return kf_err(err, -KF_EBADREQUEST,
                      "\"hostMemory\" must be a positive quantity (\"256Gi\") of at most 256Ti");
    req->demand = dem;
    req->new_unit_hosts = (unsigned)KF_MAX(kf_json_int(b, "newUnitHosts", 0), 0);
    req->new_unit_zones = (unsigned)KF_MAX(kf_json_int(b, "newUnitZones", 0), 0);
    req->max_unit_hosts = (unsigned)KF_MAX(kf_json_int(b, "maxUnitHosts", 0), 0);
    return 0;
}

/* The CapacityPlan object a plan answers with. */
static json_t *plan_json(const struct kf_plan_request *req, const struct kf_plan_result *res,
                         const char *text)
{
    json_t *lines = json_array(), *out, *unp = json_object();

    for (size_t i = 0; i < res->n_lines; i++) {
        const struct kf_plan_line *l = &res->lines[i];
        json_t *abs = json_object();

        for (int g = 0; g < KF_GRADE_COUNT; g++)
            if (l->absorbed[g])
                json_object_set_new(abs, kf_grade_name(g), json_integer(l->absorbed[g]));
        json_array_append_new(
            lines, json_pack("{s:s, s:b, s:o, s:i, s:i, s:{s:f, s:f}, s:{s:f, s:f}, s:f}", "unit",
                             l->name, "new", l->is_new, "absorbs", abs, "hostsBefore",
                             (int)l->hosts_before, "hostsAdded", (int)l->hosts_added, "cpu", "now",
                             r3(l->cpu_before), "then", r3(l->cpu_after), "memory", "now",
                             r3(l->mem_before), "then", r3(l->mem_after), "mark", l->mark));
    }
    out = json_pack("{s:s, s:s, s:s, s:o, s:o, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s}",
                    "apiVersion", KF_API_VERSION, "kind", "CapacityPlan", "region", req->region,
                    "hostShape", kf_cap_res_json(req->host_shape), "units", lines, "demanded",
                    (int)res->demanded, "absorbedExisting", (int)res->absorbed_existing,
                    "absorbedGrown", (int)res->absorbed_grown, "absorbedNew",
                    (int)res->absorbed_new, "hostsAdded", (int)res->hosts_added, "newUnits",
                    (int)res->new_units, "newUnitHosts", (int)res->new_unit_hosts, "text", text);
    for (int g = 0; g < KF_GRADE_COUNT; g++)
        if (res->unplaceable[g])
            json_object_set_new(unp, kf_grade_name(g), json_integer(res->unplaceable[g]));
    json_object_set_new(out, "unplaceable", unp);
    json_object_set_new(out, "unplanned", json_integer(res->unplanned));
    return out;
}

static int plan(void *arg, const struct kf_api_call *call, json_t **ret, struct kf_strbuf *err)
{
    struct place_ctrl *d = arg;
    const json_t *b = call->body;
    struct kf_plan_demand dem[MAX_DEMAND];
    struct kf_plan_request req = { 0 };
    struct kf_plan_result res = { 0 };
    struct kf_strbuf text = KF_STRBUF_INIT;
    struct kf_placer placer;
    struct cap_units us;
    const char *region = b ? kf_json_str(b, "region", NULL) : NULL;
    int64_t cpu = -1, mem = -1;
    bool region_known;
    int r;

    if (!region)
        return kf_err(err, -KF_EBADREQUEST, "\"region\" is required");
    r = plan_request(b, dem, &req, &cpu, &mem, err);
    if (r < 0)
        return r;
    req.region = region;
    req.grades = &d->grades;
    if (pthread_mutex_trylock(&plan_running) != 0)
        return kf_err(err, -KF_ETOOMANY, "another plan is being computed; try again in a moment");
    kf_placer_init(&placer, &d->policy);

    /* The plan runs on a snapshot: the lock that placement needs is held
     * only while the region's units are copied. */
    pthread_mutex_lock(&d->model->lock);
    region_known = kf_smap_contains(&d->model->regions, region);
    kf_cap_units_build(d->model, &d->policy, region, NULL, &us);
    kf_cap_units_detach(&us);
    pthread_mutex_unlock(&d->model->lock);
    req.units = us.units;
    req.n_units = us.n;
    req.host_shape = us.n ? kf_cap_unit_host_shape(&us.units[0], d->default_host) : d->default_host;
    if (cpu > 0)
        req.host_shape.cpu_milli = cpu;
    if (mem > 0)
        req.host_shape.mem_bytes = mem / 1000;
    if (!region_known && !us.n)
        r = kf_err(err, -KF_ENOTFOUND, "region \"%s\" not found (kfleet get regions lists them)",
                   region);
    else
        r = kf_plan(&placer, &req, &res, err);
    if (r == 0) {
        kf_plan_format(&req, &res, &text);
        *ret = plan_json(&req, &res, text.buf);
    }
    kf_plan_result_release(&res);
    kf_cap_units_release(&us);
    kf_placer_release(&placer);
    kf_strbuf_release(&text);
    pthread_mutex_unlock(&plan_running);
    return r == -EINVAL ? -KF_EBADREQUEST : r;
}

void kf_place_api_bind(struct place_ctrl *d)
{
    const struct kf_api_action ex = {
        .method = "GET",
        .kind = &kf_kind_guestcluster,
        .name = "explain",
        .roles = KF_API_ROLES_ALL,
        .fn = explain,
        .arg = d,
    };
    const struct kf_api_action pl = {
        .method = "POST",
        .kind = NULL,
        .name = "plan",
        .roles = KF_API_ROLE_ADMIN | KF_API_ROLE_EDITOR | KF_API_ROLE_VIEWER,
        .fn = plan,
        .arg = d,
    };

    if (!d->actions)
        return;
    kf_api_actions_add(d->actions, &ex);
    kf_api_actions_add(d->actions, &pl);
    kf_place_move_bind(d);
}

void kf_place_api_unbind(struct place_ctrl *d)
{
    if (!d->actions)
        return;
    kf_api_actions_remove(d->actions, "GET", &kf_kind_guestcluster, "explain");
    kf_api_actions_remove(d->actions, "POST", NULL, "plan");
    kf_place_move_unbind(d);
}

/* For tests without a server. */
int kf_ctrl_placement_explain(void *data, const char *name, json_t **ret, struct kf_strbuf *err)
{
    struct kf_api_call call = { .method = "GET", .name = name };

    return explain(data, &call, ret, err);
}

int kf_ctrl_placement_plan(void *data, const json_t *body, json_t **ret, struct kf_strbuf *err)
{
    struct kf_api_call call = { .method = "POST", .body = body };

    return plan(data, &call, ret, err);
}
