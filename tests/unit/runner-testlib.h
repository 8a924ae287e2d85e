/* runner-testlib.h: helpers shared by the runner, etcd and PKI tests
 * (header-only: each test is one executable).
 *
 * Temporary directories that are removed again, loopback ports
 * (test-ports.h), running a command and capturing its output (posix_spawn,
 * no shell), and waiting for runner events with a generous limit that only guards against
 * hangs (the tests assert states, never timings).
 */
#ifndef KF_RUNNER_TESTLIB_H
#define KF_RUNNER_TESTLIB_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/runner.h"
#include "kfleet/strbuf.h"
#include "test-ports.h"

extern char **environ;

#define T_WAIT_MS 20000 /* only a guard against a hang */

static inline char *t_mkdtemp(void)
{
    char tmpl[] = "/tmp/kf-test-XXXXXX";
    char *d = mkdtemp(tmpl);

    if (!d)
        kf_abort("mkdtemp: %s", strerror(errno));
    return kf_xstrdup(d);
}

static inline void t_rm_rf(const char *dir)
{
    if (dir)
        kf_remove_tree(dir);
}

static inline char *t_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[4096];
    size_t n;

    if (!f)
        return NULL;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        kf_strbuf_add(&sb, buf, n);
    fclose(f);
    return kf_strbuf_detach(&sb, NULL);
}

static inline void t_write_file(const char *path, const char *text)
{
    char *tmp = kf_xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");

    if (!f)
        kf_abort("write %s: %s", tmp, strerror(errno));
    fputs(text, f);
    fclose(f);
    rename(tmp, path);
    free(tmp);
}

/* Runs argv (no shell), returns its exit code (-1: signal) and its stdout
 * and stderr in *out when out is not NULL. */
static inline int t_run(const char *const *argv, char **out)
{
    posix_spawn_file_actions_t fa;
    int pfd[2], st = 0;
    pid_t pid;
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[4096];
    ssize_t n;

    if (pipe(pfd) < 0)
        kf_abort("pipe");
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0)
        kf_abort("spawn %s", argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    while ((n = read(pfd[0], buf, sizeof(buf))) > 0)
        kf_strbuf_add(&sb, buf, (size_t)n);
    close(pfd[0]);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (out)
        *out = kf_strbuf_detach(&sb, NULL);
    kf_strbuf_release(&sb);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline bool t_pid_alive(int pid)
{
    char path[64], buf[512];
    FILE *f;
    char *rp;

    if (pid <= 0)
        return false;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return false;
    if (!fgets(buf, sizeof(buf), f)) {
        fclose(f);
        return false;
    }
    fclose(f);
    rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* Processes whose parent is this process (keepers not reaped would show). */
static inline int t_count_children(void)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0, me = getpid();

    while (d && (de = readdir(d))) {
        char path[300], buf[512], *rp;
        FILE *f;
        int ppid;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
            sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == me)
            n++;
        fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

/* The safety net behind a test's own cleanup: kills (SIGKILL, by pid)
 * every process whose working directory is under `dir` (members run in
 * their data directories) and returns how many there were. */
static inline int t_kill_leftovers(const char *dir)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    size_t dl = strlen(dir);
    int n = 0;

    while (d && (de = readdir(d))) {
        char path[300], cwd[4096];
        ssize_t len;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cwd", de->d_name);
        len = readlink(path, cwd, sizeof(cwd) - 1);
        if (len <= 0)
            continue;
        cwd[len] = '\0';
        if (!strncmp(cwd, dir, dl) && (cwd[dl] == '/' || cwd[dl] == '\0')) {
            kill((pid_t)strtol(de->d_name, NULL, 10), SIGKILL);
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* Waits for an event about `name` that satisfies `pred`; every event seen
 * is appended to `seen` when given. Returns true with *ret set. */
typedef bool (*t_pred_fn)(const struct kf_runner_event *ev, const void *arg);

struct t_events {
    struct kf_runner_event *v;
    size_t n, alloc;
};

/* Events about other names seen while waiting for one name are kept here
 * for the next wait (of the same runner). */
static struct t_events t_backlog;
static struct kf_runner *t_backlog_runner;

/* A new runner may reuse an old one's address: forget the old events. */
static inline void t_reset_backlog(void)
{
    t_backlog.n = 0;
    t_backlog_runner = NULL;
}

static inline bool t_next(struct kf_runner *r, const char *name, int64_t end,
                          struct kf_runner_event *ret)
{
    if (t_backlog_runner != r) {
        t_backlog.n = 0;
        t_backlog_runner = r;
    }
    for (size_t i = 0; i < t_backlog.n; i++)
        if (!name || !strcmp(t_backlog.v[i].status.name, name)) {
            *ret = t_backlog.v[i];
            memmove(&t_backlog.v[i], &t_backlog.v[i + 1],
                    (t_backlog.n - i - 1) * sizeof(*t_backlog.v));
            t_backlog.n--;
            return true;
        }
    for (;;) {
        int64_t now = (int64_t)(kf_mono_ns() / 1000000);
        if (now >= end)
            return false;
        if (kf_runner_next_event(r, (int)(end - now), ret) != 1)
            continue;
        if (!name || !strcmp(ret->status.name, name))
            return true;
        KF_GROW(t_backlog.v, t_backlog.alloc, t_backlog.n + 1);
        t_backlog.v[t_backlog.n++] = *ret;
    }
}

static inline bool t_wait(struct kf_runner *r, const char *name, t_pred_fn pred, const void *arg,
                          struct t_events *seen, struct kf_runner_event *ret)
{
    int64_t end = (int64_t)(kf_mono_ns() / 1000000) + T_WAIT_MS;

    for (;;) {
        struct kf_runner_event ev;
        if (!t_next(r, name, end, &ev))
            return false;
        if (seen) {
            KF_GROW(seen->v, seen->alloc, seen->n + 1);
            seen->v[seen->n++] = ev;
        }
        if (pred(&ev, arg)) {
            if (ret)
                *ret = ev;
            return true;
        }
    }
}

static inline bool t_is_phase(const struct kf_runner_event *ev, const void *arg)
{
    return ev->type == KF_RUNNER_EV_STATUS && ev->status.phase == *(const enum kf_proc_phase *)arg;
}

static inline bool t_is_done(const struct kf_runner_event *ev, const void *arg)
{
    (void)arg;
    return ev->type == KF_RUNNER_EV_TASK_DONE;
}

static inline bool t_wait_phase(struct kf_runner *r, const char *name, enum kf_proc_phase ph,
                                struct kf_runner_event *ret)
{
    return t_wait(r, name, t_is_phase, &ph, NULL, ret);
}

/* Polls a condition on a file (the log catching up), up to T_WAIT_MS. */
static inline bool t_file_contains(const char *path, const char *needle)
{
    int64_t end = (int64_t)(kf_mono_ns() / 1000000) + T_WAIT_MS;

    while ((int64_t)(kf_mono_ns() / 1000000) < end) {
        char *text = t_read_file(path);
        bool ok = text && strstr(text, needle);
        free(text);
        if (ok)
            return true;
        usleep(20000);
    }
    return false;
}

#endif
