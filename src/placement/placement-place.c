/* placement-place.c: GuestCluster -> Unit. Filters with reasons an operator
 * can act on, weighted scores, deterministic ties, member binding on the
 * winner, and the explain view of the same decision.
 *
 * One decision (decide()):
 *   1. every unit runs the filters before HostFit (fast path: stops at the
 *      first failure; explain: runs all and writes every reason);
 *   2. units that pass are scored; cost and performance are normalised over
 *      these candidates;
 *   3. candidates are ranked: total score, then fewest clusters, then name;
 *   4. the members are bound on the first candidate where they fit
 *      (HostFit); the first that fits wins;
 *   5. if none does, every unit of the region is evaluated in full and the
 *      message names the closest one (the one whose first failure comes
 *      latest in the filter chain, then fewest failures, then smallest
 *      overshoot of its mark, then name) and why it failed.
 * kf_place and kf_place_explain share this code, so they always agree.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "placement/placement-internal.h"

void kf_placer_init(struct kf_placer *p, const struct kf_place_policy *policy)
{
    if (policy)
        p->policy = *policy;
    else
        kf_place_policy_default(&p->policy);
    p->scratch = kf_xcalloc(1, sizeof(struct kf_place_scratch));
}

void kf_placer_release(struct kf_placer *p)
{
    struct kf_place_scratch *s;

    if (!p || !p->scratch)
        return;
    s = p->scratch;
    free(s->ev);
    free(s->cand);
    free(s->delta);
    free(s->comp_on);
    free(s->mine);
    free(s->by_zone);
    free(s);
    p->scratch = NULL;
}

struct kf_place_scratch *kf_place_scratch(struct kf_placer *p)
{
    if (!p->scratch)
        p->scratch = kf_xcalloc(1, sizeof(struct kf_place_scratch));
    return p->scratch;
}

static bool has_str(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] && strcmp(list[i], s) == 0)
            return true;
    return false;
}

static double unit_cost(const struct kf_place_unit *u)
{
    return u->cost_per_core > 0 ? u->cost_per_core : 1.0;
}

static double unit_perf(const struct kf_place_unit *u)
{
    return u->performance > 0 ? u->performance : 1.0;
}

static void sep(struct kf_strbuf *sb)
{
    if (sb->len)
        kf_strbuf_addstr(sb, "; ");
}

/* Why a unit fails the water mark for one resource (what: "cpu",
 * "memory"), if reasons is given: "cpu would reach 91 % (mark 85 %), 80 %
 * now". */
static void water_reason(struct kf_strbuf *reasons, const char *what, double after, double now,
                         double mark)
{
    if (!reasons)
        return;
    sep(reasons);
    kf_strbuf_addf(reasons, "%s would reach ", what);
    kf_place_pct(reasons, after, mark);
    kf_strbuf_addstr(reasons, " (mark ");
    kf_place_pct(reasons, mark, -1);
    kf_strbuf_addstr(reasons, "), ");
    kf_place_pct(reasons, now, mark);
    kf_strbuf_addstr(reasons, " now");
}

/* Filter Region: the unit is in the cluster's region. */
static bool region_ok(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                      struct kf_strbuf *reasons)
{
    if (c->region && u->region && strcmp(c->region, u->region) == 0)
        return true;
    if (reasons) {
        sep(reasons);
        kf_strbuf_addf(reasons, "unit is in region %s, the cluster in %s",
                       u->region ? u->region : "(none)", c->region ? c->region : "(none)");
    }
    return false;
}

/* Filter Unit: the cluster is not pinned elsewhere, does not avoid the
 * unit, and its unitSelector matches. */
static bool unit_ok(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                    struct kf_strbuf *reasons)
{
    bool pinned_elsewhere = c->unit && strcmp(c->unit, u->name) != 0;
    bool avoided = has_str(c->avoid_units, c->n_avoid_units, u->name);

    if (!pinned_elsewhere && !avoided && (!c->unit_ok || c->unit_ok(u, c->unit_ok_ctx)))
        return true;
    if (reasons) {
        sep(reasons);
        if (pinned_elsewhere)
            kf_strbuf_addf(reasons, "the cluster is pinned to unit %s", c->unit);
        else if (avoided)
            kf_strbuf_addstr(reasons, "the cluster avoids this unit");
        else
            kf_strbuf_addf(reasons, "unit's labels do not match the cluster's unitSelector%s%s",
                           c->unit_ok_what ? " " : "", c->unit_ok_what ? c->unit_ok_what : "");
    }
    return false;
}

