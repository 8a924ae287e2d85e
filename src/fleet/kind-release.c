/* kind-release.c: Release, a fleet-wide roll-out of a Kubernetes version
 * (spec.version, or what a Template now says: spec.template) over the
 * GuestClusters a selector picks, in waves: canary clusters, a unit, a
 * region, percentages, the rest. Each wave bounds how many clusters move at
 * once (maxConcurrency), waits (bakeTime) and asks a health gate (alerts of
 * the central Prometheus) before the next, and pauses the release when more
 * than maxFailures of its clusters fail or it makes no progress for
 * progressDeadline. paused and abort are the operator's buttons (`kfleet
 * rollout pause|resume|abort`).
 *
 * Admission refuses what the schema cannot say (both or neither of version
 * and template, a rest wave that is not last, percentages over 100, alert
 * names PromQL would misread) and, reading the store (admit_stored,
 * fleet-release.c), a selector matching nothing, overlapping waves, a
 * template without a version and clusters a minor too far behind. The
 * controller is src/controllers/ctrl-release.c; docs/internals/releases.md
 * has the behaviour. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/release.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const rel_phases[] = {
    KF_REL_PHASE_PROGRESSING,
    KF_REL_PHASE_PAUSED,
    KF_REL_PHASE_COMPLETED,
    KF_REL_PHASE_ABORTED,
    NULL,
};

static const struct kf_field wave_fields[] = {
    KF_STRING("name", "The wave's name (\"canary\", \"hz-u1\", \"rest\"), unique in the release.",
              .flags = KF_F_REQUIRED, .format = KF_FMT_DNS_LABEL),
    KF_ARRAY("clusters", "Named clusters (canaries): the wave takes these.",
             KF_ITEM_STRING(.format = KF_FMT_DNS_SUBDOMAIN, .max_len = 253), .flags = KF_F_UNIQUE,
             .min_len = 1, .max_len = 256),
    KF_LABEL_SELECTOR("selector", "The wave takes the release's clusters whose labels match."),
    KF_ARRAY("units", "The wave takes the release's clusters placed on these units.",
             KF_ITEM_STRING(.format = KF_FMT_DNS_SUBDOMAIN, .max_len = 253), .flags = KF_F_UNIQUE,
             .min_len = 1, .max_len = 64),
    KF_ARRAY("regions", "The wave takes the release's clusters in these regions.",
             KF_ITEM_STRING(.format = KF_FMT_DNS_SUBDOMAIN, .max_len = 253), .flags = KF_F_UNIQUE,
             .min_len = 1, .max_len = 64),
    KF_INT("percent",
           "The wave takes this percentage of the release's clusters (rounded up) from those no "
           "named wave takes, spread by a hash of their names. Not with clusters, selector, "
           "units or regions. A wave with none of these takes every cluster left: the last "
           "wave only.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 100),
    KF_INT_OR_STRING("maxConcurrency",
                     "Clusters of the wave upgrading at once: a number, or a percentage of the "
                     "wave's clusters rounded up (\"10%\").",
                     .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 100000,
                     .format = KF_FMT_PERCENT, .max_len = 4, .dflt = "1"),
    KF_STRING("bakeTime",
              "How long the wave's clusters run the new version, with the health gate asked "
              "throughout, before the next wave starts.",
              .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 7 * 86400, .dflt = "\"0s\""),
    KF_INT("maxFailures", "Failed clusters the wave tolerates; one more pauses the release.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 100000, .dflt = "0"),
    KF_STRING("progressDeadline",
              "While clusters of the wave are upgrading, the longest time without one finishing "
              "or starting; then the release pauses (ProgressDeadlineExceeded).",
              .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 7 * 86400, .dflt = "\"1h\""),
    KF_END,
};

static const struct kf_field gate_fields[] = {
    KF_ARRAY("alerts",
             "Alert names (\"KfleetGuestApiserverDown\"): the gate fails while one of them "
             "fires for a cluster the release has moved.",
             KF_ITEM_STRING(.min_len = 1, .max_len = 128), .flags = KF_F_REQUIRED | KF_F_UNIQUE,
             .min_len = 1, .max_len = 32),
    KF_STRING("prometheus",
              "The Prometheus to ask (its base URL); absent: the central Prometheus of "
              "kfleetd's monitoring.",
              .format = KF_FMT_URL, .max_len = 1024),
    KF_STRING("interval", "How often the gate is asked while a wave moves or bakes.",
              .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 3600, .dflt = "\"30s\""),
    KF_END,
};

static const struct kf_field rel_spec_fields[] = {
    KF_STRING("version",
              "The Kubernetes version to roll out (\"1.31\"); one minor above what the clusters "
              "run at most. Exactly one of version and template.",
              .flags = KF_F_IMMUTABLE, .format = KF_FMT_VERSION),
    KF_STRING("template",
              "Roll out the version the Template of this name now says, over the clusters that "
              "use it (a template change never re-versions clusters by itself).",
              .flags = KF_F_IMMUTABLE, .format = KF_FMT_DNS_SUBDOMAIN, .max_len = 253),
    KF_LABEL_SELECTOR("selector", "Which GuestClusters, by their labels; absent: every one.",
                      .flags = KF_F_IMMUTABLE),
    KF_ARRAY("waves", "The waves, in order: each starts once the one before it is done.",
             KF_ITEM_OBJECT(wave_fields), .flags = KF_F_REQUIRED, .min_len = 1,
             .max_len = KF_RELEASE_MAX_WAVES),
    KF_OBJECT("healthGate", "Alerts that stop the release while they fire for its clusters.",
              gate_fields),
    KF_BOOL("paused", "No cluster starts while true; the controller sets it when a gate fails.",
            .dflt = "false"),
    KF_BOOL("abort", "Stops the release for good: no cluster starts again. Cannot be undone.",
            .dflt = "false"),
    KF_END,
};

static const struct kf_schema rel_spec = {
    .description = "Desired state of a Release.",
    .fields = rel_spec_fields,
};

static const struct kf_field rel_status_fields[] = {
    KF_STRING("phase", "Progressing, Paused, Completed or Aborted.", .enum_values = rel_phases),
    KF_STRING("targetVersion", "The version rolled out (the template's, frozen at the start).",
              .format = KF_FMT_VERSION),
    KF_INT("currentWave", "Index of the wave moving now.", .flags = KF_F_MIN, .min = 0),
    KF_ANY("clusters",
           "Counts over the whole release: total, updated, inProgress, failed, pending, "
           "waitingForWindow, skipped."),
    KF_ARRAY("waves", "Per wave: name, state, the same counts, startedAt, completedAt.",
             KF_ITEM(KF_T_ANY), .max_len = KF_RELEASE_MAX_WAVES),
    KF_ANY("pause", "Why the release is paused: reason, message, at."),
    KF_ARRAY("failures", "The first failed clusters: cluster, wave, reason, message.",
             KF_ITEM(KF_T_ANY), .max_len = 64),
    KF_ANY("gate", "The health gate's last answer: checkedAt, firing [{alert, cluster}], message."),
    KF_STRING("startedAt", "When the first cluster started.", .format = KF_FMT_RFC3339),
    KF_STRING("completedAt", "When the release completed or was aborted.",
              .format = KF_FMT_RFC3339),
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema rel_status = {
    .description = "Observed state of a Release, written by its controller.",
    .fields = rel_status_fields,
    .open = true,
};

/* Alert names go into a PromQL regular expression: metric-name characters
 * only, so a name cannot widen the query. */
