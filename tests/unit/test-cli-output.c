/* test-cli-output.c: what `kfleet` prints, checked against golden files
 * (tests/unit/golden/): the table of every kind, normal and wide, and
 * `describe`, all from the fixed objects in golden/cli-objects.yaml at a
 * fixed "now". Also ages, table alignment, -o name/json/yaml, the text of
 * server errors, reading -f input, and the patch `apply` sends.
 *
 * After a deliberate change of the output, regenerate the golden files with
 *     KF_UPDATE_GOLDEN=1 build/tests/test-cli-output
 * and review the diff before committing it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

static int64_t fixed_now(void)
{
    int64_t ms;

    assert_int_equal(kf_time_parse_rfc3339("2026-01-01T12:00:00Z", &ms), 0);
    return ms;
}

static char *source_path(const char *rel)
{
    const char *dir = getenv("KF_SOURCE_DIR");

    return kf_xasprintf("%s/tests/unit/golden/%s", dir ? dir : ".", rel);
}

static char *read_all(const char *path)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[4096];
    size_t n;
    FILE *f = fopen(path, "r");

    if (!f)
        return NULL;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        kf_strbuf_add(&sb, buf, n);
    fclose(f);
    return kf_strbuf_detach(&sb, NULL);
}

static void check_golden(const char *name, const char *got)
{
    char *path = source_path(name), *want;

    if (getenv("KF_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fputs(got, f);
        fclose(f);
        free(path);
        return;
    }
    want = read_all(path);
    if (!want)
        fail_msg("golden file %s is missing; run with KF_UPDATE_GOLDEN=1 and review it", path);
    if (strcmp(want, got) != 0)
        fail_msg("output differs from %s\n--- got:\n%s--- want:\n%s", path, got, want);
    free(want);
    free(path);
}

/* The fixture objects of kind k, in file order. */
static json_t *fixtures(const struct kf_kind *k)
{
    struct kf_cli_inputs in = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path = source_path("cli-objects.yaml");
    json_t *items = json_array();

    if (kf_cli_input_read(path, stdin, &in, &err) < 0)
        fail_msg("%s", err.buf);
    for (size_t i = 0; i < in.n; i++)
        if (strcmp(kf_json_str(in.items[i].obj, "kind", ""), k->kind) == 0)
            json_array_append(items, in.items[i].obj);
    kf_cli_inputs_release(&in);
    free(path);
    kf_strbuf_release(&err);
    return items;
}

/* Runs print_objects into a string. */
static char *render(const struct kf_kind *k, const json_t *items, enum kf_cli_format fmt,
                    bool single)
{
    struct kf_cli cli;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    kf_cli_init(&cli, out, stderr);
    cli.now_ms = fixed_now();
    kf_cli_print_objects(&cli, k, items, fmt, single);
    fclose(out);
    kf_cli_release(&cli);
    return text;
}

static void test_ages(void **state)
{
    static const struct {
        int64_t ago_s;
        const char *want;
    } cases[] = {
        { 0, "0s" },
        { 59, "59s" },
        { 119, "119s" },
        { 120, "2m" },
        { 7199, "119m" },
        { 7200, "2h" },
        { 47 * 3600, "47h" },
        { 48 * 3600, "2d" },
        { 729 * 86400LL, "729d" },
        { 730 * 86400LL, "2y" },
        { -30, "0s" }, /* a little clock skew */
    };
    int64_t now = fixed_now();

    (void)state;
    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        struct kf_strbuf sb = KF_STRBUF_INIT;

        kf_cli_age(now, now - cases[i].ago_s * 1000, &sb);
        if (strcmp(sb.buf, cases[i].want) != 0)
            fail_msg("%lld s ago: got %s, want %s", (long long)cases[i].ago_s, sb.buf,
                     cases[i].want);
        kf_strbuf_release(&sb);
    }
    {
        struct kf_strbuf sb = KF_STRBUF_INIT;

        kf_cli_age_of(now, "2026-01-01T11:55:00Z", &sb);
        assert_string_equal(sb.buf, "5m");
        kf_strbuf_reset(&sb);
        kf_cli_age_of(now, "yesterday", &sb);
        assert_string_equal(sb.buf, "<unknown>");
        kf_strbuf_reset(&sb);
        kf_cli_age(now, 0, &sb);
        assert_string_equal(sb.buf, "<unknown>");
        kf_strbuf_release(&sb);
    }
}

