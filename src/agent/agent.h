/* agent.h: the parts of kfleet-agent above the process runner.
 *
 * kfleet-agent registers one Host (or, with --simulate N, N virtual ones),
 * heartbeats for it, watches the ControlPlaneMembers bound to it and runs
 * them through the runner (runner.h), and reports their status back. The
 * pieces:
 *
 *   agent-http.c     requests to kfleetd over libcurl (JSON in and out, the
 *                    bearer token, a watch stream read line by line)
 *   agent-watch.c    a thread that lists and then watches the members and
 *                    hands snapshots and events to the main loop
 *   agent-host.c     registration of the Host objects, heartbeats, what the
 *                    machine offers (/proc)
 *   agent-members.c  a member object -> a runner spec, certificates from
 *                    kfleetd, status reports, removal with the data
 *   agent-metrics.c  /metrics: per-member use, restarts, readiness
 *   agent-loop.c     the main loop: poll, timers, signals, shutdown
 *
 * Threads: the main loop owns every struct below and is the only one that
 * talks to kfleetd with a->http; the watch thread has its own connection
 * and only queues messages; the metrics server's thread reads under
 * a->lock, which the main loop holds while it changes members.
 *
 * docs/internals/agent.md ("The agent") explains the loop.
 */
#ifndef KF_AGENT_H
#define KF_AGENT_H

#include <pthread.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/runner.h"
#include "kfleet/smap.h"

struct kf_strbuf;

/* What the agent writes on objects and expects on them. */
#define KF_AGENT_FINALIZER    "kfleet.io/agent"    /* on members: kept until status.released */
#define KF_AGENT_ANN_PKI_HASH "kfleet.io/pki-hash" /* on members: the bundle to fetch */
#define KF_AGENT_ANN_METRICS  "monitoring.kfleet.io/agent" /* on hosts: "h:p" of /metrics */
/* on members, from the backup controller: "<id> <path> <sha256:hex>" (etcd:
 * replace the data with that snapshot once) and "<id>" (restart once) */
#define KF_AGENT_ANN_RESTORE   "kfleet.io/restore"
#define KF_AGENT_ANN_RESTART   "kfleet.io/restart"
#define KF_AGENT_LABEL_ROLE    "kfleet.io/role"
#define KF_AGENT_LABEL_ZONE    "kfleet.io/zone"
#define KF_AGENT_LABEL_UNIT    "kfleet.io/unit"
#define KF_AGENT_LABEL_CLUSTER "kfleet.io/cluster"

/* on members, from the replace controller (agent-replace.c,
 * docs/internals/replacement.md) */
#define KF_AGENT_ANN_REPLACEMENT "kfleet.io/replacement"
#define KF_AGENT_ANN_ETCD_CHANGE "kfleet.io/etcd-member-change"

#define KF_AGENT_API "/apis/kfleet.io/v1"

/* --- agent-http.c ------------------------------------------------------------ */

struct kf_agent_http;

/* A client of kfleetd at server ("http://h:p" or "https://h:p", or several
 * replicas of one fleet separated by commas: the client moves to the next
 * when the one it uses fails); token may be NULL; ca_file verifies an https
 * server (NULL: the system's CAs). */
struct kf_agent_http *kf_agent_http_new(const char *server, const char *token, const char *ca_file);
void kf_agent_http_free(struct kf_agent_http *h);

/* The server (replica) the next request goes to. */
const char *kf_agent_http_server(const struct kf_agent_http *h);

/* One request. body (may be NULL) is sent as JSON with content_type (NULL:
 * application/json). Returns the HTTP status with the parsed body in
 * *ret_json (NULL when it was not JSON; may be NULL if not wanted), or a
 * negative errno when no answer came (-ECONNREFUSED, -ETIMEDOUT, ...) with
 * what went wrong in err. For a status >= 400 err gets the Status message. */
int kf_agent_http_do(struct kf_agent_http *h, const char *method, const char *path,
                     const char *content_type, const json_t *body, json_t **ret_json,
                     struct kf_strbuf *err);