static bool alert_name_ok(const char *s)
{
    if (!s || !*s || !(((*s | 32) >= 'a' && (*s | 32) <= 'z') || *s == '_' || *s == ':'))
        return false;
    for (; *s; s++)
        if (!(((*s | 32) >= 'a' && (*s | 32) <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == ':'))
            return false;
    return true;
}

static void validate_waves(const json_t *waves, struct kf_causes *causes)
{
    int64_t percent = 0;
    const json_t *w;
    size_t i, n = json_array_size(waves);

    json_array_foreach(waves, i, w)
    {
        bool named = kf_json_path(w, "clusters") || kf_json_path(w, "selector") ||
                     kf_json_path(w, "units") || kf_json_path(w, "regions");
        char *f = kf_xasprintf("spec.waves[%zu]", i);

        for (size_t j = 0; j < i; j++)
            if (kf_streq(kf_json_str(w, "name", NULL),
                         kf_json_str(json_array_get(waves, j), "name", NULL)))
                kf_causes_add(causes, "FieldValueDuplicate", f, "Duplicate value: wave name \"%s\"",
                              kf_json_str(w, "name", ""));
        if (named && kf_json_path(w, "percent"))
            kf_causes_add(causes, "FieldValueInvalid", f,
                          "a wave takes named clusters (clusters, selector, units, regions) or a "
                          "percent, not both");
        if (!named && !kf_json_path(w, "percent") && i + 1 != n)
            kf_causes_add(causes, "FieldValueInvalid", f,
                          "wave \"%s\" names no clusters, so it takes the rest: only the last "
                          "wave may",
                          kf_json_str(w, "name", ""));
        percent += kf_json_int(w, "percent", 0);
        free(f);
    }
    if (percent > 100)
        kf_causes_add(causes, "FieldValueInvalid", "spec.waves",
                      "the waves' percentages add up to %lld%%: at most 100%%", (long long)percent);
}

static void rel_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    bool version = kf_json_path(obj, "spec.version") != NULL;
    const json_t *a;
    size_t i;

    if (version == (kf_json_path(obj, "spec.template") != NULL))
        kf_causes_add(causes, "FieldValueRequired", "spec.version",
                      "Required value: exactly one of spec.version (a version) and "
                      "spec.template (the version a Template says)");
    kf_fleet_check_version(obj, old, "spec.version", causes);
    validate_waves(kf_json_path(obj, "spec.waves"), causes);
    json_array_foreach(kf_json_path(obj, "spec.healthGate.alerts"), i, a)
    {
        if (alert_name_ok(json_string_value(a)))
            continue;
        char *f = kf_xasprintf("spec.healthGate.alerts[%zu]", i);

        kf_causes_add(causes, "FieldValueInvalid", f,
                      "invalid alert name \"%.128s\": letters, digits, '_' and ':' only, not "
                      "starting with a digit",
                      json_string_value(a));
        free(f);
    }
    if (old && kf_json_bool(old, "spec.abort", false) && !kf_json_bool(obj, "spec.abort", false))
        kf_causes_add(causes, "FieldValueForbidden", "spec.abort",
                      "Forbidden: an aborted release stays aborted; create a new Release");
}

