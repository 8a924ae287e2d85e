/* api-server.c: the libmicrohttpd daemon and the life of a request.
 *
 * libmicrohttpd runs a pool of threads, each an epoll loop over its share
 * of the connections. A request goes through:
 *   1. the URI log callback: allocates struct api_request with the raw
 *      request target (so that every request, even one MHD rejects later,
 *      is seen by the completion callback);
 *   2. the first access-handler call (headers complete): decode the target,
 *      route, authenticate, authorize, check Content-Length — any failure
 *      is answered at once, before a body is read;
 *   3. upload calls: the body is appended to a capped buffer (413 past it);
 *   4. the last call: dispatch to discovery, operations, objects or watch;
 *   5. the completion callback: metrics, the debug log line, cleanup.
 * Handlers run on the pool threads and may block on the store briefly; a
 * watch never blocks: see api-watch.c.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "kfleet/error.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "api/api-internal.h"

KF_LOG_MODULE(api);

#define API_MEMORY_LIMIT (32 * 1024)        /* per connection: headers, read and write buffers */
#define API_DISCARD_MAX  (16 * 1024 * 1024) /* body bytes dropped before hanging up */

static const char *const verb_names[API_VERB_N] = {
    [API_VERB_NONE] = "",
    [API_VERB_GET] = "get",
    [API_VERB_LIST] = "list",
    [API_VERB_WATCH] = "watch",
    [API_VERB_CREATE] = "create",
    [API_VERB_UPDATE] = "update",
    [API_VERB_PATCH] = "patch",
    [API_VERB_DELETE] = "delete",
    [API_VERB_DELETECOLLECTION] = "deletecollection",
};

const char *kf_api_verb_name(enum api_verb v)
{
    return v < API_VERB_N ? verb_names[v] : "?";
}

void kf_api_config_init(struct kf_api_config *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = KF_API_DEFAULT_LISTEN;
    c->threads = 4;
    c->max_connections = 10000;
    c->max_connections_per_client = 1024;
    c->max_watches_per_user = 1000;
    c->list_max_page = KF_API_LIST_MAX_PAGE;
    c->connection_timeout_s = 60;
    c->max_body = KF_OBJ_MAX_BYTES;
    c->max_uri = 16 * 1024;
    c->watch_timeout_s = 30 * 60;
    c->watch_timeout_max_s = 60 * 60;
    c->bookmark_interval_ms = 10 * 1000;
}

/* Reads a whole PEM file (capped: certificates and keys are small). */
static int read_pem(const char *what, const char *path, char **ret, struct kf_strbuf *err)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        return kf_err(err, -errno, "cannot read the TLS %s \"%s\": %s", what, path,
                      strerror(errno));
    sb.cap = 1024 * 1024;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        if (kf_strbuf_add(&sb, buf, n) < 0)
            break;
    fclose(f);
    if (sb.overflowed || !strstr(sb.buf, "-----BEGIN ")) {
        kf_strbuf_release(&sb);
        return kf_err(err, -EINVAL, "the TLS %s \"%s\" is not a PEM file", what, path);
    }
    *ret = kf_strbuf_detach(&sb, NULL);
    return 0;
}

/* api->cfg from c: its strings copied, every limit left 0 given its
 * default. */
static void config_defaults(struct kf_api *api, const struct kf_api_config *c)
{
    api->cfg = *c;
    api->listen = kf_xstrdup(c->listen ? c->listen : KF_API_DEFAULT_LISTEN);
    api->cfg.listen = api->listen;
    if (c->token_file)
        api->token_file = kf_xstrdup(c->token_file);
    api->cfg.token_file = api->token_file;
    if (c->server_names)
        api->server_names = kf_xstrdup(c->server_names);
    api->cfg.server_names = api->server_names;
    if (!api->cfg.threads)
        api->cfg.threads = 4;
    if (!api->cfg.max_body)
        api->cfg.max_body = KF_OBJ_MAX_BYTES;
    if (!api->cfg.max_uri)
        api->cfg.max_uri = 16 * 1024;
    if (!api->cfg.max_connections)
        api->cfg.max_connections = 10000;
    if (!api->cfg.max_connections_per_client)
        api->cfg.max_connections_per_client = 1024;
    if (!api->cfg.max_watches_per_user)
        api->cfg.max_watches_per_user = 1000;
    if (!api->cfg.list_max_page)
        api->cfg.list_max_page = KF_API_LIST_MAX_PAGE;
    if (!api->cfg.watch_timeout_max_s)
        api->cfg.watch_timeout_max_s = 60 * 60;
    if (!api->cfg.watch_timeout_s)
        api->cfg.watch_timeout_s = KF_MIN(30 * 60u, api->cfg.watch_timeout_max_s);
    if (!api->cfg.bookmark_interval_ms)
        api->cfg.bookmark_interval_ms = 10 * 1000;
}

int kf_api_new(const struct kf_api_config *c, struct kf_registry *reg, struct kf_metrics *metrics,
               struct kf_api **ret, struct kf_strbuf *err)
{
    struct kf_api *api;
    int r;

    api = kf_xcalloc(1, sizeof(*api));
    api->ui_dirfd = -1;
    config_defaults(api, c);
    api->reg = reg;
    api->store = kf_registry_store(reg);
    pthread_rwlock_init(&api->tokens_lock, NULL);
    pthread_rwlock_init(&api->actions_lock, NULL);
    pthread_mutex_init(&api->docs_lock, NULL);
    pthread_mutex_init(&api->clients_lock, NULL);
    kf_smap_init(&api->conns_by_client);
    kf_smap_init(&api->watches_by_user);

