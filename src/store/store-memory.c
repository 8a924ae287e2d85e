/* store-memory.c: the in-memory store backend ("memory:"), for unit tests
 * and simulations. Same semantics as the durable backends: one global
 * revision, compare-and-swap, reads at old revisions, history, compaction.
 *
 * State: a sorted array of live keys and a log of every change since the
 * last compaction (the events themselves, shared with the watch hub). A read
 * at an old revision takes the live keys and, for each key changed since,
 * what its first later change says it was before (an event carries the
 * previous value and mod_rev). Nothing survives the process. One mutex
 * guards everything: this backend is for tests, not for speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>

#include "kfleet/error.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "store/store-internal.h"

struct mem_entry {
    char *key;
    char *value;
    size_t len;
    int64_t create_rev;
    int64_t mod_rev;
};

struct mem_store {
    struct kf_store base;
    pthread_mutex_t lock;
    struct mem_entry *live; /* sorted by key */
    size_t n, alloc;
    struct kf_event **log; /* every change after compacted_rev, in order */
    size_t nlog, alloc_log;
    int64_t rev;
    int64_t compacted_rev;
    size_t bytes;
};

static struct mem_store *mem(struct kf_store *s)
{
    return (struct mem_store *)s;
}

/* Index of key, or of where it would go (with *found false). */
static size_t find(const struct mem_entry *v, size_t n, const char *key, bool *found)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid].key, key);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static int mem_open(const char *arg, struct kf_store **ret, struct kf_strbuf *err)
{
    struct mem_store *m;

    if (arg && *arg)
        return kf_err(err, -EINVAL, "the memory store takes no argument (got \"%s\")", arg);
    m = kf_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    *ret = &m->base;
    return 0;
}

