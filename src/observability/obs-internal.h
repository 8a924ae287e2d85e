/* obs-internal.h: what the observability files share and nobody else needs:
 * quoting for YAML, PromQL, Alertmanager matchers and regexes, Prometheus
 * durations, the effective settings of a region, the rule tables, and the
 * names of jobs and files that several renderers must agree on. */
#ifndef KF_OBS_INTERNAL_H
#define KF_OBS_INTERNAL_H

#include "kfleet/obs-receiver.h"
#include "kfleet/obs.h"
#include "kfleet/strbuf.h"

/* Job names; the edge's jobs also name its target files. */
#define OBS_JOB_AGENT       "agent"
#define OBS_JOB_APISERVER   "apiserver"
#define OBS_JOB_ETCD        "etcd"
#define OBS_JOB_KFLEETD     "kfleetd"
#define OBS_JOB_NODE        "node"
#define OBS_JOB_PROMETHEUS  "prometheus"
#define OBS_JOB_FED_UNITS   "federate-units"
#define OBS_JOB_FED_REGIONS "federate-regions"
#define OBS_JOB_AM          "alertmanager"

/* The `job` label that the targets of a guest cluster's scrape config
 * (guest-<cluster>) set, per Kubernetes component: OBS_JOB_APISERVER and
 * these two. */
#define OBS_JOB_CONTROLLER_MANAGER "controller-manager"
#define OBS_JOB_SCHEDULER          "scheduler"

/* The external label every federation source adds, dropped by the rules of
 * the tier above when they deduplicate (max without (replica)). */
#define OBS_LABEL_REPLICA         "replica"
#define OBS_LABEL_CENTRAL_REPLICA "central_replica"

#define OBS_HEADER                                                                     \
    "# Rendered by kfleet from the fleet's state (docs/internals/observability.md).\n" \
    "# Do not edit: kfleetd rewrites this file.\n"

/* Appends s as a YAML scalar: single-quoted when every character is
 * printable, double-quoted with escapes otherwise. */
void kf_obs_yaml_str(struct kf_strbuf *sb, const char *s);
/* Appends s as a PromQL double-quoted string literal. */
void kf_obs_promql_str(struct kf_strbuf *sb, const char *s);
/* Appends s with every RE2 metacharacter escaped, so it matches itself. */
void kf_obs_regex_quote(struct kf_strbuf *sb, const char *s);
/* Appends a duration as Prometheus and Alertmanager write it ("1h30m",
 * "15s", "500ms", "0s"). */
void kf_obs_duration(struct kf_strbuf *sb, int64_t ms);
/* Appends `name<op>"value"`, the matcher syntax of Alertmanager 0.22+. */
void kf_obs_matcher_write(struct kf_strbuf *sb, const struct kf_obs_matcher *m);
/* Appends tmpl with "$W" replaced by the rate window and "$T" by the
 * threshold (%.17g trimmed). */
void kf_obs_subst(struct kf_strbuf *sb, const char *tmpl, int64_t window_ms, double threshold);

/* Effective settings: the region's, else the fleet's, else the default.
 * r may be NULL (the central tier uses the fleet's). */
void kf_obs_settings_effective(const struct kf_obs_fleet *f, const struct kf_obs_region *r,
                               struct kf_obs_settings *ret);
const struct kf_obs_region *kf_obs_region_find(const struct kf_obs_fleet *f, const char *name);

/* The region's compliance tags sorted and comma-joined ("cn-mlps3,gdpr"),
 * or NULL if it has none. Caller frees. */
char *kf_obs_region_compliance(const struct kf_obs_region *r);

/* Default binaries filled in. */
void kf_obs_binaries_defaults(const struct kf_obs_binaries *in, struct kf_obs_binaries *ret);

/* "http://<listen>/" unless the instance names its external URL. Caller frees. */
char *kf_obs_external_url(const char *listen, const char *external);

/* Appends the `global:` section of a Prometheus config. */
void kf_obs_prom_global(struct kf_strbuf *sb, const struct kf_obs_settings *s,
                        const char *const *labels, size_t n_labels);
/* Appends a federation scrape job (honor_labels, honor_timestamps: false,
 * match[], labeldrop) reading targets from targets/<file>. */
void kf_obs_prom_federation_job(struct kf_strbuf *sb, const char *job, const char *const *match,
                                size_t n_match, const struct kf_obs_settings *s, const char *file);
