/* test-events.c: the Event recorder as controllers and `kfleet describe`
 * use it: an event per (object, type, reason, message), repeats counted,
 * listing one object's events newest first, expiry after the TTL, and bad
 * input refused. */
#include "fleet-test.h"

#include "kfleet/events.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/store.h"

struct fx {
    int64_t now; /* the recorder's clock */
    struct kf_store *store;
    struct kf_registry *reg;
    struct kf_recorder *rec;
    json_t *gc, *unit;
};

static int64_t fake_clock(void *arg)
{
    return ((struct fx *)arg)->now;
}

static int setup(void **state)
{
    struct fx *f = kf_xcalloc(1, sizeof(*f));

    assert_int_equal(kf_store_open("memory:", &f->store, NULL), 0);
    f->reg = kf_registry_new(f->store);
    f->rec = kf_recorder_new(f->reg, "placement");
    f->now = kf_now_ms();
    kf_recorder_set_clock(f->rec, fake_clock, f);
    f->gc = J("{'apiVersion':'kfleet.io/v1','kind':'GuestCluster','metadata':{'name':'web',"
              "'uid':'11111111-2222-3333-4444-555555555555'}}");
    f->unit = J("{'kind':'Unit','metadata':{'name':'web'}}"); /* same name, other kind */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    json_decref(f->gc);
    json_decref(f->unit);
    kf_recorder_free(f->rec);
    kf_registry_free(f->reg);
    kf_store_close(f->store);
    free(f);
    return 0;
}

static json_t *events_of(struct fx *f, const char *kind, const char *name)
{
    json_t *list = NULL;

    assert_int_equal(kf_evrec_list_for(f->reg, kind, name, 0, &list), 0);
    return list;
}

static void test_record_and_aggregate(void **state)
{
    struct fx *f = *state;
    json_t *list, *ev;

    for (int i = 0; i < 3; i++) {
        /* one second apart: each repeat is written */
        f->now += 1000;
        assert_int_equal(kf_recorder_eventf(f->rec, f->gc, KF_EVENT_WARNING, "NoHeadroom",
                                            "no unit in %s has headroom for grade %s",
                                            "cn-hangzhou", "G3"),
                         0);
    }
    assert_int_equal(kf_recorder_eventf(f->rec, f->gc, KF_EVENT_NORMAL, "Scheduled",
                                        "placed on unit %s", "hz-u1"),
                     0);
    list = events_of(f, "GuestCluster", "web");
    assert_int_equal(json_array_size(list), 2);
    for (size_t i = 0; i < 2; i++) {
        ev = json_array_get(list, i);
        assert_string_equal(kf_json_str(ev, "kind", ""), "Event");
        assert_true(kf_str_has_prefix(kf_obj_name(ev), "web."));
        assert_string_equal(kf_json_str(ev, "spec.involvedObject.uid", ""),
                            "11111111-2222-3333-4444-555555555555");
        assert_string_equal(kf_json_str(ev, "spec.source.component", ""), "placement");
        if (!strcmp(kf_json_str(ev, "spec.reason", ""), "NoHeadroom")) {
            assert_int_equal(kf_json_int(ev, "spec.count", 0), 3);
            assert_string_equal(kf_json_str(ev, "spec.type", ""), "Warning");
            assert_string_equal(kf_json_str(ev, "spec.message", ""),
                                "no unit in cn-hangzhou has headroom for grade G3");
        } else {
            assert_string_equal(kf_json_str(ev, "spec.reason", ""), "Scheduled");
            assert_int_equal(kf_json_int(ev, "spec.count", 0), 1);
        }
    }
    json_decref(list);

    /* another kind with the same name has events of its own */
    assert_int_equal(kf_recorder_event(f->rec, f->unit, KF_EVENT_NORMAL, "Cordoned", "by admin"),
                     0);
    list = events_of(f, "Unit", "web");
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    list = events_of(f, NULL, "web");
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);
    /* a name that only shares a prefix is not included */
    list = events_of(f, "GuestCluster", "we");
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

