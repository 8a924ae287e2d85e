/* endpoint-haproxy.c: the haproxy.cfg of one unit's guest-cluster
 * endpoints, and the small texts around it (the apiServer URL, HAProxy's
 * check output, operator settings).
 *
 * A pure library (kfleet/endpoint.h): no store, no files, no logging. The
 * file it writes is HAProxy 2.6's (Debian 12):
 *
 *   global     master-worker (kfleetd also passes -W): SIGUSR2 to the
 *              master re-reads the file, and the master hands the listening
 *              sockets to the new worker itself (`-x sockpair@N`), so a
 *              reload refuses no connection and the old worker finishes the
 *              ones it has (bounded by hard-stop-after). No log section:
 *              server state changes go to stderr, which the runner keeps.
 *   defaults   mode tcp (TLS goes through untouched: clients verify the
 *              apiserver's own certificate, which carries the endpoint
 *              address), timeouts with a long tunnel timeout for watches,
 *              redispatch so a connection refused by a dead apiserver is
 *              tried on another one before the checks have noticed.
 *   per cluster  frontend <cluster> bound to its address and port, backend
 *              <cluster> with `option httpchk GET /readyz`, `http-check
 *              expect status 200`, and one server per apiserver checked over
 *              TLS (check-ssl) and verified against the cluster's CA.
 *
 * Everything that reaches the file is validated first: names are DNS-1123,
 * addresses IP literals (inet_pton), ports 1..65535, settings from a short
 * grammar, paths absolute without whitespace. So an object cannot add a
 * line or a keyword. Clusters and backends are sorted by name.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/endpoint.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"

/* --- settings -------------------------------------------------------------- */

void kf_ep_settings_default(struct kf_ep_settings *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->timeout_connect, sizeof(s->timeout_connect), "5s");
    snprintf(s->timeout_client, sizeof(s->timeout_client), "60s");
    snprintf(s->timeout_server, sizeof(s->timeout_server), "60s");
    snprintf(s->timeout_tunnel, sizeof(s->timeout_tunnel), "1h");
    snprintf(s->check_interval, sizeof(s->check_interval), "1s");
    snprintf(s->check_interval_up, sizeof(s->check_interval_up), "3s");
    s->check_fall = 2;
    s->check_rise = 1;
    s->maxconn = 0; /* HAProxy derives it from its file descriptor limit */
}

/* 1..9 digits and an optional unit: HAProxy's time syntax, minus nothing
 * it accepts that a person would write. */
static bool time_valid(const char *v)
{
    static const char *const units[] = { "", "us", "ms", "s", "m", "h", "d" };
    size_t digits = strspn(v, "0123456789");

    if (digits == 0 || digits > 9)
        return false;
    for (size_t i = 0; i < KF_ARRAY_SIZE(units); i++)
        if (strcmp(v + digits, units[i]) == 0)
            return true;
    return false;
}

static bool count_valid(const char *v, int min, int max, int *ret)
{
    size_t digits = strspn(v, "0123456789");
    long n;

    if (digits == 0 || digits > 7 || v[digits] != '\0')
        return false;
    n = strtol(v, NULL, 10);
    if (n < min || n > max)
        return false;
    *ret = (int)n;
    return true;
}

