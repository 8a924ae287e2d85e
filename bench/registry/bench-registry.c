/* bench-registry.c: what the object registry costs, without HTTP.
 *
 * Creates N GuestClusters (default 10,000; one in ten labelled tier=gold)
 * through kf_registry_create, which runs full admission, then times LIST:
 *   - raw, no selector (stored bytes, no parsing: what the API writes out);
 *   - raw with a label selector (only metadata.labels is parsed);
 *   - raw with a field selector (only the selected paths are parsed);
 *   - decoded (every object parsed into jansson), the naive reference;
 *   - pages of 500 with continue tokens.
 * Each LIST runs several times; the median is printed.
 *
 * Usage: bench-registry [N] [STORE-URL]   (default 10000 memory:)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

#define RUNS 7

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

typedef size_t (*list_fn)(struct kf_registry *r, void *arg);

static double median_ms(struct kf_registry *r, list_fn fn, void *arg, size_t *ret_n)
{
    uint64_t t[RUNS];

    for (int i = 0; i < RUNS; i++) {
        uint64_t start = kf_mono_ns();

        *ret_n = fn(r, arg);
        t[i] = kf_mono_ns() - start;
    }
    qsort(t, RUNS, sizeof(t[0]), cmp_u64);
    return (double)t[RUNS / 2] / 1e6;
}

static size_t list_raw(struct kf_registry *r, void *arg)
{
    struct kf_list_opts *o = arg;
    struct kf_kv_list l = { 0 };
    char *cont = NULL;
    size_t n;

    if (kf_registry_list_raw(r, &kf_kind_guestcluster, o, &l, &cont, NULL) < 0)
        kf_abort("list failed");
    n = l.n;
    kf_kv_list_release(&l);
    free(cont);
    return n;
}

static size_t list_decoded(struct kf_registry *r, void *arg)
{
    json_t *items = NULL;
    size_t n;

    if (kf_registry_list(r, &kf_kind_guestcluster, arg, &items, NULL, NULL, NULL) < 0)
        kf_abort("list failed");
    n = json_array_size(items);
    json_decref(items);
    return n;
}

static size_t list_pages(struct kf_registry *r, void *arg)
{
    struct kf_list_opts o = { .limit = 500 };
    size_t n = 0;
    char *cont = NULL;

    (void)arg;
    do {
        struct kf_kv_list l = { 0 };

        o.continue_token = cont;
        if (kf_registry_list_raw(r, &kf_kind_guestcluster, &o, &l, &cont, NULL) < 0)
            kf_abort("list failed");
        free((char *)o.continue_token);
        n += l.n;
        kf_kv_list_release(&l);
    } while (cont);
    return n;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 10000;
    const char *url = argc > 2 ? argv[2] : "memory:";
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_selector *gold = NULL, *region = NULL;
    struct kf_store *store = NULL;
    struct kf_registry *reg;
    struct kf_list_opts none = { 0 }, by_label = { 0 }, by_field = { 0 };
    uint64_t start;
    double ms, create_s;
    size_t got;

    if (kf_store_open(url, &store, &err) < 0) {
        fprintf(stderr, "bench-registry: %s\n", err.buf);
        return 1;
    }
    reg = kf_registry_new(store);
    start = kf_mono_ns();
    for (int i = 0; i < n; i++) {
        struct kf_causes causes = KF_CAUSES_INIT;
        char name[32];
        json_t *obj;

        snprintf(name, sizeof(name), "gc-%06d", i);
        obj = json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:s}},s:{s:s,s:s,s:i,s:{s:s,s:i},"
                        "s:{s:[s,s],s:s,s:s}}}",
                        "apiVersion", "kfleet.io/v1", "kind", "GuestCluster", "metadata", "name",
                        name, "labels", "tier", i % 10 ? "silver" : "gold", "team", "infra", "spec",
                        "region", "cn-hangzhou", "version", "1.37", "expectedNodes", 10 + i % 400,
                        "network", "vpc", "vpc-1", "maxPodsPerNode", 110, "maintenanceWindow",
                        "days", "Sat", "Sun", "start", "02:00", "duration", "4h");

        if (kf_registry_create(reg, &kf_kind_guestcluster, obj, NULL, &causes, &err) < 0)
            kf_abort("create failed: %s", err.buf);
        json_decref(obj);
        kf_causes_release(&causes);
    }
    create_s = (double)(kf_mono_ns() - start) / 1e9;

    kf_selector_parse_labels("tier=gold", &gold, NULL);
    kf_selector_parse_fields("spec.region=cn-hangzhou", &region, NULL);
    by_label.labels = gold;
    by_field.fields = region;

    printf("bench-registry: %d GuestClusters in %s, median of %d runs\n", n, url, RUNS);
    printf("  create (admission + encode + store put): %.0f objects/s\n", n / create_s);
    ms = median_ms(reg, list_raw, &none, &got);
    printf("  LIST raw, no selector:            %8.2f ms  %zu items (no object parsed)\n", ms, got);
    ms = median_ms(reg, list_raw, &by_label, &got);
    printf("  LIST raw, label tier=gold:        %8.2f ms  %zu items (labels parsed only)\n", ms,
           got);
    ms = median_ms(reg, list_raw, &by_field, &got);
    printf("  LIST raw, field spec.region=...:  %8.2f ms  %zu items (spec.region parsed only)\n",
           ms, got);
    ms = median_ms(reg, list_decoded, &none, &got);
    printf("  LIST decoded (reference):         %8.2f ms  %zu items (every object parsed)\n", ms,
           got);
    ms = median_ms(reg, list_pages, NULL, &got);
    printf("  LIST raw in pages of 500:         %8.2f ms  %zu items\n", ms, got);

    kf_selector_free(gold);
    kf_selector_free(region);
    kf_registry_free(reg);
    kf_store_close(store);
    kf_strbuf_release(&err);
    return 0;
}
