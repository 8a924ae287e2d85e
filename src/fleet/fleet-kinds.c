/* fleet-kinds.c: the table of API kinds and what every kind shares:
 * lookup by name, admission (apiVersion/kind, metadata, schema, the kind's
 * own rules), the OpenAPI document of a kind and table column values
 * (contracts in kfleet/kind.h). Each kind lives in its own kind-<name>.c;
 * adding one is a line in the table below.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <strings.h>
#include <errno.h>

#include "kfleet/catalog.h"
#include "kfleet/cidr.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const struct kf_kind *const kinds[] = {
    &kf_kind_region,
    &kf_kind_unit,
    &kf_kind_host,
    &kf_kind_profile,
    &kf_kind_template,
    &kf_kind_guestcluster,
    &kf_kind_controlplanemember,
    &kf_kind_ippool,
    &kf_kind_broadcastjob,
    &kf_kind_broadcasttask,
    &kf_kind_release,
    &kf_kind_alertreceiver,
    &kf_kind_alertroute,
    &kf_kind_backuplocation,
    &kf_kind_backup,
    &kf_kind_event,
};

const struct kf_kind *const *kf_kinds(size_t *ret_n)
{
    if (ret_n)
        *ret_n = KF_ARRAY_SIZE(kinds);
    return kinds;
}

const struct kf_kind *kf_kind_find(const char *name)
{
    if (!name || !*name)
        return NULL;
    for (size_t i = 0; i < KF_ARRAY_SIZE(kinds); i++) {
        const struct kf_kind *k = kinds[i];

        if (!strcasecmp(k->kind, name) || !strcasecmp(k->plural, name) ||
            !strcasecmp(k->singular, name))
            return k;
        for (const char *const *s = k->short_names; s && *s; s++)
            if (!strcasecmp(*s, name))
                return k;
    }
    return NULL;
}

json_t *kf_kind_gvk(const struct kf_kind *k)
{
    return json_pack("{s:s,s:s,s:s}", "group", KF_API_GROUP, "version", KF_API_VERSION_NAME, "kind",
                     k->kind);
}

/* --- shared value lists and helpers -------------------------------------------- */

