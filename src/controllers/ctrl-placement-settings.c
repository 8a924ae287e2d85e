/* ctrl-placement-settings.c: a GuestCluster's effective settings and the
 * shape of its control plane.
 *
 * Settings come from three layers, later ones winning field by field:
 *
 *   Profile   the cluster type: versions, components, flags, etcd and
 *             apiserver settings, hosting requirements, maxPodsPerNode
 *   Template  spec.template: a named set of defaults on top of a profile
 *             (version, grade, expectedNodes, network sizes, compliance,
 *             maintenance window, backup, flags)
 *   spec      the cluster's own fields
 *
 * Compliance tags add up (a template's gdpr and the cluster's own both
 * apply); flags merge by name (profile < template < spec). The result is
 * written to status.effective, so an operator sees what is in force.
 *
 * The control-plane shape starts from the grade table's row for the
 * cluster's grade. A profile that lists components keeps those of the row
 * it names (in the row's order, so etcd is bound first) and adds its own
 * with `replicas` and a `share` of the row's total requests;
 * apiServer.replicas and etcd.members set those components' replicas.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "kfleet/catalog.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/obj.h"
#include "kfleet/selector.h"
#include "kfleet/strbuf.h"
#include "kfleet/versions.h"
#include "kfleet/window.h"
#include "controllers/ctrl-placement.h"

#define DEFAULT_NODES    3
#define DEFAULT_MAX_PODS 110
#define EXTRA_SHARE      0.05 /* of the grade's total, for a profile component without one */

void kf_place_settings_release(struct kf_place_settings *s)
{
    if (!s)
        return;
    json_decref(s->effective);
    json_decref(s->profile);
    memset(s, 0, sizeof(*s));
}

/* spec's value at path, else the template's. Borrowed. */
static json_t *layered(const json_t *spec, const json_t *tspec, const char *path)
{
    json_t *v = kf_json_path(spec, path);

    return v && !json_is_null(v) ? v : tspec ? kf_json_path(tspec, path) : NULL;
}

/* "1.30.2" -> "1.30" into buf. */
static void minor_of(const char *v, char *buf, size_t size)
{
    const char *dot = strchr(v, '.');
    const char *dot2 = dot ? strchr(dot + 1, '.') : NULL;
    size_t n = dot2 ? (size_t)(dot2 - v) : strlen(v);

    snprintf(buf, size, "%.*s", (int)KF_MIN(n, size - 1), v);
}

static void add_unique(json_t *arr, const json_t *from)
{
    size_t i;
    json_t *v;

    json_array_foreach(from, i,
                       v) if (json_is_string(v) && !kf_cap_str_in(arr, json_string_value(v)))
        json_array_append(arr, v);
}

/* The version: the cluster's spec, else the version it already runs
 * (pinned: a later change of its template's or profile's default never
 * re-versions it), else the template's, else the profile's default or
 * newest; -KF_EINVALID when the profile does not support a version that
 * is not pinned. */
static int pick_version(const json_t *spec, const json_t *tspec, const json_t *pspec,
                        const char *pname, const char *pinned, const char **ret_version,
                        const char **ret_reason, struct kf_strbuf *why)
{
    const char *version = json_string_value(json_object_get(spec, "version"));
    char minor[32];

    if (!version && pinned) {
        *ret_version = pinned;
        return 0;
    }
    if (!version)
        version = json_string_value(layered(spec, tspec, "version"));
    if (!version)
        version = kf_json_str(pspec, "defaultVersion", NULL);
    if (!version) {
        json_t *vs = kf_json_path(pspec, "versions");

        version = json_string_value(json_array_get(vs, json_array_size(vs) - 1));
    }
    minor_of(version ? version : "", minor, sizeof(minor));
    if (!kf_cap_str_in(kf_json_path(pspec, "versions"), minor)) {
        char *list = kf_json_dump(kf_json_path(pspec, "versions"), NULL);

        *ret_reason = "VersionNotSupported";
        kf_err(why, -KF_EINVALID, "version %s is not supported by profile %s (it supports %s)",
               version ? version : "(none)", pname, list);
        free(list);
        return -KF_EINVALID;
    }
    *ret_version = version;
    return 0;
}

/* Nodes, pods, the explicit grade and pods per node into ret;
 * -KF_EINVALID when the profile does not take that many nodes. */
