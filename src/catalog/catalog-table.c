/* catalog-table.c: the component catalog's entries (catalog.h).
 *
 * One row per component and range of Kubernetes minors: the program, the
 * ports, the probe, the certificate files and the argument template (etcd:
 * built by kf_etcd_member_argv instead, see catalog-render.c). To support
 * a new minor whose flags changed, add a row with that range and narrow
 * the old one; the ranges of one component must not overlap.
 *
 * The Kubernetes rows cover the minors whose programs
 * scripts/install-kubernetes builds, and every flag they render was
 * started against those programs (tests/integration/test_guest_kubernetes.py
 * runs them): a minor is listed here only once that is true, and
 * admission refuses a cluster on a minor that is not (kf_catalog_supports).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/catalog.h"
#include "kfleet/strbuf.h"
#include "catalog/catalog-internal.h"

static const char *const apiserver_args[] = {
    "--advertise-address={{address}}",
    /* the members' addresses may be loopback (a local fleet), which the
     * lease reconciler refuses; clients use the endpoint anyway */
    "--endpoint-reconciler-type=none",
    "--bind-address={{address}}",
    "--secure-port={{port.https}}",
    "--etcd-servers={{etcdServers}}",
    "--etcd-cafile={{certDir}}/etcd/ca.crt",
    "--etcd-certfile={{certDir}}/etcd/client.crt",
    "--etcd-keyfile={{certDir}}/etcd/client.key",
    "--client-ca-file={{certDir}}/ca.crt",
    "--tls-cert-file={{certDir}}/apiserver.crt",
    "--tls-private-key-file={{certDir}}/apiserver.key",
    "--service-cluster-ip-range={{serviceCIDR}}",
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    /* the public half: 1.37 reads only public keys and certificates there */
    "--service-account-key-file={{certDir}}/sa.crt",
    "--service-account-signing-key-file={{certDir}}/sa.key",
    "--authorization-mode=Node,RBAC",
    "--enable-bootstrap-token-auth=true",
    "--allow-privileged=true",
    "--cert-dir={{dataDir}}",
    "--profiling=false",
    NULL,
};

/* KWOK keeps the cluster's simulated nodes alive (leases, status) and
 * plays their kubelets for the pods the scheduler binds to them. It
 * manages only the nodes kfleetd creates with the annotation below, and
 * gives pods addresses from the cluster's pod range. */
static const char *const kwok_args[] = {
    "--kubeconfig={{certDir}}/kwok.kubeconfig",
    "--config=" KF_KWOK_DIR "/etc/stages.yaml",
    "--manage-all-nodes=false",
    "--manage-nodes-with-annotation-selector=" KF_KWOK_NODE_ANNOTATION "=fake",
    "--node-lease-duration-seconds=40",
    "--cidr={{podCIDR}}",
    "--node-ip={{address}}",
    "--server-address={{address}}:{{port.http}}",
    NULL,
};

static const char *const controller_manager_args[] = {
    "--kubeconfig={{certDir}}/controller-manager.kubeconfig",
    "--authentication-kubeconfig={{certDir}}/controller-manager.kubeconfig",
    "--authorization-kubeconfig={{certDir}}/controller-manager.kubeconfig",
    "--bind-address={{address}}",
    "--secure-port={{port.https}}",
    "--tls-cert-file={{certDir}}/server.crt",
    "--tls-private-key-file={{certDir}}/server.key",
    "--cluster-name={{cluster}}",
    "--cluster-signing-cert-file={{certDir}}/ca.crt",
    "--cluster-signing-key-file={{certDir}}/ca.key",
    "--root-ca-file={{certDir}}/ca.crt",
    "--service-account-private-key-file={{certDir}}/sa.key",
    "--service-cluster-ip-range={{serviceCIDR}}",
    "--cluster-cidr={{podCIDR}}",
    "--allocate-node-cidrs=true",
    "--use-service-account-credentials=true",
    "--leader-elect=true",
    "--controllers=*,bootstrapsigner,tokencleaner",
    "--profiling=false",
    NULL,
};

