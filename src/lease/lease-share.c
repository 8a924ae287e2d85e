/* lease-share.c: host heartbeats shared between kfleetd replicas
 * through the store (contract, key layout and value format in
 * kfleet/lease-share.h; the design and its guarantees in
 * docs/internals/replicas.md).
 *
 * One object per replica does both halves in kf_lease_share_step:
 *   - the WRITER keeps the names of its report in one map, each with two
 *     facts: "in the base written last" and the round it was last seen
 *     renewed locally. A round marks the names renewed within the window,
 *     derives the delta against the base (added: seen, not in the base;
 *     removed: in the base, not seen), and writes a new base instead when
 *     the deltas written since the last one add up to more than the base
 *     (rent or buy: a changing set then costs at most about twice what the
 *     best choice would) or a delta passes KF_LEASE_SHARE_MAX_DELTA;
 *   - the READER follows the prefix with a store watch, keeps per replica
 *     the base it loaded (sorted names) and the last tick's delta, and
 *     renews the set after every tick; replicas that stop are renewed once
 *     more at "now" and dropped.
 * The thread (kf_lease_share_start) only calls the step, on a timer and
 * when the watch has news.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kfleet/error.h"
#include "kfleet/lease-share.h"
#include "kfleet/lease.h"
#include "kfleet/log.h"
#include "kfleet/smap.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

KF_LOG_MODULE(heartbeats);

#define MAGIC "KFHB/1"
/* A replica silent this long (its interval) is gone. */
#define PEER_STALE_MS(interval) (3 * (interval) + 1000)
/* Window and interval a report may claim (a day: anything beyond is junk). */
#define MAX_PERIOD_MS (24LL * 3600 * 1000)

/* --- the value format ---------------------------------------------------- */

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > KF_LEASE_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

size_t kf_lease_names_encode(struct kf_strbuf *out, char *const *names, size_t n)
{
    size_t before = out->len, prev_len = 0;
    const char *prev = "";

    for (size_t i = 0; i < n; i++) {
        const char *s = names[i];
        size_t len = strlen(s), k = 0;
        char num[8];
        int w;

        while (k < len && k < prev_len && s[k] == prev[k])
            k++;
        w = snprintf(num, sizeof(num), "%zu ", k);
        kf_strbuf_add(out, num, (size_t)w);
        kf_strbuf_add(out, s + k, len - k);
        kf_strbuf_addch(out, '\n');
        prev = s;
        prev_len = len;
    }
    return out->len - before;
}

struct cursor {
    const char *p, *end;
};

/* The next line without its '\n' (which must be there). */
static bool next_line(struct cursor *c, const char **ret, size_t *ret_len)
{
    const char *nl = c->p < c->end ? memchr(c->p, '\n', (size_t)(c->end - c->p)) : NULL;

    if (!nl)
        return false;
    *ret = c->p;
    *ret_len = (size_t)(nl - c->p);
    c->p = nl + 1;
    return true;
}

static int parse_u64(const char *s, size_t n, uint64_t *ret)
{
    char buf[24];

    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return kf_parse_uint64(buf, ret);
}

/* One front-coded line ("SHARED REST") after prev into name: the name's
 * length, or 0 when the line is not a name in order after prev. */
static size_t front_coded(const char *line, size_t len, const char *prev, size_t prev_len,
                          bool first, char name[KF_LEASE_MAX_NAME + 1])
{
    const char *sp = memchr(line, ' ', len);
    size_t rest;
    uint64_t shared;

    if (!sp || parse_u64(line, (size_t)(sp - line), &shared) < 0 || shared > prev_len)
        return 0;
    rest = len - (size_t)(sp - line) - 1;
    if (rest == 0 || shared + rest > KF_LEASE_MAX_NAME)
        return 0;
    memcpy(name, prev, shared);
    memcpy(name + shared, sp + 1, rest);
    name[shared + rest] = '\0';
    if (!name_ok(name, shared + rest) || (!first && strcmp(name, prev) <= 0))
        return 0;
    return shared + rest;
}

/* count front-coded names into a new sorted array. */
static int parse_names(struct cursor *c, uint64_t count, char ***ret, size_t *ret_n,
                       struct kf_strbuf *err)
{
    char **names = NULL, prev[KF_LEASE_MAX_NAME + 1] = "";
    size_t prev_len = 0, n = 0;

    /* every line takes at least 3 bytes: a bound before allocating */
    if (count > (uint64_t)(c->end - c->p) / 3)
        return kf_err(err, -EBADMSG, "%" PRIu64 " names announced, the value is too short", count);
    if (count)
        names = kf_xcalloc((size_t)count, sizeof(*names));
    for (; n < count; n++) {
        const char *line;
        size_t len, name_len;
        char name[KF_LEASE_MAX_NAME + 1];

        if (!next_line(c, &line, &len)) {
            kf_err(err, -EBADMSG, "%" PRIu64 " names announced, %zu found", count, n);
            goto free_parsed;
        }
        name_len = front_coded(line, len, prev, prev_len, n == 0, name);
        if (!name_len) {
            kf_err(err, -EBADMSG, "name %zu: not a front-coded name in order", n + 1);
            goto free_parsed;
        }
        names[n] = kf_xstrdup(name);
        memcpy(prev, name, name_len + 1);
        prev_len = name_len;
    }
    *ret = names;
    *ret_n = n;
    return 0;
free_parsed:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return -EBADMSG;
}

