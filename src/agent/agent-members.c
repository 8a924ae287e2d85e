/* agent-members.c: from ControlPlaneMember objects to processes and back
 * (agent.h).
 *
 * Level-triggered: kf_agent_members_sync() looks at every member of a host
 * that changed and converges it:
 *
 *   wanted (bound here, not being deleted) and its command line filled in
 *       -> certificates fetched when the member's kfleet.io/pki-hash says
 *          they changed, the runner spec built (placeholders filled), and
 *          kf_runner_apply() when that spec differs from what was applied;
 *   wanted, no command line yet -> status Pending, saying so;
 *   not wanted (deleted, or absent from a list of what is bound here)
 *       -> kf_runner_remove(), and once the runner reports it gone, its
 *          directory is removed and, for an object being deleted, the
 *          status says phase Stopped and released: true; the cluster
 *          controller then takes the kfleet.io/agent finalizer off, and
 *          the deletion completes (the agent needs no right beyond
 *          writing status).
 *
 * Status goes back as a merge patch of .../status with phase, ready, pid,
 * restarts, lastExitCode, startedAt, host, message and
 * observedGeneration, only when it differs from what kfleetd has (the
 * object's status as last seen, or last written).
 *
 * On a real host every member has a directory <data-dir>/members/<name>:
 *   member.json   the object last applied (a cache: after an agent restart
 *                 nothing is applied from it before kfleetd's first list,
 *                 which says whether the member is still bound here; a
 *                 member that moved away meanwhile is removed, never
 *                 restarted: fencing, docs/internals/replacement.md)
 *   pki/          its certificate bundle from kfleetd (keys 0600)
 *   data/         its data ({{dataDir}}: etcd's --data-dir)
 *   member.log    its output, rotated
 * A simulated host keeps nothing on disk.
 */
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "kfleet/file.h"
#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

KF_LOG_MODULE(agent);

#define BUNDLE_FILES_MAX    64
#define BUNDLE_FILE_MAX     (256 * 1024)
#define CACHE_MAX           (1024 * 1024)
#define RETRY_INITIAL_MS    500
#define RETRY_MAX_MS        30000
#define READINESS_PERIOD_MS 1000
#define REMOVE_GRACE_MS     2000 /* SIGTERM..SIGKILL for a member being deleted */

/* --- names and paths ------------------------------------------------------------ */

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;

    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void kf_agent_runner_name(const char *name, char out[KF_RUNNER_NAME_MAX + 1])
{
    char hex[65];
    size_t n = 0;

    if (strlen(name) <= KF_RUNNER_NAME_MAX && kf_runner_name_valid(name)) {
        snprintf(out, KF_RUNNER_NAME_MAX + 1, "%s", name);
        return;
    }
    /* Longer than a runner name: a readable prefix and a hash keep it unique. */
    for (const char *p = name; *p && n < 80; p++, n++)
        out[n] = (*p == '.' && n == 0) ? '_' : *p;
    sha256_hex(name, strlen(name), hex);
    snprintf(out + n, KF_RUNNER_NAME_MAX + 1 - n, "-%.16s", hex);
}

static char *member_dir(const struct agent_host *h, const struct agent_member *m)
{
    if (!h->dir)
        return kf_xasprintf("/simulated/%s/members/%s", h->name, m->rname);
    return kf_xasprintf("%s/members/%s", h->dir, m->rname);
}

/* --- the member table ------------------------------------------------------------- */

void kf_agent_member_free(struct agent_member *m)
{
    if (!m)
        return;
    json_decref(m->obj);
    json_decref(m->reported);
    free(m->name);
    free(m->pki_hash);
    free(m->cluster);
    free(m->component);
    free(m);
}

static struct agent_member *member_get(struct agent_host *h, const char *name, bool create)
{
    char rname[KF_RUNNER_NAME_MAX + 1];
    struct agent_member *m;

    kf_agent_runner_name(name, rname);
    m = kf_smap_get(&h->members, rname);
    if (m || !create)
        return m;
    m = kf_xcalloc(1, sizeof(*m));
    m->name = kf_xstrdup(name);
    snprintf(m->rname, sizeof(m->rname), "%s", rname);
    kf_smap_put(&h->members, m->rname, m);
    return m;
}