static const char *const scheduler_args[] = {
    "--kubeconfig={{certDir}}/scheduler.kubeconfig",
    "--authentication-kubeconfig={{certDir}}/scheduler.kubeconfig",
    "--authorization-kubeconfig={{certDir}}/scheduler.kubeconfig",
    "--bind-address={{address}}",
    "--secure-port={{port.https}}",
    "--tls-cert-file={{certDir}}/server.crt",
    "--tls-private-key-file={{certDir}}/server.key",
    "--leader-elect=true",
    "--profiling=false",
    NULL,
};

/* --- small control planes ---------------------------------------------------------
 *
 * A G0 or G1 guest (at most 50 nodes) is most of a fleet, and at rest its
 * nine processes cost more in their own housekeeping than in serving: the
 * measurements behind each line are in docs/BENCHMARKS.md ("What a control
 * plane costs"), and docs/internals/catalog.md says what each one trades.
 * Larger grades run the upstream defaults.
 */
#define SMALL_MAX_GRADE 1

/* One core is plenty for a small member and keeps the Go runtime from
 * waking a thread per core of the host. */
static const char *const small_go_env[] = { "GOMAXPROCS=1", NULL };

static const char *const small_etcd_args[] = {
    /* raft: heartbeats every 500 ms instead of 100 ms (an idle member's
     * ticks were a third of its CPU), elections after 2.5 s: the minimum
     * of five heartbeats, since a new cluster's first election waits up to
     * one randomized timeout (5 s made create -> Running 14 s instead of
     * 10 s), and a leader lost with its zone is replaced after ~2.5-5 s */
    "--heartbeat-interval=500",
    "--election-timeout=2500",
    NULL,
};

static const char *const small_apiserver_args[] = {
    /* a few hundred objects: reads go to etcd; the cache's per-resource
     * timers cost more than the reads they save */
    "--watch-cache=false",
    /* APF's queues and its object-count polls: max-requests-inflight
     * still bounds the load */
    "--enable-priority-and-fairness=false",
    "--etcd-count-metric-poll-period=0",
    "--etcd-db-metric-poll-interval=0",
    NULL,
};

/* leader election: renew every 5 s (not 2 s), take over after 30 s */
static const char *const small_leader_args[] = {
    "--leader-elect-lease-duration=30s",
    "--leader-elect-renew-deadline=20s",
    "--leader-elect-retry-period=5s",
    NULL,
};

static const struct catalog_small small_etcd = { SMALL_MAX_GRADE, small_etcd_args, small_go_env };
static const struct catalog_small small_apiserver = { SMALL_MAX_GRADE, small_apiserver_args,
                                                      small_go_env };
static const struct catalog_small small_leader = { SMALL_MAX_GRADE, small_leader_args,
                                                   small_go_env };

/* Certificate files: the PKI's path ("%s" is the member's name), the name
 * in the bundle, whether it is secret. */
static const struct catalog_file etcd_files[] = {
    { "etcd/ca.crt", "etcd/ca.crt", false },
    { "etcd/%s-server.crt", "etcd/server.crt", false },
    { "etcd/%s-server.key", "etcd/server.key", true },
    { "etcd/%s-peer.crt", "etcd/peer.crt", false },
    { "etcd/%s-peer.key", "etcd/peer.key", true },
    { NULL, NULL, false },
};

static const struct catalog_file apiserver_files[] = {
    { "ca.crt", "ca.crt", false },
    { "ca.crt", "probe-ca.crt", false },
    { "apiserver.crt", "apiserver.crt", false },
    { "apiserver.key", "apiserver.key", true },
    { "etcd/ca.crt", "etcd/ca.crt", false },
    { "etcd/client.crt", "etcd/client.crt", false },
    { "etcd/client.key", "etcd/client.key", true },
    { "sa.key", "sa.key", true },
    { "sa.crt", "sa.crt", false },
    { NULL, NULL, false },
};

