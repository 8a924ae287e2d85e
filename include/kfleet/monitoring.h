/* monitoring.h: kfleetd's side of the monitoring stack: its settings, the
 * alert receiver adapter it serves, and the supervision of a local stack.
 *
 * The pieces (the renderers and the adapter's building blocks are in obs.h
 * and obs-receiver.h):
 *
 *   struct kf_mon_config   what `kfleetd --monitoring=MODE
 *                          --monitoring-config FILE` says: the mode, the
 *                          port base of a local stack, fleet-wide timings,
 *                          SMTP, alert overrides, the root route's timing,
 *                          where an external stack's central pair and
 *                          Alertmanagers run;
 *   struct kf_mon          the service kfleetd owns while it runs: the
 *                          monitoring root (<data-dir>/monitoring/), the
 *                          adapter (webhook endpoint, idempotency memory,
 *                          a delivery worker with retries), and in local
 *                          mode a process runner that supervises every
 *                          Prometheus, Alertmanager and node_exporter.
 *
 * The monitoring controller (src/controllers/ctrl-monitoring.c) builds the
 * kf_obs_fleet from the objects, renders it, and hands kf_mon the receivers
 * (kf_mon_set_targets) and, in local mode, the processes to run
 * (kf_mon_stack_sync). The API server hands it the webhooks
 * (kf_mon_handle_webhook) at POST /alerts/v1/receivers/<name>.
 *
 * Modes:
 *   off       no rendering, no endpoint (fleet-state metrics stay on /metrics);
 *   external  configs are rendered under <data-dir>/monitoring/ and reloaded
 *             at the addresses the objects and the config name; an operator
 *             runs the processes;
 *   local     kfleetd also runs them, on 127.0.0.1 from the port base.
 */
#ifndef KF_MONITORING_H
#define KF_MONITORING_H

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/obs.h"

struct kf_metrics;
struct kf_strbuf;

enum kf_mon_mode {
    KF_MON_OFF = 0,
    KF_MON_EXTERNAL,
    KF_MON_LOCAL,
};

/* "off", "external", "local" -> mode; -EINVAL for anything else. */
int kf_mon_mode_parse(const char *s, enum kf_mon_mode *ret);
const char *kf_mon_mode_name(enum kf_mon_mode m);

/* An instance an operator runs (external mode): name and addresses. */
struct kf_mon_endpoint {
    char *name;
    char *listen;
    char *cluster; /* Alertmanager gossip "host:port" */
};

/* Every string is owned (kf_mon_config_release frees them). */
struct kf_mon_config {
    enum kf_mon_mode mode;
    int port_base; /* local: first port [19090]; ports are kept in ports.json */
    char *host;    /* local: the address every instance listens on [127.0.0.1] */
    char *kfleetd; /* "host:port" edges scrape and Alertmanager posts to [the API's] */
    char *adapter; /* the adapter's base URL [http://<kfleetd>/alerts/v1/receivers] */
    struct kf_obs_settings settings;         /* fleet-wide; drop_labels owned */
    struct kf_obs_smtp smtp;                 /* strings owned */
    struct kf_obs_alert_override *overrides; /* alert names owned */
    size_t n_overrides;
    struct kf_obs_route root; /* timing and group_by of the root route */
    int64_t peer_timeout_ms, resolve_timeout_ms;
    int node_exporter_port; /* external: node_exporter on every host's address [9100] */
    /* local: node_exporters kfleetd runs at most (a simulated fleet of
     * thousands of hosts gets exporters for the first ones by name) [32] */
    int local_exporters;
    int agent_port; /* external: kfleet-agent /metrics on every host [0: none] */
    char *kfleetd_token_file;
    struct kf_mon_endpoint *centrals, *alertmanagers; /* external; local picks its own */
    size_t n_centrals, n_alertmanagers;
    struct kf_obs_binaries bin; /* strings owned */
    int64_t dedup_window_ms;
    struct kf_obs_retry_policy retry;
    int64_t delivery_timeout_ms; /* one request [10s] */
    /* Folders an AlertReceiver's secretFile / urlFile may be in, besides
     * <data-dir>/secrets/ ["/etc/kfleet/"]: a receiver cannot make kfleetd
     * send an arbitrary file somewhere. */
    char **secret_dirs;
    size_t n_secret_dirs;
    /* kfleetd --alert-destinations: where receivers may send (struct
     * kf_obs_destinations; NULL: public addresses only) */
    char *alert_destinations;
};

