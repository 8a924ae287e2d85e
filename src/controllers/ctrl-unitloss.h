/* ctrl-unitloss.h: the decisions of the unit-loss controller
 * (ctrl-unitloss.c, docs/internals/backups.md "Unit loss"), as pure
 * functions over plain values so that tests call them without a store.
 */
#ifndef KF_CTRL_UNITLOSS_H
#define KF_CTRL_UNITLOSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One host of the unit: Ready or not, and since when (ms; 0: unknown). */
struct kf_unitloss_host {
    bool ready;
    int64_t since_ms;
};

enum kf_unitloss_state {
    KF_UNIT_UP,      /* a host of it is Ready (or it has none): nothing to do */
    KF_UNIT_WAITING, /* every host NotReady, not for the whole grace yet */
    KF_UNIT_LOST,    /* every host NotReady for the grace: evacuate */
};

/* Whether a unit is lost. The silence counts from the last host that went
 * NotReady, never from before `started_ms` (kfleetd or this leader started:
 * no evacuation starts before a full grace after a restart, when the hosts'
 * states in the store may be old) unless the unit was marked lost already
 * (`marked`: an evacuation that began goes on). *ret_since gets the time the
 * last host went NotReady; *ret_wait_ms how long until LOST when WAITING. */
enum kf_unitloss_state kf_unitloss_assess(const struct kf_unitloss_host *hosts, size_t n,
                                          int64_t now_ms, int64_t grace_ms, int64_t started_ms,
                                          bool marked, int64_t *ret_since, int64_t *ret_wait_ms);

/* One Backup of a cluster, for the choice of the one to restore. */
struct kf_unitloss_backup {
    const char *phase;
    int64_t revision;
    int64_t completed_ms; /* status.completionTime, else creation */
};

/* The index of the backup to restore from: the newest Succeeded one (by
 * completion, then revision), skipping those `bad` marks (true: its check
 * failed); -1 when there is none. bad may be NULL. */
int kf_unitloss_pick_backup(const struct kf_unitloss_backup *b, size_t n, const bool *bad);

/* What to do with one cluster of a lost unit. */
enum kf_unitloss_action {
    KF_UL_SKIP,     /* being deleted, or its move off the unit is under way */
    KF_UL_NOBACKUP, /* no Succeeded backup: it stays (condition, Event) */
    KF_UL_WAIT,     /* the limit of restores at once is reached: later */
    KF_UL_EVACUATE, /* restore it on another unit now */
};
enum kf_unitloss_action kf_unitloss_cluster_action(bool deleting, bool moving, bool has_backup,
                                                   unsigned in_flight, unsigned max_in_flight);

#endif