static void set_labels(struct agent_member *m)
{
    const char *cl = kf_json_str(m->obj, "spec.cluster", NULL);
    const char *co = kf_json_str(m->obj, "spec.component", NULL);

    if (cl && !kf_streq(cl, m->cluster)) {
        free(m->cluster);
        m->cluster = kf_xstrdup(cl);
    }
    if (co && !kf_streq(co, m->component)) {
        free(m->component);
        m->component = kf_xstrdup(co);
    }
}

static void take_object(struct agent_member *m, const json_t *obj, bool from_cache)
{
    json_t *copy = json_deep_copy(obj);

    json_decref(m->obj);
    m->obj = copy;
    m->from_cache = from_cache;
    set_labels(m);
    if (!from_cache) {
        /* What kfleetd has now: report against it. */
        json_t *st = kf_json_path(obj, "status");

        json_decref(m->reported);
        m->reported = st ? json_deep_copy(st) : json_object();
    }
}

void kf_agent_member_seen(struct kf_agent *a, struct agent_host *h, const json_t *obj, bool deleted)
{
    const char *name = kf_obj_name(obj);
    struct agent_member *m;

    (void)a;
    if (!name || !*name)
        return;
    m = member_get(h, name, !deleted);
    if (!m)
        return;
    if (deleted) {
        json_decref(m->obj);
        m->obj = NULL;
        m->from_cache = false;
    } else {
        take_object(m, obj, false);
    }
    h->dirty = true;
}

void kf_agent_members_snapshot(struct kf_agent *a, struct agent_host *h, json_t **objs, size_t n)
{
    struct kf_smap seen;
    size_t it = 0;
    const char *key;
    void *v;

    kf_smap_init(&seen);
    for (size_t i = 0; i < n; i++) {
        char rname[KF_RUNNER_NAME_MAX + 1];

        kf_agent_member_seen(a, h, objs[i], false);
        kf_agent_runner_name(kf_obj_name(objs[i]), rname);
        kf_smap_put(&seen, rname, (void *)1);
    }
    while (kf_smap_next(&h->members, &it, &key, &v)) {
        struct agent_member *m = v;

        if (!kf_smap_contains(&seen, key) && m->obj) {
            json_decref(m->obj);
            m->obj = NULL;
            m->from_cache = false;
        }
    }
    kf_smap_release(&seen);
    /* What the runner supervises that kfleetd did not list goes too
     * (members left from an earlier run that were deleted meanwhile). */
    {
        struct kf_proc_status *list = NULL;
        int nl = kf_runner_list(h->runner, &list);

        for (int i = 0; i < nl; i++) {
            struct agent_member *m;

            if (list[i].is_task || kf_smap_get(&h->members, list[i].name))
                continue;
            m = kf_xcalloc(1, sizeof(*m));
            m->name = kf_xstrdup(list[i].name);
            snprintf(m->rname, sizeof(m->rname), "%s", list[i].name);
            m->st = list[i];
            m->have_status = true;
            m->applied = true;
            kf_smap_put(&h->members, m->rname, m);
        }
        free(list);
    }
    h->dirty = true;
}

void kf_agent_member_event(struct kf_agent *a, struct agent_host *h,
                           const struct kf_runner_event *ev)
{
    struct agent_member *m;

    (void)a;
    if (ev->lost > 0) {
        /* Events were dropped: take every status afresh. */
        struct kf_proc_status *list = NULL;
        int n = kf_runner_list(h->runner, &list);

        for (int i = 0; i < n; i++) {
            m = kf_smap_get(&h->members, list[i].name);
            if (m && !list[i].is_task) {
                m->st = list[i];
                m->have_status = true;
            }
        }
        free(list);
    }
    if (ev->type != KF_RUNNER_EV_STATUS || ev->status.is_task)
        return;
    m = kf_smap_get(&h->members, ev->status.name);
    if (!m)
        return;
    m->st = ev->status;
    m->have_status = true;
    h->dirty = true;
}

/* --- placeholders and the runner spec ------------------------------------------- */

struct subst {
    const char *key;
    const char *value;
};

struct subst_table {
    const struct subst *subs;
    size_t n;
};

static const char *subst_lookup(void *ctx, const char *key, size_t len)
{
    const struct subst_table *t = ctx;

    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->subs[i].key) == len && !strncmp(key, t->subs[i].key, len))
            return t->subs[i].value;
    return NULL;
}

