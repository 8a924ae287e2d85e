/* base-json-patch.c: RFC 6902 JSON patch over jansson (contract in
 * kfleet/json.h), with RFC 6901 JSON pointers.
 *
 * A patch is hostile input, so it is bounded three ways: at most
 * KF_JSON_PATCH_MAX_OPS operations; no operation may make the document
 * deeper than KF_JSON_MAX_DEPTH (checked from the pointer's length and the
 * value's depth before anything is copied, so no recursion ever goes deep);
 * and copies are weighed (nodes plus string bytes) against a budget, so
 * "copy / into /a/b" repeated cannot double the document into gigabytes.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <jansson.h>

#include "kfleet/json.h"
#include "kfleet/strbuf.h"

#define KF_JSON_PATCH_MAX_OPS    10000
#define KF_JSON_PATCH_MAX_WEIGHT (16 * 1024 * 1024)

struct pointer {
    char **tokens;
    size_t n, alloc;
};

static void pointer_release(struct pointer *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->tokens[i]);
    free(p->tokens);
    memset(p, 0, sizeof(*p));
}

/* RFC 6901: "" is the whole document; otherwise "/"-separated tokens with
 * "~1" for "/" and "~0" for "~". */
static int pointer_parse(const char *s, struct pointer *ret)
{
    struct pointer p = { 0 };

    if (*s && *s != '/')
        return -EBADMSG;
    while (*s == '/') {
        struct kf_strbuf tok = KF_STRBUF_INIT;

        s++;
        while (*s && *s != '/') {
            if (*s == '~') {
                if (s[1] == '0')
                    kf_strbuf_addch(&tok, '~');
                else if (s[1] == '1')
                    kf_strbuf_addch(&tok, '/');
                else {
                    kf_strbuf_release(&tok);
                    pointer_release(&p);
                    return -EBADMSG;
                }
                s += 2;
            } else {
                kf_strbuf_addch(&tok, *s++);
            }
        }
        if (p.n >= KF_JSON_MAX_DEPTH) {
            kf_strbuf_release(&tok);
            pointer_release(&p);
            return -E2BIG;
        }
        KF_GROW(p.tokens, p.alloc, p.n);
        p.tokens[p.n++] = kf_strbuf_detach(&tok, NULL);
    }
    *ret = p;
    return 0;
}

/* Array index: "0" or digits without a leading zero, < size (or <= size
 * when inserting). "-" means the end when allowed. */
