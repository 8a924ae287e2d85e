/* runner-state.c: the text of the runner's state and result files.
 *
 * A state file describes one supervised process so that the next runner
 * can find it again (pid and start time of the process and its keeper), see
 * whether its spec changed (hash), and, for a task, run it again (argv,
 * env and the task's settings). A result file holds a finished task's
 * outcome until the agent acknowledges it; its output tail sits next to it
 * in <id>.out.
 *
 * Format: a first line naming the format and version, then one "key value"
 * per line; values escape backslash and newline ("\\", "\n"). Unknown keys
 * are ignored (newer writers), anything malformed rejects the whole file.
 * Files are written atomically (kf_write_file_atomic) by the backend.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "runner/runner-internal.h"

#define STATE_MAGIC  "kfleet-state 1"
#define RESULT_MAGIC "kfleet-result 1"

static void add_escaped(struct kf_strbuf *out, const char *key, const char *v)
{
    kf_strbuf_addstr(out, key);
    kf_strbuf_addch(out, ' ');
    for (; *v; v++) {
        if (*v == '\\')
            kf_strbuf_addstr(out, "\\\\");
        else if (*v == '\n')
            kf_strbuf_addstr(out, "\\n");
        else
            kf_strbuf_addch(out, *v);
    }
    kf_strbuf_addch(out, '\n');
}

static void add_i64(struct kf_strbuf *out, const char *key, int64_t v)
{
    kf_strbuf_addf(out, "%s %" PRId64 "\n", key, v);
}

static void add_u64(struct kf_strbuf *out, const char *key, uint64_t v)
{
    kf_strbuf_addf(out, "%s %" PRIu64 "\n", key, v);
}

void kf_state_format(const struct kf_state_record *rec, struct kf_strbuf *out)
{
    const struct rspec *s = &rec->spec;

    kf_strbuf_addstr(out, STATE_MAGIC "\n");
    add_escaped(out, "kind", rec->kind == RPROC_TASK ? "task" : "member");
    add_escaped(out, "name", rec->name);
    for (size_t i = 0; i < s->argc; i++)
        add_escaped(out, "argv", s->argv[i]);
    for (size_t i = 0; i < s->envc; i++)
        add_escaped(out, "env", s->env[i]);
    if (s->workdir)
        add_escaped(out, "workdir", s->workdir);
    if (s->log_file)
        add_escaped(out, "log_file", s->log_file);
    add_i64(out, "cpu_millis", s->cpu_millis);
    add_i64(out, "memory_bytes", s->memory_bytes);
    add_i64(out, "stop_grace_ms", s->stop_grace_ms);
    add_i64(out, "timeout_ms", s->timeout_ms);
    add_escaped(out, "restart_policy",
                s->restart_policy == KF_RESTART_ON_FAILURE ? "on-failure" : "never");
    add_i64(out, "restart_limit", s->restart_limit);
    add_u64(out, "output_cap", s->output_cap);
    add_escaped(out, "hash", rec->hash);
    add_i64(out, "keeper_pid", rec->keeper_pid);
    add_u64(out, "keeper_start", rec->keeper_start);
    add_i64(out, "pid", rec->pid);
    add_u64(out, "pid_start", rec->pid_start);
    add_i64(out, "started_at_ms", rec->started_at_ms);
    add_i64(out, "restarts", rec->restarts);
    add_i64(out, "attempts", rec->attempts);
    add_i64(out, "first_start_ms", rec->first_start_ms);
    add_u64(out, "log_discarded", rec->log_discarded);
}

/* Iterates "key value" lines; value unescaped in place. Returns 1 with a
 * line, 0 at the end, -EINVAL on a malformed line. */
struct line_iter {
    char *p, *end;
};

static int next_line(struct line_iter *it, char **key, char **val)
{
    char *nl, *sp, *w;

    if (it->p >= it->end)
        return 0;
    nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    if (!nl)
        return -EINVAL; /* every line ends with a newline: a torn file is rejected */
    *nl = '\0';
    if (memchr(it->p, '\0', (size_t)(nl - it->p)))
        return -EINVAL;
    sp = strchr(it->p, ' ');
    if (!sp || sp == it->p)
        return -EINVAL;
    *sp = '\0';
    *key = it->p;
    *val = sp + 1;
    /* unescape */
    w = *val;
    for (char *r = *val; *r; r++) {
        if (*r != '\\') {
            *w++ = *r;
            continue;
        }
        r++;
        if (*r == '\\')
            *w++ = '\\';
        else if (*r == 'n')
            *w++ = '\n';
        else
            return -EINVAL;
    }
    *w = '\0';
    it->p = nl + 1;
    return 1;
}

static int push_str(char ***v, size_t *n, size_t max, const char *s)
{
    if (*n >= max)
        return -EINVAL;
    *v = kf_xrealloc(*v, (*n + 2) * sizeof(**v));
    (*v)[(*n)++] = kf_xstrdup(s);
    (*v)[*n] = NULL;
    return 0;
}

