/* obs-receiver-forward.c: delivers a notification to a plain webhook by
 * forwarding Alertmanager's payload, so that receivers written for
 * Alertmanager work behind kfleet unchanged, with kfleet's deduplication
 * and ordering in front of them. The payload goes out byte for byte, or,
 * when some of its alerts were stale firings, re-encoded without them.
 * X-Kfleet-Idempotency-Key lets the receiver deduplicate as well.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/json.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

static int check(const struct kf_obs_target *t, struct kf_strbuf *err)
{
    if (!kf_obs_url_ok(t->url))
        return kf_err(err, -EINVAL, "receiver \"%s\": the webhook URL must be http(s)",
                      t->receiver);
    return 0;
}

/* The payload without the alerts the deduplication marked stale. */
static int without_stale(const struct kf_obs_notification *n, char **ret, size_t *ret_len,
                         struct kf_strbuf *err)
{
    json_t *root = NULL, *alerts, *kept;
    int r = kf_json_parse(n->raw, n->raw_len, &root, err);

    if (r < 0)
        return r;
    alerts = json_object_get(root, "alerts");
    if (!json_is_array(alerts) || json_array_size(alerts) != n->n_alerts) {
        json_decref(root);
        return kf_err(err, -EINVAL, "the payload does not match its parsed form");
    }
    kept = json_array();
    for (size_t i = 0; i < n->n_alerts; i++)
        if (!n->alerts[i].stale)
            json_array_append(kept, json_array_get(alerts, i));
    json_object_set_new(root, "alerts", kept);
    *ret = kf_json_dump(root, ret_len);
    json_decref(root);
    return 0;
}

static int build(const struct kf_obs_target *t, const struct kf_obs_notification *n, int64_t now_ms,
                 struct kf_obs_deliveries *out, struct kf_strbuf *err)
{
    struct kf_obs_delivery *d;
    char id[33];
    char *body = NULL;
    size_t len = 0;

    if (!n->raw)
        return kf_err(err, -EINVAL, "the notification has no payload to forward");
    if (kf_obs_live_alerts(n, false) != n->n_alerts) {
        int r = without_stale(n, &body, &len, err);

        if (r < 0)
            return r;
    }
    d = kf_obs_delivery_add(out, "POST", t->url, body ? body : n->raw, body ? len : n->raw_len);
    free(body);
    kf_obs_delivery_header(d, "Content-Type", "application/json");
    kf_obs_notification_key(n, id);
    kf_obs_delivery_header(d, "X-Kfleet-Idempotency-Key", id);
    for (size_t i = 0; i < t->n_headers; i++)
        kf_obs_delivery_header(d, t->headers[i].name, t->headers[i].value);
    return 0;
}

const struct obs_receiver_ops kf_obs_receiver_webhook = {
    .kind = KF_OBS_RECEIVER_WEBHOOK,
    .name = "webhook",
    .check = check,
    .build = build,
};
