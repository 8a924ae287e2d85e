/* ctrl-placement-ipam.c: a placed cluster's node, pod and service ranges,
 * from the IPPool objects of its VPC, through the IPAM library
 * (kfleet/ipam.h).
 *
 * What a VPC has is the IPPools' spec: cidrs (per zone where the pool has
 * one) for node and pod ranges, serviceCIDRs for service ranges, reserved
 * ranges. What is handed out is recorded where it is used: each
 * GuestCluster's status.network, written in the same write that places the
 * cluster (status.unit), so a range and its cluster are persisted together
 * or not at all, and each write costs the same however many clusters the
 * VPC has. The allocator of a VPC is rebuilt from those objects whenever
 * they may disagree with memory (at start, when an operator edits a pool,
 * after a write of ours failed): the pools become its pools and the ranges
 * of every cluster of the VPC that has some are claimed again, so memory
 * never holds a range the store does not.
 *
 * Releasing a cluster's ranges is a memory operation done once its members
 * are gone; the cluster object itself (deleted when the finalizer goes) is
 * the record. The IPPools' status carries a summary (clusters, addresses,
 * allocated addresses, utilization), written at most once a second per
 * VPC by the controller's "~ippools" key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/cidr.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/ipam.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-placement.h"

KF_LOG_MODULE(ipam);

#define POOL_VPC_INDEX    "cap.vpc"
#define CLUSTER_VPC_INDEX "cap.cluster-vpc"

static void vpc_free(struct place_vpc *v)
{
    if (!v)
        return;
    kf_ipam_vpc_free(v->v);
    free(v->error);
    free(v->name);
    free(v);
}

void kf_place_ipam_free(struct place_ctrl *d)
{
    size_t it = 0;
    void *v;

    while (kf_smap_next(&d->vpcs, &it, NULL, &v))
        vpc_free(v);
    kf_smap_release(&d->vpcs);
    kf_smap_release(&d->pool_writes);
}

static struct place_vpc *vpc_get(struct place_ctrl *d, const char *name)
{
    struct place_vpc *v = kf_smap_get(&d->vpcs, name);

    if (!v) {
        v = kf_xcalloc(1, sizeof(*v));
        v->name = kf_xstrdup(name);
        v->dirty = true;
        kf_smap_put(&d->vpcs, name, v);
    }
    return v;
}

bool kf_place_ipam_event(struct place_ctrl *d, const json_t *pool, bool deleted)
{
    const char *vpc = kf_json_str(pool, "spec.vpc", NULL);
    const char *name = kf_obj_name(pool);
    bool foreign;

    if (!vpc || !name)
        return false;
    pthread_mutex_lock(&d->lock);
    foreign = deleted || (intptr_t)kf_smap_get(&d->pool_writes, name) != (intptr_t)kf_obj_rv(pool);
    if (foreign)
        vpc_get(d, vpc)->dirty = true;
    pthread_mutex_unlock(&d->lock);
    return foreign;
}

static bool parse_cidr(const json_t *v, struct kf_cidr *ret)
{
    return json_is_string(v) && kf_cidr_parse(json_string_value(v), ret, NULL) == 0 &&
           ret->family == 4;
}

/* Objects of informer inf whose index value is vpc (new references). */
static size_t by_vpc(struct kf_informer *inf, const char *index, const char *vpc, json_t ***ret)
{
    char **names;
    size_t n = kf_informer_index_names(inf, index, vpc, &names), k = 0;
    json_t **objs = kf_xcalloc(n + 1, sizeof(*objs));

    for (size_t i = 0; i < n; i++)
        if (kf_informer_get(inf, names[i], &objs[k]) == 0)
            k++;
    kf_ctrl_names_free(names, n);
    *ret = objs;
    return k;
}

static void objs_free(json_t **objs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(objs[i]);
    free(objs);
}

static bool serves(const json_t *pool, const char *purpose)
{
    json_t *p = kf_json_path(pool, "spec.purposes");

    return json_array_size(p) == 0 ? strcmp(purpose, "service") != 0 : kf_cap_str_in(p, purpose);
}

