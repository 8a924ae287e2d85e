/* obs-files.c: the rendered file set and how it reaches the disk.
 *
 * A renderer produces a kf_obs_files set in memory; this file compares it
 * with what is on disk and replaces only what differs, each file atomically
 * (a temporary file in the same folder, fsync, rename, fsync of the folder),
 * so Prometheus' file_sd watcher and a reload never see half a file. It
 * reports whether the structure of an instance changed (reload it) or only
 * its target lists (no reload: file_sd picks them up), removes owned files
 * the new set no longer has, and runs promtool / amtool over an instance
 * folder (fork + exec, no shell) for callers who check before going live.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "kfleet/base.h"
#include "kfleet/exec.h"
#include "kfleet/file.h"
#include "kfleet/strbuf.h"
#include "observability/obs-internal.h"

/* Subfolders of an instance folder whose files the renderers own; tls/
 * holds one folder per guest cluster (files one folder deep). */
static const char *const owned_dirs[] = { "rules", "targets", "secrets", "tls" };
#define OWNED_TLS "tls"

/* Rendered files are small; anything bigger on disk is not ours to read whole. */
#define OBS_MAX_FILE        (64u << 20)
#define OBS_MAX_TOOL_OUTPUT (64u << 10)
#define OBS_TOOL_TIMEOUT_MS 60000

void kf_obs_files_release(struct kf_obs_files *files)
{
    if (!files)
        return;
    for (size_t i = 0; i < files->n; i++) {
        free(files->items[i].path);
        if (files->items[i].secret && files->items[i].content)
            explicit_bzero(files->items[i].content, files->items[i].len);
        free(files->items[i].content);
    }
    free(files->items);
    files->items = NULL;
    files->n = files->alloc = 0;
}

void kf_obs_files_add(struct kf_obs_files *files, const char *path, char *content, size_t len,
                      mode_t mode, bool targets, bool secret)
{
    struct kf_obs_file *f;

    KF_GROW(files->items, files->alloc, files->n + 1);
    f = &files->items[files->n++];
    f->path = kf_xstrdup(path);
    f->content = content;
    f->len = len;
    f->mode = mode;
    f->targets = targets;
    f->secret = secret;
}

const struct kf_obs_file *kf_obs_files_find(const struct kf_obs_files *files, const char *path)
{
    for (size_t i = 0; i < files->n; i++)
        if (strcmp(files->items[i].path, path) == 0)
            return &files->items[i];
    return NULL;
}

/* Whether the folder rel ("<instance>/secrets", "<instance>/tls/<cluster>")
 * holds keys: 0700. */
static bool private_dir(const char *rel)
{
    const char *sub = strchr(rel, '/');

    if (!sub)
        return false;
    sub++;
    return strcmp(sub, "secrets") == 0 || strcmp(sub, OWNED_TLS) == 0 ||
           kf_str_has_prefix(sub, OWNED_TLS "/");
}

/* mkdir -p for the folder part of root/rel, with mode for each new folder
 * (secrets/, tls/ and below get 0700). */
static int make_parents(const char *root, const char *rel, struct kf_strbuf *err)
{
    char *path = kf_xasprintf("%s/%s", root, rel);
    size_t skip = strlen(root) + 1;
    int r = 0;

    for (char *p = path + skip; *p; p++) {
        struct stat st;
        mode_t mode = 0755;

        if (*p != '/')
            continue;
        *p = '\0';
        if (private_dir(path + skip))
            mode = 0700;
        if (mkdir(path, mode) < 0 && errno != EEXIST) {
            r = kf_err(err, -errno, "cannot create folder \"%s\": %s", path, strerror(errno));
            break;
        }
        if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
            r = kf_err(err, -ENOTDIR, "\"%s\" is not a folder", path);
            break;
        }
        /* an existing private folder made by someone else: tighten it */
        if (mode == 0700 && (st.st_mode & 077) && chmod(path, 0700) < 0) {
            r = kf_err(err, -errno, "cannot restrict folder \"%s\": %s", path, strerror(errno));
            break;
        }
        *p = '/';
    }
    free(path);
    return r;
}

/* 1 if the file at path has exactly these bytes and mode, 0 if not (or if
 * it does not exist), negative errno if it cannot be read. */
