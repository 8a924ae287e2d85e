/* fuzz-etcd-range.c: the reader of etcd's range answers
 * (kf_etcd_scan_range, store-etcd-scan.c), which reads what an etcd
 * endpoint sends. Any input must be read as jansson reads it, or refused
 * where jansson refuses it (tests/unit/etcd-scan-ref.h says where jansson
 * has no verdict); the check aborts on any difference. */
#include <stdint.h>
#include <stdlib.h>

#include "../unit/etcd-scan-ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    etcd_scan_ref_check((const char *)data, size);
    return 0;
}
