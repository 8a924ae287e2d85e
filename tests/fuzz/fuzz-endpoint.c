/* fuzz-endpoint.c: libFuzzer target for the texts the endpoints
 * controller reads (kfleet/endpoint.h): status.endpoints.apiServer URLs,
 * `haproxy -c` output, and Unit annotations for the HAProxy settings.
 *
 * The first byte picks the parser: 'u' a URL (what parses formats back and
 * parses to the same address and port, and renders), 'm' HAProxy output
 * (the message is bounded and has no control characters), 's'
 * "key=value" (a value accepted renders, and nothing it holds starts a new
 * line), 't' HAProxy's `show stat` CSV (every server line reaches the
 * callback with a backend and a server name, and the count returned is
 * theirs). */
#include <stdlib.h>
#include <string.h>

#include "kfleet/endpoint.h"
#include "kfleet/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void url(const char *in)
{
    char addr[KF_EP_ADDR_MAX], again[KF_EP_ADDR_MAX];
    int port = 0, port2 = 0;
    struct kf_strbuf err = KF_STRBUF_INIT, text = KF_STRBUF_INIT;

    if (kf_ep_parse_url(in, addr, &port, &err) == 0) {
        struct kf_ep_cluster c = { "c", addr, port, "/ca.crt", NULL, 0 };
        char *u = strchr(addr, ':') ? kf_xasprintf("https://[%s]:%d", addr, port)
                                    : kf_xasprintf("https://%s:%d", addr, port);

        kf_assert(port >= 1 && port <= 65535 && kf_ep_ip_literal(addr));
        kf_assert(kf_ep_parse_url(u, again, &port2, NULL) == 0);
        kf_assert(strcmp(addr, again) == 0 && port == port2);
        kf_assert(kf_ep_render_haproxy("u", NULL, &c, 1, &text, NULL) == 0);
        free(u);
    } else {
        kf_assert(err.len > 0);
    }
    kf_strbuf_release(&err);
    kf_strbuf_release(&text);
}

static void message(const char *in, size_t len)
{
    struct kf_strbuf m = KF_STRBUF_INIT;

    kf_ep_haproxy_message(in, len, 100, &m);
    kf_assert(m.len <= 100);
    for (size_t i = 0; i < m.len; i++)
        kf_assert((unsigned char)m.buf[i] >= 0x20 && m.buf[i] != 0x7f);
    kf_strbuf_release(&m);
}

static void setting(char *in)
{
    struct kf_ep_settings s;
    struct kf_strbuf text = KF_STRBUF_INIT;
    struct kf_ep_cluster c = { "c", "127.0.0.1", 1, "/ca.crt", NULL, 0 };
    char *eq = strchr(in, '=');

    if (!eq)
        return;
    *eq = '\0';
    kf_ep_settings_default(&s);
    if (kf_ep_settings_set(&s, in, eq + 1, NULL) == 0) {
        const char *p;

        kf_assert(kf_ep_render_haproxy("u", &s, &c, 1, &text, NULL) == 0);
        /* every line is one of ours: a value never starts one */
        for (p = text.buf; (p = strchr(p, '\n')) && p[1]; p++)
            kf_assert(p[1] == ' ' || p[1] == '\n' || p[1] == '#' || (p[1] >= 'a' && p[1] <= 'z'));
    }
    kf_strbuf_release(&text);
}

static void count(void *ctx, const char *backend, const char *server, bool serving)
{
    (void)serving;
    kf_assert(backend && server);
    (*(int *)ctx)++;
}

static void stat_csv(const char *in, size_t len)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    int seen = 0, r = kf_ep_parse_stat(in, len, count, &seen, &err);

    kf_assert(r < 0 ? err.len > 0 && seen <= (int)len : r == seen);
    kf_strbuf_release(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in;

    if (size < 1 || size > 4096)
        return 0;
    in = kf_xmalloc(size);
    memcpy(in, data + 1, size - 1);
    in[size - 1] = '\0';
    switch (data[0]) {
    case 'u':
        url(in);
        break;
    case 'm':
        message((const char *)data + 1, size - 1);
        break;
    case 's':
        setting(in);
        break;
    case 't':
        stat_csv((const char *)data + 1, size - 1);
        break;
    default:
        break;
    }
    free(in);
    return 0;
}