    r = kf_parse_listen(api->listen, &api->host, &api->port, err);
    if (r < 0)
        goto free_api;
    if (!c->tls_cert_file != !c->tls_key_file) {
        r = kf_err(err, -EINVAL, "HTTPS needs both a certificate and a key file");
        goto free_api;
    }
    if (c->tls_cert_file) {
        r = read_pem("certificate", c->tls_cert_file, &api->tls_cert, err);
        if (r == 0)
            r = read_pem("key", c->tls_key_file, &api->tls_key, err);
        if (r < 0)
            goto free_api;
    }
    api->cfg.tls_cert_file = api->cfg.tls_key_file = NULL;
    if (api->token_file && !api->tls_cert && !kf_host_is_loopback(api->host) &&
        !c->insecure_allow_plaintext) {
        /* bearer tokens, kubeconfigs and guest CA keys would cross the
         * network in cleartext */
        r = kf_err(err, -EINVAL,
                   "refusing to serve bearer tokens and credentials over plain HTTP on \"%s\": "
                   "give --tls-cert-file and --tls-key-file, or --insecure-allow-plaintext on a "
                   "network you trust",
                   api->listen);
        goto free_api;
    }
    if (api->token_file) {
        r = kf_api_tokens_load(api->token_file, &api->tokens, err);
        if (r < 0)
            goto free_api;
    } else if (!kf_host_is_loopback(api->host)) {
        r = kf_err(err, -EINVAL,
                   "refusing to listen on \"%s\" without authentication: it is not a loopback "
                   "address; give --token-file FILE (lines \"token,user,role\") or listen on "
                   "127.0.0.1",
                   api->listen);
        goto free_api;
    }
    api->cfg.ui_dir = NULL;
    r = kf_api_ui_open(api, c->ui_dir, err);
    if (r < 0)
        goto free_api;
    if (metrics) {
        api->metrics = metrics;
    } else {
        api->own_metrics = kf_metrics_new();
        api->metrics = api->own_metrics;
    }
    kf_api_metrics_register(api);
    kf_api_watchers_new(api);
    r = kf_api_task_results_register(api);
    if (r < 0) {
        kf_err(err, r, "cannot add the task results endpoint: %s", strerror(-r));
        goto free_api;
    }
    *ret = api;
    return 0;

free_api:
    kf_api_free(api);
    return r;
}

uint16_t kf_api_port(const struct kf_api *api)
{
    return api->bound_port;
}

int kf_api_reload_tokens(struct kf_api *api, struct kf_strbuf *err)
{
    struct api_tokens *t, *old;
    int r;

    if (!api->token_file)
        return kf_err(err, -EINVAL, "kfleetd runs without a token file; nothing to reload");
    r = kf_api_tokens_load(api->token_file, &t, err);
    if (r < 0)
        return r;
    pthread_rwlock_wrlock(&api->tokens_lock);
    old = api->tokens;
    api->tokens = t;
    pthread_rwlock_unlock(&api->tokens_lock);
    kf_api_tokens_free(old);
    return (int)KF_MIN(kf_api_tokens_count(t), (size_t)INT32_MAX);
}

/* --- MHD callbacks ---------------------------------------------------- */

static void mhd_logger(void *cls, const char *fmt, va_list ap) KF_PRINTF(2, 0);

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char *msg;

    if (!kf_log_enabled(&kf_log_this_module, KF_LOG_DBG))
        return;
    msg = kf_xvasprintf(fmt, ap);
    for (size_t n = strlen(msg); n > 0 && msg[n - 1] == '\n'; n--)
        msg[n - 1] = '\0';
    kf_log_dbg("libmicrohttpd: %s", msg);
    free(msg);
}

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct kf_api *api = cls;
    struct api_request *req = kf_xcalloc(1, sizeof(*req));
    size_t len = strlen(uri);

    req->api = api;
    req->conn = conn;
    req->start_ns = kf_mono_ns();
    if (len > api->cfg.max_uri) {
        req->uri_too_long = true;
        len = api->cfg.max_uri;
    }
    req->raw_uri = kf_xstrndup(uri, len);
    req->body.cap = api->cfg.max_body;
    req->resource = "unknown";
    __atomic_add_fetch(&api->inflight, 1, __ATOMIC_RELAXED);
    return req;
}

/* --- clients: connections per address, watches per user ----------------
 *
 * One client (an address) may hold cfg.max_connections_per_client open
 * connections; the one past it is answered 429 at its first request and
 * closed (libmicrohttpd's own per-address limit would close it without a
 * word), and while that one is open any further one is closed as it is
 * accepted (accept_policy). One user of the token file may hold cfg.max_watches_per_user
 * watches. Counts live in two maps under clients_lock, as pointers. */

struct api_conn_ctx {
    char client[INET6_ADDRSTRLEN];
    bool over; /* the client had too many connections when this one opened */
};

static size_t count_add(struct kf_smap *m, const char *key, int delta)
{
    size_t n = (size_t)(uintptr_t)kf_smap_get(m, key);

    n = delta > 0 ? n + 1 : n - 1;
    if (n)
        kf_smap_put(m, key, (void *)(uintptr_t)n);
    else
        kf_smap_remove(m, key);
    return n;
}

static void sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    snprintf(buf, len, "?");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
}

static void client_address(struct MHD_Connection *conn, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    sockaddr_text(ci ? ci->client_addr : NULL, buf, len);
}

