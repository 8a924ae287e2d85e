/* window.h: maintenance windows, when a cluster's disruptive work (an
 * upgrade, a grade change, a migration) may start.
 *
 * A window (a GuestCluster's or Template's spec.maintenanceWindow) is
 *
 *     {"days": ["Sat","Sun"], "start": "02:00", "duration": "4h",
 *      "timeZone": "Europe/Berlin",
 *      "exclusions": [{"from": "2026-12-24", "to": "2026-12-26"}]}
 *
 * It opens at START (wall clock of TIMEZONE, default UTC) on each of DAYS
 * (absent: every day) and stays open DURATION (default 4h). A window that
 * would open on a local date inside an exclusion (FROM..TO inclusive; TO
 * defaults to FROM) does not open. Starts are spread: a cluster may start
 * only from OPEN + (hash of its name mod DURATION/2) on, until the window
 * closes, so that thousands of clusters with the same window do not all
 * begin in the same second, and each still has half the window to work. */
#ifndef KF_WINDOW_H
#define KF_WINDOW_H

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

struct kf_causes;

/* At most this many exclusions per window. */
#define KF_WINDOW_MAX_EXCLUSIONS 64

/* Whether a cluster named NAME may start disruptive work at NOW under WINDOW (the
 * GuestCluster's spec.maintenanceWindow; NULL: always). Starts are spread inside the
 * window by a hash of NAME so that thousands of clusters do not begin in the same
 * second. *NEXT (if not NULL) is set to the next time it may start (NOW if it may now;
 * 0 if no window opens within 400 days, e.g. every one is excluded). A window that
 * admission would refuse (no parsable start) allows always; a time zone that is no
 * longer installed counts as UTC. Safe from any thread. */
bool kf_window_allows(const json_t *window, const char *name, time_t now, time_t *next);

/* Admission checks the schema cannot make, for the window at PATH of OBJ
 * ("spec.maintenanceWindow"): duration 1h..7d, a time zone that is
 * installed, exclusions that are real dates "YYYY-MM-DD" with from <= to. */
void kf_window_check(const json_t *obj, const char *path, struct kf_causes *causes);

#endif
