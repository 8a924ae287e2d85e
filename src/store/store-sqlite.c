/* store-sqlite.c: the durable store backend ("sqlite:PATH[?sync=normal|full]"),
 * etcd's model on one SQLite file. See docs/internals/store.md for the why.
 *
 * Schema (PRAGMA user_version 2, application_id "kflt"):
 *   log(id, key, create_rev, prev_rev, tombstone, value)
 *       every version of every key since the last compaction; id is
 *       rev * OPS_PER_REV + the op's index in its transaction, so the table
 *       is ordered by revision (history is a scan) and a transaction's ops
 *       keep their order. A tombstone records a delete (value NULL).
 *       prev_rev is the key's mod_rev before the change (0: none).
 *       Index log_key(key, id) serves reads at old revisions.
 *   kv(key, id, create_rev)
 *       the live keys only, each pointing at its current version in the
 *       log: get and range at the current revision walk this small table
 *       and fetch each value by id, without searching the versions.
 *   meta(name, value): "compacted" (the compacted revision).
 * The current revision is the highest in the log, or the compacted
 * revision if compaction removed the last transaction (all deletes), so a
 * commit writes no counter.
 *
 * Durability: WAL mode. A transaction returns only after its commit has
 * been written to the WAL, so an acknowledged write survives a crash of the
 * process (kill -9). sync=normal (the default, synchronous=NORMAL) leaves
 * the WAL in the kernel's page cache until a checkpoint: a power loss or
 * kernel crash may lose the latest acknowledged transactions (the database
 * stays consistent at an earlier revision). sync=full (synchronous=FULL)
 * fsyncs the WAL before a transaction returns: acknowledged writes survive
 * power loss too.
 *
 * Concurrency: one writer connection, used by a "leader" that commits the
 * transactions queued meanwhile by other threads as one SQLite transaction
 * (group commit: one WAL write and, with sync=full, one fsync for the lot;
 * each keeps its own revision and conditions) and publishes their events in
 * revision order before anyone else may write. Readers take a connection
 * from a pool (opened on demand, at most MAX_READERS); WAL lets them read a
 * consistent snapshot while the writer commits. Readers map the file
 * (mmap_size) so that they share the kernel's page cache instead of each
 * copying pages: a range of 10,000 keys takes half the time. Another process (or another
 * open in this one) that wants the same database is refused by an flock on
 * "PATH.lock".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kfleet/error.h"
#include "kfleet/log.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "store/store-internal.h"

KF_LOG_MODULE(store);

/* 1: a development schema with values in kv too; never migrated */
#define SCHEMA_VERSION 2
#define APPLICATION_ID 0x6b666c74 /* "kflt" */
/* log ids: rev * OPS_PER_REV + index of the op in its transaction */
#define OPS_PER_REV 1024
#define STR_(x)     #x
#define STR(x)      STR_(x)
#define MAX_READERS 16
/* at most this many transactions committed together */
#define BATCH_MAX_TXNS 256
/* compaction deletes this many revisions per write transaction */
#define COMPACT_CHUNK_REVS 2048
#define BUSY_TIMEOUT_MS    5000

_Static_assert(KF_STORE_MAX_TXN_OPS <= OPS_PER_REV, "log ids need room for every op");

/* --- statements ------------------------------------------------------------ */

#define RANGE_COLS \
    "SELECT kv.key, kv.create_rev, kv.id, log.value FROM kv JOIN log ON log.id = kv.id "
/* The current revision and the compacted one (see the top of the file). */
#define META_SQL                                                \
    "SELECT max(coalesce((SELECT max(id) FROM log), 0) / " STR( \
        OPS_PER_REV) ", value), value"                          \
                     " FROM meta WHERE name = 'compacted'"
#define LOOKUP_SQL \
    "SELECT kv.create_rev, kv.id, log.value FROM kv JOIN log ON log.id = kv.id WHERE kv.key = ?1"
/* The last version <= ?4 of each key (SQLite takes the bare columns from the
 * row that holds max(id)); tombstones are skipped by the caller. */
#define RANGE_AT_COLS "SELECT key, max(id), create_rev, tombstone, value FROM log "

enum reader_stmt {
    R_BEGIN,
    R_COMMIT,
    R_ROLLBACK,
    R_META,
    R_GET,
    R_RANGE_GE,
    R_RANGE_GT,
    R_RANGE_AT_GE,
    R_RANGE_AT_GT,
    R_HISTORY,
    R_VALUE_AT,
    R_COUNT,
};

static const char *const reader_sql[] = {
    [R_BEGIN] = "BEGIN",
    [R_COMMIT] = "COMMIT",
    [R_ROLLBACK] = "ROLLBACK",
    [R_META] = META_SQL,
    [R_GET] = LOOKUP_SQL,
    [R_RANGE_GE] = (RANGE_COLS "WHERE kv.key >= ?1 AND kv.key < ?2 ORDER BY kv.key"),
    [R_RANGE_GT] = (RANGE_COLS "WHERE kv.key > ?1 AND kv.key < ?2 ORDER BY kv.key"),
    [R_RANGE_AT_GE] = (RANGE_AT_COLS "WHERE key >= ?1 AND key < ?2 AND id < ?3 "
                                     "GROUP BY key ORDER BY key"),
    [R_RANGE_AT_GT] = (RANGE_AT_COLS "WHERE key > ?1 AND key < ?2 AND id < ?3 "
                                     "GROUP BY key ORDER BY key"),
    [R_HISTORY] = ("SELECT id, key, create_rev, prev_rev, tombstone, value FROM log"
                   " WHERE id >= ?1 ORDER BY id"),
    [R_VALUE_AT] = "SELECT value FROM log WHERE key = ?1 AND id >= ?2 AND id < ?3",
    [R_COUNT] = "SELECT count(*) FROM kv",
};

