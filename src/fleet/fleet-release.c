/* fleet-release.c: the meaning of a Release (kfleet/release.h) that both
 * its admission (kind-release.c) and its controller (ctrl-release.c) need:
 * which GuestClusters it covers, the wave each falls in, and each cluster's
 * state against the target version.
 *
 * Waves are assigned in two passes. Named waves (clusters, selector, units,
 * regions) take the clusters they name; a cluster two named waves take is
 * an overlap, refused at admission (the controller keeps it in the first).
 * Then percentage waves take, in order, ceil(percent x total / 100) of the
 * clusters no named wave took, in the order of a hash of their names (a
 * spread over units and regions that stays the same from one reconcile to
 * the next), and the last wave without a selection takes the rest. */
#include <stdlib.h>
#include <string.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/registry.h"
#include "kfleet/release.h"
#include "kfleet/selector.h"
#include "kfleet/strbuf.h"

/* Overlap and minor-gap causes named one by one before "and N more". */
#define MAX_NAMED_CAUSES 5

static void version_parts(const char *v, long p[3])
{
    char *end;

    p[0] = p[1] = p[2] = 0;
    for (int i = 0; v && i < 3; i++) {
        p[i] = strtol(v, &end, 10);
        if (end == v || (*end != '.' && *end))
            return;
        v = *end ? end + 1 : end;
        if (!*v)
            return;
    }
}

int kf_release_version_cmp(const char *a, const char *b)
{
    long pa[3], pb[3];

    version_parts(a, pa);
    version_parts(b, pb);
    for (int i = 0; i < 3; i++)
        if (pa[i] != pb[i])
            return pa[i] < pb[i] ? -1 : 1;
    return 0;
}

int kf_release_minor_gap(const char *from, const char *to)
{
    long pa[3], pb[3];

    version_parts(from, pa);
    version_parts(to, pb);
    if (pa[0] != pb[0])
        return 1000;
    return (int)(pb[1] - pa[1]);
}

static bool same_version(const char *a, const char *b)
{
    return a && b && kf_release_version_cmp(a, b) == 0;
}

const char *kf_release_cluster_version(const json_t *gc)
{
    const char *v = kf_json_str(gc, "status.version", NULL);

    if (!v)
        v = kf_json_str(gc, "status.effective.version", NULL);
    if (!v)
        v = kf_json_str(gc, "spec.version", NULL);
    return v;
}

static const json_t *upgraded_condition(const json_t *gc)
{
    const json_t *c;
    size_t i;

    json_array_foreach(kf_json_path(gc, "status.conditions"), i, c)
    {
        if (kf_streq(kf_json_str(c, "type", NULL), "Upgraded"))
            return c;
    }
    return NULL;
}

enum kf_rel_state kf_release_cluster_state(const json_t *gc, const char *target,
                                           const char **ret_why)
{
    const char *want = kf_json_str(gc, "spec.version", NULL);
    const char *runs = kf_json_str(gc, "status.version", NULL);
    const json_t *cond = upgraded_condition(gc);
    const char *why = kf_json_str(cond, "reason", NULL);
    bool cond_false = kf_streq(kf_json_str(cond, "status", NULL), "False");

    if (ret_why)
        *ret_why = why;
    if (same_version(want, target) && cond_false &&
        (kf_streq(why, "Failed") || kf_streq(why, "PrecheckFailed") || kf_streq(why, "RolledBack")))
        return KF_REL_FAILED;
    if (same_version(runs, target) && (!want || same_version(want, target)) && !cond_false)
        return KF_REL_DONE;
    if (same_version(want, target))
        return KF_REL_IN_PROGRESS;
    runs = kf_release_cluster_version(gc);
    if (runs && kf_release_version_cmp(runs, target) > 0)
        return KF_REL_SKIPPED;
    return KF_REL_PENDING;
}

/* --- the plan -------------------------------------------------------------------- */

enum wave_type { WAVE_NAMED, WAVE_PERCENT, WAVE_REST };

struct wave {
    const json_t *w;
    enum wave_type type;
    struct kf_selector *sel; /* the named wave's selector, or NULL */
};

static enum wave_type wave_type(const json_t *w)
{
    if (kf_json_path(w, "clusters") || kf_json_path(w, "selector") || kf_json_path(w, "units") ||
        kf_json_path(w, "regions"))
        return WAVE_NAMED;
    return kf_json_path(w, "percent") ? WAVE_PERCENT : WAVE_REST;
}

