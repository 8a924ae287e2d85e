/* ctrl-lifecycle-ports.c: members' ports (ctrl-lifecycle.h).
 *
 * The truth is in the store: spec.ports of every member bound to a host
 * with a given address, and the port of every cluster's apiserver endpoint
 * on its address. This file keeps an index of them, fed by the lifecycle
 * controller's informer handlers (members, hosts, clusters), so that
 * picking a port costs a walk over the range of one address and nothing
 * per member or cluster of the fleet (it read every member of the address
 * and every cluster of the fleet on each pick: quadratic in the fleet).
 * The informers hand every object to the handlers before the controller's
 * workers start (their initial list), so after a restart the index is
 * whole before the first pick; it is rebuilt from the store, never saved.
 *
 * Per address, the range is kept in chunks of CHUNK ports, allocated when
 * a port in them is first used: a count of the holders of each port (a
 * member, an endpoint) and until when the port is reserved. A reservation
 * is the memory of the last minute: a port handed out whose member update
 * the informer has not shown yet, so that two clusters reconciled at the
 * same time on two workers never get the same port. On a loopback address,
 * where kfleetd runs on the same machine as the members (the local fleet,
 * tests), a port some other process holds is skipped too.
 *
 * A member's address is its host's: members are kept per host, and a host
 * whose address changes moves its members' ports with it. A member whose
 * host is not known yet (its host's event not seen) holds no port until it
 * is; a host that is deleted keeps the address its members were counted on
 * (their processes may still hold the ports until the members go).
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

#define RESERVE_MS  (60 * 1000)
#define CHUNK       256
#define MAX_HOLDING 64 /* ports one member keeps (a member has a handful) */

struct chunk {
    uint32_t count[CHUNK]; /* holders of each port */
    int64_t until[CHUNK];  /* reserved until (ms), 0: not */
};

/* One address's ports: chunks[(port - min) / CHUNK], NULL until used. */
struct address {
    struct chunk **chunks;
};

/* A member's or an endpoint's ports, and where they are counted. */
struct holder {
    char *host;    /* a member's host, NULL for an endpoint */
    char *address; /* where its ports are counted; NULL: not counted (host unknown) */
    int ports[MAX_HOLDING];
    size_t n;
};

struct host {
    char *address;       /* NULL: not seen yet */
    struct kf_smap held; /* names of the holders ("m/NAME") bound to it -> (void *)1 */
};

struct lc_ports {
    pthread_mutex_t lock;
    int min, max;
    size_t n_chunks;
    struct kf_smap addresses; /* address -> struct address */
    struct kf_smap holders;   /* "m/MEMBER" or "e/CLUSTER" -> struct holder */
    struct kf_smap hosts;     /* host name -> struct host */
};

struct lc_ports *kf_lifecycle_ports_new(int min, int max)
{
    struct lc_ports *p = kf_xcalloc(1, sizeof(*p));

    pthread_mutex_init(&p->lock, NULL);
    p->min = KF_MAX(min, 1);
    p->max = KF_MAX(KF_MIN(max, 65535), p->min);
    p->n_chunks = (size_t)(p->max - p->min) / CHUNK + 1;
    kf_smap_init(&p->addresses);
    kf_smap_init(&p->holders);
    kf_smap_init(&p->hosts);
    return p;
}

