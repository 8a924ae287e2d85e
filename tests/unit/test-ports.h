/* test-ports.h: loopback ports for the servers a C test starts (etcd,
 * Prometheus, node_exporter, HTTP probes' targets).
 *
 * A port found free can be taken before the server binds it: by another
 * test process that found it free too, or by an outgoing connection the
 * kernel gives it as its local port (the ephemeral range, 32768-60999 by
 * default). So ports come from windows of 100 in 10000-18999, below that
 * range, and a test process owns a window while it runs: a lock file per
 * window in the temporary directory ($TMPDIR or /tmp), held with flock
 * until the process exits. The integration tests' harness
 * (tests/integration/kftest.py) uses the same windows and lock files, so
 * C and Python tests running in parallel never hand out the same port.
 * Within a process a port is handed out once.
 */
#ifndef KF_TEST_PORTS_H
#define KF_TEST_PORTS_H

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kfleet/base.h"

#define KF_TEST_PORTS_FIRST  10000
#define KF_TEST_PORTS_END    19000
#define KF_TEST_PORTS_WINDOW 100

static inline bool kf_test_port_bindable(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd < 0)
        return false;
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* Locks the next window no process holds; its first port, or -1. The lock
 * file's descriptor stays open (and locked) until the process exits. */
static inline int kf_test_port_window(void)
{
    const char *tmp = getenv("TMPDIR");
    char path[512];

    for (int lo = KF_TEST_PORTS_FIRST; lo + KF_TEST_PORTS_WINDOW <= KF_TEST_PORTS_END;
         lo += KF_TEST_PORTS_WINDOW) {
        int fd;

        snprintf(path, sizeof(path), "%s/kftest-ports-%d.lock", tmp && *tmp ? tmp : "/tmp", lo);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return lo;
        close(fd);
    }
    return -1;
}

/* A port on 127.0.0.1 of this process's windows that was free a moment
 * ago; aborts when every window is taken. */
static inline int kf_test_port(void)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int next, end;
    int port = -1;

    pthread_mutex_lock(&lock);
    while (port < 0) {
        if (next >= end) {
            next = kf_test_port_window();
            if (next < 0)
                kf_abort("no free window of test ports in %d-%d", KF_TEST_PORTS_FIRST,
                         KF_TEST_PORTS_END - 1);
            end = next + KF_TEST_PORTS_WINDOW;
        }
        if (kf_test_port_bindable(next))
            port = next;
        next++;
    }
    pthread_mutex_unlock(&lock);
    return port;
}

#endif
