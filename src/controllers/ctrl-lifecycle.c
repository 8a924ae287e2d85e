/* ctrl-lifecycle.c: the cluster lifecycle controller (kfleet/lifecycle.h).
 *
 * Primary kind GuestCluster; it also watches ControlPlaneMembers (mapped to
 * their cluster) and Hosts (mapped to the clusters of the members bound to
 * them: an address or a readiness change matters to those clusters). One
 * reconcile, for a cluster that placement has placed (status.unit set and
 * every member bound to a host):
 *
 *   1. ports: a member missing a port its component needs gets one from
 *      the index of used ports per address (ctrl-lifecycle-ports.c, fed by
 *      the informers' events), written to spec.ports with the member's
 *      spec in step 3; a cluster with apiservers gets its endpoint's port
 *      on its unit's endpoint address;
 *   2. PKI: the cluster's certificates for the members' current addresses
 *      and its endpoint (ctrl-lifecycle-pki.c), kept in the store; checked
 *      again only when what they are for or the stored revision changed
 *      (or after half an hour or so, for the expiry dates);
 *   3. members: binary, args, probe and version from the catalog (catalog.h),
 *      the pki-hash annotation of each member's bundle, new ports and the
 *      kfleet.io/agent finalizer, one write a member when they differ;
 *   4. health: each member's status as its agent reports it (the agent
 *      probes the members it runs: etcd's /health, the apiserver's
 *      /readyz), its host's readiness, and the apiserver's /readyz through
 *      the endpoint (what the unit's HAProxy found, from its stats socket,
 *      when kfleetd runs it; else a probe); kfleetd probes no member itself;
 *      then phase, conditions, endpoints and members counts in status,
 *      written when they differ, with an Event on every phase change.
 *      Provisioned clusters are looked at again every health_period_ms,
 *      provisioning ones every second (every 5 s without an endpoint to
 *      ask: their members' events bring them back);
 *   5. nodes: the simulated Nodes of spec.simulatedNodes, made so through
 *      the endpoint (ctrl-lifecycle-nodes.c), counted in status.nodes.
 *
 * Deleting members (of a deleted cluster, or one placement replaced) lose
 * the kfleet.io/agent finalizer when their agent says status.released, or
 * when their host stays NotReady (or is gone) for release_timeout_ms. A
 * deleted cluster's members are deleted, and once all are gone its PKI is
 * removed and the kfleet.io/lifecycle finalizer comes off.
 *
 * Everything is recomputed from the informers and the store each time:
 * kfleetd killed half-way (ports of some members written, others not; the
 * PKI stored but members not filled) carries on where it stopped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/backup.h"
#include "kfleet/catalog.h"
#include "kfleet/controllers.h"
#include "kfleet/endpoint.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/grade.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/lifecycle.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/runner.h"
#include "kfleet/strbuf.h"
#include "kfleet/versions.h"
#include "controllers/ctrl-lifecycle.h"
#include "controllers/ctrl-replace.h"
#include "controllers/ctrl-members.h"

KF_LOG_MODULE(lifecycle);

#define PROVISIONING_RECHECK_MS 1000
#define PROVISIONING_WAIT_MS    5000
#define DELETING_RECHECK_MS     1000
#define PROBE_TIMEOUT_MS        2000 /* a loaded host answers /health late */

struct lc {
    struct kf_ctrl *ctrl;
    struct kf_registry *reg;
    struct kf_store *store;
    char *data_dir;
    struct kf_recorder *rec;
    struct kf_informer *clusters, *members, *hosts, *profiles, *units;
    struct lc_ports *ports;
    pthread_mutex_t hosts_lock;
    struct kf_smap host_facts; /* host -> host_facts() last seen (uintptr_t) */
    pthread_mutex_t pki_lock;
    struct kf_smap pki_memo; /* cluster -> struct pki_memo */
    struct kf_lifecycle_options opt;
    struct kf_endpoints *endpoints; /* kfleetd's endpoint service (NULL: none) */
};

void kf_lifecycle_options_default(struct kf_lifecycle_options *o)
{
    o->port_min = 20000;
    o->port_max = 29999;
    o->endpoint_address = "127.0.0.1";
    o->health_period_ms = 5000;
    o->release_timeout_ms = 5 * 60 * 1000;
    o->provision_timeout_ms = 2 * 60 * 1000;
    o->upgrade_step_timeout_ms = 3 * 60 * 1000;
    o->replace_grace_ms = 5 * 60 * 1000;
}

/* --- set-up ------------------------------------------------------------------ */

static void member_to_cluster(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    const char *cl = kf_json_str(obj, "spec.cluster", NULL);

    (void)deleted;
    if (cl)
        kf_ctrl_enqueue(c, cl);
}

static bool host_ready(const json_t *host);

/* A member's event: its ports into the index, its cluster into the queue. */
static void member_event(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct lc *d = kf_ctrl_data(c);

    kf_lifecycle_ports_member(d->ports, kf_obj_name(obj),
                              deleted ? NULL : kf_json_str(obj, "spec.host", NULL),
                              deleted ? NULL : kf_json_path(obj, "spec.ports"));
    member_to_cluster(c, obj, deleted);
}

/* What of a Host matters to the clusters of its members: its address, its
 * readiness, the Kubernetes versions it holds (the upgrade's precheck). */
static uint64_t host_facts(const json_t *host)
{
    const json_t *held = kf_json_path(host, "status.kubernetesVersions");
    char *versions = held ? kf_json_dump(held, NULL) : NULL;
    char *s = kf_xasprintf("%s|%d|%s", kf_host_address(host, "127.0.0.1"), host_ready(host),
                           versions ? versions : "");
    uint64_t h = kf_hash_str(s) | 1;

    free(s);
    free(versions);
    return h;
}

/* A host's event: its address into the port index, and its members'
 * clusters into the queue when something they depend on changed (its
 * status is written every few seconds while members land on it: queueing
 * every cluster on the host each time was a reconcile storm). */
static void host_to_clusters(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct lc *d = kf_ctrl_data(c);
    const char *name = kf_obj_name(obj);
    uint64_t facts = deleted ? 0 : host_facts(obj);
    bool changed;

    /* worker hosts (a guest's nodes, up to a million) run no member */
    if (!name || kf_streq(kf_json_str(obj, "spec.role", NULL), "worker"))
        return;
    kf_lifecycle_ports_host(d->ports, name, deleted ? NULL : kf_host_address(obj, "127.0.0.1"));
    pthread_mutex_lock(&d->hosts_lock);
    changed = (uint64_t)(uintptr_t)kf_smap_get(&d->host_facts, name) != facts;
    if (deleted)
        kf_smap_remove(&d->host_facts, name);
    else
        kf_smap_put(&d->host_facts, name, (void *)(uintptr_t)facts);
    pthread_mutex_unlock(&d->hosts_lock);
    if (changed)
        kf_informer_map_host_members(d->members, name, c, member_to_cluster);
}

static bool endpoint_parse(const char *url, char addr[KF_EP_ADDR_MAX], int *port);

/* A cluster's event (the runtime queues it by itself): its apiserver
 * endpoint's port into the index. */
static void cluster_event(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    struct lc *d = kf_ctrl_data(c);
    char addr[KF_EP_ADDR_MAX];
    int port = 0;
    bool has = !deleted &&
               endpoint_parse(kf_json_str(obj, "status.endpoints.apiServer", NULL), addr, &port);

    if (kf_obj_name(obj))
        kf_lifecycle_ports_endpoint(d->ports, kf_obj_name(obj), has ? addr : NULL, port);
}

static int setup(struct kf_ctrl *c)
{
    struct lc *d = kf_ctrl_data(c);
    struct kf_ctrl_manager *m = kf_ctrl_manager_of(c);
    int r;

    d->ctrl = c;
    d->clusters = kf_ctrl_informer(m, &kf_kind_guestcluster);
    d->hosts = kf_ctrl_informer(m, &kf_kind_host);
    d->profiles = kf_ctrl_informer(m, &kf_kind_profile);
    d->units = kf_ctrl_informer(m, &kf_kind_unit);
    r = kf_ctrl_members_informer(m, &d->members);
    if (r < 0)
        return r;
    r = kf_informer_add_index(d->members, KF_INDEX_MEMBER_HOST, kf_index_member_host);
    if (r < 0 && r != -EEXIST)
        return r;
    r = kf_ctrl_watch(c, &kf_kind_controlplanemember, member_event);
    if (r == 0)
        r = kf_ctrl_watch(c, &kf_kind_host, host_to_clusters);
    if (r == 0)
        r = kf_ctrl_watch(c, &kf_kind_guestcluster, cluster_event);
    return r;
}

int kf_ctrl_lifecycle_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct lc *d = kf_xcalloc(1, sizeof(*d));

    (void)err;
    d->reg = env->reg;
    d->store = env->store;
    d->data_dir = kf_xstrdup(env->data_dir ? env->data_dir : ".");
    d->endpoints = env->endpoints;
    if (env->lifecycle)
        d->opt = *env->lifecycle;
    else
        kf_lifecycle_options_default(&d->opt);
    if (!d->opt.endpoint_address)
        d->opt.endpoint_address = "127.0.0.1";
    d->rec = kf_recorder_new(env->reg, "lifecycle");
    d->ports = kf_lifecycle_ports_new(d->opt.port_min, d->opt.port_max);
    pthread_mutex_init(&d->hosts_lock, NULL);
    kf_smap_init(&d->host_facts);
    pthread_mutex_init(&d->pki_lock, NULL);
    kf_smap_init(&d->pki_memo);
    *ret = d;
    return 0;
}

void kf_ctrl_lifecycle_fini(void *data)
{
    struct lc *d = data;

    if (!d)
        return;
    kf_recorder_free(d->rec);
    kf_lifecycle_ports_free(d->ports);
    kf_smap_release(&d->host_facts);
    pthread_mutex_destroy(&d->hosts_lock);
    {
        size_t it = 0;
        const char *k;
        void *v;

        while (kf_smap_next(&d->pki_memo, &it, &k, &v))
            free(v);
    }
    kf_smap_release(&d->pki_memo);
    pthread_mutex_destroy(&d->pki_lock);
    free(d->data_dir);
    free(d);
}

