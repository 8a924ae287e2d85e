/* fleet-broadcast.c: what BroadcastJobs and BroadcastTasks share beyond
 * their schemas (contracts in kfleet/broadcast.h): task names, parallelism,
 * times with milliseconds, and recording the results agents report.
 *
 * Recording is where "each result counts exactly once" is kept: a task's
 * terminal phase is written once, by whoever comes first (its agent, or
 * the controller stopping it), and a later report of the same task is
 * answered "already" without a write. Results are written in transactions
 * of up to 128 tasks (kf_registry_update_batch, with each task's
 * resourceVersion as a precondition); when a transaction fails (one task
 * changed meanwhile, one result invalid), its results are recorded one by
 * one so that one bad result costs only itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <jansson.h>

#include "kfleet/broadcast.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

/* Conflicting writes on one task are retried this often. */
#define RECORD_RETRIES 8

void kf_bcj_task_name(const char *job, const char *host, struct kf_strbuf *out)
{
    kf_strbuf_reset(out);
    if (strlen(job) + 1 + strlen(host) <= KF_NAME_MAX)
        kf_strbuf_addf(out, "%s.%s", job, host);
    else
        kf_strbuf_addf(out, "%s.h-%016llx", job,
                       (unsigned long long)kf_fnv1a_str(KF_FNV1A_BASIS, host));
}

bool kf_bcj_task_finished(const char *phase)
{
    return phase &&
           (strcmp(phase, KF_BCJ_TASK_SUCCEEDED) == 0 || strcmp(phase, KF_BCJ_TASK_FAILED) == 0);
}

int64_t kf_bcj_parallelism(const json_t *p, int64_t desired)
{
    if (json_is_integer(p))
        return json_integer_value(p) < 0 ? 0 : json_integer_value(p);
    if (json_is_string(p) && json_string_length(p) >= 2 &&
        json_string_value(p)[json_string_length(p) - 1] == '%') {
        char *digits = kf_xstrndup(json_string_value(p), json_string_length(p) - 1);
        int64_t pct;
        int r = kf_parse_int64(digits, &pct);

        free(digits);
        if (r == 0 && pct >= 0 && pct <= 100)
            return (pct * desired + 99) / 100; /* rounded up, as Kruise does */
    }
    return INT64_MAX;
}

void kf_bcj_time_format(int64_t ms, char *buf, size_t size)
{
    char s[32];
    size_t len;

    kf_time_format_rfc3339(ms - ms % 1000, s, sizeof(s));
    len = strlen(s);
    if (len && s[len - 1] == 'Z')
        s[len - 1] = '\0';
    snprintf(buf, size, "%s.%03dZ", s, (int)(ms % 1000));
}

/* --- recording results ------------------------------------------------------ */

enum outcome {
    OUT_PENDING = 0,
    OUT_RECORDED,
    OUT_ALREADY,
    OUT_GONE,
    OUT_ERROR,
};

static const char *const outcome_names[] = {
    [OUT_PENDING] = "error", [OUT_RECORDED] = "recorded", [OUT_ALREADY] = "already",
    [OUT_GONE] = "gone",     [OUT_ERROR] = "error",
};

struct result {
    const char *only_host; /* a host-bound agent's host: its own tasks only */
    const json_t *in;
    const char *name;
    enum outcome outcome;
    char *message;
};

/* The last `cap` bytes of s, starting at a UTF-8 character boundary. */
static const char *tail_of(const char *s, size_t len, size_t cap, size_t *ret_dropped)
{
    size_t skip = len > cap ? len - cap : 0;

    while (skip < len && ((unsigned char)s[skip] & 0xc0) == 0x80)
        skip++;
    *ret_dropped = skip;
    return s + skip;
}

/* The status the report asks for, on top of the stored one (borrowed cur). */
static json_t *new_status(const json_t *in, const json_t *cur)
{
    json_t *st = json_is_object(cur) ? json_deep_copy(cur) : json_object();
    const char *phase = kf_json_str(in, "phase", "");
    bool finished = kf_bcj_task_finished(phase);
    const char *keys[] = { "startTime", "restarts", "message" };
    char now[40];

    json_object_set_new(st, "phase", json_string(phase));
    for (size_t i = 0; i < KF_ARRAY_SIZE(keys); i++) {
        json_t *v = json_object_get(in, keys[i]);

        if (v && !json_is_null(v))
            json_object_set(st, keys[i], v);
    }
    if (!finished)
        return st;
    kf_bcj_time_format(kf_now_ms(), now, sizeof(now));
    json_object_set_new(st, "endTime", json_string(kf_json_str(in, "endTime", now)));
    if (!json_object_get(st, "startTime"))
        json_object_set(st, "startTime", json_object_get(st, "endTime"));
    json_object_set_new(
        st, "reason",
        json_string(kf_json_str(
            in, "reason", strcmp(phase, KF_BCJ_TASK_SUCCEEDED) == 0 ? "Completed" : "Error")));
    json_object_del(st, "exitCode");
    json_object_del(st, "signal");
    if (json_is_integer(json_object_get(in, "exitCode")))
        json_object_set(st, "exitCode", json_object_get(in, "exitCode"));
    if (json_is_integer(json_object_get(in, "signal")))
        json_object_set(st, "signal", json_object_get(in, "signal"));
    json_object_del(st, "output");
    json_object_del(st, "outputDropped");
    if (json_is_string(json_object_get(in, "output"))) {
        json_t *o = json_object_get(in, "output");
        size_t dropped = 0;
        const char *t =
            tail_of(json_string_value(o), json_string_length(o),
                    strcmp(phase, KF_BCJ_TASK_SUCCEEDED) == 0 ? KF_BCJ_OUTPUT_SUCCEEDED_MAX
                                                              : KF_BCJ_OUTPUT_FAILED_MAX,
                    &dropped);

        dropped += (size_t)KF_MAX(kf_json_int(in, "outputDropped", 0), 0);
        if (*t)
            json_object_set_new(st, "output", json_string(t));
        if (dropped)
            json_object_set_new(st, "outputDropped", json_integer((json_int_t)dropped));
    }
    return st;
}

