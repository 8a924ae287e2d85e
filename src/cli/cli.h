/* cli.h: the pieces of the `kfleet` command-line client.
 *
 * cli-main.c holds the static table of commands and dispatches to them;
 * each command lives in its own file (cli-get.c, cli-apply.c, ...) as
 * `int kf_cli_cmd_<name>(struct kf_cli *, const struct kf_cli_args *)`
 * returning an exit code. The shared parts are here: option parsing
 * (cli-args.c), where the server and token come from (cli-config.c), HTTP
 * to kfleetd (cli-http.c), tables and object output (cli-output.c) and
 * reading objects from -f files (cli-input.c).
 *
 * Adding a command (explain, plan, top, rollout, ...): write
 * src/cli/cli-<name>.c with its kf_cli_cmd_<name>, declare it below, and add
 * one entry (name, usage, summary, help text, options) to the table in
 * cli-main.c; `kfleet help` and `kfleet <name> --help` pick it up from the
 * table. `get` has its own small table for things that are not kinds
 * (`get kubeconfig` goes there, see cli-get.c).
 *
 * Output goes to cli->out, diagnostics to cli->err (stdout and stderr in
 * the binary, memory streams in unit tests). Nothing here logs.
 */
#ifndef KF_CLI_H
#define KF_CLI_H

#include <stdio.h>

#include <jansson.h>

#include "kfleet/base.h"

struct kf_cli_http;
struct kf_kind;
struct kf_strbuf;

/* Exit codes of every command (docs/cli.md, `kfleet help`). When a command
 * handles several objects and more than one fails, it carries on with the
 * others and exits with the code of the first failure. */
enum kf_cli_exit {
    KF_CLI_EXIT_OK = 0,          /* did what was asked */
    KF_CLI_EXIT_REFUSED = 1,     /* the server refused (4xx other than 404, 5xx) */
    KF_CLI_EXIT_USAGE = 2,       /* bad command line or unreadable/malformed input file;
                                    nothing was sent */
    KF_CLI_EXIT_UNREACHABLE = 3, /* no answer from the server (connection, TLS, timeout) */
    KF_CLI_EXIT_NOTFOUND = 4,    /* the object (or kind) does not exist on the server */
    /* `kfleet watch broadcastjob NAME`, when the job is over: */
    KF_CLI_EXIT_JOB_FAILED = 5,   /* it failed (FailFast, the deadline) or was deleted first */
    KF_CLI_EXIT_TASKS_FAILED = 6, /* it completed, and some tasks failed (Continue) */
    /* `kfleet rollout status RELEASE`: it is paused or aborted (or --watch
     * timed out before it completed) */
    KF_CLI_EXIT_ROLLOUT_STOPPED = 7,
};

/* ---- options (cli-args.c) ---------------------------------------------- */

enum kf_cli_opt_type {
    KF_CLI_FLAG,  /* --wait */
    KF_CLI_VALUE, /* -o json, --output=json; the last one wins */
    KF_CLI_LIST,  /* -f a -f b; every one kept */
};

struct kf_cli_opt {
    const char *name; /* long name without dashes; NULL ends a table */
    char short_name;  /* 0: none */
    enum kf_cli_opt_type type;
    const char *metavar; /* "FORMAT" */
    const char *help;
};

struct kf_cli_args {
    char **pos; /* positional arguments, borrowed from argv */
    size_t n_pos, pos_alloc;
    struct kf_cli_arg_seen {
        const struct kf_cli_opt *opt;
        const char *value; /* NULL for flags */
    } * seen;
    size_t n_seen, seen_alloc;
};

/* Options every command takes, before or after its name: --server,
 * --token, --request-timeout, --help. */
extern const struct kf_cli_opt kf_cli_global_opts[];

/* Parses argv (without the program and command names) against the
 * command's options and the global ones. Options and positionals may mix;
 * "--" ends options; "-" alone is a positional. Returns 0, or -EINVAL with
 * a message naming the bad option in err. */
int kf_cli_args_parse(struct kf_cli_args *a, const struct kf_cli_opt *cmd_opts, int argc,
                      char **argv, struct kf_strbuf *err);
