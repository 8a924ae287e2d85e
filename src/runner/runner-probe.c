/* runner-probe.c: HTTP(S) and TCP health probes with libcurl.
 *
 * The prober owns one thread that drives a curl multi handle, so a slow or
 * hanging probe (bounded by its timeout) never delays another one or the
 * runner's supervisor. The runner submits a probe with a tag; the result
 * comes back through a callback on the prober's thread. An HTTP probe is
 * healthy on status 200..399; a TCP probe (CURLOPT_CONNECT_ONLY) when the
 * connection opens. HTTPS verifies the server against the probe's CA and
 * can present a client certificate (etcd with --client-cert-auth).
 * Proxies from the environment are ignored: probes go to the member.
 *
 * The prober's probes keep their connection between runs (the multi
 * handle's connection cache): a TLS handshake per probe each second cost
 * the agent and the member more CPU than everything else they did at rest
 * (docs/BENCHMARKS.md, "What a control plane costs"). A member that
 * restarts closes its side, and curl opens a new connection. Probes
 * speak HTTP/1.1 (see setup_easy). One-off
 * checks (kf_probe_check) open and close their own.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"
#include "kfleet/http.h"
#include "kfleet/strbuf.h"
#include "runner/runner-internal.h"

struct probe_job {
    struct probe_job *next;
    CURL *easy;
    uint64_t tag;
    bool tcp;
    struct kf_probe spec; /* strings not owned: copied into curl by setopt */
    char *strs[5];        /* owned copies until setup */
    char errbuf[CURL_ERROR_SIZE];
};

struct kf_prober {
    pthread_t thread;
    pthread_mutex_t lock;
    CURLM *multi;
    struct probe_job *queue;  /* submitted, not yet in multi (lock) */
    struct probe_job *active; /* in multi (thread only) */
    bool stop;
    kf_probe_done_fn done;
    void *ctx;
};

#define PROBER_MAX_KEPT 1024 /* connections kept between probes */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static void setup_easy(CURL *e, const struct kf_probe *p, bool reuse, char *errbuf)
{
    char url[512];
    const char *host = p->host ? p->host : "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL;
    long timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : 1000;
    /* HTTP/1.1, as the kubelet's probes: kube-apiserver answers a probe
     * over HTTP/2 with a GOAWAY, which would close the kept connection */
    const struct kf_http_opts o = {
        .user_agent = "kfleet-agent-probe",
        .ca_file = p->https ? p->ca_file : NULL,
        .cert_file = p->https ? p->cert_file : NULL,
        .key_file = p->https ? p->key_file : NULL,
        .connect_timeout_ms = timeout_ms,
        .timeout_ms = timeout_ms,
        .no_proxy = true,
        .http11 = true,
        .errbuf = errbuf,
    };

    if (p->type == KF_PROBE_TCP)
        snprintf(url, sizeof(url), "http://%s%s%s:%d/", v6 ? "[" : "", host, v6 ? "]" : "",
                 p->port);
    else
        snprintf(url, sizeof(url), "%s://%s%s%s:%d%s", p->https ? "https" : "http", v6 ? "[" : "",
                 host, v6 ? "]" : "", p->port, p->path ? p->path : "/");
    kf_http_setup(e, url, &o);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, reuse ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    if (p->type == KF_PROBE_TCP)
        curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    if (p->https) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    }
}

/* Judges a finished transfer. */
static bool judge(CURL *e, const struct kf_probe *p, CURLcode code, const char *errbuf,
                  char *detail, size_t size)
{
    long status = 0;

    if (code != CURLE_OK) {
        snprintf(detail, size, "%s", errbuf && errbuf[0] ? errbuf : curl_easy_strerror(code));
        return false;
    }
    if (p->type == KF_PROBE_TCP) {
        snprintf(detail, size, "connected");
        return true;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    snprintf(detail, size, "HTTP %ld", status);
    return status >= 200 && status < 400;
}

bool kf_probe_check(const struct kf_probe *probe, struct kf_strbuf *detail)
{
    char errbuf[CURL_ERROR_SIZE], d[CURL_ERROR_SIZE + 32];
    CURL *e;
    CURLcode code;
    bool ok;

    pthread_once(&curl_once, curl_init_once);
    if (probe->type != KF_PROBE_HTTP && probe->type != KF_PROBE_TCP) {
        if (detail)
            kf_err(detail, 0, "no probe");
        return false;
    }
    e = curl_easy_init();
    kf_assert(e);
    setup_easy(e, probe, false, errbuf);
    code = curl_easy_perform(e);
    ok = judge(e, probe, code, errbuf, d, sizeof(d));
    curl_easy_cleanup(e);
    if (detail)
        kf_err(detail, 0, "%s", d);
    return ok;
}

static void job_free(struct probe_job *j)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(j->strs); i++)
        free(j->strs[i]);
    free(j);
}

