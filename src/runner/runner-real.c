/* runner-real.c: the real runner backend: processes, files and threads.
 *
 * A supervisor thread waits in epoll on: a wake eventfd (the API or the
 * prober changed something), one pidfd per watched process (usually the
 * keeper, see runner-spawn.c) and one FIFO per process carrying its
 * stdout+stderr. After every wake-up it takes the runner's lock, handles
 * exits and output, and calls kf_runner_core_run() for the timers. The prober
 * (runner-probe.c) runs probes on its own thread and reports under the lock.
 *
 * On disk, under the state directory (0700):
 *   members/<name>.state   the record (runner-state.c), written atomically
 *   members/<name>.exit    the keeper's exit record for the last process
 *   members/<name>.fifo    stdout+stderr; the child holds it open read-write,
 *                          so it never gets SIGPIPE while no agent reads
 *   tasks/<id>.{state,exit,fifo}  the same for a running task
 *   tasks/<id>.log[.1]     the task's output while it runs
 *   tasks/<id>.result, tasks/<id>.out   a finished task's result and
 *                          output tail, until acknowledged
 *   logs/<name>.log[.N]    a member's log unless its spec names a file
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/log.h"
#include "kfleet/strbuf.h"
#include "runner/runner-internal.h"

KF_LOG_MODULE(runner);

#define KEY_WAKE     0
#define KEY_PIDFD    1
#define KEY_FIFO     2
#define FIFO_PIPE_SZ (1024 * 1024)
#define READ_CHUNK   (64 * 1024)
#define TASK_LOG_MIN (64 * 1024)

struct real_runner {
    int epfd;
    int wakefd;  /* supervisor wake-up */
    int eventfd; /* for the agent: readable while events are queued */
    int lockfd;  /* flock on <state_dir>/runner.lock: one runner per directory */
    bool event_armed;
    pthread_t thread;
    bool thread_started;
    bool stop;
    struct kf_prober *prober;
    struct kf_runner *r;
    char *members_dir;
    char *tasks_dir;
    char buf[READ_CHUNK];
};

struct real_proc {
    int pidfd; /* -1: not watched by pidfd */
    int pidfd_pid;
    bool watching_keeper;
    bool poll_watch; /* no pidfd support: poll /proc */
    bool check_dead; /* found dead while loading: deliver the exit on the next poll */
    int fifo_fd;
    struct kf_logsink log;
    uint64_t log_discarded; /* from earlier runners */
    bool in_cgroup;
    char *state_path, *exit_path, *exit_tmp, *fifo_path, *log_path;
};

static struct real_runner *RR(struct kf_runner *r)
{
    return r->be_data;
}

static struct real_proc *RP(struct rproc *p)
{
    return p->be;
}

static uint64_t key_of(uint64_t id, int type)
{
    return id << 2 | (uint64_t)type;
}

static void paths_init(struct kf_runner *r, struct rproc *p)
{
    struct real_runner *rr = RR(r);
    struct real_proc *rp;
    const char *dir = p->kind == RPROC_TASK ? rr->tasks_dir : rr->members_dir;

    if (p->be)
        return;
    rp = kf_xcalloc(1, sizeof(*rp));
    rp->pidfd = -1;
    rp->fifo_fd = -1;
    rp->log.fd = -1;
    rp->state_path = kf_xasprintf("%s/%s.state", dir, p->name);
    rp->exit_path = kf_xasprintf("%s/%s.exit", dir, p->name);
    rp->exit_tmp = kf_xasprintf("%s/%s.exit.tmp", dir, p->name);
    rp->fifo_path = kf_xasprintf("%s/%s.fifo", dir, p->name);
    p->be = rp;
}

static void set_log_path(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp = RP(p);

    free(rp->log_path);
    if (p->kind == RPROC_TASK)
        rp->log_path = kf_xasprintf("%s/%s.log", RR(r)->tasks_dir, p->name);
    else if (p->spec.log_file)
        rp->log_path = kf_xstrdup(p->spec.log_file);
    else
        rp->log_path = kf_xasprintf("%s/%s.log", r->log_dir, p->name);
}

/* --- watching ---------------------------------------------------------------------------- */

