/* api-internal.h: what the API server's files share (see kfleet/api.h and
 * docs/internals/api.md).
 *
 *   api-server.c     the daemon, the request life cycle and dispatch
 *   api-http.c       URI and query decoding, replies, Status objects
 *   api-auth.c       the token file and the role table
 *   api-discovery.c  /api, /apis, /version, /openapi
 *   api-openapi-pb.c OpenAPI v2 as protocol buffers (kubectl up to 1.26)
 *   api-objects.c    the object verbs (get, list, create, update, patch, delete)
 *   api-table.c      meta.k8s.io/v1 Table rendering for kubectl
 *   api-watch.c      watch streams on suspended connections
 *   api-metrics.c    the API's and the store's metrics
 *   api-action.c     actions: endpoints other parts of kfleetd compute
 *   api-taskresults.c  the endpoint agents report BroadcastTask results to
 *   api-heartbeat.c  host heartbeats into the lease table
 *   api-origin.c     Host, Origin and Content-Type checks against web pages
 */
#ifndef KF_API_INTERNAL_H
#define KF_API_INTERNAL_H

#include <pthread.h>
#include <microhttpd.h>
#include <jansson.h>

#include "kfleet/api.h"
#include "kfleet/smap.h"
#include "kfleet/base.h"
#include "kfleet/strbuf.h"

struct kf_causes;
struct kf_kind;
struct kf_metric;
struct kf_registry;
struct kf_selector;
struct kf_store;
struct api_tokens;
struct api_watch;

enum api_verb {
    API_VERB_NONE = 0, /* a non-resource path */
    API_VERB_GET,
    API_VERB_LIST,
    API_VERB_WATCH,
    API_VERB_CREATE,
    API_VERB_UPDATE,
    API_VERB_PATCH,
    API_VERB_DELETE,
    API_VERB_DELETECOLLECTION,
    API_VERB_N,
};

const char *kf_api_verb_name(enum api_verb v);

enum api_role {
    API_ROLE_ADMIN = 0,
    API_ROLE_EDITOR,
    API_ROLE_VIEWER,
    API_ROLE_AGENT,
    API_ROLE_N,
};

const char *kf_api_role_name(enum api_role r);

enum api_route_type {
    ROUTE_NONE = 0,
    ROUTE_HEALTHZ,
    ROUTE_LIVEZ,
    ROUTE_READYZ,
    ROUTE_VERSION,
    ROUTE_METRICS,
    ROUTE_API,        /* /api */
    ROUTE_API_V1,     /* /api/v1 */
    ROUTE_APIS,       /* /apis */
    ROUTE_APIS_GROUP, /* /apis/kfleet.io */
    ROUTE_APIS_GV,    /* /apis/kfleet.io/v1 */
    ROUTE_OPENAPI_V2,
    ROUTE_OPENAPI_V3,
    ROUTE_OPENAPI_V3_GV,
    ROUTE_COLLECTION, /* /apis/kfleet.io/v1/<plural> */
    ROUTE_OBJECT,     /* .../<plural>/<name> */
    ROUTE_STATUS,     /* .../<plural>/<name>/status */
    ROUTE_ACTION,     /* .../<plural>/<name>/<action> or /apis/kfleet.io/v1/<action> */
    ROUTE_HANDLER,    /* a prefix given to kf_api_add_handler */
    ROUTE_UI,         /* /ui, /ui/<file>: the dashboard's files (api-ui.c), open */
    ROUTE_UI_SESSION, /* /ui/session: who the token is, authenticated */
};

struct api_action; /* api-action.c */

/* Decoded query parameters, in order. */
struct api_query {
    char **keys;
    char **values;
    size_t n, alloc;
};

/* One HTTP request, from its request line to its completion. Allocated by
 * the URI log callback (so even a request MHD rejects is counted) and freed
 * by the completion callback. */