#define N_READER_STMTS KF_ARRAY_SIZE(reader_sql)

enum writer_stmt {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_SAVEPOINT,
    W_RELEASE,
    W_ROLLBACK_TO,
    W_LOOKUP,
    W_LOG,
    W_PUT,
    W_DELETE,
    W_SET_META,
    W_MIN_ID,
    W_COMPACT,
};

static const char *const writer_sql[] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT txn",
    [W_RELEASE] = "RELEASE txn",
    [W_ROLLBACK_TO] = "ROLLBACK TO txn",
    [W_LOOKUP] = LOOKUP_SQL,
    [W_LOG] = ("INSERT INTO log (id, key, create_rev, prev_rev, tombstone, value)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
    [W_PUT] = ("INSERT INTO kv (key, id, create_rev) VALUES (?1, ?2, ?3)"
               " ON CONFLICT (key) DO UPDATE SET id = excluded.id"),
    [W_DELETE] = "DELETE FROM kv WHERE key = ?1",
    [W_SET_META] = "UPDATE meta SET value = ?2 WHERE name = ?1",
    [W_MIN_ID] = "SELECT min(id) FROM log",
    /* Superseded versions in [?1, ?2): a later version below ?3 replaced
     * them, or they are deletes (themselves superseded by nothing). */
    [W_COMPACT] = ("DELETE FROM log WHERE id >= ?1 AND id < ?2 AND (tombstone OR EXISTS"
                   " (SELECT 1 FROM log AS l WHERE l.key = log.key AND l.id > log.id"
                   " AND l.id < ?3))"),
};

#define N_WRITER_STMTS KF_ARRAY_SIZE(writer_sql)

static const char schema_sql[] =
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta (name, value) VALUES ('compacted', 0);"
    "CREATE TABLE log (id INTEGER PRIMARY KEY, key TEXT NOT NULL,"
    " create_rev INTEGER NOT NULL, prev_rev INTEGER NOT NULL,"
    " tombstone INTEGER NOT NULL, value BLOB);"
    "CREATE INDEX log_key ON log (key, id);"
    "CREATE TABLE kv (key TEXT PRIMARY KEY, id INTEGER NOT NULL,"
    " create_rev INTEGER NOT NULL) WITHOUT ROWID;";

/* --- the store --------------------------------------------------------------- */

struct reader {
    sqlite3 *db;
    sqlite3_stmt *st[N_READER_STMTS];
    struct reader *next;
};

/* One transaction waiting for the leader (see sql_txn). */
struct pending {
    const struct kf_op *ops;
    size_t n;
    int r;
    int64_t rev;
    size_t failed;
    struct kf_event **events;
    int64_t key_delta;
    bool done;
    struct pending *next;
};

struct sql_store {
    struct kf_store base;
    char *path;
    char *wal_path;
    int lock_fd;
    bool sync_full;

    /* Group commit: a queue of transactions and whether a leader runs. */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct pending *qhead, **qtail;
    bool leader;

    /* The writer connection and what it knows; wlock is held by the leader
     * while it commits and publishes, and by each step of a compaction. */
    pthread_mutex_t wlock;
    sqlite3 *wdb;
    sqlite3_stmt *w[N_WRITER_STMTS];
    int64_t rev;           /* atomic reads; written under wlock */
    int64_t compacted_rev; /* likewise */
    int64_t nkeys;         /* likewise */
    pthread_mutex_t compact_lock;

    /* Reader connections not in use. */
    pthread_mutex_t rlock;
    pthread_cond_t rcond;
    struct reader *free_readers;
    size_t nreaders;
};

static struct sql_store *sql(struct kf_store *s)
{
    return (struct sql_store *)s;
}

/* An SQLite result code as a negative errno. */
static int sql_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -KF_EUNAVAILABLE;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_TOOBIG:
        return -KF_ETOOLARGE;
    default: /* IOERR, CORRUPT, NOTADB, SCHEMA, ... */
        return -EIO;
    }
}

/* Notes a failed call at debug level and returns it as a negative errno. */
static int sql_fail(struct sql_store *s, sqlite3 *db, int rc, const char *what)
{
    kf_log_dbg("sqlite \"%s\": %s: %s (%d)", s->path, what, db ? sqlite3_errmsg(db) : "", rc);
    return sql_errno(rc);
}

/* Runs a statement that returns no rows (BEGIN, COMMIT, ...). */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* A zero-length value must stay a (zero-length) blob, not NULL. */
static void bind_value(sqlite3_stmt *st, int i, const char *v, size_t len)
{
    sqlite3_bind_blob64(st, i, v ? v : "", len, SQLITE_STATIC);
}

