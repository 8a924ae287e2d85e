/* api-watch.c: watch streams without a thread per watcher.
 *
 * A watch is an HTTP response of unknown length (chunked) whose bytes come
 * from a content reader (watch_read). The reader drains the store watch
 * (kf_watch_next) into the connection's own buffer, one JSON event a line.
 * When there is nothing to send it suspends the connection
 * (MHD_suspend_connection) and returns 0; the connection then costs no
 * thread and no CPU.
 *
 * Waking up goes through one thread per server, the "resumer":
 *   - the store's watch hub calls watch_wake (from a writer's thread, with
 *     hub locks held, so it only marks the watch pending and queues it);
 *   - the resumer pops the queue and calls MHD_resume_connection, outside
 *     every lock of ours;
 *   - once a second (or per bookmark interval, if shorter) it also queues
 *     suspended watches whose BOOKMARK or server-side timeout is due, and
 *     polls their sockets for a hang-up (a suspended connection does not
 *     notice that its client went away; this is how it is cleaned up).
 *
 * The state each watch shares with the hub and the resumer (pending,
 * suspended, queued, hangup) is guarded by watchers->lock. libmicrohttpd
 * allows resuming only a connection that is suspended, so the reader marks
 * a watch suspended only after MHD_suspend_connection returned, and
 * re-queues itself if a wake-up arrived in between. Lock order: hub locks,
 * then watchers->lock; no MHD function is called with watchers->lock held.
 *
 * Shutdown: kf_api_stop sets api->stopping and calls api_watchers_stop,
 * which resumes every suspended watch and waits until none is suspended or
 * about to be: each stream then ends cleanly (the chunked terminator), and
 * MHD_stop_daemon never sees a suspended connection.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/metrics.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/store.h"
#include "api/api-internal.h"

KF_LOG_MODULE(api);

#define WATCH_BLOCK       (16 * 1024)  /* MHD's write buffer for a watch */
#define WATCH_FILL_BYTES  (256 * 1024) /* stop draining the hub past this */
#define WATCH_FILL_EVENTS 4096

struct api_watch {
    struct kf_api *api;
    struct MHD_Connection *conn;
    int fd;
    const struct kf_kind *kind;
    struct kf_selector *labels, *fields;
    bool table;
    enum api_table_include include;
    bool bookmarks;
    struct kf_watch *w;

    /* Owned by the reader (one MHD thread at a time). */
    struct kf_strbuf out;
    size_t out_pos;
    uint64_t deadline_ns;
    uint64_t next_bookmark_ns;
    bool ended;

    /* Guarded by watchers->lock. */
    bool pending;   /* the hub may have events */
    bool tick;      /* a bookmark or the deadline is due */
    bool hangup;    /* the client closed its end */
    bool suspended; /* suspended, and MHD_suspend_connection has returned */
    bool queued;    /* in the resume queue */
    bool saw_stop;  /* the reader ran after shutdown began (so MHD has resumed it) */
    struct api_watch *prev, *next;
    struct api_watch *qnext;
};

struct api_watchers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool thread_started;
    bool quit;
    struct api_watch *all;
    size_t n_all;
    size_t n_suspended;
    size_t n_suspending; /* between the decision to suspend and marking it */
    struct api_watch *qhead, *qtail;
};

/* --- the resume queue -------------------------------------------------- */

static void enqueue_locked(struct api_watchers *ws, struct api_watch *wc)
{
    if (wc->queued || !wc->suspended)
        return;
    wc->queued = true;
    wc->qnext = NULL;
    if (ws->qtail)
        ws->qtail->qnext = wc;
    else
        ws->qhead = wc;
    ws->qtail = wc;
    if (ws->qhead == wc)
        pthread_cond_broadcast(&ws->cond);
}

static void watch_wake(void *arg)
{
    struct api_watch *wc = arg;
    struct api_watchers *ws = wc->api->watchers;

    pthread_mutex_lock(&ws->lock);
    wc->pending = true;
    enqueue_locked(ws, wc);
    pthread_mutex_unlock(&ws->lock);
}

static uint64_t scan_period_ns(const struct kf_api *api)
{
    uint64_t ms = KF_MIN(1000u, api->cfg.bookmark_interval_ms);

    return KF_MAX(ms, 20u) * 1000000ull;
}

