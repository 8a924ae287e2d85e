/* test-ctrl-runtime.c: the controller runtime over a real registry on the
 * memory store: reconciles follow writes, watches of other kinds map to the
 * primary kind, indexes answer, errors are retried, requeues happen, scope
 * hides what a manager does not own, an informer that falls behind
 * compaction lists again and reports what vanished, the cache (which
 * keeps objects deflated against dictionaries it changes as it goes)
 * returns every object's stored bytes exactly, and an informer with a
 * projection hands readers only what it keeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <pthread.h>
#include <cmocka.h>

#include "kfleet/ctrlrt.h"
#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "store/store-internal.h"

#define IDLE_MS 10000

struct seen {
    pthread_mutex_t lock;
    char names[64][64];
    int counts[64];
    int n;
    int fail_first; /* reconciles of "flaky" that fail before one succeeds */
    int requeue_once;
    bool gone_seen;
    /* a member of cluster "gate" holds its informer's thread while closed */
    pthread_cond_t cond;
    bool gate_closed, gate_waiting;
};

static int bump(struct seen *s, const char *name)
{
    int i, c;

    pthread_mutex_lock(&s->lock);
    for (i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            break;
    if (i == s->n && s->n < 64)
        snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", name);
    c = ++s->counts[i];
    pthread_mutex_unlock(&s->lock);
    return c;
}

static int count_of(struct seen *s, const char *name)
{
    int c = 0;

    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            c = s->counts[i];
    pthread_mutex_unlock(&s->lock);
    return c;
}

static int reconcile(struct kf_ctrl *c, const char *name, int64_t *after)
{
    struct seen *s = kf_ctrl_data(c);
    int n = bump(s, name);
    json_t *obj;

    if (strcmp(name, "flaky") == 0 && n <= s->fail_first)
        return -EIO;
    if (strcmp(name, "again") == 0 && n == 1 && s->requeue_once)
        *after = 20;
    if (kf_informer_get(kf_ctrl_primary(c), name, &obj) == 0)
        json_decref(obj);
    else
        s->gone_seen = true;
    return 0;
}

static void member_to_cluster(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    const char *cluster = kf_json_str(obj, "spec.cluster", NULL);
    struct seen *s = kf_ctrl_data(c);

    if (cluster && strcmp(cluster, "gate") == 0 && !deleted) {
        pthread_mutex_lock(&s->lock);
        s->gate_waiting = true;
        pthread_cond_broadcast(&s->cond);
        while (s->gate_closed)
            pthread_cond_wait(&s->cond, &s->lock);
        s->gate_waiting = false;
        pthread_mutex_unlock(&s->lock);
    }
    if (cluster)
        kf_ctrl_enqueue(c, cluster);
}

static void index_by_cluster(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const char *cluster = kf_json_str(obj, "spec.cluster", NULL);

    if (cluster)
        add(cluster, ctx);
}

static int setup(struct kf_ctrl *c)
{
    struct kf_informer *members =
        kf_ctrl_informer(kf_ctrl_manager_of(c), &kf_kind_controlplanemember);
    int r = kf_informer_add_index(members, "cluster", index_by_cluster);

    if (r < 0)
        return r;
    return kf_ctrl_watch(c, &kf_kind_controlplanemember, member_to_cluster);
}

static const struct kf_ctrl_ops test_ops = {
    .name = "test",
    .primary_kind = "GuestCluster",
    .workers = 2,
    .setup = setup,
    .reconcile = reconcile,
};

/* A primary map that queues a cluster under "mapped/NAME", and not at all
 * when it is labelled unit=quiet. */
static void map_primary(struct kf_ctrl *c, const json_t *obj, bool deleted)
{
    char key[128];

    (void)deleted;
    if (kf_streq(kf_json_str(obj, "metadata.labels.unit", NULL), "quiet"))
        return;
    snprintf(key, sizeof(key), "mapped/%s", kf_obj_name(obj));
    kf_ctrl_enqueue(c, key);
}

static const struct kf_ctrl_ops mapped_ops = {
    .name = "mapped",
    .primary_kind = "GuestCluster",
    .reconcile = reconcile,
    .primary_map = map_primary,
};

struct fixture {
    struct kf_store *store;
    struct kf_registry *reg;
    struct kf_ctrl_manager *m;
    struct kf_ctrl *ctrl;
    struct seen seen;
};

static void create(struct fixture *f, const struct kf_kind *k, const char *json)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    struct kf_strbuf err = KF_STRBUF_INIT;
    json_t *obj = json_loads(json, 0, NULL);
    int r;

    assert_non_null(obj);
    r = kf_registry_create(f->reg, k, obj, NULL, &causes, &err);
    if (r < 0) {
        struct kf_strbuf msg = KF_STRBUF_INIT;

        kf_causes_format(&causes, &msg);
        fail_msg("create %s failed: %d %s %s", json, r, err.buf, msg.buf);
    }
    json_decref(obj);
    kf_causes_release(&causes);
    kf_strbuf_release(&err);
}

