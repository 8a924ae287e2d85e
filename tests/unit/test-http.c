/* test-http.c: base's HTTP client (http.h) against a tiny HTTP/1.1 server
 * this test runs on a loopback port of its own, in a thread: methods and
 * bodies, headers, the response cap (fail or truncate), streams split into
 * lines (stopped by the callback, non-2xx bodies kept whole), a refused
 * connection, and the socket-open callback refusing an address.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kfleet/base.h"
#include "kfleet/http.h"
#include "kfleet/strbuf.h"

/* ---- the server: one request per connection, then close ---- */

static int listen_fd = -1;
static int port;
static pthread_t server_thread;

static void send_answer(int fd, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     strlen(body));

    (void)!write(fd, head, (size_t)n);
    (void)!write(fd, body, strlen(body));
}

/* Reads one request: its line, one header's value and its body. */
static void read_request(int fd, char *req, size_t size)
{
    size_t len = 0;
    char *end = NULL;

    while (len + 1 < size) {
        ssize_t n = read(fd, req + len, size - 1 - len);
        const char *cl;

        if (n <= 0)
            break;
        len += (size_t)n;
        req[len] = '\0';
        end = strstr(req, "\r\n\r\n");
        if (!end)
            continue;
        cl = strcasestr(req, "Content-Length:");
        if (!cl || (size_t)(end + 4 - req) + strtoul(cl + 15, NULL, 10) <= len)
            break;
    }
    req[len] = '\0';
}

static void answer(int fd)
{
    char req[8192], method[16] = "", path[256] = "", body[512];
    const char *hdr, *content;
    char test[64] = "-";

    read_request(fd, req, sizeof(req));
    sscanf(req, "%15s %255s", method, path);
    hdr = strcasestr(req, "\r\nX-Test: ");
    if (hdr)
        sscanf(hdr + 10, "%63[^\r]", test);
    content = strstr(req, "\r\n\r\n");
    content = content ? content + 4 : "";
    if (strcmp(path, "/echo") == 0) {
        snprintf(body, sizeof(body), "%s %s %s", method, test, content);
        send_answer(fd, 200, body);
    } else if (strcmp(path, "/big") == 0) {
        memset(body, 'x', 300);
        body[300] = '\0';
        send_answer(fd, 200, body);
    } else if (strcmp(path, "/lines") == 0) {
        send_answer(fd, 200, "a\nbb\n\nccc\ntail");
    } else {
        send_answer(fd, 503, "{\"message\":\"away\"}\n{}\n");
    }
}

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);

        if (fd < 0)
            return NULL; /* the listener was shut down */
        answer(fd);
        close(fd);
    }
}

static int server_start(void **state)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);

    (void)state;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(listen_fd, 16) < 0 || getsockname(listen_fd, (struct sockaddr *)&sa, &sl) < 0)
        return -1;
    port = ntohs(sa.sin_port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return pthread_create(&server_thread, NULL, serve, NULL) == 0 ? 0 : -1;
}

static int server_stop(void **state)
{
    (void)state;
    shutdown(listen_fd, SHUT_RDWR);
    pthread_join(server_thread, NULL);
    close(listen_fd);
    curl_global_cleanup();
    return 0;
}

static char *url_of(const char *path)
{
    return kf_xasprintf("http://127.0.0.1:%d%s", port, path);
}

static const struct kf_http_opts opts = { .timeout_ms = 5000, .no_proxy = true };

/* One request on a fresh client; the answer's body in *resp. */
static int run(struct kf_http *h, struct kf_http_req *req, const char *path, struct kf_strbuf *resp,
               struct kf_http_result *res)
{
    char *url = url_of(path);
    int r;

    req->url = url;
    req->resp = resp;
    r = kf_http_request(h, &opts, req, res);
    free(url);
    return r;
}

static void test_methods_and_bodies(void **state)
{
    struct kf_http *h = kf_http_new();
    struct kf_strbuf resp = KF_STRBUF_INIT;
    struct kf_http_result res;
    struct kf_http_req get = { 0 };
    struct kf_http_req post = { .method = "POST", .body = "hello", .body_len = 5 };
    struct kf_http_req empty = { .method = "POST", .body = "", .body_len = 0 };
    struct kf_http_req del = { .method = "DELETE" };

    (void)state;
    get.headers = kf_http_header(NULL, "X-Test: %s", "token-1");
    assert_int_equal(run(h, &get, "/echo", &resp, &res), 0);
    assert_int_equal(res.status, 200);
    assert_true(res.request_size > 0);
    assert_string_equal(resp.buf, "GET token-1 ");
    curl_slist_free_all(get.headers);
    get.headers = NULL;
    kf_strbuf_reset(&resp);
    assert_int_equal(run(h, &post, "/echo", &resp, &res), 0);
    assert_string_equal(resp.buf, "POST - hello");
    kf_strbuf_reset(&resp);
    assert_int_equal(run(h, &empty, "/echo", &resp, &res), 0);
    assert_string_equal(resp.buf, "POST - ");
    kf_strbuf_reset(&resp);
    assert_int_equal(run(h, &del, "/echo", &resp, &res), 0);
    assert_string_equal(resp.buf, "DELETE - ");
    kf_strbuf_reset(&resp);
    /* a status is an answer, not an error */
    assert_int_equal(run(h, &get, "/gone", &resp, &res), 0);
    assert_int_equal(res.status, 503);
    kf_strbuf_release(&resp);
    kf_http_free(h);
}