static void free_names(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

void kf_lease_report_release(struct kf_lease_report *r)
{
    if (!r)
        return;
    free_names(r->names, r->n_names);
    free_names(r->removed, r->n_removed);
    memset(r, 0, sizeof(*r));
}

enum {
    F_BASE,
    F_SHARD,
    F_SHARDS,
    F_SEQ,
    F_WINDOW,
    F_INTERVAL,
    F_SPAN,
    F_ADDED,
    F_REMOVED,
    F_NAMES,
    N_FIELDS
};
static const char *const field_names[N_FIELDS] = {
    "base",        "shard",   "shards", "seq",     "window-ms",
    "interval-ms", "span-ms", "added",  "removed", "names",
};

/* The kinds: their word in the header and the fields each must have. */
static const struct {
    enum kf_lease_report_kind kind;
    const char *word;
    int fields[8];
    size_t n;
} kinds[] = {
    { KF_LEASE_REPORT_BASE, "base", { F_BASE, F_SHARD, F_SHARDS, F_NAMES }, 4 },
    { KF_LEASE_REPORT_SET,
      "set",
      { F_BASE, F_SHARDS, F_SEQ, F_WINDOW, F_INTERVAL, F_ADDED, F_REMOVED },
      7 },
    { KF_LEASE_REPORT_RECENT,
      "recent",
      { F_BASE, F_SEQ, F_WINDOW, F_INTERVAL, F_SPAN, F_NAMES },
      6 },
};

int kf_lease_report_parse(const char *buf, size_t len, struct kf_lease_report *ret,
                          struct kf_strbuf *err)
{
    struct cursor c = { buf, buf + len };
    struct kf_lease_report r = { 0 };
    uint64_t v[N_FIELDS] = { 0 };
    bool have[N_FIELDS] = { false };
    const char *line, *p, *end;
    size_t n, k;
    int rc;

    if (!next_line(&c, &line, &n) || n < sizeof(MAGIC) + 4 ||
        memcmp(line, MAGIC " ", sizeof(MAGIC)) != 0)
        return kf_err(err, -EBADMSG, "not a heartbeat report (no \"" MAGIC "\" header line)");
    p = line + sizeof(MAGIC);
    end = line + n;
    for (k = 0; k < KF_ARRAY_SIZE(kinds); k++) {
        size_t wl = strlen(kinds[k].word);

        if ((size_t)(end - p) > wl && memcmp(p, kinds[k].word, wl) == 0 && p[wl] == ' ')
            break;
    }
    if (k == KF_ARRAY_SIZE(kinds))
        return kf_err(err, -EBADMSG, "unknown report kind (want base, set or recent)");
    r.kind = kinds[k].kind;
    p += strlen(kinds[k].word) + 1;
    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p)), *eq;
        const char *tok_end = sp ? sp : end;
        size_t klen;
        int f;

        eq = memchr(p, '=', (size_t)(tok_end - p));
        if (!eq)
            return kf_err(err, -EBADMSG, "header: \"%.*s\" is not key=value",
                          (int)KF_MIN(tok_end - p, 40), p);
        klen = (size_t)(eq - p);
        for (f = 0; f < N_FIELDS; f++)
            if (strlen(field_names[f]) == klen && memcmp(field_names[f], p, klen) == 0)
                break;
        if (f == N_FIELDS || have[f])
            return kf_err(err, -EBADMSG, "header: unknown or repeated key \"%.*s\"",
                          (int)KF_MIN(klen, 40), p);
        have[f] = true;
        if (f == F_BASE) {
            size_t blen = (size_t)(tok_end - eq - 1);

            if (blen == 0 || blen >= sizeof(r.base) || !name_ok(eq + 1, blen))
                return kf_err(err, -EBADMSG, "header: bad base");
            memcpy(r.base, eq + 1, blen);
            r.base[blen] = '\0';
        } else if (parse_u64(eq + 1, (size_t)(tok_end - eq - 1), &v[f]) < 0) {
            return kf_err(err, -EBADMSG, "header: %s is not a number", field_names[f]);
        }
        p = sp ? sp + 1 : end;
    }
    for (size_t i = 0; i < kinds[k].n; i++)
        if (!have[kinds[k].fields[i]])
            return kf_err(err, -EBADMSG, "header: %s missing", field_names[kinds[k].fields[i]]);
    if (r.kind != KF_LEASE_REPORT_RECENT &&
        (v[F_SHARDS] < 1 || v[F_SHARDS] > KF_LEASE_SHARE_MAX_SHARDS || v[F_SHARD] >= v[F_SHARDS]))
        return kf_err(err, -EBADMSG, "header: shard %" PRIu64 " of %" PRIu64, v[F_SHARD],
                      v[F_SHARDS]);
    if (r.kind != KF_LEASE_REPORT_BASE &&
        (v[F_WINDOW] < 1 || v[F_WINDOW] > MAX_PERIOD_MS || v[F_INTERVAL] < 1 ||
         v[F_INTERVAL] > MAX_PERIOD_MS || v[F_SPAN] > MAX_PERIOD_MS))
        return kf_err(err, -EBADMSG,
                      "header: window-ms and interval-ms must be 1 to %lld, span-ms at most that",
                      MAX_PERIOD_MS);
    r.shard = (unsigned)v[F_SHARD];
    r.shards = (unsigned)v[F_SHARDS];
    r.seq = v[F_SEQ];
    r.window_ms = (int64_t)v[F_WINDOW];
    r.interval_ms = (int64_t)v[F_INTERVAL];
    r.span_ms = (int64_t)v[F_SPAN];
    rc = parse_names(&c, r.kind == KF_LEASE_REPORT_SET ? v[F_ADDED] : v[F_NAMES], &r.names,
                     &r.n_names, err);
    if (rc == 0 && r.kind == KF_LEASE_REPORT_SET)
        rc = parse_names(&c, v[F_REMOVED], &r.removed, &r.n_removed, err);
    if (rc == 0 && c.p != c.end)
        rc = kf_err(err, -EBADMSG, "%zu bytes after the last name", (size_t)(c.end - c.p));
    if (rc < 0) {
        kf_lease_report_release(&r);
        return -EBADMSG;
    }
    *ret = r;
    return 0;
}

