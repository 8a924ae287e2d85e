"""test_guest_monitoring.py: the edge Prometheus scrapes guest control
planes that run upstream Kubernetes.

Real processes throughout: kfleetd with placement, lifecycle, the
endpoints controller (HAProxy) and --monitoring=local (edge, cascading and
central Prometheus, Alertmanagers, node_exporters), three meta agents, and
a guest cluster of the real Kubernetes profile (three etcd members,
kube-apiservers, controller managers and schedulers built by
scripts/install-kubernetes). What an operator sees is asserted:

  - the edge's targets page lists every kube-apiserver, controller manager
    and scheduler of the cluster, scraped over HTTPS with the cluster's own
    monitoring certificate, and each one is up;
  - `apiserver_request_total` at the edge comes labelled with the cluster,
    the component, the member, the unit and the zone;
  - the unit's aggregates (apiservers up, controller manager and scheduler
    up, etcd database against its quota) reach the central tier;
  - the identity's key lies beside the edge's config with mode 0600, and
    goes with the cluster.

Skipped, saying why, where the Kubernetes programs (scripts/install-kubernetes)
or Prometheus are not installed.
"""

import json
import os
import shutil
import tempfile
import urllib.parse

import kftest
import lifecycle_fixture as lf
from kftest import eventually, require

WAIT = 60  # seconds, any one condition (eventually() multiplies it under ASan)
CONTROLLERS = "profiles,host-lifecycle,unit-status,placement,lifecycle,monitoring"
K8S = {"kube-apiserver": "apiserver", "kube-controller-manager": "controller-manager",
       "kube-scheduler": "scheduler"}


def prom_get(port, path, params=None):
    try:
        c = kftest.connect(port, 5)
        c.request("GET", path + ("?" + urllib.parse.urlencode(params) if params else ""))
        r = c.getresponse()
        data = r.read()
        c.close()
        return json.loads(data)["data"] if r.status == 200 else None
    except (OSError, ValueError, KeyError):
        return None


def guest_targets(port, cluster):
    """The edge's active targets of the cluster's job."""
    data = prom_get(port, "/api/v1/targets", {"state": "active"}) or {}
    return [t for t in data.get("activeTargets", []) if t.get("scrapePool") == f"guest-{cluster}"]


def test_edge_scrapes_guest_kubernetes():
    require(kftest.have_monitoring_binaries(), "prometheus, alertmanager or node_exporter missing")
    lf.require_kubernetes()
    tmp = tempfile.mkdtemp(prefix="kftest-gmon-")
    tmp_cfg = os.path.join(tmp, "monitoring.json")
    with open(tmp_cfg, "w") as fh:
        json.dump({"scrapeInterval": "1s", "evaluationInterval": "1s",
                   "federationInterval": "1s", "peerTimeout": "1s",
                   "route": {"groupInterval": "4s"}}, fh)
    base = kftest.free_port_block(24)
    fleet = lf.Fleet(controllers=CONTROLLERS, kubernetes=True,
                     extra_args=["--monitoring", "local", "--monitoring-port-base", str(base),
                                 "--monitoring-config", tmp_cfg])
    try:
        run(fleet)
    finally:
        # kfleetd stops its stack on SIGTERM; after a failure, make sure
        kftest.kill_by_path(fleet.kd.data_dir)
        shutil.rmtree(tmp, ignore_errors=True)


