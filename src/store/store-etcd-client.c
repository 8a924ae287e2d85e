/* store-etcd-client.c: the etcd v3 client over etcd's JSON gateway
 * (contract and the reason for the gateway in kfleet/etcd.h).
 *
 * Unary requests take a curl easy handle from a small pool (each handle
 * keeps its keep-alive connection), POST a JSON body to the current
 * endpoint, and parse the JSON answer. Failures are sorted in three kinds:
 *   - the request never left (connect refused, TLS handshake, DNS): move to
 *     the next endpoint and retry, whatever the request;
 *   - etcd answered that it did nothing (no leader, too many requests, an
 *     expired auth token): retry (after a new token);
 *   - the request left and no answer came (timeout, reset, a dying member):
 *     retry only requests marked KF_ETCD_IDEMPOTENT; others get -KF_ETIMEOUT
 *     and the caller finds out what happened.
 * Streams use a curl multi handle so that another thread can wake them
 * (curl_multi_wakeup) and so that idle and overall timeouts are exact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <curl/curl.h>

#include "kfleet/base64.h"
#include "kfleet/error.h"
#include "kfleet/etcd.h"
#include "kfleet/http.h"
#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/strbuf.h"

KF_LOG_MODULE(etcd);

#define MAX_POOL       16
#define MAX_PASSWORD   4096
#define CONNECT_MS     2000
#define RETRY_ROUNDS   3
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

struct kf_etcd {
    struct kf_etcd_config cfg;
    int cur;              /* index of the current endpoint (atomic) */
    int64_t seen_rev;     /* atomic */
    pthread_mutex_t lock; /* pool and token */
    CURL *pool[MAX_POOL];
    size_t npool;
    char *token;
};

struct kf_etcd_stream {
    struct kf_etcd *c;
    CURLM *multi;
    bool interrupted; /* atomic */
};

/* --- configuration ------------------------------------------------------ */

void kf_etcd_config_release(struct kf_etcd_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        free(cfg->endpoints[i]);
    free(cfg->endpoints);
    free(cfg->cacert);
    free(cfg->cert);
    free(cfg->key);
    free(cfg->user);
    if (cfg->password)
        memset(cfg->password, 0, strlen(cfg->password));
    free(cfg->password);
    free(cfg->prefix);
    memset(cfg, 0, sizeof(*cfg));
}

/* Percent-decodes s[0..len) into a new string; NULL when malformed. */
static char *pct_decode(const char *s, size_t len)
{
    struct kf_strbuf out = KF_STRBUF_INIT;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < len ? kf_hex_digit(s[i + 1]) : -1;
            int lo = i + 2 < len ? kf_hex_digit(s[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                kf_strbuf_release(&out);
                return NULL;
            }
            kf_strbuf_addch(&out, (char)(hi << 4 | lo));
            i += 2;
        } else {
            kf_strbuf_addch(&out, s[i]);
        }
    }
    return kf_strbuf_detach(&out, NULL);
}

static int read_password(const char *path, char **ret, struct kf_strbuf *err)
{
    FILE *f = fopen(path, "re");
    char buf[MAX_PASSWORD + 2];
    size_t n;

    if (!f)
        return kf_err(err, -EINVAL, "cannot read the etcd password file \"%s\": %s", path,
                      strerror(errno));
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (strlen(buf) > MAX_PASSWORD || buf[0] == '\0') {
        memset(buf, 0, sizeof(buf));
        return kf_err(err, -EINVAL, "the etcd password file \"%s\" is empty or too long", path);
    }
    *ret = kf_xstrdup(buf);
    memset(buf, 0, sizeof(buf));
    return 0;
}

static int parse_endpoints(const char *s, size_t len, struct kf_etcd_config *cfg,
                           struct kf_strbuf *err)
{
    size_t alloc = 0;
    const char *p = s, *end = s + len;

    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        char *ep = kf_xstrndup(p, n);
        size_t elen = strlen(ep);

        while (elen > 0 && ep[elen - 1] == '/')
            ep[--elen] = '\0';
        const char *host = kf_str_has_prefix(ep, "http://")    ? ep + strlen("http://")
                           : kf_str_has_prefix(ep, "https://") ? ep + strlen("https://")
                                                               : NULL;

