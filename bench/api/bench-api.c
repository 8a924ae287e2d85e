/* bench-api.c: the load generator of bench/api (run by bench/api/run).
 *
 * A small HTTP/1.1 client of its own (blocking keep-alive connections, one
 * per thread; Content-Length and chunked bodies) so that the client costs
 * little next to the server on a 2-core machine. Modes:
 *
 *   create URL N CONNS              POST N GuestClusters from CONNS connections
 *   get URL N CONNS SECONDS [RATE]  GET random ones of the N from one thread over
 *                                   CONNS connections: each with one request in
 *                                   flight, or RATE requests/s in all (latency from
 *                                   when each was due)
 *   list URL N REPS                 LIST all GuestClusters REPS times
 *   watch URL WATCHERS WRITES RATE  WATCHERS watches; WRITES patches at RATE/s;
 *                                   latency from before each write is sent to
 *                                   its event's arrival at each watcher
 *   etcd-put URL N CONNS BYTES      etcd v3 JSON gateway: PUT N values of BYTES
 *   etcd-get URL N CONNS SECONDS [RATE]  range of one random key, the same way
 *   etcd-range URL N REPS           range of the whole prefix
 *   etcd-watch URL WATCHERS WRITES RATE  the watch fan-out on etcd's gateway:
 *                                   WATCHERS watch streams of one key; WRITES
 *                                   puts of it at RATE/s, latency measured the
 *                                   same way (the time is in the value)
 *
 * URL is http://HOST:PORT. $BENCH_TOKEN, if set, is sent as a bearer token;
 * $BENCH_DUMP=FILE makes watch write every latency (ns, arrival order).
 * Each mode prints one human line and one "RESULT key=value ..." line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/base64.h"
#include "kfleet/strbuf.h"

#define GC_PATH "/apis/kfleet.io/v1/guestclusters"

static char host[256];
static int port;
static const char *token;

static void die(const char *fmt, ...) KF_PRINTF(1, 2) KF_NORETURN;
static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("bench-api: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void parse_url(const char *url)
{
    const char *p = url, *colon;
    int64_t v;

    if (!kf_str_has_prefix(p, "http://"))
        die("URL must be http://HOST:PORT, not \"%s\"", url);
    p += 7;
    colon = strrchr(p, ':');
    if (!colon || (size_t)(colon - p) >= sizeof(host))
        die("URL must be http://HOST:PORT, not \"%s\"", url);
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    if (kf_parse_int64(colon + 1, &v) < 0 || v <= 0 || v > 65535)
        die("bad port in \"%s\"", url);
    port = (int)v;
}

static int64_t arg_int(const char *s)
{
    int64_t v;

    if (kf_parse_int64(s, &v) < 0 || v < 0)
        die("\"%s\" is not a count", s);
    return v;
}

/* --- connections ----------------------------------------------------------- */

struct conn {
    int fd;
    struct kf_strbuf in;
    size_t pos;
};

static int dial(void)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res;
    char ports[16];
    int fd, one = 1;

    snprintf(ports, sizeof(ports), "%d", port);
    if (getaddrinfo(host, ports, &hints, &res) != 0)
        die("cannot resolve %s", host);
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0)
        die("cannot connect to %s:%d: %s", host, port, strerror(errno));
    freeaddrinfo(res);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void conn_open(struct conn *c)
{
    c->fd = dial();
    kf_strbuf_init(&c->in, 64 * 1024);
    c->pos = 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    kf_strbuf_release(&c->in);
}

static void send_all(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("send: %s", strerror(errno));
        }
        buf += w;
        n -= (size_t)w;
    }
}

/* Reads more bytes into c->in; dies on EOF. */
static void fill(struct conn *c)
{
    char buf[65536];
    ssize_t r;

    do
        r = recv(c->fd, buf, sizeof(buf), 0);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        die("the server closed the connection (%s)", r < 0 ? strerror(errno) : "EOF");
    kf_strbuf_add(&c->in, buf, (size_t)r);
}

/* A line ending in CRLF starting at c->pos; returns its length (without
 * CRLF) and advances pos past it. */
static size_t read_line(struct conn *c, const char **ret)
{
    for (;;) {
        char *nl = memmem(c->in.buf + c->pos, c->in.len - c->pos, "\r\n", 2);

        if (nl) {
            size_t n = (size_t)(nl - (c->in.buf + c->pos));

            *ret = c->in.buf + c->pos;
            c->pos += n + 2;
            return n;
        }
        fill(c);
    }
}

static void need(struct conn *c, size_t n)
{
    while (c->in.len - c->pos < n)
        fill(c);
}