const char *const kf_fleet_grades[] = { "G0", "G1", "G2", "G3", "G4", "G5", NULL };
const char *const kf_fleet_weekdays[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", NULL };

void kf_fleet_col_percent(const json_t *obj, const char *path, struct kf_strbuf *out)
{
    json_t *v = kf_json_path(obj, path);

    if (json_is_number(v))
        kf_strbuf_addf(out, "%.0f%%", json_number_value(v) * 100.0);
}

void kf_fleet_col_count(const json_t *obj, const char *path, struct kf_strbuf *out)
{
    json_t *v = kf_json_path(obj, path);

    if (json_is_array(v))
        kf_strbuf_addf(out, "%zu", json_array_size(v));
    else if (json_is_object(v))
        kf_strbuf_addf(out, "%zu", json_object_size(v));
}

void kf_fleet_check_disjoint(const json_t *obj, const char *const *paths, size_t n,
                             struct kf_causes *causes)
{
    for (size_t i = 0; i < n; i++) {
        const char *a = kf_json_str(obj, paths[i], NULL);
        struct kf_cidr pa;

        if (!a || kf_cidr_parse(a, &pa, NULL) < 0)
            continue;
        for (size_t j = i + 1; j < n; j++) {
            const char *b = kf_json_str(obj, paths[j], NULL);
            struct kf_cidr pb;

            if (!b || kf_cidr_parse(b, &pb, NULL) < 0)
                continue;
            if (kf_cidr_overlaps(&pa, &pb))
                kf_causes_add(causes, "FieldValueInvalid", paths[j],
                              "\"%s\" overlaps %s \"%s\": the ranges of one cluster must not "
                              "share addresses",
                              b, paths[i], a);
        }
    }
}

static void check_one_version(const char *v, const char *field, struct kf_causes *causes)
{
    struct kf_strbuf have = KF_STRBUF_INIT;

    if (!v || kf_catalog_supports(v))
        return;
    kf_catalog_versions(&have);
    kf_causes_add(causes, "FieldValueNotSupported", field,
                  "Unsupported value: \"%s\": the component catalog runs Kubernetes %s", v,
                  have.buf);
    kf_strbuf_release(&have);
}

void kf_fleet_check_version(const json_t *obj, const json_t *old, const char *path,
                            struct kf_causes *causes)
{
    const json_t *v = kf_json_path(obj, path), *item;
    size_t i;

    if (old && json_equal(v, kf_json_path(old, path)))
        return;
    if (json_is_string(v)) {
        check_one_version(json_string_value(v), path, causes);
        return;
    }
    json_array_foreach(v, i, item)
    {
        char *field = kf_xasprintf("%s[%zu]", path, i);

        check_one_version(json_string_value(item), field, causes);
        free(field);
    }
}

/* --- columns ---------------------------------------------------------------------- */

void kf_column_value(const struct kf_column *c, const json_t *obj, struct kf_strbuf *out)
{
    json_t *v, *item;
    size_t i;

    if (c->fn) {
        c->fn(obj, out);
        return;
    }
    v = kf_json_path(obj, c->path);
    switch (json_typeof(v ? v : json_null())) {
    case JSON_STRING:
        kf_strbuf_addstr(out, json_string_value(v));
        break;
    case JSON_INTEGER:
        kf_strbuf_addf(out, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        kf_strbuf_addf(out, "%g", json_real_value(v));
        break;
    case JSON_TRUE:
        kf_strbuf_addstr(out, "true");
        break;
    case JSON_FALSE:
        kf_strbuf_addstr(out, "false");
        break;
    case JSON_ARRAY:
        json_array_foreach(v, i, item)
        {
            if (i)
                kf_strbuf_addch(out, ',');
            if (json_is_string(item))
                kf_strbuf_addstr(out, json_string_value(item));
            else
                kf_json_dump_sb(item, out);
        }
        break;
    case JSON_OBJECT:
        kf_json_dump_sb(v, out);
        break;
    case JSON_NULL:
        break;
    }
}

/* --- admission: metadata ------------------------------------------------------------ */

#define KF_LABELS_MAX           64
#define KF_ANNOTATIONS_MAX_SIZE (256 * 1024)
#define KF_FINALIZERS_MAX       32
#define KF_OWNERS_MAX           16

static const char *const metadata_known[] = {
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
    NULL,
};

static bool string_has_nul(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v);
}

static void check_name(const struct kf_kind *k, const json_t *meta, struct kf_causes *causes)
{
    json_t *name = json_object_get(meta, "name");
    const char *s;

    if (!name || json_is_null(name)) {
        kf_causes_add(causes, "FieldValueRequired", "metadata.name",
                      "Required value: name or generateName is required");
        return;
    }
    if (!json_is_string(name) || string_has_nul(name)) {
        kf_causes_add(causes, "FieldValueTypeInvalid", "metadata.name", "must be a string");
        return;
    }
    s = json_string_value(name);
    if (k->name_is_label) {
        struct kf_strbuf why = KF_STRBUF_INIT;

        if (!kf_format_check(KF_FMT_DNS_LABEL, s, &why))
            kf_causes_add(causes, "FieldValueInvalid", "metadata.name",
                          "invalid value \"%.253s\": a %s name %s", s, k->kind, why.buf);
        kf_strbuf_release(&why);
    } else if (!kf_name_valid(s)) {
        kf_causes_add(causes, "FieldValueInvalid", "metadata.name",
                      "invalid value \"%.253s\": must be a DNS subdomain: at most 253 lower-case "
                      "letters, digits, '-' and '.', starting and ending with a letter or digit "
                      "(e.g. \"web-1\")",
                      s);
    }
}

static void check_string_map(const json_t *meta, const char *member, bool labels,
                             struct kf_causes *causes)
{
    json_t *m = json_object_get(meta, member);
    const char *key;
    json_t *v;
    size_t total = 0;

    if (!m || json_is_null(m))
        return;
    if (!json_is_object(m)) {
        kf_causes_add(causes, "FieldValueTypeInvalid",
                      labels ? "metadata.labels" : "metadata.annotations",
                      "must be an object of strings");
        return;
    }
    if (labels && json_object_size(m) > KF_LABELS_MAX) {
        kf_causes_add(causes, "FieldValueTooMany", "metadata.labels",
                      "must have at most %d labels (got %zu)", KF_LABELS_MAX, json_object_size(m));
        return;
    }
    json_object_foreach(m, key, v)
    {
        char *field = kf_xasprintf("metadata.%s[%.253s]", member, key);

        if (!kf_label_key_valid(key))
            kf_causes_add(causes, "FieldValueInvalid", field,
                          "invalid key \"%.253s\": must be a qualified name: an optional DNS "
                          "subdomain prefix and '/', then at most 63 letters, digits, '-', '_' "
                          "or '.', starting and ending with a letter or digit",
                          key);
        else if (!json_is_string(v) || string_has_nul(v))
            kf_causes_add(causes, "FieldValueTypeInvalid", field, "must be a string");
        else if (labels && !kf_label_value_valid(json_string_value(v)))
            kf_causes_add(causes, "FieldValueInvalid", field,
                          "invalid value \"%.63s\": must be empty or at most 63 letters, digits, "
                          "'-', '_' or '.', starting and ending with a letter or digit",
                          json_string_value(v));
        else
            total += strlen(key) + json_string_length(v);
        free(field);
    }
    if (!labels && total > KF_ANNOTATIONS_MAX_SIZE)
        kf_causes_add(causes, "FieldValueTooLong", "metadata.annotations",
                      "may not be larger than %d bytes in total (got %zu)", KF_ANNOTATIONS_MAX_SIZE,
                      total);
}

static void check_finalizers(const json_t *meta, const json_t *old, struct kf_causes *causes)
{
    json_t *f = json_object_get(meta, "finalizers"), *v;
    size_t i;

    if (!f || json_is_null(f))
        return;
    if (!json_is_array(f)) {
        kf_causes_add(causes, "FieldValueTypeInvalid", "metadata.finalizers",
                      "must be an array of strings");
        return;
    }
    if (json_array_size(f) > KF_FINALIZERS_MAX) {
        kf_causes_add(causes, "FieldValueTooMany", "metadata.finalizers",
                      "must have at most %d items (got %zu)", KF_FINALIZERS_MAX,
                      json_array_size(f));
        return;
    }
    json_array_foreach(f, i, v)
    {
        char field[64];

        snprintf(field, sizeof(field), "metadata.finalizers[%zu]", i);
        if (!json_is_string(v) || string_has_nul(v)) {
            kf_causes_add(causes, "FieldValueTypeInvalid", field, "must be a string");
            continue;
        }
        if (!kf_label_key_valid(json_string_value(v))) {
            kf_causes_add(causes, "FieldValueInvalid", field,
                          "invalid value \"%.253s\": a finalizer must be a qualified name such "
                          "as \"kfleet.io/ipam\"",
                          json_string_value(v));
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (json_equal(v, json_array_get(f, j))) {
                kf_causes_add(causes, "FieldValueDuplicate", field, "Duplicate value: \"%s\"",
                              json_string_value(v));
                break;
            }
        }
        /* Kubernetes: no new finalizers once deletion has started. */
        if (old && kf_obj_deleting(old) && !kf_obj_has_finalizer(old, json_string_value(v)))
            kf_causes_add(causes, "FieldValueForbidden", field,
                          "no new finalizers can be added while the object is being deleted");
    }
}

static const struct kf_field owner_fields[] = {
    KF_STRING("apiVersion", "API version of the owner.", .flags = KF_F_REQUIRED, .min_len = 1),
    KF_STRING("kind", "Kind of the owner.", .flags = KF_F_REQUIRED, .min_len = 1, .max_len = 63),
    KF_STRING("name", "Name of the owner.", .flags = KF_F_REQUIRED, .format = KF_FMT_DNS_SUBDOMAIN),
    KF_STRING("uid", "UID of the owner.", .flags = KF_F_REQUIRED, .min_len = 1, .max_len = 64),
    KF_BOOL("controller", "Whether the owner manages this object."),
    KF_BOOL("blockOwnerDeletion", "Accepted for compatibility; kfleet does not block."),
    KF_END,
};

static const struct kf_schema owners_schema = {
    .fields = KF_FIELDS(KF_ARRAY("ownerReferences", "Objects this object belongs to.",
                                 KF_ITEM_OBJECT(owner_fields), .max_len = KF_OWNERS_MAX)),
};

static void check_metadata(const struct kf_kind *k, json_t *obj, const json_t *old,
                           struct kf_causes *causes)
{
    json_t *meta = json_object_get(obj, "metadata");
    const char *key;
    json_t *v;

    if (!json_is_object(meta)) {
        kf_causes_add(causes, meta ? "FieldValueTypeInvalid" : "FieldValueRequired", "metadata",
                      meta ? "must be an object" : "Required value");
        return;
    }
    json_object_foreach(meta, key, v)
    {
        bool known = false;

        for (const char *const *m = metadata_known; *m && !known; m++)
            known = strcmp(*m, key) == 0;
        if (!known) {
            char *field = kf_xasprintf("metadata.%.64s", key);

            kf_causes_add(causes, "FieldValueUnknown", field, "unknown field \"%.64s\"", key);
            free(field);
        }
    }
    check_name(k, meta, causes);
    check_string_map(meta, "labels", true, causes);
    check_string_map(meta, "annotations", false, causes);
    check_finalizers(meta, old, causes);
    if (json_object_get(meta, "ownerReferences")) {
        json_t *wrap =
            json_pack("{s:O}", "ownerReferences", json_object_get(meta, "ownerReferences"));

        kf_schema_validate(&owners_schema, wrap, NULL, "metadata", causes);
        json_decref(wrap);
    }
    /* Cluster-scoped: a namespace is meaningless, drop it as Kubernetes does;
     * null members mean absent. */
    json_object_del(meta, "namespace");
    for (const char *const *m = metadata_known; *m; m++)
        if (json_is_null(json_object_get(meta, *m)))
            json_object_del(meta, *m);
    json_object_del(meta, "selfLink");
    json_object_del(meta, "managedFields");
}

/* --- admission: the whole object ------------------------------------------------------ */

static void check_type_meta(const struct kf_kind *k, json_t *obj, struct kf_causes *causes)
{
    json_t *av = json_object_get(obj, "apiVersion"), *kind = json_object_get(obj, "kind");

    if (!av || json_is_null(av))
        json_object_set_new(obj, "apiVersion", json_string(KF_API_VERSION));
    else if (!json_is_string(av) || strcmp(json_string_value(av), KF_API_VERSION) != 0)
        kf_causes_add(causes, "FieldValueInvalid", "apiVersion", "must be \"%s\" for kind %s",
                      KF_API_VERSION, k->kind);
    if (!kind || json_is_null(kind))
        json_object_set_new(obj, "kind", json_string(k->kind));
    else if (!json_is_string(kind) || strcmp(json_string_value(kind), k->kind) != 0)
        kf_causes_add(causes, "FieldValueInvalid", "kind",
                      "must be \"%s\" (this is the %s endpoint)", k->kind, k->plural);
}

static void check_top_members(const struct kf_kind *k, const json_t *obj, struct kf_causes *causes)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        if (!strcmp(key, "apiVersion") || !strcmp(key, "kind") || !strcmp(key, "metadata"))
            continue;
        if (!strcmp(key, "spec") && k->spec_schema)
            continue;
        if (!strcmp(key, "status") && (k->has_status || k->status_schema))
            continue;
        kf_causes_add(causes, "FieldValueUnknown", key, "unknown field \"%.64s\"%s", key,
                      !strcmp(key, "status") ? ": this kind has no status" : "");
    }
}

