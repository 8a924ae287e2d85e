/* obs-receiver-sms.c: delivers a notification through an SMS gateway's
 * HTTP API, described by a request template (method, URL, headers, body)
 * rather than code per vendor.
 *
 * Placeholders {{name}} are replaced by the notification's values, escaped
 * for the place they land so that an alert's text can never change the
 * request's shape: percent-encoded in the URL and in form bodies,
 * JSON-escaped in JSON bodies, line breaks removed in headers. {{message}}
 * is a short text ("[FIRING:1] KfleetHostDown cn-hangzhou/hz-u1: Host
 * hz-h2 in unit hz-u1 is down") cut at max_chars characters, since SMS is
 * paid by the segment. {{id}} is the idempotency key, for gateways that
 * deduplicate on a caller-supplied id. A template that uses {{phone}}
 * sends one request per phone; otherwise one request carries {{phones}}.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

#define SMS_DEFAULT_CHARS 300
#define SMS_MAX_PHONES    100

enum where {
    IN_URL,
    IN_HEADER,
    IN_JSON,
    IN_FORM,
    IN_RAW,
};

struct vars {
    const char *message, *status, *alertname, *severity, *summary, *count, *receiver, *id, *secret,
        *phones;
    const struct kf_obs_kvs *labels;
    const char *phone; /* NULL: not expanding per phone */
    bool uses_phone;   /* set by expand when {{phone}} appears */
};

static const char *lookup(struct vars *v, const char *name, size_t len, bool *known)
{
    static const char label_prefix[] = "label.";
    const struct {
        const char *name;
        const char *value;
    } table[] = {
        { "message", v->message },   { "status", v->status },   { "alertname", v->alertname },
        { "severity", v->severity }, { "summary", v->summary }, { "count", v->count },
        { "receiver", v->receiver }, { "id", v->id },           { "secret", v->secret },
        { "phones", v->phones },     { "phone", v->phone },
    };

    *known = true;
    for (size_t i = 0; i < KF_ARRAY_SIZE(table); i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0) {
            if (strcmp(table[i].name, "phone") == 0)
                v->uses_phone = true;
            return table[i].value ? table[i].value : "";
        }
    if (len > sizeof(label_prefix) - 1 &&
        memcmp(name, label_prefix, sizeof(label_prefix) - 1) == 0) {
        char *label =
            kf_xstrndup(name + sizeof(label_prefix) - 1, len - (sizeof(label_prefix) - 1));
        const char *value = v->labels ? kf_obs_kvs_get(v->labels, label) : NULL;

        free(label);
        return value ? value : "";
    }
    *known = false;
    return NULL;
}

static void escape(struct kf_strbuf *out, const char *s, enum where w)
{
    switch (w) {
    case IN_URL:
    case IN_FORM:
        kf_obs_url_encode(out, s);
        break;
    case IN_JSON: {
        /* kf_strbuf_add_json_str adds the quotes; the template has its own */
        struct kf_strbuf q = KF_STRBUF_INIT;

        kf_strbuf_add_json_str(&q, s);
        kf_strbuf_add(out, q.buf + 1, q.len - 2);
        kf_strbuf_release(&q);
        break;
    }
    case IN_HEADER:
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
            if (*p >= 0x20 && *p != 0x7f)
                kf_strbuf_addch(out, (char)*p);
        break;
    case IN_RAW:
        kf_strbuf_addstr(out, s);
        break;
    }
}

static int expand(const char *tmpl, enum where w, struct vars *v, struct kf_strbuf *out,
                  struct kf_strbuf *err)
{
    const char *p = tmpl;

    while (*p) {
        const char *open = strstr(p, "{{"), *close, *name, *end, *value;
        bool known;

        if (!open) {
            kf_strbuf_addstr(out, p);
            break;
        }
        kf_strbuf_add(out, p, (size_t)(open - p));
        close = strstr(open + 2, "}}");
        if (!close)
            return kf_err(err, -EINVAL, "an unclosed \"{{\" in \"%s\"", tmpl);
        for (name = open + 2; *name == ' '; name++)
            ;
        for (end = close; end > name && end[-1] == ' '; end--)
            ;
        value = lookup(v, name, (size_t)(end - name), &known);
        if (known && w == IN_URL && end - name == 6 && strncmp(name, "secret", 6) == 0)
            /* URLs end up in gateways' and proxies' logs, and in ours */
            return kf_err(err, -EINVAL,
                          "{{secret}} may not be in the URL; put it in a header or the body");
        if (!known)
            return kf_err(err, -EINVAL, "unknown placeholder {{%.*s}}", (int)(end - name), name);
        escape(out, value, w);
        p = close + 2;
    }
    return 0;
}

