/* api-discovery.c: what kubectl reads before it touches an object:
 * /api and /api/v1 (the core group, empty here), /apis and /apis/kfleet.io
 * (APIGroupList, APIGroup), /apis/kfleet.io/v1 (APIResourceList with verbs,
 * short names and categories), /version, and the OpenAPI documents.
 *
 * kubectl (1.30 and later) asks /api and /apis for aggregated discovery
 * first (apidiscovery.k8s.io/v2 APIGroupDiscoveryList: every group, version
 * and resource in one answer), and gets it: two requests instead of four.
 * A client that asks for plain application/json (kubectl 1.20) gets the
 * legacy documents, which say the same. OpenAPI v3
 * is what kubectl uses to decide how to patch on `apply` and whether the
 * server validates fields (fieldValidation): each PATCH operation lists
 * merge-patch and json-patch bodies only, so kubectl sends merge patches;
 * and each lists the fieldValidation parameter, so kubectl leaves
 * validation to the server instead of downloading OpenAPI v2 as protobuf.
 * /openapi/v2 is served as JSON, and as protocol buffers (api-openapi-pb.c)
 * for kubectl up to 1.26, which validates `apply` and runs `explain` on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "api/api-internal.h"

#define SCHEMA_PREFIX "io.kfleet.v1."

static json_t *gvk(const struct kf_kind *k)
{
    return json_pack("{s:s, s:s, s:s}", "group", KF_API_GROUP, "version", KF_API_VERSION_NAME,
                     "kind", k->kind);
}

static json_t *group_version(void)
{
    return json_pack("{s:s, s:s}", "groupVersion", KF_API_VERSION, "version", KF_API_VERSION_NAME);
}

static json_t *api_group(void)
{
    json_t *g = json_object();

    json_object_set_new(g, "name", json_string(KF_API_GROUP));
    json_object_set_new(g, "versions", json_pack("[o]", group_version()));
    json_object_set_new(g, "preferredVersion", group_version());
    return g;
}

static json_t *string_array(const char *const *items)
{
    json_t *a = json_array();

    for (size_t i = 0; items && items[i]; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

static const char *const verbs[] = { "create", "delete", "deletecollection",
                                     "get",    "list",   "patch",
                                     "update", "watch",  NULL };
static const char *const system_verbs[] = { "delete", "deletecollection", "get", "list", "watch",
                                            NULL };
static const char *const status_verbs[] = { "get", "patch", "update", NULL };
static const char *const categories[] = { "kfleet", NULL };

json_t *kf_api_discovery_resource_list(void)
{
    json_t *list = json_object(), *resources = json_array();
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    json_object_set_new(list, "kind", json_string("APIResourceList"));
    json_object_set_new(list, "apiVersion", json_string("v1"));
    json_object_set_new(list, "groupVersion", json_string(KF_API_VERSION));
    for (size_t i = 0; i < n; i++) {
        const struct kf_kind *k = kinds[i];
        json_t *r = json_object();

        json_object_set_new(r, "name", json_string(k->plural));
        json_object_set_new(r, "singularName", json_string(k->singular));
        json_object_set_new(r, "namespaced", json_false());
        json_object_set_new(r, "kind", json_string(k->kind));
        json_object_set_new(r, "verbs", string_array(k->system ? system_verbs : verbs));
        if (k->short_names && k->short_names[0])
            json_object_set_new(r, "shortNames", string_array(k->short_names));
        json_object_set_new(r, "categories", string_array(categories));
        json_array_append_new(resources, r);
        if (k->has_status) {
            char *name = kf_xasprintf("%s/status", k->plural);

            r = json_object();
            json_object_set_new(r, "name", json_string(name));
            json_object_set_new(r, "singularName", json_string(""));
            json_object_set_new(r, "namespaced", json_false());
            json_object_set_new(r, "kind", json_string(k->kind));
            json_object_set_new(r, "verbs", string_array(status_verbs));
            json_array_append_new(resources, r);
            free(name);
        }
    }
    json_object_set_new(list, "resources", resources);
    return list;
}

/* --- aggregated discovery (apidiscovery.k8s.io/v2) --------------------------- */