int kf_kind_admit(const struct kf_kind *k, json_t *obj, const json_t *old, bool status_only,
                  struct kf_causes *causes)
{
    size_t start = causes->n;

    if (!json_is_object(obj)) {
        kf_causes_add(causes, "FieldValueTypeInvalid", "", "the object must be a JSON object");
        return -KF_EINVALID;
    }
    if (status_only) {
        json_t *status = json_object_get(obj, "status");

        if (json_is_null(status)) {
            json_object_del(obj, "status");
            status = NULL;
        }
        if (status && k->status_schema) {
            kf_schema_defaults(k->status_schema, status);
            kf_schema_validate(k->status_schema, status, NULL, "status", causes);
        } else if (status && !json_is_object(status)) {
            kf_causes_add(causes, "FieldValueTypeInvalid", "status", "must be an object");
        }
        return causes->n > start ? -KF_EINVALID : 0;
    }

    check_type_meta(k, obj, causes);
    /* kubectl writes "status: {}" into generated manifests: an empty status
     * on a kind without one means nothing, so it is dropped, not refused */
    if (!k->has_status && !k->status_schema && json_is_object(json_object_get(obj, "status")) &&
        json_object_size(json_object_get(obj, "status")) == 0)
        json_object_del(obj, "status");
    check_top_members(k, obj, causes);
    check_metadata(k, obj, old, causes);
    if (k->spec_schema) {
        json_t *spec = json_object_get(obj, "spec");

        if (!spec || json_is_null(spec)) {
            spec = json_object();
            json_object_set_new(obj, "spec", spec);
        }
        kf_schema_defaults(k->spec_schema, spec);
        if (k->defaults && json_is_object(spec))
            k->defaults(obj);
        kf_schema_validate(k->spec_schema, spec, old ? json_object_get(old, "spec") : NULL, "spec",
                           causes);
    }
    if (!k->has_status && k->status_schema && json_object_get(obj, "status")) {
        json_t *status = json_object_get(obj, "status");

        kf_schema_defaults(k->status_schema, status);
        kf_schema_validate(k->status_schema, status, NULL, "status", causes);
    }
    if (causes->n == start && k->validate)
        k->validate(obj, old, causes);
    return causes->n > start ? -KF_EINVALID : 0;
}