static void test_table_layout(void **state)
{
    struct kf_cli_table t;
    struct kf_strbuf out = KF_STRBUF_INIT;
    const char *h[] = { "NAME", "ZONE", "NOTE" };
    const char *r1[] = { "a", "zürich", "x\ty" };
    const char *r2[] = { "longer-name", "", NULL };

    (void)state;
    kf_cli_table_init(&t, 3);
    kf_cli_table_add(&t, h);
    kf_cli_table_add(&t, r1);
    kf_cli_table_add(&t, r2);
    kf_cli_table_format(&t, "  ", &out);
    /* Widths count characters, empty cells say <none>, control characters
     * from the server are blanked, the last column is not padded. */
    assert_string_equal(out.buf, "  NAME          ZONE     NOTE\n"
                                 "  a             zürich   x y\n"
                                 "  longer-name   <none>   <none>\n");
    kf_cli_table_release(&t);
    kf_strbuf_release(&out);
}

static void test_kind_tables(void **state)
{
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        const struct kf_kind *k = kinds[i];
        json_t *items = fixtures(k);
        char *table, *wide, *name;
        struct kf_strbuf all = KF_STRBUF_INIT;

        if (json_array_size(items) == 0)
            fail_msg("cli-objects.yaml has no %s: add one so its table is checked", k->kind);
        table = render(k, items, KF_CLI_FMT_TABLE, false);
        wide = render(k, items, KF_CLI_FMT_WIDE, false);
        kf_strbuf_addf(&all, "$ kfleet get %s\n%s\n$ kfleet get %s -o wide\n%s", k->plural, table,
                       k->plural, wide);
        name = kf_xasprintf("get-%s.txt", k->plural);
        check_golden(name, all.buf);
        /* Every table starts with NAME and ends with AGE. */
        assert_true(kf_str_has_prefix(table, "NAME "));
        assert_non_null(strstr(table, "   AGE\n"));
        free(name);
        free(table);
        free(wide);
        kf_strbuf_release(&all);
        json_decref(items);
    }
}

static void test_formats(void **state)
{
    const struct kf_kind *k = kf_kind_find("gc");
    json_t *items, *one, *docs = NULL, *parsed;
    char *text;

    (void)state;
    assert_non_null(k);
    items = fixtures(k);
    text = render(k, items, KF_CLI_FMT_NAME, false);
    assert_string_equal(text, "guestcluster/web-1\nguestcluster/batch-2\n");
    free(text);

    /* Several objects print as a kubectl List. */
    text = render(k, items, KF_CLI_FMT_JSON, false);
    parsed = json_loads(text, 0, NULL);
    assert_non_null(parsed);
    assert_string_equal(kf_json_str(parsed, "kind", ""), "List");
    assert_string_equal(kf_json_str(parsed, "apiVersion", ""), "v1");
    assert_true(json_equal(json_object_get(parsed, "items"), items));
    json_decref(parsed);
    free(text);

    /* One object asked for by name prints as itself, and YAML reads back. */
    one = json_pack("[O]", json_array_get(items, 0));
    text = render(k, one, KF_CLI_FMT_YAML, true);
    assert_true(kf_str_has_prefix(text, "apiVersion: kfleet.io/v1\nkind: GuestCluster\n"));
    assert_non_null(strstr(text, "  version: \"1.30\"\n"));
    assert_int_equal(kf_yaml_load_all(text, strlen(text), &docs, NULL), 0);
    assert_true(json_equal(json_array_get(docs, 0), json_array_get(items, 0)));
    json_decref(docs);
    free(text);

    /* A table of nothing prints nothing (the command says "No ... found"). */
    json_array_clear(one);
    text = render(k, one, KF_CLI_FMT_TABLE, false);
    assert_string_equal(text, "");
    free(text);
    json_decref(one);
    json_decref(items);
}

