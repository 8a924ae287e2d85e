/* ctrl-placement-ipam.c: a placed cluster's node, pod and service ranges,
 * from the IPPool objects of its VPC, through the IPAM library
 * (kfleet/ipam.h).
 *
 * The IPPools are the truth. Their spec says what a VPC has (cidrs per
 * zone, service ranges, reserved ranges); their status.allocations say
 * what is handed out (one entry per cluster and purpose). The allocator of
 * a VPC is rebuilt from those objects whenever they change under us (at
 * start, when an operator edits a pool, when a write of ours failed): the
 * pools become its pools and every recorded allocation is claimed again,
 * so memory never holds a range the store does not. A new allocation is
 * written into the pools' status (the pool that contains each range)
 * before the cluster moves on; a failed write undoes it in memory. Our own
 * status writes do not trigger a rebuild (we note their resourceVersion).
 *
 * Releases remove the cluster's entries from the pools and its ranges from
 * the allocator; the buddy allocator reuses them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/cidr.h"
#include "kfleet/ctrl.h"
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

#define VPC_INDEX "cap.vpc"

static void vpc_free(struct place_vpc *v)
{
    if (!v)
        return;
    kf_ipam_vpc_free(v->v);
    free(v->error);
    free(v->name);
    free(v);
}

void place_ipam_free(struct place_ctrl *d)
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

void place_ipam_event(struct place_ctrl *d, const json_t *pool, bool deleted)
{
    const char *vpc = kf_json_str(pool, "spec.vpc", NULL);
    const char *name = kf_obj_name(pool);
    intptr_t ours;

    if (!vpc || !name)
        return;
    pthread_mutex_lock(&d->lock);
    ours = (intptr_t)kf_smap_get(&d->pool_writes, name);
    if (deleted || ours != (intptr_t)kf_obj_rv(pool))
        vpc_get(d, vpc)->dirty = true;
    pthread_mutex_unlock(&d->lock);
}

static bool parse_cidr(const json_t *v, struct kf_cidr *ret)
{
    return json_is_string(v) && kf_cidr_parse(json_string_value(v), ret, NULL) == 0 &&
           ret->family == 4;
}

/* The IPPools of vpc (new references, sorted by name). */
static size_t vpc_pools(struct place_ctrl *d, const char *vpc, json_t ***ret)
{
    char **names;
    size_t n = kf_informer_index_names(d->pools, VPC_INDEX, vpc, &names), k = 0;
    json_t **pools = kf_xcalloc(n + 1, sizeof(*pools));

    for (size_t i = 0; i < n; i++)
        if (kf_informer_get(d->pools, names[i], &pools[k]) == 0)
            k++;
    kf_ctrl_names_free(names, n);
    *ret = pools;
    return k;
}

static void pools_free(json_t **pools, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(pools[i]);
    free(pools);
}

static bool serves(const json_t *pool, const char *purpose)
{
    json_t *p = kf_json_path(pool, "spec.purposes");

    return json_array_size(p) == 0 ? strcmp(purpose, "service") != 0 : cap_str_in(p, purpose);
}

/* The expected nodes a stored pair of ranges was sized for (as large as
 * both hold), so that claiming them again passes the size checks. */
static int64_t nodes_for(const struct kf_cidr *node, const struct kf_cidr *pod, unsigned max_pods)
{
    unsigned np, pp, mask;
    int64_t by_pod = KF_IPAM_MAX_NODES, by_node = KF_IPAM_MAX_NODES;

    if (kf_ipam_sizes(1, max_pods ? max_pods : KF_IPAM_DEFAULT_PODS, &np, &pp, &mask, NULL) < 0)
        mask = 24;
    if (pod->prefix && pod->prefix <= mask)
        by_pod = (int64_t)1 << KF_MIN(mask - pod->prefix, 30u);
    if (node->prefix)
        by_node = (int64_t)kf_cidr_size(node) - KF_IPAM_NODE_OVERHEAD;
    return KF_MAX(KF_MIN(KF_MIN(by_pod, by_node), (int64_t)KF_IPAM_MAX_NODES), 1);
}

