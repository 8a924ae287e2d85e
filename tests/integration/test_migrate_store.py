"""test_migrate_store.py: `kfleet migrate-store sqlite:PATH etcd:URLS`, the
operator's way from one kfleetd on SQLite to kfleetd on etcd, with a real
etcd: a fleet made through the API is copied and verified, kfleetd started
on etcd serves every object; a running kfleetd's SQLite file is refused; a
migration killed half-way resumes and finishes; a destination with other
data is refused unless --force. Skipped only when /usr/bin/etcd is not
installed."""

import os
import signal
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

KFLEET = os.path.join(kftest.BIN_DIR, "kfleet")
etcd = None


def setup():
    global etcd
    if etcd is None:
        etcd = kftest.Etcd(1).start()
    return etcd


def sqlite_kfleetd():
    """A kfleetd on SQLite whose data directory outlives it (the source)."""
    d = tempfile.mkdtemp(prefix="kftest-mig-")
    kd = kftest.Kfleetd(store="sqlite", data_dir=d)
    return kd, kd.store[len("sqlite:"):], d


def migrate(*args, timeout=120):
    return subprocess.run([KFLEET, "migrate-store", *args], capture_output=True, text=True,
                          timeout=timeout * kftest.SLOW)


def make_fleet(kd, n_clusters):
    objs = [("regions", sample("Region", "cn-hangzhou")),
            ("profiles", sample("Profile", "standard")),
            ("units", sample("Unit", "hz-u1", labels={"tier": "gold"}))]
    for i in range(3):
        objs.append(("hosts", sample("Host", f"h{i}", zone=f"cn-hangzhou-{'abc'[i]}")))
    for i in range(n_clusters):
        objs.append(("guestclusters", sample("GuestCluster", f"gc-{i:05d}")))
    for plural, obj in objs:
        r = kd.post(path(plural), obj)
        assert r.status == 201, r
    return objs


def snapshot(kd, plurals):
    """name -> (labels, spec) of every object of the kinds."""
    out = {}
    for plural in plurals:
        r = kd.get(path(plural))
        assert r.status == 200, r
        for o in r.json["items"]:
            out[(plural, o["metadata"]["name"])] = (o["metadata"].get("labels"), o["spec"])
    return out


PLURALS = ["regions", "profiles", "units", "hosts", "guestclusters"]


def test_migrate_fleet_to_etcd():
    e = setup()
    src, db, d = sqlite_kfleetd()
    with src:
        make_fleet(src, 200)
        before = snapshot(src, PLURALS)
        # kfleetd holds the file: refused, with what to do
        p = migrate(src.store, e.url("/migrated"))
        assert p.returncode != 0, p
        assert "stop kfleetd" in p.stderr, p.stderr
    # stopped: the copy goes through and is verified
    dest = e.url("/migrated")
    p = migrate(f"sqlite:{db}", dest)
    assert p.returncode == 0, p.stderr
    assert "verified: 206 keys" in p.stdout, p.stdout
    # kfleetd on etcd serves the same fleet
    with kftest.Kfleetd(store=dest) as kd:
        after = snapshot(kd, PLURALS)
        assert after == before
        r = kd.post(path("guestclusters"), sample("GuestCluster", "gc-new"))
        assert r.status == 201, r
    # a second run finds everything there already
    p = migrate(f"sqlite:{db}", dest)
    assert p.returncode != 0 and "1 only there" in p.stderr, p.stderr
    shutil.rmtree(d)
    p = migrate(f"sqlite:{db}", dest)
    assert p.returncode == 2 and db in p.stderr, p.stderr


def test_interrupted_migration_resumes():
    e = setup()
    src, db, d = sqlite_kfleetd()
    with src:
        make_fleet(src, 600)
    dest = e.url("/resumed")
    # slowed down so that it is surely half-way when killed
    proc = subprocess.Popen([KFLEET, "migrate-store", "--max-rate", "300", f"sqlite:{db}", dest],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kftest.track(proc)
    try:
        for line in proc.stderr:
            if line.startswith("copied "):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    with kftest.Kfleetd(store=dest) as kd:
        partial = len(kd.get(path("guestclusters")).json["items"])
    assert 0 < partial < 600, partial
    p = migrate(f"sqlite:{db}", dest)
    assert p.returncode == 0, p.stderr
    assert "resuming" in p.stderr, p.stderr
    assert "verified: 606 keys" in p.stdout, p.stdout
    with kftest.Kfleetd(store=dest) as kd:
        assert len(kd.get(path("guestclusters")).json["items"]) == 600
    shutil.rmtree(d)


def test_other_data_needs_force():
    e = setup()
    dest = e.url("/taken")
    with kftest.Kfleetd(store=dest) as kd:
        assert kd.post(path("regions"), sample("Region", "cn-hangzhou", labels={"x": "y"})
                       ).status == 201
        assert kd.post(path("regions"), sample("Region", "elsewhere")).status == 201
    src, db, d = sqlite_kfleetd()
    with src:
        make_fleet(src, 5)
    p = migrate(f"sqlite:{db}", dest)
    assert p.returncode == 1, p
    assert "different in the destination: /regions/cn-hangzhou" in p.stderr, p.stderr
    assert "nothing was written" in p.stderr
    with kftest.Kfleetd(store=dest) as kd:
        assert len(kd.get(path("guestclusters")).json["items"]) == 0
    p = migrate("--force", f"sqlite:{db}", dest)
    assert p.returncode == 0, p.stderr
    assert "verified: 11 keys" in p.stdout, p.stdout
    with kftest.Kfleetd(store=dest) as kd:
        assert kd.get(path("regions", "elsewhere")).status == 404
        assert "labels" not in kd.get(path("regions", "cn-hangzhou")).json["metadata"]
    shutil.rmtree(d)


if __name__ == "__main__":
    kftest.main(globals(), shared=("etcd",))
