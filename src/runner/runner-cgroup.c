/* runner-cgroup.c: cgroup v2 limits for members, where the kernel lets us.
 *
 * Members go into <base>/<name>, with cpu.max ("<quota> <period>") and
 * memory.max set from the spec; the child joins by writing "0" to the
 * group's cgroup.procs (an fd opened before fork) between fork and exec.
 *
 * <base> is either the directory the operator gives (a cgroup2 directory
 * that offers cpu and memory and holds no processes, e.g. a systemd slice
 * with Delegate=yes), or, when detecting, a "kfleet-members" child of the
 * agent's own cgroup (read from /proc/self/cgroup, line "0::/path", under
 * the cgroup2 mount from /proc/self/mountinfo). Enabling controllers for
 * children needs a cgroup without processes of its own, which only holds
 * for the root of a cgroup namespace (a container) or an operator-made
 * directory; otherwise the reason is reported and members run without
 * limits. The runner reports that reason once, at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/strbuf.h"
#include "runner/runner-internal.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define CPU_PERIOD_US 100000

static int write_file(const char *dir, const char *file, const char *text)
{
    char *path = kf_xasprintf("%s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = 0;
    size_t len = strlen(text);
    ssize_t w;

    free(path);
    if (fd < 0)
        return -errno;
    w = write(fd, text, len);
    if (w < 0)
        rc = -errno;
    else if ((size_t)w != len)
        rc = -EIO;
    close(fd);
    return rc;
}

static bool has_word(const char *list, const char *word)
{
    size_t wl = strlen(word);

    for (const char *p = list; (p = strstr(p, word)); p += wl)
        if ((p == list || p[-1] == ' ' || p[-1] == '\n') &&
            (p[wl] == '\0' || p[wl] == ' ' || p[wl] == '\n'))
            return true;
    return false;
}

/* The cgroup2 mount point, from /proc/self/mountinfo. */
static char *cgroup2_mount(void)
{
    char *text = NULL, *save = NULL, *line;
    size_t len;
    char *found = NULL;

    if (kf_read_file("/proc/self/mountinfo", 4 * 1024 * 1024, &text, &len) < 0)
        return NULL;
    for (line = strtok_r(text, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save)) {
        /* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
        char *dash = strstr(line, " - ");
        char *f[5] = { 0 }, *s2 = NULL, *tok;
        int n = 0;
        if (!dash || strncmp(dash + 3, "cgroup2 ", 8))
            continue;
        *dash = '\0';
        for (tok = strtok_r(line, " ", &s2); tok && n < 5; tok = strtok_r(NULL, " ", &s2))
            f[n++] = tok;
        if (n == 5)
            found = kf_xstrdup(f[4]);
    }
    free(text);
    return found;
}

/* The agent's own cgroup2 path ("/..."), from /proc/self/cgroup. */
static char *own_cgroup(void)
{
    char *text = NULL, *save = NULL, *line, *found = NULL;
    size_t len;

    if (kf_read_file("/proc/self/cgroup", 1024 * 1024, &text, &len) < 0)
        return NULL;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (kf_str_has_prefix(line, "0::")) {
            found = kf_xstrdup(line + 3);
            break;
        }
    free(text);
    return found;
}

static int enable_controllers(const char *dir, struct kf_strbuf *why)
{
    char *text = NULL;
    size_t len;
    char *path = kf_xasprintf("%s/cgroup.subtree_control", dir);
    int rc = kf_read_file(path, 4096, &text, &len);

    free(path);
    if (rc == 0 && has_word(text, "cpu") && has_word(text, "memory")) {
        free(text);
        return 0;
    }
    free(text);
    rc = write_file(dir, "cgroup.subtree_control", "+cpu +memory");
    if (rc == -EBUSY)
        return kf_err(why, rc,
                      "cgroup \"%s\" holds processes, so it cannot hand controllers to its "
                      "children; give the agent a delegated cgroup without processes "
                      "(--cgroup-parent)",
                      dir);
    if (rc < 0)
        return kf_err(why, rc, "cannot enable cpu and memory in \"%s\": %s", dir, strerror(-rc));
    return 0;
}

static int check_dir(const char *dir, bool check_fs, struct kf_strbuf *why)
{
    struct statfs sfs;
    char *path, *text = NULL;
    size_t len;
    int rc;

    if (check_fs) {
        if (statfs(dir, &sfs) < 0)
            return kf_err(why, -errno, "\"%s\": %s", dir, strerror(errno));
        if ((unsigned long)sfs.f_type != CGROUP2_SUPER_MAGIC)
            return kf_err(why, -ENOTSUP, "\"%s\" is not on a cgroup2 file system", dir);
    }
    if (access(dir, W_OK) < 0)
        return kf_err(why, -errno, "\"%s\" is not writable: %s", dir, strerror(errno));
    path = kf_xasprintf("%s/cgroup.controllers", dir);
    rc = kf_read_file(path, 4096, &text, &len);
    free(path);
    if (rc < 0)
        return kf_err(why, rc, "cannot read \"%s/cgroup.controllers\": %s", dir, strerror(-rc));
    if (!has_word(text, "cpu") || !has_word(text, "memory")) {
        char *nl = strchr(text, '\n');
        if (nl)
            *nl = '\0';
        rc = kf_err(why, -ENOTSUP,
                    "cgroup2 \"%s\" does not offer the cpu and memory controllers (it offers "
                    "\"%s\"; on a hybrid v1/v2 host they belong to v1)",
                    dir, text);
        free(text);
        return rc;
    }
    free(text);
    return 0;
}

int kf_runner_cgroup_setup(const char *parent, bool check_fs, char **ret_base,
                           struct kf_strbuf *why)
{
    char *mount = NULL, *own = NULL, *dir = NULL, *base = NULL;
    int rc;

    if (parent) {
        rc = check_dir(parent, check_fs, why);
        if (rc < 0)
            return rc;
        rc = enable_controllers(parent, why);
        if (rc < 0)
            return rc;
        *ret_base = kf_xstrdup(parent);
        return 0;
    }
    mount = cgroup2_mount();
    if (!mount)
        return kf_err(why, -ENOTSUP, "no cgroup2 file system is mounted");
    own = own_cgroup();
    if (!own) {
        rc = kf_err(why, -ENOTSUP, "the agent is in no cgroup2 group (/proc/self/cgroup)");
        goto free_paths;
    }
    dir = kf_xasprintf("%s%s", mount, strcmp(own, "/") ? own : "");
    rc = check_dir(dir, check_fs, why);
    if (rc < 0)
        goto free_paths;
    rc = enable_controllers(dir, why);
    if (rc < 0)
        goto free_paths;
    base = kf_xasprintf("%s/kfleet-members", dir);
    if (mkdir(base, 0755) < 0 && errno != EEXIST) {
        rc = kf_err(why, -errno, "cannot create \"%s\": %s", base, strerror(errno));
        goto free_paths;
    }
    rc = enable_controllers(base, why);
    if (rc < 0)
        goto free_paths;
    *ret_base = base;
    base = NULL;
free_paths:
    free(mount);
    free(own);
    free(dir);
    free(base);
    return rc;
}

int kf_runner_cgroup_set_limits(const char *dir, int64_t cpu_millis, int64_t memory_bytes,
                                struct kf_strbuf *err)
{
    char text[64];
    int rc;

    if (cpu_millis > 0) {
        int64_t quota = cpu_millis * CPU_PERIOD_US / 1000;
        snprintf(text, sizeof(text), "%" PRId64 " %d", quota < 1000 ? 1000 : quota, CPU_PERIOD_US);
    } else {
        snprintf(text, sizeof(text), "max %d", CPU_PERIOD_US);
    }
    rc = write_file(dir, "cpu.max", text);
    if (rc < 0)
        return kf_err(err, rc, "cannot write \"%s/cpu.max\": %s", dir, strerror(-rc));
    if (memory_bytes > 0)
        snprintf(text, sizeof(text), "%" PRId64, memory_bytes);
    else
        snprintf(text, sizeof(text), "max");
    rc = write_file(dir, "memory.max", text);
    if (rc < 0)
        return kf_err(err, rc, "cannot write \"%s/memory.max\": %s", dir, strerror(-rc));
    return 0;
}

int kf_runner_cgroup_member(const char *base, const char *name, int64_t cpu_millis,
                            int64_t memory_bytes, int *ret_procs_fd, struct kf_strbuf *err)
{
    char *dir = kf_xasprintf("%s/%s", base, name);
    char *procs;
    int rc, fd;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        rc = kf_err(err, -errno, "cannot create cgroup \"%s\": %s", dir, strerror(errno));
        free(dir);
        return rc;
    }
    rc = kf_runner_cgroup_set_limits(dir, cpu_millis, memory_bytes, err);
    if (rc < 0) {
        free(dir);
        return rc;
    }
    procs = kf_xasprintf("%s/cgroup.procs", dir);
    fd = open(procs, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        rc = kf_err(err, -errno, "cannot open \"%s\": %s", procs, strerror(errno));
    else
        *ret_procs_fd = fd;
    free(procs);
    free(dir);
    return rc;
}

int kf_runner_cgroup_usage(const char *dir, double *ret_cpu, uint64_t *ret_mem)
{
    char *path, *text = NULL, *save = NULL, *line;
    size_t len;
    uint64_t usec = 0, mem = 0;
    bool got = false;
    int rc;

    path = kf_xasprintf("%s/cpu.stat", dir);
    rc = kf_read_file(path, 64 * 1024, &text, &len);
    free(path);
    if (rc < 0)
        return rc;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (kf_str_has_prefix(line, "usage_usec ")) {
            got = kf_parse_uint64(line + 11, &usec) == 0;
            break;
        }
    free(text);
    if (!got)
        return -EINVAL;
    path = kf_xasprintf("%s/memory.current", dir);
    rc = kf_read_file(path, 4096, &text, &len);
    free(path);
    if (rc < 0)
        return rc;
    text[strcspn(text, "\n")] = '\0';
    rc = kf_parse_uint64(text, &mem);
    free(text);
    if (rc < 0)
        return rc;
    *ret_cpu = (double)usec / 1e6;
    *ret_mem = mem;
    return 0;
}

void kf_runner_cgroup_remove(const char *base, const char *name)
{
    char *dir = kf_xasprintf("%s/%s", base, name);

    rmdir(dir);
    free(dir);
}
