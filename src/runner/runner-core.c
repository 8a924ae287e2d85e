/* runner-core.c: the process runner's state machine, shared by the real
 * and the simulated backend (runner.h is the contract).
 *
 * Everything here runs with r->lock held. The public functions take the
 * lock, change the wanted state (desire, spec, a start time), and leave the
 * work to kf_runner_core_run(), which the real backend's supervisor thread calls after
 * every wake-up and the simulated backend's callers call on each API call.
 * Backends report back through kf_runner_core_proc_exited() and kf_runner_core_probe_result().
 * Every visible change queues one event (emit()).
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "runner/runner-internal.h"

static const struct {
    const char *name;
    const struct runner_backend *be;
} backends[] = {
    { "real", &kf_runner_backend_real },
    { "sim", &kf_runner_backend_sim },
};

static const char *const phase_names[] = {
    [KF_PROC_PENDING] = "Pending", [KF_PROC_STARTING] = "Starting",
    [KF_PROC_RUNNING] = "Running", [KF_PROC_READY] = "Ready",
    [KF_PROC_BACKOFF] = "Backoff", [KF_PROC_STOPPED] = "Stopped",
    [KF_PROC_FAILED] = "Failed",   [KF_PROC_BINARY_NOT_INSTALLED] = "BinaryNotInstalled",
};

const char *kf_proc_phase_name(enum kf_proc_phase phase)
{
    if ((size_t)phase < KF_ARRAY_SIZE(phase_names) && phase_names[phase])
        return phase_names[phase];
    return "Unknown";
}

void kf_proc_exit_format(const struct kf_proc_exit *ex, char *buf, size_t size)
{
    if (!ex->valid)
        snprintf(buf, size, "an unknown status");
    else if (ex->signaled)
        snprintf(buf, size, "signal %d (%s)", ex->signal, strsignal(ex->signal));
    else
        snprintf(buf, size, "exit code %d", ex->code);
}

bool kf_runner_name_valid(const char *name)
{
    size_t n;

    if (!name || !*name || name[0] == '.')
        return false;
    for (n = 0; name[n]; n++) {
        char c = name[n];
        if (n >= KF_RUNNER_NAME_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* --- specs -------------------------------------------------------------------------- */

