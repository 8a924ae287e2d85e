/* api-openapi-pb.c: OpenAPI v2 as protocol buffers, the form kubectl up to
 * 1.26 reads (Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf)
 * for `explain` and for the client-side validation of `apply` and
 * `create`, and which every kubectl still reads for
 * `explain --output plaintext-openapiv2`. kubectl asks for nothing else
 * there: without it, `kubectl apply` (1.20) fails before it sends a byte.
 *
 * The message types are gnostic's (github.com/google/gnostic-models,
 * openapiv2/OpenAPIv2.proto). The encoder walks the same JSON document that
 * /openapi/v2 serves, driven by a table per message type: a JSON key maps
 * to a field number and a kind; objects of named entries (paths,
 * definitions, properties, responses) become repeated Named* messages;
 * "x-" keys become vendor extensions whose value is YAML (JSON is YAML);
 * oneof wrappers (ParametersItem, Parameter, ResponseValue, SchemaItem,
 * ItemsItem, AdditionalPropertiesItem, TypeItem) wrap the value itself. A
 * JSON key the table does not know is left out (anyOf, which OpenAPI v2
 * does not have). The document is built once, so each nested message is
 * encoded into a buffer of its own and copied behind its length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "api/api-internal.h"

enum pb_kind {
    PB_STRING,  /* a JSON string */
    PB_BOOL,    /* a JSON boolean */
    PB_DOUBLE,  /* a JSON number as a double */
    PB_INT64,   /* a JSON integer */
    PB_STRINGS, /* a JSON array of strings: repeated string */
    PB_ANY,     /* any JSON value: Any { yaml = 2 } */
    PB_ANYS,    /* a JSON array: repeated Any */
    PB_MSG,     /* a JSON object: the message .msg */
    PB_MSGS,    /* a JSON array of objects: repeated .msg */
    PB_NAMED,   /* a JSON object: repeated { name = 1; value = 2 (.msg) } */
};

struct pb_msg;

struct pb_field {
    const char *key; /* the JSON key; NULL: the value being encoded itself */
    unsigned int num;
    enum pb_kind kind;
    const struct pb_msg *msg;
    const char *when_in; /* key NULL only: the value's "in" must be this */
    int when_type;       /* key NULL only: the value must be this JSON type (-1: any) */
};

struct pb_msg {
    const struct pb_field *fields;
    unsigned int vendor; /* field number of repeated NamedAny vendor_extension; 0: none */
};

/* Table rows: a JSON key's field; the value itself as field n (SELF), only
 * when its "in" is in (SELF_IN) or its JSON type is t (SELF_TYPE); the
 * value's entries as repeated Named* messages (NAMED); END. */
/* clang-format off */
#define F(k, n, kind, m)   { k, n, kind, m, NULL, -1 }
#define SELF(n, m)         { NULL, n, PB_MSG, m, NULL, -1 }
#define SELF_IN(n, m, in)  { NULL, n, PB_MSG, m, in, -1 }
#define SELF_TYPE(n, m, t) { NULL, n, PB_MSG, m, NULL, t }
#define NAMED(n, m)        { NULL, n, PB_NAMED, m, NULL, -1 }
#define END                { NULL, 0, PB_STRING, NULL, NULL, -1 }
/* clang-format on */

static const struct pb_msg schema_msg, items_item, type_item, props_msg, addprops_item;

static const struct pb_field schema_fields[] = {
    F("$ref", 1, PB_STRING, NULL),
    F("format", 2, PB_STRING, NULL),
    F("title", 3, PB_STRING, NULL),
    F("description", 4, PB_STRING, NULL),
    F("default", 5, PB_ANY, NULL),
    F("multipleOf", 6, PB_DOUBLE, NULL),
    F("maximum", 7, PB_DOUBLE, NULL),
    F("exclusiveMaximum", 8, PB_BOOL, NULL),
    F("minimum", 9, PB_DOUBLE, NULL),
    F("exclusiveMinimum", 10, PB_BOOL, NULL),
    F("maxLength", 11, PB_INT64, NULL),
    F("minLength", 12, PB_INT64, NULL),
    F("pattern", 13, PB_STRING, NULL),
    F("maxItems", 14, PB_INT64, NULL),
    F("minItems", 15, PB_INT64, NULL),
    F("uniqueItems", 16, PB_BOOL, NULL),
    F("maxProperties", 17, PB_INT64, NULL),
    F("minProperties", 18, PB_INT64, NULL),
    F("required", 19, PB_STRINGS, NULL),
    F("enum", 20, PB_ANYS, NULL),
    F("additionalProperties", 21, PB_MSG, &addprops_item),
    F("type", 22, PB_MSG, &type_item),
    F("items", 23, PB_MSG, &items_item),
    F("allOf", 24, PB_MSGS, &schema_msg),
    F("properties", 25, PB_MSG, &props_msg),
    F("readOnly", 27, PB_BOOL, NULL),
    END,
};
static const struct pb_msg schema_msg = { schema_fields, 31 };

