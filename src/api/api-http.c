/* api-http.c: the HTTP plumbing of the API server: decoding the request
 * target (libmicrohttpd's own decoding does not turn '+' into a space, which
 * Go clients such as kubectl use in selectors, so the raw target is decoded
 * here), reading Accept headers (the media ranges and the g/v/as/profile
 * parameters that choose a Table or aggregated discovery), replies and
 * Kubernetes Status objects. Listen addresses are base's (base-listen.c). */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "api/api-internal.h"

/* Percent-decodes s[0..len) into a new string; '+' becomes a space when
 * plus_is_space (query strings). */
static int decode(const char *s, size_t len, bool plus_is_space, char **ret, struct kf_strbuf *err)
{
    char *out = kf_xmalloc(len + 1);
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '%') {
            int hi = i + 2 < len ? kf_hex_digit(s[i + 1]) : -1;
            int lo = i + 2 < len ? kf_hex_digit(s[i + 2]) : -1;

            if (hi < 0 || lo < 0) {
                free(out);
                return kf_err(err, -EBADMSG,
                              "malformed percent escape at byte %zu of the request target", i);
            }
            c = (char)(hi * 16 + lo);
            if (c == '\0') {
                free(out);
                return kf_err(err, -EBADMSG, "the request target contains a NUL byte (%%00)");
            }
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *ret = out;
    return 0;
}

void kf_api_query_release(struct api_query *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->keys[i]);
        free(q->values[i]);
    }
    free(q->keys);
    free(q->values);
    memset(q, 0, sizeof(*q));
}

int kf_api_parse_uri(const char *raw, char **ret_path, struct api_query *ret_query,
                     struct kf_strbuf *err)
{
    const char *qmark = strchr(raw, '?');
    size_t plen = qmark ? (size_t)(qmark - raw) : strlen(raw);
    struct api_query q = { 0 };
    char *path;
    int r;

    r = decode(raw, plen, false, &path, err);
    if (r < 0)
        return r;
    if (qmark) {
        const char *p = qmark + 1;

        while (*p) {
            const char *amp = strchr(p, '&');
            size_t len = amp ? (size_t)(amp - p) : strlen(p);
            const char *eq = memchr(p, '=', len);
            char *k = NULL, *v = NULL;

            if (len > 0) {
                size_t klen = eq ? (size_t)(eq - p) : len;

                r = decode(p, klen, true, &k, err);
                if (r == 0)
                    r = eq ? decode(eq + 1, len - klen - 1, true, &v, err)
                           : (v = kf_xstrdup(""), 0);
                if (r < 0) {
                    free(k);
                    free(path);
                    kf_api_query_release(&q);
                    return r;
                }
                KF_GROW(q.keys, q.alloc, q.n);
                q.values = kf_xrealloc(q.values, q.alloc * sizeof(*q.values));
                q.keys[q.n] = k;
                q.values[q.n] = v;
                q.n++;
            }
            if (!amp)
                break;
            p = amp + 1;
        }
    }
    *ret_path = path;
    *ret_query = q;
    return 0;
}

const char *kf_api_query_get(const struct api_query *q, const char *key)
{
    for (size_t i = q->n; i > 0; i--)
        if (strcmp(q->keys[i - 1], key) == 0)
            return q->values[i - 1];
    return NULL;
}

int kf_api_query_bool(const struct api_query *q, const char *key, bool *ret, struct kf_strbuf *err)
{
    const char *v = kf_api_query_get(q, key);

    if (!v || !*v || strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        /* "?watch" alone means true, as in Kubernetes */
        *ret = v && !*v;
        return 0;
    }
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *ret = true;
        return 0;
    }
    return kf_err(err, -EBADMSG, "query parameter \"%s\" must be true or false, not \"%s\"", key,
                  v);
}