struct api_request {
    struct kf_api *api;
    struct MHD_Connection *conn;
    uint64_t start_ns;
    char *raw_uri;
    bool uri_too_long;
    bool started;
    bool replied;
    const char *method; /* MHD's string, valid for the request */

    char *path; /* decoded, without the query */
    struct api_query query;
    enum api_route_type route;
    size_t handler; /* ROUTE_HANDLER: index into api->handlers */
    const struct kf_kind *kind;
    char *name;
    enum api_verb verb;
    const char *resource; /* plural or a path class, for metrics */

    char *user; /* NULL without authentication */
    enum api_role role;

    struct kf_strbuf body; /* capped at cfg.max_body */
    bool body_too_large;
    size_t discarded; /* body bytes dropped past the cap */

    bool close;          /* close the connection after the answer */
    unsigned int status; /* the HTTP status replied */
    bool vary_accept;    /* the answer depends on Accept: say so (Vary) */
    struct api_watch *watch;
    const struct api_action *action; /* ROUTE_ACTION */
};

struct api_watchers; /* api-watch.c */

#define API_MAX_KINDS         32
#define API_WATCH_EVENT_TYPES 5 /* ADDED, MODIFIED, DELETED, BOOKMARK, ERROR */

struct kf_api {
    struct kf_api_config cfg; /* strings below are owned copies */
    char *listen;
    char *token_file;
    char *server_names;
    char *tls_cert; /* PEM contents, NULL for plain HTTP */
    char *tls_key;
    char *host;
    uint16_t port;
    uint16_t bound_port;

    struct kf_registry *reg;
    struct kf_store *store;
    struct kf_metrics *metrics;
    struct kf_metrics *own_metrics; /* when the caller gave none */

    pthread_rwlock_t tokens_lock;
    struct api_tokens *tokens; /* NULL: authentication off */

    struct MHD_Daemon *mhd;
    bool stopping; /* atomic */
    bool stopped;
    struct api_watchers *watchers;

    /* OpenAPI documents, built on first use (the kinds never change). */
    pthread_mutex_t docs_lock;
    char *openapi_v3;
    size_t openapi_v3_len;
    char openapi_v3_hash[17];
    char *openapi_v2;
    size_t openapi_v2_len;
    char *openapi_v2_pb; /* the same as protocol buffers (api-openapi-pb.c) */
    size_t openapi_v2_pb_len;

    pthread_rwlock_t actions_lock; /* the array; each action's binding */
    struct api_action **actions;   /* never freed before kf_api_free */
    size_t n_actions, alloc_actions;
    struct kf_api_actions actions_if; /* kf_api_actions() */
    struct kf_lease_table *leases;    /* heartbeats (api-heartbeat.c), NULL: not served */
    int ui_dirfd;                     /* the dashboard's folder (api-ui.c), -1: none */

    size_t inflight;          /* atomic: requests between URI and completion */
    uint64_t body_rejections; /* atomic: 413s */
    struct kf_metric *m_requests;
    struct kf_metric *m_latency;
    /* watch events sent, by kind (index in kf_kinds) and type; atomics */
    uint64_t watch_events[API_MAX_KINDS][API_WATCH_EVENT_TYPES];
    void *probes[2]; /* the collected store families' arguments */
    /* kf_api_set_ready_detail */
    void (*ready_detail)(void *arg, struct kf_strbuf *out);
    void *ready_detail_arg;

    /* Open connections by client address and open watches by user, both
     * counts stored as pointers (api-server.c, "clients"). */
    pthread_mutex_t clients_lock;
    struct kf_smap conns_by_client;
    struct kf_smap watches_by_user;

    struct api_handler {
        char *prefix;
        char *resource;
        kf_api_handler_fn fn;
        kf_api_handler_auth_fn auth;
        void *arg;
    } handlers[KF_API_MAX_HANDLERS];
    size_t n_handlers;
};

