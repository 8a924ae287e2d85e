/* cli-migrate-store.c: `kfleet migrate-store SRC DST`: copies a fleet from
 * one store to another (sqlite:PATH -> etcd:URLS is the operator's path),
 * through the store layer directly, not through a kfleetd.
 *
 *   1. open both stores; a SQLite store that a kfleetd holds is refused
 *      with "stop kfleetd first" (the store's own lock says so);
 *   2. read every source key at ONE revision (pages at that revision), so
 *      the copy is a consistent snapshot even if something wrote meanwhile;
 *   3. read the destination's keys (kfleetd's own bookkeeping under
 *      /_kfleet/, such as the leader key, is not fleet data and is left
 *      alone) and compare: keys already there with the same value are
 *      skipped (this is what makes a re-run resume), keys with another
 *      value, or keys only in the destination, stop the migration before
 *      anything is written, unless --force (then the source wins: values
 *      are overwritten and extra keys deleted);
 *   4. copy the rest in transactions of at most 64 keys or 1 MiB, each
 *      conditional (create only where the key was missing, update only at
 *      the revision we read), printing progress (N of M keys, rate);
 *   5. verify: read the destination again and compare the number of keys
 *      and a SHA-256 digest over every key and value, in key order, with
 *      the source's.
 *
 * Values are copied byte for byte; resourceVersions are not (etcd assigns
 * its own revisions): clients must list again after the move, and watches
 * resumed from an old resourceVersion get 410 Gone. See
 * docs/internals/replicas.md and the README.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <sys/stat.h>
#include <openssl/evp.h>

#include "kfleet/error.h"
#include "kfleet/smap.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

#define PAGE          1000
#define TXN_KEYS      64
#define TXN_BYTES     (1024 * 1024)
#define SYSTEM_PREFIX "/_kfleet/"

const struct kf_cli_opt kf_cli_migrate_store_opts[] = {
    { "force", 0, KF_CLI_FLAG, NULL,
      "overwrite keys whose value differs in the destination and delete keys only it has" },
    { "quiet", 'q', KF_CLI_FLAG, NULL, "no progress lines" },
    { "max-rate", 0, KF_CLI_VALUE, "KEYS",
      "write at most KEYS keys a second (spare a busy etcd; default: as fast as it takes)" },
    { NULL, 0, 0, NULL, NULL },
};

static bool is_system(const char *key)
{
    return strncmp(key, SYSTEM_PREFIX, strlen(SYSTEM_PREFIX)) == 0;
}

/* Every key of s (but kfleetd's own) at revision rev (0: now), in key
 * order, into *ret. */
static int read_all(struct kf_store *s, int64_t rev, struct kf_kv_list *ret, struct kf_strbuf *err)
{
    struct kf_kv_list all = { 0 };
    char *after = NULL;

    for (;;) {
        struct kf_range q = { .prefix = "/", .start_after = after, .limit = PAGE, .rev = rev };
        struct kf_kv_list page = { 0 };
        int r = kf_store_range(s, &q, &page);

        if (r < 0) {
            free(after);
            kf_kv_list_release(&all);
            return kf_err(err, r, "cannot read \"%s\": %s", kf_store_url(s), strerror(-r));
        }
        if (!rev)
            rev = page.rev;
        for (size_t i = 0; i < page.n; i++) {
            if (is_system(page.items[i].key)) {
                kf_kv_release(&page.items[i]);
                continue;
            }
            KF_GROW(all.items, all.alloc, all.n);
            all.items[all.n++] = page.items[i];
        }
        free(after);
        after = page.n ? kf_xstrdup(page.items[page.n - 1].key) : NULL;
        free(page.items);
        if (!page.more || !after)
            break;
    }
    free(after);
    all.rev = rev;
    *ret = all;
    return 0;
}

