/* ipam-trie.c: the binary tries under IPAM (see ipam-internal.h): a buddy
 * allocator over the IPv4 space whose nodes are CIDR blocks, and a counting
 * trie for service ranges. Every operation walks at most 33 nodes; nodes
 * live in one array with a free list, so a trie is a few flat allocations.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipam/ipam-internal.h"

#define ROOT 1u

static uint32_t bit_at(uint32_t addr, unsigned p)
{
    /* The bit that picks the child of a node at prefix p. */
    return (addr >> (31 - p)) & 1u;
}

static uint32_t half(unsigned p)
{
    return (uint32_t)1 << (31 - p);
}

static struct kf_cidr block(uint32_t base, unsigned p)
{
    return kf_cidr4(base, p);
}

/* --- block trie ------------------------------------------------------------ */

static uint32_t node_new(struct trie *t)
{
    uint32_t i;

    if (t->free_head) {
        i = t->free_head;
        t->free_head = t->n[i].child[0];
    } else {
        KF_GROW(t->n, t->alloc, t->len);
        i = (uint32_t)t->len++;
    }
    memset(&t->n[i], 0, sizeof(t->n[i]));
    t->live++;
    return i;
}

static void node_put(struct trie *t, uint32_t i)
{
    memset(&t->n[i], 0, sizeof(t->n[i]));
    t->n[i].child[0] = t->free_head;
    t->free_head = i;
    t->live--;
}

void kf_ipam_trie_init(struct trie *t)
{
    memset(t, 0, sizeof(*t));
    t->len = 1; /* index 0 is "none" */
    KF_GROW(t->n, t->alloc, 64);
    memset(&t->n[0], 0, sizeof(t->n[0]));
    node_new(t);
    t->n[ROOT].state = TN_FREE;
    t->n[ROOT].best = 0;
    t->n[ROOT].best_hard = 0;
}

void kf_ipam_trie_release(struct trie *t)
{
    free(t->n);
    memset(t, 0, sizeof(*t));
}

static void split(struct trie *t, uint32_t i, unsigned p)
{
    uint32_t a = node_new(t), b = node_new(t);

    t->n[a].state = t->n[b].state = TN_FREE;
    t->n[a].best = t->n[b].best = (uint8_t)(p + 1);
    t->n[a].best_hard = t->n[b].best_hard = (uint8_t)(p + 1);
    t->n[i].child[0] = a;
    t->n[i].child[1] = b;
    t->n[i].state = TN_SPLIT;
}

/* Recomputes best and merges free halves for path[depth] .. path[0], where
 * path[k] is the node at prefix k. */
static void fixup(struct trie *t, const uint32_t *path, int depth)
{
    for (int k = depth; k >= 0; k--) {
        struct tnode *n = &t->n[path[k]];
        struct tnode *a, *b;

        if (n->state != TN_SPLIT)
            continue;
        a = &t->n[n->child[0]];
        b = &t->n[n->child[1]];
        if (a->state == TN_FREE && b->state == TN_FREE && !a->flags && !b->flags) {
            uint32_t ca = n->child[0], cb = n->child[1];
            node_put(t, ca);
            node_put(t, cb);
            n = &t->n[path[k]];
            n->child[0] = n->child[1] = 0;
            n->state = TN_FREE;
            n->best = n->best_hard = (uint8_t)k;
            continue;
        }
        n->best = KF_MIN(a->best, b->best);
        n->best_hard = KF_MIN(a->best_hard, b->best_hard);
    }
}

static void hit_set(struct trie_hit *hit, uint32_t base, unsigned p, const struct tnode *n,
                    uint8_t kind)
{
    if (!hit)
        return;
    hit->block = block(base, p);
    hit->kind = kind;
    hit->owner = n->owner;
}

/* First USED leaf (or pool root, if pools) below node i, leftmost. */
static bool first_below(const struct trie *t, uint32_t i, uint32_t base, unsigned p, bool pools,
                        uint8_t skip_kind, uint32_t skip_owner, struct trie_hit *hit)
{
    const struct tnode *n = &t->n[i];

    if (n->state == TN_USED) {
        if (n->kind == skip_kind && n->owner == skip_owner)
            return false;
        hit_set(hit, base, p, n, n->kind);
        return true;
    }
    if (pools && (n->flags & TF_POOL)) {
        hit_set(hit, base, p, n, TK_POOL);
        return true;
    }
    if (n->state != TN_SPLIT)
        return false;
    return first_below(t, n->child[0], base, p + 1, true, skip_kind, skip_owner, hit) ||
           first_below(t, n->child[1], base | half(p), p + 1, true, skip_kind, skip_owner, hit);
}

