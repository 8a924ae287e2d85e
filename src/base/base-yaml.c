/* base-yaml.c: YAML in and out, for people who write kfleet objects by hand
 * (`kfleet apply -f`, `kfleet get -o yaml`).
 *
 * Loading walks libyaml's event stream and builds jansson values with an
 * explicit stack (no recursion, so nesting costs heap, and it is capped at
 * KF_JSON_MAX_DEPTH like JSON bodies). Plain scalars are resolved by the
 * YAML 1.2 core schema, which is what a reader of the file expects today:
 * `yes`, `on` and `0755`-style octals of YAML 1.1 are not special, `"1.30"`
 * stays a string because it is quoted, `1.30` becomes a number. Anchors and
 * aliases are refused outright: they are how a 1 KiB document becomes
 * gigabytes (billion laughs), and kfleet objects never need them.
 *
 * Dumping is our own small block-style writer rather than libyaml's emitter:
 * we want kubectl's layout (sequences under a key not indented), keys in the
 * object's own order, literal blocks (`|`) for multi-line text, and a string
 * quoted exactly when a YAML 1.2 *or* 1.1 reader could take it for something
 * else, so that what kfleet prints reads back the same in kfleet, kubectl
 * and older tools. Every dump loads back to an equal value (the fuzz target
 * checks this).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "kfleet/json.h"
#include "kfleet/strbuf.h"

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* Longest key written as an implicit `key: value`; YAML limits implicit
 * keys to 1024 characters, longer ones use the explicit `? key` form. */
#define YAML_MAX_SIMPLE_KEY 1000

/* ------------------------------------------------------------------------ */
/* Scalar resolution (YAML 1.2 core schema)                                  */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool str_in(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static const char *const core_nulls[] = { "", "~", "null", "Null", "NULL", NULL };
static const char *const core_trues[] = { "true", "True", "TRUE", NULL };
static const char *const core_falses[] = { "false", "False", "FALSE", NULL };
static const char *const core_infs[] = { ".inf", ".Inf", ".INF", NULL };
static const char *const core_nans[] = { ".nan", ".NaN", ".NAN", NULL };

/* [-+]?[0-9]+ */
static bool match_dec_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!is_digit(*s))
            return false;
    return true;
}

/* 0o[0-7]+ or 0x[0-9a-fA-F]+; *base set to 8 or 16. */
static bool match_radix_int(const char *s, int *base)
{
    if (s[0] != '0' || (s[1] != 'o' && s[1] != 'x') || !s[2])
        return false;
    *base = s[1] == 'o' ? 8 : 16;
    for (s += 2; *s; s++)
        if (*base == 8 ? !(*s >= '0' && *s <= '7') : !is_hex(*s))
            return false;
    return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool match_float(const char *s)
{
    bool mantissa = false;

    if (*s == '-' || *s == '+')
        s++;
    while (is_digit(*s)) {
        s++;
        mantissa = true;
    }
    if (*s == '.') {
        s++;
        while (is_digit(*s)) {
            s++;
            mantissa = true;
        }
    }
    if (!mantissa)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!is_digit(*s))
            return false;
        while (is_digit(*s))
            s++;
    }
    return *s == '\0';
}

static bool match_inf_nan(const char *s)
{
    if (*s == '-' || *s == '+')
        return str_in(s + 1, core_infs);
    return str_in(s, core_infs) || str_in(s, core_nans);
}

enum resolve_as { RESOLVE_ANY, RESOLVE_INT, RESOLVE_FLOAT, RESOLVE_BOOL, RESOLVE_NULL };

/* Resolves a plain scalar (or one with an explicit core tag) into *ret.
 * Returns 0, or -EBADMSG with the reason in err. */
