/* test-obs-live.c: a rendered edge Prometheus, run for real.
 *
 * Renders (with the promtool check) the edge of a one-unit fleet whose only
 * host runs a real prometheus-node-exporter, starts both on free loopback
 * ports, and checks through Prometheus' HTTP API what an operator would:
 * the node target is up with the unit's labels and the recording rules
 * produce per-unit series labelled region and unit. Then it adds a host by
 * rewriting only the file_sd list (no reload: the renderer says so) and
 * sees Prometheus pick it up and mark it down, and finally a structural
 * change that needs `POST /-/reload`. Short intervals (1 s) keep it quick;
 * most of its ~10 s are Prometheus' own: its discovery manager hands new
 * targets to the scrape loop at most every 5 s, at start and after a
 * file_sd change alike.
 * Both processes are stopped by PID in the teardown, pass or fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/obs.h"
#include "kfleet/strbuf.h"

#include "obs-proc.h"

#define WAIT_STEPS 300 /* x 100 ms: generous for a loaded 2-core ASan run */

struct live {
    char root[64];
    char node_addr[32], dead_addr[32], edge_addr[32];
    pid_t node_pid, prom_pid;
    struct kf_obs_host hosts[2];
    struct kf_obs_instance edge;
    struct kf_obs_unit unit;
    struct kf_obs_region region;
    struct kf_obs_fleet fleet;
};

static void print_log(const char *root, const char *name)
{
    char *path = kf_xasprintf("%s/%s.log", root, name);
    FILE *f = fopen(path, "r");
    char line[512];

    if (f) {
        print_error("--- %s:\n", path);
        while (fgets(line, sizeof(line), f))
            print_error("%s", line);
        fclose(f);
    }
    free(path);
}

static int setup(void **state)
{
    struct live *l = kf_xcalloc(1, sizeof(*l));

    snprintf(l->root, sizeof(l->root), "/tmp/kf-obs-live-XXXXXX");
    if (!mkdtemp(l->root))
        return -1;
    snprintf(l->node_addr, sizeof(l->node_addr), "127.0.0.1:%d", kf_test_port());
    snprintf(l->dead_addr, sizeof(l->dead_addr), "127.0.0.1:%d", kf_test_port());
    snprintf(l->edge_addr, sizeof(l->edge_addr), "127.0.0.1:%d", kf_test_port());
    l->hosts[0] = (struct kf_obs_host){ "h1", "z1", l->node_addr, NULL };
    l->hosts[1] = (struct kf_obs_host){ "h2", "z2", l->dead_addr, NULL };
    l->edge = (struct kf_obs_instance){ "edge-u1", l->edge_addr, NULL };
    l->unit = (struct kf_obs_unit){ "u1", "r1", l->hosts, 1, NULL, 0, &l->edge, 1, NULL, 0 };
    l->region = (struct kf_obs_region){
        .name = "r1",
        .settings = { .scrape_interval_ms = 1000, .rate_window_ms = 4000, .retention_ms = 3600000 },
    };
    l->fleet = (struct kf_obs_fleet){
        .regions = &l->region,
        .n_regions = 1,
        .units = &l->unit,
        .n_units = 1,
    };
    *state = l;
    return 0;
}

static int teardown(void **state)
{
    struct live *l = *state;

    stop_pid(l->prom_pid);
    stop_pid(l->node_pid);
    kf_remove_tree(l->root);
    free(l);
    return 0;
}

static json_t *api_get(struct live *l, const char *path_and_query)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    char *url = kf_xasprintf("http://%s%s", l->edge_addr, path_and_query);
    json_t *v = NULL;

    if (http_request(url, NULL, &body) == 200)
        v = json_loadb(body.buf, body.len, 0, NULL);
    free(url);
    kf_strbuf_release(&body);
    return v;
}

/* The health of the node target at address, or NULL if it is not listed. */
static const char *target_health(json_t *targets, const char *address, json_t **ret_labels)
{
    json_t *active = json_object_get(json_object_get(targets, "data"), "activeTargets");
    size_t i;
    json_t *t;

    json_array_foreach(active, i, t)
    {
        json_t *labels = json_object_get(t, "labels");

        if (kf_streq(json_string_value(json_object_get(labels, "instance")), address) &&
            kf_streq(json_string_value(json_object_get(labels, "job")), "node")) {
            if (ret_labels)
                *ret_labels = labels;
            return json_string_value(json_object_get(t, "health"));
        }
    }
    return NULL;
}

/* The first series of an instant query's result, or NULL (borrowed from v). */
static json_t *query_first(struct live *l, const char *promql, json_t **ret_doc)
{
    CURL *c = curl_easy_init();
    char *q = curl_easy_escape(c, promql, 0);
    char *path = kf_xasprintf("/api/v1/query?query=%s", q);
    json_t *v = api_get(l, path), *first;

    curl_free(q);
    curl_easy_cleanup(c);
    free(path);
    first = json_array_get(json_object_get(json_object_get(v, "data"), "result"), 0);
    *ret_doc = v;
    return first;
}

static const char *label(json_t *series, const char *name)
{
    return json_string_value(json_object_get(json_object_get(series, "metric"), name));
}

static const char *value(json_t *series)
{
    return json_string_value(json_array_get(json_object_get(series, "value"), 1));
}

