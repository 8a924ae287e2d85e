/* test-schema.c: the declarative schema engine on a schema of its own that
 * uses every type, flag and format: what validation reports (field path,
 * cause type, message), defaults and normalization, immutability, bounds,
 * the OpenAPI it writes, field lookup and docs, and the CIDR helpers. */
#include "fleet-test.h"

#include "kfleet/kind.h"
#include "kfleet/schema.h"

static const char *const colours[] = { "red", "green", NULL };

static const struct kf_field item_fields[] = {
    KF_STRING("name", "Item name.", .flags = KF_F_REQUIRED, .format = KF_FMT_DNS_LABEL),
    KF_INT("weight", "Item weight.", .dflt = "1"),
    KF_END,
};

static const struct kf_field bounded_fields[] = {
    KF_STRING("every", "A duration with a bound.", .format = KF_FMT_DURATION, .flags = KF_F_MAX,
              .max = 3600),
    KF_STRING("whenever", "A duration without one.", .format = KF_FMT_DURATION),
    KF_QUANTITY("size", "A quantity with a bound.", .flags = KF_F_MAX, .max = 1024),
    KF_QUANTITY("any", "A quantity without one."),
    KF_INT("n", "An integer without a bound."),
    KF_STRING("pct", "A percentage.", .format = KF_FMT_PERCENT),
    KF_END,
};

static const struct kf_schema bounded_schema = { .description = "Bounds.",
                                                 .fields = bounded_fields };

static const struct kf_field test_fields[] = {
    KF_STRING("colour", "A colour.", .enum_values = colours, .flags = KF_F_REQUIRED),
    KF_STRING("short", "At most 4 bytes.", .max_len = 4, .min_len = 2),
    KF_INT("count", "0..10.", .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 10, .dflt = "3"),
    KF_NUMBER("ratio", "(0,1).", .flags = KF_F_XMIN | KF_F_XMAX, .min = 0, .max = 1),
    KF_BOOL("on", "A switch.", .dflt = "false"),
    KF_QUANTITY("mem", "Memory."),
    KF_STRING("fixed", "Immutable.", .flags = KF_F_IMMUTABLE),
    KF_STRING("once", "Set once.", .flags = KF_F_SET_ONCE),
    KF_STRING("maybe", "Nullable.", .flags = KF_F_NULLABLE),
    KF_ARRAY("tags", "Unique DNS labels.", KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL),
             .flags = KF_F_UNIQUE, .max_len = 3),
    KF_ARRAY("items", "Objects.", KF_ITEM_OBJECT(item_fields)),
    KF_MAP("limits", "Quantities by resource.", KF_ITEM_QUANTITY(), .key_format = KF_FMT_LABEL_KEY),
    KF_OBJECT("nested", "An object with defaults.",
              KF_FIELDS(KF_STRING("mode", "Mode.", .dflt = "\"auto\""),
                        KF_OBJECT("deeper", "Deeper.",
                                  KF_FIELDS(KF_INT("level", "Level.", .dflt = "7")), .dflt = "{}")),
              .dflt = "{}"),
    KF_OBJECT("open", "Keeps unknown members.", KF_FIELDS(KF_INT("known", "Known.")),
              .flags = KF_F_OPEN),
    KF_ANY("free", "Anything."),
    KF_END,
};

static const struct kf_schema test_schema = {
    .description = "A schema for tests.",
    .fields = test_fields,
};

static size_t validate(const char *text, const char *old_text, struct kf_causes *causes)
{
    json_t *v = J(text), *old = old_text ? J(old_text) : NULL;
    size_t n;

    kf_schema_defaults(&test_schema, v);
    n = kf_schema_validate(&test_schema, v, old, "spec", causes);
    json_decref(v);
    json_decref(old);
    return n;
}

