/* bench-store-etcd.c: what the etcd store backend costs, against etcd's own
 * JSON gateway called directly in the same run (the reference).
 *
 * On one etcd member (BENCH_ETCD=http://host:port, or a member this program
 * starts with tests/unit/etcd-harness.h in a temporary directory):
 *   - creates/s from 1 and 8 threads, 1 KiB values: kf_store_put (an etcd
 *     Txn with a create compare, then waiting until the store's watch has
 *     published the revision) versus a raw /v3/kv/put;
 *   - gets/s from 1 and 8 threads, random keys: kf_store_get versus a raw
 *     /v3/kv/range of one key;
 *   - a range of all N keys: kf_store_range (parse, base64, copy) versus a
 *     raw /v3/kv/range that only receives the bytes;
 *   - watch latency: from calling kf_store_put on one store to the event
 *     arriving on a watch of a second store (another "replica"), p50/p99.
 * Usage: bench-store-etcd [N] (default 10000 keys).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <curl/curl.h>

#include "../../tests/unit/etcd-harness.h"
#include "kfleet/base64.h"
#include "kfleet/error.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

#define VALUE_SIZE 1024
#define THREADS    8
#define PREFIX     "/bench"

static size_t nkeys = 10000;
static char value[VALUE_SIZE + 1];
static char value_b64[VALUE_SIZE * 2];
static const char *endpoint;

static void die(const char *what, int r)
{
    fprintf(stderr, "bench-store-etcd: %s: %s\n", what, strerror(-r));
    exit(1);
}

static double now_s(void)
{
    return (double)kf_mono_ns() / 1e9;
}

static void key_of(char *buf, size_t size, const char *space, size_t i)
{
    snprintf(buf, size, "/%s/cluster-%06zu", space, i);
}

/* --- raw gateway calls ------------------------------------------------- */

static size_t sink(char *p, size_t s, size_t n, void *arg)
{
    size_t *total = arg;

    (void)p;
    *total += s * n;
    return s * n;
}

static size_t raw_post(CURL *h, const char *path, const char *body)
{
    char url[256];
    size_t got = 0;
    long code = 0;
    CURLcode cr;

    snprintf(url, sizeof(url), "%s%s", endpoint, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    cr = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (cr != CURLE_OK || code != 200) {
        fprintf(stderr, "bench-store-etcd: raw %s: %s (HTTP %ld)\n", path, curl_easy_strerror(cr),
                code);
        exit(1);
    }
    return got;
}

static char *b64(const char *s)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;

    kf_base64_encode(&sb, s, strlen(s));
    return kf_strbuf_detach(&sb, NULL);
}

/* --- jobs ------------------------------------------------------------- */

enum kind { STORE_PUT, STORE_GET, RAW_PUT, RAW_GET };

struct job {
    enum kind kind;
    struct kf_store *s;
    const char *space;
    size_t from, to;
    unsigned seed;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    CURL *h = j->kind == RAW_PUT || j->kind == RAW_GET ? curl_easy_init() : NULL;
    struct kf_strbuf body = KF_STRBUF_INIT;
    char key[128];

    for (size_t i = j->from; i < j->to; i++) {
        size_t k =
            j->kind == STORE_GET || j->kind == RAW_GET ? (size_t)rand_r(&j->seed) % nkeys : i;
        int r = 0;

        key_of(key, sizeof(key), j->space, k);
        switch (j->kind) {
        case STORE_PUT:
            r = kf_store_put(j->s, key, value, VALUE_SIZE, 0, NULL);
            break;
        case STORE_GET: {
            struct kf_kv kv = { 0 };

            r = kf_store_get(j->s, key, &kv);
            kf_kv_release(&kv);
            break;
        }
        case RAW_PUT:
        case RAW_GET: {
            char full[160];
            char *kb;

            snprintf(full, sizeof(full), PREFIX "%s", key);
            kb = b64(full);
            kf_strbuf_reset(&body);
            if (j->kind == RAW_PUT)
                kf_strbuf_addf(&body, "{\"key\":\"%s\",\"value\":\"%s\"}", kb, value_b64);
            else
                kf_strbuf_addf(&body, "{\"key\":\"%s\"}", kb);
            raw_post(h, j->kind == RAW_PUT ? "/v3/kv/put" : "/v3/kv/range", body.buf);
            free(kb);
            break;
        }
        }
        if (r < 0)
            die(j->kind == STORE_PUT ? "kf_store_put" : "kf_store_get", r);
    }
    kf_strbuf_release(&body);
    if (h)
        curl_easy_cleanup(h);
    return NULL;
}

