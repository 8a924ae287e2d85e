"""test_guest_upgrade.py: one guest cluster's upgrade with the real programs.

Real processes throughout: kfleetd, three meta agents, and a guest control
plane of upstream Kubernetes built by scripts/install-kubernetes in two
adjacent minors (1.36 and 1.37). What a user sees is asserted: the
cluster's phase, status.version, status.upgrade and its Upgraded
condition; which program each apiserver process runs; kubectl's answers
through the endpoint while the members move (a client that reads and
writes all along, each failed request retried once: a request that fails
twice is counted, and none may); admission's answer to a skipped minor;
and an upgrade whose new apiserver program fails, which stops, says where,
and rolls back with `kfleet rollback`.
"""

import os
import stat
import sys
import threading
import time

import kftest
import lifecycle_fixture as lf
from kftest import eventually, path
from test_guest_kubernetes import kubectl, write_kubeconfig

OLD, NEW = "1.36", "1.37"
OLD_BIN = f"/opt/kfleet/kubernetes/{OLD}/bin"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def require_two_minors():
    for minor in (OLD, NEW):
        for prog in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            p = f"/opt/kfleet/kubernetes/{minor}/bin/{prog}"
            kftest.require(os.access(p, os.X_OK), f"{p} is not installed (scripts/install-kubernetes)")


def profile(kd, name, apiserver_binary=None):
    comps = [{"name": c} for c in COMPONENTS]
    if apiserver_binary:
        comps[1]["binary"] = apiserver_binary
    body = {"apiVersion": "kfleet.io/v1", "kind": "Profile", "metadata": {"name": name},
            "spec": {"versions": [OLD, NEW], "defaultVersion": NEW, "components": comps,
                     "versionLifecycle": [{"version": OLD, "deprecated": True}],
                     "flags": {"etcd.heartbeat-interval": "50", "etcd.election-timeout": "500"}}}
    r = kd.post(path("profiles"), body)
    assert r.status == 201, r


def create(kd, name, prof):
    body = {"apiVersion": "kfleet.io/v1", "kind": "GuestCluster", "metadata": {"name": name},
            "spec": {"region": "local", "profile": prof, "version": OLD, "expectedNodes": 3,
                     "network": {"vpc": "local"}}}
    r = kd.post(path("guestclusters"), body)
    assert r.status == 201, r


def upgraded(kd, name):
    c = lf.cluster(kd, name) or {}
    for x in c.get("status", {}).get("conditions", []):
        if x["type"] == "Upgraded":
            return x
    return None


def apiserver_programs(f, name):
    """{member: the program its process runs} of the cluster's apiservers."""
    out = {}
    for z, ag in f.agents.items():
        for member, pid, start, _, _ in ag.processes():
            if member.startswith(name + "-") and "apiserver" in member and \
                    kftest.pid_alive(pid, start):
                out[member] = os.readlink(f"/proc/{pid}/exe")
    return out


def member_pids(f, name):
    out = {}
    for z, ag in f.agents.items():
        for member, pid, start, _, _ in ag.processes():
            if member.startswith(name + "-") and kftest.pid_alive(pid, start):
                out[member] = pid
    return out


class ReadWriteClient(threading.Thread):
    """Writes a ConfigMap with a counter and reads it back, again and again,
    through the cluster's endpoint; each request is retried once, and one
    that fails twice in a row is counted."""

    def __init__(self, kc):
        super().__init__(daemon=True)
        self.kc = kc
        self.stop_ev = threading.Event()
        self.paused = threading.Event()
        self.idle = threading.Event()
        self.ok = 0
        self.retried = 0
        self.failures = []

    def pause(self):
        """Stops asking (between two requests) until resume()."""
        self.idle.clear()
        self.paused.set()
        self.idle.wait(timeout=120)

    def resume(self):
        self.paused.clear()

    def request(self, *args):
        for attempt in (1, 2):
            p = kubectl(self.kc, *args, check=False, timeout=40)
            if p.returncode == 0:
                self.ok += 1
                self.retried += attempt - 1
                return
            if attempt == 2:
                self.failures.append(f"{' '.join(args)}: {p.stderr.strip()}")
            time.sleep(0.2)

    def run(self):
        n = 0
        while not self.stop_ev.is_set():
            if self.paused.is_set():
                self.idle.set()
                time.sleep(0.1)
                continue
            n += 1
            self.request("patch", "configmap", "-n", "default", "upgrade-probe", "--type=merge",
                         "-p", '{"data":{"n":"%d"}}' % n)
            self.request("get", "configmap", "-n", "default", "upgrade-probe", "-o", "name")
            time.sleep(0.1)

    def finish(self):
        self.stop_ev.set()
        self.join(timeout=90)


