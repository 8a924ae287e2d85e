/* test-endpoint.c: the endpoint renderer and the texts around it
 * (kfleet/endpoint.h), checked three ways:
 *
 *  - a golden file: the haproxy.cfg of the fixed unit below equals
 *    tests/unit/golden/endpoint/haproxy.cfg, whatever order the clusters and
 *    backends come in. Regenerate on purpose with KF_UPDATE_GOLDEN=1 and
 *    review the diff;
 *  - the real tool: the rendering passes `haproxy -c` (with a real CA file),
 *    and a setting haproxy refuses comes back as haproxy's own words;
 *  - validation: nothing an object holds can add a line or a keyword.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "kfleet/base.h"
#include "kfleet/endpoint.h"
#include "kfleet/file.h"
#include "kfleet/pki.h"
#include "kfleet/strbuf.h"

#include "runner-testlib.h"

#define HAPROXY "/usr/sbin/haproxy"

static const struct kf_ep_backend web_backends[] = {
    { "web-1-kube-apiserver-2", "10.0.2.12", 20443 },
    { "web-1-kube-apiserver-0", "10.0.0.10", 20443 },
    { "web-1-kube-apiserver-1", "10.0.1.11", 20444 },
};
static const struct kf_ep_backend v6_backends[] = {
    { "api-v6-kube-apiserver-0", "fd00::10", 21443 },
};

/* the fixed unit: unsorted on purpose */
static void fixture(struct kf_ep_cluster c[3], const char *ca_dir)
{
    static char paths[3][256];

    snprintf(paths[0], sizeof(paths[0]), "%s/web-1.crt", ca_dir);
    snprintf(paths[1], sizeof(paths[1]), "%s/api-v6.crt", ca_dir);
    snprintf(paths[2], sizeof(paths[2]), "%s/empty.crt", ca_dir);
    c[0] = (struct kf_ep_cluster){ "web-1", "192.0.2.10", 30001, paths[0], web_backends, 3 };
    c[1] = (struct kf_ep_cluster){ "api-v6", "fd00::1", 30002, paths[1], v6_backends, 1 };
    c[2] = (struct kf_ep_cluster){ "empty", "192.0.2.10", 30003, paths[2], NULL, 0 };
}

static char *render(const struct kf_ep_settings *s, const struct kf_ep_cluster *c, size_t n)
{
    struct kf_strbuf out = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    int r = kf_ep_render_haproxy("hz-u1", s, c, n, &out, &err);

    if (r < 0)
        fail_msg("render failed: %s", err.buf);
    kf_strbuf_release(&err);
    return kf_strbuf_detach(&out, NULL);
}

static void test_golden(void **state)
{
    const char *src = getenv("KF_SOURCE_DIR");
    bool update = getenv("KF_UPDATE_GOLDEN") && *getenv("KF_UPDATE_GOLDEN") == '1';
    struct kf_ep_cluster c[3];
    struct kf_ep_settings s;
    char *text, *path, *want;

    (void)state;
    assert_non_null(src);
    fixture(c, "/var/lib/kfleet/endpoints/hz-u1/ca");
    kf_ep_settings_default(&s);
    assert_int_equal(kf_ep_settings_set(&s, "timeout-tunnel", "2h", NULL), 0);
    /* as kfleetd renders it for the HAProxies it runs */
    snprintf(s.stats_socket, sizeof(s.stats_socket),
             "/var/lib/kfleet/endpoints/hz-u1/haproxy.sock");
    text = render(&s, c, 3);
    path = kf_xasprintf("%s/tests/unit/golden/endpoint/haproxy.cfg", src);
    if (update) {
        char *dir = kf_xasprintf("%s/tests/unit/golden/endpoint", src);

        mkdir(dir, 0755);
        t_write_file(path, text);
        free(dir);
    }
    want = t_read_file(path);
    if (!want)
        fail_msg("golden file missing: %s (run with KF_UPDATE_GOLDEN=1)", path);
    if (strcmp(want, text) != 0)
        fail_msg("rendered file differs from %s\n--- rendered:\n%s", path, text);
    free(want);
    free(path);
    free(text);
}