/* Properties and Definitions: { repeated NamedSchema = 1 } over the object. */
static const struct pb_field named_schemas_fields[] = { NAMED(1, &schema_msg), END };
static const struct pb_msg props_msg = { named_schemas_fields, 0 };

/* ItemsItem { repeated Schema schema = 1 }: one schema, the value. */
static const struct pb_field items_fields[] = { SELF_TYPE(1, &schema_msg, JSON_OBJECT), END };
static const struct pb_msg items_item = { items_fields, 0 };

/* TypeItem { repeated string value = 1 }: "string" or ["string"]. */
static const struct pb_msg type_item = { NULL, 0 };

/* AdditionalPropertiesItem { oneof { Schema schema = 1; bool boolean = 2 } } */
static const struct pb_msg addprops_item = { NULL, 0 };

static const struct pb_field query_fields[] = {
    F("required", 1, PB_BOOL, NULL),      F("in", 2, PB_STRING, NULL),
    F("description", 3, PB_STRING, NULL), F("name", 4, PB_STRING, NULL),
    F("type", 6, PB_STRING, NULL),        F("format", 7, PB_STRING, NULL),
    F("uniqueItems", 20, PB_BOOL, NULL),  END,
};
static const struct pb_msg query_msg = { query_fields, 23 };

static const struct pb_field path_param_fields[] = {
    F("required", 1, PB_BOOL, NULL),
    F("in", 2, PB_STRING, NULL),
    F("description", 3, PB_STRING, NULL),
    F("name", 4, PB_STRING, NULL),
    F("type", 5, PB_STRING, NULL),
    F("format", 6, PB_STRING, NULL),
    END,
};
static const struct pb_msg path_param_msg = { path_param_fields, 22 };

static const struct pb_field header_param_fields[] = {
    F("required", 1, PB_BOOL, NULL),      F("in", 2, PB_STRING, NULL),
    F("description", 3, PB_STRING, NULL), F("name", 4, PB_STRING, NULL),
    F("type", 5, PB_STRING, NULL),        END,
};
static const struct pb_msg header_param_msg = { header_param_fields, 21 };

/* NonBodyParameter { oneof { header = 1; formData = 2; query = 3; path = 4 } } */
static const struct pb_field non_body_fields[] = {
    SELF_IN(1, &header_param_msg, "header"),
    SELF_IN(3, &query_msg, "query"),
    SELF_IN(4, &path_param_msg, "path"),
    END,
};
static const struct pb_msg non_body_msg = { non_body_fields, 0 };

/* BodyParameter: the body is described by a Schema. */
static const struct pb_field body_fields[] = {
    F("description", 1, PB_STRING, NULL), F("name", 2, PB_STRING, NULL),
    F("in", 3, PB_STRING, NULL),          F("required", 4, PB_BOOL, NULL),
    F("schema", 5, PB_MSG, &schema_msg),  END,
};
static const struct pb_msg body_msg = { body_fields, 6 };

/* Parameter { oneof { BodyParameter = 1; NonBodyParameter = 2 } } */
static const struct pb_field parameter_fields[] = {
    SELF_IN(1, &body_msg, "body"),
    SELF_IN(2, &non_body_msg, "header"),
    SELF_IN(2, &non_body_msg, "query"),
    SELF_IN(2, &non_body_msg, "path"),
    END,
};
static const struct pb_msg parameter_msg = { parameter_fields, 0 };

/* ParametersItem { oneof { Parameter = 1; JsonReference = 2 } } */
static const struct pb_field parameters_item_fields[] = { SELF(1, &parameter_msg), END };
static const struct pb_msg parameters_item = { parameters_item_fields, 0 };

/* SchemaItem { oneof { Schema = 1; FileSchema = 2 } } */
static const struct pb_field schema_item_fields[] = { SELF(1, &schema_msg), END };
static const struct pb_msg schema_item = { schema_item_fields, 0 };

static const struct pb_field response_fields[] = {
    F("description", 1, PB_STRING, NULL),
    F("schema", 2, PB_MSG, &schema_item),
    END,
};
static const struct pb_msg response_msg = { response_fields, 5 };

/* ResponseValue { oneof { Response = 1; JsonReference = 2 } } */
static const struct pb_field response_value_fields[] = { SELF(1, &response_msg), END };
static const struct pb_msg response_value = { response_value_fields, 0 };

