"""A Release over real guest clusters: three agents run three etcd-only
guest clusters (real etcd members, one per zone) on unit u1; a Release
with a canary wave asks a real Prometheus whose alert fires for the canary
on purpose. What a user sees:

  - a viewer may read Releases but not write them; an editor may not
    write them either (admin only, as every kind that changes what runs on
    hosts);
  - a Release whose selector matches nothing, whose waves overlap, or
    whose target the catalog lacks is refused with the reason;
  - the canary is moved to the target and nothing else; the gate fails;
    the release pauses itself (spec.paused, status.pause.reason
    HealthGateFailed naming the alert and the cluster), `kfleet rollout
    status` shows a bar per wave and exits 7, and events say what moved
    and why;
  - kfleetd killed and started again finds it paused where it was, and
    writes no cluster again;
  - `kfleet rollout resume` while the alert still fires pauses it again;
    `kfleet rollout abort` ends it for good (exit 7, Aborted), the other
    clusters never moved.

The clusters run the older of the catalog's two minors and the Release
takes them to the newer: the canary is really upgraded by the upgrade
engine (its status.version follows, the Upgraded condition is True)
before the gate stops the rest.
"""

import os
import subprocess
import tempfile

import kftest
import lifecycle_fixture as lf
from kftest import eventually, path

KFLEET = os.path.join(kftest.BIN_DIR, "kfleet")
OLD, TARGET = "1.36", lf.K8S_VERSION
VIEWER = "viewer-token-0123456789"
EDITOR = "editor-token-0123456789"


