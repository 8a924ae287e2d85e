/* cli-rollout.c: `kfleet rollout status|pause|resume|abort RELEASE`.
 *
 * status prints a Release's progress: a line for the release (target,
 * phase, current wave, why it is paused) and a progress bar per wave
 * (updated #, failed x, upgrading > of the wave's clusters), and exits as
 * `kubectl rollout status` does: 0 when the release completed (or, without
 * --watch, is still progressing), KF_CLI_EXIT_ROLLOUT_STOPPED when it is
 * paused or aborted. --watch prints the view again whenever it changes
 * until the release completes, pauses or is aborted (or --timeout).
 *
 * pause, resume and abort are merge patches of spec.paused and spec.abort,
 * which the Release controller acts on (admin only, as every Release
 * write). */
#include <stdlib.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/release.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

#define BAR_WIDTH   40
#define POLL_MS     1000
#define NAME_COLUMN 16

const struct kf_cli_opt kf_cli_rollout_opts[] = {
    { "watch", 'w', KF_CLI_FLAG, NULL, "status: follow the release until it completes or stops" },
    { "timeout", 0, KF_CLI_VALUE, "DURATION", "status --watch: give up after this long" },
    { NULL, 0, 0, NULL, NULL },
};

static void bar(struct kf_strbuf *out, int64_t total, int64_t ok, int64_t bad, int64_t act)
{
    int n_ok = 0, n_bad = 0, n_act = 0;

    if (total > 0) {
        n_ok = (int)(ok * BAR_WIDTH / total);
        n_bad = (int)(bad * BAR_WIDTH / total);
        n_act = (int)(act * BAR_WIDTH / total);
        n_ok += ok && !n_ok, n_bad += bad && !n_bad, n_act += act && !n_act;
        while (n_ok + n_bad + n_act > BAR_WIDTH)
            n_ok > 1 ? n_ok-- : n_act > 1 ? n_act-- : n_bad--;
    }
    kf_strbuf_addch(out, '[');
    for (int i = 0; i < BAR_WIDTH; i++)
        kf_strbuf_addch(out, i < n_ok                   ? '#'
                             : i < n_ok + n_bad         ? 'x'
                             : i < n_ok + n_bad + n_act ? '>'
                                                        : '.');
    kf_strbuf_addch(out, ']');
}

void kf_cli_rollout_format(const json_t *rel, struct kf_strbuf *out)
{
    const json_t *waves = kf_json_path(rel, "status.waves"), *w;
    const char *target = kf_json_str(rel, "status.targetVersion", NULL);
    size_t i;

    if (!target)
        target = kf_json_str(rel, "spec.version", "?");
    kf_strbuf_addf(out, "release %s: %s, %s", kf_obj_name(rel), target,
                   kf_json_str(rel, "status.phase", "Pending (not seen by the controller yet)"));
    if (json_array_size(waves))
        kf_strbuf_addf(out, ", wave %lld/%zu",
                       (long long)kf_json_int(rel, "status.currentWave", 0) + 1,
                       json_array_size(waves));
    kf_strbuf_addf(out, ", %lld/%lld clusters updated, %lld failed\n",
                   (long long)kf_json_int(rel, "status.clusters.updated", 0),
                   (long long)kf_json_int(rel, "status.clusters.total", 0),
                   (long long)kf_json_int(rel, "status.clusters.failed", 0));
    json_array_foreach(waves, i, w)
    {
        int64_t total = kf_json_int(w, "clusters", 0), waiting;

        kf_strbuf_addf(out, "  %-*s ", NAME_COLUMN, kf_json_str(w, "name", ""));
        bar(out, total, kf_json_int(w, "updated", 0) + kf_json_int(w, "skipped", 0),
            kf_json_int(w, "failed", 0), kf_json_int(w, "inProgress", 0));
        kf_strbuf_addf(out, " %lld/%lld updated", (long long)kf_json_int(w, "updated", 0),
                       (long long)total);
        if (kf_json_int(w, "inProgress", 0))
            kf_strbuf_addf(out, ", %lld upgrading", (long long)kf_json_int(w, "inProgress", 0));
        if (kf_json_int(w, "failed", 0))
            kf_strbuf_addf(out, ", %lld failed", (long long)kf_json_int(w, "failed", 0));
        if ((waiting = kf_json_int(w, "waitingForWindow", 0)))
            kf_strbuf_addf(out, ", %lld waiting for their window", (long long)waiting);
        kf_strbuf_addf(out, "  %s\n", kf_json_str(w, "state", "Pending"));
    }
    if (kf_json_path(rel, "status.pause"))
        kf_strbuf_addf(out, "paused: %s: %s\n", kf_json_str(rel, "status.pause.reason", ""),
                       kf_json_str(rel, "status.pause.message", ""));
    if (kf_json_str(rel, "status.gate.error", NULL))
        kf_strbuf_addf(out, "health gate: %s\n", kf_json_str(rel, "status.gate.error", ""));
}

