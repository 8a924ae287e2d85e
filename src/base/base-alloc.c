/* base-alloc.c: allocation wrappers that abort on out-of-memory, assertion
 * failure reporting, and other small things every module needs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/random.h>

#include "kfleet/base.h"

void kf_abort(const char *fmt, ...)
{
    va_list ap;

    fputs("kfleet: fatal: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void kf_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    kf_abort("assertion \"%s\" failed in %s() at %s:%d", expr, func, file, line);
}

void *kf_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p)
        kf_abort("out of memory allocating %zu bytes", size);
    return p;
}

void *kf_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

    if (!p)
        kf_abort("out of memory allocating %zu x %zu bytes", nmemb, size);
    return p;
}

void *kf_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (!p)
        kf_abort("out of memory reallocating to %zu bytes", size);
    return p;
}

char *kf_xstrdup(const char *s)
{
    return kf_xmemdup(s, strlen(s) + 1);
}

char *kf_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = kf_xmalloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *kf_xmemdup(const void *p, size_t n)
{
    void *q = kf_xmalloc(n);

    if (n)
        memcpy(q, p, n);
    return q;
}

char *kf_xvasprintf(const char *fmt, va_list ap)
{
    char *s;

    if (vasprintf(&s, fmt, ap) < 0)
        kf_abort("out of memory formatting a string");
    return s;
}

char *kf_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = kf_xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

void kf_grow(void **items, size_t *alloc, size_t n, size_t elem_size)
{
    size_t want;

    if (n < *alloc)
        return;
    want = *alloc ? *alloc * 2 : 8;
    while (want <= n)
        want *= 2;
    if (want > SIZE_MAX / elem_size)
        kf_abort("array of %zu elements of %zu bytes is too large", want, elem_size);
    *items = kf_xrealloc(*items, want * elem_size);
    *alloc = want;
}

bool kf_str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool kf_str_has_suffix(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);

    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

bool kf_streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

int kf_strp_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void kf_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;

    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            kf_abort("getrandom failed: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
}

void kf_uuid(char buf[37])
{
    unsigned char b[16];

    kf_random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}
