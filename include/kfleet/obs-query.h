/* obs-query.h: reading a Prometheus instant query's answer
 * (GET /api/v1/query) for the alerts that fire, as the Release health
 * gate asks the central Prometheus:
 *
 *     ALERTS{alertstate="firing", alertname=~"A|B"}
 *
 * The answer is untrusted input (any URL a Release names): the parser
 * bounds what it keeps and says what is wrong with a malformed answer. */
#ifndef KF_OBS_QUERY_H
#define KF_OBS_QUERY_H

#include <stddef.h>

struct kf_strbuf;

/* Most firing series kept from one answer; more are counted, not kept. */
#define KF_OBS_QUERY_MAX_SERIES 100000
/* Most bytes of one answer the gate reads. */
#define KF_OBS_QUERY_MAX_BYTES (16u * 1024 * 1024)

/* One firing series: its alertname and cluster labels ("" when absent). */
struct kf_obs_firing {
    char *alert;
    char *cluster;
};

struct kf_obs_firing_list {
    struct kf_obs_firing *items;
    size_t n;
    size_t dropped; /* series past KF_OBS_QUERY_MAX_SERIES */
};

/* Parses the JSON answer of an instant query for series with an alertname
 * label. An answer with status "error" gives -EPROTO with Prometheus'
 * errorType and error in err; anything that is not a vector answer gives
 * -EBADMSG saying why. *ret is filled only on success (release it). */
int kf_obs_firing_parse(const char *body, size_t len, struct kf_obs_firing_list *ret,
                        struct kf_strbuf *err);
void kf_obs_firing_list_release(struct kf_obs_firing_list *l);

/* Appends the query for alerts (n names, each already checked to be a
 * metric-style name) to out. */
void kf_obs_firing_query(const char *const *alerts, size_t n, struct kf_strbuf *out);

#endif
