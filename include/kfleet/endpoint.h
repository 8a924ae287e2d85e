/* endpoint.h: a stable endpoint per guest cluster: an L4 load balancer
 * (HAProxy) in front of the cluster's kube-apiservers.
 *
 * Two parts:
 *
 *   the renderer   (src/endpoint/endpoint-haproxy.c) a pure function from a
 *                  unit's clusters (bind address and port, backends, CA
 *                  file) and its settings to haproxy.cfg text: no store, no
 *                  files, no logging. Everything that reaches the text is
 *                  validated, and the output is sorted, so the same fleet
 *                  renders the same bytes.
 *   the service    (src/endpoint/endpoint-service.c) what kfleetd owns while
 *                  it runs (`kfleetd --endpoints MODE`): the root folder
 *                  <data-dir>/endpoints/, `haproxy -c` on a candidate file,
 *                  and in local mode one HAProxy per unit under the process
 *                  runner (kfleet/runner.h), reloaded with SIGUSR2.
 *
 * The endpoints controller (src/controllers/ctrl-endpoint.c) reads
 * GuestClusters (status.unit, status.endpoints.apiServer), their
 * kube-apiserver ControlPlaneMembers and Hosts, renders one file per unit,
 * checks it, swaps it in and reloads. docs/internals/endpoints.md has the
 * whole picture.
 */
#ifndef KF_ENDPOINT_H
#define KF_ENDPOINT_H

#include <stddef.h>

#include "kfleet/base.h"

struct kf_strbuf;

/* Hard caps on what one unit's file may hold: a unit hosts hundreds of
 * control planes, never tens of thousands, and an apiserver set is small. */
#define KF_EP_CLUSTERS_MAX 10000
#define KF_EP_BACKENDS_MAX 64
/* An address literal, IPv6 included, NUL included. */
#define KF_EP_ADDR_MAX 64
/* A Unix socket's path, NUL included (sun_path). */
#define KF_EP_SOCKET_MAX 108
/* Operator settings are Unit annotations with this prefix. */
#define KF_EP_ANNOTATION_PREFIX "endpoints.kfleet.io/"

/* --- the renderer ---------------------------------------------------------- */

/* One kube-apiserver behind the endpoint. Strings are borrowed. */
struct kf_ep_backend {
    const char *name;    /* the member's name: a DNS-1123 subdomain */
    const char *address; /* an IPv4 or IPv6 literal */
    int port;            /* 1..65535 */
};

/* One guest cluster's endpoint. Strings and the array are borrowed. */
struct kf_ep_cluster {
    const char *name;    /* the cluster's name: a DNS-1123 subdomain */
    const char *address; /* where the frontend binds: an IPv4 or IPv6 literal */
    int port;            /* 1..65535 */
    const char *ca_file; /* absolute path of the cluster CA: health checks verify with it */
    const struct kf_ep_backend *backends;
    size_t n_backends; /* 0 is allowed: the frontend answers, nothing behind it */
};

/* HAProxy time values are kept as text ("5s", "1h"): what the operator
 * wrote is what haproxy reads, once it passed kf_ep_settings_set(). */
#define KF_EP_TIME_MAX 16
struct kf_ep_settings {
    char timeout_connect[KF_EP_TIME_MAX]; /* to a backend [5s] */
    char timeout_client[KF_EP_TIME_MAX];  /* client inactivity before the tunnel [60s] */
    char timeout_server[KF_EP_TIME_MAX];  /* server inactivity before the tunnel [60s] */
    /* inactivity in both directions once connected: long enough for a
     * quiet kubectl watch, which the apiserver ends after 30-60 min [1h] */
    char timeout_tunnel[KF_EP_TIME_MAX];
    /* /readyz every [1s] while a server is down or changing state ... */
    char check_interval[KF_EP_TIME_MAX];
    /* ... and every [3s] while it is up and passing: a check is a TLS
     * handshake with the apiserver, and most servers are up most of the
     * time */
    char check_interval_up[KF_EP_TIME_MAX];
    int check_fall; /* failed checks before a server is down [2] */
    int check_rise; /* passed checks before it is up again [2] */
    /* connections per HAProxy [0: not set, HAProxy derives it from its
     * file descriptor limit, which a fixed number can exceed] */
    int maxconn;
    /* Not an annotation: kfleetd sets it for the HAProxies it runs. A Unix
     * socket (absolute path) where HAProxy answers `show stat` (level
     * user, mode 600): how kfleetd learns which apiservers pass the checks
     * without probing each cluster itself. "" (the default): none. */
    char stats_socket[KF_EP_SOCKET_MAX];
};

void kf_ep_settings_default(struct kf_ep_settings *s);