static void cluster(struct fixture *f, const char *name, const char *unit)
{
    char buf[512];

    snprintf(buf, sizeof(buf),
             "{\"apiVersion\":\"kfleet.io/v1\",\"kind\":\"GuestCluster\","
             "\"metadata\":{\"name\":\"%s\",\"labels\":{\"unit\":\"%s\"}},"
             "\"spec\":{\"region\":\"r1\",\"network\":{\"vpc\":\"vpc-1\"}}}",
             name, unit);
    create(f, &kf_kind_guestcluster, buf);
}

static void member(struct fixture *f, const char *name, const char *of)
{
    char buf[512];

    snprintf(buf, sizeof(buf),
             "{\"apiVersion\":\"kfleet.io/v1\",\"kind\":\"ControlPlaneMember\","
             "\"metadata\":{\"name\":\"%s\"},"
             "\"spec\":{\"cluster\":\"%s\",\"component\":\"etcd\"}}",
             name, of);
    create(f, &kf_kind_controlplanemember, buf);
}

static struct fixture *fixture_new(kf_ctrl_scope_fn scope, void *arg)
{
    struct fixture *f = kf_xcalloc(1, sizeof(*f));
    struct kf_strbuf err = KF_STRBUF_INIT;

    assert_int_equal(kf_store_open("memory:", &f->store, &err), 0);
    f->reg = kf_registry_new(f->store);
    pthread_mutex_init(&f->seen.lock, NULL);
    pthread_cond_init(&f->seen.cond, NULL);
    f->m = kf_ctrl_manager_new(f->store, f->reg);
    if (scope)
        kf_ctrl_manager_set_scope(f->m, scope, arg);
    assert_int_equal(kf_ctrl_manager_add(f->m, &test_ops, &f->seen, &f->ctrl), 0);
    kf_strbuf_release(&err);
    return f;
}

static void fixture_free(struct fixture *f)
{
    kf_ctrl_manager_free(f->m);
    kf_registry_free(f->reg);
    kf_store_close(f->store);
    pthread_mutex_destroy(&f->seen.lock);
    pthread_cond_destroy(&f->seen.cond);
    free(f);
}

static void test_reconcile_follows_writes(void **state)
{
    struct fixture *f = fixture_new(NULL, NULL);
    char **names;
    size_t n;

    (void)state;
    cluster(f, "before", "u1"); /* exists before start: the initial list */
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    cluster(f, "after", "u1");
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    assert_int_equal(count_of(&f->seen, "before"), 1);
    assert_int_equal(count_of(&f->seen, "after"), 1);

    /* a member maps to its cluster, and the index finds it */
    member(f, "after-etcd-0", "after");
    member(f, "after-etcd-1", "after");
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    assert_true(count_of(&f->seen, "after") >= 2);
    n = kf_informer_index_names(kf_ctrl_informer(f->m, &kf_kind_controlplanemember), "cluster",
                                "after", &names);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "after-etcd-0");
    assert_string_equal(names[1], "after-etcd-1");
    kf_ctrl_names_free(names, n);

    /* deleting an object reconciles it once more; the cache no longer has it */
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_guestcluster, "before", 0, NULL, NULL), 0);
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    assert_int_equal(count_of(&f->seen, "before"), 2);
    assert_true(f->seen.gone_seen);
    assert_int_equal(kf_informer_count(kf_ctrl_primary(f->ctrl)), 1);
    fixture_free(f);
}

