/* test-yaml.c: kf_yaml_load_all and kf_yaml_dump (src/base/base-yaml.c):
 * how scalars resolve, multi-document streams, what is refused and what the
 * error says, the exact text the dumper writes, and round trips of the
 * strings that trip YAML writers up. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfleet/json.h"
#include "kfleet/strbuf.h"

/* Loads `yaml` and compares the documents, as compact JSON, to `want`. */
static void check_load(const char *yaml, const char *want)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *docs = NULL;
    char *got;
    int r;

    r = kf_yaml_load_all(yaml, strlen(yaml), &docs, &err);
    if (r < 0)
        fail_msg("loading %s failed: %s", yaml, err.buf);
    got = kf_json_dump(docs, NULL);
    if (strcmp(got, want) != 0)
        fail_msg("loading\n%s\ngave %s\nwant %s", yaml, got, want);
    free(got);
    json_decref(docs);
    kf_strbuf_release(&err);
}

/* Loading `yaml` fails and the message contains each of the fragments. */
static void check_error(const char *yaml, ...)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *docs = (json_t *)0x1;
    va_list ap;
    const char *frag;
    int r;

    r = kf_yaml_load_all(yaml, strlen(yaml), &docs, &err);
    if (r != -EBADMSG)
        fail_msg("loading %s: want -EBADMSG, got %d", yaml, r);
    assert_ptr_equal(docs, (json_t *)0x1); /* untouched */
    va_start(ap, yaml);
    while ((frag = va_arg(ap, const char *)))
        if (!strstr(err.buf, frag))
            fail_msg("error for\n%s\nis \"%s\", which lacks \"%s\"", yaml, err.buf, frag);
    va_end(ap);
    kf_strbuf_release(&err);
}

static char *dump(const json_t *v)
{
    struct kf_strbuf out = KF_STRBUF_INIT;

    assert_int_equal(kf_yaml_dump(v, &out), 0);
    return kf_strbuf_detach(&out, NULL);
}

/* Dumps the JSON text `json` and compares with `want`; then loads the dump
 * back and checks it is the same value. */
static void check_dump(const char *json, const char *want)
{
    json_t *v = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *docs = NULL;
    char *got;

    assert_non_null(v);
    got = dump(v);
    if (strcmp(got, want) != 0)
        fail_msg("dumping %s gave\n%s\nwant\n%s", json, got, want);
    if (kf_yaml_load_all(got, strlen(got), &docs, &err) < 0)
        fail_msg("the dump of %s does not load: %s", json, err.buf);
    assert_int_equal(json_array_size(docs), 1);
    if (!json_equal(json_array_get(docs, 0), v))
        fail_msg("the dump of %s loads back as %s", json,
                 kf_json_dump(json_array_get(docs, 0), NULL));
    free(got);
    json_decref(docs);
    json_decref(v);
    kf_strbuf_release(&err);
}

static void test_core_scalars(void **state)
{
    (void)state;
    check_load("a: 1.30\nb: \"1.30\"\nc: '1.30'\n", "[{\"a\":1.3,\"b\":\"1.30\",\"c\":\"1.30\"}]");
    check_load("- yes\n- no\n- on\n- off\n- y\n", "[[\"yes\",\"no\",\"on\",\"off\",\"y\"]]");
    check_load("- true\n- True\n- TRUE\n- false\n- tRue\n", "[[true,true,true,false,\"tRue\"]]");
    check_load("- null\n- Null\n- ~\n-\n- \"\"\n- ''\n- nil\n",
               "[[null,null,null,null,\"\",\"\",\"nil\"]]");
    check_load("- 0x10\n- 0o17\n- 010\n- -5\n- +5\n- 0\n- 0xFF\n- 0x\n- -0x10\n",
               "[[16,15,10,-5,5,0,255,\"0x\",\"-0x10\"]]");
    check_load("- 1e3\n- .5\n- -2.5E-1\n- 1.\n- 1_000\n- 1:20\n- 0b11\n- 2024-01-02\n",
               "[[1000.0,0.5,-0.25,1.0,\"1_000\",\"1:20\",\"0b11\",\"2024-01-02\"]]");
    check_load("- 9223372036854775807\n- -9223372036854775808\n- 0x7fffffffffffffff\n",
               "[[9223372036854775807,-9223372036854775808,9223372036854775807]]");
    check_load("- 10.0.0.0/8\n- v1.30\n- a b c\n- héllo wörld\n- 'it''s'\n- \"tab\\there\"\n",
               "[[\"10.0.0.0/8\",\"v1.30\",\"a b c\",\"héllo wörld\",\"it's\",\"tab\\there\"]]");
}

