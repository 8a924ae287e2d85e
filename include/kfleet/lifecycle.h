/* lifecycle.h: the cluster lifecycle controller, i.e. from a placed
 * GuestCluster to a running control plane and back to nothing.
 *
 * Placement (kfleet/capacity.h) picks a unit, allocates IP ranges and
 * creates the ControlPlaneMembers the grade calls for, bound to hosts
 * across zones. This controller then, for each cluster:
 *   - allocates the members' ports on their hosts (per host address, so
 *     hosts sharing an address never collide; kept in spec.ports);
 *   - keeps the cluster's PKI (pki.h) in the store: CAs, etcd peer, server
 *     and client certificates with the members' addresses, the apiserver's
 *     serving certificate with the first service IP and the endpoints, an
 *     admin certificate, and what the Kubernetes components need;
 *   - fills each member's binary, args, ports, probe and version from the
 *     component catalog (catalog.h), the profile and the cluster's flags,
 *     with the hash of its certificate bundle in the annotation
 *     kfleet.io/pki-hash (the agent fetches the bundle when it changes) and
 *     the finalizer kfleet.io/agent;
 *   - gives a cluster with kube-apiservers a stable endpoint,
 *     status.endpoints.apiServer = https://ADDR:PORT on its unit's
 *     endpoint address (the endpoints controller's HAProxy listens there),
 *     named by the apiserver's certificate and every kubeconfig;
 *   - moves the phase: Provisioning until etcd has a quorum, every member
 *     is ready and the apiserver answers /readyz through the endpoint,
 *     then Running while the control plane serves (a quorum, a ready
 *     member of every component on a Ready host, the endpoint answering;
 *     a lost member, host or zone leaves it Running "with reduced
 *     redundancy", said in its message and conditions), and Degraded with
 *     the reason when it does not serve (a missing binary says
 *     BinaryNotInstalled: a cluster with a quorum goes Degraded at once for
 *     that, or for a host that is down, or after provision_timeout_ms);
 *     conditions EtcdQuorum, ComponentsReady, EndpointReady, Ready;
 *   - keeps spec.simulatedNodes Nodes in the guest (through the endpoint,
 *     for the cluster's KWOK member) and reports status.nodes;
 *   - on deletion (finalizer kfleet.io/lifecycle): phase Deleting, deletes
 *     the members, waits until each agent reports its member stopped and
 *     its data removed (status.released, then the member's finalizer comes
 *     off; a member whose host stays NotReady past release_timeout_ms is
 *     let go with an Event), then removes the PKI and its finalizer.
 *
 * The API actions (kf_lifecycle_add_actions), served by every replica from
 * the store:
 *   GET .../controlplanemembers/<name>/bundle   roles agent, admin: the
 *       member's certificates {"hash", "files": [{path, data, secret}]}
 *   GET .../guestclusters/<name>/kubeconfig     admin: {"kubeconfig": YAML}
 *   GET .../guestclusters/<name>/etcdclient     admin: {"endpoints": [...],
 *       "ca", "cert", "key"} for etcdctl
 */
#ifndef KF_LIFECYCLE_H
#define KF_LIFECYCLE_H

#include "kfleet/base.h"

struct kf_api;
struct kf_ctrl_env;
struct kf_ctrl_ops;
struct kf_registry;
struct kf_store;
struct kf_strbuf;

#define KF_FINALIZER_LIFECYCLE "kfleet.io/lifecycle" /* GuestCluster */
#define KF_FINALIZER_AGENT     "kfleet.io/agent"     /* ControlPlaneMember */
#define KF_ANNOTATION_PKI_HASH "kfleet.io/pki-hash"  /* ControlPlaneMember */

struct kf_lifecycle_options {
    /* members' ports and guests' endpoint ports (kfleetd --member-ports,
     * 20000-29999), per address */
    int port_min, port_max;
    /* where a unit without spec.endpointAddress serves its guests'
     * apiserver endpoints (kfleetd --endpoint-address, "127.0.0.1"; borrowed) */
    const char *endpoint_address;
    int64_t health_period_ms; /* how often a provisioned cluster is checked (5 s) */
    /* a deleting member whose host is NotReady (or gone) this long is let
     * go without its agent (5 min) */
    int64_t release_timeout_ms;
    /* provisioning for this long without every member ready: Degraded (2 min) */
    int64_t provision_timeout_ms;
    /* an upgraded member not Ready on its new version this long stops the
     * upgrade (3 min) */
    int64_t upgrade_step_timeout_ms;
    /* a host NotReady this long (counted from its NotReady transition) has
     * its members replaced on other hosts (kfleetd --member-replace-grace,
     * 5 min; 0: never); the replace controller (docs/internals/replacement.md) */
    int64_t replace_grace_ms;
};

void kf_lifecycle_options_default(struct kf_lifecycle_options *o);

extern const struct kf_ctrl_ops kf_ctrl_lifecycle_ops;
int kf_ctrl_lifecycle_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
void kf_ctrl_lifecycle_fini(void *data);

/* Member replacement (ctrl-replace.c, docs/internals/replacement.md): the
 * members of a host NotReady past replace_grace_ms move to other hosts of
 * the unit, etcd members one at a time through their agents. */
extern const struct kf_ctrl_ops kf_ctrl_replace_ops;
int kf_ctrl_replace_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
void kf_ctrl_replace_fini(void *data);

/* Adds the actions above through actions (kfleet/api-action.h; kfleetd
 * passes kf_api_actions() of its server, before kf_api_start), reading
 * through reg and store (both borrowed, must outlive the server). *ret (set
 * even on failure) is what the actions use: free it with
 * kf_lifecycle_actions_free() after kf_api_free(). */
struct kf_api_actions;
struct kf_lifecycle_actions;
int kf_lifecycle_add_actions(const struct kf_api_actions *actions, struct kf_registry *reg,
                             struct kf_store *store, struct kf_lifecycle_actions **ret,
                             struct kf_strbuf *err);
void kf_lifecycle_actions_free(struct kf_lifecycle_actions *a); /* NULL is fine */

#endif
