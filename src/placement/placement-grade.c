/* placement-grade.c: the grade table (reference §3.7), picking a grade from
 * what a cluster demands, and grade shifting with hysteresis and a fleet
 * limit (contract in kfleet/grade.h; the model in
 * docs/internals/placement.md).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/grade.h"
#include "kfleet/strbuf.h"

static const char *const grade_names[KF_GRADE_COUNT] = { "G0", "G1", "G2", "G3", "G4", "G5" };

const char *kf_grade_name(int grade)
{
    if (grade < 0 || grade >= KF_GRADE_COUNT)
        return "none";
    return grade_names[grade];
}

int kf_grade_parse(const char *s)
{
    if (!s || (s[0] != 'G' && s[0] != 'g') || s[1] < '0' || s[1] > '5' || s[2])
        return -EINVAL;
    return s[1] - '0';
}

static int64_t gib_tenths(int tenths)
{
    /* 10.7 GiB -> 10957 MiB: whole MiB so that JSON dumps stay readable. */
    return (int64_t)llround(tenths * 1024.0 / 10.0) * KF_MIB;
}

static void set_component(struct kf_component *c, const char *name, unsigned replicas,
                          enum kf_spread spread, int64_t cpu_milli, int64_t mem_bytes)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->replicas = replicas;
    c->spread = spread;
    c->req.cpu_milli = cpu_milli;
    c->req.mem_bytes = mem_bytes;
}

/* Reference §3.7. Total control-plane request per grade (CPU cores, GiB):
 * 1/4, 4/16, 8/32, 16/64, 32/128, 64/256, split apiserver 50 %, etcd 30 %
 * (three members), the rest 20 %: kube-controller-manager 2 x 20 %,
 * kube-scheduler 2 x 15 % (leader-elected standbys in another zone) and
 * cp-addons (cloud-controller-manager, konnectivity, ...) 30 %. G0 is half
 * of the reference's proposal (2/8): real 1.37 control planes of that shape
 * use 0.16 cores and 1.1 GiB at rest and 0.34 cores under load
 * (docs/BENCHMARKS.md, bench/provision), so 2/8 kept a unit's water level
 * at 6-7x what its G0 guests use; 1/4 still leaves each member room to
 * grow to the grade's bounds (apiserver 250 m / 1 GiB against 300 MiB
 * measured). The larger grades were not measured at their bounds here. */
void kf_grade_table_default(struct kf_grade_table *t)
{
    static const struct {
        int64_t nodes, pods, qps;
        unsigned api_replicas;
        int api_cpu, api_mem_tenths; /* per replica: millicores, GiB/10 */
        int etcd_cpu, etcd_mem_tenths;
        int rest_cpu, rest_mem_tenths; /* total of kcm + scheduler + addons */
        int64_t quota_gib;
    } rows[KF_GRADE_COUNT] = {
        { 10, 1100, 50, 2, 250, 10, 100, 4, 200, 8, 8 },
        { 100, 11000, 200, 2, 1000, 40, 400, 16, 800, 32, 8 },
        { 250, 27500, 500, 2, 2000, 80, 800, 32, 1600, 64, 8 },
        { 500, 55000, 1000, 3, 2700, 107, 1600, 64, 3200, 128, 8 },
        { 3000, 150000, 2000, 3, 5300, 213, 3200, 128, 6400, 256, 8 },
        { 5000, 150000, KF_GRADE_UNBOUNDED, 6, 5300, 213, 6400, 256, 12800, 512, 16 },
    };

    memset(t, 0, sizeof(*t));
    for (int g = 0; g < KF_GRADE_COUNT; g++) {
        struct kf_grade_spec *s = &t->grades[g];
        int64_t rest_cpu = rows[g].rest_cpu, rest_mem = gib_tenths(rows[g].rest_mem_tenths);

        s->max_nodes = rows[g].nodes;
        s->max_pods = rows[g].pods;
        s->max_qps = rows[g].qps;
        s->min_zones = 3;
        s->etcd_quota_bytes = rows[g].quota_gib * KF_GIB;
        s->n_components = 5;
        set_component(&s->components[0], "etcd", 3, KF_SPREAD_ONE_PER_ZONE, rows[g].etcd_cpu,
                      gib_tenths(rows[g].etcd_mem_tenths));
        set_component(&s->components[1], "kube-apiserver", rows[g].api_replicas, KF_SPREAD_ZONES,
                      rows[g].api_cpu, gib_tenths(rows[g].api_mem_tenths));
        set_component(&s->components[2], "kube-controller-manager", 2, KF_SPREAD_ZONES,
                      rest_cpu * 20 / 100, rest_mem / KF_MIB * 20 / 100 * KF_MIB);
        set_component(&s->components[3], "kube-scheduler", 2, KF_SPREAD_ZONES, rest_cpu * 15 / 100,
                      rest_mem / KF_MIB * 15 / 100 * KF_MIB);
        set_component(&s->components[4], "cp-addons", 1, KF_SPREAD_ZONES, rest_cpu * 30 / 100,
                      rest_mem / KF_MIB * 30 / 100 * KF_MIB);
    }
}

