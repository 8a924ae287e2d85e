/* cli-apply.c: `kfleet apply -f FILE|DIR|-`: make the server's objects say
 * what the files say. Each object is created when it does not exist;
 * otherwise it is changed with a JSON merge patch (RFC 7386), computed the
 * way kubectl's client-side apply does it:
 *
 *   - every field the file sets is sent;
 *   - a field the previous apply set (kept in the annotation
 *     kfleet.io/last-applied-configuration) that the file no longer has is
 *     sent as null, i.e. removed;
 *   - fields nobody applied (defaults, finalizers and labels that
 *     controllers add, status) are not mentioned, so they stay.
 *
 * Why a merge patch rather than GET + PUT with the resourceVersion: a PUT
 * replaces the whole object, so the client would have to carry over every
 * field someone else owns (a finalizer a controller just added, defaults)
 * and retry on each 409 while controllers keep writing; the patch names only
 * what apply owns and the server applies it atomically, retrying its own
 * read-modify-write. Before patching, the patch is applied locally to the
 * object just read: if nothing would change, nothing is sent and the object
 * is reported `unchanged`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

const struct kf_cli_opt kf_cli_apply_opts[] = {
    { "filename", 'f', KF_CLI_LIST, "FILE",
      "a YAML or JSON file, a directory of them, or - for stdin" },
    { NULL, 0, 0, NULL, NULL },
};

static json_t *patch_of(const json_t *desired, const json_t *last)
{
    json_t *patch = json_object(), *v;
    const char *key;

    json_object_foreach((json_t *)desired, key, v)
    {
        const json_t *before = json_object_get(last, key);

        if (json_is_object(v) && json_is_object(before))
            json_object_set_new(patch, key, patch_of(v, before));
        else
            json_object_set_new(patch, key, json_deep_copy(v));
    }
    json_object_foreach((json_t *)last, key, v)
    {
        if (!json_object_get(desired, key))
            json_object_set_new(patch, key, json_null());
    }
    return patch;
}

json_t *kf_cli_apply_patch(const json_t *desired, const json_t *last)
{
    json_t *patch = patch_of(desired, json_is_object(last) ? last : NULL);
    char *text = kf_json_dump(desired, NULL);
    json_t *ann = kf_json_ensure_obj(patch, "metadata.annotations");

    json_object_set_new(ann, KF_CLI_LAST_APPLIED, json_string(text));
    free(text);
    return patch;
}

/* What the file asks for, without what the server owns. */
static json_t *desired_of(const struct kf_kind *k, const json_t *in)
{
    json_t *d = json_deep_copy(in);
    json_t *meta = json_object_get(d, "metadata");
    json_t *ann = json_object_get(meta, "annotations");
    static const char *const server_owned[] = {
        "resourceVersion", "uid", "creationTimestamp", "generation", "deletionTimestamp",
    };

    if (!json_object_get(d, "apiVersion"))
        json_object_set_new(d, "apiVersion", json_string(KF_API_VERSION));
    for (size_t i = 0; i < KF_ARRAY_SIZE(server_owned); i++)
        json_object_del(meta, server_owned[i]);
    if (json_is_object(ann)) {
        json_object_del(ann, KF_CLI_LAST_APPLIED);
        if (json_object_size(ann) == 0)
            json_object_del(meta, "annotations");
    }
    if (k->has_status)
        json_object_del(d, "status");
    return d;
}

/* What the previous apply wrote, or NULL. (The annotation's key has dots,
 * so it is looked up by hand, not as a dotted path.) */
