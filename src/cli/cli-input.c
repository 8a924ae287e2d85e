/* cli-input.c: reading objects for `kfleet apply -f` and `kfleet delete -f`:
 * files, directories and stdin, YAML or JSON, several documents each, with
 * `List` kinds unpacked. Every object keeps where it came from ("web.yaml
 * document 2") so that a message about it can point at it.
 *
 * JSON is tried first for input that starts with '{' or '[' because JSON
 * written by tools may be indented with tabs, which YAML forbids; anything
 * else (and JSON that does not parse) goes to the YAML loader, which also
 * reads the JSON that YAML 1.2 includes.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

/* Lists inside lists are unpacked too, but not without end. */
#define MAX_LIST_NESTING 4

void kf_cli_inputs_release(struct kf_cli_inputs *in)
{
    if (!in)
        return;
    for (size_t i = 0; i < in->n; i++) {
        json_decref(in->items[i].obj);
        free(in->items[i].source);
    }
    free(in->items);
    *in = (struct kf_cli_inputs){ 0 };
}

static bool is_list(const json_t *obj)
{
    const char *kind = kf_json_str(obj, "kind", "");

    return json_is_array(json_object_get(obj, "items")) &&
           (strcmp(kind, "List") == 0 || kf_str_has_suffix(kind, "List"));
}

static int add_object(struct kf_cli_inputs *in, json_t *obj, const char *source, int nesting,
                      struct kf_strbuf *err)
{
    if (!json_is_object(obj))
        return kf_err(err, -EINVAL, "%s: is not a mapping (an object with kind and metadata)",
                      source);
    if (is_list(obj)) {
        size_t i;
        json_t *item;

        if (nesting >= MAX_LIST_NESTING)
            return kf_err(err, -EINVAL, "%s: lists nested deeper than %d", source,
                          MAX_LIST_NESTING);
        json_array_foreach(json_object_get(obj, "items"), i, item)
        {
            char *src = kf_xasprintf("%s item %zu", source, i + 1);
            int r = add_object(in, item, src, nesting + 1, err);

            free(src);
            if (r < 0)
                return r;
        }
        return 0;
    }
    if (!json_is_string(json_object_get(obj, "kind")))
        return kf_err(err, -EINVAL, "%s: has no kind (write e.g. `kind: GuestCluster`)", source);
    KF_GROW(in->items, in->alloc, in->n + 1);
    in->items[in->n++] =
        (struct kf_cli_input_obj){ .obj = json_incref(obj), .source = kf_xstrdup(source) };
    return 0;
}

int kf_cli_input_parse(const char *name, const char *buf, size_t len, struct kf_cli_inputs *ret,
                       struct kf_strbuf *err)
{
    struct kf_strbuf why = KF_STRBUF_INIT;
    json_t *docs = NULL, *doc;
    size_t i = 0, start = 0;
    int r = 0;

    while (start < len && strchr(" \t\r\n", buf[start]))
        start++;
    if (start < len && (buf[start] == '{' || buf[start] == '[')) {
        json_t *v;

        if (kf_json_parse(buf, len, &v, NULL) == 0) {
            docs = json_is_array(v) ? v : json_pack("[o]", v);
        }
    }
    if (!docs && kf_yaml_load_all(buf, len, &docs, &why) < 0) {
        r = kf_err(err, -EINVAL, "%s: %s", name, why.buf);
        goto release_docs;
    }
    json_array_foreach(docs, i, doc)
    {
        char *src = json_array_size(docs) > 1 ? kf_xasprintf("%s document %zu", name, i + 1)
                                              : kf_xstrdup(name);

        r = add_object(ret, doc, src, 0, err);
        free(src);
        if (r < 0)
            goto release_docs;
    }
release_docs:
    json_decref(docs);
    kf_strbuf_release(&why);
    return r;
}

