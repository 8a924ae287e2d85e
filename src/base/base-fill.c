/* base-fill.c: {{placeholder}} filling (kf_fill_placeholders in base.h), the
 * one copy shared by the component catalog (its argument templates) and the
 * agent (a member's folders). */
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"

char *kf_fill_placeholders(const char *tmpl,
                           const char *(*lookup)(void *ctx, const char *key, size_t len), void *ctx)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    const char *s = tmpl;

    while (*s) {
        const char *open = strstr(s, "{{"), *close, *v;

        if (!open || !(close = strstr(open + 2, "}}"))) {
            kf_strbuf_addstr(&out, s);
            break;
        }
        kf_strbuf_add(&out, s, (size_t)(open - s));
        v = lookup(ctx, open + 2, (size_t)(close - open - 2));
        if (v)
            kf_strbuf_addstr(&out, v);
        else
            kf_strbuf_add(&out, open, (size_t)(close + 2 - open));
        s = close + 2;
    }
    if (!out.len)
        return kf_xstrdup("");
    return kf_strbuf_detach(&out, NULL);
}
