/* api-action.c: actions, the endpoints that other parts of kfleetd compute
 * (contract in kfleet/api.h).
 *
 * An action is registered before the server starts (the table is then
 * read without a lock) and is found by the router for two path shapes:
 * an object action ".../<plural>/<name>/<action>" (like a subresource) and
 * a top-level action "/apis/kfleet.io/v1/<action>" (a name that is not a
 * kind). The request then goes through the usual authentication, a role
 * check against the action's roles, the body cap, and is answered with the
 * action's JSON or a Status built from its error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "api/api-internal.h"

struct api_action {
    struct kf_api_action a;
    char *method;
    char *name;
    char *resource; /* "hosts/heartbeat", "plan" */
};

static bool label_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static bool is_plural(const char *name)
{
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    for (size_t i = 0; i < n; i++)
        if (strcmp(kinds[i]->plural, name) == 0)
            return true;
    return false;
}

int kf_api_add_action(struct kf_api *api, const struct kf_api_action *a)
{
    struct api_action *x;
    bool other;

    if (!a->fn || !a->method || (strcmp(a->method, "GET") != 0 && strcmp(a->method, "POST") != 0))
        return -EINVAL;
    if (!label_ok(a->name) || strcmp(a->name, "status") == 0 || (!a->kind && is_plural(a->name)))
        return -EINVAL;
    if (api_action_find(api, a->kind, a->name, a->method, &other))
        return -EEXIST;
    KF_GROW(api->actions, api->alloc_actions, api->n_actions + 1);
    x = &api->actions[api->n_actions++];
    memset(x, 0, sizeof(*x));
    x->a = *a;
    x->method = kf_xstrdup(a->method);
    x->name = kf_xstrdup(a->name);
    x->a.method = x->method;
    x->a.name = x->name;
    x->resource = a->kind ? kf_xasprintf("%s/%s", a->kind->plural, a->name) : kf_xstrdup(a->name);
    return 0;
}

void api_actions_free(struct kf_api *api)
{
    for (size_t i = 0; i < api->n_actions; i++) {
        free(api->actions[i].method);
        free(api->actions[i].name);
        free(api->actions[i].resource);
    }
    free(api->actions);
    api->actions = NULL;
    api->n_actions = api->alloc_actions = 0;
}

const struct api_action *api_action_find(struct kf_api *api, const struct kf_kind *k,
                                         const char *name, const char *method,
                                         bool *ret_other_method)
{
    *ret_other_method = false;
    for (size_t i = 0; i < api->n_actions; i++) {
        const struct api_action *x = &api->actions[i];

        if (x->a.kind != k || strcmp(x->name, name) != 0)
            continue;
        if (method && strcmp(x->method, method) == 0)
            return x;
        if (method && strcmp(method, "HEAD") == 0 && strcmp(x->method, "GET") == 0)
            return x;
        *ret_other_method = true;
    }
    return NULL;
}

const char *api_action_resource(const struct api_action *a)
{
    return a->resource;
}

const char *api_action_method(const struct api_action *a)
{
    return a->method;
}

bool api_action_allows(const struct api_action *a, enum api_role role, struct kf_strbuf *roles)
{
    static const unsigned bits[API_ROLE_N] = {
        [API_ROLE_ADMIN] = KF_API_ROLE_ADMIN,
        [API_ROLE_EDITOR] = KF_API_ROLE_EDITOR,
        [API_ROLE_VIEWER] = KF_API_ROLE_VIEWER,
        [API_ROLE_AGENT] = KF_API_ROLE_AGENT,
    };
    size_t n = 0, count = 0;

    for (int r = 0; r < API_ROLE_N; r++)
        if (a->a.roles & bits[r])
            count++;
    for (int r = API_ROLE_N - 1; roles && r >= 0; r--) {
        if (!(a->a.roles & bits[r]))
            continue;
        n++;
        kf_strbuf_addf(roles, "%s%s",
                       n == 1       ? ""
                       : n == count ? " or "
                                    : ", ",
                       api_role_name((enum api_role)r));
    }
    if (roles && !count)
        kf_strbuf_addstr(roles, "no role");
    return role < API_ROLE_N && (a->a.roles & bits[role]) != 0;
}

static const char *call_query(const struct kf_api_call *call, const char *key)
{
    const struct api_request *req = call->priv;

    return api_query_get(&req->query, key);
}

int api_serve_action(struct api_request *req)
{
    const struct api_action *x = req->action;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_api_call call = {
        .method = x->method,
        .name = req->name,
        .user = req->user,
        .query = call_query,
        .priv = req,
    };
    json_t *body = NULL, *ret = NULL;
    int r;

    if (req->body.len) {
        r = kf_json_parse(req->body.buf, req->body.len, &body, &err);
        if (r < 0) {
            struct kf_strbuf msg = KF_STRBUF_INIT;

            kf_strbuf_addf(&msg, "the request body is not valid JSON: %s", err.buf);
            r = api_reply_status(req, -KF_EBADREQUEST, msg.buf, NULL);
            kf_strbuf_release(&msg);
            kf_strbuf_release(&err);
            return r;
        }
    }
    call.body = body;
    r = x->a.fn(x->a.arg, &call, &ret, &err);
    json_decref(body);
    if (r < 0) {
        if (!err.len)
            kf_strbuf_addf(&err, "%s failed: %s", x->resource, strerror(-r));
        r = api_reply_status(req, r, err.buf, NULL);
    } else {
        r = api_reply_json(req, MHD_HTTP_OK, ret ? ret : json_object());
    }
    kf_strbuf_release(&err);
    return r;
}