static void free_strv(char **v)
{
    if (!v)
        return;
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

static void probe_release(struct kf_probe *p)
{
    free((char *)p->host);
    free((char *)p->path);
    free((char *)p->ca_file);
    free((char *)p->cert_file);
    free((char *)p->key_file);
    memset(p, 0, sizeof(*p));
}

void kf_runner_rspec_release(struct rspec *s)
{
    if (!s)
        return;
    free_strv(s->argv);
    free_strv(s->env);
    free(s->workdir);
    free(s->log_file);
    probe_release(&s->probe[0]);
    probe_release(&s->probe[1]);
    memset(s, 0, sizeof(*s));
}

static char *dup_or_null(const char *s)
{
    return s ? kf_xstrdup(s) : NULL;
}

static int copy_strv(const char *const *in, size_t max, bool need_one, const char *what,
                     char ***ret, size_t *ret_n, struct kf_strbuf *err)
{
    size_t n = 0;
    char **v;

    if (in)
        while (in[n]) {
            if (++n > max)
                return kf_err(err, -EINVAL, "%s has more than %zu entries", what, max);
        }
    if (need_one && n == 0)
        return kf_err(err, -EINVAL, "%s is empty", what);
    v = kf_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        if (strlen(in[i]) > 128 * 1024) {
            free_strv(v);
            return kf_err(err, -EINVAL, "%s[%zu] is longer than 128 KiB", what, i);
        }
        v[i] = kf_xstrdup(in[i]);
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

static void probe_defaults(struct kf_probe *p)
{
    if (p->period_ms <= 0)
        p->period_ms = 10000;
    if (p->timeout_ms <= 0)
        p->timeout_ms = 1000;
    if (p->failure_threshold <= 0)
        p->failure_threshold = 3;
    if (p->success_threshold <= 0)
        p->success_threshold = 1;
    if (p->initial_delay_ms < 0)
        p->initial_delay_ms = 0;
}

static int copy_probe(const struct kf_probe *in, struct kf_probe *out, const char *what,
                      struct kf_strbuf *err)
{
    memset(out, 0, sizeof(*out));
    if (in->type == KF_PROBE_NONE)
        return 0;
    if (in->type != KF_PROBE_HTTP && in->type != KF_PROBE_TCP)
        return kf_err(err, -EINVAL, "%s probe: unknown type %d", what, (int)in->type);
    if (in->port <= 0 || in->port > 65535)
        return kf_err(err, -EINVAL, "%s probe: port %d is out of range", what, in->port);
    if (in->https && in->type != KF_PROBE_HTTP)
        return kf_err(err, -EINVAL, "%s probe: https needs an HTTP probe", what);
    *out = *in;
    out->host = kf_xstrdup(in->host ? in->host : "127.0.0.1");
    out->path = kf_xstrdup(in->path ? in->path : "/");
    out->ca_file = dup_or_null(in->ca_file);
    out->cert_file = dup_or_null(in->cert_file);
    out->key_file = dup_or_null(in->key_file);
    probe_defaults(out);
    return 0;
}

static bool probe_equal(const struct kf_probe *a, const struct kf_probe *b)
{
    return a->type == b->type && a->port == b->port && a->https == b->https &&
           kf_streq(a->host, b->host) && kf_streq(a->path, b->path) &&
           kf_streq(a->ca_file, b->ca_file) && kf_streq(a->cert_file, b->cert_file) &&
           kf_streq(a->key_file, b->key_file) && a->initial_delay_ms == b->initial_delay_ms &&
           a->period_ms == b->period_ms && a->timeout_ms == b->timeout_ms &&
           a->failure_threshold == b->failure_threshold &&
           a->success_threshold == b->success_threshold;
}

static int copy_common(const char *name, const char *const *argv, const char *const *env,
                       struct rspec *s, struct kf_strbuf *err)
{
    int ret;

    if (!kf_runner_name_valid(name))
        return kf_err(err, -EINVAL,
                      "name \"%s\" must be 1..%d characters of [A-Za-z0-9._-], not starting "
                      "with '.'",
                      name ? name : "", KF_RUNNER_NAME_MAX);
    ret = copy_strv(argv, KF_RUNNER_ARGV_MAX, true, "argv", &s->argv, &s->argc, err);
    if (ret < 0)
        return ret;
    if (!s->argv[0][0])
        return kf_err(err, -EINVAL, "argv[0] is empty");
    ret = copy_strv(env, KF_RUNNER_ENV_MAX, false, "env", &s->env, &s->envc, err);
    if (ret < 0)
        return ret;
    for (size_t i = 0; i < s->envc; i++)
        if (!strchr(s->env[i], '=') || s->env[i][0] == '=')
            return kf_err(err, -EINVAL, "env[%zu] \"%s\" is not KEY=VALUE", i, s->env[i]);
    return 0;
}

static int spec_from_member(const struct kf_proc_spec *in, struct rspec *s, struct kf_strbuf *err)
{
    int ret;

    memset(s, 0, sizeof(*s));
    ret = copy_common(in->name, in->argv, in->env, s, err);
    if (ret < 0)
        goto release_spec;
    if (!in->workdir || in->workdir[0] != '/') {
        ret = kf_err(err, -EINVAL, "member \"%s\": workdir must be an absolute path", in->name);
        goto release_spec;
    }
    if (in->log_file && in->log_file[0] != '/') {
        ret = kf_err(err, -EINVAL, "member \"%s\": log_file must be an absolute path", in->name);
        goto release_spec;
    }
    if (in->cpu_millis < 0 || in->memory_bytes < 0 || in->stop_grace_ms < 0) {
        ret = kf_err(err, -EINVAL, "member \"%s\": negative limit", in->name);
        goto release_spec;
    }
    s->workdir = kf_xstrdup(in->workdir);
    s->log_file = dup_or_null(in->log_file);
    s->cpu_millis = in->cpu_millis;
    s->memory_bytes = in->memory_bytes;
    s->stop_grace_ms = in->stop_grace_ms;
    ret = copy_probe(&in->liveness, &s->probe[PROBE_LIVENESS], "liveness", err);
    if (ret < 0)
        goto release_spec;
    ret = copy_probe(&in->readiness, &s->probe[PROBE_READINESS], "readiness", err);
    if (ret < 0)
        goto release_spec;
    return 0;
release_spec:
    kf_runner_rspec_release(s);
    return ret;
}

static int spec_from_task(const struct kf_task_spec *in, struct rspec *s, struct kf_strbuf *err)
{
    int ret;

    memset(s, 0, sizeof(*s));
    ret = copy_common(in->id, in->argv, in->env, s, err);
    if (ret < 0)
        goto release_spec;
    if (in->workdir && in->workdir[0] != '/') {
        ret = kf_err(err, -EINVAL, "task \"%s\": workdir must be an absolute path", in->id);
        goto release_spec;
    }
    if (in->timeout_ms < 0 || in->restart_limit < 0 || in->cpu_millis < 0 || in->memory_bytes < 0 ||
        in->stop_grace_ms < 0) {
        ret = kf_err(err, -EINVAL, "task \"%s\": negative timeout, limit or grace", in->id);
        goto release_spec;
    }
    if (in->restart_policy != KF_RESTART_NEVER && in->restart_policy != KF_RESTART_ON_FAILURE) {
        ret = kf_err(err, -EINVAL, "task \"%s\": restartPolicy must be Never or OnFailure", in->id);
        goto release_spec;
    }
    if (in->output_cap > KF_RUNNER_OUTPUT_CAP_MAX) {
        ret = kf_err(err, -EINVAL, "task \"%s\": output cap %zu is above %d", in->id,
                     in->output_cap, KF_RUNNER_OUTPUT_CAP_MAX);
        goto release_spec;
    }
    s->workdir = dup_or_null(in->workdir);
    s->timeout_ms = in->timeout_ms;
    s->restart_policy = in->restart_policy;
    s->restart_limit = in->restart_limit;
    s->output_cap = in->output_cap ? in->output_cap : KF_RUNNER_OUTPUT_CAP_DEF;
    s->cpu_millis = in->cpu_millis;
    s->memory_bytes = in->memory_bytes;
    s->stop_grace_ms = in->stop_grace_ms;
    return 0;
release_spec:
    kf_runner_rspec_release(s);
    return ret;
}

/* The identity of what runs: argv, env, workdir and log file. A change of
 * any of them restarts a member; probes, limits and grace apply in place. */
void kf_runner_core_hash_spec(const struct rspec *s, char out[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    kf_assert(ctx);
#define HASH_STR(tag, str)                      \
    do {                                        \
        const char *s_ = (str) ? (str) : "";    \
        uint64_t l_ = strlen(s_);               \
        EVP_DigestUpdate(ctx, tag, 1);          \
        EVP_DigestUpdate(ctx, &l_, sizeof(l_)); \
        EVP_DigestUpdate(ctx, s_, l_);          \
    } while (0)
    kf_assert(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
    for (size_t i = 0; i < s->argc; i++)
        HASH_STR("a", s->argv[i]);
    for (size_t i = 0; i < s->envc; i++)
        HASH_STR("e", s->env[i]);
    HASH_STR("w", s->workdir);
    HASH_STR("l", s->log_file);
#undef HASH_STR
    kf_assert(EVP_DigestFinal_ex(ctx, md, &mdlen) == 1);
    EVP_MD_CTX_free(ctx);
    for (unsigned int i = 0; i < 32 && i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

/* --- records and events ------------------------------------------------------------- */

struct rproc *kf_runner_core_find(struct kf_runner *r, const char *name)
{
    for (size_t i = 0; i < r->n_procs; i++)
        if (!strcmp(r->procs[i]->name, name))
            return r->procs[i];
    return NULL;
}

struct rproc *kf_runner_core_find_id(struct kf_runner *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_procs; i++)
        if (r->procs[i]->id == id)
            return r->procs[i];
    return NULL;
}

struct rproc *kf_runner_core_add(struct kf_runner *r, const char *name, enum rproc_kind kind)
{
    struct rproc *p = kf_xcalloc(1, sizeof(*p));

    p->id = ++r->next_id;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->kind = kind;
    p->phase = KF_PROC_PENDING;
    p->backoff_ms = r->backoff_initial_ms;
    KF_GROW(r->procs, r->alloc_procs, r->n_procs + 1);
    r->procs[r->n_procs++] = p;
    return p;
}

static void proc_destroy(struct kf_runner *r, struct rproc *p)
{
    for (size_t i = 0; i < r->n_procs; i++)
        if (r->procs[i] == p) {
            memmove(&r->procs[i], &r->procs[i + 1], (r->n_procs - i - 1) * sizeof(*r->procs));
            r->n_procs--;
            break;
        }
    r->be->release(r, p);
    kf_runner_rspec_release(&p->spec);
    free(p);
}

static void status_fill(const struct rproc *p, struct kf_proc_status *st)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", p->name);
    st->is_task = p->kind == RPROC_TASK;
    st->claimed = p->claimed;
    st->phase = p->phase;
    st->ready = p->ready;
    st->pid = p->running ? p->pid : 0;
    st->restarts = p->restarts;
    st->adopted = p->adopted && p->running;
    st->started_at_ms = p->running ? p->started_at_ms : 0;
    st->backoff_ms = p->phase == KF_PROC_BACKOFF ? p->shown_backoff : 0;
    st->last_exit = p->last_exit;
    snprintf(st->message, sizeof(st->message), "%s", p->message);
}

static void emit_status(struct kf_runner *r, enum kf_runner_event_type type,
                        const struct kf_proc_status *st)
{
    struct kf_runner_event *ev;

    if (r->ev_count == r->ev_alloc && r->ev_alloc < r->event_queue_max) {
        /* Grow (in order) rather than reserve the maximum up front: a
         * simulated agent holds one runner per virtual host. */
        size_t nalloc = KF_MIN(KF_MAX(r->ev_alloc * 2, (size_t)8), r->event_queue_max);
        struct kf_runner_event *v = kf_xcalloc(nalloc, sizeof(*v));
        for (size_t i = 0; i < r->ev_count; i++)
            v[i] = r->events[(r->ev_head + i) % r->ev_alloc];
        free(r->events);
        r->events = v;
        r->ev_alloc = nalloc;
        r->ev_head = 0;
    }
    if (r->ev_count == r->ev_alloc) {
        /* Drop the oldest: the agent resyncs from kf_runner_list(). */
        r->ev_head = (r->ev_head + 1) % r->ev_alloc;
        r->ev_count--;
        r->ev_lost++;
    }
    ev = &r->events[(r->ev_head + r->ev_count) % r->ev_alloc];
    ev->type = type;
    ev->lost = r->ev_lost;
    r->ev_lost = 0;
    ev->status = *st;
    r->ev_count++;
    pthread_cond_broadcast(&r->cond);
    r->be->notify(r);
}

static void emit(struct kf_runner *r, struct rproc *p)
{
    struct kf_proc_status st;

    status_fill(p, &st);
    emit_status(r, KF_RUNNER_EV_STATUS, &st);
}

static void set_message(struct rproc *p, const char *fmt, ...) KF_PRINTF(2, 3);
static void set_message(struct rproc *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->message, sizeof(p->message), fmt, ap);
    va_end(ap);
}

static int grace_ms(const struct kf_runner *r, const struct rproc *p)
{
    return p->spec.stop_grace_ms > 0 ? p->spec.stop_grace_ms : r->stop_grace_ms;
}

static bool has_readiness(const struct rproc *p)
{
    return p->spec.probe[PROBE_READINESS].type != KF_PROBE_NONE || p->implicit_readiness;
}

static void probes_reset(struct rproc *p, int64_t since)
{
    for (int w = 0; w < 2; w++) {
        memset(&p->probe[w], 0, sizeof(p->probe[w]));
        p->probe[w].next_due = since + p->spec.probe[w].initial_delay_ms;
    }
}

/* Sends SIGTERM to the group and arms the SIGKILL; `why` becomes the
 * message and is remembered for the exit. */
static void begin_stop(struct kf_runner *r, struct rproc *p, int64_t now, const char *why)
{
    if (!p->running || p->stopping)
        return;
    p->stopping = true;
    snprintf(p->kill_reason, sizeof(p->kill_reason), "%s", why);
    r->be->kill(r, p, SIGTERM);
    p->kill_at = now + grace_ms(r, p);
    p->ready = false;
    if (p->phase == KF_PROC_READY || p->phase == KF_PROC_STARTING)
        p->phase = KF_PROC_RUNNING;
    set_message(p, "%s; stopping (SIGTERM, SIGKILL after %d ms)", why, grace_ms(r, p));
    emit(r, p);
}

/* --- tasks ----------------------------------------------------------------------------- */

static struct pending_result *find_result(struct kf_runner *r, const char *id)
{
    for (size_t i = 0; i < r->n_results; i++)
        if (!strcmp(r->results[i].res.id, id))
            return &r->results[i];
    return NULL;
}

void kf_runner_core_add_result(struct kf_runner *r, struct kf_task_result *res)
{
    /* One pending result per id: a task that ended while no runner watched
     * is finished while its state is loaded, which writes its result file,
     * and the result files are loaded after the states. */
    if (find_result(r, res->id)) {
        kf_task_result_release(res);
        memset(res, 0, sizeof(*res));
        return;
    }
    KF_GROW(r->results, r->alloc_results, r->n_results + 1);
    r->results[r->n_results++].res = *res;
    memset(res, 0, sizeof(*res));
}

/* The task is over: its result is persisted, queued and announced, and the
 * record goes. */
static void task_finish(struct kf_runner *r, struct rproc *p, bool succeeded, const char *msg)
{
    struct kf_task_result res;
    struct kf_proc_status st;

    memset(&res, 0, sizeof(res));
    snprintf(res.id, sizeof(res.id), "%s", p->name);
    res.succeeded = succeeded;
    res.timed_out = p->timed_out;
    res.cancelled = p->cancelled;
    res.attempts = p->attempts;
    res.exit = p->last_exit;
    res.start_ms = p->first_start_ms;
    res.end_ms = p->last_exit.valid && p->last_exit.time_ms ? p->last_exit.time_ms : kf_now_ms();
    snprintf(res.message, sizeof(res.message), "%s", msg);
    r->be->collect_output(r, p, p->spec.output_cap, &res.output, &res.output_len,
                          &res.output_dropped);
    if (r->be->save_result(r, &res) < 0) {
        size_t l = strlen(res.message);
        snprintf(res.message + l, sizeof(res.message) - l,
                 " (the result could not be saved: it is lost if the agent restarts)");
    }
    p->phase = KF_PROC_STOPPED;
    p->ready = false;
    snprintf(p->message, sizeof(p->message), "%s", res.message);
    status_fill(p, &st);
    kf_runner_core_add_result(r, &res);
    emit_status(r, KF_RUNNER_EV_TASK_DONE, &st);
    r->be->forget(r, p);
    proc_destroy(r, p);
}

static void task_exited(struct kf_runner *r, struct rproc *p, int64_t now)
{
    char exs[128];
    bool ok = p->last_exit.valid && !p->last_exit.signaled && p->last_exit.code == 0;

    kf_proc_exit_format(&p->last_exit, exs, sizeof(exs));
    if (p->cancelled || p->desire == WANT_REMOVE) {
        p->cancelled = true;
        char msg[256];
        snprintf(msg, sizeof(msg), "cancelled; ended with %s", exs);
        task_finish(r, p, false, msg);
    } else if (p->timed_out) {
        char msg[256];
        snprintf(msg, sizeof(msg), "timed out after %" PRId64 " ms; ended with %s",
                 p->spec.timeout_ms, exs);
        task_finish(r, p, false, msg);
    } else if (ok) {
        task_finish(r, p, true, "succeeded");
    } else if (p->spec.restart_policy == KF_RESTART_ON_FAILURE &&
               p->restarts < p->spec.restart_limit) {
        int64_t delay = p->backoff_ms;
        p->backoff_ms = KF_MIN(p->backoff_ms * 2, r->backoff_max_ms);
        p->phase = KF_PROC_BACKOFF;
        p->shown_backoff = delay;
        p->restart_at = now + delay;
        p->count_restart = true;
        set_message(p, "attempt %d failed with %s; restarting in %" PRId64 " ms (restart %d of %d)",
                    p->attempts, exs, delay, p->restarts + 1, p->spec.restart_limit);
        r->be->persist(r, p);
        emit(r, p);
    } else {
        char msg[256];
        if (p->spec.restart_policy == KF_RESTART_ON_FAILURE)
            snprintf(msg, sizeof(msg), "failed with %s after %d attempts (restart limit %d)", exs,
                     p->attempts, p->spec.restart_limit);
        else
            snprintf(msg, sizeof(msg), "failed with %s", exs);
        task_finish(r, p, false, msg);
    }
}

static int64_t task_deadline_wall(const struct rproc *p)
{
    if (p->kind != RPROC_TASK || p->spec.timeout_ms <= 0 || !p->first_start_ms)
        return INT64_MAX;
    return p->first_start_ms + p->spec.timeout_ms;
}

/* --- the state machine ------------------------------------------------------------------ */

/* Starts p; false when p went away (a task that cannot start ends). */
static bool start_proc(struct kf_runner *r, struct rproc *p, int64_t now)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    enum kf_proc_phase old_phase = p->phase;
    char old_msg[KF_RUNNER_MSG_MAX];
    bool alive = true;
    int64_t delay;
    int ret;

    snprintf(old_msg, sizeof(old_msg), "%s", p->message);
    int64_t wall_start = kf_now_ms(); /* before: a quick process may end before spawn returns */

    p->restart_at = 0;
    p->implicit_readiness = false;
    ret = r->be->spawn(r, p, &err);
    if (ret == 0) {
        p->running = true;
        p->adopted = false;
        p->stopping = false;
        p->kill_at = 0;
        p->kill_reason[0] = '\0';
        p->gen = ++r->next_gen;
        p->running_since = now;
        p->started_at_ms = wall_start;
        if (p->count_restart)
            p->restarts++;
        p->count_restart = false;
        probes_reset(p, now);
        if (p->kind == RPROC_TASK) {
            p->attempts++;
            if (!p->first_start_ms)
                p->first_start_ms = p->started_at_ms;
            p->phase = KF_PROC_RUNNING;
            p->ready = false;
            set_message(p, "attempt %d started (pid %d)", p->attempts, p->pid);
        } else if (has_readiness(p)) {
            p->phase = KF_PROC_STARTING;
            p->ready = false;
            set_message(p, "started (pid %d); waiting for readiness", p->pid);
        } else {
            p->phase = KF_PROC_READY;
            p->ready = true;
            set_message(p, "started (pid %d)", p->pid);
        }
        r->be->persist(r, p);
        emit(r, p);
        goto release_err;
    }

    if (p->kind == RPROC_TASK) {
        char msg[KF_RUNNER_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s%s",
                 ret == -ENOENT ? "binary not installed: " : "cannot start: ", err.buf);
        p->last_exit.valid = false;
        task_finish(r, p, false, msg);
        alive = false;
        goto release_err;
    }
    p->phase = ret == -ENOENT ? KF_PROC_BINARY_NOT_INSTALLED : KF_PROC_FAILED;
    p->ready = false;
    if (p->phase == KF_PROC_BINARY_NOT_INSTALLED) {
        /* Not a crash loop: look again slowly (no fork), and say so only
         * when it changes. */
        delay = r->backoff_max_ms;
    } else {
        /* A set-up or exec error may pass (fork: ENOMEM, a directory that
         * appears): try again with the back-off of a crash. */
        delay = p->backoff_ms;
        p->backoff_ms = KF_MIN(p->backoff_ms * 2, r->backoff_max_ms);
    }
    snprintf(p->message, sizeof(p->message), "%s; trying again in %" PRId64 " ms", err.buf, delay);
    p->restart_at = now + delay;
    if (old_phase != p->phase || strcmp(old_msg, p->message))
        emit(r, p);
release_err:
    kf_strbuf_release(&err);
    return alive;
}

void kf_runner_core_proc_exited(struct kf_runner *r, struct rproc *p, const struct kf_proc_exit *ex)
{
    int64_t now = kf_mono_ms();
    char exs[128];

    p->running = false;
    p->ready = false;
    p->stopping = false;
    p->kill_at = 0;
    p->gen = ++r->next_gen; /* outstanding probe results are stale now */
    p->last_exit = *ex;
    kf_proc_exit_format(ex, exs, sizeof(exs));

    if (p->kind == RPROC_TASK) {
        task_exited(r, p, now);
        return;
    }
    switch (p->desire) {
    case WANT_REMOVE: {
        struct kf_proc_status st;
        p->phase = KF_PROC_STOPPED;
        set_message(p, "stopped and removed; ended with %s", exs);
        status_fill(p, &st);
        st.removed = true;
        emit_status(r, KF_RUNNER_EV_STATUS, &st);
        r->be->forget(r, p);
        proc_destroy(r, p);
        return;
    }
    case WANT_STOP:
    case WANT_IDLE:
        p->phase = KF_PROC_STOPPED;
        if (p->desire == WANT_STOP)
            set_message(p, "stopped; ended with %s", exs);
        else
            set_message(p, "exited with %s while not claimed", exs);
        break;
    case WANT_RUN:
        if (p->respawn_now) {
            p->respawn_now = false;
            p->phase = KF_PROC_PENDING;
            p->restart_at = now;
            set_message(p, "%s%sended with %s; starting again", p->kill_reason,
                        p->kill_reason[0] ? "; " : "", exs);
            break;
        }
        if (now - p->running_since >= r->backoff_reset_ms)
            p->backoff_ms = r->backoff_initial_ms;
        p->shown_backoff = p->backoff_ms;
        p->backoff_ms = KF_MIN(p->backoff_ms * 2, r->backoff_max_ms);
        p->phase = KF_PROC_BACKOFF;
        p->restart_at = now + p->shown_backoff;
        p->count_restart = true;
        set_message(p, "%s%sexited with %s; restarting in %" PRId64 " ms", p->kill_reason,
                    p->kill_reason[0] ? "; " : "", exs, p->shown_backoff);
        break;
    }
    p->kill_reason[0] = '\0';
    r->be->persist(r, p);
    emit(r, p);
}

void kf_runner_core_probe_result(struct kf_runner *r, uint64_t gen, enum probe_which which, bool ok,
                                 const char *detail)
{
    struct rproc *p = NULL;
    struct probe_state *ps;
    int succ_th = 1, fail_th = 1;
    enum probe_verdict old;

    for (size_t i = 0; i < r->n_procs; i++)
        if (r->procs[i]->gen == gen) {
            p = r->procs[i];
            break;
        }
    if (!p || !p->running || p->stopping)
        return;
    ps = &p->probe[which];
    ps->in_flight = false;
    if (p->spec.probe[which].type != KF_PROBE_NONE) {
        succ_th = p->spec.probe[which].success_threshold;
        fail_th = p->spec.probe[which].failure_threshold;
    }
    old = ps->verdict;
    if (ok) {
        ps->failures = 0;
        if (++ps->successes >= succ_th)
            ps->verdict = VERDICT_OK;
    } else {
        ps->successes = 0;
        if (++ps->failures >= fail_th)
            ps->verdict = VERDICT_FAIL;
    }
    if (ps->verdict == old)
        return;

    if (which == PROBE_LIVENESS) {
        if (ps->verdict == VERDICT_FAIL) {
            char why[256];
            snprintf(why, sizeof(why), "liveness probe failed %d times: %s", ps->failures,
                     detail ? detail : "");
            begin_stop(r, p, kf_mono_ms(), why);
        }
        return;
    }
    p->ready = ps->verdict == VERDICT_OK;
    p->phase = p->ready ? KF_PROC_READY : KF_PROC_RUNNING;
    if (p->ready)
        set_message(p, "ready (pid %d)", p->pid);
    else
        set_message(p, "not ready: readiness probe failed %d times: %s", ps->failures,
                    detail ? detail : "");
    emit(r, p);
}

/* One record's timers; false when the record went away (a task ended). */
static bool run_one(struct kf_runner *r, struct rproc *p, int64_t now, int64_t wall, int64_t *next)
{
    int64_t dl = task_deadline_wall(p);

    if (!p->running && p->desire == WANT_RUN && p->restart_at) {
        if (p->kind == RPROC_TASK && dl != INT64_MAX && wall >= dl) {
            char msg[128];
            p->timed_out = true;
            snprintf(msg, sizeof(msg), "timed out after %" PRId64 " ms, waiting to restart",
                     p->spec.timeout_ms);
            task_finish(r, p, false, msg);
            return false;
        }
        if (now >= p->restart_at && !start_proc(r, p, now))
            return false;
    }
    if (!p->running) {
        if (p->desire == WANT_RUN && p->restart_at) {
            *next = KF_MIN(*next, p->restart_at);
            if (dl != INT64_MAX)
                *next = KF_MIN(*next, now + (dl - wall));
        }
        return true;
    }
    if (p->kill_at && now >= p->kill_at) {
        r->be->kill(r, p, SIGKILL);
        p->kill_at = 0;
        set_message(p, "%s%sdid not stop within %d ms: SIGKILL sent", p->kill_reason,
                    p->kill_reason[0] ? "; " : "", grace_ms(r, p));
        emit(r, p);
    }
    if (dl != INT64_MAX && !p->timed_out && wall >= dl) {
        char why[128];
        p->timed_out = true;
        snprintf(why, sizeof(why), "timed out after %" PRId64 " ms", p->spec.timeout_ms);
        begin_stop(r, p, now, why);
    }
    if (p->kill_at)
        *next = KF_MIN(*next, p->kill_at);
    if (dl != INT64_MAX && !p->timed_out)
        *next = KF_MIN(*next, now + (dl - wall));
    for (int w = 0; w < 2 && !p->stopping && p->claimed; w++) {
        struct probe_state *ps = &p->probe[w];
        if (p->spec.probe[w].type == KF_PROBE_NONE || ps->in_flight)
            continue;
        if (now >= ps->next_due) {
            ps->in_flight = true;
            ps->next_due = now + p->spec.probe[w].period_ms;
            r->be->probe(r, p, (enum probe_which)w, p->gen);
            continue;
        }
        *next = KF_MIN(*next, ps->next_due);
    }
    return true;
}

int64_t kf_runner_core_run(struct kf_runner *r, int64_t now)
{
    int64_t next = INT64_MAX;
    int64_t wall = kf_now_ms();

    r->be->poll(r, now);
    for (size_t i = 0; i < r->n_procs;)
        if (run_one(r, r->procs[i], now, wall, &next))
            i++;
    return KF_MIN(next, r->be->next_deadline(r));
}

/* --- public API -------------------------------------------------------------------------- */

static void lock(struct kf_runner *r)
{
    pthread_mutex_lock(&r->lock);
}

static void unlock(struct kf_runner *r)
{
    pthread_mutex_unlock(&r->lock);
}

/* The simulated backend advances when called. */
static void drive(struct kf_runner *r)
{
    if (!r->be->self_driven)
        kf_runner_core_run(r, kf_mono_ms());
}

static char **copy_names(const char *const *in)
{
    size_t n = 0;
    char **v;

    while (in && in[n])
        n++;
    v = kf_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = kf_xstrdup(in[i]);
    return v;
}

static void runner_free_fields(struct kf_runner *r)
{
    free(r->state_dir);
    free(r->log_dir);
    free(r->search_path);
    free(r->cgroup_parent);
    free(r->cgroup_problem);
    free(r->cgroup_base);
    free_strv(r->sim_missing);
    free(r->events);
    for (size_t i = 0; i < r->n_results; i++)
        kf_task_result_release(&r->results[i].res);
    free(r->results);
    free(r->procs);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
}

int kf_runner_new(const char *kind, const struct kf_runner_config *cfg, struct kf_runner **ret,
                  struct kf_strbuf *err)
{
    const struct runner_backend *be = NULL;
    struct kf_runner *r;
    pthread_condattr_t ca;
    int rc;

    for (size_t i = 0; i < KF_ARRAY_SIZE(backends); i++)
        if (kind && !strcmp(kind, backends[i].name))
            be = backends[i].be;
    if (!be)
        return kf_err(err, -EINVAL, "unknown runner \"%s\" (real or sim)", kind ? kind : "");
    if (cfg->backoff_initial_ms < 0 || cfg->backoff_max_ms < 0 || cfg->backoff_reset_ms < 0 ||
        cfg->stop_grace_ms < 0)
        return kf_err(err, -EINVAL, "negative back-off or grace period");
    if (cfg->state_dir && cfg->state_dir[0] != '/')
        return kf_err(err, -EINVAL, "state_dir \"%s\" must be an absolute path", cfg->state_dir);
    if (cfg->log_dir && cfg->log_dir[0] != '/')
        return kf_err(err, -EINVAL, "log_dir \"%s\" must be an absolute path", cfg->log_dir);

    r = kf_xcalloc(1, sizeof(*r));
    r->be = be;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    r->state_dir = dup_or_null(cfg->state_dir);
    r->log_dir = cfg->log_dir     ? kf_xstrdup(cfg->log_dir)
                 : cfg->state_dir ? kf_xasprintf("%s/logs", cfg->state_dir)
                                  : NULL;
    r->search_path = kf_xstrdup(
        cfg->search_path ? cfg->search_path
                         : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    r->backoff_initial_ms = cfg->backoff_initial_ms ? cfg->backoff_initial_ms : 1000;
    r->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 60000;
    if (r->backoff_max_ms < r->backoff_initial_ms)
        r->backoff_max_ms = r->backoff_initial_ms;
    r->backoff_reset_ms = cfg->backoff_reset_ms ? cfg->backoff_reset_ms : 10 * 60 * 1000;
    r->stop_grace_ms = cfg->stop_grace_ms ? cfg->stop_grace_ms : 10000;
    r->log_max_bytes = cfg->log_max_bytes ? cfg->log_max_bytes : 10 * 1024 * 1024;
    r->log_keep = cfg->log_keep == 0 ? 5 : cfg->log_keep < 0 ? 0 : cfg->log_keep;
    r->event_queue_max = cfg->event_queue_max ? cfg->event_queue_max : 4096;
    r->cgroup_parent = dup_or_null(cfg->cgroup_parent);
    r->sim_ready_delay_ms = cfg->sim_ready_delay_ms;
    r->sim_task_duration_ms = cfg->sim_task_duration_ms;
    r->sim_task_exit_code = cfg->sim_task_exit_code;
    r->sim_task_fail_ratio = cfg->sim_task_fail_ratio;
    r->sim_missing = copy_names(cfg->sim_missing_binaries);

    rc = be->init(r, err);
    if (rc < 0) {
        runner_free_fields(r);
        free(r);
        return rc;
    }
    *ret = r;
    return 0;
}

void kf_runner_free(struct kf_runner *r)
{
    if (!r)
        return;
    r->be->destroy(r);
    while (r->n_procs) {
        struct rproc *p = r->procs[r->n_procs - 1];
        r->n_procs--;
        r->be->release(r, p);
        kf_runner_rspec_release(&p->spec);
        free(p);
    }
    runner_free_fields(r);
    free(r);
}

const char *kf_runner_cgroup_problem(const struct kf_runner *r)
{
    return r->cgroup_problem;
}

/* Waits on r->cond until `deadline` (monotonic ms; INT64_MAX: forever) or
 * the next backend deadline; drives the simulated backend. */
static void wait_until(struct kf_runner *r, int64_t deadline)
{
    int64_t until = deadline;
    struct timespec ts;

    if (!r->be->self_driven) {
        int64_t next = kf_runner_core_run(r, kf_mono_ms());
        if (next <= kf_mono_ms())
            return; /* more is due now: let the caller look first */
        until = KF_MIN(until, next);
    }
    if (until == INT64_MAX) {
        pthread_cond_wait(&r->cond, &r->lock);
        return;
    }
    ts.tv_sec = until / 1000;
    ts.tv_nsec = (until % 1000) * 1000000;
    pthread_cond_timedwait(&r->cond, &r->lock, &ts);
}

static bool all_stopped(struct kf_runner *r)
{
    for (size_t i = 0; i < r->n_procs; i++)
        if (r->procs[i]->running)
            return false;
    return true;
}

int kf_runner_stop_all(struct kf_runner *r, int timeout_ms)
{
    int64_t end = kf_mono_ms() + timeout_ms;
    int64_t now = kf_mono_ms();
    int ret = 0;

    lock(r);
    for (size_t i = 0; i < r->n_procs; i++) {
        struct rproc *p = r->procs[i];
        if (p->kind == RPROC_TASK) {
            p->cancelled = true;
            p->desire = WANT_REMOVE;
        } else if (p->desire != WANT_REMOVE) {
            p->desire = WANT_STOP;
        }
        p->respawn_now = false;
        if (p->running) {
            begin_stop(r, p, now, "stopping everything");
        } else if (p->kind == RPROC_MEMBER && p->phase != KF_PROC_STOPPED) {
            p->phase = KF_PROC_STOPPED;
            p->restart_at = 0;
            set_message(p, "stopped");
            r->be->persist(r, p);
            emit(r, p);
        }
    }
    /* Tasks that were not running end as cancelled at once. */
    for (size_t i = 0; i < r->n_procs;) {
        struct rproc *p = r->procs[i];
        if (p->kind == RPROC_TASK && !p->running) {
            task_finish(r, p, false, "cancelled before it ran again");
            continue;
        }
        i++;
    }
    r->be->wake(r);
    for (;;) {
        drive(r);
        if (all_stopped(r))
            break;
        if (kf_mono_ms() >= end) {
            ret = -ETIMEDOUT;
            break;
        }
        wait_until(r, end);
    }
    unlock(r);
    return ret;
}

/* A member the runner has no record of: start it. Called locked. */
static void apply_new(struct kf_runner *r, const char *name, struct rspec *s, const char *hash,
                      int64_t now)
{
    struct rproc *p = kf_runner_core_add(r, name, RPROC_MEMBER);

    p->spec = *s;
    memcpy(p->hash, hash, sizeof(p->hash));
    p->claimed = true;
    p->desire = WANT_RUN;
    p->restart_at = now;
    set_message(p, "waiting to start");
    emit(r, p);
}

/* A record an earlier runner left, claimed now: adopt its process when the
 * spec is the same, else restart it. Called locked. */
static void apply_adopt(struct kf_runner *r, struct rproc *p, bool same, int64_t now)
{
    /* A record an earlier runner left. */
    p->desire = WANT_RUN;
    if (p->running && p->stopping) {
        p->respawn_now = true; /* a removal was under way: start again after it */
    } else if (p->running && same) {
        p->running_since = now;
        probes_reset(p, now);
        if (has_readiness(p)) {
            p->phase = KF_PROC_STARTING;
            p->ready = false;
        } else {
            p->phase = KF_PROC_READY;
            p->ready = true;
        }
        set_message(p, "adopted the running process (pid %d)", p->pid);
        r->be->persist(r, p);
        emit(r, p);
    } else if (p->running) {
        p->respawn_now = true;
        begin_stop(r, p, now, "the spec changed since the process was started");
    } else {
        char exs[128];

        kf_proc_exit_format(&p->last_exit, exs, sizeof(exs));
        p->count_restart = same;
        p->phase = KF_PROC_PENDING;
        p->restart_at = now;
        set_message(p, "was not running (last exit: %s); starting", exs);
        emit(r, p);
    }
}

/* A member this runner already runs, its spec replaced: converge on the new
 * limits, probes and desire, restarting when the spec changed. Called locked. */
static void apply_update(struct kf_runner *r, struct rproc *p, bool same, bool limits_changed,
                         bool probes_changed, int64_t now)
{
    if (p->running && limits_changed)
        r->be->update_limits(r, p);
    if (p->running && probes_changed) {
        probes_reset(p, now);
        if (has_readiness(p) && p->phase == KF_PROC_READY) {
            p->phase = KF_PROC_STARTING;
            p->ready = false;
            set_message(p, "probes changed; waiting for readiness");
            emit(r, p);
        } else if (!has_readiness(p) && !p->stopping && !p->ready) {
            p->phase = KF_PROC_READY;
            p->ready = true;
            set_message(p, "probes changed; ready (pid %d)", p->pid);
            emit(r, p);
        }
    }
    if (p->desire != WANT_RUN) {
        p->desire = WANT_RUN;
        if (p->running) {
            p->respawn_now = true; /* a stop is under way: start again after it */
        } else {
            p->phase = KF_PROC_PENDING;
            p->restart_at = now;
            set_message(p, "waiting to start");
            emit(r, p);
        }
    } else if (!same) {
        if (p->running) {
            p->respawn_now = true;
            begin_stop(r, p, now, "the spec changed");
        } else {
            p->restart_at = now;
        }
    }
}

int kf_runner_apply(struct kf_runner *r, const struct kf_proc_spec *spec, struct kf_strbuf *err)
{
    struct rspec s;
    struct rproc *p;
    char hash[65];
    int64_t now = kf_mono_ms();
    int ret;

    ret = spec_from_member(spec, &s, err);
    if (ret < 0)
        return ret;
    kf_runner_core_hash_spec(&s, hash);

    lock(r);
    p = kf_runner_core_find(r, spec->name);
    if (p && p->kind != RPROC_MEMBER) {
        unlock(r);
        kf_runner_rspec_release(&s);
        return kf_err(err, -EEXIST, "\"%s\" is a running task", spec->name);
    }
    if (!p) {
        apply_new(r, spec->name, &s, hash, now);
    } else {
        bool same = !strcmp(p->hash, hash);
        bool was_claimed = p->claimed;
        bool probes_changed = !probe_equal(&p->spec.probe[0], &s.probe[0]) ||
                              !probe_equal(&p->spec.probe[1], &s.probe[1]);
        bool limits_changed =
            p->spec.cpu_millis != s.cpu_millis || p->spec.memory_bytes != s.memory_bytes;

        kf_runner_rspec_release(&p->spec);
        p->spec = s;
        memcpy(p->hash, hash, sizeof(hash));
        p->claimed = true;
        if (!same) {
            p->restarts = 0;
            p->backoff_ms = r->backoff_initial_ms;
            p->count_restart = false;
        }
        if (!was_claimed)
            apply_adopt(r, p, same, now);
        else
            apply_update(r, p, same, limits_changed, probes_changed, now);
    }
    r->be->wake(r);
    unlock(r);
    return 0;
}

int kf_runner_stop(struct kf_runner *r, const char *name)
{
    struct rproc *p;

    lock(r);
    p = kf_runner_core_find(r, name);
    if (!p || p->kind != RPROC_MEMBER) {
        unlock(r);
        return -ENOENT;
    }
    if (p->desire != WANT_REMOVE)
        p->desire = WANT_STOP;
    p->respawn_now = false;
    p->restart_at = 0;
    if (p->running) {
        begin_stop(r, p, kf_mono_ms(), "stop requested");
    } else if (p->phase != KF_PROC_STOPPED) {
        p->phase = KF_PROC_STOPPED;
        set_message(p, "stopped");
        r->be->persist(r, p);
        emit(r, p);
    }
    r->be->wake(r);
    unlock(r);
    return 0;
}

int kf_runner_remove(struct kf_runner *r, const char *name)
{
    struct rproc *p;

    lock(r);
    p = kf_runner_core_find(r, name);
    if (!p || p->kind != RPROC_MEMBER) {
        unlock(r);
        return -ENOENT;
    }
    p->desire = WANT_REMOVE;
    p->respawn_now = false;
    p->restart_at = 0;
    if (p->running) {
        if (!p->stopping)
            begin_stop(r, p, kf_mono_ms(), "removal requested");
    } else {
        struct kf_proc_status st;
        p->phase = KF_PROC_STOPPED;
        set_message(p, "removed");
        status_fill(p, &st);
        st.removed = true;
        emit_status(r, KF_RUNNER_EV_STATUS, &st);
        r->be->forget(r, p);
        proc_destroy(r, p);
    }
    r->be->wake(r);
    unlock(r);
    return 0;
}

int kf_runner_signal(struct kf_runner *r, const char *name, int sig)
{
    struct rproc *p;
    int rc;

    if (sig <= 0 || sig >= NSIG)
        return -EINVAL;
    lock(r);
    p = kf_runner_core_find(r, name);
    if (!p || p->kind != RPROC_MEMBER)
        rc = -ENOENT;
    else if (!r->be->signal)
        rc = -EOPNOTSUPP;
    else if (!p->running || p->stopping)
        rc = -ESRCH;
    else
        rc = r->be->signal(r, p, sig);
    unlock(r);
    return rc;
}

int kf_runner_get(struct kf_runner *r, const char *name, struct kf_proc_status *ret)
{
    struct rproc *p;

    lock(r);
    drive(r);
    p = kf_runner_core_find(r, name);
    if (p)
        status_fill(p, ret);
    unlock(r);
    return p ? 0 : -ENOENT;
}

int kf_runner_list(struct kf_runner *r, struct kf_proc_status **ret)
{
    struct kf_proc_status *v;
    size_t n;

    lock(r);
    drive(r);
    n = r->n_procs;
    v = kf_xcalloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        status_fill(r->procs[i], &v[i]);
    unlock(r);
    *ret = v;
    return (int)n;
}

int kf_runner_usage(struct kf_runner *r, const char *name, struct kf_proc_usage *ret)
{
    struct rproc *p;
    int rc = -ENOENT;

    lock(r);
    p = kf_runner_core_find(r, name);
    if (p && p->running)
        rc = r->be->usage(r, p, ret);
    else if (p)
        rc = -ESRCH;
    unlock(r);
    return rc;
}

/* --- tasks (public) ---------------------------------------------------------------------- */

void kf_task_result_release(struct kf_task_result *res)
{
    if (!res)
        return;
    free(res->output);
    res->output = NULL;
    res->output_len = 0;
}

void kf_task_results_free(struct kf_task_result *res, size_t n)
{
    if (!res)
        return;
    for (size_t i = 0; i < n; i++)
        kf_task_result_release(&res[i]);
    free(res);
}

int kf_runner_task_start(struct kf_runner *r, const struct kf_task_spec *spec,
                         struct kf_strbuf *err)
{
    struct rspec s;
    struct rproc *p;
    int ret;

    ret = spec_from_task(spec, &s, err);
    if (ret < 0)
        return ret;
    lock(r);
    if (kf_runner_core_find(r, spec->id) || find_result(r, spec->id)) {
        unlock(r);
        kf_runner_rspec_release(&s);
        return kf_err(err, -EEXIST, "task \"%s\" is running or has a pending result", spec->id);
    }
    p = kf_runner_core_add(r, spec->id, RPROC_TASK);
    p->spec = s;
    kf_runner_core_hash_spec(&s, p->hash);
    p->claimed = true;
    p->desire = WANT_RUN;
    p->restart_at = kf_mono_ms();
    set_message(p, "waiting to start");
    r->be->persist(r, p);
    emit(r, p);
    r->be->wake(r);
    /* A simulated runner advances only when called: spawn the task now, so
     * that its time runs from here and not from whenever it is next asked
     * (which, for a task, is once its time is up: it took twice as long). */
    drive(r);
    unlock(r);
    return 0;
}

int kf_runner_task_cancel(struct kf_runner *r, const char *id)
{
    struct rproc *p;

    lock(r);
    p = kf_runner_core_find(r, id);
    if (!p || p->kind != RPROC_TASK) {
        unlock(r);
        return -ENOENT;
    }
    p->cancelled = true;
    p->desire = WANT_REMOVE;
    if (p->running)
        begin_stop(r, p, kf_mono_ms(), "cancel requested");
    else
        task_finish(r, p, false, "cancelled before it ran again");
    r->be->wake(r);
    unlock(r);
    return 0;
}

int kf_runner_task_results(struct kf_runner *r, struct kf_task_result **ret)
{
    struct kf_task_result *v;
    size_t n;

    lock(r);
    drive(r);
    n = r->n_results;
    v = kf_xcalloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = r->results[i].res;
        v[i].output = kf_xmemdup(r->results[i].res.output, r->results[i].res.output_len + 1);
    }
    unlock(r);
    *ret = v;
    return (int)n;
}

int kf_runner_task_ack(struct kf_runner *r, const char *id)
{
    struct pending_result *pr;

    lock(r);
    pr = find_result(r, id);
    if (!pr) {
        unlock(r);
        return -ENOENT;
    }
    r->be->drop_result(r, id);
    kf_task_result_release(&pr->res);
    size_t i = (size_t)(pr - r->results);
    memmove(&r->results[i], &r->results[i + 1], (r->n_results - i - 1) * sizeof(*r->results));
    r->n_results--;
    unlock(r);
    return 0;
}

/* --- events (public) --------------------------------------------------------------------- */

int kf_runner_next_event(struct kf_runner *r, int timeout_ms, struct kf_runner_event *ret)
{
    int64_t end = timeout_ms < 0 ? INT64_MAX : kf_mono_ms() + timeout_ms;
    int got = 0;

    lock(r);
    for (;;) {
        drive(r);
        if (r->ev_count) {
            *ret = r->events[r->ev_head];
            r->ev_head = (r->ev_head + 1) % r->ev_alloc;
            r->ev_count--;
            got = 1;
            break;
        }
        if (kf_mono_ms() >= end)
            break;
        wait_until(r, end);
    }
    if (!r->ev_count) {
        r->be->notify(r); /* with an empty queue: drains the eventfd */
        if (r->events) {
            /* Drained: give the memory back (a simulated agent holds one
             * runner per virtual host, mostly idle). */
            free(r->events);
            r->events = NULL;
            r->ev_alloc = 0;
            r->ev_head = 0;
        }
    }
    unlock(r);
    return got;
}

int kf_runner_event_fd(struct kf_runner *r)
{
    if (r->be != &kf_runner_backend_real)
        return -EOPNOTSUPP;
    return kf_runner_real_event_fd(r);
}
