/* json.h: helpers over jansson for kfleet objects.
 *
 * Paths are dotted field paths as the API reports them: "spec.network.vpc",
 * "metadata.labels". A path never creates anything unless the function says
 * so. Parsing is bounded: kf_json_parse rejects bodies nested deeper than
 * KF_JSON_MAX_DEPTH and duplicate keys, and says where the error is.
 */
#ifndef KF_JSON_H
#define KF_JSON_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_strbuf;

#define KF_JSON_MAX_DEPTH 64

/* Parses one JSON value. On failure returns -EBADMSG with "line L column C:
 * what" in err; *ret untouched. */
int kf_json_parse(const char *buf, size_t len, json_t **ret, struct kf_strbuf *err);
/* Compact, key order preserved. Caller frees. */
char *kf_json_dump(const json_t *v, size_t *ret_len);
int kf_json_dump_sb(const json_t *v, struct kf_strbuf *out);
/* Indented (2 spaces) for people. */
char *kf_json_dump_pretty(const json_t *v);

/* Borrowed lookups; NULL when any step is missing or not an object. */
json_t *kf_json_path(const json_t *root, const char *path);
const char *kf_json_str(const json_t *root, const char *path, const char *dflt);
int64_t kf_json_int(const json_t *root, const char *path, int64_t dflt);
double kf_json_num(const json_t *root, const char *path, double dflt);
bool kf_json_bool(const json_t *root, const char *path, bool dflt);
/* Returns the object at path, creating empty objects along the way (and
 * replacing non-objects). Borrowed. */
json_t *kf_json_ensure_obj(json_t *root, const char *path);
/* Sets path to value (reference stolen), creating parents. */
void kf_json_set(json_t *root, const char *path, json_t *value);
void kf_json_set_str(json_t *root, const char *path, const char *s);
void kf_json_set_int(json_t *root, const char *path, json_int_t v);
/* Removes path if present. */
void kf_json_del(json_t *root, const char *path);

/* RFC 7386 JSON merge patch: returns the patched document (new reference);
 * `target` is not modified. */
json_t *kf_json_merge_patch(const json_t *target, const json_t *patch);
/* RFC 6902 JSON patch: applies ops to a deep copy of doc. Returns 0 and the
 * new document, or -EBADMSG (malformed op) / -EINVAL (a test op failed, a
 * path is missing) with the operation index and reason in err. */
int kf_json_patch(const json_t *doc, const json_t *ops, json_t **ret, struct kf_strbuf *err);

/* YAML (src/base/base-yaml.c). kf_yaml_load_all parses a stream of
 * documents into a JSON array of values; empty and null documents are
 * skipped. Plain scalars resolve by YAML 1.2 core rules (null, ~ and empty;
 * true/false in three spellings; decimal, 0o and 0x integers; floats);
 * quoted and block scalars are strings; mapping keys are always strings.
 * The core tags (!!str, !!int, !!float, !!bool, !!null, !!map, !!seq) are
 * honoured, any other tag is refused. Also refused: anchors and aliases
 * (billion laughs), merge keys, duplicate keys, non-scalar keys, nesting
 * deeper than KF_JSON_MAX_DEPTH, .inf/.nan and integers outside int64.
 * Returns -EBADMSG with "line L column C: what" in err; *ret_array
 * untouched. The caller caps len. */
int kf_yaml_load_all(const char *buf, size_t len, json_t **ret_array, struct kf_strbuf *err);
/* Appends v as one block-style YAML document (no "---"): keys in the
 * object's order, sequences under a key at the key's indentation (as
 * kubectl writes them), multi-line strings as literal blocks, and strings
 * quoted whenever a YAML 1.2 or 1.1 reader could take them for anything
 * else ("1.30", "yes", "0x10", ""). kf_yaml_load_all reads it back equal.
 * Returns 0, -E2BIG when out's cap is hit, or -EINVAL when v nests deeper
 * than KF_JSON_MAX_DEPTH; on failure out is as it was. */
int kf_yaml_dump(const json_t *v, struct kf_strbuf *out);

#endif
