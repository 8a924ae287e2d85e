/* fleet-selector.c: Kubernetes label and field selectors (contract in
 * kfleet/selector.h).
 *
 * Label selectors follow the grammar of k8s.io/apimachinery/pkg/labels:
 *
 *   selector    := requirement ( "," requirement )*
 *   requirement := [ "!" ] KEY
 *                | KEY ( "=" | "==" | "!=" ) [ VALUE ]
 *                | KEY ( "in" | "notin" ) "(" [ VALUE ( "," VALUE )* ] ")"
 *
 * Whitespace between tokens is ignored; identifiers run until whitespace or
 * one of , = ! ( ) < >. "key!=v" and "key notin (v)" also match objects
 * without the key, as in Kubernetes. Keys must be qualified names and
 * values valid label values.
 *
 * Field selectors are "path=value", "path==value" or "path!=value" terms
 * separated by ","; "\," "\=" and "\\" escape those characters in values.
 * One extension of kfleet's, "metadata.name^=PREFIX", matches the names
 * that start with PREFIX (the dashboard's search box); a list reads only
 * that range of keys. Kubernetes has no such operator, so no selector that
 * kubectl sends means something else here ("^" is not valid in a path).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/obj.h"
#include "kfleet/selector.h"
#include "kfleet/strbuf.h"

enum sel_op {
    OP_EQ = 1,
    OP_NE,
    OP_IN,
    OP_NOTIN,
    OP_EXISTS,
    OP_NOT_EXISTS,
    OP_PREFIX, /* fields only, metadata.name only */
};

struct sel_term {
    char *key;
    enum sel_op op;
    char **values;
    size_t n, alloc;
};

struct kf_selector {
    bool fields; /* a field selector: keys are paths into the object */
    struct sel_term *terms;
    size_t n, alloc;
};

static struct kf_selector *selector_new(bool fields)
{
    struct kf_selector *s = kf_xcalloc(1, sizeof(*s));

    s->fields = fields;
    return s;
}

void kf_selector_free(struct kf_selector *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->n; i++) {
        for (size_t j = 0; j < sel->terms[i].n; j++)
            free(sel->terms[i].values[j]);
        free(sel->terms[i].values);
        free(sel->terms[i].key);
    }
    free(sel->terms);
    free(sel);
}

static struct sel_term *add_term(struct kf_selector *s, const char *key, size_t klen,
                                 enum sel_op op)
{
    struct sel_term *t;

    KF_GROW(s->terms, s->alloc, s->n);
    t = &s->terms[s->n++];
    memset(t, 0, sizeof(*t));
    t->key = kf_xstrndup(key, klen);
    t->op = op;
    return t;
}

/* Values form a set: a repeat is dropped. */
static void add_value(struct sel_term *t, const char *v, size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->values[i]) == len && memcmp(t->values[i], v, len) == 0)
            return;
    KF_GROW(t->values, t->alloc, t->n);
    t->values[t->n++] = kf_xstrndup(v, len);
}

bool kf_selector_is_empty(const struct kf_selector *sel)
{
    return !sel || sel->n == 0;
}

/* --- label selector lexer ------------------------------------------------------- */

enum tok_type {
    TOK_END = 0,
    TOK_IDENT,
    TOK_COMMA,
    TOK_EQ,  /* = */
    TOK_DEQ, /* == */
    TOK_NEQ, /* != */
    TOK_NOT, /* ! */
    TOK_LPAR,
    TOK_RPAR,
    TOK_GT,
    TOK_LT,
};

struct lexer {
    const char *s;
    size_t pos;
    /* the token just read */
    enum tok_type type;
    const char *text;
    size_t len;
    size_t start;
};

static bool is_special(char c)
{
    return c == ',' || c == '=' || c == '!' || c == '(' || c == ')' || c == '<' || c == '>';
}

