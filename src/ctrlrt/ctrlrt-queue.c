/* ctrlrt-queue.c: the work queue behind every controller (contract in
 * kfleet/ctrlrt.h).
 *
 * Three sets keep a name from being reconciled twice at once or lost:
 * `dirty` (waiting or to be redone), `processing` (a worker has it) and the
 * FIFO `queue` (dirty names that no worker has). A name added while it is
 * being processed stays dirty and goes back in the queue when the worker
 * calls done. Delayed adds wait in a min-heap ordered by due time; workers
 * move due names into the queue when they look for work, so no timer thread
 * is needed. A name's due time (`due`) is the one that counts: heap entries
 * of other times are stale. A folded add may move a due time later (up to
 * the entry's limit) without touching the heap: the entry at the old time
 * puts the name back in the heap at the new one when it comes up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "kfleet/ctrlrt.h"
#include "kfleet/smap.h"

#define BACKOFF_BASE_MS 5
#define BACKOFF_MAX_MS  (5 * 60 * 1000)

struct delayed {
    uint64_t due_ns;
    char *name;
};

/* A name's pending delayed add: when it is due, and how late a folded add
 * may still move it (at = limit for a plain delayed add: never later). */
struct due {
    uint64_t at;
    uint64_t limit;
};

struct kf_workqueue {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* work arrived, or shutdown */
    pthread_cond_t idle; /* something finished */
    char **queue;        /* ring buffer of names owned by the queue */
    size_t head, len, cap;
    struct kf_smap dirty;      /* name -> (void *)1 */
    struct kf_smap processing; /* name -> (void *)1 */
    struct kf_smap due;        /* name -> struct due * (times in ns) */
    struct kf_smap failures;   /* name -> count (uintptr_t) */
    struct delayed *heap;
    size_t nheap, alloc_heap;
    bool shutdown;
};

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

struct kf_workqueue *kf_workqueue_new(void)
{
    struct kf_workqueue *q = kf_xcalloc(1, sizeof(*q));

    pthread_mutex_init(&q->lock, NULL);
    cond_init_mono(&q->cond);
    cond_init_mono(&q->idle);
    return q;
}

void kf_workqueue_free(struct kf_workqueue *q)
{
    size_t it = 0;
    void *v;

    if (!q)
        return;
    for (size_t i = 0; i < q->len; i++)
        free(q->queue[(q->head + i) % q->cap]);
    free(q->queue);
    for (size_t i = 0; i < q->nheap; i++)
        free(q->heap[i].name);
    free(q->heap);
    while (kf_smap_next(&q->due, &it, NULL, &v))
        free(v);
    kf_smap_release(&q->due);
    kf_smap_release(&q->dirty);
    kf_smap_release(&q->processing);
    kf_smap_release(&q->failures);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    pthread_cond_destroy(&q->idle);
    free(q);
}

static void push_locked(struct kf_workqueue *q, const char *name)
{
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 16;
        char **nq = kf_xcalloc(ncap, sizeof(*nq));

        for (size_t i = 0; i < q->len; i++)
            nq[i] = q->queue[(q->head + i) % q->cap];
        free(q->queue);
        q->queue = nq;
        q->cap = ncap;
        q->head = 0;
    }
    q->queue[(q->head + q->len) % q->cap] = kf_xstrdup(name);
    q->len++;
    pthread_cond_signal(&q->cond);
}

static void add_locked(struct kf_workqueue *q, const char *name)
{
    if (q->shutdown || kf_smap_contains(&q->dirty, name))
        return;
    kf_smap_put(&q->dirty, name, (void *)1);
    if (!kf_smap_contains(&q->processing, name))
        push_locked(q, name);
}

void kf_workqueue_add(struct kf_workqueue *q, const char *name)
{
    pthread_mutex_lock(&q->lock);
    add_locked(q, name);
    pthread_mutex_unlock(&q->lock);
}

static void heap_swap(struct delayed *h, size_t a, size_t b)
{
    struct delayed t = h[a];

    h[a] = h[b];
    h[b] = t;
}

