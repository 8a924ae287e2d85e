/* test-broadcast.c: the BroadcastJob and BroadcastTask kinds (Kruise's
 * admission rules, defaults, task names), parallelism resolution, the
 * registry's batch writes (all or none, with the single-object rules) and
 * recording task results exactly once. */
#include "fleet-test.h"

#include "kfleet/broadcast.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/store.h"

static json_t *job(const char *spec)
{
    char *s = kf_xasprintf("{'apiVersion':'kfleet.io/v1','kind':'BroadcastJob',"
                           "'metadata':{'name':'check'},'spec':%s}",
                           spec);
    json_t *v = J(s);

    free(s);
    return v;
}

static int admit(const struct kf_kind *k, json_t *obj, struct kf_causes *causes)
{
    return kf_kind_admit(k, obj, NULL, false, causes);
}

static void test_job_defaults(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *j = job("{'template':{'command':['/bin/true'],'restartPolicy':'Never'}}");

    (void)state;
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), 0);
    assert_string_equal(kf_json_str(j, "spec.completionPolicy.type", ""), "Always");
    assert_string_equal(kf_json_str(j, "spec.failurePolicy.type", ""), "FailFast");
    assert_false(kf_json_bool(j, "spec.paused", true));
    assert_null(kf_json_path(j, "spec.parallelism"));
    assert_ptr_equal(kf_kind_find("bcj"), &kf_kind_broadcastjob);
    assert_ptr_equal(kf_kind_find("broadcasttasks"), &kf_kind_broadcasttask);
    json_decref(j);
    kf_causes_release(&causes);
}

