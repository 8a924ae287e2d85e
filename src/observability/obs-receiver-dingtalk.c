/* obs-receiver-dingtalk.c: delivers a notification to a DingTalk group
 * robot as one markdown message.
 *
 * The robot API (reference §2.4): POST the robot URL (which carries its
 * access_token) with {"msgtype": "markdown", "markdown": {"title", "text"},
 * "at": {"atMobiles", "isAtAll"}}. A robot with a secret also wants
 * &timestamp=<ms>&sign=<sig> where sig is base64(HMAC-SHA256(secret,
 * "<ms>\n<secret>")), URL-encoded; DingTalk rejects signatures older than
 * an hour, so a retry builds a new request. The robot answers HTTP 200 with
 * {"errcode": 0} on success; errcode 130101 ("sending too fast") is worth
 * retrying, any other code is not.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kfleet/base.h"
#include "kfleet/json.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

/* DingTalk accepts 20,000 bytes of markdown; stay well below, and list a
 * bounded number of alerts so one message stays readable. */
#define DT_MAX_TEXT   8000
#define DT_MAX_ALERTS 10
#define DT_TOO_FAST   130101

void kf_obs_dingtalk_sign(const char *secret, int64_t timestamp_ms, struct kf_strbuf *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *msg = kf_xasprintf("%" PRId64 "\n%s", timestamp_ms, secret);
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    int n;

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, strlen(msg), mac,
         &mac_len);
    n = EVP_EncodeBlock(b64, mac, (int)mac_len);
    kf_strbuf_add(out, b64, (size_t)n);
    explicit_bzero(msg, strlen(msg));
    free(msg);
}

static int check(const struct kf_obs_target *t, struct kf_strbuf *err)
{
    if (!kf_obs_url_ok(t->url))
        return kf_err(err, -EINVAL, "receiver \"%s\": the DingTalk robot URL must be http(s)",
                      t->receiver);
    if (t->n_at_mobiles && !t->at_mobiles)
        return kf_err(err, -EINVAL, "receiver \"%s\": at_mobiles missing", t->receiver);
    for (size_t i = 0; i < t->n_at_mobiles; i++) {
        const char *m = t->at_mobiles[i];

        if (!m || !*m || strlen(m) > 32 || strspn(m, "+0123456789-") != strlen(m))
            return kf_err(err, -EINVAL, "receiver \"%s\": \"%s\" is not a mobile number",
                          t->receiver, m ? m : "");
    }
    if (t->secret && (!*t->secret || strpbrk(t->secret, "\r\n")))
        return kf_err(err, -EINVAL, "receiver \"%s\": the signing secret is malformed",
                      t->receiver);
    return 0;
}

static void add_time(struct kf_strbuf *sb, int64_t ms)
{
    char buf[40];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
    kf_strbuf_addstr(sb, buf);
}

/* One line of text: markdown has no use for the alert's own line breaks
 * inside a list item. */
static void add_oneline(struct kf_strbuf *sb, const char *s)
{
    for (; *s; s++)
        kf_strbuf_addch(sb, *s == '\n' || *s == '\r' ? ' ' : *s);
}

static void markdown(const struct kf_obs_target *t, const struct kf_obs_notification *n,
                     struct kf_strbuf *title, struct kf_strbuf *text)
{
    size_t listed = 0, live = kf_obs_live_alerts(n, false);
    bool first = true;