/* SHA-256 over every (key, value) of l, in its order, as hex. */
static void digest(const struct kf_kv_list *l, char out[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int n = 0;

    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; i < l->n; i++) {
        uint64_t lens[2] = { strlen(l->items[i].key), l->items[i].value_len };

        EVP_DigestUpdate(ctx, lens, sizeof(lens));
        EVP_DigestUpdate(ctx, l->items[i].key, lens[0]);
        EVP_DigestUpdate(ctx, l->items[i].value, lens[1]);
    }
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

struct plan {
    struct kf_op *ops;
    size_t n, alloc;
    size_t same, differ, extra;
};

static void add_op(struct plan *p, struct kf_op op)
{
    KF_GROW(p->ops, p->alloc, p->n);
    p->ops[p->n++] = op;
}

static double now_s(void)
{
    return (double)kf_mono_ns() / 1e9;
}

/* Applies p's ops in small transactions, with progress on cli->err. */
static int copy(struct kf_cli *cli, struct kf_store *dst, const struct plan *p, size_t total,
                bool quiet, int64_t max_rate)
{
    double t0 = now_s(), last = t0;
    size_t i = 0, done = 0, per_txn = TXN_KEYS;

    if (max_rate > 0 && (size_t)max_rate / 10 < per_txn)
        per_txn = KF_MAX((size_t)max_rate / 10, 1);
    while (i < p->n) {
        size_t n = 0, bytes = 0, failed = 0;
        int64_t rev;
        int r;

        if (max_rate > 0) {
            double ahead = (double)done / (double)max_rate - (now_s() - t0);

            if (ahead > 0) {
                struct timespec ts = { (time_t)ahead,
                                       (long)((ahead - (double)(time_t)ahead) * 1e9) };

                nanosleep(&ts, NULL);
            }
        }
        while (i + n < p->n && n < per_txn &&
               (n == 0 || bytes + p->ops[i + n].value_len <= TXN_BYTES)) {
            bytes += p->ops[i + n].value_len;
            n++;
        }
        r = kf_store_txn(dst, &p->ops[i], n, &rev, &failed);
        if (r < 0) {
            fprintf(cli->err,
                    "kfleet migrate-store: writing \"%s\" to the destination failed: %s "
                    "(%zu of %zu keys copied; run the same command again to resume)\n",
                    failed < n ? p->ops[i + failed].key : "?", strerror(-r), done, p->n);
            return KF_CLI_EXIT_REFUSED;
        }
        i += n;
        done += n;
        if (!quiet && (now_s() - last >= 1.0 || i == p->n)) {
            double dt = now_s() - t0;

            last = now_s();
            fprintf(
                cli->err, "copied %zu of %zu keys (%zu to write, %zu already there), %.0f keys/s\n",
                total - p->n + done, total, p->n, total - p->n, dt > 0 ? (double)done / dt : 0.0);
        }
    }
    return KF_CLI_EXIT_OK;
}

/* The command's arguments: the two stores and --max-rate; KF_CLI_EXIT_OK,
 * or KF_CLI_EXIT_USAGE after saying what is wrong. */
static int check_args(struct kf_cli *cli, const struct kf_cli_args *args, int64_t *ret_max_rate)
{
    const char *rate = kf_cli_args_get(args, "max-rate");
    struct stat sb;

    if (args->n_pos != 2) {
        fprintf(cli->err, "kfleet migrate-store: give the source and the destination, e.g.\n"
                          "  kfleet migrate-store sqlite:./var/kfleet.db "
                          "etcd:http://10.0.0.1:2379,http://10.0.0.2:2379\n");
        return KF_CLI_EXIT_USAGE;
    }
    if (rate && (kf_parse_int64(rate, ret_max_rate) < 0 || *ret_max_rate < 1)) {
        fprintf(cli->err,
                "kfleet migrate-store: --max-rate \"%s\": a whole number of keys a "
                "second, at least 1\n",
                rate);
        return KF_CLI_EXIT_USAGE;
    }
    /* opening a SQLite store creates the file: a mistyped path would
     * "migrate" an empty fleet */
    if (strncmp(args->pos[0], "sqlite:", 7) == 0 && stat(args->pos[0] + 7, &sb) < 0) {
        fprintf(cli->err, "kfleet migrate-store: source \"%s\": %s\n", args->pos[0] + 7,
                strerror(errno));
        return KF_CLI_EXIT_USAGE;
    }
    if (strcmp(args->pos[0], args->pos[1]) == 0) {
        fprintf(cli->err, "kfleet migrate-store: source and destination are the same store\n");
        return KF_CLI_EXIT_USAGE;
    }
    return KF_CLI_EXIT_OK;
}

/* The plan that makes the destination equal to the source: both lists are in
 * key order, merged; the first few differences are listed on stderr. */
static void plan_merge(struct kf_cli *cli, const struct kf_kv_list *from,
                       const struct kf_kv_list *to, struct plan *p)
{
    size_t a = 0, b = 0;

    while (a < from->n || b < to->n) {
        int c = a == from->n ? 1 : b == to->n ? -1 : strcmp(from->items[a].key, to->items[b].key);

        if (c < 0) {
            add_op(p, (struct kf_op){ .type = KF_OP_PUT,
                                      .key = from->items[a].key,
                                      .value = from->items[a].value,
                                      .value_len = from->items[a].value_len,
                                      .expect_mod_rev = 0 });
            a++;
        } else if (c > 0) {
            if (p->extra++ < 5)
                fprintf(cli->err, "  only in the destination: %s\n", to->items[b].key);
            add_op(p, (struct kf_op){ .type = KF_OP_DELETE,
                                      .key = to->items[b].key,
                                      .expect_mod_rev = to->items[b].mod_rev });
            b++;
        } else {
            if (from->items[a].value_len == to->items[b].value_len &&
                memcmp(from->items[a].value, to->items[b].value, to->items[b].value_len) == 0) {
                p->same++;
            } else {
                if (p->differ++ < 5)
                    fprintf(cli->err, "  different in the destination: %s\n", to->items[b].key);
                add_op(p, (struct kf_op){ .type = KF_OP_PUT,
                                          .key = from->items[a].key,
                                          .value = from->items[a].value,
                                          .value_len = from->items[a].value_len,
                                          .expect_mod_rev = to->items[b].mod_rev });
            }
            a++;
            b++;
        }
    }
}

int kf_cli_cmd_migrate_store(struct kf_cli *cli, const struct kf_cli_args *args)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_store *src = NULL, *dst = NULL;
    struct kf_kv_list from = { 0 }, to = { 0 }, after = { 0 };
    struct plan p = { 0 };
    bool force = kf_cli_args_has(args, "force"), quiet = kf_cli_args_has(args, "quiet");
    char d1[65], d2[65];
    int rc = KF_CLI_EXIT_OK, r;
    int64_t max_rate = 0;

    rc = check_args(cli, args, &max_rate);
    if (rc != KF_CLI_EXIT_OK)
        return rc;
    r = kf_store_open(args->pos[0], &src, &err);
    if (r < 0) {
        fprintf(cli->err, "kfleet migrate-store: cannot open the source: %s%s\n", err.buf,
                r == -KF_EUNAVAILABLE && strncmp(args->pos[0], "sqlite:", 7) == 0
                    ? "\n(stop kfleetd before migrating its store: it holds the SQLite file)"
                    : "");
        rc = r == -EINVAL ? KF_CLI_EXIT_USAGE : KF_CLI_EXIT_UNREACHABLE;
        goto close_stores;
    }
    kf_strbuf_reset(&err);
    r = kf_store_open(args->pos[1], &dst, &err);
    if (r < 0) {
        fprintf(cli->err, "kfleet migrate-store: cannot open the destination: %s\n", err.buf);
        rc = r == -EINVAL ? KF_CLI_EXIT_USAGE : KF_CLI_EXIT_UNREACHABLE;
        goto close_stores;
    }
    kf_strbuf_reset(&err);
    if (read_all(src, 0, &from, &err) < 0 || read_all(dst, 0, &to, &err) < 0) {
        fprintf(cli->err, "kfleet migrate-store: %s\n", err.buf);
        rc = KF_CLI_EXIT_UNREACHABLE;
        goto close_stores;
    }
    if (!quiet)
        fprintf(cli->err,
                "source \"%s\": %zu keys at revision %lld; destination \"%s\": %zu keys\n",
                args->pos[0], from.n, (long long)from.rev, args->pos[1], to.n);

    plan_merge(cli, &from, &to, &p);
    if ((p.differ || p.extra) && !force) {
        fprintf(cli->err,
                "kfleet migrate-store: the destination holds other data (%zu keys differ, %zu "
                "only there); nothing was written. Use an empty destination (or another "
                "prefix=), or --force to make it equal to the source\n",
                p.differ, p.extra);
        rc = KF_CLI_EXIT_REFUSED;
        goto close_stores;
    }
    if (p.same && !quiet)
        fprintf(cli->err,
                "%zu keys are already in the destination with the same value: "
                "resuming\n",
                p.same);
    rc = copy(cli, dst, &p, from.n, quiet, max_rate);
    if (rc)
        goto close_stores;

    /* Check: the destination now holds exactly the source's snapshot. */
    kf_strbuf_reset(&err);
    if (read_all(dst, 0, &after, &err) < 0) {
        fprintf(cli->err, "kfleet migrate-store: cannot verify: %s\n", err.buf);
        rc = KF_CLI_EXIT_UNREACHABLE;
        goto close_stores;
    }
    digest(&from, d1);
    digest(&after, d2);
    if (after.n != from.n || strcmp(d1, d2) != 0) {
        fprintf(cli->err,
                "kfleet migrate-store: verification FAILED: source %zu keys (sha256 %s), "
                "destination %zu keys (sha256 %s); did something write to the destination? "
                "Run again to resume\n",
                from.n, d1, after.n, d2);
        rc = KF_CLI_EXIT_REFUSED;
        goto close_stores;
    }
    fprintf(cli->out,
            "migrated %zu keys (%zu written, %zu already there%s) from %s at revision %lld to "
            "%s; verified: %zu keys, sha256 %s on both sides\n",
            from.n, p.n, p.same, p.extra ? ", extra keys deleted" : "", args->pos[0],
            (long long)from.rev, args->pos[1], after.n, d1);
    fprintf(cli->out, "resourceVersions are the destination's now: clients must list again "
                      "(old watches get 410 Gone)\n");
close_stores:
    free(p.ops);
    kf_kv_list_release(&from);
    kf_kv_list_release(&to);
    kf_kv_list_release(&after);
    kf_store_close(dst);
    kf_store_close(src);
    kf_strbuf_release(&err);
    return rc;
}