/* --- OpenAPI ----------------------------------------------------------------------------- */

static json_t *metadata_openapi(void)
{
    return json_pack(
        "{s:s,s:s,s:{s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s,s:s},"
        "s:{s:s,s:s,s:s},s:{s:s,s:s,s:s},s:{s:s,s:s,s:{s:s}},s:{s:s,s:s,s:{s:s}},"
        "s:{s:s,s:s,s:{s:s}}}}",
        "type", "object", "description",
        "Standard object metadata: name, labels and annotations set by users; uid, "
        "resourceVersion, generation and timestamps set by the server.",
        "properties", "name", "type", "string", "description",
        "Unique name of the object within its kind (a DNS subdomain).", "generateName", "type",
        "string", "description", "Prefix of a name the server generates when name is empty.", "uid",
        "type", "string", "description", "Set by the server on create; never changes.",
        "resourceVersion", "type", "string", "description",
        "Opaque version for optimistic concurrency and watches.", "generation", "type", "integer",
        "format", "int64", "description", "Incremented by the server on every change to spec.",
        "creationTimestamp", "type", "string", "format", "date-time", "description",
        "When the object was created.", "deletionTimestamp", "type", "string", "format",
        "date-time", "description",
        "When deletion was requested; the object goes once finalizers are empty.", "labels", "type",
        "object", "description", "Key/value pairs for selection (kubectl get -l).",
        "additionalProperties", "type", "string", "annotations", "type", "object", "description",
        "Unstructured key/value data for tools.", "additionalProperties", "type", "string",
        "finalizers", "type", "array", "description",
        "Controllers that must finish before the object is removed.", "items", "type", "string");
}