/* Replaces {{key}} in s; unknown placeholders stay as they are. */
static char *fill(const char *s, const struct subst *subs, size_t n)
{
    struct subst_table t = { subs, n };

    return kf_fill_placeholders(s, subst_lookup, &t);
}

struct built_spec {
    struct kf_argv argv, env;
    char *workdir, *log_file, *cert_dir;
    char *ca, *cert, *key;
    struct kf_proc_spec spec;
    char hash[65];
};

static void built_spec_release(struct built_spec *b)
{
    kf_argv_release(&b->argv);
    kf_argv_release(&b->env);
    free(b->workdir);
    free(b->log_file);
    free(b->cert_dir);
    free(b->ca);
    free(b->cert);
    free(b->key);
}

static int64_t quantity(const json_t *v, bool bytes)
{
    int64_t milli;

    if (json_is_integer(v))
        return bytes ? json_integer_value(v) : json_integer_value(v) * 1000;
    if (!json_is_string(v) || kf_parse_quantity(json_string_value(v), &milli) < 0)
        return 0;
    return bytes ? milli / 1000 : milli;
}

static bool file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

static void build_spec(struct kf_agent *a, struct agent_host *h, struct agent_member *m,
                       struct built_spec *b)
{
    const json_t *spec = kf_json_path(m->obj, "spec");
    char *dir = member_dir(h, m);
    char *data = kf_xasprintf("%s/data", dir);
    const char *addr = a->cfg.address ? a->cfg.address : "127.0.0.1";
    const json_t *args = kf_json_path(spec, "args"), *env = kf_json_path(spec, "env"), *v;
    const json_t *probe = kf_json_path(spec, "probe");
    struct kf_strbuf all = KF_STRBUF_INIT;
    const char *k;
    size_t i;

    memset(b, 0, sizeof(*b));
    b->cert_dir = kf_xasprintf("%s/pki", dir);
    {
        const struct subst subs[] = {
            { "dataDir", data }, { "certDir", b->cert_dir }, { "memberDir", dir },
            { "name", m->name }, { "hostAddress", addr },    { "host", h->name },
        };
        char *bin = fill(kf_json_str(spec, "binary", ""), subs, KF_ARRAY_SIZE(subs));

        kf_argv_add(&b->argv, bin);
        free(bin);
        json_array_foreach(args, i, v)
        {
            char *s =
                fill(json_string_value(v) ? json_string_value(v) : "", subs, KF_ARRAY_SIZE(subs));

            kf_argv_add(&b->argv, s);
            free(s);
        }
        json_object_foreach((json_t *)env, k, v)
        {
            char *s =
                fill(json_string_value(v) ? json_string_value(v) : "", subs, KF_ARRAY_SIZE(subs));

            kf_argv_addf(&b->env, "%s=%s", k, s);
            free(s);
        }
    }
    if (m->pki_hash)
        kf_argv_addf(&b->env, "KFLEET_PKI_HASH=%s", m->pki_hash);
    b->workdir = dir;
    b->log_file = h->dir ? kf_xasprintf("%s/member.log", dir) : NULL;
    b->spec = (struct kf_proc_spec){
        .name = m->rname,
        .argv = (const char *const *)b->argv.v,
        .env = (const char *const *)b->env.v,
        .workdir = b->workdir,
        .log_file = b->log_file,
        .cpu_millis = quantity(kf_json_path(spec, "resources.limits.cpu"), false),
        .memory_bytes = quantity(kf_json_path(spec, "resources.limits.memory"), true),
        .stop_grace_ms = a->cfg.stop_grace_ms,
    };
    if (probe && kf_json_int(probe, "port", 0) > 0) {
        struct kf_probe *p = &b->spec.readiness;

        p->type = KF_PROBE_HTTP;
        p->host = addr;
        p->port = (int)kf_json_int(probe, "port", 0);
        p->path = kf_json_str(probe, "path", "/");
        p->https = strcmp(kf_json_str(probe, "scheme", "https"), "https") == 0;
        p->period_ms = READINESS_PERIOD_MS;
        p->timeout_ms = 1000;
        p->failure_threshold = 3;
        if (p->https) {
            b->ca = kf_xasprintf("%s/probe-ca.crt", b->cert_dir);
            b->cert = kf_xasprintf("%s/probe-client.crt", b->cert_dir);
            b->key = kf_xasprintf("%s/probe-client.key", b->cert_dir);
            if (h->dir && file_exists(b->ca))
                p->ca_file = b->ca;
            if (h->dir && file_exists(b->cert) && file_exists(b->key)) {
                p->cert_file = b->cert;
                p->key_file = b->key;
            }
        }
    }
    /* What decides "apply again": the command, the environment (which carries
     * the certificates' hash), limits and probe. */
    for (i = 0; i < b->argv.n; i++)
        kf_strbuf_addf(&all, "a:%s\n", b->argv.v[i]);
    for (i = 0; i < b->env.n; i++)
        kf_strbuf_addf(&all, "e:%s\n", b->env.v[i]);
    kf_strbuf_addf(&all, "l:%lld/%lld\n", (long long)b->spec.cpu_millis,
                   (long long)b->spec.memory_bytes);
    kf_strbuf_addf(&all, "p:%d:%d:%s:%d\n", b->spec.readiness.type, b->spec.readiness.port,
                   b->spec.readiness.path ? b->spec.readiness.path : "", b->spec.readiness.https);
    sha256_hex(all.buf, all.len, b->hash);
    kf_strbuf_release(&all);
    free(data);
}

