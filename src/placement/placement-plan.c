/* placement-plan.c: capacity planning for `kfleet plan`: given a region's
 * units and a demand (500 x G1 + 40 x G3) and a host shape, how much the
 * existing units absorb, how many hosts they would need to absorb more, and
 * how many new units the rest needs, at each unit's water level.
 *
 * Planning runs the real placement (every filter, the scores, member
 * binding with the host mark) on copies of the units, so a plan never
 * promises what placement would then refuse. Biggest grades go first (they
 * are the hardest to fit). Steps:
 *   1. place each cluster on the existing units as they are;
 *   2. if max_unit_hosts allows, grow existing units one zone-set (one host
 *      per zone) at a time, least-loaded unit first, until the cluster fits;
 *   3. place the rest on new units of new_unit_hosts hosts over
 *      new_unit_zones zones, adding a unit whenever none takes the next one.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "placement/placement-internal.h"

#define PLAN_MAX_CLUSTERS 1000000
/* Hosts a plan may simulate beyond the existing ones (growth room of the
 * existing units and hosts of new units): what a plan allocates is
 * proportional to this, never to a number in the request. */
#define PLAN_MAX_HOSTS      1000000
#define PLAN_MAX_UNIT_HOSTS 10000

static const char *const new_zone_names[KF_PLACE_MAX_ZONES] = {
    "zone-1", "zone-2",  "zone-3",  "zone-4",  "zone-5",  "zone-6",  "zone-7",  "zone-8",
    "zone-9", "zone-10", "zone-11", "zone-12", "zone-13", "zone-14", "zone-15", "zone-16",
};

struct plan_work {
    struct kf_place_unit *units;
    size_t n, alloc;
    size_t n_existing;
    size_t *host_cap; /* room in each unit's host array */
    size_t host_cap_alloc;
};

static void add_hosts(struct kf_place_unit *u, unsigned count, struct kf_res shape)
{
    for (unsigned i = 0; i < count; i++) {
        struct kf_place_host *h = &u->hosts[u->n_hosts++];

        memset(h, 0, sizeof(*h));
        h->name = "(planned)";
        h->zone = i % u->n_zones;
        h->capacity = shape;
        h->ready = true;
        u->capacity.cpu_milli += shape.cpu_milli;
        u->capacity.mem_bytes += shape.mem_bytes;
    }
}

static void remove_hosts(struct kf_place_unit *u, unsigned count, struct kf_res shape)
{
    u->n_hosts -= count;
    u->capacity.cpu_milli -= shape.cpu_milli * count;
    u->capacity.mem_bytes -= shape.mem_bytes * count;
}

static size_t work_add(struct plan_work *w, const struct kf_place_unit *src, size_t host_room)
{
    struct kf_place_unit *u;

    KF_GROW(w->units, w->alloc, w->n);
    KF_GROW(w->host_cap, w->host_cap_alloc, w->n);
    u = &w->units[w->n];
    *u = *src;
    u->hosts = kf_xcalloc(src->n_hosts + host_room + 1, sizeof(*u->hosts));
    if (src->n_hosts)
        memcpy(u->hosts, src->hosts, src->n_hosts * sizeof(*u->hosts));
    w->host_cap[w->n] = src->n_hosts + host_room;
    return w->n++;
}

static void water_of(const struct kf_place_unit *u, double *cpu, double *mem)
{
    *cpu = u->capacity.cpu_milli > 0 ? (double)u->allocated.cpu_milli / u->capacity.cpu_milli : 0;
    *mem = u->capacity.mem_bytes > 0 ? (double)u->allocated.mem_bytes / u->capacity.mem_bytes : 0;
}

