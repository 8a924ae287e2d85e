/* api-ui.c: the fleet dashboard's files at /ui/, and the page's session.
 *
 * The dashboard (web/ in the source tree, installed as share/kfleet/ui) is
 * static HTML, CSS and JavaScript that call the API from the browser with
 * the user's bearer token; this file only hands the files out:
 *
 *   GET /ui            301 to /ui/ (relative links need the slash)
 *   GET /ui/           index.html
 *   GET /ui/<file>     a file of the folder, when its name passes
 *                      kf_api_ui_file_type (below): no "..", no dot files,
 *                      no empty segment, a short known extension; opened
 *                      with O_NOFOLLOW below the folder's descriptor, a
 *                      regular file of at most UI_FILE_MAX bytes
 *   GET /ui/session    who the bearer token is ({"user", "role"}), so the
 *                      page can show a viewer a read-only page; it needs a
 *                      token like any API path (401 without one)
 *
 * The files need no token (they hold no fleet data: every datum comes from
 * the API with the user's token) but they go through the same Host check
 * as every request (api-origin.c, before routing), and every answer carries
 * a Content-Security-Policy that allows scripts, styles and connections to
 * this origin only and no inline script, with nosniff and no framing. The
 * page's writes are the API's writes: same Origin and Content-Type rules,
 * same roles (the kubeconfig download is the admin-only action).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api-internal.h"
#include "kfleet/json.h"

#define UI_FILE_MAX    (4u << 20)
#define UI_PATH_MAX    128
#define UI_SEGMENT_MAX 64
#define UI_DEPTH_MAX   4

static const char ui_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                             "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                             "form-action 'none'; frame-ancestors 'none'";

static const struct {
    const char *ext;
    const char *type;
} ui_types[] = {
    { ".html", "text/html; charset=utf-8" },
    { ".js", "text/javascript; charset=utf-8" },
    { ".css", "text/css; charset=utf-8" },
    { ".svg", "image/svg+xml" },
    { ".png", "image/png" },
    { ".ico", "image/x-icon" },
};

static bool segment_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

const char *kf_api_ui_file_type(const char *rel)
{
    size_t len, seg = 0, depth = 1;
    const char *dot;

    if (!rel)
        return NULL;
    len = strlen(rel);
    if (!len || len > UI_PATH_MAX)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (rel[i] == '/') {
            if (!seg || ++depth > UI_DEPTH_MAX)
                return NULL; /* empty segment ("//", leading or trailing "/") */
            seg = 0;
            continue;
        }
        if (!segment_char_ok(rel[i]) || (!seg && rel[i] == '.') || ++seg > UI_SEGMENT_MAX)
            return NULL; /* a dot file, "." or ".." included */
    }
    if (!seg)
        return NULL;
    dot = strrchr(rel, '.');
    if (!dot || strchr(dot, '/'))
        return NULL;
    for (size_t i = 0; i < KF_ARRAY_SIZE(ui_types); i++)
        if (strcmp(dot, ui_types[i].ext) == 0)
            return ui_types[i].type;
    return NULL;
}

/* Every /ui/ answer: the file (or a message) with the strict headers. */
static int ui_reply(struct api_request *req, unsigned int code, const char *type, char *buf,
                    size_t len, const char *location)
{
    struct MHD_Response *resp;
    enum MHD_Result r;

    resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "Content-Security-Policy", ui_csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    if (location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    if (req->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r = MHD_queue_response(req->conn, code, resp);
    MHD_destroy_response(resp);
    req->replied = true;
    req->status = code;
    return r;
}

static int ui_reply_text(struct api_request *req, unsigned int code, const char *text)
{
    return ui_reply(req, code, "text/plain; charset=utf-8", kf_xstrdup(text), strlen(text), NULL);
}

/* Reads rel below the folder into *ret: 0, -ENOENT (missing, not a regular
 * file, a symbolic link) or -EFBIG. */
static int ui_read(int dirfd, const char *rel, char **ret, size_t *ret_len)
{
    struct stat st;
    char *buf;
    size_t got = 0;
    int fd = openat(dirfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0)
        return -ENOENT;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -ENOENT;
    }
    if ((uint64_t)st.st_size > UI_FILE_MAX) {
        close(fd);
        return -EFBIG;
    }
    buf = kf_xmalloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    *ret = buf;
    *ret_len = got;
    return 0;
}

static int ui_session(struct api_request *req)
{
    json_t *v = json_pack("{s:s?, s:s, s:b}", "user", req->user, "role",
                          req->user ? kf_api_role_name(req->role) : "admin", "authentication",
                          req->user != NULL);
    struct kf_strbuf body = KF_STRBUF_INIT;
    size_t len;
    char *buf;

    kf_json_dump_sb(v, &body);
    json_decref(v);
    buf = kf_strbuf_detach(&body, &len);
    return ui_reply(req, MHD_HTTP_OK, "application/json", buf, len, NULL);
}

int kf_api_serve_ui(struct api_request *req)
{
    const char *rel, *type;
    char *buf = NULL;
    size_t len = 0;
    int r;

    if (strcmp(req->path, "/ui") == 0)
        return ui_reply(req, MHD_HTTP_MOVED_PERMANENTLY, "text/plain; charset=utf-8",
                        kf_xstrdup("see /ui/\n"), 9, "/ui/");
    if (req->route == ROUTE_UI_SESSION)
        return ui_session(req);
    rel = req->path + strlen("/ui/");
    if (!*rel)
        rel = "index.html";
    if (req->api->ui_dirfd < 0)
        return ui_reply_text(req, MHD_HTTP_NOT_FOUND,
                             "the dashboard is not installed with this kfleetd (kfleetd "
                             "--ui-dir DIR names its folder)\n");
    type = kf_api_ui_file_type(rel);
    if (!type)
        return ui_reply_text(req, MHD_HTTP_NOT_FOUND,
                             "no such file in the dashboard (names: letters, digits, '-', '_' "
                             "and '.', ending .html, .js, .css, .svg, .png or .ico)\n");
    r = ui_read(req->api->ui_dirfd, rel, &buf, &len);
    if (r == -EFBIG)
        return ui_reply_text(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
                             "the dashboard file is larger than kfleetd serves\n");
    if (r < 0)
        return ui_reply_text(req, MHD_HTTP_NOT_FOUND, "no such file in the dashboard\n");
    return ui_reply(req, MHD_HTTP_OK, type, buf, len, NULL);
}

int kf_api_ui_open(struct kf_api *api, const char *dir, struct kf_strbuf *err)
{
    api->ui_dirfd = -1;
    if (!dir)
        return 0;
    api->ui_dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (api->ui_dirfd < 0)
        return kf_err(err, -errno, "cannot open the dashboard's folder \"%s\": %s", dir,
                      strerror(errno));
    return 0;
}

void kf_api_ui_close(struct kf_api *api)
{
    if (api->ui_dirfd >= 0)
        close(api->ui_dirfd);
    api->ui_dirfd = -1;
}