/* Events of the primary kind go through the controller's primary_map, the
 * initial list too; nothing is queued by the name alone. */
static void test_primary_map(void **state)
{
    struct fixture *f = kf_xcalloc(1, sizeof(*f));
    struct kf_strbuf err = KF_STRBUF_INIT;

    (void)state;
    assert_int_equal(kf_store_open("memory:", &f->store, &err), 0);
    f->reg = kf_registry_new(f->store);
    pthread_mutex_init(&f->seen.lock, NULL);
    pthread_cond_init(&f->seen.cond, NULL);
    f->m = kf_ctrl_manager_new(f->store, f->reg);
    assert_int_equal(kf_ctrl_manager_add(f->m, &mapped_ops, &f->seen, &f->ctrl), 0);
    cluster(f, "before", "u1");
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    cluster(f, "after", "u1");
    cluster(f, "hush", "quiet");
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    assert_int_equal(count_of(&f->seen, "mapped/before"), 1);
    assert_int_equal(count_of(&f->seen, "mapped/after"), 1);
    assert_int_equal(count_of(&f->seen, "before"), 0);
    assert_int_equal(count_of(&f->seen, "after"), 0);
    assert_int_equal(count_of(&f->seen, "hush"), 0);
    assert_int_equal(count_of(&f->seen, "mapped/hush"), 0);
    kf_strbuf_release(&err);
    fixture_free(f);
}

static void test_errors_retry_and_requeue(void **state)
{
    struct fixture *f = fixture_new(NULL, NULL);
    struct kf_ctrl_stats st;

    (void)state;
    f->seen.fail_first = 3;
    f->seen.requeue_once = 1;
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    cluster(f, "flaky", "u1");
    cluster(f, "again", "u1");
    /* back-off of 5, 10, 20 ms and a 20 ms requeue: wait for the outcome */
    for (int i = 0; i < 500 && (count_of(&f->seen, "flaky") < 4 || count_of(&f->seen, "again") < 2);
         i++) {
        kf_ctrl_manager_wait_idle(f->m, 10);
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    assert_int_equal(count_of(&f->seen, "flaky"), 4);
    assert_int_equal(count_of(&f->seen, "again"), 2);
    kf_ctrl_stats(f->ctrl, &st);
    assert_int_equal(st.errors, 3);
    assert_true(st.requeues >= 1);
    fixture_free(f);
}

static bool only_u1(const struct kf_kind *k, const json_t *obj, void *arg)
{
    (void)arg;
    if (k != &kf_kind_guestcluster)
        return true;
    return kf_streq(kf_obj_label(obj, "unit"), "u1");
}

static void test_scope(void **state)
{
    struct fixture *f = fixture_new(only_u1, NULL);

    (void)state;
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    cluster(f, "mine", "u1");
    cluster(f, "theirs", "u2");
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    assert_int_equal(count_of(&f->seen, "mine"), 1);
    assert_int_equal(count_of(&f->seen, "theirs"), 0);
    assert_int_equal(kf_informer_count(kf_ctrl_primary(f->ctrl)), 1);
    fixture_free(f);
}

static void test_relist_after_compaction(void **state)
{
    struct fixture *f;
    int64_t rev;
    char name[32];

    (void)state;
    /* a window of 2 events: the informer reads history, which we compact
     * away while it is stopped, so it must list again */
    kf_watch_set_default_window(2, 0);
    f = fixture_new(NULL, NULL);
    kf_watch_set_default_window(0, 0);
    cluster(f, "keep", "u1");
    cluster(f, "drop", "u1");
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    assert_int_equal(kf_informer_count(kf_ctrl_primary(f->ctrl)), 2);
    /* many writes, a delete among them, then compaction of all of it */
    assert_int_equal(kf_registry_delete(f->reg, &kf_kind_guestcluster, "drop", 0, NULL, NULL), 0);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "bulk-%02d", i);
        cluster(f, name, "u1");
    }
    rev = kf_store_rev(f->store);
    kf_store_compact(f->store, rev);
    cluster(f, "last", "u1");
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    /* whatever path it took, the cache matches the store */
    assert_int_equal(kf_informer_count(kf_ctrl_primary(f->ctrl)), 22);
    assert_true(count_of(&f->seen, "drop") >= 2);
    assert_int_equal(count_of(&f->seen, "last"), 1);
    fixture_free(f);
}

