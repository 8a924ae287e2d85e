/* cli-backup.c: `kfleet backup create CLUSTER [--location L] [--wait]`.
 *
 * Creates a Backup named <cluster>-<YYYYMMDD-HHMMSSmmm> (UTC) for the cluster;
 * the backup controller assigns it a location and a host, whose agent
 * takes the snapshot (docs/internals/backups.md). With --wait the command
 * polls the Backup and prints each phase it passes through (its message
 * says what is going on: waiting for a Ready etcd member, taking the
 * snapshot on host h), until Succeeded (exit 0, with the revision, size
 * and checksum) or Failed (exit 5, with why).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

#define DEFAULT_WAIT_MS (15 * 60 * 1000)

const struct kf_cli_opt kf_cli_backup_opts[] = {
    { "location", 0, KF_CLI_VALUE, "NAME", "the BackupLocation (default: the region's)" },
    { "wait", 0, KF_CLI_FLAG, NULL, "wait until the snapshot is taken and verified" },
    { "timeout", 0, KF_CLI_VALUE, "DURATION", "how long --wait waits (default 15m)" },
    { NULL, 0, 0, NULL, NULL },
};

/* Polls the Backup and prints every change of phase or message. */
static int wait_done(struct kf_cli *cli, const char *name, const char *ref, int64_t timeout_ms)
{
    uint64_t deadline = kf_mono_ns() + (uint64_t)timeout_ms * 1000000;
    struct kf_strbuf last = KF_STRBUF_INIT;
    int rc;

    for (;;) {
        json_t *obj = NULL;
        const char *phase, *msg;
        struct kf_strbuf now = KF_STRBUF_INIT;

        rc = kf_cli_get_one(cli, &kf_kind_backup, name, false, &obj);
        if (rc != KF_CLI_EXIT_OK)
            break;
        phase = kf_json_str(obj, "status.phase", "Pending");
        msg = kf_json_str(obj, "status.message", "waiting for the backup controller");
        kf_strbuf_addf(&now, "%s %s: %s", ref, phase, msg);
        if (strcmp(now.buf, last.buf ? last.buf : "") != 0) {
            fprintf(cli->out, "%s\n", now.buf);
            fflush(cli->out);
            kf_strbuf_reset(&last);
            kf_strbuf_addstr(&last, now.buf);
        }
        kf_strbuf_release(&now);
        if (!strcmp(phase, "Succeeded")) {
            fprintf(cli->out, "%s revision %lld, %lld bytes, %s, in %s\n", ref,
                    (long long)kf_json_int(obj, "status.revision", 0),
                    (long long)kf_json_int(obj, "status.size", 0),
                    kf_json_str(obj, "status.checksum", ""), kf_json_str(obj, "status.path", ""));
            json_decref(obj);
            break;
        }
        if (!strcmp(phase, "Failed")) {
            json_decref(obj);
            rc = KF_CLI_EXIT_JOB_FAILED;
            break;
        }
        json_decref(obj);
        if (kf_mono_ns() >= deadline) {
            kf_cli_error(cli, "%s is not done after the timeout; it goes on (kfleet get backup %s)",
                         ref, name);
            rc = KF_CLI_EXIT_REFUSED;
            break;
        }
        kf_sleep_ms(500);
    }
    kf_strbuf_release(&last);
    return rc;
}

static int create(struct kf_cli *cli, const char *cluster, const char *location, bool wait,
                  int64_t timeout_ms)
{
    struct kf_cli_response resp = { 0 };
    char stamp[32], name[128], *path = kf_cli_path(&kf_kind_backup, NULL), *ref, *body;
    json_t *obj;
    int rc = KF_CLI_EXIT_OK;

    int64_t now = kf_now_ms();

    /* to the millisecond: two asked for in one second are two backups */
    kf_time_format_rfc3339(now, stamp, sizeof(stamp));
    snprintf(name, sizeof(name), "%s-%.4s%.2s%.2s-%.2s%.2s%.2s%03d", cluster, stamp, stamp + 5,
             stamp + 8, stamp + 11, stamp + 14, stamp + 17, (int)(now % 1000));
    ref = kf_cli_ref(&kf_kind_backup, name);
    obj = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "kfleet.io/v1", "kind",
                    "Backup", "metadata", "name", name, "labels", "kfleet.io/cluster", cluster,
                    "spec", "cluster", cluster);
    if (location)
        json_object_set_new(json_object_get(obj, "spec"), "location", json_string(location));
    body = json_dumps(obj, JSON_COMPACT);
    if (kf_cli_request(cli, "POST", path, "application/json", body, strlen(body), &resp) < 0)
        rc = KF_CLI_EXIT_UNREACHABLE;
    else if (resp.status != 201)
        rc = kf_cli_report_status(cli, &resp, ref);
    else {
        fprintf(cli->out, "%s created\n", ref);
        fflush(cli->out);
        if (wait)
            rc = wait_done(cli, name, ref, timeout_ms);
    }
    kf_cli_response_release(&resp);
    json_decref(obj);
    free(body);
    free(ref);
    free(path);
    return rc;
}