static void test_tags_and_keys(void **state)
{
    (void)state;
    check_load("- !!str 10\n- !!int \"10\"\n- !!float 1\n- !!bool true\n- !!null ~\n- ! 12\n",
               "[[\"10\",10,1.0,true,null,\"12\"]]");
    /* Keys are strings whatever they look like. */
    check_load("1: a\ntrue: b\nnull: c\n0x10: d\n",
               "[{\"1\":\"a\",\"true\":\"b\",\"null\":\"c\",\"0x10\":\"d\"}]");
    check_load("{a: [1, 2], b: {c: d}}\n", "[{\"a\":[1,2],\"b\":{\"c\":\"d\"}}]");
    check_load("a:\n- 1\n- - 2\n  - 3\n- k: v\n  l: w\n",
               "[{\"a\":[1,[2,3],{\"k\":\"v\",\"l\":\"w\"}]}]");
}

static void test_multiline_strings(void **state)
{
    (void)state;
    check_load("a: |\n  line 1\n    indented\n\n  line 3\nb: x\n",
               "[{\"a\":\"line 1\\n  indented\\n\\nline 3\\n\",\"b\":\"x\"}]");
    check_load("a: |-\n  one\n  two\n", "[{\"a\":\"one\\ntwo\"}]");
    check_load("a: |+\n  one\n\n\nb: 1\n", "[{\"a\":\"one\\n\\n\\n\",\"b\":1}]");
    check_load("a: >\n  folded\n  text\n\n  para\n", "[{\"a\":\"folded text\\npara\\n\"}]");
    check_load("a: \"multi\n  line\"\n", "[{\"a\":\"multi line\"}]");
}

static void test_documents(void **state)
{
    (void)state;
    check_load("", "[]");
    check_load("# only a comment\n", "[]");
    check_load("a: 1\n---\nb: 2\n", "[{\"a\":1},{\"b\":2}]");
    /* Empty and null documents are skipped, `...` ends a document. */
    check_load("---\n---\na: 1\n...\n---\n~\n---\n# nothing\n---\n- x\n", "[{\"a\":1},[\"x\"]]");
    check_load("--- plain\n--- 3\n", "[\"plain\",3]");
    check_load("%YAML 1.2\n---\na: 1\n", "[{\"a\":1}]");
    check_load("\xef\xbb\xbf"
               "a: 1\n",
               "[{\"a\":1}]");
}

static void test_errors(void **state)
{
    (void)state;
    check_error("a: &x 1\nb: *x\n", "line 1", "anchors (&x) are not supported", NULL);
    check_error("a:\n  - *x\n", "line 2", "aliases", NULL);
    check_error("a: 1\nb:\n\tc: 2\n", "line 3", "tabs for indentation", NULL);
    check_error("a: 1\nb: 2\na: 3\n", "line 3", "duplicate key \"a\"", NULL);
    check_error("a: \"unterminated\n", "line 2", "quoted scalar", NULL);
    check_error("a: b: c\n", "line 1", "mapping values are not allowed", NULL);
    check_error("a:\n  b: 1\n c: 2\n", "line 3", NULL);
    check_error("base: {a: 1}\nx:\n  <<: {b: 2}\n", "line 3", "merge keys", NULL);
    check_error("? [a, b]\n: c\n", "line 1", "mapping key must be a plain string", NULL);
    check_error("a: !!binary aGVsbG8=\n", "line 1", "tag \"tag:yaml.org,2002:binary\"", NULL);
    check_error("a: !Ref x\n", "not supported", NULL);
    check_error("a: .inf\n", "line 1", ".inf cannot be represented in JSON", NULL);
    check_error("a: 1\nb: 9223372036854775808\n", "line 2", "out of range", "quote it", NULL);
    check_error("a: !!int x1\n", "\"x1\" is not a valid integer", NULL);
    check_error("a: 1\n---\nb: [1, 2\n", "line 3", NULL);
}

