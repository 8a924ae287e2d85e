/* store-etcd.c: the etcd store backend ("etcd:http://h1:2379,http://h2:2379
 * [?cacert=..&cert=..&key=..&user=..&password-file=..&prefix=/kfleet]").
 *
 * kfleet's store model is etcd's, so this is a translation over the etcd
 * client (kfleet/etcd.h, the JSON gateway over libcurl: gRPC is not
 * available as a usable C library in Debian, see etcd.h):
 *   - store key K is etcd key PREFIX + K; the store owns the etcd range
 *     [PREFIX + "/", end of that prefix), so several fleets can share one
 *     etcd, and PREFIX + anything else (leader election) is outside it;
 *   - revision = etcd revision, create_rev/mod_rev = etcd's
 *     create_revision/mod_revision; a read at a revision is an etcd range
 *     at that revision; compaction is etcd's;
 *   - a transaction is one etcd Txn: the conditions become compares on
 *     mod_revision (create_revision == 0 for "must not exist"), the ops
 *     puts and deletes; the failure branch reads every key of the
 *     transaction in the same atomic step, from which the first failing op
 *     and its code are worked out exactly as the contract says;
 *   - events: ONE long-lived etcd watch on the store's range (with prev_kv),
 *     in a thread of its own, is the only publisher: writes by this process
 *     and by other kfleetd replicas reach local watchers the same way, once.
 *     The events of one etcd revision are one transaction. After a broken
 *     stream the watch resumes after the last published revision on the
 *     next endpoint, so nothing is lost or published twice; if etcd was
 *     compacted past that point meanwhile, the events in between are gone:
 *     every local watcher is expired (kf_watch_hub_expire, so API clients
 *     get 410 Gone and informers list again) and the watch goes on after
 *     the compaction;
 *   - read-your-writes: a successful txn waits (bounded by the request
 *     timeout) until the watch has published its revision before it
 *     returns, so a caller that writes and then reads its watch sees its
 *     own write. If the watch does not get there in time, the txn still
 *     returns success (it did apply) and the watch is restarted;
 *   - history: etcd has no "list changes" call, so history(after) is a
 *     short-lived watch from after + 1, read until it reaches the last
 *     revision the publisher has published (or goes quiet, when nothing is
 *     known to be pending);
 *   - failures: reads are retried on the other endpoints; a txn is retried
 *     only when it certainly did not apply; when its fate is unknown (sent,
 *     no answer) the keys are read again to find out (see txn_resolve).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "kfleet/base64.h"
#include "kfleet/error.h"
#include "kfleet/etcd.h"
#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "store/store-internal.h"

KF_LOG_MODULE(store_etcd);

/* history: how long a watch may stay silent before we take it that etcd
 * has sent everything (only when no published revision is pending). */
#define HISTORY_IDLE_MS  300
#define DB_SIZE_CACHE_NS (5ull * 1000 * 1000 * 1000)
#define TXN_RETRIES      3

struct etcd_store {
    struct kf_store base;
    struct kf_etcd *c;
    char *prefix; /* etcd key = prefix + store key */
    size_t prefix_len;
    char *all_start, *all_end; /* the store's etcd range */
    int timeout_ms;

    pthread_mutex_t lock;   /* the fields below */
    pthread_cond_t cond;    /* published_rev moved, or stopping */
    int64_t published_rev;  /* every event with a revision <= this is published */
    int64_t last_event_rev; /* the newest revision known to hold an event of ours */
    int64_t compacted_rev;  /* the newest compaction known */
    int64_t feed_rev;       /* before start: where the watch would begin */
    int64_t db_bytes;
    uint64_t db_bytes_at;
    bool started, stopping;
    pthread_t thread;
    struct kf_etcd_stream *stream;
};

static struct etcd_store *es_of(struct kf_store *s)
{
    return (struct etcd_store *)s;
}

static void note_compacted(struct etcd_store *es, int64_t rev)
{
    pthread_mutex_lock(&es->lock);
    if (rev > es->compacted_rev)
        es->compacted_rev = rev;
    pthread_mutex_unlock(&es->lock);
    if (es->base.hub)
        kf_store_note_compacted(&es->base, rev);
}

static int64_t known_compacted(struct etcd_store *es)
{
    int64_t rev;

    pthread_mutex_lock(&es->lock);
    rev = es->compacted_rev;
    pthread_mutex_unlock(&es->lock);
    return rev;
}

/* The etcd key of store key `key`, as a JSON base64 string. */
static json_t *ekey(struct etcd_store *es, const char *key)
{
    char *k = kf_xasprintf("%s%s", es->prefix, key);
    json_t *v = kf_etcd_str(k);

    free(k);
    return v;
}

