/* placement-bind.c: the members of a control plane -> hosts of the chosen
 * unit.
 *
 * Components are bound in the order of the grade's table (etcd first: it
 * is the most constrained). For each replica the zones are ranked:
 *   1. OnePerZone components (etcd): zones without a replica of this
 *      component first, and only those while there are such zones left;
 *   2. fewest members of this cluster in the zone (round-robin spread);
 *   3. fewest replicas of this component in the zone;
 *   4. least loaded zone (cpu requests / allocatable of its ready hosts);
 *   5. zone order.
 * In the first zone with a host that fits, the host is: ready, schedulable,
 * stays within the host mark for cpu and memory after the member; preferring
 * a host without this component of the cluster, then without members of the
 * cluster, then the least allocated after placement, then host order.
 * Pinned members (existing ones that stay) are booked on their hosts first,
 * whatever the host's state, and count for every ranking above, so the
 * replicas bound around them still spread (a third apiserver goes to the
 * zone the first two left free; a re-created etcd member to the zone
 * without one).
 * Deterministic; no allocation (scratch from the placer).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "placement/placement-internal.h"

static bool zone_allowed(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                         unsigned z)
{
    if (!c || !c->zones)
        return true;
    for (size_t i = 0; i < c->n_zones; i++)
        if (u->zones[z] && c->zones[i] && strcmp(u->zones[z], c->zones[i]) == 0)
            return true;
    return false;
}

/* Whether h holds c's Kubernetes release (a host that reports none: any). */
static bool holds_release(const struct kf_place_host *h, const struct kf_place_cluster *c)
{
    return !h->k8s_reported || c->k8s_minor == 0 || c->k8s_minor >= 64 ||
           (h->k8s_minors >> c->k8s_minor) & 1u;
}

unsigned kf_place_usable_zones(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                               bool usable[KF_PLACE_MAX_ZONES])
{
    unsigned n = 0;

    memset(usable, 0, KF_PLACE_MAX_ZONES * sizeof(bool));
    for (size_t i = 0; i < u->n_hosts; i++) {
        const struct kf_place_host *h = &u->hosts[i];
        if (h->ready && !h->unschedulable && h->zone < u->n_zones && h->zone < KF_PLACE_MAX_ZONES &&
            !usable[h->zone] && zone_allowed(u, c, h->zone) && holds_release(h, c)) {
            usable[h->zone] = true;
            n++;
        }
    }
    return n;
}

static double frac(int64_t used, int64_t cap)
{
    return cap > 0 ? (double)used / (double)cap : (used > 0 ? 1e9 : 0.0);
}

static bool host_fits(const struct kf_place_host *h, struct kf_res delta, struct kf_res req,
                      double mark)
{
    return h->allocated.cpu_milli + delta.cpu_milli + req.cpu_milli <=
               (int64_t)((double)h->capacity.cpu_milli * mark) &&
           h->allocated.mem_bytes + delta.mem_bytes + req.mem_bytes <=
               (int64_t)((double)h->capacity.mem_bytes * mark);
}

static const struct kf_place_pin *find_pin(const struct kf_place_cluster *c, unsigned ci,
                                           unsigned r)
{
    for (unsigned i = 0; i < c->n_pins; i++)
        if (c->pins[i].component == ci && c->pins[i].replica == r)
            return &c->pins[i];
    return NULL;
}

/* What kf_place_bind keeps while it binds one cluster on one unit: the hosts
 * by zone and the cluster's members so far in each zone. */
struct bind {
    struct kf_place_scratch *s;
    const struct kf_place_unit *u;
    const struct kf_place_cluster *c;
    double hmark;
    unsigned nz, n_usable;
    unsigned zone_start[KF_PLACE_MAX_ZONES + 1]; /* s->by_zone[zone_start[z]..zone_start[z+1]) */
    unsigned mine_in_zone[KF_PLACE_MAX_ZONES];   /* members of the cluster in the zone */
    int64_t zcap[KF_PLACE_MAX_ZONES], zused[KF_PLACE_MAX_ZONES]; /* cpu of ready hosts */
    bool usable[KF_PLACE_MAX_ZONES];
};

