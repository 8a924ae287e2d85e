/* ctrl-monitoring-model.c: from objects to the monitoring model.
 *
 * Reads Regions, Units, Hosts, ControlPlaneMembers, AlertReceivers and
 * AlertRoutes from the controller's informers and fills a struct
 * kf_obs_fleet (every string it points to lives in the monmodel), the
 * adapter's receiver targets, and in local mode the node_exporters kfleetd
 * runs and the ports it uses.
 *
 * Where instances run:
 *   local     edge-<unit>, cascade-<region>[-a|-b] (spec.monitoring.replicas,
 *             at most 2), central-a/-b, alertmanager-a/-b, all on the
 *             config's host with ports kept in <root>/ports.json; a meta Host
 *             without the node-exporter annotation gets a node_exporter that
 *             kfleetd runs;
 *   external  a Unit's edges and a Region's cascades from the annotations
 *             monitoring.kfleet.io/edges and .../cascades ("h:p[,h:p]");
 *             central and Alertmanager addresses from the config; a Host's
 *             node_exporter at <address>:<nodeExporterPort> unless annotated.
 * A Host's annotation monitoring.kfleet.io/node-exporter ("h:p", or
 * "none") always wins: it is how an agent that runs its own exporter, or a
 * test, says where it is. Objects that cannot be placed in the model are
 * left out and reported (mm->problems).
 *
 * Guest members: etcd on spec.ports.metrics (plain HTTP); kube-apiserver,
 * kube-controller-manager and kube-scheduler on spec.ports.https, at their
 * Host's spec.address, else status.address, else 127.0.0.1. The Kubernetes
 * components are scraped with their cluster's monitoring identity (ca.crt,
 * monitoring.crt, monitoring.key of its PKI, which the lifecycle controller
 * issues: ctrl-lifecycle-pki.c), read from kfleetd's working copy
 * <data-dir>/pki/<cluster>/, or from the store's /_pki/<cluster> when this
 * kfleetd has no working copy of that cluster. Until the identity exists,
 * the cluster's Kubernetes members are left out (the controller looks
 * again soon: mm->identities_missing).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/monitoring.h"
#include "kfleet/obj.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-lifecycle.h"
#include "controllers/ctrl-monitoring.h"

void kf_monmodel_init(struct monmodel *mm)
{
    memset(mm, 0, sizeof(*mm));
    mm->owners = json_object();
    mm->listens = json_object();
    mm->objs = json_array();
    mm->identities = json_object();
}

void kf_monmodel_release(struct monmodel *mm)
{
    /* the guest clusters' client keys do not outlive the model */
    for (size_t i = 0; i < mm->n_idents; i++)
        explicit_bzero((char *)mm->idents[i].key, strlen(mm->idents[i].key));
    for (size_t i = 0; i < mm->n_mem; i++)
        free(mm->mem[i]);
    free(mm->mem);
    for (size_t i = 0; i < mm->n_problems; i++) {
        free(mm->problems[i].name);
        free(mm->problems[i].message);
    }
    free(mm->problems);
    free(mm->port_keys);
    free(mm->exporters);
    json_decref(mm->owners);
    json_decref(mm->listens);
    json_decref(mm->objs);
    json_decref(mm->identities);
    free(mm->idents);
    memset(mm, 0, sizeof(*mm));
}

static void *keep_mem(struct monmodel *mm, void *p)
{
    mm->mem = kf_xrealloc(mm->mem, (mm->n_mem + 1) * sizeof(*mm->mem));
    mm->mem[mm->n_mem++] = p;
    return p;
}

static void *zalloc(struct monmodel *mm, size_t n, size_t size)
{
    return keep_mem(mm, kf_xcalloc(n ? n : 1, size));
}

static const char *sdup(struct monmodel *mm, const char *s)
{
    return s ? keep_mem(mm, kf_xstrdup(s)) : NULL;
}

static const char *sfmt(struct monmodel *mm, const char *fmt, ...) KF_PRINTF(2, 3);
static const char *sfmt(struct monmodel *mm, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = kf_xvasprintf(fmt, ap);
    va_end(ap);
    return keep_mem(mm, s);
}

static void problem(struct monmodel *mm, const char *kind, const char *name, const char *reason,
                    const char *fmt, ...) KF_PRINTF(5, 6);
static void problem(struct monmodel *mm, const char *kind, const char *name, const char *reason,
                    const char *fmt, ...)
{
    va_list ap;
    struct monproblem *p;

    mm->problems = kf_xrealloc(mm->problems, (mm->n_problems + 1) * sizeof(*mm->problems));
    p = &mm->problems[mm->n_problems++];
    p->kind = kind;
    p->name = kf_xstrdup(name);
    p->reason = reason;
    va_start(ap, fmt);
    p->message = kf_xvasprintf(fmt, ap);
    va_end(ap);
}

/* Every object of an informer, parsed (kept alive in mm->objs). */
static size_t read_all(struct monmodel *mm, struct kf_informer *inf, json_t ***ret)
{
    char **names = NULL;
    size_t n = kf_informer_names(inf, &names), k = 0;
    json_t **objs = zalloc(mm, n, sizeof(*objs));

    for (size_t i = 0; i < n; i++) {
        json_t *o = NULL;

        if (kf_informer_get(inf, names[i], &o) == 0) {
            json_array_append_new(mm->objs, o);
            objs[k++] = o;
        }
    }
    kf_ctrl_names_free(names, n);
    *ret = objs;
    return k;
}