static void test_types_and_messages(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;

    assert_int_equal(validate("{'colour':'red'}", NULL, &causes), 0);
    validate("{'colour':'blue','short':'toolong','count':11,'ratio':0,'on':'yes','mem':'4GB',"
             "'tags':['a','B','a','d'],'items':[{'weight':2.5}],'limits':{'cpu':true,"
             "'Bad Key':'1'},'nested':{'deeper':{'level':'x'}},'free':[]}",
             NULL, &causes);
    assert_cause(&causes, "spec.colour", "FieldValueNotSupported",
                 "unsupported value \"blue\": supported values: \"red\", \"green\"");
    assert_cause(&causes, "spec.short", "FieldValueTooLong",
                 "may not be longer than 4 bytes (got 7)");
    assert_cause(&causes, "spec.count", "FieldValueInvalid",
                 "must be at least 0 and at most 10, got 11");
    assert_cause(&causes, "spec.ratio", "FieldValueInvalid", "greater than 0 and less than 1");
    assert_cause(&causes, "spec.on", "FieldValueTypeInvalid",
                 "must be true or false (got a string)");
    assert_cause(&causes, "spec.mem", "FieldValueInvalid", "\"4GB\": must be a quantity");
    assert_cause(&causes, "spec.tags", "FieldValueTooMany", "at most 3 items (got 4)");
    assert_cause(&causes, "spec.items[0].name", "FieldValueRequired", "Required value");
    assert_cause(&causes, "spec.items[0].weight", "FieldValueTypeInvalid",
                 "must be an integer (got a number)");
    assert_cause(&causes, "spec.limits[cpu]", "FieldValueTypeInvalid", "must be a quantity");
    assert_cause(&causes, "spec.limits[Bad Key]", "FieldValueInvalid", "invalid key");
    assert_cause(&causes, "spec.nested.deeper.level", "FieldValueTypeInvalid",
                 "must be an integer (got a string)");
    assert_cause(&causes, "spec.free", "FieldValueTypeInvalid", "must be an object");
    kf_causes_release(&causes);

    validate("{'colour':'red','short':'a','tags':['a','B','a']}", NULL, &causes);
    assert_cause(&causes, "spec.short", "FieldValueInvalid", "at least 2 bytes");
    assert_cause(&causes, "spec.tags[1]", "FieldValueInvalid", "must be a DNS label");
    assert_cause(&causes, "spec.tags[2]", "FieldValueDuplicate", "Duplicate value: \"a\"");
    kf_causes_release(&causes);

    /* required, and a non-object */
    validate("{}", NULL, &causes);
    assert_cause(&causes, "spec.colour", "FieldValueRequired", "Required value");
    kf_causes_release(&causes);
    {
        json_t *v = J("[1]");

        assert_int_equal(kf_schema_validate(&test_schema, v, NULL, "spec", &causes), 1);
        assert_cause(&causes, "spec", "FieldValueTypeInvalid", "must be an object (got an array)");
        json_decref(v);
        kf_causes_release(&causes);
    }
}

static void test_unknown_fields(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;

    validate("{'colour':'red','Colour':'x','cuont':1,'zzz':1,'open':{'known':1,'extra':2},"
             "'free':{'anything':[1]},'nested':{'mood':'x'}}",
             NULL, &causes);
    assert_cause(&causes, "spec.Colour", "FieldValueUnknown", "did you mean \"colour\"?");
    assert_cause(&causes, "spec.cuont", "FieldValueUnknown", "did you mean \"count\"?");
    assert_cause(&causes, "spec.zzz", "FieldValueUnknown", "unknown field \"zzz\"");
    assert_cause(&causes, "spec.nested.mood", "FieldValueUnknown", "did you mean \"mode\"?");
    assert_null(find_cause(&causes, "spec.open.extra"));
    assert_null(find_cause(&causes, "spec.free.anything"));
    assert_int_equal(causes.n, 4);
    kf_causes_release(&causes);
}

static void test_defaults(void **state)
{
    json_t *v = J("{'colour':'red','mem':1.5,'limits':{'cpu':2,'memory':'1Gi'},"
                  "'items':[{'name':'a'}],'maybe':null,'short':null}");

    kf_schema_defaults(&test_schema, v);
    assert_int_equal(kf_json_int(v, "count", 0), 3);
    assert_false(kf_json_bool(v, "on", true));
    assert_string_equal(kf_json_str(v, "nested.mode", ""), "auto");
    assert_int_equal(kf_json_int(v, "nested.deeper.level", 0), 7);
    assert_int_equal(kf_json_int(json_array_get(json_object_get(v, "items"), 0), "weight", 0), 1);
    /* quantities given as numbers are normalized to strings */
    assert_string_equal(kf_json_str(v, "mem", ""), "1500m");
    assert_string_equal(kf_json_str(v, "limits.cpu", ""), "2");
    assert_string_equal(kf_json_str(v, "limits.memory", ""), "1Gi");
    /* null means absent unless nullable */
    assert_true(json_is_null(json_object_get(v, "maybe")));
    assert_null(json_object_get(v, "short"));
    /* present values are never overwritten; defaults are idempotent */
    {
        json_t *again = json_deep_copy(v);

        kf_schema_defaults(&test_schema, again);
        assert_true(json_equal(v, again));
        json_decref(again);
    }
    json_decref(v);
}