static int resolve_scalar(const char *s, enum resolve_as as, json_t **ret, struct kf_strbuf *err)
{
    int base;

    if ((as == RESOLVE_ANY || as == RESOLVE_NULL) && str_in(s, core_nulls)) {
        *ret = json_null();
        return 0;
    }
    if (as == RESOLVE_ANY || as == RESOLVE_BOOL) {
        if (str_in(s, core_trues)) {
            *ret = json_true();
            return 0;
        }
        if (str_in(s, core_falses)) {
            *ret = json_false();
            return 0;
        }
    }
    if (as == RESOLVE_ANY || as == RESOLVE_INT || as == RESOLVE_FLOAT) {
        bool dec = match_dec_int(s), radix = !dec && match_radix_int(s, &base);

        if ((dec || radix) && as != RESOLVE_FLOAT) {
            char *end;
            long long v;
            unsigned long long u;

            errno = 0;
            if (dec) {
                v = strtoll(s, &end, 10);
            } else {
                u = strtoull(s + 2, &end, base);
                v = (long long)u;
                if (u > INT64_MAX)
                    errno = ERANGE;
            }
            if (errno == ERANGE)
                return kf_err(err, -EBADMSG,
                              "the integer %s is out of range (-2^63 to 2^63-1); quote it to "
                              "keep it as a string",
                              s);
            *ret = json_integer(v);
            return 0;
        }
        if (dec || match_float(s)) {
            double d = strtod(s, NULL);

            if (isinf(d))
                return kf_err(err, -EBADMSG, "the number %s is too large for JSON", s);
            *ret = json_real(d);
            return 0;
        }
        if (match_inf_nan(s))
            return kf_err(err, -EBADMSG,
                          "%s cannot be represented in JSON; quote it to keep it "
                          "as a string",
                          s);
    }
    if (as == RESOLVE_ANY) {
        *ret = json_string(s);
        return 0;
    }
    return kf_err(err, -EBADMSG, "\"%s\" is not a valid %s", s,
                  as == RESOLVE_INT     ? "integer"
                  : as == RESOLVE_FLOAT ? "float"
                  : as == RESOLVE_BOOL  ? "boolean"
                                        : "null");
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */

struct load_frame {
    json_t *container; /* borrowed: owned by its parent or by the loader */
    char *key;         /* a mapping's pending key, or NULL */
    size_t key_len;
};

struct loader {
    struct load_frame stack[KF_JSON_MAX_DEPTH];
    size_t depth;
    json_t *root; /* the current document's value (owned) */
    struct kf_strbuf *err;
};

static int load_error(struct loader *l, const yaml_mark_t *mark, const char *fmt, ...)
    KF_PRINTF(3, 4);

static int load_error(struct loader *l, const yaml_mark_t *mark, const char *fmt, ...)
{
    va_list ap;

    if (!l->err)
        return -EBADMSG;
    kf_strbuf_reset(l->err);
    kf_strbuf_addf(l->err, "line %zu column %zu: ", mark->line + 1, mark->column + 1);
    va_start(ap, fmt);
    kf_strbuf_vaddf(l->err, fmt, ap);
    va_end(ap);
    return -EBADMSG;
}

static void loader_reset(struct loader *l)
{
    for (size_t i = 0; i < l->depth; i++)
        free(l->stack[i].key);
    l->depth = 0;
    json_decref(l->root);
    l->root = NULL;
}

/* Places v (reference stolen) where the document is: as the root, the next
 * element of a sequence, or the value of a mapping's pending key. A scalar
 * arriving where a mapping expects a key becomes that key instead. */
static int loader_add(struct loader *l, json_t *v, const char *text, size_t text_len,
                      const yaml_mark_t *mark)
{
    struct load_frame *top;

    if (l->depth == 0) {
        l->root = v;
        return 0;
    }
    top = &l->stack[l->depth - 1];
    if (json_is_array(top->container)) {
        json_array_append_new(top->container, v);
        return 0;
    }
    if (top->key) {
        json_object_setn_new(top->container, top->key, top->key_len, v);
        free(top->key);
        top->key = NULL;
        return 0;
    }
    /* This is a key. */
    json_decref(v);
    if (!text)
        return load_error(l, mark, "a mapping key must be a plain string, not a list or mapping");
    if (memchr(text, '\0', text_len))
        return load_error(l, mark, "a mapping key contains a NUL character");
    if (json_object_getn(top->container, text, text_len))
        return load_error(l, mark, "duplicate key \"%.*s\"", (int)KF_MIN(text_len, 200), text);
    if (text_len == 2 && memcmp(text, "<<", 2) == 0)
        return load_error(l, mark, "merge keys (<<) are not supported; write the keys out");
    top->key = kf_xstrndup(text, text_len);
    top->key_len = text_len;
    return 0;
}

static bool tag_is(const yaml_char_t *tag, const char *name)
{
    return tag && kf_str_has_prefix((const char *)tag, YAML_TAG_PREFIX) &&
           strcmp((const char *)tag + strlen(YAML_TAG_PREFIX), name) == 0;
}

static int load_scalar(struct loader *l, const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const yaml_char_t *tag = ev->data.scalar.tag;
    bool is_key = l->depth > 0 && json_is_object(l->stack[l->depth - 1].container) &&
                  !l->stack[l->depth - 1].key;
    enum resolve_as as = RESOLVE_ANY;
    bool as_string;
    json_t *v = NULL;
    int r;

    if (!tag || strcmp((const char *)tag, "!") == 0) {
        /* Untagged: plain scalars are resolved, quoted and block ones are strings. */
        as_string = tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    } else if (tag_is(tag, "str")) {
        as_string = true;
    } else {
        as_string = false;
        if (tag_is(tag, "int"))
            as = RESOLVE_INT;
        else if (tag_is(tag, "float"))
            as = RESOLVE_FLOAT;
        else if (tag_is(tag, "bool"))
            as = RESOLVE_BOOL;
        else if (tag_is(tag, "null"))
            as = RESOLVE_NULL;
        else
            return load_error(l, &ev->start_mark,
                              "the tag \"%s\" is not supported; kfleet reads strings, numbers, "
                              "booleans, null, mappings and lists",
                              (const char *)tag);
    }

    if (is_key) /* keys are strings whatever they look like: `1: x` has the key "1" */
        return loader_add(l, json_null(), text, len, &ev->start_mark);

    if (as_string || memchr(text, '\0', len)) {
        v = json_stringn(text, len);
        if (!v)
            return load_error(l, &ev->start_mark, "the string is not valid UTF-8");
    } else {
        struct kf_strbuf why = KF_STRBUF_INIT;

        r = resolve_scalar(text, as, &v, &why);
        if (r < 0) {
            r = load_error(l, &ev->start_mark, "%s", why.buf);
            kf_strbuf_release(&why);
            return r;
        }
        if (!v)
            return load_error(l, &ev->start_mark, "the string is not valid UTF-8");
    }
    return loader_add(l, v, NULL, 0, &ev->start_mark);
}

static int load_start(struct loader *l, const yaml_event_t *ev, bool mapping)
{
    const yaml_char_t *tag = mapping ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    json_t *c;
    int r;

    if (tag && strcmp((const char *)tag, "!") != 0 && !tag_is(tag, mapping ? "map" : "seq"))
        return load_error(l, &ev->start_mark,
                          "the tag \"%s\" is not supported; kfleet reads strings, numbers, "
                          "booleans, null, mappings and lists",
                          (const char *)tag);
    if (l->depth == KF_JSON_MAX_DEPTH)
        return load_error(l, &ev->start_mark, "the document is nested deeper than %d levels",
                          KF_JSON_MAX_DEPTH);
    c = mapping ? json_object() : json_array();
    r = loader_add(l, json_incref(c), NULL, 0, &ev->start_mark);
    if (r < 0) {
        json_decref(c);
        return r;
    }
    l->stack[l->depth++] = (struct load_frame){ .container = c };
    json_decref(c); /* the parent (or l->root) holds it now */
    return 0;
}

static const yaml_char_t *event_anchor(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return ev->data.scalar.anchor;
    case YAML_SEQUENCE_START_EVENT:
        return ev->data.sequence_start.anchor;
    case YAML_MAPPING_START_EVENT:
        return ev->data.mapping_start.anchor;
    default:
        return NULL;
    }
}

