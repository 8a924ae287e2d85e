/* api-action.c: actions, the endpoints that other parts of kfleetd compute
 * (contract in kfleet/api.h and kfleet/api-action.h, the interface the
 * controllers see).
 *
 * An action may be added (and bound to a function) at any time, and
 * unbound again: the placement controller binds explain and plan when its
 * leader term starts and unbinds them when it ends, so an unbound action
 * answers 503 on a replica that is not leading. The router finds actions
 * for two path shapes:
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
#include <time.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "api/api-internal.h"

struct api_action {
    struct kf_api_action a; /* a.fn and a.arg: the binding, under actions_lock */
    char *method;
    char *name;
    char *resource;  /* "hosts/heartbeat", "plan" */
    size_t inflight; /* atomic: calls of the bound fn in progress */
};

static bool is_plural(const char *name)
{
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    for (size_t i = 0; i < n; i++)
        if (strcmp(kinds[i]->plural, name) == 0)
            return true;
    return false;
}

/* Under actions_lock. */
static struct api_action *lookup(struct kf_api *api, const struct kf_kind *k, const char *name,
                                 const char *method)
{
    for (size_t i = 0; i < api->n_actions; i++) {
        struct api_action *x = api->actions[i];

        if (x->a.kind == k && strcmp(x->name, name) == 0 && strcmp(x->method, method) == 0)
            return x;
    }
    return NULL;
}

int kf_api_add_action(struct kf_api *api, const struct kf_api_action *a)
{
    struct api_action *x;
    int r = 0;

    if (!a->method || (strcmp(a->method, "GET") != 0 && strcmp(a->method, "POST") != 0))
        return -EINVAL;
    if (!a->name || !kf_dns_label_valid(a->name, strlen(a->name)) ||
        strcmp(a->name, "status") == 0 || (!a->kind && is_plural(a->name)))
        return -EINVAL;
    pthread_rwlock_wrlock(&api->actions_lock);
    x = lookup(api, a->kind, a->name, a->method);
    if (x && x->a.fn && a->fn) {
        r = -EEXIST;
    } else if (x) {
        if (a->fn) {
            x->a.fn = a->fn;
            x->a.arg = a->arg;
            x->a.roles = a->roles;
        }
    } else {
        x = kf_xcalloc(1, sizeof(*x));
        x->a = *a;
        x->method = kf_xstrdup(a->method);
        x->name = kf_xstrdup(a->name);
        x->a.method = x->method;
        x->a.name = x->name;
        x->resource =
            a->kind ? kf_xasprintf("%s/%s", a->kind->plural, a->name) : kf_xstrdup(a->name);
        KF_GROW(api->actions, api->alloc_actions, api->n_actions + 1);
        api->actions[api->n_actions++] = x;
    }
    pthread_rwlock_unlock(&api->actions_lock);
    return r;
}

int kf_api_remove_action(struct kf_api *api, const char *method, const struct kf_kind *kind,
                         const char *name)
{
    struct api_action *x;

    pthread_rwlock_wrlock(&api->actions_lock);
    x = lookup(api, kind, name, method);
    if (x) {
        x->a.fn = NULL;
        x->a.arg = NULL;
    }
    pthread_rwlock_unlock(&api->actions_lock);
    if (!x)
        return -ENOENT;
    /* No call starts any more (a caller takes inflight under the lock). */
    while (__atomic_load_n(&x->inflight, __ATOMIC_ACQUIRE) > 0) {
        struct timespec ts = { 0, 1000000L };

        nanosleep(&ts, NULL);
    }
    return 0;
}

static int actions_add(void *api, const struct kf_api_action *a)
{
    return kf_api_add_action(api, a);
}

static int actions_remove(void *api, const char *method, const struct kf_kind *kind,
                          const char *name)
{
    return kf_api_remove_action(api, method, kind, name);
}

const struct kf_api_actions *kf_api_actions(struct kf_api *api)
{
    /* The same values on every call, so concurrent callers agree. */
    api->actions_if = (struct kf_api_actions){ api, actions_add, actions_remove };
    return &api->actions_if;
}

void kf_api_actions_free(struct kf_api *api)
{
    for (size_t i = 0; i < api->n_actions; i++) {
        free(api->actions[i]->method);
        free(api->actions[i]->name);
        free(api->actions[i]->resource);
        free(api->actions[i]);
    }
    free(api->actions);
    api->actions = NULL;
    api->n_actions = api->alloc_actions = 0;
}