static int read_stream(FILE *f, const char *name, struct kf_strbuf *out, struct kf_strbuf *err)
{
    char buf[65536];
    size_t n;

    out->cap = KF_CLI_MAX_INPUT;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        if (kf_strbuf_add(out, buf, n) < 0)
            return kf_err(err, -EINVAL, "%s: larger than %u MiB", name, KF_CLI_MAX_INPUT >> 20);
    if (ferror(f))
        return kf_err(err, -EINVAL, "%s: cannot read: %s", name, strerror(errno));
    return 0;
}

static int read_file(const char *path, struct kf_cli_inputs *ret, struct kf_strbuf *err)
{
    struct kf_strbuf text = KF_STRBUF_INIT;
    FILE *f = fopen(path, "r");
    int r;

    if (!f)
        return kf_err(err, -EINVAL, "cannot open \"%s\": %s", path, strerror(errno));
    r = read_stream(f, path, &text, err);
    fclose(f);
    if (r == 0)
        r = kf_cli_input_parse(path, text.buf, text.len, ret, err);
    kf_strbuf_release(&text);
    return r;
}

static int read_dir(const char *path, struct kf_cli_inputs *ret, struct kf_strbuf *err)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, alloc = 0;
    int r = 0;

    if (!d)
        return kf_err(err, -EINVAL, "cannot open the directory \"%s\": %s", path, strerror(errno));
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (!kf_str_has_suffix(de->d_name, ".yaml") && !kf_str_has_suffix(de->d_name, ".yml") &&
            !kf_str_has_suffix(de->d_name, ".json"))
            continue;
        KF_GROW(names, alloc, n + 1);
        names[n++] = kf_xasprintf("%s/%s", path, de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), kf_strp_cmp);
    for (size_t i = 0; i < n && r == 0; i++)
        r = read_file(names[i], ret, err);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return r;
}

int kf_cli_input_read(const char *path, FILE *stdin_file, struct kf_cli_inputs *ret,
                      struct kf_strbuf *err)
{
    struct stat st;

    if (strcmp(path, "-") == 0) {
        struct kf_strbuf text = KF_STRBUF_INIT;
        int r = read_stream(stdin_file, "stdin", &text, err);

        if (r == 0)
            r = kf_cli_input_parse("stdin", text.buf, text.len, ret, err);
        kf_strbuf_release(&text);
        return r;
    }
    if (stat(path, &st) < 0)
        return kf_err(err, -EINVAL, "cannot open \"%s\": %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return read_dir(path, ret, err);
    return read_file(path, ret, err);
}

int kf_cli_input_read_args(const struct kf_cli_args *args, FILE *stdin_file,
                           struct kf_cli_inputs *ret, struct kf_strbuf *err)
{
    const char *file;

    for (size_t i = 0; (file = kf_cli_args_nth(args, "filename", i)); i++) {
        int r = kf_cli_input_read(file, stdin_file, ret, err);

        if (r < 0)
            return r;
    }
    return 0;
}

int kf_cli_input_kind(const json_t *obj, const struct kf_kind **ret, struct kf_strbuf *err)
{
    const char *kind = kf_json_str(obj, "kind", "");
    const char *api_version = kf_json_str(obj, "apiVersion", NULL);
    const json_t *name = kf_json_path(obj, "metadata.name");
    const struct kf_kind *k;

    if (json_object_get(obj, "apiVersion") && !kf_streq(api_version, KF_API_VERSION))
        return kf_err(err, -EINVAL, "apiVersion \"%s\" is not served by kfleet; use %s",
                      api_version ? api_version : "(not a string)", KF_API_VERSION);
    k = kf_kind_find(kind);
    if (!k || strcmp(k->kind, kind) != 0)
        return kf_err(err, -EINVAL,
                      "kfleet has no kind \"%s\"%s%s%s; `kfleet api-resources` lists them", kind,
                      k ? " (did you mean \"" : "", k ? k->kind : "", k ? "\"?)" : "");
    if (!json_is_string(name) || !*json_string_value(name))
        return kf_err(err, -EINVAL, "%s has no metadata.name", kind);
    *ret = k;
    return 0;
}
