/* kind-alertroute.c: AlertRoute, one node of Alertmanager's route tree:
 * which alerts (matchers) go to which AlertReceiver, how they are grouped
 * and how often notifications repeat. A route names its parent route
 * (absent: a child of the tree's root); siblings are tried in spec.order,
 * then by name. One route may be the root itself (spec.root): its receiver
 * gets what no child takes. The monitoring controller builds the tree and
 * reports a route it cannot place (a parent that does not exist, a cycle) as
 * an Event and a condition, leaving it out of the rendered configuration. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const match_ops[] = { "=", "!=", "=~", "!~", NULL };

static const struct kf_field route_spec_fields[] = {
    KF_STRING("receiver", "The AlertReceiver notifications of this route go to.",
              .flags = KF_F_REQUIRED, .format = KF_FMT_DNS_LABEL),
    KF_BOOL("root",
            "This route is the root of the tree: its receiver gets every alert no child "
            "route takes. At most one route is the root; it has no parent and no matchers.",
            .dflt = "false"),
    KF_STRING("parent", "The AlertRoute this one is a child of (absent: a child of the root).",
              .format = KF_FMT_DNS_LABEL),
    KF_INT("order", "Position among its siblings (lower first; ties by name).",
           .flags = KF_F_MIN | KF_F_MAX, .min = -1000000, .max = 1000000, .dflt = "0"),
    KF_ARRAY(
        "matchers", "Conditions on alert labels; all must hold.",
        KF_ITEM_OBJECT(KF_FIELDS(
            KF_STRING("name", "Label name.", .flags = KF_F_REQUIRED, .max_len = 128),
            KF_STRING("op", "=, !=, =~ or !~.", .enum_values = match_ops, .dflt = "\"=\""),
            KF_STRING("value", "Value, or a regular expression for =~ and !~.", .max_len = 1024))),
        .max_len = 32),
    KF_ARRAY("groupBy",
             "Labels that group alerts into one notification (\"...\": every label, i.e. no "
             "grouping).",
             KF_ITEM_STRING(.max_len = 128), .flags = KF_F_UNIQUE, .max_len = 32),
    KF_STRING("groupWait", "How long to wait for more alerts before the first notification.",
              .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 3600),
    KF_STRING("groupInterval",
              "How long to wait before notifying about new alerts of a group already notified; "
              "must exceed twice Alertmanager's peer timeout.",
              .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 86400),
    KF_STRING("repeatInterval", "How long before a notification still firing is sent again.",
              .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 30 * 86400),
    KF_BOOL("continue", "Keep matching the following siblings after this route matched.",
            .dflt = "false"),
    KF_END,
};

static const struct kf_schema route_spec = {
    .description = "Desired state of an AlertRoute.",
    .fields = route_spec_fields,
};

static const struct kf_field route_status_fields[] = {
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema route_status = {
    .description = "Observed state of an AlertRoute, written by kfleetd.",
    .fields = route_status_fields,
    .open = true,
};

static bool label_name_ok(const char *s)
{
    if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static void route_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    json_t *v;
    size_t i;
    (void)old;

    if (json_is_true(kf_json_path(obj, "spec.root"))) {
        if (kf_json_path(obj, "spec.parent"))
            kf_causes_add(causes, "FieldValueForbidden", "spec.parent",
                          "Forbidden: the root route has no parent");
        if (json_array_size(kf_json_path(obj, "spec.matchers")))
            kf_causes_add(causes, "FieldValueForbidden", "spec.matchers",
                          "Forbidden: the root route matches every alert");
        if (json_is_true(kf_json_path(obj, "spec.continue")))
            kf_causes_add(causes, "FieldValueForbidden", "spec.continue",
                          "Forbidden: the root route has no siblings");
    }
    if (kf_streq(kf_json_str(obj, "spec.parent", NULL), kf_json_str(obj, "metadata.name", "")))
        kf_causes_add(causes, "FieldValueInvalid", "spec.parent",
                      "Invalid value: a route cannot be its own parent");
    json_array_foreach(kf_json_path(obj, "spec.matchers"), i, v)
    {
        const char *name = kf_json_str(v, "name", "");

        if (!label_name_ok(name))
            kf_causes_add(causes, "FieldValueInvalid", "spec.matchers.name",
                          "Invalid value: \"%s\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                          name);
    }
    json_array_foreach(kf_json_path(obj, "spec.groupBy"), i, v)
    {
        const char *name = json_string_value(v);

        if (name && strcmp(name, "...") != 0 && !label_name_ok(name))
            kf_causes_add(causes, "FieldValueInvalid", "spec.groupBy",
                          "Invalid value: \"%s\" is not a label name", name);
    }
}

static const struct kf_column route_columns[] = {
    { .header = "RECEIVER", .path = "spec.receiver", .type = "string" },
    { .header = "PARENT", .path = "spec.parent", .type = "string" },
    { .header = "ROOT", .path = "spec.root", .type = "string" },
    { .header = "CONTINUE", .path = "spec.continue", .type = "string", .wide = true },
};

static const char *const route_short[] = { "art", NULL };

const struct kf_kind kf_kind_alertroute = {
    .kind = "AlertRoute",
    .plural = "alertroutes",
    .singular = "alertroute",
    .short_names = route_short,
    .description = "A node of Alertmanager's route tree: which alerts (label matchers) go to "
                   "which AlertReceiver, grouped how and repeated how often. Routes name their "
                   "parent; one route may be the root.",
    .has_status = true,
    .name_is_label = true,
    .spec_schema = &route_spec,
    .status_schema = &route_status,
    .validate = route_validate,
    .columns = route_columns,
    .n_columns = KF_ARRAY_SIZE(route_columns),
};
