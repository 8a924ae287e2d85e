/* ctrl-members.c: the ControlPlaneMember informer the controllers share
 * (contract in ctrl-members.h): one index by cluster, and the projection
 * that keeps in the cache only the fields controllers read.
 *
 * What is dropped and why: a member's labels repeat its spec (cluster,
 * component, unit, zone, host: for selectors through the API, which reads
 * the store) and its owner reference names its cluster with the cluster's
 * uid; no controller reads either from the cache. Deflated against the
 * kind's dictionary they were about 40 % of a placed member's bytes in the
 * cache, and parsing them again was part of every read. What a controller
 * reads (spec, status, annotations, finalizers, deletionTimestamp,
 * generation, uid and creationTimestamp) is kept as stored.
 */
#include <stdlib.h>
#include <errno.h>
#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "controllers/ctrl-members.h"

static void index_cluster(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *c = kf_json_str(obj, "spec.cluster", NULL);

    if (c && *c)
        add(c, ctx);
}

json_t *kf_ctrl_member_project(const json_t *obj)
{
    static const char *const drop[] = { "labels", "ownerReferences", "managedFields",
                                        "resourceVersion" };
    json_t *meta = json_object_get(obj, "metadata"), *p;

    if (!json_is_object(obj) || !json_is_object(meta))
        return NULL; /* kept whole */
    /* shallow copies: the object and its metadata are new, the rest shared */
    p = json_copy((json_t *)obj);
    meta = json_copy(meta);
    for (size_t i = 0; i < KF_ARRAY_SIZE(drop); i++)
        json_object_del(meta, drop[i]);
    json_object_set_new(p, "metadata", meta);
    return p;
}

int kf_ctrl_members_informer(struct kf_ctrl_manager *m, struct kf_informer **ret)
{
    struct kf_informer *inf = kf_ctrl_informer(m, &kf_kind_controlplanemember);
    int r = kf_informer_add_index(inf, KF_MEMBERS_BY_CLUSTER, index_cluster);

    if (r == -EEXIST)
        r = 0;
    if (r == 0)
        r = kf_informer_set_projection(inf, kf_ctrl_member_project);
    if (r == 0 && ret)
        *ret = inf;
    return r;
}
