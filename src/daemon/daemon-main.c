/* daemon-main.c: kfleetd, the API server and controllers.
 *
 * Reads its options, opens the store, builds the registry, metrics and API
 * server, starts controllers and maintenance, then listens until SIGTERM or
 * SIGINT (SIGHUP re-reads the token file and reopens --log-file). Exit codes: 0 after a clean
 * shutdown, 1 when something failed at run time (store, bind), 2 for a
 * usage or configuration error (bad option, non-loopback address without a
 * token file). Start-up order and the controller hook: daemon.h.
 */
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kfleet/cidr.h"
#include "kfleet/api.h"
#include "kfleet/capacity.h"
#include "kfleet/lifecycle.h"
#include "kfleet/controllers.h"
#include "kfleet/endpoint.h"
#include "kfleet/error.h"
#include "kfleet/lease.h"
#include "kfleet/log.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/monitoring.h"
#include "kfleet/obj.h"
#include "kfleet/obs-receiver.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "daemon/daemon.h"

KF_LOG_MODULE(kfleetd);

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

static const char usage_text[] =
    "usage: kfleetd [OPTIONS]\n"
    "\n"
    "kfleet's API server and controllers.\n"
    "\n"
    "  --listen HOST:PORT        where the API listens (default " KF_API_DEFAULT_LISTEN ");\n"
    "                            a non-loopback address needs --token-file\n"
    "  --store URL               sqlite:PATH, etcd:http://H:2379[,...] or memory:\n"
    "                            (default sqlite:DATA-DIR/kfleet.db)\n"
    "  --data-dir DIR            where kfleetd keeps its files (default ./var)\n"
    "  --token-file FILE         bearer tokens, one \"token,user,role\" a line; roles:\n"
    "                            admin, editor, viewer, agent (SIGHUP re-reads it)\n"
    "  --server-name NAME        a host name clients reach kfleetd by (repeatable); requests\n"
    "                            naming another Host are refused (IP addresses, localhost,\n"
    "                            the --listen host and this machine's name always work)\n"
    "  --tls-cert-file FILE      serve HTTPS with this PEM certificate (chain) ...\n"
    "  --tls-key-file FILE       ... and this PEM key (kubectl sends tokens only over HTTPS)\n"
    "  --insecure-allow-plaintext  serve tokens over plain HTTP on a non-loopback --listen\n"
    "                            address (refused without TLS otherwise)\n"
    "  --ui-dir DIR              the dashboard's files, served at /ui/ (default: BIN/../share/\n"
    "                            kfleet/ui next to kfleetd's binary, when it exists)\n"
    "  --log-level SPEC          \"info\", \"debug\", \"api=debug,store=warn\" (default info)\n"
    "  --log-file FILE           log here instead of stderr\n"
    "  --threads N               API request threads (default 4)\n"
    "  --max-connections N       open connections at most, watches included (default 10000)\n"
    "  --max-connections-per-client N  ... from one client address; the next gets 429\n"
    "                            (default 1024)\n"
    "  --max-watches-per-user N  open watches of one token's user; the next gets 429\n"
    "                            (default 1000)\n"
    "  --list-max-page N         objects in one LIST answer at most; the rest come with\n"
    "                            metadata.continue (default 5000)\n"
    "  --connection-timeout DUR  close connections idle this long (default 60s)\n"
    "  --compact-interval DUR    how often to compact the store's history (default 1m; 0: never)\n"
    "  --compact-retention DUR   keep revisions younger than this (default 1h) ...\n"
    "  --compact-keep-revisions N  ... and at least the latest N (default 100000)\n"
    "  --event-ttl DUR           delete Events not seen for this long (default 1h)\n"
    "  --event-gc-interval DUR   how often the leader looks for such Events (default 1m)\n"
    "  --watch-timeout DUR       end watches after this (+ jitter) unless the client says\n"
    "                            (default 30m)\n"
    "  --bookmark-interval DUR   BOOKMARK events on watches that ask (default 10s)\n"
    "  --replica-id ID           this replica's name in the leader election (default\n"
    "                            HOSTNAME:PORT of --listen)\n"
    "  --leader-ttl DUR          with an etcd store: the leader's lease; a dead leader is\n"
    "                            replaced within about this long (default 10s, min 1s)\n"
    "  --controllers LIST        controllers to run: \"*\" (default), \"none\", or names\n"
    "                            with \"-name\" to leave one out (\"*,-placement\")\n"
    "  --host-grace DUR          heartbeat silence before a Host is NotReady (default 40s;\n"
    "                            a Profile's heartbeatGrace lengthens it, e.g. edge 5m)\n"
    "  --heartbeat-report-interval DUR  with an etcd store: how often this replica tells\n"
    "                            the others which hosts beat to it (default 2s, at most\n"
    "                            --host-grace/4); agents may beat to any replica\n"
    "  --grade-table FILE        control-plane grades as JSON (default: the built-in G0..G5)\n"
    "  --grade-up-hold DUR       demand held this long before a cluster's grade goes up\n"
    "                            (default 10m)\n"
    "  --grade-down-hold DUR     ... before it goes down, in its maintenance window\n"
    "                            (default 24h)\n"
    "  --max-grade-changes N     clusters changing grade at once, fleet-wide (default 10)\n"
    "  --unit-loss-grace DUR     every host of a unit NotReady this long: the unit is lost\n"
    "                            and its clusters are restored from their backups on other\n"
    "                            units (default 10m; at least --host-grace, at most 7 days)\n"
    "  --unit-loss-concurrency N  such restores under way at once, fleet-wide (default 50)\n"
    "  --monitoring MODE         off, external (render the Prometheus/Alertmanager configs\n"
    "                            under DATA-DIR/monitoring; an operator runs them) or local\n"
    "                            (kfleetd also runs them on 127.0.0.1) (default off)\n"
    "  --monitoring-port-base N  local: first port of the stack (default 19090)\n"
    "  --monitoring-config FILE  timings, SMTP, alert overrides, addresses (JSON; see\n"
    "                            docs/internals/observability.md)\n"
    "  --alert-destinations LIST  where AlertReceivers may send: host names (*.domain for\n"
    "                            subdomains), IP addresses or CIDR blocks, comma-separated\n"
    "                            (repeatable); unset: public addresses only (loopback,\n"
    "                            private and link-local are refused unless listed)\n"
    "  --endpoints MODE          guest clusters' stable apiserver endpoints, one HAProxy\n"
    "                            per unit from DATA-DIR/endpoints/UNIT/haproxy.cfg: local\n"
    "                            (kfleetd runs and reloads them), external (kfleetd renders\n"
    "                            and checks; run haproxy -W -f FILE, reload with SIGUSR2)\n"
    "                            or off (default local; docs/internals/endpoints.md)\n"
    "  --member-ports MIN-MAX    ports for guest control-plane members, per host address,\n"
    "                            and for each guest's apiserver endpoint (default 20000-29999)\n"
    "  --endpoint-address IP     where guest apiserver endpoints listen for units that name\n"
    "                            no spec.endpointAddress (default 127.0.0.1)\n"
    "  --cluster-health-period DUR  how often a provisioned guest cluster's etcd and\n"
    "                            members are checked (default 5s)\n"
    "  --member-release-timeout DUR  a deleted member whose host is NotReady this long is\n"
    "                            let go without its agent (default 5m)\n"
    "  --member-replace-grace DUR  a host NotReady this long (after the heartbeat grace) has\n"
    "                            its members moved to other hosts, 1s..24h or 0 (never;\n"
    "                            default 5m; docs/internals/replacement.md)\n"
    "  --help, --version\n"
    "\n"
    "Durations: 500ms, 90s, 5m, 1h30m. Exit codes: 0 clean shutdown, 1 run-time failure,\n"
    "2 usage or configuration error.\n";

