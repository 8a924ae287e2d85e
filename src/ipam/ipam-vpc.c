/* ipam-vpc.c: per-VPC allocation of node, pod and service ranges for guest
 * clusters, with the rules of kfleet/ipam.h checked on every change.
 *
 * A VPC holds the block trie (node and pod ranges, reserved ranges, pool
 * roots), the service trie (service ranges, counted because they repeat),
 * and a table of clusters (slot array + kf_smap by name). Each
 * allocation claims its blocks, verifies the invariants that involve them
 * through a second code path (queries, not the claim), and rolls back
 * everything on any failure, so a failed call changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipam/ipam-internal.h"
#include "kfleet/error.h"
#include "kfleet/ipam.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"

#define NODE_MIN_PREFIX_HOSTBITS 4 /* /28: the smallest node range and per-node block */

struct icl {
    char *name; /* NULL: free slot */
    struct kf_cidr node, pod, svc;
    int64_t expected_nodes;
    uint16_t max_pods;
    uint8_t node_mask;
    uint32_t next_free;
};

struct ipool {
    struct kf_cidr cidr;
    char *zone;
};

struct ireserved {
    struct kf_cidr cidr;
    char *what;
};

struct kf_ipam_vpc {
    char *name;
    struct ipool *pools;
    size_t n_pools;
    struct ireserved *reserved;
    size_t n_reserved;
    struct kf_cidr svc_space;
    unsigned svc_prefix;
    unsigned default_max_pods;
    bool paranoid;

    struct trie trie;
    struct strie strie;

    struct icl *cl; /* slots; slot i is owner i + 1 */
    size_t n_cl, alloc_cl;
    uint32_t free_slot; /* slot + 1, chained through next_free */
    size_t live;

    struct kf_smap by_name; /* cluster name (borrowed from cl[]) -> slot + 1 */
};

/* --- cluster table ---------------------------------------------------------- */

/* The slot of the cluster called name, or -1. */
static long hash_find(const struct kf_ipam_vpc *v, const char *name)
{
    return (long)(uintptr_t)kf_smap_get(&v->by_name, name) - 1;
}

static uint32_t slot_new(struct kf_ipam_vpc *v)
{
    uint32_t s;

    if (v->free_slot) {
        s = v->free_slot - 1;
        v->free_slot = v->cl[s].next_free;
    } else {
        KF_GROW(v->cl, v->alloc_cl, v->n_cl);
        s = (uint32_t)v->n_cl++;
    }
    memset(&v->cl[s], 0, sizeof(v->cl[s]));
    return s;
}

static void slot_put(struct kf_ipam_vpc *v, uint32_t s)
{
    free(v->cl[s].name);
    memset(&v->cl[s], 0, sizeof(v->cl[s]));
    v->cl[s].next_free = v->free_slot;
    v->free_slot = s + 1;
}

/* --- sizes ------------------------------------------------------------------- */

static unsigned ceil_log2(uint64_t n)
{
    unsigned b = 0;

    while (b < 63 && ((uint64_t)1 << b) < n)
        b++;
    return b;
}

int kf_ipam_sizes(int64_t expected_nodes, unsigned max_pods, unsigned *ret_node_prefix,
                  unsigned *ret_pod_prefix, unsigned *ret_node_mask, struct kf_strbuf *err)
{
    unsigned block_bits, pod_bits, node_bits;

    if (expected_nodes < 1 || expected_nodes > KF_IPAM_MAX_NODES)
        return kf_err(err, -KF_EINVALID, "expectedNodes must be 1..%d, not %lld", KF_IPAM_MAX_NODES,
                      (long long)expected_nodes);
    if (max_pods < 1 || max_pods > KF_IPAM_MAX_PODS)
        return kf_err(err, -KF_EINVALID, "maxPodsPerNode must be 1..%d, not %u", KF_IPAM_MAX_PODS,
                      max_pods);
    /* Per-node block: the smallest power of two >= 2 x maxPods (kube-up's
     * rule: room for pod churn), at least /28. 110 pods -> /24. */
    block_bits = KF_MAX(ceil_log2(2ull * max_pods), NODE_MIN_PREFIX_HOSTBITS);
    pod_bits = block_bits + ceil_log2((uint64_t)expected_nodes);
    node_bits = KF_MAX(ceil_log2((uint64_t)expected_nodes + KF_IPAM_NODE_OVERHEAD),
                       NODE_MIN_PREFIX_HOSTBITS);
    if (pod_bits > 32)
        return kf_err(err, -KF_EINVALID, "%lld nodes x %u pods do not fit in IPv4",
                      (long long)expected_nodes, max_pods);
    *ret_node_prefix = 32 - node_bits;
    *ret_pod_prefix = 32 - pod_bits;
    *ret_node_mask = 32 - block_bits;
    return 0;
}

