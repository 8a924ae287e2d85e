/* fleet-schema.c: the declarative schema engine (contract in kfleet/schema.h).
 *
 * Kinds describe their fields as static tables; this file is the only code
 * that interprets them. Four walks share the tables: defaults (fill and
 * normalize in place), validation (causes with Kubernetes field paths),
 * OpenAPI (what kubectl reads) and documentation (docs/api.md, `explain`).
 * Keeping all four in one place means a field's rules, its default and its
 * description can never disagree.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <errno.h>

#include "kfleet/cidr.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/obj.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"

/* --- shared tables ---------------------------------------------------------- */

static const char *const condition_status_values[] = { "True", "False", "Unknown", NULL };

const struct kf_field kf_schema_condition_fields[] = {
    KF_STRING("type", "Type of the condition, CamelCase (\"Ready\", \"Scheduled\").",
              .flags = KF_F_REQUIRED, .min_len = 1, .max_len = 316),
    KF_STRING("status", "Whether the condition holds: True, False or Unknown.",
              .flags = KF_F_REQUIRED, .enum_values = condition_status_values),
    KF_INT("observedGeneration",
           "The metadata.generation of the object the condition was computed from.",
           .flags = KF_F_MIN, .min = 0),
    KF_STRING("lastTransitionTime", "When the status last changed.", .format = KF_FMT_RFC3339),
    KF_STRING("reason", "One CamelCase word for programs (\"NoHeadroom\").",
              .format = KF_FMT_REASON, .max_len = 1024),
    KF_STRING("message", "What happened and what to do about it, for people.", .max_len = 32768),
    KF_END,
};

static const char *const selector_ops[] = { "In", "NotIn", "Exists", "DoesNotExist", NULL };

const struct kf_field kf_schema_label_selector_fields[] = {
    KF_MAP("matchLabels", "Labels that must be present with these values.",
           KF_ITEM_STRING(.format = KF_FMT_LABEL_VALUE), .key_format = KF_FMT_LABEL_KEY,
           .max_len = 64),
    KF_ARRAY(
        "matchExpressions", "Requirements on label keys; all must hold.",
        KF_ITEM_OBJECT(KF_FIELDS(
            KF_STRING("key", "The label key.", .flags = KF_F_REQUIRED, .format = KF_FMT_LABEL_KEY),
            KF_STRING("operator", "In, NotIn, Exists or DoesNotExist.", .flags = KF_F_REQUIRED,
                      .enum_values = selector_ops),
            KF_ARRAY("values",
                     "Values for In and NotIn (non-empty); empty for Exists and "
                     "DoesNotExist.",
                     KF_ITEM_STRING(.format = KF_FMT_LABEL_VALUE), .max_len = 64))),
        .max_len = 64),
    KF_END,
};

/* --- formats ---------------------------------------------------------------- */

static const char *const format_names[] = {
    [KF_FMT_NONE] = "",
    [KF_FMT_DNS_LABEL] = "dns-label",
    [KF_FMT_DNS_SUBDOMAIN] = "dns-subdomain",
    [KF_FMT_LABEL_KEY] = "label-key",
    [KF_FMT_LABEL_VALUE] = "label-value",
    [KF_FMT_CIDR] = "cidr",
    [KF_FMT_IP] = "ip",
    [KF_FMT_QUANTITY] = "quantity",
    [KF_FMT_DURATION] = "duration",
    [KF_FMT_VERSION] = "version",
    [KF_FMT_RFC3339] = "date-time",
    [KF_FMT_TIME_OF_DAY] = "time-of-day",
    [KF_FMT_URL] = "url",
    [KF_FMT_REASON] = "reason",
    [KF_FMT_PERCENT] = "percent",
};

const char *kf_format_name(enum kf_format f)
{
    if ((size_t)f >= KF_ARRAY_SIZE(format_names) || !format_names[f])
        return "";
    return format_names[f];
}

static bool why(struct kf_strbuf *sb, const char *fmt, ...) KF_PRINTF(2, 3);
static bool why(struct kf_strbuf *sb, const char *fmt, ...)
{
    va_list ap;

    if (sb) {
        va_start(ap, fmt);
        kf_strbuf_vaddf(sb, fmt, ap);
        va_end(ap);
    }
    return false;
}

static bool version_ok(const char *s)
{
    int parts = 0;

    while (*s) {
        size_t digits = 0;

        while (isdigit((unsigned char)s[digits]))
            digits++;
        if (digits == 0 || digits > 4 || (s[0] == '0' && digits > 1))
            return false;
        parts++;
        s += digits;
        if (*s == '.')
            s++;
        else if (*s)
            return false;
        else
            break;
        if (!*s)
            return false;
    }
    return parts == 2 || parts == 3;
}