/* Filter Compliance: the unit or its region carries each of the cluster's tags. */
static bool compliance_ok(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                          struct kf_strbuf *reasons)
{
    for (size_t i = 0; i < c->n_compliance; i++) {
        if (has_str(u->compliance, u->n_compliance, c->compliance[i]) ||
            has_str(u->region_compliance, u->n_region_compliance, c->compliance[i]))
            continue;
        if (reasons) {
            sep(reasons);
            kf_strbuf_addf(reasons, "neither the unit nor region %s carries compliance tag \"%s\"",
                           u->region ? u->region : "(none)", c->compliance[i]);
        }
        return false;
    }
    return true;
}

/* Filter Features: the unit offers every feature the cluster needs, and is
 * not reserved for clusters that need a feature this one does not. */
static bool features_ok(const struct kf_place_policy *pol, const struct kf_place_unit *u,
                        const struct kf_place_cluster *c, struct kf_strbuf *reasons)
{
    for (size_t i = 0; i < c->n_features; i++) {
        if (has_str(u->features, u->n_features, c->features[i]))
            continue;
        if (reasons) {
            sep(reasons);
            kf_strbuf_addf(reasons, "unit lacks feature \"%s\" (the cluster's profile needs it)",
                           c->features[i]);
        }
        return false;
    }
    for (unsigned i = 0; i < pol->n_exclusive; i++) {
        const char *f = pol->exclusive_features[i];
        if (!f || !has_str(u->features, u->n_features, f) || has_str(c->features, c->n_features, f))
            continue;
        if (reasons) {
            sep(reasons);
            kf_strbuf_addf(reasons, "unit is reserved for clusters that need \"%s\"", f);
        }
        return false;
    }
    return true;
}

/* Filter Quota: the unit's limits on clusters and guest nodes. */
static bool quota_ok(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                     struct kf_strbuf *reasons)
{
    if (u->max_clusters && u->clusters + 1 > u->max_clusters) {
        if (reasons) {
            sep(reasons);
            kf_strbuf_addf(reasons, "unit is at its quota of %u clusters", u->max_clusters);
        }
        return false;
    }
    if (u->max_nodes > 0 && u->nodes + KF_MAX(c->expected_nodes, 0) > u->max_nodes) {
        if (reasons) {
            sep(reasons);
            kf_strbuf_addf(reasons, "unit would serve %lld guest nodes, over its quota of %lld",
                           (long long)(u->nodes + c->expected_nodes), (long long)u->max_nodes);
        }
        return false;
    }
    return true;
}

/* Filter GradeRatio: the unit's limits on the share of clusters of a grade (or above). */
static bool grade_ratio_ok(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                           struct kf_strbuf *reasons)
{
    for (unsigned i = 0; i < u->n_ratios && i < KF_PLACE_MAX_RATIOS; i++) {
        const struct kf_place_ratio *r = &u->ratios[i];
        unsigned count = 0, total = u->clusters + 1, limit;

        if (!(c->grade == r->grade || (r->or_above && c->grade > r->grade)))
            continue;
        for (int g = 0; g < KF_GRADE_COUNT; g++)
            if (g == r->grade || (r->or_above && g > r->grade))
                count += u->by_grade[g];
        count++;
        limit = (unsigned)KF_MAX(1.0, floor(r->max_fraction * total + 1e-9));
        if (count <= limit)
            continue;
        if (reasons) {
            sep(reasons);
            kf_strbuf_addf(reasons,
                           "unit would hold %u clusters of %s%s out of %u, over its limit "
                           "of ",
                           count, kf_grade_name(r->grade), r->or_above ? " or above" : "", total);
            kf_place_pct(reasons, r->max_fraction, -1);
        }
        return false;
    }
    return true;
}

/* Filter Zones: enough usable zones for the grade's shape. */
/* Whether a host of u says it lacks c's Kubernetes release (so the zones
 * counted were fewer for that). */
static bool lacks_release(const struct kf_place_unit *u, const struct kf_place_cluster *c)
{
    for (size_t i = 0; c->k8s_minor && c->k8s_minor < 64 && i < u->n_hosts; i++)
        if (u->hosts[i].k8s_reported && !((u->hosts[i].k8s_minors >> c->k8s_minor) & 1u))
            return true;
    return false;
}