/* One component being bound: its replicas so far, by zone. */
struct bind_comp {
    const struct kf_component *comp;
    unsigned ci;
    unsigned in_zone[KF_PLACE_MAX_ZONES];
    unsigned placed;
};

/* Grows the per-host scratch arrays to n hosts. */
static void scratch_reserve(struct kf_place_scratch *s, size_t n)
{
    size_t a;

    if (n <= s->host_alloc)
        return;
    a = KF_MAX(n, s->host_alloc * 2);
    s->delta = kf_xrealloc(s->delta, a * sizeof(*s->delta));
    s->comp_on = kf_xrealloc(s->comp_on, a);
    s->mine = kf_xrealloc(s->mine, a);
    s->by_zone = kf_xrealloc(s->by_zone, a * sizeof(*s->by_zone));
    s->host_alloc = a;
}

/* Buckets the hosts by zone (counting sort), resets the tentative state. */
static void bucket_hosts(struct bind *b)
{
    const struct kf_place_unit *u = b->u;
    struct kf_place_scratch *s = b->s;
    unsigned zone_fill[KF_PLACE_MAX_ZONES] = { 0 };

    for (size_t i = 0; i < u->n_hosts; i++) {
        unsigned z = u->hosts[i].zone;
        if (z < b->nz) {
            b->zone_start[z + 1]++;
            if (u->hosts[i].ready) {
                b->zcap[z] += u->hosts[i].capacity.cpu_milli;
                b->zused[z] += u->hosts[i].allocated.cpu_milli;
            }
        }
        s->delta[i] = (struct kf_res){ 0, 0 };
        s->comp_on[i] = 0;
        s->mine[i] = 0;
    }
    for (unsigned z = 0; z < b->nz; z++)
        b->zone_start[z + 1] += b->zone_start[z];
    for (size_t i = 0; i < u->n_hosts; i++) {
        unsigned z = u->hosts[i].zone;
        if (z < b->nz)
            s->by_zone[b->zone_start[z] + zone_fill[z]++] = (uint32_t)i;
    }
}

/* Pinned members occupy their hosts from the start; they count for the
 * zone ranking when their component comes up, as they would have in a
 * fresh placement (so a third apiserver sees the zones of the first
 * two, not of the schedulers bound after them). */
static void occupy_pins(struct bind *b)
{
    for (unsigned i = 0; i < b->c->n_pins; i++) {
        const struct kf_place_pin *pin = &b->c->pins[i];
        const struct kf_component *comp = &b->c->shape->components[pin->component];
        unsigned z = b->u->hosts[pin->host].zone;

        b->s->delta[pin->host].cpu_milli += comp->req.cpu_milli;
        b->s->delta[pin->host].mem_bytes += comp->req.mem_bytes;
        b->s->comp_on[pin->host] |= (uint8_t)(1u << pin->component);
        b->s->mine[pin->host]++;
        if (z < b->nz)
            b->zused[z] += comp->req.cpu_milli;
    }
}

/* Counts the pinned replicas of bc's component, by zone. */
static void count_pinned(struct bind *b, struct bind_comp *bc)
{
    for (unsigned i = 0; i < b->c->n_pins; i++) {
        unsigned z = b->u->hosts[b->c->pins[i].host].zone;

        if (b->c->pins[i].component == bc->ci) {
            bc->placed++;
            if (z < b->nz) {
                bc->in_zone[z]++;
                b->mine_in_zone[z]++;
            }
        }
    }
}

