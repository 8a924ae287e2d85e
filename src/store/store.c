/* store.c: the backend registry and the thin kf_store_* wrappers that every
 * caller uses (contracts in kfleet/store.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/error.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "store/store-internal.h"

/* Every backend, by scheme. Adding a backend is one line here. */
static const struct kf_store_ops *const backends[] = {
    &kf_store_memory_ops,
    &kf_store_sqlite_ops,
    &kf_store_etcd_ops,
};

#define N_BACKENDS KF_ARRAY_SIZE(backends)

static const struct kf_store_ops *backend_table(size_t i)
{
    return i < N_BACKENDS ? backends[i] : NULL;
}

const struct kf_store_ops *kf_store_backend(const char *scheme)
{
    for (size_t i = 0; i < N_BACKENDS; i++) {
        const struct kf_store_ops *ops = backend_table(i);

        if (ops && strcmp(ops->scheme, scheme) == 0)
            return ops;
    }
    return NULL;
}

void kf_kv_release(struct kf_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

void kf_kv_list_release(struct kf_kv_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        kf_kv_release(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

char *kf_store_prefix_end(const char *prefix)
{
    size_t len = strlen(prefix);
    char *end = kf_xstrdup(prefix);

    while (len > 0) {
        unsigned char c = (unsigned char)end[len - 1];

        if (c < 0xff) {
            end[len - 1] = (char)(c + 1);
            end[len] = '\0';
            return end;
        }
        len--;
    }
    end[0] = '\0';
    return end;
}

int kf_store_check_op(const struct kf_op *op)
{
    size_t klen;

    if (!op->key || (klen = strlen(op->key)) == 0 || op->key[0] != '/')
        return -EINVAL;
    if (klen > KF_STORE_MAX_KEY)
        return -KF_ETOOLARGE;
    if (op->type != KF_OP_PUT && op->type != KF_OP_DELETE && op->type != KF_OP_CHECK)
        return -EINVAL;
    if (op->type == KF_OP_CHECK && op->expect_mod_rev < 0)
        return -EINVAL;
    if (op->type == KF_OP_PUT && (!op->value || op->value_len > KF_STORE_MAX_VALUE))
        return op->value ? -KF_ETOOLARGE : -EINVAL;
    if (op->expect_mod_rev < KF_REV_ANY)
        return -EINVAL;
    return 0;
}

int kf_store_open(const char *url, struct kf_store **ret, struct kf_strbuf *err)
{
    const char *colon = url ? strchr(url, ':') : NULL;
    const struct kf_store_ops *ops;
    struct kf_store *s = NULL;
    struct kf_store_status st;
    char *scheme;
    int r;

    if (!colon)
        return kf_err(err, -EINVAL,
                      "store \"%s\" has no scheme: use sqlite:PATH, etcd:URL[,URL...] or memory:",
                      url ? url : "");
    scheme = kf_xstrndup(url, (size_t)(colon - url));
    ops = kf_store_backend(scheme);
    if (!ops) {
        struct kf_strbuf names = KF_STRBUF_INIT;

        for (size_t i = 0; i < N_BACKENDS; i++)
            if (backend_table(i))
                kf_strbuf_addf(&names, "%s%s:", names.len ? ", " : "", backend_table(i)->scheme);
        r = kf_err(err, -EINVAL, "unknown store scheme \"%s\" (this build has %s)", scheme,
                   names.buf);
        kf_strbuf_release(&names);
        free(scheme);
        return r;
    }
    free(scheme);
    r = ops->open(colon + 1, &s, err);
    if (r < 0)
        return r;
    s->ops = ops;
    s->url = kf_xstrdup(url);
    r = ops->status(s, &st);
    if (r < 0) {
        kf_err(err, r, "cannot read the status of store \"%s\"", url);
        free(s->url);
        ops->close(s);
        return r;
    }
    if (ops->start && st.feed_rev > 0 && st.feed_rev < st.rev)
        st.rev = st.feed_rev;
    s->hub = kf_watch_hub_new(st.rev, st.compacted_rev, 0, 0);
    if (ops->start) {
        r = ops->start(s, st.rev);
        if (r < 0) {
            kf_err(err, r, "cannot start watching store \"%s\"", url);
            kf_watch_hub_close(s->hub);
            free(s->url);
            ops->close(s);
            return r;
        }
    }
    *ret = s;
    return 0;
}

void kf_store_close(struct kf_store *s)
{
    struct kf_watch_hub *hub;
    char *url;

    if (!s)
        return;
    if (s->ops == &kf_store_guard_ops) {
        /* a handle on another store: its hub and URL are that store's */
        s->ops->close(s);
        return;
    }
    if (s->ops->stop)
        s->ops->stop(s);
    hub = s->hub;
    url = s->url;
    /* The hub first: it waits for watchers that are reading the backend's
     * history, and from then on no watcher calls the backend. */
    s->hub = NULL;
    kf_watch_hub_close(hub);
    s->ops->close(s);
    free(url);
}

const char *kf_store_url(const struct kf_store *s)
{
    return s->url;
}

int kf_store_get(struct kf_store *s, const char *key, struct kf_kv *ret)
{
    return s->ops->get(s, key, ret);
}

int kf_store_range(struct kf_store *s, const struct kf_range *q, struct kf_kv_list *ret)
{
    return s->ops->range(s, q, ret);
}

int kf_store_txn(struct kf_store *s, const struct kf_op *ops, size_t n, int64_t *ret_rev,
                 size_t *ret_failed)
{
    if (n == 0 || !ops)
        return -EINVAL;
    if (n > KF_STORE_MAX_TXN_OPS) {
        if (ret_failed)
            *ret_failed = KF_STORE_MAX_TXN_OPS;
        return -KF_ETOOLARGE;
    }
    bool writes = false;

    for (size_t i = 0; i < n; i++) {
        int r = kf_store_check_op(&ops[i]);

        if (r < 0) {
            if (ret_failed)
                *ret_failed = i;
            return r;
        }
        writes = writes || ops[i].type != KF_OP_CHECK;
    }
    if (!writes) {
        if (ret_failed)
            *ret_failed = 0;
        return -EINVAL;
    }
    return s->ops->txn(s, ops, n, ret_rev, ret_failed);
}

int kf_store_put(struct kf_store *s, const char *key, const char *value, size_t len,
                 int64_t expect_mod_rev, int64_t *ret_rev)
{
    struct kf_op op = {
        .type = KF_OP_PUT,
        .key = key,
        .value = value,
        .value_len = len,
        .expect_mod_rev = expect_mod_rev,
    };

    return kf_store_txn(s, &op, 1, ret_rev, NULL);
}

int kf_store_delete(struct kf_store *s, const char *key, int64_t expect_mod_rev, int64_t *ret_rev)
{
    struct kf_op op = {
        .type = KF_OP_DELETE,
        .key = key,
        .expect_mod_rev = expect_mod_rev,
    };

    return kf_store_txn(s, &op, 1, ret_rev, NULL);
}

int kf_store_history(struct kf_store *s, int64_t after_rev, size_t limit, struct kf_event_list *ret)
{
    return s->ops->history(s, after_rev, limit, ret);
}

int kf_store_compact(struct kf_store *s, int64_t rev)
{
    int r = s->ops->compact(s, rev);

    if (r == 0)
        kf_store_note_compacted(s, rev);
    return r;
}

int kf_store_status(struct kf_store *s, struct kf_store_status *ret)
{
    memset(ret, 0, sizeof(*ret));
    return s->ops->status(s, ret);
}

int64_t kf_store_rev(struct kf_store *s)
{
    struct kf_store_status st;

    return s->ops->status(s, &st) < 0 ? 0 : st.rev;
}
