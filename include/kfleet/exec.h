/* exec.h: running a short-lived tool and reading what it says (haproxy -c,
 * promtool and amtool checks, etcdctl snapshot save/status/restore).
 * Implemented in src/base/base-exec.c: the one copy for every layer.
 *
 * The tool runs without a shell (argv[0] is a path), with the environment
 * given (nothing else of the caller's), standard input from /dev/null, and
 * the caller's blocked signals unblocked (kfleetd and the agent block the
 * signals they take with sigwait; a child must not inherit that). Its
 * standard output goes into out, capped, and standard error too when asked
 * (else to /dev/null). After timeout_ms it is killed with SIGKILL.
 *
 * Library code: returns negative errno and does not log.
 */
#ifndef KF_EXEC_H
#define KF_EXEC_H

#include <stdbool.h>
#include <stddef.h>

struct kf_strbuf;

struct kf_exec_opts {
    char *const *envp; /* the whole environment; NULL: an empty one */
    int timeout_ms;    /* > 0; then SIGKILL */
    bool with_stderr;  /* standard error into out as well */
    size_t output_max; /* bytes of output kept in out; the rest is read and dropped */
};

/* Runs argv as opts say, its output appended to out. Returns the exit
 * status (0..255), 128 + the signal that ended it (a timeout: 128 + 9),
 * -ENOENT (or another negative errno) when argv[0] cannot be run, or a
 * negative errno when no process could be started. */
int kf_exec_capture(char *const argv[], const struct kf_exec_opts *opts, struct kf_strbuf *out);

#endif
