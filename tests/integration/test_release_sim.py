"""A Release over 60 simulated guest clusters with the real upgrade engine:
two units of six simulated meta hosts each (`kfleet-agent --simulate`),
clusters of three etcd members created on 1.36, placed, provisioned and
Running through the controllers and agents; a Release to 1.37 with a
canary wave, a unit wave and the rest, each with a maxConcurrency; a few
clusters with a maintenance window that is open, two with one that is
closed. What a user sees:

  - the engine moves every member and each cluster's status.version
    follows, with the Upgraded condition True;
  - no wave ever has more clusters upgrading at once than its
    maxConcurrency, and no upgrade starts outside the cluster's window
    (told from the clusters' watch: spec.version, status.version and
    status.upgrade.startedAt);
  - the two clusters whose window is closed wait (the release counts them
    waitingForWindow, their spec.version stays) until their window is
    moved to one that is open; then they move and the release completes;
  - the release's status per wave, its events and the clusters' events
    say what moved; `kfleet rollout status` exits 0.
"""

import os
import subprocess
import tempfile

import kftest
import release_sim as rs
from kftest import eventually, path

N = 60
KFLEET = os.path.join(kftest.BIN_DIR, "kfleet")


def events(kd, name):
    r = kd.get(path("events"), params={"fieldSelector": f"spec.involvedObject.name={name}"})
    assert r.status == 200, r
    return [(e["spec"]["reason"], e["spec"]["message"]) for e in r.json["items"]]


def rollout_status(kd, name):
    e = {k: v for k, v in os.environ.items() if not k.startswith("KFLEET_")}
    e.update(KFLEET_SERVER=kd.url, KFLEET_TOKEN=kd.admin_token,
             HOME=tempfile.mkdtemp(prefix="kftest-relsim-home-"))
    return subprocess.run([KFLEET, "rollout", "status", name], capture_output=True, text=True,
                          env=e, timeout=60 * kftest.SLOW)


def wait_release(kd, pred, what):
    try:
        return eventually(pred, timeout=120, interval=0.5)
    except AssertionError:
        raise AssertionError(what + ": " + str(kd.get(path("releases", "sim")).json))


