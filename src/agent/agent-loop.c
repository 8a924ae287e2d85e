/* agent-loop.c: kfleet-agent's main loop (agent.h).
 *
 * One thread does everything that changes state: it waits in poll() on a
 * signalfd, the watch thread's eventfd and the real runner's event fd, and
 * on every wake-up
 *   1. takes the watch's snapshots and events (members bound here),
 *   2. takes the runners' events (a member started, became ready, exited),
 *   3. registers hosts that are not registered yet,
 *   4. converges the members of every host that changed
 *      (kf_agent_members_sync), which reports status to kfleetd,
 *   5. runs the BroadcastTasks bound here and reports their results
 *      (kf_agent_tasks_step, agent-tasks.c; a watch of their own),
 *   6. sends heartbeats when they are due.
 * Simulated runners have no event fd: the loop ticks every 200 ms and asks
 * each of them, and turns when a simulated BroadcastTask's time is up; the
 * threads that report task results wake it when kfleetd answered.
 *
 * kfleetd going away never stops a member: requests fail, the agent marks
 * the server down and waits (0.5 s doubling to 30 s) before it sends
 * anything but heartbeats again, which keep probing at their interval. The
 * watch thread reconnects on its own and lists again, and what changed
 * meanwhile is converged then.
 *
 * SIGTERM and SIGINT end the loop. Members keep running (the next agent
 * adopts them) unless --stop-members-on-exit was given.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

KF_LOG_MODULE(agent);

#define SIM_TICK_MS        200
#define IDLE_WAKE_MS       1000
#define SERVER_BACKOFF_MIN 500
#define SERVER_BACKOFF_MAX 30000
#define REGISTER_RETRY_MAX 30000
/* Registrations per turn of the loop: 100,000 simulated hosts register in
 * slices, with heartbeats of the registered ones in between. */
#define REGISTER_PER_TURN 500

bool kf_agent_server_ok(struct kf_agent *a)
{
    return !a->server_down || kf_mono_ms() >= a->server_retry_ms;
}

void kf_agent_server_result(struct kf_agent *a, int code)
{
    if (code < 0 || code == 502 || code == 503 || code == 504) {
        int64_t delay = (int64_t)SERVER_BACKOFF_MIN << KF_MIN(a->server_failures, 6);

        /* a->http has moved on to the next replica, if there is one */
        if (!a->server_down)
            kf_log_warn("kfleetd does not answer (%s); members keep running, requests "
                        "resume when it is back (next: %s)",
                        code < 0 ? strerror(-code) : "unavailable", kf_agent_http_server(a->http));
        a->server_down = true;
        a->server_failures++;
        a->server_retry_ms = kf_mono_ms() + KF_MIN(delay, SERVER_BACKOFF_MAX);
        a->api_errors++;
    } else if (code > 0) {
        if (a->server_down)
            kf_log_info("kfleetd answers again (%s)", kf_agent_http_server(a->http));
        a->server_down = false;
        a->server_failures = 0;
    }
}

/* --- set-up ----------------------------------------------------------------------- */

