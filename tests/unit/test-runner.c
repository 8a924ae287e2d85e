/* test-runner.c: the agent's process runner with real processes.
 *
 * Children are /bin/sleep, /bin/sh -c where a test needs a misbehaving
 * child, and this test binary itself run as a helper ("test-runner helper
 * MODE ...": prints lines, ignores SIGTERM, serves HTTP with a status the
 * test controls through a file). Every test runs in its own temporary state
 * directory; the teardown stops whatever is left (through a fresh runner
 * that adopts it) and checks that no child of this process remains.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <poll.h>
#include <time.h>

#include "runner-testlib.h"
#include "runner/runner-internal.h"

static char self_exe[4096];

/* --- helper modes (run as a child) ------------------------------------------------------------- */

static void say(int fd, const char *fmt, ...) KF_PRINTF(2, 3);
static void say(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    (void)!write(fd, buf, (size_t)n);
}

static int helper_http(int port)
{
    struct sockaddr_in a;
    int one = 1, n_req = 0, flap = 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 16) < 0) {
        say(2, "http helper: cannot listen on %d: %s\n", port, strerror(errno));
        return 1;
    }
    say(1, "listening on %d\n", port);
    for (;;) {
        char req[2048], count[32], resp[128];
        int c = accept(s, NULL, NULL), code = 200;
        char *status;
        if (c < 0)
            continue;
        (void)!read(c, req, sizeof(req));
        status = t_read_file("status");
        if (status && !strncmp(status, "flap", 4))
            code = (flap++ % 2) ? 500 : 200;
        else if (status)
            code = (int)strtol(status, NULL, 10);
        free(status);
        snprintf(count, sizeof(count), "%d\n", ++n_req);
        t_write_file("count", count);
        snprintf(resp, sizeof(resp), "HTTP/1.0 %d X\r\nContent-Length: 0\r\n\r\n", code);
        (void)!write(c, resp, strlen(resp));
        close(c);
    }
}

static volatile sig_atomic_t usr2_seen;

static void on_usr2(int sig)
{
    (void)sig;
    usr2_seen++;
}

/* Counts SIGUSR2 into the file "usr2" of its working directory; its child
 * (same process group, SIGUSR2 left at its default: terminate) writes its
 * pid to "child.pid" and waits, so a signal sent to the group would kill
 * it. */
static KF_NORETURN void helper_usr2(void)
{
    struct sigaction sa;
    sigset_t block, unblocked;
    char buf[32];
    int seen = 0;
    pid_t child = fork();

    if (child == 0) {
        for (;;)
            pause();
    }
    /* blocked except inside sigsuspend: a signal that arrives while the
     * file is written is not lost */
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, &unblocked);
    sigdelset(&unblocked, SIGUSR2);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    snprintf(buf, sizeof(buf), "%d\n", (int)child);
    t_write_file("child.pid", buf);
    for (;;) {
        sigsuspend(&unblocked);
        if (usr2_seen != seen) {
            seen = usr2_seen;
            snprintf(buf, sizeof(buf), "%d\n", seen);
            t_write_file("usr2", buf);
        }
    }
}

static int helper_main(int argc, char **argv)
{
    const char *mode = argc > 2 ? argv[2] : "";

    if (!strcmp(mode, "lines") && argc > 3) {
        int n = (int)strtol(argv[3], NULL, 10);
        for (int i = 0; i < n; i++)
            say(i % 2 ? 2 : 1, "line %06d %s\n", i, "abcdefghijklmnopqrstuvwxyz0123456789");
        if (argc > 4 && !strcmp(argv[4], "exit"))
            return 0;
        for (;;)
            pause();
    }
    if (!strcmp(mode, "tick")) {
        for (int i = 0;; i++) {
            say(1, "tick %d\n", i);
            usleep(20000);
        }
    }
    if (!strcmp(mode, "ignore-term")) {
        signal(SIGTERM, SIG_IGN);
        say(1, "ignoring SIGTERM\n");
        for (;;)
            pause();
    }
    if (!strcmp(mode, "http") && argc > 3)
        return helper_http((int)strtol(argv[3], NULL, 10));
    if (!strcmp(mode, "usr2"))
        helper_usr2();
    if (!strcmp(mode, "spew") && argc > 3) {
        long total = strtol(argv[3], NULL, 10), done = 0;
        for (int i = 0; done < total; i++) {
            char line[32];
            int n = snprintf(line, sizeof(line), "out %06d\n", i);
            if (done + n > total)
                n = (int)(total - done);
            (void)!write(1, line, (size_t)n);
            done += n;
        }
        return 0;
    }
    say(2, "unknown helper mode \"%s\"\n", mode);
    return 2;
}

/* --- fixture ------------------------------------------------------------------------------ */

struct fx {
    char *dir;
    char *state;
    struct kf_runner *r;
    int decoy;
    int children_before;
};

static const char *const helper_env[] = { "ASAN_OPTIONS=detect_leaks=0", "LC_ALL=C", NULL };

static struct kf_runner_config test_config(const char *state)
{
    struct kf_runner_config c;

    memset(&c, 0, sizeof(c));
    c.state_dir = state;
    c.backoff_initial_ms = 20;
    c.backoff_max_ms = 80;
    c.stop_grace_ms = 300;
    return c;
}

static struct kf_runner *new_runner(struct fx *f, const struct kf_runner_config *cfg)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_runner_config c = cfg ? *cfg : test_config(f->state);
    struct kf_runner *r = NULL;
    int rc = kf_runner_new("real", &c, &r, &err);

    t_reset_backlog();
    if (rc < 0)
        fail_msg("kf_runner_new: %s", err.buf);
    kf_strbuf_release(&err);
    return r;
}

static int setup(void **state)
{
    struct fx *f = kf_xcalloc(1, sizeof(*f));

    f->dir = t_mkdtemp();
    f->state = kf_xasprintf("%s/state", f->dir);
    f->children_before = t_count_children();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    struct kf_runner *r;
    int leftovers;

    if (f->r)
        kf_runner_free(f->r);
    /* Whatever is left: a fresh runner adopts it and stops it. */
    r = new_runner(f, NULL);
    kf_runner_stop_all(r, 10000);
    kf_runner_free(r);
    if (f->decoy > 0) {
        kill(f->decoy, SIGKILL);
        waitpid(f->decoy, NULL, 0);
    }
    /* Nothing may be left; if something is, it is killed and the test
     * fails. */
    leftovers = t_kill_leftovers(f->dir);
    assert_int_equal(leftovers, 0);
    assert_int_equal(t_count_children(), f->children_before);
    t_rm_rf(f->dir);
    free(f->state);
    free(f->dir);
    free(f);
    return 0;
}

static void apply_ok(struct kf_runner *r, const struct kf_proc_spec *spec)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int rc = kf_runner_apply(r, spec, &err);

    if (rc < 0)
        fail_msg("apply %s: %s", spec->name, err.buf);
    kf_strbuf_release(&err);
}

static void task_ok(struct kf_runner *r, const struct kf_task_spec *spec)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int rc = kf_runner_task_start(r, spec, &err);

    if (rc < 0)
        fail_msg("task %s: %s", spec->id, err.buf);
    kf_strbuf_release(&err);
}