int kf_grade_table_validate(const struct kf_grade_table *t, struct kf_strbuf *err)
{
    for (int g = 0; g < KF_GRADE_COUNT; g++) {
        const struct kf_grade_spec *s = &t->grades[g];

        if (s->max_nodes < 1 || s->max_pods < 1 || s->max_qps < 1)
            return kf_err(err, -EINVAL, "%s: maxNodes, maxPods and maxQPS must be >= 1",
                          kf_grade_name(g));
        if (g > 0) {
            const struct kf_grade_spec *p = &t->grades[g - 1];
            if (s->max_nodes < p->max_nodes || s->max_pods < p->max_pods || s->max_qps < p->max_qps)
                return kf_err(err, -EINVAL, "%s: bounds must not be lower than %s's",
                              kf_grade_name(g), kf_grade_name(g - 1));
        }
        if (s->min_zones < 1 || s->min_zones > 16)
            return kf_err(err, -EINVAL, "%s: minZones must be 1..16", kf_grade_name(g));
        if (s->etcd_quota_bytes < 0)
            return kf_err(err, -EINVAL, "%s: etcdQuota must not be negative", kf_grade_name(g));
        if (s->n_components < 1 || s->n_components > KF_GRADE_MAX_COMPONENTS)
            return kf_err(err, -EINVAL, "%s: needs 1..%d components", kf_grade_name(g),
                          KF_GRADE_MAX_COMPONENTS);
        for (unsigned i = 0; i < s->n_components; i++) {
            const struct kf_component *c = &s->components[i];

            if (!c->name[0])
                return kf_err(err, -EINVAL, "%s: component %u has no name", kf_grade_name(g), i);
            if (c->replicas < 1 || c->replicas > KF_GRADE_MAX_REPLICAS)
                return kf_err(err, -EINVAL, "%s: %s: replicas must be 1..%d", kf_grade_name(g),
                              c->name, KF_GRADE_MAX_REPLICAS);
            if (c->req.cpu_milli <= 0 || c->req.mem_bytes <= 0)
                return kf_err(err, -EINVAL, "%s: %s: cpu and memory requests must be > 0",
                              kf_grade_name(g), c->name);
            for (unsigned j = 0; j < i; j++)
                if (strcmp(s->components[j].name, c->name) == 0)
                    return kf_err(err, -EINVAL, "%s: component \"%s\" appears twice",
                                  kf_grade_name(g), c->name);
        }
    }
    return 0;
}