/* libmicrohttpd's accept policy, before a connection is counted: a client
 * that already holds one connection past its limit (the one that will be
 * told 429) has the next ones closed at once, so connections that never
 * send a request are not held until --connection-timeout. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct kf_api *api = cls;
    char client[INET6_ADDRSTRLEN];
    size_t n;

    (void)addrlen;
    sockaddr_text(addr, client, sizeof(client));
    pthread_mutex_lock(&api->clients_lock);
    n = (size_t)(uintptr_t)kf_smap_get(&api->conns_by_client, client);
    pthread_mutex_unlock(&api->clients_lock);
    return n > api->cfg.max_connections_per_client ? MHD_NO : MHD_YES;
}

static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    struct kf_api *api = cls;
    struct api_conn_ctx *c = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        c = kf_xcalloc(1, sizeof(*c));
        client_address(conn, c->client, sizeof(c->client));
        pthread_mutex_lock(&api->clients_lock);
        c->over =
            count_add(&api->conns_by_client, c->client, 1) > api->cfg.max_connections_per_client;
        pthread_mutex_unlock(&api->clients_lock);
        *socket_context = c;
    } else if (c) {
        pthread_mutex_lock(&api->clients_lock);
        count_add(&api->conns_by_client, c->client, -1);
        pthread_mutex_unlock(&api->clients_lock);
        free(c);
        *socket_context = NULL;
    }
}

/* The first request of a connection past the client's limit: 429, close. */
static int check_client_connections(struct api_request *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const struct api_conn_ctx *c = ci ? ci->socket_context : NULL;

    if (!c || !c->over)
        return 0;
    req->close = true;
    kf_api_reply_statusf(req, -KF_ETOOMANY,
                         "too many connections from %s: at most %u a client (kfleetd "
                         "--max-connections-per-client); close some and retry",
                         c->client, req->api->cfg.max_connections_per_client);
    return -KF_ETOOMANY;
}

int kf_api_user_watch_acquire(struct api_request *req)
{
    struct kf_api *api = req->api;
    size_t n;

    if (!req->user)
        return 0;
    pthread_mutex_lock(&api->clients_lock);
    n = (size_t)(uintptr_t)kf_smap_get(&api->watches_by_user, req->user);
    if (n < api->cfg.max_watches_per_user)
        count_add(&api->watches_by_user, req->user, 1);
    pthread_mutex_unlock(&api->clients_lock);
    if (n < api->cfg.max_watches_per_user)
        return 0;
    kf_api_reply_statusf(req, -KF_ETOOMANY,
                         "user \"%s\" has %zu watches open, the most a user may (kfleetd "
                         "--max-watches-per-user %u); end one and retry",
                         req->user, n, api->cfg.max_watches_per_user);
    return -KF_ETOOMANY;
}

void kf_api_user_watch_release(struct kf_api *api, const char *user)
{
    if (!user)
        return;
    pthread_mutex_lock(&api->clients_lock);
    if (kf_smap_contains(&api->watches_by_user, user))
        count_add(&api->watches_by_user, user, -1);
    pthread_mutex_unlock(&api->clients_lock);
}

static void request_free(struct api_request *req)
{
    free(req->raw_uri);
    free(req->path);
    free(req->name);
    free(req->user);
    kf_api_query_release(&req->query);
    kf_strbuf_release(&req->body);
    free(req);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct kf_api *api = cls;
    struct api_request *req = *con_cls;

    if (!req)
        return;
    *con_cls = NULL;
    if (req->watch)
        kf_api_watch_finish(req);
    if (req->started)
        kf_api_metrics_request_done(api, req);
    if (kf_log_enabled(&kf_log_this_module, KF_LOG_DBG))
        kf_log_dbg("%s %s %u %.3fms user=%s%s", req->method ? req->method : "-", req->raw_uri,
                   req->status, (double)(kf_mono_ns() - req->start_ns) / 1e6,
                   req->user ? req->user : "-",
                   toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    __atomic_sub_fetch(&api->inflight, 1, __ATOMIC_RELAXED);
    request_free(req);
}

/* --- routing ---------------------------------------------------------- */

static const struct kf_kind *kind_by_plural(const char *plural)
{
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    for (size_t i = 0; i < n; i++)
        if (strcmp(kinds[i]->plural, plural) == 0)
            return kinds[i];
    return NULL;
}

/* Splits req->path into at most 8 segments (in place in a copy). */
static size_t split_path(const char *path, char *copy, char **seg, size_t max)
{
    size_t n = 0, len;
    char *save = NULL;

    len = strlen(path);
    memcpy(copy, path, len + 1);
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return max + 1;
        seg[n++] = t;
    }
    return n;
}

/* An action matched the path (other: but not for this method). */
static int route_action(struct api_request *req, bool other)
{
    if (!req->action) {
        kf_api_reply_statusf(req, -KF_EMETHOD, "%s is not allowed on \"%s\"", req->method,
                             req->path);
        return -KF_EMETHOD;
    }
    req->route = ROUTE_ACTION;
    req->resource = kf_api_action_resource(req->action);
    return 0;
}