/* A kv of etcd's (key and value in base64) into a store kv; -EBADMSG for
 * keys outside the store. */
static int kv_from_scanned(struct etcd_store *es, const struct kf_etcd_scanned_kv *kv,
                           struct kf_kv *ret)
{
    struct kf_strbuf key = KF_STRBUF_INIT, val = KF_STRBUF_INIT;

    if (kf_base64_decode(&key, kv->key, kv->key_len) < 0 ||
        kf_base64_decode(&val, kv->value, kv->value_len) < 0 || key.len <= es->prefix_len ||
        memcmp(key.buf, es->prefix, es->prefix_len) != 0 || strlen(key.buf) != key.len) {
        kf_strbuf_release(&key);
        kf_strbuf_release(&val);
        return -EBADMSG;
    }
    ret->key = kf_xstrdup(key.buf + es->prefix_len);
    ret->value_len = val.len;
    ret->value = kf_strbuf_detach(&val, NULL);
    ret->create_rev = kv->create_rev;
    ret->mod_rev = kv->mod_rev;
    kf_strbuf_release(&key);
    return 0;
}

/* --- reads ---------------------------------------------------------------- */

/* key + "\0": the first etcd key after key. */
static json_t *key_after(struct etcd_store *es, const char *key)
{
    size_t plen = es->prefix_len, klen = strlen(key);
    char *buf = kf_xmalloc(plen + klen + 1);
    json_t *v;

    memcpy(buf, es->prefix, plen);
    memcpy(buf + plen, key, klen);
    buf[plen + klen] = '\0';
    v = kf_etcd_bytes(buf, plen + klen + 1);
    free(buf);
    return v;
}

struct range_run {
    struct etcd_store *es;
    struct kf_kv_list out;
    size_t skipped; /* kvs that are not the store's */
};

static int add_scanned_kv(void *arg, const struct kf_etcd_scanned_kv *kv)
{
    struct range_run *rr = arg;

    KF_GROW(rr->out.items, rr->out.alloc, rr->out.n);
    if (kv_from_scanned(rr->es, kv, &rr->out.items[rr->out.n]) == 0)
        rr->out.n++;
    else
        rr->skipped++; /* not a store key (a NUL in it), or not base64 */
    return 0;
}

/* Sends a range request (req: taken) and reads its answer with
 * kf_etcd_scan_range, not into a JSON tree: a LIST of the whole fleet is
 * one range of megabytes. *ret: the store's kvs, more, and rev = the
 * answer's revision; *ret_skipped (may be NULL): kvs left out because
 * they are not the store's. */
static int range_call(struct etcd_store *es, json_t *req, struct kf_kv_list *ret,
                      size_t *ret_skipped)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    struct range_run rr = { .es = es };
    struct kf_etcd_scanned_range sr;
    int r = kf_etcd_call_raw(es->c, "/v3/kv/range", req, KF_ETCD_IDEMPOTENT, &body, NULL);

    json_decref(req);
    if (r < 0)
        return r;
    r = kf_etcd_scan_range(body.buf, body.len, add_scanned_kv, &rr, &sr);
    kf_strbuf_release(&body);
    if (r < 0) {
        kf_kv_list_release(&rr.out);
        return -EIO;
    }
    kf_etcd_note_rev(es->c, sr.header_rev);
    rr.out.more = sr.more;
    rr.out.rev = sr.header_rev;
    *ret = rr.out;
    if (ret_skipped)
        *ret_skipped = rr.skipped;
    return 0;
}

static int etcd_get(struct kf_store *s, const char *key, struct kf_kv *ret)
{
    struct etcd_store *es = es_of(s);
    struct kf_kv_list l = { 0 };
    size_t skipped = 0;
    int r = range_call(es, json_pack("{s:o}", "key", ekey(es, key)), &l, &skipped);

    if (r < 0)
        return r;
    if (l.n == 0) {
        r = skipped ? -EIO : -KF_ENOTFOUND; /* there, but not readable */
    } else {
        *ret = l.items[0];
        memset(&l.items[0], 0, sizeof(l.items[0])); /* moved */
    }
    kf_kv_list_release(&l);
    return r;
}

