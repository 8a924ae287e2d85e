/* api-objects.c: the object verbs on /apis/kfleet.io/v1/<plural>[/<name>[/status]].
 *
 * The handlers translate HTTP to registry calls (kfleet/registry.h), which
 * own every rule about objects; errors come back as kfleet codes and are
 * answered as Kubernetes Status objects with the messages Kubernetes uses,
 * so kubectl prints them as it would for any API server.
 *
 * GET and LIST write the stored bytes with kf_obj_write (resourceVersion
 * spliced in); only a Table for kubectl decodes objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/store.h"
#include "api/api-internal.h"

KF_LOG_MODULE(api);

/* Answers a failed registry call with the matching Status. */
static int reply_error(struct api_request *req, int r, const char *name,
                       const struct kf_causes *causes, const struct kf_strbuf *err)
{
    struct kf_strbuf msg = KF_STRBUF_INIT;
    const struct kf_kind *k = req->kind;
    const char *detail = err && err->len ? err->buf : NULL;
    json_t *st;
    int code = abs(r);

    if (!name)
        name = req->name;
    switch (code) {
    case KF_ENOTFOUND:
        kf_api_resource_name(k, &msg);
        kf_strbuf_addf(&msg, " \"%s\" not found", name ? name : "");
        break;
    case KF_EEXISTS:
        kf_api_resource_name(k, &msg);
        kf_strbuf_addf(&msg, " \"%s\" already exists", name ? name : "");
        break;
    case KF_ECONFLICT:
        if (detail) {
            kf_strbuf_addstr(&msg, detail);
            break;
        }
        kf_strbuf_addstr(&msg, "Operation cannot be fulfilled on ");
        kf_api_resource_name(k, &msg);
        kf_strbuf_addf(&msg,
                       " \"%s\": the object has been modified; please apply your changes to the "
                       "latest version and try again",
                       name ? name : "");
        break;
    case KF_EINVALID:
        kf_strbuf_addf(&msg, "%s.%s \"%s\" is invalid: ", k->kind, KF_API_GROUP, name ? name : "");
        if (causes && causes->n)
            kf_causes_format(causes, &msg);
        else
            kf_strbuf_addstr(&msg, detail ? detail : "the object breaks a rule");
        break;
    case KF_ECOMPACTED:
        kf_strbuf_addstr(&msg, detail ? detail
                                      : "the requested resourceVersion is too old (compacted): "
                                        "list again without it");
        break;
    default: {
        const struct kf_error_info *info = kf_error_info(r);

        if (info->http >= 500)
            kf_log_rl_warn("%s %s: %s", req->method, req->raw_uri,
                           detail ? detail : strerror(code));
        if (detail)
            kf_strbuf_addstr(&msg, detail);
        else if (info->http >= 500)
            kf_strbuf_addf(&msg, "internal error: %s", strerror(code));
        else
            kf_strbuf_addstr(&msg, info->reason);
        break;
    }
    }
    st = kf_api_status_new(r, msg.buf, k, name, causes);
    kf_strbuf_release(&msg);
    return kf_api_reply_json(req, (unsigned int)kf_error_info(r)->http, st);
}

/* Object bytes as stored, resourceVersion spliced in. */
static int reply_raw(struct api_request *req, unsigned int code, const struct kf_kv *kv)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    int r;

    kf_strbuf_grow(&body, kv->value_len + 40);
    if (kf_obj_write(&body, kv->value, kv->value_len, kv->mod_rev) < 0) {
        kf_strbuf_release(&body);
        return kf_api_reply_statusf(req, -EIO, "internal error: stored object \"%s\" is damaged",
                                    kv->key);
    }
    r = kf_api_reply(req, code, "application/json", &body);
    kf_strbuf_release(&body);
    return r;
}

static int reply_object(struct api_request *req, unsigned int code, json_t *obj)
{
    if (kf_api_wants_table(req)) {
        enum kf_api_table_include inc;
        json_t *t;

        if (kf_api_table_include(req, &inc) < 0) {
            json_decref(obj);
            return -KF_EBADREQUEST;
        }
        t = kf_api_table_new(req->kind, kf_json_str(obj, "metadata.resourceVersion", NULL), NULL);
        kf_api_table_add_row(t, req->kind, obj, inc);
        json_decref(obj);
        return kf_api_reply_json(req, code, t);
    }
    return kf_api_reply_json(req, code, obj);
}

/* What a dryRun is answered: kubectl sends one for --dry-run=server and
 * for every `kubectl diff`, which has no other way to ask. */
#define API_DRY_RUN_REFUSED                                                             \
    "dryRun is not supported by kfleetd: repeat the request without --dry-run=server; " \
    "instead of kubectl diff, compare with kubectl get -o yaml"

/* Write options every write verb shares: dryRun is refused (nothing would
 * be written, and pretending would mislead), fieldValidation accepted. */
static int check_write_params(struct api_request *req)
{
    const char *dry = kf_api_query_get(&req->query, "dryRun");
    const char *fv = kf_api_query_get(&req->query, "fieldValidation");

    if (dry && *dry) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST, API_DRY_RUN_REFUSED);
        return -KF_EBADREQUEST;
    }
    if (fv && *fv && strcmp(fv, "Strict") != 0 && strcmp(fv, "Warn") != 0 &&
        strcmp(fv, "Ignore") != 0) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST,
                             "fieldValidation must be Strict, Warn or Ignore, not \"%s\"", fv);
        return -KF_EBADREQUEST;
    }
    return 0;
}

