/* bench-hbshare.c: what sharing host heartbeats between two kfleetd
 * replicas costs (kfleet/lease-share.h), in bytes written to the store and
 * in CPU, against the simpler design measured in the same run.
 *
 * A simulation on a simulated clock: HOSTS hosts beat every 10 s (each at
 * its own random phase, with up to 0.5 s of jitter) to one of two replicas;
 * each replica has its own lease table and sharer over one memory store,
 * and both step every 2 s with a window of 20 s (what kfleetd does with the
 * default 40 s grace). Scenarios:
 *   sticky  every agent stays with one replica (half the hosts on each);
 *   churn   the same, but every minute 1 % of the agents move to the other
 *           replica, and 0.1 % of the hosts are replaced by new ones;
 *   spray   every heartbeat goes to a replica chosen at random (a load
 *           balancer without keep-alive: the worst case for this design).
 * For each: bytes of values written per second after the first minute
 * (and the total with the first base), ticks and bases written, the time a
 * replica's step takes (its report, and reading and applying the other's),
 * and the longest a beating host looked silent in either table (must stay
 * below the grace). The reference, computed from the same heartbeats: each
 * replica writing every 2 s the names renewed on it since its last report
 * (the design first proposed), front-coded, and as plain names.
 *
 * Usage: bench-hbshare [HOSTS] [MINUTES] [SCENARIO...] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/lease-share.h"
#include "kfleet/lease.h"
#include "kfleet/log.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

#define PERIOD_MS   10000
#define JITTER_MS   500
#define INTERVAL_MS 2000
#define WINDOW_MS   20000
#define GRACE_MS    40000
#define STEP_MS     100

struct host {
    char name[40];
    int64_t next_ms;
    int replica;
    bool gone; /* replaced by a new host */
};

struct replica {
    struct kf_lease_table *t;
    struct kf_lease_share *sh;
};

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

struct ref_ctx {
    char **names;
    size_t n, alloc;
};

