/* mon-service.c: the life of struct kf_mon: the monitoring root, the
 * adapter's bearer token, starting and stopping the adapter and the local
 * stack. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "kfleet/file.h"
#include "kfleet/log.h"
#include "kfleet/monitoring.h"
#include "kfleet/strbuf.h"
#include "monitoring/mon-internal.h"

KF_LOG_MODULE(monitoring);

int kf_mon_read_secret(const char *path, char **ret, struct kf_strbuf *err)
{
    char *buf;
    ssize_t n = 0, got;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return kf_err(err, -errno, "cannot read the secret file \"%s\": %s", path, strerror(errno));
    /* a secret anybody may read or change is not one */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & (S_IROTH | S_IWOTH))) {
        close(fd);
        return kf_err(err, -EPERM,
                      "the secret file \"%s\" must be a regular file that only its owner and "
                      "group may read (chmod 600 or 640)",
                      path);
    }
    buf = kf_xmalloc(65537);
    while (n < 65536 && (got = read(fd, buf + n, 65536 - (size_t)n)) > 0)
        n += got;
    close(fd);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (!n) {
        free(buf);
        return kf_err(err, -EINVAL, "the secret file \"%s\" is empty", path);
    }
    *ret = buf;
    return 0;
}

static int ensure_dir(const char *path, mode_t mode, struct kf_strbuf *err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return kf_err(err, -errno, "cannot create \"%s\": %s", path, strerror(errno));
    return 0;
}

/* The adapter token: created once (32 random bytes, hex), kept. */
static int load_token(struct kf_mon *m, struct kf_strbuf *err)
{
    char *dir = kf_xasprintf("%s/.adapter", m->root);
    int r = ensure_dir(dir, 0700, err);

    m->token_file = kf_xasprintf("%s/token", dir);
    m->dedup_path = kf_xasprintf("%s/dedup", dir);
    free(dir);
    if (r < 0)
        return r;
    if (access(m->token_file, F_OK) != 0) {
        unsigned char raw[32];
        char hex[65];

        kf_random_bytes(raw, sizeof(raw));
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        r = kf_write_file_atomic(m->token_file, hex, 64, 0600, true, err);
        explicit_bzero(hex, sizeof(hex));
        if (r < 0)
            return r;
    }
    return kf_mon_read_secret(m->token_file, &m->token, err);
}

int kf_mon_new(struct kf_mon_config *c, const char *data_dir, struct kf_metrics *metrics,
               struct kf_mon **ret, struct kf_strbuf *err)
{
    struct kf_mon *m = kf_xcalloc(1, sizeof(*m));
    char abs[PATH_MAX];
    int r;

    m->cfg = *c;
    kf_mon_config_init(c);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    pthread_mutex_init(&m->ports_lock, NULL);
    if (!realpath(data_dir, abs)) {
        r = kf_err(err, -errno, "data directory \"%s\": %s", data_dir, strerror(errno));
        goto free_mon;
    }
    m->root = kf_xasprintf("%s/monitoring", abs);
    m->secrets_dir = kf_xasprintf("%s/secrets/", abs);
    if (!m->cfg.n_secret_dirs) {
        m->cfg.secret_dirs = kf_xcalloc(2, sizeof(char *));
        m->cfg.secret_dirs[0] = kf_xstrdup("/etc/kfleet/");
        m->cfg.n_secret_dirs = 1;
    }
    r = kf_obs_destinations_parse(m->cfg.alert_destinations, &m->dests, err);
    if (r == 0)
        r = ensure_dir(m->root, 0755, err);
    if (r == 0) {
        /* where secretRef names point (AlertReceiver) */
        char *secrets = kf_xasprintf("%s/secrets", abs);

        r = ensure_dir(secrets, 0700, err);
        free(secrets);
    }
    if (r == 0)
        r = load_token(m, err);
    if (r == 0)
        r = kf_mon_adapter_start(m, metrics, err);
    if (r == 0 && m->cfg.mode == KF_MON_LOCAL)
        r = kf_mon_stack_start(m, err);
    if (r < 0)
        goto free_mon;
    *ret = m;
    return 0;
free_mon:
    kf_mon_free(m);
    return r;
}

void kf_mon_free(struct kf_mon *m)
{
    if (!m)
        return;
    kf_mon_stack_stop(m);
    kf_mon_adapter_stop(m);
    if (m->token)
        explicit_bzero(m->token, strlen(m->token));
    free(m->token);
    free(m->token_file);
    free(m->dedup_path);
    free(m->root);
    free(m->secrets_dir);
    kf_obs_destinations_release(&m->dests);
    kf_mon_config_release(&m->cfg);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->ports_lock);
    free(m);
}

bool kf_mon_secret_path_allowed(const struct kf_mon *m, const char *path)
{
    char real[PATH_MAX];
    bool ok = false;

    if (!path || path[0] != '/' || !realpath(path, real))
        return false;
    if (kf_str_has_prefix(real, m->secrets_dir))
        return true;
    for (size_t i = 0; i < m->cfg.n_secret_dirs && !ok; i++) {
        char dir[PATH_MAX];

        /* the folder itself may be a link (/etc/kfleet -> /srv/...) */
        if (realpath(m->cfg.secret_dirs[i], dir)) {
            size_t n = strlen(dir);

            ok = strncmp(real, dir, n) == 0 && real[n] == '/';
        }
    }
    return ok;
}

const struct kf_obs_destinations *kf_mon_destinations(const struct kf_mon *m)
{
    return &m->dests;
}

const struct kf_mon_config *kf_mon_config(const struct kf_mon *m)
{
    return &m->cfg;
}

const char *kf_mon_root(const struct kf_mon *m)
{
    return m->root;
}

const char *kf_mon_token_file(const struct kf_mon *m)
{
    return m->token_file;
}
