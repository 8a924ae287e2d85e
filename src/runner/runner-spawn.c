/* runner-spawn.c: starting a process through a keeper, and the small /proc
 * and file helpers the real runner needs.
 *
 * Why a keeper. A member must survive its agent (the next agent adopts it),
 * but only a parent can read a child's exit status, and a restarted agent
 * is nobody's parent. So the agent forks a keeper, which starts a new
 * session, forks the real process into its own process group, waits for it
 * and writes its wait status to a file before exiting. Whoever supervises
 * later (this agent or the next one) watches the keeper with a pidfd and
 * reads the file. The keeper ignores SIGTERM/SIGINT/SIGHUP so that a
 * graceful stop of the member's group does not take it along.
 *
 * The keeper is a forked copy of a threaded program that never execs, so it
 * and the child before execve() make only async-signal-safe calls: no
 * malloc, no stdio, no locks. Everything they need (paths, argv, envp, fds)
 * is prepared before the first fork. The keeper forks with _Fork(), which
 * runs no atfork handlers. The child reports a failed exec (or chdir) to
 * the agent through a close-on-exec pipe, and the keeper reports the
 * child's pid through the same pipe.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kfleet/file.h"
#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "runner/runner-internal.h"

enum spawn_stage {
    STAGE_FORK = 1,
    STAGE_STDIO,
    STAGE_CHDIR,
    STAGE_EXEC,
};

/* One record on the report pipe; smaller than PIPE_BUF, so atomic. */
struct spawn_msg {
    char tag;  /* 'P': the child's pid; 'E': a failure */
    int value; /* pid or errno */
    int stage;
};

static const char *stage_name(int stage)
{
    switch (stage) {
    case STAGE_FORK:
        return "fork";
    case STAGE_STDIO:
        return "set up stdin/stdout";
    case STAGE_CHDIR:
        return "enter the working directory";
    case STAGE_EXEC:
        return "exec";
    default:
        return "start";
    }
}

/* --- async-signal-safe helpers for the keeper and the child ---------------------------------- */

static void as_write_msg(int fd, char tag, int value, int stage)
{
    struct spawn_msg m;

    memset(&m, 0, sizeof(m));
    m.tag = tag;
    m.value = value;
    m.stage = stage;
    while (write(fd, &m, sizeof(m)) < 0 && errno == EINTR)
        ;
}

/* Decimal of v into buf (no stdio: async-signal-safe); returns the length. */
static size_t as_fmt_i64(char *buf, int64_t v)
{
    char tmp[24];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    return len;
}

static void as_close_from(int lowfd)
{
    if (close_range((unsigned int)lowfd, ~0U, 0) == 0)
        return;
    for (int fd = lowfd; fd < 65536; fd++)
        close(fd);
}

/* Moves fd to a number >= 10 so that dup2() onto 0..3 cannot clobber it. */
static int as_lift(int fd)
{
    int n;

    if (fd >= 10)
        return fd;
    n = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    return n < 0 ? fd : n;
}

static KF_NORETURN void child_main(const struct kf_spawn_req *req, int report)
{
    struct sigaction dfl;
    sigset_t none;
    int nullfd, outfd;

    setpgid(0, 0);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &dfl, NULL); /* ignored signals would survive exec */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (req->cgroup_procs_fd >= 0) {
        /* "0" moves the writer itself; a failure leaves it unlimited. */
        (void)!write(req->cgroup_procs_fd, "0", 1);
    }
    report = as_lift(report);
    nullfd = as_lift(open("/dev/null", O_RDONLY | O_CLOEXEC));
    outfd = as_lift(open(req->fifo_path, O_RDWR | O_CLOEXEC));
    if (nullfd < 0 || outfd < 0 || dup2(nullfd, 0) < 0 || dup2(outfd, 1) < 0 ||
        dup2(outfd, 2) < 0) {
        as_write_msg(report, 'E', errno, STAGE_STDIO);
        _exit(127);
    }
    if (dup3(report, 3, O_CLOEXEC) < 0) {
        as_write_msg(report, 'E', errno, STAGE_STDIO);
        _exit(127);
    }
    as_close_from(4);
    if (chdir(req->workdir) < 0) {
        as_write_msg(3, 'E', errno, STAGE_CHDIR);
        _exit(127);
    }
    execve(req->path, req->argv, req->envp);
    as_write_msg(3, 'E', errno, STAGE_EXEC);
    _exit(127);
}