const struct api_action *kf_api_action_find(struct kf_api *api, const struct kf_kind *k,
                                            const char *name, const char *method,
                                            bool *ret_other_method)
{
    const struct api_action *found = NULL;

    *ret_other_method = false;
    pthread_rwlock_rdlock(&api->actions_lock);
    for (size_t i = 0; i < api->n_actions && !found; i++) {
        const struct api_action *x = api->actions[i];

        if (x->a.kind != k || strcmp(x->name, name) != 0)
            continue;
        if (method && (strcmp(x->method, method) == 0 ||
                       (strcmp(method, "HEAD") == 0 && strcmp(x->method, "GET") == 0)))
            found = x;
        else
            *ret_other_method = true;
    }
    pthread_rwlock_unlock(&api->actions_lock);
    if (found)
        *ret_other_method = false;
    return found;
}

const char *kf_api_action_resource(const struct api_action *a)
{
    return a->resource;
}

const char *kf_api_action_method(const struct api_action *a)
{
    return a->method;
}

bool kf_api_action_allows(const struct api_action *a, enum api_role role, struct kf_strbuf *roles)
{
    static const unsigned bits[API_ROLE_N] = {
        [API_ROLE_ADMIN] = KF_API_ROLE_ADMIN,
        [API_ROLE_EDITOR] = KF_API_ROLE_EDITOR,
        [API_ROLE_VIEWER] = KF_API_ROLE_VIEWER,
        [API_ROLE_AGENT] = KF_API_ROLE_AGENT,
    };
    unsigned allowed = a->a.roles; /* roles never change while bound; a torn read is harmless */
    size_t n = 0, count = 0;

    for (int r = 0; r < API_ROLE_N; r++)
        if (allowed & bits[r])
            count++;
    for (int r = API_ROLE_N - 1; roles && r >= 0; r--) {
        if (!(allowed & bits[r]))
            continue;
        n++;
        kf_strbuf_addf(roles, "%s%s",
                       n == 1       ? ""
                       : n == count ? " or "
                                    : ", ",
                       kf_api_role_name((enum api_role)r));
    }
    if (roles && !count)
        kf_strbuf_addstr(roles, "no role");
    return role < API_ROLE_N && (allowed & bits[role]) != 0;
}

static const char *call_query(const struct kf_api_call *call, const char *key)
{
    const struct api_request *req = call->priv;

    return kf_api_query_get(&req->query, key);
}

int kf_api_serve_action(struct api_request *req)
{
    struct api_action *x = (struct api_action *)req->action;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_api_call call = {
        .method = x->method,
        .name = req->name,
        .user = req->user,
        .query = call_query,
        .priv = req,
    };
    json_t *body = NULL, *ret = NULL;
    kf_api_action_fn fn;
    void *arg;
    int r;

    if (req->body.len) {
        r = kf_json_parse(req->body.buf, req->body.len, &body, &err);
        if (r < 0) {
            struct kf_strbuf msg = KF_STRBUF_INIT;

            kf_strbuf_addf(&msg, "the request body is not valid JSON: %s", err.buf);
            r = kf_api_reply_status(req, -KF_EBADREQUEST, msg.buf, NULL);
            kf_strbuf_release(&msg);
            kf_strbuf_release(&err);
            return r;
        }
    }
    call.body = body;
    pthread_rwlock_rdlock(&req->api->actions_lock);
    fn = x->a.fn;
    arg = x->a.arg;
    if (fn)
        __atomic_add_fetch(&x->inflight, 1, __ATOMIC_ACQ_REL);
    pthread_rwlock_unlock(&req->api->actions_lock);
    if (fn) {
        r = fn(arg, &call, &ret, &err);
        __atomic_sub_fetch(&x->inflight, 1, __ATOMIC_ACQ_REL);
    } else {
        r = kf_err(&err, -KF_EUNAVAILABLE,
                   "%s is computed by the controllers, which run on the leader replica; this "
                   "kfleetd is not leading now (see /readyz), try again or ask the leader",
                   x->resource);
    }
    json_decref(body);
    if (r < 0) {
        if (!err.len)
            kf_strbuf_addf(&err, "%s failed: %s", x->resource, strerror(-r));
        r = kf_api_reply_status(req, r, err.buf, NULL);
    } else {
        r = kf_api_reply_json(req, MHD_HTTP_OK, ret ? ret : json_object());
    }
    kf_strbuf_release(&err);
    return r;
}