/* --- the sharer ------------------------------------------------------------ */

struct peer {
    char *id;                              /* as in its keys (escaped) */
    char base[64];                         /* the base loaded ("": none) */
    char **base_names, **added, **removed; /* its set: base - removed + added */
    size_t n_base, n_added, n_removed;
    char **recent; /* its last recent tick's names (until a set tick) */
    size_t n_recent;
    int64_t window_ms, interval_ms;
    int64_t seen_ms; /* when its last tick was read */
};

/* What the writer knows of a name. */
struct entry {
    uint64_t round;   /* the last round it was renewed within the window */
    int64_t local_ms; /* its local renewal then */
    bool in_base;     /* in the base written last */
    bool alive;       /* in the set at the last round */
};

struct kf_lease_share {
    struct kf_store *store;
    struct kf_lease_table *leases;
    char *id; /* escaped */
    char *own_prefix, *tick_key;
    int64_t interval_ms, window_ms;
    struct kf_watch *watch;
    char *forget_prefix; /* NULL: none */
    struct kf_watch *forget_watch;

    /* the writer */
    char inc[17];           /* this run's incarnation */
    uint64_t gen;           /* the base generation written; 0: none yet */
    unsigned base_shards;   /* its shards */
    size_t base_bytes;      /* its encoded names */
    size_t base_names;      /* ... how many */
    size_t spent;           /* bytes of names in the ticks written since */
    struct kf_smap names;   /* name -> struct entry */
    uint64_t round;         /* 1, 2, ... */
    uint64_t seq;           /* ticks written */
    int64_t last_ok_ms;     /* when the last tick was written (0: never) */
    int64_t next_report_ms; /* 0: at the next step */

    /* the readers' side */
    struct kf_smap peers; /* escaped id -> struct peer */

    pthread_mutex_t lock; /* st, stop, pending */
    pthread_cond_t cond;
    struct kf_lease_share_stats st;
    bool stop, pending, started;
    pthread_t thread;
};

static void peer_free(struct peer *p)
{
    if (!p)
        return;
    free_names(p->base_names, p->n_base);
    free_names(p->added, p->n_added);
    free_names(p->removed, p->n_removed);
    free_names(p->recent, p->n_recent);
    free(p->id);
    free(p);
}

static void stat_add(struct kf_lease_share *sh, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&sh->lock);
    *field += n;
    pthread_mutex_unlock(&sh->lock);
}

/* Percent-encodes what is not [A-Za-z0-9._:-] (caller frees). */
static char *escape_id(const char *id)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;

    for (const char *p = id; *p; p++) {
        unsigned char ch = (unsigned char)*p;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '_' || ch == ':' || ch == '-')
            kf_strbuf_addch(&sb, (char)ch);
        else
            kf_strbuf_addf(&sb, "%%%02X", ch);
    }
    return kf_strbuf_detach(&sb, NULL);
}

static void wake(void *arg)
{
    struct kf_lease_share *sh = arg;

    pthread_mutex_lock(&sh->lock);
    sh->pending = true;
    pthread_cond_signal(&sh->cond);
    pthread_mutex_unlock(&sh->lock);
}

/* Deletes every key under prefix (best effort). */
static void delete_prefix(struct kf_store *s, const char *prefix, const char *first)
{
    struct kf_range q = { .prefix = prefix };
    struct kf_kv_list l = { 0 };

    if (first)
        kf_store_delete(s, first, KF_REV_ANY, NULL);
    if (kf_store_range(s, &q, &l) < 0)
        return;
    for (size_t i = 0; i < l.n; i++)
        kf_store_delete(s, l.items[i].key, l.items[i].mod_rev, NULL);
    kf_kv_list_release(&l);
}

int kf_lease_share_new(struct kf_store *s, struct kf_lease_table *t,
                       const struct kf_lease_share_config *c, struct kf_lease_share **ret,
                       struct kf_strbuf *err)
{
    struct kf_lease_share *sh;
    size_t idlen = c->replica_id ? strlen(c->replica_id) : 0;
    unsigned char rnd[8];
    pthread_condattr_t attr;
    int r;

