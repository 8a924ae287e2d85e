/* cli-broadcast.c: what `kfleet describe broadcastjob NAME` and `kfleet
 * watch broadcastjob NAME` show beyond the generic output of a kind.
 *
 * describe adds a Hosts section: the counts, then a table of the per-host
 * results (HOST PHASE EXIT DURATION REASON), failed hosts first, then the
 * active ones, then the succeeded ones, each group cut at a few dozen rows
 * (a job may cover 100,000 hosts: the rest is counted and the command to
 * list them is given), and the tail of the output of the first failures.
 * The tasks come from three LISTs with field selectors (spec.job and
 * status.phase) and a limit, which the server answers from the job's key
 * range.
 *
 * watch draws a progress bar from the job's status (succeeded, failed and
 * active of desired) and knows when the job is over and how it ended.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/broadcast.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

/* Rows per group (failed, active, succeeded) in describe. */
#define HOSTS_PER_GROUP 20
/* Failures whose output is shown, and how much of each. */
#define OUTPUT_TASKS 5
#define OUTPUT_LINES 10
#define OUTPUT_BYTES 1024

void kf_cli_bcj_duration(int64_t ms, struct kf_strbuf *out)
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000)
        kf_strbuf_addf(out, "%lldms", (long long)ms);
    else if (ms < 10 * 1000)
        kf_strbuf_addf(out, "%.1fs", (double)ms / 1000.0);
    else if (ms < 60 * 1000)
        kf_strbuf_addf(out, "%llds", (long long)(ms / 1000));
    else if (ms < 3600 * 1000)
        kf_strbuf_addf(out, "%lldm%02llds", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
    else
        kf_strbuf_addf(out, "%lldh%02lldm", (long long)(ms / 3600000),
                       (long long)(ms / 60000 % 60));
}

static int64_t time_of(const json_t *obj, const char *path)
{
    int64_t ms = 0;
    const char *s = kf_json_str(obj, path, NULL);

    if (!s || kf_time_parse_rfc3339(s, &ms) < 0)
        return 0;
    return ms;
}

/* One row of the hosts table. */
static void host_row(struct kf_cli_table *t, const json_t *task, int64_t now_ms)
{
    struct kf_strbuf exitc = KF_STRBUF_INIT, dur = KF_STRBUF_INIT;
    const char *phase = kf_json_str(task, "status.phase", KF_BCJ_TASK_PENDING);
    int64_t start = time_of(task, "status.startTime"), end = time_of(task, "status.endTime");
    const char *row[5];

    if (json_is_integer(kf_json_path(task, "status.signal")))
        kf_strbuf_addf(&exitc, "signal %lld",
                       (long long)json_integer_value(kf_json_path(task, "status.signal")));
    else if (json_is_integer(kf_json_path(task, "status.exitCode")))
        kf_strbuf_addf(&exitc, "%lld",
                       (long long)json_integer_value(kf_json_path(task, "status.exitCode")));
    if (start && end)
        kf_cli_bcj_duration(end - start, &dur);
    else if (start) {
        kf_cli_bcj_duration(now_ms - start, &dur);
        kf_strbuf_addstr(&dur, " so far");
    }
    row[0] = kf_json_str(task, "spec.host", "");
    row[1] = phase;
    row[2] = exitc.buf;
    row[3] = dur.buf;
    row[4] = kf_json_str(task, "status.reason", "");
    kf_cli_table_add(t, row);
    kf_strbuf_release(&exitc);
    kf_strbuf_release(&dur);
}

/* The last OUTPUT_LINES lines (at most OUTPUT_BYTES) of s, indented. */
static void output_tail(const char *s, struct kf_strbuf *out)
{
    size_t len = strlen(s), start = len > OUTPUT_BYTES ? len - OUTPUT_BYTES : 0;
    int lines = 0;

    while (len > start && s[len - 1] == '\n')
        len--;
    for (size_t i = len; i > start; i--)
        if (s[i - 1] == '\n' && ++lines == OUTPUT_LINES) {
            start = i;
            break;
        }
    if (start > 0)
        kf_strbuf_addstr(out, "      ...\n");
    for (size_t i = start; i < len;) {
        const char *nl = memchr(s + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (s + i)) : len - i;

        kf_strbuf_addstr(out, "      ");
        for (size_t k = 0; k < n; k++) {
            unsigned char c = (unsigned char)s[i + k];

            kf_strbuf_addch(out, c < 0x20 || c == 0x7f ? ' ' : (char)c);
        }
        kf_strbuf_addch(out, '\n');
        i += n + 1;
    }
}