/* Reads one response; the body goes into body (if not NULL). */
static int read_response(struct conn *c, struct kf_strbuf *body)
{
    const char *line;
    size_t n;
    int status;
    int64_t clen = -1;
    bool chunked = false;

    n = read_line(c, &line);
    if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0)
        die("bad status line");
    status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    while ((n = read_line(c, &line)) > 0) {
        if (n > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
            char tmp[32];
            size_t k = KF_MIN(n - 15, sizeof(tmp) - 1);

            memcpy(tmp, line + 15, k);
            tmp[k] = '\0';
            clen = strtoll(tmp, NULL, 10);
        } else if (n > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0 &&
                   memmem(line, n, "chunked", 7)) {
            chunked = true;
        }
    }
    if (chunked) {
        for (;;) {
            size_t size;

            read_line(c, &line);
            size = strtoul(line, NULL, 16);
            need(c, size + 2);
            if (body)
                kf_strbuf_add(body, c->in.buf + c->pos, size);
            c->pos += size + 2;
            if (!size)
                break;
        }
    } else if (clen > 0) {
        need(c, (size_t)clen);
        if (body)
            kf_strbuf_add(body, c->in.buf + c->pos, (size_t)clen);
        c->pos += (size_t)clen;
    }
    /* drop what was consumed */
    memmove(c->in.buf, c->in.buf + c->pos, c->in.len - c->pos);
    kf_strbuf_setlen(&c->in, c->in.len - c->pos);
    c->pos = 0;
    return status;
}

static int request(struct conn *c, const char *method, const char *path, const char *ctype,
                   const char *body, size_t blen, struct kf_strbuf *resp)
{
    struct kf_strbuf req = KF_STRBUF_INIT;
    int status;

    kf_strbuf_addf(&req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/json\r\n", method,
                   path, host, port);
    if (token)
        kf_strbuf_addf(&req, "Authorization: Bearer %s\r\n", token);
    if (body)
        kf_strbuf_addf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, blen);
    kf_strbuf_addstr(&req, "\r\n");
    if (body)
        kf_strbuf_add(&req, body, blen);
    send_all(c->fd, req.buf, req.len);
    kf_strbuf_release(&req);
    status = read_response(c, resp);
    return status;
}

/* --- statistics ------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    return kf_mono_ns();
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

struct samples {
    uint64_t *v;
    size_t n, alloc;
};

static void sample_add(struct samples *s, uint64_t v)
{
    KF_GROW(s->v, s->alloc, s->n);
    s->v[s->n++] = v;
}

static double pct_ms(struct samples *s, double p)
{
    size_t i;

    if (!s->n)
        return 0;
    i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
    return (double)s->v[i] / 1e6;
}

static void samples_merge(struct samples *into, struct samples *from)
{
    for (size_t i = 0; i < from->n; i++)
        sample_add(into, from->v[i]);
    free(from->v);
    from->v = NULL;
    from->n = from->alloc = 0;
}

/* --- objects ---------------------------------------------------------------- */

static void gc_body(struct kf_strbuf *out, int64_t i)
{
    kf_strbuf_addf(out,
                   "{\"apiVersion\":\"kfleet.io/v1\",\"kind\":\"GuestCluster\",\"metadata\":{"
                   "\"name\":\"bench-%06lld\",\"labels\":{\"bench\":\"api\",\"shard\":\"s%lld\"}},"
                   "\"spec\":{\"region\":\"cn-hangzhou\",\"profile\":\"standard\",\"version\":"
                   "\"1.37\",\"expectedNodes\":%lld,\"network\":{\"vpc\":\"vpc-%lld\"},"
                   "\"maintenanceWindow\":{\"start\":\"02:00\",\"duration\":\"4h\"}}}",
                   (long long)i, (long long)(i % 16), (long long)(3 + i % 500),
                   (long long)(i % 64));
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(struct kf_strbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;

        if (i + 1 < n)
            v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        kf_strbuf_addch(out, b64chars[(v >> 18) & 63]);
        kf_strbuf_addch(out, b64chars[(v >> 12) & 63]);
        kf_strbuf_addch(out, i + 1 < n ? b64chars[(v >> 6) & 63] : '=');
        kf_strbuf_addch(out, i + 2 < n ? b64chars[v & 63] : '=');
    }
}

static void etcd_key(struct kf_strbuf *out, int64_t i)
{
    char key[64];

    snprintf(key, sizeof(key), "/bench/guestclusters/bench-%06lld", (long long)i);
    base64(out, key, strlen(key));
}

/* --- workers ---------------------------------------------------------------- */

enum mode { M_CREATE, M_GET, M_ETCD_PUT, M_ETCD_GET };

struct work {
    enum mode mode;
    int64_t n;
    int64_t next; /* atomic */
    uint64_t until_ns;
    size_t value_bytes;
    int64_t errors; /* atomic */
};

struct worker {
    struct work *w;
    pthread_t thread;
    struct samples lat;
    unsigned int seed;
};