/* --- the certificate bundle ------------------------------------------------------ */

static bool bundle_path_ok(const char *p)
{
    size_t n = p ? strlen(p) : 0;

    if (n == 0 || n > 128 || p[0] == '/' || p[0] == '.')
        return false;
    if (strstr(p, "..") || strstr(p, "//") || p[n - 1] == '/')
        return false;
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.' || *p == '/'))
            return false;
    return true;
}

/* Writes the bundle's files into <dir>/pki (atomically as a whole: a new
 * directory renamed over the old one). */
static int write_bundle(const char *dir, const json_t *files, const char *hash,
                        struct kf_strbuf *err)
{
    char *tmp = kf_xasprintf("%s/pki.new", dir), *old = kf_xasprintf("%s/pki.old", dir);
    char *cur = kf_xasprintf("%s/pki", dir);
    const json_t *f;
    size_t i;
    int r = 0;

    kf_remove_tree(tmp);
    if ((r = kf_mkdir_p(tmp, 0700)) < 0) {
        kf_err(err, r, "cannot create \"%s\": %s", tmp, strerror(-r));
        goto free_paths;
    }
    json_array_foreach(files, i, f)
    {
        const char *p = kf_json_str(f, "path", NULL), *d = kf_json_str(f, "data", NULL);
        bool secret = kf_json_bool(f, "secret", true);
        char *full, *slash;

        if (!bundle_path_ok(p) || !d || strlen(d) > BUNDLE_FILE_MAX || i >= BUNDLE_FILES_MAX) {
            r = kf_err(err, -EPROTO, "the certificate bundle has a bad entry (#%zu)", i);
            goto free_paths;
        }
        full = kf_xasprintf("%s/%s", tmp, p);
        slash = strrchr(full, '/');
        *slash = '\0';
        r = kf_mkdir_p(full, 0700);
        *slash = '/';
        if (r == 0)
            r = kf_write_file_atomic(full, d, strlen(d), secret ? 0600 : 0644, true, NULL);
        if (r < 0)
            kf_err(err, r, "cannot write \"%s\": %s", full, strerror(-r));
        free(full);
        if (r < 0)
            goto free_paths;
    }
    {
        char *hp = kf_xasprintf("%s/.hash", tmp);

        r = kf_write_file_atomic(hp, hash, strlen(hash), 0600, true, NULL);
        free(hp);
        if (r < 0)
            goto free_paths;
    }
    kf_remove_tree(old);
    if (rename(cur, old) < 0 && errno != ENOENT) {
        r = kf_err(err, -errno, "cannot replace \"%s\": %s", cur, strerror(errno));
        goto free_paths;
    }
    if (rename(tmp, cur) < 0) {
        r = kf_err(err, -errno, "cannot replace \"%s\": %s", cur, strerror(errno));
        goto free_paths;
    }
    kf_fsync_dir_of(cur); /* the new configuration survives a crash */
    kf_remove_tree(old);
free_paths:
    if (r < 0)
        kf_remove_tree(tmp);
    free(tmp);
    free(old);
    free(cur);
    return r;
}

static char *read_local_hash(const char *dir)
{
    char *p = kf_xasprintf("%s/pki/.hash", dir), *data = NULL;
    size_t len = 0;

    if (kf_read_file(p, 256, &data, &len) < 0)
        data = NULL;
    free(p);
    return data;
}

