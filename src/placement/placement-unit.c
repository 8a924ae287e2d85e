/* placement-unit.c: a unit's capacity and water level, booking decisions
 * into units and hosts, the default policy, and the small formatting
 * helpers the placement messages share.
 *
 * Water level of a unit, per resource r in {cpu, memory}:
 *   used_r = sum of requests of the members on its hosts (all hosts)
 *   cap_r  = sum of allocatable of its Ready hosts
 *   level_r = used_r / cap_r; the unit is above its mark when level_r > mark
 * A cluster is admitted only if (used_r + request_r) <= mark x cap_r for
 * both resources (docs/internals/placement.md).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "placement/placement-internal.h"

static const char *const filter_names[KF_FILTER_COUNT] = {
    "Region",     "Unit",  "Cordon",        "Compliance",       "Features", "Quota",
    "GradeRatio", "Zones", "WaterLevelCPU", "WaterLevelMemory", "HostFit",
};

static const char *const score_names[KF_SCORE_COUNT] = {
    "spread", "density", "balance", "cost", "performance", "quota",
};

const char *kf_place_filter_name(enum kf_place_filter f)
{
    return (unsigned)f < KF_FILTER_COUNT ? filter_names[f] : "?";
}

const char *kf_place_score_name(enum kf_place_score s)
{
    return (unsigned)s < KF_SCORE_COUNT ? score_names[s] : "?";
}

void kf_place_policy_default(struct kf_place_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->water_level = 0.60;
    p->host_water_level = 0.85;
    p->weights[KF_SCORE_SPREAD] = 3;
    p->weights[KF_SCORE_DENSITY] = 0;
    p->weights[KF_SCORE_BALANCE] = 2;
    p->weights[KF_SCORE_COST] = 1;
    p->weights[KF_SCORE_PERFORMANCE] = 1;
    p->weights[KF_SCORE_QUOTA] = 1;
    p->exclusive_features[0] = "dedicated";
    p->n_exclusive = 1;
}

double kf_place_mark(const struct kf_place_unit *u, const struct kf_place_policy *p)
{
    return u->water_level > 0 ? u->water_level : p->water_level > 0 ? p->water_level : 0.60;
}

void kf_place_unit_refresh(struct kf_place_unit *u)
{
    u->capacity = (struct kf_res){ 0, 0 };
    u->allocated = (struct kf_res){ 0, 0 };
    for (size_t i = 0; i < u->n_hosts; i++) {
        const struct kf_place_host *h = &u->hosts[i];
        if (h->ready) {
            u->capacity.cpu_milli += h->capacity.cpu_milli;
            u->capacity.mem_bytes += h->capacity.mem_bytes;
        }
        u->allocated.cpu_milli += h->allocated.cpu_milli;
        u->allocated.mem_bytes += h->allocated.mem_bytes;
    }
}

static void book(struct kf_place_unit *u, const struct kf_place_cluster *c,
                 const struct kf_place_binding *b, unsigned n, int sign)
{
    for (unsigned i = 0; i < n; i++) {
        const struct kf_component *comp = &c->shape->components[b[i].component];
        struct kf_place_host *h = &u->hosts[b[i].host];

        h->allocated.cpu_milli += sign * comp->req.cpu_milli;
        h->allocated.mem_bytes += sign * comp->req.mem_bytes;
        h->members = (unsigned)((int)h->members + sign);
        u->allocated.cpu_milli += sign * comp->req.cpu_milli;
        u->allocated.mem_bytes += sign * comp->req.mem_bytes;
    }
    u->clusters = (unsigned)((int)u->clusters + sign);
    if (c->grade >= 0 && c->grade < KF_GRADE_COUNT)
        u->by_grade[c->grade] = (unsigned)((int)u->by_grade[c->grade] + sign);
    u->nodes += sign * KF_MAX(c->expected_nodes, 0);
}

void kf_place_commit(struct kf_place_unit *units, const struct kf_place_cluster *c,
                     const struct kf_place_result *r)
{
    if (r->unit < 0)
        return;
    book(&units[r->unit], c, r->bindings, r->n_bindings, +1);
}

void kf_place_uncommit(struct kf_place_unit *u, const struct kf_place_cluster *c,
                       const struct kf_place_binding *b, unsigned n)
{
    book(u, c, b, n, -1);
}

/* --- formatting ------------------------------------------------------------------ */

void kf_place_pct(struct kf_strbuf *sb, double x, double ref)
{
    /* Whole percents, unless rounding would make x look equal to ref. */
    for (int digits = 0; digits < 3; digits++) {
        double scale = pow(10, digits);
        double a = floor(x * 100 * scale + 0.5), b = floor(ref * 100 * scale + 0.5);

        if (ref < 0 || a != b || fabs(x - ref) < 1e-12 || digits == 2) {
            kf_strbuf_addf(sb, "%.*f %%", digits, a / scale);
            return;
        }
    }
}

