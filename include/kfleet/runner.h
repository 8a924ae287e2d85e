/* runner.h: the agent's process runner.
 *
 * A runner supervises named processes for one host agent: long-running
 * members (the guest control-plane components a meta agent hosts: etcd,
 * kube-apiserver, ...) and one-shot tasks (what a BroadcastJob runs on a
 * host). It starts them with fork + execve of an explicit argv and
 * environment (never a shell), each in its own process group with its data
 * directory as working directory, captures stdout and stderr into rotated
 * log files, puts them into cgroup v2 limits where the kernel allows,
 * restarts members with exponential back-off, probes their health over HTTP
 * or TCP, and stops them gracefully (SIGTERM to the group, SIGKILL after a
 * grace period).
 *
 * Processes outlive the runner: kf_runner_free() leaves them running, and a
 * new runner on the same state directory adopts them (matching pid and
 * process start time, so a recycled pid is never mistaken for a member).
 * Task results are kept in the state directory until acknowledged, so each
 * result reaches the agent at least once and, through its task id, is
 * recorded exactly once.
 *
 * The runner is an ops table with two implementations, picked by name in
 * kf_runner_new(): "real" (fork, exec, files, threads) and "sim" (no fork,
 * no files, no threads: simulated processes that become ready after a
 * delay and fail when told, for `kfleet-agent --simulate N`). Both share the
 * state machine, the back-off, the events and the task bookkeeping.
 *
 * Threading: every function may be called from any thread. The real runner
 * works in two threads of its own (a supervisor and a prober); the
 * simulated one advances when it is called (kf_runner_next_event() and the
 * getters). No callback runs inside the runner: changes arrive through the
 * event queue (kf_runner_next_event, kf_runner_event_fd).
 *
 * docs/internals/agent.md has the states, transitions and the on-disk
 * layout.
 */
#ifndef KF_RUNNER_H
#define KF_RUNNER_H

#include <stdint.h>

#include "kfleet/base.h"

struct kf_strbuf;
struct kf_runner;

/* Names (member names and task ids) are file names in the state directory:
 * 1..KF_RUNNER_NAME_MAX characters of [A-Za-z0-9._-], not starting with '.'. */
#define KF_RUNNER_NAME_MAX 100
#define KF_RUNNER_MSG_MAX  512

/* Whether name is a valid member name or task id (the rule above). */
bool kf_runner_name_valid(const char *name);

/* Hard caps on what a spec may carry. */
#define KF_RUNNER_ARGV_MAX       1024
#define KF_RUNNER_ENV_MAX        1024
#define KF_RUNNER_OUTPUT_CAP_MAX (1024 * 1024)
#define KF_RUNNER_OUTPUT_CAP_DEF (16 * 1024)

enum kf_proc_phase {
    KF_PROC_PENDING,              /* wanted, not started yet */
    KF_PROC_STARTING,             /* running, readiness not decided yet */
    KF_PROC_RUNNING,              /* running, not ready (readiness failing, or stopping) */
    KF_PROC_READY,                /* running and ready */
    KF_PROC_BACKOFF,              /* exited; restarts after backoff_ms */
    KF_PROC_STOPPED,              /* stopped on request (or an unclaimed process that died) */
    KF_PROC_FAILED,               /* cannot be started (exec or setup error); retried slowly */
    KF_PROC_BINARY_NOT_INSTALLED, /* the binary is not there; checked again slowly */
};

/* "Pending", "Starting", ..., "BinaryNotInstalled": the API's spelling. */
const char *kf_proc_phase_name(enum kf_proc_phase phase);

enum kf_probe_type {
    KF_PROBE_NONE = 0,
    KF_PROBE_HTTP, /* GET; status 200..399 is healthy */
    KF_PROBE_TCP,  /* a TCP connect that succeeds is healthy */
};

/* A health probe. Zero fields take Kubernetes' defaults: period 10 s,
 * timeout 1 s, failure threshold 3, success threshold 1, no initial delay. */
