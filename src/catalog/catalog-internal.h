/* catalog-internal.h: what the catalog's two files share. */
#ifndef KF_CATALOG_INTERNAL_H
#define KF_CATALOG_INTERNAL_H

#include "kfleet/catalog.h"
#include "kfleet/runner.h"

struct catalog_file {
    const char *pki_path;    /* in the cluster's PKI; "%s": the member's name */
    const char *bundle_path; /* in the member's bundle ({{certDir}}) */
    bool secret;
};

/* Settings for the small grades (G0..max_grade): "--flag=value"
 * arguments that replace the row's (or are appended) and "NAME=value"
 * environment entries. A profile's flags and env still win. */
struct catalog_small {
    int max_grade;
    const char *const *args;
    const char *const *env;
};

struct catalog_entry {
    struct kf_catalog_component c;
    const char *min_version, *max_version; /* inclusive minors; NULL: any */
    const char *binary;                    /* template; NULL: the component's name */
    const char *const *args;               /* template, or NULL when build is set */
    const char *const *env;                /* "NAME=template" entries, or NULL */
    /* Builds the argv (program first) of member i instead of a template. */
    int (*build)(const struct kf_catalog_cluster *c, size_t i, struct kf_argv *argv,
                 struct kf_strbuf *err);
    const struct catalog_file *files;
    const struct catalog_small *small; /* NULL: every grade runs the row as it is */
};

const struct catalog_entry *kf_catalog_find(const char *component, const char *version);

/* catalog-render.c */
int kf_catalog_etcd_args(const struct kf_catalog_cluster *c, size_t i, struct kf_argv *argv,
                         struct kf_strbuf *err);

#endif
