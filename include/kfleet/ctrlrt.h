/* ctrlrt.h: the controller runtime (src/ctrlrt/): informers (watch -> cache -> handlers),
 * work queues and reconcilers.
 *
 * Every controller in kfleetd is level-triggered: it is handed the name of
 * an object of its primary kind, reads the current state (from informers,
 * which are cheap, or the registry), computes the desired state, and
 * converges, safe to run again at any time. Watches only decide *when* to
 * reconcile: an event on any watched kind maps to names of the primary kind,
 * which go into the controller's queue. A name is in the queue at most once,
 * is never reconciled by two workers at once, is retried with exponential
 * back-off after an error, and can ask to be looked at again after a delay.
 *
 * Informers keep, per kind, the stored bytes of every object in the slice
 * of the fleet this manager owns, or a projection of it with only the fields
 * the controllers read (memory stays proportional to the bytes, no parsed
 * trees are kept), plus indexes (e.g. members by cluster) that
 * controllers declare. They list once, then follow the store's watch from
 * the list's revision; if that history was compacted they list again and
 * report what vanished as deletions.
 *
 * Scope: a manager may be given a predicate that says which objects it
 * owns (for example, only the hosts and members of one unit), so that
 * splitting the global tier from a unit tier is configuration, not code.
 *
 * Threading: informers run one thread each; each controller runs `workers`
 * threads. Handlers and map functions run on informer threads and must be
 * quick (enqueue, do not write).
 *
 * kfleetd's own controllers, and what it hands them, are in
 * kfleet/controllers.h (src/controllers/).
 */
#ifndef KF_CTRLRT_H
#define KF_CTRLRT_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_kind;
struct kf_kv;
struct kf_registry;
struct kf_store;
struct kf_strbuf;

struct kf_ctrl_manager;
struct kf_informer;
struct kf_ctrl;

/* --- the manager ---------------------------------------------------------- */

/* Which objects this manager owns; NULL owns everything. */
typedef bool (*kf_ctrl_scope_fn)(const struct kf_kind *k, const json_t *obj, void *arg);

/* The registry is what controllers write through (may be NULL in tests that
 * only use informers); the store is what informers read. */
struct kf_ctrl_manager *kf_ctrl_manager_new(struct kf_store *store, struct kf_registry *reg);
void kf_ctrl_manager_set_scope(struct kf_ctrl_manager *m, kf_ctrl_scope_fn fn, void *arg);
/* Adds a controller (ops must outlive the manager). Before start only. */
struct kf_ctrl;
struct kf_ctrl_ops;
int kf_ctrl_manager_add(struct kf_ctrl_manager *m, const struct kf_ctrl_ops *ops, void *data,
                        struct kf_ctrl **ret);
/* Starts informers, waits until each has its initial list, then starts the
 * controllers' workers. Returns 0 or a negative error (store unreachable). */
int kf_ctrl_manager_start(struct kf_ctrl_manager *m);
/* Stops workers (after their current reconcile) and informers. */
void kf_ctrl_manager_stop(struct kf_ctrl_manager *m);
void kf_ctrl_manager_free(struct kf_ctrl_manager *m); /* stops first; NULL is fine */
struct kf_registry *kf_ctrl_manager_registry(struct kf_ctrl_manager *m);
/* Blocks until every queue is empty and no reconcile is running, or
 * timeout_ms passes (-1: forever); delayed requeues are not waited for.
 * Returns 1 when idle, 0 on timeout. For tests and orderly shutdown. */
int kf_ctrl_manager_wait_idle(struct kf_ctrl_manager *m, int timeout_ms);

/* --- informers ------------------------------------------------------------ */

/* The shared informer of kind k (created on first use, before start). */
struct kf_informer *kf_ctrl_informer(struct kf_ctrl_manager *m, const struct kf_kind *k);

/* An index maps an object to zero or more values (e.g. a member to its
 * cluster's name); add(value, ctx) once per value. */
typedef void (*kf_index_fn)(const json_t *obj, void (*add)(const char *value, void *ctx),
                            void *ctx);
/* Declares an index; before start only. -EEXIST if the name is taken. */
int kf_informer_add_index(struct kf_informer *inf, const char *index, kf_index_fn fn);

/* Indexes that several controllers use declare them by one name with one
 * function (the second add_index gets -EEXIST, and shares the first):
 * ControlPlaneMembers by spec.host. */
#define KF_INDEX_MEMBER_HOST "member.host"
void kf_index_member_host(const json_t *obj, void (*add)(const char *value, void *ctx), void *ctx);