static void one_request(struct worker *wk, struct conn *c, int64_t i)
{
    struct work *w = wk->w;
    struct kf_strbuf body = KF_STRBUF_INIT, resp = KF_STRBUF_INIT;
    char path[128];
    int status, want = 200;
    uint64_t t0;

    switch (w->mode) {
    case M_CREATE:
        gc_body(&body, i);
        t0 = now_ns();
        status = request(c, "POST", GC_PATH, "application/json", body.buf, body.len, &resp);
        want = 201;
        break;
    case M_GET:
        snprintf(path, sizeof(path), GC_PATH "/bench-%06lld", (long long)i);
        t0 = now_ns();
        status = request(c, "GET", path, NULL, NULL, 0, &resp);
        break;
    case M_ETCD_PUT: {
        struct kf_strbuf value = KF_STRBUF_INIT;

        gc_body(&value, i);
        while (value.len < w->value_bytes)
            kf_strbuf_addch(&value, ' ');
        kf_strbuf_addstr(&body, "{\"key\":\"");
        etcd_key(&body, i);
        kf_strbuf_addstr(&body, "\",\"value\":\"");
        base64(&body, value.buf, value.len);
        kf_strbuf_addstr(&body, "\"}");
        kf_strbuf_release(&value);
        t0 = now_ns();
        status = request(c, "POST", "/v3/kv/put", "application/json", body.buf, body.len, &resp);
        break;
    }
    case M_ETCD_GET:
    default:
        kf_strbuf_addstr(&body, "{\"key\":\"");
        etcd_key(&body, i);
        kf_strbuf_addstr(&body, "\"}");
        t0 = now_ns();
        status = request(c, "POST", "/v3/kv/range", "application/json", body.buf, body.len, &resp);
        if (status == 200 && !strstr(resp.buf, "\"kvs\""))
            status = 404;
        break;
    }
    sample_add(&wk->lat, now_ns() - t0);
    if (status != want) {
        if (__atomic_add_fetch(&w->errors, 1, __ATOMIC_RELAXED) <= 3)
            fprintf(stderr, "bench-api: HTTP %d: %.300s\n", status, resp.buf);
    }
    kf_strbuf_release(&body);
    kf_strbuf_release(&resp);
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct work *w = wk->w;
    struct conn c;

    conn_open(&c);
    if (w->mode == M_CREATE || w->mode == M_ETCD_PUT) {
        int64_t i;

        while ((i = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED)) < w->n)
            one_request(wk, &c, i);
    } else {
        while (now_ns() < w->until_ns)
            one_request(wk, &c, (int64_t)(rand_r(&wk->seed) % (unsigned)w->n));
    }
    conn_close(&c);
    return NULL;
}

static void run_workers(enum mode mode, int64_t n, int conns, double seconds, size_t value_bytes,
                        const char *what)
{
    struct work w = { .mode = mode, .n = n, .value_bytes = value_bytes };
    struct worker *wks = kf_xcalloc((size_t)conns, sizeof(*wks));
    struct samples all = { 0 };
    uint64_t t0, t1;
    double secs;

    t0 = now_ns();
    w.until_ns = t0 + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < conns; i++) {
        wks[i].w = &w;
        wks[i].seed = (unsigned)i * 7919u + 1;
        pthread_create(&wks[i].thread, NULL, worker_main, &wks[i]);
    }
    for (int i = 0; i < conns; i++) {
        pthread_join(wks[i].thread, NULL);
        samples_merge(&all, &wks[i].lat);
    }
    t1 = now_ns();
    secs = (double)(t1 - t0) / 1e9;
    qsort(all.v, all.n, sizeof(*all.v), cmp_u64);
    printf("%s: %zu requests in %.2f s = %.0f/s from %d connections; latency p50 %.2f ms, p99 "
           "%.2f ms, p99.9 %.2f ms, max %.2f ms; %lld errors\n",
           what, all.n, secs, (double)all.n / secs, conns, pct_ms(&all, 50), pct_ms(&all, 99),
           pct_ms(&all, 99.9), pct_ms(&all, 100), (long long)w.errors);
    printf("RESULT mode=%s n=%zu seconds=%.3f rate=%.1f conns=%d p50_ms=%.3f p99_ms=%.3f "
           "p999_ms=%.3f max_ms=%.3f errors=%lld\n",
           what, all.n, secs, (double)all.n / secs, conns, pct_ms(&all, 50), pct_ms(&all, 99),
           pct_ms(&all, 99.9), pct_ms(&all, 100), (long long)w.errors);
    free(all.v);
    free(wks);
    if (w.errors)
        exit(1);
}

/* --- closed loop on one thread ---------------------------------------------
 *
 * GET latency with many clients is measured by one thread driving CONNS
 * connections through epoll, each with one request in flight (a closed
 * loop): 64 client threads on a 2-core machine would measure the
 * scheduler more than the server. */

/* The length of the complete response at the start of buf, 0 if it is not
 * complete yet, -1 if it is not HTTP. */
