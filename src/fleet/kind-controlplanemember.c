/* kind-controlplanemember.c: ControlPlaneMember, one running copy of one
 * component of one guest cluster (the Pod of this system). Placement binds
 * it to a meta host; that host's agent runs it as a child process and
 * reports phase, pid, restarts and readiness in status. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const cpm_phases[] = {
    "Pending", "Starting",           "Running", "Ready", "Backoff", "Stopped",
    "Failed",  "BinaryNotInstalled", "Unknown", NULL,
};
static const char *const probe_schemes[] = { "http", "https", NULL };

static const struct kf_field cpm_spec_fields[] = {
    KF_STRING("cluster", "The GuestCluster the member belongs to.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_DNS_LABEL),
    KF_STRING("component", "Which component (\"etcd\", \"kube-apiserver\").",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_DNS_LABEL),
    KF_INT("index", "Ordinal of the member among the component's members.",
           .flags = KF_F_MIN | KF_F_MAX | KF_F_IMMUTABLE, .min = 0, .max = 63),
    KF_STRING("version", "Version of the component to run.", .format = KF_FMT_VERSION),
    KF_STRING("host",
              "The Host the member is bound to: set by placement, changed by member "
              "replacement when the host is lost (docs/internals/replacement.md).",
              .format = KF_FMT_DNS_SUBDOMAIN),
    KF_STRING("zone", "Zone of the host.", .format = KF_FMT_DNS_LABEL),
    KF_OBJECT("resources", "What the member requests and may use at most.",
              KF_FIELDS(KF_FLEET_RESOURCES("requests", "Reserved for the member on its host."),
                        KF_FLEET_RESOURCES("limits", "Enforced with cgroups where possible."))),
    KF_MAP("ports", "Named ports the member listens on.",
           KF_ITEM_INT(.flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 65535),
           .key_format = KF_FMT_DNS_LABEL, .max_len = 16),
    KF_STRING("binary", "Program to execute (no shell).", .max_len = 256),
    KF_ARRAY("args", "Arguments after the program name.", KF_ITEM_STRING(.max_len = 4096),
             .max_len = 256),
    KF_MAP("env", "Environment variables.", KF_ITEM_STRING(.max_len = 4096), .max_len = 64),
    KF_OBJECT(
        "probe", "HTTP health probe.",
        KF_FIELDS(KF_STRING("path", "Request path.", .max_len = 256),
                  KF_INT("port", "Port.", .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 65535),
                  KF_STRING("scheme", "http or https.", .enum_values = probe_schemes,
                            .dflt = "\"https\""))),
    KF_END,
};

static const struct kf_schema cpm_spec = {
    .description = "Desired state of a ControlPlaneMember.",
    .fields = cpm_spec_fields,
};

static const struct kf_field cpm_status_fields[] = {
    KF_STRING("phase",
              "Pending, Starting, Running (not ready), Ready, Backoff (waiting to "
              "restart), Stopped, Failed, BinaryNotInstalled or Unknown.",
              .enum_values = cpm_phases),
    KF_BOOL("ready", "Whether the health probe passes."),
    KF_INT("pid", "Process id on the host.", .flags = KF_F_MIN, .min = 0),
    KF_INT("restarts", "Restarts since the member was created.", .flags = KF_F_MIN, .min = 0),
    KF_INT("lastExitCode", "Exit status of the last run.", .flags = KF_F_MIN | KF_F_MAX,
           .min = -255, .max = 255),
    KF_STRING("startedAt", "When the current process started.", .format = KF_FMT_RFC3339),
    KF_STRING("version", "The spec.version of the command line the process runs.",
              .format = KF_FMT_VERSION),
    KF_STRING("host", "The host the agent runs it on.", .format = KF_FMT_DNS_SUBDOMAIN),
    KF_STRING("message", "Why it is not Running, for people.", .max_len = 4096),
    KF_STRING("version",
              "The version the running process runs (spec.version of the generation it was "
              "started for); absent while none runs.",
              .format = KF_FMT_VERSION),
    KF_FLEET_RESOURCES("usage", "Resources the process uses now."),
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_OBJECT("etcdMemberChange",
              "The agent's answer to the member's kfleet.io/etcd-member-change request (an etcd "
              "membership change for a replacement).",
              KF_FIELDS(KF_STRING("id", "The request answered.", .max_len = 64),
                        KF_STRING("phase", "Succeeded or Failed.", .max_len = 16),
                        KF_STRING("message", "What was done, or why not.", .max_len = 4096))),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema cpm_status = {
    .description = "Observed state of a ControlPlaneMember, written by the agent.",
    .fields = cpm_status_fields,
    .open = true,
};

static void col_ready(const json_t *obj, struct kf_strbuf *out)
{
    json_t *v = kf_json_path(obj, "status.ready");

    kf_strbuf_addstr(out, json_is_true(v) ? "True" : json_is_false(v) ? "False" : "Unknown");
}

static const struct kf_column cpm_columns[] = {
    { .header = "CLUSTER", .path = "spec.cluster", .type = "string" },
    { .header = "COMPONENT", .path = "spec.component", .type = "string" },
    { .header = "HOST", .path = "spec.host", .type = "string" },
    { .header = "ZONE", .path = "spec.zone", .type = "string" },
    { .header = "PHASE", .path = "status.phase", .type = "string" },
    { .header = "READY", .fn = col_ready, .type = "string" },
    { .header = "RESTARTS", .path = "status.restarts", .type = "integer" },
    { .header = "VERSION", .path = "spec.version", .type = "string", .wide = true },
    { .header = "PID", .path = "status.pid", .type = "integer", .wide = true },
};

static const char *const cpm_short[] = { "cpm", NULL };

const struct kf_kind kf_kind_controlplanemember = {
    .kind = "ControlPlaneMember",
    .plural = "controlplanemembers",
    .singular = "controlplanemember",
    .short_names = cpm_short,
    .description = "One running copy of one control-plane component (etcd, kube-apiserver, ...) "
                   "of a guest cluster, bound to a meta host whose agent runs it.",
    .has_status = true,
    .spec_schema = &cpm_spec,
    .status_schema = &cpm_status,
    .columns = cpm_columns,
    .n_columns = KF_ARRAY_SIZE(cpm_columns),
};
