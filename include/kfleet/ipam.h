/* ipam.h: IP address management per VPC for guest clusters.
 *
 * Each guest cluster gets three IPv4 ranges: a node range (the vSwitch its
 * nodes live in), a pod range (per-node blocks of nodeMask, Flannel-style,
 * or a pod vSwitch with Terway) and a service range. The rules
 * (reference §2.5, ACK's published planning rules):
 *
 *   - node and pod ranges come from the VPC's pools and never overlap any
 *     other node or pod range in the VPC, nor a reserved range (peered VPCs,
 *     IDCs, ...);
 *   - a cluster's own node, pod and service ranges are pairwise disjoint;
 *   - service ranges come from a separate service space (default
 *     172.16.0.0/16, blocks of /20) and MAY repeat across clusters of one
 *     VPC, but never overlap a pool, a reserved range, or any cluster's node
 *     or pod range;
 *   - ranges a user gives are checked against the same rules, and the error
 *     says which range collides with what;
 *   - released ranges are reused; a pod or node range grows in place when
 *     the cluster's expected nodes grow and the neighbouring block is free.
 *
 * The allocator is a binary trie over the IPv4 space (a buddy allocator):
 * each node is a CIDR block that is free, used (owned by one cluster's node
 * or pod range, or reserved) or split in two halves, and caches the largest
 * free block below it, so allocation, claim, release and overlap queries are
 * O(32). Service ranges live in a second, counting trie (they repeat).
 * docs/internals/ipam.md has the model, the sizes and the invariants.
 *
 * Not thread-safe: one owner (the IPAM controller) per VPC. No logging, no
 * store: plain structs in, plain structs out.
 */
#ifndef KF_IPAM_H
#define KF_IPAM_H

#include "kfleet/base.h"
#include "kfleet/cidr.h"

struct kf_strbuf;

#define KF_IPAM_MAX_POOLS     64
#define KF_IPAM_MAX_RESERVED  256
#define KF_IPAM_MAX_NODES     100000 /* expectedNodes hard cap */
#define KF_IPAM_MAX_PODS      1024   /* maxPodsPerNode hard cap */
#define KF_IPAM_DEFAULT_PODS  110
#define KF_IPAM_DEFAULT_SVC   20 /* service range prefix */
#define KF_IPAM_NODE_OVERHEAD 5  /* network, gateway, 2 cloud-reserved, broadcast */
#define KF_IPAM_NAME_MAX      253

struct kf_ipam_pool {
    struct kf_cidr cidr; /* IPv4 */
    const char *zone;    /* NULL: any zone */
};

struct kf_ipam_reserved {
    struct kf_cidr cidr;
    const char *what; /* "peered vpc-b", "idc shanghai" */
};

/* Borrowed during kf_ipam_vpc_new only (everything is copied). */
struct kf_ipam_vpc_config {
    const char *name;
    const struct kf_ipam_pool *pools; /* disjoint, 1..KF_IPAM_MAX_POOLS */
    size_t n_pools;
    const struct kf_ipam_reserved *reserved;
    size_t n_reserved;
    struct kf_cidr service_space; /* family 0: the first of 172.16.0.0/16, 192.168.0.0/16,
                                     100.64.0.0/16 clear of pools and reserved ranges */
    unsigned service_prefix;      /* 0: /20; 12..29 */
    unsigned default_max_pods;    /* 0: 110 */
};

struct kf_ipam_vpc;

/* Creates a VPC allocator. -EINVAL with the reason in err: no pools, a pool
 * that is not IPv4, overlapping pools or reserved ranges, a service space
 * that overlaps a pool. */
int kf_ipam_vpc_new(const struct kf_ipam_vpc_config *cfg, struct kf_ipam_vpc **ret,
                    struct kf_strbuf *err);
void kf_ipam_vpc_free(struct kf_ipam_vpc *vpc);
const char *kf_ipam_vpc_name(const struct kf_ipam_vpc *vpc);
/* Runs kf_ipam_vpc_check after every change and aborts on a broken
 * invariant (tests, debugging). Off by default: every change already checks
 * the invariants that involve the ranges it touched. */
void kf_ipam_vpc_set_paranoid(struct kf_ipam_vpc *vpc, bool on);

/* What a cluster asks for. User-given ranges (NULL: allocate) are checked
 * and claimed as given. */
struct kf_ipam_request {
    const char *cluster;        /* unique in the VPC */
    int64_t expected_nodes;     /* 1..KF_IPAM_MAX_NODES */
    unsigned max_pods_per_node; /* 0: the VPC default; 1..KF_IPAM_MAX_PODS */
    const char *zone;           /* prefer pools of this zone; NULL: any */
    const struct kf_cidr *node_cidr, *pod_cidr, *service_cidr;
};