/* One group of an APIGroupDiscoveryList: name ("" for the core group) and
 * its one version v1 with resources (taken). */
static json_t *discovery_group(const char *name, json_t *resources)
{
    json_t *g = json_object(), *meta = json_object();

    if (*name)
        json_object_set_new(meta, "name", json_string(name));
    json_object_set_new(meta, "creationTimestamp", json_null());
    json_object_set_new(g, "metadata", meta);
    json_object_set_new(g, "versions",
                        json_pack("[{s:s, s:o, s:s}]", "version", "v1", "resources", resources,
                                  "freshness", "Current"));
    return g;
}

/* The kfleet.io/v1 resources as APIResourceDiscovery entries: the same
 * facts as kf_api_discovery_resource_list, with the status subresource nested. */
static json_t *discovery_resources(void)
{
    json_t *resources = json_array();
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    for (size_t i = 0; i < n; i++) {
        const struct kf_kind *k = kinds[i];
        json_t *r = json_object();

        json_object_set_new(r, "resource", json_string(k->plural));
        json_object_set_new(r, "responseKind", gvk(k));
        json_object_set_new(r, "scope", json_string("Cluster"));
        json_object_set_new(r, "singularResource", json_string(k->singular));
        json_object_set_new(r, "verbs", string_array(k->system ? system_verbs : verbs));
        if (k->short_names && k->short_names[0])
            json_object_set_new(r, "shortNames", string_array(k->short_names));
        json_object_set_new(r, "categories", string_array(categories));
        if (k->has_status)
            json_object_set_new(r, "subresources",
                                json_pack("[{s:s, s:o, s:o}]", "subresource", "status",
                                          "responseKind", gvk(k), "verbs",
                                          string_array(status_verbs)));
        json_array_append_new(resources, r);
    }
    return resources;
}

json_t *kf_api_discovery_aggregated(bool core)
{
    json_t *list = json_object();

    json_object_set_new(list, "kind", json_string("APIGroupDiscoveryList"));
    json_object_set_new(list, "apiVersion", json_string("apidiscovery.k8s.io/v2"));
    json_object_set_new(list, "metadata", json_object());
    json_object_set_new(
        list, "items",
        json_pack("[o]", core ? discovery_group("", json_array())
                              : discovery_group(KF_API_GROUP, discovery_resources())));
    return list;
}

bool kf_api_wants_aggregated_discovery(struct api_request *req)
{
    const char *accept = kf_api_header(req, MHD_HTTP_HEADER_ACCEPT);
    struct api_media_range m;

    req->vary_accept = true;
    /* The first range we can serve decides, as clients list them by
     * preference: aggregated discovery v2 (any profile: kfleetd has no
     * peers to leave out), or plain JSON for the legacy documents. */
    for (size_t n = 0; accept && n < API_ACCEPT_MAX_RANGES && kf_api_accept_next(&accept, &m);
         n++) {
        if (m.refused)
            continue;
        if (strcmp(m.type, "application/json") == 0 &&
            strcmp(m.group, "apidiscovery.k8s.io") == 0 && strcmp(m.version, "v2") == 0 &&
            strcmp(m.as, "APIGroupDiscoveryList") == 0)
            return true;
        if (kf_api_media_range_is_json(&m))
            return false;
    }
    return false;
}

static int reply_aggregated(struct api_request *req, bool core)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    json_t *v = kf_api_discovery_aggregated(core);
    int r;

    kf_json_dump_sb(v, &body);
    json_decref(v);
    r = kf_api_reply(req, MHD_HTTP_OK, API_AGGREGATED_DISCOVERY_TYPE, &body);
    kf_strbuf_release(&body);
    return r;
}

/* --- OpenAPI ---------------------------------------------------------------- */

static json_t *param(const char *name, const char *in, const char *type, const char *desc)
{
    json_t *p = json_object();

    json_object_set_new(p, "name", json_string(name));
    json_object_set_new(p, "in", json_string(in));
    json_object_set_new(p, "description", json_string(desc));
    json_object_set_new(p, "schema", json_pack("{s:s}", "type", type));
    if (strcmp(in, "path") == 0)
        json_object_set_new(p, "required", json_true());
    else
        json_object_set_new(p, "uniqueItems", json_true());
    return p;
}