enum {
    OPT_LISTEN = 256,
    OPT_STORE,
    OPT_DATA_DIR,
    OPT_TOKEN_FILE,
    OPT_TLS_CERT,
    OPT_SERVER_NAME,
    OPT_TLS_KEY,
    OPT_LOG_LEVEL,
    OPT_LOG_FILE,
    OPT_THREADS,
    OPT_MAX_CONNECTIONS,
    OPT_MAX_CONNECTIONS_PER_CLIENT,
    OPT_MAX_WATCHES_PER_USER,
    OPT_LIST_MAX_PAGE,
    OPT_CONNECTION_TIMEOUT,
    OPT_COMPACT_INTERVAL,
    OPT_COMPACT_RETENTION,
    OPT_COMPACT_KEEP,
    OPT_EVENT_TTL,
    OPT_EVENT_GC_INTERVAL,
    OPT_WATCH_TIMEOUT,
    OPT_BOOKMARK_INTERVAL,
    OPT_REPLICA_ID,
    OPT_LEADER_TTL,
    OPT_CONTROLLERS,
    OPT_HOST_GRACE,
    OPT_HEARTBEAT_REPORT_INTERVAL,
    OPT_GRADE_TABLE,
    OPT_GRADE_UP_HOLD,
    OPT_GRADE_DOWN_HOLD,
    OPT_MAX_GRADE_CHANGES,
    OPT_UNIT_LOSS_GRACE,
    OPT_UNIT_LOSS_CONCURRENCY,
    OPT_MONITORING,
    OPT_MONITORING_PORT_BASE,
    OPT_MONITORING_CONFIG,
    OPT_ALERT_DESTINATIONS,
    OPT_INSECURE_PLAINTEXT,
    OPT_UI_DIR,
    OPT_ENDPOINTS,
    OPT_MEMBER_PORTS,
    OPT_ENDPOINT_ADDRESS,
    OPT_HEALTH_PERIOD,
    OPT_RELEASE_TIMEOUT,
    OPT_REPLACE_GRACE,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option options[] = {
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "store", required_argument, NULL, OPT_STORE },
    { "data-dir", required_argument, NULL, OPT_DATA_DIR },
    { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
    { "tls-cert-file", required_argument, NULL, OPT_TLS_CERT },
    { "server-name", required_argument, NULL, OPT_SERVER_NAME },
    { "tls-key-file", required_argument, NULL, OPT_TLS_KEY },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "log-file", required_argument, NULL, OPT_LOG_FILE },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
    { "max-connections-per-client", required_argument, NULL, OPT_MAX_CONNECTIONS_PER_CLIENT },
    { "max-watches-per-user", required_argument, NULL, OPT_MAX_WATCHES_PER_USER },
    { "list-max-page", required_argument, NULL, OPT_LIST_MAX_PAGE },
    { "connection-timeout", required_argument, NULL, OPT_CONNECTION_TIMEOUT },
    { "compact-interval", required_argument, NULL, OPT_COMPACT_INTERVAL },
    { "compact-retention", required_argument, NULL, OPT_COMPACT_RETENTION },
    { "compact-keep-revisions", required_argument, NULL, OPT_COMPACT_KEEP },
    { "event-ttl", required_argument, NULL, OPT_EVENT_TTL },
    { "event-gc-interval", required_argument, NULL, OPT_EVENT_GC_INTERVAL },
    { "watch-timeout", required_argument, NULL, OPT_WATCH_TIMEOUT },
    { "bookmark-interval", required_argument, NULL, OPT_BOOKMARK_INTERVAL },
    { "replica-id", required_argument, NULL, OPT_REPLICA_ID },
    { "leader-ttl", required_argument, NULL, OPT_LEADER_TTL },
    { "controllers", required_argument, NULL, OPT_CONTROLLERS },
    { "host-grace", required_argument, NULL, OPT_HOST_GRACE },
    { "heartbeat-report-interval", required_argument, NULL, OPT_HEARTBEAT_REPORT_INTERVAL },
    { "grade-table", required_argument, NULL, OPT_GRADE_TABLE },
    { "grade-up-hold", required_argument, NULL, OPT_GRADE_UP_HOLD },
    { "grade-down-hold", required_argument, NULL, OPT_GRADE_DOWN_HOLD },
    { "max-grade-changes", required_argument, NULL, OPT_MAX_GRADE_CHANGES },
    { "unit-loss-grace", required_argument, NULL, OPT_UNIT_LOSS_GRACE },
    { "unit-loss-concurrency", required_argument, NULL, OPT_UNIT_LOSS_CONCURRENCY },
    { "monitoring", required_argument, NULL, OPT_MONITORING },
    { "monitoring-port-base", required_argument, NULL, OPT_MONITORING_PORT_BASE },
    { "monitoring-config", required_argument, NULL, OPT_MONITORING_CONFIG },
    { "alert-destinations", required_argument, NULL, OPT_ALERT_DESTINATIONS },
    { "insecure-allow-plaintext", no_argument, NULL, OPT_INSECURE_PLAINTEXT },
    { "endpoints", required_argument, NULL, OPT_ENDPOINTS },
    { "member-ports", required_argument, NULL, OPT_MEMBER_PORTS },
    { "endpoint-address", required_argument, NULL, OPT_ENDPOINT_ADDRESS },
    { "cluster-health-period", required_argument, NULL, OPT_HEALTH_PERIOD },
    { "member-release-timeout", required_argument, NULL, OPT_RELEASE_TIMEOUT },
    { "member-replace-grace", required_argument, NULL, OPT_REPLACE_GRACE },
    { "help", no_argument, NULL, OPT_HELP },
    { "ui-dir", required_argument, NULL, OPT_UI_DIR },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
};

