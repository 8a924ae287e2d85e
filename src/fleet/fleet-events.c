/* fleet-events.c: the Event recorder, its garbage collector and the
 * per-object listing `kfleet describe` uses (contract in kfleet/events.h).
 *
 * Aggregation without a list: an Event's name is the involved object's name
 * plus a hash of (kind, name, uid, type, reason, message, component), so a
 * repeat finds its Event with one GET and bumps count with a
 * compare-and-swap update. Putting the object's name first also lets
 * kf_evrec_list_for read a key range instead of every event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <unistd.h>
#include <pthread.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/schema.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

#define EVREC_RETRIES  8
#define EVREC_GC_PAGE  1000
#define EVREC_HASH_LEN 16

/* Direct-mapped memory of recent writes, by event hash (see
 * KF_EVREC_COALESCE_MS). A collision only costs an extra write. */
#define EVREC_CACHE 1024

struct evrec_slot {
    uint64_t hash;
    int64_t written_ms; /* when this event was last written */
    int64_t pending;    /* repeats since, not yet in the stored count */
};

struct kf_recorder {
    struct kf_registry *registry;
    char *component;
    char host[256];
    int64_t (*now_ms)(void *arg);
    void *now_arg;
    int64_t coalesce_ms;
    pthread_mutex_t lock;
    struct evrec_slot cache[EVREC_CACHE];
};

static int64_t wall_clock(void *arg)
{
    (void)arg;
    return kf_now_ms();
}

struct kf_recorder *kf_recorder_new(struct kf_registry *r, const char *component)
{
    struct kf_recorder *rec = kf_xcalloc(1, sizeof(*rec));

    rec->registry = r;
    rec->component = kf_xstrdup(component ? component : "kfleetd");
    if (gethostname(rec->host, sizeof(rec->host) - 1) < 0)
        rec->host[0] = '\0';
    rec->now_ms = wall_clock;
    rec->coalesce_ms = KF_EVREC_COALESCE_MS;
    pthread_mutex_init(&rec->lock, NULL);
    return rec;
}

void kf_recorder_free(struct kf_recorder *rec)
{
    if (!rec)
        return;
    pthread_mutex_destroy(&rec->lock);
    free(rec->component);
    free(rec);
}

void kf_recorder_set_clock(struct kf_recorder *rec, int64_t (*now_ms)(void *arg), void *arg)
{
    rec->now_ms = now_ms ? now_ms : wall_clock;
    rec->now_arg = arg;
}

void kf_recorder_set_coalesce(struct kf_recorder *rec, int64_t window_ms)
{
    rec->coalesce_ms = window_ms > 0 ? window_ms : 0;
}

/* Whether this repeat should be written now; if so, *ret_extra is the
 * number of earlier repeats still to add to the count. */
static bool coalesce(struct kf_recorder *rec, uint64_t h, int64_t now, int64_t *ret_extra)
{
    struct evrec_slot *slot = &rec->cache[h % EVREC_CACHE];
    bool write = true;

    *ret_extra = 0;
    if (rec->coalesce_ms <= 0)
        return true;
    pthread_mutex_lock(&rec->lock);
    if (slot->hash == h && now - slot->written_ms < rec->coalesce_ms) {
        slot->pending++;
        write = false;
    } else {
        *ret_extra = slot->hash == h ? slot->pending : 0;
        slot->hash = h;
        slot->written_ms = now;
        slot->pending = 0;
    }
    pthread_mutex_unlock(&rec->lock);
    return write;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    return kf_fnv1a(kf_fnv1a_str(h, s ? s : ""), "\xff", 1); /* 0xff: field separator */
}

char *kf_fleet_event_name_prefix(const char *name)
{
    size_t len = strlen(name), max = KF_NAME_MAX - EVREC_HASH_LEN - 1;

    if (len > max)
        len = max;
    while (len > 0 && (name[len - 1] == '.' || name[len - 1] == '-'))
        len--;
    return kf_xasprintf("%.*s.", (int)len, name);
}

/* Copies s into out, replacing bytes that are not valid UTF-8 by '?' and
 * cutting at max bytes (on a character boundary, with "..."). */