    if (idlen == 0 || idlen >= KF_LEASE_SHARE_MAX_ID)
        return kf_err(err, -EINVAL, "replica id: 1 to %d bytes", KF_LEASE_SHARE_MAX_ID - 1);
    for (size_t i = 0; i < idlen; i++)
        if ((unsigned char)c->replica_id[i] < 0x20 || c->replica_id[i] == 0x7f)
            return kf_err(err, -EINVAL, "replica id: control characters");
    if (c->interval_ms < 1 || c->window_ms <= c->interval_ms || c->window_ms > MAX_PERIOD_MS)
        return kf_err(err, -EINVAL,
                      "heartbeat report interval %lld ms, window %lld ms: want 0 < interval < "
                      "window <= 1 day",
                      (long long)c->interval_ms, (long long)c->window_ms);
    sh = kf_xcalloc(1, sizeof(*sh));
    sh->store = s;
    sh->leases = t;
    sh->id = escape_id(c->replica_id);
    sh->own_prefix = kf_xasprintf("%s%s/", KF_LEASE_SHARE_PREFIX, sh->id);
    sh->tick_key = kf_xasprintf("%stick", sh->own_prefix);
    sh->interval_ms = c->interval_ms;
    sh->window_ms = c->window_ms;
    kf_random_bytes(rnd, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(sh->inc + 2 * i, 3, "%02x", rnd[i]);
    pthread_mutex_init(&sh->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&sh->cond, &attr);
    pthread_condattr_destroy(&attr);
    /* what a previous run with our id left: its base shards could outnumber ours */
    delete_prefix(s, sh->own_prefix, sh->tick_key);
    r = kf_watch_open(s, KF_LEASE_SHARE_PREFIX, 0, wake, sh, &sh->watch);
    if (r == 0 && c->forget_prefix && *c->forget_prefix) {
        sh->forget_prefix = kf_xstrdup(c->forget_prefix);
        r = kf_watch_open(s, sh->forget_prefix, 0, wake, sh, &sh->forget_watch);
    }
    if (r < 0) {
        kf_lease_share_free(sh);
        return kf_err(err, r, "cannot watch \"%s\": %s", KF_LEASE_SHARE_PREFIX, strerror(-r));
    }
    *ret = sh;
    return 0;
}

/* --- reading the others' reports --------------------------------------------- */

/* Renews every name of p's set at at_ms; returns how many. */
static size_t renew_set(struct kf_lease_share *sh, struct peer *p, int64_t at_ms)
{
    size_t j = 0, n = 0;

    for (size_t i = 0; i < p->n_base; i++) {
        int c = 1;

        while (j < p->n_removed && (c = strcmp(p->removed[j], p->base_names[i])) < 0)
            j++;
        if (j < p->n_removed && c == 0)
            continue;
        if (kf_lease_renew_remote(sh->leases, p->base_names[i], at_ms) >= 0)
            n++;
    }
    for (size_t i = 0; i < p->n_added; i++)
        if (kf_lease_renew_remote(sh->leases, p->added[i], at_ms) >= 0)
            n++;
    return n;
}

static size_t renew_names(struct kf_lease_share *sh, char *const *names, size_t n, int64_t at_ms)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (kf_lease_renew_remote(sh->leases, names[i], at_ms) >= 0)
            k++;
    return k;
}

static void lose(struct kf_lease_share *sh, struct peer *p, int64_t now_ms, const char *why)
{
    size_t n = renew_set(sh, p, now_ms) + renew_names(sh, p->recent, p->n_recent, now_ms);

    kf_log_info("replica \"%s\" %s: the %zu hosts that beat to it get a full grace from now to "
                "move to another replica",
                p->id, why, n);
    kf_smap_remove(&sh->peers, p->id);
    peer_free(p);
    pthread_mutex_lock(&sh->lock);
    sh->st.peers_lost++;
    sh->st.renewals += n;
    sh->st.peers = kf_smap_count(&sh->peers);
    pthread_mutex_unlock(&sh->lock);
}

/* The names of base `base` (shards of it) of replica id, read at rev. */
static int load_base(struct kf_lease_share *sh, const char *id, const struct kf_lease_report *t,
                     int64_t rev, char ***ret, size_t *ret_n, struct kf_strbuf *err)
{
    char *prefix = kf_xasprintf("%s%s/base/", KF_LEASE_SHARE_PREFIX, id);
    struct kf_range q = { .prefix = prefix, .rev = rev };
    struct kf_kv_list l = { 0 };
    char **names = NULL;
    size_t n = 0, alloc = 0;
    int r = kf_store_range(sh->store, &q, &l);

    if (r == -KF_ECOMPACTED) { /* the tick is old news by now: the current base may still do */
        q.rev = 0;
        r = kf_store_range(sh->store, &q, &l);
    }
    if (r < 0) {
        kf_err(err, r, "cannot read its base: %s", strerror(-r));
        goto release_range;
    }
    if (l.n != t->shards) {
        r = kf_err(err, -EAGAIN, "its base %s has %zu of %u shards", t->base, l.n, t->shards);
        goto release_range;
    }
    for (size_t i = 0; i < l.n && r == 0; i++) {
        struct kf_lease_report b;

        r = kf_lease_report_parse(l.items[i].value, l.items[i].value_len, &b, err);
        if (r < 0)
            break;
        if (b.kind != KF_LEASE_REPORT_BASE || strcmp(b.base, t->base) != 0 || b.shard != i ||
            b.shards != t->shards)
            r = kf_err(err, -EAGAIN, "shard %zu belongs to base %s, not %s", i, b.base, t->base);
        else if (n && b.n_names && strcmp(b.names[0], names[n - 1]) <= 0)
            r = kf_err(err, -EBADMSG, "shard %zu is out of order", i);
        for (size_t k = 0; r == 0 && k < b.n_names; k++) {
            KF_GROW(names, alloc, n);
            names[n++] = b.names[k];
            b.names[k] = NULL;
        }
        kf_lease_report_release(&b);
    }
    if (r == 0) {
        *ret = names;
        *ret_n = n;
        names = NULL;
    }
release_range:
    free_names(names, n);
    kf_kv_list_release(&l);
    free(prefix);
    return r;
}

/* The peer that wrote a tick, known from now on. */
static struct peer *peer_of(struct kf_lease_share *sh, const char *id)
{
    struct peer *p = kf_smap_get(&sh->peers, id);

    if (p)
        return p;
    p = kf_xcalloc(1, sizeof(*p));
    p->id = kf_xstrdup(id);
    kf_smap_put(&sh->peers, id, p);
    kf_log_info("replica \"%s\" shares its hosts' heartbeats with this one", id);
    pthread_mutex_lock(&sh->lock);
    sh->st.peers = kf_smap_count(&sh->peers);
    pthread_mutex_unlock(&sh->lock);
    return p;
}