static struct kf_runner_event wait_phase(struct kf_runner *r, const char *name,
                                         enum kf_proc_phase ph)
{
    struct kf_runner_event ev;

    if (!t_wait_phase(r, name, ph, &ev))
        fail_msg("\"%s\" never reached %s", name, kf_proc_phase_name(ph));
    return ev;
}

static bool has_fd_list_now(int pid, const char *want, bool quiet)
{
    char path[64], got[256] = "";
    struct dirent *de;
    int fds[64], n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    d = opendir(path);
    if (!d)
        return false;
    while ((de = readdir(d)) && n < 64)
        if (de->d_name[0] != '.')
            fds[n++] = (int)strtol(de->d_name, NULL, 10);
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (fds[j] < fds[i]) {
                int t = fds[i];
                fds[i] = fds[j];
                fds[j] = t;
            }
    for (int i = 0; i < n; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%d", i ? "," : "", fds[i]);
    if (strcmp(got, want) && !quiet)
        print_error("fds of %d: %s (want %s)\n", pid, got, want);
    return !strcmp(got, want);
}

/* The open fds of pid settle to want. Right after exec the dynamic loader
 * of the new program holds a file open for a moment (fd 3: ld.so.cache,
 * a library), so a snapshot may catch it; an fd the runner leaked would
 * stay. Up to 10 s; only the last look is reported. */
static bool has_fd_list(int pid, const char *want)
{
    for (int i = 0; i < 1000; i++) {
        if (has_fd_list_now(pid, want, true))
            return true;
        usleep(10 * 1000);
    }
    return has_fd_list_now(pid, want, false);
}

/* --- members ------------------------------------------------------------------------------- */

static void test_start_stop(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "sleep", "1000", NULL };
    const char *env[] = { "KF_TEST=yes", NULL };
    char *workdir = kf_xasprintf("%s/data/sleeper", f->dir);
    struct kf_proc_spec spec = { .name = "sleeper", .argv = argv, .env = env, .workdir = workdir };
    struct kf_runner_event ev;
    char path[64], link[4096];
    ssize_t n;
    char *environ_text;
    int pid;

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "sleeper", KF_PROC_READY);
    pid = ev.status.pid;
    assert_true(pid > 0);
    assert_true(ev.status.ready);
    assert_int_equal(ev.status.restarts, 0);
    assert_true(t_pid_alive(pid));
    /* Its own process group, not our session, the data directory as cwd,
     * stdin from /dev/null, nothing but 0, 1 and 2 open. */
    assert_int_equal(getpgid(pid), pid);
    assert_int_not_equal(getsid(pid), getsid(0));
    snprintf(path, sizeof(path), "/proc/%d/cwd", pid);
    n = readlink(path, link, sizeof(link) - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_equal(link, workdir);
    snprintf(path, sizeof(path), "/proc/%d/fd/0", pid);
    n = readlink(path, link, sizeof(link) - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_equal(link, "/dev/null");
    assert_true(has_fd_list(pid, "0,1,2"));
    /* Exactly the environment we gave. */
    snprintf(path, sizeof(path), "/proc/%d/environ", pid);
    environ_text = t_read_file(path);
    assert_non_null(environ_text);
    assert_string_equal(environ_text, "KF_TEST=yes");
    free(environ_text);

    assert_int_equal(kf_runner_stop(f->r, "sleeper"), 0);
    ev = wait_phase(f->r, "sleeper", KF_PROC_STOPPED);
    assert_true(ev.status.last_exit.valid);
    assert_true(ev.status.last_exit.signaled);
    assert_int_equal(ev.status.last_exit.signal, SIGTERM);
    assert_int_equal(ev.status.pid, 0);
    assert_false(t_pid_alive(pid));

    /* Started again by applying it again. */
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "sleeper", KF_PROC_READY);
    assert_int_not_equal(ev.status.pid, 0);
    assert_int_equal(kf_runner_remove(f->r, "sleeper"), 0);
    assert_true(
        t_wait(f->r, "sleeper", t_is_phase, &(enum kf_proc_phase){ KF_PROC_STOPPED }, NULL, &ev));
    assert_true(ev.status.removed);
    assert_int_equal(kf_runner_get(f->r, "sleeper", &ev.status), -ENOENT);
    free(workdir);
}

static void test_bad_specs(void **state)
{
    struct fx *f = *state;
    struct kf_runner_config cfg;
    struct kf_runner *second = NULL;
    const char *argv[] = { "sleep", "1", NULL };
    const char *noargv[] = { NULL };
    const char *badenv[] = { "NOEQUALS", NULL };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_proc_spec s = { .name = "../x", .argv = argv, .workdir = "/tmp" };

    f->r = new_runner(f, NULL);
    assert_int_equal(kf_runner_apply(f->r, &s, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "../x"));
    s.name = "ok";
    s.argv = noargv;
    assert_int_equal(kf_runner_apply(f->r, &s, &err), -EINVAL);
    s.argv = argv;
    s.env = badenv;
    assert_int_equal(kf_runner_apply(f->r, &s, &err), -EINVAL);
    s.env = NULL;
    s.workdir = "relative";
    assert_int_equal(kf_runner_apply(f->r, &s, &err), -EINVAL);
    /* Two runners on one state directory would start everything twice. */
    cfg = test_config(f->state);
    assert_int_equal(kf_runner_new("real", &cfg, &second, &err), -EBUSY);
    assert_non_null(strstr(err.buf, "another runner"));
    assert_int_equal(kf_runner_new("bogus", &cfg, &second, &err), -EINVAL);
    cfg.state_dir = NULL;
    assert_int_equal(kf_runner_new("real", &cfg, &second, &err), -EINVAL);
    kf_strbuf_release(&err);
}

static bool log_lines_ok(const char *text, int first, int last)
{
    const char *p = text;
    int want = first;

    while (*p) {
        int got;
        const char *nl = strchr(p, '\n');
        if (!nl || sscanf(p, "line %d ", &got) != 1 || got != want) {
            print_error("log: expected line %d at \"%.40s\"\n", want, p);
            return false;
        }
        want++;
        p = nl + 1;
    }
    if (want != last + 1)
        print_error("log: ended at %d, expected %d\n", want - 1, last);
    return want == last + 1;
}

static void test_log_capture(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { self_exe, "helper", "lines", "5000", NULL };
    char *workdir = kf_xasprintf("%s/data/chatty", f->dir);
    char *log = kf_xasprintf("%s/state/logs/chatty.log", f->dir);
    struct kf_proc_spec spec = {
        .name = "chatty", .argv = argv, .env = helper_env, .workdir = workdir
    };
    char *text;

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    wait_phase(f->r, "chatty", KF_PROC_READY);
    /* stdout and stderr, in order, nothing lost. */
    assert_true(t_file_contains(log, "line 004999 "));
    text = t_read_file(log);
    assert_true(log_lines_ok(text, 0, 4999));
    free(text);
    free(workdir);
    free(log);
}