static void mem_close(struct kf_store *s)
{
    struct mem_store *m = mem(s);

    for (size_t i = 0; i < m->n; i++) {
        free(m->live[i].key);
        free(m->live[i].value);
    }
    free(m->live);
    for (size_t i = 0; i < m->nlog; i++)
        kf_event_unref(m->log[i]);
    free(m->log);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void fill_kv(struct kf_kv *kv, const char *key, const char *value, size_t len,
                    int64_t create_rev, int64_t mod_rev)
{
    kv->key = kf_xstrdup(key);
    kv->value = kf_xmalloc(len + 1);
    memcpy(kv->value, value, len);
    kv->value[len] = '\0';
    kv->value_len = len;
    kv->create_rev = create_rev;
    kv->mod_rev = mod_rev;
}

static int mem_get(struct kf_store *s, const char *key, struct kf_kv *ret)
{
    struct mem_store *m = mem(s);
    bool found;
    size_t i;

    pthread_mutex_lock(&m->lock);
    i = find(m->live, m->n, key, &found);
    if (found) {
        struct mem_entry *e = &m->live[i];

        fill_kv(ret, e->key, e->value, e->len, e->create_rev, e->mod_rev);
    }
    pthread_mutex_unlock(&m->lock);
    return found ? 0 : -KF_ENOTFOUND;
}

/* A borrowed view of one key at some revision. */
struct view {
    const char *key;
    const char *value;
    size_t len;
    int64_t create_rev;
    int64_t mod_rev;
};

/* Orders changes by key, then revision (a key changes once per revision). */
static int change_cmp(const void *a, const void *b)
{
    const struct kf_event *x = *(struct kf_event *const *)a;
    const struct kf_event *y = *(struct kf_event *const *)b;
    int c = strcmp(x->kv.key, y->kv.key);

    if (c)
        return c;
    return x->kv.mod_rev < y->kv.mod_rev ? -1 : x->kv.mod_rev > y->kv.mod_rev;
}

/* What a key was just before its change ev: false if it did not exist. */
static bool view_before(const struct kf_event *ev, struct view *v)
{
    if (kf_event_created(ev))
        return false;
    *v = (struct view){
        .key = ev->kv.key,
        .value = ev->type == KF_EVENT_PUT ? ev->prev_value : ev->kv.value,
        .len = ev->type == KF_EVENT_PUT ? ev->prev_len : ev->kv.value_len,
        .create_rev = ev->kv.create_rev,
        .mod_rev = ev->prev_mod_rev,
    };
    return true;
}

/* Appends v to the result unless the limit is reached; false when full. */
static bool emit(struct kf_kv_list *ret, const struct kf_range *q, const struct view *v)
{
    if (q->start_after && strcmp(v->key, q->start_after) <= 0)
        return true;
    if (q->limit && ret->n == q->limit) {
        ret->more = true;
        return false;
    }
    KF_GROW(ret->items, ret->alloc, ret->n);
    fill_kv(&ret->items[ret->n++], v->key, v->value, v->len, v->create_rev, v->mod_rev);
    return true;
}

static struct view live_view(const struct mem_entry *e)
{
    return (struct view){ e->key, e->value, e->len, e->create_rev, e->mod_rev };
}

/* A range at an older revision `at`: the live keys, except that a key
 * changed after `at` reads as it was before its first change after `at`. */
static void range_at(struct mem_store *m, const struct kf_range *q, const char *prefix, int64_t at,
                     struct kf_kv_list *ret)
{
    size_t plen = strlen(prefix);
    struct kf_event **changes = NULL;
    size_t nchanges = 0, alloc = 0, lo = 0, hi = m->nlog, k, c;
    bool found;
    size_t i;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (m->log[mid]->kv.mod_rev <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (k = lo; k < m->nlog; k++) {
        if (strncmp(m->log[k]->kv.key, prefix, plen) != 0)
            continue;
        KF_GROW(changes, alloc, nchanges);
        changes[nchanges++] = m->log[k];
    }
    if (nchanges) /* qsort of NULL is undefined, even with no element */
        qsort(changes, nchanges, sizeof(*changes), change_cmp);
    /* keep the first change of each key */
    for (k = 0, c = 0; k < nchanges; k++)
        if (c == 0 || strcmp(changes[c - 1]->kv.key, changes[k]->kv.key) != 0)
            changes[c++] = changes[k];
    nchanges = c;

    i = find(m->live, m->n, prefix, &found);
    k = 0;
    for (;;) {
        bool live_ok = i < m->n && strncmp(m->live[i].key, prefix, plen) == 0;
        struct view v;
        int cmp;

        if (!live_ok && k == nchanges)
            break;
        if (!live_ok)
            cmp = 1;
        else if (k == nchanges)
            cmp = -1;
        else
            cmp = strcmp(m->live[i].key, changes[k]->kv.key);
        if (cmp < 0) {
            v = live_view(&m->live[i++]);
        } else {
            if (cmp == 0)
                i++;
            if (!view_before(changes[k++], &v))
                continue;
        }
        if (!emit(ret, q, &v))
            break;
    }
    free(changes);
}

static int mem_range(struct kf_store *s, const struct kf_range *q, struct kf_kv_list *ret)
{
    struct mem_store *m = mem(s);
    const char *prefix = q->prefix ? q->prefix : "";
    size_t plen = strlen(prefix);
    int64_t at;
    bool found;

    pthread_mutex_lock(&m->lock);
    at = q->rev > 0 ? q->rev : m->rev;
    if (at < m->compacted_rev) {
        pthread_mutex_unlock(&m->lock);
        return -KF_ECOMPACTED;
    }
    if (at > m->rev) {
        pthread_mutex_unlock(&m->lock);
        return -EINVAL;
    }
    memset(ret, 0, sizeof(*ret));
    ret->rev = at;
    if (at < m->rev) {
        range_at(m, q, prefix, at, ret);
    } else {
        const char *from = prefix;
        size_t i;

        if (q->start_after && strcmp(q->start_after, prefix) > 0)
            from = q->start_after;
        for (i = find(m->live, m->n, from, &found); i < m->n; i++) {
            struct view v = live_view(&m->live[i]);

            if (strncmp(m->live[i].key, prefix, plen) != 0 || !emit(ret, q, &v))
                break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int mem_txn(struct kf_store *s, const struct kf_op *ops, size_t n, int64_t *ret_rev,
                   size_t *ret_failed)
{
    struct mem_store *m = mem(s);
    struct kf_event **events;
    size_t nev = 0;
    int64_t rev;

    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        bool found;
        size_t at = find(m->live, m->n, ops[i].key, &found);
        int r = 0;

        if (ops[i].expect_mod_rev == 0 && found)
            r = -KF_EEXISTS;
        else if (ops[i].expect_mod_rev > 0 && !found)
            r = -KF_ENOTFOUND;
        else if (ops[i].expect_mod_rev > 0 && m->live[at].mod_rev != ops[i].expect_mod_rev)
            r = -KF_ECONFLICT;
        else if (ops[i].type == KF_OP_DELETE && !found)
            r = -KF_ENOTFOUND;
        for (size_t j = 0; j < i && r == 0; j++)
            if (strcmp(ops[j].key, ops[i].key) == 0)
                r = -EINVAL; /* etcd refuses duplicate keys in a txn too */
        if (r < 0) {
            pthread_mutex_unlock(&m->lock);
            if (ret_failed)
                *ret_failed = i;
            return r;
        }
    }
    rev = ++m->rev;
    events = kf_xcalloc(n, sizeof(*events));
    for (size_t i = 0; i < n; i++) {
        bool found;
        size_t at = find(m->live, m->n, ops[i].key, &found);
        struct mem_entry *e;
        struct kf_event *ev;

        if (ops[i].type == KF_OP_CHECK)
            continue;
        if (ops[i].type == KF_OP_PUT) {
            if (found) {
                e = &m->live[at];
                ev = kf_event_new(KF_EVENT_PUT, e->key, ops[i].value, ops[i].value_len,
                                  e->create_rev, rev, e->value, e->len, e->mod_rev);
                m->bytes += ops[i].value_len;
                m->bytes -= e->len;
                free(e->value);
            } else {
                KF_GROW(m->live, m->alloc, m->n);
                memmove(&m->live[at + 1], &m->live[at], (m->n - at) * sizeof(*m->live));
                m->n++;
                e = &m->live[at];
                e->key = kf_xstrdup(ops[i].key);
                e->create_rev = rev;
                ev = kf_event_new(KF_EVENT_PUT, e->key, ops[i].value, ops[i].value_len, rev, rev,
                                  NULL, 0, 0);
                m->bytes += ops[i].value_len + strlen(ops[i].key);
            }
            e->value = kf_xmemdup(ops[i].value, ops[i].value_len);
            e->len = ops[i].value_len;
            e->mod_rev = rev;
        } else {
            e = &m->live[at];
            ev = kf_event_new(KF_EVENT_DELETE, e->key, e->value, e->len, e->create_rev, rev, NULL,
                              0, e->mod_rev);
            m->bytes -= e->len + strlen(e->key);
            free(e->key);
            free(e->value);
            memmove(&m->live[at], &m->live[at + 1], (m->n - at - 1) * sizeof(*m->live));
            m->n--;
        }
        KF_GROW(m->log, m->alloc_log, m->nlog);
        m->log[m->nlog++] = kf_event_ref(ev);
        events[nev++] = ev;
    }
    kf_store_publish(s, events, nev);
    pthread_mutex_unlock(&m->lock);
    free(events);
    if (ret_rev)
        *ret_rev = rev;
    return 0;
}

static int mem_history(struct kf_store *s, int64_t after_rev, size_t limit,
                       struct kf_event_list *ret)
{
    struct mem_store *m = mem(s);
    size_t lo = 0, hi;

    pthread_mutex_lock(&m->lock);
    if (after_rev < m->compacted_rev) {
        pthread_mutex_unlock(&m->lock);
        return -KF_ECOMPACTED;
    }
    hi = m->nlog;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (m->log[mid]->kv.mod_rev <= after_rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo, got = 0; i < m->nlog; i++, got++) {
        /* never split a transaction */
        if (limit && got >= limit && m->log[i]->kv.mod_rev != m->log[i - 1]->kv.mod_rev)
            break;
        KF_GROW(ret->items, ret->alloc, ret->n);
        ret->items[ret->n++] = kf_event_ref(m->log[i]);
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int mem_compact(struct kf_store *s, int64_t rev)
{
    struct mem_store *m = mem(s);
    size_t drop = 0;

    pthread_mutex_lock(&m->lock);
    if (rev > m->rev) {
        pthread_mutex_unlock(&m->lock);
        return -EINVAL;
    }
    if (rev <= m->compacted_rev) {
        pthread_mutex_unlock(&m->lock);
        return -KF_ECOMPACTED;
    }
    while (drop < m->nlog && m->log[drop]->kv.mod_rev <= rev)
        kf_event_unref(m->log[drop++]);
    memmove(m->log, m->log + drop, (m->nlog - drop) * sizeof(*m->log));
    m->nlog -= drop;
    m->compacted_rev = rev;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int mem_status(struct kf_store *s, struct kf_store_status *ret)
{
    struct mem_store *m = mem(s);

    pthread_mutex_lock(&m->lock);
    ret->rev = m->rev;
    ret->compacted_rev = m->compacted_rev;
    ret->keys = (int64_t)m->n;
    ret->db_bytes = (int64_t)m->bytes;
    ret->feed_rev = 0;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

const struct kf_store_ops kf_store_memory_ops = {
    .scheme = "memory",
    .open = mem_open,
    .close = mem_close,
    .get = mem_get,
    .range = mem_range,
    .txn = mem_txn,
    .history = mem_history,
    .compact = mem_compact,
    .status = mem_status,
};
