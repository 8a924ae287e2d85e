/* ctrlrt-informer.c: one kind's cache of stored objects, fed by a list and
 * then the store's watch, with indexes and event handlers (contract in
 * kfleet/ctrlrt.h).
 *
 * The cache holds each object's stored bytes and the index values computed
 * from it, under a read-write lock. Each change is parsed once, on the
 * informer's thread, to compute scope and index values and to hand the
 * parsed object to the handlers (called without the lock, so a handler may
 * query any informer).
 *
 * Memory: the cache was the largest thing kfleetd held per guest cluster
 * (a GuestCluster and its ~10 ControlPlaneMembers cost ~10 KB kept as
 * JSON), so the bytes are kept deflated (zlib, raw deflate) against a
 * preset dictionary: the bytes of the kind's most recent objects, which
 * share nearly every key and most values with the next ones. In
 * bench/memory that makes the members' cache 3.7x smaller and the
 * clusters' 8x, bookkeeping included (docs/internals/memory.md). A
 * dictionary is immutable and shared by the objects deflated against it
 * (counted references); a new one is taken from the latest objects every
 * DICT_EVERY objects, so it follows what the kind's objects look like now
 * and old ones go when the objects that use them change. Reads inflate
 * under the read lock (a few microseconds for an object of a few KB,
 * small next to parsing it); objects under MIN_DEFLATE bytes, or that
 * would not shrink, stay as they are.
 *
 * Projection: a kind's informer may keep, instead of the stored bytes, the
 * encoding of what a projection function (given by the code that knows the
 * kind: this file knows no kind's fields) returns for the object, so that
 * fields no reader uses cost neither memory nor parsing. Index functions,
 * the scope and handlers are given the whole decoded object as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <zlib.h>

#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/smap.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "ctrlrt/ctrlrt-internal.h"

KF_LOG_MODULE(informer);

#define LIST_PAGE     1000
#define MAX_INDEXES   8 /* bits of struct cached's `many` */
#define WAIT_SLICE_MS 200

/* Compression: objects smaller than this stay plain; a new dictionary every
 * DICT_EVERY deflated objects, made of the latest DICT_OBJECTS objects'
 * bytes (at most DICT_MAX: deflate's window is 32 KiB, dictionary and
 * object together). */
#define MIN_DEFLATE  128
#define DICT_EVERY   1024
#define DICT_OBJECTS 2
#define DICT_MAX     (8 * 1024)

/* A preset dictionary, immutable once made. refs (the cached objects
 * deflated against it, and the informer while it is the current one) change
 * only on the informer's thread, and a dictionary is freed only there: when
 * its last object left the map under the write lock, so no reader (who
 * inflates under the read lock) can still be using it. */
struct dict {
    size_t refs;
    size_t len;
    unsigned char bytes[];
};

/* An object's values for one index. Most indexes give an object one value
 * (a member's host, its cluster): it is kept in place, and only two or
 * more take an array (an array for each value of each member was 32 bytes
 * of heap each, about 0.6 KiB a guest cluster). */
union ivals {
    char *one;   /* the value, or NULL for none (bit i of `many` clear) */
    char **many; /* a NULL-terminated array (bit i of `many` set) */
};

struct cached {
    /* the object's name: also the key in objs and in the name set of each
     * of its index values (those maps borrow it); an update moves it to
     * the object's new entry, so it lives as long as the object */
    char *name;
    unsigned char *value; /* deflated against dict, or plain (dict NULL) */
    uint32_t len;         /* bytes at value */
    uint32_t raw_len;     /* the stored bytes' length */
    struct dict *dict;
    int64_t create_rev;
    int64_t mod_rev;
    uint8_t many; /* bit i: values[i] is an array */
    /* index values per index (nindexes); the strings are the index's own
     * (struct vset's value), not copies */
    union ivals values[];
};

/* The objects that have one index value: their names (borrowed from their
 * entries), and the value, which by_value borrows as its key and the
 * entries' value arrays point to. Freed when the last object leaves. */
struct vset {
    char *value;
    struct kf_smap names; /* name -> (void *)1 */
};

struct index {
    char *name;
    kf_index_fn fn;
    struct kf_smap by_value; /* value -> struct vset * */
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
    kf_informer_project_fn project; /* NULL: keep the stored bytes */
    int64_t rev;
    size_t bytes; /* kf_informer_bytes: what objs holds, dictionaries aside */
    /* The informer's thread's own: the dictionary new objects are deflated
     * against, and the latest objects, from which the next one is made. */
    struct dict *dict;
    size_t dict_bytes; /* every live dictionary's; atomic (read by /metrics) */
    size_t dict_uses;
    struct kf_strbuf recent[DICT_OBJECTS];
    size_t recent_next;
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
    kf_smap_init_borrowed(&inf->objs);
    pthread_rwlock_init(&inf->lock, NULL);
    pthread_mutex_init(&inf->sync_lock, NULL);
    pthread_cond_init(&inf->sync_cond, NULL);
    return inf;
}

