/* test-grade.c: the grade table, picking a grade, its JSON form, and grade
 * shifting with hysteresis and the fleet limit, as an operator reads them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/grade.h"
#include "kfleet/strbuf.h"

static struct kf_grade_table T;

static int setup(void **state)
{
    kf_grade_table_default(&T);
    return 0;
}

static void test_default_table_matches_reference(void **state)
{
    /* Reference §3.7: total CPU cores and GiB per grade; G0 calibrated
     * against real 1.37 control planes (docs/BENCHMARKS.md: 0.16 cores and
     * 1.1 GiB at rest), half of the reference's proposal. */
    static const int64_t cpu[] = { 1000, 4000, 8000, 16100, 31900, 63800 };
    static const int gib[] = { 4, 16, 32, 64, 128, 256 };
    static const unsigned api[] = { 2, 2, 2, 3, 3, 6 };
    struct kf_strbuf err = KF_STRBUF_INIT;

    assert_int_equal(kf_grade_table_validate(&T, &err), 0);
    for (int g = 0; g < KF_GRADE_COUNT; g++) {
        struct kf_res r = kf_grade_total(&T.grades[g]);
        double mem_gib = (double)r.mem_bytes / KF_GIB;

        assert_int_equal(r.cpu_milli, cpu[g]);
        if (mem_gib < gib[g] * 0.98 || mem_gib > gib[g] * 1.02)
            fail_msg("%s memory %.2f GiB, want about %d", kf_grade_name(g), mem_gib, gib[g]);
        assert_string_equal(T.grades[g].components[0].name, "etcd");
        assert_int_equal(T.grades[g].components[0].replicas, 3);
        assert_int_equal(T.grades[g].components[0].spread, KF_SPREAD_ONE_PER_ZONE);
        assert_string_equal(T.grades[g].components[1].name, "kube-apiserver");
        assert_int_equal(T.grades[g].components[1].replicas, api[g]);
        assert_int_equal(T.grades[g].min_zones, 3);
    }
    assert_int_equal(T.grades[KF_G4].etcd_quota_bytes, 8 * KF_GIB);
    assert_int_equal(T.grades[KF_G5].etcd_quota_bytes, 16 * KF_GIB);
    assert_int_equal(T.grades[KF_G3].components[1].req.cpu_milli, 2700);
    assert_int_equal(kf_grade_members(&T.grades[KF_G5]), 3 + 6 + 2 + 2 + 1);
}

static void test_grade_for_node_breaks(void **state)
{
    static const struct {
        int64_t nodes;
        int grade;
    } cases[] = {
        { 1, KF_G0 },    { 10, KF_G0 },   { 11, KF_G1 },   { 100, KF_G1 }, { 101, KF_G2 },
        { 250, KF_G2 },  { 251, KF_G3 },  { 500, KF_G3 },  { 501, KF_G4 }, { 3000, KF_G4 },
        { 3001, KF_G5 }, { 5000, KF_G5 }, { 9000, KF_G5 }, { -1, KF_G0 },
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++)
        if (kf_grade_for(&T, cases[i].nodes, -1, -1) != cases[i].grade)
            fail_msg("%lld nodes: got %s, want %s", (long long)cases[i].nodes,
                     kf_grade_name(kf_grade_for(&T, cases[i].nodes, -1, -1)),
                     kf_grade_name(cases[i].grade));
}

static void test_highest_dimension_wins(void **state)
{
    struct kf_strbuf why = KF_STRBUF_INIT;

    assert_int_equal(kf_grade_for(&T, 5, 20000, -1), KF_G2); /* pods demand G2 */
    assert_int_equal(kf_grade_for(&T, 5, -1, 2500), KF_G5);  /* API load demands G5 */
    assert_int_equal(kf_grade_for(&T, 400, 100, 10), KF_G3); /* nodes demand G3 */
    assert_int_equal(kf_grade_decide(&T, -1, 5, 20000, 40, &why), KF_G2);
    assert_string_equal(why.buf, "G2: 20000 pods > 11000 (G1)");
    kf_strbuf_reset(&why);
    assert_int_equal(kf_grade_decide(&T, KF_G4, 5, 20000, 40, &why), KF_G4);
    assert_string_equal(why.buf, "G4: set in spec");
    kf_strbuf_reset(&why);
    assert_int_equal(kf_grade_decide(&T, -1, 7, -1, -1, &why), KF_G0);
    assert_string_equal(why.buf, "G0: 7 nodes <= 10");
    kf_strbuf_release(&why);
}

