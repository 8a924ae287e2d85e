/* cli-wait.c: the --wait of the commands that ask kfleetd for a long
 * operation on one guest cluster (`kfleet restore`, `kfleet migrate`). The
 * controllers say how far it got on the cluster itself (an annotation or a
 * condition) and record the request's id in an annotation when it is done;
 * this polls the cluster, prints the progress whenever it changes, and
 * returns when that annotation names the request. */
#include <stdio.h>
#include <string.h>

#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/strbuf.h"
#include "cli/cli.h"

#define POLL_MS 500

int kf_cli_wait_cluster(struct kf_cli *cli, const char *cluster, const char *id, int64_t timeout_ms,
                        const struct kf_cli_cluster_wait *w)
{
    uint64_t deadline = kf_mono_ns() + (uint64_t)timeout_ms * 1000000;
    size_t id_len = strcspn(id, " "); /* a request is named by its first word */
    char last[1024] = "";

    for (;;) {
        json_t *gc = NULL;
        const char *progress, *done;
        int rc = kf_cli_get_one(cli, &kf_kind_guestcluster, cluster, false, &gc);

        if (rc != KF_CLI_EXIT_OK)
            return rc;
        progress = w->progress(gc);
        done = json_string_value(
            json_object_get(kf_json_path(gc, "metadata.annotations"), w->done_key));
        if (progress && strcmp(progress, last) != 0) {
            fprintf(cli->out, "guestcluster/%s %s: %s\n", cluster, w->what, progress);
            fflush(cli->out);
            snprintf(last, sizeof(last), "%s", progress);
        }
        if (id_len && done && strlen(done) == id_len && !strncmp(done, id, id_len)) {
            fprintf(cli->out, "guestcluster/%s %s unit %s, endpoint %s\n", cluster, w->done_as,
                    kf_json_str(gc, "status.unit", "?"),
                    kf_json_str(gc, "status.endpoints.apiServer", "(none)"));
            json_decref(gc);
            return KF_CLI_EXIT_OK;
        }
        json_decref(gc);
        if (kf_mono_ns() >= deadline) {
            kf_cli_error(cli, "the %s of %s is not done after the timeout; it goes on", w->what,
                         cluster);
            return KF_CLI_EXIT_REFUSED;
        }
        kf_sleep_ms(POLL_MS);
    }
}