/* The media type of the body without parameters, lower-case, into buf. */
static const char *content_type(struct api_request *req, char *buf, size_t size)
{
    const char *ct = kf_api_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t n = 0;

    if (!ct)
        return NULL;
    while (*ct == ' ')
        ct++;
    for (; ct[n] && ct[n] != ';' && ct[n] != ' ' && n + 1 < size; n++)
        buf[n] = (char)((ct[n] >= 'A' && ct[n] <= 'Z') ? ct[n] - 'A' + 'a' : ct[n]);
    buf[n] = '\0';
    return buf;
}

/* The body as a JSON object. Replies 400/415 itself on failure. */
static int parse_body(struct api_request *req, json_t **ret)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char ctbuf[96];
    const char *ct = content_type(req, ctbuf, sizeof(ctbuf));
    json_t *v;
    int r;

    if (ct && strcmp(ct, "application/json") != 0 && strcmp(ct, "*/*") != 0) {
        kf_api_reply_statusf(req, -KF_EMEDIATYPE,
                             "the body is \"%s\"; send the object as application/json", ct);
        return -KF_EMEDIATYPE;
    }
    if (req->body.len == 0) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST,
                             "the request has no body: send the %s object as JSON",
                             req->kind->kind);
        return -KF_EBADREQUEST;
    }
    r = kf_json_parse(req->body.buf, req->body.len, &v, &err);
    if (r < 0) {
        struct kf_strbuf msg = KF_STRBUF_INIT;

        kf_strbuf_addf(&msg, "the request body is not valid JSON: %s", err.buf);
        kf_api_reply_status(req, -KF_EBADREQUEST, msg.buf, NULL);
        kf_strbuf_release(&msg);
        kf_strbuf_release(&err);
        return -KF_EBADREQUEST;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        kf_api_reply_statusf(req, -KF_EBADREQUEST,
                             "the request body must be a JSON object (a %s), not an array or a "
                             "scalar",
                             req->kind->kind);
        return -KF_EBADREQUEST;
    }
    *ret = v;
    return 0;
}

/* The object a create or an update sends: the write options checked, then
 * the body parsed. Replies itself on failure. */
static int read_written_object(struct api_request *req, json_t **ret)
{
    int r = check_write_params(req);

    if (r < 0)
        return r;
    return parse_body(req, ret);
}

/* Replies with the outcome r of a registry write: the error (name: the
 * object's, for the message, or NULL), or the object written (obj, consumed)
 * with status code. */
static void reply_written(struct api_request *req, int r, unsigned int code, const char *name,
                          json_t *obj, const struct kf_causes *causes, const struct kf_strbuf *err)
{
    if (r < 0)
        reply_error(req, r, name, causes, err);
    else
        reply_object(req, code, obj);
}

int kf_api_selectors_from_query(struct api_request *req, struct kf_selector **ret_labels,
                                struct kf_selector **ret_fields)
{
    const char *ls = kf_api_query_get(&req->query, "labelSelector");
    const char *fs = kf_api_query_get(&req->query, "fieldSelector");
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_selector *labels = NULL, *fields = NULL;
    int r;

    if (ls && *ls) {
        r = kf_selector_parse_labels(ls, &labels, &err);
        if (r < 0) {
            kf_api_reply_statusf(req, -KF_EBADREQUEST, "unable to parse labelSelector \"%s\": %s",
                                 ls, err.len ? err.buf : "malformed");
            kf_strbuf_release(&err);
            return -KF_EBADREQUEST;
        }
    }
    if (fs && *fs) {
        r = kf_selector_parse_fields(fs, &fields, &err);
        if (r < 0) {
            kf_api_reply_statusf(req, -KF_EBADREQUEST, "unable to parse fieldSelector \"%s\": %s",
                                 fs, err.len ? err.buf : "malformed");
            kf_strbuf_release(&err);
            kf_selector_free(labels);
            return -KF_EBADREQUEST;
        }
    }
    kf_strbuf_release(&err);
    *ret_labels = labels;
    *ret_fields = fields;
    return 0;
}

/* --- get and list ----------------------------------------------------- */

static int do_get(struct api_request *req)
{
    struct kf_kv kv = { 0 };
    int r;

    if (!kf_name_valid(req->name))
        return reply_error(req, -KF_ENOTFOUND, NULL, NULL, NULL);
    r = kf_registry_get_raw(req->api->reg, req->kind, req->name, &kv);
    if (r < 0)
        return reply_error(req, r, NULL, NULL, NULL);
    if (kf_api_wants_table(req)) {
        json_t *obj;

        if (kf_obj_decode(kv.value, kv.value_len, kv.mod_rev, &obj) < 0) {
            kf_kv_release(&kv);
            return kf_api_reply_statusf(req, -EIO, "internal error: stored object is damaged");
        }
        kf_kv_release(&kv);
        return reply_object(req, MHD_HTTP_OK, obj);
    }
    r = reply_raw(req, MHD_HTTP_OK, &kv);
    kf_kv_release(&kv);
    return r;
}

