/* obs-receiver.c: the adapter's table of target kinds and what they share.
 *
 * Each kind (plain webhook, DingTalk, SMS gateway) is an ops table in its
 * own file, listed once below; kf_obs_target_check, kf_obs_build and
 * kf_obs_classify dispatch through it. The text helpers (title, summary,
 * URL encoding, the loggable part of a URL), the delivery list and the
 * retry back-off live here too.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

static const struct obs_receiver_ops *const receiver_kinds[] = {
    &kf_obs_receiver_webhook,
    &kf_obs_receiver_dingtalk,
    &kf_obs_receiver_sms,
};

static const struct obs_receiver_ops *find_ops(enum kf_obs_receiver_kind kind)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(receiver_kinds); i++)
        if (receiver_kinds[i]->kind == kind)
            return receiver_kinds[i];
    return NULL;
}

bool kf_obs_url_ok(const char *url)
{
    if (!url || (!kf_str_has_prefix(url, "http://") && !kf_str_has_prefix(url, "https://")))
        return false;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return strlen(url) <= 8192;
}

int kf_obs_target_check(const struct kf_obs_target *t, struct kf_strbuf *err)
{
    const struct obs_receiver_ops *ops = find_ops(t->kind);

    if (!t->receiver || !*t->receiver)
        return kf_err(err, -EINVAL, "the target has no receiver name");
    if (!ops)
        return kf_err(err, -EINVAL,
                      "receiver \"%s\": the adapter delivers webhook, DingTalk and SMS targets "
                      "(email goes through Alertmanager)",
                      t->receiver);
    if (t->n_headers && !t->headers)
        return kf_err(err, -EINVAL, "receiver \"%s\": headers missing", t->receiver);
    for (size_t i = 0; i < t->n_headers; i++) {
        const char *name = t->headers[i].name;

        if (!name || !*name || !t->headers[i].value)
            return kf_err(err, -EINVAL, "receiver \"%s\": header %zu needs a name and value",
                          t->receiver, i);
        for (const char *p = name; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
                return kf_err(err, -EINVAL, "receiver \"%s\": \"%s\" is not a header name",
                              t->receiver, name);
        if (strpbrk(t->headers[i].value, "\r\n"))
            return kf_err(err, -EINVAL, "receiver \"%s\": header %s has a line break", t->receiver,
                          name);
    }
    return ops->check(t, err);
}

int kf_obs_build(const struct kf_obs_target *t, const struct kf_obs_notification *n, int64_t now_ms,
                 struct kf_obs_deliveries *out, struct kf_strbuf *err)
{
    int r = kf_obs_target_check(t, err);

    if (r < 0)
        return r;
    if (!kf_obs_live_alerts(n, false))
        return 0;
    return find_ops(t->kind)->build(t, n, now_ms, out, err);
}

enum kf_obs_outcome kf_obs_classify(enum kf_obs_receiver_kind kind, int r,
                                    const struct kf_obs_response *resp)
{
    const struct obs_receiver_ops *ops = find_ops(kind);

    if (r == -EACCES)
        return KF_OBS_FAILED; /* a destination not allowed stays so */
    if (r < 0 || !resp || resp->status == 0)
        return KF_OBS_RETRY;
    if (resp->status == 408 || resp->status == 429 || resp->status >= 500)
        return KF_OBS_RETRY;
    if (resp->status < 200 || resp->status > 299)
        return KF_OBS_FAILED;
    if (ops && ops->body_outcome)
        return ops->body_outcome(resp);
    return KF_OBS_DELIVERED;
}

int64_t kf_obs_retry_delay_ms(const struct kf_obs_retry_policy *p, unsigned attempt,
                              uint32_t random)
{
    unsigned max_attempts = p && p->max_attempts ? p->max_attempts : 6;
    double initial = p && p->initial_ms ? (double)p->initial_ms : 1000.0;
    double cap = p && p->max_ms ? (double)p->max_ms : 60000.0;
    double mult = p && p->multiplier > 0 ? p->multiplier : 2.0;
    double jitter = p && p->jitter > 0 ? KF_MIN(p->jitter, 1.0) : 0.2;
    double delay;

    if (attempt < 2)
        return 0;
    if (attempt > max_attempts)
        return -1;
    delay = initial * pow(mult, (double)(attempt - 2));
    if (delay > cap)
        delay = cap;
    /* spread retries of many receivers so a recovering gateway is not hit
     * by all of them at once */
    delay *= 1.0 + jitter * (2.0 * ((double)random / 4294967296.0) - 1.0);
    return delay < 0 ? 0 : (int64_t)llround(delay);
}