int kf_ep_settings_set(struct kf_ep_settings *s, const char *key, const char *value,
                       struct kf_strbuf *err)
{
    static const struct {
        const char *key;
        size_t off;
    } times[] = {
        { "timeout-connect", offsetof(struct kf_ep_settings, timeout_connect) },
        { "timeout-client", offsetof(struct kf_ep_settings, timeout_client) },
        { "timeout-server", offsetof(struct kf_ep_settings, timeout_server) },
        { "timeout-tunnel", offsetof(struct kf_ep_settings, timeout_tunnel) },
        { "check-interval", offsetof(struct kf_ep_settings, check_interval) },
        { "check-interval-up", offsetof(struct kf_ep_settings, check_interval_up) },
    };
    static const struct {
        const char *key;
        size_t off;
        int min, max;
    } counts[] = {
        { "check-fall", offsetof(struct kf_ep_settings, check_fall), 1, 100 },
        { "check-rise", offsetof(struct kf_ep_settings, check_rise), 1, 100 },
        { "maxconn", offsetof(struct kf_ep_settings, maxconn), 1, 1000000 },
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(times); i++) {
        if (strcmp(key, times[i].key) != 0)
            continue;
        if (!time_valid(value))
            return kf_err(err, -EINVAL,
                          "%s%s \"%.64s\": want an HAProxy time, 1 to 9 digits and a unit "
                          "(us, ms, s, m, h, d), e.g. \"90s\"",
                          KF_EP_ANNOTATION_PREFIX, key, value);
        snprintf((char *)s + times[i].off, KF_EP_TIME_MAX, "%s", value);
        return 0;
    }
    for (size_t i = 0; i < KF_ARRAY_SIZE(counts); i++) {
        int n;

        if (strcmp(key, counts[i].key) != 0)
            continue;
        if (!count_valid(value, counts[i].min, counts[i].max, &n))
            return kf_err(err, -EINVAL, "%s%s \"%.64s\": want a whole number from %d to %d",
                          KF_EP_ANNOTATION_PREFIX, key, value, counts[i].min, counts[i].max);
        memcpy((char *)s + counts[i].off, &n, sizeof(n));
        return 0;
    }
    return kf_err(err, -EINVAL,
                  "%s%.64s: no such setting (there are timeout-connect, timeout-client, "
                  "timeout-server, timeout-tunnel, check-interval, check-interval-up, check-fall, "
                  "check-rise, "
                  "maxconn)",
                  KF_EP_ANNOTATION_PREFIX, key);
}

/* --- addresses ------------------------------------------------------------- */