/* Same content, any order: same bytes. */
static void test_stable_order(void **state)
{
    struct kf_ep_cluster c[3], r[3];
    struct kf_ep_backend shuffled[3] = { web_backends[1], web_backends[2], web_backends[0] };
    char *a, *b;

    (void)state;
    fixture(c, "/ca");
    r[0] = c[2];
    r[1] = c[0];
    r[2] = c[1];
    r[1].backends = shuffled;
    a = render(NULL, c, 3);
    b = render(NULL, r, 3);
    assert_string_equal(a, b);
    /* sorted: api-v6 before empty before web-1; backends by name */
    assert_true(strstr(a, "frontend api-v6") < strstr(a, "frontend empty"));
    assert_true(strstr(a, "frontend empty") < strstr(a, "frontend web-1"));
    assert_true(strstr(a, "web-1-kube-apiserver-0") < strstr(a, "web-1-kube-apiserver-1"));
    assert_non_null(strstr(a, "    bind [fd00::1]:30002\n"));
    assert_non_null(strstr(a, "    server api-v6-kube-apiserver-0 [fd00::10]:21443 check"));
    free(a);
    free(b);
}

/* Writes a real CA certificate to each fixture path. */
static char *make_cas(void)
{
    char *dir = t_mkdtemp();
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_pki_ca *ca = NULL;
    const char *names[] = { "web-1", "api-v6", "empty" };

    if (kf_pki_ca_create("kfleet-test-ca", 2, &ca, &err) < 0)
        fail_msg("CA: %s", err.buf);
    for (size_t i = 0; i < KF_ARRAY_SIZE(names); i++) {
        char *crt = kf_xasprintf("%s/%s.crt", dir, names[i]);
        char *key = kf_xasprintf("%s/%s.key", dir, names[i]);

        if (kf_pki_ca_save(ca, crt, key, &err) < 0)
            fail_msg("save CA: %s", err.buf);
        free(crt);
        free(key);
    }
    kf_pki_ca_free(ca);
    kf_strbuf_release(&err);
    return dir;
}

/* What kfleetd renders, haproxy accepts; what haproxy refuses comes back
 * in its own words. */
static void test_haproxy_check(void **state)
{
    struct kf_ep_config ec = { .mode = KF_EP_EXTERNAL, .haproxy = HAPROXY };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_endpoints *e = NULL;
    struct kf_ep_cluster c[3];
    struct kf_ep_settings s;
    char *dir, *cfg, *text;

    (void)state;
    if (access(HAPROXY, X_OK) != 0) {
        print_message("SKIP: %s is not installed (Debian package haproxy)\n", HAPROXY);
        skip();
    }
    dir = make_cas();
    assert_int_equal(kf_endpoints_new(&ec, dir, &e, &err), 0);
    fixture(c, dir);
    cfg = kf_xasprintf("%s/haproxy.cfg", dir);

    text = render(NULL, c, 3);
    t_write_file(cfg, text);
    free(text);
    if (kf_endpoints_check(e, cfg, &err) != 0)
        fail_msg("haproxy -c refused the rendering: %s", err.buf);

    /* within our grammar, beyond haproxy's range: haproxy says so */
    kf_ep_settings_default(&s);
    assert_int_equal(kf_ep_settings_set(&s, "timeout-tunnel", "30d", NULL), 0);
    text = render(&s, c, 3);
    t_write_file(cfg, text);
    free(text);
    assert_int_equal(kf_endpoints_check(e, cfg, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "timer overflow in argument '30d' to 'timeout tunnel'"));
    assert_null(strchr(err.buf, '\n'));

    /* a CA file that is not there */
    unlink(c[0].ca_file);
    text = render(NULL, c, 3);
    t_write_file(cfg, text);
    free(text);
    assert_int_equal(kf_endpoints_check(e, cfg, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "web-1.crt"));

    kf_endpoints_free(e);
    e = NULL;
    ec.haproxy = "/nonexistent/haproxy";
    assert_int_equal(kf_endpoints_new(&ec, dir, &e, &err), 0);
    assert_int_equal(kf_endpoints_check(e, cfg, &err), -ENOENT);
    kf_endpoints_free(e);
    free(cfg);
    t_rm_rf(dir);
    free(dir);
    kf_strbuf_release(&err);
}

