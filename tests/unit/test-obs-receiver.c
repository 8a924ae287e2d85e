/* test-obs-receiver.c: the alert receiver adapter library.
 *
 * Parses the payload Alertmanager 0.25 sent in the lab (the fuzz seed
 * tests/fuzz/corpus/alert-webhook/lab-firing.json, verbatim), replays the
 * lab's HA delivery sequence through the deduplication (resolved, stale
 * firing, duplicate resolved, genuine re-fire), checks DingTalk's signature
 * against one computed by the openssl command line, expands SMS templates,
 * and delivers every kind to a local Python HTTP sink (obs-sink.py), which
 * verifies DingTalk's signature with Python's own hmac.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/json.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"

#include "obs-proc.h"

static char *read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = kf_xmalloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    buf[n] = '\0';
    fclose(f);
    if (ret_len)
        *ret_len = (size_t)n;
    return buf;
}

static char *seed(const char *name, size_t *len)
{
    char *path =
        kf_xasprintf("%s/tests/fuzz/corpus/alert-webhook/%s", getenv("KF_SOURCE_DIR"), name);
    char *s = read_file(path, len);

    assert_non_null(s);
    free(path);
    return s;
}

static void parse_ok(const char *body, struct kf_obs_notification *n)
{
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_obs_webhook_parse(body, strlen(body), n, &err) < 0)
        fail_msg("payload rejected: %s", err.buf);
    kf_strbuf_release(&err);
}

static void test_parse_lab_payload(void **state)
{
    struct kf_obs_notification n;
    size_t len;
    char *body = seed("lab-firing.json", &len);
    int64_t want;

    parse_ok(body, &n);
    assert_string_equal(n.receiver, "ops-webhook");
    assert_true(n.firing);
    assert_string_equal(n.group_key, "{}/{severity=\"warning\"}:{alertname=\"UnitCPUBusy\", "
                                     "region=\"cn-hangzhou\", unit=\"unit-1\"}");
    assert_string_equal(n.external_url, "http://vm:19193");
    assert_int_equal(n.n_alerts, 1);
    assert_true(n.alerts[0].firing);
    assert_string_equal(n.alerts[0].fingerprint, "781bcfce382e13f2");
    assert_string_equal(kf_obs_kvs_get(&n.alerts[0].labels, "unit"), "unit-1");
    assert_string_equal(kf_obs_kvs_get(&n.alerts[0].annotations, "summary"),
                        "CPU utilisation of unit-1 in cn-hangzhou is 69.55%");
    /* labels come sorted */
    for (size_t i = 1; i < n.alerts[0].labels.n; i++)
        assert_true(strcmp(n.alerts[0].labels.items[i - 1].name, n.alerts[0].labels.items[i].name) <
                    0);
    assert_int_equal(kf_time_parse_rfc3339("2026-11-27T19:14:38.161Z", &want), 0);
    assert_int_equal(n.alerts[0].starts_at_ms, want);
    assert_int_equal(n.alerts[0].ends_at_ms, 0); /* Go's zero time */
    assert_string_equal(kf_obs_kvs_get(&n.group_labels, "region"), "cn-hangzhou");
    assert_int_equal(n.raw_len, len);
    assert_memory_equal(n.raw, body, len);
    kf_obs_notification_release(&n);
    free(body);

    /* nanoseconds and a numeric offset, as Go writes local times */
    body = seed("mixed-offset.json", &len);
    parse_ok(body, &n);
    assert_int_equal(kf_time_parse_rfc3339("2026-11-27T19:14:38.161Z", &want), 0);
    assert_int_equal(n.alerts[0].starts_at_ms, want);
    assert_false(n.alerts[1].firing);
    assert_int_equal(kf_time_parse_rfc3339("2026-11-27T19:10:00.500Z", &want), 0);
    assert_int_equal(n.alerts[1].ends_at_ms, want);
    assert_int_equal(n.truncated_alerts, 3);
    kf_obs_notification_release(&n);
    free(body);
}

static void expect_reject(const char *body, int code, const char *needle)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_notification n = { 0 };

    assert_int_equal(kf_obs_webhook_parse(body, strlen(body), &n, &err), code);
    if (!strstr(err.buf, needle))
        fail_msg("expected \"%s\" in: %s", needle, err.buf);
    assert_null(n.receiver); /* untouched */
    kf_strbuf_release(&err);
}