void kf_cli_args_release(struct kf_cli_args *a);
/* The last value of option `name` (long name), or NULL if not given. */
const char *kf_cli_args_get(const struct kf_cli_args *a, const char *name);
bool kf_cli_args_has(const struct kf_cli_args *a, const char *name);
/* The i-th value of a list option, or NULL past the end. */
const char *kf_cli_args_nth(const struct kf_cli_args *a, const char *name, size_t i);

/* The index in argv of the command name: the first argument that is not a
 * global option or its value. argc when there is none. */
int kf_cli_find_command(int argc, char **argv);

/* ---- commands ------------------------------------------------------------ */

struct kf_cli;
struct kf_cli_command {
    const char *name;  /* "get" */
    const char *usage; /* "KIND [NAME...] [-o FORMAT] [-l SELECTOR]" */
    const char *summary;
    const char *help; /* paragraphs after the usage line */
    const struct kf_cli_opt *opts;
    int (*run)(struct kf_cli *cli, const struct kf_cli_args *args);
};

/* Writes `kfleet help`: commands, global options, exit codes. */
void kf_cli_print_overview(FILE *out, const struct kf_cli_command *cmds, size_t n);
/* Writes `kfleet help CMD`: usage, help text, options. */
void kf_cli_print_command_help(FILE *out, const struct kf_cli_command *cmd);

/* ---- the client's state ---------------------------------------------------- */

/* Where a setting came from, for messages ("from KFLEET_SERVER"). */
enum kf_cli_source {
    KF_CLI_SRC_DEFAULT,
    KF_CLI_SRC_FLAG,
    KF_CLI_SRC_ENV,
    KF_CLI_SRC_FILE,
};
const char *kf_cli_source_name(enum kf_cli_source src);

#define KF_CLI_DEFAULT_SERVER "http://127.0.0.1:7480"

/* The connection settings in effect. */
struct kf_cli_conn {
    char *server; /* no trailing '/' */
    enum kf_cli_source server_src;
    char *token; /* NULL: none */
    enum kf_cli_source token_src;
    char *config_path; /* the file that was (or would be) read */
};

struct kf_cli {
    FILE *out;
    FILE *err;
    const struct kf_cli_command *commands; /* the dispatch table, for help */
    size_t n_commands;
    int64_t now_ms; /* "now" for ages; kf_now_ms() in the binary */
    const char *flag_server, *flag_token;
    long timeout_s; /* per request, watches excepted; 0: none */
    struct kf_cli_conn conn;
    bool conn_resolved;
    struct kf_cli_http *http; /* created on first use */
    /* With quiet set, kf_cli_error and kf_cli_report_status keep their
     * message in last_error instead of printing it (a watch retrying
     * decides what to say); last_status is the HTTP status of the last
     * error from the server, 0 when none answered. */
    bool quiet;
    struct kf_strbuf last_error;
    long last_status;
};

void kf_cli_init(struct kf_cli *cli, FILE *out, FILE *err);
void kf_cli_release(struct kf_cli *cli);
/* Prints "error: ..." (and a newline) to cli->err. */
void kf_cli_error(struct kf_cli *cli, const char *fmt, ...) KF_PRINTF(2, 3);

/* ---- configuration (cli-config.c) ------------------------------------------ */

/* The settings stored in the config file. */
struct kf_cli_file_config {
    char *server;
    char *token;
};
void kf_cli_file_config_release(struct kf_cli_file_config *c);

/* The config file's path: $KFLEET_CONFIG, else $HOME/.kfleet/config.
 * Caller frees; NULL when neither variable is set. */
char *kf_cli_config_path(void);
/* Reads the config file (a YAML mapping with the keys `server` and
 * `token`). A missing file gives empty settings and 0. -EINVAL with a
 * message for a malformed one, -errno when it cannot be read. */
int kf_cli_config_read(const char *path, struct kf_cli_file_config *ret, struct kf_strbuf *err);
/* Writes the settings to path atomically (temporary file + rename), mode
 * 0600, creating the directory (0700) if needed. */
int kf_cli_config_write(const char *path, const struct kf_cli_file_config *c,
                        struct kf_strbuf *err);