/* Reads a streaming GET (a watch) and calls line() for every line; stops
 * when line() returns non-zero, the server ends the stream, nothing came
 * for idle_s seconds, or *stop turns true. Returns the HTTP status (200
 * when the stream ran), or a negative errno. */
int kf_agent_http_stream(struct kf_agent_http *h, const char *path, int idle_s,
                         int (*line)(void *ctx, const char *s, size_t n), void *ctx,
                         const volatile bool *stop, struct kf_strbuf *err);

/* --- agent-watch.c ------------------------------------------------------------ */

enum kf_agent_msg_type {
    KF_AGENT_MSG_SNAPSHOT, /* items: every member the selector matches now */
    KF_AGENT_MSG_EVENT,    /* type ADDED/MODIFIED/DELETED, obj */
    KF_AGENT_MSG_DOWN,     /* the connection failed: text says why */
};

struct kf_agent_msg {
    enum kf_agent_msg_type type;
    char event[16];
    json_t *obj; /* SNAPSHOT: an array; EVENT: the object */
    char *text;
    struct kf_agent_msg *next;
};
/* Frees M and every message after it (m->next...). */
void kf_agent_msg_free(struct kf_agent_msg *m);

struct kf_agent_watch;

/* Starts a thread that lists `path` (a collection, with its query) and
 * watches it from the list's revision, again after every error (back-off
 * from 0.5 s to 30 s) or expired revision. Messages queue up; wake_fd (an
 * eventfd) is written when there are some. */
int kf_agent_watch_start(const char *server, const char *token, const char *ca_file,
                         const char *path, int wake_fd, struct kf_agent_watch **ret,
                         struct kf_strbuf *err);
/* Reads one line of a watch stream (s, n: not NUL-terminated; any bytes):
 * an ADDED, MODIFIED or DELETED event with an object becomes *ret_msg (the
 * caller frees it); anything else sets *ret_msg to NULL. An object's
 * resourceVersion shorter than rv_size is copied to rv. Returns 1 for an
 * ERROR event (list again), else 0. No other effect than a debug line;
 * fuzzed by tests/fuzz/fuzz-agent-watch.c. */
int kf_agent_watch_decode(const char *s, size_t n, char *rv, size_t rv_size,
                          struct kf_agent_msg **ret_msg);
/* Takes every queued message, oldest first (a list linked by next). */
struct kf_agent_msg *kf_agent_watch_take(struct kf_agent_watch *w);
/* Whether the stream is up now. */
bool kf_agent_watch_connected(struct kf_agent_watch *w);
void kf_agent_watch_stop(struct kf_agent_watch *w); /* joins the thread, frees; NULL ok */

/* --- the agent ------------------------------------------------------------------ */

struct kf_agent_config {
    const char *server;
    const char *token;
    const char *ca_file;
    const char *role; /* "meta" or "worker" */
    const char *name;
    const char *zones; /* one zone, or a comma list (spread over --simulate hosts) */
    const char *unit;
    const char *cluster;
    const char *address; /* the host's IP others reach it at; NULL: 127.0.0.1 */
    int64_t cpu_milli;   /* 0: detected */
    int64_t memory_bytes;
    const char *data_dir;
    const char *cgroup_parent; /* runner's cgroup_parent: NULL detect, "none", a path */
    int simulate;              /* 0: one real host; N: N virtual hosts with the simulated runner */
    int64_t heartbeat_ms;
    const char *metrics_listen; /* "HOST:PORT" (port 0: any); NULL: no /metrics */
    bool stop_members_on_exit;
    int64_t sim_ready_delay_ms;
    int64_t sim_task_duration_ms; /* simulated BroadcastJob tasks run this long */
    double sim_task_fail_ratio;   /* and this share of them fails */
    int stop_grace_ms;            /* members' SIGTERM..SIGKILL; 0: the runner's default */
    /* runner back-off (tests make it short) */
    int64_t backoff_initial_ms, backoff_max_ms;
    const char *kubernetes_dir;    /* the releases, one folder per minor (/opt/kfleet/kubernetes) */
    const char *artifacts_url;     /* where to fetch a missing release from; NULL: nowhere */
    int64_t artifacts_interval_ms; /* look for missing releases again this often */
};