def wait_upgraded(kd, name, reason, timeout):
    return eventually(lambda: (upgraded(kd, name) or {}).get("reason") == reason and
                      lf.cluster(kd, name),
                      timeout=timeout,
                      msg=lambda: f"{name}: Upgraded never {reason} (last: {upgraded(kd, name)}, "
                          f"upgrade: {(lf.cluster(kd, name) or {}).get('status', {}).get('upgrade')})")


def test_upgrade_one_minor_under_load():
    require_two_minors()
    with lf.Fleet(kubernetes=True) as f:
        kd = f.kd
        profile(kd, "k8s-up")
        create(kd, "web", "k8s-up")
        c = lf.wait_phase(kd, "web", "Running", timeout=180 * kftest.SLOW)
        assert c["status"]["version"] == OLD, c["status"]
        # every agent reports the releases its host holds
        for z in lf.ZONES:
            held = kd.get(path("hosts", f"h-{z}")).json["status"].get("kubernetesVersions", [])
            assert {v.rsplit(".", 1)[0] for v in held} >= {OLD, NEW}, held
        # the profile deprecates 1.36: kfleet get gc says so
        out = lf.kfleet(kd, "get", "gc", "web").stdout
        assert f"{OLD} (deprecated)" in out, out
        progs = apiserver_programs(f, "web")
        assert progs and all(p == f"{OLD_BIN}/kube-apiserver" for p in progs.values()), progs

        # a skipped minor is refused with the reason
        r = kd.patch(path("guestclusters", "web"), {"spec": {"version": "1.38"}})
        assert r.status == 422, r
        assert "skips a minor" in r.text and "to 1.37 first" in r.text, r.text

        kc = write_kubeconfig(f, "web")
        kubectl(kc, "create", "configmap", "-n", "default", "upgrade-probe",
                "--from-literal=n=0")
        client = ReadWriteClient(kc)
        client.start()
        before = member_pids(f, "web")
        t0 = time.monotonic()
        out = lf.kfleet(kd, "upgrade", "web", NEW).stdout
        assert f"upgrade from {OLD} to {NEW} requested" in out, out
        eventually(lambda: lf.phase(kd, "web") == "Upgrading", timeout=60,
                   msg=lambda: "web never Upgrading: "
                   f"{lf.cluster(kd, 'web')['status'].get('message')}")
        # kfleetd killed in the middle resumes where it was. In this local
        # fleet kfleetd also runs the unit's HAProxy (the endpoint), which
        # goes with it: the client waits while kfleetd is away, since that
        # is not the upgrade's doing
        eventually(lambda: any(m["state"] in ("Upgrading", "Done") and
                               m["component"] == "kube-apiserver" for m in
                               lf.cluster(kd, "web")["status"]["upgrade"]["members"]),
                   timeout=120 * kftest.SLOW, msg="no apiserver moved")
        client.pause()
        kd.kill()
        kd.start()
        eventually(lambda: kubectl(kc, "get", "namespaces", check=False).returncode == 0,
                   timeout=60, msg="the endpoint did not come back with kfleetd")
        client.resume()
        # an agent restarted in the middle: its members stay whole
        f.agents["a"].stop()
        f.start_agent("a")
        c = wait_upgraded(kd, "web", "Succeeded", 600 * kftest.SLOW)
        elapsed = time.monotonic() - t0
        client.finish()
        st = c["status"]
        up = st["upgrade"]
        sys.stderr.write(f"upgrade {OLD}->{NEW}: {elapsed:.1f} s, client: {client.ok} requests "
                         f"ok, {client.retried} retried once, {len(client.failures)} failed "
                         f"twice\n")
        assert st["version"] == NEW and up["step"] == "Succeeded" and up.get("finishedAt"), up
        # the safe order: etcd, then the apiservers, then the rest, each Done
        order = [m["component"] for m in up["members"]]
        assert order == sorted(order, key=lambda x: COMPONENTS.index(x)
                               if x in COMPONENTS else len(COMPONENTS)), order
        assert all(m["state"] == "Done" and m["from"] == OLD and m["to"] == NEW
                   for m in up["members"]), up["members"]
        lf.wait_phase(kd, "web", "Running", timeout=60)
        progs = apiserver_programs(f, "web")
        assert progs and all(p == f"/opt/kfleet/kubernetes/{NEW}/bin/kube-apiserver"
                             for p in progs.values()), progs
        ver = kubectl(kc, "version", "-o", "json").stdout
        assert '"gitVersion": "v1.37.' in ver, ver
        # every member runs the new version's command line, as its agent says
        for m in lf.members(kd, "web"):
            assert m["spec"]["version"] == NEW and m["status"].get("version") == NEW and \
                m["status"]["ready"] is True, (m["metadata"]["name"], m["spec"], m["status"])
        # each apiserver process was replaced (once: a member Done is not moved again)
        after = member_pids(f, "web")
        for m, pid in after.items():
            if "apiserver" in m:
                assert before.get(m) != pid, (m, before, after)
        assert not client.failures, client.failures
        assert client.ok > 0
        # the upgrade is finished: there is nothing to roll back
        p = lf.kfleet(kd, "rollback", "web", check=False)
        assert p.returncode != 0 and "no unfinished upgrade" in p.stderr, p


