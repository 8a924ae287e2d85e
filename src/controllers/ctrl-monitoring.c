/* ctrl-monitoring.c: the monitoring controller.
 *
 * Two jobs:
 *
 * 1. Fleet-state metrics on kfleetd's /metrics (the kube-state-metrics of
 *    this system): guest clusters by phase, grade and unit; unit capacity,
 *    allocation, requests ratio and water level; hosts and ready hosts per
 *    unit and zone. The watch handlers keep small aggregates up to date as
 *    objects change, so a scrape never walks the store or parses objects
 *    (ctrl-monitoring-state.c).
 *
 * 2. With kfleetd --monitoring=external|local, the three-tier stack's
 *    configuration: on any change of a Region, Unit, Host,
 *    ControlPlaneMember, AlertReceiver or AlertRoute (and every 10 s while
 *    a guest cluster's Kubernetes members wait for the monitoring identity
 *    in its PKI, which is not an object) it rebuilds the
 *    monitoring model (struct kf_obs_fleet, ctrl-monitoring-model.c), renders every
 *    instance under <data-dir>/monitoring/ (checked with promtool/amtool
 *    whenever an instance's structure changed), reloads the instances whose
 *    structure changed (POST /-/reload, then the reload-success metric),
 *    removes the folders of instances that no longer exist, hands the
 *    receivers to the adapter, and in local mode makes the process runner
 *    run exactly the stack. What it did is recorded as Events (Rendered,
 *    Reloaded, RenderRefused, ReloadFailed, InstanceRemoved,
 *    MonitoringModelInvalid). Renders run at most once a second: every key
 *    stands for "the whole fleet".
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kfleet/controllers.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/file.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/monitoring.h"
#include "kfleet/obj.h"
#include "kfleet/json.h"
#include "kfleet/registry.h"
#include "kfleet/obs.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-monitoring.h"
#include "controllers/ctrl-members.h"

KF_LOG_MODULE(monitoring);

#define FLEET_KEY      "fleet"
#define MIN_PERIOD_MS  1000
#define RETRY_LOCAL_MS 2000
#define RETRY_EXT_MS   30000
/* a guest cluster whose Kubernetes members wait for their monitoring identity */
#define IDENTITY_RETRY_MS 10000

static void map_fleet(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct monctl *mc = kf_ctrl_data(c);

    kf_monstate_update(&mc->state, obj, deleted);
    if (mc->mon)
        kf_ctrl_enqueue(c, FLEET_KEY);
}

static int mon_setup(struct kf_ctrl *c)
{
    static const struct kf_kind *const kinds[] = {
        &kf_kind_region,       &kf_kind_unit,
        &kf_kind_host,         &kf_kind_controlplanemember,
        &kf_kind_guestcluster, &kf_kind_alertreceiver,
        &kf_kind_alertroute,
    };
    struct monctl *mc = kf_ctrl_data(c);
    struct kf_ctrl_manager *m = kf_ctrl_manager_of(c);
    int r = 0;

    mc->c = c;
    r = kf_ctrl_members_informer(m, NULL); /* the cache's projection: spec and status kept */
    for (size_t i = 0; r == 0 && i < KF_ARRAY_SIZE(kinds); i++) {
        mc->inf[i] = kf_ctrl_informer(m, kinds[i]);
        r = kf_ctrl_watch(c, kinds[i], map_fleet);
    }
    /* the central pair and Alertmanagers exist before any object does */
    if (r == 0 && mc->mon)
        kf_ctrl_enqueue(c, FLEET_KEY);
    return r;
}

/* --- events ----------------------------------------------------------- */

/* The object an instance's events are about: the Unit of an edge, the
 * Region of a cascade, else the instance itself. */
static json_t *involved(struct monctl *mc, const struct monmodel *mm, const char *instance,
                        enum kf_obs_tier tier)
{
    const char *owner = kf_monmodel_owner(mm, instance);

    if (owner && tier == KF_OBS_TIER_EDGE)
        return json_pack("{s:s,s:{s:s}}", "kind", "Unit", "metadata", "name", owner);
    if (owner && tier == KF_OBS_TIER_CASCADE)
        return json_pack("{s:s,s:{s:s}}", "kind", "Region", "metadata", "name", owner);
    (void)mc;
    return json_pack("{s:s,s:{s:s}}", "kind", "MonitoringInstance", "metadata", "name", instance);
}

static void event(struct monctl *mc, const struct monmodel *mm, const char *instance,
                  enum kf_obs_tier tier, bool warning, const char *reason, const char *fmt, ...)
    KF_PRINTF(7, 8);

