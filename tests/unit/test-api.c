/* test-api.c: the API server's pure parts: request-target decoding, query
 * booleans, listen addresses and loopback, the token file, the role table
 * and its messages, and kfleetd's compaction target. (The server itself is
 * tested end to end by tests/integration/test_api_*.py.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "kfleet/api.h"
#include "kfleet/kind.h"
#include "kfleet/strbuf.h"
#include "api/api-internal.h"
#include "daemon/daemon.h"

static void test_parse_uri(void **state)
{
    struct api_query q;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path;

    assert_int_equal(api_parse_uri("/apis/kfleet.io/v1/regions?labelSelector=env+in+%28a%2Cb%29"
                                   "&limit=5&watch&limit=7",
                                   &path, &q, &err),
                     0);
    assert_string_equal(path, "/apis/kfleet.io/v1/regions");
    assert_string_equal(api_query_get(&q, "labelSelector"), "env in (a,b)");
    assert_string_equal(api_query_get(&q, "limit"), "7"); /* the last one wins */
    assert_string_equal(api_query_get(&q, "watch"), "");
    assert_null(api_query_get(&q, "continue"));
    free(path);
    api_query_release(&q);

    /* '+' is a space only in the query; %2F stays inside a segment */
    assert_int_equal(api_parse_uri("/a+b/c%2Fd", &path, &q, &err), 0);
    assert_string_equal(path, "/a+b/c/d");
    assert_int_equal(q.n, 0);
    free(path);
    api_query_release(&q);

    assert_int_equal(api_parse_uri("/x?a=%zz", &path, &q, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "percent escape"));
    assert_int_equal(api_parse_uri("/x%2", &path, &q, &err), -EBADMSG);
    assert_int_equal(api_parse_uri("/x%00y", &path, &q, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "NUL"));
    kf_strbuf_release(&err);
}

static void test_query_bool(void **state)
{
    struct api_query q;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path;
    bool b = false;

    assert_int_equal(api_parse_uri("/?a=true&b=0&c&d=maybe&e=1", &path, &q, NULL), 0);
    assert_int_equal(api_query_bool(&q, "a", &b, &err), 0);
    assert_true(b);
    assert_int_equal(api_query_bool(&q, "b", &b, &err), 0);
    assert_false(b);
    assert_int_equal(api_query_bool(&q, "c", &b, &err), 0);
    assert_true(b);
    assert_int_equal(api_query_bool(&q, "e", &b, &err), 0);
    assert_true(b);
    assert_int_equal(api_query_bool(&q, "absent", &b, &err), 0);
    assert_false(b);
    assert_int_equal(api_query_bool(&q, "d", &b, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "\"maybe\""));
    free(path);
    api_query_release(&q);
    kf_strbuf_release(&err);
}

