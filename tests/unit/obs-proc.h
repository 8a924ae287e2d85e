/* obs-proc.h: what the observability tests that run real processes share:
 * free loopback ports, starting a binary from an argv with its output in a
 * log file, stopping it by PID (SIGTERM, then SIGKILL) and reaping it, and
 * a small HTTP client over libcurl. Included by tests only. */
#ifndef KF_TEST_OBS_PROC_H
#define KF_TEST_OBS_PROC_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"
#include "test-ports.h"

extern char **environ;

/* Starts argv with stdout and stderr appended to log; returns the PID or -1. */
static inline pid_t spawn_logged(char *const *argv, const char *log)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int r;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return r == 0 ? pid : -1;
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* SIGTERM, up to 5 s for it to exit, then SIGKILL; always reaps. */
static inline void stop_pid(pid_t pid)
{
    int status;

    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return;
        sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

static inline size_t http_sink(char *p, size_t size, size_t n, void *data)
{
    struct kf_strbuf *sb = data;

    if (kf_strbuf_add(sb, p, size * n) < 0)
        return 0;
    return size * n;
}

/* GET (body NULL) or POST url; returns the HTTP status (0 if no answer),
 * the body in out (capped at 4 MiB). */
static inline long http_request(const char *url, const char *body, struct kf_strbuf *out)
{
    CURL *c = curl_easy_init();
    long code = 0;

    kf_strbuf_reset(out);
    out->cap = 4u << 20;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

#endif
