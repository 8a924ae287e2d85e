/* test-registry.c: the object registry over the memory store, as the API
 * server and controllers use it: server-owned metadata, generation,
 * optimistic concurrency, the status subresource (alone or with metadata
 * in one batch), patches, finalizers,
 * paginated lists with selectors and watch event types. */
#include "fleet-test.h"

#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/store.h"

static json_t *gc_obj(const char *name, const char *labels)
{
    char *s = kf_xasprintf("{'apiVersion':'kfleet.io/v1','kind':'GuestCluster',"
                           "'metadata':{'name':'%s','labels':%s},"
                           "'spec':{'region':'cn-hangzhou','version':'1.37',"
                           "'network':{'vpc':'vpc-1'}}}",
                           name, labels ? labels : "{}");
    json_t *v = J(s);

    free(s);
    return v;
}

static json_t *create_gc(struct regfx *f, const char *name, const char *labels)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *obj = gc_obj(name, labels), *ret = NULL;

    assert_int_equal(kf_registry_create(f->reg, &kf_kind_guestcluster, obj, &ret, &causes, NULL),
                     0);
    json_decref(obj);
    kf_causes_release(&causes);
    return ret;
}

static void test_create_sets_server_metadata(void **state)
{
    struct regfx *f = *state;
    json_t *obj = gc_obj("web-1", NULL), *ret = NULL, *got = NULL;
    struct kf_causes causes = KF_CAUSES_INIT;

    kf_json_set_str(obj, "metadata.uid", "forged");
    kf_json_set_str(obj, "metadata.resourceVersion", "999");
    kf_json_set(obj, "status", J("{'phase':'Running'}"));
    assert_int_equal(kf_registry_create(f->reg, &kf_kind_guestcluster, obj, &ret, &causes, NULL),
                     0);
    assert_int_equal(strlen(kf_obj_uid(ret)), 36);
    assert_string_not_equal(kf_obj_uid(ret), "forged");
    assert_non_null(kf_json_str(ret, "metadata.creationTimestamp", NULL));
    assert_int_equal(kf_obj_generation(ret), 1);
    assert_true(kf_obj_rv(ret) > 0 && kf_obj_rv(ret) != 999);
    /* status is not the creator's to set; defaults are filled in */
    assert_null(json_object_get(ret, "status"));
    assert_false(kf_json_bool(ret, "spec.paused", true));
    /* no default where a Template supplies the value (placement merges them) */
    assert_null(kf_json_path(ret, "spec.expectedNodes"));

    assert_int_equal(kf_registry_get(f->reg, &kf_kind_guestcluster, "web-1", &got), 0);
    assert_true(json_equal(got, ret));
    json_decref(got);
    json_decref(ret);
    json_decref(obj);
    kf_causes_release(&causes);
}

static void test_create_errors(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *obj, *ret = NULL;

    json_decref(create_gc(f, "dup", NULL));
    obj = gc_obj("dup", NULL);
    assert_int_equal(kf_registry_create(f->reg, &kf_kind_guestcluster, obj, NULL, &causes, &err),
                     -KF_EEXISTS);
    assert_non_null(strstr(err.buf, "guestclusters \"dup\" already exists"));
    json_decref(obj);

    obj = gc_obj("bad", NULL);
    kf_json_set_str(obj, "spec.network.podCIDR", "10.0.0.1/16");
    kf_json_set(obj, "spec.waterlevel", json_real(0.5));
    assert_int_equal(kf_registry_create(f->reg, &kf_kind_guestcluster, obj, NULL, &causes, &err),
                     -KF_EINVALID);
    assert_cause(&causes, "spec.network.podCIDR", "FieldValueInvalid",
                 "\"10.0.0.1/16\" has host bits set; the block is 10.0.0.0/16");
    assert_cause(&causes, "spec.waterlevel", "FieldValueUnknown", "unknown field \"waterlevel\"");
    assert_non_null(strstr(err.buf, "GuestCluster \"bad\" is invalid"));
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_guestcluster, "bad", &ret), -KF_ENOTFOUND);
    json_decref(obj);
    kf_causes_release(&causes);

    /* generateName */
    obj = J("{'metadata':{'generateName':'auto-'},'spec':{'region':'r1','zones':['a']}}");
    assert_int_equal(kf_registry_create(f->reg, &kf_kind_unit, obj, &ret, &causes, &err), 0);
    assert_true(kf_str_has_prefix(kf_obj_name(ret), "auto-"));
    assert_int_equal(strlen(kf_obj_name(ret)), 10);
    assert_string_equal(kf_json_str(ret, "kind", ""), "Unit");
    json_decref(ret);
    json_decref(obj);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