/* A member whose bytes vary: components, sizes, some tiny ones that stay
 * plain, most a few KB (as real ones, with a status), some much bigger than
 * a dictionary. */
static size_t put_member(struct fixture *f, int i, int version)
{
    static const char *const comps[] = { "etcd", "kube-apiserver", "kube-scheduler",
                                         "kube-controller-manager", "cp-addons" };
    struct kf_strbuf b = KF_STRBUF_INIT;
    char key[128];
    size_t len;

    snprintf(key, sizeof(key), "/controlplanemembers/m%05d", i);
    if (i % 97 == 0) {
        kf_strbuf_addf(&b, "{\"metadata\":{\"name\":\"m%05d\"}}", i);
    } else {
        kf_strbuf_addf(&b,
                       "{\"apiVersion\":\"kfleet.io/v1\",\"kind\":\"ControlPlaneMember\","
                       "\"metadata\":{\"name\":\"m%05d\",\"uid\":\"%08x-%d\"},\"spec\":{"
                       "\"cluster\":\"c%d\",\"component\":\"%s\",\"index\":%d,\"args\":[",
                       i, (unsigned)(i * 2654435761u), version, i % 7, comps[i % 5], i);
        for (int a = 0; a < (i % 211 == 0 ? 2000 : i % 9); a++)
            kf_strbuf_addf(&b, "%s\"--flag-%d=%d\"", a ? "," : "", a, i * a + version);
        kf_strbuf_addstr(&b, "]},\"status\":{\"log\":\"");
        for (int a = 0; a < 160; a++)
            kf_strbuf_addf(&b, "step %d of m%05d: %s; ", a, i, a % (3 + version) ? "ok" : "retry");
        kf_strbuf_addstr(&b, "\"}}");
    }
    assert_int_equal(kf_store_put(f->store, key, b.buf, b.len, KF_REV_ANY, NULL), 0);
    len = b.len;
    kf_strbuf_release(&b);
    return len;
}

static void delete_member(struct fixture *f, int i)
{
    char key[128];

    snprintf(key, sizeof(key), "/controlplanemembers/m%05d", i);
    assert_int_equal(kf_store_delete(f->store, key, KF_REV_ANY, NULL), 0);
}

/* Every cached object is byte for byte what the store holds, and there are
 * want of them. Returns the sum of their lengths. */
static size_t check_cache(struct fixture *f, struct kf_informer *members, size_t want)
{
    size_t nn, total = 0;
    char **names;

    nn = kf_informer_names(members, &names);
    assert_int_equal(nn, want);
    for (size_t i = 0; i < nn; i++) {
        struct kf_kv stored = { 0 }, got = { 0 };
        char key[128];

        snprintf(key, sizeof(key), "/controlplanemembers/%s", names[i]);
        assert_int_equal(kf_store_get(f->store, key, &stored), 0);
        assert_int_equal(kf_informer_get_raw(members, names[i], &got), 0);
        assert_int_equal(got.value_len, stored.value_len);
        assert_memory_equal(got.value, stored.value, stored.value_len);
        assert_int_equal(got.value[got.value_len], '\0');
        assert_int_equal(got.mod_rev, stored.mod_rev);
        assert_string_equal(got.key, key);
        total += got.value_len;
        kf_kv_release(&stored);
        kf_kv_release(&got);
    }
    kf_ctrl_names_free(names, nn);
    /* the index follows the latest version of each member */
    nn = kf_informer_index_names(members, "cluster", "c3", &names);
    assert_true(nn > 0);
    for (size_t i = 0; i < nn; i++) {
        json_t *obj;

        assert_int_equal(kf_informer_get(members, names[i], &obj), 0);
        assert_string_equal(kf_json_str(obj, "spec.cluster", ""), "c3");
        json_decref(obj);
    }
    kf_ctrl_names_free(names, nn);
    return total;
}

/* A ControlPlaneMember written to the store as is (the API would refuse to
 * move one between clusters; the index must follow anyway). NULL: none. */