static bool zones_ok(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                     struct kf_strbuf *reasons)
{
    bool usable[KF_PLACE_MAX_ZONES];
    unsigned n_usable = kf_place_usable_zones(u, c, usable);

    if (n_usable >= c->shape->min_zones)
        return true;
    if (reasons) {
        sep(reasons);
        if (n_usable == 0 && c->zones)
            kf_strbuf_addstr(reasons, "unit has no ready, schedulable host in the cluster's "
                                      "zones");
        else if (n_usable == 0)
            kf_strbuf_addstr(reasons, "unit has no ready, schedulable host");
        else
            kf_strbuf_addf(reasons, "unit has %u usable zone%s%s, grade %s needs %u", n_usable,
                           n_usable == 1 ? "" : "s", c->zones ? " among the cluster's" : "",
                           kf_grade_name(c->grade), c->shape->min_zones);
        if (lacks_release(u, c))
            kf_strbuf_addf(reasons, " (counting only hosts that hold Kubernetes 1.%u)",
                           c->k8s_minor);
    }
    return false;
}

/* The unit's water levels now and after req, into e. */
static void water_levels(const struct kf_place_unit *u, struct kf_res req, struct place_eval *e)
{
    e->cpu_now = u->capacity.cpu_milli > 0
                     ? (double)u->allocated.cpu_milli / (double)u->capacity.cpu_milli
                     : 0;
    e->mem_now = u->capacity.mem_bytes > 0
                     ? (double)u->allocated.mem_bytes / (double)u->capacity.mem_bytes
                     : 0;
    e->cpu_after = u->capacity.cpu_milli > 0 ? (double)(u->allocated.cpu_milli + req.cpu_milli) /
                                                   (double)u->capacity.cpu_milli
                                             : INFINITY;
    e->mem_after = u->capacity.mem_bytes > 0 ? (double)(u->allocated.mem_bytes + req.mem_bytes) /
                                                   (double)u->capacity.mem_bytes
                                             : INFINITY;
}

/* The filters before HostFit. Returns with e->failed set; reasons (may be
 * NULL) gets a sentence per failure. */
static void eval_filters(const struct kf_place_policy *pol, const struct kf_place_unit *u,
                         const struct kf_place_cluster *c, struct kf_res req, bool all,
                         struct place_eval *e, struct kf_strbuf *reasons)
{
#define CHECK(ok, f)                \
    do {                            \
        if (!(ok)) {                \
            e->failed |= 1u << (f); \
            if (!all)               \
                return;             \
        }                           \
    } while (0)

    memset(e, 0, sizeof(*e));
    e->mark = kf_place_mark(u, pol);
    CHECK(region_ok(u, c, reasons), KF_FILTER_REGION);
    CHECK(unit_ok(u, c, reasons), KF_FILTER_UNIT);
    if (u->cordoned && reasons) {
        sep(reasons);
        kf_strbuf_addstr(reasons, "unit is cordoned");
    }
    CHECK(!u->cordoned, KF_FILTER_CORDON);
    CHECK(compliance_ok(u, c, reasons), KF_FILTER_COMPLIANCE);
    CHECK(features_ok(pol, u, c, reasons), KF_FILTER_FEATURES);
    CHECK(quota_ok(u, c, reasons), KF_FILTER_QUOTA);
    CHECK(grade_ratio_ok(u, c, reasons), KF_FILTER_GRADE_RATIO);
    CHECK(zones_ok(u, c, reasons), KF_FILTER_ZONES);
    water_levels(u, req, e);
    /* The admission rule, in integers: requested <= mark x allocatable. */
    if (u->allocated.cpu_milli + req.cpu_milli >
        (int64_t)((double)u->capacity.cpu_milli * e->mark)) {
        water_reason(reasons, "cpu", e->cpu_after, e->cpu_now, e->mark);
        CHECK(false, KF_FILTER_WATER_CPU);
    }
    if (u->allocated.mem_bytes + req.mem_bytes >
        (int64_t)((double)u->capacity.mem_bytes * e->mark)) {
        water_reason(reasons, "memory", e->mem_after, e->mem_now, e->mark);
        CHECK(false, KF_FILTER_WATER_MEMORY);
    }
    e->prefilter_ok = e->failed == 0;
#undef CHECK
}

static int permille(double x)
{
    if (x <= 0 || isnan(x))
        return 0;
    if (x >= 1)
        return 1000;
    return (int)floor(x * 1000 + 0.5);
}

static void score(const struct kf_place_policy *pol, const struct kf_place_unit *u,
                  struct place_eval *e, double min_cost, double max_perf)
{
    double used = (e->cpu_after + e->mem_after) / 2;
    long sum = 0, wsum = 0;