/* What a cluster got. */
struct kf_ipam_alloc {
    struct kf_cidr node, pod, service;
    unsigned node_mask;           /* per-node pod block prefix (kcm --node-cidr-mask-size) */
    unsigned pods_per_node;       /* min(maxPods, 2^(32-nodeMask) - 2) */
    uint32_t max_nodes;           /* min(pod range / node block, node range - overhead) */
    struct kf_cidr kubernetes_ip; /* service[1] */
    struct kf_cidr dns_ip;        /* service[10] */
    int64_t expected_nodes;
};

/* Sizes for a request, without allocating: node_mask from maxPods (the
 * per-node block is the smallest power of two >= 2 x maxPods, at least
 * 16 addresses: 110 pods -> /24), the pod prefix from expectedNodes (rounded
 * up to a power of two) x that block, the node prefix from expectedNodes +
 * KF_IPAM_NODE_OVERHEAD (at least /28). -KF_EINVALID when out of range. */
int kf_ipam_sizes(int64_t expected_nodes, unsigned max_pods, unsigned *ret_node_prefix,
                  unsigned *ret_pod_prefix, unsigned *ret_node_mask, struct kf_strbuf *err);

/* Allocates (or claims the user-given) ranges of a cluster. Idempotent: if
 * the cluster already has ranges, returns them (0) when the request agrees
 * with them, or -KF_EEXISTS if it gives different ones. Errors, with the
 * reason in err and nothing changed:
 *   -KF_EINVALID  a given range breaks a rule ("podCIDR 10.8.0.0/14 overlaps
 *                 cluster web-2's pods 10.10.0.0/16 in vpc-a");
 *   -ENOSPC       no free block of the size in the pools ("vpc-a has no free
 *                 /14 for the pods of cluster web-3: largest free is /16").
 */
int kf_ipam_allocate(struct kf_ipam_vpc *vpc, const struct kf_ipam_request *req,
                     struct kf_ipam_alloc *ret, struct kf_strbuf *err);

/* Grows the node and pod ranges of a cluster to fit new_expected_nodes, in
 * place (the block doubles into its free neighbour). Shrinking keeps the
 * ranges. -ENOENT (no such cluster), -ENOSPC with the neighbour named
 * ("cannot grow the pods of cluster web-1 from 10.8.0.0/16 to /15: 10.9.0.0/16
 * is cluster web-2's pods"); nothing changes on failure. */
int kf_ipam_resize(struct kf_ipam_vpc *vpc, const char *cluster, int64_t new_expected_nodes,
                   struct kf_ipam_alloc *ret, struct kf_strbuf *err);

/* Releases every range of the cluster: 0, or -ENOENT. */
int kf_ipam_release(struct kf_ipam_vpc *vpc, const char *cluster);
/* 0 and *ret, or -ENOENT. */
int kf_ipam_lookup(const struct kf_ipam_vpc *vpc, const char *cluster, struct kf_ipam_alloc *ret);

/* Checks every invariant of the VPC (trie structure and cached sizes, every
 * used block owned by a live cluster range or a reserved range and the
 * other way round, own ranges disjoint, services clear of pools and of every
 * node and pod range, service counts). 0 or -EUCLEAN with the first problem
 * in err. O(blocks + clusters). */
int kf_ipam_vpc_check(const struct kf_ipam_vpc *vpc, struct kf_strbuf *err);

struct kf_ipam_stats {
    size_t clusters;
    uint64_t pool_addresses; /* sum of pool sizes */
    uint64_t free_addresses; /* free in the pools */
    unsigned largest_free;   /* prefix of the largest free block in any pool; 33: none */
    size_t trie_nodes;       /* live trie nodes (both tries) */
    size_t bytes;            /* memory the VPC holds */
};
void kf_ipam_vpc_stats(const struct kf_ipam_vpc *vpc, struct kf_ipam_stats *ret);

/* Writes "node 10.0.0.0/25, pods 10.8.0.0/17 (/24 per node, 128 nodes),
 * services 172.16.0.0/20 (kubernetes 172.16.0.1, dns 172.16.0.10)". */
void kf_ipam_alloc_format(const struct kf_ipam_alloc *a, struct kf_strbuf *out);

/* --- many VPCs -------------------------------------------------------------- */

struct kf_ipam;
struct kf_ipam *kf_ipam_new(void);
void kf_ipam_free(struct kf_ipam *ipam);
/* Adds a VPC (kf_ipam_vpc_new); -KF_EEXISTS if the name is taken. */
int kf_ipam_add_vpc(struct kf_ipam *ipam, const struct kf_ipam_vpc_config *cfg,
                    struct kf_ipam_vpc **ret, struct kf_strbuf *err);
/* NULL if unknown. */
struct kf_ipam_vpc *kf_ipam_find_vpc(const struct kf_ipam *ipam, const char *name);

#endif
