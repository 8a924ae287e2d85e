/* schema.h: declarative field schemas for kfleet kinds.
 *
 * A kind describes its spec and status as static C tables of struct
 * kf_field. One engine (src/fleet/fleet-schema.c) walks those tables to
 *   - fill defaults and normalize values (kf_schema_defaults),
 *   - validate a value into Kubernetes-style causes with field paths such as
 *     "spec.network.podCIDR" or "spec.zones[1]" (kf_schema_validate),
 *   - write the OpenAPI v3 schema kubectl reads for `kubectl explain` and
 *     client-side validation (kf_schema_openapi),
 *   - document every field (kf_schema_lookup, kf_schema_doc).
 *
 * Unknown fields are rejected (cause type "FieldValueUnknown", HTTP 422),
 * except inside objects marked KF_F_OPEN (free-form), because a misspelled
 * field that is silently dropped ("waterlevel") is dangerous in a fleet
 * manager. See docs/internals/fleet.md.
 *
 * A table is a NULL-name-terminated array of struct kf_field:
 *
 *     static const struct kf_field net_fields[] = {
 *         KF_STRING("vpc", "VPC the cluster's nodes live in.",
 *                   .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .max_len = 63),
 *         KF_STRING("podCIDR", "Pod range.", .format = KF_FMT_CIDR),
 *         KF_INT("maxPodsPerNode", "Pods per node.", .min = 8, .max = 256,
 *                .flags = KF_F_MIN | KF_F_MAX, .dflt = "110"),
 *         KF_END,
 *     };
 *
 * Arrays and maps describe their elements with .items (a single field whose
 * name is ignored); objects list their members in .fields.
 */
#ifndef KF_SCHEMA_H
#define KF_SCHEMA_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_causes;
struct kf_strbuf;

enum kf_type {
    KF_T_STRING = 1,
    KF_T_INT,           /* JSON integer */
    KF_T_NUMBER,        /* JSON integer or real */
    KF_T_BOOL,          /* JSON true/false */
    KF_T_OBJECT,        /* members in .fields; unknown members rejected unless KF_F_OPEN */
    KF_T_ARRAY,         /* elements described by .items */
    KF_T_MAP,           /* string keys (checked by .key_format / .key_enum) to .items */
    KF_T_ANY,           /* free-form object: any members, not checked */
    KF_T_QUANTITY,      /* Kubernetes quantity: a string ("500m", "4Gi") or a non-negative
                    * number; numbers are normalized to their string form */
    KF_T_INT_OR_STRING, /* Kubernetes IntOrString: a JSON integer (checked like KF_T_INT)
                         * or a string (checked like KF_T_STRING, e.g. KF_FMT_PERCENT) */
};

enum kf_format {
    KF_FMT_NONE = 0,
    KF_FMT_DNS_LABEL,     /* RFC 1123 label: [a-z0-9-], <= 63, alphanumeric ends */
    KF_FMT_DNS_SUBDOMAIN, /* dot-separated DNS labels, <= 253 */
    KF_FMT_LABEL_KEY,     /* [prefix/]name as label keys */
    KF_FMT_LABEL_VALUE,   /* <= 63 of [A-Za-z0-9_.-], may be empty */
    KF_FMT_CIDR,          /* canonical IPv4 or IPv6 prefix: "10.0.0.0/16" */
    KF_FMT_IP,            /* an IPv4 or IPv6 address */
    KF_FMT_QUANTITY,      /* "500m", "4Gi" (KF_T_QUANTITY uses this implicitly) */
    KF_FMT_DURATION,      /* "90s", "1h30m" */
    KF_FMT_VERSION,       /* Kubernetes minor or patch version: "1.30", "1.30.2" */
    KF_FMT_RFC3339,       /* "2026-01-02T15:04:05Z" */
    KF_FMT_TIME_OF_DAY,   /* "HH:MM", 24 h, UTC */
    KF_FMT_URL,           /* http:// or https:// URL */
    KF_FMT_REASON,        /* CamelCase word, as Kubernetes event and condition reasons */
    KF_FMT_PERCENT,       /* a percentage: digits then '%' ("10%", "100%") */
};

/* Field flags. */
#define KF_F_REQUIRED  (1u << 0) /* must be present (and non-null) */
#define KF_F_IMMUTABLE (1u << 1) /* may not change on update (nor be added or removed) */
#define KF_F_SET_ONCE  (1u << 2) /* may be added on update, never changed or removed */
#define KF_F_MIN       (1u << 3) /* numbers: value >= min (> min with KF_F_XMIN) */
/* KF_F_MAX on a quantity: max in base units (cores, bytes); on a duration
 * (KF_FMT_DURATION): max in seconds. */
