/* bench-runner.c: what the agent's runner and the guest PKI cost.
 *
 *   1. PKI: a fresh guest-cluster PKI (2 CAs + 9 certificates, P-256) with
 *      kf_pki_cluster_ensure, and the reason for P-256: key generation of
 *      P-256 against RSA-2048 measured in the same run.
 *   2. Real runner: N `sleep` members from apply to Ready (fork, keeper,
 *      exec), the memory each keeper adds (PSS), and stopping them all.
 *   3. Simulated runner: R runners (virtual hosts) x 3 members from apply
 *      to Ready, and the memory per virtual host.
 *   4. A real guest etcd: PKI + 3 etcd members under the runner from
 *      nothing to all healthy over HTTPS (DESIGN.md §9: create -> Ready
 *      <= 5 s for a 3-member etcd), unless etcd is not installed.
 *
 * Usage: bench-runner [N_REAL] [N_SIM_HOSTS]   (defaults 100 and 10000)
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/catalog-etcd.h"
#include "kfleet/pki.h"
#include "kfleet/runner.h"
#include "kfleet/strbuf.h"
#include "../../tests/unit/test-ports.h" /* ports as the tests get them */

static double now_ms(void)
{
    return (double)kf_mono_ns() / 1e6;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static char *tmpdir(void)
{
    char t[] = "/tmp/kf-bench-runner-XXXXXX";

    if (!mkdtemp(t))
        kf_abort("mkdtemp: %s", strerror(errno));
    return kf_xstrdup(t);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* Kilobytes from a "Key:   123 kB" line of a /proc file. */
static long proc_kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256];
    long v = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, strlen(key))) {
            v = strtol(line + strlen(key), NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Sum of PSS of our children called kf-keeper, and how many. */
static long keepers_pss_kb(int *count)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    long total = 0;

    *count = 0;
    while (d && (de = readdir(d))) {
        char path[300], comm[64] = "";
        FILE *f;
        int ppid = 0;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fscanf(f, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2 && ppid == getpid() &&
            !strcmp(comm, "kf-keeper")) {
            snprintf(path, sizeof(path), "/proc/%s/smaps_rollup", de->d_name);
            total += proc_kb(path, "Pss:");
            (*count)++;
        }
        fclose(f);
    }
    if (d)
        closedir(d);
    return total;
}

/* Consumes events until `n` distinct members were Ready; false on a 60 s
 * guard. */
static bool wait_all_ready(struct kf_runner *r, int n)
{
    double end = now_ms() + 60000;
    int ready = 0;

    while (ready < n && now_ms() < end) {
        struct kf_runner_event ev;
        if (kf_runner_next_event(r, 1000, &ev) != 1 || ev.type != KF_RUNNER_EV_STATUS)
            continue;
        if (ev.status.phase == KF_PROC_READY)
            ready++;
        else if (getenv("BENCH_VERBOSE"))
            fprintf(stderr, "%s %s %s\n", ev.status.name, kf_proc_phase_name(ev.status.phase),
                    ev.status.message);
    }
    return ready >= n;
}

static void bench_pki(void)
{
    enum { RUNS = 10 };
    double t_cluster[RUNS], t_ec[RUNS], t_rsa[RUNS];
    const char *lo[] = { "127.0.0.1", NULL };
    struct kf_pki_etcd_member m[3] = { { .name = "etcd-a", .ip_addresses = lo },
                                       { .name = "etcd-b", .ip_addresses = lo },
                                       { .name = "etcd-c", .ip_addresses = lo } };
    const char *api_ips[] = { "10.96.0.1", NULL };
    struct kf_pki_cluster_spec spec = {
        .cluster = "bench", .etcd_members = m, .n_etcd_members = 3, .apiserver_ips = api_ips
    };
    struct kf_strbuf err = KF_STRBUF_INIT;

    for (int i = 0; i < RUNS; i++) {
        char *dir = tmpdir(), *pki = kf_xasprintf("%s/pki", dir);
        double t0 = now_ms();
        int n = kf_pki_cluster_ensure(pki, &spec, &err);
        t_cluster[i] = now_ms() - t0;
        if (n != 11)
            kf_abort("pki: %d: %s", n, err.buf);
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(pki);
        free(dir);

        t0 = now_ms();
        EVP_PKEY *k = EVP_EC_gen("P-256");
        t_ec[i] = now_ms() - t0;
        EVP_PKEY_free(k);
        t0 = now_ms();
        k = EVP_RSA_gen(2048);
        t_rsa[i] = now_ms() - t0;
        EVP_PKEY_free(k);
    }
    printf("pki: fresh guest-cluster PKI (2 CAs + 9 certificates, files written): median %.1f ms "
           "over %d runs\n",
           median(t_cluster, RUNS), RUNS);
    printf("pki: key generation, median of %d: P-256 %.2f ms, RSA-2048 %.1f ms (reference)\n", RUNS,
           median(t_ec, RUNS), median(t_rsa, RUNS));
    kf_strbuf_release(&err);
}

static void bench_real(int n)
{
    char *dir = tmpdir(), *state = kf_xasprintf("%s/state", dir);
    struct kf_runner_config cfg = { .state_dir = state, .stop_grace_ms = 2000 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_runner *r;
    const char *argv[] = { "sleep", "100000", NULL };
    long agent_kb = proc_kb("/proc/self/status", "VmRSS:");
    double t0, t_ready, t_stop;
    int keepers;
    long pss;

    if (kf_runner_new("real", &cfg, &r, &err) < 0)
        kf_abort("runner: %s", err.buf);
    t0 = now_ms();
    for (int i = 0; i < n; i++) {
        char name[32], *wd;
        snprintf(name, sizeof(name), "m%d", i);
        wd = kf_xasprintf("%s/data/%s", dir, name);
        struct kf_proc_spec s = { .name = name, .argv = argv, .workdir = wd };
        if (kf_runner_apply(r, &s, &err) < 0)
            kf_abort("apply: %s", err.buf);
        free(wd);
    }
    if (!wait_all_ready(r, n))
        kf_abort("not all %d members became ready", n);
    t_ready = now_ms() - t0;
    pss = keepers_pss_kb(&keepers);
    t0 = now_ms();
    if (kf_runner_stop_all(r, 30000) < 0)
        kf_abort("stop_all timed out");
    t_stop = now_ms() - t0;
    kf_runner_free(r);
    printf("real runner: %d sleep members apply -> all Ready in %.0f ms (%.0f starts/s, "
           "%.2f ms each)\n",
           n, t_ready, n / (t_ready / 1000), t_ready / n);
    printf("real runner: %d keepers, PSS %.0f KiB each (agent RSS %ld KiB); stop all: %.0f ms\n",
           keepers, keepers ? (double)pss / keepers : 0.0, agent_kb, t_stop);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    kf_strbuf_release(&err);
    free(state);
    free(dir);
}

static void bench_sim(int hosts)
{
    struct kf_runner_config cfg = { .sim_ready_delay_ms = 0 };
    struct kf_runner **rs = kf_xcalloc((size_t)hosts, sizeof(*rs));
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *argv[] = { "/usr/bin/etcd", NULL };
    long rss0 = proc_kb("/proc/self/status", "VmRSS:"), rss1;
    double t0 = now_ms(), t_apply, t_ready;
    long ready = 0;

    for (int h = 0; h < hosts; h++) {
        if (kf_runner_new("sim", &cfg, &rs[h], &err) < 0)
            kf_abort("sim: %s", err.buf);
        for (int m = 0; m < 3; m++) {
            char name[32];
            snprintf(name, sizeof(name), "etcd-%d", m);
            struct kf_proc_spec s = { .name = name, .argv = argv, .workdir = "/sim" };
            if (kf_runner_apply(rs[h], &s, &err) < 0)
                kf_abort("apply: %s", err.buf);
        }
    }
    t_apply = now_ms() - t0;
    /* The agent's loop: every virtual host drained in turn. */
    for (int h = 0; h < hosts; h++) {
        struct kf_runner_event ev;
        while (kf_runner_next_event(rs[h], 0, &ev) == 1)
            if (ev.status.phase == KF_PROC_READY)
                ready++;
    }
    t_ready = now_ms() - t0;
    rss1 = proc_kb("/proc/self/status", "VmRSS:");
    if (ready != 3L * hosts)
        kf_abort("sim: %ld of %d ready", ready, 3 * hosts);
    printf("sim runner: %d virtual hosts x 3 members: apply %.0f ms, all %ld Ready after %.0f ms "
           "(%.1f µs a member); memory %.1f KiB per host\n",
           hosts, t_apply, ready, t_ready, t_ready * 1000 / (double)ready,
           (double)(rss1 - rss0) / hosts);
    for (int h = 0; h < hosts; h++)
        kf_runner_free(rs[h]);
    free(rs);
    kf_strbuf_release(&err);
}

/* One run: PKI + 3 etcd members from nothing to healthy; ms, or -1. */
static double etcd_once(void)
{
    char *dir = tmpdir(), *pki = kf_xasprintf("%s/pki", dir);
    char *state = kf_xasprintf("%s/state", dir);
    struct kf_runner_config cfg = { .state_dir = state, .stop_grace_ms = 3000 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *lo[] = { "127.0.0.1", NULL };
    struct kf_pki_etcd_member pm[3];
    struct kf_etcd_peer peers[3];
    char *names[3], *urls[3], *files[3][4], *data[3];
    char *ca = kf_xasprintf("%s/etcd/ca.crt", pki), *cc = kf_xasprintf("%s/etcd/client.crt", pki),
         *ck = kf_xasprintf("%s/etcd/client.key", pki);
    int client[3], peer[3];
    struct kf_argv argv[3] = { { 0 } };
    struct kf_runner *r;
    double t0 = now_ms(), took = -1;

    for (int i = 0; i < 3; i++) {
        names[i] = kf_xasprintf("etcd-%c", 'a' + i);
        client[i] = kf_test_port();
        peer[i] = kf_test_port();
        urls[i] = kf_xasprintf("https://127.0.0.1:%d", peer[i]);
        pm[i] = (struct kf_pki_etcd_member){ .name = names[i], .ip_addresses = lo };
        peers[i] = (struct kf_etcd_peer){ .name = names[i], .peer_url = urls[i] };
        data[i] = kf_xasprintf("%s/data/%s", dir, names[i]);
        files[i][0] = kf_xasprintf("%s/etcd/%s-server.crt", pki, names[i]);
        files[i][1] = kf_xasprintf("%s/etcd/%s-server.key", pki, names[i]);
        files[i][2] = kf_xasprintf("%s/etcd/%s-peer.crt", pki, names[i]);
        files[i][3] = kf_xasprintf("%s/etcd/%s-peer.key", pki, names[i]);
    }
    {
        struct kf_pki_cluster_spec ps = { .cluster = "bench",
                                          .etcd_members = pm,
                                          .n_etcd_members = 3 };
        if (kf_pki_cluster_ensure(pki, &ps, &err) < 0)
            kf_abort("pki: %s", err.buf);
    }
    if (kf_runner_new("real", &cfg, &r, &err) < 0)
        kf_abort("runner: %s", err.buf);
    for (int i = 0; i < 3; i++) {
        struct kf_etcd_member_spec es = { .cluster = "bench",
                                          .name = names[i],
                                          .data_dir = data[i],
                                          .listen_ip = "127.0.0.1",
                                          .client_port = client[i],
                                          .peer_port = peer[i],
                                          .trusted_ca_file = ca,
                                          .cert_file = files[i][0],
                                          .key_file = files[i][1],
                                          .peer_cert_file = files[i][2],
                                          .peer_key_file = files[i][3],
                                          .peers = peers,
                                          .n_peers = 3 };
        struct kf_proc_spec s = { .name = names[i], .workdir = data[i] };
        if (kf_etcd_member_argv(&es, &argv[i], &err) < 0)
            kf_abort("argv: %s", err.buf);
        s.argv = (const char *const *)argv[i].v;
        s.readiness = (struct kf_probe){ .type = KF_PROBE_HTTP,
                                         .port = client[i],
                                         .path = "/health",
                                         .https = true,
                                         .ca_file = ca,
                                         .cert_file = cc,
                                         .key_file = ck,
                                         .period_ms = 50,
                                         .failure_threshold = 100 };
        if (kf_runner_apply(r, &s, &err) < 0)
            kf_abort("apply: %s", err.buf);
    }
    if (wait_all_ready(r, 3))
        took = now_ms() - t0;
    for (int i = 0; i < 3; i++) {
        kf_runner_stop(r, names[i]);
        for (double end = now_ms() + 10000; now_ms() < end;) {
            struct kf_proc_status st;
            struct kf_runner_event ev;
            if (kf_runner_get(r, names[i], &st) == 0 && st.phase == KF_PROC_STOPPED)
                break;
            kf_runner_next_event(r, 100, &ev);
        }
    }
    kf_runner_stop_all(r, 10000);
    kf_runner_free(r);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < 3; i++) {
        free(names[i]);
        free(urls[i]);
        free(data[i]);
        for (int k = 0; k < 4; k++)
            free(files[i][k]);
        kf_argv_release(&argv[i]);
    }
    free(ca);
    free(cc);
    free(ck);
    free(pki);
    free(state);
    free(dir);
    kf_strbuf_release(&err);
    return took;
}

static void bench_etcd(void)
{
    enum { RUNS = 3 };
    double t[RUNS];

    if (access("/usr/bin/etcd", X_OK) < 0) {
        printf("etcd: /usr/bin/etcd is not installed: skipped\n");
        return;
    }
    for (int i = 0; i < RUNS; i++) {
        t[i] = etcd_once();
        if (t[i] < 0)
            kf_abort("etcd did not become healthy");
    }
    printf("etcd: PKI + 3 real members (TLS, client certs) from nothing to all healthy: "
           "%.0f / %.0f / %.0f ms (target <= 5000 ms)\n",
           t[0], t[1], t[2]);
}

int main(int argc, char **argv)
{
    int n_real = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100;
    int n_sim = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 10000;

    setvbuf(stdout, NULL, _IOLBF, 0);

    bench_pki();
    bench_real(n_real);
    bench_sim(n_sim);
    bench_etcd();
    return 0;
}