static const char *annotation(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(kf_json_path(obj, "metadata.annotations"), key));
}

static int64_t duration(const json_t *obj, const char *path)
{
    const char *s = kf_json_str(obj, path, NULL);
    int64_t ms = 0;

    if (s && kf_parse_duration_ms(s, &ms) < 0)
        ms = 0;
    return ms;
}

static void remember(struct monmodel *mm, const char *instance, const char *listen,
                     const char *owner)
{
    json_object_set_new(mm->listens, instance, json_string(listen));
    if (owner)
        json_object_set_new(mm->owners, instance, json_string(owner));
}

static void port_key(struct monmodel *mm, const char *key)
{
    mm->port_keys = kf_xrealloc(mm->port_keys, (mm->n_port_keys + 1) * sizeof(char *));
    mm->port_keys[mm->n_port_keys++] = (char *)sdup(mm, key);
}

/* A local address for key, or NULL when no port is left. */
static const char *local_addr(struct monctl *mc, struct monmodel *mm, const char *key)
{
    const struct kf_mon_config *cfg = kf_mon_config(mc->mon);
    int port = kf_mon_port(mc->mon, key);

    if (port < 0)
        return NULL;
    port_key(mm, key);
    return sfmt(mm, "%s:%d", cfg->host ? cfg->host : "127.0.0.1", port);
}

/* "h:p,h:p" -> instances "<prefix>-<i>" (at most 2). */
static size_t parse_addrs(struct monmodel *mm, const char *list, const char *prefix,
                          struct kf_obs_instance **ret)
{
    struct kf_obs_instance *v = zalloc(mm, 2, sizeof(*v));
    char *copy = kf_xstrdup(list), *save = NULL;
    size_t n = 0;

    for (char *t = strtok_r(copy, ", ", &save); t && n < 2; t = strtok_r(NULL, ", ", &save)) {
        v[n].name = sfmt(mm, "%s-%c", prefix, (char)('a' + n));
        v[n].listen = sdup(mm, t);
        n++;
    }
    free(copy);
    *ret = v;
    return n;
}

/* A tier whose Prometheus instances, when kfleetd does not run them, an
 * annotation of the object names: a Region's cascades, a Unit's edges. */
struct annotated_tier {
    const char *kind;   /* the object's kind, for the problem */
    const char *what;   /* the same in the message: "region" */
    const char *role;   /* the instances in the message: "cascading" */
    const char *ann;    /* the annotation's key; its value is "h:p[,h:p]" */
    const char *prefix; /* the instances are PREFIX-NAME-a, -b */
};

static const struct annotated_tier cascade_tier = {
    "Region", "region", "cascading", MON_ANN_CASCADES, "cascade",
};

static const struct annotated_tier edge_tier = {
    "Unit", "unit", "edge", MON_ANN_EDGES, "edge",
};

/* The instances of tier t that object o (named name) is annotated with, into
 * *ret; returns their count (2 at most). -ENOENT and a MonitoringAddressMissing
 * problem when o has no such annotation: it is then not monitored. */
static int annotated_instances(struct monmodel *mm, const struct annotated_tier *t, const json_t *o,
                               const char *name, struct kf_obs_instance **ret)
{
    const char *a = annotation(o, t->ann);

    if (!a) {
        problem(mm, t->kind, name, "MonitoringAddressMissing",
                "%s %s has no %s Prometheus: annotate it with %s: \"host:port[,host:port]\"",
                t->what, name, t->role, t->ann);
        return -ENOENT;
    }
    return (int)parse_addrs(mm, a, sfmt(mm, "%s-%s", t->prefix, name), ret);
}

/* --- regions and units ----------------------------------------------------- */

static void build_regions(struct monctl *mc, struct monmodel *mm, json_t **objs, size_t n)
{
    bool local = kf_mon_config(mc->mon)->mode == KF_MON_LOCAL;
    struct kf_obs_region *rs = zalloc(mm, n, sizeof(*rs));
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        const json_t *o = objs[i];
        const char *name = kf_obj_name(o);
        struct kf_obs_region *r = &rs[k];
        json_t *tags = kf_json_path(o, "spec.complianceTags"), *t;
        size_t j;

        r->name = name;
        r->compliance = zalloc(mm, json_array_size(tags), sizeof(char *));
        json_array_foreach(tags, j, t)((const char **)r->compliance)[r->n_compliance++] =
            json_string_value(t);
        r->settings.scrape_interval_ms = duration(o, "spec.monitoring.scrapeInterval");
        r->settings.federation_interval_ms = duration(o, "spec.monitoring.federationInterval");
        r->settings.retention_ms = duration(o, "spec.monitoring.retention");
        if (local) {
            int64_t replicas = kf_json_int(o, "spec.monitoring.replicas", 1);
            struct kf_obs_instance *c = zalloc(mm, 2, sizeof(*c));

            replicas = replicas < 1 ? 1 : replicas > 2 ? 2 : replicas;
            for (int64_t x = 0; x < replicas; x++) {
                c[x].name = replicas == 1 ? sfmt(mm, "cascade-%s", name)
                                          : sfmt(mm, "cascade-%s-%c", name, (char)('a' + x));
                c[x].listen = local_addr(mc, mm, c[x].name);
                if (!c[x].listen)
                    replicas = x;
            }
            r->cascades = c;
            r->n_cascades = (size_t)replicas;
            if (!replicas) {
                problem(mm, "Region", name, "MonitoringPortsExhausted",
                        "region %s is not monitored: no free port left", name);
                continue;
            }
        } else {
            struct kf_obs_instance *c = NULL;
            int nc = annotated_instances(mm, &cascade_tier, o, name, &c);

            if (nc < 0)
                continue;
            r->n_cascades = (size_t)nc;
            r->cascades = c;
        }
        for (size_t x = 0; x < r->n_cascades; x++)
            remember(mm, r->cascades[x].name, r->cascades[x].listen, name);
        k++;
    }
    mm->fleet.regions = rs;
    mm->fleet.n_regions = k;
}