static bool fits(const struct kf_grade_spec *s, int64_t nodes, int64_t pods, int64_t qps,
                 double scale)
{
    /* scale 1.0: the bound itself; < 1.0: the hysteresis band below it. */
    if (nodes >= 0 && s->max_nodes != KF_GRADE_UNBOUNDED && nodes > (double)s->max_nodes * scale)
        return false;
    if (pods >= 0 && s->max_pods != KF_GRADE_UNBOUNDED && pods > (double)s->max_pods * scale)
        return false;
    if (qps >= 0 && s->max_qps != KF_GRADE_UNBOUNDED && qps > (double)s->max_qps * scale)
        return false;
    return true;
}

static int grade_for_dim(const struct kf_grade_table *t, int dim, int64_t v)
{
    if (v < 0)
        return KF_G0;
    for (int g = 0; g < KF_GRADE_COUNT; g++) {
        const struct kf_grade_spec *s = &t->grades[g];
        int64_t bound = dim == 0 ? s->max_nodes : dim == 1 ? s->max_pods : s->max_qps;
        if (bound == KF_GRADE_UNBOUNDED || v <= bound)
            return g;
    }
    return KF_GRADE_COUNT - 1;
}

int kf_grade_for(const struct kf_grade_table *t, int64_t nodes, int64_t pods, int64_t qps)
{
    int g = grade_for_dim(t, 0, nodes);

    g = KF_MAX(g, grade_for_dim(t, 1, pods));
    return KF_MAX(g, grade_for_dim(t, 2, qps));
}

int kf_grade_decide(const struct kf_grade_table *t, int explicit_grade, int64_t nodes, int64_t pods,
                    int64_t qps, struct kf_strbuf *reason)
{
    static const char *const dim_names[3] = { "nodes", "pods", "qps" };
    int64_t v[3] = { nodes, pods, qps };
    int best = -1, by = -1;

    if (explicit_grade >= 0 && explicit_grade < KF_GRADE_COUNT) {
        if (reason)
            kf_strbuf_addf(reason, "%s: set in spec", kf_grade_name(explicit_grade));
        return explicit_grade;
    }
    for (int d = 0; d < 3; d++) {
        int g;

        if (v[d] < 0)
            continue;
        g = grade_for_dim(t, d, v[d]);
        if (g > best) {
            best = g;
            by = d;
        }
    }
    if (best < 0)
        best = KF_G0;
    if (reason) {
        if (by < 0) {
            kf_strbuf_addf(reason, "%s: nothing known about the cluster's size", "G0");
        } else if (best == KF_G0) {
            kf_strbuf_addf(reason, "G0: %lld %s <= %lld", (long long)v[by], dim_names[by],
                           (long long)(by == 0   ? t->grades[0].max_nodes
                                       : by == 1 ? t->grades[0].max_pods
                                                 : t->grades[0].max_qps));
        } else {
            const struct kf_grade_spec *lower = &t->grades[best - 1];
            int64_t bound = by == 0 ? lower->max_nodes : by == 1 ? lower->max_pods : lower->max_qps;
            kf_strbuf_addf(reason, "%s: %lld %s > %lld (%s)", kf_grade_name(best), (long long)v[by],
                           dim_names[by], (long long)bound, kf_grade_name(best - 1));
        }
    }
    return best;
}

struct kf_res kf_grade_total(const struct kf_grade_spec *g)
{
    struct kf_res r = { 0, 0 };

    for (unsigned i = 0; i < g->n_components; i++) {
        r.cpu_milli += g->components[i].req.cpu_milli * g->components[i].replicas;
        r.mem_bytes += g->components[i].req.mem_bytes * g->components[i].replicas;
    }
    return r;
}

unsigned kf_grade_members(const struct kf_grade_spec *g)
{
    unsigned n = 0;

    for (unsigned i = 0; i < g->n_components; i++)
        n += g->components[i].replicas;
    return n;
}

/* --- shifting -------------------------------------------------------------- */

void kf_grade_shift_policy_default(struct kf_grade_shift_policy *p)
{
    p->up_hold_ms = 10 * 60 * 1000;
    p->down_hold_ms = 24 * 3600 * 1000LL;
    p->down_margin = 0.30;
    p->max_in_flight = 10;
}

