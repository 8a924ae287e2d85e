/* ctrl-monitoring-state.c: fleet-state metrics, the kube-state-metrics of kfleet.
 *
 * The monitoring controller's watch handlers call kf_monstate_update for every
 * GuestCluster, Host and Unit event; it keeps, per object, the few values
 * the metrics need and, per label tuple, a count. A scrape reads only those
 * aggregates: at 10,000 clusters it formats a few hundred series and never
 * parses an object or touches the store.
 *
 *   kfleet_guest_clusters{phase,grade,unit}        clusters ("" before placement)
 *   kfleet_hosts{unit,zone}, kfleet_hosts_ready{unit,zone}   meta hosts
 *   kfleet_unit_water_level_ratio{unit,region}     spec.waterLevel, the mark
 *   kfleet_unit_requests_ratio{unit,region,resource}  status.waterLevel: requests
 *                                                  / allocatable now
 *   kfleet_unit_resource_{capacity,allocatable,allocated}{unit,region,resource}
 *                                                  cores for cpu, bytes otherwise
 *   kfleet_unit_above_water_level{unit,region}     status.aboveWaterLevel as 0/1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-monitoring.h"

static void count_add(json_t *counts, const char *key, int d)
{
    json_int_t n = json_integer_value(json_object_get(counts, key)) + d;

    if (n > 0)
        json_object_set_new(counts, key, json_integer(n));
    else
        json_object_del(counts, key);
}

/* Replaces name's tuple in `items` by `tuple` (NULL: deleted) and moves
 * the counts. */
static void retuple(json_t *items, json_t *counts, const char *name, const char *tuple)
{
    const char *old = json_string_value(json_object_get(items, name));

    if (old && tuple && strcmp(old, tuple) == 0)
        return;
    if (old)
        count_add(counts, old, -1);
    if (tuple) {
        json_object_set_new(items, name, json_string(tuple));
        count_add(counts, tuple, 1);
    } else {
        json_object_del(items, name);
    }
}

/* Label values must not hold the separator; object fields are names. */
static const char *field(const json_t *obj, const char *path)
{
    const char *s = kf_json_str(obj, path, "");

    return strchr(s, '\t') ? "" : s;
}

static json_t *resources(const json_t *obj, const char *path)
{
    json_t *in = kf_json_path(obj, path), *out = json_object(), *v;
    const char *k;

    json_object_foreach(in, k, v)
    {
        int64_t milli;

        if (json_is_string(v) && kf_parse_quantity(json_string_value(v), &milli) == 0)
            json_object_set_new(out, k, json_real((double)milli / 1000.0));
        else if (json_is_number(v))
            json_object_set_new(out, k, json_real(json_number_value(v)));
    }
    return out;
}

void kf_monstate_update(struct monstate *s, const json_t *obj, bool deleted)
{
    const char *kind = kf_json_str(obj, "kind", "");
    const char *name = kf_obj_name(obj);
    struct kf_strbuf t = KF_STRBUF_INIT;

    if (!name)
        return;
    pthread_mutex_lock(&s->lock);
    if (strcmp(kind, "GuestCluster") == 0) {
        kf_strbuf_addf(&t, "%s\t%s\t%s", field(obj, "status.phase"), field(obj, "status.grade"),
                       field(obj, "status.unit"));
        retuple(s->clusters, s->cluster_counts, name, deleted ? NULL : t.buf);
    } else if (strcmp(kind, "Host") == 0) {
        if (strcmp(kf_json_str(obj, "spec.role", ""), "meta") == 0) {
            kf_strbuf_addf(&t, "%s\t%s\t%s", field(obj, "spec.unit"), field(obj, "spec.zone"),
                           kf_json_bool(obj, "status.ready", false) ? "1" : "0");
            retuple(s->hosts, s->host_counts, name, deleted ? NULL : t.buf);
        }
    } else if (strcmp(kind, "Unit") == 0) {
        if (deleted) {
            json_object_del(s->units, name);
        } else {
            json_t *u = json_pack(
                "{s:s,s:f,s:o,s:o,s:o,s:o,s:b}", "region", kf_json_str(obj, "spec.region", ""),
                "mark", kf_json_num(obj, "spec.waterLevel", 0.6), "ratio",
                resources(obj, "status.waterLevel"), "capacity", resources(obj, "status.capacity"),
                "allocatable", resources(obj, "status.allocatable"), "allocated",
                resources(obj, "status.allocated"), "above",
                kf_json_bool(obj, "status.aboveWaterLevel", false));

            json_object_set_new(s->units, name, u);
        }
    }
    pthread_mutex_unlock(&s->lock);
    kf_strbuf_release(&t);
}

/* --- collection ----------------------------------------------------------- */

struct coll {
    struct monstate *s;
    int which;
};

/* Splits a tab-joined tuple into at most 3 values (in place). */
static void split3(char *t, const char *v[3])
{
    v[0] = t;
    v[1] = v[2] = "";
    for (int i = 1; i < 3; i++) {
        char *tab = strchr(t, '\t');

        if (!tab)
            break;
        *tab = '\0';
        t = tab + 1;
        v[i] = t;
    }
}

