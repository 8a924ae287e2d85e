/* versions.h: Kubernetes versions with a lifecycle, and the upgrade rules
 * every layer agrees on.
 *
 * A Profile lists the minors its clusters may run (spec.versions) and may
 * say more about each in spec.versionLifecycle:
 *
 *     versionLifecycle:
 *     - {version: "1.36", supported: true, deprecated: true, expirationDate: "2027-06-30"}
 *
 * supported: false refuses new clusters on the minor and upgrades to it
 * (clusters on it run on); deprecated: true lets it be used but marks its
 * clusters (`kfleet get gc` says "deprecated"); from expirationDate on (UTC
 * midnight) the minor is expired: refused like an unsupported one, and its
 * clusters are marked "expired".
 *
 * A cluster moves one minor at a time: from 1.36 only to 1.36.x or 1.37.x;
 * patches move freely; a lower minor than the one running is refused
 * (Kubernetes does not support downgrades; `kfleet rollback` returns an
 * upgrade that has not finished). Pure; thread-safe. */
#ifndef KF_VERSIONS_H
#define KF_VERSIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

struct kf_strbuf;

enum kf_version_state {
    KF_VERSION_SUPPORTED = 0,
    KF_VERSION_DEPRECATED,
    KF_VERSION_EXPIRED,     /* past its expirationDate */
    KF_VERSION_UNSUPPORTED, /* supported: false */
    KF_VERSION_UNLISTED,    /* not in spec.versions (placement says so) */
};

/* "supported", "deprecated", "expired", "unsupported", "unlisted". */
const char *kf_version_state_name(enum kf_version_state s);

/* "1.37.2" or "1.37" -> 1037 (major * 1000 + minor); -1 if not a version. */
int kf_version_minor(const char *v);

/* The state of VERSION (a minor or a patch: its minor decides) in the
 * Profile object PROFILE at NOW. A NULL profile knows nothing: supported. */
enum kf_version_state kf_version_state(const json_t *profile, const char *version, time_t now);

/* Whether a cluster running FROM may be asked to run TO: the same minor,
 * or the next one. 0, or -EINVAL with the reason (what to do instead) in
 * err. A NULL or unparsable FROM allows anything. */
int kf_version_step_ok(const char *from, const char *to, struct kf_strbuf *err);

#endif
