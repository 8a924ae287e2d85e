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

/* A byte's value as a base64 digit plus one; 0: not a digit. */
#define D(c, v) [(unsigned char)(c)] = (v) + 1
static const unsigned char digit1[256] = {
    D('A', 0),  D('B', 1),  D('C', 2),  D('D', 3),  D('E', 4),  D('F', 5),  D('G', 6),  D('H', 7),
    D('I', 8),  D('J', 9),  D('K', 10), D('L', 11), D('M', 12), D('N', 13), D('O', 14), D('P', 15),
    D('Q', 16), D('R', 17), D('S', 18), D('T', 19), D('U', 20), D('V', 21), D('W', 22), D('X', 23),
    D('Y', 24), D('Z', 25), D('a', 26), D('b', 27), D('c', 28), D('d', 29), D('e', 30), D('f', 31),
    D('g', 32), D('h', 33), D('i', 34), D('j', 35), D('k', 36), D('l', 37), D('m', 38), D('n', 39),
    D('o', 40), D('p', 41), D('q', 42), D('r', 43), D('s', 44), D('t', 45), D('u', 46), D('v', 47),
    D('w', 48), D('x', 49), D('y', 50), D('z', 51), D('0', 52), D('1', 53), D('2', 54), D('3', 55),
    D('4', 56), D('5', 57), D('6', 58), D('7', 59), D('8', 60), D('9', 61), D('+', 62), D('/', 63)
};
#undef D

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
            unsigned d = k < n ? digit1[(unsigned char)text[i + k]] : 1;

            if (d == 0) {
                kf_strbuf_setlen(out, start);
                return -EINVAL;
            }
            v = v << 6 | (d - 1);
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
