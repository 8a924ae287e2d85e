/* api.h: kfleetd's HTTP API server (Kubernetes conventions, so kubectl works).
 *
 * One struct kf_api serves one registry over HTTP/1.1 on libmicrohttpd:
 *   /apis/kfleet.io/v1/<plural>[/<name>[/status]]   objects (every verb)
 *   /api, /apis, /apis/kfleet.io[/v1], /version      discovery
 *   /openapi/v2, /openapi/v3[/apis/kfleet.io/v1]     schemas for kubectl
 *   /healthz, /livez, /readyz, /metrics              operations
 *   /ui/                                             the dashboard (kf_api_config.ui_dir)
 * Errors are Kubernetes Status objects. Watches do not hold a thread: a
 * watch connection is suspended while it has nothing to send and resumed
 * by the store's watch hub (see docs/internals/api.md).
 *
 * Authentication is a static token file (lines "token,user,role"; roles
 * admin, editor, viewer, agent). Without one every request is allowed, and
 * kf_api_new refuses a listen address that is not loopback. The server
 * speaks HTTPS when given a certificate and key (kubectl, like every
 * client-go program, sends its bearer token only over TLS).
 *
 * Besides objects, the server answers actions: endpoints that other parts
 * of kfleetd compute (a cluster's placement explained, a capacity plan) or
 * that touch no object at all (heartbeats, which renew leases in memory):
 *   POST /apis/kfleet.io/v1/hosts/<name>/heartbeat   (kf_api_set_leases)
 *   POST /apis/kfleet.io/v1/heartbeats
 *   POST /apis/kfleet.io/v1/taskresults               (BroadcastTask results,
 *                                                      kfleet/broadcast.h)
 *   GET  /apis/kfleet.io/v1/<plural>/<name>/<action>  (kf_api_add_action)
 *   POST /apis/kfleet.io/v1/<action>
 * Actions go through the same routing, authentication, roles, body cap,
 * Status errors and metrics as objects.
 *
 * Lifecycle: kf_api_new (nothing listens yet), kf_api_start (binds and
 * serves from its own threads), kf_api_stop (stops accepting, ends every
 * watch cleanly, waits for in-flight requests), kf_api_free.
 */
#ifndef KF_API_H
#define KF_API_H

#include <jansson.h>

#include "kfleet/api-action.h"
#include "kfleet/base.h"

struct kf_kind;
struct kf_lease_table;
struct kf_metrics;
struct kf_registry;
struct kf_strbuf;
struct kf_api;

#define KF_API_DEFAULT_LISTEN "127.0.0.1:7480"

struct kf_api_config {
    const char *listen;     /* "HOST:PORT", "[v6]:PORT"; port 0 picks a free one */
    const char *token_file; /* NULL: no authentication (loopback only) */
    /* Names clients reach the server by, comma-separated, besides IP
     * literals, "localhost", the listen host and the machine's host name:
     * a request whose Host is none of these is refused (421), so that a
     * web page cannot reach kfleetd by DNS rebinding. */
    const char *server_names;
    /* HTTPS: PEM files of the serving certificate (chain) and its key; both
     * NULL: plain HTTP. kubectl sends a bearer token only over HTTPS. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /* Serve tokens over plain HTTP on a non-loopback address anyway
     * (--insecure-allow-plaintext); else that is refused. */
    bool insecure_allow_plaintext;
    unsigned int threads;         /* request threads (each runs an epoll loop); 0: default */
    unsigned int max_connections; /* open connections, watches included */
    /* Open connections from one client address; the next one is answered
     * 429 and closed. 0: the default, 1,024. */
    unsigned int max_connections_per_client;
    /* Open watches of one authenticated user (token); the next is 429.
     * Not applied without --token-file (loopback, everyone is admin).
     * 0: the default, 1,000. */
    unsigned int max_watches_per_user;
    /* Objects in one LIST response (and one page of a watch's initial
     * events): a larger limit, or none, gets this many and a continue
     * token. 0: the default, KF_API_LIST_MAX_PAGE. */
    size_t list_max_page;
    unsigned int connection_timeout_s; /* idle connections (slow clients) are closed */
    size_t max_body;                   /* request body cap; 0: KF_OBJ_MAX_BYTES */
    size_t max_uri;                    /* request line cap (path + query) */
    /* Watches: the server ends a watch after timeoutSeconds, or after
     * watch_timeout_s (+ up to 100 % jitter, as Kubernetes does) when the
     * client gives none; BOOKMARKs every bookmark_interval_ms when asked. */
    unsigned int watch_timeout_s;
    unsigned int watch_timeout_max_s;
    unsigned int bookmark_interval_ms;
    /* The dashboard's folder (index.html, app.js, ...), served at /ui/;
     * NULL: /ui/ answers 404. kf_api_new fails if it cannot be opened. */
    const char *ui_dir;
};

#define KF_API_LIST_MAX_PAGE 5000

/* Fills the defaults: 127.0.0.1:7480, no tokens, 4 threads, 10,000
 * connections, 60 s idle timeout, KF_OBJ_MAX_BYTES bodies, 16 KiB URIs,
 * 30 min watches (max 1 h), bookmarks every 10 s. */
void kf_api_config_init(struct kf_api_config *c);

