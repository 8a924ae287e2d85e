/* test-cidr.c: CIDR parsing, canonical formatting and block arithmetic, as
 * an operator typing ranges into a GuestCluster or IPPool would meet them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "kfleet/cidr.h"
#include "kfleet/error.h"
#include "kfleet/strbuf.h"

static struct kf_cidr parse_ok(const char *s)
{
    struct kf_cidr c;
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_cidr_parse(s, &c, &err) != 0)
        fail_msg("\"%s\" did not parse: %s", s, err.buf);
    kf_strbuf_release(&err);
    return c;
}

static void assert_roundtrip(const char *s)
{
    struct kf_cidr c = parse_ok(s);
    char buf[KF_CIDR_STRLEN];

    assert_string_equal(kf_cidr_format(&c, buf, sizeof(buf)), s);
}

static void test_ipv4_roundtrip(void **state)
{
    assert_roundtrip("10.0.0.0/8");
    assert_roundtrip("10.8.0.0/14");
    assert_roundtrip("192.168.1.128/25");
    assert_roundtrip("0.0.0.0/0");
    assert_roundtrip("255.255.255.255/32");
    assert_roundtrip("172.16.0.0/20");
}

static void test_ipv6_roundtrip(void **state)
{
    assert_roundtrip("fd00::/8");
    assert_roundtrip("2001:db8::/32");
    assert_roundtrip("::/0");
    assert_roundtrip("2001:db8:0:1::/64");
    assert_roundtrip("fc00:1:2:3:4:5:6:7/128");
}

static void test_host_bits_named(void **state)
{
    struct kf_cidr c = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;

    assert_int_equal(kf_cidr_parse("10.9.0.0/14", &c, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "host bits set"));
    assert_non_null(strstr(err.buf, "10.8.0.0/14"));
    assert_int_equal(c.family, 0); /* untouched */
    kf_strbuf_release(&err);
}

static void test_rejects(void **state)
{
    static const char *const bad[] = {
        "",           "10.0.0.0",    "10.0.0.0/",    "10.0.0.0/33", "10.0.0.0/08", "010.0.0.0/8",
        "10.0.0/8",   "10.0.0.0/8 ", " 10.0.0.0/8",  "10.0.0.0/-1", "10.0.0.0/+8", "256.0.0.0/8",
        "fd00::/129", "fd00:::/8",   "10.0.0.0/8/8", "a.b.c.d/8",   "1.2.3.4/32x", "10.0.0.0/0008",
    };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_cidr c;

    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++) {
        if (kf_cidr_parse(bad[i], &c, &err) != -EINVAL)
            fail_msg("\"%s\" parsed but should not", bad[i]);
        assert_true(err.len > 0);
    }
    assert_int_equal(kf_cidr_parse(NULL, &c, &err), -EINVAL);
    kf_strbuf_release(&err);
}

static void test_overlap_contains(void **state)
{
    struct kf_cidr a = parse_ok("10.8.0.0/14"), b = parse_ok("10.10.0.0/16");
    struct kf_cidr c = parse_ok("10.12.0.0/16"), d = parse_ok("10.11.255.0/24");
    struct kf_cidr v6 = parse_ok("::/0");

    assert_true(kf_cidr_overlaps(&a, &b));
    assert_true(kf_cidr_overlaps(&b, &a));
    assert_false(kf_cidr_overlaps(&a, &c));
    assert_true(kf_cidr_contains(&a, &b));
    assert_false(kf_cidr_contains(&b, &a));
    assert_true(kf_cidr_contains(&a, &d));
    assert_true(kf_cidr_contains(&a, &a));
    assert_false(kf_cidr_overlaps(&a, &v6)); /* families never overlap */
    assert_false(kf_cidr_equal(&a, &b));
}

static void test_sizes_and_nth(void **state)
{
    struct kf_cidr svc = parse_ok("172.16.0.0/20"), ip;
    char buf[KF_CIDR_STRLEN];

    assert_int_equal(kf_cidr_size(&svc), 4096);
    assert_int_equal(kf_cidr_nth(&svc, 1, &ip), 0);
    assert_string_equal(kf_ip_format(&ip, buf, sizeof(buf)), "172.16.0.1");
    assert_int_equal(kf_cidr_nth(&svc, 10, &ip), 0);
    assert_string_equal(kf_ip_format(&ip, buf, sizeof(buf)), "172.16.0.10");
    assert_int_equal(kf_cidr_nth(&svc, 4096, &ip), -ERANGE);
    assert_int_equal(kf_prefix_for_size(32, 300), 23);
    assert_int_equal(kf_prefix_for_size(32, 256), 24);
    assert_int_equal(kf_prefix_for_size(32, 1), 32);
    assert_int_equal(kf_prefix_for_size(128, 1u << 20), 108);
    assert_int_equal(kf_cidr_size(&(struct kf_cidr){ .family = 6, .prefix = 48 }), UINT64_MAX);
    ip = kf_cidr4(0x0a0b0c0d, 16);
    assert_string_equal(kf_cidr_format(&ip, buf, sizeof(buf)), "10.11.0.0/16");
}

static void test_ip_parse(void **state)
{
    struct kf_cidr ip;
    char buf[KF_CIDR_STRLEN];

    assert_int_equal(kf_ip_parse("10.0.0.7", &ip, NULL), 0);
    assert_int_equal(ip.prefix, 32);
    assert_string_equal(kf_ip_format(&ip, buf, sizeof(buf)), "10.0.0.7");
    assert_int_equal(kf_ip_parse("10.0.0.7/32", &ip, NULL), -EINVAL);
    assert_int_equal(kf_ip_parse("fe80::1", &ip, NULL), 0);
    assert_int_equal(ip.family, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_roundtrip),   cmocka_unit_test(test_ipv6_roundtrip),
        cmocka_unit_test(test_host_bits_named),  cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_overlap_contains), cmocka_unit_test(test_sizes_and_nth),
        cmocka_unit_test(test_ip_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
