/* catalog.h: the component catalog, i.e. how each control-plane component
 * of a guest cluster runs, per Kubernetes version.
 *
 * For a component (etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler) and a Kubernetes minor version, the catalog knows the
 * program, the named ports it listens on, its readiness probe, which
 * certificate files it needs, and its command line: a template filled in
 * with the cluster's ranges, ports, certificates and peers. etcd is
 * Debian's /usr/bin/etcd for every version (its argv comes from
 * kf_etcd_member_argv, catalog-etcd.h); the Kubernetes binaries are expected
 * at /opt/kfleet/kubernetes/<minor>/bin/<component>, side by side so that a
 * host can run two minors during an upgrade. A component the catalog does
 * not know (cp-addons, virtual-kubelet, ...) runs the program of its own
 * name unless its Profile says otherwise.
 *
 * A Profile refines this per component (spec.components[].binary and
 * .args, rendered with the same placeholders) and adds flags
 * (spec.flags "kube-apiserver.max-requests-inflight": "400" becomes
 * --max-requests-inflight=400, replacing the catalog's value); a
 * GuestCluster's own flags win over the profile's.
 *
 * Placeholders (in catalog and profile templates):
 *   filled here, by kfleetd:
 *     {{cluster}} {{member}} {{index}} {{version}} {{address}} (the member's host)
 *     {{port.NAME}} (the member's ports)
 *     {{etcdServers}} (https://a:p,... of every etcd member)
 *     {{serviceCIDR}} {{podCIDR}} {{nodeCIDR}} {{kubernetesServiceIP}}
 *     {{dnsServiceIP}} {{apiServer}} (URL of the first kube-apiserver)
 *   left for the agent, which knows its directories:
 *     {{certDir}} (the member's certificate bundle) {{dataDir}} {{memberDir}}
 *     {{name}} {{host}} {{hostAddress}}
 *
 * Pure: no store, no files, no logging; thread-safe.
 */
#ifndef KF_CATALOG_H
#define KF_CATALOG_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_strbuf;

#define KF_CATALOG_MAX_PORTS 4

/* The Kubernetes minors the catalog runs (inclusive), i.e. those that
 * scripts/install-kubernetes builds and the tests start. */
#define KF_CATALOG_K8S_MIN "1.36"
#define KF_CATALOG_K8S_MAX "1.37"

/* The Kubernetes releases the catalog runs, as scripts/install-kubernetes
 * builds them into /opt/kfleet/kubernetes/<minor>/: each file with the
 * SHA-256 of that build (reproducible: -trimpath, fixed build date and
 * version, CGO off; Go 1.26 on Debian). An agent that fetches a release
 * from an artifact source checks every file against these, never against
 * what the source says. */
struct kf_catalog_file {
    const char *path;   /* "bin/kube-apiserver", relative to the minor's folder */
    const char *sha256; /* 64 hex digits */
};
struct kf_catalog_release {
    const char *minor;   /* "1.37" */
    const char *version; /* "v1.37.2", as the folder's VERSION says */
    const struct kf_catalog_file *files;
    size_t n_files;
};
/* Every release, oldest first; *ret_n set to the count. */
const struct kf_catalog_release *kf_catalog_releases(size_t *ret_n);

/* KWOK (simulated nodes), as scripts/install-kubernetes installs it, and
 * the annotation of the nodes it manages. */
#define KF_KWOK_COMPONENT       "kwok" /* the member's component */
#define KF_KWOK_VERSION         "v0.8.0"
#define KF_KWOK_DIR             "/opt/kfleet/kwok/" KF_KWOK_VERSION
#define KF_KWOK_NODE_ANNOTATION "kwok.x-k8s.io/node"
/* Most simulated nodes one cluster may have (GuestCluster
 * spec.simulatedNodes): each is a Node in the guest and work for its KWOK. */
#define KF_KWOK_MAX_NODES 1000