uint32_t kf_ipam_trie_mark_pool(struct trie *t, const struct kf_cidr *c)
{
    uint32_t path[34], i = ROOT, addr = (uint32_t)c->addr;
    unsigned p = 0;

    path[0] = ROOT;
    while (p < c->prefix) {
        if (t->n[i].state == TN_FREE)
            split(t, i, p);
        i = t->n[i].child[bit_at(addr, p)];
        path[++p] = i;
    }
    t->n[i].flags |= TF_POOL;
    fixup(t, path, (int)p);
    return i;
}

int kf_ipam_trie_claim(struct trie *t, const struct kf_cidr *c, uint8_t kind, uint32_t owner,
                       struct trie_hit *hit)
{
    uint32_t path[34], i = ROOT, addr = (uint32_t)c->addr, base = 0;
    unsigned p = 0;
    int r = 0;

    path[0] = ROOT;
    for (;;) {
        struct tnode *n = &t->n[i];

        if (n->state == TN_USED) {
            hit_set(hit, base, p, n, n->kind);
            r = -EEXIST;
            break;
        }
        if (p == c->prefix) {
            if (n->state == TN_FREE) {
                n->state = TN_USED;
                n->kind = kind;
                n->owner = owner;
                n->flags &= (uint8_t)~TF_SOFT;
                n->best = n->best_hard = TRIE_NO_FREE;
            } else {
                first_below(t, i, base, p, false, TK_NONE, 0, hit);
                r = -EEXIST;
            }
            break;
        }
        if (n->state == TN_FREE) {
            n->flags &= (uint8_t)~TF_SOFT; /* someone else's growth room is used up */
            split(t, i, p);
        }
        if (bit_at(addr, p))
            base |= half(p);
        i = t->n[i].child[bit_at(addr, p)];
        path[++p] = i;
    }
    fixup(t, path, (int)p);
    return r;
}

static int descend_to(const struct trie *t, const struct kf_cidr *c, uint32_t *path)
{
    uint32_t i = ROOT, addr = (uint32_t)c->addr;
    unsigned p = 0;

    path[0] = ROOT;
    while (p < c->prefix) {
        if (t->n[i].state != TN_SPLIT)
            return -1;
        i = t->n[i].child[bit_at(addr, p)];
        path[++p] = i;
    }
    return (int)p;
}

static uint8_t best_of(const struct tnode *n, bool hard_only)
{
    return hard_only ? n->best_hard : n->best;
}

int kf_ipam_trie_alloc(struct trie *t, const struct kf_cidr *pool, unsigned want, bool room,
                       bool hard_only, uint8_t kind, uint32_t owner, struct kf_cidr *ret)
{
    uint32_t path[34], i, base = (uint32_t)pool->addr;
    int depth = descend_to(t, pool, path);
    unsigned p, fit;

    if (depth < 0 || want < pool->prefix || want > 32)
        return -ENOSPC;
    if (room && want <= pool->prefix)
        return -ENOSPC;
    fit = room ? want - 1 : want;
    i = path[depth];
    if (best_of(&t->n[i], hard_only) > fit)
        return -ENOSPC;
    p = (unsigned)depth;
    while (p < want) {
        const struct tnode *a, *b;
        unsigned pick;

        if (t->n[i].state == TN_FREE) {
            t->n[i].flags &= (uint8_t)~TF_SOFT;
            split(t, i, p);
            if (room && p == fit) {
                t->n[t->n[i].child[1]].flags |= TF_SOFT;
                t->n[t->n[i].child[1]].best_hard = TRIE_NO_FREE;
            }
        }
        a = &t->n[t->n[i].child[0]];
        b = &t->n[t->n[i].child[1]];
        /* Best fit: the half whose largest free block is the smallest that
         * still holds the request, so big free blocks stay whole. */
        if (p >= fit)
            pick = 0; /* inside the chosen block: low half, the buddy stays free */
        else if (best_of(a, hard_only) <= fit && best_of(b, hard_only) <= fit)
            pick = best_of(b, hard_only) > best_of(a, hard_only) ? 1 : 0;
        else
            pick = best_of(a, hard_only) <= fit ? 0 : 1;
        if (pick)
            base |= half(p);
        i = t->n[i].child[pick];
        path[++p] = i;
    }
    kf_assert(t->n[i].state == TN_FREE);
    t->n[i].state = TN_USED;
    t->n[i].kind = kind;
    t->n[i].owner = owner;
    t->n[i].flags &= (uint8_t)~TF_SOFT;
    t->n[i].best = t->n[i].best_hard = TRIE_NO_FREE;
    fixup(t, path, (int)p);
    *ret = block(base, want);
    return 0;
}

