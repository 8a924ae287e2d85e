/* test-ctrl-capmodel.c: the capacity model that the placement and
 * unit-status controllers share (ctrl-capacity-model.c): an event is applied once
 * however many controllers handle it, and each of them is handed the change
 * it made; bookkeeping (a host's allocation, a cluster's members) follows
 * members that come, move and go. */
#include "fleet-test.h"

#include "controllers/ctrl-capacity.h"
#include "kfleet/kind.h"

static void apply(struct cap_model *m, const struct kf_kind *k, const char *text, bool deleted,
                  struct cap_change *ret)
{
    json_t *obj = J(text);

    kf_cap_model_apply(m, k, obj, deleted, ret);
    json_decref(obj);
}

#define HOST                                                                             \
    "{'metadata':{'name':'h1','resourceVersion':'5'},'spec':{'role':'meta','unit':'u1'," \
    "'zone':'a','capacity':{'cpu':'8','memory':'32Gi'}},'status':{'ready':true}}"

static const char *member(char *buf, size_t size, const char *name, int rv, const char *host)
{
    snprintf(buf, size,
             "{'metadata':{'name':'%s','resourceVersion':'%d'},'spec':{'cluster':'c1',"
             "'host':'%s','component':'etcd','resources':{'requests':{'cpu':'1',"
             "'memory':'1Gi'}}}}",
             name, rv, host);
    return buf;
}

static int64_t allocated_milli(struct cap_model *m, const char *host)
{
    struct cap_host *h = kf_smap_get(&m->hosts, host);

    return h ? h->allocated.cpu_milli : -1;
}

static void test_an_event_is_applied_once_for_two_controllers(void **state)
{
    struct cap_model m;
    struct cap_change first, second, again;
    char buf[512];

    (void)state;
    kf_cap_model_init(&m);
    m.subscribers = 2;

    /* a new Ready host: what placement reads changed, for both */
    apply(&m, &kf_kind_host, HOST, false, &first);
    assert_true(first.placement_input);
    assert_int_equal(first.n_units, 1);
    assert_string_equal(first.units[0], "u1");
    apply(&m, &kf_kind_host, HOST, false, &second);
    assert_memory_equal(&first, &second, sizeof(first));
    /* delivered a third time (a relist): applied again, nothing changed */
    apply(&m, &kf_kind_host, HOST, false, &again);
    assert_false(again.placement_input);

    /* a member bound to it is booked once, not once per controller */
    member(buf, sizeof(buf), "m1", 6, "h1");
    apply(&m, &kf_kind_controlplanemember, buf, false, &first);
    apply(&m, &kf_kind_controlplanemember, buf, false, &second);
    assert_string_equal(second.cluster, "c1");
    assert_int_equal(allocated_milli(&m, "h1"), 1000);
    apply(&m, &kf_kind_controlplanemember, buf, false, &again);
    assert_int_equal(allocated_milli(&m, "h1"), 1000); /* re-applying is idempotent */

    /* its next version is a new event: applied */
    apply(&m, &kf_kind_host,
          "{'metadata':{'name':'h2','resourceVersion':'7'},'spec':{'role':'meta','unit':'u1',"
          "'zone':'b','capacity':{'cpu':'8','memory':'32Gi'}},'status':{'ready':true}}",
          false, &first);
    member(buf, sizeof(buf), "m1", 8, "h2");
    apply(&m, &kf_kind_controlplanemember, buf, false, &first);
    apply(&m, &kf_kind_controlplanemember, buf, false, &second);
    assert_memory_equal(&first, &second, sizeof(first));
    assert_int_equal(allocated_milli(&m, "h1"), 0);
    assert_int_equal(allocated_milli(&m, "h2"), 1000);

    /* deleted: gone from its host and its cluster, for both */
    apply(&m, &kf_kind_controlplanemember, buf, true, &first);
    apply(&m, &kf_kind_controlplanemember, buf, true, &second);
    assert_true(first.placement_input && second.placement_input);
    assert_int_equal(allocated_milli(&m, "h2"), 0);
    assert_null(kf_smap_get(&m.members, "m1"));
    assert_null(kf_smap_get(&m.clusters, "c1")); /* never seen, no members: gone */
    kf_cap_model_release(&m);
}

static void test_a_cluster_tells_its_grade_change_before_the_event(void **state)
{
    struct cap_model m;
    struct cap_change ch;
    const char *changing = "{'metadata':{'name':'c1','resourceVersion':'3'},'spec':{},"
                           "'status':{'conditions':[{'type':'GradeChanging','status':'True'}]}}";

    (void)state;
    kf_cap_model_init(&m);
    m.subscribers = 2;
    apply(&m, &kf_kind_guestcluster, changing, false, &ch);
    assert_false(ch.was_grade_changing);
    apply(&m, &kf_kind_guestcluster, changing, false, &ch); /* the second controller */
    assert_false(ch.was_grade_changing);
    apply(&m, &kf_kind_guestcluster, "{'metadata':{'name':'c1','resourceVersion':'4'},'spec':{}}",
          false, &ch);
    assert_true(ch.was_grade_changing);
    kf_cap_model_release(&m);
}

static void test_members_sorted_by_name(void **state)
{
    static const char *const names[] = { "m2", "m0", "m3", "m1" };
    struct cap_model m;
    struct cap_change ch;
    struct cap_member **sorted;
    struct cap_cluster *c;
    char buf[512];

    (void)state;
    kf_cap_model_init(&m);
    apply(&m, &kf_kind_host, HOST, false, &ch);
    for (size_t i = 0; i < KF_ARRAY_SIZE(names); i++)
        apply(&m, &kf_kind_controlplanemember,
              member(buf, sizeof(buf), names[i], 10 + (int)i, "h1"), false, &ch);
    c = kf_smap_get(&m.clusters, "c1");
    assert_non_null(c);
    assert_int_equal(kf_cap_cluster_members_sorted(c, &sorted), 4);
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof(buf), "m%d", i);
        assert_string_equal(sorted[i]->name, buf);
        assert_string_equal(sorted[i]->component, "etcd");
    }
    assert_ptr_equal(sorted[0]->component, sorted[3]->component); /* one copy */
    free(sorted);
    assert_int_equal(allocated_milli(&m, "h1"), 4000);
    kf_cap_model_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_event_is_applied_once_for_two_controllers),
        cmocka_unit_test(test_a_cluster_tells_its_grade_change_before_the_event),
        cmocka_unit_test(test_members_sorted_by_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