static void test_describe(void **state)
{
    const struct kf_kind *gc = kf_kind_find("guestcluster"), *ev = kf_kind_find("event");
    json_t *clusters = fixtures(gc), *events = fixtures(ev), *web;
    struct kf_strbuf out = KF_STRBUF_INIT;

    (void)state;
    web = json_deep_copy(json_array_get(clusters, 0));
    kf_json_set_str(web, "metadata.uid", "0e9c53a4-5b0c-4a57-9d55-0c1b2f3a4d5e");
    kf_json_set_str(web, "metadata.resourceVersion", "4711");
    kf_json_set_int(web, "metadata.generation", 3);
    kf_json_set(web, "metadata.finalizers",
                json_pack("[s,s]", "kfleet.io/ipam", "kfleet.io/members"));
    kf_json_set(web, "metadata.annotations",
                json_pack("{s:s, s:s}", "owner", "team-web", KF_CLI_LAST_APPLIED, "{\"big\":1}"));
    kf_json_set(web, "spec.maintenanceWindow",
                json_pack("{s:[s,s], s:s}", "days", "Sat", "Sun", "start", "02:00"));
    kf_json_set(web, "status.endpoints",
                json_pack("[{s:s, s:i}]", "host", "10.0.0.11", "port", 6443));
    kf_json_set(web, "status.conditions",
                json_pack("[{s:s, s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s, s:s}]", "type",
                          "Scheduled", "status", "True", "reason", "Placed", "message",
                          "placed on hz-u1", "lastTransitionTime", "2026-01-01T09:00:01Z", "type",
                          "Ready", "status", "False", "reason", "MemberNotReady", "message",
                          "kube-apiserver-0 is restarting", "lastTransitionTime",
                          "2026-01-01T11:50:00Z"));
    kf_cli_describe_format(gc, web, events, NULL, fixed_now(), &out);
    check_golden("describe-guestcluster.txt", out.buf);

    /* Without events the rest still prints and says why. */
    kf_strbuf_reset(&out);
    kf_cli_describe_format(gc, json_array_get(clusters, 1), NULL,
                           "Error from server (Forbidden): no", fixed_now(), &out);
    assert_non_null(strstr(out.buf, "Name:             batch-2\n"));
    assert_non_null(strstr(out.buf, "Conditions:\n  <none>\n"));
    assert_non_null(strstr(out.buf, "Events:  <unavailable: Error from server (Forbidden): no>\n"));
    kf_strbuf_release(&out);
    json_decref(web);
    json_decref(clusters);
    json_decref(events);
}

static char *format_status(long code, const char *body)
{
    struct kf_strbuf b = KF_STRBUF_INIT, out = KF_STRBUF_INIT;
    struct kf_cli_response r = { .status = code, .body = &b };
    char *s;

    kf_strbuf_addstr(&b, body);
    kf_json_parse(b.buf, b.len, &r.json, NULL);
    kf_cli_format_status(&r, &out);
    json_decref(r.json);
    kf_strbuf_release(&b);
    s = kf_strbuf_detach(&out, NULL);
    return s;
}

static void test_server_errors(void **state)
{
    char *s;

    (void)state;
    s = format_status(422, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                           "\"message\":\"GuestCluster \\\"web-1\\\" is invalid: "
                           "spec.expectedNodes: must be at least 1; spec.network.vpc: Required "
                           "value\",\"reason\":\"Invalid\",\"code\":422,\"details\":{\"causes\":["
                           "{\"reason\":\"FieldValueInvalid\",\"field\":\"spec.expectedNodes\","
                           "\"message\":\"must be at least 1\"},"
                           "{\"reason\":\"FieldValueRequired\",\"field\":\"spec.network.vpc\","
                           "\"message\":\"Required value\"}]}}");
    assert_string_equal(s, "Error from server (Invalid): GuestCluster \"web-1\" is invalid\n"
                           "  spec.expectedNodes: must be at least 1\n"
                           "  spec.network.vpc: Required value");
    free(s);
    s = format_status(404, "{\"kind\":\"Status\",\"message\":\"guestclusters \\\"x\\\" not "
                           "found\",\"reason\":\"NotFound\",\"code\":404}");
    assert_string_equal(s, "Error from server (NotFound): guestclusters \"x\" not found");
    free(s);
    s = format_status(401, "{\"kind\":\"Status\",\"message\":\"a valid bearer token is "
                           "required\",\"reason\":\"Unauthorized\",\"code\":401}");
    assert_string_equal(s, "Error from server (Unauthorized): a valid bearer token is required\n"
                           "  (give a token with --token, $KFLEET_TOKEN or `kfleet config "
                           "set-token TOKEN`)");
    free(s);
    s = format_status(502, "<html>bad gateway</html>\nmore");
    assert_string_equal(s, "Error from server: HTTP 502 Bad Gateway: <html>bad gateway</html>");
    free(s);
}