/* Adds (due, name) to the heap, which takes name. */
static void heap_push_owned(struct kf_workqueue *q, uint64_t due, char *name)
{
    size_t i;

    KF_GROW(q->heap, q->alloc_heap, q->nheap);
    i = q->nheap++;
    q->heap[i].due_ns = due;
    q->heap[i].name = name;
    while (i > 0 && q->heap[(i - 1) / 2].due_ns > q->heap[i].due_ns) {
        heap_swap(q->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_push(struct kf_workqueue *q, uint64_t due, const char *name)
{
    heap_push_owned(q, due, kf_xstrdup(name));
}

static struct delayed heap_pop(struct kf_workqueue *q)
{
    struct delayed top = q->heap[0];
    size_t i = 0;

    q->heap[0] = q->heap[--q->nheap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < q->nheap && q->heap[l].due_ns < q->heap[m].due_ns)
            m = l;
        if (r < q->nheap && q->heap[r].due_ns < q->heap[m].due_ns)
            m = r;
        if (m == i)
            break;
        heap_swap(q->heap, i, m);
        i = m;
    }
    return top;
}

void kf_workqueue_add_after(struct kf_workqueue *q, const char *name, int64_t delay_ms)
{
    uint64_t due;
    struct due *cur;

    if (delay_ms <= 0) {
        kf_workqueue_add(q, name);
        return;
    }
    due = kf_mono_ns() + (uint64_t)delay_ms * 1000000ull;
    pthread_mutex_lock(&q->lock);
    if (!q->shutdown) {
        cur = kf_smap_get(&q->due, name);
        if (!cur) {
            cur = kf_xmalloc(sizeof(*cur));
            *cur = (struct due){ due, due };
            kf_smap_put(&q->due, name, cur);
            heap_push(q, due, name);
            pthread_cond_signal(&q->cond);
        } else if (due < cur->at) {
            *cur = (struct due){ due, due }; /* the older heap entry is now stale */
            heap_push(q, due, name);
            pthread_cond_signal(&q->cond);
        }
        /* already due no later: nothing changed, no worker to wake (a burst
         * of member events folds into one delayed entry per host) */
    }
    pthread_mutex_unlock(&q->lock);
}

void kf_workqueue_add_folded(struct kf_workqueue *q, const char *name, int64_t delay_ms,
                             int64_t max_ms)
{
    uint64_t now = kf_mono_ns(), due, limit;
    struct due *cur;

    delay_ms = KF_MIN(KF_MAX(delay_ms, 0), KF_MAX(max_ms, 0));
    due = now + (uint64_t)delay_ms * 1000000ull;
    limit = now + (uint64_t)KF_MAX(max_ms, 0) * 1000000ull;
    pthread_mutex_lock(&q->lock);
    if (!q->shutdown) {
        cur = kf_smap_get(&q->due, name);
        if (!cur) {
            cur = kf_xmalloc(sizeof(*cur));
            *cur = (struct due){ due, limit };
            kf_smap_put(&q->due, name, cur);
            heap_push(q, due, name);
            pthread_cond_signal(&q->cond);
        } else if (KF_MIN(due, cur->limit) > cur->at) {
            /* later, within the limit: the heap entry at the old time
             * re-files the name when it comes up; no worker to wake */
            cur->at = KF_MIN(due, cur->limit);
        }
    }
    pthread_mutex_unlock(&q->lock);
}

void kf_workqueue_add_backoff(struct kf_workqueue *q, const char *name)
{
    uintptr_t n;
    int64_t delay = BACKOFF_BASE_MS;

    pthread_mutex_lock(&q->lock);
    n = (uintptr_t)kf_smap_get(&q->failures, name) + 1;
    kf_smap_put(&q->failures, name, (void *)n);
    pthread_mutex_unlock(&q->lock);
    for (uintptr_t i = 1; i < n && delay < BACKOFF_MAX_MS; i++)
        delay *= 2;
    kf_workqueue_add_after(q, name, KF_MIN(delay, BACKOFF_MAX_MS));
}

void kf_workqueue_forget(struct kf_workqueue *q, const char *name)
{
    pthread_mutex_lock(&q->lock);
    kf_smap_remove(&q->failures, name);
    pthread_mutex_unlock(&q->lock);
}

/* Moves due delayed names into the queue; returns ns until the next one is
 * due, or UINT64_MAX. */
static uint64_t promote_due_locked(struct kf_workqueue *q)
{
    uint64_t now = kf_mono_ns();

    while (q->nheap > 0) {
        struct due *cur;

        if (q->heap[0].due_ns > now)
            return q->heap[0].due_ns - now;
        struct delayed d = heap_pop(q);

        cur = kf_smap_get(&q->due, d.name);
        if (cur && cur->at == d.due_ns) {
            free(kf_smap_remove(&q->due, d.name));
            add_locked(q, d.name);
        } else if (cur && cur->at > d.due_ns) {
            /* moved later by a folded add: file it again at its time (the
             * heap keeps the name) */
            heap_push_owned(q, cur->at, d.name);
            continue;
        }
        free(d.name);
    }
    return UINT64_MAX;
}

static void deadline_after(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ns / 1000000000ull);
    ts->tv_nsec += (long)(ns % 1000000000ull);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int kf_workqueue_get(struct kf_workqueue *q, int timeout_ms, char **ret_name)
{
    uint64_t start = kf_mono_ns();
    uint64_t limit = timeout_ms < 0 ? UINT64_MAX : (uint64_t)timeout_ms * 1000000ull;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        uint64_t next_due, elapsed, wait;
        struct timespec ts;

        if (q->shutdown) {
            pthread_mutex_unlock(&q->lock);
            return -EPIPE;
        }
        next_due = promote_due_locked(q);
        if (q->len > 0) {
            char *name = q->queue[q->head];

            q->head = (q->head + 1) % q->cap;
            q->len--;
            kf_smap_remove(&q->dirty, name);
            kf_smap_put(&q->processing, name, (void *)1);
            pthread_mutex_unlock(&q->lock);
            *ret_name = name;
            return 1;
        }
        elapsed = kf_mono_ns() - start;
        if (elapsed >= limit) {
            pthread_mutex_unlock(&q->lock);
            return 0;
        }
        wait = KF_MIN(limit - elapsed, next_due);
        if (wait == UINT64_MAX) {
            pthread_cond_wait(&q->cond, &q->lock);
        } else {
            deadline_after(&ts, wait);
            pthread_cond_timedwait(&q->cond, &q->lock, &ts);
        }
    }
}

void kf_workqueue_done(struct kf_workqueue *q, const char *name)
{
    pthread_mutex_lock(&q->lock);
    kf_smap_remove(&q->processing, name);
    if (kf_smap_contains(&q->dirty, name) && !q->shutdown)
        push_locked(q, name);
    pthread_cond_broadcast(&q->idle);
    pthread_mutex_unlock(&q->lock);
}

void kf_workqueue_shutdown(struct kf_workqueue *q)
{
    pthread_mutex_lock(&q->lock);
    q->shutdown = true;
    pthread_cond_broadcast(&q->cond);
    pthread_cond_broadcast(&q->idle);
    pthread_mutex_unlock(&q->lock);
}

size_t kf_workqueue_len(struct kf_workqueue *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t kf_workqueue_busy(struct kf_workqueue *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = kf_smap_count(&q->processing);
    pthread_mutex_unlock(&q->lock);
    return n;
}

int kf_workqueue_wait_idle(struct kf_workqueue *q, int timeout_ms)
{
    struct timespec ts;
    int idle;

    if (timeout_ms >= 0)
        deadline_after(&ts, (uint64_t)timeout_ms * 1000000ull);
    pthread_mutex_lock(&q->lock);
    for (;;) {
        promote_due_locked(q);
        idle = q->len == 0 && kf_smap_count(&q->processing) == 0;
        if (idle || q->shutdown)
            break;
        if (timeout_ms < 0) {
            pthread_cond_wait(&q->idle, &q->lock);
        } else if (pthread_cond_timedwait(&q->idle, &q->lock, &ts) == ETIMEDOUT) {
            idle = q->len == 0 && kf_smap_count(&q->processing) == 0;
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return idle ? 1 : 0;
}