/* Counts a watch of req->user against cfg.max_watches_per_user (users of
 * the token file only): 0, or -KF_ETOOMANY answered with a 429 that names
 * the bound. On 0 the caller calls kf_api_user_watch_release(api, user)
 * when the watch ends. */
int kf_api_user_watch_acquire(struct api_request *req);
void kf_api_user_watch_release(struct kf_api *api, const char *user);

/* Whether req carries a valid bearer token, or authentication is off:
 * for open routes that say more to those who may know it. */
bool kf_api_request_authenticated(struct api_request *req);

/* --- api-http.c ------------------------------------------------------- */

/* Splits the raw request target into a decoded path and query. -EBADMSG
 * with a message on a bad percent escape or a NUL byte. */
int kf_api_parse_uri(const char *raw, char **ret_path, struct api_query *ret_query,
                     struct kf_strbuf *err);
void kf_api_query_release(struct api_query *q);
/* The last value of key, or NULL. */
const char *kf_api_query_get(const struct api_query *q, const char *key);
/* "true", "1" -> true; absent, "false", "0" -> false; anything else is a
 * 400 (-EBADMSG with a message). */
int kf_api_query_bool(const struct api_query *q, const char *key, bool *ret, struct kf_strbuf *err);

const char *kf_api_header(struct api_request *req, const char *name);

/* One media range of an Accept header with the parameters kfleet
 * negotiates on (others are ignored). Each field is lower-case for the
 * type and as sent for the parameters; a type or value longer than its
 * field is stored as "?" so that it matches nothing. */
struct api_media_range {
    char type[64];    /* "application/json", or a wildcard */
    char group[64];   /* g= */
    char version[16]; /* v= */
    char as[64];      /* as= */
    char profile[32]; /* profile= */
    bool refused;     /* q=0: the client does not accept it */
};

#define API_ACCEPT_MAX_RANGES 32 /* ranges read from one Accept header */

/* Reads the next media range of an Accept header value from *pos and
 * advances *pos past it (and its comma). Returns false at the end of the
 * value. Never reads past the terminating NUL; any input is accepted. */
bool kf_api_accept_next(const char **pos, struct api_media_range *ret);
/* Whether the range accepts plain JSON: application/json or a wildcard
 * (any type, any application type) without an as= parameter. */
bool kf_api_media_range_is_json(const struct api_media_range *m);

/* Replies with body (taken: the buffer is emptied). */
int kf_api_reply(struct api_request *req, unsigned int code, const char *content_type,
                 struct kf_strbuf *body);
int kf_api_reply_text(struct api_request *req, unsigned int code, const char *text);
/* Replies with v serialized (v is released). */
int kf_api_reply_json(struct api_request *req, unsigned int code, json_t *v);

/* A Kubernetes Status for error code err (negative errno; HTTP code and
 * reason from kf_error_info). kind/name fill details when known; causes
 * become details.causes[]. */
json_t *kf_api_status_new(int err, const char *message, const struct kf_kind *k, const char *name,
                          const struct kf_causes *causes);
int kf_api_reply_status(struct api_request *req, int err, const char *message,
                        const struct kf_causes *causes);
int kf_api_reply_statusf(struct api_request *req, int err, const char *fmt, ...) KF_PRINTF(3, 4);
/* A failure Status with an HTTP code that has no kfleet error code (406). */
int kf_api_reply_status_http(struct api_request *req, unsigned int code, const char *reason,
                             const char *message);
/* A success Status ({"status":"Success"}), as deletecollection returns. */
int kf_api_reply_success(struct api_request *req, unsigned int code, const char *message);

/* "guestclusters.kfleet.io", as Kubernetes names a resource in messages. */
void kf_api_resource_name(const struct kf_kind *k, struct kf_strbuf *out);

/* --- api-origin.c ----------------------------------------------------- */

/* The media type of a Content-Type value (ct may be NULL) without its
 * parameters, lower-case, into buf; "?" when longer than buf. Returns its
 * length. Never reads past ct's NUL; any input is accepted. */