static int parse_input(const char *name, const char *text, struct kf_cli_inputs *in,
                       struct kf_strbuf *err)
{
    return kf_cli_input_parse(name, text, strlen(text), in, err);
}

static void test_input(void **state)
{
    struct kf_cli_inputs in = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    const struct kf_kind *k;

    (void)state;
    /* YAML documents, a List unpacked, empty documents skipped. */
    assert_int_equal(parse_input("a.yaml",
                                 "kind: Region\nmetadata: {name: r1}\n---\n---\n"
                                 "apiVersion: v1\nkind: List\nitems:\n"
                                 "- {kind: Unit, metadata: {name: u1}}\n"
                                 "- {kind: Unit, metadata: {name: u2}}\n",
                                 &in, &err),
                     0);
    assert_int_equal(in.n, 3);
    assert_string_equal(in.items[0].source, "a.yaml document 1");
    assert_string_equal(in.items[2].source, "a.yaml document 2 item 2");
    assert_string_equal(kf_json_str(in.items[2].obj, "metadata.name", ""), "u2");
    kf_cli_inputs_release(&in);

    /* JSON indented with tabs (which YAML refuses), and a JSON array. */
    assert_int_equal(parse_input("b.json",
                                 "{\n\t\"kind\": \"Host\",\n\t\"metadata\": {\"name\": "
                                 "\"h1\"}\n}\n",
                                 &in, &err),
                     0);
    assert_int_equal(
        parse_input("c.json", "[{\"kind\":\"Host\",\"metadata\":{\"name\":\"h2\"}}]", &in, &err),
        0);
    assert_int_equal(in.n, 2);
    assert_string_equal(in.items[0].source, "b.json");
    kf_cli_inputs_release(&in);

    /* Errors name the file and the document. */
    assert_int_equal(parse_input("d.yaml", "kind: Region\n---\nmetadata: {name: x}\n", &in, &err),
                     -EINVAL);
    assert_string_equal(err.buf,
                        "d.yaml document 2: has no kind (write e.g. `kind: GuestCluster`)");
    kf_cli_inputs_release(&in);
    assert_int_equal(
        parse_input("e.yaml", "kind: Region\nmetadata:\n  name: x\n   bad: 1\n", &in, &err),
        -EINVAL);
    assert_true(kf_str_has_prefix(err.buf, "e.yaml: line 4 column"));
    kf_cli_inputs_release(&in);
    assert_int_equal(parse_input("f.yaml", "- a\n- b\n", &in, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "f.yaml: is not a mapping"));
    kf_cli_inputs_release(&in);

    /* What apply and delete check before sending anything. */
    {
        json_t *o = json_pack("{s:s, s:{s:s}}", "kind", "GuestCluster", "metadata", "name", "a");

        assert_int_equal(kf_cli_input_kind(o, &k, &err), 0);
        assert_string_equal(k->plural, "guestclusters");
        json_object_set_new(o, "apiVersion", json_string("apps/v1"));
        assert_int_equal(kf_cli_input_kind(o, &k, &err), -EINVAL);
        assert_string_equal(err.buf, "apiVersion \"apps/v1\" is not served by kfleet; use "
                                     "kfleet.io/v1");
        json_object_set_new(o, "apiVersion", json_string("kfleet.io/v1"));
        json_object_set_new(o, "kind", json_string("guestcluster"));
        assert_int_equal(kf_cli_input_kind(o, &k, &err), -EINVAL);
        assert_non_null(strstr(err.buf, "did you mean \"GuestCluster\"?"));
        json_object_set_new(o, "kind", json_string("GuestCluster"));
        json_object_set_new(o, "metadata", json_object());
        assert_int_equal(kf_cli_input_kind(o, &k, &err), -EINVAL);
        assert_string_equal(err.buf, "GuestCluster has no metadata.name");
        json_decref(o);
    }
    kf_strbuf_release(&err);
}