    e->score[KF_SCORE_SPREAD] = permille(1 - used);
    e->score[KF_SCORE_DENSITY] = permille(used);
    e->score[KF_SCORE_BALANCE] = permille(1 - fabs(e->cpu_after - e->mem_after) / 2);
    e->score[KF_SCORE_COST] = permille(min_cost / unit_cost(u));
    e->score[KF_SCORE_PERFORMANCE] = permille(unit_perf(u) / max_perf);
    e->score[KF_SCORE_QUOTA] =
        u->max_clusters ? permille((double)((long)u->max_clusters - (long)u->clusters - 1) /
                                   (double)u->max_clusters)
                        : 1000;
    for (int i = 0; i < KF_SCORE_COUNT; i++) {
        sum += (long)pol->weights[i] * e->score[i];
        wsum += pol->weights[i];
    }
    e->total = wsum ? (int)(sum / wsum) : 0;
}

struct rank_ctx {
    const struct kf_place_unit *units;
    const struct place_eval *ev;
};

static int cmp_cand(const void *a, const void *b, void *arg)
{
    const struct rank_ctx *r = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    if (r->ev[x].total != r->ev[y].total)
        return r->ev[x].total > r->ev[y].total ? -1 : 1;
    if (r->units[x].clusters != r->units[y].clusters)
        return r->units[x].clusters < r->units[y].clusters ? -1 : 1;
    return strcmp(r->units[x].name, r->units[y].name);
}

static double overshoot(const struct place_eval *e)
{
    return KF_MAX(KF_MAX(e->cpu_after - e->mark, e->mem_after - e->mark), 0.0);
}

/* Is unit x (evaluation a) closer to taking the cluster than y (b)? The
 * unit that got further down the filter chain (its first failure comes
 * later) is closer; then fewer failures, then the smaller overshoot of its
 * mark, then the name. */
static bool closer(const struct place_eval *a, const struct place_eval *b,
                   const struct kf_place_unit *x, const struct kf_place_unit *y)
{
    int fa = __builtin_ctz(a->failed), fb = __builtin_ctz(b->failed);
    int na = __builtin_popcount(a->failed), nb = __builtin_popcount(b->failed);

    if (fa != fb)
        return fa > fb;
    if (na != nb)
        return na < nb;
    if (overshoot(a) != overshoot(b))
        return overshoot(a) < overshoot(b);
    return strcmp(x->name, y->name) < 0;
}

static const char *tally_word(int f)
{
    switch (f) {
    case KF_FILTER_CORDON:
        return "cordoned";
    case KF_FILTER_COMPLIANCE:
        return "missing a compliance tag";
    case KF_FILTER_FEATURES:
        return "without the features";
    case KF_FILTER_QUOTA:
        return "at quota";
    case KF_FILTER_GRADE_RATIO:
        return "at a grade ratio limit";
    case KF_FILTER_ZONES:
        return "short of zones";
    case KF_FILTER_WATER_CPU:
    case KF_FILTER_WATER_MEMORY:
        return "without headroom";
    default:
        return "with no host that fits";
    }
}