int kf_grade_shift_target(const struct kf_grade_table *t, const struct kf_grade_shift_policy *p,
                          int current, int64_t nodes, int64_t pods, int64_t qps)
{
    int demanded = kf_grade_for(t, nodes, pods, qps);
    double scale = 1.0 - KF_MIN(KF_MAX(p->down_margin, 0.0), 0.9);

    if (current < 0 || current >= KF_GRADE_COUNT || demanded >= current)
        return demanded;
    for (int g = demanded; g < current; g++)
        if (fits(&t->grades[g], nodes, pods, qps, scale))
            return g;
    return current;
}

static void add_duration(struct kf_strbuf *sb, int64_t ms)
{
    int64_t s = ms / 1000;

    if (s >= 3600 && s % 3600 == 0)
        kf_strbuf_addf(sb, "%lldh", (long long)(s / 3600));
    else if (s >= 3600)
        kf_strbuf_addf(sb, "%lldh%lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    else if (s >= 60)
        kf_strbuf_addf(sb, "%lldm", (long long)(s / 60));
    else
        kf_strbuf_addf(sb, "%llds", (long long)s);
}

enum kf_grade_move kf_grade_shift_decide(const struct kf_grade_shift_policy *p, int current,
                                         int target, int64_t held_ms, bool in_window,
                                         struct kf_strbuf *reason)
{
    const char *to = kf_grade_name(target);

    if (target == current) {
        if (reason)
            kf_strbuf_addf(reason, "stays %s", kf_grade_name(current));
        return KF_GRADE_STAY;
    }
    if (target > current) {
        if (held_ms >= p->up_hold_ms) {
            if (reason) {
                kf_strbuf_addf(reason, "up to %s: demand held ", to);
                add_duration(reason, held_ms);
            }
            return KF_GRADE_UP;
        }
        if (reason) {
            kf_strbuf_addf(reason, "up to %s once the demand has held ", to);
            add_duration(reason, p->up_hold_ms);
            kf_strbuf_addstr(reason, " (held ");
            add_duration(reason, held_ms);
            kf_strbuf_addstr(reason, ")");
        }
        return KF_GRADE_WAIT;
    }
    if (held_ms < p->down_hold_ms) {
        if (reason) {
            kf_strbuf_addf(reason, "down to %s once the demand has held ", to);
            add_duration(reason, p->down_hold_ms);
            kf_strbuf_addstr(reason, " (held ");
            add_duration(reason, held_ms);
            kf_strbuf_addstr(reason, ")");
        }
        return KF_GRADE_WAIT;
    }
    if (!in_window) {
        if (reason)
            kf_strbuf_addf(reason, "down to %s waits for the maintenance window", to);
        return KF_GRADE_WAIT;
    }
    if (reason) {
        kf_strbuf_addf(reason, "down to %s in the maintenance window: demand held ", to);
        add_duration(reason, held_ms);
    }
    return KF_GRADE_DOWN;
}

static int cmp_cand(const void *a, const void *b)
{
    const struct kf_grade_shift_cand *x = a, *y = b;
    bool xu = x->target > x->current, yu = y->target > y->current;
    int c;

    if (xu != yu)
        return xu ? -1 : 1;
    if (x->held_ms != y->held_ms)
        return x->held_ms > y->held_ms ? -1 : 1;
    c = strcmp(x->name ? x->name : "", y->name ? y->name : "");
    return c;
}

unsigned kf_grade_shift_select(const struct kf_grade_shift_policy *p, unsigned in_flight,
                               struct kf_grade_shift_cand *c, size_t n)
{
    unsigned room = in_flight >= p->max_in_flight ? 0 : p->max_in_flight - in_flight, chosen = 0;

    if (n > 1)
        qsort(c, n, sizeof(*c), cmp_cand);
    for (size_t i = 0; i < n; i++) {
        c[i].go = chosen < room;
        if (c[i].go)
            chosen++;
    }
    return chosen;
}