/* The byte offset of line `line` (0-based) of buf, or len. */
static size_t line_offset(const char *buf, size_t len, size_t line)
{
    size_t i = 0;

    for (size_t n = 0; n < line && i < len; i++)
        if (buf[i] == '\n')
            n++;
    return i;
}

/* Whether line `line` starts with blanks that include a tab. */
static bool line_indent_has_tab(const char *buf, size_t len, size_t line)
{
    for (size_t i = line_offset(buf, len, line); i < len && (buf[i] == ' ' || buf[i] == '\t'); i++)
        if (buf[i] == '\t')
            return true;
    return false;
}

/* The character at (line, column) if it is printable ASCII, else 0. libyaml
 * counts columns in characters, so walk UTF-8 sequences. */
static char char_at(const char *buf, size_t len, size_t line, size_t column)
{
    size_t i = line_offset(buf, len, line);

    for (size_t c = 0; c < column && i < len && buf[i] != '\n'; c++) {
        i++;
        while (i < len && ((unsigned char)buf[i] & 0xc0) == 0x80)
            i++;
    }
    return i < len && buf[i] > ' ' && buf[i] < 0x7f ? buf[i] : 0;
}

static int parser_error(struct loader *l, const yaml_parser_t *p, const char *buf, size_t len)
{
    const yaml_mark_t *m = &p->problem_mark;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    char c;

    if (!l->err)
        return -EBADMSG;
    kf_strbuf_reset(l->err);
    kf_strbuf_addf(l->err, "line %zu column %zu: %s", m->line + 1, m->column + 1, problem);
    c = char_at(buf, len, m->line, m->column);
    if (c && strstr(problem, "cannot start any token"))
        kf_strbuf_addf(l->err, " ('%c')", c);
    if (p->context && p->context_mark.line != m->line)
        kf_strbuf_addf(l->err, ", %s at line %zu", p->context, p->context_mark.line + 1);
    /* libyaml's words for a tab in the indentation are unhelpful; say it. */
    if (line_indent_has_tab(buf, len, m->line))
        kf_strbuf_addstr(l->err, "; YAML does not allow tabs for indentation, use spaces");
    return -EBADMSG;
}

