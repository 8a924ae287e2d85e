/* http.h: kfleet's one HTTP client, over libcurl.
 *
 * Two levels. kf_http_setup() and kf_http_set_method() set what every
 * kfleet request shares (URL, TLS files, timeouts, proxies, keep-alive,
 * method and body) on any easy handle, for the callers that drive curl
 * themselves: the runner's prober and the etcd client's watch streams run
 * multi handles. struct kf_http is one easy handle reused request after
 * request (so consecutive requests keep their connection), with the
 * response read into a kf_strbuf under its cap, or split into lines for
 * streams (watches). Library code: it does not log; errors are negative
 * errno with curl's words in the result.
 *
 * curl_global_init() is the program's (each main calls it once).
 */
#ifndef KF_HTTP_H
#define KF_HTTP_H

#include <curl/curl.h>

#include "kfleet/base.h"

struct kf_strbuf;

/* What a request's connection is allowed and bounded by. Zero is curl's
 * default for every field. Strings are borrowed for the call. */
struct kf_http_opts {
    const char *user_agent;
    const char *protocols; /* CURLOPT_PROTOCOLS_STR ("https", "http,https"), NULL: any */
    const char *ca_file;   /* NULL: the system's CAs */
    const char *cert_file; /* client certificate and key, NULL: none */
    const char *key_file;
    long connect_timeout_ms;
    long timeout_ms;        /* the whole exchange; 0: no limit */
    bool tcp_keepalive;     /* TCP keep-alive probes, after keepalive_idle_s ... */
    long keepalive_idle_s;  /* ... of silence (0: curl's 60), ... */
    long keepalive_intvl_s; /* ... every keepalive_intvl_s (0: curl's 60) */
    bool no_proxy;          /* ignore proxies from the environment */
    bool http11;            /* HTTP/1.1, never HTTP/2 */
    char *errbuf;           /* CURL_ERROR_SIZE bytes for curl's message, or NULL */
    /* Called as curl opens each socket (after name resolution), or NULL:
     * returning CURL_SOCKET_BAD refuses that address. */
    curl_opensocket_callback open_socket;
    void *open_socket_data;
};

/* Sets url and everything opts asks for on c (fresh, or after
 * curl_easy_reset), plus what kfleet always wants: no signals, no
 * redirects. */
void kf_http_setup(CURL *c, const char *url, const struct kf_http_opts *opts);

/* Sets the method (NULL: GET) and the request body on c (NULL: none; ""
 * with len 0 for an empty one). body is borrowed until the transfer ends.
 * HEAD asks for no response body. */
void kf_http_set_method(CURL *c, const char *method, const char *body, size_t len);

/* Appends "fmt..." as one header line to list; returns the new list.
 * Aborts when out of memory. The formatted copy is wiped before it is
 * freed (headers carry tokens). */
struct curl_slist *kf_http_header(struct curl_slist *list, const char *fmt, ...) KF_PRINTF(2, 3);

/* A write callback (CURLOPT_WRITEFUNCTION) that appends to the kf_strbuf
 * in its data; over the buffer's cap it fails the transfer with
 * CURLE_WRITE_ERROR and the buffer's `overflowed` set. */
size_t kf_http_write_strbuf(char *data, size_t size, size_t nmemb, void *sb);

/* The negative errno for a failed transfer: -ECONNREFUSED (nothing
 * listens), -ETIMEDOUT, -EHOSTUNREACH (name or proxy not resolved),
 * -ECANCELED (a callback aborted), -E2BIG (the write callback refused:
 * over a cap), else -EIO. */
int kf_http_errno(CURLcode code);

/* One request. */
struct kf_http_req {
    const char *method; /* NULL: GET */
    const char *url;
    struct curl_slist *headers; /* borrowed, or NULL */
    const char *body;           /* borrowed, or NULL */
    size_t body_len;
    /* The response body is appended here; its cap bounds it (over it the
     * request fails with -E2BIG), unless resp_truncate: then the start is
     * kept and the rest read and dropped. NULL: the body is dropped. */
    struct kf_strbuf *resp;
    bool resp_truncate;
    /* Streams: with line set, the body is split at '\n' and each non-empty
     * line handed to line (resp, required, holds the partial line: its cap
     * bounds a line). line returning non-zero ends the transfer, which then
     * counts as done (result.stopped). With line_2xx_only, the body of an
     * answer that is not 2xx goes to resp whole instead. A last line
     * without '\n' stays in resp. */
    int (*line)(void *ctx, const char *s, size_t n);
    void *line_ctx;
    bool line_2xx_only;
    const volatile bool *stop; /* set by another thread: the transfer ends (-ECANCELED) */
    long idle_s;               /* > 0: receiving nothing this long fails the transfer */
};

struct kf_http_result {
    long status;                 /* the HTTP status; 0: none came */
    CURLcode code;               /* curl's result */
    bool stopped;                /* line asked to stop */
    long request_size;           /* bytes sent (0: the request never left) */
    char error[CURL_ERROR_SIZE]; /* curl's words when code is not CURLE_OK */
};

/* One easy handle that keeps its connection between requests; one request
 * at a time (not thread-safe). new aborts when out of memory. free accepts
 * NULL. */
struct kf_http;
struct kf_http *kf_http_new(void);
void kf_http_free(struct kf_http *h);
/* The easy handle, for a caller that drives it itself (a multi handle). */
CURL *kf_http_easy(struct kf_http *h);

/* Runs req with opts on h and fills *ret (always). Returns 0 when an
 * answer came (whatever its status) or line stopped the stream, else the
 * negative errno of kf_http_errno(). */
int kf_http_request(struct kf_http *h, const struct kf_http_opts *opts,
                    const struct kf_http_req *req, struct kf_http_result *ret);

#endif
