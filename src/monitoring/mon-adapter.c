/* mon-adapter.c: kfleetd's alert receiver adapter as a service: the
 * webhook endpoint's logic (token, parse, claim, queue), and one worker
 * thread that builds and delivers each notification with retries.
 *
 * Alertmanager is answered as soon as a notification is claimed and
 * queued, so a slow destination never holds Alertmanager's notify loop (and
 * its peer timeout). The worker reads secrets (DingTalk signing secret,
 * gateway keys, robot URLs kept in files) at every attempt, rebuilds the
 * requests (a DingTalk signature carries its timestamp), sends what has not
 * gone through yet, and backs off per obs-receiver.h's policy. When every
 * request of a notification is delivered the idempotency memory records it
 * and is saved (0600); when the policy gives up the claim is released.
 * Secrets never reach the log: only kf_obs_delivery.log_url is logged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "kfleet/log.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/monitoring.h"
#include "kfleet/strbuf.h"
#include "monitoring/mon-internal.h"

KF_LOG_MODULE(alerts);

#define MON_QUEUE_MAX 256

/* A deep copy of a kf_mon_target: every string in strs. */
struct mon_target {
    struct kf_mon_target mt;
    char **strs;
    size_t n_strs;
    struct kf_obs_header *headers;
    const char **at_mobiles;
    const char **phones;
};

struct mon_job {
    struct mon_target target;
    struct kf_obs_notification n;
    unsigned attempt; /* attempts made */
    int64_t due_ms;
    uint64_t delivered; /* bit i: request i went through (first 64) */
};

static const char *keep(struct mon_target *t, const char *s)
{
    if (!s)
        return NULL;
    t->strs = kf_xrealloc(t->strs, (t->n_strs + 1) * sizeof(*t->strs));
    t->strs[t->n_strs] = kf_xstrdup(s);
    return t->strs[t->n_strs++];
}

static void target_copy(struct mon_target *dst, const struct kf_mon_target *src)
{
    const struct kf_obs_target *s = &src->t;
    struct kf_obs_target *d = &dst->mt.t;

    memset(dst, 0, sizeof(*dst));
    *d = *s;
    d->receiver = keep(dst, s->receiver);
    d->url = keep(dst, s->url);
    d->secret = NULL;
    d->method = keep(dst, s->method);
    d->body = keep(dst, s->body);
    d->content_type = keep(dst, s->content_type);
    dst->headers = kf_xcalloc(s->n_headers + 1, sizeof(*dst->headers));
    for (size_t i = 0; i < s->n_headers; i++) {
        dst->headers[i].name = keep(dst, s->headers[i].name);
        dst->headers[i].value = keep(dst, s->headers[i].value);
    }
    d->headers = dst->headers;
    dst->at_mobiles = kf_xcalloc(s->n_at_mobiles + 1, sizeof(char *));
    for (size_t i = 0; i < s->n_at_mobiles; i++)
        dst->at_mobiles[i] = keep(dst, s->at_mobiles[i]);
    d->at_mobiles = dst->at_mobiles;
    dst->phones = kf_xcalloc(s->n_phones + 1, sizeof(char *));
    for (size_t i = 0; i < s->n_phones; i++)
        dst->phones[i] = keep(dst, s->phones[i]);
    d->phones = dst->phones;
    dst->mt.secret_file = keep(dst, src->secret_file);
    dst->mt.url_file = keep(dst, src->url_file);
}

static void target_release(struct mon_target *t)
{
    for (size_t i = 0; i < t->n_strs; i++)
        free(t->strs[i]);
    free(t->strs);
    free(t->headers);
    free(t->at_mobiles);
    free(t->phones);
    memset(t, 0, sizeof(*t));
}

static void job_free(struct mon_job *j)
{
    if (!j)
        return;
    target_release(&j->target);
    kf_obs_notification_release(&j->n);
    free(j);
}

void kf_mon_set_targets(struct kf_mon *m, const struct kf_mon_target *targets, size_t n)
{
    struct mon_target *nt = kf_xcalloc(n + 1, sizeof(*nt)), *old;
    size_t n_old;

    for (size_t i = 0; i < n; i++)
        target_copy(&nt[i], &targets[i]);
    pthread_mutex_lock(&m->lock);
    old = m->targets;
    n_old = m->n_targets;
    m->targets = nt;
    m->n_targets = n;
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < n_old; i++)
        target_release(&old[i]);
    free(old);
}

/* --- the endpoint ------------------------------------------------------- */