static void test_listen(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *host;
    uint16_t port;

    assert_int_equal(kf_api_parse_listen("127.0.0.1:7480", &host, &port, &err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7480);
    free(host);
    assert_int_equal(kf_api_parse_listen("[::1]:0", &host, &port, &err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    free(host);
    assert_int_equal(kf_api_parse_listen("::1:80", &host, &port, &err), -EINVAL);
    assert_int_equal(kf_api_parse_listen("host", &host, &port, &err), -EINVAL);
    assert_int_equal(kf_api_parse_listen("h:70000", &host, &port, &err), -EINVAL);
    assert_int_equal(kf_api_parse_listen(":80", &host, &port, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "0.0.0.0"));

    assert_true(kf_api_host_is_loopback("127.0.0.1"));
    assert_true(kf_api_host_is_loopback("127.1.2.3"));
    assert_true(kf_api_host_is_loopback("::1"));
    assert_true(kf_api_host_is_loopback("localhost"));
    assert_false(kf_api_host_is_loopback("0.0.0.0"));
    assert_false(kf_api_host_is_loopback("::"));
    assert_false(kf_api_host_is_loopback("10.1.2.3"));
    assert_false(kf_api_host_is_loopback(""));
    kf_strbuf_release(&err);
}

static char *write_file(const char *content)
{
    char *path = kf_xstrdup("/tmp/kfleet-test-api-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

static void test_tokens(void **state)
{
    char *path = write_file("# comment\n\n  tok-alice-1234 , alice , admin\r\n"
                            "tok-victor-1234,victor,viewer\ntok-agent-1234,h1,agent\n");
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct api_tokens *t;
    const char *user;
    enum api_role role;

    assert_int_equal(api_tokens_load(path, &t, &err), 0);
    assert_int_equal(api_tokens_count(t), 3);
    assert_true(api_tokens_find(t, "tok-alice-1234", &user, &role));
    assert_string_equal(user, "alice");
    assert_int_equal(role, API_ROLE_ADMIN);
    assert_true(api_tokens_find(t, "tok-agent-1234", &user, &role));
    assert_int_equal(role, API_ROLE_AGENT);
    assert_false(api_tokens_find(t, "tok-alice-123", &user, &role));
    assert_false(api_tokens_find(t, "", &user, &role));
    api_tokens_free(t);
    unlink(path);
    free(path);

    static const struct {
        const char *content, *words;
    } bad[] = {
        { "tok-12345678,bob,root\n", ":1: unknown role \"root\"" },
        { "\ntok-12345678,bob\n", ":2: expected \"token,user,role\"" },
        { "tok-12345678,bob,admin,extra\n", "expected" },
        { "short,bob,admin\n", "shorter than 8" },
        { "tok 12345678,bob,admin\n", "not printable" },
        { "tok-12345678,,admin\n", "expected" },
        { "tok-12345678,a,admin\ntok-12345678,b,viewer\n", "given twice" },
    };
    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++) {
        path = write_file(bad[i].content);
        kf_strbuf_reset(&err);
        assert_int_equal(api_tokens_load(path, &t, &err), -EINVAL);
        if (!strstr(err.buf, bad[i].words))
            fail_msg("\"%s\": error \"%s\" lacks \"%s\"", bad[i].content, err.buf, bad[i].words);
        unlink(path);
        free(path);
    }
    assert_true(api_tokens_load("/nonexistent/tokens", &t, &err) < 0);
    assert_non_null(strstr(err.buf, "cannot read token file"));
    kf_strbuf_release(&err);
}

static void test_roles(void **state)
{
    const struct kf_kind *gc = kf_kind_find("GuestCluster");
    const struct kf_kind *host = kf_kind_find("Host");
    const struct kf_kind *cpm = kf_kind_find("ControlPlaneMember");
    const struct kf_kind *ev = kf_kind_find("Event");
    struct kf_strbuf out = KF_STRBUF_INIT;

    assert_non_null(gc);
    assert_non_null(ev);
    assert_true(ev->system);
    for (int r = 0; r < API_ROLE_N; r++) {
        assert_true(api_role_allows((enum api_role)r, API_VERB_GET, gc, NULL));
        assert_true(api_role_allows((enum api_role)r, API_VERB_WATCH, ev, NULL));
    }
    assert_true(api_role_allows(API_ROLE_EDITOR, API_VERB_CREATE, gc, NULL));
    assert_true(api_role_allows(API_ROLE_EDITOR, API_VERB_UPDATE, gc, "status"));
    assert_false(api_role_allows(API_ROLE_EDITOR, API_VERB_DELETE, ev, NULL));
    assert_true(api_role_allows(API_ROLE_ADMIN, API_VERB_DELETE, ev, NULL));
    assert_false(api_role_allows(API_ROLE_VIEWER, API_VERB_PATCH, gc, NULL));
    assert_false(api_role_allows(API_ROLE_VIEWER, API_VERB_DELETECOLLECTION, gc, NULL));
    assert_true(api_role_allows(API_ROLE_AGENT, API_VERB_CREATE, host, NULL));
    assert_true(api_role_allows(API_ROLE_AGENT, API_VERB_PATCH, host, "status"));
    assert_true(api_role_allows(API_ROLE_AGENT, API_VERB_UPDATE, cpm, "status"));
    assert_false(api_role_allows(API_ROLE_AGENT, API_VERB_UPDATE, cpm, NULL));
    assert_false(api_role_allows(API_ROLE_AGENT, API_VERB_DELETE, host, NULL));
    assert_false(api_role_allows(API_ROLE_AGENT, API_VERB_CREATE, gc, NULL));

    api_roles_allowing(API_VERB_CREATE, gc, NULL, &out);
    assert_string_equal(out.buf, "editor or admin");
    kf_strbuf_reset(&out);
    api_roles_allowing(API_VERB_DELETE, ev, NULL, &out);
    assert_string_equal(out.buf, "admin");
    kf_strbuf_reset(&out);
    api_roles_allowing(API_VERB_PATCH, host, "status", &out);
    assert_string_equal(out.buf, "agent, editor or admin");
    kf_strbuf_release(&out);
}

static void test_compact_target(void **state)
{
    struct daemon_maint_config c = { .compact_keep_revs = 100, .compact_retention_ms = 60000 };
    int64_t ms[] = { 0, 30000, 60000, 90000 };
    int64_t rev[] = { 10, 500, 900, 1500 };

    /* at t=100 s: revisions up to 500 were written before t-60 s (sample at
     * 30 s), and 1,500 - 100 = 1,400 are beyond the count: the smaller wins */
    assert_int_equal(daemon_compact_target(&c, 1500, 100000, ms, rev, 4), 500);
    /* nothing old enough yet */
    assert_int_equal(daemon_compact_target(&c, 1500, 50000, ms, rev, 4), 0);
    /* a small store: the count bound keeps everything */
    assert_int_equal(daemon_compact_target(&c, 80, 100000, ms, rev, 4), 0);
    /* retention 0: only the count */
    c.compact_retention_ms = 0;
    assert_int_equal(daemon_compact_target(&c, 1500, 100000, ms, rev, 4), 1400);
    c.compact_keep_revs = 0;
    assert_int_equal(daemon_compact_target(&c, 1500, 100000, ms, rev, 0), 1500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_uri), cmocka_unit_test(test_query_bool),
        cmocka_unit_test(test_listen),    cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_roles),     cmocka_unit_test(test_compact_target),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