static int setup_hosts(struct kf_agent *a, struct kf_strbuf *err)
{
    const struct kf_agent_config *c = &a->cfg;
    char *zones = kf_xstrdup(c->zones), *save = NULL;
    char **zv = NULL;
    size_t nz = 0, alloc = 0;
    int width = 1;

    for (char *t = strtok_r(zones, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        KF_GROW(zv, alloc, nz + 1);
        zv[nz++] = t;
    }
    if (nz == 0) {
        free(zones);
        free(zv);
        return kf_err(err, -EINVAL, "--zone is empty");
    }
    if (nz > 1 && c->simulate == 0) {
        free(zones);
        free(zv);
        return kf_err(err, -EINVAL, "one host has one zone; a list of zones is for --simulate");
    }
    a->n_hosts = c->simulate > 0 ? (size_t)c->simulate : 1;
    a->hosts = kf_xcalloc(a->n_hosts, sizeof(*a->hosts));
    kf_smap_init(&a->host_by_name);
    for (int n = c->simulate; n >= 10; n /= 10)
        width++;
    for (size_t i = 0; i < a->n_hosts; i++) {
        struct agent_host *h = &a->hosts[i];

        h->name =
            c->simulate > 0 ? kf_xasprintf("%s-%0*zu", c->name, width, i + 1) : kf_xstrdup(c->name);
        h->zone = kf_xstrdup(zv[i % nz]);
        kf_smap_init(&h->members);
        kf_smap_put(&a->host_by_name, h->name, h);
    }
    free(zones);
    free(zv);
    return 0;
}

static int setup_runners(struct kf_agent *a, struct kf_strbuf *err)
{
    const struct kf_agent_config *c = &a->cfg;

    for (size_t i = 0; i < a->n_hosts; i++) {
        struct agent_host *h = &a->hosts[i];
        struct kf_runner_config rc = {
            .backoff_initial_ms = c->backoff_initial_ms,
            .backoff_max_ms = c->backoff_max_ms,
            .stop_grace_ms = c->stop_grace_ms,
            .sim_ready_delay_ms = c->sim_ready_delay_ms,
            .sim_task_duration_ms = c->sim_task_duration_ms,
            .sim_task_fail_ratio = c->sim_task_fail_ratio,
            .cgroup_parent = c->cgroup_parent,
        };
        char *state = NULL, *logs = NULL;
        int r;

        if (c->simulate == 0) {
            h->dir = kf_xstrdup(c->data_dir);
            state = kf_xasprintf("%s/runner", c->data_dir);
            logs = kf_xasprintf("%s/logs", c->data_dir);
            rc.state_dir = state;
            rc.log_dir = logs;
        }
        r = kf_runner_new(c->simulate ? "sim" : "real", &rc, &h->runner, err);
        free(state);
        free(logs);
        if (r == -EBUSY)
            return kf_err(err, r, "another kfleet-agent runs on \"%s\"", c->data_dir);
        if (r < 0)
            return r;
        if (c->simulate == 0 && kf_runner_cgroup_problem(h->runner))
            kf_log_info("%s; members run without resource limits",
                        kf_runner_cgroup_problem(h->runner));
    }
    return 0;
}

static char *watch_path(struct kf_agent *a)
{
    if (a->cfg.simulate == 0)
        return kf_xasprintf(KF_AGENT_API "/controlplanemembers?fieldSelector=spec.host%%3D%s",
                            a->hosts[0].name);
    /* many hosts: every member, sorted out by spec.host here */
    return kf_xstrdup(KF_AGENT_API "/controlplanemembers");
}

/* --- the loop's steps ------------------------------------------------------------ */

static struct agent_host *route(struct kf_agent *a, const json_t *obj)
{
    if (a->cfg.simulate == 0)
        return &a->hosts[0];
    return kf_smap_get(&a->host_by_name, kf_json_str(obj, "spec.host", ""));
}

static void take_snapshot(struct kf_agent *a, json_t *items)
{
    size_t n = json_array_size(items);
    json_t **objs = kf_xcalloc(n ? n : 1, sizeof(*objs));
    size_t *idx = kf_xcalloc(a->n_hosts, sizeof(*idx));
    size_t *start = kf_xcalloc(a->n_hosts + 1, sizeof(*start));

    /* counting sort of the items by host, then one snapshot per host */
    for (size_t i = 0; i < n; i++) {
        struct agent_host *h = route(a, json_array_get(items, i));

        if (h)
            start[(size_t)(h - a->hosts) + 1]++;
    }
    for (size_t i = 0; i < a->n_hosts; i++)
        start[i + 1] += start[i];
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(items, i);
        struct agent_host *h = route(a, o);

        if (h) {
            size_t hi = (size_t)(h - a->hosts);

            objs[start[hi] + idx[hi]++] = o;
        }
    }
    for (size_t i = 0; i < a->n_hosts; i++)
        kf_agent_members_snapshot(a, &a->hosts[i], objs + start[i], start[i + 1] - start[i]);
    a->have_snapshot = true;
    free(objs);
    free(idx);
    free(start);
}