/* The paths that are not a kind's: health, version, metrics, discovery, OpenAPI. */
static const struct {
    const char *path;
    enum api_route_type type;
    const char *resource;
} fixed_routes[] = {
    { "/healthz", ROUTE_HEALTHZ, "healthz" },
    { "/livez", ROUTE_LIVEZ, "livez" },
    { "/readyz", ROUTE_READYZ, "readyz" },
    { "/version", ROUTE_VERSION, "version" },
    { "/metrics", ROUTE_METRICS, "metrics" },
    { "/api", ROUTE_API, "discovery" },
    { "/api/v1", ROUTE_API_V1, "discovery" },
    { "/apis", ROUTE_APIS, "discovery" },
    { "/apis/" KF_API_GROUP, ROUTE_APIS_GROUP, "discovery" },
    { "/apis/" KF_API_VERSION, ROUTE_APIS_GV, "discovery" },
    { "/openapi/v2", ROUTE_OPENAPI_V2, "openapi" },
    { "/openapi/v3", ROUTE_OPENAPI_V3, "openapi" },
    { "/openapi/v3/apis/" KF_API_VERSION, ROUTE_OPENAPI_V3_GV, "openapi" },
};

/* A fixed path or a registered handler's prefix: true when it routed req. */
static bool route_fixed(struct api_request *req)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(fixed_routes); i++)
        if (strcmp(req->path, fixed_routes[i].path) == 0) {
            req->route = fixed_routes[i].type;
            req->resource = fixed_routes[i].resource;
            return true;
        }
    for (size_t i = 0; i < req->api->n_handlers; i++)
        if (kf_str_has_prefix(req->path, req->api->handlers[i].prefix)) {
            req->route = ROUTE_HANDLER;
            req->handler = i;
            req->resource = req->api->handlers[i].resource;
            return true;
        }
    return false;
}

/* The 404 for a plural no kind has: it lists the plurals served. */
static int reply_unknown_plural(struct api_request *req, const char *plural)
{
    struct kf_strbuf names = KF_STRBUF_INIT;
    size_t nk;
    const struct kf_kind *const *kinds = kf_kinds(&nk);

    /* Routing runs before authentication: only a client with a token
     * learns which kinds exist. */
    if (kf_api_request_authenticated(req)) {
        kf_strbuf_addstr(&names, " (it serves ");
        for (size_t i = 0; i < nk; i++)
            kf_strbuf_addf(&names, "%s%s", i ? ", " : "", kinds[i]->plural);
        kf_strbuf_addch(&names, ')');
    }
    kf_api_reply_statusf(req, -KF_ENOTFOUND,
                         "the server does not serve resource \"%s\" in " KF_API_VERSION "%s",
                         plural, names.len ? names.buf : "");
    kf_strbuf_release(&names);
    return -KF_ENOTFOUND;
}

static int route(struct api_request *req)
{
    size_t len = strlen(req->path);
    char *seg[9], *copy;
    size_t n;

    if (strcmp(req->path, "/ui") == 0 || kf_str_has_prefix(req->path, "/ui/")) {
        req->route = strcmp(req->path, "/ui/session") == 0 ? ROUTE_UI_SESSION : ROUTE_UI;
        req->resource = "ui";
        return 0;
    }
    /* one trailing slash is tolerated */
    if (len > 1 && req->path[len - 1] == '/')
        req->path[--len] = '\0';
    if (route_fixed(req))
        return 0;
    if (!kf_str_has_prefix(req->path, "/apis/" KF_API_VERSION "/")) {
        kf_api_reply_statusf(req, -KF_ENOTFOUND,
                             "the server could not find the requested resource \"%s\" "
                             "(kfleet serves /apis/" KF_API_VERSION "/<plural>)",
                             req->path);
        return -KF_ENOTFOUND;
    }
    copy = kf_xmalloc(len + 1);
    n = split_path(req->path, copy, seg, 8);
    /* seg: apis, kfleet.io, v1, plural[, name[, status]] */
    if (n < 4 || n > 6) {
        free(copy);
        kf_api_reply_statusf(req, -KF_ENOTFOUND,
                             "the server could not find the requested resource \"%s\"", req->path);
        return -KF_ENOTFOUND;
    }
    req->kind = kind_by_plural(seg[3]);
    if (!req->kind && n == 4) {
        bool other = false;

        req->action = kf_api_action_find(req->api, NULL, seg[3], req->method, &other);
        if (req->action || other) {
            free(copy);
            return route_action(req, other);
        }
    }
    if (!req->kind) {
        int r = reply_unknown_plural(req, seg[3]); /* seg points into copy */

        free(copy);
        return r;
    }
    req->resource = req->kind->plural;
    if (n == 4) {
        req->route = ROUTE_COLLECTION;
    } else {
        req->name = kf_xstrdup(seg[4]);
        req->route = ROUTE_OBJECT;
        if (n == 6 && strcmp(seg[5], "status") != 0) {
            bool other = false;

            req->action = kf_api_action_find(req->api, req->kind, seg[5], req->method, &other);
            if (req->action || other) {
                free(copy);
                return route_action(req, other);
            }
        }
        if (n == 6) {
            if (strcmp(seg[5], "status") != 0 || !req->kind->has_status) {
                kf_api_reply_statusf(req, -KF_ENOTFOUND, "%s has no subresource \"%s\"%s",
                                     req->kind->plural, seg[5],
                                     req->kind->has_status ? " (it has status)" : "");
                free(copy);
                return -KF_ENOTFOUND;
            }
            req->route = ROUTE_STATUS;
        }
    }
    free(copy);
    return 0;
}

