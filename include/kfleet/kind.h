/* kind.h: the registry of API kinds (Region, Unit, Host, Profile,
 * Template, GuestCluster, ControlPlaneMember, Event, ...).
 *
 * A kind is an ops table, one file each (src/fleet/kind-<name>.c), listed in
 * one static table (src/fleet/fleet-kinds.c). The API server, the CLI and
 * kubectl discovery all read the same table: a kind's names, whether it
 * has a status subresource, its schema (validation, defaults and the
 * OpenAPI document kubectl reads) and the columns of its table.
 */
#ifndef KF_KIND_H
#define KF_KIND_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_causes;
struct kf_strbuf;
struct kf_schema; /* declarative field schema, see kfleet/schema.h */
struct kf_registry;
struct kf_selector;

/* One column of `kfleet get` and of the Table kubectl asks for. The value
 * is the JSON at `path` (rendered as text), or what fn writes. */
struct kf_column {
    const char *header; /* "PHASE" */
    const char *path;   /* "status.phase"; NULL when fn is set */
    void (*fn)(const json_t *obj, struct kf_strbuf *out);
    const char *type; /* OpenAPI type for kubectl: "string", "integer", "number", "date" */
    bool wide;        /* only with -o wide */
};

struct kf_kind {
    const char *kind;               /* "GuestCluster" */
    const char *plural;             /* "guestclusters" */
    const char *singular;           /* "guestcluster" */
    const char *const *short_names; /* NULL-terminated, e.g. {"gc", NULL}; may be NULL */
    const char *description;        /* one paragraph, for `kfleet explain` and OpenAPI */
    bool has_status;                /* /status subresource; spec and status written apart */
    bool system;                    /* written by kfleetd only (Event): no user writes but delete */
    bool name_is_label;             /* names must be DNS labels (<= 63, no dots), not subdomains */

    const struct kf_schema *spec_schema;   /* fields under .spec (NULL: no spec) */
    const struct kf_schema *status_schema; /* fields under .status (NULL: free-form) */

    /* Fills defaults into obj.spec in place. May be NULL. */
    void (*defaults)(json_t *obj);
    /* Checks that the schema cannot express (cross-field rules, CIDR
     * overlaps within the object, immutable fields: old is NULL on create).
     * Adds causes; must not modify obj. May be NULL. */
    void (*validate)(const json_t *obj, const json_t *old, struct kf_causes *causes);
    /* Checks that read other stored objects through the registry (a
     * Release's selector must match a GuestCluster), run by the registry
     * after admission passed, on create and on updates that change the
     * object (not status updates). Adds causes; must not write. May be
     * NULL. */
    void (*admit_stored)(struct kf_registry *r, const json_t *obj, const json_t *old,
                         struct kf_causes *causes);

    /* Optional: for a field selector this kind can answer from names alone,
     * the prefix every matching object's name starts with (caller frees),
     * else NULL. LIST then reads only that key range (Events:
     * spec.involvedObject.name=N reads the names "N.*"). */
    char *(*name_prefix)(const struct kf_selector *fields);

    const struct kf_column *columns; /* NAME is implied first, AGE last */
    size_t n_columns;
};

/* The kinds, for code that names one directly (&kf_kind_guestcluster). */
extern const struct kf_kind kf_kind_region;
extern const struct kf_kind kf_kind_unit;
extern const struct kf_kind kf_kind_host;
extern const struct kf_kind kf_kind_profile;
extern const struct kf_kind kf_kind_template;
extern const struct kf_kind kf_kind_guestcluster;
extern const struct kf_kind kf_kind_controlplanemember;
extern const struct kf_kind kf_kind_event;
extern const struct kf_kind kf_kind_ippool;
extern const struct kf_kind kf_kind_broadcastjob;
extern const struct kf_kind kf_kind_broadcasttask;
extern const struct kf_kind kf_kind_alertreceiver;
extern const struct kf_kind kf_kind_alertroute;
extern const struct kf_kind kf_kind_release;
extern const struct kf_kind kf_kind_backuplocation;
extern const struct kf_kind kf_kind_backup;

/* Every kind, in a stable order. */
const struct kf_kind *const *kf_kinds(size_t *ret_n);
/* By kind, plural, singular or short name, case-insensitively. NULL if none. */
const struct kf_kind *kf_kind_find(const char *name);

/* The full admission check of a create or update: apiVersion and kind
 * (filled in when absent, a cause when wrong), top-level members, metadata
 * (name, labels, annotations, finalizers, ownerReferences), the spec schema
 * (types, enums, ranges, required fields, unknown fields rejected) and the
 * kind's own validate (run only when the schema found nothing, so it may
 * trust types). Defaults are applied to obj first (schema defaults, then
 * k->defaults). Adds one cause per problem; returns 0 if none or
 * -KF_EINVALID. `old` is the stored object on update, NULL on create.
 * `status_only`: validate .status against status_schema instead (the status
 * subresource); metadata and spec are not looked at.
 * With has_status and !status_only, .status is not validated: the registry
 * replaces it with the stored one. The registry calls this; the API server
 * need not (call it directly only for dry runs). */
int kf_kind_admit(const struct kf_kind *k, json_t *obj, const json_t *old, bool status_only,
                  struct kf_causes *causes);

/* The OpenAPI v3 schema of the kind's object (apiVersion, kind, metadata,
 * spec, status), as served under /openapi/v3 and /openapi/v2. New reference. */
json_t *kf_kind_openapi_schema(const struct kf_kind *k);

/* Writes the column value of obj for c into out (no padding): strings as
 * they are, numbers and booleans as JSON text, arrays of scalars joined by
 * ",", absent values as nothing (the CLI prints "<none>"). */
void kf_column_value(const struct kf_column *c, const json_t *obj, struct kf_strbuf *out);

/* `kfleet explain` / `kubectl explain` as text: the kind (path NULL or ""),
 * or the field at path ("spec", "spec.network", "status.conditions.type"):
 * its type, rules, default and description, then its fields if it has
 * some. Returns 0, or -ENOENT (with nothing written) when there is no such
 * field. */
int kf_kind_explain(const struct kf_kind *k, const char *path, struct kf_strbuf *out);
/* The Markdown section of docs/api.md for k: description, names, columns,
 * and a table of every spec and status field. */
void kf_kind_doc(const struct kf_kind *k, struct kf_strbuf *out);
/* All of docs/api.md: the conventions, then kf_kind_doc of every kind.
 * tests/unit/test-apidoc.c keeps the file equal to this. */
void kf_kinds_doc(struct kf_strbuf *out);

/* The kind's descriptor for kubectl discovery and OpenAPI:
 * {"group":"kfleet.io","version":"v1","kind":K}. New reference. */
json_t *kf_kind_gvk(const struct kf_kind *k);

#endif
