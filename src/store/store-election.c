/* store-election.c: leader election among kfleetd replicas on an etcd
 * lease (contract and protocol in kfleet/election.h).
 *
 * One thread per election runs a small state machine:
 *
 *   CAMPAIGN  grant a lease; txn "create_revision(key) == 0 -> put key
 *             (our id, the lease)" else "range key". Won: LEAD with the
 *             txn's revision as token. Lost: revoke the lease, FOLLOW the
 *             key's holder from the txn's revision.
 *   LEAD      every TTL/3: renew the lease (one keep-alive on the stream
 *             endpoint, bounded by the time left before the lease could
 *             expire) and read the key (still ours, same revision?). The
 *             lease lost, the key gone or replaced, or no renewal for
 *             TTL - margin since the send time of the last acknowledged
 *             one: step down, revoke what is left, CAMPAIGN after a pause
 *             of one renewal period (so that a replica that just lost
 *             etcd does not win straight back with a stale view).
 *   FOLLOW    watch the key from the revision we saw it at; a DELETE (or a
 *             broken or compacted watch, after a back-off): CAMPAIGN.
 *
 * The election uses an etcd client of its own (the store's endpoints, TLS
 * and credentials, but a request timeout of TTL/4) so that a hung etcd
 * cannot hold the leader past its deadline. Stopping interrupts whatever
 * request or stream is running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "kfleet/election.h"
#include "kfleet/error.h"
#include "kfleet/etcd.h"
#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "store/store-internal.h"

KF_LOG_MODULE(election);

struct kf_election {
    struct kf_store *store;
    struct kf_etcd *c; /* NULL for single-writer stores */
    char *ekey;        /* the etcd key: prefix + KF_ELECTION_KEY */
    char *id;
    int64_t ttl_ms; /* as asked */
    void (*changed)(void *arg);
    void *arg;

    pthread_mutex_t lock; /* state, stopping */
    pthread_cond_t cond;  /* stopping */
    struct kf_election_state state;
    bool stopping;
    pthread_t thread;
    bool started;
    struct kf_etcd_stream *stream; /* watch and keep-alive; interrupted by stop */

    /* the election thread's own */
    int64_t lease;        /* 0: none */
    int64_t lease_ttl_ms; /* what etcd granted */
    int64_t lease_at;     /* kf_mono_ms() just before the grant was sent */
};

static bool stopping(struct kf_election *e)
{
    bool s;

    pthread_mutex_lock(&e->lock);
    s = e->stopping;
    pthread_mutex_unlock(&e->lock);
    return s;
}

/* Sleeps ms unless stopped first; returns whether stopping. */
static bool pause_ms(struct kf_election *e, int64_t ms)
{
    struct timespec until;
    bool s;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->lock);
    while (!e->stopping && pthread_cond_timedwait(&e->cond, &e->lock, &until) != ETIMEDOUT)
        ;
    s = e->stopping;
    pthread_mutex_unlock(&e->lock);
    return s;
}

/* Updates the state under the lock and tells the owner outside it. */
static void set_state(struct kf_election *e, bool leader, int64_t token, const char *leader_id,
                      int64_t leader_token, const char *reason)
{
    bool notify;

    pthread_mutex_lock(&e->lock);
    notify = e->state.leader != leader || e->state.token != token ||
             e->state.leader_token != leader_token ||
             strcmp(e->state.leader_id, leader_id ? leader_id : "") != 0;
    if (e->state.leader != leader) {
        e->state.since_ms = kf_now_ms();
        snprintf(e->state.reason, sizeof(e->state.reason), "%s", reason);
        if (leader)
            e->state.terms++;
    }
    e->state.leader = leader;
    e->state.token = token;
    e->state.leader_token = leader_token;
    snprintf(e->state.leader_id, sizeof(e->state.leader_id), "%s", leader_id ? leader_id : "");
    notify = notify && !e->stopping;
    pthread_mutex_unlock(&e->lock);
    if (notify && e->changed)
        e->changed(e->arg);
}

static void revoke_lease(struct kf_election *e)
{
    if (e->lease) {
        kf_etcd_lease_revoke(e->c, e->lease, NULL);
        e->lease = 0;
    }
}

