/* cli-help.c: `kfleet help [COMMAND]`, from the command table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/strbuf.h"
#include "cli/cli.h"

int kf_cli_cmd_help(struct kf_cli *cli, const struct kf_cli_args *args)
{
    if (args->n_pos == 0) {
        kf_cli_print_overview(cli->out, cli->commands, cli->n_commands);
        return KF_CLI_EXIT_OK;
    }
    for (size_t i = 0; i < cli->n_commands; i++) {
        if (strcmp(cli->commands[i].name, args->pos[0]) == 0) {
            kf_cli_print_command_help(cli->out, &cli->commands[i]);
            return KF_CLI_EXIT_OK;
        }
    }
    kf_cli_error(cli, "kfleet has no command \"%s\"; `kfleet help` lists them", args->pos[0]);
    return KF_CLI_EXIT_USAGE;
}
