/* cli-args.c: command-line options for `kfleet`, and the help text built
 * from the command table.
 *
 * Each command declares its options in a table (struct kf_cli_opt); the
 * global options (--server, --token, ...) are accepted by every command,
 * before or after its name. Options and positionals may be mixed, as in
 * kubectl (`kfleet get gc web-1 -o yaml`); `--name=value`, `--name value`,
 * `-o json` and `-ojson` all work; "--" ends the options.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "cli/cli.h"

const struct kf_cli_opt kf_cli_global_opts[] = {
    { "server", 's', KF_CLI_VALUE, "URL", "kfleetd's URL (else $KFLEET_SERVER, config file)" },
    { "token", 0, KF_CLI_VALUE, "TOKEN", "bearer token (else $KFLEET_TOKEN, config file)" },
    { "request-timeout", 0, KF_CLI_VALUE, "SECONDS",
      "give up on a request after this long (default 60, 0: never)" },
    { "help", 'h', KF_CLI_FLAG, NULL, "show help for the command" },
    { NULL, 0, 0, NULL, NULL },
};

static const struct kf_cli_opt *find_long(const struct kf_cli_opt *opts, const char *name,
                                          size_t len)
{
    for (; opts && opts->name; opts++)
        if (strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
            return opts;
    return NULL;
}

static const struct kf_cli_opt *find_short(const struct kf_cli_opt *opts, char c)
{
    for (; opts && opts->name; opts++)
        if (opts->short_name && opts->short_name == c)
            return opts;
    return NULL;
}

static const struct kf_cli_opt *lookup_long(const struct kf_cli_opt *cmd_opts, const char *name,
                                            size_t len)
{
    const struct kf_cli_opt *o = find_long(cmd_opts, name, len);

    return o ? o : find_long(kf_cli_global_opts, name, len);
}

static const struct kf_cli_opt *lookup_short(const struct kf_cli_opt *cmd_opts, char c)
{
    const struct kf_cli_opt *o = find_short(cmd_opts, c);

    return o ? o : find_short(kf_cli_global_opts, c);
}

static void add_seen(struct kf_cli_args *a, const struct kf_cli_opt *o, const char *value)
{
    KF_GROW(a->seen, a->seen_alloc, a->n_seen + 1);
    a->seen[a->n_seen++] = (struct kf_cli_arg_seen){ .opt = o, .value = value };
}

static void add_pos(struct kf_cli_args *a, char *arg)
{
    KF_GROW(a->pos, a->pos_alloc, a->n_pos + 1);
    a->pos[a->n_pos++] = arg;
}

int kf_cli_args_parse(struct kf_cli_args *a, const struct kf_cli_opt *cmd_opts, int argc,
                      char **argv, struct kf_strbuf *err)
{
    bool options_done = false;

    *a = (struct kf_cli_args){ 0 };
    for (int i = 0; i < argc; i++) {
        char *arg = argv[i];
        const struct kf_cli_opt *o;
        const char *value = NULL;

        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            add_pos(a, arg);
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (arg[1] == '-') {
            const char *name = arg + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);

            o = lookup_long(cmd_opts, name, len);
            if (!o)
                return kf_err(err, -EINVAL, "unknown option \"--%.*s\"", (int)len, name);
            if (eq) {
                if (o->type == KF_CLI_FLAG)
                    return kf_err(err, -EINVAL, "option \"--%s\" takes no value", o->name);
                value = eq + 1;
            }
        } else {
            o = lookup_short(cmd_opts, arg[1]);
            if (!o)
                return kf_err(err, -EINVAL, "unknown option \"-%c\"", arg[1]);
            if (arg[2]) {
                if (o->type == KF_CLI_FLAG)
                    return kf_err(err, -EINVAL, "option \"-%c\" takes no value (in \"%s\")", arg[1],
                                  arg);
                value = arg[2] == '=' ? arg + 3 : arg + 2;
            }
        }
        if (o->type != KF_CLI_FLAG && !value) {
            if (i + 1 >= argc)
                return kf_err(err, -EINVAL, "option \"--%s\" needs a value (%s)", o->name,
                              o->metavar ? o->metavar : "VALUE");
            value = argv[++i];
        }
        add_seen(a, o, value);
    }
    return 0;
}

void kf_cli_args_release(struct kf_cli_args *a)
{
    if (!a)
        return;
    free(a->pos);
    free(a->seen);
    *a = (struct kf_cli_args){ 0 };
}

const char *kf_cli_args_get(const struct kf_cli_args *a, const char *name)
{
    for (size_t i = a->n_seen; i-- > 0;)
        if (strcmp(a->seen[i].opt->name, name) == 0)
            return a->seen[i].value;
    return NULL;
}

bool kf_cli_args_has(const struct kf_cli_args *a, const char *name)
{
    for (size_t i = 0; i < a->n_seen; i++)
        if (strcmp(a->seen[i].opt->name, name) == 0)
            return true;
    return false;
}

const char *kf_cli_args_nth(const struct kf_cli_args *a, const char *name, size_t n)
{
    for (size_t i = 0; i < a->n_seen; i++)
        if (strcmp(a->seen[i].opt->name, name) == 0 && n-- == 0)
            return a->seen[i].value;
    return NULL;
}

int kf_cli_find_command(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const struct kf_cli_opt *o;

        if (arg[0] != '-' || arg[1] == '\0')
            return i;
        if (strcmp(arg, "--") == 0)
            return i + 1 < argc ? i + 1 : argc;
        if (arg[1] == '-') {
            const char *name = arg + 2;

            if (strchr(name, '='))
                continue;
            o = find_long(kf_cli_global_opts, name, strlen(name));
        } else {
            o = arg[2] ? NULL : find_short(kf_cli_global_opts, arg[1]);
        }
        if (o && o->type != KF_CLI_FLAG)
            i++; /* skip its value */
    }
    return argc;
}

