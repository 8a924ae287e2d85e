/* etcd-harness.h: starts real etcd servers for tests, on free loopback
 * ports in a temporary directory, and stops them by PID.
 *
 *     struct etcd_harness h;
 *     if (etcd_harness_start(&h, 3, NULL) < 0) ...   // a 3-member cluster
 *     kf_store_open(h.url, ...)                       // "etcd:http://..,http://.."
 *     etcd_harness_kill(&h, 0);                       // SIGKILL member 0
 *     etcd_harness_stop(&h);                          // every member, and the directory
 *
 * Members die with the test process (PR_SET_PDEATHSIG), so a crashed test
 * leaves nothing behind. Timings are tuned for tests on loopback (25 ms
 * heartbeats, 250 ms elections). With opts->tls the members serve https
 * with certificates made by the openssl CLI and require client certs.
 *
 * Header-only (static functions) so that any test-*.c can include it.
 * etcd_harness_available() is false when /usr/bin/etcd is missing; tests
 * then skip with a message (scripts/install-deps installs it).
 */
#ifndef KF_TEST_ETCD_HARNESS_H
#define KF_TEST_ETCD_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <curl/curl.h>

#include "test-ports.h"

#define ETCD_HARNESS_BIN "/usr/bin/etcd"
#define ETCD_HARNESS_MAX 5

struct etcd_harness_opts {
    bool tls; /* https with client certificates */
};

struct etcd_harness {
    int n;
    char dir[256];
    pid_t pid[ETCD_HARNESS_MAX];
    int client_port[ETCD_HARNESS_MAX], peer_port[ETCD_HARNESS_MAX];
    char endpoint[ETCD_HARNESS_MAX][64];   /* "http://127.0.0.1:PORT" */
    char endpoints[ETCD_HARNESS_MAX * 64]; /* all, comma-separated */
    char url[4096];                        /* "etcd:" + endpoints (+ TLS options) */
    bool tls;
    char cacert[300], cert[300], key[300]; /* client side, when tls */
    char initial_cluster[1024];
};

static inline bool etcd_harness_available(void)
{
    return access(ETCD_HARNESS_BIN, X_OK) == 0;
}

/* Runs argv (no shell) with output to log; returns its exit status. */
static inline int etcd_harness_run(char *const argv[], const char *log)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) < 0)
        return -errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* A CA, a server certificate for 127.0.0.1 and a client certificate. */
static inline int etcd_harness_make_certs(struct etcd_harness *h)
{
    char ca_key[300], ca[300], srv_key[300], srv_csr[300], srv[300], cli_csr[300], ext[300],
        log[300];
    FILE *f;

    snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", h->dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", h->dir);
    snprintf(srv_key, sizeof(srv_key), "%s/server-key.pem", h->dir);
    snprintf(srv_csr, sizeof(srv_csr), "%s/server.csr", h->dir);
    snprintf(srv, sizeof(srv), "%s/server.pem", h->dir);
    snprintf(cli_csr, sizeof(cli_csr), "%s/client.csr", h->dir);
    snprintf(ext, sizeof(ext), "%s/server.ext", h->dir);
    snprintf(log, sizeof(log), "%s/openssl.log", h->dir);
    snprintf(h->cacert, sizeof(h->cacert), "%s", ca);
    snprintf(h->cert, sizeof(h->cert), "%s/client.pem", h->dir);
    snprintf(h->key, sizeof(h->key), "%s/client-key.pem", h->dir);
    f = fopen(ext, "w");
    if (!f)
        return -errno;
    fprintf(f, "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
               "extendedKeyUsage=serverAuth,clientAuth\n");
    fclose(f);
    {
        char *const a1[] = { "openssl",
                             "req",
                             "-x509",
                             "-newkey",
                             "ec",
                             "-pkeyopt",
                             "ec_paramgen_curve:prime256v1",
                             "-nodes",
                             "-keyout",
                             ca_key,
                             "-out",
                             ca,
                             "-days",
                             "2",
                             "-subj",
                             "/CN=kfleet-test-ca",
                             NULL };
        char *const a2[] = { "openssl",         "req",
                             "-newkey",         "ec",
                             "-pkeyopt",        "ec_paramgen_curve:prime256v1",
                             "-nodes",          "-keyout",
                             srv_key,           "-out",
                             srv_csr,           "-subj",
                             "/CN=etcd-server", NULL };
        char *const a3[] = { "openssl", "x509", "-req",   "-in",  srv_csr,
                             "-CA",     ca,     "-CAkey", ca_key, "-CAcreateserial",
                             "-out",    srv,    "-days",  "2",    "-extfile",
                             ext,       NULL };
        char *const a4[] = { "openssl",    "req",      "-newkey",
                             "ec",         "-pkeyopt", "ec_paramgen_curve:prime256v1",
                             "-nodes",     "-keyout",  h->key,
                             "-out",       cli_csr,    "-subj",
                             "/CN=kfleet", NULL };
        char *const a5[] = { "openssl", "x509",  "-req",   "-in",  cli_csr,
                             "-CA",     ca,      "-CAkey", ca_key, "-CAcreateserial",
                             "-out",    h->cert, "-days",  "2",    "-extfile",
                             ext,       NULL };
        char *const *all[] = { a1, a2, a3, a4, a5 };

        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            if (etcd_harness_run(all[i], log) != 0)
                return -EIO;
    }
    return 0;
}

