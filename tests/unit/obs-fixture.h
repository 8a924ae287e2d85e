/* obs-fixture.h: the small fixed fleet the observability tests render:
 * two regions (one with a replica pair of cascading Prometheus), three
 * units (one with a replica pair of edges), a few hosts and guest clusters
 * (etcd members, Kubernetes components with and without a monitoring
 * identity),
 * a dual-active central pair, two Alertmanager peers, and one receiver of
 * each kind with a route tree that uses every feature. Lists are given out
 * of order on purpose: the renderers must sort. Included by tests only. */
#ifndef KF_TEST_OBS_FIXTURE_H
#define KF_TEST_OBS_FIXTURE_H

#include <math.h>
#include <string.h>

#include "kfleet/obs.h"

#define FIXTURE_ROOT "/var/lib/kfleet/monitoring"

static const char *const fx_hz_compliance[] = { "cn-mlps3" };
static const char *const fx_fra_compliance[] = { "gdpr", "eu-dpa" };

static const struct kf_obs_instance fx_casc_hz[] = {
    { "casc-hz-b", "127.0.0.1:19302", NULL },
    { "casc-hz-a", "127.0.0.1:19301", "https://casc-hz-a.example.invalid/" },
};
static const struct kf_obs_instance fx_casc_fra[] = {
    { "casc-fra", "127.0.0.1:19303", NULL },
};

static const struct kf_obs_host fx_hosts_hz_u1[] = {
    { "hz-h3", "hz-c", "10.0.1.3:9100", "10.0.1.3:7481" },
    { "hz-h1", "hz-a", "10.0.1.1:9100", "10.0.1.1:7481" },
    { "hz-h2", "hz-b", "10.0.1.2:9100", "10.0.1.2:7481" },
};
static const struct kf_obs_host fx_hosts_hz_u2[] = {
    { "hz-h5", "hz-b", "10.0.2.5:9100", NULL },
    { "hz-h4", "hz-a", "10.0.2.4:9100", "10.0.2.4:7481" },
};
static const struct kf_obs_host fx_hosts_fra_u1[] = {
    { "fra-h1", "fra-1", "10.1.0.1:9100", "10.1.0.1:7481" },
    { "fra-h2", "fra-2", "10.1.0.2:9100", "10.1.0.2:7481" },
};

static const struct kf_obs_member fx_members_hz_u1[] = {
    { "web-1-etcd-2", "web-1", KF_OBS_MEMBER_ETCD, "hz-h2", "hz-b", "10.0.1.2:23811", false },
    { "web-1-etcd-1", "web-1", KF_OBS_MEMBER_ETCD, "hz-h1", "hz-a", "10.0.1.1:23811", false },
    { "web-1-etcd-3", "web-1", KF_OBS_MEMBER_ETCD, "hz-h3", "hz-c", "10.0.1.3:23811", false },
    { "web-1-apiserver-1", "web-1", KF_OBS_MEMBER_APISERVER, "hz-h1", "hz-a", "10.0.1.1:16443",
      true },
    { "web-1-scheduler-1", "web-1", KF_OBS_MEMBER_SCHEDULER, "hz-h3", "hz-c", "10.0.1.3:16459",
      true },
    { "web-1-apiserver-2", "web-1", KF_OBS_MEMBER_APISERVER, "hz-h2", "hz-b", "10.0.1.2:16443",
      true },
    { "web-1-controller-manager-1", "web-1", KF_OBS_MEMBER_CONTROLLER_MANAGER, "hz-h2", "hz-b",
      "10.0.1.2:16457", true },
    /* api-2 has no monitoring identity (yet): its apiserver is left out */
    { "api-2-apiserver-1", "api-2", KF_OBS_MEMBER_APISERVER, "hz-h2", "hz-b", "10.0.1.2:16543",
      true },
    { "api-2-etcd-1", "api-2", KF_OBS_MEMBER_ETCD, "hz-h1", "hz-a", "10.0.1.1:23821", false },
    { "api-2-etcd-2", "api-2", KF_OBS_MEMBER_ETCD, "hz-h2", "hz-b", "10.0.1.2:23821", false },
    { "api-2-etcd-3", "api-2", KF_OBS_MEMBER_ETCD, "hz-h3", "hz-c", "10.0.1.3:23821", false },
};
static const struct kf_obs_member fx_members_fra_u1[] = {
    { "shop-etcd-1", "shop", KF_OBS_MEMBER_ETCD, "fra-h1", "fra-1", "10.1.0.1:23811", false },
    { "shop-apiserver-1", "shop", KF_OBS_MEMBER_APISERVER, "fra-h2", "fra-2", "10.1.0.2:16443",
      true },
};

