/* ctrl-backup.h: the backup controller's parts (kfleet/backup.h):
 *   ctrl-backup.c          schedule, assignment, retention, file removal
 *   ctrl-backup-restore.c  the restore action and the restore's steps
 */
#ifndef KF_CTRL_BACKUP_H
#define KF_CTRL_BACKUP_H

#include <jansson.h>

#include "kfleet/ctrlrt.h"

struct kf_api_actions;
struct kf_recorder;
struct kf_registry;
struct kf_strbuf;

#define KF_BACKUP_BY_CLUSTER_BK "bk.cluster" /* Backups by spec.cluster */

struct kf_backup_ctrl {
    struct kf_registry *reg;
    struct kf_recorder *rec;
    struct kf_informer *clusters, *backups, *locations, *members;
};

/* Adds POST .../backups/NAME/restore?cluster=C (admin) to actions (NULL:
 * none, a test without a server). 0 or a negative error with why. */
int kf_backup_add_actions(struct kf_backup_ctrl *d, const struct kf_api_actions *actions,
                          struct kf_strbuf *err);
/* One step of the restore the cluster's annotation asks for, if any:
 * annotates members, records progress and the end. Sets *requeue_ms while
 * it goes on. 0 or a negative error (retried). */
int kf_backup_restore_step(struct kf_backup_ctrl *d, const json_t *gc, int64_t *requeue_ms);
/* What must hold before cluster gc is restored from Backup b: b is
 * Succeeded, of gc's region and in a location of that region, and its file
 * has the recorded sha256. 0, or -KF_EINVALID with why for people. Reads
 * the whole file (the caller may block that long). */
int kf_backup_restore_check(struct kf_registry *reg, const json_t *b, const json_t *gc,
                            struct kf_strbuf *err);

#endif
