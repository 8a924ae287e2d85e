/* obs-receiver-dedup.c: what the adapter has delivered, so that it
 * delivers each state of an alert group once and in order.
 *
 * Alertmanager in HA mode is at-least-once: both peers may send the same
 * notification, and a peer whose view lagged can send a firing after the
 * resolve that ended it (reproduced in reference §2.5: resolved, stale
 * firing +5 s, duplicate resolved +20 s). Two kinds of entries answer
 * that, in one bounded hash table:
 *
 *   key    the notification's idempotency key (receiver, group, status,
 *          sorted fingerprint/status pairs) -> delivered at / in flight
 *   alert  (receiver, group, fingerprint) -> the status last delivered
 *          and the endsAt of the last delivered resolve
 *
 * A firing whose startsAt is not after that endsAt is stale. A key seen
 * within the window is a duplicate unless an alert in it changed status
 * since (a genuine re-fire after a resolve has the same fingerprints, so
 * the key alone would swallow it). The table keeps 2 x capacity entries
 * and forgets the oldest first (a ring of insertion order); entries are
 * never deleted otherwise, so the ring and the table stay in step.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

enum { DD_KEY = 1, DD_ALERT = 2 };
/* DD_KEY status */
enum { KEY_RELEASED = 0, KEY_IN_FLIGHT = 1, KEY_DELIVERED = 2 };
/* DD_ALERT status */
enum { ALERT_FIRING = 1, ALERT_RESOLVED = 2 };

#define DD_HEADER   "# kfleet alert receiver memory v1\n"
#define DD_MAX_FILE (64u << 20)

struct dd_entry {
    uint8_t key[16];
    char hex[33]; /* the key in hex: its name in the map */
    uint8_t kind;
    uint8_t status;
    int64_t at_ms;
    int64_t resolved_ends_ms;
};

struct kf_obs_dedup {
    pthread_mutex_t lock;
    int64_t window_ms;
    size_t max_entries;    /* 2 x capacity */
    struct kf_smap by_key; /* hex key (borrowed from the entry) -> entry in ring */
    struct dd_entry *ring; /* the entries in insertion order, max_entries long */
    size_t ring_head, ring_len;
};

struct kf_obs_dedup *kf_obs_dedup_new(size_t capacity, int64_t window_ms)
{
    struct kf_obs_dedup *d = kf_xcalloc(1, sizeof(*d));

    if (!capacity)
        capacity = 10000;
    d->max_entries = 2 * capacity;
    kf_smap_init_borrowed(&d->by_key);
    d->ring = kf_xcalloc(d->max_entries, sizeof(*d->ring));
    d->window_ms = window_ms > 0 ? window_ms : 600000;
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

void kf_obs_dedup_free(struct kf_obs_dedup *d)
{
    if (!d)
        return;
    pthread_mutex_destroy(&d->lock);
    kf_smap_release(&d->by_key);
    free(d->ring);
    free(d);
}

size_t kf_obs_dedup_size(const struct kf_obs_dedup *d)
{
    return d->ring_len;
}

static void hex16(const uint8_t *k, char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", k[i]);
}

static struct dd_entry *find(struct kf_obs_dedup *d, const uint8_t key[16])
{
    char hex[33];

    hex16(key, hex);
    return kf_smap_get(&d->by_key, hex);
}

/* The entry for key, a new one (the oldest forgotten when full) if none. */
static struct dd_entry *insert(struct kf_obs_dedup *d, const uint8_t key[16], int kind)
{
    struct dd_entry *e = find(d, key);

    if (e)
        return e;
    if (d->ring_len == d->max_entries) {
        kf_smap_remove(&d->by_key, d->ring[d->ring_head].hex);
        d->ring_head = (d->ring_head + 1) % d->max_entries;
        d->ring_len--;
    }
    e = &d->ring[(d->ring_head + d->ring_len) % d->max_entries];
    d->ring_len++;
    memset(e, 0, sizeof(*e));
    memcpy(e->key, key, 16);
    hex16(key, e->hex);
    e->kind = (uint8_t)kind;
    kf_smap_put(&d->by_key, e->hex, e);
    return e;
}

static void alert_digest(const struct kf_obs_notification *n, const struct kf_obs_alert *a,
                         uint8_t out[16])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx)
        kf_abort("out of memory for a digest context");
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, "alert", 6);
    EVP_DigestUpdate(ctx, n->receiver, strlen(n->receiver) + 1);
    EVP_DigestUpdate(ctx, n->group_key, strlen(n->group_key) + 1);
    EVP_DigestUpdate(ctx, a->fingerprint, strlen(a->fingerprint) + 1);
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    memcpy(out, md, 16);
}