static void test_log_rotation(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { self_exe, "helper", "lines", "30000", NULL };
    struct kf_runner_config cfg = test_config(f->state);
    char *workdir = kf_xasprintf("%s/data/rot", f->dir);
    char *log = kf_xasprintf("%s/rot.log", f->dir);
    struct kf_proc_spec spec = {
        .name = "rot", .argv = argv, .env = helper_env, .workdir = workdir, .log_file = log
    };
    struct kf_strbuf all = KF_STRBUF_INIT;
    int first = -1;

    cfg.log_max_bytes = 16 * 1024;
    cfg.log_keep = 3;
    f->r = new_runner(f, &cfg);
    apply_ok(f->r, &spec);
    assert_true(t_file_contains(log, "line 029999 "));
    for (int i = 3; i >= 0; i--) {
        char *path = i ? kf_xasprintf("%s.%d", log, i) : kf_xstrdup(log);
        struct stat st;
        char *text;
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size <= 16 * 1024);
        text = t_read_file(path);
        /* Every file starts at a line and ends with one. */
        assert_true(kf_str_has_prefix(text, "line "));
        assert_true(text[strlen(text) - 1] == '\n');
        kf_strbuf_addstr(&all, text);
        free(text);
        free(path);
    }
    {
        char *path4 = kf_xasprintf("%s.4", log);
        assert_true(access(path4, F_OK) < 0);
        free(path4);
    }
    /* The kept files hold a contiguous run that ends with the last line. */
    assert_int_equal(sscanf(all.buf, "line %d ", &first), 1);
    assert_true(first > 0);
    assert_true(log_lines_ok(all.buf, first, 29999));
    kf_strbuf_release(&all);
    free(workdir);
    free(log);
}

static bool is_backoff(const struct kf_runner_event *ev, const void *arg)
{
    return ev->status.phase == KF_PROC_BACKOFF && ev->status.restarts == *(const int *)arg;
}

static void test_backoff_sequence(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "/bin/sh", "-c", "exit 3", NULL };
    char *workdir = kf_xasprintf("%s/data/crash", f->dir);
    struct kf_proc_spec spec = { .name = "crash", .argv = argv, .workdir = workdir };
    static const int64_t want_backoff[] = { 20, 40, 80, 80 };
    struct t_events seen = { 0 };
    struct kf_runner_event ev;
    size_t n_ready = 0, n_backoff = 0;

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    for (int i = 0; i < 4; i++) {
        assert_true(t_wait(f->r, "crash", is_backoff, &i, &seen, &ev));
        assert_int_equal(ev.status.backoff_ms, want_backoff[i]);
        assert_true(ev.status.last_exit.valid);
        assert_false(ev.status.last_exit.signaled);
        assert_int_equal(ev.status.last_exit.code, 3);
        assert_int_equal(ev.status.pid, 0);
        assert_non_null(strstr(ev.status.message, "exit code 3"));
    }
    /* The phases in order: Pending, then (Ready, Backoff) per run, the
     * restart count going up by one each time. */
    assert_int_equal(seen.v[0].status.phase, KF_PROC_PENDING);
    for (size_t i = 1; i < seen.n; i++) {
        const struct kf_proc_status *st = &seen.v[i].status;
        if (i % 2 == 1) {
            assert_int_equal(st->phase, KF_PROC_READY);
            assert_int_equal(st->restarts, (int)n_ready);
            n_ready++;
        } else {
            assert_int_equal(st->phase, KF_PROC_BACKOFF);
            assert_int_equal(st->restarts, (int)n_backoff);
            n_backoff++;
        }
    }
    assert_int_equal(n_backoff, 4);
    /* The stop may come before or after the next restart (80 ms is short
     * on a loaded machine): Stopped keeps the count the runner reached. */
    assert_int_equal(kf_runner_stop(f->r, "crash"), 0);
    assert_true(
        t_wait(f->r, "crash", t_is_phase, &(enum kf_proc_phase){ KF_PROC_STOPPED }, &seen, &ev));
    assert_true(seen.n >= 2);
    assert_true(ev.status.restarts >= 3);
    assert_int_equal(ev.status.restarts, seen.v[seen.n - 2].status.restarts);
    free(seen.v);
    free(workdir);
}

static void test_backoff_reset(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "/bin/sh", "-c", "sleep 0.2; exit 1", NULL };
    struct kf_runner_config cfg = test_config(f->state);
    char *workdir = kf_xasprintf("%s/data/slowcrash", f->dir);
    struct kf_proc_spec spec = { .name = "slowcrash", .argv = argv, .workdir = workdir };
    struct kf_runner_event ev;

    /* A run longer than backoff_reset_ms counts as healthy: the delay
     * stays at the initial value instead of doubling. */
    cfg.backoff_reset_ms = 50;
    f->r = new_runner(f, &cfg);
    apply_ok(f->r, &spec);
    for (int i = 0; i < 3; i++) {
        assert_true(t_wait(f->r, "slowcrash", is_backoff, &i, NULL, &ev));
        assert_int_equal(ev.status.backoff_ms, 20);
    }
    free(workdir);
}

static void test_binary_not_installed(void **state)
{
    struct fx *f = *state;
    const char *argv1[] = { "kf-no-such-binary-xyz", "--flag", NULL };
    const char *argv2[] = { "/nonexistent/bin/kube-apiserver", NULL };
    char *workdir = kf_xasprintf("%s/data/missing", f->dir);
    struct kf_proc_spec s1 = { .name = "missing1", .argv = argv1, .workdir = workdir };
    struct kf_proc_spec s2 = { .name = "missing2", .argv = argv2, .workdir = workdir };
    struct kf_runner_event ev;
    struct kf_proc_status st;

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &s1);
    apply_ok(f->r, &s2);
    ev = wait_phase(f->r, "missing1", KF_PROC_BINARY_NOT_INSTALLED);
    assert_non_null(strstr(ev.status.message, "kf-no-such-binary-xyz"));
    assert_non_null(strstr(ev.status.message, "/usr/bin")); /* the search path */
    assert_int_equal(ev.status.pid, 0);
    ev = wait_phase(f->r, "missing2", KF_PROC_BINARY_NOT_INSTALLED);
    assert_non_null(strstr(ev.status.message, "/nonexistent/bin/kube-apiserver"));
    /* Not a crash loop: after several back-off periods it is still the same
     * state, no restart counted, nothing started, no new event. */
    assert_int_equal(kf_runner_next_event(f->r, 400, &ev), 0);
    assert_int_equal(kf_runner_get(f->r, "missing1", &st), 0);
    assert_int_equal(st.phase, KF_PROC_BINARY_NOT_INSTALLED);
    assert_int_equal(st.restarts, 0);
    assert_int_equal(t_count_children(), f->children_before);
    free(workdir);
}

static void test_exec_failure(void **state)
{
    struct fx *f = *state;
    char *workdir = kf_xasprintf("%s/data/noexec", f->dir);
    char *script = kf_xasprintf("%s/not-executable", f->dir);
    const char *argv[] = { script, NULL };
    struct kf_proc_spec spec = { .name = "noexec", .argv = argv, .workdir = workdir };
    struct kf_runner_event ev;

    /* Executable bit, but no #! and not ELF: exec fails (ENOEXEC). */
    t_write_file(script, "just text\n");
    chmod(script, 0755);
    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "noexec", KF_PROC_FAILED);
    assert_non_null(strstr(ev.status.message, "exec"));
    free(workdir);
    free(script);
}

