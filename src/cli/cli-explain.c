/* cli-explain.c: `kfleet explain`, two questions with one verb.
 *
 *   kfleet explain guestcluster NAME [-o json]
 *       why the cluster is (or would be) placed where it is: every unit of
 *       its region with each filter passed or failed and the numbers, the
 *       score breakdown, the decision and the member bindings. Computed by
 *       kfleetd's placement controller on its own state
 *       (GET /apis/kfleet.io/v1/guestclusters/NAME/explain); printed as the
 *       server's text, or its JSON with -o json.
 *   kfleet explain KIND[.FIELD...]
 *       what a kind or a field is (type, rules, default, description, its
 *       fields), from the schema tables compiled into the client, as
 *       `kubectl explain` does; no server needed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

const struct kf_cli_opt kf_cli_explain_opts[] = {
    { "output", 'o', KF_CLI_VALUE, "FORMAT", "json, or the text table (default)" },
    { NULL, 0, 0, NULL, NULL },
};

static int explain_schema(struct kf_cli *cli, const char *arg)
{
    char *copy = kf_xstrdup(arg), *dot = strchr(copy, '.');
    const struct kf_kind *k;
    struct kf_strbuf out = KF_STRBUF_INIT;
    int rc = KF_CLI_EXIT_OK;

    if (dot)
        *dot = '\0';
    k = kf_cli_kind_arg(cli, copy);
    if (!k) {
        free(copy);
        return KF_CLI_EXIT_USAGE;
    }
    if (kf_kind_explain(k, dot ? dot + 1 : NULL, &out) < 0) {
        kf_cli_error(cli, "%s has no field \"%s\"", k->kind, dot + 1);
        rc = KF_CLI_EXIT_NOTFOUND;
    } else {
        fputs(out.buf, cli->out);
    }
    kf_strbuf_release(&out);
    free(copy);
    return rc;
}

int kf_cli_cmd_explain(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const char *fmt = kf_cli_args_get(args, "output");
    const struct kf_kind *k;
    struct kf_cli_response resp = { 0 };
    struct kf_strbuf path = KF_STRBUF_INIT;
    char *base, *what;
    int rc;

    if (args->n_pos == 1)
        return explain_schema(cli, args->pos[0]);
    if (args->n_pos != 2) {
        kf_cli_error(cli, "usage: kfleet explain guestcluster NAME, or kfleet explain "
                          "KIND[.FIELD] (see `kfleet help explain`)");
        return KF_CLI_EXIT_USAGE;
    }
    rc = kf_cli_report_format(cli, fmt);
    if (rc)
        return rc;
    k = kf_cli_kind_arg(cli, args->pos[0]);
    if (!k)
        return KF_CLI_EXIT_USAGE;
    if (k != &kf_kind_guestcluster) {
        kf_cli_error(cli,
                     "placement is explained for guest clusters only; for what a %s is, "
                     "run `kfleet explain %s`",
                     k->singular, k->singular);
        return KF_CLI_EXIT_USAGE;
    }
    rc = kf_cli_connect(cli);
    if (rc)
        return rc;
    base = kf_cli_path(k, args->pos[1]);
    kf_strbuf_addf(&path, "%s/explain", base);
    free(base);
    if (kf_cli_request(cli, "GET", path.buf, NULL, NULL, 0, &resp) < 0) {
        kf_strbuf_release(&path);
        return KF_CLI_EXIT_UNREACHABLE;
    }
    kf_strbuf_release(&path);
    what = kf_cli_ref(k, args->pos[1]);
    rc = kf_cli_print_report(cli, &resp, fmt, what);
    free(what);
    kf_cli_response_release(&resp);
    return rc;
}
