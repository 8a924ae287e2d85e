/* store-etcd-scan.c: reads etcd's answer to a range (/v3/kv/range) without
 * building a JSON tree.
 *
 * A LIST of 10,000 GuestClusters on the etcd store is one range of ~6.7 MiB
 * of JSON: the gateway's encoding of every key and value in base64, with
 * the revisions as strings. Parsing it into a jansson tree and reading the
 * strings back out took more time than etcd took to send it (70 % of
 * kfleetd's CPU for the LIST; docs/BENCHMARKS.md). This scanner walks the
 * text once, validates it as JSON, and hands each kv's fields to the caller
 * as pointers into the body; what it does not know (fields a newer etcd
 * adds, nested objects) it skips, checked but not kept.
 *
 * Strings the caller gets are the raw JSON text between the quotes; a
 * string with an escape in it (the gateway writes none in base64, but JSON
 * allows "\/") is unescaped into a buffer the scanner owns until the
 * callback returns. Member names are compared unescaped too, so the scanner
 * reads what a JSON parser would (tests/unit/test-etcd-scan.c and
 * tests/fuzz/fuzz-etcd-range.c hold it to jansson's reading).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/etcd.h"
#include "kfleet/strbuf.h"

struct scan {
    const char *p, *end;
    /* strings that had escapes, unescaped: a kv's key and value, a member
     * name, an integer written as a string */
    struct kf_strbuf tmp[4];
};

enum { TMP_KEY, TMP_VALUE, TMP_NAME, TMP_INT };

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool eat(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

static int hex4(const char *p, unsigned *ret)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -EBADMSG;
    }
    *ret = v;
    return 0;
}

/* A string at s->p (the opening quote): *ret and *ret_len are its raw text, and
 * *ret_esc whether it has escapes. -EBADMSG when it is not a JSON string. */
static int string_raw(struct scan *s, const char **ret, size_t *ret_len, bool *ret_esc)
{
    const char *q;
    bool esc = false;

    skip_ws(s);
    if (s->p >= s->end || *s->p != '"')
        return -EBADMSG;
    q = ++s->p;
    for (;;) {
        const char *stop = q;

        while (stop < s->end && *stop != '"' && *stop != '\\' && (unsigned char)*stop >= 0x20)
            stop++;
        if (stop >= s->end || (unsigned char)*stop < 0x20)
            return -EBADMSG;
        if (*stop == '"') {
            *ret = s->p;
            *ret_len = (size_t)(stop - s->p);
            *ret_esc = esc;
            s->p = stop + 1;
            return 0;
        }
        /* a backslash: a valid escape, skipped over */
        esc = true;
        if (stop + 1 >= s->end)
            return -EBADMSG;
        if (stop[1] == 'u') {
            unsigned v, lo;

            if (s->end - stop < 6 || hex4(stop + 2, &v) < 0 || (v >= 0xdc00 && v <= 0xdfff))
                return -EBADMSG;
            q = stop + 6;
            if (v >= 0xd800 && v <= 0xdbff) {
                /* a high surrogate: a low one must follow */
                if (s->end - q < 6 || q[0] != '\\' || q[1] != 'u' || hex4(q + 2, &lo) < 0 ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return -EBADMSG;
                q += 6;
            }
        } else if (stop[1] && strchr("\"\\/bfnrt", stop[1])) {
            q = stop + 2;
        } else {
            return -EBADMSG;
        }
    }
}

/* Unescapes a raw string that string_raw checked into out, code points
 * above 0x7f as UTF-8 (a surrogate pair as one code point). */
static void unescape(const char *raw, size_t len, struct kf_strbuf *out)
{
    const char *p = raw, *end = raw + len;

    kf_strbuf_reset(out);
    while (p < end) {
        unsigned v;

        if (*p != '\\') {
            kf_strbuf_add(out, p++, 1);
            continue;
        }
        switch (p[1]) {
        case 'b':
            kf_strbuf_addch(out, '\b');
            break;
        case 'f':
            kf_strbuf_addch(out, '\f');
            break;
        case 'n':
            kf_strbuf_addch(out, '\n');
            break;
        case 'r':
            kf_strbuf_addch(out, '\r');
            break;
        case 't':
            kf_strbuf_addch(out, '\t');
            break;
        case 'u':
            hex4(p + 2, &v); /* checked by string_raw */
            if (v >= 0xd800 && v <= 0xdbff) {
                unsigned lo;

                hex4(p + 8, &lo);
                v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
                kf_strbuf_addch(out, (char)(0xf0 | v >> 18));
                kf_strbuf_addch(out, (char)(0x80 | ((v >> 12) & 0x3f)));
                kf_strbuf_addch(out, (char)(0x80 | ((v >> 6) & 0x3f)));
                kf_strbuf_addch(out, (char)(0x80 | (v & 0x3f)));
                p += 12;
                continue;
            }
            if (v < 0x80) {
                kf_strbuf_addch(out, (char)v);
            } else if (v < 0x800) {
                kf_strbuf_addch(out, (char)(0xc0 | v >> 6));
                kf_strbuf_addch(out, (char)(0x80 | (v & 0x3f)));
            } else {
                kf_strbuf_addch(out, (char)(0xe0 | v >> 12));
                kf_strbuf_addch(out, (char)(0x80 | ((v >> 6) & 0x3f)));
                kf_strbuf_addch(out, (char)(0x80 | (v & 0x3f)));
            }
            p += 6;
            continue;
        default: /* " \ / */
            kf_strbuf_addch(out, p[1]);
            break;
        }
        p += 2;
    }
}

/* A string's value: raw text, or unescaped into tmp. */
static int string_value(struct scan *s, struct kf_strbuf *tmp, const char **ret, size_t *ret_len)
{
    const char *raw;
    size_t len;
    bool esc;
    int r = string_raw(s, &raw, &len, &esc);

    if (r < 0)
        return r;
    if (esc) {
        unescape(raw, len, tmp);
        raw = tmp->buf;
        len = tmp->len;
    }
    *ret = raw;
    *ret_len = len;
    return 0;
}

static int skip_value(struct scan *s, int depth);

static int skip_number(struct scan *s)
{
    const char *p = s->p;

    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end || *p < '0' || *p > '9')
        return -EBADMSG;
    if (*p == '0')
        p++;
    else
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return -EBADMSG;
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return -EBADMSG;
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    s->p = p;
    return 0;
}

