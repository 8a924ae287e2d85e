/* cli-describe.c: `kfleet describe KIND NAME`: one object for a person to
 * read: its metadata, its spec and status as indented `key: value` lines,
 * its conditions as a table, and the recent Events recorded about it.
 *
 * Events are Event objects whose spec.involvedObject names this object;
 * they are found with the field selector
 * `spec.involvedObject.kind=K,spec.involvedObject.name=N`. When they cannot
 * be read (an older server, a role without access) the rest still prints
 * and the Events section says why. A BroadcastJob also gets its per-host
 * results (cli-broadcast.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

/* The newest events shown; older ones are counted. */
#define MAX_EVENTS  30
#define LABEL_WIDTH 18

const struct kf_cli_opt kf_cli_describe_opts[] = {
    { NULL, 0, 0, NULL, NULL },
};

static void add_indent(struct kf_strbuf *out, int n)
{
    kf_strbuf_addf(out, "%*s", n, "");
}

/* Text from the server, on one line, control characters blanked. */
static void add_clean(struct kf_strbuf *out, const char *s)
{
    for (; *s; s++)
        kf_strbuf_addch(out, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
}

static void add_scalar(struct kf_strbuf *out, const json_t *v)
{
    if (json_is_string(v)) {
        add_clean(out, json_string_value(v));
    } else if (json_is_null(v)) {
        kf_strbuf_addstr(out, "<none>");
    } else {
        char *s = kf_json_dump(v, NULL);

        kf_strbuf_addstr(out, s);
        free(s);
    }
}

/* The items of an array of scalars, comma-separated, and a newline. */
static void add_scalar_list(struct kf_strbuf *out, const json_t *arr)
{
    size_t i;
    json_t *item;

    json_array_foreach(arr, i, item)
    {
        if (i > 0)
            kf_strbuf_addstr(out, ", ");
        add_scalar(out, item);
    }
    kf_strbuf_addch(out, '\n');
}

static bool is_scalar(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

static bool all_scalars(const json_t *arr)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        if (!is_scalar(v))
            return false;
    }
    return true;
}

static void describe_map(struct kf_strbuf *out, const json_t *obj, int indent, bool first_inline,
                         const char *skip);

/* Values that start on the lines below their key: non-empty mappings, lists
 * of mappings or lists, multi-line text. */
static bool on_own_lines(const json_t *v)
{
    if (json_is_object(v))
        return json_object_size(v) > 0;
    if (json_is_array(v))
        return json_array_size(v) > 0 && !all_scalars(v);
    return json_is_string(v) && strchr(json_string_value(v), '\n');
}

/* The value of a key whose "key:" and padding are written. */
static void describe_value(struct kf_strbuf *out, const json_t *v, int indent)
{
    if (json_is_string(v) && strchr(json_string_value(v), '\n')) {
        const char *s = json_string_value(v);

        kf_strbuf_addch(out, '\n');
        while (*s) {
            const char *nl = strchr(s, '\n');
            size_t n = nl ? (size_t)(nl - s) : strlen(s);
            char *line = kf_xstrndup(s, n);

            add_indent(out, indent + 4);
            add_clean(out, line);
            kf_strbuf_addch(out, '\n');
            free(line);
            s += n + (nl ? 1 : 0);
        }
    } else if (is_scalar(v)) {
        add_scalar(out, v);
        kf_strbuf_addch(out, '\n');
    } else if (json_is_object(v) && json_object_size(v) > 0) {
        kf_strbuf_addch(out, '\n');
        describe_map(out, v, indent + 2, false, NULL);
    } else if (json_is_array(v) && json_array_size(v) > 0 && all_scalars(v)) {
        add_scalar_list(out, v);
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        size_t i;
        json_t *item;

        kf_strbuf_addch(out, '\n');
        json_array_foreach(v, i, item)
        {
            add_indent(out, indent + 2);
            kf_strbuf_addstr(out, "- ");
            if (json_is_object(item) && json_object_size(item) > 0)
                describe_map(out, item, indent + 4, true, NULL);
            else
                describe_value(out, item, indent + 4);
        }
    } else {
        kf_strbuf_addstr(out, "<none>\n");
    }
}

