/* test-monitoring.c: kfleetd's monitoring service without the stack:
 * --monitoring-config parsing (values, refusals with the member named),
 * and the alert receiver adapter as Alertmanager meets it: the bearer
 * token, unknown receivers, malformed payloads, delivery to a real HTTP
 * server (tests/unit/obs-sink.py, which checks DingTalk's signature), the
 * duplicate a second Alertmanager sends, retries that give up, the
 * unrouted fallback, and the idempotency memory surviving a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <sys/stat.h>

#include "kfleet/file.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/monitoring.h"
#include "kfleet/strbuf.h"
#include "obs-proc.h"

static char *write_tmp(const char *dir, const char *name, const char *text)
{
    char *path = kf_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_config(void **state)
{
    char dir[] = "/tmp/kf-mon-cfg-XXXXXX";
    struct kf_mon_config c;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *p;
    (void)state;

    assert_non_null(mkdtemp(dir));
    kf_mon_config_init(&c);
    p = write_tmp(dir, "ok.json",
                  "{\"portBase\": 30000, \"scrapeInterval\": \"5s\", \"peerTimeout\": \"2s\","
                  " \"route\": {\"groupBy\": [\"alertname\", \"host\"], \"groupInterval\": \"1m\"},"
                  " \"smtp\": {\"smarthost\": \"127.0.0.1:25\", \"from\": \"k@example.com\"},"
                  " \"alerts\": {\"KfleetHostDown\": {\"for\": \"30s\", \"severity\": \"page\"}},"
                  " \"centrals\": [{\"name\": \"c1\", \"listen\": \"10.0.0.1:9090\"}],"
                  " \"retry\": {\"maxAttempts\": 3, \"initial\": \"100ms\"}}");
    assert_int_equal(kf_mon_config_load(p, &c, &err), 0);
    assert_int_equal(c.port_base, 30000);
    assert_int_equal(c.settings.scrape_interval_ms, 5000);
    assert_int_equal(c.peer_timeout_ms, 2000);
    assert_int_equal(c.root.n_group_by, 2);
    assert_string_equal(c.root.group_by[1], "host");
    assert_int_equal(c.root.group_interval_ms, 60000);
    assert_string_equal(c.smtp.smarthost, "127.0.0.1:25");
    assert_int_equal(c.n_overrides, 1);
    assert_string_equal(c.overrides[0].alert, "KfleetHostDown");
    assert_int_equal(c.overrides[0].for_ms, 30000);
    assert_string_equal(c.overrides[0].severity, "page");
    assert_int_equal(c.n_centrals, 1);
    assert_string_equal(c.centrals[0].listen, "10.0.0.1:9090");
    assert_int_equal(c.retry.max_attempts, 3);
    assert_int_equal(c.retry.initial_ms, 100);
    kf_mon_config_release(&c);
    free(p);

    /* a misspelt member, a bad duration, a password in the file: refused */
    p = write_tmp(dir, "typo.json", "{\"scrapeIntervall\": \"5s\"}");
    assert_int_equal(kf_mon_config_load(p, &c, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "\"scrapeIntervall\": unknown member"));
    kf_mon_config_release(&c);
    free(p);
    kf_strbuf_reset(&err);
    p = write_tmp(dir, "dur.json", "{\"federationInterval\": \"often\"}");
    assert_int_equal(kf_mon_config_load(p, &c, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "must be a duration"));
    kf_mon_config_release(&c);
    free(p);
    kf_strbuf_reset(&err);
    p = write_tmp(dir, "pw.json", "{\"smtp\": {\"authPassword\": \"hunter2\"}}");
    assert_int_equal(kf_mon_config_load(p, &c, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "never goes in this file"));
    assert_null(strstr(err.buf, "hunter2"));
    kf_mon_config_release(&c);
    free(p);
    kf_strbuf_release(&err);
    kf_remove_tree(dir);
}

/* ---- the adapter ------------------------------------------------------- */