/* ---- text ---- */

const char *kf_obs_alertname(const struct kf_obs_notification *n)
{
    const char *s = kf_obs_kvs_get(&n->common_labels, "alertname");

    if (!s)
        s = kf_obs_kvs_get(&n->group_labels, "alertname");
    for (size_t i = 0; !s && i < n->n_alerts; i++)
        if (!n->alerts[i].stale)
            s = kf_obs_kvs_get(&n->alerts[i].labels, "alertname");
    return s ? s : "alert";
}

size_t kf_obs_live_alerts(const struct kf_obs_notification *n, bool firing_only)
{
    size_t c = 0;

    for (size_t i = 0; i < n->n_alerts; i++)
        if (!n->alerts[i].stale && (!firing_only || n->alerts[i].firing))
            c++;
    return c;
}

void kf_obs_title(struct kf_strbuf *sb, const struct kf_obs_notification *n)
{
    size_t firing = kf_obs_live_alerts(n, true);

    if (firing)
        kf_strbuf_addf(sb, "[FIRING:%zu] %s", firing, kf_obs_alertname(n));
    else
        kf_strbuf_addf(sb, "[RESOLVED] %s", kf_obs_alertname(n));
}

const char *kf_obs_alert_summary(const struct kf_obs_alert *a)
{
    const char *s = kf_obs_kvs_get(&a->annotations, "summary");

    if (!s)
        s = kf_obs_kvs_get(&a->annotations, "message");
    if (!s)
        s = kf_obs_kvs_get(&a->labels, "alertname");
    return s ? s : "";
}

void kf_obs_url_encode(struct kf_strbuf *sb, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~')
            kf_strbuf_addch(sb, (char)*p);
        else
            kf_strbuf_addf(sb, "%%%02X", *p);
    }
}

char *kf_obs_log_url(const char *url)
{
    const char *scheme_end = strstr(url, "://");
    const char *host, *end, *at;

    if (!scheme_end)
        return kf_xstrdup("(invalid URL)");
    host = scheme_end + 3;
    end = host + strcspn(host, "?#");
    at = memchr(host, '@', (size_t)(end - host));
    if (at && at < host + strcspn(host, "/"))
        host = at + 1;
    return kf_xasprintf("%.*s://%.*s", (int)(scheme_end - url), url, (int)(end - host), host);
}

/* ---- deliveries ---- */

void kf_obs_deliveries_release(struct kf_obs_deliveries *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        struct kf_obs_delivery *x = &d->items[i];

        free(x->method);
        if (x->url)
            explicit_bzero(x->url, strlen(x->url));
        free(x->url);
        for (size_t j = 0; j < x->n_headers; j++) {
            explicit_bzero(x->headers[j], strlen(x->headers[j]));
            free(x->headers[j]);
        }
        free(x->headers);
        if (x->body)
            explicit_bzero(x->body, x->body_len);
        free(x->body);
        free(x->log_url);
    }
    free(d->items);
    memset(d, 0, sizeof(*d));
}

struct kf_obs_delivery *kf_obs_delivery_add(struct kf_obs_deliveries *out, const char *method,
                                            const char *url, const char *body, size_t body_len)
{
    struct kf_obs_delivery *d;

    KF_GROW(out->items, out->alloc, out->n + 1);
    d = &out->items[out->n++];
    memset(d, 0, sizeof(*d));
    d->method = kf_xstrdup(method);
    d->url = kf_xstrdup(url);
    d->log_url = kf_obs_log_url(url);
    if (body) {
        d->body = kf_xmalloc(body_len + 1);
        memcpy(d->body, body, body_len);
        d->body[body_len] = '\0';
        d->body_len = body_len;
    }
    return d;
}

void kf_obs_delivery_header(struct kf_obs_delivery *d, const char *name, const char *value)
{
    d->headers = kf_xrealloc(d->headers, (d->n_headers + 1) * sizeof(*d->headers));
    d->headers[d->n_headers++] = kf_xasprintf("%s: %s", name, value);
}