static void fill_alloc(const struct icl *c, struct kf_ipam_alloc *a)
{
    uint64_t by_pods, by_nodes;

    memset(a, 0, sizeof(*a));
    a->node = c->node;
    a->pod = c->pod;
    a->service = c->svc;
    a->node_mask = c->node_mask;
    a->pods_per_node =
        (unsigned)KF_MIN((uint64_t)c->max_pods, ((uint64_t)1 << (32 - c->node_mask)) - 2);
    by_pods = c->pod.prefix <= c->node_mask ? (uint64_t)1 << (c->node_mask - c->pod.prefix) : 0;
    by_nodes = kf_cidr_size(&c->node) > KF_IPAM_NODE_OVERHEAD
                   ? kf_cidr_size(&c->node) - KF_IPAM_NODE_OVERHEAD
                   : 0;
    a->max_nodes = (uint32_t)KF_MIN(KF_MIN(by_pods, by_nodes), (uint64_t)UINT32_MAX);
    kf_cidr_nth(&c->svc, 1, &a->kubernetes_ip);
    kf_cidr_nth(&c->svc, 10, &a->dns_ip);
    a->expected_nodes = c->expected_nodes;
}

void kf_ipam_alloc_format(const struct kf_ipam_alloc *a, struct kf_strbuf *out)
{
    char n[KF_CIDR_STRLEN], p[KF_CIDR_STRLEN], s[KF_CIDR_STRLEN], k[KF_CIDR_STRLEN],
        d[KF_CIDR_STRLEN];

    kf_strbuf_addf(out,
                   "nodes %s, pods %s (/%u per node, up to %u nodes), services %s "
                   "(kubernetes %s, dns %s)",
                   kf_cidr_format(&a->node, n, sizeof(n)), kf_cidr_format(&a->pod, p, sizeof(p)),
                   a->node_mask, a->max_nodes, kf_cidr_format(&a->service, s, sizeof(s)),
                   kf_ip_format(&a->kubernetes_ip, k, sizeof(k)),
                   kf_ip_format(&a->dns_ip, d, sizeof(d)));
}

/* --- VPC --------------------------------------------------------------------- */

static int parse_const(const char *s, struct kf_cidr *c)
{
    return kf_cidr_parse(s, c, NULL);
}

/* The VPC's pools, checked (IPv4, not overlapping) and marked in its trie. */
static int add_pools(struct kf_ipam_vpc *v, const struct kf_ipam_vpc_config *cfg,
                     struct kf_strbuf *err)
{
    char a[KF_CIDR_STRLEN], b[KF_CIDR_STRLEN];

    for (size_t i = 0; i < cfg->n_pools; i++) {
        const struct kf_cidr *c = &cfg->pools[i].cidr;

        if (c->family != 4 || c->prefix < 1)
            return kf_err(err, -KF_EINVALID, "%s: pool %zu must be an IPv4 block (like 10.0.0.0/8)",
                          v->name, i);
        for (size_t j = 0; j < i; j++)
            if (kf_cidr_overlaps(c, &v->pools[j].cidr))
                return kf_err(err, -KF_EINVALID, "%s: pool %s overlaps pool %s", v->name,
                              kf_cidr_format(c, a, sizeof(a)),
                              kf_cidr_format(&v->pools[j].cidr, b, sizeof(b)));
        v->pools[i].cidr = *c;
        v->pools[i].zone = cfg->pools[i].zone ? kf_xstrdup(cfg->pools[i].zone) : NULL;
        v->n_pools++;
        kf_ipam_trie_mark_pool(&v->trie, c);
    }
    return 0;
}

/* The VPC's reserved ranges, claimed in its trie. */
static int add_reserved(struct kf_ipam_vpc *v, const struct kf_ipam_vpc_config *cfg,
                        struct kf_strbuf *err)
{
    char a[KF_CIDR_STRLEN], b[KF_CIDR_STRLEN];

    for (size_t i = 0; i < cfg->n_reserved; i++) {
        const struct kf_cidr *c = &cfg->reserved[i].cidr;
        struct trie_hit hit;

        if (c->family != 4)
            return kf_err(err, -KF_EINVALID, "%s: reserved range %zu must be IPv4", v->name, i);
        v->reserved[i].cidr = *c;
        v->reserved[i].what = kf_xstrdup(cfg->reserved[i].what ? cfg->reserved[i].what : "");
        v->n_reserved++;
        if (kf_ipam_trie_claim(&v->trie, c, TK_RESERVED, (uint32_t)i + 1, &hit) < 0)
            return kf_err(err, -KF_EINVALID, "%s: reserved range %s overlaps %s %s", v->name,
                          kf_cidr_format(c, a, sizeof(a)),
                          hit.kind == TK_POOL ? "pool" : "reserved range",
                          kf_cidr_format(&hit.block, b, sizeof(b)));
    }
    return 0;
}

/* The service space: the configured one, else the first candidate clear of
 * the pools and reserved ranges; and the size of a service range in it. */
static int pick_service_space(struct kf_ipam_vpc *v, const struct kf_ipam_vpc_config *cfg,
                              struct kf_strbuf *err)
{
    static const char *const svc_candidates[] = { "172.16.0.0/16", "192.168.0.0/16",
                                                  "100.64.0.0/16" };
    char a[KF_CIDR_STRLEN], b[KF_CIDR_STRLEN];