/* Checks the configuration and reads the token file and TLS files. The registry (and its
 * store) and metrics are borrowed and must outlive the server; metrics may
 * be NULL (then /metrics serves a registry of the server's own). The server
 * adds its families (kfleet_api_*, kfleet_store_*) to metrics; some are
 * computed from the server at scrape time, so do not write metrics out
 * after kf_api_free. Nothing
 * listens until kf_api_start. -EINVAL with a message for a bad listen
 * address, an unreadable or malformed token file, or a non-loopback address
 * without a token file. */
int kf_api_new(const struct kf_api_config *c, struct kf_registry *reg, struct kf_metrics *metrics,
               struct kf_api **ret, struct kf_strbuf *err);
/* Binds and starts serving. -EADDRINUSE etc. with a message. */
int kf_api_start(struct kf_api *api, struct kf_strbuf *err);
/* The port actually bound (useful with port 0); 0 before kf_api_start. */
uint16_t kf_api_port(const struct kf_api *api);
/* Re-reads the token file (SIGHUP). On error the old tokens stay. */
int kf_api_reload_tokens(struct kf_api *api, struct kf_strbuf *err);

/* Lines that /readyz adds after its "ok" (e.g. which replica leads):
 * fn(arg, out) appends text ending in a newline; called from request
 * threads, so it must be thread-safe and quick. Before kf_api_start only. */
void kf_api_set_ready_detail(struct kf_api *api, void (*fn)(void *arg, struct kf_strbuf *out),
                             void *arg);
/* Stops accepting, ends every open watch (the client sees the stream end),
 * finishes in-flight requests and stops the threads. Idempotent. */
void kf_api_stop(struct kf_api *api);
/* Stops if needed and frees. NULL is fine. */
void kf_api_free(struct kf_api *api);

/* --- actions ------------------------------------------------------------- */

/* Adds an action (copied; arg borrowed until kf_api_remove_action or
 * kf_api_free), at any time: controllers come and go with leader terms.
 * With fn NULL the action is only declared: its path is known and answers
 * 503 ("computed by the leader") until a later add with fn binds it.
 * -EEXIST if the method and path are bound already, -EINVAL for a bad name
 * or method. */
int kf_api_add_action(struct kf_api *api, const struct kf_api_action *a);
/* Unbinds an action (it answers 503 again), waiting for the calls in
 * progress to return: after this, fn is not called and arg may be freed.
 * 0 or -ENOENT. */
int kf_api_remove_action(struct kf_api *api, const char *method, const struct kf_kind *kind,
                         const char *name);
/* The two calls above as the interface of api-action.h, for code below the
 * API (controllers) that kfleetd hands it to. Lives as long as api. */
const struct kf_api_actions *kf_api_actions(struct kf_api *api);

/* Serves heartbeats into t (borrowed, must outlive the server): renewals
 * of leases in memory, never store writes. Roles agent and admin.
 *   POST .../hosts/<name>/heartbeat  -> {"host": name, "renewed": true, ...}
 *                                       404 if no Host of that name exists
 *   POST .../heartbeats {"hosts": ["h1", {"name": "h2"}, ...]} (at most
 *     KF_API_MAX_HEARTBEATS) -> {"renewed": N, "unknown": [names without a Host]}
 * A name is looked up in the store only the first time it beats (after
 * that the lease table knows it); the host controller forgets the lease of
 * a deleted Host. Before kf_api_start. */
#define KF_API_MAX_HEARTBEATS 10000
int kf_api_set_leases(struct kf_api *api, struct kf_lease_table *t);
/* --- handlers ------------------------------------------------------------ */

/* A handler answers every request whose path starts with a prefix outside
 * the object API (kfleetd's alert receiver adapter: POST
 * /alerts/v1/receivers/<name>). It gets the method, the rest of the path
 * after the prefix (decoded), the Authorization header (NULL if none) and
 * the body (capped like any other; 413 past it), writes a JSON answer into
 * resp and returns the HTTP status. The API server's token file does not
 * apply: the handler authenticates. It runs on an API thread, must be
 * thread-safe and quick (queue slow work). */
typedef int (*kf_api_handler_fn)(void *arg, const char *method, const char *rest,
                                 const char *authorization, const char *body, size_t len,
                                 struct kf_strbuf *resp);

/* A handler's check before its body is read (with the headers only):
 * returns 0 to go on (the body is read, then fn is called), or an HTTP
 * status answered at once with resp (401: no body is read from a client
 * without the token). Same thread rules as fn. */
typedef int (*kf_api_handler_auth_fn)(void *arg, const char *method, const char *rest,
                                      const char *authorization, struct kf_strbuf *resp);

#define KF_API_MAX_HANDLERS 4

/* Adds a handler for paths starting with `prefix` ("/alerts/v1/receivers/";
 * it must start and end with '/' and not be under /api or /apis);
 * `resource` names it in kfleet_api_requests_total; `auth` (NULL: none)
 * runs before the body is read. Before kf_api_start only. 0, -EINVAL (a
 * bad prefix), -ENOSPC (too many), -EEXIST. */
int kf_api_add_handler(struct kf_api *api, const char *prefix, const char *resource,
                       kf_api_handler_auth_fn auth, kf_api_handler_fn fn, void *arg);

#endif