        if (!host || !*host || strpbrk(host, " /?#@")) {
            int r = kf_err(err, -EINVAL,
                           "etcd endpoint \"%s\" is not http://HOST:PORT or https://HOST:PORT", ep);

            free(ep);
            return r;
        }
        KF_GROW(cfg->endpoints, alloc, cfg->n_endpoints);
        cfg->endpoints[cfg->n_endpoints++] = ep;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

static int set_option(struct kf_etcd_config *cfg, const char *name, char *value,
                      char **password_file, struct kf_strbuf *err)
{
    char **slot = NULL;

    if (strcmp(name, "cacert") == 0)
        slot = &cfg->cacert;
    else if (strcmp(name, "cert") == 0)
        slot = &cfg->cert;
    else if (strcmp(name, "key") == 0)
        slot = &cfg->key;
    else if (strcmp(name, "user") == 0)
        slot = &cfg->user;
    else if (strcmp(name, "password-file") == 0)
        slot = password_file;
    else if (strcmp(name, "prefix") == 0)
        slot = &cfg->prefix;
    if (slot) {
        if (*slot)
            return kf_err(err, -EINVAL, "etcd option \"%s\" is given twice", name);
        *slot = kf_xstrdup(value);
        return 0;
    }
    if (strcmp(name, "timeout") == 0) {
        int64_t ms;

        if (kf_parse_duration_ms(value, &ms) < 0 || ms <= 0 || ms > 3600 * 1000)
            return kf_err(err, -EINVAL, "etcd option timeout=\"%s\" is not a duration like 5s",
                          value);
        cfg->timeout_ms = (int)ms;
        return 0;
    }
    return kf_err(err, -EINVAL,
                  "unknown etcd option \"%s\" (known: cacert, cert, key, user, password-file, "
                  "prefix, timeout)",
                  name);
}

int kf_etcd_config_parse(const char *spec, struct kf_etcd_config *ret, struct kf_strbuf *err)
{
    struct kf_etcd_config cfg = { 0 };
    const char *q = strchr(spec, '?');
    char *password_file = NULL;
    int r;

    cfg.timeout_ms = KF_ETCD_DEFAULT_TIMEOUT_MS;
    if ((q ? (size_t)(q - spec) : strlen(spec)) == 0) {
        r = kf_err(err, -EINVAL, "etcd store needs endpoints: etcd:http://HOST:2379[,...]");
        goto release_config;
    }
    r = parse_endpoints(spec, q ? (size_t)(q - spec) : strlen(spec), &cfg, err);
    if (r < 0)
        goto release_config;
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        char *name, *value;

        if (!eq) {
            r = kf_err(err, -EINVAL, "etcd option \"%.*s\" has no '=VALUE'", (int)n, p);
            goto release_config;
        }
        name = kf_xstrndup(p, (size_t)(eq - p));
        value = pct_decode(eq + 1, n - (size_t)(eq + 1 - p));
        if (!value) {
            r = kf_err(err, -EINVAL, "etcd option \"%s\" has a bad %%-escape", name);
            free(name);
            goto release_config;
        }
        r = set_option(&cfg, name, value, &password_file, err);
        free(name);
        free(value);
        if (r < 0)
            goto release_config;
        p = amp ? amp + 1 : p + n;
    }
    if (!cfg.cert != !cfg.key) {
        r = kf_err(err, -EINVAL, "etcd options cert= and key= go together");
        goto release_config;
    }
    if (!cfg.user != !password_file) {
        r = kf_err(err, -EINVAL, "etcd options user= and password-file= go together");
        goto release_config;
    }
    if (password_file) {
        r = read_password(password_file, &cfg.password, err);
        if (r < 0)
            goto release_config;
    }
    if (!cfg.prefix)
        cfg.prefix = kf_xstrdup(KF_ETCD_DEFAULT_PREFIX);
    {
        size_t plen = strlen(cfg.prefix);

        while (plen > 0 && cfg.prefix[plen - 1] == '/')
            cfg.prefix[--plen] = '\0';
        if (plen > 0 && cfg.prefix[0] != '/') {
            r = kf_err(err, -EINVAL, "etcd prefix \"%s\" must start with '/'", cfg.prefix);
            goto release_config;
        }
        if (plen > 128) {
            r = kf_err(err, -EINVAL, "etcd prefix \"%s\" is longer than 128 bytes", cfg.prefix);
            goto release_config;
        }
    }
    free(password_file);
    *ret = cfg;
    return 0;
release_config:
    free(password_file);
    kf_etcd_config_release(&cfg);
    return r;
}

/* --- the client --------------------------------------------------------- */