/* Responses { repeated NamedResponseValue response_code = 1; vendor = 2 } */
static const struct pb_field responses_fields[] = {
    NAMED(1, &response_value),
    END,
};
static const struct pb_msg responses_msg = { responses_fields, 0 };

static const struct pb_field operation_fields[] = {
    F("tags", 1, PB_STRINGS, NULL),
    F("summary", 2, PB_STRING, NULL),
    F("description", 3, PB_STRING, NULL),
    F("operationId", 5, PB_STRING, NULL),
    F("produces", 6, PB_STRINGS, NULL),
    F("consumes", 7, PB_STRINGS, NULL),
    F("parameters", 8, PB_MSGS, &parameters_item),
    F("responses", 9, PB_MSG, &responses_msg),
    F("schemes", 10, PB_STRINGS, NULL),
    F("deprecated", 11, PB_BOOL, NULL),
    END,
};
static const struct pb_msg operation_msg = { operation_fields, 13 };

static const struct pb_field path_item_fields[] = {
    F("$ref", 1, PB_STRING, NULL),
    F("get", 2, PB_MSG, &operation_msg),
    F("put", 3, PB_MSG, &operation_msg),
    F("post", 4, PB_MSG, &operation_msg),
    F("delete", 5, PB_MSG, &operation_msg),
    F("options", 6, PB_MSG, &operation_msg),
    F("head", 7, PB_MSG, &operation_msg),
    F("patch", 8, PB_MSG, &operation_msg),
    F("parameters", 9, PB_MSGS, &parameters_item),
    END,
};
static const struct pb_msg path_item_msg = { path_item_fields, 10 };

/* Paths { vendor = 1; repeated NamedPathItem path = 2 } */
static const struct pb_field paths_fields[] = { NAMED(2, &path_item_msg), END };
static const struct pb_msg paths_msg = { paths_fields, 1 };

static const struct pb_field info_fields[] = {
    F("title", 1, PB_STRING, NULL),
    F("version", 2, PB_STRING, NULL),
    F("description", 3, PB_STRING, NULL),
    END,
};
static const struct pb_msg info_msg = { info_fields, 7 };

static const struct pb_field document_fields[] = {
    F("swagger", 1, PB_STRING, NULL),        F("info", 2, PB_MSG, &info_msg),
    F("host", 3, PB_STRING, NULL),           F("basePath", 4, PB_STRING, NULL),
    F("schemes", 5, PB_STRINGS, NULL),       F("consumes", 6, PB_STRINGS, NULL),
    F("produces", 7, PB_STRINGS, NULL),      F("paths", 8, PB_MSG, &paths_msg),
    F("definitions", 9, PB_MSG, &props_msg), END,
};
static const struct pb_msg document_msg = { document_fields, 16 };

/* --- wire format ------------------------------------------------------------- */

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2 };

static void put_varint(struct kf_strbuf *out, uint64_t v)
{
    char b[10];
    size_t n = 0;

    do {
        b[n] = (char)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] = (char)(b[n] | 0x80);
        n++;
    } while (v);
    kf_strbuf_add(out, b, n);
}

static void put_tag(struct kf_strbuf *out, unsigned int num, unsigned int wire)
{
    put_varint(out, ((uint64_t)num << 3) | wire);
}

static void put_bytes(struct kf_strbuf *out, unsigned int num, const char *s, size_t len)
{
    put_tag(out, num, WIRE_LEN);
    put_varint(out, len);
    kf_strbuf_add(out, s, len);
}

static void put_string(struct kf_strbuf *out, unsigned int num, const char *s)
{
    put_bytes(out, num, s, strlen(s));
}

static void put_double(struct kf_strbuf *out, unsigned int num, double d)
{
    uint64_t bits;
    char b[8];

    memcpy(&bits, &d, sizeof(bits));
    for (int i = 0; i < 8; i++)
        b[i] = (char)((bits >> (8 * i)) & 0xff);
    put_tag(out, num, WIRE_FIXED64);
    kf_strbuf_add(out, b, sizeof(b));
}

/* Any { string yaml = 2 }: the value as JSON, which is YAML. */
static void put_any(struct kf_strbuf *out, unsigned int num, const json_t *v)
{
    struct kf_strbuf inner = KF_STRBUF_INIT, text = KF_STRBUF_INIT;

    kf_json_dump_sb(v, &text);
    put_bytes(&inner, 2, text.buf, text.len);
    put_bytes(out, num, inner.buf, inner.len);
    kf_strbuf_release(&inner);
    kf_strbuf_release(&text);
}