/* --- probes ---------------------------------------------------------------------------------- */

static bool is_ready_flag(const struct kf_runner_event *ev, const void *arg)
{
    return ev->type == KF_RUNNER_EV_STATUS && ev->status.ready == *(const bool *)arg &&
           (ev->status.phase == KF_PROC_READY || ev->status.phase == KF_PROC_RUNNING);
}

static void test_probe_http_readiness(void **state)
{
    struct fx *f = *state;
    int port = kf_test_port();
    char portstr[16];
    char *workdir = kf_xasprintf("%s/data/web", f->dir);
    char *status = kf_xasprintf("%s/status", workdir);
    const char *argv[] = { self_exe, "helper", "http", portstr, NULL };
    struct kf_proc_spec spec = {
        .name = "web", .argv = argv, .env = helper_env, .workdir = workdir
    };
    struct kf_runner_event ev;
    bool want;

    snprintf(portstr, sizeof(portstr), "%d", port);
    spec.readiness = (struct kf_probe){ .type = KF_PROBE_HTTP,
                                        .port = port,
                                        .path = "/healthz",
                                        .period_ms = 40,
                                        .timeout_ms = 500,
                                        .failure_threshold = 2,
                                        .success_threshold = 2 };
    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "web", KF_PROC_STARTING);
    assert_false(ev.status.ready);
    ev = wait_phase(f->r, "web", KF_PROC_READY);
    assert_true(ev.status.ready);

    t_write_file(status, "503\n");
    want = false;
    assert_true(t_wait(f->r, "web", is_ready_flag, &want, NULL, &ev));
    assert_int_equal(ev.status.phase, KF_PROC_RUNNING);
    assert_non_null(strstr(ev.status.message, "HTTP 503"));
    /* Readiness alone never restarts. */
    assert_int_equal(ev.status.restarts, 0);

    t_write_file(status, "302\n"); /* 200..399 is healthy */
    want = true;
    assert_true(t_wait(f->r, "web", is_ready_flag, &want, NULL, &ev));
    assert_int_equal(ev.status.phase, KF_PROC_READY);
    free(workdir);
    free(status);
}

static void test_probe_flapping(void **state)
{
    struct fx *f = *state;
    int port = kf_test_port();
    char portstr[16];
    char *workdir = kf_xasprintf("%s/data/flappy", f->dir);
    char *status = kf_xasprintf("%s/status", workdir);
    char *count = kf_xasprintf("%s/count", workdir);
    const char *argv[] = { self_exe, "helper", "http", portstr, NULL };
    struct kf_proc_spec spec = {
        .name = "flappy", .argv = argv, .env = helper_env, .workdir = workdir
    };
    struct kf_runner_event ev;
    int64_t end = (int64_t)(kf_mono_ns() / 1000000) + T_WAIT_MS;
    int n = 0;

    snprintf(portstr, sizeof(portstr), "%d", port);
    spec.readiness = (struct kf_probe){
        .type = KF_PROBE_HTTP, .port = port, .period_ms = 20, .failure_threshold = 2
    };
    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    wait_phase(f->r, "flappy", KF_PROC_READY);
    /* Alternating 200/500 never reaches two failures in a row: the member
     * stays ready through 20 probes. */
    t_write_file(status, "flap\n");
    while (n < 22 && (int64_t)(kf_mono_ns() / 1000000) < end) {
        char *c = t_read_file(count);
        n = c ? (int)strtol(c, NULL, 10) : 0;
        free(c);
        while (kf_runner_next_event(f->r, 0, &ev) == 1)
            assert_true(ev.status.ready);
        usleep(10000);
    }
    assert_true(n >= 22);
    free(workdir);
    free(status);
    free(count);
}

static void test_probe_liveness_restarts(void **state)
{
    struct fx *f = *state;
    int port = kf_test_port();
    char portstr[16];
    char *workdir = kf_xasprintf("%s/data/live", f->dir);
    char *status = kf_xasprintf("%s/status", workdir);
    const char *argv[] = { self_exe, "helper", "http", portstr, NULL };
    struct kf_proc_spec spec = {
        .name = "live", .argv = argv, .env = helper_env, .workdir = workdir
    };
    struct kf_runner_event ev;
    int zero = 0, first_pid;

    snprintf(portstr, sizeof(portstr), "%d", port);
    spec.liveness = (struct kf_probe){
        .type = KF_PROBE_HTTP, .port = port, .period_ms = 30, .failure_threshold = 2
    };
    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "live", KF_PROC_READY);
    first_pid = ev.status.pid;
    t_write_file(status, "500\n");
    assert_true(t_wait(f->r, "live", is_backoff, &zero, NULL, &ev));
    assert_non_null(strstr(ev.status.message, "liveness probe failed"));
    assert_true(ev.status.last_exit.signaled);
    assert_int_equal(ev.status.last_exit.signal, SIGTERM);
    /* The new process answers 500 as well (same status file): it keeps
     * being restarted; heal it and it stays. */
    t_write_file(status, "200\n");
    ev = wait_phase(f->r, "live", KF_PROC_READY);
    assert_true(ev.status.restarts >= 1);
    assert_int_not_equal(ev.status.pid, first_pid);
    assert_false(t_pid_alive(first_pid));
    free(workdir);
    free(status);
}

static void test_probe_tcp(void **state)
{
    struct fx *f = *state;
    int port = kf_test_port(), closed = kf_test_port();
    char portstr[16];
    char *workdir = kf_xasprintf("%s/data/tcp", f->dir);
    const char *argv[] = { self_exe, "helper", "http", portstr, NULL };
    const char *sleeper[] = { "sleep", "1000", NULL };
    struct kf_proc_spec good = {
        .name = "tcp-good", .argv = argv, .env = helper_env, .workdir = workdir
    };
    struct kf_proc_spec bad = { .name = "tcp-bad", .argv = sleeper, .workdir = workdir };
    struct kf_runner_event ev;
    struct kf_strbuf detail = KF_STRBUF_INIT;
    struct kf_probe closed_probe = { .type = KF_PROBE_TCP, .port = closed, .timeout_ms = 500 };

    snprintf(portstr, sizeof(portstr), "%d", port);
    good.readiness = (struct kf_probe){ .type = KF_PROBE_TCP, .port = port, .period_ms = 30 };
    bad.readiness = (struct kf_probe){
        .type = KF_PROBE_TCP, .port = closed, .period_ms = 30, .failure_threshold = 2
    };
    f->r = new_runner(f, NULL);
    apply_ok(f->r, &good);
    apply_ok(f->r, &bad);
    ev = wait_phase(f->r, "tcp-good", KF_PROC_READY);
    assert_true(ev.status.ready);
    ev = wait_phase(f->r, "tcp-bad", KF_PROC_RUNNING);
    assert_false(ev.status.ready);
    assert_non_null(strstr(ev.status.message, "readiness probe failed"));
    /* The synchronous check says the same. */
    assert_false(kf_probe_check(&closed_probe, &detail));
    assert_true(detail.len > 0);
    kf_strbuf_release(&detail);
    free(workdir);
}