/* Decides the server and token: each from its flag, else its environment
 * variable (KFLEET_SERVER, KFLEET_TOKEN; empty counts as unset), else the
 * config file, else the default (server) or none (token). The server must
 * be an http:// or https:// URL. env_* and file may be NULL. Returns 0 or
 * -EINVAL with a message naming the bad value and where it came from. */
int kf_cli_conn_resolve(struct kf_cli_conn *ret, const char *flag_server, const char *flag_token,
                        const char *env_server, const char *env_token,
                        const struct kf_cli_file_config *file, struct kf_strbuf *err);
void kf_cli_conn_release(struct kf_cli_conn *c);
/* Resolves cli->conn from the flags, the environment and the config file,
 * once. Prints the error and returns KF_CLI_EXIT_USAGE on failure, else 0. */
int kf_cli_connect(struct kf_cli *cli);

/* ---- HTTP (cli-http.c) ----------------------------------------------------- */

struct kf_cli_response {
    long status;            /* HTTP status; 0 when no response came */
    struct kf_strbuf *body; /* owned */
    json_t *json;           /* the body parsed as JSON, or NULL */
};
void kf_cli_response_release(struct kf_cli_response *r);
/* Frees the connection kept between requests. NULL is fine. */
void kf_cli_http_free(struct kf_cli_http *h);

/* One request to cli->conn.server + path (path starts with "/" and is
 * already escaped). body may be NULL. Returns 0 when a response arrived
 * (whatever its status) or -EHOSTUNREACH when none did, after printing
 * which server was tried and how to change it. */
int kf_cli_request(struct kf_cli *cli, const char *method, const char *path,
                   const char *content_type, const char *body, size_t len,
                   struct kf_cli_response *ret);

/* Streams a GET (a watch): calls line_fn for each complete line of the
 * body while it arrives; line_fn returns 0 to go on or non-zero to stop.
 * Returns 0 when the server ended the stream or line_fn stopped it (the
 * status and, for a non-2xx status, the body are in *ret), or
 * -EHOSTUNREACH when no connection could be made, it broke, or timeout_ms
 * (0: none) passed; the reason is in err and nothing is printed: the watch
 * decides whether to retry. */
int kf_cli_stream(struct kf_cli *cli, const char *path,
                  int (*line_fn)(const char *line, size_t len, void *data), void *data,
                  int64_t timeout_ms, struct kf_cli_response *ret, struct kf_strbuf *err);

/* For a non-2xx response: prints the server's message ("Error from server
 * (NotFound): ...", with each details.causes[] entry on its own line) and
 * returns the exit code (KF_CLI_EXIT_NOTFOUND for 404, else
 * KF_CLI_EXIT_REFUSED). `what` (may be NULL) prefixes the message, e.g.
 * "guestcluster/web-1". */
int kf_cli_report_status(struct kf_cli *cli, const struct kf_cli_response *r, const char *what);
/* The same text, without printing. */
void kf_cli_format_status(const struct kf_cli_response *r, struct kf_strbuf *out);

/* "/apis/kfleet.io/v1/<plural>[/<name>]" with name escaped. Caller frees. */
char *kf_cli_path(const struct kf_kind *k, const char *name);
/* Appends "&key=value" (or "?key=value" when path has no '?') with value
 * URL-escaped. */
void kf_cli_path_add_query(struct kf_strbuf *path, const char *key, const char *value);

/* ---- output (cli-output.c) ------------------------------------------------- */

enum kf_cli_format {
    KF_CLI_FMT_TABLE,
    KF_CLI_FMT_WIDE,
    KF_CLI_FMT_JSON,
    KF_CLI_FMT_YAML,
    KF_CLI_FMT_NAME,
};
/* "json", "yaml", "wide", "name", or NULL/"" for the table. -EINVAL with a
 * message otherwise. */
int kf_cli_format_parse(const char *s, enum kf_cli_format *ret, struct kf_strbuf *err);

/* kubectl-style age of `then` at `now` (ms): "45s", "5m", "3h", "2d", "4y";
 * "<unknown>" when then is 0. */
void kf_cli_age(int64_t now_ms, int64_t then_ms, struct kf_strbuf *out);
/* The age of an RFC 3339 timestamp; "<unknown>" when it does not parse. */
void kf_cli_age_of(int64_t now_ms, const char *rfc3339, struct kf_strbuf *out);

