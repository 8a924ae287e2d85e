/* test-ctrl-monstate.c: kfleetd's fleet-state metrics as a scrape shows
 * them while objects come, change and go: guest clusters by phase, grade
 * and unit, meta hosts and ready hosts per unit and zone, unit water levels
 * and resources; the output passes promtool check metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "kfleet/obs-metrics.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-monitoring.h"

static void update(struct monstate *s, const char *json, bool deleted)
{
    json_error_t e;
    json_t *o = json_loads(json, 0, &e);

    if (!o)
        fail_msg("bad JSON in the test: %s", e.text);
    kf_monstate_update(s, o, deleted);
    json_decref(o);
}

static char *scrape(struct kf_metrics *m)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;

    kf_metrics_write(m, &sb);
    return sb.buf;
}

#define assert_has(text, line)                                             \
    do {                                                                   \
        if (!strstr((text), (line)))                                       \
            fail_msg("no line \"%s\" in the scrape:\n%s", (line), (text)); \
    } while (0)
#define assert_lacks(text, line)                                                         \
    do {                                                                                 \
        if (strstr((text), (line)))                                                      \
            fail_msg("line \"%s\" should be gone from the scrape:\n%s", (line), (text)); \
    } while (0)

static void test_fleet_state(void **state)
{
    struct kf_metrics *m = kf_metrics_new();
    struct monstate s;
    char *t;
    (void)state;

    kf_monstate_init(&s, m);
    update(&s, "{\"kind\":\"GuestCluster\",\"metadata\":{\"name\":\"a\"},\"status\":{}}", false);
    update(&s,
           "{\"kind\":\"GuestCluster\",\"metadata\":{\"name\":\"b\"},\"status\":{\"phase\":"
           "\"Running\",\"grade\":\"G1\",\"unit\":\"u1\"}}",
           false);
    update(&s,
           "{\"kind\":\"GuestCluster\",\"metadata\":{\"name\":\"c\"},\"status\":{\"phase\":"
           "\"Running\",\"grade\":\"G1\",\"unit\":\"u1\"}}",
           false);
    update(&s,
           "{\"kind\":\"Host\",\"metadata\":{\"name\":\"h1\"},\"spec\":{\"role\":\"meta\","
           "\"unit\":\"u1\",\"zone\":\"z1\"},\"status\":{\"ready\":true}}",
           false);
    update(&s,
           "{\"kind\":\"Host\",\"metadata\":{\"name\":\"h2\"},\"spec\":{\"role\":\"meta\","
           "\"unit\":\"u1\",\"zone\":\"z1\"},\"status\":{\"ready\":false}}",
           false);
    update(&s,
           "{\"kind\":\"Host\",\"metadata\":{\"name\":\"w1\"},\"spec\":{\"role\":\"worker\","
           "\"cluster\":\"b\",\"zone\":\"z1\"}}",
           false);
    update(&s,
           "{\"kind\":\"Unit\",\"metadata\":{\"name\":\"u1\"},\"spec\":{\"region\":\"r1\","
           "\"waterLevel\":0.6},\"status\":{\"waterLevel\":{\"cpu\":0.75,\"memory\":0.5},"
           "\"capacity\":{\"cpu\":\"64\",\"memory\":\"256Gi\"},\"allocated\":{\"cpu\":"
           "\"48500m\"},\"aboveWaterLevel\":true}}",
           false);
    t = scrape(m);
    assert_has(t, "kfleet_guest_clusters{phase=\"\",grade=\"\",unit=\"\"} 1\n");
    assert_has(t, "kfleet_guest_clusters{phase=\"Running\",grade=\"G1\",unit=\"u1\"} 2\n");
    assert_has(t, "kfleet_hosts{unit=\"u1\",zone=\"z1\"} 2\n");
    assert_has(t, "kfleet_hosts_ready{unit=\"u1\",zone=\"z1\"} 1\n");
    assert_has(t, "kfleet_unit_water_level_ratio{unit=\"u1\",region=\"r1\"} 0.6");
    assert_has(t, "kfleet_unit_requests_ratio{unit=\"u1\",region=\"r1\",resource=\"cpu\"} 0.75");
    assert_has(t, "kfleet_unit_resource_capacity{unit=\"u1\",region=\"r1\",resource=\"memory\"} "
                  "274877906944");
    assert_has(t, "kfleet_unit_resource_allocated{unit=\"u1\",region=\"r1\",resource=\"cpu\"} "
                  "48.5");
    assert_has(t, "kfleet_unit_above_water_level{unit=\"u1\",region=\"r1\"} 1");
    assert_lacks(t, "w1");

    /* a cluster moves on, a host gets ready, one cluster and the unit go */
    update(&s,
           "{\"kind\":\"GuestCluster\",\"metadata\":{\"name\":\"a\"},\"status\":{\"phase\":"
           "\"Running\",\"grade\":\"G1\",\"unit\":\"u1\"}}",
           false);
    update(&s,
           "{\"kind\":\"GuestCluster\",\"metadata\":{\"name\":\"c\"},\"status\":{\"phase\":"
           "\"Running\",\"grade\":\"G1\",\"unit\":\"u1\"}}",
           true);
    update(&s,
           "{\"kind\":\"Host\",\"metadata\":{\"name\":\"h2\"},\"spec\":{\"role\":\"meta\","
           "\"unit\":\"u1\",\"zone\":\"z1\"},\"status\":{\"ready\":true}}",
           false);
    update(&s, "{\"kind\":\"Unit\",\"metadata\":{\"name\":\"u1\"},\"spec\":{}}", true);
    free(t);
    t = scrape(m);
    assert_lacks(t, "kfleet_guest_clusters{phase=\"\"");
    assert_has(t, "kfleet_guest_clusters{phase=\"Running\",grade=\"G1\",unit=\"u1\"} 2\n");
    assert_has(t, "kfleet_hosts{unit=\"u1\",zone=\"z1\"} 2\n");
    assert_has(t, "kfleet_hosts_ready{unit=\"u1\",zone=\"z1\"} 2\n");
    assert_lacks(t, "kfleet_unit_water_level_ratio{");

    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/kfleet-test-monstate-XXXXXX";
        char cmd[256];
        int fd = mkstemp(path);
        FILE *f = fdopen(fd, "w");

        fputs(t, f);
        fclose(f);
        snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
        assert_int_equal(system(cmd), 0);
        unlink(path);
    }
    free(t);
    kf_metrics_free(m);
    kf_monstate_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fleet_state),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
