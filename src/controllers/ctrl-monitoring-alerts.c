/* ctrl-monitoring-alerts.c: GET /apis/kfleet.io/v1/alerts, the alerts that
 * fire now, as the central Alertmanagers of the monitoring stack know them.
 *
 * The dashboard (web/, "Work in progress") shows them; a browser cannot
 * reach Alertmanager itself (another origin, and the page's CSP allows
 * connections to kfleetd only), so kfleetd asks for it, with the caller's
 * token checked like any API call (every human role may read). The
 * Alertmanagers' addresses are those the controller last checked
 * (check_alertmanagers in ctrl-monitoring.c); the first that answers is
 * asked (the pair share their alerts by gossip). The answer:
 *
 *   {"kind": "AlertList", "apiVersion": "kfleet.io/v1",
 *    "alertmanager": "alertmanager-a",
 *    "alerts": [{"labels": {...}, "annotations": {...}, "startsAt": "...",
 *                "fingerprint": "..."}, ...]}
 *
 * 503 while no Alertmanager is known yet or none answers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/api-action.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/obj.h"
#include "kfleet/monitoring.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-monitoring.h"

#define ALERTS_MAX 2000 /* alerts in one answer: the dashboard lists them */

/* What the page needs of one alert of Alertmanager's v2 API. */
static json_t *alert_brief(json_t *a)
{
    json_t *o = json_object();
    static const char *const keep[] = { "labels", "annotations", "startsAt", "fingerprint" };

    for (size_t i = 0; i < KF_ARRAY_SIZE(keep); i++) {
        json_t *v = json_object_get(a, keep[i]);

        if (v)
            json_object_set(o, keep[i], v);
    }
    return o;
}

static int alerts_fn(void *arg, const struct kf_api_call *call, json_t **ret, struct kf_strbuf *err)
{
    struct monctl *mc = arg;
    json_t *listens, *v, *got = NULL, *out, *list;
    const char *name, *from = NULL;
    int r = -ENOENT;

    (void)call;
    pthread_mutex_lock(&mc->am_lock);
    listens = json_deep_copy(mc->am_listens);
    pthread_mutex_unlock(&mc->am_lock);
    json_object_foreach(listens, name, v)
    {
        r = kf_mon_alerts(json_string_value(v), &got);
        if (r == 0) {
            from = name;
            break;
        }
    }
    if (r < 0) {
        kf_err(err, -KF_EUNAVAILABLE, "%s",
               json_object_size(listens)
                   ? "no Alertmanager of the monitoring stack answers; kfleetd keeps checking them"
                   : "the monitoring stack has no Alertmanager checked yet; try again shortly");
        json_decref(listens);
        return -KF_EUNAVAILABLE;
    }
    list = json_array();
    for (size_t i = 0; i < json_array_size(got) && i < ALERTS_MAX; i++)
        json_array_append_new(list, alert_brief(json_array_get(got, i)));
    out = json_pack("{s:s, s:s, s:s, s:o}", "kind", "AlertList", "apiVersion", KF_API_VERSION,
                    "alertmanager", from, "alerts", list);
    json_decref(got);
    json_decref(listens);
    *ret = out;
    return 0;
}

void kf_monalerts_bind(struct monctl *mc)
{
    const struct kf_api_action a = {
        .method = "GET",
        .kind = NULL,
        .name = "alerts",
        .roles = KF_API_ROLE_ADMIN | KF_API_ROLE_EDITOR | KF_API_ROLE_VIEWER,
        .fn = alerts_fn,
        .arg = mc,
    };

    if (mc->env.actions && mc->mon)
        kf_api_actions_add(mc->env.actions, &a);
}

void kf_monalerts_unbind(struct monctl *mc)
{
    if (mc->env.actions && mc->mon)
        kf_api_actions_remove(mc->env.actions, "GET", NULL, "alerts");
}
