/* test-window.c: maintenance windows (kfleet/window.h) and the time zones
 * under them (kfleet/tz.h), as an operator setting a cluster's window meets
 * them: when a cluster may start, when it may next start, in its own time
 * zone, with exclusions, spread over the window, and what admission says
 * about a bad window. Instants are written as RFC 3339 UTC text. */
#include "fleet-test.h"

#include "kfleet/base.h"
#include "kfleet/tz.h"
#include "kfleet/window.h"

static time_t T(const char *rfc3339)
{
    int64_t ms;

    assert_int_equal(kf_time_parse_rfc3339(rfc3339, &ms), 0);
    return (time_t)(ms / 1000);
}

/* Whether NAME may start at NOW under WINDOW (JSON text); *next set. */
static bool allows(const char *window, const char *name, const char *now, time_t *next)
{
    json_t *w = window ? J(window) : NULL;
    bool r = kf_window_allows(w, name, T(now), next);

    json_decref(w);
    return r;
}

static void test_no_window_always(void **state)
{
    time_t next = 0;

    (void)state;
    assert_true(allows(NULL, "web", "2026-12-07T11:00:00Z", &next));
    assert_int_equal(next, T("2026-12-07T11:00:00Z"));
}

static void test_daily_utc(void **state)
{
    const char *w = "{'start':'02:00','duration':'4h'}";
    time_t next = 0;

    (void)state;
    /* before the window: the next start is inside its first half */
    assert_false(allows(w, "web", "2026-12-07T01:00:00Z", &next));
    assert_true(next >= T("2026-12-07T02:00:00Z") && next < T("2026-12-07T04:00:00Z"));
    /* from that start on until the window closes */
    assert_true(allows(w, "web", "2026-12-07T05:59:59Z", NULL));
    assert_false(allows(w, "web", "2026-12-07T06:00:00Z", &next));
    assert_true(next >= T("2026-12-08T02:00:00Z") && next < T("2026-12-08T04:00:00Z"));
}

static void test_next_is_allowed_and_exact(void **state)
{
    json_t *w = J("{'start':'22:30','duration':'2h'}");
    time_t next = 0, again = 0;

    (void)state;
    assert_false(kf_window_allows(w, "db-7", T("2026-12-07T12:00:00Z"), &next));
    assert_true(kf_window_allows(w, "db-7", next, &again));
    assert_int_equal(again, next);
    assert_false(kf_window_allows(w, "db-7", next - 1, NULL));
    /* a window that crosses midnight is still open after it */
    assert_true(kf_window_allows(w, "db-7", T("2026-12-08T00:29:59Z"), NULL));
    json_decref(w);
}

static void test_starts_spread(void **state)
{
    json_t *w = J("{'start':'02:00','duration':'4h'}");
    time_t open = T("2026-12-07T02:00:00Z"), seen_min = 0, seen_max = 0;
    int distinct = 0;
    static char used[7200];

    (void)state;
    memset(used, 0, sizeof(used));
    for (int i = 0; i < 2000; i++) {
        char name[32];
        time_t next;

        snprintf(name, sizeof(name), "cluster-%05d", i);
        assert_false(kf_window_allows(w, name, open - 60, &next));
        /* every start lies in the window's first half */
        assert_true(next >= open && next < open + 7200);
        if (!used[next - open]++)
            distinct++;
        seen_min = !seen_min || next < seen_min ? next : seen_min;
        seen_max = next > seen_max ? next : seen_max;
    }
    /* 2,000 clusters do not begin in the same second: spread over the half */
    assert_true(distinct > 1500);
    assert_true(seen_max - seen_min > 6000);
    json_decref(w);
}

static void test_days(void **state)
{
    const char *w = "{'days':['Sat'],'start':'02:00','duration':'3h'}";
    time_t next = 0;

    (void)state;
    /* 2026-12-09 is a Wednesday: the next window is Saturday 12-12 */
    assert_false(allows(w, "web", "2026-12-09T03:00:00Z", &next));
    assert_true(next >= T("2026-12-12T02:00:00Z") && next < T("2026-12-12T03:30:00Z"));
    assert_true(allows(w, "web", "2026-12-12T04:59:00Z", NULL));
    assert_false(allows(w, "web", "2026-12-13T04:00:00Z", NULL));
}