static const struct catalog_file controller_manager_files[] = {
    { "ca.crt", "ca.crt", false },
    { "ca.crt", "probe-ca.crt", false },
    { "ca.key", "ca.key", true },
    { "sa.key", "sa.key", true },
    { "controller-manager.kubeconfig", "controller-manager.kubeconfig", true },
    { "controller-manager-server.crt", "server.crt", false },
    { "controller-manager-server.key", "server.key", true },
    { NULL, NULL, false },
};

static const struct catalog_file scheduler_files[] = {
    { "ca.crt", "ca.crt", false },
    { "ca.crt", "probe-ca.crt", false },
    { "scheduler.kubeconfig", "scheduler.kubeconfig", true },
    { "scheduler-server.crt", "server.crt", false },
    { "scheduler-server.key", "server.key", true },
    { NULL, NULL, false },
};

static const struct catalog_file kwok_files[] = {
    { "ca.crt", "ca.crt", false },
    { "kwok.kubeconfig", "kwok.kubeconfig", true },
    { NULL, NULL, false },
};

static const struct catalog_file other_files[] = {
    { "ca.crt", "ca.crt", false },
    { NULL, NULL, false },
};

static const struct catalog_entry entries[] = {
    {
        .c = { .component = "etcd",
               .ports = { "client", "peer", "metrics", NULL },
               .probe_port = "metrics",
               .probe_path = "/health",
               .probe_scheme = "http",
               .known = true },
        /* Debian's etcd 3.4 serves every Kubernetes minor kfleet runs */
        .binary = "/usr/bin/etcd",
        .build = kf_catalog_etcd_args,
        .files = etcd_files,
        .small = &small_etcd,
    },
    {
        .c = { .component = "kube-apiserver",
               .ports = { "https", NULL },
               .probe_port = "https",
               .probe_path = "/readyz",
               .probe_scheme = "https",
               .alias_port = "metrics", /* /metrics is on the secure port */
               .alias_of = "https",
               .known = true },
        .min_version = KF_CATALOG_K8S_MIN,
        .max_version = KF_CATALOG_K8S_MAX,
        .binary = "/opt/kfleet/kubernetes/{{version}}/bin/kube-apiserver",
        .args = apiserver_args,
        .files = apiserver_files,
        .small = &small_apiserver,
    },
    {
        .c = { .component = "kube-controller-manager",
               .ports = { "https", NULL },
               .probe_port = "https",
               .probe_path = "/healthz",
               .probe_scheme = "https",
               .known = true },
        .min_version = KF_CATALOG_K8S_MIN,
        .max_version = KF_CATALOG_K8S_MAX,
        .binary = "/opt/kfleet/kubernetes/{{version}}/bin/kube-controller-manager",
        .args = controller_manager_args,
        .files = controller_manager_files,
        .small = &small_leader,
    },
    {
        .c = { .component = "kube-scheduler",
               .ports = { "https", NULL },
               .probe_port = "https",
               .probe_path = "/healthz",
               .probe_scheme = "https",
               .known = true },
        .min_version = KF_CATALOG_K8S_MIN,
        .max_version = KF_CATALOG_K8S_MAX,
        .binary = "/opt/kfleet/kubernetes/{{version}}/bin/kube-scheduler",
        .args = scheduler_args,
        .files = scheduler_files,
        .small = &small_leader,
    },
    {
        .c = { .component = KF_KWOK_COMPONENT,
               .ports = { "http", NULL },
               .probe_port = "http",
               .probe_path = "/healthz",
               .probe_scheme = "http",
               .known = true },
        /* one KWOK release serves every Kubernetes minor of the catalog */
        .binary = KF_KWOK_DIR "/bin/kwok",
        .args = kwok_args,
        .files = kwok_files,
    },
};

