/* test-etcd-scan.c: the reader of etcd's range answers (store-etcd-scan.c)
 * on a real answer's shape, on answers it must refuse, and held to
 * jansson's reading of thousands of random answers, their truncations and
 * their corruptions (etcd-scan-ref.h; seeded, reproducible). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "etcd-scan-ref.h"
#include "kfleet/base64.h"
#include "kfleet/etcd.h"
#include "kfleet/strbuf.h"

static int scan(const char *body, struct etcd_scan_ref *got, struct kf_etcd_scanned_range *range)
{
    memset(got, 0, sizeof(*got));
    return kf_etcd_scan_range(body, strlen(body), etcd_scan_ref_collect, got, range);
}

/* What etcd 3.4's gateway sends for a range of two keys. */
static void test_reads_a_gateway_answer(void **state)
{
    const char *body =
        "{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
        "\"10276657743932975437\",\"revision\":\"10071\",\"raft_term\":\"2\"},"
        "\"kvs\":[{\"key\":\"L3AvZ3Vlc3RjbHVzdGVycy9hLTE=\",\"create_revision\":\"7\","
        "\"mod_revision\":\"9\",\"version\":\"2\",\"value\":\"eyJhIjoxfQ==\"},"
        "{\"key\":\"L3AvZ3Vlc3RjbHVzdGVycy9hLTI=\",\"create_revision\":\"8\","
        "\"mod_revision\":\"8\",\"version\":\"1\",\"value\":\"e30=\",\"lease\":\"0\"}],"
        "\"more\":true,\"count\":\"5\"}\n";
    struct etcd_scan_ref got;
    struct kf_etcd_scanned_range range;
    struct kf_strbuf key = KF_STRBUF_INIT;

    (void)state;
    assert_int_equal(scan(body, &got, &range), 0);
    assert_int_equal(range.header_rev, 10071);
    assert_int_equal(range.count, 5);
    assert_true(range.more);
    assert_int_equal(range.n_kvs, 2);
    assert_int_equal(got.n, 2);
    assert_int_equal(kf_base64_decode(&key, got.kvs[1].key, got.kvs[1].key_len), 0);
    assert_string_equal(key.buf, "/p/guestclusters/a-2");
    assert_string_equal(got.kvs[0].value, "eyJhIjoxfQ==");
    assert_int_equal(got.kvs[0].create_rev, 7);
    assert_int_equal(got.kvs[0].mod_rev, 9);
    assert_int_equal(got.kvs[1].mod_rev, 8);
    etcd_scan_ref_release(&got);
    kf_strbuf_release(&key);

    /* an empty range: the gateway leaves kvs, more and count out */
    assert_int_equal(scan("{\"header\":{\"revision\":\"3\"}}", &got, &range), 0);
    assert_int_equal(range.n_kvs, 0);
    assert_int_equal(range.header_rev, 3);
    assert_false(range.more);
    etcd_scan_ref_release(&got);

    /* escapes, as any JSON writer may put them, are read */
    assert_int_equal(
        scan("{\"k\\u0076s\":[{\"key\":\"YS9i\\/Yw==\",\"mod_revision\":12}]}", &got, &range), 0);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.kvs[0].key, "YS9i/Yw==");
    assert_int_equal(got.kvs[0].mod_rev, 12);
    etcd_scan_ref_release(&got);
}

/* {"x":[[...]]}: the innermost of `levels` arrays is at depth `levels` */
static void nested(char *buf, int levels)
{
    size_t n = (size_t)snprintf(buf, 8, "{\"x\":");

    for (int i = 0; i < levels; i++)
        buf[n++] = '[';
    for (int i = 0; i < levels; i++)
        buf[n++] = ']';
    buf[n++] = '}';
    buf[n] = '\0';
}

