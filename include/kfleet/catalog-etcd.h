/* catalog-etcd.h: the command line of one member of a guest cluster's etcd.
 *
 * Every guest cluster's datastore is a real etcd cluster (Debian's
 * /usr/bin/etcd, 3.4), one member per zone, TLS between peers and to
 * clients, both sides authenticated by certificate (pki.h issues them).
 * This builds the argv the runner (runner.h) executes for one member;
 * the component catalog uses it for the `etcd` component.
 */
#ifndef KF_GUEST_ETCD_H
#define KF_GUEST_ETCD_H

#include <stdint.h>

#include "kfleet/base.h"

struct kf_argv;
struct kf_strbuf;

struct kf_etcd_peer {
    const char *name;     /* member name */
    const char *peer_url; /* https://host:port */
};

struct kf_etcd_member_spec {
    const char *binary;  /* NULL: /usr/bin/etcd */
    const char *cluster; /* the guest cluster: --initial-cluster-token kfleet-<cluster> */
    const char *name;    /* this member; must be one of peers[] */
    const char *data_dir;
    const char *listen_ip;       /* the address it binds, e.g. 127.0.0.1 or the host's IP */
    const char *advertise_host;  /* what others dial; NULL: listen_ip */
    int client_port;             /* https, certificate required */
    int peer_port;               /* https, certificate required */
    int metrics_port;            /* plain http /metrics and /health for Prometheus; 0: none */
    const char *trusted_ca_file; /* the etcd CA: clients and peers must present its certs */
    const char *cert_file;       /* serving certificate (serverAuth + clientAuth) */
    const char *key_file;
    const char *peer_cert_file; /* peer certificate (serverAuth + clientAuth) */
    const char *peer_key_file;
    const struct kf_etcd_peer *peers; /* every member, this one included */
    size_t n_peers;
    bool existing;       /* --initial-cluster-state existing (joining a running cluster) */
    int64_t quota_bytes; /* --quota-backend-bytes; 0: kf_etcd_quota_for_grade(0) */
    int heartbeat_ms;    /* 0: etcd's default (100) */
    int election_ms;     /* 0: etcd's default (1000) */
};

/* The etcd backend quota for a guest cluster grade: 8 GiB for G0..G4,
 * 16 GiB for G5 (reference §3.7). */
int64_t kf_etcd_quota_for_grade(int grade);

/* Appends the member's argv (binary first) to *ret. Paths are absolute, or
 * start with {{certDir}} or {{dataDir}}, which the agent that runs the
 * member replaces with its absolute directories (the component catalog
 * renders argv in kfleetd, catalog.h). -EINVAL with the
 * reason in err for a spec that etcd would refuse or that would make an
 * insecure member (a non-https peer URL, a missing certificate, this
 * member missing from peers). */
int kf_etcd_member_argv(const struct kf_etcd_member_spec *spec, struct kf_argv *ret,
                        struct kf_strbuf *err);

#endif