/* A table of text cells, printed with columns padded to their widest cell
 * and three spaces between them (as kubectl does). */
struct kf_cli_table {
    size_t n_cols;
    char **cells; /* rows * n_cols, row-major; row 0 is the header */
    size_t n_rows, alloc;
};
void kf_cli_table_init(struct kf_cli_table *t, size_t n_cols);
void kf_cli_table_release(struct kf_cli_table *t);
/* Adds one row of n_cols strings (copied; NULL or "" prints "<none>"). */
void kf_cli_table_add(struct kf_cli_table *t, const char *const *cells);
void kf_cli_table_print(const struct kf_cli_table *t, FILE *out);
/* The same into a buffer, each line starting with `indent` (may be NULL). */
void kf_cli_table_format(const struct kf_cli_table *t, const char *indent, struct kf_strbuf *out);

/* The header of kind k's table: NAME, its columns (wide ones only with
 * `wide`), AGE; `prefix` (e.g. "EVENT", may be NULL) comes first. */
void kf_cli_kind_header(struct kf_cli_table *t, const struct kf_kind *k, bool wide,
                        const char *prefix);
/* Adds obj's row, matching kf_cli_kind_header. Columns of type "date" print
 * as ages. */
void kf_cli_kind_row(struct kf_cli_table *t, const struct kf_kind *k, const json_t *obj, bool wide,
                     const char *prefix, int64_t now_ms);
/* The number of columns kf_cli_kind_header makes. */
size_t kf_cli_kind_n_cols(const struct kf_kind *k, bool wide, bool prefix);

/* obj with its members in the order people expect to read them
 * (apiVersion, kind, metadata with name first, spec, status, the rest),
 * for -o json and -o yaml. New reference. */
json_t *kf_cli_object_for_output(const json_t *obj);

/* "guestcluster/web-1". Caller frees. */
char *kf_cli_ref(const struct kf_kind *k, const char *name);

/* Prints objects (a JSON array, borrowed) of kind k in format fmt: a table
 * (with headers; nothing for no objects), names, or JSON/YAML, where one
 * object prints alone when `single` and otherwise as a kubectl `List`. */
void kf_cli_print_objects(struct kf_cli *cli, const struct kf_kind *k, const json_t *items,
                          enum kf_cli_format fmt, bool single);

/* Writes `describe`'s view of obj (events: a JSON array of Event objects,
 * or NULL when they could not be read; events_error says why). */
void kf_cli_describe_format(const struct kf_kind *k, const json_t *obj, const json_t *events,
                            const char *events_error, int64_t now_ms, struct kf_strbuf *out);

/* As kf_cli_describe_format, with `extra` (may be NULL) printed before the
 * Events: sections a kind adds (a BroadcastJob's hosts). */
void kf_cli_describe_format_ex(const struct kf_kind *k, const json_t *obj, const char *extra,
                               const json_t *events, const char *events_error, int64_t now_ms,
                               struct kf_strbuf *out);

/* Reports the server writes (explain, plan): a JSON object whose "text" is
 * the human view. kf_cli_report_format checks their -o (output, may be
 * NULL): only json, or nothing for the text; returns 0 or KF_CLI_EXIT_USAGE
 * (printed). kf_cli_print_report prints the reply: the server's error
 * (`what` prefixes it, as in kf_cli_report_status), the whole object as
 * JSON when output is set, else its text; returns the exit code. */
int kf_cli_report_format(struct kf_cli *cli, const char *output);
int kf_cli_print_report(struct kf_cli *cli, const struct kf_cli_response *resp, const char *output,
                        const char *what);

/* ---- BroadcastJobs (cli-broadcast.c) ------------------------------------------ */

/* "850ms", "1.2s", "42s", "2m03s", "1h02m". */
void kf_cli_bcj_duration(int64_t ms, struct kf_strbuf *out);
/* describe's Hosts section of job: counts, a table of the tasks given
 * (failed, active and succeeded ones, each a JSON array, at most a few dozen
 * each), how to list the rest, and the tail of the output of the first
 * failures. */
void kf_cli_bcj_hosts_format(const json_t *job, const json_t *failed, const json_t *active,
                             const json_t *succeeded, int64_t now_ms, struct kf_strbuf *out);