static void test_depth_limit(void **state)
{
    struct kf_strbuf deep = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    json_t *docs = NULL;

    (void)state;
    /* KF_JSON_MAX_DEPTH levels load; one more does not. */
    for (int i = 0; i < KF_JSON_MAX_DEPTH; i++)
        kf_strbuf_addch(&deep, '[');
    for (int i = 0; i < KF_JSON_MAX_DEPTH; i++)
        kf_strbuf_addch(&deep, ']');
    assert_int_equal(kf_yaml_load_all(deep.buf, deep.len, &docs, &err), 0);
    json_decref(docs);
    kf_strbuf_reset(&deep);
    for (int i = 0; i < 100000; i++)
        kf_strbuf_addstr(&deep, "[");
    assert_int_equal(kf_yaml_load_all(deep.buf, deep.len, &docs, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "nested deeper than 64 levels"));
    kf_strbuf_release(&deep);
    kf_strbuf_release(&err);
}

static void test_dump_layout(void **state)
{
    (void)state;
    check_dump("{\"apiVersion\":\"kfleet.io/v1\",\"kind\":\"GuestCluster\","
               "\"metadata\":{\"name\":\"web-1\",\"labels\":{\"app\":\"web\"},"
               "\"finalizers\":[\"kfleet.io/ipam\"],\"annotations\":{}},"
               "\"spec\":{\"version\":\"1.30\",\"expectedNodes\":50,\"waterLevel\":0.6,"
               "\"ha\":true,\"backup\":null,\"zones\":[],"
               "\"members\":[{\"component\":\"etcd\",\"ports\":[2379,2380]},"
               "{\"component\":\"apiserver\"}],\"matrix\":[[1,2],[]]}}",
               "apiVersion: kfleet.io/v1\n"
               "kind: GuestCluster\n"
               "metadata:\n"
               "  name: web-1\n"
               "  labels:\n"
               "    app: web\n"
               "  finalizers:\n"
               "  - kfleet.io/ipam\n"
               "  annotations: {}\n"
               "spec:\n"
               "  version: \"1.30\"\n"
               "  expectedNodes: 50\n"
               "  waterLevel: 0.6\n"
               "  ha: true\n"
               "  backup: null\n"
               "  zones: []\n"
               "  members:\n"
               "  - component: etcd\n"
               "    ports:\n"
               "    - 2379\n"
               "    - 2380\n"
               "  - component: apiserver\n"
               "  matrix:\n"
               "  - - 1\n"
               "    - 2\n"
               "  - []\n");
    check_dump("[{\"a\":1},\"x\",[]]", "- a: 1\n- x\n- []\n");
    check_dump("\"top\"", "top\n");
    check_dump("12", "12\n");
    check_dump("{}", "{}\n");
    check_dump("[]", "[]\n");
}

