/* agent-watch.c: the agent's view of the members bound to it (agent.h).
 *
 * A thread lists the collection, hands the whole list to the main loop as
 * a snapshot, and then watches from the list's resourceVersion, handing
 * over each event. A watch that the server ends (its timeout) is resumed
 * from the last revision seen (events and bookmarks advance it); an expired
 * revision (410) or any error leads to a new list, after a back-off when
 * the server did not answer. The main loop is woken through an eventfd.
 *
 * Why a list after every error: events may have been missed, and the
 * snapshot is what lets the main loop remove members nobody wants any more
 * without ever guessing (a member is only removed when kfleetd said, in a
 * list or an event, that it is not bound here).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kfleet/json.h"
#include "kfleet/log.h"
#include "kfleet/strbuf.h"
#include "agent/agent.h"

KF_LOG_MODULE(agent_watch);

#define WATCH_IDLE_S       60
#define WATCH_TIMEOUT_S    300
#define BACKOFF_INITIAL_MS 500
#define BACKOFF_MAX_MS     30000
#define QUEUE_MAX_EVENTS   100000

struct kf_agent_watch {
    pthread_t thread;
    struct kf_agent_http *http;
    char *path;
    int wake_fd;
    volatile bool stop;
    pthread_mutex_t lock;
    struct kf_agent_msg *head, *tail;
    size_t queued;
    bool overflow; /* events dropped: the next thing queued is a snapshot */
    bool connected;
    /* thread-private */
    char rv[32];
    bool relist;
};

void kf_agent_msg_free(struct kf_agent_msg *m)
{
    while (m) {
        struct kf_agent_msg *next = m->next;

        json_decref(m->obj);
        free(m->text);
        free(m);
        m = next;
    }
}