/* Queues suspended watches that are due (bookmark, deadline) or whose
 * client hung up. ws->lock held. */
static void scan_locked(struct kf_api *api, struct api_watchers *ws)
{
    uint64_t now = kf_mono_ns();
    struct pollfd *fds;
    struct api_watch **who;
    size_t n = 0;

    if (!ws->n_suspended)
        return;
    fds = kf_xcalloc(ws->n_suspended, sizeof(*fds));
    who = kf_xcalloc(ws->n_suspended, sizeof(*who));
    for (struct api_watch *wc = ws->all; wc; wc = wc->next) {
        if (!wc->suspended || wc->queued)
            continue;
        if (now >= wc->deadline_ns || (wc->bookmarks && now >= wc->next_bookmark_ns)) {
            wc->tick = true;
            enqueue_locked(ws, wc);
            continue;
        }
        if (wc->fd >= 0 && n < ws->n_suspended) {
            fds[n].fd = wc->fd;
            fds[n].events = POLLRDHUP;
            who[n++] = wc;
        }
    }
    if (n && poll(fds, n, 0) > 0) {
        for (size_t i = 0; i < n; i++)
            if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
                who[i]->hangup = true;
                enqueue_locked(ws, who[i]);
            }
    }
    free(fds);
    free(who);
}

static void *resumer_main(void *arg)
{
    struct kf_api *api = arg;
    struct api_watchers *ws = api->watchers;
    uint64_t period = scan_period_ns(api);
    uint64_t next_scan = kf_mono_ns() + period;
    struct MHD_Connection **conns = NULL;
    size_t alloc = 0;

    pthread_mutex_lock(&ws->lock);
    while (!ws->quit) {
        size_t n = 0;
        uint64_t now;

        if (!ws->qhead) {
            struct timespec ts;
            uint64_t wait = next_scan > kf_mono_ns() ? next_scan - kf_mono_ns() : 0;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += (time_t)(wait / 1000000000ull);
            ts.tv_nsec += (long)(wait % 1000000000ull);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&ws->cond, &ws->lock, &ts);
        }
        now = kf_mono_ns();
        if (now >= next_scan) {
            scan_locked(api, ws);
            next_scan = now + period;
        }
        while (ws->qhead) {
            struct api_watch *wc = ws->qhead;

            ws->qhead = wc->qnext;
            if (!ws->qhead)
                ws->qtail = NULL;
            wc->queued = false;
            wc->suspended = false;
            ws->n_suspended--;
            KF_GROW(conns, alloc, n);
            conns[n++] = wc->conn;
        }
        if (!n)
            continue;
        /* The connections stay suspended (and so valid) until resumed
         * here: nobody else resumes them, and MHD does not close them. */
        pthread_cond_broadcast(&ws->cond);
        pthread_mutex_unlock(&ws->lock);
        for (size_t i = 0; i < n; i++)
            MHD_resume_connection(conns[i]);
        pthread_mutex_lock(&ws->lock);
    }
    pthread_mutex_unlock(&ws->lock);
    free(conns);
    return NULL;
}

int api_watchers_new(struct kf_api *api)
{
    struct api_watchers *ws = kf_xcalloc(1, sizeof(*ws));
    pthread_condattr_t attr;

    pthread_mutex_init(&ws->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&ws->cond, &attr);
    pthread_condattr_destroy(&attr);
    api->watchers = ws;
    if (pthread_create(&ws->thread, NULL, resumer_main, api) != 0)
        kf_abort("cannot start the watch resumer thread");
    ws->thread_started = true;
    return 0;
}

/* Whether every watch has been seen by its reader since shutdown began (or
 * completed): only then has libmicrohttpd itself resumed it, which
 * MHD_stop_daemon requires. */
static bool all_resumed_locked(struct api_watchers *ws)
{
    for (struct api_watch *wc = ws->all; wc; wc = wc->next)
        if (!wc->saw_stop)
            return false;
    return !ws->n_suspending;
}

