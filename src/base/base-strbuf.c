/* base-strbuf.c: the growable string buffer (invariants in strbuf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/strbuf.h"

char kf_strbuf_empty[1];

void kf_strbuf_init(struct kf_strbuf *sb, size_t hint)
{
    *sb = (struct kf_strbuf)KF_STRBUF_INIT;
    if (hint)
        kf_strbuf_grow(sb, hint);
}

void kf_strbuf_release(struct kf_strbuf *sb)
{
    size_t cap;

    if (!sb)
        return;
    cap = sb->cap;
    if (sb->alloc)
        free(sb->buf);
    *sb = (struct kf_strbuf)KF_STRBUF_INIT;
    sb->cap = cap;
}

void kf_strbuf_reset(struct kf_strbuf *sb)
{
    sb->len = 0;
    sb->overflowed = false;
    if (sb->alloc)
        sb->buf[0] = '\0';
}

char *kf_strbuf_detach(struct kf_strbuf *sb, size_t *ret_len)
{
    char *s;

    if (ret_len)
        *ret_len = sb->len;
    s = sb->alloc ? sb->buf : kf_xstrdup("");
    sb->buf = kf_strbuf_empty;
    sb->len = sb->alloc = 0;
    sb->overflowed = false;
    return s;
}

void kf_strbuf_grow(struct kf_strbuf *sb, size_t extra)
{
    size_t want;

    if (extra > SIZE_MAX - sb->len - 1)
        kf_abort("string buffer would overflow size_t");
    want = sb->len + extra + 1;
    if (want <= sb->alloc)
        return;
    if (!sb->alloc)
        sb->buf = NULL;
    if (want < sb->alloc * 3 / 2)
        want = sb->alloc * 3 / 2;
    if (want < 64)
        want = 64;
    sb->buf = kf_xrealloc(sb->buf, want);
    if (!sb->alloc)
        sb->buf[0] = '\0';
    sb->alloc = want;
}

static int over_cap(struct kf_strbuf *sb, size_t len)
{
    if (sb->cap && (len > sb->cap || sb->len > sb->cap - len)) {
        sb->overflowed = true;
        return -E2BIG;
    }
    return 0;
}

int kf_strbuf_add(struct kf_strbuf *sb, const void *data, size_t len)
{
    if (over_cap(sb, len))
        return -E2BIG;
    if (!len)
        return 0;
    kf_strbuf_grow(sb, len);
    memcpy(sb->buf + sb->len, data, len);
    sb->len += len;
    sb->buf[sb->len] = '\0';
    return 0;
}

int kf_strbuf_addstr(struct kf_strbuf *sb, const char *s)
{
    return kf_strbuf_add(sb, s, strlen(s));
}

int kf_strbuf_addch(struct kf_strbuf *sb, char c)
{
    return kf_strbuf_add(sb, &c, 1);
}

int kf_strbuf_vaddf(struct kf_strbuf *sb, const char *fmt, va_list ap)
{
    va_list cp;
    int n;

    va_copy(cp, ap);
    n = vsnprintf(sb->alloc ? sb->buf + sb->len : NULL, sb->alloc ? sb->alloc - sb->len : 0, fmt,
                  cp);
    va_end(cp);
    if (n < 0)
        kf_abort("vsnprintf failed for format \"%s\"", fmt);
    if (over_cap(sb, (size_t)n)) {
        if (sb->alloc)
            sb->buf[sb->len] = '\0';
        return -E2BIG;
    }
    if (!sb->alloc || (size_t)n >= sb->alloc - sb->len) {
        kf_strbuf_grow(sb, (size_t)n);
        n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, ap);
    }
    sb->len += (size_t)n;
    return 0;
}

int kf_strbuf_addf(struct kf_strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = kf_strbuf_vaddf(sb, fmt, ap);
    va_end(ap);
    return r;
}

int kf_strbuf_add_json_str(struct kf_strbuf *sb, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t start = sb->len;

    if (kf_strbuf_addch(sb, '"'))
        return -E2BIG;
    for (; *p; p++) {
        int r;

        switch (*p) {
        case '"':
            r = kf_strbuf_add(sb, "\\\"", 2);
            break;
        case '\\':
            r = kf_strbuf_add(sb, "\\\\", 2);
            break;
        case '\n':
            r = kf_strbuf_add(sb, "\\n", 2);
            break;
        case '\r':
            r = kf_strbuf_add(sb, "\\r", 2);
            break;
        case '\t':
            r = kf_strbuf_add(sb, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                char esc[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };

                r = kf_strbuf_add(sb, esc, 6);
            } else {
                r = kf_strbuf_addch(sb, (char)*p);
            }
        }
        if (r) {
            kf_strbuf_setlen(sb, start);
            return r;
        }
    }
    if (kf_strbuf_addch(sb, '"')) {
        kf_strbuf_setlen(sb, start);
        return -E2BIG;
    }
    return 0;
}

void kf_strbuf_setlen(struct kf_strbuf *sb, size_t len)
{
    kf_assert(len <= sb->len);
    sb->len = len;
    if (sb->alloc)
        sb->buf[len] = '\0';
}

void kf_strbuf_rtrim(struct kf_strbuf *sb)
{
    while (sb->len && (sb->buf[sb->len - 1] == ' ' || sb->buf[sb->len - 1] == '\n' ||
                       sb->buf[sb->len - 1] == '\t' || sb->buf[sb->len - 1] == '\r'))
        sb->len--;
    if (sb->alloc)
        sb->buf[sb->len] = '\0';
}

int kf_err(struct kf_strbuf *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    kf_strbuf_reset(err);
    va_start(ap, fmt);
    kf_strbuf_vaddf(err, fmt, ap);
    va_end(ap);
    return code;
}