struct config {
    struct kf_api_config api;
    const char *store;
    const char *data_dir;
    const char *log_level;
    const char *log_file;
    struct daemon_maint_config maint;
    const char *replica_id;
    int64_t leader_ttl_ms;
    int64_t heartbeat_report_ms;
    struct kf_capacity_options cap;
    struct kf_lifecycle_options lifecycle;
    const char *grade_table;
    const char *controllers;
    enum kf_mon_mode monitoring;
    int monitoring_port_base; /* 0: the config's or the default */
    const char *monitoring_config;
    const char *alert_destinations; /* comma-separated, validated */
    enum kf_ep_mode endpoints;
};

static KF_NORETURN KF_PRINTF(1, 2) void usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("kfleetd: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(kfleetd --help lists the options)\n", stderr);
    exit(EXIT_USAGE);
}

static int64_t parse_duration(const char *opt, const char *v)
{
    int64_t ms;

    if (strcmp(v, "0") == 0)
        return 0;
    if (kf_parse_duration_ms(v, &ms) < 0 || ms < 0)
        usage_error("--%s \"%s\": not a duration (use e.g. 500ms, 90s, 5m, 1h)", opt, v);
    return ms;
}

static int64_t parse_count(const char *opt, const char *v, int64_t min, int64_t max)
{
    int64_t n;

    if (kf_parse_int64(v, &n) < 0 || n < min || n > max)
        usage_error("--%s \"%s\": must be a whole number from %lld to %lld", opt, v, (long long)min,
                    (long long)max);
    return n;
}