static char *xstrdup_or_null(const char *s)
{
    return s ? kf_xstrdup(s) : NULL;
}

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int kf_etcd_new(const struct kf_etcd_config *cfg, struct kf_etcd **ret, struct kf_strbuf *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    struct kf_etcd *c;

    if (!cfg->n_endpoints)
        return kf_err(err, -EINVAL, "etcd client needs at least one endpoint");
    pthread_once(&once, global_init);
    c = kf_xcalloc(1, sizeof(*c));
    c->cfg.endpoints = kf_xcalloc(cfg->n_endpoints, sizeof(char *));
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        c->cfg.endpoints[i] = kf_xstrdup(cfg->endpoints[i]);
    c->cfg.n_endpoints = cfg->n_endpoints;
    c->cfg.cacert = xstrdup_or_null(cfg->cacert);
    c->cfg.cert = xstrdup_or_null(cfg->cert);
    c->cfg.key = xstrdup_or_null(cfg->key);
    c->cfg.user = xstrdup_or_null(cfg->user);
    c->cfg.password = xstrdup_or_null(cfg->password);
    c->cfg.prefix = kf_xstrdup(cfg->prefix ? cfg->prefix : "");
    c->cfg.timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : KF_ETCD_DEFAULT_TIMEOUT_MS;
    pthread_mutex_init(&c->lock, NULL);
    *ret = c;
    return 0;
}

void kf_etcd_free(struct kf_etcd *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    if (c->token)
        memset(c->token, 0, strlen(c->token));
    free(c->token);
    pthread_mutex_destroy(&c->lock);
    kf_etcd_config_release(&c->cfg);
    free(c);
}

const struct kf_etcd_config *kf_etcd_config(const struct kf_etcd *c)
{
    return &c->cfg;
}

static int current(struct kf_etcd *c)
{
    return __atomic_load_n(&c->cur, __ATOMIC_ACQUIRE);
}

const char *kf_etcd_endpoint(struct kf_etcd *c)
{
    return c->cfg.endpoints[current(c)];
}

/* Endpoint i failed: move on, unless another thread already did. */
static void endpoint_failed(struct kf_etcd *c, int i)
{
    int next = (i + 1) % (int)c->cfg.n_endpoints;

    if (__atomic_compare_exchange_n(&c->cur, &i, next, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
        c->cfg.n_endpoints > 1)
        kf_log_dbg("etcd endpoint \"%s\" failed; moving to \"%s\"", c->cfg.endpoints[i],
                   c->cfg.endpoints[next]);
}

int64_t kf_etcd_seen_rev(struct kf_etcd *c)
{
    return __atomic_load_n(&c->seen_rev, __ATOMIC_ACQUIRE);
}

void kf_etcd_note_rev(struct kf_etcd *c, int64_t rev)
{
    int64_t seen = kf_etcd_seen_rev(c);

    while (rev > seen && !__atomic_compare_exchange_n(&c->seen_rev, &seen, rev, false,
                                                      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ;
}

static void note_header(struct kf_etcd *c, const json_t *resp)
{
    kf_etcd_note_rev(c, kf_etcd_get_int(json_object_get(resp, "header"), "revision", 0));
}

/* --- JSON helpers ------------------------------------------------------- */

json_t *kf_etcd_bytes(const void *data, size_t len)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    json_t *v;

    kf_base64_encode(&sb, data, len);
    v = json_stringn(sb.buf, sb.len);
    kf_strbuf_release(&sb);
    kf_assert(v);
    return v;
}

json_t *kf_etcd_str(const char *s)
{
    return kf_etcd_bytes(s, strlen(s));
}

json_t *kf_etcd_int(int64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return json_string(buf);
}

int64_t kf_etcd_get_int(const json_t *obj, const char *field, int64_t dflt)
{
    json_t *v = obj ? json_object_get(obj, field) : NULL;
    int64_t n;

    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v) && kf_parse_int64(json_string_value(v), &n) == 0)
        return n;
    return dflt;
}

int kf_etcd_get_bytes(const json_t *obj, const char *field, struct kf_strbuf *out)
{
    json_t *v = obj ? json_object_get(obj, field) : NULL;

    if (!v)
        return 0;
    if (!json_is_string(v))
        return -EBADMSG;
    return kf_base64_decode(out, json_string_value(v), json_string_length(v)) == -EINVAL ? -EBADMSG
                                                                                         : 0;
}

/* --- errors ------------------------------------------------------------- */

/* What etcd said, as kfleet's error code. *ret_retry: etcd did nothing and
 * another try (on this or another endpoint) may work. */