/* One ControlPlaneMember this agent knows. */
struct agent_member {
    char *name;                         /* object name */
    char rname[KF_RUNNER_NAME_MAX + 1]; /* name in the runner */
    json_t *obj;                        /* the object as kfleetd has it; NULL: gone */
    bool from_cache;                    /* obj came from the local cache, not kfleetd */
    bool applied;                       /* handed to the runner */
    char applied_hash[65];              /* of what was applied */
    char applied_version[32];           /* spec.version of the command line that runs */
    char *pki_hash;                     /* the certificate bundle on disk */
    bool removing;                      /* runner told to remove it */
    bool gone;                          /* stopped, data removed */
    bool have_status;
    struct kf_proc_status st; /* the runner's latest */
    json_t *reported;         /* the status kfleetd has (as far as we know) */
    int64_t retry_at_ms;      /* monotonic: next attempt after a failed report/fetch */
    int failures;
    char *cluster, *component; /* labels for /metrics */
    int64_t change_retry_ms;   /* monotonic: an etcd member change's answer is sent again then */
    /* simulated host: hashes of the last restore and restart done (a real
     * host keeps them in the member's directory; agent-backup.c) */
    uint64_t sim_restore_hash, sim_restart_hash;
};

struct agent_host {
    char *name;
    char *zone;
    struct kf_runner *runner;
    struct kf_smap members; /* name -> struct agent_member */
    bool registered;
    int64_t register_at_ms; /* monotonic: next registration attempt */
    int register_failures;
    bool dirty;           /* members need a look now */
    int64_t next_sync_ms; /* monotonic: a retry is due then (0: none) */
    bool wait_server;     /* something waits for kfleetd to answer again */
    char *dir;            /* real host: where members' directories live; NULL: simulated */
};

struct kf_agent_tasks;
struct kf_agent_backup;
struct kf_agent_artifacts;

struct kf_agent {
    struct kf_agent_config cfg;
    pthread_mutex_t lock; /* held by the loop while it changes hosts and members */
    struct agent_host *hosts;
    size_t n_hosts;
    struct kf_smap host_by_name;
    struct kf_agent_http *http;
    struct kf_agent_watch *watch;
    struct kf_agent_tasks *tasks;         /* agent-tasks.c: BroadcastTasks bound here */
    struct kf_agent_backup *backup;       /* agent-backup.c: etcd snapshots (NULL: none) */
    struct kf_agent_artifacts *artifacts; /* agent-artifacts.c: the periodic check (NULL: none) */
    char *versions_reported; /* status.kubernetesVersions as last written (JSON), NULL: none */
    int wake_fd;
    int signal_fd;
    bool have_snapshot; /* kfleetd told us once what is bound here */
    /* kfleetd reachability: after a failure, requests wait until retry */
    bool server_down;
    int64_t server_retry_ms;
    int server_failures;
    int64_t next_heartbeat_ms;
    int64_t heartbeat_failures;
    bool heartbeat_endpoint_missing;
    struct kf_metrics *metrics;
    void *metrics_server;
    void *metric_fams;
    char *metrics_addr; /* "h:p" actually bound */
    char *node_os, *node_kernel, *node_arch, *node_hostname;
    int64_t detected_cpu_milli, detected_memory_bytes;
    /* counters for /metrics */
    uint64_t heartbeats_ok, heartbeats_failed, status_writes, status_write_failures;
    uint64_t api_errors;
};

/* agent-host.c */
int kf_agent_detect_machine(struct kf_agent *a, struct kf_strbuf *err);
/* Registers (creates or updates) the Host of h. 0, or a negative error. */
int kf_agent_register(struct kf_agent *a, struct agent_host *h, struct kf_strbuf *err);
/* Sends the heartbeats that are due (one request, or batches of many
 * hosts). */
void kf_agent_heartbeat(struct kf_agent *a);

