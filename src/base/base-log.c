/* base-log.c: per-module log levels, one line per message, rate limits.
 *
 * Modules register from constructors (KF_LOG_MODULE), so the registry is a
 * plain list built before main(); levels are read and written atomically so
 * `kf_log_set_level` may run while other threads log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "kfleet/log.h"
#include "kfleet/strbuf.h"

static struct kf_log_module *modules;
static int default_level = KF_LOG_INFO;
static const char *progname = "kfleet";
static FILE *log_file;
static char *log_path; /* --log-file, for kf_log_reopen */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "off", "error", "warn", "info", "debug" };

void kf_log_register(struct kf_log_module *m)
{
    m->next = modules;
    modules = m;
}

void kf_log_init(const char *name, const char *path)
{
    if (name)
        progname = name;
    if (path) {
        FILE *f = fopen(path, "ae");

        if (f) {
            setvbuf(f, NULL, _IOLBF, 0);
            log_file = f;
            free(log_path);
            log_path = strdup(path);
        } else {
            fprintf(stderr, "%s: cannot open log file \"%s\": %s; logging to stderr\n", progname,
                    path, strerror(errno));
        }
    }
}

int kf_log_reopen(void)
{
    FILE *f, *old;

    if (!log_path)
        return 0;
    f = fopen(log_path, "ae");
    if (!f)
        return -errno;
    setvbuf(f, NULL, _IOLBF, 0);
    pthread_mutex_lock(&write_lock);
    old = log_file;
    log_file = f;
    pthread_mutex_unlock(&write_lock);
    if (old)
        fclose(old);
    return 1;
}

int kf_log_level_from_name(const char *name, enum kf_log_level *ret)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *ret = (enum kf_log_level)i;
            return 0;
        }
    }
    if (strcmp(name, "err") == 0) {
        *ret = KF_LOG_ERR;
        return 0;
    }
    if (strcmp(name, "dbg") == 0 || strcmp(name, "warning") == 0) {
        *ret = strcmp(name, "dbg") == 0 ? KF_LOG_DBG : KF_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

int kf_log_set_level(const char *name, enum kf_log_level level)
{
    bool found = false;

    if (!name || strcmp(name, "*") == 0) {
        __atomic_store_n(&default_level, (int)level, __ATOMIC_RELAXED);
        return 0;
    }
    for (struct kf_log_module *m = modules; m; m = m->next) {
        if (strcmp(m->name, name) == 0) {
            __atomic_store_n(&m->level, (int)level, __ATOMIC_RELAXED);
            found = true;
        }
    }
    return found ? 0 : -ENOENT;
}

int kf_log_set_spec(const char *spec, struct kf_strbuf *err)
{
    char *copy = kf_xstrdup(spec), *save = NULL, *item;
    int r = 0;

    for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        const char *lvl = eq ? eq + 1 : item;
        enum kf_log_level level;

        if (eq)
            *eq = '\0';
        if (kf_log_level_from_name(lvl, &level) < 0) {
            r = kf_err(err, -EINVAL,
                       "unknown log level \"%s\" (use off, error, warn, info or debug)", lvl);
            break;
        }
        if (kf_log_set_level(eq ? item : NULL, level) < 0) {
            struct kf_strbuf names = KF_STRBUF_INIT;

            for (struct kf_log_module *m = modules; m; m = m->next)
                kf_strbuf_addf(&names, "%s%s", names.len ? ", " : "", m->name);
            r = kf_err(err, -EINVAL, "unknown log module \"%s\" (known: %s)", item, names.buf);
            kf_strbuf_release(&names);
            break;
        }
    }
    free(copy);
    return r;
}

bool kf_log_enabled(const struct kf_log_module *m, enum kf_log_level level)
{
    int l = __atomic_load_n(&m->level, __ATOMIC_RELAXED);

    if (l < 0)
        l = __atomic_load_n(&default_level, __ATOMIC_RELAXED);
    return (int)level <= l;
}

static void emit(const struct kf_log_module *m, enum kf_log_level level, const char *fmt,
                 va_list ap, unsigned int suppressed) KF_PRINTF(3, 0);

static void emit(const struct kf_log_module *m, enum kf_log_level level, const char *fmt,
                 va_list ap, unsigned int suppressed)
{
    char ts[32];
    struct kf_strbuf line = KF_STRBUF_INIT;
    int64_t now = kf_now_ms();
    FILE *out;

    kf_time_format_rfc3339(now, ts, sizeof(ts));
    /* rfc3339 has seconds; add milliseconds before the Z */
    ts[strlen(ts) - 1] = '\0';
    kf_strbuf_addf(&line, "%s.%03dZ %s[%d] %s %s: ", ts, (int)(now % 1000), progname, (int)getpid(),
                   m->name, level_names[level]);
    kf_strbuf_vaddf(&line, fmt, ap);
    if (suppressed)
        kf_strbuf_addf(&line, " (%u similar messages suppressed)", suppressed);
    kf_strbuf_addch(&line, '\n');
    pthread_mutex_lock(&write_lock);
    out = log_file ? log_file : stderr; /* kf_log_reopen swaps it under the lock */
    fwrite(line.buf, 1, line.len, out);
    fflush(out);
    pthread_mutex_unlock(&write_lock);
    kf_strbuf_release(&line);
}

void kf_log_at(const struct kf_log_module *m, enum kf_log_level level, const char *fmt, ...)
{
    va_list ap;

    if (!kf_log_enabled(m, level))
        return;
    va_start(ap, fmt);
    emit(m, level, fmt, ap, 0);
    va_end(ap);
}

#define KF_LOG_RL_WINDOW_NS (5ull * 1000 * 1000 * 1000)
#define KF_LOG_RL_BURST     5

void kf_log_rl_at(const struct kf_log_module *m, struct kf_log_ratelimit *rl,
                  enum kf_log_level level, const char *fmt, ...)
{
    static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
    uint64_t now = kf_mono_ns();
    unsigned int suppressed = 0;
    bool print;
    va_list ap;

    if (!kf_log_enabled(m, level))
        return;
    pthread_mutex_lock(&rl_lock);
    if (now - rl->window_start_ns > KF_LOG_RL_WINDOW_NS) {
        suppressed = rl->suppressed;
        rl->window_start_ns = now;
        rl->printed = 0;
        rl->suppressed = 0;
    }
    print = rl->printed < KF_LOG_RL_BURST;
    if (print)
        rl->printed++;
    else
        rl->suppressed++;
    pthread_mutex_unlock(&rl_lock);
    if (!print)
        return;
    va_start(ap, fmt);
    emit(m, level, fmt, ap, suppressed);
    va_end(ap);
}
