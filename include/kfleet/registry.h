/* registry.h: reading and writing API objects with the API's rules.
 *
 * The API server's handlers and the in-process controllers both go through
 * the registry, so an object written by a controller obeys the same rules as
 * one written over HTTP:
 *   - admission: defaults, schema, the kind's own rules (kf_kind_admit);
 *   - metadata the server owns: uid, creationTimestamp, generation (1 on
 *     create, +1 whenever spec changes, never on status or metadata-only
 *     changes), resourceVersion (the store's mod_rev), deletionTimestamp;
 *   - optimistic concurrency: an update carrying metadata.resourceVersion
 *     succeeds only if it is still current (-KF_ECONFLICT otherwise); one
 *     without it is unconditional;
 *   - the status subresource: for kinds with has_status, a normal update
 *     keeps the stored status and a status update changes only status;
 *   - finalizers: deleting an object with finalizers sets
 *     deletionTimestamp; it is removed when an update empties finalizers.
 *
 * Objects come back with metadata.resourceVersion set. Functions returning
 * raw bytes (kf_kv) return stored canonical bytes: write them out with
 * kf_obj_write, which splices the resourceVersion in (see obj.h).
 *
 * Thread-safe; the registry holds no object state of its own.
 */
#ifndef KF_REGISTRY_H
#define KF_REGISTRY_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_causes;
struct kf_event;
struct kf_kind;
struct kf_kv;
struct kf_kv_list;
struct kf_selector;
struct kf_store;
struct kf_strbuf;

struct kf_registry;

struct kf_registry *kf_registry_new(struct kf_store *store);
void kf_registry_free(struct kf_registry *r); /* does not close the store */
struct kf_store *kf_registry_store(struct kf_registry *r);

/* Creates obj (borrowed; defaults are filled into it). metadata.name is
 * required unless metadata.generateName is set. Returns the stored object in
 * *ret (new reference, may be NULL if not wanted).
 * Errors: -KF_EINVALID (causes filled), -KF_EEXISTS, store errors. */
int kf_registry_create(struct kf_registry *r, const struct kf_kind *k, json_t *obj, json_t **ret,
                       struct kf_causes *causes, struct kf_strbuf *err);

/* -KF_ENOTFOUND when absent. */
int kf_registry_get(struct kf_registry *r, const struct kf_kind *k, const char *name, json_t **ret);
int kf_registry_get_raw(struct kf_registry *r, const struct kf_kind *k, const char *name,
                        struct kf_kv *ret);

struct kf_list_opts {
    const struct kf_selector *labels; /* NULL: all */
    const struct kf_selector *fields; /* NULL: all */
    size_t limit;                     /* 0: no limit */
    const char *continue_token;       /* from a previous page, or NULL */
    int64_t rev;                      /* read at this revision; 0: current */
};

/* Lists objects of k matching the selectors, in name order. When a limit
 * cut the list short, *ret_continue is set to an opaque token for the next
 * page (which reads at the same revision, so pages are consistent); else
 * NULL. ret->rev is the revision the list reflects.
 * Errors: -KF_EBADREQUEST (bad continue token), -KF_ECOMPACTED (the token's
 * revision is gone: the client must start over), store errors. */
int kf_registry_list_raw(struct kf_registry *r, const struct kf_kind *k,
                         const struct kf_list_opts *o, struct kf_kv_list *ret, char **ret_continue,
                         struct kf_strbuf *err);

/* Like kf_registry_list_raw, but decodes the objects: *ret_items is a JSON
 * array (new reference) of objects with resourceVersion set; *ret_rev (may
 * be NULL) the revision the list reflects. For controllers and the CLI; the
 * API server writes raw bytes instead. */
int kf_registry_list(struct kf_registry *r, const struct kf_kind *k, const struct kf_list_opts *o,
                     json_t **ret_items, int64_t *ret_rev, char **ret_continue,
                     struct kf_strbuf *err);

/* Updates the object named by obj's metadata.name (obj borrowed). With
 * status_only, only .status is taken from obj. */
int kf_registry_update(struct kf_registry *r, const struct kf_kind *k, json_t *obj,
                       bool status_only, json_t **ret, struct kf_causes *causes,
                       struct kf_strbuf *err);

enum kf_patch_type {
    KF_PATCH_MERGE = 1, /* application/merge-patch+json (RFC 7386) */
    KF_PATCH_JSON = 2,  /* application/json-patch+json (RFC 6902) */
};

/* Reads, patches and updates, retrying on a concurrent write (unless the
 * patch itself sets metadata.resourceVersion, which then acts as a
 * precondition). -KF_EBADREQUEST for a malformed patch (message in err). */