struct kf_probe {
    enum kf_probe_type type;
    const char *host; /* NULL: 127.0.0.1 */
    int port;
    const char *path; /* HTTP; NULL: "/" */
    bool https;       /* HTTP over TLS, the server verified against ca_file */
    const char *ca_file;
    const char *cert_file; /* optional client certificate and key (etcd) */
    const char *key_file;
    int initial_delay_ms;
    int period_ms;
    int timeout_ms;
    int failure_threshold;
    int success_threshold;
};

/* A long-running member. Pointers are the caller's; kf_runner_apply()
 * copies what it keeps. */
struct kf_proc_spec {
    const char *name;
    /* NULL-terminated. argv[0] is an absolute path, or a bare name looked up
     * in the runner's search path (never $PATH). */
    const char *const *argv;
    /* NULL-terminated "KEY=VALUE" strings; NULL: an empty environment. The
     * runner's own environment is never inherited. */
    const char *const *env;
    const char *workdir;       /* the data directory, created 0700 if missing; required */
    const char *log_file;      /* NULL: <log_dir>/<name>.log */
    int64_t cpu_millis;        /* cgroup cpu.max in millicores; 0: no limit */
    int64_t memory_bytes;      /* cgroup memory.max; 0: no limit */
    struct kf_probe liveness;  /* failing -> the process is restarted */
    struct kf_probe readiness; /* decides `ready`; none: ready once running */
    int stop_grace_ms;         /* SIGTERM..SIGKILL; 0: the runner's default */
};

/* How a process ended. `valid` is false when nobody could see it (a process
 * that died while no runner and no keeper watched it). */
struct kf_proc_exit {
    bool valid;
    bool signaled; /* killed by `signal`; otherwise exited with `code` */
    int code;
    int signal;
    int64_t time_ms; /* wall clock, ms since the epoch; 0 if unknown */
};

/* Formats "exit code 3", "signal 9 (Killed)" or "unknown" into buf. */
void kf_proc_exit_format(const struct kf_proc_exit *ex, char *buf, size_t size);

struct kf_proc_status {
    char name[KF_RUNNER_NAME_MAX + 1];
    bool is_task;
    bool claimed; /* false: found in the state directory, not applied (yet) */
    enum kf_proc_phase phase;
    bool ready;
    int pid;               /* the member's process (its group id too); 0 when none */
    int restarts;          /* automatic restarts since the spec last changed */
    bool adopted;          /* the running process was started by an earlier runner */
    int64_t started_at_ms; /* when the current process started (wall clock) */
    int64_t backoff_ms;    /* in Backoff: the delay before the next start */
    struct kf_proc_exit last_exit;
    char message[KF_RUNNER_MSG_MAX]; /* what happened last, for a person */
    bool removed;                    /* the last event of a removed member */
};

/* Runs one probe now and waits for it (at most its timeout). Returns true
 * when healthy; what was seen ("HTTP 503", "Connection refused") goes to
 * detail when not NULL. Safe from any thread. */
bool kf_probe_check(const struct kf_probe *probe, struct kf_strbuf *detail);

/* struct kf_argv, the argv builder for specs, is in kfleet/base.h. */

/* --- runner ---------------------------------------------------------------- */

struct kf_runner_config {
    const char *state_dir; /* real runner: required; created 0700 */
    const char *log_dir;   /* NULL: <state_dir>/logs */
    const char
        *search_path; /* NULL: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin */
    int64_t backoff_initial_ms; /* 0: 1 s */
    int64_t backoff_max_ms;     /* 0: 60 s */
    int64_t backoff_reset_ms;   /* healthy run that resets the back-off; 0: 10 min */
    int stop_grace_ms;          /* 0: 10 s */
    uint64_t log_max_bytes;     /* rotate a member's log at this size; 0: 10 MiB */
    int log_keep;               /* rotated files kept (<log>.1 .. <log>.N); 0: 5; -1: none */
    /* NULL: detect (the agent's own cgroup, when it is delegated); "none":
     * never use cgroups; a path: a cgroup2 directory for the members. */
    const char *cgroup_parent;
    size_t event_queue_max; /* 0: 4096; older events are dropped (see `lost`) */
    /* The simulated runner only. */
    int64_t sim_ready_delay_ms;   /* a member is ready this long after its start */
    int64_t sim_task_duration_ms; /* a task runs this long */
    int sim_task_exit_code;       /* and exits with this code */
    /* ... except that this share of tasks (0..1) fails, with exit code 1
     * (or sim_task_exit_code when that is not 0); which ones follows from a
     * hash of the task id, so a run can be repeated. */
    double sim_task_fail_ratio;
    const char *const *sim_missing_binaries; /* NULL-terminated basenames reported as
                                                BinaryNotInstalled */
};