const char *kf_api_header(struct api_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* --- Accept headers ------------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* s[0..len) without surrounding blanks (and quotes when unquote). */
static void trim(const char **s, size_t *len, bool unquote)
{
    while (*len && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && is_space((*s)[*len - 1]))
        (*len)--;
    if (unquote && *len >= 2 && (*s)[0] == '"' && (*s)[*len - 1] == '"') {
        (*s)++;
        *len -= 2;
    }
}

static void copy_field(char *dst, size_t size, const char *s, size_t len, bool lower)
{
    if (len >= size) {
        memcpy(dst, "?", 2); /* too long for any value we match */
        return;
    }
    for (size_t i = 0; i < len; i++)
        dst[i] = lower && s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    dst[len] = '\0';
}

/* q=0, q=0.0, q=0.000: not acceptable. */
static bool q_is_zero(const char *v, size_t len)
{
    if (len == 0 || v[0] != '0')
        return false;
    if (len == 1)
        return true;
    if (v[1] != '.')
        return false;
    for (size_t i = 2; i < len; i++)
        if (v[i] != '0')
            return false;
    return true;
}

static void media_param(struct api_media_range *m, const char *s, size_t len)
{
    const char *eq = memchr(s, '=', len);
    const char *name = s, *value;
    size_t nlen, vlen;

    if (!eq)
        return;
    nlen = (size_t)(eq - s);
    value = eq + 1;
    vlen = len - nlen - 1;
    trim(&name, &nlen, false);
    trim(&value, &vlen, true);
    if (nlen == 1 && (name[0] == 'g' || name[0] == 'G'))
        copy_field(m->group, sizeof(m->group), value, vlen, false);
    else if (nlen == 1 && (name[0] == 'v' || name[0] == 'V'))
        copy_field(m->version, sizeof(m->version), value, vlen, false);
    else if (nlen == 2 && strncasecmp(name, "as", 2) == 0)
        copy_field(m->as, sizeof(m->as), value, vlen, false);
    else if (nlen == 7 && strncasecmp(name, "profile", 7) == 0)
        copy_field(m->profile, sizeof(m->profile), value, vlen, false);
    else if (nlen == 1 && (name[0] == 'q' || name[0] == 'Q'))
        m->refused = q_is_zero(value, vlen);
}

bool kf_api_accept_next(const char **pos, struct api_media_range *ret)
{
    const char *p = *pos;
    bool first = true;

    memset(ret, 0, sizeof(*ret));
    while (is_space(*p) || *p == ',')
        p++;
    if (!*p) {
        *pos = p;
        return false;
    }
    for (;;) {
        const char *seg = p;
        bool quoted = false;
        size_t len;

        while (*p && (quoted || (*p != ';' && *p != ','))) {
            if (*p == '"')
                quoted = !quoted;
            p++;
        }
        len = (size_t)(p - seg);
        if (first) {
            trim(&seg, &len, false);
            copy_field(ret->type, sizeof(ret->type), seg, len, true);
            first = false;
        } else {
            media_param(ret, seg, len);
        }
        if (*p != ';')
            break;
        p++;
    }
    if (*p == ',')
        p++;
    *pos = p;
    return true;
}

bool kf_api_media_range_is_json(const struct api_media_range *m)
{
    return !m->refused && !m->as[0] &&
           (strcmp(m->type, "application/json") == 0 || strcmp(m->type, "application/*") == 0 ||
            strcmp(m->type, "*/*") == 0);
}

/* --- replies ------------------------------------------------------------ */

int kf_api_reply(struct api_request *req, unsigned int code, const char *content_type,
                 struct kf_strbuf *body)
{
    struct MHD_Response *resp;
    size_t len;
    char *buf = kf_strbuf_detach(body, &len);
    enum MHD_Result r;

    resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, private");
    if (req->vary_accept)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept");
    if (code == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"kfleet\"");
    if (req->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r = MHD_queue_response(req->conn, code, resp);
    MHD_destroy_response(resp);
    req->replied = true;
    req->status = code;
    return r;
}

int kf_api_reply_text(struct api_request *req, unsigned int code, const char *text)
{
    struct kf_strbuf body = KF_STRBUF_INIT;

    kf_strbuf_addstr(&body, text);
    return kf_api_reply(req, code, "text/plain; charset=utf-8", &body);
}

int kf_api_reply_json(struct api_request *req, unsigned int code, json_t *v)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    int r;

    kf_json_dump_sb(v, &body);
    json_decref(v);
    r = kf_api_reply(req, code, "application/json", &body);
    kf_strbuf_release(&body);
    return r;
}

void kf_api_resource_name(const struct kf_kind *k, struct kf_strbuf *out)
{
    kf_strbuf_addf(out, "%s.%s", k->plural, KF_API_GROUP);
}

json_t *kf_api_status_new(int err, const char *message, const struct kf_kind *k, const char *name,
                          const struct kf_causes *causes)
{
    const struct kf_error_info *info = kf_error_info(err);
    json_t *st = json_object();
    json_t *details = NULL;

    json_object_set_new(st, "kind", json_string("Status"));
    json_object_set_new(st, "apiVersion", json_string("v1"));
    json_object_set_new(st, "metadata", json_object());
    json_object_set_new(st, "status", json_string("Failure"));
    json_object_set_new(st, "message", json_string(message ? message : info->reason));
    json_object_set_new(st, "reason", json_string(info->reason));
    if (k || name || (causes && causes->n)) {
        details = json_object();
        if (name)
            json_object_set_new(details, "name", json_string(name));
        if (k) {
            json_object_set_new(details, "group", json_string(KF_API_GROUP));
            /* Kubernetes names the resource for most errors and the kind
             * for validation errors. */
            json_object_set_new(details, "kind",
                                json_string(abs(err) == KF_EINVALID ? k->kind : k->plural));
        }
        if (causes && causes->n) {
            json_t *arr = json_array();

            for (size_t i = 0; i < causes->n; i++) {
                json_t *c = json_object();

                json_object_set_new(c, "reason", json_string(causes->items[i].type));
                json_object_set_new(c, "message", json_string(causes->items[i].message));
                json_object_set_new(c, "field", json_string(causes->items[i].field));
                json_array_append_new(arr, c);
            }
            json_object_set_new(details, "causes", arr);
        }
        json_object_set_new(st, "details", details);
    }
    json_object_set_new(st, "code", json_integer(info->http));
    return st;
}

int kf_api_reply_status(struct api_request *req, int err, const char *message,
                        const struct kf_causes *causes)
{
    const struct kf_error_info *info = kf_error_info(err);

    return kf_api_reply_json(req, (unsigned int)info->http,
                             kf_api_status_new(err, message, req->kind, req->name, causes));
}

int kf_api_reply_statusf(struct api_request *req, int err, const char *fmt, ...)
{
    va_list ap;
    char *msg;
    int r;

    va_start(ap, fmt);
    msg = kf_xvasprintf(fmt, ap);
    va_end(ap);
    r = kf_api_reply_status(req, err, msg, NULL);
    free(msg);
    return r;
}

int kf_api_reply_status_http(struct api_request *req, unsigned int code, const char *reason,
                             const char *message)
{
    json_t *st = kf_api_status_new(-EIO, message, NULL, NULL, NULL);

    json_object_set_new(st, "reason", json_string(reason));
    json_object_set_new(st, "code", json_integer(code));
    return kf_api_reply_json(req, code, st);
}

int kf_api_reply_success(struct api_request *req, unsigned int code, const char *message)
{
    json_t *st = json_object();

    json_object_set_new(st, "kind", json_string("Status"));
    json_object_set_new(st, "apiVersion", json_string("v1"));
    json_object_set_new(st, "metadata", json_object());
    json_object_set_new(st, "status", json_string("Success"));
    if (message)
        json_object_set_new(st, "message", json_string(message));
    json_object_set_new(st, "code", json_integer(code));
    return kf_api_reply_json(req, code, st);
}
