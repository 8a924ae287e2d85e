/* ctrl-members.h: the ControlPlaneMember informer as every controller that
 * reads members uses it (ctrl-members.c).
 *
 * Members are the most numerous objects kfleetd caches (about ten a guest
 * cluster), so the controllers share one index of them by cluster and keep
 * only what they read in the informer's cache (docs/internals/memory.md).
 */
#ifndef KF_CTRL_MEMBERS_H
#define KF_CTRL_MEMBERS_H

#include <jansson.h>

struct kf_ctrl_manager;
struct kf_informer;

/* ControlPlaneMembers by spec.cluster, shared by every controller that
 * looks a cluster's members up (one set of index entries, not one each). */
#define KF_MEMBERS_BY_CLUSTER "member.cluster"

/* The manager's ControlPlaneMember informer with KF_MEMBERS_BY_CLUSTER and
 * the members' projection set (each controller calls it in setup; the first
 * call sets them up, later ones find them). Returns 0 and the informer in
 * *ret, or a negative error (-EBUSY after the manager started). */
int kf_ctrl_members_informer(struct kf_ctrl_manager *m, struct kf_informer **ret);

/* What the informer keeps of a member (new reference): the member without
 * the metadata no controller reads from the cache (labels, owner
 * references, managed fields, resourceVersion, which a read sets again).
 * Labels and owners stay in the store, for the API. */
json_t *kf_ctrl_member_project(const json_t *obj);

#endif
