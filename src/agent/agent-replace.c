/* agent-replace.c: the agent's part in member replacement (agent.h;
 * docs/internals/replacement.md).
 *
 * kfleetd never talks to a guest's etcd: a membership change for a
 * replacement is done by the agent of a host that runs a healthy etcd
 * member of the cluster, with that member's own certificates, against its
 * own client URL (as agent-backup.c takes snapshots):
 *
 *   kfleet.io/etcd-member-change: "<request> <old peer URL|-> <name> <new peer URL>"
 *
 * on one of the member objects this host runs asks for `etcdctl member
 * remove` of every member whose peer URLs include an old one (up to four,
 * comma-separated: the lost member's, and one added by an earlier attempt
 * that will not start; when an old URL is also the new one, as for a
 * member that comes back at its old address and port, only the started
 * member with it goes: an unstarted one is the member added already), then
 * `etcdctl member add <name> --peer-urls=<new>` unless a member with that
 * peer URL is there already. Both steps look first and act only on what
 * is missing, so a request done half-way by an agent that was killed is
 * finished by the next run, and one done whole is not done twice. The
 * answer goes to the member's status.etcdMemberChange {id, phase, message};
 * a request is run while that answer names another request. etcd's own
 * --strict-reconfig-check (on by default) refuses a change that would
 * lose the quorum.
 *
 * The joining member: an etcd member rebound here by a replacement starts
 * on an empty data directory, once per replacement: before its first apply
 * with --initial-cluster-state=existing, the data directory is removed
 * and the replacement's id recorded in <member dir>/joined.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/file.h"
#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

KF_LOG_MODULE(agent_replace);

#define ETCDCTL           "/usr/bin/etcdctl"
#define CHANGE_TIMEOUT_MS 30000
#define URL_MAX           300

static const char *arg_value(const struct kf_argv *argv, const char *flag)
{
    size_t n = strlen(flag);

    for (size_t i = 0; i < argv->n; i++)
        if (!strncmp(argv->v[i], flag, n) && argv->v[i][n] == '=')
            return argv->v[i] + n + 1;
    return NULL;
}

static bool url_ok(const char *u)
{
    if (!u || !kf_str_has_prefix(u, "https://") || strlen(u) >= URL_MAX || strpbrk(u, ",="))
        return false;
    for (; *u; u++)
        if ((unsigned char)*u <= ' ' || (unsigned char)*u == 0x7f)
            return false; /* no blank or control character: a tab once passed inside a URL */
    return true;
}

/* "-", or 1..4 URLs joined by commas. One may be new_url: a member that
 * comes back at its old address and port (hosts that share an address). */
static bool old_urls_ok(const char *list)
{
    char one[URL_MAX];
    unsigned n = 0;

    if (!strcmp(list, "-"))
        return true;
    for (const char *p = list; *p; n++) {
        size_t l = strcspn(p, ",");

        if (n == 4 || l == 0 || l >= sizeof(one))
            return false;
        snprintf(one, sizeof(one), "%.*s", (int)l, p);
        if (!url_ok(one))
            return false;
        p += l;
        if (*p == ',' && !*++p)
            return false; /* a trailing comma */
    }
    return n > 0;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);

    /* a DNS label: never an option for etcdctl */
    if (n == 0 || n > 63 || s[0] == '-' || s[0] == '.' || s[n - 1] == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
            return false;
    return true;
}

int kf_agent_member_change_parse(const char *value, struct kf_agent_member_change *ret)
{
    struct kf_agent_member_change c;
    char again[800 + 4];
    int n = 0;

    memset(&c, 0, sizeof(c));
    if (!value || strlen(value) > 800 ||
        sscanf(value, "%63[0-9-] %299[^ ] %63[^ ] %299[^ ]%n", c.request, c.old_url, c.name,
               c.new_url, &n) != 4 ||
        value[n] || !name_ok(c.name) || !url_ok(c.new_url) || !old_urls_ok(c.old_url))
        return -EINVAL;
    /* single spaces only: sscanf's ' ' also takes tabs, form feeds and runs */
    snprintf(again, sizeof(again), "%s %s %s %s", c.request, c.old_url, c.name, c.new_url);
    if (strcmp(again, value) != 0)
        return -EINVAL;
    *ret = c;
    return 0;
}

/* Whether list (comma-separated URLs) holds url. */
static bool list_has(const char *list, size_t len, const char *url)
{
    size_t n = strlen(url);

    for (const char *p = list; p < list + len;) {
        const char *end = memchr(p, ',', (size_t)(list + len - p));
        size_t l = end ? (size_t)(end - p) : (size_t)(list + len - p);

        if (l == n && !memcmp(p, url, n))
            return true;
        p += l + 1;
    }
    return false;
}

/* Whether the member's peer URLs (comma-separated) hold one of olds
 * (comma-separated, or "-"). */
