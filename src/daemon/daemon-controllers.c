/* daemon-controllers.c: the one place where kfleetd starts and stops its
 * controllers.
 *
 * The controller runtime (src/controllers/, watch -> queue -> reconcile)
 * plugs in here: kf_daemon_controllers_start gets the store, the registry,
 * the metrics registry and the data directory in struct kf_daemon, starts
 * every controller and keeps their state in d->controllers;
 * kf_daemon_controllers_stop stops them and frees it. kfleetd calls start
 * before its API server listens and stop after the API server has stopped
 * (so no request races a controller's shutdown), both from the main thread.
 *
 * No controller exists yet: both are no-ops.
 */
#include <stdio.h>

#include "kfleet/log.h"
#include "kfleet/strbuf.h"
#include "daemon/daemon.h"

KF_LOG_MODULE(daemon);

int kf_daemon_controllers_start(struct kf_daemon *d, struct kf_strbuf *err)
{
    (void)err;
    d->controllers = NULL;
    kf_log_dbg("no controllers to start");
    return 0;
}

void kf_daemon_controllers_stop(struct kf_daemon *d)
{
    d->controllers = NULL;
}
