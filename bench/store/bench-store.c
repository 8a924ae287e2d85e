/* bench-store.c: what the store backends cost, below the API.
 *
 * For memory:, sqlite: (sync=normal) and sqlite:?sync=full, on a new store
 * in a temporary directory (or BENCH_STORE_DIR):
 *   - creates/s from 1 thread and from 8 threads (group commit), 1 KiB values;
 *   - updates/s with compare-and-swap from 1 thread;
 *   - gets/s and get latency (p50, p99) from 1 and 8 threads, random keys;
 *   - a range of all 10,000 keys at the current revision and at an old one;
 *   - reading the history of 10,000 events (what a watcher behind the
 *     window costs).
 * Usage: bench-store [N]   (N keys, default 10000). Prints the machine and
 * each result; docs/BENCHMARKS.md holds a run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kfleet/error.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

#define VALUE_SIZE 1024
#define THREADS    8

static size_t nkeys = 10000;
static char value[VALUE_SIZE + 1];

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void key_of(char *buf, size_t size, size_t i)
{
    snprintf(buf, size, "/guestclusters/cluster-%06zu", i);
}

static void die(const char *what, int r)
{
    fprintf(stderr, "bench-store: %s: %s\n", what, strerror(-r));
    exit(1);
}

struct job {
    struct kf_store *s;
    size_t from, to;
    uint64_t *lat; /* per-op latency, ns (gets only) */
    unsigned seed;
};

static void *create_range(void *arg)
{
    struct job *j = arg;
    char key[64];

    for (size_t i = j->from; i < j->to; i++) {
        int r;

        key_of(key, sizeof(key), i);
        r = kf_store_put(j->s, key, value, VALUE_SIZE, 0, NULL);
        if (r < 0)
            die("create", r);
    }
    return NULL;
}

static void *get_random(void *arg)
{
    struct job *j = arg;
    char key[64];

    for (size_t i = j->from; i < j->to; i++) {
        struct kf_kv kv = { 0 };
        uint64_t t0 = kf_mono_ns();
        int r;

        key_of(key, sizeof(key), (size_t)rand_r(&j->seed) % nkeys);
        r = kf_store_get(j->s, key, &kv);
        j->lat[i - j->from] = kf_mono_ns() - t0;
        if (r < 0)
            die("get", r);
        kf_kv_release(&kv);
    }
    return NULL;
}

/* Runs fn over [0, n) split across `threads` threads; returns seconds. */
static double run_threads(struct kf_store *s, void *(*fn)(void *), size_t base, size_t n,
                          int threads, uint64_t *lat)
{
    pthread_t th[THREADS];
    struct job jobs[THREADS];
    uint64_t t0 = kf_mono_ns();

    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){ .s = s,
                                .from = base + n * (size_t)t / (size_t)threads,
                                .to = base + n * (size_t)(t + 1) / (size_t)threads,
                                .seed = 17u + (unsigned)t };
        jobs[t].lat = lat ? lat + n * (size_t)t / (size_t)threads : NULL;
        pthread_create(&th[t], NULL, fn, &jobs[t]);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    return secs(kf_mono_ns() - t0);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void bench_gets(struct kf_store *s, int threads)
{
    size_t n = nkeys * 5;
    uint64_t *lat = kf_xcalloc(n, sizeof(*lat));
    double t = run_threads(s, get_random, 0, n, threads, lat);

    qsort(lat, n, sizeof(*lat), u64_cmp);
    printf("  get, %d thread%s:          %9.0f /s   p50 %6.1f us   p99 %6.1f us\n", threads,
           threads > 1 ? "s" : " ", (double)n / t, (double)lat[n / 2] / 1e3,
           (double)lat[n * 99 / 100] / 1e3);
    free(lat);
}

