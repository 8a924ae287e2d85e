/* test-versions.c: versions with a lifecycle and the one-minor rule
 * (kfleet/versions.h), and what admission answers a GuestCluster's
 * version with them, through the registry as the API server writes. */
#include "fleet-test.h"

#include "kfleet/kind.h"
#include "kfleet/versions.h"

static void test_states(void **state)
{
    json_t *p = J("{'spec':{'versions':['1.35','1.36','1.37'],'versionLifecycle':["
                  "{'version':'1.35','supported':false},"
                  "{'version':'1.36','deprecated':true,'expirationDate':'2027-06-30'}]}}");
    time_t before = 1790000000, after = 1830000000; /* 2026-09, 2027-12 */

    (void)state;
    assert_int_equal(kf_version_state(p, "1.37", before), KF_VERSION_SUPPORTED);
    assert_int_equal(kf_version_state(p, "1.37.2", before), KF_VERSION_SUPPORTED);
    assert_int_equal(kf_version_state(p, "1.36.3", before), KF_VERSION_DEPRECATED);
    assert_int_equal(kf_version_state(p, "1.36", after), KF_VERSION_EXPIRED);
    assert_int_equal(kf_version_state(p, "1.35", before), KF_VERSION_UNSUPPORTED);
    assert_int_equal(kf_version_state(p, "1.38", before), KF_VERSION_UNLISTED);
    assert_int_equal(kf_version_state(NULL, "1.38", before), KF_VERSION_SUPPORTED);
    assert_string_equal(kf_version_state_name(KF_VERSION_DEPRECATED), "deprecated");
    json_decref(p);
}

static void test_one_minor_at_a_time(void **state)
{
    struct kf_strbuf why = KF_STRBUF_INIT;

    (void)state;
    assert_int_equal(kf_version_step_ok("1.36", "1.37", NULL), 0);
    assert_int_equal(kf_version_step_ok("1.36.1", "1.36.3", NULL), 0);
    assert_int_equal(kf_version_step_ok("1.37.2", "1.37.1", NULL), 0); /* patches move freely */
    assert_int_equal(kf_version_step_ok(NULL, "1.37", NULL), 0);
    assert_int_equal(kf_version_step_ok("1.35", "1.37", &why), -EINVAL);
    assert_non_null(strstr(why.buf, "skips a minor: the cluster runs 1.35"));
    assert_non_null(strstr(why.buf, "to 1.36 first"));
    kf_strbuf_reset(&why);
    assert_int_equal(kf_version_step_ok("1.37", "1.36", &why), -EINVAL);
    assert_non_null(strstr(why.buf, "does not support downgrades"));
    kf_strbuf_release(&why);
}

static json_t *gc(const char *version)
{
    json_t *o = J("{'apiVersion':'kfleet.io/v1','kind':'GuestCluster','metadata':{'name':'web'},"
                  "'spec':{'region':'r','profile':'std','network':{'vpc':'v'}}}");

    json_object_set_new(kf_json_path(o, "spec"), "version", json_string(version));
    return o;
}

static void test_admission(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *p = J("{'apiVersion':'kfleet.io/v1','kind':'Profile','metadata':{'name':'std'},"
                  "'spec':{'versions':['1.36','1.37'],'versionLifecycle':["
                  "{'version':'1.36','expirationDate':'2020-01-01'}]}}");
    json_t *o, *st;
    const char *patch;

    assert_int_equal(kf_registry_create(f->reg, &kf_kind_profile, p, NULL, &causes, &err), 0);
    /* a new cluster on an expired version is refused with the reason */
    o = gc("1.36");
    assert_int_equal(kf_registry_create(f->reg, &kf_kind_guestcluster, o, NULL, &causes, &err),
                     -KF_EINVALID);
    assert_cause(&causes, "spec.version", "FieldValueNotSupported", "profile std marks it expired");
    json_decref(o);
    kf_causes_release(&causes);
    causes = (struct kf_causes)KF_CAUSES_INIT;
    o = gc("1.37");
    assert_int_equal(kf_registry_create(f->reg, &kf_kind_guestcluster, o, NULL, &causes, &err), 0);
    json_decref(o);
    /* it runs 1.37 (the engine wrote status.version) */
    st = J("{'metadata':{'name':'web'},'status':{'version':'1.37'}}");
    assert_int_equal(
        kf_registry_update(f->reg, &kf_kind_guestcluster, st, true, NULL, &causes, &err), 0);
    json_decref(st);
    /* down to 1.36: refused (a downgrade, and expired) */
    patch = "{\"spec\":{\"version\":\"1.36\"}}";
    assert_int_equal(kf_registry_patch(f->reg, &kf_kind_guestcluster, "web", KF_PATCH_MERGE, patch,
                                       strlen(patch), false, NULL, &causes, &err),
                     -KF_EINVALID);
    assert_cause(&causes, "spec.version", "FieldValueInvalid", "does not support downgrades");
    kf_causes_release(&causes);
    causes = (struct kf_causes)KF_CAUSES_INIT;
    /* a patch of the same minor is fine */
    patch = "{\"spec\":{\"version\":\"1.37.2\"}}";
    assert_int_equal(kf_registry_patch(f->reg, &kf_kind_guestcluster, "web", KF_PATCH_MERGE, patch,
                                       strlen(patch), false, NULL, &causes, &err),
                     0);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_one_minor_at_a_time),
        cmocka_unit_test_setup_teardown(test_admission, regfx_setup, regfx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