static void test_long_window_spans_days(void **state)
{
    /* Friday 22:00 for 2 days: open on Sunday afternoon too */
    const char *w = "{'days':['Fri'],'start':'22:00','duration':'2d'}";

    (void)state;
    assert_true(allows(w, "web", "2026-12-13T15:00:00Z", NULL));
    assert_false(allows(w, "web", "2026-12-13T22:00:00Z", NULL));
}

static void test_time_zone(void **state)
{
    const char *sh = "{'start':'02:00','duration':'1h','timeZone':'Asia/Shanghai'}";
    const char *be = "{'days':['Sat'],'start':'02:00','duration':'1h','timeZone':'Europe/Berlin'}";
    time_t next = 0;

    (void)state;
    /* 02:00 in Shanghai (UTC+8) is 18:00 UTC the day before */
    assert_false(allows(sh, "web", "2026-12-07T17:59:00Z", &next));
    assert_true(next >= T("2026-12-07T18:00:00Z") && next < T("2026-12-07T18:30:00Z"));
    assert_true(allows(sh, "web", "2026-12-07T18:59:59Z", NULL));
    assert_false(allows(sh, "web", "2026-12-07T02:30:00Z", NULL));
    /* Berlin: UTC+1 in winter, UTC+2 in summer (Saturdays 2026-12-12, 2026-07-04) */
    assert_false(allows(be, "web", "2026-12-12T00:30:00Z", &next));
    assert_true(next >= T("2026-12-12T01:00:00Z") && next < T("2026-12-12T01:30:00Z"));
    assert_false(allows(be, "web", "2026-07-03T23:30:00Z", &next));
    assert_true(next >= T("2026-07-04T00:00:00Z") && next < T("2026-07-04T00:30:00Z"));
}

static void test_tz_offsets_and_gaps(void **state)
{
    const struct kf_tz *be = kf_tz_get("Europe/Berlin", NULL), *utc = kf_tz_get("UTC", NULL);
    struct kf_strbuf err = KF_STRBUF_INIT;

    (void)state;
    assert_non_null(be);
    assert_non_null(utc);
    assert_int_equal(kf_tz_offset(utc, T("2026-07-01T00:00:00Z")), 0);
    assert_int_equal(kf_tz_offset(be, T("2026-01-15T12:00:00Z")), 3600);
    assert_int_equal(kf_tz_offset(be, T("2026-07-15T12:00:00Z")), 7200);
    /* 2026-03-29 02:30 does not exist in Berlin (02:00 -> 03:00): it lands after the change */
    assert_true(kf_tz_to_utc(be, T("2026-03-29T02:30:00Z")) >= T("2026-03-29T01:00:00Z"));
    /* 2026-10-25 02:30 occurs twice: the first (summer time) */
    assert_int_equal(kf_tz_to_utc(be, T("2026-10-25T02:30:00Z")), T("2026-10-25T00:30:00Z"));
    /* the same zone twice is the same object; bad names say what is wrong */
    assert_ptr_equal(kf_tz_get("Europe/Berlin", NULL), be);
    assert_null(kf_tz_get("../../etc/passwd", &err));
    assert_non_null(strstr(err.buf, "not a time zone name"));
    assert_null(kf_tz_get("Mars/Olympus_Mons", &err));
    assert_non_null(strstr(err.buf, "unknown time zone \"Mars/Olympus_Mons\""));
    kf_strbuf_release(&err);
}

