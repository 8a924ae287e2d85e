/* strbuf.h: kfleet's one growable string buffer.
 *
 * Invariants:
 *   - buf is never NULL and always NUL-terminated; buf[len] == '\0';
 *   - len < alloc whenever alloc > 0; an empty buffer points at a shared "";
 *   - with cap > 0, len never exceeds cap: an append that would pass it
 *     appends nothing, sets `overflowed` and returns -E2BIG. Use a cap for
 *     every buffer whose size a client controls.
 */
#ifndef KF_STRBUF_H
#define KF_STRBUF_H

#include "kfleet/base.h"

struct kf_strbuf {
    char *buf;
    size_t len;
    size_t alloc;
    size_t cap;      /* 0: no cap */
    bool overflowed; /* an append hit the cap */
};

extern char kf_strbuf_empty[];
#define KF_STRBUF_INIT         \
    {                          \
        .buf = kf_strbuf_empty \
    }

void kf_strbuf_init(struct kf_strbuf *sb, size_t hint);
/* Frees the memory and leaves an empty buffer (cap kept). NULL is fine. */
void kf_strbuf_release(struct kf_strbuf *sb);
/* Empties without freeing. */
void kf_strbuf_reset(struct kf_strbuf *sb);
/* Takes the string out; the buffer becomes empty. Caller frees. */
char *kf_strbuf_detach(struct kf_strbuf *sb, size_t *ret_len);
void kf_strbuf_grow(struct kf_strbuf *sb, size_t extra);

int kf_strbuf_add(struct kf_strbuf *sb, const void *data, size_t len);
int kf_strbuf_addstr(struct kf_strbuf *sb, const char *s);
int kf_strbuf_addch(struct kf_strbuf *sb, char c);
int kf_strbuf_addf(struct kf_strbuf *sb, const char *fmt, ...) KF_PRINTF(2, 3);
int kf_strbuf_vaddf(struct kf_strbuf *sb, const char *fmt, va_list ap) KF_PRINTF(2, 0);
/* Appends s as a JSON string literal, quotes included. */
int kf_strbuf_add_json_str(struct kf_strbuf *sb, const char *s);
void kf_strbuf_setlen(struct kf_strbuf *sb, size_t len);
void kf_strbuf_rtrim(struct kf_strbuf *sb);

/* Sets the human-readable error detail if err is not NULL (replacing any
 * earlier text) and returns `code` so callers can write
 * `return kf_err(err, -EINVAL, "bad %s", x);`. */
int kf_err(struct kf_strbuf *err, int code, const char *fmt, ...) KF_PRINTF(3, 4);

#endif
