/* ctrl-informer.c: one kind's cache of stored objects, fed by a list and
 * then the store's watch, with indexes and event handlers (contract in
 * kfleet/ctrl.h).
 *
 * The cache holds each object's stored bytes and the index values computed
 * from it, under a read-write lock. Each change is parsed once, on the
 * informer's thread, to compute scope and index values and to hand the
 * parsed object to the handlers (called without the lock, so a handler may
 * query any informer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "kfleet/ctrl.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/smap.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-internal.h"

KF_LOG_MODULE(informer);

#define LIST_PAGE     1000
#define MAX_INDEXES   8
#define WAIT_SLICE_MS 200

struct cached {
    char *value;
    size_t len;
    int64_t create_rev;
    int64_t mod_rev;
    /* index values per index: a NULL-terminated array each */
    char **values[MAX_INDEXES];
};

struct index {
    char *name;
    kf_index_fn fn;
    struct kf_smap by_value; /* value -> struct kf_smap * (set of names) */
};

struct handler {
    struct kf_ctrl *ctrl;
    kf_ctrl_map_fn map;
};

struct kf_informer {
    struct kf_ctrl_manager *m;
    const struct kf_kind *kind;
    char *prefix;
    pthread_rwlock_t lock;
    struct kf_smap objs; /* name -> struct cached * */
    struct index indexes[MAX_INDEXES];
    size_t nindexes;
    struct handler *handlers;
    size_t nhandlers, alloc_handlers;
    int64_t rev;
    size_t bytes; /* kf_informer_bytes: what objs holds */
    pthread_t thread;
    bool running;
    bool stop;
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_cond;
    bool synced;
    int sync_error;
};

struct kf_informer *kf_informer_new(struct kf_ctrl_manager *m, const struct kf_kind *k)
{
    struct kf_informer *inf = kf_xcalloc(1, sizeof(*inf));

    inf->m = m;
    inf->kind = k;
    inf->prefix = kf_obj_prefix(k);
    pthread_rwlock_init(&inf->lock, NULL);
    pthread_mutex_init(&inf->sync_lock, NULL);
    pthread_cond_init(&inf->sync_cond, NULL);
    return inf;
}

const struct kf_kind *kf_informer_kind(struct kf_informer *inf)
{
    return inf->kind;
}

static void free_values(char **values)
{
    if (!values)
        return;
    for (char **v = values; *v; v++)
        free(*v);
    free(values);
}

static void index_remove(struct index *ix, char **values, const char *name)
{
    if (!values)
        return;
    for (char **v = values; *v; v++) {
        struct kf_smap *set = kf_smap_get(&ix->by_value, *v);

        if (!set)
            continue;
        kf_smap_remove(set, name);
        if (kf_smap_count(set) == 0) {
            kf_smap_remove(&ix->by_value, *v);
            kf_smap_release(set);
            free(set);
        }
    }
}

static void index_add(struct index *ix, char **values, const char *name)
{
    if (!values)
        return;
    for (char **v = values; *v; v++) {
        struct kf_smap *set = kf_smap_get(&ix->by_value, *v);

        if (!set) {
            set = kf_xcalloc(1, sizeof(*set));
            kf_smap_put(&ix->by_value, *v, set);
        }
        kf_smap_put(set, name, (void *)1);
    }
}

/* What one cached object costs, roughly as malloc sees it. */
static size_t cached_size(const struct cached *c, size_t nindexes)
{
    size_t n = sizeof(*c) + c->len + 1;

    for (size_t i = 0; i < nindexes; i++) {
        if (!c->values[i])
            continue;
        for (char **v = c->values[i]; *v; v++)
            n += sizeof(*v) + strlen(*v) + 1;
        n += sizeof(char *);
    }
    return n;
}

static void cached_free(struct cached *c, size_t nindexes)
{
    if (!c)
        return;
    for (size_t i = 0; i < nindexes; i++)
        free_values(c->values[i]);
    free(c->value);
    free(c);
}

void kf_informer_free(struct kf_informer *inf)
{
    size_t it = 0;
    void *v;

    if (!inf)
        return;
    while (kf_smap_next(&inf->objs, &it, NULL, &v))
        cached_free(v, inf->nindexes);
    kf_smap_release(&inf->objs);
    for (size_t i = 0; i < inf->nindexes; i++) {
        size_t jt = 0;

        while (kf_smap_next(&inf->indexes[i].by_value, &jt, NULL, &v)) {
            kf_smap_release(v);
            free(v);
        }
        kf_smap_release(&inf->indexes[i].by_value);
        free(inf->indexes[i].name);
    }
    free(inf->handlers);
    free(inf->prefix);
    pthread_rwlock_destroy(&inf->lock);
    pthread_mutex_destroy(&inf->sync_lock);
    pthread_cond_destroy(&inf->sync_cond);
    free(inf);
}