    v->svc_space = cfg->service_space;
    for (size_t i = 0; i < KF_ARRAY_SIZE(svc_candidates) && !v->svc_space.family; i++) {
        struct kf_cidr c;
        bool clash = false;

        parse_const(svc_candidates[i], &c);
        for (size_t j = 0; j < v->n_pools; j++)
            clash |= kf_cidr_overlaps(&c, &v->pools[j].cidr);
        clash |= kf_ipam_trie_query(&v->trie, &c, NULL);
        if (!clash)
            v->svc_space = c;
    }
    if (!v->svc_space.family)
        return kf_err(err, -KF_EINVALID,
                      "%s: no default service space is clear of the pools; set one", v->name);
    v->svc_prefix = cfg->service_prefix ? cfg->service_prefix : KF_IPAM_DEFAULT_SVC;
    if (v->svc_space.family != 4 || v->svc_prefix < 12 || v->svc_prefix > 29 ||
        v->svc_prefix < v->svc_space.prefix)
        return kf_err(err, -KF_EINVALID,
                      "%s: service ranges must be IPv4 /12../29 blocks inside the service "
                      "space %s",
                      v->name, kf_cidr_format(&v->svc_space, a, sizeof(a)));
    for (size_t j = 0; j < v->n_pools; j++)
        if (kf_cidr_overlaps(&v->svc_space, &v->pools[j].cidr))
            return kf_err(err, -KF_EINVALID,
                          "%s: service space %s overlaps pool %s; services must stay clear of "
                          "node and pod ranges",
                          v->name, kf_cidr_format(&v->svc_space, a, sizeof(a)),
                          kf_cidr_format(&v->pools[j].cidr, b, sizeof(b)));
    return 0;
}

int kf_ipam_vpc_new(const struct kf_ipam_vpc_config *cfg, struct kf_ipam_vpc **ret,
                    struct kf_strbuf *err)
{
    struct kf_ipam_vpc *v;
    const char *name = cfg->name ? cfg->name : "";
    int r = -KF_EINVALID;

    if (!*name || strlen(name) > KF_IPAM_NAME_MAX)
        return kf_err(err, -KF_EINVALID, "a VPC needs a name of 1..%d characters",
                      KF_IPAM_NAME_MAX);
    if (cfg->n_pools < 1 || cfg->n_pools > KF_IPAM_MAX_POOLS)
        return kf_err(err, -KF_EINVALID, "%s: needs 1..%d pools", name, KF_IPAM_MAX_POOLS);
    if (cfg->n_reserved > KF_IPAM_MAX_RESERVED)
        return kf_err(err, -KF_EINVALID, "%s: at most %d reserved ranges", name,
                      KF_IPAM_MAX_RESERVED);
    v = kf_xcalloc(1, sizeof(*v));
    v->name = kf_xstrdup(name);
    kf_smap_init_borrowed(&v->by_name);
    kf_ipam_trie_init(&v->trie);
    kf_ipam_strie_init(&v->strie);
    v->pools = kf_xcalloc(cfg->n_pools, sizeof(*v->pools));
    v->reserved = kf_xcalloc(cfg->n_reserved ? cfg->n_reserved : 1, sizeof(*v->reserved));
    v->default_max_pods = cfg->default_max_pods ? cfg->default_max_pods : KF_IPAM_DEFAULT_PODS;
    if (v->default_max_pods > KF_IPAM_MAX_PODS) {
        kf_err(err, r, "%s: default maxPodsPerNode must be 1..%d", name, KF_IPAM_MAX_PODS);
        goto free_vpc;
    }
    r = add_pools(v, cfg, err);
    if (r == 0)
        r = add_reserved(v, cfg, err);
    if (r == 0)
        r = pick_service_space(v, cfg, err);
    if (r < 0)
        goto free_vpc;
    *ret = v;
    return 0;
free_vpc:
    kf_ipam_vpc_free(v);
    return r;
}

void kf_ipam_vpc_free(struct kf_ipam_vpc *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_cl; i++)
        free(v->cl[i].name);
    for (size_t i = 0; i < v->n_pools; i++)
        free(v->pools[i].zone);
    for (size_t i = 0; i < v->n_reserved; i++)
        free(v->reserved[i].what);
    free(v->cl);
    kf_smap_release(&v->by_name);
    free(v->pools);
    free(v->reserved);
    kf_ipam_trie_release(&v->trie);
    kf_ipam_strie_release(&v->strie);
    free(v->name);
    free(v);
}

const char *kf_ipam_vpc_name(const struct kf_ipam_vpc *v)
{
    return v->name;
}

void kf_ipam_vpc_set_paranoid(struct kf_ipam_vpc *v, bool on)
{
    v->paranoid = on;
}

/* --- messages ---------------------------------------------------------------- */

static const char *kind_word(uint8_t kind)
{
    return kind == TK_NODE ? "nodes" : kind == TK_POD ? "pods" : "range";
}

static const char *kind_field(uint8_t kind)
{
    return kind == TK_NODE ? "nodeCIDR" : "podCIDR";
}

/* "overlaps cluster web-2's pods 10.10.0.0/16" and friends, after "<field> <cidr> ". */
static void describe_hit(const struct kf_ipam_vpc *v, uint32_t self, const struct trie_hit *h,
                         struct kf_strbuf *sb)
{
    char b[KF_CIDR_STRLEN];

    kf_cidr_format(&h->block, b, sizeof(b));
    switch (h->kind) {
    case TK_NODE:
    case TK_POD:
        if (h->owner == self + 1)
            kf_strbuf_addf(sb, "overlaps the cluster's own %s %s", kind_field(h->kind), b);
        else
            kf_strbuf_addf(sb, "overlaps cluster %s's %s %s in %s", v->cl[h->owner - 1].name,
                           kind_word(h->kind), b, v->name);
        break;
    case TK_RESERVED:
        kf_strbuf_addf(sb, "overlaps reserved range %s (%s) in %s", b,
                       v->reserved[h->owner - 1].what, v->name);
        break;
    case TK_POOL:
        kf_strbuf_addf(sb, "contains pool %s of %s; give a range inside a pool or clear of all", b,
                       v->name);
        break;
    default:
        kf_strbuf_addf(sb, "overlaps %s", b);
    }
}

