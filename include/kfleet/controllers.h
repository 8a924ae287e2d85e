/* controllers.h: kfleetd's controllers (src/controllers/), built on the
 * controller runtime (kfleet/ctrlrt.h): what kfleetd hands every controller
 * (struct kf_ctrl_env), the table of controllers in start order, and the
 * glue that builds the enabled ones into a manager.
 *
 * Each controller's own header says what it reconciles (capacity.h,
 * lifecycle.h, broadcast.h, endpoint.h); adding one is a file
 * src/controllers/ctrl-<name>.c and a line in ctrl-table.c.
 */
#ifndef KF_CONTROLLERS_H
#define KF_CONTROLLERS_H

#include "kfleet/ctrlrt.h"

struct kf_api_actions;
struct kf_capacity_options;
struct kf_endpoints;
struct kf_lifecycle_options;
struct kf_lease_table;
struct kf_metrics;
struct kf_mon;

/* What kfleetd hands every controller when it builds them. Borrowed
 * pointers, valid while the controllers run. */
struct kf_ctrl_env {
    struct kf_store *store;
    struct kf_registry *reg;
    struct kf_metrics *metrics;    /* add the controller's own families here */
    struct kf_lease_table *leases; /* host heartbeats (kfleet/lease.h) */
    const char *data_dir;          /* kfleetd's --data-dir */
    /* The API server's actions (kfleet/api-action.h), not yet listening: a
     * controller may add actions that read its state; kfleetd stops the API
     * before the controllers. NULL in tests without a server. */
    const struct kf_api_actions *actions;
    /* Options of the capacity controllers (kfleet/capacity.h); NULL: defaults. */
    const struct kf_capacity_options *capacity;
    /* Which controllers of the table run (kfleetd --controllers): NULL or
     * "*" every one, "none" none, else a comma list of names, where "*"
     * means every one and "-name" leaves one out ("*,-placement"). */
    const char *enabled;
    struct kf_mon *monitoring; /* kfleetd --monitoring (kfleet/monitoring.h); NULL: off */
    /* Options of the lifecycle controller (kfleet/lifecycle.h); NULL: defaults. */
    const struct kf_lifecycle_options *lifecycle;
    struct kf_endpoints *endpoints; /* kfleetd --endpoints (kfleet/endpoint.h); NULL: off */
};

/* One entry of kfleetd's controller table (src/controllers/ctrl-table.c).
 * init builds the controller's private data from env (NULL: none); fini
 * frees it after the controller stopped. */
struct kf_ctrl_def {
    const struct kf_ctrl_ops *ops;
    int (*init)(const struct kf_ctrl_env *env, void **ret_data, struct kf_strbuf *err);
    void (*fini)(void *data);
};

/* The table, in start order. */
const struct kf_ctrl_def *kf_ctrl_defs(size_t *ret_n);

/* Whether spec (struct kf_ctrl_env.enabled) enables the controller name. */
bool kf_ctrl_enabled(const char *spec, const char *name);
/* Checks that every name in spec is a controller of the table. -EINVAL
 * naming the unknown one and listing the known ones in err. */
int kf_ctrl_check_enabled(const char *spec, struct kf_strbuf *err);

/* Builds every enabled controller of the table into m; on failure the ones built
 * so far stay in m (kf_ctrl_manager_free frees them) and err says which
 * failed. */
int kf_ctrl_manager_add_defs(struct kf_ctrl_manager *m, const struct kf_ctrl_env *env,
                             struct kf_strbuf *err);
/* Adds kfleet_controller_* families (reconciles, errors, queue depth,
 * reconcile seconds) for every controller of m to metrics. */
void kf_ctrl_manager_add_metrics(struct kf_ctrl_manager *m, struct kf_metrics *metrics);

#endif