static bool any_of(const char *peers, const char *olds)
{
    if (!strcmp(olds, "-"))
        return false;
    for (const char *p = olds; *p;) {
        size_t l = strcspn(p, ",");
        char one[URL_MAX];

        snprintf(one, sizeof(one), "%.*s", (int)l, p);
        if (list_has(peers, strlen(peers), one))
            return true;
        p += l + (p[l] == ',');
    }
    return false;
}

struct ctl {
    char *ep, *ca, *cert, *key;
};

static int ctl_run(const struct ctl *c, const char *const *args, struct kf_strbuf *out)
{
    char *argv[16];
    size_t n = 0;

    argv[n++] = ETCDCTL;
    argv[n++] = c->ep;
    argv[n++] = c->ca;
    argv[n++] = c->cert;
    argv[n++] = c->key;
    argv[n++] = "--dial-timeout=5s";
    argv[n++] = "--command-timeout=10s";
    for (; *args && n < 15; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    kf_strbuf_reset(out);
    return kf_agent_etcdctl(argv, CHANGE_TIMEOUT_MS, out);
}

/* One pass over `member list -w simple`: removes members with old_url,
 * finds new_url. */
static int remove_old(const struct ctl *c, const struct kf_agent_member_change *ch, bool *ret_added,
                      struct kf_strbuf *msg, struct kf_strbuf *err)
{
    static const char *const list[] = { "member", "list", "-w", "simple", NULL };
    struct kf_strbuf out = KF_STRBUF_INIT, rm = KF_STRBUF_INIT;
    int r = ctl_run(c, list, &out);

    *ret_added = false;
    if (r != 0) {
        r = kf_err(err, -EIO, "etcdctl member list failed (%d): %.300s", r, out.buf);
        goto release;
    }
    for (char *line = out.buf; line && *line;) {
        char *next = strchr(line, '\n'), *f[6];
        size_t nf = 0;

        if (next)
            *next++ = '\0';
        for (char *p = line; p && nf < 6;) {
            char *sep = strstr(p, ", ");

            f[nf++] = p;
            if (sep)
                *sep = '\0';
            p = sep ? sep + 2 : NULL;
        }
        if (nf >= 4 && strspn(f[0], "0123456789abcdef") == strlen(f[0]) && *f[0]) {
            bool is_new = list_has(f[3], strlen(f[3]), ch->new_url);

            /* an old URL that is also the new one: the started member is
             * the lost one, an unstarted one the member added already */
            if (any_of(f[3], ch->old_url) && (!is_new || !strcmp(f[1], "started"))) {
                const char *args[] = { "member", "remove", f[0], NULL };

                kf_strbuf_reset(&rm);
                r = ctl_run(c, args, &rm);
                if (r != 0) {
                    r = kf_err(err, -EIO, "etcdctl member remove %s failed (%d): %.300s", f[0], r,
                               rm.buf);
                    goto release;
                }
                kf_log_info("etcd member %s (%s) removed", f[0], ch->old_url);
                kf_strbuf_addf(msg, "removed member %s (%s); ", f[0], ch->old_url);
            } else if (is_new) {
                *ret_added = true;
            }
        }
        line = next;
    }
    r = 0;
release:
    kf_strbuf_release(&out);
    kf_strbuf_release(&rm);
    return r;
}

/* Does the change through member m's etcd; what was done into msg. */
static int change(struct agent_host *h, struct agent_member *m, const struct kf_argv *argv,
                  const struct kf_agent_member_change *ch, struct kf_strbuf *msg,
                  struct kf_strbuf *err)
{
    const char *urls = arg_value(argv, "--advertise-client-urls");
    char first[URL_MAX];
    struct ctl c;
    bool added = false;
    int r;

    if (!urls || !h->dir)
        return kf_err(err, -EINVAL, "member %s is not an etcd member this agent can reach",
                      m->name);
    snprintf(first, sizeof(first), "%.*s", (int)strcspn(urls, ","), urls);
    c.ep = kf_xasprintf("--endpoints=%s", first);
    c.ca = kf_xasprintf("--cacert=%s/members/%s/pki/etcd/ca.crt", h->dir, m->rname);
    c.cert = kf_xasprintf("--cert=%s/members/%s/pki/etcd/server.crt", h->dir, m->rname);
    c.key = kf_xasprintf("--key=%s/members/%s/pki/etcd/server.key", h->dir, m->rname);
    r = remove_old(&c, ch, &added, msg, err);
    if (r == 0 && !added) {
        char *peer = kf_xasprintf("--peer-urls=%s", ch->new_url);
        const char *args[] = { "member", "add", ch->name, peer, NULL };
        struct kf_strbuf out = KF_STRBUF_INIT;

        r = ctl_run(&c, args, &out);
        if (r != 0)
            r = kf_err(err, -EIO, "etcdctl member add %s %s failed (%d): %.300s", ch->name,
                       ch->new_url, r, out.buf);
        else {
            kf_log_info("etcd member %s (%s) added", ch->name, ch->new_url);
            kf_strbuf_addf(msg, "added %s (%s)", ch->name, ch->new_url);
        }
        kf_strbuf_release(&out);
        free(peer);
    } else if (r == 0) {
        kf_strbuf_addf(msg, "%s (%s) was a member already", ch->name, ch->new_url);
    }
    free(c.ep);
    free(c.ca);
    free(c.cert);
    free(c.key);
    return r;
}

static bool answered(const struct agent_member *m, const char *request)
{
    const json_t *st[2] = { m->reported, kf_json_path(m->obj, "status") };

    for (int i = 0; i < 2; i++)
        if (kf_streq(kf_json_str(st[i], "etcdMemberChange.id", NULL), request))
            return true;
    return false;
}

void kf_agent_member_change(struct kf_agent *a, struct agent_host *h, struct agent_member *m,
                            const struct kf_argv *argv)
{
    const char *v = json_string_value(
        json_object_get(kf_json_path(m->obj, "metadata.annotations"), KF_AGENT_ANN_ETCD_CHANGE));
    struct kf_strbuf msg = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    struct kf_agent_member_change ch;
    json_t *ans, *body;
    char *path;
    int r, code;

    if (!v || m->from_cache || !m->applied || !m->st.ready || !kf_agent_server_ok(a) ||
        kf_mono_ms() < m->change_retry_ms)
        return;
    if (kf_agent_member_change_parse(v, &ch) < 0) {
        /* answered Failed under its request id, so that kfleetd says so */
        size_t n = strspn(v, "0123456789-");

        if (n == 0 || n >= sizeof(ch.request)) {
            kf_log_rl_warn("member \"%s\": the etcd member change \"%.200s\" names no "
                           "request; ignored",
                           m->name, v);
            return;
        }
        memset(&ch, 0, sizeof(ch));
        memcpy(ch.request, v, n);
        if (answered(m, ch.request))
            return;
        r = kf_err(&err, -EINVAL,
                   "the request \"%.200s\" is not \"REQUEST OLD-URLS|- NAME NEW-URL\"; nothing "
                   "done",
                   v);
    } else {
        if (answered(m, ch.request))
            return;
        r = change(h, m, argv, &ch, &msg, &err);
    }
    ans = json_pack("{s:s, s:s, s:s}", "id", ch.request, "phase", r == 0 ? "Succeeded" : "Failed",
                    "message", r == 0 ? msg.buf : err.buf);
    if (r < 0)
        kf_log_warn("member \"%s\": etcd member change %s: %s", m->name, ch.request, err.buf);
    body = json_pack("{s:{s:O}}", "status", "etcdMemberChange", ans);
    path = kf_xasprintf(KF_AGENT_API "/controlplanemembers/%s/status", m->name);
    kf_strbuf_reset(&err);
    code =
        kf_agent_http_do(a->http, "PATCH", path, "application/merge-patch+json", body, NULL, &err);
    kf_agent_server_result(a, code);
    if (code == 200 && m->reported)
        json_object_set(m->reported, "etcdMemberChange", ans);
    else if (code != 200)
        m->change_retry_ms = kf_mono_ms() + 2000; /* the change is idempotent: asked again */
    json_decref(ans);
    json_decref(body);
    free(path);
    kf_strbuf_release(&msg);
    kf_strbuf_release(&err);
}

int kf_agent_member_join(struct agent_host *h, struct agent_member *m, const struct kf_argv *argv,
                         struct kf_strbuf *err)
{
    const char *v = json_string_value(
        json_object_get(kf_json_path(m->obj, "metadata.annotations"), KF_AGENT_ANN_REPLACEMENT));
    const char *state = arg_value(argv, "--initial-cluster-state");
    const char *data = arg_value(argv, "--data-dir");
    char done[128] = "", *marker, *text = NULL;
    const char *id;
    json_t *rec = NULL;
    size_t len = 0;
    int r = 0;

    if (!v || !h->dir || !data || !kf_streq(state, "existing") ||
        kf_json_parse(v, strlen(v), &rec, NULL) < 0)
        return 0;
    id = kf_json_str(rec, "id", NULL);
    if (!id || !kf_streq(kf_json_str(rec, "to", NULL), h->name) || strlen(id) > 64) {
        json_decref(rec);
        return 0;
    }
    marker = kf_xasprintf("%s/members/%s/joined", h->dir, m->rname);
    if (kf_read_file(marker, 128, &text, &len) == 0)
        snprintf(done, sizeof(done), "%.*s", (int)len, text);
    free(text);
    if (strcmp(done, id) != 0) {
        r = kf_remove_tree(data);
        if (r < 0 && r != -ENOENT)
            r = kf_err(err, r, "cannot empty \"%s\" for the new etcd member: %s", data,
                       strerror(-r));
        else {
            kf_log_info("member \"%s\": joins the running etcd cluster with an empty data "
                        "directory (replacement %s)",
                        m->name, id);
            r = kf_write_file_atomic(marker, id, strlen(id), 0600, true, err);
        }
    }
    free(marker);
    json_decref(rec);
    return r < 0 ? r : 0;
}
