/* fuzz-admit.c: admission of arbitrary request bodies. The input is parsed
 * as the API parses a body, then admitted as a create, an update (against
 * itself) and a status update for every kind. Nothing may crash, and a
 * rejected object must come with at least one cause. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = NULL;
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    if (size > KF_OBJ_MAX_BYTES || kf_json_parse((const char *)data, size, &body, NULL) < 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        for (int mode = 0; mode < 3; mode++) {
            struct kf_causes causes = KF_CAUSES_INIT;
            json_t *obj = json_deep_copy(body), *old = mode == 1 ? json_deep_copy(body) : NULL;
            int rc = kf_kind_admit(kinds[i], obj, old, mode == 2, &causes);

            kf_assert(rc == 0 || (rc == -KF_EINVALID && causes.n > 0));
            if (rc == 0 && mode == 0) {
                struct kf_strbuf sb = KF_STRBUF_INIT;

                /* an admitted object encodes, and every column renders */
                kf_assert(kf_obj_encode(obj, &sb) == 0);
                /* reading a path from the stored bytes agrees with parsing them */
                for (size_t c = 0; c < kinds[i]->n_columns; c++) {
                    const char *path = kinds[i]->columns[c].path;
                    json_t *v = NULL;

                    if (path && kf_obj_path_from_bytes(sb.buf, sb.len, path, &v) >= 0) {
                        kf_assert(json_equal(v, kf_json_path(obj, path)) ||
                                  (!v && !kf_json_path(obj, path)));
                        json_decref(v);
                    }
                }
                for (size_t c = 0; c < kinds[i]->n_columns; c++)
                    kf_column_value(&kinds[i]->columns[c], obj, &sb);
                kf_strbuf_release(&sb);
            }
            kf_causes_release(&causes);
            json_decref(obj);
            json_decref(old);
        }
    }
    json_decref(body);
    return 0;
}
