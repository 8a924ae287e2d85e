/* fuzz-numbers.c: the number readers of base-parse.c that read values from
 * objects and query strings (quantities, durations, integers, such as
 * "4Gi", "1h30m", ?limit=). Any string is read or refused, a refused
 * one leaves the output untouched, and an integer read prints back to a
 * string that reads to the same value. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kfleet/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UNTOUCHED 0x5a5a5a5a5a5aLL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = kf_xstrndup((const char *)data, size), back[32];
    int64_t v = UNTOUCHED, again = 0;
    uint64_t u = UNTOUCHED;
    double d = 0.5;
    int i = 7;

    if (kf_parse_quantity(s, &v) < 0)
        kf_assert(v == UNTOUCHED);
    v = UNTOUCHED;
    if (kf_parse_duration_ms(s, &v) < 0)
        kf_assert(v == UNTOUCHED);
    else
        kf_assert(v >= 0);
    v = UNTOUCHED;
    if (kf_parse_int64(s, &v) == 0) {
        snprintf(back, sizeof(back), "%" PRId64, v);
        kf_assert(kf_parse_int64(back, &again) == 0 && again == v);
    } else {
        kf_assert(v == UNTOUCHED);
    }
    if (kf_parse_uint64(s, &u) < 0)
        kf_assert(u == UNTOUCHED);
    if (kf_parse_int(s, &i) < 0)
        kf_assert(i == 7);
    if (kf_parse_double(s, &d) < 0)
        kf_assert(d == 0.5);
    free(s);
    return 0;
}