static double range_ms(struct kf_store *s, int64_t rev, size_t *ret_n)
{
    struct kf_range q = { .prefix = "/guestclusters/", .rev = rev };
    struct kf_kv_list l = { 0 };
    uint64_t t0 = kf_mono_ns();
    int r = kf_store_range(s, &q, &l);
    double ms = (double)(kf_mono_ns() - t0) / 1e6;

    if (r < 0)
        die("range", r);
    *ret_n = l.n;
    kf_kv_list_release(&l);
    return ms;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void bench_one(const char *label, const char *url)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_store *s = NULL;
    struct kf_store_status st;
    struct kf_event_list h = { 0 };
    size_t half = nkeys / 2, got = 0, updates = KF_MIN(nkeys, 5000);
    double t, runs[9];
    int64_t mid_rev;
    char key[64];
    uint64_t t0;
    int r;

    r = kf_store_open(url, &s, &err);
    if (r < 0) {
        fprintf(stderr, "bench-store: %s\n", err.buf);
        exit(1);
    }
    printf("%s (%s)\n", label, url);

    t = run_threads(s, create_range, 0, half, 1, NULL);
    printf("  create, 1 thread:        %9.0f /s   (%zu keys, %d-byte values)\n", (double)half / t,
           half, VALUE_SIZE);
    t = run_threads(s, create_range, half, nkeys - half, THREADS, NULL);
    printf("  create, %d threads:       %9.0f /s   (%zu keys)\n", THREADS,
           (double)(nkeys - half) / t, nkeys - half);
    mid_rev = kf_store_rev(s);

    t0 = kf_mono_ns();
    for (size_t i = 0; i < updates; i++) {
        struct kf_kv kv = { 0 };

        key_of(key, sizeof(key), i);
        if ((r = kf_store_get(s, key, &kv)) < 0 ||
            (r = kf_store_put(s, key, value, VALUE_SIZE, kv.mod_rev, NULL)) < 0)
            die("update", r);
        kf_kv_release(&kv);
    }
    t = secs(kf_mono_ns() - t0);
    printf("  get + CAS update, 1 thr: %9.0f /s   (%zu keys)\n", (double)updates / t, updates);

    bench_gets(s, 1);
    bench_gets(s, THREADS);

    for (size_t i = 0; i < KF_ARRAY_SIZE(runs); i++)
        runs[i] = range_ms(s, 0, &got);
    qsort(runs, KF_ARRAY_SIZE(runs), sizeof(runs[0]), dbl_cmp);
    printf("  range of %zu keys:    %9.1f ms (median of %zu; min %.1f)\n", got,
           runs[KF_ARRAY_SIZE(runs) / 2], KF_ARRAY_SIZE(runs), runs[0]);
    t = range_ms(s, mid_rev, &got);
    printf("  range at an old rev:     %9.1f ms (%zu keys, %zu of them since updated)\n", t, got,
           updates);

    t0 = kf_mono_ns();
    r = kf_store_history(s, mid_rev - (int64_t)KF_MIN(nkeys, (size_t)mid_rev), 0, &h);
    if (r < 0)
        die("history", r);
    t = secs(kf_mono_ns() - t0);
    printf("  history of %zu events: %9.1f ms\n", h.n, t * 1e3);
    kf_event_list_release(&h);

    kf_store_status(s, &st);
    printf("  status: rev %lld, %lld keys, %.1f MiB\n", (long long)st.rev, (long long)st.keys,
           (double)st.db_bytes / 1048576.0);
    kf_store_close(s);
    kf_strbuf_release(&err);
}

static void print_machine(void)
{
    char line[256], model[128] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    long mem_kb = 0;

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "model name : %127[^\n]", model) == 1)
            break;
    if (f)
        fclose(f);
    f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemTotal: %ld kB", &mem_kb) == 1)
            break;
    if (f)
        fclose(f);
    printf("machine: %ld cores, %.0f GiB, %s; SQLite %s\n", sysconf(_SC_NPROCESSORS_ONLN),
           (double)mem_kb / 1048576.0, model, sqlite3_libversion());
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    char dir[] = "/tmp/kf-bench-store-XXXXXX";
    const char *base = getenv("BENCH_STORE_DIR");
    char *url;
    int64_t n;

    if (argc > 1 && (kf_parse_int64(argv[1], &n) < 0 || n < 100 || n > 10000000)) {
        fprintf(stderr, "usage: bench-store [KEYS]  (100 to 10000000; default 10000)\n");
        return 2;
    }
    if (argc > 1)
        nkeys = (size_t)n;
    memset(value, 'x', VALUE_SIZE);
    if (!base) {
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        base = dir;
    }
    print_machine();
    printf("bench-store: %zu keys of %d bytes; each backend starts empty\n\n", nkeys, VALUE_SIZE);

    bench_one("memory", "memory:");
    url = kf_xasprintf("sqlite:%s/normal/kf.db", base);
    bench_one("sqlite, sync=normal", url);
    free(url);
    url = kf_xasprintf("sqlite:%s/full/kf.db?sync=full", base);
    bench_one("sqlite, sync=full", url);
    free(url);
    if (base == dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