static void lex(struct lexer *l)
{
    const char *s = l->s;

    while (s[l->pos] && isspace((unsigned char)s[l->pos]))
        l->pos++;
    l->start = l->pos;
    l->text = s + l->pos;
    l->len = 1;
    switch (s[l->pos]) {
    case '\0':
        l->type = TOK_END;
        l->len = 0;
        return;
    case ',':
        l->type = TOK_COMMA;
        break;
    case '(':
        l->type = TOK_LPAR;
        break;
    case ')':
        l->type = TOK_RPAR;
        break;
    case '<':
        l->type = TOK_LT;
        break;
    case '>':
        l->type = TOK_GT;
        break;
    case '=':
        l->type = TOK_EQ;
        if (s[l->pos + 1] == '=') {
            l->type = TOK_DEQ;
            l->len = 2;
        }
        break;
    case '!':
        l->type = TOK_NOT;
        if (s[l->pos + 1] == '=') {
            l->type = TOK_NEQ;
            l->len = 2;
        }
        break;
    default:
        l->type = TOK_IDENT;
        l->len = 0;
        while (s[l->pos + l->len] && !isspace((unsigned char)s[l->pos + l->len]) &&
               !is_special(s[l->pos + l->len]))
            l->len++;
        break;
    }
    l->pos += l->len;
}

static bool ident_is(const struct lexer *l, const char *word)
{
    return l->type == TOK_IDENT && l->len == strlen(word) && memcmp(l->text, word, l->len) == 0;
}

static const char *tok_desc(const struct lexer *l, char *buf, size_t size)
{
    if (l->type == TOK_END)
        return "the end";
    snprintf(buf, size, "\"%.*s\"", (int)KF_MIN(l->len, (size_t)64), l->text);
    return buf;
}

static int sel_error(struct kf_strbuf *err, const char *s, size_t pos, const char *fmt, ...)
    KF_PRINTF(4, 5);
