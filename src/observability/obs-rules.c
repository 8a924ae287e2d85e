/* obs-rules.c: the recording rules of the edge and cascading tiers and the
 * default alert rules of the central tier, as tables.
 *
 * Naming: `<tier>:<metric>:<operation>`. The prefix names the tier that
 * recorded the series and is what the tier above federates on
 * (`{__name__=~"unit:.*"}` at the cascade, `{__name__=~"region:.*"}` at
 * central); the label set, listed in docs/internals/observability.md, gives
 * the granularity. The cascade re-records every `unit:X` as
 * `region:unit_X` with the edge replicas folded away, and adds region
 * roll-ups `region:X`. Central only ever sees `region:*`.
 *
 * Metrics the rules read beyond node_exporter's, etcd's and the Kubernetes
 * components' own (plus `up` of the guest jobs, whose targets carry job
 * "apiserver", "controller-manager" or "scheduler") are a contract with
 * kfleetd's and the agents' /metrics:
 *   kfleet_unit_requests_ratio{unit,resource}    requests / allocatable (kfleetd)
 *   kfleet_unit_water_level_ratio{unit}          the unit's waterLevel (kfleetd)
 *   kfleet_member_restarts_total{cluster,component,member}   (agent)
 */
#include <math.h>

#include "kfleet/base.h"
#include "observability/obs-internal.h"

/* $W: the rate window. Every output keeps region and unit (from the target
 * labels; the edge's external labels fill them in upstream otherwise). */
static const struct obs_record unit_records[] = {
    { "unit:edge_up:max", "max by (region, unit) (up{job=\"prometheus\"})" },
    { "unit:hosts:count", "count by (region, unit) (up{job=\"node\"})" },
    { "unit:hosts_up:count", "sum by (region, unit) (up{job=\"node\"})" },
    /* one series per host that is down, none for hosts that are up */
    { "unit:host_down:flag",
      "max by (region, unit, zone, host) (up{job=\"node\"} == bool 0) == 1" },
    /* the scrape job goes up as scrape_job: every tier sets its own `job` */
    { "unit:targets_down:count",
      "sum by (region, unit, scrape_job) (label_replace(up == bool 0, \"scrape_job\", \"$1\", "
      "\"job\", \"(.*)\"))" },
    { "unit:node_cpu_utilisation:avg",
      "1 - avg by (region, unit) (rate(node_cpu_seconds_total{job=\"node\",mode=\"idle\"}[$W]))" },
    { "unit:node_memory_utilisation:avg",
      "1 - avg by (region, unit) (node_memory_MemAvailable_bytes{job=\"node\"} / "
      "node_memory_MemTotal_bytes{job=\"node\"})" },
    { "unit:etcd_members:count", "count by (region, unit, cluster) (up{job=\"etcd\"})" },
    { "unit:etcd_members_up:count", "sum by (region, unit, cluster) (up{job=\"etcd\"})" },
    /* 1 while a majority of the cluster's members answer */
    { "unit:etcd_quorum:bool",
      "sum by (region, unit, cluster) (up{job=\"etcd\"}) > bool (count by (region, unit, cluster) "
      "(up{job=\"etcd\"}) / 2)" },
    { "unit:etcd_has_leader:max",
      "max by (region, unit, cluster) (etcd_server_has_leader{job=\"etcd\"})" },
    { "unit:etcd_wal_fsync_seconds:p99",
      "histogram_quantile(0.99, sum by (region, unit, cluster, le) "
      "(rate(etcd_disk_wal_fsync_duration_seconds_bucket{job=\"etcd\"}[$W])))" },
    { "unit:etcd_backend_commit_seconds:p99",
      "histogram_quantile(0.99, sum by (region, unit, cluster, le) "
      "(rate(etcd_disk_backend_commit_duration_seconds_bucket{job=\"etcd\"}[$W])))" },
    /* the size of each guest etcd against its quota: the fullest member
     * (an etcd at its quota raises NOSPACE and refuses writes) */
    { "unit:etcd_db_quota:ratio",
      "max by (region, unit, cluster) (etcd_mvcc_db_total_size_in_bytes{job=\"etcd\"} / "
      "etcd_server_quota_backend_bytes{job=\"etcd\"})" },
    /* guest Kubernetes components: the targets of the guest-<cluster> jobs
     * carry job="apiserver", "controller-manager" or "scheduler" */
    { "unit:apiserver_members:count", "count by (region, unit, cluster) (up{job=\"apiserver\"})" },
    { "unit:apiserver_up:count", "sum by (region, unit, cluster) (up{job=\"apiserver\"})" },
    /* one series per apiserver member that does not answer, none otherwise */
    { "unit:apiserver_member_down:flag",
      "max by (region, unit, cluster, member, host, zone) (up{job=\"apiserver\"} == bool 0) == 1" },
    /* p99 of requests that end (watches, proxies, exec, logs... do not) */
    { "unit:apiserver_request_seconds:p99",
      "histogram_quantile(0.99, sum by (region, unit, cluster, le) "
      "(rate(apiserver_request_duration_seconds_bucket{job=\"apiserver\",verb!~\"WATCH|CONNECT\","
      "subresource!~\"log|exec|portforward|attach|proxy\"}[$W])))" },
    { "unit:k8s_component_up:count", "sum by (region, unit, cluster, component) "
                                     "(up{job=~\"controller-manager|scheduler\"})" },
    { "unit:apiserver_request_errors:ratio",
      "sum by (region, unit, cluster) "
      "(rate(apiserver_request_total{job=\"apiserver\",code=~\"5..\"}"
      "[$W])) / sum by (region, unit, cluster) "
      "(rate(apiserver_request_total{job=\"apiserver\"}[$W]))" },
    /* only members that restarted: a crash loop shows, a calm fleet costs nothing */
    { "unit:member_restarts:increase15m",
      "sum by (region, unit, cluster, component, member) "
      "(increase(kfleet_member_restarts_total{job=\"agent\"}[15m])) > 0" },
    { "unit:capacity_requests:ratio",
      "max by (region, unit, resource) (kfleet_unit_requests_ratio{job=\"kfleetd\"})" },
    { "unit:water_level:ratio",
      "max by (region, unit) (kfleet_unit_water_level_ratio{job=\"kfleetd\"})" },
};