static bool token_ok(const struct kf_mon *m, const char *authorization)
{
    size_t want = strlen(m->token), got;
    unsigned char diff = 0;

    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    authorization += 7;
    while (*authorization == ' ')
        authorization++;
    got = strlen(authorization);
    for (size_t i = 0; i < want; i++)
        diff |= (unsigned char)(m->token[i] ^ (i < got ? authorization[i] : 0));
    return diff == 0 && got == want;
}

static void count(struct kf_mon *m, const char *receiver, const char *outcome)
{
    if (m->m_notifications)
        kf_metric_add(m->m_notifications, KF_LABELS(receiver, outcome), 1);
}

static int answer(struct kf_strbuf *resp, int status, const char *result, const char *detail)
{
    json_t *o = json_pack("{s:s}", "result", result);
    char *s;

    if (detail)
        json_object_set_new(o, "detail", json_string(detail));
    s = json_dumps(o, JSON_COMPACT);
    kf_strbuf_addstr(resp, s);
    kf_strbuf_addch(resp, '\n');
    free(s);
    json_decref(o);
    return status;
}

int kf_mon_check_webhook_auth(struct kf_mon *m, const char *authorization, struct kf_strbuf *resp)
{
    if (!token_ok(m, authorization))
        return answer(resp, 401, "unauthorized",
                      "Authorization: Bearer <the token in kfleetd's monitoring/.adapter/token>");
    return 0;
}

int kf_mon_handle_webhook(struct kf_mon *m, const char *receiver, const char *authorization,
                          const char *body, size_t len, struct kf_strbuf *resp)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_obs_notification n;
    struct mon_job *job;
    const struct mon_target *t = NULL;
    enum kf_obs_verdict v;
    int r, status;

    if (!token_ok(m, authorization))
        return answer(resp, 401, "unauthorized",
                      "Authorization: Bearer <the token in kfleetd's monitoring/.adapter/token>");
    if (len > KF_OBS_WEBHOOK_MAX_BYTES)
        return answer(resp, 413, "too-large", NULL);
    r = kf_obs_webhook_parse(body, len, &n, &err);
    if (r < 0) {
        status = answer(resp, r == -E2BIG ? 413 : 400, "malformed", err.buf);
        kf_log_warn("receiver \"%s\": refused a notification: %s", receiver, err.buf);
        kf_strbuf_release(&err);
        return status;
    }
    kf_strbuf_release(&err);
    if (strcmp(receiver, KF_MON_DEFAULT_RECEIVER) == 0) {
        kf_log_info("an alert group (%s, %zu alerts) matched no AlertRoute; dropped",
                    n.firing ? "firing" : "resolved", n.n_alerts);
        count(m, receiver, "unrouted");
        kf_obs_notification_release(&n);
        return answer(resp, 200, "unrouted", NULL);
    }

    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_targets; i++)
        if (strcmp(m->targets[i].mt.t.receiver, receiver) == 0)
            t = &m->targets[i];
    if (!t) {
        pthread_mutex_unlock(&m->lock);
        kf_obs_notification_release(&n);
        return answer(resp, 404, "unknown-receiver", "no AlertReceiver of that name");
    }
    v = kf_obs_dedup_claim(m->dedup, &n, kf_now_ms());
    if (v != KF_OBS_DELIVER) {
        const char *what = v == KF_OBS_DUPLICATE ? "duplicate" : "stale";

        pthread_mutex_unlock(&m->lock);
        count(m, receiver, what);
        kf_log_dbg("receiver \"%s\": %s notification dropped", receiver, what);
        kf_obs_notification_release(&n);
        return answer(resp, 200, what, NULL);
    }
    if (m->n_jobs + m->busy >= MON_QUEUE_MAX || m->stopping) {
        kf_obs_dedup_done(m->dedup, &n, false, kf_now_ms());
        pthread_mutex_unlock(&m->lock);
        count(m, receiver, "rejected");
        kf_obs_notification_release(&n);
        return answer(resp, 503, "busy", "the delivery queue is full; retry later");
    }
    job = kf_xcalloc(1, sizeof(*job));
    target_copy(&job->target, &t->mt);
    job->n = n;
    job->due_ms = kf_now_ms();
    kf_grow((void **)&m->jobs, &m->alloc_jobs, m->n_jobs + 1, sizeof(*m->jobs));
    m->jobs[m->n_jobs++] = job;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    return answer(resp, 200, "queued", NULL);
}

/* --- the worker --------------------------------------------------------- */