static json_t *write_params(void)
{
    return json_pack(
        "[o,o,o]",
        param("fieldValidation", "query", "string",
              "Unknown or duplicate fields are always rejected (Strict); Warn and Ignore are "
              "accepted and treated as Strict."),
        param("fieldManager", "query", "string", "Accepted and ignored."),
        param("dryRun", "query", "string", "Not supported: the request is refused."));
}

static json_t *list_params(void)
{
    return json_pack(
        "[o,o,o,o,o,o,o,o,o]",
        param("labelSelector", "query", "string", "Only objects whose labels match."),
        param("fieldSelector", "query", "string", "Only objects whose fields match."),
        param("limit", "query", "integer", "At most this many objects; see continue."),
        param("continue", "query", "string", "The token of the previous page."),
        param("resourceVersion", "query", "string", "List or watch from this version."),
        param("resourceVersionMatch", "query", "string", "NotOlderThan or Exact."),
        param("watch", "query", "boolean", "Stream ADDED, MODIFIED and DELETED events."),
        param("allowWatchBookmarks", "query", "boolean", "Send BOOKMARK events."),
        param("timeoutSeconds", "query", "integer", "End the watch after this long."));
}

static json_t *ref_content(const char *schema_name, bool v3)
{
    char *ref = kf_xasprintf("#/%s/%s", v3 ? "components/schemas" : "definitions", schema_name);
    json_t *schema = json_pack("{s:s}", "$ref", ref);

    free(ref);
    return schema;
}

static json_t *operation(const struct kf_kind *k, const char *action, const char *id_verb,
                         const char *suffix, const char *body_schema, bool patch, bool v3)
{
    json_t *op = json_object(), *params = json_array(), *responses = json_object();
    char *id = kf_xasprintf("%s%s%s", id_verb, k->kind, suffix);
    char *schema_name = kf_xasprintf(SCHEMA_PREFIX "%s", k->kind);
    const char *resp_schema = strcmp(action, "list") == 0 ? NULL : schema_name;
    char *list_name = kf_xasprintf(SCHEMA_PREFIX "%sList", k->kind);
    json_t *resp = json_pack("{s:s}", "description", "OK");

    json_object_set_new(op, "operationId", json_string(id));
    json_object_set_new(op, "tags", json_pack("[s]", "kfleetIo_v1"));
    {
        json_t *extra = NULL;

        if (strcmp(action, "list") == 0)
            extra = list_params();
        else if (body_schema)
            extra = write_params();
        if (extra) {
            json_array_extend(params, extra);
            json_decref(extra);
        }
    }
    if (body_schema) {
        if (v3) {
            json_t *content = json_object();

            if (patch) {
                json_object_set_new(content, "application/merge-patch+json",
                                    json_pack("{s:{s:s}}", "schema", "type", "object"));
                json_object_set_new(content, "application/json-patch+json",
                                    json_pack("{s:{s:s}}", "schema", "type", "array"));
            } else {
                json_object_set_new(content, "application/json",
                                    json_pack("{s:o}", "schema", ref_content(body_schema, v3)));
            }
            json_object_set_new(op, "requestBody",
                                json_pack("{s:o, s:b}", "content", content, "required", 1));
        } else {
            json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:o}", "name", "body", "in",
                                                    "body", "required", 1, "schema",
                                                    patch ? json_pack("{s:s}", "type", "object")
                                                          : ref_content(body_schema, v3)));
            if (patch)
                json_object_set_new(op, "consumes",
                                    json_pack("[s,s]", "application/merge-patch+json",
                                              "application/json-patch+json"));
        }
    }
    if (v3)
        json_object_set_new(resp, "content",
                            json_pack("{s:{s:o}}", "application/json", "schema",
                                      ref_content(resp_schema ? resp_schema : list_name, v3)));
    else
        json_object_set_new(resp, "schema", ref_content(resp_schema ? resp_schema : list_name, v3));
    json_object_set_new(responses, "200", resp);
    if (strcmp(action, "post") == 0)
        json_object_set_new(responses, "201", json_deep_copy(resp));
    json_object_set_new(op, "responses", responses);
    json_object_set_new(op, "parameters", params);
    json_object_set_new(op, "x-kubernetes-action", json_string(action));
    json_object_set_new(op, "x-kubernetes-group-version-kind", gvk(k));
    free(id);
    free(schema_name);
    free(list_name);
    return op;
}