static ssize_t parse_response(const char *buf, size_t len, int *status)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4), *p;
    size_t head, pos;

    if (!end)
        return 0;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    head = (size_t)(end - buf) + 4;
    p = memmem(buf, head, "\r\nContent-Length:", 17);
    if (!p)
        p = memmem(buf, head, "\r\ncontent-length:", 17);
    if (p) {
        size_t clen = strtoul(p + 17, NULL, 10);

        return len >= head + clen ? (ssize_t)(head + clen) : 0;
    }
    /* chunked */
    pos = head;
    for (;;) {
        const char *nl = memmem(buf + pos, len - pos, "\r\n", 2);
        size_t size;

        if (!nl)
            return 0;
        size = strtoul(buf + pos, NULL, 16);
        pos = (size_t)(nl - buf) + 2;
        if (len < pos + size + 2)
            return 0;
        pos += size + 2;
        if (!size)
            return (ssize_t)pos;
    }
}

struct loop_conn {
    int fd;
    struct kf_strbuf in;
    uint64_t t0;       /* when the request in flight was due */
    uint64_t next_due; /* paced: when the next request is due */
    bool waiting;      /* paced: idle until next_due */
};

static void loop_send(struct loop_conn *lc, enum mode mode, int64_t i)
{
    struct kf_strbuf req = KF_STRBUF_INIT, body = KF_STRBUF_INIT;

    if (mode == M_GET) {
        kf_strbuf_addf(&req, "GET " GC_PATH "/bench-%06lld HTTP/1.1\r\nHost: %s:%d\r\n",
                       (long long)i, host, port);
    } else {
        kf_strbuf_addstr(&body, "{\"key\":\"");
        etcd_key(&body, i);
        kf_strbuf_addstr(&body, "\"}");
        kf_strbuf_addf(&req,
                       "POST /v3/kv/range HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: "
                       "application/json\r\nContent-Length: %zu\r\n",
                       host, port, body.len);
    }
    if (token)
        kf_strbuf_addf(&req, "Authorization: Bearer %s\r\n", token);
    kf_strbuf_addstr(&req, "\r\n");
    kf_strbuf_add(&req, body.buf, body.len);
    if (!lc->next_due)
        lc->t0 = now_ns();
    send_all(lc->fd, req.buf, req.len);
    kf_strbuf_release(&req);
    kf_strbuf_release(&body);
}

/* rate 0: a closed loop (each connection sends its next request when the
 * answer arrives). rate > 0: requests are due at rate/s spread over the
 * connections, and latency counts from when a request was due, not when it
 * could be sent, so a stall is not hidden (no coordinated omission). */
