/* obj.h: kfleet API objects, in memory (jansson) and in the store (bytes).
 *
 * In the store an object is its canonical JSON: compact, "metadata" as the
 * first member, and without metadata.resourceVersion, which is the store's
 * mod_rev of the key and is never stored twice. Because metadata comes
 * first, an object is written out with its resourceVersion by splicing
 * bytes (kf_obj_write), not by parsing and re-serializing: a LIST of 10,000
 * objects costs 10,000 memcpy calls.
 *
 * Keys are "/<plural>/<name>" (kf_obj_key).
 */
#ifndef KF_OBJ_H
#define KF_OBJ_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_strbuf;
struct kf_kind;

#define KF_API_GROUP        "kfleet.io"
#define KF_API_VERSION_NAME "v1"
#define KF_API_VERSION      "kfleet.io/v1"

/* Largest object the API accepts (request body cap). */
#define KF_OBJ_MAX_BYTES (512 * 1024)

/* Canonical bytes of obj: metadata first, resourceVersion dropped, compact.
 * Appends to out. -EINVAL if obj is not an object with a metadata object. */
int kf_obj_encode(const json_t *obj, struct kf_strbuf *out);
/* Parses stored bytes and sets metadata.resourceVersion to mod_rev.
 * -EBADMSG if the bytes are not a stored object. */
int kf_obj_decode(const char *bytes, size_t len, int64_t mod_rev, json_t **ret);
/* Appends the stored bytes with "resourceVersion":"<mod_rev>" spliced in as
 * the first member of metadata. */
int kf_obj_write(struct kf_strbuf *out, const char *bytes, size_t len, int64_t mod_rev);

/* The metadata.labels of stored bytes without parsing the rest of the
 * object: scans the metadata members (which come first) and parses only the
 * labels object. Returns 1 and *ret (new reference) when there are labels,
 * 0 when there are none (*ret = NULL), -EBADMSG when the bytes are not a
 * stored object. This is what keeps LIST with a label selector cheap. */
int kf_obj_labels_from_bytes(const char *bytes, size_t len, json_t **ret);
/* The value at a dotted path ("spec.region") of stored bytes, parsing only
 * that value: 1 and *ret (new reference), 0 when absent (*ret = NULL),
 * -EBADMSG when the bytes are not compact JSON. What keeps LIST with a field
 * selector cheap. */
int kf_obj_path_from_bytes(const char *bytes, size_t len, const char *path, json_t **ret);

/* "/<plural>/<name>"; caller frees. The prefix of every key of a kind is
 * kf_obj_prefix: "/<plural>/". */
char *kf_obj_key(const struct kf_kind *kind, const char *name);
char *kf_obj_prefix(const struct kf_kind *kind);

/* Borrowed accessors; NULL/0 when absent. */
const char *kf_obj_name(const json_t *obj);
const char *kf_obj_uid(const json_t *obj);
int64_t kf_obj_rv(const json_t *obj);         /* metadata.resourceVersion as a number */
int64_t kf_obj_generation(const json_t *obj); /* metadata.generation */
/* Where a Host answers: spec.address (the operator's), else status.address
 * (what its agent reported), else dflt. Borrowed. */
const char *kf_host_address(const json_t *host, const char *dflt);
const char *kf_obj_label(const json_t *obj, const char *key);
bool kf_obj_deleting(const json_t *obj); /* has metadata.deletionTimestamp */
bool kf_obj_has_finalizer(const json_t *obj, const char *finalizer);

/* kf_name_valid() and kf_dns_label_valid(), the rules of object names,
 * are in base.h: other layers check host names with them. */
/* Label keys ([prefix/]name, name <= 63) and values (<= 63, may be empty). */
bool kf_label_key_valid(const char *key);
bool kf_label_value_valid(const char *value);

#endif