static void raw_member(struct fixture *f, const char *name, const char *of)
{
    char key[128], buf[512];

    snprintf(key, sizeof(key), "/controlplanemembers/%s", name);
    if (of)
        snprintf(buf, sizeof(buf), "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"cluster\":\"%s\"}}",
                 name, of);
    else
        snprintf(buf, sizeof(buf), "{\"metadata\":{\"name\":\"%s\"},\"spec\":{}}", name);
    assert_int_equal(kf_store_put(f->store, key, buf, strlen(buf), KF_REV_ANY, NULL), 0);
}

/* The index's names for value, comma-separated. */
static char *index_of(struct fixture *f, const char *value)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char **names;
    size_t n;

    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    n = kf_informer_index_names(kf_ctrl_informer(f->m, &kf_kind_controlplanemember), "cluster",
                                value, &names);
    for (size_t i = 0; i < n; i++)
        kf_strbuf_addf(&sb, "%s%s", i ? "," : "", names[i]);
    kf_ctrl_names_free(names, n);
    return kf_strbuf_detach(&sb, NULL);
}

#define ASSERT_INDEX(f, value, want)     \
    do {                                 \
        char *got_ = index_of(f, value); \
        assert_string_equal(got_, want); \
        free(got_);                      \
    } while (0)

/* Objects that change their index value, lose it, or go: the index's sets
 * follow (and a value whose last object left starts over). */
static void test_index_follows_changes(void **state)
{
    struct fixture *f = fixture_new(NULL, NULL);

    (void)state;
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    raw_member(f, "m1", "x");
    raw_member(f, "m2", "x");
    raw_member(f, "m3", "y");
    ASSERT_INDEX(f, "x", "m1,m2");
    ASSERT_INDEX(f, "y", "m3");
    raw_member(f, "m1", "y"); /* moves */
    ASSERT_INDEX(f, "x", "m2");
    ASSERT_INDEX(f, "y", "m1,m3");
    raw_member(f, "m1", "y"); /* a new version, the same value */
    ASSERT_INDEX(f, "y", "m1,m3");
    assert_int_equal(kf_store_delete(f->store, "/controlplanemembers/m2", KF_REV_ANY, NULL), 0);
    ASSERT_INDEX(f, "x", "");
    raw_member(f, "m3", NULL); /* loses its value */
    ASSERT_INDEX(f, "y", "m1");
    assert_int_equal(kf_store_delete(f->store, "/controlplanemembers/m1", KF_REV_ANY, NULL), 0);
    ASSERT_INDEX(f, "y", "");
    raw_member(f, "m4", "x");
    raw_member(f, "m3", "x");
    ASSERT_INDEX(f, "x", "m3,m4");
    fixture_free(f);
}

