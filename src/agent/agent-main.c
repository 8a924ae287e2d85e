/* agent-main.c: kfleet-agent, the host agent.
 *
 * Parses the command line into a struct kf_agent_config and runs the agent
 * (agent-loop.c). Exit codes: 0 after SIGTERM or SIGINT, 1 when something
 * failed at run time (data directory taken by another agent, metrics
 * address in use), 2 for a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: kfleet-agent --server URL --token T --role meta|worker --name N --zone Z\n"
    "                    [--unit U | --cluster C] [OPTIONS]\n"
    "\n"
    "The host agent: registers this machine as a Host of kfleetd, heartbeats for it,\n"
    "and (meta hosts) runs the ControlPlaneMembers bound to it.\n"
    "\n"
    "  --server URL[,URL...]     kfleetd (http://127.0.0.1:7480 or https://...); several\n"
    "                            replicas of one fleet: the agent moves on when one fails\n"
    "  --token T                 bearer token of role agent (or KFLEET_TOKEN, --token-file)\n"
    "  --token-file FILE         read the token from FILE\n"
    "  --ca-file FILE            CA that signed kfleetd's certificate (https)\n"
    "  --role meta|worker        meta: hosts guest control planes; worker: a guest node\n"
    "  --name N                  the Host's name (with --simulate: the prefix of N-1, N-2, ...)\n"
    "  --zone Z                  its zone (with --simulate: a comma list, spread round-robin)\n"
    "  --unit U                  the unit a meta host belongs to\n"
    "  --cluster C               the guest cluster a worker host is a node of\n"
    "  --address IP              where others reach this host and its members (default\n"
    "                            127.0.0.1)\n"
    "  --capacity-cpu N          CPUs to offer (default: detected, e.g. 4 or 3500m)\n"
    "  --capacity-memory SIZE    memory to offer (default: detected, e.g. 16Gi)\n"
    "  --data-dir DIR            members' data, certificates, logs and the runner's state\n"
    "                            (default /var/lib/kfleet-agent)\n"
    "  --cgroup-parent DIR       cgroup v2 directory for the members' limits (default: the\n"
    "                            agent's own cgroup when delegated; \"none\": no limits)\n"
    "  --metrics-listen H:P      serve /metrics there (port 0: any free port)\n"
    "  --heartbeat-interval DUR  time between heartbeats (default 10s)\n"
    "  --kubernetes-dir DIR      the Kubernetes releases, one folder per minor (default\n"
    "                            /opt/kfleet/kubernetes)\n"
    "  --artifacts URL           fetch a release the host lacks from URL/<minor>/bin/...,\n"
    "                            each file checked against the catalog's SHA-256\n"
    "  --artifacts-interval DUR  look for missing releases again this often, within 10 %\n"
    "                            (default 10m; 1s to 24h)\n"
    "  --stop-members-on-exit    stop the members on SIGTERM/SIGINT (default: they keep\n"
    "                            running and the next agent adopts them)\n"
    "  --stop-grace DUR          SIGTERM..SIGKILL for members (default 10s)\n"
    "  --backoff DUR[,MAX]       members' restart back-off (default 1s,60s)\n"
    "  --simulate N              N virtual hosts in this process, simulated processes\n"
    "  --sim-ready-delay DUR     a simulated member is ready this long after it starts\n"
    "                            (default 500ms)\n"
    "  --sim-task-duration DUR   a simulated BroadcastJob task runs this long (default 1s)\n"
    "  --sim-task-failures RATE  the share of simulated tasks that fail: \"2%\" or 0.02\n"
    "                            (default 0; which ones follows from the task, repeatably)\n"
    "  --log-level SPEC          \"info\", \"debug\", \"agent=debug,runner=warn\"\n"
    "  --log-file FILE           log here instead of stderr\n"
    "  --help, --version\n";

enum {
    OPT_SERVER = 256,
    OPT_TOKEN,
    OPT_TOKEN_FILE,
    OPT_CA_FILE,
    OPT_ROLE,
    OPT_NAME,
    OPT_ZONE,
    OPT_UNIT,
    OPT_CLUSTER,
    OPT_ADDRESS,
    OPT_CPU,
    OPT_MEMORY,
    OPT_DATA_DIR,
    OPT_CGROUP_PARENT,
    OPT_METRICS,
    OPT_HEARTBEAT,
    OPT_STOP_MEMBERS,
    OPT_STOP_GRACE,
    OPT_BACKOFF,
    OPT_SIMULATE,
    OPT_SIM_READY,
    OPT_SIM_TASK_DURATION,
    OPT_SIM_TASK_FAILURES,
    OPT_LOG_LEVEL,
    OPT_LOG_FILE,
    OPT_K8S_DIR,
    OPT_ARTIFACTS,
    OPT_ARTIFACTS_INTERVAL,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option options[] = {
    { "server", required_argument, NULL, OPT_SERVER },
    { "token", required_argument, NULL, OPT_TOKEN },
    { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
    { "ca-file", required_argument, NULL, OPT_CA_FILE },
    { "role", required_argument, NULL, OPT_ROLE },
    { "name", required_argument, NULL, OPT_NAME },
    { "zone", required_argument, NULL, OPT_ZONE },
    { "unit", required_argument, NULL, OPT_UNIT },
    { "cluster", required_argument, NULL, OPT_CLUSTER },
    { "address", required_argument, NULL, OPT_ADDRESS },
    { "capacity-cpu", required_argument, NULL, OPT_CPU },
    { "capacity-memory", required_argument, NULL, OPT_MEMORY },
    { "data-dir", required_argument, NULL, OPT_DATA_DIR },
    { "cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT },
    { "metrics-listen", required_argument, NULL, OPT_METRICS },
    { "heartbeat-interval", required_argument, NULL, OPT_HEARTBEAT },
    { "stop-members-on-exit", no_argument, NULL, OPT_STOP_MEMBERS },
    { "stop-grace", required_argument, NULL, OPT_STOP_GRACE },
    { "backoff", required_argument, NULL, OPT_BACKOFF },
    { "simulate", required_argument, NULL, OPT_SIMULATE },
    { "sim-ready-delay", required_argument, NULL, OPT_SIM_READY },
    { "sim-task-duration", required_argument, NULL, OPT_SIM_TASK_DURATION },
    { "sim-task-failures", required_argument, NULL, OPT_SIM_TASK_FAILURES },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "log-file", required_argument, NULL, OPT_LOG_FILE },
    { "kubernetes-dir", required_argument, NULL, OPT_K8S_DIR },
    { "artifacts", required_argument, NULL, OPT_ARTIFACTS },
    { "artifacts-interval", required_argument, NULL, OPT_ARTIFACTS_INTERVAL },
    { "help", no_argument, NULL, OPT_HELP },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
};

static KF_NORETURN KF_PRINTF(1, 2) void usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("kfleet-agent: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'kfleet-agent --help'.\n", stderr);
    exit(EXIT_USAGE);
}

static int64_t duration(const char *opt, const char *v)
{
    int64_t ms;

    if (kf_parse_duration_ms(v, &ms) < 0 || ms < 0)
        usage_error("--%s \"%s\": not a duration (use e.g. 500ms, 10s, 1m)", opt, v);
    return ms;
}

static char *read_token_file(const char *path)
{
    FILE *f = fopen(path, "re");
    char buf[4096];
    size_t n;

    if (!f)
        usage_error("--token-file \"%s\": %s", path, strerror(errno));
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0])
        usage_error("--token-file \"%s\" is empty", path);
    return kf_xstrdup(buf);
}

/* Every comma-separated URL of --server is http:// or https://. */
static void check_servers(const char *list)
{
    const char *p = list;

    for (;;) {
        size_t n = strcspn(p, ",");

        if (!(n > 7 && strncmp(p, "http://", 7) == 0) && !(n > 8 && strncmp(p, "https://", 8) == 0))
            usage_error("--server \"%s\": want http://HOST:PORT or https://HOST:PORT, or several "
                        "of them separated by commas (\"%.*s\" is neither)",
                        list, (int)n, p);
        if (!p[n])
            break;
        p += n + 1;
    }
}