static void test_job_admission(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *j;

    (void)state;
    /* restartPolicy is required and only Never or OnFailure */
    j = job("{'template':{'command':['/bin/true']}}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_cause(&causes, "spec.template.restartPolicy", "FieldValueRequired", "Required");
    json_decref(j);
    kf_causes_release(&causes);
    j = job("{'template':{'command':['/bin/true'],'restartPolicy':'Always'}}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_cause(&causes, "spec.template.restartPolicy", "FieldValueNotSupported", "OnFailure");
    json_decref(j);
    kf_causes_release(&causes);
    /* an empty command */
    j = job("{'template':{'command':[],'restartPolicy':'Never'}}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_non_null(find_cause(&causes, "spec.template.command"));
    json_decref(j);
    kf_causes_release(&causes);
    /* the deadline and the TTL only with Always, as Kruise's webhook says */
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'},"
            "'completionPolicy':{'type':'Never','activeDeadlineSeconds':10,"
            "'ttlSecondsAfterFinished':0}}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_cause(&causes, "spec.completionPolicy.activeDeadlineSeconds", "FieldValueForbidden",
                 "type Always");
    assert_cause(&causes, "spec.completionPolicy.ttlSecondsAfterFinished", "FieldValueForbidden",
                 "type Always");
    json_decref(j);
    kf_causes_release(&causes);
    /* parallelism: an integer >= 0 or a percentage up to 100 % */
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'},'parallelism':'10%'}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), 0);
    json_decref(j);
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'},'parallelism':7}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), 0);
    json_decref(j);
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'},'parallelism':'ten'}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_cause(&causes, "spec.parallelism", "FieldValueInvalid", "percentage");
    json_decref(j);
    kf_causes_release(&causes);
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'},'parallelism':'150%'}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_cause(&causes, "spec.parallelism", "FieldValueInvalid", "between 0% and 100%");
    json_decref(j);
    kf_causes_release(&causes);
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'},'parallelism':-1}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_non_null(find_cause(&causes, "spec.parallelism"));
    json_decref(j);
    kf_causes_release(&causes);
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'},'parallelism':1.5}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_cause(&causes, "spec.parallelism", "FieldValueTypeInvalid", "integer or a string");
    json_decref(j);
    kf_causes_release(&causes);
    /* tolerations as Kubernetes validates them; a misspelled field is refused */
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'},"
            "'tolerations':[{'effect':'NoSchedule'},{'key':'a','operator':'Exists','value':'b'}]}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_cause(&causes, "spec.tolerations[0].operator", "FieldValueInvalid", "Exists");
    assert_cause(&causes, "spec.tolerations[1].value", "FieldValueInvalid", "empty");
    json_decref(j);
    kf_causes_release(&causes);
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'},'paralelism':3}");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_cause(&causes, "spec.paralelism", "FieldValueUnknown", "parallelism");
    json_decref(j);
    kf_causes_release(&causes);
    /* job names are DNS labels: "<job>." prefixes its tasks */
    j = job("{'template':{'command':['x'],'restartPolicy':'Never'}}");
    kf_json_set_str(j, "metadata.name", "a.b");
    assert_int_equal(admit(&kf_kind_broadcastjob, j, &causes), -KF_EINVALID);
    assert_non_null(find_cause(&causes, "metadata.name"));
    json_decref(j);
    kf_causes_release(&causes);
}

static void test_parallelism(void **state)
{
    json_t *p;

    (void)state;
    assert_true(kf_bcj_parallelism(NULL, 10) == INT64_MAX);
    p = json_integer(3);
    assert_int_equal(kf_bcj_parallelism(p, 10), 3);
    json_decref(p);
    /* Kruise's TestReconcileJobCreatePodPercentage: 40 % of 5 is 2 */
    p = json_string("40%");
    assert_int_equal(kf_bcj_parallelism(p, 5), 2);
    assert_int_equal(kf_bcj_parallelism(p, 6), 3); /* 2.4 rounds up */
    assert_int_equal(kf_bcj_parallelism(p, 0), 0);
    json_decref(p);
    p = json_string("10%");
    assert_int_equal(kf_bcj_parallelism(p, 1), 1);
    assert_int_equal(kf_bcj_parallelism(p, 100000), 10000);
    json_decref(p);
}

static void test_task_names(void **state)
{
    struct kf_strbuf n = KF_STRBUF_INIT;
    char host[254];
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *t;

    (void)state;
    kf_bcj_task_name("check", "h1.zone-a", &n);
    assert_string_equal(n.buf, "check.h1.zone-a");
    memset(host, 'a', 250);
    host[250] = '\0';
    kf_bcj_task_name("check", host, &n);
    assert_true(n.len <= KF_NAME_MAX);
    assert_true(kf_str_has_prefix(n.buf, "check.h-"));
    assert_true(kf_name_valid(n.buf));

    t = J("{'metadata':{'name':'check.other'},'spec':{'job':'check','host':'h1',"
          "'command':['x'],'restartPolicy':'Never'}}");
    assert_int_equal(admit(&kf_kind_broadcasttask, t, &causes), -KF_EINVALID);
    assert_cause(&causes, "metadata.name", "FieldValueInvalid", "is named \"check.h1\"");
    json_decref(t);
    kf_causes_release(&causes);
    kf_strbuf_release(&n);
}

static json_t *task(const char *job_name, const char *host)
{
    struct kf_strbuf n = KF_STRBUF_INIT;
    json_t *t = J("{'apiVersion':'kfleet.io/v1','kind':'BroadcastTask','metadata':{},"
                  "'spec':{'command':['/bin/true'],'restartPolicy':'Never'}}");

    kf_bcj_task_name(job_name, host, &n);
    kf_json_set_str(t, "metadata.name", n.buf);
    kf_json_set_str(t, "spec.job", job_name);
    kf_json_set_str(t, "spec.host", host);
    kf_strbuf_release(&n);
    return t;
}

static void test_create_batch(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *objs[3], *items = NULL;
    size_t failed = 99;
    int64_t rev = 0;
    struct kf_selector *fs = NULL;
    struct kf_list_opts o = { 0 };

    objs[0] = task("j", "h1");
    objs[1] = task("j", "h2");
    objs[2] = task("j", "h3");
    assert_int_equal(kf_registry_create_batch(f->reg, &kf_kind_broadcasttask, objs, 3, &rev,
                                              &failed, &causes, &err),
                     0);
    for (int i = 0; i < 3; i++) {
        /* server metadata as for a single create, all at one revision */
        assert_int_equal(kf_obj_rv(objs[i]), rev);
        assert_int_equal(strlen(kf_obj_uid(objs[i])), 36);
        assert_int_equal(kf_obj_generation(objs[i]), 1);
        json_decref(objs[i]);
    }

    /* all or none: an existing name fails the batch and names it */
    objs[0] = task("j", "h4");
    objs[1] = task("j", "h2");
    objs[2] = task("j", "h5");
    assert_int_equal(kf_registry_create_batch(f->reg, &kf_kind_broadcasttask, objs, 3, NULL,
                                              &failed, &causes, &err),
                     -KF_EEXISTS);
    assert_int_equal(failed, 1);
    assert_non_null(strstr(err.buf, "\"j.h2\" already exists"));
    for (int i = 0; i < 3; i++)
        json_decref(objs[i]);
    /* an invalid object fails it before anything is written */
    objs[0] = task("j", "h4");
    objs[1] = task("j", "h5");
    kf_json_set_str(objs[1], "spec.restartPolicy", "Always");
    kf_strbuf_reset(&err);
    assert_int_equal(kf_registry_create_batch(f->reg, &kf_kind_broadcasttask, objs, 2, NULL,
                                              &failed, &causes, &err),
                     -KF_EINVALID);
    assert_int_equal(failed, 1);
    assert_non_null(find_cause(&causes, "spec.restartPolicy"));
    json_decref(objs[0]);
    json_decref(objs[1]);
    /* too many */
    assert_int_equal(kf_registry_create_batch(f->reg, &kf_kind_broadcasttask, objs,
                                              KF_STORE_MAX_TXN_OPS + 1, NULL, NULL, &causes, &err),
                     -EINVAL);

    /* three tasks, read by their job's key range */
    assert_int_equal(kf_selector_parse_fields("spec.job=j", &fs, NULL), 0);
    o.fields = fs;
    assert_int_equal(kf_registry_list(f->reg, &kf_kind_broadcasttask, &o, &items, NULL, NULL, NULL),
                     0);
    assert_int_equal(json_array_size(items), 3);
    json_decref(items);
    kf_selector_free(fs);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

static void test_update_delete_batch(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *objs[2], *a = NULL, *b = NULL, *got = NULL;
    const char *names[3] = { "j.h1", "j.h2", "j.gone" };
    size_t failed = 99;
    int64_t rev = 0;

    objs[0] = task("j", "h1");
    objs[1] = task("j", "h2");
    assert_int_equal(kf_registry_create_batch(f->reg, &kf_kind_broadcasttask, objs, 2, NULL, NULL,
                                              &causes, &err),
                     0);
    a = json_pack("{s:{s:s,s:O},s:{s:s}}", "metadata", "name", "j.h1", "resourceVersion",
                  json_object_get(json_object_get(objs[0], "metadata"), "resourceVersion"),
                  "status", "phase", "Running");
    b = json_pack("{s:{s:s,s:O},s:{s:s}}", "metadata", "name", "j.h2", "resourceVersion",
                  json_object_get(json_object_get(objs[1], "metadata"), "resourceVersion"),
                  "status", "phase", "Succeeded");
    {
        json_t *both[2] = { a, b };

        assert_int_equal(kf_registry_update_batch(f->reg, &kf_kind_broadcasttask, both, 2, true,
                                                  &rev, &failed, &causes, &err),
                         0);
        /* each became the stored object: the spec kept, the status replaced */
        assert_string_equal(kf_json_str(a, "spec.host", ""), "h1");
        assert_int_equal(kf_obj_rv(a), rev);
        assert_int_equal(kf_obj_generation(a), 1);
        /* a stale resourceVersion fails the whole batch */
        kf_json_set_str(b, "status.phase", "Failed");
        kf_json_set_str(a, "metadata.resourceVersion", "1");
        assert_int_equal(kf_registry_update_batch(f->reg, &kf_kind_broadcasttask, both, 2, true,
                                                  NULL, &failed, &causes, &err),
                         -KF_ECONFLICT);
        assert_int_equal(failed, 0);
        assert_int_equal(kf_registry_get(f->reg, &kf_kind_broadcasttask, "j.h2", &got), 0);
        assert_string_equal(kf_json_str(got, "status.phase", ""), "Succeeded");
        json_decref(got);
        /* an invalid status is refused by the status schema */
        kf_json_set_str(b, "status.phase", "Exploded");
        assert_int_equal(kf_registry_update_batch(f->reg, &kf_kind_broadcasttask, &b, 1, true, NULL,
                                                  &failed, &causes, &err),
                         -KF_EINVALID);
    }
    /* delete: what is gone is skipped; the count says what went */
    assert_int_equal(kf_registry_delete_batch(f->reg, &kf_kind_broadcasttask, names, NULL, 3, NULL,
                                              &failed, &err),
                     2);
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_broadcasttask, "j.h1", &got), -KF_ENOTFOUND);
    json_decref(a);
    json_decref(b);
    json_decref(objs[0]);
    json_decref(objs[1]);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

static json_t *record(struct regfx *f, const char *results)
{
    json_t *body = J(results), *ret = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;

    assert_int_equal(kf_bcj_record_results(f->reg, body, &ret, &err), 0);
    json_decref(body);
    kf_strbuf_release(&err);
    return ret;
}

static const char *outcome(const json_t *ret, size_t i)
{
    return kf_json_str(json_array_get(json_object_get(ret, "results"), i), "outcome", "");
}

/* An agent token bound to a host records its own host's tasks only
 * (docs/security.md): another host's result is an error, nothing written. */
static void test_record_own_host_only(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf req = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    json_t *objs[2], *body, *ret = NULL, *got = NULL;

    objs[0] = task("j", "h1");
    objs[1] = task("j", "h2");
    assert_int_equal(kf_registry_create_batch(f->reg, &kf_kind_broadcasttask, objs, 2, NULL, NULL,
                                              &causes, NULL),
                     0);
    kf_strbuf_addf(&req,
                   "{'results':[{'name':'j.h1','uid':'%s','phase':'Succeeded','exitCode':0},"
                   "{'name':'j.h2','uid':'%s','phase':'Succeeded','exitCode':0}]}",
                   kf_obj_uid(objs[0]), kf_obj_uid(objs[1]));
    body = J(req.buf);
    assert_int_equal(kf_bcj_record_results_for(f->reg, body, "h1", &ret, &err), 0);
    assert_string_equal(outcome(ret, 0), "recorded");
    assert_string_equal(outcome(ret, 1), "error");
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_broadcasttask, "j.h2", &got), 0);
    assert_string_equal(kf_json_str(got, "status.phase", "Pending"), "Pending");
    json_decref(got);
    json_decref(ret);
    json_decref(body);
    json_decref(objs[0]);
    json_decref(objs[1]);
    kf_causes_release(&causes);
    kf_strbuf_release(&req);
    kf_strbuf_release(&err);
}

