/* ctrl-endpoint.c: the endpoints controller: a stable endpoint per guest
 * cluster, an HAProxy per unit in front of the clusters' kube-apiservers
 * (kfleetd --endpoints external|local; docs/internals/endpoints.md).
 *
 * Keys are Unit names (and "/sweep", which no unit can be called). For a
 * unit it gathers the GuestClusters placed on it (status.unit) that are not
 * being deleted and have status.endpoints.apiServer ("https://ADDR:PORT",
 * which the lifecycle controller writes), with their kube-apiserver
 * ControlPlaneMembers that are not being deleted and have spec.ports.https,
 * at their Host's address (spec.address, else status.address, else
 * 127.0.0.1), and the cluster's CA (the store's /_pki/<cluster>, else
 * kfleetd's working copy <data-dir>/pki/<cluster>/ca.crt), copied next to
 * the file so that the PKI's own life cannot break a reload. Then:
 *
 *   1. settings from the Unit's annotations endpoints.kfleet.io/<name>, each
 *      validated (kf_ep_settings_set); one that is not valid keeps the
 *      last good file and records a Warning (EndpointSettingsInvalid);
 *   2. renders haproxy.cfg (kf_ep_render_haproxy); if the bytes differ from
 *      the live <root>/<unit>/haproxy.cfg, writes a candidate next to it,
 *      runs `haproxy -c` on it, and renames it over the live file only when
 *      HAProxy accepts it; a refusal keeps the last good file and records a
 *      Warning (EndpointConfigRefused) with HAProxy's own message;
 *   3. local mode: makes the runner run the unit's HAProxy and, when the
 *      live file changed under a running one, sends it SIGUSR2 (Normal
 *      event Reloaded); one that is not ready yet is asked again shortly;
 *   4. a unit with no endpoint left: its HAProxy is stopped and its folder
 *      removed (EndpointsRemoved).
 *
 * "/sweep" (at start) queues every folder under the root
 * and stops runner processes of units that no longer have one, so what a
 * crashed kfleetd left behind is adopted or cleaned up.
 *
 * Watches: GuestCluster (its unit, and the unit it was on before),
 * ControlPlaneMember (its cluster's unit), Host (the units of its members),
 * Unit (itself). One worker: units are few, a render is cheap, and the
 * reloads of one unit must not race.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kfleet/file.h"
#include "kfleet/controllers.h"
#include "kfleet/endpoint.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/obs.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-lifecycle.h"
#include "controllers/ctrl-members.h"

KF_LOG_MODULE(endpoints);

#define SWEEP_KEY        "/sweep"
#define BY_UNIT          "ep.unit" /* GuestClusters by status.unit */
#define APISERVER        "kube-apiserver"
#define CA_MAX           (64 * 1024)
#define RETRY_NOT_READY  500
#define RETRY_WAITING_CA 2000
#define RETRY_FAILURE    30000
#define CFG_NAME         "haproxy.cfg"
#define CANDIDATE_NAME   ".haproxy.cfg.candidate"
#define COALESCE_MS      100 /* one reconcile for a burst of changes */

struct epctl {
    struct kf_ctrl *c;
    struct kf_registry *reg;
    struct kf_store *store;
    char *data_dir;
    struct kf_endpoints *ep;
    struct kf_recorder *rec;
    struct kf_informer *clusters, *members, *hosts, *units;
    pthread_mutex_t lock;
    json_t *cluster_unit; /* cluster -> unit it was last seen on (lock) */
    /* clusters whose last event put them in their unit's view: an
     * endpoint URL, not being deleted (keys only; lock) */
    struct kf_smap in_view;
    struct kf_smap host_addr; /* host -> its address at its last event (owned; lock) */
    json_t *pending;          /* units whose HAProxy must still be reloaded */
    /* unit -> {"address", "port"}: the frontend its running HAProxy's
     * readiness probe connects to, one that the configuration the process
     * runs has (a frontend only in the next, not yet loaded, configuration
     * would make it look not ready, and a HAProxy that is not ready is
     * never reloaded) */
    json_t *probe;
    json_t *problems; /* "Kind/name" -> the last warning recorded about it */
    json_t *ca_uid;   /* cluster -> uid of the cluster whose CA its copy holds */
};

/* --- watches ----------------------------------------------------------------- */

static void index_unit(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *u = kf_json_str(obj, "status.unit", NULL);

    if (u && *u)
        add(u, ctx);
}