/* Sets one setting from an annotation (key without KF_EP_ANNOTATION_PREFIX):
 * "timeout-connect", "timeout-client", "timeout-server", "timeout-tunnel",
 * "check-interval" take an HAProxy time (1 to 9 digits and an optional
 * unit us, ms, s, m, h or d: nothing else can reach the file; whether the
 * value is in HAProxy's range is for `haproxy -c` to say); "check-fall",
 * "check-rise" (1..100) and "maxconn" (1..1000000) a whole number. Returns 0,
 * or -EINVAL with the key, the value and what is wanted in err (s is left
 * unchanged). */
int kf_ep_settings_set(struct kf_ep_settings *s, const char *key, const char *value,
                       struct kf_strbuf *err);

/* Renders the haproxy.cfg of unit `unit` serving `clusters` with settings
 * `s` (NULL: the defaults) into out (appended). Master-worker global
 * section, mode tcp (TLS passes through to the apiservers untouched), one
 * frontend and one backend per cluster named after it, one server per
 * backend named after its member, each checked with GET /readyz over TLS
 * verified against the cluster's CA. Clusters are sorted by name and
 * backends by name, so the output depends only on the content. Returns 0,
 * or -EINVAL naming the cluster and field that is not valid (a name that is
 * not DNS-1123, an address that is not an IP literal, a port out of range,
 * a relative CA path or one with whitespace, two clusters with one name or
 * on one address and port, more than the caps); out may then hold part of
 * the text. */
int kf_ep_render_haproxy(const char *unit, const struct kf_ep_settings *s,
                         const struct kf_ep_cluster *clusters, size_t n_clusters,
                         struct kf_strbuf *out, struct kf_strbuf *err);

/* Is s an IPv4 or IPv6 address literal (no brackets, no zone)? */
bool kf_ep_ip_literal(const char *s);

/* Parses "https://ADDR:PORT" (ADDR an IPv4 literal or a bracketed IPv6
 * literal; an optional trailing "/"), as the lifecycle controller writes
 * status.endpoints.apiServer. On success fills ret_addr (without brackets,
 * at most KF_EP_ADDR_MAX bytes with the NUL) and *ret_port (1..65535) and
 * returns 0; otherwise -EINVAL with why in err, outputs untouched. */
int kf_ep_parse_url(const char *url, char ret_addr[KF_EP_ADDR_MAX], int *ret_port,
                    struct kf_strbuf *err);

/* What `haproxy -c` said, for a person: its [ALERT] lines without the
 * "[ALERT]    (pid) : config : " prefix, joined with "; ", at most `max`
 * bytes (cut with "..."); when there is no ALERT line, the last non-empty
 * line. Appends to ret. */
void kf_ep_haproxy_message(const char *output, size_t len, size_t max, struct kf_strbuf *ret);

/* One server line of HAProxy's `show stat` CSV: the backend (a cluster),
 * the server (a member) and whether it serves: status UP and its last
 * check passed (L7OK: /readyz answered 200 over TLS verified against the
 * cluster's CA). Strings are valid during the call only. */
typedef void (*kf_ep_stat_fn)(void *ctx, const char *backend, const char *server, bool serving);

/* Parses `show stat` output (a "# " header line naming the columns, then a
 * line a proxy or server), calling fn for each server line (not FRONTEND
 * or BACKEND). The columns are found by name (pxname, svname, status,
 * check_status) in the header. At most 1,000,000 lines. Returns the number
 * of server lines, or -EINVAL with why in err (no header, a missing
 * column, a line longer than 64 KiB). */
int kf_ep_parse_stat(const char *csv, size_t len, kf_ep_stat_fn fn, void *ctx,
                     struct kf_strbuf *err);

/* --- the service ----------------------------------------------------------- */

enum kf_ep_mode {
    KF_EP_OFF = 0,
    KF_EP_EXTERNAL, /* render and check; an operator runs HAProxy on the files */
    KF_EP_LOCAL,    /* and kfleetd runs one HAProxy per unit */
};

/* "off", "external", "local" -> mode; -EINVAL otherwise. */
int kf_ep_mode_parse(const char *s, enum kf_ep_mode *ret);
const char *kf_ep_mode_name(enum kf_ep_mode m);

struct kf_endpoints;

struct kf_ep_config {
    enum kf_ep_mode mode;
    const char *haproxy; /* the program; NULL: /usr/sbin/haproxy */
};

/* Creates <data_dir>/endpoints (0755) and, in local mode, the process runner
 * (state in <root>/.local/, which adopts HAProxies an earlier kfleetd left
 * running). 0, or a negative errno with why in err. */
int kf_endpoints_new(const struct kf_ep_config *c, const char *data_dir, struct kf_endpoints **ret,
                     struct kf_strbuf *err);
