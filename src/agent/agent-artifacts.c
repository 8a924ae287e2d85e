/* agent-artifacts.c: the Kubernetes releases a meta host holds, and fetching
 * the ones it lacks (agent.h).
 *
 * A release is a folder <kubernetes-dir>/<minor>/ with bin/<programs>,
 * VERSION ("v1.37.2") and SHA256SUMS, as scripts/install-kubernetes
 * installs it. At start, for each release of the catalog
 * (kf_catalog_releases) that is not installed, an agent given an artifact
 * source (--artifacts URL: kfleetd's files behind any HTTP server, or an
 * operator's mirror) fetches <URL>/<minor>/<path> for each file into
 * <minor>.new.<pid>/, hashing while it writes, and compares each file's
 * SHA-256 with the catalog's, never with anything the source says. Only a
 * release whose every file matches is renamed into place (so a folder is
 * whole or absent); a mismatch is logged with both hashes and the release
 * is left out. The host then reports what it holds in
 * status.kubernetesVersions, which upgrades check.
 *
 * After the start, a thread does the same again every --artifacts-interval
 * (10 minutes by default, each wait drawn within 10 % of it so that a
 * fleet's agents do not all ask the source in the same second), so that a
 * release added to the catalog's source later, or a release whose files
 * went missing on the host, is fetched without restarting the agent; after
 * each round it wakes the agent's loop, which reports the releases held
 * again when they changed. The loop keeps running meanwhile: a fetch of a
 * few hundred megabytes does not hold up heartbeats or members.
 *
 * A release refused for a file that did not match is not downloaded again
 * while that file stays as it was: the rounds remember (kf_agent_fetch_memo)
 * its URL with the Last-Modified time and the size the source gave, ask the
 * source for them alone (HEAD), and fetch the release again only when
 * either differs (or the source gives no Last-Modified). A mirror that
 * serves a wrong file thus costs a fleet one download per host, not one
 * every round. A restart of the agent forgets. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "kfleet/catalog.h"
#include "kfleet/file.h"
#include "kfleet/log.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

KF_LOG_MODULE(agent);

#define ARTIFACT_MAX_BYTES (1024LL * 1024 * 1024) /* one program: ~100 MiB today */
#define FETCH_TIMEOUT_S    600

/* A file that did not match the catalog, as the source described it. */
struct refused {
    char *url;        /* NULL: nothing refused */
    int64_t filetime; /* Last-Modified, seconds since the epoch; -1: not given */
    int64_t size;     /* bytes; -1: not given */
};

struct kf_agent_fetch_memo {
    size_t n;
    struct refused *releases; /* by the catalog's index */
};

struct kf_agent_fetch_memo *kf_agent_fetch_memo_new(void)
{
    struct kf_agent_fetch_memo *m = kf_xcalloc(1, sizeof(*m));

    kf_catalog_releases(&m->n);
    m->releases = kf_xcalloc(m->n ? m->n : 1, sizeof(*m->releases));
    return m;
}

static void forget(struct refused *r)
{
    free(r->url);
    *r = (struct refused){ 0 };
}

void kf_agent_fetch_memo_free(struct kf_agent_fetch_memo *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        forget(&m->releases[i]);
    free(m->releases);
    free(m);
}

struct sink {
    FILE *f;
    EVP_MD_CTX *md;
    long long bytes;
};

static size_t sink_write(char *p, size_t size, size_t n, void *data)
{
    struct sink *s = data;
    size_t len = size * n;

    s->bytes += (long long)len;
    if (s->bytes > ARTIFACT_MAX_BYTES || fwrite(p, 1, len, s->f) != len)
        return 0; /* fails the transfer */
    EVP_DigestUpdate(s->md, p, len);
    return len;
}

static void curl_common(CURL *c, const char *url)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)FETCH_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FILETIME, 1L);
}

/* The Last-Modified time of what c fetched (-1: none given). */
static int64_t filetime_of(CURL *c)
{
    curl_off_t t = -1;

    if (curl_easy_getinfo(c, CURLINFO_FILETIME_T, &t) != CURLE_OK)
        return -1;
    return (int64_t)t;
}

/* Whether the file r refused is, by the source's HEAD answer, still the
 * same: the same Last-Modified time and size (a source that gives no time
 * is never taken as unchanged). */
static bool unchanged(const struct refused *r)
{
    CURL *c;
    curl_off_t size = -1;
    long code = 0;
    bool same = false;

    if (!r->url || r->filetime < 0)
        return false;
    c = curl_easy_init();
    if (!c)
        return false;
    curl_common(c, r->url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (curl_easy_perform(c) == CURLE_OK &&
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 &&
        curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &size) == CURLE_OK)
        same = filetime_of(c) == r->filetime && (int64_t)size == r->size;
    curl_easy_cleanup(c);
    return same;
}