int kf_yaml_load_all(const char *buf, size_t len, json_t **ret_array, struct kf_strbuf *err)
{
    struct loader l = { .err = err };
    yaml_parser_t parser;
    yaml_event_t ev;
    json_t *docs = json_array();
    bool done = false;
    int r = 0;

    if (!yaml_parser_initialize(&parser))
        kf_abort("out of memory initializing the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

    while (!done && r == 0) {
        const yaml_char_t *anchor;

        if (!yaml_parser_parse(&parser, &ev)) {
            r = parser_error(&l, &parser, buf, len);
            break;
        }
        anchor = event_anchor(&ev);
        if (anchor) {
            r = load_error(&l, &ev.start_mark,
                           "anchors (&%s) are not supported; write the value out in full",
                           (const char *)anchor);
            yaml_event_delete(&ev);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            loader_reset(&l);
            break;
        case YAML_DOCUMENT_END_EVENT:
            if (l.root && !json_is_null(l.root))
                json_array_append(docs, l.root);
            loader_reset(&l);
            break;
        case YAML_ALIAS_EVENT:
            r = load_error(&l, &ev.start_mark,
                           "aliases (*%s) are not supported; write the value out in full",
                           (const char *)ev.data.alias.anchor);
            break;
        case YAML_SCALAR_EVENT:
            r = load_scalar(&l, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            r = load_start(&l, &ev, false);
            break;
        case YAML_MAPPING_START_EVENT:
            r = load_start(&l, &ev, true);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            kf_assert(l.depth > 0);
            l.depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    loader_reset(&l);
    yaml_parser_delete(&parser);
    if (r < 0) {
        json_decref(docs);
        return r;
    }
    *ret_array = docs;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Dumping                                                                   */

/* Decodes one UTF-8 sequence at s (valid UTF-8, as jansson guarantees);
 * returns its length and the code point in *cp. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t n;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0) {
        *cp = s[0] & 0x1f;
        n = 2;
    } else if ((s[0] & 0xf0) == 0xe0) {
        *cp = s[0] & 0x0f;
        n = 3;
    } else {
        *cp = s[0] & 0x07;
        n = 4;
    }
    if (n > len) { /* not valid UTF-8 after all: take the byte alone */
        *cp = s[0];
        return 1;
    }
    for (size_t i = 1; i < n; i++)
        *cp = (*cp << 6) | (s[i] & 0x3f);
    return n;
}

/* Printable in YAML and not a line break of YAML 1.1 (NEL, LS, PS), nor a
 * byte-order mark. Tab and newline are handled by the callers. */
static bool cp_plain_ok(uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7f)
        return false;
    if (cp >= 0x80 && cp < 0xa0)
        return false;
    if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
        return false;
    return true;
}

/* Strings a YAML 1.1 reader (kubectl's, PyYAML) would take for a boolean. */
static const char *const yaml11_bools[] = {
    "y",  "Y",  "yes", "Yes", "YES", "n",   "N",   "no", "No",
    "NO", "on", "On",  "ON",  "off", "Off", "OFF", NULL,
};

/* Looks like a number or a date to some YAML reader: 1.1 sexagesimals
 * (1:20), underscores (1_000), binary/octal/hex prefixes (0b1, 0o7, 0x1F),
 * timestamps (2001-12-14...), or anything made of digits and number
 * punctuation ("10.0.0.1" included: quoting it costs nothing). */
static bool looks_numeric(const char *s, size_t len)
{
    size_t i = 0;
    bool digit = false;

    if (len >= 10 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
        s[4] == '-' && is_digit(s[5]))
        return true; /* a YAML 1.1 timestamp, as kubectl quotes them */
    if (s[i] == '-' || s[i] == '+')
        i++;
    if (i + 1 < len && s[i] == '0' && strchr("xXoObB", s[i + 1]))
        return true;
    if (i >= len || !(is_digit(s[i]) || s[i] == '.'))
        return false;
    for (; i < len; i++) {
        if (is_digit(s[i]))
            digit = true;
        else if (!strchr("_:.eE+-", s[i]))
            return false;
    }
    return digit;
}

/* A plain (unquoted) scalar reads back as exactly this string. */
static bool can_be_plain(const char *s, size_t len)
{
    json_t *v = NULL;

    if (len == 0 || memchr(s, '\0', len))
        return false;
    if (strchr("-?:,[]{}#&*!|>'\"%@` \t", s[0]))
        return false;
    if (s[len - 1] == ' ' || s[len - 1] == ':')
        return false;
    if (kf_str_has_prefix(s, "...") || strcmp(s, "<<") == 0 || strcmp(s, "=") == 0)
        return false;
    if (str_in(s, yaml11_bools) || looks_numeric(s, len))
        return false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next((const unsigned char *)s + i, len - i, &cp);

        if (!cp_plain_ok(cp))
            return false; /* also rejects \t and \n */
        if (cp == ':' && i + 1 < len && s[i + 1] == ' ')
            return false;
        if (cp == '#' && i > 0 && s[i - 1] == ' ')
            return false;
        i += n;
    }
    if (resolve_scalar(s, RESOLVE_ANY, &v, NULL) < 0)
        return false; /* .inf, huge integers */
    if (!json_is_string(v)) {
        json_decref(v);
        return false;
    }
    json_decref(v);
    return true;
}

/* Multi-line text that a literal block (`|`) keeps byte for byte: printable,
 * no carriage returns, a first line that sets the indentation, and no line
 * with trailing blanks (invisible, and chomping rules make them fragile). */
static bool can_be_literal(const char *s, size_t len)
{
    size_t line_start = 0;

    if (len == 0 || !memchr(s, '\n', len) || memchr(s, '\0', len))
        return false;
    if (s[0] == ' ' || s[0] == '\t' || s[0] == '\n')
        return false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next((const unsigned char *)s + i, len - i, &cp);

        if (cp == '\n') {
            if (i > line_start && (s[i - 1] == ' ' || s[i - 1] == '\t'))
                return false;
            line_start = i + 1;
        } else if (cp != '\t' && !cp_plain_ok(cp)) {
            return false;
        }
        i += n;
    }
    if (len > line_start && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        return false;
    return true;
}

static void add_indent(struct kf_strbuf *out, int indent)
{
    for (int i = 0; i < indent; i++)
        kf_strbuf_addch(out, ' ');
}

static void add_double_quoted(struct kf_strbuf *out, const char *s, size_t len)
{
    kf_strbuf_addch(out, '"');
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next((const unsigned char *)s + i, len - i, &cp);

        switch (cp) {
        case '"':
            kf_strbuf_addstr(out, "\\\"");
            break;
        case '\\':
            kf_strbuf_addstr(out, "\\\\");
            break;
        case '\n':
            kf_strbuf_addstr(out, "\\n");
            break;
        case '\t':
            kf_strbuf_addstr(out, "\\t");
            break;
        case '\r':
            kf_strbuf_addstr(out, "\\r");
            break;
        case 0:
            kf_strbuf_addstr(out, "\\0");
            break;
        default:
            if (cp_plain_ok(cp))
                kf_strbuf_add(out, s + i, n);
            else if (cp < 0x100)
                kf_strbuf_addf(out, "\\x%02X", (unsigned)cp);
            else
                kf_strbuf_addf(out, "\\u%04X", (unsigned)cp);
            break;
        }
        i += n;
    }
    kf_strbuf_addch(out, '"');
}

