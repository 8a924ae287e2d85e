/* test-api.c: the API server's pure parts: request-target decoding, query
 * booleans, listen addresses and loopback, the token file, the role table
 * and its messages, kfleetd's compaction target, Accept headers, aggregated
 * discovery against the legacy documents, and OpenAPI v2 as protocol
 * buffers (read back by a small reader here). (The server itself is
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
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/strbuf.h"
#include "api/api-internal.h"
#include "daemon/daemon.h"

static void test_parse_uri(void **state)
{
    struct api_query q;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path;

    assert_int_equal(kf_api_parse_uri("/apis/kfleet.io/v1/regions?labelSelector=env+in+%28a%2Cb%29"
                                      "&limit=5&watch&limit=7",
                                      &path, &q, &err),
                     0);
    assert_string_equal(path, "/apis/kfleet.io/v1/regions");
    assert_string_equal(kf_api_query_get(&q, "labelSelector"), "env in (a,b)");
    assert_string_equal(kf_api_query_get(&q, "limit"), "7"); /* the last one wins */
    assert_string_equal(kf_api_query_get(&q, "watch"), "");
    assert_null(kf_api_query_get(&q, "continue"));
    free(path);
    kf_api_query_release(&q);

    /* '+' is a space only in the query; %2F stays inside a segment */
    assert_int_equal(kf_api_parse_uri("/a+b/c%2Fd", &path, &q, &err), 0);
    assert_string_equal(path, "/a+b/c/d");
    assert_int_equal(q.n, 0);
    free(path);
    kf_api_query_release(&q);

    assert_int_equal(kf_api_parse_uri("/x?a=%zz", &path, &q, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "percent escape"));
    assert_int_equal(kf_api_parse_uri("/x%2", &path, &q, &err), -EBADMSG);
    assert_int_equal(kf_api_parse_uri("/x%00y", &path, &q, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "NUL"));
    kf_strbuf_release(&err);
}

static void test_query_bool(void **state)
{
    struct api_query q;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path;
    bool b = false;

    assert_int_equal(kf_api_parse_uri("/?a=true&b=0&c&d=maybe&e=1", &path, &q, NULL), 0);
    assert_int_equal(kf_api_query_bool(&q, "a", &b, &err), 0);
    assert_true(b);
    assert_int_equal(kf_api_query_bool(&q, "b", &b, &err), 0);
    assert_false(b);
    assert_int_equal(kf_api_query_bool(&q, "c", &b, &err), 0);
    assert_true(b);
    assert_int_equal(kf_api_query_bool(&q, "e", &b, &err), 0);
    assert_true(b);
    assert_int_equal(kf_api_query_bool(&q, "absent", &b, &err), 0);
    assert_false(b);
    assert_int_equal(kf_api_query_bool(&q, "d", &b, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "\"maybe\""));
    free(path);
    kf_api_query_release(&q);
    kf_strbuf_release(&err);
}

