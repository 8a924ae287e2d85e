/* log.h: logging with a level per module that can change at run time.
 *
 * Each .c file that logs declares its module once:
 *
 *     KF_LOG_MODULE(store);
 *
 * and then calls kf_log_info("opened \"%s\"", path). Modules register
 * themselves at start-up, so `kf_log_set_level("store", KF_LOG_DBG)` (or
 * the daemon's --log-level store=debug) works before they first log.
 * Library code (store, ipam, placement, renderers) logs at debug at most;
 * the caller that decides logs once. Hot paths use kf_log_rl_*(), which
 * prints at most a burst per 5 s window per call site and counts the rest.
 *
 * Lines look like: 2026-11-27T19:37:05.123Z kfleetd[123] store info: message
 */
#ifndef KF_LOG_H
#define KF_LOG_H

#include "kfleet/base.h"

enum kf_log_level {
    KF_LOG_OFF = 0,
    KF_LOG_ERR = 1,
    KF_LOG_WARN = 2,
    KF_LOG_INFO = 3,
    KF_LOG_DBG = 4,
};

struct kf_log_module {
    const char *name;
    int level; /* -1: follow the default level */
    struct kf_log_module *next;
};

struct kf_log_ratelimit {
    uint64_t window_start_ns;
    unsigned int printed;
    unsigned int suppressed;
};

void kf_log_register(struct kf_log_module *m);
/* Sets the level of every module called `name`, or the default level when
 * name is NULL or "*". Returns 0, or -ENOENT for an unknown module. */
int kf_log_set_level(const char *name, enum kf_log_level level);
/* Parses "info", "store=debug,api=warn" (comma-separated). -EINVAL on a bad
 * spec, with a message in err. */
struct kf_strbuf;
int kf_log_set_spec(const char *spec, struct kf_strbuf *err);
int kf_log_level_from_name(const char *name, enum kf_log_level *ret);
/* The program name shown on every line and an optional file (NULL: stderr). */
void kf_log_init(const char *progname, const char *path);
/* Opens the log file of kf_log_init again (after logrotate moved it away,
 * on SIGHUP): 1 when reopened, 0 without a log file, -errno when it cannot
 * be opened (the old file stays in use). Thread-safe. */
int kf_log_reopen(void);
bool kf_log_enabled(const struct kf_log_module *m, enum kf_log_level level);
void kf_log_at(const struct kf_log_module *m, enum kf_log_level level, const char *fmt, ...)
    KF_PRINTF(3, 4);
void kf_log_rl_at(const struct kf_log_module *m, struct kf_log_ratelimit *rl,
                  enum kf_log_level level, const char *fmt, ...) KF_PRINTF(4, 5);

#define KF_LOG_MODULE(NAME)                                                          \
    static struct kf_log_module kf_log_this_module = { .name = #NAME, .level = -1 }; \
    __attribute__((constructor)) static void kf_log_register_this_module(void)       \
    {                                                                                \
        kf_log_register(&kf_log_this_module);                                        \
    }

#define kf_log_err(...)  kf_log_at(&kf_log_this_module, KF_LOG_ERR, __VA_ARGS__)
#define kf_log_warn(...) kf_log_at(&kf_log_this_module, KF_LOG_WARN, __VA_ARGS__)
#define kf_log_info(...) kf_log_at(&kf_log_this_module, KF_LOG_INFO, __VA_ARGS__)
#define kf_log_dbg(...)                                              \
    do {                                                             \
        if (kf_log_enabled(&kf_log_this_module, KF_LOG_DBG))         \
            kf_log_at(&kf_log_this_module, KF_LOG_DBG, __VA_ARGS__); \
    } while (0)

#define KF_LOG_RL_(level, ...)                                       \
    do {                                                             \
        static struct kf_log_ratelimit rl_;                          \
        kf_log_rl_at(&kf_log_this_module, &rl_, level, __VA_ARGS__); \
    } while (0)
#define kf_log_rl_err(...)  KF_LOG_RL_(KF_LOG_ERR, __VA_ARGS__)
#define kf_log_rl_warn(...) KF_LOG_RL_(KF_LOG_WARN, __VA_ARGS__)
#define kf_log_rl_info(...) KF_LOG_RL_(KF_LOG_INFO, __VA_ARGS__)

#endif
