/* kind-broadcastjob.c: BroadcastJob, a command run once on every eligible
 * Host, with OpenKruise's BroadcastJob semantics: which hosts (a label
 * selector, tolerations for their taints), how many at a time
 * (parallelism), when it ends (completionPolicy), what a failure does
 * (failurePolicy) and pause. The admission rules are Kruise's webhook's:
 * restartPolicy must be Never or OnFailure, and the deadline and the TTL are
 * refused with completionPolicy Never. The controller is
 * src/controllers/ctrl-broadcastjob.c; docs/internals/broadcastjob.md has
 * the semantics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/broadcast.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

const char *const kf_fleet_restart_policies[] = { "Never", "OnFailure", NULL };
static const char *const completion_types[] = { "Always", "Never", NULL };
static const char *const failure_types[] = { "FailFast", "Continue", "Pause", NULL };
static const char *const toleration_ops[] = { "Exists", "Equal", NULL };
static const char *const taint_effects[] = { "NoSchedule", "PreferNoSchedule", "NoExecute", NULL };
static const char *const bcj_phases[] = {
    KF_BCJ_PHASE_RUNNING, KF_BCJ_PHASE_PAUSED, KF_BCJ_PHASE_COMPLETED, KF_BCJ_PHASE_FAILED, NULL,
};

static const struct kf_field template_fields[] = {
    KF_FLEET_BCJ_COMMAND,        KF_FLEET_BCJ_ENV, KF_FLEET_BCJ_TIMEOUT,
    KF_FLEET_BCJ_RESTART_POLICY, KF_END,
};

static const struct kf_field toleration_fields[] = {
    KF_STRING("key", "The taint key this tolerates; empty with operator Exists: every key.",
              .format = KF_FMT_LABEL_KEY),
    KF_STRING("operator", "Exists (any value) or Equal (the value must match).",
              .enum_values = toleration_ops, .dflt = "\"Equal\""),
    KF_STRING("value", "The taint value, for operator Equal.", .format = KF_FMT_LABEL_VALUE),
    KF_STRING("effect", "The effect this tolerates; empty: every effect.",
              .enum_values = taint_effects),
    KF_END,
};

static const struct kf_field completion_fields[] = {
    KF_STRING("type",
              "Always: the job ends once every eligible host has a finished task, at the "
              "deadline, or on a failure with FailFast. Never: the job is kept alive and covers "
              "hosts that become eligible later.",
              .enum_values = completion_types, .dflt = "\"Always\""),
    KF_INT("activeDeadlineSeconds",
           "Seconds from status.startTime after which a running job fails (reason "
           "DeadlineExceeded) and its active tasks are stopped. Only with type Always.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 366 * 86400),
    KF_INT("ttlSecondsAfterFinished",
           "Seconds after the job completed or failed when it is deleted, with its tasks; 0: at "
           "once; absent: never. Only with type Always.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 366 * 86400),
    KF_END,
};

static const struct kf_field failure_fields[] = {
    KF_STRING("type",
              "What a failed task does: FailFast fails the job and stops its active tasks; "
              "Continue goes on; Pause pauses the job (no new tasks) while a failed task exists.",
              .enum_values = failure_types, .dflt = "\"FailFast\""),
    KF_INT("restartLimit",
           "With restartPolicy OnFailure: how many times a failed command runs again on a host "
           "before its task counts as failed (0: the first failure counts).",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 1000),
    KF_END,
};

static const struct kf_field bcj_spec_fields[] = {
    KF_LABEL_SELECTOR("selector",
                      "Which Hosts, by their labels (kfleet.io/cluster, kfleet.io/unit, "
                      "kfleet.io/zone, kfleet.io/role and any other). Absent: every host."),
    KF_ARRAY("tolerations",
             "Taints of hosts that do not keep the job away. A host is skipped while it has a "
             "NoSchedule or NoExecute taint not tolerated here; cordoned and NotReady hosts "
             "count as tainted node.kubernetes.io/unschedulable, not-ready or unreachable "
             "(NoSchedule), as Kubernetes nodes are.",
             KF_ITEM_OBJECT(toleration_fields), .max_len = 32),
    KF_OBJECT("template", "What runs on each host.", template_fields, .flags = KF_F_REQUIRED),
    KF_INT_OR_STRING("parallelism",
                     "At most this many active tasks at a time: a number, or a percentage of "
                     "the eligible hosts rounded up (\"10%\"). Absent: no limit.",
                     .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 1000000,
                     .format = KF_FMT_PERCENT, .max_len = 5),
    KF_OBJECT("completionPolicy", "When the job ends.", completion_fields, .dflt = "{}"),
    KF_OBJECT("failurePolicy", "What a failed task does to the job.", failure_fields, .dflt = "{}"),
    KF_BOOL("paused",
            "No new tasks start while true; running ones go on (and the deadline is not "
            "checked).",
            .dflt = "false"),
    KF_END,
};

static const struct kf_schema bcj_spec = {
    .description = "Desired state of a BroadcastJob.",
    .fields = bcj_spec_fields,
};

static const struct kf_field bcj_status_fields[] = {
    KF_INT("desired",
           "Hosts the job covers: the eligible hosts, plus hosts that left after their task "
           "finished.",
           .flags = KF_F_MIN, .min = 0),
    KF_INT("active", "Tasks pending or running.", .flags = KF_F_MIN, .min = 0),
    KF_INT("succeeded", "Tasks that succeeded.", .flags = KF_F_MIN, .min = 0),
    KF_INT("failed", "Tasks that failed (including those stopped by the job).", .flags = KF_F_MIN,
           .min = 0),
    KF_STRING("phase", "running, paused, completed or failed.", .enum_values = bcj_phases),
    KF_STRING("startTime", "When the controller first saw the job.", .format = KF_FMT_RFC3339),
    KF_STRING("completionTime", "When it completed or failed.", .format = KF_FMT_RFC3339),
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema bcj_status = {
    .description = "Observed state of a BroadcastJob, written by its controller.",
    .fields = bcj_status_fields,
    .open = true,
};

static void bcj_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    const char *type = kf_json_str(obj, "spec.completionPolicy.type", "Always");
    json_t *v;
    size_t i;

    (void)old;
    /* a percentage of parallelism is 0..100 %: the schema's KF_FMT_PERCENT */
    if (strcmp(type, "Never") == 0) {
        if (kf_json_path(obj, "spec.completionPolicy.activeDeadlineSeconds"))
            kf_causes_add(causes, "FieldValueForbidden",
                          "spec.completionPolicy.activeDeadlineSeconds",
                          "Forbidden: activeDeadlineSeconds only works with completionPolicy "
                          "type Always (a Never job never ends)");
        if (kf_json_path(obj, "spec.completionPolicy.ttlSecondsAfterFinished"))
            kf_causes_add(causes, "FieldValueForbidden",
                          "spec.completionPolicy.ttlSecondsAfterFinished",
                          "Forbidden: ttlSecondsAfterFinished only works with completionPolicy "
                          "type Always (a Never job never finishes)");
    }
    json_array_foreach(kf_json_path(obj, "spec.tolerations"), i, v)
    {
        const char *op = kf_json_str(v, "operator", "Equal");
        const char *key = kf_json_str(v, "key", "");

        if (strcmp(op, "Exists") == 0 && kf_json_path(v, "value")) {
            char *f = kf_xasprintf("spec.tolerations[%zu].value", i);

            kf_causes_add(causes, "FieldValueInvalid", f,
                          "value must be empty when operator is Exists");
            free(f);
        }
        if (strcmp(op, "Equal") == 0 && !*key) {
            char *f = kf_xasprintf("spec.tolerations[%zu].operator", i);

            kf_causes_add(causes, "FieldValueInvalid", f,
                          "operator must be Exists when key is empty (to tolerate every taint)");
            free(f);
        }
    }
}

