/* ctrl-lifecycle-actions.c: the API's certificate actions (kfleet/lifecycle.h).
 *
 * They read only the registry and the PKI in the store, so every kfleetd
 * replica answers them, leader or not:
 *   GET .../controlplanemembers/<name>/bundle   (agent, admin)
 *   GET .../guestclusters/<name>/kubeconfig     (admin)
 *   GET .../guestclusters/<name>/etcdclient     (admin)
 * A bundle holds only what the member's component needs (catalog.h): an
 * etcd member gets its own server and peer keys and the etcd CA's
 * certificate, never a CA key; only kube-controller-manager gets the
 * cluster CA's key, which it signs kubelet certificates with.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/api-action.h"
#include "kfleet/catalog.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/lifecycle.h"
#include "kfleet/obj.h"
#include "kfleet/pki.h"
#include "kfleet/registry.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-lifecycle.h"

struct kf_lifecycle_actions {
    struct kf_registry *reg;
    struct kf_store *store;
};
#define lc_actions kf_lifecycle_actions

/* A stored file's text (file names have dots: no kf_json_path here). */
static const char *file_text(const json_t *files, const char *name)
{
    return json_string_value(json_object_get(files, name));
}

static int load_files(struct lc_actions *a, const char *cluster, json_t **ret,
                      struct kf_strbuf *err)
{
    int r = kf_lifecycle_pki_load(a->store, cluster, ret, NULL);

    if (r == -KF_ENOTFOUND)
        return kf_err(err, -KF_EUNAVAILABLE,
                      "guest cluster \"%s\" has no certificates yet: it is still being "
                      "provisioned",
                      cluster);
    if (r < 0)
        return kf_err(err, r, "cannot read the certificates of \"%s\": %s", cluster, strerror(-r));
    return 0;
}

static int get_obj(struct lc_actions *a, const struct kf_kind *k, const char *name, json_t **ret,
                   struct kf_strbuf *err)
{
    int r = kf_registry_get(a->reg, k, name, ret);

    if (r == -KF_ENOTFOUND)
        return kf_err(err, r, "%s \"%s\" not found", k->singular, name);
    if (r < 0)
        return kf_err(err, r, "cannot read %s \"%s\": %s", k->singular, name, strerror(-r));
    return 0;
}

static int bundle_fn(void *arg, const struct kf_api_call *call, json_t **ret, struct kf_strbuf *err)
{
    struct lc_actions *a = arg;
    json_t *m = NULL, *files = NULL, *list = NULL;
    const char *cluster, *bound = kf_api_user_host(call->user);
    char hash[65];
    int r = get_obj(a, &kf_kind_controlplanemember, call->name, &m, err);

    if (r < 0)
        return r;
    if (bound && strcmp(bound, kf_json_str(m, "spec.host", "")) != 0) {
        /* an agent token bound to a host gets its own members' keys only */
        r = kf_err(err, -KF_EFORBIDDEN,
                   "user \"%s\" may fetch the certificates of the members on host \"%s\" only; "
                   "member \"%s\" is on \"%s\"",
                   call->user, bound, call->name, kf_json_str(m, "spec.host", ""));
        json_decref(m);
        return r;
    }
    cluster = kf_json_str(m, "spec.cluster", "");
    r = load_files(a, cluster, &files, err);
    if (r == 0) {
        struct kf_catalog_member cm = {
            .name = kf_obj_name(m),
            .component = kf_json_str(m, "spec.component", ""),
            .index = (int)kf_json_int(m, "spec.index", 0),
            .address = "",
            .ports = kf_json_path(m, "spec.ports"),
        };
        struct kf_catalog_cluster c = { .name = cluster,
                                        .version = kf_json_str(m, "spec.version", ""),
                                        .members = &cm,
                                        .n_members = 1 };

        r = kf_lifecycle_bundle(files, &c, 0, &list, hash);
        if (r < 0)
            r = kf_err(err, -KF_EUNAVAILABLE,
                       "the certificates of member \"%s\" are not issued yet", call->name);
        else
            *ret = json_pack("{s:s, s:s, s:s, s:o}", "member", call->name, "cluster", cluster,
                             "hash", hash, "files", list);
    }
    json_decref(files);
    json_decref(m);
    return r;
}