static void test_parse_rejects(void **state)
{
    struct kf_strbuf big = KF_STRBUF_INIT;

    expect_reject("not json", -EBADMSG, "invalid JSON");
    expect_reject("[]", -EBADMSG, "JSON object");
    expect_reject("{\"version\":\"3\"}", -EBADMSG, "version \"3\"");
    expect_reject("{\"version\":\"4\",\"status\":\"odd\"}", -EBADMSG, "status");
    expect_reject("{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\",\"groupKey\":\"g\","
                  "\"alerts\":[{\"status\":\"firing\",\"labels\":{}}]}",
                  -EBADMSG, "alerts[0].fingerprint is missing");
    expect_reject(
        "{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\",\"groupKey\":\"g\","
        "\"alerts\":[{\"status\":\"firing\",\"labels\":{\"a\":1},\"fingerprint\":\"f\"}]}",
        -EBADMSG, "alerts[0].labels.a");
    expect_reject("{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\",\"groupKey\":\"g\","
                  "\"alerts\":[{\"status\":\"firing\",\"startsAt\":\"yesterday\","
                  "\"fingerprint\":\"f\"}]}",
                  -EBADMSG, "startsAt");
    /* over the limits */
    kf_strbuf_addstr(&big, "{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\","
                           "\"groupKey\":\"g\",\"alerts\":[");
    for (int i = 0; i <= KF_OBS_WEBHOOK_MAX_ALERTS; i++)
        kf_strbuf_addf(&big, "%s{\"status\":\"firing\",\"fingerprint\":\"f%d\"}", i ? "," : "", i);
    kf_strbuf_addstr(&big, "]}");
    expect_reject(big.buf, -E2BIG, "more than 1000 alerts");
    kf_strbuf_reset(&big);
    kf_strbuf_addstr(&big, "{\"version\":\"4\",\"receiver\":\"");
    for (int i = 0; i < KF_OBS_WEBHOOK_MAX_STRING + 1; i++)
        kf_strbuf_addch(&big, 'x');
    kf_strbuf_addstr(&big, "\",\"status\":\"firing\",\"groupKey\":\"g\",\"alerts\":[]}");
    expect_reject(big.buf, -E2BIG, "receiver is longer");
    kf_strbuf_release(&big);
}

/* A one-alert payload for the deduplication tests. */
static void one_alert(struct kf_obs_notification *n, const char *receiver, bool firing,
                      const char *fp, const char *starts, const char *ends)
{
    char *body = kf_xasprintf(
        "{\"version\":\"4\",\"receiver\":\"%s\",\"status\":\"%s\",\"groupKey\":\"{}:{a=\\\"b\\\"}"
        "\","
        "\"alerts\":[{\"status\":\"%s\",\"labels\":{\"alertname\":\"RegionUnitsDown\"},"
        "\"annotations\":{\"summary\":\"only 1 units up\"},"
        "\"startsAt\":\"%s\",\"endsAt\":\"%s\",\"fingerprint\":\"%s\"}],"
        "\"groupLabels\":{\"alertname\":\"RegionUnitsDown\"},"
        "\"commonLabels\":{\"alertname\":\"RegionUnitsDown\"}}",
        receiver, firing ? "firing" : "resolved", firing ? "firing" : "resolved", starts, ends, fp);

    parse_ok(body, n);
    free(body);
}

#define ZERO "0001-01-01T00:00:00Z"

static enum kf_obs_verdict deliver(struct kf_obs_dedup *d, struct kf_obs_notification *n,
                                   int64_t now)
{
    enum kf_obs_verdict v = kf_obs_dedup_claim(d, n, now);

    if (v == KF_OBS_DELIVER)
        kf_obs_dedup_done(d, n, true, now);
    kf_obs_notification_release(n);
    return v;
}

/* The notification log of reference §6.5, as two Alertmanager peers sent it. */
static void test_dedup_lab_sequence(void **state)
{
    struct kf_obs_dedup *d = kf_obs_dedup_new(100, 600000);
    struct kf_obs_notification n;
    int64_t t = 1000000;

    one_alert(&n, "dingtalk", true, "4faf", "2026-11-27T19:15:13.161Z", ZERO);
    assert_int_equal(deliver(d, &n, t), KF_OBS_DELIVER);
    /* the other peer's copy of the same state */
    one_alert(&n, "dingtalk", true, "4faf", "2026-11-27T19:15:13.161Z", ZERO);
    assert_int_equal(deliver(d, &n, t + 15000), KF_OBS_DUPLICATE);
    one_alert(&n, "dingtalk", false, "4faf", "2026-11-27T19:15:13.161Z",
              "2026-11-27T19:16:53.161Z");
    assert_int_equal(deliver(d, &n, t + 100000), KF_OBS_DELIVER);
    /* the lagging peer's stale firing, 5 s after the resolve */
    one_alert(&n, "dingtalk", true, "4faf", "2026-11-27T19:15:13.161Z", ZERO);
    assert_int_equal(deliver(d, &n, t + 105000), KF_OBS_STALE);
    /* and its duplicate resolve, same endsAt */
    one_alert(&n, "dingtalk", false, "4faf", "2026-11-27T19:15:13.161Z",
              "2026-11-27T19:16:53.161Z");
    assert_int_equal(deliver(d, &n, t + 120000), KF_OBS_DUPLICATE);
    /* the genuine re-fire (kill #2): same fingerprint, new startsAt */
    one_alert(&n, "dingtalk", true, "4faf", "2026-11-27T19:17:28.161Z", ZERO);
    assert_int_equal(deliver(d, &n, t + 135000), KF_OBS_DELIVER);
    one_alert(&n, "dingtalk", false, "4faf", "2026-11-27T19:17:28.161Z",
              "2026-11-27T19:23:22.161Z");
    assert_int_equal(deliver(d, &n, t + 480000), KF_OBS_DELIVER);
    /* the same group for another receiver is its own story */
    one_alert(&n, "email", false, "4faf", "2026-11-27T19:17:28.161Z", "2026-11-27T19:23:22.161Z");
    assert_int_equal(deliver(d, &n, t + 480000), KF_OBS_DELIVER);
    /* Alertmanager's repeat after the window is a reminder, not a duplicate */
    one_alert(&n, "ops", true, "77", "2026-11-27T20:00:00Z", ZERO);
    assert_int_equal(deliver(d, &n, t), KF_OBS_DELIVER);
    one_alert(&n, "ops", true, "77", "2026-11-27T20:00:00Z", ZERO);
    assert_int_equal(deliver(d, &n, t + 599000), KF_OBS_DUPLICATE);
    one_alert(&n, "ops", true, "77", "2026-11-27T20:00:00Z", ZERO);
    assert_int_equal(deliver(d, &n, t + 600000), KF_OBS_DELIVER);
    kf_obs_dedup_free(d);
}

