/* cli-get.c: `kfleet get KIND [NAME...]`: one object or a list as a table
 * (the kind's columns), JSON, YAML or names. Lists are read page by page
 * with `limit` and `continue`, so a fleet of 100,000 objects never needs
 * one huge response; the pages are put together before printing so that
 * the table's columns line up.
 *
 * Things that are not kinds but read naturally after `get` (`get
 * kubeconfig CLUSTER`, `get etcdclient CLUSTER`, in cli-kubeconfig.c) go
 * into get_extras[] below: a name and a function taking the rest of the
 * arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

#define DEFAULT_PAGE 500
#define MAX_PAGE     10000

const struct kf_cli_opt kf_cli_get_opts[] = {
    { "output", 'o', KF_CLI_VALUE, "FORMAT", "json, yaml, wide or name (default: a table)" },
    { "selector", 'l', KF_CLI_VALUE, "SELECTOR",
      "only objects whose labels match: app=web,env!=dev" },
    { "field-selector", 0, KF_CLI_VALUE, "SELECTOR",
      "only objects whose fields match: status.phase=Running" },
    { "limit", 0, KF_CLI_VALUE, "N",
      "objects per request when listing (default 500); all pages are read" },
    { "chunk-size", 0, KF_CLI_VALUE, "N", "the same as --limit (kubectl's name)" },
    { "dir", 0, KF_CLI_VALUE, "DIR",
      "get etcdclient: where to write the etcd CA, client certificate and key" },
    { NULL, 0, 0, NULL, NULL },
};

/* Pseudo-kinds of `get`: not kinds of the API, handled by their own code. */
static const struct get_extra {
    const char *name;
    int (*run)(struct kf_cli *cli, const struct kf_cli_args *args);
} get_extras[] = {
    { "kubeconfig", kf_cli_get_kubeconfig },
    { "etcdclient", kf_cli_get_etcdclient },
    { NULL, NULL },
};

int kf_cli_list_path(struct kf_cli *cli, const char *path, size_t max, json_t **ret_items,
                     struct kf_strbuf *why)
{
    json_t *items = json_array();
    char *cont = NULL;
    int r = 0;

    do {
        struct kf_cli_response resp = { 0 };
        struct kf_strbuf p = KF_STRBUF_INIT;
        json_t *page;
        const char *next;

        kf_strbuf_addstr(&p, path);
        if (cont)
            kf_cli_path_add_query(&p, "continue", cont);
        free(cont);
        cont = NULL;
        if (kf_cli_request(cli, "GET", p.buf, NULL, NULL, 0, &resp) < 0) {
            kf_strbuf_addstr(why, "the server stopped answering");
            r = -1;
        } else if (resp.status != 200 ||
                   !json_is_array(page = json_object_get(resp.json, "items"))) {
            kf_cli_format_status(&resp, why);
            r = -1;
        } else {
            json_array_extend(items, page);
            next = kf_json_str(resp.json, "metadata.continue", NULL);
            cont = next && *next ? kf_xstrdup(next) : NULL;
        }
        kf_cli_response_release(&resp);
        kf_strbuf_release(&p);
    } while (r == 0 && cont && (!max || json_array_size(items) < max));
    free(cont);
    if (r < 0)
        json_decref(items);
    else
        *ret_items = items;
    return r;
}

int kf_cli_list(struct kf_cli *cli, const struct kf_kind *k, const char *labels, const char *fields,
                size_t page, json_t **ret_items, char **ret_rv)
{
    json_t *items = json_array();
    char *cont = NULL, *rv = NULL;
    bool restarted = false;
    int rc = KF_CLI_EXIT_OK;

    for (;;) {
        struct kf_cli_response resp = { 0 };
        struct kf_strbuf path = KF_STRBUF_INIT;
        char *base = kf_cli_path(k, NULL);
        json_t *page_items;
        const char *next;

        kf_strbuf_addstr(&path, base);
        free(base);
        if (labels && *labels)
            kf_cli_path_add_query(&path, "labelSelector", labels);
        if (fields && *fields)
            kf_cli_path_add_query(&path, "fieldSelector", fields);
        if (page > 0) {
            char n[32];

            snprintf(n, sizeof(n), "%zu", page);
            kf_cli_path_add_query(&path, "limit", n);
        }
        if (cont)
            kf_cli_path_add_query(&path, "continue", cont);
        if (kf_cli_request(cli, "GET", path.buf, NULL, NULL, 0, &resp) < 0) {
            kf_strbuf_release(&path);
            rc = KF_CLI_EXIT_UNREACHABLE;
            break;
        }
        kf_strbuf_release(&path);
        if (resp.status == 410 && cont && !restarted) {
            /* The snapshot our pages came from is gone: start over, once. */
            restarted = true;
            json_array_clear(items);
            free(cont);
            cont = NULL;
            kf_cli_response_release(&resp);
            continue;
        }
        if (resp.status < 200 || resp.status >= 300) {
            rc = kf_cli_report_status(cli, &resp, NULL);
            kf_cli_response_release(&resp);
            break;
        }
        page_items = json_object_get(resp.json, "items");
        if (!json_is_array(page_items) && !json_is_null(page_items)) {
            kf_cli_error(cli, "the server's answer to a list has no items");
            kf_cli_response_release(&resp);
            rc = KF_CLI_EXIT_REFUSED;
            break;
        }
        json_array_extend(items, page_items);
        if (!rv) {
            /* The first page's revision is the one the whole list reflects. */
            rv = kf_xstrdup(kf_json_str(resp.json, "metadata.resourceVersion", ""));
        }
        next = kf_json_str(resp.json, "metadata.continue", NULL);
        free(cont);
        cont = next && *next ? kf_xstrdup(next) : NULL;
        kf_cli_response_release(&resp);
        if (!cont)
            break;
    }
    free(cont);
    if (rc != KF_CLI_EXIT_OK) {
        json_decref(items);
        free(rv);
        return rc;
    }
    *ret_items = items;
    if (ret_rv)
        *ret_rv = rv;
    else
        free(rv);
    return KF_CLI_EXIT_OK;
}

