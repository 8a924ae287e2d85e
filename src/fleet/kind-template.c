/* kind-template.c: Template, a reusable named set of cluster settings on
 * top of a profile. A GuestCluster names a template and overrides what it
 * wants; the merged result shows in the cluster's status.effective. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/window.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const struct kf_field template_spec_fields[] = {
    KF_STRING("profile", "The Profile the template builds on.", .flags = KF_F_REQUIRED,
              .format = KF_FMT_DNS_LABEL),
    KF_STRING("description", "What the template is for.", .max_len = 2048),
    KF_STRING("version", "Kubernetes version of clusters that name none.",
              .format = KF_FMT_VERSION),
    KF_STRING("grade", "Grade of clusters that pin none (G0..G5).", .enum_values = kf_fleet_grades),
    KF_INT("expectedNodes", "expectedNodes of clusters that set none.",
           .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 5000),
    KF_OBJECT("network", "Network sizing defaults.",
              KF_FIELDS(KF_INT("maxPodsPerNode", "Pods per node.", .flags = KF_F_MIN | KF_F_MAX,
                               .min = 8, .max = 1024),
                        KF_INT("nodeCIDRMaskSize", "Prefix length of each node's pod block.",
                               .flags = KF_F_MIN | KF_F_MAX, .min = 16, .max = 28),
                        KF_INT("serviceCIDRPrefix",
                               "Prefix length of allocated service ranges (20 = 4,096).",
                               .flags = KF_F_MIN | KF_F_MAX, .min = 12, .max = 29))),
    KF_FLEET_COMPLIANCE,
    KF_FLEET_MAINTENANCE_WINDOW,
    KF_FLEET_BACKUP,
    KF_FLEET_FLAGS,
    KF_END,
};

static const struct kf_schema template_spec = {
    .description = "Settings a GuestCluster inherits.",
    .fields = template_spec_fields,
};

static void template_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    kf_fleet_check_version(obj, old, "spec.version", causes);
    kf_window_check(obj, "spec.maintenanceWindow", causes);
}

static const struct kf_column template_columns[] = {
    { .header = "PROFILE", .path = "spec.profile", .type = "string" },
    { .header = "VERSION", .path = "spec.version", .type = "string" },
    { .header = "GRADE", .path = "spec.grade", .type = "string" },
    { .header = "DESCRIPTION", .path = "spec.description", .type = "string", .wide = true },
};

static const char *const template_short[] = { "tpl", NULL };

const struct kf_kind kf_kind_template = {
    .kind = "Template",
    .plural = "templates",
    .singular = "template",
    .short_names = template_short,
    .description = "A named set of cluster settings on top of a profile; guest clusters name a "
                   "template and override what they need.",
    .has_status = false,
    .spec_schema = &template_spec,
    .validate = template_validate,
    .columns = template_columns,
    .n_columns = KF_ARRAY_SIZE(template_columns),
};