/* --- stop ------------------------------------------------------------------------------------- */

static void test_stop_escalates_to_sigkill(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { self_exe, "helper", "ignore-term", NULL };
    char *workdir = kf_xasprintf("%s/data/stubborn", f->dir);
    char *log = kf_xasprintf("%s/state/logs/stubborn.log", f->dir);
    struct kf_proc_spec spec = { .name = "stubborn",
                                 .argv = argv,
                                 .env = helper_env,
                                 .workdir = workdir,
                                 .stop_grace_ms = 200 };
    struct kf_runner_event ev;
    struct t_events seen = { 0 };
    bool saw_kill = false;
    int pid;

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "stubborn", KF_PROC_READY);
    pid = ev.status.pid;
    assert_true(t_file_contains(log, "ignoring SIGTERM"));
    assert_int_equal(kf_runner_stop(f->r, "stubborn"), 0);
    assert_true(
        t_wait(f->r, "stubborn", t_is_phase, &(enum kf_proc_phase){ KF_PROC_STOPPED }, &seen, &ev));
    assert_true(ev.status.last_exit.signaled);
    assert_int_equal(ev.status.last_exit.signal, SIGKILL);
    for (size_t i = 0; i < seen.n; i++)
        if (strstr(seen.v[i].status.message, "SIGKILL sent"))
            saw_kill = true;
    assert_true(saw_kill);
    assert_false(t_pid_alive(pid));
    free(seen.v);
    free(workdir);
    free(log);
}

/* --- adoption ------------------------------------------------------------------------------- */

static void test_adoption(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { self_exe, "helper", "tick", NULL };
    const char *argv2[] = { "sleep", "2000", NULL };
    char *workdir = kf_xasprintf("%s/data/adopt", f->dir);
    char *log = kf_xasprintf("%s/state/logs/adopt.log", f->dir);
    struct kf_proc_spec spec = {
        .name = "adopt", .argv = argv, .env = helper_env, .workdir = workdir
    };
    struct kf_runner_event ev;
    struct kf_proc_status *list;
    char needle[32], *text;
    int pid, n, last_tick = 0;

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "adopt", KF_PROC_READY);
    pid = ev.status.pid;
    assert_true(t_file_contains(log, "tick 3\n"));
    /* The agent goes away; the member keeps running. */
    kf_runner_free(f->r);
    f->r = NULL;
    usleep(100000);
    assert_true(t_pid_alive(pid));

    f->r = new_runner(f, NULL);
    n = kf_runner_list(f->r, &list);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "adopt");
    assert_false(list[0].claimed);
    assert_int_equal(list[0].pid, pid);
    free(list);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "adopt", KF_PROC_READY);
    assert_int_equal(ev.status.pid, pid); /* the same process, not a second copy */
    assert_true(ev.status.adopted);
    assert_int_equal(ev.status.restarts, 0);
    /* Its output is read again, and nothing written meanwhile was lost. */
    text = t_read_file(log);
    for (char *p = text; (p = strstr(p, "tick ")); p++)
        last_tick = (int)strtol(p + 5, NULL, 10);
    free(text);
    snprintf(needle, sizeof(needle), "tick %d\n", last_tick + 5);
    assert_true(t_file_contains(log, needle));
    text = t_read_file(log);
    for (int i = 0; i <= last_tick + 5; i++) {
        snprintf(needle, sizeof(needle), "tick %d\n", i);
        assert_non_null(strstr(text, needle));
    }
    free(text);

    /* A changed spec restarts it. */
    spec.argv = argv2;
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "adopt", KF_PROC_READY);
    assert_int_not_equal(ev.status.pid, pid);
    assert_false(ev.status.adopted);
    assert_false(t_pid_alive(pid));
    free(workdir);
    free(log);
}

static void test_adoption_of_dead_member(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "sleep", "1000", NULL };
    char *workdir = kf_xasprintf("%s/data/dead", f->dir);
    struct kf_proc_spec spec = { .name = "dead", .argv = argv, .workdir = workdir };
    struct kf_runner_event ev;
    int pid;

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "dead", KF_PROC_READY);
    pid = ev.status.pid;
    kf_runner_free(f->r);
    f->r = NULL;
    /* It dies while no agent watches; its keeper records how. */
    kill(pid, SIGKILL);
    for (int i = 0; i < 500 && t_pid_alive(pid); i++)
        usleep(10000);
    assert_false(t_pid_alive(pid));

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "dead", KF_PROC_READY);
    assert_int_not_equal(ev.status.pid, pid);
    assert_int_equal(ev.status.restarts, 1);
    assert_true(ev.status.last_exit.valid);
    assert_true(ev.status.last_exit.signaled);
    assert_int_equal(ev.status.last_exit.signal, SIGKILL);
    free(workdir);
}

static char *replace_line(const char *text, const char *key, const char *value)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    const char *p = text;
    size_t kl = strlen(key);

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (!strncmp(p, key, kl) && p[kl] == ' ')
            kf_strbuf_addf(&out, "%s %s\n", key, value);
        else
            kf_strbuf_add(&out, p, len);
        p += len;
    }
    return kf_strbuf_detach(&out, NULL);
}

static void test_pid_reuse_is_not_adopted(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "sleep", "1000", NULL };
    const char *decoy_argv[] = { "sleep", "1000", NULL };
    char *workdir = kf_xasprintf("%s/data/reuse", f->dir);
    char *state_path = kf_xasprintf("%s/members/reuse.state", f->state);
    struct kf_proc_spec spec = { .name = "reuse", .argv = argv, .workdir = workdir };
    struct kf_runner_event ev;
    struct kf_proc_status st;
    char *text, *t2, *t3, pidstr[16], startstr[32];
    uint64_t decoy_start = 0;
    pid_t decoy;

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    wait_phase(f->r, "reuse", KF_PROC_READY);
    text = t_read_file(state_path); /* a record of a running member */
    assert_non_null(text);
    assert_int_equal(kf_runner_stop_all(f->r, 5000), 0);
    kf_runner_free(f->r);
    f->r = NULL;

    /* An unrelated process now holds a pid the record names (as if the pid
     * had been recycled); its start time differs from the record's. */
    assert_int_equal(posix_spawnp(&decoy, "sleep", NULL, NULL, (char *const *)decoy_argv, environ),
                     0);
    f->decoy = decoy;
    /* Its start time differs from the record's by 10 s (everything here
     * runs within one clock tick at times, so do not leave it to chance). */
    for (int i = 0; i < 500 && kf_runner_proc_start_time(decoy, &decoy_start) < 0; i++)
        usleep(1000);
    assert_true(decoy_start > 0);
    snprintf(pidstr, sizeof(pidstr), "%d", decoy);
    snprintf(startstr, sizeof(startstr), "%llu", (unsigned long long)decoy_start + 1000);
    t2 = replace_line(text, "pid", pidstr);
    t3 = replace_line(t2, "keeper_pid", pidstr);
    free(t2);
    t2 = replace_line(t3, "pid_start", startstr);
    free(t3);
    t3 = replace_line(t2, "keeper_start", startstr);
    t_write_file(state_path, t3);

    f->r = new_runner(f, NULL);
    assert_int_equal(kf_runner_get(f->r, "reuse", &st), 0);
    assert_int_equal(st.phase, KF_PROC_STOPPED); /* not mistaken for the member */
    assert_int_equal(st.pid, 0);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "reuse", KF_PROC_READY);
    assert_int_not_equal(ev.status.pid, decoy);
    assert_int_equal(kf_runner_remove(f->r, "reuse"), 0);
    assert_int_equal(kf_runner_stop_all(f->r, 5000), 0);
    /* The decoy was never signalled. */
    assert_true(t_pid_alive(decoy));
    free(text);
    free(t2);
    free(t3);
    free(workdir);
    free(state_path);
}

