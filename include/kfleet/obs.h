/* obs.h: kfleet's monitoring stack as data: a plain model of what the fleet
 * looks like to Prometheus and Alertmanager, and renderers that turn it into
 * the configuration of every instance of the three-tier stack.
 *
 *   edge Prometheus       one (or a replica pair) per unit: scrapes the unit's
 *                         hosts (node_exporter), guest etcd, the guests'
 *                         kube-apiserver, controller manager and scheduler
 *                         (with each guest cluster's own client certificate),
 *                         agents and kfleetd; records `unit:*` aggregates
 *   cascading Prometheus  one (or a pair) per region: federates `unit:*` from
 *                         the region's edges, deduplicates edge replicas and
 *                         records `region:*`
 *   central Prometheus    a dual-active pair: federates `region:*` from every
 *                         cascade, evaluates the alert rules, sends to every
 *                         Alertmanager
 *   Alertmanager          a pair in one gossip cluster; webhook receivers point
 *                         at kfleetd's receiver adapter (obs-receiver.h),
 *                         email goes through Alertmanager's own SMTP settings
 *
 * The model holds borrowed pointers only: the caller (the monitoring
 * controller) fills it from Region, Unit, Host, ControlPlaneMember,
 * AlertReceiver and AlertRoute objects and keeps the strings alive while it
 * renders. Nothing here touches the store or the network.
 *
 * Rendering is split in two steps so that tests and the controller share
 * one path:
 *   kf_obs_gen_*()        fill a kf_obs_files set (paths relative to the
 *                         monitoring root, contents, modes, and whether each
 *                         file is a target list); pure and deterministic;
 *   kf_obs_files_write()  writes the set under the root, atomically per file
 *                         (temp + fsync + rename), only where the bytes
 *                         differ, and says whether the *structure* changed
 *                         (config, rules, secrets: reload the instance) or
 *                         only targets (file_sd JSON: Prometheus picks those
 *                         up by itself, no reload).
 * kf_obs_render_*() do both for one instance.
 *
 * Layout under the root (`<data-dir>/monitoring/`), one folder per instance
 * named after the instance:
 *   <edge>/prometheus.yml, rules/unit.rules.yml, targets/<job>.json,
 *          tls/<cluster>/{ca.crt,monitoring.crt,monitoring.key} (0700 folders,
 *          the key 0600), data/
 *   <cascade>/prometheus.yml, rules/region.rules.yml, targets/edges.json, data/
 *   <central>/prometheus.yml, rules/alerts.rules.yml, targets/cascades.json,
 *             targets/alertmanagers.json, data/
 *   <alertmanager>/alertmanager.yml, secrets/ (0700; files 0600), data/
 * Prometheus files refer to each other relatively (Prometheus resolves paths
 * against the config file's folder); Alertmanager secret files by absolute
 * path. docs/internals/observability.md describes every rule and label.
 */
#ifndef KF_OBS_H
#define KF_OBS_H

#include <sys/types.h>

#include "kfleet/base.h"

struct kf_strbuf;

/* ---- the model ---------------------------------------------------------- */

/* Timings and knobs. Zero (or NULL) means "the default" given in brackets;
 * a region's settings fall back to the fleet's, the fleet's to the default. */
struct kf_obs_settings {
    int64_t scrape_interval_ms;     /* edge scrapes [15s] */
    int64_t scrape_timeout_ms;      /* [min(10s, scrape interval)] */
    int64_t evaluation_interval_ms; /* rule evaluation, every tier [= scrape interval] */
    int64_t federation_interval_ms; /* cascade <- edge and central <- cascade scrapes [30s] */
    int64_t federation_timeout_ms;  /* [min(25s, federation interval)] */
    int64_t retention_ms;           /* --storage.tsdb.retention.time [15d] */
    int64_t rate_window_ms;         /* rate()/histogram windows [max(4 x scrape, 1m)] */
    /* Regex of label names dropped (metric_relabel_configs labeldrop) from
     * what a tier federates from the one below ["instance"]. */
    const char *drop_labels;
};

struct kf_obs_instance {
    const char *name;     /* folder name and replica label value: "edge-hz-u1-a" */
    const char *listen;   /* "host:port": --web.listen-address and the address scraped */
    const char *external; /* --web.external-url; NULL: "http://<listen>/" */
};