void api_watchers_stop(struct kf_api *api)
{
    struct api_watchers *ws = api->watchers;
    uint64_t give_up;

    if (!ws)
        return;
    give_up = kf_mono_ns() + 10ull * 1000000000ull;
    pthread_mutex_lock(&ws->lock);
    for (;;) {
        struct timespec ts;

        for (struct api_watch *wc = ws->all; wc; wc = wc->next)
            enqueue_locked(ws, wc);
        if (all_resumed_locked(ws) || kf_mono_ns() > give_up)
            break;
        pthread_cond_broadcast(&ws->cond);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ws->cond, &ws->lock, &ts);
    }
    if (!all_resumed_locked(ws))
        kf_log_warn("%zu watches did not end within 10 s of shutdown", ws->n_all);
    pthread_mutex_unlock(&ws->lock);
}

void api_watchers_free(struct kf_api *api)
{
    struct api_watchers *ws = api->watchers;

    if (!ws)
        return;
    if (ws->thread_started) {
        pthread_mutex_lock(&ws->lock);
        ws->quit = true;
        pthread_cond_broadcast(&ws->cond);
        pthread_mutex_unlock(&ws->lock);
        pthread_join(ws->thread, NULL);
    }
    pthread_mutex_destroy(&ws->lock);
    pthread_cond_destroy(&ws->cond);
    free(ws);
    api->watchers = NULL;
}

size_t api_watchers_count(struct kf_api *api, const struct kf_kind *k)
{
    struct api_watchers *ws = api->watchers;
    size_t n = 0;

    if (!ws)
        return 0;
    pthread_mutex_lock(&ws->lock);
    for (struct api_watch *wc = ws->all; wc; wc = wc->next)
        if (!k || wc->kind == k)
            n++;
    pthread_mutex_unlock(&ws->lock);
    return n;
}

/* --- events ---------------------------------------------------------------- */

static void add_event_raw(struct api_watch *wc, const char *type, const char *bytes, size_t len,
                          int64_t rev)
{
    size_t mark = wc->out.len;

    kf_strbuf_addf(&wc->out, "{\"type\":\"%s\",\"object\":", type);
    if (kf_obj_write(&wc->out, bytes, len, rev) < 0) {
        kf_strbuf_setlen(&wc->out, mark);
        return;
    }
    kf_strbuf_addstr(&wc->out, "}\n");
}

static void add_event_json(struct api_watch *wc, const char *type, json_t *obj)
{
    kf_strbuf_addf(&wc->out, "{\"type\":\"%s\",\"object\":", type);
    kf_json_dump_sb(obj, &wc->out);
    kf_strbuf_addstr(&wc->out, "}\n");
}

static void add_event(struct api_watch *wc, const char *type, const char *bytes, size_t len,
                      int64_t rev)
{
    json_t *obj, *table;
    char rvs[24];

    kf_metric_add(wc->api->m_watch_events, KF_LABELS(wc->kind->plural, type), 1);
    if (!wc->table) {
        add_event_raw(wc, type, bytes, len, rev);
        return;
    }
    if (kf_obj_decode(bytes, len, rev, &obj) < 0)
        return;
    snprintf(rvs, sizeof(rvs), "%lld", (long long)rev);
    table = api_table_new(wc->kind, rvs, NULL);
    api_table_add_row(table, wc->kind, obj, wc->include);
    add_event_json(wc, type, table);
    json_decref(table);
    json_decref(obj);
}

static void add_bookmark(struct api_watch *wc, int64_t rev, bool initial_end)
{
    kf_metric_add(wc->api->m_watch_events, KF_LABELS(wc->kind->plural, "BOOKMARK"), 1);
    kf_strbuf_addf(
        &wc->out,
        "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"%s\",\"apiVersion\":\"" KF_API_VERSION
        "\",\"metadata\":{\"resourceVersion\":\"%lld\"%s}}}\n",
        wc->kind->kind, (long long)rev,
        initial_end ? ",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}" : "");
}

static void add_error(struct api_watch *wc, int err, const char *message)
{
    json_t *st = api_status_new(err, message, NULL, NULL, NULL);

    kf_metric_add(wc->api->m_watch_events, KF_LABELS(wc->kind->plural, "ERROR"), 1);
    add_event_json(wc, "ERROR", st);
    json_decref(st);
}