static void event(struct monctl *mc, const struct monmodel *mm, const char *instance,
                  enum kf_obs_tier tier, bool warning, const char *reason, const char *fmt, ...)
{
    json_t *obj = involved(mc, mm, instance, tier);
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = kf_xvasprintf(fmt, ap);
    va_end(ap);
    if (warning)
        kf_log_warn("%s: %s", instance, msg);
    else
        kf_log_info("%s: %s", instance, msg);
    kf_recorder_event(mc->rec, obj, warning ? KF_EVENT_WARNING : KF_EVENT_NORMAL, reason, msg);
    free(msg);
    json_decref(obj);
}

/* --- rendering -------------------------------------------------------- */

/* A digest of an instance's non-target files: a change means promtool /
 * amtool must look at it before it goes live. */
static uint64_t structure_hash(const struct kf_obs_files *files, const char *instance)
{
    size_t nl = strlen(instance);
    uint64_t h = KF_FNV1A_BASIS_V0;

    for (size_t i = 0; i < files->n; i++) {
        const struct kf_obs_file *f = &files->items[i];

        if (f->targets || strncmp(f->path, instance, nl) != 0 || f->path[nl] != '/')
            continue;
        h = kf_fnv1a_str(h, f->path);
        h = kf_fnv1a(h, f->content, f->len);
        h = (h ^ f->mode) * 1099511628211ull;
    }
    return h;
}

/* Removes instance folders under the root that the model no longer has. */
static void remove_stale(struct monctl *mc, const struct monmodel *mm)
{
    const char *root = kf_mon_root(mc->mon);
    DIR *d = opendir(root);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        enum kf_obs_tier tier;
        char *path, *cfg1, *cfg2;
        bool ours;

        if (e->d_name[0] == '.' || kf_obs_fleet_find_instance(&mm->fleet, e->d_name, &tier) == 0)
            continue;
        path = kf_xasprintf("%s/%s", root, e->d_name);
        cfg1 = kf_xasprintf("%s/prometheus.yml", path);
        cfg2 = kf_xasprintf("%s/alertmanager.yml", path);
        ours = access(cfg1, F_OK) == 0 || access(cfg2, F_OK) == 0;
        if (ours) {
            if (kf_remove_tree(path) == 0)
                event(mc, mm, e->d_name, KF_OBS_TIER_CENTRAL, false, "InstanceRemoved",
                      "removed the folder of monitoring instance %s, which the fleet no longer "
                      "has",
                      e->d_name);
            else
                kf_log_warn("cannot remove %s: %s", path, strerror(errno));
        }
        free(cfg1);
        free(cfg2);
        free(path);
    }
    closedir(d);
}

