/* fuzz-lease-report.c: the heartbeat report parser (kfleet/lease-share.h),
 * which reads values other kfleetd replicas wrote into the store. Any input
 * must either parse or fail with a message; a parsed report's names must be
 * sorted, unique and printable, and encode to lines that parse back to the
 * same names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/lease-share.h"
#include "kfleet/strbuf.h"

static void roundtrip(char **names, size_t n)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    struct kf_lease_report again;

    for (size_t i = 1; i < n; i++)
        kf_assert(strcmp(names[i - 1], names[i]) < 0);
    kf_strbuf_addf(&sb, "KFHB/1 base base=f.1 shard=0 shards=1 names=%zu\n", n);
    kf_lease_names_encode(&sb, names, n);
    kf_assert(kf_lease_report_parse(sb.buf, sb.len, &again, NULL) == 0);
    kf_assert(again.n_names == n);
    for (size_t i = 0; i < n; i++)
        kf_assert(strcmp(again.names[i], names[i]) == 0);
    kf_lease_report_release(&again);
    kf_strbuf_release(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kf_lease_report r;
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_lease_report_parse((const char *)data, size, &r, &err) < 0) {
        kf_assert(err.len > 0);
        kf_strbuf_release(&err);
        return 0;
    }
    roundtrip(r.names, r.n_names);
    roundtrip(r.removed, r.n_removed);
    kf_lease_report_release(&r);
    kf_strbuf_release(&err);
    return 0;
}
