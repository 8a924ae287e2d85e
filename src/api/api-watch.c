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
 *   - the store's watch hub calls watch_wake from a writer's thread, with
 *     hub locks held: it marks the watch pending and, if it is suspended,
 *     claims it and pushes it on a lock-free stack; the push that finds the
 *     stack empty rings the resumer's eventfd;
 *   - the resumer takes the whole stack at once and calls
 *     MHD_resume_connection for each, holding no lock of ours;
 *   - once a second (or per bookmark interval, if shorter) it also claims
 *     suspended watches whose BOOKMARK or server-side timeout is due, and
 *     polls their sockets for a hang-up (a suspended connection does not
 *     notice that its client went away; this is how it is cleaned up).
 * A write thus costs each watcher an atomic flag and a compare-and-swap;
 * 1,000 watchers are woken by one eventfd write and one pass of the
 * resumer (see bench/api and docs/internals/api.md).
 *
 * libmicrohttpd allows resuming only a suspended connection, exactly once.
 * `suspended` is set by the reader after MHD_suspend_connection returned,
 * and whoever moves it from 1 to 0 (compare-and-swap: the hub's wake, the
 * resumer's scan, shutdown, or the reader itself when a wake-up raced its
 * suspend) owns the one resume. All flags are sequentially consistent
 * atomics: the reader stores suspended then reads pending, a waker stores
 * pending then reads suspended, so no wake-up is lost. The list of all
 * watches (for the scan and the metrics) is under watchers->lock; the hub
 * lock is never taken with it held.
 *
 * Shutdown: kf_api_stop sets api->stopping and calls kf_api_watchers_stop,
 * which claims every suspended watch and waits until each reader has run
 * since (so libmicrohttpd has really resumed it) and ended its stream
 * cleanly (the chunked terminator); MHD_stop_daemon then never sees a
 * suspended connection, which it does not allow.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/store.h"
#include "api/api-internal.h"

KF_LOG_MODULE(api);

#define WATCH_BLOCK        (8 * 1024)   /* MHD's write buffer for a watch */
#define WATCH_FILL_BYTES   (256 * 1024) /* stop draining the hub past this */
#define WATCH_FILL_EVENTS  4096
#define WATCH_INITIAL_PAGE 1000 /* initial events listed at a time (at most cfg.list_max_page) */

#define LOAD(p)     __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

struct api_watch {
    struct kf_api *api;
    struct MHD_Connection *conn;
    int fd;
    const struct kf_kind *kind;
    size_t kind_index;
    struct kf_selector *labels, *fields;
    bool table;
    enum kf_api_table_include include;
    bool bookmarks;
    struct kf_watch *w;

    /* Owned by the reader (one MHD thread at a time). */
    struct kf_strbuf out;
    size_t out_pos;
    uint64_t deadline_ns;
    uint64_t next_bookmark_ns;
    bool ended;
    bool more; /* the last fill stopped at its limits: the hub has more */
    /* The initial events come a page at a time, each listed when the one
     * before has been sent, so a watch of a whole kind never renders the
     * kind at once. init_cont: the next page's continue token (pages are
     * read at init_rev); the hub's events wait until it is NULL. */
    char *init_cont;
    int64_t init_rev;
    bool init_bookmark; /* sendInitialEvents: a BOOKMARK after the last page */
    char *user;         /* counted in the user's watches, or NULL */

    /* Shared; atomics. */
    int pending;             /* the hub may have events */
    int tick;                /* a bookmark or the deadline is due */
    int hangup;              /* the client closed its end */
    int suspended;           /* MHD has it suspended and nobody has claimed its resume */
    int saw_stop;            /* the reader ran after shutdown began (so MHD resumed it) */
    struct api_watch *qnext; /* link in the resume stack */

    /* Guarded by watchers->lock. */
    struct api_watch *prev, *next;
};

struct api_watchers {
    pthread_mutex_t lock; /* the list below */
    struct api_watch *all;
    size_t n_all;

    struct api_watch *stack; /* atomic: claimed watches to resume */
    int efd;                 /* the resumer's doorbell */
    size_t n_suspended;      /* atomic */
    size_t n_suspending;     /* atomic: between deciding to suspend and marking it */
    int quit;                /* atomic */
    pthread_t thread;
    bool thread_started;
};