static bool method_is(const struct api_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

/* Sets req->verb from the route and method; replies 405 for the rest. */
static int choose_verb(struct api_request *req)
{
    const char *allowed = NULL;
    bool get = method_is(req, "GET") || method_is(req, "HEAD");

    switch (req->route) {
    case ROUTE_HANDLER:
        req->verb = get ? API_VERB_GET : API_VERB_CREATE;
        break;
    case ROUTE_COLLECTION: {
        bool watch = false;
        struct kf_strbuf err = KF_STRBUF_INIT;

        if (get) {
            if (kf_api_query_bool(&req->query, "watch", &watch, &err) < 0) {
                kf_api_reply_status(req, -KF_EBADREQUEST, err.buf, NULL);
                kf_strbuf_release(&err);
                return -KF_EBADREQUEST;
            }
            req->verb = watch ? API_VERB_WATCH : API_VERB_LIST;
        } else if (method_is(req, "POST")) {
            req->verb = API_VERB_CREATE;
        } else if (method_is(req, "DELETE")) {
            req->verb = API_VERB_DELETECOLLECTION;
        } else {
            allowed = "GET, POST, DELETE";
        }
        break;
    }
    case ROUTE_OBJECT:
    case ROUTE_STATUS: {
        bool watch = false;

        if (get) {
            kf_api_query_bool(&req->query, "watch", &watch, NULL);
            /* the deprecated /<plural>/<name>?watch=true form */
            req->verb = watch && req->route == ROUTE_OBJECT ? API_VERB_WATCH : API_VERB_GET;
        } else if (method_is(req, "PUT")) {
            req->verb = API_VERB_UPDATE;
        } else if (method_is(req, "PATCH")) {
            req->verb = API_VERB_PATCH;
        } else if (method_is(req, "DELETE") && req->route == ROUTE_OBJECT) {
            req->verb = API_VERB_DELETE;
        } else {
            allowed = req->route == ROUTE_OBJECT ? "GET, PUT, PATCH, DELETE" : "GET, PUT, PATCH";
        }
        break;
    }
    case ROUTE_ACTION:
        break; /* the router matched the method */
    default:
        if (!get)
            allowed = "GET";
        break;
    }
    if (allowed) {
        kf_api_reply_statusf(req, -KF_EMETHOD, "%s is not allowed on \"%s\" (allowed: %s)",
                             req->method, req->path, allowed);
        return -KF_EMETHOD;
    }
    if (req->kind && req->kind->system &&
        (req->verb == API_VERB_CREATE || req->verb == API_VERB_UPDATE ||
         req->verb == API_VERB_PATCH)) {
        kf_api_reply_statusf(req, -KF_EMETHOD,
                             "%s objects are written by kfleetd only; they can be read and deleted",
                             req->kind->kind);
        return -KF_EMETHOD;
    }
    return 0;
}

static bool route_is_open(enum api_route_type t)
{
    /* handlers authenticate by themselves */
    return t == ROUTE_HEALTHZ || t == ROUTE_LIVEZ || t == ROUTE_READYZ || t == ROUTE_VERSION ||
           t == ROUTE_HANDLER || t == ROUTE_UI;
}

bool kf_api_request_authenticated(struct api_request *req)
{
    struct kf_api *api = req->api;
    const char *h = kf_api_header(req, MHD_HTTP_HEADER_AUTHORIZATION), *user;
    enum api_role role;
    bool ok;

    pthread_rwlock_rdlock(&api->tokens_lock);
    ok = !api->tokens;
    if (!ok && h && strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
        while (*h == ' ')
            h++;
        ok = kf_api_tokens_find(api->tokens, h, &user, &role);
    }
    pthread_rwlock_unlock(&api->tokens_lock);
    return ok;
}

static int authenticate(struct api_request *req)
{
    struct kf_api *api = req->api;
    const char *h, *token, *user;
    enum api_role role;
    bool found;

    pthread_rwlock_rdlock(&api->tokens_lock);
    if (!api->tokens || route_is_open(req->route)) {
        pthread_rwlock_unlock(&api->tokens_lock);
        return 0;
    }
    h = kf_api_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        pthread_rwlock_unlock(&api->tokens_lock);
        kf_api_reply_statusf(req, -KF_EUNAUTHORIZED,
                             "this request needs a bearer token (Authorization: Bearer TOKEN; "
                             "tokens are listed in kfleetd's --token-file)");
        return -KF_EUNAUTHORIZED;
    }
    token = h + 7;
    while (*token == ' ')
        token++;
    found = kf_api_tokens_find(api->tokens, token, &user, &role);
    if (found) {
        req->user = kf_xstrdup(user);
        req->role = role;
    }
    pthread_rwlock_unlock(&api->tokens_lock);
    if (!found) {
        kf_api_reply_statusf(req, -KF_EUNAUTHORIZED,
                             "the bearer token is not valid (not in kfleetd's --token-file)");
        return -KF_EUNAUTHORIZED;
    }
    return 0;
}

/* An agent token bound to a host (user "host:NAME") changes that Host
 * only. What it may change in it, which Host it may create and whose
 * members' status it may write need the body or the stored object:
 * api-objects.c checks those (host_bound_create, host_bound_check). */
static int host_bound_allows(struct api_request *req)
{
    const char *bound = kf_api_user_host(req->user);

    if (!bound || req->role != API_ROLE_AGENT || req->kind != &kf_kind_host || !req->name ||
        (req->verb != API_VERB_UPDATE && req->verb != API_VERB_PATCH) ||
        strcmp(bound, req->name) == 0)
        return 0;
    kf_api_reply_statusf(req, -KF_EFORBIDDEN,
                         "user \"%s\" may change host \"%s\" only, not \"%s\" (an agent token "
                         "bound to a host)",
                         req->user, bound, req->name);
    return -KF_EFORBIDDEN;
}

