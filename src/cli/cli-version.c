/* cli-version.c: `kfleet version`: the client's version and, unless
 * --client, the server's (from /version), so that a mismatch is easy to
 * see. */
#include <stdio.h>
#include <stdlib.h>

#include "kfleet/json.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

const struct kf_cli_opt kf_cli_version_opts[] = {
    { "client", 0, KF_CLI_FLAG, NULL, "only the client's version; do not ask the server" },
    { NULL, 0, 0, NULL, NULL },
};

int kf_cli_cmd_version(struct kf_cli *cli, const struct kf_cli_args *args)
{
    struct kf_cli_response resp = { 0 };
    int rc;

    fprintf(cli->out, "Client Version: kfleet %s\n", KF_VERSION);
    if (kf_cli_args_has(args, "client"))
        return KF_CLI_EXIT_OK;
    fflush(cli->out);
    rc = kf_cli_connect(cli);
    if (rc)
        return rc;
    if (kf_cli_request(cli, "GET", "/version", NULL, NULL, 0, &resp) < 0)
        return KF_CLI_EXIT_UNREACHABLE;
    if (resp.status != 200 || !json_is_object(resp.json)) {
        rc = kf_cli_report_status(cli, &resp, "/version");
    } else {
        const char *v = kf_json_str(resp.json, "gitVersion", NULL);

        if (v) {
            fprintf(cli->out, "Server Version: %s (%s)\n", v, cli->conn.server);
        } else {
            char *s = kf_json_dump(resp.json, NULL);

            fprintf(cli->out, "Server Version: %s (%s)\n", s, cli->conn.server);
            free(s);
        }
    }
    kf_cli_response_release(&resp);
    return rc;
}