int kf_informer_add_index(struct kf_informer *inf, const char *index, kf_index_fn fn)
{
    if (inf->running)
        return -EBUSY;
    for (size_t i = 0; i < inf->nindexes; i++)
        if (strcmp(inf->indexes[i].name, index) == 0)
            return -EEXIST;
    if (inf->nindexes == MAX_INDEXES)
        return -ENOSPC;
    inf->indexes[inf->nindexes].name = kf_xstrdup(index);
    inf->indexes[inf->nindexes].fn = fn;
    inf->nindexes++;
    return 0;
}

void kf_informer_add_handler(struct kf_informer *inf, struct kf_ctrl *c, kf_ctrl_map_fn map)
{
    KF_GROW(inf->handlers, inf->alloc_handlers, inf->nhandlers);
    inf->handlers[inf->nhandlers].ctrl = c;
    inf->handlers[inf->nhandlers].map = map;
    inf->nhandlers++;
}

struct collect {
    char **items;
    size_t n, alloc;
};

static void collect_value(const char *value, void *ctx)
{
    struct collect *c = ctx;

    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->items[i], value) == 0)
            return;
    KF_GROW(c->items, c->alloc, c->n + 1);
    c->items[c->n++] = kf_xstrdup(value);
    c->items[c->n] = NULL;
}

static void notify(struct kf_informer *inf, const json_t *obj, bool deleted)
{
    const char *name = kf_obj_name(obj);

    for (size_t i = 0; i < inf->nhandlers; i++) {
        struct handler *h = &inf->handlers[i];

        if (h->map)
            h->map(h->ctrl, obj, deleted);
        else if (name)
            kf_ctrl_enqueue(h->ctrl, name);
    }
}

/* Applies one object state (obj NULL: deleted). Returns the previous cached
 * state's existence. Takes ownership of nothing; copies bytes. */
static bool apply(struct kf_informer *inf, const char *name, const json_t *obj, const char *bytes,
                  size_t len, int64_t create_rev, int64_t mod_rev)
{
    struct cached *old, *c = NULL;

    if (obj) {
        c = kf_xcalloc(1, sizeof(*c));
        c->value = kf_xmemdup(bytes, len + 1);
        c->value[len] = '\0';
        c->len = len;
        c->create_rev = create_rev;
        c->mod_rev = mod_rev;
        for (size_t i = 0; i < inf->nindexes; i++) {
            struct collect col = { 0 };

            inf->indexes[i].fn(obj, collect_value, &col);
            c->values[i] = col.items;
        }
    }
    pthread_rwlock_wrlock(&inf->lock);
    old = c ? kf_smap_put(&inf->objs, name, c) : kf_smap_remove(&inf->objs, name);
    if (old)
        inf->bytes -= cached_size(old, inf->nindexes) + strlen(name) + 1;
    if (c)
        inf->bytes += cached_size(c, inf->nindexes) + strlen(name) + 1;
    for (size_t i = 0; i < inf->nindexes; i++) {
        if (old)
            index_remove(&inf->indexes[i], old->values[i], name);
        if (c)
            index_add(&inf->indexes[i], c->values[i], name);
    }
    pthread_rwlock_unlock(&inf->lock);
    cached_free(old, inf->nindexes);
    return old != NULL;
}

static const char *name_of_key(const struct kf_informer *inf, const char *key)
{
    size_t plen = strlen(inf->prefix);

    return strncmp(key, inf->prefix, plen) == 0 ? key + plen : NULL;
}

static bool owned(struct kf_informer *inf, const json_t *obj)
{
    return kf_ctrl_manager_owns(inf->m, inf->kind, obj);
}

/* One change from the watch. */
static void on_event(struct kf_informer *inf, const struct kf_event *ev)
{
    const char *name = name_of_key(inf, ev->kv.key);
    json_t *obj = NULL;
    bool had;

    if (!name)
        return;
    if (kf_obj_decode(ev->kv.value, ev->kv.value_len, ev->kv.mod_rev, &obj) < 0) {
        kf_log_rl_warn("ignoring undecodable %s \"%s\" at revision %lld", inf->kind->kind, name,
                       (long long)ev->kv.mod_rev);
        return;
    }
    if (ev->type == KF_EVENT_DELETE || !owned(inf, obj)) {
        had = apply(inf, name, NULL, NULL, 0, 0, 0);
        if (had)
            notify(inf, obj, true);
    } else {
        apply(inf, name, obj, ev->kv.value, ev->kv.value_len, ev->kv.create_rev, ev->kv.mod_rev);
        notify(inf, obj, false);
    }
    json_decref(obj);
}

