/* base-base64.c: base64 encoding and strict decoding (contract in
 * kfleet/base64.h). Small and table-driven; decoding refuses anything that
 * is not canonical enough to be trusted (stray characters, bad padding). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/base64.h"
#include "kfleet/strbuf.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int kf_base64_encode(struct kf_strbuf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t olen = (len + 2) / 3 * 4, start = out->len;
    char *o;
    size_t i;

    if (len > (SIZE_MAX / 4) * 3 - 3)
        return -E2BIG;
    if (out->cap && (olen > out->cap || out->len > out->cap - olen)) {
        out->overflowed = true;
        return -E2BIG;
    }
    kf_strbuf_grow(out, olen);
    o = out->buf + start;
    for (i = 0; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];

        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = alphabet[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);

        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    out->len = start + olen;
    out->buf[out->len] = '\0';
    return 0;
}

static int digit(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int kf_base64_decode(struct kf_strbuf *out, const char *text, size_t len)
{
    size_t start = out->len, olen, i;
    unsigned char *o;

    /* strip up to two '=' of padding; with padding the length is exact */
    if (len % 4 == 0 && len >= 4) {
        if (text[len - 1] == '=')
            len--;
        if (text[len - 1] == '=')
            len--;
    }
    if (len % 4 == 1)
        return -EINVAL;
    olen = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (out->cap && (olen > out->cap || out->len > out->cap - olen)) {
        out->overflowed = true;
        return -E2BIG;
    }
    kf_strbuf_grow(out, olen);
    o = (unsigned char *)out->buf + start;
    for (i = 0; i < len; i += 4) {
        size_t n = KF_MIN(4, len - i);
        unsigned v = 0;

        for (size_t k = 0; k < 4; k++) {
            int d = k < n ? digit(text[i + k]) : 0;

            if (d < 0) {
                kf_strbuf_setlen(out, start);
                return -EINVAL;
            }
            v = v << 6 | (unsigned)d;
        }
        *o++ = (unsigned char)(v >> 16);
        if (n > 2)
            *o++ = (unsigned char)(v >> 8);
        if (n > 3)
            *o++ = (unsigned char)v;
    }
    out->len = start + olen;
    out->buf[out->len] = '\0';
    return 0;
}