/* Creates a runner of `kind` ("real" or "sim"). The real runner creates its
 * state and log directories, detects cgroups, loads what an earlier runner
 * left in the state directory (members: unclaimed until applied; tasks:
 * adopted and supervised again; task results: pending again) and starts its
 * threads. Returns 0, -EINVAL (unknown kind, bad config), -EBUSY (another
 * runner holds the state directory) or -errno (the state directory); detail
 * in err. */
int kf_runner_new(const char *kind, const struct kf_runner_config *cfg, struct kf_runner **ret,
                  struct kf_strbuf *err);

/* Stops the runner's threads and frees it. Processes keep running (a new
 * runner adopts them); use kf_runner_stop_all() first to stop them. NULL is
 * fine. */
void kf_runner_free(struct kf_runner *r);

/* Stops every member and task (SIGTERM, SIGKILL after each grace period)
 * and waits until all are gone or `timeout_ms` passed. Members stay known,
 * in phase Stopped; running tasks end as cancelled. Returns 0 or
 * -ETIMEDOUT. */
int kf_runner_stop_all(struct kf_runner *r, int timeout_ms);

/* NULL when members get cgroup limits, otherwise why not ("cgroups
 * unavailable: ..."), for the agent to report once. The string lives as
 * long as the runner. */
const char *kf_runner_cgroup_problem(const struct kf_runner *r);

/* --- members ---------------------------------------------------------------- */

/* Wants the member `spec->name` running with `spec`. New name: adopts the
 * process an earlier runner left if its pid, start time and spec match,
 * restarts it if the spec (argv, env, workdir) differs, starts it if it is
 * gone. Known name: a changed argv/env/workdir restarts it (restarts reset
 * to 0); other changes (probes, limits, grace) apply in place; a stopped
 * member starts again. Returns 0, -EINVAL (bad spec, detail in err). The
 * start itself is asynchronous: watch the events. */
int kf_runner_apply(struct kf_runner *r, const struct kf_proc_spec *spec, struct kf_strbuf *err);

/* Stops the member (SIGTERM to its group, SIGKILL after the grace period)
 * and keeps it known in phase Stopped. Returns 0 or -ENOENT. */
int kf_runner_stop(struct kf_runner *r, const char *name);

/* Stops the member and forgets it once it is gone: its state file goes, its
 * logs and data directory stay (the caller owns those). Works on unclaimed
 * members too. The last event has `removed` set. Returns 0 or -ENOENT. */
int kf_runner_remove(struct kf_runner *r, const char *name);

/* Sends sig to the member's main process (not its group: a reload signal
 * such as HAProxy's SIGUSR2 is for the master, not for what it forked),
 * after checking that the pid still has the start time recorded when it
 * was started or adopted, so a recycled pid is never hit. Returns 0,
 * -ENOENT (no such member), -ESRCH (no process runs, or it is being
 * stopped), -EINVAL (not a signal), -EOPNOTSUPP (the simulated runner). */
int kf_runner_signal(struct kf_runner *r, const char *name, int sig);

/* The status of one member or running task. 0 or -ENOENT. */
int kf_runner_get(struct kf_runner *r, const char *name, struct kf_proc_status *ret);

/* Every member and running task, claimed or not. *ret is an array the
 * caller frees; returns the count. */
int kf_runner_list(struct kf_runner *r, struct kf_proc_status **ret);

/* Resource use of a running member or task: from its cgroup when it has
 * one, otherwise from /proc for its main process. */
