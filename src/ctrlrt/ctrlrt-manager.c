/* ctrlrt-manager.c: the controller manager: owns the informers and the
 * controllers, runs their workers and the resync ticker (contract in
 * kfleet/ctrlrt.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "ctrlrt/ctrlrt-internal.h"

KF_LOG_MODULE(ctrl);

#define WORKER_POLL_MS 200
#define TICK_MS        100

struct kf_ctrl {
    const struct kf_ctrl_ops *ops;
    void *data;
    struct kf_ctrl_manager *m;
    struct kf_informer *primary;
    struct kf_workqueue *q;
    pthread_t *threads;
    int nthreads;
    uint64_t next_resync_ns;
    void (*fini)(void *data);
    /* stats, updated atomically */
    uint64_t reconciles, errors, requeues, ns_total, ns_max;
};

struct kf_ctrl_manager {
    struct kf_store *store;
    struct kf_registry *reg;
    kf_ctrl_scope_fn scope;
    void *scope_arg;
    struct kf_informer **informers;
    size_t ninformers, alloc_informers;
    struct kf_ctrl **ctrls;
    size_t nctrls, alloc_ctrls;
    bool started;
    bool stopping;
    pthread_t ticker;
    void **allocs; /* kf_ctrl_manager_alloc */
    size_t nallocs, alloc_allocs;
    struct shared { /* kf_ctrl_manager_shared */
        char *key;
        void *value;
        void (*release)(void *value);
    } * shared;
    size_t nshared, alloc_shared;
};

struct kf_ctrl_manager *kf_ctrl_manager_new(struct kf_store *store, struct kf_registry *reg)
{
    struct kf_ctrl_manager *m = kf_xcalloc(1, sizeof(*m));

    m->store = store;
    m->reg = reg;
    return m;
}

void kf_ctrl_manager_set_scope(struct kf_ctrl_manager *m, kf_ctrl_scope_fn fn, void *arg)
{
    m->scope = fn;
    m->scope_arg = arg;
}

struct kf_store *kf_ctrl_manager_store(struct kf_ctrl_manager *m)
{
    return m->store;
}

struct kf_registry *kf_ctrl_manager_registry(struct kf_ctrl_manager *m)
{
    return m->reg;
}

bool kf_ctrl_manager_owns(struct kf_ctrl_manager *m, const struct kf_kind *k, const json_t *obj)
{
    return !m->scope || m->scope(k, obj, m->scope_arg);
}

struct kf_informer *kf_ctrl_informer(struct kf_ctrl_manager *m, const struct kf_kind *k)
{
    struct kf_informer *inf;

    for (size_t i = 0; i < m->ninformers; i++)
        if (kf_informer_kind(m->informers[i]) == k)
            return m->informers[i];
    kf_assert(!m->started);
    inf = kf_informer_new(m, k);
    KF_GROW(m->informers, m->alloc_informers, m->ninformers);
    m->informers[m->ninformers++] = inf;
    return inf;
}

int kf_ctrl_watch(struct kf_ctrl *c, const struct kf_kind *k, kf_ctrl_map_fn map)
{
    if (c->m->started)
        return -EBUSY;
    kf_informer_add_handler(kf_ctrl_informer(c->m, k), c, map);
    return 0;
}

int kf_ctrl_manager_add(struct kf_ctrl_manager *m, const struct kf_ctrl_ops *ops, void *data,
                        struct kf_ctrl **ret)
{
    const struct kf_kind *k = kf_kind_find(ops->primary_kind);
    struct kf_ctrl *c;
    int r;

    if (m->started)
        return -EBUSY;
    if (!k)
        return -EINVAL;
    c = kf_xcalloc(1, sizeof(*c));
    c->ops = ops;
    c->data = data;
    c->m = m;
    c->q = kf_workqueue_new();
    c->primary = kf_ctrl_informer(m, k);
    kf_informer_add_handler(c->primary, c, ops->primary_map);
    if (ops->setup) {
        r = ops->setup(c);
        if (r < 0) {
            kf_workqueue_free(c->q);
            free(c);
            return r;
        }
    }
    KF_GROW(m->ctrls, m->alloc_ctrls, m->nctrls);
    m->ctrls[m->nctrls++] = c;
    if (ret)
        *ret = c;
    return 0;
}

static void record(uint64_t *field, uint64_t v)
{
    __atomic_add_fetch(field, v, __ATOMIC_RELAXED);
}