static void test_dedup_in_flight_and_failure(void **state)
{
    struct kf_obs_dedup *d = kf_obs_dedup_new(100, 600000);
    struct kf_obs_notification a, b;

    one_alert(&a, "ops", true, "f1", "2026-11-27T19:15:13Z", ZERO);
    one_alert(&b, "ops", true, "f1", "2026-11-27T19:15:13Z", ZERO);
    assert_int_equal(kf_obs_dedup_claim(d, &a, 1000), KF_OBS_DELIVER);
    /* the other peer's copy arrives while the first is being delivered */
    assert_int_equal(kf_obs_dedup_claim(d, &b, 1001), KF_OBS_DUPLICATE);
    /* delivery failed: Alertmanager's retry must get through */
    kf_obs_dedup_done(d, &a, false, 1002);
    assert_int_equal(kf_obs_dedup_claim(d, &b, 1003), KF_OBS_DELIVER);
    kf_obs_dedup_done(d, &b, true, 1004);
    assert_int_equal(kf_obs_dedup_claim(d, &a, 1005), KF_OBS_DUPLICATE);
    kf_obs_notification_release(&a);
    kf_obs_notification_release(&b);
    kf_obs_dedup_free(d);
}

static void test_dedup_partly_stale(void **state)
{
    static const struct kf_obs_target hook = { .receiver = "ops",
                                               .kind = KF_OBS_RECEIVER_WEBHOOK,
                                               .url = "http://127.0.0.1:9/x" };
    struct kf_obs_dedup *d = kf_obs_dedup_new(100, 600000);
    struct kf_obs_deliveries out = { 0 };
    struct kf_obs_notification n;
    json_t *sent = NULL;
    char *body;

    /* a group with a new resolve and a stale firing: only the first goes out */
    body = seed("mixed-offset.json", NULL);
    parse_ok(body, &n);
    free(body);
    {
        /* a resolve of its first alert (same receiver, group, fingerprint)
         * that ended after that firing started */
        struct kf_obs_notification r;

        one_alert(&r, "sms-oncall", false, "aa11", "2026-11-27T19:00:00Z", "2026-11-27T19:30:00Z");
        free(r.group_key);
        r.group_key = kf_xstrdup(n.group_key);
        assert_int_equal(kf_obs_dedup_claim(d, &r, 2000), KF_OBS_DELIVER);
        kf_obs_dedup_done(d, &r, true, 2000);
        kf_obs_notification_release(&r);
    }
    assert_int_equal(kf_obs_dedup_claim(d, &n, 3000), KF_OBS_DELIVER);
    assert_true(n.alerts[0].stale);
    assert_false(n.alerts[1].stale);
    assert_int_equal(kf_obs_build(&hook, &n, 3000, &out, NULL), 0);
    assert_int_equal(out.n, 1);
    assert_int_equal(kf_json_parse(out.items[0].body, out.items[0].body_len, &sent, NULL), 0);
    assert_int_equal(json_array_size(json_object_get(sent, "alerts")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(sent, "alerts"), 0), "fingerprint")),
                        "bb22");
    json_decref(sent);
    kf_obs_deliveries_release(&out);
    kf_obs_notification_release(&n);
    kf_obs_dedup_free(d);
}