static bool region_known(const struct monmodel *mm, const char *name)
{
    for (size_t i = 0; i < mm->fleet.n_regions; i++)
        if (kf_streq(mm->fleet.regions[i].name, name))
            return true;
    return false;
}

static int cmp_obj_unit(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(kf_json_str(x, "spec.unit", ""), kf_json_str(y, "spec.unit", ""));

    return c ? c : strcmp(kf_obj_name(x), kf_obj_name(y));
}

static void fill_hosts(struct monctl *mc, struct monmodel *mm, struct kf_obs_unit *u,
                       json_t **hosts, size_t n_hosts)
{
    const struct kf_mon_config *cfg = kf_mon_config(mc->mon);
    bool local = cfg->mode == KF_MON_LOCAL;
    struct kf_obs_host *hs = zalloc(mm, n_hosts, sizeof(*hs));

    u->hosts = hs;
    for (size_t i = 0; i < n_hosts; i++) {
        const json_t *h = hosts[i];
        struct kf_obs_host *oh;
        const char *ne = annotation(h, MON_ANN_NODE_EXPORTER);
        const char *ag = annotation(h, MON_ANN_AGENT);
        const char *ip = kf_host_address(h, NULL);

        if (strcmp(kf_json_str(h, "spec.unit", ""), u->name) != 0 ||
            strcmp(kf_json_str(h, "spec.role", ""), "meta") != 0)
            continue;
        oh = &hs[u->n_hosts++];
        oh->name = kf_obj_name(h);
        oh->zone = kf_json_str(h, "spec.zone", "");
        if (ne && strcmp(ne, "none") == 0) {
            oh->node_exporter = NULL;
        } else if (ne) {
            oh->node_exporter = ne;
        } else if (local && mm->n_exporters >= (size_t)cfg->local_exporters) {
            if (!mm->exporters_capped)
                problem(mm, "Host", oh->name, "MonitoringExporterLimit",
                        "host %s and the meta hosts after it (by unit, then name) get no "
                        "node_exporter: kfleetd runs at most %d (localExporters in "
                        "--monitoring-config)",
                        oh->name, cfg->local_exporters);
            mm->exporters_capped = true;
        } else if (local) {
            oh->node_exporter = local_addr(mc, mm, sfmt(mm, "node-%s", oh->name));
            if (oh->node_exporter) {
                struct kf_mon_exporter *e;

                mm->exporters =
                    kf_xrealloc(mm->exporters, (mm->n_exporters + 1) * sizeof(*mm->exporters));
                e = &mm->exporters[mm->n_exporters++];
                e->host = oh->name;
                e->listen = oh->node_exporter;
            }
        } else if (ip) {
            oh->node_exporter =
                sfmt(mm, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, cfg->node_exporter_port);
        }
        if (ag)
            oh->agent = ag;
        else if (!local && ip && cfg->agent_port)
            oh->agent = sfmt(mm, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, cfg->agent_port);
    }
}

/* --- guest clusters' monitoring identities ----------------------------------- */

static const char *const identity_files[] = { "ca.crt", "monitoring.crt", "monitoring.key" };

/* A PEM file of the working copy, at most KF_OBS_MAX_PEM bytes, kept in
 * mm. 0, -ENOENT, -EFBIG or another negative errno. */
static int read_pem(struct monmodel *mm, const char *path, const char **ret)
{
    struct stat st;
    char *buf;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto close_fd;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > KF_OBS_MAX_PEM) {
        r = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
        goto close_fd;
    }
    buf = kf_xmalloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *ret = keep_mem(mm, buf);
close_fd:
    close(fd);
    return r;
}

/* The identity from the store (no working copy here). */
static int identity_from_store(struct monctl *mc, struct monmodel *mm, const char *cluster,
                               const char *pem[3])
{
    json_t *files = NULL;
    int r;

    if (!mc->env.store)
        return -ENOENT;
    r = kf_lifecycle_pki_load(mc->env.store, cluster, &files, NULL);
    if (r < 0)
        return r == -KF_ENOTFOUND ? -ENOENT : r;
    for (size_t i = 0; r == 0 && i < KF_ARRAY_SIZE(identity_files); i++) {
        const char *v = json_string_value(json_object_get(files, identity_files[i]));

        if (!v)
            r = -ENOENT;
        else if (strlen(v) > KF_OBS_MAX_PEM)
            r = -EFBIG;
        else
            pem[i] = sdup(mm, v);
    }
    json_decref(files);
    return r;
}

