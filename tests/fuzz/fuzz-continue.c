/* fuzz-continue.c: the reader of LIST continue tokens
 * (kf_registry_continue_decode, fleet-registry.c), which any client may
 * send as ?continue=. Any string is read or refused with a message; a token
 * read gives a positive revision and a valid name, and encoding those again
 * gives a token that reads back to the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *tok = kf_xstrndup((const char *)data, size), *name = NULL, *again = NULL, *tok2;
    int64_t rev = 0, rev2 = 0;

    if (kf_registry_continue_decode(tok, &rev, &name, &err) < 0) {
        kf_assert(err.len > 0 && !name && rev == 0);
        goto free_tok;
    }
    kf_assert(rev > 0 && name && *name);
    tok2 = kf_registry_continue_encode(rev, name);
    kf_assert(kf_registry_continue_decode(tok2, &rev2, &again, NULL) == 0);
    kf_assert(rev2 == rev && strcmp(again, name) == 0);
    free(tok2);
    free(again);
    free(name);
free_tok:
    free(tok);
    kf_strbuf_release(&err);
    return 0;
}