/* Names a cluster whose service range is svc (error path only: a scan). */
static const char *svc_owner(const struct kf_ipam_vpc *v, const struct kf_cidr *svc, uint32_t self)
{
    const char *any = NULL;

    for (size_t i = 0; i < v->n_cl; i++) {
        if (!v->cl[i].name || !kf_cidr_equal(&v->cl[i].svc, svc))
            continue;
        if (i != self)
            return v->cl[i].name;
        any = v->cl[i].name;
    }
    return any ? any : "?";
}

static int range_error(const struct kf_ipam_vpc *v, uint32_t self, const char *field,
                       const struct kf_cidr *c, const struct trie_hit *h, struct kf_strbuf *err)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char b[KF_CIDR_STRLEN];
    int r;

    kf_strbuf_addf(&sb, "%s %s ", field, kf_cidr_format(c, b, sizeof(b)));
    describe_hit(v, self, h, &sb);
    r = kf_err(err, -KF_EINVALID, "%s", sb.buf);
    kf_strbuf_release(&sb);
    return r;
}

/* --- invariants -------------------------------------------------------------- */

/* Every invariant that involves cluster slot s; O(32) each. */
static int verify_cluster(const struct kf_ipam_vpc *v, uint32_t s, char *why, size_t size)
{
    const struct icl *c = &v->cl[s];
    char a[KF_CIDR_STRLEN], b[KF_CIDR_STRLEN];
    struct trie_hit hit;
    struct kf_cidr other;

    if (kf_cidr_overlaps(&c->node, &c->pod) || kf_cidr_overlaps(&c->node, &c->svc) ||
        kf_cidr_overlaps(&c->pod, &c->svc)) {
        snprintf(why, size, "cluster %s: its own ranges overlap", c->name);
        return -EUCLEAN;
    }
    if (!kf_ipam_trie_owns(&v->trie, &c->node, TK_NODE, s + 1) ||
        !kf_ipam_trie_owns(&v->trie, &c->pod, TK_POD, s + 1)) {
        snprintf(why, size, "cluster %s: its node or pod block is not recorded as its own",
                 c->name);
        return -EUCLEAN;
    }
    if (kf_ipam_trie_query(&v->trie, &c->svc, &hit)) {
        snprintf(why, size, "cluster %s: services %s overlap %s", c->name,
                 kf_cidr_format(&c->svc, a, sizeof(a)), kf_cidr_format(&hit.block, b, sizeof(b)));
        return -EUCLEAN;
    }
    for (size_t i = 0; i < v->n_pools; i++) {
        if (kf_cidr_overlaps(&c->svc, &v->pools[i].cidr)) {
            snprintf(why, size, "cluster %s: services overlap pool %s", c->name,
                     kf_cidr_format(&v->pools[i].cidr, a, sizeof(a)));
            return -EUCLEAN;
        }
    }
    if (kf_ipam_strie_count(&v->strie, &c->svc) < 1) {
        snprintf(why, size, "cluster %s: services not counted", c->name);
        return -EUCLEAN;
    }
    if (kf_ipam_strie_query(&v->strie, &c->pod, &other) ||
        kf_ipam_strie_query(&v->strie, &c->node, &other)) {
        snprintf(why, size, "cluster %s: node or pod range overlaps services %s", c->name,
                 kf_cidr_format(&other, a, sizeof(a)));
        return -EUCLEAN;
    }
    return 0;
}

struct walk_ctx {
    const struct kf_ipam_vpc *v;
    size_t used;
    char *why;
    size_t size;
};

static int check_used(const struct kf_cidr *c, uint8_t kind, uint32_t owner, void *arg)
{
    struct walk_ctx *w = arg;
    const struct kf_ipam_vpc *v = w->v;
    char a[KF_CIDR_STRLEN];
    bool ok;

    w->used++;
    if (kind == TK_RESERVED)
        ok = owner >= 1 && owner <= v->n_reserved && kf_cidr_equal(&v->reserved[owner - 1].cidr, c);
    else
        ok = owner >= 1 && owner <= v->n_cl && v->cl[owner - 1].name &&
             kf_cidr_equal(kind == TK_NODE ? &v->cl[owner - 1].node : &v->cl[owner - 1].pod, c);
    if (!ok) {
        snprintf(w->why, w->size, "used block %s has no live owner (a leak)",
                 kf_cidr_format(c, a, sizeof(a)));
        return -EUCLEAN;
    }
    return 0;
}