/* The cluster and its stored files. */
static int cluster_files(struct lc_actions *a, const char *name, json_t **ret_gc,
                         json_t **ret_files, struct kf_strbuf *err)
{
    int r = get_obj(a, &kf_kind_guestcluster, name, ret_gc, err);

    if (r == 0) {
        r = load_files(a, name, ret_files, err);
        if (r < 0) {
            json_decref(*ret_gc);
            *ret_gc = NULL;
        }
    }
    return r;
}

static int kubeconfig_fn(void *arg, const struct kf_api_call *call, json_t **ret,
                         struct kf_strbuf *err)
{
    struct lc_actions *a = arg;
    json_t *gc = NULL, *files = NULL;
    struct kf_strbuf out = KF_STRBUF_INIT;
    const char *server;
    int r = cluster_files(a, call->name, &gc, &files, err);

    if (r < 0)
        return r;
    server = kf_json_str(gc, "status.endpoints.apiServer", NULL);
    if (!server) {
        r = kf_err(err, -KF_EUNAVAILABLE,
                   "guest cluster \"%s\" has no kube-apiserver endpoint yet (its profile may "
                   "have no kube-apiserver, or it is still being provisioned)",
                   call->name);
    } else {
        struct kf_kubeconfig kc = {
            .cluster_name = call->name,
            .server = server,
            .ca_pem = file_text(files, "ca.crt"),
            .client_cert_pem = file_text(files, "admin.crt"),
            .client_key_pem = file_text(files, "admin.key"),
        };

        if (!kc.ca_pem || !kc.client_cert_pem || !kc.client_key_pem)
            r = kf_err(err, -KF_EUNAVAILABLE, "the admin certificate of \"%s\" is not issued yet",
                       call->name);
        else
            r = kf_pki_kubeconfig_render(&kc, &out, err);
        if (r == 0)
            *ret = json_pack("{s:s, s:s, s:s}", "cluster", call->name, "server", server,
                             "kubeconfig", out.buf);
    }
    kf_strbuf_release(&out);
    json_decref(files);
    json_decref(gc);
    return r;
}

static int etcdclient_fn(void *arg, const struct kf_api_call *call, json_t **ret,
                         struct kf_strbuf *err)
{
    struct lc_actions *a = arg;
    json_t *gc = NULL, *files = NULL, *eps;
    const char *ca, *cert, *key;
    int r = cluster_files(a, call->name, &gc, &files, err);

    if (r < 0)
        return r;
    eps = kf_json_path(gc, "status.endpoints.etcd");
    ca = file_text(files, "etcd/ca.crt");
    cert = file_text(files, "etcd/client.crt");
    key = file_text(files, "etcd/client.key");
    if (!json_array_size(eps) || !ca || !cert || !key)
        r = kf_err(err, -KF_EUNAVAILABLE, "guest cluster \"%s\" has no etcd endpoints yet",
                   call->name);
    else
        *ret = json_pack("{s:s, s:O, s:s, s:s, s:s}", "cluster", call->name, "endpoints", eps, "ca",
                         ca, "cert", cert, "key", key);
    json_decref(files);
    json_decref(gc);
    return r;
}

int kf_lifecycle_add_actions(const struct kf_api_actions *actions, struct kf_registry *reg,
                             struct kf_store *store, struct kf_lifecycle_actions **ret,
                             struct kf_strbuf *err)
{
    struct kf_lifecycle_actions *a = kf_xcalloc(1, sizeof(*a));
    const struct kf_api_action table[] = {
        { "GET", &kf_kind_controlplanemember, "bundle", KF_API_ROLE_AGENT | KF_API_ROLE_ADMIN,
          bundle_fn, a },
        { "GET", &kf_kind_guestcluster, "kubeconfig", KF_API_ROLE_ADMIN, kubeconfig_fn, a },
        { "GET", &kf_kind_guestcluster, "etcdclient", KF_API_ROLE_ADMIN, etcdclient_fn, a },
    };

    a->reg = reg;
    a->store = store;
    for (size_t i = 0; i < KF_ARRAY_SIZE(table); i++) {
        int r = kf_api_actions_add(actions, &table[i]);

        if (r < 0) {
            /* the ones added keep pointing at a: it stays, owned by *ret */
            *ret = a;
            return kf_err(err, r, "cannot add the action \"%s\": %s", table[i].name, strerror(-r));
        }
    }
    *ret = a;
    return 0;
}

void kf_lifecycle_actions_free(struct kf_lifecycle_actions *a)
{
    free(a);
}
