/* kind-guestcluster.c: GuestCluster, a Kubernetes cluster whose control
 * plane kfleet hosts on a unit. The spec says what the user wants (region,
 * template or profile, version, size, network, placement wishes, compliance,
 * maintenance window, backups); the status says where it landed (unit,
 * grade, allocated ranges, endpoints, members ready) and how it is doing
 * (phase, conditions). Also defines the cluster settings a Template shares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/catalog.h"
#include "kfleet/cidr.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "kfleet/tz.h"
#include "kfleet/versions.h"
#include "kfleet/window.h"
#include "fleet/fleet-internal.h"

static const struct kf_field maintenance_exclusion_fields[] = {
    KF_STRING("from", "First excluded date, \"YYYY-MM-DD\" in the window's time zone.",
              .flags = KF_F_REQUIRED, .max_len = 10),
    KF_STRING("to", "Last excluded date (inclusive); absent: the same as from.", .max_len = 10),
    KF_STRING("reason", "Why (\"year-end freeze\"), for people.", .max_len = 256),
    KF_END,
};

const struct kf_field kf_fleet_maintenance_fields[] = {
    KF_ARRAY("days", "Days the window opens (\"Sat\", \"Sun\"); absent: every day.",
             KF_ITEM_STRING(.enum_values = kf_fleet_weekdays), .flags = KF_F_UNIQUE, .max_len = 7),
    KF_STRING("start", "Time of day the window opens, \"HH:MM\" on the clock of timeZone.",
              .flags = KF_F_REQUIRED, .format = KF_FMT_TIME_OF_DAY),
    KF_STRING("duration",
              "How long the window stays open (1h to 7d). Starts are spread over its first "
              "half by a hash of the cluster's name.",
              .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 7 * 86400, .dflt = "\"4h\""),
    KF_STRING("timeZone", "IANA time zone of start, days and exclusions (\"Asia/Shanghai\").",
              .max_len = KF_TZ_MAX_NAME, .dflt = "\"UTC\""),
    KF_ARRAY("exclusions",
             "Dates on which the window does not open (holidays, freezes), as ranges.",
             KF_ITEM_OBJECT(maintenance_exclusion_fields), .max_len = KF_WINDOW_MAX_EXCLUSIONS),
    KF_END,
};

const struct kf_field kf_fleet_backup_fields[] = {
    KF_BOOL("enabled", "Take scheduled etcd snapshots.", .dflt = "true"),
    KF_STRING("interval", "Time between snapshots (jitter is added).", .format = KF_FMT_DURATION,
              .flags = KF_F_MAX, .max = 30 * 86400, .dflt = "\"6h\""),
    KF_INT("retain", "Snapshots kept.", .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 1000,
           .dflt = "7"),
    KF_END,
};

static const char *const gc_phases[] = {
    "Pending",   "Scheduled", "Provisioning", "Running", "Degraded",
    "Upgrading", "Migrating", "Deleting",     "Failed",  NULL,
};

static const char *const version_states[] = {
    "supported", "deprecated", "expired", "unsupported", "unlisted", NULL,
};

static const struct kf_field upgrade_member_fields[] = {
    KF_STRING("name", "The ControlPlaneMember.", .max_len = 253),
    KF_STRING("component", "Its component.", .max_len = 63),
    KF_STRING("zone", "Its zone.", .max_len = 63),
    KF_STRING("from", "The version it ran.", .max_len = 32),
    KF_STRING("to", "The version it moves to.", .max_len = 32),
    KF_STRING("state", "Pending, Upgrading, Done, Failed, RollingBack or RolledBack.",
              .max_len = 32),
    KF_STRING("since", "When it entered that state.", .max_len = 40),
    KF_END,
};

static const struct kf_field upgrade_status_fields[] = {
    KF_STRING("from", "The version the cluster ran.", .max_len = 32),
    KF_STRING("to", "The version it moves to.", .max_len = 32),
    KF_STRING("step",
              "Where it is: Precheck, etcd, kube-apiserver, kube-controller-manager, "
              "kube-scheduler, Postcheck, Succeeded, Failed, RollingBack, RolledBack.",
              .max_len = 64),
    KF_STRING("message", "What happens now, or what failed and where.", .max_len = 4096),
    KF_STRING("startedAt", "When it began.", .max_len = 40),
    KF_STRING("finishedAt", "When it ended (absent while it runs).", .max_len = 40),
    KF_ARRAY("members", "Each member's move, in the order they move.",
             KF_ITEM_OBJECT(upgrade_member_fields), .max_len = 64),
    KF_END,
};

static const struct kf_field gc_network_fields[] = {
    KF_STRING("vpc", "The VPC the cluster's nodes live in; IP ranges are planned per VPC.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_DNS_SUBDOMAIN),
    KF_STRING("nodeCIDR", "Range for node addresses; absent: allocated from the VPC's IPPool.",
              .format = KF_FMT_CIDR),
    KF_STRING("podCIDR",
              "Range for pod addresses, disjoint from every other cluster's pods in the VPC; "
              "absent: allocated.",
              .flags = KF_F_IMMUTABLE, .format = KF_FMT_CIDR),
    KF_STRING("serviceCIDR",
              "Range for Service cluster IPs (may repeat across clusters of one VPC); absent: "
              "allocated.",
              .flags = KF_F_IMMUTABLE, .format = KF_FMT_CIDR),
    KF_INT("maxPodsPerNode",
           "Pods per node; sizes the pod range with expectedNodes. Absent: the template's, "
           "else the profile's, else 110.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 8, .max = 1024),
    KF_INT("nodeCIDRMaskSize",
           "Prefix length of each node's pod block; absent: from "
           "maxPodsPerNode.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 16, .max = 28),
    KF_END,
};

static const struct kf_field gc_placement_fields[] = {
    KF_STRING("unit", "Pin the control plane to this unit (it must still pass the filters).",
              .format = KF_FMT_DNS_LABEL),
    KF_ARRAY("zones", "Zones the members may use; absent: every zone of the unit.",
             KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .flags = KF_F_UNIQUE, .max_len = 16),
    KF_ARRAY("avoidUnits", "Units never to use.", KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL),
             .flags = KF_F_UNIQUE, .max_len = 64),
    KF_LABEL_SELECTOR("unitSelector", "Only units whose labels match."),
    KF_END,
};

static const struct kf_field gc_spec_fields[] = {
    KF_STRING("region", "The Region the cluster lives in.", .flags = KF_F_REQUIRED | KF_F_IMMUTABLE,
              .format = KF_FMT_DNS_LABEL),
    KF_STRING("template", "A Template whose settings apply where this spec sets none.",
              .format = KF_FMT_DNS_SUBDOMAIN),
    KF_STRING("profile", "The Profile (cluster type); absent: the template's, else \"standard\".",
              .format = KF_FMT_DNS_LABEL),
    KF_STRING("version",
              "Kubernetes version (\"1.37\"); absent: the template's or profile's default when "
              "the cluster is created (a later change of those never re-versions it). A change "
              "upgrades the control plane, one minor at a time, inside the maintenance window.",
              .format = KF_FMT_VERSION),
    KF_OBJECT("upgrade", "How upgrades of this cluster run.",
              KF_FIELDS(KF_BOOL("force",
                                "Start an upgrade outside the maintenance window (the next "
                                "one, and any rollback, which never waits).",
                                .dflt = "false"))),
    KF_INT("expectedNodes",
           "Nodes the cluster is expected to reach; sets the grade. Absent: the template's, "
           "else 3.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 5000),
    KF_INT("expectedPods", "Pods the cluster is expected to run; may raise the grade.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 1000000),
    KF_STRING("grade", "Pin the control-plane grade (G0..G5) instead of deriving it.",
              .enum_values = kf_fleet_grades),
    KF_OBJECT("network", "The cluster's network.", gc_network_fields, .flags = KF_F_REQUIRED),
    KF_OBJECT("placement", "Wishes for where the control plane goes.", gc_placement_fields),
    KF_FLEET_COMPLIANCE,
    KF_FLEET_MAINTENANCE_WINDOW,
    KF_FLEET_BACKUP,
    KF_FLEET_FLAGS,
    KF_BOOL("paused", "Controllers leave a paused cluster as it is.", .dflt = "false"),
    KF_INT("simulatedNodes",
           "Simulated worker nodes (KWOK) registered with the guest apiserver: they keep "
           "their leases and run the pods the scheduler binds to them, for tests and "
           "local fleets. 0 or absent: none.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = KF_KWOK_MAX_NODES),
    KF_END,
};

static const struct kf_schema gc_spec = {
    .description = "Desired state of a GuestCluster.",
    .fields = gc_spec_fields,
};

static const struct kf_field gc_status_fields[] = {
    KF_STRING("phase",
              "Pending, Scheduled, Provisioning, Running, Degraded, Upgrading, "
              "Migrating, Deleting or Failed.",
              .enum_values = gc_phases),
    KF_STRING("unit", "The unit hosting the control plane.", .format = KF_FMT_DNS_LABEL),
    KF_STRING("grade", "The control-plane grade in effect.", .enum_values = kf_fleet_grades),
    KF_STRING("version",
              "The Kubernetes version every member runs (changed once an upgrade's postcheck "
              "passed).",
              .format = KF_FMT_VERSION),
    KF_STRING("versionState",
              "Where that version is in its profile's lifecycle: supported, deprecated, "
              "expired, unsupported or unlisted (no longer in its versions).",
              .enum_values = version_states),
    KF_OBJECT("upgrade", "The last upgrade (or rollback) and where it is.", upgrade_status_fields),
    KF_STRING("profile", "The profile in effect.", .format = KF_FMT_DNS_LABEL),
    KF_OBJECT("network", "Ranges allocated to the cluster.",
              KF_FIELDS(KF_STRING("nodeCIDR", "Node range.", .format = KF_FMT_CIDR),
                        KF_STRING("podCIDR", "Pod range.", .format = KF_FMT_CIDR),
                        KF_STRING("serviceCIDR", "Service range.", .format = KF_FMT_CIDR),
                        KF_STRING("kubernetesServiceIP",
                                  "The kubernetes Service address (index 1 of the range).",
                                  .format = KF_FMT_IP),
                        KF_STRING("dnsServiceIP", "Cluster DNS (index 10 of the range).",
                                  .format = KF_FMT_IP),
                        KF_STRING("ipPool", "The IPPool the ranges came from.",
                                  .format = KF_FMT_DNS_SUBDOMAIN))),
    KF_OBJECT(
        "endpoints", "Where to reach the control plane.",
        KF_FIELDS(
            KF_STRING("apiServer",
                      "The cluster's stable apiserver endpoint: its unit's load balancer, "
                      "which health-checks every kube-apiserver member.",
                      .format = KF_FMT_URL),
            KF_ARRAY("etcd", "etcd client URLs.", KF_ITEM_STRING(.format = KF_FMT_URL),
                     .max_len = 16),
            KF_STRING("kubeconfig", "Path of the admin kubeconfig on kfleetd.", .max_len = 1024))),
    KF_OBJECT(
        "members", "Control-plane members.",
        KF_FIELDS(KF_INT("desired", "Members the grade calls for.", .flags = KF_F_MIN, .min = 0),
                  KF_INT("ready", "Members Running and Ready.", .flags = KF_F_MIN, .min = 0)),
        .flags = KF_F_OPEN),
    KF_OBJECT(
        "nodes", "The cluster's simulated nodes (spec.simulatedNodes).",
        KF_FIELDS(KF_INT("simulated", "Simulated nodes asked for.", .flags = KF_F_MIN, .min = 0),
                  KF_INT("registered", "Of those, registered with the guest apiserver.",
                         .flags = KF_F_MIN, .min = 0),
                  KF_INT("ready", "Of those, Ready.", .flags = KF_F_MIN, .min = 0),
                  KF_STRING("message", "Why they could not be made so, when that failed.",
                            .max_len = 4096))),
    KF_ANY("effective", "The settings in effect after template, profile and spec are merged."),
    KF_STRING("message", "The most important thing to know now, for people.", .max_len = 4096),
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema gc_status = {
    .description = "Observed state of a GuestCluster, written by the controllers.",
    .fields = gc_status_fields,
    .open = true,
};

/* A change of spec.version moves one minor at a time from what runs (the
 * status's version, else the old spec's). */
