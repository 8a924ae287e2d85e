"""End-to-end monitoring with the real binaries: kfleetd --monitoring=local
runs edge, cascading and central Prometheus, two Alertmanagers and a
node_exporter for one host; a second host's node_exporter belongs to the
test. Asserts what an operator sees:

  - a series computed from the test host's exporter reaches the central
    tier labelled with its region and unit and without the labels the
    tiers drop (instance);
  - stopping that exporter fires KfleetHostDown, which arrives exactly once
    at a webhook receiver (through kfleetd's adapter) and once by email
    (Alertmanager's SMTP, to a sink), then resolves exactly once on both
    when the exporter comes back;
  - the host-down series is gone from the top tier well within a minute of
    the host coming back (federation without honor_timestamps: not five);
  - kfleetd records what it rendered, and stops the whole stack on SIGTERM.

Timings are shortened through --monitoring-config (1 s scrapes and
evaluations, 1 s group wait); the run is bound by Prometheus' 5 s target
discovery throttle and takes well under a minute.
"""

import json
import os
import subprocess
import tempfile
import time

import kftest
from kftest import API, eventually, require

WAIT = 60  # seconds, any one condition (multiplied under ASan)


def post(kd, plural, obj):
    r = kd.post(f"{API}/{plural}", obj)
    assert r.status == 201, r


def obj(kind, name, spec, annotations=None):
    meta = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": kftest.API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


def host_down_alerts(events, status):
    """Alerts KfleetHostDown for host h-test with `status` among webhook events."""
    out = []
    for _, path, headers, doc in events:
        if not doc:
            continue
        for a in doc.get("alerts", []):
            lab = a.get("labels", {})
            if (lab.get("alertname") == "KfleetHostDown" and lab.get("host") == "h-test"
                    and a.get("status") == status):
                out.append((doc, headers))
    return out


def mails(messages, word):
    return [m for m in messages if "KfleetHostDown" in m[3] and word in m[3]]


