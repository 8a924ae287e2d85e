/* obs-receiver.h: kfleetd's alert receiver adapter, as a library.
 *
 * Alertmanager sends every webhook, DingTalk and SMS receiver's
 * notifications (webhook payload version 4) to kfleetd, which turns each
 * into the requests the real destination expects:
 *
 *   kf_obs_webhook_parse()   bounded parse of the v4 JSON payload
 *   kf_obs_dedup_claim()     idempotency and ordering: Alertmanager in HA
 *                            delivers at least once and can re-send a stale
 *                            firing after its resolve (reference §2.5)
 *   kf_obs_build()           the HTTP requests for one target: DingTalk
 *                            (signed markdown), an SMS gateway (a request
 *                            template), or a plain webhook (the payload)
 *   kf_obs_deliver()         one request over libcurl, with a timeout
 *   kf_obs_classify()        delivered / retry / give up, per target kind
 *   kf_obs_retry_delay_ms()  the back-off between attempts
 *   kf_obs_dedup_done()      records what was delivered
 *
 * The caller owns the loop (and its threads), the HTTP endpoint, the
 * persistence schedule (kf_obs_dedup_save/load) and the logging. Secrets
 * (DingTalk secret, gateway keys) live in kf_obs_target and end up only in
 * the request URL, headers or body; kf_obs_delivery.log_url is the part of
 * the URL that may be logged.
 */
#ifndef KF_OBS_RECEIVER_H
#define KF_OBS_RECEIVER_H

#include "kfleet/base.h"
#include "kfleet/cidr.h"
#include "kfleet/obs.h"

struct kf_strbuf;

/* Hard limits on what a payload may hold; beyond them parsing fails with
 * -E2BIG (the API's 413). Alertmanager's payloads for kfleet's alerts are
 * a few KiB. */
#define KF_OBS_WEBHOOK_MAX_BYTES  (1024 * 1024)
#define KF_OBS_WEBHOOK_MAX_ALERTS 1000
#define KF_OBS_WEBHOOK_MAX_LABELS 128   /* per label or annotation set */
#define KF_OBS_WEBHOOK_MAX_STRING 16384 /* bytes of any one string */

/* ---- the payload ------------------------------------------------------- */

struct kf_obs_kv {
    char *name;
    char *value;
};

/* A label or annotation set, sorted by name. */
struct kf_obs_kvs {
    struct kf_obs_kv *items;
    size_t n;
};

/* The value of name in kvs, or NULL. */
const char *kf_obs_kvs_get(const struct kf_obs_kvs *kvs, const char *name);

struct kf_obs_alert {
    bool firing; /* status "firing" (else "resolved") */
    struct kf_obs_kvs labels;
    struct kf_obs_kvs annotations;
    int64_t starts_at_ms;
    int64_t ends_at_ms; /* 0 while firing (Go's zero time on the wire) */
    char *generator_url;
    char *fingerprint;
    /* Set by kf_obs_dedup_claim: a firing that started before a resolve of
     * the same alert already delivered. Builders leave stale alerts out. */
    bool stale;
};

struct kf_obs_notification {
    char *receiver;
    bool firing; /* the group's status */
    char *group_key;
    char *external_url;
    int64_t truncated_alerts;
    struct kf_obs_alert *alerts;
    size_t n_alerts;
    struct kf_obs_kvs group_labels;
    struct kf_obs_kvs common_labels;
    struct kf_obs_kvs common_annotations;
    char *raw; /* the payload as received, for forwarding */
    size_t raw_len;
};

/* Parses an Alertmanager webhook payload of version "4". Every field the
 * adapter uses is checked for type; unknown fields are ignored; times are
 * RFC 3339 in UTC. Returns 0, -EBADMSG (malformed: why in err) or -E2BIG
 * (over a limit above); *ret is untouched on failure. */
int kf_obs_webhook_parse(const char *body, size_t len, struct kf_obs_notification *ret,
                         struct kf_strbuf *err);
void kf_obs_notification_release(struct kf_obs_notification *n);

/* The idempotency key of a notification: receiver, group key, status and
 * the sorted (fingerprint, alert status) list, hashed (SHA-256, 32 hex
 * digits). Stable across Alertmanager peers: both send the same key for
 * the same state of a group. Sent along as X-Kfleet-Idempotency-Key (and
 * {{id}} in SMS templates) so a destination can deduplicate too. */
void kf_obs_notification_key(const struct kf_obs_notification *n, char out[33]);

/* ---- idempotency and ordering ----------------------------------------- */

/* What has been delivered, bounded: at most `capacity` notification keys
 * and as many alert states; the oldest are forgotten first. Thread-safe. */
struct kf_obs_dedup;

/* window_ms: how long a delivered notification counts as already sent
 * (keep it below the routes' repeat_interval so reminders get through and
 * above the time Alertmanager peers take to flush the same group, about
 * peer timeout + group_interval) [10 min]. capacity [10,000]. */