/* One attempt at every request of the job not delivered yet. */
static enum kf_obs_outcome attempt(struct kf_mon *m, struct mon_job *job)
{
    struct kf_obs_target t = job->target.mt.t;
    struct kf_obs_deliveries dels = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *secret = NULL, *url = NULL;
    enum kf_obs_outcome worst = KF_OBS_DELIVERED;
    int r = 0;

    for (int i = 0; r == 0 && i < 2; i++) {
        const char *file = i ? job->target.mt.url_file : job->target.mt.secret_file;

        if (!file)
            continue;
        if (!kf_mon_secret_path_allowed(m, file))
            r = kf_err(&err, -EPERM,
                       "\"%s\" is not in a folder secrets may be read from (<data-dir>/secrets/ "
                       "or --monitoring-config secretDirs)",
                       file);
        else
            r = kf_mon_read_secret(file, i ? &url : &secret, &err);
    }
    if (r == 0) {
        t.secret = secret;
        if (url)
            t.url = url;
        r = kf_obs_build(&t, &job->n, kf_now_ms(), &dels, &err);
    }
    if (r < 0) {
        /* a missing secret file may be fixed by the operator: retry */
        kf_log_warn("receiver \"%s\": cannot build the notification: %s", t.receiver, err.buf);
        if (m->m_attempts)
            kf_metric_add(m->m_attempts, KF_LABELS(t.receiver, "error"), 1);
        worst = r == -EINVAL ? KF_OBS_FAILED : KF_OBS_RETRY; /* a file can be fixed */
    }
    for (size_t i = 0; r == 0 && i < dels.n; i++) {
        struct kf_obs_response resp = { 0 };
        enum kf_obs_outcome o;
        int dr;

        if (i < 64 && (job->delivered & (1ull << i)))
            continue;
        dr = kf_obs_deliver(&dels.items[i], &m->dests, m->cfg.delivery_timeout_ms, &resp);
        o = kf_obs_classify(t.kind, dr, &resp);
        if (o == KF_OBS_DELIVERED) {
            if (i < 64)
                job->delivered |= 1ull << i;
            kf_log_info("receiver \"%s\": delivered %s (%zu alerts) to %s (HTTP %ld)", t.receiver,
                        job->n.firing ? "firing" : "resolved", job->n.n_alerts,
                        dels.items[i].log_url, resp.status);
        } else {
            kf_log_warn("receiver \"%s\": delivery to %s failed (attempt %u): %s", t.receiver,
                        dels.items[i].log_url, job->attempt + 1,
                        dr < 0 ? resp.error : "the destination refused it");
            if (o > worst)
                worst = o;
        }
        if (m->m_attempts)
            kf_metric_add(m->m_attempts,
                          KF_LABELS(t.receiver, o == KF_OBS_DELIVERED ? "delivered"
                                                : o == KF_OBS_RETRY   ? "retry"
                                                                      : "failed"),
                          1);
        kf_obs_response_release(&resp);
    }
    kf_obs_deliveries_release(&dels);
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
    if (url) {
        explicit_bzero(url, strlen(url));
        free(url);
    }
    kf_strbuf_release(&err);
    return worst;
}

static void save_memory(struct kf_mon *m)
{
    struct kf_strbuf err = KF_STRBUF_INIT;

    if (kf_obs_dedup_save(m->dedup, m->dedup_path, &err) < 0)
        kf_log_warn("cannot save the alert idempotency memory: %s", err.buf);
    kf_strbuf_release(&err);
}