/* --- small helpers ------------------------------------------------------------ */

static bool host_ready(const json_t *host)
{
    return host && json_is_true(kf_json_path(host, "status.ready"));
}

static int patch(struct lc *d, const struct kf_kind *k, const char *name, enum kf_patch_type type,
                 const json_t *body, bool status_only, json_t **ret, struct kf_strbuf *err)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    char *text = kf_json_dump(body, NULL);
    int r = kf_registry_patch(d->reg, k, name, type, text, strlen(text), status_only, ret, &causes,
                              err);

    if (r == -KF_EINVALID && causes.n && err) {
        kf_strbuf_reset(err);
        kf_strbuf_addf(err, "%s %s refused: ", k->singular, name);
        kf_causes_format(&causes, err);
    }
    kf_causes_release(&causes);
    free(text);
    return r;
}

/* Adds a finalizer with a JSON patch (others' finalizers are kept). */
static int add_finalizer(struct lc *d, const struct kf_kind *k, const json_t *obj, const char *fin,
                         json_t **ret, struct kf_strbuf *err)
{
    json_t *ops;
    int r;

    if (json_is_array(kf_json_path(obj, "metadata.finalizers")))
        ops = json_pack("[{s:s, s:s, s:s}]", "op", "add", "path", "/metadata/finalizers/-", "value",
                        fin);
    else
        ops = json_pack("[{s:s, s:s, s:[s]}]", "op", "add", "path", "/metadata/finalizers", "value",
                        fin);
    r = patch(d, k, kf_obj_name(obj), KF_PATCH_JSON, ops, false, ret, err);
    json_decref(ops);
    return r;
}

/* Removes a finalizer (a test of the entry first, so a concurrent change of
 * the list cannot make it remove another). */
static int remove_finalizer(struct lc *d, const struct kf_kind *k, const json_t *obj,
                            const char *fin, struct kf_strbuf *err)
{
    const json_t *fins = kf_json_path(obj, "metadata.finalizers"), *v;
    size_t i;

    json_array_foreach(fins, i, v)
    {
        if (kf_streq(json_string_value(v), fin)) {
            char p[64];
            json_t *ops;
            int r;

            snprintf(p, sizeof(p), "/metadata/finalizers/%zu", i);
            ops = json_pack("[{s:s, s:s, s:s}, {s:s, s:s}]", "op", "test", "path", p, "value", fin,
                            "op", "remove", "path", p);
            r = patch(d, k, kf_obj_name(obj), KF_PATCH_JSON, ops, false, NULL, err);
            json_decref(ops);
            return r == -KF_ENOTFOUND ? 0 : r;
        }
    }
    return 0;
}

static int cmp_member(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(kf_json_str(x, "spec.component", ""), kf_json_str(y, "spec.component", ""));

    if (c)
        return c;
    c = (int)(kf_json_int(x, "spec.index", 0) - kf_json_int(y, "spec.index", 0));
    return c ? c : strcmp(kf_obj_name(x), kf_obj_name(y));
}

/* The cluster's members (new references), sorted by component and index. */
static size_t cluster_members(struct lc *d, const char *cluster, json_t ***ret)
{
    char **names = NULL;
    size_t n = kf_informer_index_names(d->members, KF_MEMBERS_BY_CLUSTER, cluster, &names), k = 0;
    json_t **v = kf_xcalloc(n ? n : 1, sizeof(*v));

    for (size_t i = 0; i < n; i++) {
        json_t *m = kf_informer_get_obj(d->members, names[i]);

        if (m && kf_streq(kf_json_str(m, "spec.cluster", NULL), cluster))
            v[k++] = m;
        else
            json_decref(m);
    }
    kf_ctrl_names_free(names, n);
    qsort(v, k, sizeof(*v), cmp_member);
    *ret = v;
    return k;
}

static void members_free(json_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(v[i]);
    free(v);
}

static int grade_of(const json_t *gc)
{
    const char *g = kf_json_str(gc, "status.grade", kf_json_str(gc, "spec.grade", NULL));

    return g && g[0] == 'G' && g[1] >= '0' && g[1] <= '5' && !g[2] ? g[1] - '0' : -1;
}

/* --- deleting members ----------------------------------------------------------- */

/* Lets go of deleting members whose agent released them (or whose host is
 * gone or NotReady for too long). Returns how many deleting members are
 * still there. */
static size_t release_members(struct lc *d, json_t **ms, size_t n, const json_t *gc)
{
    int64_t now = kf_now_ms();
    size_t left = 0;

    for (size_t i = 0; i < n; i++) {
        const json_t *m = ms[i];
        struct kf_strbuf err = KF_STRBUF_INIT;
        json_t *host;
        int64_t since = 0;
        bool release = false, forced = false;

        if (!kf_obj_deleting(m))
            continue;
        left++;
        if (!kf_obj_has_finalizer(m, KF_FINALIZER_AGENT))
            continue;
        host = kf_informer_get_obj(d->hosts, kf_json_str(m, "spec.host", NULL));
        kf_time_parse_rfc3339(kf_json_str(m, "metadata.deletionTimestamp", ""), &since);
        if (json_is_true(kf_json_path(m, "status.released")))
            release = true;
        else if (!host_ready(host) && since > 0 && now - since >= d->opt.release_timeout_ms)
            release = forced = true;
        if (release &&
            remove_finalizer(d, &kf_kind_controlplanemember, m, KF_FINALIZER_AGENT, &err) < 0)
            kf_log_warn("cannot release member \"%s\": %s", kf_obj_name(m), err.buf);
        else if (forced)
            kf_recorder_eventf(d->rec, gc ? gc : m, KF_EVENT_WARNING, "MemberAbandoned",
                               "member %s: host %s is %s since the member was deleted %lld s "
                               "ago; deleted without its agent (its process and data may remain "
                               "on the host)",
                               kf_obj_name(m), kf_json_str(m, "spec.host", "?"),
                               host ? "NotReady" : "gone", (long long)((now - since) / 1000));
        json_decref(host);
        kf_strbuf_release(&err);
    }
    return left;
}

static int set_status(struct lc *d, const json_t *gc, json_t *status, struct kf_strbuf *err);
static void pki_memo_forget(struct lc *d, const char *cluster);

static int reconcile_delete(struct lc *d, const json_t *gc, int64_t *requeue)
{
    const char *name = kf_obj_name(gc);
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t **ms = NULL;
    size_t n = cluster_members(d, name, &ms), left;
    int r = 0;

    if (!kf_streq(kf_json_str(gc, "status.phase", NULL), "Deleting")) {
        json_t *st = json_pack("{s:s, s:s}", "phase", "Deleting", "message",
                               "stopping the control plane and removing its data");

        set_status(d, gc, st, &err);
        json_decref(st);
        kf_recorder_eventf(d->rec, gc, KF_EVENT_NORMAL, "Deleting",
                           "deleting %zu control-plane members", n);
    }
    for (size_t i = 0; i < n; i++) {
        bool gone = false;

        if (kf_obj_deleting(ms[i]))
            continue;
        r = kf_registry_delete(d->reg, &kf_kind_controlplanemember, kf_obj_name(ms[i]), 0, NULL,
                               &gone);
        if (r < 0 && r != -KF_ENOTFOUND)
            kf_log_warn("cannot delete member \"%s\": %s", kf_obj_name(ms[i]), strerror(-r));
        r = 0;
    }
    left = release_members(d, ms, n, gc);
    members_free(ms, n);
    /* members not deleting yet were just deleted: they count as left */
    if (n > 0 || left > 0) {
        *requeue = DELETING_RECHECK_MS;
        kf_strbuf_release(&err);
        return 0;
    }
    pki_memo_forget(d, name);
    r = kf_lifecycle_pki_remove(d->store, d->data_dir, name);
    if (r < 0) {
        kf_log_warn("cluster \"%s\": cannot remove its PKI: %s", name, strerror(-r));
        kf_strbuf_release(&err);
        return r;
    }
    r = remove_finalizer(d, &kf_kind_guestcluster, gc, KF_FINALIZER_LIFECYCLE, &err);
    if (r == 0)
        kf_log_info("cluster \"%s\": control plane stopped, data and certificates removed", name);
    kf_strbuf_release(&err);
    return r;
}

/* Member i of v is now `updated` (reference taken): every pointer into the
 * old object is taken again from the new one. */
static void view_replace(struct lc_view *v, size_t i, json_t *updated)
{
    if (v->ports_new) {
        json_decref(v->ports_new[i]);
        v->ports_new[i] = NULL;
    }
    json_decref(v->objs[i]);
    v->objs[i] = updated;
    v->hosts[i] = kf_json_str(updated, "spec.host", NULL);
    v->members[i].name = kf_obj_name(updated);
    v->members[i].component = kf_json_str(updated, "spec.component", "");
    v->members[i].ports = kf_json_path(updated, "spec.ports");
}

/* --- ports --------------------------------------------------------------------- */

/* "https://ADDR:PORT" into addr and *port (kf_ep_parse_url, fuzzed);
 * false when url is not that. */
static bool endpoint_parse(const char *url, char addr[KF_EP_ADDR_MAX], int *port)
{
    return url && kf_ep_parse_url(url, addr, port, NULL) == 0;
}

/* Gives member i the ports its component needs, in the view only
 * (v->ports_new[i], which v->members[i].ports then points to): they are
 * written with the member's spec (fill_member), one write a member
 * instead of three in a provisioning burst, where the store's commits are
 * what the lifecycle controller waits for most. The ports stay reserved
 * (ctrl-lifecycle-ports.c) until the write shows in the informer. Returns
 * 1 when ports were given, 0 when nothing was missing. */
