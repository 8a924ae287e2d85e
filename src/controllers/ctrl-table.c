/* ctrl-table.c: kfleetd's controllers, in start order, and the glue that
 * builds them into a manager and exposes their statistics as metrics.
 *
 * Adding a controller: write src/controllers/ctrl-<name>.c with its
 * `const struct kf_ctrl_ops` (and init/fini if it keeps state), then add one
 * line to `defs` below.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/backup.h"
#include "kfleet/broadcast.h"
#include "kfleet/capacity.h"
#include "kfleet/controllers.h"
#include "kfleet/endpoint.h"
#include "kfleet/kind.h"
#include "kfleet/lifecycle.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/release.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-monitoring.h"

static const struct kf_ctrl_def defs[] = {
    { &kf_ctrl_profiles_ops, kf_ctrl_profiles_init, kf_ctrl_profiles_fini },
    { &kf_ctrl_host_ops, kf_ctrl_host_init, kf_ctrl_host_fini },
    { &kf_ctrl_unit_status_ops, kf_ctrl_unit_status_init, kf_ctrl_unit_status_fini },
    { &kf_ctrl_placement_ops, kf_ctrl_placement_init, kf_ctrl_placement_fini },
    { &kf_ctrl_broadcastjob_ops, kf_ctrl_broadcastjob_init, kf_ctrl_broadcastjob_fini },
    { &kf_ctrl_monitoring_ops, kf_ctrl_monitoring_init, kf_ctrl_monitoring_fini },
    { &kf_ctrl_lifecycle_ops, kf_ctrl_lifecycle_init, kf_ctrl_lifecycle_fini },
    { &kf_ctrl_endpoints_ops, kf_ctrl_endpoints_init, kf_ctrl_endpoints_fini },
    { &kf_ctrl_release_ops, kf_ctrl_release_init, kf_ctrl_release_fini },
    { &kf_ctrl_backup_ops, kf_ctrl_backup_init, kf_ctrl_backup_fini },
    { &kf_ctrl_replace_ops, kf_ctrl_replace_init, kf_ctrl_replace_fini },
    { &kf_ctrl_unitloss_ops, kf_ctrl_unitloss_init, kf_ctrl_unitloss_fini },
    { NULL, NULL, NULL }, /* end; controllers go above this line */
};

const struct kf_ctrl_def *kf_ctrl_defs(size_t *ret_n)
{
    *ret_n = KF_ARRAY_SIZE(defs) - 1;
    return defs;
}

bool kf_ctrl_enabled(const char *spec, const char *name)
{
    bool on = false;
    char *copy, *save = NULL;

    if (!spec || strcmp(spec, "*") == 0)
        return true;
    if (strcmp(spec, "none") == 0 || !*spec)
        return false;
    copy = kf_xstrdup(spec);
    /* later entries win: "*,-placement" */
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "*") == 0)
            on = true;
        else if (t[0] == '-' && strcmp(t + 1, name) == 0)
            on = false;
        else if (strcmp(t, name) == 0)
            on = true;
    }
    free(copy);
    return on;
}

int kf_ctrl_check_enabled(const char *spec, struct kf_strbuf *err)
{
    size_t n;
    const struct kf_ctrl_def *d = kf_ctrl_defs(&n);
    char *copy, *save = NULL;
    int r = 0;

    if (!spec || strcmp(spec, "*") == 0 || strcmp(spec, "none") == 0)
        return 0;
    copy = kf_xstrdup(spec);
    for (char *t = strtok_r(copy, ",", &save); t && r == 0; t = strtok_r(NULL, ",", &save)) {
        const char *name = t[0] == '-' ? t + 1 : t;
        bool found = strcmp(name, "*") == 0;

        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(d[i].ops->name, name) == 0;
        if (!found) {
            struct kf_strbuf names = KF_STRBUF_INIT;

            for (size_t i = 0; i < n; i++)
                kf_strbuf_addf(&names, "%s%s", i ? ", " : "", d[i].ops->name);
            r = kf_err(err, -EINVAL, "no controller \"%s\" (there are: %s)", name, names.buf);
            kf_strbuf_release(&names);
        }
    }
    free(copy);
    return r;
}

struct def_data {
    const struct kf_ctrl_def *def;
    void *data;
};

int kf_ctrl_manager_add_defs(struct kf_ctrl_manager *m, const struct kf_ctrl_env *env,
                             struct kf_strbuf *err)
{
    size_t n;
    const struct kf_ctrl_def *d = kf_ctrl_defs(&n);

