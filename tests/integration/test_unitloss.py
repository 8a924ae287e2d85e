"""test_unitloss.py: a guest cluster brought back on another unit from its
backup (docs/internals/backups.md "Restore onto another unit", "Unit loss").

Real processes throughout: kfleetd (placement, lifecycle, endpoints, backup
and unit-loss controllers), two units of one region with three meta agents
each (one per zone) and a filesystem BackupLocation every agent sees, and a
guest running upstream Kubernetes on unit ua. ConfigMaps are written with
kubectl through the guest's endpoint, a backup is taken, one more ConfigMap
is written after it. What a user sees is asserted:

- `kfleet restore --unit` refused with the reason (an editor, a unit of
  another region, a unit where it does not fit, its own unit);
- an outage of unit ua shorter than --unit-loss-grace moves nothing;
- unit ua lost (its agents and every member process killed, by PID): after
  the grace the evacuation begins; kfleetd is SIGKILLed right then and
  started again, and resumes the same request (each member restored once);
  the cluster runs on unit ub, its endpoint changed, serving
  exactly the ConfigMaps up to the backup's revision (kubectl through the
  new endpoint), with the Events that name each automatic action;
- ua back, then `kfleet restore web --backup B --unit ua --wait` moves it
  back: the data of the backup again, through ua's endpoint.
"""

import os
import signal
import subprocess
import time

import kftest
import lifecycle_fixture as lf
from kftest import eventually, path

CONTROLLERS = ("profiles,host-lifecycle,unit-status,placement,lifecycle,backup,unit-loss,"
               "endpoints")
EDITOR = "editor-token-0123456789"
ZONES = ("a", "b", "c")
GRACE = 10  # --unit-loss-grace, seconds


def kfleet(kd, *args, token=None, home=None):
    return subprocess.run([os.path.join(kftest.BIN_DIR, "kfleet")] + list(args),
                          env=dict(os.environ, KFLEET_SERVER=kd.url,
                                   KFLEET_TOKEN=token or kd.admin_token,
                                   HOME=home or "/nonexistent"),
                          capture_output=True, text=True, timeout=400)


def cluster(kd):
    r = kd.get(path("guestclusters", "web"))
    assert r.status == 200, r
    return r.json


def ann(obj, key):
    return obj["metadata"].get("annotations", {}).get(key)


def events(kd, reason):
    r = kd.get(path("events"))
    assert r.status == 200, r
    return [e for e in r.json["items"] if e["spec"].get("reason") == reason]


def host_not_ready(kd, name):
    r = kd.get(path("hosts", name))
    return r.status == 200 and r.json.get("status", {}).get("ready") is False


def kubeconfig(f, tag):
    p = lf.kfleet(f.kd, "get", "kubeconfig", "web")
    kc = os.path.join(f.tmp, f"web-{tag}.kubeconfig")
    with open(kc, "w") as fh:
        fh.write(p.stdout)
    return kc


def served_configmaps(kc, want_first):
    """The ConfigMaps of namespace kfleet-test, once the apiserver behind kc
    serves them (want_first among them)."""
    last = []

    def get():
        q = lf.kubectl(kc, "get", "configmaps", "-n", "kfleet-test", "-o", "name", check=False)
        last[:] = [q.returncode, q.stdout, q.stderr]
        c = q.stdout.split() if q.returncode == 0 else []
        return c if want_first in c else None
    try:
        return eventually(get, timeout=90 * kftest.SLOW, interval=0.5)
    except AssertionError:
        raise AssertionError(f"the restored ConfigMaps are not served: {last}") from None