static int read_sizes(const json_t *spec, const json_t *tspec, const json_t *pspec,
                      const char *pname, struct kf_place_settings *ret, const char **ret_reason,
                      struct kf_strbuf *why)
{
    json_t *v = layered(spec, tspec, "expectedNodes");
    int64_t max_nodes = kf_json_int(pspec, "maxNodes", 0);

    ret->nodes = json_is_integer(v) ? json_integer_value(v) : DEFAULT_NODES;
    if (max_nodes > 0 && ret->nodes > max_nodes) {
        *ret_reason = "TooManyNodes";
        return kf_err(why, -KF_EINVALID,
                      "expectedNodes %lld is more than profile %s supports (%lld): choose another "
                      "profile or fewer nodes",
                      (long long)ret->nodes, pname, (long long)max_nodes);
    }
    v = kf_json_path(spec, "expectedPods");
    if (json_is_integer(v))
        ret->pods = json_integer_value(v);
    v = layered(spec, tspec, "grade");
    if (json_is_string(v))
        ret->explicit_grade = kf_grade_parse(json_string_value(v));
    v = layered(spec, tspec, "network.maxPodsPerNode");
    ret->max_pods = json_is_integer(v)
                        ? (unsigned)json_integer_value(v)
                        : (unsigned)kf_json_int(pspec, "maxPodsPerNode", DEFAULT_MAX_PODS);
    return 0;
}

/* The layered parts of the effective settings: network, compliance,
 * maintenance window, backup and flags (profile, then template, then cluster). */
static void effective_layers(json_t *eff, const json_t *spec, const json_t *tspec,
                             const json_t *pspec, unsigned max_pods)
{
    json_t *net = json_pack("{s:I}", "maxPodsPerNode", (json_int_t)max_pods);
    json_t *compliance = json_array(), *flags = json_object(), *v;

    if ((v = layered(spec, tspec, "network.nodeCIDRMaskSize")))
        json_object_set(net, "nodeCIDRMaskSize", v);
    if (tspec && (v = kf_json_path(tspec, "network.serviceCIDRPrefix")))
        json_object_set(net, "serviceCIDRPrefix", v);
    json_object_set_new(eff, "network", net);
    if (tspec)
        add_unique(compliance, kf_json_path(tspec, "compliance"));
    add_unique(compliance, kf_json_path(spec, "compliance"));
    json_object_set_new(eff, "compliance", compliance);
    if ((v = layered(spec, tspec, "maintenanceWindow")))
        json_object_set(eff, "maintenanceWindow", v);
    if ((v = layered(spec, tspec, "backup")))
        json_object_set(eff, "backup", v);
    json_object_update(flags, kf_json_path(pspec, "flags"));
    if (tspec)
        json_object_update(flags, kf_json_path(tspec, "flags"));
    json_object_update(flags, kf_json_path(spec, "flags"));
    json_object_set_new(eff, "flags", flags);
}

/* The profile's parts of the effective settings: etcd, apiServer,
 * heartbeatGrace, nodeOS and the unit features it needs. */
static void effective_profile(json_t *eff, const json_t *pspec)
{
    json_t *features = json_array(), *v;

    if ((v = kf_json_path(pspec, "etcd")))
        json_object_set(eff, "etcd", v);
    if ((v = kf_json_path(pspec, "apiServer")))
        json_object_set(eff, "apiServer", v);
    if ((v = kf_json_path(pspec, "heartbeatGrace")))
        json_object_set(eff, "heartbeatGrace", v);
    json_object_set_new(eff, "nodeOS", json_string(kf_json_str(pspec, "nodeOS", "linux")));
    add_unique(features, kf_json_path(pspec, "hosting.unitFeatures"));
    if (kf_json_bool(pspec, "etcd.dedicated", false) ||
        kf_json_bool(pspec, "hosting.dedicatedHosts", false)) {
        json_t *ded = json_pack("[s]", "dedicated");

        add_unique(features, ded);
        json_decref(ded);
    }
    json_object_set_new(eff, "unitFeatures", features);
}

/* The effective settings (status.effective) into ret, with the compliance
 * tags and features pointing into them. */
static void effective_settings(const json_t *cluster, const json_t *tspec, const json_t *pspec,
                               const char *pname, const char *version,
                               struct kf_place_settings *ret)
{
    const json_t *spec = kf_json_path(cluster, "spec");
    const char *tname = kf_json_str(spec, "template", NULL);
    json_t *eff = json_object(), *v;
    size_t i;

