/* obs-receiver-webhook.c: parses Alertmanager's webhook payload (version
 * "4") into a kf_obs_notification, and computes its idempotency key.
 *
 * The payload comes from the network, so everything is bounded before it
 * is kept: the body size, the nesting depth (kf_json_parse), the number of
 * alerts and labels, every string's length. Times are RFC 3339 as Go writes
 * them: fractional seconds of any precision, "Z" or a numeric offset, and
 * Go's zero time "0001-01-01T00:00:00Z" for "not set" (endsAt while firing).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "kfleet/base.h"
#include "kfleet/json.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

const char *kf_obs_kvs_get(const struct kf_obs_kvs *kvs, const char *name)
{
    size_t lo = 0, hi = kvs->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(kvs->items[mid].name, name);

        if (c == 0)
            return kvs->items[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void kvs_release(struct kf_obs_kvs *kvs)
{
    for (size_t i = 0; i < kvs->n; i++) {
        free(kvs->items[i].name);
        free(kvs->items[i].value);
    }
    free(kvs->items);
    kvs->items = NULL;
    kvs->n = 0;
}

void kf_obs_notification_release(struct kf_obs_notification *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_alerts; i++) {
        struct kf_obs_alert *a = &n->alerts[i];

        kvs_release(&a->labels);
        kvs_release(&a->annotations);
        free(a->generator_url);
        free(a->fingerprint);
    }
    free(n->alerts);
    kvs_release(&n->group_labels);
    kvs_release(&n->common_labels);
    kvs_release(&n->common_annotations);
    free(n->receiver);
    free(n->group_key);
    free(n->external_url);
    free(n->raw);
    memset(n, 0, sizeof(*n));
}

/* Go's RFC 3339 (time.RFC3339Nano and friends) to ms since the epoch; the
 * zero time to 0. */
static int parse_time(const char *s, int64_t *ret)
{
    struct tm tm = { 0 };
    const char *p;
    int64_t frac_ms = 0, offset_s = 0;
    time_t t;

    if (kf_str_has_prefix(s, "0001-01-01T00:00:00")) {
        *ret = 0;
        return 0;
    }
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -EINVAL;
    if (*p == '.') {
        int digits = 0;

        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (!digits || digits > 9)
            return -EINVAL;
        for (; digits < 3; digits++)
            frac_ms *= 10;
    }
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        int h = (p[1] - '0') * 10 + (p[2] - '0'), m = (p[4] - '0') * 10 + (p[5] - '0');

        if (h > 23 || m > 59)
            return -EINVAL;
        offset_s = (h * 3600 + m * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ret = ((int64_t)t - offset_s) * 1000 + frac_ms;
    return 0;
}

struct parse {
    struct kf_strbuf *err;
    const char *where; /* "alerts[3]" or "" */
};

static int str_field(struct parse *p, const json_t *obj, const char *key, bool required, char **ret)
{
    json_t *v = json_object_get(obj, key);
    size_t len;

    if (!v || json_is_null(v)) {
        if (required)
            return kf_err(p->err, -EBADMSG, "%s%s is missing", p->where, key);
        *ret = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return kf_err(p->err, -EBADMSG, "%s%s must be a string", p->where, key);
    len = json_string_length(v);
    if (len > KF_OBS_WEBHOOK_MAX_STRING)
        return kf_err(p->err, -E2BIG, "%s%s is longer than %d bytes", p->where, key,
                      KF_OBS_WEBHOOK_MAX_STRING);
    if (memchr(json_string_value(v), '\0', len))
        return kf_err(p->err, -EBADMSG, "%s%s contains a NUL character", p->where, key);
    *ret = kf_xstrndup(json_string_value(v), len);
    return 0;
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const struct kf_obs_kv *)a)->name, ((const struct kf_obs_kv *)b)->name);
}

