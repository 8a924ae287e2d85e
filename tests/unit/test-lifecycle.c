/* test-lifecycle.c: the lifecycle controller's pieces that need no
 * processes: member ports (unique per address, remembered while the
 * informer catches up, shared addresses share the range), the cluster PKI
 * kept in the store (issued once, then only read back; a new kfleetd with
 * an empty data directory carries on with the same CAs), and certificate
 * bundles (only what a component needs, a hash that changes when a
 * certificate does). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "kfleet/catalog.h"
#include "kfleet/file.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "controllers/ctrl-lifecycle.h"

static void test_ports(void **state)
{
    struct lc_ports *p = kf_lifecycle_ports_new(30100, 30115);
    json_t *m1 = json_pack("{s:i, s:i}", "client", 30100, "peer", 30102);
    json_t *far = json_pack("{s:i}", "client", 40000);
    int got[8], more[32];

    (void)state;
    /* two hosts share 10.0.0.1; a member on each, an endpoint on it */
    assert_true(kf_lifecycle_ports_host(p, "h1", "10.0.0.1"));
    assert_false(kf_lifecycle_ports_host(p, "h1", "10.0.0.1"));
    kf_lifecycle_ports_host(p, "h2", "10.0.0.1");
    kf_lifecycle_ports_member(p, "m1", "h1", m1);
    kf_lifecycle_ports_member(p, "m-out", "h2", far); /* outside the range: ignored */
    kf_lifecycle_ports_endpoint(p, "c1", "10.0.0.1", 30104);
    assert_true(kf_lifecycle_ports_used(p, "10.0.0.1", 30100));
    assert_true(kf_lifecycle_ports_used(p, "10.0.0.1", 30104));
    assert_false(kf_lifecycle_ports_used(p, "10.0.0.2", 30100));
    assert_int_equal(kf_lifecycle_ports_pick(p, "10.0.0.1", 3, got), 0);
    assert_int_equal(got[0], 30101);
    assert_int_equal(got[1], 30103);
    assert_int_equal(got[2], 30105);
    /* handed out a moment ago: not again, though no member holds them yet */
    assert_int_equal(kf_lifecycle_ports_pick(p, "10.0.0.1", 2, more), 0);
    assert_int_equal(more[0], 30106);
    assert_int_equal(more[1], 30107);
    /* another address has the whole range */
    assert_int_equal(kf_lifecycle_ports_pick(p, "10.0.0.2", 1, more), 0);
    assert_int_equal(more[0], 30100);
    /* h1 moves to 10.0.0.3: m1's ports go with it */
    assert_true(kf_lifecycle_ports_host(p, "h1", "10.0.0.3"));
    assert_false(kf_lifecycle_ports_used(p, "10.0.0.1", 30100));
    assert_true(kf_lifecycle_ports_used(p, "10.0.0.3", 30102));
    /* a member seen before its host counts once the host is */
    kf_lifecycle_ports_member(p, "m3", "h3", m1);
    assert_false(kf_lifecycle_ports_used(p, "10.0.0.4", 30100));
    kf_lifecycle_ports_host(p, "h3", "10.0.0.4");
    assert_true(kf_lifecycle_ports_used(p, "10.0.0.4", 30100));
    /* a deleted member, a cluster without endpoint, hold nothing */
    kf_lifecycle_ports_member(p, "m3", NULL, NULL);
    kf_lifecycle_ports_endpoint(p, "c1", NULL, 0);
    assert_false(kf_lifecycle_ports_used(p, "10.0.0.4", 30100));
    assert_false(kf_lifecycle_ports_used(p, "10.0.0.1", 30104));
    /* two members on one port (it never happens, but the count holds) */
    kf_lifecycle_ports_member(p, "m4", "h2", m1);
    kf_lifecycle_ports_member(p, "m5", "h2", m1);
    kf_lifecycle_ports_member(p, "m4", NULL, NULL);
    assert_true(kf_lifecycle_ports_used(p, "10.0.0.1", 30100));
    /* the range runs out */
    assert_int_equal(kf_lifecycle_ports_pick(p, "10.0.0.1", 20, more), -ENOSPC);
    json_decref(m1);
    json_decref(far);
    kf_lifecycle_ports_free(p);
}

