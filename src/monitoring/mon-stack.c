/* mon-stack.c: the local monitoring stack (kfleetd --monitoring=local):
 * ports kept across restarts, the process runner (kfleet/runner.h) that
 * supervises every Prometheus, Alertmanager and node_exporter, and the HTTP
 * calls the controller makes to instances (reload, read a metric).
 *
 * Ports: <root>/ports.json maps a key (an instance name, "<am>-cluster",
 * "node-<host>") to its port; a new key gets the lowest port from the base
 * that no key holds and nothing on the machine is bound to. The runner's
 * state is in <root>/.local/ (its logs in <root>/.local/logs/<name>.log);
 * processes run with an empty environment (PATH only), each in its
 * instance folder, and are probed on /-/ready (node_exporter: TCP).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kfleet/file.h"
#include "kfleet/http.h"
#include "kfleet/log.h"
#include "kfleet/monitoring.h"
#include "kfleet/runner.h"
#include "kfleet/strbuf.h"
#include "monitoring/mon-internal.h"

KF_LOG_MODULE(monitoring);

/* --- ports ---------------------------------------------------------------- */

static const char *stack_host(const struct kf_mon *m)
{
    return m->cfg.host ? m->cfg.host : "127.0.0.1";
}

static bool port_free(const char *host, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd, one = 1;
    bool ok;

    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

static void ports_save(struct kf_mon *m)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *s = json_dumps(m->ports, JSON_SORT_KEYS | JSON_INDENT(1));

    if (kf_write_file_atomic(m->ports_path, s, strlen(s), 0644, true, &err) < 0)
        kf_log_warn("cannot save the monitoring ports: %s", err.buf);
    free(s);
    kf_strbuf_release(&err);
}

int kf_mon_port(struct kf_mon *m, const char *key)
{
    json_t *v;
    int port;

    pthread_mutex_lock(&m->ports_lock);
    v = json_object_get(m->ports, key);
    if (json_is_integer(v)) {
        port = (int)json_integer_value(v);
        pthread_mutex_unlock(&m->ports_lock);
        return port;
    }
    for (port = m->cfg.port_base; port < 65536; port++) {
        const char *k;
        json_t *p;
        bool taken = false;

        json_object_foreach(m->ports, k, p) if (json_integer_value(p) == port) taken = true;
        if (!taken && port_free(stack_host(m), port))
            break;
    }
    if (port >= 65536) {
        pthread_mutex_unlock(&m->ports_lock);
        return -EADDRINUSE;
    }
    json_object_set_new(m->ports, key, json_integer(port));
    ports_save(m);
    pthread_mutex_unlock(&m->ports_lock);
    return port;
}

void kf_mon_ports_retain(struct kf_mon *m, const char *const *keep, size_t n)
{
    const char *k;
    json_t *v;
    void *tmp;
    bool changed = false;

    pthread_mutex_lock(&m->ports_lock);
    json_object_foreach_safe(m->ports, tmp, k, v)
    {
        bool wanted = false;

        for (size_t i = 0; i < n && !wanted; i++)
            wanted = strcmp(keep[i], k) == 0;
        if (!wanted) {
            json_object_del(m->ports, k);
            changed = true;
        }
    }
    if (changed)
        ports_save(m);
    pthread_mutex_unlock(&m->ports_lock);
}

/* --- the runner ----------------------------------------------------------- */

int kf_mon_stack_start(struct kf_mon *m, struct kf_strbuf *err)
{
    struct kf_runner_config rc = { 0 };
    char *state = kf_xasprintf("%s/.local", m->root);
    json_error_t jerr;
    int r;

    m->ports_path = kf_xasprintf("%s/ports.json", m->root);
    m->ports = json_load_file(m->ports_path, 0, &jerr);
    if (!json_is_object(m->ports)) {
        json_decref(m->ports);
        m->ports = json_object();
    }
    rc.state_dir = state;
    rc.cgroup_parent = "none";
    rc.backoff_initial_ms = 500;
    rc.backoff_max_ms = 10000;
    rc.stop_grace_ms = 5000;
    r = kf_runner_new("real", &rc, &m->runner, err);
    free(state);
    return r;
}

void kf_mon_stack_stop(struct kf_mon *m)
{
    if (m->runner) {
        if (kf_runner_stop_all(m->runner, 15000) < 0)
            kf_log_warn("some monitoring processes did not stop in 15 s");
        kf_runner_free(m->runner);
        m->runner = NULL;
    }
    json_decref(m->ports);
    m->ports = NULL;
    free(m->ports_path);
    m->ports_path = NULL;
}

static int listen_port(const char *listen)
{
    const char *c = listen ? strrchr(listen, ':') : NULL;
    int port = 0;

    if (c)
        kf_parse_int(c + 1, &port);
    return port;
}

