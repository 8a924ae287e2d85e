/* cli-config.c: where `kfleet` finds its server and token, and the
 * `kfleet config` command that manages the config file.
 *
 * Precedence, for the server and the token separately: the --server /
 * --token flag, else $KFLEET_SERVER / $KFLEET_TOKEN, else the config file,
 * else http://127.0.0.1:7480 and no token.
 *
 * The config file is $KFLEET_CONFIG, or ~/.kfleet/config: a small YAML
 * mapping,
 *
 *     server: https://kfleet.example.com:7480
 *     token: 8f3c...
 *
 * with no other keys (a typo like `sever:` is an error, not a silent
 * default). `kfleet config set-server|set-token` write it atomically with
 * mode 0600 in a 0700 directory, since it holds a credential.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kfleet/file.h"
#include "kfleet/json.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

#define CONFIG_MAX_BYTES (64 * 1024)

const char *kf_cli_source_name(enum kf_cli_source src)
{
    switch (src) {
    case KF_CLI_SRC_FLAG:
        return "flag";
    case KF_CLI_SRC_ENV:
        return "environment";
    case KF_CLI_SRC_FILE:
        return "config file";
    case KF_CLI_SRC_DEFAULT:
    default:
        return "default";
    }
}

void kf_cli_file_config_release(struct kf_cli_file_config *c)
{
    if (!c)
        return;
    free(c->server);
    free(c->token);
    *c = (struct kf_cli_file_config){ 0 };
}

char *kf_cli_config_path(void)
{
    const char *p = getenv("KFLEET_CONFIG"), *home;

    if (p && *p)
        return kf_xstrdup(p);
    home = getenv("HOME");
    if (home && *home)
        return kf_xasprintf("%s/.kfleet/config", home);
    return NULL;
}

/* The config file's one document, a mapping of server and token, into c. */
static int config_from_docs(const json_t *docs, const char *path, struct kf_cli_file_config *c,
                            struct kf_strbuf *err)
{
    json_t *doc = json_array_get(docs, 0), *v;
    const char *key;

    if (json_array_size(docs) > 1 || !json_is_object(doc))
        return kf_err(err, -EINVAL,
                      "the config file \"%s\" must be one mapping with `server:` and `token:`",
                      path);
    json_object_foreach(doc, key, v)
    {
        char **slot = strcmp(key, "server") == 0  ? &c->server
                      : strcmp(key, "token") == 0 ? &c->token
                                                  : NULL;

        if (!slot) {
            return kf_err(err, -EINVAL,
                          "the config file \"%s\" has an unknown key \"%s\" (it knows server "
                          "and token)",
                          path, key);
        }
        if (json_is_null(v))
            continue;
        if (!json_is_string(v)) {
            return kf_err(err, -EINVAL, "in the config file \"%s\", %s must be a string", path,
                          key);
        }
        free(*slot);
        *slot = kf_xstrdup(json_string_value(v));
    }
    return 0;
}

int kf_cli_config_read(const char *path, struct kf_cli_file_config *ret, struct kf_strbuf *err)
{
    struct kf_cli_file_config c = { 0 };
    struct kf_strbuf text = KF_STRBUF_INIT, why = KF_STRBUF_INIT;
    json_t *docs = NULL;
    char buf[4096];
    FILE *f;
    size_t n;
    int r = 0;

    if (!path) {
        *ret = c;
        return 0;
    }
    f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) {
            *ret = c;
            return 0;
        }
        r = -errno;
        return kf_err(err, r, "cannot read the config file \"%s\": %s", path, strerror(-r));
    }
    text.cap = CONFIG_MAX_BYTES;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        if (kf_strbuf_add(&text, buf, n) < 0)
            break;
    fclose(f);
    if (text.overflowed) {
        r = kf_err(err, -EINVAL, "the config file \"%s\" is larger than %d bytes", path,
                   CONFIG_MAX_BYTES);
        goto free_text;
    }
    if (kf_yaml_load_all(text.buf, text.len, &docs, &why) < 0) {
        r = kf_err(err, -EINVAL, "the config file \"%s\" is not valid YAML: %s", path, why.buf);
        goto free_text;
    }
    if (json_array_size(docs) > 0 && (r = config_from_docs(docs, path, &c, err)) < 0)
        goto free_text;
    *ret = c;
    c = (struct kf_cli_file_config){ 0 };
free_text:
    kf_cli_file_config_release(&c);
    json_decref(docs);
    kf_strbuf_release(&text);
    kf_strbuf_release(&why);
    return r;
}