/* `key:` lines of obj at indent, values aligned within the mapping. */
static void describe_map(struct kf_strbuf *out, const json_t *obj, int indent, bool first_inline,
                         const char *skip)
{
    const char *key;
    json_t *v;
    size_t width = 0;
    bool first = true;

    json_object_foreach((json_t *)obj, key, v)
    {
        if (!on_own_lines(v))
            width = KF_MAX(width, strlen(key));
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        if (skip && strcmp(key, skip) == 0)
            continue;
        if (!(first && first_inline))
            add_indent(out, indent);
        first = false;
        add_clean(out, key);
        kf_strbuf_addch(out, ':');
        if (!on_own_lines(v))
            add_indent(out, (int)(width - KF_MIN(width, strlen(key))) + 2);
        describe_value(out, v, indent);
    }
}

static void add_label(struct kf_strbuf *out, const char *label)
{
    kf_strbuf_addf(out, "%-*s", LABEL_WIDTH, label);
}

/* "Labels:" and "Annotations:": one key=value a line, aligned. */
static void describe_pairs(struct kf_strbuf *out, const char *label, const json_t *pairs)
{
    const char *key;
    json_t *v;
    bool first = true;

    add_label(out, label);
    if (json_object_size(pairs) == 0) {
        kf_strbuf_addstr(out, "<none>\n");
        return;
    }
    json_object_foreach((json_t *)pairs, key, v)
    {
        if (!first)
            add_indent(out, LABEL_WIDTH);
        first = false;
        add_clean(out, key);
        kf_strbuf_addch(out, '=');
        if (strcmp(key, KF_CLI_LAST_APPLIED) == 0)
            kf_strbuf_addstr(out, "(what `kfleet apply` last wrote)");
        else
            add_scalar(out, v);
        kf_strbuf_addch(out, '\n');
    }
}

static void describe_time(struct kf_strbuf *out, const char *label, const char *ts, int64_t now)
{
    add_label(out, label);
    if (!ts || !*ts) {
        kf_strbuf_addstr(out, "<unknown>\n");
        return;
    }
    add_clean(out, ts);
    kf_strbuf_addstr(out, " (");
    kf_cli_age_of(now, ts, out);
    kf_strbuf_addstr(out, " ago)\n");
}

static void describe_conditions(struct kf_strbuf *out, const json_t *conds, int64_t now)
{
    struct kf_cli_table t;
    size_t i;
    json_t *c;
    static const char *const header[] = { "TYPE", "STATUS", "REASON", "AGE", "MESSAGE" };

    kf_strbuf_addstr(out, "Conditions:");
    if (!json_is_array(conds) || json_array_size(conds) == 0) {
        kf_strbuf_addstr(out, "\n  <none>\n");
        return;
    }
    kf_strbuf_addch(out, '\n');
    kf_cli_table_init(&t, 5);
    kf_cli_table_add(&t, header);
    json_array_foreach(conds, i, c)
    {
        struct kf_strbuf age = KF_STRBUF_INIT;
        const char *row[5];

        kf_cli_age_of(now, kf_json_str(c, "lastTransitionTime", NULL), &age);
        row[0] = kf_json_str(c, "type", "");
        row[1] = kf_json_str(c, "status", "");
        row[2] = kf_json_str(c, "reason", "");
        row[3] = age.buf;
        row[4] = kf_json_str(c, "message", "");
        kf_cli_table_add(&t, row);
        kf_strbuf_release(&age);
    }
    kf_cli_table_format(&t, "  ", out);
    kf_cli_table_release(&t);
}

static const char *event_time(const json_t *ev)
{
    const char *t = kf_json_str(ev, "spec.lastTimestamp", NULL);

    if (!t || !*t)
        t = kf_json_str(ev, "spec.firstTimestamp", NULL);
    if (!t || !*t)
        t = kf_json_str(ev, "metadata.creationTimestamp", "");
    return t;
}

static int64_t event_ms(const json_t *ev)
{
    int64_t ms = 0;

    kf_time_parse_rfc3339(event_time(ev), &ms);
    return ms;
}

