/* runner-sim.c: the simulated runner backend, for `kfleet-agent --simulate N`.
 *
 * Same state machine as the real runner (runner-core.c), none of the cost:
 * no fork, no files, no threads, no file descriptors, so one process can
 * hold the runners of many thousands of virtual hosts. A simulated process
 * gets a pid above the kernel's PID_MAX_LIMIT (so it can never be mistaken
 * for a real one), becomes ready `sim_ready_delay_ms` after its start
 * (through a readiness probe if the spec has one, otherwise as if it had),
 * obeys SIGTERM at once, and exits when kf_runner_sim_fail() says so. A task
 * runs `sim_task_duration_ms` and exits with `sim_task_exit_code`, or fails
 * if a hash of its id falls into `sim_task_fail_ratio`. Binaries
 * named in `sim_missing_binaries` are reported as not installed.
 *
 * Time advances when the runner is called: kf_runner_next_event() and the
 * getters run kf_runner_core_run(), which calls sim_poll() to deliver what is due.
 * Results live in memory only (a simulated agent does not restart).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"
#include "runner/runner-internal.h"

#define SIM_PID_BASE 5000000 /* above PID_MAX_LIMIT (4194304) */

struct sim_runner {
    int next_pid;
};

struct sim_proc {
    int64_t ready_at; /* monotonic ms */
    int64_t exit_at;  /* 0: none */
    struct kf_proc_exit exit;
    bool readiness_sent; /* implicit readiness delivered */
    bool ready_forced;   /* kf_runner_sim_set_ready was called */
    bool ready_value;
    bool ready_dirty; /* deliver the forced value */
    bool probe_pending[2];
    uint64_t probe_gen[2];
};

static struct sim_proc *SP(struct rproc *p)
{
    if (!p->be)
        p->be = kf_xcalloc(1, sizeof(struct sim_proc));
    return p->be;
}

static int sim_init(struct kf_runner *r, struct kf_strbuf *err)
{
    struct sim_runner *sr = kf_xcalloc(1, sizeof(*sr));

    (void)err;
    sr->next_pid = SIM_PID_BASE;
    r->be_data = sr;
    r->cgroup_problem = kf_xstrdup("cgroups unavailable: simulated runner");
    return 0;
}

static void sim_destroy(struct kf_runner *r)
{
    free(r->be_data);
    r->be_data = NULL;
}

static int sim_spawn(struct kf_runner *r, struct rproc *p, struct kf_strbuf *err)
{
    struct sim_runner *sr = r->be_data;
    struct sim_proc *sp = SP(p);
    const char *base = strrchr(p->spec.argv[0], '/');
    int64_t now = kf_mono_ms();

    base = base ? base + 1 : p->spec.argv[0];
    for (size_t i = 0; r->sim_missing && r->sim_missing[i]; i++)
        if (!strcmp(r->sim_missing[i], base))
            return kf_err(err, -ENOENT, "binary \"%s\" is not installed (searched %s)", base,
                          r->search_path);
    memset(sp, 0, sizeof(*sp));
    p->pid = sr->next_pid++;
    p->keeper_pid = 0;
    sp->ready_at = now + r->sim_ready_delay_ms;
    if (p->kind == RPROC_TASK) {
        sp->exit_at = now + KF_MAX(r->sim_task_duration_ms, (int64_t)0);
        if (sp->exit_at == 0)
            sp->exit_at = 1;
        sp->exit.valid = true;
        sp->exit.code = r->sim_task_exit_code;
        if (r->sim_task_fail_ratio > 0 &&
            (double)(kf_hash_str(p->name) % 1000000) < r->sim_task_fail_ratio * 1000000.0)
            sp->exit.code = r->sim_task_exit_code ? r->sim_task_exit_code : 1;
    } else if (p->spec.probe[PROBE_READINESS].type == KF_PROBE_NONE) {
        p->implicit_readiness = true;
    }
    return 0;
}

static void sim_kill(struct kf_runner *r, struct rproc *p, int sig)
{
    struct sim_proc *sp = SP(p);

    (void)r;
    if (sig == 0)
        return;
    sp->exit_at = kf_mono_ms();
    if (sp->exit_at == 0)
        sp->exit_at = 1;
    memset(&sp->exit, 0, sizeof(sp->exit));
    sp->exit.valid = true;
    sp->exit.signaled = true;
    sp->exit.signal = sig;
}

static void sim_probe(struct kf_runner *r, struct rproc *p, enum probe_which which, uint64_t gen)
{
    struct sim_proc *sp = SP(p);

    (void)r;
    sp->probe_pending[which] = true;
    sp->probe_gen[which] = gen;
}

static bool sim_ready_now(struct sim_proc *sp, int64_t now)
{
    return sp->ready_forced ? sp->ready_value : now >= sp->ready_at;
}

