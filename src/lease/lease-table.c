/* lease-table.c: the sharded in-memory lease table for host heartbeats
 * (contract in kfleet/lease.h). */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "kfleet/lease.h"
#include "kfleet/smap.h"

#define N_SHARDS 64

struct lease {
    int64_t last_ms;  /* the last renewal, local or reported by another replica */
    int64_t local_ms; /* the last local renewal (0: none) */
    bool alive;
};

/* min_alive_ms is a lower bound of last_ms over the shard's alive leases
 * (INT64_MAX: none alive): a renewal only raises a lease's last_ms, and a
 * lease that comes to life lowers the bound to its own. An expiry sweep
 * skips a shard whose bound is within the grace (no lease of it can have
 * expired) and makes the bound exact again when it does scan one. At rest
 * (hosts beating every 10 s, a 40 s grace) a shard is scanned about once in
 * 30 s instead of at every sweep. */
struct shard {
    pthread_mutex_t lock;
    struct kf_smap leases; /* name -> struct lease * */
    int64_t min_alive_ms;
} __attribute__((aligned(64)));

struct kf_lease_table {
    struct shard shards[N_SHARDS];
    int64_t started_ms;
};

struct kf_lease_table *kf_lease_table_new(int64_t now_ms)
{
    struct kf_lease_table *t = kf_xcalloc(1, sizeof(*t));

    for (size_t i = 0; i < N_SHARDS; i++) {
        pthread_mutex_init(&t->shards[i].lock, NULL);
        t->shards[i].min_alive_ms = INT64_MAX;
    }
    t->started_ms = now_ms;
    return t;
}

void kf_lease_table_free(struct kf_lease_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < N_SHARDS; i++) {
        size_t it = 0;
        void *v;

        while (kf_smap_next(&t->shards[i].leases, &it, NULL, &v))
            free(v);
        kf_smap_release(&t->shards[i].leases);
        pthread_mutex_destroy(&t->shards[i].lock);
    }
    free(t);
}

int64_t kf_lease_table_started_ms(const struct kf_lease_table *t)
{
    return t->started_ms;
}

static struct shard *shard_of(struct kf_lease_table *t, const char *name)
{
    return &t->shards[kf_hash_str(name) % N_SHARDS];
}

static int renew(struct kf_lease_table *t, const char *name, int64_t at_ms, bool local)
{
    struct shard *s;
    struct lease *l;
    int born = 0;
    size_t len;

    if (!name || (len = strnlen(name, KF_LEASE_MAX_NAME + 1)) == 0 || len > KF_LEASE_MAX_NAME)
        return -EINVAL;
    s = shard_of(t, name);
    pthread_mutex_lock(&s->lock);
    l = kf_smap_get(&s->leases, name);
    if (!l) {
        l = kf_xcalloc(1, sizeof(*l));
        kf_smap_put(&s->leases, name, l);
    }
    /* A local heartbeat is news whenever it comes; a reported renewal only
     * when it is newer than what we know (reports repeat a host for as
     * long as it beats elsewhere, and may lag behind an expiry). */
    if (!l->alive && (local || at_ms > l->last_ms)) {
        l->alive = true;
        born = 1;
    }
    if (at_ms > l->last_ms)
        l->last_ms = at_ms;
    if (born && l->last_ms < s->min_alive_ms)
        s->min_alive_ms = l->last_ms;
    if (local && at_ms > l->local_ms)
        l->local_ms = at_ms;
    pthread_mutex_unlock(&s->lock);
    return born;
}

int kf_lease_renew(struct kf_lease_table *t, const char *name, int64_t now_ms)
{
    return renew(t, name, now_ms, true);
}

int kf_lease_renew_remote(struct kf_lease_table *t, const char *name, int64_t at_ms)
{
    return renew(t, name, at_ms, false);
}

size_t kf_lease_local_since(struct kf_lease_table *t, int64_t since_ms,
                            void (*fn)(const char *name, int64_t local_ms, void *arg), void *arg)
{
    size_t n = 0;

    for (size_t i = 0; i < N_SHARDS; i++) {
        struct shard *s = &t->shards[i];
        size_t it = 0;
        const char *key;
        void *v;

        pthread_mutex_lock(&s->lock);
        while (kf_smap_next(&s->leases, &it, &key, &v)) {
            const struct lease *l = v;

            if (l->local_ms > 0 && l->local_ms >= since_ms) {
                fn(key, l->local_ms, arg);
                n++;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

size_t kf_lease_expire(struct kf_lease_table *t, int64_t now_ms, int64_t grace_ms,
                       char ***ret_names)
{
    char **names = NULL;
    size_t n = 0, alloc = 0;

    for (size_t i = 0; i < N_SHARDS; i++) {
        struct shard *s = &t->shards[i];
        size_t it = 0;
        const char *key;
        void *v;

        int64_t min_alive = INT64_MAX;

        pthread_mutex_lock(&s->lock);
        if (s->min_alive_ms == INT64_MAX || now_ms - s->min_alive_ms <= grace_ms) {
            pthread_mutex_unlock(&s->lock); /* nothing of this shard is due */
            continue;
        }
        while (kf_smap_next(&s->leases, &it, &key, &v)) {
            struct lease *l = v;

            if (l->alive && now_ms - l->last_ms > grace_ms) {
                l->alive = false;
                KF_GROW(names, alloc, n);
                names[n++] = kf_xstrdup(key);
            } else if (l->alive && l->last_ms < min_alive) {
                min_alive = l->last_ms;
            }
        }
        s->min_alive_ms = min_alive;
        pthread_mutex_unlock(&s->lock);
    }
    if (n)
        qsort(names, n, sizeof(*names), kf_strp_cmp);
    *ret_names = names;
    return n;
}

/* One of name's renewal times, read under its shard's lock: the last local
 * one if local, else the last from any source; 0 if name has no lease. */
static int64_t lease_renewed_ms(struct kf_lease_table *t, const char *name, bool local)
{
    struct shard *s = shard_of(t, name);
    struct lease *l;
    int64_t last;

    pthread_mutex_lock(&s->lock);
    l = kf_smap_get(&s->leases, name);
    last = !l ? 0 : local ? l->local_ms : l->last_ms;
    pthread_mutex_unlock(&s->lock);
    return last;
}

int64_t kf_lease_last(struct kf_lease_table *t, const char *name)
{
    return lease_renewed_ms(t, name, false);
}

int64_t kf_lease_local_last(struct kf_lease_table *t, const char *name)
{
    return lease_renewed_ms(t, name, true);
}

bool kf_lease_alive(struct kf_lease_table *t, const char *name, int64_t now_ms, int64_t grace_ms)
{
    int64_t last = kf_lease_last(t, name);

    return last > 0 && now_ms - last <= grace_ms;
}

void kf_lease_forget(struct kf_lease_table *t, const char *name)
{
    struct shard *s = shard_of(t, name);

    pthread_mutex_lock(&s->lock);
    free(kf_smap_remove(&s->leases, name));
    pthread_mutex_unlock(&s->lock);
}

size_t kf_lease_count(struct kf_lease_table *t)
{
    size_t n = 0;

    for (size_t i = 0; i < N_SHARDS; i++) {
        pthread_mutex_lock(&t->shards[i].lock);
        n += kf_smap_count(&t->shards[i].leases);
        pthread_mutex_unlock(&t->shards[i].lock);
    }
    return n;
}

void kf_lease_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
