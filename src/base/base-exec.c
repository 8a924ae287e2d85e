/* base-exec.c: kf_exec_capture (exec.h), a tool run to its end or its
 * deadline with its output read into a capped buffer. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/exec.h"
#include "kfleet/strbuf.h"

/* In the child between fork and exec: async-signal-safe calls only (the
 * callers have threads). */
static void exec_child(char *const argv[], char *const envp[], int devnull, int outfd,
                       bool with_stderr)
{
    sigset_t none;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDERR_FILENO);
    }
    dup2(outfd, STDOUT_FILENO);
    if (with_stderr)
        dup2(outfd, STDERR_FILENO);
    execve(argv[0], argv, envp);
    _exit(127);
}

/* Reads the child's output until it closes it or the deadline passes (then
 * the child is killed). */
static void read_output(int fd, pid_t pid, int64_t deadline, size_t cap, struct kf_strbuf *out)
{
    char buf[4096];

    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int64_t left = deadline - kf_mono_ms();
        ssize_t n;
        int ready;

        if (left <= 0) {
            kill(pid, SIGKILL);
            return;
        }
        ready = poll(&pfd, 1, (int)KF_MIN(left, 60000));
        if (ready < 0 && errno != EINTR) {
            kill(pid, SIGKILL);
            return;
        }
        if (ready <= 0)
            continue; /* nothing to read yet: a read now would block past the deadline */
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return;
        if (out->len < cap)
            kf_strbuf_add(out, buf, KF_MIN((size_t)n, cap - out->len));
    }
}

int kf_exec_capture(char *const argv[], const struct kf_exec_opts *opts, struct kf_strbuf *out)
{
    static char *const empty_env[] = { NULL };
    int64_t deadline = kf_mono_ms() + (opts->timeout_ms > 0 ? opts->timeout_ms : 1);
    int pipefd[2], devnull, status;
    pid_t pid;

    if (access(argv[0], X_OK) < 0)
        return -errno;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    pid = fork();
    if (pid == 0)
        exec_child(argv, opts->envp ? opts->envp : empty_env, devnull, pipefd[1],
                   opts->with_stderr);
    close(pipefd[1]);
    if (devnull >= 0)
        close(devnull);
    if (pid < 0) {
        int r = -errno;

        close(pipefd[0]);
        return r;
    }
    read_output(pipefd[0], pid, deadline, opts->output_max, out);
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