struct kf_obs_region {
    const char *name;
    const char *const *compliance; /* tags ("gdpr", "cn-mlps3"); exported as a label */
    size_t n_compliance;
    struct kf_obs_settings settings;        /* the region's monitoring settings */
    const struct kf_obs_instance *cascades; /* 1 or 2 (replicas) */
    size_t n_cascades;
};

struct kf_obs_host {
    const char *name;
    const char *zone;
    const char *node_exporter; /* "host:port" of node_exporter; NULL: none */
    const char *agent;         /* "host:port" of kfleet-agent's /metrics; NULL: none */
};

enum kf_obs_member_kind {
    KF_OBS_MEMBER_ETCD,
    KF_OBS_MEMBER_APISERVER,
    KF_OBS_MEMBER_CONTROLLER_MANAGER,
    KF_OBS_MEMBER_SCHEDULER,
};

/* One guest control-plane member whose metrics the edge scrapes.
 *
 * etcd members go to the `etcd` job (scheme https when `https`, with
 * kf_obs_fleet.guest_tls). The Kubernetes components (apiserver,
 * controller manager, scheduler) are scraped over https with their
 * cluster's own identity: one job per guest cluster, `guest-<cluster>`,
 * and only when the unit lists that cluster in kf_obs_unit.clusters; a
 * Kubernetes member whose cluster is not listed there is left out (its
 * certificate files do not exist yet, and a config naming missing files
 * fails promtool's check). */
struct kf_obs_member {
    const char *name;    /* the ControlPlaneMember's name */
    const char *cluster; /* the GuestCluster's name */
    enum kf_obs_member_kind kind;
    const char *host;
    const char *zone;
    const char *address; /* "host:port" serving /metrics */
    bool https;          /* etcd: scheme https (TLS settings: kf_obs_fleet.guest_tls) */
};

/* The identity the edge presents to one guest cluster's Kubernetes
 * components, and the CA it checks them with: PEM text, written by the
 * edge renderer to <edge>/tls/<cluster>/ca.crt, monitoring.crt and
 * monitoring.key (0600). The client certificate is the cluster's
 * "kfleet-monitoring" in group system:monitoring, which Kubernetes' default
 * ClusterRoleBinding lets GET /metrics (the controller manager and the
 * scheduler ask the apiserver). Each at most KF_OBS_MAX_PEM bytes. */
struct kf_obs_cluster {
    const char *name; /* the GuestCluster's name */
    const char *ca;
    const char *cert;
    const char *key;
};
#define KF_OBS_MAX_PEM (64 * 1024)

struct kf_obs_unit {
    const char *name;
    const char *region;
    const struct kf_obs_host *hosts;
    size_t n_hosts;
    const struct kf_obs_member *members;
    size_t n_members;
    const struct kf_obs_instance *edges; /* 1 or 2 (replicas) */
    size_t n_edges;
    /* Guest clusters whose Kubernetes members the edge scrapes (each once). */
    const struct kf_obs_cluster *clusters;
    size_t n_clusters;
};

/* TLS and credentials for scraping guest etcd over https (the Kubernetes
 * components use their cluster's own identity: kf_obs_cluster). */
struct kf_obs_tls {
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    const char *bearer_token_file;
    bool insecure_skip_verify;
};

/* ---- alert routing (Alertmanager's route tree) ---- */

enum kf_obs_match_op {
    KF_OBS_MATCH_EQ,  /* =  */
    KF_OBS_MATCH_NE,  /* != */
    KF_OBS_MATCH_RE,  /* =~ */
    KF_OBS_MATCH_NRE, /* !~ */
};

struct kf_obs_matcher {
    const char *name;
    enum kf_obs_match_op op;
    const char *value;
};

enum kf_obs_receiver_kind {
    KF_OBS_RECEIVER_WEBHOOK,  /* forwarded by kfleetd's adapter */
    KF_OBS_RECEIVER_DINGTALK, /* adapter: signed markdown message */
    KF_OBS_RECEIVER_SMS,      /* adapter: HTTP gateway template */
    KF_OBS_RECEIVER_EMAIL,    /* Alertmanager's own email_configs */
};