    json_object_set_new(eff, "profile", json_string(pname));
    if (tname)
        json_object_set_new(eff, "template", json_string(tname));
    json_object_set_new(eff, "version", json_string(version));
    json_object_set_new(eff, "expectedNodes", json_integer(ret->nodes));
    ret->simulated_nodes = kf_json_int(cluster, "spec.simulatedNodes", 0);
    if (ret->simulated_nodes > 0)
        json_object_set_new(eff, "simulatedNodes", json_integer(ret->simulated_nodes));
    if (ret->pods >= 0)
        json_object_set_new(eff, "expectedPods", json_integer(ret->pods));
    if (ret->explicit_grade >= 0)
        json_object_set_new(eff, "grade", json_string(kf_grade_name(ret->explicit_grade)));
    effective_layers(eff, spec, tspec, pspec, ret->max_pods);
    effective_profile(eff, pspec);
    ret->effective = eff;
    json_array_foreach(json_object_get(eff, "compliance"), i,
                       v) if (ret->n_compliance < KF_ARRAY_SIZE(ret->compliance))
        ret->compliance[ret->n_compliance++] = json_string_value(v);
    json_array_foreach(json_object_get(eff, "unitFeatures"), i,
                       v) if (ret->n_features < KF_ARRAY_SIZE(ret->features))
        ret->features[ret->n_features++] = json_string_value(v);
}

int kf_place_settings(struct place_ctrl *d, const json_t *cluster, struct kf_place_settings *ret,
                      const char **ret_reason, struct kf_strbuf *why)
{
    const json_t *spec = kf_json_path(cluster, "spec");
    const char *tname = kf_json_str(spec, "template", NULL);
    json_t *tmpl = NULL, *tspec = NULL, *pspec;
    const char *pname, *version = NULL;
    int r;

    memset(ret, 0, sizeof(*ret));
    ret->explicit_grade = KF_GRADE_NONE;
    ret->pods = -1;
    *ret_reason = NULL;
    if (tname) {
        if (kf_informer_get(d->templates, tname, &tmpl) < 0) {
            *ret_reason = "TemplateNotFound";
            return kf_err(why, -KF_EINVALID,
                          "template \"%s\" does not exist: create it (kfleet get templates lists "
                          "them) or drop spec.template",
                          tname);
        }
        tspec = kf_json_path(tmpl, "spec");
    }
    pname = kf_json_str(spec, "profile", tspec ? kf_json_str(tspec, "profile", NULL) : NULL);
    if (!pname)
        pname = "standard";
    if (kf_informer_get(d->profiles, pname, &ret->profile) < 0) {
        *ret_reason = "ProfileNotFound";
        r = kf_err(why, -KF_EINVALID,
                   "profile \"%s\" does not exist (kfleet get profiles lists them)", pname);
        goto put_template;
    }
    pspec = kf_json_path(ret->profile, "spec");
    r = pick_version(spec, tspec, pspec, pname, kf_json_str(cluster, "status.version", NULL),
                     &version, ret_reason, why);
    if (r == 0)
        r = read_sizes(spec, tspec, pspec, pname, ret, ret_reason, why);
    if (r == 0)
        effective_settings(cluster, tspec, pspec, pname, version, ret);
put_template:
    json_decref(tmpl);
    return r;
}

static int64_t share_of(int64_t total, double share, unsigned replicas, int64_t unit,
                        int64_t floor_v)
{
    double v = (double)total * share / (double)(replicas ? replicas : 1);
    int64_t r = (int64_t)llround(v / (double)unit) * unit;

    return KF_MAX(r, floor_v);
}

/* The simulated nodes' KWOK: one replica, a small request that grows
 * with the nodes it keeps alive (measured: docs/BENCHMARKS.md). */
static void add_simulator(struct kf_grade_spec *shape, int64_t nodes)
{
    struct kf_component *c;

    if (nodes <= 0 || shape->n_components >= KF_GRADE_MAX_COMPONENTS)
        return;
    c = &shape->components[shape->n_components++];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", KF_KWOK_COMPONENT);
    c->replicas = 1;
    c->spread = KF_SPREAD_ZONES;
    c->req.cpu_milli = 50 + nodes / 10;
    c->req.mem_bytes = 64 * KF_MIB + nodes * 256 * 1024;
}

