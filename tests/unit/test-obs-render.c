/* test-obs-render.c: the monitoring renderers, checked three ways.
 *
 *  - golden files: every file rendered from the fixed fleet of
 *    obs-fixture.h equals tests/unit/golden/obs/<path>. Regenerate on
 *    purpose with KF_UPDATE_GOLDEN=1 and review the diff;
 *  - the real tools: every rendered Prometheus config passes
 *    `promtool check config`, every rule file `promtool check rules`, and
 *    the Alertmanager config `amtool check-config`;
 *  - behaviour: what a write changes (structure vs targets), secrets' modes,
 *    the model checks a controller relies on, and the command lines.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/obs.h"
#include "kfleet/strbuf.h"

#include "obs-fixture.h"

static char *read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = kf_xmalloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    if (ret_len)
        *ret_len = (size_t)n;
    return buf;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;

    if (!d) {
        unlink(path);
        return;
    }
    while ((de = readdir(d))) {
        char *child;
        struct stat st;

        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        child = kf_xasprintf("%s/%s", path, de->d_name);
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(child);
        else
            unlink(child);
        free(child);
    }
    closedir(d);
    rmdir(path);
}

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/kf-obs-test-XXXXXX";

    assert_non_null(mkdtemp(tmpl));
    return kf_xstrdup(tmpl);
}

static void mkdirs_for(const char *path)
{
    char *p = kf_xstrdup(path);

    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        mkdir(p, 0755);
        *s = '/';
    }
    free(p);
}

/* Every file under dir (relative paths) into list. */
static void list_files(const char *dir, const char *rel, char ***list, size_t *n, size_t *alloc)
{
    char *path = rel ? kf_xasprintf("%s/%s", dir, rel) : kf_xstrdup(dir);
    DIR *d = opendir(path);
    struct dirent *de;

    free(path);
    if (!d)
        return;
    while ((de = readdir(d))) {
        char *child;
        char *abs;
        struct stat st;

        if (de->d_name[0] == '.')
            continue;
        child = rel ? kf_xasprintf("%s/%s", rel, de->d_name) : kf_xstrdup(de->d_name);
        abs = kf_xasprintf("%s/%s", dir, child);
        if (stat(abs, &st) == 0 && S_ISDIR(st.st_mode)) {
            list_files(dir, child, list, n, alloc);
            free(child);
        } else {
            KF_GROW(*list, *alloc, *n + 1);
            (*list)[(*n)++] = child;
        }
        free(abs);
    }
    closedir(d);
}

/* Creates an empty file root/name and returns its path (caller frees). */
static char *touch(const char *root, const char *name)
{
    char *path = kf_xasprintf("%s/%s", root, name);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fclose(f);
    return path;
}

static void render_fixture(struct fixture *fx, const char *root, struct kf_obs_files *files)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int r;

    fixture_init(fx);
    r = kf_obs_gen_all(&fx->fleet, root, files, &err);
    if (r < 0)
        fail_msg("render failed: %s", err.buf);
    kf_strbuf_release(&err);
}

static void test_golden(void **state)
{
    const char *src = getenv("KF_SOURCE_DIR");
    bool update = getenv("KF_UPDATE_GOLDEN") && *getenv("KF_UPDATE_GOLDEN") == '1';
    struct kf_obs_files files = { 0 };
    struct fixture fx;
    char *golden;
    char **on_disk = NULL;
    size_t n_disk = 0, alloc = 0;
    unsigned mismatches = 0;

    assert_non_null(src);
    golden = kf_xasprintf("%s/tests/unit/golden/obs", src);
    render_fixture(&fx, FIXTURE_ROOT, &files);
    assert_true(files.n > 20);
    if (update)
        remove_tree(golden);
    for (size_t i = 0; i < files.n; i++) {
        const struct kf_obs_file *f = &files.items[i];
        char *path = kf_xasprintf("%s/%s", golden, f->path);
        size_t len;
        char *want;

        if (update) {
            FILE *out;

            mkdirs_for(path);
            out = fopen(path, "wb");
            assert_non_null(out);
            assert_int_equal(fwrite(f->content, 1, f->len, out), f->len);
            fclose(out);
            free(path);
            continue;
        }
        want = read_file(path, &len);
        if (!want) {
            print_error("golden file missing: %s (run with KF_UPDATE_GOLDEN=1)\n", path);
            mismatches++;
        } else if (len != f->len || memcmp(want, f->content, len) != 0) {
            print_error("rendered %s differs from its golden file %s\n--- rendered:\n%s\n", f->path,
                        path, f->content);
            mismatches++;
        }
        free(want);
        free(path);
    }
    /* no golden file without a rendered one: a renamed file must not linger */
    list_files(golden, NULL, &on_disk, &n_disk, &alloc);
    for (size_t i = 0; i < n_disk; i++) {
        if (!kf_obs_files_find(&files, on_disk[i])) {
            print_error("golden file %s is no longer rendered\n", on_disk[i]);
            mismatches++;
        }
        free(on_disk[i]);
    }
    free(on_disk);
    assert_int_equal(n_disk, files.n);
    assert_int_equal(mismatches, 0);
    kf_obs_files_release(&files);
    free(golden);
}