static int render_one(struct kf_ep_cluster c, struct kf_strbuf *err)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    int r;

    kf_strbuf_reset(err);
    r = kf_ep_render_haproxy("hz-u1", NULL, &c, 1, &out, err);
    kf_strbuf_release(&out);
    return r;
}

/* Nothing an object holds can add a line, a keyword or a second bind. */
static void test_validation(void **state)
{
    struct kf_ep_backend bad_name[] = { { "m\n    bind 0.0.0.0:1", "10.0.0.1", 1 } };
    struct kf_ep_backend bad_addr[] = { { "m", "10.0.0.1 ssl", 1 } };
    struct kf_ep_backend bad_port[] = { { "m", "10.0.0.1", 65536 } };
    struct kf_ep_backend twice[] = { { "m", "10.0.0.1", 1 }, { "m", "10.0.0.2", 1 } };
    struct kf_ep_backend many[KF_EP_BACKENDS_MAX + 1];
    struct kf_ep_cluster ok = { "c", "127.0.0.1", 30000, "/ca.crt", NULL, 0 }, c;
    struct kf_ep_cluster two[2];
    struct kf_strbuf err = KF_STRBUF_INIT, out = KF_STRBUF_INIT;

    (void)state;
    assert_int_equal(render_one(ok, &err), 0);
    c = ok, c.name = "C";
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.name = "c\nlisten x";
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.address = "127.0.0.1:80";
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.address = "localhost";
    assert_int_equal(render_one(c, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "not an IP address"));
    c = ok, c.address = "fe80::1%eth0";
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.port = 0;
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.ca_file = "ca.crt";
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.ca_file = "/a b/ca.crt";
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.ca_file = "/ca.crt\n    server x 1.2.3.4:5";
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.backends = bad_name, c.n_backends = 1;
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.backends = bad_addr, c.n_backends = 1;
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.backends = bad_port, c.n_backends = 1;
    assert_int_equal(render_one(c, &err), -EINVAL);
    c = ok, c.backends = twice, c.n_backends = 2;
    assert_int_equal(render_one(c, &err), -EINVAL);
    for (size_t i = 0; i < KF_ARRAY_SIZE(many); i++)
        many[i] = (struct kf_ep_backend){ "m", "10.0.0.1", 1 };
    c = ok, c.backends = many, c.n_backends = KF_ARRAY_SIZE(many);
    assert_int_equal(render_one(c, &err), -EINVAL);

    two[0] = ok;
    two[1] = ok;
    assert_int_equal(kf_ep_render_haproxy("hz-u1", NULL, two, 2, &out, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "twice"));
    two[1].name = "d";
    assert_int_equal(kf_ep_render_haproxy("hz-u1", NULL, two, 2, &out, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "both want 127.0.0.1 port 30000"));
    two[1].port = 30001;
    kf_strbuf_reset(&out);
    assert_int_equal(kf_ep_render_haproxy("hz-u1", NULL, two, 2, &out, &err), 0);
    assert_int_equal(kf_ep_render_haproxy("Bad Unit", NULL, two, 2, &out, &err), -EINVAL);
    kf_strbuf_release(&out);
    kf_strbuf_release(&err);
}