/* The options with a number, a quantity or a duration: true when opt is one
 * of them (a bad value exits with the usage error). */
static bool parse_number_option(int opt, const char *arg, struct kf_agent_config *c)
{
    switch (opt) {
    case OPT_CPU: {
        int64_t milli;

        if (kf_parse_quantity(arg, &milli) < 0 || milli <= 0)
            usage_error("--capacity-cpu \"%s\": not a CPU quantity (4, 3500m)", arg);
        c->cpu_milli = milli;
        break;
    }
    case OPT_MEMORY: {
        int64_t milli;

        if (kf_parse_quantity(arg, &milli) < 0 || milli < 1000)
            usage_error("--capacity-memory \"%s\": not a memory size (16Gi)", arg);
        c->memory_bytes = milli / 1000;
        break;
    }
    case OPT_HEARTBEAT:
        c->heartbeat_ms = duration("heartbeat-interval", arg);
        if (c->heartbeat_ms < 50)
            usage_error("--heartbeat-interval must be at least 50ms");
        break;
    case OPT_STOP_MEMBERS:
        c->stop_members_on_exit = true;
        break;
    case OPT_ARTIFACTS_INTERVAL:
        c->artifacts_interval_ms = duration("artifacts-interval", arg);
        if (c->artifacts_interval_ms < 1000 || c->artifacts_interval_ms > 24 * 3600 * 1000LL)
            usage_error("--artifacts-interval \"%s\": from 1s to 24h", arg);
        break;
    case OPT_STOP_GRACE:
        c->stop_grace_ms = (int)KF_MIN(duration("stop-grace", arg), 3600 * 1000);
        if (c->stop_grace_ms <= 0)
            usage_error("--stop-grace must be more than 0");
        break;
    case OPT_BACKOFF: {
        char *copy = kf_xstrdup(arg), *comma = strchr(copy, ',');

        if (comma)
            *comma = '\0';
        c->backoff_initial_ms = duration("backoff", copy);
        c->backoff_max_ms = comma ? duration("backoff", comma + 1) : 0;
        free(copy);
        if (c->backoff_initial_ms <= 0 ||
            (c->backoff_max_ms && c->backoff_max_ms < c->backoff_initial_ms))
            usage_error("--backoff \"%s\": want INITIAL[,MAX] with 0 < INITIAL <= MAX", arg);
        break;
    }
    case OPT_SIMULATE: {
        int64_t n;

        if (kf_parse_int64(arg, &n) < 0 || n < 1 || n > 1000000)
            usage_error("--simulate \"%s\": a number of hosts from 1 to 1000000", arg);
        c->simulate = (int)n;
        break;
    }
    case OPT_SIM_READY:
        c->sim_ready_delay_ms = duration("sim-ready-delay", arg);
        break;
    case OPT_SIM_TASK_DURATION:
        c->sim_task_duration_ms = duration("sim-task-duration", arg);
        break;
    case OPT_SIM_TASK_FAILURES: {
        size_t len = strlen(arg);
        bool pct = len > 1 && arg[len - 1] == '%';
        char *num = kf_xstrndup(arg, pct ? len - 1 : len);
        double v;

        if (kf_parse_double(num, &v) < 0 || v < 0 || v > (pct ? 100 : 1))
            usage_error("--sim-task-failures \"%s\": a share from 0 to 1, or a percentage", arg);
        free(num);
        c->sim_task_fail_ratio = pct ? v / 100 : v;
        break;
    }
    default:
        return false;
    }
    return true;
}

