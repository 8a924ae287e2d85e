/* ctrl-release-gate.c: the Release health gate. While a wave moves or
 * bakes, every spec.healthGate.interval, and once more before a wave is
 * left, the controller asks a Prometheus (the release's own, else the
 * central of kfleetd's monitoring) for
 *
 *     ALERTS{alertstate="firing", alertname=~"<the gate's alerts>"}
 *
 * and the gate fails when one of those series has a cluster label naming
 * a cluster the release has moved (started, finished or failed). A gate
 * that cannot be asked (no Prometheus, no answer, a malformed answer) holds
 * the release where it is, saying why, and is asked again at the interval;
 * it does not count as passed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "kfleet/http.h"
#include "kfleet/json.h"
#include "kfleet/monitoring.h"
#include "kfleet/obs-query.h"
#include "controllers/ctrl-release.h"

#define GATE_TIMEOUT_MS 10000

const char *kf_rel_prometheus(struct rel_ctrl *d, const json_t *rel, char *buf, size_t size)
{
    const char *url = kf_json_str(rel, "spec.healthGate.prometheus", NULL);
    const struct kf_mon_config *cfg;

    if (url)
        return url;
    if (d->prometheus)
        return d->prometheus;
    if (!d->mon)
        return NULL;
    cfg = kf_mon_config(d->mon);
    if (cfg->mode == KF_MON_LOCAL) {
        int port = kf_mon_port(d->mon, "central-a");

        if (port < 0)
            return NULL;
        snprintf(buf, size, "http://%s:%d", cfg->host ? cfg->host : "127.0.0.1", port);
        return buf;
    }
    if (!cfg->n_centrals)
        return NULL;
    snprintf(buf, size, "http://%s", cfg->centrals[0].listen);
    return buf;
}

static int ask(const char *base, const json_t *alerts, struct kf_obs_firing_list *ret,
               struct kf_strbuf *err)
{
    const char *names[32];
    size_t n = 0, i;
    const json_t *a;
    struct kf_strbuf q = KF_STRBUF_INIT, url = KF_STRBUF_INIT, body = KF_STRBUF_INIT;
    struct kf_http *h = kf_http_new();
    struct kf_http_result res;
    char *esc;
    int r;

    json_array_foreach(alerts, i, a) if (n < KF_ARRAY_SIZE(names) && json_string_value(a))
        names[n++] = json_string_value(a);
    kf_obs_firing_query(names, n, &q);
    esc = curl_easy_escape(kf_http_easy(h), q.buf, (int)q.len);
    kf_strbuf_addf(&url, "%s/api/v1/query?query=%s", base, esc ? esc : "");
    curl_free(esc);
    body.cap = KF_OBS_QUERY_MAX_BYTES;
    r = kf_http_request(h,
                        &(struct kf_http_opts){ .protocols = "http,https",
                                                .connect_timeout_ms = 3000,
                                                .timeout_ms = GATE_TIMEOUT_MS },
                        &(struct kf_http_req){ .url = url.buf, .resp = &body }, &res);
    if (r < 0)
        kf_err(err, r, "no answer from %s: %s", base, res.error);
    else if (res.status != 200 && res.status != 400 && res.status != 422)
        r = kf_err(err, -EPROTO, "%s answered HTTP %ld", base, res.status);
    else
        r = kf_obs_firing_parse(body.buf ? body.buf : "", body.len, ret, err);
    kf_http_free(h);
    kf_strbuf_release(&q);
    kf_strbuf_release(&url);
    kf_strbuf_release(&body);
    return r;
}

/* Whether the cluster named name was moved by the release (waves up to the
 * current one). */
static bool moved(const struct rel_pass *p, const char *name)
{
    for (size_t i = 0; i < p->n_gcs; i++) {
        if (!kf_streq(kf_json_str(p->gcs[i], "metadata.name", NULL), name))
            continue;
        return p->plan.wave_of[i] != KF_RELEASE_NO_WAVE && p->plan.wave_of[i] <= p->current &&
               (p->state[i] == KF_REL_IN_PROGRESS || p->state[i] == KF_REL_DONE ||
                p->state[i] == KF_REL_FAILED);
    }
    return false;
}

static int judge(struct rel_pass *p, const struct kf_obs_firing_list *l, const char *base)
{
    struct kf_strbuf msg = KF_STRBUF_INIT;
    json_t *firing = json_array();
    size_t hits = 0;

    for (size_t i = 0; i < l->n; i++) {
        if (!moved(p, l->items[i].cluster))
            continue;
        if (hits < REL_MAX_FIRING)
            json_array_append_new(firing, json_pack("{s:s, s:s}", "alert", l->items[i].alert,
                                                    "cluster", l->items[i].cluster));
        if (hits++ < REL_EVENT_NAMES)
            kf_strbuf_addf(&msg, "%s%s fires for cluster \"%s\"", hits > 1 ? "; " : "",
                           l->items[i].alert, l->items[i].cluster);
    }
    if (hits > REL_EVENT_NAMES)
        kf_strbuf_addf(&msg, "; and %zu more", hits - REL_EVENT_NAMES);
    json_object_set_new(p->gate, "firing", firing);
    json_object_set_new(p->gate, "message",
                        json_string(hits ? msg.buf : "no gate alert fires for a moved cluster"));
    if (hits) {
        char *m = kf_xasprintf("health gate (%s): %s", base, msg.buf);

        p->pause = json_pack("{s:s, s:s}", "reason", "HealthGateFailed", "message", m);
        free(m);
    }
    kf_strbuf_release(&msg);
    return hits ? 1 : 0;
}

int kf_rel_gate(struct rel_pass *p, bool force)
{
    const json_t *alerts = kf_json_path(p->rel, "spec.healthGate.alerts");
    const json_t *old = kf_json_path(p->rel, "status.gate");
    int64_t last = kf_rel_time(old, "checkedAt"), interval = 30000;
    struct kf_obs_firing_list l;
    struct kf_strbuf err = KF_STRBUF_INIT;
    char buf[300];
    const char *base;
    int r;

    if (!json_array_size(alerts))
        return 0;
    kf_parse_duration_ms(kf_json_str(p->rel, "spec.healthGate.interval", "30s"), &interval);
    if (interval < 1000)
        interval = 1000;
    if (!force && last && p->now - last < interval && !kf_json_str(old, "error", NULL)) {
        p->gate = json_deep_copy(old);
        kf_rel_requeue(p, interval - (p->now - last));
        return 0;
    }
    kf_rel_requeue(p, interval);
    p->gate = json_object();
    kf_rel_time_set(p->gate, "checkedAt", p->now);
    base = kf_rel_prometheus(p->d, p->rel, buf, sizeof(buf));
    if (!base) {
        json_object_set_new(p->gate, "error",
                            json_string("no Prometheus to ask: set spec.healthGate.prometheus or "
                                        "run kfleetd with --monitoring; the release holds"));
        return -EAGAIN;
    }
    json_object_set_new(p->gate, "prometheus", json_string(base));
    r = ask(base, alerts, &l, &err);
    if (r < 0) {
        char *m = kf_xasprintf("the gate could not be asked: %s; the release holds", err.buf);

        json_object_set_new(p->gate, "error", json_string(m));
        free(m);
        kf_strbuf_release(&err);
        return -EAGAIN;
    }
    r = judge(p, &l, base);
    kf_obs_firing_list_release(&l);
    kf_strbuf_release(&err);
    return r;
}