static void test_dedup_persists_and_stays_bounded(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_dedup *d = kf_obs_dedup_new(4, 600000), *again;
    struct kf_obs_notification n;
    char dir[] = "/tmp/kf-obs-dedup-XXXXXX";
    char *path, *bad;
    struct stat st;

    assert_non_null(mkdtemp(dir));
    path = kf_xasprintf("%s/dedup", dir);
    one_alert(&n, "dingtalk", false, "4faf", "2026-11-27T19:15:13.161Z",
              "2026-11-27T19:16:53.161Z");
    assert_int_equal(deliver(d, &n, 1000), KF_OBS_DELIVER);
    assert_int_equal(kf_obs_dedup_save(d, path, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a restarted kfleetd still knows the resolve: the stale firing is dropped */
    again = kf_obs_dedup_new(4, 600000);
    if (kf_obs_dedup_load(again, path, &err) < 0)
        fail_msg("load failed: %s", err.buf);
    assert_int_equal(kf_obs_dedup_size(again), 2);
    one_alert(&n, "dingtalk", true, "4faf", "2026-11-27T19:15:13.161Z", ZERO);
    assert_int_equal(deliver(again, &n, 2000), KF_OBS_STALE);
    one_alert(&n, "dingtalk", false, "4faf", "2026-11-27T19:15:13.161Z",
              "2026-11-27T19:16:53.161Z");
    assert_int_equal(deliver(again, &n, 2000), KF_OBS_DUPLICATE);

    /* bounded: 4 keys and 4 alert states at most, the oldest go first */
    for (int i = 0; i < 50; i++) {
        char fp[16];

        snprintf(fp, sizeof(fp), "fp%d", i);
        one_alert(&n, "ops", true, fp, "2026-11-27T19:15:13Z", ZERO);
        assert_int_equal(deliver(again, &n, 3000 + i), KF_OBS_DELIVER);
        assert_true(kf_obs_dedup_size(again) <= 8);
    }
    one_alert(&n, "ops", true, "fp49", "2026-11-27T19:15:13Z", ZERO);
    assert_int_equal(deliver(again, &n, 4000), KF_OBS_DUPLICATE);
    one_alert(&n, "ops", true, "fp0", "2026-11-27T19:15:13Z", ZERO);
    assert_int_equal(deliver(again, &n, 4000), KF_OBS_DELIVER); /* forgotten */

    /* a file that is not ours */
    bad = kf_xasprintf("%s/bad", dir);
    assert_int_equal(kf_write_file_atomic(bad, "hello\n", 6, 0600, true, NULL), 0);
    assert_int_equal(kf_obs_dedup_load(again, bad, &err), -EBADMSG);
    assert_int_equal(kf_write_file_atomic(bad, "# kfleet alert receiver memory v1\nK zz 1\n", 40,
                                          0600, true, NULL),
                     0);
    assert_int_equal(kf_obs_dedup_load(again, bad, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "line 2"));
    unlink(bad);
    unlink(path);
    rmdir(dir);
    free(bad);
    free(path);
    kf_obs_dedup_free(d);
    kf_obs_dedup_free(again);
    kf_strbuf_release(&err);
}

static void test_key(void **state)
{
    struct kf_obs_notification a, b;
    char ka[33], kb[33];
    char *body = seed("mixed-offset.json", NULL);
    struct kf_obs_alert tmp;

    parse_ok(body, &a);
    parse_ok(body, &b);
    free(body);
    /* the order of alerts does not matter */
    tmp = b.alerts[0];
    b.alerts[0] = b.alerts[1];
    b.alerts[1] = tmp;
    kf_obs_notification_key(&a, ka);
    kf_obs_notification_key(&b, kb);
    assert_string_equal(ka, kb);
    assert_int_equal(strlen(ka), 32);
    /* an alert's status does */
    b.alerts[0].firing = !b.alerts[0].firing;
    kf_obs_notification_key(&b, kb);
    assert_string_not_equal(ka, kb);
    b.alerts[0].firing = !b.alerts[0].firing;
    free(b.receiver);
    b.receiver = kf_xstrdup("other");
    kf_obs_notification_key(&b, kb);
    assert_string_not_equal(ka, kb);
    kf_obs_notification_release(&a);
    kf_obs_notification_release(&b);
}

/* The openssl command line's HMAC-SHA256, base64: independent of the code
 * under test. */
static void openssl_sign(const char *secret, const char *ts, char *out, size_t size)
{
    char *cmd = kf_xasprintf("printf '%%s\\n%%s' '%s' '%s' | openssl dgst -sha256 -hmac '%s' "
                             "-binary | openssl base64 -A",
                             ts, secret, secret);
    FILE *p = popen(cmd, "r");

    assert_non_null(p);
    assert_non_null(fgets(out, (int)size, p));
    assert_int_equal(pclose(p), 0);
    out[strcspn(out, "\n")] = '\0';
    free(cmd);
}

static void test_dingtalk_signature(void **state)
{
    static const char *const secrets[] = {
        "SEC1234567890abcdef",
        "SECb3b2e4fca4d26d6c0f8d6e97bc0bcd40a61d5e8e3a6b0a4f06c8a57c1b39a9e4f",
    };
    static const int64_t stamps[] = { 1700000000000, 1795806890911 };

    for (size_t i = 0; i < KF_ARRAY_SIZE(secrets); i++) {
        for (size_t j = 0; j < KF_ARRAY_SIZE(stamps); j++) {
            struct kf_strbuf sig = KF_STRBUF_INIT;
            char ts[32], want[128];

            snprintf(ts, sizeof(ts), "%" PRId64, stamps[j]);
            openssl_sign(secrets[i], ts, want, sizeof(want));
            kf_obs_dingtalk_sign(secrets[i], stamps[j], &sig);
            assert_string_equal(sig.buf, want);
            kf_strbuf_release(&sig);
        }
    }
}

static void test_dingtalk_message(void **state)
{
    static const char *const mobiles[] = { "13800000000" };
    const struct kf_obs_target t = {
        .receiver = "dingtalk-oncall",
        .kind = KF_OBS_RECEIVER_DINGTALK,
        .url = "https://oapi.dingtalk.com/robot/send?access_token=tok",
        .secret = "SECabc",
        .at_mobiles = mobiles,
        .n_at_mobiles = 1,
    };
    struct kf_obs_deliveries out = { 0 };
    struct kf_obs_notification n;
    struct kf_strbuf sig = KF_STRBUF_INIT, want_url = KF_STRBUF_INIT;
    char *body = seed("mixed-offset.json", NULL);
    json_t *msg = NULL;
    const char *text;

    parse_ok(body, &n);
    free(body);
    assert_int_equal(kf_obs_build(&t, &n, 1700000000000, &out, NULL), 0);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.items[0].method, "POST");
    /* the signature goes into the URL, URL-encoded */
    kf_obs_dingtalk_sign("SECabc", 1700000000000, &sig);
    kf_strbuf_addstr(&want_url, t.url);
    kf_strbuf_addstr(&want_url, "&timestamp=1700000000000&sign=");
    for (const char *p = sig.buf; *p; p++) {
        if (*p == '+' || *p == '/' || *p == '=')
            kf_strbuf_addf(&want_url, "%%%02X", *p);
        else
            kf_strbuf_addch(&want_url, *p);
    }
    assert_string_equal(out.items[0].url, want_url.buf);
    /* ... and never into what may be logged */
    assert_string_equal(out.items[0].log_url, "https://oapi.dingtalk.com/robot/send");
    assert_int_equal(kf_json_parse(out.items[0].body, out.items[0].body_len, &msg, NULL), 0);
    assert_string_equal(kf_json_str(msg, "msgtype", NULL), "markdown");
    assert_string_equal(kf_json_str(msg, "markdown.title", NULL), "[FIRING:1] KfleetHostDown");
    text = kf_json_str(msg, "markdown.text", NULL);
    assert_non_null(strstr(text, "### [FIRING:1] KfleetHostDown"));
    assert_non_null(strstr(text, "**region** cn-hangzhou"));
    assert_non_null(strstr(text, "- **FIRING** Host hz-h2 in unit hz-u1 (cn-hangzhou) is down"));
    assert_non_null(strstr(text, "node_exporter on host hz-h2 \"stopped\" answering"));
    assert_non_null(strstr(text, "- **RESOLVED** Host hz-h1"));
    assert_non_null(strstr(text, "since 2026-11-27 19:14:38 UTC"));
    assert_non_null(strstr(text, "and 3 more")); /* truncatedAlerts */
    assert_non_null(strstr(text, "@13800000000"));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(msg, "at"), "atMobiles"), 0)),
                        "13800000000");
    json_decref(msg);
    kf_strbuf_release(&sig);
    kf_strbuf_release(&want_url);
    kf_obs_deliveries_release(&out);
    kf_obs_notification_release(&n);
}