void kf_mon_config_init(struct kf_mon_config *c);
void kf_mon_config_release(struct kf_mon_config *c);
/* Reads the JSON file given to --monitoring-config into c (on top of what
 * is there). Members (all optional):
 *   portBase, host, kfleetd, adapterURL, kfleetdTokenFile,
 *   scrapeInterval, scrapeTimeout, evaluationInterval, federationInterval,
 *   federationTimeout, retention, rateWindow (durations "15s"), dropLabels,
 *   peerTimeout, resolveTimeout, dedupWindow, deliveryTimeout,
 *   route: {groupBy: [...], groupWait, groupInterval, repeatInterval},
 *   smtp: {smarthost, from, hello, authUsername, authPasswordFile, requireTLS},
 *   alerts: {"KfleetHostDown": {for, threshold, severity, disabled}, ...},
 *   retry: {maxAttempts, initial, max},
 *   nodeExporterPort, agentPort, localExporters,
 *   centrals: [{name, listen}], alertmanagers: [{name, listen, cluster}],
 *   binaries: {prometheus, alertmanager, nodeExporter, promtool, amtool},
 *   secretDirs: ["/etc/kfleet/", ...].
 * Unknown members are refused (a misspelt timing silently ignored is
 * worse). 0, or -EINVAL / -errno with the member in err. */
int kf_mon_config_load(const char *path, struct kf_mon_config *c, struct kf_strbuf *err);

/* ---- the service -------------------------------------------------------- */

struct kf_mon;

/* Creates the monitoring root <data_dir>/monitoring (0755), the folder
 * of receivers' secrets <data_dir>/secrets (0700), the adapter's
 * bearer token (<root>/.adapter/token, 0600, random, kept across restarts),
 * loads the idempotency memory, starts the delivery worker, and in local
 * mode the process runner (state in <root>/.local/). metrics: families
 * kfleet_alert_* and kfleet_monitoring_* are added. The config is moved
 * into the service (*c is left initialised and empty, also on failure).
 * 0 or a negative errno with why in err. */
int kf_mon_new(struct kf_mon_config *c, const char *data_dir, struct kf_metrics *metrics,
               struct kf_mon **ret, struct kf_strbuf *err);
/* Stops the worker (saving the memory); in local mode stops every process
 * it supervises (SIGTERM, then SIGKILL after 10 s). NULL is fine. */
void kf_mon_free(struct kf_mon *m);

const struct kf_mon_config *kf_mon_config(const struct kf_mon *m);
struct kf_obs_destinations;
/* Where receivers may send (--alert-destinations, parsed); lives as m. */
const struct kf_obs_destinations *kf_mon_destinations(const struct kf_mon *m);
/* The monitoring root (absolute). */
const char *kf_mon_root(const struct kf_mon *m);
/* The adapter's bearer token file (absolute). */
const char *kf_mon_token_file(const struct kf_mon *m);

/* ---- receivers: the adapter's targets ---------------------------------- */

/* One receiver's destination as the controller read it from an
 * AlertReceiver. Secrets are not here: secret_file (and url_file) are read
 * at each delivery, so rotating a secret needs no restart, and the secret
 * is in memory only while a request is built and sent. */
struct kf_mon_target {
    struct kf_obs_target t; /* t.secret NULL; strings borrowed during the call */
    const char *secret_file;
    const char *url_file;
};

/* Replaces the set of known receivers (deep copy). Webhooks for a receiver
 * not in the set are answered 404 (the controller renders Alertmanager
 * only with receivers it has given here first). */
void kf_mon_set_targets(struct kf_mon *m, const struct kf_mon_target *targets, size_t n);

/* The name of the receiver the controller renders as the root route's
 * receiver when no AlertRoute is the root: the adapter counts and drops
 * what reaches it (kfleet_alert_notifications_total{outcome="unrouted"}). */