static enum where body_kind(const struct kf_obs_target *t)
{
    const char *ct = t->content_type ? t->content_type : "application/json";

    if (kf_str_has_prefix(ct, "application/json"))
        return IN_JSON;
    if (kf_str_has_prefix(ct, "application/x-www-form-urlencoded"))
        return IN_FORM;
    return IN_RAW;
}

/* Expands every part of the template once with placeholder values, which
 * finds unknown names and says whether {{phone}} is used. */
static int dry_run(const struct kf_obs_target *t, bool *ret_per_phone, struct kf_strbuf *err)
{
    struct vars v = { .phone = "" };
    struct kf_strbuf out = KF_STRBUF_INIT, why = KF_STRBUF_INIT;
    int r = expand(t->url, IN_URL, &v, &out, &why);

    for (size_t i = 0; r == 0 && i < t->n_headers; i++)
        r = expand(t->headers[i].value, IN_HEADER, &v, &out, &why);
    if (r == 0 && t->body)
        r = expand(t->body, body_kind(t), &v, &out, &why);
    kf_strbuf_release(&out);
    if (r < 0)
        kf_err(err, r, "receiver \"%s\": %s", t->receiver, why.buf);
    else
        *ret_per_phone = v.uses_phone;
    kf_strbuf_release(&why);
    return r;
}

static int check(const struct kf_obs_target *t, struct kf_strbuf *err)
{
    const char *m = t->method ? t->method : "POST";
    bool per_phone;

    if (!kf_obs_url_ok(t->url))
        return kf_err(err, -EINVAL, "receiver \"%s\": the gateway URL must start with http(s)://",
                      t->receiver);
    if (strcmp(m, "POST") != 0 && strcmp(m, "PUT") != 0 && strcmp(m, "GET") != 0)
        return kf_err(err, -EINVAL, "receiver \"%s\": method must be GET, POST or PUT",
                      t->receiver);
    if (t->content_type && strpbrk(t->content_type, "\r\n"))
        return kf_err(err, -EINVAL, "receiver \"%s\": content type has a line break", t->receiver);
    if (!t->n_phones || !t->phones || t->n_phones > SMS_MAX_PHONES)
        return kf_err(err, -EINVAL, "receiver \"%s\": an SMS target needs 1 to %d phones",
                      t->receiver, SMS_MAX_PHONES);
    for (size_t i = 0; i < t->n_phones; i++) {
        const char *ph = t->phones[i];

        if (!ph || !*ph || strlen(ph) > 32 || strspn(ph, "+0123456789-") != strlen(ph))
            return kf_err(err, -EINVAL, "receiver \"%s\": \"%s\" is not a phone number",
                          t->receiver, ph ? ph : "");
    }
    return dry_run(t, &per_phone, err);
}

/* Appends s cut to max characters (UTF-8 code points), ending in "..."
 * when cut. */
static void add_cut(struct kf_strbuf *sb, const char *s, size_t max)
{
    size_t chars = 0, keep = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        chars += (*p & 0xc0) != 0x80;
    if (chars <= max) {
        kf_strbuf_addstr(sb, s);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xc0) != 0x80 && keep++ == max - 3)
            break;
        kf_strbuf_addch(sb, (char)*p);
    }
    kf_strbuf_addstr(sb, "...");
}

