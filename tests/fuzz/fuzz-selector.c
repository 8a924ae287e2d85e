/* fuzz-selector.c: label and field selector parsers. Any input must either
 * parse or fail with a message; a parsed selector must format to text that
 * parses back to the same canonical form, and matching must not crash. The
 * input is also tried as a LabelSelector JSON object. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/json.h"
#include "kfleet/selector.h"
#include "kfleet/strbuf.h"

static void roundtrip(int (*parse)(const char *, struct kf_selector **, struct kf_strbuf *),
                      const char *s, const json_t *obj)
{
    struct kf_selector *sel = NULL, *again = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT, a = KF_STRBUF_INIT, b = KF_STRBUF_INIT;

    if (parse(s, &sel, &err) < 0) {
        kf_assert(err.len > 0);
        kf_strbuf_release(&err);
        return;
    }
    kf_selector_matches(sel, obj);
    kf_selector_format(sel, &a);
    kf_assert(parse(a.buf, &again, NULL) == 0);
    kf_selector_format(again, &b);
    kf_assert(strcmp(a.buf, b.buf) == 0);
    kf_selector_free(sel);
    kf_selector_free(again);
    kf_strbuf_release(&a);
    kf_strbuf_release(&b);
    kf_strbuf_release(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = kf_xstrndup((const char *)data, size > 8192 ? 8192 : size);
    json_t *obj = json_pack("{s:{s:s,s:{s:s,s:s,s:s}},s:{s:s,s:i}}", "metadata", "name", "web-1",
                            "labels", "app", "web", "tier", "", "kfleet.io/role", "meta", "spec",
                            "region", "cn-hz", "expectedNodes", 40);
    json_t *js = NULL;

    roundtrip(kf_selector_parse_labels, s, obj);
    roundtrip(kf_selector_parse_fields, s, obj);
    if (kf_json_parse(s, strlen(s), &js, NULL) == 0) {
        struct kf_selector *sel = NULL;
        struct kf_strbuf err = KF_STRBUF_INIT, text = KF_STRBUF_INIT;

        if (kf_selector_from_json(js, &sel, &err) == 0) {
            struct kf_selector *again = NULL;

            kf_selector_matches(sel, obj);
            kf_selector_format(sel, &text);
            /* what the JSON form means can always be written as text */
            kf_assert(kf_selector_parse_labels(text.buf, &again, NULL) == 0);
            kf_selector_free(again);
            kf_selector_free(sel);
        }
        kf_strbuf_release(&err);
        kf_strbuf_release(&text);
        json_decref(js);
    }
    json_decref(obj);
    free(s);
    return 0;
}