/* The options every agent needs, and those its role needs; exits with the
 * usage error when one is missing. */
static void check_config(const struct kf_agent_config *c)
{
    if (!c->server)
        usage_error("--server is required");
    check_servers(c->server);
    if (!c->role)
        usage_error("--role is required (meta or worker)");
    if (!c->name || !kf_name_valid(c->name))
        usage_error("--name is required and must be a DNS name (lower case, digits, '-', '.')");
    if (!c->zones || !*c->zones)
        usage_error("--zone is required");
    if (strcmp(c->role, "meta") == 0 && (!c->unit || c->cluster))
        usage_error("a meta host needs --unit (and no --cluster)");
    if (strcmp(c->role, "worker") == 0 && (!c->cluster || c->unit))
        usage_error("a worker host needs --cluster (and no --unit)");
}

int main(int argc, char **argv)
{
    struct kf_agent_config c = {
        .data_dir = "/var/lib/kfleet-agent",
        .kubernetes_dir = "/opt/kfleet/kubernetes",
        .heartbeat_ms = 10000,
        .artifacts_interval_ms = 10 * 60 * 1000,
        .sim_ready_delay_ms = 500,
        .sim_task_duration_ms = 1000,
    };
    const char *log_level = "info", *log_file = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *token = NULL;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_SERVER:
            c.server = optarg;
            break;
        case OPT_TOKEN:
            c.token = optarg;
            break;
        case OPT_TOKEN_FILE:
            free(token);
            token = read_token_file(optarg);
            c.token = token;
            break;
        case OPT_CA_FILE:
            c.ca_file = optarg;
            break;
        case OPT_ROLE:
            if (strcmp(optarg, "meta") != 0 && strcmp(optarg, "worker") != 0)
                usage_error("--role must be meta or worker, not \"%s\"", optarg);
            c.role = optarg;
            break;
        case OPT_NAME:
            c.name = optarg;
            break;
        case OPT_ZONE:
            c.zones = optarg;
            break;
        case OPT_UNIT:
            c.unit = optarg;
            break;
        case OPT_CLUSTER:
            c.cluster = optarg;
            break;
        case OPT_ADDRESS:
            c.address = optarg;
            break;
        case OPT_DATA_DIR:
            c.data_dir = optarg;
            break;
        case OPT_K8S_DIR:
            c.kubernetes_dir = optarg;
            break;
        case OPT_ARTIFACTS:
            c.artifacts_url = optarg;
            break;
        case OPT_CGROUP_PARENT:
            c.cgroup_parent = optarg;
            break;
        case OPT_METRICS:
            c.metrics_listen = optarg;
            break;
        case OPT_LOG_LEVEL:
            log_level = optarg;
            break;
        case OPT_LOG_FILE:
            log_file = optarg;
            break;
        case OPT_HELP:
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case OPT_VERSION:
            printf("kfleet-agent %s\n", KF_VERSION);
            return 0;
        default:
            if (!parse_number_option(opt, optarg, &c))
                usage_error("unknown option");
        }
    }
    if (optind < argc)
        usage_error("unexpected argument \"%s\"", argv[optind]);
    if (!c.token && getenv("KFLEET_TOKEN") && *getenv("KFLEET_TOKEN"))
        c.token = getenv("KFLEET_TOKEN");
    check_config(&c);
    kf_log_init("kfleet-agent", log_file);
    if (kf_log_set_spec(log_level, &err) < 0)
        usage_error("--log-level: %s", err.buf);
    kf_strbuf_release(&err);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = kf_agent_run(&c);
    curl_global_cleanup();
    free(token);
    return rc;
}
