/* bench-placement.c: placement + member binding + IPAM for a fleet of
 * 20 regions, 200 units (3 zones each) and 10,000 guest clusters, placed one
 * by one through the real library code (kf_grade_decide, kf_place,
 * kf_place_commit, kf_ipam_allocate), as the placement controller will.
 *
 * Prints: total time, time per decision (mean, p50, p99, max), memory per
 * cluster (RSS delta / clusters), the distribution of unit water levels (and
 * fails if any unit ends above its mark), how many clusters stayed Pending
 * and why, and as a reference measured in the same run the cost of the
 * explain path (every filter of every unit, no short cut) on a sample.
 * Targets (DESIGN.md §9): <= 1 s in all, <= 100 us a decision, <= 8 KiB a
 * cluster. The fleet is generated from a fixed seed (--seed N to change).
 *
 * Usage: bench-placement [--seed N] [--clusters N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kfleet/cidr.h"
#include "kfleet/grade.h"
#include "kfleet/ipam.h"
#include "kfleet/placement.h"
#include "kfleet/strbuf.h"

#define N_REGIONS    20
#define UNITS_PER    10
#define N_UNITS      (N_REGIONS * UNITS_PER)
#define VPCS_PER     5
#define MAX_HOSTS    30
#define MAX_CLUSTERS 100000

static const char *const region_names[N_REGIONS] = {
    "cn-hangzhou",    "cn-shanghai",    "cn-beijing",     "cn-shenzhen",    "cn-zhangjiakou",
    "cn-chengdu",     "cn-qingdao",     "cn-hongkong",    "ap-southeast-1", "ap-southeast-2",
    "ap-southeast-3", "ap-southeast-5", "ap-northeast-1", "ap-south-1",     "us-west-1",
    "us-east-1",      "eu-central-1",   "eu-west-1",      "me-east-1",      "ap-southeast-6",
};

static const char *const zone_names[3] = { "a", "b", "c" };
static const char *const tag_gdpr[] = { "gdpr" };
static const char *const tag_mlps[] = { "cn-mlps3" };
static const char *const feat_gpu[] = { "gpu" };
static const char *const feat_edge[] = { "edge" };
static const char *const feat_windows[] = { "windows" };
static const char *const feat_baremetal[] = { "baremetal" };
static const char *const feat_dedicated[] = { "dedicated" };

enum profile { P_STANDARD, P_SERVERLESS, P_AI, P_EDGE, P_BAREMETAL, P_WINDOWS, P_COUNT };
static const char *const profile_names[P_COUNT] = { "standard", "serverless", "ai",
                                                    "edge",     "baremetal",  "windows" };

struct bench_cluster {
    char name[16];
    uint16_t region;
    int8_t grade;
    uint8_t profile;
    int16_t unit; /* -1: Pending */
    uint8_t vpc;
    uint8_t n_bindings;
    struct kf_place_binding *bindings;
    int64_t nodes;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static double rnd01(void)
{
    return (double)(rnd() >> 11) / (double)(1ull << 53);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A reason class for the Pending summary. */
static const char *reason_class(const char *msg, char *buf, size_t size)
{
    const char *f = strstr(msg, "lacks feature \"");

    if (strncmp(msg, "ipam:", 5) == 0)
        return "IP ranges: no free block in the VPC";
    if (f) {
        const char *end = strchr(f + 15, '"');
        snprintf(buf, size, "no unit in the region offers feature \"%.*s\"",
                 end ? (int)(end - f - 15) : 8, f + 15);
        return buf;
    }
    if (strstr(msg, "compliance tag"))
        return "no unit in the region carries the compliance tag";
    if (strstr(msg, "has headroom"))
        return "no unit with headroom (water level)";
    if (strstr(msg, "quota"))
        return "units at quota";
    if (strstr(msg, " or above out of "))
        return "grade ratio limit";
    if (strstr(msg, "reserved for clusters"))
        return "only dedicated units left";
    if (strstr(msg, "no host in zone"))
        return "no host fits a member";
    return msg;
}

struct reason_count {
    char cls[KF_PLACE_MESSAGE_MAX];
    char example[KF_PLACE_MESSAGE_MAX];
    unsigned n;
};

int main(int argc, char **argv)
{
    static struct kf_place_unit units[N_UNITS];
    static struct kf_place_host hosts[N_UNITS][MAX_HOSTS];
    static char host_names[N_UNITS][MAX_HOSTS][48], unit_names[N_UNITS][24];
    static struct kf_ipam_vpc *vpcs[N_REGIONS][VPCS_PER];
    static struct reason_count reasons[32];
    struct kf_grade_table table;
    struct kf_placer placer;
    struct kf_place_result *res = kf_xmalloc(sizeof(*res));
    struct bench_cluster *cl;
    uint64_t *dt, t_start, t_all = 0, c_start, c_all, seed = 20261127;
    unsigned n_clusters = 10000, pending = 0, by_grade[KF_GRADE_COUNT] = { 0 },
             by_profile[P_COUNT] = { 0 }, n_reasons = 0, above = 0, hist[21] = { 0 };
    long rss_before, rss_after;
    size_t ipam_bytes = 0, host_total = 0;
    struct kf_strbuf err = KF_STRBUF_INIT;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            kf_parse_uint64(argv[++i], &seed);
        } else if (strcmp(argv[i], "--clusters") == 0 && i + 1 < argc) {
            uint64_t v;
            if (kf_parse_uint64(argv[++i], &v) == 0 && v > 0 && v <= MAX_CLUSTERS)
                n_clusters = (unsigned)v;
        } else {
            fprintf(stderr, "usage: bench-placement [--seed N] [--clusters N]\n");
            return 2;
        }
    }
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
    kf_grade_table_default(&table);
    kf_placer_init(&placer, NULL);

    /* --- the fleet: 20 regions x 10 units x 3 zones ------------------------- */
    for (int r = 0; r < N_REGIONS; r++) {
        bool eu = strncmp(region_names[r], "eu-", 3) == 0;
        bool cn = strncmp(region_names[r], "cn-", 3) == 0;

        for (int k = 0; k < UNITS_PER; k++) {
            int ui = r * UNITS_PER + k;
            struct kf_place_unit *u = &units[ui];
            static const unsigned host_counts[] = { 6, 9, 9, 12, 12, 15 };
            unsigned n_hosts = host_counts[rnd() % 6];
            int cores = rnd() % 3 == 0 ? 96 : 64;
            int gib = cores * 4;

            snprintf(unit_names[ui], sizeof(unit_names[ui]), "%s-u%d", region_names[r], k + 1);
            u->name = unit_names[ui];
            u->region = region_names[r];
            u->zones = zone_names;
            u->n_zones = 3;
            u->hosts = hosts[ui];
            u->cost_per_core = cores == 96 ? 0.9 : 1.0;
            u->performance = cores == 96 ? 1.2 : 1.0;
            u->max_clusters = 120;
            u->ratios[0] = (struct kf_place_ratio){ KF_G4, true, 0.10 };
            u->n_ratios = 1;
            if (eu) {
                u->region_compliance = tag_gdpr;
                u->n_region_compliance = 1;
            } else if (cn) {
                u->region_compliance = tag_mlps;
                u->n_region_compliance = 1;
            }
            if (k == 0) { /* a GPU unit per region: big-memory hosts, few of them */
                u->features = feat_gpu;
                u->n_features = 1;
                n_hosts = 6;
                gib = 512;
            } else if (k == 1 && r % 2 == 0) {
                u->features = feat_edge;
                u->n_features = 1;
            } else if (k == 2 && r % 5 == 0) {
                u->features = feat_windows;
                u->n_features = 1;
            } else if (k == 3 && r % 3 == 0) {
                u->features = feat_baremetal;
                u->n_features = 1;
            } else if (k == 9 && r % 4 == 0) {
                u->features = feat_dedicated;
                u->n_features = 1;
            }
            for (unsigned h = 0; h < n_hosts; h++) {
                struct kf_place_host *ho = &hosts[ui][h];

                snprintf(host_names[ui][h], sizeof(host_names[ui][h]), "%s-%s-%02u", unit_names[ui],
                         zone_names[h % 3], h / 3 + 1);
                ho->name = host_names[ui][h];
                ho->zone = h % 3;
                ho->capacity.cpu_milli = cores * 1000LL;
                ho->capacity.mem_bytes = gib * KF_GIB;
                ho->ready = rnd() % 100 != 0; /* 1 % of hosts NotReady */
            }
            u->n_hosts = n_hosts;
            host_total += n_hosts;
            kf_place_unit_refresh(u);
        }
        for (int v = 0; v < VPCS_PER; v++) {
            struct kf_ipam_pool pool = { { 0 }, NULL };
            struct kf_ipam_reserved resv = { { 0 }, "peered idc" };
            struct kf_ipam_vpc_config cfg = { 0 };
            char name[48];

            kf_cidr_parse("10.0.0.0/8", &pool.cidr, NULL);
            kf_cidr_parse("10.255.0.0/16", &resv.cidr, NULL);
            snprintf(name, sizeof(name), "%s-vpc-%d", region_names[r], v + 1);
            cfg.name = name;
            cfg.pools = &pool;
            cfg.n_pools = 1;
            cfg.reserved = &resv;
            cfg.n_reserved = 1;
            if (kf_ipam_vpc_new(&cfg, &vpcs[r][v], &err) < 0) {
                fprintf(stderr, "bench: vpc: %s\n", err.buf);
                return 1;
            }
        }
    }

    /* --- the clusters: mostly G0/G1, a tail of G3-G5, mixed profiles ----- */
    cl = kf_xcalloc(n_clusters, sizeof(*cl));
    dt = kf_xcalloc(n_clusters, sizeof(*dt));
    for (unsigned i = 0; i < n_clusters; i++) {
        static const double grade_cdf[KF_GRADE_COUNT] = { 0.45, 0.78, 0.90, 0.96, 0.99, 1.0 };
        static const double prof_cdf[P_COUNT] = { 0.70, 0.82, 0.90, 0.96, 0.98, 1.0 };
        double x = rnd01(), y = rnd01();
        int g = 0, p = 0;
        int64_t lo, hi;

        while (g < KF_GRADE_COUNT - 1 && x > grade_cdf[g])
            g++;
        while (p < P_COUNT - 1 && y > prof_cdf[p])
            p++;
        if (p == P_AI && g > KF_G3)
            g = KF_G3;
        if (p == P_EDGE && g > KF_G2)
            g = KF_G1;
        snprintf(cl[i].name, sizeof(cl[i].name), "gc-%05u", i);
        cl[i].region = (uint16_t)(rnd() % N_REGIONS);
        cl[i].profile = (uint8_t)p;
        cl[i].vpc = (uint8_t)(rnd() % VPCS_PER);
        lo = g == 0 ? 1 : table.grades[g - 1].max_nodes + 1;
        hi = table.grades[g].max_nodes;
        cl[i].nodes = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
        cl[i].unit = -1;
    }

    /* --- place them one by one -------------------------------------------- */
    rss_before = rss_kib();
    t_start = now_ns();
    c_start = cpu_ns();
    for (unsigned i = 0; i < n_clusters; i++) {
        struct bench_cluster *b = &cl[i];
        struct kf_place_cluster c = { 0 };
        const char *const *compliance = NULL;
        uint64_t t0 = now_ns();
        int grade;

        grade = kf_grade_decide(&table, -1, b->nodes, -1, -1, NULL);
        b->grade = (int8_t)grade;
        c.name = b->name;
        c.region = region_names[b->region];
        c.grade = grade;
        c.shape = &table.grades[grade];
        c.expected_nodes = b->nodes;
        if (strncmp(c.region, "eu-", 3) == 0 && i % 2 == 0)
            compliance = tag_gdpr;
        if (b->profile == P_STANDARD && i % 97 == 0)
            compliance = tag_gdpr; /* a few ask for gdpr outside the EU: Pending */
        if (compliance) {
            c.compliance = compliance;
            c.n_compliance = 1;
        }
        switch (b->profile) {
        case P_AI:
            c.features = feat_gpu;
            c.n_features = 1;
            break;
        case P_EDGE:
            c.features = feat_edge;
            c.n_features = 1;
            break;
        case P_BAREMETAL:
            c.features = feat_baremetal;
            c.n_features = 1;
            break;
        case P_WINDOWS:
            c.features = feat_windows;
            c.n_features = 1;
            break;
        default:
            break;
        }
        if (kf_place(&placer, units, N_UNITS, &c, res) == 0) {
            struct kf_ipam_request req = {
                .cluster = b->name,
                .expected_nodes = b->nodes,
                .max_pods_per_node = i % 5 == 0 ? 64 : 110,
            };
            struct kf_ipam_alloc alloc;

            kf_strbuf_reset(&err);
            if (kf_ipam_allocate(vpcs[b->region][b->vpc], &req, &alloc, &err) == 0) {
                kf_place_commit(units, &c, res);
                b->unit = (int16_t)res->unit;
                b->n_bindings = (uint8_t)res->n_bindings;
                b->bindings = kf_xmemdup(res->bindings, res->n_bindings * sizeof(*res->bindings));
            } else {
                snprintf(res->message, sizeof(res->message), "ipam: %s", err.buf);
            }
        }
        dt[i] = now_ns() - t0;
        if (b->unit < 0) {
            char buf[96];
            const char *cls = reason_class(res->message, buf, sizeof(buf));
            unsigned k;

            pending++;
            for (k = 0; k < n_reasons; k++)
                if (strcmp(reasons[k].cls, cls) == 0)
                    break;
            if (k == n_reasons && n_reasons < KF_ARRAY_SIZE(reasons)) {
                snprintf(reasons[k].cls, sizeof(reasons[k].cls), "%s", cls);
                snprintf(reasons[k].example, sizeof(reasons[k].example), "%s", res->message);
                n_reasons++;
            }
            if (k < n_reasons)
                reasons[k].n++;
        } else {
            by_grade[b->grade]++;
            by_profile[b->profile]++;
        }
    }
    t_all = now_ns() - t_start;
    c_all = cpu_ns() - c_start;
    rss_after = rss_kib();

    /* --- results ---------------------------------------------------------- */
    {
        uint64_t sum = 0, *sorted = kf_xmemdup(dt, n_clusters * sizeof(*dt));
        unsigned placed = n_clusters - pending;

        for (unsigned i = 0; i < n_clusters; i++)
            sum += dt[i];
        qsort(sorted, n_clusters, sizeof(*sorted), cmp_u64);
        for (int r = 0; r < N_REGIONS; r++) {
            for (int v = 0; v < VPCS_PER; v++) {
                struct kf_ipam_stats st;
                kf_ipam_vpc_stats(vpcs[r][v], &st);
                ipam_bytes += st.bytes;
                if (kf_ipam_vpc_check(vpcs[r][v], &err) < 0) {
                    fprintf(stderr, "bench: IPAM invariant broken: %s\n", err.buf);
                    return 1;
                }
            }
        }
        printf("fleet:     %d regions, %d units (3 zones each), %zu hosts, %d VPCs; seed %llu\n",
               N_REGIONS, N_UNITS, host_total, N_REGIONS * VPCS_PER, (unsigned long long)seed);
        printf("clusters:  %u (G0 %u, G1 %u, G2 %u, G3 %u, G4 %u, G5 %u placed)\n", n_clusters,
               by_grade[0], by_grade[1], by_grade[2], by_grade[3], by_grade[4], by_grade[5]);
        printf("profiles:  placed");
        for (int p = 0; p < P_COUNT; p++)
            printf(" %s %u", profile_names[p], by_profile[p]);
        printf("\n");
        printf("what:      per cluster: grade, kf_place over all %d units (filters, scores, member "
               "binding), commit, IPAM allocation of node/pod/service ranges\n",
               N_UNITS);
        printf("total:     %.3f s wall, %.3f s cpu for %u decisions (target <= 1 s)\n", t_all / 1e9,
               c_all / 1e9, n_clusters);
        printf("decision:  mean %.1f us, p50 %.1f us, p99 %.1f us, max %.1f us (target <= 100 "
               "us)\n",
               (double)sum / n_clusters / 1e3, sorted[n_clusters / 2] / 1e3,
               sorted[(size_t)(n_clusters * 0.99)] / 1e3, sorted[n_clusters - 1] / 1e3);
        printf("memory:    RSS %ld -> %ld KiB: %.2f KiB per cluster (target <= 8 KiB); IPAM "
               "holds %.2f KiB per placed cluster\n",
               rss_before, rss_after, (double)(rss_after - rss_before) / n_clusters,
               placed ? (double)ipam_bytes / 1024 / placed : 0.0);
        free(sorted);
    }
    {
        double max_level = 0, sum_level = 0;

        for (int u = 0; u < N_UNITS; u++) {
            struct kf_unit_water w;
            double lvl;

            kf_unit_water(&units[u], &placer.policy, &table, &w);
            lvl = KF_MAX(w.cpu, w.mem);
            if (w.above) {
                above++;
                fprintf(stderr, "unit %s is above its mark: cpu %.3f mem %.3f mark %.2f\n",
                        units[u].name, w.cpu, w.mem, w.mark);
            }
            hist[KF_MIN((int)(lvl * 20), 20)]++;
            max_level = KF_MAX(max_level, lvl);
            sum_level += lvl;
        }
        printf("water:     units by max(cpu, memory) requests / allocatable (mark 60 %%); mean "
               "%.1f %%, max %.1f %%; above the mark: %u\n",
               sum_level / N_UNITS * 100, max_level * 100, above);
        for (int b = 0; b < 20; b++) {
            if (!hist[b])
                continue;
            printf("  %3d-%3d %% %4u ", b * 5, b * 5 + 5, hist[b]);
            for (unsigned s = 0; s < hist[b]; s += 2)
                putchar('#');
            putchar('\n');
        }
    }
    printf("pending:   %u of %u\n", pending, n_clusters);
    for (unsigned k = 0; k < n_reasons; k++)
        printf("  %5u  %s\n         e.g. %s\n", reasons[k].n, reasons[k].cls, reasons[k].example);

    /* --- reference: the explain path on a sample -------------------------- */
    {
        unsigned sample = KF_MIN(n_clusters, 1000u);
        uint64_t t0 = now_ns();

        for (unsigned i = 0; i < sample; i++) {
            struct kf_place_cluster c = { 0 };
            struct kf_place_explain e;

            c.name = cl[i].name;
            c.region = region_names[cl[i].region];
            c.grade = cl[i].grade;
            c.shape = &table.grades[cl[i].grade];
            c.expected_nodes = cl[i].nodes;
            kf_place_explain(&placer, units, N_UNITS, &c, &e);
            kf_place_explain_release(&e);
        }
        printf("reference: kf_place_explain (all filters of all %d units, reasons written) "
               "%.1f us a cluster on %u clusters of the final fleet\n",
               N_UNITS, (double)(now_ns() - t0) / sample / 1e3, sample);
    }

    for (unsigned i = 0; i < n_clusters; i++)
        free(cl[i].bindings);
    for (int r = 0; r < N_REGIONS; r++)
        for (int v = 0; v < VPCS_PER; v++)
            kf_ipam_vpc_free(vpcs[r][v]);
    free(cl);
    free(dt);
    free(res);
    kf_strbuf_release(&err);
    kf_placer_release(&placer);
    if (above) {
        printf("FAIL: %u units above their mark\n", above);
        return 1;
    }
    return 0;
}