static int ensure_ports(struct lc *d, struct lc_view *v, size_t i, struct kf_strbuf *err)
{
    const char *names[KF_CATALOG_MAX_PORTS + 1], *missing[KF_CATALOG_MAX_PORTS];
    const json_t *have = kf_json_path(v->objs[i], "spec.ports");
    const struct kf_catalog_component *cc =
        kf_catalog_lookup(v->members[i].component, v->c.version);
    size_t n = kf_catalog_port_names(&v->c, i, names), nm = 0;
    int got[KF_CATALOG_MAX_PORTS];
    json_t *ports;
    int r;

    for (size_t k = 0; k < n; k++)
        if (json_integer_value(json_object_get(have, names[k])) <= 0)
            missing[nm++] = names[k];
    if (nm == 0 && (!cc->alias_port || json_object_get(have, cc->alias_port)))
        return 0;
    if (nm > 0) {
        r = kf_lifecycle_ports_pick(d->ports, v->address[i], nm, got);
        if (r < 0)
            return kf_err(err, r, "no free port left on %s (range %d-%d) for member %s",
                          v->address[i], d->opt.port_min, d->opt.port_max, v->members[i].name);
    }
    ports = have ? json_deep_copy(have) : json_object();
    for (size_t k = 0; k < nm; k++)
        json_object_set_new(ports, missing[k], json_integer(got[k]));
    if (cc->alias_port && json_object_get(ports, cc->alias_of))
        json_object_set(ports, cc->alias_port, json_object_get(ports, cc->alias_of));
    json_decref(v->ports_new[i]);
    v->ports_new[i] = ports;
    v->members[i].ports = ports;
    return 1;
}

/* Writes member i's new ports alone (a member whose spec waits), on the
 * object they were picked for (ports_precondition). */
static int write_ports(struct lc *d, struct lc_view *v, size_t i, struct kf_strbuf *err)
{
    json_t *body, *updated = NULL;
    int r;

    if (!v->ports_new[i])
        return 0;
    body = json_pack("{s:{s:s}, s:{s:O}}", "metadata", "resourceVersion",
                     kf_json_str(v->objs[i], "metadata.resourceVersion", ""), "spec", "ports",
                     v->ports_new[i]);
    r = patch(d, &kf_kind_controlplanemember, v->members[i].name, KF_PATCH_MERGE, body, false,
              &updated, err);
    json_decref(body);
    if (r < 0)
        return r;
    view_replace(v, i, updated);
    return 1;
}

/* The cluster's apiserver endpoint: where its unit's load balancer (the
 * endpoints controller's HAProxy) listens for it, "https://ADDR:PORT" in
 * *ret_url (caller frees; NULL when the cluster has no kube-apiserver).
 * ADDR is the unit's spec.endpointAddress, else --endpoint-address; the
 * port, unique on that address among members and other endpoints, is
 * kept once chosen: status.endpoints.apiServer is where it lives. */
static int ensure_endpoint(struct lc *d, const json_t *gc, const struct lc_view *v, char **ret_url,
                           struct kf_strbuf *err)
{
    json_t *unit = kf_informer_get_obj(d->units, kf_json_str(gc, "status.unit", NULL));
    const char *want = kf_json_str(unit, "spec.endpointAddress", d->opt.endpoint_address);
    char addr[64], *address = kf_xstrdup(want);
    bool api = false;
    int port = 0, r = 0;

    json_decref(unit);
    for (size_t i = 0; i < v->n && !api; i++)
        api = !strcmp(v->members[i].component, "kube-apiserver");
    if (!api) {
        *ret_url = NULL;
        goto free_address;
    }
    if (!endpoint_parse(kf_json_str(gc, "status.endpoints.apiServer", NULL), addr, &port) ||
        strcmp(addr, address) != 0 || port < d->opt.port_min || port > d->opt.port_max) {
        r = kf_lifecycle_ports_pick(d->ports, address, 1, &port);
        if (r < 0) {
            kf_err(err, r, "no free port left on %s (range %d-%d) for the apiserver endpoint",
                   address, d->opt.port_min, d->opt.port_max);
            goto free_address;
        }
    }
    *ret_url = strchr(address, ':') ? kf_xasprintf("https://[%s]:%d", address, port)
                                    : kf_xasprintf("https://%s:%d", address, port);
free_address:
    free(address);
    return r;
}

/* --- the cluster's view -------------------------------------------------------- */

void kf_lifecycle_view_release(struct lc_view *v)
{
    for (size_t i = 0; i < v->n; i++) {
        json_decref(v->objs[i]);
        if (v->ports_new)
            json_decref(v->ports_new[i]);
    }
    free(v->ports_new);
    free(v->objs);
    free(v->members);
    free(v->hosts);
    free(v->address);
    memset(v, 0, sizeof(*v));
}

/* The members of gc that are not being deleted (ms is consumed). The
 * cluster-level fields of v->c are filled by the caller. */
static void view_build(struct lc *d, json_t **ms, size_t n, struct lc_view *v, json_t ***ret_hosts)
{
    json_t **hosts = kf_xcalloc(n ? n : 1, sizeof(*hosts));

    memset(v, 0, sizeof(*v));
    v->objs = kf_xcalloc(n ? n : 1, sizeof(*v->objs));
    v->members = kf_xcalloc(n ? n : 1, sizeof(*v->members));
    v->hosts = kf_xcalloc(n ? n : 1, sizeof(*v->hosts));
    v->address = kf_xcalloc(n ? n : 1, sizeof(*v->address));
    v->ports_new = kf_xcalloc(n ? n : 1, sizeof(*v->ports_new));
    for (size_t i = 0; i < n; i++) {
        json_t *m = ms[i];
        size_t k = v->n;

        if (kf_obj_deleting(m)) {
            json_decref(m);
            continue;
        }
        v->objs[k] = m;
        v->hosts[k] = kf_json_str(m, "spec.host", NULL);
        hosts[k] = kf_informer_get_obj(d->hosts, v->hosts[k]);
        v->address[k] = kf_host_address(hosts[k], "127.0.0.1");
        v->members[k] = (struct kf_catalog_member){
            .name = kf_obj_name(m),
            .component = kf_json_str(m, "spec.component", ""),
            .index = (int)kf_json_int(m, "spec.index", 0),
            .address = v->address[k],
            .ports = kf_json_path(m, "spec.ports"),
            .joining = kf_replace_joined(m),
        };
        v->n++;
    }
    free(ms);
    v->c.members = v->members;
    v->c.n_members = v->n;
    *ret_hosts = hosts;
}

/* --- PKI and members -------------------------------------------------------------- */

static void add_unique(const char ***v, size_t *n, size_t *alloc, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*v)[i], s))
            return;
    KF_GROW(*v, *alloc, *n + 2);
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

/* What ensure_pki last made sure of for a cluster: for that input (a hash
 * of the names, addresses and endpoint the certificates are for), the PKI
 * stored at revision rev was complete and current at at_ms, and the working
 * copy holds it. Checking it again on every reconcile (reading, parsing
 * and comparing some twenty certificates and keys: most of a provisioning
 * reconcile's CPU) changes nothing while those hold, so until the input or
 * the stored revision changes, or PKI_RECHECK_MS (plus a spread by the
 * name, so that clusters made together are not checked together) passes
 * for the expiry dates, the stored files are used as they are. */
struct pki_memo {
    uint64_t input;
    int64_t rev, at_ms;
};

#define PKI_RECHECK_MS (30 * 60 * 1000)

static void hash_strs(struct kf_strbuf *sb, const char *const *v)
{
    for (size_t i = 0; v && v[i]; i++)
        kf_strbuf_addf(sb, "%s,", v[i]);
    kf_strbuf_addch(sb, '|');
}

static uint64_t pki_input_hash(const struct lc_pki_input *in)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    uint64_t h;

    kf_strbuf_addf(&sb, "%s|%s|", in->cluster, in->apiserver_url ? in->apiserver_url : "");
    for (size_t i = 0; i < in->spec.n_etcd_members; i++) {
        kf_strbuf_addf(&sb, "%s:", in->spec.etcd_members[i].name);
        hash_strs(&sb, in->spec.etcd_members[i].ip_addresses);
        hash_strs(&sb, in->spec.etcd_members[i].dns_names);
    }
    hash_strs(&sb, in->spec.apiserver_ips);
    hash_strs(&sb, in->spec.apiserver_dns);
    hash_strs(&sb, in->controller_manager_ips);
    hash_strs(&sb, in->scheduler_ips);
    h = kf_hash_str(sb.buf);
    kf_strbuf_release(&sb);
    return h;
}

/* The stored files when the memo says they need no check (new reference),
 * else NULL. */
static json_t *pki_memo_files(struct lc *d, const char *cluster, uint64_t input)
{
    struct pki_memo *m;
    bool fresh;
    int64_t rev = 0, memo_rev, now = kf_now_ms();
    json_t *files = NULL;

    pthread_mutex_lock(&d->pki_lock);
    m = kf_smap_get(&d->pki_memo, cluster);
    fresh = m && m->input == input &&
            now - m->at_ms < PKI_RECHECK_MS + (int64_t)(kf_hash_str(cluster) % PKI_RECHECK_MS);
    memo_rev = m ? m->rev : 0;
    pthread_mutex_unlock(&d->pki_lock);
    if (!fresh)
        return NULL;
    if (kf_lifecycle_pki_load(d->store, cluster, &files, &rev) == 0 && rev == memo_rev)
        return files;
    json_decref(files);
    return NULL;
}

static void pki_memo_put(struct lc *d, const char *cluster, uint64_t input, int64_t rev)
{
    struct pki_memo *m = kf_xcalloc(1, sizeof(*m));

    *m = (struct pki_memo){ .input = input, .rev = rev, .at_ms = kf_now_ms() };
    pthread_mutex_lock(&d->pki_lock);
    free(kf_smap_put(&d->pki_memo, cluster, m));
    pthread_mutex_unlock(&d->pki_lock);
}

