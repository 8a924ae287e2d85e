/* base-tz.c: the TZif reader and the process-wide zone cache behind
 * kfleet/tz.h (maintenance windows in a cluster's own time zone).
 *
 * TZif (RFC 8536): a 44-byte header (magic "TZif", version, six counts),
 * a block of 32-bit data, and for version 2 and later a second header and
 * block of 64-bit data, then a footer. Only the transition times, their
 * type indices and the types' UTC offsets are kept; leap seconds,
 * designations and the standard/UT indicators are checked for size and
 * skipped. Every count is bounded before it sizes anything. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/strbuf.h"
#include "kfleet/tz.h"

#define HEADER_LEN    44
#define MAX_TIMES     4096 /* the largest zone has about 240 */
#define MAX_TYPES     256  /* type indices are one byte */
#define MAX_CHARS     1024
#define MAX_LEAPS     1024
#define MAX_CACHED    512
#define UTC_OFFSET_LO (-25 * 3600) /* RFC 8536: -2^31 is invalid; real ones are within a day */
#define UTC_OFFSET_HI (26 * 3600)

struct kf_tz {
    size_t ntimes;
    int64_t *times;   /* ascending transition instants */
    int32_t *offsets; /* offsets[i]: in force from times[i] on */
    int32_t before;   /* before times[0] (or always, with no transitions) */
};

struct counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int read_header(const unsigned char *p, size_t len, struct counts *c, char *version,
                       struct kf_strbuf *err)
{
    if (len < HEADER_LEN || memcmp(p, "TZif", 4) != 0)
        return kf_err(err, -EINVAL, "not a TZif file (no \"TZif\" header)");
    *version = (char)p[4];
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    if (c->type == 0 || c->type > MAX_TYPES || c->chars == 0 || c->chars > MAX_CHARS ||
        c->time > MAX_TIMES || c->leap > MAX_LEAPS || (c->isut && c->isut != c->type) ||
        (c->isstd && c->isstd != c->type))
        return kf_err(err, -EINVAL,
                      "TZif counts out of range (%u transitions, %u types, %u designation "
                      "bytes, %u leap seconds)",
                      c->time, c->type, c->chars, c->leap);
    return 0;
}

/* Size of a data block whose times take TSIZE bytes. */
static size_t block_len(const struct counts *c, size_t tsize)
{
    return c->time * tsize + c->time + c->type * 6u + c->chars + c->leap * (tsize + 4) + c->isstd +
           c->isut;
}

static int read_block(const unsigned char *p, const struct counts *c, size_t tsize,
                      struct kf_tz *tz, struct kf_strbuf *err)
{
    const unsigned char *idx = p + c->time * tsize, *types = idx + c->time;
    int32_t offs[MAX_TYPES];

    for (uint32_t i = 0; i < c->type; i++) {
        int32_t off = (int32_t)be32(types + i * 6u);

        if (off < UTC_OFFSET_LO || off > UTC_OFFSET_HI || types[i * 6u + 4] > 1 ||
            types[i * 6u + 5] >= c->chars)
            return kf_err(err, -EINVAL, "TZif local time type %u is invalid (offset %d s)", i, off);
        offs[i] = off;
    }
    tz->times = kf_xcalloc(c->time ? c->time : 1, sizeof(*tz->times));
    tz->offsets = kf_xcalloc(c->time ? c->time : 1, sizeof(*tz->offsets));
    tz->ntimes = c->time;
    tz->before = offs[0];
    for (uint32_t i = 0; i < c->time; i++) {
        int64_t t = tsize == 8 ? be64(p + i * 8u) : (int32_t)be32(p + i * 4u);

        if (idx[i] >= c->type || (i && t <= tz->times[i - 1]))
            return kf_err(err, -EINVAL, "TZif transition %u is out of order or names no type", i);
        tz->times[i] = t;
        tz->offsets[i] = offs[idx[i]];
    }
    return 0;
}

int kf_tz_parse(const void *data, size_t len, struct kf_tz **ret, struct kf_strbuf *err)
{
    const unsigned char *p = data;
    struct counts c;
    size_t tsize = 4, skip;
    char version;
    struct kf_tz *tz;

    if (len > KF_TZ_MAX_FILE)
        return kf_err(err, -EINVAL, "TZif file of %zu bytes is larger than %d", len,
                      KF_TZ_MAX_FILE);
    if (read_header(p, len, &c, &version, err) < 0)
        return -EINVAL;
    if (version != 0) {
        /* version 2+: skip the 32-bit block, read the second header */
        skip = HEADER_LEN + block_len(&c, 4);
        if (skip > len)
            return kf_err(err, -EINVAL, "TZif file ends inside its first data block");
        if (read_header(p + skip, len - skip, &c, &version, err) < 0)
            return -EINVAL;
        p += skip;
        len -= skip;
        tsize = 8;
    }
    if (HEADER_LEN + block_len(&c, tsize) > len)
        return kf_err(err, -EINVAL, "TZif file ends inside its data block");
    tz = kf_xcalloc(1, sizeof(*tz));
    if (read_block(p + HEADER_LEN, &c, tsize, tz, err) < 0) {
        kf_tz_free(tz);
        return -EINVAL;
    }
    *ret = tz;
    return 0;
}