static void sim_poll(struct kf_runner *r, int64_t now)
{
    for (size_t i = 0; i < r->n_procs;) {
        struct rproc *p = r->procs[i];
        struct sim_proc *sp = SP(p);
        size_t n = r->n_procs;

        if (p->running && sp->exit_at && now >= sp->exit_at) {
            struct kf_proc_exit ex = sp->exit;
            sp->exit_at = 0;
            ex.time_ms = kf_now_ms();
            kf_runner_core_proc_exited(r, p, &ex);
            if (r->n_procs != n)
                continue; /* the record went away */
            i++;
            continue;
        }
        if (p->running && p->implicit_readiness) {
            if (!sp->readiness_sent && sim_ready_now(sp, now)) {
                sp->readiness_sent = true;
                kf_runner_core_probe_result(r, p->gen, PROBE_READINESS, true, "simulated");
            } else if (sp->ready_dirty) {
                sp->ready_dirty = false;
                sp->readiness_sent = true;
                kf_runner_core_probe_result(r, p->gen, PROBE_READINESS, sp->ready_value,
                                            "simulated");
            }
        }
        for (int w = 0; w < 2; w++) {
            if (!sp->probe_pending[w])
                continue;
            sp->probe_pending[w] = false;
            kf_runner_core_probe_result(r, sp->probe_gen[w], (enum probe_which)w,
                                        w == PROBE_LIVENESS ? true : sim_ready_now(sp, now),
                                        "simulated");
        }
        i++;
    }
}

static int64_t sim_next_deadline(struct kf_runner *r)
{
    int64_t next = INT64_MAX;

    for (size_t i = 0; i < r->n_procs; i++) {
        struct rproc *p = r->procs[i];
        struct sim_proc *sp = p->be;
        if (!sp || !p->running)
            continue;
        if (sp->exit_at)
            next = KF_MIN(next, sp->exit_at);
        if (p->implicit_readiness && !sp->readiness_sent)
            next = KF_MIN(next, sp->ready_forced ? 0 : sp->ready_at);
        if (sp->ready_dirty || sp->probe_pending[0] || sp->probe_pending[1])
            next = 0;
    }
    return next;
}

static void sim_nop(struct kf_runner *r, struct rproc *p)
{
    (void)r;
    (void)p;
}

static void sim_release(struct kf_runner *r, struct rproc *p)
{
    (void)r;
    free(p->be);
    p->be = NULL;
}

static void sim_collect_output(struct kf_runner *r, struct rproc *p, size_t cap, char **ret_out,
                               size_t *ret_len, uint64_t *ret_dropped)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    size_t skip = 0;

    (void)r;
    kf_strbuf_addstr(&sb, "simulated:");
    for (size_t i = 0; i < p->spec.argc; i++)
        kf_strbuf_addf(&sb, " %s", p->spec.argv[i]);
    kf_strbuf_addch(&sb, '\n');
    if (sb.len > cap)
        skip = sb.len - cap;
    *ret_out = kf_xstrdup(sb.buf + skip);
    *ret_len = sb.len - skip;
    *ret_dropped = skip;
    kf_strbuf_release(&sb);
}

static int sim_save_result(struct kf_runner *r, const struct kf_task_result *res)
{
    (void)r;
    (void)res;
    return 0;
}

static void sim_drop_result(struct kf_runner *r, const char *id)
{
    (void)r;
    (void)id;
}

static void sim_runner_nop(struct kf_runner *r)
{
    (void)r;
}

static int sim_usage(struct kf_runner *r, struct rproc *p, struct kf_proc_usage *ret)
{
    (void)r;
    (void)p;
    memset(ret, 0, sizeof(*ret));
    return 0;
}

const struct runner_backend kf_runner_backend_sim = {
    .name = "sim",
    .self_driven = false,
    .init = sim_init,
    .destroy = sim_destroy,
    .spawn = sim_spawn,
    .kill = sim_kill,
    .probe = sim_probe,
    .poll = sim_poll,
    .next_deadline = sim_next_deadline,
    .persist = sim_nop,
    .forget = sim_nop,
    .release = sim_release,
    .collect_output = sim_collect_output,
    .save_result = sim_save_result,
    .drop_result = sim_drop_result,
    .wake = sim_runner_nop,
    .notify = sim_runner_nop,
    .update_limits = sim_nop,
    .usage = sim_usage,
};

int kf_runner_sim_fail(struct kf_runner *r, const char *name, int exit_code)
{
    struct rproc *p;
    int rc = 0;

    if (r->be != &kf_runner_backend_sim)
        return -EOPNOTSUPP;
    pthread_mutex_lock(&r->lock);
    p = kf_runner_core_find(r, name);
    if (!p || !p->running) {
        rc = -ENOENT;
    } else {
        struct sim_proc *sp = SP(p);
        sp->exit_at = kf_mono_ms();
        if (sp->exit_at == 0)
            sp->exit_at = 1;
        memset(&sp->exit, 0, sizeof(sp->exit));
        sp->exit.valid = true;
        sp->exit.code = exit_code;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int kf_runner_sim_set_ready(struct kf_runner *r, const char *name, bool ready)
{
    struct rproc *p;
    int rc = 0;

    if (r->be != &kf_runner_backend_sim)
        return -EOPNOTSUPP;
    pthread_mutex_lock(&r->lock);
    p = kf_runner_core_find(r, name);
    if (!p || !p->running) {
        rc = -ENOENT;
    } else {
        struct sim_proc *sp = SP(p);
        sp->ready_forced = true;
        sp->ready_value = ready;
        sp->ready_dirty = true;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}