static int map_etcd_error(const char *msg, int grpc_code, bool *ret_retry, bool *ret_auth)
{
    static const struct {
        const char *text;
        int code;
        bool retry;
    } table[] = {
        { "required revision has been compacted", -KF_ECOMPACTED, false },
        { "required revision is a future revision", -EINVAL, false },
        { "duplicate key given in txn request", -EINVAL, false },
        { "too many operations in txn request", -KF_ETOOLARGE, false },
        { "request is too large", -KF_ETOOLARGE, false },
        { "larger than max", -KF_ETOOLARGE, false },
        { "key is not provided", -EINVAL, false },
        { "requested lease not found", -KF_ENOTFOUND, false },
        { "lease not found", -KF_ENOTFOUND, false },
        { "permission denied", -EPERM, false },
        { "authentication failed", -EPERM, false },
        { "user name is empty", -EPERM, false },
        { "user name not found", -EPERM, false },
        { "no leader", -KF_EUNAVAILABLE, true },
        { "not capable", -KF_EUNAVAILABLE, true },
        { "too many requests", -KF_EUNAVAILABLE, true },
        { "unhealthy cluster", -KF_EUNAVAILABLE, true },
    };

    *ret_retry = false;
    *ret_auth = strstr(msg, "invalid auth token") != NULL;
    if (*ret_auth) {
        *ret_retry = true;
        return -EPERM;
    }
    for (size_t i = 0; i < KF_ARRAY_SIZE(table); i++) {
        if (strstr(msg, table[i].text)) {
            *ret_retry = table[i].retry;
            return table[i].code;
        }
    }
    if (grpc_code == 14) /* Unavailable: may or may not have applied */
        return -KF_EUNAVAILABLE;
    if (grpc_code == 4) /* DeadlineExceeded */
        return -KF_ETIMEOUT;
    if (grpc_code == 3 || grpc_code == 11) /* InvalidArgument, OutOfRange */
        return -EINVAL;
    return -EIO;
}

/* The error object of a gateway answer: {"error":"..","code":N} for unary
 * calls, {"error":{"grpc_code":N,"message":".."}} in streams. */
static const char *error_of(const json_t *resp, int *ret_code)
{
    json_t *e = json_object_get(resp, "error");

    if (json_is_object(e)) {
        *ret_code = (int)kf_json_int(e, "grpc_code", 2);
        return kf_json_str(e, "message", "unknown error");
    }
    if (!e)
        return NULL;
    *ret_code = (int)kf_json_int(resp, "code", 2);
    return json_is_string(e) ? json_string_value(e) : kf_json_str(resp, "message", "unknown error");
}

/* --- requests ----------------------------------------------------------- */

static CURL *take_handle(struct kf_etcd *c)
{
    CURL *h = NULL;

    pthread_mutex_lock(&c->lock);
    if (c->npool)
        h = c->pool[--c->npool];
    pthread_mutex_unlock(&c->lock);
    if (!h)
        h = curl_easy_init();
    kf_assert(h);
    return h;
}

