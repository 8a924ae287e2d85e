/* cli-output.c: what `kfleet` prints: tables built from a kind's columns
 * (NAME first, AGE last, dates as ages, as kubectl does), objects as JSON,
 * YAML or names, lists as a kubectl `List`, and the client's own error
 * lines. Text that came from the server is printed with control characters
 * blanked, so an object cannot send escape sequences to the terminal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

void kf_cli_init(struct kf_cli *cli, FILE *out, FILE *err)
{
    *cli = (struct kf_cli){ .out = out, .err = err, .now_ms = kf_now_ms(), .timeout_s = 60 };
    kf_strbuf_init(&cli->last_error, 0);
}

void kf_cli_release(struct kf_cli *cli)
{
    if (!cli)
        return;
    kf_cli_conn_release(&cli->conn);
    kf_strbuf_release(&cli->last_error);
    kf_cli_http_free(cli->http);
    cli->http = NULL;
    cli->conn_resolved = false;
}

void kf_cli_error(struct kf_cli *cli, const char *fmt, ...)
{
    va_list ap;

    cli->last_status = 0;
    if (cli->quiet) {
        kf_strbuf_reset(&cli->last_error);
        va_start(ap, fmt);
        kf_strbuf_vaddf(&cli->last_error, fmt, ap);
        va_end(ap);
        return;
    }
    fputs("error: ", cli->err);
    va_start(ap, fmt);
    vfprintf(cli->err, fmt, ap);
    va_end(ap);
    fputc('\n', cli->err);
}

const struct kf_kind *kf_cli_kind_arg(struct kf_cli *cli, const char *arg)
{
    const struct kf_kind *k = kf_kind_find(arg);

    if (!k)
        kf_cli_error(cli,
                     "kfleet has no kind \"%s\"; `kfleet api-resources` lists the kinds and "
                     "their short names",
                     arg);
    return k;
}

int kf_cli_format_parse(const char *s, enum kf_cli_format *ret, struct kf_strbuf *err)
{
    static const struct {
        const char *name;
        enum kf_cli_format fmt;
    } formats[] = {
        { "", KF_CLI_FMT_TABLE },    { "wide", KF_CLI_FMT_WIDE }, { "json", KF_CLI_FMT_JSON },
        { "yaml", KF_CLI_FMT_YAML }, { "name", KF_CLI_FMT_NAME },
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(formats); i++) {
        if (strcmp(s ? s : "", formats[i].name) == 0) {
            *ret = formats[i].fmt;
            return 0;
        }
    }
    return kf_err(err, -EINVAL, "unknown output format \"%s\" (use json, yaml, wide or name)", s);
}

/* ---- ages ---------------------------------------------------------------------- */

void kf_cli_age(int64_t now_ms, int64_t then_ms, struct kf_strbuf *out)
{
    int64_t s;

    if (then_ms <= 0) {
        kf_strbuf_addstr(out, "<unknown>");
        return;
    }
    /* A little clock skew between client and server is not "in the future". */
    s = now_ms > then_ms ? (now_ms - then_ms) / 1000 : 0;
    if (s < 120)
        kf_strbuf_addf(out, "%llds", (long long)s);
    else if (s < 120 * 60)
        kf_strbuf_addf(out, "%lldm", (long long)(s / 60));
    else if (s < 48 * 3600)
        kf_strbuf_addf(out, "%lldh", (long long)(s / 3600));
    else if (s < 730LL * 86400)
        kf_strbuf_addf(out, "%lldd", (long long)(s / 86400));
    else
        kf_strbuf_addf(out, "%lldy", (long long)(s / (365LL * 86400)));
}

void kf_cli_age_of(int64_t now_ms, const char *rfc3339, struct kf_strbuf *out)
{
    int64_t then;

    if (!rfc3339 || !*rfc3339 || kf_time_parse_rfc3339(rfc3339, &then) < 0) {
        kf_strbuf_addstr(out, "<unknown>");
        return;
    }
    kf_cli_age(now_ms, then, out);
}

/* ---- tables --------------------------------------------------------------------- */

void kf_cli_table_init(struct kf_cli_table *t, size_t n_cols)
{
    *t = (struct kf_cli_table){ .n_cols = n_cols };
}

void kf_cli_table_release(struct kf_cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    *t = (struct kf_cli_table){ 0 };
}

