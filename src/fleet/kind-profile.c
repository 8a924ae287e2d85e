/* kind-profile.c: Profile, a type of guest cluster (standard, serverless,
 * ai, baremetal, edge, windows): the control-plane components it runs with
 * their flags, the Kubernetes versions it supports, and what it needs from
 * the unit that hosts it. Only the schema lives here; the six default
 * profiles and their content are installed by the placement work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "kfleet/versions.h"
#include "fleet/fleet-internal.h"

static const char *const node_os[] = { "linux", "windows", NULL };
static const char *const probe_schemes[] = { "http", "https", NULL };

static const struct kf_field component_fields[] = {
    KF_STRING("name", "Component name (\"etcd\", \"kube-apiserver\", \"kube-scheduler\").",
              .flags = KF_F_REQUIRED, .format = KF_FMT_DNS_LABEL),
    KF_STRING("binary",
              "Program to run, a path or a name looked up in the component catalog per version.",
              .max_len = 256),
    KF_ARRAY("args", "Arguments after the program name; {{placeholders}} are filled per member.",
             KF_ITEM_STRING(.max_len = 4096), .max_len = 256),
    KF_MAP("env", "Environment variables.", KF_ITEM_STRING(.max_len = 4096), .max_len = 64),
    KF_MAP("ports", "Named ports the component listens on.",
           KF_ITEM_INT(.flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 65535),
           .key_format = KF_FMT_DNS_LABEL, .max_len = 16),
    KF_INT("replicas", "Fixed number of members; absent: from the cluster's grade.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 16),
    KF_BOOL("perZone", "One member per zone of the unit (etcd).", .dflt = "false"),
    KF_NUMBER("share",
              "Share (0..1] of the grade's control-plane requests this component gets; absent: "
              "the grade table's split.",
              .flags = KF_F_XMIN | KF_F_MAX, .min = 0, .max = 1),
    KF_OBJECT("probe", "HTTP health probe of each member.",
              KF_FIELDS(KF_STRING("path", "Request path (\"/healthz\").", .max_len = 256),
                        KF_STRING("port", "Name of the port to probe.", .format = KF_FMT_DNS_LABEL),
                        KF_STRING("scheme", "http or https.", .enum_values = probe_schemes,
                                  .dflt = "\"https\""),
                        KF_STRING("period", "Time between probes.", .format = KF_FMT_DURATION,
                                  .flags = KF_F_MAX, .max = 3600, .dflt = "\"10s\""))),
    KF_BOOL("optional", "The cluster is Running without this component.", .dflt = "false"),
    KF_END,
};

static const struct kf_field version_lifecycle_fields[] = {
    KF_STRING("version", "The minor (\"1.36\"), one of spec.versions.", .flags = KF_F_REQUIRED,
              .format = KF_FMT_VERSION),
    KF_BOOL("supported", "New clusters and upgrades may use it.", .dflt = "true"),
    KF_BOOL("deprecated", "It still runs but its clusters should move on.", .dflt = "false"),
    KF_STRING("expirationDate", "\"YYYY-MM-DD\" (UTC): from then on it is refused.", .max_len = 10),
    KF_END,
};

static const struct kf_field profile_spec_fields[] = {
    KF_STRING("displayName", "Human-readable name.", .max_len = 128),
    KF_STRING("description", "What the profile is for.", .max_len = 2048),
    KF_ARRAY("versions", "Kubernetes minor versions the profile supports (\"1.30\").",
             KF_ITEM_STRING(.format = KF_FMT_VERSION), .flags = KF_F_REQUIRED | KF_F_UNIQUE,
             .min_len = 1, .max_len = 32),
    KF_STRING("defaultVersion",
              "Version of new clusters that name none; one of versions. Changing it never "
              "re-versions existing clusters.",
              .format = KF_FMT_VERSION),
    KF_ARRAY("versionLifecycle",
             "Where each of versions is in its life: supported: false refuses new clusters and "
             "upgrades on it; deprecated: true marks its clusters; from expirationDate on it is "
             "refused like an unsupported one.",
             KF_ITEM_OBJECT(version_lifecycle_fields), .max_len = 32),
    KF_ARRAY("components", "Control-plane components, in start order.",
             KF_ITEM_OBJECT(component_fields), .max_len = 32),
    KF_FLEET_FLAGS,
    KF_OBJECT(
        "etcd", "The cluster's etcd.",
        KF_FIELDS(KF_INT("members", "Members (odd: 1, 3 or 5); absent: from the grade.",
                         .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 7),
                  KF_QUANTITY("quotaBackendBytes", "etcd's database size quota (\"8Gi\").",
                              .flags = KF_F_MAX, .max = 64.0 * 1024 * 1024 * 1024),
                  KF_BOOL("dedicated", "etcd members get hosts of their own.", .dflt = "false"),
                  KF_STRING("snapshotInterval", "Time between backups by default.",
                            .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 30 * 86400))),
    KF_OBJECT("apiServer", "The cluster's kube-apiserver.",
              KF_FIELDS(KF_INT("replicas", "Replicas; absent: from the grade.",
                               .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 16),
                        KF_INT("maxRequestsInflight", "--max-requests-inflight.",
                               .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 100000),
                        KF_INT("maxMutatingRequestsInflight", "--max-mutating-requests-inflight.",
                               .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 100000))),
    KF_STRING("heartbeatGrace",
              "How long a worker may miss heartbeats before it is NotReady (long for edge).",
              .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 7 * 86400),
    KF_OBJECT("hosting", "What the profile needs from the unit that hosts its control planes.",
              KF_FIELDS(KF_ARRAY("unitFeatures", "Features every hosting unit must offer.",
                                 KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .flags = KF_F_UNIQUE,
                                 .max_len = 16),
                        KF_INT("minZones", "Zones the unit must span.",
                               .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 16),
                        KF_BOOL("dedicatedHosts", "Members get hosts no other cluster uses.",
                                .dflt = "false"))),
    KF_STRING("nodeOS", "Operating system of the worker nodes.", .enum_values = node_os,
              .dflt = "\"linux\""),
    KF_INT("maxNodes", "Largest cluster the profile supports (expectedNodes).",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 100000),
    KF_INT("maxPodsPerNode", "Default pods per node of the profile's clusters.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 1024),
    KF_ARRAY("features", "Capabilities of the cluster type (\"gpu-operator\", \"virtual-nodes\").",
             KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .flags = KF_F_UNIQUE, .max_len = 32),
    KF_END,
};

static const struct kf_schema profile_spec = {
    .description = "A cluster type.",
    .fields = profile_spec_fields,
};

static void check_lifecycle(const json_t *obj, struct kf_causes *causes)
{
    json_t *lc = kf_json_path(obj, "spec.versionLifecycle"), *e, *v;
    size_t i, j;

    json_array_foreach(lc, i, e)
    {
        const char *ver = kf_json_str(e, "version", ""), *exp;
        char *field = kf_xasprintf("spec.versionLifecycle[%zu]", i);
        bool listed = false;
        int64_t ms;

        json_array_foreach(kf_json_path(obj, "spec.versions"), j, v) listed =
            listed || kf_version_minor(json_string_value(v)) == kf_version_minor(ver);
        if (!listed)
            kf_causes_add(causes, "FieldValueInvalid", field,
                          "version \"%s\" is not one of spec.versions", ver);
        exp = kf_json_str(e, "expirationDate", NULL);
        if (exp) {
            char *t = kf_xasprintf("%sT00:00:00Z", exp);

            if (strlen(exp) != 10 || kf_time_parse_rfc3339(t, &ms) < 0)
                kf_causes_add(causes, "FieldValueInvalid", field,
                              "expirationDate \"%s\" is not a date \"YYYY-MM-DD\"", exp);
            free(t);
        }
        free(field);
    }
}

static void profile_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    json_t *versions = kf_json_path(obj, "spec.versions"), *v, *comps, *c;
    const char *dflt = kf_json_str(obj, "spec.defaultVersion", NULL);
    size_t i;
    bool found = false;

    json_array_foreach(versions, i, v) found =
        found || (dflt && !strcmp(json_string_value(v), dflt));
    if (dflt && !found)
        kf_causes_add(causes, "FieldValueInvalid", "spec.defaultVersion",
                      "\"%s\" is not one of spec.versions", dflt);
    kf_fleet_check_version(obj, old, "spec.versions", causes);
    check_lifecycle(obj, causes);
    comps = kf_json_path(obj, "spec.components");
    json_array_foreach(comps, i, c)
    {
        const char *name = kf_json_str(c, "name", "");

        for (size_t j = 0; j < i; j++) {
            if (!strcmp(name, kf_json_str(json_array_get(comps, j), "name", ""))) {
                char *field = kf_xasprintf("spec.components[%zu].name", i);

                kf_causes_add(causes, "FieldValueDuplicate", field, "Duplicate value: \"%s\"",
                              name);
                free(field);
                break;
            }
        }
    }
    if (kf_json_int(obj, "spec.etcd.members", 1) % 2 == 0)
        kf_causes_add(causes, "FieldValueInvalid", "spec.etcd.members",
                      "must be odd (1, 3, 5 or 7) so that a majority survives a failure");
}

static void col_versions(const json_t *obj, struct kf_strbuf *out)
{
    json_t *v = kf_json_path(obj, "spec.versions");
    size_t n = json_array_size(v);

    if (n == 1)
        kf_strbuf_addstr(out, json_string_value(json_array_get(v, 0)));
    else if (n > 1)
        kf_strbuf_addf(out, "%s..%s", json_string_value(json_array_get(v, 0)),
                       json_string_value(json_array_get(v, n - 1)));
}

static void col_components(const json_t *obj, struct kf_strbuf *out)
{
    kf_fleet_col_count(obj, "spec.components", out);
}

static const struct kf_column profile_columns[] = {
    { .header = "VERSIONS", .fn = col_versions, .type = "string" },
    { .header = "DEFAULT", .path = "spec.defaultVersion", .type = "string" },
    { .header = "COMPONENTS", .fn = col_components, .type = "integer" },
    { .header = "NODE-OS", .path = "spec.nodeOS", .type = "string" },
    { .header = "UNIT-FEATURES",
      .path = "spec.hosting.unitFeatures",
      .type = "string",
      .wide = true },
};

static const char *const profile_short[] = { "pf", NULL };

const struct kf_kind kf_kind_profile = {
    .kind = "Profile",
    .plural = "profiles",
    .singular = "profile",
    .short_names = profile_short,
    .description = "A type of guest cluster (standard, serverless, ai, baremetal, edge, "
                   "windows): its control-plane components and flags, the versions it "
                   "supports and what it needs from a hosting unit.",
    .has_status = false,
    .name_is_label = true,
    .spec_schema = &profile_spec,
    .validate = profile_validate,
    .columns = profile_columns,
    .n_columns = KF_ARRAY_SIZE(profile_columns),
};