/* Appends a self-scrape job for the instance. */
void kf_obs_prom_self_job(struct kf_strbuf *sb, const struct kf_obs_instance *inst,
                          const char *const *labels, size_t n_labels);

/* The edge's recording rules: record name and expression ($W: rate window).
 * The cascade re-records each as region:unit_<name without "unit:"> with
 * the edge replicas folded (max without (replica)). */
struct obs_record {
    const char *record;
    const char *expr;
};
const struct obs_record *kf_obs_unit_records(size_t *ret_n);
const struct obs_record *kf_obs_region_rollups(size_t *ret_n);

/* Adds sb's contents to out as a 0644 configuration file (not targets). */
void kf_obs_add_file(struct kf_obs_files *out, const char *path, struct kf_strbuf *sb);

/* A JSON file_sd target group list under construction. */
struct obs_targets {
    struct kf_strbuf sb;
    size_t n;
};
void kf_obs_targets_begin(struct obs_targets *t);
/* labels: alternating name, value; NULL values are skipped. Names must be
 * given sorted. */
void kf_obs_targets_add(struct obs_targets *t, const char *address, const char *const *labels,
                        size_t n_pairs);
/* Ends the list and adds it to out as <instance>/targets/<file>. */
void kf_obs_targets_finish(struct obs_targets *t, const char *instance, const char *file,
                           struct kf_obs_files *out);

/* The renderers without the model check (the kf_obs_gen_* wrappers and
 * kf_obs_gen_all check once, then call these). */
int kf_obs_gen_edge_unchecked(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                              const struct kf_obs_instance *edge, struct kf_obs_files *out);
int kf_obs_gen_cascade_unchecked(const struct kf_obs_fleet *f, const struct kf_obs_region *r,
                                 const struct kf_obs_instance *cascade, struct kf_obs_files *out);
int kf_obs_gen_central_unchecked(const struct kf_obs_fleet *f,
                                 const struct kf_obs_instance *central, struct kf_obs_files *out);
int kf_obs_gen_alertmanager_unchecked(const struct kf_obs_fleet *f,
                                      const struct kf_obs_alertmanager *am, const char *root,
                                      struct kf_obs_files *out, struct kf_strbuf *err);

/* ---- the receiver adapter (obs-receiver-*.c) ---- */

/* One kind of adapter target: pluggable, listed in obs-receiver.c. */
struct obs_receiver_ops {
    enum kf_obs_receiver_kind kind;
    const char *name;
    int (*check)(const struct kf_obs_target *t, struct kf_strbuf *err);
    int (*build)(const struct kf_obs_target *t, const struct kf_obs_notification *n, int64_t now_ms,
                 struct kf_obs_deliveries *out, struct kf_strbuf *err);
    /* Interprets a 2xx response's body; NULL: any 2xx is delivered. */
    enum kf_obs_outcome (*body_outcome)(const struct kf_obs_response *resp);
};

extern const struct obs_receiver_ops kf_obs_receiver_webhook;
extern const struct obs_receiver_ops kf_obs_receiver_dingtalk;
extern const struct obs_receiver_ops kf_obs_receiver_sms;

/* The first 16 bytes of the SHA-256 of the notification key's fields. */
void kf_obs_notification_digest(const struct kf_obs_notification *n, uint8_t out[16]);

/* Text shared by the builders. */
const char *kf_obs_alertname(const struct kf_obs_notification *n);
size_t kf_obs_live_alerts(const struct kf_obs_notification *n, bool firing_only);
/* "[FIRING:2] KfleetHostDown" or "[RESOLVED] KfleetHostDown". */
void kf_obs_title(struct kf_strbuf *sb, const struct kf_obs_notification *n);
/* The alert's summary annotation, else its alertname. */
const char *kf_obs_alert_summary(const struct kf_obs_alert *a);
void kf_obs_url_encode(struct kf_strbuf *sb, const char *s);
/* scheme://host/path of url: no user info, no query, no fragment. */
char *kf_obs_log_url(const char *url);
/* Adds a delivery; takes nothing, copies everything. */
struct kf_obs_delivery *kf_obs_delivery_add(struct kf_obs_deliveries *out, const char *method,
                                            const char *url, const char *body, size_t body_len);
void kf_obs_delivery_header(struct kf_obs_delivery *d, const char *name, const char *value);
bool kf_obs_url_ok(const char *url);

#endif