/* --server-name values, comma-separated; lives as long as the process. */
static struct kf_strbuf server_names = KF_STRBUF_INIT;
/* --alert-destinations values, likewise. */
static struct kf_strbuf alert_destinations = KF_STRBUF_INIT;

/* Every connection is a descriptor, and so are the store, watches' pipes,
 * logs and children's pipes: raise the soft RLIMIT_NOFILE towards the
 * hard limit so that --max-connections is reachable (the usual soft limit
 * of 1024 would make accept fail first, for every client). */
static void raise_file_limit(unsigned int max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections + 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        kf_log_warn("open files are limited to %llu, fewer than --max-connections %u needs "
                    "(%llu); raise the hard limit (ulimit -Hn, LimitNOFILE=)",
                    (unsigned long long)rl.rlim_cur, max_connections, (unsigned long long)want);
}

static void check_destinations(const char *list)
{
    struct kf_obs_destinations d;
    struct kf_strbuf why = KF_STRBUF_INIT;

    if (kf_obs_destinations_parse(list, &d, &why) < 0)
        usage_error("--alert-destinations: %s", why.buf);
    kf_obs_destinations_release(&d);
    kf_strbuf_release(&why);
}

/* The dashboard installed next to the binary (BIN/../share/kfleet/ui: the
 * build tree's and an installed tree's layout), or NULL when absent. Lives
 * as long as the process. */
static const char *default_ui_dir(void)
{
    static char dir[PATH_MAX];
    char exe[PATH_MAX], *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    struct stat st;

    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    if ((size_t)snprintf(dir, sizeof(dir), "%s/../share/kfleet/ui", exe) >= sizeof(dir))
        return NULL;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return NULL;
    return dir;
}

/* The defaults of every option. */
static void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    kf_api_config_init(&c->api);
    c->api.ui_dir = default_ui_dir();
    c->data_dir = "./var";
    c->log_level = "info";
    c->maint.compact_interval_ms = 60 * 1000;
    c->maint.compact_retention_ms = 60 * 60 * 1000;
    c->maint.compact_keep_revs = 100000;
    c->maint.event_ttl_ms = 60 * 60 * 1000;
    c->maint.event_gc_interval_ms = 60 * 1000;
    c->leader_ttl_ms = 10 * 1000;
    c->heartbeat_report_ms = 2 * 1000;
    kf_capacity_options_default(&c->cap);
    kf_lifecycle_options_default(&c->lifecycle);
    c->endpoints = KF_EP_LOCAL;
}

/* The HTTP API server's options: true when opt is one of them (v its value, a usage error exits). */
static bool api_option(int opt, const char *v, struct config *c)
{
    switch (opt) {
    case OPT_LISTEN:
        c->api.listen = v;
        return true;
    case OPT_TOKEN_FILE:
        c->api.token_file = v;
        return true;
    case OPT_TLS_CERT:
        c->api.tls_cert_file = v;
        return true;
    case OPT_TLS_KEY:
        c->api.tls_key_file = v;
        return true;
    case OPT_SERVER_NAME:
        if (!kf_name_valid(v))
            usage_error("--server-name \"%s\": not a DNS name", v);
        kf_strbuf_addf(&server_names, "%s%s", server_names.len ? "," : "", v);
        c->api.server_names = server_names.buf;
        return true;
    case OPT_INSECURE_PLAINTEXT:
        c->api.insecure_allow_plaintext = true;
        return true;
    case OPT_UI_DIR:
        c->api.ui_dir = v;
        return true;
    case OPT_THREADS:
        c->api.threads = (unsigned int)parse_count("threads", v, 1, 256);
        return true;
    case OPT_MAX_CONNECTIONS:
        c->api.max_connections = (unsigned int)parse_count("max-connections", v, 16, 1000000);
        return true;
    case OPT_MAX_CONNECTIONS_PER_CLIENT:
        c->api.max_connections_per_client =
            (unsigned int)parse_count("max-connections-per-client", v, 1, 1000000);
        return true;
    case OPT_MAX_WATCHES_PER_USER:
        c->api.max_watches_per_user =
            (unsigned int)parse_count("max-watches-per-user", v, 1, 1000000);
        return true;
    case OPT_LIST_MAX_PAGE:
        c->api.list_max_page = (size_t)parse_count("list-max-page", v, 1, 500000);
        return true;
    case OPT_CONNECTION_TIMEOUT: {
        int64_t ms = parse_duration("connection-timeout", v);

        if (ms < 1000)
            usage_error("--connection-timeout must be at least 1s");
        c->api.connection_timeout_s = (unsigned int)KF_MIN(ms / 1000, 24 * 3600);
        return true;
    }
    case OPT_WATCH_TIMEOUT: {
        int64_t ms = parse_duration("watch-timeout", v);

        if (ms < 1000)
            usage_error("--watch-timeout must be at least 1s");
        c->api.watch_timeout_s = (unsigned int)KF_MIN(ms / 1000, 24 * 3600);
        c->api.watch_timeout_max_s = KF_MAX(c->api.watch_timeout_max_s, 2 * c->api.watch_timeout_s);
        return true;
    }
    case OPT_BOOKMARK_INTERVAL: {
        int64_t ms = parse_duration("bookmark-interval", v);

        if (ms < 50)
            usage_error("--bookmark-interval must be at least 50ms");
        c->api.bookmark_interval_ms = (unsigned int)KF_MIN(ms, 3600 * 1000);
        return true;
    }
    default:
        return false;
    }
}

