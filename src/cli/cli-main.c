/* cli-main.c: `kfleet`, the command-line client of kfleetd.
 *
 * The commands are the static table below; main finds the command name
 * among the arguments (global options may come before it), parses the rest
 * against the command's options and the global ones, and runs it. Every
 * command returns one of the exit codes in cli.h. Adding a command is one
 * file (src/cli/cli-<name>.c) and one entry here; see cli.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

static const struct kf_cli_opt no_opts[] = {
    { NULL, 0, 0, NULL, NULL },
};

/* Commands still to come (top, rollout) get their entry here
 * when their file exists; `get kubeconfig` goes into cli-get.c's table. */
static const struct kf_cli_command commands[] = {
    {
        .name = "get",
        .usage = "KIND [NAME...] [-o json|yaml|wide|name] [-l SELECTOR] [--field-selector S]",
        .summary = "show objects as a table, JSON, YAML or names",
        .help = "Without NAME, lists every object of KIND (page by page, --limit at a time).\n"
                "The table has NAME, the kind's own columns and AGE; -o wide adds more.\n"
                "-o json and -o yaml print one object as itself and several as a List.\n"
                "\n"
                "Examples:\n"
                "  kfleet get guestclusters\n"
                "  kfleet get gc -l env=prod --field-selector status.phase=Pending\n"
                "  kfleet get gc web-1 -o yaml\n"
                "\n"
                "Into a guest cluster (admin only):\n"
                "  kfleet get kubeconfig web-1 > web-1.kubeconfig   # for kubectl\n"
                "  kfleet get etcdclient web-1 --dir ./web-1-etcd   # for etcdctl\n",
        .opts = kf_cli_get_opts,
        .run = kf_cli_cmd_get,
    },
    {
        .name = "describe",
        .usage = "KIND NAME...",
        .summary = "show an object in detail, with its conditions and recent events",
        .help = "Prints metadata, spec and status, the status conditions as a table, and\n"
                "the Events recorded about the object, newest last.\n"
                "\n"
                "Example:\n"
                "  kfleet describe guestcluster web-1\n",
        .opts = kf_cli_describe_opts,
        .run = kf_cli_cmd_describe,
    },
    {
        .name = "apply",
        .usage = "-f FILE|DIR|- [-f ...]",
        .summary = "create objects, or update them to match the files",
        .help = "Reads YAML or JSON (several documents, List kinds unpacked; a directory\n"
                "means its *.yaml, *.yml and *.json files). Each object is created if it\n"
                "does not exist, else changed with a merge patch: fields in the file are\n"
                "set, fields an earlier apply set and the file dropped are removed, and\n"
                "fields nobody applied (defaults, controllers' finalizers, status) stay.\n"
                "Prints `KIND/NAME created`, `configured` or `unchanged` for each.\n"
                "All files are read before anything is sent.\n"
                "\n"
                "Examples:\n"
                "  kfleet apply -f cluster.yaml\n"
                "  kfleet apply -f fleet/ -f extra.json\n"
                "  generate-clusters | kfleet apply -f -\n",
        .opts = kf_cli_apply_opts,
        .run = kf_cli_cmd_apply,
    },
    {
        .name = "delete",
        .usage = "KIND NAME... | -f FILE [--wait [--timeout DURATION]]",
        .summary = "delete objects",
        .help = "An object without finalizers is removed at once (`deleted`). One with\n"
                "finalizers is marked for deletion and removed when its controllers are\n"
                "done (`deletion requested (finalizers: ...)`); --wait waits for that.\n"
                "\n"
                "Examples:\n"
                "  kfleet delete gc web-1 web-2\n"
                "  kfleet delete -f cluster.yaml --wait --timeout 2m\n",
        .opts = kf_cli_delete_opts,
        .run = kf_cli_cmd_delete,
    },
    {
        .name = "backup",
        .usage = "create CLUSTER [--location NAME] [--wait [--timeout DURATION]]",
        .summary = "take an etcd snapshot of a guest cluster now",
        .help = "Creates a Backup; kfleetd picks the region's BackupLocation and a host\n"
                "running a Ready etcd member, whose agent takes a full snapshot through\n"
                "etcd's snapshot API and verifies it (revision, sha256, etcd's hash).\n"
                "--wait prints each step and ends with the revision and size (exit 0),\n"
                "or why it failed (exit 5). Scheduled backups need no command: the\n"
                "cluster's backup.interval and backup.retain say when and how many.\n"
                "\n"
                "Examples:\n"
                "  kfleet backup create web-1 --wait\n"
                "  kfleet get backups -l kfleet.io/cluster=web-1\n",
        .opts = kf_cli_backup_opts,
        .run = kf_cli_cmd_backup,
    },
    {
        .name = "restore",
        .usage = "CLUSTER --backup NAME [--unit UNIT] [--wait [--timeout DURATION]]",
        .summary = "bring a guest cluster's etcd back to a Backup (admin)",
        .help = "Checks first that the Backup is a verified snapshot of CLUSTER taken in\n"
                "its region and that the file's sha256 is the recorded one (a corrupted\n"
                "snapshot is refused, nothing stops). Then every etcd member is stopped,\n"
                "its data replaced by the snapshot (a new etcd member set at the backup's\n"
                "revision) and started, and the other members restart once. Writes made\n"
                "after the backup are gone. --wait prints the progress.\n"
                "\n"
                "With --unit, the cluster is brought back on another unit of its region\n"
                "instead (its own unit lost, or to leave it): placement checks first that\n"
                "the control plane fits there (its rules and the unit's water level; if\n"
                "not, the restore is refused with the reason), the old members stop, new\n"
                "ones start on UNIT from the snapshot, and the cluster's endpoint moves to\n"
                "an address of UNIT: fetch its kubeconfig again.\n"
                "\n"
                "Examples:\n"
                "  kfleet restore web-1 --backup web-1-20261207-120000 --wait\n"
                "  kfleet restore web-1 --backup web-1-20261207-120000 --unit hz-u2 --wait\n",
        .opts = kf_cli_restore_opts,
        .run = kf_cli_cmd_restore,
    },
    {
        .name = "migrate",
        .usage = "CLUSTER --unit UNIT [--wait [--timeout DURATION]]",
        .summary = "move a running guest cluster's control plane to another unit, live (admin)",
        .help = "Moves every member of CLUSTER to hosts of UNIT, one at a time, while the\n"
                "cluster serves: etcd members first (each one's membership changed by a\n"
                "member of its cluster, the quorum kept), then the apiservers behind the\n"
                "endpoint, then the others. When the last apiserver runs on UNIT, the\n"
                "endpoint is served by UNIT's load balancer (the same address and port\n"
                "when the units share an endpoint address). Refused with the reason when\n"
                "UNIT is not in the cluster's region, not Ready, has no room under its\n"
                "water level or lacks the cluster's version, or when a replacement,\n"
                "restore, upgrade or migration runs on the cluster. The phase says\n"
                "Migrating meanwhile and condition Migrated each member's step.\n"
                "\n"
                "Examples:\n"
                "  kfleet migrate web-1 --unit hz-u2 --wait\n",
        .opts = kf_cli_migrate_opts,
        .run = kf_cli_cmd_migrate,
    },
    {
        .name = "explain",
        .usage = "guestcluster NAME [-o json] | KIND[.FIELD...]",
        .summary = "why a cluster is placed where it is; or what a kind or field means",
        .help = "With a guest cluster's name: every unit of its region with each placement\n"
                "filter (region, unit, cordon, compliance, features, quota, grade ratio,\n"
                "zones, water level for cpu and memory, host fit) passed or failed with the\n"
                "numbers, the scores and their weights, the decision and where each member\n"
                "goes. kfleetd computes it on the placement controller's state; a placed\n"
                "cluster is shown as if it were placed now, itself left out.\n"
                "With KIND or KIND.FIELD: the field's type, rules and description, as\n"
                "kubectl explain does (from the client's own tables, no server needed).\n"
                "\n"
                "Examples:\n"
                "  kfleet explain guestcluster web-1\n"
                "  kfleet explain gc web-1 -o json\n"
                "  kfleet explain unit.spec.waterLevel\n",
        .opts = kf_cli_explain_opts,
        .run = kf_cli_cmd_explain,
    },
    {
        .name = "upgrade",
        .usage = "CLUSTER VERSION [--force]",
        .summary = "upgrade a guest cluster's Kubernetes, one minor at a time",
        .help = "Sets the cluster's spec.version. Inside its maintenance window (or at once\n"
                "with --force) kfleetd checks the cluster, moves etcd, then each apiserver,\n"
                "then the controller managers and schedulers, one member at a time, checks\n"
                "again, and only then reports the new version. A member that fails stops\n"
                "the upgrade there: kfleet rollback returns the members that moved.\n"
                "\n"
                "Examples:\n"
                "  kfleet upgrade web-1 1.37\n"
                "  kfleet upgrade web-1 1.37 --force\n"
                "  kfleet get gc web-1 -o yaml     # status.upgrade: each member's progress\n",
        .opts = kf_cli_upgrade_opts,
        .run = kf_cli_cmd_upgrade,
    },
    {
        .name = "rollback",
        .usage = "CLUSTER",
        .summary = "return the members an unfinished upgrade moved to the version they ran",
        .help = "Sets spec.version back to the version the cluster's unfinished (or failed)\n"
                "upgrade started from; kfleetd moves the members that moved back, last\n"
                "first, without waiting for a maintenance window. A finished upgrade is not\n"
                "rolled back: Kubernetes does not support downgrades.\n"
                "\n"
                "Example:\n"
                "  kfleet rollback web-1\n",
        .opts = kf_cli_rollback_opts,
        .run = kf_cli_cmd_rollback,
    },
    {
        .name = "plan",
        .usage = "--region REGION --add NxGRADE [--add ...] [--host-cpu CPU --host-memory MEM]",
        .summary = "what a demand of new clusters needs: units that absorb it, hosts, units",
        .help = "Simulates the demand with the real placement on copies of the region's\n"
                "units, biggest grades first, and prints which existing units absorb how\n"
                "many clusters of each grade, their water level after, and how many new\n"
                "units (of --new-unit-hosts hosts over --new-unit-zones zones) the rest\n"
                "needs; with --max-unit-hosts N, existing units may first grow to N hosts.\n"
                "Every unit stays at or below its mark. New hosts have --host-cpu and\n"
                "--host-memory (default: the region's usual host).\n"
                "\n"
                "Example:\n"
                "  kfleet plan --region cn-hangzhou --add 500xG1 --add 40xG3 \\\n"
                "      --host-cpu 64 --host-memory 256Gi\n",
        .opts = kf_cli_plan_opts,
        .run = kf_cli_cmd_plan,
    },
    {
        .name = "rollout",
        .usage = "status|pause|resume|abort RELEASE [--watch] [--timeout DURATION]",
        .summary = "follow, pause, resume or abort a Release",
        .help = "status prints the release (target, phase, current wave, updated and failed\n"
                "clusters) and a progress bar per wave: updated #, failed x, upgrading >.\n"
                "It exits 0 when the release completed (or, without --watch, is still\n"
                "progressing) and 7 when it is paused or aborted, as kubectl rollout status\n"
                "does; --watch prints it again at each change until then.\n"
                "pause holds the release (clusters already upgrading finish); resume goes\n"
                "on, accepting the failures so far; abort ends it for good. The controller\n"
                "pauses a release itself when its health gate fails, a wave has more failed\n"
                "clusters than maxFailures, or it makes no progress for progressDeadline.\n"
                "\n"
                "Examples:\n"
                "  kfleet rollout status k8s-1-37 --watch\n"
                "  kfleet rollout resume k8s-1-37\n",
        .opts = kf_cli_rollout_opts,
        .run = kf_cli_cmd_rollout,
    },
    {
        .name = "watch",
        .usage = "KIND [NAME] [-l SELECTOR] [--field-selector S] [-o wide|json|yaml|name]",
        .summary = "print objects as they change, one row per event",
        .help = "Prints the current objects as ADDED, then every change (ADDED, MODIFIED,\n"
                "DELETED) as it happens. Survives a server restart and compaction: it\n"
                "reconnects from the last resourceVersion seen, or lists again and prints\n"
                "what changed meanwhile. Runs until interrupted or --timeout.\n"
                "\n"
                "`kfleet watch broadcastjob NAME` shows a progress bar instead (succeeded\n"
                "#, failed x and active > of the desired hosts), redrawn in place on a\n"
                "terminal and a line per change otherwise, and ends with the job: exit 0\n"
                "when it completed, 6 when it completed with failed tasks, 5 when it failed\n"
                "(FailFast, the deadline) or was deleted before it ended.\n"
                "\n"
                "Examples:\n"
                "  kfleet watch gc -l env=prod\n"
                "  kfleet watch bcj agent-upgrade\n",
        .opts = kf_cli_watch_opts,
        .run = kf_cli_cmd_watch,
    },
    {
        .name = "api-resources",
        .usage = "",
        .summary = "list the kinds the server serves and their short names",
        .help = "",
        .opts = no_opts,
        .run = kf_cli_cmd_api_resources,
    },
    {
        .name = "config",
        .usage = "view | set-server URL | set-token TOKEN",
        .summary = "show or change the config file (server, token)",
        .help = "The config file is $KFLEET_CONFIG, or ~/.kfleet/config: YAML with the keys\n"
                "`server` and `token`, written with mode 0600. `view` shows it (token\n"
                "redacted) and which server and token are in effect, and from where.\n"
                "\n"
                "Examples:\n"
                "  kfleet config set-server https://kfleet.example.com:7480\n"
                "  kfleet config set-token \"$(cat ~/kfleet-token)\"\n"
                "  kfleet config view\n",
        .opts = no_opts,
        .run = kf_cli_cmd_config,
    },
    {
        .name = "migrate-store",
        .usage = "SRC DST [--force]",
        .summary = "copy a fleet from one store to another (SQLite to etcd)",
        .help = "Copies every key of SRC, read at one revision, into DST through the store\n"
                "layer (no kfleetd involved: stop the kfleetd that uses SRC first), then\n"
                "checks that DST holds the same keys and values (count and SHA-256).\n"
                "Re-running after an interruption skips what is already copied. A DST\n"
                "with other data is refused unless --force (the source wins).\n"
                "resourceVersions are DST's afterwards: clients list again.\n"
                "\n"
                "Examples:\n"
                "  kfleet migrate-store sqlite:./var/kfleet.db "
                "etcd:http://10.0.0.1:2379,http://10.0.0.2:2379\n"
                "  kfleet migrate-store sqlite:/srv/kf.db 'etcd:https://e1:2379?cacert=ca.pem'\n",
        .opts = kf_cli_migrate_store_opts,
        .run = kf_cli_cmd_migrate_store,
    },
    {
        .name = "version",
        .usage = "[--client]",
        .summary = "show the client's and the server's versions",
        .help = "",
        .opts = kf_cli_version_opts,
        .run = kf_cli_cmd_version,
    },
    {
        .name = "help",
        .usage = "[COMMAND]",
        .summary = "show this help, or a command's",
        .help = "",
        .opts = no_opts,
        .run = kf_cli_cmd_help,
    },
};

