/* fuzz-agent-restore.c: the agent's reader of a member's restore
 * annotation (kf_agent_restore_parse, agent-backup.c), which names the
 * snapshot file whose data replaces an etcd member's. Anything is read or
 * refused; what is accepted is a number, an absolute ".db" path without
 * "..", and a sha256 of 64 hex digits, and says the same thing again when
 * written back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "agent/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), id[64], path[2048], sum[80], again[2400];

    kf_assert(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    if (kf_agent_restore_parse(s, id, path, sum) == 0) {
        kf_assert(id[0] && strspn(id, "0123456789") == strlen(id));
        kf_assert(path[0] == '/' && !strstr(path, "/../") && kf_str_has_suffix(path, ".db"));
        kf_assert(strlen(sum) == 71 && !strncmp(sum, "sha256:", 7));
        snprintf(again, sizeof(again), "%s %s %s", id, path, sum);
        kf_assert(strcmp(again, s) == 0);
    }
    free(s);
    return 0;
}