/* The parts of stored task `name` a result is decided on (metadata.name,
 * uid and resourceVersion, status), read from its bytes without parsing the
 * rest (the spec is most of a task). 0, -KF_ENOTFOUND or an error. */
static int read_task(struct kf_registry *reg, const char *name, json_t **ret)
{
    struct kf_kv kv = { 0 };
    json_t *uid = NULL, *status = NULL, *host = NULL;
    char rv[24];
    int rc = kf_registry_get_raw(reg, &kf_kind_broadcasttask, name, &kv);

    if (rc < 0)
        return rc;
    if (kf_obj_path_from_bytes(kv.value, kv.value_len, "metadata.uid", &uid) < 0 ||
        kf_obj_path_from_bytes(kv.value, kv.value_len, "status", &status) < 0 ||
        kf_obj_path_from_bytes(kv.value, kv.value_len, "spec.host", &host) < 0) {
        json_decref(uid);
        json_decref(status);
        json_decref(host);
        kf_kv_release(&kv);
        return -EBADMSG;
    }
    snprintf(rv, sizeof(rv), "%lld", (long long)kv.mod_rev);
    *ret = json_pack("{s:{s:s,s:O?,s:s}}", "metadata", "name", name, "uid", uid, "resourceVersion",
                     rv);
    if (status)
        json_object_set_new(*ret, "status", status);
    if (host)
        json_object_set_new(*ret, "spec", json_pack("{s:o}", "host", host));
    json_decref(uid);
    kf_kv_release(&kv);
    return 0;
}

/* Decides res against the stored task (a new reference in *ret_obj when it
 * is to be written). */
static void decide(struct result *res, json_t *task, json_t **ret_obj)
{
    const char *cur = kf_json_str(task, "status.phase", KF_BCJ_TASK_PENDING);
    json_t *obj, *st;

    *ret_obj = NULL;
    if (!task || !kf_streq(kf_obj_uid(task), kf_json_str(res->in, "uid", ""))) {
        res->outcome = OUT_GONE;
        return;
    }
    if (res->only_host && !kf_streq(kf_json_str(task, "spec.host", ""), res->only_host)) {
        res->outcome = OUT_ERROR;
        free(res->message);
        res->message = kf_xasprintf("task \"%s\" runs on host \"%s\"; an agent bound to host "
                                    "\"%s\" records its own tasks only",
                                    res->name, kf_json_str(task, "spec.host", ""), res->only_host);
        return;
    }
    if (kf_bcj_task_finished(cur)) {
        res->outcome = OUT_ALREADY;
        return;
    }
    st = new_status(res->in, kf_json_path(task, "status"));
    if (json_equal(st, kf_json_path(task, "status"))) {
        json_decref(st);
        res->outcome = OUT_RECORDED;
        return;
    }
    obj = json_pack("{s:{s:s,s:s},s:o}", "metadata", "name", kf_obj_name(task), "resourceVersion",
                    kf_json_str(task, "metadata.resourceVersion", ""), "status", st);
    *ret_obj = obj;
}

static void set_error(struct result *res, int rc, const struct kf_strbuf *err)
{
    res->outcome = OUT_ERROR;
    free(res->message);
    res->message =
        err && err->len ? kf_xstrdup(err->buf) : kf_xasprintf("cannot record: %s", strerror(-rc));
}

