/* lease-share.h: host heartbeats shared between kfleetd replicas, through
 * the store.
 *
 * Agents may beat to any replica; each replica renews leases in its own
 * lease table (kfleet/lease.h), and the leader's host-lifecycle controller
 * decides Ready / NotReady from the leader's table. So every replica tells
 * the others which hosts beat to it, and renews in its own table what the
 * others tell it; the leader then sees every heartbeat, and a follower that
 * becomes the leader starts with a warm table. The whole story, the
 * guarantees and the cost: docs/internals/replicas.md.
 *
 * What a replica writes, every `interval_ms`, is a TICK saying which hosts
 * beat to it (its local renewals, never what it learned from others), in
 * the cheaper of two forms:
 *   - a SET tick: the set of hosts that beat to it within the last
 *     `window_ms`, as a delta (hosts added, hosts removed; cumulative, so
 *     one tick is enough) against a BASE snapshot of the set written
 *     earlier. A fleet whose agents stay with one replica has a stable set:
 *     its ticks are a few dozen bytes whatever its size;
 *   - a RECENT tick: the hosts that beat to it since its previous tick
 *     (`span_ms` ago). When agents are spread over the replicas request by
 *     request (a load balancer without affinity) the sets churn, and this
 *     form is the cheaper one.
 * A new base is written (a new generation) when the ticks written since the
 * last one add up to more than a base would cost and the set churns slowly
 * enough for the base to pay off (rent or buy), or when neither form of a
 * tick fits KF_LEASE_SHARE_MAX_DELTA. Keys:
 *
 *   /_kfleet/heartbeats/<id>/tick         the latest tick
 *   /_kfleet/heartbeats/<id>/base/<NNNN>  the base, in shards of at most
 *                                         KF_LEASE_SHARE_SHARD_BYTES
 *
 * <id> is the replica id, percent-encoded. Names are sorted and front-coded
 * (each line: bytes shared with the previous name, a space, the rest), so
 * "h-0000123" after "h-0000122" costs 4 bytes. A steady fleet of any size
 * costs one small tick per replica per interval.
 *
 * What a replica reads: every tick of the others, through a watch on the
 * prefix. A set tick: it loads the base the tick refers to (at the tick's
 * revision) when it does not have it yet, and renews every host of the set
 * at (now - the writer's window): the host beat there at some time within
 * the window before the tick, so that is the latest time it certainly beat
 * by, give or take the tick's transit. A recent tick: it renews the hosts
 * listed at (now - span). A replica whose tick is deleted (it stopped
 * cleanly) or that has not reported for 3 intervals + 1 s is LOST: the hosts
 * of its last set and last recent tick are renewed once at now, so they get
 * a full grace to move to another replica, and it is forgotten.
 *
 * Nothing of this runs on a store with one writer (sqlite:, memory:):
 * there is one lease table and nothing to share.
 *
 * Threading: kf_lease_share_step and _free are called from one thread at a
 * time (the sharer's own thread once started); kf_lease_share_stats from
 * any thread.
 */
#ifndef KF_LEASE_SHARE_H
#define KF_LEASE_SHARE_H

#include "kfleet/base.h"

struct kf_lease_table;
struct kf_store;
struct kf_strbuf;
struct kf_lease_share;

#define KF_LEASE_SHARE_PREFIX "/_kfleet/heartbeats/"
/* A base shard's names, encoded, at most (etcd takes 1.5 MiB a request,
 * and its JSON gateway sends values in base64). */
#define KF_LEASE_SHARE_SHARD_BYTES (256 * 1024)
/* A tick's names, encoded, at most (its value, base64 in the gateway's
 * JSON, stays within etcd's 1.5 MiB a request); above it a new base is
 * written. */
#define KF_LEASE_SHARE_MAX_DELTA  (768 * 1024)
#define KF_LEASE_SHARE_MAX_SHARDS 4096
#define KF_LEASE_SHARE_MAX_ID     128

