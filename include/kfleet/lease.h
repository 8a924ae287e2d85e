/* lease.h: the in-memory lease table that records host heartbeats.
 *
 * A heartbeat is a renewal of the host's lease here, never a store write:
 * with a million hosts beating every 10 s, kfleetd takes 100,000 renewals a
 * second and writes to the store only when a host changes between alive and
 * expired (the host controller does that, with the reasons, as events).
 *
 * The table is sharded by name hash (one mutex per shard) so renewals from
 * many API threads do not contend. Time is passed in (ms, any monotonic or
 * wall clock, consistently) so tests and simulations control it.
 *
 * After kfleetd starts (or a replica takes over as leader) the table is
 * empty; a host is not "expired" before it has had a full grace period to
 * renew with this table: callers measure silence from
 * max(last renewal, kf_lease_table_started_ms()).
 *
 * With several kfleetd replicas, agents may beat to any of them. Each lease
 * then has two times: the LOCAL renewal (kf_lease_renew: an agent beat to
 * this replica) and the last renewal from any source, which also counts
 * renewals other replicas reported (kf_lease_renew_remote; the reports are
 * daemon-heartbeats.c's, kfleet/lease-share.h). kf_lease_last, _alive and
 * _expire use the latter; a replica passes on to the others only its local
 * renewals (kf_lease_local_since), never what it learned from them, so no
 * renewal echoes between replicas.
 */
#ifndef KF_LEASE_H
#define KF_LEASE_H

#include "kfleet/base.h"

struct kf_lease_table;

struct kf_lease_table *kf_lease_table_new(int64_t now_ms);
void kf_lease_table_free(struct kf_lease_table *t); /* NULL is fine */
int64_t kf_lease_table_started_ms(const struct kf_lease_table *t);

/* Renews name at now_ms. Returns 1 when this renewal brings the lease to
 * life (first renewal, or renewal after kf_lease_expire reported it), else
 * 0. -EINVAL for an empty or over-long name (KF_LEASE_MAX_NAME). */
#define KF_LEASE_MAX_NAME 253
int kf_lease_renew(struct kf_lease_table *t, const char *name, int64_t now_ms);

/* A renewal of name at at_ms that another replica reported: moves the last
 * renewal forward (never back) and leaves the local one alone. Returns 1
 * when it brings the lease to life (a new name, or one kf_lease_expire
 * reported, renewed later than its last renewal), else 0; -EINVAL as
 * kf_lease_renew. */
int kf_lease_renew_remote(struct kf_lease_table *t, const char *name, int64_t at_ms);

/* Lists the names renewed LOCALLY (kf_lease_renew) at or after since_ms:
 * calls fn(name, local_ms, arg) for each, in no particular order, with a
 * shard of the table locked (fn must be quick and must not call into the
 * table). Returns how many. */
size_t kf_lease_local_since(struct kf_lease_table *t, int64_t since_ms,
                            void (*fn)(const char *name, int64_t local_ms, void *arg), void *arg);

/* Finds live leases silent for more than grace_ms at now_ms, marks them
 * expired, and returns their names sorted (caller frees with
 * kf_lease_names_free). Returns the count. */
size_t kf_lease_expire(struct kf_lease_table *t, int64_t now_ms, int64_t grace_ms,
                       char ***ret_names);

/* The last renewal of name in ms (local or reported), or 0 if never
 * renewed here. */
int64_t kf_lease_last(struct kf_lease_table *t, const char *name);
/* The last LOCAL renewal of name (kf_lease_renew), or 0 if none: a local
 * renewal means this replica found the Host when it first beat here, a
 * reported one does not. */
int64_t kf_lease_local_last(struct kf_lease_table *t, const char *name);
/* Whether name renewed within grace_ms of now_ms. */
bool kf_lease_alive(struct kf_lease_table *t, const char *name, int64_t now_ms, int64_t grace_ms);
/* Drops name (a deleted host). */
void kf_lease_forget(struct kf_lease_table *t, const char *name);
size_t kf_lease_count(struct kf_lease_table *t);
void kf_lease_names_free(char **names, size_t n);

#endif