/* One result at a time, retrying conflicts. */
static void record_one(struct kf_registry *reg, struct result *res)
{
    for (int attempt = 0; attempt < RECORD_RETRIES; attempt++) {
        struct kf_causes causes = KF_CAUSES_INIT;
        struct kf_strbuf err = KF_STRBUF_INIT;
        json_t *task = NULL, *obj = NULL;
        int rc = read_task(reg, res->name, &task);

        if (rc < 0 && rc != -KF_ENOTFOUND) {
            set_error(res, rc, NULL);
            return;
        }
        decide(res, task, &obj);
        json_decref(task);
        if (!obj)
            return;
        rc = kf_registry_update(reg, &kf_kind_broadcasttask, obj, true, NULL, &causes, &err);
        json_decref(obj);
        if (rc == 0)
            res->outcome = OUT_RECORDED;
        else if (rc == -KF_ENOTFOUND)
            res->outcome = OUT_GONE;
        else if (rc != -KF_ECONFLICT)
            set_error(res, rc, &err);
        kf_causes_release(&causes);
        kf_strbuf_release(&err);
        if (rc != -KF_ECONFLICT)
            return;
        res->outcome = OUT_PENDING;
    }
    set_error(res, -KF_ECONFLICT, NULL);
}

/* Up to KF_STORE_MAX_TXN_OPS results in one transaction; the whole chunk
 * one by one when that fails. */
static void record_chunk(struct kf_registry *reg, struct result *rs, size_t n)
{
    json_t *objs[KF_STORE_MAX_TXN_OPS];
    size_t which[KF_STORE_MAX_TXN_OPS], m = 0;
    struct kf_causes causes = KF_CAUSES_INIT;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        json_t *task = NULL, *obj = NULL;
        int gr = read_task(reg, rs[i].name, &task);

        if (gr < 0 && gr != -KF_ENOTFOUND) {
            rc = gr;
            break;
        }
        decide(&rs[i], task, &obj);
        json_decref(task);
        if (obj) {
            objs[m] = obj;
            which[m++] = i;
        }
    }
    if (rc == 0 && m)
        rc = kf_registry_update_batch(reg, &kf_kind_broadcasttask, objs, m, true, NULL, NULL,
                                      &causes, NULL);
    for (size_t j = 0; j < m; j++)
        json_decref(objs[j]);
    kf_causes_release(&causes);
    if (rc == 0) {
        for (size_t j = 0; j < m; j++)
            rs[which[j]].outcome = OUT_RECORDED;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        rs[i].outcome = OUT_PENDING;
        record_one(reg, &rs[i]);
    }
}

static bool valid_result(const json_t *in, struct kf_strbuf *why)
{
    const char *phase = kf_json_str(in, "phase", "");

    if (!json_is_object(in))
        return kf_strbuf_addstr(why, "a result must be an object"), false;
    if (!json_is_string(json_object_get(in, "name")) || !kf_name_valid(kf_json_str(in, "name", "")))
        return kf_strbuf_addstr(why, "a result needs the task's \"name\""), false;
    if (!json_is_string(json_object_get(in, "uid")))
        return kf_strbuf_addstr(why, "a result needs the task's \"uid\""), false;
    if (strcmp(phase, KF_BCJ_TASK_RUNNING) && !kf_bcj_task_finished(phase))
        return kf_strbuf_addf(why, "\"phase\" must be Running, Succeeded or Failed"), false;
    return true;
}

int kf_bcj_record_results(struct kf_registry *reg, const json_t *body, json_t **ret,
                          struct kf_strbuf *err)
{
    return kf_bcj_record_results_for(reg, body, NULL, ret, err);
}

int kf_bcj_record_results_for(struct kf_registry *reg, const json_t *body, const char *only_host,
                              json_t **ret, struct kf_strbuf *err)
{
    json_t *items = json_object_get(body, "results"), *in, *out;
    struct result *rs;
    size_t n, i;

    if (!json_is_object(body) || !json_is_array(items))
        return kf_err(err, -KF_EBADREQUEST,
                      "the body must be {\"results\": [...]}, one entry per finished task");
    n = json_array_size(items);
    if (n > KF_BCJ_RESULTS_MAX)
        return kf_err(err, -KF_EBADREQUEST, "at most %d results a request (got %zu)",
                      KF_BCJ_RESULTS_MAX, n);
    json_array_foreach(items, i, in)
    {
        struct kf_strbuf why = KF_STRBUF_INIT;

        if (!valid_result(in, &why)) {
            int rc = kf_err(err, -KF_EBADREQUEST, "results[%zu]: %s", i, why.buf);

            kf_strbuf_release(&why);
            return rc;
        }
        kf_strbuf_release(&why);
    }
    rs = kf_xcalloc(n + 1, sizeof(*rs));
    json_array_foreach(items, i, in)
    {
        rs[i].in = in;
        rs[i].name = kf_json_str(in, "name", "");
        rs[i].only_host = only_host;
    }
    for (i = 0; i < n; i += KF_STORE_MAX_TXN_OPS)
        record_chunk(reg, rs + i, KF_MIN((size_t)KF_STORE_MAX_TXN_OPS, n - i));
    out = json_array();
    for (i = 0; i < n; i++) {
        json_t *o =
            json_pack("{s:s,s:s}", "name", rs[i].name, "outcome", outcome_names[rs[i].outcome]);

        if (rs[i].message)
            json_object_set_new(o, "message", json_string(rs[i].message));
        json_array_append_new(out, o);
        free(rs[i].message);
    }
    free(rs);
    *ret = json_pack("{s:o}", "results", out);
    return 0;
}