static void pki_memo_forget(struct lc *d, const char *cluster)
{
    pthread_mutex_lock(&d->pki_lock);
    free(kf_smap_remove(&d->pki_memo, cluster));
    pthread_mutex_unlock(&d->pki_lock);
}

/* The cluster's PKI for its members' addresses and its endpoint (see
 * ctrl-lifecycle-pki.c); *ret_files gets path -> PEM. The components' kubeconfigs
 * (controller manager, scheduler, KWOK) name the endpoint, so that they
 * follow whichever apiserver is up. */
static int ensure_pki(struct lc *d, const json_t *gc, struct lc_view *v, const char *endpoint_url,
                      json_t **ret_files, struct kf_strbuf *err)
{
    struct kf_pki_etcd_member *em = kf_xcalloc(v->n ? v->n : 1, sizeof(*em));
    char(*enames)[64] = kf_xcalloc(v->n ? v->n : 1, 64);
    const char ***eips = kf_xcalloc(v->n ? v->n : 1, sizeof(*eips));
    const char *const localhost[] = { "localhost", NULL };
    const char **api_ips = NULL, **kcm_ips = NULL, **sch_ips = NULL;
    size_t na = 0, aa = 0, nk = 0, ak = 0, ns = 0, as = 0, ne = 0;
    const char *svc_ip = kf_json_str(gc, "status.network.kubernetesServiceIP", NULL);
    char ep_addr[KF_EP_ADDR_MAX];
    int ep_port, r;

    add_unique(&kcm_ips, &nk, &ak, "127.0.0.1");
    add_unique(&sch_ips, &ns, &as, "127.0.0.1");
    if (svc_ip)
        add_unique(&api_ips, &na, &aa, svc_ip);
    if (endpoint_parse(endpoint_url, ep_addr, &ep_port))
        add_unique(&api_ips, &na, &aa, ep_addr);
    for (size_t i = 0; i < v->n; i++) {
        const struct kf_catalog_member *m = &v->members[i];

        if (!strcmp(m->component, "etcd")) {
            size_t ni = 0, ai = 0;

            kf_catalog_etcd_name(m, enames[ne]);
            add_unique(&eips[ne], &ni, &ai, m->address);
            add_unique(&eips[ne], &ni, &ai, "127.0.0.1");
            em[ne] = (struct kf_pki_etcd_member){ .name = enames[ne],
                                                  .ip_addresses = eips[ne],
                                                  .dns_names = localhost };
            ne++;
        } else if (!strcmp(m->component, "kube-apiserver")) {
            add_unique(&api_ips, &na, &aa, m->address);
        } else if (!strcmp(m->component, "kube-controller-manager")) {
            add_unique(&kcm_ips, &nk, &ak, m->address);
        } else if (!strcmp(m->component, "kube-scheduler")) {
            add_unique(&sch_ips, &ns, &as, m->address);
        }
    }
    {
        const char *const none[] = { NULL };
        struct lc_pki_input in = {
            .cluster = kf_obj_name(gc),
            .spec = { .cluster = kf_obj_name(gc),
                      .etcd_members = em,
                      .n_etcd_members = ne,
                      .apiserver_ips = api_ips ? api_ips : none,
                      .apiserver_dns = none,
                      .working_copy = true },
            .controller_manager_ips = kcm_ips,
            .scheduler_ips = sch_ips,
            .apiserver_url = endpoint_url,
        };

        uint64_t input = pki_input_hash(&in);
        int64_t rev = 0;

        *ret_files = pki_memo_files(d, in.cluster, input);
        r = 0;
        if (!*ret_files) {
            r = kf_lifecycle_pki_ensure(d->store, d->data_dir, &in, ret_files, &rev, err);
            if (r == 0)
                pki_memo_put(d, in.cluster, input, rev);
        }
    }
    for (size_t i = 0; i < ne; i++)
        free(eips[i]);
    free(eips);
    free(enames);
    free(em);
    free(api_ips);
    free(kcm_ips);
    free(sch_ips);
    return r;
}

/* Whether a stored env (NULL when absent) is the rendered one. */
static bool env_equal(const json_t *stored, const json_t *rendered)
{
    if (!stored)
        return json_object_size(rendered) == 0;
    return json_equal(stored, rendered);
}

/* Member i's binary, args, env, probe, version, pki-hash and agent
 * finalizer. */
static int fill_member(struct lc *d, struct lc_view *v, size_t i, const json_t *files, bool hold,
                       bool *ret_wrote, struct kf_strbuf *err)
{
    const json_t *m = v->objs[i];
    struct kf_catalog_rendered rd;
    char hash[65];
    json_t *spec, *body;
    int r = kf_catalog_render(&v->c, i, &rd, err);
    bool same;

    if (r < 0)
        return r;
    if (kf_lifecycle_bundle(files, &v->c, i, NULL, hash) < 0) {
        kf_catalog_rendered_release(&rd);
        return kf_err(err, -EAGAIN, "member %s: its certificates are not complete yet",
                      v->members[i].name);
    }
    same = kf_streq(kf_json_str(m, "spec.binary", NULL), rd.binary) &&
           json_equal(kf_json_path(m, "spec.args"), rd.args) &&
           env_equal(kf_json_path(m, "spec.env"), rd.env) &&
           kf_streq(kf_json_str(m, "spec.version", NULL), v->c.version) &&
           (rd.probe ? json_equal(kf_json_path(m, "spec.probe"), rd.probe)
                     : kf_json_path(m, "spec.probe") == NULL) &&
           kf_streq(json_string_value(json_object_get(kf_json_path(m, "metadata.annotations"),
                                                      KF_ANNOTATION_PKI_HASH)),
                    hash);
    /* env is replaced whole: a merge patch would keep names the catalog
     * no longer sets, so names that went away are set to null */
    spec = json_pack("{s:s, s:O, s:O, s:s}", "binary", rd.binary, "args", rd.args, "env", rd.env,
                     "version", v->c.version);
    {
        const char *k;
        json_t *old;

        json_object_foreach((json_t *)kf_json_path(m, "spec.env"), k, old)
        {
            if (!json_object_get(rd.env, k))
                json_object_set_new(json_object_get(spec, "env"), k, json_null());
        }
    }
    json_object_set(spec, "probe", rd.probe ? rd.probe : json_null());
    kf_catalog_rendered_release(&rd);
    if (v->ports_new[i]) {
        json_object_set(spec, "ports", v->ports_new[i]);
        same = false;
    }
    if (!same && hold && !v->ports_new[i]) {
        /* it would restart while a peer of its component is down or
         * restarting (kf_replace_hold): later */
        json_decref(spec);
        spec = NULL;
    } else if (!same || !kf_obj_has_finalizer(m, KF_FINALIZER_AGENT)) {
        json_t *updated = NULL, *meta;

        *ret_wrote = !same;
        /* spec, ports, pki-hash and the agent's finalizer in one write.
         * Conditional on the member as read when it adds the finalizer
         * (the list is replaced whole) or new ports: a reconcile that saw
         * the member before an earlier one's write gets a conflict (the
         * next pass does it again), never a second set of ports (a joining
         * etcd member's peer URL is in etcd's membership by then:
         * docs/internals/replacement.md) */
        meta = json_pack("{s:{s:s}}", "annotations", KF_ANNOTATION_PKI_HASH, hash);
        if (!kf_obj_has_finalizer(m, KF_FINALIZER_AGENT)) {
            const json_t *fins = kf_json_path(m, "metadata.finalizers");
            json_t *list = json_is_array(fins) ? json_deep_copy(fins) : json_array();

            json_array_append_new(list, json_string(KF_FINALIZER_AGENT));
            json_object_set_new(meta, "finalizers", list);
        }
        if (!kf_obj_has_finalizer(m, KF_FINALIZER_AGENT) || v->ports_new[i])
            json_object_set_new(meta, "resourceVersion",
                                json_string(kf_json_str(m, "metadata.resourceVersion", "")));
        body = json_pack("{s:o, s:o}", "metadata", meta, "spec", spec);
        r = patch(d, &kf_kind_controlplanemember, v->members[i].name, KF_PATCH_MERGE, body, false,
                  &updated, err);
        json_decref(body);
        if (r < 0)
            return r;
        view_replace(v, i, updated);
    } else {
        json_decref(spec);
    }
    return 0;
}

/* --- health and status ------------------------------------------------------------ */

/* Components whose program is missing: component -> "binary" on hosts. */
struct missing {
    char *component, *binary;
    struct kf_strbuf hosts;
    struct missing *next;
};

static void missing_add(struct missing **list, const char *component, const char *binary,
                        const char *host)
{
    struct missing *m;

    for (m = *list; m; m = m->next)
        if (!strcmp(m->component, component))
            break;
    if (!m) {
        m = kf_xcalloc(1, sizeof(*m));
        m->component = kf_xstrdup(component);
        m->binary = kf_xstrdup(binary);
        kf_strbuf_init(&m->hosts, 0);
        m->next = *list;
        *list = m;
    }
    kf_strbuf_addf(&m->hosts, "%s%s", m->hosts.len ? ", " : "", host);
}

/* "kube-apiserver (\"/opt/...\" on h-a, h-b)" joined with "; ", and frees. */
static void missing_format(struct missing *list, struct kf_strbuf *out)
{
    while (list) {
        struct missing *next = list->next;

        kf_strbuf_addf(out, "%s%s (\"%s\" on %s)", out->len ? "; " : "", list->component,
                       list->binary, list->hosts.buf);
        free(list->component);
        free(list->binary);
        kf_strbuf_release(&list->hosts);
        free(list);
        list = next;
    }
}

#define HEALTH_MAX_COMPONENTS 16

struct health {
    struct missing *required_missing, *optional_missing;
    size_t etcd_total, etcd_healthy;
    size_t desired, ready;
    /* required components: members and how many are ready */
    struct {
        const char *name;
        size_t members, ready;
    } comps[HEALTH_MAX_COMPONENTS];
    size_t n_comps;
    struct kf_strbuf etcd_problems;  /* "web-1-etcd-0 (host h1): Connection refused; ..." */
    struct kf_strbuf missing;        /* required components whose binary is not installed */
    struct kf_strbuf not_ready;      /* members not ready */
    struct kf_strbuf hosts_down;     /* hosts not Ready */
    struct kf_strbuf optional_notes; /* optional components not running */
};