/* --- tasks ------------------------------------------------------------------------------------- */

static struct kf_task_result wait_result(struct kf_runner *r, const char *id)
{
    struct kf_runner_event ev;
    struct kf_task_result *res, out;
    int n;

    if (!t_wait(r, id, t_is_done, NULL, NULL, &ev))
        fail_msg("task %s never finished", id);
    n = kf_runner_task_results(r, &res);
    for (int i = 0; i < n; i++)
        if (!strcmp(res[i].id, id)) {
            out = res[i];
            res[i].output = NULL;
            kf_task_results_free(res, (size_t)n);
            return out;
        }
    kf_task_results_free(res, (size_t)n);
    fail_msg("no result for %s", id);
    memset(&out, 0, sizeof(out));
    return out;
}

static void test_task_success(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "/bin/sh", "-c", "echo hello; echo oops >&2; exit 0", NULL };
    struct kf_task_spec spec = { .id = "t-ok", .argv = argv };
    struct kf_task_result res;

    f->r = new_runner(f, NULL);
    task_ok(f->r, &spec);
    res = wait_result(f->r, "t-ok");
    assert_true(res.succeeded);
    assert_false(res.timed_out);
    assert_int_equal(res.attempts, 1);
    assert_true(res.exit.valid);
    assert_int_equal(res.exit.code, 0);
    assert_string_equal(res.output, "hello\noops\n");
    assert_int_equal(res.output_dropped, 0);
    assert_true(res.start_ms > 0 && res.end_ms >= res.start_ms);
    kf_task_result_release(&res);
    assert_int_equal(kf_runner_task_ack(f->r, "t-ok"), 0);
    assert_int_equal(kf_runner_task_ack(f->r, "t-ok"), -ENOENT);
}

static void test_task_timeout(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "sleep", "100", NULL };
    const char *stubborn[] = { self_exe, "helper", "ignore-term", NULL };
    struct kf_task_spec spec = { .id = "t-slow", .argv = argv, .timeout_ms = 200 };
    struct kf_task_spec spec2 = { .id = "t-stubborn",
                                  .argv = stubborn,
                                  .env = helper_env,
                                  .timeout_ms = 200,
                                  .stop_grace_ms = 200 };
    struct kf_task_result res;

    f->r = new_runner(f, NULL);
    task_ok(f->r, &spec);
    res = wait_result(f->r, "t-slow");
    assert_false(res.succeeded);
    assert_true(res.timed_out);
    assert_true(res.exit.signaled);
    assert_int_equal(res.exit.signal, SIGTERM);
    assert_non_null(strstr(res.message, "timed out"));
    kf_task_result_release(&res);

    task_ok(f->r, &spec2);
    res = wait_result(f->r, "t-stubborn");
    assert_true(res.timed_out);
    assert_int_equal(res.exit.signal, SIGKILL); /* the group is killed */
    assert_string_equal(res.output, "ignoring SIGTERM\n");
    kf_task_result_release(&res);
}

static void test_task_output_cap(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { self_exe, "helper", "spew", "198000", NULL };
    struct kf_task_spec spec = { .id = "t-spew", .argv = argv, .env = helper_env };
    struct kf_task_result res;
    char last[32];

    f->r = new_runner(f, NULL);
    task_ok(f->r, &spec);
    res = wait_result(f->r, "t-spew");
    assert_true(res.succeeded);
    assert_int_equal(res.output_len, KF_RUNNER_OUTPUT_CAP_DEF);
    assert_int_equal(strlen(res.output), KF_RUNNER_OUTPUT_CAP_DEF);
    assert_int_equal(res.output_dropped + res.output_len, 198000);
    /* The tail is kept: the last line is the last one written. */
    snprintf(last, sizeof(last), "out %06d\n", 198000 / 11 - 1);
    assert_true(kf_str_has_suffix(res.output, last));
    kf_task_result_release(&res);
}

static void test_task_restart_policy(void **state)
{
    struct fx *f = *state;
    const char *fail5[] = { "/bin/sh", "-c", "echo try; exit 5", NULL };
    const char *second[] = { "/bin/sh", "-c",
                             "if [ -e marker ]; then exit 0; fi; touch marker; exit 1", NULL };
    char *wd = kf_xasprintf("%s/data/retry", f->dir);
    struct kf_task_spec onf = {
        .id = "t-onfail", .argv = fail5, .restart_policy = KF_RESTART_ON_FAILURE, .restart_limit = 2
    };
    struct kf_task_spec never = { .id = "t-never", .argv = fail5 };
    struct kf_task_spec retry = { .id = "t-retry",
                                  .argv = second,
                                  .workdir = wd,
                                  .restart_policy = KF_RESTART_ON_FAILURE,
                                  .restart_limit = 3 };
    struct kf_task_result res;

    assert_int_equal(kf_mkdir_p(wd, 0700), 0);
    f->r = new_runner(f, NULL);
    task_ok(f->r, &onf);
    res = wait_result(f->r, "t-onfail");
    assert_false(res.succeeded);
    assert_int_equal(res.attempts, 3); /* the first run and restart_limit restarts */
    assert_int_equal(res.exit.code, 5);
    assert_non_null(strstr(res.message, "restart limit 2"));
    kf_task_result_release(&res);

    task_ok(f->r, &never);
    res = wait_result(f->r, "t-never");
    assert_false(res.succeeded);
    assert_int_equal(res.attempts, 1);
    kf_task_result_release(&res);

    task_ok(f->r, &retry);
    res = wait_result(f->r, "t-retry");
    assert_true(res.succeeded);
    assert_int_equal(res.attempts, 2);
    kf_task_result_release(&res);
    free(wd);
}