static void take_messages(struct kf_agent *a)
{
    struct kf_agent_msg *msgs = kf_agent_watch_take(a->watch);

    for (struct kf_agent_msg *m = msgs; m; m = m->next) {
        switch (m->type) {
        case KF_AGENT_MSG_SNAPSHOT:
            take_snapshot(a, m->obj);
            break;
        case KF_AGENT_MSG_EVENT: {
            struct agent_host *h = route(a, m->obj);

            if (h)
                kf_agent_member_seen(a, h, m->obj, strcmp(m->event, "DELETED") == 0);
            break;
        }
        case KF_AGENT_MSG_DOWN:
            kf_log_warn("lost the watch on kfleetd (%s); members keep running, reconnecting",
                        m->text);
            break;
        }
    }
    kf_agent_msg_free(msgs);
}

static void take_runner_events(struct kf_agent *a)
{
    for (size_t i = 0; i < a->n_hosts; i++) {
        struct agent_host *h = &a->hosts[i];
        struct kf_runner_event ev;

        if (a->cfg.simulate && kf_smap_count(&h->members) == 0)
            continue;
        while (kf_runner_next_event(h->runner, 0, &ev) == 1)
            kf_agent_member_event(a, h, &ev);
    }
}

static void register_hosts(struct kf_agent *a)
{
    int64_t now = kf_mono_ms();
    size_t done = 0;

    for (size_t i = 0; i < a->n_hosts && done < REGISTER_PER_TURN; i++) {
        struct agent_host *h = &a->hosts[i];
        struct kf_strbuf err = KF_STRBUF_INIT;
        int r;

        if (h->registered || now < h->register_at_ms)
            continue;
        if (!kf_agent_server_ok(a))
            break;
        r = kf_agent_register(a, h, &err);
        done++;
        if (r == 0) {
            h->registered = true;
            h->register_failures = 0;
            if (a->cfg.simulate == 0 || a->n_hosts <= 10)
                kf_log_info("host \"%s\" registered (zone %s, %s \"%s\")", h->name, h->zone,
                            a->cfg.unit ? "unit" : "cluster",
                            a->cfg.unit ? a->cfg.unit : a->cfg.cluster);
            if (a->cfg.simulate == 0)
                a->next_heartbeat_ms = 0; /* say hello at once */
        } else {
            int64_t delay = (int64_t)1000 << KF_MIN(h->register_failures, 5);

            h->register_failures++;
            h->register_at_ms = now + KF_MIN(delay, REGISTER_RETRY_MAX);
            if (r == -EEXIST)
                kf_log_rl_err("%s", err.buf);
            else
                kf_log_rl_warn("cannot register host \"%s\": %s; trying again in %lld ms", h->name,
                               err.len ? err.buf : strerror(-r),
                               (long long)KF_MIN(delay, REGISTER_RETRY_MAX));
        }
        kf_strbuf_release(&err);
    }
}

static void sync_hosts(struct kf_agent *a)
{
    int64_t now = kf_mono_ms();
    bool server_ok = kf_agent_server_ok(a);

    for (size_t i = 0; i < a->n_hosts; i++) {
        struct agent_host *h = &a->hosts[i];

        if (h->dirty || (h->next_sync_ms && now >= h->next_sync_ms) ||
            (h->wait_server && server_ok))
            kf_agent_members_sync(a, h);
    }
}

