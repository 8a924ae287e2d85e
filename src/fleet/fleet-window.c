/* fleet-window.c: maintenance windows (contract in kfleet/window.h): when a
 * cluster may start disruptive work, spread by a hash of its name, in the
 * window's own time zone (kfleet/tz.h, never the process's TZ), and the
 * admission checks of a window.
 *
 * Dates are counted as days since 1970-01-01 of the window's wall clock;
 * a window "opens on day D" at D * 86400 + start, local, which
 * kf_tz_to_utc turns into an instant. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/strbuf.h"
#include "kfleet/tz.h"
#include "kfleet/window.h"

#define DAY          86400
#define LOOK_BACK    8   /* a window lasts at most 7 days */
#define LOOK_AHEAD   400 /* days searched for the next opening */
#define MIN_DURATION 3600
#define MAX_DURATION (7 * DAY)

/* Days since 1970-01-01 of the proleptic Gregorian date Y-M-D. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Parses "YYYY-MM-DD" (years 1970..9999) into a day number. */
static int parse_date(const char *s, int64_t *ret_day)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, m, d, n = 0;

    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10)
        return -1;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap_year(y) ? 1 : 0))
        return -1;
    *ret_day = days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

static int parse_start(const char *s, int *ret_secs)
{
    int hh, mm, n = 0;

    if (!s || sscanf(s, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5 || s[n] || hh < 0 || hh > 23 ||
        mm < 0 || mm > 59)
        return -1;
    *ret_secs = hh * 3600 + mm * 60;
    return 0;
}

/* Whether the window opens on day DAY (weekday and exclusions). */
static bool opens_on(const json_t *window, int64_t day)
{
    static const char *const names[] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
    const char *wd = names[((day % 7) + 7) % 7]; /* 1970-01-01 was a Thursday */
    json_t *days = json_object_get(window, "days"), *v;
    bool ok = json_array_size(days) == 0;
    size_t i;

    json_array_foreach(days, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), wd)) ok =
        true;
    if (!ok)
        return false;
    json_array_foreach(json_object_get(window, "exclusions"), i, v)
    {
        int64_t from, to;

        if (parse_date(kf_json_str(v, "from", NULL), &from) < 0)
            continue;
        if (parse_date(kf_json_str(v, "to", NULL), &to) < 0)
            to = from;
        if (day >= from && day <= to)
            return false;
    }
    return true;
}

static int64_t window_duration(const json_t *window)
{
    int64_t ms;

    if (kf_parse_duration_ms(kf_json_str(window, "duration", "4h"), &ms) < 0)
        ms = 4 * 3600 * 1000LL;
    if (ms < MIN_DURATION * 1000LL)
        ms = MIN_DURATION * 1000LL;
    if (ms > MAX_DURATION * 1000LL)
        ms = MAX_DURATION * 1000LL;
    return ms / 1000;
}

bool kf_window_allows(const json_t *window, const char *name, time_t now, time_t *next)
{
    const struct kf_tz *tz;
    int64_t dur, spread, today, best = 0;
    int start;

    if (!json_is_object(window) || parse_start(kf_json_str(window, "start", NULL), &start) < 0) {
        if (next)
            *next = now;
        return true;
    }
    tz = kf_tz_get(kf_json_str(window, "timeZone", "UTC"), NULL);
    if (!tz)
        tz = kf_tz_get("UTC", NULL);
    dur = window_duration(window);
    spread = dur / 2;
    spread = (int64_t)(kf_fnv1a_str(KF_FNV1A_BASIS, name ? name : "") % (uint64_t)spread);
    today = (int64_t)now + kf_tz_offset(tz, now);
    today = (today >= 0 ? today : today - (DAY - 1)) / DAY;
    for (int64_t d = today - LOOK_BACK; d <= today + LOOK_AHEAD; d++) {
        int64_t open, from, until;

        if (!opens_on(window, d))
            continue;
        open = kf_tz_to_utc(tz, d * DAY + start);
        from = open + spread;
        until = open + dur;
        if (until <= now)
            continue;
        if (from <= now) {
            if (next)
                *next = now;
            return true;
        }
        if (!best || from < best)
            best = from;
        if (open > now)
            break; /* later windows open later still */
    }
    if (next)
        *next = (time_t)best;
    return false;
}

void kf_window_check(const json_t *obj, const char *path, struct kf_causes *causes)
{
    json_t *w = kf_json_path(obj, path), *v;
    const char *zone = kf_json_str(w, "timeZone", NULL), *dur = kf_json_str(w, "duration", NULL);
    struct kf_strbuf why = KF_STRBUF_INIT;
    int64_t ms;
    size_t i;

    char field[96];

    if (!json_is_object(w))
        return;
    snprintf(field, sizeof(field), "%s.duration", path);
    if (dur && kf_parse_duration_ms(dur, &ms) == 0 &&
        (ms < MIN_DURATION * 1000LL || ms > MAX_DURATION * 1000LL))
        kf_causes_add(causes, "FieldValueInvalid", field, "must be between 1h and 7d (got \"%s\")",
                      dur);
    snprintf(field, sizeof(field), "%s.timeZone", path);
    if (zone && !kf_tz_get(zone, &why))
        kf_causes_add(causes, "FieldValueInvalid", field,
                      "%s: use an IANA zone name such as \"UTC\" or \"Asia/Shanghai\"", why.buf);
    json_array_foreach(json_object_get(w, "exclusions"), i, v)
    {
        const char *from = kf_json_str(v, "from", NULL), *to = kf_json_str(v, "to", NULL);
        int64_t f = 0, t = 0;

        snprintf(field, sizeof(field), "%s.exclusions[%zu]", path, i);
        if (parse_date(from, &f) < 0)
            kf_causes_add(causes, "FieldValueInvalid", field,
                          "from \"%s\" is not a date \"YYYY-MM-DD\" (1970 or later)",
                          from ? from : "");
        else if (to && parse_date(to, &t) < 0)
            kf_causes_add(causes, "FieldValueInvalid", field,
                          "to \"%s\" is not a date \"YYYY-MM-DD\" (1970 or later)", to);
        else if (to && t < f)
            kf_causes_add(causes, "FieldValueInvalid", field, "to \"%s\" is before from \"%s\"", to,
                          from);
    }
    kf_strbuf_release(&why);
}