static void encode_msg(struct kf_strbuf *out, const struct pb_msg *m, const json_t *v);

static void put_msg(struct kf_strbuf *out, unsigned int num, const struct pb_msg *m,
                    const json_t *v)
{
    struct kf_strbuf inner = KF_STRBUF_INIT;

    encode_msg(&inner, m, v);
    put_bytes(out, num, inner.buf ? inner.buf : "", inner.len);
    kf_strbuf_release(&inner);
}

/* The wrappers whose content is not a JSON object of their own. */
static bool encode_special(struct kf_strbuf *out, const struct pb_msg *m, const json_t *v)
{
    if (m == &type_item) {
        size_t i;
        json_t *t;

        if (json_is_string(v))
            put_string(out, 1, json_string_value(v));
        else
            json_array_foreach(v, i, t)
            {
                if (json_is_string(t))
                    put_string(out, 1, json_string_value(t));
            }
        return true;
    }
    if (m == &addprops_item) {
        if (json_is_boolean(v)) {
            put_tag(out, 2, WIRE_VARINT);
            put_varint(out, json_is_true(v));
        } else if (json_is_object(v)) {
            put_msg(out, 1, &schema_msg, v);
        }
        return true;
    }
    return false;
}

static void encode_field(struct kf_strbuf *out, const struct pb_field *f, const json_t *v)
{
    const char *key;
    json_t *child;
    size_t i;

    switch (f->kind) {
    case PB_STRING:
        if (json_is_string(v))
            put_string(out, f->num, json_string_value(v));
        break;
    case PB_BOOL:
        if (json_is_boolean(v)) {
            put_tag(out, f->num, WIRE_VARINT);
            put_varint(out, json_is_true(v));
        }
        break;
    case PB_DOUBLE:
        if (json_is_number(v))
            put_double(out, f->num, json_number_value(v));
        break;
    case PB_INT64:
        if (json_is_integer(v)) {
            put_tag(out, f->num, WIRE_VARINT);
            put_varint(out, (uint64_t)json_integer_value(v));
        }
        break;
    case PB_STRINGS:
        json_array_foreach(v, i, child)
        {
            if (json_is_string(child))
                put_string(out, f->num, json_string_value(child));
        }
        break;
    case PB_ANY:
        put_any(out, f->num, v);
        break;
    case PB_ANYS:
        json_array_foreach(v, i, child)
        {
            put_any(out, f->num, child);
        }
        break;
    case PB_MSG:
        put_msg(out, f->num, f->msg, v);
        break;
    case PB_MSGS:
        json_array_foreach(v, i, child)
        {
            put_msg(out, f->num, f->msg, child);
        }
        break;
    case PB_NAMED:
        json_object_foreach((json_t *)v, key, child)
        {
            struct kf_strbuf named = KF_STRBUF_INIT;

            put_string(&named, 1, key);
            put_msg(&named, 2, f->msg, child);
            put_bytes(out, f->num, named.buf, named.len);
            kf_strbuf_release(&named);
        }
        break;
    }
}

static void encode_msg(struct kf_strbuf *out, const struct pb_msg *m, const json_t *v)
{
    if (encode_special(out, m, v))
        return;
    for (const struct pb_field *f = m->fields; f && (f->key || f->num); f++) {
        if (!f->key) {
            const char *in = json_string_value(json_object_get(v, "in"));

            if (f->when_in && !kf_streq(in, f->when_in))
                continue;
            if (f->when_type >= 0 && (int)json_typeof(v) != f->when_type)
                continue;
            if (f->kind == PB_NAMED)
                encode_field(out, f, v);
            else
                put_msg(out, f->num, f->msg, v);
            if (f->when_in)
                break; /* a oneof: the first match */
            continue;
        }
        if (json_object_get(v, f->key))
            encode_field(out, f, json_object_get(v, f->key));
    }
    if (m->vendor && json_is_object(v)) {
        const char *key;
        json_t *child;

        json_object_foreach((json_t *)v, key, child)
        {
            struct kf_strbuf named = KF_STRBUF_INIT;

            if (strncmp(key, "x-", 2) != 0)
                continue;
            put_string(&named, 1, key);
            put_any(&named, 2, child);
            put_bytes(out, m->vendor, named.buf, named.len);
            kf_strbuf_release(&named);
        }
    }
}

char *kf_api_openapi_v2_protobuf(const json_t *doc, size_t *ret_len)
{
    struct kf_strbuf out = KF_STRBUF_INIT;

    encode_msg(&out, &document_msg, doc);
    return kf_strbuf_detach(&out, ret_len);
}