static void *worker_main(void *arg)
{
    struct kf_ctrl *c = arg;

    for (;;) {
        char *name;
        int64_t after = 0;
        uint64_t t0, dt, max;
        int r = kf_workqueue_get(c->q, WORKER_POLL_MS, &name);

        if (r < 0)
            break;
        if (r == 0)
            continue;
        t0 = kf_mono_ns();
        r = c->ops->reconcile(c, name, &after);
        dt = kf_mono_ns() - t0;
        record(&c->reconciles, 1);
        record(&c->ns_total, dt);
        max = __atomic_load_n(&c->ns_max, __ATOMIC_RELAXED);
        while (dt > max && !__atomic_compare_exchange_n(&c->ns_max, &max, dt, false,
                                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ;
        if (r < 0) {
            record(&c->errors, 1);
            kf_log_rl_warn("%s: reconciling \"%s\" failed: %s; will retry with back-off",
                           c->ops->name, name, strerror(-r));
            kf_workqueue_add_backoff(c->q, name);
        } else {
            kf_workqueue_forget(c->q, name);
            if (after > 0) {
                record(&c->requeues, 1);
                kf_workqueue_add_after(c->q, name, after);
            }
        }
        kf_workqueue_done(c->q, name);
        free(name);
    }
    return NULL;
}

static void enqueue_all(struct kf_ctrl *c)
{
    char **names;
    size_t n = kf_informer_names(c->primary, &names);

    for (size_t i = 0; i < n; i++)
        kf_workqueue_add(c->q, names[i]);
    kf_ctrl_names_free(names, n);
}

static void *ticker_main(void *arg)
{
    struct kf_ctrl_manager *m = arg;

    while (!__atomic_load_n(&m->stopping, __ATOMIC_ACQUIRE)) {
        struct timespec ts = { 0, TICK_MS * 1000000L };
        uint64_t now = kf_mono_ns();

        for (size_t i = 0; i < m->nctrls; i++) {
            struct kf_ctrl *c = m->ctrls[i];

            if (c->ops->resync_ms <= 0 || now < c->next_resync_ns)
                continue;
            c->next_resync_ns = now + (uint64_t)c->ops->resync_ms * 1000000ull;
            enqueue_all(c);
        }
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int kf_ctrl_manager_start(struct kf_ctrl_manager *m)
{
    int r = 0;

    if (m->started)
        return -EALREADY;
    m->started = true;
    for (size_t i = 0; i < m->ninformers; i++) {
        r = kf_informer_start(m->informers[i]);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < m->ninformers; i++) {
        int s = kf_informer_wait_synced(m->informers[i]);

        if (s < 0 && r == 0)
            r = s;
    }
    if (r < 0) {
        kf_log_err("controllers cannot start: listing the store failed: %s", strerror(-r));
        return r;
    }
    for (size_t i = 0; i < m->nctrls; i++) {
        struct kf_ctrl *c = m->ctrls[i];

        c->nthreads = c->ops->workers > 0 ? c->ops->workers : 1;
        c->threads = kf_xcalloc((size_t)c->nthreads, sizeof(*c->threads));
        c->next_resync_ns = kf_mono_ns() + (uint64_t)KF_MAX(c->ops->resync_ms, 0) * 1000000ull;
        for (int t = 0; t < c->nthreads; t++)
            if (pthread_create(&c->threads[t], NULL, worker_main, c) != 0)
                kf_abort("cannot start a worker thread for controller %s", c->ops->name);
    }
    if (pthread_create(&m->ticker, NULL, ticker_main, m) != 0)
        kf_abort("cannot start the controller ticker thread");
    kf_log_info("started %zu controllers over %zu informers", m->nctrls, m->ninformers);
    return 0;
}

void kf_ctrl_manager_stop(struct kf_ctrl_manager *m)
{
    if (!m->started || m->stopping)
        return;
    __atomic_store_n(&m->stopping, true, __ATOMIC_RELEASE);
    for (size_t i = 0; i < m->ninformers; i++)
        kf_informer_stop(m->informers[i]);
    for (size_t i = 0; i < m->nctrls; i++) {
        struct kf_ctrl *c = m->ctrls[i];

        kf_workqueue_shutdown(c->q);
        for (int t = 0; t < c->nthreads; t++)
            pthread_join(c->threads[t], NULL);
    }
    pthread_join(m->ticker, NULL);
}

void kf_ctrl_manager_free(struct kf_ctrl_manager *m)
{
    if (!m)
        return;
    kf_ctrl_manager_stop(m);
    for (size_t i = 0; i < m->nctrls; i++) {
        if (m->ctrls[i]->fini)
            m->ctrls[i]->fini(m->ctrls[i]->data);
        kf_workqueue_free(m->ctrls[i]->q);
        free(m->ctrls[i]->threads);
        free(m->ctrls[i]);
    }
    free(m->ctrls);
    for (size_t i = 0; i < m->ninformers; i++)
        kf_informer_free(m->informers[i]);
    free(m->informers);
    for (size_t i = 0; i < m->nallocs; i++)
        free(m->allocs[i]);
    free(m->allocs);
    for (size_t i = 0; i < m->nshared; i++) {
        m->shared[i].release(m->shared[i].value);
        free(m->shared[i].key);
    }
    free(m->shared);
    free(m);
}

void kf_ctrl_set_fini(struct kf_ctrl *c, void (*fini)(void *data))
{
    c->fini = fini;
}

void *kf_ctrl_manager_alloc(struct kf_ctrl_manager *m, size_t size)
{
    void *p = kf_xcalloc(1, size);

    KF_GROW(m->allocs, m->alloc_allocs, m->nallocs);
    m->allocs[m->nallocs++] = p;
    return p;
}

void *kf_ctrl_manager_shared(struct kf_ctrl_manager *m, const char *key, void *(*make)(void),
                             void (*release)(void *value))
{
    for (size_t i = 0; i < m->nshared; i++)
        if (strcmp(m->shared[i].key, key) == 0)
            return m->shared[i].value;
    KF_GROW(m->shared, m->alloc_shared, m->nshared);
    m->shared[m->nshared] = (struct shared){ kf_xstrdup(key), make(), release };
    return m->shared[m->nshared++].value;
}

int kf_ctrl_manager_wait_idle(struct kf_ctrl_manager *m, int timeout_ms)
{
    uint64_t deadline =
        timeout_ms < 0 ? UINT64_MAX : kf_mono_ns() + (uint64_t)timeout_ms * 1000000ull;

    /* Idle means: every informer has applied everything the store has, and
     * then every queue drained. Loop because a reconcile may write, which
     * wakes informers, which fill queues again. */
    for (;;) {
        bool idle = true;
        int64_t rev = kf_store_rev(m->store);

        for (size_t i = 0; i < m->ninformers && idle; i++)
            if (kf_informer_rev(m->informers[i]) < rev)
                idle = false;
        for (size_t i = 0; i < m->nctrls && idle; i++)
            if (kf_workqueue_len(m->ctrls[i]->q) || kf_workqueue_busy(m->ctrls[i]->q))
                idle = false;
        if (idle && kf_store_rev(m->store) == rev)
            return 1;
        if (kf_mono_ns() >= deadline)
            return 0;
        {
            struct timespec ts = { 0, 2 * 1000000L };

            nanosleep(&ts, NULL);
        }
    }
}

void kf_ctrl_enqueue(struct kf_ctrl *c, const char *name)
{
    kf_workqueue_add(c->q, name);
}

void kf_ctrl_enqueue_after(struct kf_ctrl *c, const char *name, int64_t delay_ms)
{
    kf_workqueue_add_after(c->q, name, delay_ms);
}

void kf_ctrl_enqueue_folded(struct kf_ctrl *c, const char *name, int64_t delay_ms, int64_t max_ms)
{
    kf_workqueue_add_folded(c->q, name, delay_ms, max_ms);
}

void *kf_ctrl_data(struct kf_ctrl *c)
{
    return c->data;
}

const char *kf_ctrl_name(struct kf_ctrl *c)
{
    return c->ops->name;
}

struct kf_ctrl_manager *kf_ctrl_manager_of(struct kf_ctrl *c)
{
    return c->m;
}

struct kf_registry *kf_ctrl_registry(struct kf_ctrl *c)
{
    return c->m->reg;
}

struct kf_informer *kf_ctrl_primary(struct kf_ctrl *c)
{
    return c->primary;
}

void kf_ctrl_stats(struct kf_ctrl *c, struct kf_ctrl_stats *ret)
{
    ret->reconciles = __atomic_load_n(&c->reconciles, __ATOMIC_RELAXED);
    ret->errors = __atomic_load_n(&c->errors, __ATOMIC_RELAXED);
    ret->requeues = __atomic_load_n(&c->requeues, __ATOMIC_RELAXED);
    ret->reconcile_ns_total = __atomic_load_n(&c->ns_total, __ATOMIC_RELAXED);
    ret->reconcile_ns_max = __atomic_load_n(&c->ns_max, __ATOMIC_RELAXED);
    ret->queue_depth = kf_workqueue_len(c->q);
}

void kf_ctrl_manager_foreach(struct kf_ctrl_manager *m, void (*fn)(struct kf_ctrl *c, void *arg),
                             void *arg)
{
    for (size_t i = 0; i < m->nctrls; i++)
        fn(m->ctrls[i], arg);
}

void kf_ctrl_manager_foreach_informer(struct kf_ctrl_manager *m,
                                      void (*fn)(struct kf_informer *inf, void *arg), void *arg)
{
    for (size_t i = 0; i < m->ninformers; i++)
        fn(m->informers[i], arg);
}
