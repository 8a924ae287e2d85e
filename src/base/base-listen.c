/* base-listen.c: listen addresses as kfleetd and the agent take them on
 * their command lines ("HOST:PORT", "[V6]:PORT"), and whether a host is
 * loopback only. Declared in base.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "kfleet/base.h"
#include "kfleet/strbuf.h"

int kf_parse_listen(const char *listen, char **ret_host, uint16_t *ret_port, struct kf_strbuf *err)
{
    const char *colon, *host_start, *host_end;
    int64_t port;

    if (!listen || !*listen)
        return kf_err(err, -EINVAL, "empty listen address: use HOST:PORT, e.g. 127.0.0.1:7480");
    if (listen[0] == '[') {
        host_start = listen + 1;
        host_end = strchr(listen, ']');
        if (!host_end || host_end[1] != ':')
            return kf_err(err, -EINVAL, "listen address \"%s\": use [IPV6]:PORT", listen);
        colon = host_end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || strchr(listen, ':') != colon)
            return kf_err(err, -EINVAL,
                          "listen address \"%s\": use HOST:PORT (IPv6 as [ADDR]:PORT)", listen);
        host_start = listen;
        host_end = colon;
    }
    if (kf_parse_int64(colon + 1, &port) < 0 || port < 0 || port > 65535)
        return kf_err(err, -EINVAL, "listen address \"%s\": port must be 0..65535", listen);
    if (host_end == host_start)
        return kf_err(err, -EINVAL, "listen address \"%s\" has no host (0.0.0.0 for every one)",
                      listen);
    *ret_host = kf_xstrndup(host_start, (size_t)(host_end - host_start));
    *ret_port = (uint16_t)port;
    return 0;
}

bool kf_host_is_loopback(const char *host)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    bool loopback = true;

    if (!host || !*host)
        return false;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return false;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)a->ai_addr;

            if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
                loopback = false;
        } else if (a->ai_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)a->ai_addr;

            if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
                loopback = false;
        } else {
            loopback = false;
        }
    }
    freeaddrinfo(res);
    return loopback;
}