static inline pid_t etcd_harness_spawn(struct etcd_harness *h, int i, bool existing)
{
    char name[16], data[300], log[300], listen_client[64], listen_peer[64];
    char srv[300], srv_key[300];
    pid_t pid;

    snprintf(name, sizeof(name), "m%d", i);
    snprintf(data, sizeof(data), "%s/%s.data", h->dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", h->dir, name);
    snprintf(listen_client, sizeof(listen_client), "%s", h->endpoint[i]);
    snprintf(listen_peer, sizeof(listen_peer), "http://127.0.0.1:%d", h->peer_port[i]);
    snprintf(srv, sizeof(srv), "%s/server.pem", h->dir);
    snprintf(srv_key, sizeof(srv_key), "%s/server-key.pem", h->dir);
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        char *argv[48];
        int k = 0, fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        argv[k++] = ETCD_HARNESS_BIN;
        argv[k++] = "--name";
        argv[k++] = name;
        argv[k++] = "--data-dir";
        argv[k++] = data;
        argv[k++] = "--listen-client-urls";
        argv[k++] = listen_client;
        argv[k++] = "--advertise-client-urls";
        argv[k++] = listen_client;
        argv[k++] = "--listen-peer-urls";
        argv[k++] = listen_peer;
        argv[k++] = "--initial-advertise-peer-urls";
        argv[k++] = listen_peer;
        argv[k++] = "--initial-cluster";
        argv[k++] = h->initial_cluster;
        argv[k++] = "--initial-cluster-state";
        argv[k++] = existing ? "existing" : "new";
        argv[k++] = "--heartbeat-interval";
        argv[k++] = "25";
        argv[k++] = "--election-timeout";
        argv[k++] = "250";
        argv[k++] = "--snapshot-count";
        argv[k++] = "5000";
        argv[k++] = "--logger";
        argv[k++] = "zap";
        argv[k++] = "--log-level";
        argv[k++] = "warn";
        if (h->tls) {
            argv[k++] = "--cert-file";
            argv[k++] = srv;
            argv[k++] = "--key-file";
            argv[k++] = srv_key;
            argv[k++] = "--trusted-ca-file";
            argv[k++] = h->cacert;
            argv[k++] = "--client-cert-auth";
        }
        argv[k] = NULL;
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* GET /health on member i until it says true or timeout_ms passes. */
static inline bool etcd_harness_healthy(struct etcd_harness *h, int i)
{
    CURL *c = curl_easy_init();
    char url[128];
    FILE *sink = fopen("/dev/null", "w");
    long code = 0;
    CURLcode cr;

    snprintf(url, sizeof(url), "%s/health", h->endpoint[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    if (h->tls) {
        curl_easy_setopt(c, CURLOPT_CAINFO, h->cacert);
        curl_easy_setopt(c, CURLOPT_SSLCERT, h->cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, h->key);
    }
    cr = curl_easy_perform(c);
    if (cr == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    fclose(sink);
    return cr == CURLE_OK && code == 200;
}

static inline int etcd_harness_wait(struct etcd_harness *h, int i, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        int status;

        if (h->pid[i] > 0 && waitpid(h->pid[i], &status, WNOHANG) == h->pid[i]) {
            h->pid[i] = 0;
            return -ECHILD;
        }
        if (etcd_harness_healthy(h, i))
            return 0;
        usleep(50 * 1000);
    }
    return -ETIMEDOUT;
}

static inline void etcd_harness_rmrf(const char *dir)
{
    char *const argv[] = { "rm", "-rf", (char *)dir, NULL };

    if (dir[0])
        etcd_harness_run(argv, "/dev/null");
}

/* SIGKILLs member i (if running) and reaps it. */
static inline void etcd_harness_kill(struct etcd_harness *h, int i)
{
    if (h->pid[i] > 0) {
        kill(h->pid[i], SIGKILL);
        waitpid(h->pid[i], NULL, 0);
        h->pid[i] = 0;
    }
}

/* Every member, then the directory. Safe to call twice. */
static inline void etcd_harness_stop(struct etcd_harness *h)
{
    for (int i = 0; i < h->n; i++)
        if (h->pid[i] > 0)
            kill(h->pid[i], SIGTERM);
    for (int i = 0; i < h->n; i++) {
        if (h->pid[i] <= 0)
            continue;
        for (int w = 0; w < 100; w++) {
            if (waitpid(h->pid[i], NULL, WNOHANG) == h->pid[i]) {
                h->pid[i] = 0;
                break;
            }
            usleep(20 * 1000);
        }
        etcd_harness_kill(h, i);
    }
    etcd_harness_rmrf(h->dir);
    h->dir[0] = '\0';
    h->n = 0;
}

/* Restarts member i (killed earlier) on its old ports and data. */
static inline int etcd_harness_restart(struct etcd_harness *h, int i)
{
    h->pid[i] = etcd_harness_spawn(h, i, true);
    if (h->pid[i] < 0)
        return -EIO;
    return etcd_harness_wait(h, i, 15000);
}

/* Starts n members (1..ETCD_HARNESS_MAX) and waits until all are healthy.
 * On failure everything started is stopped and the log of the first member
 * is printed. */
static inline int etcd_harness_start(struct etcd_harness *h, int n,
                                     const struct etcd_harness_opts *opts)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    size_t off = 0;

    memset(h, 0, sizeof(*h));
    if (n < 1 || n > ETCD_HARNESS_MAX)
        return -EINVAL;
    snprintf(h->dir, sizeof(h->dir), "%s/kf-etcd-XXXXXX", tmp);
    if (!mkdtemp(h->dir))
        return -errno;
    h->n = n;
    h->tls = opts && opts->tls;
    if (h->tls && etcd_harness_make_certs(h) < 0) {
        fprintf(stderr, "etcd harness: openssl failed (see %s/openssl.log)\n", h->dir);
        etcd_harness_stop(h);
        return -EIO;
    }
    for (int i = 0; i < n; i++) {
        h->client_port[i] = kf_test_port();
        h->peer_port[i] = kf_test_port();
        snprintf(h->endpoint[i], sizeof(h->endpoint[i]), "%s://127.0.0.1:%d",
                 h->tls ? "https" : "http", h->client_port[i]);
        off += (size_t)snprintf(h->initial_cluster + off, sizeof(h->initial_cluster) - off,
                                "%sm%d=http://127.0.0.1:%d", i ? "," : "", i, h->peer_port[i]);
    }
    off = 0;
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(h->endpoints + off, sizeof(h->endpoints) - off, "%s%s",
                                i ? "," : "", h->endpoint[i]);
    if (h->tls)
        snprintf(h->url, sizeof(h->url), "etcd:%s?cacert=%s&cert=%s&key=%s", h->endpoints,
                 h->cacert, h->cert, h->key);
    else
        snprintf(h->url, sizeof(h->url), "etcd:%s", h->endpoints);
    for (int i = 0; i < n; i++) {
        h->pid[i] = etcd_harness_spawn(h, i, false);
        if (h->pid[i] < 0) {
            etcd_harness_stop(h);
            return -EIO;
        }
    }
    for (int i = 0; i < n; i++) {
        int r = etcd_harness_wait(h, i, 20000);

        if (r < 0) {
            char log[300];
            char *const argv[] = { "tail", "-n", "30", log, NULL };

            snprintf(log, sizeof(log), "%s/m%d.log", h->dir, i);
            fprintf(stderr, "etcd harness: member %d did not become healthy (%s); its log:\n", i,
                    strerror(-r));
            etcd_harness_run(argv, "/dev/stderr");
            etcd_harness_stop(h);
            return r;
        }
    }
    return 0;
}

#endif