static bool url_ok(const char *s)
{
    const char *host;

    if (kf_str_has_prefix(s, "http://"))
        host = s + 7;
    else if (kf_str_has_prefix(s, "https://"))
        host = s + 8;
    else
        return false;
    if (!*host || *host == '/')
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

bool kf_format_check(enum kf_format f, const char *s, struct kf_strbuf *w)
{
    int64_t v;
    size_t len = strlen(s);

    switch (f) {
    case KF_FMT_NONE:
        return true;
    case KF_FMT_DNS_LABEL:
        if (kf_dns_label_valid(s, len))
            return true;
        return why(w, "must be a DNS label: at most 63 lower-case letters, digits and '-', "
                      "starting and ending with a letter or digit (e.g. \"cn-hangzhou-a\")");
    case KF_FMT_DNS_SUBDOMAIN:
        if (kf_name_valid(s))
            return true;
        return why(w, "must be a DNS subdomain: at most 253 lower-case letters, digits, '-' "
                      "and '.', starting and ending with a letter or digit (e.g. \"web-1\")");
    case KF_FMT_LABEL_KEY:
        if (kf_label_key_valid(s))
            return true;
        return why(w, "must be a qualified name: an optional DNS subdomain prefix and '/', then "
                      "at most 63 letters, digits, '-', '_' or '.', starting and ending with a "
                      "letter or digit (e.g. \"kfleet.io/tier\")");
    case KF_FMT_LABEL_VALUE:
        if (kf_label_value_valid(s))
            return true;
        return why(w, "must be empty or at most 63 letters, digits, '-', '_' or '.', starting "
                      "and ending with a letter or digit");
    case KF_FMT_CIDR:
    case KF_FMT_IP: {
        struct kf_cidr c;
        struct kf_strbuf e = KF_STRBUF_INIT;
        int rc = f == KF_FMT_CIDR ? kf_cidr_parse(s, &c, &e) : kf_ip_parse(s, &c, &e);

        if (rc < 0)
            why(w, "%s", e.buf);
        kf_strbuf_release(&e);
        return rc == 0;
    }
    case KF_FMT_QUANTITY:
        if (kf_parse_quantity(s, &v) == 0)
            return true;
        return why(w, "must be a quantity such as \"500m\", \"2\", \"4Gi\" or \"1.5G\"");
    case KF_FMT_DURATION:
        if (kf_parse_duration_ms(s, &v) == 0)
            return true;
        return why(w, "must be a duration such as \"90s\", \"5m\" or \"1h30m\" "
                      "(units ms, s, m, h, d)");
    case KF_FMT_VERSION:
        if (version_ok(s))
            return true;
        return why(w, "must be a Kubernetes version such as \"1.30\" or \"1.30.2\" "
                      "(no leading \"v\")");
    case KF_FMT_RFC3339:
        if (kf_time_parse_rfc3339(s, &v) == 0)
            return true;
        return why(w, "must be an RFC 3339 time in UTC such as \"2026-01-02T15:04:05Z\"");
    case KF_FMT_TIME_OF_DAY:
        if (len == 5 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
            s[2] == ':' && isdigit((unsigned char)s[3]) && isdigit((unsigned char)s[4]) &&
            (s[0] - '0') * 10 + (s[1] - '0') < 24 && s[3] < '6')
            return true;
        return why(w, "must be a time of day \"HH:MM\" (00:00 to 23:59, UTC)");
    case KF_FMT_URL:
        if (url_ok(s))
            return true;
        return why(w, "must be an http:// or https:// URL without spaces");
    case KF_FMT_REASON:
        /* Kubernetes' condition reason: ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$ */
        if (len > 0 && isalpha((unsigned char)s[0]) &&
            (isalnum((unsigned char)s[len - 1]) || s[len - 1] == '_')) {
            bool ok = true;

            for (size_t i = 0; i < len && ok; i++)
                ok = isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ',' || s[i] == ':';
            if (ok)
                return true;
        }
        return why(w, "must be a word of letters, digits, '_', ',' and ':' starting with a "
                      "letter, CamelCase by convention (e.g. \"NoHeadroom\")");
    case KF_FMT_PERCENT: {
        bool ok = len >= 2 && len <= 11 && s[len - 1] == '%';
        long pct = 0;

        for (size_t i = 0; i + 1 < len && ok; i++) {
            ok = isdigit((unsigned char)s[i]);
            pct = pct * 10 + (s[i] - '0');
        }
        if (ok && pct <= 100)
            return true;
        return why(w, "must be a percentage between 0%% and 100%%: digits followed by '%%' (e.g. "
                      "\"10%%\")");
    }
    }
    return true;
}

/* --- validation ------------------------------------------------------------- */

struct vctx {
    struct kf_causes *causes;
    size_t added;
    size_t dropped;
    struct kf_strbuf path;
};

static void cause(struct vctx *c, const char *type, const char *fmt, ...) KF_PRINTF(3, 4);
static void cause(struct vctx *c, const char *type, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (c->added >= KF_SCHEMA_MAX_CAUSES) {
        c->dropped++;
        return;
    }
    va_start(ap, fmt);
    msg = kf_xvasprintf(fmt, ap);
    va_end(ap);
    kf_causes_add(c->causes, type, c->path.buf, "%s", msg);
    free(msg);
    c->added++;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

static size_t path_push_name(struct kf_strbuf *p, const char *name)
{
    size_t old = p->len;

    if (p->len)
        kf_strbuf_addch(p, '.');
    kf_strbuf_addstr(p, name);
    return old;
}

static size_t path_push_index(struct kf_strbuf *p, size_t i)
{
    size_t old = p->len;

    kf_strbuf_addf(p, "[%zu]", i);
    return old;
}

static size_t path_push_key(struct kf_strbuf *p, const char *key)
{
    size_t old = p->len;

    /* Keys are printed as they are, but never let a hostile key bloat a path. */
    kf_strbuf_addf(p, "[%.*s]", 253, key);
    return old;
}

/* Edit distance bounded by the short names we compare (<= 64 chars). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];

    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];

        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub =
                prev + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));

            row[j] = KF_MIN(KF_MIN(row[j] + 1, row[j - 1] + 1), sub);
            prev = cur;
        }
    }
    return row[lb];
}

static const char *closest_field(const struct kf_field *fields, const char *name)
{
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close matches */

    for (const struct kf_field *f = fields; f && f->name; f++) {
        size_t d = edit_distance(f->name, name);

        if (d < best_d) {
            best_d = d;
            best = f->name;
        }
    }
    return best;
}

static const struct kf_field *find_field(const struct kf_field *fields, const char *name)
{
    for (const struct kf_field *f = fields; f && f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static size_t max_items(const struct kf_field *f)
{
    return f->max_len ? f->max_len : KF_SCHEMA_MAX_ITEMS;
}

static void check_string(struct vctx *c, const struct kf_field *f, const json_t *v)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    size_t max = f->max_len ? f->max_len : KF_SCHEMA_MAX_STRING;
    struct kf_strbuf w = KF_STRBUF_INIT;

    if (strlen(s) != len) {
        cause(c, "FieldValueInvalid", "must not contain NUL characters");
        return;
    }
    if (len > max) {
        cause(c, "FieldValueTooLong", "may not be longer than %zu bytes (got %zu)", max, len);
        return;
    }
    if (len < f->min_len) {
        if (f->min_len == 1)
            cause(c, "FieldValueRequired", "must not be empty");
        else
            cause(c, "FieldValueInvalid", "must be at least %zu bytes long", f->min_len);
        return;
    }
    if (f->enum_values) {
        struct kf_strbuf list = KF_STRBUF_INIT;

        for (const char *const *e = f->enum_values; *e; e++)
            if (strcmp(*e, s) == 0)
                return;
        for (const char *const *e = f->enum_values; *e; e++)
            kf_strbuf_addf(&list, "%s\"%s\"", e == f->enum_values ? "" : ", ", *e);
        cause(c, "FieldValueNotSupported", "unsupported value \"%.64s\": supported values: %s", s,
              list.buf);
        kf_strbuf_release(&list);
        return;
    }
    if (f->format == KF_FMT_DURATION && kf_format_check(f->format, s, NULL)) {
        double max_s = (f->flags & KF_F_MAX) ? f->max : KF_SCHEMA_MAX_DURATION_S;
        int64_t ms = 0;

        kf_parse_duration_ms(s, &ms);
        if ((double)ms > max_s * 1000)
            cause(c, "FieldValueInvalid", "invalid value \"%.64s\": may be at most %.0fs", s,
                  max_s);
        kf_strbuf_release(&w);
        return;
    }
    if (f->format != KF_FMT_NONE && !(f->format == KF_FMT_LABEL_VALUE && len == 0) &&
        !kf_format_check(f->format, s, &w)) {
        /* the address parsers' messages already quote the value */
        if (f->format == KF_FMT_CIDR || f->format == KF_FMT_IP)
            cause(c, "FieldValueInvalid", "%s", w.buf);
        else
            cause(c, "FieldValueInvalid", "invalid value \"%.253s\": %s", s, w.buf);
    }
    kf_strbuf_release(&w);
}

static void check_number(struct vctx *c, const struct kf_field *f, double v)
{
    bool xmin = f->flags & KF_F_XMIN, xmax = f->flags & KF_F_XMAX;
    bool has_min = (f->flags & KF_F_MIN) || xmin, has_max = (f->flags & KF_F_MAX) || xmax;
    bool low = has_min && (xmin ? v <= f->min : v < f->min);
    bool high = has_max && (xmax ? v >= f->max : v > f->max);

    if (!has_min && v < -KF_SCHEMA_MAX_NUMBER) {
        cause(c, "FieldValueInvalid", "must be at least %.0f, got %g", -KF_SCHEMA_MAX_NUMBER, v);
        return;
    }
    if (!has_max && v > KF_SCHEMA_MAX_NUMBER) {
        cause(c, "FieldValueInvalid", "must be at most %.0f, got %g", KF_SCHEMA_MAX_NUMBER, v);
        return;
    }
    if (!low && !high)
        return;
    if (has_min && has_max)
        cause(c, "FieldValueInvalid", "must be %s %g and %s %g, got %g",
              xmin ? "greater than" : "at least", f->min, xmax ? "less than" : "at most", f->max,
              v);
    else if (has_min)
        cause(c, "FieldValueInvalid", "must be %s %g, got %g",
              xmin ? "greater than" : "greater than or equal to", f->min, v);
    else
        cause(c, "FieldValueInvalid", "must be %s %g, got %g",
              xmax ? "less than" : "less than or equal to", f->max, v);
}

static void validate_value(struct vctx *c, const struct kf_field *f, const json_t *v,
                           const json_t *old, bool has_old);

static void validate_members(struct vctx *c, const struct kf_field *fields, bool open,
                             const json_t *v, const json_t *old, bool has_old)
{
    const char *key;
    json_t *member;

    json_object_foreach((json_t *)v, key, member)
    {
        const struct kf_field *f = find_field(fields, key);

        if (!f && !open) {
            size_t mark = path_push_name(&c->path, key);
            const char *near = closest_field(fields, key);

            if (near)
                cause(c, "FieldValueUnknown", "unknown field \"%.64s\": did you mean \"%s\"?", key,
                      near);
            else
                cause(c, "FieldValueUnknown", "unknown field \"%.64s\"", key);
            kf_strbuf_setlen(&c->path, mark);
        }
    }
    for (const struct kf_field *f = fields; f && f->name; f++) {
        json_t *m = json_object_get(v, f->name);
        json_t *om = has_old && json_is_object(old) ? json_object_get(old, f->name) : NULL;
        size_t mark = path_push_name(&c->path, f->name);

        if (json_is_null(m) && !(f->flags & KF_F_NULLABLE))
            m = NULL;
        if (json_is_null(om) && !(f->flags & KF_F_NULLABLE))
            om = NULL;
        if (!m && (f->flags & KF_F_REQUIRED))
            cause(c, "FieldValueRequired", "Required value");
        if (has_old && (f->flags & KF_F_IMMUTABLE) && !json_equal(m, om) && (m || om))
            cause(c, "FieldValueInvalid", "field is immutable");
        else if (has_old && (f->flags & KF_F_SET_ONCE) && om && !json_equal(m, om))
            cause(c, "FieldValueInvalid", "field is immutable once set (was %s)",
                  json_is_string(om) ? json_string_value(om) : "set");
        else if (m)
            validate_value(c, f, m, om, has_old);
        kf_strbuf_setlen(&c->path, mark);
    }
}

/* A quantity: a non-negative number or a string such as "4Gi". */
static void validate_quantity(struct vctx *c, const struct kf_field *f, const json_t *v)
{
    struct kf_field q = *f;
    double max = (f->flags & KF_F_MAX) ? f->max : KF_SCHEMA_MAX_QUANTITY;
    int64_t milli;

    if (json_is_number(v)) {
        if (json_number_value(v) < 0)
            cause(c, "FieldValueInvalid", "must not be negative");
        else if (json_number_value(v) > max)
            cause(c, "FieldValueInvalid", "may be at most %.0f", max);
        return;
    }
    if (!json_is_string(v)) {
        cause(c, "FieldValueTypeInvalid", "must be a quantity such as \"4Gi\" (got %s)",
              json_type_name(v));
        return;
    }
    q.format = KF_FMT_QUANTITY;
    q.max_len = f->max_len ? f->max_len : 64;
    if (kf_parse_quantity(json_string_value(v), &milli) == 0 && (double)milli / 1000 > max) {
        cause(c, "FieldValueInvalid", "invalid value \"%.64s\": may be at most %.0f",
              json_string_value(v), max);
        return;
    }
    check_string(c, &q, v);
}

/* An array: its size within bounds, each item valid, unique when asked. */
static void validate_array(struct vctx *c, const struct kf_field *f, const json_t *v)
{
    size_t i;
    json_t *item;

    if (!json_is_array(v)) {
        cause(c, "FieldValueTypeInvalid", "must be an array (got %s)", json_type_name(v));
        return;
    }
    if (json_array_size(v) > max_items(f)) {
        cause(c, "FieldValueTooMany", "must have at most %zu items (got %zu)", max_items(f),
              json_array_size(v));
        return;
    }
    if (json_array_size(v) < f->min_len) {
        cause(c, "FieldValueRequired", "must have at least %zu item%s", f->min_len,
              f->min_len == 1 ? "" : "s");
        return;
    }
    json_array_foreach(v, i, item)
    {
        size_t mark = path_push_index(&c->path, i);

        validate_value(c, f->items, item, NULL, false);
        if ((f->flags & KF_F_UNIQUE) && !json_is_object(item) && !json_is_array(item)) {
            for (size_t j = 0; j < i; j++) {
                if (json_equal(item, json_array_get(v, j))) {
                    if (json_is_string(item))
                        cause(c, "FieldValueDuplicate", "Duplicate value: \"%.253s\"",
                              json_string_value(item));
                    else
                        cause(c, "FieldValueDuplicate", "Duplicate value");
                    break;
                }
            }
        }
        kf_strbuf_setlen(&c->path, mark);
    }
}

/* A map's key: one of the field's key_enum, or of its key_format, and not empty. */
static void check_map_key(struct vctx *c, const struct kf_field *f, const char *key)
{
    struct kf_strbuf w = KF_STRBUF_INIT;

    if (f->key_enum) {
        bool ok = false;

        for (const char *const *e = f->key_enum; *e && !ok; e++)
            ok = strcmp(*e, key) == 0;
        if (!ok) {
            struct kf_strbuf list = KF_STRBUF_INIT;

            for (const char *const *e = f->key_enum; *e; e++)
                kf_strbuf_addf(&list, "%s\"%s\"", e == f->key_enum ? "" : ", ", *e);
            cause(c, "FieldValueNotSupported", "unsupported key \"%.64s\": supported keys: %s", key,
                  list.buf);
            kf_strbuf_release(&list);
        }
    } else if (f->key_format != KF_FMT_NONE && !kf_format_check(f->key_format, key, &w)) {
        cause(c, "FieldValueInvalid", "invalid key \"%.253s\": %s", key, w.buf);
    } else if (!*key) {
        cause(c, "FieldValueInvalid", "keys must not be empty");
    }
    kf_strbuf_release(&w);
}

/* A map: its size within bounds, each key and each value valid. */
static void validate_map(struct vctx *c, const struct kf_field *f, const json_t *v,
                         const json_t *old, bool has_old)
{
    json_t *item;
    const char *key;

    if (!json_is_object(v)) {
        cause(c, "FieldValueTypeInvalid", "must be an object (got %s)", json_type_name(v));
        return;
    }
    if (json_object_size(v) > max_items(f)) {
        cause(c, "FieldValueTooMany", "must have at most %zu entries (got %zu)", max_items(f),
              json_object_size(v));
        return;
    }
    json_object_foreach((json_t *)v, key, item)
    {
        size_t mark = path_push_key(&c->path, key);

        check_map_key(c, f, key);
        validate_value(c, f->items, item,
                       has_old && json_is_object(old) ? json_object_get(old, key) : NULL, false);
        kf_strbuf_setlen(&c->path, mark);
    }
}

static void validate_value(struct vctx *c, const struct kf_field *f, const json_t *v,
                           const json_t *old, bool has_old)
{
    if (json_is_null(v)) {
        if (!(f->flags & KF_F_NULLABLE))
            cause(c, "FieldValueTypeInvalid", "must not be null");
        return;
    }
    switch (f->type) {
    case KF_T_STRING:
        if (!json_is_string(v))
            cause(c, "FieldValueTypeInvalid", "must be a string (got %s)", json_type_name(v));
        else
            check_string(c, f, v);
        break;
    case KF_T_INT:
        if (!json_is_integer(v))
            cause(c, "FieldValueTypeInvalid", "must be an integer (got %s)", json_type_name(v));
        else
            check_number(c, f, (double)json_integer_value(v));
        break;
    case KF_T_NUMBER:
        if (!json_is_number(v))
            cause(c, "FieldValueTypeInvalid", "must be a number (got %s)", json_type_name(v));
        else
            check_number(c, f, json_number_value(v));
        break;
    case KF_T_BOOL:
        if (!json_is_boolean(v))
            cause(c, "FieldValueTypeInvalid", "must be true or false (got %s)", json_type_name(v));
        break;
    case KF_T_QUANTITY:
        validate_quantity(c, f, v);
        break;
    case KF_T_INT_OR_STRING:
        if (json_is_integer(v))
            check_number(c, f, (double)json_integer_value(v));
        else if (json_is_string(v))
            check_string(c, f, v);
        else
            cause(c, "FieldValueTypeInvalid", "must be an integer or a string (got %s)",
                  json_type_name(v));
        break;
    case KF_T_ANY:
        if (!json_is_object(v))
            cause(c, "FieldValueTypeInvalid", "must be an object (got %s)", json_type_name(v));
        break;
    case KF_T_OBJECT:
        if (!json_is_object(v)) {
            cause(c, "FieldValueTypeInvalid", "must be an object (got %s)", json_type_name(v));
            break;
        }
        validate_members(c, f->fields, f->flags & KF_F_OPEN, v, old, has_old);
        break;
    case KF_T_ARRAY:
        validate_array(c, f, v);
        break;
    case KF_T_MAP:
        validate_map(c, f, v, old, has_old);
        break;
    }
}

size_t kf_schema_validate(const struct kf_schema *s, const json_t *v, const json_t *old,
                          const char *path, struct kf_causes *causes)
{
    struct vctx c = { .causes = causes };

    kf_strbuf_addstr(&c.path, path ? path : "");
    if (!json_is_object(v)) {
        cause(&c, "FieldValueTypeInvalid", "must be an object (got %s)",
              v ? json_type_name(v) : "nothing");
    } else {
        validate_members(&c, s->fields, s->open, v, old, old != NULL);
    }
    if (c.dropped) {
        kf_causes_add(causes, "FieldValueTooMany", path ? path : "",
                      "%zu more problems were not listed; fix the ones above first", c.dropped);
        c.added++;
    }
    kf_strbuf_release(&c.path);
    return c.added;
}

/* --- defaults ---------------------------------------------------------------- */

static json_t *parse_default(const struct kf_field *f)
{
    json_t *v;

    /* The tables are ours: a default that does not parse is a programmer
     * error, caught by the first test that creates the kind. */
    if (kf_json_parse(f->dflt, strlen(f->dflt), &v, NULL) < 0)
        kf_abort("schema: default of \"%s\" is not JSON: %s", f->name, f->dflt);
    return v;
}

static json_t *normalize_quantity(const json_t *v)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return json_sprintf("%lld", (long long)json_integer_value(v));
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9.0e15) {
        double d = json_real_value(v);

        if (d == floor(d))
            return json_sprintf("%lld", (long long)d);
        return json_sprintf("%lldm", (long long)llround(d * 1000));
    }
    return NULL;
}

