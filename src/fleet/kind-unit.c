/* kind-unit.c: Unit, a meta-cluster in a region whose hosts run the control
 * planes of guest clusters. Its spec holds the capacity policy (water level,
 * quota, grade ratio, cost and performance factors, features, cordon); its
 * status is written by the capacity controller (capacity, allocation and
 * water level per resource, clusters by grade, hosts needed). */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/cidr.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const struct kf_field unit_spec_fields[] = {
    KF_STRING("region", "The Region the unit belongs to.", .flags = KF_F_REQUIRED | KF_F_IMMUTABLE,
              .format = KF_FMT_DNS_LABEL),
    KF_ARRAY("zones",
             "Zones of the region the unit's hosts are spread over; at least 3 for grades "
             "that need a highly available control plane.",
             KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .flags = KF_F_REQUIRED | KF_F_UNIQUE,
             .min_len = 1, .max_len = 16),
    KF_NUMBER("waterLevel",
              "Mark for CPU and memory requests as a fraction of allocatable: a control plane "
              "is placed only if the unit stays at or below it (0.60 = 40 % headroom); absent: "
              "the Region's waterLevel, else 0.60.",
              .flags = KF_F_XMIN | KF_F_XMAX, .min = 0, .max = 1),
    KF_NUMBER("costPerCore", "Relative cost of one core in this unit (placement prefers cheap).",
              .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 1000000, .dflt = "1"),
    KF_NUMBER("performance", "Relative performance factor of the unit's hosts (1 = baseline).",
              .flags = KF_F_XMIN | KF_F_MAX, .min = 0, .max = 100, .dflt = "1"),
    KF_OBJECT(
        "quota", "Limits on what the unit hosts.",
        KF_FIELDS(KF_INT("maxClusters", "Most guest clusters the unit may host (absent: no limit).",
                         .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 1000000),
                  KF_INT("maxNodes", "Most guest nodes (sum of expectedNodes) the unit may serve.",
                         .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 100000000))),
    KF_MAP("gradeRatio",
           "Largest share (0..1) of the unit's clusters that may be of a grade, e.g. "
           "{\"G4\": 0.1, \"G5\": 0.05}, so that a few big control planes cannot crowd out "
           "many small ones.",
           KF_ITEM_NUMBER(.flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 1),
           .key_enum = kf_fleet_grades),
    KF_ARRAY("features",
             "What the unit offers (\"edge\", \"gpu\", \"dedicated\", \"baremetal\", "
             "\"windows\"); profiles require features.",
             KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .flags = KF_F_UNIQUE, .max_len = 32),
    KF_BOOL("cordoned", "No new guest clusters are placed in a cordoned unit; existing ones stay.",
            .dflt = "false"),
    KF_STRING("endpointAddress",
              "Address of the unit's load balancer, where each guest cluster's apiserver "
              "endpoint listens (a port per cluster); absent: kfleetd's --endpoint-address.",
              .format = KF_FMT_IP),
    KF_END,
};

static const struct kf_schema unit_spec = {
    .description = "Desired state of a Unit.",
    .fields = unit_spec_fields,
};

