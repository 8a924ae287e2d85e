/* kind-ippool.c: IPPool, the address ranges of one VPC (per zone where the
 * network needs it) from which IPAM draws each guest cluster's node, pod and
 * service ranges. The spec is what the network team owns. The ranges
 * handed out are recorded on the clusters that use them (GuestCluster
 * status.network, written with the placement); the pool's status sums
 * them up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/cidr.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const purposes[] = { "node", "pod", "service", NULL };

static const struct kf_field ippool_spec_fields[] = {
    KF_STRING("vpc", "The VPC these ranges belong to; clusters name it in spec.network.vpc.",
              .flags = KF_F_REQUIRED | KF_F_IMMUTABLE, .format = KF_FMT_DNS_SUBDOMAIN),
    KF_STRING("region", "The Region of the VPC.", .format = KF_FMT_DNS_LABEL),
    KF_STRING("zone", "Zone the ranges serve (node and pod vSwitches are zonal); absent: all.",
              .format = KF_FMT_DNS_LABEL),
    KF_ARRAY("cidrs", "Ranges node and pod ranges are drawn from.",
             KF_ITEM_STRING(.format = KF_FMT_CIDR), .flags = KF_F_REQUIRED | KF_F_UNIQUE,
             .min_len = 1, .max_len = 64),
    KF_ARRAY("serviceCIDRs",
             "Ranges service ranges are drawn from; they may repeat across clusters of the VPC "
             "but never overlap node or pod ranges.",
             KF_ITEM_STRING(.format = KF_FMT_CIDR), .flags = KF_F_UNIQUE, .max_len = 16),
    KF_ARRAY("reserved", "Ranges never allocated (peered VPCs, data centres, gateways).",
             KF_ITEM_STRING(.format = KF_FMT_CIDR), .flags = KF_F_UNIQUE, .max_len = 256),
    KF_ARRAY("purposes", "What the pool's cidrs serve.", KF_ITEM_STRING(.enum_values = purposes),
             .flags = KF_F_UNIQUE, .min_len = 1, .max_len = 3, .dflt = "[\"node\",\"pod\"]"),
    KF_INT("servicePrefix", "Prefix length of allocated service ranges (20 = 4,096 addresses).",
           .flags = KF_F_MIN | KF_F_MAX, .min = 12, .max = 29, .dflt = "20"),
    KF_END,
};

static const struct kf_schema ippool_spec = {
    .description = "Desired state of an IPPool.",
    .fields = ippool_spec_fields,
};

static const struct kf_field ippool_status_fields[] = {
    KF_INT("clusters", "Guest clusters whose pod range comes from this pool.", .flags = KF_F_MIN,
           .min = 0),
    KF_ARRAY("allocations",
             "Neither written nor read by kfleetd: the ranges it hands out are recorded in "
             "each GuestCluster's status.network (and summed up in clusters and "
             "allocatedAddresses); ranges it must never hand out go in spec.reserved.",
             KF_ITEM_OBJECT(KF_FIELDS(
                 KF_STRING("cluster", "The GuestCluster.", .flags = KF_F_REQUIRED,
                           .format = KF_FMT_DNS_LABEL),
                 KF_STRING("purpose", "node, pod or service.", .flags = KF_F_REQUIRED,
                           .enum_values = purposes),
                 KF_STRING("cidr", "The range.", .flags = KF_F_REQUIRED, .format = KF_FMT_CIDR),
                 KF_STRING("zone", "Zone of a zonal range.", .format = KF_FMT_DNS_LABEL))),
             .max_len = 65536),
    KF_INT("addresses", "Addresses in cidrs minus reserved.", .flags = KF_F_MIN, .min = 0),
    KF_INT("allocatedAddresses", "Addresses in node and pod allocations.", .flags = KF_F_MIN,
           .min = 0),
    KF_NUMBER("utilization", "allocatedAddresses / addresses.", .flags = KF_F_MIN | KF_F_MAX,
              .min = 0, .max = 1),
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema ippool_status = {
    .description = "Allocations from an IPPool, written by IPAM.",
    .fields = ippool_status_fields,
    .open = true,
};

/* Every pair of listed ranges (within cidrs, and cidrs against
 * serviceCIDRs) must be disjoint. */
static void ippool_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    json_t *cidrs = kf_json_path(obj, "spec.cidrs");
    json_t *svc = kf_json_path(obj, "spec.serviceCIDRs");
    size_t n = json_array_size(cidrs), m = json_array_size(svc);
    struct kf_cidr *p = kf_xcalloc(n + m, sizeof(*p));

    for (size_t i = 0; i < n + m; i++) {
        json_t *v = i < n ? json_array_get(cidrs, i) : json_array_get(svc, i - n);

        kf_cidr_parse(json_string_value(v), &p[i], NULL);
    }
    for (size_t i = 0; i < n + m; i++) {
        for (size_t j = 0; j < i; j++) {
            char field[64];

            if (i >= n && j >= n)
                continue; /* service ranges may overlap each other */
            if (!kf_cidr_overlaps(&p[i], &p[j]))
                continue;
            if (i < n)
                snprintf(field, sizeof(field), "spec.cidrs[%zu]", i);
            else
                snprintf(field, sizeof(field), "spec.serviceCIDRs[%zu]", i - n);
            kf_causes_add(
                causes, "FieldValueInvalid", field, "\"%s\" overlaps spec.cidrs[%zu] \"%s\"",
                json_string_value(i < n ? json_array_get(cidrs, i) : json_array_get(svc, i - n)), j,
                json_string_value(json_array_get(cidrs, j)));
            break;
        }
    }
    free(p);
}

static void col_allocs(const json_t *obj, struct kf_strbuf *out)
{
    json_t *n = kf_json_path(obj, "status.clusters");

    if (json_is_integer(n))
        kf_strbuf_addf(out, "%lld", (long long)json_integer_value(n));
    else
        kf_fleet_col_count(obj, "status.allocations", out);
}

static void col_used(const json_t *obj, struct kf_strbuf *out)
{
    kf_fleet_col_percent(obj, "status.utilization", out);
}

static const struct kf_column ippool_columns[] = {
    { .header = "VPC", .path = "spec.vpc", .type = "string" },
    { .header = "ZONE", .path = "spec.zone", .type = "string" },
    { .header = "CIDRS", .path = "spec.cidrs", .type = "string" },
    { .header = "CLUSTERS", .fn = col_allocs, .type = "integer" },
    { .header = "USED", .fn = col_used, .type = "string" },
    { .header = "SERVICE-CIDRS", .path = "spec.serviceCIDRs", .type = "string", .wide = true },
};

static const char *const ippool_short[] = { "ipp", NULL };

const struct kf_kind kf_kind_ippool = {
    .kind = "IPPool",
    .plural = "ippools",
    .singular = "ippool",
    .short_names = ippool_short,
    .description = "Address ranges of a VPC (per zone where needed) from which IPAM allocates "
                   "each guest cluster's node, pod and service ranges.",
    .has_status = true,
    .spec_schema = &ippool_spec,
    .status_schema = &ippool_status,
    .validate = ippool_validate,
    .columns = ippool_columns,
    .n_columns = KF_ARRAY_SIZE(ippool_columns),
};