/* agent-members.c */
/* The runner name of a member object name (the name itself when it fits
 * the runner's rules, else a prefix and a hash). */
void kf_agent_runner_name(const char *name, char out[KF_RUNNER_NAME_MAX + 1]);
/* Loads members cached in h->dir from an earlier run and applies them, so
 * that they are adopted before kfleetd answers. */
void kf_agent_members_load_cache(struct kf_agent *a, struct agent_host *h);
/* A member object (from the watch or a snapshot) for host h; deleted: the
 * object went away. */
void kf_agent_member_seen(struct kf_agent *a, struct agent_host *h, const json_t *obj,
                          bool deleted);
/* A snapshot: everything bound to h is in objs; anything else goes. */
void kf_agent_members_snapshot(struct kf_agent *a, struct agent_host *h, json_t **objs, size_t n);
/* A runner event of h. */
void kf_agent_member_event(struct kf_agent *a, struct agent_host *h,
                           const struct kf_runner_event *ev);
/* Converges h's members: applies, fetches certificates, removes, reports. */
void kf_agent_members_sync(struct kf_agent *a, struct agent_host *h);
/* Stops every member of h (shutdown with --stop-members-on-exit). */
void kf_agent_members_stop_all(struct kf_agent *a, struct agent_host *h);
void kf_agent_member_free(struct agent_member *m);

/* agent-tasks.c */
/* Starts the watch of the BroadcastTasks bound to the agent's hosts (both
 * roles), waking the loop through a->wake_fd. 0 or a negative error. */
int kf_agent_tasks_start(struct kf_agent *a, struct kf_strbuf *err);
/* One step of the loop: takes the watch's messages, starts waiting tasks,
 * stops the ones kfleetd finished or deleted, reports results and Running
 * (batched; acknowledged to the runner once kfleetd answered). */
void kf_agent_tasks_step(struct kf_agent *a);
/* Stops the watch and frees; running tasks go on (the next agent adopts
 * them). NULL-safe. */
void kf_agent_tasks_stop(struct kf_agent *a);
/* When (kf_mono_ms) the loop should turn again because a simulated
 * task's time is up and its result can be reported; 0: no such moment
 * known (answers from kfleetd wake the loop through a->wake_fd). */
int64_t kf_agent_tasks_next_ms(const struct kf_agent *a);

/* agent-backup.c */
/* A real meta host (not --simulate) starts a thread that watches the
 * Backups assigned to its host and takes their etcd snapshots, with its
 * own connection; nothing else on a simulated agent. 0 or a negative
 * error. */
int kf_agent_backup_start(struct kf_agent *a, struct kf_strbuf *err);
/* Joins the thread (a snapshot being taken is waited for) and frees;
 * a->backup may be NULL. */
void kf_agent_backup_stop(struct kf_agent *a);
/* Before a member is applied (argv: its command line, filled in): with the
 * annotation KF_AGENT_ANN_RESTORE not yet done on this host, stops the
 * process, checks the snapshot's sha256, replaces the data directory with
 * `etcdctl snapshot restore` (the member's name, data directory, initial
 * cluster, token and peer URL from argv) and records it in the member's
 * directory; KF_AGENT_ANN_RESTART not yet done: stops it once. Returns 0
 * (nothing to do), 1 (stopping: wait for the runner's event), 2 (done: apply
 * the member again), or a negative error with why in err (a corrupted
 * snapshot: -EBADMSG; the member is not started). */
/* Reads a member's restore annotation "<id> <path> <sha256:hex>": id
 * digits, path absolute without "..", ending ".db", sum "sha256:" and 64
 * lower-case hex digits, single spaces, nothing else. 0 with the parts
 * copied, or -EINVAL. No other effect; fuzzed by
 * tests/fuzz/fuzz-agent-restore.c. */
int kf_agent_restore_parse(const char *value, char id[64], char path[2048], char sum[80]);
int kf_agent_member_restore(struct kf_agent *a, struct agent_host *h, struct agent_member *m,
                            const struct kf_argv *argv, struct kf_strbuf *err);

