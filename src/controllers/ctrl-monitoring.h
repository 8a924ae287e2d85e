/* ctrl-monitoring.h: what the monitoring controller's files share:
 *   ctrl-monitoring.c  the controller (render, reload, supervise, events)
 *   ctrl-monitoring-model.c    objects -> struct kf_obs_fleet (+ adapter targets)
 *   ctrl-monitoring-state.c    fleet-state metrics kept up to date by watches
 */
#ifndef KF_CTRL_MONITORING_H
#define KF_CTRL_MONITORING_H

#include <pthread.h>

#include <jansson.h>

#include "kfleet/controllers.h"
#include "kfleet/monitoring.h"
#include "kfleet/obs.h"

struct kf_metric;
struct kf_recorder;

/* The controller's entry of kfleetd's table (ctrl-table.c). */
extern const struct kf_ctrl_ops kf_ctrl_monitoring_ops;
int kf_ctrl_monitoring_init(const struct kf_ctrl_env *env, void **ret_data, struct kf_strbuf *err);
void kf_ctrl_monitoring_fini(void *data);

/* --- fleet-state metrics ------------------------------------------------ */

struct monstate {
    pthread_mutex_t lock;
    json_t *clusters;       /* name -> "phase\tgrade\tunit" */
    json_t *cluster_counts; /* "phase\tgrade\tunit" -> count */
    json_t *hosts;          /* name -> "unit\tzone\tready" */
    json_t *host_counts;    /* "unit\tzone\tready" -> count */
    json_t *units;          /* name -> {region, mark, ratio, capacity, allocatable, allocated} */
    void *coll;             /* the collectors' arguments */
};

/* metrics NULL: nothing is exported (tests). */
void kf_monstate_init(struct monstate *s, struct kf_metrics *metrics);
void kf_monstate_release(struct monstate *s);
/* An object changed (GuestCluster, Host and Unit count; others are ignored). */
void kf_monstate_update(struct monstate *s, const json_t *obj, bool deleted);

/* --- the controller's state ---------------------------------------------- */

enum {
    MON_INF_REGION,
    MON_INF_UNIT,
    MON_INF_HOST,
    MON_INF_MEMBER,
    MON_INF_CLUSTER,
    MON_INF_RECEIVER,
    MON_INF_ROUTE,
    MON_INF_N,
};

struct monctl {
    struct kf_ctrl_env env;
    struct kf_mon *mon; /* NULL: monitoring off, metrics only */
    struct kf_ctrl *c;
    struct kf_recorder *rec;
    struct kf_informer *inf[MON_INF_N];
    int64_t last_run_ms;
    json_t *hashes;        /* instance -> structure digest last rendered */
    json_t *pending;       /* instance -> tier, to reload */
    json_t *problems_seen; /* messages already recorded as Events */
    char *last_model_error;
    struct monstate state;
    pthread_mutex_t am_lock;
    json_t *am_members; /* Alertmanager -> alertmanager_cluster_members last read */
    json_t *am_settled; /* Alertmanager -> true once it saw every peer */
    json_t *am_listens; /* Alertmanager -> "host:port", for the alerts action */
};

/* --- GET /apis/kfleet.io/v1/alerts (ctrl-monitoring-alerts.c) --------------- */

/* Adds the action while the controller runs with a monitoring stack (the
 * dashboard's firing alerts, read from the central Alertmanagers); the
 * unbind waits for calls in progress. Both do nothing without an API. */
void kf_monalerts_bind(struct monctl *mc);
void kf_monalerts_unbind(struct monctl *mc);

/* --- the model ------------------------------------------------------------ */

struct monproblem {
    const char *kind; /* of the object the problem is about */
    char *name;
    const char *reason;
    char *message;
};

struct monmodel {
    struct kf_obs_fleet fleet;
    struct kf_mon_target *targets; /* the adapter's receivers */
    size_t n_targets;
    struct kf_mon_exporter *exporters; /* local: node_exporters kfleetd runs */
    size_t n_exporters;
    bool exporters_capped;
    char **port_keys; /* local: ports in use */
    size_t n_port_keys;
    struct monproblem *problems; /* objects left out, and why */
    size_t n_problems;
    json_t *owners;  /* instance -> unit (edge) or region (cascade) */
    json_t *listens; /* instance -> "host:port" */
    /* guest cluster -> index in idents of its monitoring identity (PEM
     * text in mem), or false when it has none (yet): read once per model */
    json_t *identities;
    struct kf_obs_cluster *idents;
    size_t n_idents, alloc_idents;
    size_t identities_missing; /* clusters with Kubernetes members but no identity */
    /* what the borrowed pointers point into */
    void **mem;
    size_t n_mem;
    json_t *objs; /* array of every object read */
};

void kf_monmodel_init(struct monmodel *mm);
void kf_monmodel_release(struct monmodel *mm);
/* Builds the model from the informers and kfleetd's monitoring config.
 * Objects that cannot be part of it (a unit of an unknown region, a route
 * whose receiver is missing, an email receiver without SMTP settings) are
 * left out and listed in mm->problems. Returns 0, or -EINVAL when the
 * model as a whole fails kf_obs_fleet_check (why in err). */
int kf_monmodel_build(struct monctl *mc, struct monmodel *mm, struct kf_strbuf *err);
/* Every instance name (sorted); the caller frees. Returns the count. */
size_t kf_monmodel_instances(const struct monmodel *mm, char ***ret);
const char *kf_monmodel_owner(const struct monmodel *mm, const char *instance);
const char *kf_monmodel_listen(const struct monmodel *mm, const char *instance);

/* Annotations that tell the controller where things are. */
#define MON_ANN_NODE_EXPORTER "monitoring.kfleet.io/node-exporter" /* Host: "h:p" or "none" */
#define MON_ANN_AGENT         "monitoring.kfleet.io/agent"         /* Host: "h:p" */
#define MON_ANN_EDGES         "monitoring.kfleet.io/edges"         /* Unit: "h:p[,h:p]" */
#define MON_ANN_CASCADES      "monitoring.kfleet.io/cascades"      /* Region: "h:p[,h:p]" */

#endif
