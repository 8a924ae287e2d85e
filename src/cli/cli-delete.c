/* cli-delete.c: `kfleet delete KIND NAME... | -f FILE`. An object without
 * finalizers goes at once ("deleted"); one with finalizers gets a
 * deletionTimestamp and stays until the controllers that own the finalizers
 * have cleaned up ("deletion requested (finalizers: ...)"). With --wait the
 * command polls until the object is gone or --timeout passes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

#define DEFAULT_WAIT_MS (5 * 60 * 1000)

const struct kf_cli_opt kf_cli_delete_opts[] = {
    { "filename", 'f', KF_CLI_LIST, "FILE", "delete the objects named in a file, directory or -" },
    { "wait", 0, KF_CLI_FLAG, NULL, "wait until the objects are gone (finalizers done)" },
    { "timeout", 0, KF_CLI_VALUE, "DURATION", "how long --wait waits (default 5m)" },
    { "ignore-not-found", 0, KF_CLI_FLAG, NULL, "an object that does not exist is not an error" },
    { NULL, 0, 0, NULL, NULL },
};

static void add_finalizers(struct kf_strbuf *out, const json_t *obj)
{
    size_t i;
    json_t *f;

    json_array_foreach(kf_json_path(obj, "metadata.finalizers"), i, f)
    {
        if (i > 0)
            kf_strbuf_addstr(out, ", ");
        kf_strbuf_addstr(out, json_is_string(f) ? json_string_value(f) : "?");
    }
}

/* Polls until name is gone. Returns an exit code. */
static int wait_gone(struct kf_cli *cli, const struct kf_kind *k, const char *name, const char *ref,
                     int64_t timeout_ms)
{
    uint64_t deadline = kf_mono_ns() + (uint64_t)timeout_ms * 1000000;
    int64_t delay = 200;

    for (;;) {
        json_t *obj = NULL;
        int rc = kf_cli_get_one(cli, k, name, true, &obj);

        if (rc == KF_CLI_EXIT_NOTFOUND) {
            fprintf(cli->out, "%s deleted\n", ref);
            return KF_CLI_EXIT_OK;
        }
        if (rc != KF_CLI_EXIT_OK)
            return rc;
        if (kf_mono_ns() >= deadline) {
            struct kf_strbuf fin = KF_STRBUF_INIT;

            add_finalizers(&fin, obj);
            kf_cli_error(cli, "%s is still there after the timeout (finalizers left: %s)", ref,
                         fin.len ? fin.buf : "none");
            kf_strbuf_release(&fin);
            json_decref(obj);
            return KF_CLI_EXIT_REFUSED;
        }
        json_decref(obj);
        kf_sleep_ms(delay);
        delay = KF_MIN(delay * 2, 2000);
    }
}

static int delete_one(struct kf_cli *cli, const struct kf_kind *k, const char *name, bool wait,
                      int64_t timeout_ms, bool ignore_not_found)
{
    struct kf_cli_response resp = { 0 };
    char *path = kf_cli_path(k, name), *ref = kf_cli_ref(k, name);
    int rc = KF_CLI_EXIT_OK;

    if (kf_cli_request(cli, "DELETE", path, NULL, NULL, 0, &resp) < 0) {
        rc = KF_CLI_EXIT_UNREACHABLE;
    } else if (resp.status == 404 && ignore_not_found) {
        rc = KF_CLI_EXIT_OK;
    } else if (resp.status < 200 || resp.status >= 300) {
        rc = kf_cli_report_status(cli, &resp, ref);
    } else {
        const json_t *obj = resp.json;
        bool pending = json_is_object(obj) && !kf_streq(kf_json_str(obj, "kind", ""), "Status") &&
                       kf_json_str(obj, "metadata.deletionTimestamp", NULL) &&
                       json_array_size(kf_json_path(obj, "metadata.finalizers")) > 0;

        if (!pending) {
            fprintf(cli->out, "%s deleted\n", ref);
        } else {
            struct kf_strbuf fin = KF_STRBUF_INIT;

            add_finalizers(&fin, obj);
            fprintf(cli->out, "%s deletion requested (finalizers: %s)\n", ref, fin.buf);
            kf_strbuf_release(&fin);
            fflush(cli->out);
            if (wait)
                rc = wait_gone(cli, k, name, ref, timeout_ms);
        }
    }
    kf_cli_response_release(&resp);
    free(path);
    free(ref);
    return rc;
}

int kf_cli_cmd_delete(struct kf_cli *cli, const struct kf_cli_args *args)
{
    struct kf_cli_inputs in = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    bool wait = kf_cli_args_has(args, "wait");
    bool ignore = kf_cli_args_has(args, "ignore-not-found");
    const char *timeout = kf_cli_args_get(args, "timeout");
    int64_t timeout_ms = DEFAULT_WAIT_MS;
    const struct kf_kind *k = NULL;
    int rc = KF_CLI_EXIT_OK;

    if (timeout && (kf_parse_duration_ms(timeout, &timeout_ms) < 0 || timeout_ms <= 0)) {
        kf_cli_error(cli, "--timeout takes a duration like 30s or 5m, not \"%s\"", timeout);
        return KF_CLI_EXIT_USAGE;
    }
    if (kf_cli_args_has(args, "filename")) {
        if (args->n_pos > 0) {
            kf_cli_error(cli, "give either -f FILE or KIND NAME..., not both");
            return KF_CLI_EXIT_USAGE;
        }
        if (kf_cli_input_read_args(args, stdin, &in, &err) < 0) {
            kf_cli_error(cli, "%s", err.buf);
            rc = KF_CLI_EXIT_USAGE;
            goto release_inputs;
        }
        for (size_t i = 0; i < in.n; i++) {
            if (kf_cli_input_kind(in.items[i].obj, &k, &err) < 0) {
                kf_cli_error(cli, "%s: %s", in.items[i].source, err.buf);
                rc = KF_CLI_EXIT_USAGE;
                goto release_inputs;
            }
        }
    } else if (args->n_pos < 2) {
        kf_cli_error(cli, "kfleet delete needs KIND NAME... or -f FILE");
        return KF_CLI_EXIT_USAGE;
    } else {
        k = kf_cli_kind_arg(cli, args->pos[0]);
        if (!k)
            return KF_CLI_EXIT_USAGE;
    }
    rc = kf_cli_connect(cli);
    if (rc)
        goto release_inputs;
    if (in.n > 0) {
        for (size_t i = 0; i < in.n; i++) {
            int r;

            kf_cli_input_kind(in.items[i].obj, &k, NULL);
            r = delete_one(cli, k, kf_obj_name(in.items[i].obj), wait, timeout_ms, ignore);
            if (!kf_cli_fold_exit(&rc, r))
                break;
        }
    } else {
        for (size_t i = 1; i < args->n_pos; i++) {
            int r = delete_one(cli, k, args->pos[i], wait, timeout_ms, ignore);

            if (!kf_cli_fold_exit(&rc, r))
                break;
        }
    }
release_inputs:
    kf_cli_inputs_release(&in);
    kf_strbuf_release(&err);
    return rc;
}