static int kvs_field(struct parse *p, const json_t *obj, const char *key, struct kf_obs_kvs *ret)
{
    json_t *v = json_object_get(obj, key), *val;
    struct kf_obs_kvs kvs = { 0 };
    const char *name;

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return kf_err(p->err, -EBADMSG, "%s%s must be an object", p->where, key);
    if (json_object_size(v) > KF_OBS_WEBHOOK_MAX_LABELS)
        return kf_err(p->err, -E2BIG, "%s%s has more than %d entries", p->where, key,
                      KF_OBS_WEBHOOK_MAX_LABELS);
    kvs.items = kf_xcalloc(json_object_size(v) + 1, sizeof(*kvs.items));
    json_object_foreach(v, name, val)
    {
        size_t nlen = strlen(name);

        if (!json_is_string(val) || nlen > KF_OBS_WEBHOOK_MAX_STRING ||
            json_string_length(val) > KF_OBS_WEBHOOK_MAX_STRING ||
            memchr(json_string_value(val), '\0', json_string_length(val))) {
            kvs_release(&kvs);
            return kf_err(p->err, -EBADMSG, "%s%s.%s must be a string of at most %d bytes",
                          p->where, key, name, KF_OBS_WEBHOOK_MAX_STRING);
        }
        kvs.items[kvs.n].name = kf_xstrdup(name);
        kvs.items[kvs.n].value = kf_xstrndup(json_string_value(val), json_string_length(val));
        kvs.n++;
    }
    qsort(kvs.items, kvs.n, sizeof(*kvs.items), cmp_kv);
    *ret = kvs;
    return 0;
}

static int status_field(struct parse *p, const json_t *obj, bool *ret)
{
    const char *s = json_string_value(json_object_get(obj, "status"));

    if (kf_streq(s, "firing"))
        *ret = true;
    else if (kf_streq(s, "resolved"))
        *ret = false;
    else
        return kf_err(p->err, -EBADMSG, "%sstatus must be \"firing\" or \"resolved\"", p->where);
    return 0;
}

static int time_field(struct parse *p, const json_t *obj, const char *key, int64_t *ret)
{
    const char *s;
    json_t *v = json_object_get(obj, key);

    if (!v) {
        *ret = 0;
        return 0;
    }
    s = json_string_value(v);
    if (!s || json_string_length(v) > 64 || parse_time(s, ret) < 0)
        return kf_err(p->err, -EBADMSG, "%s%s is not an RFC 3339 time", p->where, key);
    return 0;
}

static int parse_alert(struct parse *p, const json_t *v, struct kf_obs_alert *a)
{
    int r;

    if (!json_is_object(v))
        return kf_err(p->err, -EBADMSG, "%smust be an object", p->where);
    r = status_field(p, v, &a->firing);
    if (r == 0)
        r = kvs_field(p, v, "labels", &a->labels);
    if (r == 0)
        r = kvs_field(p, v, "annotations", &a->annotations);
    if (r == 0)
        r = time_field(p, v, "startsAt", &a->starts_at_ms);
    if (r == 0)
        r = time_field(p, v, "endsAt", &a->ends_at_ms);
    if (r == 0)
        r = str_field(p, v, "generatorURL", false, &a->generator_url);
    if (r == 0)
        r = str_field(p, v, "fingerprint", true, &a->fingerprint);
    if (r == 0 && !a->fingerprint[0])
        r = kf_err(p->err, -EBADMSG, "%sfingerprint is empty", p->where);
    return r;
}

int kf_obs_webhook_parse(const char *body, size_t len, struct kf_obs_notification *ret,
                         struct kf_strbuf *err)
{
    struct kf_obs_notification n = { 0 };
    struct parse p = { err, "" };
    json_t *root = NULL, *alerts, *v;
    const char *version;
    char where[48];
    int r;

