/* fleet-internal.h: what the kind files (src/fleet/kind-*.c) share and
 * nobody outside src/fleet needs: common value lists, field tables used by
 * more than one kind, and column helpers. */
#ifndef KF_FLEET_INTERNAL_H
#define KF_FLEET_INTERNAL_H

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/schema.h"

struct kf_causes;
struct kf_strbuf;

/* "G0".."G5", NULL-terminated. */
extern const char *const kf_fleet_grades[];
/* "Mon".."Sun", NULL-terminated. */
extern const char *const kf_fleet_weekdays[];

/* Cluster settings that a Template provides and a GuestCluster may
 * override (member tables defined in kind-guestcluster.c). */
extern const struct kf_field kf_fleet_maintenance_fields[];
extern const struct kf_field kf_fleet_backup_fields[];
#define KF_FLEET_MAINTENANCE_WINDOW                                                    \
    KF_OBJECT("maintenanceWindow",                                                     \
              "When disruptive work (upgrades, grade changes, migrations) may start.", \
              kf_fleet_maintenance_fields)
#define KF_FLEET_BACKUP \
    KF_OBJECT("backup", "Scheduled snapshots of the cluster's etcd.", kf_fleet_backup_fields)
#define KF_FLEET_COMPLIANCE                                                                   \
    KF_ARRAY("compliance",                                                                    \
             "Compliance tags the cluster needs (\"gdpr\"): only regions carrying every tag " \
             "qualify.",                                                                      \
             KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .flags = KF_F_UNIQUE, .max_len = 16)
#define KF_FLEET_FLAGS                                                                 \
    KF_MAP("flags",                                                                    \
           "Component flags and feature gates by name (\"kube-apiserver.max-requests-" \
           "inflight\": \"800\"), on top of the profile's.",                           \
           KF_ITEM_STRING(.max_len = 1024), .max_len = 128)

/* A map of resource name ("cpu", "memory", "nvidia.com/gpu") to quantity,
 * each at most 2^44 (16 Ti bytes, or as many cores), so that sums over a
 * unit's hosts stay within int64 milli-units. */
#define KF_FLEET_RESOURCE_MAX 17592186044416.0
#define KF_FLEET_RESOURCES(n, d, ...)                                               \
    KF_MAP(n, d, KF_ITEM_QUANTITY(.flags = KF_F_MAX, .max = KF_FLEET_RESOURCE_MAX), \
           .key_format = KF_FMT_LABEL_KEY, .max_len = 32, __VA_ARGS__)

/* What a BroadcastJob's template holds and each BroadcastTask copies
 * (kind-broadcastjob.c, kind-broadcasttask.c). */
extern const char *const kf_fleet_restart_policies[];
#define KF_FLEET_BCJ_COMMAND                                                                    \
    KF_ARRAY("command",                                                                         \
             "The program and its arguments, run with execve on the host: no shell unless the " \
             "command is one (\"/bin/sh\", \"-c\", \"...\"). A bare program name is looked up " \
             "in the agent's search path (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"   \
             "/sbin:/bin).",                                                                    \
             KF_ITEM_STRING(.max_len = 4096), .flags = KF_F_REQUIRED, .min_len = 1,             \
             .max_len = 256)
#define KF_FLEET_BCJ_ENV                                                                   \
    KF_MAP("env",                                                                          \
           "Environment variables of the command; nothing of the agent's environment is "  \
           "inherited. The agent adds KFLEET_HOST, KFLEET_JOB and KFLEET_TASK (the names " \
           "of the host, the job and the task) unless they are set here.",                 \
           KF_ITEM_STRING(.max_len = 4096), .max_len = 64)
#define KF_FLEET_BCJ_TIMEOUT                                                                     \
    KF_INT("timeoutSeconds",                                                                     \
           "Wall-clock limit of the task on a host, across restarts: then its process group is " \
           "stopped (SIGTERM, SIGKILL after 10 s) and the task fails with reason Timeout. "      \
           "Absent: none.",                                                                      \
           .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 30 * 24 * 3600)
#define KF_FLEET_BCJ_RESTART_POLICY                                                           \
    KF_STRING("restartPolicy",                                                                \
              "Never: a failed command fails the task; OnFailure: it runs again, at most "    \
              "failurePolicy.restartLimit times, before the task fails. Required, as Kruise " \
              "effectively requires it.",                                                     \
              .flags = KF_F_REQUIRED, .enum_values = kf_fleet_restart_policies)

/* The prefix of the names of every Event about an object named name
 * ("<name>."; long names are cut as the recorder cuts them). Caller frees. */
char *kf_fleet_event_name_prefix(const char *name);

/* Column helpers. */
void kf_fleet_col_percent(const json_t *obj, const char *path, struct kf_strbuf *out);
void kf_fleet_col_count(const json_t *obj, const char *path, struct kf_strbuf *out);

/* Adds a FieldValueInvalid cause for each pair of overlapping CIDRs among
 * the named string members of obj (paths like "spec.network.podCIDR"). */
void kf_fleet_check_disjoint(const json_t *obj, const char *const *paths, size_t n,
                             struct kf_causes *causes);

/* Adds a FieldValueNotSupported cause when the version at path (a string
 * member, or each string of an array) is one the component catalog does
 * not run, naming the versions it does. An update that leaves the value
 * as it was (old's) is not refused: a stored object stays editable after
 * the catalog dropped its version. */
void kf_fleet_check_version(const json_t *obj, const json_t *old, const char *path,
                            struct kf_causes *causes);

/* LIST continue tokens (fleet-registry.c): base64url of
 * {"v":1,"rv":REV,"start":NAME}, opaque to clients. encode returns a new
 * string. decode reads any client's string: 0 with *ret_rev > 0 and
 * *ret_name a valid object name (the caller frees it), or -KF_EBADREQUEST
 * with why in err (outputs untouched). Fuzzed by
 * tests/fuzz/fuzz-continue.c. */
char *kf_registry_continue_encode(int64_t rev, const char *name);
int kf_registry_continue_decode(const char *tok, int64_t *ret_rev, char **ret_name,
                                struct kf_strbuf *err);

#endif