/* A copy of s on one line, control characters blanked. */
static char *clean_cell(const char *s)
{
    char *c;

    if (!s || !*s)
        return kf_xstrdup("<none>");
    c = kf_xstrdup(s);
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return c;
}

void kf_cli_table_add(struct kf_cli_table *t, const char *const *cells)
{
    KF_GROW(t->cells, t->alloc, (t->n_rows + 1) * t->n_cols);
    for (size_t i = 0; i < t->n_cols; i++)
        t->cells[t->n_rows * t->n_cols + i] = clean_cell(cells[i]);
    t->n_rows++;
}

/* Display width: characters, not bytes (UTF-8 continuation bytes skipped). */
static size_t text_width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

void kf_cli_table_format(const struct kf_cli_table *t, const char *indent, struct kf_strbuf *out)
{
    size_t *width = kf_xcalloc(t->n_cols ? t->n_cols : 1, sizeof(*width));

    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols; c++)
            width[c] = KF_MAX(width[c], text_width(t->cells[r * t->n_cols + c]));
    for (size_t r = 0; r < t->n_rows; r++) {
        kf_strbuf_addstr(out, indent ? indent : "");
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *cell = t->cells[r * t->n_cols + c];

            kf_strbuf_addstr(out, cell);
            if (c + 1 < t->n_cols)
                kf_strbuf_addf(out, "%*s", (int)(width[c] - text_width(cell) + 3), "");
        }
        kf_strbuf_addch(out, '\n');
    }
    free(width);
}

void kf_cli_table_print(const struct kf_cli_table *t, FILE *out)
{
    struct kf_strbuf text = KF_STRBUF_INIT;

    kf_cli_table_format(t, NULL, &text);
    fwrite(text.buf, 1, text.len, out);
    kf_strbuf_release(&text);
}

/* ---- kinds as tables ------------------------------------------------------------- */

static bool column_shown(const struct kf_column *c, bool wide)
{
    return wide || !c->wide;
}

size_t kf_cli_kind_n_cols(const struct kf_kind *k, bool wide, bool prefix)
{
    size_t n = 2 + (prefix ? 1 : 0);

    for (size_t i = 0; i < k->n_columns; i++)
        if (column_shown(&k->columns[i], wide))
            n++;
    return n;
}

void kf_cli_kind_header(struct kf_cli_table *t, const struct kf_kind *k, bool wide,
                        const char *prefix)
{
    size_t n = kf_cli_kind_n_cols(k, wide, prefix != NULL), i = 0;
    const char **cells = kf_xcalloc(n, sizeof(*cells));

    if (prefix)
        cells[i++] = prefix;
    cells[i++] = "NAME";
    for (size_t c = 0; c < k->n_columns; c++)
        if (column_shown(&k->columns[c], wide))
            cells[i++] = k->columns[c].header;
    cells[i++] = "AGE";
    kf_cli_table_add(t, cells);
    free(cells);
}

void kf_cli_kind_row(struct kf_cli_table *t, const struct kf_kind *k, const json_t *obj, bool wide,
                     const char *prefix, int64_t now_ms)
{
    size_t n = kf_cli_kind_n_cols(k, wide, prefix != NULL), i = 0;
    char **cells = kf_xcalloc(n, sizeof(*cells));

    if (prefix)
        cells[i++] = kf_xstrdup(prefix);
    cells[i++] = kf_xstrdup(kf_json_str(obj, "metadata.name", ""));
    for (size_t c = 0; c < k->n_columns; c++) {
        const struct kf_column *col = &k->columns[c];
        struct kf_strbuf v = KF_STRBUF_INIT;

        if (!column_shown(col, wide))
            continue;
        kf_column_value(col, obj, &v);
        if (kf_streq(col->type, "date") && v.len > 0) {
            struct kf_strbuf age = KF_STRBUF_INIT;

            kf_cli_age_of(now_ms, v.buf, &age);
            kf_strbuf_release(&v);
            v = age;
        }
        cells[i++] = kf_strbuf_detach(&v, NULL);
    }
    {
        struct kf_strbuf age = KF_STRBUF_INIT;

        kf_cli_age_of(now_ms, kf_json_str(obj, "metadata.creationTimestamp", NULL), &age);
        cells[i++] = kf_strbuf_detach(&age, NULL);
    }
    kf_cli_table_add(t, (const char *const *)cells);
    for (size_t c = 0; c < n; c++)
        free(cells[c]);
    free(cells);
}

