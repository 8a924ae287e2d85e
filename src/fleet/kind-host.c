/* kind-host.c: Host, a machine that runs kfleet-agent. A meta host belongs
 * to a unit and runs control-plane members; a worker host is a node of one
 * guest cluster and runs BroadcastJob tasks. Readiness comes from heartbeats
 * held in memory; only transitions are written to status. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const host_roles[] = { "meta", "worker", NULL };
static const char *const taint_effects[] = { "NoSchedule", "PreferNoSchedule", "NoExecute", NULL };

static const struct kf_field host_spec_fields[] = {
    KF_STRING("role",
              "meta: runs guest control planes for a unit; worker: a node of a guest cluster.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .enum_values = host_roles),
    KF_STRING("unit", "The Unit a meta host belongs to (meta hosts only).", .flags = KF_F_IMMUTABLE,
              .format = KF_FMT_DNS_LABEL),
    KF_STRING("cluster", "The GuestCluster a worker host is a node of (worker hosts only).",
              .flags = KF_F_IMMUTABLE, .format = KF_FMT_DNS_SUBDOMAIN),
    KF_STRING("zone", "The zone (data centre) the host is in.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_DNS_LABEL),
    KF_FLEET_RESOURCES("capacity",
                       "What the host offers (\"cpu\": \"64\", \"memory\": \"256Gi\"); the "
                       "agent reports it when it registers."),
    KF_FLEET_RESOURCES("reserved",
                       "Resources kept for the system and the agent; allocatable is capacity "
                       "minus reserved."),
    KF_ARRAY("taints",
             "Taints: control-plane members are not placed on a host whose taints "
             "they do not tolerate.",
             KF_ITEM_OBJECT(KF_FIELDS(
                 KF_STRING("key", "Taint key.", .flags = KF_F_REQUIRED, .format = KF_FMT_LABEL_KEY),
                 KF_STRING("value", "Taint value.", .format = KF_FMT_LABEL_VALUE),
                 KF_STRING("effect", "NoSchedule, PreferNoSchedule or NoExecute.",
                           .flags = KF_F_REQUIRED, .enum_values = taint_effects))),
             .max_len = 32),
    KF_BOOL("unschedulable", "Cordoned: nothing new is placed on the host.", .dflt = "false"),
    KF_STRING("address", "IP address other components reach the agent and its members at.",
              .format = KF_FMT_IP),
    KF_END,
};

static const struct kf_schema host_spec = {
    .description = "Desired state of a Host.",
    .fields = host_spec_fields,
};

static const struct kf_field host_status_fields[] = {
    KF_BOOL("ready", "Whether the agent heartbeats within the grace period."),
    KF_STRING("lastHeartbeatTime", "Last heartbeat kfleetd wrote down (transitions only).",
              .format = KF_FMT_RFC3339),
    KF_STRING("lastTransitionTime", "When ready last changed.", .format = KF_FMT_RFC3339),
    KF_FLEET_RESOURCES("allocatable", "Capacity minus reserved."),
    KF_FLEET_RESOURCES("allocated", "Requests of the members bound to the host."),
    KF_INT("members", "Control-plane members bound to the host.", .flags = KF_F_MIN, .min = 0),
    KF_STRING("agentVersion", "Version of kfleet-agent.", .max_len = 64),
    KF_ARRAY("kubernetesVersions",
             "Kubernetes releases installed on the host (/opt/kfleet/kubernetes/<minor>); "
             "upgrades start only when every member's host holds the new one.",
             KF_ITEM_STRING(.format = KF_FMT_VERSION), .max_len = 32),
    KF_STRING("address", "Address the agent reported.", .format = KF_FMT_IP),
    KF_OBJECT("nodeInfo", "What the agent reported about the machine.",
              KF_FIELDS(KF_STRING("os", "Operating system.", .max_len = 128),
                        KF_STRING("kernel", "Kernel release.", .max_len = 128),
                        KF_STRING("arch", "CPU architecture.", .max_len = 32),
                        KF_STRING("hostname", "Host name.", .max_len = 253)),
              .flags = KF_F_OPEN),
    KF_STRING("message", "Why the host is not Ready, for people.", .max_len = 4096),
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema host_status = {
    .description = "Observed state of a Host.",
    .fields = host_status_fields,
    .open = true,
};

static void host_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    const char *role = kf_json_str(obj, "spec.role", "");
    bool has_unit = kf_json_path(obj, "spec.unit") != NULL;
    bool has_cluster = kf_json_path(obj, "spec.cluster") != NULL;

    if (strcmp(role, "meta") == 0) {
        if (!has_unit)
            kf_causes_add(causes, "FieldValueRequired", "spec.unit",
                          "Required value: a meta host belongs to a unit");
        if (has_cluster)
            kf_causes_add(causes, "FieldValueForbidden", "spec.cluster",
                          "Forbidden: a meta host belongs to a unit, not a cluster");
    } else if (strcmp(role, "worker") == 0) {
        if (!has_cluster)
            kf_causes_add(causes, "FieldValueRequired", "spec.cluster",
                          "Required value: a worker host is a node of a guest cluster");
        if (has_unit)
            kf_causes_add(causes, "FieldValueForbidden", "spec.unit",
                          "Forbidden: a worker host belongs to a cluster, not a unit");
    }
}

static void col_owner(const json_t *obj, struct kf_strbuf *out)
{
    const char *s = kf_json_str(obj, "spec.unit", NULL);

    kf_strbuf_addstr(out, s ? s : kf_json_str(obj, "spec.cluster", ""));
}

static void col_ready(const json_t *obj, struct kf_strbuf *out)
{
    json_t *v = kf_json_path(obj, "status.ready");

    kf_strbuf_addstr(out, json_is_true(v) ? "True" : json_is_false(v) ? "False" : "Unknown");
}

static const struct kf_column host_columns[] = {
    { .header = "ROLE", .path = "spec.role", .type = "string" },
    { .header = "UNIT/CLUSTER", .fn = col_owner, .type = "string" },
    { .header = "ZONE", .path = "spec.zone", .type = "string" },
    { .header = "READY", .fn = col_ready, .type = "string" },
    { .header = "CPU", .path = "spec.capacity.cpu", .type = "string" },
    { .header = "MEMORY", .path = "spec.capacity.memory", .type = "string" },
    { .header = "MEMBERS", .path = "status.members", .type = "integer", .wide = true },
    { .header = "ADDRESS", .path = "spec.address", .type = "string", .wide = true },
    { .header = "UNSCHEDULABLE", .path = "spec.unschedulable", .type = "string", .wide = true },
};

static const char *const host_short[] = { "ho", NULL };

const struct kf_kind kf_kind_host = {
    .kind = "Host",
    .plural = "hosts",
    .singular = "host",
    .short_names = host_short,
    .description = "A machine running kfleet-agent: a meta host of a unit (runs guest control "
                   "planes) or a worker node of a guest cluster.",
    .has_status = true,
    .spec_schema = &host_spec,
    .status_schema = &host_status,
    .validate = host_validate,
    .columns = host_columns,
    .n_columns = KF_ARRAY_SIZE(host_columns),
};