static void test_cache_returns_stored_bytes(void **state)
{
    struct fixture *f;
    struct kf_informer *members;
    const int n = 2600; /* with the updates, more than three dictionaries' worth */
    size_t want = 0, total;
    const char *gate = "{\"metadata\":{\"name\":\"gate\"},\"spec\":{\"cluster\":\"gate\"}}";

    (void)state;
    /* a window of 2 events, so that compaction while the informer is held
     * makes it list again (below) */
    kf_watch_set_default_window(2, 0);
    f = fixture_new(NULL, NULL);
    kf_watch_set_default_window(0, 0);
    members = kf_ctrl_informer(f->m, &kf_kind_controlplanemember);
    for (int i = 0; i < n / 2; i++)
        put_member(f, i, 0);
    assert_int_equal(kf_ctrl_manager_start(f->m), 0); /* half listed, half watched */
    for (int i = n / 2; i < n; i++)
        put_member(f, i, 0);
    for (int i = 0; i < n; i += 3)
        put_member(f, i, 1); /* against a newer dictionary than their first version */
    for (int i = 1; i < n; i += 10)
        delete_member(f, i);
    want = (size_t)(n - n / 10);
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    total = check_cache(f, members, want);
    /* what the cache holds (dictionaries, indexes, bookkeeping included) is
     * well under the objects' bytes */
    assert_true(kf_informer_bytes(members) < total / 2);

    /* Relist: hold the informer in a handler, change a lot, compact the
     * store's history away, let go: it can only list again. Changed objects
     * are deflated anew, unchanged ones keep their dictionaries. */
    pthread_mutex_lock(&f->seen.lock);
    f->seen.gate_closed = true;
    pthread_mutex_unlock(&f->seen.lock);
    assert_int_equal(
        kf_store_put(f->store, "/controlplanemembers/gate", gate, strlen(gate), KF_REV_ANY, NULL),
        0);
    want++;
    pthread_mutex_lock(&f->seen.lock);
    while (!f->seen.gate_waiting)
        pthread_cond_wait(&f->seen.cond, &f->seen.lock);
    pthread_mutex_unlock(&f->seen.lock);
    for (int i = 0; i < n; i += 5) {
        if (i % 10 == 1)
            continue; /* deleted above */
        if (i % 7 == 0) {
            delete_member(f, i);
            want--;
        } else {
            put_member(f, i, 2);
        }
    }
    for (int i = n; i < n + 300; i++)
        put_member(f, i, 0);
    want += 300;
    kf_store_compact(f->store, kf_store_rev(f->store));
    pthread_mutex_lock(&f->seen.lock);
    f->seen.gate_closed = false;
    pthread_cond_broadcast(&f->seen.cond);
    pthread_mutex_unlock(&f->seen.lock);
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    total = check_cache(f, members, want);
    assert_true(kf_informer_bytes(members) < total / 2);

    /* Every object gone: the dictionaries they used are freed, only the
     * current one (at most 8 KiB, DICT_MAX in ctrlrt-informer.c) is left. */
    assert_int_equal(kf_store_delete(f->store, "/controlplanemembers/gate", KF_REV_ANY, NULL), 0);
    for (int i = 0; i < n + 300; i++) {
        struct kf_kv kv = { 0 };
        char key[128];

        snprintf(key, sizeof(key), "/controlplanemembers/m%05d", i);
        if (kf_store_get(f->store, key, &kv) == 0)
            delete_member(f, i);
        kf_kv_release(&kv);
    }
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    assert_int_equal(kf_informer_count(members), 0);
    assert_true(kf_informer_bytes(members) > 0);
    assert_true(kf_informer_bytes(members) <= 8 * 1024 + 64);
    fixture_free(f);
}

/* A projection that keeps a member's name and component and nothing else. */
static json_t *keep_component(const json_t *obj)
{
    return json_pack("{s:{s:s}, s:{s:s}}", "metadata", "name", kf_obj_name(obj), "spec",
                     "component", kf_json_str(obj, "spec.component", ""));
}

static json_t *keep_whole(const json_t *obj)
{
    (void)obj;
    return NULL;
}

/* An informer with a projection: readers get what it keeps, at the
 * object's revision; index functions and handlers get the whole object
 * (the member's cluster, which the projection drops, is indexed and
 * queued). */
static void test_projection(void **state)
{
    struct fixture *f = fixture_new(NULL, NULL);
    struct kf_informer *members = kf_ctrl_informer(f->m, &kf_kind_controlplanemember);
    struct kf_kv kv = { 0 };
    json_t *obj;
    char **names;
    size_t n;

    (void)state;
    assert_int_equal(kf_informer_set_projection(members, keep_component), 0);
    assert_int_equal(kf_informer_set_projection(members, keep_component), 0); /* same: shared */
    assert_int_equal(kf_informer_set_projection(members, keep_whole), -EEXIST);
    member(f, "m-listed", "c1");
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    assert_int_equal(kf_informer_set_projection(members, keep_component), -EBUSY);
    member(f, "m-watched", "c2");
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);

    assert_true(count_of(&f->seen, "c1") > 0);
    assert_true(count_of(&f->seen, "c2") > 0);
    n = kf_informer_index_names(members, "cluster", "c2", &names);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "m-watched");
    kf_ctrl_names_free(names, n);

    assert_int_equal(kf_informer_get(members, "m-watched", &obj), 0);
    assert_string_equal(kf_json_str(obj, "spec.component", ""), "etcd");
    assert_null(kf_json_path(obj, "spec.cluster"));
    assert_null(kf_json_path(obj, "metadata.uid"));
    assert_int_equal(kf_obj_rv(obj), kf_informer_mod_rev(members, "m-watched"));
    json_decref(obj);
    assert_int_equal(kf_informer_get_raw(members, "m-listed", &kv), 0);
    assert_string_equal(kv.value,
                        "{\"metadata\":{\"name\":\"m-listed\"},\"spec\":{\"component\":\"etcd\"}}");
    kf_kv_release(&kv);
    fixture_free(f);
}