static void give_handle(struct kf_etcd *c, CURL *h)
{
    pthread_mutex_lock(&c->lock);
    if (c->npool < MAX_POOL) {
        c->pool[c->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h)
        curl_easy_cleanup(h);
}

static char *token_copy(struct kf_etcd *c)
{
    char *t;

    pthread_mutex_lock(&c->lock);
    t = xstrdup_or_null(c->token);
    pthread_mutex_unlock(&c->lock);
    return t;
}

/* Sets up h for a POST of body to endpoint + path. */
static struct curl_slist *setup(struct kf_etcd *c, CURL *h, const char *endpoint, const char *path,
                                const char *body, size_t len, const char *token, bool stream,
                                int timeout_ms)
{
    struct curl_slist *hdr = NULL;
    char *url = kf_xasprintf("%s%s", endpoint, path);
    const struct kf_http_opts o = {
        .protocols = "http,https",
        .ca_file = c->cfg.cacert,
        .cert_file = c->cfg.cert,
        .key_file = c->cfg.cert ? c->cfg.key : NULL,
        .connect_timeout_ms = KF_MIN(CONNECT_MS, timeout_ms),
        .timeout_ms = stream ? 0 : timeout_ms,
        .tcp_keepalive = true,
        .keepalive_idle_s = 10,
        .keepalive_intvl_s = 5,
    };

    curl_easy_reset(h);
    kf_http_setup(h, url, &o);
    free(url);
    kf_http_set_method(h, "POST", body, len);
    hdr = kf_http_header(hdr, "Content-Type: application/json");
    hdr = kf_http_header(hdr, "Expect:");
    if (stream) /* have etcd end the stream when its member loses the leader */
        hdr = kf_http_header(hdr, "Grpc-Metadata-hasleader: true");
    if (token)
        hdr = kf_http_header(hdr, "Authorization: %s", token);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    return hdr;
}

enum outcome {
    OUT_DONE,    /* an answer (success or an error etcd returned) */
    OUT_UNSENT,  /* the request never reached etcd */
    OUT_UNKNOWN, /* sent, no answer */
};

/* One POST to one endpoint. */
static enum outcome post_once(struct kf_etcd *c, const char *endpoint, const char *path,
                              const char *body, size_t len, const char *token, long *ret_status,
                              struct kf_strbuf *resp, struct kf_strbuf *err)
{
    CURL *h = take_handle(c);
    struct kf_strbuf b = KF_STRBUF_INIT;
    struct curl_slist *hdr =
        setup(c, h, endpoint, path, body, len, token, false, c->cfg.timeout_ms);
    CURLcode cr;
    long sent = 0;
    enum outcome out = OUT_DONE;

    b.cap = KF_ETCD_MAX_RESPONSE;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, kf_http_write_strbuf);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    cr = curl_easy_perform(h);
    if (cr != CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
        out = sent == 0 || cr == CURLE_COULDNT_CONNECT || cr == CURLE_COULDNT_RESOLVE_HOST ||
                      cr == CURLE_SSL_CONNECT_ERROR
                  ? OUT_UNSENT
                  : OUT_UNKNOWN;
        if (b.overflowed)
            kf_err(err, -KF_ETOOLARGE, "etcd's answer from \"%s\" is larger than %u bytes",
                   endpoint, KF_ETCD_MAX_RESPONSE);
        else
            kf_err(err, -KF_EUNAVAILABLE, "etcd at \"%s\": %s", endpoint, curl_easy_strerror(cr));
        kf_strbuf_release(&b);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, ret_status);
        *resp = b;
    }
    curl_slist_free_all(hdr);
    give_handle(c, h);
    return out;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static int authenticate(struct kf_etcd *c, const char *stale, struct kf_strbuf *err);

/* A call with a token obtained when the config has a user. The answer is
 * parsed into *ret; or, with raw, a 200 answer's body is moved into *raw
 * unread (other answers are errors, read as JSON as always). */
static int call(struct kf_etcd *c, const char *path, const char *body, size_t len, unsigned flags,
                bool auth, json_t **ret, struct kf_strbuf *raw, struct kf_strbuf *err)
{
    int n = (int)c->cfg.n_endpoints;
    int backoff = BACKOFF_MIN_MS, auth_retries = 0;
    int r = -KF_EUNAVAILABLE;
    uint64_t deadline = kf_mono_ns() + (uint64_t)c->cfg.timeout_ms * 1000000u;

    /* every endpoint at least RETRY_ROUNDS times, and on until the request
     * timeout has passed (an election takes a moment) */
    for (int a = 0; a < n * RETRY_ROUNDS || kf_mono_ns() < deadline; a++) {
        int i = current(c);
        struct kf_strbuf resp = KF_STRBUF_INIT;
        char *token = NULL;
        long status = 0;
        enum outcome out;
        json_t *v;
        json_error_t jerr;
        const char *emsg;
        int code = 0;
        bool retry, auth_failed;

        if (auth && c->cfg.user) {
            token = token_copy(c);
            if (!token) {
                r = authenticate(c, NULL, err);
                if (r < 0 && r != -KF_EUNAVAILABLE)
                    return r;
                token = token_copy(c);
            }
        }
        out = post_once(c, c->cfg.endpoints[i], path, body, len, token, &status, &resp, err);
        if (out != OUT_DONE) {
            free(token);
            endpoint_failed(c, i);
            if (out == OUT_UNKNOWN && !(flags & KF_ETCD_IDEMPOTENT))
                return -KF_ETIMEOUT;
            r = -KF_EUNAVAILABLE;
            if ((a + 1) % n == 0) {
                sleep_ms(backoff);
                backoff = KF_MIN(backoff * 2, BACKOFF_MAX_MS);
            }
            continue;
        }
        if (raw && status == 200) {
            free(token);
            kf_strbuf_release(raw);
            *raw = resp;
            return 0;
        }
        v = json_loadb(resp.buf, resp.len, 0, &jerr);
        kf_strbuf_release(&resp);
        if (!v || !json_is_object(v)) {
            json_decref(v);
            free(token);
            return kf_err(err, -EIO, "etcd at \"%s\" answered %ld with a body that is not JSON",
                          c->cfg.endpoints[i], status);
        }
        emsg = error_of(v, &code);
        if (!emsg && status == 200) {
            free(token);
            note_header(c, v);
            *ret = v;
            return 0;
        }
        if (!emsg)
            emsg = "no error message";
        r = map_etcd_error(emsg, code, &retry, &auth_failed);
        kf_err(err, r, "etcd at \"%s\": %s", c->cfg.endpoints[i], emsg);
        json_decref(v);
        if (auth_failed && auth && c->cfg.user && auth_retries++ < 2) {
            int ar = authenticate(c, token, err);

            free(token);
            if (ar < 0)
                return ar;
            a--;
            continue;
        }
        free(token);
        if (retry || (r == -KF_EUNAVAILABLE && (flags & KF_ETCD_IDEMPOTENT)) ||
            (r == -KF_ETIMEOUT && (flags & KF_ETCD_IDEMPOTENT))) {
            endpoint_failed(c, i);
            if ((a + 1) % n == 0) {
                sleep_ms(backoff);
                backoff = KF_MIN(backoff * 2, BACKOFF_MAX_MS);
            }
            continue;
        }
        if ((r == -KF_EUNAVAILABLE || r == -KF_ETIMEOUT) && !(flags & KF_ETCD_IDEMPOTENT))
            return -KF_ETIMEOUT;
        return r;
    }
    return r;
}