/* Makes the member's certificates the ones its pki-hash names. 0 when they
 * are, or a negative error (retry later). */
static int ensure_bundle(struct kf_agent *a, struct agent_host *h, struct agent_member *m,
                         const char *want, struct kf_strbuf *err)
{
    char *path, *dir;
    json_t *resp = NULL;
    const char *got;
    int code, r = 0;

    if (m->pki_hash && strcmp(m->pki_hash, want) == 0)
        return 0;
    dir = member_dir(h, m);
    if (h->dir && !m->pki_hash) {
        char *local = read_local_hash(dir);

        if (local && strcmp(local, want) == 0) {
            m->pki_hash = local;
            free(dir);
            return 0;
        }
        free(local);
    }
    if (!kf_agent_server_ok(a)) {
        h->wait_server = true;
        free(dir);
        return kf_err(err, -EAGAIN, "kfleetd is unreachable");
    }
    path = kf_xasprintf(KF_AGENT_API "/controlplanemembers/%s/bundle", m->name);
    code = kf_agent_http_do(a->http, "GET", path, NULL, NULL, &resp, err);
    kf_agent_server_result(a, code);
    free(path);
    if (code != 200) {
        r = code < 0 ? code : -EPROTO;
        goto free_resp;
    }
    got = kf_json_str(resp, "hash", NULL);
    if (!got || !json_is_array(kf_json_path(resp, "files"))) {
        r = kf_err(err, -EPROTO, "kfleetd sent no certificate bundle");
        goto free_resp;
    }
    if (h->dir) {
        r = kf_mkdir_p(dir, 0700);
        if (r == 0)
            r = write_bundle(dir, kf_json_path(resp, "files"), got, err);
        if (r < 0)
            goto free_resp;
    }
    free(m->pki_hash);
    m->pki_hash = kf_xstrdup(got);
    if (strcmp(got, want) != 0)
        /* kfleetd renewed something after writing the annotation: the
         * object changes again soon and names this hash. */
        kf_log_dbg("member \"%s\": bundle %s, object says %s", m->name, got, want);
free_resp:
    json_decref(resp);
    free(dir);
    return r;
}

/* --- the local cache ----------------------------------------------------------- */

static void cache_write(struct agent_host *h, struct agent_member *m)
{
    char *dir, *path, *text;
    json_t *c;
    size_t len = 0;

    if (!h->dir)
        return;
    dir = member_dir(h, m);
    path = kf_xasprintf("%s/member.json", dir);
    c = json_pack("{s:O, s:O}", "metadata", kf_json_path(m->obj, "metadata"), "spec",
                  kf_json_path(m->obj, "spec"));
    text = kf_json_dump(c, &len);
    if (kf_mkdir_p(dir, 0700) < 0 || kf_write_file_atomic(path, text, len, 0600, true, NULL) < 0)
        kf_log_warn("cannot cache member \"%s\" in \"%s\"; after a restart it waits for "
                    "kfleetd",
                    m->name, path);
    free(text);
    json_decref(c);
    free(path);
    free(dir);
}

void kf_agent_members_load_cache(struct kf_agent *a, struct agent_host *h)
{
    char *root;
    DIR *d;
    struct dirent *e;

    if (!h->dir)
        return;
    root = kf_xasprintf("%s/members", h->dir);
    d = opendir(root);
    if (!d) {
        free(root);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char *path, *text = NULL;
        size_t len = 0;
        json_t *obj = NULL;

        if (e->d_name[0] == '.')
            continue;
        path = kf_xasprintf("%s/%s/member.json", root, e->d_name);
        if (kf_read_file(path, CACHE_MAX, &text, &len) == 0 &&
            kf_json_parse(text, len, &obj, NULL) == 0 && kf_obj_name(obj) &&
            strcmp(kf_json_str(obj, "spec.host", ""), h->name) == 0) {
            struct agent_member *m = member_get(h, kf_obj_name(obj), true);

            take_object(m, obj, true);
            kf_log_info("member \"%s\": known from the local cache; nothing of it starts "
                        "before kfleetd lists it as bound here (fencing)",
                        m->name);
        }
        json_decref(obj);
        free(text);
        free(path);
    }
    closedir(d);
    free(root);
    h->dirty = true;
    (void)a;
}

/* --- status --------------------------------------------------------------------- */

