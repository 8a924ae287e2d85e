/* test-json-patch.c: RFC 6902 JSON patch (the examples of its appendix A
 * and the error cases a client meets), RFC 6901 pointers, and the bounds
 * that keep a hostile patch from blowing up memory or depth. */
#include "fleet-test.h"

struct patch_case {
    const char *doc;
    const char *patch;
    const char *want; /* result, or NULL when the patch fails */
    int rc;           /* 0, -EBADMSG or -EINVAL */
    const char *msg;  /* part of the error message */
};

static const struct patch_case cases[] = {
    /* A.1 add an object member */
    { "{'foo':'bar'}", "[{'op':'add','path':'/baz','value':'qux'}]", "{'baz':'qux','foo':'bar'}", 0,
      NULL },
    /* A.2 add an array element */
    { "{'foo':['bar','baz']}", "[{'op':'add','path':'/foo/1','value':'qux'}]",
      "{'foo':['bar','qux','baz']}", 0, NULL },
    /* A.3 remove an object member */
    { "{'baz':'qux','foo':'bar'}", "[{'op':'remove','path':'/baz'}]", "{'foo':'bar'}", 0, NULL },
    /* A.4 remove an array element */
    { "{'foo':['bar','qux','baz']}", "[{'op':'remove','path':'/foo/1'}]", "{'foo':['bar','baz']}",
      0, NULL },
    /* A.5 replace a value */
    { "{'baz':'qux','foo':'bar'}", "[{'op':'replace','path':'/baz','value':'boo'}]",
      "{'baz':'boo','foo':'bar'}", 0, NULL },
    /* A.6 move a value */
    { "{'foo':{'bar':'baz','waldo':'fred'},'qux':{'corge':'grault'}}",
      "[{'op':'move','from':'/foo/waldo','path':'/qux/thud'}]",
      "{'foo':{'bar':'baz'},'qux':{'corge':'grault','thud':'fred'}}", 0, NULL },
    /* A.7 move an array element */
    { "{'foo':['all','grass','cows','eat']}", "[{'op':'move','from':'/foo/1','path':'/foo/3'}]",
      "{'foo':['all','cows','eat','grass']}", 0, NULL },
    /* A.8 test succeeds */
    { "{'baz':'qux','foo':['a',2,'c']}",
      "[{'op':'test','path':'/baz','value':'qux'},{'op':'test','path':'/foo/1','value':2}]",
      "{'baz':'qux','foo':['a',2,'c']}", 0, NULL },
    /* A.9 test fails */
    { "{'baz':'qux'}", "[{'op':'test','path':'/baz','value':'bar'}]", NULL, -EINVAL,
      "operation 0 (path \"/baz\"): test failed: the value differs" },
    /* A.10 add a nested member object */
    { "{'foo':'bar'}", "[{'op':'add','path':'/child','value':{'grandchild':{}}}]",
      "{'foo':'bar','child':{'grandchild':{}}}", 0, NULL },
    /* A.11 unrecognized members are ignored */
    { "{'foo':'bar'}", "[{'op':'add','path':'/baz','value':'qux','xyz':123}]",
      "{'foo':'bar','baz':'qux'}", 0, NULL },
    /* A.12 add to a nonexistent target */
    { "{'foo':'bar'}", "[{'op':'add','path':'/baz/bat','value':'qux'}]", NULL, -EINVAL,
      "the parent does not exist" },
    /* A.14 ~ escapes */
    { "{'/':9,'~1':10}", "[{'op':'test','path':'/~01','value':10}]", "{'/':9,'~1':10}", 0, NULL },
    /* A.15 comparing strings and numbers */
    { "{'/':9,'~1':10}", "[{'op':'test','path':'/~01','value':'10'}]", NULL, -EINVAL,
      "test failed" },
    /* A.16 add an array value */
    { "{'foo':['bar']}", "[{'op':'add','path':'/foo/-','value':['abc','def']}]",
      "{'foo':['bar',['abc','def']]}", 0, NULL },
    /* the whole document */
    { "{'a':1}", "[{'op':'replace','path':'','value':[1]}]", "[1]", 0, NULL },
    { "{'a':1}", "[{'op':'remove','path':''}]", NULL, -EINVAL, "whole document" },
    /* copy, and the patch is atomic: an error leaves nothing half-done */
    { "{'a':{'b':1}}", "[{'op':'copy','from':'/a','path':'/c'}]", "{'a':{'b':1},'c':{'b':1}}", 0,
      NULL },
    { "{'a':1}", "[{'op':'add','path':'/b','value':2},{'op':'remove','path':'/zzz'}]", NULL,
      -EINVAL, "operation 1 (path \"/zzz\"): there is no member \"zzz\" to remove" },
    /* array indexes */
    { "[0,1]", "[{'op':'add','path':'/2','value':2}]", "[0,1,2]", 0, NULL },
    { "[0,1]", "[{'op':'add','path':'/3','value':2}]", NULL, -EINVAL, "not an index from 0 to 2" },
    { "[0,1]", "[{'op':'replace','path':'/01','value':2}]", NULL, -EINVAL, "no value to replace" },
    { "[0,1]", "[{'op':'remove','path':'/-'}]", NULL, -EINVAL, "not an index of the array" },
    { "[]", "[{'op':'remove','path':'/0'}]", NULL, -EINVAL, "not an index" },
    /* moving into a child, from == path */
    { "{'a':{'b':{}}}", "[{'op':'move','from':'/a','path':'/a/b/c'}]", NULL, -EINVAL,
      "into one of its own children" },
    { "{'a':1}", "[{'op':'move','from':'/a','path':'/a'}]", "{'a':1}", 0, NULL },
    /* malformed operations */
    { "{}", "[{'path':'/a'}]", NULL, -EBADMSG, "\"op\" is missing" },
    { "{}", "[{'op':'add','value':1}]", NULL, -EBADMSG, "\"path\" is missing" },
    { "{}", "[{'op':'add','path':'a','value':1}]", NULL, -EBADMSG, "is not a JSON pointer" },
    { "{}", "[{'op':'add','path':'/~2','value':1}]", NULL, -EBADMSG, "is not a JSON pointer" },
    { "{}", "[{'op':'add','path':'/a'}]", NULL, -EBADMSG, "needs a \"value\"" },
    { "{}", "[{'op':'copy','path':'/a'}]", NULL, -EBADMSG, "needs a \"from\"" },
    { "{}", "[{'op':'merge','path':'/a'}]", NULL, -EBADMSG, "unknown op \"merge\"" },
    { "{}", "[1]", NULL, -EBADMSG, "must be an object" },
    { "{}", "{'op':'add'}", NULL, -EBADMSG, "array of operations" },
};