static void test_response_cap(void **state)
{
    struct kf_http *h = kf_http_new();
    struct kf_strbuf resp = KF_STRBUF_INIT;
    struct kf_http_result res;
    struct kf_http_req req = { 0 };

    (void)state;
    resp.cap = 100;
    assert_int_equal(run(h, &req, "/big", &resp, &res), -E2BIG);
    assert_true(resp.overflowed);
    assert_int_equal(res.code, CURLE_WRITE_ERROR);
    kf_strbuf_release(&resp);
    resp.overflowed = false;
    req.resp_truncate = true;
    assert_int_equal(run(h, &req, "/big", &resp, &res), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(resp.len, 100);
    kf_strbuf_release(&resp);
    /* no buffer: the body is read and dropped */
    assert_int_equal(run(h, &req, "/big", NULL, &res), 0);
    assert_int_equal(res.status, 200);
    kf_http_free(h);
}

struct lines {
    char got[8][16];
    int n;
    int stop_at; /* 1-based; 0: never */
};

static int on_line(void *ctx, const char *s, size_t n)
{
    struct lines *l = ctx;

    snprintf(l->got[l->n], sizeof(l->got[0]), "%.*s", (int)n, s);
    return ++l->n == l->stop_at;
}

static void test_lines(void **state)
{
    struct kf_http *h = kf_http_new();
    struct kf_strbuf pending = KF_STRBUF_INIT;
    struct kf_http_result res;
    struct lines l = { .n = 0 };
    struct kf_http_req req = { .line = on_line, .line_ctx = &l };

    (void)state;
    assert_int_equal(run(h, &req, "/lines", &pending, &res), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.got[0], "a");
    assert_string_equal(l.got[1], "bb");
    assert_string_equal(l.got[2], "ccc");
    assert_string_equal(pending.buf, "tail"); /* no '\n': not a line */
    assert_false(res.stopped);
    kf_strbuf_reset(&pending);
    l = (struct lines){ .stop_at = 2 };
    assert_int_equal(run(h, &req, "/lines", &pending, &res), 0);
    assert_true(res.stopped);
    assert_int_equal(l.n, 2);
    kf_strbuf_reset(&pending);
    /* not 2xx: the body whole, no lines */
    l = (struct lines){ .n = 0 };
    req.line_2xx_only = true;
    assert_int_equal(run(h, &req, "/gone", &pending, &res), 0);
    assert_int_equal(res.status, 503);
    assert_int_equal(l.n, 0);
    assert_string_equal(pending.buf, "{\"message\":\"away\"}\n{}\n");
    /* a line over the buffer's cap fails the stream */
    kf_strbuf_release(&pending);
    pending.cap = 2;
    req.line_2xx_only = false;
    assert_int_equal(run(h, &req, "/lines", &pending, &res), -E2BIG);
    kf_strbuf_release(&pending);
    kf_http_free(h);
}

static curl_socket_t refuse_socket(void *data, curlsocktype purpose, struct curl_sockaddr *sa)
{
    (void)purpose, (void)sa;
    ++*(int *)data;
    return CURL_SOCKET_BAD;
}

static void test_refused(void **state)
{
    struct kf_http *h = kf_http_new();
    struct kf_http_result res;
    int calls = 0;
    struct kf_http_opts o = opts;
    struct kf_http_req req = { .url = "http://127.0.0.1:1/" };
    char *url = url_of("/echo");

    (void)state;
    assert_int_equal(kf_http_request(h, &opts, &req, &res), -ECONNREFUSED);
    assert_int_equal(res.status, 0);
    assert_true(res.error[0] != '\0');
    /* the socket-open callback sees the address and may refuse it */
    o.open_socket = refuse_socket;
    o.open_socket_data = &calls;
    req.url = url;
    assert_true(kf_http_request(h, &o, &req, &res) < 0);
    assert_true(calls >= 1);
    assert_int_equal(res.status, 0);
    free(url);
    kf_http_free(h);
}

static void test_errno(void **state)
{
    (void)state;
    assert_int_equal(kf_http_errno(CURLE_COULDNT_CONNECT), -ECONNREFUSED);
    assert_int_equal(kf_http_errno(CURLE_OPERATION_TIMEDOUT), -ETIMEDOUT);
    assert_int_equal(kf_http_errno(CURLE_COULDNT_RESOLVE_HOST), -EHOSTUNREACH);
    assert_int_equal(kf_http_errno(CURLE_COULDNT_RESOLVE_PROXY), -EHOSTUNREACH);
    assert_int_equal(kf_http_errno(CURLE_ABORTED_BY_CALLBACK), -ECANCELED);
    assert_int_equal(kf_http_errno(CURLE_WRITE_ERROR), -E2BIG);
    assert_int_equal(kf_http_errno(CURLE_SSL_CONNECT_ERROR), -EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods_and_bodies),
        cmocka_unit_test(test_response_cap),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_errno),
    };

    return cmocka_run_group_tests(tests, server_start, server_stop);
}
