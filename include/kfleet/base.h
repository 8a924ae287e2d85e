/* base.h: what every kfleet file uses: allocation that aborts on
 * out-of-memory, small macros, strict number parsing, and the banned list.
 *
 * Include system headers first and kfleet headers after them: banned.h turns
 * unsafe libc names into macros, which would break a system header included
 * later.
 */
#ifndef KF_BASE_H
#define KF_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KF_ARRAY_SIZE(a)     (sizeof(a) / sizeof((a)[0]))
#define KF_MIN(a, b)         ((a) < (b) ? (a) : (b))
#define KF_MAX(a, b)         ((a) > (b) ? (a) : (b))
#define KF_UNUSED            __attribute__((unused))
#define KF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define KF_NORETURN          __attribute__((noreturn))

/* Allocation. These abort with a message on out-of-memory: kfleet never
 * continues half-allocated. Sizes a client controls are capped before they
 * reach an allocator (see kf_strbuf caps and the API's body limit). */
void *kf_xmalloc(size_t size);
void *kf_xcalloc(size_t nmemb, size_t size);
void *kf_xrealloc(void *ptr, size_t size);
char *kf_xstrdup(const char *s);
char *kf_xstrndup(const char *s, size_t n);
char *kf_xasprintf(const char *fmt, ...) KF_PRINTF(1, 2);
char *kf_xvasprintf(const char *fmt, va_list ap) KF_PRINTF(1, 0);
void *kf_xmemdup(const void *p, size_t n);

/* Grows *items (of *alloc elements of elem_size) so that index n fits. */
void kf_grow(void **items, size_t *alloc, size_t n, size_t elem_size);
#define KF_GROW(items, alloc, n) kf_grow((void **)&(items), &(alloc), (n), sizeof(*(items)))

/* Assertions for programmer errors stay on in every build. */
void kf_assert_fail(const char *expr, const char *file, int line, const char *func) KF_NORETURN;
#define kf_assert(expr) ((expr) ? (void)0 : kf_assert_fail(#expr, __FILE__, __LINE__, __func__))

void kf_abort(const char *fmt, ...) KF_PRINTF(1, 2) KF_NORETURN;

/* Strict number parsing: the whole string must be a number in range.
 * Return 0 and set *ret, or -EINVAL (not a number) / -ERANGE (out of range);
 * *ret is untouched on failure. */
int kf_parse_int64(const char *s, int64_t *ret);
int kf_parse_uint64(const char *s, uint64_t *ret);
int kf_parse_int(const char *s, int *ret);
int kf_parse_double(const char *s, double *ret);
/* The value of one hexadecimal digit (either case), or -1. */
int kf_hex_digit(char c);

/* Kubernetes resource quantities ("500m", "2", "4Gi", "1.5G", "128974848").
 * kf_parse_quantity stores the value in milli-units (CPU "500m" -> 500,
 * memory "1Ki" -> 1024000) so that CPU and memory share one integer type;
 * use kf_quantity_bytes for memory. Return 0 or -EINVAL / -ERANGE. */
int kf_parse_quantity(const char *s, int64_t *ret_milli);
/* Durations as Go and Prometheus write them: "90s", "5m", "1h30m", "250ms". */
int kf_parse_duration_ms(const char *s, int64_t *ret_ms);

bool kf_str_has_prefix(const char *s, const char *prefix);
bool kf_str_has_suffix(const char *s, const char *suffix);
bool kf_streq(const char *a, const char *b); /* NULL-safe */
/* qsort/bsearch comparator for an array of strings (char * or const char *
 * elements): strcmp of the strings a and b point to. */
int kf_strp_cmp(const void *a, const void *b);

/* Time. kf_now_ms: wall clock in ms since the epoch; kf_mono_ns and
 * kf_mono_ms: CLOCK_MONOTONIC in ns and ms (deadlines, back-off, timeouts:
 * never the wall clock, which jumps).
 * kf_time_format_rfc3339 writes "2006-01-02T15:04:05Z" (UTC) into buf (>= 32). */