/* mkdir -p for the config file's directory, 0700. */
static int make_parent_dir(const char *path, struct kf_strbuf *err)
{
    char *dir = kf_xstrdup(path);
    char *slash = strrchr(dir, '/');
    int r = 0;

    if (slash && slash != dir) {
        *slash = '\0';
        r = kf_mkdir_p(dir, 0700);
        if (r < 0)
            kf_err(err, r, "cannot create \"%s\": %s", dir, strerror(-r));
    }
    free(dir);
    return r;
}

int kf_cli_config_write(const char *path, const struct kf_cli_file_config *c, struct kf_strbuf *err)
{
    struct kf_strbuf text = KF_STRBUF_INIT;
    json_t *doc = json_object();
    int r;

    r = make_parent_dir(path, err);
    if (r < 0)
        goto free_text;
    if (c->server)
        json_object_set_new(doc, "server", json_string(c->server));
    if (c->token)
        json_object_set_new(doc, "token", json_string(c->token));
    kf_strbuf_addstr(&text, "# kfleet CLI settings; `kfleet config --help` explains them.\n");
    if (json_object_size(doc) > 0)
        kf_yaml_dump(doc, &text);
    /* 0600 even if the umask was generous or the file existed; durable, so
     * the rename itself survives a crash. */
    r = kf_write_file_atomic(path, text.buf, text.len, 0600, true, err);
free_text:
    json_decref(doc);
    kf_strbuf_release(&text);
    return r;
}

void kf_cli_conn_release(struct kf_cli_conn *c)
{
    if (!c)
        return;
    free(c->server);
    free(c->token);
    free(c->config_path);
    *c = (struct kf_cli_conn){ 0 };
}

static const char *pick(const char *flag, const char *env, const char *file,
                        enum kf_cli_source *src)
{
    if (flag) {
        *src = KF_CLI_SRC_FLAG;
        return flag;
    }
    if (env && *env) {
        *src = KF_CLI_SRC_ENV;
        return env;
    }
    if (file && *file) {
        *src = KF_CLI_SRC_FILE;
        return file;
    }
    *src = KF_CLI_SRC_DEFAULT;
    return NULL;
}

static const char *server_source_text(enum kf_cli_source src)
{
    switch (src) {
    case KF_CLI_SRC_FLAG:
        return "--server";
    case KF_CLI_SRC_ENV:
        return "KFLEET_SERVER";
    case KF_CLI_SRC_FILE:
        return "the config file";
    default:
        return "the default";
    }
}

int kf_cli_conn_resolve(struct kf_cli_conn *ret, const char *flag_server, const char *flag_token,
                        const char *env_server, const char *env_token,
                        const struct kf_cli_file_config *file, struct kf_strbuf *err)
{
    enum kf_cli_source ssrc, tsrc;
    const char *server = pick(flag_server, env_server, file ? file->server : NULL, &ssrc);
    const char *token = pick(flag_token, env_token, file ? file->token : NULL, &tsrc);
    size_t len;

    if (!server)
        server = KF_CLI_DEFAULT_SERVER;
    if (!kf_str_has_prefix(server, "http://") && !kf_str_has_prefix(server, "https://"))
        return kf_err(err, -EINVAL,
                      "the server \"%s\" (from %s) is not a URL; write it as http://HOST:PORT "
                      "or https://HOST:PORT",
                      server, server_source_text(ssrc));
    if (strlen(server) <= strlen("https://") || strpbrk(server, " \t\r\n"))
        return kf_err(err, -EINVAL, "the server \"%s\" (from %s) is not a valid URL", server,
                      server_source_text(ssrc));
    if (token && strpbrk(token, "\r\n"))
        return kf_err(err, -EINVAL, "the token (from %s) contains a line break",
                      tsrc == KF_CLI_SRC_FLAG  ? "--token"
                      : tsrc == KF_CLI_SRC_ENV ? "KFLEET_TOKEN"
                                               : "the config file");
    kf_cli_conn_release(ret);
    ret->server = kf_xstrdup(server);
    len = strlen(ret->server);
    while (len > 0 && ret->server[len - 1] == '/')
        ret->server[--len] = '\0';
    ret->server_src = ssrc;
    ret->token = token && *token ? kf_xstrdup(token) : NULL;
    ret->token_src = ret->token ? tsrc : KF_CLI_SRC_DEFAULT;
    return 0;
}

