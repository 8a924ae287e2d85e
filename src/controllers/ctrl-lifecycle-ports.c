/* ctrl-lifecycle-ports.c: members' ports (ctrl-lifecycle.h).
 *
 * The truth is in the members: spec.ports of every member bound to a host
 * with a given address (the caller collects them from its informer). What
 * this adds is memory of the last minute: ports handed out whose member
 * update the informer has not shown yet, so that two clusters reconciled
 * at the same time on two workers never get the same port. On a loopback
 * address, where kfleetd runs on the same machine as the members (the
 * local fleet, tests), a port some other process holds is skipped too.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "kfleet/json.h"
#include "kfleet/smap.h"
#include "controllers/ctrl-lifecycle.h"

#define RESERVE_MS (60 * 1000)

struct reservation {
    int64_t until_ms;
};

struct lc_ports {
    pthread_mutex_t lock;
    int min, max;
    struct kf_smap reserved; /* "address/port" -> struct reservation */
};

struct lc_ports *kf_lifecycle_ports_new(int min, int max)
{
    struct lc_ports *p = kf_xcalloc(1, sizeof(*p));

    pthread_mutex_init(&p->lock, NULL);
    p->min = min;
    p->max = max;
    kf_smap_init(&p->reserved);
    return p;
}

void kf_lifecycle_ports_free(struct lc_ports *p)
{
    size_t it = 0;
    const char *k;
    void *v;

    if (!p)
        return;
    while (kf_smap_next(&p->reserved, &it, &k, &v))
        free(v);
    kf_smap_release(&p->reserved);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Whether something on this machine holds addr:port (loopback only). */
static bool taken_here(const char *addr, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd, one = 1;
    bool taken;

    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127)
        return false;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    taken = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0;
    close(fd);
    return taken;
}

static void prune(struct lc_ports *p, int64_t now)
{
    size_t it = 0;
    const char *k;
    void *v;
    char **gone = NULL;
    size_t n = 0, alloc = 0;

    while (kf_smap_next(&p->reserved, &it, &k, &v))
        if (((struct reservation *)v)->until_ms <= now) {
            KF_GROW(gone, alloc, n + 1);
            gone[n++] = kf_xstrdup(k);
        }
    for (size_t i = 0; i < n; i++) {
        free(kf_smap_remove(&p->reserved, gone[i]));
        free(gone[i]);
    }
    free(gone);
}

int kf_lifecycle_ports_pick(struct lc_ports *p, const char *address, const json_t *used, size_t n,
                            int *ret)
{
    int64_t now = kf_now_ms();
    size_t got = 0;
    int port;

    pthread_mutex_lock(&p->lock);
    prune(p, now);
    for (port = p->min; port <= p->max && got < n; port++) {
        char key[96];
        bool in_use = false;
        size_t i;
        json_t *v;

        json_array_foreach(used, i, v) in_use = in_use || json_integer_value(v) == port;
        for (size_t k = 0; k < got && !in_use; k++)
            in_use = ret[k] == port;
        snprintf(key, sizeof(key), "%s/%d", address, port);
        if (in_use || kf_smap_contains(&p->reserved, key) || taken_here(address, port))
            continue;
        ret[got++] = port;
    }
    if (got < n) {
        pthread_mutex_unlock(&p->lock);
        return -ENOSPC;
    }
    for (size_t k = 0; k < n; k++) {
        char key[96];
        struct reservation *r = kf_xcalloc(1, sizeof(*r));

        snprintf(key, sizeof(key), "%s/%d", address, ret[k]);
        r->until_ms = now + RESERVE_MS;
        free(kf_smap_put(&p->reserved, key, r));
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}
