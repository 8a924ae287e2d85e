/* ctrl-lifecycle.h: what the lifecycle controller's files share
 * (ctrl-lifecycle.c, ctrl-lifecycle-pki.c, ctrl-lifecycle-ports.c, ctrl-lifecycle-actions.c);
 * the public part is kfleet/lifecycle.h. */
#ifndef KF_CTRL_LIFECYCLE_H
#define KF_CTRL_LIFECYCLE_H

#include <pthread.h>

#include <jansson.h>

#include "kfleet/base.h"
#include "kfleet/catalog.h"
#include "kfleet/lifecycle.h"
#include "kfleet/pki.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"

struct kf_pki_ca;
struct kf_store;
struct kf_strbuf;

/* --- ctrl-lifecycle-pki.c ------------------------------------------------------------ */

struct lc_pki_input {
    const char *cluster;
    struct kf_pki_cluster_spec spec;           /* etcd members, apiserver SANs */
    const char *const *controller_manager_ips; /* their serving certificates' SANs */
    const char *const *scheduler_ips;
    const char *apiserver_url; /* for their kubeconfigs; NULL: none yet */
};

/* "/_pki/<cluster>": where the cluster's PKI is kept in the store. */
char *kf_lifecycle_pki_key(const char *cluster);
/* <data_dir>/pki/<cluster>: the leader's working copy. */
char *kf_lifecycle_pki_dir(const char *data_dir, const char *cluster);
/* Makes the stored PKI of in->cluster complete and current (see the file's
 * comment); *ret_files gets path -> PEM (new reference), *ret_rev (may be
 * NULL) the store revision of what it returns. 0 or an error. */
int kf_lifecycle_pki_ensure(struct kf_store *store, const char *data_dir,
                            const struct lc_pki_input *in, json_t **ret_files, int64_t *ret_rev,
                            struct kf_strbuf *err);
/* The stored files (new reference) and the key's revision. -KF_ENOTFOUND. */
int kf_lifecycle_pki_load(struct kf_store *store, const char *cluster, json_t **ret_files,
                          int64_t *ret_rev);
/* Forgets the cluster's PKI: the stored key and the working copy. */
int kf_lifecycle_pki_remove(struct kf_store *store, const char *data_dir, const char *cluster);
/* Member i's certificate bundle from files: a list of {path, data,
 * secret} (new reference, may be NULL if not wanted) and its SHA-256.
 * -KF_ENOTFOUND when a file it needs is not there (yet). */
int kf_lifecycle_bundle(const json_t *files, const struct kf_catalog_cluster *c, size_t i,
                        json_t **ret_list, char hash[65]);
/* Renders a kubeconfig into <dir>/<file> (0600). */
int kf_lifecycle_kubeconfig_write(const char *dir, const char *file, const char *cluster,
                                  const char *server, const char *user, const char *cert_pem,
                                  const char *key_pem, const struct kf_pki_ca *ca,
                                  struct kf_strbuf *err);

/* --- ctrl-lifecycle-nodes.c ------------------------------------------------------------ */

struct lc_nodes {
    int64_t registered; /* simulated nodes the guest has (of those wanted) */
    int64_t ready;      /* of those, Ready (their KWOK manages them) */
    bool pending;       /* more creates or deletes to do: call again soon */
};
/* Makes the guest's simulated nodes kfleet-sim-0..want-1 (and no others
 * with the kfleet.io/simulated label) through endpoint_url, with the admin
 * certificate and CA in pki_dir; max_pods is each node's pod capacity.
 * 0 with *ret filled, or an error with the guest's words in err. */
int kf_lifecycle_nodes_sync(const char *pki_dir, const char *endpoint_url, int64_t want,
                            unsigned max_pods, struct lc_nodes *ret, struct kf_strbuf *err);

/* --- ctrl-lifecycle-ports.c ----------------------------------------------------------- */

/* Member ports: per host address (hosts that share an address share its
 * ports, as the three agents of `make run` do on 127.0.0.1), kept as an
 * index that the controller's informer handlers feed (see the file's
 * comment). Thread-safe. */
struct lc_ports;
struct lc_ports *kf_lifecycle_ports_new(int min, int max);
void kf_lifecycle_ports_free(struct lc_ports *p);
/* Member `member` is bound to host and holds ports (spec.ports, an object
 * of name -> number; NULL, or host NULL, when it holds none or is gone). */
void kf_lifecycle_ports_member(struct lc_ports *p, const char *member, const char *host,
                               const json_t *ports);
/* Cluster's apiserver endpoint is on address:port (address NULL: none). */
void kf_lifecycle_ports_endpoint(struct lc_ports *p, const char *cluster, const char *address,
                                 int port);
/* Host's address is address (NULL: the host was deleted). Returns whether
 * it changed (or is new). */
bool kf_lifecycle_ports_host(struct lc_ports *p, const char *host, const char *address);
/* Picks n free ports on address: held by no member or endpoint on it,
 * not handed out in the last minute, and, for a loopback address, not
 * taken on this machine right now; the lowest such. Returns 0 or -ENOSPC. */
int kf_lifecycle_ports_pick(struct lc_ports *p, const char *address, size_t n, int *ret);
/* Whether a member or endpoint holds address:port (for tests). */
bool kf_lifecycle_ports_used(struct lc_ports *p, const char *address, int port);

/* --- shared by the controller and the actions ------------------------------- */

/* Builds the catalog's view of a cluster from its object, its (not
 * deleting) members and their hosts' addresses. Strings point into the
 * JSON objects, which must outlive it. */
struct lc_view {
    struct kf_catalog_cluster c;
    struct kf_catalog_member *members;
    json_t **objs;        /* the member objects, in c.members order (borrowed) */
    const char **hosts;   /* spec.host of each */
    const char **address; /* each member's host's address */
    json_t **ports_new;   /* ports given and not written yet (owned; NULL: none) */
    size_t n;
};
void kf_lifecycle_view_release(struct lc_view *v);

/* --- ctrl-lifecycle-upgrade.c --------------------------------------------------------- */

/* What the upgrade engine looks at: the cluster, its members (v) and
 * their hosts (hosts[i], NULL when unknown), what the health check found. */
struct lc_upgrade_in {
    const json_t *gc;
    const struct lc_view *v;
    json_t *const *hosts;
    bool healthy;           /* every member Ready, etcd healthy, serving */
    const char *health_msg; /* why not, for the precheck's message */
    bool has_endpoint;      /* the cluster has apiservers behind an endpoint */
    bool endpoint_ok;       /* /readyz through it answers */
    int64_t now_ms;
    int64_t step_timeout_ms; /* a moved member not Ready by then fails the upgrade */
};

/* What it decided. */
struct lc_upgrade {
    const char **versions;   /* versions[i]: what member i runs now (borrowed from the inputs) */
    json_t *status;          /* the new status.upgrade, or NULL: leave it as it is */
    const char *version;     /* the new status.version (the postcheck passed), or NULL */
    bool active;             /* members are moving: phase Upgrading */
    const char *cond_reason; /* the Upgraded condition (NULL: leave it) */
    bool cond_ok;
    struct kf_strbuf msg;     /* its message */
    const char *event_reason; /* an Event to record (NULL: none), message msg */
    bool event_warning;
    int64_t requeue_ms; /* look again then (0: the controller's own period) */
};

/* Plans one step of the cluster's upgrade (the file's comment says how);
 * release ret with kf_lifecycle_upgrade_release. */
void kf_lifecycle_upgrade_plan(const struct lc_upgrade_in *in, struct lc_upgrade *ret);
void kf_lifecycle_upgrade_release(struct lc_upgrade *u);

#endif
