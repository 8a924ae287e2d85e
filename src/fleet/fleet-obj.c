/* fleet-obj.c: canonical object bytes, resourceVersion splicing, keys and
 * metadata accessors (contracts in kfleet/obj.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"

static const char meta_prefix[] = "{\"metadata\":{";

int kf_obj_encode(const json_t *obj, struct kf_strbuf *out)
{
    json_t *meta = json_object_get(obj, "metadata");
    json_t *copy, *meta_copy;
    const char *key;
    json_t *v;
    int r;

    if (!json_is_object(obj) || !json_is_object(meta) || json_object_size(meta) == 0)
        return -EINVAL;
    /* Rebuild with metadata first; shallow copies, the values are shared. */
    copy = json_object();
    meta_copy = json_object();
    json_object_foreach(meta, key, v) if (strcmp(key, "resourceVersion") != 0)
        json_object_set(meta_copy, key, v);
    if (json_object_size(meta_copy) == 0)
        json_object_set_new(meta_copy, "name", json_string(""));
    json_object_set_new(copy, "metadata", meta_copy);
    json_object_foreach((json_t *)obj, key, v) if (strcmp(key, "metadata") != 0)
        json_object_set(copy, key, v);
    r = kf_json_dump_sb(copy, out);
    json_decref(copy);
    return r;
}

int kf_obj_write(struct kf_strbuf *out, const char *bytes, size_t len, int64_t mod_rev)
{
    size_t plen = sizeof(meta_prefix) - 1;
    int r;

    if (len <= plen || memcmp(bytes, meta_prefix, plen) != 0)
        return -EBADMSG;
    r = kf_strbuf_add(out, bytes, plen);
    if (!r)
        r = kf_strbuf_addf(out, "\"resourceVersion\":\"%lld\"%s", (long long)mod_rev,
                           bytes[plen] == '}' ? "" : ",");
    if (!r)
        r = kf_strbuf_add(out, bytes + plen, len - plen);
    return r;
}

int kf_obj_decode(const char *bytes, size_t len, int64_t mod_rev, json_t **ret)
{
    json_t *obj, *meta;
    char rv[24];

    if (kf_json_parse(bytes, len, &obj, NULL) < 0)
        return -EBADMSG;
    meta = json_object_get(obj, "metadata");
    if (!json_is_object(meta)) {
        json_decref(obj);
        return -EBADMSG;
    }
    snprintf(rv, sizeof(rv), "%lld", (long long)mod_rev);
    json_object_set_new(meta, "resourceVersion", json_string(rv));
    *ret = obj;
    return 0;
}

char *kf_obj_key(const struct kf_kind *kind, const char *name)
{
    return kf_xasprintf("/%s/%s", kind->plural, name);
}

char *kf_obj_prefix(const struct kf_kind *kind)
{
    return kf_xasprintf("/%s/", kind->plural);
}

const char *kf_obj_name(const json_t *obj)
{
    return kf_json_str(obj, "metadata.name", NULL);
}

const char *kf_host_address(const json_t *host, const char *dflt)
{
    const char *a = kf_json_str(host, "spec.address", NULL);

    if (!a)
        a = kf_json_str(host, "status.address", NULL);
    return a ? a : dflt;
}

const char *kf_obj_uid(const json_t *obj)
{
    return kf_json_str(obj, "metadata.uid", NULL);
}

int64_t kf_obj_rv(const json_t *obj)
{
    const char *s = kf_json_str(obj, "metadata.resourceVersion", NULL);
    int64_t v = 0;

    if (s)
        kf_parse_int64(s, &v);
    return v;
}

int64_t kf_obj_generation(const json_t *obj)
{
    return kf_json_int(obj, "metadata.generation", 0);
}

