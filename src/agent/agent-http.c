/* agent-http.c: how kfleet-agent talks to kfleetd (agent.h).
 *
 * One libcurl easy handle per client, so consecutive requests of the main
 * loop reuse one keep-alive connection; the watch thread has a client of
 * its own. Bodies are JSON both ways. Timeouts are short (connect 3 s,
 * request 15 s): an agent whose kfleetd is gone must notice soon and keep
 * its members running while it retries. Proxies from the environment are
 * ignored, as the agent talks only to the servers it was told about.
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
#include <curl/curl.h>

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
    CURL *curl;
    char **servers; /* without trailing '/' */
    size_t n_servers;
    size_t cur;         /* the one in use */
    const char *server; /* servers[cur] */
    char *auth;         /* "Authorization: Bearer ..." or NULL */
    char *ca_file;
    char errbuf[CURL_ERROR_SIZE];
};

struct kf_agent_http *kf_agent_http_new(const char *server, const char *token, const char *ca_file)
{
    struct kf_agent_http *h = kf_xcalloc(1, sizeof(*h));
    const char *p = server;

    h->curl = curl_easy_init();
    if (!h->curl)
        kf_abort("cannot initialize libcurl");
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
        h->auth = kf_xasprintf("Authorization: Bearer %s", token);
    if (ca_file)
        h->ca_file = kf_xstrdup(ca_file);
    return h;
}

void kf_agent_http_free(struct kf_agent_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    for (size_t i = 0; i < h->n_servers; i++)
        free(h->servers[i]);
    free(h->servers);
    free(h->auth);
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

static size_t write_body(char *data, size_t size, size_t nmemb, void *user)
{
    if (kf_strbuf_add(user, data, size * nmemb) < 0)
        return 0;
    return size * nmemb;
}

static struct curl_slist *prepare(struct kf_agent_http *h, const char *path,
                                  const char *content_type)
{
    CURL *c = h->curl;
    struct curl_slist *hdrs = NULL;
    char *url = kf_xasprintf("%s%s", h->server, path);

    curl_easy_reset(c);
    h->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kfleet-agent/" KF_VERSION);
    if (h->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (h->auth)
        hdrs = curl_slist_append(hdrs, h->auth);
    if (content_type) {
        char *ct = kf_xasprintf("Content-Type: %s", content_type);

        hdrs = curl_slist_append(hdrs, ct);
        free(ct);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    return hdrs;
}

static int curl_errno(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_ABORTED_BY_CALLBACK:
        return -ECANCELED;
    case CURLE_WRITE_ERROR:
        return -E2BIG;
    default:
        return -EIO;
    }
}

static void status_message(const json_t *j, const char *body, long code, struct kf_strbuf *err)
{
    const char *msg = kf_json_str(j, "message", NULL);

    if (msg)
        kf_err(err, 0, "HTTP %ld: %s", code, msg);
    else
        kf_err(err, 0, "HTTP %ld: %.200s", code, body);
}

int kf_agent_http_do(struct kf_agent_http *h, const char *method, const char *path,
                     const char *content_type, const json_t *body, json_t **ret_json,
                     struct kf_strbuf *err)
{
    struct kf_strbuf resp = KF_STRBUF_INIT;
    struct curl_slist *hdrs;
    char *payload = NULL;
    size_t len = 0;
    json_t *j = NULL;
    CURLcode cc;
    long code = 0;

    resp.cap = RESPONSE_MAX;
    if (body)
        payload = kf_json_dump(body, &len);
    /* Refused connections: every replica once, starting with the current. */
    for (size_t tried = 1;; tried++) {
        hdrs = prepare(h, path, body ? (content_type ? content_type : "application/json") : NULL);
        curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
        curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, method);
        if (body) {
            curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, payload);
            curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        } else if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, "");
        }
        curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, write_body);
        curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &resp);
        cc = curl_easy_perform(h->curl);
        curl_slist_free_all(hdrs);
        if (cc != CURLE_COULDNT_CONNECT || tried >= h->n_servers)
            break;
        next_server(h);
        kf_strbuf_reset(&resp);
    }
    free(payload);
    if (cc != CURLE_OK) {
        int r = curl_errno(cc);

        kf_err(err, r, "%s %s%s: %s", method, h->server, path,
               h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
        kf_strbuf_release(&resp);
        next_server(h);
        return r;
    }
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
    if (resp.len)
        kf_json_parse(resp.buf, resp.len, &j, NULL);
    if (code >= 400)
        status_message(j, resp.buf, code, err);
    if (server_unavailable(code))
        next_server(h);
    if (ret_json)
        *ret_json = j;
    else
        json_decref(j);
    kf_strbuf_release(&resp);
    return (int)code;
}

struct stream_ctx {
    struct kf_strbuf line;
    int (*fn)(void *ctx, const char *s, size_t n);
    void *ctx;
    const volatile bool *stop;
    bool done;
    long code;
    CURL *curl;
};

static size_t write_stream(char *data, size_t size, size_t nmemb, void *user)
{
    struct stream_ctx *sc = user;
    size_t n = size * nmemb;

    if (!sc->code)
        curl_easy_getinfo(sc->curl, CURLINFO_RESPONSE_CODE, &sc->code);
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n') {
            if (kf_strbuf_addch(&sc->line, data[i]) < 0)
                return 0;
            continue;
        }
        if (sc->line.len && sc->fn(sc->ctx, sc->line.buf, sc->line.len) != 0) {
            sc->done = true;
            return 0;
        }
        kf_strbuf_reset(&sc->line);
    }
    return n;
}

static int stream_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                           curl_off_t ulnow)
{
    struct stream_ctx *sc = user;

    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return sc->stop && *sc->stop ? 1 : 0;
}

int kf_agent_http_stream(struct kf_agent_http *h, const char *path, int idle_s,
                         int (*line)(void *ctx, const char *s, size_t n), void *ctx,
                         const volatile bool *stop, struct kf_strbuf *err)
{
    struct stream_ctx sc = { .fn = line, .ctx = ctx, .stop = stop, .curl = h->curl };
    struct curl_slist *hdrs;
    CURLcode cc;
    long code = 0;

    kf_strbuf_init(&sc.line, 0);
    sc.line.cap = STREAM_LINE_MAX;
    hdrs = prepare(h, path, NULL);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, write_stream);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &sc);
    curl_easy_setopt(h->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h->curl, CURLOPT_XFERINFOFUNCTION, stream_progress);
    curl_easy_setopt(h->curl, CURLOPT_XFERINFODATA, &sc);
    /* A watch is quiet at times, but kfleetd sends bookmarks: silence this
     * long means the connection is dead. */
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_TIME, (long)idle_s);
    cc = curl_easy_perform(h->curl);
    curl_slist_free_all(hdrs);
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
    kf_strbuf_release(&sc.line);
    if (sc.done || (cc == CURLE_ABORTED_BY_CALLBACK && stop && *stop))
        return code ? (int)code : -ECANCELED;
    if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && sc.done)) {
        int r = curl_errno(cc);

        kf_err(err, r, "GET %s%s: %s", h->server, path,
               h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
        next_server(h);
        return r;
    }
    if (code >= 400)
        kf_err(err, 0, "GET %s%s: HTTP %ld", h->server, path, code);
    if (server_unavailable(code))
        next_server(h);
    return (int)code;
}