static void test_settings(void **state)
{
    struct kf_ep_settings s, before;
    struct kf_strbuf err = KF_STRBUF_INIT;
    static const char *const bad_times[] = { "",     "1h\n    bind :1", "1 h", "h",   "-1s",
                                             "1.5s", "1000000000s",     "10x", "1hs", "1h " };

    (void)state;
    kf_ep_settings_default(&s);
    assert_string_equal(s.timeout_tunnel, "1h");
    assert_int_equal(kf_ep_settings_set(&s, "timeout-tunnel", "90m", &err), 0);
    assert_string_equal(s.timeout_tunnel, "90m");
    assert_int_equal(kf_ep_settings_set(&s, "timeout-connect", "500ms", &err), 0);
    assert_int_equal(kf_ep_settings_set(&s, "check-interval", "250", &err), 0);
    /* checks of a server that is up: every 3 s unless the unit says */
    assert_string_equal(s.check_interval_up, "3s");
    assert_int_equal(kf_ep_settings_set(&s, "check-interval-up", "10s", &err), 0);
    assert_string_equal(s.check_interval_up, "10s");
    assert_int_equal(kf_ep_settings_set(&s, "check-interval-up", "soon", &err), -EINVAL);
    assert_non_null(strstr(err.buf, "check-interval-up"));
    assert_int_equal(kf_ep_settings_set(&s, "check-fall", "5", &err), 0);
    assert_int_equal(s.check_fall, 5);
    assert_int_equal(kf_ep_settings_set(&s, "maxconn", "1000000", &err), 0);
    before = s;
    for (size_t i = 0; i < KF_ARRAY_SIZE(bad_times); i++) {
        assert_int_equal(kf_ep_settings_set(&s, "timeout-client", bad_times[i], &err), -EINVAL);
        assert_non_null(strstr(err.buf, "endpoints.kfleet.io/timeout-client"));
    }
    assert_int_equal(kf_ep_settings_set(&s, "check-rise", "0", &err), -EINVAL);
    assert_int_equal(kf_ep_settings_set(&s, "check-rise", "101", &err), -EINVAL);
    assert_int_equal(kf_ep_settings_set(&s, "maxconn", "1e3", &err), -EINVAL);
    assert_int_equal(kf_ep_settings_set(&s, "maxconn", "99999999", &err), -EINVAL);
    assert_int_equal(kf_ep_settings_set(&s, "timeout-queue", "1s", &err), -EINVAL);
    assert_non_null(strstr(err.buf, "no such setting"));
    assert_memory_equal(&s, &before, sizeof(s));
    kf_strbuf_release(&err);
}

/* HAProxy 2.6's `show stat -1 4 -1`, cut to its first columns and a few of
 * the rest (the parser finds columns by name), as a real HAProxy answered
 * for one backend with a server passing /readyz and one refused. */
static const char stat_csv[] =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,\n"
    "web-1,web-1-kube-apiserver-0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,1,1,3,1,,1,3,1,,0,,2,0,,0,"
    "L7OK,200,1,\n"
    "web-1,web-1-kube-apiserver-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,3,3,,1,3,2,,0,,2,0,"
    ",0,L4CON,,0,\n"
    /* going down: UP, but its last check failed */
    "web-2,web-2-kube-apiserver-0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1,1,0,1,1,3,3,,1,3,2,,0,,2,"
    "0,,0,L7STS,503,0,\n"
    "web-2,BACKEND,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,1,1,3,3,,1,3,2,,0,,2,0,,0,,,,\n"
    "web-3,web-3-kube-apiserver-0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,1,1,3,1,,1,3,1,,0,,2,0,,0,"
    "L7OK,200,2,\n";

struct stat_seen {
    int servers, serving;
    char last[64];
};

static void stat_seen(void *ctx, const char *backend, const char *server, bool serving)
{
    struct stat_seen *s = ctx;

    s->servers++;
    s->serving += serving;
    snprintf(s->last, sizeof(s->last), "%s/%s", backend, server);
}

static void test_parse_stat(void **state)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct stat_seen seen = { 0 };

    (void)state;
    assert_int_equal(kf_ep_parse_stat(stat_csv, strlen(stat_csv), stat_seen, &seen, &err), 4);
    assert_int_equal(seen.servers, 4);
    assert_int_equal(seen.serving, 2); /* UP and L7OK only */
    assert_string_equal(seen.last, "web-3/web-3-kube-apiserver-0");
    assert_int_equal(kf_ep_parse_stat("web-1,x,UP\n", 11, stat_seen, &seen, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "header"));
    kf_strbuf_reset(&err);
    assert_int_equal(kf_ep_parse_stat("# pxname,svname,status\n", 24, stat_seen, &seen, &err),
                     -EINVAL);
    assert_non_null(strstr(err.buf, "no column check_status"));
    kf_strbuf_reset(&err);
    assert_int_equal(kf_ep_parse_stat("", 0, stat_seen, &seen, &err), -EINVAL);
    kf_strbuf_release(&err);
}

/* The stats socket line: rendered when set, refused when it could carry
 * anything else. */