int kf_cli_connect(struct kf_cli *cli)
{
    struct kf_cli_file_config file = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    char *path;
    int r;

    if (cli->conn_resolved)
        return 0;
    path = kf_cli_config_path();
    r = kf_cli_config_read(path, &file, &err);
    if (r == 0)
        r = kf_cli_conn_resolve(&cli->conn, cli->flag_server, cli->flag_token,
                                getenv("KFLEET_SERVER"), getenv("KFLEET_TOKEN"), &file, &err);
    if (r < 0) {
        kf_cli_error(cli, "%s", err.buf);
        free(path);
    } else {
        struct stat st;

        /* The token is a credential: say so if others can read it. */
        if (file.token && cli->conn.token_src == KF_CLI_SRC_FILE && stat(path, &st) == 0 &&
            (st.st_mode & 077))
            fprintf(cli->err,
                    "warning: the config file \"%s\" holds a token and others may read it; "
                    "run chmod 600 \"%s\"\n",
                    path, path);
        cli->conn.config_path = path;
        cli->conn_resolved = true;
    }
    kf_cli_file_config_release(&file);
    kf_strbuf_release(&err);
    return r < 0 ? KF_CLI_EXIT_USAGE : 0;
}

/* ---- kfleet config ------------------------------------------------------------- */

static int config_view(struct kf_cli *cli, const char *path)
{
    struct kf_cli_file_config file = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct stat st;
    int r;

    r = kf_cli_config_read(path, &file, &err);
    if (r < 0) {
        kf_cli_error(cli, "%s", err.buf);
        kf_strbuf_release(&err);
        return KF_CLI_EXIT_USAGE;
    }
    if (kf_cli_connect(cli) != 0) {
        kf_cli_file_config_release(&file);
        return KF_CLI_EXIT_USAGE;
    }
    fprintf(cli->out, "# config file: %s%s\n", path ? path : "(none: $HOME is not set)",
            path && stat(path, &st) < 0 ? " (does not exist)" : "");
    fprintf(cli->out, "server: %s\n", file.server ? file.server : "");
    fprintf(cli->out, "token: %s\n", file.token ? "REDACTED" : "");
    fprintf(cli->out, "# in effect: server %s (from %s), %s\n", cli->conn.server,
            kf_cli_source_name(cli->conn.server_src),
            cli->conn.token ? (cli->conn.token_src == KF_CLI_SRC_FLAG  ? "token from flag"
                               : cli->conn.token_src == KF_CLI_SRC_ENV ? "token from environment"
                                                                       : "token from config file")
                            : "no token");
    kf_cli_file_config_release(&file);
    return KF_CLI_EXIT_OK;
}

int kf_cli_cmd_config(struct kf_cli *cli, const struct kf_cli_args *args)
{
    struct kf_cli_file_config file = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    const char *sub = args->n_pos > 0 ? args->pos[0] : NULL;
    char *path = kf_cli_config_path();
    int rc = KF_CLI_EXIT_OK;

    if (!sub || (strcmp(sub, "view") == 0 && args->n_pos == 1)) {
        rc = config_view(cli, path);
        goto release_file;
    }
    if ((strcmp(sub, "set-server") != 0 && strcmp(sub, "set-token") != 0) || args->n_pos != 2) {
        kf_cli_error(cli, "usage: kfleet config view | set-server URL | set-token TOKEN");
        rc = KF_CLI_EXIT_USAGE;
        goto release_file;
    }
    if (!path) {
        kf_cli_error(cli, "neither $KFLEET_CONFIG nor $HOME is set: no place for the config "
                          "file");
        rc = KF_CLI_EXIT_USAGE;
        goto release_file;
    }
    if (kf_cli_config_read(path, &file, &err) < 0) {
        kf_cli_error(cli, "%s", err.buf);
        rc = KF_CLI_EXIT_USAGE;
        goto release_file;
    }
    if (strcmp(sub, "set-server") == 0) {
        struct kf_cli_conn probe = { 0 };

        /* Check the URL the way it will be used. */
        if (kf_cli_conn_resolve(&probe, args->pos[1], NULL, NULL, NULL, NULL, &err) < 0) {
            kf_cli_error(cli, "%s", err.buf);
            rc = KF_CLI_EXIT_USAGE;
            goto release_file;
        }
        free(file.server);
        file.server = kf_xstrdup(probe.server);
        kf_cli_conn_release(&probe);
    } else {
        free(file.token);
        file.token = *args->pos[1] ? kf_xstrdup(args->pos[1]) : NULL;
    }
    if (kf_cli_config_write(path, &file, &err) < 0) {
        kf_cli_error(cli, "%s", err.buf);
        rc = KF_CLI_EXIT_USAGE;
        goto release_file;
    }
    fprintf(cli->out, "%s set in %s\n", strcmp(sub, "set-server") == 0 ? "server" : "token", path);
release_file:
    kf_cli_file_config_release(&file);
    kf_strbuf_release(&err);
    free(path);
    return rc;
}