static int same_on_disk(const char *path, const struct kf_obs_file *f)
{
    struct stat st;
    char *buf;
    int fd, r;
    size_t got = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != f->mode || (size_t)st.st_size != f->len ||
        st.st_size > (off_t)OBS_MAX_FILE) {
        close(fd);
        return 0;
    }
    buf = kf_xmalloc(f->len + 1);
    while (got < f->len) {
        ssize_t n = read(fd, buf + got, f->len - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    r = got == f->len && memcmp(buf, f->content, f->len) == 0;
    if (f->secret)
        explicit_bzero(buf, f->len);
    free(buf);
    return r;
}

static bool instance_listed(char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The set's paths, sorted, for the removal of what it no longer has. */
struct path_index {
    char **paths;
    size_t n;
};

static bool path_listed(const struct path_index *idx, const char *rel)
{
    return bsearch(&rel, idx->paths, idx->n, sizeof(*idx->paths), cmp_path) != NULL;
}

/* Removes the files of <root>/<rel>/ that the set does not have; with
 * `deep`, also those one folder further down, and those folders once empty.
 * A removal in targets/ or tls/ is a target change (the config that stops
 * naming a TLS file is the structure change), any other a structure one. */
static int remove_stale_dir(const struct path_index *idx, const char *root, const char *rel,
                            bool deep, bool targets, struct kf_obs_change *ch,
                            struct kf_strbuf *err)
{
    char *dir = kf_xasprintf("%s/%s", root, rel);
    DIR *dh = opendir(dir);
    struct dirent *de;
    bool removed = false;
    int r = 0;

    if (!dh)
        goto out_dir;
    while (r == 0 && (de = readdir(dh))) {
        char *child_rel, *abs;
        bool tmp;
        struct stat st;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        child_rel = kf_xasprintf("%s/%s", rel, de->d_name);
        abs = kf_xasprintf("%s/%s", root, child_rel);
        if (deep && lstat(abs, &st) == 0 && S_ISDIR(st.st_mode)) {
            r = remove_stale_dir(idx, root, child_rel, false, targets, ch, err);
            /* a folder the set has no file in any more goes too */
            if (r == 0 && rmdir(abs) == 0)
                removed = true;
            goto next;
        }
        if (path_listed(idx, child_rel))
            goto next;
        /* leftovers of an interrupted atomic write are ours too */
        tmp = de->d_name[0] == '.' && strstr(de->d_name, ".tmp.");
        if (unlink(abs) < 0 && errno != ENOENT) {
            r = kf_err(err, -errno, "cannot remove \"%s\": %s", abs, strerror(errno));
            goto next;
        }
        if (!tmp) {
            ch->removed++;
            if (targets)
                ch->targets = true;
            else
                ch->structure = true;
        }
        removed = true;
    next:
        free(abs);
        free(child_rel);
    }
    closedir(dh);
    if (removed)
        kf_fsync_dir(dir);
out_dir:
    free(dir);
    return r;
}

/* Removes files in <root>/<instance>/<owned dir>/ that the set does not have. */
static int remove_stale(const struct path_index *idx, const char *root, const char *instance,
                        struct kf_obs_change *ch, struct kf_strbuf *err)
{
    for (size_t d = 0; d < KF_ARRAY_SIZE(owned_dirs); d++) {
        char *rel = kf_xasprintf("%s/%s", instance, owned_dirs[d]);
        bool tls = strcmp(owned_dirs[d], OWNED_TLS) == 0;
        int r = remove_stale_dir(idx, root, rel, tls, tls || strcmp(owned_dirs[d], "targets") == 0,
                                 ch, err);

        free(rel);
        if (r < 0)
            return r;
    }
    return 0;
}

int kf_obs_files_write(const struct kf_obs_files *files, const char *root,
                       struct kf_obs_change *ret_change, struct kf_strbuf *err)
{
    struct kf_obs_change ch = { 0 };
    struct path_index idx = { 0 };
    char **instances = NULL;
    size_t n_instances = 0, alloc = 0;
    int r = 0;

    if (mkdir(root, 0755) < 0 && errno != EEXIST)
        return kf_err(err, -errno, "cannot create the monitoring root \"%s\": %s", root,
                      strerror(errno));

    /* two passes: the files a config names (targets, TLS files) before the
     * configs, so a config on disk never names a file that is not there */
    for (size_t k = 0; k < 2 * files->n; k++) {
        const struct kf_obs_file *f = &files->items[k % files->n];
        const char *slash = strchr(f->path, '/');
        char *abs, *inst;
        int same;

        if (f->targets != (k < files->n))
            continue;
        kf_assert(slash && f->path[0] != '/' && !strstr(f->path, ".."));
        inst = kf_xstrndup(f->path, (size_t)(slash - f->path));
        if (!instance_listed(instances, n_instances, inst)) {
            KF_GROW(instances, alloc, n_instances + 1);
            instances[n_instances++] = inst;
        } else {
            free(inst);
        }
        r = make_parents(root, f->path, err);
        if (r < 0)
            goto free_index;
        abs = kf_xasprintf("%s/%s", root, f->path);
        same = same_on_disk(abs, f);
        if (same < 0) {
            r = kf_err(err, same, "cannot read \"%s\": %s", abs, strerror(-same));
            free(abs);
            goto free_index;
        }
        if (same) {
            ch.unchanged++;
            free(abs);
            continue;
        }
        r = kf_write_file_atomic(abs, f->content, f->len, f->mode, true, err);
        free(abs);
        if (r < 0)
            goto free_index;
        ch.written++;
        if (f->targets)
            ch.targets = true;
        else
            ch.structure = true;
    }
    idx.paths = kf_xcalloc(files->n ? files->n : 1, sizeof(*idx.paths));
    for (size_t i = 0; i < files->n; i++)
        idx.paths[idx.n++] = files->items[i].path;
    qsort(idx.paths, idx.n, sizeof(*idx.paths), cmp_path);
    for (size_t i = 0; i < n_instances; i++) {
        r = remove_stale(&idx, root, instances[i], &ch, err);
        if (r < 0)
            goto free_index;
    }
    if (ret_change)
        *ret_change = ch;
free_index:
    free(idx.paths);
    for (size_t i = 0; i < n_instances; i++)
        free(instances[i]);
    free(instances);
    return r;
}

static int check_with(char *const *argv, struct kf_strbuf *err)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    /* promtool and amtool get the caller's environment, as before; a check
     * that hangs is killed after OBS_TOOL_TIMEOUT_MS */
    const struct kf_exec_opts o = { .envp = environ,
                                    .timeout_ms = OBS_TOOL_TIMEOUT_MS,
                                    .with_stderr = true,
                                    .output_max = OBS_MAX_TOOL_OUTPUT };
    int r = kf_exec_capture(argv, &o, &out);

    if (r == -ENOENT) {
        r = kf_err(err, -ENOENT, "\"%s\" is not installed", argv[0]);
    } else if (r < 0) {
        r = kf_err(err, r, "cannot run \"%s\": %s", argv[0], strerror(-r));
    } else if (r != 0) {
        kf_strbuf_rtrim(&out);
        r = kf_err(err, -EINVAL, "%s %s %s failed (exit %d): %s", argv[0], argv[1], argv[2], r,
                   out.buf);
    }
    kf_strbuf_release(&out);
    return r;
}

int kf_obs_check_instance(const struct kf_obs_binaries *bin, enum kf_obs_tier tier, const char *dir,
                          struct kf_strbuf *err)
{
    struct kf_obs_binaries b;
    char *path;
    int r;

    kf_obs_binaries_defaults(bin, &b);
    if (tier == KF_OBS_TIER_ALERTMANAGER) {
        path = kf_xasprintf("%s/alertmanager.yml", dir);
        r = check_with((char *const[]){ (char *)b.amtool, "check-config", path, NULL }, err);
    } else {
        path = kf_xasprintf("%s/prometheus.yml", dir);
        r = check_with((char *const[]){ (char *)b.promtool, "check", "config", path, NULL }, err);
    }
    free(path);
    return r;
}

int kf_obs_check_rules(const struct kf_obs_binaries *bin, const char *path, struct kf_strbuf *err)
{
    struct kf_obs_binaries b;

    kf_obs_binaries_defaults(bin, &b);
    return check_with((char *const[]){ (char *)b.promtool, "check", "rules", (char *)path, NULL },
                      err);
}

int kf_obs_render_instance(const struct kf_obs_fleet *f, const char *name, const char *root,
                           bool check, struct kf_obs_change *ret_change, struct kf_strbuf *err)
{
    struct kf_obs_files files = { 0 };
    enum kf_obs_tier tier;
    int r;

    r = kf_obs_fleet_find_instance(f, name, &tier);
    if (r < 0)
        return kf_err(err, r, "no monitoring instance is called \"%s\"", name);
    switch (tier) {
    case KF_OBS_TIER_EDGE:
        for (size_t i = 0; i < f->n_units; i++)
            for (size_t j = 0; j < f->units[i].n_edges; j++)
                if (strcmp(f->units[i].edges[j].name, name) == 0)
                    r = kf_obs_gen_edge(f, &f->units[i], &f->units[i].edges[j], &files, err);
        break;
    case KF_OBS_TIER_CASCADE:
        for (size_t i = 0; i < f->n_regions; i++)
            for (size_t j = 0; j < f->regions[i].n_cascades; j++)
                if (strcmp(f->regions[i].cascades[j].name, name) == 0)
                    r = kf_obs_gen_cascade(f, &f->regions[i], &f->regions[i].cascades[j], &files,
                                           err);
        break;
    case KF_OBS_TIER_CENTRAL:
        for (size_t i = 0; i < f->n_centrals; i++)
            if (strcmp(f->centrals[i].name, name) == 0)
                r = kf_obs_gen_central(f, &f->centrals[i], &files, err);
        break;
    case KF_OBS_TIER_ALERTMANAGER:
        for (size_t i = 0; i < f->n_alertmanagers; i++)
            if (strcmp(f->alertmanagers[i].name, name) == 0)
                r = kf_obs_gen_alertmanager(f, &f->alertmanagers[i], root, &files, err);
        break;
    }
    if (r < 0)
        goto release_files;
    if (check) {
        char *staging = kf_xasprintf("%s/.staging", root);
        char *sdir = kf_xasprintf("%s/%s", staging, name);

        kf_remove_tree(sdir);
        mkdir(root, 0755);
        if (mkdir(staging, 0700) < 0 && errno != EEXIST) {
            r = kf_err(err, -errno, "cannot create \"%s\": %s", staging, strerror(errno));
        } else {
            r = kf_obs_files_write(&files, staging, NULL, err);
            if (r == 0)
                r = kf_obs_check_instance(&f->bin, tier, sdir, err);
        }
        kf_remove_tree(sdir);
        free(sdir);
        free(staging);
        if (r < 0)
            goto release_files;
    }
    r = kf_obs_files_write(&files, root, ret_change, err);
release_files:
    kf_obs_files_release(&files);
    return r;
}