    if (len > KF_OBS_WEBHOOK_MAX_BYTES)
        return kf_err(err, -E2BIG, "the payload is larger than %d bytes", KF_OBS_WEBHOOK_MAX_BYTES);
    r = kf_json_parse(body, len, &root, err);
    if (r < 0)
        return r;
    if (!json_is_object(root)) {
        r = kf_err(err, -EBADMSG, "the payload must be a JSON object");
        goto release_notification;
    }
    version = json_string_value(json_object_get(root, "version"));
    if (!kf_streq(version, "4")) {
        r = kf_err(err, -EBADMSG, "payload version \"%s\" is not supported (want \"4\")",
                   version ? version : "");
        goto release_notification;
    }
    r = status_field(&p, root, &n.firing);
    if (r == 0)
        r = str_field(&p, root, "receiver", true, &n.receiver);
    if (r == 0)
        r = str_field(&p, root, "groupKey", true, &n.group_key);
    if (r == 0)
        r = str_field(&p, root, "externalURL", false, &n.external_url);
    if (r == 0)
        r = kvs_field(&p, root, "groupLabels", &n.group_labels);
    if (r == 0)
        r = kvs_field(&p, root, "commonLabels", &n.common_labels);
    if (r == 0)
        r = kvs_field(&p, root, "commonAnnotations", &n.common_annotations);
    if (r < 0)
        goto release_notification;
    v = json_object_get(root, "truncatedAlerts");
    if (v && !json_is_integer(v)) {
        r = kf_err(err, -EBADMSG, "truncatedAlerts must be an integer");
        goto release_notification;
    }
    n.truncated_alerts = v ? json_integer_value(v) : 0;
    alerts = json_object_get(root, "alerts");
    if (!json_is_array(alerts)) {
        r = kf_err(err, -EBADMSG, "alerts must be an array");
        goto release_notification;
    }
    if (json_array_size(alerts) > KF_OBS_WEBHOOK_MAX_ALERTS) {
        r = kf_err(err, -E2BIG, "more than %d alerts", KF_OBS_WEBHOOK_MAX_ALERTS);
        goto release_notification;
    }
    n.alerts = kf_xcalloc(json_array_size(alerts) + 1, sizeof(*n.alerts));
    for (size_t i = 0; i < json_array_size(alerts); i++) {
        snprintf(where, sizeof(where), "alerts[%zu].", i);
        p.where = where;
        n.n_alerts = i + 1;
        r = parse_alert(&p, json_array_get(alerts, i), &n.alerts[i]);
        if (r < 0)
            goto release_notification;
    }
    n.raw = kf_xmalloc(len + 1);
    memcpy(n.raw, body, len);
    n.raw[len] = '\0';
    n.raw_len = len;
    json_decref(root);
    *ret = n;
    return 0;
release_notification:
    json_decref(root);
    kf_obs_notification_release(&n);
    return r;
}

struct fp_status {
    const char *fingerprint;
    bool firing;
};

static int cmp_fp(const void *a, const void *b)
{
    const struct fp_status *x = a, *y = b;
    int c = strcmp(x->fingerprint, y->fingerprint);

    return c ? c : (int)x->firing - (int)y->firing;
}

void kf_obs_notification_digest(const struct kf_obs_notification *n, uint8_t out[16])
{
    struct fp_status *fps = kf_xcalloc(n->n_alerts + 1, sizeof(*fps));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    for (size_t i = 0; i < n->n_alerts; i++)
        fps[i] = (struct fp_status){ n->alerts[i].fingerprint, n->alerts[i].firing };
    qsort(fps, n->n_alerts, sizeof(*fps), cmp_fp);
    if (!ctx)
        kf_abort("out of memory for a digest context");
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    /* NUL-separated fields: no two different keys hash the same input */
    EVP_DigestUpdate(ctx, n->receiver, strlen(n->receiver) + 1);
    EVP_DigestUpdate(ctx, n->group_key, strlen(n->group_key) + 1);
    EVP_DigestUpdate(ctx, n->firing ? "F" : "R", 2);
    for (size_t i = 0; i < n->n_alerts; i++) {
        EVP_DigestUpdate(ctx, fps[i].fingerprint, strlen(fps[i].fingerprint) + 1);
        EVP_DigestUpdate(ctx, fps[i].firing ? "F" : "R", 2);
    }
    EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    memcpy(out, md, 16);
    free(fps);
}

void kf_obs_notification_key(const struct kf_obs_notification *n, char out[33])
{
    uint8_t md[16];

    kf_obs_notification_digest(n, md);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
