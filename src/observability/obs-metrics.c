/* obs-metrics.c: the Prometheus metrics registry behind kfleet/obs-metrics.h.
 *
 * A family keeps its series in insertion order (a growing array, so the
 * exposition is stable from scrape to scrape) and finds them through a
 * chained hash over the label values. Each family has a reader-writer
 * lock: an update hashes the label values and finds its series under the
 * read lock (the write lock only to create one) and changes the value with
 * atomics, so request threads never wait for each other, and a thread
 * preempted while it holds the lock delays nobody (on a busy machine a
 * mutex here made every request queue behind a descheduled one).
 * Histograms keep one counter per bucket (not cumulative) and accumulate
 * them while writing.
 *
 * Process metrics read /proc/self at scrape time; nothing runs in the
 * background.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include "kfleet/obs-metrics.h"
#include "kfleet/strbuf.h"

const double kf_metrics_latency_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,   0.5,   1,      2.5,   5,    10,    30 };
const size_t kf_metrics_latency_nbuckets = KF_ARRAY_SIZE(kf_metrics_latency_buckets);

struct series {
    char **values; /* n_labels copies */
    uint64_t hash;
    struct series *hnext;
    double value;     /* counter, gauge; histogram: sum. Atomic (see add_double) */
    uint64_t count;   /* histogram: observations; atomic */
    uint64_t *bucket; /* histogram: per-bucket counts, n_bounds + 1 (last is +Inf); atomic */
};

/* value += v, atomically (a compare-and-swap on the double's bits). */
static void add_double(double *p, double v)
{
    double old, new;

    __atomic_load(p, &old, __ATOMIC_RELAXED);
    do
        new = old + v;
    while (!__atomic_compare_exchange(p, &old, &new, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

static double load_double(const double *p)
{
    double v;

    __atomic_load(p, &v, __ATOMIC_RELAXED);
    return v;
}

struct kf_metric {
    struct kf_metrics *owner;
    enum kf_metric_type type;
    char *name;
    char *help;
    char **labels;
    size_t n_labels;
    double *bounds;
    size_t n_bounds;
    void (*collect)(struct kf_metric *f, void *arg);
    void *collect_arg;

    pthread_rwlock_t lock;
    struct series **series; /* insertion order */
    size_t n_series, alloc_series;
    struct series **table; /* hash buckets */
    size_t table_size;
    uint64_t dropped;
};

struct kf_metrics {
    pthread_mutex_t lock;
    struct kf_metric **families;
    size_t n, alloc;
    struct kf_metric *dropped;   /* kfleet_metrics_series_dropped_total */
    pthread_rwlock_t child_lock; /* child: read while writing, written by set_child */
    struct kf_metrics *child;
};

static bool name_char(char c, bool first, bool colon_ok)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':'))
        return true;
    return !first && c >= '0' && c <= '9';
}

static bool valid_name(const char *s, bool colon_ok)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++)
        if (!name_char(s[i], i == 0, colon_ok))
            return false;
    return true;
}

static void dropped_collect(struct kf_metric *f, void *arg)
{
    struct kf_metrics *m = arg;

    /* Called with f->lock held; read the other families' counters under
     * their own locks (never f's own, which is this family). Lock order:
     * this family, the registry, another family; nothing takes them in
     * another order. */
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        struct kf_metric *g = m->families[i];
        uint64_t d;

        if (g == f)
            continue;
        d = __atomic_load_n(&g->dropped, __ATOMIC_RELAXED);
        if (d)
            kf_metric_set(f, KF_LABELS(g->name), (double)d);
    }
    pthread_mutex_unlock(&m->lock);
}

struct kf_metrics *kf_metrics_new_child(void)
{
    struct kf_metrics *m = kf_xcalloc(1, sizeof(*m));

    pthread_mutex_init(&m->lock, NULL);
    pthread_rwlock_init(&m->child_lock, NULL);
    return m;
}

struct kf_metrics *kf_metrics_new(void)
{
    struct kf_metrics *m = kf_metrics_new_child();

    m->dropped = kf_metrics_collected(
        m, KF_METRIC_COUNTER, "kfleet_metrics_series_dropped_total",
        "Label combinations not recorded because their family reached its series limit.", "family",
        dropped_collect, m);
    return m;
}

static void series_free(struct kf_metric *f, struct series *s)
{
    for (size_t i = 0; i < f->n_labels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->bucket);
    free(s);
}