/* Writes the binding of a pinned replica, booked on its host by occupy_pins. */
static void bind_pinned(const struct bind *b, const struct bind_comp *bc, unsigned r,
                        const struct kf_place_pin *pin, struct kf_place_binding *out)
{
    const struct kf_place_host *h = &b->u->hosts[pin->host];
    int64_t cpu = h->allocated.cpu_milli + b->s->delta[pin->host].cpu_milli;

    memset(out, 0, sizeof(*out));
    out->component = (uint16_t)bc->ci;
    out->replica = (uint16_t)r;
    out->host = pin->host;
    out->zone = (uint16_t)h->zone;
    out->pinned = true;
    out->host_cpu_before = (float)frac(cpu - bc->comp->req.cpu_milli, h->capacity.cpu_milli);
    out->host_cpu_after = (float)frac(cpu, h->capacity.cpu_milli);
}

/* The usable zones for the next replica in order[], best first (the ranking
 * on top of this file); their number. */
static unsigned rank_zones(const struct bind *b, const struct bind_comp *bc, bool strict,
                           unsigned order[KF_PLACE_MAX_ZONES])
{
    const unsigned *mine = b->mine_in_zone, *comp = bc->in_zone;
    unsigned no = 0;

    for (unsigned z = 0; z < b->nz; z++)
        if (b->usable[z] && (!strict || comp[z] == 0))
            order[no++] = z;
    /* Insertion sort by the ranking above: at most 16 zones. */
    for (unsigned a = 1; a < no; a++) {
        unsigned z = order[a], i = a;
        while (i > 0) {
            unsigned y = order[i - 1];
            double lz = frac(b->zused[z], b->zcap[z]), ly = frac(b->zused[y], b->zcap[y]);
            bool before = mine[z] != mine[y]   ? mine[z] < mine[y]
                          : comp[z] != comp[y] ? comp[z] < comp[y]
                          : lz != ly           ? lz < ly
                                               : z < y;
            if (!before)
                break;
            order[i] = y;
            i--;
        }
        order[i] = z;
    }
    return no;
}

/* The best host of zone z for a replica of component ci, or -1 when none fits. */
static long best_host(const struct bind *b, unsigned z, const struct kf_component *comp,
                      unsigned ci)
{
    const struct kf_place_scratch *s = b->s;
    long best = -1;
    int best_rank = 0;
    double best_after = 0;

    for (unsigned j = b->zone_start[z]; j < b->zone_start[z + 1]; j++) {
        uint32_t hi = s->by_zone[j];
        const struct kf_place_host *h = &b->u->hosts[hi];
        double after;
        int rank;

        if (!h->ready || h->unschedulable || !holds_release(h, b->c) ||
            !host_fits(h, s->delta[hi], comp->req, b->hmark))
            continue;
        rank = (s->comp_on[hi] & (1u << ci)) ? 2 : s->mine[hi] ? 1 : 0;
        after = KF_MAX(frac(h->allocated.cpu_milli + s->delta[hi].cpu_milli + comp->req.cpu_milli,
                            h->capacity.cpu_milli),
                       frac(h->allocated.mem_bytes + s->delta[hi].mem_bytes + comp->req.mem_bytes,
                            h->capacity.mem_bytes));
        if (best < 0 || rank < best_rank || (rank == best_rank && after < best_after)) {
            best = hi;
            best_rank = rank;
            best_after = after;
        }
    }
    return best;
}

