/* fuzz-dedup-file.c: the reader of the alert receiver's memory file
 * (kf_obs_dedup_load, obs-receiver-dedup.c), which kfleetd reads back at
 * start from its data folder. Any file must be read or refused with a
 * message; a memory read, saved and read again saves the same file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *slurp(const char *path)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    FILE *f = fopen(path, "r");
    char buf[512];
    size_t n;

    kf_assert(f);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        kf_strbuf_add(&sb, buf, n);
    fclose(f);
    return kf_strbuf_detach(&sb, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[] = "/tmp/kf-fuzz-dedup-XXXXXX", out1[64], out2[64];
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_dedup *d = kf_obs_dedup_new(8, 60000), *d2;
    int fd = mkstemp(in);
    char *a, *b;

    kf_assert(fd >= 0);
    kf_assert(write(fd, data, size) == (ssize_t)size);
    close(fd);
    if (kf_obs_dedup_load(d, in, &err) < 0) {
        kf_assert(err.len > 0);
        goto free_memory;
    }
    kf_assert(kf_obs_dedup_size(d) <= 8);
    snprintf(out1, sizeof(out1), "%s.1", in);
    snprintf(out2, sizeof(out2), "%s.2", in);
    kf_assert(kf_obs_dedup_save(d, out1, NULL) == 0);
    d2 = kf_obs_dedup_new(8, 60000);
    kf_assert(kf_obs_dedup_load(d2, out1, NULL) == 0);
    kf_assert(kf_obs_dedup_save(d2, out2, NULL) == 0);
    a = slurp(out1);
    b = slurp(out2);
    kf_assert(strcmp(a, b) == 0);
    free(a);
    free(b);
    kf_obs_dedup_free(d2);
    unlink(out1);
    unlink(out2);
free_memory:
    kf_obs_dedup_free(d);
    unlink(in);
    kf_strbuf_release(&err);
    return 0;
}
