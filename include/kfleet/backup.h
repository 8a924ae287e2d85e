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
/* The id of the last restore whose start was recorded (Event RestoreStarted). */
#define KF_BACKUP_ANN_RESTORE_STARTED "kfleet.io/restore-started"
/* On a Backup: the phase its Event (BackupSucceeded / BackupFailed) was
 * recorded for. */
#define KF_BACKUP_ANN_REPORTED "kfleet.io/reported"
/* On members (the agent's KF_AGENT_ANN_RESTORE / _RESTART). */
#define KF_BACKUP_ANN_MEMBER_RESTORE "kfleet.io/restore"
#define KF_BACKUP_ANN_MEMBER_RESTART "kfleet.io/restart"
/* On a GuestCluster: a move of its control plane off unit FROM, asked
 * together with a restore of the same id ("<id> <from> <to>"; to is a unit
 * or "*": any other unit of the region), done by the placement controller
 * (ctrl-placement-move.c); the id of the last move done; the condition
 * that says how it goes. */
#define KF_MOVE_ANN       "kfleet.io/move"
#define KF_MOVE_ANN_DONE  "kfleet.io/moved"
#define KF_MOVE_CONDITION "Moved"
struct kf_move_req {
    char id[32];
    char from[254], to[254];
};
/* Parses a KF_MOVE_ANN value into *ret: 0, or -EINVAL (ret untouched). */
int kf_move_parse(const char *value, struct kf_move_req *ret);
/* A Running backup that has not ended after this long is Failed (Timeout). */
#define KF_BACKUP_TIMEOUT_MS (15 * 60 * 1000)
/* Failed Backups of a cluster kept for people to read; older ones go. */
#define KF_BACKUP_FAILED_KEPT 3

extern const struct kf_ctrl_ops kf_ctrl_backup_ops;
int kf_ctrl_backup_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
void kf_ctrl_backup_fini(void *data);

#endif
