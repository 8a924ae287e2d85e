/* election.h: which kfleetd replica leads, decided on the store.
 *
 * Several kfleetd replicas may serve one fleet on etcd; all of them serve
 * the API, but only one, the leader, runs the controllers and the periodic
 * maintenance. The leader is elected with an etcd lease:
 *   - campaign: grant a lease of the TTL, then one transaction "if the
 *     leader key does not exist (create_revision == 0), put it, attached to
 *     the lease, with this replica's id as value";
 *   - the winner keeps the lease alive (every TTL/3) and checks that the
 *     key is still its own; the revision of its put is its FENCING TOKEN
 *     (kf_store_guard_new makes writes conditional on it);
 *   - the others watch the leader key and campaign again as soon as it is
 *     deleted (lease expired or revoked, or someone deleted it);
 *   - the leader steps down at once when the lease is lost (etcd says it
 *     expired, the key changed) or when it could not renew it for so long
 *     that etcd may have let it expire (TTL minus a margin, measured from
 *     the send time of the last renewal etcd acknowledged, so the leader
 *     always stops before etcd can elect another);
 *   - kf_election_stop resigns: revokes the lease, which deletes the key,
 *     so a follower takes over at once instead of after the TTL.
 * The leader key is the store key KF_ELECTION_KEY, inside the store's own
 * key range (so its changes keep the store's revision and its watch feed
 * in step: kf_store_rev never runs ahead of what watchers see because of
 * the election).
 *
 * On a store with one writer (sqlite:, memory:) there is nothing to elect:
 * the one replica is the leader from kf_election_start on, token 0 (no
 * fencing needed).
 *
 * Library code: nothing is logged above debug; the caller logs
 * transitions (kf_election_state.reason says why).
 */
#ifndef KF_ELECTION_H
#define KF_ELECTION_H

#include "kfleet/base.h"

struct kf_store;
struct kf_strbuf;
struct kf_election;

#define KF_ELECTION_KEY        "/_kfleet/leader"
#define KF_ELECTION_MAX_ID     128
#define KF_ELECTION_MIN_TTL_MS 1000

struct kf_election_config {
    /* This replica's identity, written into the leader key (and shown by
     * the others): e.g. "hostname:7480". At most KF_ELECTION_MAX_ID - 1
     * bytes, no control characters. */
    const char *id;
    /* The lease TTL (>= KF_ELECTION_MIN_TTL_MS; etcd counts whole seconds
     * and may raise it to its minimum). A dead leader is replaced within
     * about this long. */
    int64_t ttl_ms;
    /* Called after every change of state (become leader, lose it, a new
     * leader seen), from the election's thread (or from kf_election_start
     * for a single-writer store). Must be quick and must not call
     * kf_election_stop. May be NULL. */
    void (*changed)(void *arg);
    void *arg;
};

struct kf_election_state {
    bool contested; /* false for single-writer stores: always the leader */
    bool leader;
    int64_t token;                      /* our leader key's revision while leader, else 0 */
    char leader_id[KF_ELECTION_MAX_ID]; /* who leads, as far as we know ("" unknown) */
    int64_t leader_token;               /* the leader key's revision, as last seen */
    uint64_t terms;                     /* how often this replica became leader */
    int64_t since_ms;                   /* kf_now_ms() of the last change of `leader` */
    char reason[160];                   /* why the last change of `leader` happened */
};

/* Starts taking part in the election for store s (which must outlive it).
 * -EINVAL with a message for a bad config. Never blocks on etcd: the
 * campaign runs in a thread of its own. */
int kf_election_start(struct kf_store *s, const struct kf_election_config *c,
                      struct kf_election **ret, struct kf_strbuf *err);
/* The current state (a copy). */
void kf_election_get(struct kf_election *e, struct kf_election_state *ret);
/* Resigns if leading (revokes the lease: the key goes at once), stops the
 * thread and frees. `changed` is not called from here on. NULL is fine. */
void kf_election_stop(struct kf_election *e);

#endif