/* A set tick: the peer's base (read when it is a new one), added and
 * removed names; renews its set. 0 and the renewals, or negative with the
 * reason in err when its base cannot be read. */
static int import_set(struct kf_lease_share *sh, struct peer *p, struct kf_lease_report *t,
                      const struct kf_event *ev, int64_t now_ms, size_t *ret_renewed,
                      struct kf_strbuf *err)
{
    if (strcmp(p->base, t->base) != 0) {
        char **names = NULL;
        size_t nn = 0;
        int r = load_base(sh, p->id, t, ev->kv.mod_rev, &names, &nn, err);

        if (r < 0)
            return r;
        free_names(p->base_names, p->n_base);
        p->base_names = names;
        p->n_base = nn;
        snprintf(p->base, sizeof(p->base), "%s", t->base);
    }
    free_names(p->added, p->n_added);
    free_names(p->removed, p->n_removed);
    free_names(p->recent, p->n_recent);
    p->recent = NULL;
    p->n_recent = 0;
    p->added = t->names;
    p->n_added = t->n_names;
    p->removed = t->removed;
    p->n_removed = t->n_removed;
    t->names = t->removed = NULL;
    t->n_names = t->n_removed = 0;
    /* each host beat there within the window before the tick */
    *ret_renewed = renew_set(sh, p, now_ms - p->window_ms);
    return 0;
}

static void import_tick(struct kf_lease_share *sh, const char *id, const struct kf_event *ev,
                        int64_t now_ms)
{
    struct kf_lease_report t = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct peer *p;
    size_t n;
    int r;

    if (kf_lease_report_parse(ev->kv.value, ev->kv.value_len, &t, &err) < 0 ||
        t.kind == KF_LEASE_REPORT_BASE) {
        kf_log_rl_warn("replica \"%s\" wrote a heartbeat report that cannot be read (%s); "
                       "its hosts are not renewed from it",
                       id, err.len ? err.buf : "a base where its tick should be");
        stat_add(sh, &sh->st.import_failures, 1);
        goto release_report;
    }
    p = peer_of(sh, id);
    p->seen_ms = now_ms;
    p->window_ms = t.window_ms;
    p->interval_ms = t.interval_ms;
    if (t.kind == KF_LEASE_REPORT_RECENT) {
        /* each host beat there since its previous tick */
        free_names(p->recent, p->n_recent);
        p->recent = t.names;
        p->n_recent = t.n_names;
        t.names = NULL;
        t.n_names = 0;
        n = renew_names(sh, p->recent, p->n_recent, now_ms - t.span_ms);
    } else {
        r = import_set(sh, p, &t, ev, now_ms, &n, &err);
        if (r < 0) {
            /* its set is unknown until a tick whose base we can read */
            kf_log_rl_warn("heartbeat report of replica \"%s\": %s; trying again at its next "
                           "report",
                           id, err.buf);
            stat_add(sh, &sh->st.import_failures, 1);
            goto release_report;
        }
    }
    pthread_mutex_lock(&sh->lock);
    sh->st.imports++;
    sh->st.renewals += n;
    pthread_mutex_unlock(&sh->lock);
release_report:
    kf_lease_report_release(&t);
    kf_strbuf_release(&err);
}

static void on_event(struct kf_lease_share *sh, const struct kf_event *ev, int64_t now_ms)
{
    const char *key = ev->kv.key, *id, *slash;
    char *pid;

    if (!kf_str_has_prefix(key, KF_LEASE_SHARE_PREFIX))
        return;
    id = key + strlen(KF_LEASE_SHARE_PREFIX);
    slash = strchr(id, '/');
    if (!slash || slash == id || strcmp(slash, "/tick") != 0)
        return; /* bases are read when a tick needs them */
    pid = kf_xstrndup(id, (size_t)(slash - id));
    if (strcmp(pid, sh->id) == 0) {
        /* ours, unless another replica was given our id */
        const char *b =
            ev->type == KF_EVENT_PUT
                ? memmem(ev->kv.value, KF_MIN(ev->kv.value_len, (size_t)64), " base=", 6)
                : NULL;

        if (ev->type == KF_EVENT_PUT &&
            (!b || (size_t)(b + 6 + 16 - ev->kv.value) > ev->kv.value_len ||
             memcmp(b + 6, sh->inc, 16) != 0))
            kf_log_rl_warn("another replica reports heartbeats as \"%s\", this replica's id: "
                           "give every replica its own --replica-id",
                           pid);
    } else if (ev->type == KF_EVENT_DELETE) {
        struct peer *p = kf_smap_get(&sh->peers, pid);

        if (p)
            lose(sh, p, now_ms, "stopped");
    } else {
        import_tick(sh, pid, ev, now_ms);
    }
    free(pid);
}

static void read_reports(struct kf_lease_share *sh, int64_t now_ms)
{
    for (;;) {
        struct kf_event *ev = NULL;
        int r;

        if (!sh->watch &&
            kf_watch_open(sh->store, KF_LEASE_SHARE_PREFIX, 0, wake, sh, &sh->watch) < 0)
            return;
        r = kf_watch_next(sh->watch, &ev);
        if (r == 0)
            return;
        if (r < 0) {
            /* fell behind a compaction: what was missed is superseded by
             * the next ticks (each one says the whole set) */
            kf_watch_close(sh->watch);
            sh->watch = NULL;
            if (r != -KF_ECOMPACTED)
                return;
            continue;
        }
        on_event(sh, ev, now_ms);
        kf_event_unref(ev);
    }
}