void kf_cli_bcj_hosts_format(const json_t *job, const json_t *failed, const json_t *active,
                             const json_t *succeeded, int64_t now_ms, struct kf_strbuf *out)
{
    static const char *const header[] = { "HOST", "PHASE", "EXIT", "DURATION", "REASON" };
    const json_t *groups[3] = { failed, active, succeeded };
    const char *group_phase[3] = { "status.phase=Failed",
                                   "status.phase!=Succeeded,status.phase!=Failed",
                                   "status.phase=Succeeded" };
    int64_t counts[3] = { kf_json_int(job, "status.failed", 0),
                          kf_json_int(job, "status.active", 0),
                          kf_json_int(job, "status.succeeded", 0) };
    struct kf_cli_table t;
    size_t shown = 0, i, n_out = 0;
    json_t *task;

    kf_strbuf_addf(out,
                   "Hosts:            %lld desired: %lld succeeded, %lld failed, %lld active\n",
                   (long long)kf_json_int(job, "status.desired", 0), (long long)counts[2],
                   (long long)counts[0], (long long)counts[1]);
    kf_cli_table_init(&t, 5);
    kf_cli_table_add(&t, header);
    for (int g = 0; g < 3; g++)
        json_array_foreach(groups[g], i, task)
        {
            host_row(&t, task, now_ms);
            shown++;
        }
    if (shown)
        kf_cli_table_format(&t, "  ", out);
    else
        kf_strbuf_addstr(out, "  <no tasks yet>\n");
    kf_cli_table_release(&t);
    for (int g = 0; g < 3; g++) {
        int64_t more = counts[g] - (int64_t)json_array_size(groups[g]);

        if (more <= 0)
            continue;
        kf_strbuf_addf(out,
                       "  ... and %lld more %s: kfleet get broadcasttasks --field-selector "
                       "spec.job=%s%s%s\n",
                       (long long)more,
                       g == 0   ? "failed"
                       : g == 1 ? "active"
                                : "succeeded",
                       kf_obj_name(job), ",", group_phase[g]);
    }
    json_array_foreach(failed, i, task)
    {
        const char *o = kf_json_str(task, "status.output", NULL);
        const char *msg = kf_json_str(task, "status.message", NULL);

        if (n_out == OUTPUT_TASKS)
            break;
        if ((!o || !*o) && (!msg || !*msg))
            continue;
        if (n_out++ == 0)
            kf_strbuf_addstr(out, "Failures:\n");
        kf_strbuf_addf(out, "  %s:", kf_json_str(task, "spec.host", ""));
        if (msg && *msg) {
            kf_strbuf_addch(out, ' ');
            for (const char *p = msg; *p; p++)
                kf_strbuf_addch(out, (unsigned char)*p < 0x20 ? ' ' : *p);
        }
        kf_strbuf_addch(out, '\n');
        if (o && *o) {
            if (kf_json_int(task, "status.outputDropped", 0) > 0)
                kf_strbuf_addf(out, "    output (the last of %lld bytes):\n",
                               (long long)(kf_json_int(task, "status.outputDropped", 0) +
                                           (json_int_t)strlen(o)));
            else
                kf_strbuf_addstr(out, "    output:\n");
            output_tail(o, out);
        }
    }
}

/* Up to HOSTS_PER_GROUP tasks of job matching `phase_sel` (NULL: neither
 * Succeeded nor Failed). An empty array when they cannot be read. */