/* Whether the release is over for `rollout status`, and its exit code. */
bool kf_cli_rollout_finished(const json_t *rel, int *ret_exit)
{
    const char *phase = kf_json_str(rel, "status.phase", "");
    bool current = kf_json_int(rel, "status.observedGeneration", 0) ==
                   kf_json_int(rel, "metadata.generation", -1);

    if (!current)
        return false;
    if (!strcmp(phase, KF_REL_PHASE_COMPLETED)) {
        *ret_exit = KF_CLI_EXIT_OK;
        return true;
    }
    if (!strcmp(phase, KF_REL_PHASE_PAUSED) || !strcmp(phase, KF_REL_PHASE_ABORTED)) {
        *ret_exit = KF_CLI_EXIT_ROLLOUT_STOPPED;
        return true;
    }
    return false;
}

static int status(struct kf_cli *cli, const char *name, bool watch, int64_t timeout_ms)
{
    struct kf_strbuf last = KF_STRBUF_INIT, view = KF_STRBUF_INIT;
    int64_t deadline = timeout_ms > 0 ? kf_now_ms() + timeout_ms : 0;
    int rc;

    for (;;) {
        json_t *rel = NULL;
        int code = KF_CLI_EXIT_OK;
        bool over;

        rc = kf_cli_get_one(cli, &kf_kind_release, name, false, &rel);
        if (rc != KF_CLI_EXIT_OK)
            break;
        kf_strbuf_reset(&view);
        kf_cli_rollout_format(rel, &view);
        if (!last.buf || strcmp(last.buf, view.buf) != 0) {
            fputs(view.buf, cli->out);
            fflush(cli->out);
            kf_strbuf_reset(&last);
            kf_strbuf_addstr(&last, view.buf);
        }
        over = kf_cli_rollout_finished(rel, &code);
        json_decref(rel);
        if (over || !watch) {
            rc = code;
            break;
        }
        if (deadline && kf_now_ms() >= deadline) {
            kf_cli_error(cli, "release \"%s\" is still progressing after --timeout", name);
            rc = KF_CLI_EXIT_ROLLOUT_STOPPED;
            break;
        }
        kf_sleep_ms(POLL_MS);
    }
    kf_strbuf_release(&last);
    kf_strbuf_release(&view);
    return rc;
}

static int set(struct kf_cli *cli, const char *name, const char *patch, const char *done)
{
    struct kf_cli_response resp = { 0 };
    char *path = kf_cli_path(&kf_kind_release, name);
    int rc;

    if (kf_cli_request(cli, "PATCH", path, "application/merge-patch+json", patch, strlen(patch),
                       &resp) < 0) {
        rc = KF_CLI_EXIT_UNREACHABLE;
    } else if (resp.status < 200 || resp.status >= 300) {
        rc = kf_cli_report_status(cli, &resp, "release");
    } else {
        fprintf(cli->out, "release/%s %s\n", name, done);
        rc = KF_CLI_EXIT_OK;
    }
    kf_cli_response_release(&resp);
    free(path);
    return rc;
}

int kf_cli_cmd_rollout(struct kf_cli *cli, const struct kf_cli_args *args)
{
    const char *verb = args->n_pos > 0 ? args->pos[0] : NULL;
    const char *name = args->n_pos > 1 ? args->pos[1] : NULL;
    const char *timeout = kf_cli_args_get(args, "timeout");
    int64_t timeout_ms = 0;
    int rc;

    if (!verb || !name || args->n_pos != 2) {
        kf_cli_error(cli, "usage: kfleet rollout status|pause|resume|abort RELEASE");
        return KF_CLI_EXIT_USAGE;
    }
    if (timeout && (kf_parse_duration_ms(timeout, &timeout_ms) < 0 || timeout_ms <= 0)) {
        kf_cli_error(cli, "--timeout takes a duration like 30s or 5m, not \"%s\"", timeout);
        return KF_CLI_EXIT_USAGE;
    }
    if (strcmp(verb, "status") && strcmp(verb, "pause") && strcmp(verb, "resume") &&
        strcmp(verb, "abort")) {
        kf_cli_error(cli, "unknown rollout command \"%s\": status, pause, resume or abort", verb);
        return KF_CLI_EXIT_USAGE;
    }
    rc = kf_cli_connect(cli);
    if (rc)
        return rc;
    if (!strcmp(verb, "status"))
        return status(cli, name, kf_cli_args_has(args, "watch"), timeout_ms);
    if (!strcmp(verb, "pause"))
        return set(cli, name, "{\"spec\":{\"paused\":true}}", "paused");
    if (!strcmp(verb, "resume"))
        return set(cli, name, "{\"spec\":{\"paused\":false}}", "resumed");
    return set(cli, name, "{\"spec\":{\"abort\":true}}", "aborted");
}