void kf_place_shape(const struct kf_grade_table *t, int g, const json_t *profile,
                    int64_t simulated_nodes, struct kf_grade_spec *ret)
{
    const struct kf_grade_spec *base = &t->grades[g];
    const json_t *pspec = kf_json_path(profile, "spec");
    json_t *comps = kf_json_path(pspec, "components"), *pc;
    struct kf_res total = kf_grade_total(base);
    int64_t api = kf_json_int(pspec, "apiServer.replicas", 0);
    int64_t etcd = kf_json_int(pspec, "etcd.members", 0);
    int64_t zones = kf_json_int(pspec, "hosting.minZones", 0);
    const char *quota = kf_json_str(pspec, "etcd.quotaBackendBytes", NULL);
    size_t i;

    *ret = *base;
    if (json_array_size(comps)) {
        ret->n_components = 0;
        for (unsigned b = 0; b < base->n_components; b++) {
            const struct kf_component *bc = &base->components[b];

            json_array_foreach(comps, i, pc)
            {
                struct kf_component *c;
                json_t *rep, *share;

                if (!kf_streq(kf_json_str(pc, "name", NULL), bc->name))
                    continue;
                rep = json_object_get(pc, "replicas");
                if (json_is_integer(rep) && json_integer_value(rep) == 0)
                    break;
                c = &ret->components[ret->n_components++];
                *c = *bc;
                if (json_is_integer(rep))
                    c->replicas = (unsigned)KF_MIN(json_integer_value(rep),
                                                   (json_int_t)KF_GRADE_MAX_REPLICAS);
                share = json_object_get(pc, "share");
                if (json_is_number(share)) {
                    c->req.cpu_milli =
                        share_of(total.cpu_milli, json_number_value(share), c->replicas, 10, 10);
                    c->req.mem_bytes = share_of(total.mem_bytes, json_number_value(share),
                                                c->replicas, KF_MIB, 64 * KF_MIB);
                }
                break;
            }
        }
        json_array_foreach(comps, i, pc)
        {
            const char *name = kf_json_str(pc, "name", "");
            json_t *rep = json_object_get(pc, "replicas"), *share = json_object_get(pc, "share");
            struct kf_component *c;
            bool in_base = false;
            double sh = json_is_number(share) ? json_number_value(share) : EXTRA_SHARE;

            for (unsigned b = 0; b < base->n_components; b++)
                in_base = in_base || strcmp(base->components[b].name, name) == 0;
            if (in_base || ret->n_components >= KF_GRADE_MAX_COMPONENTS ||
                (json_is_integer(rep) && json_integer_value(rep) == 0))
                continue;
            c = &ret->components[ret->n_components++];
            memset(c, 0, sizeof(*c));
            snprintf(c->name, sizeof(c->name), "%s", name);
            c->replicas = json_is_integer(rep) ? (unsigned)KF_MIN(json_integer_value(rep),
                                                                  (json_int_t)KF_GRADE_MAX_REPLICAS)
                                               : 1;
            c->spread =
                kf_json_bool(pc, "perZone", false) ? KF_SPREAD_ONE_PER_ZONE : KF_SPREAD_ZONES;
            c->req.cpu_milli = share_of(total.cpu_milli, sh, c->replicas, 10, 10);
            c->req.mem_bytes = share_of(total.mem_bytes, sh, c->replicas, KF_MIB, 64 * KF_MIB);
        }
    }
    for (unsigned c = 0; c < ret->n_components; c++) {
        if (api > 0 && strcmp(ret->components[c].name, "kube-apiserver") == 0)
            ret->components[c].replicas = (unsigned)KF_MIN(api, KF_GRADE_MAX_REPLICAS);
        if (etcd > 0 && strcmp(ret->components[c].name, "etcd") == 0)
            ret->components[c].replicas = (unsigned)KF_MIN(etcd, KF_GRADE_MAX_REPLICAS);
    }
    add_simulator(ret, simulated_nodes);
    if (zones > 0)
        ret->min_zones = (unsigned)KF_MIN(zones, KF_PLACE_MAX_ZONES);
    if (quota) {
        int64_t milli;

        if (kf_parse_quantity(quota, &milli) == 0)
            ret->etcd_quota_bytes = milli / 1000;
    }
}