/* Fills c with cluster's monitoring identity. 0; -ENOENT when its PKI has
 * none (yet); another negative errno when it cannot be read. */
static int load_identity(struct monctl *mc, struct monmodel *mm, const char *cluster,
                         struct kf_obs_cluster *c)
{
    char *dir = kf_lifecycle_pki_dir(mc->env.data_dir ? mc->env.data_dir : ".", cluster);
    const char *pem[3] = { NULL, NULL, NULL };
    struct stat st;
    int r = 0;

    if (stat(dir, &st) < 0) {
        r = identity_from_store(mc, mm, cluster, pem);
    } else {
        for (size_t i = 0; r == 0 && i < KF_ARRAY_SIZE(identity_files); i++) {
            char *path = kf_xasprintf("%s/%s", dir, identity_files[i]);

            r = read_pem(mm, path, &pem[i]);
            free(path);
        }
    }
    free(dir);
    /* what kf_obs_fleet_check wants of it: one bad cluster must not stop
     * the whole model from rendering */
    for (size_t i = 0; r == 0 && i < KF_ARRAY_SIZE(pem); i++)
        if (!strstr(pem[i], "-----BEGIN "))
            r = -EBADMSG;
    if (r < 0)
        return r;
    c->name = cluster;
    c->ca = pem[0];
    c->cert = pem[1];
    c->key = pem[2];
    return 0;
}

/* Whether cluster's Kubernetes members can be scraped: its identity is
 * added to the unit (once: `added` holds the unit's) when it can. Read once
 * per model. */
static bool cluster_identity(struct monctl *mc, struct monmodel *mm, struct kf_obs_unit *u,
                             json_t *added, size_t max_clusters, const char *cluster)
{
    json_t *known = json_object_get(mm->identities, cluster);
    struct kf_obs_cluster *cs = (struct kf_obs_cluster *)u->clusters;
    struct kf_obs_cluster c = { 0 };
    int r;

    if (json_object_get(added, cluster))
        return true;
    if (json_is_false(known))
        return false;
    if (!known) {
        r = load_identity(mc, mm, cluster, &c);
        if (r < 0) {
            char *ca = kf_lifecycle_pki_dir(mc->env.data_dir ? mc->env.data_dir : ".", cluster);
            char *ca_path = kf_xasprintf("%s/ca.crt", ca);

            json_object_set_new(mm->identities, cluster, json_false());
            mm->identities_missing++;
            /* say so once the PKI exists without it: before, it is just young */
            if (r != -ENOENT || access(ca_path, F_OK) == 0)
                problem(mm, "GuestCluster", cluster, "MonitoringIdentityMissing",
                        "the Kubernetes components of guest cluster %s are not scraped: %s",
                        cluster,
                        r == -ENOENT    ? "its PKI has no monitoring.crt and monitoring.key yet"
                        : r == -EBADMSG ? "its ca.crt, monitoring.crt or monitoring.key is not PEM"
                                        : strerror(-r));
            free(ca_path);
            free(ca);
            return false;
        }
        /* kept once, shared by every unit the cluster has members in */
        KF_GROW(mm->idents, mm->alloc_idents, mm->n_idents + 1);
        mm->idents[mm->n_idents] = c;
        known = json_integer((json_int_t)mm->n_idents++);
        json_object_set_new(mm->identities, cluster, known);
    }
    kf_assert(u->n_clusters < max_clusters);
    cs[u->n_clusters++] = mm->idents[json_integer_value(known)];
    json_object_set_new(added, cluster, json_true());
    return true;
}

static const struct {
    const char *component;
    const char *port; /* of spec.ports that serves /metrics */
    enum kf_obs_member_kind kind;
} member_kinds[] = {
    { "etcd", "metrics", KF_OBS_MEMBER_ETCD },
    { "kube-apiserver", "https", KF_OBS_MEMBER_APISERVER },
    { "kube-controller-manager", "https", KF_OBS_MEMBER_CONTROLLER_MANAGER },
    { "kube-scheduler", "https", KF_OBS_MEMBER_SCHEDULER },
};

static void fill_members(struct monctl *mc, struct monmodel *mm, struct kf_obs_unit *u,
                         json_t **members, size_t n_members, json_t **hosts, size_t n_hosts)
{
    struct kf_obs_member *ms = zalloc(mm, n_members, sizeof(*ms));
    json_t *added = json_object(); /* clusters whose identity the unit has */

    u->members = ms;
    u->clusters = zalloc(mm, n_members, sizeof(struct kf_obs_cluster));
    for (size_t i = 0; i < n_members; i++) {
        const json_t *m = members[i];
        const char *host = kf_json_str(m, "spec.host", NULL);
        const char *comp = kf_json_str(m, "spec.component", "");
        const char *cluster = kf_json_str(m, "spec.cluster", "");
        const json_t *h = NULL;
        struct kf_obs_member *om;
        json_int_t port;
        size_t k = 0;
        const char *ip;

        while (k < KF_ARRAY_SIZE(member_kinds) && strcmp(member_kinds[k].component, comp) != 0)
            k++;
        if (!host || k == KF_ARRAY_SIZE(member_kinds))
            continue;
        port = json_integer_value(
            json_object_get(kf_json_path(m, "spec.ports"), member_kinds[k].port));
        if (port <= 0 || port > 65535)
            continue;
        for (size_t j = 0; j < n_hosts && !h; j++)
            if (strcmp(kf_obj_name(hosts[j]), host) == 0)
                h = hosts[j];
        if (!h || strcmp(kf_json_str(h, "spec.unit", ""), u->name) != 0)
            continue;
        if (member_kinds[k].kind != KF_OBS_MEMBER_ETCD &&
            !cluster_identity(mc, mm, u, added, n_members, cluster))
            continue;
        ip = kf_host_address(h, NULL);
        om = &ms[u->n_members++];
        om->name = kf_obj_name(m);
        om->cluster = cluster;
        om->kind = member_kinds[k].kind;
        om->host = host;
        om->zone = kf_json_str(h, "spec.zone", "");
        om->address = sfmt(mm, strchr(ip ? ip : "", ':') ? "[%s]:%lld" : "%s:%lld",
                           ip ? ip : "127.0.0.1", (long long)port);
        om->https = false; /* etcd's metrics port is plain HTTP */
    }
    json_decref(added);
}