/* What `kfleet describe` asks the API for. */
static void test_list_by_field_selector(void **state)
{
    struct fx *f = *state;
    json_t *dotted = J("{'kind':'GuestCluster','metadata':{'name':'web.x'}}");
    json_t *web2 = J("{'kind':'GuestCluster','metadata':{'name':'web2'}}");
    struct kf_selector *sel = NULL;
    struct kf_list_opts o = { 0 };
    json_t *items = NULL;

    assert_int_equal(kf_recorder_event(f->rec, f->gc, KF_EVENT_NORMAL, "A", "a"), 0);
    assert_int_equal(kf_recorder_event(f->rec, f->unit, KF_EVENT_NORMAL, "B", "b"), 0);
    assert_int_equal(kf_recorder_event(f->rec, dotted, KF_EVENT_NORMAL, "C", "c"), 0);
    assert_int_equal(kf_recorder_event(f->rec, web2, KF_EVENT_NORMAL, "D", "d"), 0);
    assert_int_equal(kf_selector_parse_fields("spec.involvedObject.kind=GuestCluster,"
                                              "spec.involvedObject.name=web",
                                              &sel, NULL),
                     0);
    o.fields = sel;
    assert_int_equal(kf_registry_list(f->reg, &kf_kind_event, &o, &items, NULL, NULL, NULL), 0);
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(kf_json_str(json_array_get(items, 0), "spec.reason", ""), "A");
    json_decref(items);
    kf_selector_free(sel);
    assert_int_equal(kf_selector_parse_fields("spec.involvedObject.name=web.x", &sel, NULL), 0);
    o.fields = sel;
    assert_int_equal(kf_registry_list(f->reg, &kf_kind_event, &o, &items, NULL, NULL, NULL), 0);
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(kf_json_str(json_array_get(items, 0), "spec.reason", ""), "C");
    json_decref(items);
    kf_selector_free(sel);
    json_decref(dotted);
    json_decref(web2);
}

static json_t *only_event(struct fx *f)
{
    json_t *list = events_of(f, "GuestCluster", "web"), *ev;

    assert_int_equal(json_array_size(list), 1);
    ev = json_incref(json_array_get(list, 0));
    json_decref(list);
    return ev;
}

