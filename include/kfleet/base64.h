/* base64.h: standard base64 (RFC 4648 §4, with padding), as etcd's JSON
 * gateway and PKI files use it. */
#ifndef KF_BASE64_H
#define KF_BASE64_H

#include "kfleet/base.h"

struct kf_strbuf;

/* Appends the encoding of data[0..len) to out. Returns 0, or -E2BIG when
 * out's cap would be passed (nothing appended then). */
int kf_base64_encode(struct kf_strbuf *out, const void *data, size_t len);
/* Appends the bytes that text[0..len) encodes to out. Padding is optional;
 * whitespace is not allowed. Returns 0, -EINVAL for anything that is not
 * base64 (out unchanged then), or -E2BIG at out's cap. */
int kf_base64_decode(struct kf_strbuf *out, const char *text, size_t len);

#endif
