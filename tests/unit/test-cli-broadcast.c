/* test-cli-broadcast.c: what `kfleet describe broadcastjob` and `kfleet
 * watch broadcastjob` print: the Hosts section (golden file, from the
 * objects in golden/cli-objects.yaml at a fixed "now"), rows beyond the cut
 * counted with the command that lists them, the output tail of failures
 * capped, the progress bar at every stage, durations, and the exit code a
 * finished job gives.
 *
 * After a deliberate change of the output: KF_UPDATE_GOLDEN=1
 * build/tests/test-cli-broadcast, then review the diff.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

static int64_t fixed_now(void)
{
    int64_t ms;

    assert_int_equal(kf_time_parse_rfc3339("2026-01-01T12:00:00Z", &ms), 0);
    return ms;
}

static char *golden_path(const char *rel)
{
    const char *dir = getenv("KF_SOURCE_DIR");

    return kf_xasprintf("%s/tests/unit/golden/%s", dir ? dir : ".", rel);
}

static void check_golden(const char *name, const char *got)
{
    char *path = golden_path(name);
    struct kf_strbuf want = KF_STRBUF_INIT;
    char buf[4096];
    size_t n;
    FILE *f;

    if (getenv("KF_UPDATE_GOLDEN")) {
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(got, f);
        fclose(f);
        free(path);
        return;
    }
    f = fopen(path, "r");
    if (!f)
        fail_msg("golden file %s is missing; run with KF_UPDATE_GOLDEN=1 and review it", path);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        kf_strbuf_add(&want, buf, n);
    fclose(f);
    if (strcmp(want.buf, got) != 0)
        fail_msg("output differs from %s\n--- got:\n%s--- want:\n%s", path, got, want.buf);
    kf_strbuf_release(&want);
    free(path);
}

/* The objects of kind `kind` in cli-objects.yaml, in file order. */
static json_t *fixtures(const char *kind)
{
    struct kf_cli_inputs in = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path = golden_path("cli-objects.yaml");
    json_t *items = json_array();

    if (kf_cli_input_read(path, stdin, &in, &err) < 0)
        fail_msg("%s", err.buf);
    for (size_t i = 0; i < in.n; i++)
        if (strcmp(kf_json_str(in.items[i].obj, "kind", ""), kind) == 0)
            json_array_append(items, in.items[i].obj);
    kf_cli_inputs_release(&in);
    free(path);
    kf_strbuf_release(&err);
    return items;
}

static json_t *task_on(const json_t *tasks, const char *host)
{
    size_t i;
    json_t *t;

    json_array_foreach(tasks, i,
                       t) if (strcmp(kf_json_str(t, "spec.host", ""), host) == 0) return t;
    fail_msg("no task on %s", host);
    return NULL;
}

static void test_describe(void **state)
{
    json_t *jobs = fixtures("BroadcastJob"), *tasks = fixtures("BroadcastTask");
    json_t *job = json_array_get(jobs, 0);
    json_t *failed = json_pack("[O]", task_on(tasks, "hz-b-002"));
    json_t *succeeded = json_pack("[O]", task_on(tasks, "hz-a-001"));
    json_t *active = json_array(), *events = json_array();
    struct kf_strbuf hosts = KF_STRBUF_INIT, out = KF_STRBUF_INIT;

    (void)state;
    kf_json_set_str(job, "metadata.uid", "7d1c0b7e-4c55-4f8e-9d0e-2b8e8f1d9a10");
    kf_json_set_str(job, "metadata.resourceVersion", "815");
    kf_json_set(job, "status.conditions",
                json_pack("[{s:s, s:s, s:s, s:s, s:s}]", "type", "Complete", "status", "True",
                          "reason", "Completed", "message",
                          "Job completed, 11 tasks succeeded, 1 tasks failed", "lastTransitionTime",
                          "2026-01-01T11:51:00Z"));
    kf_cli_bcj_hosts_format(job, failed, active, succeeded, fixed_now(), &hosts);
    kf_cli_describe_format_ex(&kf_kind_broadcastjob, job, hosts.buf, events, NULL, fixed_now(),
                              &out);
    check_golden("describe-broadcastjob.txt", out.buf);
    /* 11 succeeded, one shown: the rest counted, and how to list them */
    assert_non_null(strstr(hosts.buf, "... and 10 more succeeded: kfleet get broadcasttasks "
                                      "--field-selector spec.job=health-hz-u1,status.phase="
                                      "Succeeded\n"));
    json_decref(jobs);
    json_decref(tasks);
    json_decref(failed);
    json_decref(succeeded);
    json_decref(active);
    json_decref(events);
    kf_strbuf_release(&hosts);
    kf_strbuf_release(&out);
}