bool kf_ep_ip_literal(const char *s)
{
    unsigned char buf[16];

    if (!s || strlen(s) >= KF_EP_ADDR_MAX)
        return false;
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool port_valid(int port)
{
    return port >= 1 && port <= 65535;
}

int kf_ep_parse_url(const char *url, char ret_addr[KF_EP_ADDR_MAX], int *ret_port,
                    struct kf_strbuf *err)
{
    static const char scheme[] = "https://";
    char addr[KF_EP_ADDR_MAX];
    const char *p, *colon, *end;
    size_t alen;
    int port = 0;

    if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return kf_err(err, -EINVAL, "\"%.100s\" does not start with https://", url ? url : "");
    p = url + sizeof(scheme) - 1;
    if (*p == '[') {
        const char *close = strchr(p, ']');

        if (!close || close[1] != ':')
            return kf_err(err, -EINVAL, "\"%.100s\": an IPv6 address wants [ADDR]:PORT", url);
        alen = (size_t)(close - p - 1);
        p++;
        colon = close + 1;
    } else {
        colon = strchr(p, ':');
        if (!colon)
            return kf_err(err, -EINVAL, "\"%.100s\" has no port", url);
        alen = (size_t)(colon - p);
    }
    if (alen == 0 || alen >= sizeof(addr))
        return kf_err(err, -EINVAL, "\"%.100s\": the address is empty or too long", url);
    memcpy(addr, p, alen);
    addr[alen] = '\0';
    /* IPv6 in brackets, IPv4 without */
    if (!kf_ep_ip_literal(addr) || (colon[-1] == ']') != (strchr(addr, ':') != NULL))
        return kf_err(err, -EINVAL, "\"%.100s\": \"%s\" is not an IP address", url, addr);
    end = colon + 1;
    for (size_t digits = 0; *end >= '0' && *end <= '9'; end++, digits++) {
        if (digits >= 5)
            return kf_err(err, -EINVAL, "\"%.100s\": the port is out of range", url);
        port = port * 10 + (*end - '0');
    }
    if (end == colon + 1 || !port_valid(port))
        return kf_err(err, -EINVAL, "\"%.100s\": the port is missing or out of range", url);
    if (*end == '/')
        end++;
    if (*end != '\0')
        return kf_err(err, -EINVAL, "\"%.100s\": nothing may follow ADDR:PORT", url);
    memcpy(ret_addr, addr, alen + 1);
    *ret_port = port;
    return 0;
}

/* "a.b.c.d:port" or "[v6]:port". */
static void add_hostport(struct kf_strbuf *out, const char *addr, int port)
{
    if (strchr(addr, ':'))
        kf_strbuf_addf(out, "[%s]:%d", addr, port);
    else
        kf_strbuf_addf(out, "%s:%d", addr, port);
}

/* --- HAProxy's check output ------------------------------------------------ */

void kf_ep_haproxy_message(const char *output, size_t len, size_t max, struct kf_strbuf *ret)
{
    static const char alert[] = "[ALERT]";
    struct kf_strbuf msg = KF_STRBUF_INIT;
    const char *p = output, *end = output + len, *last = NULL;
    size_t last_len = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t n = (size_t)(eol - p);

        while (n && (p[n - 1] == '\r' || p[n - 1] == ' '))
            n--;
        if (n >= sizeof(alert) - 1 && memcmp(p, alert, sizeof(alert) - 1) == 0) {
            /* "[ALERT]    (123) : config : parsing [f:3] : ..." -> after the
             * "(pid) : " and a "config : " that follows it */
            const char *q = p + sizeof(alert) - 1, *stop = p + n, *c;

            while (q < stop && *q == ' ')
                q++;
            if (q < stop && *q == '(' && (c = memchr(q, ')', (size_t)(stop - q))) &&
                (size_t)(stop - c) >= 4 && memcmp(c + 1, " : ", 3) == 0)
                q = c + 4;
            if ((size_t)(stop - q) >= 9 && memcmp(q, "config : ", 9) == 0)
                q += 9;
            /* the summary lines add nothing to the first ones */
            if (!(msg.len && ((size_t)(stop - q) >= 9 && (memcmp(q, "Error(s) ", 9) == 0 ||
                                                          memcmp(q, "Fatal err", 9) == 0)))) {
                if (msg.len)
                    kf_strbuf_addstr(&msg, "; ");
                kf_strbuf_add(&msg, q, (size_t)(stop - q));
            }
        } else if (n) {
            last = p;
            last_len = n;
        }
        p = nl ? nl + 1 : end;
    }
    if (!msg.len && last)
        kf_strbuf_add(&msg, last, last_len);
    /* control characters would make an Event hard to read */
    for (size_t i = 0; i < msg.len; i++)
        if ((unsigned char)msg.buf[i] < 0x20 || msg.buf[i] == 0x7f)
            msg.buf[i] = ' ';
    if (max >= 4 && msg.len > max) {
        kf_strbuf_setlen(&msg, max - 3);
        kf_strbuf_addstr(&msg, "...");
    }
    if (msg.len)
        kf_strbuf_add(ret, msg.buf, msg.len);
    kf_strbuf_release(&msg);
}

/* --- the file -------------------------------------------------------------- */

static int cmp_cluster(const void *a, const void *b)
{
    const struct kf_ep_cluster *x = *(const struct kf_ep_cluster *const *)a;
    const struct kf_ep_cluster *y = *(const struct kf_ep_cluster *const *)b;

    return strcmp(x->name, y->name);
}

/* By address, port, then name: clusters that want one bind are neighbours. */
static int cmp_bind(const void *a, const void *b)
{
    const struct kf_ep_cluster *x = *(const struct kf_ep_cluster *const *)a;
    const struct kf_ep_cluster *y = *(const struct kf_ep_cluster *const *)b;
    int c = strcmp(x->address, y->address);

    if (c == 0)
        c = (x->port > y->port) - (x->port < y->port);
    return c ? c : strcmp(x->name, y->name);
}

/* The first two clusters that want one address and port (sorted by name,
 * no duplicate names) as -EINVAL, else 0. O(n log n): a unit holds
 * hundreds of clusters and is rendered on every change. */