static int cmp_events(const void *a, const void *b)
{
    int64_t ta = event_ms(*(json_t *const *)a), tb = event_ms(*(json_t *const *)b);

    return ta < tb ? -1 : ta > tb ? 1 : 0;
}

static void describe_events(struct kf_strbuf *out, const json_t *events, const char *why,
                            int64_t now)
{
    static const char *const header[] = { "TYPE", "REASON", "AGE", "FROM", "MESSAGE" };
    struct kf_cli_table t;
    json_t **sorted;
    size_t n = json_array_size(events), first;

    kf_strbuf_addstr(out, "Events:");
    if (!events) {
        kf_strbuf_addf(out, "  <unavailable: %s>\n", why ? why : "unknown error");
        return;
    }
    if (n == 0) {
        kf_strbuf_addstr(out, "  <none>\n");
        return;
    }
    kf_strbuf_addch(out, '\n');
    sorted = kf_xcalloc(n, sizeof(*sorted));
    for (size_t i = 0; i < n; i++)
        sorted[i] = json_array_get(events, i);
    qsort(sorted, n, sizeof(*sorted), cmp_events);
    first = n > MAX_EVENTS ? n - MAX_EVENTS : 0;
    if (first > 0)
        kf_strbuf_addf(out, "  (%zu older events not shown)\n", first);
    kf_cli_table_init(&t, 5);
    kf_cli_table_add(&t, header);
    for (size_t i = first; i < n; i++) {
        const json_t *ev = sorted[i];
        struct kf_strbuf age = KF_STRBUF_INIT;
        int64_t count = kf_json_int(ev, "spec.count", 1);
        const char *row[5];

        kf_cli_age_of(now, event_time(ev), &age);
        if (count > 1) {
            const char *firstts = kf_json_str(ev, "spec.firstTimestamp", NULL);

            kf_strbuf_addf(&age, " (x%lld", (long long)count);
            if (firstts && *firstts) {
                kf_strbuf_addstr(&age, " over ");
                kf_cli_age_of(now, firstts, &age);
            }
            kf_strbuf_addch(&age, ')');
        }
        row[0] = kf_json_str(ev, "spec.type", "");
        row[1] = kf_json_str(ev, "spec.reason", "");
        row[2] = age.buf;
        row[3] = kf_json_str(ev, "spec.source.component", "");
        row[4] = kf_json_str(ev, "spec.message", "");
        kf_cli_table_add(&t, row);
        kf_strbuf_release(&age);
    }
    kf_cli_table_format(&t, "  ", out);
    kf_cli_table_release(&t);
    free(sorted);
}

void kf_cli_describe_format(const struct kf_kind *k, const json_t *obj, const json_t *events,
                            const char *events_error, int64_t now_ms, struct kf_strbuf *out)
{
    kf_cli_describe_format_ex(k, obj, NULL, events, events_error, now_ms, out);
}

void kf_cli_describe_format_ex(const struct kf_kind *k, const json_t *obj, const char *extra,
                               const json_t *events, const char *events_error, int64_t now_ms,
                               struct kf_strbuf *out)
{
    const json_t *meta = json_object_get(obj, "metadata");
    const json_t *spec = json_object_get(obj, "spec");
    const json_t *status = json_object_get(obj, "status");
    const json_t *fin = json_object_get(meta, "finalizers");
    const char *deleting = kf_json_str(meta, "deletionTimestamp", NULL);

    add_label(out, "Name:");
    add_clean(out, kf_json_str(meta, "name", ""));
    kf_strbuf_addch(out, '\n');
    add_label(out, "Kind:");
    kf_strbuf_addstr(out, k->kind);
    kf_strbuf_addch(out, '\n');
    describe_pairs(out, "Labels:", json_object_get(meta, "labels"));
    describe_pairs(out, "Annotations:", json_object_get(meta, "annotations"));
    add_label(out, "Finalizers:");
    if (json_array_size(fin) == 0) {
        kf_strbuf_addstr(out, "<none>\n");
    } else {
        add_scalar_list(out, fin);
    }
    describe_time(out, "Created:", kf_json_str(meta, "creationTimestamp", NULL), now_ms);
    if (deleting)
        describe_time(out, "Deleting since:", deleting, now_ms);
    add_label(out, "Generation:");
    kf_strbuf_addf(out, "%lld\n", (long long)kf_json_int(meta, "generation", 0));
    add_label(out, "Resource version:");
    add_clean(out, kf_json_str(meta, "resourceVersion", ""));
    kf_strbuf_addch(out, '\n');
    add_label(out, "UID:");
    add_clean(out, kf_json_str(meta, "uid", ""));
    kf_strbuf_addch(out, '\n');