char *kf_cli_ref(const struct kf_kind *k, const char *name)
{
    return kf_xasprintf("%s/%s", k->singular, name ? name : "");
}

/* ---- objects --------------------------------------------------------------------- */

/* Copies the members of `from` named in `order` first, then the others. */
static json_t *reordered(const json_t *from, const char *const *order)
{
    json_t *to = json_object(), *v;
    const char *key;

    for (size_t i = 0; order[i]; i++)
        if ((v = json_object_get(from, order[i])))
            json_object_set(to, order[i], v);
    json_object_foreach((json_t *)from, key, v)
    {
        if (!json_object_get(to, key))
            json_object_set(to, key, v);
    }
    return to;
}

json_t *kf_cli_object_for_output(const json_t *obj)
{
    static const char *const top[] = { "apiVersion", "kind", "metadata", "spec", "status", NULL };
    static const char *const meta[] = {
        "name",
        "generateName",
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        NULL,
    };
    json_t *out, *m;

    if (!json_is_object(obj))
        return json_incref((json_t *)obj);
    out = reordered(obj, top);
    m = json_object_get(obj, "metadata");
    if (json_is_object(m))
        json_object_set_new(out, "metadata", reordered(m, meta));
    return out;
}

void kf_cli_print_objects(struct kf_cli *cli, const struct kf_kind *k, const json_t *items,
                          enum kf_cli_format fmt, bool single)
{
    const json_t *what = items;
    json_t *list = NULL;
    size_t i;
    json_t *obj;

    switch (fmt) {
    case KF_CLI_FMT_TABLE:
    case KF_CLI_FMT_WIDE: {
        struct kf_cli_table t;
        bool wide = fmt == KF_CLI_FMT_WIDE;

        if (json_array_size(items) == 0)
            return;
        kf_cli_table_init(&t, kf_cli_kind_n_cols(k, wide, false));
        kf_cli_kind_header(&t, k, wide, NULL);
        json_array_foreach(items, i, obj)
        {
            kf_cli_kind_row(&t, k, obj, wide, NULL, cli->now_ms);
        }
        kf_cli_table_print(&t, cli->out);
        kf_cli_table_release(&t);
        return;
    }
    case KF_CLI_FMT_NAME:
        json_array_foreach(items, i, obj)
        {
            char *ref = kf_cli_ref(k, kf_json_str(obj, "metadata.name", ""));

            fprintf(cli->out, "%s\n", ref);
            free(ref);
        }
        return;
    case KF_CLI_FMT_JSON:
    case KF_CLI_FMT_YAML:
        break;
    }
    if (single && json_array_size(items) == 1) {
        list = kf_cli_object_for_output(json_array_get(items, 0));
    } else {
        /* What kubectl prints for several objects. */
        json_t *ordered = json_array();

        json_array_foreach(items, i, obj)
        {
            json_array_append_new(ordered, kf_cli_object_for_output(obj));
        }
        list = json_pack("{s:s, s:s, s:{s:s}, s:o}", "apiVersion", "v1", "kind", "List", "metadata",
                         "resourceVersion", "", "items", ordered);
    }
    what = list;
    if (fmt == KF_CLI_FMT_JSON) {
        char *s = kf_json_dump_pretty(what);

        fprintf(cli->out, "%s\n", s);
        free(s);
    } else {
        struct kf_strbuf y = KF_STRBUF_INIT;

        kf_yaml_dump(what, &y);
        fputs(y.buf, cli->out);
        kf_strbuf_release(&y);
    }
    json_decref(list);
}

int kf_cli_report_format(struct kf_cli *cli, const char *output)
{
    if (output && strcmp(output, "json") != 0) {
        kf_cli_error(cli, "-o takes json (or nothing for the table), not \"%s\"", output);
        return KF_CLI_EXIT_USAGE;
    }
    return 0;
}

int kf_cli_print_report(struct kf_cli *cli, const struct kf_cli_response *resp, const char *output,
                        const char *what)
{
    if (resp->status != 200 || !json_is_object(resp->json))
        return kf_cli_report_status(cli, resp, what);
    if (output) {
        char *s = kf_json_dump_pretty(resp->json);

        fprintf(cli->out, "%s\n", s);
        free(s);
    } else {
        fputs(kf_json_str(resp->json, "text", ""), cli->out);
    }
    return KF_CLI_EXIT_OK;
}
