/* agent-metrics.c: the agent's /metrics (agent.h).
 *
 * Edge Prometheus scrapes each meta agent for what its members use and how
 * they do: CPU seconds and resident memory (from the member's cgroup, else
 * /proc), restarts (kfleet_member_restarts_total, which the
 * KfleetMemberCrashLooping alert reads), readiness (the probe's verdict) and
 * whether a process runs at all; plus the agent's own heartbeats, status
 * writes and connection to kfleetd. Every family is computed at scrape time
 * from the agent's state under its lock, so the main loop never touches a
 * metrics lock. Served by libmicrohttpd from one thread of its own; the
 * address goes into the Host's monitoring.kfleet.io/agent annotation.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "kfleet/api.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

enum member_col {
    COL_READY,
    COL_UP,
    COL_RESTARTS,
    COL_CPU,
    COL_MEMORY,
};

struct member_fam {
    struct kf_agent *a;
    enum member_col col;
};

static void collect_members(struct kf_metric *f, void *arg)
{
    struct member_fam *mf = arg;
    struct kf_agent *a = mf->a;

    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->n_hosts; i++) {
        struct agent_host *h = &a->hosts[i];
        size_t it = 0;
        const char *key;
        void *v;

        while (kf_smap_next(&h->members, &it, &key, &v)) {
            struct agent_member *m = v;
            const char *labels[] = { m->cluster ? m->cluster : "", m->component ? m->component : "",
                                     m->name };
            struct kf_proc_usage u;
            double val = 0;

            if (!m->have_status || !m->applied)
                continue;
            switch (mf->col) {
            case COL_READY:
                val = m->st.ready ? 1 : 0;
                break;
            case COL_UP:
                val = m->st.pid > 0 ? 1 : 0;
                break;
            case COL_RESTARTS:
                val = m->st.restarts;
                break;
            case COL_CPU:
            case COL_MEMORY:
                if (m->st.pid <= 0 || kf_runner_usage(h->runner, m->rname, &u) < 0)
                    continue;
                val = mf->col == COL_CPU ? u.cpu_seconds : (double)u.rss_bytes;
                break;
            }
            kf_metric_set(f, labels, val);
        }
    }
    pthread_mutex_unlock(&a->lock);
}

static void collect_phases(struct kf_metric *f, void *arg)
{
    struct kf_agent *a = arg;
    uint64_t counts[KF_PROC_BINARY_NOT_INSTALLED + 1] = { 0 };

    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->n_hosts; i++) {
        size_t it = 0;
        const char *key;
        void *v;

        while (kf_smap_next(&a->hosts[i].members, &it, &key, &v)) {
            struct agent_member *m = v;

            if (m->have_status && m->applied && m->st.phase <= KF_PROC_BINARY_NOT_INSTALLED)
                counts[m->st.phase]++;
        }
    }
    pthread_mutex_unlock(&a->lock);
    for (int p = 0; p <= KF_PROC_BINARY_NOT_INSTALLED; p++)
        kf_metric_set(f, KF_LABELS(kf_proc_phase_name((enum kf_proc_phase)p)), (double)counts[p]);
}

static void collect_agent(struct kf_metric *f, void *arg)
{
    struct kf_agent *a = arg;
    size_t registered = 0;

    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->n_hosts; i++)
        registered += a->hosts[i].registered;
    kf_metric_set(f, KF_LABELS("hosts"), (double)a->n_hosts);
    kf_metric_set(f, KF_LABELS("hosts_registered"), (double)registered);
    kf_metric_set(f, KF_LABELS("connected"),
                  a->watch ? kf_agent_watch_connected(a->watch) : !a->server_down);
    pthread_mutex_unlock(&a->lock);
}

static void collect_heartbeats(struct kf_metric *f, void *arg)
{
    struct kf_agent *a = arg;

    pthread_mutex_lock(&a->lock);
    kf_metric_set(f, KF_LABELS("ok"), (double)a->heartbeats_ok);
    kf_metric_set(f, KF_LABELS("failed"), (double)a->heartbeats_failed);
    pthread_mutex_unlock(&a->lock);
}

static void collect_writes(struct kf_metric *f, void *arg)
{
    struct kf_agent *a = arg;

    pthread_mutex_lock(&a->lock);
    kf_metric_set(f, KF_LABELS("ok"), (double)a->status_writes);
    kf_metric_set(f, KF_LABELS("failed"), (double)a->status_write_failures);
    pthread_mutex_unlock(&a->lock);
}

static void add_families(struct kf_agent *a)
{
    static const struct {
        enum kf_metric_type type;
        const char *name, *help;
    } mfams[] = {
        [COL_READY] = { KF_METRIC_GAUGE, "kfleet_member_ready",
                        "Whether the member's readiness probe passes (1) or not (0)." },
        [COL_UP] = { KF_METRIC_GAUGE, "kfleet_member_up",
                     "Whether the member has a running process." },
        [COL_RESTARTS] = { KF_METRIC_COUNTER, "kfleet_member_restarts_total",
                           "Automatic restarts of the member since its spec last changed." },
        [COL_CPU] = { KF_METRIC_COUNTER, "kfleet_member_cpu_seconds_total",
                      "CPU time the member used (cgroup, else its main process)." },
        [COL_MEMORY] = { KF_METRIC_GAUGE, "kfleet_member_memory_bytes",
                         "Memory the member uses (cgroup memory.current, else RSS)." },
    };
    struct kf_metrics *m = a->metrics;
    struct member_fam *fams = kf_xcalloc(KF_ARRAY_SIZE(mfams), sizeof(*fams));

    a->metric_fams = fams;
    for (size_t i = 0; i < KF_ARRAY_SIZE(mfams); i++) {
        fams[i] = (struct member_fam){ a, (enum member_col)i };
        kf_metrics_collected(m, mfams[i].type, mfams[i].name, mfams[i].help,
                             "cluster,component,member", collect_members, &fams[i]);
    }
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_agent_members",
                         "Members this agent runs, by phase.", "phase", collect_phases, a);
    kf_metrics_collected(m, KF_METRIC_GAUGE, "kfleet_agent_state",
                         "hosts: hosts this agent stands for; hosts_registered: those registered; "
                         "connected: 1 while the watch on kfleetd is up.",
                         "what", collect_agent, a);
    kf_metrics_collected(m, KF_METRIC_COUNTER, "kfleet_agent_heartbeats_total",
                         "Host heartbeats sent to kfleetd, by result.", "result",
                         collect_heartbeats, a);
    kf_metrics_collected(m, KF_METRIC_COUNTER, "kfleet_agent_status_writes_total",
                         "Member status reports sent to kfleetd, by result.", "result",
                         collect_writes, a);
    kf_metrics_add_process(m);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct kf_agent *a = cls;
    struct kf_strbuf out = KF_STRBUF_INIT;
    struct MHD_Response *resp;
    unsigned int code = 200;
    const char *ctype = "text/plain; charset=utf-8";
    enum MHD_Result ret;

    (void)version, (void)upload, (void)upload_size, (void)con_cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        code = 405;
        kf_strbuf_addstr(&out, "method not allowed\n");
    } else if (strcmp(url, "/metrics") == 0) {
        kf_metrics_write(a->metrics, &out);
        ctype = KF_METRICS_CONTENT_TYPE;
    } else if (strcmp(url, "/healthz") == 0) {
        kf_strbuf_addstr(&out, "ok\n");
    } else {
        code = 404;
        kf_strbuf_addstr(&out, "not found: try /metrics\n");
    }
    resp = MHD_create_response_from_buffer(out.len, out.buf, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", ctype);
    ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    kf_strbuf_release(&out);
    return ret;
}

int kf_agent_metrics_start(struct kf_agent *a, struct kf_strbuf *err)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    const union MHD_DaemonInfo *info;
    struct MHD_Daemon *d;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    char *host = NULL;
    uint16_t port = 0;
    int r, gai;

    a->metrics = kf_metrics_new();
    add_families(a);
    if (!a->cfg.metrics_listen)
        return 0;
    r = kf_parse_listen(a->cfg.metrics_listen, &host, &port, err);
    if (r < 0)
        return r;
    gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0 || !res) {
        r = kf_err(err, -EINVAL, "cannot resolve \"%s\": %s", host, gai_strerror(gai));
        free(host);
        return r;
    }
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (ss.ss_family == AF_INET) {
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
        flags |= MHD_USE_IPv6;
    }
    d = MHD_start_daemon(flags, port, NULL, NULL, on_request, a, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 64u,
                         MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d) {
        r = kf_err(err, -EADDRINUSE, "cannot serve /metrics on \"%s\"", a->cfg.metrics_listen);
        free(host);
        return r;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info)
        port = info->port;
    if (!*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::")) {
        /* a wildcard: others reach it at the host's address */
        free(host);
        host = kf_xstrdup(a->cfg.address ? a->cfg.address : "127.0.0.1");
    }
    a->metrics_addr =
        strchr(host, ':') ? kf_xasprintf("[%s]:%u", host, port) : kf_xasprintf("%s:%u", host, port);
    a->metrics_server = d;
    free(host);
    return 0;
}

void kf_agent_metrics_stop(struct kf_agent *a)
{
    if (a->metrics_server)
        MHD_stop_daemon(a->metrics_server);
    a->metrics_server = NULL;
    kf_metrics_free(a->metrics);
    a->metrics = NULL;
    free(a->metric_fams);
    a->metric_fams = NULL;
    free(a->metrics_addr);
    a->metrics_addr = NULL;
}