static bool str_in(const json_t *a, const char *s)
{
    const json_t *v;
    size_t i;

    json_array_foreach(a, i, v) if (s && kf_streq(json_string_value(v), s)) return true;
    return false;
}

/* Whether named wave w takes gc: every selection it has must hold. */
static bool wave_takes(const struct wave *w, const json_t *gc)
{
    const json_t *a;

    if ((a = kf_json_path(w->w, "clusters")) && !str_in(a, kf_json_str(gc, "metadata.name", NULL)))
        return false;
    if (w->sel && !kf_selector_matches(w->sel, gc))
        return false;
    if ((a = kf_json_path(w->w, "units")) && !str_in(a, kf_json_str(gc, "status.unit", NULL)))
        return false;
    if ((a = kf_json_path(w->w, "regions")) && !str_in(a, kf_json_str(gc, "spec.region", NULL)))
        return false;
    return true;
}

static bool release_takes(const json_t *rel, const struct kf_selector *sel, const json_t *gc)
{
    const char *tmpl = kf_json_str(rel, "spec.template", NULL);

    if (tmpl && !kf_streq(kf_json_str(gc, "spec.template", NULL), tmpl))
        return false;
    return !sel || kf_selector_matches(sel, gc);
}

struct hashed {
    uint64_t h;
    const char *name;
    size_t i;
};

