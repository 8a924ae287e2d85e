/* store.h: kfleet's state, a versioned key-value map with one global revision.
 *
 * The model is etcd's, so that the etcd backend is a thin translation:
 *   - keys are "/<plural>/<name>" ("/guestclusters/web-1"); values are opaque
 *     bytes (kfleet stores canonical object JSON, see obj.h);
 *   - every committed transaction bumps the global revision by one; each key
 *     records the revision that created it (create_rev) and that last changed
 *     it (mod_rev); a delete is a change too;
 *   - writes are compare-and-swap on a key's mod_rev;
 *   - old revisions stay readable (range at a revision, history of changes)
 *     until they are compacted; reading a compacted revision is -KF_ECOMPACTED
 *     (the API's 410 Gone).
 *
 * Backends are ops tables (store-memory.c, store-sqlite.c, store-etcd.c),
 * chosen by the scheme of the URL given to kf_store_open: "memory:",
 * "sqlite:PATH", "etcd:http://h1:2379,http://h2:2379". Callers use only the
 * kf_store_* and kf_watch_* functions below.
 *
 * Watches are served by one hub per store (store-watch.c): backends publish
 * each committed transaction's events once, in revision order; every watcher
 * reads them from a shared in-memory window with its own cursor, so a write
 * costs the same whether 1 or 1,000 watchers listen. A watcher that starts or
 * falls behind the window catches up from the backend's history.
 *
 * Threading: every function may be called from any thread at any time,
 * except that one struct kf_watch is used by one thread at a time, and
 * kf_store_close must not race with other calls on the same store (open
 * watches may outlive it: they then report -EPIPE).
 */
#ifndef KF_STORE_H
#define KF_STORE_H

#include "kfleet/base.h"

struct kf_strbuf;
struct kf_store;
struct kf_watch;

/* Hard limits that every backend enforces (etcd's default request limit is
 * 1.5 MiB; objects stay well below). */
#define KF_STORE_MAX_KEY   512
#define KF_STORE_MAX_VALUE (1024 * 1024)
/* At most this many ops in one transaction (etcd's default --max-txn-ops). */
#define KF_STORE_MAX_TXN_OPS 128

struct kf_kv {
    char *key;
    char *value; /* NUL-terminated for convenience; value_len excludes the NUL */
    size_t value_len;
    int64_t create_rev;
    int64_t mod_rev;
};

void kf_kv_release(struct kf_kv *kv);

struct kf_kv_list {
    struct kf_kv *items;
    size_t n, alloc;
    int64_t rev; /* the revision the list was read at */
    bool more;   /* a limit cut the list short; continue after the last key */
};

void kf_kv_list_release(struct kf_kv_list *l);

enum kf_event_type {
    KF_EVENT_PUT = 1,
    KF_EVENT_DELETE = 2,
};

/* One change. Immutable once published and reference-counted: a watcher
 * holds a reference while it writes the event out.
 * For a PUT, kv is the new value; for a DELETE, kv.value is the value that
 * was deleted and kv.mod_rev the revision of the delete. prev_value is the
 * value before a PUT (NULL when the PUT created the key); prev_mod_rev is
 * the key's mod_rev before this change (0 when the PUT created it). */
struct kf_event {
    int refcnt; /* atomic */
    enum kf_event_type type;
    struct kf_kv kv;
    char *prev_value;
    size_t prev_len;
    int64_t prev_mod_rev;
};

struct kf_event *kf_event_new(enum kf_event_type type, const char *key, const char *value,
                              size_t value_len, int64_t create_rev, int64_t mod_rev,
                              const char *prev_value, size_t prev_len, int64_t prev_mod_rev);
struct kf_event *kf_event_ref(struct kf_event *ev);
void kf_event_unref(struct kf_event *ev); /* NULL is fine */
static inline bool kf_event_created(const struct kf_event *ev)
{
    return ev->type == KF_EVENT_PUT && ev->kv.create_rev == ev->kv.mod_rev;
}

struct kf_event_list {
    struct kf_event **items;
    size_t n, alloc;
};
void kf_event_list_release(struct kf_event_list *l);

/* A range read. Keys are returned in byte order. */
/* -KF_ECOMPACTED when rev < the compacted revision, -EINVAL when rev is in
 * the future. */
struct kf_range {
    const char *prefix;      /* every key starting with this (NULL or "": all) */
    const char *start_after; /* exclusive lower bound (a continue token), or NULL */
    size_t limit;            /* at most this many items; 0: no limit */
    int64_t rev;             /* read at this revision; 0: the current one */
};

/* One operation of a transaction. expect_mod_rev:
 *   KF_REV_ANY  no condition;
 *   0           the key must not exist (create);
 *   > 0         the key's mod_rev must equal it (update, delete).
 * Failed conditions: an existing key with 0 is -KF_EEXISTS; a missing key
 * with > 0 is -KF_ENOTFOUND; another mod_rev is -KF_ECONFLICT; a DELETE of
 * a missing key is -KF_ENOTFOUND whatever the condition. Conditions are
 * checked against the state before the transaction. */
