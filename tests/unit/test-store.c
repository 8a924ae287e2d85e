/* test-store.c: the store conformance suite, run against every backend.
 *
 * Each backend is one cmocka group over the same tests: "memory:",
 * "sqlite:<tmpdir>/N/kf.db" (a new database per test) and, when the
 * environment variable KF_TEST_ETCD holds etcd client URLs
 * ("http://127.0.0.1:2379"), "etcd:$KF_TEST_ETCD"; without it, the suite
 * starts an etcd member of its own (etcd-harness.h) when /usr/bin/etcd is
 * installed, and skips etcd with a message when it is not. A new backend is one line
 * in `backends` below. Tests work under a prefix of their own and with
 * revisions relative to what they observe, so a shared store (etcd) works as
 * well as an empty one; the few checks that need an empty store ask
 * `fresh`.
 *
 * Most tests drive the store through do_txn(), which applies the same ops to
 * a simple model and records the events the store must report; reads, old
 * revisions, history and watches are then compared with the model.
 *
 * After the groups, tests that belong to one backend: SQLite files (bad,
 * foreign, locked, corrupt), compaction on disk, sync=full, and URLs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "etcd-harness.h"
#include "kfleet/error.h"
#include "kfleet/file.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "store/store-internal.h"

/* --- backends ------------------------------------------------------------- */

static char tmpdir[] = "/tmp/kf-test-store-XXXXXX";
static unsigned url_counter;

struct backend {
    const char *name;
    char *(*new_url)(void); /* a URL for the next test's store */
    bool fresh;             /* each new URL is an empty store */
    bool persistent;        /* reopening a URL finds its data */
};

static char *memory_url(void)
{
    return kf_xstrdup("memory:");
}

static char *sqlite_url(void)
{
    return kf_xasprintf("sqlite:%s/%u/kf.db", tmpdir, ++url_counter);
}

static char *etcd_url(void)
{
    return kf_xasprintf("etcd:%s", getenv("KF_TEST_ETCD"));
}

static const struct backend backends[] = {
    { "memory", memory_url, true, false },
    { "sqlite", sqlite_url, true, true },
    { "etcd", etcd_url, false, true }, /* only with KF_TEST_ETCD */
};

static const struct backend *cur;

/* --- per-test context and model -------------------------------------------- */

struct mkey {
    char *key;
    char *val;
    size_t len;
    int64_t create, mod;
    bool live;
};

struct exp_event {
    enum kf_event_type type;
    char *key;
    char *val;
    size_t len;
    char *prev; /* NULL: created */
    size_t prev_len;
    int64_t create, mod, prev_mod;
};

struct snap {
    int64_t rev;
    struct mkey *keys; /* the live keys, sorted */
    size_t n;
};

struct ctx {
    struct kf_store *s;
    char *url;
    char prefix[64];
    int64_t start_rev;
    /* the model: every key ever written under prefix, sorted */
    struct mkey *keys;
    size_t nkeys, akeys;
    struct exp_event *evs;
    size_t nevs, aevs;
    struct snap *snaps;
    size_t nsnaps, asnaps;
    char names[16][KF_STORE_MAX_KEY + 64];
    unsigned name_i;
};

static void open_store(struct ctx *c)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r = kf_store_open(c->url, &c->s, &err);

    if (r < 0)
        fail_msg("cannot open \"%s\": %s", c->url, err.buf);
    kf_strbuf_release(&err);
}

static int setup(void **state)
{
    struct ctx *c = kf_xcalloc(1, sizeof(*c));
    static unsigned seq;

    c->url = cur->new_url();
    snprintf(c->prefix, sizeof(c->prefix), "/t%u-%d-%u/", ++seq, (int)getpid(),
             (unsigned)kf_mono_ns() % 100000);
    open_store(c);
    c->start_rev = kf_store_rev(c->s);
    *state = c;
    return 0;
}

static void free_keys(struct mkey *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(k[i].key);
        free(k[i].val);
    }
    free(k);
}

static int teardown(void **state)
{
    struct ctx *c = *state;

    kf_store_close(c->s);
    free_keys(c->keys, c->nkeys);
    for (size_t i = 0; i < c->nevs; i++) {
        free(c->evs[i].key);
        free(c->evs[i].val);
        free(c->evs[i].prev);
    }
    free(c->evs);
    for (size_t i = 0; i < c->nsnaps; i++)
        free_keys(c->snaps[i].keys, c->snaps[i].n);
    free(c->snaps);
    free(c->url);
    free(c);
    kf_watch_set_default_window(0, 0);
    return 0;
}

/* prefix + name, in a small ring of buffers (valid for 16 calls). */
static const char *K(struct ctx *c, const char *name)
{
    char *b = c->names[c->name_i++ % KF_ARRAY_SIZE(c->names)];

    snprintf(b, sizeof(c->names[0]), "%s%s", c->prefix, name);
    return b;
}

static struct mkey *model_find(struct ctx *c, const char *key, bool add)
{
    size_t i;

    for (i = 0; i < c->nkeys; i++) {
        int cmp = strcmp(c->keys[i].key, key);

        if (cmp == 0)
            return &c->keys[i];
        if (cmp > 0)
            break;
    }
    if (!add)
        return NULL;
    KF_GROW(c->keys, c->akeys, c->nkeys);
    memmove(&c->keys[i + 1], &c->keys[i], (c->nkeys - i) * sizeof(*c->keys));
    c->nkeys++;
    memset(&c->keys[i], 0, sizeof(c->keys[i]));
    c->keys[i].key = kf_xstrdup(key);
    return &c->keys[i];
}

static void take_snapshot(struct ctx *c, int64_t rev)
{
    struct snap *sn;

    KF_GROW(c->snaps, c->asnaps, c->nsnaps);
    sn = &c->snaps[c->nsnaps++];
    sn->rev = rev;
    sn->n = 0;
    sn->keys = kf_xcalloc(c->nkeys + 1, sizeof(*sn->keys));
    for (size_t i = 0; i < c->nkeys; i++) {
        if (!c->keys[i].live)
            continue;
        sn->keys[sn->n] = c->keys[i];
        sn->keys[sn->n].key = kf_xstrdup(c->keys[i].key);
        sn->keys[sn->n].val = kf_xmemdup(c->keys[i].val, c->keys[i].len);
        sn->n++;
    }
}

/* What the model says the store holds at rev (the last snapshot <= rev). */
static const struct snap *snapshot_at(struct ctx *c, int64_t rev)
{
    const struct snap *best = NULL;

    for (size_t i = 0; i < c->nsnaps; i++)
        if (c->snaps[i].rev <= rev)
            best = &c->snaps[i];
    return best;
}

static char *dup_or_null(const char *v, size_t len)
{
    return v ? kf_xmemdup(v, len) : NULL;
}

/* Runs a transaction on the store and, when it succeeds, on the model;
 * returns the store's result. ret_rev may be NULL. */
static int do_txn(struct ctx *c, const struct kf_op *ops, size_t n, int64_t *ret_rev,
                  size_t *ret_failed)
{
    int64_t rev = -1;
    int r = kf_store_txn(c->s, ops, n, &rev, ret_failed);

    if (r < 0)
        return r;
    assert_true(rev > 0);
    for (size_t i = 0; i < n; i++) {
        struct mkey *m = model_find(c, ops[i].key, true);
        struct exp_event *e;

        KF_GROW(c->evs, c->aevs, c->nevs);
        e = &c->evs[c->nevs++];
        memset(e, 0, sizeof(*e));
        e->key = kf_xstrdup(ops[i].key);
        e->mod = rev;
        e->prev_mod = m->live ? m->mod : 0;
        if (ops[i].type == KF_OP_PUT) {
            e->type = KF_EVENT_PUT;
            e->val = kf_xmemdup(ops[i].value, ops[i].value_len);
            e->len = ops[i].value_len;
            e->prev = m->live ? dup_or_null(m->val, m->len) : NULL;
            e->prev_len = m->live ? m->len : 0;
            if (!m->live)
                m->create = rev;
            e->create = m->create;
            free(m->val);
            m->val = kf_xmemdup(ops[i].value, ops[i].value_len);
            m->len = ops[i].value_len;
            m->mod = rev;
            m->live = true;
        } else {
            e->type = KF_EVENT_DELETE;
            e->val = kf_xmemdup(m->val, m->len);
            e->len = m->len;
            e->create = m->create;
            m->live = false;
        }
    }
    take_snapshot(c, rev);
    if (ret_rev)
        *ret_rev = rev;
    return 0;
}