def run(fleet):
    with fleet as f:
        kd = f.kd
        root = os.path.join(kd.data_dir, "monitoring")
        # the region's own timings win over the config's: quick ones
        r = kd.patch(kftest.path("regions", "local"), {"spec": {"monitoring": {
            "scrapeInterval": "1s", "federationInterval": "1s"}}})
        assert r.status == 200, r
        lf.k8s_profile(kd)
        lf.create_cluster(kd, "mon", profile="k8s-test")

        # what monitoring needs is the members running, not the cluster's
        # endpoint: wait for every Kubernetes member to be Ready
        def k8s_ready():
            ms = {m["metadata"]["name"]: m for m in lf.members(kd, "mon")
                  if m["spec"]["component"] in K8S}
            ok = len(ms) >= 3 and all(m.get("status", {}).get("phase") == "Ready"
                                      for m in ms.values())
            return ms if ok else None
        try:
            want = eventually(k8s_ready, timeout=180,
                              msg="the Kubernetes members of mon are not all Ready")
        except AssertionError:
            for m in lf.members(kd, "mon"):
                print(m["metadata"]["name"], json.dumps(m.get("status")))
            raise

        with open(os.path.join(root, "ports.json")) as fh:
            ports = json.load(fh)
        edge, central = ports["edge-u1"], ports["central-a"]

        # every Kubernetes member of the cluster is a target of its job, over
        # https, and answers with the cluster's monitoring certificate
        def all_up():
            ts = [t for t in guest_targets(edge, "mon") if t["labels"].get("component") in K8S]
            got = {t["labels"].get("member"): t for t in ts}
            if set(got) != set(want):
                return None
            if any(t["health"] != "up" for t in ts):
                return None
            return got
        try:
            got = eventually(all_up, timeout=WAIT,
                             msg="the edge does not scrape every Kubernetes member of mon")
        except AssertionError:
            print(json.dumps(guest_targets(edge, "mon"), indent=1))
            raise
        for name, t in got.items():
            m = want[name]
            lab = t["labels"]
            assert t["scrapeUrl"].startswith("https://"), t
            assert t["scrapeUrl"].endswith(f":{m['spec']['ports']['https']}/metrics"), t
            assert lab["cluster"] == "mon" and lab["unit"] == "u1", lab
            assert lab["component"] == m["spec"]["component"], lab
            assert lab["job"] == K8S[m["spec"]["component"]], lab
            assert lab["zone"] == m["spec"]["zone"] and lab["host"] == m["spec"]["host"], lab

        # the apiserver's own series, labelled as an operator filters them
        res = eventually(lambda: kftest.prom_query(
            edge, 'apiserver_request_total{cluster="mon"}'), timeout=WAIT,
            msg="no apiserver_request_total of mon at the edge")
        lab = res[0]["metric"]
        assert lab["component"] == "kube-apiserver" and lab["unit"] == "u1", lab
        assert lab["member"] in want and lab["zone"], lab
        # the controller manager's and the scheduler's too (authorised by the
        # apiserver for the group system:monitoring)
        for job in ("controller-manager", "scheduler"):
            eventually(lambda job=job: kftest.prom_query(
                edge, f'process_start_time_seconds{{cluster="mon",job="{job}"}}'), timeout=WAIT,
                msg=f"no series of mon's {job} at the edge")

        # the aggregates the alerts read reach the central tier
        n_api = sum(1 for m in want.values() if m["spec"]["component"] == "kube-apiserver")
        eventually(lambda: [r for r in kftest.prom_query(
            central, 'region:unit_apiserver_up:count{cluster="mon"}')
            if r["value"][1] == str(n_api)], timeout=WAIT,
            msg=f"central does not see {n_api} apiservers of mon up")
        for q in ('region:unit_k8s_component_up:count{cluster="mon",component="kube-scheduler"}',
                  'region:unit_etcd_db_quota:ratio{cluster="mon"}'):
            eventually(lambda q=q: kftest.prom_query(central, q), timeout=WAIT,
                       msg=f"no {q} at central")

        # the identity beside the config: the key is the edge's alone
        key = os.path.join(root, "edge-u1", "tls", "mon", "monitoring.key")
        assert os.stat(key).st_mode & 0o777 == 0o600
        with open(os.path.join(root, "edge-u1", "prometheus.yml")) as fh:
            cfg = fh.read()
        assert "job_name: 'guest-mon'" in cfg and "PRIVATE KEY" not in cfg

        # the cluster goes: so do its job and its files
        r = kd.delete(kftest.path("guestclusters", "mon"))
        assert r.status in (200, 202), r
        eventually(lambda: lf.cluster(kd, "mon") is None, timeout=WAIT,
                   msg="mon was not deleted")

        def job_gone():
            with open(os.path.join(root, "edge-u1", "prometheus.yml")) as fh:
                return "guest-mon" not in fh.read()
        eventually(job_gone, timeout=WAIT, msg="the edge still has mon's job")
        eventually(lambda: not os.path.exists(os.path.join(root, "edge-u1", "tls", "mon")),
                   timeout=WAIT, msg="mon's identity is still beside the edge's config")
        eventually(lambda: not guest_targets(edge, "mon"), timeout=WAIT,
                   msg="the edge still scrapes mon after a reload")


if __name__ == "__main__":
    kftest.main(globals())