int kf_cli_cmd_backup(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const char *timeout = kf_cli_args_get(args, "timeout");
    int64_t timeout_ms = DEFAULT_WAIT_MS;

    if (args->n_pos != 2 || strcmp(args->pos[0], "create") != 0) {
        kf_cli_error(cli, "usage: kfleet backup create CLUSTER [--location NAME] [--wait]");
        return KF_CLI_EXIT_USAGE;
    }
    if (timeout && (kf_parse_duration_ms(timeout, &timeout_ms) < 0 || timeout_ms <= 0)) {
        kf_cli_error(cli, "--timeout takes a duration like 30s or 5m, not \"%s\"", timeout);
        return KF_CLI_EXIT_USAGE;
    }
    if (strlen(args->pos[1]) > 63) {
        kf_cli_error(cli, "a cluster name has at most 63 characters, not %zu",
                     strlen(args->pos[1]));
        return KF_CLI_EXIT_USAGE;
    }
    if (kf_cli_connect(cli) != 0)
        return KF_CLI_EXIT_USAGE;
    return create(cli, args->pos[1], kf_cli_args_get(args, "location"),
                  kf_cli_args_has(args, "wait"), timeout_ms);
}

/* --- kfleet restore ------------------------------------------------------------ */

const struct kf_cli_opt kf_cli_restore_opts[] = {
    { "backup", 0, KF_CLI_VALUE, "NAME", "the Backup to restore (required)" },
    { "unit", 0, KF_CLI_VALUE, "UNIT",
      "restore onto this unit of the cluster's region: a new member set there, the endpoint "
      "moves to it (admin)" },
    { "wait", 0, KF_CLI_FLAG, NULL, "wait until every member runs on the restored data" },
    { "timeout", 0, KF_CLI_VALUE, "DURATION", "how long --wait waits (default 15m)" },
    { NULL, 0, 0, NULL, NULL },
};

static const char *annotation(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(kf_json_path(obj, "metadata.annotations"), key));
}

static const char *restore_progress(const json_t *gc)
{
    return annotation(gc, "kfleet.io/restore-progress");
}

static const struct kf_cli_cluster_wait restore_wait = {
    .what = "restore",
    .done_as = "restored on",
    .done_key = "kfleet.io/restored",
    .progress = restore_progress,
};

int kf_cli_cmd_restore(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const char *bk = kf_cli_args_get(args, "backup"), *timeout = kf_cli_args_get(args, "timeout");
    const char *unit = kf_cli_args_get(args, "unit");
    struct kf_cli_response resp = { 0 };
    int64_t timeout_ms = DEFAULT_WAIT_MS;
    struct kf_strbuf path = KF_STRBUF_INIT;
    char *base, *ref;
    int rc = KF_CLI_EXIT_OK;

    if (args->n_pos != 1 || !bk || !*bk) {
        kf_cli_error(cli, "usage: kfleet restore CLUSTER --backup NAME [--unit UNIT] [--wait]");
        return KF_CLI_EXIT_USAGE;
    }
    if (timeout && (kf_parse_duration_ms(timeout, &timeout_ms) < 0 || timeout_ms <= 0)) {
        kf_cli_error(cli, "--timeout takes a duration like 30s or 5m, not \"%s\"", timeout);
        return KF_CLI_EXIT_USAGE;
    }
    if (kf_cli_connect(cli) != 0)
        return KF_CLI_EXIT_USAGE;
    if (unit) {
        /* onto another unit: the placement controller's move (ctrl-placement-move.c) */
        base = kf_cli_path(&kf_kind_guestcluster, args->pos[0]);
        kf_strbuf_addf(&path, "%s/move", base);
        kf_cli_path_add_query(&path, "unit", unit);
        kf_cli_path_add_query(&path, "backup", bk);
    } else {
        base = kf_cli_path(&kf_kind_backup, bk);
        kf_strbuf_addf(&path, "%s/restore", base);
        kf_cli_path_add_query(&path, "cluster", args->pos[0]);
    }
    ref = kf_cli_ref(&kf_kind_backup, bk);
    if (kf_cli_request(cli, "POST", path.buf, "application/json", "{}", 2, &resp) < 0)
        rc = KF_CLI_EXIT_UNREACHABLE;
    else if (resp.status != 200)
        rc = kf_cli_report_status(cli, &resp, ref);
    else {
        fprintf(cli->out, "guestcluster/%s restore from %s (revision %lld) started\n", args->pos[0],
                ref, (long long)kf_json_int(resp.json, "revision", 0));
        if (unit)
            fprintf(cli->out,
                    "guestcluster/%s moves from unit %s to unit %s: its endpoint changes to one "
                    "on unit %s (fetch its kubeconfig again: kfleet get kubeconfig %s)\n",
                    args->pos[0], kf_json_str(resp.json, "from", "?"), unit, unit, args->pos[0]);
        fflush(cli->out);
        if (kf_cli_args_has(args, "wait"))
            rc = kf_cli_wait_cluster(cli, args->pos[0], kf_json_str(resp.json, "restore", ""),
                                     timeout_ms, &restore_wait);
    }
    kf_cli_response_release(&resp);
    kf_strbuf_release(&path);
    free(base);
    free(ref);
    return rc;
}