static struct kf_cidr buddy_of(const struct kf_cidr *c)
{
    return kf_cidr4((uint32_t)c->addr ^ half(c->prefix - 1), c->prefix);
}

void kf_ipam_trie_soften_buddy(struct trie *t, const struct kf_cidr *c)
{
    uint32_t path[34];
    struct kf_cidr b;
    int depth;

    if (c->prefix == 0)
        return;
    b = buddy_of(c);
    depth = descend_to(t, &b, path);
    if (depth < 0 || t->n[path[depth]].state != TN_FREE || (t->n[path[depth]].flags & TF_POOL))
        return;
    t->n[path[depth]].flags |= TF_SOFT;
    t->n[path[depth]].best_hard = TRIE_NO_FREE;
    fixup(t, path, depth);
}

int kf_ipam_trie_state(const struct trie *t, const struct kf_cidr *c)
{
    uint32_t path[34];
    int depth = descend_to(t, c, path);

    return depth < 0 ? -1 : t->n[path[depth]].state;
}

void kf_ipam_trie_harden_buddy(struct trie *t, const struct kf_cidr *c)
{
    uint32_t path[34];
    struct kf_cidr b;
    int depth;

    if (c->prefix == 0)
        return;
    b = buddy_of(c);
    depth = descend_to(t, &b, path);
    if (depth < 0 || t->n[path[depth]].state != TN_FREE || !(t->n[path[depth]].flags & TF_SOFT))
        return;
    t->n[path[depth]].flags &= (uint8_t)~TF_SOFT;
    t->n[path[depth]].best_hard = (uint8_t)depth;
    fixup(t, path, depth);
}

int kf_ipam_trie_free(struct trie *t, const struct kf_cidr *c)
{
    uint32_t path[34];
    int depth = descend_to(t, c, path);
    struct tnode *n;

    if (depth < 0)
        return -ENOENT;
    n = &t->n[path[depth]];
    if (n->state != TN_USED)
        return -ENOENT;
    n->state = TN_FREE;
    n->kind = TK_NONE;
    n->owner = 0;
    n->best = n->best_hard = (uint8_t)depth;
    fixup(t, path, depth);
    return 0;
}

bool kf_ipam_trie_query(const struct trie *t, const struct kf_cidr *c, struct trie_hit *hit)
{
    uint32_t i = ROOT, addr = (uint32_t)c->addr, base = 0;
    unsigned p = 0;

    for (;;) {
        const struct tnode *n = &t->n[i];

        if (n->state == TN_USED) {
            hit_set(hit, base, p, n, n->kind);
            return true;
        }
        if (n->state == TN_FREE)
            return false;
        if (p == c->prefix)
            return first_below(t, i, base, p, false, TK_NONE, 0, hit);
        if (bit_at(addr, p))
            base |= half(p);
        i = n->child[bit_at(addr, p)];
        p++;
    }
}

bool kf_ipam_trie_owns(const struct trie *t, const struct kf_cidr *c, uint8_t kind, uint32_t owner)
{
    uint32_t path[34];
    int depth = descend_to(t, c, path);
    const struct tnode *n;

    if (depth < 0)
        return false;
    n = &t->n[path[depth]];
    return n->state == TN_USED && n->kind == kind && n->owner == owner;
}

bool kf_ipam_trie_sole(const struct trie *t, const struct kf_cidr *c, uint8_t kind, uint32_t owner,
                       struct trie_hit *hit)
{
    uint32_t i = ROOT, addr = (uint32_t)c->addr, base = 0;
    unsigned p = 0;

    for (;;) {
        const struct tnode *n = &t->n[i];

        if (n->state == TN_USED) {
            if (n->kind == kind && n->owner == owner && p == c->prefix)
                return true;
            hit_set(hit, base, p, n, n->kind);
            return false;
        }
        if (n->state == TN_FREE)
            return true;
        if (p == c->prefix)
            return !(first_below(t, n->child[0], base, p + 1, true, kind, owner, hit) ||
                     first_below(t, n->child[1], base | half(p), p + 1, true, kind, owner, hit));
        if (bit_at(addr, p))
            base |= half(p);
        i = n->child[bit_at(addr, p)];
        p++;
    }
}

unsigned kf_ipam_trie_pool_best(const struct trie *t, const struct kf_cidr *pool)
{
    uint32_t path[34];
    int depth = descend_to(t, pool, path);

    return depth < 0 ? TRIE_NO_FREE : t->n[path[depth]].best;
}