struct env {
    struct kf_store *store;
    char *dir;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    char tmpl[] = "/tmp/kftest-lc-XXXXXX";

    assert_int_equal(kf_store_open("memory:", &e->store, NULL), 0);
    assert_non_null(mkdtemp(tmpl));
    e->dir = strdup(tmpl);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;

    kf_remove_tree(e->dir);
    kf_store_close(e->store);
    free(e->dir);
    free(e);
    return 0;
}

/* web-1: three etcd members and every component on 127.0.0.1, the
 * apiserver at url. */
static const char *const LO[] = { "127.0.0.1", NULL };
static const char *const LOCALHOST[] = { "localhost", NULL };
static const struct kf_pki_etcd_member EM[3] = {
    { "e-0", LO, LOCALHOST },
    { "e-1", LO, LOCALHOST },
    { "e-2", LO, LOCALHOST },
};

static struct lc_pki_input input(const char *url)
{
    static const char *const none[] = { NULL };
    struct lc_pki_input in = {
        .cluster = "web-1",
        .spec = { .cluster = "web-1",
                  .etcd_members = EM,
                  .n_etcd_members = 3,
                  .apiserver_ips = LO,
                  .apiserver_dns = none },
        .controller_manager_ips = LO,
        .scheduler_ips = LO,
        .apiserver_url = url,
    };
    return in;
}

/* kfleetd killed while it issued a cluster's first PKI leaves a directory
 * with a CA key and no certificate, and nothing in the store: the next
 * attempt starts over instead of failing on it for ever. */
static void test_pki_unfinished_attempt(void **state)
{
    struct env *e = *state;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct lc_pki_input in = input("https://127.0.0.1:6443");
    char *root = kf_xasprintf("%s/pki", e->dir), *dir = kf_lifecycle_pki_dir(e->dir, "web-1");
    char *key = kf_xasprintf("%s/ca.key", dir);
    json_t *files = NULL, *stored = NULL;
    int64_t rev = 0;
    FILE *f;

    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    f = fopen(key, "w");
    assert_non_null(f);
    fputs("-----BEGIN PRIVATE KEY-----\ntruncated", f);
    fclose(f);
    if (kf_lifecycle_pki_ensure(e->store, e->dir, &in, &files, NULL, &err) < 0)
        fail_msg("ensure after an unfinished attempt: %s", err.buf);
    assert_non_null(json_object_get(files, "ca.crt"));
    assert_null(strstr(json_string_value(json_object_get(files, "ca.key")), "truncated"));
    assert_int_equal(kf_lifecycle_pki_load(e->store, "web-1", &stored, &rev), 0);
    assert_true(json_equal(stored, files));
    json_decref(stored);
    json_decref(files);
    kf_strbuf_release(&err);
    free(key);
    free(dir);
    free(root);
}