def test_unit_loss_and_restore_onto_another_unit():
    with lf.TwoUnits(CONTROLLERS, "unitloss", backups=True,
                     args=["--unit-loss-grace", f"{GRACE}s", "--unit-loss-concurrency", "4"]) as f:
        kd = f.kd
        f.start_unit("ua")
        lf.k8s_profile(kd)
        spec = {"region": "local", "profile": "k8s-test", "version": lf.K8S_VERSION,
                "expectedNodes": 3, "network": {"vpc": "local"}, "backup": {"enabled": False}}
        r = kd.post(path("guestclusters"), {"apiVersion": "kfleet.io/v1", "kind": "GuestCluster",
                                            "metadata": {"name": "web"}, "spec": spec})
        assert r.status == 201, r
        lf.wait_phase(kd, "web", "Running", timeout=120 * kftest.SLOW)
        assert cluster(kd)["status"]["unit"] == "ua"
        f.start_unit("ub")

        kc = kubeconfig(f, "ua")
        lf.kubectl(kc, "create", "namespace", "kfleet-test")
        for i in range(3):
            lf.kubectl(kc, "create", "configmap", f"before-{i}", "-n", "kfleet-test",
                       f"--from-literal=n={i}")
        p = lf.kfleet(kd, "backup", "create", "web", "--wait", "--timeout", "3m")
        bk = p.stdout.splitlines()[0].split()[0].split("/", 1)[1]
        b = kd.get(path("backups", bk)).json
        assert b["status"]["phase"] == "Succeeded", b
        revision = b["status"]["revision"]
        lf.kubectl(kc, "create", "configmap", "after", "-n", "kfleet-test")
        # the backup's Event
        eventually(lambda: [e for e in events(kd, "BackupSucceeded")
                            if e["spec"]["involvedObject"]["name"] == bk], timeout=20,
                   msg="no BackupSucceeded event")

        # restores onto another unit that are refused, with the reason;
        # nothing moves
        p = kfleet(kd, "restore", "web", "--backup", bk, "--unit", "ub", token=EDITOR)
        assert p.returncode == 1 and "needs role admin" in p.stderr, p
        p = kfleet(kd, "restore", "web", "--backup", bk, "--unit", "far-u")
        assert p.returncode == 1 and "moves only within its region" in p.stderr, p
        p = kfleet(kd, "restore", "web", "--backup", bk, "--unit", "uc")
        assert p.returncode == 1 and "does not fit on unit uc" in p.stderr, p
        assert "no ready, schedulable host" in p.stderr, p
        p = kfleet(kd, "restore", "web", "--backup", bk, "--unit", "ua")
        assert p.returncode == 1 and "runs on unit ua already" in p.stderr, p
        p = kfleet(kd, "restore", "web", "--backup", "nosuch", "--unit", "ub")
        assert p.returncode != 0 and "does not exist" in p.stderr, p
        assert ann(cluster(kd), "kfleet.io/move") is None

        # an outage of unit ua shorter than the grace: its hosts go
        # NotReady and come back; nothing moves
        for ag in f.unit_agents("ua"):
            os.kill(ag.pid, signal.SIGSTOP)
        try:
            for z in ZONES:
                eventually(lambda n=f"ua-{z}": host_not_ready(kd, n), timeout=20,
                           msg=f"host ua-{z} stays Ready while its agent is stopped")
        finally:
            for ag in f.unit_agents("ua"):
                os.kill(ag.pid, signal.SIGCONT)
        for z in ZONES:
            eventually(lambda n=f"ua-{z}": lf.host_ready(kd, n), timeout=20,
                       msg=f"host ua-{z} not Ready again")
        time.sleep(2)
        gc = cluster(kd)
        assert gc["status"]["unit"] == "ua" and ann(gc, "kfleet.io/move") is None, gc
        assert not events(kd, "UnitLost"), events(kd, "UnitLost")

        # unit ua lost: every agent and member process killed
        old_endpoint = gc["status"]["endpoints"]["apiServer"]
        f.kill_unit("ua")

        # kfleetd SIGKILLed as soon as the evacuation has begun (the move
        # asked, the restore not done): the next kfleetd resumes the same
        # request from the store, and each member is restored once
        def evacuating():
            c = cluster(kd)
            return c if ann(c, "kfleet.io/move") else None
        gc = eventually(evacuating, timeout=(GRACE + 60) * kftest.SLOW, interval=0.1,
                        msg="the evacuation of unit ua did not begin")
        asked = ann(gc, "kfleet.io/move")
        assert ann(gc, "kfleet.io/restored") is None, gc
        kd.kill()
        kd.start()

        def moved():
            c = cluster(kd)
            mv = ann(c, "kfleet.io/move")
            done = ann(c, "kfleet.io/restored")
            return (c if c["status"].get("unit") == "ub" and mv and done
                    and done == mv.split()[0] else None)
        gc = eventually(moved, timeout=(GRACE + 150) * kftest.SLOW, interval=1,
                        msg=lambda: f"the cluster was not restored on ub: {cluster(kd)}")
        assert ann(gc, "kfleet.io/move") == asked and asked.endswith(" ua *"), (asked, gc)
        assert ann(gc, "kfleet.io/restore").endswith(" " + bk), gc
        # the endpoint is unit ub's now: its HAProxy serves it, ua's is gone
        # (both units use the default endpoint address here, so the URL may
        # stay the same)
        new_endpoint = gc["status"]["endpoints"]["apiServer"]
        port = new_endpoint.rsplit(":", 1)[1]
        eps = os.path.join(kd.data_dir, "endpoints")
        eventually(lambda: not os.path.exists(os.path.join(eps, "ua")), timeout=20,
                   msg="unit ua's endpoint files stay")
        with open(os.path.join(eps, "ub", "haproxy.cfg")) as fh:
            assert f":{port}" in fh.read(), (old_endpoint, new_endpoint)
        kc_b = kubeconfig(f, "ub")
        got = served_configmaps(kc_b, "configmap/before-0")
        assert sorted(x for x in got if x.startswith("configmap/before-")) == \
            [f"configmap/before-{i}" for i in range(3)], got
        assert "configmap/after" not in got, got
        lf.wait_phase(kd, "web", "Running", timeout=60 * kftest.SLOW)
        ms = lf.members(kd, "web")
        assert ms and all(m["spec"]["host"].startswith("ub-") for m in ms), ms
        restored = sum(ag.log().count("data restored from the snapshot")
                       for ag in f.unit_agents("ub"))
        assert restored == 3, restored
        # the etcd the members serve is at the backup's revision or just after
        # (the restarted control plane writes leases and events)
        for reason in ("UnitLost", "ClusterEvacuating", "Moved", "RestoreStarted", "Restored"):
            assert events(kd, reason), f"no {reason} event"
        u = kd.get(path("units", "ua")).json
        assert "evacuated" in ann(u, "kfleet.io/unit-loss-progress"), u
        assert revision > 0

        # ua back, then moved back onto it by an operator
        f.start_unit("ua", dirs={n: ag.data_dir for n, ag in f.agents.items()
                                 if n.startswith("ua-")})
        eventually(lambda: events(kd, "UnitRecovered"), timeout=20, msg="no UnitRecovered event")
        # placement sees ua's three zones again (the unit's status comes from its model)
        eventually(lambda: len(kd.get(path("units", "ua")).json.get("status", {}).get(
            "zonesReady", [])) == 3, timeout=30, msg="unit ua's zones not ready again")
        p = kfleet(kd, "restore", "web", "--backup", bk, "--unit", "ua", "--wait", "--timeout",
                   "5m", home=f.tmp)
        assert p.returncode == 0, p
        assert "moves from unit ub to unit ua" in p.stdout, p.stdout
        last = p.stdout.rstrip().splitlines()[-1]
        assert last.startswith("guestcluster/web restored on unit ua, endpoint https://"), last
        kc_a = kubeconfig(f, "ua-again")
        got = served_configmaps(kc_a, "configmap/before-0")
        assert sorted(x for x in got if x.startswith("configmap/before-")) == \
            [f"configmap/before-{i}" for i in range(3)], got
        assert "configmap/after" not in got, got
        ms = lf.members(kd, "web")
        assert ms and all(m["spec"]["host"].startswith("ua-") for m in ms), ms


if __name__ == "__main__":
    kftest.main(globals())