/* resourceVersion and resourceVersionMatch of a LIST, as Kubernetes reads
 * them: "" or "0" (or NotOlderThan) serve the current state, Exact serves
 * that revision. */
static int list_revision(struct api_request *req, int64_t *ret_rev)
{
    const char *rv = kf_api_query_get(&req->query, "resourceVersion");
    const char *match = kf_api_query_get(&req->query, "resourceVersionMatch");
    const char *cont = kf_api_query_get(&req->query, "continue");
    int64_t n = 0;

    if (rv && *rv && (kf_parse_int64(rv, &n) < 0 || n < 0)) {
        kf_api_reply_statusf(
            req, -KF_EBADREQUEST,
            "resourceVersion \"%s\" is not valid: it must be a non-negative number "
            "from metadata.resourceVersion",
            rv);
        return -KF_EBADREQUEST;
    }
    if (cont && *cont && rv && *rv && strcmp(rv, "0") != 0) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST,
                             "specifying resourceVersion is not allowed when using continue");
        return -KF_EBADREQUEST;
    }
    *ret_rev = 0;
    if (!match || !*match || strcmp(match, "NotOlderThan") == 0) {
        if (match && *match && (!rv || !*rv)) {
            kf_api_reply_statusf(req, -KF_EBADREQUEST,
                                 "resourceVersionMatch needs a resourceVersion");
            return -KF_EBADREQUEST;
        }
        if (n > 0) {
            int64_t cur = kf_store_rev(req->api->store);

            if (n > cur) {
                kf_api_reply_statusf(req, -KF_ETIMEOUT,
                                     "Too large resource version: %lld, current: %lld",
                                     (long long)n, (long long)cur);
                return -KF_ETIMEOUT;
            }
        }
        return 0;
    }
    if (strcmp(match, "Exact") == 0) {
        if (n <= 0) {
            kf_api_reply_statusf(req, -KF_EBADREQUEST,
                                 "resourceVersionMatch=Exact needs a resourceVersion > 0");
            return -KF_EBADREQUEST;
        }
        *ret_rev = n;
        return 0;
    }
    kf_api_reply_statusf(req, -KF_EBADREQUEST,
                         "resourceVersionMatch must be NotOlderThan or Exact, not \"%s\"", match);
    return -KF_EBADREQUEST;
}

static int list_limit(struct api_request *req, size_t *ret)
{
    const char *l = kf_api_query_get(&req->query, "limit");
    int64_t n = 0;

    if (l && *l && (kf_parse_int64(l, &n) < 0 || n < 0)) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST, "limit \"%s\" must be a non-negative integer",
                             l);
        return -KF_EBADREQUEST;
    }
    /* A LIST never renders more than cfg.list_max_page objects, whatever
     * the client's limit (none, 0 or larger): the rest comes with
     * metadata.continue, which kubectl, kfleet and kfleet-agent follow, so
     * one request cannot make a request thread render a whole kind of
     * 500,000 objects into one buffer. */
    *ret = n == 0 || (uint64_t)n > req->api->cfg.list_max_page ? req->api->cfg.list_max_page
                                                               : (size_t)n;
    return 0;
}

static int reply_list_table(struct api_request *req, const struct kf_kv_list *l, const char *rv,
                            const char *cont)
{
    enum kf_api_table_include inc;
    json_t *t;

    if (kf_api_table_include(req, &inc) < 0)
        return -KF_EBADREQUEST;
    t = kf_api_table_new(req->kind, rv, cont);
    for (size_t i = 0; i < l->n; i++) {
        json_t *obj;

        if (kf_obj_decode(l->items[i].value, l->items[i].value_len, l->items[i].mod_rev, &obj) < 0)
            continue;
        kf_api_table_add_row(t, req->kind, obj, inc);
        json_decref(obj);
    }
    return kf_api_reply_json(req, MHD_HTTP_OK, t);
}

static int do_list(struct api_request *req)
{
    struct kf_selector *labels = NULL, *fields = NULL;
    struct kf_list_opts o = { 0 };
    struct kf_kv_list l = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT, body = KF_STRBUF_INIT;
    char *cont = NULL;
    char rv[24];
    size_t total = 0;
    int r;

    r = list_revision(req, &o.rev);
    if (r < 0)
        return r;
    r = list_limit(req, &o.limit);
    if (r < 0)
        return r;
    r = kf_api_selectors_from_query(req, &labels, &fields);
    if (r < 0)
        return r;
    o.labels = labels;
    o.fields = fields;
    o.continue_token = kf_api_query_get(&req->query, "continue");
    if (o.continue_token && !*o.continue_token)
        o.continue_token = NULL;
    r = kf_registry_list_raw(req->api->reg, req->kind, &o, &l, &cont, &err);
    if (r < 0) {
        if (-r == KF_ECOMPACTED && o.continue_token && !err.len)
            kf_strbuf_addstr(&err, "The provided continue parameter is too old to display a "
                                   "consistent list result. You can start a new list without "
                                   "the continue parameter.");
        else if (-r == KF_EBADREQUEST && !err.len)
            kf_strbuf_addstr(&err, "the continue token is not valid: use the metadata.continue "
                                   "of the previous page as it is");
        reply_error(req, r, NULL, NULL, &err);
        goto release_list;
    }
    snprintf(rv, sizeof(rv), "%lld", (long long)l.rev);
    if (kf_api_wants_table(req)) {
        reply_list_table(req, &l, rv, cont);
        goto release_list;
    }
    for (size_t i = 0; i < l.n; i++)
        total += l.items[i].value_len + 32;
    kf_strbuf_grow(&body, total + 256);
    kf_strbuf_addf(&body,
                   "{\"kind\":\"%sList\",\"apiVersion\":\"" KF_API_VERSION
                   "\",\"metadata\":{\"resourceVersion\":\"%s\"",
                   req->kind->kind, rv);
    if (cont) {
        kf_strbuf_addstr(&body, ",\"continue\":");
        kf_strbuf_add_json_str(&body, cont);
    }
    kf_strbuf_addstr(&body, "},\"items\":[");
    for (size_t i = 0; i < l.n; i++) {
        if (i)
            kf_strbuf_addch(&body, ',');
        if (kf_obj_write(&body, l.items[i].value, l.items[i].value_len, l.items[i].mod_rev) < 0) {
            kf_api_reply_statusf(req, -EIO, "internal error: stored object \"%s\" is damaged",
                                 l.items[i].key);
            goto release_list;
        }
    }
    kf_strbuf_addstr(&body, "]}");
    kf_api_reply(req, MHD_HTTP_OK, "application/json", &body);
release_list:
    kf_strbuf_release(&body);
    kf_strbuf_release(&err);
    kf_kv_list_release(&l);
    free(cont);
    kf_selector_free(labels);
    kf_selector_free(fields);
    return 0;
}

