/* fuzz-yaml.c: kf_yaml_load_all must never crash, leak or loop on any input,
 * and whatever it loads must survive kf_yaml_dump and load back equal: the
 * dumper's quoting rules are checked against the loader on every input. */
#include <stdio.h>
#include <stdlib.h>

#include "kfleet/json.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kf_strbuf err = KF_STRBUF_INIT, out = KF_STRBUF_INIT;
    json_t *docs = NULL, *doc;
    size_t i;

    if (size > 64 * 1024)
        return 0;
    if (kf_yaml_load_all((const char *)data, size, &docs, &err) < 0) {
        if (err.len == 0)
            kf_abort("a YAML error without a message");
        kf_strbuf_release(&err);
        return 0;
    }
    json_array_foreach(docs, i, doc)
    {
        json_t *again = NULL;

        kf_strbuf_reset(&out);
        if (kf_yaml_dump(doc, &out) < 0)
            kf_abort("kf_yaml_dump failed on a loaded document");
        if (kf_yaml_load_all(out.buf, out.len, &again, &err) < 0)
            kf_abort("the dump does not load: %s\n%s", err.buf, out.buf);
        if (json_array_size(again) != 1 || !json_equal(json_array_get(again, 0), doc)) {
            char *a = kf_json_dump(doc, NULL), *b = kf_json_dump(again, NULL);

            kf_abort("round trip changed the value:\n%s\ndumped as\n%s\nloads as %s", a, out.buf,
                     b);
        }
        json_decref(again);
    }
    json_decref(docs);
    kf_strbuf_release(&out);
    kf_strbuf_release(&err);
    return 0;
}