/* Renders every instance; fills mc->pending with those to reload. */
static void render_all(struct monctl *mc, const struct monmodel *mm)
{
    const char *root = kf_mon_root(mc->mon);
    struct kf_obs_files all = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    char **names = NULL;
    size_t n;

    if (kf_obs_gen_all(&mm->fleet, root, &all, &err) < 0) {
        kf_log_warn("cannot render the monitoring stack: %s", err.buf);
        kf_strbuf_release(&err);
        return;
    }
    n = kf_monmodel_instances(mm, &names);
    for (size_t i = 0; i < n; i++) {
        struct kf_obs_change ch = { 0 };
        enum kf_obs_tier tier = KF_OBS_TIER_CENTRAL;
        uint64_t h = structure_hash(&all, names[i]);
        json_t *old = json_object_get(mc->hashes, names[i]);
        bool check = !json_is_integer(old) || (uint64_t)json_integer_value(old) != h;
        int r;

        kf_obs_fleet_find_instance(&mm->fleet, names[i], &tier);
        kf_strbuf_reset(&err);
        r = kf_obs_render_instance(&mm->fleet, names[i], root, check, &ch, &err);
        if (r < 0) {
            json_object_del(mc->hashes, names[i]);
            event(mc, mm, names[i], tier, true, "RenderRefused",
                  "the new configuration was refused and the old one keeps running: %s", err.buf);
            continue;
        }
        json_object_set_new(mc->hashes, names[i], json_integer((json_int_t)h));
        if (ch.structure) {
            event(mc, mm, names[i], tier, false, "Rendered",
                  "rendered and checked %s (%u files written, %u removed): configuration changed",
                  names[i], ch.written, ch.removed);
            json_object_set_new(mc->pending, names[i], json_integer(tier));
        } else if (ch.targets) {
            kf_log_dbg("%s: targets changed (%u files)", names[i], ch.written);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    kf_obs_files_release(&all);
    kf_strbuf_release(&err);
}

/* Reloads what is pending; returns the delay to come back after (0: none). */
static int64_t reload_pending(struct monctl *mc, const struct monmodel *mm,
                              const json_t *was_running)
{
    bool local = kf_mon_config(mc->mon)->mode == KF_MON_LOCAL;
    struct kf_strbuf err = KF_STRBUF_INIT;
    int64_t again = 0;
    const char *name;
    json_t *v;
    void *tmp;

    json_object_foreach_safe(mc->pending, tmp, name, v)
    {
        enum kf_obs_tier tier = (enum kf_obs_tier)json_integer_value(v);
        const char *listen = kf_monmodel_listen(mm, name);
        int r;

        if (!listen) { /* gone from the model */
            json_object_del(mc->pending, name);
            continue;
        }
        if (local && !json_is_true(json_object_get(was_running, name))) {
            /* started by this reconcile (or starting): it reads the new files */
            if (kf_mon_stack_running(mc->mon, name) || !json_object_get(was_running, name))
                json_object_del(mc->pending, name);
            continue;
        }
        kf_strbuf_reset(&err);
        r = kf_mon_reload(listen, tier, &err);
        if (r == 0) {
            event(mc, mm, name, tier, false, "Reloaded", "%s reloaded its configuration (%s)", name,
                  listen);
            json_object_del(mc->pending, name);
        } else if (r == -EINVAL) {
            event(mc, mm, name, tier, true, "ReloadFailed", "%s", err.buf);
            json_object_del(mc->pending, name);
        } else {
            kf_log_info("%s: not reloaded yet: %s", name, err.buf);
            again = local ? RETRY_LOCAL_MS : RETRY_EXT_MS;
        }
    }
    kf_strbuf_release(&err);
    return again;
}

/* AlertReceivers and AlertRoutes say in their status whether they are part
 * of the rendered configuration (condition Accepted), and why not. Written
 * only when it changes. */
static void write_conditions(struct monctl *mc, const struct monmodel *mm)
{
    static const struct {
        int inf;
        const struct kf_kind *kind;
    } kinds[] = { { MON_INF_RECEIVER, &kf_kind_alertreceiver },
                  { MON_INF_ROUTE, &kf_kind_alertroute } };
    struct kf_registry *reg = kf_ctrl_registry(mc->c);

    for (size_t k = 0; k < KF_ARRAY_SIZE(kinds) && reg; k++) {
        char **names = NULL;
        size_t n = kf_informer_names(mc->inf[kinds[k].inf], &names);

        for (size_t i = 0; i < n; i++) {
            const struct monproblem *p = NULL;
            json_t *obj = NULL, *cond, *patch;
            const char *status, *reason, *message;
            char now[40], *text;
            int64_t gen;

            for (size_t j = 0; j < mm->n_problems && !p; j++)
                if (strcmp(mm->problems[j].kind, kinds[k].kind->kind) == 0 &&
                    strcmp(mm->problems[j].name, names[i]) == 0)
                    p = &mm->problems[j];
            if (kf_informer_get(mc->inf[kinds[k].inf], names[i], &obj) < 0)
                continue;
            status = p ? "False" : "True";
            reason = p ? p->reason : "Rendered";
            message = p ? p->message : "part of the Alertmanager configuration kfleetd renders";
            gen = kf_obj_generation(obj);
            cond = json_array_get(kf_json_path(obj, "status.conditions"), 0);
            if (kf_streq(kf_json_str(cond, "type", NULL), "Accepted") &&
                kf_streq(kf_json_str(cond, "status", NULL), status) &&
                kf_streq(kf_json_str(cond, "reason", NULL), reason) &&
                kf_streq(kf_json_str(cond, "message", NULL), message) &&
                kf_json_int(obj, "status.observedGeneration", -1) == gen) {
                json_decref(obj);
                continue;
            }
            kf_time_format_rfc3339(kf_now_ms(), now, sizeof(now));
            patch = json_pack("{s:{s:I,s:[{s:s,s:s,s:s,s:s,s:I,s:s}]}}", "status",
                              "observedGeneration", (json_int_t)gen, "conditions", "type",
                              "Accepted", "status", status, "reason", reason, "message", message,
                              "observedGeneration", (json_int_t)gen, "lastTransitionTime",
                              kf_streq(kf_json_str(cond, "status", NULL), status)
                                  ? kf_json_str(cond, "lastTransitionTime", now)
                                  : now);
            text = json_dumps(patch, JSON_COMPACT);
            {
                struct kf_causes causes = KF_CAUSES_INIT;
                json_t *written = NULL;

                if (kf_registry_patch(reg, kinds[k].kind, names[i], KF_PATCH_MERGE, text,
                                      strlen(text), true, &written, &causes, NULL) < 0)
                    kf_log_dbg("%s %s: status not written", kinds[k].kind->kind, names[i]);
                json_decref(written);
                kf_causes_release(&causes);
            }
            free(text);
            json_decref(patch);
            json_decref(obj);
        }
        kf_ctrl_names_free(names, n);
    }
}

/* An Alertmanager deduplicates only once it sees every peer (lab §0.7:
 * /-/ready answers before gossip settles). Returns the delay to look again
 * after (0: every one is whole). */
static int64_t check_alertmanagers(struct monctl *mc, const struct monmodel *mm)
{
    size_t want = mm->fleet.n_alertmanagers;
    bool local = kf_mon_config(mc->mon)->mode == KF_MON_LOCAL;
    int64_t again = 0;

    for (size_t i = 0; i < want; i++) {
        const struct kf_obs_alertmanager *am = &mm->fleet.alertmanagers[i];
        double v = 0;
        bool settled, was;

        if (kf_mon_scrape_value(am->listen, "alertmanager_cluster_members", &v) < 0)
            v = 0;
        settled = v >= (double)want;
        pthread_mutex_lock(&mc->am_lock);
        json_object_set_new(mc->am_members, am->name, json_integer((json_int_t)v));
        json_object_set_new(mc->am_listens, am->name, json_string(am->listen));
        was = json_is_true(json_object_get(mc->am_settled, am->name));
        json_object_set_new(mc->am_settled, am->name, json_boolean(settled));
        pthread_mutex_unlock(&mc->am_lock);
        if (settled && !was)
            event(mc, mm, am->name, KF_OBS_TIER_ALERTMANAGER, false, "AlertmanagerClusterSettled",
                  "%s sees %.0f of %zu Alertmanagers: notifications are deduplicated", am->name, v,
                  want);
        else if (!settled && was)
            event(mc, mm, am->name, KF_OBS_TIER_ALERTMANAGER, true, "AlertmanagerClusterDegraded",
                  "%s sees %.0f of %zu Alertmanagers: until the cluster is whole again, a "
                  "notification may be sent by more than one (the adapter still deduplicates "
                  "webhooks; email may come twice)",
                  am->name, v, want);
        if (!settled)
            again = local ? 5000 : RETRY_EXT_MS;
    }
    return again;
}

static void collect_am(struct kf_metric *f, void *arg)
{
    struct monctl *mc = arg;
    const char *name;
    json_t *v;

    pthread_mutex_lock(&mc->am_lock);
    json_object_foreach(mc->am_members, name, v)
        kf_metric_set(f, KF_LABELS(name), (double)json_integer_value(v));
    pthread_mutex_unlock(&mc->am_lock);
}

/* Logs and records each problem of the model once (the set of those seen
 * is forgotten past 1000). */
static void report_problems(struct monctl *mc, const struct monmodel *mm)
{
    if (json_object_size(mc->problems_seen) > 1000)
        json_object_clear(mc->problems_seen);
    for (size_t i = 0; i < mm->n_problems; i++) {
        const struct monproblem *p = &mm->problems[i];
        json_t *obj;

        if (json_object_get(mc->problems_seen, p->message))
            continue;
        obj = json_pack("{s:s,s:{s:s}}", "kind", p->kind, "metadata", "name", p->name);
        kf_log_warn("%s %s: %s", p->kind, p->name, p->message);
        kf_recorder_event(mc->rec, obj, KF_EVENT_WARNING, p->reason, p->message);
        json_object_set_new(mc->problems_seen, p->message, json_true());
        json_decref(obj);
    }
}

/* Which local monitoring instances run before this pass: name -> bool. */
static json_t *running_instances(struct monctl *mc, const struct monmodel *mm)
{
    char **names = NULL;
    size_t n = kf_monmodel_instances(mm, &names);
    json_t *was_running = json_object();

    for (size_t i = 0; i < n; i++) {
        json_object_set_new(was_running, names[i],
                            json_boolean(kf_mon_stack_running(mc->mon, names[i])));
        free(names[i]);
    }
    free(names);
    return was_running;
}

/* Runs the local monitoring stack the model wants; when to try again (0: no need). */
static int64_t sync_local_stack(struct monctl *mc, struct monmodel *mm)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    unsigned started = 0;
    int64_t again = 0;

    if (kf_mon_stack_sync(mc->mon, &mm->fleet, mm->exporters, mm->n_exporters, &started, &err) <
        0) {
        kf_log_warn("cannot run the local monitoring stack: %s", err.buf);
        again = RETRY_LOCAL_MS;
    } else if (started) {
        kf_log_info("local monitoring stack: started %u processes", started);
    }
    kf_mon_ports_retain(mc->mon, (const char *const *)mm->port_keys, mm->n_port_keys);
    kf_strbuf_release(&err);
    return again;
}

/* The sooner of two delays, 0 meaning none. */
static int64_t sooner(int64_t a, int64_t b)
{
    return b && (!a || b < a) ? b : a;
}

static int mon_reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue_after_ms)
{
    struct monctl *mc = kf_ctrl_data(c);
    struct monmodel mm;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *was_running = NULL;
    int64_t now = kf_now_ms(), again = 0;
    bool local;
    int r;

    if (!mc->mon)
        return 0;
    if (strcmp(name, FLEET_KEY) != 0) {
        kf_ctrl_enqueue(c, FLEET_KEY);
        return 0;
    }
    if (now - mc->last_run_ms < MIN_PERIOD_MS) {
        *requeue_after_ms = MIN_PERIOD_MS - (now - mc->last_run_ms);
        return 0;
    }
    mc->last_run_ms = now;

    kf_monmodel_init(&mm);
    r = kf_monmodel_build(mc, &mm, &err);
    if (r < 0) {
        if (!kf_streq(mc->last_model_error, err.buf)) {
            event(mc, &mm, "monitoring", KF_OBS_TIER_CENTRAL, true, "MonitoringModelInvalid",
                  "the monitoring configuration was not rendered: %s", err.buf);
            free(mc->last_model_error);
            mc->last_model_error = kf_xstrdup(err.buf);
        }
        kf_monmodel_release(&mm);
        kf_strbuf_release(&err);
        return 0; /* the next change of an object tries again */
    }
    free(mc->last_model_error);
    mc->last_model_error = NULL;
    report_problems(mc, &mm);
    kf_mon_set_targets(mc->mon, mm.targets, mm.n_targets);
    write_conditions(mc, &mm);
    local = kf_mon_config(mc->mon)->mode == KF_MON_LOCAL;
    if (local)
        was_running = running_instances(mc, &mm);
    render_all(mc, &mm);
    if (local)
        again = sync_local_stack(mc, &mm);
    remove_stale(mc, &mm);
    again = sooner(again, reload_pending(mc, &mm, was_running));
    again = sooner(again, check_alertmanagers(mc, &mm));
    /* a guest cluster's monitoring identity lives in its PKI, not in an
     * object this controller watches: look again until it is there */
    again = sooner(again, mm.identities_missing ? IDENTITY_RETRY_MS : 0);
    json_decref(was_running);
    kf_monmodel_release(&mm);
    kf_strbuf_release(&err);
    if (again)
        *requeue_after_ms = again;
    return 0;
}

