/* daemon-controllers.c: the one place where kfleetd starts and stops its
 * controllers.
 *
 * It builds a controller manager (src/ctrlrt/ctrlrt-manager.c) over the
 * daemon's store and registry, adds every controller of the table in
 * src/controllers/ctrl-table.c with an environment made from struct
 * kf_daemon, exposes their statistics on /metrics, and starts them (which
 * waits for each informer's first list). kfleetd calls start before its API
 * server listens and stop after the API server has stopped, so no request
 * races a controller's shutdown; both from the main thread.
 */
#include <stdio.h>
#include <string.h>

#include "kfleet/api.h"
#include "kfleet/controllers.h"
#include "kfleet/log.h"
#include "kfleet/strbuf.h"
#include "daemon/daemon.h"

KF_LOG_MODULE(daemon);

int kf_daemon_controllers_start(struct kf_daemon *d, struct kf_strbuf *err)
{
    struct kf_ctrl_env env = {
        .store = d->store,
        .reg = d->reg,
        .metrics = d->metrics,
        .leases = d->leases,
        .data_dir = d->data_dir,
        .actions = d->api ? kf_api_actions(d->api) : NULL,
        .capacity = d->capacity,
        .enabled = d->controllers_enabled,
        .monitoring = d->mon,
        .lifecycle = d->lifecycle,
        .endpoints = d->endpoints,
    };
    struct kf_ctrl_manager *m = kf_ctrl_manager_new(d->store, d->reg);
    int r;

    r = kf_ctrl_manager_add_defs(m, &env, err);
    if (r == 0) {
        kf_ctrl_manager_add_metrics(m, d->metrics);
        r = kf_ctrl_manager_start(m);
        if (r < 0)
            kf_err(err, r, "the controllers' first list of the store failed: %s", strerror(-r));
    }
    if (r < 0) {
        kf_ctrl_manager_free(m);
        d->controllers = NULL;
        return r;
    }
    d->controllers = m;
    return 0;
}

void kf_daemon_controllers_stop(struct kf_daemon *d)
{
    kf_ctrl_manager_free(d->controllers);
    d->controllers = NULL;
}