static int update(struct regfx *f, json_t *obj, bool status_only, json_t **ret,
                  struct kf_causes *causes)
{
    return kf_registry_update(f->reg, &kf_kind_guestcluster, obj, status_only, ret, causes, NULL);
}

static void test_update_generation_and_status(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *v1 = create_gc(f, "g", NULL), *v2 = NULL, *v3 = NULL, *v4 = NULL, *v5 = NULL;
    json_t *req;

    /* a label change is not a spec change */
    req = json_deep_copy(v1);
    kf_json_set_str(req, "metadata.labels.team", "infra");
    assert_int_equal(update(f, req, false, &v2, &causes), 0);
    assert_int_equal(kf_obj_generation(v2), 1);
    assert_true(kf_obj_rv(v2) > kf_obj_rv(v1));
    json_decref(req);

    /* a spec change bumps generation; status in a normal update is ignored;
     * uid and creationTimestamp cannot be changed */
    req = json_deep_copy(v2);
    kf_json_set_int(req, "spec.expectedNodes", 50);
    kf_json_set_str(req, "status.phase", "Running");
    kf_json_set_str(req, "metadata.creationTimestamp", "2001-01-01T00:00:00Z");
    kf_json_set_int(req, "metadata.generation", 77);
    assert_int_equal(update(f, req, false, &v3, &causes), 0);
    assert_int_equal(kf_obj_generation(v3), 2);
    assert_null(json_object_get(v3, "status"));
    assert_string_equal(kf_json_str(v3, "metadata.creationTimestamp", ""),
                        kf_json_str(v1, "metadata.creationTimestamp", ""));
    json_decref(req);

    /* the status subresource changes only status */
    req = json_deep_copy(v3);
    kf_json_set_str(req, "status.phase", "Running");
    kf_json_set_int(req, "spec.expectedNodes", 9);
    assert_int_equal(update(f, req, true, &v4, &causes), 0);
    assert_string_equal(kf_json_str(v4, "status.phase", ""), "Running");
    assert_int_equal(kf_json_int(v4, "spec.expectedNodes", 0), 50);
    assert_int_equal(kf_obj_generation(v4), 2);
    json_decref(req);

    /* a status the schema rejects */
    req = json_deep_copy(v4);
    kf_json_set_str(req, "status.phase", "Exploded");
    assert_int_equal(update(f, req, true, NULL, &causes), -KF_EINVALID);
    assert_cause(&causes, "status.phase", "FieldValueNotSupported",
                 "unsupported value \"Exploded\"");
    kf_causes_release(&causes);
    json_decref(req);

    /* nothing changed: no write, same resourceVersion */
    req = json_deep_copy(v4);
    assert_int_equal(update(f, req, false, &v5, &causes), 0);
    assert_int_equal(kf_obj_rv(v5), kf_obj_rv(v4));
    json_decref(req);

    json_decref(v1);
    json_decref(v2);
    json_decref(v3);
    json_decref(v4);
    json_decref(v5);
}

/* A batch update of metadata and status together (what placement commits):
 * one revision for the lot, finalizers and status both taken, the spec
 * under the main resource's rules, the status under the subresource's
 * schema, and a stale resourceVersion refused for the whole batch. */