#define KF_REV_ANY (-1)

enum kf_op_type {
    KF_OP_PUT = 1,
    KF_OP_DELETE = 2,
    /* A condition only: the transaction applies only if key satisfies
     * expect_mod_rev (0: missing; > 0: exists with that mod_rev; KF_REV_ANY
     * is -EINVAL); nothing is written to key and it gets no event. Used for
     * fencing (a write that holds only while a leader key is unchanged, see
     * kf_store_guard_new). A transaction needs at least one PUT or DELETE. */
    KF_OP_CHECK = 3,
};

struct kf_op {
    enum kf_op_type type;
    const char *key;
    const char *value; /* PUT only */
    size_t value_len;
    int64_t expect_mod_rev;
};

struct kf_store_status {
    int64_t rev;           /* current revision */
    int64_t compacted_rev; /* reads below this revision are gone; this one stays */
    int64_t keys;          /* live keys */
    int64_t db_bytes;      /* size on disk or in memory, best effort */
    int64_t mem_bytes;     /* heap the backend's library holds (SQLite: page caches and
                              statements, sqlite3_memory_used); 0 when not known */
    /* Only for backends with an event feed of their own (ops->start), before
     * it starts: the revision the feed would start after, <= rev (0: rev).
     * etcd's revision also counts writes to keys outside the store (other
     * fleets, leader election); starting the watch window at the newest
     * revision of the store's own keys leaves no gap that history cannot
     * cross. */
    int64_t feed_rev;
};

struct kf_store_ops {
    const char *scheme; /* "memory", "sqlite", "etcd" */
    /* Opens the store described by arg (the URL without "scheme:"). The
     * returned object embeds struct kf_store as its first member. */
    int (*open)(const char *arg, struct kf_store **ret, struct kf_strbuf *err);
    void (*close)(struct kf_store *s);
    int (*get)(struct kf_store *s, const char *key, struct kf_kv *ret);
    int (*range)(struct kf_store *s, const struct kf_range *q, struct kf_kv_list *ret);
    /* Applies every op or none, all at one new revision, in the given order.
     * On success sets *ret_rev to the revision of the transaction and
     * publishes its events (kf_store_publish) before returning. On a failed
     * condition returns the code of the first failing op (-KF_ECONFLICT,
     * -KF_EEXISTS, -KF_ENOTFOUND) and its index in *ret_failed; a key that
     * appears twice is -EINVAL (index of the second). I/O errors are
     * negative errnos (-EIO, -ENOSPC); nothing is applied then. */
    int (*txn)(struct kf_store *s, const struct kf_op *ops, size_t n, int64_t *ret_rev,
               size_t *ret_failed);
    /* Appends to ret the events with revision > after_rev, in order, at most
     * `limit` (0: all; a transaction is never split). -KF_ECOMPACTED when
     * after_rev < the compacted revision. */
    int (*history)(struct kf_store *s, int64_t after_rev, size_t limit, struct kf_event_list *ret);
    /* Forgets what is superseded at rev: every version of a key that a later
     * version with revision <= rev replaced, and deleted keys whose delete
     * is <= rev. What was current at rev stays readable. -EINVAL when rev is
     * in the future, -KF_ECOMPACTED when rev <= the compacted revision. */
    int (*compact)(struct kf_store *s, int64_t rev);
    int (*status)(struct kf_store *s, struct kf_store_status *ret);
    /* Optional, for backends whose events come from outside the process
     * (etcd: other replicas write too). start is called by kf_store_open
     * once the watch hub exists, with the revision the hub starts at; from
     * then on the backend publishes every transaction with a revision > rev,
     * from a thread of its own. stop is called first thing by
     * kf_store_close and returns when nothing will be published any more. */
    int (*start)(struct kf_store *s, int64_t rev);
    void (*stop)(struct kf_store *s);
};

struct kf_watch_hub;

/* The part every backend embeds first. */
struct kf_store {
    const struct kf_store_ops *ops;
    struct kf_watch_hub *hub;
    char *url;
};

/* Opens "scheme:arg". -EINVAL with a message naming the known schemes when
 * the scheme is unknown; a backend's own error otherwise. */
int kf_store_open(const char *url, struct kf_store **ret, struct kf_strbuf *err);
void kf_store_close(struct kf_store *s); /* NULL is fine; closes open watches' source */
const char *kf_store_url(const struct kf_store *s);

