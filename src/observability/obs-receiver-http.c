/* obs-receiver-http.c: sends one delivery over libcurl.
 *
 * One easy handle per request: deliveries are rare (a notification every
 * group_interval per group) and each may go to a different host, so there
 * is nothing worth pooling. Only http and https, no redirects (a redirect
 * would carry a signed URL somewhere else), the whole exchange bounded by
 * the timeout, the response body kept up to a cap for classification and
 * the rest read and dropped, through base's HTTP client (http.h). Proxies
 * follow curl's usual environment variables, as data centres that reach
 * DingTalk through a proxy need.
 *
 * Destinations are checked twice (struct kf_obs_destinations): the URL's
 * host before anything is sent, and each address as curl opens a socket
 * to it (CURLOPT_OPENSOCKETFUNCTION), after name resolution, so a name
 * that resolves to 127.0.0.1 or 169.254.169.254 is refused too.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "kfleet/base.h"
#include "kfleet/cidr.h"
#include "kfleet/http.h"
#include "kfleet/obj.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

void kf_obs_response_release(struct kf_obs_response *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* ---- destinations ---- */

#define DEST_MAX_ENTRIES 256

void kf_obs_destinations_release(struct kf_obs_destinations *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_names; i++)
        free(d->names[i]);
    free(d->names);
    free(d->blocks);
    memset(d, 0, sizeof(*d));
}

int kf_obs_destinations_parse(const char *list, struct kf_obs_destinations *d,
                              struct kf_strbuf *err)
{
    const char *p = list ? list : "";

