/* cli-http.c: how `kfleet` talks to kfleetd: libcurl, one easy handle per
 * run so that consecutive requests reuse the connection, JSON bodies, the
 * bearer token, and the two things a user must be told well: a server that
 * does not answer (which server, from where, how to pick another) and a
 * server that refuses (its Status message and each validation cause).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

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
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
};

void kf_cli_http_free(struct kf_cli_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
}

static struct kf_cli_http *http_get(struct kf_cli *cli)
{
    if (!cli->http) {
        cli->http = kf_xcalloc(1, sizeof(*cli->http));
        cli->http->curl = curl_easy_init();
        if (!cli->http->curl)
            kf_abort("cannot initialize libcurl");
    }
    return cli->http;
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

static size_t write_body(char *data, size_t size, size_t nmemb, void *user)
{
    struct kf_strbuf *sb = user;

    if (kf_strbuf_add(sb, data, size * nmemb) < 0)
        return 0; /* over the cap: curl stops with CURLE_WRITE_ERROR */
    return size * nmemb;
}

/* Sets what every request has: URL, token, timeouts, no signals. */
static struct curl_slist *prepare(struct kf_cli *cli, const char *path, const char *content_type,
                                  bool stream)
{
    struct kf_cli_http *h = http_get(cli);
    CURL *c = h->curl;
    struct curl_slist *hdrs = NULL;
    char *url = kf_xasprintf("%s%s", cli->conn.server, path);

    curl_easy_reset(c);
    h->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kfleet/" KF_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 10L);
    if (!stream && cli->timeout_s > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT, cli->timeout_s);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (content_type) {
        char *h2 = kf_xasprintf("Content-Type: %s", content_type);

        hdrs = curl_slist_append(hdrs, h2);
        free(h2);
    }
    if (cli->conn.token) {
        char *auth = kf_xasprintf("Authorization: Bearer %s", cli->conn.token);

        hdrs = curl_slist_append(hdrs, auth);
        free(auth);
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    return hdrs;
}

static void describe_curl_error(struct kf_cli *cli, CURLcode code, struct kf_strbuf *out)
{
    const char *detail = cli->http->errbuf[0] ? cli->http->errbuf : curl_easy_strerror(code);
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

int kf_cli_request(struct kf_cli *cli, const char *method, const char *path,
                   const char *content_type, const char *body, size_t len,
                   struct kf_cli_response *ret)
{
    struct kf_cli_response r = { 0 };
    struct curl_slist *hdrs;
    CURL *c;
    CURLcode code;

    kf_assert(cli->conn_resolved);
    hdrs = prepare(cli, path, content_type, false);
    c = cli->http->curl;
    r.body = kf_xcalloc(1, sizeof(*r.body));
    kf_strbuf_init(r.body, 0);
    r.body->cap = RESPONSE_MAX_BYTES;
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r.body);
    code = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    if (code != CURLE_OK) {
        struct kf_strbuf msg = KF_STRBUF_INIT;

        if (code == CURLE_WRITE_ERROR && r.body->overflowed)
            kf_strbuf_addf(&msg, "the answer to %s %s is larger than %u MiB", method, path,
                           RESPONSE_MAX_BYTES >> 20);
        else
            describe_curl_error(cli, code, &msg);
        kf_cli_error(cli, "%s", msg.buf);
        kf_strbuf_release(&msg);
        kf_cli_response_release(&r);
        return -EHOSTUNREACH;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    parse_body(&r);
    *ret = r;
    return 0;
}

/* ---- streaming (watch) ---------------------------------------------------------- */

struct stream_state {
    CURL *curl;
    int (*line_fn)(const char *line, size_t len, void *data);
    void *data;
    struct kf_strbuf *pending; /* partial line, or the body of an error */
    bool stopped;              /* line_fn asked to stop */
};

static size_t write_stream(char *data, size_t size, size_t nmemb, void *user)
{
    struct stream_state *s = user;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300)
        return kf_strbuf_add(s->pending, data, n) < 0 ? 0 : n;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(data + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - data) : n;

        if (kf_strbuf_add(s->pending, data + i, end - i) < 0)
            return 0; /* a line longer than any event: give up */
        if (!nl)
            break;
        if (s->pending->len > 0 && s->line_fn(s->pending->buf, s->pending->len, s->data) != 0) {
            s->stopped = true;
            return 0;
        }
        kf_strbuf_reset(s->pending);
        i = end + 1;
    }
    return n;
}

int kf_cli_stream(struct kf_cli *cli, const char *path,
                  int (*line_fn)(const char *line, size_t len, void *data), void *data,
                  int64_t timeout_ms, struct kf_cli_response *ret, struct kf_strbuf *err)
{
    struct kf_cli_response r = { 0 };
    struct stream_state s = { .line_fn = line_fn, .data = data };
    struct curl_slist *hdrs;
    CURLcode code;

    kf_assert(cli->conn_resolved);
    hdrs = prepare(cli, path, NULL, true);
    s.curl = cli->http->curl;
    r.body = kf_xcalloc(1, sizeof(*r.body));
    kf_strbuf_init(r.body, 0);
    r.body->cap = WATCH_LINE_MAX;
    s.pending = r.body;
    curl_easy_setopt(s.curl, CURLOPT_WRITEFUNCTION, write_stream);
    curl_easy_setopt(s.curl, CURLOPT_WRITEDATA, &s);
    if (timeout_ms > 0)
        curl_easy_setopt(s.curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    code = curl_easy_perform(s.curl);
    curl_slist_free_all(hdrs);
    if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && s.stopped)) {
        if (err) {
            kf_strbuf_reset(err);
            describe_curl_error(cli, code, err);
        }
        kf_cli_response_release(&r);
        return -EHOSTUNREACH;
    }
    curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &r.status);
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