static const struct catalog_entry unknown_entry = {
    .c = { .component = NULL, .ports = { NULL }, .known = false },
    .binary = NULL, /* the component's own name */
    .files = other_files,
};

/* The SHA256SUMS of scripts/install-kubernetes's builds (catalog.h). */
static const struct kf_catalog_file files_1_36[] = {
    { "bin/kube-apiserver", "3005ecafeaf4b064c41ad4fdf2245a77d36416fc242ff246424d33e3265361c6" },
    { "bin/kube-controller-manager",
      "afb60c8ef38806e8f84f0249446ed62a1d70226f25286e3c594ce92fa5054b7e" },
    { "bin/kube-scheduler", "4efc7f7cdf6404c582c8c6dfee3748c572b4e484bed0215f1b0974452128da81" },
    { "bin/kubectl", "ef3152cc830c5a0bf8ea9ae3e3a58750dd935d6a354f11ce8169c4dfb8ef9cd4" },
};

static const struct kf_catalog_file files_1_37[] = {
    { "bin/kube-apiserver", "3fbae82c1dc9d1b96db3bf7fe3c22d8e192f001f91dae9430b90f4884606f284" },
    { "bin/kube-controller-manager",
      "b6e5a7d466ed5f0bea2ae0c0936f3f97e10de0eac96dcf9b8010d33f2cd93b05" },
    { "bin/kube-scheduler", "d457965b9fcad168881654dee3ee335b4175e2c8ec7931571432d75e73985f01" },
    { "bin/kubectl", "952dafe3d763da3586f05a894c2d96604e543f6a39efab80027cd5a12a2d55cc" },
};

static const struct kf_catalog_release releases[] = {
    { "1.36", "v1.36.3", files_1_36, KF_ARRAY_SIZE(files_1_36) },
    { "1.37", "v1.37.2", files_1_37, KF_ARRAY_SIZE(files_1_37) },
};

const struct kf_catalog_release *kf_catalog_releases(size_t *ret_n)
{
    *ret_n = KF_ARRAY_SIZE(releases);
    return releases;
}

/* "1.31" -> 1031; -1 when it is not a MAJOR.MINOR version. */
static int version_number(const char *v)
{
    int major = 0, minor = 0;
    char tail;

    if (!v || sscanf(v, "%d.%d%c", &major, &minor, &tail) != 2 || major < 0 || minor < 0 ||
        minor > 999)
        return -1;
    return major * 1000 + minor;
}

const struct catalog_entry *kf_catalog_find(const char *component, const char *version)
{
    int v = version_number(version);

    for (size_t i = 0; i < KF_ARRAY_SIZE(entries); i++) {
        const struct catalog_entry *e = &entries[i];

        if (strcmp(e->c.component, component) != 0)
            continue;
        if (e->min_version && (v < 0 || v < version_number(e->min_version)))
            continue;
        if (e->max_version && (v < 0 || v > version_number(e->max_version)))
            continue;
        return e;
    }
    return &unknown_entry;
}

bool kf_catalog_supports(const char *version)
{
    char minor[32];
    int major = 0, m = 0;

    /* "1.37" or "1.37.2": the minor decides */
    if (!version || sscanf(version, "%d.%d", &major, &m) != 2 || major < 0 || m < 0 || major > 99 ||
        m > 999)
        return false;
    snprintf(minor, sizeof(minor), "%d.%d", major, m);
    return kf_catalog_find("kube-apiserver", minor)->c.known;
}

void kf_catalog_versions(struct kf_strbuf *out)
{
    int lo = version_number(KF_CATALOG_K8S_MIN), hi = version_number(KF_CATALOG_K8S_MAX);

    for (int v = lo; v <= hi; v++)
        kf_strbuf_addf(out, "%s\"%d.%d\"", v > lo ? ", " : "", v / 1000, v % 1000);
}

const struct kf_catalog_component *kf_catalog_lookup(const char *component, const char *version)
{
    return &kf_catalog_find(component, version)->c;
}