static void done_with(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static const char *col_blob(sqlite3_stmt *st, int i, size_t *len)
{
    const char *p = sqlite3_column_blob(st, i);

    *len = (size_t)sqlite3_column_bytes(st, i);
    return p ? p : "";
}

static void fill_kv(struct kf_kv *kv, const char *key, const char *value, size_t len,
                    int64_t create_rev, int64_t mod_rev)
{
    kv->key = kf_xstrdup(key);
    kv->value = kf_xmalloc(len + 1);
    if (len)
        memcpy(kv->value, value, len);
    kv->value[len] = '\0';
    kv->value_len = len;
    kv->create_rev = create_rev;
    kv->mod_rev = mod_rev;
}

static int64_t load64(const int64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store64(int64_t *p, int64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* --- connections ------------------------------------------------------------- */

static int exec_sql(struct sql_store *s, sqlite3 *db, const char *sql_text)
{
    int rc = sqlite3_exec(db, sql_text, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : sql_fail(s, db, rc, sql_text);
}

static int prepare_all(struct sql_store *s, sqlite3 *db, const char *const *text, size_t n,
                       sqlite3_stmt **st)
{
    for (size_t i = 0; i < n; i++) {
        int rc = sqlite3_prepare_v3(db, text[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL);

        if (rc != SQLITE_OK)
            return sql_fail(s, db, rc, text[i]);
    }
    return 0;
}

static void finalize_all(sqlite3_stmt **st, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_finalize(st[i]);
        st[i] = NULL;
    }
}

static int open_conn(struct sql_store *s, int flags, sqlite3 **ret)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(s->path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc != SQLITE_OK) {
        int r = sql_fail(s, db, rc, "open");

        sqlite3_close(db);
        return r;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    *ret = db;
    return 0;
}

static void reader_free(struct reader *rd)
{
    if (!rd)
        return;
    finalize_all(rd->st, N_READER_STMTS);
    sqlite3_close(rd->db);
    free(rd);
}

static int reader_open(struct sql_store *s, struct reader **ret)
{
    struct reader *rd = kf_xcalloc(1, sizeof(*rd));
    int r;

    r = open_conn(s, SQLITE_OPEN_READWRITE, &rd->db);
    if (r < 0)
        goto free_reader;
    r = exec_sql(s, rd->db,
                 "PRAGMA query_only = 1; PRAGMA cache_size = -2048; PRAGMA mmap_size = 268435456");
    if (r < 0)
        goto free_reader;
    r = prepare_all(s, rd->db, reader_sql, N_READER_STMTS, rd->st);
    if (r < 0)
        goto free_reader;
    *ret = rd;
    return 0;
free_reader:
    reader_free(rd);
    return r;
}

/* Takes a reader connection, opening one if none is free and fewer than
 * MAX_READERS exist, otherwise waiting for one. */
static int reader_get(struct sql_store *s, struct reader **ret)
{
    struct reader *rd;
    int r;

    pthread_mutex_lock(&s->rlock);
    while (!s->free_readers && s->nreaders >= MAX_READERS)
        pthread_cond_wait(&s->rcond, &s->rlock);
    rd = s->free_readers;
    if (rd) {
        s->free_readers = rd->next;
        pthread_mutex_unlock(&s->rlock);
        *ret = rd;
        return 0;
    }
    s->nreaders++;
    pthread_mutex_unlock(&s->rlock);

    r = reader_open(s, &rd);
    if (r < 0) {
        pthread_mutex_lock(&s->rlock);
        s->nreaders--;
        pthread_cond_signal(&s->rcond);
        pthread_mutex_unlock(&s->rlock);
        return r;
    }
    *ret = rd;
    return 0;
}

static void reader_put(struct sql_store *s, struct reader *rd)
{
    /* never hand on a connection in the middle of a read transaction */
    if (!sqlite3_get_autocommit(rd->db))
        step_done(rd->st[R_ROLLBACK]);
    pthread_mutex_lock(&s->rlock);
    rd->next = s->free_readers;
    s->free_readers = rd;
    pthread_cond_signal(&s->rcond);
    pthread_mutex_unlock(&s->rlock);
}

/* --- opening ------------------------------------------------------------------ */

struct sql_options {
    char *path;
    bool sync_full;
};

static int parse_arg(const char *arg, struct sql_options *o, struct kf_strbuf *err)
{
    const char *q = strchr(arg, '?');
    size_t plen = q ? (size_t)(q - arg) : strlen(arg);

    if (plen == 0)
        return kf_err(err, -EINVAL,
                      "store \"sqlite:%s\" has no path: use sqlite:PATH[?sync=normal|full]", arg);
    o->sync_full = false;
    if (q) {
        char *opts = kf_xstrdup(q + 1), *save = NULL, *tok;
        int r = 0;

        for (tok = strtok_r(opts, "&", &save); tok && r == 0; tok = strtok_r(NULL, "&", &save)) {
            if (strcmp(tok, "sync=normal") == 0)
                o->sync_full = false;
            else if (strcmp(tok, "sync=full") == 0)
                o->sync_full = true;
            else if (kf_str_has_prefix(tok, "sync="))
                r = kf_err(err, -EINVAL,
                           "store \"sqlite:%s\": sync must be \"normal\" or \"full\", not \"%s\"",
                           arg, tok + 5);
            else
                r = kf_err(err, -EINVAL,
                           "store \"sqlite:%s\": unknown option \"%s\" (known: sync=normal|full)",
                           arg, tok);
        }
        free(opts);
        if (r < 0)
            return r;
    }
    o->path = kf_xstrndup(arg, plen);
    return 0;
}

/* mkdir -p of the directory that holds path. */
static int make_parent_dirs(const char *path, struct kf_strbuf *err)
{
    char *dir = kf_xstrdup(path);
    char *slash = strrchr(dir, '/');
    int r = 0;

    if (!slash || slash == dir) {
        free(dir);
        return 0;
    }
    *slash = '\0';
    for (char *p = dir + 1; r == 0; p++) {
        bool end = *p == '\0';

        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (mkdir(dir, 0750) < 0 && errno != EEXIST)
            r = kf_err(err, -errno, "cannot create directory \"%s\" for the store: %s", dir,
                       strerror(errno));
        if (end)
            break;
        *p = '/';
    }
    free(dir);
    return r;
}

static int take_lock(struct sql_store *s, struct kf_strbuf *err)
{
    char *lock_path = kf_xasprintf("%s.lock", s->path);
    int r = 0;

    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0) {
        r = kf_err(err, -errno, "cannot open the lock file \"%s\": %s", lock_path, strerror(errno));
    } else if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            r = kf_err(err, -KF_EUNAVAILABLE,
                       "the store \"%s\" is in use by another process (is another kfleetd "
                       "using it?); its lock is \"%s\"",
                       s->path, lock_path);
        else
            r = kf_err(err, -errno, "cannot lock \"%s\": %s", lock_path, strerror(errno));
    }
    free(lock_path);
    return r;
}

/* Reads one integer with a one-row query on the writer connection. */
static int query_int(struct sql_store *s, const char *text, int64_t *ret)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->wdb, text, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *ret = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_CORRUPT;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : sql_fail(s, s->wdb, rc, text);
}

/* Switches the database to WAL mode (a no-op when it is) and checks that it
 * took: SQLite keeps the old mode where WAL cannot work. */
static int check_wal(struct sql_store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->wdb, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    bool wal = false;

    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);

        wal = mode && strcmp(mode, "wal") == 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return sql_fail(s, s->wdb, rc, "journal_mode");
    return wal ? 0 : -EOPNOTSUPP;
}