static int parse_i64_range(const char *s, int64_t lo, int64_t hi, int64_t *ret)
{
    int64_t v;

    if (kf_parse_int64(s, &v) < 0 || v < lo || v > hi)
        return -EINVAL;
    *ret = v;
    return 0;
}

void kf_state_record_release(struct kf_state_record *rec)
{
    if (rec)
        kf_runner_rspec_release(&rec->spec);
}

/* One line of a record's spec: 0, or -EINVAL (or another negative errno)
 * for a value out of range; keys it does not know are left alone. */
static int state_spec_field(struct rspec *s, const char *key, const char *val)
{
    int64_t v = 0;
    uint64_t u = 0;
    int rc = 0;

    if (!strcmp(key, "argv")) {
        rc = push_str(&s->argv, &s->argc, KF_RUNNER_ARGV_MAX, val);
    } else if (!strcmp(key, "env")) {
        rc = push_str(&s->env, &s->envc, KF_RUNNER_ENV_MAX, val);
    } else if (!strcmp(key, "workdir")) {
        free(s->workdir);
        s->workdir = kf_xstrdup(val);
    } else if (!strcmp(key, "log_file")) {
        free(s->log_file);
        s->log_file = kf_xstrdup(val);
    } else if (!strcmp(key, "cpu_millis")) {
        rc = parse_i64_range(val, 0, INT64_MAX, &s->cpu_millis);
    } else if (!strcmp(key, "memory_bytes")) {
        rc = parse_i64_range(val, 0, INT64_MAX, &s->memory_bytes);
    } else if (!strcmp(key, "stop_grace_ms")) {
        rc = parse_i64_range(val, 0, INT32_MAX, &v);
        s->stop_grace_ms = (int)v;
    } else if (!strcmp(key, "timeout_ms")) {
        rc = parse_i64_range(val, 0, INT64_MAX / 4, &s->timeout_ms);
    } else if (!strcmp(key, "restart_policy")) {
        if (!strcmp(val, "never"))
            s->restart_policy = KF_RESTART_NEVER;
        else if (!strcmp(val, "on-failure"))
            s->restart_policy = KF_RESTART_ON_FAILURE;
        else
            rc = -EINVAL;
    } else if (!strcmp(key, "restart_limit")) {
        rc = parse_i64_range(val, 0, INT32_MAX, &v);
        s->restart_limit = (int)v;
    } else if (!strcmp(key, "output_cap")) {
        rc = kf_parse_uint64(val, &u);
        if (rc == 0 && u > KF_RUNNER_OUTPUT_CAP_MAX)
            rc = -EINVAL;
        s->output_cap = (size_t)u;
    }
    return rc;
}

/* One line of a state record: the record's own keys, else its spec's. */
static int state_field(struct kf_state_record *rec, const char *key, const char *val,
                       bool *have_kind, bool *have_name)
{
    int64_t v = 0;
    int rc = 0;

    if (!strcmp(key, "kind")) {
        if (!strcmp(val, "member"))
            rec->kind = RPROC_MEMBER;
        else if (!strcmp(val, "task"))
            rec->kind = RPROC_TASK;
        else
            rc = -EINVAL;
        *have_kind = true;
    } else if (!strcmp(key, "name")) {
        if (!kf_runner_name_valid(val))
            rc = -EINVAL;
        else
            snprintf(rec->name, sizeof(rec->name), "%s", val);
        *have_name = true;
    } else if (!strcmp(key, "hash")) {
        if (strlen(val) != 64)
            rc = -EINVAL;
        else
            memcpy(rec->hash, val, 65);
    } else if (!strcmp(key, "keeper_pid")) {
        rc = parse_i64_range(val, 0, INT32_MAX, &v);
        rec->keeper_pid = (int)v;
    } else if (!strcmp(key, "keeper_start")) {
        rc = kf_parse_uint64(val, &rec->keeper_start);
    } else if (!strcmp(key, "pid")) {
        rc = parse_i64_range(val, 0, INT32_MAX, &v);
        rec->pid = (int)v;
    } else if (!strcmp(key, "pid_start")) {
        rc = kf_parse_uint64(val, &rec->pid_start);
    } else if (!strcmp(key, "started_at_ms")) {
        rc = parse_i64_range(val, 0, INT64_MAX / 4, &rec->started_at_ms);
    } else if (!strcmp(key, "restarts")) {
        rc = parse_i64_range(val, 0, INT32_MAX, &v);
        rec->restarts = (int)v;
    } else if (!strcmp(key, "attempts")) {
        rc = parse_i64_range(val, 0, INT32_MAX, &v);
        rec->attempts = (int)v;
    } else if (!strcmp(key, "first_start_ms")) {
        rc = parse_i64_range(val, 0, INT64_MAX / 4, &rec->first_start_ms);
    } else if (!strcmp(key, "log_discarded")) {
        rc = kf_parse_uint64(val, &rec->log_discarded);
    } else {
        rc = state_spec_field(&rec->spec, key, val);
    }
    return rc;
}