/* The first broken invariant of v: 0, or negative with what is wrong in why. */
static int find_broken(const struct kf_ipam_vpc *v, char *why, size_t why_size)
{
    struct walk_ctx w = { v, 0, why, why_size };
    uint64_t svc_total = 0;
    size_t live = 0;
    int r;

    if ((r = kf_ipam_trie_check(&v->trie, why, why_size)) < 0)
        return r;
    if ((r = kf_ipam_strie_check(&v->strie, &svc_total)) < 0) {
        snprintf(why, why_size, "service counts are inconsistent");
        return r;
    }
    if ((r = kf_ipam_trie_walk_used(&v->trie, check_used, &w)) < 0)
        return r;
    for (size_t i = 0; i < v->n_cl; i++) {
        if (!v->cl[i].name)
            continue;
        live++;
        if (hash_find(v, v->cl[i].name) != (long)i) {
            snprintf(why, why_size, "cluster %s is not found by name", v->cl[i].name);
            return -EUCLEAN;
        }
        if ((r = verify_cluster(v, (uint32_t)i, why, why_size)) < 0)
            return r;
    }
    if (live != v->live || w.used != 2 * live + v->n_reserved || svc_total != live) {
        snprintf(why, why_size,
                 "%zu clusters, %zu used blocks, %llu service ranges: counts "
                 "do not agree",
                 live, w.used, (unsigned long long)svc_total);
        return -EUCLEAN;
    }
    return 0;
}

int kf_ipam_vpc_check(const struct kf_ipam_vpc *v, struct kf_strbuf *err)
{
    char why[256] = "";
    int r = find_broken(v, why, sizeof(why));

    return r < 0 ? kf_err(err, r, "%s: %s", v->name, why) : 0;
}

static void after_change(const struct kf_ipam_vpc *v)
{
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (v->paranoid && kf_ipam_vpc_check(v, &err) < 0)
        kf_abort("ipam invariant broken: %s", err.buf);
    kf_strbuf_release(&err);
}

/* --- allocate ---------------------------------------------------------------- */

static bool zone_ok(const struct ipool *p, const char *zone, int pass)
{
    /* Pass 0: pools of the zone; pass 1: pools of no zone (or any, when the
     * request names none). */
    if (!zone)
        return pass == 1;
    return pass == 0 ? (p->zone && strcmp(p->zone, zone) == 0) : !p->zone;
}

/* Frees a used block and gives its growth room back; if its buddy is in use,
 * the freed block becomes that buddy's growth room. */
static void free_block(struct kf_ipam_vpc *v, const struct kf_cidr *c)
{
    kf_assert(kf_ipam_trie_free(&v->trie, c) == 0);
    kf_ipam_trie_harden_buddy(&v->trie, c);
    if (c->prefix > 0 && kf_ipam_trie_state(&v->trie, c) == TN_FREE) {
        struct kf_cidr b =
            kf_cidr4((uint32_t)c->addr ^ ((uint32_t)1 << (32 - c->prefix)), c->prefix);
        if (kf_ipam_trie_state(&v->trie, &b) == TN_USED)
            kf_ipam_trie_soften_buddy(&v->trie, &b);
    }
}

static int alloc_block(struct kf_ipam_vpc *v, uint32_t s, const char *zone, unsigned want,
                       uint8_t kind, struct kf_cidr *ret, struct kf_strbuf *err)
{
    unsigned largest = TRIE_NO_FREE;
    struct kf_strbuf pools = KF_STRBUF_INIT;
    char a[KF_CIDR_STRLEN];
    int r;

    /* Three rounds, from the most to the least careful: keep growth room
     * (the buddy stays free) and leave others' growth room alone; then no
     * room of our own; then take others' growth room too (a tight pool). */
    for (int round = 0; round < 3; round++) {
        for (int pass = 0; pass < 2; pass++) {
            for (size_t i = 0; i < v->n_pools; i++) {
                if (!zone_ok(&v->pools[i], zone, pass))
                    continue;
                if (kf_ipam_trie_alloc(&v->trie, &v->pools[i].cidr, want, round == 0, round < 2,
                                       kind, s + 1, ret) == 0) {
                    kf_strbuf_release(&pools);
                    return 0;
                }
                if (round < 2)
                    continue;
                largest = KF_MIN(largest, kf_ipam_trie_pool_best(&v->trie, &v->pools[i].cidr));
                kf_strbuf_addf(&pools, "%s%s", pools.len ? ", " : "",
                               kf_cidr_format(&v->pools[i].cidr, a, sizeof(a)));
            }
        }
    }
    if (!pools.len)
        r = kf_err(err, -ENOSPC, "%s has no pool for zone \"%s\"", v->name, zone ? zone : "");
    else if (largest == TRIE_NO_FREE)
        r = kf_err(err, -ENOSPC, "%s has no free /%u for the %s of cluster %s: pools %s are full",
                   v->name, want, kind_word(kind), v->cl[s].name, pools.buf);
    else
        r = kf_err(err, -ENOSPC,
                   "%s has no free /%u for the %s of cluster %s: largest free block is /%u "
                   "(pools %s)",
                   v->name, want, kind_word(kind), v->cl[s].name, largest, pools.buf);
    kf_strbuf_release(&pools);
    return r;
}

static int claim_given(struct kf_ipam_vpc *v, uint32_t s, const struct kf_cidr *c, uint8_t kind,
                       struct kf_strbuf *err)
{
    struct trie_hit hit;
    struct kf_cidr other;
    char a[KF_CIDR_STRLEN], b[KF_CIDR_STRLEN];

