/* base-http.c: kfleet's HTTP client over libcurl (http.h).
 *
 * What the agent, the CLI, kfleetd's controllers and monitoring, the alert
 * receiver adapter, the runner's prober and the etcd client each used to
 * write for themselves: the options every request sets, method and body,
 * a capped response buffer, streams split into lines, and one mapping of
 * curl's results to errno. Each caller keeps what is its own (replica
 * failover, messages for users, destination checks, multi handles).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/http.h"
#include "kfleet/strbuf.h"

struct kf_http {
    CURL *curl;
};

void kf_http_setup(CURL *c, const char *url, const struct kf_http_opts *o)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (o->errbuf) {
        o->errbuf[0] = '\0';
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, o->errbuf);
    }
    if (o->user_agent)
        curl_easy_setopt(c, CURLOPT_USERAGENT, o->user_agent);
    if (o->protocols)
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->protocols);
    if (o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    if (o->cert_file)
        curl_easy_setopt(c, CURLOPT_SSLCERT, o->cert_file);
    if (o->key_file)
        curl_easy_setopt(c, CURLOPT_SSLKEY, o->key_file);
    if (o->connect_timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    if (o->timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    if (o->tcp_keepalive) {
        curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
        if (o->keepalive_idle_s > 0)
            curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, o->keepalive_idle_s);
        if (o->keepalive_intvl_s > 0)
            curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, o->keepalive_intvl_s);
    }
    if (o->no_proxy)
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (o->http11)
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (o->open_socket) {
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, o->open_socket);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, o->open_socket_data);
    }
}

void kf_http_set_method(CURL *c, const char *method, const char *body, size_t len)
{
    if (!method)
        method = "GET";
    if (strcmp(method, "GET") == 0 && !body) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
}

struct curl_slist *kf_http_header(struct curl_slist *list, const char *fmt, ...)
{
    struct curl_slist *l;
    va_list ap;
    char *line;

    va_start(ap, fmt);
    line = kf_xvasprintf(fmt, ap);
    va_end(ap);
    l = curl_slist_append(list, line);
    memset(line, 0, strlen(line));
    free(line);
    if (!l)
        kf_abort("out of memory");
    return l;
}

size_t kf_http_write_strbuf(char *data, size_t size, size_t nmemb, void *sb)
{
    return kf_strbuf_add(sb, data, size * nmemb) < 0 ? 0 : size * nmemb;
}

int kf_http_errno(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    case CURLE_ABORTED_BY_CALLBACK:
        return -ECANCELED;
    case CURLE_WRITE_ERROR:
        return -E2BIG;
    default:
        return -EIO;
    }
}

struct kf_http *kf_http_new(void)
{
    struct kf_http *h = kf_xcalloc(1, sizeof(*h));

    h->curl = curl_easy_init();
    if (!h->curl)
        kf_abort("cannot initialize libcurl");
    return h;
}

void kf_http_free(struct kf_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
}

CURL *kf_http_easy(struct kf_http *h)
{
    return h->curl;
}

/* ---- one transfer ---- */

struct xfer {
    const struct kf_http_req *req;
    CURL *curl;
    bool stopped;
};

static size_t write_truncated(char *data, size_t size, size_t nmemb, void *arg)
{
    struct kf_strbuf *sb = arg;
    size_t n = size * nmemb;

    if (sb->len < sb->cap)
        kf_strbuf_add(sb, data, KF_MIN(n, sb->cap - sb->len));
    return n;
}

static size_t write_dropped(char *data, size_t size, size_t nmemb, void *arg)
{
    (void)data, (void)arg;
    return size * nmemb;
}

/* Splits the body into lines for req->line (see http.h). */
static size_t write_lines(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    struct kf_strbuf *pending = x->req->resp;
    size_t n = size * nmemb;

    if (x->req->line_2xx_only) {
        long status = 0;

        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status >= 300)
            return kf_strbuf_add(pending, data, n) < 0 ? 0 : n;
    }
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(data + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - data) : n;

        if (kf_strbuf_add(pending, data + i, end - i) < 0)
            return 0; /* a line longer than its cap: give up */
        if (!nl)
            break;
        if (pending->len > 0 && x->req->line(x->req->line_ctx, pending->buf, pending->len) != 0) {
            x->stopped = true;
            return 0;
        }
        kf_strbuf_reset(pending);
        i = end + 1;
    }
    return n;
}

static int stop_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    const volatile bool *stop = arg;

    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return *stop ? 1 : 0;
}

static void set_receive(CURL *c, const struct kf_http_req *req, struct xfer *x)
{
    if (req->line) {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_lines);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    } else if (req->resp) {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION,
                         req->resp_truncate ? write_truncated : kf_http_write_strbuf);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, req->resp);
    } else {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_dropped);
    }
    if (req->stop) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, stop_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, req->stop);
    }
    if (req->idle_s > 0) {
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req->idle_s);
    }
}

int kf_http_request(struct kf_http *h, const struct kf_http_opts *opts,
                    const struct kf_http_req *req, struct kf_http_result *ret)
{
    struct kf_http_opts o = *opts;
    struct xfer x = { .req = req, .curl = h->curl };
    CURL *c = h->curl;

    kf_assert(!req->line || req->resp);
    memset(ret, 0, sizeof(*ret));
    curl_easy_reset(c);
    o.errbuf = ret->error;
    kf_http_setup(c, req->url, &o);
    kf_http_set_method(c, req->method, req->body, req->body_len);
    if (req->headers)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, req->headers);
    set_receive(c, req, &x);
    ret->code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ret->status);
    curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &ret->request_size);
    ret->stopped = x.stopped;
    if (opts->errbuf)
        snprintf(opts->errbuf, CURL_ERROR_SIZE, "%s", ret->error);
    if (ret->code == CURLE_OK || (ret->code == CURLE_WRITE_ERROR && x.stopped))
        return 0;
    if (!ret->error[0])
        snprintf(ret->error, sizeof(ret->error), "%s", curl_easy_strerror(ret->code));
    return kf_http_errno(ret->code);
}