/* Moves what the hub has for this watch into wc->out. */
static int fill(struct api_watch *wc)
{
    for (size_t n = 0; n < WATCH_FILL_EVENTS && wc->out.len < WATCH_FILL_BYTES; n++) {
        struct kf_event *ev;
        const char *type;
        int r = kf_watch_next(wc->w, &ev);

        if (r <= 0)
            return r;
        type = kf_registry_watch_type(ev, wc->labels, wc->fields);
        if (type) {
            bool del = strcmp(type, "DELETED") == 0;
            /* A deleted object, or one that stopped matching, is sent as
             * it was before, at the revision of the change (as Kubernetes
             * does). */
            const char *bytes = ev->kv.value;
            size_t len = ev->kv.value_len;

            if (del && ev->type == KF_EVENT_PUT && ev->prev_value) {
                bytes = ev->prev_value;
                len = ev->prev_len;
            }
            add_event(wc, type, bytes, len, ev->kv.mod_rev);
        }
        kf_event_unref(ev);
    }
    return 0;
}

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct api_watch *wc = cls;
    struct kf_api *api = wc->api;
    struct api_watchers *ws = api->watchers;

    for (;;) {
        bool hangup, stopping;
        uint64_t now;
        int r;

        if (wc->out_pos < wc->out.len) {
            size_t n = KF_MIN(max, wc->out.len - wc->out_pos);

            memcpy(buf, wc->out.buf + wc->out_pos, n);
            wc->out_pos += n;
            if (wc->out_pos == wc->out.len) {
                wc->out_pos = 0;
                kf_strbuf_reset(&wc->out);
                if (wc->out.alloc > 4 * WATCH_FILL_BYTES)
                    kf_strbuf_release(&wc->out);
            }
            return (ssize_t)n;
        }
        if (wc->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;

        stopping = __atomic_load_n(&api->stopping, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&ws->lock);
        hangup = wc->hangup;
        wc->pending = false;
        wc->tick = false;
        if (stopping && !wc->saw_stop) {
            wc->saw_stop = true;
            pthread_cond_broadcast(&ws->cond);
        }
        pthread_mutex_unlock(&ws->lock);
        if (hangup)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        now = kf_mono_ns();
        if (stopping || now >= wc->deadline_ns) {
            wc->ended = true;
            continue;
        }
        r = fill(wc);
        if (r < 0) {
            if (r == -KF_ECOMPACTED)
                add_error(wc, r,
                          "the watch fell behind and its events were compacted away: "
                          "list again and watch from the new resourceVersion");
            else if (r != -EPIPE)
                add_error(wc, -EIO, "internal error reading the store's changes");
            wc->ended = true;
            continue;
        }
        if (wc->bookmarks && now >= wc->next_bookmark_ns) {
            add_bookmark(wc, kf_watch_progress(wc->w), false);
            wc->next_bookmark_ns = now + (uint64_t)api->cfg.bookmark_interval_ms * 1000000ull;
        }
        if (wc->out.len)
            continue;

        /* Nothing to send: suspend, unless a wake-up came meanwhile. */
        pthread_mutex_lock(&ws->lock);
        if (wc->pending || wc->tick || wc->hangup ||
            __atomic_load_n(&api->stopping, __ATOMIC_SEQ_CST)) {
            pthread_mutex_unlock(&ws->lock);
            continue;
        }
        ws->n_suspending++;
        pthread_mutex_unlock(&ws->lock);
        MHD_suspend_connection(wc->conn);
        pthread_mutex_lock(&ws->lock);
        ws->n_suspending--;
        wc->suspended = true;
        ws->n_suspended++;
        if (wc->pending || wc->tick || wc->hangup ||
            __atomic_load_n(&api->stopping, __ATOMIC_SEQ_CST))
            enqueue_locked(ws, wc);
        pthread_cond_broadcast(&ws->cond);
        pthread_mutex_unlock(&ws->lock);
        return 0;
    }
}

static void watch_free(struct api_watch *wc)
{
    kf_watch_close(wc->w);
    kf_selector_free(wc->labels);
    kf_selector_free(wc->fields);
    kf_strbuf_release(&wc->out);
    free(wc);
}

