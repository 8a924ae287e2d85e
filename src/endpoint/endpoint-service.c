/* endpoint-service.c: kfleetd's endpoint service (kfleetd --endpoints):
 * the root folder, `haproxy -c` on a candidate file, and in local mode one
 * HAProxy per unit under the process runner (kfleet/runner.h), as
 * src/monitoring/mon-stack.c runs the monitoring stack.
 *
 * Layout under <data-dir>/endpoints/ (the root):
 *
 *   <unit>/haproxy.cfg      the unit's live file (what HAProxy reads)
 *   <unit>/ca/<cluster>.crt the clusters' CAs its health checks verify with
 *   .local/                 the runner's state and logs (local mode):
 *                           .local/logs/haproxy-<unit>.log is HAProxy's stderr
 *
 * A local HAProxy runs as `haproxy -W -db -f <unit>/haproxy.cfg` (master-
 * worker, in the foreground) in its unit's folder with an empty environment,
 * in its own process group; it is ready once one of its frontends accepts a
 * TCP connection. A reload is SIGUSR2 to the master alone
 * (kf_runner_signal), after the pid's start time was checked. Processes
 * outlive a kfleetd that crashes (the runner's keepers hold them) and the
 * next kfleetd on the same data directory adopts them; a clean stop stops
 * them all.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kfleet/endpoint.h"
#include "kfleet/exec.h"
#include "kfleet/runner.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"

#define DEFAULT_HAPROXY  "/usr/sbin/haproxy"
#define CHECK_TIMEOUT_MS 30000
#define CHECK_OUTPUT_MAX (64 * 1024)
#define MESSAGE_MAX      900 /* an Event's message holds 1024 */
#define PROC_PREFIX      "haproxy-"
#define KF_EP_UNITS_MAX  100000 /* units whose stats are kept */

struct kf_endpoints {
    enum kf_ep_mode mode;
    char *root;
    char *haproxy;
    pthread_mutex_t lock;       /* guards runner's creation */
    struct kf_runner *runner;   /* local mode, made on first use (ensure_runner) */
    pthread_mutex_t stats_lock; /* guards stats (the map, not its entries) */
    struct kf_smap stats;       /* unit -> struct unit_stats * */
};

/* What one unit's HAProxy said last in `show stat`. */
struct unit_stats {
    pthread_mutex_t lock;    /* guards the rest: a unit whose HAProxy is slow to
                           * answer holds up the callers about that unit only */
    int64_t read_ms;         /* kf_mono_ms() of the last read; 0: never */
    int error;               /* of the last read, 0 when it worked */
    struct kf_smap clusters; /* cluster -> struct serving * */
};

struct serving {
    int up, total;
};

int kf_ep_mode_parse(const char *s, enum kf_ep_mode *ret)
{
    if (kf_streq(s, "off"))
        *ret = KF_EP_OFF;
    else if (kf_streq(s, "external"))
        *ret = KF_EP_EXTERNAL;
    else if (kf_streq(s, "local"))
        *ret = KF_EP_LOCAL;
    else
        return -EINVAL;
    return 0;
}

const char *kf_ep_mode_name(enum kf_ep_mode m)
{
    return m == KF_EP_LOCAL ? "local" : m == KF_EP_EXTERNAL ? "external" : "off";
}

static int ensure_dir(const char *path, mode_t mode, struct kf_strbuf *err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return kf_err(err, -errno, "cannot create \"%s\": %s", path, strerror(errno));
    return 0;
}

int kf_endpoints_new(const struct kf_ep_config *c, const char *data_dir, struct kf_endpoints **ret,
                     struct kf_strbuf *err)
{
    struct kf_endpoints *e = kf_xcalloc(1, sizeof(*e));
    char abs[PATH_MAX];
    int r;

    pthread_mutex_init(&e->lock, NULL);
    pthread_mutex_init(&e->stats_lock, NULL);
    kf_smap_init(&e->stats);
    e->mode = c->mode;
    e->haproxy = kf_xstrdup(c->haproxy ? c->haproxy : DEFAULT_HAPROXY);
    if (!realpath(data_dir, abs)) {
        r = kf_err(err, -errno, "data directory \"%s\": %s", data_dir, strerror(errno));
        goto free_service;
    }
    e->root = kf_xasprintf("%s/endpoints", abs);
    r = ensure_dir(e->root, 0755, err);
    if (r < 0)
        goto free_service;
    *ret = e;
    return 0;
free_service:
    kf_endpoints_free(e);
    return r;
}

