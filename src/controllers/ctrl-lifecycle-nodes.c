/* ctrl-lifecycle-nodes.c: a guest cluster's simulated nodes (spec.simulatedNodes)
 * for the lifecycle controller (ctrl-lifecycle.h).
 *
 * Simulated nodes are Node objects in the guest cluster named
 * kfleet-sim-<i>, labelled kfleet.io/simulated=true and annotated for the
 * cluster's KWOK member (catalog.h: KF_KWOK_NODE_ANNOTATION), which keeps
 * their leases and status and plays the kubelet of every pod the scheduler
 * binds to them. This file makes the set of such nodes what the spec asks
 * for, through the cluster's endpoint with its admin certificate: one list,
 * then a create for each missing index and a delete for each extra one
 * (at most NODES_PER_PASS changes a call, so one reconcile stays short).
 * KWOK marks a node Ready once it manages it; the counts come back in
 * struct lc_nodes.
 *
 * Nothing here logs; errors carry the guest's own message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/catalog.h"
#include "kfleet/error.h"
#include "kfleet/http.h"
#include "kfleet/json.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-lifecycle.h"

#define NODE_PREFIX      "kfleet-sim-"
#define NODE_LABEL       "kfleet.io/simulated"
#define NODES_PER_PASS   200
#define GUEST_TIMEOUT_MS 5000
#define GUEST_BODY_MAX   (64 * 1024 * 1024) /* a list of the most nodes allowed, with room */

struct guest {
    char *base; /* the endpoint URL */
    char *ca, *cert, *key;
};

/* One request; *ret_status is the HTTP status (0: none came), *ret_body
 * the answer (caller releases). 0, or a negative errno for a transport
 * failure with curl's words in err. */
static int guest_call(const struct guest *g, const char *method, const char *path, const char *body,
                      long *ret_status, struct kf_strbuf *ret_body, struct kf_strbuf *err)
{
    char *url = kf_xasprintf("%s%s", g->base, path);
    const struct kf_http_opts o = {
        .user_agent = "kfleetd/" KF_VERSION,
        .protocols = "https",
        .ca_file = g->ca,
        .cert_file = g->cert,
        .key_file = g->key,
        .timeout_ms = GUEST_TIMEOUT_MS,
        .no_proxy = true,
    };
    struct kf_http_req req = {
        .method = method,
        .url = url,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .resp = ret_body,
    };
    struct kf_http *h = kf_http_new();
    struct kf_http_result res;
    int r;

    ret_body->cap = GUEST_BODY_MAX;
    req.headers = kf_http_header(NULL, "Accept: application/json");
    req.headers = kf_http_header(req.headers, "Content-Type: application/json");
    r = kf_http_request(h, &o, &req, &res);
    *ret_status = r < 0 ? 0 : res.status;
    if (r < 0)
        r = kf_err(err, -EIO, "%s %s: %s", method, path, curl_easy_strerror(res.code));
    curl_slist_free_all(req.headers);
    kf_http_free(h);
    free(url);
    return r;
}

/* The guest's own reason for a refusal: its Status message, else the
 * status code. */
static int refused(const char *what, long status, const struct kf_strbuf *body,
                   struct kf_strbuf *err)
{
    json_t *st = NULL;
    const char *msg = NULL;

    if (kf_json_parse(body->buf ? body->buf : "", body->len, &st, NULL) == 0)
        msg = kf_json_str(st, "message", NULL);
    kf_err(err, -EIO, "%s: HTTP %ld%s%s", what, status, msg ? ": " : "", msg ? msg : "");
    json_decref(st);
    return -EIO;
}

/* The index of a simulated node's name, or -1. */
static long node_index(const char *name)
{
    char *end;
    long i;

    if (!kf_str_has_prefix(name, NODE_PREFIX))
        return -1;
    name += strlen(NODE_PREFIX);
    if (*name < '0' || *name > '9')
        return -1;
    i = strtol(name, &end, 10);
    return *end == '\0' && i <= KF_KWOK_MAX_NODES ? i : -1;
}

static bool node_ready(const json_t *node)
{
    const json_t *conds = kf_json_path(node, "status.conditions"), *c;
    size_t i;

    json_array_foreach(conds, i, c)
    {
        if (kf_streq(kf_json_str(c, "type", NULL), "Ready"))
            return kf_streq(kf_json_str(c, "status", NULL), "True");
    }
    return false;
}