static void add_num(struct kf_strbuf *sb, double v)
{
    if (fabs(v - floor(v + 0.5)) < 0.05)
        kf_strbuf_addf(sb, "%.0f", floor(v + 0.5));
    else
        kf_strbuf_addf(sb, "%.1f", v);
}

void kf_place_res(struct kf_strbuf *sb, struct kf_res r)
{
    add_num(sb, (double)r.cpu_milli / 1000);
    kf_strbuf_addstr(sb, " CPU / ");
    add_num(sb, (double)r.mem_bytes / KF_GIB);
    kf_strbuf_addstr(sb, " GiB");
}

/* --- water level ------------------------------------------------------------------ */

void kf_unit_water(const struct kf_place_unit *u, const struct kf_place_policy *p,
                   const struct kf_grade_table *t, struct kf_unit_water *ret)
{
    double mark = kf_place_mark(u, p);
    int64_t lim_cpu = (int64_t)((double)u->capacity.cpu_milli * mark);
    int64_t lim_mem = (int64_t)((double)u->capacity.mem_bytes * mark);

    memset(ret, 0, sizeof(*ret));
    ret->mark = mark;
    ret->cpu = u->capacity.cpu_milli > 0
                   ? (double)u->allocated.cpu_milli / (double)u->capacity.cpu_milli
                   : 0;
    ret->mem = u->capacity.mem_bytes > 0
                   ? (double)u->allocated.mem_bytes / (double)u->capacity.mem_bytes
                   : 0;
    ret->over.cpu_milli = KF_MAX(u->allocated.cpu_milli - lim_cpu, 0);
    ret->over.mem_bytes = KF_MAX(u->allocated.mem_bytes - lim_mem, 0);
    ret->room.cpu_milli = KF_MAX(lim_cpu - u->allocated.cpu_milli, 0);
    ret->room.mem_bytes = KF_MAX(lim_mem - u->allocated.mem_bytes, 0);
    ret->above = ret->over.cpu_milli > 0 || ret->over.mem_bytes > 0;
    for (int g = 0; t && g < KF_GRADE_COUNT; g++) {
        struct kf_res need = kf_grade_total(&t->grades[g]);
        int64_t by_cpu = need.cpu_milli > 0 ? ret->room.cpu_milli / need.cpu_milli : 0;
        int64_t by_mem = need.mem_bytes > 0 ? ret->room.mem_bytes / need.mem_bytes : 0;
        ret->can_take[g] = (unsigned)KF_MIN(KF_MIN(by_cpu, by_mem), (int64_t)UINT32_MAX);
    }
}

static unsigned hosts_for(int64_t need, int64_t used, int64_t cap, double mark, int64_t per_host)
{
    /* Smallest h with used + need <= mark x (cap + h x per_host). */
    double missing = (double)(used + need) / mark - (double)cap;

    if (missing <= 0)
        return 0;
    if (per_host <= 0)
        return UINT32_MAX;
    return (unsigned)ceil(missing / (double)per_host - 1e-9);
}

unsigned kf_unit_hosts_needed(const struct kf_place_unit *u, const struct kf_place_policy *p,
                              const struct kf_grade_spec *shape, unsigned n,
                              struct kf_res host_shape)
{
    struct kf_res one = kf_grade_total(shape);
    double mark = kf_place_mark(u, p);
    unsigned a = hosts_for(one.cpu_milli * n, u->allocated.cpu_milli, u->capacity.cpu_milli, mark,
                           host_shape.cpu_milli);
    unsigned b = hosts_for(one.mem_bytes * n, u->allocated.mem_bytes, u->capacity.mem_bytes, mark,
                           host_shape.mem_bytes);

    return KF_MAX(a, b);
}

void kf_unit_water_format(const struct kf_place_unit *u, const struct kf_unit_water *w,
                          struct kf_res host_shape, struct kf_strbuf *out)
{
    kf_strbuf_addstr(out, "cpu ");
    kf_place_pct(out, w->cpu, w->mark);
    kf_strbuf_addstr(out, ", memory ");
    kf_place_pct(out, w->mem, w->mark);
    kf_strbuf_addstr(out, " (mark ");
    kf_place_pct(out, w->mark, -1);
    kf_strbuf_addstr(out, ")");
    if (w->above) {
        unsigned h = KF_MAX(hosts_for(0, u->allocated.cpu_milli, u->capacity.cpu_milli, w->mark,
                                      host_shape.cpu_milli),
                            hosts_for(0, u->allocated.mem_bytes, u->capacity.mem_bytes, w->mark,
                                      host_shape.mem_bytes));
        kf_strbuf_addstr(out, ": above the mark by ");
        kf_place_res(out, w->over);
        kf_strbuf_addf(out, "; needs %u more host%s of ", h, h == 1 ? "" : "s");
        kf_place_res(out, host_shape);
    }
}