struct kf_lease_share_config {
    /* This replica's id (the election's: host:port); 1 to
     * KF_LEASE_SHARE_MAX_ID - 1 printable bytes. Two replicas with one id
     * would overwrite each other's reports. */
    const char *replica_id;
    /* How often this replica reports (> 0). */
    int64_t interval_ms;
    /* A host is in the report while it beat here within this long
     * (> interval_ms). It must be longer than the agents' heartbeat period
     * for the set to stay stable, and window + interval must stay below the
     * grace for no host to look silent on another replica while it beats
     * here (kfleetd uses grace / 2 and at most grace / 4). */
    int64_t window_ms;
    /* Optional: a DELETE of a store key under this prefix ("/hosts/")
     * drops the lease named by the rest of the key from the table. Only
     * the leader's controller forgets deleted Hosts otherwise, and a lease
     * is what lets the heartbeat endpoint accept a name without looking it
     * up: with this, every replica refuses a deleted Host's heartbeats. */
    const char *forget_prefix;
};

/* Opens the sharer over store s (must outlive it) and lease table t (ditto)
 * and starts watching what the others report. Deletes what an earlier run
 * with this id left in the store. -EINVAL with a message for a bad config;
 * a store error otherwise. */
int kf_lease_share_new(struct kf_store *s, struct kf_lease_table *t,
                       const struct kf_lease_share_config *c, struct kf_lease_share **ret,
                       struct kf_strbuf *err);

/* One round at now_ms (kf_now_ms()'s clock, the lease table's): renews what
 * the others reported since the last round, lets go of replicas that
 * stopped reporting, and writes this replica's report if one is due (the
 * first round always reports). Returns 0, or the store's error when the
 * report could not be written (the next due round tries again). For the
 * sharer's thread; tests drive it with their own clock. */
int kf_lease_share_step(struct kf_lease_share *sh, int64_t now_ms);

/* Starts a thread that calls kf_lease_share_step with kf_now_ms() every
 * interval and whenever another replica's tick arrives. */
int kf_lease_share_start(struct kf_lease_share *sh, struct kf_strbuf *err);

/* Stops the thread, deletes this replica's report (its tick first: the
 * others then give its hosts a full grace to move at once, instead of
 * after 3 intervals) and frees. Best effort on a store that does not
 * answer. NULL is fine. */
void kf_lease_share_free(struct kf_lease_share *sh);

struct kf_lease_share_stats {
    uint64_t reports;         /* ticks written */
    uint64_t recent_reports;  /* ... of them recent ticks */
    uint64_t report_failures; /* ticks (or their base) not written */
    uint64_t bases;           /* base snapshots written */
    uint64_t bytes;           /* bytes of values written (ticks and bases) */
    uint64_t imports;         /* ticks of other replicas read */
    uint64_t import_failures; /* ... whose base could not be read */
    uint64_t renewals;        /* leases renewed from them */
    uint64_t peers_lost;      /* replicas that stopped reporting */
    size_t peers;             /* replicas reporting now */
    size_t reported_hosts;    /* hosts in this replica's last report */
    int64_t last_report_ms;   /* when the last tick was written; 0 never */
};

void kf_lease_share_stats(struct kf_lease_share *sh, struct kf_lease_share_stats *ret);

/* --- the value format, for tests and the fuzzer ----------------------- */

enum kf_lease_report_kind {
    KF_LEASE_REPORT_BASE = 1, /* a shard of a base */
    KF_LEASE_REPORT_SET,      /* a set tick */
    KF_LEASE_REPORT_RECENT,   /* a recent tick */
};

/* One parsed value. */
struct kf_lease_report {
    enum kf_lease_report_kind kind;
    char base[64];                  /* the base generation "<incarnation>.<n>" */
    unsigned shard;                 /* base: this shard's index */
    unsigned shards;                /* base and set: how many shards the base has */
    uint64_t seq;                   /* ticks: its number */
    int64_t window_ms, interval_ms; /* ticks */
    int64_t span_ms;                /* recent: the time since the previous tick */
    char **names; /* base: its names; set: added; recent: the hosts; sorted, unique */
    size_t n_names;
    char **removed; /* set: removed from the base; sorted, unique */
    size_t n_removed;
};

/* Parses a value. -EBADMSG with a message for anything malformed (unknown
 * header, counts that do not match, names out of order or not printable,
 * over-long names); *ret untouched then. */
int kf_lease_report_parse(const char *buf, size_t len, struct kf_lease_report *ret,
                          struct kf_strbuf *err);
void kf_lease_report_release(struct kf_lease_report *r); /* NULL is fine */
/* Appends names (sorted, unique, printable, no spaces) front-coded, one a
 * line. Returns the bytes appended. */
size_t kf_lease_names_encode(struct kf_strbuf *out, char *const *names, size_t n);

#endif