/* Indexes every string of spec.tags (an index with several values per
 * object). */
static void index_tags(const json_t *obj, void (*add)(const char *, void *), void *ctx)
{
    const json_t *v;
    size_t i;

    json_array_foreach(kf_json_path(obj, "spec.tags"), i, v)
    {
        if (json_is_string(v))
            add(json_string_value(v), ctx);
    }
}

static void tagged(struct fixture *f, const char *name, const char *tags)
{
    char key[128], buf[512];

    snprintf(key, sizeof(key), "/controlplanemembers/%s", name);
    snprintf(buf, sizeof(buf), "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"tags\":[%s]}}", name,
             tags);
    assert_int_equal(kf_store_put(f->store, key, buf, strlen(buf), KF_REV_ANY, NULL), 0);
}

static char *tag_index(struct fixture *f, struct kf_informer *inf, const char *value)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char **names;
    size_t n;

    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    n = kf_informer_index_names(inf, "tags", value, &names);
    for (size_t i = 0; i < n; i++)
        kf_strbuf_addf(&sb, "%s%s", i ? "," : "", names[i]);
    kf_ctrl_names_free(names, n);
    return kf_strbuf_detach(&sb, NULL);
}

#define ASSERT_TAG(f, inf, value, want)        \
    do {                                       \
        char *got_ = tag_index(f, inf, value); \
        assert_string_equal(got_, want);       \
        free(got_);                            \
    } while (0)

/* An object with several values, one, or none for an index, and changing
 * between these: every set follows, and the cache's bytes go back to what
 * they were once the objects are gone. */
static void test_index_many_values(void **state)
{
    struct fixture *f = fixture_new(NULL, NULL);
    struct kf_informer *members = kf_ctrl_informer(f->m, &kf_kind_controlplanemember);
    size_t empty;

    (void)state;
    assert_int_equal(kf_informer_add_index(members, "tags", index_tags), 0);
    assert_int_equal(kf_ctrl_manager_start(f->m), 0);
    assert_int_equal(kf_ctrl_manager_wait_idle(f->m, IDLE_MS), 1);
    empty = kf_informer_bytes(members);
    tagged(f, "m1", "\"a\",\"b\",\"c\"");
    tagged(f, "m2", "\"b\"");
    tagged(f, "m3", "");
    ASSERT_TAG(f, members, "a", "m1");
    ASSERT_TAG(f, members, "b", "m1,m2");
    ASSERT_TAG(f, members, "c", "m1");
    tagged(f, "m1", "\"c\"");       /* many to one */
    tagged(f, "m2", "\"a\",\"b\""); /* one to many */
    tagged(f, "m3", "\"b\"");       /* none to one */
    ASSERT_TAG(f, members, "a", "m2");
    ASSERT_TAG(f, members, "b", "m2,m3");
    ASSERT_TAG(f, members, "c", "m1");
    tagged(f, "m1", ""); /* one to none */
    ASSERT_TAG(f, members, "c", "");
    for (int i = 1; i <= 3; i++) {
        char key[64];

        snprintf(key, sizeof(key), "/controlplanemembers/m%d", i);
        assert_int_equal(kf_store_delete(f->store, key, KF_REV_ANY, NULL), 0);
    }
    ASSERT_TAG(f, members, "a", "");
    ASSERT_TAG(f, members, "b", "");
    assert_int_equal(kf_informer_count(members), 0);
    /* only the dictionary may differ: no object is left to hold bytes */
    assert_true(kf_informer_bytes(members) <= empty + 8 * 1024 + 64);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reconcile_follows_writes),
        cmocka_unit_test(test_primary_map),
        cmocka_unit_test(test_errors_retry_and_requeue),
        cmocka_unit_test(test_scope),
        cmocka_unit_test(test_relist_after_compaction),
        cmocka_unit_test(test_index_follows_changes),
        cmocka_unit_test(test_cache_returns_stored_bytes),
        cmocka_unit_test(test_projection),
        cmocka_unit_test(test_index_many_values),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