static void fail_message(struct kf_placer *p, const struct kf_place_unit *units, size_t n,
                         const struct kf_place_cluster *c, struct kf_res req, struct kf_strbuf *msg)
{
    struct kf_place_scratch *s = kf_place_scratch(p);
    struct kf_strbuf why = KF_STRBUF_INIT;
    long best = -1;
    unsigned in_scope = 0, tally[KF_FILTER_COUNT] = { 0 };
    const char *region = c->region ? c->region : "(none)";

    for (size_t i = 0; i < n; i++) {
        struct place_eval *e = &s->ev[i];
        bool hosts_failed = e->hosts_tried;

        if (!c->region || !units[i].region || strcmp(c->region, units[i].region) != 0)
            continue; /* out of scope; explain has evaluated it already */
        eval_filters(&p->policy, &units[i], c, req, true, e, NULL);
        if (hosts_failed) {
            e->failed |= 1u << KF_FILTER_HOSTS;
            e->hosts_tried = true;
        }
        if (e->failed & ((1u << KF_FILTER_REGION) | (1u << KF_FILTER_UNIT)))
            continue;
        in_scope++;
        tally[__builtin_ctz(e->failed)]++;
        if (best < 0 || closer(e, &s->ev[best], &units[i], &units[best]))
            best = (long)i;
    }
    if (best < 0) {
        if (c->unit)
            kf_strbuf_addf(msg, "no unit %s in region %s can take the cluster", c->unit, region);
        else if (c->unit_ok)
            kf_strbuf_addf(msg, "no unit in region %s matches the cluster's unitSelector%s%s",
                           region, c->unit_ok_what ? " " : "",
                           c->unit_ok_what ? c->unit_ok_what : "");
        else
            kf_strbuf_addf(msg, "no unit in region %s", region);
        return;
    }
    {
        const struct place_eval *e = &s->ev[best];
        const struct kf_place_unit *u = &units[best];
        uint32_t water = (1u << KF_FILTER_WATER_CPU) | (1u << KF_FILTER_WATER_MEMORY);

        if ((e->failed & ~water) == 0) {
            bool cpu = e->cpu_after - e->mark >= e->mem_after - e->mark;
            kf_strbuf_addf(msg, "no unit in %s has headroom for grade %s: best is %s at ", region,
                           kf_grade_name(c->grade), u->name);
            kf_place_pct(msg, cpu ? e->cpu_now : e->mem_now, e->mark);
            kf_strbuf_addf(msg, " %s, would reach ", cpu ? "cpu" : "memory");
            kf_place_pct(msg, cpu ? e->cpu_after : e->mem_after, e->mark);
            kf_strbuf_addstr(msg, " (mark ");
            kf_place_pct(msg, e->mark, -1);
            kf_strbuf_addstr(msg, ")");
        } else {
            struct place_eval tmp;
            unsigned nb = 0;
            struct kf_place_binding *scratch_b =
                kf_xmalloc(sizeof(struct kf_place_binding) * KF_GRADE_MAX_MEMBERS);

            eval_filters(&p->policy, u, c, req, true, &tmp, &why);
            if (e->failed & (1u << KF_FILTER_HOSTS)) {
                sep(&why);
                kf_place_bind(s, &p->policy, u, c, scratch_b, &nb, &why);
            }
            free(scratch_b);
            kf_strbuf_addf(msg, "no unit in %s can take grade %s: best is %s: %s", region,
                           kf_grade_name(c->grade), u->name, why.buf);
        }
    }
    if (in_scope > 1) {
        bool first = true;

        kf_strbuf_addf(msg, "; %u units in %s: ", in_scope, region);
        for (int f = 0; f < KF_FILTER_COUNT; f++) {
            unsigned count = tally[f];
            if (f == KF_FILTER_WATER_CPU) {
                count += tally[KF_FILTER_WATER_MEMORY];
            } else if (f == KF_FILTER_WATER_MEMORY) {
                continue;
            }
            if (!count)
                continue;
            kf_strbuf_addf(msg, "%s%u %s", first ? "" : ", ", count, tally_word(f));
            first = false;
        }
    }
    kf_strbuf_release(&why);
}

static void success_message(const struct kf_place_policy *pol, const struct kf_place_unit *u,
                            const struct place_eval *e, struct kf_strbuf *msg)
{
    bool first = true;

    kf_strbuf_addf(msg, "placed in %s: score %.1f (", u->name, e->total / 10.0);
    for (int i = 0; i < KF_SCORE_COUNT; i++) {
        if (!pol->weights[i])
            continue;
        kf_strbuf_addf(msg, "%s%s %.1f", first ? "" : ", ", kf_place_score_name(i),
                       e->score[i] / 10.0);
        first = false;
    }
    kf_strbuf_addstr(msg, "); cpu ");
    kf_place_pct(msg, e->cpu_now, -1);
    kf_strbuf_addstr(msg, " -> ");
    kf_place_pct(msg, e->cpu_after, -1);
    kf_strbuf_addstr(msg, ", memory ");
    kf_place_pct(msg, e->mem_now, -1);
    kf_strbuf_addstr(msg, " -> ");
    kf_place_pct(msg, e->mem_after, -1);
    kf_strbuf_addstr(msg, " (mark ");
    kf_place_pct(msg, e->mark, -1);
    kf_strbuf_addstr(msg, ")");
}

static void set_message(struct kf_place_result *ret, const struct kf_strbuf *sb)
{
    snprintf(ret->message, sizeof(ret->message), "%s", sb->buf);
}

/* What is wrong with c's pinned members, or NULL. */
static const char *pins_problem(const struct kf_place_unit *units, size_t n,
                                const struct kf_place_cluster *c)
{
    const struct kf_place_unit *pu = NULL;

    for (size_t i = 0; c->unit && i < n; i++)
        if (units[i].name && strcmp(units[i].name, c->unit) == 0)
            pu = &units[i];
    if (!c->unit || !c->pins)
        return "pinned members need the cluster pinned to their unit";
    if (!pu)
        return "the unit of the pinned members is not among the units";
    for (unsigned i = 0; i < c->n_pins; i++) {
        const struct kf_place_pin *pin = &c->pins[i];

        if (pin->component >= c->shape->n_components ||
            pin->replica >= c->shape->components[pin->component].replicas)
            return "a pinned member is not part of the shape";
        if (pin->host >= pu->n_hosts)
            return "a pinned member's host is not in the unit";
        for (unsigned j = 0; j < i; j++)
            if (c->pins[j].component == pin->component && c->pins[j].replica == pin->replica)
                return "a member is pinned twice";
    }
    return NULL;
}

