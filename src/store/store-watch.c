/* store-watch.c: the watch hub every store has: one shared window of recent
 * events, one cursor per watcher.
 *
 * Backends publish each committed transaction once (kf_store_publish). The
 * hub appends its events to a ring (bounded by event count and bytes) and
 * wakes the watchers; each watcher then reads the ring from its own cursor
 * in its own thread, so fan-out costs one pointer and one wake-up per
 * watcher, not a copy. A watcher that starts before the window, or is
 * overrun by it, reads the backend's history instead (a "fallback") and
 * returns to the ring once it has caught up; if that history was compacted
 * the watch ends with -KF_ECOMPACTED, which the API turns into 410 Gone.
 * A backend whose own feed lost events (etcd's watch came back after a
 * compaction) expires every watcher at once (kf_watch_hub_expire): they
 * end with -KF_ECOMPACTED too, and their clients list again.
 *
 * A watcher's position is (cur_rev, cur_count): it has had every event of
 * the revisions below cur_rev and the first cur_count events of cur_rev.
 * Whenever it knows that a whole revision is behind it (it drained a history
 * batch, which never splits a transaction, or it reached the ring's end,
 * which publish fills a transaction at a time) it moves to (rev + 1, 0), so
 * that it can re-enter the ring as soon as the ring covers it.
 *
 * Locking: hub->lock protects the ring and the watcher list. Backends call
 * kf_store_publish with their own write lock held, so the hub never calls a
 * backend while holding hub->lock: history reads happen unlocked, counted in
 * hub->history_readers so that closing the store waits for them. A watcher's
 * own fields (position, backlog) belong to the thread that reads it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "kfleet/error.h"
#include "kfleet/store.h"
#include "store/store-internal.h"

#define HISTORY_BATCH 1024

struct kf_watch {
    struct kf_store *store;
    struct kf_watch_hub *hub;
    char *prefix;
    size_t prefix_len;
    void (*wake)(void *arg);
    void *arg;
    struct kf_watch *prev, *next;

    int64_t start_after; /* deliver only revisions > this */
    /* What has been delivered: every event of revisions < cur_rev, and the
     * first cur_count events of cur_rev (a transaction may hold several). */
    int64_t cur_rev;
    size_t cur_count;

    bool in_ring;
    uint64_t seq; /* next ring sequence number to read, when in_ring */
    struct kf_event_list backlog;
    size_t backlog_pos;
    /* The backend's history had nothing new although the ring had moved on
     * (a backend whose history lags its events): kf_watch_wait polls. */
    bool lagging;
    /* Events this watcher should have had are lost (kf_watch_hub_expire):
     * it ends with -KF_ECOMPACTED. Written under hub->lock. */
    bool expired;
};

/* Poll period while a watcher is lagging (see kf_watch_wait). */
#define LAG_POLL_MS 10

static size_t default_window_events, default_window_bytes;

void kf_watch_set_default_window(size_t max_events, size_t max_bytes)
{
    default_window_events = max_events;
    default_window_bytes = max_bytes;
}

struct kf_event *kf_event_new(enum kf_event_type type, const char *key, const char *value,
                              size_t value_len, int64_t create_rev, int64_t mod_rev,
                              const char *prev_value, size_t prev_len, int64_t prev_mod_rev)
{
    struct kf_event *ev = kf_xcalloc(1, sizeof(*ev));

    ev->refcnt = 1;
    ev->type = type;
    ev->kv.key = kf_xstrdup(key);
    ev->kv.value = kf_xmalloc(value_len + 1);
    if (value_len)
        memcpy(ev->kv.value, value, value_len);
    ev->kv.value[value_len] = '\0';
    ev->kv.value_len = value_len;
    ev->kv.create_rev = create_rev;
    ev->kv.mod_rev = mod_rev;
    ev->prev_mod_rev = prev_mod_rev;
    if (prev_value) {
        ev->prev_value = kf_xmalloc(prev_len + 1);
        memcpy(ev->prev_value, prev_value, prev_len);
        ev->prev_value[prev_len] = '\0';
        ev->prev_len = prev_len;
    }
    return ev;
}