static int check_binds(const struct kf_ep_cluster *const *sorted, size_t n, struct kf_strbuf *err)
{
    const struct kf_ep_cluster **by = kf_xcalloc(n ? n : 1, sizeof(*by));
    int r = 0;

    memcpy(by, sorted, n * sizeof(*by));
    qsort(by, n, sizeof(*by), cmp_bind);
    for (size_t i = 1; i < n && r == 0; i++)
        if (by[i - 1]->port == by[i]->port && strcmp(by[i - 1]->address, by[i]->address) == 0)
            r = kf_err(err, -EINVAL, "clusters %s and %s both want %s port %d", by[i - 1]->name,
                       by[i]->name, by[i]->address, by[i]->port);
    free(by);
    return r;
}

static int cmp_backend(const void *a, const void *b)
{
    const struct kf_ep_backend *x = *(const struct kf_ep_backend *const *)a;
    const struct kf_ep_backend *y = *(const struct kf_ep_backend *const *)b;

    return strcmp(x->name, y->name);
}

static bool path_valid(const char *p)
{
    if (!p || p[0] != '/' || strlen(p) > 4096)
        return false;
    for (; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\'' || *p == '\\' ||
            *p == '#')
            return false;
    return true;
}

static int check_cluster(const struct kf_ep_cluster *c, struct kf_strbuf *err)
{
    if (!c->name || !kf_name_valid(c->name))
        return kf_err(err, -EINVAL, "cluster \"%.64s\": not a valid name", c->name ? c->name : "");
    if (!kf_ep_ip_literal(c->address))
        return kf_err(err, -EINVAL, "cluster %s: bind address \"%.64s\" is not an IP address",
                      c->name, c->address ? c->address : "");
    if (!port_valid(c->port))
        return kf_err(err, -EINVAL, "cluster %s: port %d is out of range", c->name, c->port);
    if (!path_valid(c->ca_file))
        return kf_err(err, -EINVAL,
                      "cluster %s: CA file \"%.100s\" is not an absolute path without "
                      "whitespace or quotes",
                      c->name, c->ca_file ? c->ca_file : "");
    if (c->n_backends > KF_EP_BACKENDS_MAX)
        return kf_err(err, -EINVAL, "cluster %s: %zu apiservers, at most %d", c->name,
                      c->n_backends, KF_EP_BACKENDS_MAX);
    for (size_t i = 0; i < c->n_backends; i++) {
        const struct kf_ep_backend *b = &c->backends[i];

        if (!b->name || !kf_name_valid(b->name))
            return kf_err(err, -EINVAL, "cluster %s: apiserver \"%.64s\": not a valid name",
                          c->name, b->name ? b->name : "");
        if (!kf_ep_ip_literal(b->address))
            return kf_err(err, -EINVAL,
                          "cluster %s: apiserver %s: address \"%.64s\" is not an IP address",
                          c->name, b->name, b->address ? b->address : "");
        if (!port_valid(b->port))
            return kf_err(err, -EINVAL, "cluster %s: apiserver %s: port %d is out of range",
                          c->name, b->name, b->port);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->backends[j].name, b->name) == 0)
                return kf_err(err, -EINVAL, "cluster %s: apiserver %s is there twice", c->name,
                              b->name);
    }
    return 0;
}

static bool settings_valid(const struct kf_ep_settings *s, struct kf_strbuf *err)
{
    const char *const times[] = { s->timeout_connect, s->timeout_client, s->timeout_server,
                                  s->timeout_tunnel,  s->check_interval, s->check_interval_up };

    for (size_t i = 0; i < KF_ARRAY_SIZE(times); i++)
        if (strnlen(times[i], KF_EP_TIME_MAX) == KF_EP_TIME_MAX || !time_valid(times[i])) {
            kf_err(err, -EINVAL, "a time setting is not an HAProxy time");
            return false;
        }
    if (s->stats_socket[0] && (strnlen(s->stats_socket, KF_EP_SOCKET_MAX) == KF_EP_SOCKET_MAX ||
                               !path_valid(s->stats_socket))) {
        kf_err(err, -EINVAL,
               "the stats socket is not an absolute path of at most %d bytes without "
               "whitespace or quotes",
               KF_EP_SOCKET_MAX - 1);
        return false;
    }
    if (s->check_fall < 1 || s->check_fall > 100 || s->check_rise < 1 || s->check_rise > 100 ||
        s->maxconn < 0 || s->maxconn > 1000000) {
        kf_err(err, -EINVAL, "check-fall, check-rise or maxconn is out of range");
        return false;
    }
    return true;
}

