/* daemon-maint.c: kfleetd's periodic maintenance, on one thread.
 *
 *   every compact_interval: compact the store's history. A revision is
 *     forgotten only when it is both older than compact_retention and more
 *     than compact_keep_revs behind the current one, so watchers can resume
 *     across a short disconnect or a restart, and history stays bounded.
 *     Revision ages come from (time, revision) samples taken at each tick.
 *   every event_gc_interval: delete Events not seen for event_ttl.
 *   every TRIM_MS: hand malloc's free memory back to the kernel when its
 *     arenas keep more than TRIM_FREE_MIN free. A burst (thousands of
 *     clusters placed at once, a relist) leaves most of what it allocated
 *     free inside the arenas, where it stays resident: 76 MiB free against
 *     33 MiB in use after 2,000 clusters placed in one burst
 *     (bench/scale). malloc_trim returns the free pages of every arena.
 *
 * The work is a few store calls; it logs at debug when it did something
 * and warns (rate-limited) when the store refused.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>

#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/log.h"
#include "kfleet/store.h"
#include "daemon/daemon.h"

KF_LOG_MODULE(daemon);

#define MAX_SAMPLES   4096
#define TRIM_MS       (10 * 1000)
#define TRIM_FREE_MIN (16u << 20)

struct daemon_maint {
    struct kf_daemon *d;
    struct daemon_maint_config cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool quit;
    int64_t sample_ms[MAX_SAMPLES];
    int64_t sample_rev[MAX_SAMPLES];
    size_t n_samples;
    size_t trimmed_free; /* malloc's free bytes after the last trim */
};

int64_t kf_daemon_compact_target(const struct daemon_maint_config *c, int64_t cur_rev,
                                 int64_t now_ms, const int64_t *sample_ms,
                                 const int64_t *sample_rev, size_t n)
{
    int64_t by_count = cur_rev - KF_MAX(c->compact_keep_revs, 0);
    int64_t by_time = 0;

    if (c->compact_retention_ms <= 0) {
        by_time = cur_rev;
    } else {
        /* the newest sample old enough: everything at or before its
         * revision was written before now - retention */
        for (size_t i = n; i > 0; i--)
            if (sample_ms[i - 1] <= now_ms - c->compact_retention_ms) {
                by_time = sample_rev[i - 1];
                break;
            }
    }
    return KF_MAX(KF_MIN(by_count, by_time), 0);
}

static void add_sample(struct daemon_maint *m, int64_t now_ms, int64_t rev)
{
    if (m->n_samples == MAX_SAMPLES) {
        /* thin out: keep every other sample (the oldest are the coarsest) */
        size_t j = 0;

        for (size_t i = 0; i < MAX_SAMPLES; i += 2, j++) {
            m->sample_ms[j] = m->sample_ms[i];
            m->sample_rev[j] = m->sample_rev[i];
        }
        m->n_samples = j;
    }
    m->sample_ms[m->n_samples] = now_ms;
    m->sample_rev[m->n_samples] = rev;
    m->n_samples++;
}

static void compact_once(struct daemon_maint *m)
{
    struct kf_store_status st;
    int64_t now = kf_now_ms(), target;
    int r;

    r = kf_store_status(m->d->store, &st);
    if (r < 0) {
        kf_log_rl_warn("compaction skipped: cannot read the store's status: %s", strerror(-r));
        return;
    }
    add_sample(m, now, st.rev);
    target =
        kf_daemon_compact_target(&m->cfg, st.rev, now, m->sample_ms, m->sample_rev, m->n_samples);
    if (target <= st.compacted_rev)
        return;
    r = kf_store_compact(m->d->store, target);
    if (r < 0)
        kf_log_rl_warn("compacting the store to revision %lld failed: %s", (long long)target,
                       strerror(-r));
    else
        kf_log_dbg("compacted the store to revision %lld (current %lld)", (long long)target,
                   (long long)st.rev);
}

static void event_gc_once(struct daemon_maint *m)
{
    int r = kf_evrec_gc(m->d->reg, m->cfg.event_ttl_ms, kf_now_ms());

    if (r < 0)
        kf_log_rl_warn("deleting expired Events failed: %s", strerror(-r));
    else if (r > 0)
        kf_log_dbg("deleted %d expired Events", r);
}

/* Trims when there is much free memory and it changed since the last trim
 * (trimmed pages stay in malloc's free lists, counted as free: trimming
 * again would only walk them). */
static void trim_once(struct daemon_maint *m)
{
    struct mallinfo2 mi = mallinfo2();
    size_t delta = mi.fordblks > m->trimmed_free ? mi.fordblks - m->trimmed_free
                                                 : m->trimmed_free - mi.fordblks;

    if (mi.fordblks < TRIM_FREE_MIN || delta < (1u << 20))
        return;
    malloc_trim(0);
    m->trimmed_free = mallinfo2().fordblks;
    kf_log_dbg("returned free heap to the kernel (%zu MiB free in malloc's arenas before)",
               mi.fordblks >> 20);
}

static void *maint_main(void *arg)
{
    struct daemon_maint *m = arg;
    int64_t next_compact = m->cfg.compact_interval_ms ? kf_now_ms() : INT64_MAX;
    int64_t next_gc =
        m->cfg.event_gc_interval_ms ? kf_now_ms() + m->cfg.event_gc_interval_ms : INT64_MAX;
    int64_t next_trim = kf_now_ms() + TRIM_MS;

    pthread_mutex_lock(&m->lock);
    while (!m->quit) {
        int64_t now = kf_now_ms(), wake = KF_MIN(KF_MIN(next_compact, next_gc), next_trim);
        struct timespec ts;

        if (now >= next_trim) {
            pthread_mutex_unlock(&m->lock);
            trim_once(m);
            pthread_mutex_lock(&m->lock);
            next_trim = kf_now_ms() + TRIM_MS;
            continue;
        }
        if (now >= next_compact) {
            pthread_mutex_unlock(&m->lock);
            compact_once(m);
            pthread_mutex_lock(&m->lock);
            next_compact = kf_now_ms() + m->cfg.compact_interval_ms;
            continue;
        }
        if (now >= next_gc) {
            pthread_mutex_unlock(&m->lock);
            event_gc_once(m);
            pthread_mutex_lock(&m->lock);
            next_gc = kf_now_ms() + m->cfg.event_gc_interval_ms;
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (wake != INT64_MAX) {
            int64_t wait = wake - now;

            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
        } else {
            ts.tv_sec += 3600;
        }
        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int kf_daemon_maint_start(struct kf_daemon *d, const struct daemon_maint_config *c,
                          struct daemon_maint **ret)
{
    struct daemon_maint *m = kf_xcalloc(1, sizeof(*m));
    pthread_condattr_t attr;
    int r;

    m->d = d;
    m->cfg = *c;
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cond, &attr);
    pthread_condattr_destroy(&attr);
    r = pthread_create(&m->thread, NULL, maint_main, m);
    if (r != 0) {
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->cond);
        free(m);
        return -r;
    }
    *ret = m;
    return 0;
}

void kf_daemon_maint_stop(struct daemon_maint *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->quit = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    free(m);
}