/* ---- help -------------------------------------------------------------------- */

static void print_opts(FILE *out, const struct kf_cli_opt *opts)
{
    for (; opts && opts->name; opts++) {
        char left[80];

        if (opts->short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", opts->short_name, opts->name,
                     opts->type == KF_CLI_FLAG ? "" : " ",
                     opts->type == KF_CLI_FLAG ? "" : (opts->metavar ? opts->metavar : "VALUE"));
        else
            snprintf(left, sizeof(left), "    --%s%s%s", opts->name,
                     opts->type == KF_CLI_FLAG ? "" : " ",
                     opts->type == KF_CLI_FLAG ? "" : (opts->metavar ? opts->metavar : "VALUE"));
        if (strlen(left) > 30)
            fprintf(out, "  %s\n  %-30s %s%s\n", left, "", opts->help,
                    opts->type == KF_CLI_LIST ? " (repeatable)" : "");
        else
            fprintf(out, "  %-30s %s%s\n", left, opts->help,
                    opts->type == KF_CLI_LIST ? " (repeatable)" : "");
    }
}

void kf_cli_print_overview(FILE *out, const struct kf_cli_command *cmds, size_t n)
{
    fprintf(out, "kfleet: the command-line client of kfleetd, the Kubernetes fleet manager.\n\n"
                 "usage: kfleet [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %-15s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(out, "\nGlobal options (before or after the command):\n");
    print_opts(out, kf_cli_global_opts);
    fprintf(out, "\nKIND is a kind, plural, singular or short name: GuestCluster, guestclusters,\n"
                 "guestcluster and gc all work (`kfleet api-resources` lists them).\n"
                 "\n"
                 "The server and token come from --server/--token, else $KFLEET_SERVER and\n"
                 "$KFLEET_TOKEN, else the config file ($KFLEET_CONFIG or ~/.kfleet/config,\n"
                 "managed with `kfleet config`), else " KF_CLI_DEFAULT_SERVER " without a token.\n"
                 "\n"
                 "Exit codes:\n"
                 "  0  done\n"
                 "  1  the server refused the request (an error status other than 404)\n"
                 "  2  usage error: bad command line, or a -f file that cannot be read or parsed\n"
                 "     (nothing was sent)\n"
                 "  3  the server could not be reached\n"
                 "  4  not found: the object does not exist\n"
                 "  5  (watch broadcastjob NAME) the job failed, or was deleted before it ended\n"
                 "  6  (watch broadcastjob NAME) the job completed, and some tasks failed\n"
                 "  7  (rollout status RELEASE) the release is paused or aborted\n"
                 "When several objects are handled, kfleet goes on past a failure and exits with\n"
                 "the code of the first one.\n"
                 "\n"
                 "`kfleet help COMMAND` or `kfleet COMMAND --help` tells more about a command.\n");
}

void kf_cli_print_command_help(FILE *out, const struct kf_cli_command *cmd)
{
    fprintf(out, "usage: kfleet %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->help && *cmd->help)
        fprintf(out, "\n%s", cmd->help);
    if (cmd->opts && cmd->opts->name) {
        fprintf(out, "\nOptions:\n");
        print_opts(out, cmd->opts);
    }
    fprintf(out, "\nGlobal options:\n");
    print_opts(out, kf_cli_global_opts);
}
