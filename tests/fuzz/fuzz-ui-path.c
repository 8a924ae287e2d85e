/* fuzz-ui-path.c: which dashboard file a request names (api-ui.c), on any
 * request target: it is decoded as the server decodes it
 * (kf_api_parse_uri: percent escapes, query split), and when its path is
 * below /ui/ the rest goes through kf_api_ui_file_type. Whatever passes
 * must stay inside the dashboard's folder: relative, no empty segment, no
 * segment that starts with '.' (so no "." or ".."), only letters, digits,
 * '-', '_' and '.', at most 4 levels, with a type from the table. */
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "api/api-internal.h"

static void check_inside(const char *rel)
{
    size_t depth = 1;

    kf_assert(rel[0] && rel[0] != '/' && rel[0] != '.');
    kf_assert(strlen(rel) <= 128);
    /* no segment "." or "..": none starts with '.' ("a..b.png" is a name) */
    kf_assert(!strstr(rel, "//") && !strstr(rel, "/."));
    kf_assert(rel[strlen(rel) - 1] != '/');
    for (const char *p = rel; *p; p++) {
        char c = *p;

        kf_assert((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == '/');
        if (c == '/')
            depth++;
    }
    kf_assert(depth <= 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = kf_xstrndup((const char *)data, size > 4096 ? 4096 : size);
    struct api_query q = { 0 };
    char *path = NULL;
    const char *type;

    /* the bytes as a name below the folder, as they are */
    type = kf_api_ui_file_type(raw);
    if (type)
        check_inside(raw);
    /* and as a request target */
    if (kf_api_parse_uri(raw, &path, &q, NULL) == 0) {
        if (strncmp(path, "/ui/", 4) == 0 && path[4]) {
            type = kf_api_ui_file_type(path + 4);
            if (type)
                check_inside(path + 4);
        }
        free(path);
        kf_api_query_release(&q);
    }
    free(raw);
    return 0;
}
