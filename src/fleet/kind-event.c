/* kind-event.c: Event, a record of something a controller did or saw, and
 * why ("Scheduled", "NoHeadroom", "HostNotReady"). Written only by kfleetd
 * through the recorder in fleet-events.c, which folds repeats into a count;
 * users read and delete them, and they expire after a TTL. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/selector.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const event_types[] = { "Normal", "Warning", NULL };

static const struct kf_field event_spec_fields[] = {
    KF_OBJECT(
        "involvedObject", "The object the event is about.",
        KF_FIELDS(
            KF_STRING("apiVersion", "Its API version.", .max_len = 64),
            KF_STRING("kind", "Its kind.", .flags = KF_F_REQUIRED, .min_len = 1, .max_len = 63),
            KF_STRING("name", "Its name.", .flags = KF_F_REQUIRED, .format = KF_FMT_DNS_SUBDOMAIN),
            KF_STRING("uid", "Its uid.", .max_len = 64)),
        .flags = KF_F_REQUIRED | KF_F_IMMUTABLE),
    KF_STRING("type", "Normal, or Warning when someone should look.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .enum_values = event_types),
    KF_STRING("reason", "Why, in one CamelCase word (\"Scheduled\", \"NoHeadroom\").",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_REASON, .max_len = 128),
    KF_STRING("message", "What happened, for people.", .max_len = 4096),
    KF_INT("count", "How many times this happened.", .flags = KF_F_MIN | KF_F_MAX, .min = 1,
           .max = 2147483647, .dflt = "1"),
    KF_STRING("firstTimestamp", "When it first happened.", .format = KF_FMT_RFC3339),
    KF_STRING("lastTimestamp", "When it last happened.", .format = KF_FMT_RFC3339),
    KF_OBJECT("source", "Who recorded it.",
              KF_FIELDS(KF_STRING("component", "The controller (\"placement\").", .max_len = 128),
                        KF_STRING("host", "The machine it ran on.", .max_len = 253))),
    KF_END,
};

static const struct kf_schema event_spec = {
    .description = "What happened to which object.",
    .fields = event_spec_fields,
};

static char *event_name_prefix(const struct kf_selector *fields)
{
    const char *key;

    for (size_t i = 0; (key = kf_selector_key(fields, i)); i++) {
        const char *v = kf_selector_equals(fields, i);

        if (!strcmp(key, "spec.involvedObject.name") && v && *v)
            return kf_fleet_event_name_prefix(v);
    }
    return NULL;
}

static void col_object(const json_t *obj, struct kf_strbuf *out)
{
    kf_strbuf_addf(out, "%s/%s", kf_json_str(obj, "spec.involvedObject.kind", ""),
                   kf_json_str(obj, "spec.involvedObject.name", ""));
}

static const struct kf_column event_columns[] = {
    { .header = "LAST", .path = "spec.lastTimestamp", .type = "date" },
    { .header = "TYPE", .path = "spec.type", .type = "string" },
    { .header = "REASON", .path = "spec.reason", .type = "string" },
    { .header = "OBJECT", .fn = col_object, .type = "string" },
    { .header = "COUNT", .path = "spec.count", .type = "integer" },
    { .header = "MESSAGE", .path = "spec.message", .type = "string" },
    { .header = "SOURCE", .path = "spec.source.component", .type = "string", .wide = true },
};

static const char *const event_short[] = { "ev", NULL };

const struct kf_kind kf_kind_event = {
    .kind = "Event",
    .plural = "events",
    .singular = "event",
    .short_names = event_short,
    .description = "A record of what a kfleet controller did or observed and why, about one "
                   "object; repeats are counted, and events expire after an hour.",
    .has_status = false,
    .system = true,
    .spec_schema = &event_spec,
    .name_prefix = event_name_prefix,
    .columns = event_columns,
    .n_columns = KF_ARRAY_SIZE(event_columns),
};