void kf_place_shape_json(const struct kf_grade_spec *shape, json_t *effective)
{
    json_t *comps = json_array();
    char mem[32];

    for (unsigned i = 0; i < shape->n_components; i++) {
        const struct kf_component *c = &shape->components[i];
        json_t *o = kf_cap_res_json(c->req);

        json_object_set_new(o, "name", json_string(c->name));
        json_object_set_new(o, "replicas", json_integer(c->replicas));
        json_object_set_new(
            o, "spread", json_string(c->spread == KF_SPREAD_ONE_PER_ZONE ? "OnePerZone" : "Zones"));
        json_array_append_new(comps, o);
    }
    json_object_set_new(effective, "components", comps);
    json_object_set_new(effective, "requests", kf_cap_res_json(kf_grade_total(shape)));
    kf_cap_fmt_mem(shape->etcd_quota_bytes, mem, sizeof(mem));
    json_object_set_new(effective, "etcdQuota", json_string(mem));
    json_object_set_new(effective, "minZones", json_integer(shape->min_zones));
}

/* spec.placement.unitSelector against a unit of kf_cap_units_build (u->user
 * is its struct cap_unit; called with the model locked). */
static bool unit_selected(const struct kf_place_unit *u, void *ctx)
{
    const struct cap_unit *cu = u->user;

    return cu && kf_selector_matches_labels(ctx, cu->labels);
}

static bool unit_none(const struct kf_place_unit *u, void *ctx)
{
    (void)u, (void)ctx;
    return false;
}

void kf_place_cluster_zones(const json_t *cluster, struct kf_place_cluster *c,
                            const char *buf[KF_PLACE_MAX_ZONES])
{
    json_t *zones = kf_json_path(cluster, "spec.placement.zones"), *v;
    size_t i, n = 0;

    if (!json_is_array(zones))
        return;
    json_array_foreach(zones, i, v) if (n < KF_PLACE_MAX_ZONES && json_is_string(v)) buf[n++] =
        json_string_value(v);
    c->zones = buf;
    c->n_zones = n;
}

void kf_place_cluster_input(const json_t *cluster, const struct kf_place_settings *s, int grade,
                            const struct kf_grade_spec *shape, struct kf_place_cluster *ret,
                            struct place_input_bufs *bufs)
{
    json_t *av = kf_json_path(cluster, "spec.placement.avoidUnits"), *v;
    json_t *sel = kf_json_path(cluster, "spec.placement.unitSelector");
    size_t i, n = 0;

    memset(ret, 0, sizeof(*ret));
    memset(bufs, 0, sizeof(*bufs));
    ret->name = kf_obj_name(cluster);
    ret->region = kf_json_str(cluster, "spec.region", NULL);
    ret->grade = grade;
    ret->shape = shape;
    ret->expected_nodes = s->nodes;
    {
        int m = kf_version_minor(kf_json_str(s->effective, "version", NULL));

        ret->k8s_minor = m >= 1000 && m < 1064 ? (unsigned)(m - 1000) : 0;
    }
    ret->compliance = s->compliance;
    ret->n_compliance = s->n_compliance;
    ret->features = s->features;
    ret->n_features = s->n_features;
    ret->unit = kf_json_str(cluster, "spec.placement.unit", NULL);
    json_array_foreach(av, i, v) if (n < KF_ARRAY_SIZE(bufs->avoid) && json_is_string(v))
        bufs->avoid[n++] = json_string_value(v);
    ret->avoid_units = bufs->avoid;
    ret->n_avoid_units = n;
    kf_place_cluster_zones(cluster, ret, bufs->zones);
    if (json_is_object(sel)) {
        struct kf_strbuf text = KF_STRBUF_INIT;

        /* admission checked it; one that fails here selects nothing */
        ret->unit_ok = unit_none;
        if (kf_selector_from_json(sel, &bufs->unit_selector, &text) == 0) {
            kf_strbuf_reset(&text);
            kf_selector_format(bufs->unit_selector, &text);
            ret->unit_ok = unit_selected;
        }
        bufs->unit_selector_text = kf_xasprintf("(%s)", text.len ? text.buf : "{}");
        kf_strbuf_release(&text);
        ret->unit_ok_ctx = bufs->unit_selector;
        ret->unit_ok_what = bufs->unit_selector_text;
    }
}

void kf_place_input_bufs_release(struct place_input_bufs *bufs)
{
    kf_selector_free(bufs->unit_selector);
    free(bufs->unit_selector_text);
    bufs->unit_selector = NULL;
    bufs->unit_selector_text = NULL;
}

bool kf_place_in_window(const json_t *window, const char *name, int64_t now_ms)
{
    return kf_window_allows(window, name, (time_t)(now_ms / 1000), NULL);
}
