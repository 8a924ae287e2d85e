/* test-apidoc.c: docs/api.md is generated from the schema tables and must
 * stay equal to them, so every field a user can write is documented with
 * its rules. Run with KF_UPDATE_DOCS=1 to rewrite the file after changing a
 * table. Also checks `explain`, which reads the same tables. */
#include "fleet-test.h"

#include "kfleet/kind.h"
#include "kfleet/schema.h"

static char *read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[4096];
    size_t n;

    if (!f)
        return NULL;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        kf_strbuf_add(&sb, buf, n);
    fclose(f);
    return kf_strbuf_detach(&sb, ret_len);
}

/* Every field path of a table appears in the document. */
static void check_fields(const struct kf_field *fields, const char *prefix, const char *doc)
{
    for (const struct kf_field *f = fields; f && f->name; f++) {
        char *path = kf_xasprintf("`%s.%s`", prefix, f->name);
        const struct kf_field *inner = f;

        if (!strstr(doc, path)) {
            print_error("docs/api.md does not mention %s\n", path);
            fail();
        }
        while (inner->type == KF_T_ARRAY || inner->type == KF_T_MAP)
            inner = inner->items;
        if (inner->type == KF_T_OBJECT) {
            path[strlen(path) - 1] = '\0';
            check_fields(inner->fields, path + 1, doc);
        }
        free(path);
    }
}

static void test_api_md(void **state)
{
    const char *src = getenv("KF_SOURCE_DIR");
    struct kf_strbuf want = KF_STRBUF_INIT;
    char *path, *have;
    size_t n, len = 0;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    assert_non_null(src);
    path = kf_xasprintf("%s/docs/api.md", src);
    kf_kinds_doc(&want);
    if (getenv("KF_UPDATE_DOCS")) {
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(want.buf, 1, want.len, f), want.len);
        fclose(f);
    }
    have = read_file(path, &len);
    if (!have || len != want.len || memcmp(have, want.buf, len) != 0) {
        print_error("docs/api.md is out of date with the schema tables: run "
                    "KF_UPDATE_DOCS=1 KF_SOURCE_DIR=%s build/tests/test-apidoc\n",
                    src);
        fail();
    }
    for (size_t i = 0; i < n; i++) {
        char *head = kf_xasprintf("## %s\n", kinds[i]->kind);

        assert_non_null(strstr(have, head));
        free(head);
        if (kinds[i]->spec_schema)
            check_fields(kinds[i]->spec_schema->fields, "spec", have);
        if (kinds[i]->status_schema)
            check_fields(kinds[i]->status_schema->fields, "status", have);
    }
    free(have);
    free(path);
    kf_strbuf_release(&want);
}

static void test_explain(void **state)
{
    struct kf_strbuf out = KF_STRBUF_INIT;

    assert_int_equal(kf_kind_explain(&kf_kind_unit, NULL, &out), 0);
    assert_non_null(strstr(out.buf, "KIND:     Unit\nVERSION:  kfleet.io/v1\n"));
    assert_non_null(strstr(out.buf, "   spec\t<object>\n"));
    kf_strbuf_reset(&out);

    assert_int_equal(kf_kind_explain(&kf_kind_unit, "spec", &out), 0);
    assert_non_null(strstr(out.buf, "   region\t<string (dns-label)> -required-\n"
                                    "     The Region the unit belongs to.\n"));
    kf_strbuf_reset(&out);

    assert_int_equal(kf_kind_explain(&kf_kind_unit, "spec.waterLevel", &out), 0);
    assert_non_null(strstr(out.buf, "FIELD:    waterLevel <number>"));
    assert_non_null(strstr(out.buf, "RULES:    > 0; < 1\n"));
    assert_non_null(strstr(out.buf, "absent: the Region's waterLevel, else 0.60"));
    kf_strbuf_reset(&out);

    assert_int_equal(kf_kind_explain(&kf_kind_guestcluster, "spec.network", &out), 0);
    assert_non_null(strstr(out.buf, "   podCIDR\t<string (cidr)>\n"));
    kf_strbuf_reset(&out);

    assert_int_equal(kf_kind_explain(&kf_kind_host, "spec.taints.effect", &out), 0);
    assert_non_null(strstr(out.buf, "one of `NoSchedule`, `PreferNoSchedule`, `NoExecute`"));
    kf_strbuf_reset(&out);

    assert_int_equal(kf_kind_explain(&kf_kind_unit, "status.conditions", &out), 0);
    assert_non_null(strstr(out.buf, "   type\t<string> -required-\n"));
    kf_strbuf_reset(&out);

    assert_int_equal(kf_kind_explain(&kf_kind_unit, "spec.waterlevel", &out), -ENOENT);
    assert_int_equal(kf_kind_explain(&kf_kind_template, "status", &out), -ENOENT);
    assert_int_equal(kf_kind_explain(&kf_kind_unit, "metadata.name", &out), -ENOENT);
    assert_int_equal(out.len, 0);
    kf_strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_md),
        cmocka_unit_test(test_explain),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