static void test_names(void **state)
{
    assert_string_equal(kf_grade_name(KF_G3), "G3");
    assert_string_equal(kf_grade_name(7), "none");
    assert_int_equal(kf_grade_parse("g4"), KF_G4);
    assert_int_equal(kf_grade_parse("G6"), -EINVAL);
    assert_int_equal(kf_grade_parse("G"), -EINVAL);
    assert_int_equal(kf_grade_parse("G12"), -EINVAL);
}

static void test_json_roundtrip(void **state)
{
    struct kf_grade_table back;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *j = kf_grade_table_to_json(&T);
    json_t *g0 = json_array_get(json_object_get(j, "grades"), 0);

    assert_string_equal(json_string_value(json_object_get(g0, "etcdQuota")), "8Gi");
    assert_true(
        json_is_null(json_object_get(json_array_get(json_object_get(j, "grades"), 5), "maxQPS")));
    memset(&back, 0xa5, sizeof(back));
    if (kf_grade_table_from_json(j, &back, &err) != 0)
        fail_msg("%s", err.buf);
    assert_memory_equal(&back, &T, sizeof(T));
    json_decref(j);
    kf_strbuf_release(&err);
}

static void test_json_operator_override(void **state)
{
    struct kf_grade_table t;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *j = kf_grade_table_to_json(&T);
    json_t *g1 = json_array_get(json_object_get(j, "grades"), 1);
    json_t *api = json_array_get(json_object_get(g1, "components"), 1);

    /* An operator raises G1's bound to 150 nodes and gives its apiservers 3 replicas. */
    json_object_set_new(g1, "maxNodes", json_integer(150));
    json_object_set_new(api, "replicas", json_integer(3));
    json_object_set_new(api, "cpu", json_string("1500m"));
    assert_int_equal(kf_grade_table_from_json(j, &t, &err), 0);
    assert_int_equal(kf_grade_for(&t, 150, -1, -1), KF_G1);
    assert_int_equal(t.grades[KF_G1].components[1].replicas, 3);
    assert_int_equal(t.grades[KF_G1].components[1].req.cpu_milli, 1500);

    /* Errors name the field. */
    json_object_set_new(api, "cpu", json_string("lots"));
    assert_int_equal(kf_grade_table_from_json(j, &t, &err), -EINVAL);
    assert_string_equal(err.buf,
                        "grades[1].components[1].cpu: must be a quantity like \"500m\" or \"2\"");
    json_object_set_new(api, "cpu", json_string("1"));
    json_object_set_new(g1, "maxNodes", json_integer(5));
    assert_int_equal(kf_grade_table_from_json(j, &t, &err), -EINVAL);
    assert_string_equal(err.buf, "G1: bounds must not be lower than G0's");
    json_array_remove(json_object_get(j, "grades"), 3);
    json_object_set_new(g1, "maxNodes", json_integer(100));
    assert_int_equal(kf_grade_table_from_json(j, &t, &err), -EINVAL);
    assert_string_equal(err.buf, "grades: G3 is missing");
    assert_int_equal(t.grades[KF_G1].max_nodes, 150); /* untouched by the failures */
    json_decref(j);
    kf_strbuf_release(&err);
}

static void test_shift_band(void **state)
{
    struct kf_grade_shift_policy p;

    kf_grade_shift_policy_default(&p);
    /* Up as soon as a bound is crossed, straight to the demanded grade. */
    assert_int_equal(kf_grade_shift_target(&T, &p, KF_G1, 101, -1, -1), KF_G2);
    assert_int_equal(kf_grade_shift_target(&T, &p, KF_G1, 600, -1, -1), KF_G4);
    /* Down only 30 % below the lower grade's bound: G2 -> G1 at <= 70 nodes. */
    assert_int_equal(kf_grade_shift_target(&T, &p, KF_G2, 100, -1, -1), KF_G2);
    assert_int_equal(kf_grade_shift_target(&T, &p, KF_G2, 71, -1, -1), KF_G2);
    assert_int_equal(kf_grade_shift_target(&T, &p, KF_G2, 70, -1, -1), KF_G1);
    /* Every dimension must be well below: nodes are, pods are not. */
    assert_int_equal(kf_grade_shift_target(&T, &p, KF_G2, 50, 10000, -1), KF_G2);
    assert_int_equal(kf_grade_shift_target(&T, &p, KF_G2, 50, 7000, -1), KF_G1);
    /* A shrunk cluster goes down as far as the band allows in one move. */
    assert_int_equal(kf_grade_shift_target(&T, &p, KF_G4, 5, -1, -1), KF_G0);
    assert_int_equal(kf_grade_shift_target(&T, &p, KF_G4, 8, -1, -1), KF_G1);
}