static const struct kf_cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Applies the global options to cli. Returns 0 or an exit code. */
static int apply_globals(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const char *timeout = kf_cli_args_get(args, "request-timeout");

    cli->flag_server = kf_cli_args_get(args, "server");
    cli->flag_token = kf_cli_args_get(args, "token");
    if (timeout) {
        int64_t s;

        if (kf_parse_int64(timeout, &s) < 0 || s < 0 || s > 86400) {
            kf_cli_error(cli, "--request-timeout takes seconds (0 to 86400), not \"%s\"", timeout);
            return KF_CLI_EXIT_USAGE;
        }
        cli->timeout_s = (long)s;
    }
    return 0;
}

static int run(struct kf_cli *cli, int argc, char **argv)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_cli_args args;
    const struct kf_cli_command *cmd;
    char **rest;
    int idx = kf_cli_find_command(argc, argv), n = 0, rc;

    if (idx >= argc) {
        /* No command: `kfleet --help` is help, anything else a usage error. */
        if (kf_cli_args_parse(&args, NULL, argc - 1, argv + 1, &err) == 0 &&
            kf_cli_args_has(&args, "help")) {
            kf_cli_args_release(&args);
            kf_cli_print_overview(cli->out, commands, KF_ARRAY_SIZE(commands));
            return KF_CLI_EXIT_OK;
        }
        kf_cli_args_release(&args);
        kf_strbuf_release(&err);
        kf_cli_print_overview(cli->err, commands, KF_ARRAY_SIZE(commands));
        return KF_CLI_EXIT_USAGE;
    }
    cmd = find_command(argv[idx]);
    if (!cmd) {
        kf_cli_error(cli, "kfleet has no command \"%s\"; `kfleet help` lists them", argv[idx]);
        return KF_CLI_EXIT_USAGE;
    }
    /* Everything but the program and the command name. */
    rest = kf_xcalloc((size_t)argc, sizeof(*rest));
    for (int i = 1; i < argc; i++)
        if (i != idx)
            rest[n++] = argv[i];
    if (kf_cli_args_parse(&args, cmd->opts, n, rest, &err) < 0) {
        kf_cli_error(cli, "%s (see `kfleet help %s`)", err.buf, cmd->name);
        rc = KF_CLI_EXIT_USAGE;
        goto release_args;
    }
    if (kf_cli_args_has(&args, "help")) {
        kf_cli_print_command_help(cli->out, cmd);
        rc = KF_CLI_EXIT_OK;
        goto release_args;
    }
    rc = apply_globals(cli, &args);
    if (rc == 0)
        rc = cmd->run(cli, &args);
release_args:
    kf_cli_args_release(&args);
    kf_strbuf_release(&err);
    free(rest);
    return rc;
}

int main(int argc, char **argv)
{
    struct kf_cli cli;
    int rc;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "error: cannot initialize libcurl\n");
        return KF_CLI_EXIT_UNREACHABLE;
    }
    kf_cli_init(&cli, stdout, stderr);
    cli.commands = commands;
    cli.n_commands = KF_ARRAY_SIZE(commands);
    rc = run(&cli, argc, argv);
    kf_cli_release(&cli);
    curl_global_cleanup();
    if (fflush(stdout) != 0 && rc == 0)
        rc = KF_CLI_EXIT_USAGE;
    return rc;
}