static void test_record_results(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *objs[2], *ret, *got = NULL, *body;
    struct kf_strbuf big = KF_STRBUF_INIT, req = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    char *uid1, *uid2;

    objs[0] = task("j", "h1");
    objs[1] = task("j", "h2");
    assert_int_equal(kf_registry_create_batch(f->reg, &kf_kind_broadcasttask, objs, 2, NULL, NULL,
                                              &causes, NULL),
                     0);
    uid1 = kf_xstrdup(kf_obj_uid(objs[0]));
    uid2 = kf_xstrdup(kf_obj_uid(objs[1]));

    /* running, then the result: recorded once */
    kf_strbuf_addf(&req,
                   "{'results':[{'name':'j.h1','uid':'%s','phase':'Running',"
                   "'startTime':'2026-01-02T03:04:05.250Z'}]}",
                   uid1);
    ret = record(f, req.buf);
    assert_string_equal(outcome(ret, 0), "recorded");
    json_decref(ret);
    for (int i = 0; i < 5000; i++)
        kf_strbuf_addch(&big, i % 2 ? 'x' : 'y');
    kf_strbuf_reset(&req);
    kf_strbuf_addf(&req,
                   "{'results':[{'name':'j.h1','uid':'%s','phase':'Failed','exitCode':3,"
                   "'output':'%s','endTime':'2026-01-02T03:04:06Z'},"
                   "{'name':'j.h2','uid':'%s','phase':'Succeeded','exitCode':0,'output':'%s'},"
                   "{'name':'j.h3','uid':'x','phase':'Succeeded'},"
                   "{'name':'j.h2','uid':'wrong','phase':'Failed'}]}",
                   uid1, big.buf, uid2, big.buf);
    ret = record(f, req.buf);
    assert_string_equal(outcome(ret, 0), "recorded");
    assert_string_equal(outcome(ret, 1), "recorded");
    assert_string_equal(outcome(ret, 2), "gone"); /* no such task */
    assert_string_equal(outcome(ret, 3), "gone"); /* another task of that name */
    json_decref(ret);
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_broadcasttask, "j.h1", &got), 0);
    assert_string_equal(kf_json_str(got, "status.phase", ""), "Failed");
    assert_string_equal(kf_json_str(got, "status.reason", ""), "Error");
    assert_int_equal(kf_json_int(got, "status.exitCode", -1), 3);
    assert_string_equal(kf_json_str(got, "status.startTime", ""), "2026-01-02T03:04:05.250Z");
    /* the tail of the output, capped */
    assert_int_equal(strlen(kf_json_str(got, "status.output", "")), KF_BCJ_OUTPUT_FAILED_MAX);
    assert_int_equal(kf_json_int(got, "status.outputDropped", 0), 5000 - KF_BCJ_OUTPUT_FAILED_MAX);
    json_decref(got);
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_broadcasttask, "j.h2", &got), 0);
    assert_int_equal(strlen(kf_json_str(got, "status.output", "")), KF_BCJ_OUTPUT_SUCCEEDED_MAX);
    assert_string_equal(kf_json_str(got, "status.reason", ""), "Completed");
    json_decref(got);

    /* the same report again (an agent restarted before it forgot it): "already",
     * and the record does not change */
    kf_strbuf_reset(&req);
    kf_strbuf_addf(&req, "{'results':[{'name':'j.h1','uid':'%s','phase':'Succeeded'}]}", uid1);
    ret = record(f, req.buf);
    assert_string_equal(outcome(ret, 0), "already");
    json_decref(ret);
    assert_int_equal(kf_registry_get(f->reg, &kf_kind_broadcasttask, "j.h1", &got), 0);
    assert_string_equal(kf_json_str(got, "status.phase", ""), "Failed");
    json_decref(got);

    /* malformed bodies are refused whole */
    body = J("{'results':[{'name':'j.h1','phase':'Succeeded'}]}");
    assert_int_equal(kf_bcj_record_results(f->reg, body, &ret, &err), -KF_EBADREQUEST);
    assert_non_null(strstr(err.buf, "uid"));
    json_decref(body);
    body = J("{'results':[{'name':'j.h1','uid':'u','phase':'Pending'}]}");
    assert_int_equal(kf_bcj_record_results(f->reg, body, &ret, &err), -KF_EBADREQUEST);
    json_decref(body);

    free(uid1);
    free(uid2);
    json_decref(objs[0]);
    json_decref(objs[1]);
    kf_strbuf_release(&big);
    kf_strbuf_release(&req);
    kf_strbuf_release(&err);
    kf_causes_release(&causes);
}