static int authorize(struct api_request *req)
{
    const char *sub = req->route == ROUTE_STATUS ? "status" : NULL;
    struct kf_strbuf roles = KF_STRBUF_INIT, what = KF_STRBUF_INIT;

    if (req->user && req->route == ROUTE_ACTION) {
        if (kf_api_action_allows(req->action, req->role, &roles)) {
            kf_strbuf_release(&roles);
            return 0;
        }
        kf_api_reply_statusf(req, -KF_EFORBIDDEN,
                             "user \"%s\" (role %s) may not %s %s: that needs role %s", req->user,
                             kf_api_role_name(req->role), kf_api_action_method(req->action),
                             req->path, roles.buf);
        kf_strbuf_release(&roles);
        return -KF_EFORBIDDEN;
    }
    if (!req->user || !req->kind)
        return 0; /* authentication off, or a non-resource path (any role) */
    if (kf_api_role_allows(req->role, req->verb, req->kind, sub))
        return host_bound_allows(req);
    kf_api_roles_allowing(req->verb, req->kind, sub, &roles);
    kf_api_resource_name(req->kind, &what);
    if (sub)
        kf_strbuf_addf(&what, "/%s", sub);
    kf_api_reply_statusf(
        req, -KF_EFORBIDDEN, "user \"%s\" (role %s) may not %s %s%s%s%s: that needs role %s",
        req->user, kf_api_role_name(req->role), kf_api_verb_name(req->verb), what.buf,
        req->name ? " \"" : "", req->name ? req->name : "", req->name ? "\"" : "", roles.buf);
    kf_strbuf_release(&roles);
    kf_strbuf_release(&what);
    return -KF_EFORBIDDEN;
}

static bool method_writes(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0 ||
           strcmp(m, "DELETE") == 0;
}

/* What keeps web pages out (api-origin.c): Host on every request; Origin
 * and the body's Content-Type on writes. Before routing, so a foreign page
 * learns nothing, not even which kinds exist. */
static int check_cross_site(struct api_request *req)
{
    const char *host = kf_api_header(req, MHD_HTTP_HEADER_HOST);
    const char *origin, *cl, *te;
    char type[64];
    uint64_t len = 0;

    if (!kf_api_host_header_allowed(host, req->api->host, req->api->server_names)) {
        kf_api_reply_status_http(req, 421, "MisdirectedRequest",
                                 "kfleetd is not served under this Host name; name it by address, "
                                 "or add the name with kfleetd --server-name");
        return -EPERM;
    }
    if (!method_writes(req->method))
        return 0;
    origin = kf_api_header(req, "Origin");
    if (origin && !kf_api_origin_same(origin, host)) {
        kf_api_reply_statusf(req, -KF_EFORBIDDEN,
                             "a write from origin \"%.200s\" is refused: kfleetd accepts writes "
                             "from programs and its own origin only",
                             origin);
        return -KF_EFORBIDDEN;
    }
    cl = kf_api_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    te = kf_api_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if ((cl && (kf_parse_uint64(cl, &len) < 0 || len > 0)) || te) {
        kf_api_media_type(kf_api_header(req, MHD_HTTP_HEADER_CONTENT_TYPE), type, sizeof(type));
        if (!kf_api_write_type_accepted(type)) {
            kf_api_reply_statusf(req, -KF_EMEDIATYPE,
                                 "a request body needs Content-Type application/json (or a patch "
                                 "type: application/merge-patch+json, application/json-patch+json)"
                                 "%s%s%s",
                                 type[0] ? "; got \"" : "", type, type[0] ? "\"" : "");
            return -KF_EMEDIATYPE;
        }
    }
    return 0;
}

/* A handler's own authentication, before its body is read. */
static int handler_auth(struct api_request *req)
{
    const struct api_handler *h;
    struct kf_strbuf resp = KF_STRBUF_INIT;
    int status;

    if (req->route != ROUTE_HANDLER || !req->api->handlers[req->handler].auth)
        return 0;
    h = &req->api->handlers[req->handler];
    status = h->auth(h->arg, req->method, req->path + strlen(h->prefix),
                     kf_api_header(req, MHD_HTTP_HEADER_AUTHORIZATION), &resp);
    if (status == 0) {
        kf_strbuf_release(&resp);
        return 0;
    }
    kf_api_reply(req, (unsigned int)status, "application/json", &resp);
    kf_strbuf_release(&resp);
    return -EPERM;
}

