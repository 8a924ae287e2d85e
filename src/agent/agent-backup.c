/* agent-backup.c: a meta host's agent takes the etcd snapshots kfleetd
 * assigned to it (agent.h; the kinds in kfleet/backup.h, the whole story
 * in docs/internals/backups.md).
 *
 * A thread of its own, so that a snapshot of a large etcd (seconds to
 * minutes) never holds up the main loop, with its own watch of
 * backups?fieldSelector=status.host=<host> and its own connection to
 * kfleetd. For a Backup in phase Running it:
 *   1. runs etcdctl (Debian's etcd-client, which scripts/install-deps
 *      installs) `snapshot save` against the member's client URL with the
 *      member's own etcd certificates (its pki/etcd/server.crt has
 *      clientAuth: etcd dials itself with it), into <path>.part, mode 0600
 *      in a 0700 directory: etcd's Maintenance Snapshot RPC, a full copy of
 *      the backend that etcdctl checks against the sha256 etcd appends;
 *   2. checks it before it counts: `etcdctl snapshot status` opens the
 *      copy and gives its revision, key count and etcd's hash of the keys;
 *      a copy that does not open, or has no revision, fails the Backup;
 *   3. computes the file's sha256 (the checksum a restore checks first),
 *      renames it to <path> and fsyncs the directory;
 *   4. reports the result on the Backup's status (Succeeded with
 *      revision, size, checksum, etcd's hash and the time it took; or
 *      Failed with what etcdctl said). A report kfleetd did not take is
 *      sent again; a snapshot is taken once per Backup uid per agent run.
 * Only a real host (not --simulate) takes snapshots.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kfleet/exec.h"
#include "kfleet/file.h"
#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/smap.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

KF_LOG_MODULE(agent_backup);

#define ETCDCTL           "/usr/bin/etcdctl"
#define SAVE_TIMEOUT_MS   (10 * 60 * 1000)
#define STATUS_TIMEOUT_MS (2 * 60 * 1000)
#define OUTPUT_MAX        4096
#define REPORT_RETRY_MS   2000

struct kf_agent_backup {
    pthread_t thread;
    bool started;
    volatile bool stop;
    int wake_fd;
    struct kf_agent_watch *watch;
    struct kf_agent_http *http;
    char *host, *host_dir;
    struct kf_smap objs; /* name -> json_t *: Backups bound to the host */
    struct kf_smap done; /* uid -> json_t *: the status to report, NULL once reported */
};

/* Runs argv (no shell) with ETCDCTL_API=3, at most timeout_ms; stdout (and
 * stderr with both) into out, capped. Returns the exit status, 128+signal,
 * or a negative errno. */
static int run(char *const argv[], int timeout_ms, bool both, struct kf_strbuf *out)
{
    static char *const envp[] = { "ETCDCTL_API=3", "PATH=/usr/bin:/bin", NULL };
    const struct kf_exec_opts o = {
        .envp = envp, .timeout_ms = timeout_ms, .with_stderr = both, .output_max = OUTPUT_MAX
    };

    return kf_exec_capture(argv, &o, out);
}

static bool path_ok(const char *p)
{
    return p && p[0] == '/' && !strstr(p, "/../") && !strchr(p, '\n') &&
           kf_str_has_suffix(p, ".db") && strlen(p) < 2048;
}

static json_t *failed(const char *reason, const char *msg)
{
    return json_pack("{s:s, s:s, s:s}", "phase", "Failed", "reason", reason, "message", msg);
}

/* Step 1: etcdctl snapshot save into part. */
static json_t *save(struct kf_agent_backup *ab, const json_t *b, const char *part)
{
    char rname[KF_RUNNER_NAME_MAX + 1];
    const char *member = kf_json_str(b, "status.member", "");
    const char *url = kf_json_str(b, "status.endpoint", "");
    struct kf_strbuf out = KF_STRBUF_INIT;
    char *pki, *ep, *ca, *cert, *key;
    json_t *res = NULL;
    int r;

    kf_agent_runner_name(member, rname);
    pki = kf_xasprintf("%s/members/%s/pki/etcd", ab->host_dir, rname);
    ep = kf_xasprintf("--endpoints=%s", url);
    ca = kf_xasprintf("--cacert=%s/ca.crt", pki);
    cert = kf_xasprintf("--cert=%s/server.crt", pki);
    key = kf_xasprintf("--key=%s/server.key", pki);
    {
        char *const argv[] = { ETCDCTL,    ep,     ca,           cert, key, "--command-timeout=10m",
                               "snapshot", "save", (char *)part, NULL };

        r = run(argv, SAVE_TIMEOUT_MS, true, &out);
    }
    if (r == -ENOENT)
        res = failed("Snapshot", ETCDCTL " is not installed (Debian package etcd-client)");
    else if (r != 0) {
        char *msg = kf_xasprintf("etcdctl snapshot save from member \"%s\" (%s) failed (%d): %s",
                                 member, url, r, out.buf);

        res = failed("Snapshot", msg);
        free(msg);
    }
    kf_strbuf_release(&out);
    free(pki);
    free(ep);
    free(ca);
    free(cert);
    free(key);
    return res;
}