int64_t kf_now_ms(void);
uint64_t kf_mono_ns(void);
int64_t kf_mono_ms(void);
void kf_time_format_rfc3339(int64_t ms, char *buf, size_t size);
/* Sleeps ms milliseconds (a signal does not cut it short). */
void kf_sleep_ms(int64_t ms);
int kf_time_parse_rfc3339(const char *s, int64_t *ret_ms);

/* FNV-1a (64 bit) of len bytes of data, or of the string s, continuing from
 * h: start with KF_FNV1A_BASIS, feed more by passing the result back. Not a
 * defence against chosen keys (kf_smap mixes the result before it probes);
 * for names of things and change detection. */
#define KF_FNV1A_BASIS 14695981039346656037ull
/* The basis kfleet's first copies of FNV-1a started from (the standard one
 * without its last digit). Names made from it are stored and on disk (HAProxy
 * process names) or sent (the OpenAPI ETag), so those callers keep it. */
#define KF_FNV1A_BASIS_V0 1469598103934665603ull
uint64_t kf_fnv1a(uint64_t h, const void *data, size_t len);
uint64_t kf_fnv1a_str(uint64_t h, const char *s);

/* Replaces each {{key}} in tmpl that lookup knows (it gets the key without
 * the braces and returns the value, or NULL to leave the placeholder as it
 * is); an unclosed "{{" stays as it is. Returns a new string (base-fill.c):
 * the one filler of the catalog's templates and the agent's paths. */
char *kf_fill_placeholders(const char *tmpl,
                           const char *(*lookup)(void *ctx, const char *key, size_t len),
                           void *ctx);

/* A growable, NULL-terminated argv (or env) to build a command line with
 * (base-argv.c): (const char *const *)a.v is what execve and the runner's
 * kf_proc_spec want. Zero-initialise; kf_argv_release frees and zeroes. */
struct kf_argv {
    char **v; /* NULL-terminated once anything was added; NULL when empty */
    size_t n, alloc;
};
void kf_argv_add(struct kf_argv *a, const char *s);
void kf_argv_addf(struct kf_argv *a, const char *fmt, ...) KF_PRINTF(2, 3);
void kf_argv_release(struct kf_argv *a);

/* Listen addresses (base-listen.c). kf_parse_listen splits "HOST:PORT" /
 * "[V6]:PORT": -EINVAL with a message on a bad one; ret_host is allocated
 * (without brackets). kf_host_is_loopback is true when every address HOST
 * resolves to is a loopback address (127.0.0.0/8, ::1, "localhost"). */
struct kf_strbuf;
int kf_parse_listen(const char *listen, char **ret_host, uint16_t *ret_port, struct kf_strbuf *err);
bool kf_host_is_loopback(const char *host);

/* Random bytes from the kernel; aborts if the kernel has none. */
void kf_random_bytes(void *buf, size_t n);
/* A UUID v4 string (36 chars + NUL) in buf. */
void kf_uuid(char buf[37]);

/* fsyncs the folder dir, or the folder that holds path, so that a rename
 * into it survives a crash (base-file.c). 0 or -errno; a file system that
 * cannot fsync folders (EINVAL) counts as done. */
int kf_fsync_dir(const char *dir);
int kf_fsync_dir_of(const char *path);

#include "kfleet/banned.h"

/* Names are DNS-1123 subdomains (lower-case alphanumerics, '-' and '.',
 * starting and ending alphanumeric, <= 253). */
#define KF_NAME_MAX 253
bool kf_name_valid(const char *name);
/* Is s[0..len) a DNS-1123 label (lower-case alphanumerics and '-', starting
 * and ending alphanumeric, 1 to 63)? s need not be NUL-terminated. */
bool kf_dns_label_valid(const char *s, size_t len);

#endif