enum kf_obs_verdict kf_obs_dedup_claim(struct kf_obs_dedup *d, struct kf_obs_notification *n,
                                       int64_t now_ms)
{
    enum kf_obs_verdict verdict = KF_OBS_DELIVER;
    uint8_t key[16], ak[16];
    struct dd_entry *k;
    size_t live = 0;
    bool changed = false;

    kf_obs_notification_digest(n, key);
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < n->n_alerts; i++) {
        struct kf_obs_alert *a = &n->alerts[i];
        struct dd_entry *st;

        alert_digest(n, a, ak);
        st = find(d, ak);
        a->stale =
            a->firing && st && st->resolved_ends_ms && a->starts_at_ms <= st->resolved_ends_ms;
        if (a->stale)
            continue;
        live++;
        if (!st || st->status != (a->firing ? ALERT_FIRING : ALERT_RESOLVED))
            changed = true;
    }
    if (!live) {
        verdict = KF_OBS_STALE;
        goto unlock;
    }
    k = find(d, key);
    if (k && k->status == KEY_IN_FLIGHT && now_ms - k->at_ms < d->window_ms) {
        verdict = KF_OBS_DUPLICATE;
        goto unlock;
    }
    if (k && k->status == KEY_DELIVERED && now_ms - k->at_ms < d->window_ms && !changed) {
        verdict = KF_OBS_DUPLICATE;
        goto unlock;
    }
    k = insert(d, key, DD_KEY);
    k->status = KEY_IN_FLIGHT;
    k->at_ms = now_ms;
unlock:
    pthread_mutex_unlock(&d->lock);
    return verdict;
}

void kf_obs_dedup_done(struct kf_obs_dedup *d, const struct kf_obs_notification *n, bool delivered,
                       int64_t now_ms)
{
    uint8_t key[16], ak[16];
    struct dd_entry *k;

    kf_obs_notification_digest(n, key);
    pthread_mutex_lock(&d->lock);
    if (!delivered) {
        k = find(d, key);
        if (k && k->status == KEY_IN_FLIGHT)
            k->status = KEY_RELEASED;
        goto unlock;
    }
    k = insert(d, key, DD_KEY);
    k->status = KEY_DELIVERED;
    k->at_ms = now_ms;
    for (size_t i = 0; i < n->n_alerts; i++) {
        const struct kf_obs_alert *a = &n->alerts[i];
        struct dd_entry *st;

        if (a->stale)
            continue;
        alert_digest(n, a, ak);
        st = insert(d, ak, DD_ALERT);
        st->status = a->firing ? ALERT_FIRING : ALERT_RESOLVED;
        st->at_ms = now_ms;
        if (!a->firing) {
            /* a resolve without endsAt ends now */
            int64_t ends = a->ends_at_ms ? a->ends_at_ms : now_ms;

            st->resolved_ends_ms = KF_MAX(st->resolved_ends_ms, ends);
        }
    }
unlock:
    pthread_mutex_unlock(&d->lock);
}

int kf_obs_dedup_save(struct kf_obs_dedup *d, const char *path, struct kf_strbuf *err)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    int r;

    pthread_mutex_lock(&d->lock);
    kf_strbuf_addstr(&sb, DD_HEADER);
    for (size_t i = 0; i < d->ring_len; i++) {
        const struct dd_entry *e = &d->ring[(d->ring_head + i) % d->max_entries];
        const char *hex = e->hex;

        if (e->kind == DD_KEY && e->status == KEY_DELIVERED)
            kf_strbuf_addf(&sb, "K %s %" PRId64 "\n", hex, e->at_ms);
        else if (e->kind == DD_ALERT)
            kf_strbuf_addf(&sb, "A %s %c %" PRId64 " %" PRId64 "\n", hex,
                           e->status == ALERT_FIRING ? 'F' : 'R', e->at_ms, e->resolved_ends_ms);
    }
    pthread_mutex_unlock(&d->lock);
    r = kf_write_file_atomic(path, sb.buf, sb.len, 0600, true, err);
    kf_strbuf_release(&sb);
    return r;
}