static int sel_error(struct kf_strbuf *err, const char *s, size_t pos, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        kf_strbuf_reset(err);
        kf_strbuf_addf(err, "invalid selector \"%.200s\"%s at position %zu: ", s,
                       strlen(s) > 200 ? "..." : "", pos + 1);
        va_start(ap, fmt);
        kf_strbuf_vaddf(err, fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

static int check_label_key(const char *s, const char *key, size_t pos, struct kf_strbuf *err)
{
    if (!kf_label_key_valid(key))
        return sel_error(err, s, pos,
                         "invalid label key \"%.64s\": a key is an optional DNS subdomain prefix "
                         "and '/', then at most 63 letters, digits, '-', '_' or '.', starting "
                         "and ending with a letter or digit",
                         key);
    return 0;
}

static int check_label_value(const char *s, const char *v, size_t pos, struct kf_strbuf *err)
{
    if (!kf_label_value_valid(v))
        return sel_error(err, s, pos,
                         "invalid label value \"%.64s\": a value is empty or at most 63 "
                         "letters, digits, '-', '_' or '.', starting and ending with a letter "
                         "or digit",
                         v);
    return 0;
}

static int parse_values(struct lexer *l, const char *s, struct sel_term *t, struct kf_strbuf *err)
{
    char buf[80];

    lex(l);
    if (l->type != TOK_LPAR)
        return sel_error(err, s, l->start,
                         "expected \"(\" after \"%s\", found %s: write "
                         "\"%s %s (a,b)\"",
                         t->op == OP_IN ? "in" : "notin", tok_desc(l, buf, sizeof(buf)), t->key,
                         t->op == OP_IN ? "in" : "notin");
    for (;;) {
        lex(l);
        if (l->type == TOK_IDENT) {
            char *v = kf_xstrndup(l->text, l->len);

            if (t->n >= KF_SELECTOR_MAX_TERMS) {
                free(v);
                return sel_error(err, s, l->start, "more than %d values in one set",
                                 KF_SELECTOR_MAX_TERMS);
            }
            if (check_label_value(s, v, l->start, err) < 0) {
                free(v);
                return -EBADMSG;
            }
            add_value(t, l->text, l->len);
            free(v);
            lex(l);
        } else if (l->type == TOK_COMMA || l->type == TOK_RPAR) {
            /* an empty value: "(a,)" holds "a" and "" */
            if (l->type == TOK_COMMA || t->n > 0)
                add_value(t, "", 0);
        } else {
            return sel_error(err, s, l->start, "expected a value or \")\", found %s",
                             tok_desc(l, buf, sizeof(buf)));
        }
        if (l->type == TOK_RPAR)
            break;
        if (l->type != TOK_COMMA)
            return sel_error(err, s, l->start, "expected \",\" or \")\" in the value set, found %s",
                             tok_desc(l, buf, sizeof(buf)));
    }
    if (t->n == 0)
        return sel_error(err, s, l->start,
                         "the value set of \"%s\" is empty: \"in\" and "
                         "\"notin\" need at least one value",
                         t->key);
    return 0;
}

/* One term of a label selector, from its key to the token after it: the
 * lexer is left on the "," or the end that follows. */
static int parse_label_term(struct lexer *l, struct kf_selector *sel, struct kf_strbuf *err)
{
    char buf[80];
    int r;
    struct sel_term *t;
    const char *key;
    size_t klen, kpos;
    bool negated = false;

    if (l->type == TOK_NOT) {
        negated = true;
        lex(l);
    }
    if (l->type != TOK_IDENT)
        return sel_error(err, l->s, l->start, "expected a label key, found %s",
                         tok_desc(l, buf, sizeof(buf)));
    key = l->text;
    klen = l->len;
    kpos = l->start;
    lex(l);
    if (negated || l->type == TOK_COMMA || l->type == TOK_END) {
        t = add_term(sel, key, klen, negated ? OP_NOT_EXISTS : OP_EXISTS);
        if ((r = check_label_key(l->s, t->key, kpos, err)) < 0)
            return r;
        if (negated && l->type != TOK_COMMA && l->type != TOK_END) {
            r = sel_error(err, l->s, l->start,
                          "\"!%s\" means the key is absent and takes no operator; found %s", t->key,
                          tok_desc(l, buf, sizeof(buf)));
            return r;
        }
    } else if (l->type == TOK_EQ || l->type == TOK_DEQ || l->type == TOK_NEQ) {
        t = add_term(sel, key, klen, l->type == TOK_NEQ ? OP_NE : OP_EQ);
        if ((r = check_label_key(l->s, t->key, kpos, err)) < 0)
            return r;
        lex(l);
        if (l->type == TOK_IDENT) {
            add_value(t, l->text, l->len);
            if ((r = check_label_value(l->s, t->values[0], l->start, err)) < 0)
                return r;
            lex(l);
        } else if (l->type == TOK_COMMA || l->type == TOK_END) {
            add_value(t, "", 0);
        } else {
            return sel_error(err, l->s, l->start, "expected a value after the operator, found %s",
                             tok_desc(l, buf, sizeof(buf)));
        }
    } else if (ident_is(l, "in") || ident_is(l, "notin")) {
        t = add_term(sel, key, klen, ident_is(l, "in") ? OP_IN : OP_NOTIN);
        if ((r = check_label_key(l->s, t->key, kpos, err)) < 0)
            return r;
        if ((r = parse_values(l, l->s, t, err)) < 0)
            return r;
        lex(l);
    } else if (l->type == TOK_GT || l->type == TOK_LT) {
        r = sel_error(err, l->s, l->start,
                      "the \"%c\" operator is not supported; use =, ==, !=, in, notin, "
                      "\"key\" (exists) or \"!key\" (absent)",
                      l->text[0]);
        return r;
    } else {
        return sel_error(err, l->s, l->start,
                         "expected =, ==, !=, in, notin, \",\" or the end after key \"%.*s\", "
                         "found %s",
                         (int)KF_MIN(klen, (size_t)64), key, tok_desc(l, buf, sizeof(buf)));
    }
    return 0;
}

int kf_selector_parse_labels(const char *s, struct kf_selector **ret, struct kf_strbuf *err)
{
    struct kf_selector *sel;
    struct lexer l = { .s = s ? s : "" };
    char buf[80];
    int r = 0;

    if (s && strlen(s) > KF_SELECTOR_MAX_BYTES)
        return kf_err(err, -EBADMSG, "the selector is longer than %d bytes", KF_SELECTOR_MAX_BYTES);
    sel = selector_new(false);
    lex(&l);
    while (l.type != TOK_END) {
        if (sel->n >= KF_SELECTOR_MAX_TERMS) {
            r = sel_error(err, l.s, l.start, "more than %d terms", KF_SELECTOR_MAX_TERMS);
            goto free_sel;
        }
        if ((r = parse_label_term(&l, sel, err)) < 0)
            goto free_sel;
        if (l.type == TOK_END)
            break;
        if (l.type != TOK_COMMA) {
            r = sel_error(err, l.s, l.start,
                          "expected \",\" between terms, found %s (values cannot contain "
                          "spaces)",
                          tok_desc(&l, buf, sizeof(buf)));
            goto free_sel;
        }
        lex(&l);
        if (l.type == TOK_END) {
            r = sel_error(err, l.s, l.start, "expected a term after the last \",\"");
            goto free_sel;
        }
    }
    *ret = sel;
    return 0;
free_sel:
    kf_selector_free(sel);
    return r;
}

/* --- field selectors ---------------------------------------------------------------- */

static bool field_path_valid(const char *p, size_t len)
{
    bool seg_empty = true;

    if (len == 0 || len > 256)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c == '.') {
            if (seg_empty)
                return false;
            seg_empty = true;
        } else if (isalnum(c) || c == '_' || c == '-' || c == '/') {
            seg_empty = false;
        } else {
            return false;
        }
    }
    return !seg_empty;
}