static int etcd_range(struct kf_store *s, const struct kf_range *q, struct kf_kv_list *ret)
{
    struct etcd_store *es = es_of(s);
    const char *p = q->prefix && *q->prefix ? q->prefix : "/";
    char *full = kf_xasprintf("%s%s", es->prefix, p);
    char *end = kf_store_prefix_end(full);
    json_t *req;
    int r;

    req = json_pack("{s:o, s:o}", "key", kf_etcd_str(full), "range_end", kf_etcd_str(end));
    if (q->start_after && strcmp(q->start_after, p) >= 0)
        json_object_set_new(req, "key", key_after(es, q->start_after));
    if (q->limit)
        json_object_set_new(req, "limit", kf_etcd_int((int64_t)q->limit));
    if (q->rev > 0)
        json_object_set_new(req, "revision", kf_etcd_int(q->rev));
    free(full);
    free(end);
    r = range_call(es, req, ret, NULL);
    if (r == 0 && q->rev > 0)
        ret->rev = q->rev;
    return r;
}

/* --- transactions ------------------------------------------------------- */

static json_t *compare(struct etcd_store *es, const char *key, const char *target,
                       const char *result, int64_t value)
{
    const char *field = strcmp(target, "MOD") == 0 ? "mod_revision" : "create_revision";

    return json_pack("{s:o, s:s, s:s, s:o}", "key", ekey(es, key), "target", target, "result",
                     result, field, kf_etcd_int(value));
}

static json_t *txn_request(struct etcd_store *es, const struct kf_op *ops, size_t n)
{
    json_t *cmp = json_array(), *succ = json_array(), *fail = json_array();

    for (size_t i = 0; i < n; i++) {
        const struct kf_op *op = &ops[i];

        if (op->expect_mod_rev == 0)
            json_array_append_new(cmp, compare(es, op->key, "CREATE", "EQUAL", 0));
        else if (op->expect_mod_rev > 0)
            json_array_append_new(cmp, compare(es, op->key, "MOD", "EQUAL", op->expect_mod_rev));
        /* a delete of a missing key fails whatever the condition */
        if (op->type == KF_OP_DELETE && op->expect_mod_rev <= 0)
            json_array_append_new(cmp, compare(es, op->key, "CREATE", "GREATER", 0));
        if (op->type == KF_OP_CHECK)
            ; /* a compare only (fencing) */
        else if (op->type == KF_OP_PUT)
            json_array_append_new(succ, json_pack("{s:{s:o, s:o}}", "request_put", "key",
                                                  ekey(es, op->key), "value",
                                                  kf_etcd_bytes(op->value, op->value_len)));
        else
            json_array_append_new(
                succ, json_pack("{s:{s:o}}", "request_delete_range", "key", ekey(es, op->key)));
        json_array_append_new(fail, json_pack("{s:{s:o, s:b}}", "request_range", "key",
                                              ekey(es, op->key), "keys_only", 1));
    }
    return json_pack("{s:o, s:o, s:o}", "compare", cmp, "success", succ, "failure", fail);
}

/* The code of op against the key's state (kv NULL: missing), as the
 * contract orders the checks. */
static int op_verdict(const struct kf_op *op, const json_t *kv)
{
    int64_t mod = kv ? kf_etcd_get_int(kv, "mod_revision", 0) : 0;

    if (op->expect_mod_rev == 0 && kv)
        return -KF_EEXISTS;
    if (op->expect_mod_rev > 0 && !kv)
        return -KF_ENOTFOUND;
    if (op->expect_mod_rev > 0 && mod != op->expect_mod_rev)
        return -KF_ECONFLICT;
    if (op->type == KF_OP_DELETE && !kv)
        return -KF_ENOTFOUND;
    return 0;
}

/* The first kv of responses[i]'s range, or NULL. */
static json_t *range_kv(const json_t *resp, size_t i)
{
    json_t *rr =
        json_object_get(json_array_get(json_object_get(resp, "responses"), i), "response_range");

    return json_array_get(json_object_get(rr, "kvs"), 0);
}

/* Waits until the watch has published rev; restarts a stuck watch. */
static void wait_published(struct etcd_store *es, int64_t rev)
{
    struct timespec deadline;
    bool late = false;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += es->timeout_ms / 1000;
    deadline.tv_nsec += (long)(es->timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&es->lock);
    while (es->started && !es->stopping && es->published_rev < rev) {
        if (pthread_cond_timedwait(&es->cond, &es->lock, &deadline) == ETIMEDOUT) {
            late = es->published_rev < rev;
            break;
        }
    }
    pthread_mutex_unlock(&es->lock);
    if (late) {
        kf_log_dbg("the watch has not published revision %lld in %d ms; restarting it",
                   (long long)rev, es->timeout_ms);
        kf_etcd_stream_interrupt(es->stream);
    }
}

enum resolved {
    RESOLVED_NOT_APPLIED,
    RESOLVED_APPLIED,
    RESOLVED_UNKNOWN,
};

