/* fuzz-api-accept.c: the Accept header reader (kf_api_accept_next): any
 * header value is read to its end without reading past it, each range
 * read moves forward, there are never more ranges than bytes, and every
 * field is a terminated string within its size. */
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "api/api-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = kf_xstrndup((const char *)data, size > 32768 ? 32768 : size);
    const char *pos = s, *end = s + strlen(s);
    struct api_media_range m;
    size_t n = 0;

    for (;;) {
        const char *before = pos;

        if (!kf_api_accept_next(&pos, &m)) {
            kf_assert(pos == end);
            break;
        }
        kf_assert(pos > before && pos <= end);
        kf_assert(++n <= (size_t)(end - s));
        kf_assert(strlen(m.type) < sizeof(m.type) && strlen(m.group) < sizeof(m.group));
        kf_assert(strlen(m.version) < sizeof(m.version) && strlen(m.as) < sizeof(m.as));
        kf_assert(strlen(m.profile) < sizeof(m.profile));
        (void)kf_api_media_range_is_json(&m);
    }
    free(s);
    return 0;
}