static void health_release(struct health *h)
{
    kf_strbuf_release(&h->etcd_problems);
    kf_strbuf_release(&h->missing);
    kf_strbuf_release(&h->not_ready);
    kf_strbuf_release(&h->hosts_down);
    kf_strbuf_release(&h->optional_notes);
}

static void note(struct kf_strbuf *sb, const char *fmt, ...) KF_PRINTF(2, 3);
static void note(struct kf_strbuf *sb, const char *fmt, ...)
{
    va_list ap;

    if (sb->len > 900)
        return;
    if (sb->len)
        kf_strbuf_addstr(sb, "; ");
    va_start(ap, fmt);
    kf_strbuf_vaddf(sb, fmt, ap);
    va_end(ap);
}

/* Optional: the profile says so, or it is the simulated nodes' KWOK, which
 * the nodes' readiness (status.nodes) reports on: the control plane serves
 * without it. */
static bool optional_component(const json_t *profile, const char *component)
{
    const json_t *comps = kf_json_path(profile, "spec.components"), *c;
    size_t i;

    if (!strcmp(component, KF_KWOK_COMPONENT))
        return true;
    json_array_foreach(comps, i, c)
    {
        if (kf_streq(kf_json_str(c, "name", NULL), component))
            return json_is_true(json_object_get(c, "optional"));
    }
    return false;
}

/* What the agents report about the cluster's members, with their hosts'
 * readiness: kfleetd probes no member itself (each agent probes the members
 * it runs, next to them, and a host that stops reporting is NotReady after
 * the heartbeat grace, which makes its members count as down). */
/* Whether a member before i runs on i's host (a host is named once). */
static bool host_seen_before(const struct lc_view *v, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (!strcmp(v->hosts[j], v->hosts[i]))
            return true;
    return false;
}

static void check_health(struct lc_view *v, json_t **hosts, const json_t *profile, struct health *h)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct kf_catalog_member *m = &v->members[i];
        const json_t *obj = v->objs[i];
        const char *phase = kf_json_str(obj, "status.phase", "Pending");
        bool hready = host_ready(hosts[i]);
        /* a status reported from another host (before a replacement
         * rebound the member) says nothing about it here */
        bool ready = hready && json_is_true(kf_json_path(obj, "status.ready")) &&
                     !strcmp(phase, "Ready") &&
                     kf_streq(kf_json_str(obj, "status.host", v->hosts[i]), v->hosts[i]);
        bool optional = optional_component(profile, m->component);

        if (!hready && !host_seen_before(v, i))
            note(&h->hosts_down, "%s (%s)", v->hosts[i],
                 hosts[i] ? "NotReady: its agent does not heartbeat" : "no such Host");
        if (!strcmp(m->component, "etcd")) {
            h->etcd_total++;
            if (ready)
                h->etcd_healthy++;
            else
                note(&h->etcd_problems, "%s on %s: %s%s%s", m->name, v->hosts[i],
                     hready ? phase : "its host is NotReady",
                     hready && kf_json_path(obj, "status.message") ? ": " : "",
                     hready ? kf_json_str(obj, "status.message", "") : "");
        }
        if (!optional) {
            size_t k = 0;

            h->desired++;
            while (k < h->n_comps && strcmp(h->comps[k].name, m->component) != 0)
                k++;
            if (k == h->n_comps && k < HEALTH_MAX_COMPONENTS)
                h->comps[h->n_comps++].name = m->component;
            if (k < h->n_comps) {
                h->comps[k].members++;
                h->comps[k].ready += ready;
            }
        }
        if (ready) {
            if (!optional)
                h->ready++;
            continue;
        }
        if (!strcmp(phase, "BinaryNotInstalled"))
            missing_add(optional ? &h->optional_missing : &h->required_missing, m->component,
                        kf_json_str(obj, "spec.binary", "?"), v->hosts[i]);
        else if (optional)
            note(&h->optional_notes, "%s is %s", m->name, phase);
        else if (hready)
            note(&h->not_ready, "%s is %s%s%s", m->name, phase,
                 kf_json_path(obj, "status.message") ? ": " : "",
                 kf_json_str(obj, "status.message", ""));
    }
}

static json_t *condition(const json_t *old_conds, const char *type, bool ok, const char *reason,
                         const char *message)
{
    const json_t *c;
    size_t i;
    char now[40];
    const char *when = NULL;

    json_array_foreach(old_conds, i, c)
    {
        if (kf_streq(kf_json_str(c, "type", NULL), type) &&
            kf_streq(kf_json_str(c, "status", NULL), ok ? "True" : "False"))
            when = kf_json_str(c, "lastTransitionTime", NULL);
    }
    kf_time_format_rfc3339(kf_now_ms(), now, sizeof(now));
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status", ok ? "True" : "False",
                     "reason", reason, "message", message, "lastTransitionTime", when ? when : now);
}

/* Writes the fields of `status` that differ from gc's status, keeping other
 * writers' conditions. */
static int set_status_once(struct lc *d, const json_t *gc, const json_t *ours, json_t *status,
                           struct kf_strbuf *err)
{
    const json_t *have = kf_json_path(gc, "status");
    const char *k;
    json_t *v, *body;
    bool differs = false;
    char rv[32];
    int r;

    if (ours) {
        /* merge: ours replace theirs of the same type, the rest stay */
        json_t *merged = json_array(), *c;
        size_t i;

        json_array_foreach(kf_json_path(gc, "status.conditions"), i, c)
        {
            const char *t = kf_json_str(c, "type", "");
            bool mine = false;
            size_t j;
            json_t *o;

            json_array_foreach(ours, j, o) mine = mine || kf_streq(kf_json_str(o, "type", ""), t);
            if (!mine)
                json_array_append(merged, c);
        }
        json_array_extend(merged, (json_t *)ours);
        json_object_set_new(status, "conditions", merged);
    }
    json_object_foreach(status, k, v)
    {
        if (!json_equal(json_object_get(have, k), v))
            differs = true;
    }
    if (!differs)
        return 0;
    snprintf(rv, sizeof(rv), "%lld", (long long)kf_obj_rv(gc));
    body = json_pack("{s:{s:s}, s:O}", "metadata", "resourceVersion", rv, "status", status);
    r = patch(d, &kf_kind_guestcluster, kf_obj_name(gc), KF_PATCH_MERGE, body, true, NULL, err);
    json_decref(body);
    return r;
}

/* Whether what this controller's verdict was drawn from is the same in
 * fresh as in gc: the phase (Provisioning is decided only for a cluster
 * never Running), the upgrade's record and version, the spec. */
static bool same_inputs(const json_t *gc, const json_t *fresh)
{
    static const char *const paths[] = { "status.phase", "status.upgrade", "status.version",
                                         "metadata.generation" };

    for (size_t i = 0; i < KF_ARRAY_SIZE(paths); i++) {
        const json_t *a = kf_json_path(gc, paths[i]), *b = kf_json_path(fresh, paths[i]);

        if (!(a == b || (a && b && json_equal(a, b))))
            return false;
    }
    return true;
}

/* Writes status onto gc's (set_status_once), reading the cluster again and
 * merging once more when another writer (placement counting members, an
 * operator) got in between: what is written does not depend on their
 * fields, and a reconcile that probed every member should not be thrown
 * away for it. When the fresh copy differs in what the verdict was drawn
 * from (same_inputs: most often this controller's own previous write,
 * which the informer had not shown yet), the verdict is stale and is not
 * written: a cluster seen Provisioning from the stale copy would otherwise
 * be written back from Running to Provisioning. The conflict reruns the
 * reconcile on the fresh copy. */
static int set_status(struct lc *d, const json_t *gc, json_t *status, struct kf_strbuf *err)
{
    json_t *ours = json_incref(json_object_get(status, "conditions")), *fresh = NULL;
    int r;

    for (int attempt = 0;; attempt++) {
        r = set_status_once(d, fresh ? fresh : gc, ours, status, err);
        if (r != -KF_ECONFLICT || attempt == 3)
            break;
        json_decref(fresh);
        fresh = NULL;
        if (kf_registry_get(d->reg, &kf_kind_guestcluster, kf_obj_name(gc), &fresh) < 0 ||
            kf_obj_deleting(fresh) || !same_inputs(gc, fresh))
            break;
        kf_strbuf_reset(err);
    }
    if (ours)
        json_object_set_new(status, "conditions", ours);
    json_decref(fresh);
    return r;
}

/* How long the cluster has been provisioning: since its Ready condition
 * last changed (it turns False, reason Provisioning, when provisioning
 * starts). */
static int64_t provisioning_ms(const json_t *gc)
{
    const json_t *conds = kf_json_path(gc, "status.conditions"), *c;
    size_t i;
    int64_t since = 0;

    json_array_foreach(conds, i, c)
    {
        if (kf_streq(kf_json_str(c, "type", NULL), "Ready"))
            kf_time_parse_rfc3339(kf_json_str(c, "lastTransitionTime", ""), &since);
    }
    return since > 0 ? kf_now_ms() - since : 0;
}

static bool provisioned(const json_t *gc)
{
    const char *p = kf_json_str(gc, "status.phase", "");

    return !strcmp(p, "Running") || !strcmp(p, "Degraded") || !strcmp(p, "Upgrading") ||
           !strcmp(p, "Migrating");
}

/* endpoint_answers by a probe of our own. */
static bool endpoint_probe(struct lc *d, const char *cluster, const char *url,
                           struct kf_strbuf *detail)
{
    char *dir = kf_lifecycle_pki_dir(d->data_dir, cluster), *ca = kf_xasprintf("%s/ca.crt", dir);
    char addr[KF_EP_ADDR_MAX];
    int port = 0;
    bool ok = false;