/* The first call: everything that can be decided before the body. */
static int request_begin(struct api_request *req)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *cl;
    int r;

    if (req->uri_too_long) {
        kf_api_reply_status_http(req, MHD_HTTP_URI_TOO_LONG, "RequestURITooLong",
                                 "the request target is longer than the server accepts");
        return -E2BIG;
    }
    r = kf_api_parse_uri(req->raw_uri, &req->path, &req->query, &err);
    if (r < 0) {
        req->path = kf_xstrdup("");
        kf_api_reply_status(req, -KF_EBADREQUEST, err.buf, NULL);
        kf_strbuf_release(&err);
        return r;
    }
    if (req->path[0] != '/') {
        kf_api_reply_statusf(req, -KF_EBADREQUEST, "the request target must start with '/'");
        return -KF_EBADREQUEST;
    }
    r = check_client_connections(req);
    if (r < 0)
        return r;
    r = check_cross_site(req);
    if (r < 0)
        return r;
    r = route(req);
    if (r < 0)
        return r;
    r = choose_verb(req);
    if (r < 0)
        return r;
    r = authenticate(req);
    if (r < 0)
        return r;
    r = authorize(req);
    if (r < 0)
        return r;
    r = handler_auth(req);
    if (r < 0)
        return r;
    cl = kf_api_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        uint64_t n;

        if (kf_parse_uint64(cl, &n) == 0 && n > req->api->cfg.max_body) {
            /* Within reason the body is read and dropped, so that the
             * client, which is still sending it, gets to read the 413
             * (answering now would close the connection under it). */
            if (n <= API_DISCARD_MAX) {
                req->body_too_large = true;
                return 0;
            }
            __atomic_add_fetch(&req->api->body_rejections, 1, __ATOMIC_RELAXED);
            kf_api_reply_statusf(req, -KF_ETOOLARGE,
                                 "the request body has %llu bytes; the limit is %zu",
                                 (unsigned long long)n, req->api->cfg.max_body);
            return -KF_ETOOLARGE;
        }
    }
    return 0;
}

static int serve_readyz(struct api_request *req)
{
    struct kf_store_status st;
    bool detail;
    int r;

    if (__atomic_load_n(&req->api->stopping, __ATOMIC_RELAXED))
        return kf_api_reply_text(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down\n");
    /* /readyz is open (load balancers probe it without a token): the
     * store's URL and the leader's name are for authenticated clients. */
    detail = kf_api_request_authenticated(req);
    r = kf_store_status(req->api->store, &st);
    if (r < 0) {
        char *msg = detail ? kf_xasprintf("store \"%s\" is not reachable: %s\n",
                                          kf_store_url(req->api->store), strerror(-r))
                           : kf_xstrdup("not ok\n");

        r = kf_api_reply_text(req, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
        free(msg);
        return r;
    }
    if (detail && req->api->ready_detail) {
        struct kf_strbuf body = KF_STRBUF_INIT;

        kf_strbuf_addstr(&body, "ok\n");
        req->api->ready_detail(req->api->ready_detail_arg, &body);
        r = kf_api_reply_text(req, MHD_HTTP_OK, body.buf);
        kf_strbuf_release(&body);
        return r;
    }
    return kf_api_reply_text(req, MHD_HTTP_OK, "ok\n");
}

void kf_api_set_ready_detail(struct kf_api *api, void (*fn)(void *arg, struct kf_strbuf *out),
                             void *arg)
{
    api->ready_detail = fn;
    api->ready_detail_arg = arg;
}

static int serve_metrics(struct api_request *req)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    int r;

    kf_metrics_write(req->api->metrics, &body);
    r = kf_api_reply(req, MHD_HTTP_OK, KF_METRICS_CONTENT_TYPE, &body);
    kf_strbuf_release(&body);
    return r;
}

static int serve_handler(struct api_request *req)
{
    const struct api_handler *h = &req->api->handlers[req->handler];
    struct kf_strbuf resp = KF_STRBUF_INIT;
    int status, r;

    status = h->fn(h->arg, req->method, req->path + strlen(h->prefix),
                   kf_api_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
                   req->body.buf ? req->body.buf : "", req->body.len, &resp);
    r = kf_api_reply(req, (unsigned int)status, "application/json", &resp);
    kf_strbuf_release(&resp);
    return r;
}

int kf_api_add_handler(struct kf_api *api, const char *prefix, const char *resource,
                       kf_api_handler_auth_fn auth, kf_api_handler_fn fn, void *arg)
{
    size_t len = prefix ? strlen(prefix) : 0;

    if (len < 3 || prefix[0] != '/' || prefix[len - 1] != '/' || !fn || !resource ||
        kf_str_has_prefix(prefix, "/api/") || kf_str_has_prefix(prefix, "/apis/"))
        return -EINVAL;
    if (api->n_handlers == KF_API_MAX_HANDLERS)
        return -ENOSPC;
    for (size_t i = 0; i < api->n_handlers; i++)
        if (strcmp(api->handlers[i].prefix, prefix) == 0)
            return -EEXIST;
    api->handlers[api->n_handlers].prefix = kf_xstrdup(prefix);
    api->handlers[api->n_handlers].resource = kf_xstrdup(resource);
    api->handlers[api->n_handlers].fn = fn;
    api->handlers[api->n_handlers].auth = auth;
    api->handlers[api->n_handlers].arg = arg;
    api->n_handlers++;
    return 0;
}

static int dispatch(struct api_request *req)
{
    switch (req->route) {
    case ROUTE_HANDLER:
        return serve_handler(req);
    case ROUTE_HEALTHZ:
    case ROUTE_LIVEZ:
        return kf_api_reply_text(req, MHD_HTTP_OK, "ok\n");
    case ROUTE_READYZ:
        return serve_readyz(req);
    case ROUTE_METRICS:
        return serve_metrics(req);
    case ROUTE_ACTION:
        return kf_api_serve_action(req);
    case ROUTE_UI:
    case ROUTE_UI_SESSION:
        return kf_api_serve_ui(req);
    case ROUTE_COLLECTION:
    case ROUTE_OBJECT:
    case ROUTE_STATUS:
        if (req->verb == API_VERB_WATCH)
            return kf_api_serve_watch(req);
        return kf_api_serve_object(req);
    default:
        return kf_api_serve_discovery(req);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct kf_api *api = cls;
    struct api_request *req = *con_cls;

    if (!req) {
        /* no URI log callback ran (cannot happen with this daemon's options) */
        req = uri_log_cb(api, url, conn);
        *con_cls = req;
    }
    if (!req->started) {
        req->started = true;
        req->conn = conn;
        req->method = method;
        request_begin(req);
        return MHD_YES;
    }
    if (*upload_size) {
        /* libmicrohttpd 0.9.75 cannot answer in the middle of a body: past
         * the cap the rest is read and dropped, and 413 is answered at its
         * end. A client that keeps sending far past it is cut off. */
        if (!req->replied && !req->body_too_large &&
            kf_strbuf_add(&req->body, upload, *upload_size) < 0) {
            req->body_too_large = true;
            kf_strbuf_release(&req->body);
        }
        if (req->body_too_large) {
            req->discarded += *upload_size;
            if (req->discarded > API_DISCARD_MAX) {
                __atomic_add_fetch(&api->body_rejections, 1, __ATOMIC_RELAXED);
                req->status = MHD_HTTP_CONTENT_TOO_LARGE;
                return MHD_NO;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->body_too_large && !req->replied) {
        __atomic_add_fetch(&api->body_rejections, 1, __ATOMIC_RELAXED);
        kf_api_reply_statusf(req, -KF_ETOOLARGE,
                             "the request body is larger than the limit of %zu bytes",
                             api->cfg.max_body);
        return MHD_YES;
    }
    if (req->replied)
        return MHD_YES;
    dispatch(req);
    if (!req->replied)
        kf_api_reply_statusf(req, -EIO, "internal error: the request was not answered");
    return MHD_YES;
}

/* --- start and stop ------------------------------------------------- */

int kf_api_start(struct kf_api *api, struct kf_strbuf *err)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    unsigned int flags;
    const union MHD_DaemonInfo *info;
    struct MHD_OptionItem tls_opts[] = {
        { MHD_OPTION_HTTPS_MEM_CERT, 0, api->tls_cert },
        { MHD_OPTION_HTTPS_MEM_KEY, 0, api->tls_key },
        { MHD_OPTION_END, 0, NULL },
    };
    int gai;

    gai = getaddrinfo(api->host, NULL, &hints, &res);
    if (gai != 0 || !res)
        return kf_err(err, -EINVAL, "cannot resolve listen host \"%s\": %s", api->host,
                      gai_strerror(gai));
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(api->port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(api->port);

    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (api->tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
            return kf_err(err, -ENOTSUP, "this libmicrohttpd was built without HTTPS support");
        flags |= MHD_USE_TLS;
    }
    api->mhd = MHD_start_daemon(
        flags, api->port, accept_policy, api, on_request, api, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_logger, api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_ARRAY,
        api->tls_cert ? tls_opts : tls_opts + 2, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)api->cfg.threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)api->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)api->cfg.connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)API_MEMORY_LIMIT, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, api, MHD_OPTION_NOTIFY_COMPLETED, completed_cb,
        api, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, api, MHD_OPTION_END);
    if (!api->mhd)
        return kf_err(err, -EADDRINUSE,
                      "cannot listen on \"%s\" (address in use, not local, no permission%s)",
                      api->listen,
                      api->tls_cert ? ", or a certificate and key that do not load" : "");
    info = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_BIND_PORT);
    api->bound_port = info ? info->port : api->port;
    return 0;
}