static void defaults_value(const struct kf_field *f, json_t *v);

static void defaults_members(const struct kf_field *fields, json_t *obj)
{
    for (const struct kf_field *f = fields; f && f->name; f++) {
        json_t *m = json_object_get(obj, f->name);

        if (json_is_null(m) && !(f->flags & KF_F_NULLABLE)) {
            json_object_del(obj, f->name); /* null means absent, as Kubernetes prunes it */
            m = NULL;
        }
        if (!m && f->dflt) {
            m = parse_default(f);
            json_object_set_new(obj, f->name, m);
        }
        if (!m)
            continue;
        if (f->type == KF_T_QUANTITY) {
            json_t *q = normalize_quantity(m);

            if (q)
                json_object_set_new(obj, f->name, q);
            continue;
        }
        defaults_value(f, m);
    }
}

static void defaults_value(const struct kf_field *f, json_t *v)
{
    size_t i;
    json_t *item;
    const char *key;
    void *tmp;

    switch (f->type) {
    case KF_T_OBJECT:
        if (json_is_object(v))
            defaults_members(f->fields, v);
        break;
    case KF_T_ARRAY:
        if (!json_is_array(v) || json_array_size(v) > max_items(f))
            break;
        json_array_foreach(v, i, item)
        {
            if (f->items->type == KF_T_QUANTITY) {
                json_t *q = normalize_quantity(item);

                if (q)
                    json_array_set_new(v, i, q);
            } else {
                defaults_value(f->items, item);
            }
        }
        break;
    case KF_T_MAP:
        if (!json_is_object(v) || json_object_size(v) > max_items(f))
            break;
        json_object_foreach_safe(v, tmp, key, item)
        {
            if (f->items->type == KF_T_QUANTITY) {
                json_t *q = normalize_quantity(item);

                if (q)
                    json_object_set_new(v, key, q);
            } else {
                defaults_value(f->items, item);
            }
        }
        break;
    default:
        break;
    }
}