    if (endpoint_parse(url, addr, &port)) {
        struct kf_probe p = { .type = KF_PROBE_HTTP,
                              .host = addr,
                              .port = port,
                              .path = "/readyz",
                              .https = true,
                              .ca_file = ca,
                              .timeout_ms = PROBE_TIMEOUT_MS };

        ok = kf_probe_check(&p, detail);
    }
    free(ca);
    free(dir);
    return ok;
}

/* Whether the apiserver answers /readyz through the cluster's endpoint,
 * checked against the cluster's CA (anonymous: /readyz is public). The
 * unit's HAProxy, when kfleetd runs it, checks exactly that for every
 * apiserver behind the endpoint: what it found (one read of its stats a
 * second for the whole unit) answers without a probe; kfleetd probes only
 * when HAProxy finds none serving or cannot say (external endpoints, a
 * HAProxy that is starting), so a fleet at rest costs no TLS handshake a
 * cluster. detail says which way the answer came. */
static bool endpoint_answers(struct lc *d, const char *cluster, const char *unit, const char *url,
                             struct kf_strbuf *detail)
{
    int up = 0, total = 0;

    if (d->endpoints && unit &&
        kf_endpoints_serving(d->endpoints, unit, cluster, &up, &total) == 0 && up > 0) {
        kf_strbuf_addf(detail, "its HAProxy finds %d of %d apiservers ready", up, total);
        return true;
    }
    return endpoint_probe(d, cluster, url, detail);
}

/* The simulated nodes the spec asks for, made so through the endpoint
 * (ctrl-lifecycle-nodes.c), and status.nodes: how many are wanted, registered
 * and Ready (a problem in its message). Nothing is done for a cluster
 * that never had any. */
static void sync_nodes(struct lc *d, const json_t *gc, const char *endpoint_url, json_t *status,
                       int64_t *requeue)
{
    int64_t want = kf_json_int(gc, "spec.simulatedNodes", 0);
    json_int_t max_pods = kf_json_int(gc, "status.effective.network.maxPodsPerNode", 110);
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct lc_nodes n = { 0 };
    char *dir;
    json_t *st;

    if (want <= 0 && kf_json_int(gc, "status.nodes.registered", 0) <= 0)
        return;
    dir = kf_lifecycle_pki_dir(d->data_dir, kf_obj_name(gc));
    if (kf_lifecycle_nodes_sync(dir, endpoint_url, want,
                                (unsigned)KF_MIN(KF_MAX(max_pods, 1), 1024), &n, &err) < 0) {
        st = json_pack("{s:I, s:s}", "simulated", (json_int_t)want, "message", err.buf);
        /* keep the last counts: the guest did not answer this time */
        json_object_set(st, "registered",
                        kf_json_path(gc, "status.nodes.registered")
                            ? kf_json_path(gc, "status.nodes.registered")
                            : json_integer(0));
        json_object_set(st, "ready",
                        kf_json_path(gc, "status.nodes.ready")
                            ? kf_json_path(gc, "status.nodes.ready")
                            : json_integer(0));
        *requeue = KF_MIN(*requeue, PROVISIONING_RECHECK_MS);
    } else {
        st = json_pack("{s:I, s:I, s:I}", "simulated", (json_int_t)want, "registered",
                       (json_int_t)n.registered, "ready", (json_int_t)n.ready);
        if (n.pending || n.ready < want)
            *requeue = KF_MIN(*requeue, PROVISIONING_RECHECK_MS);
    }
    json_object_set_new(status, "nodes", st);
    kf_strbuf_release(&err);
    free(dir);
}

/* What the health of a cluster comes to: the facts and their words. */
struct verdict {
    bool quorum, etcd_ok, comps_ok, ep_ok, serves, full;
    const char *creason; /* ComponentsReady's reason */
    const char *phase;
    struct kf_strbuf emsg;  /* etcd: "2 of 3 etcd members healthy: ..." */
    struct kf_strbuf cmsg;  /* components */
    struct kf_strbuf gaps;  /* components with no ready member */
    struct kf_strbuf epmsg; /* the endpoint */
    struct kf_strbuf msg;   /* the phase's message */
};

static void verdict_release(struct verdict *vd)
{
    kf_strbuf_release(&vd->emsg);
    kf_strbuf_release(&vd->cmsg);
    kf_strbuf_release(&vd->gaps);
    kf_strbuf_release(&vd->epmsg);
    kf_strbuf_release(&vd->msg);
}

/* Checks the members, etcd and the endpoint (h) and sums them up in vd. */
static void judge(struct lc *d, const char *name, const char *unit, struct lc_view *v,
                  json_t **hosts, const json_t *profile, const char *endpoint_url, struct health *h,
                  struct verdict *vd)
{
    check_health(v, hosts, profile, h);
    for (size_t k = 0; k < h->n_comps; k++)
        if (h->comps[k].ready == 0)
            note(&vd->gaps, "%s (none of %zu ready)", h->comps[k].name, h->comps[k].members);
    vd->ep_ok = true;
    if (endpoint_url) {
        struct kf_strbuf detail = KF_STRBUF_INIT;

        vd->ep_ok = endpoint_answers(d, name, unit, endpoint_url, &detail);
        if (vd->ep_ok)
            kf_strbuf_addf(&vd->epmsg, "the apiserver answers at %s (%s)", endpoint_url,
                           detail.len ? detail.buf : "probed");
        else
            kf_strbuf_addf(&vd->epmsg, "the apiserver endpoint %s does not answer: %s",
                           endpoint_url, detail.len ? detail.buf : "not ready");
        kf_strbuf_release(&detail);
    }
    missing_format(h->required_missing, &h->missing);
    h->required_missing = NULL;
    {
        struct kf_strbuf opt = KF_STRBUF_INIT;

        missing_format(h->optional_missing, &opt);
        h->optional_missing = NULL;
        if (opt.len)
            note(&h->optional_notes, "not installed: %s", opt.buf);
        kf_strbuf_release(&opt);
    }
    vd->quorum = h->etcd_total > 0 && h->etcd_healthy >= h->etcd_total / 2 + 1;
    vd->etcd_ok = h->etcd_total > 0 && h->etcd_healthy == h->etcd_total;
    vd->comps_ok = !h->missing.len && !h->not_ready.len && !h->hosts_down.len;
    kf_strbuf_addf(&vd->emsg, "%zu of %zu etcd members healthy", h->etcd_healthy, h->etcd_total);
    if (h->etcd_problems.len)
        kf_strbuf_addf(&vd->emsg, ": %s", h->etcd_problems.buf);
    vd->creason = h->missing.len      ? "BinaryNotInstalled"
                  : h->hosts_down.len ? "HostNotReady"
                  : h->not_ready.len  ? "NotReady"
                                      : "AllReady";
    if (h->missing.len)
        note(&vd->cmsg, "not installed: %s", h->missing.buf);
    if (h->hosts_down.len)
        note(&vd->cmsg, "hosts not Ready: %s", h->hosts_down.buf);
    if (h->not_ready.len)
        note(&vd->cmsg, "not ready: %s", h->not_ready.buf);
    if (!vd->cmsg.len)
        kf_strbuf_addf(&vd->cmsg, "%zu of %zu members ready", h->ready, h->desired);
    /* serves: what clients need works (a quorum, a ready member of every
     * component, the apiserver through its endpoint); full: every member
     * is there too. A cluster that serves is Running, with what it lacks
     * in its conditions and message: losing a zone must not take it out
     * of Running, since it is what the three zones are for. */
    vd->serves = vd->quorum && !vd->gaps.len && vd->ep_ok;
    vd->full = vd->etcd_ok && vd->comps_ok;
}

/* The phase and its message from vd, and when to look again. */
static void decide_phase(struct lc *d, const json_t *gc, const struct health *h,
                         const char *endpoint_url, struct verdict *vd, int64_t *requeue)
{
    if (!provisioned(gc) && !(vd->serves && vd->full) &&
        !(vd->quorum && ((vd->etcd_ok && h->missing.len) || h->hosts_down.len ||
                         provisioning_ms(gc) >= d->opt.provision_timeout_ms))) {
        /* Still coming up: members not ready yet is expected for a while.
         * Degraded only for what waiting will not fix (a binary that is
         * not installed, a host that is down) or after the timeout. */
        vd->phase = "Provisioning";
        if (!vd->quorum)
            kf_strbuf_addf(&vd->msg, "waiting for etcd: %s", vd->emsg.buf);
        else if (!vd->full)
            kf_strbuf_addf(&vd->msg, "etcd has quorum; waiting for members: %s", vd->cmsg.buf);
        else
            kf_strbuf_addf(&vd->msg, "every member is ready; waiting until %s", vd->epmsg.buf);
        /* the endpoint answering is seen only by asking it; without one,
         * every change comes as a member's event, and asking each of
         * thousands of provisioning clusters again every second was most
         * of a burst's reconciles (the look after PROVISIONING_WAIT_MS is
         * for the provisioning timeout) */
        *requeue = endpoint_url ? PROVISIONING_RECHECK_MS : PROVISIONING_WAIT_MS;
    } else if (vd->serves) {
        vd->phase = "Running";
        if (vd->full)
            kf_strbuf_addf(&vd->msg, "etcd healthy (%zu members), %zu of %zu members ready",
                           h->etcd_total, h->ready, h->desired);
        else
            kf_strbuf_addf(&vd->msg, "serving with reduced redundancy: %s%s%s",
                           vd->etcd_ok ? "" : vd->emsg.buf, vd->etcd_ok || vd->comps_ok ? "" : "; ",
                           vd->comps_ok ? "" : vd->cmsg.buf);
        if (endpoint_url)
            kf_strbuf_addf(&vd->msg, "; %s", vd->epmsg.buf);
        *requeue = d->opt.health_period_ms;
    } else {
        vd->phase = "Degraded";
        if (!vd->quorum)
            kf_strbuf_addf(&vd->msg, "etcd has no quorum: %s", vd->emsg.buf);
        else if (vd->gaps.len)
            kf_strbuf_addf(&vd->msg, "%s: no ready member of %s: %s", vd->creason, vd->gaps.buf,
                           vd->cmsg.buf);
        else
            kf_strbuf_addf(&vd->msg, "%s", vd->epmsg.buf);
        if (!vd->quorum && !vd->comps_ok)
            kf_strbuf_addf(&vd->msg, "; %s", vd->cmsg.buf);
        if ((!vd->quorum || vd->gaps.len) && endpoint_url && !vd->ep_ok)
            kf_strbuf_addf(&vd->msg, "; %s", vd->epmsg.buf);
        *requeue = d->opt.health_period_ms;
    }
    if (h->optional_notes.len)
        kf_strbuf_addf(&vd->msg, " (optional: %s)", h->optional_notes.buf);
}

