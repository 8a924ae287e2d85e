/* daemon-heartbeats.c: host heartbeats shared between kfleetd replicas.
 *
 * On an etcd store (several replicas, an election) every replica reports the
 * hosts that beat to it and renews what the others report, so that the
 * leader's host-lifecycle controller sees every heartbeat whichever replica
 * took it, and a follower that becomes the leader starts with a warm lease
 * table (kfleet/lease-share.h does the work; docs/internals/replicas.md says
 * why it is safe). With one writer (sqlite:, memory:) there is one lease
 * table and nothing runs here.
 *
 * Timing comes from the host grace: a host stays in this replica's report
 * while it beat here within grace/2 (longer than any sane heartbeat period),
 * and reports go out every --heartbeat-report-interval, at most every
 * grace/4: a host that beats only here then never looks silent to the
 * leader for longer than window + interval + transit < grace.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/capacity.h"
#include "kfleet/kind.h"
#include "kfleet/lease-share.h"
#include "kfleet/log.h"
#include "kfleet/obs-metrics.h"
#include "kfleet/strbuf.h"
#include "daemon/daemon.h"

KF_LOG_MODULE(heartbeats);

enum stat_field {
    S_REPORTS,
    S_REPORT_FAILURES,
    S_BASES,
    S_BYTES,
    S_IMPORTS,
    S_IMPORT_FAILURES,
    S_RENEWALS,
    S_PEERS_LOST,
    S_PEERS,
    S_REPORTED_HOSTS,
    N_STATS
};

static const struct {
    enum kf_metric_type type;
    const char *name, *help;
} families[N_STATS] = {
    { KF_METRIC_COUNTER, "kfleet_heartbeat_share_reports_total",
      "Heartbeat reports (ticks) this replica wrote for the other replicas." },
    { KF_METRIC_COUNTER, "kfleet_heartbeat_share_report_failures_total",
      "Heartbeat reports that could not be written (the store did not take them)." },
    { KF_METRIC_COUNTER, "kfleet_heartbeat_share_bases_total",
      "Base snapshots of this replica's heartbeat report written (the set changed enough)." },
    { KF_METRIC_COUNTER, "kfleet_heartbeat_share_written_bytes_total",
      "Bytes of values this replica wrote to share heartbeats (ticks and bases)." },
    { KF_METRIC_COUNTER, "kfleet_heartbeat_share_imports_total",
      "Heartbeat reports of other replicas read and applied." },
    { KF_METRIC_COUNTER, "kfleet_heartbeat_share_import_failures_total",
      "Heartbeat reports of other replicas that could not be applied (unreadable, or their "
      "base could not be read)." },
    { KF_METRIC_COUNTER, "kfleet_heartbeat_share_renewals_total",
      "Host leases renewed from other replicas' reports." },
    { KF_METRIC_COUNTER, "kfleet_heartbeat_share_peers_lost_total",
      "Replicas that stopped reporting (stopped, or silent for 3 intervals + 1 s); their "
      "hosts got a full grace to move." },
    { KF_METRIC_GAUGE, "kfleet_heartbeat_share_peers",
      "Other replicas whose heartbeat reports this replica follows." },
    { KF_METRIC_GAUGE, "kfleet_heartbeat_share_reported_hosts",
      "Hosts in this replica's last heartbeat report (those that beat to it recently)." },
};

struct daemon_heartbeats;

struct collector {
    struct daemon_heartbeats *h;
    enum stat_field field;
};

/* Lives until kfleetd stops serving (the metrics point into it, like the
 * leader's; no scrape comes after the API stopped). */
struct daemon_heartbeats {
    struct kf_lease_share *sh;
    struct collector collectors[N_STATS];
};

static void collect(struct kf_metric *f, void *arg)
{
    const struct collector *c = arg;
    struct kf_lease_share_stats st;
    double v = 0;

    kf_lease_share_stats(c->h->sh, &st);
    switch (c->field) {
    case S_REPORTS:
        v = (double)st.reports;
        break;
    case S_REPORT_FAILURES:
        v = (double)st.report_failures;
        break;
    case S_BASES:
        v = (double)st.bases;
        break;
    case S_BYTES:
        v = (double)st.bytes;
        break;
    case S_IMPORTS:
        v = (double)st.imports;
        break;
    case S_IMPORT_FAILURES:
        v = (double)st.import_failures;
        break;
    case S_RENEWALS:
        v = (double)st.renewals;
        break;
    case S_PEERS_LOST:
        v = (double)st.peers_lost;
        break;
    case S_PEERS:
        v = (double)st.peers;
        break;
    case S_REPORTED_HOSTS:
        v = (double)st.reported_hosts;
        break;
    case N_STATS:
        break;
    }
    kf_metric_set(f, NULL, v);
}

int kf_daemon_heartbeats_start(struct kf_daemon *d, const struct daemon_heartbeats_config *c,
                               struct daemon_heartbeats **ret, struct kf_strbuf *err)
{
    int64_t grace = c->host_grace_ms > 0 ? c->host_grace_ms : KF_CAPACITY_HOST_GRACE_MS;
    char hosts_prefix[64];
    struct kf_lease_share_config sc = {
        .replica_id = c->replica_id,
        .window_ms = grace / 2,
        .interval_ms = KF_MAX(KF_MIN(c->interval_ms, grace / 4), 10),
        .forget_prefix = hosts_prefix,
    };
    struct daemon_heartbeats *h;
    int r;

    snprintf(hosts_prefix, sizeof(hosts_prefix), "/%s/", kf_kind_host.plural);
    h = kf_xcalloc(1, sizeof(*h));

    r = kf_lease_share_new(d->store, d->leases, &sc, &h->sh, err);
    if (r == 0)
        r = kf_lease_share_start(h->sh, err);
    if (r < 0) {
        kf_lease_share_free(h->sh);
        free(h);
        return r;
    }
    for (int i = 0; i < N_STATS; i++) {
        h->collectors[i] = (struct collector){ h, (enum stat_field)i };
        kf_metrics_collected(d->metrics, families[i].type, families[i].name, families[i].help, NULL,
                             collect, &h->collectors[i]);
    }
    kf_log_info("sharing host heartbeats with the other replicas: a report every %lld ms of the "
                "hosts that beat here within %lld ms",
                (long long)sc.interval_ms, (long long)sc.window_ms);
    *ret = h;
    return 0;
}

void kf_daemon_heartbeats_stop(struct daemon_heartbeats *h)
{
    if (!h)
        return;
    kf_lease_share_free(h->sh);
    free(h);
}