void kf_schema_defaults(const struct kf_schema *s, json_t *v)
{
    if (s && json_is_object(v))
        defaults_members(s->fields, v);
}

/* --- OpenAPI ------------------------------------------------------------------ */

static json_t *openapi_members(const struct kf_field *fields, bool open, const char *description)
{
    json_t *o = json_object(), *props = json_object(), *required = json_array();

    json_object_set_new(o, "type", json_string("object"));
    if (description && *description)
        json_object_set_new(o, "description", json_string(description));
    for (const struct kf_field *f = fields; f && f->name; f++) {
        json_object_set_new(props, f->name, kf_field_openapi(f));
        if (f->flags & KF_F_REQUIRED)
            json_array_append_new(required, json_string(f->name));
    }
    json_object_set_new(o, "properties", props);
    if (json_array_size(required))
        json_object_set_new(o, "required", required);
    else
        json_decref(required);
    if (open)
        json_object_set_new(o, "x-kubernetes-preserve-unknown-fields", json_true());
    return o;
}

json_t *kf_field_openapi(const struct kf_field *f)
{
    json_t *o;
    const char *fmt = kf_format_name(f->format);

    switch (f->type) {
    case KF_T_OBJECT:
        o = openapi_members(f->fields, f->flags & KF_F_OPEN, f->description);
        break;
    case KF_T_ANY:
        o = json_object();
        json_object_set_new(o, "type", json_string("object"));
        json_object_set_new(o, "x-kubernetes-preserve-unknown-fields", json_true());
        break;
    case KF_T_QUANTITY:
    case KF_T_INT_OR_STRING:
        o = json_pack("{s:[{s:s},{s:s}],s:b}", "anyOf", "type", "integer", "type", "string",
                      "x-kubernetes-int-or-string", 1);
        break;
    case KF_T_STRING:
        o = json_pack("{s:s}", "type", "string");
        if (*fmt)
            json_object_set_new(o, "format", json_string(fmt));
        if (f->enum_values) {
            json_t *e = json_array();

            for (const char *const *p = f->enum_values; *p; p++)
                json_array_append_new(e, json_string(*p));
            json_object_set_new(o, "enum", e);
        }
        json_object_set_new(
            o, "maxLength",
            json_integer((json_int_t)(f->max_len ? f->max_len : KF_SCHEMA_MAX_STRING)));
        if (f->min_len)
            json_object_set_new(o, "minLength", json_integer((json_int_t)f->min_len));
        break;
    case KF_T_INT:
    case KF_T_NUMBER:
        o = json_pack("{s:s,s:s}", "type", f->type == KF_T_INT ? "integer" : "number", "format",
                      f->type == KF_T_INT ? "int64" : "double");
        if (f->flags & (KF_F_MIN | KF_F_XMIN)) {
            json_object_set_new(o, "minimum",
                                f->type == KF_T_INT ? json_integer((json_int_t)f->min)
                                                    : json_real(f->min));
            if (f->flags & KF_F_XMIN)
                json_object_set_new(o, "exclusiveMinimum", json_true());
        }
        if (f->flags & (KF_F_MAX | KF_F_XMAX)) {
            json_object_set_new(o, "maximum",
                                f->type == KF_T_INT ? json_integer((json_int_t)f->max)
                                                    : json_real(f->max));
            if (f->flags & KF_F_XMAX)
                json_object_set_new(o, "exclusiveMaximum", json_true());
        }
        break;
    case KF_T_BOOL:
        o = json_pack("{s:s}", "type", "boolean");
        break;
    case KF_T_ARRAY:
        o = json_pack("{s:s,s:o,s:I}", "type", "array", "items", kf_field_openapi(f->items),
                      "maxItems", (json_int_t)max_items(f));
        if (f->min_len)
            json_object_set_new(o, "minItems", json_integer((json_int_t)f->min_len));
        if (f->flags & KF_F_UNIQUE)
            json_object_set_new(o, "x-kubernetes-list-type", json_string("set"));
        break;
    case KF_T_MAP:
        o = json_pack("{s:s,s:o,s:I}", "type", "object", "additionalProperties",
                      kf_field_openapi(f->items), "maxProperties", (json_int_t)max_items(f));
        break;
    default:
        o = json_object();
        break;
    }
    if (f->description && *f->description && !json_object_get(o, "description"))
        json_object_set_new(o, "description", json_string(f->description));
    if (f->dflt)
        json_object_set_new(o, "default", parse_default(f));
    if (f->flags & KF_F_NULLABLE)
        json_object_set_new(o, "nullable", json_true());
    return o;
}