json_t *kf_kind_openapi_schema(const struct kf_kind *k)
{
    json_t *props = json_object(), *o;

    json_object_set_new(props, "apiVersion",
                        json_pack("{s:s,s:s}", "type", "string", "description",
                                  "APIVersion of the object: \"" KF_API_VERSION "\"."));
    json_object_set_new(
        props, "kind",
        json_pack("{s:s,s:s}", "type", "string", "description", "Kind of the object."));
    json_object_set_new(props, "metadata", metadata_openapi());
    if (k->spec_schema)
        json_object_set_new(props, "spec", kf_schema_openapi(k->spec_schema));
    if (k->status_schema)
        json_object_set_new(props, "status", kf_schema_openapi(k->status_schema));
    else if (k->has_status)
        json_object_set_new(
            props, "status",
            json_pack("{s:s,s:b}", "type", "object", "x-kubernetes-preserve-unknown-fields", 1));
    o = json_pack("{s:s,s:s,s:o,s:[o]}", "type", "object", "description",
                  k->description ? k->description : "", "properties", props,
                  "x-kubernetes-group-version-kind", kf_kind_gvk(k));
    return o;
}

/* --- explain and docs ------------------------------------------------------------------ */

static void explain_fields(const struct kf_field *fields, struct kf_strbuf *out)
{
    kf_strbuf_addstr(out, "\nFIELDS:\n");
    for (const struct kf_field *f = fields; f && f->name; f++) {
        kf_strbuf_addf(out, "   %s\t<", f->name);
        kf_field_type_name(f, out);
        kf_strbuf_addstr(out, ">");
        if (f->flags & KF_F_REQUIRED)
            kf_strbuf_addstr(out, " -required-");
        kf_strbuf_addf(out, "\n     %s\n\n", f->description ? f->description : "");
    }
}