/* status.endpoints: the etcd client URLs, the apiserver endpoint, the
 * kubeconfig action's path (new reference). */
static json_t *endpoints_json(const char *name, const struct lc_view *v, const char *endpoint_url)
{
    json_t *etcd_urls = json_array(), *ep;
    char *kc = kf_xasprintf("/apis/kfleet.io/v1/guestclusters/%s/kubeconfig", name);

    for (size_t i = 0; i < v->n; i++) {
        int port = (int)json_integer_value(json_object_get(v->members[i].ports, "client"));

        if (!strcmp(v->members[i].component, "etcd") && port > 0) {
            char url[300];

            snprintf(url, sizeof(url),
                     strchr(v->address[i], ':') ? "https://[%s]:%d" : "https://%s:%d",
                     v->address[i], port);
            json_array_append_new(etcd_urls, json_string(url));
        }
    }
    ep = json_pack("{s:o}", "etcd", etcd_urls);
    if (endpoint_url)
        json_object_set_new(ep, "apiServer", json_string(endpoint_url));
    json_object_set_new(ep, "kubeconfig", json_string(kc));
    free(kc);
    return ep;
}

/* This controller's conditions (new reference). */
static json_t *conditions_json(const json_t *old_conds, const struct verdict *vd,
                               const char *endpoint_url)
{
    json_t *conds = json_array();

    json_array_append_new(conds, condition(old_conds, "EtcdQuorum", vd->quorum,
                                           vd->etcd_ok  ? "Healthy"
                                           : vd->quorum ? "MemberUnhealthy"
                                                        : "NoQuorum",
                                           vd->emsg.buf));
    json_array_append_new(
        conds, condition(old_conds, "ComponentsReady", vd->comps_ok, vd->creason, vd->cmsg.buf));
    if (endpoint_url)
        json_array_append_new(conds,
                              condition(old_conds, "EndpointReady", vd->ep_ok,
                                        vd->ep_ok ? "Answering" : "NotAnswering", vd->epmsg.buf));
    json_array_append_new(conds, condition(old_conds, "Ready", !strcmp(vd->phase, "Running"),
                                           vd->phase, vd->msg.buf));
    return conds;
}

/* What the upgrade engine decided, into status (and the phase into vd). */
static void upgrade_status(const json_t *gc, const json_t *profile, const struct lc_upgrade *up,
                           struct verdict *vd, json_t *status, int64_t *requeue)
{
    const char *version = up->version ? up->version : kf_json_str(gc, "status.version", NULL);
    json_t *conds = json_object_get(status, "conditions");

    if (up->status)
        json_object_set(status, "upgrade", up->status);
    if (up->version)
        json_object_set_new(status, "version", json_string(up->version));
    if (version && profile)
        json_object_set_new(
            status, "versionState",
            json_string(kf_version_state_name(kf_version_state(profile, version, time(NULL)))));
    if (up->cond_reason)
        json_array_append_new(conds, condition(kf_json_path(gc, "status.conditions"), "Upgraded",
                                               up->cond_ok, up->cond_reason, up->msg.buf));
    if (up->active) {
        vd->phase = "Upgrading";
        kf_strbuf_reset(&vd->msg);
        kf_strbuf_addstr(&vd->msg, up->msg.buf);
        *requeue = PROVISIONING_RECHECK_MS;
    } else if (up->requeue_ms > 0 && up->requeue_ms < *requeue) {
        *requeue = up->requeue_ms;
    }
}

/* A live migration under way (the replace controller moves the members):
 * a serving or degraded cluster says Migrating, and where to. */
static void migrating_phase(const json_t *gc, struct verdict *vd)
{
    struct kf_move_req m;
    char *msg;

    if ((strcmp(vd->phase, "Running") != 0 && strcmp(vd->phase, "Degraded") != 0) ||
        !kf_migrate_active(gc, &m))
        return;
    msg = kf_xasprintf("migrating from unit %s to unit %s (condition Migrated says each "
                       "member's step); %s",
                       m.from, m.to, vd->msg.buf);
    vd->phase = "Migrating";
    kf_strbuf_reset(&vd->msg);
    kf_strbuf_addstr(&vd->msg, msg);
    free(msg);
}

static int update_status(struct lc *d, const json_t *gc, struct lc_view *v, const json_t *profile,
                         struct health *h, struct verdict *vd, const struct lc_upgrade *up,
                         const char *endpoint_url, int64_t *requeue, struct kf_strbuf *err)
{
    const char *name = kf_obj_name(gc), *old_phase = kf_json_str(gc, "status.phase", "");
    json_t *status;
    int r;

    decide_phase(d, gc, h, endpoint_url, vd, requeue);
    /* status.members is placement's (it counts every member of the shape);
     * the counts here are in the ComponentsReady condition */
    status = json_pack("{s:s, s:s, s:o, s:I, s:o}", "phase", vd->phase, "message", vd->msg.buf,
                       "conditions",
                       conditions_json(kf_json_path(gc, "status.conditions"), vd, endpoint_url),
                       "observedGeneration", (json_int_t)kf_obj_generation(gc), "endpoints",
                       endpoints_json(name, v, endpoint_url));
    if (!kf_json_path(gc, "status.version"))
        json_object_set_new(status, "version", json_string(v->c.version));
    upgrade_status(gc, profile, up, vd, status, requeue);
    migrating_phase(gc, vd);
    json_object_set_new(status, "phase", json_string(vd->phase));
    json_object_set_new(status, "message", json_string(vd->msg.buf));
    if (endpoint_url && vd->ep_ok)
        sync_nodes(d, gc, endpoint_url, status, requeue);
    r = set_status(d, gc, status, err);
    if (r == 0 && strcmp(vd->phase, old_phase) != 0) {
        bool bad = !strcmp(vd->phase, "Degraded");

        kf_log_info("cluster \"%s\": %s -> %s: %s", name, old_phase[0] ? old_phase : "-", vd->phase,
                    vd->msg.buf);
        kf_recorder_eventf(d->rec, gc, bad ? KF_EVENT_WARNING : KF_EVENT_NORMAL, vd->phase, "%s",
                           vd->msg.buf);
    }
    if (r == 0 && up->event_reason) {
        kf_log_info("cluster \"%s\": %s: %s", name, up->event_reason, up->msg.buf);
        kf_recorder_eventf(d->rec, gc, up->event_warning ? KF_EVENT_WARNING : KF_EVENT_NORMAL,
                           up->event_reason, "%s", up->msg.buf);
    }
    json_decref(status);
    return r;
}

/* --- reconcile ------------------------------------------------------------------- */

/* Components that reach the apiserver through the endpoint and exit when it
 * does not answer (the controller manager, the scheduler, KWOK). Their
 * command line is filled in, and so their first start happens, once the
 * endpoint answers: started with the apiserver, they exit again and again
 * while it boots and the runner's back-off (1 s doubling) delays the
 * cluster by seconds. */
static bool waits_for_apiserver(const char *component)
{
    return !strcmp(component, "kube-controller-manager") || !strcmp(component, "kube-scheduler") ||
           !strcmp(component, KF_KWOK_COMPONENT);
}

static const char *cluster_version(const json_t *gc, const json_t *profile)
{
    const char *v = kf_json_str(gc, "status.version", NULL);

    if (!v)
        v = kf_json_str(gc, "status.effective.version", NULL);
    if (!v)
        v = kf_json_str(gc, "spec.version", NULL);
    if (!v)
        v = kf_json_str(profile, "spec.defaultVersion", NULL);
    return v ? v : "1.31";
}

/* The flags in effect: placement's merged view when it wrote one, else the
 * profile's with the cluster's on top (new reference). */
static json_t *cluster_flags(const json_t *gc, const json_t *profile)
{
    const json_t *eff = kf_json_path(gc, "status.effective.flags");
    json_t *f;

    if (json_is_object(eff))
        return json_incref((json_t *)eff);
    f = json_is_object(kf_json_path(profile, "spec.flags"))
            ? json_deep_copy(kf_json_path(profile, "spec.flags"))
            : json_object();
    if (json_is_object(kf_json_path(gc, "spec.flags")))
        json_object_update(f, kf_json_path(gc, "spec.flags"));
    return f;
}

static int64_t quota_bytes(const json_t *profile)
{
    const char *q = kf_json_str(profile, "spec.etcd.quotaBackendBytes", NULL);
    int64_t milli;

    if (q && kf_parse_quantity(q, &milli) == 0 && milli > 0)
        return milli / 1000;
    return 0;
}

/* Placed whole: placement says Scheduled (or we moved on from there),
 * every member it created is bound, and as many as it said. Provisioning a
 * partial set would bootstrap etcd with the wrong peers. */
static bool placed_whole(const json_t *gc, json_t *const *ms, size_t n)
{
    const char *phase = kf_json_str(gc, "status.phase", "Pending");
    size_t live = 0;

    for (size_t i = 0; i < n; i++) {
        if (kf_obj_deleting(ms[i]))
            continue;
        live++;
        if (!kf_json_str(ms[i], "spec.host", NULL))
            return false;
    }
    if (live == 0 || !strcmp(phase, "Pending"))
        return false;
    return !(kf_json_path(gc, "status.members.desired") &&
             kf_json_int(gc, "status.members.desired", 0) > (json_int_t)live &&
             !strcmp(phase, "Scheduled"));
}