/* --- campaign ---------------------------------------------------------- */

/* The holder of the key in a range response's first kv: its id, revision
 * and lease. 0 when there is none. */
static int64_t holder(const json_t *kv, struct kf_strbuf *id, int64_t *ret_lease)
{
    kf_strbuf_reset(id);
    if (!kv)
        return 0;
    kf_etcd_get_bytes(kv, "value", id);
    if (ret_lease)
        *ret_lease = kf_etcd_get_int(kv, "lease", 0);
    return kf_etcd_get_int(kv, "mod_revision", 0);
}

/* One campaign. 1: we lead (token in *ret_token); 0: someone else does
 * (their id in who, the revision to follow from in *ret_watch_from); < 0:
 * etcd could not be asked (try again after a pause). */
static int campaign(struct kf_election *e, int64_t *ret_token, struct kf_strbuf *who,
                    int64_t *ret_watch_from)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *req, *resp = NULL;
    int64_t ttl_s = (e->ttl_ms + 999) / 1000, granted = 0, lease_of = 0, rev;
    int r;

    if (!e->lease) {
        e->lease_at = kf_mono_ms();
        r = kf_etcd_lease_grant(e->c, ttl_s, &e->lease, &granted, &err);
        if (r < 0) {
            kf_log_dbg("campaign: no lease: %s", err.buf);
            kf_strbuf_release(&err);
            return r;
        }
        e->lease_ttl_ms = (granted > 0 ? granted : ttl_s) * 1000;
    }
    req = json_pack("{s:[{s:o, s:s, s:s, s:o}], s:[{s:{s:o, s:o, s:o}}], s:[{s:{s:o}}]}", "compare",
                    "key", kf_etcd_str(e->ekey), "target", "CREATE", "result", "EQUAL",
                    "create_revision", kf_etcd_int(0), "success", "request_put", "key",
                    kf_etcd_str(e->ekey), "value", kf_etcd_str(e->id), "lease",
                    kf_etcd_int(e->lease), "failure", "request_range", "key", kf_etcd_str(e->ekey));
    r = kf_etcd_call(e->c, "/v3/kv/txn", req, 0, &resp, &err);
    json_decref(req);
    if (r == -KF_ETIMEOUT) {
        /* Sent, no answer: whether we won shows in the key's lease. */
        json_t *get = json_pack("{s:o}", "key", kf_etcd_str(e->ekey));

        r = kf_etcd_call(e->c, "/v3/kv/range", get, KF_ETCD_IDEMPOTENT, &resp, &err);
        json_decref(get);
        if (r == 0) {
            json_t *kv = json_array_get(json_object_get(resp, "kvs"), 0);

            kf_strbuf_release(&err); /* the timeout's message */

            rev = holder(kv, who, &lease_of);
            *ret_watch_from = kf_etcd_get_int(json_object_get(resp, "header"), "revision", 0) + 1;
            json_decref(resp);
            if (rev > 0 && lease_of == e->lease) {
                *ret_token = rev;
                return 1;
            }
            revoke_lease(e);
            return rev > 0 ? 0 : -KF_EUNAVAILABLE;
        }
    }
    if (r < 0) {
        kf_log_dbg("campaign failed: %s", err.buf);
        kf_strbuf_release(&err);
        return r;
    }
    kf_strbuf_release(&err);
    rev = kf_etcd_get_int(json_object_get(resp, "header"), "revision", 0);
    if (kf_json_bool(resp, "succeeded", false)) {
        json_decref(resp);
        *ret_token = rev;
        return 1;
    }
    {
        json_t *rr = json_object_get(json_array_get(json_object_get(resp, "responses"), 0),
                                     "response_range");

        holder(json_array_get(json_object_get(rr, "kvs"), 0), who, NULL);
    }
    json_decref(resp);
    *ret_watch_from = rev + 1;
    /* Our lease holds nothing: do not leave it to expire. */
    revoke_lease(e);
    return 0;
}

/* --- leading ----------------------------------------------------------- */

static int keepalive_message(void *arg, json_t *result)
{
    int64_t *ttl = arg;

    *ttl = kf_etcd_get_int(result, "TTL", 0);
    return 1;
}