static int skip_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -EBADMSG;
    s->p += n;
    return 0;
}

/* Walks the members of an object (s->p after its '{'), calling
 * member(s, arg, name, name_len, depth) on each; member consumes the value. */
static int each_member(struct scan *s, int depth,
                       int (*member)(struct scan *s, void *arg, const char *name, size_t len,
                                     int depth),
                       void *arg)
{
    if (eat(s, '}'))
        return 0;
    for (;;) {
        const char *name;
        size_t len;
        int r = string_value(s, &s->tmp[TMP_NAME], &name, &len);

        if (r < 0)
            return r;
        if (!eat(s, ':'))
            return -EBADMSG;
        r = member(s, arg, name, len, depth + 1);
        if (r < 0)
            return r;
        if (eat(s, '}'))
            return 0;
        if (!eat(s, ','))
            return -EBADMSG;
    }
}

static int skip_member(struct scan *s, void *arg, const char *name, size_t len, int depth)
{
    (void)arg;
    (void)name;
    (void)len;
    return skip_value(s, depth);
}

static int skip_value(struct scan *s, int depth)
{
    const char *raw;
    size_t len;
    bool esc;

    if (depth > KF_ETCD_SCAN_MAX_DEPTH)
        return -EBADMSG;
    skip_ws(s);
    if (s->p >= s->end)
        return -EBADMSG;
    switch (*s->p) {
    case '"':
        return string_raw(s, &raw, &len, &esc);
    case '{':
        s->p++;
        return each_member(s, depth, skip_member, NULL);
    case '[':
        s->p++;
        if (eat(s, ']'))
            return 0;
        for (;;) {
            int r = skip_value(s, depth + 1);

            if (r < 0)
                return r;
            if (eat(s, ']'))
                return 0;
            if (!eat(s, ','))
                return -EBADMSG;
        }
    case 't':
        return skip_literal(s, "true");
    case 'f':
        return skip_literal(s, "false");
    case 'n':
        return skip_literal(s, "null");
    default:
        return skip_number(s);
    }
}

static bool is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

/* An int64 the gateway writes as a string ("123") or a number; a value of
 * another type, or out of range, is -EBADMSG. */