/* Deleted Hosts: their leases go. */
static void forget_deleted(struct kf_lease_share *sh)
{
    size_t plen;

    if (!sh->forget_prefix)
        return;
    plen = strlen(sh->forget_prefix);
    for (;;) {
        struct kf_event *ev = NULL;
        int r;

        if (!sh->forget_watch &&
            kf_watch_open(sh->store, sh->forget_prefix, 0, wake, sh, &sh->forget_watch) < 0)
            return;
        r = kf_watch_next(sh->forget_watch, &ev);
        if (r == 0)
            return;
        if (r < 0) { /* missed some: the leader's controller still forgets them */
            kf_watch_close(sh->forget_watch);
            sh->forget_watch = NULL;
            if (r != -KF_ECOMPACTED)
                return;
            continue;
        }
        if (ev->type == KF_EVENT_DELETE && strlen(ev->kv.key) > plen &&
            !strchr(ev->kv.key + plen, '/'))
            kf_lease_forget(sh->leases, ev->kv.key + plen);
        kf_event_unref(ev);
    }
}

static void check_peers(struct kf_lease_share *sh, int64_t now_ms)
{
    struct peer **gone = NULL;
    size_t n = 0, alloc = 0, it = 0;
    void *v;

    while (kf_smap_next(&sh->peers, &it, NULL, &v)) {
        struct peer *p = v;

        if (now_ms - p->seen_ms > PEER_STALE_MS(p->interval_ms)) {
            KF_GROW(gone, alloc, n);
            gone[n++] = p;
        }
    }
    for (size_t i = 0; i < n; i++)
        lose(sh, gone[i], now_ms, "stopped reporting");
    free(gone);
}

/* --- writing ours -------------------------------------------------------------- */

struct mark_ctx {
    struct kf_smap *names;
    uint64_t round;
};

static void mark_one(const char *name, int64_t local_ms, void *arg)
{
    struct mark_ctx *m = arg;
    struct entry *e;

    if (!name_ok(name, strlen(name)))
        return; /* not a host name: it could not be written */
    e = kf_smap_get(m->names, name);
    if (!e) {
        e = kf_xcalloc(1, sizeof(*e));
        kf_smap_put(m->names, name, e);
    }
    e->round = m->round;
    e->local_ms = local_ms;
}

struct name_list {
    char **v;
    size_t n, alloc;
};

static void push(struct name_list *l, const char *s)
{
    KF_GROW(l->v, l->alloc, l->n);
    l->v[l->n++] = (char *)s;
}

static void sort(struct name_list *l)
{
    if (l->n)
        qsort(l->v, l->n, sizeof(char *), kf_strp_cmp);
}

static int put(struct kf_lease_share *sh, const char *key, const struct kf_strbuf *val)
{
    int r = kf_store_put(sh->store, key, val->buf, val->len, KF_REV_ANY, NULL);

    if (r == 0)
        stat_add(sh, &sh->st.bytes, val->len);
    return r;
}

/* Writes `alive` (sorted) as base generation sh->gen + 1. */
static int write_base(struct kf_lease_share *sh, char *const *alive, size_t n, size_t *ret_bytes,
                      unsigned *ret_shards)
{
    struct kf_strbuf body = KF_STRBUF_INIT, val = KF_STRBUF_INIT;
    size_t bytes = 0;
    unsigned shards;
    size_t *cut = NULL, ncut = 0, cut_alloc = 0;
    int r = 0;

    /* cut the names into shards first: each header says how many there are */
    KF_GROW(cut, cut_alloc, ncut);
    cut[ncut++] = 0;
    for (size_t k = 0, sz = 0; k < n; k++) {
        size_t one = strlen(alive[k]) + 5; /* at most: "NNN " + name + "\n" */

        if (sz && sz + one > KF_LEASE_SHARE_SHARD_BYTES) {
            KF_GROW(cut, cut_alloc, ncut);
            cut[ncut++] = k;
            sz = 0;
        }
        sz += one;
    }
    shards = (unsigned)ncut;
    if (shards > KF_LEASE_SHARE_MAX_SHARDS) {
        r = -KF_ETOOLARGE;
        goto free_cut;
    }
    for (unsigned shard = 0; shard < shards && r == 0; shard++) {
        size_t from = cut[shard], to = shard + 1 < shards ? cut[shard + 1] : n;
        char *key = kf_xasprintf("%sbase/%04u", sh->own_prefix, shard);

        kf_strbuf_reset(&body);
        bytes += kf_lease_names_encode(&body, alive + from, to - from);
        kf_strbuf_reset(&val);
        kf_strbuf_addf(&val, MAGIC " base base=%s.%" PRIu64 " shard=%u shards=%u names=%zu\n",
                       sh->inc, sh->gen + 1, shard, shards, to - from);
        kf_strbuf_add(&val, body.buf, body.len);
        r = put(sh, key, &val);
        free(key);
    }
    if (r < 0)
        goto free_cut;
    /* shards of the previous base beyond ours */
    for (unsigned k = shards; k < sh->base_shards; k++) {
        char *key = kf_xasprintf("%sbase/%04u", sh->own_prefix, k);

        kf_store_delete(sh->store, key, KF_REV_ANY, NULL);
        free(key);
    }
    *ret_bytes = bytes;
    *ret_shards = shards;
free_cut:
    free(cut);
    kf_strbuf_release(&body);
    kf_strbuf_release(&val);
    return r;
}

/* This replica's tick at now_ms (see the header for the two forms and when
 * a new base is written). */