/* The store, logging, maintenance and replica options: true when opt is one of them (v its value, a usage error exits). */
static bool daemon_option(int opt, const char *v, struct config *c)
{
    switch (opt) {
    case OPT_STORE:
        c->store = v;
        return true;
    case OPT_DATA_DIR:
        c->data_dir = v;
        return true;
    case OPT_LOG_LEVEL:
        c->log_level = v;
        return true;
    case OPT_LOG_FILE:
        c->log_file = v;
        return true;
    case OPT_COMPACT_INTERVAL:
        c->maint.compact_interval_ms = parse_duration("compact-interval", v);
        return true;
    case OPT_COMPACT_RETENTION:
        c->maint.compact_retention_ms = parse_duration("compact-retention", v);
        return true;
    case OPT_COMPACT_KEEP:
        c->maint.compact_keep_revs = parse_count("compact-keep-revisions", v, 0, INT64_MAX / 2);
        return true;
    case OPT_EVENT_TTL:
        c->maint.event_ttl_ms = parse_duration("event-ttl", v);
        if (!c->maint.event_ttl_ms)
            usage_error("--event-ttl must be more than 0");
        return true;
    case OPT_EVENT_GC_INTERVAL:
        c->maint.event_gc_interval_ms = parse_duration("event-gc-interval", v);
        return true;
    case OPT_REPLICA_ID:
        c->replica_id = v;
        return true;
    case OPT_LEADER_TTL:
        c->leader_ttl_ms = parse_duration("leader-ttl", v);
        if (c->leader_ttl_ms < 1000)
            usage_error("--leader-ttl must be at least 1s");
        return true;
    case OPT_HEARTBEAT_REPORT_INTERVAL:
        c->heartbeat_report_ms = parse_duration("heartbeat-report-interval", v);
        if (c->heartbeat_report_ms < 10)
            usage_error("--heartbeat-report-interval must be at least 10ms");
        return true;
    default:
        return false;
    }
}

/* The controllers' and the capacity model's options: true when opt is one of them (v its value, a usage error exits). */
static bool capacity_option(int opt, const char *v, struct config *c)
{
    switch (opt) {
    case OPT_CONTROLLERS: {
        struct kf_strbuf err = KF_STRBUF_INIT;

        if (kf_ctrl_check_enabled(v, &err) < 0)
            usage_error("--controllers: %s", err.buf);
        c->controllers = v;
        return true;
    }
    case OPT_HOST_GRACE:
        c->cap.host_grace_ms = parse_duration("host-grace", v);
        if (c->cap.host_grace_ms < 100)
            usage_error("--host-grace must be at least 100ms");
        return true;
    case OPT_GRADE_TABLE:
        c->grade_table = v;
        return true;
    case OPT_GRADE_UP_HOLD:
        c->cap.shift.up_hold_ms = parse_duration("grade-up-hold", v);
        return true;
    case OPT_GRADE_DOWN_HOLD:
        c->cap.shift.down_hold_ms = parse_duration("grade-down-hold", v);
        return true;
    case OPT_UNIT_LOSS_GRACE:
        c->cap.unit_loss_grace_ms = parse_duration("unit-loss-grace", v);
        if (c->cap.unit_loss_grace_ms < 1000 ||
            c->cap.unit_loss_grace_ms > KF_UNIT_LOSS_GRACE_MAX_MS)
            usage_error("--unit-loss-grace must be between 1s and 7 days");
        return true;
    case OPT_UNIT_LOSS_CONCURRENCY:
        c->cap.unit_loss_concurrency =
            (unsigned)parse_count("unit-loss-concurrency", v, 1, KF_UNIT_LOSS_CONCURRENCY_MAX);
        return true;
    case OPT_MAX_GRADE_CHANGES:
        c->cap.shift.max_in_flight = (unsigned)parse_count("max-grade-changes", v, 1, 1000000);
        return true;
    default:
        return false;
    }
}