/* Runner names are file names of at most KF_RUNNER_NAME_MAX. */
static char *exporter_name(const char *host)
{
    return kf_xasprintf("node-%.*s", KF_RUNNER_NAME_MAX - 5, host);
}

static void drain_events(struct kf_mon *m)
{
    struct kf_runner_event ev;

    while (kf_runner_next_event(m->runner, 0, &ev) == 1) {
        const struct kf_proc_status *st = &ev.status;

        if (st->phase == KF_PROC_BACKOFF || st->phase == KF_PROC_FAILED ||
            st->phase == KF_PROC_BINARY_NOT_INSTALLED)
            kf_log_warn("monitoring process %s: %s (%s)", st->name, kf_proc_phase_name(st->phase),
                        st->message);
        else
            kf_log_dbg("monitoring process %s: %s", st->name, kf_proc_phase_name(st->phase));
    }
}

struct wanted {
    char **names;
    size_t n;
};

static int apply_one(struct kf_mon *m, const char *name, char **argv, const char *workdir,
                     const char *listen, bool http_ready, struct wanted *w, unsigned *started,
                     struct kf_strbuf *err)
{
    static const char *const env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
    struct kf_proc_spec spec = {
        .name = name,
        .argv = (const char *const *)argv,
        .env = env,
        .workdir = workdir,
        .stop_grace_ms = 5000,
    };
    struct kf_proc_status st;
    /* a process an earlier kfleetd left running is adopted, not started */
    bool running = kf_runner_get(m->runner, name, &st) == 0 && st.pid > 0;

    spec.readiness.type = http_ready ? KF_PROBE_HTTP : KF_PROBE_TCP;
    spec.readiness.host = stack_host(m);
    spec.readiness.port = listen_port(listen);
    spec.readiness.path = "/-/ready";
    spec.readiness.period_ms = 2000;
    spec.readiness.failure_threshold = 2;
    if (!running && started)
        (*started)++;
    w->names = kf_xrealloc(w->names, (w->n + 1) * sizeof(*w->names));
    w->names[w->n++] = kf_xstrdup(name);
    return kf_runner_apply(m->runner, &spec, err);
}

int kf_mon_stack_sync(struct kf_mon *m, const struct kf_obs_fleet *f,
                      const struct kf_mon_exporter *exporters, size_t n_exporters,
                      unsigned *ret_started, struct kf_strbuf *err)
{
    struct wanted w = { 0 };
    struct kf_proc_status *all = NULL;
    unsigned started = 0;
    int r = 0, n;

    if (!m->runner)
        return -EOPNOTSUPP;
    drain_events(m);
    /* every instance of the model */
    for (size_t i = 0; r == 0 && i < f->n_units + f->n_regions + 2; i++) {
        const struct kf_obs_instance *list = NULL;
        size_t nl = 0;

        if (i < f->n_units) {
            list = f->units[i].edges;
            nl = f->units[i].n_edges;
        } else if (i < f->n_units + f->n_regions) {
            list = f->regions[i - f->n_units].cascades;
            nl = f->regions[i - f->n_units].n_cascades;
        } else if (i == f->n_units + f->n_regions) {
            list = f->centrals;
            nl = f->n_centrals;
        } else {
            for (size_t j = 0; r == 0 && j < f->n_alertmanagers; j++) {
                const struct kf_obs_alertmanager *am = &f->alertmanagers[j];
                struct kf_argv a = { 0 };
                char *dir = kf_xasprintf("%s/%s", m->root, am->name);

                kf_obs_argv_alertmanager(f, am, m->root, &a);
                r = apply_one(m, am->name, a.v, dir, am->listen, true, &w, &started, err);
                kf_argv_release(&a);
                free(dir);
            }
        }
        for (size_t j = 0; r == 0 && j < nl; j++) {
            struct kf_argv a = { 0 };
            char *dir = kf_xasprintf("%s/%s", m->root, list[j].name);

            r = kf_obs_argv_instance(f, list[j].name, m->root, &a);
            if (r == 0)
                r = apply_one(m, list[j].name, a.v, dir, list[j].listen, true, &w, &started, err);
            kf_argv_release(&a);
            free(dir);
        }
    }
    for (size_t i = 0; r == 0 && i < n_exporters; i++) {
        struct kf_argv a = { 0 };
        char *name = exporter_name(exporters[i].host);
        char *dir = kf_xasprintf("%s/.local/%s", m->root, name);

        kf_obs_argv_node_exporter(&f->bin, exporters[i].listen, &a);
        /* the host's own .prom files go here; it also puts the data
         * directory on the command line, where people look */
        kf_argv_addf(&a, "--collector.textfile.directory=%s", dir);
        r = apply_one(m, name, a.v, dir, exporters[i].listen, false, &w, &started, err);
        kf_argv_release(&a);
        free(dir);
        free(name);
    }
    /* and nothing else */
    n = r == 0 ? kf_runner_list(m->runner, &all) : 0;
    for (int i = 0; i < n; i++) {
        bool wanted = false;

        if (all[i].is_task)
            continue;
        for (size_t j = 0; j < w.n && !wanted; j++)
            wanted = strcmp(w.names[j], all[i].name) == 0;
        if (!wanted) {
            kf_log_info("monitoring process %s is no longer part of the stack: stopping it",
                        all[i].name);
            kf_runner_remove(m->runner, all[i].name);
        }
    }
    free(all);
    for (size_t j = 0; j < w.n; j++)
        free(w.names[j]);
    free(w.names);
    if (ret_started)
        *ret_started = started;
    return r;
}