static void enqueue_cluster_unit(struct epctl *d, const char *cluster)
{
    const char *u;
    char *unit = NULL;
    json_t *gc = NULL;

    pthread_mutex_lock(&d->lock);
    u = json_string_value(json_object_get(d->cluster_unit, cluster));
    if (u)
        unit = kf_xstrdup(u);
    pthread_mutex_unlock(&d->lock);
    if (!unit && kf_informer_get(d->clusters, cluster, &gc) == 0) {
        u = kf_json_str(gc, "status.unit", NULL);
        if (u && *u)
            unit = kf_xstrdup(u);
    }
    if (unit)
        kf_ctrl_enqueue_after(d->c, unit, COALESCE_MS);
    json_decref(gc);
    free(unit);
}

/* A cluster's event queues its unit (and the one it left) only when the
 * cluster is in a unit's view now or was at its last event: one without an
 * endpoint URL, or being deleted, is left out of the view (build_view), so
 * the events of a placement burst before the lifecycle controller gives
 * the clusters their endpoints (placed, its status and conditions written)
 * each made a unit's view be built again for nothing: a fifth of
 * kfleetd's CPU during a burst of 3,000 at 300 units. */
static void map_cluster(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct epctl *d = kf_ctrl_data(c);
    const char *name = kf_obj_name(obj), *unit = kf_json_str(obj, "status.unit", NULL);
    const char *url = kf_json_str(obj, "status.endpoints.apiServer", NULL);
    bool in_view = !deleted && !kf_obj_deleting(obj) && url && *url, was_in_view;
    char *before = NULL;

    if (!name)
        return;
    pthread_mutex_lock(&d->lock);
    if (json_string_value(json_object_get(d->cluster_unit, name)))
        before = kf_xstrdup(json_string_value(json_object_get(d->cluster_unit, name)));
    if (deleted || !unit || !*unit)
        json_object_del(d->cluster_unit, name);
    else
        json_object_set_new(d->cluster_unit, name, json_string(unit));
    was_in_view = kf_smap_contains(&d->in_view, name);
    if (in_view && !was_in_view)
        kf_smap_put(&d->in_view, name, NULL);
    else if (!in_view && was_in_view)
        kf_smap_remove(&d->in_view, name);
    pthread_mutex_unlock(&d->lock);
    if (!in_view && !was_in_view) {
        free(before);
        return;
    }
    if (before && !kf_streq(before, unit))
        kf_ctrl_enqueue_after(c, before, COALESCE_MS);
    if (unit && *unit)
        kf_ctrl_enqueue_after(c, unit, COALESCE_MS);
    free(before);
}

/* An apiserver member's event queues its cluster's unit, unless the
 * member has no port (placement creates members without one; the
 * lifecycle controller gives each its ports once, in one write) and is
 * neither deleted nor being deleted: such a member is no backend of the
 * view (cluster_backends), and it only becomes one by an event that has
 * its port. The resync looks at every unit anyway. */
static void map_member(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    const char *cluster = kf_json_str(obj, "spec.cluster", NULL);
    int64_t port = kf_json_int(obj, "spec.ports.https", 0);

    if (!deleted && !kf_obj_deleting(obj) && (port < 1 || port > 65535))
        return;
    if (cluster && kf_streq(kf_json_str(obj, "spec.component", NULL), APISERVER))
        enqueue_cluster_unit(kf_ctrl_data(c), cluster);
}

/* What a unit's view reads of a host is its address: a host's event that
 * keeps it (its status written as members land on it, its readiness)
 * queues nothing, and reads none of its members. */
static void map_host(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct epctl *d = kf_ctrl_data(c);
    const char *name = kf_obj_name(obj);
    const char *addr = deleted ? NULL : kf_host_address(obj, "127.0.0.1");
    const char *was;
    bool same;

    if (!name)
        return;
    pthread_mutex_lock(&d->lock);
    was = kf_smap_get(&d->host_addr, name);
    same = was && addr && strcmp(was, addr) == 0;
    if (!same) {
        free(kf_smap_remove(&d->host_addr, name));
        if (addr)
            kf_smap_put(&d->host_addr, name, kf_xstrdup(addr));
    }
    pthread_mutex_unlock(&d->lock);
    if (!same)
        kf_informer_map_host_members(d->members, name, c, map_member);
}