static void test_task_missing_binary_and_cancel(void **state)
{
    struct fx *f = *state;
    const char *missing[] = { "kf-no-such-task-binary", NULL };
    const char *slow[] = { "sleep", "100", NULL };
    struct kf_task_spec m = { .id = "t-missing", .argv = missing };
    struct kf_task_spec s = { .id = "t-cancel", .argv = slow };
    struct kf_task_result res;
    struct kf_runner_event ev = { 0 };

    f->r = new_runner(f, NULL);
    task_ok(f->r, &m);
    res = wait_result(f->r, "t-missing");
    assert_false(res.succeeded);
    assert_int_equal(res.attempts, 0);
    assert_non_null(strstr(res.message, "not installed"));
    kf_task_result_release(&res);

    task_ok(f->r, &s);
    assert_true(
        t_wait(f->r, "t-cancel", t_is_phase, &(enum kf_proc_phase){ KF_PROC_RUNNING }, NULL, &ev));
    assert_int_equal(kf_runner_task_cancel(f->r, "t-cancel"), 0);
    res = wait_result(f->r, "t-cancel");
    assert_true(res.cancelled);
    assert_false(res.succeeded);
    assert_false(t_pid_alive(ev.status.pid));
    kf_task_result_release(&res);
}

static void test_task_result_once(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "/bin/sh", "-c", "echo result-text; exit 7", NULL };
    struct kf_task_spec spec = { .id = "t-once", .argv = argv };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_task_result res, *list;
    int n;

    f->r = new_runner(f, NULL);
    task_ok(f->r, &spec);
    res = wait_result(f->r, "t-once");
    assert_int_equal(res.exit.code, 7);
    kf_task_result_release(&res);
    /* Starting it again while its result is pending would run it twice. */
    assert_int_equal(kf_runner_task_start(f->r, &spec, &err), -EEXIST);

    /* Not acknowledged: it survives agent restarts, with the same content. */
    for (int round = 0; round < 2; round++) {
        kf_runner_free(f->r);
        f->r = new_runner(f, NULL);
        n = kf_runner_task_results(f->r, &list);
        assert_int_equal(n, 1);
        assert_string_equal(list[0].id, "t-once");
        assert_int_equal(list[0].exit.code, 7);
        assert_false(list[0].succeeded);
        assert_string_equal(list[0].output, "result-text\n");
        kf_task_results_free(list, (size_t)n);
    }
    /* Acknowledged: gone for good. */
    assert_int_equal(kf_runner_task_ack(f->r, "t-once"), 0);
    kf_runner_free(f->r);
    f->r = new_runner(f, NULL);
    n = kf_runner_task_results(f->r, &list);
    assert_int_equal(n, 0);
    kf_task_results_free(list, (size_t)n);
    kf_strbuf_release(&err);
}

static void test_task_across_agent_restart(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "/bin/sh", "-c", "echo before; sleep 0.4; echo after; exit 4", NULL };
    struct kf_task_spec spec = { .id = "t-restart", .argv = argv };
    struct kf_runner_event ev;
    struct kf_task_result res;

    f->r = new_runner(f, NULL);
    task_ok(f->r, &spec);
    assert_true(
        t_wait(f->r, "t-restart", t_is_phase, &(enum kf_proc_phase){ KF_PROC_RUNNING }, NULL, &ev));
    usleep(100000);
    /* The agent restarts while the task runs; the task finishes meanwhile
     * or under the new runner: either way its exit code and all of its
     * output arrive, once. */
    kf_runner_free(f->r);
    f->r = new_runner(f, NULL);
    res = wait_result(f->r, "t-restart");
    assert_true(res.exit.valid);
    assert_int_equal(res.exit.code, 4);
    assert_string_equal(res.output, "before\nafter\n");
    assert_int_equal(res.attempts, 1);
    kf_task_result_release(&res);
}

/* --- the rest -------------------------------------------------------------------------------- */

static void test_usage_and_cgroups(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "sleep", "1000", NULL };
    char *workdir = kf_xasprintf("%s/data/usage", f->dir);
    struct kf_proc_spec spec = { .name = "usage",
                                 .argv = argv,
                                 .workdir = workdir,
                                 .cpu_millis = 500,
                                 .memory_bytes = 256 << 20 };
    struct kf_proc_usage u;
    const char *problem;

    f->r = new_runner(f, NULL);
    problem = kf_runner_cgroup_problem(f->r);
    apply_ok(f->r, &spec);
    wait_phase(f->r, "usage", KF_PROC_READY);
    /* Right after exec a process may not have a resident page yet. */
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(kf_runner_usage(f->r, "usage", &u), 0);
        if (u.rss_bytes > 0)
            break;
        usleep(10000);
    }
    assert_true(u.rss_bytes > 0);
    assert_true(u.cpu_seconds >= 0);
    if (problem) {
        /* This host cannot limit: the reason is there for the agent to
         * report, and the member runs anyway. */
        print_message("      %s\n", problem);
        assert_true(kf_str_has_prefix(problem, "cgroups unavailable: "));
        assert_false(u.from_cgroup);
    } else {
        assert_true(u.from_cgroup);
    }
    free(workdir);
}

static void test_cgroup_files(void **state)
{
    struct fx *f = *state;
    struct kf_strbuf why = KF_STRBUF_INIT;
    char *fake = kf_xasprintf("%s/cg", f->dir);
    char *ctl = kf_xasprintf("%s/cgroup.controllers", fake);
    char *cpu = kf_xasprintf("%s/m1/cpu.max", fake), *mem = kf_xasprintf("%s/m1/memory.max", fake);
    char *base = NULL, *text;
    int fd = -1;

    /* The writer's side of cgroups, on a directory that looks like one (the
     * kernel is not asked: check_fs false). */
    assert_int_equal(kf_mkdir_p(fake, 0755), 0);
    t_write_file(ctl, "hugetlb\n");
    assert_true(kf_runner_cgroup_setup(fake, false, &base, &why) < 0);
    assert_non_null(strstr(why.buf, "does not offer the cpu and memory"));
    t_write_file(ctl, "cpuset cpu io memory pids\n");
    assert_int_equal(kf_runner_cgroup_setup(fake, false, &base, &why), 0);
    assert_string_equal(base, fake);
    assert_int_equal(kf_runner_cgroup_member(base, "m1", 500, 256 << 20, &fd, &why), 0);
    assert_true(fd >= 0);
    close(fd);
    text = t_read_file(cpu);
    assert_string_equal(text, "50000 100000");
    free(text);
    text = t_read_file(mem);
    assert_string_equal(text, "268435456");
    free(text);
    /* A real cgroup2 check refuses a plain directory. */
    free(base);
    base = NULL;
    assert_true(kf_runner_cgroup_setup(fake, true, &base, &why) < 0);
    assert_non_null(strstr(why.buf, "not on a cgroup2"));
    kf_strbuf_release(&why);
    free(fake);
    free(ctl);
    free(cpu);
    free(mem);
}

static void test_event_fd(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "sleep", "1000", NULL };
    char *workdir = kf_xasprintf("%s/data/evfd", f->dir);
    struct kf_proc_spec spec = { .name = "evfd", .argv = argv, .workdir = workdir };
    struct kf_runner_event ev;
    struct pollfd pfd;

    f->r = new_runner(f, NULL);
    pfd.fd = kf_runner_event_fd(f->r);
    pfd.events = POLLIN;
    assert_true(pfd.fd >= 0);
    assert_int_equal(poll(&pfd, 1, 0), 0);
    assert_int_equal(kf_runner_sim_fail(f->r, "evfd", 1), -EOPNOTSUPP);
    apply_ok(f->r, &spec);
    assert_int_equal(poll(&pfd, 1, T_WAIT_MS), 1);
    while (kf_runner_next_event(f->r, 0, &ev) == 1)
        ;
    /* Drained with the queue. */
    assert_int_equal(poll(&pfd, 1, 0), 0);
    free(workdir);
}