static void test_refuses_what_is_not_a_range_answer(void **state)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{",
        "{\"kvs\":[]}}",
        "{\"kvs\":[]} x",
        "{\"kvs\":{}}",
        "{\"kvs\":[1]}",
        "{\"kvs\":[{\"key\":1}]}",
        "{\"kvs\":[{\"mod_revision\":\"1x\"}]}",
        "{\"kvs\":[{\"mod_revision\":1.5}]}",
        "{\"header\":{\"revision\":\"x\"}}",
        "{\"header\":[]}",
        "{\"more\":\"yes\"}",
        "{\"error\":\"etcdserver: mvcc: required revision has been compacted\",\"code\":11}",
        "{\"kvs\":[{\"key\":\"\\ud800\"}]}",
        "{\"kvs\":[{\"key\":\"\\q\"}]}",
        "{\"kvs\":[{\"key\":\"a\nb\"}]}",
        "{\"x\":01}",
        "{\"x\":tru}",
    };
    struct etcd_scan_ref got;
    struct kf_etcd_scanned_range range;
    char deep[200];

    (void)state;
    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++) {
        assert_int_equal(scan(bad[i], &got, &range), -EBADMSG);
        etcd_scan_ref_release(&got);
        assert_int_equal(etcd_scan_ref_check(bad[i], strlen(bad[i])), -EBADMSG);
    }
    /* an unknown field nested deeper than any etcd answer; one level less
     * is read */
    nested(deep, KF_ETCD_SCAN_MAX_DEPTH + 1);
    assert_int_equal(scan(deep, &got, &range), -EBADMSG);
    etcd_scan_ref_release(&got);
    nested(deep, KF_ETCD_SCAN_MAX_DEPTH);
    assert_int_equal(scan(deep, &got, &range), 0);
    etcd_scan_ref_release(&got);
}

static int refuse_second(void *arg, const struct kf_etcd_scanned_kv *kv)
{
    int *seen = arg;

    (void)kv;
    return ++*seen == 2 ? -E2BIG : 0;
}

static void test_the_callback_can_stop_it(void **state)
{
    const char *body = "{\"kvs\":[{\"key\":\"YQ==\"},{\"key\":\"Yg==\"},{\"key\":\"Yw==\"}]}";
    struct kf_etcd_scanned_range range = { .header_rev = 77 };
    int seen = 0;

    (void)state;
    assert_int_equal(kf_etcd_scan_range(body, strlen(body), refuse_second, &seen, &range), -E2BIG);
    assert_int_equal(seen, 2);
    assert_int_equal(range.header_rev, 77); /* untouched on failure */
}

/* --- against jansson ------------------------------------------------------ */

static json_t *random_int(unsigned *seed)
{
    long long v = (long long)rand_r(seed) * rand_r(seed) - (rand_r(seed) % 4 == 0 ? 1000 : 0);
    char buf[32];

    if (rand_r(seed) % 2)
        return json_integer(v);
    snprintf(buf, sizeof(buf), "%lld", v);
    return json_string(buf);
}

static json_t *random_string(unsigned *seed)
{
    static const char chars[] = "ABCxyz0189+/=\"\\\n\t é☃";
    char buf[64];
    size_t n = (size_t)rand_r(seed) % 20, o = 0;

    for (size_t i = 0; i < n && o + 4 < sizeof(buf); i++) {
        size_t k = (size_t)rand_r(seed) % (sizeof(chars) - 1);

        /* whole UTF-8 sequences only */
        while (k > 0 && ((unsigned char)chars[k] & 0xc0) == 0x80)
            k--;
        do
            buf[o++] = chars[k++];
        while (((unsigned char)chars[k] & 0xc0) == 0x80);
    }
    return json_stringn(buf, o);
}

