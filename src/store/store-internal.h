/* store-internal.h: what store backends share and callers never see. */
#ifndef KF_STORE_INTERNAL_H
#define KF_STORE_INTERNAL_H

#include <pthread.h>

#include "kfleet/store.h"

/* Default size of the shared window of recent events (store-watch.c). A
 * watcher further behind than this reads the backend's history. The window
 * is memory kfleetd holds all the time once the fleet has written that much
 * (an event keeps the new and the previous value): 8 MiB is several
 * thousand events of slack for the informers and watches that follow the
 * store closely, a tenth of kfleetd's budget at 10,000 clusters (8 KiB a
 * cluster, docs/internals/memory.md); 32 MiB was 40 % of it. */
#define KF_WATCH_WINDOW_EVENTS 32768
#define KF_WATCH_WINDOW_BYTES  (8u * 1024 * 1024)

struct kf_watch_hub {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* broadcast on every publish and on close */
    struct kf_event **ring;
    size_t cap;
    size_t max_bytes;
    size_t bytes;
    uint64_t head_seq; /* sequence number of the oldest event in the ring */
    uint64_t next_seq; /* sequence number the next event gets */
    int64_t rev;       /* revision of the last published event */
    /* Every event with a revision > window_base_rev is in the ring. */
    int64_t window_base_rev;
    int64_t compacted_rev;
    struct kf_watch *watchers;
    size_t nwatchers;
    int refs; /* the store's reference + one per open watch */
    /* Watchers reading the backend's history right now (without the lock):
     * kf_watch_hub_close waits for them before the backend goes away. */
    int history_readers;
    bool closed;
    uint64_t published;
    uint64_t fallbacks;
};

/* max_events, max_bytes: the window's size; 0 takes the default (see
 * kf_watch_set_default_window). */
struct kf_watch_hub *kf_watch_hub_new(int64_t rev, int64_t compacted_rev, size_t max_events,
                                      size_t max_bytes);
/* Marks the hub closed (open watches see -EPIPE from now on), waits until no
 * watcher is reading the backend's history, and drops the store's
 * reference. Called before the backend is closed. NULL is fine. */
void kf_watch_hub_close(struct kf_watch_hub *hub);

/* For a backend that learns that events after what it last published and
 * up to rev were lost (its own feed resumed from a compacted revision):
 * every open watcher ends with -KF_ECOMPACTED at its next kf_watch_next
 * (kf_watch_wait reports it ready), however caught up it was, so that API
 * clients get 410 Gone and informers list again; the hub then continues
 * after rev (the next publish must be > rev), and watches opened from now
 * on start there. Returns the number of watchers expired. */
size_t kf_watch_hub_expire(struct kf_watch_hub *hub, int64_t rev);

/* For tests: the window size of hubs created from now on (0, 0: back to
 * KF_WATCH_WINDOW_EVENTS and KF_WATCH_WINDOW_BYTES). A tiny window makes
 * every watcher fall back to history. Not thread-safe; call it between
 * kf_store_open calls. */
void kf_watch_set_default_window(size_t max_events, size_t max_bytes);

/* The byte just past every key that starts with prefix ("" for no bound):
 * the exclusive end of a prefix range, as etcd's range_end. Caller frees. */
char *kf_store_prefix_end(const char *prefix);

/* Checks a key and value against the store's limits. */
int kf_store_check_op(const struct kf_op *op);

/* The etcd client of an etcd store (its configuration: endpoints, TLS,
 * prefix), NULL for other backends. For leader election (store-election.c). */
struct kf_etcd;
struct kf_etcd *kf_store_etcd_client(struct kf_store *s);

extern const struct kf_store_ops kf_store_memory_ops;
extern const struct kf_store_ops kf_store_sqlite_ops;
extern const struct kf_store_ops kf_store_etcd_ops;
/* Not a backend (not in the registry): fenced handles, store-guard.c. */
extern const struct kf_store_ops kf_store_guard_ops;

#endif
