/* test-store-crash.c: an acknowledged write survives kill -9 (SQLite store).
 *
 * Each round forks a child that opens the store and writes as fast as it
 * can from two threads (transactions of one to three puts or deletes, so
 * that group commit batches them). After every acknowledged transaction it
 * reports what it wrote to the parent through a pipe. The parent kills the
 * child with SIGKILL at a random moment, reads what is left in the pipe,
 * reopens the database and checks that every acknowledged write is there
 * at its revision with its value (in the history, and as the current value
 * of its key unless a later write replaced it), that revisions have no
 * gaps, and that the store still works. Rounds cover sync=normal,
 * sync=full, and compaction running while the child is killed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kfleet/error.h"
#include "kfleet/file.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

#define NKEYS   48
#define THREADS 2

/* One acknowledged op, as the child reports it (smaller than PIPE_BUF, so
 * that the threads' writes to the pipe do not interleave). */
struct ack {
    int64_t rev;
    uint32_t seq;
    uint16_t key;
    uint8_t type; /* KF_OP_PUT or KF_OP_DELETE */
    uint8_t tid;
    uint8_t index; /* the op's index in its transaction */
    uint8_t round;
};

static char tmpdir[] = "/tmp/kf-test-crash-XXXXXX";

static void key_name(char *buf, size_t size, unsigned key)
{
    snprintf(buf, size, "/crash/%02u", key);
}

static void value_of(char *buf, size_t size, const struct ack *a)
{
    /* some values are large enough to span SQLite pages */
    int pad = (a->seq % 7 == 0) ? 3000 : 10;

    snprintf(buf, size, "r%u-t%u-s%u-i%u-%0*d", a->round, a->tid, a->seq, a->index, pad, 7);
}

/* --- the child --------------------------------------------------------------- */

struct writer {
    struct kf_store *s;
    int fd;
    uint8_t tid, round;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    unsigned seed = (unsigned)getpid() * 31u + w->tid;

    for (uint32_t seq = 1;; seq++) {
        char keys[3][32], vals[3][3200];
        struct kf_op ops[3];
        struct ack acks[3];
        size_t n = 1 + (size_t)(rand_r(&seed) % 3), used = 0;
        int64_t rev;

        for (size_t i = 0; i < n; i++) {
            unsigned k = (unsigned)rand_r(&seed) % NKEYS;
            bool dup = false;

            for (size_t j = 0; j < used; j++)
                dup |= acks[j].key == k;
            if (dup)
                continue;
            acks[used] = (struct ack){ .seq = seq,
                                       .key = (uint16_t)k,
                                       .tid = w->tid,
                                       .index = (uint8_t)used,
                                       .round = w->round };
            key_name(keys[used], sizeof(keys[used]), k);
            if (rand_r(&seed) % 8 == 0) {
                acks[used].type = KF_OP_DELETE;
                ops[used] = (struct kf_op){ .type = KF_OP_DELETE,
                                            .key = keys[used],
                                            .expect_mod_rev = KF_REV_ANY };
            } else {
                acks[used].type = KF_OP_PUT;
                value_of(vals[used], sizeof(vals[used]), &acks[used]);
                ops[used] = (struct kf_op){ KF_OP_PUT, keys[used], vals[used], strlen(vals[used]),
                                            KF_REV_ANY };
            }
            used++;
        }
        if (kf_store_txn(w->s, ops, used, &rev, NULL) < 0)
            continue; /* a delete of a missing key */
        for (size_t i = 0; i < used; i++) {
            acks[i].rev = rev;
            if (write(w->fd, &acks[i], sizeof(acks[i])) != (ssize_t)sizeof(acks[i]))
                _exit(4);
        }
    }
    return NULL;
}

static void *compactor_main(void *arg)
{
    struct kf_store *s = arg;

    for (;;) {
        int64_t rev = kf_store_rev(s);

        usleep(20000);
        if (rev > 200)
            kf_store_compact(s, rev - 100);
    }
    return NULL;
}

static void KF_NORETURN child_main(const char *url, int fd, uint8_t round, bool compact)
{
    struct writer w[THREADS];
    struct kf_store *s = NULL;
    pthread_t th;

    if (kf_store_open(url, &s, NULL) < 0)
        _exit(3);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct writer){ .s = s, .fd = fd, .tid = (uint8_t)i, .round = round };
        pthread_create(&th, NULL, writer_main, &w[i]);
    }
    if (compact)
        pthread_create(&th, NULL, compactor_main, s);
    for (;;)
        pause();
}