def test_release_over_simulated_fleet():
    # kfleetd ends watches after 1 to 2 s: the recorder's watch is opened
    # again from its last revision and must still see every cluster
    with rs.SimFleet(units=2, hosts=6, args=["--watch-timeout", "1s"]) as f:
        kd = f.kd
        names = [f"c-{i:02d}" for i in range(1, N + 1)]
        opened = {n for n in names[9::10]}  # c-10, c-20, ...
        bodies = [rs.cluster_body(n, window=rs.open_window() if n in opened else None)
                  for n in names]
        rs.create_clusters(kd, bodies, clients=2)
        rs.wait_running(kd, N, timeout=120)
        items, _ = rs.list_all(kd, "guestclusters")
        unit = {gc["metadata"]["name"]: gc["status"]["unit"] for gc in items}
        assert set(unit.values()) == {"u1", "u2"}, unit
        for gc in items:
            assert gc["status"]["version"] == rs.OLD, gc["status"]
        # the canaries: three clusters of u2 with no window (a named wave
        # may not take clusters the unit wave takes); two more of u2, in
        # the rest wave, get a window that is closed
        plain = [n for n in names if unit[n] == "u2" and n not in opened]
        canary, closed = plain[:3], set(plain[3:5])
        for n in closed:
            r = kd.patch(path("guestclusters", n), {"spec": {"maintenanceWindow":
                                                             rs.closed_window()}})
            assert r.status == 200, r
        _, rv = rs.list_all(kd, "guestclusters")
        waves = [{"name": "canary", "clusters": canary, "maxConcurrency": 1},
                 {"name": "unit-u1", "units": ["u1"], "maxConcurrency": "25%"},
                 {"name": "rest", "maxConcurrency": 5}]

        def wave_of(name, _obj):
            return "canary" if name in canary else "unit-u1" if unit[name] == "u1" else "rest"
        rec = rs.Recorder(kd, rv, wave_of)
        try:
            r = kd.post(path("releases"), rs.release_body("sim", waves))
            assert r.status == 201, r

            # everything moves but the two clusters whose window is closed
            def waiting():
                rel = kd.get(path("releases", "sim")).json
                t = rel.get("status", {}).get("clusters", {})
                return (t.get("waitingForWindow") == 2 and t.get("inProgress") == 0 and
                        t.get("updated", 0) + 2 == N and rel)
            wait_release(kd, waiting, "the release did not reach the closed windows")
            for n in closed:
                gc = kd.get(path("guestclusters", n)).json
                assert gc["spec"]["version"] == rs.OLD, gc["spec"]
                assert gc["status"]["version"] == rs.OLD, gc["status"]
            out = rollout_status(kd, "sim")
            assert out.returncode == 0, out  # still progressing
            # their windows move to one that is open now: they start
            edits = {}
            for n in closed:
                r = kd.patch(path("guestclusters", n),
                             {"spec": {"maintenanceWindow": rs.open_window()}})
                assert r.status == 200, r
                edits[n] = int(r.json["metadata"]["resourceVersion"])

            def completed():
                rel = kd.get(path("releases", "sim")).json
                return rel.get("status", {}).get("phase") == "Completed" and rel
            rel = wait_release(kd, completed, "the release did not complete")
            eventually(lambda: len(rec.end) == N, timeout=30,
                       msg=lambda: f"the watch saw {len(rec.end)} of {N} clusters upgraded")
            # (and the recorder did open its watch again: kfleetd's 1-2 s)
            eventually(lambda: rec.rewatches > 0, timeout=10,
                       msg="kfleetd never ended the recorder's watch")
        finally:
            rec.close()

        st = rel["status"]
        assert st["clusters"]["updated"] == N and st["clusters"]["failed"] == 0, st
        sizes = {"canary": 3, "unit-u1": sum(1 for n in names if unit[n] == "u1"),
                 "rest": N - 3 - sum(1 for n in names if unit[n] == "u1")}
        for w in st["waves"]:
            assert w["state"] == "Completed", w
            assert w["clusters"] == sizes[w["name"]] and w["updated"] == w["clusters"], w

        items, _ = rs.list_all(kd, "guestclusters")
        for gc in items:
            s = gc["status"]
            assert s["version"] == rs.TARGET and gc["spec"]["version"] == rs.TARGET, s
            cond = {c["type"]: c for c in s["conditions"]}
            assert cond["Upgraded"]["status"] == "True", cond["Upgraded"]
            assert cond["Upgraded"]["reason"] == "Succeeded", cond["Upgraded"]
            assert s["upgrade"]["from"] == rs.OLD and s["upgrade"]["to"] == rs.TARGET, s
            assert [m["state"] for m in s["upgrade"]["members"]] == ["Done"] * 3, s["upgrade"]
            assert gc["metadata"]["annotations"]["kfleet.io/release"] == "sim"
        # every member runs the target, as its agent reports
        members, _ = rs.list_all(kd, "controlplanemembers")
        assert len(members) == 3 * N
        for m in members:
            assert m["status"]["version"].startswith(rs.TARGET), m["status"]
            assert m["status"]["ready"] is True, m["status"]

        problems = rs.check(rec, rel, items)
        assert not problems, problems
        for w in st["waves"]:
            assert w["peak"] >= 1, w
        # the closed-window clusters started only after their window moved
        for n in closed:
            assert rec.start[n][0] > edits[n], (n, rec.start[n][0], edits[n])

        reasons = [e[0] for e in events(kd, "sim")]
        for want in ("WaveStarted", "Upgrading", "WaveCompleted", "Completed"):
            assert want in reasons, (want, reasons)
        ev = events(kd, canary[0])
        assert any(r == "ReleaseUpgrade" and '(wave "canary")' in m for r, m in ev), ev
        assert "Upgraded" in [r for r, _ in ev], ev

        out = rollout_status(kd, "sim")
        assert out.returncode == 0, out
        assert "Completed" in out.stdout and "canary" in out.stdout, out.stdout


if __name__ == "__main__":
    kftest.main(globals())
