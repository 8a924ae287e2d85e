/* error.h: kfleet's one result vocabulary.
 *
 * Functions return 0 (or a count) on success and a negative errno on
 * failure. The few codes with a meaning specific to kfleet get a name here;
 * kf_error_info() maps every code to the HTTP status and the Kubernetes
 * `reason` that the API returns, so that a store conflict, a validation
 * failure or a compacted revision read the same in every layer.
 *
 * Validation failures carry a list of causes (field path + reason +
 * message), which the API returns as `details.causes[]` with status 422.
 */
#ifndef KF_ERROR_H
#define KF_ERROR_H

#include <errno.h>

#include "kfleet/base.h"

#define KF_EINVALID      EINVAL      /* 422 Invalid: the object breaks a rule */
#define KF_EBADREQUEST   EBADMSG     /* 400 BadRequest: malformed body, bad parameter */
#define KF_ENOTFOUND     ENOENT      /* 404 NotFound */
#define KF_EEXISTS       EEXIST      /* 409 AlreadyExists */
#define KF_ECONFLICT     ESTALE      /* 409 Conflict: resourceVersion does not match */
#define KF_ECOMPACTED    ENODATA     /* 410 Expired: revision compacted away */
#define KF_EUNAUTHORIZED ENOKEY      /* 401 Unauthorized: no or unknown token */
#define KF_EFORBIDDEN    EACCES      /* 403 Forbidden: role does not allow it */
#define KF_ETOOLARGE     E2BIG       /* 413 RequestEntityTooLarge */
#define KF_EMETHOD       EOPNOTSUPP  /* 405 MethodNotAllowed */
#define KF_EMEDIATYPE    EMEDIUMTYPE /* 415 UnsupportedMediaType */
#define KF_ETOOMANY      EBUSY       /* 429 TooManyRequests */
#define KF_EUNAVAILABLE  EAGAIN      /* 503 ServiceUnavailable: store or peer down */
#define KF_ETIMEOUT      ETIMEDOUT   /* 504 Timeout */
#define KF_EFENCED       EOWNERDEAD  /* 409 Conflict: the writer is no longer the leader */

struct kf_error_info {
    int http;           /* HTTP status code */
    const char *reason; /* Kubernetes StatusReason, e.g. "NotFound" */
};

/* Never NULL: unknown codes map to 500 InternalError. `err` may be given
 * positive or negative. */
const struct kf_error_info *kf_error_info(int err);

/* One validation failure. `type` is Kubernetes' CauseType:
 * "FieldValueRequired", "FieldValueInvalid", "FieldValueNotSupported",
 * "FieldValueDuplicate", "FieldValueForbidden", "FieldValueTypeInvalid",
 * "FieldValueTooLong", "FieldValueTooMany", "FieldValueUnknown". */
struct kf_cause {
    char *type;
    char *field; /* "spec.network.podCIDR", "metadata.labels[app]" */
    char *message;
};

struct kf_causes {
    struct kf_cause *items;
    size_t n, alloc;
};

#define KF_CAUSES_INIT \
    {                  \
        0              \
    }
void kf_causes_add(struct kf_causes *c, const char *type, const char *field, const char *fmt, ...)
    KF_PRINTF(4, 5);
void kf_causes_release(struct kf_causes *c);
/* "spec.waterLevel: must be between 0.05 and 0.95; spec.zones: Required value" */
struct kf_strbuf;
void kf_causes_format(const struct kf_causes *c, struct kf_strbuf *out);

#endif
