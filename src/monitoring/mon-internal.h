/* mon-internal.h: what the parts of src/monitoring/ share: the service
 * struct (mon-service.c owns its life), the adapter (mon-adapter.c) and the
 * local stack (mon-stack.c). */
#ifndef KF_MON_INTERNAL_H
#define KF_MON_INTERNAL_H

#include <pthread.h>

#include <jansson.h>

#include "kfleet/monitoring.h"

struct kf_runner;
struct mon_job;
struct mon_target;

struct kf_mon {
    struct kf_mon_config cfg;
    char *root;        /* <data-dir>/monitoring, absolute */
    char *token_file;  /* <root>/.adapter/token */
    char *token;       /* its contents */
    char *dedup_path;  /* <root>/.adapter/dedup */
    char *secrets_dir; /* <data-dir>/secrets/ (absolute, resolved) */
    /* cfg.alert_destinations parsed */
    struct kf_obs_destinations dests;

    /* the adapter */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* jobs queued, a job finished, stopping */
    struct mon_target *targets;
    size_t n_targets;
    struct mon_job **jobs; /* waiting, in no particular order */
    size_t n_jobs, alloc_jobs;
    unsigned busy; /* jobs being delivered */
    bool stopping;
    bool worker_started;
    pthread_t worker;
    struct kf_obs_dedup *dedup;
    struct kf_metric *m_notifications; /* receiver, outcome */
    struct kf_metric *m_attempts;      /* receiver, result */
    struct kf_metric *m_queue;

    /* the local stack */
    struct kf_runner *runner;
    pthread_mutex_t ports_lock;
    json_t *ports; /* key -> port */
    char *ports_path;
};

int kf_mon_adapter_start(struct kf_mon *m, struct kf_metrics *metrics, struct kf_strbuf *err);
void kf_mon_adapter_stop(struct kf_mon *m);
int kf_mon_stack_start(struct kf_mon *m, struct kf_strbuf *err);
void kf_mon_stack_stop(struct kf_mon *m);

/* Reads a small secret file (at most 64 KiB), without its trailing line
 * break. 0 or a negative errno. The caller wipes and frees *ret. */
int kf_mon_read_secret(const char *path, char **ret, struct kf_strbuf *err);

#endif