def test_three_tiers_and_alerts():
    require(kftest.have_monitoring_binaries(), "prometheus, alertmanager or node_exporter missing")
    hook = kftest.WebhookSink()
    smtp = kftest.SmtpSink()
    exporter = kftest.NodeExporter().start()
    tmp = tempfile.mkdtemp(prefix="kftest-mon-")
    base = kftest.free_port_block(24)
    cfg = {
        "scrapeInterval": "1s", "evaluationInterval": "1s", "federationInterval": "1s",
        "peerTimeout": "1s",
        "route": {"groupBy": ["alertname", "host"], "groupWait": "1s", "groupInterval": "4s",
                  "repeatInterval": "1h"},
        "alerts": {"KfleetHostDown": {"for": "2s"}},
        "smtp": {"smarthost": smtp.address, "from": "kfleet@example.invalid"},
        "dedupWindow": "5m",
    }
    with open(os.path.join(tmp, "monitoring.json"), "w") as f:
        json.dump(cfg, f)
    kd = kftest.Kfleetd(store="sqlite", controllers="monitoring", args=[
        "--monitoring", "local", "--monitoring-port-base", str(base),
        "--monitoring-config", os.path.join(tmp, "monitoring.json")])
    try:
        kd.start()
        post(kd, "regions", obj("Region", "r1", {
            "zones": ["z1"], "monitoring": {"scrapeInterval": "1s", "federationInterval": "1s",
                                            "replicas": 1}}))
        post(kd, "units", obj("Unit", "u1", {"region": "r1", "zones": ["z1"]}))
        # h-test: the test's exporter; h-kfleet: one kfleetd runs
        post(kd, "hosts", obj("Host", "h-test", {"role": "meta", "unit": "u1", "zone": "z1"},
                              {"monitoring.kfleet.io/node-exporter":
                               f"127.0.0.1:{exporter.port}"}))
        post(kd, "hosts", obj("Host", "h-kfleet", {"role": "meta", "unit": "u1", "zone": "z1"}))
        post(kd, "alertreceivers", obj("AlertReceiver", "ops-hook", {
            "type": "webhook", "webhook": {"url": f"{hook.url}/ops"}}))
        post(kd, "alertreceivers", obj("AlertReceiver", "ops-mail", {
            "type": "email", "email": {"to": ["oncall@example.invalid"]}}))
        post(kd, "alertroutes", obj("AlertRoute", "hosts-to-hook", {
            "receiver": "ops-hook", "continue": True,
            "matchers": [{"name": "alertname", "value": "KfleetHostDown"}]}))
        post(kd, "alertroutes", obj("AlertRoute", "hosts-to-mail", {
            "receiver": "ops-mail", "order": 1,
            "matchers": [{"name": "alertname", "value": "KfleetHostDown"}]}))

        ports = {}

        def stack_ports():
            try:
                with open(os.path.join(kd.data_dir, "monitoring", "ports.json")) as f:
                    ports.update(json.load(f))
            except (OSError, ValueError):
                return False
            return all(k in ports for k in ("central-a", "central-b", "edge-u1",
                                            "alertmanager-a", "node-h-kfleet"))
        eventually(stack_ports, timeout=20, msg="the stack's ports were not assigned")
        central = ports["central-a"]

        # 1. the test host's memory, aggregated at the edge, reaches central
        #    with region and unit and without instance
        q = 'region:unit_node_memory_utilisation:avg{unit="u1"}'
        res = eventually(lambda: kftest.prom_query(central, q), timeout=WAIT,
                         msg="no unit aggregate at the central tier")
        labels = res[0]["metric"]
        assert labels.get("region") == "r1" and labels.get("unit") == "u1", labels
        assert "instance" not in labels, labels
        # both hosts answer: the test's and the one kfleetd runs
        eventually(lambda: [r for r in kftest.prom_query(
            central, 'region:unit_hosts_up:count{unit="u1"}') if r["value"][1] == "2"],
            timeout=WAIT, msg="central does not see both hosts up")
        # the second central replica has the same view
        eventually(lambda: kftest.prom_query(ports["central-b"], q), timeout=WAIT)

        # kfleetd's fleet-state metrics, in a form promtool accepts
        assert kd.metric("kfleet_hosts", {"unit": "u1", "zone": "z1"}) == 2
        assert kd.metric("kfleet_unit_water_level_ratio", {"unit": "u1", "region": "r1"}) == 0.6
        check = subprocess.run(["/usr/bin/promtool", "check", "metrics"],
                               input=kd.metrics().encode(), capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr

        # 2. stop the exporter: one firing notification on each channel
        exporter.stop()
        t_stop = time.time()
        eventually(lambda: host_down_alerts(hook.snapshot(), "firing"), timeout=WAIT,
                   msg="no firing KfleetHostDown at the webhook")
        eventually(lambda: mails(smtp.snapshot(), "FIRING"), timeout=WAIT,
                   msg="no firing KfleetHostDown by email")
        doc, headers = host_down_alerts(hook.snapshot(), "firing")[0]
        assert doc["receiver"] == "ops-hook", doc
        assert "X-Kfleet-Idempotency-Key" in headers, headers
        assert doc["alerts"][0]["labels"]["region"] == "r1", doc
        assert doc["alerts"][0]["labels"]["unit"] == "u1", doc
        t_fire = min(e[0] for e in hook.snapshot() if host_down_alerts([e], "firing"))
        print(f"    exporter stopped -> notification at the webhook: {t_fire - t_stop:.1f}s",
              flush=True)
        # the dashboard's view of it: kfleetd's alerts action asks the
        # central Alertmanagers (the page cannot: another origin)
        def firing_at_kfleetd():
            r = kd.get(f"{API}/alerts")
            return r.status == 200 and [a for a in r.json["alerts"]
                                        if a["labels"].get("alertname") == "KfleetHostDown"]
        got = eventually(firing_at_kfleetd, timeout=WAIT,
                         msg="KfleetHostDown is not in GET /apis/kfleet.io/v1/alerts")
        assert got[0]["labels"]["unit"] == "u1" and got[0]["startsAt"], got

        # 3. the exporter comes back: one resolved notification on each
        exporter = kftest.NodeExporter(exporter.port).start()
        t_back = time.time()
        eventually(lambda: host_down_alerts(hook.snapshot(), "resolved"), timeout=WAIT,
                   msg="no resolved KfleetHostDown at the webhook")
        eventually(lambda: mails(smtp.snapshot(), "RESOLVED"), timeout=WAIT,
                   msg="no resolved KfleetHostDown by email")
        # the host's down flag is gone from the top tier within a minute
        eventually(lambda: not kftest.prom_query(
            central, 'region:unit_host_down:flag{host="h-test"}'), timeout=60,
            msg="the host-down series lingers at the top tier")
        print(f"    flag gone from central {time.time() - t_back:.1f}s after the host came back",
              flush=True)
        # Alertmanager HA and the adapter had time to duplicate: nothing did
        time.sleep(10)
        firing = host_down_alerts(hook.snapshot(), "firing")
        resolved = host_down_alerts(hook.snapshot(), "resolved")
        assert len(firing) == 1, [d for d, _ in firing]
        assert len(resolved) == 1, [d for d, _ in resolved]
        assert len(mails(smtp.snapshot(), "FIRING")) == 1, smtp.snapshot()
        assert len(mails(smtp.snapshot(), "RESOLVED")) == 1, smtp.snapshot()
        assert kd.metric("kfleet_alert_notifications_total",
                         {"receiver": "ops-hook", "outcome": "delivered"}) == 2

        # 4. receivers and routes say they are part of the configuration; what
        #    kfleetd did is in Events; secrets are not in rendered files
        for plural, name in (("alertreceivers", "ops-hook"), ("alertroutes", "hosts-to-mail")):
            cond = kd.get(f"{API}/{plural}/{name}").json["status"]["conditions"][0]
            assert cond["type"] == "Accepted" and cond["status"] == "True", cond
        post(kd, "alertroutes", obj("AlertRoute", "orphan", {"receiver": "ops-hook",
                                                             "parent": "no-such-route"}))
        eventually(lambda: kd.get(f"{API}/alertroutes/orphan").json.get("status", {}).get(
            "conditions", [{}])[0].get("reason") == "RouteNotPlaced", timeout=20,
            msg="a route whose parent is missing does not say so")
        evs = kd.get(f"{API}/events").json["items"]
        reasons = {e["spec"]["reason"] for e in evs}
        assert "Rendered" in reasons, reasons
        assert "AlertmanagerClusterSettled" in reasons, reasons
        tokfile = os.path.join(kd.data_dir, "monitoring", ".adapter", "token")
        assert os.stat(tokfile).st_mode & 0o077 == 0
        with open(tokfile) as f:
            token = f.read().strip()
        with open(os.path.join(kd.data_dir, "monitoring", "alertmanager-a",
                               "alertmanager.yml")) as f:
            assert token not in f.read()
        # the adapter refuses a webhook without the token
        r = kd.post("/alerts/v1/receivers/ops-hook", {"version": "4"})
        assert r.status == 401, r

        # 5. a crashed kfleetd leaves the stack running; the next one adopts
        #    it (no process started twice) and SIGTERM stops kfleetd and
        #    every process of the stack
        stack = sorted(kftest.pids_by_path(os.path.join(kd.data_dir, "monitoring")))
        assert len(stack) >= 7, stack  # 2 central, cascade, edge, 2 AM, node_exporter
        kd.kill()
        assert kftest.prom_query(central, q), "central died with kfleetd"
        kd.start()
        eventually(lambda: kd.metric("kfleet_monitoring_alertmanager_cluster_members",
                                     {"instance": "alertmanager-a"}) == 2,
                   timeout=WAIT, msg="the restarted kfleetd did not take the stack back")
        assert sorted(kftest.pids_by_path(os.path.join(kd.data_dir, "monitoring"))) == stack
        kd.stop()
        eventually(lambda: not kftest.pids_by_path(os.path.join(kd.data_dir, "monitoring")),
                   timeout=20, msg="monitoring processes outlived kfleetd")
        # every process of the stack is gone, by PID (not by probing its
        # port: tests running in parallel may take a freed port at once)
        for pid in stack:
            try:
                os.kill(pid, 0)
                raise AssertionError(f"monitoring process {pid} outlived kfleetd")
            except ProcessLookupError:
                pass
    except BaseException:
        print("--- kfleetd log (tail) ---\n" + kd.log_tail(80))
        raise
    finally:
        exporter.stop()
        kd.close()
        kftest.kill_by_path(kd.data_dir)
        hook.close()
        smtp.close()


if __name__ == "__main__":
    kftest.main(globals())