static void ref_collect(const char *name, int64_t local_ms, void *arg)
{
    struct ref_ctx *c = arg;

    (void)local_ms;
    if (c->n == c->alloc) {
        c->alloc = c->alloc ? 2 * c->alloc : 1024;
        c->names = kf_xrealloc(c->names, c->alloc * sizeof(*c->names));
    }
    c->names[c->n++] = kf_xstrdup(name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The reference design's report of replica r at now: the names renewed on
 * it within the last interval. Adds its front-coded and plain sizes. */
static void reference(struct replica *r, int64_t now, uint64_t *coded, uint64_t *plain)
{
    struct ref_ctx c = { 0 };
    struct kf_strbuf sb = KF_STRBUF_INIT;

    kf_lease_local_since(r->t, now - INTERVAL_MS + 1, ref_collect, &c);
    if (c.n)
        qsort(c.names, c.n, sizeof(*c.names), cmp_str);
    *coded += kf_lease_names_encode(&sb, c.names, c.n);
    for (size_t i = 0; i < c.n; i++) {
        *plain += strlen(c.names[i]) + 1;
        free(c.names[i]);
    }
    free(c.names);
    kf_strbuf_release(&sb);
}

struct silence {
    int64_t max_ms;
    size_t over_grace;
};

static void check_silence(struct replica *r, struct host *h, size_t n, int64_t now,
                          struct silence *s)
{
    for (size_t i = 0; i < n; i += 97) { /* a sample: every 97th host */
        int64_t last;

        if (h[i].gone)
            continue;
        last = kf_lease_last(r->t, h[i].name);
        if (last <= 0)
            continue; /* not heard of yet (the first seconds) */
        if (now - last > s->max_ms)
            s->max_ms = now - last;
        if (now - last > GRACE_MS)
            s->over_grace++;
    }
}

static void run(const char *scenario, size_t n, int minutes)
{
    struct kf_store *s = NULL;
    struct replica r[2];
    struct host *h = kf_xcalloc(n, sizeof(*h));
    struct kf_lease_share_stats st[2], st0[2] = { { 0 }, { 0 } };
    const int64_t t0 = 1000000, end = t0 + (int64_t)minutes * 60000, warm = t0 + 60000;
    uint64_t ref_coded = 0, ref_plain = 0, step_ns = 0, step_max_ns = 0, steps = 0;
    uint64_t heartbeats = 0, next_id;
    struct silence sil = { 0, 0 };
    bool spray = strcmp(scenario, "spray") == 0, churn = strcmp(scenario, "churn") == 0;
    int64_t next_tick = t0, next_churn = t0 + 60000;

    if (kf_store_open("memory:", &s, NULL) < 0)
        abort();
    for (int i = 0; i < 2; i++) {
        struct kf_lease_share_config c = { .replica_id = i ? "kfleet-b:7480" : "kfleet-a:7480",
                                           .interval_ms = INTERVAL_MS,
                                           .window_ms = WINDOW_MS };

        r[i].t = kf_lease_table_new(t0);
        if (kf_lease_share_new(s, r[i].t, &c, &r[i].sh, NULL) < 0)
            abort();
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(h[i].name, sizeof(h[i].name), "hz-u%02zu-rack%03zu-h%06zu", i % 40, i % 997, i);
        h[i].next_ms = t0 + (int64_t)(rnd() % PERIOD_MS);
        h[i].replica = (int)(i % 2);
    }
    next_id = n;
    for (int64_t now = t0; now < end; now += STEP_MS) {
        for (size_t i = 0; i < n; i++) {
            if (h[i].next_ms > now)
                continue;
            kf_lease_renew(r[spray ? (int)(rnd() % 2) : h[i].replica].t, h[i].name, now);
            h[i].next_ms = now + PERIOD_MS - JITTER_MS + (int64_t)(rnd() % (2 * JITTER_MS));
            heartbeats++;
        }
        if (churn && now >= next_churn) {
            next_churn += 60000;
            for (size_t k = 0; k < n / 100; k++)
                h[rnd() % n].replica ^= 1;
            for (size_t k = 0; k < n / 1000; k++) {
                size_t i = rnd() % n;

                snprintf(h[i].name, sizeof(h[i].name), "hz-u%02zu-rack%03zu-h%06zu",
                         (size_t)next_id % 40, (size_t)next_id % 997, (size_t)next_id);
                next_id++;
            }
        }
        if (now < next_tick)
            continue;
        next_tick += INTERVAL_MS;
        /* just before the reports: the longest anything has aged */
        if (now >= warm) {
            check_silence(&r[0], h, n, now, &sil);
            check_silence(&r[1], h, n, now, &sil);
        }
        if (now == warm || (now > warm && now - STEP_MS < warm))
            for (int i = 0; i < 2; i++)
                kf_lease_share_stats(r[i].sh, &st0[i]);
        {
            uint64_t d[2] = { 0, 0 };

            /* a steps (reports), b steps (applies a's tick, reports), a
             * steps again at the same time to apply b's (as the watch
             * would, milliseconds later) */
            for (int pass = 0; pass < 2; pass++)
                for (int i = 0; i < 2; i++) {
                    uint64_t a = kf_mono_ns();

                    if (kf_lease_share_step(r[i].sh, now) < 0)
                        abort();
                    d[i] += kf_mono_ns() - a;
                }
            for (int i = 0; i < 2 && now >= warm; i++) {
                step_ns += d[i];
                step_max_ns = d[i] > step_max_ns ? d[i] : step_max_ns;
                steps++;
                reference(&r[i], now, &ref_coded, &ref_plain);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        kf_lease_share_stats(r[i].sh, &st[i]);
    {
        double secs = (double)(end - warm) / 1000;
        uint64_t bytes = st[0].bytes + st[1].bytes - st0[0].bytes - st0[1].bytes;
        uint64_t total = st[0].bytes + st[1].bytes;

        printf("%-6s %zu hosts, %.0f heartbeats/s: shared %.1f KiB/s (%.0f B/s; %" PRIu64
               " bytes in all with the first bases), ticks %" PRIu64 ", bases %" PRIu64
               " (after the first minute %" PRIu64 ")\n",
               scenario, n, (double)heartbeats / ((double)(end - t0) / 1000),
               (double)bytes / secs / 1024, (double)bytes / secs, total,
               st[0].reports + st[1].reports, st[0].bases + st[1].bases,
               st[0].bases + st[1].bases - st0[0].bases - st0[1].bases);
        printf("       reference (names renewed since the last report, every 2 s): front-coded "
               "%.1f KiB/s, plain %.1f KiB/s\n",
               (double)ref_coded / secs / 1024, (double)ref_plain / secs / 1024);
        printf("       work of one replica per interval (its report, applying the other's): mean "
               "%.2f ms, max %.2f "
               "ms; renewals applied %" PRIu64 "\n",
               (double)step_ns / (double)(steps ? steps : 1) / 1e6, (double)step_max_ns / 1e6,
               st[0].renewals + st[1].renewals);
        printf("       longest a beating host looked silent in a replica's table: %.1f s "
               "(grace %d s); sampled hosts beyond the grace: %zu\n",
               (double)sil.max_ms / 1000, GRACE_MS / 1000, sil.over_grace);
        printf("RESULT scenario=%s hosts=%zu bytes_per_s=%.0f ref_coded_per_s=%.0f "
               "ref_plain_per_s=%.0f step_ms=%.2f max_silence_s=%.1f over_grace=%zu\n",
               scenario, n, (double)bytes / secs, (double)ref_coded / secs,
               (double)ref_plain / secs, (double)step_ns / (double)(steps ? steps : 1) / 1e6,
               (double)sil.max_ms / 1000, sil.over_grace);
        fflush(stdout);
    }
    for (int i = 0; i < 2; i++) {
        kf_lease_share_free(r[i].sh);
        kf_lease_table_free(r[i].t);
    }
    kf_store_close(s);
    free(h);
}

int main(int argc, char **argv)
{
    size_t n = 100000;
    int minutes = 10;
    int64_t v;

    kf_log_set_spec("warn", NULL);
    if (argc > 1 && kf_parse_int64(argv[1], &v) == 0 && v > 0)
        n = (size_t)v;
    if (argc > 2 && kf_parse_int64(argv[2], &v) == 0 && v > 1)
        minutes = (int)v;
    printf("hbshare: heartbeats shared by 2 replicas through the store (memory backend), a "
           "simulated clock: every host beats every %d s (+-%d ms), reports every %d s, "
           "window %d s (grace %d s), %d minutes; bytes are the values written (etcd's "
           "gateway sends them base64 in JSON: 4/3 of that plus ~150 bytes a request)\n",
           PERIOD_MS / 1000, JITTER_MS, INTERVAL_MS / 1000, WINDOW_MS / 1000, GRACE_MS / 1000,
           minutes);
    if (argc > 3) {
        for (int i = 3; i < argc; i++)
            run(argv[i], n, minutes);
    } else {
        run("sticky", n, minutes);
        run("churn", n, minutes);
        run("spray", n, minutes);
    }
    return 0;
}