void api_watch_finish(struct api_request *req)
{
    struct api_watch *wc = req->watch;
    struct api_watchers *ws = req->api->watchers;

    req->watch = NULL;
    if (!wc)
        return;
    /* After kf_watch_close the hub calls watch_wake no more. */
    kf_watch_close(wc->w);
    wc->w = NULL;
    pthread_mutex_lock(&ws->lock);
    if (wc->prev)
        wc->prev->next = wc->next;
    else
        ws->all = wc->next;
    if (wc->next)
        wc->next->prev = wc->prev;
    ws->n_all--;
    if (wc->queued) {
        /* cannot happen (a queued watch is suspended, and a suspended
         * connection does not complete), but never leave a dangling entry */
        struct api_watch **pp = &ws->qhead, *last = NULL;

        while (*pp && *pp != wc) {
            last = *pp;
            pp = &(*pp)->qnext;
        }
        if (*pp)
            *pp = wc->qnext;
        if (ws->qtail == wc)
            ws->qtail = last;
    }
    if (wc->suspended)
        ws->n_suspended--;
    pthread_mutex_unlock(&ws->lock);
    watch_free(wc);
}

/* --- starting a watch ------------------------------------------------------ */

static int watch_params(struct api_request *req, struct api_watch *wc, int64_t *ret_rv,
                        bool *ret_initial, bool *ret_initial_bookmark)
{
    struct kf_api *api = req->api;
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *rv = api_query_get(&req->query, "resourceVersion");
    const char *ts = api_query_get(&req->query, "timeoutSeconds");
    bool send_initial = false, bookmarks = false;
    int64_t timeout_s = 0, n = 0;
    uint64_t timeout_ns;

    if (api_query_bool(&req->query, "allowWatchBookmarks", &bookmarks, &err) < 0 ||
        api_query_bool(&req->query, "sendInitialEvents", &send_initial, &err) < 0) {
        api_reply_status(req, -KF_EBADREQUEST, err.buf, NULL);
        kf_strbuf_release(&err);
        return -KF_EBADREQUEST;
    }
    if (rv && *rv && (kf_parse_int64(rv, &n) < 0 || n < 0)) {
        api_reply_statusf(req, -KF_EBADREQUEST,
                          "resourceVersion \"%s\" is not valid: it must be a non-negative number "
                          "from metadata.resourceVersion",
                          rv);
        return -KF_EBADREQUEST;
    }
    if (ts && *ts && (kf_parse_int64(ts, &timeout_s) < 0 || timeout_s < 0)) {
        api_reply_statusf(req, -KF_EBADREQUEST,
                          "timeoutSeconds \"%s\" must be a non-negative integer", ts);
        return -KF_EBADREQUEST;
    }
    if (send_initial && !bookmarks) {
        api_reply_statusf(req, -KF_EINVALID,
                          "sendInitialEvents needs allowWatchBookmarks=true (the end of the "
                          "initial events is a BOOKMARK)");
        return -KF_EINVALID;
    }
    if (timeout_s > 0) {
        timeout_ns =
            (uint64_t)KF_MIN(timeout_s, (int64_t)api->cfg.watch_timeout_max_s) * 1000000000ull;
    } else {
        /* as Kubernetes: the default timeout with up to 100 % jitter */
        uint32_t rnd;
        uint64_t base = (uint64_t)api->cfg.watch_timeout_s * 1000000000ull;
        uint64_t max = (uint64_t)api->cfg.watch_timeout_max_s * 1000000000ull;

        kf_random_bytes(&rnd, sizeof(rnd));
        timeout_ns = KF_MIN(base + base * (rnd % 1000) / 1000, max);
    }
    wc->deadline_ns = kf_mono_ns() + timeout_ns;
    wc->bookmarks = bookmarks;
    wc->next_bookmark_ns = kf_mono_ns() + (uint64_t)api->cfg.bookmark_interval_ms * 1000000ull;
    /* No resourceVersion (or "0"): start with the current state as ADDED
     * events; sendInitialEvents does the same for a given one. */
    *ret_initial = send_initial || !rv || !*rv || n == 0;
    *ret_initial_bookmark = send_initial;
    *ret_rv = *ret_initial ? 0 : n;
    return 0;
}