static void add_paths(json_t *paths, const struct kf_kind *k, bool v3)
{
    char *base = kf_xasprintf("/apis/" KF_API_VERSION "/%s", k->plural);
    char *obj = kf_xasprintf("%s/{name}", base);
    char *status = kf_xasprintf("%s/{name}/status", base);
    char *schema = kf_xasprintf(SCHEMA_PREFIX "%s", k->kind);
    json_t *p;

    p = json_object();
    json_object_set_new(p, "get", operation(k, "list", "list", "", NULL, false, v3));
    if (!k->system)
        json_object_set_new(p, "post", operation(k, "post", "create", "", schema, false, v3));
    json_object_set_new(p, "delete",
                        operation(k, "deletecollection", "deletecollection", "", NULL, false, v3));
    json_object_set_new(paths, base, p);

    p = json_object();
    json_object_set_new(p, "get", operation(k, "get", "read", "", NULL, false, v3));
    if (!k->system) {
        json_object_set_new(p, "put", operation(k, "put", "replace", "", schema, false, v3));
        json_object_set_new(p, "patch", operation(k, "patch", "patch", "", schema, true, v3));
    }
    json_object_set_new(p, "delete", operation(k, "delete", "delete", "", NULL, false, v3));
    json_object_set_new(p, "parameters",
                        json_pack("[o]", param("name", "path", "string", "The object's name.")));
    json_object_set_new(paths, obj, p);

    if (k->has_status) {
        p = json_object();
        json_object_set_new(p, "get", operation(k, "get", "read", "Status", NULL, false, v3));
        json_object_set_new(p, "put", operation(k, "put", "replace", "Status", schema, false, v3));
        json_object_set_new(p, "patch", operation(k, "patch", "patch", "Status", schema, true, v3));
        json_object_set_new(
            p, "parameters",
            json_pack("[o]", param("name", "path", "string", "The object's name.")));
        json_object_set_new(paths, status, p);
    }
    free(base);
    free(obj);
    free(status);
    free(schema);
}

/* The kind's schema, with the extension kubectl uses to find it. */
static json_t *kind_schema(const struct kf_kind *k)
{
    json_t *s = kf_kind_openapi_schema(k);

    if (!json_is_object(s)) {
        json_decref(s);
        s = json_pack("{s:s}", "type", "object");
    }
    json_object_set_new(s, "x-kubernetes-group-version-kind", json_pack("[o]", gvk(k)));
    if (k->description && !json_object_get(s, "description"))
        json_object_set_new(s, "description", json_string(k->description));
    return s;
}

static json_t *list_schema(const struct kf_kind *k, bool v3)
{
    char *item = kf_xasprintf(SCHEMA_PREFIX "%s", k->kind);
    char *desc = kf_xasprintf("A list of %s objects.", k->kind);
    json_t *s = json_object(), *props = json_object();
    json_t *list_gvk = gvk(k);
    char *list_kind = kf_xasprintf("%sList", k->kind);

    json_object_set_new(list_gvk, "kind", json_string(list_kind));
    json_object_set_new(s, "description", json_string(desc));
    json_object_set_new(s, "type", json_string("object"));
    json_object_set_new(props, "apiVersion", json_pack("{s:s}", "type", "string"));
    json_object_set_new(props, "kind", json_pack("{s:s}", "type", "string"));
    json_object_set_new(props, "metadata", json_pack("{s:s}", "type", "object"));
    json_object_set_new(props, "items",
                        json_pack("{s:s, s:o}", "type", "array", "items", ref_content(item, v3)));
    json_object_set_new(s, "properties", props);
    json_object_set_new(s, "required", json_pack("[s]", "items"));
    json_object_set_new(s, "x-kubernetes-group-version-kind", json_pack("[o]", list_gvk));
    free(item);
    free(desc);
    free(list_kind);
    return s;
}

