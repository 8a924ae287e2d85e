/* runner-internal.h: what the runner's files share and nobody else sees.
 *
 * The runner (runner.h) is one state machine (runner-core.c) on top of a
 * backend ops table: runner-real.c forks and execs through a keeper process
 * (runner-spawn.c), probes with libcurl (runner-probe.c), writes logs
 * (runner-log.c), state files (runner-state.c) and cgroups (runner-cgroup.c);
 * runner-sim.c simulates all of that in memory.
 *
 * Locking: one mutex per runner (r->lock) guards every field below. The
 * core functions (core_*) are called with it held, by the API, by the real
 * backend's threads, or by the simulated backend's poll. Backend ops are
 * called with it held as well and must not call back into the core
 * synchronously: a backend delivers exits and probe results later, from its
 * own thread (real) or from its poll op (sim).
 */
#ifndef KF_AGENT_INTERNAL_H
#define KF_AGENT_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>

#include "kfleet/runner.h"

struct kf_strbuf;

enum rproc_kind {
    RPROC_MEMBER,
    RPROC_TASK,
};

enum rproc_desire {
    WANT_RUN,    /* keep it running */
    WANT_STOP,   /* stopped, kept known */
    WANT_REMOVE, /* stop, then forget */
    WANT_IDLE,   /* unclaimed: watch it, never start it */
};

enum probe_which {
    PROBE_LIVENESS = 0,
    PROBE_READINESS = 1,
};

enum probe_verdict {
    VERDICT_UNKNOWN,
    VERDICT_OK,
    VERDICT_FAIL,
};

struct probe_state {
    bool in_flight;
    int64_t next_due; /* monotonic ms */
    int successes, failures;
    enum probe_verdict verdict;
};

/* The copied, owned form of kf_proc_spec and kf_task_spec. */
struct rspec {
    char **argv;
    size_t argc;
    char **env;
    size_t envc;
    char *workdir;
    char *log_file;
    int64_t cpu_millis, memory_bytes;
    struct kf_probe probe[2]; /* strings owned (see spec_copy_probe) */
    int stop_grace_ms;
    /* tasks */
    int64_t timeout_ms;
    enum kf_restart_policy restart_policy;
    int restart_limit;
    size_t output_cap;
};

struct rproc {
    uint64_t id; /* stable, unique in the runner (epoll keys) */
    char name[KF_RUNNER_NAME_MAX + 1];
    enum rproc_kind kind;
    bool claimed;
    struct rspec spec;
    char hash[65]; /* sha256 of argv, env and workdir */

    enum kf_proc_phase phase;
    bool ready;
    bool running; /* a process exists */
    bool adopted;
    int pid;
    uint64_t pid_start;
    int keeper_pid;
    uint64_t keeper_start;
    uint64_t gen; /* a new value for every start: stale probe results are dropped */
    int restarts;
    int64_t backoff_ms;    /* the delay the next crash waits */
    int64_t shown_backoff; /* the delay shown in Backoff */
    int64_t restart_at;    /* monotonic ms; 0: no start scheduled */
    bool count_restart;    /* the next start counts as a restart */
    int64_t running_since; /* monotonic ms */
    int64_t started_at_ms; /* wall clock */
    struct kf_proc_exit last_exit;
    char message[KF_RUNNER_MSG_MAX];
    enum rproc_desire desire;
    bool respawn_now;      /* killed for a spec change: start again at once */
    bool stopping;         /* SIGTERM sent */
    char kill_reason[256]; /* why the runner stopped it (liveness, spec change, timeout) */
    int64_t kill_at;       /* monotonic ms: SIGKILL then; 0: none */
    struct probe_state probe[2];
    bool implicit_readiness; /* sim: readiness arrives without a probe spec */

    /* tasks */
    int attempts;
    int64_t first_start_ms; /* wall */
    bool timed_out;
    bool cancelled;

    void *be; /* backend-private */
};

struct runner_backend;

struct pending_result {
    struct kf_task_result res;
};

struct kf_runner {
    const struct runner_backend *be;
    void *be_data;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* an event was queued */

    /* config, with defaults filled in and strings owned */
    char *state_dir;
    char *log_dir;
    char *search_path;
    int64_t backoff_initial_ms, backoff_max_ms, backoff_reset_ms;
    int stop_grace_ms;
    uint64_t log_max_bytes;
    int log_keep;
    size_t event_queue_max;
    int64_t sim_ready_delay_ms, sim_task_duration_ms;
    int sim_task_exit_code;
    double sim_task_fail_ratio;
    char **sim_missing;
    char *cgroup_parent;
    char *cgroup_problem; /* NULL: cgroups in use */
    char *cgroup_base;    /* where member cgroups go */

    struct rproc **procs;
    size_t n_procs, alloc_procs;
    uint64_t next_id;
    uint64_t next_gen;