static void run_closed_loop(enum mode mode, int64_t n, int conns, double seconds, double rate,
                            const char *what)
{
    struct loop_conn *lcs = kf_xcalloc((size_t)conns, sizeof(*lcs));
    struct samples lat = { 0 };
    int ep = epoll_create1(EPOLL_CLOEXEC);
    unsigned int seed = 12345;
    uint64_t t0 = now_ns(), until = t0 + (uint64_t)(seconds * 1e9), t1;
    uint64_t interval = rate > 0 ? (uint64_t)((double)conns / rate * 1e9) : 0;
    int64_t errors = 0;
    int active = conns;
    double secs;

    for (int i = 0; i < conns; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &lcs[i] };

        lcs[i].fd = dial();
        kf_strbuf_init(&lcs[i].in, 16 * 1024);
        epoll_ctl(ep, EPOLL_CTL_ADD, lcs[i].fd, &ev);
        if (interval) {
            /* spread the first requests over one interval */
            lcs[i].next_due = t0 + interval * (uint64_t)i / (uint64_t)conns;
            lcs[i].waiting = true;
        } else {
            loop_send(&lcs[i], mode, (int64_t)(rand_r(&seed) % (unsigned)n));
        }
    }
    while (active > 0) {
        struct epoll_event evs[256];
        uint64_t now = now_ns(), wake = UINT64_MAX;
        int k, timeout = 5000;

        for (int i = 0; interval && i < conns; i++) {
            if (!lcs[i].waiting)
                continue;
            if (lcs[i].next_due <= now) {
                lcs[i].waiting = false;
                lcs[i].t0 = lcs[i].next_due;
                loop_send(&lcs[i], mode, (int64_t)(rand_r(&seed) % (unsigned)n));
            } else if (lcs[i].next_due < wake) {
                wake = lcs[i].next_due;
            }
        }
        if (wake != UINT64_MAX)
            timeout = (int)((wake - now) / 1000000ull);
        k = epoll_wait(ep, evs, 256, timeout);
        if (k < 0 && errno != EINTR)
            die("%s: epoll_wait: %s", what, strerror(errno));
        if (k == 0 && wake == UINT64_MAX)
            die("%s: no answer within 5 s", what);
        for (int e = 0; e < k; e++) {
            struct loop_conn *lc = evs[e].data.ptr;
            char buf[65536];
            ssize_t r = recv(lc->fd, buf, sizeof(buf), 0), used;
            int status = 0;

            if (r <= 0)
                die("%s: the server closed a connection", what);
            kf_strbuf_add(&lc->in, buf, (size_t)r);
            used = parse_response(lc->in.buf, lc->in.len, &status);
            if (used < 0)
                die("%s: not an HTTP response", what);
            if (!used)
                continue;
            now = now_ns();
            sample_add(&lat, now - lc->t0);
            if (status != 200 ||
                (mode == M_ETCD_GET && !memmem(lc->in.buf, (size_t)used, "\"kvs\"", 5)))
                errors++;
            memmove(lc->in.buf, lc->in.buf + used, lc->in.len - (size_t)used);
            kf_strbuf_setlen(&lc->in, lc->in.len - (size_t)used);
            if (now >= until) {
                active--;
            } else if (interval) {
                lc->next_due += interval;
                lc->waiting = true;
            } else {
                loop_send(lc, mode, (int64_t)(rand_r(&seed) % (unsigned)n));
            }
        }
    }
    t1 = now_ns();
    secs = (double)(t1 - t0) / 1e9;
    qsort(lat.v, lat.n, sizeof(*lat.v), cmp_u64);
    printf("%s: %zu requests in %.2f s = %.0f/s, %d connections, %s; latency p50 %.2f ms, p99 "
           "%.2f ms, p99.9 %.2f ms, max %.2f ms; %lld errors\n",
           what, lat.n, secs, (double)lat.n / secs, conns,
           interval ? "paced" : "each with one request in flight", pct_ms(&lat, 50),
           pct_ms(&lat, 99), pct_ms(&lat, 99.9), pct_ms(&lat, 100), (long long)errors);
    printf("RESULT mode=%s n=%zu seconds=%.3f rate=%.1f target_rate=%.0f conns=%d p50_ms=%.3f "
           "p99_ms=%.3f p999_ms=%.3f max_ms=%.3f errors=%lld\n",
           what, lat.n, secs, (double)lat.n / secs, rate, conns, pct_ms(&lat, 50), pct_ms(&lat, 99),
           pct_ms(&lat, 99.9), pct_ms(&lat, 100), (long long)errors);
    for (int i = 0; i < conns; i++) {
        close(lcs[i].fd);
        kf_strbuf_release(&lcs[i].in);
    }
    close(ep);
    free(lcs);
    free(lat.v);
    if (errors)
        exit(1);
}

/* --- list ------------------------------------------------------------------- */

static size_t count(const char *hay, size_t n, const char *needle)
{
    size_t k = 0, nl = strlen(needle);
    const char *p = hay, *end = hay + n;

    while ((p = memmem(p, (size_t)(end - p), needle, nl))) {
        k++;
        p += nl;
    }
    return k;
}

static void run_list(bool etcd, int64_t n, int reps)
{
    struct conn c;
    struct samples lat = { 0 };
    size_t bytes = 0, items = 0;

    conn_open(&c);
    for (int r = 0; r < reps; r++) {
        struct kf_strbuf resp = KF_STRBUF_INIT, body = KF_STRBUF_INIT;
        uint64_t t0 = now_ns();
        int status;

        if (etcd) {
            kf_strbuf_addstr(&body, "{\"key\":\"");
            base64(&body, "/bench/guestclusters/", 21);
            kf_strbuf_addstr(&body, "\",\"range_end\":\"");
            base64(&body, "/bench/guestclusters0", 21);
            kf_strbuf_addstr(&body, "\"}");
            status =
                request(&c, "POST", "/v3/kv/range", "application/json", body.buf, body.len, &resp);
            items = count(resp.buf, resp.len, "\"key\":");
        } else {
            status = request(&c, "GET", GC_PATH, NULL, NULL, 0, &resp);
            items = count(resp.buf, resp.len, "{\"metadata\":{\"resourceVersion\"");
        }
        sample_add(&lat, now_ns() - t0);
        if (status != 200 || items != (size_t)n)
            die("list: HTTP %d with %zu items, expected %lld", status, items, (long long)n);
        bytes = resp.len;
        kf_strbuf_release(&resp);
        kf_strbuf_release(&body);
    }
    conn_close(&c);
    qsort(lat.v, lat.n, sizeof(*lat.v), cmp_u64);
    printf("%s of %zu objects (%.1f MiB): median %.1f ms, min %.1f ms, max %.1f ms over %d "
           "requests\n",
           etcd ? "etcd-range" : "list", items, (double)bytes / 1048576.0, pct_ms(&lat, 50),
           pct_ms(&lat, 0), pct_ms(&lat, 100), reps);
    printf("RESULT mode=%s n=%zu bytes=%zu median_ms=%.3f min_ms=%.3f max_ms=%.3f reps=%d\n",
           etcd ? "etcd-range" : "list", items, bytes, pct_ms(&lat, 50), pct_ms(&lat, 0),
           pct_ms(&lat, 100), reps);
    free(lat.v);
}