static void test_immutable(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;

    /* create: anything goes */
    assert_int_equal(validate("{'colour':'red','fixed':'a','once':'b'}", NULL, &causes), 0);
    /* unchanged */
    assert_int_equal(validate("{'colour':'red','fixed':'a','once':'b'}",
                              "{'colour':'green','fixed':'a','once':'b'}", &causes),
                     0);
    /* set-once may be added later, immutable may not */
    assert_int_equal(
        validate("{'colour':'red','fixed':'a','once':'b'}", "{'colour':'red'}", &causes), 1);
    assert_cause(&causes, "spec.fixed", "FieldValueInvalid", "field is immutable");
    kf_causes_release(&causes);
    /* neither may change or be removed once set */
    assert_int_equal(
        validate("{'colour':'red','once':'c'}", "{'colour':'red','fixed':'a','once':'b'}", &causes),
        2);
    assert_cause(&causes, "spec.fixed", "FieldValueInvalid", "field is immutable");
    assert_cause(&causes, "spec.once", "FieldValueInvalid", "immutable once set (was b)");
    kf_causes_release(&causes);
}

static void test_cause_cap(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf text = KF_STRBUF_INIT;

    kf_strbuf_addstr(&text, "{'colour':'red'");
    for (int i = 0; i < 200; i++)
        kf_strbuf_addf(&text, ",'x%d':1", i);
    kf_strbuf_addch(&text, '}');
    assert_int_equal(validate(text.buf, NULL, &causes), KF_SCHEMA_MAX_CAUSES + 1);
    assert_cause(&causes, "spec", "FieldValueTooMany", "136 more problems were not listed");
    kf_causes_release(&causes);
    kf_strbuf_release(&text);
}

/* Every number a request or object brings has a bound: the fields that set
 * none get the engine's, and each spec field must set its own (a count, size
 * or duration sized from an object must never be unbounded). */
static void test_bounds(void **state)
{
    static const struct {
        const char *text;
        bool ok;
    } cases[] = {
        { "{\"every\": \"1h\"}", true },
        { "{\"every\": \"61m\"}", false },
        { "{\"whenever\": \"366d\"}", true },
        { "{\"whenever\": \"367d\"}", false },
        { "{\"whenever\": \"999999999999h\"}", false },
        { "{\"size\": \"1Ki\"}", true },
        { "{\"size\": \"1025\"}", false },
        { "{\"size\": 2048}", false },
        { "{\"any\": \"1Pi\"}", true },
        { "{\"any\": \"2Pi\"}", false },
        { "{\"n\": 9007199254740992}", true },
        { "{\"n\": 9007199254740993000}", false },
        { "{\"n\": -9007199254740993000}", false },
        { "{\"pct\": \"100%\"}", true },
        { "{\"pct\": \"101%\"}", false },
        { "{\"pct\": \"4294967396%\"}", false },
    };

    (void)state;
    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        struct kf_causes c = { 0 };
        json_t *v = J(cases[i].text);
        size_t n = kf_schema_validate(&bounded_schema, v, NULL, "spec", &c);

        if ((n == 0) != cases[i].ok)
            fail_msg("%s: %zu causes", cases[i].text, n);
        kf_causes_release(&c);
        json_decref(v);
    }
}

static void unbounded(const char *path, const struct kf_field *f, struct kf_strbuf *out);

static void unbounded_fields(const char *path, const struct kf_field *fs, struct kf_strbuf *out)
{
    for (const struct kf_field *f = fs; f && f->name; f++) {
        char *p = kf_xasprintf("%s.%s", path, f->name);

        unbounded(p, f, out);
        free(p);
    }
}

static void unbounded(const char *path, const struct kf_field *f, struct kf_strbuf *out)
{
    bool num = f->type == KF_T_INT || f->type == KF_T_NUMBER || f->type == KF_T_INT_OR_STRING;
    bool min = f->flags & (KF_F_MIN | KF_F_XMIN), max = f->flags & (KF_F_MAX | KF_F_XMAX);

    if ((num && (!min || !max)) ||
        ((f->type == KF_T_QUANTITY || f->format == KF_FMT_DURATION) && !max))
        kf_strbuf_addf(out, " %s", path);
    if (f->type == KF_T_OBJECT)
        unbounded_fields(path, f->fields, out);
    if ((f->type == KF_T_ARRAY || f->type == KF_T_MAP) && f->items) {
        char *p = kf_xasprintf("%s[]", path);

        unbounded(p, f->items, out);
        free(p);
    }
}