/* The expected nodes a stored pair of ranges was sized for (as many as
 * both hold), so that claiming them again passes the size checks. */
static int64_t nodes_for(const struct kf_cidr *node, const struct kf_cidr *pod, unsigned max_pods)
{
    unsigned np, pp, mask;
    int64_t by_pod = KF_IPAM_MAX_NODES, by_node;

    if (kf_ipam_sizes(1, max_pods ? max_pods : KF_IPAM_DEFAULT_PODS, &np, &pp, &mask, NULL) < 0)
        mask = 24;
    if (pod->prefix <= mask)
        by_pod = (int64_t)1 << KF_MIN(mask - pod->prefix, 30u);
    by_node = (int64_t)kf_cidr_size(node) - KF_IPAM_NODE_OVERHEAD;
    return KF_MAX(KF_MIN(KF_MIN(by_pod, by_node), (int64_t)KF_IPAM_MAX_NODES), 1);
}

/* (Re)builds the allocator of vpc from its IPPools and its clusters'
 * status.network. Under d->lock. */
static int vpc_build(struct place_ctrl *d, struct place_vpc *v, struct kf_strbuf *why)
{
    struct kf_ipam_vpc_config cfg = { .name = v->name };
    struct kf_ipam_pool pools[KF_IPAM_MAX_POOLS];
    struct kf_ipam_reserved *res = NULL;
    size_t n_res = 0, alloc_res = 0, n_cl = 0, claimed = 0;
    json_t **objs, **cls = NULL;
    size_t n = by_vpc(d->pools, POOL_VPC_INDEX, v->name, &objs);
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r = 0;

    kf_ipam_vpc_free(v->v);
    v->v = NULL;
    free(v->error);
    v->error = NULL;
    cfg.pools = pools;
    for (size_t i = 0; i < n; i++) {
        json_t *spec = kf_json_path(objs[i], "spec"), *c;
        const char *zone = kf_json_str(spec, "zone", NULL);
        size_t j;

        if (serves(objs[i], "node") || serves(objs[i], "pod")) {
            json_array_foreach(kf_json_path(spec, "cidrs"), j, c)
            {
                if (cfg.n_pools < KF_IPAM_MAX_POOLS && parse_cidr(c, &pools[cfg.n_pools].cidr))
                    pools[cfg.n_pools++].zone = zone;
            }
        } else if (serves(objs[i], "service") && !cfg.service_space.family) {
            parse_cidr(json_array_get(kf_json_path(spec, "cidrs"), 0), &cfg.service_space);
        }
        if (!cfg.service_space.family &&
            parse_cidr(json_array_get(kf_json_path(spec, "serviceCIDRs"), 0), &cfg.service_space))
            cfg.service_prefix = (unsigned)kf_json_int(spec, "servicePrefix", 0);
        json_array_foreach(kf_json_path(spec, "reserved"), j, c)
        {
            KF_GROW(res, alloc_res, n_res + 1);
            if (parse_cidr(c, &res[n_res].cidr)) {
                res[n_res].what = "a reserved range of an IPPool";
                n_res++;
            }
        }
    }
    cfg.reserved = res;
    cfg.n_reserved = n_res;
    if (!n) {
        r = kf_err(why, -ENOENT,
                   "VPC \"%s\" has no IPPool: create one (kind IPPool, spec.vpc: %s, spec.cidrs)",
                   v->name, v->name);
    } else if (!cfg.n_pools) {
        r = kf_err(why, -ENOENT, "the IPPools of VPC \"%s\" have no node or pod ranges", v->name);
    } else {
        r = kf_ipam_vpc_new(&cfg, &v->v, &err);
        if (r < 0)
            kf_err(why, r, "the IPPools of VPC \"%s\" do not fit together: %s", v->name, err.buf);
    }
    /* Claim what the clusters of the VPC hold. */
    if (r == 0)
        n_cl = by_vpc(d->clusters, CLUSTER_VPC_INDEX, v->name, &cls);
    for (size_t k = 0; r == 0 && k < n_cl; k++) {
        json_t *net = kf_json_path(cls[k], "status.network");
        unsigned max_pods =
            (unsigned)kf_json_int(cls[k], "status.effective.network.maxPodsPerNode", 0);
        struct kf_cidr given[3];
        struct kf_ipam_request req = { .cluster = kf_obj_name(cls[k]) };
        struct kf_ipam_alloc a;

        if (!parse_cidr(json_object_get(net, "nodeCIDR"), &given[0]) ||
            !parse_cidr(json_object_get(net, "podCIDR"), &given[1]) ||
            !parse_cidr(json_object_get(net, "serviceCIDR"), &given[2]))
            continue;
        req.node_cidr = &given[0];
        req.pod_cidr = &given[1];
        req.service_cidr = &given[2];
        req.max_pods_per_node = max_pods;
        req.expected_nodes = nodes_for(&given[0], &given[1], max_pods);
        kf_strbuf_reset(&err);
        if (kf_ipam_allocate(v->v, &req, &a, &err) < 0)
            kf_log_rl_warn("VPC \"%s\": the ranges of cluster \"%s\" cannot be claimed again: %s",
                           v->name, req.cluster, err.buf);
        else
            claimed++;
    }
    if (r < 0) {
        v->error = kf_xstrdup(why && why->len ? why->buf : "cannot build the allocator");
    } else {
        v->dirty = false;
        v->summary_dirty = true;
        kf_log_dbg("VPC \"%s\": allocator rebuilt from %zu IPPools and %zu clusters' ranges",
                   v->name, n, claimed);
    }
    objs_free(cls, n_cl);
    free(res);
    objs_free(objs, n);
    kf_strbuf_release(&err);
    return r;
}