/* Waits until promql returns a series whose value is want; fails with
 * both logs otherwise. Returns the document (caller decrefs). */
static json_t *wait_for_value(struct live *l, const char *promql, const char *want,
                              json_t **ret_series)
{
    for (int i = 0; i < WAIT_STEPS; i++) {
        json_t *doc, *s = query_first(l, promql, &doc);

        if (s && kf_streq(value(s), want)) {
            *ret_series = s;
            return doc;
        }
        json_decref(doc);
        sleep_ms(100);
    }
    print_log(l->root, "prometheus");
    fail_msg("%s never returned %s", promql, want);
    return NULL;
}

static void test_edge_scrapes_and_records(void **state)
{
    struct live *l = *state;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_argv argv;
    struct kf_obs_change ch;
    char *log;
    json_t *doc = NULL, *series, *labels = NULL;
    const char *health = NULL;

    if (kf_obs_render_instance(&l->fleet, "edge-u1", l->root, true, &ch, &err) < 0)
        fail_msg("render failed: %s", err.buf);
    assert_true(ch.structure);

    kf_obs_argv_node_exporter(NULL, l->node_addr, &argv);
    log = kf_xasprintf("%s/node_exporter.log", l->root);
    l->node_pid = spawn_logged(argv.v, log);
    assert_true(l->node_pid > 0);
    free(log);
    kf_argv_release(&argv);

    assert_int_equal(kf_obs_argv_instance(&l->fleet, "edge-u1", l->root, &argv), 0);
    log = kf_xasprintf("%s/prometheus.log", l->root);
    l->prom_pid = spawn_logged(argv.v, log);
    assert_true(l->prom_pid > 0);
    free(log);
    kf_argv_release(&argv);

    /* the node target is scraped and up, with the unit's labels */
    for (int i = 0; i < WAIT_STEPS && !kf_streq(health, "up"); i++) {
        json_decref(doc);
        doc = api_get(l, "/api/v1/targets");
        health = doc ? target_health(doc, l->node_addr, &labels) : NULL;
        if (!kf_streq(health, "up"))
            sleep_ms(100);
    }
    if (!kf_streq(health, "up")) {
        print_log(l->root, "prometheus");
        print_log(l->root, "node_exporter");
        fail_msg("the node target never came up (health %s)", health ? health : "absent");
    }
    assert_string_equal(json_string_value(json_object_get(labels, "region")), "r1");
    assert_string_equal(json_string_value(json_object_get(labels, "unit")), "u1");
    assert_string_equal(json_string_value(json_object_get(labels, "host")), "h1");
    assert_string_equal(json_string_value(json_object_get(labels, "zone")), "z1");
    json_decref(doc);

    /* recording rules: one host up in unit u1 of region r1 */
    doc = wait_for_value(l, "unit:hosts_up:count", "1", &series);
    assert_string_equal(label(series, "__name__"), "unit:hosts_up:count");
    assert_string_equal(label(series, "region"), "r1");
    assert_string_equal(label(series, "unit"), "u1");
    json_decref(doc);
    /* a rate-based aggregate needs two scrapes; it is a fraction of 1 */
    for (int i = 0; i < WAIT_STEPS; i++) {
        double v;

        series = query_first(l, "unit:node_cpu_utilisation:avg", &doc);
        if (series && kf_parse_double(value(series), &v) == 0 && v >= 0 && v <= 1) {
            assert_string_equal(label(series, "unit"), "u1");
            break;
        }
        json_decref(doc);
        doc = NULL;
        sleep_ms(100);
    }
    assert_non_null(doc);
    json_decref(doc);

    /* a second host: only its file_sd list changes, no reload; Prometheus
     * finds it on its own, and nothing answers there */
    l->unit.n_hosts = 2;
    if (kf_obs_render_instance(&l->fleet, "edge-u1", l->root, true, &ch, &err) < 0)
        fail_msg("render failed: %s", err.buf);
    assert_false(ch.structure);
    assert_true(ch.targets);
    doc = wait_for_value(l, "unit:hosts:count", "2", &series);
    json_decref(doc);
    doc = wait_for_value(l, "unit:host_down:flag", "1", &series);
    assert_string_equal(label(series, "host"), "h2");
    assert_string_equal(label(series, "zone"), "z2");
    json_decref(doc);

    /* a structural change: the renderer says reload, and Prometheus takes it */
    l->region.settings.evaluation_interval_ms = 2000;
    if (kf_obs_render_instance(&l->fleet, "edge-u1", l->root, true, &ch, &err) < 0)
        fail_msg("render failed: %s", err.buf);
    assert_true(ch.structure);
    {
        struct kf_strbuf body = KF_STRBUF_INIT;
        char *url = kf_xasprintf("http://%s/-/reload", l->edge_addr);

        assert_int_equal(http_request(url, "", &body), 200);
        free(url);
        url = kf_xasprintf("http://%s/metrics", l->edge_addr);
        assert_int_equal(http_request(url, NULL, &body), 200);
        assert_non_null(strstr(body.buf, "prometheus_config_last_reload_successful 1"));
        free(url);
        kf_strbuf_release(&body);
    }
    kf_strbuf_release(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_edge_scrapes_and_records, setup, teardown),
    };
    int r;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