static uint64_t free_below(const struct trie *t, uint32_t i, unsigned p)
{
    const struct tnode *n = &t->n[i];

    if (n->state == TN_FREE)
        return (uint64_t)1 << (32 - p);
    if (n->state == TN_USED)
        return 0;
    return free_below(t, n->child[0], p + 1) + free_below(t, n->child[1], p + 1);
}

uint64_t kf_ipam_trie_pool_free(const struct trie *t, const struct kf_cidr *pool)
{
    uint32_t path[34];
    int depth = descend_to(t, pool, path);

    return depth < 0 ? 0 : free_below(t, path[depth], (unsigned)depth);
}

static int walk(const struct trie *t, uint32_t i, uint32_t base, unsigned p,
                int (*fn)(const struct kf_cidr *, uint8_t, uint32_t, void *), void *arg)
{
    const struct tnode *n = &t->n[i];
    int r;

    if (n->state == TN_USED) {
        struct kf_cidr c = block(base, p);
        return fn(&c, n->kind, n->owner, arg);
    }
    if (n->state != TN_SPLIT)
        return 0;
    if ((r = walk(t, n->child[0], base, p + 1, fn, arg)) != 0)
        return r;
    return walk(t, n->child[1], base | half(p), p + 1, fn, arg);
}

int kf_ipam_trie_walk_used(const struct trie *t,
                           int (*fn)(const struct kf_cidr *c, uint8_t kind, uint32_t owner,
                                     void *arg),
                           void *arg)
{
    return walk(t, ROOT, 0, 0, fn, arg);
}

static int check_node(const struct trie *t, uint32_t i, uint32_t base, unsigned p, size_t *count,
                      char *why, size_t size)
{
    const struct tnode *n = &t->n[i];
    char b[KF_CIDR_STRLEN];
    struct kf_cidr c = block(base, p);

    (*count)++;
    if (i == 0 || i >= t->len || p > 32) {
        snprintf(why, size, "trie: bad node index %u at /%u", i, p);
        return -EUCLEAN;
    }
    kf_cidr_format(&c, b, sizeof(b));
    switch (n->state) {
    case TN_FREE:
        if (n->child[0] || n->child[1] || n->best != p ||
            n->best_hard != ((n->flags & TF_SOFT) ? TRIE_NO_FREE : p)) {
            snprintf(why, size, "trie: free block %s has children or best /%u", b, n->best);
            return -EUCLEAN;
        }
        return 0;
    case TN_USED:
        if (n->child[0] || n->child[1] || n->best != TRIE_NO_FREE || n->best_hard != TRIE_NO_FREE ||
            (n->flags & TF_SOFT) || !n->owner ||
            (n->kind != TK_NODE && n->kind != TK_POD && n->kind != TK_RESERVED)) {
            snprintf(why, size, "trie: used block %s is malformed", b);
            return -EUCLEAN;
        }
        return 0;
    case TN_SPLIT: {
        const struct tnode *a, *z;
        int r;

        if (p >= 32 || !n->child[0] || !n->child[1]) {
            snprintf(why, size, "trie: split block %s lacks a half", b);
            return -EUCLEAN;
        }
        if ((r = check_node(t, n->child[0], base, p + 1, count, why, size)) < 0 ||
            (r = check_node(t, n->child[1], base | half(p), p + 1, count, why, size)) < 0)
            return r;
        a = &t->n[n->child[0]];
        z = &t->n[n->child[1]];
        if ((n->flags & TF_SOFT) ||
            (a->state == TN_FREE && z->state == TN_FREE && !a->flags && !z->flags)) {
            snprintf(why, size, "trie: %s has two free halves that were not merged (a leak)", b);
            return -EUCLEAN;
        }
        if (n->best != KF_MIN(a->best, z->best) ||
            n->best_hard != KF_MIN(a->best_hard, z->best_hard)) {
            snprintf(why, size, "trie: %s caches largest free /%u, halves say /%u", b, n->best,
                     KF_MIN(a->best, z->best));
            return -EUCLEAN;
        }
        return 0;
    }
    default:
        snprintf(why, size, "trie: %s has unknown state %u", b, n->state);
        return -EUCLEAN;
    }
}

int kf_ipam_trie_check(const struct trie *t, char *why, size_t size)
{
    size_t count = 0;
    int r = check_node(t, ROOT, 0, 0, &count, why, size);

    if (r == 0 && count != t->live) {
        snprintf(why, size, "trie: %zu nodes reachable, %zu live (a leak)", count, t->live);
        return -EUCLEAN;
    }
    return r;
}

/* --- service trie ----------------------------------------------------------- */