static void collect_clusters(struct kf_metric *f, void *arg)
{
    struct monstate *s = arg;
    const char *k;
    json_t *v;

    pthread_mutex_lock(&s->lock);
    json_object_foreach(s->cluster_counts, k, v)
    {
        char *t = kf_xstrdup(k);
        const char *lv[3];

        split3(t, lv);
        kf_metric_set(f, lv, (double)json_integer_value(v));
        free(t);
    }
    pthread_mutex_unlock(&s->lock);
}

static void collect_hosts(struct kf_metric *f, void *arg)
{
    struct coll *c = arg;
    const char *k;
    json_t *v;

    pthread_mutex_lock(&c->s->lock);
    json_object_foreach(c->s->host_counts, k, v)
    {
        char *t = kf_xstrdup(k);
        const char *lv[3];

        split3(t, lv);
        /* kfleet_hosts counts every host; _ready only ready ones. Both
         * families exist for every (unit, zone), 0 included. */
        if (c->which == 0 || strcmp(lv[2], "1") == 0)
            kf_metric_add(f, lv, (double)json_integer_value(v));
        else
            kf_metric_add(f, lv, 0);
        free(t);
    }
    pthread_mutex_unlock(&c->s->lock);
}

static void collect_units(struct kf_metric *f, void *arg)
{
    static const char *const maps[] = { "ratio", "capacity", "allocatable", "allocated" };
    struct coll *c = arg;
    const char *name;
    json_t *u;

    pthread_mutex_lock(&c->s->lock);
    json_object_foreach(c->s->units, name, u)
    {
        const char *region = kf_json_str(u, "region", "");

        if (c->which == 0) {
            kf_metric_set(f, KF_LABELS(name, region), kf_json_num(u, "mark", 0));
        } else if (c->which == 5) {
            kf_metric_set(f, KF_LABELS(name, region), kf_json_bool(u, "above", false) ? 1 : 0);
        } else {
            const char *res;
            json_t *v;

            json_object_foreach(json_object_get(u, maps[c->which - 1]), res, v)
                kf_metric_set(f, KF_LABELS(name, region, res), json_number_value(v));
        }
    }
    pthread_mutex_unlock(&c->s->lock);
}

void kf_monstate_init(struct monstate *s, struct kf_metrics *metrics)
{
    static const struct {
        const char *name, *help;
        bool by_resource;
    } unit_fams[] = {
        { "kfleet_unit_water_level_ratio",
          "The unit's water level (spec.waterLevel): the share of allocatable CPU and memory "
          "that requests may reach.",
          false },
        { "kfleet_unit_requests_ratio",
          "Requests of the control-plane members bound to the unit's hosts over allocatable, "
          "per resource.",
          true },
        { "kfleet_unit_resource_capacity",
          "Total resources of the unit's Ready hosts (cores for cpu, bytes otherwise).", true },
        { "kfleet_unit_resource_allocatable",
          "Resources available to control planes (cores for cpu, bytes otherwise).", true },
        { "kfleet_unit_resource_allocated",
          "Requests of the members bound to the unit (cores for cpu, bytes otherwise).", true },
        { "kfleet_unit_above_water_level",
          "1 while the unit's CPU or memory requests exceed its water level.", false },
    };
    struct coll *c;

    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->clusters = json_object();
    s->cluster_counts = json_object();
    s->hosts = json_object();
    s->host_counts = json_object();
    s->units = json_object();
    if (!metrics)
        return;
    /* freed by kf_monstate_release: kfleetd stops serving /metrics first */
    c = kf_xcalloc(KF_ARRAY_SIZE(unit_fams) + 2, sizeof(*c));
    kf_metrics_collected(metrics, KF_METRIC_GAUGE, "kfleet_guest_clusters",
                         "Guest clusters by phase, grade and unit (empty before placement).",
                         "phase,grade,unit", collect_clusters, s);
    for (int i = 0; i < 2; i++) {
        c[i].s = s;
        c[i].which = i;
        kf_metrics_collected(metrics, KF_METRIC_GAUGE, i ? "kfleet_hosts_ready" : "kfleet_hosts",
                             i ? "Meta hosts that are Ready, by unit and zone."
                               : "Meta hosts, by unit and zone.",
                             "unit,zone", collect_hosts, &c[i]);
    }
    for (size_t i = 0; i < KF_ARRAY_SIZE(unit_fams); i++) {
        c[2 + i].s = s;
        c[2 + i].which = (int)i;
        kf_metrics_collected(metrics, KF_METRIC_GAUGE, unit_fams[i].name, unit_fams[i].help,
                             unit_fams[i].by_resource ? "unit,region,resource" : "unit,region",
                             collect_units, &c[2 + i]);
    }
    s->coll = c;
}

void kf_monstate_release(struct monstate *s)
{
    json_decref(s->clusters);
    json_decref(s->cluster_counts);
    json_decref(s->hosts);
    json_decref(s->host_counts);
    json_decref(s->units);
    free(s->coll);
    pthread_mutex_destroy(&s->lock);
}