/* The monitoring, endpoint and guest cluster lifecycle options: true when opt is one of them (v its value, a usage error exits). */
static bool cluster_option(int opt, const char *v, struct config *c)
{
    switch (opt) {
    case OPT_MONITORING:
        if (kf_mon_mode_parse(v, &c->monitoring) < 0)
            usage_error("--monitoring \"%s\": must be off, external or local", v);
        return true;
    case OPT_MONITORING_PORT_BASE:
        c->monitoring_port_base = (int)parse_count("monitoring-port-base", v, 1024, 65000);
        return true;
    case OPT_MONITORING_CONFIG:
        c->monitoring_config = v;
        return true;
    case OPT_ALERT_DESTINATIONS:
        check_destinations(v);
        kf_strbuf_addf(&alert_destinations, "%s%s", alert_destinations.len ? "," : "", v);
        c->alert_destinations = alert_destinations.buf;
        return true;
    case OPT_ENDPOINTS:
        if (kf_ep_mode_parse(v, &c->endpoints) < 0)
            usage_error("--endpoints \"%s\": must be local, external or off", v);
        return true;
    case OPT_MEMBER_PORTS: {
        int lo = 0, hi = 0;
        char tail;

        if (sscanf(v, "%d-%d%c", &lo, &hi, &tail) != 2 || lo < 1024 || hi > 65535 || hi - lo < 15)
            usage_error("--member-ports \"%s\": want MIN-MAX within 1024-65535, at least "
                        "16 ports",
                        v);
        c->lifecycle.port_min = lo;
        c->lifecycle.port_max = hi;
        return true;
    }
    case OPT_ENDPOINT_ADDRESS: {
        struct kf_cidr ip;

        if (kf_ip_parse(v, &ip, NULL) < 0 || ip.addr == 0)
            usage_error("--endpoint-address \"%s\": want one IPv4 or IPv6 address (not "
                        "0.0.0.0 or ::, which would publish every guest apiserver on every "
                        "interface)",
                        v);
        c->lifecycle.endpoint_address = v;
        return true;
    }
    case OPT_HEALTH_PERIOD:
        c->lifecycle.health_period_ms = parse_duration("cluster-health-period", v);
        if (c->lifecycle.health_period_ms < 100)
            usage_error("--cluster-health-period must be at least 100ms");
        return true;
    case OPT_RELEASE_TIMEOUT:
        c->lifecycle.release_timeout_ms = parse_duration("member-release-timeout", v);
        return true;
    case OPT_REPLACE_GRACE:
        c->lifecycle.replace_grace_ms = parse_duration("member-replace-grace", v);
        if (c->lifecycle.replace_grace_ms != 0 &&
            (c->lifecycle.replace_grace_ms < 1000 || c->lifecycle.replace_grace_ms > 86400000))
            usage_error("--member-replace-grace \"%s\": must be 0 (never) or from 1s to 24h", v);
        return true;
    default:
        return false;
    }
}

/* The command line into c; a usage error exits. */
static void parse_options(int argc, char **argv, struct config *c)
{
    int opt;

    config_defaults(c);
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (api_option(opt, optarg, c) || daemon_option(opt, optarg, c) ||
            capacity_option(opt, optarg, c) || cluster_option(opt, optarg, c))
            continue;
        switch (opt) {
        case OPT_HELP:
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        case OPT_VERSION:
            printf("kfleetd %s\n", KF_VERSION);
            exit(0);
        default:
            fputs("(kfleetd --help lists the options)\n", stderr);
            exit(EXIT_USAGE);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument \"%s\"", argv[optind]);
    if (c->cap.unit_loss_grace_ms < c->cap.host_grace_ms)
        usage_error("--unit-loss-grace (%lld ms) must be at least --host-grace (%lld ms): a unit "
                    "is lost only after its hosts are NotReady",
                    (long long)c->cap.unit_loss_grace_ms, (long long)c->cap.host_grace_ms);
}

/* --grade-table FILE: the operator's grades, validated, into *t. */
static void load_grade_table(const char *path, struct kf_grade_table *t)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);

    if (!doc)
        usage_error("--grade-table \"%s\": %s (line %d)", path, jerr.text, jerr.line);
    if (kf_grade_table_from_json(doc, t, &err) < 0)
        usage_error("--grade-table \"%s\": %s", path, err.buf);
    json_decref(doc);
    kf_strbuf_release(&err);
}

static int make_dir(const char *dir, struct kf_strbuf *err)
{
    struct kf_strbuf path = KF_STRBUF_INIT;
    int r = 0;

    /* mkdir -p */
    kf_strbuf_addstr(&path, dir);
    for (size_t i = 1; i <= path.len; i++) {
        if (path.buf[i] != '/' && path.buf[i] != '\0')
            continue;
        char c = path.buf[i];

        path.buf[i] = '\0';
        if (mkdir(path.buf, 0750) < 0 && errno != EEXIST) {
            r = kf_err(err, -errno, "cannot create data directory \"%s\": %s", path.buf,
                       strerror(errno));
            break;
        }
        path.buf[i] = c;
    }
    kf_strbuf_release(&path);
    return r;
}

/* HOSTNAME:PORT, the port taken from the listen address. */
static char *default_replica_id(const char *listen)
{
    char host[256] = "kfleetd";
    const char *colon = strrchr(listen ? listen : "", ':');

    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "kfleetd");
    host[sizeof(host) - 1] = '\0';
    return kf_xasprintf("%.100s:%s", host, colon ? colon + 1 : "7480");
}

static int receiver_auth(void *arg, const char *method, const char *rest, const char *authorization,
                         struct kf_strbuf *resp)
{
    return kf_mon_check_webhook_auth(arg, authorization, resp);
}