/* -KF_ENOTFOUND when the key does not exist. */
int kf_store_get(struct kf_store *s, const char *key, struct kf_kv *ret);
int kf_store_range(struct kf_store *s, const struct kf_range *q, struct kf_kv_list *ret);
/* Checks every op first (-EINVAL: no key, a key not starting with '/', a
 * PUT without value, a bad condition or type, no ops, only KF_OP_CHECK
 * ops; -KF_ETOOLARGE: a key
 * or value over the limits, more than KF_STORE_MAX_TXN_OPS ops), then calls
 * the backend's txn (see struct kf_store_ops). */
int kf_store_txn(struct kf_store *s, const struct kf_op *ops, size_t n, int64_t *ret_rev,
                 size_t *ret_failed);
/* Single-key conveniences over kf_store_txn. */
int kf_store_put(struct kf_store *s, const char *key, const char *value, size_t len,
                 int64_t expect_mod_rev, int64_t *ret_rev);
int kf_store_delete(struct kf_store *s, const char *key, int64_t expect_mod_rev, int64_t *ret_rev);
int kf_store_history(struct kf_store *s, int64_t after_rev, size_t limit,
                     struct kf_event_list *ret);
int kf_store_compact(struct kf_store *s, int64_t rev);
int kf_store_status(struct kf_store *s, struct kf_store_status *ret);
int64_t kf_store_rev(struct kf_store *s); /* current revision, or 0 */

/* --- fencing ------------------------------------------------------------
 *
 * A guarded handle on store s: reads, watches, history, compaction and
 * status are s's; every transaction through it carries one more op, a
 * KF_OP_CHECK that guard_key still has mod_rev guard_rev. So a write through
 * it commits only if, at the revision it commits at, guard_key is unchanged
 * since guard_rev: with guard_key a leader key attached to an etcd lease and
 * guard_rev its revision (the fencing token), a writer that has lost
 * leadership (the lease expired, another replica campaigned and won) can
 * no longer write, whatever it believes and however late its request
 * arrives. A transaction refused because of the guard (and only then)
 * returns -KF_EFENCED; one of n ops then fits at most
 * KF_STORE_MAX_TXN_OPS - 1. s must outlive the handle; close the handle
 * with kf_store_close (which closes only the handle). Each refusal counts
 * in kf_store_guard_fenced. Watches opened on the handle must be closed
 * before it. */
int kf_store_guard_new(struct kf_store *s, const char *guard_key, int64_t guard_rev,
                       struct kf_store **ret);
/* Transactions refused by the guard of handle g so far (0 for a store that
 * is not a guard). */
uint64_t kf_store_guard_fenced(struct kf_store *g);

/* For backends: the one registry, and publishing committed events. */
const struct kf_store_ops *kf_store_backend(const char *scheme);
/* Takes one reference of each event. Must be called in revision order, once
 * per committed transaction, with all the transaction's events. */
void kf_store_publish(struct kf_store *s, struct kf_event **events, size_t n);
/* Called by a backend when it learns its history was compacted. */
void kf_store_note_compacted(struct kf_store *s, int64_t rev);

/* --- watches -----------------------------------------------------------
 *
 * kf_watch_open: watch keys starting with prefix for changes with
 * revision > after_rev (0: from now). -KF_ECOMPACTED if after_rev is older
 * than the compacted revision.
 *
 * wake(arg) is called, from a writer's thread and with hub locks held, when
 * new events may be ready: it must not block and must not call back into the
 * store (signal a condition, write an eventfd, resume a connection). It may
 * be NULL for watchers that poll or use kf_watch_wait.
 *
 * kf_watch_next returns 1 and a reference to the next event (the caller
 * unrefs it), 0 when there is none now, or a negative error: -KF_ECOMPACTED
 * when the watcher fell behind and its history is gone, -EPIPE when the
 * store was closed. A transaction's events arrive together.
 */
int kf_watch_open(struct kf_store *s, const char *prefix, int64_t after_rev,
                  void (*wake)(void *arg), void *arg, struct kf_watch **ret);
int kf_watch_next(struct kf_watch *w, struct kf_event **ret);
/* Waits up to timeout_ms (-1: forever) until kf_watch_next would return
 * non-zero. Returns 1 if ready, 0 on timeout. A 1 can be spurious while the
 * watcher catches up from a backend whose history lags its events (etcd):
 * kf_watch_next then returns 0 and the caller waits again. */
int kf_watch_wait(struct kf_watch *w, int timeout_ms);
/* The revision up to which this watcher has seen everything (for bookmarks). */
int64_t kf_watch_progress(struct kf_watch *w);
void kf_watch_close(struct kf_watch *w); /* NULL is fine */

/* Hub statistics for /metrics. */
struct kf_watch_stats {
    size_t watchers;
    size_t window_events;
    size_t window_bytes; /* what the window's events hold (keys, values, previous values) */
    int64_t window_oldest_rev;
    uint64_t published_events;
    uint64_t history_fallbacks;
};
void kf_watch_hub_stats(struct kf_store *s, struct kf_watch_stats *ret);

#endif