/* A txn was sent and no answer came: read its keys to learn whether it
 * applied. It did not if some op's condition on mod_rev still holds (an
 * applied op would have moved that key's mod_rev), or if every op is a
 * create whose key is still missing. It did, at revision X, if every PUT
 * key holds the value we wrote with mod_rev X (one txn wrote them all) and
 * every DELETE key is gone. Anything else is unknown. */
static enum resolved txn_resolve(struct etcd_store *es, const struct kf_op *ops, size_t n,
                                 int64_t rev_before, int64_t *ret_rev)
{
    json_t *succ = json_array(), *req, *resp = NULL;
    enum resolved res = RESOLVED_UNKNOWN;
    bool all_creates_missing = true, applied = true;
    int64_t x = 0;
    int r;

    for (size_t i = 0; i < n; i++)
        json_array_append_new(succ,
                              json_pack("{s:{s:o}}", "request_range", "key", ekey(es, ops[i].key)));
    req = json_pack("{s:[], s:o}", "compare", "success", succ);
    r = kf_etcd_call(es->c, "/v3/kv/txn", req, KF_ETCD_IDEMPOTENT, &resp, NULL);
    json_decref(req);
    if (r < 0)
        return RESOLVED_UNKNOWN;
    for (size_t i = 0; i < n; i++) {
        json_t *kv = range_kv(resp, i);
        int64_t mod = kv ? kf_etcd_get_int(kv, "mod_revision", 0) : 0;

        if (ops[i].type == KF_OP_CHECK)
            continue; /* a condition only: its key tells nothing */
        if (ops[i].expect_mod_rev > 0 && kv && mod == ops[i].expect_mod_rev) {
            res = RESOLVED_NOT_APPLIED;
            goto put_resp;
        }
        if (!(ops[i].type == KF_OP_PUT && ops[i].expect_mod_rev == 0 && !kv))
            all_creates_missing = false;
        if (ops[i].type == KF_OP_DELETE) {
            applied = applied && !kv;
        } else {
            struct kf_strbuf v = KF_STRBUF_INIT;

            if (!kv || kf_etcd_get_bytes(kv, "value", &v) < 0 || v.len != ops[i].value_len ||
                memcmp(v.buf, ops[i].value, v.len) != 0 || mod <= rev_before || (x && mod != x))
                applied = false;
            x = mod;
            kf_strbuf_release(&v);
        }
    }
    if (all_creates_missing)
        res = RESOLVED_NOT_APPLIED;
    else if (applied && x > 0) {
        res = RESOLVED_APPLIED;
        *ret_rev = x;
    }
put_resp:
    json_decref(resp);
    return res;
}

static int etcd_txn(struct kf_store *s, const struct kf_op *ops, size_t n, int64_t *ret_rev,
                    size_t *ret_failed)
{
    struct etcd_store *es = es_of(s);
    json_t *req, *resp = NULL;
    int64_t rev = 0, before;
    int r = 0;

    for (size_t i = 1; i < n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ops[i].key, ops[j].key) == 0) {
                if (ret_failed)
                    *ret_failed = i;
                return -EINVAL; /* etcd refuses a key twice in a txn too */
            }
        }
    }
    req = txn_request(es, ops, n);
    for (int attempt = 0;; attempt++) {
        before = kf_etcd_seen_rev(es->c);
        r = kf_etcd_call(es->c, "/v3/kv/txn", req, 0, &resp, NULL);
        if (r != -KF_ETIMEOUT)
            break;
        switch (txn_resolve(es, ops, n, before, &rev)) {
        case RESOLVED_NOT_APPLIED:
            if (attempt + 1 < TXN_RETRIES)
                continue;
            r = -KF_EUNAVAILABLE;
            break;
        case RESOLVED_APPLIED:
            r = 0;
            break;
        case RESOLVED_UNKNOWN:
            break;
        }
        break;
    }
    json_decref(req);
    if (r < 0)
        return r;
    if (resp && !kf_json_bool(resp, "succeeded", false)) {
        for (size_t i = 0; i < n; i++) {
            r = op_verdict(&ops[i], range_kv(resp, i));
            if (r < 0) {
                if (ret_failed)
                    *ret_failed = i;
                break;
            }
        }
        json_decref(resp);
        /* the compares failed, so some op must: etcd and we disagree */
        return r < 0 ? r : -EIO;
    }
    if (resp)
        rev = kf_etcd_get_int(json_object_get(resp, "header"), "revision", 0);
    json_decref(resp);
    wait_published(es, rev);
    if (ret_rev)
        *ret_rev = rev;
    return 0;
}

