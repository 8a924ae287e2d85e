/* test-selector.c: label and field selectors as kubectl users write them:
 * the Kubernetes grammar (operators, whitespace, sets, empty values), what
 * matches, canonical form, the LabelSelector JSON, limits, and error
 * messages that say what to fix. */
#include "fleet-test.h"

#include "kfleet/selector.h"

static bool matches(const char *sel, const char *labels_json)
{
    struct kf_selector *s = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *labels = J(labels_json);
    bool m;

    if (kf_selector_parse_labels(sel, &s, &err) < 0) {
        print_error("selector \"%s\" does not parse: %s\n", sel, err.buf);
        fail();
    }
    m = kf_selector_matches_labels(s, labels);
    json_decref(labels);
    kf_selector_free(s);
    kf_strbuf_release(&err);
    return m;
}

static char *canonical(const char *sel)
{
    struct kf_selector *s = NULL;
    struct kf_strbuf out = KF_STRBUF_INIT;

    assert_int_equal(kf_selector_parse_labels(sel, &s, NULL), 0);
    kf_selector_format(s, &out);
    kf_selector_free(s);
    return kf_strbuf_detach(&out, NULL);
}

static void assert_canonical(const char *sel, const char *want)
{
    char *got = canonical(sel);

    assert_string_equal(got, want);
    free(got);
}

/* Parsing fails and the message contains text. */
static void assert_label_error(const char *sel, const char *text)
{
    struct kf_selector *s = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;

    assert_int_equal(kf_selector_parse_labels(sel, &s, &err), -EBADMSG);
    assert_null(s);
    if (!strstr(err.buf, text)) {
        print_error("error for \"%s\" is \"%s\", expected \"%s\"\n", sel, err.buf, text);
        fail();
    }
    kf_strbuf_release(&err);
}

static void test_operators(void **state)
{
    const char *l = "{'app':'web','tier':'front','gpu':''}";

    assert_true(matches("app=web", l));
    assert_true(matches("app==web", l));
    assert_false(matches("app=db", l));
    assert_true(matches("app!=db", l));
    assert_false(matches("app!=web", l));
    assert_true(matches("missing!=x", l)); /* != matches an absent key, as in Kubernetes */
    assert_true(matches("app in (web,db)", l));
    assert_false(matches("app in (db)", l));
    assert_true(matches("app notin (db)", l));
    assert_true(matches("missing notin (db)", l));
    assert_false(matches("app notin (web)", l));
    assert_true(matches("gpu", l));
    assert_false(matches("!gpu", l));
    assert_true(matches("!legacy", l));
    assert_false(matches("legacy", l));
    assert_true(matches("gpu=", l)); /* empty value */
    assert_true(matches("gpu in (,x)", l));
    assert_true(matches("app=web,tier=front,!legacy", l));
    assert_false(matches("app=web,tier=back", l));
    assert_true(matches("", l));
    assert_true(matches("kfleet.io/role!=meta", l));
    assert_false(matches("app=web", "{}"));
}

static void test_whitespace(void **state)
{
    const char *l = "{'app':'web','env':'prod'}";

    assert_true(matches("  app = web ,  env  in ( prod , dev )  ", l));
    assert_true(matches("app\t==\tweb", l));
    assert_true(matches("env in(prod)", l));
    assert_true(matches("! legacy", l));
    assert_true(matches("app!= db", l));
    assert_label_error("app=web prod", "expected \",\" between terms, found \"prod\"");
    assert_label_error("app=w eb", "found \"eb\"");
}

static void test_errors(void **state)
{
    struct kf_selector *s = NULL;
    char *big;

    assert_label_error("app in ()", "need at least one value");
    assert_label_error("app in (a", "expected \",\" or \")\"");
    assert_label_error("app in a", "expected \"(\" after \"in\"");
    assert_label_error("app=web,", "expected a term after the last \",\"");
    assert_label_error(",app", "expected a label key, found \",\"");
    assert_label_error("app>5", "the \">\" operator is not supported");
    assert_label_error("app=(x)", "expected a value after the operator");
    assert_label_error("-bad-=x", "invalid label key \"-bad-\"");
    assert_label_error("app=-bad", "invalid label value \"-bad\"");
    assert_label_error("!app=x", "takes no operator");
    assert_label_error("app foo", "expected =, ==, !=, in, notin");
    assert_label_error("app in (a) x", "expected \",\" between terms");
    assert_label_error("a=1,b=2,c=3,d=4=5", "position 16");
    /* bounds */
    big = kf_xmalloc(KF_SELECTOR_MAX_BYTES + 2);
    memset(big, 'a', KF_SELECTOR_MAX_BYTES + 1);
    big[KF_SELECTOR_MAX_BYTES + 1] = '\0';
    assert_int_equal(kf_selector_parse_labels(big, &s, NULL), -EBADMSG);
    free(big);
    {
        struct kf_strbuf many = KF_STRBUF_INIT;

        for (int i = 0; i <= KF_SELECTOR_MAX_TERMS; i++)
            kf_strbuf_addf(&many, "%sk%d", i ? "," : "", i);
        assert_label_error(many.buf, "more than 64 terms");
        kf_strbuf_release(&many);
    }
}

static void test_canonical(void **state)
{
    assert_canonical("tier in (b,a), app=web, !old, gpu, x != y",
                     "app=web,gpu,!old,tier in (a,b),x!=y");
    assert_canonical("app==web", "app=web");
    assert_canonical("", "");
    /* canonical text parses back to the same */
    assert_canonical("app=web,gpu,!old,tier in (a,b),x!=y", "app=web,gpu,!old,tier in (a,b),x!=y");
}