static void utf8_clean(const char *s, size_t max, struct kf_strbuf *out)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        size_t n = 1;

        if (*p >= 0xf0 && *p <= 0xf4)
            n = 4;
        else if (*p >= 0xe0)
            n = 3;
        else if (*p >= 0xc2 && *p < 0xe0)
            n = 2;
        else if (*p >= 0x80)
            n = 0;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                n = 0;
        if (out->len + KF_MAX(n, (size_t)1) > max) {
            kf_strbuf_addstr(out, "...");
            return;
        }
        if (n == 0) {
            kf_strbuf_addch(out, '?');
            p++;
        } else {
            kf_strbuf_add(out, p, n);
            p += n;
        }
    }
}

int kf_recorder_event(struct kf_recorder *rec, const json_t *involved, const char *type,
                      const char *reason, const char *message)
{
    const struct kf_kind *k = &kf_kind_event;
    const char *kind = kf_json_str(involved, "kind", NULL);
    const char *name = kf_obj_name(involved);
    const char *uid = kf_obj_uid(involved);
    const char *api = kf_json_str(involved, "apiVersion", KF_API_VERSION);
    struct kf_strbuf msg = KF_STRBUF_INIT;
    char *prefix, *evname, ts[32];
    uint64_t h = KF_FNV1A_BASIS;
    int64_t now, extra = 0;
    int rc = 0;

    if (!kind || !name || !kf_name_valid(name) ||
        (strcmp(type, KF_EVENT_NORMAL) && strcmp(type, KF_EVENT_WARNING)) || !reason ||
        strlen(reason) > 128 || !kf_format_check(KF_FMT_REASON, reason, NULL))
        return -EINVAL;
    utf8_clean(message ? message : "", KF_EVREC_MAX_MESSAGE, &msg);
    h = fnv1a(h, kind);
    h = fnv1a(h, name);
    h = fnv1a(h, uid);
    h = fnv1a(h, type);
    h = fnv1a(h, reason);
    h = fnv1a(h, msg.buf);
    h = fnv1a(h, rec->component);
    now = rec->now_ms(rec->now_arg);
    if (!coalesce(rec, h, now, &extra)) {
        kf_strbuf_release(&msg);
        return 0;
    }
    prefix = kf_fleet_event_name_prefix(name);
    evname = kf_xasprintf("%s%016llx", prefix, (unsigned long long)h);
    free(prefix);
    kf_time_format_rfc3339(now, ts, sizeof(ts));
    for (int attempt = 0; attempt < EVREC_RETRIES; attempt++) {
        struct kf_causes causes = KF_CAUSES_INIT;
        json_t *ev = NULL;

        rc = kf_registry_get(rec->registry, k, evname, &ev);
        if (rc == 0 && kf_streq(kf_json_str(ev, "spec.message", NULL), msg.buf) &&
            kf_streq(kf_json_str(ev, "spec.reason", NULL), reason) &&
            kf_streq(kf_json_str(ev, "spec.involvedObject.name", NULL), name)) {
            /* A repeat: count it. The resourceVersion read makes this a CAS. */
            kf_json_set_int(ev, "spec.count", kf_json_int(ev, "spec.count", 1) + 1 + extra);
            kf_json_set_str(ev, "spec.lastTimestamp", ts);
            rc = kf_registry_update(rec->registry, k, ev, false, NULL, &causes, NULL);
        } else if (rc == 0 || rc == -KF_ENOTFOUND) {
            json_t *spec;

            if (rc == 0) /* a hash collision: the newer event wins the name */
                kf_registry_delete(rec->registry, k, evname, kf_obj_rv(ev), NULL, NULL);
            json_decref(ev);
            spec = json_pack("{s:{s:s,s:s,s:s},s:s,s:s,s:s,s:i,s:s,s:s,s:{s:s,s:s}}",
                             "involvedObject", "apiVersion", api, "kind", kind, "name", name,
                             "type", type, "reason", reason, "message", msg.buf, "count",
                             (int)(1 + extra), "firstTimestamp", ts, "lastTimestamp", ts, "source",
                             "component", rec->component, "host", rec->host);
            if (uid)
                kf_json_set_str(spec, "involvedObject.uid", uid);
            ev = json_pack("{s:s,s:s,s:{s:s},s:o}", "apiVersion", KF_API_VERSION, "kind", k->kind,
                           "metadata", "name", evname, "spec", spec);
            rc = kf_registry_create(rec->registry, k, ev, NULL, &causes, NULL);
        }
        json_decref(ev);
        kf_causes_release(&causes);
        if (rc != -KF_ECONFLICT && rc != -KF_EEXISTS && rc != -KF_ENOTFOUND)
            break;
    }
    free(evname);
    kf_strbuf_release(&msg);
    return rc;
}

