/* cli-http.c: how `kfleet` talks to kfleetd: base's HTTP client (http.h),
 * one handle per run so that consecutive requests reuse the connection, JSON bodies, the
 * bearer token, and the two things a user must be told well: a server that
 * does not answer (which server, from where, how to pick another) and a
 * server that refuses (its Status message and each validation cause).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kfleet/http.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

/* Largest response kept in memory (a page of a list is far smaller). */
#define RESPONSE_MAX_BYTES (256u * 1024 * 1024)
/* Longest line of a watch stream (one event carries one object). */
#define WATCH_LINE_MAX    (2 * KF_OBJ_MAX_BYTES + 4096)
#define CONNECT_TIMEOUT_S 10

struct kf_cli_http {
    struct kf_http *http;
};

void kf_cli_http_free(struct kf_cli_http *h)
{
    if (!h)
        return;
    kf_http_free(h->http);
    free(h);
}

static struct kf_http *http_get(struct kf_cli *cli)
{
    if (!cli->http) {
        cli->http = kf_xcalloc(1, sizeof(*cli->http));
        cli->http->http = kf_http_new();
    }
    return cli->http->http;
}

void kf_cli_response_release(struct kf_cli_response *r)
{
    if (!r)
        return;
    if (r->body) {
        kf_strbuf_release(r->body);
        free(r->body);
    }
    json_decref(r->json);
    *r = (struct kf_cli_response){ 0 };
}

/* What every request sets: token, timeouts (none for streams, which have
 * their own), keep-alive. */
static struct kf_http_opts options(const struct kf_cli *cli, bool stream)
{
    return (struct kf_http_opts){
        .user_agent = "kfleet/" KF_VERSION,
        .connect_timeout_ms = CONNECT_TIMEOUT_S * 1000L,
        .timeout_ms = !stream && cli->timeout_s > 0 ? cli->timeout_s * 1000L : 0,
        .tcp_keepalive = true,
        .keepalive_idle_s = 30,
        .keepalive_intvl_s = 10,
    };
}

static struct curl_slist *headers(const struct kf_cli *cli, const char *content_type)
{
    struct curl_slist *hdrs = kf_http_header(NULL, "Accept: application/json");

    if (content_type)
        hdrs = kf_http_header(hdrs, "Content-Type: %s", content_type);
    if (cli->conn.token)
        hdrs = kf_http_header(hdrs, "Authorization: Bearer %s", cli->conn.token);
    return kf_http_header(hdrs, "Expect:"); /* no 100-continue round trip */
}

static void describe_curl_error(struct kf_cli *cli, const char *detail, struct kf_strbuf *out)
{
    const char *from;

    switch (cli->conn.server_src) {
    case KF_CLI_SRC_FLAG:
        from = "from --server";
        break;
    case KF_CLI_SRC_ENV:
        from = "from $KFLEET_SERVER";
        break;
    case KF_CLI_SRC_FILE:
        from = "from the config file";
        break;
    default:
        from = "the default";
        break;
    }
    kf_strbuf_addf(out,
                   "cannot reach the kfleet server at %s (%s): %s\n"
                   "  is kfleetd running there? Choose another server with --server URL, "
                   "$KFLEET_SERVER or `kfleet config set-server URL`.",
                   cli->conn.server, from, detail);
}

static void parse_body(struct kf_cli_response *ret)
{
    ret->json = NULL;
    if (ret->body->len > 0 && (ret->body->buf[0] == '{' || ret->body->buf[0] == '['))
        kf_json_parse(ret->body->buf, ret->body->len, &ret->json, NULL);
}

static struct kf_strbuf *new_body(size_t cap)
{
    struct kf_strbuf *sb = kf_xcalloc(1, sizeof(*sb));

    kf_strbuf_init(sb, 0);
    sb->cap = cap;
    return sb;
}

int kf_cli_request(struct kf_cli *cli, const char *method, const char *path,
                   const char *content_type, const char *body, size_t len,
                   struct kf_cli_response *ret)
{
    struct kf_cli_response r = { .body = new_body(RESPONSE_MAX_BYTES) };
    char *url = kf_xasprintf("%s%s", cli->conn.server, path);
    struct kf_http_opts o = options(cli, false);
    struct kf_http_req req = { .method = method,
                               .url = url,
                               .headers = headers(cli, content_type),
                               .body = body,
                               .body_len = len,
                               .resp = r.body };
    struct kf_http_result res;
    int rc;

    kf_assert(cli->conn_resolved);
    rc = kf_http_request(http_get(cli), &o, &req, &res);
    curl_slist_free_all(req.headers);
    free(url);
    if (rc < 0) {
        struct kf_strbuf msg = KF_STRBUF_INIT;

        if (res.code == CURLE_WRITE_ERROR && r.body->overflowed)
            kf_strbuf_addf(&msg, "the answer to %s %s is larger than %u MiB", method, path,
                           RESPONSE_MAX_BYTES >> 20);
        else
            describe_curl_error(cli, res.error, &msg);
        kf_cli_error(cli, "%s", msg.buf);
        kf_strbuf_release(&msg);
        kf_cli_response_release(&r);
        return -EHOSTUNREACH;
    }
    r.status = res.status;
    parse_body(&r);
    *ret = r;
    return 0;
}

/* ---- streaming (watch) ---------------------------------------------------------- */

/* The CLI's line callbacks take (line, len, data). */
struct stream_line {
    int (*fn)(const char *line, size_t len, void *data);
    void *data;
};

static int stream_line(void *ctx, const char *s, size_t n)
{
    struct stream_line *sl = ctx;

    return sl->fn(s, n, sl->data);
}

