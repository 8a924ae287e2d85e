/* api-metrics.c: the metrics kfleetd's API server exposes on /metrics:
 * requests by verb, resource and code, request latency, requests in
 * flight, open watches and the events they sent, rejected bodies, and the
 * store underneath (revision, compaction, keys, size, watch hub). Store
 * figures are read at scrape time (collected families), so nothing is
 * tracked twice. */
#include <stdio.h>
#include <string.h>

#include "kfleet/kind.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/store.h"
#include "api/api-internal.h"

static void collect_inflight(struct kf_metric *f, void *arg)
{
    struct kf_api *api = arg;

    kf_metric_set(f, NULL, (double)__atomic_load_n(&api->inflight, __ATOMIC_RELAXED));
}

static void collect_rejected(struct kf_metric *f, void *arg)
{
    struct kf_api *api = arg;

    kf_metric_set(f, NULL, (double)__atomic_load_n(&api->body_rejections, __ATOMIC_RELAXED));
}

static void collect_watchers(struct kf_metric *f, void *arg)
{
    struct kf_api *api = arg;
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    for (size_t i = 0; i < n; i++)
        kf_metric_set(f, KF_LABELS(kinds[i]->plural), (double)kf_api_watchers_count(api, kinds[i]));
}

static const char *const watch_event_types[API_WATCH_EVENT_TYPES] = {
    "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR",
};

size_t kf_api_kind_index(const struct kf_kind *k)
{
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    for (size_t i = 0; i < n && i < API_MAX_KINDS; i++)
        if (kinds[i] == k)
            return i;
    return API_MAX_KINDS;
}

void kf_api_count_watch_event(struct kf_api *api, size_t kind_index, const char *type)
{
    if (kind_index >= API_MAX_KINDS)
        return;
    for (size_t t = 0; t < API_WATCH_EVENT_TYPES; t++)
        if (strcmp(type, watch_event_types[t]) == 0) {
            __atomic_add_fetch(&api->watch_events[kind_index][t], 1, __ATOMIC_RELAXED);
            return;
        }
}

/* Counted with atomics on the watch path (a family's lock would be taken
 * once per watcher per write); summed here. */
static void collect_watch_events(struct kf_metric *f, void *arg)
{
    struct kf_api *api = arg;
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    for (size_t i = 0; i < n && i < API_MAX_KINDS; i++)
        for (size_t t = 0; t < API_WATCH_EVENT_TYPES; t++) {
            uint64_t v = __atomic_load_n(&api->watch_events[i][t], __ATOMIC_RELAXED);

            if (v)
                kf_metric_set(f, KF_LABELS(kinds[i]->plural, watch_event_types[t]), (double)v);
        }
}

static void collect_tokens(struct kf_metric *f, void *arg)
{
    struct kf_api *api = arg;

    pthread_rwlock_rdlock(&api->tokens_lock);
    kf_metric_set(f, NULL, (double)kf_api_tokens_count(api->tokens));
    pthread_rwlock_unlock(&api->tokens_lock);
}

enum store_what {
    STORE_REV,
    STORE_COMPACTED,
    STORE_KEYS,
    STORE_BYTES,
    STORE_UP,
    STORE_MEM,
};

struct store_probe {
    struct kf_api *api;
    enum store_what what;
};

static void collect_store(struct kf_metric *f, void *arg)
{
    const struct store_probe *p = arg;
    struct kf_store_status st;
    bool up = kf_store_status(p->api->store, &st) == 0;

    switch (p->what) {
    case STORE_UP:
        kf_metric_set(f, NULL, up ? 1 : 0);
        break;
    case STORE_REV:
        if (up)
            kf_metric_set(f, NULL, (double)st.rev);
        break;
    case STORE_COMPACTED:
        if (up)
            kf_metric_set(f, NULL, (double)st.compacted_rev);
        break;
    case STORE_KEYS:
        if (up)
            kf_metric_set(f, NULL, (double)st.keys);
        break;
    case STORE_BYTES:
        if (up)
            kf_metric_set(f, NULL, (double)st.db_bytes);
        break;
    case STORE_MEM:
        if (up && st.mem_bytes > 0)
            kf_metric_set(f, NULL, (double)st.mem_bytes);
        break;
    }
}

static struct store_probe store_probes[] = {
    { NULL, STORE_UP },   { NULL, STORE_REV },   { NULL, STORE_COMPACTED },
    { NULL, STORE_KEYS }, { NULL, STORE_BYTES }, { NULL, STORE_MEM },
};

enum hub_what {
    HUB_WATCHERS,
    HUB_WINDOW,
    HUB_WINDOW_BYTES,
    HUB_PUBLISHED,
    HUB_FALLBACKS,
};

struct hub_probe {
    struct kf_api *api;
    enum hub_what what;
};

static void collect_hub(struct kf_metric *f, void *arg)
{
    const struct hub_probe *p = arg;
    struct kf_watch_stats st;
    double v = 0;

    kf_watch_hub_stats(p->api->store, &st);
    switch (p->what) {
    case HUB_WATCHERS:
        v = (double)st.watchers;
        break;
    case HUB_WINDOW:
        v = (double)st.window_events;
        break;
    case HUB_WINDOW_BYTES:
        v = (double)st.window_bytes;
        break;
    case HUB_PUBLISHED:
        v = (double)st.published_events;
        break;
    case HUB_FALLBACKS:
        v = (double)st.history_fallbacks;
        break;
    }
    kf_metric_set(f, NULL, v);
}