static void test_update_batch_all(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *a = create_gc(f, "a", NULL), *b = create_gc(f, "b", NULL), *objs[2], *got = NULL;
    int64_t rev = 0, old_rv = kf_obj_rv(a);
    size_t failed = 99;

    objs[0] = a;
    objs[1] = b;
    for (int i = 0; i < 2; i++) {
        kf_json_set_str(objs[i], "status.phase", "Scheduled");
        kf_json_set_str(objs[i], "status.unit", "u1");
        json_object_set_new(json_object_get(objs[i], "metadata"), "finalizers",
                            json_pack("[s]", "kfleet.io/placement"));
    }
    assert_int_equal(kf_registry_update_batch_all(f->reg, &kf_kind_guestcluster, objs, 2, &rev,
                                                  &failed, &causes, NULL),
                     0);
    assert_true(rev > old_rv);
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_guestcluster, "b", &got), 0);
    assert_int_equal(kf_obj_rv(got), rev); /* one transaction for both */
    assert_string_equal(kf_json_str(got, "status.unit", ""), "u1");
    assert_true(kf_obj_has_finalizer(got, "kfleet.io/placement"));
    assert_int_equal(kf_obj_generation(got), 1); /* the spec did not change */
    json_decref(got);

    /* a status the schema rejects fails the batch; nothing is written */
    kf_json_set_str(a, "status.phase", "Exploded");
    kf_json_set_str(b, "status.unit", "u2");
    assert_int_equal(kf_registry_update_batch_all(f->reg, &kf_kind_guestcluster, objs, 2, NULL,
                                                  &failed, &causes, NULL),
                     -KF_EINVALID);
    assert_int_equal(failed, 0);
    assert_cause(&causes, "status.phase", "FieldValueNotSupported",
                 "unsupported value \"Exploded\"");
    kf_causes_release(&causes);
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_guestcluster, "b", &got), 0);
    assert_string_equal(kf_json_str(got, "status.unit", ""), "u1");
    json_decref(got);

    /* a stale resourceVersion is a conflict */
    kf_json_set_str(a, "status.phase", "Scheduled");
    kf_json_set_str(a, "metadata.resourceVersion", "1");
    assert_int_equal(kf_registry_update_batch_all(f->reg, &kf_kind_guestcluster, objs, 2, NULL,
                                                  &failed, &causes, NULL),
                     -KF_ECONFLICT);
    kf_causes_release(&causes);
    json_decref(a);
    json_decref(b);
}

static void test_update_conflicts_and_immutable(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *v1 = create_gc(f, "c", NULL), *v2 = NULL, *req;

    req = json_deep_copy(v1);
    kf_json_set_int(req, "spec.expectedNodes", 5);
    assert_int_equal(update(f, req, false, &v2, &causes), 0);
    json_decref(req);

    /* writing on top of v1 again: its resourceVersion is stale */
    req = json_deep_copy(v1);
    kf_json_set_int(req, "spec.expectedNodes", 6);
    assert_int_equal(
        kf_registry_update(f->reg, &kf_kind_guestcluster, req, false, NULL, &causes, &err),
        -KF_ECONFLICT);
    assert_non_null(strstr(err.buf, "the object has been modified"));
    /* without a resourceVersion the update is unconditional */
    kf_json_del(req, "metadata.resourceVersion");
    assert_int_equal(update(f, req, false, NULL, &causes), 0);
    json_decref(req);

    /* region and network.vpc are immutable */
    req = json_deep_copy(v2);
    kf_json_del(req, "metadata.resourceVersion");
    kf_json_set_str(req, "spec.region", "eu-west");
    kf_json_set_str(req, "spec.network.vpc", "vpc-2");
    assert_int_equal(update(f, req, false, NULL, &causes), -KF_EINVALID);
    assert_cause(&causes, "spec.region", "FieldValueInvalid", "field is immutable");
    assert_cause(&causes, "spec.network.vpc", "FieldValueInvalid", "field is immutable");
    kf_causes_release(&causes);
    json_decref(req);

    /* a uid that does not match is a precondition failure */
    req = json_deep_copy(v2);
    kf_json_del(req, "metadata.resourceVersion");
    kf_json_set_str(req, "metadata.uid", "00000000-0000-0000-0000-000000000000");
    assert_int_equal(update(f, req, false, NULL, &causes), -KF_ECONFLICT);
    json_decref(req);

    /* update of a missing object */
    req = gc_obj("ghost", NULL);
    assert_int_equal(
        kf_registry_update(f->reg, &kf_kind_guestcluster, req, false, NULL, &causes, &err),
        -KF_ENOTFOUND);
    assert_non_null(strstr(err.buf, "guestclusters \"ghost\" not found"));
    json_decref(req);

    /* no status subresource on Templates */
    req = J("{'metadata':{'name':'t'},'spec':{'profile':'standard'}}");
    assert_int_equal(kf_registry_update(f->reg, &kf_kind_template, req, true, NULL, &causes, NULL),
                     -KF_ENOTFOUND);
    json_decref(req);

    json_decref(v1);
    json_decref(v2);
    kf_strbuf_release(&err);
}

