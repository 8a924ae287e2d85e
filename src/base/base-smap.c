/* base-smap.c: string-keyed hash map (contract in kfleet/smap.h). */
#include <stdlib.h>
#include <string.h>

#include "kfleet/smap.h"

static char tomb_marker;
#define KF_SMAP_TOMB (&tomb_marker)

uint64_t kf_hash_str(const char *s)
{
    /* FNV-1a, then a final mix so that linear probing sees spread bits. */
    uint64_t h = kf_fnv1a_str(KF_FNV1A_BASIS_V0, s);

    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void kf_smap_init(struct kf_smap *m)
{
    *m = (struct kf_smap)KF_SMAP_INIT;
}

void kf_smap_init_borrowed(struct kf_smap *m)
{
    *m = (struct kf_smap){ .borrowed_keys = true };
}

void kf_smap_release(struct kf_smap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap && !m->borrowed_keys; i++)
        if (m->slots[i].key && m->slots[i].key != KF_SMAP_TOMB)
            free(m->slots[i].key);
    free(m->slots);
    *m = (struct kf_smap){ .borrowed_keys = m->borrowed_keys };
}

static size_t find_slot(const struct kf_smap *m, const char *key, uint64_t h, bool *found)
{
    size_t mask = m->cap - 1, i = (size_t)h & mask, tomb = SIZE_MAX;

    for (;;) {
        struct kf_smap_slot *s = &m->slots[i];

        if (!s->key) {
            *found = false;
            return tomb != SIZE_MAX ? tomb : i;
        }
        if (s->key == KF_SMAP_TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (s->hash == h && strcmp(s->key, key) == 0) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void rehash(struct kf_smap *m, size_t cap)
{
    struct kf_smap_slot *old = m->slots;
    size_t old_cap = m->cap;

    m->slots = kf_xcalloc(cap, sizeof(*m->slots));
    m->cap = cap;
    m->used = m->n;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key && old[i].key != KF_SMAP_TOMB) {
            size_t j = (size_t)old[i].hash & (cap - 1);

            while (m->slots[j].key)
                j = (j + 1) & (cap - 1);
            m->slots[j] = old[i];
        }
    }
    free(old);
}

void *kf_smap_put(struct kf_smap *m, const char *key, void *value)
{
    uint64_t h = kf_hash_str(key);
    bool found;
    size_t i;

    if (m->cap == 0 || (m->used + 1) * 10 > m->cap * 7)
        rehash(m, m->cap ? (m->n * 2 + 1 > m->cap / 2 ? m->cap * 2 : m->cap) : 16);
    i = find_slot(m, key, h, &found);
    if (found) {
        void *prev = m->slots[i].value;

        if (m->borrowed_keys)
            m->slots[i].key = (char *)key; /* the new value's name */
        m->slots[i].value = value;
        return prev;
    }
    if (!m->slots[i].key)
        m->used++;
    m->slots[i].key = m->borrowed_keys ? (char *)key : kf_xstrdup(key);
    m->slots[i].hash = h;
    m->slots[i].value = value;
    m->n++;
    return NULL;
}

void *kf_smap_get(const struct kf_smap *m, const char *key)
{
    bool found;
    size_t i;

    if (!m->n)
        return NULL;
    i = find_slot(m, key, kf_hash_str(key), &found);
    return found ? m->slots[i].value : NULL;
}

bool kf_smap_contains(const struct kf_smap *m, const char *key)
{
    bool found = false;

    if (m->n)
        find_slot(m, key, kf_hash_str(key), &found);
    return found;
}

void *kf_smap_remove(struct kf_smap *m, const char *key)
{
    bool found;
    size_t i;
    void *v;

    if (!m->n)
        return NULL;
    i = find_slot(m, key, kf_hash_str(key), &found);
    if (!found)
        return NULL;
    v = m->slots[i].value;
    if (!m->borrowed_keys)
        free(m->slots[i].key);
    m->slots[i].key = KF_SMAP_TOMB;
    m->slots[i].value = NULL;
    m->n--;
    return v;
}

bool kf_smap_next(const struct kf_smap *m, size_t *iter, const char **ret_key, void **ret_value)
{
    for (; *iter < m->cap; (*iter)++) {
        struct kf_smap_slot *s = &m->slots[*iter];

        if (s->key && s->key != KF_SMAP_TOMB) {
            if (ret_key)
                *ret_key = s->key;
            if (ret_value)
                *ret_value = s->value;
            (*iter)++;
            return true;
        }
    }
    return false;
}