/* Step 2: what etcdctl snapshot status says of part, into st. */
static json_t *verify(const char *part, json_t *st)
{
    char *const argv[] = { ETCDCTL, "snapshot", "status", (char *)part, "-w", "json", NULL };
    struct kf_strbuf out = KF_STRBUF_INIT;
    json_t *res = NULL, *j = NULL;
    int r = run(argv, STATUS_TIMEOUT_MS, false, &out);

    if (r == 0)
        j = json_loads(out.buf, 0, NULL);
    if (!json_is_object(j) || json_integer_value(json_object_get(j, "revision")) <= 0) {
        char *msg = kf_xasprintf("the snapshot does not check out (etcdctl snapshot status: %d "
                                 "%.200s); it is not kept",
                                 r, out.buf);

        res = failed("Verify", msg);
        free(msg);
    } else {
        json_object_set(st, "revision", json_object_get(j, "revision"));
        json_object_set(st, "totalKeys", json_object_get(j, "totalKey"));
        json_object_set(st, "etcdHash", json_object_get(j, "hash"));
    }
    json_decref(j);
    kf_strbuf_release(&out);
    return res;
}

/* Takes the snapshot of Backup b; the status to report (new reference). */
static json_t *take(struct kf_agent_backup *ab, const json_t *b)
{
    const char *path = kf_json_str(b, "status.path", NULL);
    int64_t t0 = kf_mono_ms(), size = 0;
    json_t *st = json_object(), *res;
    char *part = NULL, *dir = NULL, sum[80], now[32];
    int r;

    if (!path_ok(path) || !kf_json_str(b, "status.member", NULL) ||
        !kf_json_str(b, "status.endpoint", NULL)) {
        json_decref(st);
        return failed("Snapshot", "the backup names no valid path, member or endpoint");
    }
    kf_log_info("backup \"%s\": taking a snapshot of member \"%s\" into \"%s\"", kf_obj_name(b),
                kf_json_str(b, "status.member", ""), path);
    dir = kf_xstrdup(path);
    *strrchr(dir, '/') = '\0';
    part = kf_xasprintf("%s.part", path);
    if ((r = kf_mkdir_p(dir, 0700)) < 0) {
        char *msg = kf_xasprintf("cannot create \"%s\": %s", dir, strerror(-r));

        res = failed("Snapshot", msg);
        free(msg);
        goto free_paths;
    }
    unlink(part);
    if ((res = save(ab, b, part)) || (res = verify(part, st)))
        goto remove_part;
    if (chmod(part, 0600) < 0 || (r = kf_file_sha256(part, sum, &size)) < 0 ||
        rename(part, path) < 0) {
        res = failed("Snapshot", "cannot checksum or rename the snapshot file");
        goto remove_part;
    }
    kf_fsync_dir(dir);
    kf_time_format_rfc3339(kf_now_ms(), now, sizeof(now));
    json_object_set_new(st, "phase", json_string("Succeeded"));
    json_object_set_new(st, "reason", json_string("Verified"));
    json_object_set_new(st, "message", json_string("snapshot taken and verified"));
    json_object_set_new(st, "size", json_integer(size));
    json_object_set_new(st, "checksum", json_string(sum));
    json_object_set_new(st, "durationMillis", json_integer(kf_mono_ms() - t0));
    json_object_set_new(st, "completionTime", json_string(now));
    kf_log_info("backup \"%s\": %lld bytes at revision %lld in %lld ms", kf_obj_name(b),
                (long long)size, (long long)kf_json_int(st, "revision", 0),
                (long long)(kf_mono_ms() - t0));
    res = json_incref(st);
    goto free_paths;
remove_part:
    unlink(part);
free_paths:
    free(part);
    free(dir);
    json_decref(st);
    return res;
}

