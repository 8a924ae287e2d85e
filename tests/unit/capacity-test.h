/* capacity-test.h: a kfleetd without HTTP for the capacity controllers'
 * tests: the memory store, the registry, a lease table, and a controller
 * manager with every controller of kfleetd's table, plus helpers to write
 * objects and wait for what the controllers write back. (Not a test
 * itself: CMake only builds test-*.c.) */
#ifndef KF_CAPACITY_TEST_H
#define KF_CAPACITY_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <jansson.h>

#include "fleet-test.h"
#include "kfleet/capacity.h"
#include "kfleet/controllers.h"
#include "kfleet/error.h"
#include "kfleet/events.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/lease.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

#define WAIT_MS 20000

struct capfx {
    struct kf_store *store;
    struct kf_registry *reg;
    struct kf_lease_table *leases;
    struct kf_ctrl_manager *m;
    struct kf_capacity_options opts;
};

static inline void capfx_open(struct capfx *f)
{
    struct kf_strbuf err = KF_STRBUF_INIT;

    memset(f, 0, sizeof(*f));
    assert_int_equal(kf_store_open("memory:", &f->store, &err), 0);
    f->reg = kf_registry_new(f->store);
    kf_capacity_options_default(&f->opts);
    kf_strbuf_release(&err);
}

/* Starts (or restarts: a new manager and an empty lease table, as after a
 * kfleetd restart) the controllers. */
static inline void capfx_start(struct capfx *f)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_ctrl_env env = { 0 };

    kf_ctrl_manager_free(f->m);
    kf_lease_table_free(f->leases);
    f->leases = kf_lease_table_new(kf_now_ms());
    env.store = f->store;
    env.reg = f->reg;
    env.leases = f->leases;
    env.capacity = &f->opts;
    env.enabled = "profiles,host-lifecycle,unit-status,placement";
    f->m = kf_ctrl_manager_new(f->store, f->reg);
    if (kf_ctrl_manager_add_defs(f->m, &env, &err) < 0)
        fail_msg("controllers: %s", err.buf);
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    kf_strbuf_release(&err);
}

static inline void capfx_close(struct capfx *f)
{
    kf_ctrl_manager_free(f->m);
    kf_lease_table_free(f->leases);
    kf_registry_free(f->reg);
    kf_store_close(f->store);
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Creates an object from test JSON (' for "); fails the test on error. */
static inline void capfx_create(struct capfx *f, const struct kf_kind *k, const char *text)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *obj = J(text);
    int r = kf_registry_create(f->reg, k, obj, NULL, &causes, &err);

    if (r < 0) {
        struct kf_strbuf why = KF_STRBUF_INIT;

        kf_causes_format(&causes, &why);
        fail_msg("create %s failed: %d %s %s", text, r, err.buf, why.buf);
    }
    json_decref(obj);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

static inline json_t *capfx_get(struct capfx *f, const struct kf_kind *k, const char *name)
{
    json_t *obj = NULL;

    if (kf_registry_get(f->reg, k, name, &obj) < 0)
        return NULL;
    return obj;
}

/* Patches and waits until the controllers' informer of k has seen the
 * change (so what comes next is decided with it). */
static inline void capfx_patch(struct capfx *f, const struct kf_kind *k, const char *name,
                               const char *text, bool status)
{
    char *s = kf_xstrdup(text);
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *ret = NULL;
    int r;

    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    r = kf_registry_patch(f->reg, k, name, KF_PATCH_MERGE, s, strlen(s), status, &ret, &causes,
                          &err);
    if (r < 0)
        fail_msg("patch %s %s failed: %d %s", name, text, r, err.buf);
    if (f->m) {
        struct kf_informer *inf = kf_ctrl_informer(f->m, k);

        for (int i = 0; inf && i < WAIT_MS && kf_informer_rev(inf) < kf_obj_rv(ret); i++)
            sleep_ms(1);
    }
    json_decref(ret);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    free(s);
}

/* Whether fn(obj, arg) holds for the object (NULL when absent) now. */
static inline bool capfx_holds(struct capfx *f, const struct kf_kind *k, const char *name,
                               bool (*fn)(const json_t *obj, const void *arg), const void *arg)
{
    json_t *obj = capfx_get(f, k, name);
    bool ok = fn(obj, arg);

    json_decref(obj);
    return ok;
}

/* Waits until fn(obj, arg) holds for the object (NULL when absent), at most
 * WAIT_MS; returns whether it did. */
static inline bool capfx_wait(struct capfx *f, const struct kf_kind *k, const char *name,
                              bool (*fn)(const json_t *obj, const void *arg), const void *arg)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        json_t *obj = capfx_get(f, k, name);
        bool ok = fn(obj, arg);

        json_decref(obj);
        if (ok)
            return true;
        sleep_ms(10);
    }
    return false;
}

static inline bool has_path_str(const json_t *obj, const void *arg)
{
    /* arg: "path=value" */
    const char *eq = strchr(arg, '=');
    char path[256];

    snprintf(path, sizeof(path), "%.*s", (int)(eq - (const char *)arg), (const char *)arg);
    return obj && kf_streq(kf_json_str(obj, path, NULL), eq + 1);
}

static inline bool is_absent(const json_t *obj, const void *arg)
{
    (void)arg;
    return obj == NULL;
}

static inline bool ready_is(const json_t *obj, const void *arg)
{
    const bool *want = arg;
    json_t *v = obj ? kf_json_path(obj, "status.ready") : NULL;

    return json_is_boolean(v) && json_is_true(v) == *want;
}

static inline bool cap_str_in_test(const json_t *array, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach(array, i, v) if (kf_streq(json_string_value(v), s)) return true;
    return false;
}

static inline const json_t *cap_condition_find_test(const json_t *conditions, const char *type)
{
    size_t i;
    json_t *c;

    json_array_foreach(conditions, i, c) if (kf_streq(kf_json_str(c, "type", NULL), type)) return c;
    return NULL;
}

/* The Events about an object (newest first): reasons joined by ",". */
static inline void capfx_event_reasons(struct capfx *f, const char *kind, const char *name,
                                       struct kf_strbuf *out)
{
    json_t *evs = NULL, *e;
    size_t i;

    assert_int_equal(kf_evrec_list_for(f->reg, kind, name, 0, &evs), 0);
    json_array_foreach(evs, i, e)
        kf_strbuf_addf(out, "%s%s", i ? "," : "", kf_json_str(e, "spec.reason", ""));
    json_decref(evs);
}

#endif
