/* cli-watch.c: `kfleet watch KIND [NAME]`: the objects of a kind as they
 * change, one table row per event (EVENT first: ADDED, MODIFIED, DELETED).
 *
 * It starts with a list, printing every current object as ADDED, then
 * watches from the list's resourceVersion, asking for BOOKMARKs so that the
 * position stays fresh while nothing changes. It never gives up on its own:
 *   - the server ends the watch (its timeout): watch again from the last
 *     resourceVersion seen;
 *   - the connection breaks or the server is down: say so once, retry with
 *     back-off, and resume from the last resourceVersion;
 *   - the server no longer has that revision (410 Gone, as a status or as an
 *     ERROR event): list again and print the difference between what was
 *     known and what is there (ADDED, MODIFIED, DELETED), then watch on.
 * So a restart of kfleetd or a compaction costs no event a user would miss
 * and prints none twice. --timeout ends the command cleanly (exit 0).
 *
 * `kfleet watch broadcastjob NAME` (as a table) draws a progress bar
 * instead of rows: redrawn in place on a terminal, a line per change
 * otherwise; it ends when the job does, with an exit code that says how
 * (0 completed, 6 completed with failed tasks, 5 failed or deleted first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

const struct kf_cli_opt kf_cli_watch_opts[] = {
    { "selector", 'l', KF_CLI_VALUE, "SELECTOR", "only objects whose labels match" },
    { "field-selector", 0, KF_CLI_VALUE, "SELECTOR", "only objects whose fields match" },
    { "output", 'o', KF_CLI_VALUE, "FORMAT",
      "wide, json (one event a line), yaml or name (default: a table)" },
    { "timeout", 0, KF_CLI_VALUE, "DURATION", "stop after this long (default: never)" },
    { NULL, 0, 0, NULL, NULL },
};

struct watcher {
    struct kf_cli *cli;
    const struct kf_kind *k;
    enum kf_cli_format fmt;
    const char *labels;
    char *fields;  /* the user's selector plus metadata.name=NAME */
    json_t *known; /* name -> the last object seen */
    char *rv;      /* resume from here */
    size_t *width; /* column widths of the table so far */
    bool header_done;
    bool relist;        /* the stream said 410 */
    int failed;         /* an exit code from an ERROR event, or 0 */
    long failed_status; /* its code */
    bool told;          /* the user was told the server is not answering */
    uint64_t deadline;  /* kf_mono_ns() value, or 0 */
    /* watch broadcastjob NAME: a progress bar until the job is over */
    bool progress;
    bool tty;    /* redraw in place */
    char *drawn; /* the last line drawn, without its time (a line per change) */
    bool done;   /* the job is over: done_rc says how */
    int done_rc;
};

#define PROGRESS_BAR_WIDTH 30

/* Prints the rows of t from `first` on, keeping columns at least as wide
 * as before (they only grow, so a long name does not shift later rows). */
static void print_rows(struct watcher *w, const struct kf_cli_table *t, size_t first)
{
    struct kf_strbuf out = KF_STRBUF_INIT;

    if (!w->width) {
        w->width = kf_xcalloc(t->n_cols, sizeof(*w->width));
        w->width[0] = strlen("MODIFIED"); /* the widest event type */
    }
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols; c++)
            w->width[c] = KF_MAX(w->width[c], strlen(t->cells[r * t->n_cols + c]));
    for (size_t r = first; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *cell = t->cells[r * t->n_cols + c];

            kf_strbuf_addstr(&out, cell);
            if (c + 1 < t->n_cols)
                kf_strbuf_addf(&out, "%*s", (int)(w->width[c] - strlen(cell) + 3), "");
        }
        kf_strbuf_addch(&out, '\n');
    }
    fputs(out.buf, w->cli->out);
    fflush(w->cli->out);
    kf_strbuf_release(&out);
}

