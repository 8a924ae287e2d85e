/* fuzz-etcd-watch.c: the reader of etcd's watch stream (store-etcd.c and
 * store-etcd-client.c), which reads what an etcd endpoint sends: lines
 * split at '\n', each a JSON message {"result":{"events":[...]}} whose
 * events kf_etcd_watch_event turns into store events. Any input must be
 * read or left out; an event read has a non-empty key inside the store's
 * prefix without NUL bytes, a known type and consistent lengths. */
#include <stdint.h>
#include <string.h>

#include "kfleet/etcd.h"
#include "kfleet/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char prefix[] = "/kfleet/";

static void one_event(const json_t *ev)
{
    struct kf_event *e = kf_etcd_watch_event(prefix, sizeof(prefix) - 1, ev);

    if (!e)
        return;
    kf_assert(e->type == KF_EVENT_PUT || e->type == KF_EVENT_DELETE);
    kf_assert(e->kv.key && *e->kv.key);
    kf_assert(e->kv.value_len == 0 || e->kv.value);
    kf_assert(e->prev_len == 0 || e->prev_value);
    kf_event_unref(e);
}

static void one_message(const char *s, size_t n)
{
    json_t *v = json_loadb(s, n, 0, NULL), *ev;
    size_t i;

    json_array_foreach(json_object_get(json_object_get(v, "result"), "events"), i, ev)
        one_event(ev);
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

        if (n)
            one_message(p, n);
        p += n + 1;
    }
    return 0;
}