/* Rendering twice gives the same bytes (sorting, no clocks, no addresses). */
static void test_deterministic(void **state)
{
    struct kf_obs_files a = { 0 }, b = { 0 };
    struct fixture fx1, fx2;

    render_fixture(&fx1, FIXTURE_ROOT, &a);
    render_fixture(&fx2, FIXTURE_ROOT, &b);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.items[i].path, b.items[i].path);
        assert_int_equal(a.items[i].len, b.items[i].len);
        assert_memory_equal(a.items[i].content, b.items[i].content, a.items[i].len);
    }
    kf_obs_files_release(&a);
    kf_obs_files_release(&b);
}

static void test_real_tools_accept_everything(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_files files = { 0 };
    struct kf_obs_change ch;
    struct fixture fx;
    char *root = make_tmpdir();
    unsigned checked = 0, rules = 0;

    /* promtool insists that TLS and credential files exist */
    fixture_init(&fx);
    fx.fleet.guest_tls.ca_file = touch(root, "ca.pem");
    fx.fleet.guest_tls.cert_file = touch(root, "cert.pem");
    fx.fleet.guest_tls.key_file = touch(root, "key.pem");
    fx.fleet.kfleetd_token_file = touch(root, "metrics.token");
    fx.fleet.alerting.adapter_token_file = touch(root, "adapter.token");
    if (kf_obs_gen_all(&fx.fleet, root, &files, &err) < 0)
        fail_msg("render failed: %s", err.buf);
    assert_int_equal(kf_obs_files_write(&files, root, &ch, &err), 0);
    for (size_t i = 0; i < files.n; i++) {
        const char *path = files.items[i].path;
        char *abs = kf_xasprintf("%s/%s", root, path);
        char *dir = kf_xstrndup(path, (size_t)(strchr(path, '/') - path));
        char *absdir = kf_xasprintf("%s/%s", root, dir);
        enum kf_obs_tier tier;
        int r = 0;

        if (kf_str_has_suffix(path, "/prometheus.yml") ||
            kf_str_has_suffix(path, "/alertmanager.yml")) {
            assert_int_equal(kf_obs_fleet_find_instance(&fx.fleet, dir, &tier), 0);
            r = kf_obs_check_instance(&fx.fleet.bin, tier, absdir, &err);
            checked++;
        } else if (strstr(path, "/rules/")) {
            r = kf_obs_check_rules(&fx.fleet.bin, abs, &err);
            rules++;
        }
        if (r < 0)
            fail_msg("%s rejected: %s", path, err.buf);
        free(absdir);
        free(dir);
        free(abs);
    }
    /* 4 edges + 3 cascades + 2 centrals + 2 Alertmanagers */
    assert_int_equal(checked, 11);
    assert_int_equal(rules, 9);
    free((char *)fx.fleet.guest_tls.ca_file);
    free((char *)fx.fleet.guest_tls.cert_file);
    free((char *)fx.fleet.guest_tls.key_file);
    free((char *)fx.fleet.kfleetd_token_file);
    free((char *)fx.fleet.alerting.adapter_token_file);
    kf_obs_files_release(&files);
    kf_strbuf_release(&err);
    remove_tree(root);
    free(root);
}