/* The same, reading the tasks from the server (three LISTs with a limit). */
void kf_cli_bcj_describe_hosts(struct kf_cli *cli, const json_t *job, struct kf_strbuf *out);
/* One progress line: "NAME [###xx>>.....] 3/10 succeeded, 2 failed, 2
 * active  running 12s", the bar `width` characters wide. */
void kf_cli_bcj_progress(const json_t *job, int64_t now_ms, int width, struct kf_strbuf *out);
/* Whether the job is over (phase completed or failed); then *ret_exit is 0,
 * KF_CLI_EXIT_TASKS_FAILED or KF_CLI_EXIT_JOB_FAILED. */
bool kf_cli_bcj_finished(const json_t *job, int *ret_exit);

/* ---- Releases (cli-rollout.c) -------------------------------------------------- */

/* `rollout status`'s view of a Release: a line for the release, a progress
 * bar per wave (updated #, failed x, upgrading >), why it is paused. */
void kf_cli_rollout_format(const json_t *rel, struct kf_strbuf *out);
/* Whether the release is over for `rollout status` (its status reflects
 * its spec, and it completed, paused or was aborted); then *ret_exit is 0
 * or KF_CLI_EXIT_ROLLOUT_STOPPED. */
bool kf_cli_rollout_finished(const json_t *rel, int *ret_exit);

/* ---- input (cli-input.c) ----------------------------------------------------- */

/* One object read from a -f source, with where it came from. */
struct kf_cli_input_obj {
    json_t *obj;  /* owned */
    char *source; /* "web.yaml document 2" */
};
struct kf_cli_inputs {
    struct kf_cli_input_obj *items;
    size_t n, alloc;
};
void kf_cli_inputs_release(struct kf_cli_inputs *in);

/* Most bytes read from one -f file or stdin. */
#define KF_CLI_MAX_INPUT (64u * 1024 * 1024)

/* Reads objects from path: a file (YAML or JSON, several documents), a
 * directory (its *.yaml, *.yml and *.json files in name order) or "-"
 * (stdin). `List` kinds (kind "List" or "<Kind>List" with items) are
 * unpacked. Every object must be a mapping with a kind. -EINVAL with a
 * message naming the file and document on the first problem. */
int kf_cli_input_read(const char *path, FILE *stdin_file, struct kf_cli_inputs *ret,
                      struct kf_strbuf *err);
/* kf_cli_input_read for every -f of args, in order, into *ret; stops at the
 * first problem (-EINVAL with its message). */
int kf_cli_input_read_args(const struct kf_cli_args *args, FILE *stdin_file,
                           struct kf_cli_inputs *ret, struct kf_strbuf *err);
/* Parses one buffer (named `name` in messages) into objects. */
int kf_cli_input_parse(const char *name, const char *buf, size_t len, struct kf_cli_inputs *ret,
                       struct kf_strbuf *err);
/* The kind of an input object, checking apiVersion (absent is fine,
 * otherwise "kfleet.io/v1") and metadata.name. -EINVAL with a message. */
int kf_cli_input_kind(const json_t *obj, const struct kf_kind **ret, struct kf_strbuf *err);

/* ---- apply (cli-apply.c) --------------------------------------------------- */

#define KF_CLI_LAST_APPLIED "kfleet.io/last-applied-configuration"

/* The RFC 7386 merge patch that takes `live` to what `desired` says, given
 * what the previous apply wrote (`last`, may be NULL): every field of
 * desired, null for each field that `last` had and desired no longer has,
 * and the last-applied annotation set to desired. New reference. */
json_t *kf_cli_apply_patch(const json_t *desired, const json_t *last);

/* ---- shared by commands (cli-get.c) ------------------------------------------ */

/* Lists every object of k matching the selectors (either may be NULL),
 * `page` objects per request (0: all at once), following `continue` and
 * starting over once if the server expired the snapshot (410). Sets
 * *ret_items (new array) and *ret_rv (the list's resourceVersion; caller
 * frees; ret_rv may be NULL). Returns an exit code; errors are printed. */
int kf_cli_list(struct kf_cli *cli, const struct kf_kind *k, const char *labels, const char *fields,
                size_t page, json_t **ret_items, char **ret_rv);