/* Evaluated after the region:unit_* re-records in the same group. `or on ()
 * vector(0)` keeps a count present (at 0) when nothing matches; the
 * cascade's external labels give it its region on the way up. */
static const struct obs_record region_rollups[] = {
    { "region:units:count", "count by (region) (region:unit_edge_up:max) or on () vector(0)" },
    { "region:hosts:count", "sum by (region) (region:unit_hosts:count)" },
    { "region:hosts_up:count", "sum by (region) (region:unit_hosts_up:count)" },
    { "region:node_cpu_utilisation:avg", "avg by (region) (region:unit_node_cpu_utilisation:avg)" },
    { "region:node_memory_utilisation:avg",
      "avg by (region) (region:unit_node_memory_utilisation:avg)" },
    { "region:etcd_clusters:count",
      "count by (region) (region:unit_etcd_quorum:bool) or on () vector(0)" },
    { "region:etcd_clusters_without_quorum:count",
      "count by (region) (region:unit_etcd_quorum:bool == 0) or on () vector(0)" },
    { "region:capacity_requests:max",
      "max by (region, resource) (region:unit_capacity_requests:ratio)" },
};

const struct obs_record *kf_obs_unit_records(size_t *ret_n)
{
    *ret_n = KF_ARRAY_SIZE(unit_records);
    return unit_records;
}

const struct obs_record *kf_obs_region_rollups(size_t *ret_n)
{
    *ret_n = KF_ARRAY_SIZE(region_rollups);
    return region_rollups;
}

/* Central alert rules. Expressions fold the cascade replicas away with
 * max without (replica); $T is the threshold, $W the rate window.
 * KfleetRegionAbsent and KfleetUnitAbsent have no expression here: the
 * central renderer writes one absent() per region and unit of the model. */