/* Checks what the file holds and creates the schema in an empty one. */
static int check_or_create_schema(struct sql_store *s, bool *created, struct kf_strbuf *err)
{
    int64_t app_id = 0, version = 0, objects = 0;
    int r;

    *created = false;
    r = query_int(s, "PRAGMA application_id", &app_id);
    if (r < 0)
        return kf_err(err, r, "\"%s\" is not an SQLite database, or it is damaged (%s)", s->path,
                      sqlite3_errmsg(s->wdb));
    if (query_int(s, "PRAGMA user_version", &version) < 0 ||
        query_int(s, "SELECT count(*) FROM sqlite_schema", &objects) < 0)
        return kf_err(err, -EIO, "cannot read the schema of \"%s\": %s", s->path,
                      sqlite3_errmsg(s->wdb));
    if (app_id == 0 && version == 0 && objects == 0) {
        r = check_wal(s);
        if (r == 0)
            r = exec_sql(s, s->wdb, "BEGIN IMMEDIATE");
        if (r == 0)
            r = exec_sql(s, s->wdb, schema_sql);
        if (r == 0)
            r = exec_sql(s, s->wdb,
                         "PRAGMA application_id = 1801874548; PRAGMA user_version = " STR(
                             SCHEMA_VERSION) "; COMMIT");
        if (r < 0) {
            sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
            return kf_err(err, r, "cannot create the store's tables in \"%s\": %s", s->path,
                          sqlite3_errmsg(s->wdb));
        }
        *created = true;
        return 0;
    }
    if (app_id != APPLICATION_ID)
        return kf_err(err, -EINVAL,
                      "\"%s\" is an SQLite database but not a kfleet store (application_id "
                      "%lld); refusing to use it",
                      s->path, (long long)app_id);
    if (version > SCHEMA_VERSION)
        return kf_err(err, -EINVAL,
                      "the store \"%s\" has schema version %lld, newer than this kfleet knows "
                      "(%d): upgrade kfleet",
                      s->path, (long long)version, SCHEMA_VERSION);
    if (version < 1)
        return kf_err(err, -EINVAL, "the store \"%s\" has no schema version; it is damaged",
                      s->path);
    if (version < SCHEMA_VERSION)
        return kf_err(err, -EINVAL,
                      "the store \"%s\" has schema version %lld from a development build of "
                      "kfleet, which this one cannot read: move it away to start afresh",
                      s->path, (long long)version);
    return 0;
}

static void sql_free(struct sql_store *s)
{
    struct reader *rd;

    while ((rd = s->free_readers)) {
        s->free_readers = rd->next;
        reader_free(rd);
    }
    finalize_all(s->w, N_WRITER_STMTS);
    if (s->wdb)
        sqlite3_close(s->wdb);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->compact_lock);
    pthread_mutex_destroy(&s->rlock);
    pthread_cond_destroy(&s->rcond);
    free(s->path);
    free(s->wal_path);
    free(s);
}

/* The file holds every guest cluster's CA keys: it is created 0600, and
 * one found readable by others is made so (SQLite gives its -wal and -shm
 * files the database file's mode, so they follow). Whatever the umask and
 * whether the data folder existed before. */
static int private_file(const char *path, struct kf_strbuf *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat st;

    if (fd < 0)
        return kf_err(err, -errno, "cannot open the store \"%s\": %s", path, strerror(errno));
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) && fchmod(fd, st.st_mode & 0700) < 0) {
        int r = -errno;

        close(fd);
        return kf_err(err, r,
                      "the store \"%s\" is readable by others and cannot be made "
                      "private: %s",
                      path, strerror(-r));
    }
    close(fd);
    return 0;
}