static void unit_stats_clear(struct unit_stats *u)
{
    size_t it = 0;
    void *v;

    while (kf_smap_next(&u->clusters, &it, NULL, &v))
        free(v);
    kf_smap_release(&u->clusters);
    kf_smap_init(&u->clusters);
}

static void stats_free_all(struct kf_endpoints *e)
{
    size_t it = 0;
    void *v;

    while (kf_smap_next(&e->stats, &it, NULL, &v)) {
        unit_stats_clear(v);
        kf_smap_release(&((struct unit_stats *)v)->clusters);
        pthread_mutex_destroy(&((struct unit_stats *)v)->lock);
        free(v);
    }
    kf_smap_release(&e->stats);
}

void kf_endpoints_free(struct kf_endpoints *e)
{
    if (!e)
        return;
    if (e->runner) {
        /* best effort: a process that outlives this is adopted and stopped
         * by the next kfleetd on the data directory */
        kf_runner_stop_all(e->runner, 15000);
        kf_runner_free(e->runner);
    }
    stats_free_all(e);
    pthread_mutex_destroy(&e->stats_lock);
    pthread_mutex_destroy(&e->lock);
    free(e->root);
    free(e->haproxy);
    free(e);
}

/* The runner, made when the endpoints controller first needs it (on the
 * leader: a replica that never leads never holds the state directory's
 * lock). It adopts what an earlier kfleetd left running. NULL when not
 * local or when it cannot be made (why in err). */
static struct kf_runner *ensure_runner(struct kf_endpoints *e, struct kf_strbuf *err)
{
    struct kf_runner *r;

    if (e->mode != KF_EP_LOCAL) {
        kf_err(err, -EOPNOTSUPP, "kfleetd runs no HAProxy with --endpoints %s",
               kf_ep_mode_name(e->mode));
        return NULL;
    }
    pthread_mutex_lock(&e->lock);
    if (!e->runner) {
        struct kf_runner_config rc = { 0 };
        char *state = kf_xasprintf("%s/.local", e->root);

        rc.state_dir = state;
        rc.cgroup_parent = "none";
        rc.backoff_initial_ms = 500;
        rc.backoff_max_ms = 10000;
        rc.stop_grace_ms = 5000;
        if (kf_runner_new("real", &rc, &e->runner, err) < 0)
            e->runner = NULL;
        free(state);
    }
    r = e->runner;
    pthread_mutex_unlock(&e->lock);
    return r;
}

enum kf_ep_mode kf_endpoints_mode(const struct kf_endpoints *e)
{
    return e->mode;
}

const char *kf_endpoints_root(const struct kf_endpoints *e)
{
    return e->root;
}

const char *kf_endpoints_haproxy(const struct kf_endpoints *e)
{
    return e->haproxy;
}

/* --- haproxy -c -------------------------------------------------------------- */

int kf_endpoints_check(struct kf_endpoints *e, const char *path, struct kf_strbuf *err)
{
    char *const argv[] = { e->haproxy, "-c", "-f", (char *)path, NULL };
    struct kf_strbuf out = KF_STRBUF_INIT;
    static char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
    const struct kf_exec_opts o = { .envp = envp,
                                    .timeout_ms = CHECK_TIMEOUT_MS,
                                    .with_stderr = true,
                                    .output_max = CHECK_OUTPUT_MAX };
    int r = kf_exec_capture(argv, &o, &out);

    if (r == -ENOENT) {
        r = kf_err(err, -ENOENT, "\"%s\" is not installed (Debian package haproxy)", e->haproxy);
    } else if (r < 0) {
        r = kf_err(err, r, "cannot run \"%s -c\": %s", e->haproxy, strerror(-r));
    } else if (r != 0) {
        struct kf_strbuf msg = KF_STRBUF_INIT;

        kf_ep_haproxy_message(out.buf ? out.buf : "", out.len, MESSAGE_MAX, &msg);
        r = kf_err(err, -EINVAL, "haproxy -c refused it (exit %d): %s", r,
                   msg.len ? msg.buf : "(no output)");
        kf_strbuf_release(&msg);
    }
    kf_strbuf_release(&out);
    return r;
}

/* --- local HAProxies ------------------------------------------------------- */

void kf_endpoints_proc_name(const char *unit, char buf[KF_EP_NAME_BUF])
{
    size_t n = strlen(unit), room = KF_EP_NAME_BUF - 1 - (sizeof(PROC_PREFIX) - 1);

    if (n <= room) {
        snprintf(buf, KF_EP_NAME_BUF, PROC_PREFIX "%s", unit);
    } else {
        /* a long name keeps its start and gets a hash of the whole: two
         * units that share the start stay apart */
        uint64_t h = kf_fnv1a(KF_FNV1A_BASIS_V0, unit, n);

        snprintf(buf, KF_EP_NAME_BUF, PROC_PREFIX "%.*s-%016llx", (int)(room - 17), unit,
                 (unsigned long long)h);
    }
}

