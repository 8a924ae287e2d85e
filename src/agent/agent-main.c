/* agent-main.c: kfleet-agent, the host agent (placeholder until the agents
 * issue). */
#include <stdio.h>

#include "kfleet/base.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("usage: kfleet-agent --server URL --token T --role meta|worker --name N --zone Z\n");
    return 0;
}