int kf_recorder_eventf(struct kf_recorder *rec, const json_t *involved, const char *type,
                       const char *reason, const char *fmt, ...)
{
    va_list ap;
    char *msg;
    int rc;

    va_start(ap, fmt);
    msg = kf_xvasprintf(fmt, ap);
    va_end(ap);
    rc = kf_recorder_event(rec, involved, type, reason, msg);
    free(msg);
    return rc;
}

static int64_t event_last_ms(const json_t *ev)
{
    const char *fields[] = { "spec.lastTimestamp", "spec.firstTimestamp",
                             "metadata.creationTimestamp" };
    int64_t ms;

    for (size_t i = 0; i < KF_ARRAY_SIZE(fields); i++)
        if (kf_time_parse_rfc3339(kf_json_str(ev, fields[i], NULL), &ms) == 0)
            return ms;
    return 0;
}

int kf_evrec_gc(struct kf_registry *r, int64_t ttl_ms, int64_t now_ms)
{
    struct kf_store *store = kf_registry_store(r);
    char *prefix = kf_obj_prefix(&kf_kind_event), *after = NULL;
    int deleted = 0, rc = 0;

    if (ttl_ms <= 0)
        ttl_ms = KF_EVREC_TTL_MS;
    for (;;) {
        struct kf_kv_list page = { 0 };
        struct kf_range q = { .prefix = prefix, .start_after = after, .limit = EVREC_GC_PAGE };

        rc = kf_store_range(store, &q, &page);
        if (rc < 0)
            break;
        for (size_t i = 0; i < page.n; i++) {
            json_t *ev;

            if (kf_obj_decode(page.items[i].value, page.items[i].value_len, page.items[i].mod_rev,
                              &ev) < 0)
                continue;
            if (now_ms - event_last_ms(ev) > ttl_ms &&
                kf_registry_delete(r, &kf_kind_event, kf_obj_name(ev), page.items[i].mod_rev, NULL,
                                   NULL) == 0)
                deleted++;
            json_decref(ev);
        }
        free(after);
        after = page.n ? kf_xstrdup(page.items[page.n - 1].key) : NULL;
        if (!page.more || !after) {
            kf_kv_list_release(&page);
            break;
        }
        kf_kv_list_release(&page);
    }
    free(after);
    free(prefix);
    return rc < 0 ? rc : deleted;
}

static int cmp_last_desc(const void *a, const void *b)
{
    int64_t x = event_last_ms(*(json_t *const *)a), y = event_last_ms(*(json_t *const *)b);

    return x < y ? 1 : x > y ? -1 : 0;
}

int kf_evrec_list_for(struct kf_registry *r, const char *kind, const char *name, size_t max,
                      json_t **ret)
{
    char *kprefix = kf_obj_prefix(&kf_kind_event), *nprefix, *prefix;
    struct kf_kv_list l = { 0 };
    struct kf_range q = { 0 };
    json_t **items = NULL, *out;
    size_t n = 0;
    int rc;

    if (!name || !*name)
        return -EINVAL;
    nprefix = kf_fleet_event_name_prefix(name);
    prefix = kf_xasprintf("%s%s", kprefix, nprefix);
    q.prefix = prefix;
    rc = kf_store_range(kf_registry_store(r), &q, &l);
    free(kprefix);
    free(nprefix);
    free(prefix);
    if (rc < 0)
        return rc;
    items = kf_xcalloc(l.n ? l.n : 1, sizeof(*items));
    for (size_t i = 0; i < l.n; i++) {
        json_t *ev;

        if (kf_obj_decode(l.items[i].value, l.items[i].value_len, l.items[i].mod_rev, &ev) < 0)
            continue;
        if (kf_streq(kf_json_str(ev, "spec.involvedObject.name", NULL), name) &&
            (!kind || !strcasecmp(kf_json_str(ev, "spec.involvedObject.kind", ""), kind)))
            items[n++] = ev;
        else
            json_decref(ev);
    }
    kf_kv_list_release(&l);
    qsort(items, n, sizeof(*items), cmp_last_desc);
    out = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!max || i < max)
            json_array_append_new(out, items[i]);
        else
            json_decref(items[i]);
    }
    free(items);
    *ret = out;
    return 0;
}