int kf_cli_get_one(struct kf_cli *cli, const struct kf_kind *k, const char *name, bool quiet_404,
                   json_t **ret)
{
    struct kf_cli_response resp = { 0 };
    char *path = kf_cli_path(k, name);
    int rc;

    if (kf_cli_request(cli, "GET", path, NULL, NULL, 0, &resp) < 0) {
        free(path);
        return KF_CLI_EXIT_UNREACHABLE;
    }
    free(path);
    if (resp.status == 200 && json_is_object(resp.json)) {
        *ret = json_incref(resp.json);
        rc = KF_CLI_EXIT_OK;
    } else if (resp.status == 404 && quiet_404) {
        rc = KF_CLI_EXIT_NOTFOUND;
    } else if (resp.status == 200) {
        kf_cli_error(cli, "the server's answer for %s/%s is not an object", k->singular, name);
        rc = KF_CLI_EXIT_REFUSED;
    } else {
        rc = kf_cli_report_status(cli, &resp, NULL);
    }
    kf_cli_response_release(&resp);
    return rc;
}

int kf_cli_page_size(struct kf_cli *cli, const struct kf_cli_args *args, size_t *ret)
{
    const char *s = kf_cli_args_get(args, "limit");
    int64_t n;

    if (!s)
        s = kf_cli_args_get(args, "chunk-size");
    if (!s) {
        *ret = DEFAULT_PAGE;
        return 0;
    }
    if (kf_parse_int64(s, &n) < 0 || n < 1 || n > MAX_PAGE) {
        kf_cli_error(cli, "--limit must be a number from 1 to %d, not \"%s\"", MAX_PAGE, s);
        return KF_CLI_EXIT_USAGE;
    }
    *ret = (size_t)n;
    return 0;
}

bool kf_cli_fold_exit(int *rc, int r)
{
    if (r != KF_CLI_EXIT_OK && *rc == KF_CLI_EXIT_OK)
        *rc = r;
    return r != KF_CLI_EXIT_UNREACHABLE;
}

int kf_cli_cmd_get(struct kf_cli *cli, const struct kf_cli_args *args)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    const struct kf_kind *k;
    enum kf_cli_format fmt;
    const char *labels = kf_cli_args_get(args, "selector");
    const char *fields = kf_cli_args_get(args, "field-selector");
    json_t *items = NULL;
    size_t page;
    int rc;

    if (args->n_pos < 1) {
        kf_cli_error(cli, "kfleet get needs a KIND, e.g. `kfleet get guestclusters`");
        return KF_CLI_EXIT_USAGE;
    }
    for (size_t i = 0; get_extras[i].name; i++)
        if (strcmp(args->pos[0], get_extras[i].name) == 0)
            return get_extras[i].run(cli, args);
    if (kf_cli_format_parse(kf_cli_args_get(args, "output"), &fmt, &err) < 0) {
        kf_cli_error(cli, "%s", err.buf);
        kf_strbuf_release(&err);
        return KF_CLI_EXIT_USAGE;
    }
    rc = kf_cli_page_size(cli, args, &page);
    if (rc)
        return rc;
    k = kf_cli_kind_arg(cli, args->pos[0]);
    if (!k)
        return KF_CLI_EXIT_USAGE;
    if (args->n_pos > 1 && (labels || fields)) {
        kf_cli_error(cli, "give either names or selectors, not both");
        return KF_CLI_EXIT_USAGE;
    }
    rc = kf_cli_connect(cli);
    if (rc)
        return rc;

    if (args->n_pos > 1) {
        items = json_array();
        for (size_t i = 1; i < args->n_pos; i++) {
            json_t *obj = NULL;
            int r = kf_cli_get_one(cli, k, args->pos[i], false, &obj);

            if (r == KF_CLI_EXIT_OK)
                json_array_append_new(items, obj);
            if (!kf_cli_fold_exit(&rc, r))
                break;
        }
        kf_cli_print_objects(cli, k, items, fmt, args->n_pos == 2);
    } else {
        rc = kf_cli_list(cli, k, labels, fields, page, &items, NULL);
        if (rc == KF_CLI_EXIT_OK) {
            if (json_array_size(items) == 0 && (fmt == KF_CLI_FMT_TABLE || fmt == KF_CLI_FMT_WIDE))
                fprintf(cli->err, "No %s found.\n", k->plural);
            else
                kf_cli_print_objects(cli, k, items, fmt, false);
        }
    }
    json_decref(items);
    return rc;
}
