/* daemon-leader.c: kfleetd's controllers and maintenance run only on the
 * elected leader (kfleet/election.h; the whole story in
 * docs/internals/replicas.md).
 *
 * Every replica serves the API. This file takes part in the election and,
 * on a thread of its own, turns its outcome into a TERM: on becoming leader
 * it makes a fenced handle on the store (kf_store_guard_new with the leader
 * key and our token: every write of this term commits only while the key
 * still holds our revision), a registry over it, and starts a fresh
 * controller manager (informers list from scratch) and the maintenance
 * thread (compaction, Event GC) over that handle; on losing leadership it
 * stops them at once and the election campaigns again. A store with one
 * writer (sqlite, memory) leads from the start, unfenced, and the first term
 * starts before the API listens, as kfleetd always did.
 *
 * Transitions are logged once, here. /metrics has kfleet_leader (1 on the
 * leader), kfleet_leader_terms_total, kfleet_leader_token and
 * kfleet_leader_fenced_writes_total; /readyz says who leads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>

#include "kfleet/api.h"
#include "kfleet/election.h"
#include "kfleet/log.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "daemon/daemon.h"

KF_LOG_MODULE(leader);

/* How long to wait before starting a term again after its start failed. */
#define RETRY_MS 1000

struct daemon_leader {
    struct kf_daemon *d;
    struct daemon_maint_config maint_cfg;
    struct kf_election *e;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t lock; /* the fields below */
    pthread_cond_t cond;
    bool quit, dirty;

    /* the term, owned by the leader thread (and by start/stop around it) */
    bool running;
    int64_t token;
    struct kf_store *guard; /* NULL when unfenced */
    struct kf_daemon term;  /* d with the fenced store and registry */
    struct daemon_maint *maint;
    uint64_t fenced_before;     /* fenced writes of terms that ended; atomic */
    struct kf_store *guard_now; /* for the metrics, under lock */
    bool logged_follower;
    char followed[KF_ELECTION_MAX_ID];
};