/* Gets a new token unless another thread already replaced `stale`. */
static int authenticate(struct kf_etcd *c, const char *stale, struct kf_strbuf *err)
{
    json_t *req, *resp = NULL;
    char *body;
    const char *tok;
    int r;

    pthread_mutex_lock(&c->lock);
    if (c->token && (!stale || strcmp(c->token, stale) != 0)) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);
    req = json_pack("{s:s, s:s}", "name", c->cfg.user, "password", c->cfg.password);
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    r = call(c, "/v3/auth/authenticate", body, strlen(body), KF_ETCD_IDEMPOTENT, false, &resp, NULL,
             err);
    memset(body, 0, strlen(body));
    free(body);
    if (r == -EPERM) {
        char *why = kf_xstrdup(err && err->len ? err->buf : "authentication failed");

        kf_err(err, -EPERM, "etcd refused user \"%s\": %s", c->cfg.user, why);
        free(why);
        return r;
    }
    if (r < 0)
        return r;
    tok = kf_json_str(resp, "token", NULL);
    if (!tok) {
        json_decref(resp);
        return kf_err(err, -EPERM,
                      "etcd gave user \"%s\" no token: is authentication enabled on the server?",
                      c->cfg.user);
    }
    pthread_mutex_lock(&c->lock);
    free(c->token);
    c->token = kf_xstrdup(tok);
    pthread_mutex_unlock(&c->lock);
    json_decref(resp);
    return 0;
}

int kf_etcd_call(struct kf_etcd *c, const char *path, json_t *req, unsigned flags, json_t **ret,
                 struct kf_strbuf *err)
{
    char *body = json_dumps(req, JSON_COMPACT);
    int r;

    kf_assert(body);
    r = call(c, path, body, strlen(body), flags, true, ret, NULL, err);
    free(body);
    return r;
}

int kf_etcd_call_raw(struct kf_etcd *c, const char *path, json_t *req, unsigned flags,
                     struct kf_strbuf *ret_body, struct kf_strbuf *err)
{
    char *body = json_dumps(req, JSON_COMPACT);
    int r;

    kf_assert(body);
    r = call(c, path, body, strlen(body), flags, true, NULL, ret_body, err);
    free(body);
    return r;
}

/* --- streams ------------------------------------------------------------ */

struct kf_etcd_stream *kf_etcd_stream_new(struct kf_etcd *c)
{
    struct kf_etcd_stream *st = kf_xcalloc(1, sizeof(*st));

    st->c = c;
    st->multi = curl_multi_init();
    kf_assert(st->multi);
    return st;
}

void kf_etcd_stream_free(struct kf_etcd_stream *st)
{
    if (!st)
        return;
    curl_multi_cleanup(st->multi);
    free(st);
}

void kf_etcd_stream_interrupt(struct kf_etcd_stream *st)
{
    __atomic_store_n(&st->interrupted, true, __ATOMIC_RELEASE);
    curl_multi_wakeup(st->multi);
}

/* State of one running stream, shared with the write callback. */
struct stream_run {
    struct kf_etcd *c;
    struct kf_strbuf line;
    int (*on_message)(void *arg, json_t *result);
    void *arg;
    int result; /* set when the callback ended the stream */
    bool ended;
    bool got_message;
    bool auth_expired;
    struct kf_strbuf *err;
    const char *endpoint;
};

#define MAX_STREAM_MESSAGE (512u * 1024 * 1024)