/* Draws the progress of a BroadcastJob and notices its end. */
static void progress(struct watcher *w, const char *type, const json_t *job)
{
    struct kf_strbuf line = KF_STRBUF_INIT, key = KF_STRBUF_INIT;
    int rc = KF_CLI_EXIT_OK;
    bool over = kf_cli_bcj_finished(job, &rc);

    kf_cli_bcj_progress(job, w->cli->now_ms, PROGRESS_BAR_WIDTH, &line);
    /* the line without its clock, to print a line per change off a terminal */
    kf_cli_bcj_progress(job, 0, PROGRESS_BAR_WIDTH, &key);
    if (w->tty) {
        fprintf(w->cli->out, "\r%s\033[K", line.buf);
    } else if (!w->drawn || strcmp(w->drawn, key.buf) != 0 || over) {
        fprintf(w->cli->out, "%s\n", line.buf);
    }
    free(w->drawn);
    w->drawn = kf_strbuf_detach(&key, NULL);
    if (strcmp(type, "DELETED") == 0 && !over) {
        rc = KF_CLI_EXIT_JOB_FAILED;
        over = true;
    }
    if (over) {
        if (w->tty)
            fputc('\n', w->cli->out);
        if (strcmp(type, "DELETED") == 0 && rc == KF_CLI_EXIT_JOB_FAILED)
            fprintf(w->cli->out, "broadcastjob %s was deleted before it finished\n",
                    kf_obj_name(job));
        else
            fprintf(w->cli->out, "broadcastjob %s %s: %lld succeeded, %lld failed of %lld\n",
                    kf_obj_name(job), kf_json_str(job, "status.phase", ""),
                    (long long)kf_json_int(job, "status.succeeded", 0),
                    (long long)kf_json_int(job, "status.failed", 0),
                    (long long)kf_json_int(job, "status.desired", 0));
        w->done = true;
        w->done_rc = rc;
    }
    fflush(w->cli->out);
    kf_strbuf_release(&line);
    kf_strbuf_release(&key);
}

/* Prints a batch of events (type, object pairs in a JSON array). */
static void emit(struct watcher *w, const json_t *events)
{
    bool wide = w->fmt == KF_CLI_FMT_WIDE;
    size_t i;
    json_t *ev;

    if (json_array_size(events) == 0)
        return;
    if (w->progress) {
        json_array_foreach(events, i, ev)
        {
            if (!w->done)
                progress(w, json_string_value(json_object_get(ev, "type")),
                         json_object_get(ev, "object"));
        }
        return;
    }
    if (w->fmt == KF_CLI_FMT_TABLE || wide) {
        struct kf_cli_table t;
        size_t first = 1;

        kf_cli_table_init(&t, kf_cli_kind_n_cols(w->k, wide, true));
        kf_cli_kind_header(&t, w->k, wide, "EVENT");
        if (!w->header_done) {
            first = 0;
            w->header_done = true;
        }
        json_array_foreach(events, i, ev)
        {
            kf_cli_kind_row(&t, w->k, json_object_get(ev, "object"), wide,
                            json_string_value(json_object_get(ev, "type")), w->cli->now_ms);
        }
        print_rows(w, &t, first);
        kf_cli_table_release(&t);
        return;
    }
    json_array_foreach(events, i, ev)
    {
        const json_t *obj = json_object_get(ev, "object");
        const char *type = json_string_value(json_object_get(ev, "type"));

        if (w->fmt == KF_CLI_FMT_NAME) {
            char *ref = kf_cli_ref(w->k, kf_obj_name(obj));

            fprintf(w->cli->out, "%s %s\n", type, ref);
            free(ref);
        } else {
            json_t *out =
                json_pack("{s:s, s:o}", "type", type, "object", kf_cli_object_for_output(obj));

            if (w->fmt == KF_CLI_FMT_JSON) {
                char *s = kf_json_dump(out, NULL);

                fprintf(w->cli->out, "%s\n", s);
                free(s);
            } else {
                struct kf_strbuf y = KF_STRBUF_INIT;

                kf_yaml_dump(out, &y);
                fprintf(w->cli->out, "---\n%s", y.buf);
                kf_strbuf_release(&y);
            }
            json_decref(out);
        }
    }
    fflush(w->cli->out);
}

static void add_event(json_t *batch, const char *type, const json_t *obj)
{
    json_array_append_new(batch, json_pack("{s:s, s:O}", "type", type, "object", obj));
}

static void set_rv(struct watcher *w, const char *rv)
{
    if (!rv || !*rv)
        return;
    free(w->rv);
    w->rv = kf_xstrdup(rv);
}

/* Lists and prints what changed against w->known. Returns an exit code. */
static int relist(struct watcher *w)
{
    json_t *items = NULL, *batch = json_array(), *now = json_object(), *obj;
    char *rv = NULL;
    const char *name;
    size_t i;
    int rc;

    rc = kf_cli_list(w->cli, w->k, w->labels, w->fields, 500, &items, &rv);
    if (rc != KF_CLI_EXIT_OK) {
        json_decref(batch);
        json_decref(now);
        return rc;
    }
    json_array_foreach(items, i, obj)
    {
        const json_t *before = json_object_get(w->known, kf_obj_name(obj));

        if (!before)
            add_event(batch, "ADDED", obj);
        else if (!kf_streq(kf_json_str(before, "metadata.resourceVersion", ""),
                           kf_json_str(obj, "metadata.resourceVersion", "")))
            add_event(batch, "MODIFIED", obj);
        json_object_set(now, kf_obj_name(obj), obj);
    }
    json_object_foreach(w->known, name, obj)
    {
        if (!json_object_get(now, name))
            add_event(batch, "DELETED", obj);
    }
    w->cli->now_ms = kf_now_ms();
    emit(w, batch);
    json_decref(w->known);
    w->known = now;
    set_rv(w, rv);
    free(rv);
    json_decref(items);
    json_decref(batch);
    return KF_CLI_EXIT_OK;
}