static void test_listen(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *host;
    uint16_t port;

    assert_int_equal(kf_parse_listen("127.0.0.1:7480", &host, &port, &err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7480);
    free(host);
    assert_int_equal(kf_parse_listen("[::1]:0", &host, &port, &err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    free(host);
    assert_int_equal(kf_parse_listen("::1:80", &host, &port, &err), -EINVAL);
    assert_int_equal(kf_parse_listen("host", &host, &port, &err), -EINVAL);
    assert_int_equal(kf_parse_listen("h:70000", &host, &port, &err), -EINVAL);
    assert_int_equal(kf_parse_listen(":80", &host, &port, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "0.0.0.0"));

    assert_true(kf_host_is_loopback("127.0.0.1"));
    assert_true(kf_host_is_loopback("127.1.2.3"));
    assert_true(kf_host_is_loopback("::1"));
    assert_true(kf_host_is_loopback("localhost"));
    assert_false(kf_host_is_loopback("0.0.0.0"));
    assert_false(kf_host_is_loopback("::"));
    assert_false(kf_host_is_loopback("10.1.2.3"));
    assert_false(kf_host_is_loopback(""));
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

    assert_int_equal(kf_api_tokens_load(path, &t, &err), 0);
    assert_int_equal(kf_api_tokens_count(t), 3);
    assert_true(kf_api_tokens_find(t, "tok-alice-1234", &user, &role));
    assert_string_equal(user, "alice");
    assert_int_equal(role, API_ROLE_ADMIN);
    assert_true(kf_api_tokens_find(t, "tok-agent-1234", &user, &role));
    assert_int_equal(role, API_ROLE_AGENT);
    assert_false(kf_api_tokens_find(t, "tok-alice-123", &user, &role));
    assert_false(kf_api_tokens_find(t, "", &user, &role));
    kf_api_tokens_free(t);
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
        assert_int_equal(kf_api_tokens_load(path, &t, &err), -EINVAL);
        if (!strstr(err.buf, bad[i].words))
            fail_msg("\"%s\": error \"%s\" lacks \"%s\"", bad[i].content, err.buf, bad[i].words);
        unlink(path);
        free(path);
    }
    assert_true(kf_api_tokens_load("/nonexistent/tokens", &t, &err) < 0);
    assert_non_null(strstr(err.buf, "cannot read token file"));
    kf_strbuf_release(&err);
}

static void test_roles(void **state)
{
    const struct kf_kind *gc = kf_kind_find("GuestCluster");
    const struct kf_kind *host = kf_kind_find("Host");
    const struct kf_kind *cpm = kf_kind_find("ControlPlaneMember");
    const struct kf_kind *ev = kf_kind_find("Event");
    const struct kf_kind *bk = kf_kind_find("Backup");
    struct kf_strbuf out = KF_STRBUF_INIT;

    assert_non_null(gc);
    assert_non_null(bk);
    assert_non_null(ev);
    assert_true(ev->system);
    for (int r = 0; r < API_ROLE_N; r++) {
        assert_true(kf_api_role_allows((enum api_role)r, API_VERB_GET, gc, NULL));
        assert_true(kf_api_role_allows((enum api_role)r, API_VERB_WATCH, ev, NULL));
    }
    assert_true(kf_api_role_allows(API_ROLE_EDITOR, API_VERB_CREATE, gc, NULL));
    assert_true(kf_api_role_allows(API_ROLE_EDITOR, API_VERB_UPDATE, gc, "status"));
    assert_false(kf_api_role_allows(API_ROLE_EDITOR, API_VERB_DELETE, ev, NULL));
    assert_true(kf_api_role_allows(API_ROLE_ADMIN, API_VERB_DELETE, ev, NULL));
    assert_false(kf_api_role_allows(API_ROLE_VIEWER, API_VERB_PATCH, gc, NULL));
    assert_false(kf_api_role_allows(API_ROLE_VIEWER, API_VERB_DELETECOLLECTION, gc, NULL));
    assert_true(kf_api_role_allows(API_ROLE_AGENT, API_VERB_CREATE, host, NULL));
    assert_true(kf_api_role_allows(API_ROLE_AGENT, API_VERB_PATCH, host, "status"));
    assert_true(kf_api_role_allows(API_ROLE_AGENT, API_VERB_UPDATE, cpm, "status"));
    assert_false(kf_api_role_allows(API_ROLE_AGENT, API_VERB_UPDATE, cpm, NULL));
    assert_false(kf_api_role_allows(API_ROLE_AGENT, API_VERB_DELETE, host, NULL));
    assert_false(kf_api_role_allows(API_ROLE_AGENT, API_VERB_CREATE, gc, NULL));
    /* a Backup: an editor takes and drops one, but its status (the file a
     * restore reads) is kfleetd's and the agents' */
    assert_true(kf_api_role_allows(API_ROLE_EDITOR, API_VERB_CREATE, bk, NULL));
    assert_true(kf_api_role_allows(API_ROLE_EDITOR, API_VERB_DELETE, bk, NULL));
    assert_false(kf_api_role_allows(API_ROLE_EDITOR, API_VERB_PATCH, bk, "status"));
    assert_false(kf_api_role_allows(API_ROLE_EDITOR, API_VERB_UPDATE, bk, "status"));
    assert_true(kf_api_role_allows(API_ROLE_AGENT, API_VERB_PATCH, bk, "status"));
    assert_true(kf_api_role_allows(API_ROLE_ADMIN, API_VERB_PATCH, bk, "status"));

    kf_api_roles_allowing(API_VERB_CREATE, gc, NULL, &out);
    assert_string_equal(out.buf, "editor or admin");
    kf_strbuf_reset(&out);
    kf_api_roles_allowing(API_VERB_DELETE, ev, NULL, &out);
    assert_string_equal(out.buf, "admin");
    kf_strbuf_reset(&out);
    kf_api_roles_allowing(API_VERB_PATCH, host, "status", &out);
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
    assert_int_equal(kf_daemon_compact_target(&c, 1500, 100000, ms, rev, 4), 500);
    /* nothing old enough yet */
    assert_int_equal(kf_daemon_compact_target(&c, 1500, 50000, ms, rev, 4), 0);
    /* a small store: the count bound keeps everything */
    assert_int_equal(kf_daemon_compact_target(&c, 80, 100000, ms, rev, 4), 0);
    /* retention 0: only the count */
    c.compact_retention_ms = 0;
    assert_int_equal(kf_daemon_compact_target(&c, 1500, 100000, ms, rev, 4), 1400);
    c.compact_keep_revs = 0;
    assert_int_equal(kf_daemon_compact_target(&c, 1500, 100000, ms, rev, 0), 1500);
}

/* Accept headers: ranges in order, the parameters negotiated on, q=0,
 * quoted values and commas inside them, and nonsense. */
static void test_accept(void **state)
{
    const char *h = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;"
                    "profile=nopeer, Application/JSON ; as=\"Table\";v=v1 ;g=meta.k8s.io,"
                    "text/plain;q=0.000,*/*;q=0.5";
    struct api_media_range m;

    assert_true(kf_api_accept_next(&h, &m));
    assert_string_equal(m.type, "application/json");
    assert_string_equal(m.group, "apidiscovery.k8s.io");
    assert_string_equal(m.version, "v2");
    assert_string_equal(m.as, "APIGroupDiscoveryList");
    assert_string_equal(m.profile, "nopeer");
    assert_false(kf_api_media_range_is_json(&m));
    assert_true(kf_api_accept_next(&h, &m));
    assert_string_equal(m.type, "application/json");
    assert_string_equal(m.as, "Table");
    assert_string_equal(m.version, "v1");
    assert_string_equal(m.group, "meta.k8s.io");
    assert_false(m.refused);
    assert_true(kf_api_accept_next(&h, &m));
    assert_string_equal(m.type, "text/plain");
    assert_true(m.refused);
    assert_true(kf_api_accept_next(&h, &m));
    assert_string_equal(m.type, "*/*");
    assert_false(m.refused);
    assert_true(kf_api_media_range_is_json(&m));
    assert_false(kf_api_accept_next(&h, &m));
    assert_false(kf_api_accept_next(&h, &m)); /* stays at the end */

    /* a comma inside quotes does not end the range; q=0 variants */
    h = "application/json;as=\"a,b\";q=0,application/json;q=0.1";
    assert_true(kf_api_accept_next(&h, &m));
    assert_string_equal(m.as, "a,b");
    assert_true(m.refused);
    assert_true(kf_api_accept_next(&h, &m));
    assert_false(m.refused);
    assert_true(kf_api_media_range_is_json(&m));
    assert_false(kf_api_accept_next(&h, &m));

    /* empty, blank and comma-only values have no range */
    h = "";
    assert_false(kf_api_accept_next(&h, &m));
    h = " , ,\t";
    assert_false(kf_api_accept_next(&h, &m));

    /* a value too long for its field matches nothing; an unterminated
     * quote runs to the end */
    {
        char big[300];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        memcpy(big, "application/json;v=", 19);
        h = big;
        assert_true(kf_api_accept_next(&h, &m));
        assert_string_equal(m.version, "?");
        assert_false(kf_api_accept_next(&h, &m));
    }
    h = "application/json;g=\"x,y;v=v2";
    assert_true(kf_api_accept_next(&h, &m));
    assert_string_equal(m.type, "application/json");
    assert_false(kf_api_accept_next(&h, &m));
}

/* Aggregated discovery says what the legacy APIResourceList says. */
static void test_aggregated_discovery(void **state)
{
    json_t *legacy = kf_api_discovery_resource_list();
    json_t *agg = kf_api_discovery_aggregated(false), *core = kf_api_discovery_aggregated(true);
    json_t *item, *version, *resources, *r;
    size_t i, n = 0;

    assert_string_equal(json_string_value(json_object_get(agg, "kind")), "APIGroupDiscoveryList");
    assert_string_equal(json_string_value(json_object_get(agg, "apiVersion")),
                        "apidiscovery.k8s.io/v2");
    assert_int_equal(json_array_size(json_object_get(agg, "items")), 1);
    item = json_array_get(json_object_get(agg, "items"), 0);
    assert_string_equal(kf_json_str(item, "metadata.name", ""), "kfleet.io");
    version = json_array_get(json_object_get(item, "versions"), 0);
    assert_string_equal(kf_json_str(version, "version", ""), "v1");
    assert_string_equal(kf_json_str(version, "freshness", ""), "Current");
    resources = json_object_get(version, "resources");
    json_array_foreach(json_object_get(legacy, "resources"), i, r)
    {
        const char *name = kf_json_str(r, "name", "");
        const char *slash = strchr(name, '/');
        json_t *a = NULL, *cand;
        size_t j;

        json_array_foreach(resources, j, cand)
        {
            if (strncmp(kf_json_str(cand, "resource", ""), name,
                        slash ? (size_t)(slash - name) : strlen(name) + 1) == 0)
                a = cand;
        }
        assert_non_null(a);
        if (slash) {
            json_t *sub = json_array_get(json_object_get(a, "subresources"), 0);

            assert_string_equal(kf_json_str(sub, "subresource", ""), slash + 1);
            assert_true(json_equal(json_object_get(sub, "verbs"), json_object_get(r, "verbs")));
            assert_string_equal(kf_json_str(sub, "responseKind.kind", ""),
                                kf_json_str(r, "kind", "?"));
            continue;
        }
        n++;
        assert_string_equal(kf_json_str(a, "scope", ""), "Cluster");
        assert_string_equal(kf_json_str(a, "singularResource", ""),
                            kf_json_str(r, "singularName", "?"));
        assert_string_equal(kf_json_str(a, "responseKind.kind", ""), kf_json_str(r, "kind", "?"));
        assert_string_equal(kf_json_str(a, "responseKind.group", ""), "kfleet.io");
        assert_string_equal(kf_json_str(a, "responseKind.version", ""), "v1");
        assert_true(json_equal(json_object_get(a, "verbs"), json_object_get(r, "verbs")));
        assert_true(json_equal(json_object_get(a, "categories"), json_object_get(r, "categories")));
        if (json_object_get(r, "shortNames"))
            assert_true(
                json_equal(json_object_get(a, "shortNames"), json_object_get(r, "shortNames")));
        else
            assert_null(json_object_get(a, "shortNames"));
    }
    assert_int_equal(n, json_array_size(resources));

    /* /api: the core group's v1 without resources, as the legacy /api says */
    item = json_array_get(json_object_get(core, "items"), 0);
    assert_null(kf_json_str(item, "metadata.name", NULL));
    version = json_array_get(json_object_get(item, "versions"), 0);
    assert_string_equal(kf_json_str(version, "version", ""), "v1");
    assert_int_equal(json_array_size(json_object_get(version, "resources")), 0);
    json_decref(legacy);
    json_decref(agg);
    json_decref(core);
}

/* --- a protocol buffer reader for the OpenAPI v2 test ------------------------ */

struct pb_field_view {
    unsigned int num, wire;
    uint64_t varint;
    const unsigned char *data; /* length-delimited */
    size_t len;
};

static bool pb_varint(const unsigned char **p, const unsigned char *end, uint64_t *ret)
{
    uint64_t v = 0;

    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;

        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *ret = v;
            return true;
        }
    }
    return false;
}