static void check_version_step(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    const char *to = kf_json_str(obj, "spec.version", NULL), *from;
    struct kf_strbuf why = KF_STRBUF_INIT;

    if (!old || !to || kf_streq(to, kf_json_str(old, "spec.version", NULL)))
        return;
    from = kf_json_str(old, "status.version", kf_json_str(old, "spec.version", NULL));
    if (kf_version_step_ok(from, to, &why) < 0)
        kf_causes_add(causes, "FieldValueInvalid", "spec.version", "%s", why.buf);
    kf_strbuf_release(&why);
}

static void gc_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    static const char *const ranges[] = {
        "spec.network.nodeCIDR",
        "spec.network.podCIDR",
        "spec.network.serviceCIDR",
    };
    const char *pod = kf_json_str(obj, "spec.network.podCIDR", NULL);

    kf_fleet_check_disjoint(obj, ranges, KF_ARRAY_SIZE(ranges), causes);
    kf_fleet_check_version(obj, old, "spec.version", causes);
    if (pod) {
        struct kf_cidr p;
        int64_t nodes = kf_json_int(obj, "spec.expectedNodes", 0);
        int64_t per_node = kf_json_int(obj, "spec.network.maxPodsPerNode", 110);

        if (kf_cidr_parse(pod, &p, NULL) == 0 && p.family == 4 &&
            (uint64_t)(nodes * per_node) > kf_cidr_size(&p))
            kf_causes_add(causes, "FieldValueInvalid", "spec.network.podCIDR",
                          "\"%s\" has %llu addresses but expectedNodes x maxPodsPerNode = "
                          "%lld x %lld needs %lld: use a shorter prefix",
                          pod, (unsigned long long)kf_cidr_size(&p), (long long)nodes,
                          (long long)per_node, (long long)(nodes * per_node));
    }
    kf_window_check(obj, "spec.maintenanceWindow", causes);
    check_version_step(obj, old, causes);
    if (kf_json_path(obj, "spec.placement.unit") &&
        kf_json_path(obj, "spec.placement.avoidUnits")) {
        json_t *avoid = kf_json_path(obj, "spec.placement.avoidUnits"), *v;
        const char *unit = kf_json_str(obj, "spec.placement.unit", "");
        size_t i;

        json_array_foreach(avoid, i, v) if (!strcmp(json_string_value(v), unit))
            kf_causes_add(causes, "FieldValueInvalid", "spec.placement.unit",
                          "\"%s\" is also listed in spec.placement.avoidUnits", unit);
    }
}