/* One line of the stream: {"result":{...}} or {"error":{...}}. */
static int stream_message(struct stream_run *sr, const char *buf, size_t len)
{
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, 0, &jerr);
    const char *emsg;
    int code = 0, r;

    if (!v || !json_is_object(v)) {
        json_decref(v);
        return kf_err(sr->err, -EIO, "etcd at \"%s\" streamed something that is not JSON",
                      sr->endpoint);
    }
    emsg = error_of(v, &code);
    if (emsg) {
        bool retry, auth;

        r = map_etcd_error(emsg, code, &retry, &auth);
        sr->auth_expired = auth;
        if (r == -KF_ETIMEOUT || retry)
            r = -KF_EUNAVAILABLE;
        kf_err(sr->err, r, "etcd at \"%s\": %s", sr->endpoint, emsg);
        json_decref(v);
        return r;
    }
    sr->got_message = true;
    note_header(sr->c, json_object_get(v, "result"));
    r = sr->on_message(sr->arg, json_object_get(v, "result"));
    json_decref(v);
    return r;
}

static size_t stream_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct stream_run *sr = arg;
    size_t n = size * nmemb;

    if (sr->ended)
        return 0;
    if (kf_strbuf_add(&sr->line, ptr, n) < 0) {
        sr->ended = true;
        sr->result =
            kf_err(sr->err, -KF_ETOOLARGE, "a message from etcd at \"%s\" is over %u bytes",
                   sr->endpoint, MAX_STREAM_MESSAGE);
        return 0;
    }
    for (;;) {
        char *nl = memchr(sr->line.buf, '\n', sr->line.len);
        size_t used;
        int r;

        if (!nl)
            break;
        used = (size_t)(nl - sr->line.buf) + 1;
        r = used > 1 ? stream_message(sr, sr->line.buf, used - 1) : 0;
        memmove(sr->line.buf, sr->line.buf + used, sr->line.len - used);
        kf_strbuf_setlen(&sr->line, sr->line.len - used);
        if (r != 0) {
            sr->ended = true;
            sr->result = r > 0 ? 0 : r;
            return 0;
        }
    }
    return n;
}

/* The end of the stream's transfer, when the multi handle reports it: sets
 * sr->ended and returns the run's result; r unchanged while it goes on. */
static int stream_check_done(CURLM *multi, CURL *h, struct stream_run *sr, int r)
{
    CURLMsg *m;
    int msgs;

    while ((m = curl_multi_info_read(multi, &msgs))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        if (m->data.result == CURLE_OK) {
            long status = 0;

            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            /* a unary-style error answer ends without a newline */
            if (sr->line.len > 0) {
                r = stream_message(sr, sr->line.buf, sr->line.len);
                if (r > 0)
                    r = 0;
                if (r == 0 && status != 200)
                    r = kf_err(sr->err, -KF_EUNAVAILABLE, "etcd at \"%s\" answered %ld",
                               sr->endpoint, status);
            } else {
                r = kf_err(sr->err, -KF_EUNAVAILABLE, "etcd at \"%s\" ended the stream",
                           sr->endpoint);
            }
        } else {
            r = kf_err(sr->err, -KF_EUNAVAILABLE, "stream from etcd at \"%s\": %s", sr->endpoint,
                       curl_easy_strerror(m->data.result));
        }
        sr->ended = true;
    }
    return r;
}