static int ep_setup(struct kf_ctrl *c)
{
    struct epctl *d = kf_ctrl_data(c);
    struct kf_ctrl_manager *m = kf_ctrl_manager_of(c);
    int r;

    d->c = c;
    d->clusters = kf_ctrl_informer(m, &kf_kind_guestcluster);
    d->hosts = kf_ctrl_informer(m, &kf_kind_host);
    d->units = kf_ctrl_informer(m, &kf_kind_unit);
    if ((r = kf_informer_add_index(d->clusters, BY_UNIT, index_unit)) < 0 ||
        (r = kf_ctrl_members_informer(m, &d->members)) < 0)
        return r;
    r = kf_informer_add_index(d->members, KF_INDEX_MEMBER_HOST, kf_index_member_host);
    if (r < 0 && r != -EEXIST)
        return r;
    if ((r = kf_ctrl_watch(c, &kf_kind_guestcluster, map_cluster)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_controlplanemember, map_member)) < 0 ||
        (r = kf_ctrl_watch(c, &kf_kind_host, map_host)) < 0)
        return r;
    if (d->ep)
        kf_ctrl_enqueue(c, SWEEP_KEY);
    return 0;
}

/* --- events ----------------------------------------------------------------- */

static json_t *object_ref(struct kf_informer *inf, const char *kind, const char *name)
{
    json_t *obj = NULL;

    if (inf && kf_informer_get(inf, name, &obj) == 0)
        return obj;
    return json_pack("{s:s,s:{s:s}}", "kind", kind, "metadata", "name", name);
}

static void event(struct epctl *d, struct kf_informer *inf, const char *kind, const char *name,
                  bool warning, const char *reason, const char *fmt, ...) KF_PRINTF(7, 8);

static void event(struct epctl *d, struct kf_informer *inf, const char *kind, const char *name,
                  bool warning, const char *reason, const char *fmt, ...)
{
    json_t *obj = object_ref(inf, kind, name);
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = kf_xvasprintf(fmt, ap);
    va_end(ap);
    if (warning)
        kf_log_warn("%s %s: %s", kind, name, msg);
    else
        kf_log_info("%s %s: %s", kind, name, msg);
    kf_recorder_event(d->rec, obj, warning ? KF_EVENT_WARNING : KF_EVENT_NORMAL, reason, msg);
    free(msg);
    json_decref(obj);
}

/* A Warning about an object once per message, not once per reconcile;
 * msg NULL: the object is fine again. */
static void problem(struct epctl *d, struct kf_informer *inf, const char *kind, const char *name,
                    const char *reason, const char *msg)
{
    char *key = kf_xasprintf("%s/%s", kind, name);
    const char *was = json_string_value(json_object_get(d->problems, key));

    if (!msg) {
        json_object_del(d->problems, key);
    } else if (!kf_streq(was, msg)) {
        if (json_object_size(d->problems) > 10000)
            json_object_clear(d->problems);
        json_object_set_new(d->problems, key, json_string(msg));
        event(d, inf, kind, name, true, reason, "%s", msg);
    }
    free(key);
}

/* --- files ----------------------------------------------------------------- */

static char *read_small(const char *path, size_t max, size_t *ret_len)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return NULL;
    while ((n = read(fd, buf, sizeof(buf))) > 0 && sb.len <= max)
        kf_strbuf_add(&sb, buf, (size_t)n);
    close(fd);
    if (n < 0 || sb.len > max) {
        kf_strbuf_release(&sb);
        return NULL;
    }
    return kf_strbuf_detach(&sb, ret_len);
}

/* The cluster CA's PEM (malloc'ed), from the store, else the lifecycle
 * controller's working copy; NULL when there is none yet. */
static char *cluster_ca(struct epctl *d, const char *cluster)
{
    json_t *files = NULL;
    char *pem = NULL;

    if (d->store && kf_lifecycle_pki_load(d->store, cluster, &files, NULL) == 0) {
        const char *s = json_string_value(json_object_get(files, "ca.crt"));

        if (s && strlen(s) < CA_MAX)
            pem = kf_xstrdup(s);
        json_decref(files);
    }
    if (!pem && d->data_dir) {
        char *path = kf_xasprintf("%s/pki/%s/ca.crt", d->data_dir, cluster);

        pem = read_small(path, CA_MAX, NULL);
        free(path);
    }
    if (pem && !strstr(pem, "-----BEGIN CERTIFICATE-----")) {
        free(pem);
        pem = NULL;
    }
    return pem;
}

/* Writes data to path unless it already holds exactly that. */
static int write_if_changed(const char *path, const char *data, size_t len, struct kf_strbuf *err)
{
    size_t have_len = 0;
    char *have = read_small(path, len + 1, &have_len);
    bool same = have && have_len == len && memcmp(have, data, len) == 0;

    free(have);
    return same ? 0 : kf_write_file_atomic(path, data, len, 0644, true, err);
}