static void test_secrets_stay_secret(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_files files = { 0 };
    struct fixture fx;
    char *root = make_tmpdir();
    char *cfg_path = kf_xasprintf("%s/am-1/alertmanager.yml", root);
    char *pw_path = kf_xasprintf("%s/am-1/secrets/smtp_password", root);
    char *secrets = kf_xasprintf("%s/am-1/secrets", root);
    char *cfg, *pw, *want_ref;
    struct stat st;

    render_fixture(&fx, root, &files);
    assert_int_equal(kf_obs_files_write(&files, root, NULL, &err), 0);
    cfg = read_file(cfg_path, NULL);
    pw = read_file(pw_path, NULL);
    assert_non_null(cfg);
    assert_non_null(pw);
    assert_string_equal(pw, "s3cret'pw");
    assert_null(strstr(cfg, "s3cret"));
    want_ref = kf_xasprintf("smtp_auth_password_file: '%s'", pw_path);
    assert_non_null(strstr(cfg, want_ref));
    assert_int_equal(stat(pw_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(secrets, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* the renderer marks the files so callers never log them: the SMTP
     * password and the edges' client keys for guest clusters */
    for (size_t i = 0; i < files.n; i++)
        assert_true(files.items[i].secret == (strstr(files.items[i].path, "/secrets/") != NULL ||
                                              (strstr(files.items[i].path, "/tls/") &&
                                               kf_str_has_suffix(files.items[i].path, ".key"))));
    /* a guest cluster's client key: 0600 in 0700 folders; the edge's
     * config names the files, never their contents */
    {
        char *key = kf_xasprintf("%s/edge-hz-u1-a/tls/web-1/monitoring.key", root);
        char *tls = kf_xasprintf("%s/edge-hz-u1-a/tls", root);
        char *dir = kf_xasprintf("%s/edge-hz-u1-a/tls/web-1", root);
        char *ecfg_path = kf_xasprintf("%s/edge-hz-u1-a/prometheus.yml", root);
        char *ecfg = read_file(ecfg_path, NULL);
        char *k = read_file(key, NULL);

        assert_non_null(k);
        assert_non_null(strstr(k, "web-1 monitoring key"));
        assert_int_equal(stat(key, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        assert_int_equal(stat(tls, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        assert_non_null(strstr(ecfg, "key_file: 'tls/web-1/monitoring.key'"));
        assert_null(strstr(ecfg, "monitoring key"));
        free(k);
        free(ecfg);
        free(ecfg_path);
        free(dir);
        free(tls);
        free(key);
    }
    free(want_ref);
    free(cfg);
    free(pw);
    free(secrets);
    free(pw_path);
    free(cfg_path);
    kf_obs_files_release(&files);
    kf_strbuf_release(&err);
    remove_tree(root);
    free(root);
}

static void write_fleet(struct kf_obs_fleet *f, const char *root, struct kf_obs_change *ch)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_files files = { 0 };

    if (kf_obs_gen_all(f, root, &files, &err) < 0)
        fail_msg("render failed: %s", err.buf);
    if (kf_obs_files_write(&files, root, ch, &err) < 0)
        fail_msg("write failed: %s", err.buf);
    kf_obs_files_release(&files);
    kf_strbuf_release(&err);
}

static void render_one(struct kf_obs_fleet *f, const char *name, const char *root,
                       struct kf_obs_change *ch)
{
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_obs_render_instance(f, name, root, false, ch, &err) < 0)
        fail_msg("render of %s failed: %s", name, err.buf);
    kf_strbuf_release(&err);
}

static void test_reload_only_when_structure_changes(void **state)
{
    struct kf_obs_host more_hosts[4];
    struct kf_obs_cluster renewed[2];
    struct kf_obs_member fewer[KF_ARRAY_SIZE(fx_members_hz_u1)];
    struct kf_obs_change ch;
    struct fixture fx;
    char *root = make_tmpdir();
    char *node_json = kf_xasprintf("%s/edge-hz-u2/targets/node.json", root);
    char *json;

    fixture_init(&fx);
    write_fleet(&fx.fleet, root, &ch);
    assert_true(ch.structure);
    assert_true(ch.targets);
    assert_true(ch.written > 20);

    /* the same fleet again: nothing to write, nothing to reload */
    write_fleet(&fx.fleet, root, &ch);
    assert_false(ch.structure);
    assert_false(ch.targets);
    assert_int_equal(ch.written, 0);
    assert_int_equal(ch.removed, 0);

    /* a new host in hz-u2: a target list changes, the edge needs no reload */
    memcpy(more_hosts, fx_hosts_hz_u2, sizeof(fx_hosts_hz_u2));
    more_hosts[2] = (struct kf_obs_host){ "hz-h6", "hz-c", "10.0.2.6:9100", "10.0.2.6:7481" };
    fx.units[0].hosts = more_hosts;
    fx.units[0].n_hosts = 3;
    render_one(&fx.fleet, "edge-hz-u2", root, &ch);
    assert_false(ch.structure);
    assert_true(ch.targets);
    assert_int_equal(ch.written, 2); /* node.json and agent.json */
    json = read_file(node_json, NULL);
    assert_non_null(strstr(json, "\"host\": \"hz-h6\""));
    assert_non_null(strstr(json, "\"10.0.2.6:9100\""));
    free(json);

    /* a different scrape interval in the region: a structural change */
    fx.regions[1].settings.scrape_interval_ms = 20000;
    render_one(&fx.fleet, "edge-hz-u2", root, &ch);
    assert_true(ch.structure);
    assert_false(ch.targets);

    /* a guest cluster's certificate renewed: its TLS files change, the
     * config does not (Prometheus reads them again by itself) */
    {
        char *crt = kf_xasprintf("%s/edge-hz-u1-a/tls/web-1/monitoring.crt", root);
        char *dir = kf_xasprintf("%s/edge-hz-u1-a/tls/web-1", root);
        char *targets = kf_xasprintf("%s/edge-hz-u1-a/targets/guest-web-1.json", root);
        size_t n = 0;

        render_one(&fx.fleet, "edge-hz-u1-a", root, &ch); /* the interval above */
        memcpy(renewed, fx_clusters_hz_u1, sizeof(renewed));
        renewed[0].cert = FX_PEM("CERTIFICATE", "web-1 monitoring, renewed");
        fx.units[1].clusters = renewed;
        render_one(&fx.fleet, "edge-hz-u1-a", root, &ch);
        assert_false(ch.structure);
        assert_true(ch.targets);
        assert_int_equal(ch.written, 1);
        json = read_file(crt, NULL);
        assert_non_null(strstr(json, "renewed"));
        free(json);

        /* web-1's Kubernetes members go: its job does (a reload), and so do
         * its target list and TLS files, folder and all */
        for (size_t i = 0; i < KF_ARRAY_SIZE(fx_members_hz_u1); i++)
            if (strcmp(fx_members_hz_u1[i].cluster, "web-1") != 0 ||
                fx_members_hz_u1[i].kind == KF_OBS_MEMBER_ETCD)
                fewer[n++] = fx_members_hz_u1[i];
        fx.units[1].members = fewer;
        fx.units[1].n_members = n;
        render_one(&fx.fleet, "edge-hz-u1-a", root, &ch);
        assert_true(ch.structure);
        assert_int_equal(ch.removed, 4);
        assert_int_equal(access(crt, F_OK), -1);
        assert_int_equal(access(dir, F_OK), -1);
        assert_int_equal(access(targets, F_OK), -1);
        free(targets);
        free(dir);
        free(crt);
    }

    /* the SMTP password moves to a file the operator manages: ours goes */
    fx.fleet.alerting.smtp.auth_password = NULL;
    fx.fleet.alerting.smtp.auth_password_file = "/etc/kfleet/smtp.pw";
    render_one(&fx.fleet, "am-1", root, &ch);
    assert_true(ch.structure);
    assert_int_equal(ch.removed, 1);
    {
        char *pw = kf_xasprintf("%s/am-1/secrets/smtp_password", root);

        assert_int_equal(access(pw, F_OK), -1);
        free(pw);
    }
    free(node_json);
    remove_tree(root);
    free(root);
}

static void test_checked_render_keeps_live_files(void **state)
{
    static const struct kf_obs_matcher bad[] = { { "severity", KF_OBS_MATCH_RE, "(unclosed" } };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_route routes[4];
    struct kf_obs_change ch;
    struct fixture fx;
    char *root = make_tmpdir();
    char *cfg = kf_xasprintf("%s/am-2/alertmanager.yml", root);
    char *before, *after;

    fixture_init(&fx);
    assert_int_equal(kf_obs_render_instance(&fx.fleet, "am-2", root, true, &ch, &err), 0);
    assert_true(ch.structure);
    before = read_file(cfg, NULL);
    assert_non_null(before);

    /* a regex RE2 cannot compile: amtool refuses, the live file stays */
    memcpy(routes, fx_routes, sizeof(routes));
    routes[0].matchers = bad;
    fx.fleet.alerting.root.routes = routes;
    assert_int_equal(kf_obs_render_instance(&fx.fleet, "am-2", root, true, &ch, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "amtool"));
    after = read_file(cfg, NULL);
    assert_string_equal(before, after);
    free(after);
    free(before);

    assert_int_equal(kf_obs_render_instance(&fx.fleet, "nope", root, true, &ch, &err), -ENOENT);
    free(cfg);
    kf_strbuf_release(&err);
    remove_tree(root);
    free(root);
}

static void expect_invalid(struct kf_obs_fleet *f, const char *needle)
{
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_obs_fleet_check(f, &err) != -EINVAL)
        fail_msg("the model was accepted, expected \"%s\"", needle);
    if (!strstr(err.buf, needle))
        fail_msg("expected \"%s\" in: %s", needle, err.buf);
    kf_strbuf_release(&err);
}

static void test_model_checks(void **state)
{
    struct kf_obs_receiver receivers[4];
    struct kf_obs_route routes[4];
    struct kf_obs_host hosts[3];
    struct kf_obs_instance edges[2];
    struct fixture fx;
    struct kf_strbuf err = KF_STRBUF_INIT;

    fixture_init(&fx);
    if (kf_obs_fleet_check(&fx.fleet, &err) != 0)
        fail_msg("the fixture is invalid: %s", err.buf);

    /* group_interval at or below twice the peer timeout */
    fx.fleet.alerting.peer_timeout_ms = 200000;
    expect_invalid(&fx.fleet, "peer timeout");
    fixture_init(&fx);
    memcpy(routes, fx_routes, sizeof(routes));
    routes[3].group_interval_ms = 20000;
    fx.fleet.alerting.root.routes = routes;
    expect_invalid(&fx.fleet, "route.routes[3]: group_interval");

    fixture_init(&fx);
    memcpy(routes, fx_routes, sizeof(routes));
    routes[1].receiver = "pager";
    fx.fleet.alerting.root.routes = routes;
    expect_invalid(&fx.fleet, "receiver \"pager\" does not exist");

    fixture_init(&fx);
    fx.fleet.alerting.smtp.smarthost = NULL;
    expect_invalid(&fx.fleet, "smtp.smarthost");

    fixture_init(&fx);
    fx.fleet.alerting.adapter_url = "file:///etc/passwd";
    expect_invalid(&fx.fleet, "adapter_url");

    fixture_init(&fx);
    memcpy(receivers, fx_receivers, sizeof(receivers));
    receivers[1].name = "sms-oncall";
    fx.fleet.alerting.receivers = receivers;
    expect_invalid(&fx.fleet, "defined twice");

    fixture_init(&fx);
    memcpy(edges, fx_edges_hz_u1, sizeof(edges));
    edges[1].name = "casc-fra";
    fx.units[1].edges = edges;
    expect_invalid(&fx.fleet, "\"casc-fra\" is used twice");

    fixture_init(&fx);
    memcpy(edges, fx_edges_hz_u1, sizeof(edges));
    edges[1].listen = "127.0.0.1:19202";
    fx.units[1].edges = edges;
    expect_invalid(&fx.fleet, "address \"127.0.0.1:19202\" is used twice");

    fixture_init(&fx);
    memcpy(hosts, fx_hosts_hz_u1, sizeof(hosts));
    hosts[0].node_exporter = "10.0.0.1";
    fx.units[1].hosts = hosts;
    expect_invalid(&fx.fleet, "not host:port");

    fixture_init(&fx);
    memcpy(hosts, fx_hosts_hz_u1, sizeof(hosts));
    hosts[2].name = "hz-h3";
    fx.units[1].hosts = hosts;
    expect_invalid(&fx.fleet, "host \"hz-h3\" is listed twice");

    fixture_init(&fx);
    fx.units[2].region = "mars-1";
    expect_invalid(&fx.fleet, "region \"mars-1\"");

    fixture_init(&fx);
    fx.regions[0].name = "Bad Name";
    expect_invalid(&fx.fleet, "not a valid name");

    fixture_init(&fx);
    fx.regions[0].settings.scrape_timeout_ms = 60000;
    expect_invalid(&fx.fleet, "scrape timeout");
    kf_strbuf_release(&err);
}

static bool argv_has(const struct kf_argv *a, const char *arg)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], arg) == 0)
            return true;
    return false;
}