static const char *header(const struct kf_obs_delivery *d, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < d->n_headers; i++)
        if (strncmp(d->headers[i], name, len) == 0 && d->headers[i][len] == ':')
            return d->headers[i] + len + 2;
    return NULL;
}

static void test_sms_templates(void **state)
{
    static const char *const phones[] = { "+8613800000000", "13900000000" };
    static const struct kf_obs_header hdr[] = { { "Authorization", "Key {{secret}}" },
                                                { "X-Summary", "{{summary}}" } };
    struct kf_obs_target t = {
        .receiver = "sms-oncall",
        .kind = KF_OBS_RECEIVER_SMS,
        .url = "https://sms.example.invalid/v1/send?to={{phone}}&tag={{label.region}}",
        .secret = "k3y",
        .headers = hdr,
        .n_headers = 2,
        .body = "{\"text\": \"{{message}}\", \"count\": {{count}}, \"id\": \"{{id}}\"}",
        .phones = phones,
        .n_phones = 2,
        .max_chars = 60,
    };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_deliveries out = { 0 };
    struct kf_obs_notification n;
    char *body = seed("mixed-offset.json", NULL);
    json_t *v = NULL;
    char id[33];
    const char *text;

    parse_ok(body, &n);
    free(body);
    kf_obs_notification_key(&n, id);
    assert_int_equal(kf_obs_build(&t, &n, 0, &out, &err), 0);
    /* {{phone}}: one request per phone, each URL-encoded */
    assert_int_equal(out.n, 2);
    assert_string_equal(out.items[0].url,
                        "https://sms.example.invalid/v1/send?to=%2B8613800000000&tag=cn-hangzhou");
    assert_string_equal(out.items[1].url,
                        "https://sms.example.invalid/v1/send?to=13900000000&tag=cn-hangzhou");
    assert_string_equal(header(&out.items[0], "Authorization"), "Key k3y");
    assert_string_equal(header(&out.items[0], "Content-Type"), "application/json");
    assert_string_equal(header(&out.items[0], "X-Kfleet-Idempotency-Key"), id);
    /* the body is valid JSON whatever the alert's text holds */
    assert_int_equal(kf_json_parse(out.items[0].body, out.items[0].body_len, &v, &err), 0);
    text = kf_json_str(v, "text", NULL);
    assert_non_null(text);
    assert_true(kf_str_has_prefix(text, "[FIRING:1] KfleetHostDown cn-hangzhou/hz-u1: Host"));
    assert_true(kf_str_has_suffix(text, "..."));
    assert_int_equal(strlen(text), 60);
    assert_int_equal(kf_json_int(v, "count", 0), 2);
    assert_string_equal(kf_json_str(v, "id", NULL), id);
    json_decref(v);
    kf_obs_deliveries_release(&out);

    /* {{secret}} never in the URL: gateways and proxies log URLs */
    t.url = "https://sms.example.invalid/v1/send?key={{secret}}";
    assert_int_equal(kf_obs_build(&t, &n, 0, &out, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "{{secret}} may not be in the URL"));
    kf_strbuf_reset(&err);

    /* without {{phone}}: one request for all, as a form */
    t.url = "http://127.0.0.1:9/send";
    t.body = "to={{phones}}&msg={{message}}&k={{secret}}";
    t.content_type = "application/x-www-form-urlencoded";
    t.max_chars = 0;
    assert_int_equal(kf_obs_build(&t, &n, 0, &out, &err), 0);
    assert_int_equal(out.n, 1);
    assert_true(kf_str_has_prefix(out.items[0].body,
                                  "to=%2B8613800000000%2C13900000000&msg=%5BFIRING%3A1%5D%20"));
    assert_true(kf_str_has_suffix(out.items[0].body, "&k=k3y"));
    assert_string_equal(out.items[0].log_url, "http://127.0.0.1:9/send");
    kf_obs_deliveries_release(&out);

    /* mistakes are caught before anything is sent */
    t.body = "{{mesage}}";
    assert_int_equal(kf_obs_build(&t, &n, 0, &out, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "unknown placeholder {{mesage}}"));
    t.body = "{{message";
    assert_int_equal(kf_obs_target_check(&t, &err), -EINVAL);
    t.body = NULL;
    t.n_phones = 0;
    assert_int_equal(kf_obs_target_check(&t, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "phones"));
    t.n_phones = 2;
    t.url = "ftp://x/";
    assert_int_equal(kf_obs_target_check(&t, &err), -EINVAL);
    t.url = "http://x/";
    t.kind = KF_OBS_RECEIVER_EMAIL;
    assert_int_equal(kf_obs_target_check(&t, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "email"));
    assert_int_equal(out.n, 0);
    kf_obs_notification_release(&n);
    kf_strbuf_release(&err);
}

