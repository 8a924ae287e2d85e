/* broadcast.h: BroadcastJob and its per-host records, BroadcastTask: the
 * names, limits and helpers that the controller
 * (src/controllers/ctrl-broadcastjob.c), the agents (src/agent/agent-tasks.c),
 * the API's result endpoint and the CLI share.
 *
 * A BroadcastJob runs one command on every eligible Host, with OpenKruise's
 * semantics (docs/internals/broadcastjob.md). Its unit of dispatch, Kruise's
 * Pod, is a BroadcastTask: one object per (job, host), created by the
 * controller in batches, named "<job>.<host>", carrying a copy of the
 * template, watched by the host's agent (field selector spec.host=<host>)
 * and finished by the agent's report of the result. One object per host,
 * not one job object with 100,000 entries, because an object is capped at
 * 1 MiB in the store and every result would rewrite the whole list.
 *
 * Agents report through one endpoint that takes many results at once (a
 * simulation of 100,000 hosts reports in batches):
 *
 *   POST /apis/kfleet.io/v1/taskresults
 *     {"results": [{"name": "<task>", "uid": "<task uid>", "phase": "Running" |
 *                   "Succeeded" | "Failed", "reason": "Error", "message": "...",
 *                   "exitCode": 1, "signal": 9, "startTime": "...", "endTime": "...",
 *                   "restarts": 0, "output": "<tail>", "outputDropped": 1234}, ...]}
 *   ->  {"results": [{"name": "<task>", "outcome": "recorded" | "already" | "gone" |
 *                     "error", "message": "..."}, ...]}
 *
 * "recorded": written now; "already": the task had finished before (a
 * repeated report after an agent restart, or a task the controller stopped):
 * nothing written; "gone": no such task with that uid (deleted, or created
 * again): nothing written. For all three the agent forgets the result;
 * "error" means try again later. A task's terminal phase is written once
 * and never changed, which is what makes each result count exactly once.
 */
#ifndef KF_BROADCAST_H
#define KF_BROADCAST_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_ctrl_env;
struct kf_ctrl_ops;
struct kf_registry;
struct kf_strbuf;

/* The label every task carries: the name of its job. */
#define KF_BCJ_LABEL_JOB "kfleet.io/broadcastjob"

/* How much of a task's output (the tail of stdout and stderr) its status
 * keeps: more for failures, which someone will read, than for successes,
 * so that 100,000 records stay small. */
#define KF_BCJ_OUTPUT_FAILED_MAX    4096
#define KF_BCJ_OUTPUT_SUCCEEDED_MAX 256

/* The result endpoint: POST /apis/kfleet.io/v1/<KF_BCJ_RESULTS_ACTION>,
 * at most KF_BCJ_RESULTS_MAX results a request, and within the API's body
 * limit (512 KiB): agents cut their batches by size too. */
#define KF_BCJ_RESULTS_ACTION "taskresults"
#define KF_BCJ_RESULTS_MAX    2000

/* Taints kfleet treats a Host as carrying, as Kubernetes' node controllers
 * put them on Nodes, so that tolerations work as they do for Kruise:
 * spec.unschedulable -> unschedulable:NoSchedule; status.ready false ->
 * not-ready:NoSchedule; no readiness known -> unreachable:NoSchedule. */
#define KF_BCJ_TAINT_UNSCHEDULABLE "node.kubernetes.io/unschedulable"
#define KF_BCJ_TAINT_NOT_READY     "node.kubernetes.io/not-ready"
#define KF_BCJ_TAINT_UNREACHABLE   "node.kubernetes.io/unreachable"

/* Job phases (status.phase), as Kruise spells them. */
#define KF_BCJ_PHASE_RUNNING   "running"
#define KF_BCJ_PHASE_PAUSED    "paused"
#define KF_BCJ_PHASE_COMPLETED "completed"
#define KF_BCJ_PHASE_FAILED    "failed"

/* Task phases (status.phase); a task without one is Pending. */
#define KF_BCJ_TASK_PENDING   "Pending"
#define KF_BCJ_TASK_RUNNING   "Running"
#define KF_BCJ_TASK_SUCCEEDED "Succeeded"
#define KF_BCJ_TASK_FAILED    "Failed"

/* The name of the task of `job` on `host` into out (reset first):
 * "<job>.<host>" when that is at most 253 characters, else
 * "<job>.h-<16 hex digits of a hash of host>". Every task name of a job
 * starts with "<job>." (job names are DNS labels, without dots), which lets
 * a LIST with fieldSelector spec.job=<job> read only that key range. */
void kf_bcj_task_name(const char *job, const char *host, struct kf_strbuf *out);

/* Whether a task phase is final (Succeeded or Failed). */
bool kf_bcj_task_finished(const char *phase);

/* spec.parallelism resolved against `desired` eligible hosts: an integer
 * as it is, a percentage of desired rounded up (40 % of 5 is 2), absent or
 * malformed: no limit (INT64_MAX). */
int64_t kf_bcj_parallelism(const json_t *parallelism, int64_t desired);

/* Formats ms since the epoch as RFC 3339 with milliseconds
 * ("2026-01-02T15:04:05.123Z") into buf (>= 32 bytes). */
void kf_bcj_time_format(int64_t ms, char *buf, size_t size);

/* Records task results as the result endpoint does (contract above): body
 * is {"results": [...]}, *ret the answer (new reference). Writes go through
 * the registry (status schema checked) in transactions of up to 128 tasks.
 * Returns 0, or -KF_EBADREQUEST / -KF_EINVALID with a message in err for a
 * malformed body (nothing written); per-result problems are outcomes, not
 * errors. Thread-safe. */
int kf_bcj_record_results(struct kf_registry *reg, const json_t *body, json_t **ret,
                          struct kf_strbuf *err);
/* The same for a host-bound agent token: a result for a task of another
 * host than only_host is refused (outcome "error" with a message); NULL:
 * every task. */
int kf_bcj_record_results_for(struct kf_registry *reg, const json_t *body, const char *only_host,
                              json_t **ret, struct kf_strbuf *err);

/* The controller (src/controllers/ctrl-broadcastjob.c), an entry of
 * kfleetd's controller table. (The result endpoint is the API server's,
 * src/api/api-taskresults.c: every replica serves it, not only the
 * leader.) */
extern const struct kf_ctrl_ops kf_ctrl_broadcastjob_ops;
int kf_ctrl_broadcastjob_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err);
void kf_ctrl_broadcastjob_fini(void *data);
/* For tests and simulations: the clock the controller (and its events)
 * read; NULL: the wall clock. Before the manager starts. */
void kf_ctrl_broadcastjob_set_clock(void *data, int64_t (*now_ms)(void *arg), void *arg);

#endif
