/* daemon-memory.c: kfleetd's own view of its memory, for /metrics.
 *
 * kfleet_process_heap_bytes{what} is malloc's account (glibc mallinfo2,
 * summed over every arena): "in_use" is what the program holds, "free" is
 * what the arenas keep for later allocations (resident or not: malloc
 * returns whole free pages to the kernel only at the top of an arena or on
 * a trim), "mmap" is large blocks mapped on their own (also in "in_use").
 * process_resident_memory_bytes minus these is code, stacks, and the
 * memory-mapped SQLite database (file-backed pages the kernel may drop).
 * docs/internals/memory.md has the budget they are measured against.
 */
#include <malloc.h>

#include "kfleet/obs-metrics.h"
#include "daemon/daemon.h"

static void collect_heap(struct kf_metric *f, void *arg)
{
    struct mallinfo2 mi = mallinfo2();

    (void)arg;
    kf_metric_set(f, KF_LABELS("in_use"), (double)(mi.uordblks + mi.hblkhd));
    kf_metric_set(f, KF_LABELS("free"), (double)mi.fordblks);
    kf_metric_set(f, KF_LABELS("mmap"), (double)mi.hblkhd);
}

void kf_daemon_memory_add_metrics(struct kf_metrics *m)
{
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_process_heap_bytes",
                         "malloc's heap: in_use (held by kfleetd, mmap blocks included), free "
                         "(kept by malloc's arenas), mmap (blocks mapped on their own).",
                         "what", collect_heap, NULL);
}