static void test_stats_socket(void **state)
{
    struct kf_ep_settings s;
    struct kf_strbuf out = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
    struct kf_ep_cluster c = { "c", "127.0.0.1", 30001, "/ca.crt", NULL, 0 };
    static const char *const bad[] = { "haproxy.sock", "/a b.sock", "/a\n    bind :1", "/a\"b" };

    (void)state;
    kf_ep_settings_default(&s);
    assert_int_equal(kf_ep_render_haproxy("u1", &s, &c, 1, &out, &err), 0);
    assert_null(strstr(out.buf, "stats socket"));
    snprintf(s.stats_socket, sizeof(s.stats_socket), "/var/lib/kfleet/endpoints/u1/haproxy.sock");
    kf_strbuf_reset(&out);
    assert_int_equal(kf_ep_render_haproxy("u1", &s, &c, 1, &out, &err), 0);
    assert_non_null(strstr(out.buf, "global\n    master-worker\n    stats socket "
                                    "/var/lib/kfleet/endpoints/u1/haproxy.sock mode 600 level "
                                    "user\n"));
    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++) {
        snprintf(s.stats_socket, sizeof(s.stats_socket), "%s", bad[i]);
        kf_strbuf_reset(&err);
        assert_int_equal(kf_ep_render_haproxy("u1", &s, &c, 1, &out, &err), -EINVAL);
        assert_non_null(strstr(err.buf, "stats socket"));
    }
    kf_strbuf_release(&out);
    kf_strbuf_release(&err);
}

/* A fake HAProxy stats socket: answers `show stat` with stat_csv to each
 * connection until the test closes it. */
struct fake_stats {
    int fd;
    pthread_t thread;
    int answered;
    char command[64];
};

static void *fake_stats_serve(void *arg)
{
    struct fake_stats *f = arg;
    int c;

    while ((c = accept(f->fd, NULL, NULL)) >= 0) {
        ssize_t n = read(c, f->command, sizeof(f->command) - 1);

        f->command[n > 0 ? n : 0] = '\0';
        if (write(c, stat_csv, strlen(stat_csv)) > 0)
            f->answered++;
        close(c);
    }
    return NULL;
}

static void test_serving(void **state)
{
    char dir[] = "/tmp/kf-test-ep-XXXXXX", sock[KF_EP_SOCKET_MAX], *unitdir;
    struct kf_ep_config lc = { .mode = KF_EP_LOCAL }, xc = { .mode = KF_EP_EXTERNAL };
    struct kf_endpoints *e, *x;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct fake_stats f = { 0 };
    int up = -1, total = -1;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(kf_endpoints_new(&lc, dir, &e, NULL), 0);
    assert_int_equal(kf_endpoints_new(&xc, dir, &x, NULL), 0);
    /* no HAProxy yet: nothing known, the caller probes */
    assert_int_equal(kf_endpoints_serving(e, "u1", "web-1", &up, &total), -ENOENT);
    assert_int_equal(kf_endpoints_serving(x, "u1", "web-1", &up, &total), -EOPNOTSUPP);

    assert_true(kf_endpoints_stats_socket(e, "u1", sock));
    unitdir = kf_xasprintf("%s/u1", kf_endpoints_root(e));
    assert_int_equal(mkdir(unitdir, 0700), 0);
    f.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    assert_int_equal(bind(f.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f.fd, 8), 0);
    assert_int_equal(pthread_create(&f.thread, NULL, fake_stats_serve, &f), 0);

    /* ask again once the last read (which failed) is old enough */
    usleep((KF_EP_STATS_MAX_AGE_MS + 50) * 1000);
    assert_int_equal(kf_endpoints_serving(e, "u1", "web-1", &up, &total), 0);
    assert_int_equal(up, 1);
    assert_int_equal(total, 2);
    assert_int_equal(kf_endpoints_serving(e, "u1", "web-2", &up, &total), 0);
    assert_int_equal(up, 0);
    assert_int_equal(total, 1);
    assert_int_equal(kf_endpoints_serving(e, "u1", "web-9", &up, &total), -ENOENT);
    assert_string_equal(f.command, "show stat -1 4 -1\n");

    shutdown(f.fd, SHUT_RDWR);
    close(f.fd);
    pthread_join(f.thread, NULL);
    kf_endpoints_free(x);
    kf_endpoints_free(e);
    assert_int_equal(kf_remove_tree(dir), 0);
    free(unitdir);
}

