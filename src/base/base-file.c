/* base-file.c: what every atomic file write needs after its rename.
 *
 * A rename is durable only once the folder that holds the name is on disk:
 * after a crash without the folder's fsync, a freshly renamed PKI key or
 * kubeconfig may be the old one or missing. The writers (pki-cert.c,
 * ctrl-lifecycle-pki.c, cli-config.c, agent-members.c, obs-files.c, ...)
 * call this after rename(2).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "kfleet/base.h"

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