/* One report: the names compared with the base, and the two ticks it may write. */
struct report_pass {
    uint64_t round;
    struct name_list added, removed, recent, dead;
    struct kf_strbuf delta, fresh; /* a set tick's and a recent tick's names */
    size_t n_alive, churn;
};

/* Sorts the names into added, removed (against the base), recent (beat
 * since the last report) and dead, and encodes both ticks' names. */
static void compare_names(struct kf_lease_share *sh, struct report_pass *rp)
{
    size_t it = 0;
    const char *key;
    void *v;

    while (kf_smap_next(&sh->names, &it, &key, &v)) {
        struct entry *e = v;
        bool seen = e->round == rp->round;

        rp->n_alive += seen;
        rp->churn += seen != e->alive;
        e->alive = seen;
        if (seen && !e->in_base)
            push(&rp->added, key);
        else if (!seen && e->in_base)
            push(&rp->removed, key);
        else if (!seen)
            push(&rp->dead, key);
        if (seen && e->local_ms > sh->last_ok_ms)
            push(&rp->recent, key);
    }
    sort(&rp->added);
    sort(&rp->removed);
    sort(&rp->recent);
    kf_lease_names_encode(&rp->delta, rp->added.v, rp->added.n);
    kf_lease_names_encode(&rp->delta, rp->removed.v, rp->removed.n);
    kf_lease_names_encode(&rp->fresh, rp->recent.v, rp->recent.n);
}

/* A new base costs about what the last one cost a name, times the set.
 * It is written when the ticks since the last one (and this one) cost
 * as much, and if it will pay off: after a base, set ticks grow by
 * about the set's churn a round (`churn_cost`) until a recent tick
 * (about `fresh`) is cheaper, saving fresh^2 / (2 churn_cost) in all.
 * A set that churns as fast as the hosts beat (agents spread over the
 * replicas request by request) never pays that back: such a replica
 * writes recent ticks, and a base only when it must. */
static bool wants_base(const struct kf_lease_share *sh, const struct report_pass *rp)
{
    size_t per_name = sh->base_names ? KF_MAX(sh->base_bytes / sh->base_names, 1) : 8;
    size_t base_cost = per_name * rp->n_alive, churn_cost = KF_MAX(rp->churn * per_name, 1);
    double fresh = (double)rp->fresh.len;
    bool pays = fresh * fresh / (2.0 * (double)churn_cost) > (double)base_cost, rebase;

    if (sh->gen == 0 ||
        (rp->delta.len > KF_LEASE_SHARE_MAX_DELTA && rp->fresh.len > KF_LEASE_SHARE_MAX_DELTA))
        rebase = true;
    else
        rebase = rp->delta.len > 0 && pays &&
                 sh->spent + KF_MIN(rp->delta.len, rp->fresh.len) > base_cost;
    kf_log_dbg("report %" PRIu64 ": alive %zu churn %zu set tick %zu recent tick %zu base %zu "
               "spent %zu%s",
               sh->seq + 1, rp->n_alive, rp->churn, rp->delta.len, rp->fresh.len, base_cost,
               sh->spent, rebase ? ", new base" : "");
    return rebase;
}

/* Writes a new base of the names alive now; the set tick after it is empty. */
static int write_new_base(struct kf_lease_share *sh, struct report_pass *rp)
{
    struct name_list alive = { 0 };
    size_t it = 0, bytes = 0;
    unsigned shards = 0;
    const char *key;
    void *v;
    int r;

    while (kf_smap_next(&sh->names, &it, &key, &v))
        if (((const struct entry *)v)->round == rp->round)
            push(&alive, key);
    sort(&alive);
    r = write_base(sh, alive.v, alive.n, &bytes, &shards);
    if (r == 0) {
        sh->gen++;
        sh->base_shards = shards;
        sh->base_bytes = bytes;
        sh->base_names = alive.n;
        sh->spent = 0;
        stat_add(sh, &sh->st.bases, 1);
        /* the base is what is alive now */
        it = 0;
        while (kf_smap_next(&sh->names, &it, &key, &v))
            ((struct entry *)v)->in_base = ((const struct entry *)v)->round == rp->round;
        for (size_t i = 0; i < rp->removed.n; i++)
            push(&rp->dead, rp->removed.v[i]);
        rp->added.n = rp->removed.n = 0;
        kf_strbuf_reset(&rp->delta);
    }
    free(alive.v);
    return r;
}

/* Writes the tick (recent or set) and counts the report. */
static int write_tick(struct kf_lease_share *sh, const struct report_pass *rp, bool use_recent,
                      int64_t now_ms)
{
    struct kf_strbuf tick = KF_STRBUF_INIT;
    int r;

    if (use_recent) {
        kf_strbuf_addf(
            &tick,
            MAGIC " recent base=%s.%" PRIu64 " seq=%" PRIu64
                  " window-ms=%lld interval-ms=%lld span-ms=%lld names=%zu\n",
            sh->inc, sh->gen, sh->seq + 1, (long long)sh->window_ms, (long long)sh->interval_ms,
            (long long)(sh->last_ok_ms ? now_ms - sh->last_ok_ms : sh->window_ms), rp->recent.n);
        kf_strbuf_add(&tick, rp->fresh.buf, rp->fresh.len);
    } else {
        kf_strbuf_addf(&tick,
                       MAGIC " set base=%s.%" PRIu64 " shards=%u seq=%" PRIu64
                             " window-ms=%lld interval-ms=%lld added=%zu removed=%zu\n",
                       sh->inc, sh->gen, sh->base_shards, sh->seq + 1, (long long)sh->window_ms,
                       (long long)sh->interval_ms, rp->added.n, rp->removed.n);
        kf_strbuf_add(&tick, rp->delta.buf, rp->delta.len);
    }
    r = put(sh, sh->tick_key, &tick);
    kf_strbuf_release(&tick);
    if (r < 0)
        return r;
    sh->seq++;
    sh->spent += use_recent ? rp->fresh.len : rp->delta.len;
    sh->last_ok_ms = now_ms;
    pthread_mutex_lock(&sh->lock);
    sh->st.reports++;
    sh->st.recent_reports += use_recent;
    sh->st.reported_hosts = rp->n_alive;
    sh->st.last_report_ms = now_ms;
    pthread_mutex_unlock(&sh->lock);
    return 0;
}

