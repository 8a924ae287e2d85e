/* etcd-scan-ref.h: what kf_etcd_scan_range must read from a range answer,
 * worked out with jansson (the parser the etcd store used before the
 * scanner), for tests/unit/test-etcd-scan.c and tests/fuzz/fuzz-etcd-range.c.
 *
 * etcd_scan_ref(body, len, out) parses body with jansson, rejecting
 * duplicate member names (the two readers may keep different ones), and
 * applies the scanner's contract (kfleet/etcd.h): 0 and the expected kvs,
 * revision, more and count; -EBADMSG where the scanner must refuse; 1 where
 * jansson's reading is its own (invalid UTF-8, NUL escapes or bytes,
 * numbers too big for jansson, duplicate names): no verdict then.
 */
#ifndef KF_ETCD_SCAN_REF_H
#define KF_ETCD_SCAN_REF_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/etcd.h"
#include "kfleet/strbuf.h"

struct etcd_scan_ref_kv {
    char *key, *value; /* base64 text, NUL-terminated copies */
    size_t key_len, value_len;
    int64_t create_rev, mod_rev;
};

struct etcd_scan_ref {
    struct etcd_scan_ref_kv *kvs;
    size_t n, alloc;
    struct kf_etcd_scanned_range range;
};

static inline void etcd_scan_ref_release(struct etcd_scan_ref *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->kvs[i].key);
        free(r->kvs[i].value);
    }
    free(r->kvs);
    memset(r, 0, sizeof(*r));
}

/* An int64 as the gateway writes it: a string or an integer. */
static inline int etcd_scan_ref_int(const json_t *v, int64_t *ret)
{
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *ret = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 32 &&
        strlen(json_string_value(v)) == json_string_length(v) &&
        kf_parse_int64(json_string_value(v), ret) == 0)
        return 0;
    return -EBADMSG;
}

static inline int etcd_scan_ref_str(const json_t *v, char **ret, size_t *ret_len)
{
    if (!v) {
        *ret = kf_xstrdup("");
        *ret_len = 0;
        return 0;
    }
    if (!json_is_string(v))
        return -EBADMSG;
    *ret_len = json_string_length(v);
    *ret = kf_xmalloc(*ret_len + 1);
    memcpy(*ret, json_string_value(v), *ret_len + 1);
    return 0;
}

/* The deepest value's depth (the top value is at 0). */
static inline int etcd_scan_ref_depth(const json_t *v)
{
    int d = 0;

    if (json_is_object(v)) {
        const char *k;
        json_t *x;

        json_object_foreach((json_t *)v, k, x) d = KF_MAX(d, 1 + etcd_scan_ref_depth(x));
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;

        json_array_foreach(v, i, x) d = KF_MAX(d, 1 + etcd_scan_ref_depth(x));
    }
    return d;
}