    for (size_t i = 0; i < n; i++) {
        void *data = NULL;
        struct kf_ctrl *c = NULL;
        int r = 0;

        if (!kf_ctrl_enabled(env->enabled, d[i].ops->name))
            continue;
        if (d[i].init)
            r = d[i].init(env, &data, err);
        if (r == 0)
            r = kf_ctrl_manager_add(m, d[i].ops, data, &c);
        if (r < 0) {
            if (d[i].fini)
                d[i].fini(data);
            if (err && !err->len)
                kf_err(err, r, "controller \"%s\" cannot start: %s", d[i].ops->name, strerror(-r));
            return r;
        }
        kf_ctrl_set_fini(c, d[i].fini);
    }
    return 0;
}

struct collect_arg {
    struct kf_ctrl_manager *m;
    int which; /* the column of struct kf_ctrl_stats this family shows */
    struct kf_metric *f;
};

static void collect_one(struct kf_ctrl *c, void *arg)
{
    struct collect_arg *ca = arg;
    struct kf_ctrl_stats st;
    const char *const labels[] = { kf_ctrl_name(c) };
    double v = 0;

    kf_ctrl_stats(c, &st);
    switch (ca->which) {
    case 0:
        v = (double)st.reconciles;
        break;
    case 1:
        v = (double)st.errors;
        break;
    case 2:
        v = (double)st.queue_depth;
        break;
    case 3:
        v = (double)st.reconcile_ns_total / 1e9;
        break;
    default:
        v = (double)st.requeues;
        break;
    }
    kf_metric_set(ca->f, labels, v);
}

static void collect(struct kf_metric *f, void *arg)
{
    struct collect_arg *ca = arg;

    ca->f = f;
    kf_ctrl_manager_foreach(ca->m, collect_one, ca);
}

struct informer_arg {
    bool bytes; /* kfleet_informer_bytes, else kfleet_informer_objects */
    struct kf_metric *f;
};

static void collect_informer_one(struct kf_informer *inf, void *arg)
{
    struct informer_arg *ia = arg;
    const char *const labels[] = { kf_informer_kind(inf)->kind };

    kf_metric_set(ia->f, labels,
                  (double)(ia->bytes ? kf_informer_bytes(inf) : kf_informer_count(inf)));
}

struct informer_coll {
    struct kf_ctrl_manager *m;
    bool bytes;
};

static void collect_informers(struct kf_metric *f, void *arg)
{
    struct informer_coll *ic = arg;
    struct informer_arg ia = { ic->bytes, f };

    kf_ctrl_manager_foreach_informer(ic->m, collect_informer_one, &ia);
}

void kf_ctrl_manager_add_metrics(struct kf_ctrl_manager *m, struct kf_metrics *metrics)
{
    static const struct {
        enum kf_metric_type type;
        const char *name;
        const char *help;
    } fams[] = {
        { KF_METRIC_COUNTER, "kfleet_controller_reconciles_total", "Reconciles run." },
        { KF_METRIC_COUNTER, "kfleet_controller_reconcile_errors_total",
          "Reconciles that failed and were retried with back-off." },
        { KF_METRIC_GAUGE, "kfleet_controller_queue_depth", "Names waiting to be reconciled." },
        { KF_METRIC_COUNTER, "kfleet_controller_reconcile_seconds_total",
          "Time spent reconciling." },
        { KF_METRIC_COUNTER, "kfleet_controller_requeues_total",
          "Reconciles that asked to be looked at again later." },
    };
    struct collect_arg *args = kf_ctrl_manager_alloc(m, KF_ARRAY_SIZE(fams) * sizeof(*args));

    for (size_t i = 0; i < KF_ARRAY_SIZE(fams); i++) {
        args[i].m = m;
        args[i].which = (int)i;
        kf_metrics_collected(metrics, fams[i].type, fams[i].name, fams[i].help, "controller",
                             collect, &args[i]);
    }
    {
        struct informer_coll *ic = kf_ctrl_manager_alloc(m, 2 * sizeof(*ic));

        ic[0].m = ic[1].m = m;
        ic[1].bytes = true;
        kf_metrics_collected(metrics, KF_METRIC_GAUGE, "kfleet_informer_objects",
                             "Objects in the controllers' shared cache, by kind.", "kind",
                             collect_informers, &ic[0]);
        kf_metrics_collected(metrics, KF_METRIC_GAUGE, "kfleet_informer_bytes",
                             "Memory the controllers' shared cache holds, by kind (objects as "
                             "kept, index values, bookkeeping).",
                             "kind", collect_informers, &ic[1]);
    }
}