/* A receiver as Alertmanager sees it. Webhook, DingTalk and SMS receivers
 * all become a webhook to `<adapter_url>/<name>`; where the adapter then
 * delivers (URL, secret, template, phones) is obs-receiver.h's business, so
 * those secrets never reach Alertmanager's files. */
struct kf_obs_receiver {
    const char *name;
    enum kf_obs_receiver_kind kind;
    bool send_resolved;
    const char *const *email_to; /* EMAIL: addresses */
    size_t n_email_to;
    int max_alerts; /* webhooks: 0 = all */
};

/* One node of the route tree. Zero / NULL fields inherit from the parent.
 * Children are kept in the given order (Alertmanager tries them in order). */
struct kf_obs_route {
    const char *receiver;
    const struct kf_obs_matcher *matchers;
    size_t n_matchers;
    const char *const *group_by; /* {"..."} disables grouping */
    size_t n_group_by;
    int64_t group_wait_ms;
    int64_t group_interval_ms;
    int64_t repeat_interval_ms;
    bool continue_matching; /* Alertmanager's `continue` */
    const struct kf_obs_route *routes;
    size_t n_routes;
};

struct kf_obs_inhibit {
    const struct kf_obs_matcher *source;
    size_t n_source;
    const struct kf_obs_matcher *target;
    size_t n_target;
    const char *const *equal;
    size_t n_equal;
};

struct kf_obs_smtp {
    const char *smarthost; /* "host:port"; NULL: no email */
    const char *from;
    const char *hello;
    const char *auth_username;
    /* The password, written to <am>/secrets/smtp_password (0600) and passed
     * as smtp_auth_password_file; or the path of an existing file. Never
     * written into alertmanager.yml. */
    const char *auth_password;
    const char *auth_password_file;
    bool require_tls;
};

struct kf_obs_alerting {
    const struct kf_obs_receiver *receivers;
    size_t n_receivers;
    struct kf_obs_route root; /* receiver required; defaults below apply */
    const struct kf_obs_inhibit *inhibits;
    size_t n_inhibits;
    bool no_default_inhibits; /* skip kfleet's own (region absent hides unit absent, ...) */
    struct kf_obs_smtp smtp;
    /* kfleetd's receiver adapter: webhooks go to "<adapter_url>/<receiver>",
     * authenticated with the bearer token in adapter_token_file if set. */
    const char *adapter_url;
    const char *adapter_token_file;
    int64_t resolve_timeout_ms; /* [5m] */
    int64_t peer_timeout_ms;    /* --cluster.peer-timeout [15s] */
    int64_t settle_timeout_ms;  /* --cluster.settle-timeout [peer timeout x 2] */
};

/* Per-alert overrides of the default alert rules (kf_obs_default_alerts). */
struct kf_obs_alert_override {
    const char *alert;    /* "KfleetHostDown" */
    int64_t for_ms;       /* -1: keep; 0 and up: the new `for` */
    double threshold;     /* NaN: keep */
    const char *severity; /* NULL: keep */
    bool disabled;
};

struct kf_obs_alertmanager {
    const char *name;
    const char *listen;         /* web "host:port" (Prometheus sends here) */
    const char *cluster_listen; /* gossip "host:port" (TCP and UDP) */
    const char *external;       /* NULL: "http://<listen>/" */
};

struct kf_obs_binaries {
    const char *prometheus;    /* [/usr/bin/prometheus] */
    const char *alertmanager;  /* [/usr/bin/prometheus-alertmanager] */
    const char *node_exporter; /* [/usr/bin/prometheus-node-exporter] */
    const char *promtool;      /* [/usr/bin/promtool] */
    const char *amtool;        /* [/usr/bin/amtool] */
};

struct kf_obs_fleet {
    const struct kf_obs_region *regions;
    size_t n_regions;
    const struct kf_obs_unit *units;
    size_t n_units;
    const char *const *kfleetd; /* "host:port" of every kfleetd replica's /metrics */
    size_t n_kfleetd;
    const struct kf_obs_instance *centrals; /* the dual-active pair */
    size_t n_centrals;
    const struct kf_obs_alertmanager *alertmanagers;
    size_t n_alertmanagers;
    struct kf_obs_alerting alerting;
    const struct kf_obs_alert_override *alert_overrides;
    size_t n_alert_overrides;
    const char *kfleetd_token_file;  /* bearer token file for scraping kfleetd; NULL: none */
    struct kf_obs_settings settings; /* fleet-wide defaults */
    struct kf_obs_tls guest_tls;     /* for etcd members with https */
    struct kf_obs_binaries bin;
};

