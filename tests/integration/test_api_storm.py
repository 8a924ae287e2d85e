"""test_api_storm.py: a write storm interrupted by kill -9. Writers create
and patch objects as fast as they can; kfleetd is killed mid-storm and
started again on the same SQLite file: every write that was acknowledged
(201 for a create, 200 for a patch) is there, with the uid and at least the
resourceVersion the client was told, and the store still serves and
accepts writes."""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

WRITERS = 8


def writer(kd, wid, stop, acked, patched):
    c = kd.client()
    i = 0
    while not stop.is_set():
        name = f"storm-{wid}-{i}"
        try:
            r = c.post(path("guestclusters"), sample("GuestCluster", name, labels={"w": str(wid)}))
        except OSError:
            return  # the server died: what was acknowledged before counts
        if r.status == 201:
            acked[name] = r.json
        if i % 4 == 3:
            target = f"storm-{wid}-{i - 1}"
            try:
                r = c.patch(path("guestclusters", target), {"spec": {"expectedNodes": i}})
            except OSError:
                return
            if r.status == 200:
                patched[target] = r.json
        i += 1


def test_storm_then_kill_9():
    kftest.require(kftest.default_store() == "sqlite", "needs the sqlite store")
    with kftest.Kfleetd() as kd:
        stop = threading.Event()
        acked, patched = {}, {}
        threads = [threading.Thread(target=writer, args=(kd, w, stop, acked, patched))
                   for w in range(WRITERS)]
        for t in threads:
            t.start()
        kftest.eventually(lambda: len(acked) > 1000, timeout=60, interval=0.01)
        kd.kill()  # SIGKILL, mid-storm
        stop.set()
        for t in threads:
            t.join()
        n_acked = len(acked)
        kd.start()
        items = {}
        cont = None
        while True:
            params = {"limit": "500"}
            if cont:
                params["continue"] = cont
            r = kd.get(path("guestclusters"), params=params)
            assert r.status == 200, r
            items.update({i["metadata"]["name"]: i for i in r.json["items"]})
            cont = r.json["metadata"].get("continue")
            if not cont:
                break
        missing = [n for n in acked if n not in items]
        assert not missing, f"{len(missing)} of {n_acked} acknowledged creates lost: {missing[:5]}"
        for name, obj in acked.items():
            got = items[name]
            assert got["metadata"]["uid"] == obj["metadata"]["uid"], (name, got, obj)
            assert int(got["metadata"]["resourceVersion"]) >= int(
                obj["metadata"]["resourceVersion"])
        for name, obj in patched.items():
            got = items[name]
            assert int(got["metadata"]["resourceVersion"]) >= int(
                obj["metadata"]["resourceVersion"]), (name, got, obj)
            if got["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]:
                assert got["spec"]["expectedNodes"] == obj["spec"]["expectedNodes"]
        print(f"  {n_acked} acknowledged creates and {len(patched)} patches survived kill -9; "
              f"{len(items) - n_acked} unacknowledged creates were also committed")
        # the store still takes writes
        assert kd.post(path("guestclusters"), sample("GuestCluster", "after")).status == 201


if __name__ == "__main__":
    kftest.main(globals())