static void test_retry_policy(void **state)
{
    const uint32_t mid = 1u << 31; /* no jitter */
    struct kf_obs_retry_policy p = { 0 };

    assert_int_equal(kf_obs_retry_delay_ms(NULL, 1, mid), 0);
    assert_int_equal(kf_obs_retry_delay_ms(NULL, 2, mid), 1000);
    assert_int_equal(kf_obs_retry_delay_ms(NULL, 3, mid), 2000);
    assert_int_equal(kf_obs_retry_delay_ms(NULL, 6, mid), 16000);
    assert_int_equal(kf_obs_retry_delay_ms(NULL, 7, mid), -1);
    p.max_attempts = 20;
    assert_int_equal(kf_obs_retry_delay_ms(&p, 12, mid), 60000); /* capped */
    for (uint32_t r = 0; r < 4000000000u; r += 400000000u) {
        int64_t d = kf_obs_retry_delay_ms(&p, 3, r);

        assert_true(d >= 1600 && d <= 2400);
    }
}

/* ---- delivery to a real HTTP server ---- */

struct sink {
    char dir[64];
    char *log;
    pid_t pid;
    int port;
};

static int sink_setup(void **state)
{
    struct sink *s = kf_xcalloc(1, sizeof(*s));
    char *script = kf_xasprintf("%s/tests/unit/obs-sink.py", getenv("KF_SOURCE_DIR"));
    char *port_file, *out;

    snprintf(s->dir, sizeof(s->dir), "/tmp/kf-obs-sink-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    port_file = kf_xasprintf("%s/port", s->dir);
    s->log = kf_xasprintf("%s/requests.jsonl", s->dir);
    out = kf_xasprintf("%s/sink.out", s->dir);
    s->pid = spawn_logged(
        (char *const[]){ "/usr/bin/python3", script, port_file, s->log, "SECsink", NULL }, out);
    for (int i = 0; i < 100 && s->pid > 0; i++) {
        char *port = read_file(port_file, NULL);

        if (port && kf_parse_int(port, &s->port) == 0) {
            free(port);
            break;
        }
        free(port);
        sleep_ms(50);
    }
    free(out);
    free(port_file);
    free(script);
    *state = s;
    return s->port > 0 ? 0 : -1;
}

static int sink_teardown(void **state)
{
    struct sink *s = *state;
    char *cmd;

    stop_pid(s->pid);
    cmd = kf_xasprintf("rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        print_error("cannot remove %s\n", s->dir);
    free(cmd);
    free(s->log);
    free(s);
    return 0;
}

/* The requests the sink received, one JSON object each. */
static json_t *sink_requests(struct sink *s)
{
    json_t *all = json_array();
    FILE *f = fopen(s->log, "r");
    char *line = NULL;
    size_t cap = 0;

    while (f && getline(&line, &cap, f) > 0)
        json_array_append_new(all, json_loads(line, 0, NULL));
    free(line);
    if (f)
        fclose(f);
    return all;
}

/* The sink listens on loopback: allowed as an operator would list it. */
static struct kf_obs_destinations local;

static enum kf_obs_outcome send_one(const struct kf_obs_target *t,
                                    const struct kf_obs_notification *n)
{
    struct kf_obs_deliveries out = { 0 };
    struct kf_obs_response resp;
    enum kf_obs_outcome o;
    int r;

    assert_int_equal(kf_obs_build(t, n, kf_now_ms(), &out, NULL), 0);
    assert_int_equal(out.n, 1);
    r = kf_obs_deliver(&out.items[0], &local, 5000, &resp);
    o = kf_obs_classify(t->kind, r, &resp);
    kf_obs_response_release(&resp);
    kf_obs_deliveries_release(&out);
    return o;
}

static void test_deliver_to_sink(void **state)
{
    struct sink *s = *state;
    struct kf_obs_notification n;
    char *body = seed("lab-firing.json", NULL);
    char *url;
    struct kf_obs_target ding = { .receiver = "ding",
                                  .kind = KF_OBS_RECEIVER_DINGTALK,
                                  .secret = "SECsink" };
    struct kf_obs_target hook = { .receiver = "hook", .kind = KF_OBS_RECEIVER_WEBHOOK };
    static const char *const phones[] = { "13800000000" };
    struct kf_obs_target sms = { .receiver = "sms",
                                 .kind = KF_OBS_RECEIVER_SMS,
                                 .body = "{\"to\": \"{{phones}}\", \"text\": \"{{message}}\"}",
                                 .phones = phones,
                                 .n_phones = 1 };
    static const struct kf_obs_header key_hdr[] = { { "X-Key", "{{secret}}" } };
    struct kf_obs_response resp;
    struct kf_obs_delivery dead = { .method = "POST", .log_url = "http://127.0.0.1/" };
    json_t *reqs, *req;
    char id[33];

    assert_int_equal(kf_obs_destinations_parse("127.0.0.1", &local, NULL), 0);
    parse_ok(body, &n);
    kf_obs_notification_key(&n, id);

    /* DingTalk: the sink checks the signature with Python's hmac */
    url = kf_xasprintf("http://127.0.0.1:%d/robot/send?access_token=tok", s->port);
    ding.url = url;
    assert_int_equal(send_one(&ding, &n), KF_OBS_DELIVERED);
    ding.secret = "SECwrong"; /* signed with the wrong secret: errcode 310000 */
    assert_int_equal(send_one(&ding, &n), KF_OBS_FAILED);
    free(url);
    url = kf_xasprintf("http://127.0.0.1:%d/busy", s->port);
    ding.url = url;
    assert_int_equal(send_one(&ding, &n), KF_OBS_RETRY);
    free(url);

    /* a plain webhook gets the payload byte for byte */
    url = kf_xasprintf("http://127.0.0.1:%d/hook", s->port);
    hook.url = url;
    assert_int_equal(send_one(&hook, &n), KF_OBS_DELIVERED);
    free(url);
    url = kf_xasprintf("http://127.0.0.1:%d/fail", s->port);
    hook.url = url;
    assert_int_equal(send_one(&hook, &n), KF_OBS_RETRY);
    free(url);
    url = kf_xasprintf("http://127.0.0.1:%d/reject", s->port);
    hook.url = url;
    assert_int_equal(send_one(&hook, &n), KF_OBS_FAILED);
    free(url);

    url = kf_xasprintf("http://127.0.0.1:%d/sms", s->port);
    sms.url = url;
    sms.headers = key_hdr;
    sms.n_headers = 1;
    sms.secret = "a&b";
    assert_int_equal(send_one(&sms, &n), KF_OBS_DELIVERED);
    free(url);

    /* nobody listening: a transport error, worth retrying */
    dead.url = kf_xasprintf("http://127.0.0.1:%d/", kf_test_port());
    assert_true(kf_obs_deliver(&dead, &local, 2000, &resp) < 0);
    assert_int_equal(resp.status, 0);
    assert_true(resp.error[0] != '\0');
    assert_int_equal(kf_obs_classify(KF_OBS_RECEIVER_WEBHOOK, -ECONNREFUSED, &resp), KF_OBS_RETRY);
    kf_obs_response_release(&resp);
    free(dead.url);

    reqs = sink_requests(s);
    assert_int_equal(json_array_size(reqs), 7);
    req = json_array_get(reqs, 0);
    assert_string_equal(kf_json_str(req, "path", NULL), "/robot/send");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(req, "query"), "access_token"), 0)),
                        "tok");
    assert_string_equal(kf_json_str(req, "headers.X-Kfleet-Idempotency-Key", NULL), id);
    req = json_array_get(reqs, 3);
    assert_string_equal(kf_json_str(req, "path", NULL), "/hook");
    assert_string_equal(kf_json_str(req, "body", NULL), body);
    assert_string_equal(kf_json_str(req, "headers.Content-Type", NULL), "application/json");
    req = json_array_get(reqs, 6);
    assert_string_equal(kf_json_str(req, "path", NULL), "/sms");
    assert_string_equal(kf_json_str(req, "headers.X-Key", NULL), "a&b");
    json_decref(reqs);
    kf_obs_notification_release(&n);
    kf_obs_destinations_release(&local);
    free(body);
}