json_t *kf_api_openapi_doc(bool v3)
{
    json_t *doc = json_object(), *paths = json_object(), *schemas = json_object();
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    if (v3)
        json_object_set_new(doc, "openapi", json_string("3.0.0"));
    else
        json_object_set_new(doc, "swagger", json_string("2.0"));
    json_object_set_new(doc, "info",
                        json_pack("{s:s, s:s}", "title", "kfleet", "version", "v" KF_VERSION));
    for (size_t i = 0; i < n; i++) {
        char *name = kf_xasprintf(SCHEMA_PREFIX "%s", kinds[i]->kind);
        char *list = kf_xasprintf(SCHEMA_PREFIX "%sList", kinds[i]->kind);

        add_paths(paths, kinds[i], v3);
        json_object_set_new(schemas, name, kind_schema(kinds[i]));
        json_object_set_new(schemas, list, list_schema(kinds[i], v3));
        free(name);
        free(list);
    }
    json_object_set_new(doc, "paths", paths);
    if (v3)
        json_object_set_new(doc, "components", json_pack("{s:o}", "schemas", schemas));
    else
        json_object_set_new(doc, "definitions", schemas);
    return doc;
}

static void ensure_docs(struct kf_api *api)
{
    pthread_mutex_lock(&api->docs_lock);
    if (!api->openapi_v3) {
        uint64_t h;
        json_t *doc = kf_api_openapi_doc(true);

        api->openapi_v3 = kf_json_dump(doc, &api->openapi_v3_len);
        json_decref(doc);
        h = kf_fnv1a(KF_FNV1A_BASIS_V0, api->openapi_v3, api->openapi_v3_len);
        snprintf(api->openapi_v3_hash, sizeof(api->openapi_v3_hash), "%016llX",
                 (unsigned long long)h);
        doc = kf_api_openapi_doc(false);
        api->openapi_v2 = kf_json_dump(doc, &api->openapi_v2_len);
        api->openapi_v2_pb = kf_api_openapi_v2_protobuf(doc, &api->openapi_v2_pb_len);
        json_decref(doc);
    }
    pthread_mutex_unlock(&api->docs_lock);
}

void kf_api_discovery_free(struct kf_api *api)
{
    free(api->openapi_v3);
    free(api->openapi_v2);
    free(api->openapi_v2_pb);
    api->openapi_v3 = api->openapi_v2 = api->openapi_v2_pb = NULL;
}

static int reply_bytes(struct api_request *req, const char *type, const char *bytes, size_t len)
{
    struct kf_strbuf body = KF_STRBUF_INIT;

    kf_strbuf_add(&body, bytes, len);
    return kf_api_reply(req, MHD_HTTP_OK, type, &body);
}

/* The media types of OpenAPI v2 as protocol buffers: the first is what
 * kubectl up to 1.26 asks for, the second what later clients ask for and
 * what the answer says either way (Go's mime parser refuses the '@', as
 * Kubernetes' OpenAPI handler knows). */
static const char *const openapi_v2_pb_types[] = {
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
};

/* /openapi/v2 in the form the Accept header prefers: the protocol buffer
 * media type asked for (*ret_type), JSON (NULL), or none (-1). Absent
 * Accept: JSON. */
static int openapi_v2_format(struct api_request *req, const char **ret_type)
{
    const char *accept = kf_api_header(req, MHD_HTTP_HEADER_ACCEPT);
    struct api_media_range m;

    req->vary_accept = true;
    *ret_type = NULL;
    if (!accept || !*accept)
        return 0;
    for (size_t n = 0; n < API_ACCEPT_MAX_RANGES && kf_api_accept_next(&accept, &m); n++) {
        if (m.refused)
            continue;
        for (size_t i = 0; i < KF_ARRAY_SIZE(openapi_v2_pb_types); i++)
            if (strcmp(m.type, openapi_v2_pb_types[i]) == 0) {
                *ret_type = openapi_v2_pb_types[i];
                return 0;
            }
        if (kf_api_media_range_is_json(&m))
            return 0;
    }
    return -1;
}