struct kf_proc_usage {
    double cpu_seconds;
    uint64_t rss_bytes;
    bool from_cgroup;
};
int kf_runner_usage(struct kf_runner *r, const char *name, struct kf_proc_usage *ret);

/* --- one-shot tasks ------------------------------------------------------------ */

enum kf_restart_policy {
    KF_RESTART_NEVER = 0,
    KF_RESTART_ON_FAILURE, /* a failed attempt runs again, at most restart_limit times */
};

struct kf_task_spec {
    const char *id; /* unique among this runner's tasks and pending results */
    const char *const *argv;
    const char *const *env;
    const char *workdir; /* NULL: the task's directory in the state directory */
    /* Wall-clock limit from the first start, across restarts; on expiry the
     * group is stopped (SIGTERM, SIGKILL after the grace) and the task fails
     * as timed out. 0: none. */
    int64_t timeout_ms;
    enum kf_restart_policy restart_policy;
    int restart_limit;
    size_t output_cap; /* tail of stdout+stderr kept; 0: 16 KiB; at most 1 MiB */
    int64_t cpu_millis;
    int64_t memory_bytes;
    int stop_grace_ms;
};

struct kf_task_result {
    char id[KF_RUNNER_NAME_MAX + 1];
    bool succeeded; /* the last attempt exited 0 */
    bool timed_out;
    bool cancelled;
    int attempts;
    struct kf_proc_exit exit; /* of the last attempt */
    int64_t start_ms;         /* first start (wall clock) */
    int64_t end_ms;
    char *output; /* the last output_len bytes of stdout+stderr (NUL-terminated) */
    size_t output_len;
    uint64_t output_dropped; /* bytes before those, not kept */
    char message[KF_RUNNER_MSG_MAX];
};
void kf_task_result_release(struct kf_task_result *res);
void kf_task_results_free(struct kf_task_result *res, size_t n);

/* Starts a task. Returns 0, -EEXIST (the id is running or has a pending
 * result: starting it again would run it twice), -EINVAL. A missing binary
 * ends the task at once with a failed result that says so. */
int kf_runner_task_start(struct kf_runner *r, const struct kf_task_spec *spec,
                         struct kf_strbuf *err);

/* Stops a running task; its result says cancelled. 0 or -ENOENT. */
int kf_runner_task_cancel(struct kf_runner *r, const char *id);

/* Copies of every result not acknowledged yet, oldest first (including the
 * ones an earlier runner left). Returns the count; free with
 * kf_task_results_free(). */
int kf_runner_task_results(struct kf_runner *r, struct kf_task_result **ret);

/* Forgets a result for good (after the agent reported it). 0 or -ENOENT. */
int kf_runner_task_ack(struct kf_runner *r, const char *id);

/* --- events ----------------------------------------------------------------- */

enum kf_runner_event_type {
    KF_RUNNER_EV_STATUS,    /* a member or task changed: `status` */
    KF_RUNNER_EV_TASK_DONE, /* a task finished: its result is pending (status.name) */
};

struct kf_runner_event {
    enum kf_runner_event_type type;
    uint64_t lost; /* events dropped before this one (queue full): re-read the list */
    struct kf_proc_status status;
};

/* Takes the oldest event, waiting up to timeout_ms (0: do not wait, -1:
 * forever). Returns 1 with *ret set, or 0 when there was none. */
int kf_runner_next_event(struct kf_runner *r, int timeout_ms, struct kf_runner_event *ret);

/* A file descriptor that is readable while events are queued (an eventfd;
 * the runner drains it), for the agent's poll loop. -EOPNOTSUPP for the
 * simulated runner, which advances only when called. */
int kf_runner_event_fd(struct kf_runner *r);

/* --- simulated runner only ------------------------------------------------------ */

/* The simulated process `name` exits now with `exit_code` (members restart
 * with back-off like real ones). 0, -ENOENT, -EOPNOTSUPP (real runner). */
int kf_runner_sim_fail(struct kf_runner *r, const char *name, int exit_code);

/* Makes the simulated member's readiness answer `ready` from now on. */
int kf_runner_sim_set_ready(struct kf_runner *r, const char *name, bool ready);

#endif