json_t *kf_schema_openapi(const struct kf_schema *s)
{
    return openapi_members(s->fields, s->open, s->description);
}

/* --- lookup and docs ------------------------------------------------------------ */

const struct kf_field *kf_schema_lookup(const struct kf_schema *s, const char *path)
{
    const struct kf_field *fields = s ? s->fields : NULL;
    const struct kf_field *f = NULL;
    const char *p = path;

    if (!path || !*path)
        return NULL;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);

        f = NULL;
        for (const struct kf_field *c = fields; c && c->name; c++) {
            if (strlen(c->name) == n && memcmp(c->name, p, n) == 0) {
                f = c;
                break;
            }
        }
        if (!f)
            return NULL;
        p += n;
        if (*p == '.')
            p++;
        else
            break;
        while (f->type == KF_T_ARRAY || f->type == KF_T_MAP) {
            const struct kf_field *items = f->items;

            if (items->type != KF_T_OBJECT && items->type != KF_T_ARRAY && items->type != KF_T_MAP)
                return NULL;
            f = items;
        }
        if (f->type != KF_T_OBJECT)
            return NULL;
        fields = f->fields;
    }
    return f;
}

void kf_field_type_name(const struct kf_field *f, struct kf_strbuf *out)
{
    switch (f->type) {
    case KF_T_STRING:
        kf_strbuf_addstr(out, "string");
        if (f->format != KF_FMT_NONE)
            kf_strbuf_addf(out, " (%s)", kf_format_name(f->format));
        break;
    case KF_T_INT:
        kf_strbuf_addstr(out, "integer");
        break;
    case KF_T_NUMBER:
        kf_strbuf_addstr(out, "number");
        break;
    case KF_T_BOOL:
        kf_strbuf_addstr(out, "boolean");
        break;
    case KF_T_OBJECT:
        kf_strbuf_addstr(out, "object");
        break;
    case KF_T_ANY:
        kf_strbuf_addstr(out, "object (free-form)");
        break;
    case KF_T_QUANTITY:
        kf_strbuf_addstr(out, "quantity");
        break;
    case KF_T_INT_OR_STRING:
        kf_strbuf_addstr(out, "integer or string");
        if (f->format != KF_FMT_NONE)
            kf_strbuf_addf(out, " (%s)", kf_format_name(f->format));
        break;
    case KF_T_ARRAY:
        kf_strbuf_addstr(out, "[]");
        kf_field_type_name(f->items, out);
        break;
    case KF_T_MAP:
        kf_strbuf_addstr(out, "map[string]");
        kf_field_type_name(f->items, out);
        break;
    }
}

