/* bench-capacity.c: the capacity controllers as kfleetd runs them, end to
 * end on the memory store (the library alone is bench/placement):
 *
 *   1. placement through the controllers: a region of UNITS units (3 zones,
 *      9 hosts of 64 CPU / 256 GiB each, every host Ready), five VPCs with a
 *      /8 IPPool each, and
 *      CLUSTERS GuestClusters of a mix of grades created through the
 *      registry while the profiles, host-lifecycle, unit-status and
 *      placement controllers run; measured from the first create to the
 *      moment every cluster is Scheduled or Pending and the queues are idle:
 *      decisions a second (each one: settings, grade, kf_place, ranges
 *      persisted in the IPPool, status, finalizer, ~10 members created), the
 *      store writes it took, RSS per cluster;
 *   2. heartbeats through the API: HOSTS Host objects, kfleetd's API server
 *      on a free port, batches of 10,000 names POSTed to
 *      /apis/kfleet.io/v1/heartbeats over one keep-alive connection (then
 *      two), after a first round that looks every name up in the store.
 *
 * Prints what it measured; targets in DESIGN.md §9 (>= 100,000 heartbeats a
 * second on one core; placement's own target is the library's).
 *
 * Usage: bench-capacity [--clusters N] [--units N] [--hosts N]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>
#include <curl/curl.h>

#include <jansson.h>

#include "kfleet/api.h"
#include "kfleet/capacity.h"
#include "kfleet/controllers.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/lease.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

#define N_VPCS 5

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = 0;

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* CPU time (user + system) of the process so far, in seconds. */
static double cpu_secs(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void create(struct kf_registry *reg, const struct kf_kind *k, const char *text)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *obj = NULL;

    if (kf_json_parse(text, strlen(text), &obj, &err) < 0 ||
        kf_registry_create(reg, k, obj, NULL, &causes, &err) < 0) {
        fprintf(stderr, "bench-capacity: cannot create %s: %s\n", text, err.buf);
        exit(1);
    }
    json_decref(obj);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

static size_t decided(struct kf_registry *reg, size_t *ret_pending)
{
    json_t *items = NULL, *c;
    size_t i, n = 0, pending = 0;

    kf_registry_list(reg, &kf_kind_guestcluster, NULL, &items, NULL, NULL, NULL);
    json_array_foreach(items, i, c)
    {
        const char *phase = kf_json_str(c, "status.phase", "");

        if (!strcmp(phase, "Scheduled") && kf_json_int(c, "status.members.desired", 0) > 0)
            n++;
        else if (!strcmp(phase, "Pending") && kf_json_path(c, "status.conditions"))
            n++, pending++;
    }
    json_decref(items);
    *ret_pending = pending;
    return n;
}

/* Reconciles of each controller, summed into *ret by name. */
struct ctrl_counts {
    const char *name[8];
    uint64_t reconciles[8];
    size_t n;
};

static void count_ctrl(struct kf_ctrl *c, void *arg)
{
    struct ctrl_counts *cc = arg;
    struct kf_ctrl_stats st;

    if (cc->n >= KF_ARRAY_SIZE(cc->name))
        return;
    kf_ctrl_stats(c, &st);
    cc->name[cc->n] = kf_ctrl_name(c);
    cc->reconciles[cc->n++] = st.reconciles;
}

static void bench_placement(int n_clusters, int n_units)
{
    struct ctrl_counts cc0 = { 0 }, cc1 = { 0 };
    double cpu0, cpu1;
    static const int mix_nodes[] = { 5, 5, 5, 5, 8, 50, 50, 60, 200, 400 }; /* G0 x5 .. G3 */
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_store *store;
    struct kf_registry *reg;
    struct kf_lease_table *leases;
    struct kf_ctrl_manager *m;
    struct kf_capacity_options opts;
    struct kf_ctrl_env env = { 0 };
    struct kf_store_status st0, st1;
    char buf[1024];
    uint64_t t0, t1;
    long rss0, rss1;
    size_t pending = 0, done = 0;

    kf_store_open("memory:", &store, &err);
    reg = kf_registry_new(store);
    leases = kf_lease_table_new(kf_now_ms());
    create(reg, &kf_kind_region,
           "{\"metadata\":{\"name\":\"r\"},\"spec\":{\"zones\":[\"a\",\"b\",\"c\"]}}");
    for (int v = 0; v < N_VPCS; v++) {
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"name\":\"vpc-%d\"},\"spec\":{\"vpc\":\"vpc-%d\",\"cidrs\":"
                 "[\"%d.0.0.0/8\"],\"serviceCIDRs\":[\"172.16.0.0/16\"]}}",
                 v, v, 10 * (v + 1));
        create(reg, &kf_kind_ippool, buf);
    }
    for (int u = 0; u < n_units; u++) {
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"name\":\"u%02d\"},\"spec\":{\"region\":\"r\",\"zones\":"
                 "[\"a\",\"b\",\"c\"]}}",
                 u);
        create(reg, &kf_kind_unit, buf);
        for (int h = 0; h < 9; h++) {
            char name[32];

            snprintf(name, sizeof(name), "u%02d-h%d", u, h);
            snprintf(buf, sizeof(buf),
                     "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"role\":\"meta\",\"unit\":"
                     "\"u%02d\",\"zone\":\"%c\",\"capacity\":{\"cpu\":\"64\",\"memory\":"
                     "\"256Gi\"}}}",
                     name, u, 'a' + h % 3);
            create(reg, &kf_kind_host, buf);
            kf_lease_renew(leases, name, kf_now_ms());
        }
    }
    kf_capacity_options_default(&opts);
    opts.host_grace_ms = 3600 * 1000;
    env.store = store;
    env.reg = reg;
    env.leases = leases;
    env.capacity = &opts;
    env.enabled = "profiles,host-lifecycle,unit-status,placement";
    m = kf_ctrl_manager_new(store, reg);
    if (kf_ctrl_manager_add_defs(m, &env, &err) < 0 || kf_ctrl_manager_start(m) < 0) {
        fprintf(stderr, "bench-capacity: controllers: %s\n", err.buf);
        exit(1);
    }
    kf_ctrl_manager_wait_idle(m, 60000);
    sleep(1); /* hosts Ready */
    kf_ctrl_manager_wait_idle(m, 60000);
    kf_store_status(store, &st0);
    kf_ctrl_manager_foreach(m, count_ctrl, &cc0);
    rss0 = rss_kib();
    cpu0 = cpu_secs();
    t0 = kf_mono_ns();
    for (int i = 0; i < n_clusters; i++) {
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"name\":\"c%05d\"},\"spec\":{\"region\":\"r\","
                 "\"expectedNodes\":%d,\"network\":{\"vpc\":\"vpc-%d\"}}}",
                 i, mix_nodes[i % 10], i % N_VPCS);
        create(reg, &kf_kind_guestcluster, buf);
    }
    t1 = kf_mono_ns();
    /* Counting the decided clusters lists (and parses) every cluster: done
     * when the controllers are idle, or every five seconds if they never
     * are, so that the polling costs little of the CPU measured below. */
    for (uint64_t last = kf_mono_ns();;) {
        if (!kf_ctrl_manager_wait_idle(m, 1000) && kf_mono_ns() - last < 5000000000ull)
            continue;
        last = kf_mono_ns();
        done = decided(reg, &pending);
        if (done == (size_t)n_clusters)
            break;
    }
    kf_ctrl_manager_wait_idle(m, 60000);
    rss1 = rss_kib();
    {
        uint64_t t2 = kf_mono_ns();

        kf_store_status(store, &st1);
        kf_ctrl_manager_foreach(m, count_ctrl, &cc1);
        cpu1 = cpu_secs();
        printf("placement through the controllers (memory store, %d units x 9 hosts of 64 CPU / "
               "256 GiB, %d VPCs of one /8 IPPool each):\n",
               n_units, N_VPCS);
        printf("  %d clusters created in %.2f s; all decided %.2f s after the first create: "
               "%.0f decisions/s, %.2f ms each\n",
               n_clusters, secs(t1 - t0), secs(t2 - t0), n_clusters / secs(t2 - t0),
               secs(t2 - t0) * 1000 / n_clusters);
        printf("  %zu placed, %zu Pending (no unit with headroom, or no range left)\n",
               done - pending, pending);
        printf(
            "  store revisions: %lld (%.1f per cluster: finalizer, status with the ranges, members "
            "in one transaction, unit and host status)\n",
            (long long)(st1.rev - st0.rev), (double)(st1.rev - st0.rev) / n_clusters);
        printf("  CPU (every thread, the benchmark's polling included): %.2f s, %.2f ms a "
               "cluster: %.0f decisions per CPU-second\n",
               cpu1 - cpu0, (cpu1 - cpu0) * 1000 / n_clusters, n_clusters / (cpu1 - cpu0));
        printf("  reconciles per cluster:");
        for (size_t i = 0; i < cc1.n && i < cc0.n; i++)
            printf(" %s %.2f%s", cc1.name[i],
                   (double)(cc1.reconciles[i] - cc0.reconciles[i]) / n_clusters,
                   i + 1 < cc1.n ? "," : "\n");
        printf("  RSS %ld -> %ld KiB: %.1f KiB per cluster (store, informers, models, "
               "members included)\n",
               rss0, rss1, (double)(rss1 - rss0) / n_clusters);
    }
    {
        /* What the burst cost in all: host-lifecycle writes a host's
         * allocation some seconds after its members arrived (a delayed,
         * folded reconcile the idle wait above does not count), so the
         * burst is over when the store has had no write for SETTLE_S
         * (longer than that delay); the same totals from the first create,
         * that quiet time's CPU included. */
        enum { SETTLE_S = 7, SETTLE_MAX_S = 90 };
        int64_t last_rev = 0;
        int quiet = 0;

        for (int s = 0; s < SETTLE_MAX_S && quiet < SETTLE_S; s++) {
            kf_store_status(store, &st1);
            quiet = st1.rev == last_rev ? quiet + 1 : 0;
            last_rev = st1.rev;
            sleep(1);
        }
        kf_ctrl_manager_wait_idle(m, 60000);
        kf_store_status(store, &st1);
        memset(&cc1, 0, sizeof(cc1));
        kf_ctrl_manager_foreach(m, count_ctrl, &cc1);
        cpu1 = cpu_secs();
        printf("  settled (no store write for %d s%s): store revisions %.1f per cluster, CPU "
               "%.2f s (%.2f ms a cluster), reconciles per cluster:",
               SETTLE_S, quiet < SETTLE_S ? ", not reached" : "",
               (double)(st1.rev - st0.rev) / n_clusters, cpu1 - cpu0,
               (cpu1 - cpu0) * 1000 / n_clusters);
        for (size_t i = 0; i < cc1.n && i < cc0.n; i++)
            printf(" %s %.2f%s", cc1.name[i],
                   (double)(cc1.reconciles[i] - cc0.reconciles[i]) / n_clusters,
                   i + 1 < cc1.n ? "," : "\n");
    }
    kf_ctrl_manager_free(m);
    kf_lease_table_free(leases);
    kf_registry_free(reg);
    kf_store_close(store);
    kf_strbuf_release(&err);
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