static json_t *list_group(struct kf_cli *cli, const char *job, const char *phase_sel)
{
    const struct kf_kind *k = &kf_kind_broadcasttask;
    struct kf_strbuf path = KF_STRBUF_INIT, sel = KF_STRBUF_INIT, why = KF_STRBUF_INIT;
    char *base = kf_cli_path(k, NULL), limit[16];
    json_t *items = NULL;

    kf_strbuf_addstr(&path, base);
    free(base);
    kf_strbuf_addf(&sel, "spec.job=%s,%s", job,
                   phase_sel ? phase_sel : "status.phase!=Succeeded,status.phase!=Failed");
    kf_cli_path_add_query(&path, "fieldSelector", sel.buf);
    snprintf(limit, sizeof(limit), "%d", HOSTS_PER_GROUP);
    kf_cli_path_add_query(&path, "limit", limit);
    /* a filtered page may come back short (or empty) with a continue: read
     * on until the group is full */
    if (kf_cli_list_path(cli, path.buf, HOSTS_PER_GROUP, &items, &why) < 0)
        items = json_array();
    while (json_array_size(items) > HOSTS_PER_GROUP)
        json_array_remove(items, HOSTS_PER_GROUP);
    kf_strbuf_release(&path);
    kf_strbuf_release(&sel);
    kf_strbuf_release(&why);
    return items;
}

void kf_cli_bcj_describe_hosts(struct kf_cli *cli, const json_t *job, struct kf_strbuf *out)
{
    const char *name = kf_obj_name(job);
    json_t *failed = list_group(cli, name, "status.phase=Failed");
    json_t *active = list_group(cli, name, NULL);
    json_t *succeeded = list_group(cli, name, "status.phase=Succeeded");

    kf_cli_bcj_hosts_format(job, failed, active, succeeded, cli->now_ms, out);
    json_decref(failed);
    json_decref(active);
    json_decref(succeeded);
}

/* --- progress ----------------------------------------------------------------- */

bool kf_cli_bcj_finished(const json_t *job, int *ret_exit)
{
    const char *phase = kf_json_str(job, "status.phase", "");

    if (strcmp(phase, KF_BCJ_PHASE_COMPLETED) == 0) {
        *ret_exit =
            kf_json_int(job, "status.failed", 0) > 0 ? KF_CLI_EXIT_TASKS_FAILED : KF_CLI_EXIT_OK;
        return true;
    }
    if (strcmp(phase, KF_BCJ_PHASE_FAILED) == 0) {
        *ret_exit = KF_CLI_EXIT_JOB_FAILED;
        return true;
    }
    return false;
}

void kf_cli_bcj_progress(const json_t *job, int64_t now_ms, int width, struct kf_strbuf *out)
{
    int64_t desired = kf_json_int(job, "status.desired", 0);
    int64_t ok = kf_json_int(job, "status.succeeded", 0);
    int64_t bad = kf_json_int(job, "status.failed", 0);
    int64_t act = kf_json_int(job, "status.active", 0);
    int64_t total = KF_MAX(desired, ok + bad + act);
    int64_t start = time_of(job, "status.startTime");
    int64_t end = time_of(job, "status.completionTime");
    const char *phase = kf_json_str(job, "status.phase", "pending");
    int n_ok = 0, n_bad = 0, n_act = 0;

    if (total > 0) {
        /* each part rounded down, but never hidden when it is not empty */
        n_ok = (int)(ok * width / total);
        n_bad = (int)(bad * width / total);
        n_act = (int)(act * width / total);
        if (ok && !n_ok)
            n_ok = 1;
        if (bad && !n_bad)
            n_bad = 1;
        if (act && !n_act)
            n_act = 1;
        while (n_ok + n_bad + n_act > width) {
            if (n_ok > 1)
                n_ok--;
            else if (n_act > 1)
                n_act--;
            else
                n_bad--;
        }
    }
    kf_strbuf_addf(out, "%s [", kf_obj_name(job));
    for (int i = 0; i < width; i++)
        kf_strbuf_addch(out, i < n_ok                   ? '#'
                             : i < n_ok + n_bad         ? 'x'
                             : i < n_ok + n_bad + n_act ? '>'
                                                        : '.');
    kf_strbuf_addf(out, "] %lld/%lld succeeded, %lld failed, %lld active  %s", (long long)ok,
                   (long long)desired, (long long)bad, (long long)act, phase);
    if (start) {
        kf_strbuf_addch(out, ' ');
        kf_cli_bcj_duration((end ? end : now_ms) - start, out);
    }
}