static int sql_open(const char *arg, struct kf_store **ret, struct kf_strbuf *err)
{
    struct sql_options o = { 0 };
    struct sql_store *s;
    struct stat st;
    bool created;
    int64_t v;
    char *pragmas;
    int r;

    r = parse_arg(arg, &o, err);
    if (r < 0)
        return r;
    s = kf_xcalloc(1, sizeof(*s));
    s->path = o.path;
    s->wal_path = kf_xasprintf("%s-wal", s->path);
    s->sync_full = o.sync_full;
    s->lock_fd = -1;
    s->qtail = &s->qhead;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->compact_lock, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    pthread_cond_init(&s->rcond, NULL);

    r = make_parent_dirs(s->path, err);
    if (r < 0)
        goto free_store;
    if (stat(s->path, &st) == 0 && !S_ISREG(st.st_mode)) {
        r = kf_err(err, -EINVAL, "the store \"%s\" is not a regular file", s->path);
        goto free_store;
    }
    r = take_lock(s, err);
    if (r < 0)
        goto free_store;
    r = private_file(s->path, err);
    if (r < 0)
        goto free_store;
    r = open_conn(s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s->wdb);
    if (r < 0) {
        kf_err(err, r, "cannot open the store \"%s\": %s", s->path,
               s->wdb ? sqlite3_errmsg(s->wdb) : strerror(-r));
        goto free_store;
    }
    r = check_or_create_schema(s, &created, err);
    if (r < 0)
        goto free_store;
    /* The writer's page cache: 4 MiB holds the B-tree's interior pages
     * and the leaves a batch changes; 16 MiB was 1.6 KiB of kfleetd's
     * 8 KiB a cluster at 10,000 clusters (docs/internals/memory.md). It
     * does not map the file as the readers do: that saved no heap and
     * added the whole database to kfleetd's RSS (bench/memory: +180 MiB). */
    pragmas = kf_xasprintf("PRAGMA synchronous = %s; PRAGMA cache_size = -4096",
                           s->sync_full ? "FULL" : "NORMAL");
    r = exec_sql(s, s->wdb, pragmas);
    free(pragmas);
    if (r == 0)
        r = check_wal(s);
    if (r < 0) {
        kf_err(err, r, "cannot put the store \"%s\" in WAL mode: %s", s->path,
               sqlite3_errmsg(s->wdb));
        goto free_store;
    }
    if (query_int(s, META_SQL, &s->rev) < 0 ||
        query_int(s, "SELECT value FROM meta WHERE name = 'compacted'", &s->compacted_rev) < 0 ||
        query_int(s, "SELECT count(*) FROM kv", &s->nkeys) < 0 ||
        query_int(s, "SELECT count(*) FROM log", &v) < 0) {
        r = kf_err(err, -EIO, "the store \"%s\" is damaged: %s", s->path, sqlite3_errmsg(s->wdb));
        goto free_store;
    }
    r = prepare_all(s, s->wdb, writer_sql, N_WRITER_STMTS, s->w);
    if (r < 0) {
        kf_err(err, r, "the store \"%s\" is damaged: %s", s->path, sqlite3_errmsg(s->wdb));
        goto free_store;
    }
    if (created && s->sync_full)
        kf_fsync_dir_of(s->path);
    kf_log_dbg("opened \"%s\" at revision %lld (%s)", s->path, (long long)s->rev,
               created ? "new" : "existing");
    *ret = &s->base;
    return 0;
free_store:
    sql_free(s);
    return r;
}

static void sql_close(struct kf_store *base)
{
    sql_free(sql(base));
}

/* --- reads ------------------------------------------------------------------- */

static int sql_get(struct kf_store *base, const char *key, struct kf_kv *ret)
{
    struct sql_store *s = sql(base);
    struct reader *rd;
    sqlite3_stmt *st;
    int rc, r;

    r = reader_get(s, &rd);
    if (r < 0)
        return r;
    st = rd->st[R_GET];
    bind_str(st, 1, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        size_t len;
        const char *v = col_blob(st, 2, &len);

        fill_kv(ret, key, v, len, sqlite3_column_int64(st, 0),
                sqlite3_column_int64(st, 1) / OPS_PER_REV);
        r = 0;
    } else if (rc == SQLITE_DONE) {
        r = -KF_ENOTFOUND;
    } else {
        r = sql_fail(s, rd->db, rc, "get");
    }
    done_with(st);
    reader_put(s, rd);
    return r;
}

/* Reads the revision and compacted revision of the reader's snapshot. */
static int read_meta(struct sql_store *s, struct reader *rd, int64_t *rev, int64_t *compacted)
{
    sqlite3_stmt *st = rd->st[R_META];
    int rc = sqlite3_step(st);

    if (rc == SQLITE_ROW) {
        *rev = sqlite3_column_int64(st, 0);
        *compacted = sqlite3_column_int64(st, 1);
        rc = SQLITE_OK;
    }
    done_with(st);
    return rc == SQLITE_OK ? 0 : sql_fail(s, rd->db, rc, "read meta");
}

/* Steps a range statement into ret, honouring the limit. at_log: the
 * statement reads the log (columns key, id, create_rev, tombstone, value)
 * rather than kv (key, create_rev, id, value). */
static int collect_range(struct sql_store *s, struct reader *rd, sqlite3_stmt *st, bool at_log,
                         size_t limit, struct kf_kv_list *ret)
{
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *v;
        size_t len;
        int64_t create_rev, mod_rev;

        if (!key)
            return sql_fail(s, rd->db, SQLITE_CORRUPT, "range: a NULL key");
        if (at_log) {
            if (sqlite3_column_int(st, 3))
                continue; /* deleted at that revision */
            mod_rev = sqlite3_column_int64(st, 1) / OPS_PER_REV;
            create_rev = sqlite3_column_int64(st, 2);
            v = col_blob(st, 4, &len);
        } else {
            create_rev = sqlite3_column_int64(st, 1);
            mod_rev = sqlite3_column_int64(st, 2) / OPS_PER_REV;
            v = col_blob(st, 3, &len);
        }
        if (limit && ret->n == limit) {
            ret->more = true;
            return 0;
        }
        KF_GROW(ret->items, ret->alloc, ret->n);
        fill_kv(&ret->items[ret->n++], key, v, len, create_rev, mod_rev);
    }
    return rc == SQLITE_DONE ? 0 : sql_fail(s, rd->db, rc, "range");
}