/* --- writes ----------------------------------------------------------- */

/* What a host-bound agent (user host:NAME, role agent) may write beyond
 * what its role allows (docs/security.md, "Host-bound agents"): its own
 * Host, of which it reports capacity and address (and, at registration,
 * the role, zone and unit or cluster it was started with; those are
 * immutable); the rest of the spec (unschedulable, taints, reserved) is
 * the operator's, so a taken-over host cannot uncordon itself or drop
 * taints to attract members. And the status of members bound to its own
 * host. api-server.c has already refused other Hosts' names. */
static const char *const agent_host_spec_reported[] = { "capacity", "address" };
static const char *const agent_host_spec_registered[] = { "role", "zone", "unit", "cluster" };

static bool str_in(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static const char *host_bound(const struct api_request *req)
{
    return req->role == API_ROLE_AGENT ? kf_api_user_host(req->user) : NULL;
}

/* A Host a host-bound agent registers: its own name, and no operator
 * fields. */
static int host_bound_create(struct api_request *req, const json_t *obj)
{
    const char *bound = host_bound(req), *name = kf_json_str(obj, "metadata.name", NULL), *key;
    json_t *v;

    if (!bound || req->kind != &kf_kind_host)
        return 0;
    if (!kf_streq(name, bound)) {
        kf_api_reply_statusf(req, -KF_EFORBIDDEN,
                             "user \"%s\" may register host \"%s\" only, not \"%.253s\" (an "
                             "agent token bound to a host)",
                             req->user, bound, name ? name : "");
        return -KF_EFORBIDDEN;
    }
    json_object_foreach(kf_json_path(obj, "spec"), key, v)
    {
        if (str_in(key, agent_host_spec_reported, KF_ARRAY_SIZE(agent_host_spec_reported)) ||
            str_in(key, agent_host_spec_registered, KF_ARRAY_SIZE(agent_host_spec_registered)) ||
            (strcmp(key, "unschedulable") == 0 && json_is_false(v)))
            continue;
        kf_api_reply_statusf(req, -KF_EFORBIDDEN,
                             "user \"%s\" may not set spec.%s of host \"%s\": the operator "
                             "sets it (an agent reports capacity and address)",
                             req->user, key, bound);
        return -KF_EFORBIDDEN;
    }
    return 0;
}

/* A host's agent reports the result of the backups assigned to its host,
 * and may not move one (host, member, endpoint, location, path: kfleetd
 * removes the file at that path when the Backup is deleted). */
static int host_bound_backup(const struct api_request *req, const json_t *old, const json_t *new,
                             struct kf_strbuf *err)
{
    static const char *const fixed[] = {
        "host", "member", "endpoint", "location", "path", "region"
    };
    const char *bound = host_bound(req), *host = kf_json_str(old, "status.host", "");

    if (strcmp(host, bound) != 0)
        return kf_err(err, -KF_EFORBIDDEN,
                      "user \"%s\" may report the backups assigned to host \"%s\" only; "
                      "backup \"%.253s\" is assigned to \"%.253s\"",
                      req->user, bound, kf_obj_name(old), host);
    for (size_t i = 0; i < KF_ARRAY_SIZE(fixed); i++) {
        const json_t *was = json_object_get(kf_json_path(old, "status"), fixed[i]);
        const json_t *now = json_object_get(kf_json_path(new, "status"), fixed[i]);

        if ((was || now) && !json_equal(was, now))
            return kf_err(err, -KF_EFORBIDDEN,
                          "user \"%s\" may not change status.%s of backup \"%.253s\": kfleetd "
                          "assigned it",
                          req->user, fixed[i], kf_obj_name(old));
    }
    return 0;
}

static int host_bound_check(const struct kf_write_check *c, const json_t *old, const json_t *new,
                            struct kf_strbuf *err)
{
    const struct api_request *req = c->ctx;
    const char *bound = host_bound(req), *key;
    json_t *os = kf_json_path(old, "spec"), *ns = kf_json_path(new, "spec"), *v;

    if (req->kind == &kf_kind_controlplanemember) {
        const char *host = kf_json_str(old, "spec.host", "");

        if (strcmp(host, bound) != 0)
            return kf_err(err, -KF_EFORBIDDEN,
                          "user \"%s\" may report the status of members on host \"%s\" only; "
                          "member \"%.253s\" is on \"%.253s\"",
                          req->user, bound, kf_obj_name(old), host);
        return 0;
    }
    if (req->kind == &kf_kind_backup)
        return host_bound_backup(req, old, new, err);
    if (req->kind != &kf_kind_host || req->route == ROUTE_STATUS)
        return 0;
    /* every spec field other than what the agent reports stays as it is */
    json_object_foreach(os, key, v)
    {
        if (!str_in(key, agent_host_spec_reported, KF_ARRAY_SIZE(agent_host_spec_reported)) &&
            !json_equal(v, json_object_get(ns, key)))
            goto refused;
    }
    json_object_foreach(ns, key, v)
    {
        if (!str_in(key, agent_host_spec_reported, KF_ARRAY_SIZE(agent_host_spec_reported)) &&
            !json_object_get(os, key))
            goto refused;
    }
    return 0;
refused:
    return kf_err(err, -KF_EFORBIDDEN,
                  "user \"%s\" may not change spec.%s of host \"%s\": the operator sets it (an "
                  "agent reports capacity and address)",
                  req->user, key, bound);
}

/* Who binds a secret to a destination (docs/security.md, "Secrets"): an
 * AlertReceiver that references a secret (secretRef, secretFile, or a
 * DingTalk urlFile) is admin's. Another writer may not create one, add a
 * reference, or change anything that says where and how the secret is
 * sent; it may still change who is notified (the fields below). */
static const char *const receiver_free_fields[] = {
    "spec.sendResolved",   "spec.webhook.maxAlerts", "spec.dingtalk.atMobiles",
    "spec.dingtalk.atAll", "spec.sms.phones",        "spec.sms.maxChars",
};

static bool receiver_has_secret(const json_t *obj)
{
    static const char *const refs[] = {
        "spec.dingtalk.secretRef", "spec.dingtalk.secretFile", "spec.dingtalk.urlFile",
        "spec.sms.secretRef",      "spec.sms.secretFile",
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(refs); i++)
        if (kf_json_path(obj, refs[i]))
            return true;
    return false;
}

static bool receiver_binds_secret(const struct api_request *req)
{
    return req->user && req->role != API_ROLE_ADMIN && req->kind == &kf_kind_alertreceiver;
}

static int receiver_secret_check(const struct api_request *req, const json_t *old,
                                 const json_t *new, struct kf_strbuf *err)
{
    json_t *a, *b;
    bool same;

    if (!receiver_has_secret(new) && (!old || !receiver_has_secret(old)))
        return 0;
    if (!old)
        return kf_err(err, -KF_EFORBIDDEN,
                      "user \"%s\" (role %s) may not create a receiver that uses a secret "
                      "(secretRef, secretFile, urlFile): that needs role admin",
                      req->user, kf_api_role_name(req->role));
    a = json_deep_copy(kf_json_path(old, "spec"));
    b = json_deep_copy(kf_json_path(new, "spec"));
    for (size_t i = 0; i < KF_ARRAY_SIZE(receiver_free_fields); i++) {
        /* the paths are relative to the object; a and b are its spec */
        const char *sub = receiver_free_fields[i] + strlen("spec.");

        kf_json_del(a, sub);
        kf_json_del(b, sub);
    }
    same = json_equal(a, b);
    json_decref(a);
    json_decref(b);
    if (same)
        return 0;
    return kf_err(err, -KF_EFORBIDDEN,
                  "user \"%s\" (role %s) may change only who is notified by receiver \"%.253s\", "
                  "which uses a secret: where and how it is sent is admin's",
                  req->user, kf_api_role_name(req->role), kf_obj_name(old));
}

/* Component flags (spec.flags, "component.flag": "value") reach the
 * command lines of processes the agents run on meta hosts. A flag that
 * names a file or a program (--cert-dir, --kubeconfig, --audit-policy-file,
 * --admission-control-config-file, --authentication-token-webhook-config-
 * file, --encryption-provider-config, ...) would let its writer make a
 * component read or write any file there, or run code: so a non-admin
 * writer may set only these tunables, which take numbers, durations or
 * switches of built-in code. feature-gates is one of them: a gate turns
 * code of the component itself on or off, it names no file nor program,
 * and the component's own authorization stays. admin may set any flag. */
static const char *const editor_flags[] = {
    "*.v",
    "*.feature-gates",
    "kube-apiserver.max-requests-inflight",
    "kube-apiserver.max-mutating-requests-inflight",
    "kube-apiserver.event-ttl",
    "kube-apiserver.default-watch-cache-size",
    "kube-apiserver.watch-cache-sizes",
    "kube-apiserver.request-timeout",
    "kube-apiserver.min-request-timeout",
    "kube-apiserver.goaway-chance",
    "kube-apiserver.delete-collection-workers",
    "kube-apiserver.enable-priority-and-fairness",
    "kube-controller-manager.kube-api-qps",
    "kube-controller-manager.kube-api-burst",
    "kube-controller-manager.concurrent-deployment-syncs",
    "kube-controller-manager.concurrent-replicaset-syncs",
    "kube-controller-manager.concurrent-endpoint-syncs",
    "kube-controller-manager.concurrent-gc-syncs",
    "kube-controller-manager.concurrent-namespace-syncs",
    "kube-controller-manager.node-monitor-grace-period",
    "kube-controller-manager.node-monitor-period",
    "kube-controller-manager.terminated-pod-gc-threshold",
    "kube-scheduler.kube-api-qps",
    "kube-scheduler.kube-api-burst",
    "etcd.quota-backend-bytes",
    "etcd.snapshot-count",
    "etcd.heartbeat-interval",
    "etcd.election-timeout",
    "etcd.auto-compaction-mode",
    "etcd.auto-compaction-retention",
    "etcd.max-request-bytes",
    "etcd.log-level",
};

static bool editor_flag_allowed(const char *key)
{
    const char *dot = strchr(key, '.');

    for (size_t i = 0; i < KF_ARRAY_SIZE(editor_flags); i++) {
        const char *a = editor_flags[i];

        if (strcmp(a, key) == 0 || (a[0] == '*' && dot && strcmp(a + 1, dot) == 0))
            return true;
    }
    return false;
}

static bool flags_checked(const struct api_request *req)
{
    return req->user && req->role != API_ROLE_ADMIN &&
           (req->kind == &kf_kind_template || req->kind == &kf_kind_guestcluster);
}

/* Every flag new sets or changes (old: the stored object, or NULL) must
 * be on the list; flags kept as they were (set by admin) may stay. */
static int flags_check(const struct api_request *req, const json_t *old, const json_t *new,
                       struct kf_strbuf *err)
{
    const json_t *was = old ? kf_json_path(old, "spec.flags") : NULL;
    const char *key;
    json_t *v;

    json_object_foreach(kf_json_path(new, "spec.flags"), key, v)
    {
        if (json_equal(v, json_object_get(was, key)) || editor_flag_allowed(key))
            continue;
        return kf_err(err, -KF_EFORBIDDEN,
                      "user \"%s\" (role %s) may not set flag \"%.200s\": only admin sets "
                      "component flags other than tunables (max-requests-inflight, event-ttl, "
                      "feature-gates, v, ...; docs/security.md, \"Component flags\"), as a flag "
                      "may name a file or a program on the hosts",
                      req->user, kf_api_role_name(req->role), key);
    }
    return 0;
}

static int writer_check_fn(const struct kf_write_check *c, const json_t *old, const json_t *new,
                           struct kf_strbuf *err)
{
    const struct api_request *req = c->ctx;

    if (receiver_binds_secret(req))
        return receiver_secret_check(req, old, new, err);
    if (flags_checked(req))
        return flags_check(req, old, new, err);
    return host_bound_check(c, old, new, err);
}

/* The check for req's writer: NULL unless a host-bound agent writes, or a
 * non-admin writes an AlertReceiver. */
static const struct kf_write_check *writer_check(const struct api_request *req,
                                                 struct kf_write_check *c)
{
    if (!host_bound(req) && !receiver_binds_secret(req) && !flags_checked(req))
        return NULL;
    c->fn = writer_check_fn;
    c->ctx = (void *)req;
    return c;
}

static int do_create(struct api_request *req)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *obj, *ret = NULL;
    const char *name;
    char *name_copy;
    int r;

    r = read_written_object(req, &obj);
    if (r < 0)
        return r;
    name = kf_json_str(obj, "metadata.name", NULL);
    if (!name)
        name = kf_json_str(obj, "metadata.generateName", NULL);
    if (host_bound_create(req, obj) < 0) {
        json_decref(obj);
        return -KF_EFORBIDDEN;
    }
    if ((receiver_binds_secret(req) && receiver_secret_check(req, NULL, obj, &err) < 0) ||
        (flags_checked(req) && flags_check(req, NULL, obj, &err) < 0)) {
        reply_error(req, -KF_EFORBIDDEN, NULL, NULL, &err);
        kf_strbuf_release(&err);
        json_decref(obj);
        return -KF_EFORBIDDEN;
    }
    name_copy = name ? kf_xstrdup(name) : NULL;
    r = kf_registry_create(req->api->reg, req->kind, obj, &ret, &causes, &err);
    reply_written(req, r, MHD_HTTP_CREATED, name_copy, ret, &causes, &err);
    free(name_copy);
    json_decref(obj);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return 0;
}