struct fixture {
    char dir[64];
    pid_t sink_pid;
    int sink_port;
    char *sink_log;
    char *secret_file;
    char *loose_file; /* world-readable: refused */
    struct kf_metrics *metrics;
    struct kf_mon *mon;
    char *auth;
};

static void start_mon(struct fixture *fx)
{
    struct kf_mon_config c;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *token = NULL;
    char *tokfile;
    FILE *f;
    char buf[128] = "";

    kf_mon_config_init(&c);
    c.mode = KF_MON_EXTERNAL;
    c.retry.max_attempts = 2;
    c.retry.initial_ms = 20;
    c.retry.max_ms = 20;
    c.delivery_timeout_ms = 5000;
    c.alert_destinations = kf_xstrdup("127.0.0.1"); /* the test's hook listens there */
    fx->metrics = kf_metrics_new();
    assert_int_equal(kf_mon_new(&c, fx->dir, fx->metrics, &fx->mon, &err), 0);
    {
        char *secrets = kf_xasprintf("%s/secrets", fx->dir);
        struct stat st;

        assert_int_equal(stat(secrets, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        free(secrets);
    }
    tokfile = kf_xasprintf("%s/monitoring/.adapter/token", fx->dir);
    assert_string_equal(kf_mon_token_file(fx->mon), tokfile);
    f = fopen(tokfile, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    token = buf;
    free(fx->auth);
    fx->auth = kf_xasprintf("Bearer %s", token);
    free(tokfile);
    kf_strbuf_release(&err);

    {
        char *hook = kf_xasprintf("http://127.0.0.1:%d/hook", fx->sink_port);
        char *robot =
            kf_xasprintf("http://127.0.0.1:%d/robot/send?access_token=t0k", fx->sink_port);
        char *fail = kf_xasprintf("http://127.0.0.1:%d/fail", fx->sink_port);
        char *leak = kf_xasprintf("http://127.0.0.1:%d/leak?k={{secret}}", fx->sink_port);
        struct kf_mon_target t[5] = {
            { .t = { .receiver = "hook", .kind = KF_OBS_RECEIVER_WEBHOOK, .url = hook } },
            { .t = { .receiver = "ding", .kind = KF_OBS_RECEIVER_DINGTALK, .url = robot },
              .secret_file = fx->secret_file },
            { .t = { .receiver = "down", .kind = KF_OBS_RECEIVER_WEBHOOK, .url = fail } },
            /* secrets outside the allowed folders, or readable by anyone */
            { .t = { .receiver = "leak",
                     .kind = KF_OBS_RECEIVER_SMS,
                     .url = leak,
                     .phones = (const char *const[]){ "+1555" },
                     .n_phones = 1 },
              .secret_file = "/etc/hostname" },
            { .t = { .receiver = "loose",
                     .kind = KF_OBS_RECEIVER_SMS,
                     .url = leak,
                     .phones = (const char *const[]){ "+1555" },
                     .n_phones = 1 },
              .secret_file = fx->loose_file },
        };

        kf_mon_set_targets(fx->mon, t, 5);
        free(leak);
        free(hook);
        free(robot);
        free(fail);
    }
}

static void stop_mon(struct fixture *fx)
{
    kf_mon_free(fx->mon);
    fx->mon = NULL;
    kf_metrics_free(fx->metrics);
    fx->metrics = NULL;
}

static int setup(void **state)
{
    struct fixture *fx = kf_xcalloc(1, sizeof(*fx));
    char *script = kf_xasprintf("%s/tests/unit/obs-sink.py", getenv("KF_SOURCE_DIR"));
    char *port_file, *out;

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/kf-mon-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    port_file = kf_xasprintf("%s/sink-port", fx->dir);
    fx->sink_log = kf_xasprintf("%s/sink.jsonl", fx->dir);
    out = kf_xasprintf("%s/sink.out", fx->dir);
    fx->sink_pid = spawn_logged(
        (char *const[]){ "/usr/bin/python3", script, port_file, fx->sink_log, "SECsink", NULL },
        out);
    for (int i = 0; i < 100 && fx->sink_pid > 0 && !fx->sink_port; i++) {
        FILE *f = fopen(port_file, "r");

        if (f) {
            if (fscanf(f, "%d", &fx->sink_port) != 1)
                fx->sink_port = 0;
            fclose(f);
        }
        if (!fx->sink_port)
            sleep_ms(50);
    }
    {
        char *secrets = kf_xasprintf("%s/secrets", fx->dir);

        mkdir(secrets, 0700);
        fx->secret_file = write_tmp(secrets, "dingtalk", "SECsink\n");
        chmod(fx->secret_file, 0600);
        fx->loose_file = write_tmp(secrets, "loose", "SECsink\n");
        chmod(fx->loose_file, 0644);
        free(secrets);
    }
    free(out);
    free(port_file);
    free(script);
    *state = fx;
    if (fx->sink_port <= 0)
        return -1;
    start_mon(fx);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    stop_mon(fx);
    stop_pid(fx->sink_pid);
    kf_remove_tree(fx->dir);
    free(fx->sink_log);
    free(fx->secret_file);
    free(fx->loose_file);
    free(fx->auth);
    free(fx);
    return 0;
}

static const char payload[] =
    "{\"version\":\"4\",\"receiver\":\"%s\",\"status\":\"%s\",\"groupKey\":\"{}:{alertname=\\\""
    "KfleetHostDown\\\"}\",\"truncatedAlerts\":0,\"externalURL\":\"http://am:9093\","
    "\"groupLabels\":{\"alertname\":\"KfleetHostDown\"},\"commonLabels\":{\"alertname\":"
    "\"KfleetHostDown\",\"host\":\"h1\",\"severity\":\"warning\"},\"commonAnnotations\":"
    "{\"summary\":\"host h1 is down\"},\"alerts\":[{\"status\":\"%s\",\"labels\":{\"alertname\":"
    "\"KfleetHostDown\",\"host\":\"h1\",\"severity\":\"warning\"},\"annotations\":{\"summary\":"
    "\"host h1 is down\"},\"startsAt\":\"2026-01-01T10:00:00Z\",\"endsAt\":\"%s\","
    "\"generatorURL\":\"http://central:9090/graph\",\"fingerprint\":\"c0ffee\"}]}";

static int post_hook(struct fixture *fx, const char *receiver, const char *status, const char *auth,
                     struct kf_strbuf *resp)
{
    bool firing = strcmp(status, "firing") == 0;
    char *body = kf_xasprintf(payload, receiver, status, status,
                              firing ? "0001-01-01T00:00:00Z" : "2026-01-01T10:05:00Z");
    int code;

    kf_strbuf_reset(resp);
    code = kf_mon_handle_webhook(fx->mon, receiver, auth, body, strlen(body), resp);
    free(body);
    return code;
}

/* Requests the sink got on path. */
static size_t sink_count(struct fixture *fx, const char *path)
{
    FILE *f = fopen(fx->sink_log, "r");
    char *line = NULL;
    size_t cap = 0, n = 0;

    while (f && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);

        if (j && strcmp(json_string_value(json_object_get(j, "path")), path) == 0)
            n++;
        json_decref(j);
    }
    free(line);
    if (f)
        fclose(f);
    return n;
}

static bool metric_has(struct fixture *fx, const char *series)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    bool found;

    kf_metrics_write(fx->metrics, &out);
    found = strstr(out.buf, series) != NULL;
    if (!found)
        print_error("no \"%s\" in:\n%s\n", series, out.buf);
    kf_strbuf_release(&out);
    return found;
}

static void test_adapter(void **state)
{
    struct fixture *fx = *state;
    struct kf_strbuf resp = KF_STRBUF_INIT;
    char *wrong = kf_xstrdup(fx->auth);

    /* authentication, unknown receivers, malformed payloads */
    assert_int_equal(post_hook(fx, "hook", "firing", NULL, &resp), 401);
    wrong[strlen(wrong) - 1] ^= 1;
    assert_int_equal(post_hook(fx, "hook", "firing", wrong, &resp), 401);
    assert_int_equal(post_hook(fx, "nobody", "firing", fx->auth, &resp), 404);
    assert_int_equal(
        kf_mon_handle_webhook(fx->mon, "hook", fx->auth, "{\"version\":\"3\"}", 15, &resp), 400);
    assert_non_null(strstr(resp.buf, "malformed"));

    /* delivered once, although both Alertmanagers send it */
    assert_int_equal(post_hook(fx, "hook", "firing", fx->auth, &resp), 200);
    assert_non_null(strstr(resp.buf, "queued"));
    assert_int_equal(post_hook(fx, "hook", "firing", fx->auth, &resp), 200);
    assert_non_null(strstr(resp.buf, "duplicate"));
    assert_int_equal(kf_mon_wait_idle(fx->mon, 10000), 1);
    assert_int_equal(sink_count(fx, "/hook"), 1);

    /* DingTalk: signed with the secret read from its file (the sink checks) */
    assert_int_equal(post_hook(fx, "ding", "firing", fx->auth, &resp), 200);
    assert_int_equal(kf_mon_wait_idle(fx->mon, 10000), 1);
    assert_int_equal(sink_count(fx, "/robot/send"), 1);
    assert_true(metric_has(fx, "kfleet_alert_notifications_total{receiver=\"ding\","
                               "outcome=\"delivered\"} 1"));

    /* a destination that keeps failing: retried, then given up */
    assert_int_equal(post_hook(fx, "down", "firing", fx->auth, &resp), 200);
    assert_int_equal(kf_mon_wait_idle(fx->mon, 10000), 1);
    assert_int_equal(sink_count(fx, "/fail"), 2);
    assert_true(metric_has(fx, "kfleet_alert_notifications_total{receiver=\"down\","
                               "outcome=\"failed\"} 1"));

    /* a secret outside <data-dir>/secrets/ and secretDirs, or one anybody
     * may read, is never read nor sent */
    assert_false(kf_mon_secret_path_allowed(fx->mon, "/etc/hostname"));
    assert_true(kf_mon_secret_path_allowed(fx->mon, fx->secret_file));
    assert_int_equal(post_hook(fx, "leak", "firing", fx->auth, &resp), 200);
    assert_int_equal(post_hook(fx, "loose", "firing", fx->auth, &resp), 200);
    assert_int_equal(kf_mon_wait_idle(fx->mon, 10000), 1);
    assert_int_equal(sink_count(fx, "/leak"), 0);
    assert_true(metric_has(fx, "kfleet_alert_notifications_total{receiver=\"leak\","
                               "outcome=\"failed\"} 1"));
    assert_true(metric_has(fx, "kfleet_alert_notifications_total{receiver=\"loose\","
                               "outcome=\"failed\"} 1"));

    /* what no route takes is counted and dropped */
    assert_int_equal(post_hook(fx, KF_MON_DEFAULT_RECEIVER, "firing", fx->auth, &resp), 200);
    assert_non_null(strstr(resp.buf, "unrouted"));

    /* resolved, then the other peer's late firing: stale, not delivered */
    assert_int_equal(post_hook(fx, "hook", "resolved", fx->auth, &resp), 200);
    assert_int_equal(kf_mon_wait_idle(fx->mon, 10000), 1);
    assert_int_equal(sink_count(fx, "/hook"), 2);

    /* the memory and the token survive a restart */
    stop_mon(fx);
    start_mon(fx);
    assert_int_equal(post_hook(fx, "hook", "resolved", fx->auth, &resp), 200);
    assert_non_null(strstr(resp.buf, "duplicate"));
    assert_int_equal(post_hook(fx, "hook", "firing", fx->auth, &resp), 200);
    assert_non_null(strstr(resp.buf, "stale"));
    assert_int_equal(kf_mon_wait_idle(fx->mon, 10000), 1);
    assert_int_equal(sink_count(fx, "/hook"), 2);
    free(wrong);
    kf_strbuf_release(&resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test_setup_teardown(test_adapter, setup, teardown),
    };

    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