static void build_units(struct monctl *mc, struct monmodel *mm, json_t **units, size_t n_units,
                        json_t **hosts, size_t n_hosts, json_t **members, size_t n_members)
{
    bool local = kf_mon_config(mc->mon)->mode == KF_MON_LOCAL;
    struct kf_obs_unit *us = zalloc(mm, n_units, sizeof(*us));
    size_t k = 0;

    qsort(hosts, n_hosts, sizeof(*hosts), cmp_obj_unit);
    for (size_t i = 0; i < n_units; i++) {
        const json_t *o = units[i];
        const char *name = kf_obj_name(o);
        const char *region = kf_json_str(o, "spec.region", "");
        struct kf_obs_unit *u = &us[k];

        if (!region_known(mm, region)) {
            problem(mm, "Unit", name, "MonitoringRegionMissing",
                    "unit %s is not monitored: its region %s is %s", name, region,
                    local ? "missing" : "missing or has no cascade address");
            continue;
        }
        u->name = name;
        u->region = region;
        if (local) {
            struct kf_obs_instance *e = zalloc(mm, 1, sizeof(*e));

            e->name = sfmt(mm, "edge-%s", name);
            e->listen = local_addr(mc, mm, e->name);
            if (!e->listen)
                continue;
            u->edges = e;
            u->n_edges = 1;
        } else {
            struct kf_obs_instance *e = NULL;
            int ne = annotated_instances(mm, &edge_tier, o, name, &e);

            if (ne < 0)
                continue;
            u->n_edges = (size_t)ne;
            u->edges = e;
        }
        for (size_t x = 0; x < u->n_edges; x++)
            remember(mm, u->edges[x].name, u->edges[x].listen, name);
        fill_hosts(mc, mm, u, hosts, n_hosts);
        fill_members(mc, mm, u, members, n_members, hosts, n_hosts);
        k++;
    }
    mm->fleet.units = us;
    mm->fleet.n_units = k;
}

/* --- central, Alertmanager --------------------------------------------------- */

static int build_top(struct monctl *mc, struct monmodel *mm, struct kf_strbuf *err)
{
    const struct kf_mon_config *cfg = kf_mon_config(mc->mon);
    struct kf_obs_instance *cs = zalloc(mm, 2, sizeof(*cs));
    struct kf_obs_alertmanager *as = zalloc(mm, 2, sizeof(*as));

    if (cfg->mode == KF_MON_LOCAL) {
        for (int i = 0; i < 2; i++) {
            cs[i].name = sfmt(mm, "central-%c", 'a' + i);
            cs[i].listen = local_addr(mc, mm, cs[i].name);
            as[i].name = sfmt(mm, "alertmanager-%c", 'a' + i);
            as[i].listen = local_addr(mc, mm, as[i].name);
            as[i].cluster_listen = local_addr(mc, mm, sfmt(mm, "%s-cluster", as[i].name));
            if (!cs[i].listen || !as[i].listen || !as[i].cluster_listen)
                return kf_err(err, -EADDRINUSE, "no free ports left from the port base %d",
                              cfg->port_base);
        }
        mm->fleet.n_centrals = mm->fleet.n_alertmanagers = 2;
    } else {
        if (!cfg->n_centrals || !cfg->n_alertmanagers)
            return kf_err(err, -EINVAL,
                          "external monitoring needs \"centrals\" and \"alertmanagers\" in "
                          "--monitoring-config");
        cs = zalloc(mm, cfg->n_centrals, sizeof(*cs));
        as = zalloc(mm, cfg->n_alertmanagers, sizeof(*as));
        for (size_t i = 0; i < cfg->n_centrals; i++) {
            cs[i].name = cfg->centrals[i].name;
            cs[i].listen = cfg->centrals[i].listen;
        }
        for (size_t i = 0; i < cfg->n_alertmanagers; i++) {
            as[i].name = cfg->alertmanagers[i].name;
            as[i].listen = cfg->alertmanagers[i].listen;
            as[i].cluster_listen = cfg->alertmanagers[i].cluster;
        }
        mm->fleet.n_centrals = cfg->n_centrals;
        mm->fleet.n_alertmanagers = cfg->n_alertmanagers;
    }
    mm->fleet.centrals = cs;
    mm->fleet.alertmanagers = as;
    for (size_t i = 0; i < mm->fleet.n_centrals; i++)
        remember(mm, cs[i].name, cs[i].listen, NULL);
    for (size_t i = 0; i < mm->fleet.n_alertmanagers; i++)
        remember(mm, as[i].name, as[i].listen, NULL);
    return 0;
}

