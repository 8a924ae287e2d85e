/* ctrl-profiles.c: installs the six default Profiles (standard,
 * serverless, ai, baremetal, edge, windows) when they are absent.
 *
 * The profiles are examples/profiles.yaml, compiled in. init parses and
 * admits each one (a broken built-in profile stops kfleetd at once, and
 * the unit tests catch it first); setup queues their names; a reconcile
 * creates a default profile the store does not have. It only ever creates:
 * an operator's edits are never overwritten, and each name is looked at
 * once per start, so a profile an operator deletes stays deleted until
 * kfleetd starts again. Store errors are retried with the runtime's
 * back-off, so kfleetd starts even when the store is slow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>

#include "kfleet/capacity.h"
#include "kfleet/controllers.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/log.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-capacity.h"

KF_LOG_MODULE(profiles);

extern const char kf_data_profiles_yaml[];
extern const size_t kf_data_profiles_yaml_len;

const char *kf_default_profiles_yaml(size_t *ret_len)
{
    if (ret_len)
        *ret_len = kf_data_profiles_yaml_len;
    return kf_data_profiles_yaml;
}

struct profiles_ctrl {
    struct kf_registry *reg;
    json_t *defaults; /* array of Profile objects */
    pthread_mutex_t lock;
    bool *done; /* per default: looked at since start */
};

static int setup(struct kf_ctrl *c)
{
    struct profiles_ctrl *d = kf_ctrl_data(c);
    size_t i;
    json_t *p;

    json_array_foreach(d->defaults, i, p) kf_ctrl_enqueue(c, kf_obj_name(p));
    return 0;
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *requeue_after_ms)
{
    struct profiles_ctrl *d = kf_ctrl_data(c);
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *p = NULL, *obj;
    size_t i, idx = 0;
    bool done;
    int r;

    json_array_foreach(d->defaults, i, obj) if (strcmp(kf_obj_name(obj), name) == 0)
    {
        p = obj;
        idx = i;
    }
    if (!p)
        return 0; /* an operator's own profile */
    pthread_mutex_lock(&d->lock);
    done = d->done[idx];
    pthread_mutex_unlock(&d->lock);
    if (done)
        return 0;
    obj = json_deep_copy(p);
    r = kf_registry_create(d->reg, &kf_kind_profile, obj, NULL, &causes, &err);
    json_decref(obj);
    if (r == 0)
        kf_log_info("installed the default profile \"%s\"", name);
    if (r == 0 || r == -KF_EEXISTS) {
        pthread_mutex_lock(&d->lock);
        d->done[idx] = true;
        pthread_mutex_unlock(&d->lock);
        r = 0;
    } else {
        kf_log_rl_warn("cannot install the default profile \"%s\": %s; retrying", name,
                       err.len ? err.buf : strerror(-r));
    }
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
    return r;
}

const struct kf_ctrl_ops kf_ctrl_profiles_ops = {
    .name = "profiles",
    .primary_kind = "Profile",
    .workers = 1,
    .setup = setup,
    .reconcile = reconcile,
};

int kf_ctrl_profiles_init(const struct kf_ctrl_env *env, void **ret, struct kf_strbuf *err)
{
    struct profiles_ctrl *d;
    size_t len, i;
    const char *yaml = kf_default_profiles_yaml(&len);
    json_t *docs = NULL, *p;
    int r;

    r = kf_yaml_load_all(yaml, len, &docs, err);
    if (r < 0)
        return r;
    json_array_foreach(docs, i, p)
    {
        struct kf_causes causes = KF_CAUSES_INIT;
        json_t *copy = json_deep_copy(p);

        r = kf_kind_admit(&kf_kind_profile, copy, NULL, false, &causes);
        json_decref(copy);
        if (r < 0) {
            struct kf_strbuf why = KF_STRBUF_INIT;

            kf_causes_format(&causes, &why);
            kf_err(err, r, "built-in profile %zu (\"%s\") is not valid: %s", i,
                   kf_obj_name(p) ? kf_obj_name(p) : "", why.buf);
            kf_strbuf_release(&why);
            kf_causes_release(&causes);
            json_decref(docs);
            return r;
        }
        kf_causes_release(&causes);
    }
    d = kf_xcalloc(1, sizeof(*d));
    d->reg = env->reg;
    d->defaults = docs;
    d->done = kf_xcalloc(json_array_size(docs) + 1, sizeof(*d->done));
    pthread_mutex_init(&d->lock, NULL);
    *ret = d;
    return 0;
}

void kf_ctrl_profiles_fini(void *data)
{
    struct profiles_ctrl *d = data;

    if (!d)
        return;
    json_decref(d->defaults);
    free(d->done);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