/* After trouble(): the server answers again. */
static void reconnected(struct watcher *w)
{
    if (w->told) {
        fprintf(w->cli->err, "watch: connected again\n");
        w->told = false;
    }
}

static int on_line(const char *line, size_t len, void *data)
{
    struct watcher *w = data;
    json_t *ev = NULL, *obj, *batch;
    const char *type;

    if (kf_json_parse(line, len, &ev, NULL) < 0 || !json_is_object(ev)) {
        fprintf(w->cli->err, "warning: skipping a watch event that is not JSON\n");
        json_decref(ev);
        return 0;
    }
    type = kf_json_str(ev, "type", "");
    obj = json_object_get(ev, "object");
    if (strcmp(type, "ERROR") != 0)
        reconnected(w);
    if (strcmp(type, "BOOKMARK") == 0) {
        set_rv(w, kf_json_str(obj, "metadata.resourceVersion", NULL));
    } else if (strcmp(type, "ERROR") == 0) {
        if (kf_json_int(obj, "code", 0) == 410) {
            w->relist = true;
        } else {
            struct kf_cli_response r = { .status = kf_json_int(obj, "code", 500), .json = obj };
            struct kf_strbuf empty = KF_STRBUF_INIT;

            r.body = &empty;
            w->failed = kf_cli_report_status(w->cli, &r, NULL);
            w->failed_status = r.status;
        }
        json_decref(ev);
        return 1; /* stop this stream */
    } else if (json_is_object(obj) && kf_obj_name(obj)) {
        if (strcmp(type, "DELETED") == 0)
            json_object_del(w->known, kf_obj_name(obj));
        else
            json_object_set(w->known, kf_obj_name(obj), obj);
        set_rv(w, kf_json_str(obj, "metadata.resourceVersion", NULL));
        batch = json_array();
        add_event(batch, type, obj);
        w->cli->now_ms = kf_now_ms();
        emit(w, batch);
        json_decref(batch);
    }
    json_decref(ev);
    return w->done; /* a BroadcastJob that is over ends the watch */
}

/* Worth retrying: no answer, overload, or a server error (a restart, a
 * store that is briefly away). Anything else (401, 403, 400) is final. */
static bool transient(long status)
{
    return status == 0 || status == 429 || status >= 500;
}

/* Says once that the server is not answering, then waits a little longer
 * each time. */
static void trouble(struct watcher *w, int64_t *backoff)
{
    if (!w->told) {
        fprintf(w->cli->err, "watch: %s\nwatch: retrying until it answers\n",
                w->cli->last_error.buf);
        w->told = true;
    }
    kf_sleep_ms(*backoff);
    *backoff = KF_MIN(*backoff * 2, 5000);
}

/* A failure that retrying will not fix: print it. */
static int fatal(struct watcher *w, int rc)
{
    fprintf(w->cli->err, "%s%s\n", w->cli->last_status ? "" : "error: ", w->cli->last_error.buf);
    return rc;
}