/* --- events ----------------------------------------------------------- */

struct kf_event *kf_etcd_watch_event(const char *prefix, size_t prefix_len, const json_t *ev)
{
    const json_t *kv = json_object_get(ev, "kv"), *prev = json_object_get(ev, "prev_kv");
    bool del = strcmp(kf_json_str(ev, "type", "PUT"), "DELETE") == 0;
    struct kf_strbuf key = KF_STRBUF_INIT, val = KF_STRBUF_INIT, pval = KF_STRBUF_INIT;
    struct kf_event *out = NULL;
    int64_t mod = kf_etcd_get_int(kv, "mod_revision", 0);

    if (kf_etcd_get_bytes(kv, "key", &key) < 0 || key.len <= prefix_len ||
        memcmp(key.buf, prefix, prefix_len) != 0 || strlen(key.buf) != key.len)
        goto release_bufs;
    if (kf_etcd_get_bytes(del ? prev : kv, "value", &val) < 0 ||
        kf_etcd_get_bytes(prev, "value", &pval) < 0)
        goto release_bufs;
    if (del)
        out = kf_event_new(KF_EVENT_DELETE, key.buf + prefix_len, val.buf, val.len,
                           kf_etcd_get_int(prev, "create_revision", 0), mod, NULL, 0,
                           kf_etcd_get_int(prev, "mod_revision", 0));
    else
        out = kf_event_new(KF_EVENT_PUT, key.buf + prefix_len, val.buf, val.len,
                           kf_etcd_get_int(kv, "create_revision", 0), mod, prev ? pval.buf : NULL,
                           pval.len, prev ? kf_etcd_get_int(prev, "mod_revision", 0) : 0);
release_bufs:
    kf_strbuf_release(&key);
    kf_strbuf_release(&val);
    kf_strbuf_release(&pval);
    return out;
}

/* A watch was cancelled: why, as an error. */
static int watch_cancelled(struct etcd_store *es, const json_t *result)
{
    int64_t compact = kf_etcd_get_int(result, "compact_revision", 0);
    const char *reason = kf_json_str(result, "cancel_reason", "");

    if (compact > 0) {
        note_compacted(es, compact);
        return -KF_ECOMPACTED;
    }
    if (strstr(reason, "permission denied"))
        return -EPERM;
    return -KF_EUNAVAILABLE; /* "no leader" and the like: try elsewhere */
}

/* --- the publisher ---------------------------------------------------- */

struct pub_run {
    struct etcd_store *es;
    bool created;
};

static int publish_message(void *arg, json_t *result)
{
    struct pub_run *pr = arg;
    struct etcd_store *es = pr->es;
    json_t *evs = json_object_get(result, "events");
    size_t n = json_array_size(evs), i = 0;

    if (kf_json_bool(result, "canceled", false))
        return watch_cancelled(es, result);
    if (kf_json_bool(result, "created", false))
        pr->created = true;
    while (i < n) {
        int64_t rev =
            kf_etcd_get_int(json_object_get(json_array_get(evs, i), "kv"), "mod_revision", 0);
        struct kf_event **batch = kf_xcalloc(n - i, sizeof(*batch));
        size_t nb = 0;
        int64_t published;

        /* one etcd revision = one transaction; etcd never splits one */
        for (; i < n; i++) {
            json_t *ev = json_array_get(evs, i);
            struct kf_event *kev;

            if (kf_etcd_get_int(json_object_get(ev, "kv"), "mod_revision", 0) != rev)
                break;
            kev = kf_etcd_watch_event(es->prefix, es->prefix_len, ev);
            if (kev)
                batch[nb++] = kev;
        }
        pthread_mutex_lock(&es->lock);
        published = es->published_rev;
        pthread_mutex_unlock(&es->lock);
        if (rev > published && nb > 0)
            kf_store_publish(&es->base, batch, nb);
        else
            for (size_t k = 0; k < nb; k++)
                kf_event_unref(batch[k]);
        free(batch);
        pthread_mutex_lock(&es->lock);
        if (rev > es->published_rev) {
            es->published_rev = rev;
            es->last_event_rev = rev;
        }
        pthread_cond_broadcast(&es->cond);
        pthread_mutex_unlock(&es->lock);
    }
    return 0;
}