static KF_NORETURN void keeper_main(const struct kf_spawn_req *req, int report)
{
    struct sigaction ign, dfl;
    static const int ignored[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2 };
    sigset_t none;
    struct timespec ts;
    char line[96];
    size_t len = 0;
    int status = 0, fd;
    pid_t child;

    setsid();
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    for (size_t i = 0; i < KF_ARRAY_SIZE(ignored); i++)
        sigaction(ignored[i], &ign, NULL);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    child = _Fork();
    if (child == 0)
        child_main(req, report);
    if (child < 0) {
        as_write_msg(report, 'E', errno, STAGE_FORK);
        _exit(127);
    }
    setpgid(child, child); /* as the child does: whichever runs first wins the race */
    as_write_msg(report, 'P', child, 0);
    as_close_from(3);
    /* stdin/stdout/stderr of the agent are not the keeper's business. */
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    (void)!chdir("/");
    prctl(PR_SET_NAME, "kf-keeper", 0, 0, 0);

    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            _exit(126);
        }
    }
    /* Whatever the member left in its group goes with it. */
    kill(-child, SIGKILL);

    clock_gettime(CLOCK_REALTIME, &ts);
    memcpy(line, "kfleet-exit 1 ", 14);
    len = 14;
    len += as_fmt_i64(line + len, status);
    line[len++] = ' ';
    len += as_fmt_i64(line + len, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    line[len++] = '\n';
    fd = open(req->exit_tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, line, len) == (ssize_t)len && fsync(fd) == 0) {
            close(fd);
            rename(req->exit_tmp_path, req->exit_path);
        } else {
            close(fd);
        }
    }
    _exit(0);
}

int kf_runner_spawn(const struct kf_spawn_req *req, struct kf_spawn_res *ret, struct kf_strbuf *err)
{
    struct spawn_msg m;
    int pfd[2];
    pid_t keeper;
    int child = 0, fail_errno = 0, fail_stage = 0;
    ssize_t n;

    if (pipe2(pfd, O_CLOEXEC) < 0)
        return kf_err(err, -errno, "pipe: %s", strerror(errno));
    keeper = fork();
    if (keeper < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        return kf_err(err, -e, "fork: %s", strerror(e));
    }
    if (keeper == 0)
        keeper_main(req, pfd[1]);
    close(pfd[1]);

    /* Until EOF: the keeper closes its end after 'P', the child's end closes
     * on exec (or after 'E'). */
    for (;;) {
        n = read(pfd[0], &m, sizeof(m));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(m))
            break;
        if (m.tag == 'P')
            child = m.value;
        else if (m.tag == 'E' && !fail_errno) {
            fail_errno = m.value ? m.value : EIO;
            fail_stage = m.stage;
        }
    }
    close(pfd[0]);

    if (fail_errno || child <= 0) {
        int st;
        while (waitpid(keeper, &st, 0) < 0 && errno == EINTR)
            ;
        unlink(req->exit_path);
        if (!fail_errno)
            fail_errno = EIO;
        if (fail_stage == STAGE_EXEC && fail_errno == ENOENT)
            return kf_err(err, -ENOENT, "binary \"%s\" is not installed (exec: %s)", req->path,
                          strerror(fail_errno));
        return kf_err(err, fail_errno == ENOENT ? -EIO : -fail_errno, "cannot %s \"%s\": %s",
                      stage_name(fail_stage), fail_stage == STAGE_CHDIR ? req->workdir : req->path,
                      strerror(fail_errno));
    }
    ret->keeper_pid = keeper;
    ret->pid = child;
    return 0;
}

/* --- /proc -------------------------------------------------------------------------------- */

/* The fields after "(comm)" of /proc/PID/stat; comm may hold spaces and
 * parentheses, so the last ')' ends it. */
static int read_stat_fields(int pid, char *buf, size_t size, char **ret_after)
{
    char path[64];
    ssize_t n;
    char *rp;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -ESRCH;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return -ESRCH;
    buf[n] = '\0';
    rp = strrchr(buf, ')');
    if (!rp || rp[1] != ' ')
        return -EINVAL;
    *ret_after = rp + 2;
    return 0;
}