/* The next field of a message; false at its end. Fails the test on a
 * malformed one. */
static bool pb_next(const unsigned char **p, const unsigned char *end, struct pb_field_view *f)
{
    uint64_t key = 0;

    memset(f, 0, sizeof(*f));
    if (*p >= end)
        return false;
    assert_true(pb_varint(p, end, &key));
    f->num = (unsigned int)(key >> 3);
    f->wire = (unsigned int)(key & 7);
    assert_true(f->num > 0);
    switch (f->wire) {
    case 0:
        assert_true(pb_varint(p, end, &f->varint));
        break;
    case 1:
        assert_true(end - *p >= 8);
        *p += 8;
        break;
    case 2: {
        uint64_t len = 0;

        assert_true(pb_varint(p, end, &len));
        assert_true(len <= (uint64_t)(end - *p));
        f->data = *p;
        f->len = (size_t)len;
        *p += len;
        break;
    }
    default:
        fail_msg("wire type %u", f->wire);
    }
    return true;
}

/* The first length-delimited field num of a message, or false. */
static bool pb_find(const unsigned char *msg, size_t len, unsigned int num,
                    struct pb_field_view *ret)
{
    const unsigned char *p = msg, *end = msg + len;
    struct pb_field_view f = { 0 };

    while (pb_next(&p, end, &f))
        if (f.num == num && f.wire == 2) {
            *ret = f;
            return true;
        }
    return false;
}