const char *kf_obj_label(const json_t *obj, const char *key)
{
    json_t *labels = kf_json_path(obj, "metadata.labels");
    json_t *v = json_is_object(labels) ? json_object_get(labels, key) : NULL;

    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool kf_obj_deleting(const json_t *obj)
{
    return json_is_string(kf_json_path(obj, "metadata.deletionTimestamp"));
}

bool kf_obj_has_finalizer(const json_t *obj, const char *finalizer)
{
    json_t *list = kf_json_path(obj, "metadata.finalizers");
    size_t i;
    json_t *v;

    if (!json_is_array(list))
        return false;
    json_array_foreach(list, i, v) if (json_is_string(v) &&
                                       strcmp(json_string_value(v), finalizer) == 0) return true;
    return false;
}

/* Label names and values: <= 63 of [A-Za-z0-9_.-], alphanumeric at both ends. */
static bool qualified_part_valid(const char *s, size_t len, bool allow_empty)
{
    if (len == 0)
        return allow_empty;
    if (len > 63)
        return false;
    if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!(isalnum(c) || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

bool kf_label_key_valid(const char *key)
{
    const char *slash;

    if (!key)
        return false;
    slash = strchr(key, '/');
    if (slash) {
        char *prefix = kf_xstrndup(key, (size_t)(slash - key));
        bool ok = (size_t)(slash - key) <= 253 && kf_name_valid(prefix);

        free(prefix);
        if (!ok)
            return false;
        key = slash + 1;
    }
    return qualified_part_valid(key, strlen(key), false);
}

bool kf_label_value_valid(const char *value)
{
    return value && qualified_part_valid(value, strlen(value), true);
}

/* Index just past the JSON string starting at bytes[i] (a '"'), or 0. */
static size_t skip_string(const char *b, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (b[i] == '\\')
            i++;
        else if (b[i] == '"')
            return i + 1;
    }
    return 0;
}

/* Index just past the compact JSON value starting at bytes[i], or 0. */
static size_t skip_value(const char *b, size_t len, size_t i)
{
    int depth = 0;

    if (i >= len)
        return 0;
    if (b[i] == '"')
        return skip_string(b, len, i);
    if (b[i] != '{' && b[i] != '[') {
        while (i < len && b[i] != ',' && b[i] != '}' && b[i] != ']')
            i++;
        return i < len ? i : 0;
    }
    for (; i < len; i++) {
        switch (b[i]) {
        case '"':
            i = skip_string(b, len, i);
            if (!i)
                return 0;
            i--;
            break;
        case '{':
        case '[':
            depth++;
            break;
        case '}':
        case ']':
            if (--depth == 0)
                return i + 1;
            break;
        default:
            break;
        }
    }
    return 0;
}

/* In the compact object whose '{' is at b[i], the value of member name (n
 * bytes): returns 1 and [*vstart, *vend), 0 when absent, -EBADMSG when the
 * bytes are not compact JSON. Keys are compared as written: kfleet's paths
 * never need escapes, and jansson writes other keys without them. */
static int find_member(const char *b, size_t len, size_t i, const char *name, size_t n,
                       size_t *vstart, size_t *vend)
{
    if (i >= len || b[i] != '{')
        return -EBADMSG;
    i++;
    if (i < len && b[i] == '}')
        return 0;
    while (i < len && b[i] == '"') {
        size_t kstart = i + 1, kend = skip_string(b, len, i), end;

        if (!kend || kend >= len || b[kend] != ':')
            return -EBADMSG;
        end = skip_value(b, len, kend + 1);
        if (!end || end >= len)
            return -EBADMSG;
        if (kend - 1 - kstart == n && memcmp(b + kstart, name, n) == 0) {
            *vstart = kend + 1;
            *vend = end;
            return 1;
        }
        if (b[end] == '}')
            return 0;
        if (b[end] != ',')
            return -EBADMSG;
        i = end + 1;
    }
    return -EBADMSG;
}

int kf_obj_path_from_bytes(const char *bytes, size_t len, const char *path, json_t **ret)
{
    size_t start = 0, end = len;
    const char *p = path;

    if (len == 0 || !path || !*path)
        return -EBADMSG;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        int r;

        if (bytes[start] != '{') {
            *ret = NULL;
            return 0; /* a step through a non-object: absent, as kf_json_path says */
        }
        r = find_member(bytes, end, start, p, n, &start, &end);
        if (r <= 0) {
            *ret = NULL;
            return r;
        }
        p += n;
        if (*p == '.')
            p++;
    }
    *ret = json_loadb(bytes + start, end - start, JSON_DECODE_ANY, NULL);
    return *ret ? 1 : -EBADMSG;
}

int kf_obj_labels_from_bytes(const char *bytes, size_t len, json_t **ret)
{
    size_t plen = sizeof(meta_prefix) - 1;
    json_t *labels = NULL;
    int r;

    if (len <= plen || memcmp(bytes, meta_prefix, plen) != 0)
        return -EBADMSG;
    r = kf_obj_path_from_bytes(bytes, len, "metadata.labels", &labels);
    if (r < 0)
        return r;
    if (r == 1 && !json_is_object(labels)) {
        json_decref(labels);
        return -EBADMSG;
    }
    *ret = labels;
    return r;
}
