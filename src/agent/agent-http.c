/* agent-http.c: how kfleet-agent talks to kfleetd (agent.h).
 *
 * One libcurl easy handle per client, so consecutive requests of the main
 * loop reuse one keep-alive connection; the watch thread has a client of
 * its own. Bodies are JSON both ways. Timeouts are short (connect 3 s,
 * request 15 s): an agent whose kfleetd is gone must notice soon and keep
 * its members running while it retries. Proxies from the environment are
 * ignored, as the agent talks only to the servers it was told about. The
 * HTTP client itself is base's (http.h).
 *
 * Replicas: --server may list several kfleetd replicas of one fleet
 * (comma-separated; any replica serves reads, writes and watches). A client
 * uses one at a time and moves to the next when the one it uses fails: a
 * transport error or 502/503/504 (a replica stopping answers 503). A
 * request whose connection was refused never reached a server, so it is
 * tried at once on the next ones; any other failure is returned as it is
 * (the request may have been done) and only the next request goes
 * elsewhere, which keeps a non-idempotent request from running twice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kfleet/http.h"
#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

KF_LOG_MODULE(agent_http);

#define RESPONSE_MAX       (64u * 1024 * 1024)
#define STREAM_LINE_MAX    (4u * 1024 * 1024)
#define CONNECT_TIMEOUT_MS 3000L
#define REQUEST_TIMEOUT_MS 15000L

struct kf_agent_http {
    struct kf_http *http;
    char **servers; /* without trailing '/' */
    size_t n_servers;
    size_t cur;         /* the one in use */
    const char *server; /* servers[cur] */
    char *token;        /* bearer token or NULL */
    char *ca_file;
};

struct kf_agent_http *kf_agent_http_new(const char *server, const char *token, const char *ca_file)
{
    struct kf_agent_http *h = kf_xcalloc(1, sizeof(*h));
    const char *p = server;

    h->http = kf_http_new();
    for (;;) {
        size_t n = strcspn(p, ",");
        size_t len = n;

        while (len > 0 && p[len - 1] == '/')
            len--;
        if (len > 0) {
            h->servers = kf_xrealloc(h->servers, (h->n_servers + 1) * sizeof(*h->servers));
            h->servers[h->n_servers++] = kf_xstrndup(p, len);
        }
        if (!p[n])
            break;
        p += n + 1;
    }
    if (!h->n_servers) {
        h->servers = kf_xcalloc(1, sizeof(*h->servers));
        h->servers[h->n_servers++] = kf_xstrdup("");
    }
    h->server = h->servers[0];
    if (token && *token)
        h->token = kf_xstrdup(token);
    if (ca_file)
        h->ca_file = kf_xstrdup(ca_file);
    return h;
}

void kf_agent_http_free(struct kf_agent_http *h)
{
    if (!h)
        return;
    kf_http_free(h->http);
    for (size_t i = 0; i < h->n_servers; i++)
        free(h->servers[i]);
    free(h->servers);
    free(h->token);
    free(h->ca_file);
    free(h);
}

const char *kf_agent_http_server(const struct kf_agent_http *h)
{
    return h->server;
}

/* After a failure: the next request goes to the next replica. */
static void next_server(struct kf_agent_http *h)
{
    if (h->n_servers < 2)
        return;
    h->cur = (h->cur + 1) % h->n_servers;
    kf_log_info("kfleetd at %s failed; next: %s", h->server, h->servers[h->cur]);
    h->server = h->servers[h->cur];
}

static bool server_unavailable(long code)
{
    return code == 502 || code == 503 || code == 504;
}

static struct curl_slist *headers(const struct kf_agent_http *h, const char *content_type)
{
    struct curl_slist *hdrs = kf_http_header(NULL, "Accept: application/json");

    if (h->token)
        hdrs = kf_http_header(hdrs, "Authorization: Bearer %s", h->token);
    if (content_type)
        hdrs = kf_http_header(hdrs, "Content-Type: %s", content_type);
    return hdrs;
}

/* What every request to kfleetd sets; timeout_ms 0 for streams. */
static struct kf_http_opts options(const struct kf_agent_http *h, long timeout_ms)
{
    return (struct kf_http_opts){
        .user_agent = "kfleet-agent/" KF_VERSION,
        .ca_file = h->ca_file,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .timeout_ms = timeout_ms,
        .tcp_keepalive = true,
        .no_proxy = true,
    };
}