static void col_parallelism(const json_t *obj, struct kf_strbuf *out)
{
    json_t *p = kf_json_path(obj, "spec.parallelism");

    if (json_is_integer(p))
        kf_strbuf_addf(out, "%lld", (long long)json_integer_value(p));
    else if (json_is_string(p))
        kf_strbuf_addstr(out, json_string_value(p));
    else
        kf_strbuf_addstr(out, "unlimited");
}

static const struct kf_column bcj_columns[] = {
    { .header = "DESIRED", .path = "status.desired", .type = "integer" },
    { .header = "ACTIVE", .path = "status.active", .type = "integer" },
    { .header = "SUCCEEDED", .path = "status.succeeded", .type = "integer" },
    { .header = "FAILED", .path = "status.failed", .type = "integer" },
    { .header = "PHASE", .path = "status.phase", .type = "string" },
    { .header = "PARALLELISM", .fn = col_parallelism, .type = "string", .wide = true },
    { .header = "FAILURE-POLICY",
      .path = "spec.failurePolicy.type",
      .type = "string",
      .wide = true },
    { .header = "COMPLETION",
      .path = "spec.completionPolicy.type",
      .type = "string",
      .wide = true },
};

static const char *const bcj_short[] = { "bcj", NULL };

const struct kf_kind kf_kind_broadcastjob = {
    .kind = "BroadcastJob",
    .plural = "broadcastjobs",
    .singular = "broadcastjob",
    .short_names = bcj_short,
    .description = "A command run once on every eligible Host (a health check, an agent upgrade), "
                   "bounded in parallelism, with OpenKruise's BroadcastJob semantics; one "
                   "BroadcastTask per host records what happened there.",
    .has_status = true,
    .name_is_label = true,
    .spec_schema = &bcj_spec,
    .status_schema = &bcj_status,
    .validate = bcj_validate,
    .columns = bcj_columns,
    .n_columns = KF_ARRAY_SIZE(bcj_columns),
};
