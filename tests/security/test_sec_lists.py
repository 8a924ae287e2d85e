"""test_sec_lists.py: no request renders a whole kind at once, and long
work does not starve heartbeats (docs/security.md, "Exhaustion").

A LIST answers at most --list-max-page objects whatever its limit (none,
0 or larger) and a continue token for the rest; a watch without a
resourceVersion sends its initial ADDED events a page at a time (all of
them, then the hub's events); a storm of whole-kind LISTs and plans leaves
heartbeats answered and the host Ready."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import API, path, sample  # noqa: E402

ADMIN = kftest.ADMIN_TOKEN
VIEWER = "viewer-token-0123456789"
AGENT = "agent-token-0123456789"
PAGE = 100
N = 450
GRACE = 2.0 * kftest.SLOW

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(store="memory", tokens=True, controllers=True,
                            args=["--list-max-page", str(PAGE),
                                  "--host-grace", f"{int(GRACE * 1000)}ms"]).start()
        c = kd.client(ADMIN)
        for i in range(N):
            r = c.post(path("regions"), sample("Region", f"r-{i:04d}"))
            assert r.status == 201, r
    return kd


def test_list_is_paged_whatever_the_limit():
    setup()
    for params in (None, {"limit": "0"}, {"limit": str(10 * N)}):
        r = kd.get(path("regions"), params=params, token=VIEWER)
        assert r.status == 200, r
        assert len(r.json["items"]) == PAGE, (params, len(r.json["items"]))
        assert r.json["metadata"].get("continue"), r.json["metadata"]
    # a smaller limit is honoured as before
    r = kd.get(path("regions"), params={"limit": "7"}, token=VIEWER)
    assert len(r.json["items"]) == 7 and r.json["metadata"]["continue"]
    # following continue gives every object once, at one resourceVersion
    names, cont, rvs = [], None, set()
    while True:
        r = kd.get(path("regions"), params={"continue": cont} if cont else None, token=VIEWER)
        assert r.status == 200, r
        names += [o["metadata"]["name"] for o in r.json["items"]]
        rvs.add(r.json["metadata"]["resourceVersion"])
        cont = r.json["metadata"].get("continue")
        if not cont:
            break
    assert len(names) == N and len(set(names)) == N, len(names)
    assert len(rvs) == 1, rvs


def test_watch_initial_events_in_pages():
    setup()
    w = kd.watch(path("regions"), params={"sendInitialEvents": "true",
                                          "allowWatchBookmarks": "true"}, token=VIEWER)
    assert w.status == 200, w.body
    seen = set()
    while True:
        ev = w.next(timeout=10)
        assert ev is not None, f"initial events stopped after {len(seen)}"
        if ev["type"] == "BOOKMARK":
            assert ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"
            break
        assert ev["type"] == "ADDED", ev
        seen.add(ev["object"]["metadata"]["name"])
    assert len(seen) == N, len(seen)
    # then changes, after the initial state
    r = kd.post(path("regions"), sample("Region", "r-late"), token=ADMIN)
    assert r.status == 201, r
    ev = w.wait_for(lambda e: e["type"] == "ADDED")
    assert ev["object"]["metadata"]["name"] == "r-late", ev
    w.close()
    # without a resourceVersion (no bookmark asked): the same N+1 objects
    w = kd.watch(path("regions"), token=VIEWER)
    evs = w.drain(timeout=2)
    assert len({e["object"]["metadata"]["name"] for e in evs}) == N + 1, len(evs)
    w.close()
    kd.delete(path("regions", "r-late"), token=ADMIN)


def test_heartbeats_through_long_lists_and_plans():
    setup()
    r = kd.post(path("hosts"), sample("Host", "hb-1"), token=ADMIN)
    assert r.status == 201, r
    stop = threading.Event()
    errors = []
    lists = [0]

    def storm():
        c = kftest.Client(kd.port, token=VIEWER)
        while not stop.is_set():
            cont = None
            while True:
                p = {"limit": "0"}
                if cont:
                    p = {"continue": cont}
                r = c.get(path("regions"), params=p)
                if r.status != 200:
                    errors.append(r.status)
                    break
                cont = r.json["metadata"].get("continue")
                if not cont:
                    break
            c.post(API + "/plan", {"region": "cn-hangzhou", "maxUnitHosts": 10000})
            lists[0] += 1
        c.close()

    threads = [threading.Thread(target=storm, daemon=True) for _ in range(6)]
    hb = kftest.Client(kd.port, token=AGENT)
    assert hb.post(path("hosts", "hb-1", "heartbeat")).status == 200
    kftest.eventually(lambda: kd.get(path("hosts", "hb-1"), token=ADMIN).json
                      .get("status", {}).get("ready") is True, timeout=10 * kftest.SLOW)
    for t in threads:
        t.start()
    beats = []
    end = time.monotonic() + 4 * GRACE
    try:
        while time.monotonic() < end:
            beats.append(hb.post(path("hosts", "hb-1", "heartbeat")).status)
            time.sleep(GRACE / 5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert lists[0] > 0
    assert beats and all(s == 200 for s in beats), beats
    h = kd.get(path("hosts", "hb-1"), token=ADMIN).json
    assert h["status"]["ready"] is True, h
    evs = kd.get(path("events"), token=ADMIN).json["items"]
    assert not any(e["spec"]["involvedObject"]["name"] == "hb-1"
                   and e["spec"]["reason"] == "HostNotReady" for e in evs), evs


def test_delete_collection_in_pages():
    """A DELETE of a collection deletes one page (--list-max-page) a request
    and says there is more with metadata.continue; the old code listed and
    deleted up to 500,000 objects in one request."""
    setup()
    c = kd.client(ADMIN)
    n = 2 * PAGE + 50
    for i in range(n):
        r = c.post(path("templates"), sample("Template", f"dc-{i:04d}", labels={"batch": "dc"}))
        assert r.status == 201, r
    assert c.post(path("templates"), sample("Template", "keep", labels={"batch": "x"})).status == 201
    deleted, rounds, cont = [], 0, None
    while True:
        params = {"labelSelector": "batch=dc"}
        if cont:
            params["continue"] = cont
        r = c.delete(path("templates"), params=params)
        assert r.status == 200 and r.json["kind"] == "TemplateList", r
        assert len(r.json["items"]) <= PAGE, len(r.json["items"])
        deleted += [o["metadata"]["name"] for o in r.json["items"]]
        rounds += 1
        cont = r.json["metadata"].get("continue")
        if not cont:
            break
        assert len(r.json["items"]) == PAGE, len(r.json["items"])
    assert rounds == 3, rounds
    assert sorted(deleted) == [f"dc-{i:04d}" for i in range(n)], len(deleted)
    left = [o["metadata"]["name"] for o in c.get(path("templates")).json["items"]]
    assert left == ["keep"], left


def test_zz_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals())