/* Removes <dir>/ca/<x>.crt files of clusters not in keep. */
static void remove_stale_cas(const char *dir, const struct kf_ep_cluster *keep, size_t n)
{
    char *cadir = kf_xasprintf("%s/ca", dir);
    DIR *dh = opendir(cadir);
    struct dirent *e;

    while (dh && (e = readdir(dh))) {
        size_t len = strlen(e->d_name);
        bool wanted = false;

        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".crt") != 0)
            continue;
        for (size_t i = 0; i < n && !wanted; i++)
            wanted = strlen(keep[i].name) == len - 4 && !strncmp(keep[i].name, e->d_name, len - 4);
        if (!wanted) {
            char *p = kf_xasprintf("%s/%s", cadir, e->d_name);

            unlink(p);
            free(p);
        }
    }
    if (dh)
        closedir(dh);
    free(cadir);
}

/* --- what a unit should serve ---------------------------------------------- */

struct ep_backend_store {
    char *name;
    char *address;
};

struct ep_view {
    struct kf_ep_cluster *clusters;
    size_t n;
    /* what the structs point into */
    char **strings;
    size_t n_strings;
    struct kf_ep_backend **backends;
    size_t n_backend_arrays;
    bool waiting; /* a cluster waits for something that comes by itself (its CA) */
};

/* The frontend a HAProxy running v's configuration is probed on: the one
 * probed now if v still has it (a stable probe), else the first by name.
 * v has at least one cluster. */
static const struct kf_ep_cluster *probe_next(struct epctl *d, const char *unit,
                                              const struct ep_view *v)
{
    const json_t *now = json_object_get(d->probe, unit);
    const struct kf_ep_cluster *first = &v->clusters[0];

    for (size_t i = 0; i < v->n; i++) {
        if (now && kf_streq(kf_json_str(now, "address", ""), v->clusters[i].address) &&
            kf_json_int(now, "port", 0) == v->clusters[i].port)
            return &v->clusters[i];
        if (strcmp(v->clusters[i].name, first->name) < 0)
            first = &v->clusters[i];
    }
    return first;
}

static const char *keep(struct ep_view *v, char *s)
{
    v->strings = kf_xrealloc(v->strings, (v->n_strings + 1) * sizeof(*v->strings));
    v->strings[v->n_strings++] = s;
    return s;
}

static void view_release(struct ep_view *v)
{
    for (size_t i = 0; i < v->n_strings; i++)
        free(v->strings[i]);
    free(v->strings);
    for (size_t i = 0; i < v->n_backend_arrays; i++)
        free(v->backends[i]);
    free(v->backends);
    free(v->clusters);
    memset(v, 0, sizeof(*v));
}

/* The host's address (malloc'ed) as the lifecycle controller reads it;
 * NULL when there is no such Host. */
static char *host_address(struct epctl *d, const char *host)
{
    json_t *h = NULL;
    const char *a;
    char *copy = NULL;

    if (!host || kf_informer_get(d->hosts, host, &h) < 0)
        return NULL;
    a = kf_host_address(h, "127.0.0.1");
    copy = kf_xstrdup(a);
    json_decref(h);
    return copy;
}

/* The apiservers of cluster, into a new array (*ret_n of them). */
static struct kf_ep_backend *cluster_backends(struct epctl *d, struct ep_view *v,
                                              const char *cluster, size_t *ret_n)
{
    char **names = NULL;
    size_t n = kf_informer_index_names(d->members, KF_MEMBERS_BY_CLUSTER, cluster, &names), nb = 0;
    struct kf_ep_backend *bs = kf_xcalloc(n ? n : 1, sizeof(*bs));

    for (size_t i = 0; i < n && nb < KF_EP_BACKENDS_MAX; i++) {
        json_t *m = NULL;
        int64_t port;
        char *addr;

        if (kf_informer_get(d->members, names[i], &m) < 0)
            continue;
        port = kf_json_int(m, "spec.ports.https", 0);
        if (!kf_streq(kf_json_str(m, "spec.component", NULL), APISERVER) || kf_obj_deleting(m) ||
            port < 1 || port > 65535) {
            json_decref(m);
            continue;
        }
        addr = host_address(d, kf_json_str(m, "spec.host", NULL));
        if (!addr || !kf_ep_ip_literal(addr)) {
            kf_log_dbg("member %s: host address \"%s\" is not an IP address: left out", names[i],
                       addr ? addr : "(no host)");
            free(addr);
            json_decref(m);
            continue;
        }
        bs[nb].name = keep(v, kf_xstrdup(names[i]));
        bs[nb].address = keep(v, addr);
        bs[nb].port = (int)port;
        nb++;
        json_decref(m);
    }
    kf_ctrl_names_free(names, n);
    v->backends = kf_xrealloc(v->backends, (v->n_backend_arrays + 1) * sizeof(*v->backends));
    v->backends[v->n_backend_arrays++] = bs;
    *ret_n = nb;
    return bs;
}

