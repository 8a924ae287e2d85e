/* fleet-versions.c: versions with a lifecycle and the one-minor-at-a-time
 * rule (kfleet/versions.h), shared by admission, placement and the upgrade
 * engine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/json.h"
#include "kfleet/strbuf.h"
#include "kfleet/versions.h"

const char *kf_version_state_name(enum kf_version_state s)
{
    switch (s) {
    case KF_VERSION_SUPPORTED:
        return "supported";
    case KF_VERSION_DEPRECATED:
        return "deprecated";
    case KF_VERSION_EXPIRED:
        return "expired";
    case KF_VERSION_UNSUPPORTED:
        return "unsupported";
    case KF_VERSION_UNLISTED:
        break;
    }
    return "unlisted";
}

int kf_version_minor(const char *v)
{
    int major = 0, minor = 0, n = 0;

    if (!v)
        return -1;
    if (v[0] == 'v')
        v++;
    if (sscanf(v, "%3d.%3d%n", &major, &minor, &n) != 2 || major < 0 || minor < 0 ||
        (v[n] && v[n] != '.'))
        return -1;
    return major * 1000 + minor;
}

/* "2027-06-30" -> seconds at its UTC midnight; -1 if malformed. */
static time_t date_utc(const char *s)
{
    int64_t ms;
    char buf[32];

    if (!s || strlen(s) != 10)
        return -1;
    snprintf(buf, sizeof(buf), "%sT00:00:00Z", s);
    if (kf_time_parse_rfc3339(buf, &ms) < 0)
        return -1;
    return (time_t)(ms / 1000);
}

enum kf_version_state kf_version_state(const json_t *profile, const char *version, time_t now)
{
    int want = kf_version_minor(version);
    json_t *v;
    size_t i;
    bool listed = false;

    if (!profile)
        return KF_VERSION_SUPPORTED;
    json_array_foreach(kf_json_path(profile, "spec.versions"), i, v) listed =
        listed || (kf_version_minor(json_string_value(v)) == want && want >= 0);
    if (!listed)
        return KF_VERSION_UNLISTED;
    json_array_foreach(kf_json_path(profile, "spec.versionLifecycle"), i, v)
    {
        time_t exp;

        if (kf_version_minor(kf_json_str(v, "version", NULL)) != want)
            continue;
        if (json_is_false(json_object_get(v, "supported")))
            return KF_VERSION_UNSUPPORTED;
        exp = date_utc(kf_json_str(v, "expirationDate", NULL));
        if (exp >= 0 && now >= exp)
            return KF_VERSION_EXPIRED;
        if (json_is_true(json_object_get(v, "deprecated")))
            return KF_VERSION_DEPRECATED;
    }
    return KF_VERSION_SUPPORTED;
}

int kf_version_step_ok(const char *from, const char *to, struct kf_strbuf *err)
{
    int f = kf_version_minor(from), t = kf_version_minor(to);

    if (f < 0 || t < 0 || t == f || t == f + 1)
        return 0;
    if (t < f)
        return kf_err(err, -EINVAL,
                      "\"%s\" is an older minor than the %s the cluster runs: Kubernetes does "
                      "not support downgrades (kfleet rollback returns an upgrade that has not "
                      "finished)",
                      to, from);
    return kf_err(err, -EINVAL,
                  "\"%s\" skips a minor: the cluster runs %s and moves one minor at a time "
                  "(to %d.%d first)",
                  to, from, f / 1000, f % 1000 + 1);
}