static bool pb_string_is(const struct pb_field_view *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->data, s, f->len) == 0;
}

/* OpenAPI v2 as gnostic's protocol buffers: the document's fields, every
 * definition by name in order, a kind's type, properties and its
 * x-kubernetes-group-version-kind extension as YAML (here JSON). */
static void test_openapi_v2_protobuf(void **state)
{
    json_t *doc = kf_api_openapi_doc(false), *defs = json_object_get(doc, "definitions");
    size_t len;
    char *pb = kf_api_openapi_v2_protobuf(doc, &len);
    const unsigned char *u = (const unsigned char *)pb;
    struct pb_field_view f = { 0 }, named = { 0 }, name = { 0 }, schema = { 0 }, x = { 0 };
    const unsigned char *p, *end;
    const char *key;
    void *iter;
    bool found_region = false;

    assert_true(len > 1000);
    assert_true(pb_find(u, len, 1, &f));
    assert_true(pb_string_is(&f, "2.0"));
    assert_true(pb_find(u, len, 2, &f)); /* info */
    assert_true(pb_find(f.data, f.len, 1, &name));
    assert_true(pb_string_is(&name, "kfleet"));
    assert_true(pb_find(u, len, 8, &f)); /* paths */
    assert_true(pb_find(f.data, f.len, 2, &named));
    assert_true(pb_find(named.data, named.len, 1, &name));
    assert_true(name.len > 0 && name.data[0] == '/');

    /* definitions: one NamedSchema a definition, in the document's order */
    assert_true(pb_find(u, len, 9, &f));
    p = f.data;
    end = f.data + f.len;
    iter = json_object_iter(defs);
    while (pb_next(&p, end, &named)) {
        assert_int_equal(named.num, 1);
        assert_non_null(iter);
        key = json_object_iter_key(iter);
        assert_true(pb_find(named.data, named.len, 1, &name));
        assert_true(pb_string_is(&name, key));
        assert_true(pb_find(named.data, named.len, 2, &schema));
        if (strcmp(key, "io.kfleet.v1.Region") == 0) {
            struct pb_field_view type = { 0 }, props = { 0 }, ext = { 0 }, any = { 0 };
            const unsigned char *q = schema.data, *qend = schema.data + schema.len;
            json_t *gvk;

            found_region = true;
            assert_true(pb_find(schema.data, schema.len, 22, &type));
            assert_true(pb_find(type.data, type.len, 1, &x));
            assert_true(pb_string_is(&x, "object"));
            assert_true(pb_find(schema.data, schema.len, 4, &x));
            assert_true(
                pb_string_is(&x, kf_json_str(json_object_iter_value(iter), "description", "")));
            assert_true(pb_find(schema.data, schema.len, 25, &props));
            assert_true(pb_find(props.data, props.len, 1, &x)); /* a NamedSchema */
            while (pb_next(&q, qend, &ext))
                if (ext.num == 31)
                    break;
            assert_int_equal(ext.num, 31);
            assert_true(pb_find(ext.data, ext.len, 1, &name));
            assert_true(pb_string_is(&name, "x-kubernetes-group-version-kind"));
            assert_true(pb_find(ext.data, ext.len, 2, &any));
            assert_true(pb_find(any.data, any.len, 2, &x));
            assert_int_equal(kf_json_parse((const char *)x.data, x.len, &gvk, NULL), 0);
            assert_true(json_equal(gvk, json_object_get(json_object_iter_value(iter),
                                                        "x-kubernetes-group-version-kind")));
            json_decref(gvk);
        }
        iter = json_object_iter_next(defs, iter);
    }
    assert_null(iter);
    assert_true(found_region);
    free(pb);
    json_decref(doc);
}

