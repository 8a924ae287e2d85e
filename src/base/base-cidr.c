/* base-cidr.c: strict parsing, canonical formatting and arithmetic of IPv4
 * and IPv6 CIDR blocks (contract in kfleet/cidr.h).
 *
 * Addresses go through inet_pton/inet_ntop, which are strict (no leading
 * zeros in IPv4 octets, no short forms like "10.1") and write the RFC 5952
 * form; this file adds the prefix, the host-bits check and 128-bit math.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kfleet/cidr.h"
#include "kfleet/strbuf.h"

static kf_u128 mask_of(unsigned bits, unsigned prefix)
{
    kf_u128 all = bits == 128 ? ~(kf_u128)0 : (((kf_u128)1 << bits) - 1);

    if (prefix == 0)
        return 0;
    return all & ~((((kf_u128)1) << (bits - prefix)) - 1);
}

unsigned kf_cidr_bits(const struct kf_cidr *c)
{
    return c->family == 6 ? 128 : 32;
}

static int parse_addr(const char *s, size_t len, struct kf_cidr *ret)
{
    char buf[KF_CIDR_MAX_INPUT];
    unsigned char bytes[16];

    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (memchr(buf, ':', len)) {
        if (inet_pton(AF_INET6, buf, bytes) != 1)
            return -EINVAL;
        ret->family = 6;
        ret->addr = 0;
        for (int i = 0; i < 16; i++)
            ret->addr = (ret->addr << 8) | bytes[i];
        ret->prefix = 128;
    } else {
        if (inet_pton(AF_INET, buf, bytes) != 1)
            return -EINVAL;
        ret->family = 4;
        ret->addr = ((uint32_t)bytes[0] << 24) | ((uint32_t)bytes[1] << 16) |
                    ((uint32_t)bytes[2] << 8) | bytes[3];
        ret->prefix = 32;
    }
    return 0;
}

int kf_ip_parse(const char *s, struct kf_cidr *ret, struct kf_strbuf *err)
{
    struct kf_cidr c;

    if (!s || strnlen(s, KF_CIDR_MAX_INPUT) >= KF_CIDR_MAX_INPUT)
        return kf_err(err, -EINVAL, "not an IP address: too long or empty");
    if (parse_addr(s, strlen(s), &c) < 0)
        return kf_err(err, -EINVAL, "\"%s\" is not an IPv4 or IPv6 address", s);
    *ret = c;
    return 0;
}

int kf_cidr_parse(const char *s, struct kf_cidr *ret, struct kf_strbuf *err)
{
    const char *slash;
    struct kf_cidr c;
    unsigned prefix = 0, bits;
    size_t plen;
    char canon[KF_CIDR_STRLEN];

    if (!s || !*s)
        return kf_err(err, -EINVAL, "empty CIDR");
    if (strnlen(s, KF_CIDR_MAX_INPUT) >= KF_CIDR_MAX_INPUT)
        return kf_err(err, -EINVAL, "CIDR longer than %d characters", KF_CIDR_MAX_INPUT - 1);
    slash = strchr(s, '/');
    if (!slash)
        return kf_err(err, -EINVAL, "\"%s\" has no prefix length (like 10.0.0.0/16)", s);
    if (parse_addr(s, (size_t)(slash - s), &c) < 0)
        return kf_err(err, -EINVAL, "\"%s\" does not start with an IPv4 or IPv6 address", s);
    bits = kf_cidr_bits(&c);
    plen = strlen(slash + 1);
    if (plen == 0 || plen > 3 || (plen > 1 && slash[1] == '0'))
        return kf_err(err, -EINVAL, "\"%s\": prefix length must be a number 0..%u", s, bits);
    for (size_t i = 0; i < plen; i++) {
        if (slash[1 + i] < '0' || slash[1 + i] > '9')
            return kf_err(err, -EINVAL, "\"%s\": prefix length must be a number 0..%u", s, bits);
        prefix = prefix * 10 + (unsigned)(slash[1 + i] - '0');
    }
    if (prefix > bits)
        return kf_err(err, -EINVAL, "\"%s\": prefix length must be a number 0..%u", s, bits);
    c.prefix = (uint8_t)prefix;
    if (c.addr & ~mask_of(bits, prefix)) {
        c.addr &= mask_of(bits, prefix);
        return kf_err(err, -EINVAL, "\"%s\" has host bits set; the block is %s", s,
                      kf_cidr_format(&c, canon, sizeof(canon)));
    }
    *ret = c;
    return 0;
}

char *kf_ip_format(const struct kf_cidr *c, char *buf, size_t size)
{
    unsigned char bytes[16];
    kf_u128 a = c->addr;

    if (c->family == 6) {
        for (int i = 15; i >= 0; i--) {
            bytes[i] = (unsigned char)(a & 0xff);
            a >>= 8;
        }
        if (!inet_ntop(AF_INET6, bytes, buf, (socklen_t)size))
            snprintf(buf, size, "?");
    } else {
        uint32_t v = (uint32_t)a;
        snprintf(buf, size, "%u.%u.%u.%u", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
    }
    return buf;
}

char *kf_cidr_format(const struct kf_cidr *c, char *buf, size_t size)
{
    size_t len;

    kf_ip_format(c, buf, size);
    len = strlen(buf);
    if (len < size)
        snprintf(buf + len, size - len, "/%u", c->prefix);
    return buf;
}

struct kf_cidr kf_cidr4(uint32_t addr, unsigned prefix)
{
    struct kf_cidr c = { .family = 4, .prefix = (uint8_t)KF_MIN(prefix, 32u) };

    c.addr = (kf_u128)addr & mask_of(32, c.prefix);
    return c;
}

kf_u128 kf_cidr_first(const struct kf_cidr *c)
{
    return c->addr;
}

kf_u128 kf_cidr_last(const struct kf_cidr *c)
{
    unsigned bits = kf_cidr_bits(c);

    if (c->prefix == 0)
        return bits == 128 ? ~(kf_u128)0 : 0xffffffffu;
    return c->addr | ((((kf_u128)1) << (bits - c->prefix)) - 1);
}

uint64_t kf_cidr_size(const struct kf_cidr *c)
{
    unsigned host = kf_cidr_bits(c) - c->prefix;

    if (host >= 64)
        return UINT64_MAX;
    return (uint64_t)1 << host;
}

bool kf_cidr_overlaps(const struct kf_cidr *a, const struct kf_cidr *b)
{
    if (a->family != b->family)
        return false;
    return kf_cidr_first(a) <= kf_cidr_last(b) && kf_cidr_first(b) <= kf_cidr_last(a);
}

bool kf_cidr_contains(const struct kf_cidr *outer, const struct kf_cidr *inner)
{
    if (outer->family != inner->family || outer->prefix > inner->prefix)
        return false;
    return (inner->addr & mask_of(kf_cidr_bits(outer), outer->prefix)) == outer->addr;
}

bool kf_cidr_equal(const struct kf_cidr *a, const struct kf_cidr *b)
{
    return a->family == b->family && a->prefix == b->prefix && a->addr == b->addr;
}

int kf_cidr_nth(const struct kf_cidr *c, uint64_t idx, struct kf_cidr *ret)
{
    if (idx >= kf_cidr_size(c) && kf_cidr_size(c) != UINT64_MAX)
        return -ERANGE;
    ret->family = c->family;
    ret->prefix = (uint8_t)kf_cidr_bits(c);
    ret->addr = c->addr + idx;
    return 0;
}

unsigned kf_prefix_for_size(unsigned bits, uint64_t n)
{
    unsigned host = 0;

    while (host < 64 && host < bits && ((uint64_t)1 << host) < n)
        host++;
    return bits - host;
}