static int next_timeout(struct kf_agent *a)
{
    int64_t now = kf_mono_ms();
    int64_t next = now + (a->cfg.simulate ? SIM_TICK_MS : IDLE_WAKE_MS);
    bool waits = false;

    next = KF_MIN(next, a->next_heartbeat_ms);
    /* a simulated task's result is reported as soon as its time is up */
    if (kf_agent_tasks_next_ms(a))
        next = KF_MIN(next, kf_agent_tasks_next_ms(a));
    for (size_t i = 0; i < a->n_hosts; i++) {
        const struct agent_host *h = &a->hosts[i];

        if (h->dirty)
            return 0;
        if (!h->registered)
            next = KF_MIN(next, h->register_at_ms);
        if (h->next_sync_ms)
            next = KF_MIN(next, h->next_sync_ms);
        waits = waits || h->wait_server || !h->registered;
    }
    if (waits && a->server_down)
        next = KF_MIN(next, a->server_retry_ms);
    return next <= now ? 0 : (int)(next - now);
}

/* --- run ------------------------------------------------------------------------- */

static void release(struct kf_agent *a)
{
    kf_agent_artifacts_stop(a->artifacts); /* before the wake fd it writes to closes */
    a->artifacts = NULL;
    kf_agent_watch_stop(a->watch);
    a->watch = NULL;
    kf_agent_tasks_stop(a);
    kf_agent_backup_stop(a);
    kf_agent_metrics_stop(a);
    for (size_t i = 0; i < a->n_hosts; i++) {
        struct agent_host *h = &a->hosts[i];
        size_t it = 0;
        const char *key;
        void *v;

        kf_runner_free(h->runner);
        while (kf_smap_next(&h->members, &it, &key, &v))
            kf_agent_member_free(v);
        kf_smap_release(&h->members);
        free(h->name);
        free(h->zone);
        free(h->dir);
    }
    kf_smap_release(&a->host_by_name);
    free(a->hosts);
    kf_agent_http_free(a->http);
    if (a->wake_fd >= 0)
        close(a->wake_fd);
    if (a->signal_fd >= 0)
        close(a->signal_fd);
    free(a->versions_reported);
    free(a->node_os);
    free(a->node_kernel);
    free(a->node_arch);
    free(a->node_hostname);
    pthread_mutex_destroy(&a->lock);
}

/* Everything the loop needs before it runs: the machine, the hosts, metrics,
 * runners, the HTTP client, the members' cache, the watch (meta hosts) and
 * BroadcastTasks (both roles, agent-tasks.c). */
static int agent_start(struct kf_agent *a, struct kf_strbuf *err)
{
    const struct kf_agent_config *cfg = &a->cfg;

    if (kf_agent_detect_machine(a, err) < 0 || setup_hosts(a, err) < 0 ||
        kf_agent_metrics_start(a, err) < 0 || setup_runners(a, err) < 0)
        return -1;
    a->http = kf_agent_http_new(cfg->server, cfg->token, cfg->ca_file);
    for (size_t i = 0; i < a->n_hosts; i++)
        kf_agent_members_load_cache(a, &a->hosts[i]);
    if (strcmp(cfg->role, "meta") == 0) {
        char *path = watch_path(a);
        int r = kf_agent_watch_start(cfg->server, cfg->token, cfg->ca_file, path, a->wake_fd,
                                     &a->watch, err);

        free(path);
        if (r < 0)
            return r;
        if (kf_agent_backup_start(a, err) < 0)
            return -1;
    }
    if (kf_agent_tasks_start(a, err) < 0)
        return -1;
    return 0;
}

/* Waits for a signal, a wake-up, a runner's event or the next timer; *stop
 * when a signal asks to shut down. Negative errno when poll fails. */