int kf_runner_proc_identity(int pid, uint64_t *ret, bool *ret_zombie)
{
    char buf[1024], *after, *save = NULL, *tok;
    int field = 3, rc;

    if (pid <= 0)
        return -ESRCH;
    rc = read_stat_fields(pid, buf, sizeof(buf), &after);
    if (rc < 0)
        return rc;
    /* after starts at field 3 (state). */
    *ret_zombie = after[0] == 'Z' || after[0] == 'X';
    for (tok = strtok_r(after, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
        if (field == 22) {
            uint64_t v;
            if (kf_parse_uint64(tok, &v) < 0)
                return -EINVAL;
            *ret = v;
            return 0;
        }
    }
    return -EINVAL;
}

int kf_runner_proc_start_time(int pid, uint64_t *ret)
{
    uint64_t start;
    bool zombie;
    int rc = kf_runner_proc_identity(pid, &start, &zombie);

    if (rc < 0)
        return rc;
    if (zombie)
        return -ESRCH;
    *ret = start;
    return 0;
}

int kf_runner_proc_usage(int pid, double *ret_cpu, uint64_t *ret_rss)
{
    char buf[1024], *after, *save = NULL, *tok;
    uint64_t utime = 0, stime = 0, rss_pages = 0;
    int field = 3, rc;
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

    rc = read_stat_fields(pid, buf, sizeof(buf), &after);
    if (rc < 0)
        return rc;
    for (tok = strtok_r(after, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
        if (field == 14)
            kf_parse_uint64(tok, &utime);
        else if (field == 15)
            kf_parse_uint64(tok, &stime);
        else if (field == 24) {
            kf_parse_uint64(tok, &rss_pages);
            break;
        }
    }
    if (field != 24)
        return -EINVAL;
    *ret_cpu = (double)(utime + stime) / (double)(tck > 0 ? tck : 100);
    *ret_rss = rss_pages * (uint64_t)(page > 0 ? page : 4096);
    return 0;
}

/* --- binaries, files ---------------------------------------------------------------------- */

static bool is_exec_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int kf_runner_resolve_binary(const char *argv0, const char *search_path, char **ret,
                             struct kf_strbuf *err)
{
    char *copy, *save = NULL, *dir;

    if (argv0[0] == '/') {
        if (!is_exec_file(argv0))
            return kf_err(err, -ENOENT, "binary \"%s\" is not installed", argv0);
        *ret = kf_xstrdup(argv0);
        return 0;
    }
    if (strchr(argv0, '/'))
        return kf_err(err, -EINVAL, "binary \"%s\": a relative path is not allowed", argv0);
    copy = kf_xstrdup(search_path);
    for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char *cand;
        if (dir[0] != '/')
            continue;
        cand = kf_xasprintf("%s/%s", dir, argv0);
        if (is_exec_file(cand)) {
            free(copy);
            *ret = cand;
            return 0;
        }
        free(cand);
    }
    free(copy);
    return kf_err(err, -ENOENT, "binary \"%s\" is not installed (searched %s)", argv0, search_path);
}

int kf_runner_read_exit_file(const char *path, struct kf_proc_exit *ret)
{
    char *text = NULL, *save = NULL, *tok[4] = { 0 };
    size_t len;
    int64_t st, ms;
    int rc, n = 0;

    rc = kf_read_file(path, 256, &text, &len);
    if (rc < 0)
        return rc;
    for (char *t = strtok_r(text, " \n", &save); t && n < 4; t = strtok_r(NULL, " \n", &save))
        tok[n++] = t;
    if (n != 4 || strcmp(tok[0], "kfleet-exit") || strcmp(tok[1], "1") ||
        kf_parse_int64(tok[2], &st) < 0 || kf_parse_int64(tok[3], &ms) < 0 || st < 0 ||
        st > INT_MAX) {
        free(text);
        return -EINVAL;
    }
    free(text);
    memset(ret, 0, sizeof(*ret));
    ret->valid = true;
    if (WIFSIGNALED((int)st)) {
        ret->signaled = true;
        ret->signal = WTERMSIG((int)st);
    } else {
        ret->code = WEXITSTATUS((int)st);
    }
    ret->time_ms = ms;
    return 0;
}