/* Names neither alive nor in the base are no one's concern any more
 * (removed last: the lists point into the map's keys); frees the pass. */
static void report_pass_release(struct kf_lease_share *sh, struct report_pass *rp)
{
    for (size_t i = 0; i < rp->dead.n; i++) {
        char *copy = kf_xstrdup(rp->dead.v[i]);

        free(kf_smap_remove(&sh->names, copy));
        free(copy);
    }
    free(rp->added.v);
    free(rp->removed.v);
    free(rp->recent.v);
    free(rp->dead.v);
    kf_strbuf_release(&rp->delta);
    kf_strbuf_release(&rp->fresh);
}

/* Writes this replica's report: a new base when it pays, then a recent or a set tick. */
static int report(struct kf_lease_share *sh, int64_t now_ms)
{
    struct mark_ctx m = { &sh->names, ++sh->round };
    struct report_pass rp = { .round = m.round, .delta = KF_STRBUF_INIT, .fresh = KF_STRBUF_INIT };
    bool use_recent = false;
    int r;

    kf_lease_local_since(sh->leases, now_ms - sh->window_ms, mark_one, &m);
    compare_names(sh, &rp);
    if (wants_base(sh, &rp)) {
        r = write_new_base(sh, &rp);
        if (r < 0)
            goto release_pass;
    } else {
        use_recent = (rp.fresh.len < rp.delta.len && rp.fresh.len <= KF_LEASE_SHARE_MAX_DELTA) ||
                     rp.delta.len > KF_LEASE_SHARE_MAX_DELTA;
    }
    r = write_tick(sh, &rp, use_recent, now_ms);
release_pass:
    report_pass_release(sh, &rp);
    if (r < 0)
        stat_add(sh, &sh->st.report_failures, 1);
    return r;
}

int kf_lease_share_step(struct kf_lease_share *sh, int64_t now_ms)
{
    int r = 0;

    read_reports(sh, now_ms);
    forget_deleted(sh);
    check_peers(sh, now_ms);
    if (now_ms >= sh->next_report_ms) {
        sh->next_report_ms = now_ms + sh->interval_ms;
        r = report(sh, now_ms);
    }
    return r;
}

/* --- the thread ------------------------------------------------------------------- */

static void *share_main(void *arg)
{
    struct kf_lease_share *sh = arg;

    pthread_mutex_lock(&sh->lock);
    while (!sh->stop) {
        int64_t wait_ms = sh->next_report_ms - kf_now_ms();
        int r;

        if (!sh->pending && wait_ms > 0) {
            struct timespec until;

            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += wait_ms / 1000;
            until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&sh->cond, &sh->lock, &until);
            continue;
        }
        sh->pending = false;
        pthread_mutex_unlock(&sh->lock);
        r = kf_lease_share_step(sh, kf_now_ms());
        if (r < 0)
            kf_log_rl_warn("cannot write this replica's heartbeat report: %s; the other replicas "
                           "do not see its hosts' heartbeats until it can (retrying every "
                           "%lld ms)",
                           strerror(-r), (long long)sh->interval_ms);
        pthread_mutex_lock(&sh->lock);
    }
    pthread_mutex_unlock(&sh->lock);
    return NULL;
}

int kf_lease_share_start(struct kf_lease_share *sh, struct kf_strbuf *err)
{
    int r = pthread_create(&sh->thread, NULL, share_main, sh);

    if (r != 0)
        return kf_err(err, -r, "cannot start the heartbeat sharing thread: %s", strerror(r));
    sh->started = true;
    return 0;
}

void kf_lease_share_free(struct kf_lease_share *sh)
{
    size_t it = 0;
    void *v;

    if (!sh)
        return;
    if (sh->started) {
        pthread_mutex_lock(&sh->lock);
        sh->stop = true;
        pthread_cond_signal(&sh->cond);
        pthread_mutex_unlock(&sh->lock);
        pthread_join(sh->thread, NULL);
    }
    kf_watch_close(sh->watch);
    kf_watch_close(sh->forget_watch);
    free(sh->forget_prefix);
    delete_prefix(sh->store, sh->own_prefix, sh->tick_key); /* the tick first */
    while (kf_smap_next(&sh->peers, &it, NULL, &v))
        peer_free(v);
    kf_smap_release(&sh->peers);
    it = 0;
    while (kf_smap_next(&sh->names, &it, NULL, &v))
        free(v);
    kf_smap_release(&sh->names);
    pthread_mutex_destroy(&sh->lock);
    pthread_cond_destroy(&sh->cond);
    free(sh->id);
    free(sh->own_prefix);
    free(sh->tick_key);
    free(sh);
}

void kf_lease_share_stats(struct kf_lease_share *sh, struct kf_lease_share_stats *ret)
{
    pthread_mutex_lock(&sh->lock);
    *ret = sh->st;
    pthread_mutex_unlock(&sh->lock);
}