/* Checks c's shape and pins: 0, or -EINVAL with the message in ret. */
static int check_cluster(const struct kf_place_unit *units, size_t n,
                         const struct kf_place_cluster *c, struct kf_place_result *ret)
{
    const char *bad;

    if (!c->shape || c->shape->n_components < 1 ||
        c->shape->n_components > KF_GRADE_MAX_COMPONENTS) {
        snprintf(ret->message, sizeof(ret->message), "cluster %s has no control-plane shape",
                 c->name ? c->name : "");
        return -EINVAL;
    }
    bad = c->n_pins ? pins_problem(units, n, c) : NULL;
    if (bad) {
        snprintf(ret->message, sizeof(ret->message), "cluster %s: %s", c->name ? c->name : "", bad);
        return -EINVAL;
    }
    return 0;
}

/* Runs the filters on every unit (all of them and their reasons when
 * explaining); the units that pass go to s->cand, with the lowest cost and
 * the best performance among them. Returns their number. */
static size_t filter_units(struct kf_placer *p, struct kf_place_scratch *s,
                           const struct kf_place_unit *units, size_t n,
                           const struct kf_place_cluster *c, struct kf_res req,
                           struct kf_place_explain *ex, double *min_cost, double *max_perf)
{
    size_t n_cand = 0;

    for (size_t i = 0; i < n; i++) {
        struct place_eval *e = &s->ev[i];
        struct kf_strbuf rsb = KF_STRBUF_INIT;

        if (ex) {
            eval_filters(&p->policy, &units[i], c, req, true, e, &rsb);
            snprintf(ex->verdicts[i].reason, sizeof(ex->verdicts[i].reason), "%s", rsb.buf);
            kf_strbuf_release(&rsb);
        } else if (!c->region || !units[i].region || strcmp(c->region, units[i].region) != 0) {
            memset(e, 0, sizeof(*e)); /* cheap reject: most units are elsewhere */
            e->failed = 1u << KF_FILTER_REGION;
        } else {
            eval_filters(&p->policy, &units[i], c, req, false, e, NULL);
        }
        if (!e->prefilter_ok)
            continue;
        s->cand[n_cand++] = i;
        *min_cost = KF_MIN(*min_cost, unit_cost(&units[i]));
        *max_perf = KF_MAX(*max_perf, unit_perf(&units[i]));
    }
    return n_cand;
}

/* Binds c on unit u into scratch bindings for the explanation only: false
 * with the reason in verdict when no host takes a member. */
static bool explain_bind(struct kf_placer *p, struct kf_place_scratch *s,
                         const struct kf_place_unit *u, const struct kf_place_cluster *c,
                         struct kf_place_verdict *verdict)
{
    struct kf_place_binding *tmp = kf_xmalloc(sizeof(*tmp) * KF_GRADE_MAX_MEMBERS);
    struct kf_strbuf why = KF_STRBUF_INIT;
    unsigned nb = 0;
    bool ok = kf_place_bind(s, &p->policy, u, c, tmp, &nb, &why) == 0;

    if (!ok)
        snprintf(verdict->reason, sizeof(verdict->reason), "%s", why.buf);
    kf_strbuf_release(&why);
    free(tmp);
    return ok;
}

/* Binds the members on the best candidate whose hosts take them (when
 * explaining, tries the other candidates too): 0 with the unit in ret and
 * the message in msg, or -ENOSPC. */
static int bind_best(struct kf_placer *p, struct kf_place_scratch *s,
                     const struct kf_place_unit *units, size_t n_cand,
                     const struct kf_place_cluster *c, struct kf_place_explain *ex,
                     struct kf_place_result *ret, struct kf_strbuf *msg)
{
    int r = -ENOSPC;

    for (size_t k = 0; k < n_cand; k++) {
        size_t i = s->cand[k];
        struct place_eval *e = &s->ev[i];
        unsigned nb = 0;

        if (ret->unit >= 0 && !ex)
            break;
        e->hosts_tried = true;
        if (ret->unit >= 0) {
            /* explain: the remaining candidates show whether they would fit too */
            if (!explain_bind(p, s, &units[i], c, &ex->verdicts[i]))
                e->failed |= 1u << KF_FILTER_HOSTS;
            continue;
        }
        if (kf_place_bind(s, &p->policy, &units[i], c, ret->bindings, &nb, NULL) == 0) {
            ret->unit = (int)i;
            ret->n_bindings = nb;
            ret->score = e->total;
            success_message(&p->policy, &units[i], e, msg);
            r = 0;
        } else {
            e->failed |= 1u << KF_FILTER_HOSTS;
            if (ex)
                explain_bind(p, s, &units[i], c, &ex->verdicts[i]);
        }
    }
    return r;
}

