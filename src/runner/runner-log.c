/* runner-log.c: a member's log file with size-based rotation.
 *
 * The real runner reads each process's stdout+stderr from a FIFO and hands
 * the bytes to a kf_logsink, which appends them to <path> and, when the file
 * would pass its size limit, renames <path> to <path>.1 (shifting older ones
 * up to <path>.keep and deleting the oldest) and starts a new file. The cut
 * is made after the last complete line that still fits, so a line is split
 * across files only when it alone is longer than the limit. Nothing is lost
 * while the agent runs: the writer blocks on a full pipe instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/strbuf.h"
#include "runner/runner-internal.h"

static char *rotated_name(const char *path, int i)
{
    return kf_xasprintf("%s.%d", path, i);
}

static uint64_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int kf_logsink_open(struct kf_logsink *ls, const char *path, uint64_t max, int keep)
{
    struct stat st;
    char *dir = kf_xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc;

    memset(ls, 0, sizeof(*ls));
    ls->fd = -1;
    if (slash && slash != dir) {
        *slash = '\0';
        rc = kf_mkdir_p(dir, 0700);
        if (rc < 0) {
            free(dir);
            return rc;
        }
    }
    free(dir);
    ls->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (ls->fd < 0)
        return -errno;
    ls->path = kf_xstrdup(path);
    ls->max = max ? max : 10 * 1024 * 1024;
    ls->keep = keep < 0 ? 0 : keep;
    ls->size = fstat(ls->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return 0;
}

void kf_logsink_close(struct kf_logsink *ls)
{
    if (!ls)
        return;
    if (ls->fd >= 0)
        close(ls->fd);
    ls->fd = -1;
    free(ls->path);
    ls->path = NULL;
}

static int rotate(struct kf_logsink *ls)
{
    if (ls->keep == 0) {
        ls->discarded += ls->size;
        if (ftruncate(ls->fd, 0) < 0)
            return -errno;
        ls->size = 0;
        return 0;
    }
    char *oldest = rotated_name(ls->path, ls->keep);
    ls->discarded += file_size(oldest);
    unlink(oldest);
    free(oldest);
    for (int i = ls->keep - 1; i >= 1; i--) {
        char *from = rotated_name(ls->path, i), *to = rotated_name(ls->path, i + 1);
        rename(from, to);
        free(from);
        free(to);
    }
    char *first = rotated_name(ls->path, 1);
    int rc = rename(ls->path, first) < 0 ? -errno : 0;
    free(first);
    if (rc < 0)
        return rc;
    close(ls->fd);
    ls->fd = open(ls->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    ls->size = 0;
    return ls->fd < 0 ? -errno : 0;
}

static int write_all(struct kf_logsink *ls, const char *buf, size_t n)
{
    while (n) {
        ssize_t w = write(ls->fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        n -= (size_t)w;
        ls->size += (uint64_t)w;
    }
    return 0;
}

int kf_logsink_write(struct kf_logsink *ls, const char *buf, size_t n)
{
    int rc;

    if (ls->fd < 0)
        return -EBADF;
    while (n) {
        uint64_t room = ls->size < ls->max ? ls->max - ls->size : 0;
        size_t cut;

        if (n <= room)
            return write_all(ls, buf, n);
        /* The part that fits, up to its last newline. */
        cut = 0;
        for (size_t i = (size_t)KF_MIN((uint64_t)n, room); i > 0; i--)
            if (buf[i - 1] == '\n') {
                cut = i;
                break;
            }
        if (cut == 0 && ls->size == 0)
            cut = (size_t)KF_MIN((uint64_t)n, ls->max); /* one line longer than a file */
        if (cut) {
            rc = write_all(ls, buf, cut);
            if (rc < 0)
                return rc;
            buf += cut;
            n -= cut;
        }
        rc = rotate(ls);
        if (rc < 0)
            return rc;
    }
    return 0;
}

uint64_t kf_logsink_total_on_disk(const char *path, int keep)
{
    uint64_t total = file_size(path);

    for (int i = 1; i <= keep; i++) {
        char *name = rotated_name(path, i);
        total += file_size(name);
        free(name);
    }
    return total;
}

/* Appends the last `want` bytes of file `path` to sb. */
static void tail_of(const char *path, size_t want, struct kf_strbuf *sb)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[8192];
    off_t off;

    if (fd < 0)
        return;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return;
    }
    off = st.st_size > (off_t)want ? st.st_size - (off_t)want : 0;
    while (want) {
        ssize_t n = pread(fd, buf, KF_MIN(sizeof(buf), want), off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        kf_strbuf_add(sb, buf, (size_t)n);
        off += n;
        want -= (size_t)n;
    }
    close(fd);
}

int kf_logsink_tail(const char *path, size_t cap, char **ret, size_t *ret_len)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    uint64_t cur = file_size(path);

    if (cur < cap) {
        char *prev = rotated_name(path, 1);
        tail_of(prev, cap - (size_t)cur, &sb);
        free(prev);
    }
    tail_of(path, cap, &sb);
    *ret = kf_strbuf_detach(&sb, ret_len);
    if (!*ret) {
        *ret = kf_xstrdup("");
        *ret_len = 0;
    }
    return 0;
}