/* --- the parent -------------------------------------------------------------- */

struct acks {
    struct ack *items;
    size_t n, alloc;
};

static int ack_cmp(const void *a, const void *b)
{
    const struct ack *x = a, *y = b;

    if (x->rev != y->rev)
        return x->rev < y->rev ? -1 : 1;
    return (int)x->index - (int)y->index;
}

static void read_acks(int fd, struct acks *out, size_t *partial, char *buf)
{
    for (;;) {
        ssize_t r = read(fd, buf + *partial, sizeof(struct ack) - *partial);

        if (r <= 0)
            return;
        *partial += (size_t)r;
        if (*partial == sizeof(struct ack)) {
            KF_GROW(out->items, out->alloc, out->n);
            memcpy(&out->items[out->n++], buf, sizeof(struct ack));
            *partial = 0;
        }
    }
}

/* Runs the child for a random time, kills it, returns what it acknowledged. */
static void run_and_kill(const char *url, uint8_t round, bool compact, unsigned *seed,
                         struct acks *acks)
{
    int p[2];
    pid_t pid;
    char buf[sizeof(struct ack)];
    size_t partial = 0;
    int status;
    uint64_t start, run_ns;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_main(url, p[1], round, compact);
    }
    close(p[1]);
    /* read until the deadline, then kill and read what is left */
    run_ns = (200 + (uint64_t)(rand_r(seed) % 600)) * 1000000ull;
    start = kf_mono_ns();
    while (kf_mono_ns() - start < run_ns) {
        size_t before = acks->n;
        ssize_t r = read(p[0], buf + partial, sizeof(buf) - partial);

        if (r <= 0)
            break; /* the child died on its own: reported below */
        partial += (size_t)r;
        if (partial == sizeof(buf)) {
            KF_GROW(acks->items, acks->alloc, acks->n);
            memcpy(&acks->items[acks->n++], buf, sizeof(buf));
            partial = 0;
        }
        (void)before;
    }
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("the writer exited by itself (status %d) before it was killed", status);
    read_acks(p[0], acks, &partial, buf);
    close(p[0]);
    assert_int_equal(partial, 0);
}