static int receiver_handler(void *arg, const char *method, const char *rest,
                            const char *authorization, const char *body, size_t len,
                            struct kf_strbuf *resp)
{
    if (strcmp(method, "POST") != 0) {
        kf_strbuf_addstr(resp, "{\"result\":\"method-not-allowed\",\"detail\":\"POST only\"}\n");
        return 405;
    }
    if (!*rest || strchr(rest, '/')) {
        kf_strbuf_addstr(resp, "{\"result\":\"not-found\"}\n");
        return 404;
    }
    return kf_mon_handle_webhook(arg, rest, authorization, body, len, resp);
}

/* --monitoring: the monitoring service and its webhook endpoint. */
static int start_monitoring(const struct config *c, struct kf_daemon *d, struct kf_strbuf *err)
{
    struct kf_mon_config mc;
    int r = 0;

    if (c->monitoring == KF_MON_OFF)
        return 0;
    kf_mon_config_init(&mc);
    mc.mode = c->monitoring;
    if (c->monitoring_config)
        r = kf_mon_config_load(c->monitoring_config, &mc, err);
    if (r == 0 && c->monitoring_port_base)
        mc.port_base = c->monitoring_port_base;
    if (r == 0 && c->alert_destinations)
        mc.alert_destinations = kf_xstrdup(c->alert_destinations);
    if (r == 0 && !mc.kfleetd) {
        char *host = NULL;
        uint16_t port = 0;

        r = kf_parse_listen(c->api.listen, &host, &port, err);
        if (r == 0) {
            bool any = !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !*host;

            mc.kfleetd = strchr(host, ':') && !any
                             ? kf_xasprintf("[%s]:%u", host, port)
                             : kf_xasprintf("%s:%u", any ? "127.0.0.1" : host, port);
        }
        free(host);
    }
    if (r == 0 && !mc.adapter)
        mc.adapter = kf_xasprintf("%s://%s/alerts/v1/receivers",
                                  c->api.tls_cert_file ? "https" : "http", mc.kfleetd);
    if (r == 0)
        r = kf_mon_new(&mc, c->data_dir, d->metrics, &d->mon, err);
    kf_mon_config_release(&mc);
    if (r == 0)
        r = kf_api_add_handler(d->api, "/alerts/v1/receivers/", "alertreceivers-webhook",
                               receiver_auth, receiver_handler, d->mon);
    if (r == 0)
        kf_log_info("monitoring: %s, configurations under %s, alert webhooks at %s",
                    kf_mon_mode_name(c->monitoring), kf_mon_root(d->mon),
                    kf_mon_config(d->mon)->adapter);
    return r;
}

/* Signals are taken by sigwait in this thread only; every thread started
 * after this inherits the mask. */