/* --- the simulated runner ----------------------------------------------------------------------- */

/* kf_runner_signal: the main process gets the signal, its group does not;
 * only a running member of this runner can be signalled. */
static void test_signal(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { self_exe, "helper", "usr2", NULL };
    char *workdir = kf_xasprintf("%s/data/sig", f->dir);
    char *child_file = kf_xasprintf("%s/child.pid", workdir);
    char *usr2_file = kf_xasprintf("%s/usr2", workdir);
    struct kf_proc_spec spec = {
        .name = "sig", .argv = argv, .env = helper_env, .workdir = workdir
    };
    struct kf_runner_event ev;
    char *text = NULL;
    int child = 0;

    f->r = new_runner(f, NULL);
    apply_ok(f->r, &spec);
    ev = wait_phase(f->r, "sig", KF_PROC_READY);
    for (int i = 0; i < 2000 && !(text = t_read_file(child_file)); i++)
        usleep(10 * 1000);
    assert_non_null(text);
    child = (int)strtol(text, NULL, 10);
    free(text);
    assert_true(child > 0 && t_pid_alive(child));

    assert_int_equal(kf_runner_signal(f->r, "sig", SIGUSR2), 0);
    text = NULL;
    for (int i = 0; i < 2000 && !(text = t_read_file(usr2_file)); i++)
        usleep(10 * 1000);
    assert_non_null(text);
    assert_string_equal(text, "1\n");
    free(text);
    /* not the group: the child, which SIGUSR2 would have killed, lives */
    assert_true(t_pid_alive(child));
    assert_int_equal(kf_runner_get(f->r, "sig", &ev.status), 0);
    assert_int_equal(ev.status.phase, KF_PROC_READY);

    assert_int_equal(kf_runner_signal(f->r, "nobody", SIGUSR2), -ENOENT);
    assert_int_equal(kf_runner_signal(f->r, "sig", 0), -EINVAL);
    assert_int_equal(kf_runner_stop(f->r, "sig"), 0);
    wait_phase(f->r, "sig", KF_PROC_STOPPED);
    assert_int_equal(kf_runner_signal(f->r, "sig", SIGUSR2), -ESRCH);
    free(usr2_file);
    free(child_file);
    free(workdir);
}

static void test_sim_runner(void **state)
{
    struct fx *f = *state;
    const char *argv[] = { "/usr/bin/etcd", "--name", "x", NULL };
    const char *apiserver[] = { "kube-apiserver", NULL };
    const char *missing[] = { "kube-apiserver", NULL };
    struct kf_runner_config cfg;
    struct kf_proc_spec spec = { .name = "etcd-0", .argv = argv, .workdir = "/nonexistent/sim" };
    struct kf_proc_spec spec2 = { .name = "api-0", .argv = apiserver, .workdir = "/nonexistent" };
    struct kf_task_spec task = { .id = "sim-task", .argv = argv };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_runner *r;
    struct kf_runner_event ev;
    struct kf_task_result *res;
    int children = t_count_children(), zero = 0, n;

    (void)f;
    memset(&cfg, 0, sizeof(cfg));
    cfg.backoff_initial_ms = 10;
    cfg.backoff_max_ms = 40;
    cfg.sim_ready_delay_ms = 30;
    cfg.sim_task_duration_ms = 20;
    cfg.sim_task_exit_code = 3;
    cfg.sim_missing_binaries = missing;
    assert_int_equal(kf_runner_new("sim", &cfg, &r, &err), 0);
    t_reset_backlog();
    assert_int_equal(kf_runner_event_fd(r), -EOPNOTSUPP);
    assert_non_null(kf_runner_cgroup_problem(r));
    apply_ok(r, &spec);
    apply_ok(r, &spec2);
    assert_int_equal(kf_runner_signal(r, "etcd-0", SIGUSR2), -EOPNOTSUPP);
    ev = wait_phase(r, "etcd-0", KF_PROC_STARTING);
    assert_false(ev.status.ready);
    ev = wait_phase(r, "etcd-0", KF_PROC_READY);
    assert_true(ev.status.pid > 4194304); /* never a real pid */
    assert_int_equal(kill(ev.status.pid, 0), -1);
    assert_int_equal(kf_runner_get(r, "api-0", &ev.status), 0);
    assert_int_equal(ev.status.phase, KF_PROC_BINARY_NOT_INSTALLED);
    assert_non_null(strstr(ev.status.message, "kube-apiserver"));

    /* Told to fail: back-off and a restart, as a real one. */
    assert_int_equal(kf_runner_sim_fail(r, "etcd-0", 2), 0);
    assert_true(t_wait(r, "etcd-0", is_backoff, &zero, NULL, &ev));
    assert_int_equal(ev.status.last_exit.code, 2);
    assert_int_equal(ev.status.backoff_ms, 10);
    ev = wait_phase(r, "etcd-0", KF_PROC_READY);
    assert_int_equal(ev.status.restarts, 1);
    /* Readiness can be flipped. */
    assert_int_equal(kf_runner_sim_set_ready(r, "etcd-0", false), 0);
    ev = wait_phase(r, "etcd-0", KF_PROC_RUNNING);
    assert_false(ev.status.ready);
    assert_int_equal(kf_runner_sim_set_ready(r, "etcd-0", true), 0);
    wait_phase(r, "etcd-0", KF_PROC_READY);

    task_ok(r, &task);
    assert_true(t_wait(r, "sim-task", t_is_done, NULL, NULL, &ev));
    n = kf_runner_task_results(r, &res);
    assert_int_equal(n, 1);
    assert_int_equal(res[0].exit.code, 3);
    assert_false(res[0].succeeded);
    assert_non_null(strstr(res[0].output, "simulated: /usr/bin/etcd"));
    kf_task_results_free(res, (size_t)n);

    assert_int_equal(kf_runner_stop_all(r, 5000), 0);
    assert_int_equal(kf_runner_get(r, "etcd-0", &ev.status), 0);
    assert_int_equal(ev.status.phase, KF_PROC_STOPPED);
    kf_runner_free(r);
    /* No fork ever happened. */
    assert_int_equal(t_count_children(), children);
    kf_strbuf_release(&err);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_specs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_capture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_not_installed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_http_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_flapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_liveness_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_tcp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_escalates_to_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adoption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adoption_of_dead_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pid_reuse_is_not_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_output_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_restart_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_missing_binary_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_result_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_across_agent_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_and_cgroups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cgroup_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sim_runner, setup, teardown),
    };
    ssize_t n;

    if (argc > 1 && !strcmp(argv[1], "helper"))
        return helper_main(argc, argv);
    n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0)
        return 1;
    self_exe[n] = '\0';
    if (getenv("KF_TEST_FILTER"))
        cmocka_set_test_filter(getenv("KF_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