int kf_endpoints_run(struct kf_endpoints *e, const char *unit, const char *cfg,
                     const char *probe_addr, int probe_port, bool *ret_started,
                     struct kf_strbuf *err)
{
    static const char *const env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
    char name[KF_EP_NAME_BUF], *workdir, *slash;
    const char *argv[] = { e->haproxy, "-W", "-db", "-f", cfg, NULL };
    struct kf_proc_spec spec = { 0 };
    struct kf_proc_status st;
    bool running;
    int r;

    if (!ensure_runner(e, err))
        return e->mode == KF_EP_LOCAL ? -EIO : -EOPNOTSUPP;
    kf_endpoints_proc_name(unit, name);
    workdir = kf_xstrdup(cfg);
    slash = strrchr(workdir, '/');
    if (slash && slash != workdir)
        *slash = '\0';
    /* a process an earlier kfleetd left running is adopted, not started;
     * one applied a moment ago is on its way */
    running = kf_runner_get(e->runner, name, &st) == 0 && (st.pid > 0 || st.claimed);
    spec.name = name;
    spec.argv = argv;
    spec.env = env;
    spec.workdir = workdir;
    spec.stop_grace_ms = 5000;
    spec.readiness.type = KF_PROBE_TCP;
    spec.readiness.host = probe_addr;
    spec.readiness.port = probe_port;
    spec.readiness.period_ms = 1000;
    spec.readiness.failure_threshold = 2;
    r = kf_runner_apply(e->runner, &spec, err);
    if (r == 0 && ret_started)
        *ret_started = !running;
    free(workdir);
    return r;
}

int kf_endpoints_reload(struct kf_endpoints *e, const char *unit, struct kf_strbuf *err)
{
    char name[KF_EP_NAME_BUF];
    struct kf_proc_status st;
    int r;

    if (!ensure_runner(e, err))
        return e->mode == KF_EP_LOCAL ? -EIO : -EOPNOTSUPP;
    kf_endpoints_proc_name(unit, name);
    if (kf_runner_get(e->runner, name, &st) < 0)
        return kf_err(err, -ENOENT, "no HAProxy runs for unit %s", unit);
    /* Before its first frontend answers, the master may not have installed
     * its SIGUSR2 handler yet, and the default action would end it. */
    if (st.pid <= 0)
        return kf_err(err, -ESRCH, "the HAProxy of unit %s is not running (%s)", unit,
                      kf_proc_phase_name(st.phase));
    if (st.phase != KF_PROC_READY)
        return kf_err(err, -EAGAIN, "the HAProxy of unit %s is %s, not ready yet", unit,
                      kf_proc_phase_name(st.phase));
    r = kf_runner_signal(e->runner, name, SIGUSR2);
    if (r == -ESRCH)
        return kf_err(err, -ESRCH, "the HAProxy of unit %s is not running", unit);
    if (r < 0)
        return kf_err(err, r, "cannot signal the HAProxy of unit %s: %s", unit, strerror(-r));
    return 0;
}

int kf_endpoints_stop(struct kf_endpoints *e, const char *unit)
{
    char name[KF_EP_NAME_BUF];

    if (!ensure_runner(e, NULL))
        return -ENOENT;
    kf_endpoints_proc_name(unit, name);
    return kf_runner_remove(e->runner, name);
}

int kf_endpoints_stop_proc(struct kf_endpoints *e, const char *proc_name)
{
    return ensure_runner(e, NULL) ? kf_runner_remove(e->runner, proc_name) : -ENOENT;
}

int kf_endpoints_pid(struct kf_endpoints *e, const char *unit)
{
    char name[KF_EP_NAME_BUF];
    struct kf_proc_status st;

    if (!ensure_runner(e, NULL))
        return 0;
    kf_endpoints_proc_name(unit, name);
    return kf_runner_get(e->runner, name, &st) == 0 ? st.pid : 0;
}

size_t kf_endpoints_procs(struct kf_endpoints *e, char ***ret_names)
{
    struct kf_proc_status *all = NULL;
    struct kf_runner_event ev;
    char **names = NULL;
    size_t n = 0;
    int count;

    *ret_names = NULL;
    if (!ensure_runner(e, NULL))
        return 0;
    /* nobody reads the runner's events one by one here: drop them, so the
     * queue does not fill up */
    while (kf_runner_next_event(e->runner, 0, &ev) == 1)
        ;
    count = kf_runner_list(e->runner, &all);
    for (int i = 0; i < count; i++) {
        if (all[i].is_task || strncmp(all[i].name, PROC_PREFIX, sizeof(PROC_PREFIX) - 1) != 0)
            continue;
        names = kf_xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = kf_xstrdup(all[i].name);
    }
    free(all);
    *ret_names = names;
    return n;
}