static json_t *status_of(struct agent_host *h, struct agent_member *m)
{
    const struct kf_proc_status *st = &m->st;
    json_t *s = json_object();

    json_object_set_new(s, "phase", json_string(kf_proc_phase_name(st->phase)));
    json_object_set_new(s, "ready", json_boolean(st->ready));
    json_object_set_new(s, "pid", json_integer(st->pid));
    json_object_set_new(s, "restarts", json_integer(st->restarts));
    json_object_set_new(s, "host", json_string(h->name));
    if (st->message[0])
        json_object_set_new(s, "message", json_string(st->message));
    if (st->started_at_ms > 0 && st->pid > 0) {
        char t[40];

        kf_time_format_rfc3339(st->started_at_ms, t, sizeof(t));
        json_object_set_new(s, "startedAt", json_string(t));
    }
    if (st->last_exit.valid)
        json_object_set_new(
            s, "lastExitCode",
            json_integer(st->last_exit.signaled ? -st->last_exit.signal : st->last_exit.code));
    if (m->obj && kf_obj_generation(m->obj) > 0)
        json_object_set_new(s, "observedGeneration", json_integer(kf_obj_generation(m->obj)));
    if (m->applied && m->applied_version[0])
        json_object_set_new(s, "version", json_string(m->applied_version));
    return s;
}

static json_t *status_waiting(struct agent_host *h, struct agent_member *m, const char *why)
{
    json_t *s = json_pack("{s:s, s:b, s:i, s:i, s:s, s:s}", "phase", "Pending", "ready", 0, "pid",
                          0, "restarts", 0, "host", h->name, "message", why);

    if (m->obj && kf_obj_generation(m->obj) > 0)
        json_object_set_new(s, "observedGeneration", json_integer(kf_obj_generation(m->obj)));
    return s;
}

/* Whether `want` says something `have` does not. */
static bool status_differs(const json_t *have, const json_t *want)
{
    const char *k;
    json_t *v;

    if (!have)
        return true;
    json_object_foreach((json_t *)want, k, v)
    {
        json_t *hv = json_object_get(have, k);

        if (!hv || !json_equal(hv, v))
            return true;
    }
    /* fields we no longer report (a message that went away) */
    json_object_foreach((json_t *)have, k, v)
    {
        if (!json_object_get(want, k) && (!strcmp(k, "message") || !strcmp(k, "startedAt") ||
                                          !strcmp(k, "lastExitCode") || !strcmp(k, "version")))
            return true;
    }
    return false;
}

static void retry_later(struct agent_host *h, struct agent_member *m)
{
    int64_t delay = RETRY_INITIAL_MS << KF_MIN(m->failures, 6);

    m->failures++;
    m->retry_at_ms = kf_mono_ms() + KF_MIN(delay, RETRY_MAX_MS);
    (void)h;
}

/* Sends `want` as the member's status if kfleetd has something else.
 * Consumes want. */
static void report(struct kf_agent *a, struct agent_host *h, struct agent_member *m, json_t *want)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *patch, *body;
    char *path;
    const char *k;
    json_t *v;
    int code;

    if (!m->obj || m->from_cache || !status_differs(m->reported, want) ||
        kf_mono_ms() < m->retry_at_ms) {
        json_decref(want);
        return;
    }
    if (!kf_agent_server_ok(a)) {
        h->wait_server = true;
        json_decref(want);
        return;
    }
    patch = json_deep_copy(want);
    json_object_foreach(m->reported, k, v)
    {
        if (!json_object_get(want, k) && (!strcmp(k, "message") || !strcmp(k, "startedAt") ||
                                          !strcmp(k, "lastExitCode") || !strcmp(k, "version")))
            json_object_set_new(patch, k, json_null());
    }
    body = json_pack("{s:o}", "status", patch);
    path = kf_xasprintf(KF_AGENT_API "/controlplanemembers/%s/status", m->name);
    code =
        kf_agent_http_do(a->http, "PATCH", path, "application/merge-patch+json", body, NULL, &err);
    kf_agent_server_result(a, code);
    if (code == 200) {
        json_decref(m->reported);
        m->reported = want;
        want = NULL;
        m->failures = 0;
        m->retry_at_ms = 0;
        a->status_writes++;
    } else if (code == 404) {
        /* deleted meanwhile: the watch says so soon */
    } else {
        a->status_write_failures++;
        kf_log_rl_warn("cannot report the status of member \"%s\": %s", m->name, err.buf);
        retry_later(h, m);
    }
    json_decref(want);
    json_decref(body);
    free(path);
    kf_strbuf_release(&err);
}