static inline int etcd_scan_ref(const char *body, size_t len, struct etcd_scan_ref *out)
{
    json_error_t jerr;
    json_t *top = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *v, *kv;
    size_t i;
    int r = -EBADMSG;

    memset(out, 0, sizeof(*out));
    if (memchr(body, '\0', len)) {
        /* JSON has no raw NUL; jansson reads past some (its buffer is
         * NUL-terminated), the scanner refuses them all */
        json_decref(top);
        return 1;
    }
    if (!top) {
        /* text jansson refuses and the scanner also must: not JSON, or a top
         * value that is not an object; or with no verdict: what jansson
         * refuses for reasons of its own (UTF-8, NUL, number sizes,
         * duplicate names) */
        switch (json_error_code(&jerr)) {
        case json_error_invalid_utf8:
        case json_error_null_character:
        case json_error_null_byte_in_key:
        case json_error_duplicate_key:
        case json_error_numeric_overflow:
            return 1;
        default:
            return -EBADMSG;
        }
    }
    if (!json_is_object(top) || json_object_get(top, "error") ||
        etcd_scan_ref_depth(top) > KF_ETCD_SCAN_MAX_DEPTH)
        goto out;
    v = json_object_get(top, "header");
    if (v && (!json_is_object(v) ||
              etcd_scan_ref_int(json_object_get(v, "revision"), &out->range.header_rev) < 0))
        goto out;
    v = json_object_get(top, "more");
    if (v && !json_is_boolean(v))
        goto out;
    out->range.more = json_is_true(v);
    if (etcd_scan_ref_int(json_object_get(top, "count"), &out->range.count) < 0)
        goto out;
    v = json_object_get(top, "kvs");
    if (v && !json_is_array(v))
        goto out;
    json_array_foreach(v, i, kv)
    {
        struct etcd_scan_ref_kv x = { 0 };

        if (!json_is_object(kv))
            goto out;
        KF_GROW(out->kvs, out->alloc, out->n);
        if (etcd_scan_ref_int(json_object_get(kv, "create_revision"), &x.create_rev) < 0 ||
            etcd_scan_ref_int(json_object_get(kv, "mod_revision"), &x.mod_rev) < 0 ||
            etcd_scan_ref_str(json_object_get(kv, "key"), &x.key, &x.key_len) < 0 ||
            etcd_scan_ref_str(json_object_get(kv, "value"), &x.value, &x.value_len) < 0) {
            free(x.key);
            goto out;
        }
        out->kvs[out->n++] = x;
    }
    out->range.n_kvs = out->n;
    r = 0;
out:
    json_decref(top);
    if (r < 0)
        etcd_scan_ref_release(out);
    return r;
}

/* kf_etcd_scan_range's kvs, collected. */
static inline int etcd_scan_ref_collect(void *arg, const struct kf_etcd_scanned_kv *kv)
{
    struct etcd_scan_ref *c = arg;
    struct etcd_scan_ref_kv x = { .key_len = kv->key_len,
                                  .value_len = kv->value_len,
                                  .create_rev = kv->create_rev,
                                  .mod_rev = kv->mod_rev };

    x.key = kf_xmalloc(kv->key_len + 1);
    memcpy(x.key, kv->key, kv->key_len);
    x.key[kv->key_len] = '\0';
    x.value = kf_xmalloc(kv->value_len + 1);
    memcpy(x.value, kv->value, kv->value_len);
    x.value[kv->value_len] = '\0';
    KF_GROW(c->kvs, c->alloc, c->n);
    c->kvs[c->n++] = x;
    return 0;
}

/* Scans body and checks the scanner against the reference: aborts on any
 * difference. Returns the scanner's result. */
static inline int etcd_scan_ref_check(const char *body, size_t len)
{
    struct etcd_scan_ref want, got = { 0 };
    struct kf_etcd_scanned_range range = { 0 };
    int rw = etcd_scan_ref(body, len, &want);
    int rg = kf_etcd_scan_range(body, len, etcd_scan_ref_collect, &got, &range);

    if (rg < 0)
        etcd_scan_ref_release(&got);
    if (rw == 1)
        goto out; /* no verdict */
    if (rg != rw)
        kf_abort("scanner returned %d, jansson's reading %d, for: %.*s", rg, rw,
                 (int)KF_MIN(len, 400), body);
    if (rg < 0)
        goto out;
    kf_assert(range.header_rev == want.range.header_rev);
    kf_assert(range.count == want.range.count);
    kf_assert(range.more == want.range.more);
    kf_assert(range.n_kvs == want.n && got.n == want.n);
    for (size_t i = 0; i < want.n; i++) {
        kf_assert(got.kvs[i].key_len == want.kvs[i].key_len);
        kf_assert(memcmp(got.kvs[i].key, want.kvs[i].key, want.kvs[i].key_len) == 0);
        kf_assert(got.kvs[i].value_len == want.kvs[i].value_len);
        kf_assert(memcmp(got.kvs[i].value, want.kvs[i].value, want.kvs[i].value_len) == 0);
        kf_assert(got.kvs[i].create_rev == want.kvs[i].create_rev);
        kf_assert(got.kvs[i].mod_rev == want.kvs[i].mod_rev);
    }
out:
    etcd_scan_ref_release(&want);
    etcd_scan_ref_release(&got);
    return rg;
}

#endif