static void unwatch(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp = RP(p);

    if (rp->pidfd >= 0) {
        epoll_ctl(RR(r)->epfd, EPOLL_CTL_DEL, rp->pidfd, NULL);
        close(rp->pidfd);
    }
    rp->pidfd = -1;
    rp->pidfd_pid = 0;
    rp->poll_watch = false;
}

static bool identity_alive(int pid, uint64_t start)
{
    uint64_t now_start;

    return pid > 0 && start && kf_runner_proc_start_time(pid, &now_start) == 0 &&
           now_start == start;
}

/* Reaps p's keeper if it is a zombie child of ours (an earlier runner in
 * this same process started it); start time checked, so nobody else's
 * child is touched. */
static void reap_keeper(struct rproc *p)
{
    uint64_t start;
    bool zombie;
    int st;

    if (p->keeper_pid > 0 && kf_runner_proc_identity(p->keeper_pid, &start, &zombie) == 0 &&
        zombie && start == p->keeper_start)
        waitpid(p->keeper_pid, &st, WNOHANG);
}

/* Watches `pid` (with `start`) by pidfd, falling back to polling /proc. */
static bool watch_pid(struct kf_runner *r, struct rproc *p, int pid, uint64_t start)
{
    struct real_proc *rp = RP(p);
    struct epoll_event ev;
    int fd;

    unwatch(r, p);
    fd = pidfd_open(pid, 0);
    if (fd < 0 && (errno == ENOSYS || errno == EINVAL)) {
        if (!identity_alive(pid, start))
            return false;
        rp->poll_watch = true;
        rp->pidfd_pid = pid;
        return true;
    }
    if (fd < 0)
        return false;
    /* The pidfd pins the process; checking the start time after opening it
     * proves it is the process we mean, not a recycled pid. */
    if (!identity_alive(pid, start)) {
        close(fd);
        return false;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = key_of(p->id, KEY_PIDFD);
    if (epoll_ctl(RR(r)->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return false;
    }
    rp->pidfd = fd;
    rp->pidfd_pid = pid;
    return true;
}

/* Watches the keeper if it lives, else the process itself (its exit status
 * is then lost). False when neither lives. */
static bool watch(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp = RP(p);

    if (p->keeper_pid && watch_pid(r, p, p->keeper_pid, p->keeper_start)) {
        rp->watching_keeper = true;
        return true;
    }
    rp->watching_keeper = false;
    return p->pid && watch_pid(r, p, p->pid, p->pid_start);
}

static void fifo_close(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp = RP(p);

    if (rp->fifo_fd >= 0) {
        epoll_ctl(RR(r)->epfd, EPOLL_CTL_DEL, rp->fifo_fd, NULL);
        close(rp->fifo_fd);
    }
    rp->fifo_fd = -1;
}

static int fifo_open(struct kf_runner *r, struct rproc *p, struct kf_strbuf *err)
{
    struct real_proc *rp = RP(p);
    struct epoll_event ev;
    struct stat st;
    int fd;

    if (rp->fifo_fd >= 0)
        return 0;
    if (lstat(rp->fifo_path, &st) == 0 && !S_ISFIFO(st.st_mode))
        unlink(rp->fifo_path);
    if (mkfifo(rp->fifo_path, 0600) < 0 && errno != EEXIST)
        return kf_err(err, -errno, "cannot create \"%s\": %s", rp->fifo_path, strerror(errno));
    fd = open(rp->fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return kf_err(err, -errno, "cannot open \"%s\": %s", rp->fifo_path, strerror(errno));
    /* Room for output while no agent reads (best effort). */
    fcntl(fd, F_SETPIPE_SZ, FIFO_PIPE_SZ);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = key_of(p->id, KEY_FIFO);
    if (epoll_ctl(RR(r)->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        close(fd);
        return kf_err(err, -e, "epoll: %s", strerror(e));
    }
    rp->fifo_fd = fd;
    return 0;
}

/* Closes the sink, keeping count of what its rotation deleted. */
static void log_close(struct real_proc *rp)
{
    rp->log_discarded += rp->log.discarded;
    rp->log.discarded = 0;
    kf_logsink_close(&rp->log);
}

static int log_open(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp = RP(p);

    if (rp->log.fd >= 0)
        return 0;
    if (!rp->log_path)
        set_log_path(r, p);
    if (p->kind == RPROC_TASK)
        return kf_logsink_open(&rp->log, rp->log_path,
                               KF_MAX((uint64_t)TASK_LOG_MIN, 4 * (uint64_t)p->spec.output_cap), 1);
    return kf_logsink_open(&rp->log, rp->log_path, r->log_max_bytes, r->log_keep);
}

/* Reads what the FIFO holds; `all` drains it, otherwise one chunk (so that
 * a chatty process cannot starve the others). */
static void fifo_drain(struct kf_runner *r, struct rproc *p, bool all)
{
    struct real_runner *rr = RR(r);
    struct real_proc *rp = RP(p);

    while (rp->fifo_fd >= 0) {
        ssize_t n = read(rp->fifo_fd, rr->buf, sizeof(rr->buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return; /* EAGAIN */
        if (n == 0) {
            /* No writer left: the process and its group are gone. */
            fifo_close(r, p);
            return;
        }
        if (log_open(r, p) == 0 && kf_logsink_write(&rp->log, rr->buf, (size_t)n) < 0)
            kf_log_rl_warn("cannot write the log of \"%s\" to \"%s\": %s", p->name, rp->log_path,
                           strerror(errno));
        if (!all)
            return;
    }
}

/* The watched process ended: reap the keeper if it is ours, read its exit
 * record, and hand the exit to the core. */
static void handle_exit(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp = RP(p);
    struct kf_proc_exit ex;
    int st;

    memset(&ex, 0, sizeof(ex));
    if (rp->watching_keeper) {
        waitpid(p->keeper_pid, &st, WNOHANG); /* ECHILD when an earlier agent started it */
        if (kf_runner_read_exit_file(rp->exit_path, &ex) < 0) {
            /* The keeper died without a record (killed): watch the process
             * itself if it still lives. */
            rp->watching_keeper = false;
            if (p->pid && watch_pid(r, p, p->pid, p->pid_start))
                return;
            memset(&ex, 0, sizeof(ex));
        }
    }
    unwatch(r, p);
    fifo_drain(r, p, true);
    fifo_close(r, p);
    unlink(rp->exit_path);
    if (rp->in_cgroup && r->cgroup_base)
        kf_runner_cgroup_remove(r->cgroup_base, p->name);
    rp->in_cgroup = false;
    p->keeper_pid = 0;
    p->keeper_start = 0;
    kf_runner_core_proc_exited(r, p, &ex);
}

/* --- ops --------------------------------------------------------------------------------- */

static void real_persist(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp;
    struct kf_state_record rec;
    struct kf_strbuf sb = KF_STRBUF_INIT;
    int rc;

    paths_init(r, p);
    rp = RP(p);
    memset(&rec, 0, sizeof(rec));
    rec.kind = p->kind;
    snprintf(rec.name, sizeof(rec.name), "%s", p->name);
    rec.spec = p->spec; /* borrowed */
    memcpy(rec.hash, p->hash, sizeof(rec.hash));
    if (p->running) {
        rec.keeper_pid = p->keeper_pid;
        rec.keeper_start = p->keeper_start;
        rec.pid = p->pid;
        rec.pid_start = p->pid_start;
        rec.started_at_ms = p->started_at_ms;
    }
    rec.restarts = p->restarts;
    rec.attempts = p->attempts;
    rec.first_start_ms = p->first_start_ms;
    rec.log_discarded = rp->log_discarded + rp->log.discarded;
    kf_state_format(&rec, &sb);
    /* Not fsynced: a state file only has to outlive the agent, not the host
     * (after a host crash its processes are gone too, and a lost or torn
     * record means "not running", which is then true). Results are. */
    rc = kf_write_file_atomic(rp->state_path, sb.buf, sb.len, 0600, false, NULL);
    if (rc < 0)
        kf_log_rl_warn("cannot save the state of \"%s\" to \"%s\": %s; a restarted agent "
                       "will not find it",
                       p->name, rp->state_path, strerror(-rc));
    kf_strbuf_release(&sb);
}

static void real_forget(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp;

    paths_init(r, p);
    rp = RP(p);
    unwatch(r, p);
    fifo_close(r, p);
    log_close(rp);
    unlink(rp->state_path);
    unlink(rp->exit_path);
    unlink(rp->exit_tmp);
    unlink(rp->fifo_path);
    if (p->kind == RPROC_TASK) {
        char *l1;
        if (!rp->log_path)
            set_log_path(r, p);
        l1 = kf_xasprintf("%s.1", rp->log_path);
        unlink(rp->log_path);
        unlink(l1);
        free(l1);
    }
    if (rp->in_cgroup && r->cgroup_base)
        kf_runner_cgroup_remove(r->cgroup_base, p->name);
    rp->in_cgroup = false;
}

static void real_release(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp = RP(p);

    if (!rp)
        return;
    if (rp->pidfd >= 0)
        close(rp->pidfd); /* the epoll set is going away, or will drop it with the fd */
    if (rp->fifo_fd >= 0)
        close(rp->fifo_fd);
    kf_logsink_close(&rp->log);
    free(rp->state_path);
    free(rp->exit_path);
    free(rp->exit_tmp);
    free(rp->fifo_path);
    free(rp->log_path);
    free(rp);
    p->be = NULL;
}

static int real_spawn(struct kf_runner *r, struct rproc *p, struct kf_strbuf *err)
{
    struct real_proc *rp;
    struct kf_spawn_req req;
    struct kf_spawn_res res;
    struct kf_strbuf cgerr = KF_STRBUF_INIT;
    char *path = NULL;
    const char *workdir = p->spec.workdir ? p->spec.workdir : "/";
    int procs_fd = -1, rc;

    paths_init(r, p);
    rp = RP(p);
    rc = kf_runner_resolve_binary(p->spec.argv[0], r->search_path, &path, err);
    if (rc < 0)
        return rc;
    rc = kf_mkdir_p(workdir, 0700);
    if (rc < 0) {
        rc = kf_err(err, rc, "cannot create the working directory \"%s\": %s", workdir,
                    strerror(-rc));
        goto free_path;
    }
    rc = fifo_open(r, p, err);
    if (rc < 0)
        goto free_path;
    log_close(rp);
    set_log_path(r, p);
    rc = log_open(r, p);
    if (rc < 0) {
        rc = kf_err(err, rc, "cannot open the log \"%s\": %s", rp->log_path, strerror(-rc));
        goto free_path;
    }
    if (r->cgroup_base) {
        if (kf_runner_cgroup_member(r->cgroup_base, p->name, p->spec.cpu_millis,
                                    p->spec.memory_bytes, &procs_fd, &cgerr) < 0)
            kf_log_rl_warn("\"%s\" runs without cgroup limits: %s", p->name, cgerr.buf);
    }
    unlink(rp->exit_path);
    memset(&req, 0, sizeof(req));
    req.path = path;
    req.argv = p->spec.argv;
    req.envp = p->spec.env;
    req.workdir = workdir;
    req.fifo_path = rp->fifo_path;
    req.exit_path = rp->exit_path;
    req.exit_tmp_path = rp->exit_tmp;
    req.cgroup_procs_fd = procs_fd;
    rc = kf_runner_spawn(&req, &res, err);
    if (procs_fd >= 0)
        close(procs_fd);
    if (rc < 0) {
        if (r->cgroup_base && procs_fd >= 0)
            kf_runner_cgroup_remove(r->cgroup_base, p->name);
        goto free_path;
    }
    rp->in_cgroup = procs_fd >= 0;
    p->keeper_pid = res.keeper_pid;
    p->pid = res.pid;
    p->keeper_start = 0;
    p->pid_start = 0;
    kf_runner_proc_start_time(res.keeper_pid, &p->keeper_start);
    kf_runner_proc_start_time(res.pid, &p->pid_start);
    if (!watch(r, p)) {
        /* Both gone already (a process that exits at once): the exit
         * record tells how, on the next poll. */
        rp->check_dead = true;
        rp->watching_keeper = true;
    }
free_path:
    kf_strbuf_release(&cgerr);
    free(path);
    return rc;
}

static void real_kill(struct kf_runner *r, struct rproc *p, int sig)
{
    (void)r;
    /* Signal the group only while its leader is the process we started: a
     * recycled pid must never be hit. After the leader is gone, its keeper
     * has already killed what was left of the group. */
    if (p->pid > 0 && identity_alive(p->pid, p->pid_start))
        kill(-p->pid, sig);
}

/* kf_runner_signal: the main process alone (a reload signal is for it, not
 * for the workers it forked), and only while it is the process we started. */
static int real_signal(struct kf_runner *r, struct rproc *p, int sig)
{
    (void)r;
    if (p->pid <= 0 || !identity_alive(p->pid, p->pid_start))
        return -ESRCH;
    return kill(p->pid, sig) < 0 ? -errno : 0;
}

static void real_probe(struct kf_runner *r, struct rproc *p, enum probe_which which, uint64_t gen)
{
    kf_prober_submit(RR(r)->prober, &p->spec.probe[which], gen << 1 | (uint64_t)which);
}

static void probe_done(void *ctx, uint64_t tag, bool ok, const char *detail)
{
    struct kf_runner *r = ctx;
    uint64_t one = 1;

    pthread_mutex_lock(&r->lock);
    kf_runner_core_probe_result(r, tag >> 1, (enum probe_which)(tag & 1), ok, detail);
    pthread_mutex_unlock(&r->lock);
    (void)!write(RR(r)->wakefd, &one, sizeof(one));
}

static void real_poll(struct kf_runner *r, int64_t now)
{
    (void)now;
    for (size_t i = 0; i < r->n_procs;) {
        struct rproc *p = r->procs[i];
        struct real_proc *rp = RP(p);
        size_t n = r->n_procs;

        if (p->running && rp &&
            (rp->check_dead ||
             (rp->poll_watch &&
              !identity_alive(rp->pidfd_pid,
                              rp->watching_keeper ? p->keeper_start : p->pid_start)))) {
            rp->check_dead = false;
            handle_exit(r, p);
        }
        if (r->n_procs == n)
            i++;
    }
}

static int64_t real_next_deadline(struct kf_runner *r)
{
    for (size_t i = 0; i < r->n_procs; i++) {
        struct real_proc *rp = RP(r->procs[i]);
        if (rp && rp->check_dead)
            return 0;
    }
    return INT64_MAX;
}

static void real_collect_output(struct kf_runner *r, struct rproc *p, size_t cap, char **ret_out,
                                size_t *ret_len, uint64_t *ret_dropped)
{
    struct real_proc *rp;
    uint64_t total;

    paths_init(r, p);
    rp = RP(p);
    if (!rp->log_path)
        set_log_path(r, p);
    fifo_drain(r, p, true);
    log_close(rp);
    total = rp->log_discarded + kf_logsink_total_on_disk(rp->log_path, 1);
    kf_logsink_tail(rp->log_path, cap, ret_out, ret_len);
    *ret_dropped = total > *ret_len ? total - *ret_len : 0;
}

static int real_save_result(struct kf_runner *r, const struct kf_task_result *res)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char *out = kf_xasprintf("%s/%s.out", RR(r)->tasks_dir, res->id);
    char *path = kf_xasprintf("%s/%s.result", RR(r)->tasks_dir, res->id);
    int rc;

    /* The output first: the result file is what makes the pair count. */
    rc = kf_write_file_atomic(out, res->output, res->output_len, 0600, true, NULL);
    if (rc == 0) {
        kf_result_format(res, &sb);
        rc = kf_write_file_atomic(path, sb.buf, sb.len, 0600, true, NULL);
    }
    if (rc < 0)
        kf_log_rl_warn("cannot save the result of task \"%s\" in \"%s\": %s", res->id,
                       RR(r)->tasks_dir, strerror(-rc));
    kf_strbuf_release(&sb);
    free(out);
    free(path);
    return rc;
}

static void real_drop_result(struct kf_runner *r, const char *id)
{
    char *path = kf_xasprintf("%s/%s.result", RR(r)->tasks_dir, id);
    char *out = kf_xasprintf("%s/%s.out", RR(r)->tasks_dir, id);

    unlink(path);
    unlink(out);
    free(path);
    free(out);
}

static void real_wake(struct kf_runner *r)
{
    uint64_t one = 1;

    (void)!write(RR(r)->wakefd, &one, sizeof(one));
}

static void real_notify(struct kf_runner *r)
{
    struct real_runner *rr = RR(r);
    uint64_t v = 1;

    if (r->ev_count && !rr->event_armed) {
        (void)!write(rr->eventfd, &v, sizeof(v));
        rr->event_armed = true;
    } else if (!r->ev_count && rr->event_armed) {
        (void)!read(rr->eventfd, &v, sizeof(v));
        rr->event_armed = false;
    }
}

int kf_runner_real_event_fd(struct kf_runner *r)
{
    return RR(r)->eventfd;
}

static void real_update_limits(struct kf_runner *r, struct rproc *p)
{
    struct real_proc *rp = RP(p);
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *dir;

    if (!rp || !rp->in_cgroup || !r->cgroup_base)
        return;
    dir = kf_xasprintf("%s/%s", r->cgroup_base, p->name);
    if (kf_runner_cgroup_set_limits(dir, p->spec.cpu_millis, p->spec.memory_bytes, &err) < 0)
        kf_log_rl_warn("cannot change the limits of \"%s\": %s", p->name, err.buf);
    free(dir);
    kf_strbuf_release(&err);
}

static int real_usage(struct kf_runner *r, struct rproc *p, struct kf_proc_usage *ret)
{
    struct real_proc *rp = RP(p);
    int rc;

    memset(ret, 0, sizeof(*ret));
    if (rp && rp->in_cgroup && r->cgroup_base) {
        char *dir = kf_xasprintf("%s/%s", r->cgroup_base, p->name);
        rc = kf_runner_cgroup_usage(dir, &ret->cpu_seconds, &ret->rss_bytes);
        free(dir);
        if (rc == 0) {
            ret->from_cgroup = true;
            return 0;
        }
    }
    return kf_runner_proc_usage(p->pid, &ret->cpu_seconds, &ret->rss_bytes);
}

/* --- loading what an earlier runner left ------------------------------------------------------ */

static void adopt_record(struct kf_runner *r, struct kf_state_record *rec)
{
    struct rproc *p;
    struct real_proc *rp;

    if (kf_runner_core_find(r, rec->name))
        return;
    p = kf_runner_core_add(r, rec->name, rec->kind);
    p->spec = rec->spec;
    memset(&rec->spec, 0, sizeof(rec->spec));
    memcpy(p->hash, rec->hash, sizeof(p->hash));
    p->restarts = rec->restarts;
    p->attempts = rec->attempts;
    p->first_start_ms = rec->first_start_ms;
    p->keeper_pid = rec->keeper_pid;
    p->keeper_start = rec->keeper_start;
    p->pid = rec->pid;
    p->pid_start = rec->pid_start;
    p->started_at_ms = rec->started_at_ms;
    paths_init(r, p);
    rp = RP(p);
    rp->log_discarded = rec->log_discarded;
    set_log_path(r, p);

    if (p->kind == RPROC_TASK) {
        p->claimed = true;
        p->desire = WANT_RUN;
    } else {
        p->claimed = false;
        p->desire = WANT_IDLE;
    }
    if (rec->pid && p->keeper_pid && !identity_alive(p->pid, p->pid_start)) {
        /* The process is gone and its keeper is just writing the record:
         * give it a moment rather than adopting a keeper alone. */
        for (int i = 0; i < 100 && identity_alive(p->keeper_pid, p->keeper_start); i++)
            usleep(2000);
    }
    if (rec->pid && watch(r, p)) {
        struct kf_strbuf err = KF_STRBUF_INIT;
        p->running = true;
        p->adopted = true;
        p->gen = ++r->next_gen;
        p->running_since = kf_mono_ms();
        p->phase = KF_PROC_RUNNING;
        if (fifo_open(r, p, &err) < 0)
            kf_log_warn("the output of \"%s\" is not read: %s", p->name, err.buf);
        kf_strbuf_release(&err);
        snprintf(p->message, sizeof(p->message), "found running (pid %d)%s", p->pid,
                 p->claimed ? "" : "; not claimed yet");
        return;
    }
    if (rec->pid) {
        /* It ended while no runner watched (or the pid now belongs to
         * someone else): the keeper's record, if any, tells how. */
        struct kf_proc_exit ex;
        reap_keeper(p);
        if (kf_runner_read_exit_file(rp->exit_path, &ex) < 0)
            memset(&ex, 0, sizeof(ex));
        unlink(rp->exit_path);
        p->running = true;
        p->gen = ++r->next_gen;
        kf_runner_core_proc_exited(r, p, &ex); /* may end a task (and free p) */
        return;
    }
    p->running = false;
    p->phase = p->kind == RPROC_TASK ? KF_PROC_PENDING : KF_PROC_STOPPED;
    if (p->kind == RPROC_TASK)
        p->restart_at = kf_mono_ms();
    kf_runner_read_exit_file(rp->exit_path, &p->last_exit);
    snprintf(p->message, sizeof(p->message), "found not running");
}

static void load_dir(struct kf_runner *r, const char *dir, bool results)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d))) {
        const char *suffix = results ? ".result" : ".state";
        char *path, *text = NULL;
        size_t len;

        if (!kf_str_has_suffix(de->d_name, suffix) || de->d_name[0] == '.')
            continue;
        path = kf_xasprintf("%s/%s", dir, de->d_name);
        if (kf_read_file(path, 16 * 1024 * 1024, &text, &len) < 0) {
            free(path);
            continue;
        }
        if (results) {
            struct kf_task_result res;
            if (kf_result_parse(text, len, &res) == 0) {
                char *out = kf_xasprintf("%s/%s.out", dir, res.id);
                if (kf_read_file(out, KF_RUNNER_OUTPUT_CAP_MAX, &res.output, &res.output_len) < 0) {
                    res.output = kf_xstrdup("");
                    res.output_len = 0;
                }
                free(out);
                kf_runner_core_add_result(r, &res);
            } else {
                kf_log_warn("ignoring the malformed result file \"%s\"", path);
            }
        } else {
            struct kf_state_record rec;
            if (kf_state_parse(text, len, &rec) == 0) {
                adopt_record(r, &rec);
                kf_state_record_release(&rec);
            } else {
                kf_log_warn("ignoring the malformed state file \"%s\"", path);
            }
        }
        free(text);
        free(path);
    }
    closedir(d);
}

static int cmp_results(const void *a, const void *b)
{
    const struct pending_result *x = a, *y = b;

    return x->res.end_ms < y->res.end_ms ? -1 : x->res.end_ms > y->res.end_ms;
}

/* --- the supervisor thread --------------------------------------------------------------------- */

static void *supervisor(void *arg)
{
    struct kf_runner *r = arg;
    struct real_runner *rr = RR(r);
    struct epoll_event evs[64];
    int timeout = 0;

    for (;;) {
        int n = epoll_wait(rr->epfd, evs, (int)KF_ARRAY_SIZE(evs), timeout);
        int64_t now, next;

        pthread_mutex_lock(&r->lock);
        if (rr->stop) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        for (int i = 0; i < n; i++) {
            uint64_t key = evs[i].data.u64;
            struct rproc *p;

            if (key == KEY_WAKE) {
                uint64_t v;
                (void)!read(rr->wakefd, &v, sizeof(v));
                continue;
            }
            p = kf_runner_core_find_id(r, key >> 2);
            if (!p)
                continue;
            if ((key & 3) == KEY_PIDFD && RP(p)->pidfd >= 0 && p->running)
                handle_exit(r, p);
            else if ((key & 3) == KEY_FIFO)
                fifo_drain(r, p, false);
        }
        now = kf_mono_ms();
        next = kf_runner_core_run(r, now);
        pthread_mutex_unlock(&r->lock);
        /* At least once a second: polled processes and slow clocks. */
        timeout = next == INT64_MAX ? 1000 : (int)KF_MAX(0, KF_MIN(next - now, 1000));
    }
    return NULL;
}

static void real_destroy(struct kf_runner *r)
{
    struct real_runner *rr = RR(r);
    uint64_t one = 1;

    if (!rr)
        return;
    /* The supervisor first: it submits probes, so the prober must outlive
     * it (freed first, a probe submitted in between was lost or written
     * into freed memory). The prober's last results still find the runner
     * and its wake descriptor. */
    if (rr->thread_started) {
        pthread_mutex_lock(&r->lock);
        rr->stop = true;
        pthread_mutex_unlock(&r->lock);
        (void)!write(rr->wakefd, &one, sizeof(one));
        pthread_join(rr->thread, NULL);
    }
    kf_prober_free(rr->prober);
    rr->prober = NULL;
    for (size_t i = 0; i < r->n_procs; i++)
        real_release(r, r->procs[i]);
    if (rr->epfd >= 0)
        close(rr->epfd);
    if (rr->wakefd >= 0)
        close(rr->wakefd);
    if (rr->eventfd >= 0)
        close(rr->eventfd);
    if (rr->lockfd >= 0)
        close(rr->lockfd);
    free(rr->members_dir);
    free(rr->tasks_dir);
    free(rr);
    r->be_data = NULL;
}

static int real_init(struct kf_runner *r, struct kf_strbuf *err)
{
    struct real_runner *rr;
    struct epoll_event ev;
    struct kf_strbuf why = KF_STRBUF_INIT;
    sigset_t all, old;
    int rc;

    if (!r->state_dir)
        return kf_err(err, -EINVAL, "the real runner needs a state directory");
    rr = kf_xcalloc(1, sizeof(*rr));
    rr->epfd = rr->wakefd = rr->eventfd = rr->lockfd = -1;
    rr->r = r;
    r->be_data = rr;
    rr->members_dir = kf_xasprintf("%s/members", r->state_dir);
    rr->tasks_dir = kf_xasprintf("%s/tasks", r->state_dir);
    const char *dirs[] = { r->state_dir, rr->members_dir, rr->tasks_dir, r->log_dir };
    for (size_t i = 0; i < KF_ARRAY_SIZE(dirs); i++) {
        rc = kf_mkdir_p(dirs[i], 0700);
        if (rc < 0) {
            kf_err(err, rc, "cannot create \"%s\": %s", dirs[i], strerror(-rc));
            goto destroy_runner;
        }
    }
    {
        char *lock = kf_xasprintf("%s/runner.lock", r->state_dir);
        rr->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (rr->lockfd < 0 || flock(rr->lockfd, LOCK_EX | LOCK_NB) < 0) {
            rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
            kf_err(err, rc, "%s \"%s\"", rc == -EBUSY ? "another runner uses" : "cannot lock",
                   lock);
            free(lock);
            goto destroy_runner;
        }
        free(lock);
    }
    rr->epfd = epoll_create1(EPOLL_CLOEXEC);
    rr->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rr->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (rr->epfd < 0 || rr->wakefd < 0 || rr->eventfd < 0) {
        rc = kf_err(err, -errno, "epoll/eventfd: %s", strerror(errno));
        goto destroy_runner;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = KEY_WAKE;
    epoll_ctl(rr->epfd, EPOLL_CTL_ADD, rr->wakefd, &ev);

    if (r->cgroup_parent && !strcmp(r->cgroup_parent, "none")) {
        r->cgroup_problem = kf_xstrdup("cgroups unavailable: disabled by configuration");
    } else if (kf_runner_cgroup_setup(r->cgroup_parent, true, &r->cgroup_base, &why) < 0) {
        r->cgroup_problem = kf_xasprintf("cgroups unavailable: %s", why.buf);
        r->cgroup_base = NULL;
    }
    kf_strbuf_release(&why);

    load_dir(r, rr->members_dir, false);
    load_dir(r, rr->tasks_dir, false);
    load_dir(r, rr->tasks_dir, true);
    if (r->n_results > 1)
        qsort(r->results, r->n_results, sizeof(*r->results), cmp_results);

    rc = kf_prober_new(probe_done, r, &rr->prober, err);
    if (rc < 0)
        goto destroy_runner;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&rr->thread, NULL, supervisor, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        rc = kf_err(err, -rc, "cannot start the supervisor thread: %s", strerror(rc));
        goto destroy_runner;
    }
    rr->thread_started = true;
    return 0;
destroy_runner:
    real_destroy(r);
    while (r->n_procs) {
        struct rproc *p = r->procs[--r->n_procs];
        kf_runner_rspec_release(&p->spec);
        free(p->be);
        free(p);
    }
    return rc;
}

const struct runner_backend kf_runner_backend_real = {
    .name = "real",
    .self_driven = true,
    .init = real_init,
    .destroy = real_destroy,
    .spawn = real_spawn,
    .kill = real_kill,
    .signal = real_signal,
    .probe = real_probe,
    .poll = real_poll,
    .next_deadline = real_next_deadline,
    .persist = real_persist,
    .forget = real_forget,
    .release = real_release,
    .collect_output = real_collect_output,
    .save_result = real_save_result,
    .drop_result = real_drop_result,
    .wake = real_wake,
    .notify = real_notify,
    .update_limits = real_update_limits,
    .usage = real_usage,
};