static int64_t put(struct ctx *c, const char *name, const char *value, int64_t expect)
{
    struct kf_op op = { KF_OP_PUT, K(c, name), value, strlen(value), expect };
    int64_t rev;

    assert_int_equal(do_txn(c, &op, 1, &rev, NULL), 0);
    return rev;
}

static int64_t del(struct ctx *c, const char *name, int64_t expect)
{
    struct kf_op op = { .type = KF_OP_DELETE, .key = K(c, name), .expect_mod_rev = expect };
    int64_t rev;

    assert_int_equal(do_txn(c, &op, 1, &rev, NULL), 0);
    return rev;
}

static void assert_kv(const struct kf_kv *kv, const struct mkey *m)
{
    assert_string_equal(kv->key, m->key);
    assert_int_equal(kv->value_len, m->len);
    assert_memory_equal(kv->value, m->val, m->len);
    assert_int_equal(kv->value[kv->value_len], '\0');
    assert_int_equal(kv->create_rev, m->create);
    assert_int_equal(kv->mod_rev, m->mod);
}

static void assert_event(const struct kf_event *ev, const struct exp_event *e)
{
    assert_int_equal(ev->type, e->type);
    assert_string_equal(ev->kv.key, e->key);
    assert_int_equal(ev->kv.mod_rev, e->mod);
    assert_int_equal(ev->kv.create_rev, e->create);
    assert_int_equal(ev->kv.value_len, e->len);
    assert_memory_equal(ev->kv.value, e->val, e->len);
    assert_int_equal(ev->prev_mod_rev, e->prev_mod);
    if (e->type == KF_EVENT_PUT && e->prev) {
        assert_non_null(ev->prev_value);
        assert_int_equal(ev->prev_len, e->prev_len);
        assert_memory_equal(ev->prev_value, e->prev, e->prev_len);
        assert_false(kf_event_created(ev));
    } else if (e->type == KF_EVENT_PUT) {
        assert_null(ev->prev_value);
        assert_true(kf_event_created(ev));
    }
}

/* Range at rev over the test's prefix equals the model at rev; also read in
 * pages of `page` with start_after. */
static void check_range_at(struct ctx *c, int64_t rev, size_t page)
{
    const struct snap *sn = snapshot_at(c, rev ? rev : INT64_MAX);
    struct kf_range q = { .prefix = c->prefix, .rev = rev };
    struct kf_kv_list l = { 0 };
    size_t n = sn ? sn->n : 0, got = 0;
    char *after = NULL;

    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, n);
    assert_false(l.more);
    if (rev)
        assert_int_equal(l.rev, rev);
    for (size_t i = 0; i < n; i++)
        assert_kv(&l.items[i], &sn->keys[i]);
    kf_kv_list_release(&l);
    if (!page)
        return;
    for (;;) {
        q.limit = page;
        q.start_after = after;
        assert_int_equal(kf_store_range(c->s, &q, &l), 0);
        assert_true(l.n <= page);
        for (size_t i = 0; i < l.n; i++)
            assert_kv(&l.items[i], &sn->keys[got + i]);
        got += l.n;
        assert_int_equal(l.more, got < n);
        free(after);
        after = l.n ? kf_xstrdup(l.items[l.n - 1].key) : NULL;
        if (!l.more) {
            kf_kv_list_release(&l);
            break;
        }
        kf_kv_list_release(&l);
    }
    free(after);
    assert_int_equal(got, n);
}

/* The model's events after after_rev. */
static size_t first_event_after(struct ctx *c, int64_t after_rev)
{
    size_t i = 0;

    while (i < c->nevs && c->evs[i].mod <= after_rev)
        i++;
    return i;
}

static bool in_prefix(const char *key, const char *prefix)
{
    return strncmp(key, prefix, strlen(prefix)) == 0;
}

/* Reads the next event, waiting up to about 5 s. NULL if none came. */
static struct kf_event *wnext(struct kf_watch *w)
{
    for (int i = 0; i < 500; i++) {
        struct kf_event *ev = NULL;
        int r = kf_watch_next(w, &ev);

        if (r == 1)
            return ev;
        assert_int_equal(r, 0);
        kf_watch_wait(w, 10);
    }
    return NULL;
}

/* The watcher delivers exactly the model's events after after_rev whose
 * key starts with prefix, in order, then nothing. */
static void check_watch(struct ctx *c, struct kf_watch *w, int64_t after_rev, const char *prefix)
{
    struct kf_event *ev = NULL;

    for (size_t i = first_event_after(c, after_rev); i < c->nevs; i++) {
        if (!in_prefix(c->evs[i].key, prefix))
            continue;
        ev = wnext(w);
        if (!ev)
            fail_msg("watch on \"%s\" after %lld: no event %zu of %zu (%s at %lld)", prefix,
                     (long long)after_rev, i, c->nevs, c->evs[i].key, (long long)c->evs[i].mod);
        if (strcmp(ev->kv.key, c->evs[i].key) != 0 || ev->kv.mod_rev != c->evs[i].mod)
            fail_msg("watch on \"%s\" after %lld: event %zu of %zu is %s at %lld, not %s at %lld",
                     prefix, (long long)after_rev, i, c->nevs, ev->kv.key,
                     (long long)ev->kv.mod_rev, c->evs[i].key, (long long)c->evs[i].mod);
        assert_event(ev, &c->evs[i]);
        kf_event_unref(ev);
    }
    /* skip other tests' events (shared stores); none of ours may follow */
    while (kf_watch_next(w, &ev) == 1) {
        assert_false(in_prefix(ev->kv.key, c->prefix));
        kf_event_unref(ev);
    }
}

/* --- tests: reads and writes ---------------------------------------------- */

static void test_put_get(void **state)
{
    struct ctx *c = *state;
    struct kf_kv kv = { 0 };
    int64_t r1, r2;

    assert_int_equal(kf_store_get(c->s, K(c, "a"), &kv), -KF_ENOTFOUND);
    r1 = put(c, "a", "one", 0);
    assert_true(r1 > c->start_rev);
    assert_int_equal(kf_store_rev(c->s), r1);
    assert_int_equal(kf_store_get(c->s, K(c, "a"), &kv), 0);
    assert_kv(&kv, model_find(c, K(c, "a"), false));
    assert_int_equal(kv.create_rev, r1);
    kf_kv_release(&kv);

    r2 = put(c, "a", "two", r1);
    assert_int_equal(r2, r1 + 1);
    assert_int_equal(kf_store_get(c->s, K(c, "a"), &kv), 0);
    assert_string_equal(kv.value, "two");
    assert_int_equal(kv.create_rev, r1);
    assert_int_equal(kv.mod_rev, r2);
    kf_kv_release(&kv);

    /* an empty value is a value */
    put(c, "empty", "", 0);
    assert_int_equal(kf_store_get(c->s, K(c, "empty"), &kv), 0);
    assert_int_equal(kv.value_len, 0);
    assert_string_equal(kv.value, "");
    kf_kv_release(&kv);
    put(c, "empty", "now set", KF_REV_ANY);
    put(c, "empty", "", KF_REV_ANY);
    check_range_at(c, 0, 0);
}

static void test_cas_create(void **state)
{
    struct ctx *c = *state;
    struct kf_kv kv = { 0 };
    int64_t r1, rev = -7;

    r1 = put(c, "x", "first", 0);
    assert_int_equal(kf_store_put(c->s, K(c, "x"), "second", 6, 0, &rev), -KF_EEXISTS);
    assert_int_equal(rev, -7); /* untouched on failure */
    assert_int_equal(kf_store_rev(c->s), r1);
    assert_int_equal(kf_store_get(c->s, K(c, "x"), &kv), 0);
    assert_string_equal(kv.value, "first");
    kf_kv_release(&kv);
    /* no condition: creates or overwrites */
    put(c, "y", "any", KF_REV_ANY);
    put(c, "y", "any again", KF_REV_ANY);
    /* re-creating a deleted key starts a new life */
    del(c, "x", KF_REV_ANY);
    r1 = put(c, "x", "reborn", 0);
    assert_int_equal(kf_store_get(c->s, K(c, "x"), &kv), 0);
    assert_int_equal(kv.create_rev, r1);
    kf_kv_release(&kv);
    check_range_at(c, 0, 0);
}