/* A string as a key or on one line. */
static void add_inline_string(struct kf_strbuf *out, const char *s, size_t len)
{
    if (can_be_plain(s, len))
        kf_strbuf_add(out, s, len);
    else
        add_double_quoted(out, s, len);
}

/* The literal block header and its lines, each at `indent`. */
static void add_literal(struct kf_strbuf *out, const char *s, size_t len, int indent)
{
    size_t trailing = 0, body;

    while (trailing < len && s[len - 1 - trailing] == '\n')
        trailing++;
    body = len - trailing;
    kf_strbuf_addstr(out, trailing == 0 ? "|-\n" : trailing == 1 ? "|\n" : "|+\n");
    for (size_t i = 0; i < body;) {
        const char *nl = memchr(s + i, '\n', body - i);
        size_t end = nl ? (size_t)(nl - s) : body;

        if (end > i) {
            add_indent(out, indent);
            kf_strbuf_add(out, s + i, end - i);
        }
        kf_strbuf_addch(out, '\n');
        i = end + 1;
    }
    for (size_t i = 1; i < trailing; i++)
        kf_strbuf_addch(out, '\n');
}

static void add_number(struct kf_strbuf *out, const json_t *v)
{
    char buf[40];
    double d;

    if (json_is_integer(v)) {
        kf_strbuf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    }
    /* The shortest text that reads back as the same double, and that reads
     * as a float, not an integer. */
    d = json_real_value(v);
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    kf_strbuf_addstr(out, buf);
    if (!strpbrk(buf, ".e"))
        kf_strbuf_addstr(out, ".0");
}

