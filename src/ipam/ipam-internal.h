/* ipam-internal.h: the two tries under the VPC allocator (ipam-trie.c),
 * shared by ipam-vpc.c and nothing else.
 *
 * The block trie: node i covers one IPv4 block; the root (index 1) is
 * 0.0.0.0/0; index 0 means "no node". A node is FREE (a leaf: the whole
 * block is free), USED (a leaf owned by one range) or SPLIT (exactly two
 * children, its halves). A node flagged `pool` is the root of a pool: it is
 * never merged into its parent, and allocation starts there. A FREE node
 * flagged `soft` is the growth room of the used block beside it (its
 * buddy): allocation avoids it while anything else fits, and it is not
 * merged while flagged. `best` is the prefix of the largest free block in
 * the subtree (TRIE_NO_FREE: none); `best_hard` the same without soft
 * blocks. Invariant after every operation: a SPLIT node never has two FREE
 * children that are neither pools nor soft (they are merged back), so after
 * releasing every range the trie has the same nodes it had before the first
 * allocation.
 *
 * The service trie counts ranges (services repeat across clusters): each
 * node has `count` ranges exactly at its block and `sub` ranges at or below
 * it; nodes with sub == 0 are removed.
 */
#ifndef KF_IPAM_INTERNAL_H
#define KF_IPAM_INTERNAL_H

#include "kfleet/base.h"
#include "kfleet/cidr.h"

#define TRIE_NO_FREE 64

enum { TN_FREE = 0, TN_USED, TN_SPLIT };
enum { TK_NONE = 0, TK_NODE, TK_POD, TK_RESERVED, TK_POOL };

struct tnode {
    uint32_t child[2];
    uint32_t owner; /* TK_NODE/TK_POD: cluster slot + 1; TK_RESERVED: reserved index + 1 */
    uint8_t state;
    uint8_t kind;
    uint8_t best;
    uint8_t best_hard;
    uint8_t flags; /* TF_POOL, TF_SOFT */
};

#define TF_POOL 1u
#define TF_SOFT 2u

struct trie {
    struct tnode *n;
    size_t len, alloc; /* n[0] unused, n[1] root */
    uint32_t free_head;
    size_t live;
};

/* What a claim or a query ran into. */
struct trie_hit {
    struct kf_cidr block;
    uint8_t kind; /* TK_NODE, TK_POD, TK_RESERVED, or TK_POOL (a pool inside the target) */
    uint32_t owner;
};

void kf_ipam_trie_init(struct trie *t);
void kf_ipam_trie_release(struct trie *t);
/* Creates the node of c and flags it as a pool root. Returns its index. */
uint32_t kf_ipam_trie_mark_pool(struct trie *t, const struct kf_cidr *c);
/* Marks block c USED by (kind, owner). 0, or -EEXIST with what it collides
 * with in *hit (a used block, or a pool root inside c). */
int kf_ipam_trie_claim(struct trie *t, const struct kf_cidr *c, uint8_t kind, uint32_t owner,
                       struct trie_hit *hit);
/* Allocates a free block of prefix want inside the pool rooted at c (best
 * fit, then lowest address). room: also keep the buddy free and flag it
 * soft (growth room), so the search is for a block of want - 1. hard_only:
 * do not take soft blocks. 0 and *ret, or -ENOSPC. */
int kf_ipam_trie_alloc(struct trie *t, const struct kf_cidr *pool, unsigned want, bool room,
                       bool hard_only, uint8_t kind, uint32_t owner, struct kf_cidr *ret);
/* Flags the buddy of used block c soft if it is a free block of its own. */
void kf_ipam_trie_soften_buddy(struct trie *t, const struct kf_cidr *c);
/* TN_* of the node of block c, or -1 if c is inside a bigger leaf. */
int kf_ipam_trie_state(const struct trie *t, const struct kf_cidr *c);
/* Clears the soft flag of the buddy of c (c being released or grown) and
 * merges what can be merged. */
void kf_ipam_trie_harden_buddy(struct trie *t, const struct kf_cidr *c);
/* Frees block c, which must be USED; merges halves back. 0 or -ENOENT. */
int kf_ipam_trie_free(struct trie *t, const struct kf_cidr *c);
/* Does c overlap a USED block? Fills *hit with the first one. */
bool kf_ipam_trie_query(const struct trie *t, const struct kf_cidr *c, struct trie_hit *hit);
/* Is the block c USED by exactly (kind, owner)? */
bool kf_ipam_trie_owns(const struct trie *t, const struct kf_cidr *c, uint8_t kind, uint32_t owner);
/* Could c be claimed by (kind, owner) if the owner's own block inside c
 * were released? false and *hit if anything else is in c. */
bool kf_ipam_trie_sole(const struct trie *t, const struct kf_cidr *c, uint8_t kind, uint32_t owner,
                       struct trie_hit *hit);
/* Largest free block prefix inside the pool c (TRIE_NO_FREE: none). */
unsigned kf_ipam_trie_pool_best(const struct trie *t, const struct kf_cidr *pool);
/* Free addresses inside the pool c. */
uint64_t kf_ipam_trie_pool_free(const struct trie *t, const struct kf_cidr *pool);
/* Calls fn for every USED leaf in address order; stops at fn != 0 and
 * returns it. */
int kf_ipam_trie_walk_used(const struct trie *t,
                           int (*fn)(const struct kf_cidr *c, uint8_t kind, uint32_t owner,
                                     void *arg),
                           void *arg);
/* Structural invariants (children, best, merged halves). 0 or -EUCLEAN. */
int kf_ipam_trie_check(const struct trie *t, char *why, size_t size);

struct snode {
    uint32_t child[2];
    uint32_t count, sub;
};

struct strie {
    struct snode *n;
    size_t len, alloc;
    uint32_t free_head;
    size_t live;
};

void kf_ipam_strie_init(struct strie *t);
void kf_ipam_strie_release(struct strie *t);
void kf_ipam_strie_add(struct strie *t, const struct kf_cidr *c);
void kf_ipam_strie_remove(struct strie *t, const struct kf_cidr *c);
/* Does c overlap a counted range? *ret_block gets one of them. */
bool kf_ipam_strie_query(const struct strie *t, const struct kf_cidr *c, struct kf_cidr *ret_block);
/* Ranges counted exactly at c. */
uint32_t kf_ipam_strie_count(const struct strie *t, const struct kf_cidr *c);
/* Total ranges counted; checks sub == count + children's sub everywhere
 * (-EUCLEAN otherwise). */
int kf_ipam_strie_check(const struct strie *t, uint64_t *ret_total);

#endif
