/* base-json.c: bounded JSON parsing, compact dumping, dotted-path access and
 * RFC 7386 merge patch over jansson. (RFC 6902 JSON patch is in
 * base-json-patch.c, YAML in base-yaml.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/json.h"
#include "kfleet/strbuf.h"

/* jansson has no depth limit of its own (it recurses up to 2048 levels);
 * check the raw bytes first so a hostile body cannot use the stack. */
static int check_depth(const char *buf, size_t len, struct kf_strbuf *err)
{
    int depth = 0;
    bool in_str = false, esc = false;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];

        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > KF_JSON_MAX_DEPTH)
                return kf_err(err, -EBADMSG, "JSON is nested deeper than %d levels at byte %zu",
                              KF_JSON_MAX_DEPTH, i);
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

int kf_json_parse(const char *buf, size_t len, json_t **ret, struct kf_strbuf *err)
{
    json_error_t jerr;
    json_t *v;
    int r;

    r = check_depth(buf, len, err);
    if (r < 0)
        return r;
    v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v)
        return kf_err(err, -EBADMSG, "invalid JSON at line %d column %d: %s", jerr.line,
                      jerr.column, jerr.text);
    *ret = v;
    return 0;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    return kf_strbuf_add(data, buf, size) < 0 ? -1 : 0;
}

int kf_json_dump_sb(const json_t *v, struct kf_strbuf *out)
{
    if (json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) <
        0)
        return -E2BIG;
    return 0;
}

char *kf_json_dump(const json_t *v, size_t *ret_len)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;

    kf_json_dump_sb(v, &sb);
    return kf_strbuf_detach(&sb, ret_len);
}

char *kf_json_dump_pretty(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

    if (!s)
        kf_abort("out of memory dumping JSON");
    return s;
}

json_t *kf_json_path(const json_t *root, const char *path)
{
    const char *p = path;
    json_t *cur = (json_t *)root;

    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);

        if (!json_is_object(cur))
            return NULL;
        cur = json_object_getn(cur, p, n);
        p += n;
        if (*p == '.')
            p++;
    }
    return cur;
}

const char *kf_json_str(const json_t *root, const char *path, const char *dflt)
{
    json_t *v = kf_json_path(root, path);

    return json_is_string(v) ? json_string_value(v) : dflt;
}

int64_t kf_json_int(const json_t *root, const char *path, int64_t dflt)
{
    json_t *v = kf_json_path(root, path);

    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return dflt;
}

double kf_json_num(const json_t *root, const char *path, double dflt)
{
    json_t *v = kf_json_path(root, path);

    return json_is_number(v) ? json_number_value(v) : dflt;
}

bool kf_json_bool(const json_t *root, const char *path, bool dflt)
{
    json_t *v = kf_json_path(root, path);

    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

json_t *kf_json_ensure_obj(json_t *root, const char *path)
{
    const char *p = path;
    json_t *cur = root;

    kf_assert(json_is_object(root));
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        json_t *next = json_object_getn(cur, p, n);

        if (!json_is_object(next)) {
            next = json_object();
            json_object_setn_new(cur, p, n, next);
        }
        cur = next;
        p += n;
        if (*p == '.')
            p++;
    }
    return cur;
}

void kf_json_set(json_t *root, const char *path, json_t *value)
{
    const char *last = strrchr(path, '.');
    json_t *parent = root;

    if (last) {
        char *head = kf_xstrndup(path, (size_t)(last - path));

        parent = kf_json_ensure_obj(root, head);
        free(head);
        last++;
    } else {
        last = path;
    }
    json_object_set_new(parent, last, value);
}

void kf_json_set_str(json_t *root, const char *path, const char *s)
{
    kf_json_set(root, path, json_string(s));
}

void kf_json_set_int(json_t *root, const char *path, json_int_t v)
{
    kf_json_set(root, path, json_integer(v));
}

void kf_json_del(json_t *root, const char *path)
{
    const char *last = strrchr(path, '.');
    json_t *parent = root;

    if (last) {
        char *head = kf_xstrndup(path, (size_t)(last - path));

        parent = kf_json_path(root, head);
        free(head);
        last++;
    } else {
        last = path;
    }
    if (json_is_object(parent))
        json_object_del(parent, last);
}

/* Merges the object patch into result, which is the caller's own (a deep
 * copy: no other reference to it or to anything in it), in place. */
static void merge_into(json_t *result, const json_t *patch)
{
    const char *key;
    json_t *pv;

    json_object_foreach((json_t *)patch, key, pv)
    {
        json_t *cur = json_object_get(result, key);

        if (json_is_null(pv))
            json_object_del(result, key);
        else if (json_is_object(pv) && json_is_object(cur))
            merge_into(cur, pv);
        else
            json_object_set_new(result, key, kf_json_merge_patch(NULL, pv));
    }
}

json_t *kf_json_merge_patch(const json_t *target, const json_t *patch)
{
    json_t *result;

    if (!json_is_object(patch))
        return json_deep_copy(patch);
    /* one copy of target, patched in place (merging a member into a copy
     * of it copied every patched subtree again) */
    result = json_is_object(target) ? json_deep_copy(target) : json_object();
    merge_into(result, patch);
    return result;
}