static int do_update(struct api_request *req)
{
    struct kf_write_check check;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *obj, *ret = NULL;
    const char *name;
    int r;

    r = read_written_object(req, &obj);
    if (r < 0)
        return r;
    name = kf_json_str(obj, "metadata.name", NULL);
    if (!name) {
        kf_json_set_str(obj, "metadata.name", req->name);
    } else if (strcmp(name, req->name) != 0) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST,
                             "the name in the body (\"%s\") does not match the name in the URL "
                             "(\"%s\")",
                             name, req->name);
        json_decref(obj);
        return -KF_EBADREQUEST;
    }
    if (!kf_name_valid(req->name)) {
        json_decref(obj);
        return reply_error(req, -KF_ENOTFOUND, NULL, NULL, NULL);
    }
    r = kf_registry_update_checked(req->api->reg, req->kind, obj, req->route == ROUTE_STATUS,
                                   writer_check(req, &check), &ret, &causes, &err);
    reply_written(req, r, MHD_HTTP_OK, NULL, ret, &causes, &err);
    json_decref(obj);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return 0;
}

/* Strategic-merge-patch directives ("$patch", "$retainKeys",
 * "$setElementOrder/...", "$deleteFromPrimitiveList/..."): kfleet's schemas
 * declare no merge keys, so a strategic merge patch without them is a merge
 * patch; one with them cannot be honoured. */
