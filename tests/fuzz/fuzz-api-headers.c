/* fuzz-api-headers.c: the cross-site checks' header readers (api-origin.c)
 * on any bytes: the input is split at the first NUL into two header values
 * (Content-Type or Host, then Origin). Nothing reads past a value's end,
 * the media type is a terminated lower-case string within its buffer, an
 * Origin is never the same as a missing Host, and an accepted Host stays
 * accepted in upper case (names compare without case). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "api/api-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = kf_xstrndup((const char *)data, size > 8192 ? 8192 : size);
    size_t alen = strlen(a);
    const char *rest = alen + 1 < size ? (const char *)data + alen + 1 : "";
    char *b = kf_xstrndup(rest, strnlen(rest, size - KF_MIN(size, alen + 1)));
    char type[64], small[4];
    size_t n;

    n = kf_api_media_type(a, type, sizeof(type));
    kf_assert(n < sizeof(type) && strlen(type) == n);
    for (size_t i = 0; i < n; i++)
        kf_assert(!isupper((unsigned char)type[i]));
    n = kf_api_media_type(a, small, sizeof(small));
    kf_assert(n < sizeof(small) && strlen(small) == n);
    (void)kf_api_write_type_accepted(type);
    if (kf_api_host_header_allowed(a, "kfleet.example.org", "a.example,b.example")) {
        char *up = kf_xstrdup(a);

        for (char *p = up; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        kf_assert(kf_api_host_header_allowed(up, "kfleet.example.org", "a.example,b.example"));
        free(up);
    }
    kf_assert(!*b || !kf_api_origin_same(b, NULL));
    (void)kf_api_origin_same(b, a);
    free(a);
    free(b);
    return 0;
}