/* Destinations: loopback, private and link-local refused unless listed;
 * a list restricts URLs to its names and blocks. */
static void test_destinations(void **state)
{
    struct kf_obs_destinations d;
    struct kf_obs_delivery del = { .method = "POST",
                                   .url = "http://127.0.0.1:9/x",
                                   .log_url = "http://127.0.0.1:9/x" };
    struct kf_obs_response resp;
    struct kf_strbuf err = KF_STRBUF_INIT;
    static const char *const internal[] = {
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
        "0.0.0.0",   "::1",      "fe80::1",    "fd00::1",     "::ffff:127.0.0.1"
    };
    unsigned char a[16];
    (void)state;

    assert_int_equal(kf_obs_destinations_parse(NULL, &d, &err), 0);
    for (size_t i = 0; i < KF_ARRAY_SIZE(internal); i++) {
        int fam = strchr(internal[i], ':') ? AF_INET6 : AF_INET;

        assert_int_equal(inet_pton(fam, internal[i], a), 1);
        assert_false(kf_obs_destination_addr_allowed(&d, fam, a));
    }
    assert_int_equal(inet_pton(AF_INET, "93.184.216.34", a), 1);
    assert_true(kf_obs_destination_addr_allowed(&d, AF_INET, a));
    /* no list: a loopback URL is refused as curl connects, for good */
    assert_int_equal(kf_obs_deliver(&del, &d, 2000, &resp), -EACCES);
    assert_non_null(strstr(resp.error, "--alert-destinations"));
    assert_int_equal(kf_obs_classify(KF_OBS_RECEIVER_WEBHOOK, -EACCES, &resp), KF_OBS_FAILED);
    kf_obs_response_release(&resp);
    del.url = "http://localhost:9/x";
    assert_int_equal(kf_obs_deliver(&del, &d, 2000, &resp), -EACCES);
    kf_obs_response_release(&resp);
    kf_obs_destinations_release(&d);

    assert_int_equal(kf_obs_destinations_parse("sms.example.com,*.corp.example,10.0.0.0/8,"
                                               "127.0.0.1",
                                               &d, &err),
                     0);
    assert_true(kf_obs_destination_named(&d, "sms.example.com"));
    assert_true(kf_obs_destination_named(&d, "a.b.corp.example"));
    assert_false(kf_obs_destination_named(&d, "corp.example"));
    assert_false(kf_obs_destination_named(&d, "evil.example"));
    assert_int_equal(inet_pton(AF_INET, "10.9.8.7", a), 1);
    assert_true(kf_obs_destination_addr_allowed(&d, AF_INET, a));
    /* a listed block lets its addresses through; a name not listed is refused */
    del.url = "http://evil.example/x";
    assert_int_equal(kf_obs_deliver(&del, &d, 2000, &resp), -EACCES);
    kf_obs_response_release(&resp);
    kf_obs_destinations_release(&d);

    assert_int_equal(kf_obs_destinations_parse("bad name!", &d, &err), -EINVAL);
    kf_strbuf_release(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lab_payload),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_dedup_lab_sequence),
        cmocka_unit_test(test_dedup_in_flight_and_failure),
        cmocka_unit_test(test_dedup_partly_stale),
        cmocka_unit_test(test_dedup_persists_and_stays_bounded),
        cmocka_unit_test(test_dingtalk_signature),
        cmocka_unit_test(test_dingtalk_message),
        cmocka_unit_test(test_sms_templates),
        cmocka_unit_test(test_destinations),
        cmocka_unit_test(test_retry_policy),
        cmocka_unit_test_setup_teardown(test_deliver_to_sink, sink_setup, sink_teardown),
    };
    int r;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