static int patch(struct regfx *f, const char *name, enum kf_patch_type type, const char *text,
                 bool status_only, json_t **ret, struct kf_causes *causes, struct kf_strbuf *err)
{
    char *s = kf_xstrdup(text);
    int rc;

    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    rc = kf_registry_patch(f->reg, &kf_kind_guestcluster, name, type, s, strlen(s), status_only,
                           ret, causes, err);
    free(s);
    return rc;
}

static void test_patch(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *v1 = create_gc(f, "p", "{'a':'1','b':'2'}"), *ret = NULL;

    /* merge: change a field, delete a label with null */
    assert_int_equal(patch(f, "p", KF_PATCH_MERGE,
                           "{'metadata':{'labels':{'a':null}},'spec':{'expectedNodes':40}}", false,
                           &ret, &causes, &err),
                     0);
    assert_null(kf_json_path(ret, "metadata.labels.a"));
    assert_string_equal(kf_json_str(ret, "metadata.labels.b", ""), "2");
    assert_int_equal(kf_json_int(ret, "spec.expectedNodes", 0), 40);
    assert_int_equal(kf_obj_generation(ret), 2);
    json_decref(ret);

    /* JSON patch on the status subresource */
    assert_int_equal(patch(f, "p", KF_PATCH_JSON,
                           "[{'op':'add','path':'/status','value':{'phase':'Scheduled',"
                           "'unit':'hz-u1'}}]",
                           true, &ret, &causes, &err),
                     0);
    assert_string_equal(kf_json_str(ret, "status.unit", ""), "hz-u1");
    assert_int_equal(kf_obj_generation(ret), 2);
    json_decref(ret);

    /* a failed test op is 422 with the reason; a malformed one is 400 */
    assert_int_equal(patch(f, "p", KF_PATCH_JSON,
                           "[{'op':'test','path':'/spec/expectedNodes','value':41}]", false, NULL,
                           &causes, &err),
                     -KF_EINVALID);
    assert_non_null(strstr(err.buf, "test failed"));
    kf_causes_release(&causes);
    assert_int_equal(
        patch(f, "p", KF_PATCH_JSON, "[{'op':'jump','path':'/spec'}]", false, NULL, &causes, &err),
        -KF_EBADREQUEST);
    assert_non_null(strstr(err.buf, "unknown op \"jump\""));
    assert_int_equal(patch(f, "p", KF_PATCH_MERGE, "{'spec':", false, NULL, &causes, &err),
                     -KF_EBADREQUEST);
    assert_int_equal(patch(f, "p", KF_PATCH_MERGE, "[1]", false, NULL, &causes, &err),
                     -KF_EBADREQUEST);

    /* names cannot change; validation applies to the patched object */
    assert_int_equal(
        patch(f, "p", KF_PATCH_MERGE, "{'metadata':{'name':'q'}}", false, NULL, &causes, &err),
        -KF_EINVALID);
    assert_cause(&causes, "metadata.name", "FieldValueInvalid", "names cannot change");
    kf_causes_release(&causes);
    assert_int_equal(
        patch(f, "p", KF_PATCH_MERGE, "{'spec':{'grade':'G9'}}", false, NULL, &causes, &err),
        -KF_EINVALID);
    assert_cause(&causes, "spec.grade", "FieldValueNotSupported", "\"G0\", \"G1\"");
    kf_causes_release(&causes);

    /* a resourceVersion in the patch is a precondition */
    assert_int_equal(patch(f, "p", KF_PATCH_MERGE,
                           "{'metadata':{'resourceVersion':'1'},'spec':{'expectedNodes':1}}", false,
                           NULL, &causes, &err),
                     -KF_ECONFLICT);
    assert_int_equal(patch(f, "nope", KF_PATCH_MERGE, "{}", false, NULL, &causes, &err),
                     -KF_ENOTFOUND);

    json_decref(v1);
    kf_strbuf_release(&err);
}