def failing_program(directory):
    """{{version}}-dependent apiserver programs: 1.36 is the real one, 1.37
    exits at once with a message, as a broken release would."""
    for minor in (OLD, NEW):
        os.makedirs(os.path.join(directory, minor), exist_ok=True)
    os.symlink(f"{OLD_BIN}/kube-apiserver", os.path.join(directory, OLD, "kube-apiserver"))
    bad = os.path.join(directory, NEW, "kube-apiserver")
    with open(bad, "w") as fh:
        fh.write("#!/bin/sh\necho 'kube-apiserver: this build is broken on purpose' >&2\nexit 3\n")
    os.chmod(bad, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return os.path.join(directory, "{{version}}", "kube-apiserver")


def test_failed_upgrade_stops_and_rolls_back():
    require_two_minors()
    with lf.Fleet(kubernetes=True) as f:
        kd = f.kd
        profile(kd, "k8s-broken", apiserver_binary=failing_program(os.path.join(f.tmp, "k8s")))
        create(kd, "api", "k8s-broken")
        lf.wait_phase(kd, "api", "Running", timeout=180 * kftest.SLOW)
        kc = write_kubeconfig(f, "api")
        lf.kfleet(kd, "upgrade", "api", NEW)
        c = wait_upgraded(kd, "api", "Failed", 300 * kftest.SLOW)
        st = c["status"]
        cond = upgraded(kd, "api")
        # it stopped at the first apiserver and says where and what to do
        assert st["version"] == OLD, st
        assert "stopped at kube-apiserver member" in cond["message"], cond
        assert "kfleet rollback api" in cond["message"], cond
        states = [(m["component"], m["state"]) for m in st["upgrade"]["members"]]
        assert ("kube-apiserver", "Failed") in states, states
        assert all(s == "Done" for comp, s in states if comp == "etcd"), states
        assert all(s == "Pending" for comp, s in states
                   if comp in ("kube-controller-manager", "kube-scheduler")), states
        assert [s for comp, s in states if comp == "kube-apiserver"].count("Failed") == 1, states
        # the other apiserver still serves through the endpoint
        kubectl(kc, "get", "namespaces")
        events = lf.kfleet(kd, "describe", "gc", "api").stdout
        assert "UpgradeFailed" in events, events

        out = lf.kfleet(kd, "rollback", "api").stdout
        assert f"return to {OLD}" in out, out
        c = wait_upgraded(kd, "api", "RolledBack", 300 * kftest.SLOW)
        st = c["status"]
        assert st["version"] == OLD and st["upgrade"]["step"] == "RolledBack", st["upgrade"]
        assert all(m["state"] in ("RolledBack", "Pending") for m in st["upgrade"]["members"]), \
            st["upgrade"]["members"]
        lf.wait_phase(kd, "api", "Running", timeout=120 * kftest.SLOW)
        progs = apiserver_programs(f, "api")
        assert len(progs) == 2 and all(os.path.realpath(p) == os.path.realpath(
            f"{OLD_BIN}/kube-apiserver") for p in progs.values()), progs
        kubectl(kc, "get", "namespaces")


if __name__ == "__main__":
    kftest.main(globals())