static void message(const struct kf_obs_notification *n, size_t max_chars, struct kf_strbuf *out)
{
    struct kf_strbuf full = KF_STRBUF_INIT;
    const char *region = kf_obs_kvs_get(&n->common_labels, "region");
    const char *unit = kf_obs_kvs_get(&n->common_labels, "unit");
    const struct kf_obs_alert *first = NULL;
    size_t live = kf_obs_live_alerts(n, false);

    for (size_t i = 0; i < n->n_alerts && !first; i++)
        if (!n->alerts[i].stale)
            first = &n->alerts[i];
    kf_obs_title(&full, n);
    if (region)
        kf_strbuf_addf(&full, " %s%s%s", region, unit ? "/" : "", unit ? unit : "");
    if (first)
        kf_strbuf_addf(&full, ": %s", kf_obs_alert_summary(first));
    if (live > 1)
        kf_strbuf_addf(&full, " (+%zu more)", live - 1);
    for (char *p = full.buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    add_cut(out, full.buf, KF_MAX(max_chars, (size_t)8));
    kf_strbuf_release(&full);
}

static int one_request(const struct kf_obs_target *t, struct vars *v, struct kf_obs_deliveries *out,
                       struct kf_strbuf *err)
{
    struct kf_strbuf url = KF_STRBUF_INIT, body = KF_STRBUF_INIT, hv = KF_STRBUF_INIT;
    struct kf_obs_delivery *d;
    int r = expand(t->url, IN_URL, v, &url, err);

    if (r == 0 && t->body)
        r = expand(t->body, body_kind(t), v, &body, err);
    if (r < 0)
        goto wipe_bufs;
    d = kf_obs_delivery_add(out, t->method ? t->method : "POST", url.buf, t->body ? body.buf : NULL,
                            body.len);
    if (t->body)
        kf_obs_delivery_header(d, "Content-Type",
                               t->content_type ? t->content_type : "application/json");
    kf_obs_delivery_header(d, "X-Kfleet-Idempotency-Key", v->id);
    for (size_t i = 0; i < t->n_headers; i++) {
        kf_strbuf_reset(&hv);
        r = expand(t->headers[i].value, IN_HEADER, v, &hv, err);
        if (r < 0)
            goto wipe_bufs;
        kf_obs_delivery_header(d, t->headers[i].name, hv.buf);
    }
wipe_bufs:
    if (url.len)
        explicit_bzero(url.buf, url.len);
    if (body.len)
        explicit_bzero(body.buf, body.len);
    if (hv.len)
        explicit_bzero(hv.buf, hv.len);
    kf_strbuf_release(&url);
    kf_strbuf_release(&body);
    kf_strbuf_release(&hv);
    return r;
}

static int build(const struct kf_obs_target *t, const struct kf_obs_notification *n, int64_t now_ms,
                 struct kf_obs_deliveries *out, struct kf_strbuf *err)
{
    struct kf_strbuf msg = KF_STRBUF_INIT, phones = KF_STRBUF_INIT;
    const struct kf_obs_alert *first = NULL;
    char id[33], count[24];
    struct vars v = { 0 };
    bool per_phone = false;
    int r;

    r = dry_run(t, &per_phone, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n->n_alerts && !first; i++)
        if (!n->alerts[i].stale)
            first = &n->alerts[i];
    message(n, t->max_chars ? t->max_chars : SMS_DEFAULT_CHARS, &msg);
    for (size_t i = 0; i < t->n_phones; i++)
        kf_strbuf_addf(&phones, "%s%s", i ? "," : "", t->phones[i]);
    kf_obs_notification_key(n, id);
    snprintf(count, sizeof(count), "%zu", kf_obs_live_alerts(n, false));
    v.message = msg.buf;
    v.status = kf_obs_live_alerts(n, true) ? "firing" : "resolved";
    v.alertname = kf_obs_alertname(n);
    v.severity = kf_obs_kvs_get(&n->common_labels, "severity");
    if (!v.severity && first)
        v.severity = kf_obs_kvs_get(&first->labels, "severity");
    v.summary = first ? kf_obs_alert_summary(first) : "";
    v.count = count;
    v.receiver = n->receiver;
    v.id = id;
    v.secret = t->secret;
    v.phones = phones.buf;
    v.labels = &n->common_labels;
    if (!per_phone) {
        r = one_request(t, &v, out, err);
    } else {
        for (size_t i = 0; r == 0 && i < t->n_phones; i++) {
            v.phone = t->phones[i];
            r = one_request(t, &v, out, err);
        }
    }
    kf_strbuf_release(&msg);
    kf_strbuf_release(&phones);
    return r;
}

const struct obs_receiver_ops kf_obs_receiver_sms = {
    .kind = KF_OBS_RECEIVER_SMS,
    .name = "sms",
    .check = check,
    .build = build,
};