static int unhex16(const char *s, uint8_t out[16])
{
    for (int i = 0; i < 16; i++) {
        int v = 0;

        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + j];

            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= c - '0';
            else if (c >= 'a' && c <= 'f')
                v |= c - 'a' + 10;
            else
                return -EINVAL;
        }
        out[i] = (uint8_t)v;
    }
    return s[32] == ' ' ? 0 : -EINVAL;
}

struct dd_line {
    uint8_t key[16];
    uint8_t kind, status;
    int64_t at_ms, ends_ms;
};

static int parse_line(char *line, struct dd_line *ret)
{
    char *save = NULL, *tok[5];
    int n = 0;

    if ((line[0] != 'K' && line[0] != 'A') || line[1] != ' ' || strlen(line) < 35)
        return -EINVAL;
    if (unhex16(line + 2, ret->key) < 0)
        return -EINVAL;
    for (char *t = strtok_r(line + 35, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == 5)
            return -EINVAL;
        tok[n++] = t;
    }
    ret->kind = line[0] == 'K' ? DD_KEY : DD_ALERT;
    if (ret->kind == DD_KEY) {
        ret->status = KEY_DELIVERED;
        ret->ends_ms = 0;
        return n == 1 ? kf_parse_int64(tok[0], &ret->at_ms) : -EINVAL;
    }
    if (n != 3 || (strcmp(tok[0], "F") != 0 && strcmp(tok[0], "R") != 0))
        return -EINVAL;
    ret->status = tok[0][0] == 'F' ? ALERT_FIRING : ALERT_RESOLVED;
    if (kf_parse_int64(tok[1], &ret->at_ms) < 0 || kf_parse_int64(tok[2], &ret->ends_ms) < 0)
        return -EINVAL;
    return 0;
}

int kf_obs_dedup_load(struct kf_obs_dedup *d, const char *path, struct kf_strbuf *err)
{
    FILE *f = fopen(path, "re");
    struct dd_line *lines = NULL;
    size_t n = 0, alloc = 0, lineno = 0, total = 0;
    char buf[160];
    int r = 0;

    if (!f)
        return kf_err(err, -errno, "cannot open \"%s\": %s", path, strerror(errno));
    while (fgets(buf, sizeof(buf), f)) {
        size_t len = strlen(buf);

        lineno++;
        total += len;
        if (total > DD_MAX_FILE || (len && buf[len - 1] != '\n')) {
            r = kf_err(err, -EBADMSG, "\"%s\" line %zu: too long", path, lineno);
            goto close_file;
        }
        if (len == 0) {
            /* a NUL byte first on the line: not a file we wrote */
            r = kf_err(err, -EBADMSG, "\"%s\" line %zu is malformed", path, lineno);
            goto close_file;
        }
        buf[len - 1] = '\0';
        if (lineno == 1) {
            if (strncmp(buf, DD_HEADER, strlen(DD_HEADER) - 1) != 0) {
                r = kf_err(err, -EBADMSG, "\"%s\" is not a kfleet alert receiver memory", path);
                goto close_file;
            }
            continue;
        }
        KF_GROW(lines, alloc, n + 1);
        if (parse_line(buf, &lines[n]) < 0) {
            r = kf_err(err, -EBADMSG, "\"%s\" line %zu is malformed", path, lineno);
            goto close_file;
        }
        n++;
    }
    if (ferror(f)) {
        r = kf_err(err, -EIO, "cannot read \"%s\"", path);
        goto close_file;
    }
    if (lineno == 0) {
        r = kf_err(err, -EBADMSG, "\"%s\" is empty", path);
        goto close_file;
    }
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < n; i++) {
        struct dd_entry *e = insert(d, lines[i].key, lines[i].kind);

        e->kind = lines[i].kind;
        e->status = lines[i].status;
        e->at_ms = lines[i].at_ms;
        e->resolved_ends_ms = lines[i].ends_ms;
    }
    pthread_mutex_unlock(&d->lock);
close_file:
    free(lines);
    fclose(f);
    return r;
}