/* Fetches url into path; the SHA-256 of what arrived into hex, what the
 * source said of it into *seen (url not set). */
static int fetch_one(const char *url, const char *path, char hex[65], struct refused *seen,
                     struct kf_strbuf *err)
{
    struct sink s = { .f = fopen(path, "wb"), .md = EVP_MD_CTX_new() };
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    CURL *c = curl_easy_init();
    long code = 0;
    CURLcode cr;
    int r = 0;

    if (!s.f || !c || !s.md) {
        r = kf_err(err, -EIO, "cannot write %s: %s", path, strerror(errno));
        goto free_all;
    }
    EVP_DigestInit_ex(s.md, EVP_sha256(), NULL);
    curl_common(c, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    cr = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (cr != CURLE_OK || code != 200) {
        r = kf_err(err, -EIO, "GET %s: %s", url,
                   cr != CURLE_OK ? curl_easy_strerror(cr) : "not 200");
        if (cr == CURLE_OK)
            kf_strbuf_addf(err, " (HTTP %ld)", code);
        goto free_all;
    }
    EVP_DigestFinal_ex(s.md, md, &mdlen);
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    seen->filetime = filetime_of(c);
    seen->size = s.bytes;
free_all:
    if (s.f && fclose(s.f) != 0 && r == 0)
        r = kf_err(err, -EIO, "cannot write %s", path);
    EVP_MD_CTX_free(s.md);
    if (c)
        curl_easy_cleanup(c);
    return r;
}

static bool installed(const char *dir, const struct kf_catalog_release *rel)
{
    char *vpath = kf_xasprintf("%s/VERSION", dir), *text = NULL;
    bool ok = kf_read_file(vpath, 64, &text, NULL) == 0 &&
              !strncmp(text, rel->version, strlen(rel->version));

    for (size_t i = 0; ok && i < rel->n_files; i++) {
        char *p = kf_xasprintf("%s/%s", dir, rel->files[i].path);

        ok = access(p, R_OK) == 0;
        free(p);
    }
    free(text);
    free(vpath);
    return ok;
}

/* Fetches every file of rel into tmp and checks it; 0 or -EIO, or
 * -EBADMSG with the file that did not match in *bad. */
static int fetch_release(const char *source, const char *tmp, const struct kf_catalog_release *rel,
                         struct kf_strbuf *sums, struct refused *bad, struct kf_strbuf *err)
{
    char *bin = kf_xasprintf("%s/bin", tmp);
    int r = kf_mkdir_p(bin, 0755);