struct hb_job {
    const char *url;
    const char *body;
    size_t len;
    int rounds;
    long status;
};

static void *post_rounds(void *arg)
{
    struct hb_job *j = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

    curl_easy_setopt(c, CURLOPT_URL, j->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)j->len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    for (int r = 0; r < j->rounds; r++) {
        curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &j->status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static void bench_heartbeats(int n_hosts)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_store *store;
    struct kf_registry *reg;
    struct kf_lease_table *leases;
    struct kf_api_config cfg;
    struct kf_api *api;
    const int batch = KF_API_MAX_HEARTBEATS;
    int n_batches = (n_hosts + batch - 1) / batch;
    struct kf_strbuf *bodies = kf_xcalloc((size_t)n_batches, sizeof(*bodies));
    char url[128], buf[512];
    uint64_t t0;

    kf_store_open("memory:", &store, &err);
    reg = kf_registry_new(store);
    leases = kf_lease_table_new(kf_now_ms());
    for (int i = 0; i < n_hosts; i++) {
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"name\":\"host-%07d\"},\"spec\":{\"role\":\"worker\","
                 "\"cluster\":\"c\",\"zone\":\"a\"}}",
                 i);
        create(reg, &kf_kind_host, buf);
    }
    for (int b = 0; b < n_batches; b++) {
        kf_strbuf_addstr(&bodies[b], "{\"hosts\":[");
        for (int i = b * batch; i < KF_MIN((b + 1) * batch, n_hosts); i++)
            kf_strbuf_addf(&bodies[b], "%s\"host-%07d\"", i == b * batch ? "" : ",", i);
        kf_strbuf_addstr(&bodies[b], "]}");
    }
    kf_api_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.threads = 2;
    if (kf_api_new(&cfg, reg, NULL, &api, &err) < 0 || kf_api_set_leases(api, leases) < 0 ||
        kf_api_start(api, &err) < 0) {
        fprintf(stderr, "bench-capacity: api: %s\n", err.buf);
        exit(1);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/apis/kfleet.io/v1/heartbeats",
             kf_api_port(api));
    printf("heartbeats through the API (%d Hosts, batches of %d names, %zu-byte bodies):\n",
           n_hosts, batch, bodies[0].len);
    for (int pass = 0; pass < 3; pass++) {
        int threads = pass == 2 ? 2 : 1, rounds = pass == 0 ? 1 : 5;
        pthread_t tid[2];
        struct hb_job jobs[2][64];
        long status = 0;

        t0 = kf_mono_ns();
        for (int b = 0; b < n_batches; b += threads) {
            for (int t = 0; t < threads && b + t < n_batches; t++) {
                jobs[t][0] =
                    (struct hb_job){ url, bodies[b + t].buf, bodies[b + t].len, rounds, 0 };
                pthread_create(&tid[t], NULL, post_rounds, &jobs[t][0]);
            }
            for (int t = 0; t < threads && b + t < n_batches; t++) {
                pthread_join(tid[t], NULL);
                status = jobs[t][0].status;
            }
        }
        {
            double s = secs(kf_mono_ns() - t0);

            printf("  %s: %.0f heartbeats/s (%d rounds, HTTP %ld)\n",
                   pass == 0   ? "first beat (each name looked up in the store)"
                   : pass == 1 ? "renewals, 1 client connection"
                               : "renewals, 2 client connections",
                   (double)n_hosts * rounds / s, rounds, status);
        }
    }
    printf("  lease table: %zu leases; store revision unchanged by heartbeats\n",
           kf_lease_count(leases));
    kf_api_free(api);
    for (int b = 0; b < n_batches; b++)
        kf_strbuf_release(&bodies[b]);
    free(bodies);
    kf_lease_table_free(leases);
    kf_registry_free(reg);
    kf_store_close(store);
    kf_strbuf_release(&err);
}

int main(int argc, char **argv)
{
    int clusters = 2000, units = 30, hosts = 100000;
    char host[256] = "?";
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    for (int i = 1; i + 1 < argc; i += 2) {
        int *v = !strcmp(argv[i], "--clusters") ? &clusters
                 : !strcmp(argv[i], "--units")  ? &units
                 : !strcmp(argv[i], "--hosts")  ? &hosts
                                                : NULL;

        if (!v || kf_parse_int(argv[i + 1], v) < 0 || *v < (v == &hosts ? 0 : 1)) {
            fprintf(stderr, "usage: bench-capacity [--clusters N] [--units N] [--hosts N]\n");
            return 2;
        }
    }
    kf_log_set_spec("warn", NULL); /* one info line per decision would be the benchmark */
    gethostname(host, sizeof(host));
    printf("bench-capacity on %s, %ld CPUs\n", host, cpus);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    bench_placement(clusters, units);
    if (hosts) /* --hosts 0: placement only */
        bench_heartbeats(hosts);
    curl_global_cleanup();
    return 0;
}
