/* kind-region.c: Region, a geography with zones, compliance tags and
 * monitoring settings. Units, guest clusters and IP pools name their region;
 * placement only puts a cluster in a region that carries every compliance
 * tag the cluster asks for. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const struct kf_field region_spec_fields[] = {
    KF_STRING("displayName", "Human-readable name (\"China East 1 (Hangzhou)\").", .max_len = 128),
    KF_ARRAY("zones", "Availability zones (data centres) of the region, e.g. \"cn-hangzhou-a\".",
             KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .flags = KF_F_REQUIRED | KF_F_UNIQUE,
             .min_len = 1, .max_len = 32),
    KF_ARRAY("complianceTags",
             "Regulatory regimes the region satisfies (\"gdpr\", \"cn-mlps3\"); a guest cluster "
             "that lists a tag in spec.compliance is only placed in regions that carry it.",
             KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .flags = KF_F_UNIQUE, .max_len = 32),
    KF_NUMBER("waterLevel",
              "Default water level for the region's units that set none: the fraction of "
              "allocatable CPU and memory that requests may reach (0.60 keeps 40 % headroom).",
              .flags = KF_F_XMIN | KF_F_XMAX, .min = 0, .max = 1),
    KF_BOOL("cordoned", "No new guest clusters are placed in any unit of a cordoned region.",
            .dflt = "false"),
    KF_OBJECT(
        "monitoring", "Settings of the region's cascading Prometheus tier.",
        KF_FIELDS(
            KF_STRING("scrapeInterval", "How often edge Prometheus scrapes.",
                      .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 3600, .dflt = "\"30s\""),
            KF_STRING("federationInterval",
                      "How often the cascading Prometheus federates from the edge.",
                      .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 3600, .dflt = "\"60s\""),
            KF_STRING("retention", "How long the region's Prometheus keeps data.",
                      .format = KF_FMT_DURATION, .flags = KF_F_MAX, .max = 3650 * 86400,
                      .dflt = "\"15d\""),
            KF_INT("replicas", "Cascading Prometheus replicas (HA pairs dedup).",
                   .flags = KF_F_MIN | KF_F_MAX, .min = 1, .max = 4, .dflt = "2"),
            KF_MAP("externalLabels", "Labels added to every series from the region.",
                   KF_ITEM_STRING(.max_len = 256), .key_format = KF_FMT_LABEL_KEY, .max_len = 16)),
        .dflt = "{}"),
    KF_END,
};

static const struct kf_schema region_spec = {
    .description = "Desired state of a Region.",
    .fields = region_spec_fields,
};

static const struct kf_field region_status_fields[] = {
    KF_INT("units", "Units in the region.", .flags = KF_F_MIN, .min = 0),
    KF_INT("clusters", "Guest clusters placed in the region.", .flags = KF_F_MIN, .min = 0),
    KF_INT("hosts", "Meta hosts in the region's units.", .flags = KF_F_MIN, .min = 0),
    KF_INT("readyHosts", "Meta hosts that are Ready.", .flags = KF_F_MIN, .min = 0),
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema region_status = {
    .description = "Observed state of a Region, written by kfleetd.",
    .fields = region_status_fields,
    .open = true,
};

static void col_zones(const json_t *obj, struct kf_strbuf *out)
{
    kf_fleet_col_count(obj, "spec.zones", out);
}

static const struct kf_column region_columns[] = {
    { .header = "ZONES", .fn = col_zones, .type = "integer" },
    { .header = "UNITS", .path = "status.units", .type = "integer" },
    { .header = "CLUSTERS", .path = "status.clusters", .type = "integer" },
    { .header = "COMPLIANCE", .path = "spec.complianceTags", .type = "string" },
    { .header = "CORDONED", .path = "spec.cordoned", .type = "string", .wide = true },
};

static const char *const region_short[] = { "rg", NULL };

const struct kf_kind kf_kind_region = {
    .kind = "Region",
    .plural = "regions",
    .singular = "region",
    .short_names = region_short,
    .description = "A geography (for example cn-hangzhou) with availability zones, compliance "
                   "tags and monitoring settings. Units, guest clusters and IP pools belong to "
                   "a region.",
    .has_status = true,
    .name_is_label = true,
    .spec_schema = &region_spec,
    .status_schema = &region_status,
    .columns = region_columns,
    .n_columns = KF_ARRAY_SIZE(region_columns),
};
