/* fuzz-api-target.c: the API server's request-target decoder
 * (kf_api_parse_uri): any input either decodes or fails with a message; a
 * decoded path is never longer than its input, and every query key and
 * value is a string that kf_api_query_get finds. */
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "api/api-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = kf_xstrndup((const char *)data, size > 16384 ? 16384 : size);
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct api_query q;
    char *path;

    if (kf_api_parse_uri(s, &path, &q, &err) < 0) {
        kf_assert(err.len > 0);
    } else {
        kf_assert(strlen(path) <= strlen(s));
        for (size_t i = 0; i < q.n; i++) {
            kf_assert(q.keys[i] && q.values[i]);
            kf_assert(kf_api_query_get(&q, q.keys[i]) != NULL);
        }
        free(path);
        kf_api_query_release(&q);
    }
    kf_strbuf_release(&err);
    free(s);
    return 0;
}
