/* api-taskresults.c: the endpoint agents report BroadcastTask results to,
 * POST /apis/kfleet.io/v1/taskresults (contract in kfleet/broadcast.h).
 *
 * Every replica serves it: recording a result is a write through the
 * registry like any other, with each task's resourceVersion as the
 * precondition, so it needs no leader. Many results fit in one request (a
 * simulation of many hosts reports them together) and are written in
 * transactions of up to 128 tasks; the answer says, per result, whether
 * the agent may forget it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/api.h"
#include "kfleet/broadcast.h"
#include "kfleet/error.h"
#include "kfleet/strbuf.h"
#include "api/api-internal.h"

static int task_results(void *arg, const struct kf_api_call *call, json_t **ret,
                        struct kf_strbuf *err)
{
    struct kf_api *api = arg;

    if (!call->body)
        return kf_err(err, -KF_EBADREQUEST,
                      "the body must be {\"results\": [...]}, one entry per task result");
    /* an agent token bound to a host records that host's tasks only */
    return kf_bcj_record_results_for(api->reg, call->body, kf_api_user_host(call->user), ret, err);
}

int kf_api_task_results_register(struct kf_api *api)
{
    const struct kf_api_action a = {
        .method = "POST",
        .kind = NULL,
        .name = KF_BCJ_RESULTS_ACTION,
        .roles = KF_API_ROLE_AGENT | KF_API_ROLE_ADMIN,
        .fn = task_results,
        .arg = api,
    };

    return kf_api_add_action(api, &a);
}