/* Copies every unit's evaluation into its verdict. */
static void explain_verdicts(const struct kf_place_scratch *s, size_t n,
                             struct kf_place_explain *ex)
{
    for (size_t i = 0; i < n; i++) {
        struct kf_place_verdict *v = &ex->verdicts[i];
        const struct place_eval *e = &s->ev[i];

        v->unit = i;
        v->failed = e->failed;
        v->evaluated_hosts = e->hosts_tried;
        v->mark = e->mark;
        v->cpu_now = e->cpu_now;
        v->cpu_after = e->cpu_after;
        v->mem_now = e->mem_now;
        v->mem_after = e->mem_after;
        memcpy(v->score, e->score, sizeof(v->score));
        v->total = e->total;
    }
}

/* Places c on the best of units (and explains every unit into ex when given). */
static int decide(struct kf_placer *p, const struct kf_place_unit *units, size_t n,
                  const struct kf_place_cluster *c, struct kf_place_explain *ex,
                  struct kf_place_result *ret)
{
    struct kf_place_scratch *s = kf_place_scratch(p);
    struct kf_strbuf msg = KF_STRBUF_INIT;
    struct rank_ctx rc = { units, NULL };
    double min_cost = INFINITY, max_perf = 0;
    size_t n_cand;
    struct kf_res req;
    int r;

    ret->unit = -1;
    ret->score = 0;
    ret->n_bindings = 0;
    ret->message[0] = '\0';
    r = check_cluster(units, n, c, ret);
    if (r < 0)
        return r;
    req = kf_grade_total(c->shape);
    if (n > s->ev_alloc) {
        s->ev_alloc = KF_MAX(n, s->ev_alloc * 2);
        s->ev = kf_xrealloc(s->ev, s->ev_alloc * sizeof(*s->ev));
        s->cand = kf_xrealloc(s->cand, s->ev_alloc * sizeof(*s->cand));
    }
    rc.ev = s->ev;
    n_cand = filter_units(p, s, units, n, c, req, ex, &min_cost, &max_perf);
    for (size_t k = 0; k < n_cand; k++)
        score(&p->policy, &units[s->cand[k]], &s->ev[s->cand[k]], min_cost, max_perf);
    if (n_cand > 1)
        qsort_r(s->cand, n_cand, sizeof(*s->cand), cmp_cand, &rc);
    r = bind_best(p, s, units, n_cand, c, ex, ret, &msg);
    if (ex)
        explain_verdicts(s, n, ex);
    if (r < 0)
        fail_message(p, units, n, c, req, &msg);
    set_message(ret, &msg);
    kf_strbuf_release(&msg);
    return r;
}

int kf_place(struct kf_placer *p, const struct kf_place_unit *units, size_t n_units,
             const struct kf_place_cluster *c, struct kf_place_result *ret)
{
    return decide(p, units, n_units, c, NULL, ret);
}

int kf_place_explain(struct kf_placer *p, const struct kf_place_unit *units, size_t n_units,
                     const struct kf_place_cluster *c, struct kf_place_explain *ret)
{
    int r;

    memset(ret, 0, sizeof(*ret));
    ret->verdicts = kf_xcalloc(n_units ? n_units : 1, sizeof(*ret->verdicts));
    ret->n = n_units;
    r = decide(p, units, n_units, c, ret, &ret->result);
    ret->chosen = ret->result.unit;
    return r;
}

void kf_place_explain_release(struct kf_place_explain *e)
{
    if (!e)
        return;
    free(e->verdicts);
    e->verdicts = NULL;
    e->n = 0;
}

static void add_level(struct kf_strbuf *out, double now, double after, double mark)
{
    size_t start = out->len;

    kf_place_pct(out, now, mark);
    kf_strbuf_addstr(out, " -> ");
    if (isinf(after))
        kf_strbuf_addstr(out, "-");
    else
        kf_place_pct(out, after, mark);
    while (out->len - start < 16)
        kf_strbuf_addch(out, ' ');
}