    memset(d, 0, sizeof(*d));
    while (*p) {
        size_t n = strcspn(p, ",");
        char *e = kf_xstrndup(p, n);
        struct kf_cidr c;

        for (char *q = e; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        if (!*e) {
            free(e);
        } else if (d->n_names + d->n_blocks >= DEST_MAX_ENTRIES) {
            free(e);
            kf_obs_destinations_release(d);
            return kf_err(err, -EINVAL, "more than %d destinations", DEST_MAX_ENTRIES);
        } else if (kf_ip_parse(e, &c, NULL) == 0 ||
                   (strchr(e, '/') && kf_cidr_parse(e, &c, NULL) == 0)) {
            d->blocks = kf_xrealloc(d->blocks, (d->n_blocks + 1) * sizeof(*d->blocks));
            d->blocks[d->n_blocks++] = c;
            free(e);
        } else if (kf_name_valid(e[0] == '*' && e[1] == '.' ? e + 2 : e)) {
            d->names = kf_xrealloc(d->names, (d->n_names + 1) * sizeof(*d->names));
            d->names[d->n_names++] = e;
        } else {
            kf_err(err, -EINVAL, "\"%s\" is not a host name, *.domain, IP address or CIDR block",
                   e);
            free(e);
            kf_obs_destinations_release(d);
            return -EINVAL;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

bool kf_obs_destination_named(const struct kf_obs_destinations *d, const char *host)
{
    size_t hl = strlen(host);

    for (size_t i = 0; d && i < d->n_names; i++) {
        const char *n = d->names[i];

        if (n[0] == '*' && n[1] == '.') {
            size_t sl = strlen(n + 1); /* ".domain" */

            if (hl > sl && strcasecmp(host + hl - sl, n + 1) == 0)
                return true;
        } else if (strcasecmp(host, n) == 0) {
            return true;
        }
    }
    return false;
}

static bool in_blocks(const struct kf_obs_destinations *d, const struct kf_cidr *a)
{
    for (size_t i = 0; d && i < d->n_blocks; i++)
        if (kf_cidr_contains(&d->blocks[i], a))
            return true;
    return false;
}

/* Loopback, private, link-local, shared (CGN), unique-local, multicast,
 * unspecified, reserved: nothing a notification should reach unlisted. */
static bool addr_internal(const struct kf_cidr *a)
{
    static const char *const internal[] = {
        "0.0.0.0/8",      "10.0.0.0/8",    "100.64.0.0/10", "127.0.0.0/8",
        "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",  "192.168.0.0/16",
        "198.18.0.0/15",  "224.0.0.0/3",   "::/127",        "::ffff:0:0/96",
        "64:ff9b::/96",   "fc00::/7",      "fe80::/10",     "ff00::/8",
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(internal); i++) {
        struct kf_cidr b;

        if (kf_cidr_parse(internal[i], &b, NULL) == 0 && kf_cidr_contains(&b, a))
            return true;
    }
    return false;
}

static bool cidr_of(int family, const void *addr, struct kf_cidr *ret)
{
    char buf[INET6_ADDRSTRLEN];

    if (!inet_ntop(family, addr, buf, sizeof(buf)))
        return false;
    return kf_ip_parse(buf, ret, NULL) == 0;
}

bool kf_obs_destination_addr_allowed(const struct kf_obs_destinations *d, int family,
                                     const void *addr)
{
    struct kf_cidr a;

    if (!cidr_of(family, addr, &a))
        return false;
    return in_blocks(d, &a) || !addr_internal(&a);
}

int kf_obs_destination_url_check(const struct kf_obs_destinations *d, const char *url,
                                 struct kf_strbuf *err)
{
    CURLU *u = curl_url();
    char *host = NULL;
    struct kf_cidr a;
    bool ip;
    int r = 0;

    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        r = kf_err(err, -EINVAL, "its URL has no host");
        goto free_url;
    }
    if (host[0] == '[') { /* an IPv6 literal */
        size_t n = strlen(host);

        memmove(host, host + 1, n - 1);
        host[n - 2] = '\0';
    }
    if (kf_obs_destination_named(d, host))
        goto free_url;
    ip = kf_ip_parse(host, &a, NULL) == 0;
    if (d && (d->n_names || d->n_blocks)) {
        if (!ip || !in_blocks(d, &a))
            r = kf_err(err, -EACCES,
                       "its destination host \"%s\" is not in kfleetd --alert-destinations", host);
    } else if ((ip && addr_internal(&a)) || strcasecmp(host, "localhost") == 0 ||
               (strlen(host) > 10 && strcasecmp(host + strlen(host) - 10, ".localhost") == 0)) {
        r = kf_err(err, -EACCES,
                   "its destination host \"%s\" is an internal address (list it in kfleetd "
                   "--alert-destinations to allow it)",
                   host);
    }
free_url:
    curl_free(host);
    curl_url_cleanup(u);
    return r;
}

struct dest_ctx {
    const struct kf_obs_destinations *d;
    bool named;       /* the URL's host is listed by name: any address */
    char refused[64]; /* the address refused, if one was */
};

static curl_socket_t open_socket(void *data, curlsocktype purpose, struct curl_sockaddr *sa)
{
    struct dest_ctx *ctx = data;
    const void *addr = NULL;

    (void)purpose;
    if (sa->family == AF_INET)
        addr = &((const struct sockaddr_in *)(const void *)&sa->addr)->sin_addr;
    else if (sa->family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)(const void *)&sa->addr)->sin6_addr;
    if (!ctx->named && (!addr || !kf_obs_destination_addr_allowed(ctx->d, sa->family, addr))) {
        if (!addr || !inet_ntop(sa->family, addr, ctx->refused, sizeof(ctx->refused)))
            snprintf(ctx->refused, sizeof(ctx->refused), "(family %d)", sa->family);
        return CURL_SOCKET_BAD;
    }
    return socket(sa->family, sa->socktype, sa->protocol);
}

/* The URL's host check; 0, or -EACCES with why in ret->error. */
static int check_url_host(const struct kf_obs_delivery *del, struct dest_ctx *ctx,
                          struct kf_obs_response *ret)
{
    CURLU *u = curl_url();
    char *host = NULL;
    int r = 0;

    if (!u || curl_url_set(u, CURLUPART_URL, del->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(ret->error, sizeof(ret->error), "the URL %s cannot be parsed", del->log_url);
        r = -EINVAL;
        goto free_url;
    }
    if (host[0] == '[') { /* an IPv6 literal */
        size_t n = strlen(host);

        memmove(host, host + 1, n - 1);
        host[n - 2] = '\0';
    }
    ctx->named = kf_obs_destination_named(ctx->d, host);
    if (!ctx->named && ctx->d && (ctx->d->n_names || ctx->d->n_blocks)) {
        struct kf_cidr a;

        if (kf_ip_parse(host, &a, NULL) < 0 || !in_blocks(ctx->d, &a)) {
            snprintf(ret->error, sizeof(ret->error),
                     "%s is not an allowed destination (kfleetd --alert-destinations)",
                     del->log_url);
            r = -EACCES;
        }
    }
free_url:
    curl_free(host);
    curl_url_cleanup(u);
    return r;
}

int kf_obs_deliver(const struct kf_obs_delivery *d, const struct kf_obs_destinations *dests,
                   int64_t timeout_ms, struct kf_obs_response *ret)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    struct dest_ctx dctx = { .d = dests };
    const struct kf_http_opts o = {
        .user_agent = "kfleet/" KF_VERSION,
        .protocols = "http,https",
        .timeout_ms = (long)(timeout_ms > 0 ? timeout_ms : 10000),
        .open_socket = open_socket,
        .open_socket_data = &dctx,
    };
    bool get = strcmp(d->method, "GET") == 0;
    struct kf_http_req req = {
        .method = d->method,
        .url = d->url,
        .body = get ? NULL : (d->body ? d->body : ""),
        .body_len = get || !d->body ? 0 : d->body_len,
        .resp = &body,
        .resp_truncate = true,
    };
    struct kf_http *h;
    struct kf_http_result res;
    int r = 0;

    memset(ret, 0, sizeof(*ret));
    r = check_url_host(d, &dctx, ret);
    if (r < 0)
        return r;
    h = kf_http_new();
    body.cap = KF_OBS_RESPONSE_MAX_BODY;
    for (size_t i = 0; i < d->n_headers; i++)
        req.headers = kf_http_header(req.headers, "%s", d->headers[i]);
    /* curl adds "Expect: 100-continue" to big POSTs; gateways choke on it */
    req.headers = kf_http_header(req.headers, "Expect:");
    r = kf_http_request(h, &o, &req, &res);
    if (r == 0) {
        ret->status = res.status;
        ret->body = kf_strbuf_detach(&body, &ret->body_len);
    } else if (dctx.refused[0]) {
        r = -EACCES;
        snprintf(ret->error, sizeof(ret->error),
                 "%s resolves to %s, an internal address that kfleetd --alert-destinations "
                 "does not list",
                 d->log_url ? d->log_url : "", dctx.refused);
    } else {
        /* curl's message can quote the URL, which may carry a signature */
        snprintf(ret->error, sizeof(ret->error), "%s: %s", curl_easy_strerror(res.code),
                 d->log_url ? d->log_url : "");
    }
    kf_strbuf_release(&body);
    curl_slist_free_all(req.headers);
    kf_http_free(h);
    return r;
}