static const char *smp_directive(const json_t *v, int depth)
{
    const char *key;
    json_t *child;
    size_t i;

    if (depth > KF_JSON_MAX_DEPTH)
        return NULL;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, child)
        {
            const char *found;

            if (key[0] == '$')
                return key;
            found = smp_directive(child, depth + 1);
            if (found)
                return found;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            const char *found = smp_directive(child, depth + 1);

            if (found)
                return found;
        }
    }
    return NULL;
}

static int do_patch(struct api_request *req)
{
    struct kf_write_check check;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    enum kf_patch_type type;
    char ctbuf[96];
    const char *ct = content_type(req, ctbuf, sizeof(ctbuf));
    json_t *ret = NULL;
    int r;

    r = check_write_params(req);
    if (r < 0)
        return r;
    if (!ct) {
        kf_api_reply_statusf(req, -KF_EMEDIATYPE,
                             "a PATCH needs a Content-Type: application/merge-patch+json or "
                             "application/json-patch+json");
        return -KF_EMEDIATYPE;
    }
    if (strcmp(ct, "application/merge-patch+json") == 0) {
        type = KF_PATCH_MERGE;
    } else if (strcmp(ct, "application/json-patch+json") == 0) {
        type = KF_PATCH_JSON;
    } else if (strcmp(ct, "application/strategic-merge-patch+json") == 0) {
        json_t *p;
        const char *directive;

        if (kf_json_parse(req->body.buf, req->body.len, &p, &err) < 0) {
            struct kf_strbuf msg = KF_STRBUF_INIT;

            kf_strbuf_addf(&msg, "the patch is not valid JSON: %s", err.buf);
            kf_api_reply_status(req, -KF_EBADREQUEST, msg.buf, NULL);
            kf_strbuf_release(&msg);
            kf_strbuf_release(&err);
            return -KF_EBADREQUEST;
        }
        directive = smp_directive(p, 0);
        if (directive) {
            kf_api_reply_statusf(
                req, -KF_EMEDIATYPE,
                "the strategic merge patch uses the directive \"%s\", which kfleet "
                "kinds do not support; send a merge patch "
                "(application/merge-patch+json, kubectl patch --type merge)",
                directive);
            json_decref(p);
            return -KF_EMEDIATYPE;
        }
        json_decref(p);
        type = KF_PATCH_MERGE;
    } else if (strcmp(ct, "application/apply-patch+yaml") == 0) {
        kf_api_reply_statusf(req, -KF_EMEDIATYPE,
                             "server-side apply is not supported by kfleetd: use kubectl apply "
                             "without --server-side, or kfleet apply");
        return -KF_EMEDIATYPE;
    } else {
        kf_api_reply_statusf(req, -KF_EMEDIATYPE,
                             "unsupported patch type \"%s\": use application/merge-patch+json or "
                             "application/json-patch+json",
                             ct);
        return -KF_EMEDIATYPE;
    }
    if (req->body.len == 0) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST, "the patch is empty");
        return -KF_EBADREQUEST;
    }
    if (!kf_name_valid(req->name))
        return reply_error(req, -KF_ENOTFOUND, NULL, NULL, NULL);
    r = kf_registry_patch_checked(req->api->reg, req->kind, req->name, type, req->body.buf,
                                  req->body.len, req->route == ROUTE_STATUS,
                                  writer_check(req, &check), &ret, &causes, &err);
    reply_written(req, r, MHD_HTTP_OK, NULL, ret, &causes, &err);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return 0;
}