static void *publisher(void *arg)
{
    struct etcd_store *es = arg;
    int backoff = 50;

    for (;;) {
        struct pub_run pr = { .es = es };
        struct kf_strbuf err = KF_STRBUF_INIT;
        struct timespec until;
        json_t *req;
        int64_t from;
        int r;

        pthread_mutex_lock(&es->lock);
        if (es->stopping) {
            pthread_mutex_unlock(&es->lock);
            break;
        }
        from = es->published_rev + 1;
        pthread_mutex_unlock(&es->lock);
        req = json_pack("{s:{s:o, s:o, s:o, s:b}}", "create_request", "key",
                        kf_etcd_str(es->all_start), "range_end", kf_etcd_str(es->all_end),
                        "start_revision", kf_etcd_int(from), "prev_kv", 1);
        r = kf_etcd_stream_run(es->stream, "/v3/watch", req, publish_message, &pr, 0, 0, &err);
        json_decref(req);
        if (r == -KF_ECOMPACTED) {
            /* Our watch fell behind a compaction by someone else while it
             * was away: what happened in between is gone. Every local
             * watcher, however caught up, missed it: expire them all (API
             * clients get 410 Gone and list again, informers list again)
             * and go on after the compaction. The events of revision c
             * itself are skipped too: whoever lists now sees them. */
            int64_t c = known_compacted(es);
            size_t n;

            pthread_mutex_lock(&es->lock);
            if (c > es->published_rev)
                es->published_rev = c;
            if (c > es->last_event_rev)
                es->last_event_rev = c;
            pthread_cond_broadcast(&es->cond);
            pthread_mutex_unlock(&es->lock);
            n = kf_watch_hub_expire(es->base.hub, c);
            kf_log_dbg("watch from revision %lld: compacted up to %lld, events in between lost; "
                       "expired %zu watchers, resuming after %lld",
                       (long long)from, (long long)c, n, (long long)c);
        } else if (r != -EINTR) {
            kf_log_dbg("watch on \"%s\" ended (%d: %s); resuming after revision %lld",
                       kf_etcd_endpoint(es->c), r, err.buf, (long long)from - 1);
        }
        kf_strbuf_release(&err);
        if (pr.created)
            backoff = 50;
        /* back off, unless told to stop */
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)backoff * 1000000L;
        while (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&es->lock);
        while (!es->stopping && pthread_cond_timedwait(&es->cond, &es->lock, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&es->lock);
        if (r != -EINTR)
            backoff = KF_MIN(backoff * 2, 1000);
    }
    return NULL;
}

static int etcd_start(struct kf_store *s, int64_t rev)
{
    struct etcd_store *es = es_of(s);
    int r;

    pthread_mutex_lock(&es->lock);
    es->published_rev = rev;
    pthread_mutex_unlock(&es->lock);
    es->stream = kf_etcd_stream_new(es->c);
    r = pthread_create(&es->thread, NULL, publisher, es);
    if (r != 0) {
        kf_etcd_stream_free(es->stream);
        es->stream = NULL;
        return -r;
    }
    es->started = true;
    return 0;
}

static void etcd_stop(struct kf_store *s)
{
    struct etcd_store *es = es_of(s);

    if (!es->started)
        return;
    pthread_mutex_lock(&es->lock);
    es->stopping = true;
    pthread_cond_broadcast(&es->cond);
    pthread_mutex_unlock(&es->lock);
    kf_etcd_stream_interrupt(es->stream);
    pthread_join(es->thread, NULL);
    kf_etcd_stream_free(es->stream);
    es->stream = NULL;
    es->started = false;
}

/* --- history ---------------------------------------------------------- */

struct hist_run {
    struct etcd_store *es;
    struct kf_event_list *ret;
    size_t got, limit;
    int64_t target; /* stop once an event of this revision arrived (0: none) */
    int64_t last;   /* revision of the last event taken */
};

static int history_message(void *arg, json_t *result)
{
    struct hist_run *hr = arg;
    json_t *evs = json_object_get(result, "events"), *ev;
    size_t i;

    if (kf_json_bool(result, "canceled", false))
        return watch_cancelled(hr->es, result);
    json_array_foreach(evs, i, ev)
    {
        struct kf_event *kev = kf_etcd_watch_event(hr->es->prefix, hr->es->prefix_len, ev);

        if (!kev)
            continue;
        /* a response holds whole revisions: the limit is checked between */
        KF_GROW(hr->ret->items, hr->ret->alloc, hr->ret->n);
        hr->ret->items[hr->ret->n++] = kev;
        hr->got++;
        hr->last = kev->kv.mod_rev;
    }
    if (hr->limit && hr->got >= hr->limit)
        return 1;
    if (hr->target && hr->last >= hr->target)
        return 1;
    return 0;
}