static void test_cas_update(void **state)
{
    struct ctx *c = *state;
    int64_t r1, r2, rev = -7;
    struct kf_kv kv = { 0 };

    r1 = put(c, "u", "v1", 0);
    r2 = put(c, "u", "v2", r1);
    /* a stale mod_rev */
    assert_int_equal(kf_store_put(c->s, K(c, "u"), "v3", 2, r1, &rev), -KF_ECONFLICT);
    assert_int_equal(kf_store_put(c->s, K(c, "u"), "v3", 2, r2 + 100, &rev), -KF_ECONFLICT);
    assert_int_equal(rev, -7);
    /* an update of a missing key */
    assert_int_equal(kf_store_put(c->s, K(c, "nope"), "v", 1, r1, &rev), -KF_ENOTFOUND);
    assert_int_equal(kf_store_get(c->s, K(c, "nope"), &kv), -KF_ENOTFOUND);
    assert_int_equal(kf_store_get(c->s, K(c, "u"), &kv), 0);
    assert_string_equal(kv.value, "v2");
    assert_int_equal(kv.mod_rev, r2);
    kf_kv_release(&kv);
    assert_int_equal(kf_store_rev(c->s), r2);
    put(c, "u", "v3", r2);
    check_range_at(c, 0, 0);
}

static void test_cas_delete(void **state)
{
    struct ctx *c = *state;
    int64_t r1, r2, rev = -7;
    struct kf_kv kv = { 0 };

    r1 = put(c, "d", "v1", 0);
    assert_int_equal(kf_store_delete(c->s, K(c, "missing"), KF_REV_ANY, &rev), -KF_ENOTFOUND);
    assert_int_equal(kf_store_delete(c->s, K(c, "missing"), 5, &rev), -KF_ENOTFOUND);
    assert_int_equal(kf_store_delete(c->s, K(c, "d"), r1 + 1, &rev), -KF_ECONFLICT);
    assert_int_equal(kf_store_delete(c->s, K(c, "d"), 0, &rev), -KF_EEXISTS);
    assert_int_equal(rev, -7);
    r2 = del(c, "d", r1);
    assert_int_equal(r2, r1 + 1);
    assert_int_equal(kf_store_get(c->s, K(c, "d"), &kv), -KF_ENOTFOUND);
    assert_int_equal(kf_store_delete(c->s, K(c, "d"), r1, &rev), -KF_ENOTFOUND);
    assert_int_equal(kf_store_delete(c->s, K(c, "d"), KF_REV_ANY, &rev), -KF_ENOTFOUND);
    put(c, "d2", "x", 0);
    del(c, "d2", KF_REV_ANY);
    check_range_at(c, 0, 0);
}

static void test_txn(void **state)
{
    struct ctx *c = *state;
    int64_t r0, r1, rev = -7;
    size_t failed = 99;
    struct kf_kv kv = { 0 };
    char a[128], b[128], d[128], e[128], f[128];

    snprintf(f, sizeof(f), "%sf", c->prefix);
    snprintf(a, sizeof(a), "%sa", c->prefix);
    snprintf(b, sizeof(b), "%sb", c->prefix);
    snprintf(d, sizeof(d), "%sd", c->prefix);
    snprintf(e, sizeof(e), "%se", c->prefix);
    r0 = put(c, "a", "a0", 0);
    put(c, "d", "d0", 0);
    {
        /* third op fails: nothing is applied, its index is reported */
        struct kf_op ops[] = {
            { KF_OP_PUT, a, "a1", 2, r0 },
            { KF_OP_PUT, b, "b1", 2, 0 },
            { KF_OP_PUT, e, "e1", 2, r0 }, /* e does not exist */
            { .type = KF_OP_DELETE, .key = d, .expect_mod_rev = KF_REV_ANY },
        };
        int64_t before = kf_store_rev(c->s);

        assert_int_equal(do_txn(c, ops, 4, &rev, &failed), -KF_ENOTFOUND);
        assert_int_equal(failed, 2);
        assert_int_equal(rev, -7);
        assert_int_equal(kf_store_rev(c->s), before);
        assert_int_equal(kf_store_get(c->s, b, &kv), -KF_ENOTFOUND);
        assert_int_equal(kf_store_get(c->s, a, &kv), 0);
        assert_string_equal(kv.value, "a0");
        kf_kv_release(&kv);
        assert_int_equal(kf_store_get(c->s, d, &kv), 0);
        kf_kv_release(&kv);

        ops[2].expect_mod_rev = 0;
        ops[0].expect_mod_rev = r0 + 1000;
        assert_int_equal(do_txn(c, ops, 4, &rev, &failed), -KF_ECONFLICT);
        assert_int_equal(failed, 0);
        ops[0].expect_mod_rev = r0;
        assert_int_equal(do_txn(c, ops, 4, &r1, &failed), 0);
        assert_int_equal(r1, before + 1);
    }
    /* every op at one revision */
    assert_int_equal(kf_store_get(c->s, a, &kv), 0);
    assert_int_equal(kv.mod_rev, r1);
    kf_kv_release(&kv);
    assert_int_equal(kf_store_get(c->s, b, &kv), 0);
    assert_int_equal(kv.mod_rev, r1);
    assert_int_equal(kv.create_rev, r1);
    kf_kv_release(&kv);
    assert_int_equal(kf_store_get(c->s, d, &kv), -KF_ENOTFOUND);
    {
        /* the same key twice is refused */
        struct kf_op ops[] = {
            { KF_OP_PUT, a, "x", 1, KF_REV_ANY },
            { KF_OP_PUT, f, "y", 1, KF_REV_ANY },
            { .type = KF_OP_DELETE, .key = a, .expect_mod_rev = KF_REV_ANY },
        };

        failed = 99;
        assert_int_equal(do_txn(c, ops, 3, &rev, &failed), -EINVAL);
        assert_int_equal(failed, 2);
        assert_int_equal(kf_store_get(c->s, f, &kv), -KF_ENOTFOUND);
    }
    {
        /* no ops */
        assert_int_equal(kf_store_txn(c->s, NULL, 0, &rev, &failed), -EINVAL);
    }
    check_range_at(c, 0, 0);
    check_range_at(c, r1 - 1, 0);
}

static void test_range(void **state)
{
    struct ctx *c = *state;
    struct kf_kv_list l = { 0 };
    struct kf_range q = { 0 };
    const char *names[] = { "a/1",        "a/2", "a/10", "ab",       "a",       "b/x",
                            "a/\xc3\xa9", "z",   "\xff", "\xff\xff", "\xff\x01" };
    char pfx[128];

    for (size_t i = 0; i < KF_ARRAY_SIZE(names); i++)
        put(c, names[i], names[i], 0);
    check_range_at(c, 0, 1);
    check_range_at(c, 0, 4);

    /* "a/" is a prefix of "a/1" but not of "ab" or "a" */
    snprintf(pfx, sizeof(pfx), "%sa/", c->prefix);
    q.prefix = pfx;
    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.items[0].key, K(c, "a/1"));
    assert_string_equal(l.items[1].key, K(c, "a/10"));
    assert_string_equal(l.items[2].key, K(c, "a/2"));
    assert_string_equal(l.items[3].key, K(c, "a/\xc3\xa9"));
    assert_int_equal(l.rev, kf_store_rev(c->s));
    kf_kv_list_release(&l);

    /* a prefix ending in 0xff bytes */
    snprintf(pfx, sizeof(pfx), "%s\xff", c->prefix);
    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0].key, K(c, "\xff"));
    assert_string_equal(l.items[1].key, K(c, "\xff\x01"));
    assert_string_equal(l.items[2].key, K(c, "\xff\xff"));
    kf_kv_list_release(&l);

    /* limit, and start_after before, inside and past the prefix */
    snprintf(pfx, sizeof(pfx), "%sa", c->prefix);
    q.limit = 2;
    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, 2);
    assert_true(l.more);
    assert_string_equal(l.items[0].key, K(c, "a"));
    assert_string_equal(l.items[1].key, K(c, "a/1"));
    kf_kv_list_release(&l);
    q.start_after = "/";
    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].key, K(c, "a"));
    kf_kv_list_release(&l);
    q.start_after = K(c, "a/2");
    q.limit = 0;
    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].key, K(c, "a/\xc3\xa9"));
    assert_string_equal(l.items[1].key, K(c, "ab"));
    assert_false(l.more);
    kf_kv_list_release(&l);
    q.start_after = K(c, "b");
    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, 0);
    assert_false(l.more);
    kf_kv_list_release(&l);

    /* a limit exactly at the end reports no more */
    q.start_after = NULL;
    q.limit = 6;
    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, 6);
    assert_false(l.more);
    kf_kv_list_release(&l);

    /* nothing under an unused prefix */
    snprintf(pfx, sizeof(pfx), "%sq", c->prefix);
    q.limit = 0;
    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, 0);
    kf_kv_list_release(&l);

    /* no prefix: every key (only checkable on a store of our own) */
    if (cur->fresh) {
        q.prefix = NULL;
        assert_int_equal(kf_store_range(c->s, &q, &l), 0);
        assert_int_equal(l.n, KF_ARRAY_SIZE(names));
        kf_kv_list_release(&l);
        q.prefix = "";
        q.limit = 3;
        assert_int_equal(kf_store_range(c->s, &q, &l), 0);
        assert_int_equal(l.n, 3);
        assert_true(l.more);
        kf_kv_list_release(&l);
    }
    /* a revision in the future */
    q.prefix = c->prefix;
    q.rev = kf_store_rev(c->s) + 10;
    assert_int_equal(kf_store_range(c->s, &q, &l), -EINVAL);
}