/* One member of the cluster as the catalog sees it. */
struct kf_catalog_member {
    const char *name;      /* the ControlPlaneMember's name */
    const char *component; /* "etcd" */
    int index;             /* among the component's members */
    const char *address;   /* its host's address */
    const json_t *ports;   /* {"client": 2379, ...} (borrowed) */
    /* etcd: it joins a running cluster (a replacement, added with member
     * add): --initial-cluster-state existing */
    bool joining;
};

struct kf_catalog_cluster {
    const char *name;
    const char *version; /* Kubernetes minor, "1.31" */
    int grade;           /* 0..5 (etcd quota), -1 unknown */
    const char *service_cidr, *pod_cidr, *node_cidr;
    const char *kubernetes_service_ip, *dns_service_ip;
    int64_t etcd_quota_bytes; /* 0: from the grade */
    const struct kf_catalog_member *members;
    size_t n_members;
    const json_t *components; /* the profile's spec.components (overrides), or NULL */
    const json_t *flags;      /* merged flags {"component.flag": "value"}, or NULL */
};

/* What the catalog says about one component at one version. */
struct kf_catalog_component {
    const char *component;
    const char *ports[KF_CATALOG_MAX_PORTS + 1]; /* port names, NULL-terminated */
    const char *probe_port;                      /* a name from ports, or NULL: no probe */
    const char *probe_path;
    const char *probe_scheme; /* "http", "https" */
    /* a port name that is another port's number too (kube-apiserver serves
     * /metrics on its secure port: "metrics" = "https"); NULL: none */
    const char *alias_port, *alias_of;
    bool known; /* false: not in the catalog (runs a program of its name) */
};

/* The catalog's view of component at version (never NULL: unknown
 * components get a record with known == false and no ports). */
const struct kf_catalog_component *kf_catalog_lookup(const char *component, const char *version);

/* Whether the catalog runs Kubernetes at version ("1.37" or "1.37.2":
 * its minor decides). */
bool kf_catalog_supports(const char *version);
/* Appends the minors it runs, quoted, comma-separated ("\"1.37\""). */
void kf_catalog_versions(struct kf_strbuf *out);

/* The names of the ports member i of c needs (the catalog's, unless the
 * profile's component lists `ports` of its own), NULL-terminated, into
 * names (at least KF_CATALOG_MAX_PORTS + 1 entries). Returns the count. */
size_t kf_catalog_port_names(const struct kf_catalog_cluster *c, size_t i, const char **names);

/* The certificate files member i of c gets from the cluster's PKI
 * (pki.h's layout), each with the name it has in the member's bundle:
 *   fn(ctx, pki_path, bundle_path, secret) once per file. */
void kf_catalog_bundle_files(const struct kf_catalog_cluster *c, size_t i,
                             void (*fn)(void *ctx, const char *pki_path, const char *bundle_path,
                                        bool secret),
                             void *ctx);

/* The name an etcd member has in its cluster (--name, --initial-cluster,
 * and the PKI's etcd/<name>-server.crt): the object's name when etcd
 * takes it (a DNS label of at most 63 characters), else etcd-<index>. */
void kf_catalog_etcd_name(const struct kf_catalog_member *m, char buf[64]);

/* What a member runs, rendered from the catalog, its profile and the
 * cluster's flags. */
struct kf_catalog_rendered {
    char *binary;  /* the program */
    json_t *args;  /* a JSON array of strings: the arguments after the program */
    json_t *env;   /* a JSON object NAME -> value: the whole environment (never NULL) */
    json_t *probe; /* {port, path, scheme}, or NULL when the component has none */
};

/* Renders member i of c into *ret (release it with
 * kf_catalog_rendered_release). The environment is the catalog's for the
 * component and grade, then the profile's component env on top. Every
 * port the component needs must be in the member's ports. Returns 0, or
 * -EINVAL with the reason in err and *ret untouched. */
int kf_catalog_render(const struct kf_catalog_cluster *c, size_t i, struct kf_catalog_rendered *ret,
                      struct kf_strbuf *err);
void kf_catalog_rendered_release(struct kf_catalog_rendered *r);

#endif