static void test_fields(void **state)
{
    json_t *obj = J("{'metadata':{'name':'web-1'},'spec':{'region':'cn-hz','expectedNodes':40,"
                    "'paused':false},'status':{'phase':'Running'}}");
    struct kf_selector *s = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT, out = KF_STRBUF_INIT;
    static const struct {
        const char *sel;
        bool match;
    } cases[] = {
        { "metadata.name=web-1", true },
        { "metadata.name==web-1", true },
        { "metadata.name!=web-1", false },
        { "status.phase=Running,spec.region=cn-hz", true },
        { "status.phase=Pending", false },
        { "spec.expectedNodes=40", true },
        { "spec.paused=false", true },
        { "spec.missing=", true }, /* absent reads as "" */
        { "spec.missing!=x", true },
        { " status.phase =Running", true },
        /* kfleet's "starts with", for names only */
        { "metadata.name^=web-", true },
        { "metadata.name^=web-1", true },
        { "metadata.name^=", true },
        { "metadata.name^=web-10", false },
        { "metadata.name^=eb", false },
        { "metadata.name^=web,status.phase=Pending", false },
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        assert_int_equal(kf_selector_parse_fields(cases[i].sel, &s, &err), 0);
        assert_true(kf_selector_is_fields(s));
        if (kf_selector_matches(s, obj) != cases[i].match) {
            print_error("field selector \"%s\" should %smatch\n", cases[i].sel,
                        cases[i].match ? "" : "not ");
            fail();
        }
        kf_selector_free(s);
    }
    /* escapes */
    assert_int_equal(kf_selector_parse_fields("metadata.annotations.x=a\\,b\\=c", &s, &err), 0);
    kf_selector_format(s, &out);
    assert_string_equal(out.buf, "metadata.annotations.x=a\\,b\\=c");
    kf_selector_free(s);
    assert_int_equal(kf_selector_parse_fields("metadata.name=x,metadata.name!=y", &s, &err), 0);
    assert_string_equal(kf_selector_name_equals(s), "x");
    assert_null(kf_selector_name_prefix(s));
    kf_selector_free(s);
    assert_int_equal(
        kf_selector_parse_fields("status.phase=Running,metadata.name^=web\\,1", &s, &err), 0);
    assert_string_equal(kf_selector_name_prefix(s), "web,1");
    assert_null(kf_selector_name_equals(s));
    kf_strbuf_reset(&out);
    kf_selector_format(s, &out);
    assert_string_equal(out.buf, "status.phase=Running,metadata.name^=web\\,1");
    kf_selector_free(s);
    assert_int_equal(kf_selector_parse_fields("status.phase^=Run", &s, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "metadata.name only"));
    assert_int_equal(kf_selector_parse_fields("metadata.name^=a^=b", &s, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "a second operator"));

    assert_int_equal(kf_selector_parse_fields("status.phase", &s, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "expected \"path=value\""));
    assert_int_equal(kf_selector_parse_fields("status..phase=x", &s, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "invalid field path"));
    assert_int_equal(kf_selector_parse_fields("a=b=c", &s, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "escape \"=\""));
    assert_int_equal(kf_selector_parse_fields("a=\\q", &s, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "invalid escape"));
    assert_int_equal(kf_selector_parse_fields("a=b,", &s, &err), -EBADMSG);
    json_decref(obj);
    kf_strbuf_release(&err);
    kf_strbuf_release(&out);
}

static void test_json(void **state)
{
    struct kf_selector *s = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT, out = KF_STRBUF_INIT;
    json_t *ls = J("{'matchLabels':{'app':'web'},'matchExpressions':["
                   "{'key':'env','operator':'In','values':['prod','staging']},"
                   "{'key':'legacy','operator':'DoesNotExist'}]}");
    json_t *yes = J("{'app':'web','env':'prod'}"), *no = J("{'app':'web','env':'dev'}");

    assert_int_equal(kf_selector_from_json(ls, &s, &err), 0);
    assert_true(kf_selector_matches_labels(s, yes));
    assert_false(kf_selector_matches_labels(s, no));
    kf_selector_format(s, &out);
    assert_string_equal(out.buf, "app=web,env in (prod,staging),!legacy");
    kf_selector_free(s);
    json_decref(ls);

    ls = J("{}");
    assert_int_equal(kf_selector_from_json(ls, &s, &err), 0);
    assert_true(kf_selector_is_empty(s));
    kf_selector_free(s);
    json_decref(ls);

    ls = J("{'matchExpressions':[{'key':'env','operator':'In','values':[]}]}");
    assert_int_equal(kf_selector_from_json(ls, &s, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "matchExpressions[0].values: In needs at least one value"));
    json_decref(ls);
    ls = J("{'matchExpressions':[{'key':'env','operator':'Exists','values':['x']}]}");
    assert_int_equal(kf_selector_from_json(ls, &s, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "must be empty for Exists"));
    json_decref(ls);
    ls = J("{'matchExpressions':[{'key':'env','operator':'Gt'}]}");
    assert_int_equal(kf_selector_from_json(ls, &s, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "\"Gt\" is not one of In, NotIn, Exists, DoesNotExist"));
    json_decref(ls);
    ls = J("{'matchLabel':{'a':'b'}}");
    assert_int_equal(kf_selector_from_json(ls, &s, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "unknown field \"matchLabel\""));
    json_decref(ls);

    json_decref(yes);
    json_decref(no);
    kf_strbuf_release(&err);
    kf_strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operators), cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_errors),    cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_fields),    cmocka_unit_test(test_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