static json_t *random_value(unsigned *seed, int depth)
{
    switch (rand_r(seed) % (depth > 3 ? 4 : 6)) {
    case 0:
        return random_int(seed);
    case 1:
        return random_string(seed);
    case 2:
        return rand_r(seed) % 2 ? json_true() : json_null();
    case 3:
        return json_real(rand_r(seed) / 7.0);
    case 4: {
        json_t *a = json_array();

        for (int i = rand_r(seed) % 4; i > 0; i--)
            json_array_append_new(a, random_value(seed, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        char k[8];

        for (int i = rand_r(seed) % 4; i > 0; i--) {
            snprintf(k, sizeof(k), "u%d", rand_r(seed) % 5);
            json_object_set_new(o, k, random_value(seed, depth + 1));
        }
        return o;
    }
    }
}

/* A range answer, mostly as etcd writes it, sometimes with a field of the
 * wrong type or an unknown one. */
static json_t *random_answer(unsigned *seed)
{
    json_t *top = json_object(), *kvs = json_array();
    int wrong = rand_r(seed) % 8 == 0;

    json_object_set_new(top, "header",
                        json_pack("{s:s, s:o}", "cluster_id", "1", "revision", random_int(seed)));
    for (int i = rand_r(seed) % 6; i > 0; i--) {
        struct kf_strbuf b = KF_STRBUF_INIT;
        json_t *kv = json_object();
        char raw[24];
        size_t n = (size_t)rand_r(seed) % sizeof(raw);

        for (size_t k = 0; k < n; k++)
            raw[k] = (char)rand_r(seed);
        kf_base64_encode(&b, raw, n);
        json_object_set_new(kv, "key", json_string(b.buf));
        if (rand_r(seed) % 5)
            json_object_set_new(kv, "value", json_string(b.buf));
        json_object_set_new(kv, "create_revision", random_int(seed));
        json_object_set_new(kv, "mod_revision", random_int(seed));
        if (rand_r(seed) % 3 == 0)
            json_object_set_new(kv, "extra", random_value(seed, 3));
        json_array_append_new(kvs, kv);
        kf_strbuf_release(&b);
    }
    json_object_set_new(top, "kvs", kvs);
    if (rand_r(seed) % 2)
        json_object_set_new(top, "more", json_boolean(rand_r(seed) % 2));
    json_object_set_new(top, "count", random_int(seed));
    if (rand_r(seed) % 3 == 0)
        json_object_set_new(top, "unknown", random_value(seed, 1));
    if (wrong) {
        static const char *const fields[] = { "header", "kvs", "more", "count" };

        json_object_set_new(top, fields[rand_r(seed) % 4], random_value(seed, 1));
    }
    return top;
}

static void test_agrees_with_jansson(void **state)
{
    static const size_t flags[] = { JSON_COMPACT, JSON_INDENT(2), JSON_COMPACT | JSON_ESCAPE_SLASH,
                                    JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH };
    unsigned seed = 20261128;
    int accepted = 0, refused = 0;

    (void)state;
    for (int round = 0; round < 3000; round++) {
        json_t *answer = random_answer(&seed);
        char *body = json_dumps(answer, flags[round % KF_ARRAY_SIZE(flags)]);
        size_t len = strlen(body);

        if (etcd_scan_ref_check(body, len) == 0)
            accepted++;
        else
            refused++;
        /* every truncation is refused (or has no verdict) */
        if (round % 10 == 0)
            for (size_t cut = 0; cut < len; cut++)
                etcd_scan_ref_check(body, cut);
        /* corruptions: a byte changed or removed */
        for (int k = 0; k < 8 && len > 0; k++) {
            char *c = kf_xmalloc(len);
            size_t at = (size_t)rand_r(&seed) % len;

            memcpy(c, body, len);
            if (k % 2) {
                c[at] = "{}[],:\"\\ 0-e.tfnu"[rand_r(&seed) % 17];
                etcd_scan_ref_check(c, len);
            } else {
                memmove(c + at, c + at + 1, len - at - 1);
                etcd_scan_ref_check(c, len - 1);
            }
            free(c);
        }
        free(body);
        json_decref(answer);
    }
    /* both kinds were seen: the check compared readings, not only errors */
    assert_true(accepted > 1000);
    assert_true(refused > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_a_gateway_answer),
        cmocka_unit_test(test_refuses_what_is_not_a_range_answer),
        cmocka_unit_test(test_the_callback_can_stop_it),
        cmocka_unit_test(test_agrees_with_jansson),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