/* Scheduled -> Provisioning, with its Event; *gc is read again (the write
 * changed its resourceVersion). */
static int start_provisioning(struct lc *d, json_t **gc, size_t n, struct kf_strbuf *err)
{
    json_t *st = json_pack("{s:s, s:s}", "phase", "Provisioning", "message",
                           "allocating ports, issuing certificates, starting members");
    char *name = kf_xstrdup(kf_obj_name(*gc));
    int r = set_status(d, *gc, st, err);

    json_decref(st);
    if (r == 0) {
        kf_recorder_eventf(d->rec, *gc, KF_EVENT_NORMAL, "Provisioning",
                           "provisioning %zu members on unit %s", n,
                           kf_json_str(*gc, "status.unit", "?"));
        json_decref(*gc);
        *gc = NULL;
        r = kf_registry_get(d->reg, &kf_kind_guestcluster, name, gc);
    }
    free(name);
    return r;
}

/* The catalog's view of the cluster (v->c) from its object and profile;
 * strings point into gc, profile and flags, which must outlive v. */
static void catalog_cluster(const json_t *gc, const json_t *profile, const json_t *flags,
                            struct lc_view *v)
{
    v->c = (struct kf_catalog_cluster){
        .name = kf_obj_name(gc),
        .version = cluster_version(gc, profile),
        .grade = grade_of(gc),
        .service_cidr = kf_json_str(gc, "status.network.serviceCIDR", ""),
        .pod_cidr = kf_json_str(gc, "status.network.podCIDR", ""),
        .node_cidr = kf_json_str(gc, "status.network.nodeCIDR", ""),
        .kubernetes_service_ip = kf_json_str(gc, "status.network.kubernetesServiceIP", ""),
        .dns_service_ip = kf_json_str(gc, "status.network.dnsServiceIP", ""),
        .etcd_quota_bytes = quota_bytes(profile),
        .members = v->members,
        .n_members = v->n,
        .components = kf_json_path(profile, "spec.components"),
        .flags = flags,
    };
}

/* Fills every member (fill_member), but a component that waits for the
 * apiserver only once the endpoint answers. */
static int fill_members(struct lc *d, const char *name, struct lc_view *v, json_t *const *hosts,
                        const json_t *files, const char *endpoint_url, const char *const *versions,
                        struct kf_strbuf *err)
{
    const char *cluster_version = v->c.version;
    bool *restarted = kf_xcalloc(v->n + 1, sizeof(*restarted));
    int r = 0;

    int ep_up = -1; /* the endpoint answers: -1 not asked yet */

    for (size_t i = 0; i < v->n && r == 0; i++) {
        bool settled, wrote = false;

        if (kf_replace_etcd_waiting(v->objs[i])) {
            /* started once etcd knows it (ctrl-replace.c); its ports now:
             * the membership change names its peer URL */
            r = write_ports(d, v, i, err);
            r = r < 0 ? r : 0;
            continue;
        }
        if (endpoint_url && waits_for_apiserver(v->members[i].component) &&
            !kf_json_str(v->objs[i], "spec.binary", NULL)) {
            if (ep_up < 0) {
                struct kf_strbuf detail = KF_STRBUF_INIT;

                ep_up = endpoint_probe(d, name, endpoint_url, &detail);
                kf_strbuf_release(&detail);
            }
            if (!ep_up) {
                /* started once the apiserver answers; its ports now */
                r = write_ports(d, v, i, err);
                r = r < 0 ? r : 0;
                continue;
            }
        }
        /* each member at the version the upgrade engine gives it */
        v->c.version = versions[i] ? versions[i] : cluster_version;
        settled = kf_replace_settled(v->objs[i], hosts[i]);
        r = fill_member(d, v, i, files, kf_replace_hold(v, hosts, i, restarted), &wrote, err);
        v->c.version = cluster_version;
        restarted[i] = wrote && settled;
    }
    free(restarted);
    return r;
}

/* Health, the upgrade engine's plan, every member's spec at the version it
 * gives, then the status. */
static int upgrade_and_status(struct lc *d, const json_t *gc, struct lc_view *v, json_t **hosts,
                              const json_t *profile, const json_t *files, const char *endpoint_url,
                              int64_t *requeue, struct kf_strbuf *err)
{
    const char *name = kf_obj_name(gc);
    struct health h = { 0 };
    struct verdict vd = { 0 };
    struct lc_upgrade up;
    struct lc_upgrade_in in;
    int r;

    judge(d, name, kf_json_str(gc, "status.unit", NULL), v, hosts, profile, endpoint_url, &h, &vd);
    in = (struct lc_upgrade_in){
        .gc = gc,
        .v = v,
        .hosts = hosts,
        .healthy = vd.serves && vd.full,
        .health_msg = vd.full ? vd.epmsg.buf : vd.cmsg.buf,
        .has_endpoint = endpoint_url != NULL,
        .endpoint_ok = vd.ep_ok,
        .now_ms = kf_now_ms(),
        .step_timeout_ms = d->opt.upgrade_step_timeout_ms,
    };
    kf_lifecycle_upgrade_plan(&in, &up);
    r = fill_members(d, name, v, hosts, files, endpoint_url, up.versions, err);
    if (r == 0)
        r = update_status(d, gc, v, profile, &h, &vd, &up, endpoint_url, requeue, err);
    kf_lifecycle_upgrade_release(&up);
    health_release(&h);
    verdict_release(&vd);
    return r;
}

/* Runs a placed cluster's members: ports, the apiserver endpoint, the PKI,
 * each member's spec, then the cluster's status. Takes ms. */
static int converge(struct lc *d, const char *name, json_t *gc, json_t **ms, size_t n,
                    int64_t *requeue, struct kf_strbuf *err)
{
    json_t *profile, *flags, *files = NULL, **hosts = NULL;
    struct lc_view v = { 0 };
    char *endpoint_url = NULL;
    const char *profile_name;
    int r = 0;

    profile_name =
        kf_json_str(gc, "status.effective.profile",
                    kf_json_str(gc, "status.profile", kf_json_str(gc, "spec.profile", "standard")));
    profile = kf_informer_get_obj(d->profiles, profile_name);
    flags = cluster_flags(gc, profile);
    view_build(d, ms, n, &v, &hosts);
    catalog_cluster(gc, profile, flags, &v);
    for (size_t i = 0; i < v.n && r >= 0; i++)
        r = ensure_ports(d, &v, i, err);
    /* New ports are stored before any member's command line is rendered
     * from them: an etcd member's --initial-cluster names its peers' ports,
     * and a peer whose conditional write failed (its object changed since
     * the informer's copy) picks again on the next pass, maybe other ports,
     * which would restart the member already started with the old ones. */
    for (size_t i = 0; i < v.n && r >= 0; i++)
        r = write_ports(d, &v, i, err);
    if (r >= 0)
        r = ensure_endpoint(d, gc, &v, &endpoint_url, err);
    if (r == 0)
        r = ensure_pki(d, gc, &v, endpoint_url, &files, err);
    if (r == 0)
        r = upgrade_and_status(d, gc, &v, hosts, profile, files, endpoint_url, requeue, err);
    for (size_t i = 0; hosts && i < v.n; i++)
        json_decref(hosts[i]);
    free(hosts);
    kf_lifecycle_view_release(&v);
    json_decref(files);
    json_decref(flags);
    json_decref(profile);
    free(endpoint_url);
    return r;
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue)
{
    struct lc *d = kf_ctrl_data(c);
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *gc = NULL, **ms = NULL;
    const char *unit;
    size_t n;
    int r;

    r = kf_registry_get(d->reg, &kf_kind_guestcluster, name, &gc);
    if (r == -KF_ENOTFOUND) {
        /* gone: its PKI goes once no member is left */
        n = cluster_members(d, name, &ms);
        pki_memo_forget(d, name);
        if (n == 0)
            r = kf_lifecycle_pki_remove(d->store, d->data_dir, name);
        else
            r = 0;
        members_free(ms, n);
        return r;
    }
    if (r < 0)
        return r;
    if (kf_obj_deleting(gc)) {
        if (kf_obj_has_finalizer(gc, KF_FINALIZER_LIFECYCLE))
            r = reconcile_delete(d, gc, requeue);
        json_decref(gc);
        return r;
    }
    if (!kf_obj_has_finalizer(gc, KF_FINALIZER_LIFECYCLE)) {
        json_t *updated = NULL;

        r = add_finalizer(d, &kf_kind_guestcluster, gc, KF_FINALIZER_LIFECYCLE, &updated, &err);
        if (r < 0)
            goto put_cluster;
        json_decref(gc);
        gc = updated;
    }
    n = cluster_members(d, name, &ms);
    release_members(d, ms, n, gc);
    unit = kf_json_str(gc, "status.unit", NULL);
    /* paused, or placement's turn (member events bring us back) */
    if (json_is_true(kf_json_path(gc, "spec.paused")) || !unit || !placed_whole(gc, ms, n))
        goto free_members;
    if (!strcmp(kf_json_str(gc, "status.phase", "Pending"), "Scheduled")) {
        r = start_provisioning(d, &gc, n, &err);
        if (r < 0)
            goto free_members;
    }
    r = converge(d, name, gc, ms, n, requeue, &err);
    goto put_cluster;
free_members:
    members_free(ms, n);
put_cluster:
    if (r < 0 && r != -KF_ECONFLICT)
        kf_log_warn("cluster \"%s\": %s; trying again", name, err.len ? err.buf : strerror(-r));
    json_decref(gc);
    kf_strbuf_release(&err);
    return r;
}

const struct kf_ctrl_ops kf_ctrl_lifecycle_ops = {
    .name = "lifecycle",
    .primary_kind = "GuestCluster",
    .workers = 4,
    .setup = setup,
    .reconcile = reconcile,
};
