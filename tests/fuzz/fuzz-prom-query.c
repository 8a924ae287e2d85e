/* fuzz-prom-query.c: libFuzzer target for the Release health gate's reader
 * of Prometheus instant query answers (kf_obs_firing_parse). An answer
 * that parses gives series with an alert name and a cluster string each,
 * never more than the cap; one that does not parse says why. */
#include <assert.h>
#include <string.h>

#include "kfleet/obs-query.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kf_obs_firing_list l;
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_obs_firing_parse((const char *)data, size, &l, &err) == 0) {
        assert(l.n <= KF_OBS_QUERY_MAX_SERIES);
        for (size_t i = 0; i < l.n; i++)
            assert(l.items[i].alert && *l.items[i].alert && l.items[i].cluster);
        kf_obs_firing_list_release(&l);
    } else {
        assert(err.len > 0);
    }
    kf_strbuf_release(&err);
    return 0;
}