static void test_coalescing(void **state)
{
    struct fx *f = *state;
    json_t *ev;
    int64_t rev;
    char first[32], later[32];

    f->now = 1767261600000; /* 2026-01-01T10:00:00Z */
    kf_time_format_rfc3339(f->now, first, sizeof(first));
    for (int i = 0; i < 50; i++)
        assert_int_equal(kf_recorder_event(f->rec, f->gc, KF_EVENT_WARNING, "BackOff", "retry"), 0);
    /* a burst inside the window is one write */
    ev = only_event(f);
    assert_int_equal(kf_json_int(ev, "spec.count", 0), 1);
    assert_string_equal(kf_json_str(ev, "spec.firstTimestamp", ""), first);
    json_decref(ev);
    rev = kf_store_rev(f->store);
    f->now += 500;
    assert_int_equal(kf_recorder_event(f->rec, f->gc, KF_EVENT_WARNING, "BackOff", "retry"), 0);
    assert_int_equal(kf_store_rev(f->store), rev);
    /* after the window the next repeat writes, counting every repeat */
    f->now += KF_EVREC_COALESCE_MS;
    kf_time_format_rfc3339(f->now, later, sizeof(later));
    assert_int_equal(kf_recorder_event(f->rec, f->gc, KF_EVENT_WARNING, "BackOff", "retry"), 0);
    ev = only_event(f);
    assert_int_equal(kf_json_int(ev, "spec.count", 0), 52);
    assert_string_equal(kf_json_str(ev, "spec.firstTimestamp", ""), first);
    assert_string_equal(kf_json_str(ev, "spec.lastTimestamp", ""), later);
    json_decref(ev);

    /* without a window every repeat is written */
    kf_recorder_set_coalesce(f->rec, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(kf_recorder_event(f->rec, f->gc, KF_EVENT_WARNING, "BackOff", "retry"), 0);
    ev = only_event(f);
    assert_int_equal(kf_json_int(ev, "spec.count", 0), 55);
    json_decref(ev);
}

static void test_newest_first_and_limit(void **state)
{
    struct fx *f = *state;
    json_t *list;
    const char *stamps[] = { "2026-01-01T10:00:00Z", "2026-01-01T12:00:00Z",
                             "2026-01-01T11:00:00Z" };

    for (int i = 0; i < 3; i++) {
        char reason[16];
        json_t *ev = NULL;

        snprintf(reason, sizeof(reason), "Step%d", i);
        assert_int_equal(kf_recorder_event(f->rec, f->gc, KF_EVENT_NORMAL, reason, "m"), 0);
        list = events_of(f, "GuestCluster", "web");
        for (size_t j = 0; j < json_array_size(list); j++)
            if (!strcmp(kf_json_str(json_array_get(list, j), "spec.reason", ""), reason))
                ev = json_deep_copy(json_array_get(list, j));
        json_decref(list);
        assert_non_null(ev);
        kf_json_set_str(ev, "spec.lastTimestamp", stamps[i]);
        assert_int_equal(kf_registry_update(f->reg, &kf_kind_event, ev, false, NULL,
                                            &(struct kf_causes)KF_CAUSES_INIT, NULL),
                         0);
        json_decref(ev);
    }
    assert_int_equal(kf_evrec_list_for(f->reg, "GuestCluster", "web", 2, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(kf_json_str(json_array_get(list, 0), "spec.reason", ""), "Step1");
    assert_string_equal(kf_json_str(json_array_get(list, 1), "spec.reason", ""), "Step2");
    json_decref(list);

    /* the garbage collector removes what was last seen before now - TTL */
    {
        int64_t now;

        assert_int_equal(kf_time_parse_rfc3339("2026-01-01T11:30:00Z", &now), 0);
        assert_int_equal(kf_evrec_gc(f->reg, 60 * 60 * 1000, now), 1); /* Step0 at 10:00 */
        list = events_of(f, "GuestCluster", "web");
        assert_int_equal(json_array_size(list), 2);
        json_decref(list);
        assert_int_equal(kf_evrec_gc(f->reg, 0, now + 24 * 3600 * 1000LL), 2);
        list = events_of(f, "GuestCluster", "web");
        assert_int_equal(json_array_size(list), 0);
        json_decref(list);
    }
}

static void test_fresh_events_survive_gc(void **state)
{
    struct fx *f = *state;
    json_t *list;

    for (int i = 0; i < 30; i++)
        assert_int_equal(kf_recorder_eventf(f->rec, f->gc, KF_EVENT_NORMAL, "Tick", "tick %d", i),
                         0);
    assert_int_equal(kf_evrec_gc(f->reg, 0, kf_now_ms()), 0);
    list = events_of(f, "GuestCluster", "web");
    assert_int_equal(json_array_size(list), 30);
    json_decref(list);
}

static void test_bad_input(void **state)
{
    struct fx *f = *state;
    json_t *noname = J("{'kind':'Unit','metadata':{}}"), *list;
    char *longmsg = kf_xmalloc(5000);

    assert_int_equal(kf_recorder_event(f->rec, f->gc, "Info", "X", "m"), -EINVAL);
    assert_int_equal(kf_recorder_event(f->rec, f->gc, KF_EVENT_NORMAL, "not camel", "m"), -EINVAL);
    assert_int_equal(kf_recorder_event(f->rec, noname, KF_EVENT_NORMAL, "X", "m"), -EINVAL);
    /* invalid UTF-8 is replaced; long messages are cut */
    assert_int_equal(kf_recorder_event(f->rec, f->gc, KF_EVENT_NORMAL, "Odd", "bad \xff byte"), 0);
    memset(longmsg, 'x', 4999);
    longmsg[4999] = '\0';
    assert_int_equal(kf_recorder_event(f->rec, f->gc, KF_EVENT_NORMAL, "Long", longmsg), 0);
    list = events_of(f, "GuestCluster", "web");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *ev = json_array_get(list, i);
        const char *msg = kf_json_str(ev, "spec.message", "");

        if (!strcmp(kf_json_str(ev, "spec.reason", ""), "Odd"))
            assert_string_equal(msg, "bad ? byte");
        else
            assert_int_equal(strlen(msg), KF_EVREC_MAX_MESSAGE + 3);
    }
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
    json_decref(noname);
    free(longmsg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record_and_aggregate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_by_field_selector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newest_first_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_events_survive_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