static int cmp_grow(const void *a, const void *b, void *arg)
{
    const struct plan_work *w = arg;
    const struct kf_place_unit *x = &w->units[*(const size_t *)a],
                               *y = &w->units[*(const size_t *)b];
    double xc, xm, yc, ym;

    water_of(x, &xc, &xm);
    water_of(y, &yc, &ym);
    if (KF_MAX(xc, xm) != KF_MAX(yc, ym))
        return KF_MAX(xc, xm) < KF_MAX(yc, ym) ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* One run of kf_plan: the units it places on (the region's, then new ones),
 * a line per unit, and the totals so far. */
struct plan {
    struct kf_placer *p;
    const struct kf_plan_request *req;
    unsigned zones, per_unit; /* of a new unit */
    struct plan_work w;
    struct kf_place_result *res;
    size_t *order; /* existing units, least loaded first */
    struct kf_plan_line *lines;
    size_t lines_alloc;
    uint64_t planned; /* hosts simulated beyond the existing ones */
    struct kf_plan_result out;
};

/* Checks the request; 0, the number of clusters it demands and the hosts
 * the existing units may grow by, or -EINVAL. */
static int plan_check(const struct kf_plan_request *req, unsigned zones, unsigned per_unit,
                      uint64_t *ret_total, uint64_t *ret_planned, struct kf_strbuf *err)
{
    uint64_t total = 0, planned = 0;

    if (!req->region || !req->grades)
        return kf_err(err, -EINVAL, "a plan needs a region and a grade table");
    if (req->host_shape.cpu_milli <= 0 || req->host_shape.mem_bytes <= 0)
        return kf_err(err, -EINVAL, "a plan needs the cpu and memory of a new host");
    if (zones < 1 || zones > KF_PLACE_MAX_ZONES || per_unit < zones || per_unit > 10000)
        return kf_err(err, -EINVAL,
                      "a new unit needs 1..%d zones and at least one host per zone (at most "
                      "10000 hosts)",
                      KF_PLACE_MAX_ZONES);
    for (size_t i = 0; i < req->n_demand; i++) {
        if (req->demand[i].grade < 0 || req->demand[i].grade >= KF_GRADE_COUNT)
            return kf_err(err, -EINVAL, "demand %zu: grade must be G0..G5", i);
        total += req->demand[i].count;
    }
    if (total > PLAN_MAX_CLUSTERS)
        return kf_err(err, -EINVAL, "a plan takes at most %d clusters", PLAN_MAX_CLUSTERS);
    if (req->max_unit_hosts > PLAN_MAX_UNIT_HOSTS)
        return kf_err(err, -EINVAL, "units may grow to at most %d hosts in a plan",
                      PLAN_MAX_UNIT_HOSTS);
    for (size_t i = 0; i < req->n_units; i++) {
        const struct kf_place_unit *u = &req->units[i];

        if (u->region && strcmp(u->region, req->region) == 0 && req->max_unit_hosts > u->n_hosts)
            planned += req->max_unit_hosts - u->n_hosts + u->n_zones;
    }
    if (planned > PLAN_MAX_HOSTS)
        return kf_err(err, -EINVAL,
                      "growing every unit of the region to %u hosts means simulating %llu hosts; a "
                      "plan simulates at most %d (ask for a smaller maxUnitHosts)",
                      req->max_unit_hosts, (unsigned long long)planned, PLAN_MAX_HOSTS);
    *ret_total = total;
    *ret_planned = planned;
    return 0;
}

/* Copies the region's units, with room for the hosts they may grow by, and
 * starts a line for each. */
static void plan_add_existing(struct plan *pl)
{
    const struct kf_plan_request *req = pl->req;
    struct plan_work *w = &pl->w;

    for (size_t i = 0; i < req->n_units; i++) {
        const struct kf_place_unit *u = &req->units[i];
        size_t room = 0;

        if (!u->region || strcmp(u->region, req->region) != 0)
            continue;
        if (req->max_unit_hosts > u->n_hosts)
            room = req->max_unit_hosts - u->n_hosts + u->n_zones;
        work_add(w, u, room);
    }
    w->n_existing = w->n;
    KF_GROW(pl->lines, pl->lines_alloc, w->n + 1);
    for (size_t i = 0; i < w->n; i++) {
        struct kf_plan_line *l = &pl->lines[i];

        memset(l, 0, sizeof(*l));
        l->name = kf_xstrdup(w->units[i].name);
        l->hosts_before = (unsigned)w->units[i].n_hosts;
        l->mark = kf_place_mark(&w->units[i], &pl->p->policy);
        water_of(&w->units[i], &l->cpu_before, &l->mem_before);
    }
    pl->res = kf_xmalloc(sizeof(*pl->res));
    pl->order = kf_xcalloc(w->n + 1, sizeof(*pl->order));
}

/* 1. places c on the existing units as they are (including hosts added so far). */
static bool place_existing(struct plan *pl, const struct kf_place_cluster *c)
{
    struct plan_work *w = &pl->w;

    if (!w->n_existing || kf_place(pl->p, w->units, w->n_existing, c, pl->res) != 0)
        return false;
    kf_place_commit(w->units, c, pl->res);
    pl->lines[pl->res->unit].absorbed[c->grade]++;
    if (pl->lines[pl->res->unit].hosts_added)
        pl->out.absorbed_grown++;
    else
        pl->out.absorbed_existing++;
    return true;
}

/* Grows existing unit ui one zone-set at a time until c fits or the unit is
 * at its limit; takes the hosts back when c does not fit. */
static bool grow_unit(struct plan *pl, size_t ui, const struct kf_place_cluster *c)
{
    const struct kf_plan_request *req = pl->req;
    struct kf_place_unit *u = &pl->w.units[ui];
    unsigned added = 0;

    if (u->cordoned || u->n_zones == 0)
        return false;
    while (u->n_hosts + u->n_zones <= req->max_unit_hosts &&
           u->n_hosts + u->n_zones <= pl->w.host_cap[ui]) {
        add_hosts(u, u->n_zones, req->host_shape);
        added += u->n_zones;
        if (kf_place(pl->p, u, 1, c, pl->res) == 0) {
            kf_place_commit(u, c, pl->res);
            pl->lines[ui].absorbed[c->grade]++;
            pl->lines[ui].hosts_added += added;
            pl->out.hosts_added += added;
            pl->out.absorbed_grown++;
            return true;
        }
    }
    remove_hosts(u, added, req->host_shape);
    return false;
}

/* 2. grows an existing unit for c, least loaded first. */
static bool place_grown(struct plan *pl, const struct kf_place_cluster *c)
{
    struct plan_work *w = &pl->w;

    if (!pl->req->max_unit_hosts)
        return false;
    for (size_t i = 0; i < w->n_existing; i++)
        pl->order[i] = i;
    qsort_r(pl->order, w->n_existing, sizeof(*pl->order), cmp_grow, w);
    for (size_t oi = 0; oi < w->n_existing; oi++)
        if (grow_unit(pl, pl->order[oi], c))
            return true;
    return false;
}

/* 3. places c on the new units planned so far. */
static bool place_new_units(struct plan *pl, const struct kf_place_cluster *c)
{
    struct plan_work *w = &pl->w;

    if (w->n <= w->n_existing ||
        kf_place(pl->p, w->units + w->n_existing, w->n - w->n_existing, c, pl->res) != 0)
        return false;
    kf_place_commit(w->units + w->n_existing, c, pl->res);
    pl->lines[w->n_existing + (size_t)pl->res->unit].absorbed[c->grade]++;
    pl->out.absorbed_new++;
    return true;
}

/* Adds a new unit for c; drops it again, c unplaceable, when c does not fit
 * even an empty one. False when the plan may simulate no more hosts. */
static bool place_on_new_unit(struct plan *pl, const struct kf_place_cluster *c)
{
    struct plan_work *w = &pl->w;
    struct kf_place_unit nu = { 0 };
    struct kf_plan_line *l;
    char name[32];
    size_t ui;

    if (pl->planned + pl->per_unit > PLAN_MAX_HOSTS)
        return false;
    pl->planned += pl->per_unit;
    snprintf(name, sizeof(name), "new-%u", pl->out.new_units + 1);
    nu.region = pl->req->region;
    nu.zones = new_zone_names;
    nu.n_zones = pl->zones;
    ui = work_add(w, &nu, pl->per_unit);
    KF_GROW(pl->lines, pl->lines_alloc, ui);
    l = &pl->lines[ui];
    memset(l, 0, sizeof(*l));
    l->name = kf_xstrdup(name);
    l->is_new = true;
    l->mark = kf_place_mark(&w->units[ui], &pl->p->policy);
    w->units[ui].name = l->name;
    add_hosts(&w->units[ui], pl->per_unit, pl->req->host_shape);
    l->hosts_added = pl->per_unit;
    pl->order = kf_xrealloc(pl->order, (w->n + 1) * sizeof(*pl->order));
    if (kf_place(pl->p, &w->units[ui], 1, c, pl->res) == 0) {
        kf_place_commit(&w->units[ui], c, pl->res);
        l->absorbed[c->grade]++;
        pl->out.absorbed_new++;
        pl->out.new_units++;
        pl->out.new_unit_hosts += pl->per_unit;
    } else {
        /* Too big for an empty new unit: drop the unit again. */
        free(l->name);
        free(w->units[ui].hosts);
        w->n--;
        pl->out.unplaceable[c->grade]++;
    }
    return true;
}

/* Places the demand of grade g, cluster by cluster, by the steps on top of this file. */
static void plan_grade(struct plan *pl, int g)
{
    const struct kf_plan_request *req = pl->req;
    struct kf_place_cluster c = { 0 };
    unsigned count = 0;

    for (size_t i = 0; i < req->n_demand; i++)
        if (req->demand[i].grade == g)
            count += req->demand[i].count;
    c.name = "planned";
    c.region = req->region;
    c.grade = g;
    c.shape = &req->grades->grades[g];
    c.expected_nodes = req->grades->grades[g].max_nodes == KF_GRADE_UNBOUNDED
                           ? 0
                           : req->grades->grades[g].max_nodes;
    for (unsigned k = 0; k < count; k++)
        if (!place_existing(pl, &c) && !place_grown(pl, &c) && !place_new_units(pl, &c) &&
            !place_on_new_unit(pl, &c)) {
            /* the rest cannot be planned within the bound: say so */
            pl->out.unplanned += count - k;
            break;
        }
}

/* Keeps the lines that say something, with the water after, and frees the work. */
static void plan_finish(struct plan *pl)
{
    struct plan_work *w = &pl->w;

    for (size_t i = 0; i < w->n; i++) {
        struct kf_plan_line *l = &pl->lines[i];
        unsigned absorbed = 0;

        water_of(&w->units[i], &l->cpu_after, &l->mem_after);
        for (int g = 0; g < KF_GRADE_COUNT; g++)
            absorbed += l->absorbed[g];
        if (absorbed || l->hosts_added) {
            pl->lines[pl->out.n_lines++] = *l;
        } else {
            free(l->name);
        }
        free(w->units[i].hosts);
    }
    pl->out.lines = pl->lines;
    free(w->units);
    free(w->host_cap);
    free(pl->order);
    free(pl->res);
}

int kf_plan(struct kf_placer *p, const struct kf_plan_request *req, struct kf_plan_result *ret,
            struct kf_strbuf *err)
{
    struct plan pl = { .p = p, .req = req };
    uint64_t total = 0;
    int r;

    pl.zones = req->new_unit_zones ? req->new_unit_zones : 3;
    pl.per_unit = req->new_unit_hosts ? req->new_unit_hosts : 9;
    r = plan_check(req, pl.zones, pl.per_unit, &total, &pl.planned, err);
    if (r < 0)
        return r;
    plan_add_existing(&pl);
    pl.out.demanded = (unsigned)total;
    /* Biggest grades first: they are the hardest to fit. */
    for (int g = KF_GRADE_COUNT - 1; g >= 0; g--)
        plan_grade(&pl, g);
    plan_finish(&pl);
    *ret = pl.out;
    return 0;
}

void kf_plan_result_release(struct kf_plan_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_lines; i++)
        free(r->lines[i].name);
    free(r->lines);
    memset(r, 0, sizeof(*r));
}

static void add_counts(struct kf_strbuf *sb, const unsigned *by_grade)
{
    bool first = true;

    for (int g = KF_GRADE_COUNT - 1; g >= 0; g--) {
        if (!by_grade[g])
            continue;
        kf_strbuf_addf(sb, "%s%u x %s", first ? "" : " + ", by_grade[g], kf_grade_name(g));
        first = false;
    }
    if (first)
        kf_strbuf_addstr(sb, "-");
}

static void pad_to(struct kf_strbuf *sb, size_t start, size_t width)
{
    while (sb->len - start < width)
        kf_strbuf_addch(sb, ' ');
    kf_strbuf_addstr(sb, "  ");
}

void kf_plan_format(const struct kf_plan_request *req, const struct kf_plan_result *r,
                    struct kf_strbuf *out)
{
    unsigned demand[KF_GRADE_COUNT] = { 0 }, unplaceable = 0;
    size_t name_w = 4, abs_w = 7;
    struct kf_strbuf tmp = KF_STRBUF_INIT;

    for (size_t i = 0; i < req->n_demand; i++)
        if (req->demand[i].grade >= 0 && req->demand[i].grade < KF_GRADE_COUNT)
            demand[req->demand[i].grade] += req->demand[i].count;
    kf_strbuf_addf(out, "region %s: demand ", req->region);
    add_counts(out, demand);
    kf_strbuf_addf(out, " (%u clusters); new hosts of ", r->demanded);
    kf_place_res(out, req->host_shape);
    kf_strbuf_addstr(out, "\n\n");
    for (size_t i = 0; i < r->n_lines; i++) {
        name_w = KF_MAX(name_w, strlen(r->lines[i].name));
        kf_strbuf_reset(&tmp);
        add_counts(&tmp, r->lines[i].absorbed);
        abs_w = KF_MAX(abs_w, tmp.len);
    }
    {
        size_t start = out->len;
        kf_strbuf_addf(out, "%-*s  %-*s  %-12s  %-16s  %-16s  MARK\n", (int)name_w, "UNIT",
                       (int)abs_w, "ABSORBS", "HOSTS", "CPU NOW -> THEN", "MEM NOW -> THEN");
        (void)start;
    }
    for (size_t i = 0; i < r->n_lines; i++) {
        const struct kf_plan_line *l = &r->lines[i];
        size_t start;

        kf_strbuf_addf(out, "%-*s  ", (int)name_w, l->name);
        kf_strbuf_reset(&tmp);
        add_counts(&tmp, l->absorbed);
        kf_strbuf_addf(out, "%-*s  ", (int)abs_w, tmp.buf);
        start = out->len;
        if (l->is_new)
            kf_strbuf_addf(out, "%u (new)", l->hosts_added);
        else
            kf_strbuf_addf(out, "%u + %u", l->hosts_before, l->hosts_added);
        pad_to(out, start, 12);
        start = out->len;
        kf_place_pct(out, l->cpu_before, -1);
        kf_strbuf_addstr(out, " -> ");
        kf_place_pct(out, l->cpu_after, -1);
        pad_to(out, start, 16);
        start = out->len;
        kf_place_pct(out, l->mem_before, -1);
        kf_strbuf_addstr(out, " -> ");
        kf_place_pct(out, l->mem_after, -1);
        pad_to(out, start, 16);
        kf_place_pct(out, l->mark, -1);
        kf_strbuf_addch(out, '\n');
    }
    for (int g = 0; g < KF_GRADE_COUNT; g++)
        unplaceable += r->unplaceable[g];
    kf_strbuf_addf(out, "\nexisting units absorb %u as they are", r->absorbed_existing);
    if (req->max_unit_hosts)
        kf_strbuf_addf(out, " and %u more with %u added host%s (up to %u hosts a unit)",
                       r->absorbed_grown, r->hosts_added, r->hosts_added == 1 ? "" : "s",
                       req->max_unit_hosts);
    kf_strbuf_addf(out, "; %u need%s %u new unit%s of %u hosts over %u zones (%u hosts)",
                   r->absorbed_new, r->absorbed_new == 1 ? "s" : "", r->new_units,
                   r->new_units == 1 ? "" : "s", req->new_unit_hosts ? req->new_unit_hosts : 9,
                   req->new_unit_zones ? req->new_unit_zones : 3, r->new_unit_hosts);
    if (unplaceable) {
        kf_strbuf_addstr(out, "; cannot place ");
        add_counts(out, r->unplaceable);
        kf_strbuf_addstr(out, ": too big for an empty new unit of these hosts");
    }
    if (r->unplanned)
        kf_strbuf_addf(out,
                       "; %u not planned: the plan stopped at %d simulated hosts (plan "
                       "in parts or with larger hosts)",
                       r->unplanned, PLAN_MAX_HOSTS);
    kf_strbuf_addstr(out, "\n");
    kf_strbuf_release(&tmp);
}