/* Sends one status; 0 when kfleetd took it (or the Backup is gone). */
static int report(struct kf_agent_backup *ab, const char *name, json_t *st)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *p = kf_xasprintf(KF_AGENT_API "/backups/%s/status", name);
    json_t *body = json_pack("{s:O}", "status", st);
    int code;

    if (!json_object_get(st, "completionTime")) {
        char now[32];

        kf_time_format_rfc3339(kf_now_ms(), now, sizeof(now));
        json_object_set_new(st, "completionTime", json_string(now));
    }
    json_object_set(json_object_get(body, "status"), "completionTime",
                    json_object_get(st, "completionTime"));
    code = kf_agent_http_do(ab->http, "PATCH", p, "application/merge-patch+json", body, NULL, &err);
    if (code != 200 && code != 404)
        kf_log_rl_warn("backup \"%s\": cannot report its result: %s; trying again", name, err.buf);
    free(p);
    json_decref(body);
    kf_strbuf_release(&err);
    return code == 200 || code == 404 ? 0 : -EAGAIN;
}

static void take_messages(struct kf_agent_backup *ab)
{
    struct kf_agent_msg *msgs = kf_agent_watch_take(ab->watch), *m, *next;

    for (m = msgs; m; m = next) {
        next = m->next;
        if (m->type == KF_AGENT_MSG_SNAPSHOT) {
            size_t it = 0, i;
            void *v;
            json_t *o;

            while (kf_smap_next(&ab->objs, &it, NULL, &v))
                json_decref(v);
            kf_smap_release(&ab->objs);
            kf_smap_init(&ab->objs);
            json_array_foreach(m->obj, i, o) kf_smap_put(&ab->objs, kf_obj_name(o), json_incref(o));
        } else if (m->type == KF_AGENT_MSG_EVENT && kf_obj_name(m->obj)) {
            json_decref(kf_smap_remove(&ab->objs, kf_obj_name(m->obj)));
            if (strcmp(m->event, "DELETED") != 0)
                kf_smap_put(&ab->objs, kf_obj_name(m->obj), json_incref(m->obj));
        }
    }
    kf_agent_msg_free(msgs); /* frees the whole list */
}

/* Takes every Running Backup not yet taken, and sends what is unsent. */
static bool work(struct kf_agent_backup *ab)
{
    size_t it = 0;
    const char *name;
    void *v;
    bool pending = false;

    while (!ab->stop && kf_smap_next(&ab->objs, &it, &name, &v)) {
        const json_t *b = v;
        const char *uid = kf_obj_uid(b);
        json_t *st;

        if (!uid || strcmp(kf_json_str(b, "status.phase", ""), "Running") != 0 ||
            strcmp(kf_json_str(b, "status.host", ""), ab->host) != 0)
            continue;
        if (!kf_smap_contains(&ab->done, uid))
            kf_smap_put(&ab->done, uid, take(ab, b));
        st = kf_smap_get(&ab->done, uid);
        if (st && report(ab, name, st) == 0) {
            kf_smap_put(&ab->done, uid, NULL);
            json_decref(st);
        } else if (st) {
            pending = true;
        }
    }
    return pending;
}