#define FX_PEM(type, what) "-----BEGIN " type "-----\n" what "\n-----END " type "-----\n"

/* Guest clusters' monitoring identities (out of order; "idle" has no
 * Kubernetes member in its unit, so it gets no job). */
static const struct kf_obs_cluster fx_clusters_hz_u1[] = {
    { "web-1", FX_PEM("CERTIFICATE", "web-1 CA"), FX_PEM("CERTIFICATE", "web-1 monitoring"),
      FX_PEM("TEST KEY", "web-1 monitoring key") },
    { "idle", FX_PEM("CERTIFICATE", "idle CA"), FX_PEM("CERTIFICATE", "idle monitoring"),
      FX_PEM("TEST KEY", "idle monitoring key") },
};
static const struct kf_obs_cluster fx_clusters_fra_u1[] = {
    { "shop", FX_PEM("CERTIFICATE", "shop CA"), FX_PEM("CERTIFICATE", "shop monitoring"),
      FX_PEM("TEST KEY", "shop monitoring key") },
};

static const struct kf_obs_instance fx_edges_hz_u1[] = {
    { "edge-hz-u1-b", "127.0.0.1:19202", NULL },
    { "edge-hz-u1-a", "127.0.0.1:19201", NULL },
};
static const struct kf_obs_instance fx_edges_hz_u2[] = {
    { "edge-hz-u2", "127.0.0.1:19203", NULL },
};
static const struct kf_obs_instance fx_edges_fra_u1[] = {
    { "edge-fra-u1", "127.0.0.1:19204", NULL },
};

static const char *const fx_kfleetd[] = { "127.0.0.1:7490", "127.0.0.1:7480" };

static const struct kf_obs_instance fx_centrals[] = {
    { "central-a", "127.0.0.1:19401", NULL },
    { "central-b", "127.0.0.1:19402", NULL },
};

static const struct kf_obs_alertmanager fx_ams[] = {
    { "am-2", "127.0.0.1:19502", "127.0.0.1:19602", NULL },
    { "am-1", "127.0.0.1:19501", "127.0.0.1:19601", "https://alerts.example.invalid/" },
};

static const char *const fx_mail_to[] = { "oncall@example.invalid", "noc@example.invalid" };

static const struct kf_obs_receiver fx_receivers[] = {
    { "sms-oncall", KF_OBS_RECEIVER_SMS, false, NULL, 0, 5 },
    { "ops-webhook", KF_OBS_RECEIVER_WEBHOOK, true, NULL, 0, 0 },
    { "oncall-email", KF_OBS_RECEIVER_EMAIL, true, fx_mail_to, 2, 0 },
    { "dingtalk-oncall", KF_OBS_RECEIVER_DINGTALK, true, NULL, 0, 0 },
};

static const struct kf_obs_matcher fx_m_critical[] = {
    { "severity", KF_OBS_MATCH_EQ, "critical" },
};
static const struct kf_obs_matcher fx_m_sms[] = {
    { "severity", KF_OBS_MATCH_EQ, "critical" },
    { "compliance", KF_OBS_MATCH_RE, ".*cn-mlps3.*" },
};
static const struct kf_obs_matcher fx_m_warning[] = {
    { "severity", KF_OBS_MATCH_EQ, "warning" },
};
static const struct kf_obs_matcher fx_m_hostdown[] = {
    { "alertname", KF_OBS_MATCH_EQ, "KfleetHostDown" },
    { "team", KF_OBS_MATCH_NE, "it's \"infra\"" },
};
static const char *const fx_gb_unit[] = { "alertname", "region", "unit" };
static const char *const fx_gb_root[] = { "alertname", "region" };

static const struct kf_obs_route fx_warning_children[] = {
    { .matchers = fx_m_hostdown, .n_matchers = 2, .repeat_interval_ms = 12 * 3600000LL },
};

static const struct kf_obs_route fx_routes[] = {
    { .receiver = "dingtalk-oncall",
      .matchers = fx_m_critical,
      .n_matchers = 1,
      .continue_matching = true },
    { .receiver = "oncall-email",
      .matchers = fx_m_critical,
      .n_matchers = 1,
      .continue_matching = true },
    { .receiver = "sms-oncall", .matchers = fx_m_sms, .n_matchers = 2 },
    { .receiver = "ops-webhook",
      .matchers = fx_m_warning,
      .n_matchers = 1,
      .group_by = fx_gb_unit,
      .n_group_by = 3,
      .group_interval_ms = 600000,
      .routes = fx_warning_children,
      .n_routes = 1 },
};