    if (c->family != 4)
        return kf_err(err, -KF_EINVALID, "%s must be an IPv4 block", kind_field(kind));
    if (kf_ipam_strie_query(&v->strie, c, &other))
        return kf_err(err, -KF_EINVALID, "%s %s overlaps cluster %s's services %s in %s",
                      kind_field(kind), kf_cidr_format(c, a, sizeof(a)), svc_owner(v, &other, s),
                      kf_cidr_format(&other, b, sizeof(b)), v->name);
    if (kf_cidr_overlaps(c, &v->svc_space))
        return kf_err(err, -KF_EINVALID, "%s %s overlaps the service space %s of %s",
                      kind_field(kind), kf_cidr_format(c, a, sizeof(a)),
                      kf_cidr_format(&v->svc_space, b, sizeof(b)), v->name);
    if (kf_ipam_trie_claim(&v->trie, c, kind, s + 1, &hit) < 0)
        return range_error(v, s, kind_field(kind), c, &hit, err);
    kf_ipam_trie_soften_buddy(&v->trie, c);
    return 0;
}

static int check_service(const struct kf_ipam_vpc *v, uint32_t s, const struct kf_cidr *c,
                         struct kf_strbuf *err)
{
    struct trie_hit hit;
    char a[KF_CIDR_STRLEN], b[KF_CIDR_STRLEN];

    if (c->family != 4 || c->prefix < 12 || c->prefix > 29)
        return kf_err(err, -KF_EINVALID,
                      "serviceCIDR must be an IPv4 block of /12 to /29 (8 addresses at least)");
    for (size_t i = 0; i < v->n_pools; i++)
        if (kf_cidr_overlaps(c, &v->pools[i].cidr))
            return kf_err(err, -KF_EINVALID,
                          "serviceCIDR %s overlaps pool %s of %s; services must stay clear of "
                          "node and pod ranges",
                          kf_cidr_format(c, a, sizeof(a)),
                          kf_cidr_format(&v->pools[i].cidr, b, sizeof(b)), v->name);
    if (kf_ipam_trie_query(&v->trie, c, &hit))
        return range_error(v, s, "serviceCIDR", c, &hit, err);
    return 0;
}

static int pick_service(const struct kf_ipam_vpc *v, struct kf_cidr *ret, struct kf_strbuf *err)
{
    uint64_t n = (uint64_t)1 << (v->svc_prefix - v->svc_space.prefix);
    uint32_t step = v->svc_prefix == 0 ? 0 : (uint32_t)1 << (32 - v->svc_prefix);
    char a[KF_CIDR_STRLEN];

    /* Services repeat across clusters: every cluster gets the first block of
     * the service space unless something was put there by hand. */
    for (uint64_t i = 0; i < n && i < 4096; i++) {
        struct kf_cidr c =
            kf_cidr4((uint32_t)v->svc_space.addr + (uint32_t)(i * step), v->svc_prefix);
        if (!kf_ipam_trie_query(&v->trie, &c, NULL)) {
            *ret = c;
            return 0;
        }
    }
    return kf_err(err, -ENOSPC,
                  "%s: no /%u in the service space %s is clear of node and pod "
                  "ranges",
                  v->name, v->svc_prefix, kf_cidr_format(&v->svc_space, a, sizeof(a)));
}

static bool same_or_unset(const struct kf_cidr *given, const struct kf_cidr *have)
{
    return !given || kf_cidr_equal(given, have);
}

int kf_ipam_allocate(struct kf_ipam_vpc *v, const struct kf_ipam_request *req,
                     struct kf_ipam_alloc *ret, struct kf_strbuf *err)
{
    unsigned node_prefix, pod_prefix, node_mask, max_pods;
    const char *name = req->cluster ? req->cluster : "";
    bool have_node = false, have_pod = false;
    char why[256], a[KF_CIDR_STRLEN];
    struct icl *c;
    long found;
    uint32_t s;
    int r;

    if (!*name || strlen(name) > KF_IPAM_NAME_MAX)
        return kf_err(err, -KF_EINVALID, "a cluster needs a name of 1..%d characters",
                      KF_IPAM_NAME_MAX);
    found = hash_find(v, name);
    if (found >= 0) {
        c = &v->cl[found];
        if (!same_or_unset(req->node_cidr, &c->node) || !same_or_unset(req->pod_cidr, &c->pod) ||
            !same_or_unset(req->service_cidr, &c->svc))
            return kf_err(err, -KF_EEXISTS,
                          "cluster %s already has ranges in %s (pods %s); they cannot change", name,
                          v->name, kf_cidr_format(&c->pod, a, sizeof(a)));
        fill_alloc(c, ret);
        return 0;
    }
    max_pods = req->max_pods_per_node ? req->max_pods_per_node : v->default_max_pods;
    if ((r = kf_ipam_sizes(req->expected_nodes, max_pods, &node_prefix, &pod_prefix, &node_mask,
                           err)) < 0)
        return r;
    if (req->pod_cidr &&
        (req->pod_cidr->prefix > node_mask ||
         ((uint64_t)1 << (node_mask - req->pod_cidr->prefix)) < (uint64_t)req->expected_nodes))
        return kf_err(err, -KF_EINVALID,
                      "podCIDR %s holds fewer than %lld nodes of /%u blocks; it needs /%u or "
                      "larger",
                      kf_cidr_format(req->pod_cidr, a, sizeof(a)), (long long)req->expected_nodes,
                      node_mask, pod_prefix);
    if (req->node_cidr &&
        kf_cidr_size(req->node_cidr) < (uint64_t)req->expected_nodes + KF_IPAM_NODE_OVERHEAD)
        return kf_err(err, -KF_EINVALID,
                      "nodeCIDR %s holds fewer than %lld nodes (+%d reserved addresses); it "
                      "needs /%u or larger",
                      kf_cidr_format(req->node_cidr, a, sizeof(a)), (long long)req->expected_nodes,
                      KF_IPAM_NODE_OVERHEAD, node_prefix);