int kf_selector_parse_fields(const char *s, struct kf_selector **ret, struct kf_strbuf *err)
{
    struct kf_selector *sel;
    const char *p = s ? s : "";
    int r;

    if (strlen(p) > KF_SELECTOR_MAX_BYTES)
        return kf_err(err, -EBADMSG, "the field selector is longer than %d bytes",
                      KF_SELECTOR_MAX_BYTES);
    sel = selector_new(true);
    while (*p) {
        struct kf_strbuf value = KF_STRBUF_INIT;
        const char *term = p, *op = NULL, *q;
        enum sel_op type = OP_EQ;
        size_t oplen = 0, klen;
        struct sel_term *t;

        if (sel->n >= KF_SELECTOR_MAX_TERMS) {
            r = sel_error(err, s, (size_t)(p - s), "more than %d terms", KF_SELECTOR_MAX_TERMS);
            goto free_sel;
        }
        /* the operator: the first unescaped "!=", "==" or "=" */
        for (q = p; *q && *q != ','; q++) {
            if (*q == '\\' && q[1]) {
                q++;
                continue;
            }
            if (q[0] == '!' && q[1] == '=') {
                op = q, oplen = 2, type = OP_NE;
                break;
            }
            if (q[0] == '^' && q[1] == '=') {
                op = q, oplen = 2, type = OP_PREFIX;
                break;
            }
            if (q[0] == '=') {
                op = q, oplen = q[1] == '=' ? 2 : 1, type = OP_EQ;
                break;
            }
        }
        if (!op) {
            r = sel_error(err, s, (size_t)(term - s),
                          "expected \"path=value\", \"path==value\" or \"path!=value\"; field "
                          "selectors have no in, notin or exists");
            goto free_sel;
        }
        klen = (size_t)(op - term);
        while (klen && isspace((unsigned char)term[klen - 1]))
            klen--;
        while (klen && isspace((unsigned char)*term))
            term++, klen--;
        if (!field_path_valid(term, klen)) {
            r = sel_error(err, s, (size_t)(term - s),
                          "invalid field path \"%.*s\": use a dotted path such as "
                          "\"metadata.name\" or \"status.phase\"",
                          (int)KF_MIN(klen, (size_t)64), term);
            goto free_sel;
        }
        if (type == OP_PREFIX &&
            (klen != strlen("metadata.name") || strncmp(term, "metadata.name", klen) != 0)) {
            r = sel_error(err, s, (size_t)(term - s),
                          "\"^=\" (starts with) applies to metadata.name only");
            goto free_sel;
        }
        t = add_term(sel, term, klen, type);
        for (q = op + oplen; *q && *q != ','; q++) {
            if (*q == '\\') {
                if (q[1] != '\\' && q[1] != ',' && q[1] != '=') {
                    kf_strbuf_release(&value);
                    r = sel_error(err, s, (size_t)(q - s),
                                  "invalid escape \"\\%c\": only \\\\, \\, and \\= are allowed",
                                  q[1] ? q[1] : ' ');
                    goto free_sel;
                }
                q++;
            } else if (*q == '=' || ((*q == '!' || *q == '^') && q[1] == '=')) {
                kf_strbuf_release(&value);
                r = sel_error(err, s, (size_t)(q - s),
                              "a second operator in one term: escape \"=\" in values as \"\\=\"");
                goto free_sel;
            }
            kf_strbuf_addch(&value, *q);
        }
        add_value(t, value.buf, value.len);
        kf_strbuf_release(&value);
        p = q;
        if (*p == ',') {
            p++;
            if (!*p) {
                r = sel_error(err, s, (size_t)(p - s), "expected a term after the last \",\"");
                goto free_sel;
            }
        }
    }
    *ret = sel;
    return 0;
free_sel:
    kf_selector_free(sel);
    return r;
}