static int int_value(struct scan *s, int64_t *ret)
{
    char buf[32];
    const char *raw = NULL;
    size_t len;
    int r;

    skip_ws(s);
    if (s->p < s->end && *s->p == '"') {
        r = string_value(s, &s->tmp[TMP_INT], &raw, &len);
        if (r < 0)
            return r;
    } else {
        raw = s->p;
        r = skip_number(s);
        if (r < 0)
            return r;
        len = (size_t)(s->p - raw);
    }
    if (len == 0 || len >= sizeof(buf) || memchr(raw, '\0', len))
        return -EBADMSG;
    memcpy(buf, raw, len);
    buf[len] = '\0';
    return kf_parse_int64(buf, ret) < 0 ? -EBADMSG : 0;
}

struct range_run {
    struct scan *s;
    struct kf_etcd_scanned_range *out;
    int (*on_kv)(void *arg, const struct kf_etcd_scanned_kv *kv);
    void *arg;
    struct kf_etcd_scanned_kv kv;
    bool saw_error;
};

static int header_member(struct scan *s, void *arg, const char *name, size_t len, int depth)
{
    struct range_run *rr = arg;

    if (is(name, len, "revision"))
        return int_value(s, &rr->out->header_rev);
    return skip_value(s, depth);
}

static int kv_member(struct scan *s, void *arg, const char *name, size_t len, int depth)
{
    struct range_run *rr = arg;
    struct kf_etcd_scanned_kv *kv = &rr->kv;

    if (is(name, len, "key"))
        return string_value(s, &s->tmp[TMP_KEY], &kv->key, &kv->key_len);
    if (is(name, len, "value"))
        return string_value(s, &s->tmp[TMP_VALUE], &kv->value, &kv->value_len);
    if (is(name, len, "create_revision"))
        return int_value(s, &kv->create_rev);
    if (is(name, len, "mod_revision"))
        return int_value(s, &kv->mod_rev);
    return skip_value(s, depth);
}

static int kvs_value(struct range_run *rr, int depth)
{
    struct scan *s = rr->s;

    if (!eat(s, '['))
        return -EBADMSG;
    if (eat(s, ']'))
        return 0;
    for (;;) {
        int r;

        memset(&rr->kv, 0, sizeof(rr->kv));
        rr->kv.key = rr->kv.value = "";
        if (!eat(s, '{'))
            return -EBADMSG;
        r = each_member(s, depth + 1, kv_member, rr);
        if (r < 0)
            return r;
        r = rr->on_kv(rr->arg, &rr->kv);
        if (r < 0)
            return r;
        rr->out->n_kvs++;
        if (eat(s, ']'))
            return 0;
        if (!eat(s, ','))
            return -EBADMSG;
    }
}

static int top_member(struct scan *s, void *arg, const char *name, size_t len, int depth)
{
    struct range_run *rr = arg;

    if (is(name, len, "header")) {
        if (!eat(s, '{'))
            return -EBADMSG;
        return each_member(s, depth, header_member, rr);
    }
    if (is(name, len, "kvs"))
        return kvs_value(rr, depth);
    if (is(name, len, "more")) {
        skip_ws(s);
        if (skip_literal(s, "true") == 0) {
            rr->out->more = true;
            return 0;
        }
        return skip_literal(s, "false");
    }
    if (is(name, len, "count"))
        return int_value(s, &rr->out->count);
    if (is(name, len, "error"))
        rr->saw_error = true;
    return skip_value(s, depth);
}

int kf_etcd_scan_range(const char *body, size_t len,
                       int (*on_kv)(void *arg, const struct kf_etcd_scanned_kv *kv), void *arg,
                       struct kf_etcd_scanned_range *ret)
{
    struct scan s = { .p = body, .end = body + len, .tmp = { KF_STRBUF_INIT, KF_STRBUF_INIT } };
    struct kf_etcd_scanned_range out = { 0 };
    struct range_run rr = { .s = &s, .out = &out, .on_kv = on_kv, .arg = arg };
    int r;

    for (size_t i = 0; i < KF_ARRAY_SIZE(s.tmp); i++)
        kf_strbuf_init(&s.tmp[i], 0);
    if (!eat(&s, '{')) {
        r = -EBADMSG;
        goto release_tmp;
    }
    r = each_member(&s, 0, top_member, &rr);
    if (r < 0)
        goto release_tmp;
    skip_ws(&s);
    if (s.p != s.end || rr.saw_error) {
        r = -EBADMSG;
        goto release_tmp;
    }
    *ret = out;
release_tmp:
    for (size_t i = 0; i < KF_ARRAY_SIZE(s.tmp); i++)
        kf_strbuf_release(&s.tmp[i]);
    return r;
}