static int hashed_cmp(const void *a, const void *b)
{
    const struct hashed *x = a, *y = b;

    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The second pass: percentage waves, then the rest. */
static void plan_unnamed(const struct wave *waves, size_t n_waves, const json_t *const *clusters,
                         struct kf_release_plan *p)
{
    struct hashed *h = kf_xcalloc(p->n ? p->n : 1, sizeof(*h));
    size_t m = 0, next = 0;

    for (size_t i = 0; i < p->n; i++) {
        if (p->wave_of[i] != KF_RELEASE_NO_WAVE - 1)
            continue;
        h[m].name = kf_json_str(clusters[i], "metadata.name", "");
        h[m].h = kf_fnv1a_str(KF_FNV1A_BASIS, h[m].name);
        h[m++].i = i;
        p->wave_of[i] = KF_RELEASE_NO_WAVE;
    }
    qsort(h, m, sizeof(*h), hashed_cmp);
    for (size_t wi = 0; wi < n_waves && next < m; wi++) {
        size_t take = m - next;

        if (waves[wi].type == WAVE_NAMED)
            continue;
        if (waves[wi].type == WAVE_PERCENT) {
            int64_t pct = kf_json_int(waves[wi].w, "percent", 0);

            take = (size_t)((p->total * (uint64_t)pct + 99) / 100);
            if (take > m - next)
                take = m - next;
        }
        for (size_t k = 0; k < take; k++)
            p->wave_of[h[next++].i] = (uint8_t)wi;
    }
    free(h);
}

static void add_named_cause(struct kf_causes *causes, size_t *count, const char *field,
                            const char *msg)
{
    if (++*count <= MAX_NAMED_CAUSES)
        kf_causes_add(causes, "FieldValueInvalid", field, "%s", msg);
}

static void more_causes(struct kf_causes *causes, size_t count, const char *field, const char *what)
{
    if (count > MAX_NAMED_CAUSES)
        kf_causes_add(causes, "FieldValueInvalid", field, "and %zu more clusters %s",
                      count - MAX_NAMED_CAUSES, what);
}

/* The first pass: clusters of the release, and the named wave of each
 * (KF_RELEASE_NO_WAVE - 1 marks "in the release, no named wave yet"). */
static void plan_named(const json_t *rel, const struct kf_selector *sel, const struct wave *waves,
                       size_t n_waves, const json_t *const *clusters, bool strict,
                       struct kf_release_plan *p, struct kf_causes *causes)
{
    size_t overlaps = 0;

    for (size_t i = 0; i < p->n; i++) {
        p->wave_of[i] = KF_RELEASE_NO_WAVE;
        if (!release_takes(rel, sel, clusters[i]))
            continue;
        p->total++;
        p->wave_of[i] = KF_RELEASE_NO_WAVE - 1;
        for (size_t wi = 0; wi < n_waves; wi++) {
            if (waves[wi].type != WAVE_NAMED || !wave_takes(&waves[wi], clusters[i]))
                continue;
            if (p->wave_of[i] == KF_RELEASE_NO_WAVE - 1) {
                p->wave_of[i] = (uint8_t)wi;
            } else if (strict) {
                char *f = kf_xasprintf("spec.waves[%zu]", wi);
                char *m = kf_xasprintf(
                    "waves overlap: cluster \"%s\" is in wave \"%s\" and in wave \"%s\"; "
                    "a cluster may be in one wave only",
                    kf_json_str(clusters[i], "metadata.name", ""),
                    kf_json_str(waves[p->wave_of[i]].w, "name", ""),
                    kf_json_str(waves[wi].w, "name", ""));

                add_named_cause(causes, &overlaps, f, m);
                free(f);
                free(m);
            }
        }
    }
    more_causes(causes, overlaps, "spec.waves", "are in more than one wave");
}

static void check_strict(const json_t *rel, const struct wave *waves, size_t n_waves,
                         const json_t *const *clusters, const char *target,
                         const struct kf_release_plan *p, struct kf_causes *causes)
{
    size_t gaps = 0;

    if (!p->total) {
        kf_causes_add(causes, "FieldValueInvalid", "spec.selector",
                      "the release selects no GuestCluster%s: check spec.selector%s",
                      kf_json_path(rel, "spec.template") ? " using spec.template" : "",
                      kf_json_path(rel, "spec.template") ? " and spec.template" : "");
        return;
    }
    for (size_t wi = 0; wi < n_waves; wi++) {
        const json_t *names = kf_json_path(waves[wi].w, "clusters"), *v;
        size_t k;

        if (waves[wi].type == WAVE_NAMED && !p->count[wi]) {
            char *f = kf_xasprintf("spec.waves[%zu]", wi);

            kf_causes_add(causes, "FieldValueInvalid", f,
                          "wave \"%s\" takes no cluster of the release: fix its selection or "
                          "remove it",
                          kf_json_str(waves[wi].w, "name", ""));
            free(f);
        }
        json_array_foreach(names, k, v)
        {
            bool found = false;

            for (size_t i = 0; i < p->n && !found; i++)
                found =
                    p->wave_of[i] != KF_RELEASE_NO_WAVE &&
                    kf_streq(kf_json_str(clusters[i], "metadata.name", NULL), json_string_value(v));
            if (!found) {
                char *f = kf_xasprintf("spec.waves[%zu].clusters[%zu]", wi, k);

                kf_causes_add(causes, "FieldValueInvalid", f,
                              "cluster \"%s\" is not a GuestCluster the release selects",
                              json_string_value(v));
                free(f);
            }
        }
    }
    for (size_t i = 0; target && i < p->n; i++) {
        const char *runs = kf_release_cluster_version(clusters[i]);
        char *m;

        if (p->wave_of[i] == KF_RELEASE_NO_WAVE || !runs || kf_release_minor_gap(runs, target) <= 1)
            continue;
        m = kf_xasprintf("cluster \"%s\" runs %s: moving it to %s would skip a minor; upgrade it "
                         "one minor at a time first, or leave it out of the selector",
                         kf_json_str(clusters[i], "metadata.name", ""), runs, target);
        add_named_cause(causes, &gaps, "spec.version", m);
        free(m);
    }
    more_causes(causes, gaps, "spec.version", "would skip a minor");
}

int kf_release_plan(const json_t *rel, const json_t *const *clusters, size_t n, const char *target,
                    bool strict, struct kf_release_plan *ret, struct kf_causes *causes)
{
    struct wave waves[KF_RELEASE_MAX_WAVES] = { { 0 } };
    const json_t *wa = kf_json_path(rel, "spec.waves");
    struct kf_selector *sel = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;
    size_t before = causes->n, n_waves = json_array_size(wa);
    int r = 0;

    memset(ret, 0, sizeof(*ret));
    ret->n = n;
    ret->wave_of = kf_xcalloc(n ? n : 1, 1);
    if (n_waves > KF_RELEASE_MAX_WAVES)
        n_waves = KF_RELEASE_MAX_WAVES;
    ret->n_waves = n_waves;
    if (kf_json_path(rel, "spec.selector") &&
        kf_selector_from_json(kf_json_path(rel, "spec.selector"), &sel, &err) < 0)
        kf_causes_add(causes, "FieldValueInvalid", "spec.selector", "%s", err.buf);
    for (size_t wi = 0; wi < n_waves; wi++) {
        waves[wi].w = json_array_get(wa, wi);
        waves[wi].type = wave_type(waves[wi].w);
        kf_strbuf_reset(&err);
        if (kf_json_path(waves[wi].w, "selector") &&
            kf_selector_from_json(kf_json_path(waves[wi].w, "selector"), &waves[wi].sel, &err) <
                0) {
            char *f = kf_xasprintf("spec.waves[%zu].selector", wi);

            kf_causes_add(causes, "FieldValueInvalid", f, "%s", err.buf);
            free(f);
        }
    }
    if (causes->n == before) {
        plan_named(rel, sel, waves, n_waves, clusters, strict, ret, causes);
        plan_unnamed(waves, n_waves, clusters, ret);
        for (size_t i = 0; i < n; i++)
            if (ret->wave_of[i] != KF_RELEASE_NO_WAVE)
                ret->count[ret->wave_of[i]]++;
        if (strict)
            check_strict(rel, waves, n_waves, clusters, target, ret, causes);
    }
    if (causes->n != before)
        r = -KF_EINVALID;
    for (size_t wi = 0; wi < n_waves; wi++)
        kf_selector_free(waves[wi].sel);
    kf_selector_free(sel);
    kf_strbuf_release(&err);
    return r;
}

void kf_release_plan_release(struct kf_release_plan *p)
{
    free(p->wave_of);
    p->wave_of = NULL;
}

/* --- admission against the store ------------------------------------------------- */

static bool same_json(const json_t *a, const json_t *b)
{
    return (!a && !b) || json_equal(a, b);
}

static bool waves_select_same(const json_t *a, const json_t *b)
{
    static const char *const keys[] = { "clusters", "selector", "units", "regions", "percent" };

    if (json_array_size(a) != json_array_size(b))
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        for (size_t k = 0; k < KF_ARRAY_SIZE(keys); k++)
            if (!same_json(kf_json_path(json_array_get(a, i), keys[k]),
                           kf_json_path(json_array_get(b, i), keys[k])))
                return false;
    return true;
}

/* The target a release's admission checks against: spec.version, or the
 * Template's version (NULL with a cause when it has none). */
static char *admission_target(struct kf_registry *r, const json_t *obj, struct kf_causes *causes)
{
    const char *tname = kf_json_str(obj, "spec.template", NULL);
    json_t *t = NULL;
    char *v;

    if (!tname)
        return kf_json_path(obj, "spec.version") ? kf_xstrdup(kf_json_str(obj, "spec.version", ""))
                                                 : NULL;
    if (kf_registry_get(r, &kf_kind_template, tname, &t) < 0) {
        kf_causes_add(causes, "FieldValueNotFound", "spec.template",
                      "Not found: Template \"%s\": create it first", tname);
        return NULL;
    }
    if (!kf_json_str(t, "spec.version", NULL))
        kf_causes_add(causes, "FieldValueInvalid", "spec.template",
                      "Template \"%s\" names no version (spec.version): set the version to roll "
                      "out there, or give the release spec.version",
                      tname);
    v = kf_json_str(t, "spec.version", NULL) ? kf_xstrdup(kf_json_str(t, "spec.version", ""))
                                             : NULL;
    json_decref(t);
    return v;
}

void kf_release_admit_stored(struct kf_registry *r, const json_t *obj, const json_t *old,
                             struct kf_causes *causes)
{
    struct kf_release_plan plan;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *items = NULL;
    const json_t **cs;
    size_t before = causes->n, n;
    char *target;

    /* what decides the clusters and their waves is checked when it is
     * written, not again when the controller pauses the release later */
    if (old && same_json(kf_json_path(obj, "spec.selector"), kf_json_path(old, "spec.selector")) &&
        waves_select_same(kf_json_path(obj, "spec.waves"), kf_json_path(old, "spec.waves")))
        return;
    target = admission_target(r, obj, causes);
    if (causes->n != before)
        goto free_target;
    if (kf_registry_list(r, &kf_kind_guestcluster, &(struct kf_list_opts){ 0 }, &items, NULL, NULL,
                         &err) < 0) {
        kf_causes_add(causes, "InternalError", "spec.selector",
                      "the GuestClusters could not be read to check the selector: %s", err.buf);
        goto free_target;
    }
    n = json_array_size(items);
    cs = kf_xcalloc(n ? n : 1, sizeof(*cs));
    for (size_t i = 0; i < n; i++)
        cs[i] = json_array_get(items, i);
    kf_release_plan(obj, cs, n, target, true, &plan, causes);
    kf_release_plan_release(&plan);
    free(cs);
    json_decref(items);
free_target:
    free(target);
    kf_strbuf_release(&err);
}