/* --- watch fan-out ---------------------------------------------------------- */

/* One watch stream: the chunked framing is decoded as bytes arrive, and
 * every complete line (one event) is scanned for the writer's timestamp. */
struct watcher {
    int fd;
    struct kf_strbuf raw;  /* undecoded bytes */
    struct kf_strbuf line; /* decoded bytes of the current line */
    bool headers_done;
    size_t chunk_left; /* bytes left in the current chunk (+2 for its CRLF) */
    bool in_chunk;
    int64_t events;
};

struct fanout {
    struct watcher *ws;
    int n;
    int64_t writes;
    struct samples lat;
    int64_t delivered;
    bool etcd; /* etcd's gateway: events carry the value base64 */
};

#define ETCD_WATCH_KEY "/bench-watch/target"

static void on_line(struct fanout *f, struct watcher *w, uint64_t t)
{
    static const char marker[] = "\"kfbench/t0\":\"";
    static const char value[] = "\"value\":\"";
    const char *p;

    if (f->etcd) {
        struct kf_strbuf v = KF_STRBUF_INIT;
        const char *q;

        p = memmem(w->line.buf, w->line.len, value, sizeof(value) - 1);
        if (!p)
            return;
        p += sizeof(value) - 1;
        q = memchr(p, '"', (size_t)(w->line.buf + w->line.len - p));
        if (!q || kf_base64_decode(&v, p, (size_t)(q - p)) < 0 || strncmp(v.buf, "t0=", 3) != 0)
            die("etcd watch: an event without the writer's time");
        w->events++;
        f->delivered++;
        sample_add(&f->lat, t - strtoull(v.buf + 3, NULL, 10));
        kf_strbuf_release(&v);
        return;
    }
    p = memmem(w->line.buf, w->line.len, marker, sizeof(marker) - 1);
    if (!p)
        return;
    w->events++;
    f->delivered++;
    sample_add(&f->lat, t - strtoull(p + sizeof(marker) - 1, NULL, 10));
}

static void on_bytes(struct fanout *f, struct watcher *w, const char *buf, size_t n, uint64_t t)
{
    kf_strbuf_add(&w->raw, buf, n);
    for (;;) {
        char *s = w->raw.buf;
        size_t len = w->raw.len, used = 0;

        if (!w->headers_done) {
            char *end = memmem(s, len, "\r\n\r\n", 4);

            if (!end)
                return;
            if (strncmp(s, "HTTP/1.1 200", 12) != 0)
                die("watch: %.*s", (int)KF_MIN(len, 200), s);
            w->headers_done = true;
            used = (size_t)(end - s) + 4;
        } else if (!w->in_chunk) {
            char *nl = memmem(s, len, "\r\n", 2);

            if (!nl)
                return;
            w->chunk_left = strtoul(s, NULL, 16) + 2;
            w->in_chunk = true;
            used = (size_t)(nl - s) + 2;
            if (w->chunk_left == 2)
                die("a watch stream ended early");
        } else {
            size_t take = KF_MIN(len, w->chunk_left);
            size_t data = w->chunk_left > 2 ? KF_MIN(take, w->chunk_left - 2) : 0;

            for (size_t i = 0; i < data; i++) {
                if (s[i] == '\n') {
                    on_line(f, w, t);
                    kf_strbuf_reset(&w->line);
                } else {
                    kf_strbuf_addch(&w->line, s[i]);
                }
            }
            w->chunk_left -= take;
            if (!w->chunk_left)
                w->in_chunk = false;
            used = take;
            if (!used)
                return;
        }
        memmove(w->raw.buf, w->raw.buf + used, w->raw.len - used);
        kf_strbuf_setlen(&w->raw, w->raw.len - used);
    }
}

struct writer_args {
    int64_t writes;
    double rate;
    bool etcd;
};