/* --- claiming and resuming ------------------------------------------------ */

static void ring(struct api_watchers *ws)
{
    uint64_t one = 1;

    while (write(ws->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

/* Takes the one right to resume wc if it is suspended and unclaimed, and
 * hands it to the resumer. Returns whether it did. */
static bool claim(struct api_watchers *ws, struct api_watch *wc)
{
    int expect = 1;
    struct api_watch *old;

    if (!__atomic_compare_exchange_n(&wc->suspended, &expect, 0, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST))
        return false;
    __atomic_sub_fetch(&ws->n_suspended, 1, __ATOMIC_SEQ_CST);
    old = __atomic_load_n(&ws->stack, __ATOMIC_ACQUIRE);
    do
        wc->qnext = old;
    while (!__atomic_compare_exchange_n(&ws->stack, &old, wc, true, __ATOMIC_RELEASE,
                                        __ATOMIC_ACQUIRE));
    if (!old)
        ring(ws);
    return true;
}

static void watch_wake(void *arg)
{
    struct api_watch *wc = arg;

    STORE(&wc->pending, 1);
    claim(wc->api->watchers, wc);
}

static uint64_t scan_period_ns(const struct kf_api *api)
{
    uint64_t ms = KF_MIN(1000u, api->cfg.bookmark_interval_ms);

    return KF_MAX(ms, 20u) * 1000000ull;
}

/* Claims suspended watches that are due (bookmark, deadline) or whose
 * client hung up. */
static void scan(struct kf_api *api, struct api_watchers *ws)
{
    uint64_t now = kf_mono_ns();
    struct pollfd *fds;
    struct api_watch **who;
    size_t n = 0, cap;

    pthread_mutex_lock(&ws->lock);
    cap = ws->n_all;
    fds = kf_xcalloc(cap + 1, sizeof(*fds));
    who = kf_xcalloc(cap + 1, sizeof(*who));
    for (struct api_watch *wc = ws->all; wc; wc = wc->next) {
        if (!LOAD(&wc->suspended))
            continue;
        if (now >= wc->deadline_ns || (wc->bookmarks && now >= wc->next_bookmark_ns)) {
            STORE(&wc->tick, 1);
            claim(ws, wc);
            continue;
        }
        if (wc->fd >= 0 && n < cap) {
            fds[n].fd = wc->fd;
            fds[n].events = POLLRDHUP;
            who[n++] = wc;
        }
    }
    /* The watches stay in the list (and allocated) while the lock is held;
     * one claimed meanwhile is simply not claimed again. */
    if (n && poll(fds, n, 0) > 0) {
        for (size_t i = 0; i < n; i++)
            if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
                STORE(&who[i]->hangup, 1);
                claim(ws, who[i]);
            }
    }
    pthread_mutex_unlock(&ws->lock);
    free(fds);
    free(who);
}

/* Resumes every claimed watch, oldest claim first. */
static void resume_claimed(struct api_watchers *ws, struct MHD_Connection ***conns, size_t *alloc)
{
    struct api_watch *wc = __atomic_exchange_n(&ws->stack, NULL, __ATOMIC_ACQUIRE);
    size_t n = 0;

    /* Read what is needed before the first resume: a resumed watch may
     * complete (and be freed) at once. */
    for (; wc; wc = wc->qnext) {
        KF_GROW(*conns, *alloc, n);
        (*conns)[n++] = wc->conn;
    }
    while (n > 0)
        MHD_resume_connection((*conns)[--n]);
}

static void *resumer_main(void *arg)
{
    struct kf_api *api = arg;
    struct api_watchers *ws = api->watchers;
    uint64_t period = scan_period_ns(api);
    uint64_t next_scan = kf_mono_ns() + period;
    struct MHD_Connection **conns = NULL;
    size_t alloc = 0;

    while (!LOAD(&ws->quit)) {
        struct pollfd p = { .fd = ws->efd, .events = POLLIN };
        uint64_t now = kf_mono_ns();
        int timeout = next_scan > now ? (int)((next_scan - now) / 1000000ull) + 1 : 0;

        if (poll(&p, 1, timeout) > 0 && (p.revents & POLLIN)) {
            uint64_t v;

            if (read(ws->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                kf_log_rl_warn("watch resumer: reading its eventfd: %s", strerror(errno));
        }
        now = kf_mono_ns();
        if (now >= next_scan) {
            scan(api, ws);
            next_scan = now + period;
        }
        resume_claimed(ws, &conns, &alloc);
    }
    free(conns);
    return NULL;
}

int kf_api_watchers_new(struct kf_api *api)
{
    struct api_watchers *ws = kf_xcalloc(1, sizeof(*ws));

    pthread_mutex_init(&ws->lock, NULL);
    ws->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ws->efd < 0)
        kf_abort("cannot create the watch resumer's eventfd: %s", strerror(errno));
    api->watchers = ws;
    if (pthread_create(&ws->thread, NULL, resumer_main, api) != 0)
        kf_abort("cannot start the watch resumer thread");
    ws->thread_started = true;
    return 0;
}

/* Whether every watch has been seen by its reader since shutdown began:
 * only then has libmicrohttpd itself resumed it, which MHD_stop_daemon
 * requires. */
static bool all_resumed(struct api_watchers *ws)
{
    bool all = true;

    pthread_mutex_lock(&ws->lock);
    for (struct api_watch *wc = ws->all; wc; wc = wc->next) {
        claim(ws, wc);
        if (!LOAD(&wc->saw_stop))
            all = false;
    }
    pthread_mutex_unlock(&ws->lock);
    return all && !LOAD(&ws->n_suspending);
}

void kf_api_watchers_stop(struct kf_api *api)
{
    struct api_watchers *ws = api->watchers;
    uint64_t give_up;

    if (!ws)
        return;
    give_up = kf_mono_ns() + 10ull * 1000000000ull;
    while (!all_resumed(ws)) {
        struct timespec ts = { 0, 10 * 1000000L };

        if (kf_mono_ns() > give_up) {
            kf_log_warn("%zu watches did not end within 10 s of shutdown", ws->n_all);
            break;
        }
        nanosleep(&ts, NULL);
    }
}

void kf_api_watchers_free(struct kf_api *api)
{
    struct api_watchers *ws = api->watchers;

    if (!ws)
        return;
    if (ws->thread_started) {
        STORE(&ws->quit, 1);
        ring(ws);
        pthread_join(ws->thread, NULL);
    }
    close(ws->efd);
    pthread_mutex_destroy(&ws->lock);
    free(ws);
    api->watchers = NULL;
}

size_t kf_api_watchers_count(struct kf_api *api, const struct kf_kind *k)
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

    kf_api_count_watch_event(wc->api, wc->kind_index, type);
    if (!wc->table) {
        add_event_raw(wc, type, bytes, len, rev);
        return;
    }
    if (kf_obj_decode(bytes, len, rev, &obj) < 0)
        return;
    snprintf(rvs, sizeof(rvs), "%lld", (long long)rev);
    table = kf_api_table_new(wc->kind, rvs, NULL);
    kf_api_table_add_row(table, wc->kind, obj, wc->include);
    add_event_json(wc, type, table);
    json_decref(table);
    json_decref(obj);
}

static void add_bookmark(struct api_watch *wc, int64_t rev, bool initial_end)
{
    kf_api_count_watch_event(wc->api, wc->kind_index, "BOOKMARK");
    kf_strbuf_addf(
        &wc->out,
        "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"%s\",\"apiVersion\":\"" KF_API_VERSION
        "\",\"metadata\":{\"resourceVersion\":\"%lld\"%s}}}\n",
        wc->kind->kind, (long long)rev,
        initial_end ? ",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}" : "");
}

static void add_error(struct api_watch *wc, int err, const char *message)
{
    json_t *st = kf_api_status_new(err, message, NULL, NULL, NULL);

    kf_api_count_watch_event(wc->api, wc->kind_index, "ERROR");
    add_event_json(wc, "ERROR", st);
    json_decref(st);
}

/* Moves what the hub has for this watch into wc->out. */
static int fill(struct api_watch *wc)
{
    wc->more = true;
    for (size_t n = 0; n < WATCH_FILL_EVENTS && wc->out.len < WATCH_FILL_BYTES; n++) {
        struct kf_event *ev;
        const char *type;
        int r = kf_watch_next(wc->w, &ev);

        if (r <= 0) {
            wc->more = false;
            return r;
        }
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

static size_t initial_page(const struct kf_api *api)
{
    return KF_MIN((size_t)WATCH_INITIAL_PAGE, api->cfg.list_max_page);
}

/* Lists one page of the initial events: from the start (init_cont NULL,
 * first) or from init_cont. Sets init_cont to the next page's token or NULL
 * at the end (then the closing BOOKMARK, if asked). */
static int initial_page_add(struct api_watch *wc, bool first, struct kf_strbuf *err)
{
    struct kf_list_opts o = { .labels = wc->labels,
                              .fields = wc->fields,
                              .limit = initial_page(wc->api),
                              .continue_token = first ? NULL : wc->init_cont };
    struct kf_kv_list l = { 0 };
    char *cont = NULL;
    int r;

    r = kf_registry_list_raw(wc->api->reg, wc->kind, &o, &l, &cont, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < l.n; i++)
        add_event(wc, "ADDED", l.items[i].value, l.items[i].value_len, l.items[i].mod_rev);
    if (first)
        wc->init_rev = l.rev;
    kf_kv_list_release(&l);
    free(wc->init_cont);
    wc->init_cont = cont;
    if (!cont && wc->init_bookmark)
        add_bookmark(wc, wc->init_rev, true);
    return 0;
}

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct api_watch *wc = cls;
    struct kf_api *api = wc->api;
    struct api_watchers *ws = api->watchers;

    for (;;) {
        bool stopping, pending;
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

        stopping = LOAD(&api->stopping);
        if (stopping)
            STORE(&wc->saw_stop, 1);
        /* The hub is read only when it said it has something (or the last
         * read stopped early): every read takes the hub's lock, which all
         * request threads share. */
        pending = __atomic_exchange_n(&wc->pending, 0, __ATOMIC_SEQ_CST) || wc->more;
        STORE(&wc->tick, 0);
        if (LOAD(&wc->hangup))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        now = kf_mono_ns();
        if (stopping || now >= wc->deadline_ns) {
            wc->ended = true;
            continue;
        }
        if (wc->init_cont) {
            struct kf_strbuf err = KF_STRBUF_INIT;

            r = initial_page_add(wc, false, &err);
            if (r < 0) {
                add_error(wc, r == -KF_ECOMPACTED ? r : -EIO,
                          r == -KF_ECOMPACTED ? "the initial events were compacted away while "
                                                "they were sent: list and watch again"
                                              : "internal error listing the initial events");
                wc->ended = true;
            }
            kf_strbuf_release(&err);
            continue;
        }
        r = pending ? fill(wc) : 0;
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
        if (wc->bookmarks && now >= wc->next_bookmark_ns && !wc->init_cont) {
            add_bookmark(wc, kf_watch_progress(wc->w), false);
            wc->next_bookmark_ns = now + (uint64_t)api->cfg.bookmark_interval_ms * 1000000ull;
        }
        if (wc->out.len)
            continue;

        /* Nothing to send: suspend, unless a wake-up came meanwhile. */
        if (LOAD(&wc->pending) || LOAD(&wc->tick) || LOAD(&wc->hangup) || LOAD(&api->stopping))
            continue;
        __atomic_add_fetch(&ws->n_suspending, 1, __ATOMIC_SEQ_CST);
        MHD_suspend_connection(wc->conn);
        __atomic_add_fetch(&ws->n_suspended, 1, __ATOMIC_SEQ_CST);
        STORE(&wc->suspended, 1);
        __atomic_sub_fetch(&ws->n_suspending, 1, __ATOMIC_SEQ_CST);
        /* a wake-up between the check above and the store: resume now */
        if (LOAD(&wc->pending) || LOAD(&wc->tick) || LOAD(&wc->hangup) || LOAD(&api->stopping))
            claim(ws, wc);
        return 0;
    }
}

static void watch_free(struct api_watch *wc)
{
    kf_api_user_watch_release(wc->api, wc->user);
    free(wc->user);
    free(wc->init_cont);
    kf_watch_close(wc->w);
    kf_selector_free(wc->labels);
    kf_selector_free(wc->fields);
    kf_strbuf_release(&wc->out);
    free(wc);
}

void kf_api_watch_finish(struct api_request *req)
{
    struct api_watch *wc = req->watch;
    struct api_watchers *ws = req->api->watchers;

    req->watch = NULL;
    if (!wc)
        return;
    /* After kf_watch_close the hub calls watch_wake no more; a completed
     * connection is not suspended, so nothing else can claim it. */
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
    pthread_mutex_unlock(&ws->lock);
    watch_free(wc);
}

/* --- starting a watch ------------------------------------------------------ */

static int watch_params(struct api_request *req, struct api_watch *wc, int64_t *ret_rv,
                        bool *ret_initial, bool *ret_initial_bookmark)
{
    struct kf_api *api = req->api;
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *rv = kf_api_query_get(&req->query, "resourceVersion");
    const char *ts = kf_api_query_get(&req->query, "timeoutSeconds");
    bool send_initial = false, bookmarks = false;
    int64_t timeout_s = 0, n = 0;
    uint64_t timeout_ns;

    if (kf_api_query_bool(&req->query, "allowWatchBookmarks", &bookmarks, &err) < 0 ||
        kf_api_query_bool(&req->query, "sendInitialEvents", &send_initial, &err) < 0) {
        kf_api_reply_status(req, -KF_EBADREQUEST, err.buf, NULL);
        kf_strbuf_release(&err);
        return -KF_EBADREQUEST;
    }
    if (rv && *rv && (kf_parse_int64(rv, &n) < 0 || n < 0)) {
        kf_api_reply_statusf(
            req, -KF_EBADREQUEST,
            "resourceVersion \"%s\" is not valid: it must be a non-negative number "
            "from metadata.resourceVersion",
            rv);
        return -KF_EBADREQUEST;
    }
    if (ts && *ts && (kf_parse_int64(ts, &timeout_s) < 0 || timeout_s < 0)) {
        kf_api_reply_statusf(req, -KF_EBADREQUEST,
                             "timeoutSeconds \"%s\" must be a non-negative integer", ts);
        return -KF_EBADREQUEST;
    }
    if (send_initial && !bookmarks) {
        kf_api_reply_statusf(req, -KF_EINVALID,
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

/* The current state as ADDED events, its first page now (the rest from
 * watch_read); *ret_rev is the revision it reflects. */
static int initial_events(struct api_request *req, struct api_watch *wc, int64_t *ret_rev)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r;

    r = initial_page_add(wc, true, &err);
    if (r < 0) {
        kf_api_reply_status(req, r, err.len ? err.buf : NULL, NULL);
        kf_strbuf_release(&err);
        return r;
    }
    *ret_rev = wc->init_rev;
    kf_strbuf_release(&err);
    return 0;
}

int kf_api_serve_watch(struct api_request *req)
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
        return kf_api_reply_statusf(req, -KF_EUNAVAILABLE, "kfleetd is shutting down");
    wc = kf_xcalloc(1, sizeof(*wc));
    wc->api = api;
    wc->conn = req->conn;
    wc->kind = req->kind;
    wc->kind_index = kf_api_kind_index(req->kind);
    wc->fd = -1;
    wc->pending = 1; /* read the hub once: a past resourceVersion has events already */
    if (kf_api_selectors_from_query(req, &wc->labels, &wc->fields) < 0)
        goto free_watch;
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
            kf_api_reply_statusf(req, -KF_ENOTFOUND, "no object can be named \"%s\"", req->name);
            goto free_watch;
        }
    }
    wc->table = kf_api_wants_table(req);
    if (wc->table && kf_api_table_include(req, &wc->include) < 0)
        goto free_watch;
    if (watch_params(req, wc, &rv, &initial, &initial_bookmark) < 0)
        goto free_watch;
    if (kf_api_user_watch_acquire(req) < 0)
        goto free_watch;
    wc->user = req->user ? kf_xstrdup(req->user) : NULL;
    wc->init_bookmark = initial_bookmark;
    if (initial && initial_events(req, wc, &rv) < 0)
        goto free_watch;

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
        kf_api_reply_statusf(req, -KF_EUNAVAILABLE, "cannot watch the store: %s", strerror(-r));
        goto free_watch;
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

free_watch:
    watch_free(wc);
    return 0;
}