struct stored {
    char *cluster;
    struct kf_cidr node, pod, svc;
    bool has_node, has_pod, has_svc;
};

/* (Re)builds the allocator of vpc from its IPPools. Under d->lock. */
static int vpc_build(struct place_ctrl *d, struct place_vpc *v, struct kf_strbuf *why)
{
    struct kf_ipam_vpc_config cfg = { .name = v->name };
    struct kf_ipam_pool pools[KF_IPAM_MAX_POOLS];
    struct kf_ipam_reserved *res = NULL;
    struct stored *st = NULL;
    size_t n_st = 0, alloc_st = 0, n_res = 0, alloc_res = 0;
    json_t **objs;
    size_t n = vpc_pools(d, v->name, &objs);
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
            json_array_foreach(kf_json_path(spec, "cidrs"), j,
                               c) if (cfg.n_pools < KF_IPAM_MAX_POOLS &&
                                      parse_cidr(c, &pools[cfg.n_pools].cidr)) pools[cfg.n_pools++]
                .zone = zone;
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
        /* gather what is recorded, by cluster */
        json_array_foreach(kf_json_path(objs[i], "status.allocations"), j, c)
        {
            const char *cl = kf_json_str(c, "cluster", NULL), *p = kf_json_str(c, "purpose", "");
            struct kf_cidr cidr;
            size_t k;

            if (!cl || !parse_cidr(json_object_get(c, "cidr"), &cidr))
                continue;
            for (k = 0; k < n_st && strcmp(st[k].cluster, cl) != 0; k++)
                ;
            if (k == n_st) {
                KF_GROW(st, alloc_st, n_st + 1);
                memset(&st[n_st], 0, sizeof(st[n_st]));
                st[n_st++].cluster = kf_xstrdup(cl);
            }
            if (strcmp(p, "node") == 0)
                st[k].node = cidr, st[k].has_node = true;
            else if (strcmp(p, "pod") == 0)
                st[k].pod = cidr, st[k].has_pod = true;
            else if (strcmp(p, "service") == 0)
                st[k].svc = cidr, st[k].has_svc = true;
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
    for (size_t k = 0; r == 0 && k < n_st; k++) {
        json_t *cl = NULL;
        unsigned max_pods = 0;
        struct kf_ipam_request req = { .cluster = st[k].cluster };
        struct kf_ipam_alloc a;

        if (kf_informer_get(d->clusters, st[k].cluster, &cl) == 0)
            max_pods = (unsigned)kf_json_int(cl, "status.effective.network.maxPodsPerNode", 0);
        json_decref(cl);
        if (!st[k].has_node || !st[k].has_pod || !st[k].has_svc) {
            kf_log_rl_warn("IPPools of VPC \"%s\" record only some ranges of cluster \"%s\"; "
                           "they stay out of use until it is released",
                           v->name, st[k].cluster);
        }
        req.max_pods_per_node = max_pods;
        req.node_cidr = st[k].has_node ? &st[k].node : NULL;
        req.pod_cidr = st[k].has_pod ? &st[k].pod : NULL;
        req.service_cidr = st[k].has_svc ? &st[k].svc : NULL;
        req.expected_nodes = nodes_for(&st[k].node, &st[k].pod, max_pods);
        kf_strbuf_reset(&err);
        if (!req.node_cidr || !req.pod_cidr)
            continue;
        if (kf_ipam_allocate(v->v, &req, &a, &err) < 0)
            kf_log_rl_warn("IPPools of VPC \"%s\": the ranges recorded for cluster \"%s\" "
                           "cannot be claimed again: %s",
                           v->name, st[k].cluster, err.buf);
    }
    if (r < 0)
        v->error = kf_xstrdup(why && why->len ? why->buf : "cannot build the allocator");
    else
        v->dirty = false;
    for (size_t k = 0; k < n_st; k++)
        free(st[k].cluster);
    free(st);
    free(res);
    pools_free(objs, n);
    kf_strbuf_release(&err);
    return r;
}

/* The pool among objs whose field (spec.cidrs / spec.serviceCIDRs)
 * contains c, or -1. */
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

static uint64_t pool_addresses(const json_t *pool)
{
    uint64_t total = 0;
    size_t i;
    json_t *v;

    json_array_foreach(kf_json_path(pool, "spec.cidrs"), i, v)
    {
        struct kf_cidr c;

        if (parse_cidr(v, &c))
            total += kf_cidr_size(&c);
    }
    return total;
}

/* Writes pool's status.allocations = allocs (borrowed) with the totals. */
static int pool_write(struct place_ctrl *d, const json_t *pool, json_t *allocs,
                      struct kf_strbuf *why)
{
    uint64_t total = pool_addresses(pool), used = 0;
    size_t i;
    json_t *a, *patch;
    int64_t rev = 0;
    int r;

    json_array_foreach(allocs, i, a)
    {
        struct kf_cidr c;

        if (!kf_streq(kf_json_str(a, "purpose", NULL), "service") &&
            parse_cidr(json_object_get(a, "cidr"), &c))
            used += kf_cidr_size(&c);
    }
    patch = json_pack("{s:{s:O, s:I, s:I, s:f, s:I}}", "status", "allocations", allocs, "addresses",
                      (json_int_t)total, "allocatedAddresses", (json_int_t)used, "utilization",
                      total ? (double)used / (double)total : 0.0, "observedGeneration",
                      (json_int_t)kf_obj_generation(pool));
    r = cap_patch(d->reg, &kf_kind_ippool, kf_obj_name(pool), patch, true, &rev, why);
    json_decref(patch);
    if (r == 0) {
        pthread_mutex_lock(&d->lock);
        kf_smap_put(&d->pool_writes, kf_obj_name(pool), (void *)(intptr_t)rev);
        pthread_mutex_unlock(&d->lock);
        d->need_pool_rev = KF_MAX(d->need_pool_rev, rev);
    }
    return r;
}

/* Replaces cluster's entries in the pools with adds (cluster, purpose,
 * cidr [, zone]) placed by the pool that holds each range; adds NULL:
 * removes them. */
static int record(struct place_ctrl *d, const char *vpc, const char *cluster,
                  const struct kf_ipam_alloc *a, struct kf_strbuf *why, char **ret_pool)
{
    json_t **objs;
    size_t n = vpc_pools(d, vpc, &objs);
    int target[3] = { -1, -1, -1 };
    int r = 0;

    if (a) {
        target[0] = pool_holding(objs, n, "spec.cidrs", &a->node);
        target[1] = pool_holding(objs, n, "spec.cidrs", &a->pod);
        target[2] = pool_holding(objs, n, "spec.serviceCIDRs", &a->service);
        if (target[2] < 0)
            target[2] = pool_holding(objs, n, "spec.cidrs", &a->service);
        for (size_t i = 0; target[2] < 0 && i < n; i++)
            if (json_array_size(kf_json_path(objs[i], "spec.serviceCIDRs")))
                target[2] = (int)i;
        if (target[2] < 0)
            target[2] = target[0];
        if (target[0] < 0 || target[1] < 0) {
            pools_free(objs, n);
            return kf_err(why, -EIO, "no IPPool of VPC \"%s\" holds the ranges of \"%s\"", vpc,
                          cluster);
        }
        if (ret_pool)
            *ret_pool = kf_xstrdup(kf_obj_name(objs[target[1]]));
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *old = kf_json_path(objs[i], "status.allocations"), *e, *allocs = json_array();
        bool changed = false;
        size_t j;

        json_array_foreach(old, j, e)
        {
            if (kf_streq(kf_json_str(e, "cluster", NULL), cluster)) {
                changed = true; /* re-added below if it stays */
                continue;
            }
            json_array_append(allocs, e);
        }
        for (int p = 0; a && p < 3; p++) {
            static const char *const purpose[] = { "node", "pod", "service" };
            const struct kf_cidr *c = p == 0 ? &a->node : p == 1 ? &a->pod : &a->service;
            char buf[KF_CIDR_STRLEN];
            json_t *entry;

            if (target[p] != (int)i)
                continue;
            entry = json_pack("{s:s, s:s, s:s}", "cluster", cluster, "purpose", purpose[p], "cidr",
                              kf_cidr_format(c, buf, sizeof(buf)));
            if (kf_json_str(objs[i], "spec.zone", NULL))
                json_object_set_new(entry, "zone",
                                    json_string(kf_json_str(objs[i], "spec.zone", NULL)));
            json_array_append_new(allocs, entry);
            changed = true;
        }
        if (changed && !(old && json_equal(allocs, old)))
            r = pool_write(d, objs[i], allocs, why);
        json_decref(allocs);
    }
    pools_free(objs, n);
    return r;
}

/* The name of the pool holding a's pod range into *ret (allocated). */
static void record_pool_name(struct place_ctrl *d, const char *vpc, const struct kf_ipam_alloc *a,
                             char **ret)
{
    json_t **objs;
    size_t n = vpc_pools(d, vpc, &objs);
    int i = pool_holding(objs, n, "spec.cidrs", &a->pod);

    *ret = i >= 0 ? kf_xstrdup(kf_obj_name(objs[i])) : NULL;
    pools_free(objs, n);
}

static bool recorded(struct place_ctrl *d, const char *vpc, const char *cluster)
{
    json_t **objs;
    size_t n = vpc_pools(d, vpc, &objs), count = 0;

    for (size_t i = 0; i < n; i++) {
        size_t j;
        json_t *e;

        json_array_foreach(kf_json_path(objs[i], "status.allocations"), j,
                           e) if (kf_streq(kf_json_str(e, "cluster", NULL), cluster)) count++;
    }
    pools_free(objs, n);
    return count == 3;
}

int place_ipam_allocate(struct place_ctrl *d, const json_t *cluster, const struct place_settings *s,
                        struct kf_ipam_alloc *ret, char **ret_pool, struct kf_strbuf *why)
{
    const char *vpc = kf_json_str(cluster, "spec.network.vpc", NULL);
    const char *name = kf_obj_name(cluster);
    struct kf_cidr given[3];
    struct kf_ipam_request req = { .cluster = name };
    struct place_vpc *v;
    bool write = true;
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
        if (r == 0 && existed) {
            /* grown in place when expectedNodes went up; else already written */
            write = ret->max_nodes < (uint32_t)req.expected_nodes || !recorded(d, vpc, name);
            if (ret->max_nodes < (uint32_t)req.expected_nodes)
                r = kf_ipam_resize(v->v, name, req.expected_nodes, ret, why);
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (r < 0 || !write) {
        if (r == 0 && ret_pool)
            record_pool_name(d, vpc, ret, ret_pool);
        return r;
    }
    /* Persisted before the cluster moves on. A failed write leaves a range
     * in memory that the store does not have: rebuild from the store. */
    r = record(d, vpc, name, ret, why, ret_pool);
    if (r < 0) {
        pthread_mutex_lock(&d->lock);
        vpc_get(d, vpc)->dirty = true;
        pthread_mutex_unlock(&d->lock);
    }
    return r;
}

int place_ipam_release(struct place_ctrl *d, const char *vpc, const char *cluster,
                       struct kf_strbuf *why)
{
    struct place_vpc *v;
    int r;

    if (!vpc)
        return 0;
    r = record(d, vpc, cluster, NULL, why, NULL);
    pthread_mutex_lock(&d->lock);
    v = vpc_get(d, vpc);
    if (r < 0)
        v->dirty = true;
    else if (v->v)
        kf_ipam_release(v->v, cluster);
    pthread_mutex_unlock(&d->lock);
    return r;
}