static int etcd_history(struct kf_store *s, int64_t after_rev, size_t limit,
                        struct kf_event_list *ret)
{
    struct etcd_store *es = es_of(s);
    struct kf_etcd_stream *st;
    struct hist_run hr = { .es = es, .ret = ret, .limit = limit, .last = after_rev };
    size_t start_n = ret->n;
    int r = -KF_EUNAVAILABLE;

    pthread_mutex_lock(&es->lock);
    if (after_rev < es->compacted_rev) {
        pthread_mutex_unlock(&es->lock);
        return -KF_ECOMPACTED;
    }
    hr.target = es->last_event_rev > after_rev ? es->last_event_rev : 0;
    pthread_mutex_unlock(&es->lock);
    st = kf_etcd_stream_new(es->c);
    for (size_t a = 0; a < 3 * kf_etcd_config(es->c)->n_endpoints; a++) {
        json_t *req = json_pack("{s:{s:o, s:o, s:o, s:b}}", "create_request", "key",
                                kf_etcd_str(es->all_start), "range_end", kf_etcd_str(es->all_end),
                                "start_revision", kf_etcd_int(hr.last + 1), "prev_kv", 1);

        r = kf_etcd_stream_run(st, "/v3/watch", req, history_message, &hr,
                               hr.target ? 0 : HISTORY_IDLE_MS, es->timeout_ms, NULL);
        json_decref(req);
        if (r != -KF_EUNAVAILABLE)
            break;
    }
    kf_etcd_stream_free(st);
    if (r == 1 || (r == -KF_ETIMEOUT && hr.got > 0))
        r = 0; /* went quiet, or slow: what we have is a correct prefix */
    if (r < 0) {
        for (size_t i = start_n; i < ret->n; i++)
            kf_event_unref(ret->items[i]);
        ret->n = start_n;
        return r;
    }
    /* never more than the limit, except to finish a transaction */
    if (limit) {
        size_t keep = start_n + limit;

        while (keep < ret->n && ret->items[keep]->kv.mod_rev == ret->items[keep - 1]->kv.mod_rev)
            keep++;
        for (size_t i = keep; i < ret->n; i++)
            kf_event_unref(ret->items[i]);
        if (keep < ret->n)
            ret->n = keep;
    }
    return 0;
}

/* --- compaction and status -------------------------------------------- */

static int etcd_compact(struct kf_store *s, int64_t rev)
{
    struct etcd_store *es = es_of(s);
    json_t *req, *resp = NULL;
    int r;

    if (rev <= known_compacted(es))
        return -KF_ECOMPACTED;
    req = json_pack("{s:o}", "revision", kf_etcd_int(rev));
    r = kf_etcd_call(es->c, "/v3/kv/compaction", req, KF_ETCD_IDEMPOTENT, &resp, NULL);
    json_decref(req);
    json_decref(resp);
    if (r == 0)
        note_compacted(es, rev);
    return r;
}

/* Count of the store's keys and the current revision, in one read. */
static int count_keys(struct etcd_store *es, int64_t at, int64_t *ret_count, int64_t *ret_rev,
                      struct kf_strbuf *err)
{
    json_t *req = json_pack("{s:o, s:o, s:b}", "key", kf_etcd_str(es->all_start), "range_end",
                            kf_etcd_str(es->all_end), "count_only", 1),
           *resp = NULL;
    int r;

    if (at > 0)
        json_object_set_new(req, "revision", kf_etcd_int(at));
    r = kf_etcd_call(es->c, "/v3/kv/range", req, KF_ETCD_IDEMPOTENT, &resp, err);
    json_decref(req);
    if (r < 0)
        return r;
    if (ret_count)
        *ret_count = kf_etcd_get_int(resp, "count", 0);
    if (ret_rev)
        *ret_rev = kf_etcd_get_int(json_object_get(resp, "header"), "revision", 0);
    json_decref(resp);
    return 0;
}

static int etcd_status(struct kf_store *s, struct kf_store_status *ret)
{
    struct etcd_store *es = es_of(s);
    struct kf_store_status st = { 0 };
    uint64_t now = kf_mono_ns();
    bool stale;
    int r;

    r = count_keys(es, 0, &st.keys, &st.rev, NULL);
    if (r < 0)
        return r;
    pthread_mutex_lock(&es->lock);
    st.compacted_rev = es->compacted_rev;
    st.feed_rev = es->started ? 0 : KF_MAX(KF_MAX(es->feed_rev, es->compacted_rev), 1);
    stale = es->db_bytes_at == 0 || now - es->db_bytes_at > DB_SIZE_CACHE_NS;
    st.db_bytes = es->db_bytes;
    pthread_mutex_unlock(&es->lock);
    if (stale) {
        json_t *req = json_object(), *resp = NULL;

        if (kf_etcd_call(es->c, "/v3/maintenance/status", req, KF_ETCD_IDEMPOTENT, &resp, NULL) ==
            0) {
            st.db_bytes = kf_etcd_get_int(resp, "dbSize", 0);
            pthread_mutex_lock(&es->lock);
            es->db_bytes = st.db_bytes;
            es->db_bytes_at = now;
            pthread_mutex_unlock(&es->lock);
        }
        json_decref(req);
        json_decref(resp);
    }
    *ret = st;
    return 0;
}