int kf_kind_explain(const struct kf_kind *k, const char *path, struct kf_strbuf *out)
{
    const struct kf_schema *s = NULL;
    const struct kf_field *f = NULL, *inner;
    const char *rest = NULL;

    if (path && *path) {
        if (!strcmp(path, "spec") || kf_str_has_prefix(path, "spec."))
            s = k->spec_schema, rest = path[4] ? path + 5 : "";
        else if (!strcmp(path, "status") || kf_str_has_prefix(path, "status."))
            s = k->status_schema, rest = path[6] ? path + 7 : "";
        if (!s)
            return -ENOENT;
        if (*rest && !(f = kf_schema_lookup(s, rest)))
            return -ENOENT;
    }
    kf_strbuf_addf(out, "KIND:     %s\nVERSION:  %s\n", k->kind, KF_API_VERSION);
    if (!s) {
        kf_strbuf_addf(out, "\nDESCRIPTION:\n     %s\n", k->description ? k->description : "");
        explain_fields(
            (const struct kf_field[]){
                KF_STRING("apiVersion", "\"" KF_API_VERSION "\"."),
                KF_STRING("kind", "The kind of the object."),
                KF_OBJECT("metadata", "Standard object metadata.", NULL),
                k->spec_schema
                    ? (struct kf_field)KF_OBJECT("spec", k->spec_schema->description, NULL)
                    : (struct kf_field)KF_END,
                k->status_schema
                    ? (struct kf_field)KF_OBJECT("status", k->status_schema->description, NULL)
                    : (struct kf_field)KF_END,
                KF_END },
            out);
        return 0;
    }
    if (!f) {
        kf_strbuf_addf(out, "\nRESOURCE: %s <object>\n\nDESCRIPTION:\n     %s\n", path,
                       s->description ? s->description : "");
        explain_fields(s->fields, out);
        return 0;
    }
    kf_strbuf_addf(out, "\nFIELD:    %s <", f->name);
    kf_field_type_name(f, out);
    kf_strbuf_addf(out, ">\n\nDESCRIPTION:\n     %s\n", f->description ? f->description : "");
    {
        struct kf_strbuf rules = KF_STRBUF_INIT;

        kf_field_rules(f, &rules);
        if (rules.len)
            kf_strbuf_addf(out, "\nRULES:    %s\n", rules.buf);
        kf_strbuf_release(&rules);
    }
    for (inner = f; inner->type == KF_T_ARRAY || inner->type == KF_T_MAP;)
        inner = inner->items;
    if (inner->type == KF_T_OBJECT)
        explain_fields(inner->fields, out);
    return 0;
}

void kf_kind_doc(const struct kf_kind *k, struct kf_strbuf *out)
{
    kf_strbuf_addf(out, "## %s\n\n%s\n\n", k->kind, k->description ? k->description : "");
    kf_strbuf_addf(out, "- path: `/apis/%s/%s`%s\n", KF_API_VERSION, k->plural,
                   k->has_status ? " (and `/status`)" : "");
    kf_strbuf_addf(out, "- names: `%s`, `%s`", k->plural, k->singular);
    for (const char *const *s = k->short_names; s && *s; s++)
        kf_strbuf_addf(out, ", `%s`", *s);
    kf_strbuf_addf(out, "\n- object names: %s\n",
                   k->name_is_label ? "DNS labels (at most 63 characters, no dots)"
                                    : "DNS subdomains (at most 253 characters)");
    if (k->system)
        kf_strbuf_addstr(out, "- written by kfleetd only; users may read and delete\n");
    kf_strbuf_addstr(out, "- columns: NAME");
    for (size_t i = 0; i < k->n_columns; i++)
        kf_strbuf_addf(out, ", %s%s", k->columns[i].header, k->columns[i].wide ? " (wide)" : "");
    kf_strbuf_addstr(out, ", AGE\n\n");
    if (k->spec_schema) {
        kf_strbuf_addstr(out, "### spec\n\n");
        kf_schema_doc(k->spec_schema, "spec", out);
        kf_strbuf_addch(out, '\n');
    }
    if (k->status_schema) {
        kf_strbuf_addf(out, "### status\n\n%s\n\n",
                       k->status_schema->open
                           ? "Written by kfleetd through the status subresource. Fields not "
                             "listed are kept (controllers may add them)."
                           : "Written by kfleetd through the status subresource.");
        kf_schema_doc(k->status_schema, "status", out);
        kf_strbuf_addch(out, '\n');
    }
}

