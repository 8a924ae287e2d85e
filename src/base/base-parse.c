/* base-parse.c: strict parsing of numbers, Kubernetes quantities, durations
 * and RFC 3339 times, DNS names, and the clocks. Every parser accepts the
 * whole string or nothing. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kfleet/base.h"

int kf_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int kf_parse_int64(const char *s, int64_t *ret)
{
    char *end;
    long long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end)
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    *ret = v;
    return 0;
}

int kf_parse_uint64(const char *s, uint64_t *ret)
{
    char *end;
    unsigned long long v;

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end)
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    *ret = v;
    return 0;
}

int kf_parse_int(const char *s, int *ret)
{
    int64_t v;
    int r = kf_parse_int64(s, &v);

    if (r < 0)
        return r;
    if (v < INT32_MIN || v > INT32_MAX)
        return -ERANGE;
    *ret = (int)v;
    return 0;
}

int kf_parse_double(const char *s, double *ret)
{
    char *end;
    double v;

    if (!s || !*s || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (*end || isnan(v))
        return -EINVAL;
    if (errno == ERANGE || isinf(v))
        return -ERANGE;
    *ret = v;
    return 0;
}

/* Suffix multipliers in milli-units. */
static const struct {
    const char *suffix;
    double mult;
} quantity_suffixes[] = {
    { "Ki", 1024.0 * 1000 },
    { "Mi", 1024.0 * 1024 * 1000 },
    { "Gi", 1024.0 * 1024 * 1024 * 1000 },
    { "Ti", 1024.0 * 1024 * 1024 * 1024 * 1000 },
    { "Pi", 1024.0 * 1024 * 1024 * 1024 * 1024 * 1000 },
    { "m", 1 },
    { "k", 1e3 * 1000 },
    { "K", 1e3 * 1000 },
    { "M", 1e6 * 1000 },
    { "G", 1e9 * 1000 },
    { "T", 1e12 * 1000 },
    { "P", 1e15 * 1000 },
    { "", 1000 },
};

int kf_parse_quantity(const char *s, int64_t *ret_milli)
{
    size_t len, numlen = 0;
    char num[64];
    double v, milli;

    if (!s || !*s)
        return -EINVAL;
    len = strlen(s);
    while (numlen < len && (isdigit((unsigned char)s[numlen]) || s[numlen] == '.'))
        numlen++;
    if (numlen == 0 || numlen >= sizeof(num))
        return -EINVAL;
    memcpy(num, s, numlen);
    num[numlen] = '\0';
    if (kf_parse_double(num, &v) < 0)
        return -EINVAL;
    for (size_t i = 0; i < KF_ARRAY_SIZE(quantity_suffixes); i++) {
        if (strcmp(s + numlen, quantity_suffixes[i].suffix) == 0) {
            milli = v * quantity_suffixes[i].mult;
            if (milli > 9.0e18)
                return -ERANGE;
            *ret_milli = (int64_t)llround(milli);
            return 0;
        }
    }
    return -EINVAL;
}

int kf_parse_duration_ms(const char *s, int64_t *ret_ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
    };
    int64_t total = 0;
    const char *p = s;

    if (!s || !*s)
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *ret_ms = 0;
        return 0;
    }
    while (*p) {
        int64_t v = 0;
        bool matched = false;

        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        while (isdigit((unsigned char)*p)) {
            if (v > (INT64_MAX - 9) / 10)
                return -ERANGE;
            v = v * 10 + (*p++ - '0');
        }
        /* longest unit first: "ms" before "m" */
        for (size_t i = 0; i < KF_ARRAY_SIZE(units); i++) {
            size_t ul = strlen(units[i].unit);

            if (strncmp(p, units[i].unit, ul) == 0 &&
                !(ul == 1 && units[i].unit[0] == 'm' && p[1] == 's')) {
                if (v > INT64_MAX / units[i].ms || total > INT64_MAX - v * units[i].ms)
                    return -ERANGE;
                total += v * units[i].ms;
                p += ul;
                matched = true;
                break;
            }
        }
        if (!matched)
            return -EINVAL;
    }
    *ret_ms = total;
    return 0;
}

int64_t kf_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t kf_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t kf_mono_ms(void)
{
    return (int64_t)(kf_mono_ns() / 1000000u);
}

void kf_sleep_ms(int64_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

    if (ms <= 0)
        return;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void kf_time_format_rfc3339(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int kf_time_parse_rfc3339(const char *s, int64_t *ret_ms)
{
    struct tm tm = { 0 };
    const char *end;
    int64_t frac_ms = 0;
    time_t t;

    if (!s)
        return -EINVAL;
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return -EINVAL;
    if (*end == '.') {
        int digits = 0;

        end++;
        while (isdigit((unsigned char)*end)) {
            if (digits < 3)
                frac_ms = frac_ms * 10 + (*end - '0');
            digits++;
            end++;
        }
        if (!digits)
            return -EINVAL;
        for (; digits < 3; digits++)
            frac_ms *= 10;
    }
    if (strcmp(end, "Z") != 0)
        return -EINVAL;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ret_ms = (int64_t)t * 1000 + frac_ms;
    return 0;
}

/* --- DNS names ------------------------------------------------------------------ */

bool kf_dns_label_valid(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!(islower(c) || isdigit(c) || c == '-'))
            return false;
    }
    return true;
}

bool kf_name_valid(const char *name)
{
    size_t len;
    const char *p;

    if (!name || (len = strlen(name)) == 0 || len > KF_NAME_MAX)
        return false;
    /* a DNS-1123 subdomain: dot-separated DNS labels */
    p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);

        if (!kf_dns_label_valid(p, n))
            return false;
        p += n;
        if (*p == '.')
            p++;
        else
            break;
    }
    return name[len - 1] != '.';
}
