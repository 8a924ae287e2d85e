/* ctrl-capacity-util.c: small things the capacity controllers share: Kubernetes
 * quantities in and out, conditions that keep their transition time,
 * merge patches through the registry, and the read-your-writes barrier
 * (contract in ctrl-capacity.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-capacity.h"

int64_t kf_cap_qty_milli(const json_t *v)
{
    int64_t m;

    if (json_is_string(v))
        return kf_parse_quantity(json_string_value(v), &m) == 0 ? m : -1;
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) < INT64_MAX / 1000)
        return json_integer_value(v) * 1000;
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9e15)
        return (int64_t)(json_real_value(v) * 1000);
    return -1;
}

struct kf_res kf_cap_res_parse(const json_t *map)
{
    struct kf_res r = { 0, 0 };
    int64_t cpu = kf_cap_qty_milli(json_object_get(map, "cpu"));
    int64_t mem = kf_cap_qty_milli(json_object_get(map, "memory"));

    if (cpu > 0)
        r.cpu_milli = cpu;
    if (mem > 0)
        r.mem_bytes = mem / 1000;
    return r;
}

void kf_cap_fmt_cpu(int64_t milli, char *buf, size_t size)
{
    if (milli % 1000 == 0)
        snprintf(buf, size, "%lld", (long long)(milli / 1000));
    else
        snprintf(buf, size, "%lldm", (long long)milli);
}

void kf_cap_fmt_mem(int64_t bytes, char *buf, size_t size)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = { { "Ti", (int64_t)1 << 40 }, { "Gi", KF_GIB }, { "Mi", KF_MIB }, { "Ki", 1024 } };

    for (size_t i = 0; i < KF_ARRAY_SIZE(units); i++)
        if (bytes >= units[i].mult && bytes % units[i].mult == 0) {
            snprintf(buf, size, "%lld%s", (long long)(bytes / units[i].mult), units[i].suffix);
            return;
        }
    snprintf(buf, size, "%lld", (long long)bytes);
}

static void add_num(struct kf_strbuf *sb, double v)
{
    if (v - (double)(int64_t)(v + 0.5) < 0.05 && (double)(int64_t)(v + 0.5) - v < 0.05)
        kf_strbuf_addf(sb, "%lld", (long long)(v + 0.5));
    else
        kf_strbuf_addf(sb, "%.1f", v);
}

void kf_cap_fmt_res(struct kf_res r, struct kf_strbuf *out)
{
    add_num(out, (double)r.cpu_milli / 1000);
    kf_strbuf_addstr(out, " CPU / ");
    add_num(out, (double)r.mem_bytes / (double)KF_GIB);
    kf_strbuf_addstr(out, " GiB");
}

json_t *kf_cap_res_json(struct kf_res r)
{
    char cpu[32], mem[32];

    kf_cap_fmt_cpu(r.cpu_milli, cpu, sizeof(cpu));
    kf_cap_fmt_mem(r.mem_bytes, mem, sizeof(mem));
    return json_pack("{s:s, s:s}", "cpu", cpu, "memory", mem);
}

void kf_cap_now_rfc3339(int64_t now_ms, char buf[32])
{
    kf_time_format_rfc3339(now_ms, buf, 32);
}

const json_t *kf_cap_condition_find(const json_t *conditions, const char *type)
{
    size_t i;
    json_t *c;

    json_array_foreach(conditions, i, c) if (kf_streq(kf_json_str(c, "type", NULL), type)) return c;
    return NULL;
}

json_t *kf_cap_condition(const json_t *old, const char *type, bool status, const char *reason,
                         const char *message, int64_t now_ms)
{
    const json_t *prev = kf_cap_condition_find(old, type);
    const char *st = status ? "True" : "False";
    char now[32];
    const char *since = NULL;

    kf_cap_now_rfc3339(now_ms, now);
    if (prev && kf_streq(kf_json_str(prev, "status", NULL), st))
        since = kf_json_str(prev, "lastTransitionTime", NULL);
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status", st, "reason", reason,
                     "message", message ? message : "", "lastTransitionTime", since ? since : now);
}

bool kf_cap_conditions_same(const json_t *a, const json_t *b)
{
    size_t i;
    json_t *c;

    if (json_array_size(a) != json_array_size(b))
        return false;
    json_array_foreach(a, i, c)
    {
        const json_t *d = kf_cap_condition_find(b, kf_json_str(c, "type", ""));

        if (!d || !kf_streq(kf_json_str(c, "status", NULL), kf_json_str(d, "status", NULL)) ||
            !kf_streq(kf_json_str(c, "reason", NULL), kf_json_str(d, "reason", NULL)) ||
            !kf_streq(kf_json_str(c, "message", NULL), kf_json_str(d, "message", NULL)))
            return false;
    }
    return true;
}

bool kf_cap_str_in(const json_t *array, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach(array, i, v) if (kf_streq(json_string_value(v), s)) return true;
    return false;
}

int kf_cap_patch(struct kf_registry *reg, const struct kf_kind *k, const char *name,
                 const json_t *patch, bool status_only, int64_t *ret_rev, struct kf_strbuf *err)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    size_t len;
    char *text = kf_json_dump(patch, &len);
    json_t *ret = NULL;
    int r;

    r = kf_registry_patch(reg, k, name, KF_PATCH_MERGE, text, len, status_only, &ret, &causes, err);
    if (r == -KF_EINVALID && err) {
        struct kf_strbuf why = KF_STRBUF_INIT;

        kf_causes_format(&causes, &why);
        kf_err(err, r, "%s", why.buf);
        kf_strbuf_release(&why);
    }
    if (r == 0 && ret_rev)
        *ret_rev = kf_obj_rv(ret);
    json_decref(ret);
    kf_causes_release(&causes);
    free(text);
    return r;
}

int kf_cap_wait_rev(struct kf_informer *inf, int64_t rev, int timeout_ms)
{
    uint64_t end = kf_mono_ns() + (uint64_t)timeout_ms * 1000000ULL;
    long pause_ns = 20000;

    while (kf_informer_rev(inf) < rev) {
        struct timespec ts = { 0, pause_ns };

        if (kf_mono_ns() > end)
            return 0;
        nanosleep(&ts, NULL);
        pause_ns = KF_MIN(pause_ns * 2, 2000000L);
    }
    return 1;
}

int64_t kf_cap_profile_grace_ms(const json_t *profile)
{
    const char *g = kf_json_str(profile, "spec.heartbeatGrace", NULL);
    int64_t ms;

    return g && kf_parse_duration_ms(g, &ms) == 0 && ms > 0 ? ms : 0;
}

void kf_capacity_options_default(struct kf_capacity_options *o)
{
    memset(o, 0, sizeof(*o));
    o->host_grace_ms = KF_CAPACITY_HOST_GRACE_MS;
    o->grades = NULL;
    kf_grade_shift_policy_default(&o->shift);
    kf_place_policy_default(&o->policy);
    o->default_host.cpu_milli = 64 * 1000;
    o->default_host.mem_bytes = 256 * KF_GIB;
    o->unit_loss_grace_ms = KF_UNIT_LOSS_GRACE_MS;
    o->unit_loss_concurrency = KF_UNIT_LOSS_CONCURRENCY;
}
