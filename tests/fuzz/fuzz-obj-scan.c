/* fuzz-obj-scan.c: the stored-object scanner (kfleet/obj.h), which reads
 * labels and field values out of stored bytes without parsing the whole
 * object, against jansson. Any input must be accepted or refused without a
 * crash; when the scanner finds labels or a value, jansson must agree with
 * what it found in the whole document, and what kf_obj_write splices must
 * still be JSON. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/json.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = { "spec.region", "metadata.name", "spec.host", "x" };
    const char *bytes = (const char *)data;
    json_t *whole = json_loadb(bytes, size, JSON_REJECT_DUPLICATES, NULL), *got = NULL;
    struct kf_strbuf out = KF_STRBUF_INIT;

    if (kf_obj_labels_from_bytes(bytes, size, &got) == 1 && whole) {
        kf_assert(json_equal(got, kf_json_path(whole, "metadata.labels")));
    }
    json_decref(got);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        got = NULL;
        if (kf_obj_path_from_bytes(bytes, size, paths[i], &got) == 1 && whole)
            kf_assert(json_equal(got, kf_json_path(whole, paths[i])));
        json_decref(got);
    }
    if (whole && json_is_object(json_object_get(whole, "metadata")) &&
        kf_obj_write(&out, bytes, size, 42) == 0) {
        json_t *again = json_loadb(out.buf, out.len, 0, NULL);

        kf_assert(again);
        json_decref(again);
    }
    kf_strbuf_release(&out);
    json_decref(whole);
    return 0;
}
