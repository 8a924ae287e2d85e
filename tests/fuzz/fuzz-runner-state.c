/* fuzz-runner-state.c: the runner's state and result file parsers
 * (runner-state.c). They read files a crashed or older agent left behind, so
 * anything must be rejected cleanly; a parsed record must format back into
 * text that parses to the same record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "runner/runner-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kf_state_record rec, again;
    struct kf_task_result res, res2;
    struct kf_strbuf sb = KF_STRBUF_INIT;

    if (kf_state_parse((const char *)data, size, &rec) == 0) {
        kf_state_format(&rec, &sb);
        kf_assert(kf_state_parse(sb.buf, sb.len, &again) == 0);
        kf_assert(!strcmp(rec.name, again.name) && rec.kind == again.kind);
        kf_assert(rec.spec.argc == again.spec.argc && rec.pid == again.pid);
        for (size_t i = 0; i < rec.spec.argc; i++)
            kf_assert(!strcmp(rec.spec.argv[i], again.spec.argv[i]));
        kf_state_record_release(&again);
        kf_state_record_release(&rec);
        kf_strbuf_reset(&sb);
    }
    if (kf_result_parse((const char *)data, size, &res) == 0) {
        kf_result_format(&res, &sb);
        kf_assert(kf_result_parse(sb.buf, sb.len, &res2) == 0);
        kf_assert(!strcmp(res.id, res2.id) && res.exit.code == res2.exit.code);
        kf_assert(!strcmp(res.message, res2.message));
    }
    kf_strbuf_release(&sb);
    return 0;
}
