/* api-heartbeat.c: host heartbeats (contract in kfleet/api.h).
 *
 * An agent (or a simulation of many) says "this host is alive" by POSTing
 * to .../hosts/<name>/heartbeat, or names many hosts at once in a POST to
 * .../heartbeats. A heartbeat renews the host's lease in the lease table
 * (kfleet/lease.h) and nothing else: no store write, so a million hosts
 * beating every ten seconds cost memory updates, and the host controller
 * writes a Host's status only when it changes between Ready and NotReady.
 *
 * A name must belong to a Host: the first heartbeat of a name at this
 * replica looks the Host up in the store (404 when there is none, with what
 * to do); later ones find the name's local lease in the lease table (a
 * lease only other replicas reported does not count). The host controller,
 * and on every replica the heartbeat sharing (kfleet/lease-share.h), drop
 * the lease of a deleted Host, so its next heartbeat is looked up again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/lease.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "api/api-internal.h"

/* 1: the host exists (or has beaten before), 0: no such Host, < 0: the
 * store could not say. */
static int host_known(struct kf_api *api, const char *name)
{
    struct kf_kv kv = { 0 };
    int r;

    /* a lease only another replica reported is no proof: that replica may
     * not have heard of the Host's deletion when it reported it */
    if (kf_lease_local_last(api->leases, name) > 0)
        return 1;
    if (!kf_name_valid(name))
        return 0;
    r = kf_registry_get_raw(api->reg, &kf_kind_host, name, &kv);
    kf_kv_release(&kv);
    if (r == -KF_ENOTFOUND)
        return 0;
    return r < 0 ? r : 1;
}

static int renew(struct kf_api *api, const char *name, int64_t now_ms, struct kf_strbuf *err)
{
    int r = host_known(api, name);

    if (r < 0)
        return kf_err(err, r, "cannot look up host \"%s\": %s", name, strerror(-r));
    if (r == 0)
        return kf_err(err, -KF_ENOTFOUND,
                      "host \"%s\" is not registered: create its Host object first (kfleet "
                      "apply -f host.yaml, or let kfleet-agent register it), then send "
                      "heartbeats",
                      name);
    r = kf_lease_renew(api->leases, name, now_ms);
    if (r < 0)
        return kf_err(err, -KF_EBADREQUEST, "\"%s\" is not a host name", name);
    return 0;
}

static int heartbeat_one(void *arg, const struct kf_api_call *call, json_t **ret,
                         struct kf_strbuf *err)
{
    struct kf_api *api = arg;
    int64_t now = kf_now_ms();
    char when[32];
    const char *bound = kf_api_user_host(call->user);
    int r;

    if (bound && strcmp(bound, call->name) != 0)
        return kf_err(err, -KF_EFORBIDDEN, "user \"%s\" may send heartbeats for host \"%s\" only",
                      call->user, bound);
    r = renew(api, call->name, now, err);
    if (r < 0)
        return r;
    kf_time_format_rfc3339(now, when, sizeof(when));
    *ret = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", KF_API_VERSION, "kind", "Heartbeat",
                     "host", call->name, "time", when);
    return 0;
}

static int heartbeat_many(void *arg, const struct kf_api_call *call, json_t **ret,
                          struct kf_strbuf *err)
{
    struct kf_api *api = arg;
    json_t *hosts = call->body ? json_object_get(call->body, "hosts") : NULL, *v, *unknown;
    const char *bound = kf_api_user_host(call->user);
    int64_t now = kf_now_ms();
    size_t i, renewed = 0;

    if (!json_is_array(hosts))
        return kf_err(err, -KF_EBADREQUEST,
                      "send {\"hosts\": [\"h1\", \"h2\", ...]} (names, or objects with a "
                      "\"name\")");
    if (json_array_size(hosts) > KF_API_MAX_HEARTBEATS)
        return kf_err(err, -KF_EBADREQUEST,
                      "%zu hosts in one request; send at most %d and split the rest",
                      json_array_size(hosts), KF_API_MAX_HEARTBEATS);
    /* Check the shape of every entry before renewing any. */
    json_array_foreach(hosts, i, v)
    {
        const char *name = json_is_string(v) ? json_string_value(v)
                                             : json_string_value(json_object_get(v, "name"));

        if (!name || !*name || strlen(name) > KF_LEASE_MAX_NAME)
            return kf_err(err, -KF_EBADREQUEST,
                          "hosts[%zu]: expected a host name or an object with a \"name\"", i);
        if (bound && strcmp(bound, name) != 0)
            return kf_err(err, -KF_EFORBIDDEN,
                          "hosts[%zu]: user \"%s\" may send heartbeats for host \"%s\" only", i,
                          call->user, bound);
    }
    unknown = json_array();
    json_array_foreach(hosts, i, v)
    {
        const char *name = json_is_string(v) ? json_string_value(v)
                                             : json_string_value(json_object_get(v, "name"));
        int r = host_known(api, name);

        if (r < 0) {
            json_decref(unknown);
            return kf_err(err, r, "cannot look up host \"%s\": %s", name, strerror(-r));
        }
        if (r == 0 || kf_lease_renew(api->leases, name, now) < 0) {
            json_array_append_new(unknown, json_string(name));
            continue;
        }
        renewed++;
    }
    *ret = json_pack("{s:s, s:s, s:I, s:o}", "apiVersion", KF_API_VERSION, "kind", "HeartbeatList",
                     "renewed", (json_int_t)renewed, "unknown", unknown);
    return 0;
}

int kf_api_set_leases(struct kf_api *api, struct kf_lease_table *t)
{
    const struct kf_api_action one = {
        .method = "POST",
        .kind = &kf_kind_host,
        .name = "heartbeat",
        .roles = KF_API_ROLE_AGENT | KF_API_ROLE_ADMIN,
        .fn = heartbeat_one,
        .arg = api,
    };
    const struct kf_api_action many = {
        .method = "POST",
        .kind = NULL,
        .name = "heartbeats",
        .roles = KF_API_ROLE_AGENT | KF_API_ROLE_ADMIN,
        .fn = heartbeat_many,
        .arg = api,
    };
    int r;

    if (api->leases)
        return -EEXIST;
    api->leases = t;
    r = kf_api_add_action(api, &one);
    if (r == 0)
        r = kf_api_add_action(api, &many);
    return r;
}
