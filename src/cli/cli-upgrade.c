/* cli-upgrade.c: `kfleet upgrade CLUSTER VERSION [--force]` and `kfleet
 * rollback CLUSTER`, one GuestCluster's upgrade (docs/internals/upgrades.md).
 *
 * Both are merge patches of the cluster's spec, so what they do is what an
 * operator editing the object would do, and admission's rules (one minor
 * at a time, no expired version) answer them: upgrade sets spec.version
 * (and spec.upgrade.force); rollback sets spec.version back to the version
 * the unfinished upgrade started from, which the controller takes as "move
 * the members that moved back". The resourceVersion read goes with the
 * patch, so the decision is made on what is stored: when the cluster
 * changed in between (during an upgrade its status changes every few
 * seconds), the command reads it again, decides again and retries, a few
 * times, before it reports the conflict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

const struct kf_cli_opt kf_cli_upgrade_opts[] = {
    { "force", 0, KF_CLI_FLAG, NULL, "start outside the maintenance window (spec.upgrade.force)" },
    { NULL, 0, 0, NULL, NULL },
};

const struct kf_cli_opt kf_cli_rollback_opts[] = {
    { NULL, 0, 0, NULL, NULL },
};

#define CONFLICT_TRIES 5
#define PATCH_CONFLICT (-1) /* patch_spec: the cluster changed since rv */

/* PATCHes spec (a JSON object, taken) onto cluster name at revision rv;
 * PATCH_CONFLICT (nothing reported) when rv is no longer the cluster's and
 * last_try is false. */
static int patch_spec(struct kf_cli *cli, const char *name, const char *rv, json_t *spec,
                      bool last_try)
{
    json_t *body = json_pack("{s:{s:s}, s:o}", "metadata", "resourceVersion", rv, "spec", spec);
    char *text = json_dumps(body, JSON_COMPACT), *path = kf_cli_path(&kf_kind_guestcluster, name);
    char *ref = kf_cli_ref(&kf_kind_guestcluster, name);
    struct kf_cli_response resp = { 0 };
    int rc = KF_CLI_EXIT_OK;

    if (kf_cli_request(cli, "PATCH", path, "application/merge-patch+json", text, strlen(text),
                       &resp) < 0)
        rc = KF_CLI_EXIT_UNREACHABLE;
    else if (resp.status == 409 && !last_try)
        rc = PATCH_CONFLICT;
    else if (resp.status < 200 || resp.status >= 300)
        rc = kf_cli_report_status(cli, &resp, ref);
    kf_cli_response_release(&resp);
    free(ref);
    free(path);
    free(text);
    json_decref(body);
    return rc;
}

int kf_cli_cmd_upgrade(struct kf_cli *cli, const struct kf_cli_args *args)
{
    bool force = kf_cli_args_has(args, "force");
    const char *name, *version;
    json_t *gc = NULL, *spec;
    int rc;

    if (args->n_pos != 2) {
        kf_cli_error(cli, "kfleet upgrade needs CLUSTER VERSION (e.g. kfleet upgrade web 1.37)");
        return KF_CLI_EXIT_USAGE;
    }
    name = args->pos[0];
    version = args->pos[1];
    rc = kf_cli_connect(cli);
    for (int i = 1; rc == 0 || rc == PATCH_CONFLICT; i++) {
        json_decref(gc);
        gc = NULL;
        rc = kf_cli_get_one(cli, &kf_kind_guestcluster, name, false, &gc);
        if (rc)
            return rc;
        spec = json_pack("{s:s}", "version", version);
        if (force)
            json_object_set_new(spec, "upgrade", json_pack("{s:b}", "force", 1));
        rc = patch_spec(cli, name, kf_json_str(gc, "metadata.resourceVersion", ""), spec,
                        i == CONFLICT_TRIES);
        if (rc != PATCH_CONFLICT)
            break;
    }
    if (rc == 0)
        fprintf(cli->out,
                "guestcluster/%s: upgrade from %s to %s requested%s; kfleet get gc %s shows "
                "its progress\n",
                name, kf_json_str(gc, "status.version", "?"), version,
                force ? " (outside the maintenance window if need be)" : "", name);
    json_decref(gc);
    return rc;
}

int kf_cli_cmd_rollback(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const char *name, *from, *to;
    json_t *gc = NULL;
    int rc;

    if (args->n_pos != 1) {
        kf_cli_error(cli, "kfleet rollback needs CLUSTER");
        return KF_CLI_EXIT_USAGE;
    }
    name = args->pos[0];
    rc = kf_cli_connect(cli);
    for (int i = 1; rc == 0 || rc == PATCH_CONFLICT; i++) {
        json_decref(gc);
        gc = NULL;
        rc = kf_cli_get_one(cli, &kf_kind_guestcluster, name, false, &gc);
        if (rc)
            return rc;
        from = kf_json_str(gc, "status.upgrade.from", NULL);
        to = kf_json_str(gc, "status.upgrade.to", NULL);
        if (!from || kf_json_str(gc, "status.upgrade.finishedAt", NULL)) {
            kf_cli_error(cli,
                         "guestcluster/%s has no unfinished upgrade to roll back%s%s%s "
                         "(Kubernetes does not support downgrading a finished one)",
                         name, to ? " (the last one, to " : "", to ? to : "",
                         to ? ", finished)" : "");
            json_decref(gc);
            return KF_CLI_EXIT_REFUSED;
        }
        rc = patch_spec(cli, name, kf_json_str(gc, "metadata.resourceVersion", ""),
                        json_pack("{s:s}", "version", from), i == CONFLICT_TRIES);
        if (rc != PATCH_CONFLICT)
            break;
    }
    if (rc == 0)
        fprintf(cli->out,
                "guestcluster/%s: rolling back the upgrade to %s: the members that moved return "
                "to %s\n",
                name, to ? to : "?", from);
    json_decref(gc);
    return rc;
}