/* Lists everything and replaces the cache; what vanished is reported as
 * deleted. */
static int relist(struct kf_informer *inf)
{
    struct kf_store *store = kf_ctrl_manager_store(inf->m);
    struct kf_smap seen = KF_SMAP_INIT;
    char *start = NULL;
    int64_t at = 0;
    char **names;
    size_t n;
    int r = 0;

    for (;;) {
        struct kf_kv_list l = { 0 };
        struct kf_range q = {
            .prefix = inf->prefix, .start_after = start, .limit = LIST_PAGE, .rev = at
        };

        r = kf_store_range(store, &q, &l);
        if (r < 0) {
            kf_kv_list_release(&l);
            break;
        }
        at = l.rev;
        for (size_t i = 0; i < l.n; i++) {
            const char *name = name_of_key(inf, l.items[i].key);
            json_t *obj;

            if (!name ||
                kf_obj_decode(l.items[i].value, l.items[i].value_len, l.items[i].mod_rev, &obj) < 0)
                continue;
            if (owned(inf, obj)) {
                struct kf_kv cur = { 0 };
                bool same =
                    kf_informer_get_raw(inf, name, &cur) == 0 && cur.mod_rev == l.items[i].mod_rev;

                kf_kv_release(&cur);
                kf_smap_put(&seen, name, (void *)1);
                if (!same) {
                    apply(inf, name, obj, l.items[i].value, l.items[i].value_len,
                          l.items[i].create_rev, l.items[i].mod_rev);
                    notify(inf, obj, false);
                }
            }
            json_decref(obj);
        }
        free(start);
        start = l.n ? kf_xstrdup(l.items[l.n - 1].key) : NULL;
        if (!l.more) {
            kf_kv_list_release(&l);
            break;
        }
        kf_kv_list_release(&l);
    }
    free(start);
    if (r == 0) {
        n = kf_informer_names(inf, &names);
        for (size_t i = 0; i < n; i++) {
            json_t *obj;

            if (kf_smap_contains(&seen, names[i]))
                continue;
            if (kf_informer_get(inf, names[i], &obj) == 0) {
                apply(inf, names[i], NULL, NULL, 0, 0, 0);
                notify(inf, obj, true);
                json_decref(obj);
            }
        }
        kf_ctrl_names_free(names, n);
        pthread_rwlock_wrlock(&inf->lock);
        inf->rev = at;
        pthread_rwlock_unlock(&inf->lock);
    }
    kf_smap_release(&seen);
    return r;
}

static void set_synced(struct kf_informer *inf, int error)
{
    pthread_mutex_lock(&inf->sync_lock);
    inf->synced = true;
    inf->sync_error = error;
    pthread_cond_broadcast(&inf->sync_cond);
    pthread_mutex_unlock(&inf->sync_lock);
}

static bool stopping(struct kf_informer *inf)
{
    return __atomic_load_n(&inf->stop, __ATOMIC_ACQUIRE);
}

static void *informer_main(void *arg)
{
    struct kf_informer *inf = arg;
    struct kf_store *store = kf_ctrl_manager_store(inf->m);
    bool first = true;

    while (!stopping(inf)) {
        struct kf_watch *w = NULL;
        int r = relist(inf);

        if (r == 0)
            r = kf_watch_open(store, inf->prefix, kf_informer_rev(inf), NULL, NULL, &w);
        if (first) {
            set_synced(inf, r);
            first = false;
        }
        if (r < 0) {
            kf_log_rl_warn("cannot list or watch %s: %s; retrying", inf->kind->plural,
                           strerror(-r));
            for (int i = 0; i < 5 && !stopping(inf); i++) {
                struct timespec ts = { 0, WAIT_SLICE_MS * 1000000L };

                nanosleep(&ts, NULL);
            }
            continue;
        }
        while (!stopping(inf)) {
            struct kf_event *ev;

            r = kf_watch_next(w, &ev);
            if (r == 1) {
                on_event(inf, ev);
                /* The events of one transaction share its revision: the
                 * cache reflects revision N only once all of them are in,
                 * which is sure when a newer one arrives or the watch is
                 * caught up (below). */
                pthread_rwlock_wrlock(&inf->lock);
                inf->rev = KF_MAX(inf->rev, ev->kv.mod_rev - 1);
                pthread_rwlock_unlock(&inf->lock);
                kf_event_unref(ev);
                continue;
            }
            if (r < 0) {
                if (r == -KF_ECOMPACTED)
                    kf_log_info("watch of %s fell behind compaction; listing again",
                                inf->kind->plural);
                break;
            }
            /* caught up: the cache reflects the store up to the watch's
             * progress, even if the newest writes were to other kinds */
            pthread_rwlock_wrlock(&inf->lock);
            inf->rev = KF_MAX(inf->rev, kf_watch_progress(w));
            pthread_rwlock_unlock(&inf->lock);
            kf_watch_wait(w, WAIT_SLICE_MS);
        }
        kf_watch_close(w);
        if (r == -EPIPE)
            break;
    }
    if (first)
        set_synced(inf, -ECANCELED);
    return NULL;
}

