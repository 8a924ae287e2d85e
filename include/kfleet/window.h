/* window.h: maintenance windows, when a GuestCluster may start disruptive
 * work (an upgrade, a grade change, a migration).
 *
 * The declaration is the one the upgrade work of issue 14 agreed on; this
 * branch carries a stand-in implementation (src/fleet/fleet-window.c) of
 * today's window fields (days, start, duration, UTC) until that work lands
 * with time zones and exclusions. */
#ifndef KF_WINDOW_H
#define KF_WINDOW_H

#include <time.h>

#include <jansson.h>

#include "kfleet/base.h"

/* Whether a cluster named NAME may start disruptive work at NOW under WINDOW (the
 * GuestCluster's spec.maintenanceWindow; NULL: always). Starts are spread inside the
 * window by a hash of NAME so that thousands of clusters do not begin in the same
 * second. *NEXT (if not NULL) is set to the next time it may start (NOW if it may now). */
bool kf_window_allows(const json_t *window, const char *name, time_t now, time_t *next);

#endif