const struct kf_ctrl_ops kf_ctrl_monitoring_ops = {
    .name = "monitoring",
    .primary_kind = "Region",
    .workers = 1,
    .setup = mon_setup,
    .reconcile = mon_reconcile,
    .resync_ms = 60000,
};

int kf_ctrl_monitoring_init(const struct kf_ctrl_env *env, void **ret_data, struct kf_strbuf *err)
{
    struct monctl *mc = kf_xcalloc(1, sizeof(*mc));

    (void)err;
    mc->env = *env;
    mc->mon = env->monitoring;
    mc->rec = kf_recorder_new(env->reg, "monitoring");
    mc->hashes = json_object();
    mc->pending = json_object();
    mc->problems_seen = json_object();
    kf_monstate_init(&mc->state, env->metrics);
    pthread_mutex_init(&mc->am_lock, NULL);
    mc->am_members = json_object();
    mc->am_settled = json_object();
    mc->am_listens = json_object();
    if (env->metrics && mc->mon)
        kf_metrics_collected(env->metrics, KF_METRIC_GAUGE,
                             "kfleet_monitoring_alertmanager_cluster_members",
                             "Alertmanager peers each Alertmanager of the stack sees (it "
                             "deduplicates only when it sees all of them).",
                             "instance", collect_am, mc);
    kf_monalerts_bind(mc);
    *ret_data = mc;
    return 0;
}

void kf_ctrl_monitoring_fini(void *data)
{
    struct monctl *mc = data;

    if (!mc)
        return;
    kf_monalerts_unbind(mc);
    kf_recorder_free(mc->rec);
    json_decref(mc->hashes);
    json_decref(mc->pending);
    json_decref(mc->problems_seen);
    free(mc->last_model_error);
    kf_monstate_release(&mc->state);
    json_decref(mc->am_members);
    json_decref(mc->am_settled);
    json_decref(mc->am_listens);
    pthread_mutex_destroy(&mc->am_lock);
    free(mc);
}
