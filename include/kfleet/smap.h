/* smap.h: a hash map from strings to pointers.
 *
 * Keys are copied, unless the map was made with kf_smap_init_borrowed;
 * values are borrowed (the map never frees them: iterate and free before
 * kf_smap_release if they are owned). Open addressing with linear probing
 * and tombstones; grows at 70 % load. Not thread-safe.
 */
#ifndef KF_SMAP_H
#define KF_SMAP_H

#include "kfleet/base.h"

struct kf_smap_slot {
    char *key; /* NULL: empty; KF_SMAP_TOMB: deleted */
    uint64_t hash;
    void *value;
};

struct kf_smap {
    struct kf_smap_slot *slots;
    size_t cap;         /* a power of two, or 0 */
    size_t n;           /* live entries */
    size_t used;        /* live + tombstones */
    bool borrowed_keys; /* keys are the caller's (kf_smap_init_borrowed) */
};

#define KF_SMAP_INIT \
    {                \
        0            \
    }

void kf_smap_init(struct kf_smap *m);
/* A map that keeps the caller's key pointers instead of copies: each key
 * must stay valid and unchanged while its entry is in the map (the name
 * inside the value, typically; a put that replaces a value keeps the new
 * key pointer). Saves a copy of every key. */
void kf_smap_init_borrowed(struct kf_smap *m);
void kf_smap_release(struct kf_smap *m);
/* Sets key to value; returns the previous value or NULL. */
void *kf_smap_put(struct kf_smap *m, const char *key, void *value);
void *kf_smap_get(const struct kf_smap *m, const char *key);
bool kf_smap_contains(const struct kf_smap *m, const char *key);
/* Removes key; returns its value or NULL. */
void *kf_smap_remove(struct kf_smap *m, const char *key);
static inline size_t kf_smap_count(const struct kf_smap *m)
{
    return m->n;
}

/* Iteration: for (size_t i = 0; kf_smap_next(m, &i, &key, &value);) ...
 * Do not modify the map while iterating. */
bool kf_smap_next(const struct kf_smap *m, size_t *iter, const char **ret_key, void **ret_value);

uint64_t kf_hash_str(const char *s);

#endif