int kf_informer_start(struct kf_informer *inf)
{
    inf->running = true;
    if (pthread_create(&inf->thread, NULL, informer_main, inf) != 0) {
        inf->running = false;
        return -errno;
    }
    return 0;
}

int kf_informer_wait_synced(struct kf_informer *inf)
{
    int r;

    pthread_mutex_lock(&inf->sync_lock);
    while (!inf->synced)
        pthread_cond_wait(&inf->sync_cond, &inf->sync_lock);
    r = inf->sync_error;
    pthread_mutex_unlock(&inf->sync_lock);
    return r;
}

void kf_informer_stop(struct kf_informer *inf)
{
    if (!inf->running)
        return;
    __atomic_store_n(&inf->stop, true, __ATOMIC_RELEASE);
    pthread_join(inf->thread, NULL);
    inf->running = false;
}

int kf_informer_get_raw(struct kf_informer *inf, const char *name, struct kf_kv *ret)
{
    struct cached *c;
    int r = -KF_ENOTFOUND;

    pthread_rwlock_rdlock(&inf->lock);
    c = kf_smap_get(&inf->objs, name);
    if (c) {
        ret->key = kf_xasprintf("%s%s", inf->prefix, name);
        ret->value = kf_xmemdup(c->value, c->len + 1);
        ret->value_len = c->len;
        ret->create_rev = c->create_rev;
        ret->mod_rev = c->mod_rev;
        r = 0;
    }
    pthread_rwlock_unlock(&inf->lock);
    return r;
}

int kf_informer_get(struct kf_informer *inf, const char *name, json_t **ret)
{
    struct kf_kv kv = { 0 };
    int r = kf_informer_get_raw(inf, name, &kv);

    if (r == 0)
        r = kf_obj_decode(kv.value, kv.value_len, kv.mod_rev, ret);
    kf_kv_release(&kv);
    return r;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t set_names(const struct kf_smap *set, char ***ret_names)
{
    size_t n = kf_smap_count(set), i = 0, it = 0;
    char **names = kf_xcalloc(n + 1, sizeof(*names));
    const char *key;

    while (kf_smap_next(set, &it, &key, NULL))
        names[i++] = kf_xstrdup(key);
    qsort(names, i, sizeof(*names), name_cmp);
    *ret_names = names;
    return i;
}

size_t kf_informer_names(struct kf_informer *inf, char ***ret_names)
{
    size_t n;

    pthread_rwlock_rdlock(&inf->lock);
    n = set_names(&inf->objs, ret_names);
    pthread_rwlock_unlock(&inf->lock);
    return n;
}

size_t kf_informer_index_names(struct kf_informer *inf, const char *index, const char *value,
                               char ***ret_names)
{
    static const struct kf_smap empty = KF_SMAP_INIT;
    size_t n = 0;

    pthread_rwlock_rdlock(&inf->lock);
    for (size_t i = 0; i < inf->nindexes; i++) {
        if (strcmp(inf->indexes[i].name, index) == 0) {
            const struct kf_smap *set = kf_smap_get(&inf->indexes[i].by_value, value);

            n = set_names(set ? set : &empty, ret_names);
            pthread_rwlock_unlock(&inf->lock);
            return n;
        }
    }
    pthread_rwlock_unlock(&inf->lock);
    kf_abort("informer of %s has no index \"%s\"", inf->kind->plural, index);
}

size_t kf_informer_count(struct kf_informer *inf)
{
    size_t n;

    pthread_rwlock_rdlock(&inf->lock);
    n = kf_smap_count(&inf->objs);
    pthread_rwlock_unlock(&inf->lock);
    return n;
}

size_t kf_informer_bytes(struct kf_informer *inf)
{
    size_t n;

    pthread_rwlock_rdlock(&inf->lock);
    n = inf->bytes;
    pthread_rwlock_unlock(&inf->lock);
    return n;
}

int64_t kf_informer_rev(struct kf_informer *inf)
{
    int64_t rev;

    pthread_rwlock_rdlock(&inf->lock);
    rev = inf->rev;
    pthread_rwlock_unlock(&inf->lock);
    return rev;
}

void kf_ctrl_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