int kf_state_parse(const char *text, size_t len, struct kf_state_record *rec)
{
    struct line_iter it;
    char *copy, *key, *val;
    bool have_kind = false, have_name = false;
    int rc;

    memset(rec, 0, sizeof(*rec));
    if (len < sizeof(STATE_MAGIC) || memcmp(text, STATE_MAGIC "\n", sizeof(STATE_MAGIC)))
        return -EINVAL;
    copy = kf_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    it.p = copy + sizeof(STATE_MAGIC);
    it.end = copy + len;
    while ((rc = next_line(&it, &key, &val)) > 0) {
        rc = state_field(rec, key, val, &have_kind, &have_name);
        if (rc < 0)
            break;
    }
    free(copy);
    if (rc == 0 && (!have_kind || !have_name || rec->spec.argc == 0 || !rec->hash[0]))
        rc = -EINVAL;
    if (rc == 0 && rec->kind == RPROC_MEMBER && !rec->spec.workdir)
        rc = -EINVAL;
    if (rc == 0 && rec->kind == RPROC_TASK && rec->spec.output_cap == 0)
        rec->spec.output_cap = KF_RUNNER_OUTPUT_CAP_DEF;
    if (rc < 0) {
        kf_state_record_release(rec);
        return -EINVAL;
    }
    if (!rec->spec.env)
        rec->spec.env = kf_xcalloc(1, sizeof(char *));
    return 0;
}

void kf_result_format(const struct kf_task_result *res, struct kf_strbuf *out)
{
    kf_strbuf_addstr(out, RESULT_MAGIC "\n");
    add_escaped(out, "id", res->id);
    add_i64(out, "succeeded", res->succeeded);
    add_i64(out, "timed_out", res->timed_out);
    add_i64(out, "cancelled", res->cancelled);
    add_i64(out, "attempts", res->attempts);
    add_i64(out, "exit_valid", res->exit.valid);
    add_i64(out, "exit_signaled", res->exit.signaled);
    add_i64(out, "exit_code", res->exit.code);
    add_i64(out, "exit_signal", res->exit.signal);
    add_i64(out, "exit_time_ms", res->exit.time_ms);
    add_i64(out, "start_ms", res->start_ms);
    add_i64(out, "end_ms", res->end_ms);
    add_u64(out, "output_dropped", res->output_dropped);
    add_escaped(out, "message", res->message);
}

int kf_result_parse(const char *text, size_t len, struct kf_task_result *res)
{
    struct line_iter it;
    char *copy, *key, *val;
    bool have_id = false;
    int rc;

    memset(res, 0, sizeof(*res));
    if (len < sizeof(RESULT_MAGIC) || memcmp(text, RESULT_MAGIC "\n", sizeof(RESULT_MAGIC)))
        return -EINVAL;
    copy = kf_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    it.p = copy + sizeof(RESULT_MAGIC);
    it.end = copy + len;
    while ((rc = next_line(&it, &key, &val)) > 0) {
        int64_t v = 0;

        if (!strcmp(key, "id")) {
            if (!kf_runner_name_valid(val))
                rc = -EINVAL;
            else
                snprintf(res->id, sizeof(res->id), "%s", val);
            have_id = true;
        } else if (!strcmp(key, "message")) {
            snprintf(res->message, sizeof(res->message), "%s", val);
        } else if (!strcmp(key, "output_dropped")) {
            rc = kf_parse_uint64(val, &res->output_dropped);
        } else if (!strcmp(key, "start_ms")) {
            rc = parse_i64_range(val, 0, INT64_MAX / 4, &res->start_ms);
        } else if (!strcmp(key, "end_ms")) {
            rc = parse_i64_range(val, 0, INT64_MAX / 4, &res->end_ms);
        } else if (!strcmp(key, "exit_time_ms")) {
            rc = parse_i64_range(val, 0, INT64_MAX / 4, &res->exit.time_ms);
        } else if (!strcmp(key, "succeeded") || !strcmp(key, "timed_out") ||
                   !strcmp(key, "cancelled") || !strcmp(key, "exit_valid") ||
                   !strcmp(key, "exit_signaled")) {
            rc = parse_i64_range(val, 0, 1, &v);
            if (!strcmp(key, "succeeded"))
                res->succeeded = v;
            else if (!strcmp(key, "timed_out"))
                res->timed_out = v;
            else if (!strcmp(key, "cancelled"))
                res->cancelled = v;
            else if (!strcmp(key, "exit_valid"))
                res->exit.valid = v;
            else
                res->exit.signaled = v;
        } else if (!strcmp(key, "attempts") || !strcmp(key, "exit_code") ||
                   !strcmp(key, "exit_signal")) {
            rc = parse_i64_range(val, 0, INT32_MAX, &v);
            if (!strcmp(key, "attempts"))
                res->attempts = (int)v;
            else if (!strcmp(key, "exit_code"))
                res->exit.code = (int)v;
            else
                res->exit.signal = (int)v;
        }
        if (rc < 0)
            break;
    }
    free(copy);
    if (rc == 0 && !have_id)
        rc = -EINVAL;
    if (rc < 0) {
        memset(res, 0, sizeof(*res));
        return -EINVAL;
    }
    return 0;
}
