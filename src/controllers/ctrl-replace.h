/* ctrl-replace.h: member replacement (ctrl-replace.c), what the lifecycle
 * controller and the unit tests share with it. The story is in
 * docs/internals/replacement.md. */
#ifndef KF_CTRL_REPLACE_H
#define KF_CTRL_REPLACE_H

#include <jansson.h>

#include "kfleet/base.h"

struct lc_view;

/* On a member being replaced: the replacement's record, a JSON object
 * {"id", "from", "to", "oldPeerURL", "step", "helper", "request",
 * "attempt", "since", "stepSince"} written by kfleetd only. */
#define KF_ANN_REPLACEMENT "kfleet.io/replacement"
/* On the etcd member whose agent changes the membership:
 * "<request> <old peer URL or -> <name> <new peer URL>"; the agent answers
 * in that member's status.etcdMemberChange {id, phase, message}. */
#define KF_ANN_ETCD_CHANGE "kfleet.io/etcd-member-change"

/* Steps of a replacement (the record's "step"). */
#define KF_REPLACE_REBOUND  "Rebound"  /* etcd: bound to the new host, membership not changed */
#define KF_REPLACE_CHANGING "Changing" /* etcd: the helper's agent was asked */
#define KF_REPLACE_ADDED    "Added"    /* etcd: the old one removed, the new one added */
#define KF_REPLACE_MOVED    "Moved"    /* others: bound to the new host */
#define KF_REPLACE_DONE     "Done"     /* Ready on the new host */

/* The record of member (a new reference), NULL when it has none. */
json_t *kf_replace_record(const json_t *member);
/* An etcd member rebound whose membership change is not done yet: its
 * command line waits (nothing may start it before etcd knows it). */
bool kf_replace_etcd_waiting(const json_t *member);
/* An etcd member that joined a running cluster by replacement: it runs
 * with --initial-cluster-state existing. */
bool kf_replace_joined(const json_t *member);
/* Ready where it is bound: status Ready and ready, reported by the agent
 * of its current host for its current generation, on a Ready host. */
bool kf_replace_settled(const json_t *member, const json_t *host);
/* Whether the lifecycle controller must wait before it writes a changed
 * command line (or certificates) for member i of v, which would restart
 * it: the member runs and is Ready, and another member of its component
 * is not settled or was restarted in this pass (restarted[j]). One member
 * of a component at a time keeps etcd's quorum and an apiserver behind
 * the endpoint. hosts[i]: each member's Host (NULL: unknown). */
bool kf_replace_hold(const struct lc_view *v, json_t *const *hosts, size_t i,
                     const bool *restarted);

/* How long host has been NotReady at now_ms (0: Ready, or no time known). */
int64_t kf_replace_notready_ms(const json_t *host, int64_t now_ms);

/* --- the decision, pure (unit-tested) --------------------------------------------- */

#define KF_REPLACE_MAX_MEMBERS 64

struct kf_replace_member {
    const char *name, *component;
    bool lost;    /* its host has been NotReady past the grace */
    bool settled; /* Ready where it is bound (kf_replace_settled) */
    bool moving;  /* a replacement of it is under way */
};

struct kf_replace_plan {
    size_t start[KF_REPLACE_MAX_MEMBERS]; /* members to move now (indexes) */
    size_t n_start;
    const char *blocked; /* why a lost etcd member waits (static text), or NULL */
    size_t blocked_member;
};

/* Which lost members start moving now: every lost member that is not an
 * etcd member; of etcd, one at a time in a cluster (none while one is
 * moving), and only when the members that stay hold a quorum of the
 * membership without the lost one (a member remove then keeps the
 * cluster writable). */
void kf_replace_plan(const struct kf_replace_member *ms, size_t n, struct kf_replace_plan *ret);

/* --- live migration between units (docs/internals/migration.md) ------------------ */

/* On the GuestCluster, written by the migrate action (admin): "<id> <from>
 * <to>" (kf_move_parse's format); the replace controller records the id in
 * KF_MIGRATE_ANN_DONE when every member runs on `to`. */
#define KF_MIGRATE_ANN       "kfleet.io/migrate"
#define KF_MIGRATE_ANN_DONE  "kfleet.io/migrated"
#define KF_MIGRATE_CONDITION "Migrated"

struct kf_move_req;
/* Whether gc has a migration under way (asked, not done): 1 with *ret
 * (may be NULL), else 0. */
int kf_migrate_active(const json_t *gc, struct kf_move_req *ret);

struct kf_migrate_member {
    const char *name, *component;
    bool on_target; /* bound to a host of the target unit */
    bool settled;   /* Ready where it is bound (kf_replace_settled) */
    bool moving;    /* a replacement or migration step of it is under way */
    bool just_done; /* its move ended less than KF_MIGRATE_SETTLE_MS ago */
};

/* After a member's move, the lifecycle controller restarts the others
 * whose command lines name it, one at a time; the next move waits this
 * long so that those restarts are written (and the members seen not
 * settled) before it starts. */
#define KF_MIGRATE_SETTLE_MS 2000

struct kf_migrate_plan {
    int next;              /* the member to move now, -1: none now */
    bool done;             /* every member on the target, settled, none moving */
    bool apiservers_there; /* every kube-apiserver on the target and settled */
    const char *waiting;   /* why none moves now (static text), or NULL */
    size_t waiting_member; /* the member it is about */
};

/* Which member a live migration moves next: one member of the cluster at a
 * time, only when every member is settled and none is moving (the etcd
 * members that stay then hold the quorum, an apiserver stays behind the
 * endpoint), nor right after one (just_done); etcd members first, then
 * kube-apiservers, then the others; by name within a component. Pure. */
void kf_migrate_plan(const struct kf_migrate_member *ms, size_t n, struct kf_migrate_plan *ret);

#endif