/* Checks the whole model: names (lower-case DNS labels), unique instance
 * names and addresses, units in known regions, every region and unit with
 * its instances, label values printable UTF-8, the route tree (receivers
 * exist, matchers well-formed), email receivers only with SMTP settings, and
 * Alertmanager timing: every group_interval in the tree must exceed twice
 * the peer timeout (a shorter one lets a lagging peer re-send a stale
 * firing after a resolve; reference §2.5). Returns 0 or -EINVAL with the
 * first problem in err. The kf_obs_gen_* functions call it. */
int kf_obs_fleet_check(const struct kf_obs_fleet *f, struct kf_strbuf *err);

/* ---- the rendered files ----------------------------------------------- */

struct kf_obs_file {
    char *path; /* relative to the monitoring root: "edge-hz-u1/targets/node.json" */
    char *content;
    size_t len;
    mode_t mode; /* 0644, or 0600 for secrets */
    /* Read again by the instance by itself, so a change needs no reload: a
     * file_sd target list, or a TLS file of a scrape job (Prometheus'
     * HTTP client notices changed CA, certificate and key files and loads
     * them again). */
    bool targets;
    bool secret; /* contents must never be logged */
};

struct kf_obs_files {
    struct kf_obs_file *items;
    size_t n, alloc;
};

void kf_obs_files_release(struct kf_obs_files *files);
/* Takes ownership of content (kf_xmalloc'ed, len bytes). */
void kf_obs_files_add(struct kf_obs_files *files, const char *path, char *content, size_t len,
                      mode_t mode, bool targets, bool secret);
const struct kf_obs_file *kf_obs_files_find(const struct kf_obs_files *files, const char *path);

/* What writing a set of files changed, per instance. */
struct kf_obs_change {
    bool structure; /* a config, rule or secret file was created, changed or removed */
    bool targets;   /* a file_sd list was created, changed or removed */
    unsigned written, unchanged, removed;
};

/* Writes every file of `files` under root, creating root (one level) and
 * folders (0755; secrets/, tls/ and the folders in tls/ 0700). A file whose
 * bytes and mode are already right is left alone; any other is replaced
 * atomically: written to a temporary file in the same folder, fsync'ed,
 * renamed over the old one, and the folder fsync'ed; the files a config
 * names (kf_obs_file.targets) go first, the configs after. Files the renderers
 * own (under rules/, targets/, secrets/, and tls/ one folder deep, of an
 * instance folder present in `files`) that the set no longer contains are
 * removed, and so are the folders in tls/ they leave empty.
 * data/ is never touched. Returns 0 and fills *ret_change, or a negative
 * errno with the path in err (files already replaced stay replaced: each
 * one is whole, old or new). */
int kf_obs_files_write(const struct kf_obs_files *files, const char *root,
                       struct kf_obs_change *ret_change, struct kf_strbuf *err);

/* ---- renderers -------------------------------------------------------- */

/* Each adds the files of one instance to `out` (paths start with the
 * instance's name). `root` is the absolute monitoring root the files will
 * live under (only Alertmanager's absolute secret paths use it). Output is
 * deterministic: jobs, targets, receivers sorted; routes in model order.
 * 0 or -EINVAL (the model is wrong; why in err). */
int kf_obs_gen_edge(const struct kf_obs_fleet *f, const struct kf_obs_unit *u,
                    const struct kf_obs_instance *edge, struct kf_obs_files *out,
                    struct kf_strbuf *err);
int kf_obs_gen_cascade(const struct kf_obs_fleet *f, const struct kf_obs_region *r,
                       const struct kf_obs_instance *cascade, struct kf_obs_files *out,
                       struct kf_strbuf *err);
int kf_obs_gen_central(const struct kf_obs_fleet *f, const struct kf_obs_instance *central,
                       struct kf_obs_files *out, struct kf_strbuf *err);