static void changed(void *arg)
{
    struct daemon_leader *l = arg;

    pthread_mutex_lock(&l->lock);
    l->dirty = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

static void stop_term(struct daemon_leader *l)
{
    if (!l->running)
        return;
    kf_metrics_set_child(l->d->metrics, NULL);
    kf_daemon_maint_stop(l->maint);
    l->maint = NULL;
    kf_daemon_controllers_stop(&l->term);
    kf_metrics_free(l->term.metrics);
    pthread_mutex_lock(&l->lock);
    l->guard_now = NULL;
    pthread_mutex_unlock(&l->lock);
    __atomic_add_fetch(&l->fenced_before, kf_store_guard_fenced(l->guard), __ATOMIC_RELAXED);
    kf_registry_free(l->term.reg);
    kf_store_close(l->guard);
    l->guard = NULL;
    l->running = false;
    l->token = 0;
}

static int start_term(struct daemon_leader *l, int64_t token, struct kf_strbuf *err)
{
    struct kf_store *s = l->d->store;
    int r;

    if (token > 0) {
        r = kf_store_guard_new(l->d->store, KF_ELECTION_KEY, token, &l->guard);
        if (r < 0)
            return kf_err(err, r, "cannot fence the leader's writes: %s", strerror(-r));
        s = l->guard;
    }
    l->term = *l->d;
    l->term.store = s;
    l->term.reg = kf_registry_new(s);
    /* the term's metrics come and go with it */
    l->term.metrics = kf_metrics_new_child();
    l->term.controllers = NULL;
    r = kf_daemon_controllers_start(&l->term, err);
    if (r == 0) {
        r = kf_daemon_maint_start(&l->term, &l->maint_cfg, &l->maint);
        if (r < 0) {
            kf_err(err, r, "cannot start the maintenance thread: %s", strerror(-r));
            kf_daemon_controllers_stop(&l->term);
        }
    }
    if (r < 0) {
        kf_registry_free(l->term.reg);
        kf_metrics_free(l->term.metrics);
        kf_store_close(l->guard);
        l->guard = NULL;
        return r;
    }
    kf_metrics_set_child(l->d->metrics, l->term.metrics);
    pthread_mutex_lock(&l->lock);
    l->guard_now = l->guard;
    pthread_mutex_unlock(&l->lock);
    l->running = true;
    l->token = token;
    return 0;
}

/* Brings the term in line with the election's state. Returns 0, or < 0
 * when a term should have started and could not (retry later). */
static int follow_state(struct daemon_leader *l)
{
    struct kf_election_state st;
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r = 0;

    kf_election_get(l->e, &st);
    if (l->running && (!st.leader || st.token != l->token)) {
        stop_term(l);
        if (!st.leader)
            kf_log_warn("this replica is no longer the leader (%s): controllers stopped, "
                        "campaigning again",
                        st.reason);
    }
    if (st.leader && !l->running) {
        r = start_term(l, st.token, &err);
        if (r == 0) {
            if (st.contested)
                kf_log_info("this replica is the leader now (%s, fencing token %lld): "
                            "controllers started",
                            st.reason, (long long)st.token);
            l->logged_follower = false;
        } else {
            kf_log_err("this replica leads but cannot start its controllers: %s; retrying in "
                       "%d ms",
                       err.buf, RETRY_MS);
        }
    }
    if (!st.leader && st.leader_id[0] &&
        (!l->logged_follower || strcmp(l->followed, st.leader_id) != 0)) {
        kf_log_info("replica \"%s\" leads (token %lld); this one serves the API and stands by",
                    st.leader_id, (long long)st.leader_token);
        snprintf(l->followed, sizeof(l->followed), "%s", st.leader_id);
        l->logged_follower = true;
    }
    kf_strbuf_release(&err);
    return r;
}

static void *leader_main(void *arg)
{
    struct daemon_leader *l = arg;

    pthread_mutex_lock(&l->lock);
    while (!l->quit) {
        int r;

        if (!l->dirty) {
            struct timespec ts;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += RETRY_MS / 1000;
            pthread_cond_timedwait(&l->cond, &l->lock, &ts);
            if (l->quit)
                break;
        }
        l->dirty = false;
        pthread_mutex_unlock(&l->lock);
        r = follow_state(l);
        pthread_mutex_lock(&l->lock);
        if (r < 0)
            l->dirty = true; /* try again at the next tick */
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* --- metrics and /readyz -------------------------------------------------- */

static void collect_leader(struct kf_metric *f, void *arg)
{
    struct daemon_leader *l = arg;
    struct kf_election_state st;

    kf_election_get(l->e, &st);
    kf_metric_set(f, NULL, st.leader ? 1 : 0);
}

static void collect_terms(struct kf_metric *f, void *arg)
{
    struct daemon_leader *l = arg;
    struct kf_election_state st;

    kf_election_get(l->e, &st);
    kf_metric_set(f, NULL, (double)st.terms);
}

static void collect_token(struct kf_metric *f, void *arg)
{
    struct daemon_leader *l = arg;
    struct kf_election_state st;

    kf_election_get(l->e, &st);
    kf_metric_set(f, NULL, (double)st.leader_token);
}

static void collect_fenced(struct kf_metric *f, void *arg)
{
    struct daemon_leader *l = arg;
    uint64_t n = __atomic_load_n(&l->fenced_before, __ATOMIC_RELAXED);

    pthread_mutex_lock(&l->lock);
    n += kf_store_guard_fenced(l->guard_now);
    pthread_mutex_unlock(&l->lock);
    kf_metric_set(f, NULL, (double)n);
}

static void ready_detail(void *arg, struct kf_strbuf *out)
{
    struct daemon_leader *l = arg;
    struct kf_election_state st;

    kf_election_get(l->e, &st);
    if (st.leader)
        kf_strbuf_addf(out, "leader: yes (this replica, \"%s\", fencing token %lld)\n",
                       st.leader_id, (long long)st.token);
    else if (st.leader_id[0])
        kf_strbuf_addf(out, "leader: no (replica \"%s\" leads, token %lld)\n", st.leader_id,
                       (long long)st.leader_token);
    else
        kf_strbuf_addf(out, "leader: no (no leader known: %s)\n", st.reason);
}

/* --- start and stop ------------------------------------------------------ */

int kf_daemon_leader_start(struct kf_daemon *d, const struct daemon_leader_config *c,
                           struct daemon_leader **ret, struct kf_strbuf *err)
{
    struct daemon_leader *l = kf_xcalloc(1, sizeof(*l));
    struct kf_election_config ec = {
        .id = c->replica_id,
        .ttl_ms = c->lease_ttl_ms,
        .changed = changed,
        .arg = l,
    };
    struct kf_election_state st;
    pthread_condattr_t attr;
    int r;

    l->d = d;
    l->maint_cfg = c->maint;
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &attr);
    pthread_condattr_destroy(&attr);
    r = kf_election_start(d->store, &ec, &l->e, err);
    if (r < 0)
        goto free_leader;
    kf_election_get(l->e, &st);
    if (!st.contested) {
        /* One writer: the term starts now, before the API listens, and a
         * failure stops kfleetd as it always did. */
        r = start_term(l, 0, err);
        if (r < 0)
            goto free_leader;
    }
    kf_metrics_collected(d->metrics, KF_METRIC_GAUGE, "kfleet_leader",
                         "1 when this replica is the leader and runs the controllers.", NULL,
                         collect_leader, l);
    kf_metrics_collected(d->metrics, KF_METRIC_COUNTER, "kfleet_leader_terms_total",
                         "How often this replica became the leader.", NULL, collect_terms, l);
    kf_metrics_collected(d->metrics, KF_METRIC_GAUGE, "kfleet_leader_token",
                         "The leader key's revision (the leader's fencing token) as this "
                         "replica last saw it; 0 without election.",
                         NULL, collect_token, l);
    kf_metrics_collected(d->metrics, KF_METRIC_COUNTER, "kfleet_leader_fenced_writes_total",
                         "Controller and maintenance writes refused because this replica was "
                         "no longer the leader when they reached the store.",
                         NULL, collect_fenced, l);
    kf_api_set_ready_detail(d->api, ready_detail, l);
    r = pthread_create(&l->thread, NULL, leader_main, l);
    if (r != 0) {
        r = kf_err(err, -r, "cannot start the leader thread: %s", strerror(r));
        goto free_leader;
    }
    l->thread_started = true;
    changed(l);
    *ret = l;
    return 0;
free_leader:
    stop_term(l);
    kf_election_stop(l->e);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
    return r;
}

void kf_daemon_leader_stop(struct daemon_leader *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->quit = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    if (l->thread_started)
        pthread_join(l->thread, NULL);
    /* controllers first, then resign: no controller of ours runs once
     * another replica can lead */
    stop_term(l);
    kf_election_stop(l->e);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
}

bool kf_daemon_leader_is_leader(struct daemon_leader *l)
{
    struct kf_election_state st;

    kf_election_get(l->e, &st);
    return st.leader;
}

bool kf_daemon_leader_contested(struct daemon_leader *l)
{
    struct kf_election_state st;

    kf_election_get(l->e, &st);
    return st.contested;
}
