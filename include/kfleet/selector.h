/* selector.h: Kubernetes label and field selectors.
 *
 * Label selectors, as `kubectl get -l` and `?labelSelector=` take them:
 *   "app=web", "app==web", "tier!=db", "env in (prod,staging)",
 *   "env notin (dev)", "gpu" (key exists), "!legacy" (key absent),
 *   comma-separated, all must match. The JSON form of a LabelSelector
 *   ({"matchLabels": {...}, "matchExpressions": [{key, operator, values}]})
 *   compiles to the same thing.
 * Field selectors (`?fieldSelector=`): "metadata.name=x",
 *   "status.phase!=Running", "spec.region==cn-hangzhou": dotted paths into
 *   the object compared as strings (numbers and booleans by their JSON text).
 *
 * Parsing is bounded (KF_SELECTOR_MAX_BYTES, KF_SELECTOR_MAX_TERMS) and every
 * error says which term is wrong and how to write it.
 */
#ifndef KF_SELECTOR_H
#define KF_SELECTOR_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_strbuf;
struct kf_selector;

#define KF_SELECTOR_MAX_BYTES 4096
#define KF_SELECTOR_MAX_TERMS 64

/* NULL or "" gives a selector that matches everything. -EBADMSG with a
 * message in err on a malformed selector; *ret untouched. */
int kf_selector_parse_labels(const char *s, struct kf_selector **ret, struct kf_strbuf *err);
int kf_selector_parse_fields(const char *s, struct kf_selector **ret, struct kf_strbuf *err);
/* From a LabelSelector JSON object. -EINVAL with a message on a bad one. */
int kf_selector_from_json(const json_t *label_selector, struct kf_selector **ret,
                          struct kf_strbuf *err);
/* Label selectors match metadata.labels of obj; field selectors match paths
 * of obj. */
bool kf_selector_matches(const struct kf_selector *sel, const json_t *obj);
/* For label selectors: match a labels object directly. */
bool kf_selector_matches_labels(const struct kf_selector *sel, const json_t *labels);
bool kf_selector_is_empty(const struct kf_selector *sel);
/* True for a selector from kf_selector_parse_fields. */
bool kf_selector_is_fields(const struct kf_selector *sel);
/* The key (label key or field path) of term i, NULL past the last term.
 * Lets a caller fetch only the values a selector looks at. */
const char *kf_selector_key(const struct kf_selector *sel, size_t i);
/* The value of term i when it is an equality ("k=v", "k==v", "k in (v)"
 * with one value), else NULL. */
const char *kf_selector_equals(const struct kf_selector *sel, size_t i);
/* For field selectors with a "metadata.name=X" term: X (borrowed), else
 * NULL. Lets a list read one key instead of scanning the kind. */
const char *kf_selector_name_equals(const struct kf_selector *sel);
/* For field selectors with a "metadata.name^=P" term (names starting with
 * P): P (borrowed), else NULL. Lets a list read that range of keys only. */
const char *kf_selector_name_prefix(const struct kf_selector *sel);
/* Writes the selector back in its canonical text form. */
void kf_selector_format(const struct kf_selector *sel, struct kf_strbuf *out);
void kf_selector_free(struct kf_selector *sel);

#endif