static void col_nodes(const json_t *obj, struct kf_strbuf *out)
{
    json_int_t n = kf_json_int(obj, "spec.expectedNodes", -1);

    if (n < 0) /* inherited from the template: the merged value */
        n = kf_json_int(obj, "status.effective.expectedNodes", -1);

    if (n >= 0)
        kf_strbuf_addf(out, "%lld", (long long)n);
}

/* The version that runs; "1.36->1.37" while an upgrade moves it; its
 * lifecycle state when that is not plain supported ("1.36 (deprecated)"). */
static void col_version(const json_t *obj, struct kf_strbuf *out)
{
    const char *s = kf_json_str(obj, "status.version", NULL);
    const char *state = kf_json_str(obj, "status.versionState", "supported");
    const char *to = kf_json_str(obj, "status.upgrade.to", NULL);

    kf_strbuf_addstr(out, s ? s : kf_json_str(obj, "spec.version", ""));
    if (s && to && !kf_json_str(obj, "status.upgrade.finishedAt", NULL) && !kf_streq(s, to))
        kf_strbuf_addf(out, "->%s", to);
    if (strcmp(state, "supported") != 0)
        kf_strbuf_addf(out, " (%s)", state);
}

static void col_grade(const json_t *obj, struct kf_strbuf *out)
{
    const char *s = kf_json_str(obj, "status.grade", NULL);

    kf_strbuf_addstr(out, s ? s : kf_json_str(obj, "spec.grade", ""));
}