/* Gathers the unit's endpoints; writes each one's CA under dir/ca/. */
static void build_view(struct epctl *d, const char *unit, const char *dir, struct ep_view *v)
{
    char **names = NULL;
    size_t n = kf_informer_index_names(d->clusters, BY_UNIT, unit, &names);
    struct kf_strbuf err = KF_STRBUF_INIT;
    bool dir_made = false;

    v->clusters = kf_xcalloc(n ? n : 1, sizeof(*v->clusters));
    for (size_t i = 0; i < n && v->n < KF_EP_CLUSTERS_MAX; i++) {
        struct kf_ep_cluster *c = &v->clusters[v->n];
        char addr[KF_EP_ADDR_MAX];
        const char *url;
        json_t *gc = NULL;
        char *ca = NULL, *ca_path;
        const char *uid;
        int port = 0;

        if (kf_informer_get(d->clusters, names[i], &gc) < 0)
            continue;
        url = kf_json_str(gc, "status.endpoints.apiServer", NULL);
        if (kf_obj_deleting(gc) || !url || !kf_streq(kf_json_str(gc, "status.unit", NULL), unit)) {
            problem(d, d->clusters, "GuestCluster", names[i], NULL, NULL);
            json_object_del(d->ca_uid, names[i]);
            json_decref(gc);
            continue;
        }
        kf_strbuf_reset(&err);
        if (kf_ep_parse_url(url, addr, &port, &err) < 0) {
            char *msg = kf_xasprintf("status.endpoints.apiServer: %s: the cluster has no "
                                     "endpoint until it is an https://ADDR:PORT URL",
                                     err.buf);

            problem(d, d->clusters, "GuestCluster", names[i], "EndpointInvalid", msg);
            free(msg);
            json_decref(gc);
            continue;
        }
        ca_path = kf_xasprintf("%s/ca/%s.crt", dir, names[i]);
        /* A cluster's CA is never rotated: the copy made for this very
         * cluster (same uid) is read from disk, and the store only once
         * per cluster and kfleetd. */
        uid = kf_json_str(gc, "metadata.uid", "");
        if (kf_streq(json_string_value(json_object_get(d->ca_uid, names[i])), uid))
            ca = read_small(ca_path, CA_MAX, NULL);
        if (!ca && (ca = cluster_ca(d, names[i])))
            json_object_set_new(d->ca_uid, names[i], json_string(uid));
        if (!ca) /* a store that does not answer must not take a live endpoint down */
            ca = read_small(ca_path, CA_MAX, NULL);
        json_decref(gc);
        if (!ca) {
            free(ca_path);
            kf_log_dbg("cluster %s: no CA yet, its endpoint waits", names[i]);
            v->waiting = true;
            continue;
        }
        if (!dir_made) {
            char *cadir = kf_xasprintf("%s/ca", dir);

            if ((mkdir(dir, 0755) < 0 && errno != EEXIST) ||
                (mkdir(cadir, 0755) < 0 && errno != EEXIST))
                kf_log_warn("cannot create \"%s\": %s", cadir, strerror(errno));
            free(cadir);
            dir_made = true;
        }
        kf_strbuf_reset(&err);
        if (write_if_changed(ca_path, ca, strlen(ca), &err) < 0) {
            kf_log_warn("cluster %s: cannot write its CA for the health checks: %s", names[i],
                        err.buf);
            free(ca_path);
            free(ca);
            v->waiting = true;
            continue;
        }
        free(ca);
        c->name = keep(v, kf_xstrdup(names[i]));
        c->address = keep(v, kf_xstrdup(addr));
        c->port = port;
        c->ca_file = keep(v, ca_path);
        c->backends = cluster_backends(d, v, names[i], &c->n_backends);
        /* one cluster that cannot be rendered must not take the others down */
        {
            struct kf_strbuf scratch = KF_STRBUF_INIT;

            kf_strbuf_reset(&err);
            if (kf_ep_render_haproxy(unit, NULL, c, 1, &scratch, &err) < 0) {
                problem(d, d->clusters, "GuestCluster", names[i], "EndpointInvalid", err.buf);
                kf_strbuf_release(&scratch);
                continue;
            }
            kf_strbuf_release(&scratch);
        }
        problem(d, d->clusters, "GuestCluster", names[i], NULL, NULL);
        v->n++;
    }
    kf_ctrl_names_free(names, n);
    kf_strbuf_release(&err);
}