static int array_index(const char *tok, size_t size, bool insert, size_t *ret)
{
    uint64_t v;

    if (insert && strcmp(tok, "-") == 0) {
        *ret = size;
        return 0;
    }
    if (!*tok || (tok[0] == '0' && tok[1]) || !isdigit((unsigned char)tok[0]))
        return -EINVAL;
    for (const char *p = tok; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
    if (kf_parse_uint64(tok, &v) < 0 || v > (insert ? size : size - 1) || (!insert && !size))
        return -EINVAL;
    *ret = (size_t)v;
    return 0;
}

/* The value at all tokens but the last (the container), or NULL. */
static json_t *resolve(json_t *doc, const struct pointer *p, size_t upto)
{
    json_t *cur = doc;

    for (size_t i = 0; i < upto && cur; i++) {
        if (json_is_object(cur)) {
            cur = json_object_get(cur, p->tokens[i]);
        } else if (json_is_array(cur)) {
            size_t idx;

            if (array_index(p->tokens[i], json_array_size(cur), false, &idx) < 0)
                return NULL;
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
    }
    return cur;
}

/* True if v is nested more than `budget` levels deep (a scalar is 0). */
static bool deeper_than(const json_t *v, int budget)
{
    size_t i;
    const char *k;
    json_t *c;

    if (!json_is_object(v) && !json_is_array(v))
        return false;
    if (budget <= 0)
        return true;
    if (json_is_array(v)) {
        json_array_foreach(v, i, c) if (deeper_than(c, budget - 1)) return true;
    } else {
        json_object_foreach((json_t *)v, k, c) if (deeper_than(c, budget - 1)) return true;
    }
    return false;
}

/* Nodes plus string bytes, counting stops past limit. */
static size_t weigh(const json_t *v, size_t limit)
{
    size_t w = 1, i;
    const char *k;
    json_t *c;

    if (json_is_string(v))
        return 1 + json_string_length(v);
    if (json_is_array(v)) {
        json_array_foreach(v, i, c)
        {
            w += weigh(c, limit - KF_MIN(w, limit));
            if (w > limit)
                return w;
        }
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, c)
        {
            w += strlen(k) + weigh(c, limit - KF_MIN(w, limit));
            if (w > limit)
                return w;
        }
    }
    return w;
}

struct patcher {
    json_t *doc;
    size_t weight; /* of everything copied in so far */
    struct kf_strbuf *err;
    size_t index; /* of the current operation */
    const char *path;
};

static int fail(struct patcher *pt, int code, const char *fmt, ...) KF_PRINTF(3, 4);
static int fail(struct patcher *pt, int code, const char *fmt, ...)
{
    va_list ap;

    if (pt->err) {
        kf_strbuf_reset(pt->err);
        kf_strbuf_addf(pt->err, "operation %zu", pt->index);
        if (pt->path)
            kf_strbuf_addf(pt->err, " (path \"%.200s\")", pt->path);
        kf_strbuf_addstr(pt->err, ": ");
        va_start(ap, fmt);
        kf_strbuf_vaddf(pt->err, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Adds value (reference stolen) at p. */
static int do_add(struct patcher *pt, const struct pointer *p, json_t *value)
{
    json_t *parent;
    const char *last;

    /* A value at a pointer of n tokens sits n levels down. */
    if (deeper_than(value, KF_JSON_MAX_DEPTH - (int)p->n)) {
        json_decref(value);
        return fail(pt, -EINVAL, "the result would be nested deeper than %d levels",
                    KF_JSON_MAX_DEPTH);
    }
    if (p->n == 0) {
        json_decref(pt->doc);
        pt->doc = value;
        return 0;
    }
    parent = resolve(pt->doc, p, p->n - 1);
    last = p->tokens[p->n - 1];
    if (json_is_object(parent)) {
        json_object_set_new(parent, last, value);
        return 0;
    }
    if (json_is_array(parent)) {
        size_t idx;

        if (array_index(last, json_array_size(parent), true, &idx) < 0) {
            json_decref(value);
            return fail(pt, -EINVAL, "\"%.64s\" is not an index from 0 to %zu or \"-\"", last,
                        json_array_size(parent));
        }
        json_array_insert_new(parent, idx, value);
        return 0;
    }
    json_decref(value);
    return fail(pt, -EINVAL, "the parent %s",
                parent ? "is not an object or array" : "does not exist");
}

/* Removes the value at p; returns it (new reference) in *ret if asked. */
static int do_remove(struct patcher *pt, const struct pointer *p, json_t **ret)
{
    json_t *parent, *v;
    const char *last;

    if (p->n == 0)
        return fail(pt, -EINVAL, "cannot remove the whole document");
    parent = resolve(pt->doc, p, p->n - 1);
    last = p->tokens[p->n - 1];
    if (json_is_object(parent)) {
        v = json_object_get(parent, last);
        if (!v)
            return fail(pt, -EINVAL, "there is no member \"%.64s\" to remove", last);
        if (ret)
            *ret = json_incref(v);
        json_object_del(parent, last);
        return 0;
    }
    if (json_is_array(parent)) {
        size_t idx;

        if (array_index(last, json_array_size(parent), false, &idx) < 0)
            return fail(pt, -EINVAL, "\"%.64s\" is not an index of the array (size %zu)", last,
                        json_array_size(parent));
        if (ret)
            *ret = json_incref(json_array_get(parent, idx));
        json_array_remove(parent, idx);
        return 0;
    }
    return fail(pt, -EINVAL, "the path does not exist");
}

/* "add", "replace" or "test" of value at p. */
static int op_add_replace_test(struct patcher *pt, const char *name, struct pointer *p,
                               const json_t *value)
{
    int rc;

    if (!value)
        return fail(pt, -EBADMSG, "\"%s\" needs a \"value\"", name);
    if (!strcmp(name, "test")) {
        json_t *cur = resolve(pt->doc, p, p->n);

        if (!cur)
            return fail(pt, -EINVAL, "test failed: the path does not exist");
        if (!json_equal(cur, value))
            return fail(pt, -EINVAL, "test failed: the value differs");
        return 0;
    }
    if (!strcmp(name, "replace")) {
        if (!resolve(pt->doc, p, p->n))
            return fail(pt, -EINVAL, "there is no value to replace");
        if (p->n > 0 && json_is_array(resolve(pt->doc, p, p->n - 1))) {
            rc = do_remove(pt, p, NULL);
            if (rc < 0)
                return rc;
        }
    }
    return do_add(pt, p, json_deep_copy(value));
}

/* "move" or "copy" of the value at from (parsed into f) to p. */
static int op_move_copy(struct patcher *pt, const char *name, const char *from, const char *path,
                        struct pointer *p, struct pointer *f)
{
    json_t *v;
    size_t w;
    int rc;

    if (!from)
        return fail(pt, -EBADMSG, "\"%s\" needs a \"from\" string", name);
    if (pointer_parse(from, f) < 0)
        return fail(pt, -EBADMSG, "\"from\" \"%.200s\" is not a JSON pointer", from);
    v = resolve(pt->doc, f, f->n);
    if (!v)
        return fail(pt, -EINVAL, "\"from\" \"%.200s\" does not exist", from);
    if (!strcmp(name, "move")) {
        bool prefix = f->n < p->n;

        for (size_t i = 0; i < f->n && i < p->n && prefix; i++)
            prefix = !strcmp(f->tokens[i], p->tokens[i]);
        if (prefix)
            return fail(pt, -EINVAL, "cannot move a value into one of its own children");
        if (!strcmp(from, path))
            return 0;
        rc = do_remove(pt, f, &v);
        if (rc == 0)
            rc = do_add(pt, p, v);
        return rc;
    }
    w = weigh(v, KF_JSON_PATCH_MAX_WEIGHT);
    if (w > KF_JSON_PATCH_MAX_WEIGHT - KF_MIN(pt->weight, KF_JSON_PATCH_MAX_WEIGHT))
        return fail(pt, -EINVAL, "the copies would make the document too large");
    pt->weight += w;
    if (deeper_than(v, KF_JSON_MAX_DEPTH - (int)p->n))
        return fail(pt, -EINVAL, "the result would be nested deeper than %d levels",
                    KF_JSON_MAX_DEPTH);
    return do_add(pt, p, json_deep_copy(v));
}

static int apply_op(struct patcher *pt, const json_t *op)
{
    const char *name = kf_json_str(op, "op", NULL);
    const char *path = kf_json_str(op, "path", NULL);
    const char *from = kf_json_str(op, "from", NULL);
    json_t *value = json_object_get(op, "value");
    struct pointer p = { 0 }, f = { 0 };
    int rc;

    pt->path = path;
    if (!json_is_object(op))
        return fail(pt, -EBADMSG, "an operation must be an object");
    if (!name)
        return fail(pt, -EBADMSG, "\"op\" is missing or not a string");
    if (!path)
        return fail(pt, -EBADMSG, "\"path\" is missing or not a string");
    rc = pointer_parse(path, &p);
    if (rc < 0)
        return fail(pt, -EBADMSG,
                    "\"%.200s\" is not a JSON pointer (\"/a/b/0\"; ~0 and ~1 "
                    "escape ~ and /)",
                    path);
    if (!strcmp(name, "add") || !strcmp(name, "replace") || !strcmp(name, "test"))
        rc = op_add_replace_test(pt, name, &p, value);
    else if (!strcmp(name, "remove"))
        rc = do_remove(pt, &p, NULL);
    else if (!strcmp(name, "move") || !strcmp(name, "copy"))
        rc = op_move_copy(pt, name, from, path, &p, &f);
    else
        rc = fail(pt, -EBADMSG,
                  "unknown op \"%.32s\": use add, remove, replace, move, copy "
                  "or test",
                  name);
    pointer_release(&p);
    pointer_release(&f);
    return rc;
}

int kf_json_patch(const json_t *doc, const json_t *ops, json_t **ret, struct kf_strbuf *err)
{
    struct patcher pt = { .err = err };
    size_t i;
    json_t *op;

    if (!json_is_array(ops))
        return kf_err(err, -EBADMSG, "a JSON patch must be an array of operations");
    if (json_array_size(ops) > KF_JSON_PATCH_MAX_OPS)
        return kf_err(err, -EBADMSG, "a JSON patch may have at most %d operations",
                      KF_JSON_PATCH_MAX_OPS);
    pt.doc = json_deep_copy(doc);
    json_array_foreach(ops, i, op)
    {
        int rc;

        pt.index = i;
        pt.path = NULL;
        rc = apply_op(&pt, op);
        if (rc < 0) {
            json_decref(pt.doc);
            return rc;
        }
    }
    *ret = pt.doc;
    return 0;
}
