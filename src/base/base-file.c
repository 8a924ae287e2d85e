/* base-file.c: mkdir -p, atomic write-then-rename, a folder's fsync and rm -r
 * (file.h, base.h). These
 * were written again in the runner, the agent, the observability files, the
 * lifecycle controller's PKI folders, guest PKI and the CLI; this is the one
 * copy. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/error.h"
#include "kfleet/file.h"
#include "kfleet/strbuf.h"

int kf_mkdir_p(const char *path, mode_t mode)
{
    char *copy = kf_xstrdup(path);
    struct stat st;
    int rc = 0;

    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;

            *p = '\0';
            if (mkdir(copy, mode) < 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    free(copy);
    if (rc < 0)
        return rc;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int write_all(int fd, const void *data, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, (const char *)data + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        off += (size_t)n;
    }
    return 0;
}

/* A rename is durable only once the folder that holds the name is on
 * disk: after a crash without the folder's fsync, a freshly renamed key
 * or kubeconfig may be the old one or missing. */
int kf_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS)
        r = -errno;
    close(fd);
    return r;
}

int kf_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, bool durable,
                         struct kf_strbuf *err)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? kf_xstrndup(path, (size_t)(slash - path)) : kf_xstrdup(".");
    char *tmp = kf_xasprintf("%s/.%s.tmp.XXXXXX", *dir ? dir : "", slash ? slash + 1 : path);
    int fd, r;

    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        r = kf_err(err, -errno, "cannot create a temporary file next to \"%s\": %s", path,
                   strerror(errno));
        goto out_free;
    }
    if (fchmod(fd, mode) < 0) {
        r = kf_err(err, -errno, "cannot set the mode of \"%s\": %s", tmp, strerror(errno));
        goto out_unlink;
    }
    r = write_all(fd, data, len);
    if (r < 0) {
        kf_err(err, r, "cannot write \"%s\": %s", tmp, strerror(-r));
        goto out_unlink;
    }
    if (durable && fsync(fd) < 0) {
        r = kf_err(err, -errno, "cannot fsync \"%s\": %s", tmp, strerror(errno));
        goto out_unlink;
    }
    r = close(fd);
    fd = -1;
    if (r < 0) {
        r = kf_err(err, -errno, "cannot close \"%s\": %s", tmp, strerror(errno));
        goto out_unlink;
    }
    if (rename(tmp, path) < 0) {
        r = kf_err(err, -errno, "cannot rename \"%s\" to \"%s\": %s", tmp, path, strerror(errno));
        goto out_unlink;
    }
    r = 0;
    if (durable) {
        r = kf_fsync_dir(*dir ? dir : "/");
        if (r < 0)
            kf_err(err, r, "cannot fsync folder \"%s\": %s", dir, strerror(-r));
    }
    goto out_free;
out_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out_free:
    free(tmp);
    free(dir);
    return r;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int kf_remove_tree(const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

int kf_fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int r;

    if (!slash)
        return kf_fsync_dir(".");
    if (slash == path)
        return kf_fsync_dir("/");
    dir = kf_xstrndup(path, (size_t)(slash - path));
    r = kf_fsync_dir(dir);
    free(dir);
    return r;
}

int kf_read_file(const char *path, size_t cap, char **ret, size_t *ret_len)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    char buf[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            kf_strbuf_release(&sb);
            return -e;
        }
        if (n == 0)
            break;
        if (sb.len + (size_t)n > cap) {
            close(fd);
            kf_strbuf_release(&sb);
            return -E2BIG;
        }
        kf_strbuf_add(&sb, buf, (size_t)n);
    }
    close(fd);
    *ret = kf_strbuf_detach(&sb, ret_len);
    return 0;
}

int kf_file_sha256(const char *path, char out[KF_SHA256_TEXT_SIZE], int64_t *ret_size)
{
    unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
    unsigned int n = 0;
    int64_t size = 0;
    EVP_MD_CTX *ctx;
    ssize_t got;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    ctx = EVP_MD_CTX_new();
    if (!ctx) {
        close(fd);
        return -ENOMEM;
    }
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    while ((got = read(fd, buf, sizeof(buf))) > 0 || (got < 0 && errno == EINTR))
        if (got > 0) {
            EVP_DigestUpdate(ctx, buf, (size_t)got);
            size += got;
        }
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    close(fd);
    if (got < 0 || n != 32)
        return -EIO;
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
    if (ret_size)
        *ret_size = size;
    return 0;
}