/* The pool among objs whose field contains c, or -1. */
static int pool_holding(json_t **objs, size_t n, const char *field, const struct kf_cidr *c)
{
    for (size_t i = 0; i < n; i++) {
        size_t j;
        json_t *v;

        json_array_foreach(kf_json_path(objs[i], field), j, v)
        {
            struct kf_cidr p;

            if (parse_cidr(v, &p) && kf_cidr_contains(&p, c))
                return (int)i;
        }
    }
    return -1;
}

int kf_place_ipam_allocate(struct place_ctrl *d, const json_t *cluster,
                           const struct kf_place_settings *s, struct kf_ipam_alloc *ret,
                           char **ret_pool, struct kf_strbuf *why)
{
    const char *vpc = kf_json_str(cluster, "spec.network.vpc", NULL);
    const char *name = kf_obj_name(cluster);
    struct kf_cidr given[3];
    struct kf_ipam_request req = { .cluster = name };
    struct place_vpc *v;
    int r;

    if (!vpc)
        return kf_err(why, -KF_EINVALID, "spec.network.vpc is not set");
    req.expected_nodes = KF_MAX(s->nodes, 1);
    req.max_pods_per_node = s->max_pods;
    if (parse_cidr(kf_json_path(cluster, "spec.network.nodeCIDR"), &given[0]))
        req.node_cidr = &given[0];
    if (parse_cidr(kf_json_path(cluster, "spec.network.podCIDR"), &given[1]))
        req.pod_cidr = &given[1];
    if (parse_cidr(kf_json_path(cluster, "spec.network.serviceCIDR"), &given[2]))
        req.service_cidr = &given[2];
    pthread_mutex_lock(&d->lock);
    v = vpc_get(d, vpc);
    r = v->dirty || !v->v ? vpc_build(d, v, why) : 0;
    if (r == 0) {
        bool existed = kf_ipam_lookup(v->v, name, ret) == 0;

        r = kf_ipam_allocate(v->v, &req, ret, why);
        if (r == 0 && existed && ret->max_nodes < (uint32_t)req.expected_nodes)
            r = kf_ipam_resize(v->v, name, req.expected_nodes, ret, why);
        if (r == 0)
            v->summary_dirty = true;
    }
    pthread_mutex_unlock(&d->lock);
    if (r == 0 && ret_pool) {
        json_t **objs;
        size_t n = by_vpc(d->pools, POOL_VPC_INDEX, vpc, &objs);
        int i = pool_holding(objs, n, "spec.cidrs", &ret->pod);

        *ret_pool = i >= 0 ? kf_xstrdup(kf_obj_name(objs[i])) : NULL;
        objs_free(objs, n);
    }
    return r;
}