static int sql_range(struct kf_store *base, const struct kf_range *q, struct kf_kv_list *ret)
{
    struct sql_store *s = sql(base);
    const char *prefix = q->prefix ? q->prefix : "";
    struct kf_kv_list out = { 0 };
    char *end = kf_store_prefix_end(prefix);
    const char *lo = prefix;
    bool after = false;
    struct reader *rd;
    int64_t rev, compacted, at;
    int r;

    /* Every key starts with '/', so "" ranges up to "0" ('/' + 1); a prefix
     * of only 0xff bytes has no end and matches no key. */
    if (!*prefix) {
        free(end);
        end = kf_xstrdup("0");
    }
    if (q->start_after && strcmp(q->start_after, prefix) >= 0) {
        lo = q->start_after;
        after = true;
    }
    r = reader_get(s, &rd);
    if (r < 0) {
        free(end);
        return r;
    }
    r = sql_errno(step_done(rd->st[R_BEGIN]));
    if (r == 0)
        r = read_meta(s, rd, &rev, &compacted);
    if (r < 0)
        goto end_read;
    at = q->rev > 0 ? q->rev : rev;
    if (at < compacted) {
        r = -KF_ECOMPACTED;
        goto end_read;
    }
    if (at > rev) {
        r = -EINVAL;
        goto end_read;
    }
    out.rev = at;
    if (*end) {
        sqlite3_stmt *st;
        bool at_log = at < rev;

        if (at_log)
            st = rd->st[after ? R_RANGE_AT_GT : R_RANGE_AT_GE];
        else
            st = rd->st[after ? R_RANGE_GT : R_RANGE_GE];
        bind_str(st, 1, lo);
        bind_str(st, 2, end);
        if (at_log)
            sqlite3_bind_int64(st, 3, (at + 1) * OPS_PER_REV);
        r = collect_range(s, rd, st, at_log, q->limit, &out);
        done_with(st);
    }
end_read:
    step_done(rd->st[R_COMMIT]);
    reader_put(s, rd);
    free(end);
    if (r < 0) {
        kf_kv_list_release(&out);
        return r;
    }
    *ret = out;
    return 0;
}

/* The value of key's version at revision rev, copied into an event field. */
static int value_at(struct sql_store *s, struct reader *rd, const char *key, int64_t rev,
                    char **ret, size_t *ret_len)
{
    sqlite3_stmt *st = rd->st[R_VALUE_AT];
    int rc;

    bind_str(st, 1, key);
    sqlite3_bind_int64(st, 2, rev * OPS_PER_REV);
    sqlite3_bind_int64(st, 3, (rev + 1) * OPS_PER_REV);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        size_t len;
        const char *v = col_blob(st, 0, &len);

        *ret = kf_xmemdup(v, len);
        *ret_len = len;
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_CORRUPT; /* compaction keeps every version history needs */
    }
    done_with(st);
    return rc == SQLITE_OK ? 0 : sql_fail(s, rd->db, rc, "history: previous version");
}

static int sql_history(struct kf_store *base, int64_t after_rev, size_t limit,
                       struct kf_event_list *ret)
{
    struct sql_store *s = sql(base);
    struct kf_event_list out = { 0 };
    struct reader *rd;
    sqlite3_stmt *st;
    int64_t rev, compacted, last_rev = 0;
    int rc, r;

    if (after_rev < 0)
        return -EINVAL;
    r = reader_get(s, &rd);
    if (r < 0)
        return r;
    r = sql_errno(step_done(rd->st[R_BEGIN]));
    if (r == 0)
        r = read_meta(s, rd, &rev, &compacted);
    if (r < 0)
        goto end_read;
    if (after_rev < compacted) {
        r = -KF_ECOMPACTED;
        goto end_read;
    }
    if (after_rev >= rev)
        goto end_read;
    st = rd->st[R_HISTORY];
    sqlite3_bind_int64(st, 1, (after_rev + 1) * OPS_PER_REV);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int64_t mod_rev = id / OPS_PER_REV;
        const char *key = (const char *)sqlite3_column_text(st, 1);
        int64_t create_rev = sqlite3_column_int64(st, 2);
        int64_t prev_rev = sqlite3_column_int64(st, 3);
        bool tombstone = sqlite3_column_int(st, 4) != 0;
        char *prev = NULL;
        size_t prev_len = 0;
        struct kf_event *ev;

        if (limit && out.n >= limit && mod_rev != last_rev)
            break; /* never split a transaction */
        if (!key) {
            r = sql_fail(s, rd->db, SQLITE_CORRUPT, "history: a NULL key");
            break;
        }
        if (prev_rev > 0) {
            r = value_at(s, rd, key, prev_rev, &prev, &prev_len);
            if (r < 0)
                break;
        }
        if (tombstone) {
            ev = kf_event_new(KF_EVENT_DELETE, key, prev ? prev : "", prev_len, create_rev, mod_rev,
                              NULL, 0, prev_rev);
        } else {
            size_t len;
            const char *v = col_blob(st, 5, &len);

            ev = kf_event_new(KF_EVENT_PUT, key, v, len, create_rev, mod_rev, prev, prev_len,
                              prev_rev);
        }
        free(prev);
        KF_GROW(out.items, out.alloc, out.n);
        out.items[out.n++] = ev;
        last_rev = mod_rev;
    }
    if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = sql_fail(s, rd->db, rc, "history");
    done_with(st);
end_read:
    step_done(rd->st[R_COMMIT]);
    reader_put(s, rd);
    if (r < 0) {
        kf_event_list_release(&out);
        return r;
    }
    for (size_t i = 0; i < out.n; i++) {
        KF_GROW(ret->items, ret->alloc, ret->n);
        ret->items[ret->n++] = out.items[i];
    }
    free(out.items);
    return 0;
}

/* --- writes ------------------------------------------------------------------ */

/* Checks p's conditions against the current state (as the writer sees it,
 * earlier transactions of the batch included) and builds its events at
 * revision rev. No write happens here. */