static void col_progress(const json_t *obj, struct kf_strbuf *out)
{
    if (kf_json_path(obj, "status.clusters.total"))
        kf_strbuf_addf(out, "%lld/%lld", (long long)kf_json_int(obj, "status.clusters.updated", 0),
                       (long long)kf_json_int(obj, "status.clusters.total", 0));
}

static void col_wave(const json_t *obj, struct kf_strbuf *out)
{
    const json_t *w = json_array_get(kf_json_path(obj, "status.waves"),
                                     (size_t)kf_json_int(obj, "status.currentWave", 0));

    if (w)
        kf_strbuf_addstr(out, kf_json_str(w, "name", ""));
}

static void col_target(const json_t *obj, struct kf_strbuf *out)
{
    const char *v = kf_json_str(obj, "spec.version", NULL);

    if (!v)
        v = kf_json_str(obj, "status.targetVersion", NULL);
    if (v)
        kf_strbuf_addstr(out, v);
}

static const struct kf_column rel_columns[] = {
    { .header = "TARGET", .fn = col_target, .type = "string" },
    { .header = "PHASE", .path = "status.phase", .type = "string" },
    { .header = "WAVE", .fn = col_wave, .type = "string" },
    { .header = "UPDATED", .fn = col_progress, .type = "string" },
    { .header = "FAILED", .path = "status.clusters.failed", .type = "integer" },
    { .header = "REASON", .path = "status.pause.reason", .type = "string", .wide = true },
};

static const char *const rel_short[] = { "rel", NULL };

const struct kf_kind kf_kind_release = {
    .kind = "Release",
    .plural = "releases",
    .singular = "release",
    .short_names = rel_short,
    .description = "A fleet-wide roll-out of a Kubernetes version (or of what a Template says) "
                   "over the GuestClusters a selector picks, in waves with a concurrency, a "
                   "bake time, a failure budget, a progress deadline and a Prometheus health "
                   "gate; it pauses itself when a gate fails or failures pass the budget.",
    .has_status = true,
    .name_is_label = true,
    .spec_schema = &rel_spec,
    .status_schema = &rel_status,
    .validate = rel_validate,
    .admit_stored = kf_release_admit_stored,
    .columns = rel_columns,
    .n_columns = KF_ARRAY_SIZE(rel_columns),
};