void kf_tz_free(struct kf_tz *tz)
{
    if (!tz)
        return;
    free(tz->times);
    free(tz->offsets);
    free(tz);
}

int32_t kf_tz_offset(const struct kf_tz *tz, int64_t t)
{
    size_t lo = 0, hi = tz->ntimes;

    if (tz->ntimes == 0 || t < tz->times[0])
        return tz->before;
    /* the last transition at or before t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (tz->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->offsets[lo];
}

int64_t kf_tz_to_utc(const struct kf_tz *tz, int64_t local)
{
    /* Try the offsets in force a day before and a day after: a wall-clock
     * time is valid under an offset if that offset is in force at the
     * instant it gives. The earlier valid instant wins; in a gap neither
     * is valid and the later offset's instant lands after the change. */
    int32_t early = kf_tz_offset(tz, local - 86400), late = kf_tz_offset(tz, local + 86400);
    int64_t a = local - early, b = local - late;

    if (kf_tz_offset(tz, a) == early && kf_tz_offset(tz, b) == late)
        return a < b ? a : b;
    if (kf_tz_offset(tz, a) == early)
        return a;
    if (kf_tz_offset(tz, b) == late)
        return b;
    return a; /* in a gap: read with the earlier offset, it falls after the change */
}

bool kf_tz_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    bool part_start = true;

    if (n == 0 || n > KF_TZ_MAX_NAME)
        return false;
    for (const char *p = name; *p; p++) {
        bool alnum =
            (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');

        if (*p == '/') {
            if (part_start)
                return false;
            part_start = true;
            continue;
        }
        if (!alnum && *p != '_' && *p != '+' && *p != '-')
            return false;
        if (part_start && *p == '-')
            return false;
        part_start = false;
    }
    return !part_start;
}

/* --- the cache ---------------------------------------------------------------------- */

struct cached {
    char *name;
    struct kf_tz *tz;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cached cache[MAX_CACHED];
static size_t cache_len;
static const struct kf_tz utc = { .ntimes = 0, .before = 0 };

static const char *zone_dir(void)
{
    const char *d = getenv("TZDIR");

    return d && *d ? d : "/usr/share/zoneinfo";
}

static struct kf_tz *load(const char *name, struct kf_strbuf *err)
{
    char *path = kf_xasprintf("%s/%s", zone_dir(), name), *data = NULL;
    struct kf_tz *tz = NULL;
    size_t len;
    int r = kf_read_file(path, KF_TZ_MAX_FILE, &data, &len);

    if (r < 0)
        kf_err(err, r, "unknown time zone \"%s\" (%s: %s)", name, path, strerror(-r));
    else if (kf_tz_parse(data, len, &tz, NULL) < 0)
        kf_err(err, -EINVAL, "time zone \"%s\": %s is not a valid zone file", name, path);
    free(data);
    free(path);
    return tz;
}

const struct kf_tz *kf_tz_get(const char *name, struct kf_strbuf *err)
{
    const struct kf_tz *found = NULL;
    struct kf_tz *tz;

    if (name && (!strcmp(name, "UTC") || !strcmp(name, "Etc/UTC")))
        return &utc;
    if (!kf_tz_name_ok(name)) {
        kf_err(err, -EINVAL, "\"%s\" is not a time zone name (expected e.g. \"Europe/Berlin\")",
               name ? name : "");
        return NULL;
    }
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < cache_len && !found; i++)
        if (!strcmp(cache[i].name, name))
            found = cache[i].tz;
    if (!found && cache_len < MAX_CACHED && (tz = load(name, err))) {
        cache[cache_len].name = kf_xstrdup(name);
        cache[cache_len++].tz = tz;
        found = tz;
    } else if (!found && cache_len >= MAX_CACHED) {
        kf_err(err, -ENOSPC, "time zone \"%s\": more than %d zones in use", name, MAX_CACHED);
    }
    pthread_mutex_unlock(&cache_lock);
    return found;
}
