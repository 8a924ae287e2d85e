/* fleet-window.c: a stand-in for kf_window_allows (kfleet/window.h) over
 * today's window fields: days (UTC weekdays; absent: every day), start
 * ("HH:MM" UTC) and duration. A cluster's own start is spread over the
 * first half of each opening by a hash of its name, so that thousands of
 * clusters with the same window do not all begin in its first second; it
 * may start from its offset to the window's end. The upgrade work of issue
 * 14 replaces this file (time zones, exclusions). */
#include <stdio.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/window.h"

#define DAY_S (24 * 3600)

static int weekday_index(const char *d)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };

    for (int i = 0; i < 7; i++)
        if (d && strcmp(days[i], d) == 0)
            return i;
    return -1;
}

static bool day_open(const json_t *days, int64_t open_s)
{
    /* 1970-01-01 was a Thursday (index 4) */
    int wd = (int)(((open_s / DAY_S) % 7 + 4) % 7);
    size_t i;
    json_t *v;

    if (json_array_size(days) == 0)
        return true;
    json_array_foreach(days, i, v) if (weekday_index(json_string_value(v)) == wd) return true;
    return false;
}

bool kf_window_allows(const json_t *window, const char *name, time_t now, time_t *next)
{
    const char *start = kf_json_str(window, "start", NULL);
    const char *dur = kf_json_str(window, "duration", "4h");
    const json_t *days = kf_json_path(window, "days");
    int64_t dur_ms, midnight = (int64_t)now - (int64_t)now % DAY_S, offset;
    int hh, mm;

    if (next)
        *next = now;
    if (!window || !start || sscanf(start, "%d:%d", &hh, &mm) != 2 ||
        kf_parse_duration_ms(dur, &dur_ms) < 0 || dur_ms < 2000)
        return true;
    offset = (int64_t)(kf_fnv1a_str(KF_FNV1A_BASIS, name ? name : "") % (uint64_t)(dur_ms / 2000));
    /* an opening of the last 7 days may still be open; else the next one */
    for (int back = 7; back >= -8; back--) {
        int64_t open = midnight - back * DAY_S + (hh * 60 + mm) * 60;

        if (!day_open(days, open) || now >= open + dur_ms / 1000)
            continue;
        if (now >= open + offset)
            return true;
        if (next)
            *next = (time_t)(open + offset);
        return false;
    }
    if (next)
        *next = now + DAY_S;
    return false;
}
