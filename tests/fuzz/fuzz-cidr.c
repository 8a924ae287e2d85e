/* fuzz-cidr.c: libFuzzer target for the CIDR and address parsers.
 *
 * Whatever parses must format back to the same text when it was canonical,
 * re-parse to the same value, and agree with the block arithmetic (a block
 * contains its own first and last address and overlaps itself). */
#include <string.h>

#include "kfleet/cidr.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[128], out[KF_CIDR_STRLEN];
    struct kf_cidr c, again, first, last;
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (size >= sizeof(in))
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';

    if (kf_cidr_parse(in, &c, &err) == 0) {
        kf_cidr_format(&c, out, sizeof(out));
        kf_assert(kf_cidr_parse(out, &again, NULL) == 0);
        kf_assert(kf_cidr_equal(&c, &again));
        kf_assert(kf_cidr_first(&c) <= kf_cidr_last(&c));
        kf_assert(kf_cidr_overlaps(&c, &again) && kf_cidr_contains(&c, &again));
        kf_assert(kf_cidr_nth(&c, 0, &first) == 0);
        last = first;
        last.addr = kf_cidr_last(&c);
        kf_assert(kf_cidr_contains(&c, &first) && kf_cidr_contains(&c, &last));
    } else {
        kf_assert(err.len > 0);
    }
    if (kf_ip_parse(in, &c, NULL) == 0) {
        kf_ip_format(&c, out, sizeof(out));
        kf_assert(kf_ip_parse(out, &again, NULL) == 0 && kf_cidr_equal(&c, &again));
    }
    kf_strbuf_release(&err);
    return 0;
}