static void wake(struct kf_agent_watch *w)
{
    uint64_t one = 1;

    if (write(w->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: the loop is awake anyway */
    }
}

static void push(struct kf_agent_watch *w, struct kf_agent_msg *m)
{
    pthread_mutex_lock(&w->lock);
    if (m->type == KF_AGENT_MSG_EVENT && w->queued >= QUEUE_MAX_EVENTS) {
        /* The loop is far behind: drop events and list again instead. */
        w->overflow = true;
        w->relist = true;
        pthread_mutex_unlock(&w->lock);
        kf_agent_msg_free(m);
        return;
    }
    if (w->tail)
        w->tail->next = m;
    else
        w->head = m;
    w->tail = m;
    w->queued++;
    pthread_mutex_unlock(&w->lock);
    wake(w);
}

struct kf_agent_msg *kf_agent_watch_take(struct kf_agent_watch *w)
{
    struct kf_agent_msg *m;

    pthread_mutex_lock(&w->lock);
    m = w->head;
    w->head = w->tail = NULL;
    w->queued = 0;
    pthread_mutex_unlock(&w->lock);
    return m;
}

bool kf_agent_watch_connected(struct kf_agent_watch *w)
{
    bool c;

    pthread_mutex_lock(&w->lock);
    c = w->connected;
    pthread_mutex_unlock(&w->lock);
    return c;
}

static void set_connected(struct kf_agent_watch *w, bool c, const char *why)
{
    bool was;

    pthread_mutex_lock(&w->lock);
    was = w->connected;
    w->connected = c;
    pthread_mutex_unlock(&w->lock);
    if (was && !c) {
        struct kf_agent_msg *m = kf_xcalloc(1, sizeof(*m));

        m->type = KF_AGENT_MSG_DOWN;
        m->text = kf_xstrdup(why ? why : "");
        push(w, m);
    }
}

/* Sleeps ms in slices, returning early when asked to stop. */
static void nap(struct kf_agent_watch *w, int64_t ms)
{
    while (ms > 0 && !w->stop) {
        int64_t slice = KF_MIN(ms, 100);
        struct timespec ts = { slice / 1000, (slice % 1000) * 1000000 };

        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

static char *with_query(const char *path, const char *extra)
{
    return kf_xasprintf("%s%c%s", path, strchr(path, '?') ? '&' : '?', extra);
}

/* Percent-escapes everything but unreserved characters (RFC 3986). */
static void add_query_escaped(struct kf_strbuf *sb, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            kf_strbuf_addch(sb, (char)c);
        else
            kf_strbuf_addf(sb, "%%%02X", c);
    }
}

/* Lists every member, a page at a time (kfleetd answers at most
 * --list-max-page objects and a continue token), into one snapshot. */
static int list(struct kf_agent_watch *w, struct kf_strbuf *err)
{
    json_t *all = json_array();
    char *cont = NULL;
    struct kf_agent_msg *m;

    do {
        struct kf_strbuf path = KF_STRBUF_INIT;
        json_t *j = NULL, *items;
        const char *rv, *next;
        int code;

        kf_strbuf_addstr(&path, w->path);
        if (cont) {
            kf_strbuf_addstr(&path, strchr(w->path, '?') ? "&continue=" : "?continue=");
            add_query_escaped(&path, cont);
        }
        code = kf_agent_http_do(w->http, "GET", path.buf, NULL, NULL, &j, err);
        kf_strbuf_release(&path);
        free(cont);
        cont = NULL;
        if (code < 0 || code != 200) {
            json_decref(j);
            json_decref(all);
            return code < 0 ? code : -EPROTO;
        }
        items = kf_json_path(j, "items");
        rv = kf_json_str(j, "metadata.resourceVersion", NULL);
        if (!json_is_array(items) || !rv || strlen(rv) >= sizeof(w->rv)) {
            json_decref(j);
            json_decref(all);
            kf_err(err, -EPROTO, "GET %s: not a list", w->path);
            return -EPROTO;
        }
        snprintf(w->rv, sizeof(w->rv), "%s", rv);
        json_array_extend(all, items);
        next = kf_json_str(j, "metadata.continue", NULL);
        if (next && *next)
            cont = kf_xstrdup(next);
        json_decref(j);
    } while (cont);
    m = kf_xcalloc(1, sizeof(*m));
    m->type = KF_AGENT_MSG_SNAPSHOT;
    m->obj = all;
    pthread_mutex_lock(&w->lock);
    w->overflow = false;
    pthread_mutex_unlock(&w->lock);
    push(w, m);
    return 0;
}

int kf_agent_watch_decode(const char *s, size_t n, char *rv, size_t rv_size,
                          struct kf_agent_msg **ret_msg)
{
    json_t *ev = NULL, *obj;
    const char *type, *orv;

    *ret_msg = NULL;
    if (kf_json_parse(s, n, &ev, NULL) < 0)
        return 0;
    type = kf_json_str(ev, "type", "");
    obj = kf_json_path(ev, "object");
    if (strcmp(type, "ERROR") == 0) {
        /* 410 Gone, or anything else: start over with a list */
        kf_log_dbg("watch error: %s", kf_json_str(obj, "message", "?"));
        json_decref(ev);
        return 1;
    }
    if (!json_is_object(obj)) {
        /* the main loop reads members from objects only */
        json_decref(ev);
        return 0;
    }
    orv = kf_json_str(obj, "metadata.resourceVersion", NULL);
    if (orv && strlen(orv) < rv_size)
        snprintf(rv, rv_size, "%s", orv);
    if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 ||
        strcmp(type, "DELETED") == 0) {
        struct kf_agent_msg *m = kf_xcalloc(1, sizeof(*m));

        m->type = KF_AGENT_MSG_EVENT;
        snprintf(m->event, sizeof(m->event), "%s", type);
        m->obj = json_incref(obj);
        *ret_msg = m;
    }
    json_decref(ev);
    return 0;
}

static int on_line(void *ctx, const char *s, size_t n)
{
    struct kf_agent_watch *w = ctx;
    struct kf_agent_msg *m;

    if (kf_agent_watch_decode(s, n, w->rv, sizeof(w->rv), &m) > 0) {
        w->relist = true;
        return 1;
    }
    if (m)
        push(w, m);
    return w->relist ? 1 : 0; /* relist set by push() on overflow */
}

static void *watch_main(void *arg)
{
    struct kf_agent_watch *w = arg;
    struct kf_strbuf err = KF_STRBUF_INIT;
    int64_t backoff = BACKOFF_INITIAL_MS;
    bool need_list = true;

    while (!w->stop) {
        char q[128];
        char *path;
        int code;

        if (need_list) {
            kf_strbuf_reset(&err);
            if (list(w, &err) < 0) {
                set_connected(w, false, err.buf);
                kf_log_dbg("list failed (%s); again in %lld ms", err.buf, (long long)backoff);
                nap(w, backoff);
                backoff = KF_MIN(backoff * 2, BACKOFF_MAX_MS);
                continue;
            }
            need_list = false;
            w->relist = false;
            set_connected(w, true, NULL);
        }
        snprintf(q, sizeof(q),
                 "watch=true&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s",
                 WATCH_TIMEOUT_S, w->rv);
        path = with_query(w->path, q);
        kf_strbuf_reset(&err);
        code = kf_agent_http_stream(w->http, path, WATCH_IDLE_S, on_line, w, &w->stop, &err);
        free(path);
        if (w->stop)
            break;
        if (w->relist) {
            need_list = true;
            continue;
        }
        if (code == 200) {
            backoff = BACKOFF_INITIAL_MS; /* the server ended the watch: resume */
            continue;
        }
        if (code == 410) {
            need_list = true;
            continue;
        }
        set_connected(w, false, err.len ? err.buf : "the watch failed");
        kf_log_dbg("watch failed (%d: %s); listing again in %lld ms", code, err.buf,
                   (long long)backoff);
        nap(w, backoff);
        backoff = KF_MIN(backoff * 2, BACKOFF_MAX_MS);
        need_list = true;
    }
    kf_strbuf_release(&err);
    return NULL;
}

int kf_agent_watch_start(const char *server, const char *token, const char *ca_file,
                         const char *path, int wake_fd, struct kf_agent_watch **ret,
                         struct kf_strbuf *err)
{
    struct kf_agent_watch *w = kf_xcalloc(1, sizeof(*w));
    int r;

    w->http = kf_agent_http_new(server, token, ca_file);
    w->path = kf_xstrdup(path);
    w->wake_fd = wake_fd;
    pthread_mutex_init(&w->lock, NULL);
    r = pthread_create(&w->thread, NULL, watch_main, w);
    if (r != 0) {
        kf_agent_http_free(w->http);
        free(w->path);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return kf_err(err, -r, "cannot start the watch thread: %s", strerror(r));
    }
    *ret = w;
    return 0;
}

void kf_agent_watch_stop(struct kf_agent_watch *w)
{
    if (!w)
        return;
    w->stop = true;
    pthread_join(w->thread, NULL);
    kf_agent_msg_free(w->head);
    kf_agent_http_free(w->http);
    pthread_mutex_destroy(&w->lock);
    free(w->path);
    free(w);
}
