/* fuzz-sms-template.c: the SMS gateway request templates (url, a header
 * value and a body with {{placeholders}}, obs-receiver-sms.c), which an
 * editor writes in an AlertReceiver. Any template must be checked or
 * refused with a message; from one accepted, kf_obs_build makes requests
 * whose URL never carries the secret and whose headers have no line
 * breaks, whatever the alert's text (which has quotes, line breaks, "&"
 * and placeholders of its own).
 *
 * Input: first byte picks the content type and method, then url, header
 * value and body separated by '\n'. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "S3CRET-e7f1"

static const char payload[] =
    "{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"sms\",\"groupKey\":\"{}:{a=\\\"b\\\"}"
    "\","
    "\"groupLabels\":{\"alertname\":\"KfleetHostDown\"},"
    "\"commonLabels\":{\"alertname\":\"KfleetHostDown\",\"severity\":\"crit\\r\\nX: y\","
    "\"region\":\"{{secret}}&a=b\\\"\"},"
    "\"alerts\":[{\"status\":\"firing\",\"labels\":{\"alertname\":\"KfleetHostDown\"},"
    "\"annotations\":{\"summary\":\"Host \\\"h1\\\"\\ndown {{secret}}\"},"
    "\"startsAt\":\"2026-01-01T00:00:00Z\",\"fingerprint\":\"abc\"}]}";

static const char *const phones[] = { "+8613800000000", "13900000000" };
static const char *const types[] = { NULL, "application/json", "application/x-www-form-urlencoded",
                                     "text/plain" };
static const char *const methods[] = { NULL, "POST", "PUT", "GET" };

static char *field(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = kf_xstrndup(*p, n);

    *p += nl ? n + 1 : n;
    return s;
}

/* url_tmpl: the template; a template that spells the secret out itself is
 * its author's choice, not a substitution. */
static void check_requests(const struct kf_obs_deliveries *out, const char *url_tmpl)
{
    for (size_t i = 0; i < out->n; i++) {
        const struct kf_obs_delivery *d = &out->items[i];

        kf_assert(d->url && (strstr(url_tmpl, SECRET) || !strstr(d->url, SECRET)));
        for (size_t h = 0; h < d->n_headers; h++)
            kf_assert(!strpbrk(d->headers[h], "\r\n"));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kf_obs_notification n;
    static bool parsed;
    const char *p = (const char *)data + (size ? 1 : 0), *end = (const char *)data + size;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_deliveries out = { 0 };
    struct kf_obs_header hdr = { "X-Key", NULL };
    struct kf_obs_target t = { .receiver = "sms",
                               .kind = KF_OBS_RECEIVER_SMS,
                               .secret = SECRET,
                               .headers = &hdr,
                               .n_headers = 1,
                               .phones = phones,
                               .n_phones = 2,
                               .max_chars = 70 };
    char *url, *body;

    if (!parsed) {
        kf_assert(kf_obs_webhook_parse(payload, sizeof(payload) - 1, &n, NULL) == 0);
        parsed = true;
    }
    if (size) {
        t.content_type = types[data[0] & 3];
        t.method = methods[(data[0] >> 2) & 3];
    }
    url = field(&p, end);
    hdr.value = field(&p, end);
    body = p < end ? kf_xstrndup(p, (size_t)(end - p)) : NULL;
    t.url = url;
    t.body = body;
    if (kf_obs_build(&t, &n, 1700000000000, &out, &err) < 0)
        kf_assert(err.len > 0 && out.n == 0);
    else
        check_requests(&out, url);
    kf_obs_deliveries_release(&out);
    kf_strbuf_release(&err);
    free(url);
    free((char *)hdr.value);
    free(body);
    return 0;
}