/* GETs the collection at path (with its query, without limit or continue)
 * page after page, following `continue`, until no continue comes back or at
 * least `max` items were read (0: no cap), appending to *ret_items (a new
 * array, set on success only). 0, or -1 with why (nothing printed): for
 * callers that show a part of the answer, like describe's events. */
int kf_cli_list_path(struct kf_cli *cli, const char *path, size_t max, json_t **ret_items,
                     struct kf_strbuf *why);
/* GETs one object into *ret (new reference). Returns an exit code; errors
 * are printed except a 404 when quiet_404. */
int kf_cli_get_one(struct kf_cli *cli, const struct kf_kind *k, const char *name, bool quiet_404,
                   json_t **ret);
/* The --wait of a long operation on one guest cluster (cli-wait.c). */
struct kf_cli_cluster_wait {
    const char *what;     /* "restore": "guestcluster/C restore: <progress>" */
    const char *done_as;  /* "restored on": "guestcluster/C restored on unit U, endpoint E" */
    const char *done_key; /* the annotation that names the last request done */
    /* The progress of the cluster gc, printed whenever it changes (NULL: none). */
    const char *(*progress)(const json_t *gc);
};
/* Polls guest cluster `cluster` until w->done_key names request id (its
 * first word), printing the progress as it changes; gives up after
 * timeout_ms (the operation goes on). Returns an exit code; errors are
 * printed. */
int kf_cli_wait_cluster(struct kf_cli *cli, const char *cluster, const char *id, int64_t timeout_ms,
                        const struct kf_cli_cluster_wait *w);
/* --limit / --chunk-size (default 500). Returns 0 or KF_CLI_EXIT_USAGE
 * (printed). */
int kf_cli_page_size(struct kf_cli *cli, const struct kf_cli_args *args, size_t *ret);
/* For a command that handles several objects: folds the exit code r of one
 * into *rc (the first failure wins, see enum kf_cli_exit) and returns whether
 * to go on with the others: not after KF_CLI_EXIT_UNREACHABLE, as the server
 * would not answer for them either. */
bool kf_cli_fold_exit(int *rc, int r);

/* ---- commands -------------------------------------------------------------- */

extern const struct kf_cli_opt kf_cli_get_opts[];
extern const struct kf_cli_opt kf_cli_describe_opts[];
extern const struct kf_cli_opt kf_cli_apply_opts[];
extern const struct kf_cli_opt kf_cli_delete_opts[];
extern const struct kf_cli_opt kf_cli_backup_opts[];
extern const struct kf_cli_opt kf_cli_restore_opts[];
extern const struct kf_cli_opt kf_cli_migrate_opts[];
extern const struct kf_cli_opt kf_cli_watch_opts[];
extern const struct kf_cli_opt kf_cli_version_opts[];
extern const struct kf_cli_opt kf_cli_explain_opts[];
extern const struct kf_cli_opt kf_cli_upgrade_opts[];
extern const struct kf_cli_opt kf_cli_rollback_opts[];
extern const struct kf_cli_opt kf_cli_plan_opts[];
extern const struct kf_cli_opt kf_cli_migrate_store_opts[];
extern const struct kf_cli_opt kf_cli_rollout_opts[];

/* `get kubeconfig CLUSTER`, `get etcdclient CLUSTER --dir DIR` (cli-kubeconfig.c). */
int kf_cli_get_kubeconfig(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_get_etcdclient(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_get(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_describe(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_apply(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_delete(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_backup(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_restore(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_migrate(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_watch(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_api_resources(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_version(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_explain(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_plan(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_rollout(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_upgrade(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_rollback(struct kf_cli *cli, const struct kf_cli_args *args);
/* cli-migrate-store.c: works on stores directly, needs no server. */
int kf_cli_cmd_migrate_store(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_config(struct kf_cli *cli, const struct kf_cli_args *args);
int kf_cli_cmd_help(struct kf_cli *cli, const struct kf_cli_args *args);

/* Resolves a KIND argument (kind, plural, singular or short name) or prints
 * an error that points at `kfleet api-resources` and returns NULL. */
const struct kf_kind *kf_cli_kind_arg(struct kf_cli *cli, const char *arg);

#endif