bool kf_mon_stack_running(struct kf_mon *m, const char *name)
{
    struct kf_proc_status st;

    if (!m->runner || kf_runner_get(m->runner, name, &st) < 0)
        return false;
    return st.phase == KF_PROC_READY || st.phase == KF_PROC_RUNNING || st.phase == KF_PROC_STARTING;
}

/* --- talking to instances ------------------------------------------------- */

/* One request; 0 with the status and body, or a negative errno. */
static int http_call(const char *url, bool post, long *ret_status, struct kf_strbuf *body)
{
    const struct kf_http_opts o = {
        .connect_timeout_ms = 2000,
        .timeout_ms = 10000,
        .no_proxy = true,
    };
    const struct kf_http_req req = {
        .method = post ? "POST" : "GET",
        .url = url,
        .body = post ? "" : NULL,
        .resp = body,
    };
    struct kf_http *h = kf_http_new();
    struct kf_http_result res;
    int r;

    body->cap = 8u * 1024 * 1024;
    r = kf_http_request(h, &o, &req, &res);
    if (r == 0)
        *ret_status = res.status;
    else if (r != -ECONNREFUSED && r != -ETIMEDOUT)
        r = -EIO;
    kf_http_free(h);
    return r;
}

int kf_mon_scrape_value(const char *listen, const char *metric, double *ret)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    char *url = kf_xasprintf("http://%s/metrics", listen);
    size_t ml = strlen(metric);
    long status = 0;
    int r = http_call(url, false, &status, &body);

    free(url);
    if (r == 0 && status != 200)
        r = -EIO;
    if (r == 0) {
        r = -ENOENT;
        for (const char *line = body.buf; line && *line;) {
            const char *nl = strchr(line, '\n');

            if (strncmp(line, metric, ml) == 0 && line[ml] == ' ') {
                char *end;
                double v = strtod(line + ml + 1, &end);

                if (end != line + ml + 1) {
                    *ret = v;
                    r = 0;
                }
                break;
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    kf_strbuf_release(&body);
    return r;
}

int kf_mon_alerts(const char *listen, json_t **ret)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    char *url =
        kf_xasprintf("http://%s/api/v2/alerts?active=true&silenced=false&inhibited=false", listen);
    long status = 0;
    json_t *v = NULL;
    int r = http_call(url, false, &status, &body);

    free(url);
    if (r == 0 && status != 200)
        r = -EIO;
    if (r == 0) {
        v = json_loadb(body.buf ? body.buf : "", body.len, 0, NULL);
        if (!json_is_array(v)) {
            json_decref(v);
            r = -EBADMSG;
        } else {
            *ret = v;
        }
    }
    kf_strbuf_release(&body);
    return r;
}

int kf_mon_reload(const char *listen, enum kf_obs_tier tier, struct kf_strbuf *err)
{
    struct kf_strbuf body = KF_STRBUF_INIT;
    char *url = kf_xasprintf("http://%s/-/reload", listen);
    const char *metric = tier == KF_OBS_TIER_ALERTMANAGER
                             ? "alertmanager_config_last_reload_successful"
                             : "prometheus_config_last_reload_successful";
    long status = 0;
    double ok = 0;
    int r = http_call(url, true, &status, &body);

    free(url);
    if (r < 0) {
        kf_err(err, r, "%s did not answer POST /-/reload: %s", listen, strerror(-r));
    } else if (status != 200) {
        /* the answer names what is wrong; it holds no secrets (Prometheus and
         * Alertmanager print paths and line numbers, not file contents) */
        if (body.len > 1024)
            kf_strbuf_setlen(&body, 1024);
        r = kf_err(err, -EINVAL, "%s refused the new configuration (HTTP %ld): %s", listen, status,
                   body.len ? body.buf : "");
    } else if ((r = kf_mon_scrape_value(listen, metric, &ok)) < 0 || ok != 1) {
        r = kf_err(err, -EINVAL, "%s answered the reload, but %s is %s", listen, metric,
                   r < 0 ? "missing" : "0");
    }
    kf_strbuf_release(&body);
    return r;
}
