/* base-error.c: the table from error codes to HTTP status and Kubernetes
 * reason, and validation causes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/error.h"
#include "kfleet/strbuf.h"

static const struct {
    int code;
    struct kf_error_info info;
} error_table[] = {
    { KF_EINVALID, { 422, "Invalid" } },
    { KF_EBADREQUEST, { 400, "BadRequest" } },
    { KF_ENOTFOUND, { 404, "NotFound" } },
    { KF_EEXISTS, { 409, "AlreadyExists" } },
    { KF_ECONFLICT, { 409, "Conflict" } },
    { KF_ECOMPACTED, { 410, "Expired" } },
    { KF_EUNAUTHORIZED, { 401, "Unauthorized" } },
    { KF_EFORBIDDEN, { 403, "Forbidden" } },
    { KF_ETOOLARGE, { 413, "RequestEntityTooLarge" } },
    { KF_EMETHOD, { 405, "MethodNotAllowed" } },
    { KF_EMEDIATYPE, { 415, "UnsupportedMediaType" } },
    { KF_ETOOMANY, { 429, "TooManyRequests" } },
    { KF_EUNAVAILABLE, { 503, "ServiceUnavailable" } },
    { KF_ETIMEOUT, { 504, "Timeout" } },
    { KF_EFENCED, { 409, "Conflict" } },
};

static const struct kf_error_info internal_error = { 500, "InternalError" };

const struct kf_error_info *kf_error_info(int err)
{
    if (err < 0)
        err = -err;
    for (size_t i = 0; i < KF_ARRAY_SIZE(error_table); i++)
        if (error_table[i].code == err)
            return &error_table[i].info;
    return &internal_error;
}

void kf_causes_add(struct kf_causes *c, const char *type, const char *field, const char *fmt, ...)
{
    va_list ap;
    struct kf_cause *cause;

    KF_GROW(c->items, c->alloc, c->n);
    cause = &c->items[c->n++];
    cause->type = kf_xstrdup(type);
    cause->field = kf_xstrdup(field ? field : "");
    va_start(ap, fmt);
    cause->message = kf_xvasprintf(fmt, ap);
    va_end(ap);
}

void kf_causes_release(struct kf_causes *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].type);
        free(c->items[i].field);
        free(c->items[i].message);
    }
    free(c->items);
    *c = (struct kf_causes)KF_CAUSES_INIT;
}

void kf_causes_format(const struct kf_causes *c, struct kf_strbuf *out)
{
    for (size_t i = 0; i < c->n; i++)
        kf_strbuf_addf(out, "%s%s: %s", i ? "; " : "", c->items[i].field, c->items[i].message);
}