    kf_obs_title(title, n);
    kf_strbuf_addf(text, "### %s\n\n", title->buf);
    for (size_t i = 0; i < n->group_labels.n; i++) {
        const struct kf_obs_kv *kv = &n->group_labels.items[i];

        if (strcmp(kv->name, "alertname") == 0)
            continue;
        kf_strbuf_addf(text, "%s**%s** ", first ? "" : " · ", kv->name);
        add_oneline(text, kv->value);
        first = false;
    }
    if (!first)
        kf_strbuf_addstr(text, "\n\n");
    for (size_t i = 0; i < n->n_alerts && listed < DT_MAX_ALERTS && text->len < DT_MAX_TEXT; i++) {
        const struct kf_obs_alert *a = &n->alerts[i];
        const char *desc = kf_obs_kvs_get(&a->annotations, "description");
        const char *sev = kf_obs_kvs_get(&a->labels, "severity");

        if (a->stale)
            continue;
        listed++;
        kf_strbuf_addf(text, "- **%s** ", a->firing ? "FIRING" : "RESOLVED");
        add_oneline(text, kf_obs_alert_summary(a));
        kf_strbuf_addstr(text, "\n");
        if (desc) {
            kf_strbuf_addstr(text, "  > ");
            add_oneline(text, desc);
            kf_strbuf_addstr(text, "\n");
        }
        kf_strbuf_addstr(text, "  ");
        if (sev) {
            add_oneline(text, sev);
            kf_strbuf_addstr(text, " · ");
        }
        kf_strbuf_addstr(text, "since ");
        add_time(text, a->starts_at_ms);
        if (!a->firing && a->ends_at_ms) {
            kf_strbuf_addstr(text, " · resolved ");
            add_time(text, a->ends_at_ms);
        }
        if (a->generator_url && kf_obs_url_ok(a->generator_url))
            kf_strbuf_addf(text, " · [source](%s)", a->generator_url);
        kf_strbuf_addstr(text, "\n");
    }
    if (listed < live || n->truncated_alerts > 0)
        kf_strbuf_addf(text, "\n… and %" PRId64 " more\n",
                       (int64_t)(live - listed) + n->truncated_alerts);
    /* DingTalk only notifies the people whose numbers appear in the text */
    if (t->n_at_mobiles) {
        kf_strbuf_addstr(text, "\n");
        for (size_t i = 0; i < t->n_at_mobiles; i++)
            kf_strbuf_addf(text, "@%s ", t->at_mobiles[i]);
        kf_strbuf_rtrim(text);
        kf_strbuf_addstr(text, "\n");
    }
}

static int build(const struct kf_obs_target *t, const struct kf_obs_notification *n, int64_t now_ms,
                 struct kf_obs_deliveries *out, struct kf_strbuf *err)
{
    struct kf_strbuf title = KF_STRBUF_INIT, text = KF_STRBUF_INIT, url = KF_STRBUF_INIT;
    json_t *msg, *at, *mobiles = json_array();
    struct kf_obs_delivery *d;
    char *body;
    size_t len;
    char id[33];

    markdown(t, n, &title, &text);
    for (size_t i = 0; i < t->n_at_mobiles; i++)
        json_array_append_new(mobiles, json_string(t->at_mobiles[i]));
    at = json_pack("{s:o, s:b}", "atMobiles", mobiles, "isAtAll", t->at_all);
    msg = json_pack("{s:s, s:{s:s, s:s}, s:o}", "msgtype", "markdown", "markdown", "title",
                    title.buf, "text", text.buf, "at", at);
    if (!msg) {
        kf_strbuf_release(&title);
        kf_strbuf_release(&text);
        return kf_err(err, -EINVAL, "receiver \"%s\": the message is not valid UTF-8", t->receiver);
    }
    body = kf_json_dump(msg, &len);
    json_decref(msg);

    kf_strbuf_addstr(&url, t->url);
    if (t->secret) {
        struct kf_strbuf sig = KF_STRBUF_INIT;

        kf_obs_dingtalk_sign(t->secret, now_ms, &sig);
        kf_strbuf_addf(&url, "%ctimestamp=%" PRId64 "&sign=", strchr(t->url, '?') ? '&' : '?',
                       now_ms);
        kf_obs_url_encode(&url, sig.buf);
        kf_strbuf_release(&sig);
    }
    d = kf_obs_delivery_add(out, "POST", url.buf, body, len);
    kf_obs_delivery_header(d, "Content-Type", "application/json; charset=utf-8");
    kf_obs_notification_key(n, id);
    kf_obs_delivery_header(d, "X-Kfleet-Idempotency-Key", id);
    for (size_t i = 0; i < t->n_headers; i++)
        kf_obs_delivery_header(d, t->headers[i].name, t->headers[i].value);
    explicit_bzero(url.buf, url.len);
    kf_strbuf_release(&url);
    kf_strbuf_release(&title);
    kf_strbuf_release(&text);
    free(body);
    return 0;
}

static enum kf_obs_outcome body_outcome(const struct kf_obs_response *resp)
{
    json_t *v = NULL;
    json_t *code;
    enum kf_obs_outcome o = KF_OBS_FAILED;

    if (!resp->body || kf_json_parse(resp->body, resp->body_len, &v, NULL) < 0)
        return KF_OBS_FAILED;
    code = json_object_get(v, "errcode");
    if (json_is_integer(code)) {
        if (json_integer_value(code) == 0)
            o = KF_OBS_DELIVERED;
        else if (json_integer_value(code) == DT_TOO_FAST)
            o = KF_OBS_RETRY;
    }
    json_decref(v);
    return o;
}

const struct obs_receiver_ops kf_obs_receiver_dingtalk = {
    .kind = KF_OBS_RECEIVER_DINGTALK,
    .name = "dingtalk",
    .check = check,
    .build = build,
    .body_outcome = body_outcome,
};