static void test_argv(void **state)
{
    struct kf_argv a;
    struct fixture fx;

    fixture_init(&fx);
    assert_int_equal(kf_obs_argv_instance(&fx.fleet, "edge-fra-u1", "/m", &a), 0);
    assert_string_equal(a.v[0], "/usr/bin/prometheus");
    assert_null(a.v[a.n]);
    assert_true(argv_has(&a, "--config.file=/m/edge-fra-u1/prometheus.yml"));
    assert_true(argv_has(&a, "--storage.tsdb.path=/m/edge-fra-u1/data"));
    assert_true(argv_has(&a, "--storage.tsdb.retention.time=30d")); /* the region's setting */
    assert_true(argv_has(&a, "--web.listen-address=127.0.0.1:19204"));
    assert_true(argv_has(&a, "--web.external-url=http://127.0.0.1:19204/"));
    assert_true(argv_has(&a, "--web.enable-lifecycle"));
    kf_argv_release(&a);

    assert_int_equal(kf_obs_argv_instance(&fx.fleet, "casc-hz-a", "/m", &a), 0);
    assert_true(argv_has(&a, "--web.external-url=https://casc-hz-a.example.invalid/"));
    assert_true(argv_has(&a, "--storage.tsdb.retention.time=15d"));
    kf_argv_release(&a);

    assert_int_equal(kf_obs_argv_instance(&fx.fleet, "am-2", "/m", &a), 0);
    assert_string_equal(a.v[0], "/usr/bin/prometheus-alertmanager");
    assert_true(argv_has(&a, "--config.file=/m/am-2/alertmanager.yml"));
    assert_true(argv_has(&a, "--storage.path=/m/am-2/data"));
    assert_true(argv_has(&a, "--web.listen-address=127.0.0.1:19502"));
    assert_true(argv_has(&a, "--cluster.listen-address=127.0.0.1:19602"));
    assert_true(argv_has(&a, "--cluster.advertise-address=127.0.0.1:19602"));
    assert_true(argv_has(&a, "--cluster.peer=127.0.0.1:19601"));
    assert_false(argv_has(&a, "--cluster.peer=127.0.0.1:19602"));
    assert_true(argv_has(&a, "--cluster.peer-timeout=15s"));
    assert_true(argv_has(&a, "--cluster.settle-timeout=30s"));
    kf_argv_release(&a);

    assert_int_equal(kf_obs_argv_instance(&fx.fleet, "missing", "/m", &a), -ENOENT);

    kf_obs_argv_node_exporter(NULL, "127.0.0.1:9101", &a);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.v[0], "/usr/bin/prometheus-node-exporter");
    assert_string_equal(a.v[1], "--web.listen-address=127.0.0.1:9101");
    kf_argv_release(&a);
}