static void clear_series(struct kf_metric *f)
{
    for (size_t i = 0; i < f->n_series; i++)
        series_free(f, f->series[i]);
    f->n_series = 0;
    memset(f->table, 0, f->table_size * sizeof(*f->table));
}

static void family_free(struct kf_metric *f)
{
    clear_series(f);
    free(f->series);
    free(f->table);
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->labels[i]);
    free(f->labels);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_rwlock_destroy(&f->lock);
    free(f);
}

void kf_metrics_free(struct kf_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        family_free(m->families[i]);
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    pthread_rwlock_destroy(&m->child_lock);
    free(m);
}

static struct kf_metric *family_new(struct kf_metrics *m, enum kf_metric_type type,
                                    const char *name, const char *help, const char *labels)
{
    struct kf_metric *f;

    kf_assert(valid_name(name, true));
    kf_assert(help && *help);
    f = kf_xcalloc(1, sizeof(*f));
    f->owner = m;
    f->type = type;
    f->name = kf_xstrdup(name);
    f->help = kf_xstrdup(help);
    pthread_rwlock_init(&f->lock, NULL);
    f->table_size = 16;
    f->table = kf_xcalloc(f->table_size, sizeof(*f->table));
    if (labels && *labels) {
        char *copy = kf_xstrdup(labels), *save = NULL;

        f->labels = kf_xcalloc(KF_METRICS_MAX_LABELS, sizeof(*f->labels));
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            kf_assert(f->n_labels < KF_METRICS_MAX_LABELS);
            kf_assert(valid_name(t, false) && strncmp(t, "__", 2) != 0);
            kf_assert(!(type == KF_METRIC_HISTOGRAM && strcmp(t, "le") == 0));
            f->labels[f->n_labels++] = kf_xstrdup(t);
        }
        free(copy);
    }
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++)
        kf_assert(strcmp(m->families[i]->name, name) != 0);
    KF_GROW(m->families, m->alloc, m->n);
    m->families[m->n++] = f;
    pthread_mutex_unlock(&m->lock);
    return f;
}

struct kf_metric *kf_metrics_counter(struct kf_metrics *m, const char *name, const char *help,
                                     const char *labels)
{
    return family_new(m, KF_METRIC_COUNTER, name, help, labels);
}

struct kf_metric *kf_metrics_gauge(struct kf_metrics *m, const char *name, const char *help,
                                   const char *labels)
{
    return family_new(m, KF_METRIC_GAUGE, name, help, labels);
}

struct kf_metric *kf_metrics_histogram(struct kf_metrics *m, const char *name, const char *help,
                                       const char *labels, const double *bounds, size_t n)
{
    struct kf_metric *f = family_new(m, KF_METRIC_HISTOGRAM, name, help, labels);

    kf_assert(n > 0);
    for (size_t i = 1; i < n; i++)
        kf_assert(bounds[i] > bounds[i - 1]);
    f->bounds = kf_xmemdup(bounds, n * sizeof(*bounds));
    f->n_bounds = n;
    return f;
}

struct kf_metric *kf_metrics_collected(struct kf_metrics *m, enum kf_metric_type type,
                                       const char *name, const char *help, const char *labels,
                                       void (*collect)(struct kf_metric *f, void *arg), void *arg)
{
    struct kf_metric *f;

    kf_assert(type == KF_METRIC_COUNTER || type == KF_METRIC_GAUGE);
    kf_assert(collect);
    f = family_new(m, type, name, help, labels);
    f->collect = collect;
    f->collect_arg = arg;
    return f;
}

/* A table of its own rather than kf_smap, on purpose: a series is found by
 * the tuple of its label values, hashed where the caller has them, while
 * kf_smap wants one string, which would mean joining the values on every
 * update (the API server updates a family on every request).
 * bench/metrics (2026-12-07, this 2-core machine, nice 19): a whole
 * kf_metric_add on two labels 40-44 ns; joining the key and kf_smap_get
 * alone, without the lock and the add, 100-106 ns. */
static uint64_t hash_values(const struct kf_metric *f, const char *const *values)
{
    uint64_t h = KF_FNV1A_BASIS_V0;

    for (size_t i = 0; i < f->n_labels; i++)
        h = kf_fnv1a(kf_fnv1a_str(h, values[i]), "\xff", 1); /* 0xff: separator */
    return h;
}