static const char api_doc_head[] =
    "# kfleet API reference\n"
    "\n"
    "<!-- Generated from the schema tables in src/fleet/kind-*.c by kf_kinds_doc().\n"
    "     Do not edit: change the tables, then run\n"
    "     KF_UPDATE_DOCS=1 build/tests/test-apidoc -->\n"
    "\n"
    "Every kind is cluster-scoped in the group/version `kfleet.io/v1` and follows the\n"
    "Kubernetes conventions, so `kubectl` and `kfleet` read the same objects.\n"
    "\n"
    "## Conventions\n"
    "\n"
    "- **Objects** have `apiVersion` (`kfleet.io/v1`; filled in when absent), `kind`,\n"
    "  `metadata`, `spec` and, for kinds with a status subresource, `status`. No other\n"
    "  top-level members are accepted.\n"
    "- **metadata**: `name` is required (or `generateName`, to which the server appends\n"
    "  5 characters); `labels` (at most 64, keys are qualified names such as\n"
    "  `kfleet.io/tier`, values at most 63 characters); `annotations` (at most 256 KiB\n"
    "  in all); `finalizers` (qualified names, no duplicates, at most 32; none may be\n"
    "  added once deletion started); `ownerReferences`. The server sets `uid`,\n"
    "  `creationTimestamp`, `generation` (+1 on every spec change), `resourceVersion`\n"
    "  and `deletionTimestamp`; values a client sends for them are ignored.\n"
    "- **Unknown fields are rejected** with 422 and a cause naming the field (and the\n"
    "  field it probably meant): a misspelled `waterlevel` silently dropped would leave\n"
    "  a unit at the default water level without anyone noticing. Status objects keep\n"
    "  unknown members so controllers can add fields.\n"
    "- **Validation errors** come back as a Kubernetes `Status` with code 422 and one\n"
    "  entry in `details.causes[]` per problem: `field` is the path\n"
    "  (`spec.network.podCIDR`, `spec.zones[1]`, `spec.capacity[cpu]`), `reason` the\n"
    "  cause type (`FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,\n"
    "  `FieldValueDuplicate`, `FieldValueTooLong`, `FieldValueTooMany`,\n"
    "  `FieldValueTypeInvalid`, `FieldValueForbidden`, `FieldValueUnknown`).\n"
    "- **Defaults** are filled in on create and update and are visible in the stored\n"
    "  object. `null` means absent. Quantities may be written as numbers (`cpu: 64`) and\n"
    "  are stored as strings (`\"64\"`; `0.5` becomes `\"500m\"`).\n"
    "- **Immutable** fields may not change after create; fields **immutable once set**\n"
    "  may be added later but never changed or removed.\n"
    "\n"
    "Formats used below:\n"
    "\n"
    "| format | meaning |\n"
    "|---|---|\n"
    "| dns-label | at most 63 of `a-z`, `0-9`, `-`; starts and ends alphanumeric |\n"
    "| dns-subdomain | dot-separated DNS labels, at most 253 characters |\n"
    "| label-key, label-value | as Kubernetes label keys and values |\n"
    "| cidr | canonical IPv4 or IPv6 prefix (`10.64.0.0/16`; host bits must be zero) |\n"
    "| ip | an IPv4 or IPv6 address |\n"
    "| quantity | Kubernetes quantity: `500m`, `2`, `4Gi`, `1.5G` |\n"
    "| duration | `90s`, `5m`, `1h30m`, `15d` (units ms, s, m, h, d) |\n"
    "| version | Kubernetes version `1.37` or `1.37.2` (no leading `v`); admission also wants a "
    "minor the component catalog runs |\n"
    "| date-time | RFC 3339 in UTC: `2026-01-02T15:04:05Z` |\n"
    "| time-of-day | `HH:MM`, UTC |\n"
    "| url | `http://` or `https://` URL |\n"
    "| reason | a letter, then letters, digits, `_`, `,`, `:`; CamelCase: `NoHeadroom` |\n"
    "| percent | digits and `%`: `10%` (integer-or-string fields take `3` or `10%`) |\n"
    "\n"
    "Every status with `conditions` uses Kubernetes conditions: `type`, `status`\n"
    "(`True`, `False`, `Unknown`), `reason`, `message`, `lastTransitionTime`,\n"
    "`observedGeneration`.\n"
    "\n"
    "## Endpoints that are not objects\n"
    "\n"
    "Besides the objects, kfleetd answers a few actions (errors are `Status`\n"
    "objects as above):\n"
    "\n"
    "| method and path | roles | what |\n"
    "|---|---|---|\n"
    "| `POST /apis/kfleet.io/v1/hosts/NAME/heartbeat` | agent, admin | renews the host's "
    "lease in memory (never a store write); 404 when no Host NAME exists |\n"
    "| `POST /apis/kfleet.io/v1/heartbeats` | agent, admin | the same for many: "
    "`{\"hosts\": [\"h1\", {\"name\": \"h2\"}]}` (at most 10,000) answers "
    "`{\"renewed\": N, \"unknown\": [...]}` |\n"
    "| `GET /apis/kfleet.io/v1/guestclusters/NAME/explain` | every role | every unit's "
    "placement verdict for the cluster: filters with their numbers, scores, the decision, "
    "the member bindings (`kind: PlacementExplanation`, with `text` for people) |\n"
    "| `GET /apis/kfleet.io/v1/alerts` | admin, editor, viewer | the alerts firing now at the "
    "central Alertmanagers (active, neither silenced nor inhibited; at most 2,000): "
    "`{\"kind\": \"AlertList\", \"alertmanager\": NAME, \"alerts\": [{\"labels\", "
    "\"annotations\", \"startsAt\", \"fingerprint\"}]}`; served while the monitoring "
    "controller runs with a stack (`--monitoring local` or `external`), 503 while no "
    "Alertmanager answers |\n"
    "| `GET /ui/session` | every role | who the bearer token is: `{\"user\", \"role\", "
    "\"authentication\"}` (the dashboard's read-only mode); 401 without a token |\n"
    "| `POST /apis/kfleet.io/v1/plan` | admin, editor, viewer | what a demand needs in a "
    "region: `{\"region\": R, \"add\": [\"500xG1\", {\"grade\": \"G3\", "
    "\"count\": 40}], \"hostCPU\": \"64\", \"hostMemory\": \"256Gi\", "
    "\"maxUnitHosts\": 0, \"newUnitHosts\": 9, \"newUnitZones\": 3}` answers "
    "`kind: CapacityPlan` with each unit's share, new units and `text` |\n"
    "| `POST /apis/kfleet.io/v1/backups/NAME/restore?cluster=C` | admin | restores cluster C's "
    "etcd from Backup NAME where it runs (checked first: Succeeded, of C, of its region, the "
    "file's sha256); answers `{\"cluster\", \"backup\", \"revision\", \"restore\"}` |\n"
    "| `POST /apis/kfleet.io/v1/guestclusters/NAME/move?unit=U&backup=B` | admin | brings the "
    "cluster back on unit U of its region from Backup B: a new member set there, its endpoint on "
    "U (checked first: the backup as for restore, and that the control plane fits on U under "
    "placement's filters and U's water level; refused with the reason otherwise); answers "
    "`{\"cluster\", \"from\", \"unit\", \"backup\", \"revision\", \"restore\", "
    "\"decision\"}` |\n"
    "| `POST /apis/kfleet.io/v1/guestclusters/NAME/migrate?unit=U` | admin | moves the running "
    "cluster's control plane to unit U of its region live, one member at a time (etcd members by "
    "member remove and add, the quorum kept), no restore (docs/internals/migration.md); refused "
    "with the reason when U is of another region, its own unit, cordoned or without a Ready host "
    "in a zone, when the control plane does not fit on U (placement's filters, U's water level, "
    "the cluster's Kubernetes minor on U's hosts), when the cluster is not Running, or (409) when "
    "a migration, restore, move or replacement runs on it; writes `kfleet.io/migrate`, answers "
    "`{\"cluster\", \"from\", \"unit\", \"migration\", \"decision\"}`; done when the "
    "cluster's `kfleet.io/migrated` names `migration` |\n"
    "\n"
    "explain, plan, move and migrate are computed by the placement controller (a migration is\n"
    "then carried out by the replace controller), restore by the\n"
    "backup controller; they run on the leader replica; elsewhere they answer 503.\n"
    "\n"
    "The dashboard's files are at `/ui/` (no token needed; they hold no data):\n"
    "[internals/ui.md](internals/ui.md).\n"
    "\n";

void kf_kinds_doc(struct kf_strbuf *out)
{
    kf_strbuf_addstr(out, api_doc_head);
    kf_strbuf_addstr(out, "Kinds: ");
    for (size_t i = 0; i < KF_ARRAY_SIZE(kinds); i++)
        kf_strbuf_addf(out, "%s[%s](#%s)", i ? ", " : "", kinds[i]->kind, kinds[i]->singular);
    kf_strbuf_addstr(out, ".\n\n");
    for (size_t i = 0; i < KF_ARRAY_SIZE(kinds); i++)
        kf_kind_doc(kinds[i], out);
}