    if (spec) {
        kf_strbuf_addstr(out, "Spec:");
        if (json_is_object(spec) && json_object_size(spec) > 0) {
            kf_strbuf_addch(out, '\n');
            describe_map(out, spec, 2, false, NULL);
        } else {
            kf_strbuf_addstr(out, "  <none>\n");
        }
    }
    if (k->has_status || status) {
        bool has_other = false;
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)status, key, v)
        {
            if (strcmp(key, "conditions") != 0)
                has_other = true;
        }
        kf_strbuf_addstr(out, "Status:");
        if (has_other) {
            kf_strbuf_addch(out, '\n');
            describe_map(out, status, 2, false, "conditions");
        } else {
            kf_strbuf_addstr(out, "  <none>\n");
        }
        describe_conditions(out, json_object_get(status, "conditions"), now_ms);
    }
    if (extra)
        kf_strbuf_addstr(out, extra);
    describe_events(out, events, events_error, now_ms);
}

int kf_cli_cmd_describe(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const struct kf_kind *k, *ev_kind;
    json_t *obj = NULL, *events = NULL;
    struct kf_strbuf out = KF_STRBUF_INIT, why = KF_STRBUF_INIT, extra = KF_STRBUF_INIT;
    int rc = KF_CLI_EXIT_OK;

    if (args->n_pos < 2) {
        kf_cli_error(cli, "kfleet describe needs a KIND and a NAME, e.g. `kfleet describe gc "
                          "web-1`");
        return KF_CLI_EXIT_USAGE;
    }
    k = kf_cli_kind_arg(cli, args->pos[0]);
    if (!k)
        return KF_CLI_EXIT_USAGE;
    rc = kf_cli_connect(cli);
    if (rc)
        return rc;
    ev_kind = kf_kind_find("Event");
    for (size_t i = 1; i < args->n_pos; i++) {
        int r = kf_cli_get_one(cli, k, args->pos[i], false, &obj);

        if (r != KF_CLI_EXIT_OK) {
            if (!kf_cli_fold_exit(&rc, r))
                break;
            continue;
        }
        if (ev_kind) {
            struct kf_strbuf path = KF_STRBUF_INIT, sel = KF_STRBUF_INIT;
            char *base = kf_cli_path(ev_kind, NULL);

            kf_strbuf_addstr(&path, base);
            free(base);
            kf_strbuf_addf(&sel, "spec.involvedObject.kind=%s,spec.involvedObject.name=%s", k->kind,
                           args->pos[i]);
            kf_cli_path_add_query(&path, "fieldSelector", sel.buf);
            kf_strbuf_release(&sel);
            kf_strbuf_reset(&why);
            /* every page: the newest events are shown, wherever they are */
            kf_cli_list_path(cli, path.buf, 0, &events, &why);
            kf_strbuf_release(&path);
        } else {
            kf_strbuf_addstr(&why, "this kfleet has no Event kind");
        }
        if (i > 1)
            kf_strbuf_addch(&out, '\n');
        /* kinds with more to say */
        if (k == &kf_kind_broadcastjob)
            kf_cli_bcj_describe_hosts(cli, obj, &extra);
        kf_cli_describe_format_ex(k, obj, extra.len ? extra.buf : NULL, events, why.buf,
                                  cli->now_ms, &out);
        kf_strbuf_reset(&extra);
        fputs(out.buf, cli->out);
        kf_strbuf_reset(&out);
        json_decref(obj);
        json_decref(events);
        obj = events = NULL;
    }
    kf_strbuf_release(&out);
    kf_strbuf_release(&why);
    kf_strbuf_release(&extra);
    return rc;
}
