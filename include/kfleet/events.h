/* events.h: recording what controllers did and why, as Event objects.
 *
 * Controllers call kf_recorder_eventf() with the object the event is about:
 *
 *     kf_recorder_eventf(rec, cluster, KF_EVENT_WARNING, "NoHeadroom",
 *                        "no unit in %s has headroom for grade %s", region, grade);
 *
 * Repeats of the same (object, type, reason, message, component) are folded
 * into one Event whose spec.count grows and spec.lastTimestamp moves, as
 * Kubernetes' event correlator does: the Event's name is
 * "<object name>.<16 hex digits of a hash of those fields>", so a repeat is a
 * read and a compare-and-swap, with no list. Events expire: the daemon calls
 * kf_evrec_gc() periodically (every minute is plenty) to delete those last
 * seen more than a TTL ago (KF_EVREC_TTL_MS, 1 h).
 *
 * The Event kind is kf_kind_event (kind-event.c); "struct kf_event" is the
 * store's change event, unrelated. Thread-safe: a recorder holds no state
 * but its component name.
 */
#ifndef KF_EVENTS_H
#define KF_EVENTS_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_registry;

#define KF_EVENT_NORMAL  "Normal"
#define KF_EVENT_WARNING "Warning"

/* Default time to live of an Event after it was last seen. */
#define KF_EVREC_TTL_MS (60 * 60 * 1000)
/* Messages longer than this are cut (with "..."). */
#define KF_EVREC_MAX_MESSAGE 1024
/* Repeats of one event within this window after a write are counted in
 * memory and added to the count by the next write after the window, so a
 * controller stuck in a hot loop costs one store write per event per
 * window, not one per repeat. The stored count may lag by the repeats of
 * the last window. */
#define KF_EVREC_COALESCE_MS 1000

struct kf_recorder;

/* component: who records ("placement", "host-lifecycle"), shown as
 * spec.source.component. The registry is borrowed and must outlive the
 * recorder. */
struct kf_recorder *kf_recorder_new(struct kf_registry *r, const char *component);
void kf_recorder_free(struct kf_recorder *rec); /* NULL is fine */
/* For tests and simulations: the clock the recorder stamps events with
 * (default kf_now_ms) and the coalescing window (default
 * KF_EVREC_COALESCE_MS; 0 writes every repeat). Call before recording. */
void kf_recorder_set_clock(struct kf_recorder *rec, int64_t (*now_ms)(void *arg), void *arg);
void kf_recorder_set_coalesce(struct kf_recorder *rec, int64_t window_ms);

/* Records an event about `involved` (an API object with kind,
 * metadata.name and metadata.uid; only those are read). type is
 * KF_EVENT_NORMAL or KF_EVENT_WARNING; reason one CamelCase word. Returns 0,
 * -EINVAL for a bad type/reason/object, or a store error. Best effort by
 * nature: callers usually ignore the result (a failed event must not fail a
 * reconcile). Invalid UTF-8 in the message is replaced by '?'. */
int kf_recorder_eventf(struct kf_recorder *rec, const json_t *involved, const char *type,
                       const char *reason, const char *fmt, ...) KF_PRINTF(5, 6);
int kf_recorder_event(struct kf_recorder *rec, const json_t *involved, const char *type,
                      const char *reason, const char *message);

/* Deletes Events whose spec.lastTimestamp is older than now_ms - ttl_ms
 * (ttl_ms <= 0: KF_EVREC_TTL_MS). now_ms is normally kf_now_ms(). Returns
 * the number deleted, or a store error. Reads the events page by page. */
int kf_evrec_gc(struct kf_registry *r, int64_t ttl_ms, int64_t now_ms);

/* The Events about the object of kind `kind` (e.g. "GuestCluster") named
 * `name`, newest (by lastTimestamp) first, at most max (0: all). *ret is a
 * JSON array of Event objects (new reference). Reads only the events whose
 * names start with "<name>.", not every event. */
int kf_evrec_list_for(struct kf_registry *r, const char *kind, const char *name, size_t max,
                      json_t **ret);

#endif
