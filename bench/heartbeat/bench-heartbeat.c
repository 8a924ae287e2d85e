/* bench-heartbeat.c: how many host heartbeats the lease table takes per
 * second. 1,000,000 simulated hosts renew in rounds (as hosts beating every
 * 10 s would), on one thread and then on two; an expiry scan over the whole
 * table is timed too (every lease due: nothing can be skipped), and then
 * a minute of sweeps at rest, one a second as kfleetd makes them, while
 * each host beats every 10 s with a 40 s grace (the sweeps skip the shards
 * where nothing can be due; the largest sweep is the one that has to look
 * at every lease again). Prints what it measured; targets in DESIGN.md §9
 * (>= 100,000 heartbeats/s on one core).
 *
 * Usage: bench-heartbeat [HOSTS] [ROUNDS] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/lease.h"

struct job {
    struct kf_lease_table *t;
    char **names;
    size_t from, to;
    int rounds;
};

static void *renew_range(void *arg)
{
    struct job *j = arg;

    for (int r = 0; r < j->rounds; r++)
        for (size_t i = j->from; i < j->to; i++)
            kf_lease_renew(j->t, j->names[i], 1000 + (int64_t)r * 10000);
    return NULL;
}

static double run(struct kf_lease_table *t, char **names, size_t n, int rounds, int threads)
{
    pthread_t tid[8];
    struct job jobs[8];
    uint64_t t0 = kf_mono_ns();

    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){ t, names, n * (size_t)i / (size_t)threads,
                                n * (size_t)(i + 1) / (size_t)threads, rounds };
        pthread_create(&tid[i], NULL, renew_range, &jobs[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    return (double)(kf_mono_ns() - t0) / 1e9;
}

/* A minute of 1 s sweeps at rest: host i beats at seconds = i mod 10. */
static void sweeps_at_rest(char **names, size_t hosts)
{
    struct kf_lease_table *t = kf_lease_table_new(0);
    double total_ms = 0, max_ms = 0;
    size_t expired = 0;
    int sweeps = 0;

    for (size_t i = 0; i < hosts; i++)
        kf_lease_renew(t, names[i], (int64_t)(i % 10) * 1000);
    for (int64_t now = 10000; now < 70000; now += 1000) {
        char **gone;
        uint64_t t0;
        double ms;
        size_t n;

        for (size_t i = (size_t)((now / 1000) % 10); i < hosts; i += 10)
            kf_lease_renew(t, names[i], now);
        t0 = kf_mono_ns();
        n = kf_lease_expire(t, now, 40000, &gone);
        ms = (double)(kf_mono_ns() - t0) / 1e6;
        kf_lease_names_free(gone, n);
        expired += n;
        total_ms += ms;
        max_ms = ms > max_ms ? ms : max_ms;
        sweeps++;
    }
    printf("  sweeps at rest (%d, one a second): %.2f ms each on average, %.1f ms the "
           "largest (%zu expired)\n",
           sweeps, total_ms / sweeps, max_ms, expired);
    kf_lease_table_free(t);
}

int main(int argc, char **argv)
{
    size_t hosts = 1000000;
    int rounds = 3;
    char **names;
    struct kf_lease_table *t;
    double secs;
    char **expired;
    size_t nexp;
    uint64_t t0;

    if (argc > 1) {
        int64_t v;

        if (kf_parse_int64(argv[1], &v) < 0 || v <= 0) {
            fprintf(stderr, "usage: bench-heartbeat [HOSTS] [ROUNDS]\n");
            return 2;
        }
        hosts = (size_t)v;
    }
    if (argc > 2 && (kf_parse_int(argv[2], &rounds) < 0 || rounds <= 0)) {
        fprintf(stderr, "usage: bench-heartbeat [HOSTS] [ROUNDS]\n");
        return 2;
    }
    names = kf_xcalloc(hosts, sizeof(*names));
    for (size_t i = 0; i < hosts; i++)
        names[i] = kf_xasprintf("unit-%03zu-host-%07zu", i % 200, i);

    printf("lease table: %zu hosts, %d rounds of renewals\n", hosts, rounds);
    for (int threads = 1; threads <= 2; threads++) {
        t = kf_lease_table_new(0);
        run(t, names, hosts, 1, threads); /* first round inserts */
        secs = run(t, names, hosts, rounds, threads);
        printf("  %d thread(s): %.0f renewals/s (%.0f ns each)\n", threads,
               (double)hosts * rounds / secs, secs * 1e9 / ((double)hosts * rounds));
        if (threads == 2) {
            t0 = kf_mono_ns();
            nexp = kf_lease_expire(t, 1000 + (int64_t)rounds * 10000 + 40001, 40000, &expired);
            printf("  expiry scan of %zu hosts: %.1f ms (%zu expired)\n", hosts,
                   (double)(kf_mono_ns() - t0) / 1e6, nexp);
            kf_lease_names_free(expired, nexp);
        }
        kf_lease_table_free(t);
    }
    sweeps_at_rest(names, hosts);
    for (size_t i = 0; i < hosts; i++)
        free(names[i]);
    free(names);
    return 0;
}