/* --- receivers and routes ------------------------------------------------------ */

static const char *const *str_array(struct monmodel *mm, const json_t *a, size_t *ret_n)
{
    const char **v = zalloc(mm, json_array_size(a), sizeof(*v));
    size_t i, n = 0;
    json_t *s;

    json_array_foreach(a, i, s) if (json_is_string(s)) v[n++] = json_string_value(s);
    *ret_n = n;
    return v;
}

static const char *secret_path(struct monctl *mc, struct monmodel *mm, const json_t *sec)
{
    const char *file = kf_json_str(sec, "secretFile", NULL);
    const char *ref = kf_json_str(sec, "secretRef.name", NULL);

    if (file)
        return file;
    if (ref)
        return sfmt(mm, "%s/secrets/%s", mc->env.data_dir, ref);
    return NULL;
}

/* Fills the delivery target of a webhook, dingtalk or sms receiver o (and
 * r's kind) from its spec. */
static void receiver_target(struct monctl *mc, struct monmodel *mm, const json_t *o,
                            const char *type, struct kf_obs_receiver *r, struct kf_mon_target *t)
{
    json_t *hdrs, *v;
    const json_t *sec;
    struct kf_obs_header *h;
    const char *hk;

    t->t.receiver = r->name;
    if (strcmp(type, "webhook") == 0) {
        sec = kf_json_path(o, "spec.webhook");
        r->kind = t->t.kind = KF_OBS_RECEIVER_WEBHOOK;
        r->max_alerts = (int)kf_json_int(sec, "maxAlerts", 0);
        t->t.url = kf_json_str(sec, "url", NULL);
    } else if (strcmp(type, "dingtalk") == 0) {
        sec = kf_json_path(o, "spec.dingtalk");
        r->kind = t->t.kind = KF_OBS_RECEIVER_DINGTALK;
        t->t.url = kf_json_str(sec, "url", NULL);
        t->url_file = kf_json_str(sec, "urlFile", NULL);
        if (!t->t.url)
            t->t.url = "https://invalid.invalid/"; /* replaced by url_file's at delivery */
        t->secret_file = secret_path(mc, mm, sec);
        t->t.at_mobiles = str_array(mm, kf_json_path(sec, "atMobiles"), &t->t.n_at_mobiles);
        t->t.at_all = kf_json_bool(sec, "atAll", false);
    } else {
        sec = kf_json_path(o, "spec.sms");
        r->kind = t->t.kind = KF_OBS_RECEIVER_SMS;
        t->t.url = kf_json_str(sec, "url", NULL);
        t->t.method = kf_json_str(sec, "method", NULL);
        t->t.body = kf_json_str(sec, "body", NULL);
        t->t.content_type = kf_json_str(sec, "contentType", NULL);
        t->t.phones = str_array(mm, kf_json_path(sec, "phones"), &t->t.n_phones);
        t->t.max_chars = (size_t)kf_json_int(sec, "maxChars", 0);
        t->secret_file = secret_path(mc, mm, sec);
    }
    hdrs = kf_json_path(sec, "headers");
    h = zalloc(mm, json_object_size(hdrs), sizeof(*h));
    json_object_foreach(hdrs, hk, v)
    {
        h[t->t.n_headers].name = hk;
        h[t->t.n_headers++].value = json_string_value(v);
    }
    t->t.headers = h;
}

/* Whether target t of receiver name can be delivered to: its secret files
 * allowed, the target valid; a problem when not. */
static bool target_usable(struct monctl *mc, struct monmodel *mm, const char *name,
                          const struct kf_mon_target *t)
{
    struct kf_strbuf why = KF_STRBUF_INIT;
    struct kf_obs_target check = t->t;
    bool secret_bad = t->secret_file && !kf_mon_secret_path_allowed(mc->mon, t->secret_file);
    bool ok;

    if (secret_bad || (t->url_file && !kf_mon_secret_path_allowed(mc->mon, t->url_file))) {
        problem(mm, "AlertReceiver", name, "SecretNotAllowed",
                "receiver %s is left out: its secret file %s does not exist or is outside "
                "<data-dir>/secrets/ and the --monitoring-config secretDirs",
                name, secret_bad ? t->secret_file : t->url_file);
        return false;
    }
    if (t->t.url && !t->url_file &&
        kf_obs_destination_url_check(kf_mon_destinations(mc->mon), t->t.url, &why) == -EACCES) {
        /* checked again at delivery, after name resolution; an
         * Alertmanager that never calls a forbidden receiver leaves
         * nothing to refuse there */
        problem(mm, "AlertReceiver", name, "DestinationNotAllowed", "receiver %s is left out: %s",
                name, why.buf);
        kf_strbuf_release(&why);
        return false;
    }
    kf_strbuf_reset(&why);
    check.secret = t->secret_file ? "checked-at-delivery" : NULL;
    ok = kf_obs_target_check(&check, &why) == 0;
    if (!ok)
        problem(mm, "AlertReceiver", name, "ReceiverInvalid", "receiver %s is left out: %s", name,
                why.buf);
    kf_strbuf_release(&why);
    return ok;
}