static int dump_mapping(struct kf_strbuf *out, const json_t *obj, int indent, bool inline_first,
                        int depth);
static int dump_sequence(struct kf_strbuf *out, const json_t *arr, int indent, bool inline_first,
                         int depth);

/* Writes a value that follows "key:", "- " or "? k\n:" (the caller wrote
 * that); `indent` is the indentation of the key or dash. A nested sequence
 * after a key sits at the key's indentation, as kubectl writes it, unless
 * `seq_nested` asks for one more level. */
static int dump_value_after(struct kf_strbuf *out, const json_t *v, int indent, bool after_dash,
                            bool seq_nested, int depth)
{
    if (depth > KF_JSON_MAX_DEPTH)
        return -EINVAL;
    if (json_is_object(v) && json_object_size(v) > 0) {
        if (after_dash)
            return dump_mapping(out, v, indent + 2, true, depth + 1);
        kf_strbuf_addch(out, '\n');
        return dump_mapping(out, v, indent + 2, false, depth + 1);
    }
    if (json_is_array(v) && json_array_size(v) > 0) {
        if (after_dash)
            return dump_sequence(out, v, indent + 2, true, depth + 1);
        kf_strbuf_addch(out, '\n');
        return dump_sequence(out, v, seq_nested ? indent + 2 : indent, false, depth + 1);
    }
    if (!after_dash)
        kf_strbuf_addch(out, ' ');
    if (json_is_object(v)) {
        kf_strbuf_addstr(out, "{}");
    } else if (json_is_array(v)) {
        kf_strbuf_addstr(out, "[]");
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);

        if (can_be_literal(s, len)) {
            add_literal(out, s, len, indent + 2);
            return 0;
        }
        add_inline_string(out, s, len);
    } else if (json_is_number(v)) {
        add_number(out, v);
    } else if (json_is_true(v)) {
        kf_strbuf_addstr(out, "true");
    } else if (json_is_false(v)) {
        kf_strbuf_addstr(out, "false");
    } else {
        kf_strbuf_addstr(out, "null");
    }
    kf_strbuf_addch(out, '\n');
    return 0;
}

