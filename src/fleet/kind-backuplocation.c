/* kind-backuplocation.c: BackupLocation, where the etcd snapshots of one
 * region's guest clusters are kept. Today a location is a directory on the
 * meta hosts (type Filesystem: in production an NFS-style mount that every
 * meta host of the region sees at the same path); the type field leaves
 * room for object storage. A location serves only clusters of its region
 * whose compliance tags it carries every one of (data residency): the
 * backup controller (ctrl-backup.c) never writes a snapshot of another
 * region's cluster there. Writing a location chooses where agents write
 * files on meta hosts, so only admin writes it (api-auth.c). */
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const loc_types[] = { "Filesystem", NULL };

static const struct kf_field loc_retention_fields[] = {
    KF_STRING("maxAge",
              "Snapshots older than this are deleted (the newest good one of a cluster is "
              "always kept); absent: only the count of the cluster's backup.retain applies.",
              .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 366 * 86400),
    KF_END,
};

static const struct kf_field loc_spec_fields[] = {
    KF_STRING("region", "The Region whose clusters' snapshots live here.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_DNS_LABEL),
    KF_STRING("type", "Filesystem: a directory on the meta hosts (object storage: later).",
              .enum_values = loc_types, .dflt = "\"Filesystem\""),
    KF_STRING("path",
              "Type Filesystem: the absolute directory on every meta host of the region "
              "(a shared mount); snapshots go to <path>/<cluster>/<backup>.db, mode 0600.",
              .flags = KF_F_REQUIRED, .max_len = 1024),
    KF_ARRAY("complianceTags",
             "Compliance tags this location satisfies (\"gdpr\"): it serves only clusters "
             "whose every compliance tag is here.",
             KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .flags = KF_F_UNIQUE, .max_len = 16),
    KF_OBJECT("retention", "How long snapshots are kept here.", loc_retention_fields),
    KF_END,
};

static const struct kf_schema loc_spec = {
    .description = "Where one region's guest etcd snapshots are kept.",
    .fields = loc_spec_fields,
};

static void loc_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    const char *p = kf_json_str(obj, "spec.path", "");

    (void)old;
    if (p[0] != '/' || strstr(p, "/../") || kf_str_has_suffix(p, "/..") || strchr(p, '\n'))
        kf_causes_add(causes, "FieldValueInvalid", "spec.path",
                      "invalid value \"%.200s\": an absolute directory without \"..\" "
                      "(\"/srv/kfleet/backups\")",
                      p);
}

static const struct kf_column loc_columns[] = {
    { .header = "REGION", .path = "spec.region", .type = "string" },
    { .header = "TYPE", .path = "spec.type", .type = "string" },
    { .header = "PATH", .path = "spec.path", .type = "string" },
    { .header = "COMPLIANCE", .path = "spec.complianceTags", .type = "string", .wide = true },
};

static const char *const loc_short[] = { "bl", NULL };

const struct kf_kind kf_kind_backuplocation = {
    .kind = "BackupLocation",
    .plural = "backuplocations",
    .singular = "backuplocation",
    .short_names = loc_short,
    .description = "Where the etcd snapshots of one region's guest clusters are kept: a "
                   "directory on the meta hosts (a shared mount). Never used for a cluster of "
                   "another region, nor for one whose compliance tags it lacks.",
    .name_is_label = true,
    .spec_schema = &loc_spec,
    .validate = loc_validate,
    .columns = loc_columns,
    .n_columns = KF_ARRAY_SIZE(loc_columns),
};
