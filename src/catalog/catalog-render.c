/* catalog-render.c: a member's command line from the catalog, the profile
 * and the cluster (catalog.h).
 *
 * Order of precedence, lowest first: the catalog's row for the component
 * and version, the profile's component (binary, args, ports, probe), then
 * flags ("component.flag": "value", the profile's merged with the
 * cluster's), each of which replaces an argument --flag=... of the same
 * name or is appended. Placeholders kfleetd knows are filled here; the
 * agent's ({{certDir}}, {{dataDir}}, ...) stay for the agent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/catalog.h"
#include "kfleet/grade.h"
#include "kfleet/catalog-etcd.h"
#include "kfleet/json.h"
#include "kfleet/runner.h"
#include "kfleet/strbuf.h"
#include "catalog/catalog-internal.h"

static const struct kf_catalog_member *first_of(const struct kf_catalog_cluster *c,
                                                const char *component)
{
    const struct kf_catalog_member *best = NULL;

    for (size_t i = 0; i < c->n_members; i++)
        if (!strcmp(c->members[i].component, component) &&
            (!best || c->members[i].index < best->index))
            best = &c->members[i];
    return best;
}

static int member_port(const struct kf_catalog_member *m, const char *name)
{
    return (int)json_integer_value(json_object_get(m->ports, name));
}

static void add_url(struct kf_strbuf *sb, const char *scheme, const char *host, int port)
{
    if (strchr(host, ':'))
        kf_strbuf_addf(sb, "%s://[%s]:%d", scheme, host, port);
    else
        kf_strbuf_addf(sb, "%s://%s:%d", scheme, host, port);
}

struct fill_ctx {
    const struct kf_catalog_cluster *c;
    const struct kf_catalog_member *m;
    struct kf_strbuf tmp[4];
    unsigned next;
};

static struct kf_strbuf *scratch(struct fill_ctx *f)
{
    struct kf_strbuf *sb = &f->tmp[f->next++ % KF_ARRAY_SIZE(f->tmp)];

    kf_strbuf_reset(sb);
    return sb;
}

static const char *lookup(void *ctx, const char *key, size_t len)
{
    struct fill_ctx *f = ctx;
    const struct kf_catalog_cluster *c = f->c;
    const struct kf_catalog_member *m = f->m;
    struct kf_strbuf *sb;
    char k[64];

    if (len >= sizeof(k))
        return NULL;
    memcpy(k, key, len);
    k[len] = '\0';
    if (!strcmp(k, "cluster"))
        return c->name;
    if (!strcmp(k, "member"))
        return m->name;
    if (!strcmp(k, "version")) {
        /* the minor: programs are installed per minor (1.37.2 runs from .../1.37/bin) */
        static _Thread_local char minor[16];
        int major = 0, mi = 0;

        if (c->version && sscanf(c->version, "%3d.%3d", &major, &mi) == 2) {
            snprintf(minor, sizeof(minor), "%d.%d", major, mi);
            return minor;
        }
        return c->version;
    }
    if (!strcmp(k, "address"))
        return m->address;
    if (!strcmp(k, "serviceCIDR"))
        return c->service_cidr;
    if (!strcmp(k, "podCIDR"))
        return c->pod_cidr;
    if (!strcmp(k, "nodeCIDR"))
        return c->node_cidr;
    if (!strcmp(k, "kubernetesServiceIP"))
        return c->kubernetes_service_ip;
    if (!strcmp(k, "dnsServiceIP"))
        return c->dns_service_ip;
    if (!strcmp(k, "index")) {
        sb = scratch(f);
        kf_strbuf_addf(sb, "%d", m->index);
        return sb->buf;
    }
    if (kf_str_has_prefix(k, "port.")) {
        int p = member_port(m, k + 5);

        if (p <= 0)
            return NULL;
        sb = scratch(f);
        kf_strbuf_addf(sb, "%d", p);
        return sb->buf;
    }
    if (!strcmp(k, "etcdServers")) {
        sb = scratch(f);
        for (size_t i = 0; i < c->n_members; i++) {
            const struct kf_catalog_member *e = &c->members[i];

            if (strcmp(e->component, "etcd") != 0 || member_port(e, "client") <= 0)
                continue;
            if (sb->len)
                kf_strbuf_addch(sb, ',');
            add_url(sb, "https", e->address, member_port(e, "client"));
        }
        return sb->buf;
    }
    if (!strcmp(k, "apiServer")) {
        const struct kf_catalog_member *a = first_of(c, "kube-apiserver");

        if (!a || member_port(a, "https") <= 0)
            return NULL;
        sb = scratch(f);
        add_url(sb, "https", a->address, member_port(a, "https"));
        return sb->buf;
    }
    return NULL;
}