/* Local mode: stops every HAProxy (SIGTERM to each group, SIGKILL after the
 * grace) and waits for them. Frees e; NULL is fine. */
void kf_endpoints_free(struct kf_endpoints *e);

enum kf_ep_mode kf_endpoints_mode(const struct kf_endpoints *e);
/* The root folder (absolute), and the program. */
const char *kf_endpoints_root(const struct kf_endpoints *e);
const char *kf_endpoints_haproxy(const struct kf_endpoints *e);

/* Runs `haproxy -c -f path` (execve, empty environment, 30 s at most).
 * 0 when the file is valid; -EINVAL with haproxy's own message
 * (kf_ep_haproxy_message) in err; -ENOENT when haproxy is not installed;
 * another negative errno when it could not run. */
int kf_endpoints_check(struct kf_endpoints *e, const char *path, struct kf_strbuf *err);

/* Local mode. The runner name of unit's HAProxy ("haproxy-<unit>", long
 * names shortened with a hash) into buf (KF_EP_NAME_BUF bytes). */
#define KF_EP_NAME_BUF 101
void kf_endpoints_proc_name(const char *unit, char buf[KF_EP_NAME_BUF]);

/* Local mode: wants unit's HAProxy running as `haproxy -W -db -f cfg` in
 * the folder of cfg, ready once a TCP connect to probe_addr:probe_port
 * succeeds (one of its frontends). *ret_started: whether it was not running
 * before this call (a process it starts reads the current file, so it
 * needs no reload). 0, -EOPNOTSUPP (not local), or a runner error in err. */
int kf_endpoints_run(struct kf_endpoints *e, const char *unit, const char *cfg,
                     const char *probe_addr, int probe_port, bool *ret_started,
                     struct kf_strbuf *err);

/* Local mode: SIGUSR2 to unit's HAProxy master, which re-reads its file,
 * starts new workers on the same listening sockets and lets the old ones
 * finish their connections. 0; -EAGAIN while it runs but is not ready yet
 * (its signal handlers may not be installed: ask again later); -ESRCH when
 * no process runs (it reads the file when it starts again); -ENOENT when
 * the runner does not know it; -EOPNOTSUPP (not local). */
int kf_endpoints_reload(struct kf_endpoints *e, const char *unit, struct kf_strbuf *err);

/* Local mode: the stats socket of unit's HAProxy ("<root>/<unit>/haproxy.sock")
 * into buf; false when the path would not fit a Unix socket (no stats for
 * that unit: the lifecycle controller probes its clusters itself). */
bool kf_endpoints_stats_socket(const struct kf_endpoints *e, const char *unit,
                               char buf[KF_EP_SOCKET_MAX]);

/* Local mode: how many of cluster's apiservers unit's HAProxy finds
 * serving (status UP, last /readyz check passed) and how many it has, from
 * `show stat` on its stats socket, read at most once a second per unit
 * (KF_EP_STATS_MAX_AGE_MS) whoever asks. 0 with *ret_up and *ret_total;
 * -ENOENT when HAProxy does not know the cluster (yet) or has no socket
 * (not running), -EOPNOTSUPP when not local, another negative errno when
 * the socket could not be read or its answer parsed. */
#define KF_EP_STATS_MAX_AGE_MS 1000
int kf_endpoints_serving(struct kf_endpoints *e, const char *unit, const char *cluster, int *ret_up,
                         int *ret_total);

/* Local mode: stops unit's HAProxy and forgets it (asynchronous: SIGTERM
 * to its group now, SIGKILL after 5 s). 0 or -ENOENT. */
int kf_endpoints_stop(struct kf_endpoints *e, const char *unit);
/* The same by runner name (kf_endpoints_procs). */
int kf_endpoints_stop_proc(struct kf_endpoints *e, const char *proc_name);

/* Local mode: the pid of unit's HAProxy master, or 0. */
int kf_endpoints_pid(struct kf_endpoints *e, const char *unit);

/* Local mode: the runner names of every HAProxy the runner knows (running,
 * stopped, or left by an earlier kfleetd and not claimed yet). The caller
 * frees the array and each name; returns the count. */
size_t kf_endpoints_procs(struct kf_endpoints *e, char ***ret_names);

/* --- the controller (src/controllers/ctrl-endpoint.c) ---------------------- */

struct kf_ctrl_env;
struct kf_ctrl_ops;
extern const struct kf_ctrl_ops kf_ctrl_endpoints_ops;
int kf_ctrl_endpoints_init(const struct kf_ctrl_env *env, void **ret_data, struct kf_strbuf *err);
void kf_ctrl_endpoints_fini(void *data);

#endif