static void status_message(const json_t *j, const char *body, long code, struct kf_strbuf *err)
{
    const char *msg = kf_json_str(j, "message", NULL);

    if (msg)
        kf_err(err, 0, "HTTP %ld: %s", code, msg);
    else
        kf_err(err, 0, "HTTP %ld: %.200s", code, body);
}

/* One request to the current replica, and to the next ones while the
 * connection is refused (every replica once, starting with the current). */
static int request_failover(struct kf_agent_http *h, struct kf_http_req *req, const char *path,
                            struct kf_http_result *res)
{
    int r;

    for (size_t tried = 1;; tried++) {
        char *url = kf_xasprintf("%s%s", h->server, path);
        struct kf_http_opts o = options(h, REQUEST_TIMEOUT_MS);

        req->url = url;
        r = kf_http_request(h->http, &o, req, res);
        free(url);
        req->url = NULL;
        if (res->code != CURLE_COULDNT_CONNECT || tried >= h->n_servers)
            return r;
        next_server(h);
        kf_strbuf_reset(req->resp);
    }
}

int kf_agent_http_do(struct kf_agent_http *h, const char *method, const char *path,
                     const char *content_type, const json_t *body, json_t **ret_json,
                     struct kf_strbuf *err)
{
    struct kf_strbuf resp = KF_STRBUF_INIT;
    struct kf_http_req req = { .method = method, .resp = &resp };
    struct kf_http_result res;
    char *payload = NULL;
    json_t *j = NULL;
    int r;

    resp.cap = RESPONSE_MAX;
    if (body) {
        payload = kf_json_dump(body, &req.body_len);
        req.body = payload;
    } else if (strcmp(method, "POST") == 0) {
        req.body = "";
    }
    req.headers = headers(h, body ? (content_type ? content_type : "application/json") : NULL);
    r = request_failover(h, &req, path, &res);
    curl_slist_free_all(req.headers);
    free(payload);
    if (r < 0) {
        kf_err(err, r, "%s %s%s: %s", method, h->server, path, res.error);
        kf_strbuf_release(&resp);
        next_server(h);
        return r;
    }
    if (resp.len)
        kf_json_parse(resp.buf, resp.len, &j, NULL);
    if (res.status >= 400)
        status_message(j, resp.buf, res.status, err);
    if (server_unavailable(res.status))
        next_server(h);
    if (ret_json)
        *ret_json = j;
    else
        json_decref(j);
    kf_strbuf_release(&resp);
    return (int)res.status;
}

int kf_agent_http_stream(struct kf_agent_http *h, const char *path, int idle_s,
                         int (*line)(void *ctx, const char *s, size_t n), void *ctx,
                         const volatile bool *stop, struct kf_strbuf *err)
{
    struct kf_strbuf pending = KF_STRBUF_INIT;
    char *url = kf_xasprintf("%s%s", h->server, path);
    struct kf_http_opts o = options(h, 0);
    /* A watch is quiet at times, but kfleetd sends bookmarks: silence
     * idle_s long means the connection is dead. */
    struct kf_http_req req = {
        .url = url,
        .headers = headers(h, NULL),
        .resp = &pending,
        .line = line,
        .line_ctx = ctx,
        .stop = stop,
        .idle_s = idle_s,
    };
    struct kf_http_result res;
    int r;

    pending.cap = STREAM_LINE_MAX;
    r = kf_http_request(h->http, &o, &req, &res);
    curl_slist_free_all(req.headers);
    free(url);
    kf_strbuf_release(&pending);
    if (res.stopped || (r == -ECANCELED && stop && *stop))
        return res.status ? (int)res.status : -ECANCELED;
    if (r < 0) {
        kf_err(err, r, "GET %s%s: %s", h->server, path, res.error);
        next_server(h);
        return r;
    }
    if (res.status >= 400)
        kf_err(err, 0, "GET %s%s: HTTP %ld", h->server, path, res.status);
    if (server_unavailable(res.status))
        next_server(h);
    return (int)res.status;
}
