/* cli-plan.c: `kfleet plan`: what a demand needs in a region.
 *
 *   kfleet plan --region cn-hangzhou --add 500xG1 --add 40xG3 \
 *               --host-cpu 64 --host-memory 256Gi [--max-unit-hosts 12]
 *
 * kfleetd's placement controller simulates the demand with the real
 * placement on copies of the region's units (POST /apis/kfleet.io/v1/plan):
 * which existing units absorb how many clusters of each grade, how many
 * hosts they would need to grow by (with --max-unit-hosts), and how many new
 * units of --new-unit-hosts hosts over --new-unit-zones zones the rest
 * needs, all at each unit's water level. The host shape defaults to the
 * region's usual host. Prints the server's table, or its JSON with -o json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

const struct kf_cli_opt kf_cli_plan_opts[] = {
    { "region", 0, KF_CLI_VALUE, "REGION", "the region to plan for (required)" },
    { "add", 0, KF_CLI_LIST, "NxGRADE", "demand, e.g. 500xG1 (repeat for more grades)" },
    { "host-cpu", 0, KF_CLI_VALUE, "CPU", "allocatable CPU of a new host (\"64\")" },
    { "host-memory", 0, KF_CLI_VALUE, "MEMORY", "allocatable memory of a new host (\"256Gi\")" },
    { "max-unit-hosts", 0, KF_CLI_VALUE, "N",
      "existing units may grow up to N hosts (default: they do not grow)" },
    { "new-unit-hosts", 0, KF_CLI_VALUE, "N", "hosts of a new unit (default 9)" },
    { "new-unit-zones", 0, KF_CLI_VALUE, "N", "zones of a new unit (default 3)" },
    { "output", 'o', KF_CLI_VALUE, "FORMAT", "json, or the text table (default)" },
    { NULL, 0, 0, NULL, NULL },
};

static int add_count(struct kf_cli *cli, json_t *body, const struct kf_cli_args *args,
                     const char *opt, const char *key)
{
    const char *v = kf_cli_args_get(args, opt);
    int64_t n;

    if (!v)
        return 0;
    if (kf_parse_int64(v, &n) < 0 || n < 1 || n > 10000) {
        kf_cli_error(cli, "--%s takes a number from 1 to 10000, not \"%s\"", opt, v);
        return KF_CLI_EXIT_USAGE;
    }
    json_object_set_new(body, key, json_integer(n));
    return 0;
}

int kf_cli_cmd_plan(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const char *region = kf_cli_args_get(args, "region");
    const char *fmt = kf_cli_args_get(args, "output");
    const char *cpu = kf_cli_args_get(args, "host-cpu");
    const char *mem = kf_cli_args_get(args, "host-memory");
    struct kf_cli_response resp = { 0 };
    json_t *body, *add;
    char *text;
    size_t len;
    int rc;

    if (!region || !kf_cli_args_get(args, "add") || args->n_pos) {
        kf_cli_error(cli, "usage: kfleet plan --region REGION --add NxGRADE [--add ...] "
                          "[--host-cpu CPU --host-memory MEMORY]");
        return KF_CLI_EXIT_USAGE;
    }
    rc = kf_cli_report_format(cli, fmt);
    if (rc)
        return rc;
    add = json_array();
    for (size_t i = 0; kf_cli_args_nth(args, "add", i); i++) {
        /* "500xG1,40xG3" works too; the server checks each entry */
        char *copy = kf_xstrdup(kf_cli_args_nth(args, "add", i)), *save = NULL;

        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(add, json_string(t));
        free(copy);
    }
    body = json_pack("{s:s, s:o}", "region", region, "add", add);
    if (cpu)
        json_object_set_new(body, "hostCPU", json_string(cpu));
    if (mem)
        json_object_set_new(body, "hostMemory", json_string(mem));
    if ((rc = add_count(cli, body, args, "max-unit-hosts", "maxUnitHosts")) ||
        (rc = add_count(cli, body, args, "new-unit-hosts", "newUnitHosts")) ||
        (rc = add_count(cli, body, args, "new-unit-zones", "newUnitZones"))) {
        json_decref(body);
        return rc;
    }
    rc = kf_cli_connect(cli);
    if (rc) {
        json_decref(body);
        return rc;
    }
    text = kf_json_dump(body, &len);
    json_decref(body);
    if (kf_cli_request(cli, "POST", "/apis/kfleet.io/v1/plan", "application/json", text, len,
                       &resp) < 0) {
        free(text);
        return KF_CLI_EXIT_UNREACHABLE;
    }
    free(text);
    rc = kf_cli_print_report(cli, &resp, fmt, "plan");
    kf_cli_response_release(&resp);
    return rc;
}