int kf_cli_stream(struct kf_cli *cli, const char *path,
                  int (*line_fn)(const char *line, size_t len, void *data), void *data,
                  int64_t timeout_ms, struct kf_cli_response *ret, struct kf_strbuf *err)
{
    struct kf_cli_response r = { .body = new_body(WATCH_LINE_MAX) };
    struct stream_line sl = { .fn = line_fn, .data = data };
    char *url = kf_xasprintf("%s%s", cli->conn.server, path);
    struct kf_http_opts o = options(cli, true);
    struct kf_http_req req = { .url = url,
                               .headers = headers(cli, NULL),
                               .resp = r.body,
                               .line = stream_line,
                               .line_ctx = &sl,
                               .line_2xx_only = true };
    struct kf_http_result res;
    int rc;

    kf_assert(cli->conn_resolved);
    if (timeout_ms > 0)
        o.timeout_ms = (long)timeout_ms;
    rc = kf_http_request(http_get(cli), &o, &req, &res);
    curl_slist_free_all(req.headers);
    free(url);
    if (rc < 0) {
        if (err) {
            kf_strbuf_reset(err);
            describe_curl_error(cli, res.error, err);
        }
        kf_cli_response_release(&r);
        return -EHOSTUNREACH;
    }
    r.status = res.status;
    if (r.status < 200 || r.status >= 300)
        parse_body(&r);
    else
        kf_strbuf_reset(r.body);
    *ret = r;
    return 0;
}

/* ---- errors from the server ---------------------------------------------------- */

static const char *status_text(long code)
{
    switch (code) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Request Entity Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

void kf_cli_format_status(const struct kf_cli_response *r, struct kf_strbuf *out)
{
    const json_t *st = r->json;
    const char *message, *reason;
    json_t *causes;
    size_t head_len;

    if (!json_is_object(st) || !kf_streq(kf_json_str(st, "kind", NULL), "Status")) {
        /* Not kfleetd's answer (a proxy?): show what came. */
        size_t n = 0;

        while (n < r->body->len && n < 300 && r->body->buf[n] != '\n')
            n++;
        kf_strbuf_addf(out, "Error from server: HTTP %ld %s", r->status, status_text(r->status));
        if (n > 0)
            kf_strbuf_addf(out, ": %.*s", (int)n, r->body->buf);
        return;
    }
    message = kf_json_str(st, "message", "");
    reason = kf_json_str(st, "reason", "");
    causes = kf_json_path(st, "details.causes");
    kf_strbuf_addstr(out, "Error from server");
    if (*reason)
        kf_strbuf_addf(out, " (%s)", reason);
    kf_strbuf_addstr(out, ": ");
    /* The message usually repeats the causes ("... is invalid: spec.a: x;
     * spec.b: y"); when they get their own lines below, stop the headline
     * where the first one starts. */
    head_len = strlen(message);
    if (json_array_size(causes) > 0) {
        const char *field = kf_json_str(json_array_get(causes, 0), "field", NULL);
        const char *at = field && *field ? strstr(message, field) : NULL;

        if (at && at > message) {
            head_len = (size_t)(at - message);
            while (head_len > 0 && strchr(" :;,", message[head_len - 1]))
                head_len--;
        }
    }
    kf_strbuf_add(out, message, head_len);
    if (!*message)
        kf_strbuf_addf(out, "HTTP %ld %s", r->status, status_text(r->status));
    for (size_t i = 0; i < json_array_size(causes); i++) {
        const json_t *c = json_array_get(causes, i);
        const char *field = kf_json_str(c, "field", "");
        const char *msg = kf_json_str(c, "message", kf_json_str(c, "reason", ""));

        kf_strbuf_addstr(out, "\n  ");
        if (*field)
            kf_strbuf_addf(out, "%s: ", field);
        kf_strbuf_addstr(out, msg);
    }
    if (r->status == 401)
        kf_strbuf_addstr(out, "\n  (give a token with --token, $KFLEET_TOKEN or `kfleet config "
                              "set-token TOKEN`)");
}

int kf_cli_report_status(struct kf_cli *cli, const struct kf_cli_response *r, const char *what)
{
    struct kf_strbuf msg = KF_STRBUF_INIT;

    kf_cli_format_status(r, &msg);
    if (cli->quiet) {
        kf_strbuf_reset(&cli->last_error);
        kf_strbuf_addf(&cli->last_error, "%s%s%s", what ? what : "", what ? ": " : "", msg.buf);
        cli->last_status = r->status;
    } else if (what) {
        fprintf(cli->err, "%s: %s\n", what, msg.buf);
    } else {
        fprintf(cli->err, "%s\n", msg.buf);
    }
    cli->last_status = r->status;
    kf_strbuf_release(&msg);
    return r->status == 404 ? KF_CLI_EXIT_NOTFOUND : KF_CLI_EXIT_REFUSED;
}

/* ---- paths ---------------------------------------------------------------------- */

static void add_escaped(struct kf_strbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c))
            kf_strbuf_addch(out, (char)c);
        else
            kf_strbuf_addf(out, "%%%02X", c);
    }
}

char *kf_cli_path(const struct kf_kind *k, const char *name)
{
    struct kf_strbuf p = KF_STRBUF_INIT;

    kf_strbuf_addf(&p, "/apis/%s/%s", KF_API_VERSION, k->plural);
    if (name) {
        kf_strbuf_addch(&p, '/');
        add_escaped(&p, name);
    }
    return kf_strbuf_detach(&p, NULL);
}

void kf_cli_path_add_query(struct kf_strbuf *path, const char *key, const char *value)
{
    kf_strbuf_addch(path, strchr(path->buf, '?') ? '&' : '?');
    add_escaped(path, key);
    kf_strbuf_addch(path, '=');
    add_escaped(path, value);
}