int kf_ep_render_haproxy(const char *unit, const struct kf_ep_settings *s,
                         const struct kf_ep_cluster *clusters, size_t n_clusters,
                         struct kf_strbuf *out, struct kf_strbuf *err)
{
    struct kf_ep_settings defaults;
    const struct kf_ep_cluster **sorted = NULL;
    const struct kf_ep_backend **bs = NULL;
    int r = 0;

    if (!s) {
        kf_ep_settings_default(&defaults);
        s = &defaults;
    }
    if (!unit || !kf_name_valid(unit))
        return kf_err(err, -EINVAL, "unit \"%.64s\": not a valid name", unit ? unit : "");
    if (n_clusters > KF_EP_CLUSTERS_MAX)
        return kf_err(err, -EINVAL, "unit %s: %zu endpoints, at most %d", unit, n_clusters,
                      KF_EP_CLUSTERS_MAX);
    if (!settings_valid(s, err))
        return -EINVAL;
    sorted = kf_xcalloc(n_clusters ? n_clusters : 1, sizeof(*sorted));
    for (size_t i = 0; i < n_clusters; i++) {
        r = check_cluster(&clusters[i], err);
        if (r < 0)
            goto free_sorted;
        sorted[i] = &clusters[i];
    }
    qsort(sorted, n_clusters, sizeof(*sorted), cmp_cluster);
    for (size_t i = 1; i < n_clusters; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            r = kf_err(err, -EINVAL, "cluster %s is there twice", sorted[i]->name);
            goto free_sorted;
        }
    r = check_binds(sorted, n_clusters, err);
    if (r < 0)
        goto free_sorted;

    kf_strbuf_addf(out,
                   "# Rendered by kfleetd for unit %s: the endpoints of its guest clusters.\n"
                   "# Do not edit: kfleetd rewrites this file (docs/internals/endpoints.md).\n"
                   "global\n"
                   "    master-worker\n",
                   unit);
    if (s->maxconn)
        kf_strbuf_addf(out, "    maxconn %d\n", s->maxconn);
    if (s->stats_socket[0])
        kf_strbuf_addf(out, "    stats socket %s mode 600 level user\n", s->stats_socket);
    kf_strbuf_addf(out,
                   /* a worker replaced by a reload keeps its connections at
                    * most this long (watches end on their own before) */
                   "    hard-stop-after %s\n"
                   "\n"
                   "defaults\n"
                   "    mode tcp\n"
                   "    timeout connect %s\n"
                   "    timeout client %s\n"
                   "    timeout server %s\n"
                   "    timeout tunnel %s\n"
                   "    timeout client-fin 10s\n"
                   "    timeout server-fin 10s\n"
                   "    timeout check %s\n"
                   "    option redispatch 1\n"
                   "    retries 2\n"
                   "    default-server inter %s fastinter %s downinter %s fall %d rise %d\n",
                   s->timeout_tunnel, s->timeout_connect, s->timeout_client, s->timeout_server,
                   s->timeout_tunnel, s->check_interval, s->check_interval_up, s->check_interval,
                   s->check_interval, s->check_fall, s->check_rise);
    for (size_t i = 0; i < n_clusters; i++) {
        const struct kf_ep_cluster *c = sorted[i];

        kf_strbuf_addf(out, "\nfrontend %s\n    bind ", c->name);
        add_hostport(out, c->address, c->port);
        kf_strbuf_addf(out,
                       "\n    default_backend %s\n"
                       "\nbackend %s\n"
                       "    balance roundrobin\n"
                       "    option httpchk GET /readyz\n"
                       "    http-check expect status 200\n",
                       c->name, c->name);
        bs = kf_xrealloc(bs, (c->n_backends ? c->n_backends : 1) * sizeof(*bs));
        for (size_t j = 0; j < c->n_backends; j++)
            bs[j] = &c->backends[j];
        qsort(bs, c->n_backends, sizeof(*bs), cmp_backend);
        for (size_t j = 0; j < c->n_backends; j++) {
            kf_strbuf_addf(out, "    server %s ", bs[j]->name);
            add_hostport(out, bs[j]->address, bs[j]->port);
            kf_strbuf_addf(out, " check check-ssl verify required ca-file %s\n", c->ca_file);
        }
    }
    free(bs);
free_sorted:
    free(sorted);
    return r;
}