static void test_failure_output_capped(void **state)
{
    json_t *job =
        json_pack("{s:{s:s}, s:{s:i, s:i, s:i, s:i, s:s}}", "metadata", "name", "j", "status",
                  "desired", 1, "failed", 1, "succeeded", 0, "active", 0, "phase", "completed");
    struct kf_strbuf big = KF_STRBUF_INIT, out = KF_STRBUF_INIT;
    json_t *failed, *none = json_array();

    (void)state;
    for (int i = 1; i <= 30; i++)
        kf_strbuf_addf(&big, "line %d\x1b[31m\n", i);
    failed = json_pack("[{s:{s:s}, s:{s:s, s:s, s:i, s:s, s:i}}]", "spec", "host", "h1", "status",
                       "phase", "Failed", "reason", "Error", "exitCode", 2, "output", big.buf,
                       "outputDropped", 5000);
    kf_cli_bcj_hosts_format(job, failed, none, none, fixed_now(), &out);
    /* the last 10 lines, escape sequences blanked, and how much there was */
    assert_non_null(strstr(out.buf, "    output (the last of "));
    assert_non_null(strstr(out.buf, "      ...\n      line 21 [31m\n"));
    assert_non_null(strstr(out.buf, "      line 30 [31m\n"));
    assert_null(strstr(out.buf, "line 20 "));
    assert_null(strchr(out.buf, '\x1b'));
    json_decref(job);
    json_decref(failed);
    json_decref(none);
    kf_strbuf_release(&big);
    kf_strbuf_release(&out);
}

static json_t *job_at(int desired, int ok, int bad, int act, const char *phase)
{
    json_t *j = json_pack("{s:{s:s}, s:{s:i, s:i, s:i, s:i, s:s, s:s}}", "metadata", "name",
                          "upgrade", "status", "desired", desired, "succeeded", ok, "failed", bad,
                          "active", act, "phase", phase, "startTime", "2026-01-01T11:58:30.000Z");

    if (strcmp(phase, "completed") == 0 || strcmp(phase, "failed") == 0)
        kf_json_set_str(j, "status.completionTime", "2026-01-01T11:59:45.500Z");
    return j;
}

static void test_progress(void **state)
{
    static const struct {
        int desired, ok, bad, act;
        const char *phase;
        int exit; /* -1: not over */
    } steps[] = {
        { 0, 0, 0, 0, "running", -1 },      { 200, 0, 0, 20, "running", -1 },
        { 200, 57, 1, 20, "paused", -1 },   { 200, 150, 1, 20, "running", -1 },
        { 200, 199, 1, 0, "completed", 6 }, { 200, 200, 0, 0, "completed", 0 },
        { 200, 20, 3, 0, "failed", 5 },     { 100000, 1, 0, 1, "running", -1 },
    };
    struct kf_strbuf out = KF_STRBUF_INIT;

    (void)state;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        json_t *j =
            job_at(steps[i].desired, steps[i].ok, steps[i].bad, steps[i].act, steps[i].phase);
        int rc = -1;
        bool over = kf_cli_bcj_finished(j, &rc);

        kf_cli_bcj_progress(j, fixed_now(), 30, &out);
        kf_strbuf_addch(&out, '\n');
        assert_int_equal(over, steps[i].exit >= 0);
        if (over)
            assert_int_equal(rc, steps[i].exit);
        json_decref(j);
    }
    check_golden("watch-broadcastjob.txt", out.buf);
    /* one host of 100,000 still shows */
    assert_non_null(strstr(out.buf, "upgrade [#>............................] 1/100000"));
    kf_strbuf_release(&out);
}

static void test_durations(void **state)
{
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        { -5, "0ms" },    { 0, "0ms" },        { 850, "850ms" },     { 1234, "1.2s" },
        { 42000, "42s" }, { 123000, "2m03s" }, { 3723000, "1h02m" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kf_strbuf sb = KF_STRBUF_INIT;

        kf_cli_bcj_duration(cases[i].ms, &sb);
        assert_string_equal(sb.buf, cases[i].want);
        kf_strbuf_release(&sb);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_failure_output_capped),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_durations),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