/* --- removal ---------------------------------------------------------------------- */

/* A deleted member's data goes right after it stops, so a graceful stop
 * buys nothing, and etcd members of a deleted cluster all stop at once: a
 * leader among them would wait for a leadership transfer to peers that are
 * going too, until SIGKILL after the whole grace. The same spec with a
 * short grace is applied first (grace changes apply in place, nothing
 * restarts). */
static void shorten_grace(struct kf_agent *a, struct agent_host *h, struct agent_member *m)
{
    struct built_spec b;

    if (!m->obj || !m->applied || !*kf_json_str(m->obj, "spec.binary", ""))
        return;
    build_spec(a, h, m, &b);
    if (strcmp(b.hash, m->applied_hash) == 0) {
        b.spec.stop_grace_ms = REMOVE_GRACE_MS;
        if (a->cfg.stop_grace_ms > 0 && a->cfg.stop_grace_ms < REMOVE_GRACE_MS)
            b.spec.stop_grace_ms = a->cfg.stop_grace_ms;
        kf_runner_apply(h->runner, &b.spec, NULL);
    }
    built_spec_release(&b);
}

/* Converges a member nobody wants here. Returns true when it is finished
 * with (the caller frees it). */
static bool sync_unwanted(struct kf_agent *a, struct agent_host *h, struct agent_member *m)
{
    struct kf_proc_status st;

    if (!m->gone) {
        if (kf_runner_get(h->runner, m->rname, &st) == 0) {
            if (!m->removing) {
                kf_log_info("member \"%s\": %s; stopping it", m->name,
                            m->obj ? "being deleted" : "no longer bound to this host");
                shorten_grace(a, h, m);
                kf_runner_remove(h->runner, m->rname);
                m->removing = true;
            }
            return false; /* the runner's removal event brings us back */
        }
        if (h->dir) {
            char *dir = member_dir(h, m);
            int r = kf_remove_tree(dir);

            if (r < 0) {
                kf_log_rl_warn("cannot remove \"%s\": %s; trying again", dir, strerror(-r));
                free(dir);
                retry_later(h, m);
                return false;
            }
            kf_log_info("member \"%s\": stopped and its data removed (%s)", m->name, dir);
            free(dir);
        }
        m->gone = true;
        m->applied = false;
    }
    if (m->obj && kf_obj_deleting(m->obj)) {
        /* Say that the process is gone and its data removed: the cluster
         * controller then takes its finalizer off and the deletion ends. */
        report(a, h, m,
               json_pack("{s:s, s:b, s:i, s:s, s:s, s:b}", "phase", "Stopped", "ready", 0, "pid", 0,
                         "host", h->name, "message", "stopped and its data removed", "released",
                         1));
        return false; /* the watch reports the deletion */
    }
    return m->obj == NULL;
}

static bool wanted(const struct agent_host *h, const struct agent_member *m)
{
    return m->obj && !kf_obj_deleting(m->obj) &&
           strcmp(kf_json_str(m->obj, "spec.host", ""), h->name) == 0;
}