/* ops/s of n operations of `kind` over `threads` threads. */
static double measure(enum kind kind, struct kf_store *s, const char *space, size_t n, int threads)
{
    pthread_t tid[THREADS];
    struct job jobs[THREADS];
    double t0 = now_s();

    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){ kind,
                                s,
                                space,
                                n * (size_t)t / (size_t)threads,
                                n * (size_t)(t + 1) / (size_t)threads,
                                42u + (unsigned)t };
        pthread_create(&tid[t], NULL, run_job, &jobs[t]);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    return (double)n / (now_s() - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    struct etcd_harness h = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_store *s, *s2;
    char *url;
    int r;

    if (argc > 1)
        nkeys = (size_t)strtoul(argv[1], NULL, 10);
    memset(value, 'x', VALUE_SIZE);
    {
        struct kf_strbuf sb = KF_STRBUF_INIT;

        kf_base64_encode(&sb, value, VALUE_SIZE);
        snprintf(value_b64, sizeof(value_b64), "%s", sb.buf);
        kf_strbuf_release(&sb);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    endpoint = getenv("BENCH_ETCD");
    if (!endpoint) {
        if (etcd_harness_start(&h, 1, NULL) < 0) {
            fprintf(stderr, "bench-store-etcd: cannot start etcd (set BENCH_ETCD)\n");
            return 1;
        }
        endpoint = h.endpoint[0];
    }
    printf("etcd: %s (%s), %zu keys, %d-byte values\n", endpoint,
           getenv("BENCH_ETCD") ? "given" : "one member started by the benchmark", nkeys,
           VALUE_SIZE);
    url = kf_xasprintf("etcd:%s?prefix=" PREFIX, endpoint);
    r = kf_store_open(url, &s, &err);
    if (r < 0) {
        fprintf(stderr, "bench-store-etcd: %s\n", err.buf);
        return 1;
    }
    r = kf_store_open(url, &s2, &err);
    if (r < 0)
        die("second store", r);

    printf("\n%-44s %12s %12s %8s\n", "operation", "kf_store", "raw gateway", "ratio");
    {
        double a = measure(STORE_PUT, s, "s1", nkeys, 1), b = measure(RAW_PUT, s, "r1", nkeys, 1);

        printf("%-44s %10.0f/s %10.0f/s %7.2fx\n", "create, 1 thread", a, b, a / b);
        a = measure(STORE_PUT, s, "s8", nkeys, THREADS);
        b = measure(RAW_PUT, s, "r8", nkeys, THREADS);
        printf("%-44s %10.0f/s %10.0f/s %7.2fx\n", "create, 8 threads", a, b, a / b);
        a = measure(STORE_GET, s, "s1", nkeys, 1);
        b = measure(RAW_GET, s, "s1", nkeys, 1);
        printf("%-44s %10.0f/s %10.0f/s %7.2fx\n", "get (random key), 1 thread", a, b, a / b);
        a = measure(STORE_GET, s, "s1", nkeys, THREADS);
        b = measure(RAW_GET, s, "s1", nkeys, THREADS);
        printf("%-44s %10.0f/s %10.0f/s %7.2fx\n", "get (random key), 8 threads", a, b, a / b);
    }
    {
        struct kf_range q = { .prefix = "/s1/" };
        struct kf_kv_list l = { 0 };
        CURL *c = curl_easy_init();
        char *k = b64(PREFIX "/s1/"), *e = b64(PREFIX "/s10"), *body;
        double t0, ts = 1e9, tr = 1e9;
        size_t bytes = 0;

        body = kf_xasprintf("{\"key\":\"%s\",\"range_end\":\"%s\"}", k, e);
        for (int i = 0; i < 5; i++) {
            t0 = now_s();
            r = kf_store_range(s, &q, &l);
            if (r < 0 || l.n != nkeys)
                die("kf_store_range", r < 0 ? r : -EIO);
            ts = KF_MIN(ts, now_s() - t0);
            kf_kv_list_release(&l);
            t0 = now_s();
            bytes = raw_post(c, "/v3/kv/range", body);
            tr = KF_MIN(tr, now_s() - t0);
        }
        printf("%-44s %10.1fms %10.1fms %7.2fx\n", "range of all keys (best of 5)", ts * 1e3,
               tr * 1e3, ts / tr);
        printf("  (raw: %zu bytes of JSON received, not parsed)\n", bytes);
        free(k);
        free(e);
        free(body);
        curl_easy_cleanup(c);
    }
    {
        enum { N = 1000 };
        struct kf_watch *w;
        double *lat = kf_xcalloc(N, sizeof(double));
        char key[64];

        r = kf_watch_open(s2, "/w/", 0, NULL, NULL, &w);
        if (r < 0)
            die("kf_watch_open", r);
        for (int i = 0; i < N; i++) {
            struct kf_event *ev = NULL;
            double t0;

            snprintf(key, sizeof(key), "/w/k%04d", i);
            t0 = now_s();
            r = kf_store_put(s, key, value, 64, 0, NULL);
            if (r < 0)
                die("put", r);
            while ((r = kf_watch_next(w, &ev)) == 0)
                kf_watch_wait(w, 1000);
            if (r < 0)
                die("kf_watch_next", r);
            lat[i] = now_s() - t0;
            kf_event_unref(ev);
        }
        qsort(lat, N, sizeof(double), cmp_double);
        printf("%-44s p50 %.2f ms, p99 %.2f ms\n", "put, then its event on another store's watch",
               lat[N / 2] * 1e3, lat[N * 99 / 100] * 1e3);
        free(lat);
        kf_watch_close(w);
    }
    kf_store_close(s2);
    kf_store_close(s);
    free(url);
    kf_strbuf_release(&err);
    etcd_harness_stop(&h);
    return 0;
}
