/* placement-grade-json.c: the grade table to and from JSON, so that an
 * operator can replace the defaults with a file (kfleetd --grades FILE) and
 * `kfleet` can show the table in effect. The only part of the placement
 * library that knows about JSON. Format in kfleet/grade.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/grade.h"
#include "kfleet/strbuf.h"

static json_t *cpu_json(int64_t milli)
{
    char buf[32];

    if (milli % 1000 == 0)
        snprintf(buf, sizeof(buf), "%lld", (long long)(milli / 1000));
    else
        snprintf(buf, sizeof(buf), "%lldm", (long long)milli);
    return json_string(buf);
}

static json_t *mem_json(int64_t bytes)
{
    char buf[32];

    if (bytes % KF_GIB == 0)
        snprintf(buf, sizeof(buf), "%lldGi", (long long)(bytes / KF_GIB));
    else if (bytes % KF_MIB == 0)
        snprintf(buf, sizeof(buf), "%lldMi", (long long)(bytes / KF_MIB));
    else
        snprintf(buf, sizeof(buf), "%lld", (long long)bytes);
    return json_string(buf);
}

static json_t *bound_json(int64_t v)
{
    return v == KF_GRADE_UNBOUNDED ? json_null() : json_integer(v);
}

json_t *kf_grade_table_to_json(const struct kf_grade_table *t)
{
    json_t *grades = json_array();

    for (int g = 0; g < KF_GRADE_COUNT; g++) {
        const struct kf_grade_spec *s = &t->grades[g];
        json_t *comps = json_array();

        for (unsigned i = 0; i < s->n_components; i++) {
            const struct kf_component *c = &s->components[i];
            json_array_append_new(
                comps,
                json_pack("{s:s, s:i, s:s, s:o, s:o}", "name", c->name, "replicas",
                          (int)c->replicas, "spread",
                          c->spread == KF_SPREAD_ONE_PER_ZONE ? "OnePerZone" : "Zones", "cpu",
                          cpu_json(c->req.cpu_milli), "memory", mem_json(c->req.mem_bytes)));
        }
        json_array_append_new(
            grades,
            json_pack("{s:s, s:o, s:o, s:o, s:i, s:o, s:o}", "name", kf_grade_name(g), "maxNodes",
                      bound_json(s->max_nodes), "maxPods", bound_json(s->max_pods), "maxQPS",
                      bound_json(s->max_qps), "minZones", (int)s->min_zones, "etcdQuota",
                      mem_json(s->etcd_quota_bytes), "components", comps));
    }
    return json_pack("{s:o}", "grades", grades);
}

static int get_bound(const json_t *o, const char *key, const char *where, int64_t *ret,
                     struct kf_strbuf *err)
{
    json_t *v = json_object_get(o, key);

    if (!v)
        return kf_err(err, -EINVAL, "%s.%s: required (a number, or null for unbounded)", where,
                      key);
    if (json_is_null(v)) {
        *ret = KF_GRADE_UNBOUNDED;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return kf_err(err, -EINVAL, "%s.%s: must be an integer >= 1 or null", where, key);
    *ret = json_integer_value(v);
    return 0;
}

static int get_quantity(const json_t *o, const char *key, const char *where, bool memory,
                        int64_t *ret, struct kf_strbuf *err)
{
    json_t *v = json_object_get(o, key);
    int64_t milli;

    if (json_is_integer(v)) {
        milli = json_integer_value(v) * 1000;
    } else if (!json_is_string(v) || kf_parse_quantity(json_string_value(v), &milli) < 0) {
        return kf_err(err, -EINVAL, "%s.%s: must be a quantity like %s", where, key,
                      memory ? "\"4Gi\"" : "\"500m\" or \"2\"");
    }
    *ret = memory ? (milli + 500) / 1000 : milli;
    return 0;
}

static int component_from_json(const json_t *o, const char *where, struct kf_component *c,
                               struct kf_strbuf *err)
{
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *spread = json_string_value(json_object_get(o, "spread"));
    json_t *rep = json_object_get(o, "replicas");
    int r;

    memset(c, 0, sizeof(*c));
    if (!json_is_object(o))
        return kf_err(err, -EINVAL, "%s: must be an object", where);
    if (!name || !*name || strlen(name) >= sizeof(c->name))
        return kf_err(err, -EINVAL, "%s.name: required, at most %d characters", where,
                      KF_COMPONENT_NAME_MAX - 1);
    snprintf(c->name, sizeof(c->name), "%s", name);
    if (!json_is_integer(rep) || json_integer_value(rep) < 1 ||
        json_integer_value(rep) > KF_GRADE_MAX_REPLICAS)
        return kf_err(err, -EINVAL, "%s.replicas: must be 1..%d", where, KF_GRADE_MAX_REPLICAS);
    c->replicas = (unsigned)json_integer_value(rep);
    if (!spread || strcmp(spread, "Zones") == 0)
        c->spread = KF_SPREAD_ZONES;
    else if (strcmp(spread, "OnePerZone") == 0)
        c->spread = KF_SPREAD_ONE_PER_ZONE;
    else
        return kf_err(err, -EINVAL, "%s.spread: must be \"Zones\" or \"OnePerZone\"", where);
    if ((r = get_quantity(o, "cpu", where, false, &c->req.cpu_milli, err)) < 0)
        return r;
    return get_quantity(o, "memory", where, true, &c->req.mem_bytes, err);
}

int kf_grade_table_from_json(const json_t *doc, struct kf_grade_table *t, struct kf_strbuf *err)
{
    struct kf_grade_table tmp;
    json_t *grades = json_object_get(doc, "grades");
    bool seen[KF_GRADE_COUNT] = { false };
    size_t i;
    json_t *o;
    int r;

    memset(&tmp, 0, sizeof(tmp));
    if (!json_is_array(grades))
        return kf_err(err, -EINVAL, "grades: required, a list of %d grades", KF_GRADE_COUNT);
    json_array_foreach(grades, i, o)
    {
        char where[48];
        const char *name = json_string_value(json_object_get(o, "name"));
        int g = kf_grade_parse(name);
        struct kf_grade_spec *s;
        json_t *comps, *c, *zones;
        size_t j;

        snprintf(where, sizeof(where), "grades[%zu]", i);
        if (g < 0)
            return kf_err(err, -EINVAL, "%s.name: must be G0..G5", where);
        if (seen[g])
            return kf_err(err, -EINVAL, "%s: %s appears twice", where, kf_grade_name(g));
        seen[g] = true;
        s = &tmp.grades[g];
        if ((r = get_bound(o, "maxNodes", where, &s->max_nodes, err)) < 0 ||
            (r = get_bound(o, "maxPods", where, &s->max_pods, err)) < 0 ||
            (r = get_bound(o, "maxQPS", where, &s->max_qps, err)) < 0)
            return r;
        zones = json_object_get(o, "minZones");
        s->min_zones = zones ? (unsigned)KF_MAX(json_integer_value(zones), 0) : 3;
        if (json_object_get(o, "etcdQuota")) {
            if ((r = get_quantity(o, "etcdQuota", where, true, &s->etcd_quota_bytes, err)) < 0)
                return r;
        } else {
            s->etcd_quota_bytes = 8 * KF_GIB;
        }
        comps = json_object_get(o, "components");
        if (!json_is_array(comps) || json_array_size(comps) < 1 ||
            json_array_size(comps) > KF_GRADE_MAX_COMPONENTS)
            return kf_err(err, -EINVAL, "%s.components: a list of 1..%d components", where,
                          KF_GRADE_MAX_COMPONENTS);
        json_array_foreach(comps, j, c)
        {
            char cwhere[96];

            snprintf(cwhere, sizeof(cwhere), "%s.components[%zu]", where, j);
            if ((r = component_from_json(c, cwhere, &s->components[j], err)) < 0)
                return r;
        }
        s->n_components = (unsigned)json_array_size(comps);
    }
    for (int g = 0; g < KF_GRADE_COUNT; g++)
        if (!seen[g])
            return kf_err(err, -EINVAL, "grades: %s is missing", kf_grade_name(g));
    if ((r = kf_grade_table_validate(&tmp, err)) < 0)
        return r;
    *t = tmp;
    return 0;
}