/* The Unit's endpoints.kfleet.io/ annotations over the defaults. */
static int unit_settings(struct epctl *d, const char *unit, struct kf_ep_settings *s,
                         struct kf_strbuf *err)
{
    json_t *u = NULL, *v;
    const char *key;
    size_t plen = strlen(KF_EP_ANNOTATION_PREFIX);
    int r = 0;

    kf_ep_settings_default(s);
    if (kf_informer_get(d->units, unit, &u) < 0)
        return 0;
    json_object_foreach(kf_json_path(u, "metadata.annotations"), key, v)
    {
        if (strncmp(key, KF_EP_ANNOTATION_PREFIX, plen) != 0)
            continue;
        if (!json_is_string(v)) {
            r = kf_err(err, -EINVAL, "%s: not a string", key);
            break;
        }
        r = kf_ep_settings_set(s, key + plen, json_string_value(v), err);
        if (r < 0)
            break;
    }
    json_decref(u);
    return r;
}

/* --- reconcile -------------------------------------------------------------- */

/* Nothing to serve: the HAProxy stops and the folder goes. */
static void remove_unit(struct epctl *d, const char *unit, const char *dir)
{
    struct stat st;
    bool had_dir = stat(dir, &st) == 0;
    bool had_proc = kf_endpoints_stop(d->ep, unit) == 0;

    json_object_del(d->pending, unit);
    json_object_del(d->probe, unit);
    if (had_dir && kf_remove_tree(dir) < 0)
        kf_log_warn("cannot remove \"%s\": %s", dir, strerror(errno));
    if (had_dir || had_proc)
        event(d, d->units, "Unit", unit, false, "EndpointsRemoved",
              "no guest cluster of this unit has an endpoint any more: %s%s",
              had_proc ? "its HAProxy is stopped and " : "", "its endpoint files are removed");
}

/* Writes text as the unit's live file if HAProxy accepts it. 1 when the
 * live file changed, 0 when it already held text, a negative errno (with
 * why in err) when it was refused or could not be written. */
static int install(struct epctl *d, const char *dir, const struct kf_strbuf *text,
                   struct kf_strbuf *err)
{
    char *live = kf_xasprintf("%s/%s", dir, CFG_NAME);
    char *cand = kf_xasprintf("%s/%s", dir, CANDIDATE_NAME);
    size_t have_len = 0;
    char *have = read_small(live, text->len + 1, &have_len);
    int r;

    if (have && have_len == text->len && memcmp(have, text->buf, text->len) == 0) {
        r = 0;
        goto free_paths;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        r = kf_err(err, -errno, "cannot create \"%s\": %s", dir, strerror(errno));
        goto free_paths;
    }
    r = kf_write_file_atomic(cand, text->buf, text->len, 0644, true, err);
    if (r < 0)
        goto free_paths;
    r = kf_endpoints_check(d->ep, cand, err);
    if (r < 0)
        goto remove_candidate;
    if (rename(cand, live) < 0) {
        r = kf_err(err, -errno, "cannot rename \"%s\" to \"%s\": %s", cand, live, strerror(errno));
        goto remove_candidate;
    }
    kf_fsync_dir(dir); /* best effort: the file itself is already synced */
    r = 1;
    goto free_paths;
remove_candidate:
    unlink(cand);
free_paths:
    free(have);
    free(cand);
    free(live);
    return r;
}

/* Renders the unit's HAProxy configuration and installs it if HAProxy
 * accepts it; a refusal is a problem on the Unit, and the last good
 * configuration stays. Sets *again when to try again. */