static const struct kf_field unit_status_fields[] = {
    KF_FLEET_RESOURCES("capacity", "Total resources of the unit's Ready meta hosts."),
    KF_FLEET_RESOURCES("allocatable", "Resources available to control planes."),
    KF_FLEET_RESOURCES("allocated", "Requests of the control-plane members bound to the hosts."),
    KF_MAP("waterLevel",
           "Current requests as a fraction of allocatable, per resource (\"cpu\", \"memory\").",
           KF_ITEM_NUMBER(.flags = KF_F_MIN, .min = 0), .key_format = KF_FMT_LABEL_KEY,
           .max_len = 32),
    KF_BOOL("aboveWaterLevel", "Whether CPU or memory requests exceed spec.waterLevel."),
    KF_NUMBER("mark",
              "The water level in force: spec.waterLevel, else the Region's, else the "
              "placement policy's 0.60.",
              .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 1),
    KF_INT("clusters", "Guest clusters placed in the unit.", .flags = KF_F_MIN, .min = 0),
    KF_MAP("clustersByGrade", "Guest clusters per grade.", KF_ITEM_INT(.flags = KF_F_MIN, .min = 0),
           .key_enum = kf_fleet_grades),
    KF_INT("nodes", "Guest nodes served (sum of expectedNodes).", .flags = KF_F_MIN, .min = 0),
    KF_INT("hosts", "Meta hosts of the unit.", .flags = KF_F_MIN, .min = 0),
    KF_INT("readyHosts", "Meta hosts that are Ready.", .flags = KF_F_MIN, .min = 0),
    KF_INT("hostsNeeded", "Hosts to add to bring the unit back to its water level (0 when below).",
           .flags = KF_F_MIN, .min = 0),
    KF_ARRAY("zonesReady", "Zones with at least one Ready host.",
             KF_ITEM_STRING(.format = KF_FMT_DNS_LABEL), .max_len = 16),
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema unit_status = {
    .description = "Observed capacity of a Unit, written by the capacity controller.",
    .fields = unit_status_fields,
    .open = true,
};

static void col_zones(const json_t *obj, struct kf_strbuf *out)
{
    kf_fleet_col_count(obj, "spec.zones", out);
}

static void col_cpu(const json_t *obj, struct kf_strbuf *out)
{
    kf_fleet_col_percent(obj, "status.waterLevel.cpu", out);
}

static void col_mem(const json_t *obj, struct kf_strbuf *out)
{
    kf_fleet_col_percent(obj, "status.waterLevel.memory", out);
}

static void col_water(const json_t *obj, struct kf_strbuf *out)
{
    /* the unit's own mark, else the one in force (region or default) */
    kf_fleet_col_percent(
        obj, kf_json_path(obj, "spec.waterLevel") ? "spec.waterLevel" : "status.mark", out);
}

/* The unit's endpoint address is where kfleetd's HAProxy binds a port per
 * guest cluster: one address, never "every address" (0.0.0.0, ::) or a
 * multicast group, which would publish the guests' apiservers on every
 * interface of kfleetd's machine or bind nothing. */
static void unit_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    const char *a = kf_json_str(obj, "spec.endpointAddress", NULL);
    struct kf_cidr ip;

    (void)old;
    if (!a || kf_ip_parse(a, &ip, NULL) < 0)
        return;
    if (ip.addr == 0)
        kf_causes_add(causes, "FieldValueInvalid", "spec.endpointAddress",
                      "\"%s\" means every address: name the one address of the unit's load "
                      "balancer",
                      a);
    else if ((ip.family == 4 && (ip.addr >> 28) == 0xe) ||
             (ip.family == 6 && (ip.addr >> 120) == 0xff))
        kf_causes_add(causes, "FieldValueInvalid", "spec.endpointAddress",
                      "\"%s\" is a multicast address: name the unit's load balancer's address", a);
}

static const struct kf_column unit_columns[] = {
    { .header = "REGION", .path = "spec.region", .type = "string" },
    { .header = "ZONES", .fn = col_zones, .type = "integer" },
    { .header = "CLUSTERS", .path = "status.clusters", .type = "integer" },
    { .header = "CPU%", .fn = col_cpu, .type = "string" },
    { .header = "MEM%", .fn = col_mem, .type = "string" },
    { .header = "WATER", .fn = col_water, .type = "string" },
    { .header = "HOSTS", .path = "status.readyHosts", .type = "integer", .wide = true },
    { .header = "FEATURES", .path = "spec.features", .type = "string", .wide = true },
    { .header = "CORDONED", .path = "spec.cordoned", .type = "string", .wide = true },
};

static const char *const unit_short[] = { "un", NULL };

const struct kf_kind kf_kind_unit = {
    .kind = "Unit",
    .plural = "units",
    .singular = "unit",
    .short_names = unit_short,
    .description = "A meta-cluster in a region: a set of hosts across zones that run the "
                   "control planes of guest clusters, with a water level that keeps headroom "
                   "for failures.",
    .has_status = true,
    .name_is_label = true,
    .spec_schema = &unit_spec,
    .status_schema = &unit_status,
    .validate = unit_validate,
    .columns = unit_columns,
    .n_columns = KF_ARRAY_SIZE(unit_columns),
};