static struct hub_probe hub_probes[] = {
    { NULL, HUB_WATCHERS },  { NULL, HUB_WINDOW },    { NULL, HUB_WINDOW_BYTES },
    { NULL, HUB_PUBLISHED }, { NULL, HUB_FALLBACKS },
};

void kf_api_metrics_register(struct kf_api *api)
{
    struct kf_metrics *m = api->metrics;
    struct store_probe *sp;
    struct hub_probe *hp;

    api->m_requests = kf_metrics_counter(m, "kfleet_api_requests_total",
                                         "API requests answered, by verb, resource and HTTP code.",
                                         "verb,resource,code");
    api->m_latency = kf_metrics_histogram(
        m, "kfleet_api_request_duration_seconds",
        "Time from the request line to the last byte queued, by verb and resource (watches "
        "excluded).",
        "verb,resource", kf_metrics_latency_buckets, kf_metrics_latency_nbuckets);
    kf_metrics_collected(m, KF_METRIC_COUNTER, "kfleet_api_watch_events_total",
                         "Watch events sent to clients, by resource and type.", "resource,type",
                         collect_watch_events, api);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_api_inflight_requests",
                         "Requests being served, open watches included.", NULL, collect_inflight,
                         api);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_api_watchers", "Open watches, by resource.",
                         "resource", collect_watchers, api);
    kf_metrics_collected(m, KF_METRIC_COUNTER, "kfleet_api_request_bodies_rejected_total",
                         "Requests refused because their body was over the size limit.", NULL,
                         collect_rejected, api);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_api_tokens",
                         "Bearer tokens loaded from the token file.", NULL, collect_tokens, api);

    /* The probes are per API server; a process has one. */
    sp = kf_xmemdup(store_probes, sizeof(store_probes));
    hp = kf_xmemdup(hub_probes, sizeof(hub_probes));
    for (size_t i = 0; i < KF_ARRAY_SIZE(store_probes); i++)
        sp[i].api = api;
    for (size_t i = 0; i < KF_ARRAY_SIZE(hub_probes); i++)
        hp[i].api = api;
    api->probes[0] = sp;
    api->probes[1] = hp;
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_store_up",
                         "Whether the store answered a status request (1) or not (0).", NULL,
                         collect_store, &sp[0]);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_store_revision",
                         "The store's current revision.", NULL, collect_store, &sp[1]);
    kf_metrics_collected(
        m, KF_METRIC_GAUGE, "kfleet_store_compacted_revision",
        "Revisions before this one are compacted away (this one is still readable).", NULL,
        collect_store, &sp[2]);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_store_keys", "Live keys in the store.", NULL,
                         collect_store, &sp[3]);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_store_size_bytes",
                         "Size of the store on disk or in memory.", NULL, collect_store, &sp[4]);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_store_sqlite_memory_bytes",
                         "Heap SQLite holds (page caches, statements); SQLite stores only.", NULL,
                         collect_store, &sp[5]);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_store_watchers",
                         "Watchers reading the store's watch hub.", NULL, collect_hub, &hp[0]);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_store_watch_window_events",
                         "Events held in the watch hub's shared window.", NULL, collect_hub,
                         &hp[1]);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_store_watch_window_bytes",
                         "Bytes the watch hub's shared window holds (keys, values, previous "
                         "values).",
                         NULL, collect_hub, &hp[2]);
    kf_metrics_collected(m, KF_METRIC_COUNTER, "kfleet_store_watch_events_published_total",
                         "Events published to the watch hub.", NULL, collect_hub, &hp[3]);
    kf_metrics_collected(m, KF_METRIC_COUNTER, "kfleet_store_watch_history_fallbacks_total",
                         "Times a watcher read the store's history instead of the window.", NULL,
                         collect_hub, &hp[4]);
}

void kf_api_metrics_request_done(struct kf_api *api, struct api_request *req)
{
    static const char *const methods[][2] = {
        { "GET", "get" },     { "HEAD", "head" },     { "POST", "post" },       { "PUT", "put" },
        { "PATCH", "patch" }, { "DELETE", "delete" }, { "OPTIONS", "options" },
    };
    char code[8];
    const char *v = kf_api_verb_name(req->verb);

    if (req->verb == API_VERB_NONE) {
        /* non-resource paths: the method, from a fixed set (a client picks
         * it, and a label must not grow without bound) */
        v = "other";
        for (size_t i = 0; req->method && i < KF_ARRAY_SIZE(methods); i++)
            if (strcmp(req->method, methods[i][0]) == 0)
                v = methods[i][1];
    }
    snprintf(code, sizeof(code), "%u", req->status);
    kf_metric_add(api->m_requests, KF_LABELS(v, req->resource, code), 1);
    if (req->verb != API_VERB_WATCH)
        kf_metric_observe(api->m_latency, KF_LABELS(v, req->resource),
                          (double)(kf_mono_ns() - req->start_ns) / 1e9);
}