    free(bin);
    if (r < 0)
        return kf_err(err, r, "cannot create %s: %s", tmp, strerror(-r));
    for (size_t i = 0; i < rel->n_files && r == 0; i++) {
        const struct kf_catalog_file *f = &rel->files[i];
        char *url = kf_xasprintf("%s/%s/%s", source, rel->minor, f->path);
        char *path = kf_xasprintf("%s/%s", tmp, f->path);
        char hex[65] = "";
        struct refused seen = { .filetime = -1, .size = -1 };

        r = fetch_one(url, path, hex, &seen, err);
        if (r == 0 && strcmp(hex, f->sha256) != 0) {
            r = kf_err(err, -EBADMSG,
                       "%s has SHA-256 %s but the catalog says %s for Kubernetes %s: refused", url,
                       hex, f->sha256, rel->version);
            forget(bad);
            *bad = seen;
            bad->url = kf_xstrdup(url);
        }
        if (r == 0 && chmod(path, 0755) < 0)
            r = kf_err(err, -errno, "chmod %s: %s", path, strerror(errno));
        kf_strbuf_addf(sums, "%s  %s\n", f->sha256, f->path);
        free(path);
        free(url);
    }
    return r;
}

void kf_agent_artifacts_sync(const struct kf_agent_config *cfg, struct kf_agent_fetch_memo *memo)
{
    size_t n;
    const struct kf_catalog_release *rels = kf_catalog_releases(&n);

    for (size_t i = 0; i < n && i < memo->n; i++) {
        char *dir = kf_xasprintf("%s/%s", cfg->kubernetes_dir, rels[i].minor);
        char *tmp = kf_xasprintf("%s.new.%d", dir, (int)getpid());
        struct kf_strbuf sums = KF_STRBUF_INIT, err = KF_STRBUF_INIT;
        struct refused *bad = &memo->releases[i];
        char *p;
        int r;

        if (installed(dir, &rels[i]) || !cfg->artifacts_url) {
            forget(bad);
            goto next;
        }
        if (unchanged(bad)) {
            kf_log_info("Kubernetes %s: %s is still the file refused before (same Last-Modified "
                        "time and size): not fetched again",
                        rels[i].version, bad->url);
            goto next;
        }
        kf_log_info("Kubernetes %s is not installed in %s: fetching it from %s", rels[i].version,
                    dir, cfg->artifacts_url);
        kf_remove_tree(tmp);
        r = fetch_release(cfg->artifacts_url, tmp, &rels[i], &sums, bad, &err);
        if (r != -EBADMSG)
            forget(bad);
        p = kf_xasprintf("%s/SHA256SUMS", tmp);
        if (r == 0)
            r = kf_write_file_atomic(p, sums.buf, sums.len, 0644, true, &err);
        free(p);
        p = kf_xasprintf("%s/VERSION", tmp);
        kf_strbuf_reset(&sums);
        kf_strbuf_addf(&sums, "%s\n", rels[i].version);
        if (r == 0)
            r = kf_write_file_atomic(p, sums.buf, sums.len, 0644, true, &err);
        free(p);
        if (r == 0) {
            kf_remove_tree(dir);
            if (rename(tmp, dir) < 0)
                r = kf_err(&err, -errno, "rename %s: %s", tmp, strerror(errno));
        }
        if (r == 0)
            kf_log_info("installed Kubernetes %s in %s (every file's SHA-256 as the catalog "
                        "says)",
                        rels[i].version, dir);
        else
            kf_log_warn("Kubernetes %s not installed: %s; this host will not run it",
                        rels[i].version, err.buf);
        kf_remove_tree(tmp);
    next:
        kf_strbuf_release(&sums);
        kf_strbuf_release(&err);
        free(tmp);
        free(dir);
    }
}

/* --- checking again, on a thread ------------------------------------------------ */

struct kf_agent_artifacts {
    struct kf_agent_config cfg;
    struct kf_agent_fetch_memo *memo;
    int wake_fd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    bool checked; /* a round finished since the loop last asked */
};

/* The next wait: interval_ms within +-10 %. */
static int64_t jittered(int64_t interval_ms, unsigned *seed)
{
    int64_t spread = interval_ms / 10;

    if (spread <= 0)
        return interval_ms;
    return interval_ms - spread + (int64_t)(rand_r(seed) % (unsigned)(2 * spread + 1));
}

static void *artifacts_main(void *arg)
{
    struct kf_agent_artifacts *aa = arg;
    unsigned seed = (unsigned)getpid() ^ (unsigned)kf_now_ms();

    pthread_mutex_lock(&aa->lock);
    while (!aa->stop) {
        struct timespec until;
        int64_t wait_ms = jittered(aa->cfg.artifacts_interval_ms, &seed);
        uint64_t one = 1;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!aa->stop && pthread_cond_timedwait(&aa->cond, &aa->lock, &until) != ETIMEDOUT)
            ;
        if (aa->stop)
            break;
        pthread_mutex_unlock(&aa->lock);
        kf_agent_artifacts_sync(&aa->cfg, aa->memo);
        pthread_mutex_lock(&aa->lock);
        aa->checked = true;
        if (write(aa->wake_fd, &one, sizeof(one)) < 0) {
            /* the loop wakes at its own period anyway */
        }
    }
    pthread_mutex_unlock(&aa->lock);
    return NULL;
}

struct kf_agent_artifacts *kf_agent_artifacts_start(const struct kf_agent_config *cfg, int wake_fd,
                                                    struct kf_agent_fetch_memo *memo)
{
    struct kf_agent_artifacts *aa;
    pthread_condattr_t ca;

    if (!cfg->artifacts_url || cfg->artifacts_interval_ms <= 0) {
        kf_agent_fetch_memo_free(memo);
        return NULL;
    }
    aa = kf_xcalloc(1, sizeof(*aa));
    aa->cfg = *cfg;
    aa->memo = memo;
    aa->wake_fd = wake_fd;
    pthread_mutex_init(&aa->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&aa->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&aa->thread, NULL, artifacts_main, aa) != 0) {
        kf_log_warn("cannot start the thread that checks for missing Kubernetes releases: %s; "
                    "they are fetched only at start",
                    strerror(errno));
        pthread_cond_destroy(&aa->cond);
        pthread_mutex_destroy(&aa->lock);
        kf_agent_fetch_memo_free(aa->memo);
        free(aa);
        return NULL;
    }
    return aa;
}

bool kf_agent_artifacts_checked(struct kf_agent_artifacts *aa)
{
    bool checked;

    if (!aa)
        return false;
    pthread_mutex_lock(&aa->lock);
    checked = aa->checked;
    aa->checked = false;
    pthread_mutex_unlock(&aa->lock);
    return checked;
}

void kf_agent_artifacts_stop(struct kf_agent_artifacts *aa)
{
    if (!aa)
        return;
    pthread_mutex_lock(&aa->lock);
    aa->stop = true;
    pthread_cond_broadcast(&aa->cond);
    pthread_mutex_unlock(&aa->lock);
    pthread_join(aa->thread, NULL);
    pthread_cond_destroy(&aa->cond);
    pthread_mutex_destroy(&aa->lock);
    kf_agent_fetch_memo_free(aa->memo);
    free(aa);
}