static int agent_wait(struct kf_agent *a, bool *stop)
{
    struct pollfd fds[3];
    nfds_t nfds = 0;
    int timeout = next_timeout(a);

    fds[nfds++] = (struct pollfd){ .fd = a->signal_fd, .events = POLLIN };
    fds[nfds++] = (struct pollfd){ .fd = a->wake_fd, .events = POLLIN };
    if (a->cfg.simulate == 0) {
        int efd = kf_runner_event_fd(a->hosts[0].runner);

        if (efd >= 0)
            fds[nfds++] = (struct pollfd){ .fd = efd, .events = POLLIN };
    }
    if (poll(fds, nfds, timeout) < 0 && errno != EINTR) {
        int e = errno;

        kf_log_err("poll: %s", strerror(e));
        return -e;
    }
    if (fds[0].revents & POLLIN) {
        struct signalfd_siginfo si;

        while (read(a->signal_fd, &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGHUP)
                continue;
            kf_log_info("%s: shutting down%s", strsignal((int)si.ssi_signo),
                        a->cfg.stop_members_on_exit ? " and stopping the members"
                                                    : "; members keep running");
            *stop = true;
        }
    }
    if (fds[1].revents & POLLIN) {
        uint64_t v;

        if (read(a->wake_fd, &v, sizeof(v)) < 0) {
            /* nothing to drain */
        }
    }
    return 0;
}

int kf_agent_run(const struct kf_agent_config *cfg)
{
    struct kf_agent a = { .cfg = *cfg, .wake_fd = -1, .signal_fd = -1 };
    struct kf_agent_fetch_memo *memo = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;
    sigset_t sigs;
    int exit_code = 0;
    bool stop = false;

    /* a release the host lacks is fetched before anything runs (SIGTERM
     * still ends the agent meanwhile: the signals are not blocked yet) */
    if (!cfg->simulate && cfg->role && !strcmp(cfg->role, "meta")) {
        memo = kf_agent_fetch_memo_new();
        kf_agent_artifacts_sync(cfg, memo);
    }
    pthread_mutex_init(&a.lock, NULL);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    /* before any thread starts, so that every thread inherits the mask */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    a.signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    a.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a.signal_fd < 0 || a.wake_fd < 0) {
        kf_log_err("cannot create the loop's file descriptors: %s", strerror(errno));
        kf_agent_fetch_memo_free(memo);
        release(&a);
        return 1;
    }
    if (agent_start(&a, &err) < 0) {
        kf_log_err("%s", err.buf);
        kf_strbuf_release(&err);
        kf_agent_fetch_memo_free(memo);
        release(&a);
        return 1;
    }
    if (memo)
        a.artifacts = kf_agent_artifacts_start(cfg, a.wake_fd, memo);
    memo = NULL; /* the thread's now, or freed */
    kf_log_info("kfleet-agent %s: %zu %s host%s, server %s%s%s", KF_VERSION, a.n_hosts,
                cfg->simulate ? "simulated" : cfg->role, a.n_hosts == 1 ? "" : "s", cfg->server,
                a.metrics_addr ? ", metrics on " : "", a.metrics_addr ? a.metrics_addr : "");

    while (!stop) {
        if (agent_wait(&a, &stop) < 0) {
            exit_code = 1;
            break;
        }
        pthread_mutex_lock(&a.lock);
        if (a.watch)
            take_messages(&a);
        take_runner_events(&a);
        register_hosts(&a);
        sync_hosts(&a);
        kf_agent_tasks_step(&a);
        if (kf_agent_artifacts_checked(a.artifacts))
            kf_agent_report_versions(&a);
        if (kf_mono_ms() >= a.next_heartbeat_ms) {
            kf_agent_heartbeat(&a);
            a.next_heartbeat_ms = kf_mono_ms() + cfg->heartbeat_ms;
        }
        pthread_mutex_unlock(&a.lock);
    }

    kf_agent_artifacts_stop(a.artifacts);
    a.artifacts = NULL;
    kf_agent_watch_stop(a.watch);
    a.watch = NULL;
    kf_agent_tasks_stop(&a);
    if (cfg->stop_members_on_exit) {
        pthread_mutex_lock(&a.lock);
        for (size_t i = 0; i < a.n_hosts; i++)
            kf_agent_members_stop_all(&a, &a.hosts[i]);
        pthread_mutex_unlock(&a.lock);
    }
    release(&a);
    kf_strbuf_release(&err);
    return exit_code;
}