/* Deterministic random ops over a few keys; returns the first revision. */
static int64_t random_history(struct ctx *c, unsigned seed, int ntxn)
{
    int64_t first = 0;

    for (int t = 0; t < ntxn; t++) {
        struct kf_op ops[4];
        char keys[4][128], vals[4][64];
        size_t n = 1 + (size_t)(rand_r(&seed) % 4), used = 0;
        int64_t rev;

        for (size_t i = 0; i < n; i++) {
            int k = rand_r(&seed) % 12;
            struct mkey *m;
            bool dup = false;

            snprintf(keys[used], sizeof(keys[used]), "%sk%02d", c->prefix, k);
            for (size_t j = 0; j < used; j++)
                dup |= strcmp(keys[j], keys[used]) == 0;
            if (dup)
                continue;
            m = model_find(c, keys[used], false);
            snprintf(vals[used], sizeof(vals[used]), "v%d.%zu-%u", t, i, rand_r(&seed) % 1000);
            if (m && m->live && rand_r(&seed) % 4 == 0)
                ops[used] = (struct kf_op){ .type = KF_OP_DELETE,
                                            .key = keys[used],
                                            .expect_mod_rev = m->mod };
            else
                ops[used] = (struct kf_op){ KF_OP_PUT, keys[used], vals[used], strlen(vals[used]),
                                            m && m->live ? m->mod : 0 };
            used++;
        }
        assert_int_equal(do_txn(c, ops, used, &rev, NULL), 0);
        if (!first)
            first = rev;
    }
    return first;
}

static void test_range_old_revisions(void **state)
{
    struct ctx *c = *state;
    int64_t first = random_history(c, 42, 120), last = kf_store_rev(c->s);

    check_range_at(c, first - 1, 0);
    for (int64_t rev = first; rev <= last; rev++)
        check_range_at(c, rev, (size_t)(rev % 5));
    check_range_at(c, 0, 3);
}