static void *writer_main(void *arg)
{
    struct writer_args *a = arg;
    struct conn c;
    uint64_t start = now_ns();

    conn_open(&c);
    for (int64_t i = 0; i < a->writes; i++) {
        struct kf_strbuf body = KF_STRBUF_INIT;
        uint64_t due = start + (uint64_t)((double)i / a->rate * 1e9), t0;
        int status;

        while (now_ns() < due) {
            uint64_t d = due - now_ns();
            struct timespec ts = { (time_t)(d / 1000000000ull), (long)(d % 1000000000ull) };

            nanosleep(&ts, NULL);
        }
        t0 = now_ns();
        if (a->etcd) {
            char v[40];
            int vn = snprintf(v, sizeof(v), "t0=%llu", (unsigned long long)t0);

            kf_strbuf_addstr(&body, "{\"key\":\"");
            base64(&body, ETCD_WATCH_KEY, strlen(ETCD_WATCH_KEY));
            kf_strbuf_addstr(&body, "\",\"value\":\"");
            base64(&body, v, (size_t)vn);
            kf_strbuf_addstr(&body, "\"}");
            status =
                request(&c, "POST", "/v3/kv/put", "application/json", body.buf, body.len, NULL);
        } else {
            kf_strbuf_addf(&body, "{\"metadata\":{\"annotations\":{\"kfbench/t0\":\"%llu\"}}}",
                           (unsigned long long)t0);
            status = request(&c, "PATCH", GC_PATH "/bench-watch-target",
                             "application/merge-patch+json", body.buf, body.len, NULL);
        }
        if (status != 200)
            die("watch writer: HTTP %d", status);
        kf_strbuf_release(&body);
    }
    conn_close(&c);
    return NULL;
}

static void run_watch(bool etcd, int nwatchers, int64_t writes, double rate)
{
    struct fanout f = { .n = nwatchers, .writes = writes, .etcd = etcd };
    struct writer_args wa = { writes, rate, etcd };
    struct kf_strbuf resp = KF_STRBUF_INIT, body = KF_STRBUF_INIT;
    struct conn c;
    pthread_t writer;
    int ep = epoll_create1(EPOLL_CLOEXEC), status;
    char rv[32] = "0", path[256];
    const char *p;
    uint64_t deadline, t_open;
    int connected = 0;

    f.ws = kf_xcalloc((size_t)nwatchers, sizeof(*f.ws));
    if (etcd) {
        /* watches of one key from now: every put of it is an event */
        kf_strbuf_addstr(&body, "{\"create_request\":{\"key\":\"");
        base64(&body, ETCD_WATCH_KEY, strlen(ETCD_WATCH_KEY));
        kf_strbuf_addstr(&body, "\"}}");
        goto open;
    }
    /* the object the writer patches, and the revision to watch from */
    conn_open(&c);
    kf_strbuf_addstr(&body, "{\"metadata\":{\"name\":\"bench-watch-target\"},\"spec\":{\"region\":"
                            "\"cn-hangzhou\",\"profile\":\"standard\",\"version\":\"1.37\","
                            "\"expectedNodes\":3,\"network\":{\"vpc\":\"vpc-w\"}}}");
    status = request(&c, "POST", GC_PATH, "application/json", body.buf, body.len, &resp);
    if (status != 201 && status != 409)
        die("watch: creating the target: HTTP %d %s", status, resp.buf);
    kf_strbuf_reset(&resp);
    status = request(&c, "GET", GC_PATH "?limit=1", NULL, NULL, 0, &resp);
    p = strstr(resp.buf, "\"resourceVersion\":\"");
    if (status != 200 || !p)
        die("watch: cannot read the current revision");
    snprintf(rv, sizeof(rv), "%.*s", (int)strcspn(p + 19, "\""), p + 19);
    conn_close(&c);
    kf_strbuf_release(&resp);

    /* every watcher sees every change of the kind after rv: the patches */
    snprintf(path, sizeof(path), GC_PATH "?watch=true&resourceVersion=%s", rv);
open:
    t_open = now_ns();
    for (int i = 0; i < nwatchers; i++) {
        struct kf_strbuf req = KF_STRBUF_INIT;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &f.ws[i] };

        f.ws[i].fd = dial();
        if (etcd)
            kf_strbuf_addf(&req,
                           "POST /v3/watch HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: "
                           "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                           host, port, body.len, body.buf);
        else
            kf_strbuf_addf(&req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n", path, host, port);
        if (token && !etcd)
            kf_strbuf_addf(&req, "Authorization: Bearer %s\r\n", token);
        if (!etcd)
            kf_strbuf_addstr(&req, "\r\n");
        send_all(f.ws[i].fd, req.buf, req.len);
        kf_strbuf_release(&req);
        epoll_ctl(ep, EPOLL_CTL_ADD, f.ws[i].fd, &ev);
    }
    /* wait until every watch answered 200 */
    deadline = now_ns() + 60ull * 1000000000ull;
    while (connected < nwatchers && now_ns() < deadline) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 1000);

        for (int i = 0; i < k; i++) {
            struct watcher *w = evs[i].data.ptr;
            char buf[65536];
            ssize_t r = recv(w->fd, buf, sizeof(buf), 0);
            bool was = w->headers_done;

            if (r <= 0)
                die("a watch connection closed while opening");
            on_bytes(&f, w, buf, (size_t)r, now_ns());
            if (!was && w->headers_done)
                connected++;
        }
    }
    if (connected < nwatchers)
        die("only %d of %d watches opened", connected, nwatchers);
    printf("%s: %d watches open in %.2f s\n", etcd ? "etcd-watch" : "watch", nwatchers,
           (double)(now_ns() - t_open) / 1e9);
    kf_strbuf_release(&body);
    if (etcd) /* etcd says "created" before it sends events: let every watch settle */
        sleep(1);

    pthread_create(&writer, NULL, writer_main, &wa);
    deadline = now_ns() + (uint64_t)(((double)writes / rate + 60) * 1e9);
    while (f.delivered < (int64_t)nwatchers * writes && now_ns() < deadline) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 1000);

        for (int i = 0; i < k; i++) {
            struct watcher *w = evs[i].data.ptr;
            char buf[65536];
            ssize_t r = recv(w->fd, buf, sizeof(buf), 0);

            if (r <= 0)
                die("a watch connection closed");
            on_bytes(&f, w, buf, (size_t)r, now_ns());
        }
    }
    pthread_join(writer, NULL);
    if (getenv("BENCH_DUMP")) {
        FILE *df = fopen(getenv("BENCH_DUMP"), "w");

        for (size_t i = 0; df && i < f.lat.n; i++)
            fprintf(df, "%llu\n", (unsigned long long)f.lat.v[i]);
        if (df)
            fclose(df);
    }
    qsort(f.lat.v, f.lat.n, sizeof(*f.lat.v), cmp_u64);
    printf("%s fan-out: %d watchers x %lld writes at %.0f/s: %lld of %lld events delivered; "
           "write->delivery p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
           etcd ? "etcd-watch" : "watch", nwatchers, (long long)writes, rate,
           (long long)f.delivered, (long long)nwatchers * writes, pct_ms(&f.lat, 50),
           pct_ms(&f.lat, 99), pct_ms(&f.lat, 99.9), pct_ms(&f.lat, 100));
    printf("RESULT mode=%s watchers=%d writes=%lld rate=%.1f delivered=%lld p50_ms=%.3f "
           "p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
           etcd ? "etcd-watch" : "watch", nwatchers, (long long)writes, rate,
           (long long)f.delivered, pct_ms(&f.lat, 50), pct_ms(&f.lat, 99), pct_ms(&f.lat, 99.9),
           pct_ms(&f.lat, 100));
    for (int i = 0; i < nwatchers; i++) {
        close(f.ws[i].fd);
        kf_strbuf_release(&f.ws[i].raw);
        kf_strbuf_release(&f.ws[i].line);
    }
    close(ep);
    free(f.ws);
    free(f.lat.v);
    if (f.delivered != (int64_t)nwatchers * writes)
        exit(1);
}

