/* fuzz-agent-watch.c: the agent's reader of kfleetd's watch stream
 * (kf_agent_watch_decode, agent-watch.c), fed line by line as
 * kf_agent_http_stream hands lines over (split at '\n', empty lines
 * skipped). Every line must be read or ignored; an event handed to the main
 * loop has one of the three types and an object, and the resourceVersion
 * kept stays a string that fits. */
#include <stdint.h>
#include <string.h>

#include "kfleet/json.h"
#include "agent/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_line(const char *s, size_t n, char rv[32])
{
    struct kf_agent_msg *m = (struct kf_agent_msg *)1;
    int r = kf_agent_watch_decode(s, n, rv, 32, &m);

    kf_assert(r == 0 || r == 1);
    kf_assert(memchr(rv, '\0', 32) != NULL);
    if (!m)
        return;
    kf_assert(r == 0 && m->type == KF_AGENT_MSG_EVENT && json_is_object(m->obj));
    kf_assert(strcmp(m->event, "ADDED") == 0 || strcmp(m->event, "MODIFIED") == 0 ||
              strcmp(m->event, "DELETED") == 0);
    kf_agent_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    char rv[32] = "";

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

        if (n)
            one_line(p, n, rv);
        p += n + 1;
    }
    return 0;
}