static void col_members(const json_t *obj, struct kf_strbuf *out)
{
    json_t *m = kf_json_path(obj, "status.members");

    if (json_is_object(m))
        kf_strbuf_addf(out, "%lld/%lld", (long long)kf_json_int(m, "ready", 0),
                       (long long)kf_json_int(m, "desired", 0));
}

static const struct kf_column gc_columns[] = {
    { .header = "REGION", .path = "spec.region", .type = "string" },
    { .header = "UNIT", .path = "status.unit", .type = "string" },
    { .header = "GRADE", .fn = col_grade, .type = "string" },
    { .header = "VERSION", .fn = col_version, .type = "string" },
    { .header = "PHASE", .path = "status.phase", .type = "string" },
    { .header = "NODES", .fn = col_nodes, .type = "integer" },
    { .header = "MEMBERS", .fn = col_members, .type = "string", .wide = true },
    { .header = "PROFILE", .path = "spec.profile", .type = "string", .wide = true },
    { .header = "VPC", .path = "spec.network.vpc", .type = "string", .wide = true },
    { .header = "POD-CIDR", .path = "status.network.podCIDR", .type = "string", .wide = true },
};

static const char *const gc_short[] = { "gc", NULL };

const struct kf_kind kf_kind_guestcluster = {
    .kind = "GuestCluster",
    .plural = "guestclusters",
    .singular = "guestcluster",
    .short_names = gc_short,
    .description = "A Kubernetes cluster whose control plane kfleet runs on a unit: placed by "
                   "grade and water level, given IP ranges from its VPC, and kept running, "
                   "backed up and upgraded.",
    .has_status = true,
    .name_is_label = true,
    .spec_schema = &gc_spec,
    .status_schema = &gc_status,
    .validate = gc_validate,
    .columns = gc_columns,
    .n_columns = KF_ARRAY_SIZE(gc_columns),
};