int main(int argc, char **argv)
{
    const char *mode;

    if (argc < 3) {
        fputs("usage: bench-api MODE URL ARGS... (see the top of bench/api/bench-api.c)\n", stderr);
        return 2;
    }
    mode = argv[1];
    parse_url(argv[2]);
    token = getenv("BENCH_TOKEN");
    if (token && !*token)
        token = NULL;
    if (strcmp(mode, "create") == 0 && argc == 5)
        run_workers(M_CREATE, arg_int(argv[3]), (int)arg_int(argv[4]), 0, 0, "create");
    else if (strcmp(mode, "get") == 0 && (argc == 6 || argc == 7))
        run_closed_loop(M_GET, arg_int(argv[3]), (int)arg_int(argv[4]), (double)arg_int(argv[5]),
                        argc == 7 ? (double)arg_int(argv[6]) : 0, "get");
    else if (strcmp(mode, "list") == 0 && argc == 5)
        run_list(false, arg_int(argv[3]), (int)arg_int(argv[4]));
    else if (strcmp(mode, "watch") == 0 && argc == 6)
        run_watch(false, (int)arg_int(argv[3]), arg_int(argv[4]), (double)arg_int(argv[5]));
    else if (strcmp(mode, "etcd-watch") == 0 && argc == 6)
        run_watch(true, (int)arg_int(argv[3]), arg_int(argv[4]), (double)arg_int(argv[5]));
    else if (strcmp(mode, "etcd-put") == 0 && argc == 6)
        run_workers(M_ETCD_PUT, arg_int(argv[3]), (int)arg_int(argv[4]), 0,
                    (size_t)arg_int(argv[5]), "etcd-put");
    else if (strcmp(mode, "etcd-get") == 0 && (argc == 6 || argc == 7))
        run_closed_loop(M_ETCD_GET, arg_int(argv[3]), (int)arg_int(argv[4]),
                        (double)arg_int(argv[5]), argc == 7 ? (double)arg_int(argv[6]) : 0,
                        "etcd-get");
    else if (strcmp(mode, "etcd-range") == 0 && argc == 5)
        run_list(true, arg_int(argv[3]), (int)arg_int(argv[4]));
    else {
        fprintf(stderr, "bench-api: bad arguments for mode \"%s\"\n", mode);
        return 2;
    }
    return 0;
}