static void test_parse_url(void **state)
{
    static const char *const bad[] = {
        "",
        "http://127.0.0.1:6443",
        "https://127.0.0.1",
        "https://127.0.0.1:",
        "https://127.0.0.1:0",
        "https://127.0.0.1:65536",
        "https://127.0.0.1:123456",
        "https://127.0.0.1:6443/x",
        "https://127.0.0.1:6443 ",
        "https://example.com:6443",
        "https://::1:6443",
        "https://[::1]6443",
        "https://[::1:6443",
        "https://[127.0.0.1:6443",
        "https://[127.0.0.1]:6443",
        "https://[]:6443",
        "https://:6443",
        "https://127.0.0.1:+6443",
    };
    char addr[KF_EP_ADDR_MAX] = "untouched";
    int port = -1;

    (void)state;
    assert_int_equal(kf_ep_parse_url("https://127.0.0.1:6443", addr, &port, NULL), 0);
    assert_string_equal(addr, "127.0.0.1");
    assert_int_equal(port, 6443);
    assert_int_equal(kf_ep_parse_url("https://[fd00::1]:30002/", addr, &port, NULL), 0);
    assert_string_equal(addr, "fd00::1");
    assert_int_equal(port, 30002);
    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++) {
        struct kf_strbuf err = KF_STRBUF_INIT;

        snprintf(addr, sizeof(addr), "untouched");
        port = -1;
        if (kf_ep_parse_url(bad[i], addr, &port, &err) != -EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_true(err.len > 0);
        assert_string_equal(addr, "untouched");
        assert_int_equal(port, -1);
        kf_strbuf_release(&err);
    }
    assert_int_equal(kf_ep_parse_url(NULL, addr, &port, NULL), -EINVAL);
}

static void test_haproxy_message(void **state)
{
    static const char out[] =
        "[NOTICE]   (19149) : haproxy version is 2.6.12-1+deb12u4\n"
        "[NOTICE]   (19149) : path to executable is /usr/sbin/haproxy\n"
        "[ALERT]    (19149) : config : parsing [bad.cfg:13] : timer overflow in argument "
        "'30d' to 'timeout tunnel'\n"
        "[ALERT]    (19149) : config : parsing [bad.cfg:20] : unknown keyword 'x'\n"
        "[ALERT]    (19149) : config : Error(s) found in configuration file : bad.cfg\n"
        "[ALERT]    (19149) : config : Fatal errors found in configuration.\n";
    struct kf_strbuf m = KF_STRBUF_INIT;

    (void)state;
    kf_ep_haproxy_message(out, strlen(out), 900, &m);
    assert_string_equal(m.buf, "parsing [bad.cfg:13] : timer overflow in argument '30d' to "
                               "'timeout tunnel'; parsing [bad.cfg:20] : unknown keyword 'x'");
    kf_strbuf_reset(&m);
    kf_ep_haproxy_message(out, strlen(out), 20, &m);
    assert_int_equal(m.len, 20);
    assert_string_equal(m.buf + 17, "...");
    kf_strbuf_reset(&m);
    kf_ep_haproxy_message("something\n\nwent\twrong\n", 22, 900, &m);
    assert_string_equal(m.buf, "went wrong");
    kf_strbuf_release(&m);
}

static void test_proc_name(void **state)
{
    char a[KF_EP_NAME_BUF], b[KF_EP_NAME_BUF], longer[200], longer2[200];

    (void)state;
    kf_endpoints_proc_name("hz-u1", a);
    assert_string_equal(a, "haproxy-hz-u1");
    memset(longer, 'a', 150);
    longer[150] = '\0';
    memcpy(longer2, longer, sizeof(longer));
    longer2[149] = 'b';
    kf_endpoints_proc_name(longer, a);
    kf_endpoints_proc_name(longer2, b);
    assert_int_equal(strlen(a), KF_EP_NAME_BUF - 1);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),          cmocka_unit_test(test_stable_order),
        cmocka_unit_test(test_haproxy_check),   cmocka_unit_test(test_validation),
        cmocka_unit_test(test_settings),        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_haproxy_message), cmocka_unit_test(test_proc_name),
        cmocka_unit_test(test_parse_stat),      cmocka_unit_test(test_stats_socket),
        cmocka_unit_test(test_serving),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