/* One renewal, within budget_ms. 0: renewed; -KF_ENOTFOUND: the lease is
 * gone; other < 0: etcd did not answer in time. */
static int renew(struct kf_election *e, int64_t budget_ms)
{
    int64_t ttl = -1, until = kf_mono_ms() + budget_ms;
    int r = -KF_EUNAVAILABLE;

    while (r == -KF_EUNAVAILABLE) {
        int64_t left = until - kf_mono_ms();
        json_t *req;

        if (left <= 0 || stopping(e))
            break;
        req = json_pack("{s:o}", "ID", kf_etcd_int(e->lease));
        r = kf_etcd_stream_run(e->stream, "/v3/lease/keepalive", req, keepalive_message, &ttl, 0,
                               (int)left, NULL);
        json_decref(req);
        if (r == -KF_EUNAVAILABLE && left > 50)
            pause_ms(e, 50);
    }
    if (r < 0)
        return r;
    return ttl > 0 ? 0 : -KF_ENOTFOUND;
}

/* Is the key still ours, at our token? 1 yes, 0 no, < 0 cannot tell. */
static int still_ours(struct kf_election *e, int64_t token)
{
    json_t *req = json_pack("{s:o}", "key", kf_etcd_str(e->ekey)), *resp = NULL, *kv;
    int r = kf_etcd_call(e->c, "/v3/kv/range", req, KF_ETCD_IDEMPOTENT, &resp, NULL);

    json_decref(req);
    if (r < 0)
        return r;
    kv = json_array_get(json_object_get(resp, "kvs"), 0);
    r = kv && kf_etcd_get_int(kv, "mod_revision", 0) == token &&
        kf_etcd_get_int(kv, "lease", 0) == e->lease;
    json_decref(resp);
    return r;
}

/* Leads until the lease is lost or we stop. Returns why it ended. */
static const char *lead(struct kf_election *e, int64_t token)
{
    int64_t period = KF_MAX(e->lease_ttl_ms / 3, 100);
    int64_t margin = KF_MAX(e->lease_ttl_ms / 5, 100);
    /* etcd counts the TTL from when it got the request, later than this */
    int64_t deadline = e->lease_at + e->lease_ttl_ms;

    for (;;) {
        int64_t sent, left;
        int r;

        if (pause_ms(e, KF_MIN(period, KF_MAX(deadline - margin - kf_mono_ms(), 0))))
            return NULL;
        sent = kf_mono_ms();
        left = deadline - margin - sent;
        if (left <= 0)
            return "the lease could not be renewed in time (etcd unreachable?)";
        r = renew(e, left);
        if (stopping(e))
            return NULL;
        if (r == -KF_ENOTFOUND)
            return "the lease expired";
        if (r < 0)
            continue; /* the next round sees the deadline */
        deadline = sent + e->lease_ttl_ms;
        r = still_ours(e, token);
        if (r == 0)
            return "the leader key was deleted or replaced";
    }
}

/* --- following --------------------------------------------------------- */

struct follow_run {
    bool deleted;
};

static int follow_message(void *arg, json_t *result)
{
    struct follow_run *f = arg;
    json_t *evs = json_object_get(result, "events"), *ev;
    size_t i;

    if (kf_json_bool(result, "canceled", false))
        return -KF_ECOMPACTED; /* compacted past us, or refused: campaign again */
    json_array_foreach(evs, i, ev)
    {
        if (strcmp(kf_json_str(ev, "type", "PUT"), "DELETE") == 0) {
            f->deleted = true;
            return 1;
        }
    }
    return 0;
}

/* Waits until the key is deleted (1), the watch fails (< 0, after which we
 * campaign again: the txn tells the truth), or we stop (0). */
static int follow(struct kf_election *e, int64_t from)
{
    struct follow_run f = { 0 };
    json_t *req = json_pack("{s:{s:o, s:o}}", "create_request", "key", kf_etcd_str(e->ekey),
                            "start_revision", kf_etcd_int(from));
    int r = kf_etcd_stream_run(e->stream, "/v3/watch", req, follow_message, &f, 0, 0, NULL);

    json_decref(req);
    if (stopping(e))
        return 0;
    if (f.deleted)
        return 1;
    return r < 0 ? r : -EIO;
}