static void build_receivers(struct monctl *mc, struct monmodel *mm, json_t **objs, size_t n)
{
    const struct kf_mon_config *cfg = kf_mon_config(mc->mon);
    struct kf_obs_receiver *rs = zalloc(mm, n + 1, sizeof(*rs));
    struct kf_mon_target *ts = zalloc(mm, n, sizeof(*ts));
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        const json_t *o = objs[i];
        const char *name = kf_obj_name(o);
        const char *type = kf_json_str(o, "spec.type", "");
        struct kf_obs_receiver *r = &rs[k];
        struct kf_mon_target *t = &ts[mm->n_targets];

        r->name = name;
        r->send_resolved = kf_json_bool(o, "spec.sendResolved", true);
        if (strcmp(type, "email") == 0) {
            if (!cfg->smtp.smarthost || !cfg->smtp.from) {
                problem(mm, "AlertReceiver", name, "SMTPNotConfigured",
                        "email receiver %s is left out: kfleetd's --monitoring-config has no "
                        "smtp.smarthost and smtp.from",
                        name);
                continue;
            }
            r->kind = KF_OBS_RECEIVER_EMAIL;
            r->email_to = str_array(mm, kf_json_path(o, "spec.email.to"), &r->n_email_to);
            k++;
            continue;
        }
        receiver_target(mc, mm, o, type, r, t);
        if (!target_usable(mc, mm, name, t))
            continue;
        mm->n_targets++;
        k++;
    }
    mm->targets = ts;
    mm->fleet.alerting.receivers = rs;
    mm->fleet.alerting.n_receivers = k;
}

static bool receiver_known(const struct monmodel *mm, const char *name)
{
    const struct kf_obs_alerting *a = &mm->fleet.alerting;

    for (size_t i = 0; i < a->n_receivers; i++)
        if (kf_streq(a->receivers[i].name, name))
            return true;
    return false;
}

struct routes {
    json_t **objs;
    size_t n;
    bool *placed;
};

static int cmp_route(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t ox = kf_json_int(x, "spec.order", 0), oy = kf_json_int(y, "spec.order", 0);

    if (ox != oy)
        return ox < oy ? -1 : 1;
    return strcmp(kf_obj_name(x), kf_obj_name(y));
}

static void fill_route(struct monmodel *mm, struct kf_obs_route *rt, const json_t *o)
{
    static const char *const ops[] = { "=", "!=", "=~", "!~" };
    json_t *ms = kf_json_path(o, "spec.matchers"), *m;
    struct kf_obs_matcher *mv = zalloc(mm, json_array_size(ms), sizeof(*mv));
    size_t i;

    rt->receiver = kf_json_str(o, "spec.receiver", NULL);
    json_array_foreach(ms, i, m)
    {
        const char *op = kf_json_str(m, "op", "=");

        mv[i].name = kf_json_str(m, "name", "");
        mv[i].value = kf_json_str(m, "value", "");
        for (size_t j = 0; j < KF_ARRAY_SIZE(ops); j++)
            if (strcmp(op, ops[j]) == 0)
                mv[i].op = (enum kf_obs_match_op)j;
    }
    rt->matchers = mv;
    rt->n_matchers = json_array_size(ms);
    rt->group_by = str_array(mm, kf_json_path(o, "spec.groupBy"), &rt->n_group_by);
    rt->group_wait_ms = duration(o, "spec.groupWait");
    rt->group_interval_ms = duration(o, "spec.groupInterval");
    rt->repeat_interval_ms = duration(o, "spec.repeatInterval");
    rt->continue_matching = kf_json_bool(o, "spec.continue", false);
}

/* The children of `parent` (NULL: of the root), recursively. */
static void children(struct monmodel *mm, struct routes *rs, const char *parent,
                     struct kf_obs_route *into, unsigned depth)
{
    struct kf_obs_route *kids = zalloc(mm, rs->n, sizeof(*kids));
    size_t k = 0;

    for (size_t i = 0; i < rs->n && depth < 16; i++) {
        const json_t *o = rs->objs[i];
        const char *p = kf_json_str(o, "spec.parent", NULL);
        const char *name = kf_obj_name(o);

        if (rs->placed[i] || kf_json_bool(o, "spec.root", false) || !kf_streq(p, parent))
            continue;
        rs->placed[i] = true;
        if (!receiver_known(mm, kf_json_str(o, "spec.receiver", ""))) {
            problem(mm, "AlertRoute", name, "ReceiverMissing",
                    "route %s (and its children) is left out: receiver %s does not exist or "
                    "is left out",
                    name, kf_json_str(o, "spec.receiver", ""));
            continue;
        }
        fill_route(mm, &kids[k], o);
        children(mm, rs, name, &kids[k], depth + 1);
        k++;
    }
    into->routes = kids;
    into->n_routes = k;
}