static void test_pki_in_store(void **state)
{
    struct env *e = *state;
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct lc_pki_input in = input("https://127.0.0.1:6443");
    json_t *first = NULL, *again = NULL, *stored = NULL;
    int64_t rev1 = 0, rev2 = 0;
    char *dir;

    if (kf_lifecycle_pki_ensure(e->store, e->dir, &in, &first, NULL, &err) < 0)
        fail_msg("ensure: %s", err.buf);
    assert_non_null(json_object_get(first, "ca.key"));
    assert_non_null(json_object_get(first, "etcd/e-1-peer.key"));
    assert_non_null(json_object_get(first, "sa.key"));
    assert_non_null(json_object_get(first, "controller-manager.kubeconfig"));
    assert_non_null(json_object_get(first, "scheduler-server.crt"));
    assert_int_equal(kf_lifecycle_pki_load(e->store, "web-1", &stored, &rev1), 0);
    assert_true(json_equal(stored, first));
    json_decref(stored);

    /* again with the same input: nothing issued, nothing written */
    assert_int_equal(kf_lifecycle_pki_ensure(e->store, e->dir, &in, &again, NULL, &err), 0);
    assert_true(json_equal(again, first));
    json_decref(again);
    assert_int_equal(kf_lifecycle_pki_load(e->store, "web-1", &stored, &rev2), 0);
    assert_int_equal(rev1, rev2);
    json_decref(stored);

    /* a new leader with an empty data directory: the same CAs and keys */
    dir = kf_lifecycle_pki_dir(e->dir, "web-1");
    assert_int_equal(kf_remove_tree(dir), 0);
    assert_int_equal(kf_lifecycle_pki_ensure(e->store, e->dir, &in, &again, NULL, &err), 0);
    assert_true(json_equal(again, first));
    json_decref(again);
    {
        char *key = kf_xasprintf("%s/etcd/ca.key", dir);

        assert_int_equal(access(key, R_OK), 0);
        free(key);
    }

    /* the apiserver moves: its kubeconfigs follow, the CAs stay */
    in.apiserver_url = "https://127.0.0.1:7443";
    assert_int_equal(kf_lifecycle_pki_ensure(e->store, e->dir, &in, &again, NULL, &err), 0);
    assert_true(json_equal(json_object_get(again, "ca.key"), json_object_get(first, "ca.key")));
    assert_false(json_equal(json_object_get(again, "scheduler.kubeconfig"),
                            json_object_get(first, "scheduler.kubeconfig")));
    assert_non_null(strstr(json_string_value(json_object_get(again, "scheduler.kubeconfig")),
                           "https://127.0.0.1:7443"));

    /* bundles: an etcd member's own keys, never a CA key; the hash follows
     * the content */
    {
        json_t *ports = json_pack("{s:i, s:i, s:i}", "client", 1, "peer", 2, "metrics", 3);
        struct kf_catalog_member m = { "e-1", "etcd", 1, "127.0.0.1", ports, false };
        struct kf_catalog_cluster c = {
            .name = "web-1", .version = "1.37", .members = &m, .n_members = 1
        };
        json_t *list = NULL, *f;
        char h1[65], h2[65];
        size_t i;

        assert_int_equal(kf_lifecycle_bundle(first, &c, 0, &list, h1), 0);
        assert_int_equal(json_array_size(list), 5);
        json_array_foreach(list, i, f)
        {
            const char *pth = json_string_value(json_object_get(f, "path"));

            assert_null(strstr(pth, "ca.key"));
            if (!strcmp(pth, "etcd/peer.key")) {
                assert_true(json_is_true(json_object_get(f, "secret")));
                assert_string_equal(json_string_value(json_object_get(f, "data")),
                                    json_string_value(json_object_get(first, "etcd/e-1-peer.key")));
            }
        }
        json_decref(list);
        assert_int_equal(kf_lifecycle_bundle(again, &c, 0, NULL, h2), 0);
        assert_string_equal(h1, h2); /* its files did not change */
        m.name = "e-9";              /* a member the PKI has no certificate for */
        assert_int_equal(kf_lifecycle_bundle(again, &c, 0, NULL, h2), -ENOENT);
        json_decref(ports);
    }
    json_decref(again);

    /* forgetting the cluster removes the stored key and the working copy */
    assert_int_equal(kf_lifecycle_pki_remove(e->store, e->dir, "web-1"), 0);
    assert_int_equal(kf_lifecycle_pki_load(e->store, "web-1", &stored, NULL), -ENOENT);
    assert_int_equal(access(dir, F_OK), -1);
    free(dir);
    json_decref(first);
    kf_strbuf_release(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ports),
        cmocka_unit_test_setup_teardown(test_pki_in_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pki_unfinished_attempt, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