static const struct kf_obs_matcher fx_inh_source[] = {
    { "severity", KF_OBS_MATCH_EQ, "critical" },
};
static const struct kf_obs_matcher fx_inh_target[] = {
    { "severity", KF_OBS_MATCH_EQ, "warning" },
};
static const char *const fx_inh_equal[] = { "region", "unit" };
static const struct kf_obs_inhibit fx_inhibits[] = {
    { fx_inh_source, 1, fx_inh_target, 1, fx_inh_equal, 2 },
};

static const struct kf_obs_alert_override fx_overrides[] = {
    { "KfleetHostDown", 300000, NAN, NULL, false },
    { "KfleetGuestApiserverErrors", -1, 0.1, "critical", false },
};

/* Mutable copies, so that tests can change a field and render again. */
struct fixture {
    struct kf_obs_region regions[2];
    struct kf_obs_unit units[3];
    struct kf_obs_fleet fleet;
};

static void fixture_init(struct fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    fx->regions[0] = (struct kf_obs_region){
        .name = "eu-frankfurt",
        .compliance = fx_fra_compliance,
        .n_compliance = 2,
        .settings = { .scrape_interval_ms = 30000, .retention_ms = 30 * 86400000LL },
        .cascades = fx_casc_fra,
        .n_cascades = 1,
    };
    fx->regions[1] = (struct kf_obs_region){
        .name = "cn-hangzhou",
        .compliance = fx_hz_compliance,
        .n_compliance = 1,
        .cascades = fx_casc_hz,
        .n_cascades = 2,
    };
    fx->units[0] = (struct kf_obs_unit){
        "hz-u2", "cn-hangzhou", fx_hosts_hz_u2, 2, NULL, 0, fx_edges_hz_u2, 1, NULL, 0
    };
    fx->units[1] = (struct kf_obs_unit){ "hz-u1",           "cn-hangzhou",
                                         fx_hosts_hz_u1,    3,
                                         fx_members_hz_u1,  KF_ARRAY_SIZE(fx_members_hz_u1),
                                         fx_edges_hz_u1,    2,
                                         fx_clusters_hz_u1, 2 };
    fx->units[2] = (struct kf_obs_unit){ "fra-u1",           "eu-frankfurt",
                                         fx_hosts_fra_u1,    2,
                                         fx_members_fra_u1,  2,
                                         fx_edges_fra_u1,    1,
                                         fx_clusters_fra_u1, 1 };
    fx->fleet = (struct kf_obs_fleet){
        .regions = fx->regions,
        .n_regions = 2,
        .units = fx->units,
        .n_units = 3,
        .kfleetd = fx_kfleetd,
        .n_kfleetd = 2,
        .centrals = fx_centrals,
        .n_centrals = 2,
        .alertmanagers = fx_ams,
        .n_alertmanagers = 2,
        .alerting = {
            .receivers = fx_receivers,
            .n_receivers = 4,
            .root = { .receiver = "ops-webhook", .group_by = fx_gb_root, .n_group_by = 2,
                      .group_wait_ms = 30000, .group_interval_ms = 300000,
                      .repeat_interval_ms = 4 * 3600000LL, .routes = fx_routes, .n_routes = 4 },
            .inhibits = fx_inhibits,
            .n_inhibits = 1,
            .smtp = { .smarthost = "127.0.0.1:2525", .from = "alertmanager@example.invalid",
                      .auth_username = "kfleet", .auth_password = "s3cret'pw" },
            .adapter_url = "http://127.0.0.1:7480/alerts/v1/receivers",
            .adapter_token_file = "/var/lib/kfleet/secrets/alert-adapter.token",
        },
        .alert_overrides = fx_overrides,
        .n_alert_overrides = 2,
        .kfleetd_token_file = "/var/lib/kfleet/secrets/metrics.token",
        .guest_tls = { .ca_file = "/var/lib/kfleet/pki/monitoring-ca.pem",
                       .cert_file = "/var/lib/kfleet/pki/monitoring.pem",
                       .key_file = "/var/lib/kfleet/pki/monitoring-key.pem" },
    };
}

#endif