/* --- the profile's part -------------------------------------------------------- */

static const json_t *profile_component(const struct kf_catalog_cluster *c, const char *name)
{
    size_t i;
    const json_t *pc;

    json_array_foreach(c->components, i, pc)
    {
        if (kf_streq(kf_json_str(pc, "name", NULL), name))
            return pc;
    }
    return NULL;
}

size_t kf_catalog_port_names(const struct kf_catalog_cluster *c, size_t i, const char **names)
{
    const struct kf_catalog_member *m = &c->members[i];
    const json_t *pc = profile_component(c, m->component);
    const json_t *ports = kf_json_path(pc, "ports");
    size_t n = 0;

    if (json_object_size(ports) > 0) {
        const char *k;
        json_t *v;

        json_object_foreach((json_t *)ports, k, v)
        {
            if (n < KF_CATALOG_MAX_PORTS)
                names[n++] = k;
        }
    } else {
        const struct catalog_entry *e = kf_catalog_find(m->component, c->version);

        for (; e->c.ports[n] && n < KF_CATALOG_MAX_PORTS; n++)
            names[n] = e->c.ports[n];
    }
    names[n] = NULL;
    return n;
}

void kf_catalog_etcd_name(const struct kf_catalog_member *m, char buf[64])
{
    size_t n = strlen(m->name);
    bool ok = n > 0 && n <= 63;

    for (const char *p = m->name; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-';
    if (ok)
        snprintf(buf, 64, "%s", m->name);
    else
        snprintf(buf, 64, "etcd-%d", m->index);
}

void kf_catalog_bundle_files(const struct kf_catalog_cluster *c, size_t i,
                             void (*fn)(void *ctx, const char *pki_path, const char *bundle_path,
                                        bool secret),
                             void *ctx)
{
    const struct kf_catalog_member *m = &c->members[i];
    const struct catalog_entry *e = kf_catalog_find(m->component, c->version);
    char name[64];

    kf_catalog_etcd_name(m, name);
    for (const struct catalog_file *f = e->files; f->pki_path; f++) {
        char path[160];

        if (strstr(f->pki_path, "%s"))
            snprintf(path, sizeof(path), "etcd/%s-%s", name, strrchr(f->pki_path, '-') + 1);
        else
            snprintf(path, sizeof(path), "%s", f->pki_path);
        fn(ctx, path, f->bundle_path, f->secret);
    }
}

/* --- etcd ------------------------------------------------------------------------ */

int kf_catalog_etcd_args(const struct kf_catalog_cluster *c, size_t i, struct kf_argv *argv,
                         struct kf_strbuf *err)
{
    const struct kf_catalog_member *m = &c->members[i];
    struct kf_etcd_peer peers[9];
    char names[9][64], urls[9][128], self[64];
    size_t n = 0;
    struct kf_strbuf u = KF_STRBUF_INIT;
    int r;

    kf_catalog_etcd_name(m, self);
    for (size_t k = 0; k < c->n_members; k++) {
        const struct kf_catalog_member *p = &c->members[k];

        if (strcmp(p->component, "etcd") != 0)
            continue;
        if (n == KF_ARRAY_SIZE(peers))
            return kf_err(err, -EINVAL, "cluster \"%s\" has more than 9 etcd members", c->name);
        kf_catalog_etcd_name(p, names[n]);
        kf_strbuf_reset(&u);
        add_url(&u, "https", p->address, member_port(p, "peer"));
        snprintf(urls[n], sizeof(urls[n]), "%s", u.buf);
        peers[n] = (struct kf_etcd_peer){ .name = names[n], .peer_url = urls[n] };
        n++;
    }
    kf_strbuf_release(&u);
    {
        struct kf_etcd_member_spec es = {
            .cluster = c->name,
            .name = self,
            .data_dir = "{{dataDir}}",
            .listen_ip = m->address,
            .client_port = member_port(m, "client"),
            .peer_port = member_port(m, "peer"),
            .metrics_port = member_port(m, "metrics"),
            .trusted_ca_file = "{{certDir}}/etcd/ca.crt",
            .cert_file = "{{certDir}}/etcd/server.crt",
            .key_file = "{{certDir}}/etcd/server.key",
            .peer_cert_file = "{{certDir}}/etcd/peer.crt",
            .peer_key_file = "{{certDir}}/etcd/peer.key",
            .peers = peers,
            .n_peers = n,
            .existing = m->joining,
            .quota_bytes = c->etcd_quota_bytes > 0
                               ? c->etcd_quota_bytes
                               : kf_etcd_quota_for_grade(c->grade >= 0 ? c->grade : 0),
        };

        r = kf_etcd_member_argv(&es, argv, err);
    }
    return r;
}

/* --- rendering ------------------------------------------------------------------- */

static bool flag_name_ok(const char *s)
{
    if (!s || !*s || *s == '-' || strlen(s) > 100)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

/* An environment variable's name: a letter or '_', then letters, digits
 * and '_' (what a shell would take). */
static bool env_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 100 || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* Sets --name=value in args (an array of strings): replaces the argument
 * of that name, or appends. */
static void set_flag(json_t *args, const char *name, const char *value)
{
    char *prefix = kf_xasprintf("--%s=", name), *bare = kf_xasprintf("--%s", name);
    char *arg = kf_xasprintf("--%s=%s", name, value);
    size_t i;
    json_t *v;
    bool done = false;

    json_array_foreach(args, i, v)
    {
        const char *s = json_string_value(v);

        if (s && (kf_str_has_prefix(s, prefix) || !strcmp(s, bare))) {
            json_array_set_new(args, i, json_string(arg));
            done = true;
            break;
        }
    }
    if (!done)
        json_array_append_new(args, json_string(arg));
    free(prefix);
    free(bare);
    free(arg);
}

static void add_env(json_t *env, const char *const *entries, struct fill_ctx *f)
{
    for (size_t k = 0; entries && entries[k]; k++) {
        const char *eq = strchr(entries[k], '=');
        char *name = kf_xstrndup(entries[k], (size_t)(eq - entries[k]));
        char *s = kf_fill_placeholders(eq + 1, lookup, f);

        json_object_set_new(env, name, json_string(s));
        free(name);
        free(s);
    }
}

/* Whether the cluster is small enough for the row's small-grade settings
 * (an unknown grade counts as G0, as the etcd quota does). */
static bool small_grade(const struct catalog_entry *e, const struct kf_catalog_cluster *c)
{
    return e->small && (c->grade < 0 ? 0 : c->grade) <= e->small->max_grade;
}

/* The member's environment: the catalog's entries (the row's, then the
 * small grades'), then the profile's component env (each filled in), a
 * later name replacing an earlier one. */
static int render_env(const struct kf_catalog_cluster *c, const struct catalog_entry *e,
                      const json_t *pc, struct fill_ctx *f, json_t *env, struct kf_strbuf *err)
{
    const json_t *penv = kf_json_path(pc, "env"), *v;
    const char *key;

    add_env(env, e->env, f);
    if (small_grade(e, c))
        add_env(env, e->small->env, f);
    json_object_foreach((json_t *)penv, key, v)
    {
        char *s;

        if (!env_name_ok(key) || !json_is_string(v))
            return kf_err(err, -EINVAL, "env \"%s\": not a variable name with a string value", key);
        s = kf_fill_placeholders(json_string_value(v), lookup, f);
        json_object_set_new(env, key, json_string(s));
        free(s);
    }
    return 0;
}

void kf_catalog_rendered_release(struct kf_catalog_rendered *r)
{
    if (!r)
        return;
    free(r->binary);
    json_decref(r->args);
    json_decref(r->env);
    json_decref(r->probe);
    memset(r, 0, sizeof(*r));
}

/* The small grades' settings, then the cluster's flags for this component
 * ("component.flag": "value"), set in args. */
static int render_flags(const struct kf_catalog_cluster *c, const struct catalog_entry *e,
                        const struct kf_catalog_member *m, struct fill_ctx *f, json_t *args,
                        struct kf_strbuf *err)
{
    size_t k;

    if (small_grade(e, c))
        for (k = 0; e->small->args[k]; k++) {
            const char *a = e->small->args[k], *eq = strchr(a, '=');
            char *name = kf_xstrndup(a + 2, (size_t)(eq - a - 2));

            set_flag(args, name, eq + 1);
            free(name);
        }
    if (json_is_object(c->flags)) {
        const char *key;
        json_t *val;
        size_t clen = strlen(m->component);

        json_object_foreach((json_t *)c->flags, key, val)
        {
            char *s;

            if (strncmp(key, m->component, clen) != 0 || key[clen] != '.' || !json_is_string(val))
                continue;
            if (!flag_name_ok(key + clen + 1))
                return kf_err(err, -EINVAL, "flag \"%s\": not a flag name", key);
            s = kf_fill_placeholders(json_string_value(val), lookup, f);
            set_flag(args, key + clen + 1, s);
            free(s);
        }
    }
    return 0;
}

/* The member's probe: the profile's, else the catalog's; NULL for none. */
static json_t *render_probe(const struct catalog_entry *e, const json_t *pc,
                            const struct kf_catalog_member *m)
{
    if (kf_json_path(pc, "probe.port")) {
        int port = member_port(m, kf_json_str(pc, "probe.port", ""));

        if (port > 0)
            return json_pack("{s:i, s:s, s:s}", "port", port, "path",
                             kf_json_str(pc, "probe.path", "/"), "scheme",
                             kf_json_str(pc, "probe.scheme", "https"));
    } else if (e->c.probe_port && member_port(m, e->c.probe_port) > 0) {
        return json_pack("{s:i, s:s, s:s}", "port", member_port(m, e->c.probe_port), "path",
                         e->c.probe_path, "scheme", e->c.probe_scheme);
    }
    return NULL;
}

int kf_catalog_render(const struct kf_catalog_cluster *c, size_t i, struct kf_catalog_rendered *ret,
                      struct kf_strbuf *err)
{
    const struct kf_catalog_member *m = &c->members[i];
    const struct catalog_entry *e = kf_catalog_find(m->component, c->version);
    const json_t *pc = profile_component(c, m->component);
    const json_t *pargs = kf_json_path(pc, "args"), *v;
    const char *pbin = kf_json_str(pc, "binary", NULL);
    const char *ports[KF_CATALOG_MAX_PORTS + 1];
    struct fill_ctx f = { .c = c, .m = m };
    struct kf_argv built = { 0 };
    json_t *args = json_array(), *env = json_object(), *probe = NULL;
    char *binary = NULL;
    size_t n, k;
    int r = 0;

    for (k = 0; k < KF_ARRAY_SIZE(f.tmp); k++)
        kf_strbuf_init(&f.tmp[k], 0);
    n = kf_catalog_port_names(c, i, ports);
    for (k = 0; k < n; k++)
        if (member_port(m, ports[k]) <= 0) {
            r = kf_err(err, -EINVAL, "member \"%s\" has no port \"%s\" yet", m->name, ports[k]);
            goto free_scratch;
        }

    if (json_is_array(pargs)) {
        json_array_foreach(pargs, k, v)
        {
            char *s =
                kf_fill_placeholders(json_string_value(v) ? json_string_value(v) : "", lookup, &f);

            json_array_append_new(args, json_string(s));
            free(s);
        }
    } else if (e->build) {
        r = e->build(c, i, &built, err);
        if (r < 0)
            goto free_scratch;
        for (k = 1; k < built.n; k++)
            json_array_append_new(args, json_string(built.v[k]));
    } else if (e->args) {
        for (k = 0; e->args[k]; k++) {
            char *s = kf_fill_placeholders(e->args[k], lookup, &f);

            json_array_append_new(args, json_string(s));
            free(s);
        }
    }
    if (pbin)
        binary = kf_fill_placeholders(pbin, lookup, &f);
    else if (e->build && built.n > 0)
        binary = kf_xstrdup(built.v[0]);
    else
        binary = kf_fill_placeholders(e->binary ? e->binary : m->component, lookup, &f);

    r = render_flags(c, e, m, &f, args, err);
    if (r < 0)
        goto free_scratch;
    r = render_env(c, e, pc, &f, env, err);
    if (r < 0)
        goto free_scratch;

    probe = render_probe(e, pc, m);
free_scratch:
    kf_argv_release(&built);
    for (k = 0; k < KF_ARRAY_SIZE(f.tmp); k++)
        kf_strbuf_release(&f.tmp[k]);
    if (r < 0) {
        json_decref(args);
        json_decref(env);
        json_decref(probe);
        free(binary);
        return r;
    }
    *ret =
        (struct kf_catalog_rendered){ .binary = binary, .args = args, .env = env, .probe = probe };
    return 0;
}
