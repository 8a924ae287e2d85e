"""test_backup.py: etcd backups of guest clusters (docs/internals/backups.md).

Real processes throughout: kfleetd with the backup controller, three meta
agents, a guest cluster running upstream Kubernetes (three etcd members,
apiservers, ...), ConfigMaps written with the built kubectl through the
cluster's endpoint. What a user sees is asserted: `kfleet backup create
--wait` and its output, the Backup's status (revision, size, checksum),
the snapshot file on the location (its mode, its sha256), the ConfigMaps
inside the snapshot (restored with etcdctl into a scratch etcd and read
back up to the backup's revision), a location of another region refused,
refused restores (a backup of another region, by an editor, of a
corrupted file), the cluster's data destroyed and restored from a backup
into a new etcd member set (the ConfigMaps up to the backup's revision
served again by kubectl, one written after it gone), scheduled backups
kept to backup.retain with the files of the ones dropped removed, and who
may write the kinds.
"""

import hashlib
import json
import os
import stat
import subprocess

import kftest
import lifecycle_fixture as lf
from kftest import eventually, path

CONTROLLERS = "profiles,host-lifecycle,unit-status,placement,lifecycle,backup"
EDITOR = "editor-token-0123456789"
VIEWER = "viewer-token-0123456789"


def kubectl(kc, *args):
    p = subprocess.run([lf.KUBECTL, "--kubeconfig", kc, "--request-timeout", "10s"] + list(args),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"kubectl {' '.join(args)}: {p.stderr or p.stdout}"
    return p


def backups(kd, cluster):
    r = kd.get(path("backups"), params={"fieldSelector": f"spec.cluster={cluster}"})
    assert r.status == 200, r
    return sorted(r.json["items"], key=lambda b: b["metadata"]["name"])


def backup(kd, name):
    r = kd.get(path("backups", name))
    return r.json if r.status == 200 else None


def sha256(p):
    with open(p, "rb") as fh:
        return "sha256:" + hashlib.sha256(fh.read()).hexdigest()


def restored_keys(tmp, snapshot, prefix):
    """Restores the snapshot with etcdctl into a scratch etcd (a new
    one-member cluster), starts it, and returns the keys under prefix and
    the revision it serves."""
    data = os.path.join(tmp, "restored")
    peer, client = kftest.free_port(), kftest.free_port()
    env = dict(os.environ, ETCDCTL_API="3")
    p = subprocess.run([lf.ETCDCTL, "snapshot", "restore", snapshot, "--name", "scratch",
                        "--data-dir", data, "--initial-cluster",
                        f"scratch=http://127.0.0.1:{peer}",
                        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p
    etcd = subprocess.Popen(["/usr/bin/etcd", "--name", "scratch", "--data-dir", data,
                             "--listen-client-urls", f"http://127.0.0.1:{client}",
                             "--advertise-client-urls", f"http://127.0.0.1:{client}",
                             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-cluster", f"scratch=http://127.0.0.1:{peer}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kftest.track(etcd)
    try:
        def get():
            q = subprocess.run([lf.ETCDCTL, f"--endpoints=http://127.0.0.1:{client}", "get",
                                prefix, "--prefix", "--keys-only", "-w", "json"], env=env,
                               capture_output=True, text=True, timeout=30)
            return json.loads(q.stdout) if q.returncode == 0 else None
        out = eventually(get, timeout=30, msg="the restored etcd does not answer")
        import base64
        keys = sorted(base64.b64decode(kv["key"]).decode() for kv in out.get("kvs", []))
        return keys, out["header"]["revision"]
    finally:
        etcd.terminate()
        etcd.wait(timeout=30)


def test_backup_of_a_running_kubernetes_cluster():
    with lf.Fleet(kubernetes=True, controllers=CONTROLLERS) as f:
        kd = f.kd
        lf.k8s_profile(kd)
        loc_dir = os.path.join(f.tmp, "backups")
        body = {"apiVersion": "kfleet.io/v1", "kind": "BackupLocation",
                "metadata": {"name": "local"},
                "spec": {"region": "local", "path": loc_dir}}
        # who may write a location: admin only (it says where agents write files)
        r = kd.post(path("backuplocations"), body, token=EDITOR)
        assert r.status == 403, r
        r = kd.post(path("backuplocations"), body)
        assert r.status == 201, r
        far = dict(body, metadata={"name": "far"},
                   spec={"region": "elsewhere", "path": os.path.join(f.tmp, "far")})
        assert kd.post(path("backuplocations"), far).status == 201

        # no scheduled backup for this cluster: only the ones asked for
        spec = {"region": "local", "profile": "k8s-test", "version": lf.K8S_VERSION,
                "expectedNodes": 3, "network": {"vpc": "local"},
                "backup": {"enabled": False}}
        r = kd.post(path("guestclusters"), {"apiVersion": "kfleet.io/v1", "kind": "GuestCluster",
                                            "metadata": {"name": "web"}, "spec": spec})
        assert r.status == 201, r
        lf.wait_phase(kd, "web", "Running", timeout=120 * kftest.SLOW)
        p = lf.kfleet(kd, "get", "kubeconfig", "web")
        kc = os.path.join(f.tmp, "web.kubeconfig")
        with open(kc, "w") as fh:
            fh.write(p.stdout)

        # data written through the guest apiserver
        kubectl(kc, "create", "namespace", "kfleet-test")
        for i in range(5):
            kubectl(kc, "create", "configmap", f"before-{i}", "-n", "kfleet-test",
                    f"--from-literal=n={i}")

        # a viewer may not take a backup; an editor may
        r = kd.post(path("backups"), {"apiVersion": "kfleet.io/v1", "kind": "Backup",
                                      "metadata": {"name": "by-viewer"},
                                      "spec": {"cluster": "web"}}, token=VIEWER)
        assert r.status == 403, r

        p = subprocess.run([os.path.join(kftest.BIN_DIR, "kfleet"), "backup", "create", "web",
                            "--wait", "--timeout", "3m"],
                           env=dict(os.environ, KFLEET_SERVER=kd.url, KFLEET_TOKEN=EDITOR,
                                    HOME=f.tmp),
                           capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, p
        lines = p.stdout.splitlines()
        assert lines[0].startswith("backup/web-") and lines[0].endswith(" created"), lines
        assert any(" Succeeded: snapshot taken and verified" in ln for ln in lines), lines
        name = lines[0].split()[0].split("/", 1)[1]
        b = backup(kd, name)
        st = b["status"]
        assert st["phase"] == "Succeeded" and st["location"] == "local", st
        assert st["revision"] > 0 and st["totalKeys"] > 0, st
        assert st["path"] == os.path.join(loc_dir, "web", name + ".db"), st
        assert st["host"] in ("h-a", "h-b", "h-c") and st["member"].startswith("web-"), st
        # the file: as big as the status says, its checksum, 0600 in a 0700 directory
        assert os.path.getsize(st["path"]) == st["size"], st
        assert sha256(st["path"]) == st["checksum"], st
        assert stat.S_IMODE(os.stat(st["path"]).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(st["path"])).st_mode) == 0o700
        assert f"revision {st['revision']}, {st['size']} bytes" in lines[-1], lines
        copy = os.path.join(f.tmp, "copy.db")
        with open(st["path"], "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())

        # written after the backup: not in it
        kubectl(kc, "create", "configmap", "after", "-n", "kfleet-test")

        # the snapshot holds the ConfigMaps written before it, at its revision
        keys, rev = restored_keys(f.tmp, copy, "/registry/configmaps/kfleet-test/")
        assert keys == [f"/registry/configmaps/kfleet-test/before-{i}" for i in range(5)], keys
        assert rev == st["revision"], (rev, st)

        # kfleet get backups shows it
        p = lf.kfleet(kd, "get", "backups")
        row = next(ln for ln in p.stdout.splitlines() if ln.startswith(name))
        assert "web" in row and "Succeeded" in row and str(st["revision"]) in row, p.stdout

        # a location of another region is refused: the data stays in its region
        p = lf.kfleet(kd, "backup", "create", "web", "--location", "far", "--wait", check=False)
        assert p.returncode == 5, p
        assert "Failed" in p.stdout and "stays in its region" in p.stdout, p.stdout
        assert not os.path.exists(os.path.join(f.tmp, "far")), "a file was written there"
        r = lf.kfleet(kd, "backup", "create", "nosuch", "--wait", "--timeout", "20s",
                      check=False)
        assert r.returncode == 5 and "the cluster does not exist" in r.stdout, r

        # a second backup, then refused restores: of another region, by an
        # editor, of a corrupted file (nothing stops: the data stays as it is)
        p = lf.kfleet(kd, "backup", "create", "web", "--wait")
        second = p.stdout.splitlines()[0].split()[0].split("/", 1)[1]
        assert second != name, p.stdout
        r = kd.patch(path("backups", second) + "/status", {"status": {"region": "elsewhere"}})
        assert r.status == 200, r
        p = lf.kfleet(kd, "restore", "web", "--backup", second, check=False)
        assert p.returncode == 1 and "never moves data across regions" in p.stderr, p
        r = kd.patch(path("backups", second) + "/status", {"status": {"region": "local"}})
        assert r.status == 200, r
        p = subprocess.run([os.path.join(kftest.BIN_DIR, "kfleet"), "restore", "web", "--backup",
                            name], env=dict(os.environ, KFLEET_SERVER=kd.url, KFLEET_TOKEN=EDITOR,
                                            HOME=f.tmp), capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and "needs role admin" in p.stderr, p
        bad = backup(kd, second)["status"]["path"]
        with open(bad, "r+b") as fh:
            fh.seek(4096)
            fh.write(b"corrupted by the test")
        p = lf.kfleet(kd, "restore", "web", "--backup", second, check=False)
        assert p.returncode == 1 and "is corrupted" in p.stderr, p
        assert "after" in kubectl(kc, "get", "configmaps", "-n", "kfleet-test").stdout

        # the cluster's data destroyed, then restored from the first backup
        # into a new etcd member set: the ConfigMaps up to its revision
        kubectl(kc, "delete", "configmap", "before-0", "-n", "kfleet-test")
        p = subprocess.run([os.path.join(kftest.BIN_DIR, "kfleet"), "restore", "web", "--backup",
                            name, "--wait", "--timeout", "90s"],
                           env=dict(os.environ, KFLEET_SERVER=kd.url, KFLEET_TOKEN=kd.admin_token,
                                    HOME=f.tmp), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p
        assert f"restore from backup/{name} (revision {st['revision']}) started" in p.stdout, p
        assert p.stdout.rstrip().splitlines()[-1].startswith(
            "guestcluster/web restored on unit u1, endpoint https://"), p.stdout

        last = []

        def configmaps():
            q = subprocess.run([lf.KUBECTL, "--kubeconfig", kc, "--request-timeout", "5s", "get",
                                "configmaps", "-n", "kfleet-test", "-o", "name"],
                               capture_output=True, text=True, timeout=30)
            last[:] = [q.returncode, q.stdout, q.stderr]
            c = q.stdout.split() if q.returncode == 0 else []
            return c if "configmap/before-0" in c else None
        want = [f"configmap/before-{i}" for i in range(5)]
        try:
            got = eventually(configmaps, timeout=60, interval=0.5)
        except AssertionError:
            raise AssertionError(f"the restored ConfigMaps are not served: {last}") from None
        assert sorted(x for x in got if x.startswith("configmap/before-")) == want, got
        assert "configmap/after" not in got, got
        lf.wait_phase(kd, "web", "Running", timeout=60)
        # each of the three etcd members was restored from the snapshot
        restored = sum(ag.log().count("data restored from the snapshot")
                       for ag in f.agents.values())
        assert restored == 3, restored

        # scheduled backups: every 15 s, two kept; the ones dropped lose their file
        r = kd.patch(path("guestclusters", "web"),
                     {"spec": {"backup": {"enabled": True, "interval": "15s", "retain": 2}}})
        assert r.status == 200, r

        def scheduled_done():
            ok = [b for b in backups(kd, "web")
                  if b.get("status", {}).get("phase") == "Succeeded"]
            sched = [b for b in ok if b["metadata"].get("annotations", {}).get(
                "kfleet.io/backup-trigger") == "scheduled"]
            return len(sched) >= 2 and backup(kd, name) is None and len(ok) <= 2 and ok
        ok = eventually(scheduled_done, timeout=180 * kftest.SLOW, interval=1,
                        msg=lambda: f"scheduled backups not kept to 2: {backups(kd, 'web')}")
        assert not os.path.exists(st["path"]), "the dropped backup's file is still there"
        for b in ok:
            assert os.path.exists(b["status"]["path"]), b
            assert b["status"]["revision"] >= st["revision"], b

        # deleting a backup removes its file
        gone = ok[0]
        r = kd.delete(path("backups", gone["metadata"]["name"]))
        assert r.status in (200, 202, 404), r  # 404: retention was quicker
        eventually(lambda: backup(kd, gone["metadata"]["name"]) is None, timeout=20,
                   msg="the deleted backup stays")
        assert not os.path.exists(gone["status"]["path"])


if __name__ == "__main__":
    kftest.main(globals())