static void test_cases(void **state)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        const struct patch_case *c = &cases[i];
        json_t *doc = J(c->doc), *patch = J(c->patch), *out = NULL, *doc_copy;
        struct kf_strbuf err = KF_STRBUF_INIT;
        int rc;

        doc_copy = json_deep_copy(doc);
        rc = kf_json_patch(doc, patch, &out, &err);
        if (rc != c->rc) {
            print_error("case %zu: rc %d, want %d (%s)\n", i, rc, c->rc, err.buf);
            fail();
        }
        if (c->want) {
            json_t *want = J(c->want);

            if (!json_equal(out, want)) {
                char *got = kf_json_dump(out, NULL);

                print_error("case %zu: got %s\n", i, got);
                free(got);
                fail();
            }
            json_decref(want);
            json_decref(out);
        } else if (!strstr(err.buf, c->msg)) {
            print_error("case %zu: message \"%s\", want \"%s\"\n", i, err.buf, c->msg);
            fail();
        }
        /* the input document is never modified */
        assert_true(json_equal(doc, doc_copy));
        json_decref(doc);
        json_decref(doc_copy);
        json_decref(patch);
        kf_strbuf_release(&err);
    }
}

static void test_bounds(void **state)
{
    struct kf_strbuf ops = KF_STRBUF_INIT, err = KF_STRBUF_INIT, path = KF_STRBUF_INIT;
    json_t *doc = J("{'a':'0123456789012345678901234567890123456789'}"), *patch, *out = NULL;

    /* doubling by copying into itself stops at the weight budget */
    kf_strbuf_addch(&ops, '[');
    for (int i = 0; i < 40; i++)
        kf_strbuf_addf(&ops, "%s{\"op\":\"copy\",\"from\":\"\",\"path\":\"/x%d\"}", i ? "," : "",
                       i);
    kf_strbuf_addch(&ops, ']');
    assert_int_equal(kf_json_parse(ops.buf, ops.len, &patch, NULL), 0);
    assert_int_equal(kf_json_patch(doc, patch, &out, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "too large"));
    json_decref(patch);

    /* nesting stays within KF_JSON_MAX_DEPTH: a path that is too long, and
     * copies of /a into /a/a that each add one level */
    json_decref(doc);
    doc = J("{'a':{}}");
    for (int i = 0; i < KF_JSON_MAX_DEPTH + 2; i++)
        kf_strbuf_addstr(&path, "/a");
    patch = json_pack("[{s:s,s:s,s:{}}]", "op", "add", "path", path.buf, "value");
    assert_int_equal(kf_json_patch(doc, patch, &out, &err), -EBADMSG);
    json_decref(patch);
    patch = json_array();
    for (int i = 0; i < KF_JSON_MAX_DEPTH + 5; i++)
        json_array_append_new(
            patch, json_pack("{s:s,s:s,s:s}", "op", "copy", "from", "/a", "path", "/a/a"));
    assert_int_equal(kf_json_patch(doc, patch, &out, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "deeper than 64"));
    json_decref(patch);

    /* too many operations */
    patch = json_array();
    for (int i = 0; i < 10001; i++)
        json_array_append_new(patch,
                              json_pack("{s:s,s:s,s:i}", "op", "test", "path", "/a", "value", 1));
    assert_int_equal(kf_json_patch(doc, patch, &out, &err), -EBADMSG);
    assert_non_null(strstr(err.buf, "at most 10000 operations"));
    json_decref(patch);

    json_decref(doc);
    kf_strbuf_release(&ops);
    kf_strbuf_release(&err);
    kf_strbuf_release(&path);
}

