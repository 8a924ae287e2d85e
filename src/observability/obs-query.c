/* obs-query.c: the Release health gate's reading of a Prometheus instant
 * query answer (kfleet/obs-query.h). The answer is
 *
 *   {"status": "success",
 *    "data": {"resultType": "vector",
 *             "result": [{"metric": {"alertname": "...", "cluster": "..."},
 *                         "value": [1712345678.9, "1"]}, ...]}}
 *
 * and only the two labels of each series matter. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/obs-query.h"
#include "kfleet/strbuf.h"

static const char *label(const json_t *metric, const char *name)
{
    const char *s = json_string_value(json_object_get(metric, name));

    return s ? s : "";
}

static int parse_result(const json_t *result, struct kf_obs_firing_list *l, struct kf_strbuf *err)
{
    const json_t *series;
    size_t i;

    if (!json_is_array(result))
        return kf_err(err, -EBADMSG, "the answer's data.result is not an array");
    l->items =
        kf_xcalloc(json_array_size(result) < KF_OBS_QUERY_MAX_SERIES ? json_array_size(result) + 1
                                                                     : KF_OBS_QUERY_MAX_SERIES,
                   sizeof(*l->items));
    json_array_foreach(result, i, series)
    {
        const json_t *metric = json_object_get(series, "metric");

        if (!json_is_object(metric))
            return kf_err(err, -EBADMSG, "series %zu of the answer has no metric object", i);
        if (!*label(metric, "alertname"))
            continue;
        if (l->n == KF_OBS_QUERY_MAX_SERIES) {
            l->dropped++;
            continue;
        }
        l->items[l->n].alert = kf_xstrdup(label(metric, "alertname"));
        l->items[l->n++].cluster = kf_xstrdup(label(metric, "cluster"));
    }
    return 0;
}

int kf_obs_firing_parse(const char *body, size_t len, struct kf_obs_firing_list *ret,
                        struct kf_strbuf *err)
{
    struct kf_obs_firing_list l = { 0 };
    json_error_t jerr;
    json_t *root;
    const char *status;
    int r;

    if (len > KF_OBS_QUERY_MAX_BYTES)
        return kf_err(err, -EBADMSG, "the answer has %zu bytes, more than the %u read", len,
                      KF_OBS_QUERY_MAX_BYTES);
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return kf_err(err, -EBADMSG, "the answer is not JSON: %s (at byte %d)", jerr.text,
                      jerr.position);
    status = json_string_value(json_object_get(root, "status"));
    if (status && strcmp(status, "error") == 0) {
        r = kf_err(err, -EPROTO, "Prometheus refused the query: %.64s: %.512s",
                   label(root, "errorType"), label(root, "error"));
        goto free_root;
    }
    if (!status || strcmp(status, "success") != 0) {
        r = kf_err(err, -EBADMSG, "the answer's status is not \"success\"");
        goto free_root;
    }
    if (!kf_streq(json_string_value(json_object_get(json_object_get(root, "data"), "resultType")),
                  "vector")) {
        r = kf_err(err, -EBADMSG, "the answer is not an instant vector (data.resultType)");
        goto free_root;
    }
    r = parse_result(json_object_get(json_object_get(root, "data"), "result"), &l, err);
    if (r < 0)
        kf_obs_firing_list_release(&l);
    else
        *ret = l;
free_root:
    json_decref(root);
    return r;
}

void kf_obs_firing_list_release(struct kf_obs_firing_list *l)
{
    for (size_t i = 0; l && i < l->n; i++) {
        free(l->items[i].alert);
        free(l->items[i].cluster);
    }
    if (l) {
        free(l->items);
        memset(l, 0, sizeof(*l));
    }
}

void kf_obs_firing_query(const char *const *alerts, size_t n, struct kf_strbuf *out)
{
    kf_strbuf_addstr(out, "ALERTS{alertstate=\"firing\",alertname=~\"");
    for (size_t i = 0; i < n; i++)
        kf_strbuf_addf(out, "%s%s", i ? "|" : "", alerts[i]);
    kf_strbuf_addstr(out, "\"}");
}