/* The current state as ADDED events; *ret_rev is the revision it reflects. */
static int initial_events(struct api_request *req, struct api_watch *wc, int64_t *ret_rev)
{
    struct kf_list_opts o = { .labels = wc->labels, .fields = wc->fields };
    struct kf_kv_list l = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *cont = NULL;
    int r;

    r = kf_registry_list_raw(req->api->reg, wc->kind, &o, &l, &cont, &err);
    if (r < 0) {
        api_reply_status(req, r, err.len ? err.buf : NULL, NULL);
        kf_strbuf_release(&err);
        return r;
    }
    for (size_t i = 0; i < l.n; i++)
        add_event(wc, "ADDED", l.items[i].value, l.items[i].value_len, l.items[i].mod_rev);
    *ret_rev = l.rev;
    kf_kv_list_release(&l);
    kf_strbuf_release(&err);
    free(cont);
    return 0;
}

int api_serve_watch(struct api_request *req)
{
    struct kf_api *api = req->api;
    struct api_watchers *ws = api->watchers;
    struct api_watch *wc;
    struct MHD_Response *resp;
    const union MHD_ConnectionInfo *ci;
    int64_t rv = 0;
    bool initial = false, initial_bookmark = false;
    char *prefix;
    int r;

    if (__atomic_load_n(&api->stopping, __ATOMIC_SEQ_CST))
        return api_reply_statusf(req, -KF_EUNAVAILABLE, "kfleetd is shutting down");
    wc = kf_xcalloc(1, sizeof(*wc));
    wc->api = api;
    wc->conn = req->conn;
    wc->kind = req->kind;
    wc->fd = -1;
    if (api_selectors_from_query(req, &wc->labels, &wc->fields) < 0)
        goto fail;
    if (req->name) {
        /* the deprecated /<plural>/<name>?watch=true: a name selector */
        struct kf_strbuf sel = KF_STRBUF_INIT, err = KF_STRBUF_INIT;

        kf_strbuf_addf(&sel, "metadata.name=%s", req->name);
        kf_selector_free(wc->fields);
        wc->fields = NULL;
        r = kf_selector_parse_fields(sel.buf, &wc->fields, &err);
        kf_strbuf_release(&sel);
        kf_strbuf_release(&err);
        if (r < 0) {
            api_reply_statusf(req, -KF_ENOTFOUND, "no object can be named \"%s\"", req->name);
            goto fail;
        }
    }
    wc->table = api_wants_table(req);
    if (wc->table && api_table_include(req, &wc->include) < 0)
        goto fail;
    if (watch_params(req, wc, &rv, &initial, &initial_bookmark) < 0)
        goto fail;
    if (initial && initial_events(req, wc, &rv) < 0)
        goto fail;
    if (initial_bookmark)
        add_bookmark(wc, rv, true);

    prefix = kf_obj_prefix(wc->kind);
    r = kf_watch_open(api->store, prefix, rv, watch_wake, wc, &wc->w);
    free(prefix);
    if (r == -KF_ECOMPACTED) {
        /* As Kubernetes: 200, then one ERROR event with the 410 Status. */
        char *msg = kf_xasprintf("too old resource version: %lld (compacted: list again and "
                                 "watch from the list's resourceVersion)",
                                 (long long)rv);

        add_error(wc, r, msg);
        free(msg);
        wc->ended = true;
        wc->w = NULL;
    } else if (r < 0) {
        api_reply_statusf(req, -KF_EUNAVAILABLE, "cannot watch the store: %s", strerror(-r));
        goto fail;
    }
    ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
        wc->fd = ci->connect_fd;

    pthread_mutex_lock(&ws->lock);
    wc->next = ws->all;
    if (ws->all)
        ws->all->prev = wc;
    ws->all = wc;
    ws->n_all++;
    pthread_mutex_unlock(&ws->lock);
    req->watch = wc;

    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, WATCH_BLOCK, watch_read, wc, NULL);
    if (!resp) {
        kf_log_rl_warn("cannot create a watch response");
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, private");
    r = MHD_queue_response(req->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    req->replied = true;
    req->status = MHD_HTTP_OK;
    return r;

fail:
    watch_free(wc);
    return 0;
}