static void sync_wanted(struct kf_agent *a, struct agent_host *h, struct agent_member *m)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *pki = json_string_value(
        json_object_get(kf_json_path(m->obj, "metadata.annotations"), KF_AGENT_ANN_PKI_HASH));
    const char *binary = kf_json_str(m->obj, "spec.binary", "");
    struct built_spec b;

    if (m->from_cache)
        return; /* fencing: nothing starts before kfleetd says it is still bound here */
    m->gone = false;
    if (m->removing) {
        /* wanted again before the removal finished: start over */
        m->removing = false;
        m->applied = false;
    }
    if (!*binary) {
        report(a, h, m, status_waiting(h, m, "waiting for kfleetd to fill in the command line"));
        return;
    }
    if (pki && *pki && kf_mono_ms() >= m->retry_at_ms && ensure_bundle(a, h, m, pki, &err) < 0) {
        if (!m->applied) {
            char *why = kf_xasprintf("waiting for certificates from kfleetd: %s", err.buf);

            report(a, h, m, status_waiting(h, m, why));
            free(why);
        }
        kf_log_rl_warn("member \"%s\": cannot fetch its certificates: %s", m->name, err.buf);
        retry_later(h, m);
        kf_strbuf_release(&err);
        if (!m->applied)
            return;
    }
    build_spec(a, h, m, &b);
    kf_strbuf_reset(&err);
    if (!m->applied && kf_agent_member_join(h, m, &b.argv, &err) < 0) {
        kf_log_rl_warn("member \"%s\": %s", m->name, err.buf);
        retry_later(h, m);
        built_spec_release(&b);
        kf_strbuf_release(&err);
        return;
    }
    switch (kf_agent_member_restore(a, h, m, &b.argv, &err)) {
    case 0:
        break;
    case 2:
        m->applied = false; /* restored or restarted: start it again */
        break;
    case 1:
        built_spec_release(&b); /* stopping: the runner's event brings it back */
        kf_strbuf_release(&err);
        return;
    default:
        kf_log_rl_warn("member \"%s\": %s", m->name, err.buf);
        report(a, h, m,
               json_pack("{s:s, s:b, s:i, s:s, s:s}", "phase", "Failed", "ready", 0, "pid", 0,
                         "host", h->name, "message", err.buf));
        retry_later(h, m);
        built_spec_release(&b);
        kf_strbuf_release(&err);
        return;
    }
    if (!m->applied || strcmp(b.hash, m->applied_hash) != 0) {
        kf_strbuf_reset(&err);
        if (kf_runner_apply(h->runner, &b.spec, &err) < 0) {
            kf_log_rl_warn("member \"%s\": cannot run it: %s", m->name, err.buf);
            report(a, h, m,
                   json_pack("{s:s, s:b, s:i, s:s, s:s}", "phase", "Failed", "ready", 0, "pid", 0,
                             "host", h->name, "message", err.buf));
        } else {
            kf_log_info("member \"%s\": %s %s", m->name, m->applied ? "applied again" : "applied",
                        b.argv.v[0]);
            m->applied = true;
            snprintf(m->applied_hash, sizeof(m->applied_hash), "%s", b.hash);
            if (!m->from_cache)
                cache_write(h, m);
            kf_runner_get(h->runner, m->rname, &m->st);
            m->have_status = true;
        }
    }
    /* the process runs this object's command line (just applied, or the
     * same as before: a version change that leaves the command line alone
     * restarts nothing), so it runs its version */
    if (m->applied && !strcmp(b.hash, m->applied_hash))
        snprintf(m->applied_version, sizeof(m->applied_version), "%s",
                 kf_json_str(m->obj, "spec.version", ""));
    if (m->applied && !strcmp(b.hash, m->applied_hash))
        kf_agent_member_change(a, h, m, &b.argv);
    built_spec_release(&b);
    if (m->have_status && m->applied)
        report(a, h, m, status_of(h, m));
    kf_strbuf_release(&err);
}

void kf_agent_members_sync(struct kf_agent *a, struct agent_host *h)
{
    size_t it = 0;
    const char *key;
    void *v;
    char **done = NULL;
    size_t n_done = 0, alloc = 0;

    int64_t now = kf_mono_ms();

    h->dirty = false;
    h->next_sync_ms = 0;
    h->wait_server = false;
    while (kf_smap_next(&h->members, &it, &key, &v)) {
        struct agent_member *m = v;

        if (wanted(h, m))
            sync_wanted(a, h, m);
        else if (sync_unwanted(a, h, m)) {
            KF_GROW(done, alloc, n_done + 1);
            done[n_done++] = m->rname;
        }
        if (m->retry_at_ms > now && (!h->next_sync_ms || m->retry_at_ms < h->next_sync_ms))
            h->next_sync_ms = m->retry_at_ms; /* look again then */
    }
    for (size_t i = 0; i < n_done; i++)
        kf_agent_member_free(kf_smap_remove(&h->members, done[i]));
    free(done);
}

void kf_agent_members_stop_all(struct kf_agent *a, struct agent_host *h)
{
    size_t it = 0;
    const char *key;
    void *v;

    if (kf_runner_stop_all(h->runner, 60000) < 0)
        kf_log_warn("host \"%s\": some members did not stop within 60 s", h->name);
    while (kf_smap_next(&h->members, &it, &key, &v)) {
        struct agent_member *m = v;

        if (kf_runner_get(h->runner, m->rname, &m->st) == 0 && wanted(h, m))
            report(a, h, m, status_of(h, m));
    }
}
