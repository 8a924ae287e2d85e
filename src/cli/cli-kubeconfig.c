/* cli-kubeconfig.c: `kfleet get kubeconfig CLUSTER` and `kfleet get
 * etcdclient CLUSTER --dir DIR`, the ways into a guest cluster.
 *
 * Both read an action of kfleetd that only admins may call (the admin
 * kubeconfig carries a system:masters certificate, the etcd client
 * certificate opens the cluster's datastore). The kubeconfig goes to
 * stdout, as `kubectl config view --raw` would print it; the etcd client's
 * certificate and key go into files (the key 0600, never to the terminal)
 * and the etcdctl command line that uses them is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

static int fetch(struct kf_cli *cli, const char *name, const char *action, json_t **ret)
{
    struct kf_cli_response resp = { 0 };
    char *base = kf_cli_path(&kf_kind_guestcluster, name), *path;
    int rc = kf_cli_connect(cli);

    if (rc)
        return rc;
    path = kf_xasprintf("%s/%s", base, action);
    free(base);
    if (kf_cli_request(cli, "GET", path, NULL, NULL, 0, &resp) < 0) {
        free(path);
        return KF_CLI_EXIT_UNREACHABLE;
    }
    free(path);
    if (resp.status == 200 && json_is_object(resp.json)) {
        *ret = json_incref(resp.json);
        rc = KF_CLI_EXIT_OK;
    } else {
        char *what = kf_xasprintf("guestcluster/%s", name);

        rc = kf_cli_report_status(cli, &resp, what);
        free(what);
    }
    kf_cli_response_release(&resp);
    return rc;
}

int kf_cli_get_kubeconfig(struct kf_cli *cli, const struct kf_cli_args *args)
{
    json_t *j = NULL;
    const char *kc;
    int rc;

    if (args->n_pos != 2) {
        kf_cli_error(cli, "usage: kfleet get kubeconfig CLUSTER (one guest cluster)");
        return KF_CLI_EXIT_USAGE;
    }
    rc = fetch(cli, args->pos[1], "kubeconfig", &j);
    if (rc)
        return rc;
    kc = kf_json_str(j, "kubeconfig", NULL);
    if (!kc) {
        kf_cli_error(cli, "the server's answer has no kubeconfig");
        rc = KF_CLI_EXIT_REFUSED;
    } else {
        fputs(kc, cli->out);
    }
    json_decref(j);
    return rc;
}

static int write_file(struct kf_cli *cli, const char *dir, const char *name, const char *data,
                      mode_t mode)
{
    char *path = kf_xasprintf("%s/%s", dir, name);
    size_t len = strlen(data);
    int fd, rc = KF_CLI_EXIT_OK;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
        kf_cli_error(cli, "cannot write \"%s\": %s", path, strerror(errno));
        rc = KF_CLI_EXIT_USAGE;
    }
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

int kf_cli_get_etcdclient(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const char *dir = kf_cli_args_get(args, "dir");
    char real[PATH_MAX];
    json_t *j = NULL, *eps, *v;
    struct kf_strbuf list = KF_STRBUF_INIT;
    size_t i;
    int rc;

    if (args->n_pos != 2 || !dir) {
        kf_cli_error(cli, "usage: kfleet get etcdclient CLUSTER --dir DIR (writes the etcd CA, "
                          "client certificate and key there)");
        return KF_CLI_EXIT_USAGE;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        kf_cli_error(cli, "cannot create \"%s\": %s", dir, strerror(errno));
        return KF_CLI_EXIT_USAGE;
    }
    if (!realpath(dir, real)) {
        kf_cli_error(cli, "\"%s\": %s", dir, strerror(errno));
        return KF_CLI_EXIT_USAGE;
    }
    rc = fetch(cli, args->pos[1], "etcdclient", &j);
    if (rc)
        return rc;
    rc = write_file(cli, real, "ca.crt", kf_json_str(j, "ca", ""), 0644);
    if (!rc)
        rc = write_file(cli, real, "client.crt", kf_json_str(j, "cert", ""), 0644);
    if (!rc)
        rc = write_file(cli, real, "client.key", kf_json_str(j, "key", ""), 0600);
    eps = kf_json_path(j, "endpoints");
    json_array_foreach(eps, i, v) kf_strbuf_addf(&list, "%s%s", i ? "," : "", json_string_value(v));
    if (!rc)
        fprintf(cli->out,
                "wrote %s/ca.crt, client.crt and client.key (0600); talk to the cluster's etcd "
                "with:\n\n"
                "  ETCDCTL_API=3 etcdctl --endpoints=%s \\\n"
                "      --cacert=%s/ca.crt --cert=%s/client.crt --key=%s/client.key \\\n"
                "      endpoint health\n",
                real, list.buf, real, real, real);
    kf_strbuf_release(&list);
    json_decref(j);
    return rc;
}