static void build_routes(struct monctl *mc, struct monmodel *mm, json_t **objs, size_t n)
{
    const struct kf_mon_config *cfg = kf_mon_config(mc->mon);
    struct kf_obs_alerting *a = &mm->fleet.alerting;
    struct routes rs = { objs, n, zalloc(mm, n, sizeof(bool)) };
    const json_t *root = NULL;

    qsort(objs, n, sizeof(*objs), cmp_route);
    for (size_t i = 0; i < n; i++)
        if (kf_json_bool(objs[i], "spec.root", false)) {
            if (!root && receiver_known(mm, kf_json_str(objs[i], "spec.receiver", ""))) {
                root = objs[i];
            } else {
                problem(mm, "AlertRoute", kf_obj_name(objs[i]), "RouteNotPlaced",
                        "route %s is left out: %s", kf_obj_name(objs[i]),
                        root ? "another route is the root already" : "its receiver is missing");
            }
            rs.placed[i] = true;
        }
    /* the root: kfleet's defaults, the config's timing, then the root object */
    a->root.receiver = KF_MON_DEFAULT_RECEIVER;
    a->root.group_by = cfg->root.group_by;
    a->root.n_group_by = cfg->root.n_group_by;
    a->root.group_wait_ms = cfg->root.group_wait_ms;
    a->root.group_interval_ms = cfg->root.group_interval_ms;
    a->root.repeat_interval_ms = cfg->root.repeat_interval_ms;
    if (root) {
        struct kf_obs_route r = { 0 };

        fill_route(mm, &r, root);
        a->root.receiver = r.receiver;
        if (r.n_group_by) {
            a->root.group_by = r.group_by;
            a->root.n_group_by = r.n_group_by;
        }
        if (r.group_wait_ms)
            a->root.group_wait_ms = r.group_wait_ms;
        if (r.group_interval_ms)
            a->root.group_interval_ms = r.group_interval_ms;
        if (r.repeat_interval_ms)
            a->root.repeat_interval_ms = r.repeat_interval_ms;
    }
    children(mm, &rs, NULL, &a->root, 0);
    for (size_t i = 0; i < n; i++)
        if (!rs.placed[i])
            problem(mm, "AlertRoute", kf_obj_name(objs[i]), "RouteNotPlaced",
                    "route %s is left out: its parent %s does not exist, is left out, or the "
                    "parents form a cycle",
                    kf_obj_name(objs[i]), kf_json_str(objs[i], "spec.parent", ""));
}

/* --- the whole model --------------------------------------------------------- */

int kf_monmodel_build(struct monctl *mc, struct monmodel *mm, struct kf_strbuf *err)
{
    const struct kf_mon_config *cfg = kf_mon_config(mc->mon);
    struct kf_obs_fleet *f = &mm->fleet;
    json_t **regions, **units, **hosts, **members, **receivers, **routes;
    size_t n_regions, n_units, n_hosts, n_members, n_receivers, n_routes;
    struct kf_obs_receiver *rs;
    int r;

    n_regions = read_all(mm, mc->inf[MON_INF_REGION], &regions);
    n_units = read_all(mm, mc->inf[MON_INF_UNIT], &units);
    n_hosts = read_all(mm, mc->inf[MON_INF_HOST], &hosts);
    n_members = read_all(mm, mc->inf[MON_INF_MEMBER], &members);
    n_receivers = read_all(mm, mc->inf[MON_INF_RECEIVER], &receivers);
    n_routes = read_all(mm, mc->inf[MON_INF_ROUTE], &routes);

    f->settings = cfg->settings;
    f->bin = cfg->bin;
    f->alert_overrides = cfg->overrides;
    f->n_alert_overrides = cfg->n_overrides;
    f->kfleetd = zalloc(mm, 1, sizeof(char *));
    ((const char **)f->kfleetd)[0] = cfg->kfleetd;
    f->n_kfleetd = cfg->kfleetd ? 1 : 0;
    f->kfleetd_token_file = cfg->kfleetd_token_file;

    r = build_top(mc, mm, err);
    if (r < 0)
        return r;
    build_regions(mc, mm, regions, n_regions);
    build_units(mc, mm, units, n_units, hosts, n_hosts, members, n_members);
    build_receivers(mc, mm, receivers, n_receivers);
    /* the root's fallback: counted and dropped by the adapter */
    rs = (struct kf_obs_receiver *)f->alerting.receivers;
    rs[f->alerting.n_receivers].name = KF_MON_DEFAULT_RECEIVER;
    rs[f->alerting.n_receivers].kind = KF_OBS_RECEIVER_WEBHOOK;
    f->alerting.n_receivers++;
    build_routes(mc, mm, routes, n_routes);
    f->alerting.smtp = cfg->smtp;
    f->alerting.adapter_url = cfg->adapter;
    f->alerting.adapter_token_file = kf_mon_token_file(mc->mon);
    f->alerting.resolve_timeout_ms = cfg->resolve_timeout_ms;
    f->alerting.peer_timeout_ms = cfg->peer_timeout_ms;
    return kf_obs_fleet_check(f, err);
}

size_t kf_monmodel_instances(const struct monmodel *mm, char ***ret)
{
    size_t n = json_object_size(mm->listens), k = 0;
    char **v = kf_xcalloc(n + 1, sizeof(*v));
    const char *name;
    json_t *x;

    json_object_foreach(mm->listens, name, x) v[k++] = kf_xstrdup(name);
    *ret = v;
    return k;
}

const char *kf_monmodel_owner(const struct monmodel *mm, const char *instance)
{
    return json_string_value(json_object_get(mm->owners, instance));
}

const char *kf_monmodel_listen(const struct monmodel *mm, const char *instance)
{
    return json_string_value(json_object_get(mm->listens, instance));
}