/* DeleteOptions from the body (optional): preconditions.resourceVersion and
 * preconditions.uid; dryRun is refused. */
static int delete_options(struct api_request *req, int64_t *ret_rv, char **ret_uid)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *opts, *pre;
    const char *rv, *uid;
    int r;

    *ret_rv = 0;
    *ret_uid = NULL;
    if (req->body.len == 0)
        return 0;
    r = kf_json_parse(req->body.buf, req->body.len, &opts, &err);
    if (r < 0 || !json_is_object(opts)) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST,
                             "the DeleteOptions body is not a JSON object%s%s", err.len ? ": " : "",
                             err.buf);
        kf_strbuf_release(&err);
        if (r == 0)
            json_decref(opts);
        return -KF_EBADREQUEST;
    }
    if (json_is_array(json_object_get(opts, "dryRun")) &&
        json_array_size(json_object_get(opts, "dryRun")) > 0) {
        json_decref(opts);
        kf_api_reply_statusf(req, -KF_EBADREQUEST, API_DRY_RUN_REFUSED);
        return -KF_EBADREQUEST;
    }
    pre = json_object_get(opts, "preconditions");
    rv = json_string_value(json_object_get(pre, "resourceVersion"));
    uid = json_string_value(json_object_get(pre, "uid"));
    if (rv && (kf_parse_int64(rv, ret_rv) < 0 || *ret_rv <= 0)) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST,
                             "preconditions.resourceVersion \"%s\" is not a valid resourceVersion",
                             rv);
        json_decref(opts);
        return -KF_EBADREQUEST;
    }
    if (uid)
        *ret_uid = kf_xstrdup(uid);
    json_decref(opts);
    return 0;
}