/* etcd does not say how far it was compacted, only that a revision was:
 * find the oldest readable revision by bisection (a few cheap reads). */
static int find_compacted(struct etcd_store *es, int64_t rev, int64_t *ret, struct kf_strbuf *err)
{
    int64_t lo = 1, hi = rev; /* lo: maybe readable; hi: readable */

    if (rev <= 1) {
        *ret = 0;
        return 0;
    }
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = count_keys(es, mid, NULL, NULL, err);

        if (r == -KF_ECOMPACTED)
            lo = mid + 1;
        else if (r < 0)
            return r;
        else
            hi = mid;
    }
    /* lo is the oldest readable revision: etcd compacted at lo (or never) */
    *ret = lo > 1 ? lo : 0;
    return 0;
}

/* The newest revision that holds a PUT of one of our live keys. */
static int newest_mod_rev(struct etcd_store *es, int64_t *ret, struct kf_strbuf *err)
{
    json_t *req = json_pack("{s:o, s:o, s:b, s:o, s:s, s:s}", "key", kf_etcd_str(es->all_start),
                            "range_end", kf_etcd_str(es->all_end), "keys_only", 1, "limit",
                            kf_etcd_int(1), "sort_order", "DESCEND", "sort_target", "MOD"),
           *resp = NULL;
    int r = kf_etcd_call(es->c, "/v3/kv/range", req, KF_ETCD_IDEMPOTENT, &resp, err);

    json_decref(req);
    if (r < 0)
        return r;
    *ret = kf_etcd_get_int(json_array_get(json_object_get(resp, "kvs"), 0), "mod_revision", 0);
    json_decref(resp);
    return 0;
}

/* --- open and close --------------------------------------------------- */

static void etcd_close(struct kf_store *s)
{
    struct etcd_store *es = es_of(s);

    etcd_stop(s);
    kf_etcd_free(es->c);
    pthread_mutex_destroy(&es->lock);
    pthread_cond_destroy(&es->cond);
    free(es->prefix);
    free(es->all_start);
    free(es->all_end);
    free(es);
}

static int etcd_open(const char *arg, struct kf_store **ret, struct kf_strbuf *err)
{
    struct kf_etcd_config cfg;
    struct etcd_store *es;
    pthread_condattr_t attr;
    int64_t rev = 0;
    int r;

    r = kf_etcd_config_parse(arg, &cfg, err);
    if (r < 0)
        return r;
    es = kf_xcalloc(1, sizeof(*es));
    r = kf_etcd_new(&cfg, &es->c, err);
    if (r < 0) {
        kf_etcd_config_release(&cfg);
        free(es);
        return r;
    }
    es->prefix = kf_xstrdup(cfg.prefix);
    es->prefix_len = strlen(es->prefix);
    es->all_start = kf_xasprintf("%s/", es->prefix);
    es->all_end = kf_store_prefix_end(es->all_start);
    es->timeout_ms = cfg.timeout_ms;
    kf_etcd_config_release(&cfg);
    pthread_mutex_init(&es->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&es->cond, &attr);
    pthread_condattr_destroy(&attr);

    r = count_keys(es, 0, NULL, &rev, err);
    if (r == 0)
        r = find_compacted(es, rev, &es->compacted_rev, err);
    if (r == 0)
        r = newest_mod_rev(es, &es->last_event_rev, err);
    es->feed_rev = es->last_event_rev;
    if (r < 0) {
        etcd_close(&es->base);
        return r;
    }
    *ret = &es->base;
    return 0;
}

struct kf_etcd *kf_store_etcd_client(struct kf_store *s)
{
    return s && s->ops == &kf_store_etcd_ops ? es_of(s)->c : NULL;
}

const struct kf_store_ops kf_store_etcd_ops = {
    .scheme = "etcd",
    .open = etcd_open,
    .close = etcd_close,
    .get = etcd_get,
    .range = etcd_range,
    .txn = etcd_txn,
    .history = etcd_history,
    .compact = etcd_compact,
    .status = etcd_status,
    .start = etcd_start,
    .stop = etcd_stop,
};
