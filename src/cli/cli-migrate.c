/* cli-migrate.c: `kfleet migrate CLUSTER --unit UNIT [--wait]`, a live
 * migration of a guest cluster's control plane to another unit of its
 * region (docs/internals/migration.md): POST .../guestclusters/C/migrate
 * (admin), which refuses with the reason when the unit cannot take it; with
 * --wait, the cluster's Migrated condition is printed as it changes until
 * its kfleet.io/migrated annotation names the request.
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

const struct kf_cli_opt kf_cli_migrate_opts[] = {
    { "unit", 0, KF_CLI_VALUE, "UNIT", "the unit of the cluster's region to move to (required)" },
    { "wait", 0, KF_CLI_FLAG, NULL, "wait until every member runs on UNIT" },
    { "timeout", 0, KF_CLI_VALUE, "DURATION", "how long --wait waits (default 15m)" },
    { NULL, 0, 0, NULL, NULL },
};

static const char *migrated_message(const json_t *gc)
{
    const json_t *c;
    size_t i;

    json_array_foreach(kf_json_path(gc, "status.conditions"), i, c)
    {
        if (kf_streq(kf_json_str(c, "type", NULL), "Migrated"))
            return kf_json_str(c, "message", NULL);
    }
    return NULL;
}

static const struct kf_cli_cluster_wait migration_wait = {
    .what = "migration",
    .done_as = "migrated to",
    .done_key = "kfleet.io/migrated",
    .progress = migrated_message,
};

int kf_cli_cmd_migrate(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const char *unit = kf_cli_args_get(args, "unit"), *timeout = kf_cli_args_get(args, "timeout");
    struct kf_cli_response resp = { 0 };
    int64_t timeout_ms = DEFAULT_WAIT_MS;
    struct kf_strbuf path = KF_STRBUF_INIT;
    char *base, *ref;
    int rc = KF_CLI_EXIT_OK;

    if (args->n_pos != 1 || !unit || !*unit) {
        kf_cli_error(cli, "usage: kfleet migrate CLUSTER --unit UNIT [--wait]");
        return KF_CLI_EXIT_USAGE;
    }
    if (timeout && (kf_parse_duration_ms(timeout, &timeout_ms) < 0 || timeout_ms <= 0)) {
        kf_cli_error(cli, "--timeout takes a duration like 30s or 5m, not \"%s\"", timeout);
        return KF_CLI_EXIT_USAGE;
    }
    if (kf_cli_connect(cli) != 0)
        return KF_CLI_EXIT_USAGE;
    base = kf_cli_path(&kf_kind_guestcluster, args->pos[0]);
    kf_strbuf_addf(&path, "%s/migrate", base);
    kf_cli_path_add_query(&path, "unit", unit);
    ref = kf_cli_ref(&kf_kind_guestcluster, args->pos[0]);
    if (kf_cli_request(cli, "POST", path.buf, "application/json", "{}", 2, &resp) < 0)
        rc = KF_CLI_EXIT_UNREACHABLE;
    else if (resp.status != 200)
        rc = kf_cli_report_status(cli, &resp, ref);
    else {
        fprintf(cli->out,
                "guestcluster/%s migrates from unit %s to unit %s, one member at a time "
                "(its endpoint follows the apiservers)\n",
                args->pos[0], kf_json_str(resp.json, "from", "?"), unit);
        fflush(cli->out);
        if (kf_cli_args_has(args, "wait"))
            rc = kf_cli_wait_cluster(cli, args->pos[0], kf_json_str(resp.json, "migration", ""),
                                     timeout_ms, &migration_wait);
    }
    kf_cli_response_release(&resp);
    kf_strbuf_release(&path);
    free(base);
    free(ref);
    return rc;
}