/* Books replica r of bc's component on host hi of zone z and writes its binding. */
static void bind_on_host(struct bind *b, struct bind_comp *bc, unsigned r, bool strict, uint32_t hi,
                         unsigned z, struct kf_place_binding *out)
{
    const struct kf_place_host *h = &b->u->hosts[hi];
    const struct kf_component *comp = bc->comp;
    struct kf_place_scratch *s = b->s;

    memset(out, 0, sizeof(*out));
    out->component = (uint16_t)bc->ci;
    out->replica = (uint16_t)r;
    out->host = hi;
    out->zone = (uint16_t)z;
    out->spread_fallback = comp->spread == KF_SPREAD_ONE_PER_ZONE && !strict;
    out->host_cpu_before =
        (float)frac(h->allocated.cpu_milli + s->delta[hi].cpu_milli, h->capacity.cpu_milli);
    s->delta[hi].cpu_milli += comp->req.cpu_milli;
    s->delta[hi].mem_bytes += comp->req.mem_bytes;
    out->host_cpu_after =
        (float)frac(h->allocated.cpu_milli + s->delta[hi].cpu_milli, h->capacity.cpu_milli);
    s->comp_on[hi] |= (uint8_t)(1u << bc->ci);
    s->mine[hi]++;
    b->mine_in_zone[z]++;
    bc->in_zone[z]++;
    bc->placed++;
    b->zused[z] += comp->req.cpu_milli;
}

/* Says in why that no host of the zones in order[] takes replica r. */
static void explain_no_host(const struct bind *b, const struct kf_component *comp, unsigned r,
                            const unsigned *order, unsigned no, struct kf_strbuf *why)
{
    if (no == 0) {
        kf_strbuf_addf(why, "no usable zone left for %s-%u", comp->name, r);
        return;
    }
    kf_strbuf_addf(why, "no host in zone%s ", no > 1 ? "s" : "");
    for (unsigned k = 0; k < no; k++)
        kf_strbuf_addf(why, "%s%s", k ? ", " : "", b->u->zones[order[k]]);
    kf_strbuf_addf(why, " can take %s-%u (", comp->name, r);
    kf_place_res(why, comp->req);
    kf_strbuf_addstr(why, ") within the host mark ");
    kf_place_pct(why, b->hmark, -1);
}

/* Binds replica r (not pinned) on the first ranked zone with a host that
 * fits: 0, or -ENOSPC with the reason in why (if given). */
static int bind_replica(struct bind *b, struct bind_comp *bc, unsigned r,
                        struct kf_place_binding *out, struct kf_strbuf *why)
{
    unsigned order[KF_PLACE_MAX_ZONES], no;
    bool strict = bc->comp->spread == KF_SPREAD_ONE_PER_ZONE && bc->placed < b->n_usable;

    no = rank_zones(b, bc, strict, order);
    for (unsigned k = 0; k < no; k++) {
        long best = best_host(b, order[k], bc->comp, bc->ci);

        if (best >= 0) {
            bind_on_host(b, bc, r, strict, (uint32_t)best, order[k], out);
            return 0;
        }
    }
    if (why)
        explain_no_host(b, bc->comp, r, order, no, why);
    return -ENOSPC;
}

int kf_place_bind(struct kf_place_scratch *s, const struct kf_place_policy *pol,
                  const struct kf_place_unit *u, const struct kf_place_cluster *c,
                  struct kf_place_binding *out, unsigned *ret_n, struct kf_strbuf *why)
{
    struct bind b = { .s = s, .u = u, .c = c };
    unsigned n = 0;

    b.nz = KF_MIN(u->n_zones, (unsigned)KF_PLACE_MAX_ZONES);
    b.n_usable = kf_place_usable_zones(u, c, b.usable);
    b.hmark = pol->host_water_level > 0 ? pol->host_water_level : 1.0;
    scratch_reserve(s, u->n_hosts);
    bucket_hosts(&b);
    occupy_pins(&b);
    for (unsigned ci = 0; ci < c->shape->n_components; ci++) {
        struct bind_comp bc = { .comp = &c->shape->components[ci], .ci = ci };

        count_pinned(&b, &bc);
        for (unsigned r = 0; r < bc.comp->replicas; r++) {
            const struct kf_place_pin *pin = find_pin(c, ci, r);

            if (pin) {
                bind_pinned(&b, &bc, r, pin, &out[n++]);
                continue;
            }
            if (bind_replica(&b, &bc, r, &out[n], why) < 0)
                return -ENOSPC;
            n++;
        }
    }
    *ret_n = n;
    return 0;
}