static void *election_main(void *arg)
{
    struct kf_election *e = arg;
    struct kf_strbuf who = KF_STRBUF_INIT;
    int backoff = 50;

    while (!stopping(e)) {
        int64_t token = 0, from = 0;
        int r = campaign(e, &token, &who, &from);

        if (stopping(e))
            break;
        if (r < 0) {
            /* etcd unreachable: we are not the leader, and cannot tell who is */
            set_state(e, false, 0, "", 0, "etcd unreachable");
            pause_ms(e, backoff);
            backoff = KF_MIN(backoff * 2, 1000);
            continue;
        }
        backoff = 50;
        if (r == 1) {
            const char *why;

            set_state(e, true, token, e->id, token, "won the election");
            why = lead(e, token);
            if (!why)
                break; /* stopping: resign below */
            revoke_lease(e);
            set_state(e, false, 0, "", 0, why);
            /* let a healthier replica win before we try again */
            pause_ms(e, KF_MAX(e->lease_ttl_ms / 3, 100));
            continue;
        }
        set_state(e, false, 0, who.buf, from - 1, "another replica leads");
        r = follow(e, from);
        if (r < 0)
            pause_ms(e, backoff);
    }
    /* resign: revoking the lease deletes the key, so a follower takes over now */
    revoke_lease(e);
    kf_strbuf_release(&who);
    return NULL;
}

/* --- the API ----------------------------------------------------------- */

static bool id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;

    if (n == 0 || n >= KF_ELECTION_MAX_ID)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
            return false;
    return true;
}

int kf_election_start(struct kf_store *s, const struct kf_election_config *c,
                      struct kf_election **ret, struct kf_strbuf *err)
{
    struct kf_etcd *sc = kf_store_etcd_client(s);
    struct kf_election *e;
    pthread_condattr_t attr;

    if (!id_ok(c->id))
        return kf_err(err, -EINVAL,
                      "replica id \"%s\": 1 to %d printable bytes (e.g. hostname:port)",
                      c->id ? c->id : "", KF_ELECTION_MAX_ID - 1);
    if (c->ttl_ms < KF_ELECTION_MIN_TTL_MS)
        return kf_err(err, -EINVAL, "leader lease TTL %lld ms: at least %d ms",
                      (long long)c->ttl_ms, KF_ELECTION_MIN_TTL_MS);
    e = kf_xcalloc(1, sizeof(*e));
    e->store = s;
    e->id = kf_xstrdup(c->id);
    e->ttl_ms = c->ttl_ms;
    e->changed = c->changed;
    e->arg = c->arg;
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &attr);
    pthread_condattr_destroy(&attr);

    if (!sc) {
        /* one writer: it leads, always */
        set_state(e, true, 0, e->id, 0, "the only replica (the store has one writer)");
        *ret = e;
        return 0;
    }
    {
        struct kf_etcd_config cfg = *kf_etcd_config(sc);
        int r;

        cfg.timeout_ms = (int)KF_MAX(c->ttl_ms / 4, 200);
        r = kf_etcd_new(&cfg, &e->c, err);
        if (r < 0) {
            kf_election_stop(e);
            return r;
        }
        e->ekey = kf_xasprintf("%s%s", cfg.prefix, KF_ELECTION_KEY);
    }
    e->state.contested = true;
    e->stream = kf_etcd_stream_new(e->c);
    if (pthread_create(&e->thread, NULL, election_main, e) != 0) {
        kf_election_stop(e);
        return kf_err(err, -EAGAIN, "cannot start the election thread");
    }
    e->started = true;
    *ret = e;
    return 0;
}

void kf_election_get(struct kf_election *e, struct kf_election_state *ret)
{
    pthread_mutex_lock(&e->lock);
    *ret = e->state;
    pthread_mutex_unlock(&e->lock);
}

void kf_election_stop(struct kf_election *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    if (e->started) {
        kf_etcd_stream_interrupt(e->stream);
        pthread_join(e->thread, NULL);
    }
    kf_etcd_stream_free(e->stream);
    kf_etcd_free(e->c);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e->ekey);
    free(e->id);
    free(e);
}