/* Many results in one request: transactions of 128, one invalid result
 * costs only itself. */
static void test_record_many(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf req = KF_STRBUF_INIT;
    json_t *objs[100], *ret, *res;
    size_t i;
    int recorded = 0;

    for (int batch = 0; batch < 3; batch++) {
        for (i = 0; i < 100; i++) {
            char host[16];

            snprintf(host, sizeof(host), "h%03d", batch * 100 + (int)i);
            objs[i] = task("j", host);
        }
        assert_int_equal(kf_registry_create_batch(f->reg, &kf_kind_broadcasttask, objs, 100, NULL,
                                                  NULL, &causes, NULL),
                         0);
        for (i = 0; i < 100; i++) {
            kf_strbuf_addf(&req, "%s{'name':'%s','uid':'%s','phase':'Succeeded'%s}",
                           req.len ? "," : "{'results':[", kf_obj_name(objs[i]),
                           kf_obj_uid(objs[i]),
                           batch == 1 && i == 50 ? ",'reason':'not a reason'" : "");
            json_decref(objs[i]);
        }
    }
    kf_strbuf_addstr(&req, "]}");
    ret = record(f, req.buf);
    json_array_foreach(json_object_get(ret, "results"), i, res)
    {
        if (i == 150) {
            assert_string_equal(kf_json_str(res, "outcome", ""), "error");
            assert_non_null(strstr(kf_json_str(res, "message", ""), "status.reason"));
        } else {
            assert_string_equal(kf_json_str(res, "outcome", ""), "recorded");
            recorded++;
        }
    }
    assert_int_equal(recorded, 299);
    json_decref(ret);
    kf_strbuf_release(&req);
    kf_causes_release(&causes);
}