static void *backup_main(void *arg)
{
    struct kf_agent_backup *ab = arg;
    int timeout = -1;

    while (!ab->stop) {
        struct pollfd pfd = { .fd = ab->wake_fd, .events = POLLIN };
        uint64_t n;

        if (poll(&pfd, 1, timeout < 0 ? 1000 : timeout) > 0 &&
            read(ab->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
            break;
        take_messages(ab);
        timeout = work(ab) ? REPORT_RETRY_MS : -1;
    }
    return NULL;
}

int kf_agent_backup_start(struct kf_agent *a, struct kf_strbuf *err)
{
    struct kf_agent_backup *ab;
    char *path;
    int r;

    if (a->cfg.simulate || a->n_hosts != 1 || !a->hosts[0].dir)
        return 0; /* simulated hosts run no etcd */
    ab = kf_xcalloc(1, sizeof(*ab));
    ab->wake_fd = -1;
    kf_smap_init(&ab->objs);
    kf_smap_init(&ab->done);
    ab->host = kf_xstrdup(a->hosts[0].name);
    ab->host_dir = kf_xstrdup(a->hosts[0].dir);
    a->backup = ab;
    ab->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ab->wake_fd < 0)
        return kf_err(err, -errno, "cannot make an eventfd: %s", strerror(errno));
    ab->http = kf_agent_http_new(a->cfg.server, a->cfg.token, a->cfg.ca_file);
    path = kf_xasprintf(KF_AGENT_API "/backups?fieldSelector=status.host%%3D%s", ab->host);
    r = kf_agent_watch_start(a->cfg.server, a->cfg.token, a->cfg.ca_file, path, ab->wake_fd,
                             &ab->watch, err);
    free(path);
    if (r < 0)
        return r;
    if (pthread_create(&ab->thread, NULL, backup_main, ab) != 0)
        return kf_err(err, -EAGAIN, "cannot start the thread that takes etcd snapshots");
    ab->started = true;
    return 0;
}

void kf_agent_backup_stop(struct kf_agent *a)
{
    struct kf_agent_backup *ab = a->backup;
    size_t it = 0;
    void *v;
    uint64_t one = 1;

    if (!ab)
        return;
    ab->stop = true;
    if (ab->started) {
        if (write(ab->wake_fd, &one, sizeof(one)) < 0)
            kf_log_dbg("cannot wake the backup thread: %s", strerror(errno));
        pthread_join(ab->thread, NULL);
    }
    kf_agent_watch_stop(ab->watch);
    kf_agent_http_free(ab->http);
    while (kf_smap_next(&ab->objs, &it, NULL, &v))
        json_decref(v);
    kf_smap_release(&ab->objs);
    it = 0;
    while (kf_smap_next(&ab->done, &it, NULL, &v))
        json_decref(v);
    kf_smap_release(&ab->done);
    if (ab->wake_fd >= 0)
        close(ab->wake_fd);
    free(ab->host);
    free(ab->host_dir);
    free(ab);
    a->backup = NULL;
}

/* --- restores: a member's data from a snapshot -------------------------------- */

/* The value of "--flag=" in argv, or NULL. */
static const char *arg_value(const struct kf_argv *argv, const char *flag)
{
    size_t n = strlen(flag);

    for (size_t i = 0; i < argv->n; i++)
        if (!strncmp(argv->v[i], flag, n) && argv->v[i][n] == '=')
            return argv->v[i] + n + 1;
    return NULL;
}

/* The marker file's text (what was last done), "" when none. */
static void read_marker(const char *path, char *buf, size_t size)
{
    char *text = NULL;
    size_t len = 0;

    buf[0] = '\0';
    if (kf_read_file(path, 4096, &text, &len) == 0) {
        snprintf(buf, size, "%.*s", (int)len, text);
        free(text);
    }
}

/* Stops the member's process for a restore or restart: 1 while it runs. */
static int stopped(struct agent_host *h, struct agent_member *m)
{
    struct kf_proc_status st;

    if (kf_runner_get(h->runner, m->rname, &st) < 0 || st.pid <= 0 || st.phase == KF_PROC_STOPPED)
        return 0;
    kf_runner_stop(h->runner, m->rname);
    return 1;
}

int kf_agent_restore_parse(const char *value, char id[64], char path[2048], char sum[80])
{
    int n = 0;

    if (!value || strlen(value) > 2200 ||
        sscanf(value, "%63[0-9] %2047[^ ] %79[^ ]%n", id, path, sum, &n) != 3 || value[n] ||
        !path_ok(path) || strlen(sum) != 71 || strncmp(sum, "sha256:", 7) != 0 ||
        strspn(sum + 7, "0123456789abcdef") != 64)
        return -EINVAL;
    /* scanf's blanks match any run of white space: only single spaces pass */
    if (strlen(id) + strlen(path) + strlen(sum) + 2 != strlen(value) || value[strlen(id)] != ' ' ||
        value[strlen(id) + 1 + strlen(path)] != ' ')
        return -EINVAL;
    return 0;
}

/* Replaces an etcd member's data with the snapshot "<id> <path> <sha256:...>". */
static int restore_data(const char *value, const struct kf_argv *argv, struct kf_strbuf *err)
{
    char id[64], path[2048], sum[80], have[80];
    const char *name = arg_value(argv, "--name"), *data = arg_value(argv, "--data-dir");
    const char *cluster = arg_value(argv, "--initial-cluster");
    const char *token = arg_value(argv, "--initial-cluster-token");
    const char *peer = arg_value(argv, "--initial-advertise-peer-urls");
    struct kf_strbuf out = KF_STRBUF_INIT;
    int64_t size = 0;
    int r;

    if (kf_agent_restore_parse(value, id, path, sum) < 0)
        return kf_err(err, -EINVAL, "the restore annotation \"%.200s\" is not \"ID PATH SHA256\"",
                      value);
    if (!name || !data || !cluster || !token || !peer)
        return kf_err(err, -EINVAL,
                      "not an etcd member's command line: no --name, --data-dir, "
                      "--initial-cluster, token or peer URL");
    if ((r = kf_file_sha256(path, have, &size)) < 0)
        return kf_err(err, r, "cannot read the snapshot \"%s\": %s", path, strerror(-r));
    if (strcmp(have, sum) != 0)
        return kf_err(err, -EBADMSG,
                      "the snapshot \"%s\" is corrupted (%s, recorded %s); not restored", path,
                      have, sum);
    if ((r = kf_remove_tree(data)) < 0 && r != -ENOENT)
        return kf_err(err, r, "cannot remove \"%s\": %s", data, strerror(-r));
    {
        char *a_name = kf_xasprintf("--name=%s", name),
             *a_dir = kf_xasprintf("--data-dir=%s", data);
        char *a_cl = kf_xasprintf("--initial-cluster=%s", cluster);
        /* a token of this restore's own: new member IDs and a new cluster
         * ID, so that a restored member never joins (and is never brought
         * up to date by) a member of the old set still running */
        char *a_tok = kf_xasprintf("--initial-cluster-token=%s-restore-%s", token, id);
        char *a_peer = kf_xasprintf("--initial-advertise-peer-urls=%s", peer);
        char *const av[] = { ETCDCTL, "snapshot", "restore", path,   a_name,
                             a_dir,   a_cl,       a_tok,     a_peer, NULL };

        r = run(av, SAVE_TIMEOUT_MS, true, &out);
        free(a_name);
        free(a_dir);
        free(a_cl);
        free(a_tok);
        free(a_peer);
    }
    if (r != 0)
        r = kf_err(err, r < 0 ? r : -EIO, "etcdctl snapshot restore of \"%s\" failed (%d): %.300s",
                   path, r, out.buf);
    kf_strbuf_release(&out);
    return r;
}

/* One request (restore or restart) on a simulated host, which keeps no
 * data: the member is stopped and started again once per request, as on a
 * real host, so that it reports a start after the request (what the
 * restore waits for); what was done is kept in memory. */
static int sim_request(struct agent_host *h, struct agent_member *m, const char *value,
                       uint64_t *done, const char *what)
{
    uint64_t hash;
    int r;

    if (!value || *done == (hash = kf_hash_str(value)))
        return 0;
    r = stopped(h, m);
    if (r != 0)
        return r;
    *done = hash;
    kf_log_info("member \"%s\": %s (simulated host: nothing to replace)", m->name, what);
    return 2;
}

int kf_agent_member_restore(struct kf_agent *a, struct agent_host *h, struct agent_member *m,
                            const struct kf_argv *argv, struct kf_strbuf *err)
{
    const json_t *ann = kf_json_path(m->obj, "metadata.annotations");
    const char *restore = json_string_value(json_object_get(ann, KF_AGENT_ANN_RESTORE));
    const char *restart = json_string_value(json_object_get(ann, KF_AGENT_ANN_RESTART));
    char done[4096], *marker;
    int r = 0;

    (void)a;
    if (!restore && !restart)
        return 0;
    if (!h->dir) {
        r = sim_request(h, m, restore, &m->sim_restore_hash, "data restored from the snapshot");
        if (r == 0)
            r = sim_request(h, m, restart, &m->sim_restart_hash,
                            "restarted after its cluster's restore");
        return r;
    }
    if (restore) {
        marker = kf_xasprintf("%s/members/%s/restored", h->dir, m->rname);
        read_marker(marker, done, sizeof(done));
        if (strcmp(done, restore) != 0) {
            r = stopped(h, m);
            if (r == 0 && (r = restore_data(restore, argv, err)) == 0) {
                kf_log_info("member \"%s\": data restored from the snapshot (%s)", m->name,
                            restore);
                r = kf_write_file_atomic(marker, restore, strlen(restore), 0600, true, err);
                r = r < 0 ? r : 2;
            }
        }
        free(marker);
        if (r != 0)
            return r;
    }
    if (restart) {
        marker = kf_xasprintf("%s/members/%s/restarted", h->dir, m->rname);
        read_marker(marker, done, sizeof(done));
        if (strcmp(done, restart) != 0) {
            r = stopped(h, m);
            if (r == 0) {
                kf_log_info("member \"%s\": restarted after its cluster's restore", m->name);
                r = kf_write_file_atomic(marker, restart, strlen(restart), 0600, true, err);
                r = r < 0 ? r : 2;
            }
        }
        free(marker);
    }
    return r;
}

int kf_agent_etcdctl(char *const argv[], int timeout_ms, struct kf_strbuf *out)
{
    return run(argv, timeout_ms, true, out);
}