static void *prober_thread(void *arg)
{
    struct kf_prober *pr = arg;

    for (;;) {
        struct probe_job *q;
        CURLMsg *msg;
        int running, left;

        pthread_mutex_lock(&pr->lock);
        if (pr->stop) {
            pthread_mutex_unlock(&pr->lock);
            break;
        }
        q = pr->queue;
        pr->queue = NULL;
        pthread_mutex_unlock(&pr->lock);

        while (q) {
            struct probe_job *j = q;
            q = q->next;
            j->easy = curl_easy_init();
            kf_assert(j->easy);
            /* a TCP probe checks that a connection opens: never a kept one */
            setup_easy(j->easy, &j->spec, j->spec.type != KF_PROBE_TCP, j->errbuf);
            curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
            curl_multi_add_handle(pr->multi, j->easy);
            j->next = pr->active;
            pr->active = j;
        }
        curl_multi_perform(pr->multi, &running);
        while ((msg = curl_multi_info_read(pr->multi, &left))) {
            struct probe_job *j = NULL, **pp;
            char detail[CURL_ERROR_SIZE + 32];
            bool ok;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            ok = judge(msg->easy_handle, &j->spec, msg->data.result, j->errbuf, detail,
                       sizeof(detail));
            curl_multi_remove_handle(pr->multi, j->easy);
            curl_easy_cleanup(j->easy);
            for (pp = &pr->active; *pp; pp = &(*pp)->next)
                if (*pp == j) {
                    *pp = j->next;
                    break;
                }
            pr->done(pr->ctx, j->tag, ok, detail);
            job_free(j);
        }
        curl_multi_poll(pr->multi, NULL, 0, 1000, NULL);
    }
    return NULL;
}

int kf_prober_new(kf_probe_done_fn done, void *ctx, struct kf_prober **ret, struct kf_strbuf *err)
{
    struct kf_prober *pr;
    sigset_t all, old;
    int rc;

    pthread_once(&curl_once, curl_init_once);
    pr = kf_xcalloc(1, sizeof(*pr));
    pthread_mutex_init(&pr->lock, NULL);
    pr->multi = curl_multi_init();
    if (!pr->multi) {
        pthread_mutex_destroy(&pr->lock);
        free(pr);
        return kf_err(err, -ENOMEM, "curl_multi_init failed");
    }
    /* one kept connection per probed member (a few hundred on a host) */
    curl_multi_setopt(pr->multi, CURLMOPT_MAXCONNECTS, (long)PROBER_MAX_KEPT);
    pr->done = done;
    pr->ctx = ctx;
    /* The agent's main thread handles signals, not ours. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&pr->thread, NULL, prober_thread, pr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        curl_multi_cleanup(pr->multi);
        pthread_mutex_destroy(&pr->lock);
        free(pr);
        return kf_err(err, -rc, "cannot start the prober thread: %s", strerror(rc));
    }
    *ret = pr;
    return 0;
}

void kf_prober_submit(struct kf_prober *pr, const struct kf_probe *probe, uint64_t tag)
{
    struct probe_job *j = kf_xcalloc(1, sizeof(*j));

    j->tag = tag;
    j->spec = *probe;
    j->strs[0] = probe->host ? kf_xstrdup(probe->host) : NULL;
    j->strs[1] = probe->path ? kf_xstrdup(probe->path) : NULL;
    j->strs[2] = probe->ca_file ? kf_xstrdup(probe->ca_file) : NULL;
    j->strs[3] = probe->cert_file ? kf_xstrdup(probe->cert_file) : NULL;
    j->strs[4] = probe->key_file ? kf_xstrdup(probe->key_file) : NULL;
    j->spec.host = j->strs[0];
    j->spec.path = j->strs[1];
    j->spec.ca_file = j->strs[2];
    j->spec.cert_file = j->strs[3];
    j->spec.key_file = j->strs[4];
    pthread_mutex_lock(&pr->lock);
    j->next = pr->queue;
    pr->queue = j;
    pthread_mutex_unlock(&pr->lock);
    curl_multi_wakeup(pr->multi);
}

void kf_prober_free(struct kf_prober *pr)
{
    if (!pr)
        return;
    pthread_mutex_lock(&pr->lock);
    pr->stop = true;
    pthread_mutex_unlock(&pr->lock);
    curl_multi_wakeup(pr->multi);
    pthread_join(pr->thread, NULL);
    while (pr->active) {
        struct probe_job *j = pr->active;
        pr->active = j->next;
        curl_multi_remove_handle(pr->multi, j->easy);
        curl_easy_cleanup(j->easy);
        job_free(j);
    }
    while (pr->queue) {
        struct probe_job *j = pr->queue;
        pr->queue = j->next;
        job_free(j);
    }
    curl_multi_cleanup(pr->multi);
    pthread_mutex_destroy(&pr->lock);
    free(pr);
}
