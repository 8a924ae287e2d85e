/* cidr.h: IP addresses and CIDR blocks, IPv4 and IPv6.
 *
 * A struct kf_cidr is a value (no allocation): the family, the prefix length
 * and the address as a 128-bit number in host order (IPv4 in the low 32
 * bits). Parsing is strict and canonical: "10.8.0.0/14" parses, "10.9.0.0/14"
 * does not (host bits set; the error says which block was meant),
 * "010.0.0.0/8" does not (leading zero), nor does a prefix longer than the
 * family allows. Formatting writes the canonical text (IPv6 compressed as
 * RFC 5952 says), so parse(format(x)) == x for every valid x.
 *
 * IPAM (ipam.h) allocates IPv4 only; the rest of kfleet uses this type for
 * validation and display of both families.
 */
#ifndef KF_CIDR_H
#define KF_CIDR_H

#include "kfleet/base.h"

struct kf_strbuf;

typedef unsigned __int128 kf_u128; /* a number, not a struct: allowed by STYLE */

struct kf_cidr {
    uint8_t family; /* 4 or 6 */
    uint8_t prefix; /* 0..32 or 0..128 */
    kf_u128 addr;   /* network address, host order; IPv4 in the low 32 bits */
};

/* Longest text kf_cidr_format writes, NUL included ("ffff:...:ffff/128"). */
#define KF_CIDR_STRLEN 64
/* Longest input the parsers look at; longer input is refused. */
#define KF_CIDR_MAX_INPUT 64

/* Parses "A.B.C.D/N" or "x:y::z/N". Host bits must be zero. Returns 0 and
 * sets *ret, or -EINVAL with the reason in err (e.g. "\"10.9.0.0/14\" has
 * host bits set; the block is 10.8.0.0/14"). *ret untouched on failure. */
int kf_cidr_parse(const char *s, struct kf_cidr *ret, struct kf_strbuf *err);
/* Parses a single address "A.B.C.D" or an IPv6 address into a /32 or /128. */
int kf_ip_parse(const char *s, struct kf_cidr *ret, struct kf_strbuf *err);
/* Writes "10.8.0.0/14" into buf (size >= KF_CIDR_STRLEN); returns buf. */
char *kf_cidr_format(const struct kf_cidr *c, char *buf, size_t size);
/* Writes only the address ("10.8.0.1"); returns buf. */
char *kf_ip_format(const struct kf_cidr *c, char *buf, size_t size);

/* Builds an IPv4 block from a host-order address; host bits are cleared. */
struct kf_cidr kf_cidr4(uint32_t addr, unsigned prefix);
/* Number of bits of the family (32 or 128). */
unsigned kf_cidr_bits(const struct kf_cidr *c);
/* First and last address of the block. */
kf_u128 kf_cidr_first(const struct kf_cidr *c);
kf_u128 kf_cidr_last(const struct kf_cidr *c);
/* Number of addresses, saturated at UINT64_MAX (an IPv6 /64 or larger). */
uint64_t kf_cidr_size(const struct kf_cidr *c);

/* Same family and the blocks share at least one address. */
bool kf_cidr_overlaps(const struct kf_cidr *a, const struct kf_cidr *b);
/* Same family and inner lies within outer (equal counts as within). */
bool kf_cidr_contains(const struct kf_cidr *outer, const struct kf_cidr *inner);
bool kf_cidr_equal(const struct kf_cidr *a, const struct kf_cidr *b);

/* The address at index idx of the block as a /32 (/128): [1] is the
 * kubernetes service, [10] cluster DNS. -ERANGE if idx is outside the block. */
int kf_cidr_nth(const struct kf_cidr *c, uint64_t idx, struct kf_cidr *ret);

/* Smallest prefix length whose block holds n addresses (n >= 1), for the
 * family's bit count: kf_prefix_for_size(32, 300) == 23. */
unsigned kf_prefix_for_size(unsigned bits, uint64_t n);

#endif