static void update_config(struct epctl *d, const char *unit, const char *dir,
                          const struct ep_view *v, int64_t *again)
{
    struct kf_strbuf text = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    struct kf_ep_settings s;
    char *msg;
    int r;

    r = unit_settings(d, unit, &s, &err);
    if (r < 0) {
        msg = kf_xasprintf("the endpoints' HAProxy configuration was not changed: the "
                           "last good one stays in force: %s",
                           err.buf);
        problem(d, d->units, "Unit", unit, "EndpointSettingsInvalid", msg);
        free(msg);
        goto release_text;
    }
    /* the HAProxies kfleetd runs say which apiservers pass their checks
     * (the lifecycle controller reads it instead of probing each cluster) */
    if (kf_endpoints_mode(d->ep) == KF_EP_LOCAL &&
        !kf_endpoints_stats_socket(d->ep, unit, s.stats_socket))
        s.stats_socket[0] = '\0';
    r = kf_ep_render_haproxy(unit, &s, v->clusters, v->n, &text, &err);
    if (r == 0)
        r = install(d, dir, &text, &err);
    if (r < 0) {
        msg = kf_xasprintf("the new HAProxy configuration was refused; the last good one "
                           "stays in force: %s",
                           err.buf);
        problem(d, d->units, "Unit", unit, "EndpointConfigRefused", msg);
        free(msg);
        if (r != -EINVAL)
            *again = RETRY_FAILURE; /* not installed, a disk error: try again later */
        goto release_text;
    }
    problem(d, d->units, "Unit", unit, NULL, NULL);
    remove_stale_cas(dir, v->clusters, v->n); /* the live file names only these now */
    if (r == 1) {
        if (kf_endpoints_mode(d->ep) == KF_EP_LOCAL)
            json_object_set_new(d->pending, unit, json_true());
        else
            event(d, d->units, "Unit", unit, false, "EndpointConfigRendered",
                  "rendered and checked %s/%s (%zu endpoints): reload the unit's HAProxy "
                  "(SIGUSR2 to its master)",
                  dir, CFG_NAME, v->n);
    }
release_text:
    kf_strbuf_release(&text);
    kf_strbuf_release(&err);
}

/* The endpoint the unit's HAProxy probes from now on. */
static void set_probe(struct epctl *d, const char *unit, const struct kf_ep_cluster *next)
{
    json_object_set_new(d->probe, unit,
                        json_pack("{s:s, s:i}", "address", next->address, "port", next->port));
}

/* Reloads the running HAProxy of the unit into its new live file. */
static void reload_haproxy(struct epctl *d, const char *unit, const char *dir,
                           const struct ep_view *v, const struct kf_ep_cluster *next,
                           int64_t *again)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r = kf_endpoints_reload(d->ep, unit, &err);

    if (r == 0) {
        json_object_del(d->pending, unit);
        /* the new workers bind the new frontends at once: probe one
         * of those from the next pass on */
        set_probe(d, unit, next);
        event(d, d->units, "Unit", unit, false, "EndpointsReloaded",
              "HAProxy reloaded %s/%s (%zu endpoints); established connections stay "
              "on the previous workers until they close",
              dir, CFG_NAME, v->n);
    } else if (r == -EAGAIN) {
        *again = RETRY_NOT_READY;
    } else {
        /* not running: when it starts again it reads the live file */
        kf_log_info("unit %s: HAProxy not reloaded: %s", unit, err.buf);
        json_object_del(d->pending, unit);
    }
    kf_strbuf_release(&err);
}

/* Runs the unit's local HAProxy on its live file (if there is a good one),
 * or reloads it when the file changed. */
static void run_haproxy(struct epctl *d, const char *unit, const char *dir, const struct ep_view *v,
                        int64_t *again)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *cfg = kf_xasprintf("%s/%s", dir, CFG_NAME);
    const struct kf_ep_cluster *next = probe_next(d, unit, v);
    const json_t *now = json_object_get(d->probe, unit);
    bool started = false;
    int r;

    if (access(cfg, R_OK) != 0)
        goto free_cfg; /* nothing good to run yet */
    /* the running process keeps its probe until it has loaded the
     * configuration that the next one is taken from */
    if (!now || !json_is_true(json_object_get(d->pending, unit)))
        set_probe(d, unit, next);
    now = json_object_get(d->probe, unit);
    r = kf_endpoints_run(d->ep, unit, cfg, kf_json_str(now, "address", next->address),
                         (int)kf_json_int(now, "port", next->port), &started, &err);
    if (r < 0) {
        kf_log_warn("unit %s: cannot run its HAProxy: %s", unit, err.buf);
        *again = RETRY_FAILURE;
    } else if (started) {
        /* it reads the live file as it starts */
        set_probe(d, unit, next);
        json_object_del(d->pending, unit);
        event(d, d->units, "Unit", unit, false, "EndpointsStarted",
              "started HAProxy for %zu guest-cluster endpoints (%s/%s)", v->n, dir, CFG_NAME);
    } else if (json_is_true(json_object_get(d->pending, unit))) {
        reload_haproxy(d, unit, dir, v, next, again);
    }
    kf_strbuf_release(&err);
free_cfg:
    free(cfg);
}

/* Brings the unit's endpoints up to date: its HAProxy configuration, and
 * its local HAProxy when kfleetd runs them; when to look again (0: no need). */