void kf_place_ipam_unwritten(struct place_ctrl *d, const char *vpc)
{
    pthread_mutex_lock(&d->lock);
    vpc_get(d, vpc)->dirty = true; /* memory may hold what the store does not */
    pthread_mutex_unlock(&d->lock);
}

int kf_place_ipam_release(struct place_ctrl *d, const char *vpc, const char *cluster,
                          struct kf_strbuf *why)
{
    struct place_vpc *v;

    (void)why;
    if (!vpc)
        return 0;
    pthread_mutex_lock(&d->lock);
    v = vpc_get(d, vpc);
    if (v->v && kf_ipam_release(v->v, cluster) == 0)
        v->summary_dirty = true;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* --- the IPPools' summary ---------------------------------------------------- */

static int64_t pool_addresses(const json_t *pool)
{
    int64_t total = 0;
    size_t i;
    json_t *v;

    json_array_foreach(kf_json_path(pool, "spec.cidrs"), i, v)
    {
        struct kf_cidr c;

        if (parse_cidr(v, &c))
            total += (int64_t)kf_cidr_size(&c);
    }
    return total;
}

/* Adds the node and pod ranges of a cluster (NULL: none) to the pools
 * holding them. */
static void count_ranges(json_t **pools, size_t np, const struct kf_cidr *node,
                         const struct kf_cidr *pod, int64_t *used, int64_t *count)
{
    for (int p = 0; p < 2; p++) {
        const struct kf_cidr *c = p ? pod : node;
        int i = c ? pool_holding(pools, np, "spec.cidrs", c) : -1;

        if (i < 0)
            continue;
        used[i] += (int64_t)kf_cidr_size(c);
        if (p)
            count[i]++;
    }
}

/* The ranges of vpc's clusters, counted per pool: from the allocator when
 * it is built and current (every range it holds is one a cluster's status
 * records or is about to), without parsing a cluster object; else from
 * the clusters' status. Once a second in a burst, parsing every cluster of
 * a VPC would cost O(clusters) a second. */
static void count_vpc(struct place_ctrl *d, const char *vpc, json_t **pools, size_t np,
                      int64_t *used, int64_t *count)
{
    struct place_vpc *pv;
    char **names;
    json_t **cls;
    size_t n;

    pthread_mutex_lock(&d->lock);
    pv = kf_smap_get(&d->vpcs, vpc);
    pthread_mutex_unlock(&d->lock);
    if (pv && pv->v && !pv->dirty) { /* pv->v: the worker's, as this is */
        n = kf_informer_index_names(d->clusters, CLUSTER_VPC_INDEX, vpc, &names);
        for (size_t k = 0; k < n; k++) {
            struct kf_ipam_alloc a;

            if (kf_ipam_lookup(pv->v, names[k], &a) == 0)
                count_ranges(pools, np, &a.node, &a.pod, used, count);
        }
        kf_ctrl_names_free(names, n);
        return;
    }
    n = by_vpc(d->clusters, CLUSTER_VPC_INDEX, vpc, &cls);
    for (size_t k = 0; k < n; k++) {
        json_t *net = kf_json_path(cls[k], "status.network");
        struct kf_cidr node, pod;

        if (kf_obj_deleting(cls[k]) && !kf_json_path(cls[k], "status.unit"))
            continue;
        bool have_node = parse_cidr(json_object_get(net, "nodeCIDR"), &node);
        bool have_pod = parse_cidr(json_object_get(net, "podCIDR"), &pod);

        count_ranges(pools, np, have_node ? &node : NULL, have_pod ? &pod : NULL, used, count);
    }
    objs_free(cls, n);
}

/* Writes the summary of every pool of vpc (clusters whose pod range it
 * holds, addresses of node and pod ranges in it). */
static int summarize(struct place_ctrl *d, const char *vpc, struct kf_strbuf *why)
{
    json_t **pools;
    size_t np = by_vpc(d->pools, POOL_VPC_INDEX, vpc, &pools);
    int64_t *used = kf_xcalloc(np + 1, sizeof(*used));
    int64_t *count = kf_xcalloc(np + 1, sizeof(*count));
    int r = 0;

    count_vpc(d, vpc, pools, np, used, count);
    for (size_t i = 0; i < np && r == 0; i++) {
        int64_t total = pool_addresses(pools[i]);
        json_t *st =
            json_pack("{s:I, s:I, s:I, s:f, s:I}", "clusters", (json_int_t)count[i], "addresses",
                      (json_int_t)total, "allocatedAddresses", (json_int_t)used[i], "utilization",
                      total ? (double)used[i] / (double)total : 0.0, "observedGeneration",
                      (json_int_t)kf_obj_generation(pools[i]));
        json_t *old = kf_json_path(pools[i], "status");
        bool same = true;
        const char *key;
        json_t *v;

        json_object_foreach(st, key, v)
        {
            json_t *o = json_object_get(old, key);

            same = same && o &&
                   (json_is_real(v)
                        ? json_is_number(o) && (json_number_value(o) - json_real_value(v)) < 1e-9 &&
                              (json_real_value(v) - json_number_value(o)) < 1e-9
                        : json_equal(o, v));
        }
        if (!same) {
            json_t *patch = json_pack("{s:O}", "status", st);
            int64_t rev = 0;

            r = kf_cap_patch(d->reg, &kf_kind_ippool, kf_obj_name(pools[i]), patch, true, &rev,
                             why);
            json_decref(patch);
            if (r == 0) {
                pthread_mutex_lock(&d->lock);
                kf_smap_put(&d->pool_writes, kf_obj_name(pools[i]), (void *)(intptr_t)rev);
                pthread_mutex_unlock(&d->lock);
                d->need_pool_rev = KF_MAX(d->need_pool_rev, rev);
            } else if (r == -KF_ENOTFOUND) {
                r = 0;
            }
        }
        json_decref(st);
    }
    free(used);
    free(count);
    objs_free(pools, np);
    return r;
}

bool kf_place_ipam_summary_due(struct place_ctrl *d)
{
    size_t it = 0;
    void *v;
    bool due = false;

    pthread_mutex_lock(&d->lock);
    while (kf_smap_next(&d->vpcs, &it, NULL, &v))
        due = due || ((struct place_vpc *)v)->summary_dirty;
    pthread_mutex_unlock(&d->lock);
    return due;
}

int kf_place_ipam_summaries(struct place_ctrl *d)
{
    char **names = NULL;
    size_t n = 0, alloc = 0, it = 0;
    const char *key;
    void *v;
    int r = 0;

    pthread_mutex_lock(&d->lock);
    while (kf_smap_next(&d->vpcs, &it, &key, &v)) {
        struct place_vpc *pv = v;

        if (!pv->summary_dirty)
            continue;
        pv->summary_dirty = false;
        KF_GROW(names, alloc, n + 1);
        names[n++] = kf_xstrdup(key);
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < n; i++) {
        struct kf_strbuf why = KF_STRBUF_INIT;
        int e = summarize(d, names[i], &why);

        if (e < 0) {
            kf_log_rl_warn("cannot write the IPPool summary of VPC \"%s\": %s", names[i], why.buf);
            pthread_mutex_lock(&d->lock);
            vpc_get(d, names[i])->summary_dirty = true;
            pthread_mutex_unlock(&d->lock);
            r = e;
        }
        kf_strbuf_release(&why);
        free(names[i]);
    }
    free(names);
    return r;
}