static bool same_values(const struct kf_metric *f, const struct series *s,
                        const char *const *values)
{
    for (size_t i = 0; i < f->n_labels; i++)
        if (strcmp(s->values[i], values[i]) != 0)
            return false;
    return true;
}

static void rehash(struct kf_metric *f)
{
    size_t size = f->table_size * 4;
    struct series **table = kf_xcalloc(size, sizeof(*table));

    for (size_t i = 0; i < f->n_series; i++) {
        struct series *s = f->series[i];

        s->hnext = table[s->hash % size];
        table[s->hash % size] = s;
    }
    free(f->table);
    f->table = table;
    f->table_size = size;
}

/* The series for values, or NULL. f->lock held (read or write). */
static struct series *find(struct kf_metric *f, const char *const *values, uint64_t h)
{
    for (struct series *s = f->table[h % f->table_size]; s; s = s->hnext)
        if (s->hash == h && same_values(f, s, values))
            return s;
    return NULL;
}

/* Finds or creates the series; NULL when the family is full. f->lock held
 * for writing. */
static struct series *find_or_add(struct kf_metric *f, const char *const *values, uint64_t h)
{
    struct series *s = find(f, values, h);

    if (s)
        return s;
    if (f->n_series >= KF_METRICS_MAX_SERIES) {
        __atomic_add_fetch(&f->dropped, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    s = kf_xcalloc(1, sizeof(*s));
    s->hash = h;
    if (f->n_labels) {
        s->values = kf_xcalloc(f->n_labels, sizeof(*s->values));
        for (size_t i = 0; i < f->n_labels; i++)
            s->values[i] = kf_xstrdup(values[i] ? values[i] : "");
    }
    if (f->type == KF_METRIC_HISTOGRAM)
        s->bucket = kf_xcalloc(f->n_bounds + 1, sizeof(*s->bucket));
    KF_GROW(f->series, f->alloc_series, f->n_series);
    f->series[f->n_series++] = s;
    if (f->n_series > f->table_size * 2) {
        rehash(f);
    } else {
        s->hnext = f->table[h % f->table_size];
        f->table[h % f->table_size] = s;
    }
    return s;
}

/* Runs op on the series for values, creating it if needed. Collected
 * families are changed only by their callback, which runs with the write
 * lock already held by kf_metrics_write. */
static void with_series(struct kf_metric *f, const char *const *values,
                        void (*op)(struct kf_metric *f, struct series *s, double v), double v)
{
    uint64_t h;
    struct series *s;

    kf_assert(f->n_labels == 0 || values);
    h = hash_values(f, values);
    if (f->collect) {
        s = find_or_add(f, values, h);
        if (s)
            op(f, s, v);
        return;
    }
    pthread_rwlock_rdlock(&f->lock);
    s = find(f, values, h);
    if (s) {
        op(f, s, v);
        pthread_rwlock_unlock(&f->lock);
        return;
    }
    pthread_rwlock_unlock(&f->lock);
    pthread_rwlock_wrlock(&f->lock);
    s = find_or_add(f, values, h);
    if (s)
        op(f, s, v);
    pthread_rwlock_unlock(&f->lock);
}

static void op_add(struct kf_metric *f, struct series *s, double v)
{
    add_double(&s->value, v);
}

static void op_set(struct kf_metric *f, struct series *s, double v)
{
    __atomic_store(&s->value, &v, __ATOMIC_RELAXED);
}

static void op_observe(struct kf_metric *f, struct series *s, double v)
{
    size_t i;

    for (i = 0; i < f->n_bounds && v > f->bounds[i]; i++)
        ;
    __atomic_add_fetch(&s->bucket[i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
    add_double(&s->value, v);
}

void kf_metric_add(struct kf_metric *f, const char *const *values, double v)
{
    kf_assert(f->type != KF_METRIC_HISTOGRAM);
    kf_assert(f->type != KF_METRIC_COUNTER || v >= 0);
    with_series(f, values, op_add, v);
}

void kf_metric_set(struct kf_metric *f, const char *const *values, double v)
{
    kf_assert(f->type == KF_METRIC_GAUGE || f->collect);
    with_series(f, values, op_set, v);
}

void kf_metric_observe(struct kf_metric *f, const char *const *values, double v)
{
    kf_assert(f->type == KF_METRIC_HISTOGRAM);
    with_series(f, values, op_observe, v);
}

double kf_metric_value(struct kf_metric *f, const char *const *values)
{
    uint64_t h = hash_values(f, values);
    struct series *s;
    double v = 0;

    pthread_rwlock_rdlock(&f->lock);
    s = find(f, values, h);
    if (s)
        v = f->type == KF_METRIC_HISTOGRAM ? (double)__atomic_load_n(&s->count, __ATOMIC_RELAXED)
                                           : load_double(&s->value);
    pthread_rwlock_unlock(&f->lock);
    return v;
}

/* --- exposition ------------------------------------------------------- */

static void add_number(struct kf_strbuf *out, double v)
{
    char buf[40];

    if (isnan(v)) {
        kf_strbuf_addstr(out, "NaN");
        return;
    }
    if (isinf(v)) {
        kf_strbuf_addstr(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* The shortest of %.15g / %.17g that reads back as the same double. */
    snprintf(buf, sizeof(buf), "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof(buf), "%.17g", v);
    kf_strbuf_addstr(out, buf);
}

static void add_escaped(struct kf_strbuf *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            kf_strbuf_addstr(out, "\\\\");
        else if (*s == '\n')
            kf_strbuf_addstr(out, "\\n");
        else if (quote && *s == '"')
            kf_strbuf_addstr(out, "\\\"");
        else
            kf_strbuf_addch(out, *s);
    }
}

/* {a="x",b="y"[,le="0.5"]} or nothing. */
static void add_labels(struct kf_strbuf *out, const struct kf_metric *f, const struct series *s,
                       const char *le)
{
    size_t n = 0;

    if (f->n_labels == 0 && !le)
        return;
    kf_strbuf_addch(out, '{');
    for (size_t i = 0; i < f->n_labels; i++, n++) {
        kf_strbuf_addf(out, "%s%s=\"", n ? "," : "", f->labels[i]);
        add_escaped(out, s->values[i], true);
        kf_strbuf_addch(out, '"');
    }
    if (le)
        kf_strbuf_addf(out, "%sle=\"%s\"", n ? "," : "", le);
    kf_strbuf_addch(out, '}');
}

static void write_family(struct kf_metric *f, struct kf_strbuf *out)
{
    static const char *const type_names[] = {
        [KF_METRIC_COUNTER] = "counter",
        [KF_METRIC_GAUGE] = "gauge",
        [KF_METRIC_HISTOGRAM] = "histogram",
    };

    if (f->collect) {
        pthread_rwlock_wrlock(&f->lock);
        clear_series(f);
        f->collect(f, f->collect_arg);
    } else {
        pthread_rwlock_rdlock(&f->lock);
    }
    kf_strbuf_addf(out, "# HELP %s ", f->name);
    add_escaped(out, f->help, false);
    kf_strbuf_addf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    for (size_t i = 0; i < f->n_series; i++) {
        const struct series *s = f->series[i];

        if (f->type != KF_METRIC_HISTOGRAM) {
            kf_strbuf_addstr(out, f->name);
            add_labels(out, f, s, NULL);
            kf_strbuf_addch(out, ' ');
            add_number(out, load_double(&s->value));
            kf_strbuf_addch(out, '\n');
            continue;
        }
        uint64_t cum = 0;

        for (size_t b = 0; b <= f->n_bounds; b++) {
            char le[40];

            cum += __atomic_load_n(&s->bucket[b], __ATOMIC_RELAXED);
            if (b < f->n_bounds) {
                struct kf_strbuf tmp = KF_STRBUF_INIT;

                add_number(&tmp, f->bounds[b]);
                snprintf(le, sizeof(le), "%s", tmp.buf);
                kf_strbuf_release(&tmp);
            } else {
                snprintf(le, sizeof(le), "+Inf");
            }
            kf_strbuf_addf(out, "%s_bucket", f->name);
            add_labels(out, f, s, le);
            kf_strbuf_addf(out, " %llu\n", (unsigned long long)cum);
        }
        kf_strbuf_addf(out, "%s_sum", f->name);
        add_labels(out, f, s, NULL);
        kf_strbuf_addch(out, ' ');
        add_number(out, load_double(&s->value));
        kf_strbuf_addf(out, "\n%s_count", f->name);
        add_labels(out, f, s, NULL);
        /* the count is the buckets' sum, so _count and +Inf always agree */
        kf_strbuf_addf(out, " %llu\n", (unsigned long long)cum);
    }
    pthread_rwlock_unlock(&f->lock);
}

int kf_metrics_write(struct kf_metrics *m, struct kf_strbuf *out)
{
    size_t n;

    /* Families are only ever appended, so a snapshot of the count is a
     * consistent list to walk without holding the registry lock. */
    pthread_mutex_lock(&m->lock);
    n = m->n;
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        struct kf_metric *f;

        pthread_mutex_lock(&m->lock);
        f = m->families[i];
        pthread_mutex_unlock(&m->lock);
        write_family(f, out);
    }
    pthread_rwlock_rdlock(&m->child_lock);
    if (m->child)
        kf_metrics_write(m->child, out);
    pthread_rwlock_unlock(&m->child_lock);
    return out->overflowed ? -E2BIG : 0;
}

void kf_metrics_set_child(struct kf_metrics *m, struct kf_metrics *child)
{
    pthread_rwlock_wrlock(&m->child_lock);
    m->child = child;
    pthread_rwlock_unlock(&m->child_lock);
}

/* --- process metrics -------------------------------------------------- */

enum process_what {
    PROC_CPU,
    PROC_RSS,
    PROC_VSIZE,
    PROC_OPEN_FDS,
    PROC_MAX_FDS,
    PROC_START,
};

/* Fields 14 (utime), 15 (stime), 22 (starttime), 23 (vsize), 24 (rss) of
 * /proc/self/stat; the command name (field 2) may hold spaces, so parsing
 * starts after its closing parenthesis. */
static int read_stat(double *utime, double *stime, double *start, double *vsize, double *rss)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n;
    char *p, *save = NULL;
    int field = 3;

    if (!f)
        return -errno;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (!p)
        return -EINVAL;
    for (char *t = strtok_r(p + 2, " ", &save); t; t = strtok_r(NULL, " ", &save), field++) {
        double v = strtod(t, NULL);

        if (field == 14)
            *utime = v;
        else if (field == 15)
            *stime = v;
        else if (field == 22)
            *start = v;
        else if (field == 23)
            *vsize = v;
        else if (field == 24) {
            *rss = v;
            return 0;
        }
    }
    return -EINVAL;
}

static double boot_time(void)
{
    char line[256];
    FILE *f = fopen("/proc/stat", "r");
    double bt = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return bt;
}

static void process_collect(struct kf_metric *f, void *arg)
{
    enum process_what what = (enum process_what)(intptr_t)arg;
    double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);

    if (what == PROC_OPEN_FDS) {
        DIR *d = opendir("/proc/self/fd");
        double n = 0;

        if (!d)
            return;
        while (readdir(d))
            n++;
        closedir(d);
        kf_metric_set(f, NULL, n - 3); /* ".", ".." and the directory's own fd */
        return;
    }
    if (what == PROC_MAX_FDS) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
            kf_metric_set(f, NULL, (double)rl.rlim_cur);
        return;
    }
    if (read_stat(&utime, &stime, &start, &vsize, &rss) < 0)
        return;
    switch (what) {
    case PROC_CPU:
        kf_metric_set(f, NULL, (utime + stime) / ticks);
        break;
    case PROC_RSS:
        kf_metric_set(f, NULL, rss * page);
        break;
    case PROC_VSIZE:
        kf_metric_set(f, NULL, vsize);
        break;
    case PROC_START:
        kf_metric_set(f, NULL, boot_time() + start / ticks);
        break;
    default:
        break;
    }
}

void kf_metrics_add_process(struct kf_metrics *m)
{
    static const struct {
        enum process_what what;
        enum kf_metric_type type;
        const char *name, *help;
    } table[] = {
        { PROC_CPU, KF_METRIC_COUNTER, "process_cpu_seconds_total",
          "Total user and system CPU time spent in seconds." },
        { PROC_RSS, KF_METRIC_GAUGE, "process_resident_memory_bytes",
          "Resident memory size in bytes." },
        { PROC_VSIZE, KF_METRIC_GAUGE, "process_virtual_memory_bytes",
          "Virtual memory size in bytes." },
        { PROC_OPEN_FDS, KF_METRIC_GAUGE, "process_open_fds", "Number of open file descriptors." },
        { PROC_MAX_FDS, KF_METRIC_GAUGE, "process_max_fds",
          "Maximum number of open file descriptors." },
        { PROC_START, KF_METRIC_GAUGE, "process_start_time_seconds",
          "Start time of the process since unix epoch in seconds." },
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(table); i++)
        kf_metrics_collected(m, table[i].type, table[i].name, table[i].help, NULL, process_collect,
                             (void *)(intptr_t)table[i].what);
}