/* --- which apiservers HAProxy finds serving ----------------------------------- */

#define STATS_TIMEOUT_MS 1000
#define STATS_OUTPUT_MAX (64u << 20)           /* 10,000 clusters x 3 servers: ~15 MiB */
#define STATS_COMMAND    "show stat -1 4 -1\n" /* every proxy, servers only */

bool kf_endpoints_stats_socket(const struct kf_endpoints *e, const char *unit,
                               char buf[KF_EP_SOCKET_MAX])
{
    int n = snprintf(buf, KF_EP_SOCKET_MAX, "%s/%s/haproxy.sock", e->root, unit);

    return n > 0 && n < KF_EP_SOCKET_MAX;
}

/* Sends STATS_COMMAND to the socket at path and reads the answer to its end
 * (HAProxy closes a non-interactive session after it). */
static int stats_read(const char *path, struct kf_strbuf *out)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = STATS_TIMEOUT_MS / 1000,
                          .tv_usec = (STATS_TIMEOUT_MS % 1000) * 1000 };
    char buf[65536];
    int fd, r = 0;
    ssize_t n;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        write(fd, STATS_COMMAND, sizeof(STATS_COMMAND) - 1) != sizeof(STATS_COMMAND) - 1) {
        r = -errno;
        goto close_fd;
    }
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || out->len + (size_t)n > STATS_OUTPUT_MAX) {
            r = n < 0 ? -errno : -E2BIG;
            break;
        }
        kf_strbuf_add(out, buf, (size_t)n);
    }
close_fd:
    close(fd);
    return r;
}

static void count_server(void *ctx, const char *backend, const char *server, bool serving)
{
    struct unit_stats *u = ctx;
    struct serving *s = kf_smap_get(&u->clusters, backend);

    (void)server;
    if (!s) {
        s = kf_xcalloc(1, sizeof(*s));
        kf_smap_put(&u->clusters, backend, s);
    }
    s->total++;
    s->up += serving;
}

/* Reads unit's stats again when they are older than KF_EP_STATS_MAX_AGE_MS
 * (u->lock held). */
static void stats_refresh(struct kf_endpoints *e, const char *unit, struct unit_stats *u)
{
    struct kf_strbuf out = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    char path[KF_EP_SOCKET_MAX];
    int64_t now = kf_mono_ms();

    if (u->read_ms && now - u->read_ms < KF_EP_STATS_MAX_AGE_MS)
        return;
    u->read_ms = now;
    unit_stats_clear(u);
    u->error = kf_endpoints_stats_socket(e, unit, path) ? stats_read(path, &out) : -ENAMETOOLONG;
    if (u->error == 0 &&
        kf_ep_parse_stat(out.buf ? out.buf : "", out.len, count_server, u, &err) < 0) {
        u->error = -EPROTO;
        unit_stats_clear(u);
    }
    kf_strbuf_release(&out);
    kf_strbuf_release(&err);
}

int kf_endpoints_serving(struct kf_endpoints *e, const char *unit, const char *cluster, int *ret_up,
                         int *ret_total)
{
    struct unit_stats *u;
    struct serving *sv;
    int r;

    if (e->mode != KF_EP_LOCAL)
        return -EOPNOTSUPP;
    pthread_mutex_lock(&e->stats_lock);
    u = kf_smap_get(&e->stats, unit);
    if (!u && kf_smap_count(&e->stats) < KF_EP_UNITS_MAX) {
        u = kf_xcalloc(1, sizeof(*u));
        pthread_mutex_init(&u->lock, NULL);
        kf_smap_init(&u->clusters);
        kf_smap_put(&e->stats, unit, u);
    }
    pthread_mutex_unlock(&e->stats_lock);
    if (!u)
        return -ENOSPC;
    /* entries are freed only with e: u stays valid without stats_lock */
    pthread_mutex_lock(&u->lock);
    stats_refresh(e, unit, u);
    sv = kf_smap_get(&u->clusters, cluster);
    r = u->error ? u->error : sv ? 0 : -ENOENT;
    if (sv) {
        *ret_up = sv->up;
        *ret_total = sv->total;
    }
    pthread_mutex_unlock(&u->lock);
    return r;
}