/* What an informer's cache keeps of each object, when not the stored bytes:
 * a new reference to an object with the fields its readers use (metadata.name
 * among them), or NULL to keep the stored object whole. Called on the
 * informer's thread for each object it caches; index functions, the scope
 * and handlers still get the whole object, only readers (kf_informer_get,
 * _get_obj, _get_raw) get the projection. The runtime knows no kind's
 * fields: a projection is supplied by the code that knows the kind
 * (kfleetd's ControlPlaneMembers: src/controllers/ctrl-members.c). */
typedef json_t *(*kf_informer_project_fn)(const json_t *obj);
/* Sets inf's projection; before start only (-EBUSY after). Every
 * controller that uses the informer may set it: 0 when it is the same
 * function, -EEXIST when another one is set. */
int kf_informer_set_projection(struct kf_informer *inf, kf_informer_project_fn fn);

/* A parsed copy of name (new reference, resourceVersion set; the projection
 * if the informer has one), -KF_ENOTFOUND. */
int kf_informer_get(struct kf_informer *inf, const char *name, json_t **ret);
/* kf_informer_get's object, or NULL when name is NULL or not cached. */
json_t *kf_informer_get_obj(struct kf_informer *inf, const char *name);
/* The stored bytes of name, or its projection's encoding if the informer
 * has one (copied, NUL-terminated; the cache keeps them deflated and
 * inflates them here), -KF_ENOTFOUND, -EIO if they do not inflate (corrupt
 * memory). */
int kf_informer_get_raw(struct kf_informer *inf, const char *name, struct kf_kv *ret);
/* Sorted names of the objects whose index value equals value; the caller
 * frees the array and each name. Returns the count. */
size_t kf_informer_index_names(struct kf_informer *inf, const char *index, const char *value,
                               char ***ret_names);
/* Sorted names of every object; same ownership. */
size_t kf_informer_names(struct kf_informer *inf, char ***ret_names);
size_t kf_informer_count(struct kf_informer *inf);
/* The revision at which name was last written, as the cache has it (0 if
 * it has no such object): cheaper than kf_informer_get when the revision is
 * all a caller needs to know (nothing is inflated or parsed). */
int64_t kf_informer_mod_rev(struct kf_informer *inf, const char *name);
/* The kind an informer lists and watches. */
const struct kf_kind *kf_informer_kind(struct kf_informer *inf);
/* Bytes the cache holds for its objects, roughly as malloc sees them
 * (stored bytes as kept, i.e. deflated where that made them smaller, the
 * dictionaries they were deflated against, index values and entries, names,
 * per-object bookkeeping; not the hash tables' spare slots), for /metrics. */
size_t kf_informer_bytes(struct kf_informer *inf);
/* The store revision the cache reflects. */
int64_t kf_informer_rev(struct kf_informer *inf);
void kf_ctrl_names_free(char **names, size_t n);

/* --- controllers ---------------------------------------------------------- */

/* Maps an object of a watched kind to names of the controller's primary
 * kind, calling kf_ctrl_enqueue. `obj` is the new state, or the last state
 * for a deletion (for a deletion found by a re-list after compaction, the
 * state the cache kept: its projection, if the informer has one). */
typedef void (*kf_ctrl_map_fn)(struct kf_ctrl *c, const json_t *obj, bool deleted);
/* Hands map(c, member, false) every ControlPlaneMember bound to host (the
 * informer must have KF_INDEX_MEMBER_HOST): how a Host's change reaches the
 * controllers that watch members. */
void kf_informer_map_host_members(struct kf_informer *members, const char *host, struct kf_ctrl *c,
                                  kf_ctrl_map_fn map);

struct kf_ctrl_ops {
    const char *name;         /* "placement", "unit-status", ... */
    const char *primary_kind; /* its reconcile keys are names of this kind */
    int workers;              /* 0 means 1 */
    /* Declares watches and indexes with kf_ctrl_watch / kf_informer_add_index.
     * The primary kind is watched with the identity map automatically. */
    int (*setup)(struct kf_ctrl *c);
    /* Converges `name`. Returns 0 when done, a negative error to be retried
     * with back-off. May set *requeue_after_ms (> 0) to be looked at again
     * after a delay even on success (timeouts, grace periods, polling). */
    int (*reconcile)(struct kf_ctrl *c, const char *name, int64_t *requeue_after_ms);
    /* Called periodically (every resync_ms) if set: a full enqueue of the
     * primary kind happens at that period when resync_ms > 0. */
    int64_t resync_ms;
    /* Events of the primary kind go through this map instead of queueing
     * their name at once (NULL: queue it). For a controller that decides
     * itself which events of its own kind need a reconcile and when (its
     * own status writes coming back, say). The initial list goes through
     * it too; the resync still queues every name. Called in the informer's thread, like any
     * kf_ctrl_watch map; a controller that sets it does not also watch its
     * primary kind with kf_ctrl_watch. */
    kf_ctrl_map_fn primary_map;
};