/* --- LabelSelector JSON ------------------------------------------------------------- */

/* matchLabels: a term "key = value" for each entry. */
static int add_match_labels(struct kf_selector *sel, json_t *ml, struct kf_strbuf *err)
{
    const char *key;
    json_t *v;

    json_object_foreach(ml, key, v)
    {
        struct sel_term *t;

        if (!kf_label_key_valid(key)) {
            kf_err(err, -EINVAL, "matchLabels: invalid label key \"%.64s\"", key);
            return -EINVAL;
        }
        if (!json_is_string(v) || !kf_label_value_valid(json_string_value(v))) {
            kf_err(err, -EINVAL, "matchLabels[%.64s]: must be a valid label value", key);
            return -EINVAL;
        }
        t = add_term(sel, key, strlen(key), OP_EQ);
        add_value(t, json_string_value(v), strlen(json_string_value(v)));
    }
    return 0;
}

/* matchExpressions[i]: a term of its operator over its values. */
static int add_match_expression(struct kf_selector *sel, size_t i, json_t *e, struct kf_strbuf *err)
{
    const char *key, *k = kf_json_str(e, "key", NULL), *op = kf_json_str(e, "operator", NULL);
    json_t *values = json_object_get(e, "values"), *x;
    struct sel_term *t;
    enum sel_op type;
    json_t *v;
    size_t j;

    if (!json_is_object(e) || !k || !op) {
        kf_err(err, -EINVAL, "matchExpressions[%zu]: needs a key and an operator", i);
        return -EINVAL;
    }
    json_object_foreach(e, key, v)
    {
        if (strcmp(key, "key") && strcmp(key, "operator") && strcmp(key, "values")) {
            kf_err(err, -EINVAL, "matchExpressions[%zu]: unknown field \"%.64s\"", i, key);
            return -EINVAL;
        }
    }
    if (!kf_label_key_valid(k)) {
        kf_err(err, -EINVAL, "matchExpressions[%zu].key: invalid label key \"%.64s\"", i, k);
        return -EINVAL;
    }
    if (!strcmp(op, "In"))
        type = OP_IN;
    else if (!strcmp(op, "NotIn"))
        type = OP_NOTIN;
    else if (!strcmp(op, "Exists"))
        type = OP_EXISTS;
    else if (!strcmp(op, "DoesNotExist"))
        type = OP_NOT_EXISTS;
    else {
        kf_err(err, -EINVAL,
               "matchExpressions[%zu].operator: \"%.32s\" is not one of In, NotIn, Exists, "
               "DoesNotExist",
               i, op);
        return -EINVAL;
    }
    if (values && !json_is_null(values) && !json_is_array(values)) {
        kf_err(err, -EINVAL, "matchExpressions[%zu].values: must be an array of strings", i);
        return -EINVAL;
    }
    if ((type == OP_IN || type == OP_NOTIN) && json_array_size(values) == 0) {
        kf_err(err, -EINVAL, "matchExpressions[%zu].values: %s needs at least one value", i, op);
        return -EINVAL;
    }
    if ((type == OP_EXISTS || type == OP_NOT_EXISTS) && json_array_size(values) > 0) {
        kf_err(err, -EINVAL, "matchExpressions[%zu].values: must be empty for %s", i, op);
        return -EINVAL;
    }
    if (json_array_size(values) > KF_SELECTOR_MAX_TERMS) {
        kf_err(err, -EINVAL, "matchExpressions[%zu].values: at most %d values", i,
               KF_SELECTOR_MAX_TERMS);
        return -EINVAL;
    }
    t = add_term(sel, k, strlen(k), type);
    json_array_foreach(values, j, x)
    {
        if (!json_is_string(x) || !kf_label_value_valid(json_string_value(x))) {
            kf_err(err, -EINVAL,
                   "matchExpressions[%zu].values[%zu]: must be a valid label "
                   "value",
                   i, j);
            return -EINVAL;
        }
        add_value(t, json_string_value(x), strlen(json_string_value(x)));
    }
    return 0;
}