struct kf_obs_dedup *kf_obs_dedup_new(size_t capacity, int64_t window_ms);
void kf_obs_dedup_free(struct kf_obs_dedup *d);

enum kf_obs_verdict {
    KF_OBS_DELIVER,   /* claimed: deliver it, then call kf_obs_dedup_done */
    KF_OBS_DUPLICATE, /* the same state was delivered (or is being delivered) */
    KF_OBS_STALE,     /* every alert in it is a firing older than its delivered resolve */
};

/* Decides what to do with n, marking stale alerts (alert->stale):
 *   - a firing alert whose startsAt is not after the endsAt of a resolve
 *     already delivered for the same (receiver, group, fingerprint) is
 *     stale; if every alert is, the verdict is STALE;
 *   - if the same key (kf_obs_notification_key) was delivered within the
 *     window and no alert in it changed status since, or is being
 *     delivered right now, DUPLICATE;
 *   - otherwise DELIVER, and the key is held as "in flight" until
 *     kf_obs_dedup_done, so that the same notification arriving from the
 *     other Alertmanager meanwhile is a DUPLICATE. */
enum kf_obs_verdict kf_obs_dedup_claim(struct kf_obs_dedup *d, struct kf_obs_notification *n,
                                       int64_t now_ms);
/* Ends a claim: delivered (every target got it) records the key and each
 * non-stale alert's status (and a resolve's endsAt); not delivered
 * releases the key so Alertmanager's retry is delivered. */
void kf_obs_dedup_done(struct kf_obs_dedup *d, const struct kf_obs_notification *n, bool delivered,
                       int64_t now_ms);
/* Entries held (keys and alert states), for metrics and tests. */
size_t kf_obs_dedup_size(const struct kf_obs_dedup *d);
/* Writes the memory to path atomically (0600), oldest first; reads it back
 * into d (entries beyond the capacity push out the oldest). In-flight
 * claims are not saved. 0, or a negative errno (-EBADMSG for a file that
 * is not one of ours) with detail in err. */
int kf_obs_dedup_save(struct kf_obs_dedup *d, const char *path, struct kf_strbuf *err);
int kf_obs_dedup_load(struct kf_obs_dedup *d, const char *path, struct kf_strbuf *err);

/* ---- targets and deliveries ------------------------------------------- */

struct kf_obs_header {
    const char *name;
    const char *value; /* SMS: a template */
};

/* Where one receiver's notifications go, filled by the controller from an
 * AlertReceiver. Strings are borrowed. */
struct kf_obs_target {
    const char *receiver;           /* the receiver's name */
    enum kf_obs_receiver_kind kind; /* WEBHOOK, DINGTALK or SMS */
    /* WEBHOOK: the URL to POST the payload to; DINGTALK: the robot URL
     * with its access_token; SMS: a template. */
    const char *url;
    /* DINGTALK: the signing secret ("SEC..."); NULL: unsigned robot.
     * SMS: substituted for {{secret}}. */
    const char *secret;
    const struct kf_obs_header *headers; /* extra request headers */
    size_t n_headers;
    /* DINGTALK */
    const char *const *at_mobiles;
    size_t n_at_mobiles;
    bool at_all;
    /* SMS: the gateway request. Placeholders {{name}} in url, header values
     * and body: message, status, alertname, severity, summary, count,
     * receiver, id, secret, phone, phones, label.NAME (common labels).
     * Substitutions are escaped for where they land: percent-encoded in the
     * URL and form bodies, JSON-escaped in JSON bodies (write
     * "text": "{{message}}"), stripped of line breaks in headers. With
     * {{phone}} anywhere there is one request per phone, else one request
     * for all ({{phones}}: comma-separated). */
    const char *method;       /* [POST] */
    const char *body;         /* NULL: no body */
    const char *content_type; /* [application/json] */
    const char *const *phones;
    size_t n_phones;
    size_t max_chars; /* length cap of {{message}} in characters [300] */
};

/* Checks a target: URL scheme, method, known placeholders, SMS phones.
 * 0 or -EINVAL with why in err. kf_obs_build checks too. */
int kf_obs_target_check(const struct kf_obs_target *t, struct kf_strbuf *err);

/* Where deliveries may go (kfleetd --alert-destinations; docs/security.md,
 * "Secrets"). Entries are host names ("sms.example.com", "*.example.com"
 * for its subdomains), IP addresses or CIDR blocks. A request goes out if
 *   - its URL's host is a listed name (then to whatever address it has:
 *     the operator trusts it, a proxy may be in between), or
 *   - no list was given, or its URL's host is an address in a listed block;
 *     and every address connected to is in a listed block, or, when not
 *     listed, a public one: loopback, private, link-local, unique-local,
 *     multicast and unspecified addresses are refused, so a receiver cannot
 *     reach kfleetd's own ports, a cloud metadata service or the LAN. The
 *     address is checked as curl connects, after resolution (DNS rebinding
 *     cannot swap it in afterwards). */
