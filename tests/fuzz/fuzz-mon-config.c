/* fuzz-mon-config.c: kfleetd's --monitoring-config reader (mon-config.c,
 * JSON). Any file must be read or refused with a message, without a crash
 * or a leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kfleet/monitoring.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/kf-fuzz-moncfg-XXXXXX";
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_mon_config c;
    int fd = mkstemp(path);

    kf_assert(fd >= 0);
    kf_assert(write(fd, data, size) == (ssize_t)size);
    close(fd);
    kf_mon_config_init(&c);
    if (kf_mon_config_load(path, &c, &err) < 0)
        kf_assert(err.len > 0);
    kf_mon_config_release(&c);
    unlink(path);
    kf_strbuf_release(&err);
    return 0;
}