static int do_delete(struct api_request *req)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int64_t rv;
    char *uid = NULL;
    json_t *ret = NULL;
    bool deleted = false;
    int r;

    if (check_write_params(req) < 0)
        return -KF_EBADREQUEST;
    r = delete_options(req, &rv, &uid);
    if (r < 0)
        return r;
    if (!kf_name_valid(req->name)) {
        free(uid);
        return reply_error(req, -KF_ENOTFOUND, NULL, NULL, NULL);
    }
    if (uid) {
        /* A UID precondition: read the object and delete exactly that
         * revision of it, so a re-created object is never deleted. */
        json_t *cur;

        r = kf_registry_get(req->api->reg, req->kind, req->name, &cur);
        if (r < 0) {
            free(uid);
            return reply_error(req, r, NULL, NULL, NULL);
        }
        if (!kf_streq(kf_obj_uid(cur), uid)) {
            kf_strbuf_addf(&err,
                           "Precondition failed: UID in precondition: %s, UID in object meta: %s",
                           uid, kf_obj_uid(cur) ? kf_obj_uid(cur) : "");
            json_decref(cur);
            free(uid);
            r = reply_error(req, -KF_ECONFLICT, NULL, NULL, &err);
            kf_strbuf_release(&err);
            return r;
        }
        if (!rv)
            rv = kf_obj_rv(cur);
        json_decref(cur);
        free(uid);
    }
    r = kf_registry_delete(req->api->reg, req->kind, req->name, rv, &ret, &deleted);
    if (r < 0)
        return reply_error(req, r, NULL, NULL, NULL);
    return reply_object(req, deleted ? MHD_HTTP_OK : MHD_HTTP_ACCEPTED, ret);
}

/* Deletes the objects the selectors match, each at the revision listed
 * (an object changed meanwhile is left alone), and returns the list of
 * what was deleted or marked for deletion. Like a LIST, one request reads
 * one page of at most cfg.list_max_page objects (from ?continue= when
 * given); when more matched, metadata.continue is set and the client sends
 * the DELETE again with it, so no request holds a whole kind
 * (docs/security.md, "Exhaustion"). */
static int do_deletecollection(struct api_request *req)
{
    struct kf_selector *labels = NULL, *fields = NULL;
    struct kf_list_opts o = { .limit = req->api->cfg.list_max_page };
    struct kf_kv_list l = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *list, *items;
    char *cont = NULL;
    char rv[24];
    int r;

    if (check_write_params(req) < 0)
        return -KF_EBADREQUEST;
    r = kf_api_selectors_from_query(req, &labels, &fields);
    if (r < 0)
        return r;
    o.labels = labels;
    o.fields = fields;
    o.continue_token = kf_api_query_get(&req->query, "continue");
    r = kf_registry_list_raw(req->api->reg, req->kind, &o, &l, &cont, &err);
    if (r < 0) {
        reply_error(req, r, NULL, NULL, &err);
        goto release_list;
    }
    list = json_object();
    items = json_array();
    for (size_t i = 0; i < l.n; i++) {
        const char *name = strrchr(l.items[i].key, '/');
        json_t *ret = NULL;
        bool deleted;

        if (!name)
            continue;
        r = kf_registry_delete(req->api->reg, req->kind, name + 1, l.items[i].mod_rev, &ret,
                               &deleted);
        if (r == 0)
            json_array_append_new(items, ret);
    }
    snprintf(rv, sizeof(rv), "%lld", (long long)kf_store_rev(req->api->store));
    json_object_set_new(list, "kind", json_sprintf("%sList", req->kind->kind));
    json_object_set_new(list, "apiVersion", json_string(KF_API_VERSION));
    json_object_set_new(list, "metadata", json_pack("{s:s}", "resourceVersion", rv));
    if (cont)
        json_object_set_new(json_object_get(list, "metadata"), "continue", json_string(cont));
    json_object_set_new(list, "items", items);
    kf_api_reply_json(req, MHD_HTTP_OK, list);
release_list:
    kf_strbuf_release(&err);
    kf_kv_list_release(&l);
    free(cont);
    kf_selector_free(labels);
    kf_selector_free(fields);
    return 0;
}

int kf_api_serve_object(struct api_request *req)
{
    switch (req->verb) {
    case API_VERB_GET:
        return do_get(req);
    case API_VERB_LIST:
        return do_list(req);
    case API_VERB_CREATE:
        return do_create(req);
    case API_VERB_UPDATE:
        return do_update(req);
    case API_VERB_PATCH:
        return do_patch(req);
    case API_VERB_DELETE:
        return do_delete(req);
    case API_VERB_DELETECOLLECTION:
        return do_deletecollection(req);
    default:
        return kf_api_reply_statusf(req, -KF_EMETHOD, "%s is not allowed here", req->method);
    }
}