static void test_every_spec_number_bounded(void **state)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    size_t n;
    const struct kf_kind *const *kinds = kf_kinds(&n);

    (void)state;
    for (size_t i = 0; i < n; i++)
        if (kinds[i]->spec_schema) {
            char *p = kf_xasprintf("%s.spec", kinds[i]->kind);

            unbounded_fields(p, kinds[i]->spec_schema->fields, &out);
            free(p);
        }
    if (out.len)
        fail_msg("spec fields without an explicit bound (give each .min/.max, or a max "
                 "duration or quantity):%s",
                 out.buf);
    kf_strbuf_release(&out);
}

static void test_formats(void **state)
{
    static const struct {
        enum kf_format f;
        const char *s;
        bool ok;
    } cases[] = {
        { KF_FMT_DNS_LABEL, "cn-hangzhou-a", true },
        { KF_FMT_DNS_LABEL, "a", true },
        { KF_FMT_DNS_LABEL, "-a", false },
        { KF_FMT_DNS_LABEL, "A", false },
        { KF_FMT_DNS_LABEL, "a.b", false },
        { KF_FMT_DNS_LABEL, "", false },
        { KF_FMT_DNS_SUBDOMAIN, "h1.hz.example.com", true },
        { KF_FMT_DNS_SUBDOMAIN, "a..b", false },
        { KF_FMT_DNS_SUBDOMAIN, "a.", false },
        { KF_FMT_LABEL_KEY, "kfleet.io/tier", true },
        { KF_FMT_LABEL_KEY, "Tier_1", true },
        { KF_FMT_LABEL_KEY, "/tier", false },
        { KF_FMT_LABEL_KEY, "a/b/c", false },
        { KF_FMT_LABEL_VALUE, "", true },
        { KF_FMT_LABEL_VALUE, "v1.2_x", true },
        { KF_FMT_LABEL_VALUE, "a b", false },
        { KF_FMT_CIDR, "10.0.0.0/8", true },
        { KF_FMT_CIDR, "0.0.0.0/0", true },
        { KF_FMT_CIDR, "fd00::/64", true },
        { KF_FMT_CIDR, "10.0.0.1/8", false },
        { KF_FMT_CIDR, "10.0.0.0/33", false },
        { KF_FMT_CIDR, "10.0.0.0/08", false },
        { KF_FMT_CIDR, "10.0.0.0", false },
        { KF_FMT_CIDR, "010.0.0.0/8", false },
        { KF_FMT_CIDR, "fd00::1/64", false },
        { KF_FMT_IP, "192.168.1.1", true },
        { KF_FMT_IP, "::1", true },
        { KF_FMT_IP, "192.168.1", false },
        { KF_FMT_QUANTITY, "500m", true },
        { KF_FMT_QUANTITY, "4Gi", true },
        { KF_FMT_QUANTITY, "1.5G", true },
        { KF_FMT_QUANTITY, "4GB", false },
        { KF_FMT_QUANTITY, "-1", false },
        { KF_FMT_DURATION, "1h30m", true },
        { KF_FMT_DURATION, "250ms", true },
        { KF_FMT_DURATION, "15d", true },
        { KF_FMT_DURATION, "1y", false },
        { KF_FMT_DURATION, "h", false },
        { KF_FMT_VERSION, "1.30", true },
        { KF_FMT_VERSION, "1.30.2", true },
        { KF_FMT_VERSION, "v1.30", false },
        { KF_FMT_VERSION, "1", false },
        { KF_FMT_VERSION, "1.30.", false },
        { KF_FMT_VERSION, "1.030", false },
        { KF_FMT_VERSION, "1.2.3.4", false },
        { KF_FMT_RFC3339, "2026-01-02T15:04:05Z", true },
        { KF_FMT_RFC3339, "2026-01-02T15:04:05.123Z", true },
        { KF_FMT_RFC3339, "2026-01-02 15:04:05", false },
        { KF_FMT_TIME_OF_DAY, "02:00", true },
        { KF_FMT_TIME_OF_DAY, "23:59", true },
        { KF_FMT_TIME_OF_DAY, "24:00", false },
        { KF_FMT_TIME_OF_DAY, "2:00", false },
        { KF_FMT_TIME_OF_DAY, "12:60", false },
        { KF_FMT_URL, "https://10.0.0.1:6443", true },
        { KF_FMT_URL, "ftp://x", false },
        { KF_FMT_URL, "http://", false },
        { KF_FMT_URL, "http://a b", false },
        { KF_FMT_REASON, "NoHeadroom", true },
        { KF_FMT_REASON, "noHeadroom", true },
        { KF_FMT_REASON, "Bad-Reason", false },
        { KF_FMT_REASON, "Ends:", false },
        { KF_FMT_REASON, "No Headroom", false },
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        struct kf_strbuf why = KF_STRBUF_INIT;
        bool ok = kf_format_check(cases[i].f, cases[i].s, &why);

        if (ok != cases[i].ok) {
            print_error("format %s of \"%s\": got %s, want %s\n", kf_format_name(cases[i].f),
                        cases[i].s, ok ? "valid" : "invalid", cases[i].ok ? "valid" : "invalid");
            fail();
        }
        /* a rejection always says why */
        assert_true(ok || why.len > 0);
        kf_strbuf_release(&why);
    }
}