class Prometheus:
    """A real Prometheus whose rule fires the alert CanaryBroken for
    cluster g1, every second."""

    def __init__(self, tmp):
        self.port = kftest.free_port()
        self.dir = os.path.join(tmp, "prometheus")
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "rules.yml"), "w") as f:
            f.write("groups:\n- name: release-test\n  interval: 1s\n  rules:\n"
                    "  - alert: CanaryBroken\n"
                    "    expr: label_replace(vector(1), \"cluster\", \"g1\", \"\", \"\")\n")
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("global:\n  evaluation_interval: 1s\nrule_files:\n- rules.yml\n")
        self.proc = None

    def start(self):
        self.proc = kftest.track(subprocess.Popen(
            [kftest.PROMETHEUS, f"--config.file={self.dir}/prometheus.yml",
             f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir))
        eventually(lambda: kftest.prom_query(self.port, 'ALERTS{alertstate="firing"}'),
                   timeout=30, msg="the alert did not fire")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def kfleet(kd, *args, expect=0):
    e = {k: v for k, v in os.environ.items() if not k.startswith("KFLEET_")}
    e.update(KFLEET_SERVER=kd.url, KFLEET_TOKEN=kd.admin_token,
             HOME=tempfile.mkdtemp(prefix="kftest-rel-home-"))
    p = subprocess.run([KFLEET, *args], capture_output=True, text=True, env=e,
                       timeout=60 * kftest.SLOW)
    assert p.returncode == expect, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def release(name, spec):
    return {"apiVersion": "kfleet.io/v1", "kind": "Release", "metadata": {"name": name},
            "spec": spec}


def refused(kd, spec, text):
    r = kd.post(path("releases"), release("bad", spec))
    assert r.status == 422, r
    assert text in r.json["message"], r.json["message"]


def spec_version(kd, name):
    return lf.cluster(kd, name)["spec"].get("version")


def events(kd, name):
    r = kd.get(path("events"), params={"fieldSelector": f"spec.involvedObject.name={name}"})
    assert r.status == 200, r
    return [(e["spec"]["reason"], e["spec"]["message"]) for e in r.json["items"]]


def test_release_canary_gate_pauses():
    with lf.Fleet(controllers="profiles,host-lifecycle,unit-status,placement,lifecycle,"
                              "release") as f:
        kd = f.kd
        lf.etcd_profile(kd, versions=(OLD, TARGET))
        for c in ("g1", "g2", "g3"):
            lf.create_cluster(kd, c, version=OLD)
        for c in ("g1", "g2", "g3"):
            lf.wait_phase(kd, c, "Running", timeout=60 * kftest.SLOW)
        prom = Prometheus(f.tmp).start()
        try:
            good = {"version": TARGET,
                    "waves": [{"name": "canary", "clusters": ["g1"]},
                              {"name": "rest", "maxConcurrency": 2}],
                    "healthGate": {"alerts": ["CanaryBroken"],
                                   "prometheus": f"http://127.0.0.1:{prom.port}",
                                   "interval": "1s"}}
            # who may write it
            r = kd.post(path("releases"), release("rel", good), token=VIEWER)
            assert r.status == 403, r
            r = kd.post(path("releases"), release("rel", good), token=EDITOR)
            assert r.status == 403, r
            # bad input, refused with the reason
            refused(kd, dict(good, selector={"matchLabels": {"tier": "gold"}}),
                    "selects no GuestCluster")
            refused(kd, dict(good, waves=[{"name": "a", "clusters": ["g1", "g2"]},
                                          {"name": "b", "clusters": ["g2"]}]),
                    'waves overlap: cluster "g2" is in wave "a" and in wave "b"')
            refused(kd, dict(good, version="1.99"), "the component catalog runs Kubernetes")

            r = kd.post(path("releases"), release("rel", good))
            assert r.status == 201, r

            def paused():
                rel = kd.get(path("releases", "rel")).json
                return rel.get("status", {}).get("phase") == "Paused" and rel
            rel = eventually(paused, timeout=60 * kftest.SLOW, msg="the release did not pause")
            st = rel["status"]
            assert rel["spec"]["paused"] is True
            assert st["pause"]["reason"] == "HealthGateFailed", st
            assert 'CanaryBroken fires for cluster "g1"' in st["pause"]["message"], st
            assert st["waves"][0]["name"] == "canary" and st["waves"][0]["clusters"] == 1
            assert st["waves"][1]["clusters"] == 2
            # the canary moved, nothing else did
            assert spec_version(kd, "g1") == TARGET
            g1 = lf.cluster(kd, "g1")
            assert g1["metadata"]["annotations"]["kfleet.io/release"] == "rel"
            assert spec_version(kd, "g2") == OLD
            assert spec_version(kd, "g3") == OLD
            # the engine upgraded the canary; the others still run the old minor

            def canary_upgraded():
                st = lf.cluster(kd, "g1").get("status", {})
                cond = [c for c in st.get("conditions", []) if c["type"] == "Upgraded"]
                return (st.get("version") == TARGET and cond and cond[0]["status"] == "True"
                        and st.get("phase") == "Running")
            eventually(canary_upgraded, timeout=60 * kftest.SLOW,
                       msg="the canary was not upgraded")
            for c in ("g2", "g3"):
                assert lf.cluster(kd, c)["status"]["version"] == OLD

            # kfleetd killed while the release holds comes back where it was,
            # and moves no cluster again
            gen = {c: lf.cluster(kd, c)["metadata"]["generation"] for c in ("g1", "g2", "g3")}
            kd.kill()
            kd.start()

            def release_reconciled():
                m = kd.get("/metrics").text
                return any(ln.startswith('kfleet_controller_reconciles_total{controller="release"}')
                           and float(ln.split()[-1]) > 0 for ln in m.splitlines())
            eventually(release_reconciled, timeout=30 * kftest.SLOW, msg="the release controller did not run")
            rel = paused()
            assert rel and rel["status"]["pause"]["reason"] == "HealthGateFailed", rel
            assert {c: lf.cluster(kd, c)["metadata"]["generation"]
                    for c in ("g1", "g2", "g3")} == gen

            out = kfleet(kd, "rollout", "status", "rel", expect=7)
            assert "release rel: " + TARGET + ", Paused" in out, out
            assert "canary" in out and "rest" in out and "[" in out, out
            assert "paused: HealthGateFailed" in out, out
            # viewers read it
            r = kd.get(path("releases", "rel"), token=VIEWER)
            assert r.status == 200, r

            reasons = [e[0] for e in events(kd, "rel")]
            assert "WaveStarted" in reasons and "Upgrading" in reasons, reasons
            assert "HealthGateFailed" in reasons, reasons
            assert any(r == "ReleaseUpgrade" and 'release "rel"' in m
                       for r, m in events(kd, "g1")), events(kd, "g1")

            # resumed while the alert still fires: paused again, nothing moved
            out = kfleet(kd, "rollout", "resume", "rel")
            assert "release/rel resumed" in out, out
            # paused (generation 2), resumed (3), paused again by the controller (4)
            eventually(lambda: (paused() or {}).get("metadata", {}).get("generation", 0) >= 4,
                       timeout=60 * kftest.SLOW, msg="the release did not pause again")
            assert spec_version(kd, "g2") == OLD

            out = kfleet(kd, "rollout", "abort", "rel")
            eventually(lambda: kd.get(path("releases", "rel")).json.get("status", {})
                       .get("phase") == "Aborted", timeout=30 * kftest.SLOW)
            out = kfleet(kd, "rollout", "status", "rel", "--watch", expect=7)
            assert "Aborted" in out, out
            assert spec_version(kd, "g2") == OLD
            assert spec_version(kd, "g3") == OLD
        finally:
            prom.stop()


if __name__ == "__main__":
    kftest.main(globals())