static int dump_mapping(struct kf_strbuf *out, const json_t *obj, int indent, bool inline_first,
                        int depth)
{
    const char *key;
    size_t key_len;
    json_t *v;
    bool first = true;
    struct kf_strbuf k = KF_STRBUF_INIT;
    int r = 0;

    json_object_keylen_foreach((json_t *)obj, key, key_len, v)
    {
        if (!(first && inline_first))
            add_indent(out, indent);
        first = false;
        kf_strbuf_reset(&k);
        add_inline_string(&k, key, key_len);
        if (k.len <= YAML_MAX_SIMPLE_KEY) {
            kf_strbuf_add(out, k.buf, k.len);
            kf_strbuf_addch(out, ':');
            r = dump_value_after(out, v, indent, false, false, depth);
        } else {
            /* Explicit key: "? key" then ":" and the value. */
            kf_strbuf_addstr(out, "? ");
            kf_strbuf_add(out, k.buf, k.len);
            kf_strbuf_addch(out, '\n');
            add_indent(out, indent);
            kf_strbuf_addch(out, ':');
            r = dump_value_after(out, v, indent, false, true, depth);
        }
        if (r < 0)
            break;
    }
    kf_strbuf_release(&k);
    return r;
}

static int dump_sequence(struct kf_strbuf *out, const json_t *arr, int indent, bool inline_first,
                         int depth)
{
    size_t i;
    json_t *v;
    int r;

    json_array_foreach(arr, i, v)
    {
        if (!(i == 0 && inline_first))
            add_indent(out, indent);
        kf_strbuf_addstr(out, "- ");
        r = dump_value_after(out, v, indent, true, false, depth);
        if (r < 0)
            return r;
    }
    return 0;
}

int kf_yaml_dump(const json_t *v, struct kf_strbuf *out)
{
    size_t start = out->len;
    int r;

    if (json_is_object(v) && json_object_size(v) > 0)
        r = dump_mapping(out, v, 0, false, 1);
    else if (json_is_array(v) && json_array_size(v) > 0)
        r = dump_sequence(out, v, 0, false, 1);
    else
        /* A lone scalar: written as after a dash (no leading blank), with a
         * literal block's lines indented by 2. */
        r = dump_value_after(out, v, 0, true, false, 1);
    if (r == 0 && out->overflowed)
        r = -E2BIG;
    if (r < 0)
        kf_strbuf_setlen(out, KF_MIN(start, out->len));
    return r;
}
