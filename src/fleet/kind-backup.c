/* kind-backup.c: Backup, one etcd snapshot of one guest cluster. A user
 * (`kfleet backup create CLUSTER`) or the backup controller's schedule
 * creates it with spec.cluster; the controller (ctrl-backup.c) picks the
 * region's BackupLocation and a host that runs a Ready etcd member of the
 * cluster and says so in the status (phase Running, host, member,
 * endpoint, path); that host's agent (agent-backup.c) takes a full
 * snapshot through etcd's own snapshot API, checks it and writes what it
 * found (revision, size, sha256 checksum, etcd's hash) with phase
 * Succeeded or Failed. Only a Succeeded Backup counts: retention keeps the
 * cluster's backup.retain newest ones. The finalizer kfleet.io/backup-file
 * stays until the controller has removed the snapshot file. */
#include <string.h>

#include <jansson.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const backup_phases[] = {
    "Pending", "Running", "Succeeded", "Failed", NULL,
};

static const struct kf_field backup_spec_fields[] = {
    KF_STRING("cluster", "The GuestCluster whose etcd is snapshotted.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_DNS_LABEL),
    KF_STRING("location",
              "The BackupLocation to write to; absent: the one of the cluster's region that "
              "carries its compliance tags.",
              .flags = KF_F_IMMUTABLE, .format = KF_FMT_DNS_LABEL),
    KF_END,
};

static const struct kf_schema backup_spec = {
    .description = "Which cluster to snapshot, and where to.",
    .fields = backup_spec_fields,
};

static const struct kf_field backup_status_fields[] = {
    KF_STRING("phase",
              "Pending (waiting for a location or a Ready etcd member; also when absent), "
              "Running (a host takes it), Succeeded (verified and kept) or Failed.",
              .enum_values = backup_phases),
    KF_STRING("reason",
              "Why it is Pending or Failed: NoLocation, NoReadyMember, Snapshot, "
              "Verify, Timeout.",
              .format = KF_FMT_REASON, .max_len = 64),
    KF_STRING("message", "What happened, for people.", .max_len = 1024),
    KF_STRING("region", "The cluster's region when the backup was taken.",
              .format = KF_FMT_DNS_LABEL),
    KF_STRING("location", "The BackupLocation it is written to.", .format = KF_FMT_DNS_LABEL),
    KF_STRING("path", "The snapshot file: <location path>/<cluster>/<backup>.db.", .max_len = 2048),
    KF_STRING("host", "The host whose agent takes it.", .format = KF_FMT_DNS_SUBDOMAIN),
    KF_STRING("member", "The etcd member it is taken from.", .format = KF_FMT_DNS_SUBDOMAIN),
    KF_STRING("endpoint", "That member's client URL.", .format = KF_FMT_URL),
    KF_INT("revision", "The etcd revision the snapshot holds.", .flags = KF_F_MIN, .min = 0),
    KF_INT("size", "Bytes of the snapshot file.", .flags = KF_F_MIN, .min = 0),
    KF_INT("totalKeys", "Keys in the snapshot.", .flags = KF_F_MIN, .min = 0),
    KF_STRING("checksum", "\"sha256:<hex>\" of the snapshot file, checked before any use.",
              .max_len = 80),
    KF_INT("etcdHash", "etcd's own hash of the snapshot's keys (etcdctl snapshot status).",
           .flags = KF_F_MIN, .min = 0),
    KF_INT("durationMillis", "How long taking and checking the snapshot took.", .flags = KF_F_MIN,
           .min = 0),
    KF_STRING("startTime", "When the host started it.", .format = KF_FMT_RFC3339),
    KF_STRING("completionTime", "When it ended.", .format = KF_FMT_RFC3339),
    KF_END,
};

static const struct kf_schema backup_status = {
    .description = "What the snapshot holds and where it is.",
    .fields = backup_status_fields,
};

static void col_phase(const json_t *obj, struct kf_strbuf *out)
{
    kf_strbuf_addstr(out, kf_json_str(obj, "status.phase", "Pending"));
}

static const struct kf_column backup_columns[] = {
    { .header = "CLUSTER", .path = "spec.cluster", .type = "string" },
    { .header = "PHASE", .fn = col_phase, .type = "string" },
    { .header = "REVISION", .path = "status.revision", .type = "integer" },
    { .header = "SIZE", .path = "status.size", .type = "integer" },
    { .header = "LOCATION", .path = "status.location", .type = "string" },
    { .header = "HOST", .path = "status.host", .type = "string", .wide = true },
    { .header = "CHECKSUM", .path = "status.checksum", .type = "string", .wide = true },
    { .header = "MESSAGE", .path = "status.message", .type = "string", .wide = true },
};

static const char *const backup_short[] = { "bk", NULL };

const struct kf_kind kf_kind_backup = {
    .kind = "Backup",
    .plural = "backups",
    .singular = "backup",
    .short_names = backup_short,
    .description = "One etcd snapshot of one guest cluster, taken through etcd's snapshot API "
                   "by an agent on a host running a Ready member, verified (revision, sha256, "
                   "etcd's hash) before it counts, kept in the region's BackupLocation.",
    .has_status = true,
    .spec_schema = &backup_spec,
    .status_schema = &backup_status,
    .columns = backup_columns,
    .n_columns = KF_ARRAY_SIZE(backup_columns),
};
