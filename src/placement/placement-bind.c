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

unsigned kf_place_usable_zones(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                               bool usable[KF_PLACE_MAX_ZONES])
{
    unsigned n = 0;

    memset(usable, 0, KF_PLACE_MAX_ZONES * sizeof(bool));
    for (size_t i = 0; i < u->n_hosts; i++) {
        const struct kf_place_host *h = &u->hosts[i];
        if (h->ready && !h->unschedulable && h->zone < u->n_zones && h->zone < KF_PLACE_MAX_ZONES &&
            !usable[h->zone] && zone_allowed(u, c, h->zone)) {
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

int kf_place_bind(struct kf_place_scratch *s, const struct kf_place_policy *pol,
                  const struct kf_place_unit *u, const struct kf_place_cluster *c,
                  struct kf_place_binding *out, unsigned *ret_n, struct kf_strbuf *why)
{
    const struct kf_grade_spec *shape = c->shape;
    unsigned nz = KF_MIN(u->n_zones, (unsigned)KF_PLACE_MAX_ZONES), n = 0;
    unsigned zone_start[KF_PLACE_MAX_ZONES + 1] = { 0 }, zone_fill[KF_PLACE_MAX_ZONES] = { 0 };
    unsigned mine_in_zone[KF_PLACE_MAX_ZONES] = { 0 };
    int64_t zcap[KF_PLACE_MAX_ZONES] = { 0 }, zused[KF_PLACE_MAX_ZONES] = { 0 };
    bool usable[KF_PLACE_MAX_ZONES];
    unsigned n_usable = kf_place_usable_zones(u, c, usable);
    double hmark = pol->host_water_level > 0 ? pol->host_water_level : 1.0;

    if (u->n_hosts > s->host_alloc) {
        size_t a = KF_MAX(u->n_hosts, s->host_alloc * 2);
        s->delta = kf_xrealloc(s->delta, a * sizeof(*s->delta));
        s->comp_on = kf_xrealloc(s->comp_on, a);
        s->mine = kf_xrealloc(s->mine, a);
        s->by_zone = kf_xrealloc(s->by_zone, a * sizeof(*s->by_zone));
        s->host_alloc = a;
    }
    /* Bucket the hosts by zone (counting sort), reset the tentative state. */
    for (size_t i = 0; i < u->n_hosts; i++) {
        unsigned z = u->hosts[i].zone;
        if (z < nz) {
            zone_start[z + 1]++;
            if (u->hosts[i].ready) {
                zcap[z] += u->hosts[i].capacity.cpu_milli;
                zused[z] += u->hosts[i].allocated.cpu_milli;
            }
        }
        s->delta[i] = (struct kf_res){ 0, 0 };
        s->comp_on[i] = 0;
        s->mine[i] = 0;
    }
    for (unsigned z = 0; z < nz; z++)
        zone_start[z + 1] += zone_start[z];
    for (size_t i = 0; i < u->n_hosts; i++) {
        unsigned z = u->hosts[i].zone;
        if (z < nz)
            s->by_zone[zone_start[z] + zone_fill[z]++] = (uint32_t)i;
    }
    /* Pinned members occupy their hosts from the start; they count for the
     * zone ranking when their component comes up, as they would have in a
     * fresh placement (so a third apiserver sees the zones of the first
     * two, not of the schedulers bound after them). */
    for (unsigned i = 0; i < c->n_pins; i++) {
        const struct kf_place_pin *pin = &c->pins[i];
        const struct kf_component *comp = &shape->components[pin->component];
        unsigned z = u->hosts[pin->host].zone;

        s->delta[pin->host].cpu_milli += comp->req.cpu_milli;
        s->delta[pin->host].mem_bytes += comp->req.mem_bytes;
        s->comp_on[pin->host] |= (uint8_t)(1u << pin->component);
        s->mine[pin->host]++;
        if (z < nz)
            zused[z] += comp->req.cpu_milli;
    }

    for (unsigned ci = 0; ci < shape->n_components; ci++) {
        const struct kf_component *comp = &shape->components[ci];
        unsigned comp_in_zone[KF_PLACE_MAX_ZONES] = { 0 }, comp_placed = 0;

        for (unsigned i = 0; i < c->n_pins; i++) {
            unsigned z = u->hosts[c->pins[i].host].zone;

            if (c->pins[i].component == ci) {
                comp_placed++;
                if (z < nz) {
                    comp_in_zone[z]++;
                    mine_in_zone[z]++;
                }
            }
        }
        for (unsigned r = 0; r < comp->replicas; r++) {
            unsigned order[KF_PLACE_MAX_ZONES], no = 0;
            bool strict = comp->spread == KF_SPREAD_ONE_PER_ZONE && comp_placed < n_usable;
            bool placed = false;
            const struct kf_place_pin *pin = find_pin(c, ci, r);

            if (pin) {
                const struct kf_place_host *h = &u->hosts[pin->host];
                struct kf_place_binding *b = &out[n++];

                memset(b, 0, sizeof(*b));
                b->component = (uint16_t)ci;
                b->replica = (uint16_t)r;
                b->host = pin->host;
                b->zone = (uint16_t)h->zone;
                b->pinned = true;
                b->host_cpu_before = (float)frac(
                    h->allocated.cpu_milli + s->delta[pin->host].cpu_milli - comp->req.cpu_milli,
                    h->capacity.cpu_milli);
                b->host_cpu_after = (float)frac(
                    h->allocated.cpu_milli + s->delta[pin->host].cpu_milli, h->capacity.cpu_milli);
                continue;
            }

            for (unsigned z = 0; z < nz; z++)
                if (usable[z] && (!strict || comp_in_zone[z] == 0))
                    order[no++] = z;
            /* Insertion sort by the ranking above: at most 16 zones. */
            for (unsigned a = 1; a < no; a++) {
                unsigned z = order[a], b = a;
                while (b > 0) {
                    unsigned y = order[b - 1];
                    double lz = frac(zused[z], zcap[z]), ly = frac(zused[y], zcap[y]);
                    bool before =
                        mine_in_zone[z] != mine_in_zone[y]   ? mine_in_zone[z] < mine_in_zone[y]
                        : comp_in_zone[z] != comp_in_zone[y] ? comp_in_zone[z] < comp_in_zone[y]
                        : lz != ly                           ? lz < ly
                                                             : z < y;
                    if (!before)
                        break;
                    order[b] = y;
                    b--;
                }
                order[b] = z;
            }
            for (unsigned k = 0; k < no && !placed; k++) {
                unsigned z = order[k];
                long best = -1;
                int best_rank = 0;
                double best_after = 0;

                for (unsigned j = zone_start[z]; j < zone_start[z + 1]; j++) {
                    uint32_t hi = s->by_zone[j];
                    const struct kf_place_host *h = &u->hosts[hi];
                    double after;
                    int rank;

                    if (!h->ready || h->unschedulable ||
                        !host_fits(h, s->delta[hi], comp->req, hmark))
                        continue;
                    rank = (s->comp_on[hi] & (1u << ci)) ? 2 : s->mine[hi] ? 1 : 0;
                    after = KF_MAX(
                        frac(h->allocated.cpu_milli + s->delta[hi].cpu_milli + comp->req.cpu_milli,
                             h->capacity.cpu_milli),
                        frac(h->allocated.mem_bytes + s->delta[hi].mem_bytes + comp->req.mem_bytes,
                             h->capacity.mem_bytes));
                    if (best < 0 || rank < best_rank || (rank == best_rank && after < best_after)) {
                        best = hi;
                        best_rank = rank;
                        best_after = after;
                    }
                }
                if (best >= 0) {
                    const struct kf_place_host *h = &u->hosts[best];
                    struct kf_place_binding *b = &out[n++];

                    memset(b, 0, sizeof(*b));
                    b->component = (uint16_t)ci;
                    b->replica = (uint16_t)r;
                    b->host = (uint32_t)best;
                    b->zone = (uint16_t)z;
                    b->spread_fallback = comp->spread == KF_SPREAD_ONE_PER_ZONE && !strict;
                    b->host_cpu_before = (float)frac(
                        h->allocated.cpu_milli + s->delta[best].cpu_milli, h->capacity.cpu_milli);
                    s->delta[best].cpu_milli += comp->req.cpu_milli;
                    s->delta[best].mem_bytes += comp->req.mem_bytes;
                    b->host_cpu_after = (float)frac(
                        h->allocated.cpu_milli + s->delta[best].cpu_milli, h->capacity.cpu_milli);
                    s->comp_on[best] |= (uint8_t)(1u << ci);
                    s->mine[best]++;
                    mine_in_zone[z]++;
                    comp_in_zone[z]++;
                    comp_placed++;
                    zused[z] += comp->req.cpu_milli;
                    placed = true;
                }
            }
            if (!placed) {
                if (why) {
                    if (no == 0) {
                        kf_strbuf_addf(why, "no usable zone left for %s-%u", comp->name, r);
                    } else {
                        kf_strbuf_addf(why, "no host in zone%s ", no > 1 ? "s" : "");
                        for (unsigned k = 0; k < no; k++)
                            kf_strbuf_addf(why, "%s%s", k ? ", " : "", u->zones[order[k]]);
                        kf_strbuf_addf(why, " can take %s-%u (", comp->name, r);
                        kf_place_res(why, comp->req);
                        kf_strbuf_addstr(why, ") within the host mark ");
                        kf_place_pct(why, hmark, -1);
                    }
                }
                return -ENOSPC;
            }
        }
    }
    *ret_n = n;
    return 0;
}
