/* kind-broadcasttask.c: BroadcastTask, the record of one BroadcastJob on one
 * Host (the Pod of a Kruise BroadcastJob). The job's controller creates it
 * with a copy of the job's template; the host's agent runs it and reports
 * how it ended through the result endpoint (kfleet/broadcast.h); the
 * controller counts the tasks of a job into the job's status. Names are
 * "<job>.<host>" so that the tasks of a job are one key range. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/broadcast.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/selector.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const task_phases[] = {
    KF_BCJ_TASK_PENDING, KF_BCJ_TASK_RUNNING, KF_BCJ_TASK_SUCCEEDED, KF_BCJ_TASK_FAILED, NULL,
};

static const struct kf_field task_spec_fields[] = {
    KF_STRING("job", "The BroadcastJob this task belongs to.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_DNS_LABEL),
    KF_STRING("jobUID",
              "The uid of that job: a task of an earlier job of the same name is "
              "deleted, not counted.",
              .flags = KF_F_IMMUTABLE, .max_len = 64),
    KF_STRING("host", "The Host that runs it; its agent watches spec.host=<name>.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_DNS_SUBDOMAIN),
    KF_FLEET_BCJ_COMMAND,
    KF_FLEET_BCJ_ENV,
    KF_FLEET_BCJ_TIMEOUT,
    KF_FLEET_BCJ_RESTART_POLICY,
    KF_INT("restartLimit",
           "Restarts allowed with OnFailure (the job's failurePolicy.restartLimit).",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 1000),
    KF_END,
};

static const struct kf_schema task_spec = {
    .description = "What one host runs for a BroadcastJob (a copy of the job's template).",
    .fields = task_spec_fields,
};

static const struct kf_field task_status_fields[] = {
    KF_STRING("phase",
              "Pending (not started; also when absent), Running, Succeeded or Failed. "
              "Succeeded and Failed are final.",
              .enum_values = task_phases),
    KF_STRING("reason",
              "Why it ended: Completed, Error (a non-zero exit), Signaled, Timeout, "
              "Cancelled, Stopped (by the job: FailFast or the deadline), NotRunnable.",
              .format = KF_FMT_REASON, .max_len = 64),
    KF_STRING("message", "What happened, for people.", .max_len = 1024),
    KF_INT("exitCode", "Exit status of the last attempt.", .flags = KF_F_MIN | KF_F_MAX, .min = 0,
           .max = 255),
    KF_INT("signal", "The signal that ended the last attempt.", .flags = KF_F_MIN | KF_F_MAX,
           .min = 1, .max = 64),
    KF_INT("restarts", "Times the command ran again (restartPolicy OnFailure).", .flags = KF_F_MIN,
           .min = 0),
    KF_STRING("startTime", "When the command first started on the host.", .format = KF_FMT_RFC3339),
    KF_STRING("endTime", "When the task ended.", .format = KF_FMT_RFC3339),
    KF_STRING("output",
              "The tail of stdout and stderr: at most 4 KiB of a failed task, 256 bytes of a "
              "successful one.",
              .max_len = KF_BCJ_OUTPUT_FAILED_MAX),
    KF_INT("outputDropped", "Bytes of output before that tail, not kept.", .flags = KF_F_MIN,
           .min = 0),
    KF_END,
};

static const struct kf_schema task_status = {
    .description = "How the task went on its host, reported by the host's agent.",
    .fields = task_status_fields,
    .open = true,
};

static void task_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    const char *name = kf_json_str(obj, "metadata.name", "");
    const char *job = kf_json_str(obj, "spec.job", "");
    const char *host = kf_json_str(obj, "spec.host", "");
    struct kf_strbuf want = KF_STRBUF_INIT;

    (void)old;
    kf_bcj_task_name(job, host, &want);
    if (strcmp(name, want.buf) != 0)
        kf_causes_add(causes, "FieldValueInvalid", "metadata.name",
                      "invalid value \"%.253s\": the task of job \"%s\" on host \"%.253s\" is "
                      "named \"%s\"",
                      name, job, host, want.buf);
    kf_strbuf_release(&want);
}

/* fieldSelector spec.job=J reads only the names "J.*". */
static char *task_name_prefix(const struct kf_selector *fields)
{
    const char *key;

    for (size_t i = 0; (key = kf_selector_key(fields, i)); i++) {
        const char *v = kf_selector_equals(fields, i);

        if (!strcmp(key, "spec.job") && v && *v && !strchr(v, '.'))
            return kf_xasprintf("%s.", v);
    }
    return NULL;
}

static void col_phase(const json_t *obj, struct kf_strbuf *out)
{
    kf_strbuf_addstr(out, kf_json_str(obj, "status.phase", KF_BCJ_TASK_PENDING));
}

static void col_exit(const json_t *obj, struct kf_strbuf *out)
{
    json_t *code = kf_json_path(obj, "status.exitCode");
    json_t *sig = kf_json_path(obj, "status.signal");

    if (json_is_integer(sig))
        kf_strbuf_addf(out, "signal %lld", (long long)json_integer_value(sig));
    else if (json_is_integer(code))
        kf_strbuf_addf(out, "%lld", (long long)json_integer_value(code));
}

static const struct kf_column task_columns[] = {
    { .header = "JOB", .path = "spec.job", .type = "string" },
    { .header = "HOST", .path = "spec.host", .type = "string" },
    { .header = "PHASE", .fn = col_phase, .type = "string" },
    { .header = "EXIT", .fn = col_exit, .type = "string" },
    { .header = "RESTARTS", .path = "status.restarts", .type = "integer" },
    { .header = "REASON", .path = "status.reason", .type = "string", .wide = true },
    { .header = "STARTED", .path = "status.startTime", .type = "date", .wide = true },
    { .header = "ENDED", .path = "status.endTime", .type = "date", .wide = true },
};

static const char *const task_short[] = { "bct", NULL };

const struct kf_kind kf_kind_broadcasttask = {
    .kind = "BroadcastTask",
    .plural = "broadcasttasks",
    .singular = "broadcasttask",
    .short_names = task_short,
    .description = "The record of one BroadcastJob on one Host: what runs there (a copy of the "
                   "job's template) and how it ended (exit code, times, the tail of its output). "
                   "Created by the job's controller; deleting a finished one makes the job run "
                   "on that host again.",
    .has_status = true,
    .system = true, /* created by the BroadcastJob controller only; results: /taskresults */
    .spec_schema = &task_spec,
    .status_schema = &task_status,
    .validate = task_validate,
    .name_prefix = task_name_prefix,
    .columns = task_columns,
    .n_columns = KF_ARRAY_SIZE(task_columns),
};