/* Runs etcdctl (argv[0] the program, no shell) with ETCDCTL_API=3 for at
 * most timeout_ms, stdout and stderr into out (capped). Returns its exit
 * status, 128+signal, or a negative errno (agent-backup.c). */
int kf_agent_etcdctl(char *const argv[], int timeout_ms, struct kf_strbuf *out);

/* agent-replace.c */
/* A request "<request> <old peer URLs|-> <name> <new peer URL>" (the
 * annotation KF_AGENT_ANN_ETCD_CHANGE), parsed: request digits and '-',
 * URLs https:// without blanks, commas or '=', the old ones up to four
 * joined by commas (one may be the new one), or "-" when there is nothing
 * to remove, name a DNS label; single spaces. 0 or -EINVAL. */
struct kf_agent_member_change {
    char request[64], old_url[300], name[64], new_url[300];
};
int kf_agent_member_change_parse(const char *value, struct kf_agent_member_change *ret);
/* After member m (an etcd member this host runs, Ready) was applied: does
 * the membership change its KF_AGENT_ANN_ETCD_CHANGE asks for, unless its
 * status already answers it, and reports the answer in
 * status.etcdMemberChange. argv: its command line, filled in. */
void kf_agent_member_change(struct kf_agent *a, struct agent_host *h, struct agent_member *m,
                            const struct kf_argv *argv);
/* Before member m is applied: an etcd member that joins a running cluster
 * here by a replacement (KF_AGENT_ANN_REPLACEMENT naming this host,
 * --initial-cluster-state=existing) gets an empty data directory, once per
 * replacement. 0, or a negative error with why in err (not started). */
int kf_agent_member_join(struct agent_host *h, struct agent_member *m, const struct kf_argv *argv,
                         struct kf_strbuf *err);

/* agent-metrics.c */
int kf_agent_metrics_start(struct kf_agent *a, struct kf_strbuf *err);
void kf_agent_metrics_stop(struct kf_agent *a);

/* agent-loop.c */
/* Whether a request may go to kfleetd now (not inside a back-off after a
 * failure); kf_agent_server_result() records how a request went. */
bool kf_agent_server_ok(struct kf_agent *a);
void kf_agent_server_result(struct kf_agent *a, int http_status_or_errno);

/* Runs the agent until SIGTERM or SIGINT. Returns the exit code. */
int kf_agent_run(const struct kf_agent_config *cfg);

/* agent-artifacts.c: what one round of fetching remembers for the next
 * (the releases refused, and how the source described the file that did
 * not match). */
struct kf_agent_fetch_memo;
struct kf_agent_fetch_memo *kf_agent_fetch_memo_new(void);
void kf_agent_fetch_memo_free(struct kf_agent_fetch_memo *m); /* NULL is fine */
/* Fetches each release of the catalog that cfg->kubernetes_dir lacks from
 * cfg->artifacts_url (nothing without one), each file checked against the
 * catalog's SHA-256, except a release memo says was refused for a file the
 * source still describes the same way; logs what it did. */
void kf_agent_artifacts_sync(const struct kf_agent_config *cfg, struct kf_agent_fetch_memo *memo);
/* Starts the thread that runs kf_agent_artifacts_sync again every
 * cfg->artifacts_interval_ms (+-10 %) and writes to wake_fd (an eventfd)
 * after each round; NULL without an artifact source (or a thread). Takes
 * memo (freed with the thread, or at once when it returns NULL). */
struct kf_agent_artifacts *kf_agent_artifacts_start(const struct kf_agent_config *cfg, int wake_fd,
                                                    struct kf_agent_fetch_memo *memo);
/* Whether a round finished since the last call (which clears it). */
bool kf_agent_artifacts_checked(struct kf_agent_artifacts *aa);
/* Stops the thread (after the fetch it may be in) and frees; NULL is fine. */
void kf_agent_artifacts_stop(struct kf_agent_artifacts *aa);

/* agent-host.c: writes each registered host's status.kubernetesVersions
 * when the releases held differ from what was last written. */
void kf_agent_report_versions(struct kf_agent *a);

#endif
