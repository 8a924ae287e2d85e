/* bench-heartbeat.c: how many host heartbeats the lease table takes per
 * second. 1,000,000 simulated hosts renew in rounds (as hosts beating every
 * 10 s would), on one thread and then on two; an expiry scan over the whole
 * table is timed too. Prints what it measured; targets in DESIGN.md §9
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
    for (size_t i = 0; i < hosts; i++)
        free(names[i]);
    free(names);
    return 0;
}