#define KF_MON_DEFAULT_RECEIVER "kfleet-unrouted"

/* Whether path may hold a receiver's secret: an absolute path, after
 * resolving symbolic links, inside <data-dir>/secrets/ or one of the
 * config's secret_dirs. */
bool kf_mon_secret_path_allowed(const struct kf_mon *m, const char *path);

/* The webhook's token check alone, before its body is read (a client
 * without the token must not make kfleetd buffer 512 KiB): 0 when
 * authorization is "Bearer <the adapter token>", else 401 with a JSON
 * answer in resp. Thread-safe. */
int kf_mon_check_webhook_auth(struct kf_mon *m, const char *authorization, struct kf_strbuf *resp);

/* Handles one webhook: POST /alerts/v1/receivers/<receiver>.
 * authorization: the Authorization header (NULL if none); it must be
 * "Bearer <the adapter token>". Parses, claims against the memory, queues
 * the delivery for the worker and answers at once. Returns the HTTP status
 * (200 queued / duplicate / stale / unrouted, 400 malformed, 401, 404
 * unknown receiver, 413 too large, 503 queue full: Alertmanager retries)
 * with a short JSON body for people in resp. Thread-safe. */
int kf_mon_handle_webhook(struct kf_mon *m, const char *receiver, const char *authorization,
                          const char *body, size_t len, struct kf_strbuf *resp);

/* Waits until no delivery is queued or in progress, up to timeout_ms.
 * 1 when idle, 0 on timeout. For tests and shutdown. */
int kf_mon_wait_idle(struct kf_mon *m, int timeout_ms);

/* ---- the local stack --------------------------------------------------- */

/* Local mode: the port kept for `key` (an instance name, "<am>-cluster",
 * "node-<host>"): the same across restarts (<root>/ports.json), a new one
 * from the base for a new key. Ports of keys not in `keep` are released by
 * kf_mon_ports_retain. */
int kf_mon_port(struct kf_mon *m, const char *key);
void kf_mon_ports_retain(struct kf_mon *m, const char *const *keep, size_t n);

/* A node_exporter kfleetd runs for a host (local mode). */
struct kf_mon_exporter {
    const char *host;   /* the Host's name */
    const char *listen; /* "127.0.0.1:port" */
};

/* Local mode: makes the runner run exactly the instances of f (each from
 * kf_obs_argv_instance, in its folder under the root, probed on /-/ready)
 * and the given node_exporters; removes the rest. ret_started (optional)
 * gets the number of processes started or restarted by this call. 0 or a
 * negative errno (detail in err); -EOPNOTSUPP outside local mode. */
int kf_mon_stack_sync(struct kf_mon *m, const struct kf_obs_fleet *f,
                      const struct kf_mon_exporter *exporters, size_t n_exporters,
                      unsigned *ret_started, struct kf_strbuf *err);
/* Whether the supervised process `name` is running (local mode). */
bool kf_mon_stack_running(struct kf_mon *m, const char *name);

/* POSTs /-/reload to the instance at `listen` and checks that the reload
 * took: Prometheus' prometheus_config_last_reload_successful or
 * Alertmanager's alertmanager_config_last_reload_successful is 1.
 * 0, -ECONNREFUSED / -ETIMEDOUT (not reachable), -EINVAL (the instance
 * refused the configuration; its answer in err). */
int kf_mon_reload(const char *listen, enum kf_obs_tier tier, struct kf_strbuf *err);

/* Reads the value of the sample `metric` (exact name, no labels) from
 * http://<listen>/metrics. 0 or a negative errno. */
int kf_mon_scrape_value(const char *listen, const char *metric, double *ret);

/* The alerts firing at the Alertmanager at `listen` (GET /api/v2/alerts,
 * active, neither silenced nor inhibited): *ret is its JSON array (a new
 * reference). 0, -ECONNREFUSED / -ETIMEDOUT (not reachable), -EIO (an
 * answer other than 200), -EBADMSG (not a JSON array). */
int kf_mon_alerts(const char *listen, json_t **ret);

#endif