struct kf_event *kf_event_ref(struct kf_event *ev)
{
    __atomic_add_fetch(&ev->refcnt, 1, __ATOMIC_RELAXED);
    return ev;
}

void kf_event_unref(struct kf_event *ev)
{
    if (!ev || __atomic_sub_fetch(&ev->refcnt, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    kf_kv_release(&ev->kv);
    free(ev->prev_value);
    free(ev);
}

void kf_event_list_release(struct kf_event_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        kf_event_unref(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = l->alloc = 0;
}

static size_t event_bytes(const struct kf_event *ev)
{
    return sizeof(*ev) + strlen(ev->kv.key) + ev->kv.value_len + ev->prev_len + 16;
}

struct kf_watch_hub *kf_watch_hub_new(int64_t rev, int64_t compacted_rev, size_t max_events,
                                      size_t max_bytes)
{
    struct kf_watch_hub *hub = kf_xcalloc(1, sizeof(*hub));
    pthread_condattr_t attr;

    if (!max_events)
        max_events = default_window_events ? default_window_events : KF_WATCH_WINDOW_EVENTS;
    if (!max_bytes)
        max_bytes = default_window_bytes ? default_window_bytes : KF_WATCH_WINDOW_BYTES;
    pthread_mutex_init(&hub->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&hub->cond, &attr);
    pthread_condattr_destroy(&attr);
    hub->cap = max_events;
    hub->max_bytes = max_bytes;
    hub->ring = kf_xcalloc(hub->cap, sizeof(*hub->ring));
    hub->rev = rev;
    hub->window_base_rev = rev;
    hub->compacted_rev = compacted_rev;
    hub->refs = 1;
    return hub;
}

static void hub_free(struct kf_watch_hub *hub)
{
    for (uint64_t s = hub->head_seq; s < hub->next_seq; s++)
        kf_event_unref(hub->ring[s % hub->cap]);
    free(hub->ring);
    pthread_mutex_destroy(&hub->lock);
    pthread_cond_destroy(&hub->cond);
    free(hub);
}

void kf_watch_hub_close(struct kf_watch_hub *hub)
{
    bool freed;

    if (!hub)
        return;
    pthread_mutex_lock(&hub->lock);
    hub->closed = true;
    for (struct kf_watch *w = hub->watchers; w; w = w->next)
        if (w->wake)
            w->wake(w->arg);
    pthread_cond_broadcast(&hub->cond);
    while (hub->history_readers > 0)
        pthread_cond_wait(&hub->cond, &hub->lock);
    freed = --hub->refs == 0;
    pthread_mutex_unlock(&hub->lock);
    if (freed)
        hub_free(hub);
}

static void drop_oldest_locked(struct kf_watch_hub *hub)
{
    struct kf_event *ev = hub->ring[hub->head_seq % hub->cap];

    hub->ring[hub->head_seq % hub->cap] = NULL;
    hub->head_seq++;
    hub->bytes -= event_bytes(ev);
    if (ev->kv.mod_rev > hub->window_base_rev)
        hub->window_base_rev = ev->kv.mod_rev;
    kf_event_unref(ev);
}

void kf_store_publish(struct kf_store *s, struct kf_event **events, size_t n)
{
    struct kf_watch_hub *hub = s->hub;

    if (!hub || !n) {
        for (size_t i = 0; i < n; i++)
            kf_event_unref(events[i]);
        return;
    }
    pthread_mutex_lock(&hub->lock);
    for (size_t i = 0; i < n; i++) {
        size_t b = event_bytes(events[i]);

        kf_assert(events[i]->kv.mod_rev > hub->rev ||
                  (i > 0 && events[i]->kv.mod_rev == events[i - 1]->kv.mod_rev));
        while (hub->next_seq - hub->head_seq >= hub->cap ||
               (hub->next_seq > hub->head_seq && hub->bytes + b > hub->max_bytes))
            drop_oldest_locked(hub);
        hub->ring[hub->next_seq % hub->cap] = events[i];
        hub->next_seq++;
        hub->bytes += b;
        hub->rev = events[i]->kv.mod_rev;
        hub->published++;
    }
    for (struct kf_watch *w = hub->watchers; w; w = w->next)
        if (w->wake)
            w->wake(w->arg);
    pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
}

void kf_store_note_compacted(struct kf_store *s, int64_t rev)
{
    struct kf_watch_hub *hub = s->hub;

    if (!hub)
        return;
    pthread_mutex_lock(&hub->lock);
    if (rev > hub->compacted_rev)
        hub->compacted_rev = rev;
    pthread_mutex_unlock(&hub->lock);
}

size_t kf_watch_hub_expire(struct kf_watch_hub *hub, int64_t rev)
{
    size_t n = 0;

    pthread_mutex_lock(&hub->lock);
    for (struct kf_watch *w = hub->watchers; w; w = w->next) {
        if (!w->expired)
            n++;
        __atomic_store_n(&w->expired, true, __ATOMIC_RELEASE);
        if (w->wake)
            w->wake(w->arg);
    }
    /* Nothing between the last published event and rev will ever be in the
     * ring or in the history: a watcher positioned before rev cannot be
     * served from either. */
    if (rev > hub->rev)
        hub->rev = rev;
    if (rev > hub->window_base_rev)
        hub->window_base_rev = rev;
    if (rev > hub->compacted_rev)
        hub->compacted_rev = rev;
    pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
    return n;
}

/* First sequence number whose event has a revision > rev. */
static uint64_t seq_after_locked(struct kf_watch_hub *hub, int64_t rev)
{
    uint64_t lo = hub->head_seq, hi = hub->next_seq;

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;

        if (hub->ring[mid % hub->cap]->kv.mod_rev <= rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Sequence number of the first event this watcher has not had: skips
 * revisions < cur_rev and the first cur_count events of cur_rev. */
static uint64_t resume_seq_locked(struct kf_watch_hub *hub, struct kf_watch *w)
{
    uint64_t seq = seq_after_locked(hub, w->cur_rev - 1);
    size_t skip = w->cur_count;

    while (skip && seq < hub->next_seq && hub->ring[seq % hub->cap]->kv.mod_rev == w->cur_rev) {
        seq++;
        skip--;
    }
    return seq;
}

/* Whether the ring still holds everything after what w has had. Events of
 * revisions > window_base_rev are all in the ring; events of the base
 * revision itself may be partly gone. */
static bool ring_covers_locked(struct kf_watch_hub *hub, struct kf_watch *w)
{
    return w->cur_rev > hub->window_base_rev;
}

/* Marks every revision <= rev as had. */
static void note_had_through(struct kf_watch *w, int64_t rev)
{
    if (rev + 1 > w->cur_rev) {
        w->cur_rev = rev + 1;
        w->cur_count = 0;
    }
}

/* Marks ev as had (delivered or skipped). */
static void note_had(struct kf_watch *w, const struct kf_event *ev)
{
    if (ev->kv.mod_rev == w->cur_rev) {
        w->cur_count++;
    } else {
        w->cur_rev = ev->kv.mod_rev;
        w->cur_count = 1;
    }
}

static void enter_ring_locked(struct kf_watch_hub *hub, struct kf_watch *w)
{
    w->in_ring = true;
    w->lagging = false;
    w->seq = resume_seq_locked(hub, w);
    kf_event_list_release(&w->backlog);
    w->backlog_pos = 0;
}

int kf_watch_open(struct kf_store *s, const char *prefix, int64_t after_rev,
                  void (*wake)(void *arg), void *arg, struct kf_watch **ret)
{
    struct kf_watch_hub *hub = s->hub;
    struct kf_watch *w;

    if (!hub)
        return -EOPNOTSUPP;
    if (after_rev < 0)
        return -EINVAL;
    w = kf_xcalloc(1, sizeof(*w));
    w->store = s;
    w->hub = hub;
    w->prefix = kf_xstrdup(prefix ? prefix : "");
    w->prefix_len = strlen(w->prefix);
    w->wake = wake;
    w->arg = arg;

    pthread_mutex_lock(&hub->lock);
    if (hub->closed) {
        pthread_mutex_unlock(&hub->lock);
        free(w->prefix);
        free(w);
        return -EPIPE;
    }
    if (after_rev == 0)
        after_rev = hub->rev;
    if (after_rev < hub->compacted_rev) {
        pthread_mutex_unlock(&hub->lock);
        free(w->prefix);
        free(w);
        return -KF_ECOMPACTED;
    }
    w->start_after = after_rev;
    w->cur_rev = after_rev + 1;
    w->cur_count = 0;
    if (ring_covers_locked(hub, w)) {
        enter_ring_locked(hub, w);
    } else {
        w->in_ring = false;
        hub->fallbacks++;
    }
    w->next = hub->watchers;
    if (hub->watchers)
        hub->watchers->prev = w;
    hub->watchers = w;
    hub->nwatchers++;
    hub->refs++;
    pthread_mutex_unlock(&hub->lock);
    *ret = w;
    return 0;
}

void kf_watch_close(struct kf_watch *w)
{
    struct kf_watch_hub *hub;
    bool freed;

    if (!w)
        return;
    hub = w->hub;
    pthread_mutex_lock(&hub->lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        hub->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    hub->nwatchers--;
    freed = --hub->refs == 0;
    pthread_mutex_unlock(&hub->lock);
    if (freed)
        hub_free(hub);
    kf_event_list_release(&w->backlog);
    free(w->prefix);
    free(w);
}

static bool wanted(const struct kf_watch *w, const struct kf_event *ev)
{
    return ev->kv.mod_rev > w->start_after && strncmp(ev->kv.key, w->prefix, w->prefix_len) == 0;
}

/* Fills the backlog from the backend's history, after what w has had.
 * Called without hub->lock, counted in hub->history_readers. */
static int refill_backlog(struct kf_watch *w)
{
    struct kf_event_list got = { 0 };
    size_t skip = w->cur_count;
    int r;

    kf_event_list_release(&w->backlog);
    w->backlog_pos = 0;
    r = w->store->ops->history(w->store, w->cur_rev - 1, HISTORY_BATCH, &got);
    if (r < 0) {
        kf_event_list_release(&got);
        return r;
    }
    /* drop what was already had within cur_rev */
    while (skip && w->backlog_pos < got.n && got.items[w->backlog_pos]->kv.mod_rev == w->cur_rev) {
        w->backlog_pos++;
        skip--;
    }
    w->backlog = got;
    return 0;
}

/* One step of a watcher outside the ring: 1 and an event, 0 when there is
 * nothing now, a negative error, or 2 to go round again. */
static int next_from_history(struct kf_watch *w, struct kf_event **ret)
{
    struct kf_watch_hub *hub = w->hub;
    int r;

    while (w->backlog_pos < w->backlog.n) {
        struct kf_event *ev = w->backlog.items[w->backlog_pos++];

        note_had(w, ev);
        if (w->backlog_pos == w->backlog.n)
            /* history never splits a transaction */
            note_had_through(w, ev->kv.mod_rev);
        if (wanted(w, ev)) {
            *ret = kf_event_ref(ev);
            return 1;
        }
    }
    pthread_mutex_lock(&hub->lock);
    if (hub->closed) {
        pthread_mutex_unlock(&hub->lock);
        return -EPIPE;
    }
    if (ring_covers_locked(hub, w)) {
        enter_ring_locked(hub, w);
        pthread_mutex_unlock(&hub->lock);
        return 2;
    }
    if (w->cur_rev - 1 < hub->compacted_rev) {
        pthread_mutex_unlock(&hub->lock);
        return -KF_ECOMPACTED;
    }
    hub->history_readers++;
    pthread_mutex_unlock(&hub->lock);

    r = refill_backlog(w);

    pthread_mutex_lock(&hub->lock);
    if (--hub->history_readers == 0 && hub->closed)
        pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
    if (r < 0)
        return r;
    /* Nothing after what w has had although the ring has moved on: the
     * backend has not caught up with its own events yet (etcd). */
    w->lagging = w->backlog_pos >= w->backlog.n;
    return w->lagging ? 0 : 2;
}

int kf_watch_next(struct kf_watch *w, struct kf_event **ret)
{
    struct kf_watch_hub *hub = w->hub;

    for (;;) {
        if (__atomic_load_n(&w->expired, __ATOMIC_ACQUIRE))
            return -KF_ECOMPACTED;
        if (!w->in_ring) {
            int r = next_from_history(w, ret);

            if (r != 2)
                return r;
            continue;
        }

        pthread_mutex_lock(&hub->lock);
        if (hub->closed) {
            pthread_mutex_unlock(&hub->lock);
            return -EPIPE;
        }
        if (w->seq < hub->head_seq) {
            /* Overrun: the window moved past this watcher. */
            w->in_ring = false;
            hub->fallbacks++;
            pthread_mutex_unlock(&hub->lock);
            continue;
        }
        while (w->seq < hub->next_seq) {
            struct kf_event *ev = hub->ring[w->seq % hub->cap];

            w->seq++;
            note_had(w, ev);
            if (wanted(w, ev)) {
                *ret = kf_event_ref(ev);
                pthread_mutex_unlock(&hub->lock);
                return 1;
            }
        }
        /* publish adds whole transactions: everything up to hub->rev is had */
        note_had_through(w, hub->rev);
        pthread_mutex_unlock(&hub->lock);
        return 0;
    }
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool ready_locked(struct kf_watch_hub *hub, struct kf_watch *w)
{
    if (hub->closed || w->expired)
        return true;
    if (!w->in_ring && w->backlog_pos >= w->backlog.n && ring_covers_locked(hub, w))
        enter_ring_locked(hub, w); /* caught up: wait on the ring, not on history */
    if (!w->in_ring)
        return !w->lagging;
    return w->seq < hub->next_seq;
}

int kf_watch_wait(struct kf_watch *w, int timeout_ms)
{
    struct kf_watch_hub *hub = w->hub;
    struct timespec deadline;
    bool ready;
    int wait_ms = timeout_ms;

    if ((!w->in_ring && w->backlog_pos < w->backlog.n) ||
        __atomic_load_n(&w->expired, __ATOMIC_ACQUIRE))
        return 1;
    /* A lagging watcher cannot know when the backend's history catches up:
     * it looks again every LAG_POLL_MS. */
    if (!w->in_ring && w->lagging && (wait_ms < 0 || wait_ms > LAG_POLL_MS))
        wait_ms = LAG_POLL_MS;
    if (wait_ms >= 0)
        deadline_after(&deadline, wait_ms);
    pthread_mutex_lock(&hub->lock);
    for (;;) {
        ready = ready_locked(hub, w);
        if (ready)
            break;
        if (wait_ms < 0) {
            pthread_cond_wait(&hub->cond, &hub->lock);
        } else if (pthread_cond_timedwait(&hub->cond, &hub->lock, &deadline) == ETIMEDOUT) {
            /* the lag poll ended: let the caller ask the history again */
            ready = ready_locked(hub, w) || wait_ms != timeout_ms;
            break;
        }
    }
    pthread_mutex_unlock(&hub->lock);
    return ready ? 1 : 0;
}

int64_t kf_watch_progress(struct kf_watch *w)
{
    struct kf_watch_hub *hub = w->hub;
    int64_t rev;

    pthread_mutex_lock(&hub->lock);
    if (w->in_ring && w->seq >= hub->next_seq)
        rev = hub->rev;
    else
        rev = w->cur_rev - 1;
    if (rev < w->start_after)
        rev = w->start_after;
    pthread_mutex_unlock(&hub->lock);
    return rev;
}

void kf_watch_hub_stats(struct kf_store *s, struct kf_watch_stats *ret)
{
    struct kf_watch_hub *hub = s->hub;

    memset(ret, 0, sizeof(*ret));
    if (!hub)
        return;
    pthread_mutex_lock(&hub->lock);
    ret->watchers = hub->nwatchers;
    ret->window_events = (size_t)(hub->next_seq - hub->head_seq);
    ret->window_bytes = hub->bytes;
    ret->window_oldest_rev = hub->window_base_rev + 1;
    ret->published_events = hub->published;
    ret->history_fallbacks = hub->fallbacks;
    pthread_mutex_unlock(&hub->lock);
}