static void deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void *worker_main(void *arg)
{
    struct kf_mon *m = arg;

    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        size_t best = SIZE_MAX;
        int64_t now = kf_now_ms();
        struct mon_job *job;
        enum kf_obs_outcome o;

        for (size_t i = 0; i < m->n_jobs; i++)
            if (best == SIZE_MAX || m->jobs[i]->due_ms < m->jobs[best]->due_ms)
                best = i;
        if (best == SIZE_MAX) {
            pthread_cond_wait(&m->cond, &m->lock);
            continue;
        }
        if (m->jobs[best]->due_ms > now) {
            struct timespec ts;

            deadline(&ts, m->jobs[best]->due_ms - now);
            pthread_cond_timedwait(&m->cond, &m->lock, &ts);
            continue;
        }
        job = m->jobs[best];
        m->jobs[best] = m->jobs[--m->n_jobs];
        m->busy++;
        pthread_mutex_unlock(&m->lock);

        o = attempt(m, job);
        job->attempt++;

        pthread_mutex_lock(&m->lock);
        m->busy--;
        if (o == KF_OBS_DELIVERED) {
            kf_obs_dedup_done(m->dedup, &job->n, true, kf_now_ms());
            count(m, job->target.mt.t.receiver, "delivered");
            pthread_mutex_unlock(&m->lock);
            save_memory(m);
            job_free(job);
            pthread_mutex_lock(&m->lock);
        } else {
            uint32_t rnd;
            int64_t delay;

            kf_random_bytes(&rnd, sizeof(rnd));
            delay = o == KF_OBS_RETRY ? kf_obs_retry_delay_ms(&m->cfg.retry, job->attempt + 1, rnd)
                                      : -1;
            if (delay >= 0 && !m->stopping) {
                job->due_ms = kf_now_ms() + delay;
                kf_grow((void **)&m->jobs, &m->alloc_jobs, m->n_jobs + 1, sizeof(*m->jobs));
                m->jobs[m->n_jobs++] = job;
            } else {
                kf_log_err("receiver \"%s\": giving up on a %s notification after %u attempts",
                           job->target.mt.t.receiver, job->n.firing ? "firing" : "resolved",
                           job->attempt);
                kf_obs_dedup_done(m->dedup, &job->n, false, kf_now_ms());
                count(m, job->target.mt.t.receiver, "failed");
                job_free(job);
            }
        }
        pthread_cond_broadcast(&m->cond);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

static void collect_queue(struct kf_metric *f, void *arg)
{
    struct kf_mon *m = arg;

    pthread_mutex_lock(&m->lock);
    kf_metric_set(f, NULL, (double)(m->n_jobs + m->busy));
    pthread_mutex_unlock(&m->lock);
}

int kf_mon_adapter_start(struct kf_mon *m, struct kf_metrics *metrics, struct kf_strbuf *err)
{
    struct kf_strbuf lerr = KF_STRBUF_INIT;
    int r;

    m->dedup = kf_obs_dedup_new(0, m->cfg.dedup_window_ms);
    r = kf_obs_dedup_load(m->dedup, m->dedup_path, &lerr);
    if (r < 0 && r != -ENOENT)
        kf_log_warn("the alert idempotency memory was not loaded, starting empty: %s", lerr.buf);
    kf_strbuf_release(&lerr);
    if (metrics) {
        m->m_notifications = kf_metrics_counter(
            metrics, "kfleet_alert_notifications_total",
            "Notifications Alertmanager sent to kfleetd's receiver adapter, by what became of "
            "them (delivered, duplicate, stale, failed, rejected, unrouted).",
            "receiver,outcome");
        m->m_attempts =
            kf_metrics_counter(metrics, "kfleet_alert_delivery_attempts_total",
                               "Requests sent to notification destinations.", "receiver,result");
        kf_metrics_collected(metrics, KF_METRIC_GAUGE, "kfleet_alert_delivery_queue",
                             "Notifications waiting for delivery or being delivered.", NULL,
                             collect_queue, m);
    }
    r = pthread_create(&m->worker, NULL, worker_main, m);
    if (r)
        return kf_err(err, -r, "cannot start the alert delivery worker: %s", strerror(r));
    m->worker_started = true;
    return 0;
}

void kf_mon_adapter_stop(struct kf_mon *m)
{
    if (m->worker_started) {
        pthread_mutex_lock(&m->lock);
        m->stopping = true;
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->worker, NULL);
        m->worker_started = false;
    }
    for (size_t i = 0; i < m->n_jobs; i++) {
        kf_obs_dedup_done(m->dedup, &m->jobs[i]->n, false, kf_now_ms());
        job_free(m->jobs[i]);
    }
    free(m->jobs);
    m->jobs = NULL;
    m->n_jobs = 0;
    if (m->dedup && m->dedup_path)
        save_memory(m);
    kf_obs_dedup_free(m->dedup);
    m->dedup = NULL;
    for (size_t i = 0; i < m->n_targets; i++)
        target_release(&m->targets[i]);
    free(m->targets);
    m->targets = NULL;
    m->n_targets = 0;
}

int kf_mon_wait_idle(struct kf_mon *m, int timeout_ms)
{
    int64_t end = kf_now_ms() + timeout_ms;
    int idle;

    pthread_mutex_lock(&m->lock);
    while (!(idle = (m->n_jobs == 0 && m->busy == 0))) {
        struct timespec ts;
        int64_t left = end - kf_now_ms();

        if (left <= 0)
            break;
        deadline(&ts, left);
        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    return idle;
}