int kf_obs_gen_alertmanager(const struct kf_obs_fleet *f, const struct kf_obs_alertmanager *am,
                            const char *root, struct kf_obs_files *out, struct kf_strbuf *err);
/* Every instance of the fleet. */
int kf_obs_gen_all(const struct kf_obs_fleet *f, const char *root, struct kf_obs_files *out,
                   struct kf_strbuf *err);

enum kf_obs_tier {
    KF_OBS_TIER_EDGE,
    KF_OBS_TIER_CASCADE,
    KF_OBS_TIER_CENTRAL,
    KF_OBS_TIER_ALERTMANAGER,
};

/* Which instance of the fleet is called `name`; -ENOENT if none. */
int kf_obs_fleet_find_instance(const struct kf_obs_fleet *f, const char *name,
                               enum kf_obs_tier *ret_tier);

/* gen + (optionally checked) write for the instance called `name`. With
 * `check`, the files are first written to <root>/.staging/<name>/ and
 * checked with promtool / amtool (kf_obs_check_instance); a failure leaves
 * the live files untouched and returns -EINVAL with the tool's output in
 * err. ret_change says whether to POST /-/reload (structure) or not. */
int kf_obs_render_instance(const struct kf_obs_fleet *f, const char *name, const char *root,
                           bool check, struct kf_obs_change *ret_change, struct kf_strbuf *err);

/* Runs `promtool check config` (which also checks the rule files and the
 * file_sd lists it refers to) or `amtool check-config` on the instance
 * folder <dir>. Returns 0, -EINVAL with the tool's output in err, or
 * -ENOENT when the tool is missing. Forks and waits; no shell. */
int kf_obs_check_instance(const struct kf_obs_binaries *bin, enum kf_obs_tier tier, const char *dir,
                          struct kf_strbuf *err);
/* Runs `promtool check rules FILE`. Same returns. */
int kf_obs_check_rules(const struct kf_obs_binaries *bin, const char *path, struct kf_strbuf *err);

/* ---- command lines for the supervisor ---------------------------------- */

/* Each builder below fills *ret (overwritten, no need to zero it) with a
 * NULL-terminated argv whose v[0] is the binary's path; the caller frees it
 * with kf_argv_release. */
/* Prometheus for an instance folder <root>/<inst->name>:
 *   --config.file --storage.tsdb.path (data/) --storage.tsdb.retention.time
 *   --web.listen-address --web.external-url --web.enable-lifecycle
 * `retention_ms` 0: the fleet default. */
void kf_obs_argv_prometheus(const struct kf_obs_fleet *f, const struct kf_obs_instance *inst,
                            int64_t retention_ms, const char *root, struct kf_argv *ret);
/* The argv of the instance called `name` (edge, cascade, central or
 * Alertmanager), with the right retention. -ENOENT if none. */
int kf_obs_argv_instance(const struct kf_obs_fleet *f, const char *name, const char *root,
                         struct kf_argv *ret);
/* Alertmanager peer `am`: --config.file --storage.path --web.listen-address
 * --web.external-url --cluster.listen-address --cluster.advertise-address
 * --cluster.peer (every other peer) --cluster.peer-timeout
 * --cluster.settle-timeout. */
void kf_obs_argv_alertmanager(const struct kf_obs_fleet *f, const struct kf_obs_alertmanager *am,
                              const char *root, struct kf_argv *ret);
/* node_exporter listening on `listen`. */
void kf_obs_argv_node_exporter(const struct kf_obs_binaries *bin, const char *listen,
                               struct kf_argv *ret);

/* ---- the default alert rules ------------------------------------------- */

/* One default alert rule (before overrides). The table is documented in
 * docs/internals/observability.md. */
struct kf_obs_alert_rule {
    const char *alert;
    const char *severity;
    int64_t for_ms;
    double threshold; /* replaces "$T" in expr; NaN: the rule has none */
    /* PromQL over what central stores ("$W": the rate window); NULL for the
     * federation-gap alerts, which central writes per region and unit. */
    const char *expr;
    const char *summary;
    const char *description;
};
const struct kf_obs_alert_rule *kf_obs_default_alerts(size_t *ret_n);

#endif
