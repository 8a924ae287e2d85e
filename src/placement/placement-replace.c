/* placement-replace.c: where a member of a lost host goes (placement.h,
 * kf_place_replace_host; docs/internals/replacement.md).
 *
 * The member replacement controller asks this for one member at a time:
 * the member's host has been NotReady past the replacement grace, and the
 * member must run elsewhere in the same unit. The rules are the binding
 * rules of placement-bind.c narrowed to one member:
 *   - a candidate is a Ready, schedulable host other than the lost one,
 *     holding the cluster's Kubernetes release (when the member runs one and
 *     the host reports what it holds), that stays within the host mark for
 *     cpu and memory with the member's requests added;
 *   - zones: the member's own zone first (the cluster keeps its spread as
 *     it was); failing that, the zones with the fewest replicas of the
 *     member's component (etcd: a zone without one keeps one per zone),
 *     then the fewest members of the cluster, then zone order;
 *   - in a zone: a host without a replica of the component (anti-affinity),
 *     then without a member of the cluster, then the lowest cpu level after
 *     the member, then host order.
 * Pure and deterministic: the same unit gives the same host.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "kfleet/placement.h"
#include "kfleet/strbuf.h"

struct rank {
    unsigned zone_first; /* 0: the member's own zone, 1: another */
    unsigned comp_in_zone, members_in_zone;
    unsigned zone;
    unsigned comp_on_host, members_on_host;
    int64_t cpu_permille; /* cpu level after the member */
    size_t host;
};

static bool holds(const struct kf_place_host *h, int minor)
{
    return minor <= 0 || minor >= 64 || !h->k8s_reported || ((h->k8s_minors >> minor) & 1u);
}

static bool fits(const struct kf_place_host *h, struct kf_res req, double mark)
{
    return h->capacity.cpu_milli > 0 && h->capacity.mem_bytes > 0 &&
           h->allocated.cpu_milli + req.cpu_milli <=
               (int64_t)((double)h->capacity.cpu_milli * mark) &&
           h->allocated.mem_bytes + req.mem_bytes <=
               (int64_t)((double)h->capacity.mem_bytes * mark);
}

/* How many of the cluster's other members (of the component: comp) sit
 * on host i, or in zone z (host SIZE_MAX). */
static unsigned count_peers(const struct kf_place_unit *u, const struct kf_place_replace *r,
                            size_t host, unsigned zone, bool comp)
{
    unsigned n = 0;

    for (size_t i = 0; i < r->n_peers; i++) {
        const struct kf_place_peer *p = &r->peers[i];

        if (p->host >= u->n_hosts || (comp && !p->same_component))
            continue;
        if (host != SIZE_MAX ? p->host == host : u->hosts[p->host].zone == zone)
            n++;
    }
    return n;
}

/* a before b? */
static bool better(const struct rank *a, const struct rank *b)
{
#define CMP(f)        \
    if (a->f != b->f) \
        return a->f < b->f;
    CMP(zone_first);
    CMP(comp_in_zone);
    CMP(members_in_zone);
    CMP(zone);
    CMP(comp_on_host);
    CMP(members_on_host);
    CMP(cpu_permille);
    return a->host < b->host;
#undef CMP
}

/* Why host i is not a candidate (NULL: it is). */
static const char *refused(const struct kf_place_unit *u, const struct kf_place_replace *r,
                           size_t i, double mark)
{
    const struct kf_place_host *h = &u->hosts[i];

    if (i == r->lost_host)
        return "lost";
    if (!h->ready)
        return "NotReady";
    if (h->unschedulable)
        return "unschedulable";
    if (!holds(h, r->k8s_minor))
        return "without the release";
    if (!fits(h, r->req, mark))
        return "full";
    return NULL;
}

static void explain_none(const struct kf_place_unit *u, const struct kf_place_replace *r,
                         double mark, struct kf_strbuf *why)
{
    static const char *const kinds[] = { "NotReady", "unschedulable", "without the release",
                                         "full" };
    unsigned counts[4] = { 0 };
    bool first = true;

    for (size_t i = 0; i < u->n_hosts; i++) {
        const char *k = refused(u, r, i, mark);

        for (unsigned j = 0; k && j < 4; j++)
            if (!strcmp(k, kinds[j]))
                counts[j]++;
    }
    kf_strbuf_addf(why,
                   "no Ready, schedulable host of unit %s can take %s (%lld m CPU, %lld MiB) "
                   "within the host mark %.0f %%",
                   u->name ? u->name : "?", r->component ? r->component : "the member",
                   (long long)r->req.cpu_milli, (long long)(r->req.mem_bytes >> 20), mark * 100);
    if (r->k8s_minor > 0)
        kf_strbuf_addf(why, " holding Kubernetes 1.%d", r->k8s_minor);
    kf_strbuf_addf(why, " (%zu other hosts", u->n_hosts - (r->lost_host < u->n_hosts ? 1 : 0));
    for (unsigned j = 0; j < 4; j++)
        if (counts[j]) {
            kf_strbuf_addf(why, "%s %u %s", first ? ":" : ",", counts[j], kinds[j]);
            first = false;
        }
    kf_strbuf_addstr(why, ")");
}

int kf_place_replace_host(const struct kf_place_unit *u, const struct kf_place_policy *p,
                          const struct kf_place_replace *r, size_t *ret_host, struct kf_strbuf *why)
{
    double mark = p && p->host_water_level > 0 ? p->host_water_level : 1.0;
    struct rank best = { 0 };
    bool found = false;

    for (size_t i = 0; i < u->n_hosts; i++) {
        const struct kf_place_host *h = &u->hosts[i];
        struct rank k;

        if (refused(u, r, i, mark))
            continue;
        k = (struct rank){
            .zone_first = h->zone == r->zone ? 0 : 1,
            .comp_in_zone = count_peers(u, r, SIZE_MAX, h->zone, true),
            .members_in_zone = count_peers(u, r, SIZE_MAX, h->zone, false),
            .zone = h->zone,
            .comp_on_host = count_peers(u, r, i, 0, true),
            .members_on_host = count_peers(u, r, i, 0, false),
            .cpu_permille =
                (h->allocated.cpu_milli + r->req.cpu_milli) * 1000 / h->capacity.cpu_milli,
            .host = i,
        };
        if (!found || better(&k, &best)) {
            best = k;
            found = true;
        }
    }
    if (!found) {
        if (why)
            explain_none(u, r, mark, why);
        return -ENOSPC;
    }
    if (why) {
        const struct kf_place_host *h = &u->hosts[best.host];
        const char *zone = h->zone < u->n_zones && u->zones ? u->zones[h->zone] : "?";

        kf_strbuf_addf(why, "%s (zone %s, %s; cpu %lld %% after)", h->name, zone,
                       best.zone_first == 0 ? "the member's own zone"
                       : best.comp_in_zone == 0
                           ? "its zone has no Ready host that fits; a zone without one"
                           : "its zone has no Ready host that fits; the least used zone",
                       (long long)(best.cpu_permille / 10));
    }
    *ret_host = best.host;
    return 0;
}