int kf_registry_patch(struct kf_registry *r, const struct kf_kind *k, const char *name,
                      enum kf_patch_type type, const char *patch, size_t len, bool status_only,
                      json_t **ret, struct kf_causes *causes, struct kf_strbuf *err);

/* A caller's own rule for one update (the API server's: what a host-bound
 * agent may change). fn is called with the stored object (old) and what
 * would replace it (new: after defaults and admission); a negative errno
 * (message in err) refuses the write. The write that follows is
 * conditional on old's revision, so the check holds for what is stored. */
struct kf_write_check {
    int (*fn)(const struct kf_write_check *c, const json_t *old, const json_t *new,
              struct kf_strbuf *err);
    void *ctx;
};

/* kf_registry_update and kf_registry_patch with a check (NULL: none). */
int kf_registry_update_checked(struct kf_registry *r, const struct kf_kind *k, json_t *obj,
                               bool status_only, const struct kf_write_check *check, json_t **ret,
                               struct kf_causes *causes, struct kf_strbuf *err);
int kf_registry_patch_checked(struct kf_registry *r, const struct kf_kind *k, const char *name,
                              enum kf_patch_type type, const char *patch, size_t len,
                              bool status_only, const struct kf_write_check *check, json_t **ret,
                              struct kf_causes *causes, struct kf_strbuf *err);

/* Deletes name. With precondition_rv > 0 the object must still be at that
 * revision (-KF_ECONFLICT). If it has finalizers, sets deletionTimestamp
 * and returns the updated object (*ret_deleted = false); otherwise removes
 * it and returns its last state (*ret_deleted = true). */
int kf_registry_delete(struct kf_registry *r, const struct kf_kind *k, const char *name,
                       int64_t precondition_rv, json_t **ret, bool *ret_deleted);

/* Batches: up to KF_STORE_MAX_TXN_OPS objects of one kind written in one
 * store transaction, all or none, each under the rules of the single-object
 * call above (admission, server-owned metadata, the status subresource,
 * finalizers). For controllers that write many objects at once (a
 * BroadcastJob creates a task per host). On failure nothing was written,
 * *ret_failed (may be NULL) is the index of the object that failed
 * (invalid, already there, changed since it was read) and causes / err
 * say why; -EINVAL for an empty or oversized batch. *ret_rev (may be
 * NULL) is the revision of the transaction.
 *
 * create_batch: as kf_registry_create for each object (filled in place:
 * defaults, metadata, resourceVersion); generated names are not retried.
 * update_batch: as kf_registry_update without retries: every object must
 * carry metadata.resourceVersion, a precondition (-KF_ECONFLICT); on success
 * each object becomes what is stored (objects that did not change are not
 * written and keep their resourceVersion).
 * delete_batch: as kf_registry_delete for each name (rvs[i] > 0: a
 * precondition; rvs may be NULL); names already gone are skipped unless a
 * precondition was given. Returns the number removed (objects with
 * finalizers are only marked). */
int kf_registry_create_batch(struct kf_registry *r, const struct kf_kind *k, json_t *const *objs,
                             size_t n, int64_t *ret_rev, size_t *ret_failed,
                             struct kf_causes *causes, struct kf_strbuf *err);
int kf_registry_update_batch(struct kf_registry *r, const struct kf_kind *k, json_t *const *objs,
                             size_t n, bool status_only, int64_t *ret_rev, size_t *ret_failed,
                             struct kf_causes *causes, struct kf_strbuf *err);
/* update_batch of metadata, spec and status at once (the main resource's
 * rules for the first two, the status subresource's for status): a
 * controller that commits a finalizer and the status it guards in one
 * write, e.g. placement's unit and ranges. The kind must have a status. */
int kf_registry_update_batch_all(struct kf_registry *r, const struct kf_kind *k,
                                 json_t *const *objs, size_t n, int64_t *ret_rev,
                                 size_t *ret_failed, struct kf_causes *causes,
                                 struct kf_strbuf *err);
int kf_registry_delete_batch(struct kf_registry *r, const struct kf_kind *k,
                             const char *const *names, const int64_t *rvs, size_t n,
                             int64_t *ret_rev, size_t *ret_failed, struct kf_strbuf *err);

/* Watch helpers: how a store event on k's prefix looks to a watcher with
 * these selectors, as Kubernetes defines it: "ADDED", "MODIFIED",
 * "DELETED" (also when a modified object stops matching), or NULL when the
 * watcher should not see it. */
const char *kf_registry_watch_type(const struct kf_event *ev, const struct kf_selector *labels,
                                   const struct kf_selector *fields);

#endif