/* Watches kind k for c: events map through `map` (NULL: same name). */
int kf_ctrl_watch(struct kf_ctrl *c, const struct kf_kind *k, kf_ctrl_map_fn map);
void kf_ctrl_enqueue(struct kf_ctrl *c, const char *name);
void kf_ctrl_enqueue_after(struct kf_ctrl *c, const char *name, int64_t delay_ms);
/* kf_workqueue_add_folded on c's queue. */
void kf_ctrl_enqueue_folded(struct kf_ctrl *c, const char *name, int64_t delay_ms, int64_t max_ms);
void *kf_ctrl_data(struct kf_ctrl *c);
const char *kf_ctrl_name(struct kf_ctrl *c);
struct kf_ctrl_manager *kf_ctrl_manager_of(struct kf_ctrl *c);
/* A value that the controllers of one manager share, found by key: the
 * first call makes it (make()), later calls return the same one; the
 * manager frees it (release(value)) after every controller's fini. Call it
 * from setup (the thread that adds controllers). */
void *kf_ctrl_manager_shared(struct kf_ctrl_manager *m, const char *key, void *(*make)(void),
                             void (*release)(void *value));
struct kf_registry *kf_ctrl_registry(struct kf_ctrl *c);
/* The informer of c's primary kind. */
struct kf_informer *kf_ctrl_primary(struct kf_ctrl *c);

struct kf_ctrl_stats {
    uint64_t reconciles;
    uint64_t errors;
    uint64_t requeues;
    size_t queue_depth;
    uint64_t reconcile_ns_total;
    uint64_t reconcile_ns_max;
};
void kf_ctrl_stats(struct kf_ctrl *c, struct kf_ctrl_stats *ret);
/* Called with the controller's data when the manager is freed (the
 * controller table sets each controller's fini after kf_ctrl_manager_add). */
void kf_ctrl_set_fini(struct kf_ctrl *c, void (*fini)(void *data));
/* Zeroed memory that lives as long as the manager (freed with it); aborts
 * when out of memory. */
void *kf_ctrl_manager_alloc(struct kf_ctrl_manager *m, size_t size);
/* Visits every controller of a manager (for /metrics). */
void kf_ctrl_manager_foreach(struct kf_ctrl_manager *m, void (*fn)(struct kf_ctrl *c, void *arg),
                             void *arg);
/* Visits every informer of a manager (for /metrics). */
void kf_ctrl_manager_foreach_informer(struct kf_ctrl_manager *m,
                                      void (*fn)(struct kf_informer *inf, void *arg), void *arg);

/* --- the work queue (exposed for tests and for non-controller users) ------ */

struct kf_workqueue;
struct kf_workqueue *kf_workqueue_new(void);
void kf_workqueue_free(struct kf_workqueue *q);
/* Adds name unless it is already waiting; if it is being processed, it is
 * processed again once done. */
void kf_workqueue_add(struct kf_workqueue *q, const char *name);
/* Adds name after delay_ms (an earlier pending delay wins). */
void kf_workqueue_add_after(struct kf_workqueue *q, const char *name, int64_t delay_ms);
/* Adds name after delay_ms, folding repeated adds into one: while name
 * waits for an earlier folded add, each one moves its time to delay_ms from
 * now, but never past max_ms after the add that started the wait (nor past
 * the time of a plain kf_workqueue_add_after, which never moves later). So
 * a steady stream of adds yields one pass every max_ms and one delay_ms
 * after the last. */
void kf_workqueue_add_folded(struct kf_workqueue *q, const char *name, int64_t delay_ms,
                             int64_t max_ms);
/* Re-adds name after its per-name back-off (5 ms doubling up to 5 min). */
void kf_workqueue_add_backoff(struct kf_workqueue *q, const char *name);
/* Clears name's back-off after a success. */
void kf_workqueue_forget(struct kf_workqueue *q, const char *name);
/* Takes the next name (caller frees), waiting up to timeout_ms (-1 forever).
 * Returns 1 with a name, 0 on timeout, -EPIPE after shutdown. */
int kf_workqueue_get(struct kf_workqueue *q, int timeout_ms, char **ret_name);
/* Marks name as processed (must follow every successful get). */
void kf_workqueue_done(struct kf_workqueue *q, const char *name);
void kf_workqueue_shutdown(struct kf_workqueue *q);
size_t kf_workqueue_len(struct kf_workqueue *q);  /* waiting now */
size_t kf_workqueue_busy(struct kf_workqueue *q); /* being processed */
/* Waits until nothing is waiting or being processed (delayed adds not
 * counted). 1 when idle, 0 on timeout. */
int kf_workqueue_wait_idle(struct kf_workqueue *q, int timeout_ms);

#endif