struct kf_obs_destinations {
    char **names; /* lower-case; "*.d" matches subdomains of d */
    size_t n_names;
    struct kf_cidr *blocks;
    size_t n_blocks;
};

/* Parses a comma-separated list into d (zeroed first). NULL or "" gives
 * an empty list. 0 or -EINVAL with the bad entry in err. */
int kf_obs_destinations_parse(const char *list, struct kf_obs_destinations *d,
                              struct kf_strbuf *err);
void kf_obs_destinations_release(struct kf_obs_destinations *d);
/* Whether host (a URL's host, brackets removed) is a listed name. */
bool kf_obs_destination_named(const struct kf_obs_destinations *d, const char *host);
/* Whether a connection to the address (4 or 16 bytes) may be made. */
bool kf_obs_destination_addr_allowed(const struct kf_obs_destinations *d, int family,
                                     const void *addr);

/* The check of a receiver's URL that needs no name resolution, for the
 * monitoring controller (which leaves a receiver out of the Alertmanager
 * configuration rather than fail at each delivery): a listed name passes;
 * with a list, anything else must be an address in a listed block; without
 * one, an internal address or "localhost" is refused. A public name still
 * meets the address check at delivery. 0 or -EACCES (-EINVAL for a URL
 * without a host) with why in err. */
int kf_obs_destination_url_check(const struct kf_obs_destinations *d, const char *url,
                                 struct kf_strbuf *err);

struct kf_obs_delivery {
    char *method;
    char *url;      /* may carry secrets (DingTalk sign, gateway keys): never log */
    char **headers; /* "Name: value" */
    size_t n_headers;
    char *body;
    size_t body_len;
    char *log_url; /* scheme://host/path, without query or credentials */
};

struct kf_obs_deliveries {
    struct kf_obs_delivery *items;
    size_t n, alloc;
};
void kf_obs_deliveries_release(struct kf_obs_deliveries *d);

/* Builds the requests that deliver n to t (stale alerts left out; nothing
 * is added when none is left). now_ms: DingTalk's signature timestamp.
 * 0 or -EINVAL (a bad target) with why in err. */
int kf_obs_build(const struct kf_obs_target *t, const struct kf_obs_notification *n, int64_t now_ms,
                 struct kf_obs_deliveries *out, struct kf_strbuf *err);

/* DingTalk's robot signature: base64(HMAC-SHA256(key = secret,
 * message = "<timestamp_ms>\n<secret>")), appended to out (not yet
 * URL-encoded; kf_obs_build does that when it adds &timestamp=&sign=). */
void kf_obs_dingtalk_sign(const char *secret, int64_t timestamp_ms, struct kf_strbuf *out);

/* ---- sending and retrying --------------------------------------------- */

#define KF_OBS_RESPONSE_MAX_BODY (64 * 1024)

struct kf_obs_response {
    long status; /* HTTP status; 0 when none arrived */
    char *body;  /* capped at KF_OBS_RESPONSE_MAX_BODY; NUL-terminated */
    size_t body_len;
    char error[256]; /* transport error, when status is 0 */
};
void kf_obs_response_release(struct kf_obs_response *r);

/* Sends one request (http/https only, no redirects, the whole exchange
 * within timeout_ms) to a destination dests allows (NULL: as an empty
 * list, public addresses only). Returns 0 when an HTTP response arrived
 * (whatever its status), or a negative errno (-EACCES: the destination is
 * not allowed; -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, -EIO) with the
 * reason in ret->error. Call curl_global_init once before, from the main
 * thread. */
int kf_obs_deliver(const struct kf_obs_delivery *d, const struct kf_obs_destinations *dests,
                   int64_t timeout_ms, struct kf_obs_response *ret);

enum kf_obs_outcome {
    KF_OBS_DELIVERED,
    KF_OBS_RETRY,  /* transport error, 408, 429, 5xx, DingTalk's "too fast" */
    KF_OBS_FAILED, /* other 4xx, a DingTalk error code: retrying will not help */
};

/* What the response (or the transport error r, negative) means for a
 * target of this kind. */
enum kf_obs_outcome kf_obs_classify(enum kf_obs_receiver_kind kind, int r,
                                    const struct kf_obs_response *resp);

struct kf_obs_retry_policy {
    unsigned max_attempts; /* in all, the first included [6] */
    int64_t initial_ms;    /* delay after the first failure [1s] */
    int64_t max_ms;        /* cap on one delay [60s] */
    double multiplier;     /* [2] */
    double jitter;         /* +/- this fraction of the delay [0.2] */
};

/* The delay before attempt `attempt` (2 = the first retry), given a random
 * 32-bit value for the jitter; -1 when the policy allows no more attempts.
 * Zero fields take the defaults in brackets. */
int64_t kf_obs_retry_delay_ms(const struct kf_obs_retry_policy *p, unsigned attempt,
                              uint32_t random);

#endif