/* No MHD_quiesce_daemon here: with epoll and a thread pool it races with
 * the workers, which take the listen socket out of their epoll sets on
 * their own once the daemon is quiesced; the loser's epoll_ctl fails with
 * ENOENT and libmicrohttpd 0.9.75 calls MHD_PANIC, so a SIGTERM now and
 * then ended kfleetd with SIGABRT instead of exit 0. Nothing needs it: a
 * connection accepted while we stop gets 503 for a watch (and for
 * /readyz), other requests are answered as usual, and MHD_stop_daemon
 * closes the listen socket and every connection. */
void kf_api_stop(struct kf_api *api)
{
    if (!api || !api->mhd)
        return;
    __atomic_store_n(&api->stopping, true, __ATOMIC_SEQ_CST);
    kf_api_watchers_stop(api);
    MHD_stop_daemon(api->mhd);
    api->mhd = NULL;
}

void kf_api_free(struct kf_api *api)
{
    if (!api)
        return;
    kf_api_stop(api);
    kf_api_watchers_free(api);
    kf_api_discovery_free(api);
    kf_api_actions_free(api);
    kf_api_tokens_free(api->tokens);
    kf_api_ui_close(api);
    kf_metrics_free(api->own_metrics);
    free(api->probes[0]);
    free(api->probes[1]);
    pthread_rwlock_destroy(&api->tokens_lock);
    pthread_rwlock_destroy(&api->actions_lock);
    pthread_mutex_destroy(&api->docs_lock);
    pthread_mutex_destroy(&api->clients_lock);
    kf_smap_release(&api->conns_by_client);
    kf_smap_release(&api->watches_by_user);
    free(api->listen);
    free(api->token_file);
    free(api->server_names);
    free(api->tls_cert);
    if (api->tls_key) {
        explicit_bzero(api->tls_key, strlen(api->tls_key));
        free(api->tls_key);
    }
    free(api->host);
    for (size_t i = 0; i < api->n_handlers; i++) {
        free(api->handlers[i].prefix);
        free(api->handlers[i].resource);
    }
    free(api);
}