static void test_dump_quoting(void **state)
{
    (void)state;
    check_dump("{\"a\":\"1.30\",\"b\":\"yes\",\"c\":\"0x10\",\"d\":\"\",\"e\":\"null\","
               "\"f\":\"~\",\"g\":\"true\",\"h\":\"10.0.0.1\",\"i\":\"1_000\",\"j\":\"On\"}",
               "a: \"1.30\"\nb: \"yes\"\nc: \"0x10\"\nd: \"\"\ne: \"null\"\nf: \"~\"\n"
               "g: \"true\"\nh: \"10.0.0.1\"\ni: \"1_000\"\nj: \"On\"\n");
    check_dump("{\"a\":\"- x\",\"b\":\"k: v\",\"c\":\"x #y\",\"d\":\" lead\",\"e\":\"trail \","
               "\"f\":\"end:\",\"g\":\"*ref\",\"h\":\"a\\tb\",\"i\":\"say \\\"hi\\\"\","
               "\"j\":\"...\",\"k\":\"x#y\",\"l\":\"a:b\",\"m\":\"10.0.0.0/8\"}",
               "a: \"- x\"\nb: \"k: v\"\nc: \"x #y\"\nd: \" lead\"\ne: \"trail \"\n"
               "f: \"end:\"\ng: \"*ref\"\nh: \"a\\tb\"\ni: say \"hi\"\nj: \"...\"\n"
               "k: x#y\nl: a:b\nm: 10.0.0.0/8\n");
    /* Dates and anything a YAML 1.1 reader takes for a number are quoted;
     * words that merely start with a digit are not. */
    check_dump("{\"t\":\"2026-11-27T20:03:00Z\",\"d\":\"2026-01-02\",\"h\":\"0X1F\","
               "\"e\":\"1e5\",\"s\":\"1:20\",\"uid\":\"5f41610b-a592-4b42\","
               "\"r\":\"15d\",\"c\":\"3cpu\"}",
               "t: \"2026-11-27T20:03:00Z\"\nd: \"2026-01-02\"\nh: \"0X1F\"\ne: \"1e5\"\n"
               "s: \"1:20\"\nuid: 5f41610b-a592-4b42\nr: 15d\nc: 3cpu\n");
    /* Keys are quoted by the same rules. */
    check_dump("{\"true\":1,\"1\":2,\"\":3,\"a b\":4,\"kfleet.io/zone\":5}",
               "\"true\": 1\n\"1\": 2\n\"\": 3\na b: 4\nkfleet.io/zone: 5\n");
    /* Control characters and YAML 1.1 line breaks are escaped. */
    check_dump(
        "{\"a\":\"bell\\u0007\",\"b\":\"nel\\u0085\",\"c\":\"ls\\u2028\",\"d\":\"nul\\u0000\","
        "\"e\":\"cr\\r\\n\"}",
        "a: \"bell\\x07\"\nb: \"nel\\x85\"\nc: \"ls\\u2028\"\nd: \"nul\\0\"\ne: \"cr\\r\\n\"\n");
    /* Floats always read back as floats. */
    check_dump("[1.0,-0.0,0.1,1e20,1.5e-300,123456789.125]",
               "- 1.0\n- -0.0\n- 0.1\n- 1e+20\n- 1.5e-300\n- 123456789.125\n");
}

static void test_dump_multiline(void **state)
{
    (void)state;
    check_dump("{\"script\":\"#!/bin/sh\\nset -e\\n\\n  echo hi\\n\",\"b\":1}",
               "script: |\n  #!/bin/sh\n  set -e\n\n    echo hi\nb: 1\n");
    check_dump("{\"a\":\"one\\ntwo\"}", "a: |-\n  one\n  two\n");
    check_dump("{\"a\":\"keep\\n\\n\\n\",\"b\":[\"x\\ny\"]}",
               "a: |+\n  keep\n\n\nb:\n- |-\n  x\n  y\n");
    /* Not safe as a literal block: quoted with escapes instead. */
    check_dump("{\"a\":\" lead\\nx\",\"b\":\"trail \\nx\",\"c\":\"\\n\",\"d\":\"cr\\r\\nx\"}",
               "a: \" lead\\nx\"\nb: \"trail \\nx\"\nc: \"\\n\"\nd: \"cr\\r\\nx\"\n");
    check_dump("\"top\\nlevel\"", "|-\n  top\n  level\n");
}

static void test_dump_long_key(void **state)
{
    struct kf_strbuf key = KF_STRBUF_INIT;
    json_t *v = json_object(), *docs = NULL;
    char *text;

    (void)state;
    for (int i = 0; i < 1500; i++)
        kf_strbuf_addch(&key, 'k');
    json_object_set_new(v, key.buf, json_pack("{s:[i]}", "x", 1));
    json_object_set_new(v, "short", json_string("s"));
    text = dump(v);
    assert_true(kf_str_has_prefix(text, "? kkkk"));
    assert_int_equal(kf_yaml_load_all(text, strlen(text), &docs, NULL), 0);
    assert_true(json_equal(json_array_get(docs, 0), v));
    free(text);
    json_decref(docs);
    json_decref(v);
    kf_strbuf_release(&key);
}

static void test_dump_cap(void **state)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    json_t *v = json_pack("{s:s,s:s}", "a", "0123456789", "b", "0123456789");

    (void)state;
    out.cap = 20;
    kf_strbuf_addstr(&out, "x");
    assert_int_equal(kf_yaml_dump(v, &out), -E2BIG);
    assert_string_equal(out.buf, "x"); /* nothing half-written */
    json_decref(v);
    kf_strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_scalars),
        cmocka_unit_test(test_tags_and_keys),
        cmocka_unit_test(test_multiline_strings),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_dump_layout),
        cmocka_unit_test(test_dump_quoting),
        cmocka_unit_test(test_dump_multiline),
        cmocka_unit_test(test_dump_long_key),
        cmocka_unit_test(test_dump_cap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