static json_t *last_applied(const json_t *live)
{
    const json_t *ann = kf_json_path(live, "metadata.annotations");
    const char *text = json_string_value(json_object_get(ann, KF_CLI_LAST_APPLIED));
    json_t *v = NULL;

    if (!text || kf_json_parse(text, strlen(text), &v, NULL) < 0 || !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static int create(struct kf_cli *cli, const struct kf_kind *k, const json_t *desired,
                  const char *ref, bool *ret_exists)
{
    struct kf_cli_response resp = { 0 };
    json_t *body = json_deep_copy(desired);
    json_t *patch = kf_cli_apply_patch(desired, NULL);
    char *path = kf_cli_path(k, NULL), *text;
    size_t len;
    int rc;

    /* The object as created carries the annotation a patch would set. */
    json_object_set(
        kf_json_ensure_obj(body, "metadata.annotations"), KF_CLI_LAST_APPLIED,
        json_object_get(kf_json_path(patch, "metadata.annotations"), KF_CLI_LAST_APPLIED));
    text = kf_json_dump(body, &len);
    *ret_exists = false;
    if (kf_cli_request(cli, "POST", path, "application/json", text, len, &resp) < 0) {
        rc = KF_CLI_EXIT_UNREACHABLE;
    } else if (resp.status == 201 || resp.status == 200) {
        fprintf(cli->out, "%s created\n", ref);
        rc = KF_CLI_EXIT_OK;
    } else if (resp.status == 409 &&
               kf_streq(kf_json_str(resp.json, "reason", ""), "AlreadyExists")) {
        *ret_exists = true; /* created meanwhile: the caller patches it */
        rc = KF_CLI_EXIT_OK;
    } else {
        rc = kf_cli_report_status(cli, &resp, ref);
    }
    kf_cli_response_release(&resp);
    free(text);
    free(path);
    json_decref(patch);
    json_decref(body);
    return rc;
}

static int configure(struct kf_cli *cli, const struct kf_kind *k, const json_t *desired,
                     const json_t *live, const char *ref)
{
    struct kf_cli_response resp = { 0 };
    json_t *last = last_applied(live);
    json_t *patch = kf_cli_apply_patch(desired, last);
    json_t *preview = kf_json_merge_patch(live, patch);
    char *path = NULL, *text = NULL;
    size_t len;
    int rc;

    if (json_equal(preview, live)) {
        fprintf(cli->out, "%s unchanged\n", ref);
        rc = KF_CLI_EXIT_OK;
        goto release_resp;
    }
    path = kf_cli_path(k, kf_obj_name(live));
    text = kf_json_dump(patch, &len);
    if (kf_cli_request(cli, "PATCH", path, "application/merge-patch+json", text, len, &resp) < 0) {
        rc = KF_CLI_EXIT_UNREACHABLE;
    } else if (resp.status == 200) {
        /* The server may have normalized what we sent back to what it had. */
        bool same = kf_streq(kf_json_str(resp.json, "metadata.resourceVersion", ""),
                             kf_json_str(live, "metadata.resourceVersion", "?"));

        fprintf(cli->out, "%s %s\n", ref, same ? "unchanged" : "configured");
        rc = KF_CLI_EXIT_OK;
    } else {
        rc = kf_cli_report_status(cli, &resp, ref);
    }
release_resp:
    kf_cli_response_release(&resp);
    free(text);
    free(path);
    json_decref(preview);
    json_decref(patch);
    json_decref(last);
    return rc;
}

static int apply_one(struct kf_cli *cli, const struct kf_cli_input_obj *in)
{
    struct kf_strbuf err = KF_STRBUF_INIT;
    const struct kf_kind *k;
    json_t *desired = NULL;
    char *ref = NULL;
    int rc;

    if (kf_cli_input_kind(in->obj, &k, &err) < 0) {
        kf_cli_error(cli, "%s: %s", in->source, err.buf);
        kf_strbuf_release(&err);
        return KF_CLI_EXIT_USAGE;
    }
    desired = desired_of(k, in->obj);
    ref = kf_cli_ref(k, kf_obj_name(desired));
    for (int attempt = 0;; attempt++) {
        json_t *live = NULL;
        bool exists = false;

        rc = kf_cli_get_one(cli, k, kf_obj_name(desired), true, &live);
        if (rc == KF_CLI_EXIT_NOTFOUND) {
            rc = create(cli, k, desired, ref, &exists);
            if (rc == KF_CLI_EXIT_OK && exists && attempt == 0)
                continue;
            if (exists)
                rc = KF_CLI_EXIT_REFUSED;
        } else if (rc == KF_CLI_EXIT_OK) {
            rc = configure(cli, k, desired, live, ref);
        }
        json_decref(live);
        break;
    }
    free(ref);
    json_decref(desired);
    return rc;
}

int kf_cli_cmd_apply(struct kf_cli *cli, const struct kf_cli_args *args)
{
    struct kf_cli_inputs in = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    int rc = KF_CLI_EXIT_OK;

    if (!kf_cli_args_has(args, "filename")) {
        kf_cli_error(cli, "kfleet apply needs -f FILE (a file, a directory or - for stdin)");
        return KF_CLI_EXIT_USAGE;
    }
    if (args->n_pos > 0) {
        kf_cli_error(cli, "kfleet apply takes no arguments besides -f (got \"%s\")", args->pos[0]);
        return KF_CLI_EXIT_USAGE;
    }
    /* Read everything first: a typo in the third file sends nothing. */
    if (kf_cli_input_read_args(args, stdin, &in, &err) < 0) {
        kf_cli_error(cli, "%s", err.buf);
        rc = KF_CLI_EXIT_USAGE;
        goto release_inputs;
    }
    if (in.n == 0) {
        kf_cli_error(cli, "no objects to apply in the given files");
        rc = KF_CLI_EXIT_USAGE;
        goto release_inputs;
    }
    rc = kf_cli_connect(cli);
    if (rc)
        goto release_inputs;
    for (size_t i = 0; i < in.n; i++) {
        if (!kf_cli_fold_exit(&rc, apply_one(cli, &in.items[i])))
            break;
    }
release_inputs:
    kf_cli_inputs_release(&in);
    kf_strbuf_release(&err);
    return rc;
}