#define KF_F_MAX    (1u << 4) /* numbers: value <= max (< max with KF_F_XMAX) */
#define KF_F_XMIN   (1u << 5) /* exclusive min (implies KF_F_MIN) */
#define KF_F_XMAX   (1u << 6) /* exclusive max (implies KF_F_MAX) */
#define KF_F_UNIQUE (1u << 7) /* arrays of scalars: no duplicates */
#define KF_F_OPEN \
    (1u << 8) /* objects: keep unknown members (x-kubernetes-preserve-unknown-fields) */
#define KF_F_NULLABLE (1u << 9) /* null is accepted (and kept) */

struct kf_field {
    const char *name; /* member name; NULL ends a table */
    enum kf_type type;
    const char *description; /* one or two sentences, shown by `explain` and in docs/api.md */
    unsigned flags;
    enum kf_format format;          /* strings (and map keys with key_format) */
    const char *const *enum_values; /* strings: NULL-terminated allowed values */
    double min, max;                /* numbers, with KF_F_MIN / KF_F_MAX */
    size_t min_len;                 /* strings: bytes; arrays and maps: items */
    size_t max_len;                 /* strings: bytes; arrays and maps: items (0: default cap) */
    const char *dflt;               /* default as JSON text ("0.6", "\"standard\"", "{}") */
    const struct kf_field *fields;  /* KF_T_OBJECT members */
    const struct kf_field *items;   /* KF_T_ARRAY / KF_T_MAP element */
    enum kf_format key_format;      /* KF_T_MAP keys */
    const char *const *key_enum;    /* KF_T_MAP keys: allowed keys */
};

/* The top of a spec or status. */
struct kf_schema {
    const char *description;
    const struct kf_field *fields;
    bool open; /* unknown top-level members kept (status schemas) */
};

/* Caps that apply when a field sets none: strings 4 KiB, arrays and maps
 * 1,024 items. Causes stop after KF_SCHEMA_MAX_CAUSES (one more says how many
 * were left out). */
#define KF_SCHEMA_MAX_STRING 4096
#define KF_SCHEMA_MAX_ITEMS  1024
#define KF_SCHEMA_MAX_CAUSES 64
/* Bounds that apply to numbers, quantities and durations when a field sets
 * none (every spec field sets its own: test-schema checks that, so that
 * nothing sized from an object is unbounded; these catch status fields):
 * numbers within ±2^53, quantities up to 2^50 base units (1 Pi bytes or
 * cores), durations up to 366 days. Percentages (KF_FMT_PERCENT) are
 * 0..100 %. */
#define KF_SCHEMA_MAX_NUMBER     9007199254740992.0
#define KF_SCHEMA_MAX_QUANTITY   1125899906842624.0
#define KF_SCHEMA_MAX_DURATION_S (366.0 * 24 * 3600)

/* Table helpers: name, description, then any designated initializers. */
#define KF_STRING(n, d, ...)                                          \
    {                                                                 \
        .name = n, .type = KF_T_STRING, .description = d, __VA_ARGS__ \
    }
#define KF_INT(n, d, ...)                                          \
    {                                                              \
        .name = n, .type = KF_T_INT, .description = d, __VA_ARGS__ \
    }
#define KF_NUMBER(n, d, ...)                                          \
    {                                                                 \
        .name = n, .type = KF_T_NUMBER, .description = d, __VA_ARGS__ \
    }
#define KF_BOOL(n, d, ...)                                          \
    {                                                               \
        .name = n, .type = KF_T_BOOL, .description = d, __VA_ARGS__ \
    }
#define KF_QUANTITY(n, d, ...)                                          \
    {                                                                   \
        .name = n, .type = KF_T_QUANTITY, .description = d, __VA_ARGS__ \
    }
#define KF_INT_OR_STRING(n, d, ...)                                          \
    {                                                                        \
        .name = n, .type = KF_T_INT_OR_STRING, .description = d, __VA_ARGS__ \
    }
#define KF_ANY(n, d, ...)                                          \
    {                                                              \
        .name = n, .type = KF_T_ANY, .description = d, __VA_ARGS__ \
    }
#define KF_OBJECT(n, d, f, ...)                                                    \
    {                                                                              \
        .name = n, .type = KF_T_OBJECT, .description = d, .fields = f, __VA_ARGS__ \
    }
