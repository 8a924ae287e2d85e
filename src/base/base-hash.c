/* base-hash.c: FNV-1a (kf_fnv1a in base.h), the one copy behind kf_smap's
 * hash, the IPAM name index, metric label sets, Event and BroadcastTask
 * names, HAProxy process names and the OpenAPI document's ETag. */
#include "kfleet/base.h"

#define FNV1A_PRIME 1099511628211ull

uint64_t kf_fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV1A_PRIME;
    return h;
}

uint64_t kf_fnv1a_str(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * FNV1A_PRIME;
    return h;
}