/* A LIST with a field selector and a limit reads the store in chunks; a
 * chunk whose last object matched used to start the next chunk from a key
 * already handed over (a crash with 30,000 hosts). */
static void test_list_filtered_chunks(void **state)
{
    struct regfx *f = *state;
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_selector *fs = NULL;
    struct kf_list_opts o = { 0 };
    json_t *objs[100], *items = NULL;
    char *cont = NULL;
    size_t total = 0;

    for (int b = 0; b < 14; b++) {
        for (int i = 0; i < 100; i++) {
            char host[16];

            snprintf(host, sizeof(host), "h%04d", b * 100 + i);
            objs[i] = task(i % 2 ? "odd" : "even", host);
        }
        assert_int_equal(kf_registry_create_batch(f->reg, &kf_kind_broadcasttask, objs, 100, NULL,
                                                  NULL, &causes, NULL),
                         0);
        for (int i = 0; i < 100; i++)
            json_decref(objs[i]);
    }
    /* spec.host is not a name prefix: every chunk is read and filtered */
    assert_int_equal(kf_selector_parse_fields("spec.restartPolicy=Never,spec.job!=even", &fs, NULL),
                     0);
    o.fields = fs;
    o.limit = 600;
    do {
        o.continue_token = cont;
        assert_int_equal(
            kf_registry_list(f->reg, &kf_kind_broadcasttask, &o, &items, NULL, &cont, NULL), 0);
        total += json_array_size(items);
        json_decref(items);
        free((char *)o.continue_token);
    } while (cont);
    assert_int_equal(total, 700);
    kf_selector_free(fs);
    kf_causes_release(&causes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_defaults),
        cmocka_unit_test(test_job_admission),
        cmocka_unit_test(test_parallelism),
        cmocka_unit_test(test_task_names),
        cmocka_unit_test_setup_teardown(test_create_batch, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_update_delete_batch, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_record_results, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_record_own_host_only, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_record_many, regfx_setup, regfx_teardown),
        cmocka_unit_test_setup_teardown(test_list_filtered_chunks, regfx_setup, regfx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