static int64_t reconcile_unit(struct epctl *d, const char *unit)
{
    struct ep_view v = { 0 };
    int64_t again = 0;
    char *dir;

    if (!kf_name_valid(unit))
        return 0;
    dir = kf_xasprintf("%s/%s", kf_endpoints_root(d->ep), unit);
    build_view(d, unit, dir, &v);
    if (v.waiting)
        again = RETRY_WAITING_CA;
    if (v.n == 0) {
        remove_unit(d, unit, dir);
    } else {
        update_config(d, unit, dir, &v, &again);
        if (kf_endpoints_mode(d->ep) == KF_EP_LOCAL)
            run_haproxy(d, unit, dir, &v, &again);
    }
    view_release(&v);
    free(dir);
    return again;
}

/* Queues every unit folder; stops HAProxies whose unit has no folder and no
 * endpoint (what an earlier kfleetd left). */
static void sweep(struct epctl *d)
{
    const char *root = kf_endpoints_root(d->ep);
    DIR *dh = opendir(root);
    struct dirent *e;
    json_t *wanted = json_object();
    char **procs = NULL, **units = NULL;
    size_t np, nu;

    while (dh && (e = readdir(dh))) {
        char name[KF_EP_NAME_BUF];

        if (e->d_name[0] == '.' || !kf_name_valid(e->d_name))
            continue;
        kf_endpoints_proc_name(e->d_name, name);
        json_object_set_new(wanted, name, json_true());
        kf_ctrl_enqueue(d->c, e->d_name);
    }
    if (dh)
        closedir(dh);
    nu = kf_informer_names(d->units, &units);
    for (size_t i = 0; i < nu; i++) {
        char **cl = NULL;
        size_t nc = kf_informer_index_names(d->clusters, BY_UNIT, units[i], &cl);

        if (nc) {
            char name[KF_EP_NAME_BUF];

            kf_endpoints_proc_name(units[i], name);
            json_object_set_new(wanted, name, json_true());
            kf_ctrl_enqueue(d->c, units[i]);
        }
        kf_ctrl_names_free(cl, nc);
    }
    kf_ctrl_names_free(units, nu);
    np = kf_endpoints_procs(d->ep, &procs);
    for (size_t i = 0; i < np; i++) {
        if (!json_object_get(wanted, procs[i])) {
            kf_log_info("HAProxy %s belongs to no unit with endpoints: stopping it", procs[i]);
            kf_endpoints_stop_proc(d->ep, procs[i]);
        }
    }
    kf_ctrl_names_free(procs, np);
    json_decref(wanted);
}

static int ep_reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue_after_ms)
{
    struct epctl *d = kf_ctrl_data(c);
    int64_t again;

    if (!d->ep)
        return 0;
    if (strcmp(name, SWEEP_KEY) == 0) {
        sweep(d);
        return 0;
    }
    again = reconcile_unit(d, name);
    if (again)
        *requeue_after_ms = again;
    return 0;
}

const struct kf_ctrl_ops kf_ctrl_endpoints_ops = {
    .name = "endpoints",
    .primary_kind = "Unit",
    .workers = 1,
    .setup = ep_setup,
    .reconcile = ep_reconcile,
    .resync_ms = 60000,
};

int kf_ctrl_endpoints_init(const struct kf_ctrl_env *env, void **ret_data, struct kf_strbuf *err)
{
    struct epctl *d = kf_xcalloc(1, sizeof(*d));

    (void)err;
    d->reg = env->reg;
    d->store = env->store;
    d->data_dir = env->data_dir ? kf_xstrdup(env->data_dir) : NULL;
    d->ep = env->endpoints;
    d->rec = kf_recorder_new(env->reg, "endpoints");
    pthread_mutex_init(&d->lock, NULL);
    d->cluster_unit = json_object();
    d->pending = json_object();
    d->probe = json_object();
    d->problems = json_object();
    d->ca_uid = json_object();
    *ret_data = d;
    return 0;
}

void kf_ctrl_endpoints_fini(void *data)
{
    struct epctl *d = data;
    size_t it = 0;
    void *v;

    if (!d)
        return;
    kf_recorder_free(d->rec);
    json_decref(d->cluster_unit);
    json_decref(d->pending);
    json_decref(d->probe);
    json_decref(d->problems);
    json_decref(d->ca_uid);
    kf_smap_release(&d->in_view);
    while (kf_smap_next(&d->host_addr, &it, NULL, &v))
        free(v);
    kf_smap_release(&d->host_addr);
    pthread_mutex_destroy(&d->lock);
    free(d->data_dir);
    free(d);
}