static void test_delete_and_finalizers(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *obj = NULL, *got = NULL, *req;
    bool deleted = false;

    json_decref(create_gc(f, "plain", NULL));
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_guestcluster, "plain", 0, &obj, &deleted),
                     0);
    assert_true(deleted);
    assert_string_equal(kf_obj_name(obj), "plain");
    json_decref(obj);
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_guestcluster, "plain", &got), -KF_ENOTFOUND);
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_guestcluster, "plain", 0, NULL, NULL),
                     -KF_ENOTFOUND);

    /* with a finalizer: deletionTimestamp, and the object stays */
    obj = create_gc(f, "fin", NULL);
    assert_int_equal(
        kf_registry_delete(f->reg, &kf_kind_guestcluster, "fin", kf_obj_rv(obj) + 5, NULL, NULL),
        -KF_ECONFLICT);
    json_decref(obj);
    assert_int_equal(patch(f, "fin", KF_PATCH_MERGE,
                           "{'metadata':{'finalizers':['kfleet.io/ipam']}}", false, NULL, &causes,
                           NULL),
                     0);
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_guestcluster, "fin", 0, &obj, &deleted),
                     0);
    assert_false(deleted);
    assert_true(kf_obj_deleting(obj));
    json_decref(obj);
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_guestcluster, "fin", &got), 0);
    assert_true(kf_obj_deleting(got));

    /* no new finalizers while deleting */
    req = json_deep_copy(got);
    kf_json_set(req, "metadata.finalizers", J("['kfleet.io/ipam','kfleet.io/other']"));
    assert_int_equal(update(f, req, false, NULL, &causes), -KF_EINVALID);
    assert_cause(&causes, "metadata.finalizers[1]", "FieldValueForbidden", "no new finalizers");
    kf_causes_release(&causes);
    json_decref(req);

    /* the controller removes its finalizer: the object goes */
    req = json_deep_copy(got);
    kf_json_set(req, "metadata.finalizers", json_array());
    assert_int_equal(update(f, req, false, &obj, &causes), 0);
    json_decref(obj);
    json_decref(req);
    json_decref(got);
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_guestcluster, "fin", &got), -KF_ENOTFOUND);
}

/* Names of a raw list, comma-separated. */
static char *names(const struct kf_kv_list *l)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;

    for (size_t i = 0; i < l->n; i++)
        kf_strbuf_addf(&sb, "%s%s", i ? "," : "", strrchr(l->items[i].key, '/') + 1);
    return kf_strbuf_detach(&sb, NULL);
}