const struct kf_kind *kf_informer_kind(struct kf_informer *inf)
{
    return inf->kind;
}

/* c's values for index i: how many, and where (*ret: the array, or the one
 * value's slot, which index_add rewrites to the index's own string). */
static size_t ivals_get(struct cached *c, size_t i, char ***ret)
{
    size_t n = 0;

    if (c->many & (1u << i)) {
        while (c->values[i].many[n])
            n++;
        *ret = c->values[i].many;
        return n;
    }
    *ret = &c->values[i].one;
    return c->values[i].one ? 1 : 0;
}

static void vset_free(struct vset *vs)
{
    kf_smap_release(&vs->names);
    free(vs->value);
    free(vs);
}

/* Takes name out of the sets of values (the strings may be the sets' own
 * values: they are not read after their set is freed). */
static void index_remove(struct index *ix, char **values, size_t n, const char *name)
{
    for (char **v = values; v < values + n; v++) {
        struct vset *vs = kf_smap_get(&ix->by_value, *v);

        if (!vs)
            continue;
        kf_smap_remove(&vs->names, name);
        if (kf_smap_count(&vs->names) == 0) {
            kf_smap_remove(&ix->by_value, vs->value);
            vset_free(vs);
        }
    }
}

/* Puts name (borrowed: the entry's) in the sets of values, which are new
 * strings: each becomes its set's value, or is freed for the set's, and
 * values[] points to the set's value after. */
static void index_add(struct index *ix, char **values, size_t n, const char *name)
{
    for (char **v = values; v < values + n; v++) {
        struct vset *vs = kf_smap_get(&ix->by_value, *v);

        if (!vs) {
            vs = kf_xcalloc(1, sizeof(*vs));
            vs->value = *v;
            kf_smap_init_borrowed(&vs->names);
            kf_smap_put(&ix->by_value, vs->value, vs);
        } else {
            free(*v);
        }
        *v = vs->value;
        kf_smap_put(&vs->names, name, (void *)1);
    }
}

/* What one cached object named name costs, roughly as malloc sees it: the
 * entry, its bytes, its name (once: the maps borrow it) and a slot in
 * objs, and per index value a pointer and a slot in the value's name set.
 * The values themselves are the index's, one per distinct value, and the
 * maps' spare slots stay as many as the most objects held: neither is
 * counted. */
static size_t cached_size(struct cached *c, const char *name, size_t nindexes)
{
    size_t n = sizeof(*c) + nindexes * sizeof(c->values[0]) + c->len + strlen(name) + 1 +
               sizeof(struct kf_smap_slot);

    for (size_t i = 0; i < nindexes; i++) {
        char **v;
        size_t k = ivals_get(c, i, &v);

        n += k * sizeof(struct kf_smap_slot);
        if (c->many & (1u << i))
            n += (k + 1) * sizeof(char *);
    }
    return n;
}

/* Informer's thread (or kf_informer_free) only. */
static void dict_unref(struct kf_informer *inf, struct dict *d)
{
    if (d && --d->refs == 0) {
        __atomic_sub_fetch(&inf->dict_bytes, sizeof(*d) + d->len, __ATOMIC_RELAXED);
        free(d);
    }
}

/* c must be out of the map already (informer's thread). */
static void cached_free(struct kf_informer *inf, struct cached *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < inf->nindexes; i++)
        if (c->many & (1u << i))
            free(c->values[i].many); /* the strings are the index's */
    dict_unref(inf, c->dict);
    free(c->value);
    free(c->name);
    free(c);
}