void kf_place_explain_format(const struct kf_place_explain *e, const struct kf_place_unit *units,
                             const struct kf_place_cluster *c, const struct kf_place_policy *p,
                             struct kf_strbuf *out)
{
    struct kf_res req = c->shape ? kf_grade_total(c->shape) : (struct kf_res){ 0, 0 };
    size_t elsewhere = 0, name_w = 4;

    kf_strbuf_addf(out, "cluster %s: grade %s, requests ", c->name ? c->name : "",
                   kf_grade_name(c->grade));
    kf_place_res(out, req);
    kf_strbuf_addf(out, ", region %s\n", c->region ? c->region : "(none)");
    for (size_t i = 0; i < e->n; i++)
        if (!(e->verdicts[i].failed & (1u << KF_FILTER_REGION)))
            name_w = KF_MAX(name_w, strlen(units[i].name));
    kf_strbuf_addf(out, "%-*s  %-16s  %-16s  %-16s  %6s", (int)name_w, "UNIT", "VERDICT",
                   "CPU NOW -> AFTER", "MEM NOW -> AFTER", "SCORE");
    for (int s = 0; s < KF_SCORE_COUNT; s++)
        if (p->weights[s])
            kf_strbuf_addf(out, " %s(x%u)", kf_place_score_name(s), p->weights[s]);
    kf_strbuf_addch(out, '\n');
    for (size_t i = 0; i < e->n; i++) {
        const struct kf_place_verdict *v = &e->verdicts[i];
        const char *verdict = "fits";

        if (v->failed & (1u << KF_FILTER_REGION)) {
            elsewhere++;
            continue;
        }
        if ((int)i == e->chosen)
            verdict = "CHOSEN";
        else if (v->failed)
            verdict = kf_place_filter_name(__builtin_ctz(v->failed));
        kf_strbuf_addf(out, "%-*s  %-16s  ", (int)name_w, units[i].name, verdict);
        add_level(out, v->cpu_now, v->cpu_after, v->mark);
        kf_strbuf_addstr(out, "  ");
        add_level(out, v->mem_now, v->mem_after, v->mark);
        if (!(v->failed & ~(1u << KF_FILTER_HOSTS))) {
            kf_strbuf_addf(out, "  %6.1f", v->total / 10.0);
            for (int s = 0; s < KF_SCORE_COUNT; s++)
                if (p->weights[s])
                    kf_strbuf_addf(out, " %*.1f", (int)strlen(kf_place_score_name(s)) + 4,
                                   v->score[s] / 10.0);
        }
        kf_strbuf_addch(out, '\n');
        if (v->failed) {
            kf_strbuf_addf(out, "%-*s  failed:", (int)name_w, "");
            for (int f = 0; f < KF_FILTER_COUNT; f++)
                if (v->failed & (1u << f))
                    kf_strbuf_addf(out, " %s", kf_place_filter_name(f));
            kf_strbuf_addf(out, ": %s\n", v->reason);
        }
    }
    if (elsewhere)
        kf_strbuf_addf(out, "(%zu unit%s in other regions not shown)\n", elsewhere,
                       elsewhere == 1 ? "" : "s");
    kf_strbuf_addf(out, "decision: %s\n", e->result.message);
}

void kf_place_bindings_format(const struct kf_place_unit *u, const struct kf_place_cluster *c,
                              const struct kf_place_result *r, struct kf_strbuf *out)
{
    for (unsigned i = 0; i < r->n_bindings; i++) {
        const struct kf_place_binding *b = &r->bindings[i];
        const struct kf_component *comp = &c->shape->components[b->component];

        if (b->pinned) {
            kf_strbuf_addf(out, "%s-%u -> %s (zone %s, stays where it runs; cpu ", comp->name,
                           b->replica, u->hosts[b->host].name, u->zones[b->zone]);
            kf_place_pct(out, b->host_cpu_before, -1);
            kf_strbuf_addstr(out, " -> ");
            kf_place_pct(out, b->host_cpu_after, -1);
            kf_strbuf_addstr(out, ")\n");
            continue;
        }
        kf_strbuf_addf(out, "%s-%u -> %s (zone %s, %s; least allocated host: cpu ", comp->name,
                       b->replica, u->hosts[b->host].name, u->zones[b->zone],
                       comp->spread == KF_SPREAD_ONE_PER_ZONE
                           ? (b->spread_fallback ? "more replicas than zones" : "one per zone")
                           : "round-robin over zones");
        kf_place_pct(out, b->host_cpu_before, -1);
        kf_strbuf_addstr(out, " -> ");
        kf_place_pct(out, b->host_cpu_after, -1);
        kf_strbuf_addstr(out, ")\n");
    }
}