static void test_list_pages(void **state)
{
    struct regfx *f = *state;
    struct kf_list_opts o = { .limit = 4 };
    struct kf_kv_list l = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *cont = NULL, *s;
    int64_t rev1;

    for (int i = 0; i < 10; i++) {
        char name[16];

        snprintf(name, sizeof(name), "c%02d", i);
        json_decref(create_gc(f, name, i % 2 ? "{'tier':'gold'}" : "{'tier':'silver'}"));
    }
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err), 0);
    s = names(&l);
    assert_string_equal(s, "c00,c01,c02,c03");
    free(s);
    assert_non_null(cont);
    rev1 = l.rev;
    /* raw bytes are the stored canonical object: metadata first, no rv */
    assert_true(kf_str_has_prefix(l.items[0].value, "{\"metadata\":{\"name\":\"c00\""));
    assert_null(strstr(l.items[0].value, "resourceVersion"));
    kf_kv_list_release(&l);

    /* writes between pages do not show: page 2 reads at page 1's revision */
    json_decref(create_gc(f, "c045", NULL));
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_guestcluster, "c05", 0, NULL, NULL), 0);
    o.continue_token = cont;
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err), 0);
    free((char *)o.continue_token);
    s = names(&l);
    assert_string_equal(s, "c04,c05,c06,c07");
    free(s);
    assert_int_equal(l.rev, rev1);
    kf_kv_list_release(&l);
    o.continue_token = cont;
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err), 0);
    free((char *)o.continue_token);
    s = names(&l);
    assert_string_equal(s, "c08,c09");
    free(s);
    assert_null(cont);
    kf_kv_list_release(&l);

    /* a fresh list sees the writes */
    o = (struct kf_list_opts){ 0 };
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err), 0);
    assert_int_equal(l.n, 10);
    assert_null(cont);
    kf_kv_list_release(&l);

    /* a token with a different resourceVersion; a revision from the future */
    o = (struct kf_list_opts){ .limit = 2 };
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err), 0);
    kf_kv_list_release(&l);
    o.continue_token = cont;
    o.rev = 1;
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err),
                     -KF_EBADREQUEST);
    assert_non_null(strstr(err.buf, "cannot be combined with a continue token"));
    free((char *)o.continue_token);
    o = (struct kf_list_opts){ .rev = kf_store_rev(f->store) + 100 };
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err),
                     -KF_EBADREQUEST);
    assert_non_null(strstr(err.buf, "is newer than the store"));
    o = (struct kf_list_opts){ 0 };

    /* tampered token */
    o.continue_token = "eyJ2IjoxfQ";
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err),
                     -KF_EBADREQUEST);
    assert_non_null(strstr(err.buf, "invalid continue token"));
    o.continue_token = "%%%";
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err),
                     -KF_EBADREQUEST);
    kf_strbuf_release(&err);
}