int kf_selector_from_json(const json_t *ls, struct kf_selector **ret, struct kf_strbuf *err)
{
    struct kf_selector *sel;
    json_t *ml, *me, *v, *e;
    const char *key;
    size_t i;

    if (!json_is_object(ls))
        return kf_err(err, -EINVAL,
                      "a label selector must be an object with matchLabels "
                      "and/or matchExpressions");
    json_object_foreach((json_t *)ls, key, v)
    {
        if (strcmp(key, "matchLabels") && strcmp(key, "matchExpressions"))
            return kf_err(err, -EINVAL, "unknown field \"%.64s\" in a label selector", key);
    }
    ml = json_object_get(ls, "matchLabels");
    me = json_object_get(ls, "matchExpressions");
    if (ml && !json_is_null(ml) && !json_is_object(ml))
        return kf_err(err, -EINVAL, "matchLabels must be an object of strings");
    if (me && !json_is_null(me) && !json_is_array(me))
        return kf_err(err, -EINVAL, "matchExpressions must be an array");
    if (json_object_size(ml) + json_array_size(me) > KF_SELECTOR_MAX_TERMS)
        return kf_err(err, -EINVAL, "a label selector may have at most %d terms",
                      KF_SELECTOR_MAX_TERMS);
    sel = selector_new(false);
    if (json_is_object(ml) && add_match_labels(sel, ml, err) < 0)
        goto free_sel;
    json_array_foreach(me, i, e)
    {
        if (add_match_expression(sel, i, e, err) < 0)
            goto free_sel;
    }
    *ret = sel;
    return 0;
free_sel:
    kf_selector_free(sel);
    return -EINVAL;
}

/* --- matching ---------------------------------------------------------------------- */

static bool term_has(const struct sel_term *t, const char *v)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->values[i], v) == 0)
            return true;
    return false;
}

/* value: the object's value for the term's key, or NULL when absent. */
static bool term_matches(const struct sel_term *t, const char *value)
{
    switch (t->op) {
    case OP_EQ:
    case OP_IN:
        return value && term_has(t, value);
    case OP_NE:
    case OP_NOTIN:
        return !value || !term_has(t, value);
    case OP_EXISTS:
        return value != NULL;
    case OP_NOT_EXISTS:
        return value == NULL;
    case OP_PREFIX: /* field selectors only: never a label term */
        return value && !strncmp(value, t->values[0], strlen(t->values[0]));
    }
    return false;
}

bool kf_selector_matches_labels(const struct kf_selector *sel, const json_t *labels)
{
    if (!sel)
        return true;
    for (size_t i = 0; i < sel->n; i++) {
        json_t *v = json_is_object(labels) ? json_object_get(labels, sel->terms[i].key) : NULL;

        if (!term_matches(&sel->terms[i], json_is_string(v) ? json_string_value(v) : NULL))
            return false;
    }
    return true;
}

bool kf_selector_matches(const struct kf_selector *sel, const json_t *obj)
{
    if (!sel)
        return true;
    if (!sel->fields)
        return kf_selector_matches_labels(sel, kf_json_path(obj, "metadata.labels"));
    for (size_t i = 0; i < sel->n; i++) {
        json_t *v = kf_json_path(obj, sel->terms[i].key);
        char buf[64];
        const char *s;

        /* Compared as text: a missing field or null reads as "". */
        if (json_is_string(v))
            s = json_string_value(v);
        else if (json_is_integer(v))
            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v)), s = buf;
        else if (json_is_real(v))
            snprintf(buf, sizeof(buf), "%g", json_real_value(v)), s = buf;
        else if (json_is_boolean(v))
            s = json_is_true(v) ? "true" : "false";
        else if (!v || json_is_null(v))
            s = "";
        else
            s = NULL; /* objects and arrays equal nothing */
        if (sel->terms[i].op == OP_PREFIX) {
            const char *want = sel->terms[i].values[0];

            if (!s || strncmp(s, want, strlen(want)) != 0)
                return false;
        } else if (sel->terms[i].op == OP_EQ ? !(s && term_has(&sel->terms[i], s))
                                             : (s && term_has(&sel->terms[i], s))) {
            return false;
        }
    }
    return true;
}