#define FOLD "max without (replica) "
static const struct kf_obs_alert_rule default_alerts[] = {
    { "KfleetUnitAboveWaterLevel", "warning", 600000, NAN,
      FOLD "(region:unit_capacity_requests:ratio) > on (region, unit) group_left () max by "
           "(region, unit) (region:unit_water_level:ratio)",
      "Unit {{ $labels.unit }} in {{ $labels.region }} is above its water level for "
      "{{ $labels.resource }}",
      "{{ $labels.resource }} requests in unit {{ $labels.unit }} are at {{ $value | "
      "humanizePercentage }} of allocatable, above the unit's water level; kfleet places no new "
      "control planes there. Add hosts to the unit (`kfleet plan` says how many) or move "
      "clusters away." },
    { "KfleetHostDown", "warning", 120000, NAN, FOLD "(region:unit_host_down:flag) == 1",
      "Host {{ $labels.host }} in unit {{ $labels.unit }} ({{ $labels.region }}) is down",
      "node_exporter on host {{ $labels.host }} (zone {{ $labels.zone }}) stopped answering "
      "scrapes. Check the machine and its kfleet-agent: `kfleet describe host {{ $labels.host "
      "}}`. Control planes on it fail over to the other zones." },
    { "KfleetUnitHostsDown", "critical", 120000, 0.5,
      FOLD "(region:unit_hosts_up:count) / " FOLD "(region:unit_hosts:count) < $T",
      "Unit {{ $labels.unit }} in {{ $labels.region }} has lost most of its hosts",
      "Only {{ $value | humanizePercentage }} of the hosts of unit {{ $labels.unit }} answer. "
      "A whole zone may be down; guest control planes there run without their members in it. "
      "Check the zone's network and power, then `kfleet get hosts -l unit={{ $labels.unit }}`." },
    { "KfleetGuestEtcdNoQuorum", "critical", 60000, NAN, FOLD "(region:unit_etcd_quorum:bool) == 0",
      "Guest cluster {{ $labels.cluster }} has lost etcd quorum",
      "Fewer than a majority of the etcd members of guest cluster {{ $labels.cluster }} (unit "
      "{{ $labels.unit }}, {{ $labels.region }}) answer; its API server cannot write. Look at "
      "`kfleet describe cluster {{ $labels.cluster }}` for the failed members and their hosts; "
      "restore from the latest backup if members cannot come back." },
    { "KfleetGuestEtcdNoLeader", "critical", 60000, NAN,
      FOLD "(region:unit_etcd_has_leader:max) == 0",
      "Guest cluster {{ $labels.cluster }}'s etcd has no leader",
      "The etcd members of guest cluster {{ $labels.cluster }} that answer report no leader. "
      "Check the network between its members' zones and `kfleet describe cluster "
      "{{ $labels.cluster }}`." },
    { "KfleetGuestEtcdSlowFsync", "warning", 600000, 0.5,
      FOLD "(region:unit_etcd_wal_fsync_seconds:p99) > $T",
      "Guest cluster {{ $labels.cluster }}'s etcd WAL fsync is slow",
      "The 99th percentile of etcd WAL fsync in guest cluster {{ $labels.cluster }} is {{ $value "
      "| humanizeDuration }}. The disks of its members' hosts in unit {{ $labels.unit }} are "
      "overloaded or failing; move the members or add hosts." },
    { "KfleetGuestEtcdSlowCommit", "warning", 600000, 0.25,
      FOLD "(region:unit_etcd_backend_commit_seconds:p99) > $T",
      "Guest cluster {{ $labels.cluster }}'s etcd backend commits are slow",
      "The 99th percentile of etcd backend commits in guest cluster {{ $labels.cluster }} is "
      "{{ $value | humanizeDuration }}. Check disk latency on its members' hosts in unit "
      "{{ $labels.unit }} and the database size (a defragmentation may help)." },
    { "KfleetMemberCrashLooping", "warning", 60000, 3,
      FOLD "(region:unit_member_restarts:increase15m) > $T",
      "Member {{ $labels.member }} of guest cluster {{ $labels.cluster }} is crash-looping",
      "{{ $labels.component }} member {{ $labels.member }} restarted {{ $value }} times in 15 "
      "minutes. Its log is on its host; `kfleet describe member {{ $labels.member }}` shows the "
      "last exit and message." },
    { "KfleetGuestApiserverDown", "critical", 120000, NAN,
      FOLD "(region:unit_apiserver_up:count) == 0",
      "No API server of guest cluster {{ $labels.cluster }} answers",
      "None of the kube-apiserver members of guest cluster {{ $labels.cluster }} (unit "
      "{{ $labels.unit }}) answers its /metrics scrapes; users cannot reach the cluster. "
      "`kfleet describe cluster {{ $labels.cluster }}` shows the members and why they stopped." },
    { "KfleetGuestApiserverMemberDown", "warning", 300000, NAN,
      FOLD "(region:unit_apiserver_member_down:flag) == 1",
      "API server {{ $labels.member }} of guest cluster {{ $labels.cluster }} does not answer",
      "kube-apiserver member {{ $labels.member }} of guest cluster {{ $labels.cluster }} on host "
      "{{ $labels.host }} (zone {{ $labels.zone }}, unit {{ $labels.unit }}) fails its /metrics "
      "scrapes. Clients go to the other members through the cluster's endpoint meanwhile. "
      "`kfleet describe member {{ $labels.member }}` shows its phase and last message." },
    { "KfleetGuestApiserverSlow", "warning", 600000, 1.0,
      FOLD "(region:unit_apiserver_request_seconds:p99) > $T",
      "Guest cluster {{ $labels.cluster }}'s API server answers slowly",
      "The 99th percentile of kube-apiserver request latency (watches and other long-running "
      "requests excepted) in guest cluster {{ $labels.cluster }} is {{ $value | "
      "humanizeDuration }}. Look at its etcd (KfleetGuestEtcdSlowFsync, database size), the "
      "load on its members' hosts in unit {{ $labels.unit }}, and its grade." },
    { "KfleetGuestEtcdDatabaseFull", "warning", 600000, 0.8,
      FOLD "(region:unit_etcd_db_quota:ratio) > $T",
      "Guest cluster {{ $labels.cluster }}'s etcd database is near its quota",
      "The etcd database of guest cluster {{ $labels.cluster }} (unit {{ $labels.unit }}) uses "
      "{{ $value | humanizePercentage }} of its quota; at 100 % etcd raises NOSPACE and the API "
      "server can no longer write. Compact and defragment it, or raise its quota." },
    { "KfleetGuestControlPlaneComponentDown", "warning", 300000, NAN,
      FOLD "(region:unit_k8s_component_up:count) == 0",
      "No {{ $labels.component }} of guest cluster {{ $labels.cluster }} answers",
      "None of the {{ $labels.component }} members of guest cluster {{ $labels.cluster }} (unit "
      "{{ $labels.unit }}) answers its /metrics scrapes: nothing {{ if eq $labels.component "
      "\"kube-scheduler\" }}schedules new pods{{ else }}reconciles the cluster's objects{{ end }}. "
      "`kfleet describe cluster {{ $labels.cluster }}` shows the members and why they stopped." },
    { "KfleetGuestApiserverErrors", "warning", 600000, 0.05,
      FOLD "(region:unit_apiserver_request_errors:ratio) > $T",
      "Guest cluster {{ $labels.cluster }}'s API server returns errors",
      "{{ $value | humanizePercentage }} of the requests to the API server of guest cluster "
      "{{ $labels.cluster }} fail with 5xx. Check its etcd (latency, quorum) and the API "
      "server's log on its host." },
    { "KfleetScrapeTargetsDown", "warning", 300000, 0,
      FOLD "(region:unit_targets_down:count{scrape_job!~\"node|apiserver\"}) > $T",
      "{{ $value }} {{ $labels.scrape_job }} targets in unit {{ $labels.unit }} cannot be scraped",
      "The edge Prometheus of unit {{ $labels.unit }} ({{ $labels.region }}) fails to scrape "
      "{{ $value }} {{ $labels.scrape_job }} targets. Open its targets page (/targets) for the "
      "errors; the components may be down or their metrics port unreachable." },
    { "KfleetFederationDown", "warning", 120000, NAN, "up{job=\"federate-regions\"} == 0",
      "Central cannot federate from the cascading Prometheus {{ $labels.instance }}",
      "Central Prometheus fails to scrape /federate on {{ $labels.instance }} (region "
      "{{ $labels.region }}). While its replica answers nothing is lost; if both fail, the "
      "region disappears from the global view (see KfleetRegionAbsent)." },
    { "KfleetFederationEmpty", "warning", 300000, NAN,
      "scrape_samples_scraped{job=\"federate-regions\"} == 0",
      "Federation from {{ $labels.instance }} returns no series",
      "The cascading Prometheus {{ $labels.instance }} (region {{ $labels.region }}) answers "
      "/federate with nothing: its rules produce no region:* series. Check its rule evaluation "
      "(/rules) and that it federates its edges." },
    { "KfleetRegionAbsent", "critical", 120000, NAN, NULL,
      "Region {{ $labels.region }} is missing from the global view",
      "No region:* series of region {{ $labels.region }} reach central Prometheus. Its cascading "
      "Prometheus instances are down or unreachable; alerts from the region cannot fire until "
      "they are back." },
    { "KfleetUnitAbsent", "critical", 120000, NAN, NULL,
      "Unit {{ $labels.unit }} is missing from the global view",
      "The edge Prometheus of unit {{ $labels.unit }} in {{ $labels.region }} does not reach "
      "the central tier: it is down, or the region's cascading Prometheus cannot federate it. "
      "Nothing in the unit is being watched until it is back." },
    { "KfleetAlertmanagerClusterDegraded", "warning", 300000, NAN,
      "alertmanager_cluster_members{job=\"alertmanager\"} < "
      "scalar(count(up{job=\"alertmanager\"}))",
      "Alertmanager {{ $labels.instance }} sees only {{ $value }} gossip peers",
      "Alertmanager {{ $labels.instance }} is not in one cluster with all its peers, so both may "
      "notify the same alert. Check that the gossip port is open for TCP and UDP between them." },
    { "KfleetNotificationsFailing", "warning", 600000, 0,
      "sum by (instance, integration) (rate(alertmanager_notifications_failed_total{job="
      "\"alertmanager\"}[$W])) > $T",
      "Alertmanager {{ $labels.instance }} fails to deliver {{ $labels.integration }} "
      "notifications",
      "Notifications through {{ $labels.integration }} fail. For webhooks, check that kfleetd's "
      "receiver adapter answers; for email, the SMTP smarthost. Alertmanager keeps retrying." },
};

const struct kf_obs_alert_rule *kf_obs_default_alerts(size_t *ret_n)
{
    *ret_n = KF_ARRAY_SIZE(default_alerts);
    return default_alerts;
}
