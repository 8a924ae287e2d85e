/* cli-main.c: the kfleet command-line client (placeholder). */
#include <stdio.h>

#include "kfleet/base.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("usage: kfleet COMMAND [ARGS]\n");
    return 0;
}