static void test_history(void **state)
{
    struct ctx *c = *state;
    int64_t first = random_history(c, 7, 60), last = kf_store_rev(c->s);
    struct kf_event_list l = { 0 };
    size_t want = first_event_after(c, first - 1), i;

    /* all of it */
    assert_int_equal(kf_store_history(c->s, first - 1, 0, &l), 0);
    i = want;
    for (size_t k = 0; k < l.n; k++) {
        if (!in_prefix(l.items[k]->kv.key, c->prefix))
            continue;
        assert_true(i < c->nevs);
        assert_event(l.items[k], &c->evs[i++]);
    }
    assert_int_equal(i, c->nevs);
    kf_event_list_release(&l);

    /* in small batches: a limit never splits a transaction */
    for (size_t limit = 1; limit <= 3; limit++) {
        int64_t after = first - 1;

        i = want;
        for (;;) {
            assert_int_equal(kf_store_history(c->s, after, limit, &l), 0);
            if (l.n == 0)
                break;
            for (size_t k = 0; k < l.n; k++) {
                if (k > 0)
                    assert_true(l.items[k]->kv.mod_rev >= l.items[k - 1]->kv.mod_rev);
                if (in_prefix(l.items[k]->kv.key, c->prefix))
                    assert_event(l.items[k], &c->evs[i++]);
            }
            /* the batch ends with a whole transaction */
            assert_true(l.n <= limit ||
                        l.items[l.n - 1]->kv.mod_rev == l.items[limit - 1]->kv.mod_rev);
            after = l.items[l.n - 1]->kv.mod_rev;
            kf_event_list_release(&l);
        }
        assert_int_equal(i, c->nevs);
    }
    /* after the end: nothing; history appends to what ret holds */
    assert_int_equal(kf_store_history(c->s, last, 0, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(kf_store_history(c->s, last - 1, 0, &l), 0);
    assert_int_equal(kf_store_history(c->s, last - 1, 0, &l), 0);
    assert_true(l.n >= 2 && l.n % 2 == 0);
    assert_int_equal(l.items[0]->kv.mod_rev, last);
    assert_int_equal(l.items[l.n / 2]->kv.mod_rev, last);
    kf_event_list_release(&l);
}

static void test_compaction(void **state)
{
    struct ctx *c = *state;
    struct kf_kv_list l = { 0 };
    struct kf_event_list h = { 0 };
    struct kf_range q = { .prefix = c->prefix };
    struct kf_store_status st;
    struct kf_watch *w = NULL;
    struct kf_kv kv = { 0 };
    int64_t r_mid, r_end, ra;

    ra = put(c, "a", "a1", 0);
    put(c, "b", "b1", 0);
    put(c, "c", "c1", 0);
    put(c, "gone", "g1", 0);
    ra = put(c, "a", "a2", ra);
    del(c, "b", KF_REV_ANY);
    del(c, "gone", KF_REV_ANY);
    r_mid = put(c, "keep", "k1", 0);
    put(c, "a", "a3", ra);
    put(c, "d", "d1", 0);
    del(c, "c", KF_REV_ANY);
    put(c, "b", "b2", 0);
    r_end = kf_store_rev(c->s);

    assert_int_equal(kf_store_compact(c->s, r_mid), 0);
    assert_int_equal(kf_store_status(c->s, &st), 0);
    assert_int_equal(st.compacted_rev, r_mid);
    assert_int_equal(st.rev, r_end);

    /* below the compacted revision: gone */
    q.rev = r_mid - 1;
    assert_int_equal(kf_store_range(c->s, &q, &l), -KF_ECOMPACTED);
    assert_int_equal(kf_store_history(c->s, r_mid - 1, 0, &h), -KF_ECOMPACTED);
    assert_int_equal(kf_watch_open(c->s, c->prefix, r_mid - 1, NULL, NULL, &w), -KF_ECOMPACTED);
    /* at and above it: as before */
    for (int64_t rev = r_mid; rev <= r_end; rev++)
        check_range_at(c, rev, 2);
    check_range_at(c, 0, 0);
    assert_int_equal(kf_store_history(c->s, r_mid, 0, &h), 0);
    {
        size_t i = first_event_after(c, r_mid);

        for (size_t k = 0; k < h.n; k++)
            if (in_prefix(h.items[k]->kv.key, c->prefix))
                assert_event(h.items[k], &c->evs[i++]);
        assert_int_equal(i, c->nevs);
    }
    kf_event_list_release(&h);
    assert_int_equal(kf_watch_open(c->s, c->prefix, r_mid, NULL, NULL, &w), 0);
    check_watch(c, w, r_mid, c->prefix);
    kf_watch_close(w);
    /* live keys untouched */
    assert_int_equal(kf_store_get(c->s, K(c, "keep"), &kv), 0);
    assert_int_equal(kv.mod_rev, r_mid);
    kf_kv_release(&kv);

    /* compacting again at or below: refused; in the future: refused */
    assert_int_equal(kf_store_compact(c->s, r_mid), -KF_ECOMPACTED);
    assert_int_equal(kf_store_compact(c->s, r_mid - 1), -KF_ECOMPACTED);
    assert_int_equal(kf_store_compact(c->s, r_end + 5), -EINVAL);

    /* compact at the current revision: the present stays readable */
    assert_int_equal(kf_store_compact(c->s, r_end), 0);
    check_range_at(c, r_end, 3);
    check_range_at(c, 0, 0);
    assert_int_equal(kf_store_history(c->s, r_end, 0, &h), 0);
    assert_int_equal(h.n, 0);
    assert_int_equal(kf_store_history(c->s, r_end - 1, 0, &h), -KF_ECOMPACTED);
    /* and writing goes on */
    ra = put(c, "a", "a4", KF_REV_ANY);
    assert_int_equal(ra, r_end + 1);
    check_range_at(c, r_end, 0);
    check_range_at(c, ra, 0);
    assert_int_equal(kf_store_history(c->s, r_end, 0, &h), 0);
    assert_true(h.n >= 1);
    kf_event_list_release(&h);
}

static void test_status(void **state)
{
    struct ctx *c = *state;
    struct kf_store_status st0, st;

    assert_int_equal(kf_store_status(c->s, &st0), 0);
    put(c, "1", "one", 0);
    put(c, "2", "two", 0);
    put(c, "2", "zwei", KF_REV_ANY);
    put(c, "3", "three", 0);
    del(c, "1", KF_REV_ANY);
    assert_int_equal(kf_store_status(c->s, &st), 0);
    assert_int_equal(st.rev, st0.rev + 5);
    assert_int_equal(st.keys, st0.keys + 2);
    assert_true(st.db_bytes > 0);
    if (cur->fresh) {
        assert_int_equal(st0.rev, 0);
        assert_int_equal(st0.keys, 0);
        assert_int_equal(st.keys, 2);
    }
}

static void test_limits(void **state)
{
    struct ctx *c = *state;
    char key[KF_STORE_MAX_KEY + 2];
    char *big = kf_xmalloc(KF_STORE_MAX_VALUE + 1);
    struct kf_kv kv = { 0 };
    size_t failed = 99;
    int64_t rev;
    const char bin[] = { 'a', '\0', 'b', '\xff', '\0' };

    /* the largest key and value pass, one byte more does not */
    memset(key, 'k', sizeof(key));
    memcpy(key, c->prefix, strlen(c->prefix));
    key[KF_STORE_MAX_KEY] = '\0';
    memset(big, 'v', KF_STORE_MAX_VALUE + 1);
    assert_int_equal(kf_store_put(c->s, key, "x", 1, 0, &rev), 0);
    assert_int_equal(kf_store_get(c->s, key, &kv), 0);
    assert_int_equal(strlen(kv.key), KF_STORE_MAX_KEY);
    kf_kv_release(&kv);
    key[KF_STORE_MAX_KEY] = 'k';
    key[KF_STORE_MAX_KEY + 1] = '\0';
    assert_int_equal(kf_store_put(c->s, key, "x", 1, 0, &rev), -KF_ETOOLARGE);
    assert_int_equal(kf_store_put(c->s, K(c, "big"), big, KF_STORE_MAX_VALUE, 0, &rev), 0);
    assert_int_equal(kf_store_get(c->s, K(c, "big"), &kv), 0);
    assert_int_equal(kv.value_len, KF_STORE_MAX_VALUE);
    assert_memory_equal(kv.value, big, KF_STORE_MAX_VALUE);
    kf_kv_release(&kv);
    assert_int_equal(kf_store_put(c->s, K(c, "big2"), big, KF_STORE_MAX_VALUE + 1, 0, &rev),
                     -KF_ETOOLARGE);
    free(big);

    /* malformed ops */
    assert_int_equal(kf_store_put(c->s, "no-slash", "x", 1, 0, &rev), -EINVAL);
    assert_int_equal(kf_store_put(c->s, "", "x", 1, 0, &rev), -EINVAL);
    assert_int_equal(kf_store_put(c->s, NULL, "x", 1, 0, &rev), -EINVAL);
    assert_int_equal(kf_store_put(c->s, K(c, "nv"), NULL, 0, 0, &rev), -EINVAL);
    assert_int_equal(kf_store_put(c->s, K(c, "nv"), "x", 1, -5, &rev), -EINVAL);
    {
        struct kf_op op = { .type = 7, .key = K(c, "t"), .value = "x", .value_len = 1 };

        assert_int_equal(kf_store_txn(c->s, &op, 1, &rev, &failed), -EINVAL);
        assert_int_equal(failed, 0);
    }
    {
        struct kf_op ops[KF_STORE_MAX_TXN_OPS + 1];
        char(*keys)[96] = kf_xcalloc(KF_STORE_MAX_TXN_OPS + 1, 96);

        for (size_t i = 0; i <= KF_STORE_MAX_TXN_OPS; i++) {
            snprintf(keys[i], 96, "%sm%zu", c->prefix, i);
            ops[i] = (struct kf_op){ KF_OP_PUT, keys[i], "v", 1, 0 };
        }
        assert_int_equal(kf_store_txn(c->s, ops, KF_STORE_MAX_TXN_OPS + 1, &rev, &failed),
                         -KF_ETOOLARGE);
        assert_int_equal(kf_store_get(c->s, keys[0], &kv), -KF_ENOTFOUND);
        assert_int_equal(kf_store_txn(c->s, ops, KF_STORE_MAX_TXN_OPS, &rev, &failed), 0);
        assert_int_equal(kf_store_get(c->s, keys[KF_STORE_MAX_TXN_OPS - 1], &kv), 0);
        assert_int_equal(kv.mod_rev, rev);
        kf_kv_release(&kv);
        free(keys);
    }
    /* values are bytes */
    assert_int_equal(kf_store_put(c->s, K(c, "bin"), bin, sizeof(bin), 0, &rev), 0);
    assert_int_equal(kf_store_get(c->s, K(c, "bin"), &kv), 0);
    assert_int_equal(kv.value_len, sizeof(bin));
    assert_memory_equal(kv.value, bin, sizeof(bin));
    kf_kv_release(&kv);
}

/* --- tests: watches --------------------------------------------------------- */

static void count_wake(void *arg)
{
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_RELAXED);
}

static void test_watch_basic(void **state)
{
    struct ctx *c = *state;
    struct kf_watch *all = NULL, *pa = NULL, *late = NULL;
    char pfx[128];
    int wakes = 0;
    int64_t r0 = kf_store_rev(c->s), rb;
    struct kf_event *ev;

    snprintf(pfx, sizeof(pfx), "%sa/", c->prefix);
    assert_int_equal(kf_watch_open(c->s, c->prefix, 0, count_wake, &wakes, &all), 0);
    assert_int_equal(kf_watch_open(c->s, pfx, 0, NULL, NULL, &pa), 0);
    assert_int_equal(kf_watch_next(all, &ev), 0);
    assert_int_equal(kf_watch_wait(all, 0), 0);

    put(c, "a/1", "x", 0);
    put(c, "b/1", "y", 0);
    rb = put(c, "a/1", "x2", KF_REV_ANY);
    {
        char k1[128], k2[128], k3[128];
        struct kf_op ops[] = {
            { KF_OP_PUT, k1, "t1", 2, KF_REV_ANY },
            { .type = KF_OP_DELETE, .key = k2, .expect_mod_rev = KF_REV_ANY },
            { KF_OP_PUT, k3, "t3", 2, 0 },
        };

        snprintf(k1, sizeof(k1), "%sa/2", c->prefix);
        snprintf(k2, sizeof(k2), "%sb/1", c->prefix);
        snprintf(k3, sizeof(k3), "%sa/0", c->prefix);
        assert_int_equal(do_txn(c, ops, 3, NULL, NULL), 0);
    }
    del(c, "a/1", rb);
    assert_true(__atomic_load_n(&wakes, __ATOMIC_RELAXED) >= 1);
    assert_int_equal(kf_watch_wait(all, 1000), 1);
    check_watch(c, all, r0, c->prefix);
    check_watch(c, pa, r0, pfx);
    assert_int_equal(kf_watch_progress(all), kf_store_rev(c->s));

    /* a watch from a past revision replays from there */
    assert_int_equal(kf_watch_open(c->s, c->prefix, rb, NULL, NULL, &late), 0);
    check_watch(c, late, rb, c->prefix);
    kf_watch_close(late);
    /* and from a future one waits for it */
    assert_int_equal(kf_watch_open(c->s, c->prefix, kf_store_rev(c->s) + 2, NULL, NULL, &late), 0);
    put(c, "f/1", "skipped", 0);
    put(c, "f/2", "skipped", 0);
    put(c, "f/3", "seen", 0);
    check_watch(c, late, kf_store_rev(c->s) - 1, c->prefix);
    kf_watch_close(late);
    assert_int_equal(kf_watch_open(c->s, c->prefix, -1, NULL, NULL, &late), -EINVAL);

    kf_watch_close(all);
    kf_watch_close(pa);
}

struct waiter {
    struct kf_watch *w;
    int result;
};

static void *wait_thread(void *arg)
{
    struct waiter *wt = arg;

    wt->result = kf_watch_wait(wt->w, -1);
    return NULL;
}

static void test_watch_wakeup(void **state)
{
    struct ctx *c = *state;
    struct waiter wt = { 0 };
    pthread_t th;
    struct kf_event *ev = NULL;

    assert_int_equal(kf_watch_open(c->s, c->prefix, 0, NULL, NULL, &wt.w), 0);
    pthread_create(&th, NULL, wait_thread, &wt);
    usleep(20000);
    put(c, "wake", "up", 0);
    pthread_join(th, NULL);
    assert_int_equal(wt.result, 1);
    assert_int_equal(kf_watch_next(wt.w, &ev), 1);
    assert_string_equal(ev->kv.key, K(c, "wake"));
    kf_event_unref(ev);
    kf_watch_close(wt.w);
}

static void test_watch_many(void **state)
{
    struct ctx *c = *state;
    enum { NW = 60 };
    struct kf_watch *w[NW];
    char pfx[NW][128];
    int64_t r0 = kf_store_rev(c->s);

    for (int i = 0; i < NW; i++) {
        if (i % 3 == 0)
            snprintf(pfx[i], sizeof(pfx[i]), "%s", c->prefix);
        else
            snprintf(pfx[i], sizeof(pfx[i]), "%sp%d/", c->prefix, i % 7);
        assert_int_equal(kf_watch_open(c->s, pfx[i], 0, NULL, NULL, &w[i]), 0);
    }
    for (int t = 0; t < 50; t++) {
        char name[32];

        snprintf(name, sizeof(name), "p%d/k%d", t % 7, t % 5);
        put(c, name, name, KF_REV_ANY);
    }
    for (int i = 0; i < NW; i++) {
        check_watch(c, w[i], r0, pfx[i]);
        kf_watch_close(w[i]);
    }
}

/* Writes n single puts and one transaction of `wide` ops. */
static void burst(struct ctx *c, int n, int wide, int tag)
{
    char keys[16][128], vals[16][32];
    struct kf_op ops[16];

    for (int i = 0; i < n; i++) {
        char name[32], val[32];

        snprintf(name, sizeof(name), "%s/%d", i % 2 ? "odd" : "even", i % 9);
        snprintf(val, sizeof(val), "%d.%d", tag, i);
        put(c, name, val, KF_REV_ANY);
    }
    for (int i = 0; i < wide && i < 16; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%swide/%d", c->prefix, i);
        snprintf(vals[i], sizeof(vals[i]), "w%d.%d", tag, i);
        ops[i] = (struct kf_op){ KF_OP_PUT, keys[i], vals[i], strlen(vals[i]), KF_REV_ANY };
    }
    if (wide)
        assert_int_equal(do_txn(c, ops, (size_t)KF_MIN(wide, 16), NULL, NULL), 0);
}

/* A window of 4 events: watchers that start behind it or are overrun read
 * the backend's history and still see every event once, in order,
 * including transactions wider than the window and transactions they had
 * read half of. */
static void test_watch_fallback(void **state)
{
    struct ctx *c = *state;
    struct kf_watch *live = NULL, *half = NULL, *behind = NULL, *odd = NULL;
    struct kf_watch_stats stats;
    struct kf_event *ev;
    int64_t r0;
    char pfx[128];
    size_t i;

    kf_store_close(c->s);
    kf_watch_set_default_window(4, 0);
    open_store(c);
    put(c, "first", "1", KF_REV_ANY); /* a watch after 0 would mean "from now" */
    r0 = kf_store_rev(c->s);
    snprintf(pfx, sizeof(pfx), "%sodd/", c->prefix);
    assert_int_equal(kf_watch_open(c->s, c->prefix, 0, NULL, NULL, &live), 0);
    assert_int_equal(kf_watch_open(c->s, c->prefix, 0, NULL, NULL, &half), 0);
    assert_int_equal(kf_watch_open(c->s, pfx, 0, NULL, NULL, &odd), 0);

    burst(c, 3, 7, 1);
    /* `half` reads part of the wide transaction, from history */
    i = first_event_after(c, r0);
    for (int k = 0; k < 5; k++) {
        ev = wnext(half);
        assert_non_null(ev);
        assert_event(ev, &c->evs[i++]);
        kf_event_unref(ev);
    }
    burst(c, 10, 6, 2);
    burst(c, 2, 0, 3);
    /* `half` goes on where it stopped */
    for (; i < c->nevs; i++) {
        ev = wnext(half);
        assert_non_null(ev);
        assert_event(ev, &c->evs[i]);
        kf_event_unref(ev);
    }
    check_watch(c, live, r0, c->prefix);
    check_watch(c, odd, r0, pfx);
    /* caught up, they wait for new events instead of asking history again */
    assert_int_equal(kf_watch_wait(live, 0), 0);
    assert_int_equal(kf_watch_wait(half, 0), 0);
    /* a watcher that starts far behind the window */
    assert_int_equal(kf_watch_open(c->s, c->prefix, r0, NULL, NULL, &behind), 0);
    check_watch(c, behind, r0, c->prefix);
    /* all of them are back in the ring and follow new writes */
    r0 = kf_store_rev(c->s);
    burst(c, 2, 2, 4);
    check_watch(c, live, r0, c->prefix);
    check_watch(c, behind, r0, c->prefix);
    check_watch(c, odd, r0, pfx);
    kf_watch_hub_stats(c->s, &stats);
    assert_true(stats.history_fallbacks >= 3);
    assert_true(stats.window_events <= 4);
    assert_int_equal(stats.watchers, 4);
    assert_int_equal(kf_watch_progress(live), kf_store_rev(c->s));
    assert_int_equal(kf_watch_progress(behind), kf_store_rev(c->s));
    kf_watch_close(live);
    kf_watch_close(half);
    kf_watch_close(behind);
    kf_watch_close(odd);
}

static void test_watch_close(void **state)
{
    struct ctx *c = *state;
    struct kf_watch *w1 = NULL, *w2 = NULL;
    struct waiter wt = { 0 };
    struct kf_event *ev = NULL;
    pthread_t th;
    int64_t r0 = kf_store_rev(c->s);

    put(c, "x", "1", 0);
    assert_int_equal(kf_watch_open(c->s, c->prefix, 0, NULL, NULL, &w1), 0);
    assert_int_equal(kf_watch_open(c->s, c->prefix, r0, NULL, NULL, &w2), 0);
    wt.w = w1;
    pthread_create(&th, NULL, wait_thread, &wt);
    usleep(20000);
    kf_store_close(c->s);
    c->s = NULL;
    pthread_join(th, NULL);
    assert_int_equal(wt.result, 1);
    assert_int_equal(kf_watch_next(w1, &ev), -EPIPE);
    assert_int_equal(kf_watch_next(w2, &ev), -EPIPE);
    assert_int_equal(kf_watch_wait(w1, -1), 1);
    kf_watch_close(w1);
    kf_watch_close(w2);
}

static void test_watch_reopen(void **state)
{
    struct ctx *c = *state;
    struct kf_watch *w = NULL;
    struct kf_kv kv = { 0 };
    int64_t r0 = kf_store_rev(c->s), r1, r2;

    if (!cur->persistent)
        skip();
    random_history(c, 3, 30);
    r1 = kf_store_rev(c->s);
    kf_store_close(c->s);
    open_store(c);
    assert_int_equal(kf_store_rev(c->s), r1);
    check_range_at(c, 0, 0);
    check_range_at(c, r0 + 5, 2);
    /* history from before the restart, then new writes */
    assert_int_equal(kf_watch_open(c->s, c->prefix, r0 + 3, NULL, NULL, &w), 0);
    r2 = put(c, "after", "restart", 0);
    assert_int_equal(r2, r1 + 1);
    check_watch(c, w, r0 + 3, c->prefix);
    put(c, "after", "again", r2);
    check_watch(c, w, r2, c->prefix);
    assert_int_equal(kf_store_get(c->s, K(c, "after"), &kv), 0);
    assert_int_equal(kv.create_rev, r2);
    kf_kv_release(&kv);
    kf_watch_close(w);
}

/* --- tests: threads ------------------------------------------------------- */

enum { ACCOUNTS = 6, START_BALANCE = 100, TRANSFERS = 150, MOVERS = 3, READERS = 2 };

struct bank {
    struct ctx *c;
    char keys[ACCOUNTS][128];
    int64_t start_rev;
    volatile int stop;
    int committed[MOVERS];
    int errors;
};

static int balance_of(const struct kf_kv *kv)
{
    int64_t v = -1;

    kf_parse_int64(kv->value, &v);
    return (int)v;
}

static void *mover(void *arg)
{
    struct bank *b = ((void **)arg)[0];
    int id = (int)(intptr_t)((void **)arg)[1];
    unsigned seed = (unsigned)id * 7919u + 1;

    for (int t = 0; t < TRANSFERS; t++) {
        int from = rand_r(&seed) % ACCOUNTS,
            to = (from + 1 + rand_r(&seed) % (ACCOUNTS - 1)) % ACCOUNTS;
        int amount = 1 + rand_r(&seed) % 5;

        for (;;) {
            struct kf_kv a = { 0 }, z = { 0 };
            char va[32], vz[32];
            struct kf_op ops[2];
            int r;

            if (kf_store_get(b->c->s, b->keys[from], &a) < 0 ||
                kf_store_get(b->c->s, b->keys[to], &z) < 0) {
                __atomic_add_fetch(&b->errors, 1, __ATOMIC_RELAXED);
                return NULL;
            }
            snprintf(va, sizeof(va), "%d", balance_of(&a) - amount);
            snprintf(vz, sizeof(vz), "%d", balance_of(&z) + amount);
            ops[0] = (struct kf_op){ KF_OP_PUT, b->keys[from], va, strlen(va), a.mod_rev };
            ops[1] = (struct kf_op){ KF_OP_PUT, b->keys[to], vz, strlen(vz), z.mod_rev };
            r = kf_store_txn(b->c->s, ops, 2, NULL, NULL);
            kf_kv_release(&a);
            kf_kv_release(&z);
            if (r == 0) {
                b->committed[id]++;
                break;
            }
            if (r != -KF_ECONFLICT) {
                __atomic_add_fetch(&b->errors, 1, __ATOMIC_RELAXED);
                return NULL;
            }
        }
    }
    return NULL;
}

/* Every snapshot, current or old, holds the same total. */
static void *auditor(void *arg)
{
    struct bank *b = arg;
    unsigned seed = 99;

    while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
        struct kf_range q = { .prefix = b->c->prefix };
        struct kf_kv_list l = { 0 };
        int64_t now = kf_store_rev(b->c->s);
        int sum = 0;

        if (rand_r(&seed) % 2 && now > b->start_rev)
            q.rev = b->start_rev + 1 + rand_r(&seed) % (now - b->start_rev);
        if (kf_store_range(b->c->s, &q, &l) < 0 || l.n != ACCOUNTS) {
            __atomic_add_fetch(&b->errors, 1, __ATOMIC_RELAXED);
            kf_kv_list_release(&l);
            break;
        }
        for (size_t i = 0; i < l.n; i++)
            sum += balance_of(&l.items[i]);
        if (sum != ACCOUNTS * START_BALANCE)
            __atomic_add_fetch(&b->errors, 1, __ATOMIC_RELAXED);
        kf_kv_list_release(&l);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct ctx *c = *state;
    struct bank b = { .c = c };
    pthread_t movers[MOVERS], readers[READERS];
    void *args[MOVERS][2];
    struct kf_op ops[ACCOUNTS];
    struct kf_watch *w = NULL;
    struct kf_event *ev;
    struct kf_kv_list l = { 0 };
    struct kf_range q = { .prefix = c->prefix };
    int64_t last_rev = 0, events = 0, txns = 0, total = 0;
    int committed = 0;

    for (int i = 0; i < ACCOUNTS; i++) {
        snprintf(b.keys[i], sizeof(b.keys[i]), "%sacct/%d", c->prefix, i);
        ops[i] = (struct kf_op){ KF_OP_PUT, b.keys[i], "100", 3, 0 };
    }
    assert_int_equal(kf_store_txn(c->s, ops, ACCOUNTS, &b.start_rev, NULL), 0);
    assert_int_equal(kf_watch_open(c->s, c->prefix, b.start_rev, NULL, NULL, &w), 0);
    for (int i = 0; i < READERS; i++)
        pthread_create(&readers[i], NULL, auditor, &b);
    for (int i = 0; i < MOVERS; i++) {
        args[i][0] = &b;
        args[i][1] = (void *)(intptr_t)i;
        pthread_create(&movers[i], NULL, mover, args[i]);
    }
    for (int i = 0; i < MOVERS; i++)
        pthread_join(movers[i], NULL);
    __atomic_store_n(&b.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < READERS; i++)
        pthread_join(readers[i], NULL);
    assert_int_equal(b.errors, 0);
    for (int i = 0; i < MOVERS; i++)
        committed += b.committed[i];
    assert_int_equal(committed, MOVERS * TRANSFERS);

    assert_int_equal(kf_store_range(c->s, &q, &l), 0);
    assert_int_equal(l.n, ACCOUNTS);
    for (size_t i = 0; i < l.n; i++)
        total += balance_of(&l.items[i]);
    assert_int_equal(total, ACCOUNTS * START_BALANCE);
    kf_kv_list_release(&l);

    /* the watcher saw every transfer, whole and in order */
    while ((ev = wnext(w)) != NULL) {
        assert_true(ev->kv.mod_rev >= last_rev);
        if (ev->kv.mod_rev != last_rev)
            txns++;
        last_rev = ev->kv.mod_rev;
        events++;
        kf_event_unref(ev);
        if (txns == committed && events == 2 * committed)
            break;
    }
    assert_int_equal(txns, committed);
    assert_int_equal(events, 2 * committed);
    kf_watch_close(w);
}

/* --- backend-specific tests ----------------------------------------------- */

static int open_err(const char *url, struct kf_strbuf *err)
{
    struct kf_store *s = NULL;
    int r;

    kf_strbuf_reset(err);
    r = kf_store_open(url, &s, err);
    if (r == 0)
        kf_store_close(s);
    return r;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_bad_urls(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *url;

    assert_int_equal(open_err(NULL, &err), -EINVAL);
    assert_int_equal(open_err("nothing", &err), -EINVAL);
    assert_contains(err.buf, "no scheme");
    assert_int_equal(open_err("postgres://db", &err), -EINVAL);
    assert_contains(err.buf, "unknown store scheme \"postgres\"");
    assert_contains(err.buf, "memory:");
    assert_contains(err.buf, "sqlite:");
    assert_int_equal(open_err("memory:x", &err), -EINVAL);
    assert_int_equal(open_err("sqlite:", &err), -EINVAL);
    assert_contains(err.buf, "no path");
    url = kf_xasprintf("sqlite:%s/bad/kf.db?sync=sometimes", tmpdir);
    assert_int_equal(open_err(url, &err), -EINVAL);
    assert_contains(err.buf, "\"normal\" or \"full\"");
    free(url);
    url = kf_xasprintf("sqlite:%s/bad/kf.db?cache=big", tmpdir);
    assert_int_equal(open_err(url, &err), -EINVAL);
    assert_contains(err.buf, "unknown option \"cache=big\"");
    free(url);
    /* nothing was created for the refused URLs */
    url = kf_xasprintf("%s/bad/kf.db", tmpdir);
    assert_int_equal(access(url, F_OK), -1);
    free(url);
    kf_strbuf_release(&err);
    (void)state;
}

static char *path_in_tmp(const char *name)
{
    return kf_xasprintf("%s/files/%u-%s", tmpdir, ++url_counter, name);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f;
    char *dir = kf_xstrdup(path);

    *strrchr(dir, '/') = '\0';
    mkdir(dir, 0700);
    free(dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_sqlite_bad_files(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path, *url;
    sqlite3 *db;

    /* not a database */
    path = path_in_tmp("text.db");
    write_file(path, "hello, this is not a database\n", 30);
    url = kf_xasprintf("sqlite:%s", path);
    assert_true(open_err(url, &err) < 0);
    assert_contains(err.buf, "not an SQLite database");
    assert_contains(err.buf, path);
    free(url);
    free(path);

    /* an SQLite database of someone else */
    path = path_in_tmp("foreign.db");
    write_file(path, "", 0);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "CREATE TABLE t (x); INSERT INTO t VALUES (1)", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    url = kf_xasprintf("sqlite:%s", path);
    assert_int_equal(open_err(url, &err), -EINVAL);
    assert_contains(err.buf, "not a kfleet store");
    free(url);
    free(path);

    /* a store from a newer kfleet */
    path = path_in_tmp("newer.db");
    url = kf_xasprintf("sqlite:%s", path);
    assert_int_equal(open_err(url, &err), 0);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(open_err(url, &err), -EINVAL);
    assert_contains(err.buf, "newer");
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(open_err(url, &err), -EINVAL);
    assert_contains(err.buf, "development build");
    free(url);
    free(path);

    /* a directory */
    path = path_in_tmp("dir.db");
    mkdir(path, 0700);
    url = kf_xasprintf("sqlite:%s", path);
    assert_true(open_err(url, &err) < 0);
    assert_contains(err.buf, "not a regular file");
    free(url);
    free(path);

    /* an empty file is a new store; missing parents are created */
    path = path_in_tmp("empty.db");
    write_file(path, "", 0);
    url = kf_xasprintf("sqlite:%s", path);
    assert_int_equal(open_err(url, &err), 0);
    free(url);
    free(path);
    path = kf_xasprintf("%s/deep/er/and/deeper/kf.db", tmpdir);
    url = kf_xasprintf("sqlite:%s", path);
    assert_int_equal(open_err(url, &err), 0);
    assert_int_equal(access(path, F_OK), 0);
    free(url);
    free(path);
    kf_strbuf_release(&err);
    (void)state;
}

/* A database damaged after it was written: opening or reading it gives an
 * error, never a crash. */
static void test_sqlite_corrupt(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path = path_in_tmp("corrupt.db"), *url = kf_xasprintf("sqlite:%s", path);
    struct kf_store *s = NULL;
    char val[600];
    struct stat st;
    FILE *f;

    memset(val, 'v', sizeof(val));
    assert_int_equal(kf_store_open(url, &s, &err), 0);
    for (int i = 0; i < 300; i++) {
        char key[32];

        snprintf(key, sizeof(key), "/k/%04d", i);
        assert_int_equal(kf_store_put(s, key, val, sizeof(val), 0, NULL), 0);
    }
    kf_store_close(s); /* checkpoints everything into the main file */
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 64 * 1024);

    /* garbage over every page but the first */
    f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 4096, SEEK_SET);
    for (long off = 4096; off < st.st_size; off++)
        fputc((int)((off * 7919) & 0xff), f);
    fclose(f);
    s = NULL;
    if (kf_store_open(url, &s, &err) == 0) {
        struct kf_range q = { .prefix = "/k/" };
        struct kf_kv_list l = { 0 };
        struct kf_kv kv = { 0 };
        int r = kf_store_range(s, &q, &l);

        assert_true(r < 0);
        r = kf_store_get(s, "/k/0100", &kv);
        assert_true(r < 0);
        assert_true(kf_store_put(s, "/k/new", "x", 1, 0, NULL) < 0);
        kf_store_close(s);
    } else {
        assert_true(err.len > 0);
    }

    /* a bad header is refused at open */
    f = fopen(path, "r+b");
    assert_non_null(f);
    fputs("This is no longer SQLite", f);
    fclose(f);
    assert_true(open_err(url, &err) < 0);
    assert_contains(err.buf, "not an SQLite database");
    free(url);
    free(path);
    kf_strbuf_release(&err);
    (void)state;
}

static void test_sqlite_locked(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path = path_in_tmp("locked.db"), *url = kf_xasprintf("sqlite:%s", path);
    struct kf_store *s = NULL, *s2 = NULL;
    int to_child[2], from_child[2];
    pid_t pid;
    char c;

    /* a second open in this process */
    assert_int_equal(kf_store_open(url, &s, &err), 0);
    assert_int_equal(kf_store_open(url, &s2, &err), -KF_EUNAVAILABLE);
    assert_contains(err.buf, "is another kfleetd using it?");
    assert_contains(err.buf, path);
    kf_store_close(s);

    /* another process */
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(from_child), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct kf_store *cs = NULL;

        close(to_child[1]);
        close(from_child[0]);
        c = kf_store_open(url, &cs, NULL) == 0 ? 'y' : 'n';
        if (write(from_child[1], &c, 1) != 1)
            _exit(1);
        if (read(to_child[0], &c, 1) < 0)
            _exit(1);
        kf_store_close(cs);
        _exit(0);
    }
    close(to_child[0]);
    close(from_child[1]);
    assert_int_equal(read(from_child[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    assert_int_equal(kf_store_open(url, &s, &err), -KF_EUNAVAILABLE);
    assert_contains(err.buf, "another kfleetd");
    close(to_child[1]); /* the child closes its store and exits */
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    close(from_child[0]);
    assert_int_equal(kf_store_open(url, &s, &err), 0);
    kf_store_close(s);
    free(url);
    free(path);
    kf_strbuf_release(&err);
    (void)state;
}

/* Compaction removes superseded versions from the file. */
static void test_sqlite_compaction_on_disk(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path = path_in_tmp("compact.db"), *url = kf_xasprintf("sqlite:%s", path);
    struct kf_store *s = NULL;
    int64_t rev = 0, versions;
    sqlite3 *db;
    sqlite3_stmt *st;

    assert_int_equal(kf_store_open(url, &s, &err), 0);
    for (int round = 0; round < 20; round++)
        for (int k = 0; k < 10; k++) {
            char key[32];

            snprintf(key, sizeof(key), "/c/%d", k);
            assert_int_equal(kf_store_put(s, key, "value", 5, KF_REV_ANY, &rev), 0);
        }
    assert_int_equal(kf_store_delete(s, "/c/9", KF_REV_ANY, &rev), 0);
    assert_int_equal(kf_store_compact(s, rev), 0);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM log", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    versions = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* one version of each of the 9 live keys; /c/9 and its tombstone gone */
    assert_int_equal(versions, 9);
    kf_store_close(s);
    free(url);
    free(path);
    kf_strbuf_release(&err);
    (void)state;
}

static void test_sqlite_sync_full(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path = path_in_tmp("full.db"), *url = kf_xasprintf("sqlite:%s?sync=full", path);
    struct kf_store *s = NULL;
    struct kf_kv kv = { 0 };
    int64_t rev;

    assert_int_equal(kf_store_open(url, &s, &err), 0);
    assert_int_equal(kf_store_put(s, "/f/1", "durable", 7, 0, &rev), 0);
    kf_store_close(s);
    assert_int_equal(kf_store_open(url, &s, &err), 0);
    assert_int_equal(kf_store_get(s, "/f/1", &kv), 0);
    assert_string_equal(kv.value, "durable");
    assert_int_equal(kv.mod_rev, rev);
    kf_kv_release(&kv);
    kf_store_close(s);
    free(url);
    free(path);
    kf_strbuf_release(&err);
    (void)state;
}

/* --- main ------------------------------------------------------------------ */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static const struct CMUnitTest conformance[] = {
    T(test_put_get),      T(test_cas_create), T(test_cas_update),     T(test_cas_delete),
    T(test_txn),          T(test_range),      T(test_limits),         T(test_range_old_revisions),
    T(test_history),      T(test_compaction), T(test_status),         T(test_watch_basic),
    T(test_watch_wakeup), T(test_watch_many), T(test_watch_fallback), T(test_watch_close),
    T(test_watch_reopen), T(test_threads),
};

static const struct CMUnitTest others[] = {
    cmocka_unit_test(test_bad_urls),
    cmocka_unit_test(test_sqlite_bad_files),
    cmocka_unit_test(test_sqlite_corrupt),
    cmocka_unit_test(test_sqlite_locked),
    cmocka_unit_test(test_sqlite_compaction_on_disk),
    cmocka_unit_test(test_sqlite_sync_full),
};

int main(void)
{
    struct etcd_harness etcd = { 0 };
    int failed = 0;

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* etcd: the endpoints in KF_TEST_ETCD, or a member of our own */
    if (!getenv("KF_TEST_ETCD")) {
        if (!etcd_harness_available())
            printf("store conformance: etcd skipped: " ETCD_HARNESS_BIN " is not installed\n");
        else if (etcd_harness_start(&etcd, 1, NULL) < 0)
            failed++;
        else
            setenv("KF_TEST_ETCD", etcd.endpoints, 1);
    }
    for (size_t i = 0; i < KF_ARRAY_SIZE(backends); i++) {
        char name[64];

        cur = &backends[i];
        if (strcmp(cur->name, "etcd") == 0 && !getenv("KF_TEST_ETCD"))
            continue;
        snprintf(name, sizeof(name), "store conformance: %s", cur->name);
        failed += cmocka_run_group_tests_name(name, conformance, NULL, NULL);
    }
    failed += cmocka_run_group_tests_name("store: sqlite files and URLs", others, NULL, NULL);
    kf_remove_tree(tmpdir);
    etcd_harness_stop(&etcd);
    return failed ? 1 : 0;
}
