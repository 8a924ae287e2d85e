/* api-action.h: the API server's actions as an interface, for the code
 * below the API that computes them.
 *
 * An action is an endpoint of kfleetd's API that is not an object verb (a
 * cluster's placement explained, a capacity plan, a guest's kubeconfig).
 * The API server (src/api/, api.h) routes, authenticates and meters them;
 * the controllers compute them. Controllers sit below the API in the
 * layers (docs/architecture.md), so they never call the server: kfleetd
 * hands them a struct kf_api_actions (kf_api_actions() in api.h) through
 * struct kf_ctrl_env, and they add and remove their actions through it.
 * This header has types and inline functions only, so including it links
 * nothing of the API.
 */
#ifndef KF_API_ACTION_H
#define KF_API_ACTION_H

#include <string.h>

#include <jansson.h>

#include "kfleet/base.h"

struct kf_kind;
struct kf_strbuf;

/* Roles, as bits of kf_api_action.roles. */
#define KF_API_ROLE_ADMIN  (1u << 0)
#define KF_API_ROLE_EDITOR (1u << 1)
#define KF_API_ROLE_VIEWER (1u << 2)
#define KF_API_ROLE_AGENT  (1u << 3)
#define KF_API_ROLES_ALL   0xfu

/* A token's user "host:NAME" (an agent token bound to one host) may fetch
 * the certificates of the members on host NAME only. kf_api_user_host
 * returns NAME for such a user, else NULL (any other user, or NULL). */
#define KF_API_HOST_USER_PREFIX "host:"
static inline const char *kf_api_user_host(const char *user)
{
    size_t n = strlen(KF_API_HOST_USER_PREFIX);

    if (!user || strncmp(user, KF_API_HOST_USER_PREFIX, n) != 0 || !user[n])
        return NULL;
    return user + n;
}

/* One call of an action, borrowed for the duration of the call. */

struct kf_api_call {
    const char *method; /* "GET", "POST" */
    const char *name;   /* the object's name (object actions), else NULL */
    const char *user;   /* NULL when authentication is off */
    const json_t *body; /* the body parsed as JSON, NULL when there was none */
    /* the decoded query: the last value of key, or NULL */
    const char *(*query)(const struct kf_api_call *call, const char *key);
    const void *priv;
};

/* Computes the answer. Returns 0 with *ret (a new reference, served as
 * JSON with 200), or a negative kfleet error (error.h: -KF_ENOTFOUND,
 * -KF_EBADREQUEST, -KF_EINVALID, ...) with a message for people in err,
 * served as a Kubernetes Status. Runs on an API thread: it may block
 * briefly, must be thread-safe, and must not call back into the server. */
typedef int (*kf_api_action_fn)(void *arg, const struct kf_api_call *call, json_t **ret,
                                struct kf_strbuf *err);

struct kf_api_action {
    const char *method;         /* "GET" or "POST" */
    const struct kf_kind *kind; /* object action on .../<plural>/<name>/<name below>; NULL:
                                   a top-level action at /apis/kfleet.io/v1/<name below> */
    const char *name;           /* "explain", "plan", "heartbeat": a DNS label, not "status"
                                   nor (top-level) a kind's plural */
    unsigned roles;             /* KF_API_ROLE_* allowed (authentication on) */
    kf_api_action_fn fn;
    void *arg;
};

/* Where actions are added: the API server's kf_api_add_action and
 * kf_api_remove_action (api.h) behind function pointers, with their
 * contracts. */
struct kf_api_actions {
    void *api;
    int (*add)(void *api, const struct kf_api_action *a);
    int (*remove)(void *api, const char *method, const struct kf_kind *kind, const char *name);
};

static inline int kf_api_actions_add(const struct kf_api_actions *t, const struct kf_api_action *a)
{
    return t->add(t->api, a);
}

static inline int kf_api_actions_remove(const struct kf_api_actions *t, const char *method,
                                        const struct kf_kind *kind, const char *name)
{
    return t->remove(t->api, method, kind, name);
}

#endif
