/* backup.h: guest etcd backups (docs/internals/backups.md).
 *
 * The kinds are Backup and BackupLocation (kind.h). The backup controller
 * (src/controllers/ctrl-backup.c) schedules snapshots at each cluster's
 * effective backup.interval with jitter, assigns each Backup a location
 * and a host that runs a Ready etcd member, keeps backup.retain of them
 * (and none older than the location's retention.maxAge, but the newest),
 * and removes a deleted Backup's file. The agent on that host
 * (src/agent/agent-backup.c) takes and checks the snapshot.
 */
#ifndef KF_BACKUP_H
#define KF_BACKUP_H

#include "kfleet/controllers.h"

/* On every Backup the controller assigned: its snapshot file is removed
 * before the object goes. */
#define KF_BACKUP_FINALIZER "kfleet.io/backup-file"
/* On Backups the schedule created (the value: "scheduled"). */
#define KF_BACKUP_LABEL_CLUSTER "kfleet.io/cluster"
#define KF_BACKUP_ANN_TRIGGER   "kfleet.io/backup-trigger"
/* On a GuestCluster: a restore asked for ("<id> <backup>", id: ms since the
 * epoch), its progress for people, and the id of the last one finished. */
#define KF_BACKUP_ANN_RESTORE          "kfleet.io/restore"
#define KF_BACKUP_ANN_RESTORE_PROGRESS "kfleet.io/restore-progress"
#define KF_BACKUP_ANN_RESTORED         "kfleet.io/restored"
/* On members (the agent's KF_AGENT_ANN_RESTORE / _RESTART). */
#define KF_BACKUP_ANN_MEMBER_RESTORE "kfleet.io/restore"
#define KF_BACKUP_ANN_MEMBER_RESTART "kfleet.io/restart"
/* A Running backup that has not ended after this long is Failed (Timeout). */
#define KF_BACKUP_TIMEOUT_MS (15 * 60 * 1000)
/* Failed Backups of a cluster kept for people to read; older ones go. */
#define KF_BACKUP_FAILED_KEPT 3

extern const struct kf_ctrl_ops kf_ctrl_backup_ops;
int kf_ctrl_backup_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
void kf_ctrl_backup_fini(void *data);

#endif