int kf_api_serve_discovery(struct api_request *req)
{
    struct kf_api *api = req->api;
    json_t *v;

    switch (req->route) {
    case ROUTE_API:
        if (kf_api_wants_aggregated_discovery(req))
            return reply_aggregated(req, true);
        v = json_object();
        json_object_set_new(v, "kind", json_string("APIVersions"));
        json_object_set_new(v, "versions", json_pack("[s]", "v1"));
        json_object_set_new(
            v, "serverAddressByClientCIDRs",
            json_pack("[{s:s, s:s}]", "clientCIDR", "0.0.0.0/0", "serverAddress", api->listen));
        return kf_api_reply_json(req, MHD_HTTP_OK, v);
    case ROUTE_API_V1:
        return kf_api_reply_json(req, MHD_HTTP_OK,
                                 json_pack("{s:s, s:s, s:[]}", "kind", "APIResourceList",
                                           "groupVersion", "v1", "resources"));
    case ROUTE_APIS:
        if (kf_api_wants_aggregated_discovery(req))
            return reply_aggregated(req, false);
        v = json_object();
        json_object_set_new(v, "kind", json_string("APIGroupList"));
        json_object_set_new(v, "apiVersion", json_string("v1"));
        json_object_set_new(v, "groups", json_pack("[o]", api_group()));
        return kf_api_reply_json(req, MHD_HTTP_OK, v);
    case ROUTE_APIS_GROUP:
        v = api_group();
        json_object_set_new(v, "kind", json_string("APIGroup"));
        json_object_set_new(v, "apiVersion", json_string("v1"));
        return kf_api_reply_json(req, MHD_HTTP_OK, v);
    case ROUTE_APIS_GV:
        return kf_api_reply_json(req, MHD_HTTP_OK, kf_api_discovery_resource_list());
    case ROUTE_VERSION:
        v = json_object();
        json_object_set_new(v, "major", json_string("0"));
        json_object_set_new(v, "minor", json_string("1"));
        json_object_set_new(v, "gitVersion", json_string("v" KF_VERSION));
        json_object_set_new(v, "gitCommit", json_string(""));
        json_object_set_new(v, "gitTreeState", json_string(""));
        json_object_set_new(v, "buildDate", json_string(""));
        json_object_set_new(v, "goVersion", json_string(""));
        json_object_set_new(v, "compiler", json_string("gcc"));
        json_object_set_new(v, "platform", json_string("linux/amd64"));
        json_object_set_new(v, "kfleetVersion", json_string(KF_VERSION));
        return kf_api_reply_json(req, MHD_HTTP_OK, v);
    case ROUTE_OPENAPI_V3: {
        char *url;

        ensure_docs(api);
        url = kf_xasprintf("/openapi/v3/apis/" KF_API_VERSION "?hash=%s", api->openapi_v3_hash);
        v = json_pack("{s:{s:{s:s}}}", "paths", "apis/" KF_API_VERSION, "serverRelativeURL", url);
        free(url);
        return kf_api_reply_json(req, MHD_HTTP_OK, v);
    }
    case ROUTE_OPENAPI_V3_GV:
        ensure_docs(api);
        return reply_bytes(req, "application/json", api->openapi_v3, api->openapi_v3_len);
    case ROUTE_OPENAPI_V2: {
        const char *type;

        if (openapi_v2_format(req, &type) < 0)
            return kf_api_reply_status_http(req, MHD_HTTP_NOT_ACCEPTABLE, "NotAcceptable",
                                            "/openapi/v2 is served as application/json and as "
                                            "application/com.github.proto-openapi.spec.v2@v1.0"
                                            "+protobuf only");
        ensure_docs(api);
        if (type)
            return reply_bytes(req, openapi_v2_pb_types[1], api->openapi_v2_pb,
                               api->openapi_v2_pb_len);
        return reply_bytes(req, "application/json", api->openapi_v2, api->openapi_v2_len);
    }
    default:
        return kf_api_reply_statusf(req, -KF_ENOTFOUND, "the server could not find \"%s\"",
                                    req->path);
    }
}