static void test_list_selectors(void **state)
{
    struct regfx *f = *state;
    struct kf_selector *gold = NULL, *fields = NULL;
    struct kf_list_opts o = { 0 };
    struct kf_kv_list l = { 0 };
    char *cont = NULL, *s;
    json_t *items = NULL;

    for (int i = 0; i < 10; i++) {
        char name[16];

        snprintf(name, sizeof(name), "c%02d", i);
        json_decref(create_gc(f, name, i % 3 == 0 ? "{'tier':'gold'}" : "{'tier':'silver'}"));
    }
    assert_int_equal(kf_selector_parse_labels("tier=gold", &gold, NULL), 0);
    o.labels = gold;
    o.limit = 2;
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, NULL), 0);
    s = names(&l);
    assert_string_equal(s, "c00,c03");
    free(s);
    assert_non_null(cont);
    kf_kv_list_release(&l);
    o.continue_token = cont;
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, NULL), 0);
    free((char *)o.continue_token);
    s = names(&l);
    assert_string_equal(s, "c06,c09");
    free(s);
    /* no more matches after c09: no token, so no empty page */
    assert_null(cont);
    kf_kv_list_release(&l);

    /* field selectors, including the metadata.name shortcut */
    assert_int_equal(kf_selector_parse_fields("metadata.name=c04", &fields, NULL), 0);
    o = (struct kf_list_opts){ .fields = fields };
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, NULL), 0);
    s = names(&l);
    assert_string_equal(s, "c04");
    free(s);
    kf_kv_list_release(&l);
    kf_selector_free(fields);
    assert_int_equal(
        kf_selector_parse_fields("spec.region=cn-hangzhou,metadata.name!=c00", &fields, NULL), 0);
    o = (struct kf_list_opts){ .fields = fields, .labels = gold };
    assert_int_equal(kf_registry_list(f->reg, &kf_kind_guestcluster, &o, &items, NULL, &cont, NULL),
                     0);
    assert_int_equal(json_array_size(items), 3);
    assert_string_equal(kf_obj_name(json_array_get(items, 0)), "c03");
    assert_true(kf_obj_rv(json_array_get(items, 0)) > 0);
    json_decref(items);
    kf_selector_free(fields);

    /* "metadata.name^=c0": the names starting with c0 (not d01), paged */
    json_decref(create_gc(f, "d01", "{'tier':'silver'}"));
    assert_int_equal(kf_selector_parse_fields("metadata.name^=c0", &fields, NULL), 0);
    o = (struct kf_list_opts){ .fields = fields, .limit = 4 };
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, NULL), 0);
    s = names(&l);
    assert_string_equal(s, "c00,c01,c02,c03");
    free(s);
    kf_kv_list_release(&l);
    o.continue_token = cont;
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, NULL), 0);
    free((char *)o.continue_token);
    s = names(&l);
    assert_string_equal(s, "c04,c05,c06,c07");
    free(s);
    kf_kv_list_release(&l);
    o.continue_token = cont;
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, NULL), 0);
    free((char *)o.continue_token);
    s = names(&l);
    assert_string_equal(s, "c08,c09");
    free(s);
    assert_null(cont);
    kf_kv_list_release(&l);
    /* with a label selector too */
    o = (struct kf_list_opts){ .fields = fields, .labels = gold };
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, NULL), 0);
    s = names(&l);
    assert_string_equal(s, "c00,c03,c06,c09");
    free(s);
    kf_kv_list_release(&l);
    kf_selector_free(fields);
    assert_int_equal(kf_selector_parse_fields("metadata.name^=d", &fields, NULL), 0);
    o = (struct kf_list_opts){ .fields = fields };
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, NULL), 0);
    s = names(&l);
    assert_string_equal(s, "d01");
    free(s);
    kf_kv_list_release(&l);
    kf_selector_free(fields);
    kf_selector_free(gold);
}

static void test_bytes_paths(void **state)
{
    json_t *obj = J("{'metadata':{'name':'x','annotations':{'a':'{\\\"not\\\":[\\\"json}'},"
                    "'labels':{'app':'web'}},'spec':{'region':'r','network':{'vpc':'v',"
                    "'maxPodsPerNode':110},'zones':['a','b']},'status':{'ok':true}}");
    struct kf_strbuf b = KF_STRBUF_INIT;
    static const char *const paths[] = {
        "metadata.name",
        "metadata.labels",
        "spec.region",
        "spec.network.vpc",
        "spec.network.maxPodsPerNode",
        "spec.zones",
        "status.ok",
        "status",
        "spec.network.none",
        "spec.region.deeper",
        "nope",
        "metadata.annotations.a",
    };
    json_t *labels = NULL;

    assert_int_equal(kf_obj_encode(obj, &b), 0);
    for (size_t i = 0; i < KF_ARRAY_SIZE(paths); i++) {
        json_t *v = NULL, *want = kf_json_path(obj, paths[i]);
        int rc = kf_obj_path_from_bytes(b.buf, b.len, paths[i], &v);

        assert_int_equal(rc, want ? 1 : 0);
        if (want)
            assert_true(json_equal(v, want));
        else
            assert_null(v);
        json_decref(v);
    }
    assert_int_equal(kf_obj_labels_from_bytes(b.buf, b.len, &labels), 1);
    assert_string_equal(kf_json_str(labels, "app", ""), "web");
    json_decref(labels);
    assert_int_equal(kf_obj_labels_from_bytes("{\"metadata\":{\"name\":\"x\"}}", 26, &labels), 0);
    assert_null(labels);
    assert_int_equal(kf_obj_labels_from_bytes("{\"spec\":{}}", 11, &labels), -EBADMSG);
    assert_int_equal(kf_obj_path_from_bytes("{\"a\":[1,", 8, "b", &labels), -EBADMSG);
    kf_strbuf_release(&b);
    json_decref(obj);
}