#define KF_ARRAY(n, d, it, ...)                                                   \
    {                                                                             \
        .name = n, .type = KF_T_ARRAY, .description = d, .items = it, __VA_ARGS__ \
    }
#define KF_MAP(n, d, it, ...)                                                   \
    {                                                                           \
        .name = n, .type = KF_T_MAP, .description = d, .items = it, __VA_ARGS__ \
    }
#define KF_END       \
    {                \
        .name = NULL \
    }
/* An inline member table for KF_OBJECT / KF_ITEM_OBJECT, KF_END added. */
#define KF_FIELDS(...) ((const struct kf_field[]){ __VA_ARGS__, KF_END })

/* Element descriptions for KF_ARRAY / KF_MAP (.items). */
#define KF_ITEM(t, ...)       (&(const struct kf_field){ .name = "", .type = t, __VA_ARGS__ })
#define KF_ITEM_STRING(...)   KF_ITEM(KF_T_STRING, __VA_ARGS__)
#define KF_ITEM_INT(...)      KF_ITEM(KF_T_INT, __VA_ARGS__)
#define KF_ITEM_NUMBER(...)   KF_ITEM(KF_T_NUMBER, __VA_ARGS__)
#define KF_ITEM_QUANTITY(...) KF_ITEM(KF_T_QUANTITY, __VA_ARGS__)
#define KF_ITEM_OBJECT(f, ...) \
    (&(const struct kf_field){ .name = "", .type = KF_T_OBJECT, .fields = f, __VA_ARGS__ })

/* Shared field tables every kind may use (a member table must be referenced
 * by address to stay a constant initializer, hence the macros). */
extern const struct kf_field kf_schema_condition_fields[];
extern const struct kf_field kf_schema_label_selector_fields[];
/* "conditions": Kubernetes conditions (type, status, reason, message, ...). */
#define KF_CONDITIONS                                                                       \
    KF_ARRAY("conditions",                                                                  \
             "Observations of the object's state, as Kubernetes conditions: one entry per " \
             "type.",                                                                       \
             KF_ITEM_OBJECT(kf_schema_condition_fields), .max_len = 64)
/* A Kubernetes LabelSelector object (matchLabels, matchExpressions). */
#define KF_LABEL_SELECTOR(n, d, ...) KF_OBJECT(n, d, kf_schema_label_selector_fields, __VA_ARGS__)

/* Fills defaults into v (an object described by s) in place: absent members
 * with a default get it, present objects are walked; KF_T_QUANTITY numbers
 * become strings. Values of the wrong type are left for validation. */
void kf_schema_defaults(const struct kf_schema *s, json_t *v);

/* Validates v against s, adding causes whose field paths start at `path`
 * ("spec"). old is the stored value on update (NULL on create): immutable
 * fields are compared with it. Returns the number of causes added. A value
 * that is not an object adds one cause. */
size_t kf_schema_validate(const struct kf_schema *s, const json_t *v, const json_t *old,
                          const char *path, struct kf_causes *causes);

/* Checks one string against a format. Returns true if valid; otherwise
 * writes what is wrong (no field name) into why if given. */
bool kf_format_check(enum kf_format f, const char *s, struct kf_strbuf *why);
const char *kf_format_name(enum kf_format f); /* "cidr", "duration", ... ("" for none) */

/* The OpenAPI v3 schema of s (type object, properties, required,
 * descriptions, enums, ranges, formats, defaults). New reference. */
json_t *kf_schema_openapi(const struct kf_schema *s);
json_t *kf_field_openapi(const struct kf_field *f);

/* The field at a dotted path below s ("network.podCIDR"; array and map
 * elements are stepped through transparently: "zones", "taints.effect").
 * NULL if there is none. */
const struct kf_field *kf_schema_lookup(const struct kf_schema *s, const char *path);

/* Appends a Markdown table of every field below s (one row per field, with
 * its dotted path under prefix, type, constraints and description). */
void kf_schema_doc(const struct kf_schema *s, const char *prefix, struct kf_strbuf *out);
/* The rules of f in words: "required; immutable; > 0; < 1; default `0.6`". */
void kf_field_rules(const struct kf_field *f, struct kf_strbuf *out);
/* "string", "integer", "[]string", "map[string]quantity", "object", ... */
void kf_field_type_name(const struct kf_field *f, struct kf_strbuf *out);

#endif
