/* test-ctrl-members.c: the ControlPlaneMember informer the controllers
 * share (ctrl-members.c): its cache keeps what controllers read of a member
 * (spec, status, annotations, finalizers, deletion, uid, creation time) and
 * not its labels or owner references, which the store and the API still
 * have; one index by cluster serves every controller. */
#include "fleet-test.h"

#include <time.h>

#include "controllers/ctrl-members.h"
#include "kfleet/ctrlrt.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"

#define MEMBER                                                                               \
    "{'apiVersion':'kfleet.io/v1','kind':'ControlPlaneMember','metadata':{'name':'%s',"      \
    "'labels':{'kfleet.io/cluster':'%s','kfleet.io/component':'etcd','kfleet.io/zone':'a'}," \
    "'annotations':{'kfleet.io/pki-hash':'abc'},'finalizers':['kfleet.io/agent'],"           \
    "'ownerReferences':[{'apiVersion':'kfleet.io/v1','kind':'GuestCluster','name':'%s',"     \
    "'uid':'0d5e7c1e-5b2a-4f0e-9a57-3c1f7b0e2d41','controller':true}]},"                     \
    "'spec':{'cluster':'%s','component':'etcd','index':0,'version':'1.36','host':'h1',"      \
    "'zone':'a','resources':{'requests':{'cpu':'1','memory':'1Gi'}},'ports':{'client':2379}}}"

static json_t *member(const char *name, const char *cluster)
{
    char buf[2048];

    snprintf(buf, sizeof(buf), MEMBER, name, cluster, cluster, cluster);
    return J(buf);
}

/* Everything but labels, owners and resourceVersion is kept as it was, and
 * the member itself is left alone. */
static void test_projection_keeps_what_controllers_read(void **state)
{
    json_t *m = member("c1-etcd-0", "c1"), *before, *p;

    (void)state;
    json_object_set_new(kf_json_path(m, "metadata"), "resourceVersion", json_string("42"));
    json_object_set_new(kf_json_path(m, "metadata"), "uid", json_string("u-1"));
    json_object_set_new(kf_json_path(m, "metadata"), "creationTimestamp",
                        json_string("2026-12-07T21:00:00Z"));
    json_object_set_new(kf_json_path(m, "metadata"), "deletionTimestamp",
                        json_string("2026-12-07T22:00:00Z"));
    json_object_set_new(m, "status", J("{'phase':'Ready','ready':true,'observedGeneration':1}"));
    before = json_deep_copy(m);

    p = kf_ctrl_member_project(m);
    assert_non_null(p);
    assert_true(json_equal(m, before)); /* untouched */
    assert_null(kf_json_path(p, "metadata.labels"));
    assert_null(kf_json_path(p, "metadata.ownerReferences"));
    assert_null(kf_json_path(p, "metadata.resourceVersion"));
    assert_string_equal(kf_obj_name(p), "c1-etcd-0");
    assert_string_equal(kf_json_str(p, "metadata.uid", ""), "u-1");
    assert_string_equal(kf_json_str(p, "metadata.creationTimestamp", ""), "2026-12-07T21:00:00Z");
    assert_true(kf_obj_deleting(p));
    assert_true(json_equal(kf_json_path(p, "metadata.annotations"),
                           kf_json_path(m, "metadata.annotations")));
    assert_true(
        json_equal(kf_json_path(p, "metadata.finalizers"), kf_json_path(m, "metadata.finalizers")));
    assert_true(json_equal(kf_json_path(p, "spec"), kf_json_path(m, "spec")));
    assert_true(json_equal(kf_json_path(p, "status"), kf_json_path(m, "status")));
    assert_string_equal(kf_json_str(p, "kind", ""), "ControlPlaneMember");
    json_decref(p);

    p = json_pack("[]"); /* not an object: kept whole */
    assert_null(kf_ctrl_member_project(p));
    json_decref(p);
    json_decref(before);
    json_decref(m);
}

static void wait_for(struct kf_informer *inf, struct kf_store *store)
{
    int64_t want = kf_store_rev(store);

    for (int i = 0; i < 1000 && kf_informer_rev(inf) < want; i++)
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    assert_true(kf_informer_rev(inf) >= want);
}

static void create(struct regfx *f, json_t *obj)
{
    struct kf_causes causes = KF_CAUSES_INIT;

    assert_int_equal(
        kf_registry_create(f->reg, &kf_kind_controlplanemember, obj, NULL, &causes, NULL), 0);
    kf_causes_release(&causes);
    json_decref(obj);
}

/* Several controllers ask for the informer: one informer, one index by
 * cluster; a read from it has no labels or owners, the store has them. */
static void test_members_informer(void **state)
{
    struct regfx *f = *state;
    struct kf_ctrl_manager *m = kf_ctrl_manager_new(f->store, f->reg);
    struct kf_informer *a = NULL, *b = NULL;
    json_t *got;
    char **names;
    size_t n;

    assert_int_equal(kf_ctrl_members_informer(m, &a), 0);
    assert_int_equal(kf_ctrl_members_informer(m, &b), 0);
    assert_ptr_equal(a, b);
    assert_ptr_equal(a, kf_ctrl_informer(m, &kf_kind_controlplanemember));
    create(f, member("c1-etcd-0", "c1"));
    assert_int_equal(kf_ctrl_manager_start(m), 0);
    assert_int_equal(kf_ctrl_members_informer(m, NULL), -EBUSY);
    create(f, member("c1-etcd-1", "c1"));
    create(f, member("c2-etcd-0", "c2"));
    wait_for(a, f->store);

    n = kf_informer_index_names(a, KF_MEMBERS_BY_CLUSTER, "c1", &names);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "c1-etcd-0");
    assert_string_equal(names[1], "c1-etcd-1");
    kf_ctrl_names_free(names, n);

    assert_int_equal(kf_informer_get(a, "c1-etcd-1", &got), 0);
    assert_null(kf_json_path(got, "metadata.labels"));
    assert_null(kf_json_path(got, "metadata.ownerReferences"));
    assert_string_equal(kf_json_str(got, "spec.host", ""), "h1");
    assert_int_equal(kf_json_int(got, "spec.ports.client", 0), 2379);
    assert_non_null(kf_json_str(got, "metadata.uid", NULL));
    assert_non_null(kf_json_str(got, "metadata.creationTimestamp", NULL));
    assert_int_equal(kf_obj_rv(got), kf_informer_mod_rev(a, "c1-etcd-1"));
    json_decref(got);

    assert_int_equal(kf_registry_get(f->reg, &kf_kind_controlplanemember, "c1-etcd-1", &got), 0);
    assert_string_equal(json_string_value(json_object_get(kf_json_path(got, "metadata.labels"),
                                                          "kfleet.io/cluster")),
                        "c1");
    json_decref(got);
    kf_ctrl_manager_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_projection_keeps_what_controllers_read),
        cmocka_unit_test_setup_teardown(test_members_informer, regfx_setup, regfx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