static void check_patch(const char *desired, const char *last, const char *want_without_ann)
{
    json_t *d = json_loads(desired, 0, NULL);
    json_t *l = last ? json_loads(last, 0, NULL) : NULL;
    json_t *p = kf_cli_apply_patch(d, l);
    json_t *ann = kf_json_path(p, "metadata.annotations");
    const char *applied = json_string_value(json_object_get(ann, KF_CLI_LAST_APPLIED));
    json_t *applied_v;
    char *got;

    /* The annotation records exactly what was applied... */
    assert_non_null(applied);
    applied_v = json_loads(applied, 0, NULL);
    assert_true(json_equal(applied_v, d));
    json_decref(applied_v);
    /* ...and the rest is the three-way patch. */
    json_object_del(ann, KF_CLI_LAST_APPLIED);
    if (json_object_size(ann) == 0)
        json_object_del(json_object_get(p, "metadata"), "annotations");
    if (json_object_size(json_object_get(p, "metadata")) == 0)
        json_object_del(p, "metadata");
    got = kf_json_dump(p, NULL);
    if (strcmp(got, want_without_ann) != 0)
        fail_msg("patch of %s over %s: got %s, want %s", desired, last ? last : "nothing", got,
                 want_without_ann);
    free(got);
    json_decref(p);
    json_decref(d);
    json_decref(l);
}

static void test_apply_patch(void **state)
{
    (void)state;
    /* First apply: everything in the file. */
    check_patch("{\"spec\":{\"a\":1,\"b\":{\"c\":2}}}", NULL,
                "{\"spec\":{\"a\":1,\"b\":{\"c\":2}}}");
    /* Fields the last apply set and the file dropped are removed, nested too;
     * fields nobody applied are not mentioned. */
    check_patch("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"a\":1,\"b\":{\"c\":2}}}",
                "{\"metadata\":{\"name\":\"x\",\"labels\":{\"l\":\"v\"}},"
                "\"spec\":{\"a\":1,\"b\":{\"c\":2,\"d\":3},\"e\":4}}",
                "{\"metadata\":{\"name\":\"x\",\"labels\":null},"
                "\"spec\":{\"a\":1,\"b\":{\"c\":2,\"d\":null},\"e\":null}}");
    /* Lists are replaced whole (merge-patch semantics); a scalar that became
     * an object is sent whole. */
    check_patch("{\"spec\":{\"zones\":[\"b\"],\"w\":{\"x\":1}}}",
                "{\"spec\":{\"zones\":[\"a\",\"b\"],\"w\":5}}",
                "{\"spec\":{\"zones\":[\"b\"],\"w\":{\"x\":1}}}");
}

/* `kfleet rollout status`: a bar per wave, the pause, and the exit codes. */
static void test_rollout_status(void **state)
{
    const struct kf_kind *k = kf_kind_find("release");
    json_t *items = fixtures(k), *rel;
    struct kf_strbuf out = KF_STRBUF_INIT;
    size_t i;
    int code = -1;

    (void)state;
    json_array_foreach(items, i, rel)
    {
        /* the fixtures' status reflects their spec */
        json_object_set_new(json_object_get(rel, "metadata"), "generation", json_integer(1));
        json_object_set_new(json_object_get(rel, "status"), "observedGeneration", json_integer(1));
        kf_strbuf_addf(&out, "$ kfleet rollout status %s\n", kf_obj_name(rel));
        kf_cli_rollout_format(rel, &out);
        assert_true(kf_cli_rollout_finished(rel, &code));
        kf_strbuf_addf(&out, "(exit %d)\n\n", code);
    }
    check_golden("rollout-status.txt", out.buf);
    kf_strbuf_release(&out);
    json_decref(items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ages),           cmocka_unit_test(test_table_layout),
        cmocka_unit_test(test_kind_tables),    cmocka_unit_test(test_formats),
        cmocka_unit_test(test_describe),       cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_input),          cmocka_unit_test(test_apply_patch),
        cmocka_unit_test(test_rollout_status),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