void kf_field_rules(const struct kf_field *f, struct kf_strbuf *out)
{
    size_t start = out->len;

#define SEP() (out->len > start ? "; " : "")
    if (f->flags & KF_F_REQUIRED)
        kf_strbuf_addf(out, "%srequired", SEP());
    if (f->flags & KF_F_IMMUTABLE)
        kf_strbuf_addf(out, "%simmutable", SEP());
    if (f->flags & KF_F_SET_ONCE)
        kf_strbuf_addf(out, "%simmutable once set", SEP());
    if (f->enum_values) {
        kf_strbuf_addf(out, "%sone of ", SEP());
        for (const char *const *e = f->enum_values; *e; e++)
            kf_strbuf_addf(out, "%s`%s`", e == f->enum_values ? "" : ", ", *e);
    }
    if (f->key_enum) {
        kf_strbuf_addf(out, "%skeys ", SEP());
        for (const char *const *e = f->key_enum; *e; e++)
            kf_strbuf_addf(out, "%s`%s`", e == f->key_enum ? "" : ", ", *e);
    }
    if (f->flags & (KF_F_MIN | KF_F_XMIN))
        kf_strbuf_addf(out, "%s%s %g", SEP(), f->flags & KF_F_XMIN ? ">" : "≥", f->min);
    if ((f->flags & (KF_F_MAX | KF_F_XMAX)) && f->format == KF_FMT_DURATION)
        kf_strbuf_addf(out, "%s≤ %gs", SEP(), f->max);
    else if (f->flags & (KF_F_MAX | KF_F_XMAX))
        kf_strbuf_addf(out, "%s%s %g", SEP(), f->flags & KF_F_XMAX ? "<" : "≤", f->max);
    if (f->type == KF_T_STRING && f->max_len)
        kf_strbuf_addf(out, "%s≤ %zu bytes", SEP(), f->max_len);
    if ((f->type == KF_T_ARRAY || f->type == KF_T_MAP) && f->min_len)
        kf_strbuf_addf(out, "%s≥ %zu items", SEP(), f->min_len);
    if ((f->type == KF_T_ARRAY || f->type == KF_T_MAP) && f->max_len)
        kf_strbuf_addf(out, "%s≤ %zu items", SEP(), f->max_len);
    if (f->flags & KF_F_UNIQUE)
        kf_strbuf_addf(out, "%sunique", SEP());
    if (f->dflt)
        kf_strbuf_addf(out, "%sdefault `%s`", SEP(), f->dflt);
#undef SEP
}

static void doc_fields(const struct kf_field *fields, const char *prefix, struct kf_strbuf *out)
{
    for (const struct kf_field *f = fields; f && f->name; f++) {
        char *path = kf_xasprintf("%s%s%s", prefix, *prefix ? "." : "", f->name);
        const struct kf_field *inner = f;

        kf_strbuf_addf(out, "| `%s` | ", path);
        kf_field_type_name(f, out);
        kf_strbuf_addstr(out, " | ");
        kf_field_rules(f, out);
        kf_strbuf_addf(out, " | %s |\n", f->description ? f->description : "");
        while (inner->type == KF_T_ARRAY || inner->type == KF_T_MAP)
            inner = inner->items;
        if (inner->type == KF_T_OBJECT)
            doc_fields(inner->fields, path, out);
        free(path);
    }
}

void kf_schema_doc(const struct kf_schema *s, const char *prefix, struct kf_strbuf *out)
{
    kf_strbuf_addstr(out, "| field | type | rules | description |\n|---|---|---|---|\n");
    doc_fields(s->fields, prefix ? prefix : "", out);
}
