/* obs-receiver-http.c: sends one delivery over libcurl.
 *
 * One easy handle per request: deliveries are rare (a notification every
 * group_interval per group) and each may go to a different host, so there
 * is nothing worth pooling. Only http and https, no redirects (a redirect
 * would carry a signed URL somewhere else), the whole exchange bounded by
 * the timeout, the response body kept up to a cap for classification and
 * the rest read and dropped. Proxies follow curl's usual environment
 * variables, as data centres that reach DingTalk through a proxy need.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "kfleet/base.h"
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

static size_t on_body(char *p, size_t size, size_t nmemb, void *data)
{
    struct kf_strbuf *sb = data;
    size_t n = size * nmemb;

    if (sb->len < KF_OBS_RESPONSE_MAX_BODY)
        kf_strbuf_add(sb, p, KF_MIN(n, KF_OBS_RESPONSE_MAX_BODY - sb->len));
    return n;
}

static int errno_of(CURLcode c)
{
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    default:
        return -EIO;
    }
}

int kf_obs_deliver(const struct kf_obs_delivery *d, int64_t timeout_ms, struct kf_obs_response *ret)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    struct curl_slist *headers = NULL;
    CURL *c = curl_easy_init();
    CURLcode rc;
    int r = 0;

    memset(ret, 0, sizeof(*ret));
    if (!c) {
        snprintf(ret->error, sizeof(ret->error), "cannot create a curl handle");
        return -ENOMEM;
    }
    for (size_t i = 0; i < d->n_headers; i++)
        headers = curl_slist_append(headers, d->headers[i]);
    /* curl adds "Expect: 100-continue" to big POSTs; gateways choke on it */
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, d->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 10000));
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kfleet/" KF_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (strcmp(d->method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, d->method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->body ? d->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(d->body ? d->body_len : 0));
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ret->status);
        ret->body = kf_strbuf_detach(&body, &ret->body_len);
    } else {
        r = errno_of(rc);
        /* curl's message can quote the URL, which may carry a signature */
        snprintf(ret->error, sizeof(ret->error), "%s: %s", curl_easy_strerror(rc),
                 d->log_url ? d->log_url : "");
    }
    kf_strbuf_release(&body);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return r;
}