    struct kf_runner_event *events; /* ring */
    size_t ev_head, ev_count, ev_alloc;
    uint64_t ev_lost;

    struct pending_result *results;
    size_t n_results, alloc_results;
};

/* The backend ops table. Every op but init and destroy is called with
 * r->lock held. */
struct runner_backend {
    const char *name;
    bool self_driven; /* runs kf_runner_core_run from its own thread */
    int (*init)(struct kf_runner *r, struct kf_strbuf *err);
    /* Tear down threads and fds; processes keep running. */
    void (*destroy)(struct kf_runner *r);
    /* Start p's process (spec in p->spec). 0: p->pid etc. set; -ENOENT:
     * binary missing; other: cannot start. Detail in err. */
    int (*spawn)(struct kf_runner *r, struct rproc *p, struct kf_strbuf *err);
    /* Signals p's process group. */
    void (*kill)(struct kf_runner *r, struct rproc *p, int sig);
    /* Signals p's main process only, if it is still the one started (pid
     * and start time): 0 or -ESRCH. NULL: not supported (sim). */
    int (*signal)(struct kf_runner *r, struct rproc *p, int sig);
    /* Runs probe `which` of p; the result comes back via kf_runner_core_probe_result
     * with `gen`. */
    void (*probe)(struct kf_runner *r, struct rproc *p, enum probe_which which, uint64_t gen);
    /* Delivers what is due (sim); checks unwatched processes (real). */
    void (*poll)(struct kf_runner *r, int64_t now);
    /* The earliest time poll has work; INT64_MAX: none. */
    int64_t (*next_deadline)(struct kf_runner *r);
    /* Persists p's record; removes it (and its private files). */
    void (*persist)(struct kf_runner *r, struct rproc *p);
    void (*forget)(struct kf_runner *r, struct rproc *p);
    /* Frees p->be. */
    void (*release)(struct kf_runner *r, struct rproc *p);
    /* The tail of a task's output; *ret_out is malloc'ed and NUL-terminated. */
    void (*collect_output)(struct kf_runner *r, struct rproc *p, size_t cap, char **ret_out,
                           size_t *ret_len, uint64_t *ret_dropped);
    int (*save_result)(struct kf_runner *r, const struct kf_task_result *res);
    void (*drop_result)(struct kf_runner *r, const char *id);
    /* Timers or queues changed: the backend's thread should look again. */
    void (*wake)(struct kf_runner *r);
    /* The event queue changed: make the event fd readable iff events are
     * queued. */
    void (*notify)(struct kf_runner *r);
    /* p's spec changed in place (limits): apply them to the running process. */
    void (*update_limits)(struct kf_runner *r, struct rproc *p);
    int (*usage)(struct kf_runner *r, struct rproc *p, struct kf_proc_usage *ret);
};

extern const struct runner_backend kf_runner_backend_real;
extern const struct runner_backend kf_runner_backend_sim;
int kf_runner_real_event_fd(struct kf_runner *r);

/* --- core (runner-core.c), r->lock held --------------------------------------- */

/* Processes everything due at `now`; returns the next monotonic deadline
 * (INT64_MAX: none). */
int64_t kf_runner_core_run(struct kf_runner *r, int64_t now);
/* p's process is gone. */
void kf_runner_core_proc_exited(struct kf_runner *r, struct rproc *p,
                                const struct kf_proc_exit *ex);
/* A probe finished. Stale results (gen) are ignored. */
void kf_runner_core_probe_result(struct kf_runner *r, uint64_t gen, enum probe_which which, bool ok,
                                 const char *detail);
struct rproc *kf_runner_core_find(struct kf_runner *r, const char *name);
struct rproc *kf_runner_core_find_id(struct kf_runner *r, uint64_t id);
/* A new, empty record added to r (the backends' loaders use it). */
struct rproc *kf_runner_core_add(struct kf_runner *r, const char *name, enum rproc_kind kind);
/* Hands a loaded result to the pending list (takes ownership of output). */
void kf_runner_core_add_result(struct kf_runner *r, struct kf_task_result *res);
void kf_runner_core_hash_spec(const struct rspec *s, char out[65]);
void kf_runner_rspec_release(struct rspec *s);

/* --- spawn (runner-spawn.c) ------------------------------------------------------- */

struct kf_spawn_req {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *workdir;
    const char *fifo_path; /* stdout+stderr, opened O_RDWR by the child */
    const char *exit_path; /* the keeper writes the wait status here */
    const char *exit_tmp_path;
    int cgroup_procs_fd; /* -1: none */
};

struct kf_spawn_res {
    int keeper_pid;
    int pid;
};

/* Forks a keeper (new session) that forks the child (its own process
 * group) and waits for it, writing its wait status to exit_path. Only
 * async-signal-safe calls run between fork and exec. Returns 0; -ENOEXEC,
 * -EACCES, -ENOENT ... when the child could not exec (the keeper is reaped,
 * err says which step failed). */
