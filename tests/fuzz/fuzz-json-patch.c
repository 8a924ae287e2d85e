/* fuzz-json-patch.c: RFC 6902 JSON patch. The input is a document, a
 * newline, and a patch; both are parsed with the API's bounded parser and
 * the patch applied. It must never crash, and a successful result must be
 * within the depth limit (so it can be dumped and parsed again). The
 * document is also merge-patched (RFC 7386) with the patch text. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/json.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    const char *nl = memchr(buf, '\n', size);
    json_t *doc = NULL, *ops = NULL, *out = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (!nl || size > 64 * 1024)
        return 0;
    if (kf_json_parse(buf, (size_t)(nl - buf), &doc, NULL) < 0)
        return 0;
    if (kf_json_parse(nl + 1, size - (size_t)(nl - buf) - 1, &ops, NULL) < 0) {
        json_decref(doc);
        return 0;
    }
    if (kf_json_patch(doc, ops, &out, &err) == 0) {
        size_t len;
        char *text = kf_json_dump(out, &len);
        json_t *again = NULL;

        kf_assert(kf_json_parse(text, len, &again, NULL) == 0);
        kf_assert(json_equal(again, out));
        json_decref(again);
        free(text);
        json_decref(out);
    } else {
        kf_assert(err.len > 0);
    }
    out = kf_json_merge_patch(doc, ops);
    json_decref(out);
    kf_strbuf_release(&err);
    json_decref(doc);
    json_decref(ops);
    return 0;
}