/* Which names below /ui/ the dashboard serves, and with which type. */
static void test_ui_file_type(void **state)
{
    static const struct {
        const char *name, *type_prefix; /* NULL: refused */
    } cases[] = {
        { "index.html", "text/html" },
        { "app.js", "text/javascript" },
        { "style.css", "text/css" },
        { "favicon.svg", "image/svg+xml" },
        { "img/a-b_c.1.png", "image/png" },
        { "a/b/c/d.ico", "image/x-icon" },
        { "a/b/c/d/e.ico", NULL }, /* 5 levels */
        { "", NULL },
        { "..", NULL },
        { "../tokens.js", NULL },
        { "a/../b.js", NULL },
        { "./app.js", NULL },
        { ".hidden.js", NULL },
        { "a/.b.js", NULL },
        { "/etc/passwd.html", NULL },
        { "a//b.js", NULL },
        { "app.js/", NULL },
        { "app.js ", NULL },
        { "app%2ejs", NULL },
        { "a\\b.js", NULL },
        { "kfleet.db", NULL },
        { "tokens", NULL },
        { "app.JS", NULL },
        { "app.js.map", NULL },
        { "dir.js/x", NULL },
    };
    char longname[200];

    (void)state;
    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        const char *t = kf_api_ui_file_type(cases[i].name);

        if (!cases[i].type_prefix) {
            if (t)
                fail_msg("\"%s\" served as %s", cases[i].name, t);
            continue;
        }
        assert_non_null(t);
        assert_true(strncmp(t, cases[i].type_prefix, strlen(cases[i].type_prefix)) == 0);
    }
    /* a segment of 64 bytes is fine, 65 is not */
    memset(longname, 'a', sizeof(longname));
    memcpy(longname + 61, ".js", 4);
    assert_non_null(kf_api_ui_file_type(longname));
    memcpy(longname + 62, ".js", 4);
    assert_null(kf_api_ui_file_type(longname));
    /* 128 bytes in all are fine, 129 are not: 60 + / + 60 + / + 6 or 7 */
    memset(longname, 'a', sizeof(longname));
    longname[60] = longname[121] = '/';
    memcpy(longname + 125, ".js", 4);
    assert_non_null(kf_api_ui_file_type(longname));
    memcpy(longname + 126, ".js", 4);
    assert_null(kf_api_ui_file_type(longname));
    assert_null(kf_api_ui_file_type(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_uri),
        cmocka_unit_test(test_ui_file_type),
        cmocka_unit_test(test_query_bool),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_compact_target),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_aggregated_discovery),
        cmocka_unit_test(test_openapi_v2_protobuf),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