void kf_lifecycle_ports_free(struct lc_ports *p)
{
    size_t it = 0;
    const char *k;
    void *v;

    if (!p)
        return;
    while (kf_smap_next(&p->addresses, &it, &k, &v)) {
        struct address *a = v;

        for (size_t i = 0; i < p->n_chunks; i++)
            free(a->chunks[i]);
        free(a->chunks);
        free(a);
    }
    it = 0;
    while (kf_smap_next(&p->holders, &it, &k, &v)) {
        struct holder *h = v;

        free(h->host);
        free(h->address);
        free(h);
    }
    it = 0;
    while (kf_smap_next(&p->hosts, &it, &k, &v)) {
        struct host *h = v;

        free(h->address);
        kf_smap_release(&h->held);
        free(h);
    }
    kf_smap_release(&p->addresses);
    kf_smap_release(&p->holders);
    kf_smap_release(&p->hosts);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* --- the counts ------------------------------------------------------------------ */

static struct address *address_get(struct lc_ports *p, const char *address)
{
    struct address *a = kf_smap_get(&p->addresses, address);

    if (!a) {
        a = kf_xcalloc(1, sizeof(*a));
        a->chunks = kf_xcalloc(p->n_chunks, sizeof(*a->chunks));
        kf_smap_put(&p->addresses, address, a);
    }
    return a;
}

/* The chunk of port on a (made when make), and the port's slot in it. */
static struct chunk *chunk_of(struct lc_ports *p, struct address *a, int port, bool make,
                              size_t *slot)
{
    size_t off = (size_t)(port - p->min);

    *slot = off % CHUNK;
    if (!a->chunks[off / CHUNK] && make)
        a->chunks[off / CHUNK] = kf_xcalloc(1, sizeof(struct chunk));
    return a->chunks[off / CHUNK];
}

/* Adds (delta 1) or removes (-1) h's ports on its address. */
static void count(struct lc_ports *p, const struct holder *h, int delta)
{
    struct address *a;

    if (!h->address)
        return;
    a = address_get(p, h->address);
    for (size_t i = 0; i < h->n; i++) {
        size_t slot;
        struct chunk *c = chunk_of(p, a, h->ports[i], true, &slot);

        if (delta > 0)
            c->count[slot]++;
        else if (c->count[slot] > 0)
            c->count[slot]--;
    }
}

static void holder_free(struct holder *h)
{
    if (!h)
        return;
    free(h->host);
    free(h->address);
    free(h);
}

static struct host *host_get(struct lc_ports *p, const char *name)
{
    struct host *h = kf_smap_get(&p->hosts, name);

    if (!h) {
        h = kf_xcalloc(1, sizeof(*h));
        kf_smap_init(&h->held);
        kf_smap_put(&p->hosts, name, h);
    }
    return h;
}

/* Sets key's ports (n of them, in the range) on host (a member) or on
 * address (an endpoint); n == 0 forgets key. Under the lock. */
static void holder_set(struct lc_ports *p, const char *key, const char *host, const char *address,
                       const int *ports, size_t n)
{
    struct holder *h = kf_smap_remove(&p->holders, key);

    if (h) {
        count(p, h, -1);
        if (h->host)
            kf_smap_remove(&host_get(p, h->host)->held, key);
        holder_free(h);
    }
    if (n == 0)
        return;
    h = kf_xcalloc(1, sizeof(*h));
    if (host) {
        struct host *ho = host_get(p, host);

        h->host = kf_xstrdup(host);
        h->address = ho->address ? kf_xstrdup(ho->address) : NULL;
        kf_smap_put(&ho->held, key, (void *)1);
    } else {
        h->address = kf_xstrdup(address);
    }
    h->n = KF_MIN(n, (size_t)MAX_HOLDING);
    memcpy(h->ports, ports, h->n * sizeof(*ports));
    count(p, h, 1);
    kf_smap_put(&p->holders, key, h);
}

/* --- what the informers say ----------------------------------------------------- */

void kf_lifecycle_ports_member(struct lc_ports *p, const char *member, const char *host,
                               const json_t *ports)
{
    int have[MAX_HOLDING];
    size_t n = 0;
    const char *k;
    json_t *v;
    char *key = kf_xasprintf("m/%s", member);

    json_object_foreach((json_t *)ports, k, v)
    {
        json_int_t port = json_integer_value(v);

        if (port >= p->min && port <= p->max && n < MAX_HOLDING)
            have[n++] = (int)port;
    }
    pthread_mutex_lock(&p->lock);
    holder_set(p, key, host, NULL, have, host ? n : 0);
    pthread_mutex_unlock(&p->lock);
    free(key);
}

void kf_lifecycle_ports_endpoint(struct lc_ports *p, const char *cluster, const char *address,
                                 int port)
{
    char *key = kf_xasprintf("e/%s", cluster);
    bool in_range = address && port >= p->min && port <= p->max;

    pthread_mutex_lock(&p->lock);
    holder_set(p, key, NULL, address, &port, in_range ? 1 : 0);
    pthread_mutex_unlock(&p->lock);
    free(key);
}

bool kf_lifecycle_ports_host(struct lc_ports *p, const char *host, const char *address)
{
    struct host *h;
    size_t it = 0;
    const char *key;
    void *v;
    bool changed;

    if (!address) /* gone: its members stay counted where they were */
        return false;
    pthread_mutex_lock(&p->lock);
    h = host_get(p, host);
    changed = !kf_streq(h->address, address);
    if (changed) {
        free(h->address);
        h->address = kf_xstrdup(address);
        while (kf_smap_next(&h->held, &it, &key, &v)) {
            struct holder *ho = kf_smap_get(&p->holders, key);

            if (!ho)
                continue;
            count(p, ho, -1);
            free(ho->address);
            ho->address = kf_xstrdup(address);
            count(p, ho, 1);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return changed;
}

/* --- picking ------------------------------------------------------------------------ */

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

int kf_lifecycle_ports_pick(struct lc_ports *p, const char *address, size_t n, int *ret)
{
    int64_t now = kf_now_ms();
    struct address *a;
    size_t got = 0;

    pthread_mutex_lock(&p->lock);
    a = address_get(p, address);
    for (int port = p->min; port <= p->max && got < n; port++) {
        size_t slot;
        struct chunk *c = chunk_of(p, a, port, false, &slot);

        if (!c) {
            /* nothing used or reserved in this chunk: only the machine's own */
            if (taken_here(address, port))
                continue;
        } else if (c->count[slot] > 0 || c->until[slot] > now || taken_here(address, port)) {
            continue;
        }
        ret[got++] = port;
    }
    if (got < n) {
        pthread_mutex_unlock(&p->lock);
        return -ENOSPC;
    }
    for (size_t k = 0; k < n; k++) {
        size_t slot;
        struct chunk *c = chunk_of(p, a, ret[k], true, &slot);

        c->until[slot] = now + RESERVE_MS;
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

bool kf_lifecycle_ports_used(struct lc_ports *p, const char *address, int port)
{
    struct address *a;
    struct chunk *c;
    size_t slot;
    bool used = false;

    if (port < p->min || port > p->max)
        return false;
    pthread_mutex_lock(&p->lock);
    a = kf_smap_get(&p->addresses, address);
    c = a ? chunk_of(p, a, port, false, &slot) : NULL;
    used = c && c->count[slot] > 0;
    pthread_mutex_unlock(&p->lock);
    return used;
}
