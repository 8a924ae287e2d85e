/* cli-api-resources.c: `kfleet api-resources`: the kinds the server serves,
 * from its discovery document /apis/kfleet.io/v1, with the short names
 * that KIND arguments accept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

int kf_cli_cmd_api_resources(struct kf_cli *cli, const struct kf_cli_args *args)
{
    static const char *const header[] = { "NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED",
                                          "KIND" };
    struct kf_cli_response resp = { 0 };
    struct kf_cli_table t;
    json_t *resources, *r;
    size_t i;
    int rc;

    if (args->n_pos > 0) {
        kf_cli_error(cli, "kfleet api-resources takes no arguments");
        return KF_CLI_EXIT_USAGE;
    }
    rc = kf_cli_connect(cli);
    if (rc)
        return rc;
    if (kf_cli_request(cli, "GET", "/apis/" KF_API_VERSION, NULL, NULL, 0, &resp) < 0)
        return KF_CLI_EXIT_UNREACHABLE;
    resources = json_object_get(resp.json, "resources");
    if (resp.status != 200 || !json_is_array(resources)) {
        rc = resp.status == 200 ? KF_CLI_EXIT_REFUSED : kf_cli_report_status(cli, &resp, NULL);
        if (resp.status == 200)
            kf_cli_error(cli, "the server's discovery document lists no resources");
        kf_cli_response_release(&resp);
        return rc;
    }
    kf_cli_table_init(&t, 5);
    kf_cli_table_add(&t, header);
    json_array_foreach(resources, i, r)
    {
        const char *name = kf_json_str(r, "name", "");
        struct kf_strbuf shorts = KF_STRBUF_INIT;
        const char *row[5];
        size_t j;
        json_t *s;

        if (strchr(name, '/'))
            continue; /* a subresource such as guestclusters/status */
        json_array_foreach(json_object_get(r, "shortNames"), j, s)
        {
            if (j > 0)
                kf_strbuf_addch(&shorts, ',');
            kf_strbuf_addstr(&shorts, json_is_string(s) ? json_string_value(s) : "");
        }
        row[0] = name;
        row[1] = shorts.buf;
        row[2] = KF_API_VERSION;
        row[3] = kf_json_bool(r, "namespaced", false) ? "true" : "false";
        row[4] = kf_json_str(r, "kind", "");
        kf_cli_table_add(&t, row);
        kf_strbuf_release(&shorts);
    }
    kf_cli_table_print(&t, cli->out);
    kf_cli_table_release(&t);
    kf_cli_response_release(&resp);
    return KF_CLI_EXIT_OK;
}
