/* test-metrics.c: the Prometheus metrics library (kfleet/obs-metrics.h):
 * exposition text, label escaping, histograms, collected families, the
 * series cap, and a promtool check of the output when promtool exists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "kfleet/obs-metrics.h"
#include "kfleet/strbuf.h"

static char *render(struct kf_metrics *m)
{
    struct kf_strbuf out = KF_STRBUF_INIT;

    assert_int_equal(kf_metrics_write(m, &out), 0);
    return kf_strbuf_detach(&out, NULL);
}

static void test_counter_and_gauge(void **state)
{
    struct kf_metrics *m = kf_metrics_new();
    struct kf_metric *c =
        kf_metrics_counter(m, "kfleet_test_requests_total", "Requests served.", "verb,code");
    struct kf_metric *g = kf_metrics_gauge(m, "kfleet_test_watchers", "Open watches.", NULL);
    char *text;

    kf_metric_add(c, KF_LABELS("get", "200"), 1);
    kf_metric_add(c, KF_LABELS("get", "200"), 2);
    kf_metric_add(c, KF_LABELS("create", "201"), 1);
    kf_metric_set(g, NULL, 7);
    kf_metric_add(g, NULL, -2);
    assert_true(kf_metric_value(c, KF_LABELS("get", "200")) == 3);
    assert_true(kf_metric_value(c, KF_LABELS("get", "404")) == 0);
    assert_true(kf_metric_value(g, NULL) == 5);

    text = render(m);
    assert_non_null(strstr(text, "# HELP kfleet_test_requests_total Requests served.\n"
                                 "# TYPE kfleet_test_requests_total counter\n"
                                 "kfleet_test_requests_total{verb=\"get\",code=\"200\"} 3\n"
                                 "kfleet_test_requests_total{verb=\"create\",code=\"201\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE kfleet_test_watchers gauge\nkfleet_test_watchers 5\n"));
    free(text);
    kf_metrics_free(m);
}

static void test_escaping(void **state)
{
    struct kf_metrics *m = kf_metrics_new();
    struct kf_metric *g =
        kf_metrics_gauge(m, "kfleet_test_info", "Help with a \\ backslash\nand a newline.", "v");
    char *text;

    kf_metric_set(g, KF_LABELS("a\"b\\c\nd"), 1);
    text = render(m);
    assert_non_null(
        strstr(text, "# HELP kfleet_test_info Help with a \\\\ backslash\\nand a newline.\n"));
    assert_non_null(strstr(text, "kfleet_test_info{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
    free(text);
    kf_metrics_free(m);
}

static void test_histogram(void **state)
{
    static const double bounds[] = { 0.1, 1, 10 };
    struct kf_metrics *m = kf_metrics_new();
    struct kf_metric *h =
        kf_metrics_histogram(m, "kfleet_test_latency_seconds", "Latency.", "verb", bounds, 3);
    char *text;

    kf_metric_observe(h, KF_LABELS("get"), 0.05);
    kf_metric_observe(h, KF_LABELS("get"), 0.1); /* le is inclusive */
    kf_metric_observe(h, KF_LABELS("get"), 5);
    kf_metric_observe(h, KF_LABELS("get"), 100);
    assert_true(kf_metric_value(h, KF_LABELS("get")) == 4);
    text = render(m);
    assert_non_null(strstr(text, "# TYPE kfleet_test_latency_seconds histogram\n"
                                 "kfleet_test_latency_seconds_bucket{verb=\"get\",le=\"0.1\"} 2\n"
                                 "kfleet_test_latency_seconds_bucket{verb=\"get\",le=\"1\"} 2\n"
                                 "kfleet_test_latency_seconds_bucket{verb=\"get\",le=\"10\"} 3\n"
                                 "kfleet_test_latency_seconds_bucket{verb=\"get\",le=\"+Inf\"} 4\n"
                                 "kfleet_test_latency_seconds_sum{verb=\"get\"} 105.15\n"
                                 "kfleet_test_latency_seconds_count{verb=\"get\"} 4\n"));
    free(text);
    kf_metrics_free(m);
}

static int collect_calls;

static void collect(struct kf_metric *f, void *arg)
{
    collect_calls++;
    kf_metric_set(f, KF_LABELS("memory"), *(double *)arg);
}

static void test_collected(void **state)
{
    struct kf_metrics *m = kf_metrics_new();
    double v = 42;
    char *text;

    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_test_store_keys", "Keys.", "backend", collect,
                         &v);
    text = render(m);
    assert_non_null(strstr(text, "kfleet_test_store_keys{backend=\"memory\"} 42\n"));
    free(text);
    v = 43;
    text = render(m);
    assert_non_null(strstr(text, "kfleet_test_store_keys{backend=\"memory\"} 43\n"));
    assert_null(strstr(text, "} 42\n"));
    free(text);
    assert_int_equal(collect_calls, 2);
    kf_metrics_free(m);
}

static void test_series_cap(void **state)
{
    struct kf_metrics *m = kf_metrics_new();
    struct kf_metric *c = kf_metrics_counter(m, "kfleet_test_capped_total", "Capped.", "id");
    char id[32], *text;

    for (int i = 0; i < KF_METRICS_MAX_SERIES + 5; i++) {
        snprintf(id, sizeof(id), "%d", i);
        kf_metric_add(c, KF_LABELS(id), 1);
    }
    assert_true(kf_metric_value(c, KF_LABELS("0")) == 1);
    snprintf(id, sizeof(id), "%d", KF_METRICS_MAX_SERIES);
    assert_true(kf_metric_value(c, KF_LABELS(id)) == 0);
    text = render(m);
    assert_non_null(strstr(
        text, "kfleet_metrics_series_dropped_total{family=\"kfleet_test_capped_total\"} 5\n"));
    free(text);
    kf_metrics_free(m);
}

static void test_process_and_promtool(void **state)
{
    struct kf_metrics *m = kf_metrics_new();
    struct kf_metric *h =
        kf_metrics_histogram(m, "kfleet_test_request_duration_seconds", "Request latency.", "verb",
                             kf_metrics_latency_buckets, kf_metrics_latency_nbuckets);
    char path[] = "/tmp/kfleet-test-metrics-XXXXXX";
    char cmd[256];
    char *text;
    FILE *f;
    int fd;

    kf_metrics_add_process(m);
    kf_metric_observe(h, KF_LABELS("list"), 0.003);
    text = render(m);
    assert_non_null(strstr(text, "# TYPE process_resident_memory_bytes gauge\n"));
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    assert_null(strstr(text, "process_resident_memory_bytes 0\n"));

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        free(text);
        kf_metrics_free(m);
        skip();
    }
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    assert_int_equal(system(cmd), 0);
    unlink(path);
    free(text);
    kf_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge), cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_histogram),         cmocka_unit_test(test_collected),
        cmocka_unit_test(test_series_cap),        cmocka_unit_test(test_process_and_promtool),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
