/* store-guard.c: a fenced handle on a store (contract in kfleet/store.h,
 * "fencing").
 *
 * The handle is a struct kf_store of its own whose ops forward to the
 * store underneath, except txn, which appends a KF_OP_CHECK on the guard
 * key. It shares the store's watch hub (so watches opened on it are the
 * store's watches) but does not own it: kf_store_close recognises a guard
 * by its ops table and frees only the handle. kfleetd gives its controllers
 * a registry over such a handle, made with the leader key and its revision
 * when this replica became leader (see docs/internals/replicas.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/error.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "store/store-internal.h"

struct guard_store {
    struct kf_store base;
    struct kf_store *under;
    char *key;
    int64_t rev;
    uint64_t fenced; /* atomic */
};

static struct guard_store *gs_of(struct kf_store *s)
{
    return (struct guard_store *)s;
}

static int guard_open(const char *arg, struct kf_store **ret, struct kf_strbuf *err)
{
    (void)arg;
    (void)ret;
    return kf_err(err, -EINVAL, "a guard is made with kf_store_guard_new, not opened by URL");
}

static void guard_close(struct kf_store *s)
{
    struct guard_store *g = gs_of(s);

    free(g->key);
    free(g);
}

static int guard_get(struct kf_store *s, const char *key, struct kf_kv *ret)
{
    return kf_store_get(gs_of(s)->under, key, ret);
}

static int guard_range(struct kf_store *s, const struct kf_range *q, struct kf_kv_list *ret)
{
    return kf_store_range(gs_of(s)->under, q, ret);
}

static int guard_txn(struct kf_store *s, const struct kf_op *ops, size_t n, int64_t *ret_rev,
                     size_t *ret_failed)
{
    struct guard_store *g = gs_of(s);
    struct kf_op *all;
    size_t failed = SIZE_MAX;
    int r;

    if (n >= KF_STORE_MAX_TXN_OPS) {
        if (ret_failed)
            *ret_failed = KF_STORE_MAX_TXN_OPS - 1;
        return -KF_ETOOLARGE;
    }
    all = kf_xcalloc(n + 1, sizeof(*all));
    memcpy(all, ops, n * sizeof(*all));
    all[n] = (struct kf_op){
        .type = KF_OP_CHECK,
        .key = g->key,
        .expect_mod_rev = g->rev,
    };
    r = kf_store_txn(g->under, all, n + 1, ret_rev, &failed);
    free(all);
    if (r < 0 && failed == n) {
        /* The conditions are checked in order: the caller's ops all held,
         * only the guard failed (the leader key is gone or was replaced). */
        __atomic_add_fetch(&g->fenced, 1, __ATOMIC_RELAXED);
        return -KF_EFENCED;
    }
    if (r < 0 && ret_failed && failed < n)
        *ret_failed = failed;
    return r;
}

static int guard_history(struct kf_store *s, int64_t after_rev, size_t limit,
                         struct kf_event_list *ret)
{
    return kf_store_history(gs_of(s)->under, after_rev, limit, ret);
}

static int guard_compact(struct kf_store *s, int64_t rev)
{
    return kf_store_compact(gs_of(s)->under, rev);
}

static int guard_status(struct kf_store *s, struct kf_store_status *ret)
{
    return kf_store_status(gs_of(s)->under, ret);
}

const struct kf_store_ops kf_store_guard_ops = {
    .scheme = "guard",
    .open = guard_open,
    .close = guard_close,
    .get = guard_get,
    .range = guard_range,
    .txn = guard_txn,
    .history = guard_history,
    .compact = guard_compact,
    .status = guard_status,
};

int kf_store_guard_new(struct kf_store *s, const char *guard_key, int64_t guard_rev,
                       struct kf_store **ret)
{
    struct kf_op check = { .type = KF_OP_CHECK, .key = guard_key, .expect_mod_rev = guard_rev };
    struct guard_store *g;
    int r = kf_store_check_op(&check);

    if (r < 0)
        return r;
    g = kf_xcalloc(1, sizeof(*g));
    g->base.ops = &kf_store_guard_ops;
    g->base.hub = s->hub;
    g->base.url = s->url;
    g->under = s;
    g->key = kf_xstrdup(guard_key);
    g->rev = guard_rev;
    *ret = &g->base;
    return 0;
}

uint64_t kf_store_guard_fenced(struct kf_store *g)
{
    if (!g || g->ops != &kf_store_guard_ops)
        return 0;
    return __atomic_load_n(&gs_of(g)->fenced, __ATOMIC_RELAXED);
}