static void test_tzif_refuses_garbage(void **state)
{
    static const unsigned char short_header[] = { 'T', 'Z', 'i', 'f', '2' };
    unsigned char big_counts[44] = { 'T', 'Z', 'i', 'f', '2' };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_tz *tz = NULL;

    (void)state;
    assert_int_equal(kf_tz_parse("not a zone", 10, &tz, &err), -EINVAL);
    assert_int_equal(kf_tz_parse(short_header, sizeof(short_header), &tz, &err), -EINVAL);
    big_counts[32] = 0x7f; /* 2^30 transitions */
    big_counts[39] = 1;
    big_counts[43] = 4;
    assert_int_equal(kf_tz_parse(big_counts, sizeof(big_counts), &tz, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "out of range"));
    assert_null(tz);
    kf_strbuf_release(&err);
}

static void test_exclusions(void **state)
{
    const char *w = "{'start':'02:00','duration':'4h','exclusions':"
                    "[{'from':'2026-12-24','to':'2026-12-26','reason':'holidays'},"
                    "{'from':'2026-12-31'}]}";
    const char *all = "{'start':'02:00','exclusions':[{'from':'1970-01-01','to':'9999-12-31'}]}";
    time_t next = 0;

    (void)state;
    assert_true(allows(w, "web", "2026-12-23T05:00:00Z", NULL));
    assert_false(allows(w, "web", "2026-12-24T05:00:00Z", &next));
    assert_true(next >= T("2026-12-27T02:00:00Z") && next < T("2026-12-27T04:00:00Z"));
    assert_false(allows(w, "web", "2026-12-31T05:00:00Z", &next));
    assert_true(next >= T("2027-01-01T02:00:00Z") && next < T("2027-01-01T04:00:00Z"));
    /* every date excluded: never, and no next time */
    assert_false(allows(all, "web", "2026-12-24T05:00:00Z", &next));
    assert_int_equal(next, 0);
}

static void test_admission_says_what_to_fix(void **state)
{
    json_t *obj =
        J("{'spec':{'maintenanceWindow':{'start':'02:00','duration':'30m',"
          "'timeZone':'Mars/Base','exclusions':[{'from':'2026-02-30'},"
          "{'from':'2026-12-26','to':'2026-12-24'},{'from':'2026-12-24','to':'soon'}]}}}");
    json_t *good = J("{'spec':{'maintenanceWindow':{'start':'02:00','duration':'2h',"
                     "'timeZone':'Asia/Shanghai','exclusions':[{'from':'2028-02-29'}]}}}");
    struct kf_causes causes = KF_CAUSES_INIT, none = KF_CAUSES_INIT;
    struct kf_strbuf text = KF_STRBUF_INIT;

    (void)state;
    kf_window_check(obj, "spec.maintenanceWindow", &causes);
    kf_causes_format(&causes, &text);
    assert_int_equal(causes.n, 5);
    assert_non_null(strstr(text.buf, "spec.maintenanceWindow.duration: must be between 1h and 7d"));
    assert_non_null(strstr(text.buf, "spec.maintenanceWindow.timeZone: unknown time zone"));
    assert_non_null(strstr(text.buf, "exclusions[0]: from \"2026-02-30\" is not a date"));
    assert_non_null(strstr(text.buf, "exclusions[1]: to \"2026-12-24\" is before from"));
    assert_non_null(strstr(text.buf, "exclusions[2]: to \"soon\" is not a date"));
    kf_window_check(good, "spec.maintenanceWindow", &none);
    assert_int_equal(none.n, 0);
    kf_causes_release(&causes);
    kf_causes_release(&none);
    kf_strbuf_release(&text);
    json_decref(obj);
    json_decref(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_window_always),
        cmocka_unit_test(test_daily_utc),
        cmocka_unit_test(test_next_is_allowed_and_exact),
        cmocka_unit_test(test_starts_spread),
        cmocka_unit_test(test_days),
        cmocka_unit_test(test_long_window_spans_days),
        cmocka_unit_test(test_time_zone),
        cmocka_unit_test(test_tz_offsets_and_gaps),
        cmocka_unit_test(test_tzif_refuses_garbage),
        cmocka_unit_test(test_exclusions),
        cmocka_unit_test(test_admission_says_what_to_fix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