/* --- show stat ---------------------------------------------------------------- */

#define STAT_LINE_MAX  65536
#define STAT_LINES_MAX 1000000
#define STAT_FIELDS    4 /* pxname, svname, status, check_status */

/* Splits line (NUL-terminated, modified) at commas into at most n fields;
 * returns how many there were. HAProxy's CSV quotes nothing in these
 * columns (names are DNS-1123, statuses are words). */
static size_t split_csv(char *line, char **fields, size_t n)
{
    size_t i = 0;

    while (i < n) {
        char *comma = strchr(line, ',');

        fields[i++] = line;
        if (!comma)
            break;
        *comma = '\0';
        line = comma + 1;
    }
    return i;
}

/* The columns of pxname, svname, status and check_status in the header. */
static int stat_columns(char *header, int col[STAT_FIELDS], struct kf_strbuf *err)
{
    static const char *const names[STAT_FIELDS] = { "pxname", "svname", "status", "check_status" };
    char *fields[256];
    size_t n = split_csv(header, fields, KF_ARRAY_SIZE(fields));

    for (int k = 0; k < STAT_FIELDS; k++) {
        col[k] = -1;
        for (size_t i = 0; i < n && col[k] < 0; i++)
            if (!strcmp(fields[i], names[k]))
                col[k] = (int)i;
        if (col[k] < 0)
            return kf_err(err, -EINVAL, "show stat: no column %s in the header", names[k]);
    }
    return 0;
}

int kf_ep_parse_stat(const char *csv, size_t len, kf_ep_stat_fn fn, void *ctx,
                     struct kf_strbuf *err)
{
    const char *p = csv, *end = csv + len;
    int col[STAT_FIELDS], servers = 0, maxcol = 0, r;
    char *line = kf_xmalloc(STAT_LINE_MAX + 1);
    bool header = false;

    for (size_t lines = 0; p < end; lines++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        char *fields[256];
        size_t nf;

        if (lines >= STAT_LINES_MAX || n > STAT_LINE_MAX) {
            r = kf_err(err, -EINVAL, "show stat: more than %d lines or a line over %d bytes",
                       STAT_LINES_MAX, STAT_LINE_MAX);
            goto free_line;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl ? nl + 1 : end;
        if (!header) {
            if (strncmp(line, "# ", 2) != 0) {
                r = kf_err(err, -EINVAL, "show stat: the first line is not its header");
                goto free_line;
            }
            if ((r = stat_columns(line + 2, col, err)) < 0)
                goto free_line;
            for (int k = 0; k < STAT_FIELDS; k++)
                maxcol = KF_MAX(maxcol, col[k]);
            header = true;
            continue;
        }
        nf = split_csv(line, fields, KF_ARRAY_SIZE(fields));
        if (n == 0 || nf <= (size_t)maxcol || !strcmp(fields[col[1]], "FRONTEND") ||
            !strcmp(fields[col[1]], "BACKEND"))
            continue;
        fn(ctx, fields[col[0]], fields[col[1]],
           !strncmp(fields[col[2]], "UP", 2) && !strcmp(fields[col[3]], "L7OK"));
        servers++;
    }
    r = header ? servers : kf_err(err, -EINVAL, "show stat: no header");
free_line:
    free(line);
    return r;
}