void kf_informer_free(struct kf_informer *inf)
{
    size_t it = 0;
    void *v;

    if (!inf)
        return;
    while (kf_smap_next(&inf->objs, &it, NULL, &v))
        cached_free(inf, v);
    kf_smap_release(&inf->objs);
    dict_unref(inf, inf->dict);
    for (size_t i = 0; i < DICT_OBJECTS; i++)
        kf_strbuf_release(&inf->recent[i]);
    for (size_t i = 0; i < inf->nindexes; i++) {
        size_t jt = 0;

        while (kf_smap_next(&inf->indexes[i].by_value, &jt, NULL, &v))
            vset_free(v);
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
    kf_smap_init_borrowed(&inf->indexes[inf->nindexes].by_value);
    inf->nindexes++;
    return 0;
}

int kf_informer_set_projection(struct kf_informer *inf, kf_informer_project_fn fn)
{
    if (inf->running)
        return -EBUSY;
    if (inf->project && inf->project != fn)
        return -EEXIST;
    inf->project = fn;
    return 0;
}

void kf_index_member_host(const json_t *obj, void (*add)(const char *value, void *ctx), void *ctx)
{
    const char *host = kf_json_str(obj, "spec.host", NULL);

    if (host)
        add(host, ctx);
}

void kf_informer_map_host_members(struct kf_informer *members, const char *host, struct kf_ctrl *c,
                                  kf_ctrl_map_fn map)
{
    char **names = NULL;
    size_t n = kf_informer_index_names(members, KF_INDEX_MEMBER_HOST, host, &names);

    for (size_t i = 0; i < n; i++) {
        json_t *m = NULL;

        if (kf_informer_get(members, names[i], &m) == 0)
            map(c, m, false);
        json_decref(m);
    }
    kf_ctrl_names_free(names, n);
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

/* Remembers bytes among the latest objects, and every DICT_EVERY objects
 * makes the dictionary from them (informer's thread). */
static void dict_note(struct kf_informer *inf, const char *bytes, size_t len)
{
    struct kf_strbuf *r = &inf->recent[inf->recent_next++ % DICT_OBJECTS];
    size_t take[DICT_OBJECTS], left = DICT_MAX, total = 0;
    struct dict *d;

    kf_strbuf_reset(r);
    kf_strbuf_add(r, bytes, KF_MIN(len, (size_t)DICT_MAX));
    if (inf->dict && inf->dict_uses < DICT_EVERY)
        return;
    /* recent[(recent_next + i) % DICT_OBJECTS] is the i-th oldest. When
     * they do not all fit, the newest objects' bytes are kept (the end of
     * each: deflate finds the nearest bytes cheapest) ... */
    for (size_t i = DICT_OBJECTS; i-- > 0;) {
        const struct kf_strbuf *b = &inf->recent[(inf->recent_next + i) % DICT_OBJECTS];

        take[i] = KF_MIN(b->len, left);
        left -= take[i];
        total += take[i];
    }
    d = kf_xmalloc(sizeof(*d) + total);
    d->refs = 1;
    d->len = 0;
    /* ... and laid out oldest first, so the newest are nearest */
    for (size_t i = 0; i < DICT_OBJECTS; i++) {
        const struct kf_strbuf *b = &inf->recent[(inf->recent_next + i) % DICT_OBJECTS];

        if (take[i])
            memcpy(d->bytes + d->len, b->buf + (b->len - take[i]), take[i]);
        d->len += take[i];
    }
    __atomic_add_fetch(&inf->dict_bytes, sizeof(*d) + d->len, __ATOMIC_RELAXED);
    dict_unref(inf, inf->dict);
    inf->dict = d;
    inf->dict_uses = 0;
}

/* zlib allocates through kfleet's wrappers: out of memory aborts, as
 * everywhere else, instead of a zlib error for every caller to handle. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return kf_xmalloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    free(p);
}

/* Sets c's value to bytes, deflated against the current dictionary when
 * that makes them smaller (informer's thread). */
static void cached_set_value(struct kf_informer *inf, struct cached *c, const char *bytes,
                             size_t len)
{
    z_stream zs = { 0 };
    unsigned char *out = NULL;
    uLong bound;
    bool ok = false;

    kf_assert(len < UINT32_MAX); /* KF_STORE_MAX_VALUE is far below */
    c->raw_len = (uint32_t)len;
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    if (len >= MIN_DEFLATE && inf->dict &&
        deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK) {
        bound = deflateBound(&zs, (uLong)len);
        out = kf_xmalloc(bound);
        zs.next_in = (Bytef *)bytes;
        zs.avail_in = (uInt)len;
        zs.next_out = out;
        zs.avail_out = (uInt)bound;
        ok = deflateSetDictionary(&zs, inf->dict->bytes, (uInt)inf->dict->len) == Z_OK &&
             deflate(&zs, Z_FINISH) == Z_STREAM_END && zs.total_out < len;
        deflateEnd(&zs);
    }
    if (ok) {
        c->value = kf_xrealloc(out, zs.total_out);
        c->len = (uint32_t)zs.total_out;
        c->dict = inf->dict;
        c->dict->refs++;
        inf->dict_uses++;
    } else {
        free(out);
        c->value = kf_xmemdup(bytes, len);
        c->len = (uint32_t)len;
        c->dict = NULL;
    }
    dict_note(inf, bytes, len);
}

/* The stored bytes of c, NUL-terminated, into a new buffer (any thread,
 * with inf->lock held, which keeps c and its dictionary alive). -EIO if
 * they do not inflate (cannot happen unless memory is corrupt). */
static int cached_bytes(const struct cached *c, char **ret)
{
    char *out = kf_xmalloc((size_t)c->raw_len + 1);
    z_stream zs = { .zalloc = z_alloc, .zfree = z_free };
    int zr;

    if (!c->dict) {
        memcpy(out, c->value, c->raw_len);
        out[c->raw_len] = '\0';
        *ret = out;
        return 0;
    }
    if (inflateInit2(&zs, -15) != Z_OK) { /* a zlib of another version */
        free(out);
        return -EIO;
    }
    zs.next_in = c->value;
    zs.avail_in = c->len;
    zs.next_out = (Bytef *)out;
    zs.avail_out = c->raw_len;
    zr = inflateSetDictionary(&zs, c->dict->bytes, (uInt)c->dict->len);
    if (zr == Z_OK)
        zr = inflate(&zs, Z_FINISH);
    inflateEnd(&zs);
    if (zr != Z_STREAM_END || zs.total_out != c->raw_len) {
        free(out);
        return -EIO;
    }
    out[c->raw_len] = '\0';
    *ret = out;
    return 0;
}

/* Applies one object state (obj NULL: deleted). Returns the previous cached
 * state's existence. Takes ownership of nothing; copies bytes. */
static bool apply(struct kf_informer *inf, const char *name, const json_t *obj, const char *bytes,
                  size_t len, int64_t create_rev, int64_t mod_rev)
{
    struct cached *old, *c = NULL;

    if (obj) {
        json_t *p = inf->project ? inf->project(obj) : NULL;

        c = kf_xcalloc(1, sizeof(*c) + inf->nindexes * sizeof(c->values[0]));
        if (p) { /* what the kind's readers use, encoded */
            size_t plen;
            char *pb = kf_json_dump(p, &plen);

            cached_set_value(inf, c, pb, plen);
            free(pb);
            json_decref(p);
        } else {
            cached_set_value(inf, c, bytes, len);
        }
        c->create_rev = create_rev;
        c->mod_rev = mod_rev;
        for (size_t i = 0; i < inf->nindexes; i++) {
            struct collect col = { 0 };

            inf->indexes[i].fn(obj, collect_value, &col);
            if (col.n == 1) {
                c->values[i].one = col.items[0];
                free(col.items);
            } else if (col.n > 1) {
                /* exactly as long as needed: kept as long as the object */
                c->values[i].many = kf_xrealloc(col.items, (col.n + 1) * sizeof(char *));
                c->many |= (uint8_t)(1u << i);
            }
        }
    }
    pthread_rwlock_wrlock(&inf->lock);
    old = kf_smap_get(&inf->objs, name);
    if (c) {
        /* the name moves to the new entry (the maps hold its pointer) */
        c->name = old ? old->name : kf_xstrdup(name);
        if (old)
            old->name = NULL;
        kf_smap_put(&inf->objs, c->name, c);
    } else if (old) {
        kf_smap_remove(&inf->objs, name);
    }
    if (old)
        inf->bytes -= cached_size(old, name, inf->nindexes);
    for (size_t i = 0; i < inf->nindexes; i++) {
        char **v;
        size_t n;

        if (old) {
            n = ivals_get(old, i, &v);
            index_remove(&inf->indexes[i], v, n, name);
        }
        if (c) {
            n = ivals_get(c, i, &v);
            index_add(&inf->indexes[i], v, n, c->name);
        }
    }
    if (c)
        inf->bytes += cached_size(c, name, inf->nindexes);
    pthread_rwlock_unlock(&inf->lock);
    cached_free(inf, old);
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

/* The mod_rev of name in the cache, 0 if absent. */
int64_t kf_informer_mod_rev(struct kf_informer *inf, const char *name)
{
    struct cached *c;
    int64_t rev = 0;

    pthread_rwlock_rdlock(&inf->lock);
    c = kf_smap_get(&inf->objs, name);
    if (c)
        rev = c->mod_rev;
    pthread_rwlock_unlock(&inf->lock);
    return rev;
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
                bool same = kf_informer_mod_rev(inf, name) == l.items[i].mod_rev;

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
    char *value = NULL;
    int r = -KF_ENOTFOUND;

    pthread_rwlock_rdlock(&inf->lock);
    c = kf_smap_get(&inf->objs, name);
    if (c)
        r = cached_bytes(c, &value);
    if (r == 0) {
        ret->key = kf_xasprintf("%s%s", inf->prefix, name);
        ret->value = value;
        ret->value_len = c->raw_len;
        ret->create_rev = c->create_rev;
        ret->mod_rev = c->mod_rev;
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

json_t *kf_informer_get_obj(struct kf_informer *inf, const char *name)
{
    json_t *o = NULL;

    if (!name || kf_informer_get(inf, name, &o) < 0)
        return NULL;
    return o;
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
            const struct vset *vs = kf_smap_get(&inf->indexes[i].by_value, value);

            n = set_names(vs ? &vs->names : &empty, ret_names);
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
    return n + __atomic_load_n(&inf->dict_bytes, __ATOMIC_RELAXED);
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