static void test_shift_decide(void **state)
{
    struct kf_grade_shift_policy p;
    struct kf_strbuf why = KF_STRBUF_INIT;
    const int64_t min = 60 * 1000, hour = 60 * min;

    kf_grade_shift_policy_default(&p);
    assert_int_equal(kf_grade_shift_decide(&p, KF_G1, KF_G2, 5 * min, false, &why), KF_GRADE_WAIT);
    assert_string_equal(why.buf, "up to G2 once the demand has held 10m (held 5m)");
    kf_strbuf_reset(&why);
    /* Up does not wait for the maintenance window. */
    assert_int_equal(kf_grade_shift_decide(&p, KF_G1, KF_G2, 12 * min, false, &why), KF_GRADE_UP);
    assert_string_equal(why.buf, "up to G2: demand held 12m");
    kf_strbuf_reset(&why);
    assert_int_equal(kf_grade_shift_decide(&p, KF_G2, KF_G1, 3 * hour, true, &why), KF_GRADE_WAIT);
    assert_string_equal(why.buf, "down to G1 once the demand has held 24h (held 3h)");
    kf_strbuf_reset(&why);
    assert_int_equal(kf_grade_shift_decide(&p, KF_G2, KF_G1, 25 * hour, false, &why),
                     KF_GRADE_WAIT);
    assert_string_equal(why.buf, "down to G1 waits for the maintenance window");
    kf_strbuf_reset(&why);
    assert_int_equal(kf_grade_shift_decide(&p, KF_G2, KF_G1, 25 * hour, true, &why), KF_GRADE_DOWN);
    assert_string_equal(why.buf, "down to G1 in the maintenance window: demand held 25h");
    kf_strbuf_reset(&why);
    assert_int_equal(kf_grade_shift_decide(&p, KF_G2, KF_G2, 0, true, &why), KF_GRADE_STAY);
    kf_strbuf_release(&why);
}

static void test_shift_fleet_limit(void **state)
{
    struct kf_grade_shift_policy p;
    struct kf_grade_shift_cand c[] = {
        { "down-old", KF_G3, KF_G2, 90000000, false },
        { "up-b", KF_G1, KF_G2, 700000, false },
        { "up-a", KF_G1, KF_G2, 700000, false },
        { "up-long", KF_G0, KF_G1, 900000, false },
    };

    kf_grade_shift_policy_default(&p);
    p.max_in_flight = 3;
    /* One move already running: two more may start, ups first, longest held first,
     * then by name. */
    assert_int_equal(kf_grade_shift_select(&p, 1, c, KF_ARRAY_SIZE(c)), 2);
    assert_string_equal(c[0].name, "up-long");
    assert_true(c[0].go);
    assert_string_equal(c[1].name, "up-a");
    assert_true(c[1].go);
    assert_string_equal(c[2].name, "up-b");
    assert_false(c[2].go);
    assert_string_equal(c[3].name, "down-old");
    assert_false(c[3].go);
    assert_int_equal(kf_grade_shift_select(&p, 3, c, KF_ARRAY_SIZE(c)), 0);
    assert_int_equal(kf_grade_shift_select(&p, 9, c, KF_ARRAY_SIZE(c)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_table_matches_reference),
        cmocka_unit_test(test_grade_for_node_breaks),
        cmocka_unit_test(test_highest_dimension_wins),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_operator_override),
        cmocka_unit_test(test_shift_band),
        cmocka_unit_test(test_shift_decide),
        cmocka_unit_test(test_shift_fleet_limit),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
