/* placement-internal.h: what the placement files share and nothing else
 * needs: the scratch of a placer, member binding, number formatting. */
#ifndef KF_PLACEMENT_INTERNAL_H
#define KF_PLACEMENT_INTERNAL_H

#include "kfleet/placement.h"

/* Per-unit evaluation of one decision (no strings: the fast path). */
struct place_eval {
    uint32_t failed;
    bool prefilter_ok; /* every filter before HostFit passed */
    bool hosts_tried;
    double mark, cpu_now, cpu_after, mem_now, mem_after;
    int score[KF_SCORE_COUNT];
    int total;
};

struct kf_place_scratch {
    struct place_eval *ev;
    size_t ev_alloc;
    size_t *cand;
    size_t cand_alloc;
    struct kf_res *delta; /* tentative requests per host during a bind */
    uint8_t *comp_on;     /* components of this cluster on each host (bit per component) */
    uint8_t *mine;        /* members of this cluster on each host */
    uint32_t *by_zone;    /* host indices grouped by zone */
    size_t host_alloc;
};

struct kf_place_scratch *kf_place_scratch(struct kf_placer *p);

/* Binds the members of c's shape to hosts of u (see placement-bind.c),
 * keeping c's pins where they are. 0 and the bindings, or -ENOSPC with the
 * reason in why (if given). */
int kf_place_bind(struct kf_place_scratch *s, const struct kf_place_policy *pol,
                  const struct kf_place_unit *u, const struct kf_place_cluster *c,
                  struct kf_place_binding *out, unsigned *ret_n, struct kf_strbuf *why);

/* Usable zones of u for c: with at least one ready, schedulable host, and
 * among c's zones when it names some (c may be NULL: any zone). */
unsigned kf_place_usable_zones(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                               bool usable[KF_PLACE_MAX_ZONES]);

double kf_place_mark(const struct kf_place_unit *u, const struct kf_place_policy *p);

/* "58 %"; one decimal when rounding would hide the difference to ref. */
void kf_place_pct(struct kf_strbuf *sb, double x, double ref);
/* "1.6 CPU / 6.4 GiB" */
void kf_place_res(struct kf_strbuf *sb, struct kf_res r);

#endif