static int check_txn(struct sql_store *s, struct pending *p, int64_t rev)
{
    sqlite3_stmt *st = s->w[W_LOOKUP];

    p->events = kf_xcalloc(p->n, sizeof(*p->events));
    p->key_delta = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct kf_op *op = &p->ops[i];
        int64_t create_rev = 0, mod_rev = 0;
        const char *cur = NULL;
        size_t cur_len = 0;
        bool found;
        int rc, r = 0;

        for (size_t j = 0; j < i; j++)
            if (strcmp(p->ops[j].key, op->key) == 0) {
                p->failed = i;
                return -EINVAL; /* etcd refuses duplicate keys in a txn too */
            }
        bind_str(st, 1, op->key);
        rc = sqlite3_step(st);
        found = rc == SQLITE_ROW;
        if (found) {
            create_rev = sqlite3_column_int64(st, 0);
            mod_rev = sqlite3_column_int64(st, 1) / OPS_PER_REV;
            cur = col_blob(st, 2, &cur_len);
        } else if (rc != SQLITE_DONE) {
            r = sql_fail(s, s->wdb, rc, "txn: lookup");
        }
        if (r == 0) {
            if (op->expect_mod_rev == 0 && found)
                r = -KF_EEXISTS;
            else if (op->expect_mod_rev > 0 && !found)
                r = -KF_ENOTFOUND;
            else if (op->expect_mod_rev > 0 && mod_rev != op->expect_mod_rev)
                r = -KF_ECONFLICT;
            else if (op->type == KF_OP_DELETE && !found)
                r = -KF_ENOTFOUND;
        }
        if (r == 0 && op->type == KF_OP_CHECK) {
            /* a condition only: no event, no write */
        } else if (r == 0 && op->type == KF_OP_PUT) {
            p->events[i] =
                kf_event_new(KF_EVENT_PUT, op->key, op->value, op->value_len,
                             found ? create_rev : rev, rev, found ? cur : NULL, cur_len, mod_rev);
            p->key_delta += !found;
        } else if (r == 0) {
            p->events[i] = kf_event_new(KF_EVENT_DELETE, op->key, cur, cur_len, create_rev, rev,
                                        NULL, 0, mod_rev);
            p->key_delta--;
        }
        done_with(st);
        if (r < 0) {
            p->failed = i;
            return r;
        }
    }
    return 0;
}

/* Writes p's ops (already checked) at revision rev. */
static int write_txn(struct sql_store *s, struct pending *p, int64_t rev)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct kf_op *op = &p->ops[i];
        const struct kf_event *ev = p->events[i];
        sqlite3_stmt *st = s->w[W_LOG];
        int rc;

        if (op->type == KF_OP_CHECK)
            continue;
        sqlite3_bind_int64(st, 1, rev * OPS_PER_REV + (int64_t)i);
        bind_str(st, 2, op->key);
        sqlite3_bind_int64(st, 3, ev->kv.create_rev);
        sqlite3_bind_int64(st, 4, ev->prev_mod_rev);
        sqlite3_bind_int(st, 5, op->type == KF_OP_DELETE);
        if (op->type == KF_OP_PUT)
            bind_value(st, 6, op->value, op->value_len);
        rc = step_done(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_OK)
            return sql_fail(s, s->wdb, rc, "txn: log");

        if (op->type == KF_OP_PUT) {
            st = s->w[W_PUT];
            bind_str(st, 1, op->key);
            sqlite3_bind_int64(st, 2, rev * OPS_PER_REV + (int64_t)i);
            sqlite3_bind_int64(st, 3, ev->kv.create_rev);
        } else {
            st = s->w[W_DELETE];
            bind_str(st, 1, op->key);
        }
        rc = step_done(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_OK)
            return sql_fail(s, s->wdb, rc, "txn: kv");
    }
    return 0;
}

static void drop_events(struct pending *p)
{
    if (!p->events)
        return;
    for (size_t i = 0; i < p->n; i++)
        kf_event_unref(p->events[i]);
    free(p->events);
    p->events = NULL;
}

