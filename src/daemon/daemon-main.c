/* daemon-main.c: kfleetd, the API server and controllers (placeholder until
 * the API server lands). */
#include <stdio.h>

#include "kfleet/base.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("usage: kfleetd [--listen HOST:PORT] [--store URL] [--token-file FILE] "
           "[--data-dir DIR]\n");
    return 0;
}