    s = slot_new(v);
    c = &v->cl[s];
    c->name = kf_xstrdup(name);
    c->expected_nodes = req->expected_nodes;
    c->max_pods = (uint16_t)max_pods;
    c->node_mask = (uint8_t)node_mask;

    /* Pods first: the big block gets the best fit, the node range fills in. */
    r = req->pod_cidr ? claim_given(v, s, req->pod_cidr, TK_POD, err)
                      : alloc_block(v, s, req->zone, pod_prefix, TK_POD, &c->pod, err);
    if (r < 0)
        goto release_slot;
    if (req->pod_cidr)
        c->pod = *req->pod_cidr;
    have_pod = true;
    r = req->node_cidr ? claim_given(v, s, req->node_cidr, TK_NODE, err)
                       : alloc_block(v, s, req->zone, node_prefix, TK_NODE, &c->node, err);
    if (r < 0)
        goto release_slot;
    if (req->node_cidr)
        c->node = *req->node_cidr;
    have_node = true;
    if (req->service_cidr) {
        if ((r = check_service(v, s, req->service_cidr, err)) < 0)
            goto release_slot;
        c->svc = *req->service_cidr;
    } else if ((r = pick_service(v, &c->svc, err)) < 0) {
        goto release_slot;
    }
    kf_ipam_strie_add(&v->strie, &c->svc);
    kf_smap_put(&v->by_name, c->name, (void *)(uintptr_t)(s + 1));
    v->live++;
    if (verify_cluster(v, s, why, sizeof(why)) < 0)
        kf_abort("ipam: %s: %s", v->name, why);
    after_change(v);
    fill_alloc(c, ret);
    return 0;
release_slot:
    if (have_pod)
        free_block(v, &c->pod);
    if (have_node)
        free_block(v, &c->node);
    slot_put(v, s);
    return r;
}

int kf_ipam_release(struct kf_ipam_vpc *v, const char *cluster)
{
    long s = cluster ? hash_find(v, cluster) : -1;
    struct icl *c;

    if (s < 0)
        return -ENOENT;
    c = &v->cl[s];
    free_block(v, &c->node);
    free_block(v, &c->pod);
    kf_ipam_strie_remove(&v->strie, &c->svc);
    kf_smap_remove(&v->by_name, c->name);
    slot_put(v, (uint32_t)s);
    v->live--;
    after_change(v);
    return 0;
}

int kf_ipam_lookup(const struct kf_ipam_vpc *v, const char *cluster, struct kf_ipam_alloc *ret)
{
    long s = cluster ? hash_find(v, cluster) : -1;

    if (s < 0)
        return -ENOENT;
    fill_alloc(&v->cl[s], ret);
    return 0;
}

/* Checks that block cur (kind) of slot s can double to prefix want. */
static int can_grow(const struct kf_ipam_vpc *v, uint32_t s, const struct kf_cidr *cur,
                    unsigned want, uint8_t kind, struct kf_strbuf *err)
{
    struct kf_cidr big = kf_cidr4((uint32_t)cur->addr, want), other;
    struct trie_hit hit;
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char a[KF_CIDR_STRLEN], b[KF_CIDR_STRLEN];
    int r = 0;

    kf_strbuf_addf(&sb,
                   "cannot grow the %s of cluster %s from %s to /%u in place: ", kind_word(kind),
                   v->cl[s].name, kf_cidr_format(cur, a, sizeof(a)), want);
    if (!kf_ipam_trie_sole(&v->trie, &big, kind, s + 1, &hit)) {
        kf_cidr_format(&hit.block, b, sizeof(b));
        if (hit.kind == TK_POOL)
            kf_strbuf_addf(&sb, "%s would leave pool %s", kf_cidr_format(&big, a, sizeof(a)), b);
        else if (hit.kind == TK_RESERVED)
            kf_strbuf_addf(&sb, "%s is reserved (%s)", b, v->reserved[hit.owner - 1].what);
        else if (hit.owner == s + 1)
            kf_strbuf_addf(&sb, "%s is the cluster's own %s", b, kind_field(hit.kind));
        else
            kf_strbuf_addf(&sb, "%s is cluster %s's %s", b, v->cl[hit.owner - 1].name,
                           kind_word(hit.kind));
        r = -ENOSPC;
    } else if (kf_ipam_strie_query(&v->strie, &big, &other)) {
        kf_strbuf_addf(&sb, "%s is cluster %s's services", kf_cidr_format(&other, b, sizeof(b)),
                       svc_owner(v, &other, s));
        r = -ENOSPC;
    } else if (kf_cidr_overlaps(&big, &v->svc_space)) {
        kf_strbuf_addf(&sb, "it would reach the service space %s",
                       kf_cidr_format(&v->svc_space, b, sizeof(b)));
        r = -ENOSPC;
    }
    if (r < 0)
        kf_err(err, r, "%s", sb.buf);
    kf_strbuf_release(&sb);
    return r;
}

