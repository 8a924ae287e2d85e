/* fuzz-alert-webhook.c: libFuzzer target for the Alertmanager webhook
 * payload parser, and for everything downstream that reads a parsed
 * payload: the idempotency key, the deduplication memory, and the request
 * builders of every adapter target kind.
 *
 * A payload that parses must give a notification whose key is stable, whose
 * alerts all have a fingerprint, and from which every builder produces
 * well-formed requests; one that does not parse must say why. */
#include <string.h>

#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const phones[] = { "+8613800000000", "13900000000" };
static const struct kf_obs_header hdr[] = { { "X-Api-Key", "{{secret}}-{{severity}}" } };

static const struct kf_obs_target targets[] = {
    { .receiver = "hook", .kind = KF_OBS_RECEIVER_WEBHOOK, .url = "http://127.0.0.1:1/hook" },
    { .receiver = "ding",
      .kind = KF_OBS_RECEIVER_DINGTALK,
      .url = "https://oapi.dingtalk.com/robot/send?access_token=x",
      .secret = "SECabc",
      .at_mobiles = phones,
      .n_at_mobiles = 2 },
    { .receiver = "sms",
      .kind = KF_OBS_RECEIVER_SMS,
      .url = "https://sms.example.invalid/send?to={{phone}}&sig={{secret}}",
      .secret = "k",
      .headers = hdr,
      .n_headers = 1,
      .body = "{\"text\": \"{{message}}\", \"n\": {{count}}, \"r\": \"{{label.region}}\"}",
      .phones = phones,
      .n_phones = 2,
      .max_chars = 70 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_notification n;
    struct kf_obs_dedup *d;
    char key[33], again[33];
    bool unique = true;

    if (kf_obs_webhook_parse((const char *)data, size, &n, &err) < 0) {
        kf_assert(err.len > 0);
        kf_strbuf_release(&err);
        return 0;
    }
    kf_obs_notification_key(&n, key);
    kf_obs_notification_key(&n, again);
    kf_assert(strcmp(key, again) == 0 && strlen(key) == 32);
    for (size_t i = 0; i < n.n_alerts; i++)
        for (size_t j = 0; j < i; j++)
            unique &= strcmp(n.alerts[i].fingerprint, n.alerts[j].fingerprint) != 0;
    d = kf_obs_dedup_new(4, 60000);
    for (int round = 0; round < 2; round++) {
        enum kf_obs_verdict v = kf_obs_dedup_claim(d, &n, 1000 + round);

        /* delivered once, the same notification is never delivered again */
        kf_assert(round == 0 || !unique || v != KF_OBS_DELIVER);
        if (v == KF_OBS_DELIVER)
            kf_obs_dedup_done(d, &n, true, 1000 + round);
    }
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        struct kf_obs_deliveries out = { 0 };

        if (kf_obs_build(&targets[i], &n, 1700000000000, &out, &err) == 0) {
            for (size_t j = 0; j < out.n; j++) {
                kf_assert(out.items[j].method && out.items[j].url && out.items[j].log_url);
                kf_assert(!strchr(out.items[j].log_url, '?'));
                for (size_t k = 0; k < out.items[j].n_headers; k++)
                    kf_assert(!strpbrk(out.items[j].headers[k], "\r\n"));
            }
        }
        kf_obs_deliveries_release(&out);
    }
    kf_obs_dedup_free(d);
    kf_obs_notification_release(&n);
    kf_strbuf_release(&err);
    return 0;
}