static void test_list_compacted(void **state)
{
    struct regfx *f = *state;
    struct kf_list_opts o = { .limit = 1 };
    struct kf_kv_list l = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *cont = NULL;

    json_decref(create_gc(f, "a", NULL));
    json_decref(create_gc(f, "b", NULL));
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err), 0);
    kf_kv_list_release(&l);
    json_decref(create_gc(f, "c", NULL));
    assert_int_equal(kf_store_compact(f->store, kf_store_rev(f->store)), 0);
    o.continue_token = cont;
    assert_int_equal(kf_registry_list_raw(f->reg, &kf_kind_guestcluster, &o, &l, &cont, &err),
                     -KF_ECOMPACTED);
    assert_non_null(strstr(err.buf, "list again without continue"));
    free((char *)o.continue_token);
    kf_strbuf_release(&err);
}

static void test_watch_type(void **state)
{
    struct regfx *f = *state;
    struct kf_selector *gold = NULL;
    struct kf_watch *w = NULL;
    struct kf_event *ev = NULL;
    struct kf_causes causes = KF_CAUSES_INIT;
    const char *expect_all[] = { "ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED" };
    const char *expect_gold[] = { NULL, "ADDED", "MODIFIED", "DELETED", NULL };
    int i = 0;

    assert_int_equal(kf_selector_parse_labels("tier=gold", &gold, NULL), 0);
    assert_int_equal(kf_watch_open(f->store, "/guestclusters/", 0, NULL, NULL, &w), 0);
    json_decref(create_gc(f, "w", "{'tier':'silver'}"));
    assert_int_equal(patch(f, "w", KF_PATCH_MERGE, "{'metadata':{'labels':{'tier':'gold'}}}", false,
                           NULL, &causes, NULL),
                     0);
    assert_int_equal(
        patch(f, "w", KF_PATCH_MERGE, "{'spec':{'expectedNodes':7}}", false, NULL, &causes, NULL),
        0);
    assert_int_equal(patch(f, "w", KF_PATCH_MERGE, "{'metadata':{'labels':{'tier':'bronze'}}}",
                           false, NULL, &causes, NULL),
                     0);
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_guestcluster, "w", 0, NULL, NULL), 0);
    while (kf_watch_next(w, &ev) == 1) {
        const char *t = kf_registry_watch_type(ev, gold, NULL);

        assert_true(i < 5);
        assert_string_equal(kf_registry_watch_type(ev, NULL, NULL), expect_all[i]);
        if (expect_gold[i])
            assert_string_equal(t, expect_gold[i]);
        else
            assert_null(t);
        kf_event_unref(ev);
        i++;
    }
    assert_int_equal(i, 5);
    kf_watch_close(w);
    kf_selector_free(gold);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_sets_server_metadata, regfx_setup,
                                        regfx_teardown),
        cmocka_unit_test_setup_teardown(test_create_errors, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_update_generation_and_status, regfx_setup,
                                        regfx_teardown),
        cmocka_unit_test_setup_teardown(test_update_batch_all, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_update_conflicts_and_immutable, regfx_setup,
                                        regfx_teardown),
        cmocka_unit_test_setup_teardown(test_patch, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_finalizers, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_list_pages, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_list_selectors, regfx_setup, regfx_teardown),
        cmocka_unit_test(test_bytes_paths),
        cmocka_unit_test_setup_teardown(test_list_compacted, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_watch_type, regfx_setup, regfx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