static void test_atomic_write(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *root = make_tmpdir();
    char *path = kf_xasprintf("%s/x.json", root);
    char *got;
    struct stat st;
    DIR *d;
    struct dirent *de;
    int entries = 0;

    assert_int_equal(kf_write_file_atomic(path, "[]\n", 3, 0640, true, &err), 0);
    assert_int_equal(kf_write_file_atomic(path, "[1]\n", 4, 0644, true, &err), 0);
    got = read_file(path, NULL);
    assert_string_equal(got, "[1]\n");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* no temporary file left behind */
    d = opendir(root);
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' || strlen(de->d_name) > 2)
            entries++;
    closedir(d);
    assert_int_equal(entries, 1);
    free(got);
    free(path);
    path = kf_xasprintf("%s/missing/x.json", root);
    assert_int_equal(kf_write_file_atomic(path, "[]", 2, 0644, true, &err), -ENOENT);
    assert_non_null(strstr(err.buf, "missing"));
    free(path);
    kf_strbuf_release(&err);
    remove_tree(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_real_tools_accept_everything),
        cmocka_unit_test(test_secrets_stay_secret),
        cmocka_unit_test(test_reload_only_when_structure_changes),
        cmocka_unit_test(test_checked_render_keeps_live_files),
        cmocka_unit_test(test_model_checks),
        cmocka_unit_test(test_argv),
        cmocka_unit_test(test_atomic_write),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
