/* tz.h: IANA time zones ("Europe/Berlin", "Asia/Shanghai") read from the
 * system's compiled zone files (TZif, RFC 8536), without touching the
 * process's TZ (setenv("TZ") is not safe in a threaded daemon).
 *
 * A zone is its list of transitions and the UTC offset after each. Past the
 * last transition (2037 in the "fat" files most distributions ship) the last
 * offset holds: the POSIX rule in the file's footer is not evaluated. */
#ifndef KF_TZ_H
#define KF_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kf_strbuf;
struct kf_tz;

/* Files larger than this are refused (the largest zone is about 4 KiB). */
#define KF_TZ_MAX_FILE (64 * 1024)
/* Zone names are at most this many bytes. */
#define KF_TZ_MAX_NAME 64

/* Parses LEN bytes of TZif data (versions 1 to 4; the 64-bit block when the
 * version has one). On success *ret is a new zone the caller frees with
 * kf_tz_free; on failure returns -EINVAL, says why in err and leaves *ret
 * untouched. Reads nothing outside data[0..len). */
int kf_tz_parse(const void *data, size_t len, struct kf_tz **ret, struct kf_strbuf *err);
void kf_tz_free(struct kf_tz *tz);

/* The zone's offset from UTC, in seconds, at the instant T (seconds since
 * the epoch, UTC). */
int32_t kf_tz_offset(const struct kf_tz *tz, int64_t t);

/* The instant (UTC seconds) at which the wall clock of the zone shows
 * LOCAL (seconds since the epoch as if local time were UTC). A time that a
 * clock change skips maps to the instant after the change; one that occurs
 * twice maps to the first. */
int64_t kf_tz_to_utc(const struct kf_tz *tz, int64_t local);

/* Whether NAME is shaped like a zone name: 1..KF_TZ_MAX_NAME bytes of
 * [A-Za-z0-9_+-] in '/'-separated parts, none empty or starting with '.'
 * or '-'. Says nothing of whether the zone exists. */
bool kf_tz_name_ok(const char *name);

/* The zone named NAME: "UTC" (built in) or a file under the zone folder
 * ($TZDIR, else /usr/share/zoneinfo, read once at first use). Zones are
 * loaded once and kept for the life of the process (at most 512 names);
 * safe from any thread. NULL with the reason in err when the name is
 * malformed, the file is missing or does not parse. */
const struct kf_tz *kf_tz_get(const char *name, struct kf_strbuf *err);

#endif