static uint32_t snode_new(struct strie *t)
{
    uint32_t i;

    if (t->free_head) {
        i = t->free_head;
        t->free_head = t->n[i].child[0];
    } else {
        KF_GROW(t->n, t->alloc, t->len);
        i = (uint32_t)t->len++;
    }
    memset(&t->n[i], 0, sizeof(t->n[i]));
    t->live++;
    return i;
}

void kf_ipam_strie_init(struct strie *t)
{
    memset(t, 0, sizeof(*t));
    t->len = 1;
    KF_GROW(t->n, t->alloc, 8);
    memset(&t->n[0], 0, sizeof(t->n[0]));
    snode_new(t);
}

void kf_ipam_strie_release(struct strie *t)
{
    free(t->n);
    memset(t, 0, sizeof(*t));
}

void kf_ipam_strie_add(struct strie *t, const struct kf_cidr *c)
{
    uint32_t i = ROOT, addr = (uint32_t)c->addr;

    for (unsigned p = 0; p < c->prefix; p++) {
        uint32_t b = bit_at(addr, p), next;

        t->n[i].sub++;
        next = t->n[i].child[b];
        if (!next) {
            next = snode_new(t);
            t->n[i].child[b] = next;
        }
        i = next;
    }
    t->n[i].sub++;
    t->n[i].count++;
}

void kf_ipam_strie_remove(struct strie *t, const struct kf_cidr *c)
{
    uint32_t path[34], i = ROOT, addr = (uint32_t)c->addr;
    unsigned p;

    path[0] = ROOT;
    for (p = 0; p < c->prefix; p++) {
        i = t->n[i].child[bit_at(addr, p)];
        kf_assert(i != 0);
        path[p + 1] = i;
    }
    kf_assert(t->n[i].count > 0);
    t->n[i].count--;
    for (int k = (int)c->prefix; k >= 0; k--) {
        uint32_t j = path[k];

        t->n[j].sub--;
        if (k > 0 && t->n[j].sub == 0) {
            struct snode *parent = &t->n[path[k - 1]];
            parent->child[bit_at(addr, (unsigned)k - 1)] = 0;
            memset(&t->n[j], 0, sizeof(t->n[j]));
            t->n[j].child[0] = t->free_head;
            t->free_head = j;
            t->live--;
        }
    }
}

static bool s_first_below(const struct strie *t, uint32_t i, uint32_t base, unsigned p,
                          struct kf_cidr *ret)
{
    const struct snode *n = &t->n[i];

    if (n->count) {
        if (ret)
            *ret = block(base, p);
        return true;
    }
    for (unsigned b = 0; b < 2; b++)
        if (n->child[b] && s_first_below(t, n->child[b], b ? base | half(p) : base, p + 1, ret))
            return true;
    return false;
}

bool kf_ipam_strie_query(const struct strie *t, const struct kf_cidr *c, struct kf_cidr *ret_block)
{
    uint32_t i = ROOT, addr = (uint32_t)c->addr, base = 0;
    unsigned p = 0;

    for (;;) {
        const struct snode *n = &t->n[i];

        if (n->count) {
            if (ret_block)
                *ret_block = block(base, p);
            return true;
        }
        if (p == c->prefix)
            return n->sub > 0 && s_first_below(t, i, base, p, ret_block);
        if (bit_at(addr, p))
            base |= half(p);
        i = n->child[bit_at(addr, p)];
        if (!i)
            return false;
        p++;
    }
}

uint32_t kf_ipam_strie_count(const struct strie *t, const struct kf_cidr *c)
{
    uint32_t i = ROOT, addr = (uint32_t)c->addr;

    for (unsigned p = 0; p < c->prefix; p++) {
        i = t->n[i].child[bit_at(addr, p)];
        if (!i)
            return 0;
    }
    return t->n[i].count;
}

static int s_check(const struct strie *t, uint32_t i, uint64_t *total, size_t *nodes)
{
    const struct snode *n = &t->n[i];
    uint64_t sub = n->count;

    (*nodes)++;
    *total += n->count;
    for (unsigned b = 0; b < 2; b++) {
        if (!n->child[b])
            continue;
        if (s_check(t, n->child[b], total, nodes) < 0)
            return -EUCLEAN;
        sub += t->n[n->child[b]].sub;
    }
    if (sub != n->sub || (i != ROOT && n->sub == 0))
        return -EUCLEAN;
    return 0;
}

int kf_ipam_strie_check(const struct strie *t, uint64_t *ret_total)
{
    uint64_t total = 0;
    size_t nodes = 0;

    if (s_check(t, ROOT, &total, &nodes) < 0 || nodes != t->live)
        return -EUCLEAN;
    *ret_total = total;
    return 0;
}