static void grow(struct kf_ipam_vpc *v, uint32_t s, struct kf_cidr *cur, unsigned want,
                 uint8_t kind)
{
    struct kf_cidr big = kf_cidr4((uint32_t)cur->addr, want);

    kf_assert(kf_ipam_trie_free(&v->trie, cur) == 0);
    for (struct kf_cidr c = *cur; c.prefix > want; c = kf_cidr4((uint32_t)c.addr, c.prefix - 1))
        kf_ipam_trie_harden_buddy(&v->trie, &c);
    kf_assert(kf_ipam_trie_claim(&v->trie, &big, kind, s + 1, NULL) == 0);
    kf_ipam_trie_soften_buddy(&v->trie, &big);
    *cur = big;
}

int kf_ipam_resize(struct kf_ipam_vpc *v, const char *cluster, int64_t new_expected_nodes,
                   struct kf_ipam_alloc *ret, struct kf_strbuf *err)
{
    long s = cluster ? hash_find(v, cluster) : -1;
    unsigned node_prefix, pod_prefix, node_mask;
    char why[256];
    struct icl *c;
    int r;

    if (s < 0)
        return kf_err(err, -ENOENT, "cluster %s has no ranges in %s", cluster ? cluster : "",
                      v->name);
    c = &v->cl[s];
    if ((r = kf_ipam_sizes(new_expected_nodes, c->max_pods, &node_prefix, &pod_prefix, &node_mask,
                           err)) < 0)
        return r;
    kf_assert(node_mask == c->node_mask);
    if (pod_prefix < c->pod.prefix &&
        (r = can_grow(v, (uint32_t)s, &c->pod, pod_prefix, TK_POD, err)) < 0)
        return r;
    if (node_prefix < c->node.prefix &&
        (r = can_grow(v, (uint32_t)s, &c->node, node_prefix, TK_NODE, err)) < 0)
        return r;
    if (pod_prefix < c->pod.prefix)
        grow(v, (uint32_t)s, &c->pod, pod_prefix, TK_POD);
    if (node_prefix < c->node.prefix)
        grow(v, (uint32_t)s, &c->node, node_prefix, TK_NODE);
    if (new_expected_nodes > c->expected_nodes)
        c->expected_nodes = new_expected_nodes;
    if (verify_cluster(v, (uint32_t)s, why, sizeof(why)) < 0)
        kf_abort("ipam: %s: %s", v->name, why);
    after_change(v);
    fill_alloc(c, ret);
    return 0;
}

void kf_ipam_vpc_stats(const struct kf_ipam_vpc *v, struct kf_ipam_stats *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->clusters = v->live;
    ret->largest_free = TRIE_NO_FREE;
    for (size_t i = 0; i < v->n_pools; i++) {
        ret->pool_addresses += kf_cidr_size(&v->pools[i].cidr);
        ret->free_addresses += kf_ipam_trie_pool_free(&v->trie, &v->pools[i].cidr);
        ret->largest_free =
            KF_MIN(ret->largest_free, kf_ipam_trie_pool_best(&v->trie, &v->pools[i].cidr));
    }
    if (ret->largest_free == TRIE_NO_FREE)
        ret->largest_free = 33;
    ret->trie_nodes = v->trie.live + v->strie.live;
    ret->bytes = sizeof(*v) + v->trie.alloc * sizeof(struct tnode) +
                 v->strie.alloc * sizeof(struct snode) + v->alloc_cl * sizeof(struct icl) +
                 v->by_name.cap * sizeof(struct kf_smap_slot);
    for (size_t i = 0; i < v->n_cl; i++)
        if (v->cl[i].name)
            ret->bytes += strlen(v->cl[i].name) + 1;
}

/* --- many VPCs ----------------------------------------------------------------- */

struct kf_ipam {
    struct kf_ipam_vpc **vpcs;
    size_t n, alloc;
};

struct kf_ipam *kf_ipam_new(void)
{
    return kf_xcalloc(1, sizeof(struct kf_ipam));
}

void kf_ipam_free(struct kf_ipam *ipam)
{
    if (!ipam)
        return;
    for (size_t i = 0; i < ipam->n; i++)
        kf_ipam_vpc_free(ipam->vpcs[i]);
    free(ipam->vpcs);
    free(ipam);
}

struct kf_ipam_vpc *kf_ipam_find_vpc(const struct kf_ipam *ipam, const char *name)
{
    for (size_t i = 0; name && i < ipam->n; i++)
        if (strcmp(ipam->vpcs[i]->name, name) == 0)
            return ipam->vpcs[i];
    return NULL;
}

int kf_ipam_add_vpc(struct kf_ipam *ipam, const struct kf_ipam_vpc_config *cfg,
                    struct kf_ipam_vpc **ret, struct kf_strbuf *err)
{
    struct kf_ipam_vpc *v;
    int r;

    if (kf_ipam_find_vpc(ipam, cfg->name))
        return kf_err(err, -KF_EEXISTS, "VPC %s exists", cfg->name);
    if ((r = kf_ipam_vpc_new(cfg, &v, err)) < 0)
        return r;
    KF_GROW(ipam->vpcs, ipam->alloc, ipam->n);
    ipam->vpcs[ipam->n++] = v;
    if (ret)
        *ret = v;
    return 0;
}
