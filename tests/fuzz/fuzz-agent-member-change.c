/* fuzz-agent-member-change.c: the agent's reader of an etcd membership
 * change request (kf_agent_member_change_parse, agent-replace.c), whose
 * parts become etcdctl arguments. Anything is read or refused; what is
 * accepted is a request id of digits and '-', https:// URLs without
 * blanks, commas (but between old URLs) or '=', a member name that is a
 * DNS label (never an option), and says the same thing again when written
 * back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "agent/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kf_agent_member_change c;
    char *s = malloc(size + 1), again[1000];

    kf_assert(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    if (kf_agent_member_change_parse(s, &c) == 0) {
        kf_assert(c.request[0] && strspn(c.request, "0123456789-") == strlen(c.request));
        kf_assert(c.name[0] != '-' && !strpbrk(c.name, " ,=/"));
        kf_assert(kf_str_has_prefix(c.new_url, "https://") && !strpbrk(c.new_url, " ,="));
        kf_assert(!strcmp(c.old_url, "-") || kf_str_has_prefix(c.old_url, "https://"));
        kf_assert(!strpbrk(c.old_url, " ="));
        for (const char *p = c.new_url; *p; p++)
            kf_assert((unsigned char)*p > ' ' && (unsigned char)*p != 0x7f);
        snprintf(again, sizeof(again), "%s %s %s %s", c.request, c.old_url, c.name, c.new_url);
        kf_assert(strcmp(again, s) == 0);
    }
    free(s);
    return 0;
}