int kf_runner_spawn(const struct kf_spawn_req *req, struct kf_spawn_res *ret,
                    struct kf_strbuf *err);

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot). 0 and
 * *ret set, -ESRCH (no such process, or a zombie). */
int kf_runner_proc_start_time(int pid, uint64_t *ret);
/* The same, zombies included (*ret_zombie says so). */
int kf_runner_proc_identity(int pid, uint64_t *ret, bool *ret_zombie);
/* CPU seconds (utime + stime) and RSS of one process from /proc. */
int kf_runner_proc_usage(int pid, double *ret_cpu, uint64_t *ret_rss);
/* Resolves argv0: an absolute path must be an executable file; a bare name
 * is looked up in search_path. -ENOENT with a message naming what was
 * searched. */
int kf_runner_resolve_binary(const char *argv0, const char *search_path, char **ret,
                             struct kf_strbuf *err);
/* Reads the exit record a keeper wrote. 0, -ENOENT, -EINVAL. */
int kf_runner_read_exit_file(const char *path, struct kf_proc_exit *ret);

/* --- logs (runner-log.c) ---------------------------------------------------------- */

/* A log file with size-based rotation: <path>, <path>.1 .. <path>.keep. */
struct kf_logsink {
    char *path;
    int fd;
    uint64_t size;
    uint64_t max;
    int keep;           /* rotated files kept; 0: truncate in place */
    uint64_t discarded; /* bytes deleted by rotation since the sink was opened */
};

int kf_logsink_open(struct kf_logsink *ls, const char *path, uint64_t max, int keep);
/* Appends, rotating at line boundaries where it can. */
int kf_logsink_write(struct kf_logsink *ls, const char *buf, size_t n);
void kf_logsink_close(struct kf_logsink *ls);
/* Bytes in <path> and its rotated files. */
uint64_t kf_logsink_total_on_disk(const char *path, int keep);
/* The last `cap` bytes across <path>.1 and <path>. */
int kf_logsink_tail(const char *path, size_t cap, char **ret, size_t *ret_len);

/* --- state files (runner-state.c) ------------------------------------------------- */

/* What a state file holds about one process. */
struct kf_state_record {
    enum rproc_kind kind;
    char name[KF_RUNNER_NAME_MAX + 1];
    struct rspec spec;
    char hash[65];
    int keeper_pid;
    uint64_t keeper_start;
    int pid;
    uint64_t pid_start;
    int64_t started_at_ms;
    int restarts;
    int attempts;
    int64_t first_start_ms;
    uint64_t log_discarded;
};

void kf_state_format(const struct kf_state_record *rec, struct kf_strbuf *out);
/* Parses a state file; -EINVAL on anything malformed (the whole record is
 * then ignored). rec->spec is owned by rec afterwards. */
int kf_state_parse(const char *text, size_t len, struct kf_state_record *rec);
void kf_state_record_release(struct kf_state_record *rec);

void kf_result_format(const struct kf_task_result *res, struct kf_strbuf *out);
int kf_result_parse(const char *text, size_t len, struct kf_task_result *res);

/* --- cgroups (runner-cgroup.c) ---------------------------------------------------- */

/* Finds or validates the cgroup2 directory for members and enables the cpu
 * and memory controllers for its children. `parent` NULL: detect. 0 and
 * *ret_base (allocated), or a negative errno and the reason in why. With
 * check_fs false the directory need not be on cgroup2 (tests). */
int kf_runner_cgroup_setup(const char *parent, bool check_fs, char **ret_base,
                           struct kf_strbuf *why);
/* Creates <base>/<name>, writes cpu.max and memory.max, and opens its
 * cgroup.procs for the child to join. */
int kf_runner_cgroup_member(const char *base, const char *name, int64_t cpu_millis,
                            int64_t memory_bytes, int *ret_procs_fd, struct kf_strbuf *err);
int kf_runner_cgroup_set_limits(const char *dir, int64_t cpu_millis, int64_t memory_bytes,
                                struct kf_strbuf *err);
int kf_runner_cgroup_usage(const char *dir, double *ret_cpu, uint64_t *ret_mem);
void kf_runner_cgroup_remove(const char *base, const char *name);

/* --- prober (runner-probe.c) -------------------------------------------------------- */

struct kf_prober;
typedef void (*kf_probe_done_fn)(void *ctx, uint64_t tag, bool ok, const char *detail);

int kf_prober_new(kf_probe_done_fn done, void *ctx, struct kf_prober **ret, struct kf_strbuf *err);
/* Queues one probe run; `done` is called from the prober's thread, with no
 * prober lock held. The spec is copied. */
void kf_prober_submit(struct kf_prober *pr, const struct kf_probe *probe, uint64_t tag);
/* Joins the thread; queued and running probes are dropped without a call. */
void kf_prober_free(struct kf_prober *pr);

#endif
