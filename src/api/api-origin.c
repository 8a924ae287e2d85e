/* api-origin.c: what keeps a web page from using kfleetd through a browser.
 *
 * A browser lets any page send simple requests (GET, and POST with a body
 * of text/plain, a form or no type) to any address, with the user's
 * network position: without a token file (as `make run` starts kfleetd on
 * loopback) such a request would be trusted. With DNS rebinding a page on
 * a name of the attacker's that now resolves to 127.0.0.1 can even read
 * the answers, since to the browser they are same-origin. Three checks,
 * made before routing and authentication (api-server.c), close that:
 *
 *   Host     every request names kfleetd by an address it is reached at:
 *            an IP literal, "localhost", the --listen host, this machine's
 *            host name, or a --server-name. A rebound name is none of
 *            these (421 Misdirected Request).
 *   Origin   a write (POST, PUT, PATCH, DELETE) that carries an Origin
 *            (browsers send one on every cross-origin write, and "null"
 *            from sandboxes) must come from the same authority as Host
 *            (403). Programs (kubectl, kfleet, agents) send none.
 *   Content-Type  a write with a body says it is JSON (or a patch type);
 *            the three types a page may send without CORS preflight are
 *            refused (415), as is a body without a type.
 *
 * The parsers here see raw header values and are fuzzed
 * (tests/fuzz/fuzz-api-headers.c).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/api-internal.h"

size_t kf_api_media_type(const char *ct, char *buf, size_t size)
{
    size_t n = 0, i = 0;

    if (!size)
        return 0;
    buf[0] = '\0';
    if (!ct)
        return 0;
    while (ct[i] == ' ' || ct[i] == '\t')
        i++;
    for (; ct[i] && ct[i] != ';' && ct[i] != ' ' && ct[i] != '\t'; i++) {
        if (n + 1 >= size) {
            /* longer than any type we accept: nothing matches "?" */
            buf[0] = '?';
            buf[1 < size ? 1 : 0] = '\0';
            return 1;
        }
        buf[n++] = (char)tolower((unsigned char)ct[i]);
    }
    buf[n] = '\0';
    return n;
}

bool kf_api_write_type_accepted(const char *media_type)
{
    static const char *const accepted[] = {
        "application/json",
        "application/merge-patch+json",
        "application/json-patch+json",
        /* refused later with a message kubectl users know (api-objects.c) */
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    };

    for (size_t i = 0; media_type && i < KF_ARRAY_SIZE(accepted); i++)
        if (strcmp(media_type, accepted[i]) == 0)
            return true;
    return false;
}

/* Splits an authority "host[:port]" / "[v6][:port]" into the host (lower
 * case, no brackets, no trailing dot) in buf. False if malformed. */
static bool authority_host(const char *a, size_t len, char *buf, size_t size)
{
    size_t n = 0, end = len;

    if (!len)
        return false;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', len);

        if (!close)
            return false;
        end = (size_t)(close - a) + 1;
        if (end < len && a[end] != ':')
            return false;
        a++;
        end -= 2;
    } else {
        const char *colon = memchr(a, ':', len);

        if (colon)
            end = (size_t)(colon - a);
    }
    if (!end || end >= size)
        return false;
    for (size_t i = 0; i < end; i++) {
        unsigned char ch = (unsigned char)a[i];

        if (ch <= ' ' || ch == '/' || ch == '@' || ch >= 0x7f)
            return false;
        buf[n++] = (char)tolower(ch);
    }
    if (n > 1 && buf[n - 1] == '.')
        n--;
    buf[n] = '\0';
    return true;
}

static bool is_ip_literal(const char *h)
{
    unsigned char addr[16];

    return inet_pton(AF_INET, h, addr) == 1 || inet_pton(AF_INET6, h, addr) == 1;
}

static bool name_in_list(const char *name, const char *list)
{
    size_t len = strlen(name);

    while (list && *list) {
        const char *comma = strchr(list, ',');
        size_t n = comma ? (size_t)(comma - list) : strlen(list);

        if (n == len && strncasecmp(list, name, n) == 0)
            return true;
        list = comma ? comma + 1 : NULL;
    }
    return false;
}

bool kf_api_host_name_allowed(const char *host, const char *listen_host, const char *server_names)
{
    char self[256];

    if (is_ip_literal(host) || strcmp(host, "localhost") == 0)
        return true;
    if (listen_host && strcasecmp(host, listen_host) == 0)
        return true;
    if (name_in_list(host, server_names))
        return true;
    if (gethostname(self, sizeof(self)) == 0) {
        self[sizeof(self) - 1] = '\0';
        if (strcasecmp(host, self) == 0)
            return true;
    }
    return false;
}

bool kf_api_host_header_allowed(const char *value, const char *listen_host,
                                const char *server_names)
{
    char host[256];

    if (!value)
        return true; /* HTTP/1.0 without Host: not a browser */
    if (!authority_host(value, strlen(value), host, sizeof(host)))
        return false;
    return kf_api_host_name_allowed(host, listen_host, server_names);
}

bool kf_api_origin_same(const char *origin, const char *host_value)
{
    const char *a;
    size_t len;

    if (!origin)
        return true;
    if (!host_value)
        return false;
    a = strstr(origin, "://");
    if (!a)
        return false; /* "null", or not a URL */
    a += 3;
    len = strlen(a);
    if (len && a[len - 1] == '/')
        len--;
    /* The same authority, compared as sent (a default port left out on
     * one side and given on the other counts as different: browsers and
     * Host agree on that). */
    return len == strlen(host_value) && strncasecmp(a, host_value, len) == 0 &&
           !memchr(a, '/', len) && !memchr(a, '@', len);
}