static void block_signals(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The data directory and the store, then the registry, the lease table and
 * the metrics over it: 0, or the exit code (logged). */
static int open_store(struct config *c, struct kf_daemon *d, char **ret_url, struct kf_strbuf *err)
{
    char *store_url;
    int r;

    r = make_dir(c->data_dir, err);
    if (r < 0) {
        kf_log_err("%s", err->buf);
        return EXIT_RUNTIME;
    }
    d->data_dir = c->data_dir;
    store_url = c->store ? kf_xstrdup(c->store) : kf_xasprintf("sqlite:%s/kfleet.db", c->data_dir);
    r = kf_store_open(store_url, &d->store, err);
    if (r < 0) {
        kf_log_err("cannot open the store: %s", err->buf);
        free(store_url);
        return r == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    }
    d->reg = kf_registry_new(d->store);
    d->leases = kf_lease_table_new(kf_now_ms());
    d->capacity = &c->cap;
    d->controllers_enabled = c->controllers;
    d->lifecycle = &c->lifecycle;
    d->metrics = kf_metrics_new();
    kf_metrics_add_process(d->metrics);
    kf_daemon_memory_add_metrics(d->metrics);
    *ret_url = store_url;
    return 0;
}

/* The API server (not started yet), monitoring, the local endpoints and the
 * lifecycle's API actions: 0, or the exit code (logged); what was made is
 * in d and *ret_actions for the caller to free. */
static int start_services(const struct config *c, struct kf_daemon *d,
                          struct kf_lifecycle_actions **ret_actions, struct kf_strbuf *err)
{
    int r;

    r = kf_api_new(&c->api, d->reg, d->metrics, &d->api, err);
    if (r < 0) {
        kf_log_err("%s", err->buf);
        return EXIT_USAGE;
    }
    kf_api_set_leases(d->api, d->leases);
    r = start_monitoring(c, d, err);
    if (r < 0) {
        kf_log_err("monitoring: %s", err->buf);
        return r == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    }
    if (c->endpoints != KF_EP_OFF) {
        struct kf_ep_config ec = { .mode = c->endpoints };

        r = kf_endpoints_new(&ec, c->data_dir, &d->endpoints, err);
        if (r < 0) {
            kf_log_err("endpoints: %s", err->buf);
            return EXIT_RUNTIME;
        }
        kf_log_info("endpoints: %s, HAProxy configurations under %s", kf_ep_mode_name(c->endpoints),
                    kf_endpoints_root(d->endpoints));
    }
    r = kf_lifecycle_add_actions(kf_api_actions(d->api), d->reg, d->store, ret_actions, err);
    if (r < 0) {
        kf_log_err("%s", err->buf);
        return EXIT_RUNTIME;
    }
    return 0;
}

/* Waits for SIGTERM or SIGINT, reloading the tokens on each SIGHUP; returns the signal. */
static int wait_for_stop(const struct config *c, struct kf_daemon *d, const sigset_t *sigs,
                         struct kf_strbuf *err)
{
    int sig = 0, r;

    for (;;) {
        if (sigwait(sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            /* logrotate moved the log file away: write to a new one */
            r = kf_log_reopen();
            if (r < 0)
                kf_log_warn("SIGHUP: cannot reopen the log file \"%s\": %s; logging on to the "
                            "old one",
                            c->log_file, strerror(-r));
            else if (r > 0)
                kf_log_info("SIGHUP: reopened the log file \"%s\"", c->log_file);
            if (!c->api.token_file)
                continue;
            kf_strbuf_reset(err);
            r = kf_api_reload_tokens(d->api, err);
            if (r < 0)
                kf_log_warn("SIGHUP: token file not reloaded, the old tokens stay: %s", err->buf);
            else
                kf_log_info("SIGHUP: reloaded %d tokens from \"%s\"", r, c->api.token_file);
            continue;
        }
        return sig;
    }
}

int main(int argc, char **argv)
{
    struct config c;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_daemon d = { 0 };
    struct daemon_leader *leader = NULL;
    struct kf_lifecycle_actions *lc_actions = NULL;
    struct daemon_heartbeats *heartbeats = NULL;
    struct daemon_leader_config lc = { 0 };
    char *store_url = NULL, *replica_id = NULL;
    struct kf_grade_table grades;
    sigset_t sigs;
    int sig = 0, r, exit_code = 0;

    parse_options(argc, argv, &c);
    if (c.grade_table) {
        load_grade_table(c.grade_table, &grades);
        c.cap.grades = &grades;
    }
    kf_log_init("kfleetd", c.log_file);
    if (kf_log_set_spec(c.log_level, &err) < 0)
        usage_error("--log-level: %s", err.buf);
    raise_file_limit(c.api.max_connections ? c.api.max_connections : 10000);
    block_signals(&sigs);
    exit_code = open_store(&c, &d, &store_url, &err);
    if (exit_code)
        return exit_code;

    /* every destructor below takes NULL: what start_services did not make is NULL */
    exit_code = start_services(&c, &d, &lc_actions, &err);
    if (exit_code)
        goto free_services;
    lc.replica_id = c.replica_id ? c.replica_id : (replica_id = default_replica_id(c.api.listen));
    lc.lease_ttl_ms = c.leader_ttl_ms;
    lc.maint = c.maint;
    r = kf_daemon_leader_start(&d, &lc, &leader, &err);
    if (r < 0) {
        kf_log_err("cannot start the controllers: %s", err.len ? err.buf : strerror(-r));
        exit_code = r == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
        goto free_services;
    }
    if (kf_daemon_leader_contested(leader)) {
        struct daemon_heartbeats_config hc = {
            .replica_id = lc.replica_id,
            .interval_ms = c.heartbeat_report_ms,
            .host_grace_ms = c.cap.host_grace_ms,
        };

        r = kf_daemon_heartbeats_start(&d, &hc, &heartbeats, &err);
        if (r < 0) {
            kf_log_err("cannot share host heartbeats with the other replicas: %s", err.buf);
            exit_code = EXIT_RUNTIME;
            goto stop_leader;
        }
    }
    r = kf_api_start(d.api, &err);
    if (r < 0) {
        kf_log_err("%s", err.buf);
        exit_code = EXIT_RUNTIME;
        goto stop_heartbeats;
    }
    kf_log_info("kfleetd %s listening on %s://%s (port %u), store \"%s\", %s", KF_VERSION,
                c.api.tls_cert_file ? "https" : "http", c.api.listen, kf_api_port(d.api), store_url,
                c.api.token_file ? "bearer tokens required" : "no authentication (loopback only)");
    sig = wait_for_stop(&c, &d, &sigs, &err);
    kf_api_stop(d.api);

stop_heartbeats:
    kf_daemon_heartbeats_stop(heartbeats);
stop_leader:
    kf_daemon_leader_stop(leader);
free_services:
    kf_api_free(d.api);
    kf_mon_free(d.mon);
    kf_endpoints_free(d.endpoints); /* after the controllers: stops the local HAProxies */
    kf_lifecycle_actions_free(lc_actions);
    kf_registry_free(d.reg);
    kf_store_close(d.store);
    kf_metrics_free(d.metrics);
    kf_lease_table_free(d.leases);
    if (sig)
        kf_log_info("kfleetd stopped (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    free(store_url);
    free(replica_id);
    kf_strbuf_release(&err);
    return exit_code;
}
