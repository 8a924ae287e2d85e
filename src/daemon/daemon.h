/* daemon.h: what kfleetd's parts share (src/daemon/).
 *
 *   daemon-main.c         options, start-up order, signals, shutdown
 *   daemon-maint.c        periodic store compaction and Event garbage collection
 *   daemon-controllers.c  THE HOOK where controllers are started and stopped
 *   daemon-leader.c       leader election: controllers and maintenance run
 *                         only on the leader, in terms (fenced writes)
 *   daemon-heartbeats.c   host heartbeats shared between replicas
 *
 * Start-up order: store -> registry -> metrics -> API server (built, not yet
 * listening) -> election (with one writer, sqlite or memory, this replica
 * leads at once: controllers -> maintenance) -> API listens. On etcd the
 * controllers and maintenance start later, whenever this replica becomes
 * the leader, and stop when it stops being it (daemon-leader.c). Shutdown
 * runs it backwards: the API stops accepting and ends its watches, then
 * maintenance and controllers stop, the replica resigns, then the registry
 * and store close.
 *
 * While leading, a term's struct kf_daemon is a copy of kfleetd's with a
 * fenced store handle, a registry over it and metrics of its own: the
 * controller hook and the maintenance see only that copy.
 */
#ifndef KF_DAEMON_H
#define KF_DAEMON_H

#include "kfleet/base.h"

struct kf_api;
struct kf_capacity_options;
struct kf_endpoints;
struct kf_lifecycle_actions;
struct kf_lifecycle_options;
struct kf_lease_table;
struct kf_metrics;
struct kf_mon;
struct kf_registry;
struct kf_store;
struct kf_strbuf;
struct daemon_maint;

/* Everything a part of kfleetd may use. Borrowed pointers, valid from
 * before kf_daemon_controllers_start until after kf_daemon_controllers_stop. */
struct kf_daemon {
    const char *data_dir; /* exists and is writable */
    struct kf_store *store;
    struct kf_registry *reg;
    struct kf_metrics *metrics; /* served on /metrics: add families here */
    struct kf_api *api;
    struct kf_lease_table *leases; /* host heartbeats, shared by the API and controllers */
    const struct kf_capacity_options *capacity;   /* --host-grace, --grade-table, ... */
    const char *controllers_enabled;              /* --controllers */
    const struct kf_lifecycle_options *lifecycle; /* --member-ports, ... */
    void *controllers;                            /* owned by daemon-controllers.c */
    struct kf_mon *mon;             /* --monitoring; NULL when off (kfleet/monitoring.h) */
    struct kf_endpoints *endpoints; /* --endpoints; NULL when off (kfleet/endpoint.h) */
};

/* Registers kfleet_process_heap_bytes (malloc's in use, free, mmap). */
void kf_daemon_memory_add_metrics(struct kf_metrics *m);

/* Starts the controllers (the controller runtime, src/controllers/). Called
 * once, after the store, registry, metrics and API server exist and before
 * the API server listens. A failure stops kfleetd with exit code 1. */
int kf_daemon_controllers_start(struct kf_daemon *d, struct kf_strbuf *err);
/* Stops them; called after the API server stopped, before the store closes. */
void kf_daemon_controllers_stop(struct kf_daemon *d);

/* Periodic maintenance (daemon-maint.c). */
struct daemon_maint_config {
    int64_t compact_interval_ms;  /* 0: no compaction */
    int64_t compact_retention_ms; /* keep revisions younger than this ... */
    int64_t compact_keep_revs;    /* ... and at least this many of the latest */
    int64_t event_ttl_ms;         /* Events unseen for this long are deleted */
    int64_t event_gc_interval_ms; /* 0: no Event GC */
};

int kf_daemon_maint_start(struct kf_daemon *d, const struct daemon_maint_config *c,
                          struct daemon_maint **ret);
void kf_daemon_maint_stop(struct daemon_maint *m); /* NULL is fine */
/* The revision a compaction at now_ms would compact to, given the samples
 * (time, revision) taken so far (exported for tests; 0: nothing to do). */
int64_t kf_daemon_compact_target(const struct daemon_maint_config *c, int64_t cur_rev,
                                 int64_t now_ms, const int64_t *sample_ms,
                                 const int64_t *sample_rev, size_t n);

/* The leader election and the terms it drives (daemon-leader.c). */
struct daemon_leader;
struct daemon_leader_config {
    const char *replica_id; /* in the leader key; --replica-id */
    int64_t lease_ttl_ms;   /* --leader-ttl */
    struct daemon_maint_config maint;
};
/* Starts the election; with a single-writer store also the first term
 * (controllers and maintenance) before returning. Registers the kfleet_leader
 * families and the /readyz detail (before the API listens). */
int kf_daemon_leader_start(struct kf_daemon *d, const struct daemon_leader_config *c,
                           struct daemon_leader **ret, struct kf_strbuf *err);
/* Stops the term (if leading) and resigns. NULL is fine. */
void kf_daemon_leader_stop(struct daemon_leader *l);
bool kf_daemon_leader_is_leader(struct daemon_leader *l);
/* False with a single-writer store (this replica leads, nothing elected). */
bool kf_daemon_leader_contested(struct daemon_leader *l);

/* Host heartbeats shared with the other replicas (daemon-heartbeats.c,
 * kfleet/lease-share.h); only with an elected leader (etcd). */
struct daemon_heartbeats;
struct daemon_heartbeats_config {
    const char *replica_id; /* the election's */
    int64_t interval_ms;    /* --heartbeat-report-interval (capped at grace/4) */
    int64_t host_grace_ms;  /* --host-grace: the window is half of it */
};
/* Starts reporting d->leases' local renewals and renewing the others'.
 * Registers the kfleet_heartbeat_share_* families. Before the API listens. */
int kf_daemon_heartbeats_start(struct kf_daemon *d, const struct daemon_heartbeats_config *c,
                               struct daemon_heartbeats **ret, struct kf_strbuf *err);
/* Stops and deletes this replica's report (the others give its hosts a full
 * grace to move at once). After the API stopped; NULL is fine. */
void kf_daemon_heartbeats_stop(struct daemon_heartbeats *h);

#endif