static void test_openapi(void **state)
{
    json_t *o = kf_schema_openapi(&test_schema);
    json_t *p = json_object_get(o, "properties");

    assert_string_equal(kf_json_str(o, "description", ""), "A schema for tests.");
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "required"), 0)),
                        "colour");
    assert_string_equal(kf_json_str(p, "colour.enum", "x"), "x"); /* enum is an array */
    assert_int_equal(json_array_size(kf_json_path(p, "colour.enum")), 2);
    assert_int_equal(kf_json_int(p, "short.maxLength", 0), 4);
    assert_int_equal(kf_json_int(p, "count.maximum", 0), 10);
    assert_int_equal(kf_json_int(p, "count.default", 0), 3);
    assert_true(kf_json_bool(p, "ratio.exclusiveMinimum", false));
    assert_true(kf_json_bool(p, "mem.x-kubernetes-int-or-string", false));
    assert_string_equal(kf_json_str(p, "tags.x-kubernetes-list-type", ""), "set");
    assert_string_equal(kf_json_str(p, "tags.items.format", ""), "dns-label");
    assert_string_equal(kf_json_str(p, "items.items.properties.name.description", ""),
                        "Item name.");
    assert_true(kf_json_bool(p, "limits.additionalProperties.x-kubernetes-int-or-string", false));
    assert_true(kf_json_bool(p, "open.x-kubernetes-preserve-unknown-fields", false));
    assert_true(kf_json_bool(p, "free.x-kubernetes-preserve-unknown-fields", false));
    assert_true(kf_json_bool(p, "maybe.nullable", false));
    assert_string_equal(kf_json_str(p, "nested.properties.deeper.description", ""), "Deeper.");
    json_decref(o);
}

static void test_lookup_and_doc(void **state)
{
    struct kf_strbuf doc = KF_STRBUF_INIT, type = KF_STRBUF_INIT;
    const struct kf_field *f;

    f = kf_schema_lookup(&test_schema, "nested.deeper.level");
    assert_non_null(f);
    assert_string_equal(f->description, "Level.");
    f = kf_schema_lookup(&test_schema, "items.weight");
    assert_non_null(f);
    assert_string_equal(f->name, "weight");
    assert_null(kf_schema_lookup(&test_schema, "colour.x"));
    assert_null(kf_schema_lookup(&test_schema, "nope"));
    assert_null(kf_schema_lookup(&test_schema, ""));

    kf_field_type_name(kf_schema_lookup(&test_schema, "limits"), &type);
    assert_string_equal(type.buf, "map[string]quantity");
    kf_strbuf_reset(&type);
    kf_field_type_name(kf_schema_lookup(&test_schema, "tags"), &type);
    assert_string_equal(type.buf, "[]string (dns-label)");

    kf_schema_doc(&test_schema, "spec", &doc);
    assert_non_null(strstr(doc.buf, "| `spec.nested.deeper.level` | integer | default `7` | "
                                    "Level. |"));
    assert_non_null(
        strstr(doc.buf, "| `spec.colour` | string | required; one of `red`, `green` |"));
    assert_non_null(strstr(doc.buf, "| `spec.items.name` | string (dns-label) | required |"));
    kf_strbuf_release(&doc);
    kf_strbuf_release(&type);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_and_messages),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_immutable),
        cmocka_unit_test(test_cause_cap),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_every_spec_number_bounded),
        cmocka_unit_test(test_openapi),
        cmocka_unit_test(test_lookup_and_doc),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