static int set_meta(struct sql_store *s, const char *name, int64_t value)
{
    sqlite3_stmt *st = s->w[W_SET_META];
    int rc;

    bind_str(st, 1, name);
    sqlite3_bind_int64(st, 2, value);
    rc = step_done(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_OK ? 0 : sql_fail(s, s->wdb, rc, name);
}

/* Commits a batch of transactions as one SQLite transaction and publishes
 * the events of those that succeeded, in revision order. Sets each one's
 * result. Runs with wlock held, by the leader only. */
static void run_batch(struct sql_store *s, struct pending *batch)
{
    int64_t rev = s->rev, delta = 0;
    bool any = false;
    int r;

    r = sql_errno(step_done(s->w[W_BEGIN]));
    if (r < 0) {
        sql_fail(s, s->wdb, r, "txn: begin");
        for (struct pending *p = batch; p; p = p->next)
            p->r = r;
        return;
    }
    for (struct pending *p = batch; p; p = p->next) {
        p->r = check_txn(s, p, rev + 1);
        if (p->r < 0) {
            drop_events(p);
            continue;
        }
        if (batch->next) {
            /* a failed write must not take the batch's other writes along */
            p->r = sql_errno(step_done(s->w[W_SAVEPOINT]));
            if (p->r == 0) {
                p->r = write_txn(s, p, rev + 1);
                if (p->r < 0)
                    step_done(s->w[W_ROLLBACK_TO]);
                step_done(s->w[W_RELEASE]);
            }
        } else {
            p->r = write_txn(s, p, rev + 1);
        }
        if (p->r < 0) {
            drop_events(p);
            continue;
        }
        p->rev = ++rev;
        delta += p->key_delta;
        any = true;
    }
    if (!any) {
        /* nothing to keep: a lone transaction's failed write is undone */
        step_done(s->w[W_ROLLBACK]);
        return;
    }
    r = sql_errno(step_done(s->w[W_COMMIT]));
    if (r < 0) {
        sql_fail(s, s->wdb, r, "txn: commit");
        if (!sqlite3_get_autocommit(s->wdb))
            step_done(s->w[W_ROLLBACK]);
        for (struct pending *p = batch; p; p = p->next) {
            if (p->r == 0)
                p->r = r;
            drop_events(p);
        }
        return;
    }
    store64(&s->nkeys, s->nkeys + delta);
    store64(&s->rev, rev);
    for (struct pending *p = batch; p; p = p->next) {
        size_t nev = 0;

        if (p->r < 0)
            continue;
        for (size_t i = 0; i < p->n; i++) /* KF_OP_CHECK ops have no event */
            if (p->events[i])
                p->events[nev++] = p->events[i];
        kf_store_publish(&s->base, p->events, nev);
        free(p->events);
        p->events = NULL;
    }
}

/* Group commit: the first thread to find no leader becomes the leader, takes
 * every queued transaction (its own first among them) and commits them as
 * one batch; the others wait for their result, and one of them leads the
 * next batch. Without contention a transaction is a batch of one. */
static int sql_txn(struct kf_store *base, const struct kf_op *ops, size_t n, int64_t *ret_rev,
                   size_t *ret_failed)
{
    struct sql_store *s = sql(base);
    struct pending me = { .ops = ops, .n = n, .failed = SIZE_MAX };

    pthread_mutex_lock(&s->qlock);
    *s->qtail = &me;
    s->qtail = &me.next;
    while (!me.done) {
        struct pending *batch, **tail, *p, *next;
        size_t k = 0;

        if (s->leader) {
            pthread_cond_wait(&s->qcond, &s->qlock);
            continue;
        }
        s->leader = true;
        batch = s->qhead;
        for (tail = &s->qhead; *tail && k < BATCH_MAX_TXNS; tail = &(*tail)->next)
            k++;
        s->qhead = *tail;
        *tail = NULL;
        if (!s->qhead)
            s->qtail = &s->qhead;
        pthread_mutex_unlock(&s->qlock);

        pthread_mutex_lock(&s->wlock);
        run_batch(s, batch);
        pthread_mutex_unlock(&s->wlock);

        pthread_mutex_lock(&s->qlock);
        for (p = batch; p; p = next) {
            next = p->next;
            p->done = true;
        }
        s->leader = false;
        pthread_cond_broadcast(&s->qcond);
    }
    pthread_mutex_unlock(&s->qlock);
    if (me.r < 0) {
        if (ret_failed && me.failed < n)
            *ret_failed = me.failed;
        return me.r;
    }
    if (ret_rev)
        *ret_rev = me.rev;
    return 0;
}

/* One write transaction of a compaction, under wlock. */
static int compact_step(struct sql_store *s, sqlite3_stmt *st)
{
    int r;

    pthread_mutex_lock(&s->wlock);
    r = sql_errno(step_done(s->w[W_BEGIN]));
    if (r == 0) {
        r = sql_errno(step_done(st));
        if (r == 0)
            r = sql_errno(step_done(s->w[W_COMMIT]));
        if (r < 0 && !sqlite3_get_autocommit(s->wdb))
            step_done(s->w[W_ROLLBACK]);
    }
    pthread_mutex_unlock(&s->wlock);
    return r;
}

static int sql_compact(struct kf_store *base, int64_t rev)
{
    struct sql_store *s = sql(base);
    sqlite3_stmt *st;
    int64_t lo = 0, limit = (rev + 1) * OPS_PER_REV;
    int rc, r;

    pthread_mutex_lock(&s->compact_lock);
    pthread_mutex_lock(&s->wlock);
    if (rev > s->rev) {
        r = -EINVAL;
    } else if (rev <= s->compacted_rev) {
        r = -KF_ECOMPACTED;
    } else {
        /* First the mark, so that no reader asks for what goes next. */
        r = sql_errno(step_done(s->w[W_BEGIN]));
        if (r == 0)
            r = set_meta(s, "compacted", rev);
        if (r == 0)
            r = sql_errno(step_done(s->w[W_COMMIT]));
        if (r < 0 && !sqlite3_get_autocommit(s->wdb))
            step_done(s->w[W_ROLLBACK]);
        if (r == 0)
            store64(&s->compacted_rev, rev);
        st = s->w[W_MIN_ID];
        if (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
            lo = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&s->wlock);

    /* Then the rows, a chunk of revisions per write transaction so that
     * writers are not held up. Rows left behind by a crash are harmless
     * and go with the next compaction. */
    st = s->w[W_COMPACT];
    while (r == 0 && lo < limit) {
        int64_t hi = KF_MIN(limit, lo + (int64_t)COMPACT_CHUNK_REVS * OPS_PER_REV);

        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
        sqlite3_bind_int64(st, 3, limit);
        r = compact_step(s, st);
        sqlite3_clear_bindings(st);
        lo = hi;
    }
    pthread_mutex_unlock(&s->compact_lock);
    if (r < 0)
        kf_log_dbg("compaction of \"%s\" at %lld: %s", s->path, (long long)rev, strerror(-r));
    return r;
}

static int sql_status(struct kf_store *base, struct kf_store_status *ret)
{
    struct sql_store *s = sql(base);
    struct stat st;
    int64_t bytes = 0;

    if (stat(s->path, &st) == 0)
        bytes += st.st_size;
    if (stat(s->wal_path, &st) == 0)
        bytes += st.st_size;
    ret->rev = load64(&s->rev);
    ret->compacted_rev = load64(&s->compacted_rev);
    ret->keys = load64(&s->nkeys);
    ret->db_bytes = bytes;
    ret->mem_bytes = sqlite3_memory_used();
    ret->feed_rev = 0;
    return 0;
}

const struct kf_store_ops kf_store_sqlite_ops = {
    .scheme = "sqlite",
    .open = sql_open,
    .close = sql_close,
    .get = sql_get,
    .range = sql_range,
    .txn = sql_txn,
    .history = sql_history,
    .compact = sql_compact,
    .status = sql_status,
};