size_t kf_api_media_type(const char *ct, char *buf, size_t size);
/* Whether a writing request's body may have this media type (JSON and
 * the patch types; never the types a web page may send without CORS
 * preflight). */
bool kf_api_write_type_accepted(const char *media_type);
/* Whether a Host header value names this server: an IP literal,
 * "localhost", listen_host, a name in server_names (comma-separated) or
 * this machine's host name. NULL (no Host) is allowed. */
bool kf_api_host_header_allowed(const char *value, const char *listen_host,
                                const char *server_names);
bool kf_api_host_name_allowed(const char *host, const char *listen_host, const char *server_names);
/* Whether an Origin header value is the same authority as the Host header
 * value (NULL origin: true; "null" or a malformed origin: false). */
bool kf_api_origin_same(const char *origin, const char *host_value);

/* --- api-auth.c ------------------------------------------------------- */

/* Reads a token file: one "token,user,role" a line; blank lines and lines
 * starting with '#' are skipped. -EINVAL with "FILE:LINE: what" in err. */
int kf_api_tokens_load(const char *path, struct api_tokens **ret, struct kf_strbuf *err);
void kf_api_tokens_free(struct api_tokens *t);
/* The user of a bearer token (constant-time in the token's bytes). */
bool kf_api_tokens_find(const struct api_tokens *t, const char *token, const char **ret_user,
                        enum api_role *ret_role);
size_t kf_api_tokens_count(const struct api_tokens *t);

/* Whether role may do verb on kind (subresource: NULL or "status"). */
bool kf_api_role_allows(enum api_role role, enum api_verb verb, const struct kf_kind *k,
                        const char *subresource);
/* "editor or admin": the roles that would allow it. */
void kf_api_roles_allowing(enum api_verb verb, const struct kf_kind *k, const char *subresource,
                           struct kf_strbuf *out);

/* --- api-discovery.c -------------------------------------------------- */

/* The Content-Type of an aggregated discovery answer. */
#define API_AGGREGATED_DISCOVERY_TYPE \
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

int kf_api_serve_discovery(struct api_request *req);

/* --- the dashboard (api-ui.c) --- */

/* The Content-Type of a dashboard file named rel (relative to its folder),
 * or NULL when the name is refused: empty, longer than 128, a segment
 * empty, longer than 64 or starting with '.', a character other than
 * letters, digits, '-', '_', '.', more than 4 levels, or an extension
 * other than .html, .js, .css, .svg, .png, .ico. What passes cannot name
 * anything outside the folder. Fuzzed (tests/fuzz/fuzz-ui-path.c). */
const char *kf_api_ui_file_type(const char *rel);
/* Opens dir (NULL: no dashboard, /ui/ answers 404) into api->ui_dirfd. */
int kf_api_ui_open(struct kf_api *api, const char *dir, struct kf_strbuf *err);
void kf_api_ui_close(struct kf_api *api);
/* Serves ROUTE_UI and ROUTE_UI_SESSION: the redirect, a file, or the session. */
int kf_api_serve_ui(struct api_request *req);
/* The APIResourceList of /apis/kfleet.io/v1 (new reference). */
json_t *kf_api_discovery_resource_list(void);
/* The APIGroupDiscoveryList (apidiscovery.k8s.io/v2) of /api (core: the
 * core group's v1 without resources, as the legacy /api says) or of /apis
 * (kfleet.io/v1 with every resource as kf_api_discovery_resource_list has
 * it, status subresources nested); new reference. */
json_t *kf_api_discovery_aggregated(bool core);
/* The OpenAPI document (v3, else v2) built from the kinds; new reference. */
json_t *kf_api_openapi_doc(bool v3);
/* Whether the Accept header prefers aggregated discovery
 * (apidiscovery.k8s.io/v2 APIGroupDiscoveryList) to the legacy documents:
 * the first range kfleetd can serve decides. Marks the answer Vary: Accept. */