static int watch_loop(struct watcher *w)
{
    int64_t backoff = 500;
    bool need_relist = false;
    int rc = relist(w); /* the first list's errors are the command's */

    if (rc != KF_CLI_EXIT_OK)
        return rc;
    w->cli->quiet = true;
    for (;;) {
        if (w->done)
            return w->done_rc;
        struct kf_cli_response resp = { 0 };
        struct kf_strbuf path = KF_STRBUF_INIT;
        char *base;
        int64_t left_ms = 0;
        int r;

        if (w->deadline) {
            uint64_t now = kf_mono_ns();

            if (now >= w->deadline)
                return KF_CLI_EXIT_OK;
            left_ms = (int64_t)((w->deadline - now) / 1000000) + 1;
        }
        if (need_relist) {
            rc = relist(w);
            if (rc != KF_CLI_EXIT_OK) {
                if (!transient(w->cli->last_status))
                    return fatal(w, rc);
                trouble(w, &backoff);
                continue;
            }
            need_relist = false;
            reconnected(w);
        }
        base = kf_cli_path(w->k, NULL);
        kf_strbuf_addstr(&path, base);
        free(base);
        kf_cli_path_add_query(&path, "watch", "true");
        kf_cli_path_add_query(&path, "allowWatchBookmarks", "true");
        if (w->rv)
            kf_cli_path_add_query(&path, "resourceVersion", w->rv);
        if (w->labels && *w->labels)
            kf_cli_path_add_query(&path, "labelSelector", w->labels);
        if (w->fields && *w->fields)
            kf_cli_path_add_query(&path, "fieldSelector", w->fields);
        if (left_ms > 0) {
            char secs[32];

            snprintf(secs, sizeof(secs), "%lld", (long long)(left_ms + 999) / 1000);
            kf_cli_path_add_query(&path, "timeoutSeconds", secs);
        }
        w->failed = 0;
        w->relist = false;
        kf_strbuf_reset(&w->cli->last_error);
        r = kf_cli_stream(w->cli, path.buf, on_line, w, left_ms, &resp, &w->cli->last_error);
        kf_strbuf_release(&path);
        if (r < 0) {
            if (w->deadline && kf_mono_ns() >= w->deadline)
                return KF_CLI_EXIT_OK;
            w->cli->last_status = 0;
            trouble(w, &backoff);
            continue;
        }
        if (w->failed) {
            kf_cli_response_release(&resp);
            if (!transient(w->failed_status))
                return fatal(w, w->failed);
            trouble(w, &backoff);
            continue;
        }
        if (resp.status == 410 || w->relist) {
            kf_cli_response_release(&resp);
            need_relist = true;
            continue;
        }
        if (resp.status < 200 || resp.status >= 300) {
            long status = resp.status;

            rc = kf_cli_report_status(w->cli, &resp, NULL);
            kf_cli_response_release(&resp);
            if (!transient(status))
                return fatal(w, rc);
            trouble(w, &backoff);
            continue;
        }
        /* The server ended the watch (its timeout, or it is going away):
         * carry on from w->rv. "connected again" waits for an event. */
        kf_cli_response_release(&resp);
        if (!w->told)
            backoff = 500;
    }
}

int kf_cli_cmd_watch(struct kf_cli *cli, const struct kf_cli_args *args)
{
    struct watcher w = { .cli = cli };
    struct kf_strbuf err = KF_STRBUF_INIT, fields = KF_STRBUF_INIT;
    const char *timeout = kf_cli_args_get(args, "timeout");
    const char *user_fields = kf_cli_args_get(args, "field-selector");
    int rc;

    if (args->n_pos < 1 || args->n_pos > 2) {
        kf_cli_error(cli, "kfleet watch needs a KIND and at most one NAME");
        return KF_CLI_EXIT_USAGE;
    }
    if (kf_cli_format_parse(kf_cli_args_get(args, "output"), &w.fmt, &err) < 0) {
        kf_cli_error(cli, "%s", err.buf);
        kf_strbuf_release(&err);
        return KF_CLI_EXIT_USAGE;
    }
    if (timeout) {
        int64_t ms;

        if (kf_parse_duration_ms(timeout, &ms) < 0 || ms <= 0) {
            kf_cli_error(cli, "--timeout takes a duration like 30s or 5m, not \"%s\"", timeout);
            return KF_CLI_EXIT_USAGE;
        }
        w.deadline = kf_mono_ns() + (uint64_t)ms * 1000000;
    }
    w.k = kf_cli_kind_arg(cli, args->pos[0]);
    if (!w.k)
        return KF_CLI_EXIT_USAGE;
    rc = kf_cli_connect(cli);
    if (rc)
        return rc;
    w.labels = kf_cli_args_get(args, "selector");
    if (user_fields && *user_fields)
        kf_strbuf_addstr(&fields, user_fields);
    if (args->n_pos == 2)
        kf_strbuf_addf(&fields, "%smetadata.name=%s", fields.len ? "," : "", args->pos[1]);
    w.fields = kf_strbuf_detach(&fields, NULL);
    w.known = json_object();
    if (w.k == &kf_kind_broadcastjob && args->n_pos == 2 && w.fmt == KF_CLI_FMT_TABLE) {
        json_t *job = NULL;

        /* a job that is not there is an error, not an empty watch */
        rc = kf_cli_get_one(cli, w.k, args->pos[1], false, &job);
        json_decref(job);
        if (rc != KF_CLI_EXIT_OK)
            goto free_watch;
        w.progress = true;
        w.tty = isatty(fileno(cli->out));
    }
    rc = watch_loop(&w);
free_watch:
    json_decref(w.known);
    free(w.rv);
    free(w.fields);
    free(w.width);
    free(w.drawn);
    return rc;
}