static void test_merge_patch(void **state)
{
    /* RFC 7386 section 3 example */
    json_t *doc = J("{'title':'Goodbye!','author':{'givenName':'John','familyName':'Doe'},"
                    "'tags':['example','sample'],'content':'This will be unchanged'}");
    json_t *patch = J("{'title':'Hello!','phoneNumber':'+01-123-456-7890',"
                      "'author':{'familyName':null},'tags':['example']}");
    json_t *want = J("{'title':'Hello!','author':{'givenName':'John'},'tags':['example'],"
                     "'content':'This will be unchanged','phoneNumber':'+01-123-456-7890'}");
    json_t *out = kf_json_merge_patch(doc, patch);

    assert_true(json_equal(out, want));
    json_decref(out);
    json_decref(doc);
    json_decref(patch);
    json_decref(want);
}

/* RFC 7386 appendix A's cases with nested objects and nulls; the target is
 * left as it was. */
static void test_merge_patch_nested(void **state)
{
    static const char *const rfc_merges[][3] = {
        { "{'a':'b'}", "{'a':{'bb':{'ccc':null}}}", "{'a':{'bb':{}}}" },
        { "{'e':null}", "{'a':1}", "{'e':null,'a':1}" },
        { "[1,2]", "{'a':'b','c':null}", "{'a':'b'}" },
        { "{}", "{'a':{'bb':{'ccc':null}}}", "{'a':{'bb':{}}}" },
        { "{'a':{'b':'c','d':{'e':1}}}", "{'a':{'d':{'f':2},'b':null}}",
          "{'a':{'d':{'e':1,'f':2}}}" },
        { "{'a':[{'b':'c'}]}", "{'a':[1]}", "{'a':[1]}" },
        { "{'a':{'b':'c'}}", "['c']", "['c']" },
    };
    (void)state;

    for (size_t i = 0; i < KF_ARRAY_SIZE(rfc_merges); i++) {
        json_t *doc = J(rfc_merges[i][0]), *copy = json_deep_copy(doc);
        json_t *patch = J(rfc_merges[i][1]), *want = J(rfc_merges[i][2]);
        json_t *out = kf_json_merge_patch(doc, patch);

        assert_true(json_equal(out, want));
        assert_true(json_equal(doc, copy));
        json_decref(out);
        json_decref(doc);
        json_decref(copy);
        json_decref(patch);
        json_decref(want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_merge_patch),
        cmocka_unit_test(test_merge_patch_nested),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