bool kf_selector_is_fields(const struct kf_selector *sel)
{
    return sel && sel->fields;
}

const char *kf_selector_key(const struct kf_selector *sel, size_t i)
{
    return sel && i < sel->n ? sel->terms[i].key : NULL;
}

const char *kf_selector_equals(const struct kf_selector *sel, size_t i)
{
    if (!sel || i >= sel->n)
        return NULL;
    if ((sel->terms[i].op == OP_EQ || sel->terms[i].op == OP_IN) && sel->terms[i].n == 1)
        return sel->terms[i].values[0];
    return NULL;
}

const char *kf_selector_name_equals(const struct kf_selector *sel)
{
    if (!sel || !sel->fields)
        return NULL;
    for (size_t i = 0; i < sel->n; i++)
        if (sel->terms[i].op == OP_EQ && !strcmp(sel->terms[i].key, "metadata.name"))
            return sel->terms[i].values[0];
    return NULL;
}

const char *kf_selector_name_prefix(const struct kf_selector *sel)
{
    if (!sel || !sel->fields)
        return NULL;
    for (size_t i = 0; i < sel->n; i++)
        if (sel->terms[i].op == OP_PREFIX)
            return sel->terms[i].values[0];
    return NULL;
}

/* --- formatting --------------------------------------------------------------------- */

static int cmp_term(const void *a, const void *b)
{
    const struct sel_term *x = *(const struct sel_term *const *)a;
    const struct sel_term *y = *(const struct sel_term *const *)b;
    int c = strcmp(x->key, y->key);

    return c ? c : (int)x->op - (int)y->op;
}

static void add_escaped(struct kf_strbuf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == ',' || *v == '=')
            kf_strbuf_addch(out, '\\');
        kf_strbuf_addch(out, *v);
    }
}

void kf_selector_format(const struct kf_selector *sel, struct kf_strbuf *out)
{
    const struct sel_term **order;

    if (!sel || sel->n == 0)
        return;
    order = kf_xcalloc(sel->n, sizeof(*order));
    for (size_t i = 0; i < sel->n; i++)
        order[i] = &sel->terms[i];
    if (!sel->fields)
        qsort(order, sel->n, sizeof(*order), cmp_term);
    for (size_t i = 0; i < sel->n; i++) {
        const struct sel_term *t = order[i];

        if (i)
            kf_strbuf_addch(out, ',');
        if (sel->fields) {
            kf_strbuf_addf(out, "%s%s", t->key,
                           t->op == OP_NE       ? "!="
                           : t->op == OP_PREFIX ? "^="
                                                : "=");
            add_escaped(out, t->values[0]);
            continue;
        }
        switch (t->op) {
        case OP_EQ:
            kf_strbuf_addf(out, "%s=%s", t->key, t->values[0]);
            break;
        case OP_NE:
            kf_strbuf_addf(out, "%s!=%s", t->key, t->values[0]);
            break;
        case OP_EXISTS:
            kf_strbuf_addstr(out, t->key);
            break;
        case OP_NOT_EXISTS:
            kf_strbuf_addf(out, "!%s", t->key);
            break;
        case OP_PREFIX: /* field selectors only: never a label term */
            kf_strbuf_addf(out, "%s^=%s", t->key, t->values[0]);
            break;
        case OP_IN:
        case OP_NOTIN: {
            char **vals = kf_xmemdup(t->values, t->n * sizeof(*vals));

            qsort(vals, t->n, sizeof(*vals), kf_strp_cmp);
            kf_strbuf_addf(out, "%s %s (", t->key, t->op == OP_IN ? "in" : "notin");
            for (size_t j = 0; j < t->n; j++)
                kf_strbuf_addf(out, "%s%s", j ? "," : "", vals[j]);
            /* the set holding only "" is written "(,)": "()" would be empty */
            kf_strbuf_addstr(out, t->n == 1 && !*vals[0] ? ",)" : ")");
            free(vals);
            break;
        }
        }
    }
    free(order);
}