bool kf_api_wants_aggregated_discovery(struct api_request *req);
void kf_api_discovery_free(struct kf_api *api);

/* --- api-openapi-pb.c ------------------------------------------------- */

/* The OpenAPI v2 document doc (borrowed) encoded as gnostic's
 * openapi_v2.Document protocol buffer; malloc'ed, *ret_len bytes. Keys
 * that OpenAPI v2 does not have are left out. */
char *kf_api_openapi_v2_protobuf(const json_t *doc, size_t *ret_len);

/* --- api-objects.c ---------------------------------------------------- */

int kf_api_serve_object(struct api_request *req);
/* Parses labelSelector / fieldSelector of the query; NULL when absent or
 * empty. Replies 400 itself on a bad one and returns the error. */
int kf_api_selectors_from_query(struct api_request *req, struct kf_selector **ret_labels,
                                struct kf_selector **ret_fields);

/* --- api-table.c ------------------------------------------------------ */

enum kf_api_table_include {
    API_TABLE_METADATA = 0, /* PartialObjectMetadata (the default) */
    API_TABLE_OBJECT,
    API_TABLE_NONE,
};

/* Whether the Accept header asks for a meta.k8s.io Table. */
bool kf_api_wants_table(struct api_request *req);
int kf_api_table_include(struct api_request *req, enum kf_api_table_include *ret);
/* A Table with the kind's columns and no rows yet. */
json_t *kf_api_table_new(const struct kf_kind *k, const char *rv, const char *cont);
/* Appends a row for obj (borrowed). */
void kf_api_table_add_row(json_t *table, const struct kf_kind *k, const json_t *obj,
                          enum kf_api_table_include inc);

/* --- api-watch.c ------------------------------------------------------ */

int kf_api_watchers_new(struct kf_api *api);
/* Ends every watch and waits until none is suspended. */
void kf_api_watchers_stop(struct kf_api *api);
void kf_api_watchers_free(struct kf_api *api);
size_t kf_api_watchers_count(struct kf_api *api, const struct kf_kind *k);
/* Serves a watch request (GET ...?watch=true). */
int kf_api_serve_watch(struct api_request *req);
/* Called when the request completes: closes the store watch. */
void kf_api_watch_finish(struct api_request *req);

/* --- api-action.c ----------------------------------------------------- */

/* Finds the action for a path: kind NULL for a top-level name. NULL if
 * none (whatever the method); *ret_other_method set when the path has
 * actions but not for this method (a 405). */
const struct api_action *kf_api_action_find(struct kf_api *api, const struct kf_kind *k,
                                            const char *name, const char *method,
                                            bool *ret_other_method);
/* "resource" label for metrics and messages ("hosts/heartbeat", "plan"). */
const char *kf_api_action_resource(const struct api_action *a);
const char *kf_api_action_method(const struct api_action *a);
/* Whether the role may call it; names the roles that may into out. */
bool kf_api_action_allows(const struct api_action *a, enum api_role role, struct kf_strbuf *roles);
int kf_api_serve_action(struct api_request *req);
void kf_api_actions_free(struct kf_api *api);

/* --- api-taskresults.c ------------------------------------------------ */

/* Adds POST .../taskresults, where agents report BroadcastTask results
 * (kfleet/broadcast.h). kf_api_new calls it. */
int kf_api_task_results_register(struct kf_api *api);

/* --- api-metrics.c ---------------------------------------------------- */

void kf_api_metrics_register(struct kf_api *api);
/* Counts one watch event of type ("ADDED", ...) for the kind at index. */
void kf_api_count_watch_event(struct kf_api *api, size_t kind_index, const char *type);
/* The index of k in kf_kinds(). */
size_t kf_api_kind_index(const struct kf_kind *k);
void kf_api_metrics_request_done(struct kf_api *api, struct api_request *req);

#endif
