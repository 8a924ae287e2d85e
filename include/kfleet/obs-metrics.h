/* obs-metrics.h: a small Prometheus metrics library (text exposition 0.0.4).
 *
 * A registry (struct kf_metrics) holds metric families; a family has a
 * name, a help text, a type (counter, gauge, histogram) and a fixed list of
 * label names. Each distinct tuple of label values is one series, created
 * on first use. kfleetd serves one registry on /metrics; the agent and the
 * observability code may keep their own.
 *
 *     struct kf_metric *req = kf_metrics_counter(m, "kfleet_api_requests_total",
 *                                                "API requests served.", "verb,code");
 *     kf_metric_add(req, KF_LABELS("get", "200"), 1);
 *
 * Families computed when scraped (store size, watchers, anything that is
 * cheaper to read than to track) are registered with kf_metrics_collected:
 * their callback runs under the family's lock at each scrape, after the
 * family's series were cleared, and sets values with kf_metric_set / add.
 *
 * Names follow Prometheus conventions, which `promtool check metrics`
 * enforces: snake_case, counters end in _total, a unit suffix (_seconds,
 * _bytes) where there is a unit. A name or label name that breaks the data
 * model, or a family registered twice, is a programmer error (assertion).
 *
 * Threading: every function may be called from any thread. Updates take a
 * per-family mutex (a few hundred nanoseconds); scrapes hold it only while
 * formatting that family.
 */
#ifndef KF_METRICS_H
#define KF_METRICS_H

#include "kfleet/base.h"

struct kf_strbuf;
struct kf_metrics;
struct kf_metric;

enum kf_metric_type {
    KF_METRIC_COUNTER = 1,
    KF_METRIC_GAUGE = 2,
    KF_METRIC_HISTOGRAM = 3,
};

/* Label values for one series, in the order of the family's label names:
 * KF_LABELS("get", "guestclusters", "200"). NULL when the family has none. */
#define KF_LABELS(...) ((const char *const[]){ __VA_ARGS__ })

/* Hard limits: a family keeps at most this many series (further label
 * tuples are dropped and counted in kfleet_metrics_series_dropped_total),
 * so a label fed from client input cannot exhaust memory. */
#define KF_METRICS_MAX_SERIES 10000
#define KF_METRICS_MAX_LABELS 8

/* Latency buckets in seconds, 0.5 ms .. 30 s. */
extern const double kf_metrics_latency_buckets[];
extern const size_t kf_metrics_latency_nbuckets;

struct kf_metrics *kf_metrics_new(void);
/* A registry whose families are shown as part of another's
 * (kf_metrics_set_child), e.g. those of kfleetd's controllers, which come
 * and go with leadership. It has no kfleet_metrics_series_dropped_total of
 * its own (the name would appear twice). */
struct kf_metrics *kf_metrics_new_child(void);
/* From now on kf_metrics_write(m) also writes child's families, after m's
 * own (NULL: none). Waits for writes in progress, so after
 * kf_metrics_set_child(m, NULL) returns the old child may be freed. Family
 * names must not repeat between m and child. */
void kf_metrics_set_child(struct kf_metrics *m, struct kf_metrics *child);
/* Frees the registry and every family in it. NULL is fine. */
void kf_metrics_free(struct kf_metrics *m);

/* Registers a family. `labels` is a comma-separated list of label names
 * ("verb,resource,code") or NULL. The family lives as long as the registry;
 * the pointer is stable and may be cached. */
struct kf_metric *kf_metrics_counter(struct kf_metrics *m, const char *name, const char *help,
                                     const char *labels);
struct kf_metric *kf_metrics_gauge(struct kf_metrics *m, const char *name, const char *help,
                                   const char *labels);
/* `bounds`: n strictly increasing upper bounds; +Inf is implied. Copied. */
struct kf_metric *kf_metrics_histogram(struct kf_metrics *m, const char *name, const char *help,
                                       const char *labels, const double *bounds, size_t n);

/* A counter or gauge family whose series are recomputed at every scrape:
 * collect(f, arg) is called with f's lock held and its series cleared; it
 * calls kf_metric_set/kf_metric_add on f (and nothing else of this
 * registry). It must not block for long. */
struct kf_metric *kf_metrics_collected(struct kf_metrics *m, enum kf_metric_type type,
                                       const char *name, const char *help, const char *labels,
                                       void (*collect)(struct kf_metric *f, void *arg), void *arg);

/* Adds the standard process_* families (cpu seconds, resident and virtual
 * memory, open and max fds, start time), read from /proc/self at scrape. */
void kf_metrics_add_process(struct kf_metrics *m);

/* Series updates. `values` holds exactly as many strings as the family has
 * label names (NULL when it has none); they are copied on first use.
 * kf_metric_add: counters (v >= 0) and gauges; kf_metric_set: gauges (and
 * collected counters); kf_metric_observe: histograms. Using the wrong one
 * for the family's type is a programmer error. */
void kf_metric_add(struct kf_metric *f, const char *const *values, double v);
void kf_metric_set(struct kf_metric *f, const char *const *values, double v);
void kf_metric_observe(struct kf_metric *f, const char *const *values, double v);
/* The current value of a counter or gauge series (0 if it does not exist);
 * for a histogram, its observation count. Meant for tests and health. */
double kf_metric_value(struct kf_metric *f, const char *const *values);

/* Appends the text exposition (format 0.0.4) of every family, in
 * registration order, to out. Returns 0 or the strbuf's error. */
int kf_metrics_write(struct kf_metrics *m, struct kf_strbuf *out);

/* The Content-Type to serve kf_metrics_write's output with. */
#define KF_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
