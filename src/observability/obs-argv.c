/* obs-argv.c: the command lines of the monitoring processes, for whatever
 * supervises them (kfleetd or an agent in a local fleet). Every path points
 * into the instance's folder under the monitoring root; --web.external-url
 * is always set so links in alerts and notifications name a reachable
 * address rather than the machine's host name. The argv is exec'ed
 * directly, never through a shell.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

/* Adds "flag=<duration>" in Prometheus' notation. */
static void add_duration(struct kf_argv *a, const char *flag, int64_t ms)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;

    kf_strbuf_addf(&sb, "%s=", flag);
    kf_obs_duration(&sb, ms);
    kf_argv_add(a, sb.buf);
    kf_strbuf_release(&sb);
}

void kf_obs_argv_prometheus(const struct kf_obs_fleet *f, const struct kf_obs_instance *inst,
                            int64_t retention_ms, const char *root, struct kf_argv *ret)
{
    struct kf_obs_binaries b;
    struct kf_argv a = { 0 };
    struct kf_obs_settings s;
    char *url = kf_obs_external_url(inst->listen, inst->external);

    kf_obs_binaries_defaults(&f->bin, &b);
    kf_obs_settings_effective(f, NULL, &s);
    kf_argv_add(&a, b.prometheus);
    kf_argv_addf(&a, "--config.file=%s/%s/prometheus.yml", root, inst->name);
    kf_argv_addf(&a, "--storage.tsdb.path=%s/%s/data", root, inst->name);
    add_duration(&a, "--storage.tsdb.retention.time", retention_ms ? retention_ms : s.retention_ms);
    kf_argv_addf(&a, "--web.listen-address=%s", inst->listen);
    kf_argv_addf(&a, "--web.external-url=%s", url);
    kf_argv_add(&a, "--web.enable-lifecycle");
    free(url);
    *ret = a;
}

void kf_obs_argv_alertmanager(const struct kf_obs_fleet *f, const struct kf_obs_alertmanager *am,
                              const char *root, struct kf_argv *ret)
{
    const struct kf_obs_alerting *al = &f->alerting;
    int64_t peer = al->peer_timeout_ms ? al->peer_timeout_ms : 15000;
    int64_t settle = al->settle_timeout_ms ? al->settle_timeout_ms : 2 * peer;
    struct kf_obs_binaries b;
    struct kf_argv a = { 0 };
    char *url = kf_obs_external_url(am->listen, am->external);

    kf_obs_binaries_defaults(&f->bin, &b);
    kf_argv_add(&a, b.alertmanager);
    kf_argv_addf(&a, "--config.file=%s/%s/alertmanager.yml", root, am->name);
    kf_argv_addf(&a, "--storage.path=%s/%s/data", root, am->name);
    kf_argv_addf(&a, "--web.listen-address=%s", am->listen);
    kf_argv_addf(&a, "--web.external-url=%s", url);
    kf_argv_addf(&a, "--cluster.listen-address=%s", am->cluster_listen);
    kf_argv_addf(&a, "--cluster.advertise-address=%s", am->cluster_listen);
    for (size_t i = 0; i < f->n_alertmanagers; i++)
        if (&f->alertmanagers[i] != am &&
            strcmp(f->alertmanagers[i].cluster_listen, am->cluster_listen) != 0)
            kf_argv_addf(&a, "--cluster.peer=%s", f->alertmanagers[i].cluster_listen);
    add_duration(&a, "--cluster.peer-timeout", peer);
    add_duration(&a, "--cluster.settle-timeout", settle);
    free(url);
    *ret = a;
}

void kf_obs_argv_node_exporter(const struct kf_obs_binaries *bin, const char *listen,
                               struct kf_argv *ret)
{
    struct kf_obs_binaries b;
    struct kf_argv a = { 0 };

    kf_obs_binaries_defaults(bin, &b);
    kf_argv_add(&a, b.node_exporter);
    kf_argv_addf(&a, "--web.listen-address=%s", listen);
    *ret = a;
}

int kf_obs_argv_instance(const struct kf_obs_fleet *f, const char *name, const char *root,
                         struct kf_argv *ret)
{
    struct kf_obs_settings s;

    for (size_t i = 0; i < f->n_units; i++) {
        const struct kf_obs_unit *u = &f->units[i];

        for (size_t j = 0; j < u->n_edges; j++)
            if (kf_streq(u->edges[j].name, name)) {
                kf_obs_settings_effective(f, kf_obs_region_find(f, u->region), &s);
                kf_obs_argv_prometheus(f, &u->edges[j], s.retention_ms, root, ret);
                return 0;
            }
    }
    for (size_t i = 0; i < f->n_regions; i++) {
        const struct kf_obs_region *r = &f->regions[i];

        for (size_t j = 0; j < r->n_cascades; j++)
            if (kf_streq(r->cascades[j].name, name)) {
                kf_obs_settings_effective(f, r, &s);
                kf_obs_argv_prometheus(f, &r->cascades[j], s.retention_ms, root, ret);
                return 0;
            }
    }
    for (size_t i = 0; i < f->n_centrals; i++)
        if (kf_streq(f->centrals[i].name, name)) {
            kf_obs_argv_prometheus(f, &f->centrals[i], 0, root, ret);
            return 0;
        }
    for (size_t i = 0; i < f->n_alertmanagers; i++)
        if (kf_streq(f->alertmanagers[i].name, name)) {
            kf_obs_argv_alertmanager(f, &f->alertmanagers[i], root, ret);
            return 0;
        }
    return -ENOENT;
}