static void check_round(const char *url, struct acks *acks, int64_t start_rev, bool compacted)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_store *s = NULL;
    struct kf_store_status st;
    struct kf_event_list h = { 0 };
    int64_t from, last[NKEYS], rev;
    size_t e = 0, lastack[NKEYS];
    struct kf_kv kv = { 0 };
    struct kf_watch *w = NULL;
    struct kf_event *ev = NULL;

    if (kf_store_open(url, &s, &err) < 0)
        fail_msg("cannot reopen \"%s\" after kill -9: %s", url, err.buf);
    kf_strbuf_release(&err);
    assert_int_equal(kf_store_status(s, &st), 0);
    assert_true(acks->n > 0);
    qsort(acks->items, acks->n, sizeof(*acks->items), ack_cmp);
    assert_true(st.rev >= acks->items[acks->n - 1].rev);
    print_message("  reopened at revision %lld, compacted %lld\n", (long long)st.rev,
                  (long long)st.compacted_rev);

    /* every acknowledged op is in the history at its revision */
    from = KF_MAX(start_rev, st.compacted_rev);
    assert_int_equal(kf_store_history(s, from, 0, &h), 0);
    for (size_t i = 0; i < acks->n; i++) {
        const struct ack *a = &acks->items[i];
        char key[32], val[3200];

        if (a->rev <= from)
            continue;
        key_name(key, sizeof(key), a->key);
        while (e < h.n &&
               (h.items[e]->kv.mod_rev < a->rev ||
                (h.items[e]->kv.mod_rev == a->rev && strcmp(h.items[e]->kv.key, key) != 0)))
            e++;
        if (e == h.n)
            fail_msg("acknowledged %s of \"%s\" at revision %lld is not in the history",
                     a->type == KF_OP_PUT ? "put" : "delete", key, (long long)a->rev);
        assert_int_equal(h.items[e]->kv.mod_rev, a->rev);
        if (a->type == KF_OP_PUT) {
            assert_int_equal(h.items[e]->type, KF_EVENT_PUT);
            value_of(val, sizeof(val), a);
            assert_string_equal(h.items[e]->kv.value, val);
        } else {
            assert_int_equal(h.items[e]->type, KF_EVENT_DELETE);
        }
    }
    /* without compaction the history has no holes: one transaction a revision */
    if (!compacted) {
        int64_t expect = start_rev + 1;

        for (size_t i = 0; i < h.n; i++) {
            if (h.items[i]->kv.mod_rev == expect)
                expect++;
            else
                assert_int_equal(h.items[i]->kv.mod_rev, expect - 1);
        }
        assert_int_equal(expect - 1, st.rev);
    }

    /* each key's last acknowledged write is its value, unless a later
     * (unacknowledged) write replaced it */
    for (int k = 0; k < NKEYS; k++)
        last[k] = 0;
    for (size_t i = 0; i < acks->n; i++) {
        last[acks->items[i].key] = acks->items[i].rev;
        lastack[acks->items[i].key] = i;
    }
    for (int k = 0; k < NKEYS; k++) {
        const struct ack *a = &acks->items[lastack[k]];
        char key[32], val[3200];
        int r;

        if (!last[k])
            continue;
        key_name(key, sizeof(key), (unsigned)k);
        r = kf_store_get(s, key, &kv);
        if (a->type == KF_OP_DELETE) {
            assert_true(r == -KF_ENOTFOUND || (r == 0 && kv.create_rev > a->rev));
        } else if (r == -KF_ENOTFOUND) {
            /* an unacknowledged delete came later */
            bool deleted = a->rev < st.compacted_rev;

            for (size_t i = 0; i < h.n && !deleted; i++)
                deleted = h.items[i]->type == KF_EVENT_DELETE && h.items[i]->kv.mod_rev > a->rev &&
                          strcmp(h.items[i]->kv.key, key) == 0;
            if (!deleted)
                fail_msg("\"%s\", put at revision %lld, is gone", key, (long long)a->rev);
        } else {
            assert_int_equal(r, 0);
            assert_true(kv.mod_rev >= a->rev);
            if (kv.mod_rev == a->rev) {
                value_of(val, sizeof(val), a);
                assert_string_equal(kv.value, val);
            }
        }
        kf_kv_release(&kv);
    }

    kf_event_list_release(&h);

    /* the store still works: writes follow on, watches resume */
    assert_int_equal(kf_watch_open(s, "/crash/", st.rev - 1, NULL, NULL, &w), 0);
    assert_int_equal(kf_store_put(s, "/crash/after", "alive", 5, KF_REV_ANY, &rev), 0);
    assert_int_equal(rev, st.rev + 1);
    assert_int_equal(kf_watch_next(w, &ev), 1);
    assert_int_equal(ev->kv.mod_rev, st.rev);
    kf_event_unref(ev);
    kf_watch_close(w);
    kf_store_close(s);
}

static void crash_round(const char *url, uint8_t round, bool compact, unsigned seed)
{
    struct acks acks = { 0 };
    struct kf_store *s = NULL;
    int64_t start_rev;

    assert_int_equal(kf_store_open(url, &s, NULL), 0);
    start_rev = kf_store_rev(s);
    kf_store_close(s);
    run_and_kill(url, round, compact, &seed, &acks);
    print_message("round %u (%s%s): %zu acknowledged ops up to revision %lld\n", round, url,
                  compact ? ", compacting" : "", acks.n,
                  acks.n ? (long long)acks.items[acks.n - 1].rev : 0LL);
    check_round(url, &acks, start_rev, compact);
    free(acks.items);
}

static unsigned test_seed(void)
{
    const char *env = getenv("KF_TEST_SEED");
    int64_t v;

    if (env && kf_parse_int64(env, &v) == 0)
        return (unsigned)v;
    return (unsigned)(kf_mono_ns() ^ (uint64_t)getpid());
}

static void test_kill9(void **state)
{
    char *path = kf_xasprintf("%s/db/kf.db", tmpdir);
    char *normal = kf_xasprintf("sqlite:%s", path);
    char *full = kf_xasprintf("sqlite:%s?sync=full", path);
    unsigned seed = test_seed();

    print_message("seed %u (set KF_TEST_SEED to repeat)\n", seed);
    crash_round(normal, 1, false, seed);
    crash_round(full, 2, false, seed + 1);
    crash_round(normal, 3, true, seed + 2);
    crash_round(normal, 4, false, seed + 3);
    free(path);
    free(normal);
    free(full);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9),
    };
    int r;

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    r = cmocka_run_group_tests_name("store: kill -9", tests, NULL, NULL);
    kf_remove_tree(tmpdir);
    return r;
}