static char *node_body(const char *name, unsigned max_pods)
{
    char pods[16];
    json_t *res, *node;
    char *text;

    snprintf(pods, sizeof(pods), "%u", max_pods);
    res = json_pack("{s:s, s:s, s:s}", "cpu", "32", "memory", "256Gi", "pods", pods);
    node = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s}}, "
                     "s:{s:O, s:O, s:{s:s, s:s, s:s}}}",
                     "apiVersion", "v1", "kind", "Node", "metadata", "name", name, "labels",
                     NODE_LABEL, "true", "kubernetes.io/hostname", name, "kubernetes.io/os",
                     "linux", "kubernetes.io/arch", "amd64", "type", "kwok", "annotations",
                     KF_KWOK_NODE_ANNOTATION, "fake", "node.alpha.kubernetes.io/ttl", "0", "status",
                     "capacity", res, "allocatable", res, "nodeInfo", "architecture", "amd64",
                     "operatingSystem", "linux", "kubeletVersion", "kwok-" KF_KWOK_VERSION);
    text = kf_json_dump(node, NULL);
    json_decref(node);
    json_decref(res);
    return text;
}

int kf_lifecycle_nodes_sync(const char *pki_dir, const char *endpoint_url, int64_t want,
                            unsigned max_pods, struct lc_nodes *ret, struct kf_strbuf *err)
{
    struct guest g = { .base = kf_xstrdup(endpoint_url),
                       .ca = kf_xasprintf("%s/ca.crt", pki_dir),
                       .cert = kf_xasprintf("%s/admin.crt", pki_dir),
                       .key = kf_xasprintf("%s/admin.key", pki_dir) };
    struct kf_strbuf body = KF_STRBUF_INIT;
    struct lc_nodes n = { 0 };
    json_t *list = NULL, *items, *node;
    bool *have = NULL;
    size_t i, changes = 0;
    long status = 0;
    int r;

    if (want < 0 || want > KF_KWOK_MAX_NODES) {
        r = kf_err(err, -EINVAL, "simulated nodes: %lld is out of range 0-%d", (long long)want,
                   KF_KWOK_MAX_NODES);
        goto release_guest;
    }
    r = guest_call(&g, "GET", "/api/v1/nodes?labelSelector=" NODE_LABEL "%3Dtrue", NULL, &status,
                   &body, err);
    if (r < 0)
        goto release_guest;
    if (status != 200) {
        r = refused("listing the simulated nodes", status, &body, err);
        goto release_guest;
    }
    r = kf_json_parse(body.buf, body.len, &list, err);
    if (r < 0)
        goto release_guest;
    have = kf_xcalloc((size_t)want + 1, sizeof(*have));
    items = json_object_get(list, "items");
    json_array_foreach(items, i, node)
    {
        const char *name = kf_json_str(node, "metadata.name", "");
        long idx = node_index(name);

        if (idx >= 0 && idx < want && !have[idx]) {
            have[idx] = true;
            n.registered++;
            n.ready += node_ready(node);
        } else if (changes < NODES_PER_PASS) {
            /* beyond what is wanted (or not a name of ours): goes */
            char *path = kf_xasprintf("/api/v1/nodes/%s", name);

            kf_strbuf_reset(&body);
            r = guest_call(&g, "DELETE", path, NULL, &status, &body, err);
            free(path);
            if (r < 0)
                goto release_guest;
            if (status != 200 && status != 202 && status != 404) {
                r = refused("deleting a simulated node", status, &body, err);
                goto release_guest;
            }
            changes++;
        }
    }
    for (int64_t k = 0; k < want && changes < NODES_PER_PASS; k++) {
        char name[64], *text;

        if (have[k])
            continue;
        snprintf(name, sizeof(name), NODE_PREFIX "%lld", (long long)k);
        text = node_body(name, max_pods);
        kf_strbuf_reset(&body);
        r = guest_call(&g, "POST", "/api/v1/nodes", text, &status, &body, err);
        free(text);
        if (r < 0)
            goto release_guest;
        if (status != 201 && status != 409) {
            r = refused("creating a simulated node", status, &body, err);
            goto release_guest;
        }
        n.registered++;
        changes++;
    }
    n.pending = changes >= NODES_PER_PASS;
    *ret = n;
    r = 0;
release_guest:
    json_decref(list);
    free(have);
    kf_strbuf_release(&body);
    free(g.base);
    free(g.ca);
    free(g.cert);
    free(g.key);
    return r;
}