int kf_etcd_stream_run(struct kf_etcd_stream *st, const char *path, json_t *req,
                       int (*on_message)(void *arg, json_t *result), void *arg, int idle_ms,
                       int timeout_ms, struct kf_strbuf *err)
{
    struct kf_etcd *c = st->c;
    int i = current(c);
    struct stream_run sr = {
        .c = c,
        .line = KF_STRBUF_INIT,
        .on_message = on_message,
        .arg = arg,
        .err = err,
        .endpoint = c->cfg.endpoints[i],
    };
    char *body = NULL, *token = NULL;
    struct curl_slist *hdr;
    CURL *h;
    int64_t start = kf_mono_ms(), last = start;
    int r = 0;

    if (__atomic_exchange_n(&st->interrupted, false, __ATOMIC_ACQ_REL))
        return -EINTR;
    if (c->cfg.user) {
        token = token_copy(c);
        if (!token) {
            r = authenticate(c, NULL, err);
            if (r < 0)
                return r;
            token = token_copy(c);
        }
    }
    body = json_dumps(req, JSON_COMPACT);
    kf_assert(body);
    sr.line.cap = MAX_STREAM_MESSAGE;
    h = take_handle(c);
    hdr = setup(c, h, sr.endpoint, path, body, strlen(body), token, true, c->cfg.timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, stream_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sr);
    curl_multi_add_handle(st->multi, h);
    for (;;) {
        int running = 0, wait = 1000;
        int64_t now;

        curl_multi_perform(st->multi, &running);
        if (sr.got_message) {
            last = kf_mono_ms();
            sr.got_message = false;
        }
        if (sr.ended) {
            r = sr.result;
            break;
        }
        r = stream_check_done(st->multi, h, &sr, r);
        if (sr.ended)
            break;
        if (__atomic_exchange_n(&st->interrupted, false, __ATOMIC_ACQ_REL)) {
            r = -EINTR;
            break;
        }
        now = kf_mono_ms();
        if (timeout_ms > 0) {
            if (now - start >= timeout_ms) {
                r = kf_err(err, -KF_ETIMEOUT, "etcd at \"%s\" did not finish in %d ms", sr.endpoint,
                           timeout_ms);
                break;
            }
            wait = (int)KF_MIN(wait, timeout_ms - (now - start));
        }
        if (idle_ms > 0) {
            if (now - last >= idle_ms) {
                r = 1;
                break;
            }
            wait = (int)KF_MIN(wait, idle_ms - (now - last));
        }
        curl_multi_poll(st->multi, NULL, 0, wait > 0 ? wait : 1, NULL);
    }
    curl_multi_remove_handle(st->multi, h);
    curl_slist_free_all(hdr);
    /* a connection in the middle of a stream is not reusable */
    curl_easy_cleanup(h);
    kf_strbuf_release(&sr.line);
    free(body);
    if (sr.auth_expired)
        authenticate(c, token, NULL); /* the next run has a fresh token */
    else if (r == -KF_EUNAVAILABLE)
        endpoint_failed(c, i);
    free(token);
    return r;
}

/* --- leases ------------------------------------------------------------- */

int kf_etcd_lease_grant(struct kf_etcd *c, int64_t ttl_s, int64_t *ret_id, int64_t *ret_ttl,
                        struct kf_strbuf *err)
{
    json_t *req = json_pack("{s:o}", "TTL", kf_etcd_int(ttl_s)), *resp = NULL;
    int r = kf_etcd_call(c, "/v3/lease/grant", req, 0, &resp, err);

    json_decref(req);
    if (r < 0)
        return r;
    if (kf_etcd_get_int(resp, "ID", 0) == 0) {
        r = kf_err(err, -EIO, "etcd granted a lease without an ID: %s",
                   kf_json_str(resp, "error", "no reason given"));
        json_decref(resp);
        return r;
    }
    *ret_id = kf_etcd_get_int(resp, "ID", 0);
    if (ret_ttl)
        *ret_ttl = kf_etcd_get_int(resp, "TTL", 0);
    json_decref(resp);
    return 0;
}

static int keepalive_message(void *arg, json_t *result)
{
    int64_t *ttl = arg;

    *ttl = kf_etcd_get_int(result, "TTL", 0);
    return 1;
}

int kf_etcd_lease_keepalive(struct kf_etcd *c, int64_t id, int64_t *ret_ttl, struct kf_strbuf *err)
{
    struct kf_etcd_stream *st = kf_etcd_stream_new(c);
    json_t *req = json_pack("{s:o}", "ID", kf_etcd_int(id));
    int64_t ttl = 0;
    int r = -KF_EUNAVAILABLE;

    /* the gateway serves keep-alive as a stream: one request, one answer */
    for (size_t a = 0; a < c->cfg.n_endpoints * RETRY_ROUNDS && r == -KF_EUNAVAILABLE; a++)
        r = kf_etcd_stream_run(st, "/v3/lease/keepalive", req, keepalive_message, &ttl, 0,
                               c->cfg.timeout_ms, err);
    json_decref(req);
    kf_etcd_stream_free(st);
    if (r < 0)
        return r;
    if (ttl <= 0)
        return kf_err(err, -KF_ENOTFOUND, "etcd lease %llx has expired", (unsigned long long)id);
    if (ret_ttl)
        *ret_ttl = ttl;
    return 0;
}

int kf_etcd_lease_revoke(struct kf_etcd *c, int64_t id, struct kf_strbuf *err)
{
    json_t *req = json_pack("{s:o}", "ID", kf_etcd_int(id)), *resp = NULL;
    int r = kf_etcd_call(c, "/v3/lease/revoke", req, KF_ETCD_IDEMPOTENT, &resp, err);

    json_decref(req);
    json_decref(resp);
    return r;
}
